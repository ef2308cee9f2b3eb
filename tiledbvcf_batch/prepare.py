"""The I/O around planning, for ingest and export side by side: preflight, the dataset, the ledger, resume.

Reads only. The result is a ``Prepared``: the plan (None when there is nothing to do), the
notes for the user, and the options as the run record keeps them.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .commands import redact_config, store_resources
from .dataset import DatasetReader, DatasetView, dataset_identity, registry_of
from .executors.base import Executor
from .headercheck import check_headers, readable
from .headers import new_header_problems
from .inputs import InputError, Sample
from .ledger import SUCCEEDED, Ledger, dataset_ledger, job_states, resume_batches, skip_known_samples
from .oom import resumed_memory
from .options import ExportOptions, IngestOptions
from .plan import (
    CONSOLIDATE,
    DELETE,
    IngestBatch,
    Plan,
    Stage,
    balance_summary,
    ingest_batches,
    plan_ingest,
)
from .preflight import check_bucket, check_samples, check_writable, dataset_exists
from .record import RunRecord, dataset_index, load_or_fail, new_run_id, record_uri_of, run_prefix_for
from .registry import Claim, Entry, answered, read_entries, withdrawn_runs
from .repair import REPAIR, REPAIR_TOOLS
from .repaircheck import Repairs, find_repairs, needed, repair_root
from .storage import LocalPath, Location, S3Uri, Storage, parse_location

ExecutorFor = Callable[[RunRecord], Executor]  # the executor that ran a recorded run
Say = Callable[[str], None]  # a progress line for the user (stderr, or nowhere with --quiet)
# From this many samples the checks take seconds and say so as they start; below, a bad input stays one line.
ANNOUNCE_FROM = 1000


@dataclass
class Prepared:
    plan: Plan | None  # None: nothing to submit
    notes: list[str]
    options: dict[str, Any]  # what the run record keeps
    sample_names: dict[str, str] = field(default_factory=dict)  # sample URI -> name, where headers were read
    blocked: int = 0  # samples skipped because their jobs in an earlier run failed (resume that run)
    claim: Claim | None = None  # what the run registers beside the dataset before it uploads anything
    sizes: dict[str, int] = field(default_factory=dict)  # sample URI -> bytes, for the estimate
    measured: tuple[dict[str, Any], ...] = ()  # what earlier runs of the dataset measured, for the estimate
    discovery: dict[str, Any] | None = None  # --samples PREFIX: what was found and left out (its --json part)


def recorded_options(opts: IngestOptions | ExportOptions, **extras: Any) -> dict[str, Any]:
    """The options as the run record keeps them: the flags' names, secrets hidden."""
    options: dict[str, Any] = {}
    for name in (f.name for f in fields(opts)):
        value = getattr(opts, name)
        options[name] = (
            str(value) if isinstance(value, S3Uri | LocalPath) else list(value) if isinstance(value, tuple) else value
        )
    options["tiledb_config"] = redact_config(opts.tiledb_config)
    return options | extras


