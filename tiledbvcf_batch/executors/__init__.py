"""Executors run a plan's jobs: ``batch`` on AWS Batch, ``local`` on this machine.

``for_record`` makes the executor that ran a recorded run, to watch, diagnose or cancel it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..aws import Clients
from ..inputs import InputError
from .base import Executor
from .local import LocalExecutor, default_parallel, find_tiledbvcf, is_legacy


def for_record(executor: dict[str, Any], clients: Clients) -> Executor:
    """The executor that ran a recorded run (``RunRecord.executor``)."""
    kind = executor.get("kind", "batch")
    if kind == "batch":
        from .batch import BatchExecutor  # here, so that a local run does not load the Batch executor

        queue, definition = executor.get("job_queue") or "", executor.get("job_definition") or ""
        return BatchExecutor(clients, queue, definition, array_jobs=bool(executor.get("array_jobs")))
    if kind == "local":
        return LocalExecutor(executor.get("tiledbvcf", ""), executor.get("version", ""), root=Path(executor["root"]))
    raise ValueError(f"the run was made by a {kind!r} executor, which this version does not know")


def local_executor(
    tiledbvcf: str | None, max_parallel: int | None, vcpus: int, *, register: bool | None
) -> LocalExecutor:
    """The local executor, with a tiledbvcf that is there, works, and fits the run; else bad input.

    ``register`` is None for a command without --register (export): a legacy release cannot run it at all.
    """
    path, version = find_tiledbvcf(tiledbvcf)
    if path is None:
        raise InputError(version)
    if is_legacy(version) and not register:
        fix = "pass --register, or use" if register is not None else "use"
        raise InputError(
            f"{path} is {version}, a legacy release (v2/v3 datasets): {fix} tiledbvcf 0.7 or later "
            "(conda install -c conda-forge -c tiledb libtiledbvcf)"
        )
    return LocalExecutor(path, version, max_parallel or default_parallel(vcpus))
