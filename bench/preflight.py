#!/usr/bin/env python3
"""The preflight's check of every sample and index at cohort scale: sequential listings against the lookup.

A cohort of samples and their .tbi indexes in --directories folders, on a moto server on
127.0.0.1. Every S3 call sleeps --latency seconds (40 ms, about what a call to S3 takes from a
workstation) in a botocore before-send hook, in the calling thread, so concurrent calls wait
concurrently as they would on AWS. The emulator's own cost must not dominate: moto renders a
1,000-key ListObjectsV2 page in about a second, so the same hook answers ListObjectsV2 from the
cohort's keys held in memory, rendered as S3 writes a page (LastModified, ETag, Size,
StorageClass). HEAD requests go to the server, which holds the objects they ask for.

Rows: the sequential check (one listing of each folder after another, botocore parsing every
page whole: what the preflight did before) and the lookup (probe pages, then key ranges in 16
threads, keys and sizes read only) on the whole cohort, where both must give the same problems
and sizes; then the lookup on a sparse pick of it (about one sample in --sparse-every), where
HEAD requests win (the sequential check would list the same pages as for the whole cohort).
Then the cost of parsing one 1,000-key page three ways.

    python bench/preflight.py [--samples 100000] [--directories 10] [--latency 0.04] [--sparse-every 1000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import boto3  # noqa: E402
import botocore.session  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

import local_aws  # noqa: E402
from tiledbvcf_batch.aws import make_clients  # noqa: E402
from tiledbvcf_batch.inputs import Sample  # noqa: E402
from tiledbvcf_batch.preflight import check_s3_samples  # noqa: E402
from tiledbvcf_batch.s3listing import CallCounter, keys_and_sizes_only  # noqa: E402

BUCKET = "bucket-name"
PAGE = 1000


class Body:
    """The raw stream botocore reads an answer's body from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


class Listings:
    """A bucket's keys as the server holds them, answering ListObjectsV2 pages as S3 writes them."""

    def __init__(self, rows: list[tuple[str, int, str, str]]):
        rows.sort()
        self.keys = [row[0] for row in rows]
        self.entries = [
            f"<Contents><Key>{quote(key)}</Key><LastModified>{modified}</LastModified>"
            f"<ETag>{etag.replace(chr(34), '&quot;')}</ETag><Size>{size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for key, size, etag, modified in rows
        ]

    def page(self, query: dict[str, list[str]]) -> bytes:
        prefix = query.get("prefix", [""])[0]
        after = max(query.get("start-after", [""])[0], query.get("continuation-token", [""])[0])
        size = int(query.get("max-keys", [PAGE])[0])
        first = max(bisect_left(self.keys, prefix), bisect_right(self.keys, after) if after else 0)
        end = bisect_left(self.keys, prefix + "\U0010ffff")
        last = min(end, first + size)
        more = last < end
        token = f"<NextContinuationToken>{self.keys[last - 1]}</NextContinuationToken>" if more else ""  # opaque
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{BUCKET}</Name><Prefix>{quote(prefix)}</Prefix><KeyCount>{last - first}</KeyCount>"
            f"<MaxKeys>{size}</MaxKeys><EncodingType>url</EncodingType><IsTruncated>{str(more).lower()}</IsTruncated>"
            f"{token}{''.join(self.entries[first:last])}</ListBucketResult>"
        ).encode()


class Latency:
    """before-send hook: every S3 call waits ``seconds``; ListObjectsV2 is answered from ``listings``."""

    def __init__(self, seconds: float, listings: Listings):
        self.seconds = seconds
        self.listings = listings

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        time.sleep(self.seconds)
        if not event_name.endswith(".ListObjectsV2"):
            return None
        query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
        return AWSResponse(request.url, 200, {}, Body(self.listings.page(query)))


def cohort(samples: int, directories: int) -> dict[str, int]:
    """Every object of the cohort and its size: the samples and their .tbi indexes."""
    objects = {}
    for i in range(samples):
        key = f"cohort/batch{i % directories:03d}/S{i:06d}.vcf.gz"
        objects[key] = 1 + i % 64
        objects[key + ".tbi"] = 1
    return objects


def listings_of(objects: dict[str, int]) -> Listings:
    modified = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return Listings(
        [(key, size, f'"{hashlib.md5(key.encode()).hexdigest()}"', modified) for key, size in objects.items()]
    )


def seed(objects: dict[str, int], samples: list[Sample]) -> None:
    """The objects HEAD requests ask for (``samples`` and their indexes), straight into the server's S3.

    Only those: moto takes about a second for 10,000 objects, and listings never reach the server.
    """
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["aws"]
    for sample in samples:
        key = sample.uri.removeprefix(f"s3://{BUCKET}/")
        for name in (key, key + ".tbi"):
            backend.put_object(BUCKET, name, b"v" * objects[name])


