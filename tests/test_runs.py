"""Watching a run: progress, stuck jobs, failure diagnosis with logs, JSON, re-attach, Ctrl-C, cancel."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

import common
import local_aws
from conftest import ROOT, load_script

RUNS = load_script("batch-runs.py")
DATASET = "s3://my-bucketname/test-vcf-dataset"
T0 = 1_800_000_000.0


def record(stages: dict[str, int], kind: str = "ingest") -> dict[str, Any]:
    jobs = []
    for stage, count in stages.items():
        for i in range(1, count + 1):
            jobs.append(
                {"key": f"{stage}-{i}", "stage": stage, "name": f"tiledbvcf-{stage}-{i}", "job_id": f"{stage}/{i}",
                 "samples": [f"s3://b/{stage}-{i}.bcf"], "manifest": None}
            )  # fmt: skip
    return {
        "run_id": "ingest-r1",
        "kind": kind,
        "target": DATASET,
        "record": "s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/run.json",
        "created_at": "2027-01-15T08:00:00+00:00",
        "region": "us-east-1",
        "options": {},
        "jobs": jobs,
    }


class Script:
    """A Batch whose describe_jobs replays one status map per poll round."""

    def __init__(self, rounds: list[dict[str, dict[str, Any]]]):
        self.rounds = rounds
        self.round = 0
        self.seen: set[str] = set()

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        if set(jobs) & self.seen:
            self.round = min(self.round + 1, len(self.rounds) - 1)
            self.seen = set()
        self.seen |= set(jobs)
        state = self.rounds[self.round]
        return {"jobs": [{"jobId": j, "jobName": j, "attempts": [], **state[j]} for j in jobs]}

    def describe_job_definitions(self, **_):
        return {"jobDefinitions": []}


def clock():
    now = [T0]
    return now, (lambda: now[0]), (lambda seconds: now.__setitem__(0, now[0] + seconds))


def statuses(run: dict[str, Any], status: str, **extra: Any) -> dict[str, dict[str, Any]]:
    return {job["job_id"]: {"status": status, **extra} for job in run["jobs"]}


def test_plain_progress_prints_on_change_at_most_once_a_minute():
    run = record({"create": 1, "ingest-1": 2})
    now, read, _ = clock()
    out = io.StringIO()
    progress = common.Progress(run, now=read, tty=False, stream=out)
    latest = {j["job_id"]: {"status": "RUNNABLE"} for j in run["jobs"]}
    progress.show(latest)
    latest["create/1"] = {"status": "SUCCEEDED"}
    now[0] += 30
    progress.show(latest)  # changed, but within the minute of the last line: nothing yet
    now[0] += 31
    progress.show(latest)  # a minute later, and different from the last line printed: printed
    now[0] += 61
    progress.show(latest)  # due, but the same as the last line printed: nothing
    latest = {j["job_id"]: {"status": "SUCCEEDED"} for j in run["jobs"]}
    progress.show(latest, final=True)
    created = common.created_epoch(run)
    elapsed = [common.format_duration(T0 + d - created) for d in (0, 61, 122)]
    assert out.getvalue().splitlines() == [
        f"[ingest-r1] 0/3 jobs finished, {elapsed[0]} since submission: array creation: RUNNABLE 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 1/3 jobs finished, {elapsed[1]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 3/3 jobs finished, {elapsed[2]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: SUCCEEDED 2",
    ]


def test_terminal_progress_redraws_in_place():
    run = record({"export": 2}, kind="export")
    out = io.StringIO()
    progress = common.Progress(run, now=lambda: T0, tty=True, stream=out)
    progress.show({"export/1": {"status": "RUNNING"}, "export/2": {"status": "RUNNABLE"}})
    progress.show({"export/1": {"status": "SUCCEEDED"}, "export/2": {"status": "RUNNING"}})
    first, second = out.getvalue().split("\x1b[2F\x1b[J")
    assert first.splitlines()[1] == "  export: RUNNABLE 1, RUNNING 1"
    assert second.splitlines()[1] == "  export: RUNNING 1, SUCCEEDED 1"


def test_stuck_misconfiguration_is_reported_at_once_and_capacity_only_if_it_lasts(capsys):
    run = record({"ingest-1": 3})
    stuck = {"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - too big"}
    waiting = {"status": "RUNNABLE", "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - none"}
    rounds = [
        {"ingest-1/1": stuck, "ingest-1/2": stuck, "ingest-1/3": waiting},
        {"ingest-1/1": stuck, "ingest-1/2": stuck, "ingest-1/3": waiting},
        {"ingest-1/1": stuck, "ingest-1/2": stuck, "ingest-1/3": waiting},
        {"ingest-1/1": {"status": "FAILED"}, "ingest-1/2": {"status": "FAILED"}, "ingest-1/3": {"status": "SUCCEEDED"}},
    ]
    _, read, sleep = clock()
    clients = common.Clients("us-east-1", Script(rounds), None, None)
    code = common.watch_run(clients, run, instance_price=1.0, sleep=sleep, now=read, tty=False, interval=1000)
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    stuck_lines = [line for line in err if line.startswith("STUCK")]
    assert stuck_lines == [
        "STUCK: 2 job(s) (e.g. tiledbvcf-ingest-1-1) are RUNNABLE with MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
        " - too big and will never start: check the compute environment, its service role and the job's "
        "resources. Cancel the run with python batch-runs.py cancel ..."
    ]
    assert err.index(stuck_lines[0]) < 3  # reported after the first poll, not at the end
    warnings = [line for line in err if line.startswith("WARNING")]
    assert len(warnings) == 1 and "has waited 16m40s for capacity (CAPACITY:INSUFFICIENT" in warnings[0]


def test_known_misconfiguration_gets_specific_advice():
    stuck = common.StuckJobs(now=lambda: T0)
    latest = {"a": {"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"}}
    (message,) = stuck.check(latest, {"a": "job-a"})
    assert "more vCPUs or memory than any instance" in message
    assert stuck.check(latest, {"a": "job-a"}) == []  # said once


def test_watch_backs_off_when_nothing_changes(capsys):
    run = record({"ingest-1": 1})
    rounds = [statuses(run, "RUNNING")] * 5 + [statuses(run, "SUCCEEDED")]
    slept: list[float] = []
    clients = common.Clients("us-east-1", Script(rounds), None, None)
    assert common.watch_run(clients, run, instance_price=1, sleep=slept.append, now=lambda: T0, tty=False) == 0
    assert slept == [10, 20, 40, 60, 60]
    assert "- 1 / 1 jobs succeeded" in capsys.readouterr().out


# -- Failure diagnosis against emulated Batch and CloudWatch Logs ------------------------------


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
    assert "- 0 / 4 jobs succeeded" in out
    assert "4 jobs failed with the same error: tiledbvcf-create, tiledbvcf-ingest-b1-j1" in out
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
    assert result.exit_code == 1
    document = json.loads(result.stdout[result.stdout.index("\n{") :])  # after the Submitted lines
    assert document["ok"] is False and document["kind"] == "ingest" and document["target"] == DATASET
    assert (document["total"], document["succeeded"], document["samples_succeeded"], document["samples_failed"]) == (
        4, 0, 0, 3,
    )  # fmt: skip
    assert set(document["stages"]) == {"create", "ingest-1"}
    assert document["stages"]["ingest-1"]["jobs"] == 3
    assert document["failures"][0]["status_reason"] == "Essential container in task exited"
    assert len(document["failures"][0]["jobs"]) == 4
    for key in ("retried", "instances", "longest_seconds", "instance_hours", "instance_price", "cost",
                "spot_interruptions", "record", "run_id", "missing_exports"):  # fmt: skip
        assert key in document
    assert "Finished waiting on 4 jobs:" in result.stderr  # the human report moved to stderr


def test_spot_interruptions_are_counted():
    descriptions = [
        {"jobId": "a", "status": "SUCCEEDED", "attempts": [
            {"statusReason": "Host EC2 (instance i-1) terminated.", "startedAt": 0, "stoppedAt": 10},
            {"statusReason": "Essential container in task exited", "startedAt": 20, "stoppedAt": 30},
        ]},
    ]  # fmt: skip
    report = common.build_report(descriptions, 1.0, record({"ingest-1": 0}) | {"jobs": []})
    assert report.spot_interruptions == 1 and report.retried == 1


# -- A run that outlives the terminal: fresh processes and only the run record ---------------


@pytest.fixture
def server(monkeypatch, tmp_path):
    server, endpoint = local_aws.start_server()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    local_aws.create_buckets()
    local_aws.create_batch_environment()
    uris = local_aws.put_samples(4)
    (tmp_path / "samples.txt").write_text("".join(f"{uri}\n" for uri in uris))
    yield endpoint
    server.stop()


def script(name: str, *args: str, cwd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / name), *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True,
        timeout=120, **kwargs,
    )  # fmt: skip


def submit(tmp_path) -> tuple[str, list[str]]:
    result = script(
        "batch-ingest.py", "--dataset-uri", DATASET, "--samples", "samples.txt", "--metadata-s3", "bucket2-name",
        "--job-queue", "tiledbvcf-job-queue", "--job-definition", "tiledbvcf-24h", "--num-jobs", "2", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    uri = re.search(r"recorded at (s3://\S+)", result.stderr).group(1)
    return uri, [line.split()[-1] for line in result.stdout.splitlines()[:1]] + result.stdout.splitlines()[1].split()[
        3:
    ]


def set_status(job_ids: list[str], status: str) -> None:
    from moto.batch.models import batch_backends

    for job_id in job_ids:
        job = batch_backends["123456789012"]["us-east-1"]._jobs[job_id]
        job.status = status
        job.job_stopped = status in common.TERMINAL_STATUSES


def test_status_and_wait_again_from_a_fresh_process(server, tmp_path):
    uri, ids = submit(tmp_path)
    set_status(ids[1:], "RUNNING")
    running = script("batch-runs.py", "status", uri, cwd=tmp_path)
    assert running.returncode == 3
    assert "1/3 jobs finished" in running.stdout
    assert "  ingestion 1: RUNNING 2" in running.stdout

    set_status(ids[1:], "SUCCEEDED")
    run_id = uri.split("/")[-2]
    by_id = script("batch-runs.py", "wait", run_id, "--metadata-s3", "bucket2-name", cwd=tmp_path)
    assert by_id.returncode == 0, by_id.stderr
    assert "- 3 / 3 jobs succeeded" in by_id.stdout
    done = script("batch-runs.py", "status", uri, "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
    listed = script("batch-runs.py", "list", "--metadata-s3", "bucket2-name", cwd=tmp_path)
    assert listed.stdout.startswith(f"{run_id}  3 jobs  {DATASET}  {uri}")


def test_ctrl_c_stops_waiting_not_the_jobs(server, tmp_path):
    uri, ids = submit(tmp_path)
    set_status(ids, "RUNNING")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "batch-runs.py"), "wait", uri], cwd=tmp_path, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = process.stderr.readline()  # "Waiting on ..." once the record is read
    assert first.startswith("Waiting on 3 jobs of run ")
    process.stderr.readline()  # the first progress line: it is polling
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "The jobs of run" in err and "keep running on AWS Batch" in err
    assert f"re-attach: python batch-runs.py wait {uri}" in err
    assert f"cancel:    python batch-runs.py cancel {uri}" in err
    assert "Traceback" not in err
    batch = boto3.client("batch", region_name="us-east-1")
    assert {job["status"] for job in batch.describe_jobs(jobs=ids)["jobs"]} == {"RUNNING"}


def test_cancel_from_a_fresh_process(server, tmp_path):
    from moto.batch.models import batch_backends

    uri, ids = submit(tmp_path)
    set_status(ids[:1], "SUCCEEDED")
    set_status(ids[1:2], "RUNNING")
    set_status(ids[2:], "RUNNABLE")
    result = script("batch-runs.py", "cancel", uri, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"1 job(s) cancelled (had not started): {ids[2]} (tiledbvcf-ingest-b1-j2)",
        f"1 job(s) terminated (were running): {ids[1]} (tiledbvcf-ingest-b1-j1)",
        f"1 job(s) had already finished: {ids[0]} (tiledbvcf-create)",
    ]
    jobs = batch_backends["123456789012"]["us-east-1"]._jobs
    assert [jobs[i].stop for i in ids] == [False, True, True]
    assert jobs[ids[1]].job_stopped_reason.startswith("cancelled with batch-runs.py")


def test_logs_command_and_bad_run_argument(aws):
    runner = CliRunner()
    result = runner.invoke(RUNS.main, ["logs", "ingest-x"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: RUN 'ingest-x' is a run id: add --metadata-s3, or give the run record's s3:// URI instead\n"
    )
    missing = runner.invoke(RUNS.main, ["logs", "s3://bucket2-name/tiledbvcf-batch/runs/nope/run.json"])
    assert missing.exit_code == 2 and "cannot read run record" in missing.stderr


def test_help_makes_the_companion_discoverable():
    from conftest import EXPORT, INGEST

    for command in (INGEST.main, EXPORT.main):
        assert "python batch-runs.py --help" in CliRunner().invoke(command, ["--help"]).output
    text = CliRunner().invoke(RUNS.main, ["--help"]).output
    for name in ("status", "wait", "logs", "cancel", "list"):
        assert re.search(rf"^  {name}\s", text, re.MULTILINE)
