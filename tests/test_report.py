"""The report of a finished run: figures, cost, Spot interruptions, and failure diagnosis with logs."""

from __future__ import annotations

import contextlib
import io
import json
import re
import time

from conftest import DATASET
from tiledbvcf_batch.executors.batch import WORDS, BatchExecutor
from tiledbvcf_batch.report import build_report, format_report


def test_report_figures_and_cost():
    hour = 3_600_000
    jobs = [
        {
            "jobId": "a",
            "jobName": "one",
            "status": "SUCCEEDED",
            "attempts": [
                {"startedAt": 0, "stoppedAt": hour // 2, "container": {"containerInstanceArn": "i-1"}},
                {"startedAt": hour, "stoppedAt": 2 * hour, "container": {"containerInstanceArn": "i-2"}},
            ],
        },
        {
            "jobId": "b",
            "jobName": "two",
            "status": "SUCCEEDED",
            "attempts": [{"startedAt": 0, "stoppedAt": hour, "container": {"containerInstanceArn": "i-1"}}],
        },
        {"jobId": "c", "jobName": "three", "status": "FAILED", "statusReason": "Dependent Job failed", "attempts": []},
    ]
    report = build_report(jobs, instance_price=2.0)
    assert (report.total, report.succeeded, report.retried, report.instances) == (3, 2, 1, 2)
    assert report.longest_seconds == 5400.0
    assert report.instance_hours == 2.0 and report.cost == 4.0
    assert format_report(report, WORDS) == [
        "Finished waiting on 3 jobs:",
        "- 2 / 3 jobs succeeded",
        "- 1 jobs had more than 1 attempt.",
        "- 2 instances used.",
        "- Longest job took 5400.000 seconds (includes retries).",
        "- Total cost estimate $4.00 (2.00 hours @ $2.0000 / hr)",
        "FAILED job c (three): Dependent Job failed",
    ]


def test_spot_interruptions_are_counted():
    descriptions = [
        {"jobId": "a", "status": "SUCCEEDED", "attempts": [
            {"statusReason": "Host EC2 (instance i-1) terminated.", "startedAt": 0, "stoppedAt": 10},
            {"statusReason": "Essential container in task exited", "startedAt": 20, "stoppedAt": 30},
        ]},
    ]  # fmt: skip
    report = build_report(descriptions, 1.0, host_lost=BatchExecutor(None, "q", "jd").host_lost)
    assert report.spot_interruptions == 1 and report.retried == 1


def fail_with(aws, reason: str, exit_code: int, container_reason: str | None, streams: bool = True) -> None:
    """Give moto's failed jobs what a real failed attempt carries."""

    def handler(parsed, **_):
        for job in parsed.get("jobs", []):
            if job["status"] != "FAILED":
                continue
            job["statusReason"] = reason
            for attempt in job.get("attempts", []):
                attempt["statusReason"] = reason
                attempt["container"]["exitCode"] = exit_code
                if container_reason:
                    attempt["container"]["reason"] = container_reason
                if not streams:
                    attempt["container"].pop("logStreamName", None)

    aws.on("after-call.batch.DescribeJobs", handler)


def put_log(aws, group: str, stream: str, lines: list[str]) -> None:
    with contextlib.suppress(aws.logs.exceptions.ResourceAlreadyExistsException):
        aws.logs.create_log_group(logGroupName=group)
    aws.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    start = int(time.time() * 1000)
    events = [{"timestamp": start + i, "message": line} for i, line in enumerate(lines)]
    aws.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def run_failing(aws, samples_file, run_ingest, monkeypatch, *extra: str):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    samples = samples_file(3)
    return run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
        "--num-jobs", "3", "--wait", *extra,
    )  # fmt: skip


LOG = [f"[2027-01-15 08:0{i}:00] [tiledbvcf] [info] step {i}" for i in range(30)] + [
    "[critical] Error: [TileDB::S3] Access Denied"
]


