#!/usr/bin/env python3
"""ENTRYPOINT of the tiledbvcf image: runs ``tiledbvcf`` with the job's arguments, unchanged.

One exception: an export. Current tiledbvcf releases exit 0 from ``export --upload-dir s3://...``
without uploading anything, write no file for a sample with no record in the regions, and index
nothing. So this entrypoint runs the export into a directory of its own under ``-d`` and delivers
it (``tiledbvcf_batch.delivery``): every sample has its file or, as the dataset says, no records
there; each file gets its index, record count and MD5; files and indexes go to the destination
(S3, each checked by its size, or a directory); the job's rows of the run's manifest are written,
and the manifest itself by the job that completes it. It exits 1 unless all of that worked, so
that Batch marks the job FAILED (and retries it).

A repair job (``repair -f MANIFEST [-d DIR]``, the stage ``--repair-to`` adds before the ingestion) runs no
tiledbvcf: ``tiledbvcf_batch.repairjob`` repairs each input of its manifest with bcftools.

Every other command is handed to tiledbvcf with ``exec`` as it is.

An array job's child (its ``-f`` names the stage's task file and the array index placeholder,
see ``tiledbvcf_batch.arraytasks``) first takes its own entry of the task file by
``AWS_BATCH_JOB_ARRAY_INDEX`` and writes that task's samples file; after tiledbvcf succeeded it
writes the task's done marker, the ledger's proof that the samples are in (exit 1 if it cannot).

Before a ``store --resume`` (the current CLI; a legacy store is run as it is), the job checks that
it stores no sample twice (``tiledbvcf_batch.jobcheck``): the names in its samples' headers against
``tiledbvcf list`` of the dataset. A name already there is refused (exit 1, one line naming each),
unless the job's started marker says an earlier attempt of this very job stored it; the marker is
written before ``store`` runs. A job whose marker is local (``--executor local``) also locks
``<marker>.lock`` for as long as its tiledbvcf runs: a second store of the same manifest fails at once.

tiledbvcf runs as a child only when something follows it; the child gets the SIGTERM, SIGHUP and
SIGINT this process gets (as a container's PID 1 it gets them alone). Every failure is one line
and an exit status, never a traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TILEDBVCF = os.environ.get("TILEDBVCF", "tiledbvcf")
DATASET = ("-u", "--uri")  # store's dataset; the job check lists it with the same -u and --tiledb-config
TILEDB_CONFIG = ("--tiledb-config",)


def given(args: Sequence[str], names: Sequence[str]) -> str | None:
    """The value of ``--name value`` or ``--name=value`` (``commands.option``, before it is imported)."""
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--") and arg.partition("=")[0] in names and "=" in arg:
            return arg.partition("=")[2]
    return None


def listing_command(args: Sequence[str]) -> list[str] | None:
    """``tiledbvcf list`` of a ``store --resume``'s dataset, for the job check; None for any other job."""
    dataset = given(args, DATASET)
    if args[:1] != ["store"] or "--resume" not in args or dataset is None:
        return None
    config = given(args, TILEDB_CONFIG)
    return [TILEDBVCF, "list", "-u", dataset, *(["--tiledb-config", config] if config else [])]


