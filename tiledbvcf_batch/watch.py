"""Waiting for a run: polling that scales, live progress, stuck jobs, Ctrl-C, cancel."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .executors.base import (
    JOB_STATUSES,
    TERMINAL_STATUSES,
    CancelOutcome,
    Executor,
    JobDescription,
    Stuck,
    Throttled,
    describe_fully,
    forgotten,
)
from .plan import Stage
from .record import RunRecord

Latest = dict[str, JobDescription]
# Waiting for capacity often ends by itself (instances being launched); say so only if it lasts.
CAPACITY_WARN_AFTER = 15 * 60
PLAIN_PROGRESS_EVERY = 60
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


def stage_counts(record: RunRecord, latest: Latest) -> dict[str, dict[str, int]]:
    """Jobs per status for each stage, in the run's stage order; unseen jobs count as SUBMITTED."""
    counts: dict[str, dict[str, int]] = {}
    for job in record.jobs:
        if not job.job_id:
            continue
        stage = counts.setdefault(job.stage, dict.fromkeys(JOB_STATUSES, 0))
        stage[latest.get(job.job_id, {}).get("status", "SUBMITTED")] += 1
    return counts


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items() if n)


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def progress_lines(record: RunRecord, latest: Latest, now: float) -> list[str]:
    counts = stage_counts(record, latest)
    total = sum(sum(c.values()) for c in counts.values())
    done = sum(c[status] for c in counts.values() for status in TERMINAL_STATUSES)
    took = run_seconds(record, latest)
    if done == total and took is not None:  # a finished run: how long it took, not how long ago it began
        lines = [f"[{record.run_id}] {done}/{total} jobs finished, took {format_duration(took)}"]
    else:
        elapsed = format_duration(now - record.created_epoch())
        lines = [f"[{record.run_id}] {done}/{total} jobs finished, {elapsed} since submission"]
    lines += [f"  {Stage.parse(stage).label}: {format_counts(c)}" for stage, c in counts.items()]
    return lines


def run_seconds(record: RunRecord, latest: Latest) -> float | None:
    """From submission to the last stop of any attempt; None while nothing has stopped."""
    stops = [a["stoppedAt"] for d in latest.values() for a in d.get("attempts", []) if "stoppedAt" in a]
    return max(stops) / 1000.0 - record.created_epoch() if stops else None


def run_state(latest: Latest) -> str:
    """running, succeeded or failed: what `batch-runs.py list` says of a run."""
    statuses = [d["status"] for d in latest.values()]
    if any(status not in TERMINAL_STATUSES for status in statuses):
        return "running"
    return "succeeded" if all(status == "SUCCEEDED" for status in statuses) else "failed"


