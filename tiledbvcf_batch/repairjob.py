"""A repair job, as the image's entrypoint runs it: each input of its manifest fetched, repaired, and published.

Runs under Debian bookworm's python3 with python3-boto3 alone (botocore is imported by the caller's client,
only when a file is on S3). The tools' command lines are ``repair``'s. Every file is made in a directory of the
job's own under its ``-d`` and published only once whole: locally written beside its destination under a
temporary name, then renamed; on S3 uploaded (an object appears whole or not at all). The data file goes first,
its index last. A retried attempt starts over: it repairs every input of its manifest again, and overwrites.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .commands import option_value, scratch_dir
from .repair import (
    INDEX,
    RECOMPRESS,
    REPAIR_TOOLS,
    SPLIT,
    Repair,
    index_command,
    recompress_command,
    split_command,
    split_file,
    split_samples_file,
)
from .storage import encryption_args, parse_s3_uri

Log = Callable[[str], None]
S3Getter = Callable[[], Any]


class RepairFailed(Exception):
    """A repair that did not work: one line saying which input and why."""


def bcftools_program() -> str:
    """bcftools, where BCFTOOLS says (read at each use, as export jobs do), or on PATH."""
    return os.environ.get(REPAIR_TOOLS["bcftools"]) or "bcftools"


def repair_job(args: list[str], s3: S3Getter, log: Log) -> int:
    """Repair every input of the job's manifest (``-f``); 0 if all were, else 1 with one line saying why."""
    manifest = option_value(args, "samples_file")
    if manifest is None:
        log("a repair job needs -f MANIFEST (one repair a line)")
        return 2
    try:
        repairs = [Repair.from_line(line) for line in read_lines(manifest, s3) if line.strip()]
    except (OSError, ValueError, KeyError) as error:
        log(f"the repair manifest {manifest} cannot be read ({error})")
        return 1
    workdir = tempfile.mkdtemp(prefix="repair-", dir=scratch_dir(args))
    try:
        for number, repair in enumerate(repairs, start=1):
            log(f"repair {number}/{len(repairs)}: {repair.kind} {repair.source}")
            repair_one(repair, Path(workdir) / str(number), s3)
    except RepairFailed as failed:
        log(str(failed))
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"repaired {len(repairs)} inputs")
    return 0


def read_lines(uri: str, s3: S3Getter) -> list[str]:
    if uri.startswith("s3://"):
        target = parse_s3_uri(uri, "manifest")
        return s3().get_object(Bucket=target.bucket, Key=target.key)["Body"].read().decode("utf-8").splitlines()
    return Path(uri).read_text(encoding="utf-8").splitlines()


def repair_one(repair: Repair, here: Path, s3: S3Getter) -> None:
    """One input's repair, made under ``here`` and then published."""
    here.mkdir(parents=True)
    source = fetch(repair.source, here / "input", s3)
    made: list[tuple[Path | None, Path]] = []  # (data, index) of each output, in the order of its outputs
    if repair.kind == INDEX:
        index = here / "index.csi"
        run(index_command(bcftools_program(), source, str(index)), repair)
        made.append((Path(source) if repair.outputs[0].data else None, index))
    elif repair.kind == RECOMPRESS:
        data = here / "repaired.vcf.gz"
        run(recompress_command(bcftools_program(), source, str(data)), repair)
        made.append(indexed(data, repair))
    elif repair.kind == SPLIT:
        made += split(repair, source, here)
    else:
        raise RepairFailed(f"repair of {repair.source}: unknown kind {repair.kind!r} (a newer client?)")
    for output, (made_data, made_index) in zip(repair.outputs, made, strict=True):
        if made_data is not None:
            publish(made_data, output.data, s3)
        publish(made_index, output.index, s3)


def split(repair: Repair, source: str, here: Path) -> list[tuple[Path | None, Path]]:
    samples_file = here / "samples.txt"
    samples_file.write_text(split_samples_file([output.name for output in repair.outputs]), encoding="utf-8")
    directory = here / "split"
    run(split_command(bcftools_program(), source, str(samples_file), str(directory)), repair)
    return [indexed(directory / f"{split_file(number)}.vcf.gz", repair) for number in range(len(repair.outputs))]


def indexed(data: Path, repair: Repair) -> tuple[Path | None, Path]:
    index = data.with_name(data.name + ".csi")
    run(index_command(bcftools_program(), str(data), str(index)), repair)
    return data, index


def run(command: list[str], repair: Repair) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, errors="replace")
    except OSError as error:
        raise RepairFailed(
            f"repair of {repair.source}: {command[0]} cannot be run ({error.strerror}): install bcftools, or set "
            f"{REPAIR_TOOLS['bcftools']}"
        ) from None
    if done.returncode != 0:
        said = " ".join(done.stderr.split())[:300] or "it said nothing"
        raise RepairFailed(
            f"repair of {repair.source}: {' '.join(command[1:3])} failed (exit {done.returncode}): {said}"
        )


def fetch(uri: str, local: Path, s3: S3Getter) -> str:
    """A local path to read ``uri`` from: the file itself when local (never written to), else a download."""
    if not uri.startswith("s3://"):
        return uri
    source = parse_s3_uri(uri, "input")
    try:
        s3().download_file(source.bucket, source.key, str(local))
    except Exception as error:  # botocore's errors: imported only with the client
        raise RepairFailed(f"repair of {uri}: it cannot be downloaded ({error})") from None
    return str(local)


def publish(made: Path, uri: str, s3: S3Getter) -> None:
    """``made`` at ``uri`` whole or not at all: uploaded, or copied under a temporary name and renamed."""
    if uri.startswith("s3://"):
        target = parse_s3_uri(uri, "repaired file")
        try:
            s3().upload_file(str(made), target.bucket, target.key, ExtraArgs=encryption_args(None))
        except Exception as error:  # botocore's errors: imported only with the client
            raise RepairFailed(f"the repaired file {uri} cannot be uploaded ({error})") from None
        return
    destination = Path(uri)
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    os.close(handle)
    try:
        shutil.copyfile(made, partial)
        os.replace(partial, destination)
    except OSError as error:
        Path(partial).unlink(missing_ok=True)
        raise RepairFailed(f"the repaired file {uri} cannot be written ({error.strerror})") from None
