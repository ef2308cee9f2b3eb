#!/usr/bin/env python3
"""ENTRYPOINT of the tiledbvcf image: runs ``tiledbvcf`` with the job's arguments, unchanged.

One exception. Current tiledbvcf releases exit 0 from ``export --upload-dir s3://...``
without uploading anything (see the README, "The image"). For such an export this entrypoint:
1. runs the same export into a fresh directory under ``-d``, without ``--upload-dir``;
2. checks that every sample of the job's partition has its file;
3. uploads the files with boto3 (credentials from the Batch job role) and checks each one
   arrived with its size;
4. exits 1 unless all of that worked, so that Batch marks the job FAILED (and retries it).

Every other command, and an export to a local ``--upload-dir``, is handed to tiledbvcf
with ``exec`` as it is.

An array job's child (its ``-f`` names the stage's task file and the array index placeholder,
see ``tiledbvcf_batch.commands``) first takes its own entry of the task file by
``AWS_BATCH_JOB_ARRAY_INDEX`` and writes that task's samples file; after tiledbvcf succeeded it
writes the task's done marker, the ledger's proof that the samples are in (exit 1 if it cannot).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiledbvcf_batch.commands import (
    ARRAY_INDEX_VARIABLE,
    EXPORT_SUFFIXES,
    OPTION_NAMES,
    array_task_file,
    needs_own_upload,
    option,
    scratch_dir,
    split_evenly,
    task_of,
    with_own_scratch,
    with_value,
)
from tiledbvcf_batch.storage import S3Uri, parse_s3_uri, read_s3_text

TILEDBVCF = os.environ.get("TILEDBVCF", "tiledbvcf")


def log(message: str) -> None:
    print(f"[tiledbvcf-batch] {message}", file=sys.stderr, flush=True)


def value(args: Sequence[str], key: str) -> str | None:
    found = option(args, OPTION_NAMES[key])
    return found[1] if found else None


def without_option(args: Sequence[str], names: Sequence[str]) -> list[str]:
    found = option(args, names)
    if found is None:
        return list(args)
    i = found[0]
    width = 1 if "=" in args[i] else 2
    return list(args[:i]) + list(args[i + width :])


def expected_names(args: Sequence[str], s3: Any) -> list[str] | None:
    """The sample names of this job's partition, cut as tiledbvcf cuts them; None if unknown."""
    names_file = value(args, "samples_file")
    if names_file is None:
        return None
    if names_file.startswith("s3://"):
        text = read_s3_text(s3, parse_s3_uri(names_file, "-f"))
    else:
        text = Path(names_file).read_text()
    names = sorted({line.strip() for line in text.splitlines() if line.strip()})
    partition = value(args, "partition")
    if partition is None:
        return names
    index, count = (int(part) for part in partition.split(":"))
    chunks = split_evenly(names, count)
    return chunks[index] if index < len(chunks) else []


def upload_all(s3: Any, files: list[Path], dest: S3Uri) -> list[str]:
    """Upload and check each file; return the problems."""
    problems = []
    for path in files:
        key = dest.as_prefix().key + path.name
        try:
            s3.upload_file(str(path), dest.bucket, key)
            size = s3.head_object(Bucket=dest.bucket, Key=key)["ContentLength"]
        except Exception as error:  # any failure of one file must fail the job, with its reason
            problems.append(f"{path.name}: upload to s3://{dest.bucket}/{key} failed ({error})")
            continue
        if size != path.stat().st_size:
            problems.append(f"{path.name}: s3://{dest.bucket}/{key} has {size} bytes, the file {path.stat().st_size}")
    return problems


def export_and_upload(args: list[str], run: Callable[[list[str]], int], s3: Any) -> int:
    dest = parse_s3_uri(value(args, "upload") or "", "--upload-dir", need_key=False)
    parent = value(args, "output_dir") or "."
    # A directory of its own: other jobs on the same instance write under the same -d.
    workdir = Path(tempfile.mkdtemp(prefix="export-", dir=parent))
    try:
        local = with_value(without_option(args, OPTION_NAMES["upload"]), OPTION_NAMES["output_dir"], str(workdir))
        code = run([TILEDBVCF, *local])
        if code != 0:
            log(f"tiledbvcf export exited {code}; nothing uploaded")
            return code
        files = sorted(p for p in workdir.iterdir() if p.is_file())
        expected = expected_names(args, s3)
        suffix = EXPORT_SUFFIXES.get(value(args, "format") or "b", "")
        if expected is not None:
            present = {p.name for p in files}
            missing = [name for name in expected if f"{name}{suffix}" not in present]
            if missing:
                log(f"tiledbvcf wrote no file for {len(missing)} of {len(expected)} samples: {', '.join(missing)}")
                return 1
        if not files:
            log("tiledbvcf export wrote no file; nothing to upload")
            return 1
        problems = upload_all(s3, files, dest)
        for problem in problems:
            log(problem)
        if problems:
            return 1
        log(f"uploaded {len(files)} files to {dest.as_prefix()}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str], run: Callable[[list[str]], int] = subprocess.call, s3: Any = None) -> int:
    task_file = array_task_file(argv)
    if task_file is not None:
        return run_array_child(argv, task_file, run, s3)
    if needs_own_upload(argv):
        return export_and_upload(argv, run, s3 or s3_client())
    scratch = scratch_dir(argv)
    if scratch is None:
        os.execvp(TILEDBVCF, [TILEDBVCF, *argv])
    return with_scratch_of_its_own(argv, scratch, run)


def run_job(args: list[str], run: Callable[[list[str]], int], s3: Any) -> int:
    """A job's command to its end (no exec: something follows)."""
    if needs_own_upload(args):
        return export_and_upload(args, run, s3 or s3_client())
    scratch = scratch_dir(args)
    if scratch is None:
        return run([TILEDBVCF, *args])
    return with_scratch_of_its_own(args, scratch, run)


def run_array_child(args: list[str], task_file: str, run: Callable[[list[str]], int], s3: Any) -> int:
    """One child of an array job: its task from the task file, run, then its done marker."""
    index = os.environ.get(ARRAY_INDEX_VARIABLE, "")
    if not index.isdigit():
        log(f"{ARRAY_INDEX_VARIABLE} is {index!r}: an array job's command runs only as a child of an array job")
        return 2
    if task_file.startswith("s3://"):
        s3 = s3 or s3_client()
        entry = task_of(read_s3_text(s3, parse_s3_uri(task_file, "task file")), int(index))
    else:
        entry = task_of(Path(task_file).read_text(encoding="utf-8"), int(index))
    workdir = Path(tempfile.mkdtemp(prefix="task-"))
    try:
        samples_file = workdir / f"{entry['key']}.txt"
        samples_file.write_text("".join(f"{line}\n" for line in entry["lines"]), encoding="utf-8")
        log(f"array child {index}: task {entry['key']}, {len(entry['lines'])} lines")
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


def with_scratch_of_its_own(args: list[str], scratch: str, run: Callable[[list[str]], int]) -> int:
    """Run the job in a directory of its own under its -d, removed afterwards (jobs may share the volume)."""
    workdir = tempfile.mkdtemp(prefix=f"{args[0]}-", dir=scratch)
    try:
        return run([TILEDBVCF, *with_own_scratch(args, workdir)])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def s3_client() -> Any:
    # Imported here: boto3 takes a third of a second to import, and only an export to S3 needs it.
    import boto3
    from botocore.config import Config

    # The same retry behaviour as the scripts' clients: throttling (SlowDown) is ridden out.
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 10}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
