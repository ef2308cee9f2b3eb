"""What a finished run did: the documented figures, cost, stage durations, export check, failure diagnosis."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence, Set
from dataclasses import asdict, dataclass, field
from typing import Any

from .executors.base import FORGOTTEN, Attempt, Executor, JobDescription, Words, attempt_seconds
from .exportcheck import ExportCheck, check_exports, job_outputs
from .ledger import SUCCEEDED, job_states
from .plan import Stage
from .progress import format_duration
from .record import RunRecord
from .storage import Storage

# On-demand m5.4xlarge in us-east-1, the instance type of the documented compute environment.
DEFAULT_INSTANCE_PRICE = 0.768
DEFAULT_LOG_LINES = 20
MAX_LISTED_MISSING = 20
MAX_LISTED_FAILED = 20
# C0 controls but tab and newline, DEL and C1 controls: a log's terminal escape sequences must not reach a terminal.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: Any) -> str:
    """``text`` with its control characters shown as escapes (``\\x1b``): safe to print on a terminal."""
    return CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", str(text))


@dataclass
class Report:
    total: int
    succeeded: int
    retried: int
    instances: int
    longest_seconds: float
    instance_hours: float
    instance_price: float
    failed: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    spot_interruptions: int = 0  # attempts whose host went away (Executor.host_lost), a Spot reclaim on Batch
    samples_succeeded: int | None = None
    samples_failed: int | None = None
    missing_exports: list[str] = field(default_factory=list)
    exports_expected: int = 0
    export_dest: str = ""
    no_records: list[str] = field(default_factory=list)  # samples with no record in the regions (no file, rightly)
    export_manifest: str | None = None  # the run's manifest of files, once every job has written its part
    combined_export: bool = False  # files of several samples (--merge, -O t): no_records names files
    forgotten: int = 0  # jobs the executor no longer knows
    forgotten_judged: str = ""  # what is known of them all the same
    memory_resubmitted: int = 0  # jobs killed for memory and submitted again (oom.py)
    memory_resubmitted_mib: int = 0  # with how much memory, at most
    memory_killed: int = 0  # jobs whose last attempt was killed for memory: not submitted again
    memory_limit: int = 0  # the run's --max-memory
    memory_enforced: bool = True  # the executor holds jobs to their --memory (else more would not help)

    @property
    def cost(self) -> float:
        return self.instance_hours * self.instance_price

    @property
    def ok(self) -> bool:
        return self.succeeded == self.total and not self.missing_exports


def stage_durations(record: RunRecord, descriptions: dict[str, JobDescription]) -> dict[str, dict[str, Any]]:
    """For each stage: jobs, succeeded, and wall time from its first start to its last stop."""
    stages: dict[str, dict[str, Any]] = {}
    for job in record.jobs:
        stage = stages.setdefault(job.stage, {"jobs": 0, "succeeded": 0, "starts": [], "stops": []})
        stage["jobs"] += 1
        description = descriptions.get(job.job_id or "")
        if description is None:
            continue
        stage["succeeded"] += description["status"] == "SUCCEEDED"
        for attempt in description.get("attempts", []):
            stage["starts"] += [attempt["startedAt"]] if "startedAt" in attempt else []
            stage["stops"] += [attempt["stoppedAt"]] if "stoppedAt" in attempt else []
    for stage in stages.values():
        starts, stops = stage.pop("starts"), stage.pop("stops")
        stage["started_at"] = min(starts) if starts else None
        stage["stopped_at"] = max(stops) if stops else None
        ran = starts and stops
        stage["seconds"] = (stage["stopped_at"] - stage["started_at"]) / 1000.0 if ran else None
    return stages


def instance_spans(descriptions: Sequence[JobDescription]) -> dict[str, tuple[int, int]]:
    """Each instance's first start and last stop: what it was billed for."""
    spans: dict[str, tuple[int, int]] = {}
    for description in descriptions:
        for attempt in description.get("attempts", []):
            instance = attempt.get("container", {}).get("containerInstanceArn")
            if not instance or "startedAt" not in attempt or "stoppedAt" not in attempt:
                continue
            start, stop = spans.get(instance, (attempt["startedAt"], attempt["stoppedAt"]))
            spans[instance] = (min(start, attempt["startedAt"]), max(stop, attempt["stoppedAt"]))
    return spans


