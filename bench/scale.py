#!/usr/bin/env python3
"""Cohort scale: 100,000 samples into 1,000 jobs, one Batch job per task against array jobs.

The product's own code paths throughout: ``prepare.ingest`` (the checks, the preflight of every
sample and index, the ledger, the planner), ``submit.jobs_for`` and ``submit.submit_plan`` with a
real ``BatchExecutor`` (its ``Pacer`` at 40 SubmitJob calls a second) and a real ``Storage``. One
incremental batch, consolidation on (the default), into a dataset that does not exist yet: the
first ingestion of a cohort, so the plan has the creation job, the store jobs and four
consolidation jobs.

Part 1 (the default): wall time and API calls of each phase (parse, preflight, plan, upload,
submit, record) in both modes. Every S3 call sleeps --s3-latency (40 ms) and every Batch call
--batch-latency (80 ms) in a botocore before-send hook, in the calling thread, as in
bench/preflight.py. The emulator's own cost must not dominate, so:

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
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo"), str(BENCH)]

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402
from preflight import BUCKET, Body, Listings, cohort, listings_of  # noqa: E402  (bench/preflight.py)

import local_aws  # noqa: E402
from tiledbvcf_batch import prepare, submit  # noqa: E402
from tiledbvcf_batch.aws import Clients, make_clients  # noqa: E402
from tiledbvcf_batch.commands import ENTRYPOINT_VARIABLE  # noqa: E402
from tiledbvcf_batch.executors.batch import SUBMITS_PER_SECOND, BatchExecutor, Pacer  # noqa: E402
from tiledbvcf_batch.inputs import IngestOptions, Sample, read_samples_file  # noqa: E402
from tiledbvcf_batch.plan import Task, ingest_batches, plan_ingest  # noqa: E402
from tiledbvcf_batch.record import RunRecord, dataset_index  # noqa: E402
from tiledbvcf_batch.storage import S3Uri, Storage  # noqa: E402

MODES = ("per-job", "array")
PHASES = ("parse", "preflight", "plan", "upload", "submit", "record")
SUBMISSION = ("upload", "submit", "record")  # everything after preflight and planning
METADATA = S3Uri("bucket2-name")
SERVICE_NAMES = {"s3": "S3", "batch": "Batch"}


# --- the cohort's listings, computed key by key -------------------------------------------------


def sample_key(i: int, directories: int) -> str:
    """The key of sample ``i`` in bench/preflight.py's cohort (its ``cohort``); its index is this plus .tbi."""
    return f"cohort/batch{i % directories:03d}/S{i:06d}.vcf.gz"


class CohortKeys:
    """bench/preflight.py's cohort in key order, each key and size computed when asked for: nothing held.

    Folder d holds the samples d, d + directories, ...; each sample's key comes just before its .tbi.
    Sizes as ``cohort`` gives them: 1 + i % 64 bytes a sample, 1 an index.
    """

    def __init__(self, samples: int, directories: int):
        self.directories = directories
        self.starts = [0, *accumulate(2 * len(range(d, samples, directories)) for d in range(directories))]

    def __len__(self) -> int:
        return self.starts[-1]

    def item(self, k: int) -> tuple[str, int]:
        folder = bisect_right(self.starts, k) - 1
        offset = k - self.starts[folder]
        i = folder + offset // 2 * self.directories
        key = sample_key(i, self.directories)
        return (key + ".tbi", 1) if offset % 2 else (key, 1 + i % 64)

    def __getitem__(self, k: int) -> str:
        k = k + len(self) if k < 0 else k
        if not 0 <= k < len(self):
            raise IndexError(k)
        return self.item(k)[0]


class CohortEntries:
    """The <Contents> elements of a slice of CohortKeys, rendered as bench/preflight.py's Listings renders them."""

    def __init__(self, keys: CohortKeys, modified: str):
        self.keys = keys
        self.modified = modified

    def __getitem__(self, part: slice) -> list[str]:
        entries = []
        for k in range(*part.indices(len(self.keys))):
            key, size = self.keys.item(k)
            etag = f'"{hashlib.md5(key.encode()).hexdigest()}"'.replace('"', "&quot;")
            entries.append(
                f"<Contents><Key>{quote(key)}</Key><LastModified>{self.modified}</LastModified>"
                f"<ETag>{etag}</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        return entries


class CohortListings(Listings):
    """bench/preflight.py's ListObjectsV2 pages (its ``Listings.page``) over the cohort, computed, not held."""

    def __init__(self, samples: int, directories: int):  # no super().__init__: nothing to sort or hold
        self.keys = CohortKeys(samples, directories)  # type: ignore[assignment]
        self.entries = CohortEntries(self.keys, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))  # type: ignore[assignment]


