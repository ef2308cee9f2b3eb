"""Array jobs, the pure step: a plan's stages as array jobs, each child finding its task by its index.

An array job is a ``Job`` of several tasks (child i runs ``tasks[i]``) whose manifest is a task file;
``executors/batch.py`` turns it into the SubmitJob request. Here too: how the run record keeps an
array's tasks (one entry each, with its index and done marker), and how a resumed run gets their
samples back from the task files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from ..arraytasks import array_args, task_file_body, tasks_in
from ..jobcheck import started_marker
from ..plan import Manifest, Plan, Task
from ..storage import Location, parse_location
from .base import JobDescription, Proof
from .jobs import Job, RecordedJob, plain_manifest

T = TypeVar("T")
MAX_ARRAY_SIZE = 10_000  # arrayProperties.size is 2..10,000: a stage of more tasks becomes several arrays


def as_arrays(plan: Plan) -> list[Job]:
    """One array job per stage (several past MAX_ARRAY_SIZE tasks), each after the previous stage's arrays.

    A stage becomes an array only when its tasks differ by their samples file alone (Batch gives every
    child the same command); a stage of one task, or of tasks that differ otherwise, stays plain jobs.
    """
    jobs: list[Job] = []
    owner: dict[str, str] = {}  # task key -> the key of the job that runs it
    for tasks in stages_of(plan.tasks):
        parts = chunked(tasks, MAX_ARRAY_SIZE) if arrayable(tasks) else [[task] for task in tasks]
        for number, part in enumerate(parts, start=1):
            after = tuple(dict.fromkeys(owner[key] for key in part[0].after))
            if len(part) == 1:
                job = replace(Job.of(part[0]), after=after)
            else:
                job = array_job(plan, part, number, len(parts), after)
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


def array_job(plan: Plan, part: Sequence[Task], number: int, parts: int, after: tuple[str, ...]) -> Job:
    """The array job of ``part`` (tasks of one stage): its task file names each child's samples and marker."""
    stage = part[0].stage
    suffix = f"-{number}" if parts > 1 else ""
    task_file = plan.run_prefix.child(f"tasks-{stage}{suffix}.json")
    entries = [array_entry(plan.run_prefix, task) for task in part]
    return Job(
        key=f"{stage}-array{suffix}",
        stage=stage,
        name=f"tiledbvcf-{stage}{suffix}",
        args=tuple(array_args(part[0].args, str(task_file))),
        resources=part[0].resources,
        retries=part[0].retries,
        after=after,
        manifest=Manifest(task_file, (task_file_body(entries),)),
        tasks=tuple(part),
    )


def done_marker(run_prefix: Location, key: str) -> Location:
    """Where an array job's child records that its task succeeded (it has no manifest of its own to consume)."""
    return run_prefix.child(f"done/{key}.json")


def array_entry(run_prefix: Location, task: Task) -> dict[str, Any]:
    """A child's entry in its task file. Only ingestion tasks get a done marker (the ledger's proof) and a
    started marker (the job check's: named after the manifest the task would have had on its own, which
    is also the one a --resume of the run gives it, so that a resumed task finds its earlier attempts').
    """
    entry: dict[str, Any] = {"key": task.key, "lines": list(task.manifest.lines if task.manifest else ())}
    if task.stage.kind == "ingest":
        entry["done"] = str(done_marker(run_prefix, task.key))
        if task.manifest is not None:
            entry["started"] = started_marker(str(task.manifest.uri))
    return entry


def recorded_with_arrays(run_prefix: Location, jobs: Sequence[Job]) -> list[RecordedJob]:
    """The record's entries: a plain job's own, and for an array job one per task it runs.

    The record has no entry for an array itself, so a job after an array is recorded after the array's
    tasks (a consolidation after the ingestion array): every dependency names an entry of the record.
    """
    tasks_of = {job.key: [task.key for task in job.tasks] for job in jobs if job.is_array}
    entries: list[RecordedJob] = []
    for job in jobs:
        if job.is_array:
            entries += children(run_prefix, job)
        else:
            after = [key for dep in job.after for key in tasks_of.get(dep, [dep])]
            entries.append(replace(RecordedJob.of(job), depends_on=after))
    return entries


