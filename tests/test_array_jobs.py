"""Array jobs: one SubmitJob per stage, children that find their task by index, the ledger and watch per task."""

from __future__ import annotations

import re
from typing import Any

import pytest

import local_aws
from conftest import base, calls_of, ingest_plan, make_dataset, record_of
from tiledbvcf_batch.arraytasks import ARRAY_INDEX, ENTRYPOINT_VARIABLE, tasks_in
from tiledbvcf_batch.aws import Clients
from tiledbvcf_batch.executors.arrays import MAX_ARRAY_SIZE, as_arrays
from tiledbvcf_batch.executors.batch import BatchExecutor, payload
from tiledbvcf_batch.watch import wait_for_jobs


def test_each_stage_is_one_array_after_the_previous_stage_no_barriers():
    plan = ingest_plan(300, num_jobs=50, incremental=3)  # 50 jobs a batch: per-job mode needs barrier jobs
    jobs = as_arrays(plan)
    assert [(job.key, job.after, job.is_array, len(job.tasks)) for job in jobs] == [
        ("create", (), False, 1),
        ("ingest-1-array", ("create",), True, 50),
        ("ingest-2-array", ("ingest-1-array",), True, 50),
        ("ingest-3-array", ("ingest-2-array",), True, 50),
    ]
    array = jobs[1]
    task_file = "s3://meta/tiledbvcf-batch/runs/ingest-r1/tasks-ingest-1.json"
    assert array.args[array.args.index("-f") + 1] == f"{task_file}#{ARRAY_INDEX}"
    # Every other argument is the tasks' own: the children run the very command per-job mode would.
    first = array.tasks[0].args
    assert [a for a in array.args if "tasks-" not in a] == [a for a in first if "ingest-b001" not in a]
    entries = tasks_in(array.manifest.body().decode())
    assert [entry["key"] for entry in entries] == [f"ingest-1-{j}" for j in range(1, 51)]
    assert entries[0]["lines"] == [f"s3://in/s{i:06d}.bcf" for i in range(2)]
    assert entries[0]["done"] == "s3://meta/tiledbvcf-batch/runs/ingest-r1/done/ingest-1-1.json"
    # The started marker of the manifest the task would have had on its own (and has when resumed).
    assert entries[0]["started"] == "s3://meta/tiledbvcf-batch/runs/ingest-r1/started/ingest-b001-j0001.txt.json"
    assert first[first.index("-f") + 1] == "s3://meta/tiledbvcf-batch/runs/ingest-r1/ingest-b001-j0001.txt"
    request = payload(array, {"create": "c-1"}, "q", "jd", "ingest-r1")
    assert request["arrayProperties"] == {"size": 50}
    assert request["dependsOn"] == [{"jobId": "c-1"}]
    assert request["jobName"] == "tiledbvcf-ingest-1"


def test_consolidation_stays_four_chained_jobs_between_the_arrays():
    jobs = as_arrays(ingest_plan(300, num_jobs=50, incremental=2, consolidate=True))
    assert [(job.key, job.after) for job in jobs] == [
        ("create", ()),
        ("ingest-1-array", ("create",)),
        ("consolidate-1-1", ("ingest-1-array",)),
        ("consolidate-1-2", ("consolidate-1-1",)),
        ("consolidate-1-3", ("consolidate-1-2",)),
        ("consolidate-1-4", ("consolidate-1-3",)),
        ("ingest-2-array", ("consolidate-1-4",)),
        ("consolidate-2-1", ("ingest-2-array",)),
        ("consolidate-2-2", ("consolidate-2-1",)),
        ("consolidate-2-3", ("consolidate-2-2",)),
        ("consolidate-2-4", ("consolidate-2-3",)),
    ]


def test_a_stage_past_10000_tasks_is_several_arrays_and_the_next_waits_for_all():
    plan = ingest_plan(MAX_ARRAY_SIZE + 5, num_jobs=MAX_ARRAY_SIZE + 5, incremental=1, create=True)
    jobs = BatchExecutor(None, "q", "jd", array_jobs=True).submissions(plan)
    assert [(job.key, job.is_array, len(job.tasks)) for job in jobs] == [
        ("create", False, 1),
        ("ingest-1-array-1", True, MAX_ARRAY_SIZE),
        ("ingest-1-array-2", True, 5),
    ]
    assert all(job.after == ("create",) for job in jobs[1:])


