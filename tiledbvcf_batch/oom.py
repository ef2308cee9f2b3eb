"""Jobs killed for memory, submitted again once with twice the memory (up to --max-memory) while --wait watches.

Batch fails the jobs that depend on a failed job at once, without running them. So a job killed for
memory is submitted again together with every job after it that has not succeeded (they never ran),
each after the new jobs of its dependencies, and the whole run is watched again: the simplest way
that keeps the plan's order, rather than holding the dependents back (Batch cannot).

An array job's child killed for memory is submitted again on its own, as the plain job of its task (its
manifest uploaded, the one a --resume would give it: the job check finds its earlier attempt's started
marker by it); the jobs after the array then wait for these jobs instead of the failed array, provided
every failed child of it is one of them (else they stay failed, and --resume finishes the run).

A job is resubmitted once: its record entry says so (``RecordedJob.resubmitted``), and its ``job_id``
becomes the new job's, so that ``batch-runs.py status`` and ``report`` follow the new job. A job killed
again, or at --max-memory already, is left to ``--resume`` (prepare.py gives such a run twice its memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .commands import with_memory
from .executors.base import Executor, JobDescription, describe_fully
from .executors.jobs import Job
from .plan import Manifest
from .record import RunRecord
from .storage import Storage


@dataclass(frozen=True)
class Resubmission:
    """What is submitted again, in order: the jobs killed for memory with more memory, then those after them."""

    jobs: tuple[Job, ...] = ()
    killed: tuple[str, ...] = ()  # keys of the jobs killed for memory that are submitted again
    capped: tuple[str, ...] = ()  # keys of jobs killed for memory at --max-memory already (or resubmitted once)
    uploads: tuple[Manifest, ...] = ()  # the manifests of array children submitted on their own
    memory: int = 0  # the most memory a job is resubmitted with (MiB)

    def lines(self, max_memory: int) -> list[str]:
        """What the user is told, on stderr, before the run is watched again."""
        said = []
        if self.killed:
            dependents = len(self.jobs) - len(self.killed)
            after = f", with the {dependents} job(s) that waited on them" if dependents else ""
            said.append(f"{len(self.killed)} job(s) killed for memory: submitted again with up to {self.memory} MiB"
                        f"{after}")  # fmt: skip
        if self.capped:
            said.append(f"{len(self.capped)} job(s) killed for memory are not submitted again: they had --max-memory "
                        f"({max_memory} MiB) already, or were resubmitted once")  # fmt: skip
        return said


def killed_entries(record: RunRecord, latest: dict[str, JobDescription], executor: Executor) -> list[str]:
    """The record keys of the jobs whose last attempt was killed for memory (an array child's: its task's)."""
    keys = []
    for entry in record.jobs:
        description = latest.get(entry.job_id or "", {})
        attempts = description.get("attempts") or [{}]
        if description.get("status") == "FAILED" and executor.killed_for_memory(attempts[-1]):
            keys.append(entry.key)
    return keys


def doubled(job: Job, max_memory: int) -> Job | None:
    """``job`` with twice its memory (at most ``max_memory``) and its -m/-b derived again; None if no more."""
    memory = min(job.resources.memory * 2, max_memory)
    if memory <= job.resources.memory:
        return None
    return replace(job, resources=replace(job.resources, memory=memory), args=tuple(with_memory(job.args, memory)))


def plan_resubmission(
    jobs: Sequence[Job], killed: set[str], failed: set[str], once: set[str], max_memory: int
) -> Resubmission:
    """PURE. ``jobs``: the run's submissions in order; ``killed``: record keys of the jobs killed for memory (an
    array child's is its task's); ``failed``: record keys of those that did not succeed; ``once``: keys resubmitted
    before. The killed jobs doubled (``doubled``), then every failed job after one of them, in order.
    """
    again: dict[str, Job] = {}
    instead: dict[str, tuple[str, ...]] = {}  # an array's key -> its children submitted on their own
    resized, capped, uploads = [], [], []
    for job in jobs:  # in submission order: a job's dependencies come before it
        after = tuple(dict.fromkeys(key for dependency in job.after for key in instead.get(dependency, (dependency,))))
        own = [job] if not job.is_array else [replace(Job.of(task), after=job.after) for task in job.tasks]
        hit = [one for one in own if one.key in killed]
        bigger = {one.key: doubled(replace(one, after=after), max_memory) for one in hit if one.key not in once}
        capped += [one.key for one in hit if bigger.get(one.key) is None]
        for key, resized_job in bigger.items():
            if resized_job is not None:
                again[key] = resized_job
                resized.append(key)
                if job.is_array and resized_job.manifest is not None:
                    uploads.append(resized_job.manifest)
        if job.is_array and hit and {one.key for one in own if one.key in failed} <= set(resized):
            instead[job.key] = tuple(one.key for one in hit)
        elif (
            not hit
            and any(key in failed for key in (job.key, *(t.key for t in job.tasks)))
            and any(dependency in again or dependency in instead for dependency in job.after)
        ):
            again[job.key] = replace(job, after=after)
    memory = max((again[key].resources.memory for key in resized), default=0)
    return Resubmission(tuple(again.values()), tuple(resized), tuple(capped), tuple(uploads), memory)


def resubmit_killed(
    record: RunRecord,
    latest: dict[str, JobDescription],
    jobs: Sequence[Job],
    executor: Executor,
    storage: Storage,
    max_memory: int,
) -> Resubmission:
    """Submit again the jobs killed for memory and those after them; the record saved with the new job ids."""
    if not executor.enforces_memory():
        return Resubmission()  # more --memory would not help: the executor gives no job less than the machine has
    killed = set(killed_entries(record, latest, executor))
    if not killed:
        return Resubmission()
    failed = {entry.key for entry in record.jobs if latest.get(entry.job_id or "", {}).get("status") != "SUCCEEDED"}
    once = {entry.key for entry in record.jobs if entry.resubmitted is not None}
    planned = plan_resubmission(jobs, killed, failed, once, max_memory)
    for manifest in planned.uploads:
        storage.put(manifest.uri, manifest.body())
    ids = submission_ids(record)
    new: dict[str, str] = {}
    for job in planned.jobs:
        new[job.key] = ids[job.key] = executor.submit(job, ids, record.run_id)
    note_resubmitted(record, planned, new)
    record.save(storage)
    return planned


def submission_ids(record: RunRecord) -> dict[str, str]:
    """Each submission's job id by its key (an array child's entry names its array's: ``<array id>:<index>``)."""
    ids = {}
    for entry in record.jobs:
        if entry.job_id and entry.array and ":" in entry.job_id:
            ids[entry.array] = entry.job_id.rsplit(":", 1)[0]
        elif entry.job_id:
            ids[entry.key] = entry.job_id
    return ids


