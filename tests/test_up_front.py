"""Accepted up front, failing hours later: what is refused before anything is written (exit 2), and what such
a refusal leaves behind (nothing)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from conftest import DATASET, EXPORT, INGEST, install_standin, invoke, make_dataset, needs_tiledbvcf, tiledbvcf
from samplefiles import bgzip_vcf
from tiledbvcf_batch.inputs import InputError
from tiledbvcf_batch.preflight import dataset_exists
from tiledbvcf_batch.storage import LocalPath, S3Uri

BED = "s3://my-bucketname/regions.bed"
NAMES = "s3://my-bucketname/names.txt"


def refused(result, *words: str) -> None:
    """Exit 2, one line naming the problem (and its fix), nothing on stdout."""
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr


def bucket_keys(aws, bucket: str) -> list[str]:
    return [item["Key"] for item in aws.s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture
def export_inputs(aws):
    make_dataset(aws, samples=("S1", "S2"))
    aws.s3.put_object(Bucket="my-bucketname", Key="names.txt", Body=b"S1\nS2\n")
    aws.s3.put_object(Bucket="my-bucketname", Key="regions.bed", Body=b"chr1\t0\t100\n")
    return {"--array": DATASET, "--dest-s3": "s3://my-bucketname/exports/", "--samples": NAMES, "--bed": BED}


# -- An S3 key with an empty path segment (//) -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["sample", "index", "--metadata-s3", "--dataset-uri"])
def test_an_s3_key_with_a_double_slash_is_refused_for_ingest(aws, samples_file, run_ingest, where):
    samples = samples_file(2)
    lines = samples.read_text().splitlines()
    args = {"--dataset-uri": DATASET, "--metadata-s3": "s3://bucket2-name/md"}
    if where == "sample":
        lines[1] = lines[1].replace("samples/", "samples//")
    elif where == "index":
        lines[1] += "\ts3://bucket-name//samples/2.bcf.csi"
    else:
        args[where] = args[where].replace("name/", "name//")
    samples.write_text("\n".join(lines) + "\n")
    result = run_ingest("--samples", str(samples), *[item for pair in args.items() for item in pair])
    refused(result, "empty path segment (//)", "single slashes")
    assert aws.submitted == [] and bucket_keys(aws, "bucket2-name") == []


@pytest.mark.parametrize("option", ["--dest-s3", "--bed", "--samples", "--metadata-s3", "--array"])
def test_an_s3_key_with_a_double_slash_is_refused_for_export(aws, export_inputs, run_export, option):
    args = {**export_inputs, "--metadata-s3": "s3://bucket2-name/md"}
    args[option] = args[option].replace("name/", "name//", 1).replace("s3://my-bucketname//", "s3://my-bucketname/x//")
    result = run_export(*[item for pair in args.items() for item in pair])
    refused(result, option, "empty path segment (//)")
    assert aws.submitted == [] and bucket_keys(aws, "bucket2-name") == []


# -- A dataset URI whose prefix holds other files ---------------------------------------------------------------


def test_ingest_into_the_samples_folder_is_refused(aws, samples_file, run_ingest):
    samples = samples_file(2)
    result = run_ingest("--dataset-uri", "s3://bucket-name/samples", "--samples", str(samples),
                        "--metadata-s3", "bucket2-name")  # fmt: skip
    refused(result, "--dataset-uri s3://bucket-name/samples holds files that are not a TileDB-VCF dataset",
            "'1.bcf'", "__tiledb_group.tdb")  # fmt: skip
    assert aws.submitted == [] and bucket_keys(aws, "bucket2-name") == []


def test_export_from_a_folder_of_other_files_is_refused(aws, export_inputs, samples_file, run_export):
    samples_file(1)
    args = {**export_inputs, "--array": "s3://bucket-name/samples", "--metadata-s3": "bucket2-name"}
    result = run_export(*[item for pair in args.items() for item in pair])
    refused(result, "--array s3://bucket-name/samples holds files that are not a TileDB-VCF dataset")
    assert aws.submitted == [] and bucket_keys(aws, "bucket2-name") == []


def test_what_marks_a_dataset(aws, tmp_path):
    aws.s3.put_object(Bucket="my-bucketname", Key="ds/__group/x", Body=b"")
    aws.s3.put_object(Bucket="my-bucketname", Key="ds/data/x", Body=b"")
    assert dataset_exists(aws.s3, S3Uri("my-bucketname", "ds"))  # a newer group: __group/
    assert not dataset_exists(aws.s3, S3Uri("my-bucketname", "nothing"))
    assert not dataset_exists(aws.s3, LocalPath(str(tmp_path / "none")))
    (tmp_path / "empty").mkdir()
    assert not dataset_exists(aws.s3, LocalPath(str(tmp_path / "empty")))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file.*not a TileDB-VCF dataset"):
        dataset_exists(aws.s3, LocalPath(str(tmp_path / "file")))


@needs_tiledbvcf
@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_dataset_made_by_the_real_tiledbvcf_is_one(tmp_path, request, where):
    if where == "local":
        s3, dataset, inside = None, LocalPath(str(tmp_path / "ds")), LocalPath(str(tmp_path / "ds" / "data"))
    else:
        request.getfixturevalue("moto_server")  # AWS_ENDPOINT_URL: tiledbvcf writes to the emulated S3
        s3, dataset, inside = boto3.client("s3", region_name="us-east-1"), S3Uri("my-bucketname", "ds"), None
    tiledbvcf("create", "-u", str(dataset))
    assert dataset_exists(s3, dataset)
    inside = inside or S3Uri("my-bucketname", "ds/data")
    with pytest.raises(InputError, match="not a TileDB-VCF dataset"):
        dataset_exists(s3, inside)  # an array of the dataset is no dataset


# -- Locally: mixed samples, the scratch path, leftovers --------------------------------------------------------


@pytest.fixture
def local(tmp_path, monkeypatch):
    """A stand-in tiledbvcf, the local state under the test's directory, and two local samples with indexes."""
    tiledbvcf = install_standin(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("TILEDBVCF_BATCH_STATE", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    for name, header in (("one.bcf", ["A"]), ("two.bcf", ["B", "C"])):
        (tmp_path / name).write_bytes(bgzip_vcf(header))
        (tmp_path / f"{name}.csi").write_bytes(b"i")
    return tiledbvcf.calls


def ingest_locally(tmp_path: Path, samples: list[str], *extra: str):
    (tmp_path / "samples.txt").write_text("".join(f"{line}\n" for line in samples))
    return invoke(INGEST.main, ["--executor", "local", "--vcpus", "1", "--metadata-s3", str(tmp_path / "meta" / "m"),
                                "--dataset-uri", str(tmp_path / "ds"), "--samples", "samples.txt", *extra])  # fmt: skip


def test_local_files_among_s3_samples_have_their_headers_read(aws, tmp_path, local):
    s3_sample = "s3://bucket-name/samples/1.bcf"
    for key in ("samples/1.bcf", "samples/1.bcf.csi"):
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=b"BCF\x02\x02")
    result = ingest_locally(tmp_path, [s3_sample, "two.bcf"])
    refused(result, f"sample {tmp_path / 'two.bcf'} has 2 samples in its header", "bcftools +split")
    assert local() == [] and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("scratch", ["missing", "a file"])
def test_a_scratch_path_that_cannot_be_used_is_refused_before_the_dataset_is_made(tmp_path, local, scratch):
    path = tmp_path / "scratch"
    if scratch == "a file":
        path.write_text("")
    result = ingest_locally(tmp_path, ["one.bcf"], "--scratch-path", str(path))
    refused(result, f"--scratch-path {path} does not exist (or is not a directory)", "mkdir -p")
    assert local() == [] and not (tmp_path / "ds").exists()


def test_a_read_only_scratch_path_is_refused_before_the_dataset_is_made(tmp_path, local, monkeypatch):
    (tmp_path / "scratch").mkdir()

    def read_only(*_, **__):
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr("tiledbvcf_batch.executors.local_setup.tempfile.mkdtemp", read_only)
    result = ingest_locally(tmp_path, ["one.bcf"], "--scratch-path", str(tmp_path / "scratch"))
    refused(result, "is not writable (Read-only file system)", "chmod u+w")
    assert local() == [] and not (tmp_path / "ds").exists()


def test_a_scratch_path_that_exists_is_taken(tmp_path, local):
    (tmp_path / "scratch").mkdir()
    result = ingest_locally(tmp_path, ["one.bcf"], "--scratch-path", str(tmp_path / "scratch"), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert list((tmp_path / "scratch").iterdir()) == []  # its check left nothing in it


def test_a_refused_run_leaves_no_folder_behind(tmp_path, local):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("not a dataset")
    result = ingest_locally(tmp_path, ["one.bcf"])
    refused(result, "holds files that are not a TileDB-VCF dataset")
    assert not (tmp_path / "meta").exists()  # neither the metadata folder nor its tiledbvcf-batch/
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "ds", "one.bcf", "one.bcf.csi", "samples.txt",
                                                          "two.bcf", "two.bcf.csi"]  # fmt: skip


def test_a_refused_local_export_leaves_no_folder_in_its_destination(tmp_path, local):
    (tmp_path / "names.txt").write_text("A\n")
    (tmp_path / "regions.bed").write_text("chr1\t0\t100\n")
    result = invoke(EXPORT.main, ["--executor", "local", "--array", str(tmp_path / "nowhere"), "--samples",
                                  "names.txt", "--bed", "regions.bed", "--dest-s3", str(tmp_path / "out" / "x"),
                                  "--metadata-s3", str(tmp_path / "meta")])  # fmt: skip
    refused(result, "does not exist")
    assert not (tmp_path / "out").exists() and not (tmp_path / "meta").exists()
