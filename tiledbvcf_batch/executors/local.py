"""This machine: the jobs run as subprocesses, each with exactly the arguments its Batch job would carry.

Every job runs through the image's entrypoint (``image/entrypoint.py``), as on Batch, so an
export to ``s3://`` is uploaded and checked the same way. Dependencies are honoured as Batch
honours them (a failed job fails its dependents without running them), and ``--retries N``
gives N attempts (a local job has no host to lose, so ``--retries 1`` is one attempt).

Each job's state is a small JSON file and its output a log file, under
``<state root>/<run id>/``, so that ``batch-runs.py`` can read a local run later.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..commands import needs_own_upload
from ..plan import Plan, Task
from .base import NOT_STARTED, TERMINAL_STATUSES, Attempt, CancelOutcome, JobDescription, LogTail

ENTRYPOINT = Path(__file__).resolve().parents[2] / "image" / "entrypoint.py"
INSTALL_HINT = (
    "install it with conda (conda install -c conda-forge -c tiledb libtiledbvcf), or pass --tiledbvcf PATH "
    "or set TILEDBVCF"
)
VERSION_RE = re.compile(r"TileDB-VCF version (\d+)\.(\d+)(?:\.(\d+))?")
FIRST_CURRENT_RELEASE = (0, 7)  # v4 datasets, store --resume; earlier releases need --register


def state_root() -> Path:
    """Where local runs keep their job states and logs."""
    if os.environ.get("TILEDBVCF_BATCH_STATE"):
        return Path(os.environ["TILEDBVCF_BATCH_STATE"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "tiledbvcf-batch"


def find_tiledbvcf(given: str | None) -> tuple[str | None, str]:
    """The tiledbvcf to run (--tiledbvcf, else $TILEDBVCF, else PATH) and its version, or why there is none."""
    candidate = given or os.environ.get("TILEDBVCF") or shutil.which("tiledbvcf")
    if not candidate:
        return None, f"tiledbvcf is not installed (not on PATH, TILEDBVCF not set): {INSTALL_HINT}"
    path = shutil.which(candidate) or candidate
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as error:
        return None, f"tiledbvcf {path} cannot be run ({error.strerror}): {INSTALL_HINT}"
    first = (result.stdout or result.stderr).strip().splitlines()[:1]
    if result.returncode != 0 or not first or not VERSION_RE.search(first[0]):
        return None, f"{path} is not a working tiledbvcf (--version printed {first[0] if first else 'nothing'!r})"
    return path, first[0]


def is_legacy(version: str) -> bool:
    match = VERSION_RE.search(version)
    return bool(match) and (int(match.group(1)), int(match.group(2))) < FIRST_CURRENT_RELEASE


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: BinaryIO


@dataclass
class LocalExecutor:
    """Jobs as subprocesses on this machine, up to ``max_parallel`` at a time."""

    tiledbvcf: str
    version: str = ""
    max_parallel: int | None = None  # None: what the cores allow for the jobs' vCPUs
    root: Path = field(default_factory=state_root)
    poll: float = 0.05  # how often running processes are checked (a cheap waitpid each)
    kind: str = "local"
    poll_interval: tuple[float, float] = (2.0, 2.0)  # seconds; pause() returns as soon as a job changes
    _jobs: dict[str, JobDescription] = field(default_factory=dict)
    _after: dict[str, list[str]] = field(default_factory=dict)
    _attempts: dict[str, int] = field(default_factory=dict)
    _args: dict[str, list[str]] = field(default_factory=dict)
    _running: dict[str, Running] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _changed: threading.Condition = field(init=False)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "tiledbvcf": self.tiledbvcf, "version": self.version,
                "max_parallel": self.max_parallel}  # fmt: skip

    def where(self) -> str:
        return f"on this machine, {self.max_parallel or 'as many as the cores allow'} at a time, with {self.version}"

    def preflight(self) -> list[str]:
        return []  # tiledbvcf itself is checked when the executor is made (find_tiledbvcf)

    def submissions(self, plan: Plan) -> list[Task]:
        earlier: set[str] = set()
        problems = []
        for task in plan.tasks:
            if not task.args or any(arg == "" for arg in task.args):
                problems.append(f"job {task.name}: a command may not be empty or contain an empty string")
            problems += [f"job {task.name} depends on {key}, not before it" for key in task.after if key not in earlier]
            earlier.add(task.key)
        if problems:
            raise ValueError("; ".join(problems))
        if self.max_parallel is None:
            # Sized by the jobs that do the work (they carry samples), not the small creation job.
            vcpus = max((task.resources.vcpus for task in plan.tasks if task.samples), default=1)
            self.max_parallel = max(1, (os.cpu_count() or 1) // vcpus)
        return list(plan.tasks)

    # -- Running ---------------------------------------------------------------------------

    def submit(self, job: Task, ids: dict[str, str], run_id: str) -> str:
        job_id = f"{run_id}/{job.key}"
        with self._lock:
            self._jobs[job_id] = {"jobId": job_id, "jobName": job.name, "status": "SUBMITTED", "attempts": []}
            self._after[job_id] = [ids[key] for key in job.after]
            self._args[job_id] = list(job.args)
            self._attempts[job_id] = 1 if job.retries == 1 else job.retries
            self._save(job_id)
        if self._thread is None:
            self._thread = threading.Thread(target=self._schedule, name="local-executor", daemon=True)
            self._thread.start()
        return job_id

    def _schedule(self) -> None:
        while True:
            with self._lock:
                self._reap()
                self._fail_dependents()
                self._start_ready()
                if all(d["status"] in TERMINAL_STATUSES for d in self._jobs.values()):
                    self._thread = None
                    return
            time.sleep(self.poll)

    def _start_ready(self) -> None:
        for job_id, description in self._jobs.items():
            if len(self._running) >= (self.max_parallel or 1):
                return
            if description["status"] in NOT_STARTED and all(
                self._jobs[dep]["status"] == "SUCCEEDED" for dep in self._after[job_id]
            ):
                self._start(job_id)

    def _start(self, job_id: str) -> None:
        description = self._jobs[job_id]
        log_path = self._path(job_id, ".log")
        log = open(log_path, "ab")  # noqa: SIM115  (closed when the job is reaped)
        number = len(description["attempts"]) + 1
        log.write(f"--- attempt {number}: tiledbvcf {' '.join(self._args[job_id])}\n".encode())
        log.flush()
        pythonpath = os.pathsep.join(filter(None, [str(ENTRYPOINT.parents[1]), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "TILEDBVCF": self.tiledbvcf, "PYTHONPATH": pythonpath}
        # A session of its own: the terminal's Ctrl-C reaches this process, which stops the jobs itself.
        args = self._args[job_id]
        # The entrypoint's own rule: it runs tiledbvcf unchanged unless an export must be uploaded.
        command = [sys.executable, str(ENTRYPOINT), *args] if needs_own_upload(args) else [self.tiledbvcf, *args]
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._running[job_id] = Running(process, log)
        description["status"] = "RUNNING"
        description["attempts"].append(
            {"startedAt": now_ms(), "container": {"logStreamName": str(log_path), "containerInstanceArn": "local"}}
        )
        description["pid"] = process.pid  # type: ignore[typeddict-unknown-key]
        self._save(job_id)

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
            attempt["statusReason"] = "tiledbvcf exited with 0" if code == 0 else f"tiledbvcf exited with {code}"
            if code == 0:
                description["status"] = "SUCCEEDED"
            elif len(description["attempts"]) < self._attempts[job_id]:
                description["status"] = "RUNNABLE"  # retried: store --resume skips what is written
            else:
                description["status"] = "FAILED"
                description["statusReason"] = f"tiledbvcf exited with {code} (see its log)"
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
        self._path(job_id, ".json").write_text(json.dumps(self._jobs[job_id]))
        self._changed.notify_all()

    def pause(self, seconds: float) -> None:
        with self._changed:
            self._changed.wait(seconds)

    # -- Watching and stopping ------------------------------------------------------------------

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        found: dict[str, JobDescription] = {}
        with self._lock:
            for job_id in ids:
                if job_id in self._jobs:
                    found[job_id] = json.loads(json.dumps(self._jobs[job_id]))
                elif (self.root / f"{job_id}.json").is_file():
                    found[job_id] = json.loads((self.root / f"{job_id}.json").read_text())
        return found

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        self.stop(ids, reason)
        return []

    def stop(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        """Stop running jobs (SIGTERM to their process group) and fail those not started."""
        outcome = CancelOutcome()
        with self._lock:
            for job_id in ids:
                description = self._jobs.get(job_id)
                if description is None:
                    outcome.unknown.append(job_id)
                elif description["status"] in TERMINAL_STATUSES:
                    outcome.finished.append(job_id)
                elif job_id in self._running:
                    kill_group(self._running[job_id].process)
                    outcome.terminated.append(job_id)
                else:
                    self._finish(job_id, reason)
                    outcome.cancelled.append(job_id)
        for job_id in outcome.terminated:
            self._running[job_id].process.wait()
        with self._lock:
            self._reap()
            for job_id in outcome.terminated:
                self._finish(job_id, reason)
        return outcome

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        if self._jobs:
            return self.stop(ids, reason)
        # Another process runs these jobs: stop the running ones through their recorded process ids.
        outcome = CancelOutcome()
        for job_id, description in self.describe(ids).items():
            pid = description.get("pid")
            if description["status"] == "RUNNING" and pid:
                if process_exists(pid):
                    os.killpg(pid, signal.SIGTERM)
                outcome.terminated.append(job_id)
            elif description["status"] in TERMINAL_STATUSES:
                outcome.finished.append(job_id)
            else:
                outcome.unknown.append(job_id)
        return outcome

    def interrupted(self, ids: Sequence[str]) -> CancelOutcome:
        """Ctrl-C: a local run cannot outlive this process, so its jobs are stopped."""
        return self.stop(ids, "interrupted (Ctrl-C)")

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        stream = attempt.get("container", {}).get("logStreamName")
        if not stream:
            return None
        path = Path(stream)
        tail = LogTail(str(path.parent), path.name)
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError as error:
            tail.error = f"cannot read {path} ({error.strerror})"
            return tail
        tail.lines = [line for line in text if not line.startswith("--- attempt ")][-lines:] if lines > 0 else []
        return tail


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the job's process group: tiledbvcf stops at once on SIGTERM (one SIGINT it ignores)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
