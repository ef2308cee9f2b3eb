"""The executor seam: what submit, watch, report and ledger need from whatever runs the jobs.

Vocabulary: a *task* is a planned tiledbvcf invocation (``plan.Task``); a *job* is what an
executor runs (``jobs.Job``). An executor turns a plan's tasks into its jobs (``submissions``),
which may add jobs of its own (AWS Batch's barrier jobs) or run several tasks as one (its array
jobs). Job states and attempts are described in the shape of AWS Batch's DescribeJobs
(``JobDescription``), the subset the domain reads: those status words are the seam's own.
What a status or a reason *means* on one executor (a lost host, a job that will never start),
and how its texts name it, each executor says itself (``Words``, ``explain``, ``host_lost``,
``killed_for_memory``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from ..aws import Clients
from ..plan import Manifest, Plan, Stage
from ..storage import Storage
from .jobs import Job, RecordedJob, plain_manifest

# FORGOTTEN is ours: an executor may forget jobs some time after they end, and describe them no more.
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
    createdAt: int  # ms since the epoch: when it was submitted
    attempts: list[Attempt]
    tags: dict[str, str]  # what the submission tagged it with (its run: a cut-off submission's job is found by it)
    # Ours: an array child's status estimated from its parent's summary, not described itself.
    estimated: bool


def attempt_seconds(attempt: Attempt) -> float:
    """How long an attempt ran (0 if it never started or has not stopped)."""
    if "startedAt" not in attempt or "stoppedAt" not in attempt:
        return 0.0
    return max(0, attempt["stoppedAt"] - attempt["startedAt"]) / 1000.0


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


@dataclass(frozen=True)
class Words:
    """An executor's part of the neutral texts (reports, hints, errors), so that they name no executor."""

    name: str  # who runs the jobs, e.g. "AWS Batch"
    forgets: str  # when it stops describing a job, e.g. "forgets jobs some days after they end"
    detached: str  # where jobs go on when nobody waits, e.g. "on AWS Batch"
    stop_by_hand: str  # how a user stops a job without this tool, e.g. "aws batch terminate-job"
    host_loss: str  # the report's name for attempts whose host went away, e.g. "Spot interruptions (...)"


@dataclass(frozen=True)
class Stuck:
    """Why a job waits to start, as its executor explains it."""

    advice: str  # what to check or change
    forever: bool  # it will never start (else it waits for capacity, which may come: say so only if it lasts)


@dataclass(frozen=True)
class Proof:
    """What proves that a recorded ingestion task succeeded, even once its executor has forgotten the job."""

    uri: str  # an object the ledger looks for (one listing per directory)
    present_means_success: bool  # its presence proves it (a done marker), else its absence (a consumed manifest)


