"""batch-runs.py: a run that outlives the terminal, from fresh processes and only the run record."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import boto3
from click.testing import CliRunner

from conftest import DATASET, ROOT, load_script, run_script, set_job_status, stop_requests

RUNS = load_script("batch-runs.py")


def submit(tmp_path) -> tuple[str, list[str]]:
    # Without consolidation: the jobs these tests steer are those of the documented Submitted lines.
    result = run_script(
        "batch-ingest.py", "--dataset-uri", DATASET, "--samples", "samples.txt", "--metadata-s3", "bucket2-name",
        "--job-queue", "tiledbvcf-job-queue", "--job-definition", "tiledbvcf-24h", "--num-jobs", "2",
        "--no-consolidate", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    uri = re.search(r"recorded at (s3://\S+)", result.stderr).group(1)
    return uri, [line.split()[-1] for line in result.stdout.splitlines()[:1]] + result.stdout.splitlines()[1].split()[
        3:
    ]


def test_status_and_wait_again_from_a_fresh_process(server, tmp_path):
    uri, ids = submit(tmp_path)
    set_job_status(ids[1:], "RUNNING")
    running = run_script("batch-runs.py", "status", uri, cwd=tmp_path)
    assert running.returncode == 3
    assert "1/3 jobs finished" in running.stdout
    assert "  ingestion 1: RUNNING 2" in running.stdout

    set_job_status(ids[1:], "SUCCEEDED")
    run_id = uri.split("/")[-2]
    by_id = run_script("batch-runs.py", "wait", run_id, "--metadata-s3", "bucket2-name", cwd=tmp_path)
    assert by_id.returncode == 0, by_id.stderr
    assert "- 3 / 3 jobs succeeded" in by_id.stdout
    finished = run_script("batch-runs.py", "status", uri, cwd=tmp_path)
    assert re.match(rf"\[{run_id}\] 3/3 jobs finished, took \d+m\d\ds\n", finished.stdout)  # not "since"
    done = run_script("batch-runs.py", "status", uri, "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
    listed = run_script("batch-runs.py", "list", "--metadata-s3", "bucket2-name", cwd=tmp_path)
    assert re.fullmatch(rf"{run_id}  succeeded  3 jobs  \d+m\d\ds  {DATASET}  {uri}\n", listed.stdout)
    as_json = json.loads(
        run_script("batch-runs.py", "list", "--metadata-s3", "bucket2-name", "--json", cwd=tmp_path).stdout
    )
    assert as_json == [{"run_id": run_id, "state": "succeeded", "jobs": 3, "seconds": as_json[0]["seconds"],
                        "target": DATASET, "record": uri}]  # fmt: skip


def test_ctrl_c_stops_waiting_not_the_jobs(server, tmp_path):
    uri, ids = submit(tmp_path)
    set_job_status(ids, "RUNNING")
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

    # With --json, stdout still carries exactly one document.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "batch-runs.py"), "wait", uri, "--json"], cwd=tmp_path, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stderr.readline()
    process.stderr.readline()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert json.loads(out) == {"run_id": uri.split("/")[-2], "record": uri, "interrupted": True}


def test_cancel_from_a_fresh_process(server, tmp_path):
    uri, ids = submit(tmp_path)
    set_job_status(ids[:1], "SUCCEEDED")
    set_job_status(ids[1:2], "RUNNING")
    set_job_status(ids[2:], "RUNNABLE")
    result = run_script("batch-runs.py", "cancel", uri, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"1 job(s) cancelled (had not started): {ids[2]} (tiledbvcf-ingest-b1-j2)",
        f"1 job(s) terminated (were running): {ids[1]} (tiledbvcf-ingest-b1-j1)",
        f"1 job(s) had already finished: {ids[0]} (tiledbvcf-create)",
    ]
    stops = stop_requests(ids)
    assert [stop is not None for stop in stops] == [False, True, True]
    assert stops[1].startswith("cancelled with batch-runs.py")


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
    for name in ("status", "wait", "report", "logs", "cancel", "list"):
        assert re.search(rf"^  {name}\s", text, re.MULTILINE)


def test_status_of_a_run_batch_has_forgotten_says_what_is_known(aws):
    prefix = "tiledbvcf-batch/runs/ingest-20261101T000000Z-000000/"
    jobs = [
        {"key": "create", "stage": "create", "name": "tiledbvcf-create", "job_id": "gone-0", "depends_on": [],
         "manifest": None, "samples": []},
    ] + [
        {"key": f"ingest-1-{i}", "stage": "ingest-1", "name": f"tiledbvcf-ingest-b1-j{i}", "job_id": f"gone-{i}",
         "depends_on": ["create"], "manifest": f"s3://bucket2-name/{prefix}ingest-b001-j000{i}.txt",
         "samples": [f"s3://bucket-name/samples/{i}.bcf"]}
        for i in (1, 2)
    ]  # fmt: skip
    record = {"run_id": "ingest-20261101T000000Z-000000", "kind": "ingest", "created_at": "2026-11-01T00:00:00+00:00",
              "region": "us-east-1", "target": DATASET, "record": f"s3://bucket2-name/{prefix}run.json",
              "options": {}, "jobs": jobs, "job_queue": "q", "job_definition": "d"}  # fmt: skip
    aws.s3.put_object(Bucket="bucket2-name", Key=f"{prefix}run.json", Body=json.dumps(record).encode())
    aws.s3.put_object(Bucket="bucket2-name", Key=f"{prefix}ingest-b001-j0002.txt", Body=b"s3://x/2.bcf\n")
    result = CliRunner().invoke(RUNS.main, ["status", f"s3://bucket2-name/{prefix}run.json"])
    assert result.exit_code == 1, result.output
    assert "3/3 jobs finished" in result.stdout and "FORGOTTEN 1" in result.stdout
    assert (
        "- 3 jobs are no longer known to AWS Batch (it forgets jobs some days after they end); by what they left, "
        "2 succeeded and 1 cannot be told." in result.stdout
    )  # the creation job succeeded: a job after it did; job 2's manifest is still there
    assert "- Samples: 1 in jobs that succeeded, 1 in jobs that did not." in result.stdout

    aws.s3.delete_object(Bucket="bucket2-name", Key=f"{prefix}ingest-b001-j0002.txt")  # it had succeeded too
    again = CliRunner().invoke(RUNS.main, ["status", f"s3://bucket2-name/{prefix}run.json"])
    assert again.exit_code == 0, again.output  # an old run that succeeded is not called failed
    assert "- 3 / 3 jobs succeeded" in again.stdout
    listed = CliRunner().invoke(RUNS.main, ["list", "--metadata-s3", "bucket2-name"])
    assert "  succeeded  3 jobs  " in listed.stdout


def test_a_closed_stdout_keeps_the_submitted_jobs(server, tmp_path):
    """``batch-ingest.py ... | head -1``: once head exits, the next Submitted line cannot be written. The jobs
    already submitted are kept, the submission goes on to its end, and stderr says why the lines stopped."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every line the script writes to stdout fails
    process = subprocess.run(
        [sys.executable, str(ROOT / "batch-ingest.py"), "--dataset-uri", DATASET, "--samples", "samples.txt",
         "--metadata-s3", "bucket2-name", "--job-queue", "tiledbvcf-job-queue", "--job-definition", "tiledbvcf-24h",
         "--num-jobs", "2", "--no-consolidate"],
        cwd=tmp_path, env=dict(os.environ), stdout=write, stderr=subprocess.PIPE, text=True, timeout=300,
    )  # fmt: skip
    os.close(write)
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr and "rolled back" not in process.stderr
    assert process.stderr.count("stdout was closed by its reader (e.g. | head -1)") == 1
    uri = re.search(r"recorded at (s3://\S+)", process.stderr).group(1)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", region_name="us-east-1")
    record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ids = [job["job_id"] for job in record["jobs"]]
    assert len(ids) == 3 and all(ids) and record["submitting"] is False
    assert stop_requests(ids) == [None, None, None]
