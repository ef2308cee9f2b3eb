"""Waiting for a run: polling cost, backoff, progress, stuck jobs; with a scripted Batch and a fake clock."""

from __future__ import annotations

import io
from typing import Any

from conftest import T0, ScriptedBatch, recorded_run
from tiledbvcf_batch.executors.base import CancelOutcome
from tiledbvcf_batch.record import RunRecord
from tiledbvcf_batch.watch import Interrupted, StuckJobs, wait_for_jobs, watch_run


def statuses(run: RunRecord, status: str, **extra: Any) -> dict[str, dict[str, Any]]:
    return {job.job_id: {"status": status, **extra} for job in run.jobs}


def test_polling_uses_at_most_100_ids_and_never_polls_finished_jobs(clock):
    ids = [f"j{i}" for i in range(250)]
    early = {job_id: {"status": "SUCCEEDED" if i < 200 else "RUNNING"} for i, job_id in enumerate(ids)}
    done = {job_id: {"status": "SUCCEEDED"} for job_id in ids}
    batch = ScriptedBatch([early, early, early, done])
    latest = wait_for_jobs(batch.executor(), ids, sleep=clock.sleep, interval=10, max_interval=60)
    assert [len(call) for call in batch.calls] == [100, 100, 50, 50, 50, 50]
    assert all(d["status"] == "SUCCEEDED" for d in latest.values()) and len(latest) == 250
    # Backs off while nothing changes: 10 after the first change, then 20, 40.
    assert clock.slept == [10, 20, 40]


def test_throttling_slows_polling_down_but_never_ends_the_wait(clock):
    batch = ScriptedBatch([{"a": {"status": "RUNNING"}}] * 2 + [{"a": {"status": "SUCCEEDED"}}], frozenset({1}))
    latest = wait_for_jobs(batch.executor(), ["a"], sleep=clock.sleep, interval=5, max_interval=60)
    assert latest["a"]["status"] == "SUCCEEDED"
    assert clock.slept == [5, 10]


def test_stuck_misconfiguration_is_reported_at_once_and_capacity_only_if_it_lasts(clock):
    run = recorded_run({"ingest-1": 3})
    stuck = {"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - too big"}
    waiting = {"status": "RUNNABLE", "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - none"}
    rounds = [{"ingest-1/1": stuck, "ingest-1/2": stuck, "ingest-1/3": waiting}] * 3 + [
        {"ingest-1/1": {"status": "FAILED"}, "ingest-1/2": {"status": "FAILED"}, "ingest-1/3": {"status": "SUCCEEDED"}}
    ]
    out = io.StringIO()
    latest = watch_run(
        run, ScriptedBatch(rounds).executor(), stream=out, sleep=clock.sleep, now=clock.now, tty=False, interval=1000
    )
    assert latest["ingest-1/1"]["status"] == "FAILED"
    err = out.getvalue().splitlines()
    stuck_lines = [line for line in err if line.startswith("STUCK")]
    assert stuck_lines == [
        "STUCK: 2 job(s) (e.g. tiledbvcf-ingest-1-1) are RUNNABLE with MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
        " - too big and will never start: no instance type of the compute environment fits the job's resources: "
        "lower --vcpus/--memory or change the allowed instance types. Cancel the run with: python batch-runs.py "
        "cancel s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/run.json"
    ]
    assert err.index(stuck_lines[0]) < 3  # reported after the first poll, not at the end
    warnings = [line for line in err if line.startswith("WARNING")]
    assert len(warnings) == 1 and "has waited 16m40s for capacity (CAPACITY:INSUFFICIENT" in warnings[0]


def test_known_misconfiguration_gets_specific_advice():
    stuck = StuckJobs(ScriptedBatch([]).executor().explain, now=lambda: T0)
    reason = "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE maxVcpu is lower than the job's vCPUs"
    latest = {"a": {"status": "RUNNABLE", "statusReason": reason}}
    (message,) = stuck.check(latest, {"a": "job-a"})
    assert "more vCPUs or memory than any instance" in message
    assert stuck.check(latest, {"a": "job-a"}) == []  # said once


def test_watch_backs_off_when_nothing_changes(clock):
    run = recorded_run({"ingest-1": 1})
    rounds = [statuses(run, "RUNNING")] * 5 + [statuses(run, "SUCCEEDED")]
    latest = watch_run(run, ScriptedBatch(rounds).executor(), stream=io.StringIO(), sleep=clock.sleep, now=clock.now)
    assert latest["ingest-1/1"]["status"] == "SUCCEEDED"
    assert clock.slept == [10, 20, 40, 60, 60]


class Forgetful:
    """A Batch that no longer describes some jobs (it forgets them some days after they end)."""

    def __init__(self, known: dict[str, str]):
        self.known = known

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        return {"jobs": [{"jobId": j, "status": self.known[j]} for j in jobs if j in self.known]}


def test_a_job_batch_has_forgotten_ends_the_wait_after_three_polls(clock):
    from tiledbvcf_batch.aws import Clients
    from tiledbvcf_batch.executors.batch import BatchExecutor

    executor = BatchExecutor(Clients("us-east-1", Forgetful({"a": "SUCCEEDED"}), None, None), "q", "jd")
    latest = wait_for_jobs(executor, ["a", "gone"], sleep=clock.sleep, interval=10, max_interval=60)
    assert latest["gone"]["status"] == "FORGOTTEN" and "forgets jobs" in latest["gone"]["statusReason"]
    assert len(clock.slept) == 2  # three polls


def test_ctrl_c_ends_the_wait_with_what_the_executor_stopped(clock):
    run = recorded_run({"ingest-1": 2})
    stopped = CancelOutcome(cancelled=["ingest-1/2"], terminated=["ingest-1/1"])
    executor = ScriptedBatch([statuses(run, "RUNNING")]).executor()
    asked: list[list[str]] = []
    executor.interrupted = lambda ids: asked.append(list(ids)) or stopped  # as the local executor stops its jobs

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    out = io.StringIO()
    outcome = watch_run(run, executor, stream=out, sleep=ctrl_c, now=clock.now, tty=False)
    assert outcome == Interrupted(stopped) and asked == [run.job_ids()]
    # The progress so far stays on the stream; what to do next is the command line's to say, below it.
    assert out.getvalue().splitlines()[-1].startswith("[ingest-r1] 0/2 jobs finished")


def test_ctrl_c_leaves_batch_jobs_running(clock):
    run = recorded_run({"ingest-1": 1})

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    executor = ScriptedBatch([statuses(run, "RUNNING")]).executor()
    assert watch_run(run, executor, stream=io.StringIO(), sleep=ctrl_c, now=clock.now) == Interrupted(None)
