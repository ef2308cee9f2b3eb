"""batch-runs.py report --trace: one row per job attempt; batch-runs.py logs --all: the jobs that succeeded too."""

from __future__ import annotations

import csv
import io
import json

from test_report import put_log

from conftest import DATASET, invoke, load_script, recorded_run
from tiledbvcf_batch.trace import COLUMNS, trace_rows, trace_text, utc_time

RUNS = load_script("batch-runs.py")
HOST_LOST = "Host EC2 (instance i-0abc) terminated."


def read_tsv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


def test_one_row_per_attempt_and_one_for_a_job_that_never_ran():
    record = recorded_run({"create": 1, "ingest-1": 2})
    record.jobs[2].job_id = None  # never submitted
    latest = {
        "create/1": {"jobId": "create/1", "status": "SUCCEEDED", "createdAt": 1_800_000_000_000, "attempts": [
            {"startedAt": 1_800_000_001_000, "stoppedAt": 1_800_000_061_500, "statusReason": HOST_LOST,
             "container": {"exitCode": 137, "containerInstanceArn": "arn:aws:ecs:i-1"}},
            {"startedAt": 1_800_000_100_000, "stoppedAt": 1_800_000_160_000,
             "container": {"exitCode": 0, "containerInstanceArn": "arn:aws:ecs:i-2"}},
        ]},
        "ingest-1/1": {"jobId": "ingest-1/1", "status": "FAILED", "statusReason": 'Dependent "job"\tfailed',
                       "attempts": []},
    }  # fmt: skip
    rows = trace_rows(record, latest)
    assert [(row["job"], row["attempt"], row["status"]) for row in rows] == [
        ("tiledbvcf-create-1", "1", "SUCCEEDED"),
        ("tiledbvcf-create-1", "2", "SUCCEEDED"),
        ("tiledbvcf-ingest-1-1", "", "FAILED"),
        ("tiledbvcf-ingest-1-2", "", "NOT SUBMITTED"),
    ]
    first = rows[0]
    assert first["submitted"] == "2027-01-15T08:00:00.000Z"
    assert (first["started"], first["stopped"]) == ("2027-01-15T08:00:01.000Z", "2027-01-15T08:01:01.500Z")
    assert (first["exit_code"], first["status_reason"], first["instance"]) == ("137", HOST_LOST, "arn:aws:ecs:i-1")
    assert first["samples"] == "1" and first["bytes"] == "" and first["stage"] == "create"
    assert rows[2]["status_reason"] == 'Dependent "job" failed'  # no tab left to cut the cell

    text = trace_text(rows)
    assert text.splitlines()[0].split("\t") == list(COLUMNS)
    assert read_tsv(text) == rows  # a quote in a cell is quoted, as pandas and spreadsheets read it


def test_times_are_utc_and_unknown_ones_empty():
    assert utc_time(0) == "1970-01-01T00:00:00.000Z"
    assert utc_time(None) == utc_time("soon") == utc_time(True) == ""


def retried_once(aws) -> None:
    """Every job's description gains an earlier attempt whose Spot host went away; the one that ran, its exit code
    (moto gives none)."""

    def handler(parsed, **_):
        for job in parsed.get("jobs", []):
            attempts = job.get("attempts") or []
            if attempts and attempts[0].get("statusReason") != HOST_LOST:
                start = attempts[0]["startedAt"]
                attempts[0] |= {"startedAt": start + 2000, "stoppedAt": start + 3000}
                lost = {
                    "startedAt": start,
                    "stoppedAt": start + 1000,
                    "statusReason": HOST_LOST,
                    "container": {"exitCode": 137, "containerInstanceArn": "lost"},
                }
                attempts[0]["container"].setdefault("exitCode", 0)
                job["attempts"] = [lost, *attempts]  # fmt: skip

    aws.on("after-call.batch.DescribeJobs", handler)


def sample_sizes(aws) -> list[int]:
    """The sizes of the samples put in the emulated S3, in key order (the jobs' order)."""
    listed = aws.s3.list_objects_v2(Bucket="bucket-name", Prefix="samples/")["Contents"]
    return [item["Size"] for item in sorted(listed, key=lambda item: item["Key"]) if item["Key"].endswith(".bcf")]


def ingest(run_ingest, samples_file) -> str:
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(2)), "--metadata-s3", "bucket2-name",
        "--num-jobs", "2", "--no-consolidate", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return result.stderr.split("recorded at ")[1].split()[0]


def test_report_writes_a_trace_of_every_attempt_of_a_retried_run(aws, samples_file, run_ingest, tmp_path):
    retried_once(aws)
    uri = ingest(run_ingest, samples_file)
    path = tmp_path / "trace.tsv"
    result = invoke(RUNS.main, ["report", uri, "--trace", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "- 3 / 3 jobs succeeded" in result.stdout and "- 3 jobs had more than 1 attempt." in result.stdout
    assert f"Trace of 6 job attempts written to {path}" in result.stderr
    rows = read_tsv(path.read_text())
    assert [(row["job"], row["attempt"]) for row in rows] == [
        (name, number)
        for name in ("tiledbvcf-create", "tiledbvcf-ingest-b1-j1", "tiledbvcf-ingest-b1-j2")
        for number in ("1", "2")
    ]
    assert [row["stage"] for row in rows[::2]] == ["create", "ingest-1", "ingest-1"]
    assert [row["samples"] for row in rows[::2]] == ["0", "1", "1"]
    sizes = sample_sizes(aws)  # an ingestion job's bytes: its input files', as listed before it was submitted
    assert sizes == [5, 5]
    assert [row["bytes"] for row in rows] == ["", "", "5", "5", "5", "5"]
    assert {row["status"] for row in rows} == {"SUCCEEDED"}
    lost, ran = rows[0], rows[1]
    assert (lost["status_reason"], lost["exit_code"], lost["instance"]) == (HOST_LOST, "137", "lost")
    assert ran["exit_code"] == "0" and ran["instance"] not in ("", "lost")
    for row in rows:
        assert row["submitted"].endswith("Z") and row["submitted"] <= row["started"] <= row["stopped"]
    as_json = invoke(RUNS.main, ["report", uri, "--json"])
    assert json.loads(as_json.stdout)["retried"] == 3


def test_logs_all_shows_the_jobs_that_succeeded(aws, samples_file, run_ingest):
    aws.on(
        "after-call.batch.SubmitJob",
        lambda parsed, **_: put_log(aws, "/aws/batch/job", f"tiledbvcf-24h/default/{parsed['jobId']}", ["ok", "done"]),
    )
    uri = ingest(run_ingest, samples_file)
    failed_only = invoke(RUNS.main, ["logs", uri])
    assert failed_only.stdout.splitlines() == [f"No failed jobs in run {uri.split('/')[-2]}."]
    every = invoke(RUNS.main, ["logs", uri, "--all", "--log-lines", "1"])
    assert every.exit_code == 0, every.stderr
    lines = every.stdout.splitlines()
    assert "1 job succeeded: tiledbvcf-create (" in lines[1]
    assert [line for line in lines if line.startswith("    | ")] == ["    | done"] * 3
    assert sum(line.startswith("1 job succeeded: ") for line in lines) == 3
    document = json.loads(invoke(RUNS.main, ["logs", uri, "--all", "--json"]).stdout)
    assert document["failed"] == []
    assert [job["name"] for job in document["succeeded"]] == [
        "tiledbvcf-create", "tiledbvcf-ingest-b1-j1", "tiledbvcf-ingest-b1-j2"
    ]  # fmt: skip
    assert document["succeeded"][0]["attempts"][0]["log"] == ["ok", "done"]
