"""The samples of a delivery: ``--samples`` naming an S3 prefix or (locally) a directory instead of a samples file.

Every file under it is found (recursively), ``--include``/``--exclude`` applied, each VCF/BCF file
paired with its index, and what is left out is said with its reason, before anything is spent.
``discover`` returns the samples and the files left out (a ``Discovered``): a repair stage takes the
samples found without an index (``Discovered.unindexed``) from there.

A file that needs a repair (no index, plain gzip, an uncompressed ``.vcf``) is kept as a sample
without index: the checks that follow (preflight, headers) refuse it with their hint, as they
refuse such a line of a samples file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import ClientError

from .aws import error_code
from .inputs import InputError, Sample, parse_prefix
from .prefixlisting import list_prefix
from .storage import LocalPath, Location, S3Uri

# Longest first: .vcf.gz before .vcf. ".vcf" and plain-gzip ".vcf.gz" files are kept to be refused (or repaired).
DATA_SUFFIXES = (".vcf.gz", ".vcf.bgz", ".bcf", ".vcf")
INDEX_SUFFIXES = (".csi", ".tbi")
SHOWN_PER_REASON = 10  # left-out files shown on stderr for each reason; --json lists them all

NOT_INCLUDED = "not matched by --include"
EXCLUDED = "excluded by --exclude {glob}"
NOT_A_SAMPLE = "a file type not ingestible: samples are .vcf.gz, .vcf.bgz, .bcf or .vcf files"
ORPHAN_INDEX = "an index without its data file"
INDEX_OF_LEFT_OUT = "the index of a file left out ({data})"
SECOND_INDEX = "another index of {data} ({used} is used)"
EMPTY_SEGMENT = "an empty path segment (//) in its key, which the jobs do not reach as written"
SAME_SAMPLE = "two files of one sample ({stem}): also {other}; keep one with --exclude"


@dataclass(frozen=True)
class LeftOut:
    uri: str
    reason: str

    def document(self) -> dict[str, str]:
        return {"uri": self.uri, "reason": self.reason}


@dataclass(frozen=True)
class Discovered:
    """What ``--samples PREFIX`` found: the samples (key order), the files left out, and what listing took."""

    source: Location
    samples: tuple[Sample, ...]
    left_out: tuple[LeftOut, ...]
    unindexed: tuple[str, ...]  # samples found without an index: refused today, a repair stage's work
    files: int  # files listed
    calls: int = 0  # ListObjectsV2 calls (0: a local directory)

    def document(self) -> dict[str, Any]:
        """The --json document's "discovery"."""
        return {
            "source": str(self.source),
            "files": self.files,
            "list_calls": self.calls,
            "samples": [sample.manifest_line() for sample in self.samples],  # "<uri>", or "<uri><TAB><index>"
            "without_index": list(self.unindexed),
            "left_out": [left.document() for left in self.left_out],
        }

    def lines(self) -> list[str]:
        """What stderr says: the count, then the files left out, SHOWN_PER_REASON of each reason."""
        calls = f", {self.calls} list calls" if self.calls else ""
        lines = [
            f"Found {len(self.samples)} samples under {self.source} ({self.files} files{calls}); "
            f"{len(self.left_out)} files left out" + (":" if self.left_out else "")
        ]
        by_reason: dict[str, list[LeftOut]] = defaultdict(list)
        for left in self.left_out:
            by_reason[left.reason.split(" (")[0].split(":")[0]].append(left)
        for group in by_reason.values():
            lines += [f"  left out {left.uri}: {left.reason}" for left in group[:SHOWN_PER_REASON]]
            if len(group) > SHOWN_PER_REASON:
                lines.append(f"  ... and {len(group) - SHOWN_PER_REASON} more ({group[0].reason}); --json lists all")
        return lines


