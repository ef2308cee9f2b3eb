"""S3 listings made cheap: which of many S3 keys exist, and their sizes (the preflight asks it of every sample
and index, the lookup of ``preflight.check_s3_samples``).

Keys are grouped in folders (a bucket and a directory). Each folder costs one probe page first,
listed from just before its first wanted key; what the page shows decides how the rest is found:
by listing the rest of the key range, cut into ranges listed concurrently, or by one HEAD request
per remaining key (see ``prefer_heads``). Listings ask S3 for keys and sizes only, unparsed
timestamps and all (see ``keys_and_sizes_only``).
"""

from __future__ import annotations

import html
import math
import os
import re
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from .aws import LazyClient, error_code
from .storage import list_sizes

WORKERS = 16  # concurrent requests: ranges and HEADs alike
MAX_RANGES = 16  # a folder's listing is cut into at most this many key ranges
# S3 Standard bills a LIST request $0.005 per 1,000 and a HEAD (a GET-class request) $0.0004 per 1,000.
LIST_PRICE_IN_HEADS = 12.5
MISSING_CODES = ("404", "NoSuchKey", "NotFound")

Folder = tuple[str, str]  # (bucket, directory)


@dataclass
class Found:
    """Sizes of the wanted keys that exist, the folders that could not be listed, and what it took."""

    sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # bucket -> key -> bytes
    failures: dict[Folder, ClientError] = field(default_factory=dict)
    ranges: int = 0  # range listings after the probes
    heads: int = 0  # HEAD requests

    def add(self, bucket: str, sizes: dict[str, int]) -> None:
        self.sizes.setdefault(bucket, {}).update(sizes)

    def size(self, bucket: str, key: str) -> int | None:
        return self.sizes.get(bucket, {}).get(key)


@dataclass(frozen=True)
class Probe:
    """The first page of a folder's key range: the wanted keys it answered, and where it stopped."""

    sizes: dict[str, int]
    last: str | None  # the page's last key when more follow it; None when every wanted key is answered


class CallCounter:
    """S3 calls by operation, counted from every thread by a before-call hook."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, events: Any) -> CallCounter:
        """Count the calls of the clients made from ``events`` (a session's or a client's emitter) from now on."""
        events.register("before-call.s3", self._count)
        return self

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1


# A listing page as S3 writes it: its <Contents> elements side by side, each with one <Key> and one <Size>.
KEY = re.compile(r"<Key>([^<]*)</Key>")
SIZE = re.compile(r"<Size>([0-9]+)</Size>")
CONTENTS_START, CONTENTS_END = b"<Contents>", b"</Contents>"
NEXT_CONTENTS = re.compile(r"</Contents>\s*<Contents>")
URL_ENCODED = b"<EncodingType>url</EncodingType>"
KEY_SIZES = "KeySizes"  # where the hook leaves a page's (key, size) pairs, instead of "Contents"


def keys_and_sizes_only(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], operation_model: Any = None, **_: Any
) -> None:
    """before-parse hook of ListObjectsV2: read each object's key and size, and nothing else.

    botocore spends most of a page parsing what the preflight never reads, LastModified above all
    (about 2/3 of the page through dateutil), then ETag, StorageClass and checksums; then it
    URL-decodes every key (botocore asks S3 for URL-encoded keys). This takes the keys and sizes
    out with two expressions, decodes only the keys that need it, and leaves them as (key, size)
    pairs under KEY_SIZES; botocore parses the page without its <Contents> (IsTruncated, the
    continuation token). A page of any other shape is left to botocore whole.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return
    if operation_model is not None and operation_model.name != "ListObjectsV2":
        return
    first, last = body.find(CONTENTS_START), body.rfind(CONTENTS_END)
    if first < 0 or last < first:
        return
    end = last + len(CONTENTS_END)
    contents = body[first:end].decode("utf-8")
    keys, sizes = KEY.findall(contents), SIZE.findall(contents)
    # Nothing but <Contents> elements between the first and the last, each with its key and size.
    if not len(keys) == len(sizes) == contents.count("<Contents>") == len(NEXT_CONTENTS.findall(contents)) + 1:
        return
    rest = body[:first] + body[end:]
    customized_response_dict[KEY_SIZES] = list(
        zip(decode_keys(keys, URL_ENCODED in rest), map(int, sizes), strict=True)
    )
    response_dict["body"] = rest


def decode_keys(texts: list[str], url_encoded: bool) -> list[str]:
    """Keys from their text in a page: XML entities (a subset of HTML's), then URL encoding if S3 used it.

    Cohorts' keys rarely need either: one look at all of them at once spares a call a key.
    """
    special = "&%+" if url_encoded else "&"
    joined = "\n".join(texts)
    if not any(char in joined for char in special):
        return texts
    keys = [html.unescape(text) if "&" in text else text for text in texts]
    return [unquote_plus(key) for key in keys] if url_encoded else keys


