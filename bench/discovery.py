#!/usr/bin/env python3
"""Discovery of the samples under an S3 prefix (``batch-ingest.py --samples s3://bucket/prefix/``) at cohort scale.

--keys keys under one prefix (half samples, half their .tbi indexes), laid out four ways: one
folder, 10 folders (bench/preflight.py's cohort), a folder a sample, and names without counters
(random hex). The latency model is bench/preflight.py's: every S3 call sleeps --latency seconds
(40 ms) in a botocore before-send hook, in the calling thread, so that concurrent calls wait
concurrently as on AWS, and ListObjectsV2 pages are answered from the keys held in memory,
rendered as S3 writes them (moto would take a second a page). No server: nothing else is asked.

Rows: one page after another (the paginator), then ``prefixlisting.list_prefix`` (pieces cut at
the page's counters, 16 at a time), both reading keys and sizes only, and they must list the same
keys; then the whole discovery (``discovery.discover``: the listing, the pairing of every sample
with its index) on the same prefix, which must find every sample and leave nothing out.

    python bench/discovery.py [--keys 100000] [--latency 0.04] [--workers 16]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo"), str(BENCH)]

import boto3  # noqa: E402
from preflight import BUCKET, Latency, listings_of  # noqa: E402  (bench/preflight.py)

import local_aws  # noqa: E402
from tiledbvcf_batch.aws import make_clients  # noqa: E402
from tiledbvcf_batch.discovery import discover  # noqa: E402
from tiledbvcf_batch.prefixlisting import list_prefix, list_sequentially  # noqa: E402
from tiledbvcf_batch.s3listing import CallCounter, listing_client  # noqa: E402
from tiledbvcf_batch.storage import S3Uri  # noqa: E402

PREFIX = "delivery/"
LAYOUTS: dict[str, Callable[[int], str]] = {
    "one folder": lambda i: f"S{i:06d}.vcf.gz",
    "10 folders": lambda i: f"batch{i % 10:03d}/S{i:06d}.vcf.gz",
    "a folder a sample": lambda i: f"S{i:06d}/S{i:06d}.vcf.gz",
    "hex names (no counter)": lambda i: f"{random.Random(i).getrandbits(64):016x}.vcf.gz",
}


def delivery(layout: Callable[[int], str], keys: int) -> dict[str, int]:
    """``keys`` objects under PREFIX: keys/2 samples, each with its .tbi, and a key outside the prefix."""
    objects = {"elsewhere/S0.vcf.gz": 1}
    for i in range(keys // 2):
        key = PREFIX + layout(i)
        objects[key] = 1 + i % 64
        objects[key + ".tbi"] = 1
    return objects


def measured(counter: CallCounter, run: Callable[[], Any]) -> tuple[Any, int, float]:
    counter.calls.clear()
    start = time.perf_counter()
    result = run()
    return result, sum(counter.calls.values()), time.perf_counter() - start


def bench_layout(name: str, keys: int, args: argparse.Namespace, rows: list[tuple]) -> None:
    """The three rows of one layout; the paginator, the pieces and the discovery must agree."""
    objects = delivery(LAYOUTS[name], keys)
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-send.s3", Latency(args.latency, listings_of(objects)))
    counter = CallCounter().attach(boto3.DEFAULT_SESSION.events)
    s3 = make_clients(local_aws.REGION).s3
    lean = listing_client(s3, 1)  # the same lean parsing as the pieces', one connection
    wanted = {key: size for key, size in objects.items() if key.startswith(PREFIX)}
    listing, calls, seconds = measured(counter, lambda: list_sequentially(lean, BUCKET, PREFIX))
    assert listing.sizes == wanted, "the paginator missed keys"
    rows.append((name, "one page after another", len(wanted), calls, seconds))
    listing, calls, seconds = measured(counter, lambda: list_prefix(s3, BUCKET, PREFIX, args.workers))
    assert listing.sizes == wanted and calls == listing.calls, "the pieces disagree with the paginator"
    rows.append((name, f"pieces cut at counters, {args.workers} at a time", len(wanted), calls, seconds))
    found, calls, seconds = measured(counter, lambda: discover(S3Uri(BUCKET, PREFIX), s3))
    assert len(found.samples) == keys // 2 and not found.left_out and not found.unindexed
    rows.append((name, "discovery (listing, pairing)", len(found.samples), calls, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.04)
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()
    os.environ.update(local_aws.FAKE_CREDENTIALS)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    rows: list[tuple] = []
    for name in LAYOUTS:
        bench_layout(name, args.keys, args, rows)
    print(f"{args.keys} keys under one prefix (samples and their .tbi), {1000 * args.latency:.0f} ms an S3 call")
    print("| layout | path | keys or samples | ListObjectsV2 calls | seconds |")
    print("|---|---|---|---|---|")
    for name, path, count, calls, seconds in rows:
        print(f"| {name} | {path} | {count} | {calls} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
