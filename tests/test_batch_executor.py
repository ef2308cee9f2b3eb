"""The AWS Batch executor: payloads and the Batch limits it enforces, barriers, pacing, describe."""

from __future__ import annotations

import pytest

from conftest import ScriptedBatch
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
from tiledbvcf_batch.storage import S3Uri


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
