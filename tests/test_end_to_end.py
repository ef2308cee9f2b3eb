"""The real scripts as subprocesses, exactly as the README shows them, against a moto server on loopback."""

from __future__ import annotations

import json
import os
import re
import sys

import boto3
import pytest

from conftest import ROOT, UUID, run_script


@pytest.fixture
def readme_inputs(moto_server, samples_file):
    """The README examples' inputs on the moto server: 20 samples in samples.txt, the names file, the BED file."""
    samples_file(20)
    s3 = boto3.client("s3", region_name="us-east-1")
    names = "".join(f"SampleName{i}\n" for i in range(1, 11)).encode()
    s3.put_object(Bucket="my-bucketname", Key="10-names.txt", Body=names)
    s3.put_object(Bucket="my-bucketname", Key="bedfiles/sorted1000000.bed", Body=b"chr1\t0\t10\n")


def test_readme_examples_as_subprocesses(readme_inputs, tmp_path):
    ingest = run_script(
        "batch-ingest.py",
        "--dataset-uri",
        "s3://my-bucketname/test-vcf-dataset",
        "--samples",
        "samples.txt",
        "--metadata-s3",
        "bucket2-name",
        "--job-queue",
        "tiledbvcf-job-queue",
        "--job-definition",
        "tiledbvcf-24h",
        "--num-jobs",
        "10",
        cwd=tmp_path,
    )
    assert ingest.returncode == 0, ingest.stderr
    lines = ingest.stdout.splitlines()
    assert len(lines) == 2  # the documented lines; the consolidation's goes to stderr
    assert re.fullmatch(rf"Submitted array creation job {UUID}", lines[0])
    assert re.fullmatch(rf"Submitted ingestion job\(s\)( {UUID}){{10}}", lines[1])
    create_id = lines[0].split()[-1]
    ingest_ids = lines[1].split()[3:]

    batch = boto3.client("batch", region_name="us-east-1")
    described = batch.describe_jobs(jobs=[create_id, *ingest_ids])["jobs"]
    assert {d["status"] for d in described} == {"SUCCEEDED"}
    assert all(d["dependsOn"] == [{"jobId": create_id}] for d in described[1:])
    assert described[1]["container"]["command"][:3] == ["store", "-u", "s3://my-bucketname/test-vcf-dataset"]

    s3 = boto3.client("s3", region_name="us-east-1")
    (record_key,) = [
        k["Key"] for k in s3.list_objects_v2(Bucket="bucket2-name")["Contents"] if k["Key"].endswith("run.json")
    ]
    record = json.loads(s3.get_object(Bucket="bucket2-name", Key=record_key)["Body"].read())
    consolidation = re.search(rf"Submitted consolidation job\(s\) after ingestion batch 1:((?: {UUID}){{4}})\n",
                              ingest.stderr)  # fmt: skip
    assert consolidation, ingest.stderr
    assert [job["job_id"] for job in record["jobs"]] == [create_id, *ingest_ids, *consolidation.group(1).split()]

    # What the creation job would have left: moto's Batch runs no tiledbvcf.
    s3.put_object(Bucket="my-bucketname", Key="test-vcf-dataset/__tiledb_group.tdb", Body=b"")
    export = run_script(
        "batch-export.py",
        "--dataset-uri",
        "s3://my-bucketname/test-vcf-dataset",
        "--dest-s3",
        "s3://my-bucketname/bcf-exports/",
        "--samples",
        "s3://my-bucketname/10-names.txt",
        "--bed",
        "s3://my-bucketname/bedfiles/sorted1000000.bed",
        "--job-queue",
        "tiledbvcf-job-queue",
        "--job-definition",
        "tiledbvcf-24h",
        "--num-jobs",
        "2",
        cwd=tmp_path,
    )
    assert export.returncode == 0, export.stderr
    assert re.fullmatch(rf"Submitted export job\(s\) {UUID} {UUID}\n", export.stdout)


def test_bad_input_as_a_subprocess_is_one_line_and_exit_2(server, tmp_path):
    (tmp_path / "samples.txt").write_text("s3://bucket-name/samples/1.bcf\nsamples/2.bcf\n")
    result = run_script(
        "batch-ingest.py",
        "--dataset-uri",
        "s3://my-bucketname/ds",
        "--samples",
        "samples.txt",
        "--metadata-s3",
        "bucket2-name",
        "--job-queue",
        "tiledbvcf-job-queue",
        "--job-definition",
        "tiledbvcf-24h",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "Error: samples.txt line 2: sample 'samples/2.bcf' is not an S3 URI: write it as s3://bucket/path "
        "(local paths need --executor local)\n"
    )


def test_without_tiledbvcf_the_demo_says_how_to_get_one_shows_the_emulated_walkthrough_and_exits_2(tmp_path):
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TILEDBVCF": str(tmp_path / "no-tiledbvcf"), "PATH": os.path.dirname(sys.executable),
           "TMPDIR": str(tmp_path / "tmp")}  # fmt: skip
    result = run_script("demo/local_run.py", cwd=ROOT, env=env)
    assert result.returncode == 2, result.stdout + result.stderr  # the main job did not run
    assert "No real run: tiledbvcf" in result.stdout
    assert result.stdout.count("conda install -c conda-forge -c tiledb libtiledbvcf") == 1
    assert list((tmp_path / "tmp").iterdir()) == []  # the walkthrough leaves no temporary folder behind
    assert "Submitted array creation job" in result.stdout
    assert "Submitted export job(s)" in result.stdout
    assert "Finished waiting on 29 jobs:" in result.stdout  # creation, 2 x (10 ingestion, 4 consolidation)
    assert "$ python batch-runs.py status s3://bucket2-name/tiledbvcf-batch/runs/ingest-" in result.stdout
    assert "29/29 jobs finished" in result.stdout