def followers(record: RunRecord, latest: dict[str, JobDescription]) -> set[str]:
    """Failed jobs that never ran because a job they depend on failed: consequences, not causes."""
    id_of = {job.key: job.job_id for job in record.jobs}
    found = set()
    for job in record.jobs:
        description = latest.get(job.job_id or "", {})
        never_ran = description.get("status") == "FAILED" and not description.get("attempts")
        if never_ran and any(latest.get(id_of.get(dep) or "", {}).get("status") == "FAILED" for dep in job.depends_on):
            found.add(job.job_id or "")
    return found


def failed_jobs(descriptions: Sequence[JobDescription], dependents: Set[str] = frozenset()) -> list[dict[str, Any]]:
    """The jobs that did not succeed, root causes first, those that failed for a dependency after them."""
    failed = [
        {
            "job_id": d["jobId"],
            "name": d.get("jobName", ""),
            "status": d["status"],
            "reason": d.get("statusReason", "no status reason given"),
            "cause": "dependency" if d["jobId"] in dependents else "own",
        }
        for d in descriptions
        if d["status"] != "SUCCEEDED"
    ]
    return sorted(failed, key=lambda entry: entry["cause"] == "dependency")


def by_id(descriptions: Sequence[JobDescription]) -> dict[str, JobDescription]:
    return {d["jobId"]: d for d in descriptions}


def never(attempt: Attempt) -> bool:
    return False


def build_report(
    descriptions: Sequence[JobDescription],
    instance_price: float,
    record: RunRecord | None = None,
    exports: ExportCheck | None = None,
    *,
    host_lost: Callable[[Attempt], bool] = never,
    killed_for_memory: Callable[[Attempt], bool] = never,
) -> Report:
    """The documented figures, plus per-stage durations, lost hosts (``host_lost``: the executor's) and samples.

    Cost: each instance is billed from its first attempt's start to its last attempt's stop,
    summed over instances.
    """
    spans = instance_spans(descriptions)
    attempts = [d.get("attempts", []) for d in descriptions]
    report = Report(
        total=len(descriptions),
        succeeded=sum(d["status"] == "SUCCEEDED" for d in descriptions),
        retried=sum(len(a) > 1 for a in attempts),
        instances=len(spans),
        longest_seconds=max((sum(attempt_seconds(x) for x in a) for a in attempts), default=0.0),
        instance_hours=sum((stop - start) / 3_600_000 for start, stop in spans.values()),
        instance_price=instance_price,
        failed=failed_jobs(descriptions, followers(record, by_id(descriptions)) if record else set()),
        spot_interruptions=sum(1 for a in attempts for x in a if host_lost(x)),
    )
    report.memory_killed = sum(1 for d in descriptions if d["status"] == "FAILED" and d.get("attempts")
                               and killed_for_memory(d["attempts"][-1]))  # fmt: skip
    if record is not None:
        resubmitted = [job.resubmitted for job in record.jobs if job.resubmitted and job.resubmitted.get("killed")]
        report.memory_resubmitted = len(resubmitted)
        report.memory_resubmitted_mib = max((int(r.get("memory", 0)) for r in resubmitted), default=0)
        report.memory_limit = int(record.options.get("max_memory") or 0)
        report.stages = stage_durations(record, by_id(descriptions))
        if record.kind == "ingest":
            stores = [job for job in record.jobs if job.kind == "ingest"]
            ok = {
                job.key for job in stores if by_id(descriptions).get(job.job_id or "", {}).get("status") == "SUCCEEDED"
            }
            report.samples_succeeded = sum(len(job.samples) for job in stores if job.key in ok)
            report.samples_failed = sum(len(job.samples) for job in stores if job.key not in ok)
    if exports is not None:
        report.missing_exports, report.exports_expected, report.export_dest = (
            exports.missing,
            exports.expected,
            exports.dest,
        )
        report.no_records, report.export_manifest = exports.no_records, exports.manifest
        report.combined_export = exports.combined
    return report


