#!/usr/bin/env python3
"""New samples into a dataset that holds many: the dataset read (TileDB-Py), the header reads, the whole preflight.

"1,000 new samples into a dataset of 100,000 samples", on an emulated S3: a moto server in a
process of its own (TileDB-Py holds the GIL during its C++ calls: a server in this process would
never answer it). The latency model of bench/emulation.py cannot be a botocore hook here (TileDB's
S3 client is not botocore), so it is applied at the server, to every S3 request from anyone: each
waits --latency (40 ms) before moto answers it, in the request's own thread, so concurrent requests
wait concurrently. The server logs each request (its operation, when it came, when moto began and
ended its work); every moment moto worked on any request is shown apart and subtracted ("net"), as
in bench/scale.py. With many requests in flight that subtracts too much (moto takes ~2 ms a request,
on the client's 2 cores): the time on S3 lies between net and wall; "in flight" is the mean number
of requests under way. Requests are counted at the server (TileDB's and boto3's alike); boto3's
also in this process, so that TileDB's are the difference. Batch is answered from memory.

The dataset: a real one made by tiledbvcf (create, then store of 3 samples of demo/cohort.py), to
whose ``metadata/vcf_headers`` array --dataset-samples more names are added with TileDB-Py (same
schema: a short header each), written locally in --fragments fragments and put into the emulated
S3. tiledbvcf stores one fragment per sample batch (store -e, 10 by default): a dataset of 100,000
samples ingested with the defaults has 10,000 fragments, and --consolidate then runs the product's
consolidation steps (fragment metadata and commits, consolidated and vacuumed) as its jobs do.
``tiledbvcf list`` and ``dataset.read_samples`` must both list every name before anything is timed.
--registry-entries K: K old entries in the dataset's run registry claim those samples (records gone).
The new samples: --new-samples bgzipped VCFs with .tbi indexes (demo/cohort.py), in bucket-name/new/.

Rows: the dataset read (``dataset.read_samples``, a fresh TileDB context as the product makes),
the header reads (``headercheck.check_headers`` of the new samples), and ``prepare.ingest`` of the
new samples into the dataset, each step of it apart. Setting up is not timed (no latency then).

    python bench/dataset.py [--dataset-samples 100000] [--new-samples 1000] [--fragments 1] [--consolidate]
                            [--registry-entries 0] [--tiledb-config sm.compute_concurrency_level=32,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo"), str(BENCH)]
TILEDBVCF = os.environ.get("TILEDBVCF") or str(ROOT / ".tools" / "tiledbvcf-0.40.3" / "bin" / "tiledbvcf")
DATASET = "s3://my-bucketname/ds"
HEADERS = "ds/metadata/vcf_headers/"
CONTROL = "/__bench__/"
HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{}\n"  # an added name's
Request = tuple[str, str, float, float, float]  # operation, area (first part of the key), came, moto began, ended

# --- the server process ----------------------------------------------------------------------------


def operation(method: str, path: str, query: dict[str, list[str]], environ: dict[str, Any]) -> tuple[str, str]:
    """The S3 operation of a path-style request, and its area: bucket/first part of its key (or listed prefix)."""
    bucket, _, key = path.lstrip("/").partition("/")
    area = f"{bucket}/{(key or query.get('prefix', [''])[0]).partition('/')[0]}".rstrip("/")
    if method == "GET" and not key:
        listing = "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return ("GetBucketLocation" if "location" in query else listing), area
    if method == "GET":
        return ("GetObject (range)" if "HTTP_RANGE" in environ else "GetObject"), area
    if method == "HEAD":
        return ("HeadObject" if key else "HeadBucket"), area
    if method == "PUT":
        kind = "UploadPart" if "uploadId" in query else "CopyObject" if "HTTP_X_AMZ_COPY_SOURCE" in environ else ""
        return (kind or ("PutObject" if key else "CreateBucket")), area
    if method == "POST":
        kind = "DeleteObjects" if "delete" in query else "CreateMultipartUpload" if "uploads" in query else ""
        return (kind or "CompleteMultipartUpload"), area
    return ("DeleteObject" if key else "DeleteBucket") if method == "DELETE" else method, area


class MeteredServer:
    """WSGI around moto: every request waits the latency, then moto answers; each is logged. CONTROL paths:
    ``latency`` (POST {"seconds"}), ``log`` (GET: the log since the last one), ``seed`` (POST {"bucket",
    "prefix", "dir"}: a local directory's files straight into moto's S3, no request each)."""

    def __init__(self, app: Any):
        self.app = app
        self.latency = 0.0
        self.log: list[Request] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith(CONTROL):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            answer = json.dumps(self.control(path.removeprefix(CONTROL), json.loads(body or b"{}"))).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
            return [answer]
        came = time.monotonic()
        if self.latency:
            time.sleep(self.latency)
        began = time.monotonic()
        body = b"".join(self.app(environ, start_response))  # all of moto's work inside the interval
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        with self.lock:
            self.log.append((*operation(environ["REQUEST_METHOD"], path, query, environ), came, began,
                             time.monotonic()))  # fmt: skip
        return [body]

    def control(self, command: str, payload: dict[str, Any]) -> Any:
        if command == "latency":
            self.latency = float(payload["seconds"])
            return self.latency
        if command == "log":
            with self.lock:
                log, self.log = self.log, []
            return log
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend, root, count = s3_backends[DEFAULT_ACCOUNT_ID]["aws"], Path(payload["dir"]), 0
        for path in sorted(root.rglob("*")):
            if path.is_file():
                backend.put_object(payload["bucket"], payload["prefix"] + path.relative_to(root).as_posix(),
                                   path.read_bytes())  # fmt: skip
                count += 1
        return count


def serve() -> None:
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, MeteredServer(DomainDispatcherApplication(create_backend_app)), threaded=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


# --- this process: the server's handle, the dataset, the samples -----------------------------------------


class Server:
    """The server process, started here and ended here (by its own handle)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.endpoint = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def control(self, command: str, payload: dict[str, Any] | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        with urllib.request.urlopen(f"{self.endpoint}{CONTROL}{command}", data=data, timeout=600) as answer:
            return json.loads(answer.read())

    def log(self) -> list[Request]:
        return [tuple(row) for row in self.control("log")]  # type: ignore[misc]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def tiledbvcf(*args: str) -> str:
    return subprocess.run([TILEDBVCF, *args], check=True, capture_output=True, text=True, timeout=3600).stdout


def make_dataset(args: argparse.Namespace, server: Server, s3: Any, work: Path, access: Any) -> list[str]:
    """A real dataset of 3 stored samples, plus --dataset-samples names in --fragments fragments; its names."""
    import numpy as np
    import tiledb

    import cohort

    tiledbvcf("create", "-u", DATASET)
    seeds = cohort.make_cohort(work / "seed", 3, records=50, prefix="X")
    tiledbvcf("store", "-u", DATASET, *map(str, seeds))
    local = work / "vcf_headers"  # the array as tiledbvcf left it, then the added fragments, written here
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="my-bucketname", Prefix=HEADERS):
        for item in page.get("Contents", []):
            path = local / item["Key"].removeprefix(HEADERS)
            path.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("my-bucketname", item["Key"], str(path))
    names = [f"P{i:06d}" for i in range(args.dataset_samples)]
    size = -(-len(names) // args.fragments)
    for start in range(0, len(names), size):
        part = np.array(names[start : start + size], dtype=object)
        with tiledb.open(str(local), "w") as array:
            array[part] = {"header": np.array([HEADER.format(name) for name in part], dtype=object)}
    server.control("seed", {"bucket": "my-bucketname", "prefix": HEADERS, "dir": str(local)})
    if args.consolidate:  # what the product's consolidation jobs run after a batch
        from tiledbvcf_batch.commands import CONSOLIDATION_STEPS

        config = ",".join(f"{key}={value}" for key, value in access.config().items())
        for action, what in CONSOLIDATION_STEPS:
            tiledbvcf("utils", action, what, "-u", DATASET, "--tiledb-config", config)
    return [path.stem for path in seeds] + names


def put_new_samples(args: argparse.Namespace, server: Server, work: Path) -> list[str]:
    """--new-samples bgzipped VCFs with their .tbi under s3://bucket-name/new/; their URIs."""
    import cohort

    paths = cohort.make_cohort(work / "new", args.new_samples, records=5, fmt="vcf.gz", prefix="N")
    server.control("seed", {"bucket": "bucket-name", "prefix": "new/", "dir": str(work / "new")})
    return [f"s3://bucket-name/new/{path.name}" for path in paths]


def put_registry_entries(args: argparse.Namespace, server: Server, work: Path) -> None:
    """--registry-entries old entries of the dataset's run registry, sharing the dataset's added samples."""
    from tiledbvcf_batch.registry import DIGITS, Entry

    folder, count = work / "registry" / "runs", args.registry_entries
    folder.mkdir(parents=True)
    created = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)).isoformat(timespec="seconds")
    for number in range(1, count + 1):
        mine = range(number - 1, args.dataset_samples, count)
        uris = tuple(f"s3://bucket-name/old/P{i:06d}.vcf.gz" for i in mine)
        run_id = f"ingest-old-{number}"
        entry = Entry(number, run_id, f"s3://bucket2-name/tiledbvcf-batch/runs/{run_id}/run.json", created, uris,
                      {uri: f"P{i:06d}" for uri, i in zip(uris, mine, strict=True)})  # fmt: skip
        (folder / f"{number:0{DIGITS}d}.json").write_text(json.dumps(entry.to_json(), separators=(",", ":")))
    server.control("seed", {"bucket": "my-bucketname", "prefix": "ds.tiledbvcf-batch/", "dir": str(folder.parent)})