def ingest_preflight(
    opts: IngestOptions,
    samples: list[Sample],
    storage: Storage,
    executor: Executor,
    say: Say = lambda line: None,
    repair_root: Location | None = None,
) -> tuple[list[str], dict[str, int], dict[str, str], Repairs | None]:
    """A note, the samples' sizes and (where headers are read) names, and with --repair-to (files under
    ``repair_root``) the repairs; or an InputError listing every problem.

    Headers are read with --check-headers or --repair-to, and always for the samples that are local files.
    ``say`` announces each phase as it starts: on a cohort they take seconds, and no phase is silent.
    """
    s3 = storage.s3
    say = say if len(samples) >= ANNOUNCE_FROM else lambda line: None
    say(f"Checking {len(samples)} samples and their indexes, the job queue and the buckets")
    # The queue, the job definition and the buckets are checked while the samples are: a few calls
    # each, that would otherwise wait one after another. The problems keep their order.
    with ThreadPoolExecutor(max_workers=3) as pool:
        checks = [
            pool.submit(executor.preflight),
            pool.submit(check_writable, s3, opts.metadata_s3, "--metadata-s3", storage.encryption),
        ]
        if isinstance(opts.dataset_uri, S3Uri):
            checks.append(pool.submit(check_bucket, s3, opts.dataset_uri.bucket, "--dataset-uri"))
        sample_problems, sizes = check_samples(s3, samples)
        problems = [problem for check in checks for problem in check.result()]
    problems += named_index_with_scratch(opts, samples)
    problems += executor.scratch_problems(opts.scratch_path) if opts.scratch_size else []
    if repair_root is not None and opts.repair_to is not None:
        problems += check_writable(s3, opts.repair_to, "--repair-to", storage.encryption)
        problems += executor.tool_problems(REPAIR_TOOLS)
        say(f"Reading the headers of {len(samples)} samples (--repair-to)")
        repairs = find_repairs(s3, samples, sizes, sample_problems, repair_root, opts.scratch_size > 0)
        if problems or repairs.problems:
            raise InputError([*problems, *repairs.problems])
        note = f"{len(samples)} inputs, {sum(sizes.values()) / 2**30:.2f} GiB"
        return [note], {**sizes, **repairs.sizes}, repairs.names, repairs
    problems += sample_problems
    names: dict[str, str] = {}
    # Local files' headers are always read (it costs nothing), beside S3 samples too; all with --check-headers.
    wanted = samples if opts.check_headers else [sample for sample in samples if not sample.uri.startswith("s3://")]
    if wanted:  # every problem at once: a file's own problems do not wait for its index's
        read = readable(wanted, sizes)
        say(f"Reading the headers of {len(read)} samples")
        header_problems, names = check_headers(s3, read)
        problems += new_header_problems(header_problems, sample_problems)
    if problems:
        raise InputError(problems)
    note = f"{len(samples)} samples, {sum(sizes.values()) / 2**30:.2f} GiB, all present with their indexes"
    return [note], sizes, names, None


def named_index_with_scratch(opts: IngestOptions, samples: list[Sample]) -> list[str]:
    """tiledbvcf's trap: with -d/-s it downloads a named S3 index over the sample's own scratch copy."""
    named = [s for s in samples if s.index_uri is not None and s.uri.startswith("s3://")]
    if not named or opts.scratch_size == 0:
        return []
    return [
        f"{len(named)} samples name their index after a TAB (e.g. {named[0].uri}): with scratch space tiledbvcf "
        "downloads such an index over the sample's own copy and the job fails; pass --scratch-size 0 to stream "
        "the samples, or put each index beside its sample (<sample>.csi) and drop it from the line"
    ]


@dataclass(frozen=True)
class DatasetState:
    """The dataset as this run found it: whether it exists, its samples (when readable), its registered runs."""

    exists: bool
    view: DatasetView
    entries: tuple[Entry, ...] = ()
    withdrawn: frozenset[str] = frozenset()  # runs rolled back: their entries hold nothing

    def live(self) -> list[Entry]:
        return [entry for entry in self.entries if entry.run_id not in self.withdrawn]

    @property
    def seen(self) -> int:
        return max((entry.number for entry in self.entries), default=0)


def dataset_state(opts: IngestOptions, storage: Storage, read_dataset: DatasetReader) -> DatasetState:
    exists = dataset_exists(storage.s3, opts.dataset_uri)
    view = read_dataset(opts.dataset_uri) if exists else DatasetView(str(opts.dataset_uri), frozenset())
    registry = registry_of(opts.dataset_uri)
    with answered(registry, "read"):
        entries = tuple(read_entries(storage, registry))
        withdrawn = frozenset(withdrawn_runs(storage, registry)) if entries else frozenset()
    return DatasetState(exists, view, entries, withdrawn)