def start_listing(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")


# Started before the package is imported, so that the listing and the imports run side by side.
EARLY: dict[tuple[str, ...], subprocess.Popen[str]] = {}
if __name__ == "__main__" and (early := listing_command(sys.argv[1:])):
    with contextlib.suppress(OSError):  # said by the job check, which starts it again
        EARLY[tuple(early)] = start_listing(early)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiledbvcf_batch.arraytasks import ARRAY_INDEX_VARIABLE, array_task_file, tasks_in  # noqa: E402
from tiledbvcf_batch.commands import (  # noqa: E402  (after the early listing)
    OPTION_NAMES,
    delivers,
    option_value,
    scratch_dir,
    store_budget_within,
    with_own_scratch,
    with_value,
)
from tiledbvcf_batch.delivery import export_job  # noqa: E402
from tiledbvcf_batch.jobcheck import (  # noqa: E402
    JobRefused,
    check_store,
    manifest_uris,
    note_holder,
    read_text,
    started_marker,
    take_lock,
)
from tiledbvcf_batch.repair import REPAIR  # noqa: E402
from tiledbvcf_batch.repairjob import repair_job  # noqa: E402
from tiledbvcf_batch.storage import Storage, parse_s3_uri, read_s3_text  # noqa: E402

FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
LOCKS: list[int] = []  # lock files held while the job's tiledbvcf runs (it inherits them)


def log(message: str) -> None:
    print(f"[tiledbvcf-batch] {message}", file=sys.stderr, flush=True)


def main(argv: list[str], run: Callable[[list[str]], int] | None = None, s3: Any = None) -> int:
    run = run or run_child
    task_file = array_task_file(argv)
    if task_file is not None:
        return run_array_child(argv, task_file, run, s3)
    if scratch_refused(argv):
        return 1
    if checked(argv):
        manifest = option_value(argv, "samples_file") or ""
        if not job_check(argv, None, manifest, started_marker(manifest), manifest, s3):
            return 1
    return run_job(argv, run, s3, last=exec_tiledbvcf)


def run_job(
    args: list[str], run: Callable[[list[str]], int], s3: Any, last: Callable[[list[str]], int] | None = None
) -> int:
    """A job's command to its end: its own upload, or its own scratch, or tiledbvcf as it is, by ``last``
    when nothing follows it (``main`` execs it; an array child's done marker follows it).
    """
    if args[:1] == [REPAIR]:  # the repair stage (--repair-to): bcftools, no tiledbvcf
        return repair_job(args, s3_getter(s3), log)
    args = within_this_machine(args)
    if delivers(args):
        return export_job(args, run, Storage(LazyS3(s3_getter(s3))), log, TILEDBVCF)
    scratch = scratch_dir(args)
    if scratch is None:
        return (last or run)([TILEDBVCF, *args])
    return with_scratch_of_its_own(args, scratch, run)


def within_this_machine(args: list[str]) -> list[str]:
    """The job's arguments with a store -m this machine's RAM allows (a local job may ask for more than it has)."""
    host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    lowered = store_budget_within(args, host)
    if lowered != args:
        log(f"store -m {option_value(args, 'store_budget')} is more than this machine's {host} MiB: "
            f"lowered to {option_value(lowered, 'store_budget')}")  # fmt: skip
    return lowered


def scratch_refused(args: list[str]) -> bool:
    """Whether the job's scratch volume cannot hold its files (said in one line): checked before anything is
    written or locked, since no job on this instance can run."""
    problem = scratch_problem(args)
    if problem:
        log(problem)
    return problem is not None


def scratch_problem(args: list[str]) -> str | None:
    """Why the job's -d (the scratch volume, /data on AWS Batch) cannot hold its files, or None if it can."""
    scratch = scratch_dir(args)
    if scratch is None:
        return None
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=scratch))
    except FileNotFoundError:
        return (
            f"scratch directory {scratch} does not exist: mount the scratch volume there (the launch template's "
            f"user data on the host, the job definition's volumes and mountPoints: README, 'Instances with scratch "
            f"space'), or pass --scratch-path an existing directory"
        )
    except OSError as error:
        return (
            f"scratch directory {scratch} cannot be written by this job's user (uid {os.getuid()}: "
            f"{error.strerror}); every job on this instance fails until it can: run `chmod 1777 {scratch}` on the "
            f"host, in the launch template's user data after mounting it (or in the AMI: README, 'Instances with "
            f"scratch space'), or pass --scratch-path a writable directory"
        )
    return None


def exec_tiledbvcf(command: list[str]) -> int:
    """tiledbvcf in place of this process (the lock file, if any, stays open in it); 127 if it cannot run."""
    try:
        os.execvp(command[0], command)
    except OSError as error:
        log(f"tiledbvcf cannot be run ({error.strerror}: {command[0]})")
    return 127


