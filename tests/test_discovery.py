"""--samples naming an S3 prefix or a local directory: the files found, paired, filtered, and what is left out.

Discovery in process (moto's mock_aws, and a listing held in memory for the cutting of pieces), the
command line in process, the real script against a moto server (--dry-run --json), and a local run
with the real tiledbvcf that ingests what it found.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

import cohort
import local_aws
from conftest import INGEST, install_standin, invoke, listed, needs_tiledbvcf, recorded_run, run_script
from samplefiles import bgzip_vcf
from tiledbvcf_batch.discovery import (
    SHOWN_PER_REASON,
    Discovered,
    classify,
    discover,
    samples_source,
)
from tiledbvcf_batch.inputs import InputError, Sample
from tiledbvcf_batch.inventory import finish_commands
from tiledbvcf_batch.prefixlisting import Piece, list_prefix, list_sequentially, pieces_after, split_points
from tiledbvcf_batch.storage import LocalPath, S3Uri

BUCKET = "bucket-name"
BASE = f"s3://{BUCKET}/delivery/"


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3: Any, *keys: str, body: bytes = b"x") -> None:
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=f"delivery/{key}", Body=body)


def reasons(found: Discovered) -> dict[str, str]:
    return {left.uri.removeprefix(BASE): left.reason for left in found.left_out}


# -- Pairing, filters, and every reason a file is left out --------------------------------------------------


def test_each_data_file_is_paired_with_its_index_beside_it_or_named_after_its_stem(s3):
    put(s3, "a/S1.vcf.gz", "a/S1.vcf.gz.csi", "a/S2.bcf", "a/S2.bcf.tbi", "b/S3.vcf.bgz", "b/S3.vcf.bgz.tbi")
    put(s3, "b/S4.bcf", "b/S4.csi")  # <stem>.csi: named after a TAB, as a samples file would name it
    found = discover(S3Uri(BUCKET, "delivery/"), s3)
    assert found.samples == (
        Sample(f"{BASE}a/S1.vcf.gz"),
        Sample(f"{BASE}a/S2.bcf"),
        Sample(f"{BASE}b/S3.vcf.bgz"),
        Sample(f"{BASE}b/S4.bcf", f"{BASE}b/S4.csi"),
    )
    assert found.left_out == () and found.unindexed == ()
    assert found.files == 8 and found.calls == 1


def test_files_that_need_a_repair_are_kept_as_samples_without_index(s3):
    """No index, an uncompressed .vcf: discovery keeps them; the checks after it refuse them with their hint."""
    put(s3, "S1.vcf.gz", "S2.vcf", "S3.bcf", "S3.bcf.csi")
    found = discover(S3Uri(BUCKET, "delivery/"), s3)
    assert [sample.uri for sample in found.samples] == [f"{BASE}S1.vcf.gz", f"{BASE}S2.vcf", f"{BASE}S3.bcf"]
    assert found.unindexed == (f"{BASE}S1.vcf.gz", f"{BASE}S2.vcf")
    assert found.left_out == ()


def test_include_and_exclude_are_globs_on_the_path_under_the_prefix_and_star_crosses_slashes():
    files = dict.fromkeys(
        ["x/y/S1.vcf.gz", "x/y/S1.vcf.gz.csi", "x/S2.bcf", "x/S2.bcf.csi", "old/S3.vcf.gz", "S4.vcf.gz", "S5.bcf"], 1
    )
    samples, left_out, _ = classify(files, "/d/", include=("*.vcf.gz", "x/*"), exclude=("old/*", "*/S2.*"))
    assert [sample.uri for sample in samples] == ["/d/S4.vcf.gz", "/d/x/y/S1.vcf.gz"]
    assert {left.uri: left.reason for left in left_out} == {
        "/d/S5.bcf": "not matched by --include",
        "/d/old/S3.vcf.gz": "excluded by --exclude old/*",
        "/d/x/S2.bcf": "excluded by --exclude */S2.*",
        "/d/x/S2.bcf.csi": "the index of a file left out (x/S2.bcf)",  # an index goes with its data file
    }


def test_every_file_left_out_is_listed_with_its_reason(s3):
    put(s3, "S1.vcf.gz", "S1.vcf.gz.csi", "S1.tbi")  # a second index
    put(s3, "lost.vcf.gz.tbi", "gone.csi")  # indexes without data
    put(s3, "run1/S2.vcf.gz", "run2/S2.bcf", "run2/S2.bcf.csi")  # two files of one sample
    put(s3, "README.txt", "S1.vcf.gz.md5", "S3.bam", "S3.bam.csi")  # not samples
    put(s3, "tmp/S4.vcf.gz", "tmp/S4.vcf.gz.csi")  # excluded
    s3.put_object(Bucket=BUCKET, Key="delivery/empty-folder/", Body=b"")  # a console's folder: no file
    s3.put_object(Bucket=BUCKET, Key="delivery/x//S5.bcf", Body=b"x")  # the jobs would not reach it
    found = discover(S3Uri(BUCKET, "delivery/"), s3, exclude=("tmp/*",))
    assert found.samples == (Sample(f"{BASE}S1.vcf.gz"),)
    not_a_sample = "a file type not ingestible: samples are .vcf.gz, .vcf.bgz, .bcf or .vcf files"
    assert reasons(found) == {
        "S1.tbi": "another index of S1.vcf.gz (the index beside it is used)",
        "lost.vcf.gz.tbi": "an index without its data file",
        "gone.csi": "an index without its data file",
        "run1/S2.vcf.gz": "two files of one sample (S2): also run2/S2.bcf; keep one with --exclude",
        "run2/S2.bcf": "two files of one sample (S2): also run1/S2.vcf.gz; keep one with --exclude",
        "run2/S2.bcf.csi": "the index of a file left out (run2/S2.bcf)",
        "README.txt": not_a_sample,
        "S1.vcf.gz.md5": not_a_sample,
        "S3.bam": not_a_sample,
        "S3.bam.csi": "the index of a file left out (S3.bam)",
        "tmp/S4.vcf.gz": "excluded by --exclude tmp/*",
        "tmp/S4.vcf.gz.csi": "the index of a file left out (tmp/S4.vcf.gz)",
        "x//S5.bcf": "an empty path segment (//) in its key, which the jobs do not reach as written",
    }
    lines = found.lines()
    assert lines[0] == f"Found 1 samples under {BASE} (15 files, 1 list calls); 13 files left out:"
    assert f"  left out {BASE}README.txt: {not_a_sample}" in lines
    assert found.document()["left_out"][0] == {"uri": f"{BASE}README.txt", "reason": not_a_sample}


def test_stderr_shows_a_few_files_of_each_reason_and_json_lists_them_all():
    files = dict.fromkeys([f"notes{i}.txt" for i in range(SHOWN_PER_REASON + 5)] + ["S1.bcf"], 1)
    samples, left_out, unindexed = classify(files, "/d/")
    found = Discovered(LocalPath("/d/"), tuple(samples), tuple(left_out), tuple(unindexed), len(files))
    lines = found.lines()
    assert len(lines) == 1 + SHOWN_PER_REASON + 1
    assert lines[-1].startswith("  ... and 5 more (a file type not ingestible") and lines[-1].endswith(
        "--json lists all"
    )
    assert len(found.document()["left_out"]) == SHOWN_PER_REASON + 5
    assert found.document()["without_index"] == found.document()["samples"] == ["/d/S1.bcf"]


# -- Where the samples are: a prefix, a directory, or a samples file ----------------------------------------------


def test_what_samples_names_a_prefix_a_directory_or_a_samples_file(tmp_path):
    (tmp_path / "list.txt").write_text("s3://b/x.bcf\n")
    assert samples_source("s3://bucket-name/delivery", local=False) == S3Uri(BUCKET, "delivery/")
    assert samples_source("s3://bucket-name", local=False) == S3Uri(BUCKET, "")
    with pytest.raises(InputError, match="has an empty path segment"):
        samples_source("s3://bucket-name/a//b/", local=False)
    assert samples_source(str(tmp_path), local=True) == LocalPath(f"{tmp_path}/")
    assert samples_source(str(tmp_path / "list.txt"), local=True) is None
    assert samples_source("missing.txt", local=False) is None  # read as a samples file: it says it is missing
    with pytest.raises(InputError, match="is a directory: only jobs run on this machine"):
        samples_source(str(tmp_path), local=False)


def test_a_local_directory_is_walked_recursively(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "S1.vcf.gz").write_bytes(b"x")
    (tmp_path / "a" / "b" / "S1.vcf.gz.tbi").write_bytes(b"x")
    (tmp_path / "S2.bcf").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "link.bcf").symlink_to(tmp_path / "S2.bcf")  # a link to a file is a file
    found = discover(LocalPath(f"{tmp_path}/"), None)
    assert [sample.uri for sample in found.samples] == [f"{tmp_path}/S2.bcf", f"{tmp_path}/a/b/S1.vcf.gz",
                                                         f"{tmp_path}/link.bcf"]  # fmt: skip
    assert found.unindexed == (f"{tmp_path}/S2.bcf", f"{tmp_path}/link.bcf")
    assert [left.uri for left in found.left_out] == [f"{tmp_path}/notes.txt"]
    assert found.files == 5 and found.calls == 0


# -- The listing: paginated, in pieces listed at once --------------------------------------------------------


def test_more_than_a_thousand_keys_are_all_found_in_pieces_listed_at_once(s3):
    keys = [f"batch{i % 3}/S{i:05d}.vcf.gz{suffix}" for i in range(1300) for suffix in ("", ".csi")]
    put(s3, *keys)
    s3.put_object(Bucket=BUCKET, Key="delivery-other/S0.vcf.gz", Body=b"x")  # beside the prefix, not under it
    listing = list_prefix(s3, BUCKET, "delivery/")
    assert listing.sizes == list_sequentially(s3, BUCKET, "delivery/").sizes
    assert sorted(listing.sizes) == sorted(f"delivery/{key}" for key in keys)
    assert 3 <= listing.calls <= 60
    found = discover(S3Uri(BUCKET, "delivery/"), s3)
    assert len(found.samples) == 1300 and found.left_out == () and found.calls == listing.calls


def test_a_full_page_is_cut_at_its_counters_next_values():
    """A page from S000000 to S000499: S0005-S0009 in one piece (a page, as the page shows), S001…S009 each."""
    last = "p/S000499.vcf.gz.tbi"
    points = split_points("p/S000000.vcf.gz", last, None, "p/", 1000)
    assert points == ["p/S0009", *(f"p/S00{digit}" for digit in "123456789"), "p/S00:"]
    pieces = pieces_after("p/S000000.vcf.gz", last, None, "p/", 1000)
    assert pieces[0] == Piece(last, "p/S0009", "p/S000")
    assert pieces[1] == Piece("p/S0008\U0010ffff", "p/S001", "p/S00")  # from p/S0009 on, until p/S001
    assert pieces[2] == Piece("p/S000\U0010ffff", "p/S002", "p/S001")  # one counter value: under its own prefix
    assert pieces[-2] == Piece("p/S008\U0010ffff", "p/S00:", "p/S009")  # the class's end makes the last one so too
    assert pieces[-1] == Piece("p/S009\U0010ffff", None, "p/")  # S01 and on: one piece, cut by its first page


class HeldListing:
    """ListObjectsV2 over keys held in memory (Prefix, StartAfter, 1,000 keys a page), as S3 orders them."""

    def __init__(self, keys: list[str]):
        self.keys = sorted(keys)  # code point order is UTF-8 byte order, S3's
        self.calls = 0

    def list_objects_v2(self, Bucket: str, Prefix: str, StartAfter: str = "") -> dict[str, Any]:
        self.calls += 1
        first = bisect_right(self.keys, StartAfter) if StartAfter else 0
        under = [key for key in self.keys[first:] if key.startswith(Prefix)]
        page = under[:1000]
        return {"Contents": [{"Key": key, "Size": 1} for key in page], "IsTruncated": len(under) > 1000}


LAYOUTS = {
    "one folder": lambda i, rng: f"p/S{i:06d}.vcf.gz",
    "folders": lambda i, rng: f"p/batch{i % 7:03d}/S{i:06d}.bcf",
    "a folder a sample": lambda i, rng: f"p/S{i:05d}/S{i:05d}.bcf",
    "hex": lambda i, rng: f"p/{rng.getrandbits(48):012x}.vcf.gz",
    "mixed names": lambda i, rng: f"p/{rng.choice(['HG', 'NA', 'sample_', 'Ü', 'z-'])}{rng.randrange(10**6)}.vcf.gz",
    "dates": lambda i, rng: f"p/2026-{1 + i % 12:02d}-{1 + i % 28:02d}/run{i}/S{i}.bcf",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_pieces_cover_every_key_once_whatever_the_names(layout):
    """Nothing missed, nothing twice, under the prefix only (a key equal to it too), in few calls."""
    rng = random.Random(7)
    keys = sorted({LAYOUTS[layout](i, rng) + suffix for i in range(6000) for suffix in ("", ".csi")})
    held = HeldListing([*keys, "p", "o/S1.bcf", "q/S1.bcf", "p/"])
    listing = list_prefix(held, BUCKET, "p/", workers=4)
    assert sorted(listing.sizes) == sorted([*keys, "p/"]) and listing.calls == held.calls
    # Pages, and the values a counter never reaches: at most 10 a page where folders hold 2 pages each (bench/
    # discovery.py measures 100,000 keys: 1.5 to 2 calls a page).
    assert len(keys) / 1000 < listing.calls <= 10 * len(keys) / 1000, listing.calls


# -- The command line -------------------------------------------------------------------------------------


def test_include_with_a_samples_file_is_refused(aws, samples_file, run_ingest):
    result = run_ingest("--dataset-uri", "s3://my-bucketname/ds", "--samples", str(samples_file(2)),
                        "--metadata-s3", "bucket2-name", "--include", "*.bcf", "--dry-run")  # fmt: skip
    assert result.exit_code == 2 and result.stdout == ""
    assert "--include and --exclude choose among the files under a prefix or directory" in result.stderr


def test_a_prefix_with_no_sample_says_why_and_spends_nothing(aws, run_ingest):
    aws.s3.put_object(Bucket=BUCKET, Key="delivery/README.txt", Body=b"x")
    aws.s3.put_object(Bucket=BUCKET, Key="list.txt", Body=b"s3://bucket-name/x.bcf\n")
    common = ["--dataset-uri", "s3://my-bucketname/ds", "--metadata-s3", "bucket2-name", "--dry-run"]
    result = run_ingest(*common, "--samples", BASE)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"left out {BASE}README.txt: a file type not ingestible" in result.stderr
    assert f"Error: --samples {BASE}: none of its 1 files is a VCF/BCF sample to ingest" in result.stderr
    result = run_ingest(*common, "--samples", f"s3://{BUCKET}/list.txt")
    assert result.exit_code == 2
    assert f"--samples s3://{BUCKET}/list.txt is a file on S3, not a prefix" in result.stderr
    result = run_ingest(*common, "--samples", f"s3://{BUCKET}/nothing/")
    assert result.exit_code == 2 and f"--samples s3://{BUCKET}/nothing/ holds no file" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Contents" not in aws.s3.list_objects_v2(Bucket="bucket2-name")  # nothing written


def test_a_submission_json_carries_the_discovery_and_quiet_keeps_it_off_stderr(aws, run_ingest):
    local_aws.put_samples(2)
    aws.s3.put_object(Bucket=BUCKET, Key="samples/notes.txt", Body=b"x")
    result = run_ingest("--dataset-uri", "s3://my-bucketname/ds", "--samples", f"s3://{BUCKET}/samples/",
                        "--metadata-s3", "bucket2-name", "--json", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Found" not in result.stderr and "left out" not in result.stderr  # --quiet: in the JSON document only
    document = json.loads(result.stdout)
    assert document["discovery"]["samples"] == [f"s3://{BUCKET}/samples/1.bcf", f"s3://{BUCKET}/samples/2.bcf"]
    assert document["discovery"]["left_out"] == [
        {"uri": f"s3://{BUCKET}/samples/notes.txt",
         "reason": "a file type not ingestible: samples are .vcf.gz, .vcf.bgz, .bcf or .vcf files"}
    ]  # fmt: skip
    assert len(document["submitted"]["ingest-1"]) == 1
    bucket, _, key = document["record"].removeprefix("s3://").partition("/")
    options = json.loads(aws.text(bucket, key))["options"]
    assert (options["samples"], options["include"], options["exclude"]) == (f"s3://{BUCKET}/samples/", [], [])
    assert options["samples_count"] == 2


def test_the_command_that_resumes_a_run_finds_its_samples_with_its_filters():
    record = replace(recorded_run({"ingest-1": 1}), options={
        "samples": f"s3://{BUCKET}/delivery/", "include": ["*.bcf"], "exclude": ["old/*", "tmp/*"],
        "metadata_s3": "bucket2-name"})  # fmt: skip
    resume, _ = finish_commands(record, record.target)
    assert f"--samples s3://{BUCKET}/delivery/ --include '*.bcf' --exclude 'old/*' --exclude 'tmp/*' " in resume
    assert resume.endswith("--resume ingest-r1")


def test_the_real_script_finds_the_samples_of_a_prefix_dry_run_json(moto_server, tmp_path):
    """batch-ingest.py --samples s3://bucket/prefix/ as a user runs it: the plan holds what was found."""
    local_aws.put_samples(3)  # s3://bucket-name/samples/{1,2,3}.bcf with their .csi
    s3 = boto3.client("s3", region_name="us-east-1")
    for key in ("samples/sub/4.bcf", "samples/sub/4.bcf.csi", "samples/old/5.bcf", "samples/notes.txt",
                "samples/6.bcf.csi"):  # fmt: skip
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"BCF\x02\x02")
    result = run_script(
        "batch-ingest.py", "--dataset-uri", "s3://my-bucketname/ds", "--samples", f"s3://{BUCKET}/samples/",
        "--exclude", "old/*", "--metadata-s3", "bucket2-name", "--job-queue", local_aws.JOB_QUEUE,
        "--job-definition", local_aws.JOB_DEFINITION, "--num-jobs", "2", "--dry-run", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    prefix = f"s3://{BUCKET}/samples/"
    found = document["discovery"]
    assert found["source"] == prefix and found["files"] == 11
    assert found["samples"] == [f"{prefix}1.bcf", f"{prefix}2.bcf", f"{prefix}3.bcf", f"{prefix}sub/4.bcf"]
    assert found["list_calls"] == 1 and found["without_index"] == []
    assert found["left_out"] == [
        {"uri": f"{prefix}6.bcf.csi", "reason": "an index without its data file"},
        {"uri": f"{prefix}notes.txt", "reason": "a file type not ingestible: samples are .vcf.gz, .vcf.bgz, .bcf "
         "or .vcf files"},
        {"uri": f"{prefix}old/5.bcf", "reason": "excluded by --exclude old/*"},
    ]  # fmt: skip
    stores = [job for job in document["jobs"] if job["stage"].startswith("ingest")]
    assert [job["samples"] for job in stores] == [2, 2]
    assert f"Found 4 samples under {prefix} (11 files, 1 list calls); 3 files left out:" in result.stderr
    assert f"  left out {prefix}old/5.bcf: excluded by --exclude old/*" in result.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket="bucket2-name")  # a dry run writes nothing