# --- measuring ---------------------------------------------------------------------------------------------

# What prepare.ingest does, in order.
STEPS = ("ingest_preflight", "dataset_exists", "read_dataset", "read_entries", "withdrawn_runs", "dataset_ledger",
         "check_headers", "ingest_batches", "plan_ingest")  # fmt: skip


@contextmanager
def steps_timed(windows: list[tuple[float, float, str]]) -> Iterator[None]:
    """The window of each step prepare.ingest calls (by wrapping the names it calls them by)."""
    from tiledbvcf_batch import prepare

    originals = {name: getattr(prepare, name) for name in STEPS if hasattr(prepare, name)}  # not read_dataset

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return function(*args, **kwargs)
            finally:
                windows.append((start, time.monotonic(), name))

        return call

    for name, function in originals.items():
        setattr(prepare, name, timed(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(prepare, name, function)


class Row:
    """One measured row: wall time, the server's requests that came in its window, and how many were TileDB's."""

    def __init__(self, name: str, start: float, end: float, log: list[Request], boto3_calls: int | None = None):
        from emulation import covered

        self.name, self.wall = name, end - start
        self.requests = [r for r in log if start <= r[2] <= end]
        self.emulator = covered(sorted((r[3], r[4]) for r in self.requests), start, end)
        self.in_flight = sum(r[4] - r[2] for r in self.requests) / self.wall if self.wall else 0.0
        # None: every request was TileDB's; else those boto3 did not make (counted in this process)
        self.tiledb = "all" if boto3_calls is None else str(len(self.requests) - boto3_calls)

    def cells(self) -> str:
        ops = Counter(r[0] for r in self.requests)
        made = ", ".join(f"{op} {n}" for op, n in sorted(ops.items())) or "none"
        areas = ", ".join(f"{a} {n}" for a, n in sorted(Counter(r[1] for r in self.requests).items())) or "-"
        return (f"| {self.name} | {self.wall:.2f} | {self.emulator:.2f} | {self.wall - self.emulator:.2f} "
                f"| {self.in_flight:.1f} | {len(self.requests)} | {self.tiledb} | {made} | {areas} |")  # fmt: skip


class BatchFromMemory:
    """before-send.batch: bench/emulation.py's FakeBatch, after --batch-latency."""

    def __init__(self, latency: float):
        from emulation import FakeBatch

        self.batch, self.latency = FakeBatch(), latency

    def __call__(self, request: Any, event_name: str, **_: Any) -> Any:
        time.sleep(self.latency)
        return self.batch.answer(event_name.rsplit(".", 1)[1], request)


def measure(args: argparse.Namespace, server: Server, uris: list[str], expected: int, work: Path) -> list[Row]:
    import boto3
    from emulation import Meter

    import local_aws
    from tiledbvcf_batch import dataset, headercheck, prepare
    from tiledbvcf_batch.aws import make_clients
    from tiledbvcf_batch.executors.batch import BatchExecutor
    from tiledbvcf_batch.inputs import Sample, parse_dataset_uri
    from tiledbvcf_batch.options import IngestOptions
    from tiledbvcf_batch.storage import S3Uri, Storage

    boto3.setup_default_session()
    meter = Meter()
    meter.attach(boto3.DEFAULT_SESSION.events)
    boto3.DEFAULT_SESSION.events.register("before-send.batch", BatchFromMemory(args.batch_latency))
    clients = make_clients(local_aws.REGION)
    access = dataset.access_for(clients.s3, None, clients.region, args.tiledb_config)
    samples = [Sample(uri) for uri in uris]
    path = work / "samples.txt"
    path.write_text("".join(f"{uri}\n" for uri in uris))
    clients.s3.head_bucket(Bucket="bucket-name")  # the client made and connected before anything is timed
    server.control("latency", {"seconds": args.latency})
    server.log()
    rows: list[Row] = []

    def s3_calls() -> int:  # boto3's S3 calls so far (Batch is answered here)
        return sum(n for (_, op), n in meter.calls.items() if op.startswith("S3 "))

    def row(name: str, start: float, tiledb_only: bool = False) -> None:
        end, made = time.monotonic(), s3_calls()
        rows.append(Row(name, start, end, server.log(), None if tiledb_only else made - boto3_before))

    boto3_before = s3_calls()
    start = time.monotonic()
    view = dataset.read_samples(DATASET, access)
    row(f"dataset read: {len(view.samples or ())} names (TileDB-Py)", start, tiledb_only=True)
    assert view.samples is not None and len(view.samples) == expected, view.problem
    boto3_before, start = s3_calls(), time.monotonic()
    problems, names = headercheck.check_headers(clients.s3, samples)
    row(f"header reads of {len(samples)} new samples (check_headers)", start)
    assert not problems and len(names) == len(samples), problems[:3]
    executor = BatchExecutor(clients, local_aws.JOB_QUEUE, local_aws.JOB_DEFINITION, array_jobs=True)
    opts = IngestOptions(parse_dataset_uri(DATASET), str(path), S3Uri("bucket2-name"), num_jobs=args.num_jobs,
                         scratch_path=executor.default_scratch())  # fmt: skip
    windows: list[tuple[float, float, str]] = []
    read = dataset.reader_for(clients.s3, None, clients.region, args.tiledb_config)

    def read_dataset(uri: Any) -> Any:
        begun = time.monotonic()
        try:
            return read(uri)
        finally:
            windows.append((begun, time.monotonic(), "read_dataset"))

    boto3_before, start = s3_calls(), time.monotonic()
    with steps_timed(windows):
        prepared = prepare.ingest(opts, samples, Storage(clients.s3), executor, lambda _: executor,
                                  read_dataset=read_dataset, instance_price=0.0)  # fmt: skip
    end = time.monotonic()
    log = server.log()
    rows.append(Row(f"**prepare.ingest** of {len(samples)} new samples", start, end, log, s3_calls() - boto3_before))
    assert prepared.plan is not None and prepared.plan.tasks[0].key != "create", prepared.notes
    assert len(prepared.sample_names) == len(samples), "the new samples' names were not read"
    return rows + step_rows(windows, log)


def step_rows(windows: list[tuple[float, float, str]], log: list[Any]) -> list[Row]:
    """The steps of prepare.ingest one after another (those of ingest_preflight run together), no TileDB but one."""
    rows = []
    for step in STEPS:
        for begun, ended, name in windows:
            if name == step:
                inside = sum(begun <= r[2] <= ended for r in log)
                rows.append(Row(f"- {step}", begun, ended, log, None if step == "read_dataset" else inside))
    return rows


def print_rows(args: argparse.Namespace, rows: list[Row], setup: float, layout: str, load: float) -> None:
    import tiledb

    from tiledbvcf_batch.dataset import DatasetAccess

    config = tiledb.Ctx(tiledb.Config(DatasetAccess("us-east-1", tiledb_config=args.tiledb_config).config())).config()
    timing = "import time; start = time.perf_counter(); import tiledb; print(time.perf_counter() - start)"
    imported = float(subprocess.run([sys.executable, "-c", timing], capture_output=True, text=True).stdout)
    print(f"{args.new_samples} new samples into a dataset of {args.dataset_samples + 3:,} samples ({layout}); "
          f"{1000 * args.latency:.0f} ms an S3 request (at the server), {1000 * args.batch_latency:.0f} ms a Batch "
          f"call; --tiledb-config {args.tiledb_config}; TileDB {'.'.join(map(str, tiledb.libtiledb.version()))}, "
          f"sm.io_concurrency_level {config['sm.io_concurrency_level']}, vfs.s3.max_parallel_ops "
          f"{config['vfs.s3.max_parallel_ops']} on {os.cpu_count()} cores; `import tiledb` "
          f"(the dataset reader's, once a process, not in the rows) {imported:.2f} s; setting up took {setup:.0f} s; "
          f"load average before: {load:.2f}")  # fmt: skip
    print()
    print("| what | wall s | in the emulator s | net s | in flight | S3 requests | of them TileDB's | by operation "
          "| by area |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.cells())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-samples", type=int, default=100_000, help="names added to the dataset's 3")
    parser.add_argument("--new-samples", type=int, default=1000, help="samples to ingest (headers read)")
    parser.add_argument("--fragments", type=int, default=1,
                        help="fragments the added names are written in (tiledbvcf: one per 10 samples)")  # fmt: skip
    parser.add_argument("--consolidate", action="store_true",
                        help="then run the product's consolidation steps on the dataset (tiledbvcf utils)")  # fmt: skip
    parser.add_argument("--registry-entries", type=int, default=0, help="old run registry entries to read")
    parser.add_argument("--latency", type=float, default=0.04, help="seconds each S3 request waits at the server")
    parser.add_argument("--batch-latency", type=float, default=0.08)
    parser.add_argument("--num-jobs", type=int, default=10)
    parser.add_argument("--tiledb-config", help="the run's --tiledb-config (k=v,...): the dataset reader applies it")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    import boto3

    import local_aws
    from tiledbvcf_batch.dataset import DatasetAccess

    load = os.getloadavg()[0]
    os.environ.update(local_aws.FAKE_CREDENTIALS)
    server = Server()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint  # boto3 and tiledbvcf reach the server by it
    work = Path(tempfile.mkdtemp(prefix="dataset-bench-"))
    try:
        started = time.monotonic()
        local_aws.create_buckets()
        s3 = boto3.client("s3", region_name=local_aws.REGION)
        access = DatasetAccess(local_aws.REGION, server.endpoint, "testing", "testing", "testing")
        names = make_dataset(args, server, s3, work, access)
        listed = tiledbvcf("list", "-u", DATASET).split()
        assert sorted(listed) == sorted(names), f"tiledbvcf lists {len(listed)} names, not {len(names)}"
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="my-bucketname", Prefix=HEADERS + "__fragments/",
                                                            Delimiter="/")  # fmt: skip
        fragments = sum(len(page.get("CommonPrefixes", [])) for page in pages)
        layout = (f"tiledbvcf lists {len(listed):,}; vcf_headers has {fragments} "
                  f"fragments{', consolidated fragment metadata and commits' if args.consolidate else ''}; "
                  f"{args.registry_entries} old registry entries")  # fmt: skip
        uris = put_new_samples(args, server, work)
        if args.registry_entries:
            put_registry_entries(args, server, work)
        setup = time.monotonic() - started
        rows = measure(args, server, uris, len(names), work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_rows(args, rows, setup, layout, load)


if __name__ == "__main__":
    main()
