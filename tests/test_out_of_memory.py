"""Out of memory is not the end: a job killed for memory is submitted again with twice the memory (--wait)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import DATASET, ingest_plan, invoke, load_script, record_of
from tiledbvcf_batch.commands import option_value, store_budget_mb
from tiledbvcf_batch.executors.arrays import as_arrays
from tiledbvcf_batch.executors.batch import BatchExecutor
from tiledbvcf_batch.executors.jobs import Job
from tiledbvcf_batch.executors.local import LocalExecutor
from tiledbvcf_batch.executors.local_state import KILLED_FOR_MEMORY
from tiledbvcf_batch.inputs import Resources
from tiledbvcf_batch.oom import plan_resubmission
from tiledbvcf_batch.plan import Stage

RUNS = load_script("batch-runs.py")
OOM_ATTEMPT = {
    "statusReason": "Essential container in task exited",
    "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
}


class FirstStoreKilled:
    """Batch as it answers when the first store job runs out of memory: FAILED with OutOfMemoryError, and the jobs
    that depend on it FAILED without running. Jobs submitted later (the resubmissions) succeed, as moto runs them.
    """

    def __init__(self, aws: Any):
        self.submitted: list[tuple[str, str]] = []  # (name, job id) in order
        aws.on("after-call.batch.SubmitJob", self.note)
        aws.on("after-call.batch.DescribeJobs", self.rewrite)

    def note(self, params: dict[str, Any] | None = None, parsed: dict[str, Any] | None = None, **_: Any) -> None:
        if parsed and "jobId" in parsed:
            self.submitted.append((parsed["jobName"], parsed["jobId"]))

    def first_round(self) -> list[tuple[str, str]]:
        return self.submitted[:7]  # creation, 2 stores, 4 consolidation steps

    def rewrite(self, parsed: dict[str, Any], **_: Any) -> None:
        killed = next(job_id for name, job_id in self.first_round() if name == "tiledbvcf-ingest-b1-j1")
        dependents = {job_id for name, job_id in self.first_round() if "consolidate" in name or "vacuum" in name}
        for job in parsed.get("jobs", []):
            if job["jobId"] == killed:
                job.update(status="FAILED", statusReason="Essential container in task exited",
                           attempts=[copy.deepcopy(OOM_ATTEMPT)])  # fmt: skip
            elif job["jobId"] in dependents:
                job.update(status="FAILED", statusReason="Dependent Job failed", attempts=[])


def ingest_and_wait(run_ingest: Any, samples: Path, *extra: str) -> Any:
    return run_ingest("--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
                      "--num-jobs", "2", "--wait", "--memory", "4000", *extra)  # fmt: skip


def memory_of(payload: dict[str, Any]) -> str:
    requirements = payload["containerOverrides"]["resourceRequirements"]
    return next(r["value"] for r in requirements if r["type"] == "MEMORY")


def test_a_store_killed_for_memory_is_resubmitted_with_twice_the_memory_and_its_dependents_follow(
    aws, samples_file, run_ingest
):
    batch = FirstStoreKilled(aws)
    result = ingest_and_wait(run_ingest, samples_file(2))
    assert result.exit_code == 0, result.stderr
    assert len(aws.submitted) == 7 + 5  # the store again, then the 4 consolidation steps that never ran
    store = aws.submitted[7]
    assert store["jobName"] == "tiledbvcf-ingest-b1-j1"
    assert memory_of(store) == "8000" and memory_of(aws.submitted[1]) == "4000"
    command = store["containerOverrides"]["command"]
    assert option_value(command, "store_budget") == str(store_budget_mb(8000)) == "7000"
    assert option_value(aws.submitted[1]["containerOverrides"]["command"], "store_budget") == "3488"
    # The consolidation waits on the new store and the other store (which succeeded), not on the killed one.
    new_store = batch.submitted[7][1]
    other_store = dict(batch.first_round())["tiledbvcf-ingest-b1-j2"]
    assert {d["jobId"] for d in aws.submitted[8]["dependsOn"]} == {new_store, other_store}
    consolidation = [p["jobName"] for p in aws.submitted[3:7]]
    assert [p["jobName"] for p in aws.submitted[8:]] == consolidation
    assert all(memory_of(p) == "4000" for p in aws.submitted[8:])
    assert "1 job(s) killed for memory: submitted again with up to 8000 MiB, with the 4 job(s) that waited on them" \
        in result.stderr  # fmt: skip
    assert "- 7 / 7 jobs succeeded" in result.lines
    assert "- 1 jobs were killed for memory and resubmitted with 8000 MiB." in result.lines
    # The record follows the new jobs: status and report read them.
    record = record_of(aws, result.stderr)
    (entry,) = [job for job in record["jobs"] if job["key"] == "ingest-1-1"]
    killed = dict(batch.first_round())["tiledbvcf-ingest-b1-j1"]
    assert entry["job_id"] == new_store
    assert entry["resubmitted"] == {"job_id": killed, "memory": 8000, "killed": True}
    # batch-runs.py reads the record again and follows the new jobs.
    uri = result.stderr.split("recorded at ")[1].split()[0]
    reported = invoke(RUNS.main, ["report", uri])
    assert reported.exit_code == 0, reported.stderr
    assert "- 7 / 7 jobs succeeded" in reported.stdout.splitlines()
    assert "- 1 jobs were killed for memory and resubmitted with 8000 MiB." in reported.stdout.splitlines()
    replaced = {job_id for name, job_id in batch.first_round() if name in (store["jobName"], *consolidation)}
    assert len(replaced) == 5
    assert {job["job_id"] for job in record["jobs"]} == {job_id for _, job_id in batch.submitted} - replaced


def test_at_max_memory_already_a_killed_job_is_not_resubmitted_and_the_report_says_why(aws, samples_file, run_ingest):
    FirstStoreKilled(aws)
    result = ingest_and_wait(run_ingest, samples_file(2), "--max-memory", "4000")
    assert result.exit_code == 1
    assert len(aws.submitted) == 7
    assert "1 job(s) killed for memory are not submitted again: they had --max-memory (4000 MiB) already" in (
        result.stderr
    )
    assert (
        "- 1 jobs were killed for memory and not resubmitted: a job is resubmitted once, with twice its memory up to "
        "--max-memory (4000 MiB), while --wait watches; --resume the run to give its jobs twice the memory."
    ) in result.lines
    assert "FAILED: 4 jobs did not run because a job they depend on failed" in result.stdout


def test_twice_the_memory_stops_at_max_memory(aws, samples_file, run_ingest):
    FirstStoreKilled(aws)
    result = ingest_and_wait(run_ingest, samples_file(2), "--max-memory", "6000")
    assert result.exit_code == 0, result.stderr
    assert memory_of(aws.submitted[7]) == "6000"
    assert "- 1 jobs were killed for memory and resubmitted with 6000 MiB." in result.lines


def test_max_memory_below_memory_is_refused(aws, samples_file, run_ingest):
    result = ingest_and_wait(run_ingest, samples_file(2), "--max-memory", "3000")
    assert result.exit_code == 2
    assert result.stderr == "Error: --max-memory 3000 is less than --memory 4000: give --max-memory at least --memory\n"
    assert aws.submitted == []


def test_batch_says_which_attempts_were_killed_for_memory():
    executor = BatchExecutor.__new__(BatchExecutor)
    assert executor.killed_for_memory(OOM_ATTEMPT)  # type: ignore[arg-type]
    assert executor.killed_for_memory({"statusReason": "OutOfMemoryError: Container killed due to memory usage"})
    assert not executor.killed_for_memory({"container": {"exitCode": 1, "reason": "Essential container exited"}})
    assert not executor.killed_for_memory({"statusReason": "Host EC2 (instance i-1) terminated."})


def job(key: str, memory: int = 4000, after: tuple[str, ...] = (), args: tuple[str, ...] = ("create",)) -> Job:
    return Job(key, Stage.parse("ingest-1"), key, args, Resources(4, memory), 1, after)


def test_resubmission_is_the_killed_job_doubled_then_every_failed_job_after_it():
    jobs = [job("a"), job("b", args=("store", "-u", "x", "-m", "3488")), job("c"), job("d", after=("b", "c")),
            job("e", after=("d",)), job("f", after=("c",))]  # fmt: skip
    planned = plan_resubmission(jobs, killed={"b"}, failed={"b", "d", "e"}, once=set(), max_memory=63488)
    assert [j.key for j in planned.jobs] == ["b", "d", "e"]  # f did not fail; c succeeded
    assert planned.jobs[0].resources.memory == 8000 and planned.jobs[0].args[-1] == "7000"
    assert [j.resources.memory for j in planned.jobs[1:]] == [4000, 4000]
    assert planned.killed == ("b",) and planned.capped == ()
    capped = plan_resubmission(jobs, killed={"b"}, failed={"b", "d", "e"}, once=set(), max_memory=4000)
    assert capped.jobs == () and capped.capped == ("b",)
    once = plan_resubmission(jobs, killed={"b"}, failed={"b", "d", "e"}, once={"b"}, max_memory=63488)
    assert once.jobs == () and once.capped == ("b",)


def test_locally_a_job_killed_by_sigkill_is_reported_as_killed_for_memory(tmp_path):
    # A tiledbvcf that the kernel's out-of-memory killer stops: SIGKILL, as the OOM killer sends it.
    killed = tmp_path / "tiledbvcf"
    killed.write_text(f"#!{sys.executable}\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    killed.chmod(0o755)
    executor = LocalExecutor(str(killed), root=tmp_path / "state")
    job_id = executor.submit(job("a", args=("version",)), {}, "run-1")
    executor.pause(0)
    for _ in range(200):
        (described,) = executor.describe([job_id]).values()
        if described["status"] == "FAILED":
            break
        executor.pause(0.05)
    assert described["status"] == "FAILED"
    (attempt,) = described["attempts"]
    assert attempt["container"]["exitCode"] in (-9, 137)
    assert executor.killed_for_memory(attempt)
    assert KILLED_FOR_MEMORY in described["statusReason"]
    assert "--memory" in described["statusReason"]
    assert not executor.enforces_memory()  # more memory would not help: nothing is resubmitted locally


@pytest.mark.parametrize("code, log, killed", [(-6, b"std::bad_alloc\n", True), (134, b"what(): std::bad_alloc", True),
                                               (134, b"abort", False), (1, b"std::bad_alloc", False)])  # fmt: skip
def test_an_abort_on_bad_alloc_is_out_of_memory_too(tmp_path, code, log, killed):
    from tiledbvcf_batch.executors.local_state import out_of_memory

    path = tmp_path / "job.log"
    path.write_bytes(b"x" * 10_000 + log)
    assert out_of_memory(code, path) is killed


def test_resume_gives_a_run_whose_jobs_were_killed_for_memory_twice_the_memory(aws, samples_file, run_ingest):
    FirstStoreKilled(aws)
    samples = samples_file(2)
    first = ingest_and_wait(run_ingest, samples, "--max-memory", "4000")  # killed, not resubmitted: at the cap
    assert first.exit_code == 1
    run_id = first.stderr.split("Run ")[1].split()[0]
    resumed = run_ingest("--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
                         "--num-jobs", "2", "--memory", "4000", "--resume", run_id)  # fmt: skip
    assert resumed.exit_code == 0, resumed.stderr
    assert f"1 job(s) of run {run_id} were killed for memory: its jobs get 8000 MiB" in resumed.stderr
    (store,) = [p for p in aws.submitted[7:] if p["jobName"] == "tiledbvcf-ingest-b1-j1"]
    assert memory_of(store) == "8000"
    assert option_value(store["containerOverrides"]["command"], "store_budget") == "7000"


def test_resume_at_max_memory_says_to_raise_it(aws, samples_file, run_ingest):
    FirstStoreKilled(aws)
    samples = samples_file(2)
    first = ingest_and_wait(run_ingest, samples, "--max-memory", "4000")
    run_id = first.stderr.split("Run ")[1].split()[0]
    resumed = run_ingest("--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
                         "--num-jobs", "2", "--memory", "4000", "--max-memory", "4000", "--resume", run_id)  # fmt: skip
    assert resumed.exit_code == 0, resumed.stderr
    assert (f"1 job(s) of run {run_id} were killed for memory with 4000 MiB, and --max-memory is 4000 MiB: raise "
            "--max-memory to give them more") in resumed.stderr  # fmt: skip
    (store,) = [p for p in aws.submitted[7:] if p["jobName"] == "tiledbvcf-ingest-b1-j1"]
    assert memory_of(store) == "4000"


def test_an_array_child_killed_for_memory_is_submitted_on_its_own_and_what_followed_the_array_waits_for_it():
    jobs = as_arrays(ingest_plan(6, num_jobs=3, consolidate=True))
    assert [job.key for job in jobs][:2] == ["create", "ingest-1-array"]
    consolidation = [job.key for job in jobs[2:]]
    failed = {"ingest-1-2", *consolidation}
    planned = plan_resubmission(jobs, killed={"ingest-1-2"}, failed=failed, once=set(), max_memory=63488)
    child, *after = planned.jobs
    # twice the default 61440 MiB, capped at --max-memory
    assert (child.key, child.after, child.is_array, child.resources.memory) == ("ingest-1-2", ("create",), False, 63488)
    assert child.args[0] == "store" and option_value(child.args, "store_budget") == str(store_budget_mb(63488))
    assert option_value(child.args, "samples_file") == str(child.manifest.uri)  # its own manifest, uploaded first
    assert planned.uploads == (child.manifest,)
    assert [job.key for job in after] == consolidation
    assert after[0].after == ("ingest-1-2",)  # not the failed array: Batch would fail it at once
    # Another child failed for another reason: the array stays failed, and what follows it is left to --resume.
    other = plan_resubmission(jobs, killed={"ingest-1-2"}, failed={*failed, "ingest-1-3"}, once=set(),
                              max_memory=63488)  # fmt: skip
    assert [job.key for job in other.jobs] == ["ingest-1-2"]