def ingest(
    opts: IngestOptions,
    samples: list[Sample],
    storage: Storage,
    executor: Executor,
    executor_for: ExecutorFor,
    *,
    read_dataset: DatasetReader,
    resume: str | None = None,
    instance_price: float,
    say: Say = lambda line: None,
) -> Prepared:
    """Check everything, read the dataset, decide what to create, skip, replace or resume, and plan the ingestion."""
    run_id = new_run_id("ingest")
    root = repair_root(opts, run_id, resume, storage)
    notes, sizes, names, repairs = ingest_preflight(opts, samples, storage, executor, say, root)
    samples = list(repairs.samples) if repairs else samples
    state = dataset_state(opts, storage, read_dataset)
    notes += existing_dataset(opts, state, say)
    opts = replace(opts, create_dataset=not state.exists)
    run_prefix = run_prefix_for(opts.metadata_s3, run_id)
    blocked, summary = 0, None
    replaces: tuple[str, ...] = ()
    measured: tuple[dict[str, Any], ...] = ()
    unrepaired = None  # a resumed run: the inputs whose repair did not succeed
    if resume:
        opts, batches, more, replaces, unrepaired = resume_run(opts, samples, resume, storage, executor_for)
    else:
        decided = decide_samples(opts, samples, names, state, storage, executor_for, say)
        batches, split = ingest_batches(decided.samples, opts, run_prefix, sizes)
        more, blocked, replaces = [*decided.notes, *split], decided.blocked, decided.replaces
        measured = decided.measured
        summary = balance_summary(batches, opts.balance)
    notes += [*more, *([summary] if summary else [])]
    if not batches:
        return Prepared(None, [*notes, "Nothing to ingest: no job submitted"], {}, blocked=blocked)
    marker = dataset_index(opts.metadata_s3, opts.dataset_uri).child(f"{run_id}.json")
    shown = [*([summary] if summary else []), store_resources(opts)]  # the plan's text, --dry-run and --verbose
    repaired = needed(repairs, batches, notes, unrepaired)
    plan = plan_ingest(opts, batches, run_id, run_prefix, index_marker=marker, summary=shown, replaces=replaces,
                       repairs=repaired)  # fmt: skip
    uris = [uri for task in plan.tasks if task.stage.kind == "ingest" for uri in task.samples]
    names = {uri: names[uri] for uri in uris if uri in names}
    options = recorded_options(
        opts,
        samples_count=len(uris),
        sample_bytes=sum(sizes.get(uri, 0) for uri in uris),
        resumes=resume,
        instance_price=instance_price,
        repair_root=str(root) if root else None,
    )
    claim = Claim(registry_of(opts.dataset_uri), run_id, str(record_uri_of(run_prefix)), tuple(uris), names,
                  state.seen, tuple(replaces))  # fmt: skip
    return Prepared(plan, notes, options, names, claim=claim, sizes=sizes, measured=measured)


def existing_dataset(opts: IngestOptions, state: DatasetState, say: Say) -> list[str]:
    """The note on a dataset that exists (none for a new one)."""
    if not state.exists:
        return []
    if not state.view.readable:
        say(state.view.warning())  # now: a refusal that follows must not hide why the records decided
    return [
        f"dataset {opts.dataset_uri} exists"
        + (f" and holds {len(state.view.samples)} samples" if state.view.samples is not None else "")
        + ": no array creation job"
        + (" and --attributes is ignored (it only applies at creation)" if opts.attributes else "")
    ]


@dataclass(frozen=True)
class Decided:
    """The samples a new run ingests, why others are not, and the names it deletes first (--replace)."""

    samples: list[Sample]
    notes: list[str]
    blocked: int = 0  # skipped because their jobs in an earlier run failed
    replaces: tuple[str, ...] = ()
    measured: tuple[dict[str, Any], ...] = ()  # what earlier runs of the dataset measured (estimate.py)


