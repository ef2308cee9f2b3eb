"""Every key under an S3 prefix, with its size, in key ranges listed at once (``batch-ingest.py --samples s3://…/``).

A prefix's keys are not known before they are listed, so its listing cannot be cut in ranges up
front (as ``s3listing`` cuts the ranges of wanted keys). Instead each range lists one page; when
the page is full (1,000 keys and more follow), the rest of the range is cut at the next values of
the counters the page shows (see ``split_points``), and every piece is listed at once, a page
each, and cut again the same way. Keys are read as ``s3listing`` reads them (keys and sizes only).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .s3listing import WORKERS, listing_client, page_items

# Just below every key that starts with a given text: no key holds this code point (UTF-8 order is code point order).
HIGHEST = "\U0010ffff"
PAGE = 1000  # keys of a full ListObjectsV2 page
CLASSES = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Piece:
    """Keys after ``after`` and before ``before`` (None: to the end of the prefix), listed under ``prefix``.

    ``prefix`` is what every key of the piece starts with: a piece that holds the keys of one
    counter value (``S001``) is listed under it, so that S3 says when it is done (no IsTruncated),
    and a full last page costs no call more.
    """

    after: str
    before: str | None
    prefix: str


@dataclass
class Listing:
    """The keys under a prefix and their sizes, and the ListObjectsV2 calls that took."""

    sizes: dict[str, int] = field(default_factory=dict)
    calls: int = 0


def successors(char: str) -> str:
    """The characters after ``char`` in its class (digits, lower or upper case letters): a counter's next values."""
    for chars in CLASSES:
        if char in chars:
            return chars[chars.index(char) + 1 :]
    return ""


def split_points(first: str, last: str, before: str | None, prefix: str, keys: int = PAGE) -> list[str]:
    """Where to cut the rest of a range whose full page of ``keys`` keys went from ``first`` to ``last``.

    Why few calls: keys are counted, and their counters show in a page. The page's keys agree up to
    position ``varies`` (their common start) and run through values of the character there; the
    keys after ``last`` begin with its next values (``S0005`` after a page ending at ``S0004…``),
    then with the next values of the digit before it, the counter that carries (``S001``, ``S002``…,
    or ``batch001/``…). The values of ``varies`` are grouped into pieces of about a page, as many
    values as the page shows one to hold; each value of the carrying digit is a piece of its own
    (some pages, cut again by its own first page), listed under its own prefix so that S3 says
    where it ends; what follows them (``S01``… and on) is one piece, cut in turn when its first page
    shows its counters. The pieces cover the rest exactly, so nothing is missed whatever the names,
    most of them hold keys, and an empty one costs one call: about one call a page, plus the values a
    counter never reaches (``S005``… when a folder stops at ``S004``). Letters are words
    (``batch``, ``cohort``), not counters, unless they are what varies in the page.
    """
    start = len(os.path.commonprefix([last, before])) if before is not None else len(prefix)  # noqa: RUF071
    varies = len(os.path.commonprefix([first, last]))  # noqa: RUF071
    points = []
    if varies < len(last) and successors(last[varies]):
        values = successors(last[varies])
        seen = ord(last[varies]) - ord(first[varies]) + 1 if len(first) > varies else 1
        group = max(1, round(PAGE * seen / keys))  # values of about a page
        points += [last[:varies] + value for value in values[group - 1 :: group]]
    carry = next((p for p in range(varies - 1, start - 1, -1) if last[p].isdigit() and successors(last[p])), None)
    if carry is not None:
        # Each value of the digit that carries, and the end of its class: the last value's piece is listed
        # under its own prefix too, and what follows (the next values of the digits before it) is one piece,
        # cut in turn when its first page shows them.
        values = successors(last[carry])
        points += [last[:carry] + value for value in values + chr(ord(values[-1]) + 1)]
    return sorted(point for point in set(points) if point > last and (before is None or point < before))


def pieces_after(first: str, last: str, before: str | None, prefix: str, keys: int = PAGE) -> list[Piece]:
    """The rest of a range after its full page, cut at ``split_points``: contiguous, together all of it."""
    points = split_points(first, last, before, prefix, keys)
    pieces = []
    for start, end in zip([last, *points], [*points, before], strict=True):
        # Keys from ``start`` (after it, for ``last``) to ``end`` all begin with what the two have in common,
        # and with ``start`` itself where ``end`` is the next value of its last character.
        common = os.path.commonprefix([start, end]) if end is not None else prefix  # noqa: RUF071
        if end is not None and end == start[:-1] + chr(ord(start[-1]) + 1):
            common = start
        after = start if start == last else start[:-1] + chr(ord(start[-1]) - 1) + HIGHEST
        pieces.append(Piece(after, end, common))
    return pieces


def list_piece(s3: Any, bucket: str, prefix: str, piece: Piece) -> tuple[list[tuple[str, int]], list[Piece]]:
    """One page of ``piece``: its keys, and the pieces its rest is cut in (none once the piece is listed)."""
    args = {"Bucket": bucket, "Prefix": piece.prefix}
    if piece.after:
        args["StartAfter"] = piece.after
    page = s3.list_objects_v2(**args)
    items = page_items(page)
    kept = [item for item in items if piece.before is None or item[0] < piece.before]
    if len(kept) < len(items) or not page.get("IsTruncated") or not items:
        return kept, []
    return kept, pieces_after(items[0][0], items[-1][0], piece.before, prefix, len(items))


def list_prefix(s3: Any, bucket: str, prefix: str, workers: int = WORKERS) -> Listing:
    """Every key under ``prefix`` and its size: pieces listed ``workers`` at a time, each cut as its page shows.

    A ClientError (no such bucket, access denied) stops the listing and is raised.
    """
    s3 = listing_client(s3, workers)
    listing = Listing()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for items in pieces_listed(pool, s3, bucket, prefix, listing):
            listing.sizes.update(items)
    return listing


def pieces_listed(
    pool: ThreadPoolExecutor, s3: Any, bucket: str, prefix: str, listing: Listing
) -> Iterator[list[tuple[str, int]]]:
    """The keys of each page as it comes, the pieces its rest was cut in submitted at once."""
    running: set[Future[tuple[list[tuple[str, int]], list[Piece]]]] = {
        pool.submit(list_piece, s3, bucket, prefix, Piece("", None, prefix))
    }
    listing.calls += 1
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            items, rest = future.result()
            running |= {pool.submit(list_piece, s3, bucket, prefix, piece) for piece in rest}
            listing.calls += len(rest)
            yield items


def list_sequentially(s3: Any, bucket: str, prefix: str) -> Listing:
    """The same answer, one page after another: what ``list_prefix`` must equal (the bench's baseline)."""
    listing = Listing()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        listing.calls += 1
        listing.sizes.update(page_items(page))
    return listing