def test_failed_jobs_are_grouped_with_reason_exit_code_and_log_tail(aws, samples_file, run_ingest, monkeypatch):
    fail_with(aws, "Essential container in task exited", 1, None)
    original = aws.on
    streams = []
    original("before-parameter-build.logs.GetLogEvents", lambda params, **_: streams.append(params["logStreamName"]))
    aws.on(
        "after-call.batch.SubmitJob",
        lambda parsed, **_: put_log(aws, "/aws/batch/job", f"tiledbvcf-24h/default/{parsed['jobId']}", LOG),
    )
    result = run_failing(aws, samples_file, run_ingest, monkeypatch, "--log-lines", "3")
    assert result.exit_code == 1
    out = result.stdout
    assert "- 0 / 8 jobs succeeded" in out  # creation, 3 ingestion, 4 consolidation
    assert "8 jobs failed with the same error: tiledbvcf-create, tiledbvcf-ingest-b1-j1" in out
    assert "  status reason: Essential container in task exited" in out
    assert "  attempt 1 of tiledbvcf-create: exit code 1, Essential container in task exited" in out
    assert re.search(r"    log: /aws/batch/job tiledbvcf-24h/default/[0-9a-f-]{36}\n", out)
    tail = [line for line in out.splitlines() if line.startswith("    | ")]
    assert tail == [f"    | {line}" for line in LOG[-3:]]
    assert len(streams) == 1  # one log read for the whole group, not one per job


def test_missing_log_group_still_reports_everything_else(aws, samples_file, run_ingest, monkeypatch):
    fail_with(aws, "Essential container in task exited", 137, "OutOfMemoryError: Container killed due to memory usage")
    result = run_failing(aws, samples_file, run_ingest, monkeypatch)
    assert result.exit_code == 1
    assert "exit code 137, Essential container in task exited, container: OutOfMemoryError" in result.stdout
    assert re.search(r"\(log stream tiledbvcf-24h/default/\S+ not found in log group /aws/batch/job\)", result.stdout)


def test_attempt_without_log_stream(aws, samples_file, run_ingest, monkeypatch):
    fail_with(aws, "CannotPullContainerError: pull image manifest has been retried", 0, None, streams=False)
    result = run_failing(aws, samples_file, run_ingest, monkeypatch)
    assert "(no log stream: the attempt never reached RUNNING)" in result.stdout
    assert "status reason: CannotPullContainerError" in result.stdout


def test_custom_log_group_of_the_job_definition(aws, samples_file, run_ingest, monkeypatch):
    aws.batch.register_job_definition(
        jobDefinitionName="tiledbvcf-24h",
        type="container",
        containerProperties={
            "image": "tiledbvcf",
            "resourceRequirements": [{"type": "VCPU", "value": "16"}, {"type": "MEMORY", "value": "61440"}],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/tiledbvcf/jobs"}},
        },
    )
    fail_with(aws, "Essential container in task exited", 1, None)
    aws.on(
        "after-call.batch.SubmitJob",
        lambda parsed, **_: put_log(aws, "/tiledbvcf/jobs", f"tiledbvcf-24h/default/{parsed['jobId']}", ["boom"]),
    )
    result = run_failing(aws, samples_file, run_ingest, monkeypatch)
    assert re.search(r"    log: /tiledbvcf/jobs tiledbvcf-24h/default/\S+\n    \| boom\n", result.stdout)


def test_json_report_document(aws, samples_file, run_ingest, monkeypatch):
    fail_with(aws, "Essential container in task exited", 1, None)
    result = run_failing(aws, samples_file, run_ingest, monkeypatch, "--json")
    assert result.exit_code == 1  # a failed consolidation job fails no sample: samples_failed counts ingestion
    document = json.loads(result.stdout)  # exactly one document: the Submitted lines went to stderr
    assert document["ok"] is False and document["kind"] == "ingest" and document["target"] == DATASET
    assert (document["total"], document["succeeded"], document["samples_succeeded"], document["samples_failed"]) == (
        8, 0, 0, 3,
    )  # fmt: skip
    assert set(document["stages"]) == {"create", "ingest-1", "consolidate-1"}
    assert document["stages"]["ingest-1"]["jobs"] == 3 and document["stages"]["consolidate-1"]["jobs"] == 4
    assert document["failures"][0]["status_reason"] == "Essential container in task exited"
    assert len(document["failures"][0]["jobs"]) == 8
    for key in ("retried", "instances", "longest_seconds", "instance_hours", "instance_price", "cost",
                "spot_interruptions", "record", "run_id", "missing_exports"):  # fmt: skip
        assert key in document
    assert "Finished waiting on 8 jobs:" in result.stderr  # the human report moved to stderr
    assert "Submitted ingestion job(s) " in result.stderr
    assert len(document["submitted"]["ingest-1"]) == 3 and document["submitted"]["create"][0] in result.stderr