class Executor(Protocol):
    """What every executor does. The methods with a body are the default: an executor overrides what differs.

    Executors subclass this protocol, so that the defaults are theirs and a missing method is an error.
    """

    kind: str  # its name in the registry (executors/__init__.py), recorded in RunRecord.executor
    poll_interval: tuple[float, float]  # the first interval between polls, and the backoff's ceiling
    words: Words
    blocks: bool  # its jobs cannot outlive this process: the command waits for them, and signals stop them
    bills_instances: bool  # its jobs run on priced instances (else the cost estimate is 0 unless priced)

    def settings(self) -> dict[str, Any]:
        """What the run record keeps to find this executor's jobs again (its registry entry checks them)."""
        ...

    def where(self) -> str:
        """Where the jobs run, for the dry-run text."""
        ...

    def default_scratch(self) -> str:
        """The jobs' scratch directory (-d) when --scratch-path is not given."""
        ...

    def close(self) -> None:
        """The command is over: remove what the executor made for it (a temporary scratch directory)."""
        return None  # nothing, by default

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[list[int]]:
        """While a run is submitted and watched: the termination signals seen (none are caught by default)."""
        yield []

    def preflight(self) -> list[str]:
        """Problems that would make every job fail, found before anything is spent."""
        ...

    def scratch_problems(self, path: str | None) -> list[str]:
        """Problems of the jobs' scratch directory (--scratch-path), where this machine can see it."""
        return []  # on AWS Batch it is the container's, checked by its job

    def tool_problems(self, tools: Mapping[str, str]) -> list[str]:
        """Problems with the programs the jobs run besides tiledbvcf (``tools``: name -> the variable naming its
        path). None by default: they come with the jobs' image, which only the jobs can look into.
        """
        return []

    def submissions(self, plan: Plan) -> list[Job]:
        """The jobs to submit for ``plan``, in order. Pure; raises ValueError for a job the executor refuses.

        By default, one plain job per task, refused for what every executor refuses (``order_problems``).
        """
        jobs = [Job.of(task) for task in plan.tasks]
        problems = order_problems(jobs)
        if problems:
            raise ValueError("; ".join(problems))
        return jobs

    def stage_line(self, stage: Stage, ids: Sequence[str]) -> str:
        """What is said (on stderr) once a stage of the executor's own (``Kind.stages``) is submitted."""
        return f"Submitted {len(ids)} {stage.label} job(s)"

    def recorded(self, plan: Plan, jobs: Sequence[Job]) -> list[RecordedJob]:
        """The run record's entries for ``jobs``, in order (plain jobs by default: one entry each)."""
        return [RecordedJob.of(job) for job in jobs]

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
        """Submit one job whose dependencies are in ``ids``; its id."""
        ...

    def created_anyway(self, job: Job, run_id: str) -> list[str] | None:
        """After ``submit(job, ...)`` raised or was interrupted (Ctrl-C while its request was under way): the ids
        of the jobs it created all the same, found by what the executor names them by; None if it cannot tell.
        """
        return None  # by default the executor cannot tell: the rollback says that such a job may exist

    def find_by_hand(self, job: Job, run_id: str) -> str:
        """How a user finds (and stops) a job that ``submit(job, ...)`` may have created, if ``created_anyway``
        could not tell."""
        return f"look for a job named {job.name} and stop it ({self.words.stop_by_hand})"

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        """The state of each job the executor still knows; raises Throttled with the part it got."""
        ...

    def explain(self, description: JobDescription) -> Stuck | None:
        """Why a job that has not started may never start, or waits long; None when nothing is wrong."""
        return None

    def host_lost(self, attempt: Attempt) -> bool:
        """Whether an attempt ended because its host went away (then it is retried whatever --retries says)."""
        return False

    def killed_for_memory(self, attempt: Attempt) -> bool:
        """Whether an attempt was killed for using more memory than it had."""
        return False

    def enforces_memory(self) -> bool:
        """Whether a job gets no more than its --memory (then one killed for memory may be given more)."""
        return False

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        """Cancel jobs that have not started, stop running ones."""
        ...

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        """Stop these jobs whatever their state; what could not be stopped."""
        ...

    def pause(self, seconds: float) -> None:
        """Wait between two polls: at most ``seconds``, less when the executor knows a job changed."""
        time.sleep(seconds)

    def interrupted(self, ids: Sequence[str]) -> CancelOutcome | None:
        """Ctrl-C while waiting: None if the jobs go on without this process, else what was stopped."""
        return None

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        """The last ``lines`` lines an attempt logged; None if it never logged."""
        ...

    def proofs(self, jobs: Sequence[RecordedJob]) -> dict[str, Proof]:
        """The proof of success of each recorded ingestion task that has one, by key (the others: their status).

        By default its manifest, whose absence proves it: ``store --remove-sample-file`` deletes it only after
        a successful ingestion.
        """
        return {job.key: Proof(job.manifest, False) for job in jobs if job.manifest is not None}

    def resumed(self, jobs: Sequence[RecordedJob], storage: Storage) -> dict[str, Manifest]:
        """The manifest each recorded task with one resumes from, by key (its own, by default)."""
        return {job.key: plain_manifest(job) for job in jobs if job.manifest is not None}


@dataclass(frozen=True)
class Asked:
    """What a run asks of whichever executor runs it, beside that executor's own options."""

    vcpus: int  # each job's --vcpus
    register: bool | None  # --register (a legacy dataset), None for an export


@dataclass(frozen=True)
class Kind:
    """A kind of executor, as the registry (executors/__init__.py) knows it: how it is made, what it records."""

    name: str  # --executor's value, and the recorded executor's "kind"
    # From the command line: its own options (an instance of ``options``, None if it has none) and what the run asks.
    from_request: Callable[[Any, Asked, Clients], Executor]
    from_settings: Callable[[Mapping[str, Any], Clients], Executor]  # a run record's ``executor`` settings
    settings: Mapping[str, bool]  # the texts its recorded settings may hold: True for those it needs
    # The command line's options that ask for this executor again, from a run record's settings (for the
    # commands a report prints: resume a run, store its samples again).
    command_line: Callable[[Mapping[str, Any]], list[str]]
    local_paths: bool = False  # its jobs can read and write paths on this machine (else only s3:// URIs)
    blocks: bool = False  # its runs end when their jobs end: it always waits (--wait is implied)
    scratch: str = ""  # its jobs' scratch directory unless --scratch-path says (``default_scratch``), as --help says it
    # The stages its jobs may add to a plan's (AWS Batch's barriers), by kind, with their labels.
    stages: Mapping[str, str] = field(default_factory=dict)
    # Its command-line options: a frozen dataclass whose fields are options (``options.flag``), which the command
    # line offers beside --executor and gives to ``from_request``, typed. A field it needs has required_for=name.
    options: type | None = None


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


def order_problems(jobs: Sequence[Job]) -> list[str]:
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


def forgotten(job_id: str, name: str, words: Words) -> JobDescription:
    return {
        "jobId": job_id,
        "jobName": name,
        "status": FORGOTTEN,
        "statusReason": f"no longer known to the executor ({words.name} {words.forgets})",
        "attempts": [],
    }