def write_samples_file(samples: int, directories: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix="scale-bench-")) / "samples.txt"
    path.write_text("".join(f"s3://{BUCKET}/{sample_key(i, directories)}\n" for i in range(samples)))
    return path


# --- what answers from memory -------------------------------------------------------------------


def json_response(url: str, document: dict[str, Any], status: int = 200) -> AWSResponse:
    return AWSResponse(url, status, {}, Body(json.dumps(document).encode()))


class FakeBatch:
    """Batch answered from memory: the job queue, a job definition whose image has the entrypoint, SubmitJob.

    Every SubmitJob is checked as Batch would: its dependencies are jobs it issued, an array's size is 2..10,000.
    """

    ACCOUNT = "arn:aws:batch:us-east-1:123456789012"

    def __init__(self) -> None:
        self.jobs: dict[str, int] = {}  # job id -> array size (0: a plain job)
        self.lock = threading.Lock()

    def answer(self, operation: str, request: Any) -> AWSResponse:
        body = json.loads(request.body or b"{}")
        if operation == "DescribeJobQueues":
            order = [{"order": 1, "computeEnvironment": f"{self.ACCOUNT}:compute-environment/ce"}]
            queue = {"jobQueueName": local_aws.JOB_QUEUE, "jobQueueArn": f"{self.ACCOUNT}:job-queue/q",
                     "state": "ENABLED", "status": "VALID", "priority": 1,
                     "computeEnvironmentOrder": order}  # fmt: skip
            return json_response(request.url, {"jobQueues": [queue]})
        if operation == "DescribeJobDefinitions":
            definition = {"jobDefinitionName": local_aws.JOB_DEFINITION, "revision": 1, "status": "ACTIVE",
                          "jobDefinitionArn": f"{self.ACCOUNT}:job-definition/{local_aws.JOB_DEFINITION}:1",
                          "type": "container", "containerProperties": {"image": "tiledbvcf",
                          "environment": [{"name": ENTRYPOINT_VARIABLE, "value": "1"}]}}  # fmt: skip
            return json_response(request.url, {"jobDefinitions": [definition]})
        if operation != "SubmitJob":
            raise AssertionError(f"the fake Batch does not answer {operation}")
        size = body.get("arrayProperties", {}).get("size", 0)
        with self.lock:
            unknown = [d["jobId"] for d in body.get("dependsOn", []) if d["jobId"] not in self.jobs]
            assert not unknown and len(body.get("dependsOn", [])) <= 20, body.get("dependsOn")
            assert size == 0 or 2 <= size <= 10_000, size
            job_id = str(uuid.uuid4())
            self.jobs[job_id] = size
        return json_response(request.url, {"jobArn": f"{self.ACCOUNT}:job/{job_id}", "jobName": body["jobName"],
                                           "jobId": job_id})  # fmt: skip


class FakeS3:
    """S3 answered from memory for the memory subprocess: writes and deletes accepted, the other buckets empty."""

    def __init__(self) -> None:
        self.put = 0
        self.empty = Listings([])

    def answer(self, operation: str, request: Any, query: dict[str, list[str]]) -> AWSResponse:
        if operation == "PutObject":
            self.put += 1
            return AWSResponse(request.url, 200, {"ETag": '"0"'}, Body(b""))
        if operation in ("DeleteObject", "HeadBucket"):
            return AWSResponse(request.url, 204 if operation == "DeleteObject" else 200, {}, Body(b""))
        if operation == "ListObjectsV2":
            return AWSResponse(request.url, 200, {}, Body(self.empty.page(query)))
        raise AssertionError(f"the fake S3 does not answer {operation}")


