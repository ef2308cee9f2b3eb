"""The commands printed to come back to a run (status, wait, cancel, resume): the command-line layer's hints.

They name ``batch-runs.py`` commands and the script as it was started, so they live beside
``common.py``, not in the package: the domain reports what happened (``watch.Interrupted``),
and the scripts say what to do next.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from tiledbvcf_batch.executors.base import CancelOutcome
from tiledbvcf_batch.inventory import finish_commands
from tiledbvcf_batch.record import RunRecord


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

    def retry(self, record: RunRecord) -> str:
        """The command that retries a finished run's failed jobs: ingestion resumes (--resume RUN_ID), export runs
        again. From the command that started it where known (``command``), else rebuilt from its record."""
        if self.command:
            return self.again(record)
        if record.kind == "ingest":
            return finish_commands(record, record.target)[0]
        return "the same python batch-export.py command again"


def retry_line(record: RunRecord, hints: Hints | None = None) -> str:
    """The line after the report of a run whose jobs failed: how to retry them."""
    what = "resume it (only its unfinished jobs run)" if record.kind == "ingest" else "export again"
    return f"To retry the failed jobs, {what}: {(hints or Hints()).retry(record)}"


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
