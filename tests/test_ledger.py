"""Never twice, never lost: earlier runs of a dataset, skipping, resuming."""

from __future__ import annotations

import re
from pathlib import Path

import local_aws
from conftest import DATASET, UUID, base, calls_of, consume_manifests, make_dataset, manifest_of, record_of
from samplefiles import bgzip_vcf

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


def corrected_delivery(aws, tmp_path) -> tuple[Path, Path]:
    """NA1 delivered twice: v1 (ingested), then a corrected file v2 at a new path, with a new sample NA2."""
    for key in ("v1/NA1.vcf.gz", "v2/NA1.vcf.gz", "v2/NA2.vcf.gz"):
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=bgzip_vcf([key.split("/")[1].split(".")[0]]))
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".tbi", Body=b"i")
    first, corrected = tmp_path / "first.txt", tmp_path / "corrected.txt"
    first.write_text("s3://bucket-name/v1/NA1.vcf.gz\n")
    corrected.write_text("s3://bucket-name/v2/NA1.vcf.gz\ns3://bucket-name/v2/NA2.vcf.gz\n")
    return first, corrected


REFUSED_NA1 = (
    f"Error: 1 samples are already in dataset {DATASET}: NA1 (s3://bucket-name/v2/NA1.vcf.gz). Storing them again "
    "would double their records: pass --skip-existing to ingest the others, or --replace to delete these from the "
    "dataset and store them again"
)


def test_a_name_the_dataset_holds_is_refused_whoever_stored_it(aws, run_ingest, tmp_path, fake_datasets):
    """Stored by hand (no run record anywhere), no --check-headers: the dataset itself says NA1 is there."""
    _, corrected = corrected_delivery(aws, tmp_path)
    make_dataset(aws)
    fake_datasets[DATASET] = frozenset({"NA1", "NA9"})
    refused = run_ingest(*base(corrected))
    assert refused.exit_code == 2 and aws.submitted == []
    assert refused.stderr.splitlines() == [REFUSED_NA1]
    assert aws.keys("bucket2-name") == [] and aws.keys("my-bucketname", "test-vcf-dataset.tiledbvcf-batch") == []
    skipped = run_ingest(*base(corrected), "--skip-existing")
    assert skipped.exit_code == 0, skipped.stderr
    assert "skipped 1 samples the dataset already holds: NA1 (s3://bucket-name/v2/NA1.vcf.gz)" in skipped.stderr
    (store,) = stores(aws)
    assert aws.text("bucket2-name", manifest_of(store).split("/", 3)[3]) == "s3://bucket-name/v2/NA2.vcf.gz\n"


def test_replace_deletes_first_then_stores(aws, run_ingest, tmp_path, fake_datasets):
    _, corrected = corrected_delivery(aws, tmp_path)
    make_dataset(aws)
    fake_datasets[DATASET] = frozenset({"NA1"})
    ran = run_ingest(*base(corrected), "--replace")
    assert ran.exit_code == 0, ran.stderr
    delete, store = aws.submitted[0], stores(aws)[0]
    # -b and the threads from the job's --memory and --vcpus (the defaults: 61440 MiB, 16)
    assert delete["containerOverrides"]["command"] == [
        "delete", "-u", DATASET, "-s", "NA1", "-b", "30464", "--tiledb-config",
        "sm.compute_concurrency_level=16,sm.io_concurrency_level=32",
    ]  # fmt: skip
    assert delete["jobName"] == "tiledbvcf-delete-1"
    ids = re.findall(rf"Submitted sample deletion job ({UUID})", ran.stderr)
    assert [dep["jobId"] for dep in store["dependsOn"]] == ids
    assert "replacing 1 samples the dataset holds (deleted first, then stored): NA1" in ran.stderr


