"""User input, parsed and checked before any AWS call: URIs, sample lists, names, ranges.

Every problem found is collected, so that the user sees them all at once. The options that use
these parsers are declared in ``options``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .storage import BUCKET_RE, CONTROL_CHARS, LocalPath, Location, S3Uri, parse_location, parse_s3_uri

DEFAULT_SCRATCH_SIZE = 1000 * 1024  # MB: the 1 TB scratch volume of the documented set-up
MAX_RETRIES = 10  # --retries is a number of attempts, and Batch allows 1 to 10
_ATTRIBUTE_RE = re.compile(r"^(fmt|info)_[A-Za-z0-9_.]+$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
# S3 keys are at most 1,024 bytes; TileDB's fragment paths under a dataset take up to about 200.
MAX_DATASET_KEY = 1024 - 224
BOM = "\ufeff"

T = TypeVar("T")


class InputError(Exception):
    """Bad input: one line per problem, exit status 2, nothing uploaded or submitted."""

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class Resources:
    vcpus: int
    memory: int  # MiB


@dataclass(frozen=True, slots=True)
class Sample:
    """One line of an ingestion samples file: a VCF/BCF URI and, optionally, its index."""

    uri: str
    index_uri: str | None = None

    def manifest_line(self) -> str:
        return self.uri if self.index_uri is None else f"{self.uri}\t{self.index_uri}"


class Problems:
    """Collects the problems of many checks, so that all are listed at once."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, parse: Callable[..., T], *args: Any) -> T | None:
        try:
            return parse(*args)
        except InputError as error:
            self.found.extend(error.problems)
            return None

    def raise_any(self) -> None:
        if self.found:
            raise InputError(self.found)


def check_range(value: int | None, option: str, low: int, high: int | None = None) -> int | None:
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InputError(f"{option} is {value}: it must be {bound}")
    return value


def check_price(value: float | None) -> float | None:
    """--instance-price: a price in USD an hour, 0 or more (click takes "-1", "nan" and "inf" as floats)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise InputError(f"--instance-price is {value}: it must be an hourly price in USD, 0 or more (e.g. 0.768)")
    return value


def parse_uri(text: str, option: str, need_key: bool = True, *, local: bool = False) -> Location:
    """An ``s3://`` URI; with ``local`` (the local executor) a local path too."""
    try:
        if local:
            return single_slashes(parse_location(text.strip(), option, need_key=need_key), option)
        return single_slashes(parse_s3_uri(text.strip(), option, need_key=need_key), option)
    except ValueError as error:
        raise InputError(str(error)) from None


def single_slashes(uri: Location, what: str) -> Location:
    """An S3 key without an empty path segment (``//``, or a leading ``/``); trailing slashes are a prefix's."""
    key = uri.key.rstrip("/")
    if isinstance(uri, S3Uri) and ("//" in key or key.startswith("/")):
        raise ValueError(
            f"{what} {str(uri)!r} has an empty path segment (//): S3 keeps it in the key, while TileDB and "
            "tiledbvcf's jobs do not reach such a key as written; write it with single slashes (copy any object "
            "stored under such a key to one without //)"
        )
    return uri


def parse_object(text: str, option: str, local: bool = False) -> Location:
    """An object (a file, locally): its key may not be empty."""
    return parse_uri(text, option, local=local)


def parse_prefix(text: str, option: str, local: bool = False) -> Location:
    """A "directory": a bucket alone will do."""
    return parse_uri(text, option, need_key=False, local=local).as_prefix()


def parse_dataset_uri(text: str, option: str = "--dataset-uri", local: bool = False) -> Location:
    """The dataset's one spelling: a local path resolved (symlinks, ``..``), an S3 key without trailing slashes.

    Its ``str`` is what the job commands, the run record and the dataset's index (a hash) see.
    """
    uri = parse_uri(text, option, local=local)  # no empty path segment: the same dataset would have two names
    if isinstance(uri, LocalPath):
        return LocalPath(os.path.realpath(uri.key) or "/")
    key = uri.key.rstrip("/")
    if len(key.encode("utf-8")) > MAX_DATASET_KEY:
        raise InputError(
            f"{option} has a key of {len(key.encode('utf-8'))} bytes: S3 keys are at most 1,024 bytes and TileDB "
            f"adds up to {1024 - MAX_DATASET_KEY} under the dataset; choose a shorter path"
        )
    return S3Uri(uri.bucket, key)


def parse_metadata_location(text: str, option: str = "--metadata-s3", local: bool = False) -> Location:
    """``--metadata-s3`` takes a bucket name (as documented) or an ``s3://bucket/prefix``; locally, a path too."""
    text = text.strip()
    if text.startswith("s3://") or local:
        return parse_prefix(text, option, local)
    if not BUCKET_RE.match(text) or "/" in text:
        raise InputError(f"{option} {text!r} is not a bucket name: give a bucket name or s3://bucket/prefix")
    return S3Uri(text, "")


