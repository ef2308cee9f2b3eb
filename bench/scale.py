#!/usr/bin/env python3
"""Cohort scale: 100,000 samples into 1,000 jobs, one Batch job per task against array jobs.

The product's own code paths throughout: ``prepare.ingest`` (the checks, the preflight of every
sample and index, the ledger, the planner), ``submit.jobs_for`` and ``submit.submit_plan`` with a
real ``BatchExecutor`` (its ``Pacer`` at 40 SubmitJob calls a second) and a real ``Storage``. One
incremental batch, consolidation on (the default), into a dataset that does not exist yet: the
first ingestion of a cohort, so the plan has the creation job, the store jobs and four
consolidation jobs.

Part 1 (the default): wall time and API calls of each phase (parse, preflight, plan, register,
upload, submit, record) in both modes; "register" is the run's entry in the dataset's run registry
(``<dataset>.tiledbvcf-batch/``), created by ``submit_plan`` before any upload, as batch-ingest.py
does. The dataset is new: ``prepare.ingest`` must not read it (its reader fails if it does). The
calls that reach the registry are counted apart too, and the bytes each phase writes. Every S3
call sleeps --s3-latency (40 ms) and every Batch call --batch-latency (80 ms) in a botocore
before-send hook, in the calling thread, as in bench/preflight.py. The emulator's own cost must not dominate, so:

- S3 is a moto server on 127.0.0.1 (puts, deletes, heads and the small listings go there), except
  the ListObjectsV2 pages of the cohort's bucket, answered from memory with bench/preflight.py's
  Listings (pages rendered beforehand); the time each call spends in the emulator (from the end of
  the hook to the response's parsing) is measured, shown apart, and subtracted (the "net" column).
- Batch is answered from memory (moto's Batch starts a thread per job, and 1,000 more per array of
  1,000, which would compete with the client for the CPU).

Part 2 (--memory): peak memory in fresh subprocesses. (a) The client at --samples: parse,
preflight, plan and submit, each mode, with every AWS call answered from memory and no latency
(so that no emulator lives in the process: its memory is the client's; the cohort's listing pages
are computed key by key, not held); (b) the planner alone
(ingest_batches, plan_ingest, the executor's submissions) at --planner-samples, each mode.

    python bench/scale.py [--samples 100000] [--num-jobs 1000] [--directories 10]
    python bench/scale.py --memory [--samples 100000] [--planner-samples 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo"), str(BENCH)]

import boto3  # noqa: E402
from preflight import BUCKET, cohort, listings_of  # noqa: E402  (bench/preflight.py)

import local_aws  # noqa: E402
from tiledbvcf_batch import prepare, submit  # noqa: E402
from tiledbvcf_batch.aws import Clients, make_clients  # noqa: E402
from tiledbvcf_batch.dataset import DatasetView  # noqa: E402
from tiledbvcf_batch.executors.batch import SUBMITS_PER_SECOND, BatchExecutor, Pacer  # noqa: E402
from tiledbvcf_batch.executors.jobs import Job  # noqa: E402
from tiledbvcf_batch.inputs import Sample, read_samples_file  # noqa: E402
from tiledbvcf_batch.options import IngestOptions  # noqa: E402
from tiledbvcf_batch.plan import ingest_batches, plan_ingest  # noqa: E402
from tiledbvcf_batch.record import RunRecord, dataset_index  # noqa: E402
from tiledbvcf_batch.storage import S3Uri  # noqa: E402

MODES = ("per-job", "array")
PHASES = ("parse", "preflight", "plan", "register", "upload", "submit", "record")
SUBMISSION = ("register", "upload", "submit", "record")  # everything after preflight and planning
METADATA = S3Uri("bucket2-name")

from emulation import (  # noqa: E402  (bench/emulation.py)
    CHECKS,
    CohortListings,
    Emulation,
    FakeBatch,
    FakeS3,
    Meter,
    MeteredExecutor,
    MeteredStorage,
    inner_timed,
    rss_now,
    rss_peak,
    sample_key,
    write_samples_file,
)

# --- one client run ------------------------------------------------------------------------------


def never_read(uri: str) -> DatasetView:
    """The dataset reader of a run into a new dataset: prepare.ingest reads no dataset that does not exist."""
    raise AssertionError(f"prepare.ingest read dataset {uri}, which does not exist yet")


@contextmanager
def registration_timed(meter: Meter) -> Iterator[None]:
    """submit_plan's registration beside the dataset (``submit.register``) as an event of the "register" phase."""
    original = submit.register

    def timed(*args: Any, **kwargs: Any) -> Any:
        with meter.event("register"):
            return original(*args, **kwargs)

    submit.register = timed
    try:
        yield
    finally:
        submit.register = original


