#!/usr/bin/env python3
"""Run the README's ingest and export examples end to end against a local emulated AWS.

A moto server on 127.0.0.1 stands in for S3, Batch and CloudWatch Logs; no AWS account is
needed and nothing leaves this machine. moto's Batch does NOT run containers: its jobs never
run tiledbvcf, they are marked SUCCEEDED (or FAILED) at once. What this shows is everything
the scripts do: checks, manifests, the job graph submitted to Batch, the printed lines, the
run record and the --wait report.

The functions here also build the emulated environment for the tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
JOB_QUEUE = "tiledbvcf-job-queue"
JOB_DEFINITION = "tiledbvcf-24h"
BUCKETS = ("my-bucketname", "bucket2-name", "bucket-name")
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def start_server(port: int = 0) -> tuple[Any, str]:
    """A moto server on loopback whose Batch marks jobs finished instead of running Docker."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    default_user_config["batch"] = {"use_docker": False}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    endpoint = f"http://{host}:{bound_port}"
    # Servers in one process share moto's state: start each from a clean slate.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    return server, endpoint


def create_batch_environment(region: str = REGION) -> dict[str, str]:
    """What the spec's set-up steps create: compute environment, job queue, job definition."""
    iam = boto3.client("iam", region_name=region)
    batch = boto3.client("batch", region_name=region)
    role = iam.create_role(
        RoleName="tiledbvcf-batch-service",
        AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
        '"Principal":{"Service":"batch.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
    )["Role"]
    environment = batch.create_compute_environment(
        computeEnvironmentName="tiledbvcf-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role["Arn"],
    )
    batch.create_job_queue(
        jobQueueName=JOB_QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}],
    )
    batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        timeout={"attemptDurationSeconds": 86400},
        containerProperties={
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tiledbvcf:latest",
            "resourceRequirements": [
                {"type": "VCPU", "value": "16"},
                {"type": "MEMORY", "value": "61440"},
            ],
            "volumes": [{"host": {"sourcePath": "/data"}, "name": "data"}],
            "mountPoints": [{"containerPath": "/data", "readOnly": False, "sourceVolume": "data"}],
        },
    )
    return {"job_queue": JOB_QUEUE, "job_definition": JOB_DEFINITION}


def create_buckets(region: str = REGION, names: tuple[str, ...] = BUCKETS) -> None:
    s3 = boto3.client("s3", region_name=region)
    for name in names:
        s3.create_bucket(Bucket=name)


def put_samples(count: int, bucket: str = "bucket-name", region: str = REGION) -> list[str]:
    """Small stand-in BCF files with their indexes, as a sequencing centre would leave them."""
    s3 = boto3.client("s3", region_name=region)
    uris = []
    for i in range(1, count + 1):
        for key in (f"samples/{i}.bcf", f"samples/{i}.bcf.csi"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"BCF\x02\x02")
        uris.append(f"s3://{bucket}/samples/{i}.bcf")
    return uris


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a script as a user would; show its output as it comes; return its exit status and stderr."""
    print(f"\n$ python {' '.join(args)}", flush=True)
    process = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stderr=subprocess.PIPE, text=True
    )
    stderr = []
    for line in process.stderr:
        print(line, end="", file=sys.stderr, flush=True)
        stderr.append(line)
    return process.wait(), "".join(stderr)


def show_what_is_left(s3: Any) -> None:
    print("\nWhat the ingestion runs left in s3://bucket2-name (manifests no job consumed, run records):")
    runs: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bucket2-name", Prefix="tiledbvcf-batch/runs/"):
        for item in page.get("Contents", []):
            run_id, name = item["Key"].split("/")[-2:]
            runs.setdefault(run_id, []).append(name)
    for run_id, names in runs.items():
        manifests = sum(name.endswith(".txt") for name in names)
        print(f"  s3://bucket2-name/tiledbvcf-batch/runs/{run_id}/: {manifests} manifests and run.json")
    print(
        "\nmoto ran no tiledbvcf, so the manifests stay (a real store job deletes its own) and "
        "no dataset or BCF file was written."
    )


def main() -> int:
    os.environ.update(FAKE_CREDENTIALS)
    server, endpoint = start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    cleanup: list[Path] = []
    try:
        print(f"Emulated AWS (moto) listening on {endpoint}; its Batch jobs do not run tiledbvcf.")
        create_buckets()
        create_batch_environment()
        uris = put_samples(20)
        work = Path(tempfile.mkdtemp(prefix="tiledbvcf-demo-"))
        cleanup.append(work)
        samples = work / "samples.txt"
        samples.write_text("".join(f"{uri}\n" for uri in uris))
        s3 = boto3.client("s3", region_name=REGION)
        s3.put_object(
            Bucket="my-bucketname",
            Key="10-names.txt",
            Body="".join(f"SampleName{i}\n" for i in range(1, 11)).encode(),
        )
        s3.put_object(Bucket="my-bucketname", Key="bedfiles/sorted1000000.bed", Body=b"chr1\t0\t1000\n")
        env = dict(os.environ)
        ingest = [
            "batch-ingest.py",
            "--dataset-uri", "s3://my-bucketname/test-vcf-dataset",
            "--samples", str(samples),
            "--metadata-s3", "bucket2-name",
            "--job-queue", JOB_QUEUE,
            "--job-definition", JOB_DEFINITION,
            "--num-jobs", "10",
        ]  # fmt: skip
        export = [
            "batch-export.py",
            "--dataset-uri", "s3://my-bucketname/test-vcf-dataset",
            "--dest-s3", "s3://my-bucketname/bcf-exports/",
            "--samples", "s3://my-bucketname/10-names.txt",
            "--bed", "s3://my-bucketname/bedfiles/sorted1000000.bed",
            "--job-queue", JOB_QUEUE,
            "--job-definition", JOB_DEFINITION,
            "--num-jobs", "2",
        ]  # fmt: skip
        # The spec's two examples, then an incremental ingestion into a second dataset that
        # waits for its jobs and prints the report.
        waited = [*ingest, "--incremental", "2", "--wait"]
        waited[waited.index("--dataset-uri") + 1] = "s3://my-bucketname/second-dataset"
        results = [run(ingest, env)]
        # moto ran no creation job: leave what it would have left, so that the export finds the dataset.
        s3.put_object(Bucket="my-bucketname", Key="test-vcf-dataset/__tiledb_group.tdb", Body=b"")
        results += [run(export, env), run(waited, env)]
        # Come back to the last run, as from another terminal, with only its record.
        record = results[-1][1].split("recorded at ")[1].split()[0]
        results.append(run(["batch-runs.py", "status", record], env))
        codes = [code for code, _ in results]
        show_what_is_left(s3)
        return max(codes)
    finally:
        server.stop()
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
