"""AWS Batch, and only here: job payloads and their limits, barrier jobs, pacing, describe, cancel, logs,
and what Batch's statuses and reasons mean.

moto's Batch enforces none of the limits below (see README, "Development"), so they are
enforced here, on every job, before the first upload of a run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from ..aws import Clients, aws_message, error_code
from ..commands import split_evenly
from ..inputs import Resources
from ..plan import Manifest, Plan, Stage
from ..storage import Storage, parse_location
from .arrays import (
    MAX_ARRAY_SIZE,
    as_arrays,
    children_by_parent,
    chunked,
    estimated_children,
    proofs_with_arrays,
    recorded_with_arrays,
    resumed_with_arrays,
    task_files,
)
from .base import (
    NOT_STARTED,
    TERMINAL_STATUSES,
    Asked,
    Attempt,
    CancelOutcome,
    Executor,
    JobDescription,
    Kind,
    LogTail,
    Proof,
    Stuck,
    Throttled,
    Words,
    order_problems,
)
from .batch_setup import (
    CAPACITY_ADVICE,
    MISCONFIGURATION_ADVICE,
    MISCONFIGURATION_DEFAULT,
    RUN_TAG,
    BatchOptions,
    check_job_definition,
    check_job_queue,
    jobs_named,
    runs_our_entrypoint,
)
from .jobs import Job, RecordedJob

MAX_DEPENDS_ON = 20
DESCRIBE_JOBS_MAX_IDS = 100
# The account-wide SubmitJob limit is 50/s; staying below it leaves room for other clients.
SUBMITS_PER_SECOND = 40
MAX_ATTEMPTS = 10
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# When --retries is 1, jobs still get this many attempts, but only for host loss (Spot).
HOST_LOSS_ATTEMPTS = 3
HOST_LOSS_REASON = "Host EC2"  # how an attempt's statusReason begins when its instance went away
# An attempt past its memory: "OutOfMemoryError: Container killed due to memory usage", exit code 137 (SIGKILL).
OUT_OF_MEMORY = "OutOfMemoryError"
# Barrier jobs' stage: their records have spelled it "gate" since the first release.
BARRIER = "gate"
# ``tiledbvcf --version`` does nothing and exits 0 on every release: a barrier job's command.
BARRIER_COMMAND = ("--version",)
BARRIER_RESOURCES = Resources(vcpus=1, memory=1024)
SCRATCH_PATH = "/data"  # the job definition's scratch volume (this project's template mounts it there)
DEFAULT_LOG_GROUP = "/aws/batch/job"
THROTTLING_CODES = ("TooManyRequestsException", "ThrottlingException")
WORDS = Words(
    name="AWS Batch",
    forgets="forgets jobs some days after they end",
    detached="on AWS Batch",
    stop_by_hand="aws batch terminate-job",
    host_loss=f"Spot interruptions ({HOST_LOSS_REASON} ...)",
)


def retry_strategy(retries: int) -> dict[str, Any]:
    """Batch retry strategy for ``--retries N``.

    With N = 1 a job is still retried, up to HOST_LOSS_ATTEMPTS attempts, when its host
    went away (Spot reclaim, lost instance); any other failure ends it. With N > 1 every
    failure is retried up to N attempts in all, host loss included.
    """
    if retries == 1:
        return {
            "attempts": HOST_LOSS_ATTEMPTS,
            "evaluateOnExit": [
                {"onStatusReason": f"{HOST_LOSS_REASON}*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        }
    return {"attempts": retries}


def resource_requirements(resources: Resources) -> list[dict[str, str]]:
    return [{"type": "VCPU", "value": str(resources.vcpus)}, {"type": "MEMORY", "value": str(resources.memory)}]


def with_barriers(jobs: Sequence[Job]) -> list[Job]:
    """The jobs in order, with barrier jobs wherever a job waits for more than MAX_DEPENDS_ON others.

    Each barrier waits for up to MAX_DEPENDS_ON jobs, over as many levels as needed, and the
    job then waits for the last level. Jobs that wait for the same set share the barriers.
    """
    stage_of = {job.key: job.stage for job in jobs}
    gated: list[Job] = []
    gathered: dict[tuple[str, ...], tuple[str, ...]] = {}
    for job in jobs:
        after = job.after
        if len(after) > MAX_DEPENDS_ON:
            if after not in gathered:
                barriers, gathered[after] = barrier_jobs(after, stage_of[after[0]].batch or 0, job.retries)
                gated.extend(barriers)
            job = replace(job, after=gathered[after])
        gated.append(job)
    return gated


def barrier_jobs(keys: tuple[str, ...], batch: int, retries: int) -> tuple[list[Job], tuple[str, ...]]:
    barriers: list[Job] = []
    level = 0
    while len(keys) > MAX_DEPENDS_ON:
        level += 1
        next_keys = []
        for i, group in enumerate(split_evenly(keys, -(-len(keys) // MAX_DEPENDS_ON)), start=1):
            key = f"{BARRIER}-{batch}-{level}-{i}"
            name = f"tiledbvcf-{BARRIER}-b{batch}-l{level}-{i}"
            barriers.append(
                Job(key, Stage(BARRIER, batch), name, BARRIER_COMMAND, BARRIER_RESOURCES, retries, tuple(group))
            )
            next_keys.append(key)
        keys = tuple(next_keys)
    return barriers, keys


def job_problems(job: Job) -> list[str]:
    """What Batch would refuse in this job, beyond what every executor refuses (``order_problems``)."""
    problems = []
    if not JOB_NAME_RE.match(job.name):
        problems.append(f"job name {job.name!r} is not a valid Batch job name")
    if len(job.after) > MAX_DEPENDS_ON:
        problems.append(f"job {job.name} depends on {len(job.after)} jobs; Batch allows {MAX_DEPENDS_ON}")
    if not 1 <= retry_strategy(job.retries)["attempts"] <= MAX_ATTEMPTS:
        problems.append(f"job {job.name}: retry attempts must be between 1 and {MAX_ATTEMPTS}")
    if job.is_array and len(job.tasks) > MAX_ARRAY_SIZE:
        problems.append(f"array job {job.name} has {len(job.tasks)} children; Batch allows 2 to {MAX_ARRAY_SIZE}")
    return problems


def payload(job: Job, ids: dict[str, str], job_queue: str, job_definition: str, run_id: str) -> dict[str, Any]:
    """The SubmitJob request for ``job`` (checked beforehand by ``job_problems``)."""
    request: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": {
            "command": list(job.args),
            "resourceRequirements": resource_requirements(job.resources),
        },
        "retryStrategy": retry_strategy(job.retries),
        "tags": {RUN_TAG: run_id, "tiledbvcf-batch-stage": str(job.stage)},
    }
    if job.after:
        request["dependsOn"] = [{"jobId": ids[key]} for key in job.after]
    if job.is_array:
        request["arrayProperties"] = {"size": len(job.tasks)}
    return request


@dataclass
class Pacer:
    """Keeps calls under a rate (calls per second) with an injectable clock and sleep."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate


