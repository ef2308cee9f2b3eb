"""Check before spending, never lose or duplicate a sample, survive AWS faults."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import time

import pytest
from botocore.awsrequest import AWSResponse

import common
import local_aws

DATASET = "s3://my-bucketname/test-vcf-dataset"


def base(samples) -> list[str]:
    return ["--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name"]


def calls_of(aws, operation: str) -> list[dict]:
    return [params for name, params in aws.calls if name == operation]


def record_of(aws, stderr: str) -> dict:
    uri = stderr.split("recorded at ")[1].split()[0]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(aws.text(bucket, key))


def consume_manifests(aws, record: dict, which: list[int]) -> None:
    """What store --remove-sample-file does after a successful ingestion."""
    stores = [job for job in record["jobs"] if job["stage"].startswith("ingest")]
    for i in which:
        bucket, _, key = stores[i]["manifest"].removeprefix("s3://").partition("/")
        aws.s3.delete_object(Bucket=bucket, Key=key)


def manifest_of(job: dict) -> str:
    command = job["containerOverrides"]["command"]
    return command[command.index("-f") + 1]


def make_dataset(aws) -> None:
    aws.s3.put_object(Bucket="my-bucketname", Key="test-vcf-dataset/__tiledb_group.tdb", Body=b"")


# -- Preflight ---------------------------------------------------------------


def test_every_preflight_problem_is_listed_and_nothing_is_written(aws, samples_file, run_ingest, tmp_path):
    samples = samples_file(3)
    with samples.open("a") as handle:
        handle.write("s3://bucket-name/samples/missing.bcf\n")
        handle.write("s3://bucket-name/other/x.bcf\ts3://bucket-name/other/x.bcf.tbi\n")
    aws.s3.put_object(Bucket="bucket-name", Key="other/x.bcf", Body=b"x")
    aws.s3.delete_object(Bucket="bucket-name", Key="samples/2.bcf.csi")
    aws.batch.update_job_queue(jobQueue="tiledbvcf-job-queue", state="DISABLED")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: --job-queue tiledbvcf-job-queue is DISABLED: enable it or pick another queue",
        "Error: sample s3://bucket-name/samples/2.bcf has no index beside it (2.bcf.csi or .tbi): "
        "index it (bcftools index) or name the index after a TAB",
        "Error: sample s3://bucket-name/samples/missing.bcf does not exist: fix the samples file or upload it",
        "Error: index s3://bucket-name/other/x.bcf.tbi of sample s3://bucket-name/other/x.bcf does not exist",
    ]
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_samples_are_checked_by_listing_not_one_request_each(aws, run_ingest, tmp_path):
    from moto.s3.models import s3_backends

    keys = [f"cohort/s{i:05d}.vcf.gz" for i in range(2500)]
    backend = s3_backends["123456789012"]["aws"]  # seeding 5,000 objects through the API takes too long
    for key in keys:
        backend.put_object("bucket-name", key, b"v")
        backend.put_object("bucket-name", key + ".tbi", b"i")
    samples = tmp_path / "cohort.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in keys))
    aws.calls.clear()
    result = run_ingest(*base(samples), "--num-jobs", "5", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "2500 samples, 0.00 GiB, all present with their indexes" in result.stderr
    assert calls_of(aws, "HeadObject") == []
    listings = [c for c in calls_of(aws, "ListObjectsV2") if c["Bucket"] == "bucket-name"]
    assert len(listings) == 5  # 5,000 objects, 1,000 per call


def test_job_definition_must_be_active(aws, samples_file, run_ingest):
    arn = aws.batch.describe_job_definitions(jobDefinitionName="tiledbvcf-24h")["jobDefinitions"][0]["jobDefinitionArn"]
    aws.batch.deregister_job_definition(jobDefinition=arn)
    result = run_ingest(*base(samples_file(1)))
    assert result.exit_code == 2
    assert "--job-definition tiledbvcf-24h: no ACTIVE job definition of that name in us-east-1" in result.stderr


def test_metadata_location_must_be_writable(aws, samples_file, run_ingest):
    samples = samples_file(1)
    aws.fail_call("s3.PutObject", "AccessDenied")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --metadata-s3: cannot write to s3://bucket2-name/ (AccessDenied: injected AccessDenied)"
    )
    assert aws.submitted == []


def bgzip_vcf(samples: list[str]) -> bytes:
    header = "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT"
    return gzip.compress(("\t".join([header, *samples]) + "\nchr1\t1\t.\tA\tC\t.\t.\t.\tGT\n").encode())


def bgzip_bcf(sample: str) -> bytes:
    text = f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}\n\0".encode()
    return gzip.compress(b"BCF\x02\x02" + struct.pack("<I", len(text)) + text + b"\x00" * 32)


def test_check_headers_refuses_multi_sample_files_and_repeated_names(aws, run_ingest, tmp_path):
    files = {
        "h/a.vcf.gz": bgzip_vcf(["NA1"]),
        "h/b.bcf": bgzip_bcf("NA2"),
        "h/multi.vcf.gz": bgzip_vcf(["NA3", "NA4"]),
        "h/again.bcf": bgzip_bcf("NA1"),
        "h/plain.vcf": b"##fileformat=VCFv4.2\n",
    }
    for key, body in files.items():
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=body)
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".csi", Body=b"i")
    samples = tmp_path / "h.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in files))
    assert run_ingest(*base(samples), "--dry-run").exit_code == 0  # without the flag, headers are not read
    result = run_ingest(*base(samples), "--check-headers")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: sample s3://bucket-name/h/multi.vcf.gz has 2 samples in its header: tiledbvcf ingests "
        "single-sample files only (split it with bcftools +split)",
        "Error: sample name NA1 is in both s3://bucket-name/h/a.vcf.gz and s3://bucket-name/h/again.bcf: "
        "remove one of them from the samples file",
        "Error: sample s3://bucket-name/h/plain.vcf is not bgzip-compressed (tiledbvcf needs bgzipped, "
        "indexed VCF/BCF)",
    ]
    ranges = {c["Range"] for c in calls_of(aws, "GetObject") if c["Key"].startswith("h/")}
    assert ranges == {f"bytes=0-{common.HEADER_FIRST_READ - 1}"}


def test_header_larger_than_the_first_read_is_read_further(aws):
    # Contig names that do not compress away, as in real assemblies with many scaffolds.
    contigs = "".join(f"##contig=<ID={hashlib.sha1(str(i).encode()).hexdigest()}>\n" for i in range(4000))
    body = gzip.compress(
        f"##fileformat=VCFv4.2\n{contigs}#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tBIG\n".encode()
    )
    assert len(body) > 20_000
    aws.s3.put_object(Bucket="bucket-name", Key="big.vcf.gz", Body=body)
    assert common.read_header_sample_names(aws.s3, common.S3Uri("bucket-name", "big.vcf.gz")) == ["BIG"]


def test_dry_run_runs_the_preflight(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.s3.delete_object(Bucket="bucket-name", Key="samples/1.bcf")
    result = run_ingest(*base(samples), "--dry-run")
    assert result.exit_code == 2 and "samples/1.bcf does not exist" in result.stderr


# -- Faults while submitting ------------------------------------------------------


class Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def storm(aws, operation: str, status: int, body: bytes, times: int) -> list[int]:
    """Answer ``times`` requests of ``operation`` with a throttling error at the HTTP level."""
    answered = []

    def handler(request, **_):
        if len(answered) < times:
            answered.append(status)
            return AWSResponse(request.url, status, {}, Raw(body))
        return None

    aws.on(f"before-send.{operation}", handler)
    return answered


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_throttling_storm_on_submit_is_ridden_out(aws, samples_file, run_ingest, no_sleep):
    body = b'{"__type": "TooManyRequestsException", "message": "Too Many Requests"}'
    samples = samples_file(4)
    answered = storm(aws, "batch.SubmitJob", 429, body, times=6)
    result = run_ingest(*base(samples), "--num-jobs", "4")
    assert result.exit_code == 0, result.stderr
    assert answered == [429] * 6
    assert len(result.lines[1].split()) == 3 + 4
    assert len(aws.describe([line.split()[-1] for line in result.lines])) == 2
    assert no_sleep  # botocore backed off


def test_slowdown_storm_on_s3_is_ridden_out(aws, samples_file, run_ingest, no_sleep):
    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    samples = samples_file(4)
    answered = storm(aws, "s3.PutObject", 503, body, times=5)
    result = run_ingest(*base(samples), "--num-jobs", "4")
    assert result.exit_code == 0, result.stderr
    assert answered == [503] * 5
    run = record_of(aws, result.stderr)
    stores = [job for job in run["jobs"] if job["stage"] == "ingest-1"]
    assert [len(aws.text(*job["manifest"][5:].split("/", 1)).splitlines()) for job in stores] == [1, 1, 1, 1]


def test_submissions_are_paced_under_the_account_limit(aws, samples_file, run_ingest, monkeypatch):
    now = [0.0]
    waits = []
    real_pacer = common.Pacer

    def fake_pacer(rate):
        waits.append(rate)
        return real_pacer(rate, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))

    monkeypatch.setattr(common, "Pacer", fake_pacer)
    result = run_ingest(*base(samples_file(30)), "--num-jobs", "30")
    assert result.exit_code == 0, result.stderr
    assert waits == [common.SUBMITS_PER_SECOND] and common.SUBMITS_PER_SECOND < 50
    assert now[0] == pytest.approx(30 / common.SUBMITS_PER_SECOND)  # 31 submits, the first one at once


def test_keep_partial_keeps_the_jobs_and_says_what_is_left(aws, samples_file, run_ingest):
    aws.fail_call("batch.SubmitJob", "ServerException", after=2)
    result = run_ingest(*base(samples_file(4)), "--num-jobs", "4", "--keep-partial")
    assert result.exit_code == 1
    error = result.stderr.splitlines()[-1]
    run_id = error.split("submission of run ")[1].split()[0]
    assert f"kept 2 submitted job(s) and 6 file(s) under s3://bucket2-name/tiledbvcf-batch/runs/{run_id}/" in error
    assert f"the same command plus --resume {run_id}" in error
    assert "python batch-runs.py cancel s3://bucket2-name/tiledbvcf-batch/runs/" in error
    record = json.loads(aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run_id}/run.json"))
    assert [job["job_id"] is not None for job in record["jobs"]] == [True, True, False, False, False]


def test_a_rollback_that_cannot_finish_never_leaves_a_record_without_its_manifests(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.fail_call("batch.SubmitJob", "ServerException", after=1)
    aws.fail_call("s3.DeleteObject", "AccessDenied", after=2)  # the write probe and one more deletion work
    result = run_ingest(*base(samples), "--num-jobs", "2")
    assert result.exit_code == 1
    assert "tried to undo it but these remain, remove them by hand" in result.stderr
    left = aws.keys("bucket2-name", "tiledbvcf-batch/runs/")
    assert any(key.endswith("/run.json") for key in left)
    assert len([key for key in left if key.endswith(".txt")]) == 2  # the record's manifests are all still there
    assert aws.keys("bucket2-name", "tiledbvcf-batch/datasets/") == []  # the marker went first


def test_ctrl_c_while_submitting_removes_what_was_submitted(aws, samples_file, run_ingest):
    samples = samples_file(3)
    sent = []

    def interrupt(**_):
        sent.append(1)
        if len(sent) == 3:
            raise KeyboardInterrupt

    aws.on("before-parameter-build.batch.SubmitJob", interrupt)
    terminated = []
    aws.on("before-parameter-build.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"]))
    result = run_ingest(*base(samples), "--num-jobs", "3")
    assert result.exit_code == 1
    assert "failed after 2 of 4 jobs (interrupted); terminated the 2 job(s) already submitted" in result.stderr
    assert len(terminated) == 2
    assert aws.keys("bucket2-name") == []


# -- Never twice, never lost ------------------------------------------------------------


def test_rerun_skips_what_earlier_runs_ingested(aws, samples_file, run_ingest, monkeypatch):
    samples = samples_file(6)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # every job fails...
    first = run_ingest(*base(samples), "--num-jobs", "3")
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER")
    assert first.exit_code == 0, first.stderr
    make_dataset(aws)
    consume_manifests(aws, record_of(aws, first.stderr), [0, 1])  # ...but jobs 1 and 2 had ingested
    aws.submitted.clear()

    again = run_ingest(*base(samples), "--num-jobs", "3")
    assert again.exit_code == 0
    assert "skipped 4 samples already ingested by earlier runs" in again.stderr
    assert f"skipped 2 samples of failed jobs of run {record_of(aws, first.stderr)['run_id']}" in again.stderr
    assert "Nothing to ingest: no job submitted" in again.stderr
    assert again.stdout == "" and aws.submitted == []

    with samples.open("a") as handle:
        handle.write("".join(f"{uri}\n" for uri in local_aws.put_samples(8)[6:]))
    more = run_ingest(*base(samples), "--num-jobs", "3")
    assert more.exit_code == 0, more.stderr
    manifests = [aws.text(*manifest_of(job)[5:].split("/", 1)) for job in aws.submitted]
    assert "".join(manifests).splitlines() == [
        "s3://bucket-name/samples/7.bcf",
        "s3://bucket-name/samples/8.bcf",
    ]


def test_force_reingest_submits_everything(aws, samples_file, run_ingest):
    samples = samples_file(2)
    first = run_ingest(*base(samples))
    make_dataset(aws)
    consume_manifests(aws, record_of(aws, first.stderr), [0])
    aws.submitted.clear()
    result = run_ingest(*base(samples), "--force-reingest")
    assert result.exit_code == 0 and len(aws.submitted) == 1
    assert "skipped" not in result.stderr


def running(aws):
    def handler(parsed, **_):
        for job in parsed.get("jobs", []):
            job["status"] = "RUNNING"

    aws.on("after-call.batch.DescribeJobs", handler)


def test_samples_still_being_ingested_are_not_submitted_again(aws, samples_file, run_ingest):
    samples = samples_file(2)
    first = run_ingest(*base(samples))
    make_dataset(aws)
    running(aws)
    aws.submitted.clear()
    result = run_ingest(*base(samples))
    assert f"skipped 2 samples that jobs of run {record_of(aws, first.stderr)['run_id']} are still ingesting" in (
        result.stderr
    )
    assert aws.submitted == []


def test_no_second_creation_while_a_first_run_is_still_creating(aws, samples_file, run_ingest):
    samples = samples_file(2)
    run_ingest(*base(samples))
    running(aws)
    aws.submitted.clear()
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert "is still creating and ingesting s3://my-bucketname/test-vcf-dataset: wait for it" in result.stderr


def test_resume_resubmits_only_failed_jobs_with_their_original_manifests(aws, samples_file, run_ingest, monkeypatch):
    samples = samples_file(9)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    first = run_ingest(*base(samples), "--num-jobs", "3", "--incremental", "2", "--sample-batch-size", "4")
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER")
    original = {job["jobName"]: job for job in aws.submitted}
    record = record_of(aws, first.stderr)
    make_dataset(aws)
    consume_manifests(aws, record, [0, 2, 3])  # b1-j1, b1-j3 and b2-j1 succeeded
    aws.submitted.clear()

    result = run_ingest(*base(samples), "--num-jobs", "7", "--resume", record["run_id"])
    assert result.exit_code == 0, result.stderr
    assert f"resuming run {record['run_id']}: resubmitting 3 jobs that did not succeed" in result.stderr
    names = [job["jobName"] for job in aws.submitted]
    assert names == ["tiledbvcf-ingest-b1-j2", "tiledbvcf-ingest-b2-j2", "tiledbvcf-ingest-b2-j3"]
    for job in aws.submitted:
        # The very same command: same manifest, same sample batch size, so store --resume matches.
        assert job["containerOverrides"]["command"] == original[job["jobName"]]["containerOverrides"]["command"]
    b1 = aws.describe(result.lines[0].split()[-1:])[0]["jobId"]
    assert all(d == {"jobId": b1} for job in aws.submitted[1:] for d in job["dependsOn"])
    assert [line.split()[:3] for line in result.lines] == [["Submitted", "ingestion", "job(s)"]] * 2
    new_record = record_of(aws, result.stderr)
    assert new_record["options"]["resumes"] == record["run_id"]
    # Nothing new was uploaded: the original manifests are reused.
    assert not [
        k for k in aws.keys("bucket2-name", f"tiledbvcf-batch/runs/{new_record['run_id']}/") if k.endswith(".txt")
    ]


def test_resume_refuses_another_samples_file(aws, samples_file, run_ingest, tmp_path):
    samples = samples_file(3)
    first = run_ingest(*base(samples))
    other = tmp_path / "other.txt"
    other.write_text("".join(samples.read_text().splitlines(keepends=True)[:2]))
    result = run_ingest(*base(other), "--resume", record_of(aws, first.stderr)["run_id"])
    assert result.exit_code == 2
    assert "--samples lists 0 samples that run did not have and lacks 1 it had" in result.stderr


def test_resume_refuses_a_run_with_unfinished_jobs(aws, samples_file, run_ingest):
    samples = samples_file(2)
    first = run_ingest(*base(samples))
    running(aws)
    result = run_ingest(*base(samples), "--resume", record_of(aws, first.stderr)["run_id"])
    assert result.exit_code == 2 and "still has 2 unfinished jobs" in result.stderr


# -- Security ------------------------------------------------------------------------------


def test_hostile_sample_uris_stay_one_argument_in_the_manifest(aws, run_ingest, tmp_path):
    keys = ["odd/with space.bcf", "odd/quote'\"s.bcf", "odd/semi;rm -rf $HOME.bcf"]
    for key in keys:
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=b"x")
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".csi", Body=b"i")
    samples = tmp_path / "odd.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in keys))
    result = run_ingest(*base(samples))
    assert result.exit_code == 0, result.stderr
    manifest = manifest_of(aws.submitted[1])
    assert aws.text(*manifest[5:].split("/", 1)).splitlines() == [f"s3://bucket-name/{key}" for key in keys]


def test_kms_key_encrypts_manifests_and_record(aws, samples_file, run_ingest):
    result = run_ingest(*base(samples_file(1)), "--kms-key-id", "alias/tiledbvcf")
    assert result.exit_code == 0, result.stderr
    puts = [c for c in calls_of(aws, "PutObject") if c["Bucket"] == "bucket2-name"]
    assert len(puts) >= 4  # probe, manifest, record (twice), marker
    assert all(c["ServerSideEncryption"] == "aws:kms" and c["SSEKMSKeyId"] == "alias/tiledbvcf" for c in puts)


def test_secrets_never_reach_the_record_or_the_output(aws, samples_file, run_ingest):
    secret = "vfs.s3.aws_secret_access_key=TOPSECRET,vfs.s3.aws_session_token=TOKEN"
    result = run_ingest(*base(samples_file(1)), "--tiledb-config", secret, "--wait")
    assert result.exit_code == 0, result.stderr
    assert "TOPSECRET" not in result.stdout + result.stderr
    text = json.dumps(record_of(aws, result.stderr))
    assert "TOPSECRET" not in text and "TOKEN" not in text.replace("session_token", "")