def run_array_child(args: list[str], task_file: str, run: Callable[[list[str]], int], s3: Any) -> int:
    """One child of an array job: its task from the task file, run, then its done marker."""
    index = os.environ.get(ARRAY_INDEX_VARIABLE, "")
    if not index.isdigit():
        log(f"{ARRAY_INDEX_VARIABLE} is {index!r}: an array job's command runs only as a child of an array job")
        return 2
    if task_file.startswith("s3://"):
        s3 = s3 or s3_client()
        body = read_s3_text(s3, parse_s3_uri(task_file, "task file"))
    else:
        body = Path(task_file).read_text(encoding="utf-8")
    tasks = tasks_in(body)
    if int(index) >= len(tasks):  # the array is larger than its task file: this child has no task to run
        log(
            f"array index {index} is outside the task file {task_file}, of {len(tasks)} tasks: the array job has "
            "more children than its task file (was the file replaced?); submit the run again with --resume RUN_ID"
        )
        return 2
    entry = tasks[int(index)]
    if scratch_refused(args):
        return 1
    log(f"array child {index}: task {entry['key']}, {len(entry['lines'])} lines")
    if checked(args) and "started" not in entry:
        log(f"task {entry['key']}: its task file names no started marker (an older client): no job check")
    elif checked(args) and not job_check(args, entry["lines"], task_file, entry["started"], entry["key"], s3):
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="task-"))
    try:
        samples_file = workdir / f"{entry['key']}.txt"
        samples_file.write_text("".join(f"{line}\n" for line in entry["lines"]), encoding="utf-8")
        code = run_job(with_value(args, OPTION_NAMES["samples_file"], str(samples_file)), run, s3)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if code != 0 or "done" not in entry:  # only ingestion tasks record their success
        return code
    return write_done(entry["done"], entry["key"], s3)


def write_done(uri: str, key: str, s3: Any) -> int:
    """The task's proof of success; if it cannot be written the job fails (and may be resumed: never lost)."""
    at = datetime.datetime.now(datetime.timezone.utc).isoformat()
    body = json.dumps({"task": key, "job": os.environ.get("AWS_BATCH_JOB_ID"), "at": at})
    try:
        if uri.startswith("s3://"):
            target = parse_s3_uri(uri, "done marker")
            (s3 or s3_client()).put_object(Bucket=target.bucket, Key=target.key, Body=body.encode("utf-8"))
        else:
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            Path(uri).write_text(body, encoding="utf-8")
    except Exception as error:  # any failure here must fail the job, with its reason
        log(f"task {key} succeeded but its done marker {uri} could not be written ({error})")
        return 1
    log(f"task {key} done: {uri}")
    return 0


# -- The job check: no sample stored twice ------------------------------------------------------


def checked(args: Sequence[str]) -> bool:
    """A store of the current CLI (``--resume``) of a samples file: the job check runs first.

    A legacy store (no ``--resume``) is run as it is.
    """
    return listing_command(args) is not None and option_value(args, "samples_file") is not None


def job_check(args: list[str], lines: list[str] | None, manifest: str, marker: str, task: str, s3: Any) -> bool:
    """True if store may run (the started marker is written); else False, with one line said."""
    dataset, command = given(args, DATASET) or "", listing_command(args) or []
    get_s3 = s3_getter(s3)
    listing = EARLY.pop(tuple(command), None)
    try:
        if not marker.startswith("s3://"):
            LOCKS.append(take_lock(marker))
        listing = listing or listing_started(command)
        if lines is None:
            lines = manifest_lines(manifest, get_s3)
        uris = manifest_uris(lines)
        names, present = check_store(uris, marker, task, dataset, lambda: listed(listing, dataset), get_s3)
    except JobRefused as refused:
        log(str(refused))
        return False
    finally:
        if listing is not None and listing.poll() is None:  # refused before the listing was read
            listing.kill()
            listing.wait()
    again = (
        f"; {len(present)} already stored by an earlier attempt of this job, which store --resume finishes"
        if present
        else ""
    )
    log(f"job check: {len(names)} samples, none stored twice{again}; started marker {marker}")
    return True