def test_unreadable_dataset_falls_back_on_the_records_with_a_warning(aws, run_ingest, tmp_path, fake_datasets):
    first, corrected = corrected_delivery(aws, tmp_path)
    ran = run_ingest(*base(first), "--check-headers")
    record = record_of(aws, ran.stderr)
    make_dataset(aws)
    consume_manifests(aws, record, [0])  # it was ingested
    fake_datasets[DATASET] = "TileDB: access denied"
    aws.submitted.clear()
    refused = run_ingest(*base(corrected))
    assert refused.exit_code == 2 and aws.submitted == []
    assert refused.stderr.splitlines()[-1] == REFUSED_NA1
    assert f"WARNING: cannot read the samples of dataset {DATASET} (TileDB: access denied)" in refused.stderr


def put_named(aws, names: list[str]) -> list[str]:
    for name in names:
        aws.s3.put_object(Bucket="bucket-name", Key=f"named/{name}.vcf.gz", Body=bgzip_vcf([name]))
        aws.s3.put_object(Bucket="bucket-name", Key=f"named/{name}.vcf.gz.tbi", Body=b"i")
    return [f"s3://bucket-name/named/{name}.vcf.gz" for name in names]


def test_headers_are_read_only_for_new_samples_of_a_dataset_that_holds_samples(aws, run_ingest, tmp_path):
    samples = tmp_path / "samples.txt"
    samples.write_text("".join(f"{uri}\n" for uri in put_named(aws, ["NA0", "NA1", "NA2"])))
    first = run_ingest(*base(samples))
    assert first.exit_code == 0, first.stderr
    assert [call for call in calls_of(aws, "GetObject") if "Range" in call] == []  # a new dataset: no header read
    make_dataset(aws, samples=("NA0", "NA1", "NA2"))
    consume_manifests(aws, record_of(aws, first.stderr), [0])
    with samples.open("a") as handle:
        handle.write("".join(f"{uri}\n" for uri in put_named(aws, ["NA3", "NA4"])))
    aws.calls.clear()
    more = run_ingest(*base(samples))
    assert more.exit_code == 0, more.stderr
    assert "skipped 3 samples already ingested by earlier runs" in more.stderr
    ranged = sorted(call["Key"] for call in calls_of(aws, "GetObject") if "Range" in call)
    assert ranged == ["named/NA3.vcf.gz", "named/NA4.vcf.gz"]  # one ranged GET a new sample, none for the others
    assert record_of(aws, more.stderr)["sample_names"] == {
        "s3://bucket-name/named/NA3.vcf.gz": "NA3",
        "s3://bucket-name/named/NA4.vcf.gz": "NA4",
    }


def test_replace_is_refused_on_a_legacy_dataset(aws, samples_file, run_ingest):
    refused = run_ingest(*base(samples_file(1)), "--register", "--replace")
    assert refused.exit_code == 2 and aws.submitted == []
    assert "--replace needs tiledbvcf delete, which legacy (v2/v3, --register) datasets do not have" in refused.stderr


def test_a_run_being_submitted_holds_its_samples_until_its_claim_lapses(tmp_path):
    """Its record is saved before its first job: jobs without an id yet are in flight, not failed.

    Another run that read them as failed would say "resume that run" and exit 5, while the run goes on.
    """
    import datetime
    import time

    from stub_executor import StubExecutor, Timeline
    from tiledbvcf_batch.executors.jobs import RecordedJob
    from tiledbvcf_batch.ledger import FAILED, UNFINISHED, job_states
    from tiledbvcf_batch.record import RunRecord
    from tiledbvcf_batch.registry import CLAIM_GRACE
    from tiledbvcf_batch.storage import Storage

    manifests = [tmp_path / f"ingest-b001-j000{i}.txt" for i in (1, 2)]
    for manifest in manifests:
        manifest.write_text("s3://bucket-name/x.bcf\n")
    jobs = [RecordedJob(f"ingest-1-{i}", "ingest-1", f"n{i}", job_id, manifest=str(manifests[i - 1]),
                        samples=["s3://bucket-name/x.bcf"]) for i, job_id in ((1, "id-1"), (2, None))]  # fmt: skip

    def states(submitting: bool, age: float) -> list[str]:
        created = datetime.datetime.fromtimestamp(time.time() - age, datetime.timezone.utc)
        record = RunRecord("ingest-r1", "ingest", created.isoformat(timespec="seconds"), "us-east-1", DATASET, None,
                           {}, jobs, {"kind": "stub"}, submitting=submitting)  # fmt: skip
        executor = StubExecutor(Timeline().at(0, "id-1", "RUNNING"))
        return list(job_states(record, Storage(None), executor).values())

    assert states(submitting=True, age=60) == [UNFINISHED, UNFINISHED]
    assert states(submitting=False, age=60) == [UNFINISHED, FAILED]  # a --keep-partial run: resume it
    assert states(submitting=True, age=CLAIM_GRACE + 60) == [UNFINISHED, FAILED]  # its submission died


