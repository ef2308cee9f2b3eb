"""Processes of this machine, told apart by their start time: a pid is reused, a (pid, start time) is not.

The local executor records each job's process id and start time, so that a later command finds a
job whose script was killed while its tiledbvcf still runs, and can stop it; the entrypoint notes
which process holds a job's lock. Here too: stopping a job's process group, and this process's
termination signals taken as Ctrl-C while it runs jobs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any


def process_state(pid: int) -> tuple[str, int, int] | None:
    """State letter (R, S, Z...), process group and start time of process ``pid`` (``/proc/<pid>/stat``
    fields 3, 5 and 22); None if there is none. A pid is reused; a pid and its start time are not.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces and ")"
    return fields[0], int(fields[2]), int(fields[19])


def process_start(pid: int) -> int | None:
    state = process_state(pid)
    return state[2] if state else None


def process_exists(pid: int, start: int | None = None) -> bool:
    """Process ``pid`` exists; with ``start`` (its recorded start time): it is still that process, and runs."""
    if start is not None:
        return process_runs(pid, start)
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def process_runs(pid: int, start: int) -> bool:
    """Process ``pid`` started at ``start`` runs (a zombie does not)."""
    state = process_state(pid)
    return state is not None and state[2] == start and state[0] not in ("Z", "X")


def group_runs(pgid: int) -> bool:
    """Some process of group ``pgid`` runs: a job's tiledbvcf may outlive the entrypoint that leads its group."""
    for name in os.listdir("/proc"):
        state = process_state(int(name)) if name.isdigit() else None
        if state is not None and state[1] == pgid and state[0] not in ("Z", "X"):
            return True
    return False


def job_runs(pid: int, start: int | None) -> bool:
    """A job's process (``pid``, started at ``start``), or the process group it leads, still runs.

    Another process with the pid (another start time) means the job's group is gone: Linux does not
    hand out a pid while a process group of that id lives.
    """
    if start is None:
        return False  # a state written before start times were recorded: the job cannot be told apart
    state = process_state(pid)
    if state is not None and (state[2] != start or state[0] not in ("Z", "X")):
        return state[2] == start
    return group_runs(pid)


def tagged_group(name: str, value: str) -> tuple[int, int] | None:
    """The process group, and its leader's start time (0 if it has ended), of the processes whose environment holds
    ``name=value``: a job's, found even if its pid was never recorded (its script killed as it started it)."""
    wanted = f"{name}={value}".encode()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                tagged = entry.isdigit() and wanted in handle.read().split(b"\0")
        except OSError:
            continue
        state = process_state(int(entry)) if tagged else None
        if state is not None and state[0] not in ("Z", "X"):
            return state[1], process_start(state[1]) or 0
    return None


def stop_jobs(jobs: Sequence[tuple[int, int | None]], grace: float, step: float = 0.05) -> None:
    """SIGTERM the process group of each job (pid, start time) that still runs; SIGKILL those left after ``grace``."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        running = [job for job in jobs if job_runs(*job)]
        for pid, _ in running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signum)
        deadline = time.monotonic() + grace
        while any(job_runs(*job) for job in running) and time.monotonic() < deadline:
            time.sleep(step)


def kill_group(process: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> None:
    """SIGTERM the job's process group: tiledbvcf stops at once on SIGTERM (one SIGINT it ignores)."""
    if process.returncode is not None:  # reaped (by its waiter thread): its group id may be another's now
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def wait_or_kill(processes: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """Wait for processes sent SIGTERM, at most ``grace`` seconds in all; then SIGKILL their groups."""
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(process, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[list[int]]:
    """SIGTERM and SIGHUP as Ctrl-C while jobs of this process run: the jobs are stopped and recorded; the
    signals seen. The first signal interrupts; later ones are only noted, so that stopping the jobs is not
    cut short. Only the main thread may set handlers: elsewhere nothing is caught.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def interrupt(signum: int, frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