@dataclass
class Progress:
    """Progress on a stream, and the messages that must stay on screen.

    On a terminal, a block redrawn in place (Rich's Live display: it measures wrapped lines, so a
    narrow terminal or a long header does not break the redraw, and the elapsed time moves every
    second, between polls). Messages (stuck jobs, warnings) are printed above the block and stay.
    Elsewhere (a log file, CI): one plain line when something changed, at most once a minute.
    """

    record: RunRecord
    stream: TextIO
    now: Callable[[], float] = time.time
    tty: bool = False
    refresh: bool = True  # a terminal's block redraws itself every second (tests draw by hand)
    width: int | None = None  # the terminal's width; None asks the terminal
    _latest: Latest = field(default_factory=dict)
    _live: Any = None
    _last_plain: float | None = None
    _last_text: str = ""

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text("\n".join(progress_lines(self.record, self._latest, self.now())), no_wrap=False)

    def show(self, latest: Latest, final: bool = False) -> None:
        self._latest = dict(latest)
        if self.tty:
            self._terminal().update(self, refresh=True)
            if final:
                self.close()
            return
        lines = progress_lines(self.record, latest, self.now())
        text = " | ".join(line.strip() for line in lines[1:])
        due = self._last_plain is None or self.now() - self._last_plain >= PLAIN_PROGRESS_EVERY
        if text != self._last_text and (final or due):
            self.stream.write(f"{lines[0]}: {text}\n")
            self.stream.flush()
            self._last_plain = self.now()
            self._last_text = text

    def say(self, message: str) -> None:
        """A line that stays: above the live block on a terminal."""
        if self._live is not None:
            self._live.console.print(message, markup=False, highlight=False, emoji=False)
            return
        self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()  # the last drawing stays on screen
            self._live = None

    def _terminal(self) -> Any:
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, force_terminal=True, width=self.width, highlight=False)
            self._live = Live(self, console=console, auto_refresh=self.refresh, refresh_per_second=1,
                              redirect_stdout=False, redirect_stderr=False)  # fmt: skip
            self._live.start()
        return self._live


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
class Hints:
    """What the printed commands need: the --profile of the run, and the command that started it.

    ``command`` is the script and its arguments as given (``python batch-ingest.py ...``): the
    command line layer passes it in, so that a Ctrl-C can print the command that finishes the run.
    """

    profile: str | None = None
    command: tuple[str, ...] = ()

    def runs(self, action: str, record: RunRecord) -> str:
        """A batch-runs.py command on the run, shell-quoted."""
        profile = ["--profile", self.profile] if self.profile else []
        return shlex.join(["python", "batch-runs.py", action, record.location(), *profile])

    def again(self, record: RunRecord) -> str:
        """The command that finishes an interrupted run: ingestion resumes it, export runs again."""
        if not self.command:
            resume = f" with --resume {record.run_id}" if record.kind == "ingest" else ""
            return f"run the same command again{resume}"
        words = without_option(list(self.command), "--resume")
        return shlex.join([*words, "--resume", record.run_id] if record.kind == "ingest" else words)


def without_option(words: list[str], name: str) -> list[str]:
    """``words`` without ``name VALUE`` or ``name=VALUE``."""
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == name:
            skip = True
        elif not word.startswith(name + "="):
            kept.append(word)
    return kept


def interrupted_message(
    record: RunRecord, stopped: CancelOutcome | None, hints: Hints | None = None, where_jobs: str = "elsewhere"
) -> str:
    """``where_jobs``: where jobs go on when nobody waits, in the executor's words (``Words.detached``)."""
    hints = hints or Hints()
    if stopped is None:
        return (
            f"Stopped waiting. The jobs of run {record.run_id} keep running {where_jobs}.\n"
            f"  re-attach: {hints.runs('wait', record)}\n"
            f"  cancel:    {hints.runs('cancel', record)}"
        )
    return (
        f"Stopped run {record.run_id}: {len(stopped.terminated)} running job(s) stopped, "
        f"{len(stopped.cancelled)} not started, {len(stopped.finished)} had finished (recorded).\n"
        f"  to finish it: {hints.again(record)}\n"
        f"  its state:    {hints.runs('status', record)}"
    )


def what_next(record: RunRecord, hints: Hints | None = None) -> list[str]:
    """The commands to come back to a run, shell-quoted, as dsub prints them."""
    hints = hints or Hints()
    return [
        "What next:",
        f"  status: {hints.runs('status', record)}",
        f"  wait:   {hints.runs('wait', record)}",
        f"  cancel: {hints.runs('cancel', record)}",
    ]


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
    hints: Hints | None = None,
) -> Latest | None:
    """Wait for a run with live progress on ``stream``; the last descriptions, or None on Ctrl-C."""
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
        progress.close()
        stopped = executor.interrupted(ids)
        progress.say("\n" + interrupted_message(record, stopped, hints, executor.words.detached))
        return None
    progress.show(latest, final=True)
    return latest


def cancel_run(record: RunRecord, executor: Executor) -> CancelOutcome:
    """Cancel the run's jobs that have not started and stop those that have; say which."""
    return executor.cancel(record.job_ids(), f"cancelled with batch-runs.py (run {record.run_id})")


def is_finished(latest: Latest) -> bool:
    return all(d["status"] in TERMINAL_STATUSES for d in latest.values())