def decide_samples(
    opts: IngestOptions,
    samples: list[Sample],
    names: dict[str, str],
    state: DatasetState,
    storage: Storage,
    executor_for: ExecutorFor,
    say: Say,
) -> Decided:
    """The samples no run of the dataset holds, has ingested or is ingesting: the dataset decides, the records help.

    ``names`` (sample URI -> name) grows with the headers read here: they are recorded with the run.
    """
    notes: list[str] = []
    ledger = dataset_ledger(storage, executor_for, opts.metadata_s3, opts.dataset_uri, state.live())
    for damaged in ledger.damaged:
        notes.append(
            f"WARNING: {damaged}. Its samples are unknown to the check of earlier runs: a sample it ingested "
            "would be ingested again"
        )
    if ledger.in_flight and not state.exists:
        raise InputError(still_creating(opts, sorted(set(ledger.in_flight.values()))))
    if not state.exists and ledger.ingested:
        notes.append(f"dataset {opts.dataset_uri} does not exist any more: the record of earlier runs is ignored")
        ledger = Ledger(measured=ledger.measured)  # their throughput still tells what ingesting takes
    view = state.view
    blocked = 0 if opts.force_reingest else sum(sample.uri in ledger.failed for sample in samples)

    def gone(uri: str) -> bool:  # ingested by an earlier run, since deleted from the dataset
        name = ledger.name_of(uri) or names.get(uri)
        return view.samples is not None and name is not None and name not in view.samples

    samples, skipped = skip_known_samples(samples, ledger, force=opts.force_reingest, gone=gone)
    notes += skipped
    for uri, name in ledger.uri_names.items():
        names.setdefault(uri, name)
    unread = [sample for sample in samples if sample.uri not in names]
    if unread and (view.samples or (not view.readable and ledger.names) or ledger.names_in_flight):
        # The dataset holds samples: each new one's name is read (one ranged GET), or a name could be stored twice.
        if len(unread) >= ANNOUNCE_FROM:
            say(f"Reading the headers of {len(unread)} samples new to the dataset")
        header_problems, read = check_headers(storage.s3, unread)
        if header_problems:
            raise InputError(header_problems)
        names.update(read)
    samples, held = held_by_runs(samples, names, ledger)
    notes += held
    if not view.readable:  # the records are all there is to go by: the names earlier runs ingested
        view = replace(view, samples=frozenset(ledger.names))
    decided = in_the_dataset(opts, samples, names, view, notes, blocked)
    return replace(decided, measured=tuple(ledger.measured))


def still_creating(opts: IngestOptions, run_ids: list[str]) -> str:
    waits = "; ".join(
        f"python batch-runs.py wait {shlex.quote(str(record_uri_of(run_prefix_for(opts.metadata_s3, run_id))))}"
        for run_id in run_ids
    )
    return (
        f"run {', '.join(run_ids)} is still creating and ingesting {opts.dataset_uri}: wait for it to finish "
        f"({waits}) before starting another run of this dataset"
    )


def held_by_runs(samples: list[Sample], names: dict[str, str], ledger: Ledger) -> tuple[list[Sample], list[str]]:
    """Samples whose name a run in flight is ingesting from another file: not planned, the run named."""
    keep: list[Sample] = []
    held: dict[str, list[str]] = {}
    for sample in samples:
        holder = ledger.names_in_flight.get(names.get(sample.uri, ""))
        if holder is None:
            keep.append(sample)
        else:
            held.setdefault(holder, []).append(f"{names[sample.uri]} ({sample.uri})")
    notes = [
        f"skipped {len(items)} samples whose names run {run_id} is still ingesting from other files: "
        f"{', '.join(items[:5])}{', ...' if len(items) > 5 else ''}"
        for run_id, items in held.items()
    ]
    return keep, notes


def in_the_dataset(
    opts: IngestOptions, samples: list[Sample], names: dict[str, str], view: DatasetView, notes: list[str], blocked: int
) -> Decided:
    """Samples whose name the dataset holds: refused (all named), skipped (--skip-existing) or replaced (--replace)."""
    present = [sample for sample in samples if view.holding([names.get(sample.uri, "")])]
    if not present:
        return Decided(samples, notes, blocked)
    listed = ", ".join(f"{names[s.uri]} ({s.uri})" for s in present)
    if opts.skip_existing:
        kept = [sample for sample in samples if sample not in present]
        return Decided(kept, [*notes, f"skipped {len(present)} samples the dataset already holds: {listed}"], blocked)
    if opts.replace:
        replaced = tuple(names[sample.uri] for sample in present)
        note = f"replacing {len(present)} samples the dataset holds (deleted first, then stored): {listed}"
        return Decided(samples, [*notes, note], blocked, replaced)
    raise InputError(
        f"{len(present)} samples are already in dataset {opts.dataset_uri}: {listed}. Storing them again would "
        "double their records: pass --skip-existing to ingest the others, or --replace to delete these from the "
        "dataset and store them again"
    )