def page_items(page: dict[str, Any]) -> list[tuple[str, int]]:
    """A listing page's (key, size) pairs, whether the hook read them or botocore."""
    if KEY_SIZES in page:
        return page[KEY_SIZES]
    return [(item["Key"], item["Size"]) for item in page.get("Contents", [])]


def listing_client(s3: Any, workers: int) -> Any:
    """A client of the lookup's own, whose listings skip what it never reads; other clients keep it all.

    A plain boto3 client (a test's, a bench's) cannot be copied: it is used as it is, parsing everything.
    """
    if not isinstance(s3, LazyClient):
        return s3
    client = s3.sibling(pool_size=workers)
    # Any operation's, not ListObjectsV2's alone: botocore runs handlers of wildcard events first, and this
    # one must run before its own S3 check of a 200 answer (whether it holds an <Error>), which otherwise
    # parses each whole page once more. The check then reads the page without its <Contents>: an error,
    # or a page cut short, is left whole by the hook or still fails to parse, and is retried as before.
    client.meta.events.register("before-parse.*.*", keys_and_sizes_only)
    return client


def key_prefix(keys: list[str]) -> str:
    # Compared character by character on purpose: the common start of the keys narrows the listing.
    return os.path.commonprefix([keys[0], keys[-1]])  # noqa: RUF071


def before(key: str) -> str:
    """A key that sorts just before ``key`` (its proper prefix): the StartAfter of a listing that starts at it."""
    return key[:-1]


def list_args(bucket: str, keys: list[str], start_after: str) -> dict[str, str]:
    args = {"Bucket": bucket, "Prefix": key_prefix(keys)}
    if start_after:
        args["StartAfter"] = start_after
    return args


def probe(s3: Any, bucket: str, keys: list[str], wanted: set[str]) -> Probe:
    """One page listed from just before the first wanted key."""
    page = s3.list_objects_v2(**list_args(bucket, keys, before(keys[0])))
    items = page_items(page)
    sizes = {key: size for key, size in items if key in wanted}
    more = page.get("IsTruncated") and items and items[-1][0] < keys[-1]
    return Probe(sizes, items[-1][0] if more else None)


