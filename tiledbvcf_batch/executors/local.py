"""This machine: the jobs run as processes, each with exactly the arguments its Batch job would carry.

Each job runs through the image's entrypoint (``image/entrypoint.py``), as on Batch: a scratch
directory of its own under its ``-d``, an export to ``s3://`` uploaded and checked, and before a
store the job check (no sample stored twice; one store process of a manifest at a time).
Dependencies are honoured as Batch honours them (a failed job fails its dependents without
running them), and ``--retries N`` gives N attempts (a local job has no host to lose, so
``--retries 1`` is one attempt).

Each job's state is a small JSON file and its output a log file, under ``<state root>/<run id>/``,
so that ``batch-runs.py`` can read a local run from another process, and cancel it. The state names
the job's process by its pid and its start time: when the process that ran the run died, a job whose
process still runs is still RUNNING (and cancel stops it), not FAILED.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..aws import Clients
from ..commands import redact_command
from ..processes import (
    kill_group,
    process_start,
    signals_as_interrupt,
    stop_jobs,
    wait_or_kill,
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
    Words,
)
from .jobs import Job
from .local_setup import LocalOptions, checked_tiledbvcf, default_parallel, scratch_problems
from .local_state import JOB_VARIABLE, KILLED_FOR_MEMORY, attempt_lines, orphaned, out_of_memory, write_state

ENTRYPOINT = Path(__file__).resolve().parents[2] / "image" / "entrypoint.py"
CANCEL_MARKER = "cancel"
PAUSE_STEP = 0.05  # seconds: how soon a waiting run notices that a job changed state
WORDS = Words(
    name="this machine",
    forgets="forgets a job whose state file is removed",
    detached="in the process that runs them",
    stop_by_hand="kill (each job's pid is in its state file)",
    host_loss="lost hosts",  # none: a local job has no host to lose
)


def state_root() -> Path:
    """Where local runs keep their job states and logs."""
    if os.environ.get("TILEDBVCF_BATCH_STATE"):
        return Path(os.environ["TILEDBVCF_BATCH_STATE"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tiledbvcf-batch"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: BinaryIO


@dataclass
class LocalExecutor(Executor):
    """Jobs as processes on this machine, up to ``max_parallel`` at a time."""

    tiledbvcf: str
    version: str = ""
    max_parallel: int = 1
    root: Path = field(default_factory=state_root)
    poll: float = 0.05  # how often the scheduler looks for a cancel marker; a job's end wakes it at once
    kind: str = "local"
    poll_interval: tuple[float, float] = (2.0, 2.0)  # seconds; pause() returns as soon as a job changes
    words: Words = WORDS
    blocks: bool = True  # the jobs are this process's children: a run is waited for, and a signal stops it
    bills_instances: bool = False  # this machine costs no instance hours, unless the user prices it
    stop_grace: float = 10.0  # seconds stopped jobs have to end on SIGTERM before SIGKILL
    _jobs: dict[str, JobDescription] = field(default_factory=dict)
    _after: dict[str, list[str]] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)
    _args: dict[str, list[str]] = field(default_factory=dict)
    _running: dict[str, Running] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changes: int = 0  # counts saved job states: pause() ends when it moves
    _thread: threading.Thread | None = None
    _wake: threading.Event = field(default_factory=threading.Event)  # a job's process ended, or a job came
    _scratch: str | None = None  # the run's temporary scratch directory, once made

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "tiledbvcf": self.tiledbvcf, "version": self.version,
                "max_parallel": self.max_parallel}  # fmt: skip

    def where(self) -> str:
        return f"on this machine, {self.max_parallel} at a time, with {self.version}"

    def default_scratch(self) -> str:
        """A temporary directory of the run, made when first asked for; close() removes it."""
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="tiledbvcf-scratch-")
        return self._scratch

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[list[int]]:
        """SIGTERM and SIGHUP as Ctrl-C: no job outlives this process (see ``interrupted``)."""
        with signals_as_interrupt() as received:
            yield received

    def preflight(self) -> list[str]:
        return []  # tiledbvcf itself is checked when the executor is made (find_tiledbvcf)

    def scratch_problems(self, path: str | None) -> list[str]:
        return [] if path is None or path == self._scratch else scratch_problems(path)

    def tool_problems(self, tools: Mapping[str, str]) -> list[str]:
        """The jobs run on this machine: each tool must be on PATH, or where its variable says."""
        problems = []
        for name, variable in tools.items():
            program = os.environ.get(variable) or name
            if shutil.which(program) is None:
                problems.append(
                    f"{name} not found ({program}): the jobs need it with --executor local; install it (apt install "
                    f"{name}, or conda install -c bioconda {name}) or set {variable} to its path"
                )
        return problems

    # -- Running ---------------------------------------------------------------------------

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
        job_id = f"{run_id}/{job.key}"
        with self._lock:
            self._jobs[job_id] = {"jobId": job_id, "jobName": job.name, "status": "SUBMITTED", "attempts": []}
            self._jobs[job_id]["owner"] = os.getpid()  # type: ignore[typeddict-unknown-key]
            self._jobs[job_id]["ownerstart"] = process_start(os.getpid())  # type: ignore[typeddict-unknown-key]
            self._after[job_id] = [ids[key] for key in job.after]
            self._args[job_id] = list(job.args)
            self._attempts[job_id] = job.retries
            self._save(job_id)
        self._wake.set()
        if self._thread is None:
            self._thread = threading.Thread(target=self._schedule, name="local-executor", daemon=True)
            self._thread.start()
        return job_id

    def created_anyway(self, job: Job, run_id: str) -> list[str] | None:
        """A submit interrupted once the job was taken in: this executor knows it (and stops it in terminate)."""
        job_id = f"{run_id}/{job.key}"
        with self._lock:
            return [job_id] if job_id in self._jobs else []

    def _schedule(self) -> None:
        while True:
            self._wake.clear()  # before reaping: an exit from now on wakes the wait below
            with self._lock:
                if self._cancelled():
                    self._stop_all("cancelled with batch-runs.py cancel")
                self._reap()
                self._fail_dependents()
                self._start_ready()
                if all(d["status"] in TERMINAL_STATUSES for d in self._jobs.values()):
                    self._thread = None
                    return
            # The next job starts as soon as one ends, not up to a poll later: jobs run one after another.
            self._wake.wait(self.poll)

    def _start_ready(self) -> None:
        for job_id, description in self._jobs.items():
            if len(self._running) >= self.max_parallel:
                return
            if description["status"] in NOT_STARTED and all(
                self._jobs[dep]["status"] == "SUCCEEDED" for dep in self._after[job_id]
            ):
                try:
                    self._start(job_id)
                except OSError as error:  # a job that cannot start fails, it does not hang the run
                    self._finish(job_id, f"could not start: {error}")

    def _start(self, job_id: str) -> None:
        description = self._jobs[job_id]
        args = self._args[job_id]
        log_path, state_path = self._path(job_id, ".log"), self._path(job_id, ".json")
        number = len(description["attempts"]) + 1
        # Through the entrypoint, as on Batch: its own scratch, its upload, its check before a store.
        command = [sys.executable, str(ENTRYPOINT), *args]
        log = open(log_path, "ab")  # noqa: SIM115  (closed when the job is reaped)
        log.write(f"--- attempt {number}: {shlex.join(['tiledbvcf', *redact_command(args)])}\n".encode())
        log.flush()
        pythonpath = os.pathsep.join(filter(None, [str(ENTRYPOINT.parents[1]), os.environ.get("PYTHONPATH")]))
        # Its state file's path in its environment: the job's processes are found by it, even with no pid recorded.
        env = {**os.environ, "TILEDBVCF": self.tiledbvcf, "PYTHONPATH": pythonpath, JOB_VARIABLE: str(state_path)}
        # A session of its own: the terminal's Ctrl-C reaches this process, which stops the jobs itself.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        start = process_start(process.pid)  # at once: with the pid it names this process, not a later one
        self._running[job_id] = Running(process, log)
        with contextlib.suppress(RuntimeError):  # no thread to spare: the scheduler's poll still notices the end
            threading.Thread(target=self._notice_exit, args=(process,), name=f"wait-{job_id}", daemon=True).start()
        description["status"] = "RUNNING"
        description["attempts"].append(
            {"startedAt": now_ms(), "container": {"logStreamName": str(log_path), "containerInstanceArn": "local"}}
        )
        description["pid"] = process.pid  # type: ignore[typeddict-unknown-key]
        description["starttime"] = start  # type: ignore[typeddict-unknown-key]
        self._save(job_id)

    def _notice_exit(self, process: subprocess.Popen[bytes]) -> None:
        """Wake the scheduler when ``process`` ends (Popen's own lock makes this wait safe beside poll())."""
        process.wait()
        self._wake.set()

    def _reap(self) -> None:
        for job_id, running in list(self._running.items()):
            code = running.process.poll()
            if code is None:
                continue
            running.log.close()
            del self._running[job_id]
            description = self._jobs[job_id]
            attempt = description["attempts"][-1]
            attempt["stoppedAt"] = now_ms()
            attempt["container"]["exitCode"] = code
            # A job being stopped (no attempts left) was killed by us, not for memory.
            killed = self._attempts[job_id] > 0 and out_of_memory(code, Path(attempt["container"]["logStreamName"]))
            attempt["statusReason"] = f"tiledbvcf exited with {code}" + (f", {KILLED_FOR_MEMORY}" if killed else "")
            if code == 0:
                description["status"] = "SUCCEEDED"
            elif len(description["attempts"]) < self._attempts[job_id]:
                description["status"] = "RUNNABLE"  # retried: store --resume skips what is written
            else:
                description["status"] = "FAILED"
                description["statusReason"] = f"{attempt['statusReason']} (see its log)"
            self._save(job_id)

    def _fail_dependents(self) -> None:
        for job_id, description in self._jobs.items():
            if description["status"] in NOT_STARTED and any(
                self._jobs[dep]["status"] == "FAILED" for dep in self._after[job_id]
            ):
                self._finish(job_id, "Dependent job failed: it did not run")

    def _finish(self, job_id: str, reason: str) -> None:
        description = self._jobs[job_id]
        description["status"] = "FAILED"
        description["statusReason"] = reason
        self._save(job_id)

    def _path(self, job_id: str, suffix: str) -> Path:
        path = self.root / f"{job_id}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _save(self, job_id: str) -> None:
        write_state(self._path(job_id, ".json"), self._jobs[job_id])
        self._changes += 1

    def _cancelled(self) -> bool:
        return any((self.root / job_id).parent.joinpath(CANCEL_MARKER).exists() for job_id in list(self._jobs)[:1])

    # -- Watching and stopping ------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Up to ``seconds``, less as soon as a job's state changed (noticed within PAUSE_STEP).

        Short sleeps, not a Condition: Ctrl-C or SIGTERM raised inside Condition.wait, while it takes
        its lock back, leaves the lock in a state the stopping of the jobs then trips over.
        """
        seen, deadline = self._changes, time.monotonic() + seconds
        while self._changes == seen and time.monotonic() < deadline:
            time.sleep(min(PAUSE_STEP, max(0.0, deadline - time.monotonic())))

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        found: dict[str, JobDescription] = {}
        with self._lock:
            for job_id in ids:
                if job_id in self._jobs:
                    found[job_id] = json.loads(json.dumps(self._jobs[job_id]))
                elif (path := self.root / f"{job_id}.json").is_file():
                    found[job_id] = orphaned(json.loads(path.read_text()), str(path))
        return found

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        self.stop(ids, reason)
        return []

    def stop(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        """Stop running jobs (SIGTERM to their process group) and fail those not started."""
        outcome = CancelOutcome()
        with self._lock:
            stopping = []
            for job_id in ids:
                description = self._jobs.get(job_id)
                if description is None:
                    outcome.unknown.append(job_id)
                elif description["status"] in TERMINAL_STATUSES:
                    outcome.finished.append(job_id)
                elif job_id in self._running:
                    self._attempts[job_id] = 0  # no retry of a job being stopped
                    stopping.append(self._running[job_id].process)
                    kill_group(self._running[job_id].process)
                    outcome.terminated.append(job_id)
                else:
                    self._finish(job_id, reason)
                    outcome.cancelled.append(job_id)
        wait_or_kill(stopping, self.stop_grace)
        with self._lock:
            self._reap()
            for job_id in outcome.terminated:
                self._finish(job_id, reason)
        return outcome

    def _stop_all(self, reason: str) -> None:
        """Called with the lock held, by the scheduler, when another process asked to cancel."""
        for job_id, running in self._running.items():
            self._attempts[job_id] = 0
            kill_group(running.process)
        for job_id, description in self._jobs.items():
            if description["status"] in NOT_STARTED:
                self._finish(job_id, reason)

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        if self._jobs:
            return self.stop(ids, reason)
        # Another process runs these jobs: ask it to stop (it checks for the marker); stop here those it left.
        outcome = CancelOutcome()
        described = self.describe(ids)
        for job_id in ids:
            status = described.get(job_id, {}).get("status")
            if status is None:
                outcome.unknown.append(job_id)
            elif status in TERMINAL_STATUSES:
                outcome.finished.append(job_id)
            elif described[job_id].get("orphan"):
                outcome.terminated.append(job_id)
            else:
                (self.root / job_id).parent.joinpath(CANCEL_MARKER).touch()
                (outcome.terminated if status == "RUNNING" else outcome.cancelled).append(job_id)
        orphans = [job_id for job_id in outcome.terminated if described[job_id].get("orphan")]
        self._stop_orphans({job_id: described[job_id] for job_id in orphans}, reason)
        return outcome

    def _stop_orphans(self, jobs: dict[str, JobDescription], reason: str) -> None:
        """SIGTERM the process group of each job whose owner died, SIGKILL after stop_grace; record them FAILED."""
        stop_jobs([(d["pid"], d.get("starttime")) for d in jobs.values()], self.stop_grace)  # type: ignore[typeddict-item,misc]
        for job_id in jobs:
            path = self.root / f"{job_id}.json"
            state = json.loads(path.read_text())
            state["status"], state["statusReason"] = "FAILED", reason
            if state.get("attempts"):
                state["attempts"][-1].setdefault("stoppedAt", now_ms())
                state["attempts"][-1]["statusReason"] = f"stopped: {reason}"
            write_state(path, state)

    def interrupted(self, ids: Sequence[str]) -> CancelOutcome | None:
        """Ctrl-C: a local run cannot outlive its process, so the jobs this process runs are stopped."""
        return self.stop(ids, "interrupted (Ctrl-C or SIGTERM)") if self._jobs else None

    def killed_for_memory(self, attempt: Attempt) -> bool:
        return KILLED_FOR_MEMORY in attempt.get("statusReason", "")

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        stream = attempt.get("container", {}).get("logStreamName")
        if not stream:
            return None
        path = Path(stream)
        tail = LogTail(None, str(path))  # a file's path: no group
        try:
            text = path.read_text(errors="replace")
        except OSError as error:
            tail.error = f"cannot read {path} ({error.strerror})"
            return tail
        number = next((i for i, a in enumerate(job.get("attempts", []), start=1) if a is attempt or a == attempt), 0)
        tail.lines = attempt_lines(text, number)[-lines:] if lines > 0 else []
        return tail


# -- The registry's entry (executors/__init__.py) ---------------------------------------------------


def from_request(given: LocalOptions, asked: Asked, clients: Clients) -> LocalExecutor:
    """The local executor, with a tiledbvcf that is there, works, and fits the run; else bad input."""
    path, version = checked_tiledbvcf(given.tiledbvcf, asked.register)
    return LocalExecutor(path, version, given.max_parallel or default_parallel(asked.vcpus))


def from_settings(settings: Mapping[str, Any], clients: Clients) -> LocalExecutor:
    return LocalExecutor(settings.get("tiledbvcf", ""), settings.get("version", ""), root=Path(settings["root"]))


def command_line(settings: Mapping[str, Any]) -> list[str]:
    return ["--executor", "local"]


KIND = Kind("local", from_request, from_settings, settings={"root": True, "tiledbvcf": False, "version": False},
            command_line=command_line, local_paths=True, blocks=True, scratch="a temporary directory of the run",
            options=LocalOptions)  # fmt: skip
