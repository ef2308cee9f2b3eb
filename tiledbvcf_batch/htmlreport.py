"""A run's report as one self-contained HTML page (``--report FILE.html``, ``batch-runs.py report RUN --html``).

The page needs no network: its style and its script are written into it (``report_page/``). The tables are
HTML; the timeline is drawn by the page's script from the run's data, a JSON document in the page: one bar
per job attempt (queued, then running, coloured by how it ended), grouped by stage, retries and host losses
(Spot interruptions on AWS Batch) marked. A page without a script still shows every table.

Cost per stage: the run's cost (instances billed from their first start to their last stop, as the text
report counts it) shared out among the stages by the seconds their attempts ran.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import estimate, report
from .executors.base import Attempt, Executor, Words, attempt_seconds
from .plan import Stage
from .progress import format_duration
from .record import RunRecord
from .report import Finished, printable

ASSETS = Path(__file__).with_name("report_page")
SUCCEEDED, FAILED, HOST_LOST, RUNNING = "succeeded", "failed", "host-lost", "running"


def outcome(attempt: Attempt, last: bool, status: str, host_lost: Callable[[Attempt], bool]) -> str:
    """How an attempt ended: its host lost, still running, succeeded (the last attempt of a job that did), or failed."""
    if host_lost(attempt):
        return HOST_LOST
    if "stoppedAt" not in attempt:
        return RUNNING
    if (last and status == "SUCCEEDED") or attempt.get("container", {}).get("exitCode") == 0:
        return SUCCEEDED
    return FAILED


def attempts_of(description: Mapping[str, Any], host_lost: Callable[[Attempt], bool]) -> list[dict[str, Any]]:
    """The job's attempts as the timeline draws them: queued from its submission (or the attempt before) to
    its start, running to its stop (None: still running)."""
    attempts = description.get("attempts") or []
    drawn, queued = [], description.get("createdAt")
    for number, attempt in enumerate(attempts, start=1):
        container = attempt.get("container", {})
        drawn.append(
            {
                "number": number,
                "queued": queued,
                "start": attempt.get("startedAt"),
                "stop": attempt.get("stoppedAt"),
                "outcome": outcome(attempt, number == len(attempts), description.get("status", ""), host_lost),
                "exit": container.get("exitCode"),
                "reason": printable(attempt.get("statusReason") or container.get("reason") or ""),
                "instance": container.get("containerInstanceArn") or "",
            }
        )
        queued = attempt.get("stoppedAt")
    return drawn


def run_data(finished: Finished, host_lost: Callable[[Attempt], bool], now_ms: int) -> dict[str, Any]:
    """What the timeline draws: each stage's jobs with their attempts, and the span of times."""
    record = finished.record
    assert record is not None
    stages: dict[str, dict[str, Any]] = {}
    for job in record.jobs:
        description: Mapping[str, Any] = finished.latest.get(job.job_id or "", {})
        stage = stages.setdefault(job.stage, {"stage": job.stage, "label": Stage.parse(job.stage).label, "jobs": []})
        stage["jobs"].append(
            {
                "name": job.name,
                "job_id": job.job_id or "",
                "status": description.get("status", "NOT SUBMITTED" if job.job_id is None else "UNKNOWN"),
                "samples": len(job.samples),
                "bytes": finished.job_bytes.get(job.key),
                "attempts": attempts_of(description, host_lost),
            }
        )
    times = [
        t
        for stage in stages.values()
        for job in stage["jobs"]
        for a in job["attempts"]
        for t in (a["queued"], a["start"], a["stop"])
        if isinstance(t, int | float)
    ]
    return {"stages": list(stages.values()), "first": min(times, default=now_ms), "last": max(times, default=now_ms),
            "now": now_ms}  # fmt: skip


def stage_costs(finished: Finished) -> list[dict[str, Any]]:
    """Per stage: jobs, succeeded, attempts, the seconds they ran, and its share of the run's cost."""
    record, report = finished.record, finished.report
    assert record is not None
    rows: dict[str, dict[str, Any]] = {}
    for job in record.jobs:
        attempts = finished.latest.get(job.job_id or "", {}).get("attempts") or []
        row = rows.setdefault(job.stage, {"stage": job.stage, "jobs": 0, "succeeded": 0, "attempts": 0, "seconds": 0.0})
        row["jobs"] += 1
        row["succeeded"] += finished.latest.get(job.job_id or "", {}).get("status") == "SUCCEEDED"
        row["attempts"] += len(attempts)
        row["seconds"] += sum(attempt_seconds(a) for a in attempts)
    total = sum(row["seconds"] for row in rows.values())
    for row in rows.values():
        row["cost"] = report.cost * row["seconds"] / total if total else 0.0
    return list(rows.values())


def cell(value: Any) -> str:
    return html.escape(printable("" if value is None else value))


