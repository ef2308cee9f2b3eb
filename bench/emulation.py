"""The emulated AWS of bench/scale.py: the cohort's listings, Batch and S3 answered from memory, and a meter of
where the time goes (latency slept, time in the emulator, the client's own work).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
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

from botocore.awsrequest import AWSResponse  # noqa: E402
from preflight import BUCKET, Body, Listings  # noqa: E402  (bench/preflight.py)

import local_aws  # noqa: E402
from tiledbvcf_batch import prepare  # noqa: E402
from tiledbvcf_batch.arraytasks import ENTRYPOINT_VARIABLE  # noqa: E402
from tiledbvcf_batch.dataset import REGISTRY_SUFFIX  # noqa: E402
from tiledbvcf_batch.executors.batch import BatchExecutor  # noqa: E402
from tiledbvcf_batch.executors.jobs import Job  # noqa: E402
from tiledbvcf_batch.storage import Storage  # noqa: E402

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
    """API calls by phase (a before-call hook), and the windows of time each phase took.

    The calls that reach the dataset's run registry (``<dataset>.tiledbvcf-batch/``) are also counted apart, and
    the bytes each phase writes (MeteredStorage).
    """

    def __init__(self) -> None:
        self.phase = "other"
        self.calls: Counter[tuple[str, str]] = Counter()
        self.registry: Counter[tuple[str, str]] = Counter()  # the calls of ``calls`` that reach the registry
        self.written: Counter[str] = Counter()  # bytes of the bodies written, by phase
        self.windows: list[tuple[float, float, str]] = []
        self.events: list[tuple[float, float, str]] = []  # the calls of submit_plan, each with its phase
        self.planning = 0.0  # seconds of the planner inside prepare.ingest
        self.paced = 0.0  # seconds the Pacer slept
        self.inner: Counter[str] = Counter()  # seconds of what prepare.ingest calls, by name
        self.high_water: dict[str, int] = {}  # the process's peak resident bytes after each phase
        self.lock = threading.Lock()

    def attach(self, events: Any) -> None:
        events.register("before-call", self.count)

    def count(self, model: Any, event_name: str, params: dict[str, Any] | None = None, **_: Any) -> None:
        service = SERVICE_NAMES.get(event_name.split(".")[1], event_name.split(".")[1])
        params = params or {}
        where = f"{params.get('url_path', '')} {params.get('query_string', {}).get('prefix', '')}"
        with self.lock:
            self.calls[(self.phase, f"{service} {model.name}")] += 1
            if f"{REGISTRY_SUFFIX}/" in where:
                self.registry[(self.phase, f"{service} {model.name}")] += 1

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

        What precedes the first call and follows the last one is the record's, and so is what follows the
        registration (a "register" event, its calls and work inside it) up to the next call (RunRecord.new).
        """
        events = sorted(self.events)
        reach = events[0][0] if events else end
        self.windows.append((start, reach, "record"))
        previous = ""
        for begin, finish, phase in events:
            if previous == "register":
                self.windows.append((reach, begin, "record"))
                reach = begin
            self.windows.append((reach, finish, phase))
            reach, previous = finish, phase
        self.windows.append((reach, end, "record"))

    def wall(self, phase: str) -> float:
        seconds = sum(end - start for start, end, p in self.windows if p == phase)
        if phase == "preflight":
            return seconds - self.planning
        return seconds + self.planning if phase == "plan" else seconds

    def emulator(self, phase: str, server: list[tuple[float, float]]) -> float:
        return sum(covered(server, start, end) for start, end, p in self.windows if p == phase)

    def calls_of(self, phase: str, registry: bool = False) -> Counter[str]:
        """The calls of ``phase`` by operation; with ``registry``, those that reached the run registry only."""
        return Counter({op: n for (p, op), n in (self.registry if registry else self.calls).items() if p == phase})


@dataclass
class MeteredStorage(Storage):
    """The product's Storage; each put is timed as an upload (what the jobs read) or as the record's."""

    meter: Meter | None = None
    uploads: set[str] = field(default_factory=set)

    def put(self, uri: Any, body: bytes, content_type: str = "text/plain") -> None:
        assert self.meter is not None
        phase = "upload" if str(uri) in self.uploads else "record"
        self.meter.written[phase] += len(body)
        with self.meter.event(phase):
            super().put(uri, body, content_type)

    def create(self, uri: Any, body: bytes, content_type: str = "application/json") -> bool:
        """A create-only write (the run registry's entry), in the phase of whoever calls it."""
        assert self.meter is not None
        self.meter.written[self.meter.phase] += len(body)
        return super().create(uri, body, content_type)


@dataclass
class MeteredExecutor(BatchExecutor):
    """The product's BatchExecutor; each submission (the Pacer's wait included) is timed."""

    meter: Meter | None = None

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
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
# and to check (read_entries: the dataset's run registry)
CHECKS = ("check_writable", "check_bucket", "check_samples", "dataset_exists", "read_entries", "dataset_ledger")


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


def rss_now() -> int:
    """Resident bytes of this process now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