def test_a_single_task_stays_a_plain_job():
    plan = ingest_plan(1, num_jobs=1)
    jobs = as_arrays(plan)
    assert [(job.key, job.is_array, job.after) for job in jobs] == [
        ("create", False, ()),
        ("ingest-1-1", False, ("create",)),
    ]
    assert [job.tasks for job in jobs] == [(task,) for task in plan.tasks]


# -- On the emulated Batch: the scripts ------------------------------------------------------------


@pytest.fixture
def entrypoint_definition(aws) -> None:
    """The job definition as this project's template registers it: it says its image has our entrypoint."""
    found = aws.batch.describe_job_definitions(jobDefinitionName=local_aws.JOB_DEFINITION)["jobDefinitions"][0]
    properties = found["containerProperties"]
    aws.batch.register_job_definition(
        jobDefinitionName=local_aws.JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": properties["image"],
            "resourceRequirements": properties["resourceRequirements"],
            "environment": [{"name": ENTRYPOINT_VARIABLE, "value": "1"}],
        },
    )


def test_ingestion_submits_one_array_per_stage_and_one_task_file(aws, samples_file, run_ingest, entrypoint_definition):
    samples = samples_file(30)
    result = run_ingest(*base(samples), "--num-jobs", "10", "--incremental", "2", "--no-consolidate")
    assert result.exit_code == 0, result.stderr
    assert [job["jobName"] for job in aws.submitted] == ["tiledbvcf-create", "tiledbvcf-ingest-1", "tiledbvcf-ingest-2"]
    assert [job.get("arrayProperties") for job in aws.submitted] == [None, {"size": 10}, {"size": 10}]
    # The printed lines name the array jobs.
    assert result.lines[1].startswith("Submitted ingestion job(s) ") and len(result.lines[1].split()) == 4
    record = record_of(aws, result.stderr)
    assert record["executor"]["array_jobs"] is True
    parent = result.lines[1].split()[-1]
    assert [job["job_id"] for job in record["jobs"] if job["stage"] == "ingest-1"] == [
        f"{parent}:{i}" for i in range(10)
    ]
    run = f"tiledbvcf-batch/runs/{record['run_id']}/"
    assert sorted(key.removeprefix(run) for key in aws.keys("bucket2-name", run)) == [
        "run.json",
        "tasks-ingest-1.json",
        "tasks-ingest-2.json",
    ]
    # Submission costs O(stages) calls, not O(jobs): 2 task files, the record twice, the index marker, 3 jobs.
    puts = [
        c["Key"]
        for c in calls_of(aws, "PutObject")
        if c["Key"].startswith(("tiledbvcf-batch/runs", "tiledbvcf-batch/da"))
    ]
    assert [key.removeprefix(run) for key in puts if key.startswith(run)] == [
        "tasks-ingest-1.json",
        "tasks-ingest-2.json",
        "run.json",
        "run.json",  # once before the first job, once with every job's id
    ]
    assert len(puts) == 5  # and the dataset index's marker
    assert len(calls_of(aws, "SubmitJob")) == 3


def test_no_array_jobs_keeps_one_job_per_task(aws, samples_file, run_ingest, entrypoint_definition):
    result = run_ingest(*base(samples_file(6)), "--num-jobs", "3", "--no-array-jobs", "--no-consolidate")
    assert result.exit_code == 0, result.stderr
    assert [job.get("arrayProperties") for job in aws.submitted] == [None] * 4


def test_a_stock_job_definition_keeps_one_job_per_task(aws, samples_file, run_ingest):
    result = run_ingest(*base(samples_file(6)), "--num-jobs", "3", "--dry-run")
    assert result.exit_code == 0 and "as array jobs" not in result.stdout
    forced = run_ingest(*base(samples_file(6)), "--num-jobs", "3", "--dry-run", "--array-jobs")
    assert "as array jobs" in forced.stdout and f"tasks-ingest-1.json#{ARRAY_INDEX}" in forced.stdout
    assert re.search(r"    task file s3://\S+/tasks-ingest-1.json: 3 children, 6 samples$", forced.stdout, re.M)


