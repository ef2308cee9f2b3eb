"""Never twice, never lost: earlier runs of a dataset, skipping, resuming."""

from __future__ import annotations

import local_aws
from conftest import DATASET, base, bgzip_vcf, consume_manifests, make_dataset, manifest_of, record_of

CONSOLIDATION = ["consolidate-fragment-meta", "consolidate-commits", "vacuum-fragment-meta", "vacuum-commits"]


def stores(aws) -> list[dict]:
    return [job for job in aws.submitted if job["containerOverrides"]["command"][0] == "store"]


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
    assert again.exit_code == 5  # nothing submitted, but samples wait for a failed run: not a success
    assert "skipped 4 samples already ingested by earlier runs" in again.stderr
    assert f"skipped 2 samples of failed jobs of run {record_of(aws, first.stderr)['run_id']}" in again.stderr
    assert "Nothing to ingest: no job submitted" in again.stderr
    assert again.stdout == "" and aws.submitted == []

    with samples.open("a") as handle:
        handle.write("".join(f"{uri}\n" for uri in local_aws.put_samples(8)[6:]))
    more = run_ingest(*base(samples), "--num-jobs", "3")
    assert more.exit_code == 0, more.stderr
    manifests = [aws.text(*manifest_of(job)[5:].split("/", 1)) for job in stores(aws)]
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
    assert result.exit_code == 0 and len(stores(aws)) == 1
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

    result = run_ingest(*base(samples), "--num-jobs", "7", "--balance", "bytes", "--resume", record["run_id"])
    assert result.exit_code == 0, result.stderr
    assert f"resuming run {record['run_id']}: resubmitting 3 jobs that did not succeed" in result.stderr
    assert "--resume keeps the run's original manifests: --balance does not apply" in result.stderr
    names = [job["jobName"] for job in aws.submitted]
    # Each resumed batch is consolidated again.
    assert names == [
        "tiledbvcf-ingest-b1-j2", *[f"tiledbvcf-{c}-b1" for c in CONSOLIDATION],
        "tiledbvcf-ingest-b2-j2", "tiledbvcf-ingest-b2-j3", *[f"tiledbvcf-{c}-b2" for c in CONSOLIDATION],
    ]  # fmt: skip
    for job in aws.submitted:
        # The very same command: same manifest, same sample batch size, so store --resume matches.
        assert job["containerOverrides"]["command"] == original[job["jobName"]]["containerOverrides"]["command"]
    (consolidated,) = [line for line in result.stderr.splitlines() if "after ingestion batch 1:" in line]
    last_of_b1 = consolidated.split()[-1]
    assert all(job["dependsOn"] == [{"jobId": last_of_b1}] for job in aws.submitted[5:7])
    assert [line.split()[:3] for line in result.lines] == [["Submitted", "ingestion", "job(s)"]] * 2
    new_record = record_of(aws, result.stderr)
    assert new_record["options"]["resumes"] == record["run_id"]
    # Nothing new was uploaded: the original manifests are reused.
    assert not [
        k for k in aws.keys("bucket2-name", f"tiledbvcf-batch/runs/{new_record['run_id']}/") if k.endswith(".txt")
    ]


def test_a_failed_consolidation_fails_no_sample_and_resume_consolidates(aws, samples_file, run_ingest, monkeypatch):
    samples = samples_file(4)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # every job fails, the consolidation too...
    first = run_ingest(*base(samples), "--num-jobs", "2")
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER")
    record = record_of(aws, first.stderr)
    make_dataset(aws)
    consume_manifests(aws, record, [0, 1])  # ...but both ingestion jobs had ingested
    aws.submitted.clear()

    again = run_ingest(*base(samples), "--num-jobs", "2")
    assert again.exit_code == 0, again.stderr  # not 5: no sample waits for a failed job
    assert "skipped 4 samples already ingested by earlier runs" in again.stderr
    assert "failed jobs" not in again.stderr and aws.submitted == []

    resumed = run_ingest(*base(samples), "--resume", record["run_id"])
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming run {record['run_id']}: its ingestion jobs succeeded, consolidating again" in resumed.stderr
    assert [job["jobName"] for job in aws.submitted] == [f"tiledbvcf-{c}-b1" for c in CONSOLIDATION]
    assert "dependsOn" not in aws.submitted[0]
    assert resumed.stdout == ""  # no documented line: consolidation's goes to stderr
    assert "Submitted consolidation job(s) after ingestion batch 1: " in resumed.stderr


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
    assert result.exit_code == 2 and "still has 6 unfinished jobs" in result.stderr  # 2 ingestion, 4 consolidation


def test_a_name_already_ingested_from_another_file_is_refused(aws, run_ingest, tmp_path):
    """A corrected file under a new path: store --resume would keep the old records, silently."""
    for key in ("v1/NA1.vcf.gz", "v2/NA1.vcf.gz"):
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=bgzip_vcf(["NA1"]))
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".tbi", Body=b"i")
    first = tmp_path / "first.txt"
    first.write_text("s3://bucket-name/v1/NA1.vcf.gz\n")
    ran = run_ingest(*base(first), "--check-headers")
    assert ran.exit_code == 0, ran.stderr
    record = record_of(aws, ran.stderr)
    assert record["sample_names"] == {"s3://bucket-name/v1/NA1.vcf.gz": "NA1"}
    make_dataset(aws)
    consume_manifests(aws, record, [0])  # it was ingested
    corrected = tmp_path / "corrected.txt"
    corrected.write_text("s3://bucket-name/v2/NA1.vcf.gz\n")
    aws.submitted.clear()
    refused = run_ingest(*base(corrected), "--check-headers")
    assert refused.exit_code == 2 and aws.submitted == []
    assert refused.stderr.splitlines() == [
        f"Error: sample s3://bucket-name/v2/NA1.vcf.gz is NA1, which run {record['run_id']} already ingested from "
        "s3://bucket-name/v1/NA1.vcf.gz: tiledbvcf would keep the old records (store --resume skips a sample that "
        f"has data). To replace it, delete it first (tiledbvcf delete -u {DATASET} -s NA1), then ingest with "
        "--force-reingest"
    ]
    # Without --check-headers too: earlier runs recorded names, so this run's are read as well.
    unchecked = run_ingest(*base(corrected))
    assert unchecked.exit_code == 2 and "is NA1, which run" in unchecked.stderr and aws.submitted == []
    replaced = run_ingest(*base(corrected), "--check-headers", "--force-reingest")
    assert replaced.exit_code == 0 and len(stores(aws)) == 1
