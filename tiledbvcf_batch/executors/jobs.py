"""Jobs: what an executor submits (``Job``), and what the run record keeps of each (``RecordedJob``).

A *task* is a planned tiledbvcf invocation (``plan.Task``); a *job* is what an executor runs. A plain
job runs one task; an array job runs several tasks of one stage, child i running ``tasks[i]``; a
barrier job runs none (it only waits for others). Which jobs a plan becomes is the executor's choice
(``Executor.submissions``); so is how it records them (``Executor.recorded``). The record keeps one
entry per task that ran, plus the barriers, under the JSON keys every release has written.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..commands import redact_command
from ..inputs import Resources
from ..plan import Manifest, Plan, Stage, Task, plan_fields, plan_header
from ..repair import REPAIR, Repair
from ..storage import parse_location


@dataclass(frozen=True)
class Job:
    """One submission: ``tasks`` are what it runs (one, several as an array, or none for a barrier)."""

    key: str  # unique within the run; dependencies refer to it
    stage: Stage
    name: str
    args: tuple[str, ...]  # tiledbvcf's arguments (an array's children share them)
    resources: Resources
    retries: int
    after: tuple[str, ...] = ()  # keys of the jobs that must succeed first
    manifest: Manifest | None = None  # what the job reads: its task's manifest, or an array's task file
    tasks: tuple[Task, ...] = ()

    @classmethod
    def of(cls, task: Task) -> Job:
        """The plain job of one task."""
        return cls(task.key, task.stage, task.name, task.args, task.resources, task.retries, task.after,
                   task.manifest, (task,))  # fmt: skip

    @property
    def is_array(self) -> bool:
        return len(self.tasks) > 1

    @property
    def samples(self) -> tuple[str, ...]:
        """The samples of every task the job runs."""
        return tuple(sample for task in self.tasks for sample in task.samples)


@dataclass
class RecordedJob:
    """A job as the run record keeps it; for an array job, one of these per task it runs."""

    key: str
    stage: str
    name: str
    job_id: str | None
    depends_on: list[str] = field(default_factory=list)
    manifest: str | None = None
    samples: list[str] = field(default_factory=list)
    # A child of an array job: the array's submission key and this task's index in it; its task file
    # entry is ``manifest`` ("<task file>#<index>") and it writes ``done`` when it succeeds.
    array: str | None = None
    index: int | None = None
    done: str | None = None
    # The bytes of its samples (an ingestion job's inputs, as listed before it was submitted); None when not known.
    bytes: int | None = None
    # Killed for memory and submitted again (oom.py): {"job_id": the killed job's id, "memory": the new MiB}.
    # ``job_id`` is then the new job's, so that status and report follow it.
    resubmitted: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return Stage.parse(self.stage).kind

    @classmethod
    def of(cls, job: Job) -> RecordedJob:
        """The entry of a plain job or a barrier."""
        manifest = str(job.manifest.uri) if job.manifest else None
        return cls(job.key, str(job.stage), job.name, None, list(job.after), manifest, list(job.samples))

    def submitted_id(self, ids: Mapping[str, str]) -> str | None:
        """This entry's job id once its submission's id (in ``ids``, by key) is known.

        An array child's is ``<array id>:<index>``, as AWS Batch names the children of an array job.
        """
        if self.array is None:
            return ids.get(self.key, self.job_id)
        return f"{ids[self.array]}:{self.index}" if self.array in ids else self.job_id

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("array", "index", "done", "bytes", "resubmitted"):  # a per-job run's record keeps the keys it had
            if document[key] is None:
                del document[key]
        return document


def with_bytes(jobs: Sequence[RecordedJob], sizes: Mapping[str, int]) -> list[RecordedJob]:
    """The jobs with the bytes of their samples, where every sample's size is known (``sizes``: URI -> bytes)."""
    return [
        replace(job, bytes=sum(sizes[s] for s in job.samples))
        if job.samples and all(s in sizes for s in job.samples)
        else job
        for job in jobs
    ]


def plain_manifest(job: RecordedJob) -> Manifest:
    """The manifest a plain job resumes from: its own, still there (store consumes it only on success)."""
    return Manifest(parse_location(job.manifest or "", "manifest"), tuple(job.samples), existing=True)


# -- The jobs as text, for --dry-run (the plan's own header comes from plan.py) -------------------------


def retries_text(retries: int) -> str:
    return "retried on host loss only" if retries == 1 else f"{retries} attempts"


def job_lines(job: Job) -> list[str]:
    deps = f" after {', '.join(job.after)}" if job.after else ""
    repairs = job.args[:1] == (REPAIR,)  # the entrypoint's own job (bcftools): no tiledbvcf runs
    lines = [
        f"  {job.key}: {job.name} [{job.resources.vcpus} vCPU, {job.resources.memory} MiB, "
        f"{retries_text(job.retries)}]{deps}",
        f"    {shlex.join(['entrypoint' if repairs else 'tiledbvcf', *redact_command(job.args)])}",
    ]
    if repairs and not job.is_array and job.manifest is not None:
        for line in job.manifest.lines:
            repair = Repair.from_line(line)
            lines.append(f"    {repair.kind} {repair.source} -> {', '.join(o.data or o.index for o in repair.outputs)}")
        return lines
    if job.is_array:  # child i runs tasks[i]
        task_file = job.manifest.uri if job.manifest else ""
        lines.append(f"    task file {task_file}: {len(job.tasks)} children, {len(job.samples)} samples")
    elif job.manifest is not None:
        lines.append(f"    manifest {job.manifest.uri}: {len(job.manifest.lines)} samples")
    elif job.samples:
        lines.append(f"    samples: {len(job.samples)}")
    return lines


def describe_plan(plan: Plan, jobs: Sequence[Job], where: str) -> list[str]:
    """The plan as text, for --dry-run: ``jobs`` are what the executor will run, in order."""
    return plan_header(plan, len(jobs), where) + [line for job in jobs for line in job_lines(job)]


def job_document(job: Job) -> dict[str, object]:
    return {
        "key": job.key,
        "name": job.name,
        "stage": str(job.stage),
        "command": redact_command(job.args),
        "vcpus": job.resources.vcpus,
        "memory": job.resources.memory,
        "retries": job.retries,
        "after": list(job.after),
        "manifest": str(job.manifest.uri) if job.manifest else None,
        "samples": len(job.samples),
        "array_size": len(job.tasks) if job.is_array else None,
    }


def plan_document(plan: Plan, jobs: Sequence[Job], where: str) -> dict[str, object]:
    """The plan as one JSON document, for --dry-run --json."""
    return {**plan_fields(plan, where), "jobs": [job_document(job) for job in jobs]}
