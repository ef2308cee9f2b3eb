"""The local executor's job states, as another process reads them: whole files, a job's log by attempt, and
what a state means once the process that wrote it has died (its job's process found by pid and start time, or
by the variable in its environment naming its state file).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..processes import job_runs, process_exists, tagged_group
from .base import TERMINAL_STATUSES, JobDescription

JOB_VARIABLE = "TILEDBVCF_BATCH_LOCAL_JOB"  # in a job's environment: its state file's path


def attempt_lines(text: str, number: int) -> list[str]:
    """The lines one attempt logged: every attempt appends to the job's log after a marker line."""
    parts = re.split(r"^--- attempt (\d+): .*$\n?", text, flags=re.MULTILINE)
    by_attempt = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    return by_attempt.get(number, text).splitlines()


def write_state(path: Path, state: Any) -> None:
    """Whole files only: another process (batch-runs.py) may read the state at any moment."""
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state))
    os.replace(partial, path)


def orphaned(description: dict[str, Any], state_path: str | None = None) -> JobDescription:
    """A state read from another process: an unfinished job whose owner has died is failed, unless its
    process still runs (its owner was killed, not stopped): then it is RUNNING, and ``orphan``. Its process
    is the one recorded, or one whose environment names ``state_path`` (its owner killed as it started it).
    """
    owner, start = description.get("owner"), description.get("ownerstart")
    if description["status"] in TERMINAL_STATUSES or not owner or process_exists(owner, start):
        return description  # type: ignore[return-value]
    pid = description.get("pid")
    recorded = description["status"] == "RUNNING" and pid and job_runs(pid, description.get("starttime"))
    unrecorded = None if recorded or state_path is None else tagged_group(JOB_VARIABLE, state_path)
    if unrecorded is not None:
        pid, description["starttime"] = unrecorded
        description["pid"], description["status"] = pid, "RUNNING"
    if recorded or unrecorded is not None:
        description["orphan"] = True
        description["statusReason"] = (
            f"the script that ran it (pid {owner}) ended; its tiledbvcf (pid {pid}) still runs: "
            "wait for it, or stop it with batch-runs.py cancel"
        )
    else:
        description["status"] = "FAILED"
        description["statusReason"] = f"the process that ran it (pid {owner}) ended before it did"
    return description  # type: ignore[return-value]


# A local job killed for memory: SIGKILL (the kernel's out-of-memory killer, or a container's limit) ends the
# entrypoint's exec'd tiledbvcf (-9) or its child (the entrypoint exits 128 + 9); under an address-space limit
# (prlimit --as) tiledbvcf 0.40.3 aborts on std::bad_alloc instead (SIGABRT, measured). No --memory is enforced
# here: the job's --memory only sizes what tiledbvcf asks for (store's -m).
SIGKILLED = (-9, 137)
ABORTED = (-6, 134)
KILLED_FOR_MEMORY = (
    "killed for memory: this machine (or a limit put on it) gave the job less memory than it used. Give it more, "
    "or have tiledbvcf ask for less: --memory no more than the job can have (store's budget, -m, is derived from "
    "it), fewer --threads, a smaller --sample-batch-size, fewer jobs at a time (--max-parallel)"
)


def out_of_memory(code: int, log: Path) -> bool:
    """Whether a local job's exit ``code`` (its log at ``log``) says it was killed for memory."""
    if code in SIGKILLED:
        return True
    if code not in ABORTED:
        return False
    try:
        with log.open("rb") as file:
            file.seek(max(0, log.stat().st_size - 4096))
            return b"std::bad_alloc" in file.read()
    except OSError:
        return False