def test_a_sample_found_without_index_is_refused_with_its_hint(tmp_path, monkeypatch, aws):
    """A local directory (the local executor, a stand-in tiledbvcf): the preflight's refusal, as for a samples file."""
    install_standin(tmp_path, monkeypatch)
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    (delivery / "S1.vcf.gz").write_bytes(bgzip_vcf(["S1"]))
    (delivery / "S1.vcf.gz.csi").write_bytes(b"i")
    (delivery / "S2.vcf").write_text("##fileformat=VCFv4.2\n")
    args = ["--executor", "local", "--dataset-uri", str(tmp_path / "ds"), "--samples", str(delivery),
            "--metadata-s3", str(tmp_path / "meta"), "--dry-run"]  # fmt: skip
    result = invoke(INGEST.main, args)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"Found 2 samples under {delivery}/ (3 files); 0 files left out" in result.stderr
    assert f"sample {delivery}/S2.vcf has no index" in result.stderr and "compress it with bgzip" in result.stderr
    assert not (tmp_path / "meta").exists()


# -- The real tiledbvcf ingests what was found ------------------------------------------------------------


@needs_tiledbvcf
def test_a_local_directory_is_found_and_ingested_by_the_real_tiledbvcf(here):
    delivery = here / "delivery"
    bcfs = cohort.make_cohort(delivery / "run1", 3, records=50)
    vcfs = cohort.make_cohort(delivery / "run2" / "deep", 2, records=50, fmt="vcf.gz", prefix="T")
    cohort.make_cohort(delivery / "withdrawn", 1, records=50, prefix="W")
    (delivery / "run1" / "md5sums.txt").write_text("0\n")
    result = run_script(
        "batch-ingest.py", "--executor", "local", "--dataset-uri", str(here / "ds"), "--samples", str(delivery),
        "--exclude", "withdrawn/*", "--metadata-s3", str(here / "meta"), "--vcpus", "1", "--memory", "1024",
        "--num-jobs", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"Found 5 samples under {delivery}/ (13 files); 3 files left out:" in result.stderr
    assert f"  left out {delivery}/withdrawn/W0000.bcf: excluded by --exclude withdrawn/*" in result.stderr
    names = [path.name.split(".")[0] for path in [*bcfs, *vcfs]]
    assert sorted(listed(here / "ds")) == sorted(names) == ["S0000", "S0001", "S0002", "T0000", "T0001"]


def test_a_relative_directory_gives_absolute_sample_paths(tmp_path, monkeypatch):
    """The jobs do not run in this directory: the samples they are given are absolute paths."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "S1.bcf").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    source = samples_source("d", local=True)
    assert source == LocalPath(f"{tmp_path}/d/")
    assert discover(source, None).samples == (Sample(f"{tmp_path}/d/S1.bcf"),)
