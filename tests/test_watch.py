"""Waiting for a run, whatever runs it: backoff, milestones, stuck jobs, forgotten jobs, Ctrl-C, progress.

The stub executor answers from a timeline, and time moves only when the watch waits: each test says
what happens to which job when, and asserts when the watch looked. What AWS Batch's statuses mean,
and what polling Batch costs, is tested with the Batch executor (test_batch_executor.py).
"""

from __future__ import annotations

import io

from conftest import recorded_run
from stub_executor import StubExecutor, Timeline
from tiledbvcf_batch.executors.base import CancelOutcome
from tiledbvcf_batch.watch import CAPACITY_WARN_AFTER, Interrupted, wait_for_jobs, watch_run


def test_polling_backs_off_while_nothing_a_user_waits_for_happens():
    run = recorded_run({"ingest-1": 2})
    timeline = Timeline().at(0, "ingest-1/1", "RUNNING").at(0, "ingest-1/2", "RUNNING")
    timeline.at(45, "ingest-1/1", "SUCCEEDED").at(250, "ingest-1/2", "SUCCEEDED")
    out = io.StringIO()
    latest = watch_run(run, StubExecutor(timeline), stream=out, now=timeline.now, tty=False)
    assert {d["status"] for d in latest.values()} == {"SUCCEEDED"}
    # One job of a stage ending is no milestone: polls at 0, 10, 30, 70, 130, 190 and 250 s.
    assert timeline.slept == [10, 20, 40, 60, 60, 60]
    assert timeline.now() - timeline.start == 250
    # Without a terminal: a line when something changed (at most one a minute), and the last look.
    assert out.getvalue().splitlines() == [
        "Waiting on 2 jobs of run ingest-r1 to terminate...",
        "[ingest-r1] 0/2 jobs finished, 0m00s since submission: ingestion 1: RUNNING 2",
        "[ingest-r1] 1/2 jobs finished, 1m10s since submission: ingestion 1: RUNNING 1, SUCCEEDED 1",
        "[ingest-r1] 2/2 jobs finished, 4m10s since submission: ingestion 1: SUCCEEDED 2",
    ]


def test_a_stage_that_ends_or_a_job_that_fails_brings_the_next_look_closer():
    run = recorded_run({"ingest-1": 1, "ingest-2": 2})
    timeline = Timeline().at(0, "ingest-1/1", "RUNNING").at(25, "ingest-1/1", "SUCCEEDED")
    timeline.at(30, "ingest-2/1", "RUNNING").at(100, "ingest-2/1", "FAILED")
    timeline.at(30, "ingest-2/2", "RUNNING").at(300, "ingest-2/2", "SUCCEEDED")
    stages = [["ingest-1/1"], ["ingest-2/1", "ingest-2/2"]]
    latest = wait_for_jobs(StubExecutor(timeline), run.job_ids(), sleep=timeline.sleep, groups=stages)
    assert [latest[i]["status"] for i in run.job_ids()] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    # Stage 1 ends by 30 s and job 2/1 fails by 100 s: each time the interval starts again at 10 s.
    assert timeline.slept == [10, 20, 10, 20, 40, 10, 20, 40, 60, 60, 60]


def test_only_unfinished_jobs_are_asked_about():
    timeline = Timeline().at(0, "a", "SUCCEEDED").at(0, "b", "RUNNING").at(35, "b", "SUCCEEDED")
    executor = StubExecutor(timeline)
    wait_for_jobs(executor, ["a", "b"], sleep=timeline.sleep)
    assert executor.described == [["a", "b"], ["b"], ["b"], ["b"]]  # at 0, 10, 30 and 70 s


def test_a_job_that_will_never_start_is_said_at_once_one_waiting_for_capacity_only_if_it_lasts():
    run = recorded_run({"ingest-1": 3})
    timeline = Timeline()
    for job in ("ingest-1/1", "ingest-1/2"):
        timeline.at(0, job, "RUNNABLE", statusReason="never: lower --memory").at(2000, job, "FAILED")
    timeline.at(0, "ingest-1/3", "RUNNABLE", statusReason="waits: more instances may come")
    timeline.at(2000, "ingest-1/3", "SUCCEEDED")
    out = io.StringIO()
    watch_run(run, StubExecutor(timeline), stream=out, now=timeline.now, tty=False)
    said = out.getvalue().splitlines()
    stuck = [line for line in said if line.startswith("STUCK")]
    assert stuck == [
        "STUCK: 2 job(s) (e.g. tiledbvcf-ingest-1-1) are RUNNABLE with never: lower --memory and will never "
        "start: lower --memory. Cancel the run with: python batch-runs.py cancel "
        "s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/run.json"
    ]
    assert said.index(stuck[0]) < 3  # after the first look, not at the end
    # Polls at 0, 10, 30, 70, then every 60 s: the first after CAPACITY_WARN_AFTER (900 s) is at 910 s.
    warnings = [line for line in said if line.startswith("WARNING")]
    assert CAPACITY_WARN_AFTER == 900 and warnings == [
        "WARNING: tiledbvcf-ingest-1-3 has waited 15m10s for capacity (waits: more instances may come): "
        "more instances may come"
    ]


def test_a_job_the_executor_forgets_ends_the_wait_after_three_looks():
    timeline = Timeline().at(0, "a", "RUNNING").at(30, "a", "SUCCEEDED")
    timeline.at(0, "gone", "RUNNING").at(15, "gone", "FORGOTTEN")
    latest = wait_for_jobs(StubExecutor(timeline), ["a", "gone"], sleep=timeline.sleep, names={"gone": "job-gone"})
    assert latest["a"]["status"] == "SUCCEEDED"
    assert latest["gone"] == {
        "jobId": "gone",
        "jobName": "job-gone",
        "status": "FORGOTTEN",
        "statusReason": "no longer known to the executor (the stub forgets jobs when the timeline says so)",
        "attempts": [],
    }
    assert timeline.slept == [10, 20, 40, 60]  # not described at 30, 70 and 130 s


class Blocking(StubExecutor):
    """An executor whose jobs cannot outlive the command (as the local executor's): Ctrl-C stops them."""

    blocks = True

    def interrupted(self, ids):
        return self.cancel(ids, "interrupted")


def test_ctrl_c_ends_the_wait_with_what_the_executor_stopped():
    run = recorded_run({"ingest-1": 2})
    timeline = Timeline().at(0, "ingest-1/1", "RUNNING").at(0, "ingest-1/2", "RUNNABLE")
    executor = Blocking(timeline)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    out = io.StringIO()
    outcome = watch_run(run, executor, stream=out, sleep=ctrl_c, now=timeline.now, tty=False)
    assert outcome == Interrupted(CancelOutcome(cancelled=["ingest-1/2"], terminated=["ingest-1/1"]))
    assert executor.cancelled == ["ingest-1/2", "ingest-1/1"]
    # The progress so far stays on the stream; what to do next is the command line's to say, below it.
    assert out.getvalue().splitlines()[-1].startswith("[ingest-r1] 0/2 jobs finished")


def test_ctrl_c_leaves_the_jobs_of_a_detached_executor_running():
    run = recorded_run({"ingest-1": 1})
    timeline = Timeline().at(0, "ingest-1/1", "RUNNING")
    executor = StubExecutor(timeline)

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    assert watch_run(run, executor, stream=io.StringIO(), sleep=ctrl_c, now=timeline.now) == Interrupted(None)
    assert executor.cancelled == [] and executor.terminated == []