class Emulation:
    """before-send: the latency model, and what is answered from memory; before-parse: the emulator's time."""

    def __init__(self, latency: dict[str, float], listings: Listings, batch: FakeBatch, s3: FakeS3 | None = None):
        self.latency = latency
        self.listings = listings
        self.batch = batch
        self.s3 = s3  # None: what is not answered here goes to the moto server
        self.server: list[tuple[float, float]] = []  # (sent, answered) of every call the emulator answered
        self.local = threading.local()
        self.lock = threading.Lock()

    def attach(self, events: Any) -> None:
        events.register("before-send", self.send)
        events.register("before-parse", self.parsed)

    def send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".")
        if self.latency.get(service):
            time.sleep(self.latency[service])
        if service == "batch":
            return self.batch.answer(operation, request)
        parts = urlsplit(request.url)
        query = parse_qs(parts.query, keep_blank_values=True)
        if operation == "ListObjectsV2" and parts.path.split("/")[1] == BUCKET:
            return AWSResponse(request.url, 200, {}, Body(self.listings.page(query)))
        if self.s3 is not None:
            return self.s3.answer(operation, request, query)
        self.local.sent = time.perf_counter()
        return None

    def parsed(self, **_: Any) -> None:
        sent = getattr(self.local, "sent", None)
        if sent is not None:
            self.local.sent = None
            with self.lock:
                self.server.append((sent, time.perf_counter()))


# --- where the time goes -------------------------------------------------------------------------