def parse_report_file(path: str, option: str, local: bool = False) -> str:
    """A file on this machine the report can be written to: its directory exists (checked before anything is
    spent, not after hours of waiting)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        where = f"{path} is a directory" if os.path.isdir(path) else f"there is no directory {folder}"
        raise InputError(f"{option} {path}: {where}; name a file in an existing directory")
    return path


def check_scratch_path(path: str | None) -> str | None:
    """--scratch-path: an absolute path inside the container (None: the executor's default)."""
    if path is not None and not os.path.isabs(path.strip() or "-"):
        raise InputError(f"--scratch-path {path!r} is not an absolute path: give one, e.g. /data")
    return path


def parse_samples(lines: Iterable[str], source: str, base: str | None = None) -> list[Sample]:
    """Parse sample lines (``<vcf-uri>`` or ``<vcf-uri><TAB><index-uri>``); report every problem.

    With ``base`` (the local executor), a line may also be a path, relative to ``base``.
    """
    samples: list[Sample] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n").strip(" ")
        if not line.strip() or line.startswith("#"):
            continue
        parts = [part.strip(" ") for part in line.split("\t")]
        if len(parts) > 2:
            problems.append(
                f"{source} line {number}: expected '<vcf-uri>' or '<vcf-uri><TAB><index-uri>', "
                f"found {len(parts)} tab-separated fields"
            )
            continue
        try:
            parts = [sample_location(part, f"{source} line {number}: {what}", base) for part, what in
                     zip(parts, ("sample", "index")[: len(parts)], strict=True)]  # fmt: skip
        except ValueError as error:
            problems.append(str(error))
            continue
        sample = Sample(parts[0], parts[1] if len(parts) == 2 else None)
        if sample.uri in first_seen:
            problems.append(
                f"{source} line {number} repeats line {first_seen[sample.uri]} ({sample.uri}): "
                "remove the duplicate, a sample ingested twice doubles its records"
            )
            continue
        first_seen[sample.uri] = number
        samples.append(sample)
    if not samples and not problems:
        problems.append(f"{source} lists no samples: give one s3:// sample URI per line")
    if problems:
        raise InputError(problems)
    return samples


def sample_location(text: str, what: str, base: str | None) -> str:
    if base is None or text.startswith("s3://"):
        single_slashes(parse_s3_uri(text, what), what)
        return text
    return str(parse_location(os.path.join(base, os.path.expanduser(text)), what))


def read_samples_file(path: str, *, local: bool = False) -> list[Sample]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        refuse_bom(text, "--samples", path)
        return parse_samples(text.splitlines(), path, os.path.dirname(os.path.abspath(path)) if local else None)
    except OSError as error:
        raise InputError(f"--samples: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"--samples: {path} is not a UTF-8 text file of sample URIs") from None


def refuse_bom(text: str, option: str, source: str) -> None:
    if text.startswith(BOM):
        raise InputError(
            f"{option}: {source} starts with a byte-order mark (BOM), which tiledbvcf takes as part of the first "
            "line: save it as UTF-8 without BOM"
        )


def decode_names(data: bytes, source: str) -> str:
    """An export names file's text, as tiledbvcf will read it: UTF-8, no byte-order mark."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--samples: {source} is not a UTF-8 text file of sample names") from None
    refuse_bom(text, "--samples", source)
    return text


def is_region_spelling(text: str) -> bool:
    """Spelled like a region (us-east-1); aws.is_region_name also takes those botocore's partitions list."""
    return bool(_REGION_RE.match(text))


def parse_sample_names(text: str, source: str) -> list[str]:
    """Parse an export sample-names file (one name per line); report every problem."""
    names: list[str] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.strip()
        if not name:
            continue
        if CONTROL_CHARS.search(name):
            problems.append(f"{source} line {number}: sample name {name!r} contains a control character")
        elif name in first_seen:
            problems.append(f"{source} line {number} repeats sample {name!r} of line {first_seen[name]}")
        else:
            first_seen[name] = number
            names.append(name)
    if not names and not problems:
        problems.append(f"{source} lists no sample names: give one name per line")
    if problems:
        raise InputError(problems)
    return names


def parse_attributes(text: str | None) -> tuple[str, ...]:
    """``fmt_X``/``info_X`` names for ``tiledbvcf create -a`` (case sensitive, no duplicates)."""
    if text is None:
        return ()
    names = [name.strip() for name in text.split(",") if name.strip()]
    problems = [
        f"--attributes: {name!r} is not of the form fmt_<FIELD> or info_<FIELD> (e.g. fmt_DP, info_AF)"
        for name in names
        if not _ATTRIBUTE_RE.match(name)
    ]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"--attributes names {', '.join(duplicates)} more than once")
    if not names and not problems:
        problems.append("--attributes is empty: give field names such as fmt_DP,info_AF or leave it out")
    if problems:
        raise InputError(problems)
    return tuple(names)


def parse_tiledb_config(text: str | None) -> str | None:
    """Check ``k=v,k=v`` (the form every tiledbvcf subcommand takes) and return it unchanged."""
    if text is None:
        return None
    if CONTROL_CHARS.search(text):
        raise InputError("--tiledb-config contains a control character")
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--tiledb-config: {item!r} is not key=value: write it as key1=val1,key2=val2")
    return text