def timed(counter: CallCounter, run: Any) -> tuple[Any, float, dict[str, int]]:
    counter.calls.clear()
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start, dict(counter.calls)


def compare(samples: list[Sample], s3: Any, counter: CallCounter, rows: list) -> dict[str, int]:
    """Both paths on the whole cohort, a table row each; they must agree exactly. The samples' sizes."""
    before, seconds, calls = timed(counter, lambda: check_s3_samples(s3, samples, parallel=False))
    rows.append(("whole cohort: sequential listings (before)", len(samples), calls, seconds))
    after, seconds, calls = timed(counter, lambda: check_s3_samples(s3, samples))
    rows.append(("whole cohort: lookup (after)", len(samples), calls, seconds))
    assert before == after, "the lookup and the sequential check disagree"
    assert not after[0], after[0][:3]
    return after[1]


def sparse(samples: list[Sample], sizes: dict[str, int], s3: Any, counter: CallCounter, rows: list) -> None:
    """The lookup on a sparse pick: the sequential check would list the same pages as for the whole cohort."""
    (problems, found), seconds, calls = timed(counter, lambda: check_s3_samples(s3, samples))
    rows.append((f"1 sample in {len(sizes) // len(samples)}: lookup", len(samples), calls, seconds))
    assert not problems and found == {sample.uri: sizes[sample.uri] for sample in samples}, problems[:3]


def parse_costs(listings: Listings, repeat: int = 15) -> list[tuple[str, float]]:
    """Milliseconds to parse one 1,000-key page: botocore whole, timestamps unparsed, keys and sizes only."""
    from botocore.parsers import ResponseParserFactory

    shape = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    body = listings.page({})
    plain = ResponseParserFactory().create_parser("rest-xml")
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=lambda text: text)
    untimed = factory.create_parser("rest-xml")

    def whole(parser: Any) -> Any:
        return lambda: parser.parse({"status_code": 200, "body": body, "headers": {}}, shape)

    def lean() -> None:
        response, custom = {"status_code": 200, "body": body, "headers": {}}, {}
        keys_and_sizes_only(response_dict=response, customized_response_dict=custom)
        plain.parse(response, shape).update(custom)

    ways = [
        ("botocore, every field", whole(plain)),
        ("botocore, timestamps left unparsed (a trivial timestamp_parser)", whole(untimed)),
        ("keys and sizes only (the lookup's before-parse hook)", lean),
    ]
    costs = []
    for name, parse in ways:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            parse()
            times.append(time.perf_counter() - start)
        costs.append((name, 1000 * statistics.median(times)))
    return costs


def print_tables(args: argparse.Namespace, rows: list, costs: list, setup: float) -> None:
    print(f"{args.samples} samples with .tbi indexes in {args.directories} folders, {1000 * args.latency:.0f} ms "
          f"an S3 call; setting up the emulator took {setup:.0f} s")  # fmt: skip
    print("| path | samples | S3 calls | seconds |")
    print("|---|---|---|---|")
    for name, count, calls, seconds in rows:
        made = ", ".join(f"{op} {n}" for op, n in sorted(calls.items()))
        print(f"| {name} | {count} | {sum(calls.values())} ({made}) | {seconds:.2f} |")
    print()
    print("| parsing one 1,000-key ListObjectsV2 page | ms (median) |")
    print("|---|---|")
    for name, ms in costs:
        print(f"| {name} | {ms:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--directories", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.04)
    parser.add_argument("--sparse-every", type=int, default=1000)
    args = parser.parse_args()
    os.environ.update(local_aws.FAKE_CREDENTIALS)
    server, endpoint = local_aws.start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        start = time.perf_counter()
        objects = cohort(args.samples, args.directories)
        samples = [Sample(f"s3://{BUCKET}/{key}") for key in objects if not key.endswith(".tbi")]
        # One more than a multiple of the folders, so that the pick is spread over every folder.
        pick = samples[:: args.sparse_every + 1]
        local_aws.create_buckets()
        seed(objects, pick)
        listings = listings_of(objects)
        setup = time.perf_counter() - start
        boto3.setup_default_session()
        # Hooks on the session before any client exists: every client made from it, the lookup's too, has them.
        boto3.DEFAULT_SESSION.events.register("before-send.s3", Latency(args.latency, listings))
        counter = CallCounter().attach(boto3.DEFAULT_SESSION.events)
        s3 = make_clients(local_aws.REGION).s3
        rows: list = []
        sizes = compare(samples, s3, counter, rows)
        sparse(pick, sizes, s3, counter, rows)
        costs = parse_costs(listings)
    finally:
        server.stop()
    print_tables(args, rows, costs, setup)


if __name__ == "__main__":
    main()
