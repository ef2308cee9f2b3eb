"""Executors run a plan's jobs: ``batch`` on AWS Batch. ``for_record`` finds the one that ran a run."""

from __future__ import annotations

from typing import Any

from ..aws import Clients
from .base import Executor
from .batch import BatchExecutor


def for_record(executor: dict[str, Any], clients: Clients) -> Executor:
    """The executor that ran a recorded run (``RunRecord.executor``)."""
    kind = executor.get("kind", "batch")
    if kind == "batch":
        return BatchExecutor(clients, executor.get("job_queue") or "", executor.get("job_definition") or "")
    raise ValueError(f"the run was made by a {kind!r} executor, which this version does not know")