def samples_source(text: str, local: bool) -> Location | None:
    """The prefix or directory ``--samples`` names; None for a samples file.

    Any ``s3://`` URI is a prefix (a samples file is a local file), taken as a folder: ``/`` is
    added to its key. A local path that is a directory is one, with the local executor only.
    """
    if text.startswith("s3://"):
        return parse_prefix(text, "--samples")  # an empty path segment (//) refused, as anywhere
    path = os.path.expanduser(text)
    if not os.path.isdir(path):
        return None
    if not local:
        raise InputError(
            f"--samples {text} is a directory: only jobs run on this machine (--executor local) read its files; "
            "give an S3 prefix (s3://bucket/prefix/) or a samples file"
        )
    return LocalPath(os.path.abspath(path).rstrip("/") + "/")


def filters_without_prefix(include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """--include/--exclude with a samples file: refused, they choose among the files of a prefix."""
    if not include and not exclude:
        return []
    return [
        "--include and --exclude choose among the files under a prefix or directory given as --samples; a samples "
        "file lists its samples itself: edit it, or give the prefix"
    ]


def discover(source: Location, s3: Any, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> Discovered:
    """Every file under ``source``, the samples among them paired with their indexes, and what is left out."""
    calls = 0
    if isinstance(source, LocalPath):
        files = walk(source.key)
    else:
        files, calls = list_s3(s3, source)
    samples, left_out, unindexed = classify(files, str(source), include, exclude)
    return Discovered(source, tuple(samples), tuple(left_out), tuple(unindexed), len(files), calls)


def walk(directory: str) -> dict[str, int]:
    """Files under ``directory`` (symbolic links to files too) by path relative to it, with their sizes."""
    files = {}
    for root, _dirs, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            try:
                if os.path.isfile(path):
                    files[os.path.relpath(path, directory).replace(os.sep, "/")] = os.path.getsize(path)
            except FileNotFoundError:  # removed while walked
                continue
    return files


def list_s3(s3: Any, prefix: S3Uri) -> tuple[dict[str, int], int]:
    """Keys under ``prefix`` by their path relative to it (folder markers left out), and the calls made."""
    try:
        listing = list_prefix(s3, prefix.bucket, prefix.key)
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            raise InputError(f"--samples {prefix}: bucket {prefix.bucket} does not exist") from None
        raise
    at = len(prefix.key)
    return {key[at:]: size for key, size in listing.sizes.items() if not key.endswith("/")}, listing.calls


def nothing_found(found: Discovered, s3: Any) -> str:
    """Why no sample was found, and what to do."""
    source = found.source
    if isinstance(source, S3Uri) and not found.files and source.key and is_object(s3, source):
        return (
            f"--samples {str(source).rstrip('/')} is a file on S3, not a prefix: a samples file is read from this "
            "machine (download it), and an S3 URI names the prefix whose files are the samples"
        )
    if not found.files:
        return f"--samples {source} holds no file: give the prefix or directory where the VCF/BCF files are"
    return (
        f"--samples {source}: none of its {found.files} files is a VCF/BCF sample to ingest (each is said on stderr "
        "with its reason, unless --quiet): check --include/--exclude, or give the prefix or directory of the samples"
    )


def is_object(s3: Any, prefix: S3Uri) -> bool:
    try:
        s3.head_object(Bucket=prefix.bucket, Key=prefix.key.rstrip("/"))
    except ClientError:
        return False
    return True


def suffix_of(name: str, suffixes: tuple[str, ...]) -> str | None:
    """The suffix of ``suffixes`` (in any case) that ``name`` ends with, the first that does; None if none."""
    lowered = name.lower()
    if not lowered.endswith(suffixes):  # one test in C for the many that end with none
        return None
    return next((suffix for suffix in suffixes if lowered.endswith(suffix) and len(name) > len(suffix)), None)


def chosen(path: str, include: Sequence[str], exclude: Sequence[str]) -> str | None:
    """Why ``path`` is left out by the filters, or None if it is kept (``*`` matches ``/`` too)."""
    if include and not any(fnmatchcase(path, glob) for glob in include):
        return NOT_INCLUDED
    glob = next((glob for glob in exclude if fnmatchcase(path, glob)), None)
    return EXCLUDED.format(glob=glob) if glob is not None else None


def classify(
    files: Mapping[str, int], base: str, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Sample], list[LeftOut], list[str]]:
    """The samples among ``files`` (relative paths under ``base``), the files left out, the samples without index.

    --include and --exclude choose among the files but indexes: an index goes with its data file
    (tiledbvcf finds one beside its file whatever the filters say). Two data files of one name (its
    stem: the name without .vcf.gz, .bcf...), in one folder or two, are both left out: which one is
    the sample is the user's choice, and tiledbvcf would refuse the second of one sample name.
    """
    reasons: dict[str, str] = {}
    data: list[str] = []
    indexes: list[str] = []
    stems: dict[str, str] = {}  # every data file's path without its suffix (a/S1.vcf.gz: a/S1), computed once
    for path in sorted(files):
        index = path.lower().endswith(INDEX_SUFFIXES)
        suffix = None if index else suffix_of(path, DATA_SUFFIXES)
        if suffix is not None:
            stems[path] = path[: -len(suffix)]
        why = None if index else chosen(path, include, exclude) or (NOT_A_SAMPLE if suffix is None else None)
        if "//" in path or path.startswith("/"):
            why = EMPTY_SEGMENT
        if why is not None:
            reasons[path] = why
        else:
            (indexes if index else data).append(path)
    data = same_sample(data, stems, reasons)
    pairs = pair_indexes(data, indexes, files, stems, reasons)
    samples = [Sample(base + path, base + pairs[path] if pairs.get(path) else None) for path in data]
    unindexed = [base + path for path in data if path not in pairs]
    return samples, [LeftOut(base + path, reasons[path]) for path in sorted(reasons)], unindexed


def same_sample(data: list[str], stems: dict[str, str], reasons: dict[str, str]) -> list[str]:
    """The data files whose name no other has; the others get their reason."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in data:
        by_name[stems[path].rpartition("/")[2]].append(path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            for path in paths:
                reasons[path] = SAME_SAMPLE.format(stem=name, other=", ".join(p for p in paths if p != path))
    return [path for path in data if path not in reasons]


def pair_indexes(
    data: list[str], indexes: list[str], files: Mapping[str, int], stems: dict[str, str], reasons: dict[str, str]
) -> dict[str, str]:
    """Each data file's index: "" where one lies beside it (``<file>.csi``/``.tbi``, which tiledbvcf finds), else a
    ``<stem>.csi``/``.tbi`` to name after a TAB; the indexes of no sample get their reason."""
    kept = set(data)
    by_stem = {stem: path for path, stem in stems.items()}
    pairs: dict[str, str] = {path[:-4]: "" for path in indexes if path[:-4] in kept}
    for index in indexes:
        if index[:-4] in pairs:  # beside its sample: the common case, settled above
            continue
        owner = index[:-4] if index[:-4] in files else by_stem.get(index[:-4])
        if owner is None:
            reasons[index] = ORPHAN_INDEX
        elif owner not in kept:
            reasons[index] = INDEX_OF_LEFT_OUT.format(data=owner)
        elif owner not in pairs:
            pairs[owner] = index
        else:
            used = pairs[owner] or "the index beside it"
            reasons[index] = SECOND_INDEX.format(data=owner, used=used)
    return pairs


def samples_of(
    given: list[Sample] | Location,
    s3: Any,
    include: Sequence[str],
    exclude: Sequence[str],
    say: Callable[[str], None],
) -> tuple[list[Sample], Discovered | None]:
    """The samples of a samples file as they are; those found under a prefix or directory, said on stderr first."""
    if isinstance(given, list):
        return given, None
    found = discover(given, s3, include, exclude)
    for line in found.lines():
        say(line)
    if not found.samples:
        raise InputError(nothing_found(found, s3))
    return list(found.samples), found