def list_range(s3: Any, bucket: str, keys: list[str], start_after: str, wanted: set[str]) -> dict[str, int]:
    """The ``wanted`` keys that exist, listed from ``start_after`` until a page passes the last of ``keys``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(**list_args(bucket, keys, start_after)):
        items = page_items(page)
        sizes |= {key: size for key, size in items if key in wanted}
        if items and items[-1][0] >= keys[-1]:
            break
    return sizes


def head(s3: Any, bucket: str, key: str) -> dict[str, int]:
    try:
        return {key: s3.head_object(Bucket=bucket, Key=key)["ContentLength"]}
    except ClientError as error:
        if error_code(error) in MISSING_CODES:
            return {}
        raise


def prefer_heads(remaining: int, answered: int) -> bool:
    """Whether HEAD requests for the ``remaining`` wanted keys cost less than listing their key range.

    Listing costs follow the key range, not the keys wanted from it. The probe page resolved
    ``answered`` wanted keys (present or not) with one LIST request; taking the rest of the range
    to be alike, listing it costs about remaining/answered pages, and HEAD one request a key.
    Costs are compared as S3 bills them, a LIST as 12.5 HEADs: HEAD wins where fewer than about
    12 wanted keys lie among 1,000 objects, e.g. 10 samples (30 keys with their index candidates)
    spread over 5,000 objects (24 HEADs against 4 pages, 50 HEADs' worth); a dense cohort, about
    1,500 keys a page, is listed. Wall time follows the number of calls either way (both run
    WORKERS at a time), so a HEAD path is never more than 12.5 times the calls of the listing.
    """
    pages = math.ceil(remaining / max(answered, 1))
    return remaining < LIST_PRICE_IN_HEADS * pages


def cut(keys: list[str], parts: int) -> list[list[str]]:
    """``keys`` in ``parts`` runs of about equal length."""
    return [keys[len(keys) * i // parts : len(keys) * (i + 1) // parts] for i in range(parts)]


def range_tasks(s3: Any, bucket: str, left: Rest, parts: int) -> list[Callable[[], dict]]:
    """Listings of the keys ``left`` cut in ``parts`` ranges."""

    # Each range starts just before its first wanted key, or after the previous range's last wanted key
    # when that is later: everything up to it is listed by the previous range (or the probe).
    tasks: list[Callable[[], dict]] = []
    covered = left.covered
    for run in cut(left.keys, parts):
        tasks.append(partial(list_range, s3, bucket, run, max(covered, before(run[0])), left.wanted))
        covered = run[-1]
    return tasks


def gather(pool: ThreadPoolExecutor, tasks: Sequence[tuple[Folder, Callable[[], Any]]]) -> list[tuple[Folder, Any]]:
    """Each task's result, or the ClientError it raised, in the order of ``tasks``."""
    futures = [(folder, pool.submit(task)) for folder, task in tasks]
    results = []
    for folder, future in futures:
        try:
            results.append((folder, future.result()))
        except ClientError as error:
            results.append((folder, error))
    return results


def find_sizes(s3: Any, wanted: dict[Folder, set[str]], workers: int = WORKERS) -> Found:
    """The sizes of the ``wanted`` keys that exist, folder by folder; a folder that cannot be listed fails whole."""
    s3 = listing_client(s3, workers)
    folders = {folder: sorted(keys) for folder, keys in wanted.items() if keys}
    found = Found()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rest = probe_folders(pool, s3, folders, wanted, found)
        by_head = {f: left.keys for f, left in rest.items() if prefer_heads(len(left.keys), left.answered)}
        refused = head_folders(pool, s3, by_head, found)
        listed = {f: left for f, left in rest.items() if f not in by_head or f in refused}
        list_folders(pool, s3, listed, range_counts(listed, workers), found)
    return found


@dataclass(frozen=True)
class Rest:
    """What a folder's probe left: the wanted keys after its page, its last key, and how many it answered."""

    keys: list[str]
    covered: str
    answered: int
    wanted: set[str]  # all the folder's

    def pages(self) -> int:
        """Pages expected to list the rest, taking it to be as dense in wanted keys as the probe's page."""
        return math.ceil(len(self.keys) / max(self.answered, 1))


def probe_folders(
    pool: ThreadPoolExecutor, s3: Any, folders: dict[Folder, list[str]], wanted: dict[Folder, set[str]], found: Found
) -> dict[Folder, Rest]:
    """One probe page a folder (its keys sorted in ``folders``), all at once; what each leaves to find."""
    rest = {}
    tasks = [(f, partial(probe, s3, f[0], keys, wanted[f])) for f, keys in folders.items()]
    for folder, result in gather(pool, tasks):
        if isinstance(result, ClientError):
            found.failures[folder] = result
            continue
        found.add(folder[0], result.sizes)
        if result.last is not None:
            keys = folders[folder]
            answered = bisect_right(keys, result.last)
            rest[folder] = Rest(keys[answered:], result.last, answered, wanted[folder])
    return rest


def head_folders(pool: ThreadPoolExecutor, s3: Any, folders: dict[Folder, list[str]], found: Found) -> set[Folder]:
    """HEAD every key of ``folders``; the folders where a HEAD was refused, to be listed instead.

    A HEAD needs s3:GetObject, which the listing does not: whoever may list but not read still gets
    the listing's answer.
    """
    tasks = [(f, partial(head, s3, f[0], key)) for f, keys in folders.items() for key in keys]
    found.heads += len(tasks)
    refused = set()
    for folder, result in gather(pool, tasks):
        if isinstance(result, ClientError):
            refused.add(folder)
        else:
            found.add(folder[0], result)
    return refused


def range_counts(folders: dict[Folder, Rest], workers: int) -> dict[Folder, int]:
    """How many ranges each folder is cut in: the workers shared out in proportion to expected pages.

    A folder gets no more ranges than pages: each range can cost one page more than its keys need,
    so a folder of a few pages is not cut in 16.
    """
    total = sum(left.pages() for left in folders.values())
    return {
        f: max(1, min(MAX_RANGES, left.pages(), round(workers * left.pages() / total))) for f, left in folders.items()
    }


def list_folders(
    pool: ThreadPoolExecutor, s3: Any, folders: dict[Folder, Rest], parts: dict[Folder, int], found: Found
) -> None:
    """List the rest of each folder in ``parts[folder]`` key ranges, all folders' ranges at once."""
    tasks = []
    for folder, left in folders.items():
        tasks += [(folder, task) for task in range_tasks(s3, folder[0], left, parts[folder])]
    found.ranges += len(tasks)
    for folder, result in gather(pool, tasks):
        if isinstance(result, ClientError):
            found.failures.setdefault(folder, result)
        else:
            found.add(folder[0], result)


def list_sequentially(s3: Any, wanted: dict[Folder, set[str]]) -> Found:
    """The same answer, one listing of each folder after another: what ``find_sizes`` must equal."""
    found = Found()
    for folder, keys in wanted.items():
        try:
            listed = list_sizes(s3, folder[0], key_prefix(sorted(keys)), last=max(keys))
        except ClientError as error:
            found.failures[folder] = error
            continue
        found.add(folder[0], {key: size for key, size in listed.items() if key in keys})
    return found