def test_the_executor_names_each_ingestion_task_s_proof_and_the_ledger_judges_them_alike(tmp_path):
    """A manifest proves success by its absence (store consumed it), an array child's done marker by its presence.
    The ledger lists each directory once, and asks the executor about every job but those proven by presence."""
    from stub_executor import StubExecutor, Timeline
    from tiledbvcf_batch.executors.arrays import proofs_with_arrays
    from tiledbvcf_batch.executors.base import Proof
    from tiledbvcf_batch.executors.batch import BatchExecutor
    from tiledbvcf_batch.executors.jobs import RecordedJob
    from tiledbvcf_batch.ledger import FAILED, SUCCEEDED, job_states
    from tiledbvcf_batch.record import RunRecord
    from tiledbvcf_batch.storage import Storage

    run = tmp_path / "run"
    (run / "done").mkdir(parents=True)
    for name in ("ingest-b001-j0002.txt", "done/ingest-2-1.json"):
        (run / name).write_text("x")
    plain = [RecordedJob(f"ingest-1-{j}", "ingest-1", f"n{j}", f"id-{j}",
                         manifest=str(run / f"ingest-b001-j000{j}.txt"))
             for j in (1, 2)]  # fmt: skip
    children = [RecordedJob(f"ingest-2-{j}", "ingest-2", f"c{j}", f"p:{j - 1}", manifest=f"{run}/tasks.json#{j - 1}",
                            array="ingest-2-array", index=j - 1, done=str(run / f"done/ingest-2-{j}.json"))
                for j in (1, 2)]  # fmt: skip
    jobs = [RecordedJob("create", "create", "c", "id-c"), *plain, *children]
    assert BatchExecutor(None, "q", "jd").proofs(jobs[1:]) == {
        "ingest-1-1": Proof(str(plain[0].manifest), False),
        "ingest-1-2": Proof(str(plain[1].manifest), False),
        "ingest-2-1": Proof(str(children[0].done), True),
        "ingest-2-2": Proof(str(children[1].done), True),
    }

    class Arrays(StubExecutor):
        def proofs(self, jobs):
            return proofs_with_arrays(jobs)

    listed: list[str] = []

    class Listings(Storage):
        def list_sizes(self, prefix, last=None):
            listed.append(str(prefix))
            return super().list_sizes(prefix, last)

    executor = Arrays(Timeline().at(0, "id-c", "SUCCEEDED"))  # the executor has forgotten every other job
    record = RunRecord("ingest-r1", "ingest", "2027-01-15T08:00:00+00:00", "us-east-1", DATASET, None, {}, jobs,
                       {"kind": "stub"})  # fmt: skip
    storage = Listings(None)
    assert job_states(record, storage, executor) == {
        "create": SUCCEEDED,
        "ingest-1-1": SUCCEEDED,  # its manifest is gone
        "ingest-1-2": FAILED,
        "ingest-2-1": SUCCEEDED,  # its done marker is there
        "ingest-2-2": FAILED,
    }
    assert executor.described == [["id-c", "id-1", "id-2", "p:1"]]
    assert sorted(listed) == sorted([f"{run}/", f"{run}/done/"])
