"""S3 checks before anything is spent: buckets, objects, writability, every sample and its index, headers.

Read-only, except for one small write probe of the places a run writes to.
"""

from __future__ import annotations

import contextlib
import gc
import os
import secrets
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from botocore.exceptions import ClientError

from .aws import aws_message, error_code
from .bed import Bed, read_bed
from .headers import (
    COMPRESSION_BYTES,
    REPAIR_HINT,
    compression_problem,
    index_file_problem,
    read_head,
)
from .inputs import InputError, Sample
from .s3listing import WORKERS, Folder, Found, find_sizes, key_prefix, list_sequentially, listing_client
from .storage import LocalPath, Location, Storage, parse_location


def check_bucket(s3: Any, bucket: str, option: str) -> list[str]:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error_code(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return [f"{option}: bucket {bucket} does not exist: create it or fix the name"]
        if code in ("403", "AccessDenied", "Forbidden"):
            return [f"{option}: access to bucket {bucket} is denied: check your credentials and its policy"]
        return [f"{option}: cannot reach bucket {bucket} ({aws_message(error)})"]
    return []


def check_object(s3: Any, uri: Location, option: str) -> list[str]:
    if isinstance(uri, LocalPath):
        return [] if os.path.isfile(uri.key) else [f"{option}: {uri} does not exist (or is not a file)"]
    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return [f"{option}: {uri} does not exist: upload it first (aws s3 cp FILE {shlex.quote(str(uri))})"]
        return [f"{option}: cannot read {uri} ({aws_message(error)})"]
    return []


def check_bed(storage: Storage, location: Location) -> Bed:
    """The BED at ``location`` (which exists), read whole and checked: its problems say why it cannot be used."""
    try:
        data = storage.read_bytes(location)
    except OSError as error:
        return Bed(str(location), (), problems=(f"--bed: cannot read {location} ({error.strerror})",))
    except ClientError as error:
        return Bed(str(location), (), problems=(f"--bed: cannot read {location} ({aws_message(error)})",))
    return read_bed(data, str(location))


# What marks a TileDB group, so a TileDB-VCF dataset (any version), at the top of its URI: tiledbvcf create
# writes both (on S3 ``__tiledb_group.tdb`` is an empty object and ``__group/`` a prefix).
GROUP_MARKERS = ("__tiledb_group.tdb", "__group")


def dataset_exists(s3: Any, dataset: Location, option: str = "--dataset-uri") -> bool:
    """Whether a dataset lives at ``dataset``: False when nothing does; InputError when other files do.

    A run must neither create a dataset in a folder of other files (the samples' folder, say) nor
    export from one: tiledbvcf would fail only when its jobs run.
    """
    if isinstance(dataset, LocalPath):
        if not os.path.lexists(dataset.key):
            return False
        found = sorted(os.listdir(dataset.key)) if os.path.isdir(dataset.key) else [os.path.basename(dataset.key)]
        if not found or any(name in GROUP_MARKERS for name in found):
            return bool(found)
        raise InputError(not_a_dataset(dataset, option, found[0]))
    prefix = dataset.as_prefix()
    response = s3.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key, Delimiter="/")
    names = [item["Key"] for item in response.get("Contents", [])]
    names += [item["Prefix"].rstrip("/") for item in response.get("CommonPrefixes", [])]
    names = sorted(name[len(prefix.key) :] for name in names)
    if not names or any(name in GROUP_MARKERS for name in names):
        return bool(names)
    raise InputError(not_a_dataset(dataset, option, names[0]))


def not_a_dataset(dataset: Location, option: str, example: str) -> str:
    return (
        f"{option} {dataset} holds files that are not a TileDB-VCF dataset (such as {example!r}; a dataset has "
        f"{GROUP_MARKERS[0]} at its top): give the URI of the dataset, or for a new one a path with nothing under it"
    )


CHUNK_SAMPLES = 30_000  # samples whose keys and listings are held at a time (see check_s3_samples)
ObjectKey = tuple[str, str]  # (bucket, key)
SampleKey = tuple[str, str, ObjectKey | None]  # bucket, key, and the named index (None: <key>.csi or .tbi beside it)