@dataclass
class ClientRun:
    mode: str
    jobs: list[Job]
    record: RunRecord
    meter: Meter


def run_client(mode: str, path: Path, num_jobs: int, meter: Meter) -> ClientRun:
    """What batch-ingest.py does for ``--num-jobs N`` (one batch, consolidation on), with the bench's meters."""
    clients = make_clients(local_aws.REGION)
    storage = MeteredStorage(clients.s3, meter=meter)
    executor = MeteredExecutor(clients, local_aws.JOB_QUEUE, local_aws.JOB_DEFINITION,
                               pacer=Pacer(SUBMITS_PER_SECOND, sleep=meter.pace), array_jobs=mode == "array",
                               meter=meter)  # fmt: skip
    opts = IngestOptions(S3Uri("my-bucketname", f"{mode}-dataset"), str(path), METADATA, num_jobs=num_jobs,
                         scratch_path=executor.default_scratch())  # fmt: skip
    with meter.phase_of("parse"):
        samples = read_samples_file(str(path))
    with meter.phase_of("preflight"), inner_timed(meter):
        prepared = prepare.ingest(opts, samples, storage, executor, lambda _: executor, read_dataset=never_read,
                                  instance_price=0.0)  # fmt: skip
    plan = prepared.plan
    assert plan is not None and plan.tasks[0].key == "create", prepared.notes
    with meter.phase_of("plan"):
        jobs = submit.jobs_for(plan, executor)
    storage.uploads = {str(job.manifest.uri) for job in jobs if job.manifest is not None}
    assert prepared.claim is not None and prepared.claim.seen == 0, prepared.claim
    start = time.perf_counter()
    with registration_timed(meter):
        record = submit.submit_plan(plan, jobs, executor, storage, prepared.options, region=clients.region,
                                    sample_names=prepared.sample_names, claim=prepared.claim)  # fmt: skip
    meter.split_submission(start, time.perf_counter())
    assert len(record.job_ids()) == len(record.jobs), "a job was not submitted"
    return ClientRun(mode, jobs, record, meter)


def session_with(*hooks: Any) -> None:
    """A fresh default session with the hooks, before any client is made: every client (the lookup's too) has them."""
    boto3.setup_default_session()
    for hook in hooks:
        hook.attach(boto3.DEFAULT_SESSION.events)


# --- part 1: the phases ----------------------------------------------------------------------------


def phases(args: argparse.Namespace) -> None:
    os.environ.update(local_aws.FAKE_CREDENTIALS)
    server, endpoint = local_aws.start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    path = write_samples_file(args.samples, args.directories)
    runs: list[tuple[ClientRun, list[tuple[float, float]], FakeBatch]] = []
    try:
        local_aws.create_buckets()
        # Every page rendered beforehand, as bench/preflight.py does: rendering them on demand (CohortListings,
        # for the memory subprocess) costs about a second of this process's CPU while the lookup runs.
        listings = listings_of(cohort(args.samples, args.directories))
        for mode in args.modes:
            meter, batch = Meter(), FakeBatch()
            emulation = Emulation({"s3": args.s3_latency, "batch": args.batch_latency}, listings, batch)
            session_with(emulation, meter)
            run = run_client(mode, path, args.num_jobs, meter)
            runs.append((run, sorted(emulation.server), batch))
    finally:
        server.stop()
    print_phases(args, runs)


def made(calls: Counter[str]) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(calls.items())) or "none"