def format_report(report: Report, words: Words) -> list[str]:
    """The report's lines; ``words``: the executor's names for a lost host and for forgetting jobs."""
    lines = [
        f"Finished waiting on {report.total} jobs:",
        f"- {report.succeeded} / {report.total} jobs succeeded",
        f"- {report.retried} jobs had more than 1 attempt.",
        f"- {report.instances} instances used.",
        f"- Longest job took {report.longest_seconds:.3f} seconds (includes retries).",
        f"- Total cost estimate ${report.cost:.2f} ({report.instance_hours:.2f} hours @ "
        f"${report.instance_price:.4f} / hr)",
    ]
    if report.stages:
        lines.append(f"- {report.spot_interruptions} {words.host_loss} survived or retried.")
        for stage, figures in report.stages.items():
            took = "did not run" if figures["seconds"] is None else f"took {format_duration(figures['seconds'])}"
            label = Stage.parse(stage).label
            lines.append(f"- {label}: {figures['succeeded']} / {figures['jobs']} jobs succeeded, {took}")
    if report.samples_succeeded is not None:
        lines.append(
            f"- Samples: {report.samples_succeeded} in jobs that succeeded, "
            f"{report.samples_failed} in jobs that did not."
        )
    if report.forgotten:
        lines.append(
            f"- {report.forgotten} jobs are no longer known to {words.name} (it {words.forgets})"
            f"{report.forgotten_judged}."
        )
    lines += memory_lines(report)
    own = [failure for failure in report.failed if failure.get("cause") != "dependency"]
    for failure in own[:MAX_LISTED_FAILED]:
        lines.append(f"FAILED job {failure['job_id']} ({failure['name']}): {printable(failure['reason'])}")
    if len(own) > MAX_LISTED_FAILED:
        lines.append(f"FAILED: {len(own) - MAX_LISTED_FAILED} more jobs (python batch-runs.py logs lists them all)")
    dependents = [failure["name"] or failure["job_id"] for failure in report.failed if failure not in own]
    if dependents:
        names = ", ".join(dependents[:10]) + (" ..." if len(dependents) > 10 else "")
        lines.append(f"FAILED: {len(dependents)} jobs did not run because a job they depend on failed: {names}")
    if report.no_records:
        shown = ", ".join(report.no_records[:MAX_LISTED_MISSING])
        more = (
            f" and {len(report.no_records) - MAX_LISTED_MISSING} more"
            if len(report.no_records) > MAX_LISTED_MISSING
            else ""
        )
        what = "files (parts of the regions or samples)" if report.combined_export else "samples"
        lines.append(f"- {len(report.no_records)} {what} have no records in the regions (no file): {shown}{more}")
    if report.export_manifest:
        lines.append(f"- Manifest of the exported files: {report.export_manifest}")
    if report.missing_exports:
        missing = report.missing_exports
        shown = ", ".join(missing[:MAX_LISTED_MISSING])
        more = f" and {len(missing) - MAX_LISTED_MISSING} more" if len(missing) > MAX_LISTED_MISSING else ""
        lines.append(
            f"MISSING {len(missing)} of {report.exports_expected} exported files at {report.export_dest}: {shown}{more}"
        )
    return lines


def memory_lines(report: Report) -> list[str]:
    """Jobs killed for memory: submitted again with more (--wait), or not, and why."""
    lines = []
    if report.memory_resubmitted:
        lines.append(f"- {report.memory_resubmitted} jobs were killed for memory and resubmitted with "
                     f"{report.memory_resubmitted_mib} MiB.")  # fmt: skip
    if report.memory_killed and not report.memory_enforced:
        lines.append(f"- {report.memory_killed} jobs were killed for memory: the machine gave them less than they "
                     "used (their failures below say what to change).")  # fmt: skip
    elif report.memory_killed:
        cap = f" ({report.memory_limit} MiB)" if report.memory_limit else ""
        lines.append(f"- {report.memory_killed} jobs were killed for memory and not resubmitted: a job is resubmitted "
                     f"once, with twice its memory up to --max-memory{cap}, while --wait watches; --resume the run "
                     "to give its jobs twice the memory.")  # fmt: skip
    return lines


