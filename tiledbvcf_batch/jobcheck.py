"""A store job's own check, the last line of defence against a sample stored twice.

tiledbvcf 0.40 ``store`` does not refuse a sample that is already in the dataset: it stores its
records again. The client refuses such samples before it submits; the job checks again, at the
moment it runs (see ``image/entrypoint.py``, which runs it, on Batch and locally):

1. each sample's name is read from its header (one ranged read each, in threads); a name that can
   never be exported as a file (``headers.file_name_problem``: where the client read no header, an
   S3 ingestion without --check-headers into an empty dataset, this is the first check of it) fails
   the job, every such sample named, before anything is stored;
2. the dataset's samples are listed (``tiledbvcf list``, run by the entrypoint);
3. a sample already in the dataset is allowed only if an earlier attempt of this very job wrote
   it: the job's *started marker* exists and names it (``store --resume`` then finishes it);
4. the started marker is written (again) before ``store`` runs, and kept afterwards.

The started marker of a job whose manifest is ``<dir>/<name>`` is ``<dir>/started/<name>.json``,
so a resumed job (same manifest name) finds the marker of the attempts before it. Locally, the
job also holds an exclusive lock on ``<marker>.lock`` while it runs, inherited by its tiledbvcf:
two store processes of one manifest at once would double its records.

No botocore here (``s3`` is a boto3 client, made by the caller only when a location needs it).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .headers import file_name_problem, read_header_sample_names
from .storage import LocalPath, parse_location, parse_s3_uri

STARTED = "started"
S3_WORKERS = 16  # threads reading headers on S3 (one ranged GET each)
LOCAL_WORKERS = 4  # threads reading local headers, past LOCAL_ALONE of them (a network file system's latency)
LOCAL_ALONE = 256  # local headers read without threads
S3Getter = Callable[[], Any]  # the boto3 S3 client, made on first use


class JobRefused(Exception):
    """The job must not run store: one line saying why (exit status 1)."""


def started_marker(manifest_uri: str) -> str:
    """Where a store job notes that it started: beside its manifest, in ``started/``.

    ``s3://b/meta/tiledbvcf-batch/runs/RUN/ingest-b001-j0001.txt`` ->
    ``s3://b/meta/tiledbvcf-batch/runs/RUN/started/ingest-b001-j0001.txt.json`` (local paths alike).
    """
    directory, slash, name = manifest_uri.rpartition("/")
    return f"{directory}{slash}{STARTED}/{name}.json"


def lock_file(marker: str) -> str:
    """The file a local job locks while its store runs."""
    return marker + ".lock"


def manifest_uris(lines: Sequence[str]) -> list[str]:
    """The sample URIs of a manifest's lines (``<vcf uri>`` or ``<vcf uri><TAB><index uri>``)."""
    return [line.split("\t", 1)[0].strip() for line in lines if line.strip()]


def marker_body(task: str, names: Mapping[str, str], *, at: datetime.datetime | None = None) -> str:
    """The started marker: which names this job is about to store, and which attempt says so."""
    moment = at or datetime.datetime.now(datetime.timezone.utc)
    return json.dumps(
        {
            "task": task,
            "names": dict(names),
            "attempt": os.environ.get("AWS_BATCH_JOB_ATTEMPT") or "local",
            "job": os.environ.get("AWS_BATCH_JOB_ID"),
            "at": moment.isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "host": os.uname().nodename,
        },
        indent=1,
    )


def marker_names(body: str) -> set[str]:
    """The sample names an earlier attempt's marker lists; ValueError if it is not a marker."""
    try:
        names = json.loads(body)["names"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"is not a started marker ({error})") from None
    if not isinstance(names, dict):
        raise ValueError("is not a started marker (its names are not a mapping)")
    return {str(name) for name in names.values()}


def twice(names: Mapping[str, str], listed: set[str], earlier: set[str]) -> list[tuple[str, str]]:
    """(name, uri) of each sample the dataset holds that no earlier attempt of this job stored."""
    return [(name, uri) for uri, name in names.items() if name in listed and name not in earlier]


def refusal(found: list[tuple[str, str]], total: int, dataset: str) -> str:
    shown = ", ".join(f"{name} ({uri})" for name, uri in found)
    return (
        f"store refused: {len(found)} of this job's {total} samples already in dataset {dataset}, "
        f"not stored by an earlier attempt of this job: {shown}. Nothing was stored, so nothing is stored "
        "twice; to replace them with these files, ingest them with batch-ingest.py ... --replace"
    )


# -- I/O -----------------------------------------------------------------------------------


def read_text(uri: str, s3: S3Getter) -> str:
    if uri.startswith("s3://"):
        location = parse_s3_uri(uri, "file")
        return s3().get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode("utf-8")
    return Path(uri).read_text(encoding="utf-8")


def write_text(uri: str, body: str, s3: S3Getter) -> None:
    if uri.startswith("s3://"):
        location = parse_s3_uri(uri, "file")
        s3().put_object(Bucket=location.bucket, Key=location.key, Body=body.encode("utf-8"))
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # whole files only: read by later attempts
    partial.write_text(body, encoding="utf-8")
    os.replace(partial, path)