def covered(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] during which at least one of the (sorted) intervals ran."""
    total, reach = 0.0, start
    for a, b in intervals[bisect_left(intervals, (start - 60, 0.0)) :]:  # no call takes a minute
        if a >= end:
            break
        a, b = max(a, reach), min(b, end)
        if b > a:
            total += b - a
            reach = b
    return total


class Meter:
    """API calls by phase (a before-call hook), and the windows of time each phase took."""

    def __init__(self) -> None:
        self.phase = "other"
        self.calls: Counter[tuple[str, str]] = Counter()
        self.windows: list[tuple[float, float, str]] = []
        self.events: list[tuple[float, float, str]] = []  # the calls of submit_plan, each with its phase
        self.planning = 0.0  # seconds of the planner inside prepare.ingest
        self.paced = 0.0  # seconds the Pacer slept
        self.inner: Counter[str] = Counter()  # seconds of what prepare.ingest calls, by name
        self.high_water: dict[str, int] = {}  # the process's peak resident bytes after each phase
        self.lock = threading.Lock()

    def attach(self, events: Any) -> None:
        events.register("before-call", self.count)

    def count(self, model: Any, event_name: str, **_: Any) -> None:
        service = SERVICE_NAMES.get(event_name.split(".")[1], event_name.split(".")[1])
        with self.lock:
            self.calls[(self.phase, f"{service} {model.name}")] += 1

    @contextmanager
    def phase_of(self, phase: str) -> Iterator[None]:
        self.phase, start = phase, time.perf_counter()
        try:
            yield
        finally:
            self.windows.append((start, time.perf_counter(), phase))
            self.phase = "other"
            self.high_water[phase] = rss_peak()

    @contextmanager
    def event(self, phase: str) -> Iterator[None]:
        self.phase, start = phase, time.perf_counter()
        try:
            yield
        finally:
            self.events.append((start, time.perf_counter(), phase))
            self.phase = "other"

    def pace(self, seconds: float) -> None:
        self.paced += seconds
        time.sleep(seconds)

    def split_submission(self, start: float, end: float) -> None:
        """submit_plan's time by phase: the work before each call goes with the call's phase.

        What precedes the first call (RunRecord.new) and follows the last one is the record's.
        """
        events = sorted(self.events)
        reach = events[0][0] if events else end
        self.windows.append((start, reach, "record"))
        for _, finish, phase in events:
            self.windows.append((reach, finish, phase))
            reach = finish
        self.windows.append((reach, end, "record"))

    def wall(self, phase: str) -> float:
        seconds = sum(end - start for start, end, p in self.windows if p == phase)
        if phase == "preflight":
            return seconds - self.planning
        return seconds + self.planning if phase == "plan" else seconds

    def emulator(self, phase: str, server: list[tuple[float, float]]) -> float:
        return sum(covered(server, start, end) for start, end, p in self.windows if p == phase)

    def calls_of(self, phase: str) -> Counter[str]:
        return Counter({op: n for (p, op), n in self.calls.items() if p == phase})


@dataclass
class MeteredStorage(Storage):
    """The product's Storage; each put is timed as an upload (what the jobs read) or as the record's."""

    meter: Meter | None = None
    uploads: set[str] = field(default_factory=set)

    def put(self, uri: Any, body: bytes, content_type: str = "text/plain") -> None:
        assert self.meter is not None
        with self.meter.event("upload" if str(uri) in self.uploads else "record"):
            super().put(uri, body, content_type)


@dataclass
class MeteredExecutor(BatchExecutor):
    """The product's BatchExecutor; each submission (the Pacer's wait included) is timed."""

    meter: Meter | None = None

    def submit(self, job: Task, ids: dict[str, str], run_id: str) -> str:
        assert self.meter is not None
        with self.meter.event("submit"):
            return super().submit(job, ids, run_id)

    def preflight(self) -> list[str]:
        assert self.meter is not None
        start = time.perf_counter()
        try:
            return super().preflight()
        finally:
            self.meter.inner["executor.preflight"] += time.perf_counter() - start


PLANNER = ("ingest_batches", "plan_ingest")  # what prepare.ingest calls to plan
CHECKS = ("check_writable", "check_bucket", "check_samples", "dataset_exists", "dataset_ledger")  # and to check


@contextmanager
def inner_timed(meter: Meter) -> Iterator[None]:
    """The seconds of the planner and of each check inside prepare.ingest, by wrapping what it calls there."""
    originals = {name: getattr(prepare, name) for name in (*PLANNER, *CHECKS)}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                meter.inner[name] += time.perf_counter() - start
                if name in PLANNER:
                    meter.planning += time.perf_counter() - start

        return call

    for name, function in originals.items():
        setattr(prepare, name, timed(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(prepare, name, function)


# --- one client run ------------------------------------------------------------------------------


@dataclass
class ClientRun:
    mode: str
    jobs: list[Task]
    record: RunRecord
    meter: Meter


def run_client(mode: str, path: Path, num_jobs: int, meter: Meter) -> ClientRun:
    """What batch-ingest.py does for ``--num-jobs N`` (one batch, consolidation on), with the bench's meters."""
    clients = make_clients(local_aws.REGION)
    storage = MeteredStorage(clients.s3, meter=meter)
    executor = MeteredExecutor(clients, local_aws.JOB_QUEUE, local_aws.JOB_DEFINITION,
                               pacer=Pacer(SUBMITS_PER_SECOND, sleep=meter.pace), array_jobs=mode == "array",
                               meter=meter)  # fmt: skip
    opts = IngestOptions(f"s3://my-bucketname/{mode}-dataset", str(path), METADATA, num_jobs=num_jobs)
    with meter.phase_of("parse"):
        samples = read_samples_file(str(path))
    with meter.phase_of("preflight"), inner_timed(meter):
        prepared = prepare.ingest(opts, samples, storage, executor, lambda _: executor, instance_price=0.0)
    plan = prepared.plan
    assert plan is not None and plan.tasks[0].key == "create", prepared.notes
    with meter.phase_of("plan"):
        jobs = submit.jobs_for(plan, executor)
    storage.uploads = {str(job.manifest.uri) for job in jobs if job.manifest is not None}
    start = time.perf_counter()
    record = submit.submit_plan(plan, jobs, executor, storage, prepared.options, region=clients.region,
                                sample_names=prepared.sample_names)  # fmt: skip
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
    print()
    print("| phase | mode | API calls | by operation | wall s | in the emulator s | net s |")
    print("|---|---|---|---|---|---|---|")
    totals = {}
    for phase in (*PHASES, "submission"):
        for run, server, _ in runs:
            meter = run.meter
            parts = SUBMISSION if phase == "submission" else (phase,)
            calls = sum((meter.calls_of(p) for p in parts), Counter())
            wall = sum(meter.wall(p) for p in parts)
            emulated = sum(meter.emulator(p, server) for p in parts)
            totals[(phase, run.mode)] = (calls, wall, emulated)
            name = "**submission** (upload + submit + record)" if phase == "submission" else phase
            print(f"| {name} | {run.mode} | {sum(calls.values())} | {made(calls)} | {wall:.2f} | {emulated:.2f} "
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


def rss_now() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


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
    opts = IngestOptions("s3://my-bucketname/dataset", "samples.txt", METADATA, num_jobs=args.num_jobs)
    executor = BatchExecutor(Clients(local_aws.REGION, None, None, None), local_aws.JOB_QUEUE,
                             local_aws.JOB_DEFINITION, array_jobs=args.mode == "array")  # fmt: skip
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