def sample_keys(samples: Sequence[Sample]) -> list[SampleKey]:
    """Each sample's bucket and key, and those of its named index (None where it has none).

    The URIs were checked when the samples file was read: splitting them is enough, and 100,000s
    of them are split in a fraction of the time that parsing them again takes. An index beside
    its sample is no tuple of its own: most samples have one, and 100,000s of tuples cost memory.
    """
    keys: list[SampleKey] = []
    buckets: dict[str, str] = {}  # one string a bucket, not one a sample
    for sample in samples:
        bucket, _, key = sample.uri.removeprefix("s3://").partition("/")
        bucket = buckets.setdefault(bucket, bucket)
        if sample.index_uri is None:
            keys.append((bucket, key, None))
        else:
            index_bucket, _, index_key = sample.index_uri.removeprefix("s3://").partition("/")
            keys.append((bucket, key, (buckets.setdefault(index_bucket, index_bucket), index_key)))
    return keys


MAX_PEEKS = 100  # samples without index whose first bytes are read, to tell why (bgzip first, or just index)


@dataclass
class Peeker:
    """Tells how to index a sample without index: index it, or first recompress it with bgzip (a few bytes read)."""

    s3: Any
    peeks: int = 0

    def how(self, sample: Sample) -> str:
        if self.peeks >= MAX_PEEKS:
            return "index it (bcftools index), after recompressing it with bgzip if it is not bgzip-compressed"
        self.peeks += 1
        try:
            problem = compression_problem(read_head(self.s3, parse_location(sample.uri, "sample"), COMPRESSION_BYTES))
        except (OSError, ValueError, ClientError):
            problem = None
        if problem is None:
            return "index it (bcftools index)"
        return (
            f"it {problem.split(' (')[0].split(':')[0]}, which bcftools cannot index: compress it with bgzip "
            "(bgzip FILE for an uncompressed VCF; zcat FILE | bgzip > NEW for plain gzip), "
            "then index it (bcftools index)"
        )


def check_samples(s3: Any, samples: Sequence[Sample]) -> tuple[list[str], dict[str, int]]:
    """Every sample exists with its index; return the problems and each sample's size."""
    on_s3 = [sample for sample in samples if sample.uri.startswith("s3://")]
    peeker = Peeker(s3)
    problems, sizes = check_s3_samples(s3, on_s3, peeker=peeker) if on_s3 else ([], {})
    for sample in samples:
        if sample.uri in sizes or sample.uri.startswith("s3://"):
            continue
        if not os.path.isfile(sample.uri):
            problems.append(f"sample {sample.uri} does not exist: fix the samples file")
            continue
        sizes[sample.uri] = os.path.getsize(sample.uri)
        if (index_file := index_file_problem(sample.uri)) is not None:
            problems.append(index_file)
            continue
        if sizes[sample.uri] == 0:
            problems.append(f"sample {sample.uri} is empty (0 bytes)")
        indexes = [sample.index_uri] if sample.index_uri else [sample.uri + ".csi", sample.uri + ".tbi"]
        present = [index for index in indexes if os.path.isfile(index)]
        if not present:
            how = peeker.how(sample) if sizes[sample.uri] else "index it (bcftools index)"
            problems.append(f"sample {sample.uri} has no index ({' or '.join(indexes)}): {how}{REPAIR_HINT}")
        elif not any(os.path.getsize(index) for index in present):
            problems.append(f"the index of sample {sample.uri} is empty (0 bytes): index it again (bcftools index)")
    return problems, sizes


def wanted_keys(samples: Sequence[Sample]) -> dict[Folder, set[str]]:
    """The keys of every sample and index candidate, by bucket and directory."""
    return keys_by_folder(sample_keys(samples))


def keys_by_folder(keys: list[SampleKey]) -> dict[Folder, set[str]]:
    wanted: dict[Folder, set[str]] = {}
    for bucket, key, index in keys:
        directory = (bucket, key.rpartition("/")[0])
        folder = wanted.get(directory)
        if folder is None:
            folder = wanted[directory] = set()
        if index is None:  # <sample>.csi and .tbi: the sample's directory, found without a search
            folder.update((key, key + ".csi", key + ".tbi"))
            continue
        folder.add(key)
        index_bucket, index_key = index
        wanted.setdefault((index_bucket, index_key.rpartition("/")[0]), set()).add(index_key)
    return wanted