def missing(error: Exception) -> bool:
    """A started marker that does not exist (botocore's ClientError, told apart without importing it).

    Without s3:ListBucket (the template's job role has none on the metadata bucket) S3 answers 403 for a
    key that does not exist. The role may read the markers (s3:GetObject on runs/*), so a marker that
    exists is read; taking a 403 for "none" can only refuse a job, never store a sample twice.
    """
    if isinstance(error, FileNotFoundError):
        return True
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound", "AccessDenied", "403")


def reason(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error"):
        return f"{response['Error'].get('Code', '')}: {response['Error'].get('Message', '')}".strip(": ")
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def earlier_names(marker: str, s3: S3Getter) -> set[str]:
    """The names the started marker of an earlier attempt lists (none if there was no earlier attempt)."""
    try:
        return marker_names(read_text(marker, s3))
    except Exception as error:  # a marker that cannot be read must stop the job, with its reason
        if missing(error):
            return set()
        raise JobRefused(f"the started marker {marker} cannot be read ({reason(error)}); store did not run") from None


def sample_name(uri: str, s3: S3Getter) -> str:
    """The one sample name in a sample file's header; JobRefused if it cannot be told."""
    try:
        location = parse_location(uri, "sample")
        names = read_header_sample_names(None if isinstance(location, LocalPath) else s3(), location)
    except ValueError as error:
        raise JobRefused(f"sample {uri} {error}; store did not run") from None
    except Exception as error:  # OSError, botocore's errors: the job cannot vouch for this sample
        raise JobRefused(f"sample {uri}: cannot read its header ({reason(error)}); store did not run") from None
    if len(names) != 1:
        raise JobRefused(f"sample {uri} has {len(names)} samples in its header, not one; store did not run")
    return names[0]


def sample_names(uris: Sequence[str], s3: S3Getter) -> dict[str, str]:
    """Each sample's name, by URI: in threads on S3 (a ranged GET each), one after another on a local disk
    (faster there, up to a few hundred: 50 headers take 3 ms, against 10 with a pool of threads to start).
    """
    on_s3 = any(uri.startswith("s3://") for uri in uris)
    if len(uris) < 3 or (not on_s3 and len(uris) <= LOCAL_ALONE):
        return {uri: sample_name(uri, s3) for uri in uris}
    from concurrent.futures import ThreadPoolExecutor  # imported here: most jobs start without it

    if on_s3:
        s3()  # one client made before the threads share it
    with ThreadPoolExecutor(max_workers=min(S3_WORKERS if on_s3 else LOCAL_WORKERS, len(uris))) as pool:
        return dict(zip(uris, pool.map(lambda uri: sample_name(uri, s3), uris), strict=True))


def check_store(
    uris: Sequence[str], marker: str, task: str, dataset: str, listed: Callable[[], set[str]], s3: S3Getter
) -> tuple[dict[str, str], set[str]]:
    """The check itself: refuse (JobRefused) or write the started marker; each sample's name, and those
    in the dataset already that an earlier attempt of this job stored (store --resume finishes them).

    ``listed`` gives the dataset's sample names (it may have been started before, to run meanwhile).
    """
    names = sample_names(uris, s3)
    unexportable = [f"{uri} is named {name!r}, which {problem}" for uri, name in names.items()
                    if (problem := file_name_problem(name)) is not None]  # fmt: skip
    if unexportable:
        raise JobRefused(
            f"store refused: tiledbvcf could never export {len(unexportable)} of this job's samples as files of their "
            f"own: {'; '.join(unexportable)}. Nothing was stored; rename them in their files (bcftools reheader -s)"
        )
    present = listed() & set(names.values())
    earlier = earlier_names(marker, s3) if present else set()  # no read at all in the usual case
    found = twice(names, present, earlier)
    if found:
        raise JobRefused(refusal(found, len(names), dataset))
    try:
        write_text(marker, marker_body(task, names), s3)
    except Exception as error:  # a job that cannot leave its evidence does not store
        raise JobRefused(
            f"the started marker {marker} cannot be written ({reason(error)}); store did not run"
        ) from None
    return names, present


def take_lock(marker: str) -> int:
    """An exclusive lock on the marker's lock file, held as an inheritable descriptor (tiledbvcf keeps it).

    JobRefused at once if another process holds it: another store of this manifest is running.
    """
    import fcntl  # imported here: only local jobs lock

    path = lock_file(marker)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise JobRefused(f"the lock file {path} cannot be opened ({reason(error)}); store did not run") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        held = f" by pid {holder}" if holder else ""
        raise JobRefused(
            f"another store of this manifest is running: {path} is locked{held}; store did not run "
            "(two at once would store its samples twice)"
        ) from None
    note_holder(fd, os.getpid())
    os.set_inheritable(fd, True)
    return fd


def note_holder(fd: int, pid: int, child: int | None = None) -> None:
    """Record in the lock file which processes hold it, for the message of a job that finds it held."""
    text = f"{pid}" + (f" (its tiledbvcf: pid {child})" if child else "")
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8"), 0)


# -- Which process runs a job: the local executor names it by its pid and start time -------------