@dataclass
class BatchExecutor(Executor):
    """Jobs on an AWS Batch job queue, with one job definition."""

    clients: Clients
    job_queue: str
    job_definition: str
    pacer: Pacer = field(default_factory=lambda: Pacer(SUBMITS_PER_SECOND))
    array_jobs: bool | None = None  # None: decided by preflight, from the job definition
    kind: str = "batch"
    poll_interval: tuple[float, float] = (10.0, 60.0)  # seconds: the first poll interval, and its backoff's ceiling
    words: Words = WORDS
    blocks: bool = False  # Ctrl-C stops waiting, not the jobs: they run on AWS Batch
    bills_instances: bool = True
    _log_groups: dict[str, str] = field(default_factory=dict)
    _final: dict[str, dict[str, JobDescription]] = field(default_factory=dict)  # finished arrays' children

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "job_queue": self.job_queue,
            "job_definition": self.job_definition,
            "array_jobs": bool(self.array_jobs),
        }

    def where(self) -> str:
        where = f"on queue {self.job_queue}, job definition {self.job_definition}"
        return f"{where}, as array jobs" if self.array_jobs else where

    def default_scratch(self) -> str:
        return SCRATCH_PATH

    def preflight(self) -> list[str]:
        batch, region = self.clients.batch, self.clients.region
        problems, definition = check_job_definition(batch, self.job_definition, region)
        if self.array_jobs is None:
            self.array_jobs = runs_our_entrypoint(definition)
        return check_job_queue(batch, self.job_queue, region) + problems

    def submissions(self, plan: Plan) -> list[Job]:
        jobs = with_barriers(as_arrays(plan) if self.array_jobs else [Job.of(task) for task in plan.tasks])
        problems = order_problems(jobs) + [problem for job in jobs for problem in job_problems(job)]
        if problems:
            raise ValueError("; ".join(problems))
        return jobs

    def stage_line(self, stage: Stage, ids: Sequence[str]) -> str:
        return f"Submitted {len(ids)} barrier job(s) after ingestion batch {stage.batch}"

    def recorded(self, plan: Plan, jobs: Sequence[Job]) -> list[RecordedJob]:
        return recorded_with_arrays(plan.run_prefix, jobs)

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
        self.pacer.wait()
        request = payload(job, ids, self.job_queue, self.job_definition, run_id)
        return self.clients.batch.submit_job(**request)["jobId"]

    def created_anyway(self, job: Job, run_id: str) -> list[str] | None:
        """SubmitJob has no idempotency token: found by name on the queue, told apart by the run's tag."""
        try:
            found, throttled = self.described(jobs_named(self.clients.batch, self.job_queue, job.name))
        except Exception:
            return None
        return None if throttled else [key for key, one in found.items() if one.get("tags", {}).get(RUN_TAG) == run_id]

    def find_by_hand(self, job: Job, run_id: str) -> str:
        return (f"find it with aws batch list-jobs --job-queue {self.job_queue} --filters name=JOB_NAME,values="
                f"{job.name} (tagged {RUN_TAG}={run_id}), stop it with aws batch terminate-job")  # fmt: skip

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        """The jobs' states. Array children cost one description of their parent per call while it runs."""
        children = children_by_parent(ids)
        plain = [job_id for job_id in ids if ":" not in job_id]
        found, throttled = self.described(plain + [parent for parent in children if parent not in self._final])
        for parent, wanted in children.items():
            found.update(self.children_of(parent, found.pop(parent, None), wanted))
        if throttled:
            raise Throttled(found)
        return found

    def described(self, ids: Sequence[str]) -> tuple[dict[str, JobDescription], bool]:
        """DescribeJobs, 100 ids a call; whether a call was throttled (the rest is still described)."""
        found: dict[str, JobDescription] = {}
        throttled = False
        for group in chunked(list(ids), DESCRIBE_JOBS_MAX_IDS):
            try:
                described = self.clients.batch.describe_jobs(jobs=list(group))["jobs"]
            except ClientError as error:
                if error_code(error) not in THROTTLING_CODES:
                    raise
                throttled = True
                continue
            found.update((description["jobId"], description) for description in described)
        return found, throttled

    def children_of(
        self, parent: str, description: JobDescription | None, wanted: Sequence[str]
    ) -> dict[str, JobDescription]:
        """The wanted children of an array: estimated from its status summary while it runs, described once it ends.

        Described, not listed: the report's cost needs each child's instance, which ListJobs does not give.
        """
        if parent not in self._final:
            if description is None:
                return {}  # not described (throttled, or forgotten)
            size, summary = array_summary(description)
            if not size or sum(summary.get(status, 0) for status in TERMINAL_STATUSES) < size:
                return estimated_children(parent, description, size, summary, wanted)
            described, throttled = self.described([f"{parent}:{index}" for index in range(size)])
            if throttled:  # described again at the next poll
                return {job_id: described[job_id] for job_id in wanted if job_id in described}
            self._final[parent] = described
        final = self._final[parent]
        return {job_id: final[job_id] for job_id in wanted if job_id in final}

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        latest = self.describe(ids)
        outcome = CancelOutcome()
        unfinished_arrays: set[str] = set()
        for job_id in ids:
            status = latest.get(job_id, {}).get("status")
            parent = job_id.partition(":")[0] if ":" in job_id else None
            if status in TERMINAL_STATUSES:
                outcome.finished.append(job_id)
            elif status is None:
                outcome.unknown.append(job_id)
            elif parent is not None:
                unfinished_arrays.add(parent)  # stopping the parent stops its children
                (outcome.cancelled if status in NOT_STARTED else outcome.terminated).append(job_id)
            elif status in NOT_STARTED:
                self.clients.batch.cancel_job(jobId=job_id, reason=reason)
                outcome.cancelled.append(job_id)
            else:
                self.clients.batch.terminate_job(jobId=job_id, reason=reason)
                outcome.terminated.append(job_id)
        for parent in sorted(unfinished_arrays):
            # terminate_job cancels the children that have not started and stops the running ones.
            self.clients.batch.terminate_job(jobId=parent, reason=reason)
        return outcome

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        """Every job is tried, whatever stopped the one before (expired credentials raise no ClientError)."""
        left = []
        for job_id in ids:
            try:
                # terminate_job cancels jobs that have not started and stops the others.
                self.clients.batch.terminate_job(jobId=job_id, reason=reason)
            except Exception as error:
                left.append(f"job {job_id}: {aws_message(error)}")
        return left

    def explain(self, description: JobDescription) -> Stuck | None:
        """A RUNNABLE job's MISCONFIGURATION reason (it will never start) or CAPACITY reason (it may)."""
        reason = description.get("statusReason", "") if description["status"] == "RUNNABLE" else ""
        if reason.startswith("MISCONFIGURATION:"):
            # Batch writes "MISCONFIGURATION:CODE - text": the code is what the advice is for.
            code = reason.split(":", 1)[1].split(" - ", 1)[0].strip()
            return Stuck(MISCONFIGURATION_ADVICE.get(code, MISCONFIGURATION_DEFAULT), forever=True)
        if reason.startswith("CAPACITY:"):
            return Stuck(CAPACITY_ADVICE, forever=False)
        return None

    def host_lost(self, attempt: Attempt) -> bool:
        return attempt.get("statusReason", "").startswith(HOST_LOSS_REASON)

    def killed_for_memory(self, attempt: Attempt) -> bool:
        reasons = (attempt.get("statusReason", ""), attempt.get("container", {}).get("reason", ""))
        return any(OUT_OF_MEMORY in reason for reason in reasons)

    def enforces_memory(self) -> bool:
        return True  # the job's MEMORY is its container's hard limit

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        stream = attempt.get("container", {}).get("logStreamName")
        if not stream:
            return None
        group = self.log_group_of(job.get("jobDefinition", ""))
        tail = LogTail(group, stream)
        if lines > 0:
            tail.lines, tail.error = tail_log(self.clients.logs, group, stream, lines)
        return tail

    def log_group_of(self, definition_arn: str) -> str:
        """The job definition's awslogs group, else Batch's default group."""
        if definition_arn not in self._log_groups:
            group = DEFAULT_LOG_GROUP
            try:
                found = self.clients.batch.describe_job_definitions(jobDefinitions=[definition_arn])["jobDefinitions"]
            except ClientError:
                found = []
            for definition in found:
                config = definition.get("containerProperties", {}).get("logConfiguration", {})
                if config.get("logDriver") == "awslogs":
                    group = config.get("options", {}).get("awslogs-group", DEFAULT_LOG_GROUP)
            self._log_groups[definition_arn] = group
        return self._log_groups[definition_arn]

    def proofs(self, jobs: Sequence[RecordedJob]) -> dict[str, Proof]:
        return proofs_with_arrays(jobs)

    def resumed(self, jobs: Sequence[RecordedJob], storage: Storage) -> dict[str, Manifest]:
        """Array children get their samples back from their task files (one read each)."""
        files = task_files(jobs)
        bodies = {uri: storage.read_bytes(parse_location(uri, "task file")).decode("utf-8") for uri in files}
        return resumed_with_arrays(jobs, bodies)


