"""Locations and the store a run's files go to: the same answers on S3 (moto, in process) and on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from conftest import calls_of
from tiledbvcf_batch.storage import (
    LocalPath,
    S3Uri,
    Storage,
    encryption_args,
    parse_location,
    parse_s3_uri,
)


def test_an_s3_uri_is_parsed_into_bucket_and_key():
    assert parse_s3_uri("s3://bucket-name/samples/a b.bcf", "--x") == S3Uri("bucket-name", "samples/a b.bcf")
    assert parse_s3_uri("s3://bucket-name", "--x", need_key=False) == S3Uri("bucket-name", "")
    assert str(S3Uri("bucket-name", "samples/a.bcf")) == "s3://bucket-name/samples/a.bcf"


@pytest.mark.parametrize(
    "text, message",
    [
        ("bucket-name/a.bcf", "'bucket-name/a.bcf' is not an S3 URI: write it as s3://bucket/path (local paths need "
                              "--executor local)"),
        ("s3://b/a.bcf", "has no valid bucket name"),  # one character
        ("s3://bucket name/a.bcf", "has no valid bucket name"),
        ("s3://bucket-name/", "names a bucket but no object: write it as s3://bucket/path"),
        ("s3://bucket-name/a\nb.bcf", "contains a control character"),
    ],
)  # fmt: skip
def test_a_bad_s3_uri_says_how_to_write_it(text, message):
    with pytest.raises(ValueError, match=r"^--samples ") as error:
        parse_s3_uri(text, "--samples")
    assert message in str(error.value)


def test_a_location_is_s3_or_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_location("s3://bucket-name/ds", "--dataset-uri") == S3Uri("bucket-name", "ds")
    assert parse_location("meta/runs", "--metadata-s3") == LocalPath(str(tmp_path / "meta" / "runs"))
    assert parse_location("~/x", "--metadata-s3") == LocalPath(os.path.expanduser("~/x"))
    for bad in ("", "  ", "a\tb"):
        with pytest.raises(ValueError, match="is neither an s3:// URI nor a path"):
            parse_location(bad, "--metadata-s3")


def test_children_and_prefixes_have_exactly_one_slash_between_parts():
    assert S3Uri("b", "").child("runs/") == S3Uri("b", "runs/")
    assert S3Uri("b", "meta").child("run.json") == S3Uri("b", "meta/run.json")
    assert S3Uri("b", "meta/").child("run.json") == S3Uri("b", "meta/run.json")
    assert S3Uri("b", "meta//").as_prefix() == S3Uri("b", "meta/") and S3Uri("b", "/").as_prefix() == S3Uri("b", "")
    assert LocalPath("/m").child("run.json") == LocalPath("/m/run.json")
    assert LocalPath("/m/").as_prefix() == LocalPath("/m/") and LocalPath("/m").as_prefix() == LocalPath("/m/")
    assert str(LocalPath("/m/run.json")) == "/m/run.json"


def test_writes_are_encrypted_with_the_kms_key_when_given_else_with_s3s_own_keys():
    assert encryption_args(None) == {"ServerSideEncryption": "AES256"}
    assert encryption_args("alias/k") == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/k"}


@pytest.fixture(params=["s3", "local"])
def place(request, tmp_path):
    """A Storage and a directory of it, on the emulated S3 or on disk."""
    if request.param == "local":
        return Storage(None), LocalPath(str(tmp_path / "meta") + "/")
    aws = request.getfixturevalue("aws")
    return Storage(aws.s3, encryption_args("alias/k")), S3Uri("bucket2-name", "meta/")


def test_put_then_read_gives_back_the_same_bytes(place):
    storage, where = place
    storage.put(where.child("runs/r1/m.txt"), "s3://bucket-name/ä.bcf\n".encode())
    assert storage.read_bytes(where.child("runs/r1/m.txt")) == "s3://bucket-name/ä.bcf\n".encode()
    assert storage.read_text(where.child("runs/r1/m.txt")) == "s3://bucket-name/ä.bcf\n"
    storage.delete(where.child("runs/r1/m.txt"))
    storage.delete(where.child("runs/r1/m.txt"))  # gone already: no error
    assert storage.list_sizes(where) == {}


def test_create_writes_once_and_never_over_what_is_there(place):
    storage, where = place
    assert storage.create(where.child("entry.json"), b"first")
    assert not storage.create(where.child("entry.json"), b"second")
    assert storage.read_bytes(where.child("entry.json")) == b"first"


def test_listing_gives_each_file_under_a_prefix_with_its_size(place):
    storage, where = place
    for name, body in (("a.txt", b"1"), ("sub/b.txt", b"22"), ("ab.txt", b"333")):
        storage.put(where.child(name), body)
    keys = {key.rpartition("meta/")[2]: size for key, size in storage.list_sizes(where).items()}
    assert keys == {"a.txt": 1, "sub/b.txt": 2, "ab.txt": 3}
    starting = {key.rpartition("meta/")[2] for key in storage.list_sizes(where.child("a"))}
    assert starting == {"a.txt", "ab.txt"}  # a prefix, as S3 lists keys: not only a directory
    assert storage.list_sizes(where.child("nothing/")) == {}


def test_on_s3_every_write_carries_the_encryption_and_create_is_conditional(aws):
    s3 = boto3.client("s3", region_name="us-east-1")  # made after the aws fixture's hooks: they see its calls
    storage = Storage(s3, encryption_args("alias/k"))
    storage.put(S3Uri("bucket2-name", "m.txt"), b"x")
    storage.create(S3Uri("bucket2-name", "e.json"), b"{}")
    puts = calls_of(aws, "PutObject")
    assert [p["Key"] for p in puts] == ["m.txt", "e.json"]
    assert all(p["ServerSideEncryption"] == "aws:kms" and p["SSEKMSKeyId"] == "alias/k" for p in puts)
    assert "IfNoneMatch" not in puts[0] and puts[1]["IfNoneMatch"] == "*"


def test_a_listing_stops_once_past_the_last_key_wanted(aws):
    for i in range(1500):
        aws.s3.put_object(Bucket="bucket2-name", Key=f"k/{i:05d}", Body=b"")
    storage = Storage(boto3.client("s3", region_name="us-east-1"))  # made after the aws fixture's hooks
    assert len(storage.list_sizes(S3Uri("bucket2-name", "k/"))) == 1500
    early = storage.list_sizes(S3Uri("bucket2-name", "k/"), last="k/00010")
    assert len(early) == 1000  # the first page holds it: no second page asked for
    assert len([c for c in calls_of(aws, "ListObjectsV2") if c.get("Prefix") == "k/"]) == 3


def test_a_local_create_leaves_no_partial_file_behind(tmp_path):
    storage = Storage(None)
    where = LocalPath(str(tmp_path / "runs" / "entry.json"))
    assert storage.create(where, b"{}") and not storage.create(where, b"{}")
    assert sorted(path.name for path in Path(tmp_path / "runs").iterdir()) == ["entry.json"]
