"""A run's trace: one row per job attempt, as a tab-separated table (for pandas or a spreadsheet).

Read from the run record (each job's stage and samples) and the executor's descriptions (each attempt's
times, exit code, reason and instance). Times are ISO 8601 in UTC; a value not known is an empty cell.
``bytes`` is what the job moved (``report.job_bytes``): an ingestion job's input files, as listed before it
was submitted; an export job's delivered files, as its part of the manifest says; empty for other jobs
(creation, registration, consolidation) and for records written before jobs kept their bytes.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Mapping
from typing import Any

from .executors.base import Attempt, JobDescription
from .record import RunRecord

COLUMNS = (
    "job",
    "job_id",
    "stage",
    "attempt",
    "status",
    "samples",
    "bytes",
    "submitted",
    "started",
    "stopped",
    "exit_code",
    "status_reason",
    "instance",
)
# Tabs and line breaks would cut a cell; other control characters must not reach a spreadsheet either.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f]")


def utc_time(epoch_ms: Any) -> str:
    """An executor's time (milliseconds since the epoch) as ISO 8601 in UTC; "" if there is none."""
    if not isinstance(epoch_ms, int | float) or isinstance(epoch_ms, bool):
        return ""
    moment = datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cell(value: Any) -> str:
    return "" if value is None else UNSAFE.sub(" ", str(value))


def attempt_row(job: Mapping[str, Any], number: int | None, attempt: Attempt) -> dict[str, str]:
    container = attempt.get("container", {})
    row = {
        **job,
        "attempt": "" if number is None else str(number),
        "started": utc_time(attempt.get("startedAt")),
        "stopped": utc_time(attempt.get("stoppedAt")),
        "exit_code": cell(container.get("exitCode")),
        "status_reason": cell(attempt.get("statusReason") or container.get("reason")),
        "instance": cell(container.get("containerInstanceArn")),
    }
    return {column: row.get(column, "") for column in COLUMNS}


def trace_rows(
    record: RunRecord, latest: Mapping[str, JobDescription], job_bytes: Mapping[str, int] | None = None
) -> list[dict[str, str]]:
    """One row per attempt of each recorded job, in the record's order; a job that never ran (not submitted,
    waiting, or failed for a dependency) has one row with no attempt number, its status and reason."""
    rows = []
    for recorded in record.jobs:
        description: Mapping[str, Any] = latest.get(recorded.job_id or "", {})
        job = {
            "job": recorded.name,
            "job_id": recorded.job_id or "",
            "stage": recorded.stage,
            "status": cell(description.get("status", "NOT SUBMITTED" if not recorded.job_id else "UNKNOWN")),
            "samples": str(len(recorded.samples)),
            "bytes": cell((job_bytes or {}).get(recorded.key)),
            "submitted": utc_time(description.get("createdAt")),
        }
        attempts = description.get("attempts") or []
        if not attempts:
            rows.append(attempt_row(job, None, {"statusReason": description.get("statusReason", "")}))
        rows.extend(attempt_row(job, number, attempt) for number, attempt in enumerate(attempts, start=1))
    return rows


def trace_text(rows: list[dict[str, str]]) -> str:
    """The rows as TSV: a header row, then one line per row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, delimiter="\t", lineterminator="\n")  # a cell with a quote is quoted
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
