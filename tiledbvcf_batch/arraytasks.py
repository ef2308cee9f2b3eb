"""Array jobs' protocol between the client and the image: the task file, and how a child finds its entry.

An array job runs one command for all the tasks of a stage; only AWS_BATCH_JOB_ARRAY_INDEX tells the
children apart. The command names the stage's task file with this placeholder after it
(``-f s3://.../tasks-ingest-1.json#{AWS_BATCH_JOB_ARRAY_INDEX}``): the image's entrypoint reads the
file, takes its child's entry, writes that task's samples file, and puts its path in place of the
placeholder. It is spelled here only, so the two cannot disagree: the Batch executor
(``executors/arrays.py``) writes what the entrypoint (``image/entrypoint.py``) reads. A module of its
own, outside ``executors/``, so that the image loads no executor.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .commands import OPTION_NAMES, option, with_value

ARRAY_INDEX = "{AWS_BATCH_JOB_ARRAY_INDEX}"
ARRAY_INDEX_VARIABLE = "AWS_BATCH_JOB_ARRAY_INDEX"
ARRAY_MARK = "#" + ARRAY_INDEX
# A job definition that sets this variable declares that its image runs this project's
# entrypoint (infra/batch-environment.yaml sets it): array jobs are then the default.
ENTRYPOINT_VARIABLE = "TILEDBVCF_BATCH_ENTRYPOINT"


def array_args(args: Sequence[str], task_file: str) -> list[str]:
    """A task's arguments with its samples file replaced by the stage's task file and the placeholder."""
    return with_value(args, OPTION_NAMES["samples_file"], task_file + ARRAY_MARK)


def array_task_file(args: Sequence[str]) -> str | None:
    """The task file an array child's arguments name, or None for a job that is not an array child."""
    found = option(args, OPTION_NAMES["samples_file"])
    if found is None or not found[1].endswith(ARRAY_MARK):
        return None
    return found[1].removesuffix(ARRAY_MARK)


def task_file_body(entries: Sequence[dict[str, Any]]) -> str:
    """The task file: for each child index, its task key, its samples file lines, and (ingestion) its done marker."""
    return json.dumps({"version": 1, "tasks": list(entries)}, separators=(",", ":"))


def tasks_in(body: str) -> list[dict[str, Any]]:
    """A task file's entries, by child index: each has ``key``, ``lines`` and ``done``."""
    return list(json.loads(body)["tasks"])


def task_of(body: str, index: int) -> dict[str, Any]:
    """The entry of child ``index`` in a task file."""
    tasks = tasks_in(body)
    if not 0 <= index < len(tasks):
        raise ValueError(f"array index {index} is outside the task file's {len(tasks)} tasks")
    return tasks[index]
