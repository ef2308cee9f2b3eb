"""The dataset's run registry: create-only entries, on the emulated S3 (If-None-Match) and on disk (a hard link)."""

from __future__ import annotations

import json
import threading

import pytest

from tiledbvcf_batch.dataset import dataset_identity, registry_of
from tiledbvcf_batch.inputs import InputError, parse_dataset_uri
from tiledbvcf_batch.registry import Claim, ClaimConflict, read_entries, register, withdraw, withdrawn_runs
from tiledbvcf_batch.storage import LocalPath, S3Uri, Storage


@pytest.fixture(params=["s3", "local"])
def registry(request, tmp_path):
    if request.param == "s3":
        aws = request.getfixturevalue("aws")
        return Storage(aws.s3), registry_of(S3Uri("my-bucketname", "ds"))
    return Storage(None), registry_of(LocalPath(str(tmp_path / "ds")))


def claim(registry, run_id: str, samples: list[str], names: dict[str, str] | None = None, seen: int = 0) -> Claim:
    return Claim(registry, run_id, f"s3://meta/{run_id}/run.json", tuple(samples), names or {}, seen)


def test_create_writes_once_and_never_over(registry):
    storage, where = registry
    target = where.child("x.json")
    assert storage.create(target, b"first") is True
    assert storage.create(target, b"second") is False
    assert storage.read_bytes(target) == b"first"


def test_entries_are_numbered_in_order_and_a_late_claim_of_the_same_samples_is_refused(registry):
    storage, where = registry
    first = register(storage, claim(where, "run-a", ["s3://b/1.bcf", "s3://b/2.bcf"]))
    other = register(storage, claim(where, "run-b", ["s3://b/3.bcf"]))  # planned before run-a registered: no overlap
    assert (first.number, other.number) == (1, 2)
    with pytest.raises(ClaimConflict) as refused:
        register(storage, claim(where, "run-c", ["s3://b/9.bcf", "s3://b/2.bcf"]))
    assert refused.value.problems == [
        "run run-a (record s3://meta/run-a/run.json) registered 1 of these samples a moment ago (s3://b/2.bcf): "
        "nothing was submitted; run the same command again, it skips the samples that run is ingesting"
    ]
    by_name = register(storage, claim(where, "run-d", ["s3://c/x.bcf"], {"s3://c/x.bcf": "NA1"}))
    with pytest.raises(ClaimConflict, match=r"run run-d .* registered 1 of these samples"):
        register(storage, claim(where, "run-e", ["s3://d/y.bcf"], {"s3://d/y.bcf": "NA1"}, seen=by_name.number - 1))
    # What the plan had already seen was judged by the ledger: it does not count again.
    assert register(storage, claim(where, "run-f", ["s3://b/1.bcf"], seen=4)).number == 5
    assert [entry.run_id for entry in read_entries(storage, where)] == ["run-a", "run-b", "run-d", "run-f"]


def test_a_withdrawn_run_no_longer_holds_its_samples(registry):
    storage, where = registry
    register(storage, claim(where, "run-a", ["s3://b/1.bcf"]))
    withdraw(storage, where, "run-a")
    assert withdrawn_runs(storage, where) == {"run-a"}
    assert register(storage, claim(where, "run-b", ["s3://b/1.bcf"])).number == 2


def test_a_registration_nobody_raced_costs_one_create(aws):
    """The number after the plan's last entry is tried first: listing and reading happen only when it is taken."""
    storage, where = Storage(aws.s3), registry_of(S3Uri("my-bucketname", "ds"))
    calls: list[str] = []
    aws.s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    register(storage, claim(where, "run-a", ["s3://b/1.bcf"]))
    assert calls == ["PutObject"]
    calls.clear()
    register(storage, claim(where, "run-b", ["s3://b/2.bcf"]))  # planned before run-a: one more try, no overlap
    assert calls == ["PutObject", "ListObjectsV2", "GetObject", "PutObject"]
    calls.clear()
    withdraw(storage, where, "run-a")
    calls.clear()
    assert register(storage, claim(where, "run-c", ["s3://b/1.bcf"])).number == 3  # overlaps run-a, withdrawn
    assert calls == ["PutObject", "ListObjectsV2", "GetObject", "GetObject", "ListObjectsV2", "PutObject"]


def test_clients_racing_for_one_number_each_get_their_own(registry):
    storage, where = registry
    barrier = threading.Barrier(8)
    numbers: list[int] = []

    def racer(i: int) -> None:
        barrier.wait()
        numbers.append(register(storage, claim(where, f"run-{i}", [f"s3://b/{i}.bcf"])).number)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 9))


