"""A stub executor and a timeline: submit, watch and report tested with no executor of ours and no emulator.

As dsub's tests drive their fake provider with a chronology, a ``Timeline`` says what each job is at
each moment, and time moves only when the code under test waits (``Timeline.sleep``, which is also the
stub's ``pause``). What the stub says of a job is what the timeline says at the current time: a test
reads as the run it describes ("j1 runs from 0 and fails at 90 s"), not as a list of poll rounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tiledbvcf_batch.executors.base import (
    FORGOTTEN,
    NOT_STARTED,
    TERMINAL_STATUSES,
    Attempt,
    CancelOutcome,
    Executor,
    JobDescription,
    LogTail,
    Stuck,
    Words,
)
from tiledbvcf_batch.executors.jobs import Job

# 2027-01-15T08:00:00Z, conftest's T0: when its recorded_run was created, so that progress reads from 0 s.
START = 1_800_000_000.0
WORDS = Words(
    name="the stub",
    forgets="forgets jobs when the timeline says so",
    detached="on the stub",
    stop_by_hand="stub-stop JOB_ID",
    host_loss="host losses (stub)",
)
HOST_LOST = "the stub lost the host"


@dataclass
class Timeline:
    """Time that moves only when slept, and each job's state from the moment the timeline gives it.

    ``at(seconds, job_id, status, **fields)`` from ``start + seconds`` on; before its first entry a
    job known to the stub is SUBMITTED. A job whose state is FORGOTTEN is described no more.
    """

    start: float = START
    time: float = 0.0
    slept: list[float] = field(default_factory=list)
    entries: dict[str, list[tuple[float, dict[str, Any]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.time = self.start

    def at(self, seconds: float, job_id: str, status: str, **fields: Any) -> Timeline:
        self.entries.setdefault(job_id, []).append((self.start + seconds, {"status": status, **fields}))
        self.entries[job_id].sort(key=lambda entry: entry[0])
        return self

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds

    def state(self, job_id: str) -> dict[str, Any] | None:
        """The job's last state up to now, or None before its first."""
        reached = [fields for when, fields in self.entries.get(job_id, []) if when <= self.time]
        return reached[-1] if reached else None


class StubExecutor(Executor):
    """Runs nothing: it answers from a timeline, and records what was asked of it.

    ``refuse``: the key of a job whose submission raises (after the jobs before it were submitted);
    ``logs``: what each job id logged; ``problems``: what preflight finds.
    """

    kind = "stub"
    poll_interval = (10.0, 60.0)
    words = WORDS
    blocks = False
    bills_instances = False

    def __init__(
        self,
        timeline: Timeline,
        *,
        refuse: str | None = None,
        logs: dict[str, list[str]] | None = None,
        problems: Sequence[str] = (),
    ):
        self.timeline = timeline
        self.refuse = refuse
        self.logs = logs or {}
        self.problems = list(problems)
        self.submitted: list[tuple[str, str, tuple[str, ...]]] = []  # (key, id, the ids it waits for)
        self.described: list[list[str]] = []
        self.cancelled: list[str] = []
        self.terminated: list[str] = []

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def where(self) -> str:
        return "on the stub"

    def default_scratch(self) -> str:
        return "/stub-scratch"

    def preflight(self) -> list[str]:
        return list(self.problems)

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
        if job.key == self.refuse:
            raise RuntimeError(f"the stub refused {job.key}")
        job_id = f"id-{job.key}"
        self.submitted.append((job.key, job_id, tuple(ids[key] for key in job.after)))
        return job_id

    def known(self, job_id: str) -> bool:
        return job_id in self.timeline.entries or any(job_id == submitted for _, submitted, _ in self.submitted)

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        self.described.append(list(ids))
        described: dict[str, JobDescription] = {}
        for job_id in ids:
            state = self.timeline.state(job_id) or {"status": "SUBMITTED"}
            if self.known(job_id) and state["status"] != FORGOTTEN:
                described[job_id] = {"jobId": job_id, "jobName": f"name-{job_id}", "attempts": [], **state}  # type: ignore[typeddict-item]
        return described

    def explain(self, description: JobDescription) -> Stuck | None:
        reason = description.get("statusReason", "")
        if reason.startswith("never: "):
            return Stuck(reason.removeprefix("never: "), forever=True)
        if reason.startswith("waits: "):
            return Stuck(reason.removeprefix("waits: "), forever=False)
        return None

    def host_lost(self, attempt: Attempt) -> bool:
        return attempt.get("statusReason") == HOST_LOST

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        outcome = CancelOutcome()
        for job_id, description in self.describe(ids).items():
            status = description["status"]
            if status in TERMINAL_STATUSES:
                outcome.finished.append(job_id)
            elif status in NOT_STARTED:
                outcome.cancelled.append(job_id)
            else:
                outcome.terminated.append(job_id)
        outcome.unknown = [job_id for job_id in ids if not self.known(job_id)]
        self.cancelled += outcome.cancelled + outcome.terminated
        return outcome

    def created_anyway(self, job: Job, run_id: str) -> list[str] | None:
        return [job_id for key, job_id, _ in self.submitted if key == job.key]  # it knows what it took in

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        self.terminated += ids
        return []

    def pause(self, seconds: float) -> None:
        self.timeline.sleep(seconds)

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        logged = self.logs.get(job.get("jobId", ""))
        return LogTail("stub-logs", f"stream-{job.get('jobId')}", logged[-lines:]) if logged is not None else None


def attempt_at(
    timeline: Timeline, start: float, stop: float, instance: str, reason: str = "Essential container in task exited",
    code: int | None = 0,
) -> Attempt:  # fmt: skip
    """An attempt from ``start`` to ``stop`` seconds into the timeline, on ``instance`` (``code`` None: none given)."""
    at = timeline.start * 1000
    container: dict[str, Any] = {"containerInstanceArn": instance} | ({} if code is None else {"exitCode": code})
    attempt: dict[str, Any] = {"startedAt": at + start * 1000, "stoppedAt": at + stop * 1000, "statusReason": reason,
                               "container": container}  # fmt: skip
    return attempt  # type: ignore[return-value]  # the times are floats, as the timeline's


def known_run(timeline: Timeline) -> Timeline:
    """A run of known timings: creation 0-60 s on i-1; ingestion 1-1 lost its host (i-2, 60-1860 s) and succeeded
    on i-3 (1860-3660 s); ingestion 1-2 failed with exit code 1 on i-1 (60-660 s)."""
    timeline.at(0, "id-create", "RUNNING").at(60, "id-create", "SUCCEEDED",
                                              attempts=[attempt_at(timeline, 0, 60, "i-1")])  # fmt: skip
    timeline.at(60, "id-ingest-1-1", "RUNNING").at(3660, "id-ingest-1-1", "SUCCEEDED", attempts=[
        attempt_at(timeline, 60, 1860, "i-2", HOST_LOST, None), attempt_at(timeline, 1860, 3660, "i-3")])  # fmt: skip
    timeline.at(60, "id-ingest-1-2", "RUNNING").at(660, "id-ingest-1-2", "FAILED", statusReason="exited 1",
                                                   attempts=[attempt_at(timeline, 60, 660, "i-1", code=1)])  # fmt: skip
    return timeline
