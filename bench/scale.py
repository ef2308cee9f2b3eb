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

import common  # noqa: E402
import local_aws  # noqa: E402


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
        backend = s3_backends["123456789012"]["aws"]
        uris = []
        for i in range(args.samples):
            key = f"cohort/batch{i % args.directories:03d}/S{i:06d}.vcf.gz"
            backend.put_object("bucket-name", key, b"v" * 100)
            backend.put_object("bucket-name", key + ".tbi", b"i")
            uris.append(f"s3://bucket-name/{key}")
        path = Path(tempfile.mkdtemp()) / "samples.txt"
        path.write_text("".join(f"{uri}\n" for uri in uris))

        boto3.setup_default_session()
        calls: Counter[str] = Counter()
        boto3.DEFAULT_SESSION.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
        clients = common.make_clients("us-east-1")
        rows = []

        def step(name, fn):
            calls.clear()
            start = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - start
            rows.append((name, elapsed, dict(calls)))
            return result

        samples = step("parse samples file", lambda: common.read_samples_file(str(path)))
        problems, _ = step("preflight: samples and indexes", lambda: common.check_samples(clients.s3, samples))
        assert not problems, problems[:3]
        opts = common.IngestOptions("s3://my-bucketname/ds", num_jobs=args.num_jobs, incremental=args.incremental)
        prefix = common.S3Uri("bucket2-name", "tiledbvcf-batch/runs/bench/")

        def plan():
            batches, notes = common.ingest_batches(samples, opts, prefix)
            return common.plan_ingest(opts, batches, "bench", prefix, notes)

        planned = step("plan", plan)
        ids = {job.key: f"id-{job.key}" for job in planned.jobs}
        step("build and check payloads", lambda: [common.job_payload(j, ids, "q", "jd", "bench") for j in planned.jobs])

        local_aws.create_batch_environment()
        submitted = [
            clients.batch.submit_job(jobName="tiledbvcf-ingest", jobQueue="tiledbvcf-job-queue",
                                     jobDefinition="tiledbvcf-24h")["jobId"]
            for _ in planned.jobs
        ]  # fmt: skip
        record = {
            "run_id": "bench",
            "jobs": [
                {
                    "key": job.key,
                    "stage": job.stage,
                    "job_id": job_id,
                    "manifest": str(job.manifest.uri) if job.manifest else None,
                    "samples": job.samples,
                }
                for job, job_id in zip(planned.jobs, submitted, strict=True)
            ],
        }
        step("ledger: state of every job of a run", lambda: common.job_states(clients, record))

    gates = [j for j in planned.jobs if j.stage.startswith("gate")]
    print(f"{args.samples} samples in {args.directories} directories, --num-jobs {args.num_jobs}, "
          f"--incremental {args.incremental}: {len(planned.jobs)} jobs ({len(gates)} barrier jobs), "
          f"max dependencies per job {max(len(j.depends_on) for j in planned.jobs)}")  # fmt: skip
    print("| step | seconds | AWS calls |")
    print("|---|---|---|")
    for name, elapsed, made in rows:
        print(f"| {name} | {elapsed:.2f} | {', '.join(f'{k} {v}' for k, v in sorted(made.items())) or 'none'} |")
    pace = common.SUBMITS_PER_SECOND
    print(f"| submission (paced at {pace}/s) | {len(planned.jobs) / pace:.0f} | SubmitJob {len(planned.jobs)} |")


if __name__ == "__main__":
    main()