def check_s3_samples(
    s3: Any,
    samples: Sequence[Sample],
    *,
    parallel: bool = True,
    chunk: int = CHUNK_SAMPLES,
    peeker: Peeker | None = None,
) -> tuple[list[str], dict[str, int]]:
    """Every sample exists with its index; return the problems and each sample's size.

    Samples that share a directory are checked with listings of it (about N/1000 calls), not one
    HEAD request per file, unless they are so few among its objects that HEAD requests cost less;
    see ``s3listing``. ``parallel=False`` lists each directory whole, one after another: the reference.

    A cohort of more than ``chunk`` samples is checked ``chunk`` samples at a time, in key order:
    the keys, listings and sizes of one chunk are held at a time, not the whole cohort's (at
    100,000 samples they were most of the client's memory), and each chunk lists a key range of
    its own, so the listing costs what one pass costs but for the pages where chunks meet (indexes
    named after a TAB, in a folder whose names do not sort like their samples', are listed again
    by each chunk: that costs pages, never an answer). Its samples' problems then come in key order.
    """
    with collection_paused():
        if len(samples) > chunk:
            samples = sorted(samples, key=attrgetter("uri"))
        problems: list[str] = []
        sizes: dict[str, int] = {}
        unlisted: dict[Folder, Unlisted] = {}
        peeker = peeker or Peeker(s3)
        s3 = listing_client(s3, WORKERS) if parallel else s3  # one for all the chunks: a client takes a while to make
        for start in range(0, len(samples), chunk):
            check_chunk(s3, samples[start : start + chunk], parallel, problems, sizes, unlisted, peeker)
        return unlisted_problems(unlisted) + problems, sizes