def table(head: Sequence[str], rows: Sequence[Sequence[Any]], css: str) -> str:
    header = "".join(f"<th>{cell(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>'


def size_text(count: int | None) -> str:
    if count is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return ""


def jobs_section(data: Mapping[str, Any]) -> str:
    rows = [
        (
            stage["label"],
            job["name"],
            job["status"],
            len(job["attempts"]),
            job["samples"],
            size_text(job["bytes"]),
            format_duration(sum(ran(a) for a in job["attempts"])),
        )
        for stage in data["stages"]
        for job in stage["jobs"]
    ]
    head = ("Stage", "Job", "Status", "Attempts", "Samples", "Bytes", "Ran for")
    return "<h2>Jobs</h2>" + table(head, rows, "jobs")


def ran(attempt: Mapping[str, Any]) -> float:
    start, stop = attempt["start"], attempt["stop"]
    return (stop - start) / 1000 if isinstance(start, int | float) and isinstance(stop, int | float) else 0.0


def costs_section(finished: Finished) -> str:
    rows = [
        (
            Stage.parse(row["stage"]).label,
            f"{row['succeeded']} / {row['jobs']}",
            row["attempts"],
            format_duration(row["seconds"]),
            f"${row['cost']:.2f}",
        )
        for row in stage_costs(finished)
    ]
    head = ("Stage", "Jobs succeeded", "Attempts", "Attempts ran for", "Cost (share)")
    return "<h2>Cost per stage</h2>" + table(head, rows, "costs")


def estimate_section(finished: Finished) -> str:
    """The estimate made before the run beside what happened; nothing when the run had none."""
    planned = finished.document.get("estimate")
    if not isinstance(planned, dict) or not {"instance_hours", "wall_seconds", "cost"} <= set(planned):
        return ""
    report = finished.report
    wall = sum(stage.get("seconds") or 0.0 for stage in report.stages.values())
    rows = [
        ("Instance-hours", f"{planned['instance_hours']:.2f}", f"{report.instance_hours:.2f}"),
        ("Wall time", format_duration(planned["wall_seconds"]), format_duration(wall)),
        ("Cost", f"${planned['cost']:.2f}", f"${report.cost:.2f}"),
    ]
    source = f"<p>Estimated before the run ({cell(planned.get('source', ''))}).</p>"
    return "<h2>Estimate and what happened</h2>" + source + table(("", "Estimated", "Happened"), rows, "estimate")


def failures_section(failures: Sequence[Mapping[str, Any]]) -> str:
    if not failures:
        return ""
    parts = ["<h2>Failures</h2>"]
    for group in failures:
        names = ", ".join(job["name"] or job["job_id"] for job in group["jobs"])
        parts.append(f'<div class="failure"><h3>{len(group["jobs"])} job(s): {cell(names)}</h3>')
        parts.append(f"<p>Status reason: {cell(group['status_reason'] or 'none given')}</p>")
        for attempt in group["attempts"]:
            parts.append(
                f"<p>Attempt {attempt['attempt']}: exit code {cell(attempt['exit_code'])}, "
                f"{cell(attempt['status_reason'] or 'no status reason')}</p>"
            )
            log = "\n".join(str(line) for line in attempt["log"]) or attempt["log_error"] or "(no log lines)"
            parts.append(f'<pre class="log">{cell(log)}</pre>')
        parts.append("</div>")
    return "".join(parts)


def script_json(data: Mapping[str, Any]) -> str:
    """JSON that cannot end its <script> element early: every "<" escaped."""
    return json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")


def html_page(
    finished: Finished, words: Words, host_lost: Callable[[Attempt], bool], now: datetime.datetime | None = None
) -> str:
    """The whole page: the text report, the estimate, the timeline, the jobs, the cost per stage, the failures."""
    record = finished.record
    assert record is not None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    data = run_data(finished, host_lost, int(now.timestamp() * 1000))
    data["host_loss"] = words.host_loss
    title = f"Run {record.run_id} ({record.kind})"
    summary = "\n".join(finished.lines[:1] + [line for line in finished.lines[1:] if line.startswith("- ")])
    return "".join(
        [
            f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{cell(title)}</title>',
            f"<style>{(ASSETS / 'page.css').read_text(encoding='utf-8')}</style></head><body>",
            f"<h1>{cell(title)}</h1><p>{cell(record.target)} &middot; run by {cell(words.name)} &middot; "
            f"recorded at {cell(record.record or '')} &middot; created {cell(record.created_at)} &middot; "
            f"report of {cell(now.isoformat(timespec='seconds'))}</p>",
            f'<pre class="summary">{cell(summary)}</pre>',
            estimate_section(finished),
            '<h2>Timeline</h2><div id="legend"></div><div id="timeline"><p class="noscript">The timeline is drawn by '
            "the page's script: allow scripts for this file to see it.</p></div>",
            jobs_section(data),
            costs_section(finished),
            failures_section(finished.failures),
            f'<script type="application/json" id="run-data">{script_json(data)}</script>',
            f"<script>{(ASSETS / 'timeline.js').read_text(encoding='utf-8')}</script></body></html>\n",
        ]
    )


def write_page(path: str, page: str) -> None:
    """The page, written whole: a reader never sees half of it."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(page, encoding="utf-8")
    partial.replace(target)


def with_logs(finished: Finished, executor: Executor, log_lines: int = report.DEFAULT_LOG_LINES) -> Finished:
    """The report with its failures' log lines (a report made with none, for the page that shows them)."""
    if not finished.report.failed or finished.record is None:
        return finished
    dependents = {failure["job_id"] for failure in finished.report.failed if failure["cause"] == "dependency"}
    descriptions = [finished.latest[i] for i in finished.record.job_ids() if i in finished.latest]
    return replace(finished, failures=report.diagnose_failures(executor, descriptions, log_lines, dependents))


def set_beside(record: RunRecord, finished: Finished) -> None:
    """The estimate made before the run (if it made one) set beside what happened, in the lines and the document."""
    done = finished.report
    planned = record.options.get("estimate")
    if isinstance(planned, dict) and {"instance_hours", "wall_seconds", "cost", "source"} <= set(planned):
        wall = sum(stage.get("seconds") or 0.0 for stage in done.stages.values())
        costs = [i for i, line in enumerate(finished.lines) if line.startswith("- Total cost estimate ")]
        at = costs[0] + 1 if costs else len(finished.lines)  # beside the run's cost, before its failures
        finished.lines.insert(at, estimate.beside(planned, done.instance_hours, wall, done.cost))
        finished.document["estimate"] = planned
