"""PURE planning: options and samples to a ``Plan`` of stages of tasks. No I/O, nothing executor-specific.

A task is one ``tiledbvcf`` invocation with its resources, its retry policy (a number, as
``--retries`` gives it) and the tasks it must wait for. Dependencies are logical: the jobs of
incremental batch k+1 wait for every job of batch k (or for the consolidation after it), however
many. How an executor honours that (AWS Batch allows 20 dependencies per job) is the executor's
business.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .bed import Bed
from .commands import (
    consolidation_commands,
    create_command,
    delete_commands,
    export_command,
    register_command,
    repair_command,
    split_evenly,
    store_command,
)
from .deliverables import DELIVERY_FILE, DeliverySpec, combined_name, manifest_location
from .inputs import Resources, Sample
from .options import ExportOptions, IngestOptions
from .repair import REPAIR, REPAIR_RESOURCES, Repair
from .storage import Location

CREATE_RESOURCES = Resources(vcpus=2, memory=4096)
CONSOLIDATE = "consolidate"  # utils consolidate/vacuum after a batch: not in the documented system
DELETE = "delete"  # --replace: samples deleted before they are stored again, one job after another
REGIONS = "regions.bed"  # an export's cleaned BED, in its run prefix beside the names files
STAGE_LABELS = {
    REPAIR: "input repair",  # --repair-to: before everything else
    "create": "array creation",
    DELETE: "sample deletion",
    "register": "sample registration",
    "ingest": "ingestion",
    CONSOLIDATE: "consolidation",
    "export": "export",
}


def add_stage(kind: str, label: str) -> None:
    """A stage an executor adds of its own (AWS Batch's barrier jobs), as the registry declares it
    (``executors/__init__.py``): its label, and records that hold it read."""
    STAGE_LABELS[kind] = label


@dataclass(frozen=True, order=True)
class Stage:
    """A step of a run: ``repair``, ``create``, ``delete-<n>``, ``register-<b>``, ``ingest-<b>``, ``consolidate-<b>``,
    ``export``, or an executor's own (``add_stage``)."""

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
    index_marker: Location | None = None  # lists this run among the dataset's runs (or its exports)
    notes: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()  # lines the plan's text shows under its header (the expected balance)
    uploads: tuple[Manifest, ...] = ()  # files every task reads, of no task of its own (export: delivery, BED)

    def manifests(self) -> list[Manifest]:
        """The files this run uploads: its own, then its tasks' manifests."""
        own = [task.manifest for task in self.tasks if task.manifest is not None and not task.manifest.existing]
        return [*self.uploads, *own]


@dataclass(frozen=True)
class StoreShare:
    """One store task's samples: its number in the batch, its manifest, and its samples' bytes (when known)."""

    index: int
    manifest: Manifest
    bytes: int = 0


@dataclass(frozen=True)
class IngestBatch:
    number: int
    shares: tuple[StoreShare, ...]
    register: Manifest | None = None  # legacy: the batch's registration manifest, when it must run
    count_based: tuple[int, ...] = ()  # with --balance bytes: the jobs' bytes had they been cut by count


def balance_by_bytes(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Longest processing time first: the indexes of ``sizes`` in ``parts`` groups of nearly equal sums.

    Largest first, each item goes to the group with the fewest bytes (on a tie the fewest items,
    then the first), so no group is empty while there are enough items, and the largest group
    is at most 4/3 of the best possible (Graham, 1969). Each group lists its indexes in order.
    """
    parts = min(parts, len(sizes))
    groups: list[list[int]] = [[] for _ in range(parts)]
    heap = [(0, 0, j) for j in range(parts)]  # (bytes, items, group): sorted, so already a heap
    for i in sorted(range(len(sizes)), key=sizes.__getitem__, reverse=True):  # stable: equal sizes in order
        load, items, j = heap[0]
        groups[j].append(i)
        heapq.heapreplace(heap, (load + sizes[i], items + 1, j))
    for group in groups:
        group.sort()
    return groups


def share_out(part: Sequence[Sample], weights: list[int], opts: IngestOptions) -> list[tuple[list[Sample], int]]:
    """One batch cut into --num-jobs shares, each with its bytes: contiguous by count, or balanced by bytes."""
    if opts.balance == "bytes":
        groups = balance_by_bytes(weights, opts.num_jobs)
        return [([part[i] for i in group], sum(map(weights.__getitem__, group))) for group in groups]
    by_count = zip(split_evenly(part, opts.num_jobs), split_evenly(weights, opts.num_jobs), strict=True)
    return [(chunk, sum(chunk_weights)) for chunk, chunk_weights in by_count]


def ingest_batches(
    samples: Sequence[Sample], opts: IngestOptions, run_prefix: Location, sizes: Mapping[str, int] | None = None
) -> tuple[list[IngestBatch], list[str]]:
    """Cut the samples into --incremental batches (in file order) of --num-jobs shares (see ``share_out``).

    ``sizes`` are the samples' bytes, by URI, as the preflight saw them: --balance bytes needs them.
    """
    batches, notes = [], []
    parts = split_evenly(samples, opts.incremental)
    if samples and len(parts) < opts.incremental:
        notes.append(f"--incremental {opts.incremental} asks for more batches than samples: using {len(parts)}")
    for b, part in enumerate(parts, start=1):
        weights = [sizes.get(sample.uri, 0) for sample in part] if sizes else [0] * len(part)
        shares = tuple(
            StoreShare(j, manifest(run_prefix.child(f"ingest-b{b:03d}-j{j:04d}.txt"), chunk), chunk_bytes)
            for j, (chunk, chunk_bytes) in enumerate(share_out(part, weights, opts), start=1)
        )
        if len(shares) < opts.num_jobs:
            notes.append(f"batch {b} has {len(part)} samples: submitting {len(part)} jobs instead of {opts.num_jobs}")
        register = manifest(run_prefix.child(f"register-b{b:03d}.txt"), part) if opts.register else None
        count_based = ()
        if opts.balance == "bytes":
            count_based = tuple(sum(chunk) for chunk in split_evenly(weights, opts.num_jobs))
        batches.append(IngestBatch(b, shares, register, count_based))
    return batches, notes


def imbalance(loads: Sequence[int]) -> float:
    """The largest job's bytes over the mean job's bytes: 1.0 is a perfect balance."""
    total = sum(loads)
    return max(loads) * len(loads) / total if total else 1.0


def balance_summary(batches: Sequence[IngestBatch], balance: str) -> str | None:
    """The expected imbalance of the store jobs (the worst batch's), and what count-based splitting gives."""
    loads = [[share.bytes for share in batch.shares] for batch in batches if batch.shares]
    if all(len(jobs) < 2 for jobs in loads) or not any(map(sum, loads)):
        return None  # one job per batch, or sizes unknown
    worst = f" (the worst of {len(loads)} batches)" if len(loads) > 1 else ""
    chosen = max(map(imbalance, loads))
    if balance != "bytes":
        return (
            f"Balance by count: the largest ingestion job holds {chosen:.2f}x the mean job's bytes{worst}; "
            "--balance bytes shares out bytes instead"
        )
    count = max(imbalance(batch.count_based) for batch in batches if batch.count_based)
    # A sample is never split: one larger than the mean job bounds the balance (fewer, larger jobs even it out).
    alone = chosen > 1.05 and any(
        imbalance(jobs) == chosen and len(batch.shares[jobs.index(max(jobs))].manifest.lines) == 1
        for batch, jobs in zip([b for b in batches if b.shares], loads, strict=True)
    )
    return (
        f"Balance by bytes: the largest ingestion job holds {chosen:.2f}x the mean job's bytes{worst}"
        + (", a single sample larger than the mean job" if alone else "")
        + f"; count-based splitting would give {count:.2f}x"
    )


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
    summary: Sequence[str] = (),
    replaces: Sequence[str] = (),
    repairs: Sequence[Repair] = (),
) -> Plan:
    """The ingestion tasks: [repair] -> [create | delete] -> per batch: [register] -> stores -> [consolidation] -> ...

    ``replaces``: names the dataset holds that this run stores again (--replace): deleted first, one
    deletion job after another (deletes must not run beside a store of the same samples). A batch
    without store tasks (a resumed run whose only failure was a consolidation) is its consolidation.
    """
    tasks: list[Task] = []
    ready: tuple[str, ...] = ()  # what the next stage waits for

    def add(key: str, stage: Stage, name: str, args: list[str], resources: Resources, manifest=None) -> None:
        samples = manifest.sample_uris() if manifest else ()
        tasks.append(Task(key, stage, name, tuple(args), resources, opts.retries, ready, manifest, samples))

    repair_keys = repair_tasks(opts, repairs, run_prefix, tasks)
    ready = repair_keys or ready  # every other job waits for the repaired files
    if opts.create_dataset:
        add("create", Stage("create"), "tiledbvcf-create", create_command(opts), CREATE_RESOURCES)
        ready = ("create",)
    for number, (names, args) in enumerate(delete_commands(opts, replaces), start=1):
        key = f"{DELETE}-{number}"
        tasks.append(Task(key, Stage(DELETE, number), f"tiledbvcf-delete-{number}", tuple(args), opts.resources,
                          opts.retries, ready, None, tuple(names)))  # fmt: skip
        ready = (key,)
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
        if batch.shares:
            ready = tuple(f"ingest-{b}-{share.index}" for share in batch.shares)
        if opts.consolidate and not opts.register:  # the legacy CLI has no utils
            for step, args in enumerate(consolidation_commands(opts), start=1):
                name = f"tiledbvcf-{args[1]}-{args[2].replace('_', '-')}-b{b}"
                add(f"{CONSOLIDATE}-{b}-{step}", Stage(CONSOLIDATE, b), name, args, opts.resources)
                ready = (f"{CONSOLIDATE}-{b}-{step}",)
    return Plan("ingest", run_id, run_prefix, tuple(tasks), str(opts.dataset_uri), index_marker, tuple(notes),
                tuple(summary))  # fmt: skip


def repair_tasks(
    opts: IngestOptions, repairs: Sequence[Repair], run_prefix: Location, tasks: list[Task]
) -> tuple[str, ...]:
    """One repair task an input (``--repair-to``), added to ``tasks``, each with its own manifest: its keys.

    The work directory is the scratch the store jobs use (the volume at /data on Batch), when they have one.
    """
    work_dir = opts.scratch_path if opts.scratch_size > 0 else None
    for number, repair in enumerate(repairs, start=1):
        manifest = Manifest(run_prefix.child(f"repair-{number:06d}.txt"), (repair.line(),))
        args = repair_command(str(manifest.uri), work_dir)
        tasks.append(Task(f"{REPAIR}-{number}", Stage(REPAIR), f"tiledbvcf-repair-{number}", tuple(args),
                          REPAIR_RESOURCES, opts.retries, (), manifest, (repair.source,)))  # fmt: skip
    return tuple(task.key for task in tasks if task.stage.kind == REPAIR)


def plan_export(opts: ExportOptions, names: Sequence[str], bed: Bed, run_id: str, run_prefix: Location) -> Plan:
    """One task per partition of the sorted names, each with a file of its own names; never an empty one.

    With --merge, one task per partition of the BED's intervals instead (``--region-partition``), each with all
    the names: never more tasks than intervals (tiledbvcf would give the others nothing). Every task reads the
    regions from the cleaned copy of ``bed`` (checked: it has intervals and no problem), uploaded with the run:
    never the user's file, which tiledbvcf may not parse and which may change meanwhile.
    """
    regions = Manifest(run_prefix.child(REGIONS), bed.lines())
    if opts.merge:
        partitions = [sorted(names)] * min(opts.num_jobs, len(regions.lines)) if names else []
    else:
        partitions = split_evenly(sorted(names), opts.num_jobs)
    notes = []
    if bed.dropped:
        notes.append(f"--bed {bed.source}: dropped {bed.dropped_text()}; the jobs read the cleaned copy {regions.uri}")
    if len(partitions) < opts.num_jobs:
        cut = f"{len(regions.lines)} intervals in the BED" if opts.merge else f"{len(names)} samples to export"
        notes.append(f"{cut}: submitting {len(partitions)} jobs instead of {opts.num_jobs}")
    spec = DeliverySpec(run_id, len(partitions), opts.output_format, opts.index,
                        str(manifest_location(opts.dest_s3, run_id)))  # fmt: skip
    delivery = Manifest(run_prefix.child(DELIVERY_FILE), (spec.to_json(),))
    tasks = []
    total = len(partitions)
    for i, chunk in enumerate(partitions, start=1):
        names_file = Manifest(run_prefix.child(f"export-names-{i:04d}.txt"), tuple(chunk))
        output = combined_name(run_id, i, total, opts.output_format) if opts.combined else None
        args = export_command(opts, str(names_file.uri), str(regions.uri), str(delivery.uri), output,
                              (i - 1, total) if opts.merge else None)  # fmt: skip
        tasks.append(Task(f"export-{i}", Stage("export"), f"tiledbvcf-export-{i}-of-{total}", tuple(args),
                          opts.resources, opts.retries, manifest=names_file, samples=tuple(chunk)))  # fmt: skip
    summary = f"Regions: {len(regions.lines)} intervals of --bed {bed.source}, cleaned copy {regions.uri}"
    return Plan("export", run_id, run_prefix, tuple(tasks), str(opts.dest_s3), notes=tuple(notes), summary=(summary,),
                uploads=(regions, delivery))  # fmt: skip


def plan_header(plan: Plan, jobs: int, where: str) -> list[str]:
    """The plan's own lines of the --dry-run text; the executor's jobs follow them (``executors.jobs``)."""
    return [
        f"Plan for {plan.kind} run {plan.run_id} ({jobs} jobs) {where}",
        f"Manifests and run record under {plan.run_prefix}",
        *plan.summary,
    ]


def plan_fields(plan: Plan, where: str) -> dict[str, object]:
    """The plan's own fields of the --dry-run --json document; the executor's jobs follow them."""
    return {
        "run_id": plan.run_id,
        "kind": plan.kind,
        "target": plan.target,
        "run_prefix": str(plan.run_prefix),
        "where": where,
        "summary": list(plan.summary),
    }
