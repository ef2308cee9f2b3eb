"""Executors run a plan's jobs: ``batch`` on AWS Batch, ``local`` on this machine.

``for_record`` makes the executor that ran a recorded run, to watch, diagnose or cancel it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..aws import Clients
from .base import Executor
from .batch import BatchExecutor
from .local import LocalExecutor


def for_record(executor: dict[str, Any], clients: Clients) -> Executor:
    """The executor that ran a recorded run (``RunRecord.executor``)."""
    kind = executor.get("kind", "batch")
    if kind == "batch":
        queue, definition = executor.get("job_queue") or "", executor.get("job_definition") or ""
        return BatchExecutor(clients, queue, definition, array_jobs=bool(executor.get("array_jobs")))
    if kind == "local":
        return LocalExecutor(executor.get("tiledbvcf", ""), executor.get("version", ""), root=Path(executor["root"]))
    raise ValueError(f"the run was made by a {kind!r} executor, which this version does not know")
