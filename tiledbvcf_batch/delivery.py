"""An export run's deliverables: each sample's file with its index and figures, and the run's manifest.

The client writes the run's delivery file (``DeliverySpec``) beside its names files; each export
job names it with ``--delivery``. In the job (the image's entrypoint, also under --executor local),
after ``tiledbvcf export`` wrote the job's files into a directory of its own (``export_job``):

1. every sample of the job has its file, or has no record in the regions: tiledbvcf writes no file
   for such a sample and exits 0, so the job asks the dataset (``export -c``) before it calls a
   file missing;
2. each BCF / compressed VCF gets its index (``bcftools index``: .csi, or .tbi when asked), and
   each file its record count and MD5;
3. the files and their indexes go to the destination (S3, each checked by its size; or a directory);
4. the job writes its rows of the manifest beside the delivery file; the job that completes the set
   writes the run's manifest at the destination (each job lists the parts after writing its own,
   so the last to write one sees them all).

The client reads the same parts and manifest to tell a sample with no records from a missing file.
Standard library and boto3 only: this runs in the image (botocore 1.29).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .commands import (
    EXPORT_SUFFIXES,
    OPTION_NAMES,
    count_only_command,
    option,
    option_value,
    split_evenly,
    with_value,
    without,
)
from .deliverables import (
    COMBINED,
    DELIVERY_TOOLS,
    EXPORTED,
    NO_RECORDS,
    DeliverySpec,
    Row,
    index_suffix,
    manifest_text,
    part_text,
    parts_location,
    rows_of_part,
)
from .storage import LocalPath, Location, Storage, parse_location


def bcftools_program() -> str:
    """bcftools, where BCFTOOLS says (read at each use: the local executor's environment, a test's), or on PATH."""
    return os.environ.get(DELIVERY_TOOLS["bcftools"]) or "bcftools"


# -- In the job -----------------------------------------------------------------------------------


class Delivery(Exception):
    """The job cannot deliver: one line saying why (the job fails, and Batch may retry it)."""


def put_file(storage: Storage, path: Path, dest: Location) -> str | None:
    """Copy ``path`` to ``dest`` (a prefix) under its name; a problem, or None once it is there whole."""
    target = dest.as_prefix().child(path.name)
    try:
        if isinstance(target, LocalPath):
            Path(target.key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target.key)
            size = Path(target.key).stat().st_size
        else:
            storage.s3.upload_file(str(path), target.bucket, target.key)
            size = storage.s3.head_object(Bucket=target.bucket, Key=target.key)["ContentLength"]
    except Exception as error:  # any failure of one file must fail the job, with its reason
        return f"{path.name}: copy to {target} failed ({error})"
    if size != path.stat().st_size:
        return f"{path.name}: {target} has {size} bytes, the file {path.stat().st_size}"
    return None


def export_job(
    args: list[str], run: Callable[[list[str]], int], storage: Storage, log: Callable[[str], None], tiledbvcf: str
) -> int:
    """An export job to its end: tiledbvcf into a directory of its own, then the deliverables; its exit status."""
    dest = parse_location(option_value(args, "upload") or "", "upload directory", need_key=False)
    delivery = option_value(args, "delivery")
    spec = DeliverySpec.from_json(storage.read_text(parse_location(delivery, "--delivery"))) if delivery else None
    output_format = option_value(args, "format") or "b"
    output = option_value(args, "output")  # a combined export's one file (--merge, -O t)
    workdir = Path(tempfile.mkdtemp(prefix="export-", dir=option_value(args, "output_dir") or None))
    try:
        local = with_value(without(without(args, OPTION_NAMES["upload"]), OPTION_NAMES["delivery"]),
                           OPTION_NAMES["output_dir"], str(workdir))  # fmt: skip
        if output is not None:  # 0.40.3: a TSV's -o is under -d, a merged file's under the working directory
            inside = Path(output).name if output_format == "t" else str(workdir / Path(output).name)
            local = with_value(local, OPTION_NAMES["output"], str(inside))
        code = run([tiledbvcf, *local])
        if code != 0:
            log(f"tiledbvcf export exited {code}; nothing delivered")
            return code
        index = index_suffix(output_format, spec.index if spec else "csi")
        if output is not None:
            rows = combined_rows(args, workdir / Path(output).name, index, storage, tiledbvcf, log)
        else:
            rows = sample_rows(args, workdir, output_format, index, storage, tiledbvcf, log)
        if not deliver(rows, workdir, dest, storage, log):
            return 1
        empty = [row.file or row.sample for row in rows if row.status == NO_RECORDS]
        what = "" if output is not None else f"{len(empty)} samples have "  # a combined file names itself
        said = f"; {what}no records in the regions (no file): {', '.join(empty)}" if empty else ""
        log(f"delivered {len(rows) - len(empty)} files{' with their indexes' if index else ''} to {dest}{said}")
        if spec is not None and delivery is not None:
            part = option_value(args, "samples_file")
            write_manifest_part(storage, spec, parse_location(delivery, "--delivery"), part, rows, log)
        return 0
    except Delivery as error:
        log(str(error))
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def sample_rows(
    args: Sequence[str], workdir: Path, output_format: str, index: str | None, storage: Storage, tiledbvcf: str,
    log: Callable[[str], None],
) -> list[Row]:  # fmt: skip
    """One row per sample of the job: its file, or no records in the regions; Delivery if a file is missing."""
    expected = expected_names(args, storage)
    files = {p.name: p for p in workdir.iterdir() if p.is_file()}
    suffix = EXPORT_SUFFIXES.get(output_format, "")
    if expected is None:
        expected = sorted(name.removesuffix(suffix) for name in files)
    absent = [name for name in expected if f"{name}{suffix}" not in files]
    empty = without_records(args, absent, workdir, tiledbvcf, log)
    missing = [name for name in absent if name not in empty]
    if missing:
        raise Delivery(f"tiledbvcf wrote no file for {len(missing)} of {len(expected)} samples, which have records in "
                       f"the regions: {', '.join(missing)}; nothing delivered")  # fmt: skip
    rows = [exported_row(name, files[f"{name}{suffix}"], index) for name in expected if name not in empty]
    return rows + [Row(name, status=NO_RECORDS) for name in empty]


def combined_rows(
    args: Sequence[str], path: Path, index: str | None, storage: Storage, tiledbvcf: str, log: Callable[[str], None]
) -> list[Row]:
    """The job's one file (several samples), or no records: tiledbvcf writes no file when its part has none."""
    if path.is_file():
        return [exported_row(COMBINED, path, index, table=path.name.endswith(EXPORT_SUFFIXES["t"]))]
    names = expected_names(args, storage) or []
    total = count_records(args, names, path.parent, tiledbvcf, log) if names else 0
    if total != 0:
        held = "records in the regions" if total is None else f"{total} records in the regions"
        raise Delivery(f"tiledbvcf wrote no {path.name}, and its {len(names)} samples have {held}; nothing delivered")
    return [Row(COMBINED, path.name, status=NO_RECORDS)]


