"""The commands printed to come back to a run: quoted, with the run's --profile, and the resume that finishes it."""

from __future__ import annotations

import shlex

from conftest import recorded_run
from hints import Hints, interrupted_message, what_next
from tiledbvcf_batch.executors.base import CancelOutcome


def test_the_command_that_finishes_an_interrupted_run_replaces_an_earlier_resume():
    stopped = CancelOutcome(terminated=["ingest-1/1"])
    for earlier in (["--resume", "ingest-r0"], ["--resume=ingest-r0"], []):
        command = ("python", "batch-ingest.py", "--samples", "my samples.txt", *earlier, "--executor", "local")
        message = interrupted_message(recorded_run({"ingest-1": 1}), stopped, Hints("work", command))
        again = message.split("to finish it: ")[1].splitlines()[0]
        assert shlex.split(again) == [*command[:4], "--executor", "local", "--resume", "ingest-r1"]
        assert message.splitlines()[-1].endswith(" --profile work")
    exported = interrupted_message(
        recorded_run({"export": 1}, kind="export"), stopped, Hints(None, ("python", "x.py", "a b"))
    )
    assert "to finish it: python x.py 'a b'\n" in exported
    assert "to finish it: run the same command again with --resume ingest-r1" in interrupted_message(
        recorded_run({"ingest-1": 1}), stopped
    )


def test_what_next_names_the_run_and_its_profile_in_each_command():
    run = recorded_run({"ingest-1": 1})
    lines = what_next(run, Hints("my work"))
    assert lines[0] == "What next:"
    for line, action in zip(lines[1:], ("status", "wait", "cancel"), strict=True):
        assert shlex.split(line.split(": ", 1)[1]) == [
            "python", "batch-runs.py", action, run.location(), "--profile", "my work"
        ]  # fmt: skip


def test_a_wait_stopped_without_stopping_the_jobs_says_how_to_reattach_and_cancel():
    batch = recorded_run({"ingest-1": 1})
    message = interrupted_message(batch, None, where_jobs="on AWS Batch")
    assert message.splitlines() == [
        "Stopped waiting. The jobs of run ingest-r1 keep running on AWS Batch.",
        f"  re-attach: python batch-runs.py wait {batch.location()}",
        f"  cancel:    python batch-runs.py cancel {batch.location()}",
    ]
    # The executor says where its jobs go on (its Words), the hint names no executor.
    local = interrupted_message(batch, None, where_jobs="in the process that runs them")
    assert "keep running in the process that runs them" in local
