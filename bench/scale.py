#!/usr/bin/env python3
"""How the scripts' own work scales to a 50,000-sample cohort (emulated S3 and Batch, in process).

Measures what runs on the user's workstation before and after submission: parsing the
samples file, the preflight listing of samples and indexes, planning, building payloads,
and reading back the state of a run's jobs for the ledger. Prints one table row per step
with its wall time and AWS calls. Submission itself is paced at SUBMITS_PER_SECOND, so
its duration is jobs / rate, shown as such.

    python bench/scale.py [--samples 50000] [--num-jobs 500] [--incremental 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import local_aws  # noqa: E402
from tiledbvcf_batch.aws import make_clients  # noqa: E402
from tiledbvcf_batch.executors.batch import SUBMITS_PER_SECOND, BatchExecutor  # noqa: E402
from tiledbvcf_batch.inputs import IngestOptions, read_samples_file  # noqa: E402
from tiledbvcf_batch.ledger import job_states  # noqa: E402
from tiledbvcf_batch.plan import ingest_batches, plan_ingest  # noqa: E402
from tiledbvcf_batch.preflight import check_samples  # noqa: E402
from tiledbvcf_batch.record import RunRecord  # noqa: E402
from tiledbvcf_batch.storage import S3Uri, Storage  # noqa: E402


def seed_cohort(backend, samples: int, directories: int) -> Path:
    """Put the cohort's samples and indexes straight into moto's S3 (the API takes minutes); its samples file."""
    uris = []
    for i in range(samples):
        key = f"cohort/batch{i % directories:03d}/S{i:06d}.vcf.gz"
        backend.put_object("bucket-name", key, b"v" * 100)
        backend.put_object("bucket-name", key + ".tbi", b"i")
        uris.append(f"s3://bucket-name/{key}")
    path = Path(tempfile.mkdtemp()) / "samples.txt"
    path.write_text("".join(f"{uri}\n" for uri in uris))
    return path


def print_table(args: argparse.Namespace, jobs: list, rows: list) -> None:
    gates = [j for j in jobs if j.stage.kind == "gate"]
    print(f"{args.samples} samples in {args.directories} directories, --num-jobs {args.num_jobs}, "
          f"--incremental {args.incremental}: {len(jobs)} jobs ({len(gates)} barrier jobs), "
          f"max dependencies per job {max(len(j.after) for j in jobs)}")  # fmt: skip
    print("| step | seconds | AWS calls |")
    print("|---|---|---|")
    for name, elapsed, made in rows:
        print(f"| {name} | {elapsed:.2f} | {', '.join(f'{k} {v}' for k, v in sorted(made.items())) or 'none'} |")
    pace = SUBMITS_PER_SECOND
    print(f"| submission (paced at {pace}/s) | {len(jobs) / pace:.0f} | SubmitJob {len(jobs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--num-jobs", type=int, default=500)
    parser.add_argument("--incremental", type=int, default=10)
    parser.add_argument("--directories", type=int, default=50)
    args = parser.parse_args()
    os.environ.update(local_aws.FAKE_CREDENTIALS)

    with mock_aws(config={"batch": {"use_docker": False}}):
        from moto.s3.models import s3_backends

        local_aws.create_buckets()
        path = seed_cohort(s3_backends["123456789012"]["aws"], args.samples, args.directories)

        boto3.setup_default_session()
        calls: Counter[str] = Counter()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
        clients = make_clients("us-east-1")
        storage = Storage(clients.s3)
        executor = BatchExecutor(clients, local_aws.JOB_QUEUE, local_aws.JOB_DEFINITION)
        rows = []

        def step(name, fn):
            calls.clear()
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            rows.append((name, elapsed, dict(calls)))
            return result

        samples = step("parse samples file", lambda: read_samples_file(str(path)))
        problems, _ = step("preflight: samples and indexes", lambda: check_samples(clients.s3, samples))
        assert not problems, problems[:3]
        metadata = S3Uri("bucket2-name")
        opts = IngestOptions("s3://my-bucketname/ds", str(path), metadata, num_jobs=args.num_jobs,
                             incremental=args.incremental)  # fmt: skip
        prefix = S3Uri("bucket2-name", "tiledbvcf-batch/runs/bench/")

        def plan():
            batches, notes = ingest_batches(samples, opts, prefix)
            return plan_ingest(opts, batches, "bench", prefix, notes=notes)

        planned = step("plan", plan)
        jobs = step("Batch jobs: barriers added, every payload checked", lambda: executor.submissions(planned))

        local_aws.create_batch_environment()
        submitted = [
            clients.batch.submit_job(jobName="tiledbvcf-ingest", jobQueue="tiledbvcf-job-queue",
                                     jobDefinition="tiledbvcf-24h")["jobId"]
            for _ in jobs
        ]  # fmt: skip
        record = RunRecord.new(planned, jobs, {}, executor.settings(), "us-east-1")
        record.set_job_ids({job.key: job_id for job, job_id in zip(jobs, submitted, strict=True)})
        step("ledger: state of every job of a run", lambda: job_states(record, storage, executor))

    print_table(args, jobs, rows)


if __name__ == "__main__":
    main()