def test_resume_of_an_array_run_resubmits_only_the_children_that_failed(
    aws, samples_file, run_ingest, entrypoint_definition, tmp_path
):
    samples = samples_file(8)
    first = run_ingest(*base(samples), "--num-jobs", "4", "--sample-batch-size", "2", "--no-consolidate")
    record = record_of(aws, first.stderr)
    make_dataset(aws)
    stores = [job for job in record["jobs"] if job["stage"] == "ingest-1"]
    for job in stores[:3]:  # what the entrypoint writes after store succeeded
        bucket, _, key = job["done"].removeprefix("s3://").partition("/")
        aws.s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    fail_children(aws)
    aws.submitted.clear()

    result = run_ingest(*base(samples), "--num-jobs", "4", "--resume", record["run_id"], "--no-consolidate")
    assert result.exit_code == 0, result.stderr
    assert "resubmitting 1 jobs that did not succeed" in result.stderr
    (job,) = aws.submitted  # a single task: a plain job, with the child's very samples and batch size
    command = job["containerOverrides"]["command"]
    assert command[command.index("-e") + 1] == "2"
    bucket, _, key = command[command.index("-f") + 1].removeprefix("s3://").partition("/")
    assert aws.text(bucket, key).splitlines() == stores[3]["samples"]


def fail_children(aws) -> None:
    """Batch's answer for every child not yet described: FAILED (its parent's summary agrees)."""

    def handler(parsed, **_):
        for job in parsed.get("jobs", []):
            if "arrayProperties" in job and "statusSummary" in job["arrayProperties"]:
                size = job["arrayProperties"]["size"]
                job["arrayProperties"]["statusSummary"] = {"FAILED": size}
            job["status"] = "FAILED"

    aws.on("after-call.batch.DescribeJobs", handler)
    aws.on(
        "after-call.batch.ListJobs", lambda parsed, **_: [j.update(status="FAILED") for j in parsed["jobSummaryList"]]
    )


# -- Waiting on arrays ----------------------------------------------------------------------------


class ArrayBatch:
    """A Batch of array jobs: each round gives every child's status; keeps the ids of each DescribeJobs call."""

    def __init__(self, rounds: list[dict[str, list[str]]]):
        self.rounds = rounds  # parent id -> children's statuses, per poll round
        self.round = -1
        self.described: list[list[str]] = []

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        self.described.append(list(jobs))
        if all(":" not in job for job in jobs):
            self.round = min(self.round + 1, len(self.rounds) - 1)
        state = self.rounds[self.round]
        found = []
        for job_id in jobs:
            parent, _, index = job_id.partition(":")
            children = state[parent]
            if index:
                found.append({"jobId": job_id, "jobName": "t", "status": children[int(index)], "attempts": []})
                continue
            summary = {s: children.count(s) for s in set(children)}
            found.append(
                {"jobId": parent, "jobName": "t", "status": "PENDING",
                 "arrayProperties": {"size": len(children), "statusSummary": summary}}
            )  # fmt: skip
        return {"jobs": found}


def test_waiting_on_arrays_costs_one_describe_per_poll_and_describes_children_once(clock):
    running = {"p1": ["SUCCEEDED"] * 300 + ["RUNNING"] * 700, "p2": ["PENDING"] * 1000}
    middle = {"p1": ["SUCCEEDED"] * 999 + ["FAILED"], "p2": ["RUNNING"] * 1000}
    done = {"p1": middle["p1"], "p2": ["SUCCEEDED"] * 1000}
    batch = ArrayBatch([running, running, middle, done])
    executor = BatchExecutor(Clients("us-east-1", batch, None, None), "q", "jd")
    ids = [f"{parent}:{i}" for parent in ("p1", "p2") for i in range(1000)]
    seen: list[dict[str, int]] = []

    def observe(latest):
        seen.append({s: sum(1 for d in latest.values() if d["status"] == s) for s in ("SUCCEEDED", "RUNNING")})

    latest = wait_for_jobs(executor, ids, sleep=clock.sleep, observe=observe)
    parents_only = [call for call in batch.described if all(":" not in job for job in call)]
    assert parents_only == [["p1", "p2"]] * 3 + [["p2"]]  # one call a poll; a finished array is not asked again
    # Each child is described once, when its array has ended (100 a call): the report's figures and diagnosis.
    children = [call for call in batch.described if call not in parents_only]
    assert [len(call) for call in children] == [100] * 20
    assert sorted(job_id for call in children for job_id in call) == sorted(ids)
    assert seen[0] == {"SUCCEEDED": 300, "RUNNING": 700}  # progress counts from the summaries
    assert latest["p1:999"]["status"] == "FAILED" and latest["p1:0"]["status"] == "SUCCEEDED"
    assert not any(d.get("estimated") for d in latest.values())