def array_summary(description: JobDescription) -> tuple[int, dict[str, int]]:
    properties: dict[str, Any] = description.get("arrayProperties", {})  # type: ignore[assignment]
    return int(properties.get("size", 0)), dict(properties.get("statusSummary", {}))


def tail_log(logs: Any, group: str, stream: str, lines: int) -> tuple[list[str], str | None]:
    """The last ``lines`` messages of a log stream, or why they cannot be read."""
    try:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return [], f"log stream {stream} not found in log group {group}"
        return [], f"cannot read log stream {stream} ({aws_message(error)})"
    return [event["message"].rstrip("\n") for event in events.get("events", [])][-lines:], None


# -- The registry's entry (executors/__init__.py) ---------------------------------------------------


def from_request(given: BatchOptions, asked: Asked, clients: Clients) -> BatchExecutor:
    """From --job-queue, --job-definition and --array-jobs (None: the job definition decides, in preflight)."""
    return BatchExecutor(clients, given.job_queue or "", given.job_definition or "", array_jobs=given.array_jobs)


def from_settings(settings: Mapping[str, Any], clients: Clients) -> BatchExecutor:
    queue, definition = settings.get("job_queue") or "", settings.get("job_definition") or ""
    return BatchExecutor(clients, queue, definition, array_jobs=bool(settings.get("array_jobs")))


def command_line(settings: Mapping[str, Any]) -> list[str]:
    """--executor batch is the default: the queue and the definition say it all (placeholders if not recorded)."""
    return ["--job-queue", str(settings.get("job_queue") or "QUEUE"),
            "--job-definition", str(settings.get("job_definition") or "DEFINITION")]  # fmt: skip


KIND = Kind("batch", from_request, from_settings, settings={"job_queue": False, "job_definition": False},
            command_line=command_line, scratch=SCRATCH_PATH, stages={BARRIER: "batch barrier"},
            options=BatchOptions)  # fmt: skip
