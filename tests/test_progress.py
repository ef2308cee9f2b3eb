"""How far a run has got: the plain and the terminal display, and the figures of one look."""

from __future__ import annotations

import io

from conftest import T0, recorded_run
from tiledbvcf_batch.progress import Progress, format_duration, is_finished, run_seconds, run_state


def test_plain_progress_prints_on_change_at_most_once_a_minute(clock):
    run = recorded_run({"create": 1, "ingest-1": 2})
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=False)
    latest = {j.job_id: {"status": "RUNNABLE"} for j in run.jobs}
    progress.show(latest)
    latest["create/1"] = {"status": "SUCCEEDED"}
    clock.sleep(30)
    progress.show(latest)  # changed, but within the minute of the last line: nothing yet
    clock.sleep(31)
    progress.show(latest)  # a minute later, and different from the last line printed: printed
    clock.sleep(61)
    progress.show(latest)  # due, but the same as the last line printed: nothing
    latest = {j.job_id: {"status": "SUCCEEDED"} for j in run.jobs}
    progress.show(latest, final=True)
    elapsed = [format_duration(T0 + d - run.created_epoch()) for d in (0, 61, 122)]
    assert out.getvalue().splitlines() == [
        f"[ingest-r1] 0/3 jobs finished, {elapsed[0]} since submission: array creation: RUNNABLE 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 1/3 jobs finished, {elapsed[1]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: RUNNABLE 2",
        f"[ingest-r1] 3/3 jobs finished, {elapsed[2]} since submission: array creation: SUCCEEDED 1 | "
        "ingestion 1: SUCCEEDED 2",
    ]


def screen(output: str, columns: int, rows: int = 40) -> list[str]:
    """What a terminal of that width shows after ``output``: the lines of a VT100 emulator's screen."""
    import pyte

    display = pyte.Screen(columns, rows)
    display.set_mode(pyte.modes.LNM)  # a newline returns the carriage too, as a tty's output does
    pyte.Stream(display).feed(output)
    return [line.rstrip() for line in display.display if line.strip()]


def test_terminal_progress_survives_narrow_terminals_and_keeps_warnings(clock):
    run = recorded_run({"create": 1, "ingest-1": 3})
    run.run_id = "ingest-20270115T080000Z-4f2a9c"  # the header wraps at 40 columns
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=True, refresh=False, width=40)
    running = {j.job_id: {"status": "RUNNING"} for j in run.jobs}
    progress.show(running)
    progress.say("WARNING: tiledbvcf-ingest-1-1 has waited 16m40s for capacity (CAPACITY:INSUFFICIENT)")
    clock.sleep(3725)
    progress.show({**running, "create/1": {"status": "SUCCEEDED"}})
    progress.say("STUCK: 1 job(s) are RUNNABLE with MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - too big")
    progress.show({j.job_id: {"status": "SUCCEEDED"} for j in run.jobs}, final=True)
    shown = screen(out.getvalue(), columns=40)
    text = " ".join(shown)
    # Both messages are still on screen, whole, in order, above the final drawing.
    assert text.index("WARNING: tiledbvcf-ingest-1-1") < text.index("STUCK: 1 job(s)") < text.index("4/4 jobs")
    assert text.count("has waited 16m40s") == 1
    # One drawing only: the last; the earlier ones were erased, wrapped lines and all.
    assert sum("jobs finished" in line for line in shown) == 1 and "0/4 jobs" not in text and "1/4 jobs" not in text
    assert shown[-2:] == ["  array creation: SUCCEEDED 1", "  ingestion 1: SUCCEEDED 3"]
    assert all(len(line) <= 40 for line in shown)


def test_plain_output_keeps_warnings_as_lines(clock):
    run = recorded_run({"export": 1}, kind="export")
    out = io.StringIO()
    progress = Progress(run, out, now=clock.now, tty=False)
    progress.show({"export/1": {"status": "RUNNING"}})
    progress.say("STUCK: something")
    assert out.getvalue().splitlines()[1] == "STUCK: something" and "\x1b" not in out.getvalue()


def test_durations_read_as_hours_minutes_and_seconds():
    assert [format_duration(s) for s in (0, 59.9, 61, 3600, 3725, -5)] == [
        "0m00s", "0m59s", "1m01s", "1h00m00s", "1h02m05s", "0m00s"
    ]  # fmt: skip


def test_a_run_is_running_until_every_job_ends_and_succeeded_only_if_all_did():
    run = recorded_run({"ingest-1": 2})
    stop = (run.created_epoch() + 90) * 1000
    ended = {"ingest-1/1": {"status": "SUCCEEDED", "attempts": [{"stoppedAt": stop - 30_000}]},
             "ingest-1/2": {"status": "FAILED", "attempts": [{"stoppedAt": stop}]}}  # fmt: skip
    running = {**ended, "ingest-1/2": {"status": "RUNNING", "attempts": []}}
    assert run_state(running) == "running" and not is_finished(running)
    assert run_state(ended) == "failed" and is_finished(ended)
    assert run_state({job_id: {"status": "SUCCEEDED"} for job_id in ended}) == "succeeded"
    assert run_seconds(run, ended) == 90.0  # from submission to the last stop
    assert run_seconds(run, {job_id: {"status": "RUNNABLE"} for job_id in ended}) is None