def test_root_causes_first_then_the_jobs_that_only_failed_because_of_them():
    from tiledbvcf_batch.record import RecordedJob, RunRecord
    from tiledbvcf_batch.report import diagnose_failures, failed_jobs, followers

    jobs = [RecordedJob(f"ingest-1-{i}", "ingest-1", f"store-{i}", f"id-{i}") for i in range(25)]
    jobs += [
        RecordedJob(f"ingest-2-{i}", "ingest-2", f"next-{i}", f"next-{i}", [j.key for j in jobs[:3]]) for i in range(3)
    ]
    record = RunRecord("r", "ingest", "2027-01-15T08:00:00+00:00", "us-east-1", DATASET, None, {}, jobs, {})
    attempt = {"statusReason": "Essential container in task exited", "container": {"exitCode": 1}}
    latest = {j.job_id: {"jobId": j.job_id, "jobName": j.name, "status": "FAILED", "statusReason": "exited",
                         "attempts": [attempt]} for j in jobs[:25]}  # fmt: skip
    latest |= {j.job_id: {"jobId": j.job_id, "jobName": j.name, "status": "FAILED", "attempts": []} for j in jobs[25:]}
    dependents = followers(record, latest)
    assert dependents == {"next-0", "next-1", "next-2"}
    report = build_report(list(latest.values()), 1.0, record)
    assert [f["cause"] for f in report.failed] == ["own"] * 25 + ["dependency"] * 3
    lines = [line for line in format_report(report, WORDS) if line.startswith("FAILED")]
    assert len(lines) == 22 and lines[0] == "FAILED job id-0 (store-0): exited"
    assert lines[20] == "FAILED: 5 more jobs (python batch-runs.py logs lists them all)"
    assert lines[21] == "FAILED: 3 jobs did not run because a job they depend on failed: next-0, next-1, next-2"

    class NoLogs:
        def log_tail(self, *_):
            return None

    (group,) = diagnose_failures(NoLogs(), list(latest.values()), 5, dependents)
    assert len(group["jobs"]) == 25  # the dependents are not diagnosed as causes
    assert failed_jobs([], set()) == []


def test_a_run_submitted_watched_and_reported_whatever_runs_it(tmp_path):
    """Submit, watch and report through the stub executor: the report is the neutral modules' own."""
    from conftest import local_ingest_plan
    from stub_executor import StubExecutor, Timeline, known_run
    from tiledbvcf_batch.report import finish_report
    from tiledbvcf_batch.storage import Storage
    from tiledbvcf_batch.submit import jobs_for, submit_plan
    from tiledbvcf_batch.watch import watch_run

    plan = local_ingest_plan(tmp_path, samples=2)
    timeline = Timeline()
    log = [f"[tiledbvcf] step {i}" for i in range(5)] + ["[critical] Error: [TileDB::S3] Access Denied"]
    executor = StubExecutor(timeline, logs={"id-ingest-1-2": log})
    record = submit_plan(plan, jobs_for(plan, executor), executor, Storage(None), {}, region="us-east-1")

    known_run(timeline)
    latest = watch_run(record, executor, stream=io.StringIO(), now=timeline.now, tty=False)
    finished = finish_report(record, latest, Storage(None), executor, instance_price=1.0, log_lines=2)
    assert finished.lines == [
        "Finished waiting on 3 jobs:",
        "- 2 / 3 jobs succeeded",
        "- 1 jobs had more than 1 attempt.",
        "- 3 instances used.",
        "- Longest job took 3600.000 seconds (includes retries).",
        "- Total cost estimate $1.18 (1.18 hours @ $1.0000 / hr)",  # i-1 660 s, i-2 and i-3 1800 s each
        "- 1 host losses (stub) survived or retried.",
        "- array creation: 1 / 1 jobs succeeded, took 1m00s",
        "- ingestion 1: 1 / 2 jobs succeeded, took 1h00m00s",
        "- Samples: 1 in jobs that succeeded, 1 in jobs that did not.",
        "FAILED job id-ingest-1-2 (name-id-ingest-1-2): exited 1",
        "1 job failed: name-id-ingest-1-2",
        "  status reason: exited 1",
        "  attempt 1 of name-id-ingest-1-2: exit code 1, Essential container in task exited",
        "    log: stub-logs stream-id-ingest-1-2",
        "    | [tiledbvcf] step 4",
        "    | [critical] Error: [TileDB::S3] Access Denied",
    ]
    assert not finished.report.ok and finished.document["failures"][0]["attempts"][0]["log"] == log[-2:]