def check_chunk(
    s3: Any,
    samples: Sequence[Sample],
    parallel: bool,
    problems: list[str],
    sizes: dict[str, int],
    unlisted: dict[Folder, Unlisted],
    peeker: Peeker | None = None,
) -> None:
    """One chunk of check_s3_samples; a function of its own, so that its keys and listings go when it returns."""
    keys = sample_keys(samples)
    wanted = keys_by_folder(keys)
    found = find_sizes(s3, wanted) if parallel else list_sequentially(s3, wanted)
    mark_unlisted(wanted, found, unlisted)
    judge_samples(samples, keys, found, problems, sizes, peeker)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused, for a check that makes 100,000s of small objects.

    Keys, tuples and dicts, none of them in a cycle: reference counting frees them all the same,
    while every collection their allocation triggers would walk through all of them again (a
    third of the check's time at 100,000 samples).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class Unlisted:
    """A directory that could not be listed: why, the common start of its wanted keys, and how many."""

    error: ClientError
    prefix: str
    keys: int


def mark_unlisted(wanted: dict[Folder, set[str]], found: Found, unlisted: dict[Folder, Unlisted]) -> None:
    """Note each directory that could not be listed; its keys are marked -1 in ``found``: unknown."""
    for folder, keys in wanted.items():
        error = found.failures.get(folder)
        if error is None:
            continue
        prefix = key_prefix(sorted(keys))
        seen = unlisted.get(folder)
        if seen is None:
            unlisted[folder] = Unlisted(error, prefix, len(keys))
        else:  # the same directory in another chunk
            seen.prefix, seen.keys = key_prefix(sorted([seen.prefix, prefix])), seen.keys + len(keys)
        found.add(folder[0], dict.fromkeys(keys, -1))


def unlisted_problems(unlisted: dict[Folder, Unlisted]) -> list[str]:
    """One problem a directory that could not be listed, whichever chunks met it."""
    return [
        f"cannot list s3://{bucket}/{seen.prefix} to check {seen.keys} sample and index files "
        f"({aws_message(seen.error)}): the scripts need s3:ListBucket there"
        for (bucket, _), seen in unlisted.items()
    ]


def judge_samples(
    samples: Sequence[Sample],
    keys: list[SampleKey],
    found: Found,
    problems: list[str],
    sizes: dict[str, int],
    peeker: Peeker | None = None,
) -> None:
    """Add each sample's problems to ``problems`` and its size to ``sizes``, from the sizes of the keys ``found``."""
    in_bucket = found.sizes
    nothing: dict[str, int] = {}
    for sample, (bucket, key, index) in zip(samples, keys, strict=True):
        listed = in_bucket.get(bucket, nothing)
        size = listed.get(key)
        if size is not None:
            sizes[sample.uri] = size
        # Any index of a size other than 0 (-1: unknown) will do; None: missing.
        indexed = listed.get(key + ".csi") or listed.get(key + ".tbi") if index is None else index_size(found, index)
        if size is None or size <= 0 or not indexed:  # rarely: the checks that follow are not in the loop
            problems += sample_problems(sample, key, size, index_sizes(found, bucket, key, index), peeker)


def index_size(found: Found, index: ObjectKey) -> int | None:
    return found.sizes.get(index[0], {}).get(index[1])


def index_sizes(found: Found, bucket: str, key: str, index: ObjectKey | None) -> list[int]:
    """The sizes of the sample's index candidates that exist."""
    candidates = [(bucket, key + ".csi"), (bucket, key + ".tbi")] if index is None else [index]
    return [size for candidate in candidates if (size := index_size(found, candidate)) is not None]


def sample_problems(
    sample: Sample, key: str, size: int | None, indexes: list[int], peeker: Peeker | None = None
) -> list[str]:
    """What is wrong with a sample of ``size`` bytes (None: missing; -1: unknown) with ``indexes`` of those sizes."""
    if size is None:
        return [f"sample {sample.uri} does not exist: fix the samples file or upload it"]
    if size == -1:
        return []  # its directory could not be listed, reported above
    if (index_file := index_file_problem(sample.uri)) is not None:
        return [index_file]
    problems = [f"sample {sample.uri} is empty (0 bytes): upload it again"] if size == 0 else []
    if indexes and not any(indexes):
        problems.append(f"the index of sample {sample.uri} is empty (0 bytes): index it again (bcftools index)")
    if not indexes:
        if sample.index_uri is not None:
            problems.append(f"index {sample.index_uri} of sample {sample.uri} does not exist")
        else:
            how = peeker.how(sample) if peeker and size else "index it (bcftools index)"
            problems.append(
                f"sample {sample.uri} has no index beside it ({key.rpartition('/')[2]}.csi or .tbi): "
                f"{how} or name the index after a TAB{REPAIR_HINT}"
            )
    return problems


def check_writable(s3: Any, location: Location, option: str, encryption: dict[str, str]) -> list[str]:
    """The bucket exists and a small object can be written and deleted there: the only sure test."""
    if isinstance(location, LocalPath):
        return check_local_writable(location, option)
    missing = check_bucket(s3, location.bucket, option)
    if missing:
        return missing
    probe = location.as_prefix().child(f"tiledbvcf-batch/.write-check-{secrets.token_hex(4)}")
    try:
        s3.put_object(Bucket=probe.bucket, Key=probe.key, Body=b"", **encryption)
    except ClientError as error:
        return [f"{option}: cannot write to {location.as_prefix()} ({aws_message(error)})"]
    try:
        s3.delete_object(Bucket=probe.bucket, Key=probe.key)
    except ClientError as error:
        return [f"{option}: can write to {location.as_prefix()} but not delete {probe} ({aws_message(error)})"]
    return []


def check_local_writable(location: LocalPath, option: str) -> list[str]:
    """The directory exists (or can be made) and a file can be written and deleted there.

    Every directory made for the probe is removed again: a refused run leaves nothing behind, and an
    export's destination holds the deliverables only (the runs' folder is made when needed).
    """
    folder = os.path.join(location.key, "tiledbvcf-batch")
    made = missing_directories(folder)
    probe = os.path.join(folder, f".write-check-{secrets.token_hex(4)}")
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as error:
        return [f"{option}: cannot write to {location} ({error.strerror})"]
    finally:
        for directory in made:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
    return []


def missing_directories(path: str) -> list[str]:
    """``path`` and those of its parents that do not exist yet, deepest first."""
    missing: list[str] = []
    while path and not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        path = "" if parent == path else parent
    return missing
