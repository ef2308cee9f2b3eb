"""The executor seam: what submit, watch, report and ledger need from whatever runs the jobs.

Vocabulary: a *task* is a planned tiledbvcf invocation (``plan.Task``); a *job* is what an
executor runs. An executor turns a plan's tasks into its jobs (``submissions``), which may
add jobs of its own (AWS Batch's barrier jobs). Job states and attempts are described in the
shape of AWS Batch's DescribeJobs (``JobDescription``), the subset the domain reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from ..plan import Plan, Task

# FORGOTTEN is ours: AWS Batch forgets jobs some days after they end, and describes them no more.
FORGOTTEN = "FORGOTTEN"
JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", FORGOTTEN)
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", FORGOTTEN})
IN_FLIGHT = frozenset(JOB_STATUSES) - TERMINAL_STATUSES
NOT_STARTED = frozenset({"SUBMITTED", "PENDING", "RUNNABLE"})


class Container(TypedDict, total=False):
    exitCode: int
    reason: str
    logStreamName: str
    containerInstanceArn: str


class Attempt(TypedDict, total=False):
    startedAt: int  # ms since the epoch
    stoppedAt: int
    statusReason: str
    container: Container


class JobDescription(TypedDict, total=False):
    jobId: str
    jobName: str
    jobDefinition: str
    status: str
    statusReason: str
    attempts: list[Attempt]
    # Ours: an array child's status estimated from its parent's summary, not described itself.
    estimated: bool


class Throttled(Exception):
    """Describing was throttled part-way; ``partial`` holds what could be described."""

    def __init__(self, partial: dict[str, JobDescription]):
        super().__init__("throttled")
        self.partial = partial


@dataclass
class LogTail:
    group: str | None
    stream: str
    lines: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class CancelOutcome:
    cancelled: list[str] = field(default_factory=list)  # had not started
    terminated: list[str] = field(default_factory=list)  # were running
    finished: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class Executor(Protocol):
    kind: str  # recorded in RunRecord.executor
    poll_interval: tuple[float, float]  # the first interval between polls, and the backoff's ceiling

    def settings(self) -> dict[str, Any]:
        """What the run record keeps to find this executor's jobs again."""

    def where(self) -> str:
        """Where the jobs run, for the dry-run text."""

    def preflight(self) -> list[str]:
        """Problems that would make every job fail, found before anything is spent."""

    def submissions(self, plan: Plan) -> list[Task]:
        """The jobs to submit for ``plan``, in order. Pure; raises ValueError for a job the executor refuses."""

    def submit(self, job: Task, ids: dict[str, str], run_id: str) -> str:
        """Submit one job whose dependencies are in ``ids``; its id."""

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        """The state of each job the executor still knows; raises Throttled with the part it got."""

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        """Cancel jobs that have not started, stop running ones."""

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        """Stop these jobs whatever their state; what could not be stopped."""

    def pause(self, seconds: float) -> None:
        """Wait between two polls: at most ``seconds``, less when the executor knows a job changed."""

    def interrupted(self, ids: Sequence[str]) -> CancelOutcome | None:
        """Ctrl-C while waiting: None if the jobs go on without this process, else what was stopped."""

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        """The last ``lines`` lines an attempt logged; None if it never logged."""


def describe_fully(
    executor: Executor, ids: Sequence[str], *, tries: int = 6, sleep: Callable[[float], None] = time.sleep
) -> dict[str, JobDescription]:
    """Every job's description, waiting out throttling (botocore's own retries come first)."""
    delay = 2.0
    for _ in range(tries - 1):
        try:
            return executor.describe(ids)
        except Throttled:
            sleep(delay)
            delay *= 2
    return executor.describe(ids)


def order_problems(jobs: Sequence[Task]) -> list[str]:
    """What every executor refuses: an empty argument (or none), a dependency not submitted before."""
    problems = []
    earlier: set[str] = set()
    for job in jobs:
        if not job.args or any(not isinstance(arg, str) or arg == "" for arg in job.args):
            problems.append(f"job {job.name}: a command may not be empty or contain an empty string")
        missing = [key for key in job.after if key not in earlier]
        if missing:
            problems.append(f"job {job.name} depends on {', '.join(missing)}, not submitted before it")
        earlier.add(job.key)
    return problems


def forgotten(job_id: str, name: str = "") -> JobDescription:
    return {
        "jobId": job_id,
        "jobName": name,
        "status": FORGOTTEN,
        "statusReason": "no longer known to the executor (AWS Batch forgets jobs some days after they end)",
        "attempts": [],
    }
