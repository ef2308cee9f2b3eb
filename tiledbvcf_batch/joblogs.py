"""``batch-runs.py logs --all``: the logs of the jobs that succeeded, beside the failures' diagnosis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .executors.base import Executor, JobDescription
from .ledger import SUCCEEDED
from .report import diagnose_attempt, printable


def succeeded_logs(executor: Executor, descriptions: Sequence[JobDescription], log_lines: int) -> list[dict[str, Any]]:
    """Each job that succeeded, with every attempt (an earlier one may have failed) and its last log lines."""
    return [
        {
            "job_id": description["jobId"],
            "name": description.get("jobName", ""),
            "attempts": [
                diagnose_attempt(executor, description, number, attempt, log_lines)
                for number, attempt in enumerate(description.get("attempts", []), start=1)
            ],
        }
        for description in descriptions
        if description["status"] == SUCCEEDED
    ]


def format_succeeded(jobs: Sequence[dict[str, Any]]) -> list[str]:
    """The lines of ``succeeded_logs``, worded as the failures' (``report.format_failures``)."""
    lines = []
    for job in jobs:
        name = job["name"] or job["job_id"]
        lines.append(f"1 job succeeded: {name} ({job['job_id']})")
        if not job["attempts"]:
            lines.append("  no attempt described (a barrier, or a job the executor judged by what it left)")
        for attempt in job["attempts"]:
            reason = printable(attempt["status_reason"] or "no status reason")
            lines.append(f"  attempt {attempt['attempt']} of {name}: exit code {attempt['exit_code']}, {reason}")
            if attempt["log_stream"]:
                where = attempt["log_stream"] if attempt["log_group"] is None else (
                    f"{attempt['log_group']} {attempt['log_stream']}"
                )  # fmt: skip
                lines.append(f"    log: {where}")
            if attempt["log_error"]:
                lines.append(f"    ({printable(attempt['log_error'])})")
            lines.extend(f"    | {printable(message)}" for message in attempt["log"])
    return lines
