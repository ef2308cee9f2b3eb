"""Array jobs, the pure step: a plan's stages as array jobs, each child finding its task by its index.

What an array job stands for is a ``Task`` with ``members`` (child i runs ``members[i]``) and a task
file as its manifest; ``executors/batch.py`` turns it into the SubmitJob request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..commands import array_args, task_file_body
from ..jobcheck import started_marker
from ..plan import Manifest, Plan, Task, done_marker

T = TypeVar("T")
MAX_ARRAY_SIZE = 10_000  # arrayProperties.size is 2..10,000: a stage of more tasks becomes several arrays


def as_arrays(plan: Plan) -> list[Task]:
    """One array job per stage (several past MAX_ARRAY_SIZE tasks), each after the previous stage's arrays.

    A stage becomes an array only when its tasks differ by their samples file alone (Batch gives every
    child the same command); a stage of one task, or of tasks that differ otherwise, stays as it is.
    """
    jobs: list[Task] = []
    owner: dict[str, str] = {}  # task key -> the key of the job that runs it
    for tasks in stages_of(plan.tasks):
        parts = chunked(tasks, MAX_ARRAY_SIZE) if arrayable(tasks) else [[task] for task in tasks]
        for number, part in enumerate(parts, start=1):
            after = tuple(dict.fromkeys(owner[key] for key in part[0].after))
            job = replace(part[0], after=after) if len(part) == 1 else array_job(plan, part, number, len(parts), after)
            owner.update((task.key, job.key) for task in part)
            jobs.append(job)
    return jobs


def stages_of(tasks: Sequence[Task]) -> list[list[Task]]:
    """The tasks cut where the stage changes (a plan lists each stage's tasks together)."""
    stages: list[list[Task]] = []
    for task in tasks:
        if stages and stages[-1][0].stage == task.stage:
            stages[-1].append(task)
        else:
            stages.append([task])
    return stages


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in runs of ``size`` (the last shorter): arrays of a stage, ids of a DescribeJobs call."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def arrayable(tasks: Sequence[Task]) -> bool:
    if len(tasks) < 2 or any(task.manifest is None for task in tasks):
        return False
    first = tasks[0]
    shape = (array_args(first.args, ""), first.resources, first.retries, first.after)
    return all((array_args(t.args, ""), t.resources, t.retries, t.after) == shape for t in tasks)


def array_job(plan: Plan, part: list[Task], number: int, parts: int, after: tuple[str, ...]) -> Task:
    """The array job of ``part`` (tasks of one stage): its task file names each child's samples and marker."""
    stage = part[0].stage
    suffix = f"-{number}" if parts > 1 else ""
    task_file = plan.run_prefix.child(f"tasks-{stage}{suffix}.json")
    entries = [array_entry(plan, task) for task in part]
    return Task(
        key=f"{stage}-array{suffix}",
        stage=stage,
        name=f"tiledbvcf-{stage}{suffix}",
        args=tuple(array_args(part[0].args, str(task_file))),
        resources=part[0].resources,
        retries=part[0].retries,
        after=after,
        manifest=Manifest(task_file, (task_file_body(entries),)),
        samples=tuple(sample for task in part for sample in task.samples),
        members=tuple(part),
    )


def array_entry(plan: Plan, task: Task) -> dict[str, Any]:
    """A child's entry in its task file. Only ingestion tasks get a done marker (the ledger's proof) and a
    started marker (the job check's: named after the manifest the task would have had on its own, which
    is also the one a --resume of the run gives it, so that a resumed task finds its earlier attempts').
    """
    entry: dict[str, Any] = {"key": task.key, "lines": list(task.manifest.lines if task.manifest else ())}
    if task.stage.kind == "ingest":
        entry["done"] = str(done_marker(plan.run_prefix, task.key))
        if task.manifest is not None:
            entry["started"] = started_marker(str(task.manifest.uri))
    return entry