def test_a_damaged_entry_is_named(registry):
    storage, where = registry
    storage.put(where.child("runs/000000001.json"), b"{not json")
    with pytest.raises(InputError, match=r"registry entry .*000000001.json is damaged"):
        register(storage, claim(where, "run-a", ["s3://b/1.bcf"]))
    storage.put(where.child("runs/000000001.json"), json.dumps({"number": 1}).encode())
    with pytest.raises(InputError, match="KeyError"):
        read_entries(storage, where)


def test_one_identity_per_location(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    spelled = [str(tmp_path / "link" / "ds"), str(tmp_path / "real" / "x" / ".." / "ds/")]
    assert {str(parse_dataset_uri(text, local=True)) for text in spelled} == {str(tmp_path / "real" / "ds")}
    assert str(parse_dataset_uri("s3://bkt/path/ds///")) == "s3://bkt/path/ds"
    assert dataset_identity(S3Uri("bkt", "path/ds/")) == "s3://bkt/path/ds"
    assert dataset_identity(LocalPath(str(tmp_path / "link" / "ds"))) == str(tmp_path / "real" / "ds")
    with pytest.raises(InputError, match="empty path segment"):
        parse_dataset_uri("s3://bkt//ds")
    assert str(registry_of(S3Uri("bkt", "path/ds"))) == "s3://bkt/path/ds.tiledbvcf-batch/"


def test_a_registry_the_user_may_not_write_is_one_line_exit_4(aws, samples_file, run_ingest):
    from botocore.exceptions import ClientError

    from conftest import base

    def refuse_registry(params, **_):
        if ".tiledbvcf-batch/" in params.get("Key", ""):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "injected AccessDenied"}}, "PutObject")

    samples = samples_file(2)
    aws.on("before-parameter-build.s3.PutObject", refuse_registry)
    refused = run_ingest(*base(samples))
    assert refused.exit_code == 4 and aws.submitted == [] and aws.keys("bucket2-name") == []
    assert refused.stderr.splitlines()[-1:] == [
        "Error: cannot register the run in the dataset's run registry s3://my-bucketname/test-vcf-dataset.tiledbvcf-"
        "batch/ (AccessDenied: injected AccessDenied): the scripts need s3:ListBucket, s3:GetObject and s3:PutObject "
        "there (README: Least-privilege IAM)"
    ]


def test_a_rolled_back_run_holds_no_sample(aws, samples_file, run_ingest):
    """A run withdrawn from the registry (its submission rolled back) frees its samples at once, not in an hour."""
    from conftest import base, make_dataset

    samples = samples_file(1)
    make_dataset(aws)
    where = registry_of(S3Uri("my-bucketname", "test-vcf-dataset"))
    register(Storage(aws.s3), claim(where, "ingest-gone", ["s3://bucket-name/samples/1.bcf"]))
    held = run_ingest(*base(samples))
    assert held.exit_code == 0 and aws.submitted == [] and "run ingest-gone registered 0 min ago" in held.stderr
    withdraw(Storage(aws.s3), where, "ingest-gone")
    freed = run_ingest(*base(samples))
    assert freed.exit_code == 0 and "Submitted ingestion job" in freed.stdout


def test_tiledb_reaches_s3_as_the_run_does_and_the_users_config_comes_last():
    from tiledbvcf_batch.dataset import DatasetAccess

    access = DatasetAccess("eu-west-1", "http://127.0.0.1:5000/", "AKID", "SECRET", "TOKEN",
                           "sm.io_concurrency_level=4, vfs.s3.region=us-east-2")  # fmt: skip
    config = access.config()
    assert {key: config[key] for key in ("vfs.s3.endpoint_override", "vfs.s3.scheme", "vfs.s3.aws_access_key_id",
                                         "vfs.s3.aws_session_token", "vfs.s3.use_virtual_addressing")} == {
        "vfs.s3.endpoint_override": "127.0.0.1:5000", "vfs.s3.scheme": "http", "vfs.s3.aws_access_key_id": "AKID",
        "vfs.s3.aws_session_token": "TOKEN", "vfs.s3.use_virtual_addressing": "false"}  # fmt: skip
    # Many small fragments are read 32 requests at a time, unless --tiledb-config says otherwise.
    assert (config["sm.compute_concurrency_level"], config["sm.io_concurrency_level"]) == ("32", "4")
    assert config["vfs.s3.region"] == "us-east-2"
    assert "vfs.s3.endpoint_override" not in DatasetAccess("us-east-1").config()