def children(run_prefix: Location, job: Job) -> list[RecordedJob]:
    task_file = str(job.manifest.uri) if job.manifest else ""
    return [
        replace(
            RecordedJob.of(Job.of(task)),
            manifest=f"{task_file}#{index}",
            array=job.key,
            index=index,
            done=str(done_marker(run_prefix, task.key)) if task.stage.kind == "ingest" else None,
        )
        for index, task in enumerate(job.tasks)
    ]


def proofs_with_arrays(jobs: Sequence[RecordedJob]) -> dict[str, Proof]:
    """A plain job's proof of success is its manifest, as by default; an array child's is its done marker, which
    the image writes once the child's task succeeded (its samples are an entry of a task file: nothing consumed).
    """
    proofs = {job.key: Proof(job.manifest, False) for job in jobs if job.array is None and job.manifest is not None}
    proofs.update((job.key, Proof(job.done, True)) for job in jobs if job.done is not None)
    return proofs


def task_files(jobs: Sequence[RecordedJob]) -> list[str]:
    """The task files that array children of a record read their samples from."""
    return sorted({job.manifest.rpartition("#")[0] for job in jobs if job.array is not None and job.manifest})


def resumed_with_arrays(jobs: Sequence[RecordedJob], bodies: Mapping[str, str]) -> dict[str, Manifest]:
    """The manifest each task resumes from: a plain job's own; an array child's a new one, with its lines from
    its task file (``bodies``, by URI), named as the original run would have named it in per-job mode.
    """
    lines = {entry["key"]: tuple(entry["lines"]) for body in bodies.values() for entry in tasks_in(body)}
    manifests = {}
    for job in jobs:
        if job.array is None and job.manifest is not None:
            manifests[job.key] = plain_manifest(job)
        elif job.array is not None and job.kind == "ingest":  # a store stage (a register is a job of its own)
            batch, index = (int(part) for part in job.key.split("-")[1:3])
            task_file = parse_location((job.manifest or "").rpartition("#")[0], "task file")
            run_prefix = replace(task_file, key=task_file.key.rpartition("/")[0] + "/")
            manifests[job.key] = Manifest(run_prefix.child(f"ingest-b{batch:03d}-j{index:04d}.txt"), lines[job.key])
    return manifests


# -- An array's children as Batch describes them --------------------------------------------------


def children_by_parent(ids: Iterable[str]) -> dict[str, list[str]]:
    """Array children (``<parent>:<index>``) grouped by their parent."""
    children: dict[str, list[str]] = {}
    for job_id in ids:
        parent, colon, _ = job_id.partition(":")
        if colon:
            children.setdefault(parent, []).append(job_id)
    return children


# Estimated children take the statuses of the summary in this order, by index: the counts are right,
# which child has which is not known (watch keeps estimated jobs pending until they are listed).
ESTIMATE_ORDER = ("SUCCEEDED", "FAILED", "RUNNING", "STARTING", "RUNNABLE", "PENDING", "SUBMITTED")


def estimated_children(
    parent: str, description: JobDescription, size: int, summary: dict[str, int], wanted: Sequence[str]
) -> dict[str, JobDescription]:
    statuses = [status for status in ESTIMATE_ORDER for _ in range(summary.get(status, 0))]
    statuses += ["SUBMITTED"] * (size - len(statuses))
    estimated: dict[str, JobDescription] = {}
    for job_id in wanted:
        index = int(job_id.partition(":")[2])
        status = statuses[index] if index < len(statuses) else "SUBMITTED"
        estimated[job_id] = {
            "jobId": job_id,
            "jobName": description.get("jobName", ""),
            "status": status,
            "statusReason": description.get("statusReason", ""),
            "attempts": [],
            "estimated": True,
        }
    return estimated