def deliver(rows: Sequence[Row], workdir: Path, dest: Location, storage: Storage, log: Callable[[str], None]) -> bool:
    """The rows' files and indexes at the destination; False (each problem said) if one is not."""
    files = [workdir / row.file for row in rows if row.file and row.status == EXPORTED]
    problems = [problem for path in [*files, *(workdir / row.index for row in rows if row.index)]
                if (problem := put_file(storage, path, dest))]  # fmt: skip
    for problem in problems:
        log(problem)
    return not problems


def expected_names(args: Sequence[str], storage: Storage) -> list[str] | None:
    """The sample names of this job's partition, cut as tiledbvcf cuts them; None if unknown."""
    names_file = option_value(args, "samples_file")
    if names_file is None:
        return None
    text = storage.read_text(parse_location(names_file, "names file"))
    names = sorted({line.strip() for line in text.splitlines() if line.strip()})
    partition = option(args, OPTION_NAMES["partition"])
    if partition is None:
        return names
    index, count = (int(part) for part in partition[1].split(":"))
    chunks = split_evenly(names, count)
    return chunks[index] if index < len(chunks) else []


def without_records(
    args: Sequence[str], names: Sequence[str], workdir: Path, tiledbvcf: str, log: Callable[[str], None]
) -> list[str]:
    """Which of ``names`` have no record in the job's regions, as the dataset says (``export -c``).

    One query for them all; only if some of them do have records, one query each, to name those.
    A count that cannot be had (the legacy CLI has no -c) leaves the samples missing.
    """
    if not names:
        return []
    total = count_records(args, names, workdir, tiledbvcf, log)
    if total == 0:
        return list(names)
    if total is None or len(names) == 1:
        return []
    return [name for name in names if count_records(args, [name], workdir, tiledbvcf, log) == 0]