def note_resubmitted(record: RunRecord, planned: Resubmission, new: dict[str, str]) -> None:
    """The record's entries of the jobs submitted again: their new ids, and what they replace."""
    memory = {job.key: job.resources.memory for job in planned.jobs}
    for entry in record.jobs:
        key = entry.key if entry.key in new else entry.array if entry.array in new else None
        if key is None or not entry.job_id:
            continue
        entry.resubmitted = {"job_id": entry.job_id, "memory": memory[key], "killed": key in planned.killed}
        entry.job_id = new[key] if key == entry.key else f"{new[key]}:{entry.index}"


def resumed_memory(record: RunRecord, failed: Sequence[str], executor: Executor, memory: int, max_memory: int) -> (
    tuple[int, str | None]
):  # fmt: skip
    """--resume of a run some of whose jobs (``failed``: their keys) were killed for memory: its jobs' memory
    (twice what the run gave them, at most ``max_memory``, never less than ``memory``, this command's) and a note.
    """
    if not executor.enforces_memory() or not failed:
        return memory, None
    ids = [entry.job_id for entry in record.jobs if entry.key in set(failed) and entry.job_id]
    latest = describe_fully(executor, ids)
    killed = killed_entries(record, latest, executor)
    if not killed:
        return memory, None
    had = max([int(record.options.get("memory") or 0)] +
              [int(entry.resubmitted.get("memory", 0)) for entry in record.jobs if entry.resubmitted])  # fmt: skip
    given = max(memory, min(had * 2, max_memory))
    if given <= had:
        return memory, (f"{len(killed)} job(s) of run {record.run_id} were killed for memory with {had} MiB, and "
                        f"--max-memory is {max_memory} MiB: raise --max-memory to give them more")  # fmt: skip
    return given, f"{len(killed)} job(s) of run {record.run_id} were killed for memory: its jobs get {given} MiB"
