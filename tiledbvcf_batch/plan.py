"""PURE planning: options and samples to a ``Plan`` of stages of tasks. No I/O, nothing executor-specific.

A task is one ``tiledbvcf`` invocation with its resources, its retry policy (a number, as
``--retries`` gives it) and the tasks it must wait for. Dependencies are logical: the jobs of
incremental batch k+1 wait for every job of batch k, however many. How an executor honours
that (AWS Batch allows 20 dependencies per job) is the executor's business.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from .commands import create_command, export_command, redact_command, register_command, split_evenly, store_command
from .inputs import ExportOptions, IngestOptions, Resources, Sample
from .storage import Location

CREATE_RESOURCES = Resources(vcpus=2, memory=4096)
# An executor may add stages of its own: AWS Batch's barrier jobs (executors/batch.py), whose stage
# records have spelled "gate" since the first release. Named here so that every record reads.
BARRIER = "gate"
STAGE_LABELS = {
    "create": "array creation",
    "register": "sample registration",
    "ingest": "ingestion",
    BARRIER: "batch barrier",
    "export": "export",
}


@dataclass(frozen=True, order=True)
class Stage:
    """A step of a run: ``create``, ``register-<b>``, ``ingest-<b>``, ``gate-<b>`` or ``export``."""

    kind: str
    batch: int | None = None

    def __str__(self) -> str:
        return self.kind if self.batch is None else f"{self.kind}-{self.batch}"

    @classmethod
    def parse(cls, text: str) -> Stage:
        kind, _, batch = text.partition("-")
        return cls(kind, int(batch) if batch else None)

    @property
    def label(self) -> str:
        label = STAGE_LABELS[self.kind]
        return label if self.batch is None else f"{label} {self.batch}"


@dataclass(frozen=True)
class Manifest:
    uri: Location
    lines: tuple[str, ...]
    existing: bool = False  # already in S3 (a resumed run reuses the original manifests)

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode("utf-8")

    def sample_uris(self) -> tuple[str, ...]:
        return tuple(line.split("\t", 1)[0] for line in self.lines)


@dataclass(frozen=True)
class Task:
    """One tiledbvcf invocation of a run."""

    key: str  # unique within the run; dependencies refer to it
    stage: Stage
    name: str
    args: tuple[str, ...]  # tiledbvcf's arguments
    resources: Resources
    retries: int  # --retries, as given: what it means is the executor's (see its retry policy)
    after: tuple[str, ...] = ()  # keys of the tasks that must succeed first
    manifest: Manifest | None = None
    samples: tuple[str, ...] = ()  # sample URIs (ingest) or names (export)


@dataclass(frozen=True)
class Plan:
    kind: str  # "ingest" or "export"
    run_id: str
    run_prefix: Location
    tasks: tuple[Task, ...]
    target: str  # the dataset (ingest) or the destination prefix (export)
    index_marker: Location | None = None  # lists this run among the dataset's runs (ingest)
    notes: tuple[str, ...] = ()

    def manifests(self) -> list[Manifest]:
        """The manifests this run uploads."""
        return [task.manifest for task in self.tasks if task.manifest is not None and not task.manifest.existing]


@dataclass(frozen=True)
class StoreShare:
    """One store task's samples: its number in the batch, and its manifest."""

    index: int
    manifest: Manifest


@dataclass(frozen=True)
class IngestBatch:
    number: int
    shares: tuple[StoreShare, ...]
    register: Manifest | None = None  # legacy: the batch's registration manifest, when it must run


def ingest_batches(
    samples: Sequence[Sample], opts: IngestOptions, run_prefix: Location
) -> tuple[list[IngestBatch], list[str]]:
    """Cut the samples into --incremental batches of --num-jobs shares, in file order."""
    batches, notes = [], []
    parts = split_evenly(samples, opts.incremental)
    if samples and len(parts) < opts.incremental:
        notes.append(f"--incremental {opts.incremental} asks for more batches than samples: using {len(parts)}")
    for b, part in enumerate(parts, start=1):
        shares = tuple(
            StoreShare(j, manifest(run_prefix.child(f"ingest-b{b:03d}-j{j:04d}.txt"), chunk))
            for j, chunk in enumerate(split_evenly(part, opts.num_jobs), start=1)
        )
        if len(shares) < opts.num_jobs:
            notes.append(f"batch {b} has {len(part)} samples: submitting {len(part)} jobs instead of {opts.num_jobs}")
        register = manifest(run_prefix.child(f"register-b{b:03d}.txt"), part) if opts.register else None
        batches.append(IngestBatch(b, shares, register))
    return batches, notes


def manifest(uri: Location, samples: Sequence[Sample]) -> Manifest:
    return Manifest(uri, tuple(sample.manifest_line() for sample in samples))