def test_a_failed_child_does_not_reset_the_backoff_at_every_poll(clock):
    """Which child is estimated to have failed moves as the counts grow: only a new failure is news."""
    rounds = [{"p": ["SUCCEEDED"] * n + ["FAILED"] + ["RUNNING"] * (99 - n)} for n in (10, 20, 30)]
    batch = ArrayBatch([*rounds, {"p": ["SUCCEEDED"] * 99 + ["FAILED"]}])
    executor = BatchExecutor(Clients("us-east-1", batch, None, None), "q", "jd")
    wait_for_jobs(executor, [f"p:{i}" for i in range(100)], sleep=clock.sleep)
    assert clock.slept == [10, 20, 40]


def test_polling_backs_off_unless_a_job_fails_or_a_stage_ends(clock):
    statuses = [["RUNNING"] * 4, ["SUCCEEDED"] + ["RUNNING"] * 3, ["SUCCEEDED"] * 2 + ["RUNNING"] * 2,
                ["SUCCEEDED"] * 2 + ["FAILED", "RUNNING"], ["SUCCEEDED"] * 2 + ["FAILED", "RUNNING"],
                ["SUCCEEDED"] * 2 + ["FAILED", "SUCCEEDED"]]  # fmt: skip

    class Jobs:
        round = -1

        def describe_jobs(self, jobs):
            self.round += 1  # one call a poll: four jobs
            now = statuses[min(self.round, len(statuses) - 1)]
            return {"jobs": [{"jobId": j, "status": now["abcd".index(j)], "attempts": []} for j in jobs]}

    executor = BatchExecutor(Clients("us-east-1", Jobs(), None, None), "q", "jd")
    wait_for_jobs(executor, list("abcd"), sleep=clock.sleep, groups=[["a", "b"], ["c", "d"]])
    # A job that merely finished does not reset the interval; stage a+b ending does, c failing does.
    assert clock.slept == [10, 20, 10, 10, 20]


def test_cancel_of_an_array_run_stops_each_array_once(aws, samples_file, run_ingest, entrypoint_definition):
    from conftest import invoke, load_script

    result = run_ingest(*base(samples_file(6)), "--num-jobs", "3", "--no-consolidate")
    record = record_of(aws, result.stderr)

    def in_flight(parsed, **_):
        for job in parsed.get("jobs", []):
            if "statusSummary" in job.get("arrayProperties", {}):
                job["arrayProperties"]["statusSummary"] = {"RUNNING": 1, "RUNNABLE": job["arrayProperties"]["size"] - 1}
            job["status"] = "PENDING" if "arrayProperties" in job else "SUCCEEDED"

    aws.on("after-call.batch.DescribeJobs", in_flight)
    aws.calls.clear()
    cancelled = invoke(load_script("batch-runs.py").main, ["cancel", record["record"]])
    assert cancelled.exit_code == 0, cancelled.stderr
    parent = result.lines[1].split()[-1]
    assert [call["jobId"] for call in calls_of(aws, "TerminateJob")] == [parent]  # its children with it
    assert calls_of(aws, "CancelJob") == []
    assert cancelled.lines[0].startswith(f"2 job(s) cancelled (had not started): {parent}:1 ")
    assert cancelled.lines[1].startswith(f"1 job(s) terminated (were running): {parent}:0 ")
    assert cancelled.lines[2].startswith("1 job(s) had already finished: ")  # the creation job
    # One DescribeJobs for the whole run: the creation job and the array's parent.
    assert len(calls_of(aws, "DescribeJobs")) == 1


def test_an_array_run_that_consolidates_reads_back_for_status(aws, samples_file, run_ingest, entrypoint_definition):
    """Consolidation (the default) after an ingestion array: its record reads back, the ledger and status use it."""
    from conftest import invoke, load_script

    result = run_ingest(*base(samples_file(6)), "--num-jobs", "3")
    assert result.exit_code == 0, result.stderr
    assert [job.get("arrayProperties") for job in aws.submitted] == [None, {"size": 3}, None, None, None, None]
    record = record_of(aws, result.stderr)
    assert [job["depends_on"] for job in record["jobs"] if job["key"] == "consolidate-1-1"] == [
        ["ingest-1-1", "ingest-1-2", "ingest-1-3"]
    ]
    status = invoke(load_script("batch-runs.py").main, ["status", record["record"]])
    assert status.exit_code in (0, 1) and "damaged" not in status.stderr, status.stderr
    assert "jobs finished" in status.stdout