def print_phases(args: argparse.Namespace, runs: list[tuple[ClientRun, list[tuple[float, float]], FakeBatch]]) -> None:
    print(f"{args.samples} samples (with .tbi indexes, {args.directories} folders) into --num-jobs {args.num_jobs}, "
          f"one batch, consolidation on, a new dataset; {1000 * args.s3_latency:.0f} ms an S3 call, "
          f"{1000 * args.batch_latency:.0f} ms a Batch call; load average before: {args.load:.2f}")  # fmt: skip
    for run, _, batch in runs:
        arrays = sorted(size for size in batch.jobs.values() if size)
        print(f"- {run.mode}: {len(run.jobs)} submissions ({len(run.record.jobs)} tasks recorded), arrays of "
              f"{arrays or 'none'}; the Pacer slept {run.meter.paced:.2f} s")  # fmt: skip
        inner = run.meter.inner
        print("  - its preflight, s: " + ", ".join(f"{name} {inner[name]:.2f}" for name in
              ("executor.preflight", *CHECKS)) + f"; planning inside it {run.meter.planning:.2f}")  # fmt: skip
        unmetered = run.meter.calls_of("other")
        if unmetered:
            print(f"  - **calls outside every phase**: {made(unmetered)}")
    print()
    print("| phase | mode | API calls | by operation | of them to the run registry | bytes written | wall s "
          "| in the emulator s | net s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {}
    for phase in (*PHASES, "submission"):
        for run, server, _ in runs:
            meter = run.meter
            parts = SUBMISSION if phase == "submission" else (phase,)
            calls = sum((meter.calls_of(p) for p in parts), Counter())
            registry = sum((meter.calls_of(p, registry=True) for p in parts), Counter())
            wall = sum(meter.wall(p) for p in parts)
            emulated = sum(meter.emulator(p, server) for p in parts)
            totals[(phase, run.mode)] = (calls, wall, emulated)
            name = "**submission** (register + upload + submit + record)" if phase == "submission" else phase
            written = sum(meter.written[p] for p in parts)
            print(f"| {name} | {run.mode} | {sum(calls.values())} | {made(calls)} | {sum(registry.values())} "
                  f"({made(registry)}) | {written:,} | {wall:.2f} | {emulated:.2f} "
                  f"| {wall - emulated:.2f} |")  # fmt: skip
    if ("submission", "array") in totals:
        print_targets(totals)


def print_targets(totals: dict[tuple[str, str], tuple[Counter[str], float, float]]) -> None:
    calls, wall, emulated = totals[("submission", "array")]
    plan_wall = totals[("plan", "array")][1]
    pre_calls, pre_wall, pre_emulated = totals[("preflight", "array")]
    s3_calls = sum(n for op, n in pre_calls.items() if op.startswith("S3 "))
    rows = [
        ("array: submission at most 12 API calls", f"{sum(calls.values())}", sum(calls.values()) <= 12),
        ("array: submission at most 2 s", f"{wall - emulated:.2f} s net ({wall:.2f} s wall; "
         f"{wall - emulated + plan_wall:.2f} s net with the executor's planning)", wall - emulated <= 2),
        ("array: preflight at most 250 S3 calls", f"{s3_calls}", s3_calls <= 250),
        ("array: preflight at most 3 s", f"{pre_wall - pre_emulated:.2f} s net ({pre_wall:.2f} s wall)",
         pre_wall - pre_emulated <= 3),
    ]  # fmt: skip
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    for name, value, met in rows:
        print(f"| {name} | {value} | {'yes' if met else '**no**'} |")


# --- part 2: memory, each in a fresh subprocess ------------------------------------------------------


def client_child(args: argparse.Namespace) -> dict[str, Any]:
    """Parse, preflight, plan and submit, every AWS call answered from memory: the process is the client."""
    os.environ.update(local_aws.FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # path-style URLs; nothing ever connects
    meter, batch, s3 = Meter(), FakeBatch(), FakeS3()
    session_with(Emulation({}, CohortListings(args.samples, args.directories), batch, s3), meter)
    before = rss_now()
    start = time.perf_counter()
    run = run_client(args.mode, Path(args.samples_file), args.num_jobs, meter)
    took = time.perf_counter() - start
    steps = " / ".join(f"{meter.high_water[phase] / 2**20:.0f}" for phase in ("parse", "preflight", "plan"))
    return {"seconds": took, "before": before, "peak": rss_peak(), "paced": meter.paced, "jobs": len(run.jobs),
            "steps": steps}  # fmt: skip


def planner_child(args: argparse.Namespace) -> dict[str, Any]:
    """The planner alone: ingest_batches, plan_ingest and the executor's submissions, on --samples samples."""
    samples = [Sample(f"s3://{BUCKET}/{sample_key(i, args.directories)}") for i in range(args.samples)]
    prefix = METADATA.child("tiledbvcf-batch/runs/bench/")
    executor = BatchExecutor(Clients(local_aws.REGION, None, None, None), local_aws.JOB_QUEUE,
                             local_aws.JOB_DEFINITION, array_jobs=args.mode == "array")  # fmt: skip
    opts = IngestOptions(S3Uri("my-bucketname", "dataset"), "samples.txt", METADATA, num_jobs=args.num_jobs,
                         scratch_path=executor.default_scratch())  # fmt: skip
    before = rss_now()
    start = time.perf_counter()
    batches, notes = ingest_batches(samples, opts, prefix)
    marker = dataset_index(METADATA, opts.dataset_uri).child("bench.json")
    plan = plan_ingest(opts, batches, "bench", prefix, index_marker=marker, notes=notes)
    jobs = executor.submissions(plan)
    took = time.perf_counter() - start
    return {"seconds": took, "before": before, "peak": rss_peak(), "paced": 0.0, "jobs": len(jobs), "steps": ""}


def child(args: argparse.Namespace, kind: str, mode: str, samples: int, path: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--mode", mode, "--samples", str(samples),
               "--num-jobs", str(args.num_jobs), "--directories", str(args.directories)]  # fmt: skip
    if path is not None:
        command += ["--samples-file", str(path)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory(args: argparse.Namespace) -> None:
    path = write_samples_file(args.samples, args.directories)
    rows = []
    for mode in args.modes:
        rows.append((f"client at {args.samples:,} samples: parse, preflight, plan, submit", mode,
                     child(args, "client", mode, args.samples, path)))  # fmt: skip
    for mode in args.modes:
        rows.append((f"planner alone at {args.planner_samples:,} samples", mode,
                     child(args, "planner", mode, args.planner_samples)))  # fmt: skip
    mb = 2**20
    print(f"Peak memory, each row a fresh subprocess; --num-jobs {args.num_jobs}; load average before: "
          f"{args.load:.2f}. 'before' is the process's resident size just before the measured work (interpreter, "
          "imports, and for the planner the Sample objects it is given).")  # fmt: skip
    print()
    print("| what | mode | jobs | seconds | peak RSS MB | RSS before MB | peak − before MB "
          "| peak after parse / preflight / plan MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, mode, result in rows:
        paced = f" (Pacer {result['paced']:.1f})" if result["paced"] else ""
        print(f"| {name} | {mode} | {result['jobs']} | {result['seconds']:.2f}{paced} | {result['peak'] / mb:.0f} "
              f"| {result['before'] / mb:.0f} | {(result['peak'] - result['before']) / mb:.0f} "
              f"| {result['steps'] or 'n/a'} |")  # fmt: skip
    planner = [result for name, mode, result in rows if name.startswith("planner") and mode == "array"]
    if planner:
        result = planner[0]
        print()
        print("| target | measured | met |")
        print("|---|---|---|")
        print(f"| array: planning {args.planner_samples:,} samples at most 5 s | {result['seconds']:.2f} s | "
              f"{'yes' if result['seconds'] <= 5 else '**no**'} |")  # fmt: skip
        print(f"| array: planning {args.planner_samples:,} samples at most 400 MB | {result['peak'] / mb:.0f} MB "
              f"peak RSS of the process ({(result['peak'] - result['before']) / mb:.0f} MB over the samples "
              f"given) | {'yes' if result['peak'] <= 400 * mb else '**no**'} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--num-jobs", type=int, default=1000)
    parser.add_argument("--directories", type=int, default=10)
    parser.add_argument("--s3-latency", type=float, default=0.04)
    parser.add_argument("--batch-latency", type=float, default=0.08)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--memory", action="store_true", help="part 2: peak memory, in fresh subprocesses")
    parser.add_argument("--planner-samples", type=int, default=1_000_000)
    parser.add_argument("--child", choices=("client", "planner"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--samples-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps((client_child if args.child == "client" else planner_child)(args)))
        return
    args.load = os.getloadavg()[0]
    (memory if args.memory else phases)(args)


if __name__ == "__main__":
    main()
