"""The AWS Batch executor: payloads and the Batch limits it enforces, barriers, pacing, describe."""

from __future__ import annotations

import io
from typing import Any

import pytest

from conftest import T0, ScriptedBatch, recorded_run
from tiledbvcf_batch.executors.base import Throttled, order_problems
from tiledbvcf_batch.executors.batch import (
    DESCRIBE_JOBS_MAX_IDS,
    SUBMITS_PER_SECOND,
    BatchExecutor,
    Pacer,
    check_job_queue,
    job_problems,
    payload,
    retry_strategy,
)
from tiledbvcf_batch.executors.jobs import Job
from tiledbvcf_batch.inputs import Resources
from tiledbvcf_batch.plan import Plan, Stage, Task
from tiledbvcf_batch.record import RunRecord
from tiledbvcf_batch.storage import S3Uri
from tiledbvcf_batch.watch import Interrupted, StuckJobs, wait_for_jobs, watch_run


def test_retry_strategy():
    assert retry_strategy(1) == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    assert retry_strategy(7) == {"attempts": 7}


def make_task(**changes) -> Task:
    fields = {
        "key": "k",
        "stage": Stage("ingest", 1),
        "name": "tiledbvcf-ingest-b1-j1",
        "args": ("store",),
        "resources": Resources(1, 8),
        "retries": 1,
    }
    fields.update(changes)
    return Task(**fields)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"after": tuple(f"d{i}" for i in range(21))}, "depends on 21 jobs; Batch allows 20"),
        ({"args": ("create", "-a", "")}, "may not be empty or contain an empty string"),
        ({"name": "-bad"}, "not a valid Batch job name"),
        ({"name": "x" * 129}, "not a valid Batch job name"),
        ({"retries": 11}, "retry attempts must be between 1 and 10"),
        ({"after": ("later",)}, "depends on later, not submitted before it"),
    ],
)
def test_every_job_is_checked_against_the_batch_limits(changes, message):
    earlier = [make_task(key=f"d{i}", name=f"d{i}") for i in range(21)]
    problems = order_problems([*earlier, make_task(**changes)]) + job_problems(Job.of(make_task(**changes)))
    assert any(message in problem for problem in problems), problems
    assert order_problems([*earlier, make_task()]) + job_problems(Job.of(make_task())) == []


def test_a_refused_job_stops_the_whole_plan_before_anything_is_submitted():
    plan = Plan("ingest", "r1", S3Uri("m", "r/"), (make_task(), make_task(key="k2", args=("store", ""))), "s3://b/d")
    with pytest.raises(ValueError, match="contain an empty string"):
        ScriptedBatch([]).executor().submissions(plan)


def test_payload_maps_logical_dependencies_to_job_ids():
    request = payload(Job.of(make_task(after=("d1", "d2"))), {"d1": "A", "d2": "B"}, "q", "jd", "r1")
    assert request["dependsOn"] == [{"jobId": "A"}, {"jobId": "B"}]
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "1"},
        {"type": "MEMORY", "value": "8"},
    ]
    assert request["tags"] == {"tiledbvcf-batch-run": "r1", "tiledbvcf-batch-stage": "ingest-1"}


class Queues:
    def __init__(self, queue):
        self.queue = queue

    def describe_job_queues(self, jobQueues):
        return {"jobQueues": [self.queue]}


def test_job_queue_must_be_valid_and_have_a_compute_environment():
    broken = {"state": "ENABLED", "status": "INVALID", "statusReason": "CE deleted", "computeEnvironmentOrder": []}
    assert check_job_queue(Queues(broken), "q", "us-east-1") == [
        "--job-queue q is INVALID (CE deleted): fix or recreate it",
        "--job-queue q has no compute environment: attach one",
    ]
    fine = {"state": "ENABLED", "status": "VALID", "computeEnvironmentOrder": [{"order": 1}]}
    assert check_job_queue(Queues(fine), "q", "us-east-1") == []


def test_pacer_keeps_submissions_under_the_account_limit(clock):
    pacer = Pacer(SUBMITS_PER_SECOND, clock=clock.now, sleep=clock.sleep)
    stamps = []
    for _ in range(200):
        pacer.wait()
        stamps.append(clock.now())
    # No one-second window holds more than 50 submissions (the account-wide SubmitJob limit).
    assert max(sum(1 for t in stamps if start <= t < start + 1) for start in stamps) <= 50
    assert stamps[-1] - stamps[0] >= 199 / SUBMITS_PER_SECOND - 1e-9


def test_describe_takes_at_most_100_ids_a_call_and_reports_throttling():
    batch = ScriptedBatch([{f"j{i}": {"status": "RUNNING"} for i in range(250)}], throttle_rounds=frozenset({1}))
    executor = batch.executor()
    ids = [f"j{i}" for i in range(250)]
    assert len(executor.describe(ids)) == 250
    assert [len(call) for call in batch.calls] == [100, 100, 50]
    with pytest.raises(Throttled) as throttled:
        executor.describe(ids)
    assert throttled.value.partial == {}


def test_executor_settings_are_what_the_record_keeps():
    executor = BatchExecutor(None, "queue", "definition")
    assert executor.settings() == {
        "kind": "batch",
        "job_queue": "queue",
        "job_definition": "definition",
        "array_jobs": False,
    }
    assert DESCRIBE_JOBS_MAX_IDS == 100


# -- Watching a run on AWS Batch: what polling costs, and what Batch's statuses mean --------------------


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


def test_ctrl_c_leaves_batch_jobs_running(clock):
    run = recorded_run({"ingest-1": 1})

    def ctrl_c(seconds: float) -> None:
        raise KeyboardInterrupt

    executor = ScriptedBatch([statuses(run, "RUNNING")]).executor()
    assert watch_run(run, executor, stream=io.StringIO(), sleep=ctrl_c, now=clock.now) == Interrupted(None)
