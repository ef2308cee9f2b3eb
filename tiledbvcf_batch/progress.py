"""How far a run has got: jobs per status and stage, durations, and the live display of both.

Display only, no polling: ``watch`` polls and hands each round's descriptions to ``Progress``;
``report`` and ``batch-runs.py`` (status, list) show the same figures of one look.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from .executors.base import JOB_STATUSES, TERMINAL_STATUSES, JobDescription
from .plan import Stage
from .record import RunRecord

Latest = dict[str, JobDescription]  # the last description of each job, by job id
PLAIN_PROGRESS_EVERY = 60


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


def is_finished(latest: Latest) -> bool:
    return all(d["status"] in TERMINAL_STATUSES for d in latest.values())


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