def report_json(report: Report, record: RunRecord, failures: list[dict[str, Any]]) -> dict[str, Any]:
    document = asdict(report)
    document.update(
        {
            "run_id": record.run_id,
            "kind": record.kind,
            "target": record.target,
            "record": record.record,
            "cost": round(report.cost, 4),
            "ok": report.ok,
            "failures": failures,
        }
    )
    return document


def failure_signature(description: JobDescription) -> tuple[Any, ...]:
    last = (description.get("attempts") or [{}])[-1]
    container = last.get("container", {})
    return (description.get("statusReason"), container.get("exitCode"), container.get("reason"))


def diagnose_failures(
    executor: Executor,
    descriptions: Sequence[JobDescription],
    log_lines: int = DEFAULT_LOG_LINES,
    dependents: Set[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Failed jobs grouped by identical failure, with every attempt and the log tail of the first job.

    Jobs that failed only because a job they depend on failed (``dependents``) are left out: they
    have no attempt and no log, and the report names them after the root causes.
    """
    groups: dict[tuple[Any, ...], list[JobDescription]] = {}
    for description in descriptions:
        if description["status"] == "FAILED" and description["jobId"] not in dependents:
            groups.setdefault(failure_signature(description), []).append(description)
    diagnosed = []
    for (status_reason, exit_code, container_reason), jobs in groups.items():
        first = jobs[0]
        attempts = [
            diagnose_attempt(executor, first, number, attempt, log_lines)
            for number, attempt in enumerate(first.get("attempts", []), start=1)
        ]
        diagnosed.append(
            {
                "jobs": [{"job_id": j["jobId"], "name": j.get("jobName", "")} for j in jobs],
                "status_reason": status_reason,
                "exit_code": exit_code,
                "container_reason": container_reason,
                "attempts": attempts,
            }
        )
    return diagnosed


def diagnose_attempt(
    executor: Executor, job: JobDescription, number: int, attempt: Attempt, log_lines: int
) -> dict[str, Any]:
    container = attempt.get("container", {})
    tail = executor.log_tail(job, attempt, log_lines)
    return {
        "attempt": number,
        "status_reason": attempt.get("statusReason"),
        "exit_code": container.get("exitCode"),
        "container_reason": container.get("reason"),
        "log_stream": tail.stream if tail else None,
        "log_group": tail.group if tail else None,
        "log": tail.lines if tail else [],
        "log_error": tail.error if tail else "no log stream: the attempt never reached RUNNING",
    }


def format_failures(diagnosed: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for group in diagnosed:
        jobs = group["jobs"]
        names = ", ".join(job["name"] or job["job_id"] for job in jobs[:10]) + (" ..." if len(jobs) > 10 else "")
        head = f"{len(jobs)} jobs failed with the same error" if len(jobs) > 1 else "1 job failed"
        lines.append(f"{head}: {names}")
        lines.append(f"  status reason: {printable(group['status_reason'] or 'none given')}")
        if not group["attempts"]:
            lines.append("  it never started (no attempt)")
        for attempt in group["attempts"]:
            lines.append(
                f"  attempt {attempt['attempt']} of {jobs[0]['name'] or jobs[0]['job_id']}: "
                f"exit code {attempt['exit_code']}, {printable(attempt['status_reason'] or 'no status reason')}"
                + (f", container: {printable(attempt['container_reason'])}" if attempt["container_reason"] else "")
            )
            if attempt["log_stream"]:
                where = (
                    attempt["log_stream"]
                    if attempt["log_group"] is None
                    else f"{attempt['log_group']} {attempt['log_stream']}"
                )
                lines.append(f"    log: {where}")
            if attempt["log_error"]:
                lines.append(f"    ({printable(attempt['log_error'])})")
            lines.extend(f"    | {printable(message)}" for message in attempt["log"])
    return lines


def judge_forgotten(
    record: RunRecord, latest: dict[str, JobDescription], storage: Storage, executor: Executor
) -> tuple[dict[str, JobDescription], str]:
    """Jobs the executor forgot, judged by what they left, as the ledger judges them.

    An ingestion job succeeded when its manifest is consumed; an export job when its files are at
    the destination; any other job (creation, registration, barrier) when a job that depends on
    it succeeded. A job nothing speaks for stays FORGOTTEN, which is not a success.
    """
    lost = {job.job_id for job in record.jobs if job.job_id and latest.get(job.job_id, {}).get("status") == FORGOTTEN}
    if not lost:
        return latest, ""
    judged = dict(latest)
    states = job_states(record, storage, executor) if record.kind == "ingest" else {}
    missing = set(check_exports(record, storage).missing) if record.kind == "export" else set()
    outputs = job_outputs(record) if record.kind == "export" else {}
    for job in reversed(record.jobs):  # dependents come later in a record: judge them first
        if job.job_id not in lost:
            continue
        if job.kind == "ingest":
            ok, why = states[job.key] == SUCCEEDED, "its manifest is consumed"
        elif job.kind == "export":
            ok, why = not missing & set(outputs.get(job.key, job.samples)), "its files are at the destination"
        else:
            after = [j for j in record.jobs if job.key in j.depends_on]
            ok, why = (
                any(judged.get(j.job_id or "", {}).get("status") == SUCCEEDED for j in after),
                "a job after it succeeded",
            )
        if ok:
            judged[job.job_id or ""] = {
                **judged[job.job_id or ""],
                "status": SUCCEEDED,
                "statusReason": f"forgotten; {why}",
            }
    succeeded = sum(judged[i]["status"] == SUCCEEDED for i in lost)
    return judged, f"; by what they left, {succeeded} succeeded and {len(lost) - succeeded} cannot be told"


def job_bytes(record: RunRecord, exports: ExportCheck | None) -> dict[str, int]:
    """Each job's bytes, by key: an ingestion job's inputs (recorded when it was submitted), an export job's
    delivered files (its part of the manifest); other jobs have none."""
    found = {job.key: job.bytes for job in record.jobs if job.bytes is not None}
    return found | (exports.bytes_by_job if exports is not None else {})


@dataclass
class Finished:
    report: Report
    lines: list[str]  # the human report
    document: dict[str, Any]  # the same as one JSON document
    record: RunRecord | None = None  # the run reported on
    latest: dict[str, JobDescription] = field(default_factory=dict)  # the jobs as judged, by id
    failures: list[dict[str, Any]] = field(default_factory=list)  # diagnose_failures: attempts and log tails
    job_bytes: dict[str, int] = field(default_factory=dict)  # job key -> bytes


def finish_report(
    record: RunRecord,
    latest: dict[str, JobDescription],
    storage: Storage,
    executor: Executor,
    *,
    instance_price: float,
    log_lines: int = DEFAULT_LOG_LINES,
) -> Finished:
    """The report on a finished run, as lines and as a JSON document."""
    lost = sum(d["status"] == FORGOTTEN for d in latest.values())
    latest, judged = judge_forgotten(record, latest, storage, executor)
    descriptions = [latest[i] for i in record.job_ids() if i in latest]
    exports = check_exports(record, storage) if record.kind == "export" else None
    report = build_report(descriptions, instance_price, record, exports, host_lost=executor.host_lost,
                          killed_for_memory=executor.killed_for_memory)  # fmt: skip
    report.forgotten, report.forgotten_judged = lost, judged
    report.memory_enforced = executor.enforces_memory()
    dependents = {failure["job_id"] for failure in report.failed if failure["cause"] == "dependency"}
    failures = diagnose_failures(executor, descriptions, log_lines, dependents) if report.failed else []
    lines = format_report(report, executor.words) + format_failures(failures)
    document = report_json(report, record, failures)
    return Finished(report, lines, document, record, latest, failures, job_bytes(record, exports))
