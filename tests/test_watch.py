"""Waiting for a run: polling cost, backoff, progress, stuck jobs; with a scripted Batch and a fake clock."""

from __future__ import annotations

import io
import shlex
from typing import Any

from conftest import DATASET, T0, ScriptedBatch
from tiledbvcf_batch.executors.base import CancelOutcome
from tiledbvcf_batch.record import RecordedJob, RunRecord
from tiledbvcf_batch.watch import (
    Hints,
    Progress,
    StuckJobs,
    format_duration,
    interrupted_message,
    wait_for_jobs,
    watch_run,
)


def record(stages: dict[str, int], kind: str = "ingest") -> RunRecord:
    jobs = [
        RecordedJob(
            f"{stage}-{i}", stage, f"tiledbvcf-{stage}-{i}", f"{stage}/{i}", samples=[f"s3://b/{stage}-{i}.bcf"]
        )
        for stage, count in stages.items()
        for i in range(1, count + 1)
    ]
    return RunRecord(
        run_id="ingest-r1",
        kind=kind,
        created_at="2027-01-15T08:00:00+00:00",
        region="us-east-1",
        target=DATASET,
        record="s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/run.json",
        options={},
        jobs=jobs,
        executor={"kind": "batch", "job_queue": "q", "job_definition": "jd"},
    )


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


def test_plain_progress_prints_on_change_at_most_once_a_minute(clock):
    run = record({"create": 1, "ingest-1": 2})
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=False)
    latest = {j.job_id: {"status": "RUNNABLE"} for j in run.jobs}
    progress.show(latest)
    latest["create/1"] = {"status": "SUCCEEDED"}
    clock.sleep(30)
    progress.show(latest)  # changed, but within the minute of the last line: nothing yet
    clock.sleep(31)
    progress.show(latest)  # a minute later, and different from the last line printed: printed
    clock.sleep(61)
    progress.show(latest)  # due, but the same as the last line printed: nothing
    latest = {j.job_id: {"status": "SUCCEEDED"} for j in run.jobs}
    progress.show(latest, final=True)
    elapsed = [format_duration(T0 + d - run.created_epoch()) for d in (0, 61, 122)]
    assert out.getvalue().splitlines() == [
        f"[ingest-r1] 0/3 jobs finished, {elapsed[0]} since submission: array creation: RUNNABLE 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 1/3 jobs finished, {elapsed[1]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 3/3 jobs finished, {elapsed[2]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: SUCCEEDED 2",
    ]


def screen(output: str, columns: int, rows: int = 40) -> list[str]:
    """What a terminal of that width shows after ``output``: the lines of a VT100 emulator's screen."""
    import pyte

    display = pyte.Screen(columns, rows)
    display.set_mode(pyte.modes.LNM)  # a newline returns the carriage too, as a tty's output does
    pyte.Stream(display).feed(output)
    return [line.rstrip() for line in display.display if line.strip()]


def test_terminal_progress_survives_narrow_terminals_and_keeps_warnings(clock):
    run = record({"create": 1, "ingest-1": 3})
    run.run_id = "ingest-20270115T080000Z-4f2a9c"  # the header wraps at 40 columns
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=True, refresh=False, width=40)
    running = {j.job_id: {"status": "RUNNING"} for j in run.jobs}
    progress.show(running)
    progress.say("WARNING: tiledbvcf-ingest-1-1 has waited 16m40s for capacity (CAPACITY:INSUFFICIENT)")
    clock.sleep(3725)
    progress.show({**running, "create/1": {"status": "SUCCEEDED"}})
    progress.say("STUCK: 1 job(s) are RUNNABLE with MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - too big")
    progress.show({j.job_id: {"status": "SUCCEEDED"} for j in run.jobs}, final=True)
    shown = screen(out.getvalue(), columns=40)
    text = " ".join(shown)
    # Both messages are still on screen, whole, in order, above the final drawing.
    assert text.index("WARNING: tiledbvcf-ingest-1-1") < text.index("STUCK: 1 job(s)") < text.index("4/4 jobs")
    assert text.count("has waited 16m40s") == 1
    # One drawing only: the last; the earlier ones were erased, wrapped lines and all.
    assert sum("jobs finished" in line for line in shown) == 1 and "0/4 jobs" not in text and "1/4 jobs" not in text
    assert shown[-2:] == ["  array creation: SUCCEEDED 1", "  ingestion 1: SUCCEEDED 3"]
    assert all(len(line) <= 40 for line in shown)


def test_plain_output_keeps_warnings_as_lines(clock):
    run = record({"export": 1}, kind="export")
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=False)
    progress.show({"export/1": {"status": "RUNNING"}})
    progress.say("STUCK: something")
    assert out.getvalue().splitlines()[1] == "STUCK: something" and "\x1b" not in out.getvalue()


def test_stuck_misconfiguration_is_reported_at_once_and_capacity_only_if_it_lasts(clock):
    run = record({"ingest-1": 3})
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
    run = record({"ingest-1": 1})
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


def test_the_command_that_finishes_an_interrupted_run_replaces_an_earlier_resume():
    stopped = CancelOutcome(terminated=["ingest-1/1"])
    for earlier in (["--resume", "ingest-r0"], ["--resume=ingest-r0"], []):
        command = ("python", "batch-ingest.py", "--samples", "my samples.txt", *earlier, "--executor", "local")
        message = interrupted_message(record({"ingest-1": 1}), stopped, Hints("work", command))
        again = message.split("to finish it: ")[1].splitlines()[0]
        assert shlex.split(again) == [*command[:4], "--executor", "local", "--resume", "ingest-r1"]
        assert message.splitlines()[-1].endswith(" --profile work")
    exported = interrupted_message(
        record({"export": 1}, kind="export"), stopped, Hints(None, ("python", "x.py", "a b"))
    )
    assert "to finish it: python x.py 'a b'\n" in exported
    assert "to finish it: run the same command again with --resume ingest-r1" in interrupted_message(
        record({"ingest-1": 1}), stopped
    )
