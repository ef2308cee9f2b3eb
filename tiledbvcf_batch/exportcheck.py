"""What an export run delivered, checked at its destination: each sample's file (and index) or no records.

The jobs' parts of the manifest (or the manifest, once complete) say which samples have no record in the
regions and what each file weighs; one listing of the destination says what is there. A run of a client
older than the delivery file has no parts: every sample must then have its file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .commands import EXPORT_SUFFIXES
from .deliverables import (
    NO_RECORDS,
    Row,
    combined_name,
    manifest_location,
    parts_location,
    rows_of_manifest,
    rows_of_part,
)
from .record import RunRecord
from .storage import Location, Storage, parse_location


@dataclass(frozen=True)
class ExportCheck:
    """Which exported files are missing at the destination (export runs only)."""

    missing: list[str]
    expected: int
    dest: str
    no_records: list[str] = field(default_factory=list)  # samples with no record in the regions: no file, rightly
    manifest: str | None = None  # the run's manifest, once every job has written its part
    combined: bool = False  # files of several samples (--merge, -O t): missing and no_records name files
    bytes_by_job: dict[str, int] = field(default_factory=dict)  # job key -> bytes its files weigh, as it recorded


def is_combined(record: RunRecord) -> bool:
    return bool(record.options.get("merge")) or record.options.get("output_format") == "t"


def job_outputs(record: RunRecord) -> dict[str, list[str]]:
    """What each export job delivers, by job key: its samples' names, or (a combined export) its one file's name."""
    jobs = [job for job in record.jobs if job.kind == "export"]
    if not is_combined(record):
        return {job.key: list(job.samples) for job in jobs}
    numbered = [(job, int(found.group(1))) for job in jobs if (found := re.fullmatch(r"export-(\d+)", job.key))]
    fmt = str(record.options.get("output_format", "b"))
    return {job.key: [combined_name(record.run_id, number, len(numbered), fmt)] for job, number in numbered}


def check_exports(record: RunRecord, storage: Storage) -> ExportCheck:
    combined = is_combined(record)
    outputs = job_outputs(record)
    names = [name for files in outputs.values() for name in files]
    dest = parse_location(record.target, "destination", need_key=False).as_prefix()
    present = storage.list_sizes(dest)  # one listing (local paths list as whole paths, S3 as keys)
    manifest = manifest_location(dest, record.run_id)
    complete = manifest.key in present
    rows = delivered_rows(record, storage, manifest if complete else None, by_file=combined)
    suffix = "" if combined else EXPORT_SUFFIXES[record.options.get("output_format", "b")]
    no_records = sorted(name for name in names if name in rows and rows[name].status == NO_RECORDS)
    missing = [
        name for name in names if name not in no_records and not delivered(dest, present, name + suffix, rows.get(name))
    ]
    weighed = {
        key: sum(rows[file].bytes for file in files if file in rows)
        for key, files in outputs.items()
        if any(file in rows for file in files)
    }
    where = str(manifest) if complete else None
    return ExportCheck(missing, len(names), str(dest), no_records, where, combined, weighed)


def delivered(dest: Location, present: dict[str, int], file: str, row: Row | None) -> bool:
    """The file is at the destination, with the size its job recorded, and so is its index."""
    key = dest.child(file).key
    if key not in present:
        return False
    return row is None or (present[key] == row.bytes and (not row.index or dest.child(row.index).key in present))


def delivered_rows(
    record: RunRecord, storage: Storage, manifest: Location | None, *, by_file: bool = False
) -> dict[str, Row]:
    """The manifest's rows by sample (by file: a combined export): the run's manifest if it is complete, else the
    parts written so far."""
    if manifest is not None:
        rows = rows_of_manifest(storage.read_text(manifest))
    elif record.record is None:
        rows = []
    else:
        parts = parts_location(parse_location(record.record, "record"))  # beside the record, as the jobs write them
        listed = sorted(storage.list_sizes(parts))  # S3 keys, or whole local paths: a key of either kind
        rows = [row for key in listed for row in rows_of_part(storage.read_text(replace(parts, key=key)))]
    return {(row.file if by_file else row.sample): row for row in rows}