def manifest_lines(manifest: str, s3: Callable[[], Any]) -> list[str]:
    try:
        return read_text(manifest, s3).splitlines()
    except Exception as error:  # a manifest that cannot be read: the job cannot vouch for its samples
        raise JobRefused(f"its samples file {manifest} cannot be read ({error}); store did not run") from None


def listing_started(command: list[str]) -> subprocess.Popen[str]:
    try:
        return start_listing(command)
    except OSError as error:
        raise JobRefused(f"tiledbvcf list cannot be run ({error.strerror}: {TILEDBVCF}); store did not run") from None


def listed(listing: subprocess.Popen[str], dataset: str) -> set[str]:
    """The dataset's sample names, one a line on stdout; JobRefused with its first error line if list failed."""
    out, err = listing.communicate()
    if listing.returncode != 0:
        lines = [line.strip() for line in (err + "\n" + out).splitlines() if line.strip()]
        first = next((line for line in lines if "[critical]" in line or "error" in line.lower()), None)
        said = first or (lines[0] if lines else "it printed nothing")
        raise JobRefused(f"tiledbvcf list -u {dataset} failed (exit {listing.returncode}): {said}; store did not run")
    return {line.strip() for line in out.splitlines() if line.strip()}


# -- Running tiledbvcf --------------------------------------------------------------------------


def with_scratch_of_its_own(args: list[str], scratch: str, run: Callable[[list[str]], int]) -> int:
    """Run the job in a directory of its own under its -d, removed afterwards (jobs may share the volume)."""
    workdir = tempfile.mkdtemp(prefix=f"{args[0]}-", dir=scratch)
    try:
        return run([TILEDBVCF, *with_own_scratch(args, workdir)])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_child(command: list[str]) -> int:
    """``command`` as a child, given the signals this process gets; its exit status (128 + N if signal N ended it).

    As a container's PID 1 this process gets SIGTERM alone; locally the whole group gets it. Either
    way tiledbvcf stops, and what follows it (removing the scratch directory) still runs.
    """
    child: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if not child:
            pending.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            child[0].send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        try:
            child.append(subprocess.Popen(command, pass_fds=tuple(LOCKS)))
        except OSError as error:
            log(f"tiledbvcf cannot be run ({error.strerror}: {command[0]})")
            return 127
        for fd in LOCKS:
            note_holder(fd, os.getpid(), child[0].pid)
        for signum in pending:
            forward(signum, None)
        code = child[0].wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def s3_client() -> Any:
    # Imported here: boto3 takes a third of a second to import, and only a job that reads or writes S3 needs it.
    import boto3
    from botocore.config import Config

    # The same retry behaviour as the scripts' clients: throttling (SlowDown) is ridden out.
    # The endpoint given explicitly: botocore reads AWS_ENDPOINT_URL(_S3) itself only from 1.31, and the image's
    # (Debian bookworm's python3-botocore) is 1.29, which would ignore it and go to AWS. Newer ones read the same.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    config = Config(retries={"mode": "standard", "max_attempts": 10})
    return boto3.client("s3", endpoint_url=endpoint, config=config)


class LazyS3:
    """The S3 client as Storage calls it, made at its first call: a local export job never needs one."""

    def __init__(self, get: Callable[[], Any]):
        self._get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def s3_getter(s3: Any) -> Callable[[], Any]:
    """The S3 client, made on first use (most local jobs never need one)."""
    made = [s3]

    def get() -> Any:
        if made[0] is None:
            made[0] = s3_client()
        return made[0]

    return get


def entry(argv: list[str]) -> int:
    """main, with any failure as one line and an exit status: never a traceback."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the job's log must say why in one line
        what = getattr(error, "strerror", None) or str(error) or type(error).__name__
        log(f"the job failed: {type(error).__name__}: {what}")
        return 1
    finally:
        for listing in EARLY.values():  # a job that ended before its check (an array index out of range...)
            listing.kill()
            listing.wait()


if __name__ == "__main__":
    sys.exit(entry(sys.argv[1:]))