def count_records(
    args: Sequence[str], names: Sequence[str], workdir: Path, tiledbvcf: str, log: Callable[[str], None]
) -> int | None:
    names_file = workdir / ".count-names.txt"
    names_file.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    command = [tiledbvcf, *count_only_command(args, str(names_file))]
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", cwd=workdir)
    names_file.unlink()
    last = next((line.strip() for line in reversed(done.stdout.splitlines()) if line.strip()), "")
    if done.returncode != 0 or not last.isdigit():
        log(f"cannot count the records of {', '.join(names)} (tiledbvcf export -c exited {done.returncode}: "
            f"{last or done.stderr.strip()[:200]})")  # fmt: skip
        return None
    return int(last)


def exported_row(name: str, path: Path, index: str | None, table: bool = False) -> Row:
    """The file's manifest row, its index made first (the count comes from it); a TSV table counts its data lines."""
    if table:
        records = count_table_lines(path)
    elif index is not None:
        bcftools(["index", *(["--tbi"] if index == ".tbi" else ["--csi"]), "--force", str(path)])
        records = int(bcftools(["index", "-n", str(path)]).strip() or 0)
    else:
        records = count_lines_of(path)
    return Row(name, path.name, path.stat().st_size, records, md5_of(path), f"{path.name}{index}" if index else "")


def bcftools(arguments: list[str]) -> str:
    try:
        done = subprocess.run([bcftools_program(), *arguments], capture_output=True, text=True, errors="replace")
    except OSError as error:
        raise cannot_run(error) from None
    if done.returncode != 0:
        raise Delivery(f"bcftools {' '.join(arguments)} failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
    return done.stdout


def cannot_run(error: OSError) -> Delivery:
    return Delivery(f"bcftools cannot be run ({error.strerror}: {bcftools_program()}): it makes the files' indexes "
                    "and counts; install it, or set BCFTOOLS")  # fmt: skip


def count_lines_of(path: Path) -> int:
    """Records of an uncompressed BCF or VCF: its data lines, as bcftools reads them."""
    try:
        process = subprocess.Popen([bcftools_program(), "view", "-H", str(path)], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
    except OSError as error:
        raise cannot_run(error) from None
    stream = process.stdout
    lines = 0
    while stream is not None and (chunk := stream.read(1 << 20)):
        lines += chunk.count(b"\n")
    if process.wait() != 0:
        raise Delivery(f"bcftools view -H {path.name} failed (exit {process.returncode})")
    return lines


def count_table_lines(path: Path) -> int:
    """Records of a TSV export: its lines but the header."""
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines - 1, 0)


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest_part(
    storage: Storage, spec: DeliverySpec, delivery: Location, names_file: str | None, rows: Sequence[Row],
    log: Callable[[str], None],
) -> None:  # fmt: skip
    """This job's rows beside the delivery file; the run's manifest too once every job has written its part."""
    parts = parts_location(delivery)
    stem = Path(names_file or "export").name.rpartition(".")[0] or "export"
    storage.put(parts.child(f"{stem}.json"), part_text(rows).encode("utf-8"), "application/json")
    written = sorted(key.rpartition("/")[2] for key in storage.list_sizes(parts) if key.endswith(".json"))
    if len(written) < spec.jobs:
        log(f"manifest: {len(written)} of {spec.jobs} jobs' parts written")
        return
    every = [row for name in written for row in rows_of_part(storage.read_text(parts.child(name)))]
    storage.put(parse_location(spec.manifest, "manifest"), manifest_text(every).encode("utf-8"))
    log(f"manifest of {len(every)} samples written: {spec.manifest}")