def plan_ingest(
    opts: IngestOptions,
    batches: Sequence[IngestBatch],
    run_id: str,
    run_prefix: Location,
    *,
    index_marker: Location | None = None,
    notes: Sequence[str] = (),
) -> Plan:
    """The ingestion tasks: [create] -> per batch: [register] -> store tasks -> the next batch."""
    tasks: list[Task] = []
    ready: tuple[str, ...] = ()  # what the next stage waits for

    def add(key: str, stage: Stage, name: str, args: list[str], resources: Resources, manifest=None) -> None:
        samples = manifest.sample_uris() if manifest else ()
        tasks.append(Task(key, stage, name, tuple(args), resources, opts.retries, ready, manifest, samples))

    if opts.create_dataset:
        add("create", Stage("create"), "tiledbvcf-create", create_command(opts), CREATE_RESOURCES)
        ready = ("create",)
    for batch in batches:
        b = batch.number
        if batch.register is not None:
            register_args = register_command(opts, str(batch.register.uri))
            add(f"register-{b}", Stage("register", b), f"tiledbvcf-register-b{b}", register_args, opts.resources,
                batch.register)  # fmt: skip
            ready = (f"register-{b}",)
        for share in batch.shares:
            store_args = store_command(opts, str(share.manifest.uri))
            add(f"ingest-{b}-{share.index}", Stage("ingest", b), f"tiledbvcf-ingest-b{b}-j{share.index}", store_args,
                opts.resources, share.manifest)  # fmt: skip
        ready = tuple(f"ingest-{b}-{share.index}" for share in batch.shares)
    return Plan("ingest", run_id, run_prefix, tuple(tasks), opts.dataset_uri, index_marker, tuple(notes))


def plan_export(opts: ExportOptions, names: Sequence[str], run_id: str, run_prefix: Location) -> Plan:
    """One task per partition of the sorted names, each with a file of its own names; never an empty one."""
    partitions = split_evenly(sorted(names), opts.num_jobs)
    notes = []
    if len(partitions) < opts.num_jobs:
        notes.append(f"{len(names)} samples to export: submitting {len(partitions)} jobs instead of {opts.num_jobs}")
    tasks = []
    for i, chunk in enumerate(partitions, start=1):
        names_file = Manifest(run_prefix.child(f"export-names-{i:04d}.txt"), tuple(chunk))
        tasks.append(
            Task(
                key=f"export-{i}",
                stage=Stage("export"),
                name=f"tiledbvcf-export-{i}-of-{len(partitions)}",
                args=tuple(export_command(opts, str(names_file.uri))),
                resources=opts.resources,
                retries=opts.retries,
                manifest=names_file,
                samples=tuple(chunk),
            )
        )
    return Plan("export", run_id, run_prefix, tuple(tasks), str(opts.dest_s3), notes=tuple(notes))


def retries_text(retries: int) -> str:
    return "retried on host loss only" if retries == 1 else f"{retries} attempts"


def describe_plan(plan: Plan, tasks: Sequence[Task], where: str) -> list[str]:
    """The plan as text, for --dry-run: ``tasks`` are what the executor will run, in order."""
    lines = [
        f"Plan for {plan.kind} run {plan.run_id} ({len(tasks)} jobs) {where}",
        f"Manifests and run record under {plan.run_prefix}",
    ]
    for task in tasks:
        deps = f" after {', '.join(task.after)}" if task.after else ""
        lines.append(
            f"  {task.key}: {task.name} [{task.resources.vcpus} vCPU, {task.resources.memory} MiB, "
            f"{retries_text(task.retries)}]{deps}"
        )
        lines.append(f"    {shlex.join(['tiledbvcf', *redact_command(task.args)])}")
        if task.manifest is not None:
            lines.append(f"    manifest {task.manifest.uri}: {len(task.manifest.lines)} samples")
        elif task.samples:
            lines.append(f"    samples: {len(task.samples)}")
    return lines


def plan_document(plan: Plan, tasks: Sequence[Task], where: str) -> dict[str, object]:
    """The plan as one JSON document, for --dry-run --json."""
    return {
        "run_id": plan.run_id,
        "kind": plan.kind,
        "target": plan.target,
        "run_prefix": str(plan.run_prefix),
        "where": where,
        "jobs": [
            {
                "key": task.key,
                "name": task.name,
                "stage": str(task.stage),
                "command": redact_command(task.args),
                "vcpus": task.resources.vcpus,
                "memory": task.resources.memory,
                "retries": task.retries,
                "after": list(task.after),
                "manifest": str(task.manifest.uri) if task.manifest else None,
                "samples": len(task.samples),
            }
            for task in tasks
        ],
    }