def resume_run(
    opts: IngestOptions, samples: list[Sample], run_id: str, storage: Storage, executor_for: ExecutorFor
) -> tuple[IngestOptions, list[IngestBatch], list[str], tuple[str, ...], frozenset[str]]:
    """The unfinished jobs of run ``run_id``, checked against this command's dataset and samples; and the inputs
    whose repair (--repair-to) did not succeed."""
    uri = record_uri_of(run_prefix_for(opts.metadata_s3, run_id))
    record = load_or_fail(storage, uri, f"--resume {run_id}: check the run id and --metadata-s3")
    if record.kind != "ingest" or same_dataset(record.target) != str(opts.dataset_uri):
        raise InputError(f"--resume {run_id}: that run ingested into {record.target}, not {opts.dataset_uri}")
    repaired_to = record.options.get("repair_to")
    if repaired_to != (str(opts.repair_to) if opts.repair_to else None):
        now = f"--repair-to {opts.repair_to}" if opts.repair_to else "no --repair-to"
        then = f"--repair-to {repaired_to}" if repaired_to else "no --repair-to"
        raise InputError(f"--resume {run_id}: that run had {then}, this command {now}: give it as that run did")
    recorded = {uri for job in record.jobs if job.kind == "ingest" for uri in job.samples}
    given = {sample.uri for sample in samples}
    if recorded != given:
        raise InputError(
            f"--resume {run_id}: --samples lists {len(given - recorded)} samples that run did not have and "
            f"lacks {len(recorded - given)} it had: pass the samples file of that run"
        )
    # store --resume only matches the original sample batches: keep what shaped them.
    original = record.options
    opts = replace(opts, register=original.get("register", False), sample_batch_size=original.get("sample_batch_size"))
    # Asked of the executor that ran it: a Batch run resumed here must not read as finished.
    ran_it = executor_for(record)
    states = job_states(record, storage, ran_it)
    failed = [key for key, state in states.items() if state != SUCCEEDED]
    memory, killed = resumed_memory(record, failed, ran_it, opts.memory, opts.max_memory)
    opts = replace(opts, memory=memory)
    batches = resume_batches(record, states, ran_it.resumed(record.jobs, storage))
    unrepaired = frozenset(job.samples[0] for job in record.jobs if job.kind == REPAIR and states[job.key] != SUCCEEDED)
    # Samples the run was to delete first (--replace): deleted again if that did not succeed, before their store.
    replaces = tuple(name for job in record.jobs if job.kind == DELETE and states[job.key] != SUCCEEDED
                     for name in job.samples)  # fmt: skip
    notes = ["--resume keeps the run's original manifests: --balance does not apply"] if opts.balance != "count" else []
    notes += [killed] if killed else []
    jobs = sum(len(b.shares) + (b.register is not None) for b in batches)
    unconsolidated = [Stage.parse(job.stage).batch or 0 for job in record.jobs
                      if job.kind == CONSOLIDATE and states[job.key] != SUCCEEDED]  # fmt: skip
    if not batches and unconsolidated and opts.consolidate and not opts.register:
        # Every sample is in: only the consolidation is left to do, once, for the whole dataset.
        batches = [IngestBatch(max(unconsolidated), ())]
        done = f"resuming run {run_id}: its ingestion jobs succeeded, consolidating again"
        return opts, batches, [*notes, done], (), unrepaired
    more = f"resuming run {run_id}: resubmitting {jobs} jobs that did not succeed"
    return opts, batches, [*notes, more], replaces, unrepaired


def same_dataset(target: str) -> str:
    """A recorded dataset URI as this version spells it (older records kept local paths as typed)."""
    try:
        return dataset_identity(parse_location(target, "dataset"))
    except ValueError:
        return target
