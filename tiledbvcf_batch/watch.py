"""Waiting for a run: polling that scales, stuck jobs, Ctrl-C, cancel. The display is ``progress``'s."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .executors.base import (
    TERMINAL_STATUSES,
    CancelOutcome,
    Executor,
    JobDescription,
    Stuck,
    Throttled,
    describe_fully,
    forgotten,
)
from .progress import Latest, Progress, format_duration
from .record import RunRecord

# A CAPACITY reason often clears by itself (instances being launched); say so only if it lasts.
CAPACITY_WARN_AFTER = 15 * 60
EXIT_INTERRUPTED = 130
FORGOTTEN_AFTER_ROUNDS = 3  # polls in a row that do not describe a job: the executor has forgotten it


def wait_for_jobs(
    executor: Executor,
    job_ids: Sequence[str],
    *,
    interval: float = 10.0,
    max_interval: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    observe: Callable[[Latest], None] | None = None,
    names: dict[str, str] | None = None,
    groups: Sequence[Sequence[str]] = (),
) -> Latest:
    """Poll until every job is terminal; return the last description of each job.

    Only unfinished jobs are polled. The interval backs off while nothing happens that a user
    waits for (a job failed, a stage ``groups`` names ended): on a long run jobs change state all
    the time, and resetting on every change would poll at the shortest interval for hours.
    Throttling slows polling down; it never ends the wait. An estimated status (an array child
    while its array runs) is polled again until the child itself is described. ``observe(latest)``
    is called after every round.
    """
    latest: Latest = {}
    pending = list(job_ids)
    unseen: dict[str, int] = {}  # rounds in a row a job was not described at all
    groups = groups or [list(job_ids)]
    delay = interval
    first = True
    while pending:
        throttled = False
        try:
            described = executor.describe(pending)
        except Throttled as partial:
            described, throttled = partial.partial, True
        if not throttled:
            for job_id in pending:
                unseen[job_id] = 0 if job_id in described else unseen.get(job_id, 0) + 1
                if unseen[job_id] >= FORGOTTEN_AFTER_ROUNDS:
                    described[job_id] = forgotten(job_id, (names or {}).get(job_id, ""), executor.words)
        before = {job_id: d["status"] for job_id, d in latest.items()}
        latest.update(described)
        pending = [i for i in pending if not settled(latest.get(i))]
        if observe is not None:
            observe(latest)
        if pending:
            worth_a_look = milestone(before, latest, groups) and not throttled
            delay = interval if first or worth_a_look else min(delay * 2, max_interval)
            first = False
            sleep(delay)
    return latest


def settled(description: JobDescription | None) -> bool:
    return description is not None and description["status"] in TERMINAL_STATUSES and not description.get("estimated")


def milestone(before: dict[str, str], latest: Latest, groups: Sequence[Sequence[str]]) -> bool:
    """Something a user waits for happened since ``before``: a stage has more failed jobs, or a stage ended.

    Counted per stage, not per job: an array child's status is estimated from its array's counts, and
    which child is said to have failed may change from one poll to the next while the count does not.
    """

    def count(statuses: Callable[[str], str | None], group: Sequence[str], wanted: frozenset[str]) -> int:
        return sum(1 for job_id in group if statuses(job_id) in wanted)

    now = lambda job_id: latest.get(job_id, {}).get("status")  # noqa: E731
    failed, terminal = frozenset({"FAILED"}), frozenset(TERMINAL_STATUSES)
    for group in groups:
        if count(now, group, failed) > count(before.get, group, failed):
            return True
        if count(now, group, terminal) == len(group) > count(before.get, group, terminal):
            return True
    return False


def describe_now(executor: Executor, record: RunRecord) -> Latest:
    """One look at every job of a run; a job the executor does not describe at all has been forgotten."""
    latest = describe_fully(executor, record.job_ids())
    names = record.names()
    words = executor.words
    return {job_id: latest.get(job_id) or forgotten(job_id, names[job_id], words) for job_id in record.job_ids()}


@dataclass
class StuckJobs:
    """Notices jobs that will never start, or wait long for capacity, as the executor explains them."""

    explain: Callable[[JobDescription], Stuck | None]  # Executor.explain
    now: Callable[[], float] = time.time
    where: str = "..."  # the run's record, for the cancel command
    reported: set[str] = field(default_factory=set)
    capacity_since: dict[str, float] = field(default_factory=dict)

    def check(self, latest: Latest, names: dict[str, str]) -> list[str]:
        messages = []
        for job_id, description in latest.items():
            stuck = self.explain(description)
            status, reason = description["status"], description.get("statusReason", "")
            name = names.get(job_id, job_id)
            if stuck is not None and stuck.forever and reason not in self.reported:
                self.reported.add(reason)
                count = sum(1 for d in latest.values() if d.get("statusReason") == reason and d["status"] == status)
                messages.append(
                    f"STUCK: {count} job(s) (e.g. {name}) are {status} with {reason} and will never start: "
                    f"{stuck.advice}. Cancel the run with: python batch-runs.py cancel {shlex.quote(self.where)}"
                )
            if stuck is not None and not stuck.forever:
                since = self.capacity_since.setdefault(job_id, self.now())
                key = f"capacity:{reason}"
                if self.now() - since >= CAPACITY_WARN_AFTER and key not in self.reported:
                    self.reported.add(key)
                    waited = format_duration(self.now() - since)
                    messages.append(f"WARNING: {name} has waited {waited} for capacity ({reason}): {stuck.advice}")
            else:
                self.capacity_since.pop(job_id, None)
        return messages


@dataclass(frozen=True)
class Interrupted:
    """A Ctrl-C ended the wait: what the executor stopped, or None when the jobs keep running without us."""

    stopped: CancelOutcome | None


def watch_run(
    record: RunRecord,
    executor: Executor,
    *,
    stream: TextIO,
    interval: float = 10.0,
    max_interval: float = 60.0,
    sleep: Callable[[float], None] | None = None,
    now: Callable[[], float] = time.time,
    tty: bool | None = None,
    refresh: bool = True,
) -> Latest | Interrupted:
    """Wait for a run with live progress on ``stream``: the last descriptions, or, on Ctrl-C, what was stopped."""
    tty = stream.isatty() if tty is None else tty
    progress = Progress(record, stream, now=now, tty=tty, refresh=refresh)
    stuck = StuckJobs(executor.explain, now=now, where=record.location())
    names = record.names()
    ids = record.job_ids()
    stages: dict[str, list[str]] = {}
    for job in record.jobs:
        if job.job_id:
            stages.setdefault(job.stage, []).append(job.job_id)
    progress.say(f"Waiting on {len(ids)} jobs of run {record.run_id} to terminate...")

    def observe(latest: Latest) -> None:
        progress.show(latest)
        for message in stuck.check(latest, names):
            progress.say(message)

    try:
        latest = wait_for_jobs(
            executor,
            ids,
            sleep=sleep or executor.pause,
            interval=interval,
            max_interval=max_interval,
            observe=observe,
            names=names,
            groups=list(stages.values()),
        )
    except KeyboardInterrupt:
        progress.close()  # the caller says what to do next, below the last drawing
        return Interrupted(executor.interrupted(ids))
    progress.show(latest, final=True)
    return latest


def cancel_run(record: RunRecord, executor: Executor) -> CancelOutcome:
    """Cancel the run's jobs that have not started and stop those that have; say which."""
    return executor.cancel(record.job_ids(), f"cancelled with batch-runs.py (run {record.run_id})")
