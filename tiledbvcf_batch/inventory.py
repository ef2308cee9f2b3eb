"""What a dataset holds and the runs that wrote it (``batch-runs.py dataset``): read from the dataset itself.

The samples are the dataset's own (``dataset.DatasetView``). The runs are those registered beside it
(``registry``), plus, where a --metadata-s3 is given, those older versions listed there
(``record.dataset_index``); the ledger judges them by their jobs, as a new ingestion would. Together
they tell what no single source does: which runs are still under way, and which samples the dataset
lists only partly. ``tiledbvcf store`` writes a batch's VCF headers before its records, so a sample of a
failed job can be listed by the dataset without all its data.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from . import executors
from .dataset import DatasetReader, DatasetView, registry_of
from .executors.base import Executor, JobDescription
from .headercheck import check_headers
from .inputs import InputError, Sample
from .ledger import SUCCEEDED, UNFINISHED, Ledger, dataset_ledger, job_states
from .options import IngestOptions
from .preflight import dataset_exists
from .record import RUN_RECORD_NAME, RUNS_PREFIX, RunRecord
from .registry import Entry, read_entries, withdrawn_runs
from .storage import Location, Storage

# A run's state, as the JSON document spells it; the text says the same in words (TEXT).
RUN_SUCCEEDED, RUN_FAILED, RUN_IN_FLIGHT = "succeeded", "failed", "in_flight"
RUN_WITHDRAWN, RUN_UNRECORDED, RUN_DAMAGED = "withdrawn", "unrecorded", "damaged"
TEXT = {RUN_IN_FLIGHT: "in flight", RUN_UNRECORDED: "no record"}
# Options a resumed run takes from the command line, not from its record: given again where the run changed them.
RESOURCES = ("vcpus", "memory", "retries")
# Headers read (one ranged GET each) to name the samples of failed jobs whose runs did not record their names.
MAX_HEADER_READS = 10_000


@dataclass(frozen=True)
class Run:
    """One run of the dataset: where it is recorded, and what became of it."""

    run_id: str
    created_at: str | None
    record: str
    state: str
    samples: int  # the samples it was to ingest
    registered: bool  # beside the dataset; else only listed under --metadata-s3 (an older version's run)


@dataclass(frozen=True)
class InFlight:
    """A run still under way, and the samples (URI, name where known) it is still ingesting."""

    run_id: str
    record: str
    samples: tuple[tuple[str, str | None], ...]
    unrecorded_for: float | None = None  # seconds since it registered, while its record does not exist yet


@dataclass(frozen=True)
class Partial:
    """Samples the dataset lists whose ingestion job failed in ``run_id``, and the two ways to finish them."""

    run_id: str
    record: str
    samples: tuple[tuple[str, str], ...]  # (name, URI), by name
    unnamed: int  # more samples of its failed jobs whose names cannot be read: the dataset may list them too
    resume: str
    replace: str


@dataclass(frozen=True)
class Inventory:
    view: DatasetView
    runs: tuple[Run, ...]
    in_flight: tuple[InFlight, ...]
    partial: tuple[Partial, ...] | None  # None: the dataset's samples could not be read
    warnings: tuple[str, ...] = ()


def read_inventory(
    storage: Storage,
    executor_for: Callable[[RunRecord], Executor],
    read_dataset: DatasetReader,
    dataset: Location,
    metadata: Location | None = None,
) -> Inventory:
    """The inventory of ``dataset`` (one spelling: inputs.parse_dataset_uri); InputError if there is none."""
    if not dataset_exists(storage.s3, dataset, "DATASET_URI"):
        raise InputError(f"dataset {dataset} does not exist (nothing is stored under it): check the URI")
    registry = registry_of(dataset)
    entries = read_entries(storage, registry)
    withdrawn = withdrawn_runs(storage, registry) if entries else set()
    view = read_dataset(dataset)
    return take_inventory(storage, executor_for, dataset, view, entries, withdrawn, metadata)


class Remembering:
    """An executor whose answers are kept: a run's state is judged on what the ledger was told, not asked twice."""

    def __init__(self, executor: Executor):
        self.executor = executor
        self.answers: dict[tuple[str, ...], dict[str, JobDescription]] = {}

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        key = tuple(ids)
        if key not in self.answers:
            self.answers[key] = self.executor.describe(ids)
        return self.answers[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.executor, name)


def take_inventory(
    storage: Storage,
    executor_for: Callable[[RunRecord], Executor],
    dataset: Location,
    view: DatasetView,
    entries: Sequence[Entry],
    withdrawn: set[str],
    metadata: Location | None = None,
) -> Inventory:
    """The dataset's samples, its runs and their states, the runs in flight and the samples listed only partly."""
    seen: dict[str, tuple[RunRecord, Remembering]] = {}

    def remembered(record: RunRecord) -> Executor:
        executor = Remembering(executor_for(record))
        seen[record.run_id] = (record, executor)
        return cast(Executor, executor)

    live = [entry for entry in entries if entry.run_id not in withdrawn]  # a withdrawn run holds nothing
    # Without --metadata-s3 only the registry counts: the ledger's metadata index is then looked up inside the
    # registry, where nothing is ever listed.
    ledger = dataset_ledger(storage, remembered, metadata, dataset, live)
    records = {run_id: record for run_id, (record, _) in seen.items()}
    states = {run_id: run_state(job_states(record, storage, cast(Executor, executor)))
              for run_id, (record, executor) in seen.items()}  # fmt: skip
    runs = listed_runs(entries, withdrawn, records, states, ledger)
    names = {uri: name for entry in entries for uri, name in entry.names.items()} | ledger.uri_names
    names |= failed_names(storage, view, ledger, names)
    warnings = tuple(f"WARNING: {damaged}. Its samples are left out of what this shows" for damaged in ledger.damaged)
    return Inventory(
        view,
        runs,
        runs_in_flight(runs, ledger, names),
        partly_ingested(view, ledger, names, runs, records, dataset),
        warnings,
    )


def run_state(states: dict[str, str]) -> str:
    """A recorded run is in flight while any job is, else succeeded when every job did."""
    if UNFINISHED in states.values():
        return RUN_IN_FLIGHT
    return RUN_SUCCEEDED if all(state == SUCCEEDED for state in states.values()) else RUN_FAILED


def ingest_samples(record: RunRecord) -> int:
    return sum(len(job.samples) for job in record.jobs if job.kind == "ingest")


def run_id_of(record_uri: str) -> str:
    """``<metadata>/tiledbvcf-batch/runs/<run id>/run.json`` -> the run id."""
    return record_uri.rstrip("/").split("/")[-2]


def listed_runs(
    entries: Sequence[Entry],
    withdrawn: set[str],
    records: dict[str, RunRecord],
    states: dict[str, str],
    ledger: Ledger,
) -> tuple[Run, ...]:
    """Every run of the dataset, oldest first: registered ones, then those only the metadata index lists."""
    runs: dict[str, Run] = {}
    for entry in entries:
        if entry.run_id in withdrawn:
            state = RUN_WITHDRAWN
        elif entry.run_id in ledger.unrecorded:
            state = RUN_IN_FLIGHT  # registered a moment ago: being submitted
        else:
            state = states.get(entry.run_id, RUN_UNRECORDED)
        runs[entry.run_id] = Run(entry.run_id, entry.created_at, entry.record, state, len(entry.samples), True)
    for run_id, record in records.items():
        if run_id in runs:
            runs[run_id] = Run(run_id, runs[run_id].created_at, runs[run_id].record, states[run_id],
                               ingest_samples(record), True)  # fmt: skip
        else:
            runs[run_id] = Run(run_id, record.created_at, record.location(), states[run_id], ingest_samples(record),
                               False)  # fmt: skip
    for damaged in ledger.damaged:
        run_id = run_id_of(str(damaged.uri))
        registered = run_id in runs
        created = runs[run_id].created_at if registered else None
        runs[run_id] = Run(run_id, created, str(damaged.uri), RUN_DAMAGED, runs[run_id].samples if registered else 0,
                           registered)  # fmt: skip
    return tuple(sorted(runs.values(), key=lambda run: (run.created_at or "", run.run_id)))


def runs_in_flight(runs: Sequence[Run], ledger: Ledger, names: dict[str, str]) -> tuple[InFlight, ...]:
    """The runs still under way, each with the samples its unfinished jobs (or its registration) hold."""
    held: dict[str, list[str]] = {}
    for uri, run_id in ledger.in_flight.items():
        held.setdefault(run_id, []).append(uri)
    found = []
    for run in runs:
        if run.state != RUN_IN_FLIGHT:
            continue
        samples = tuple((uri, names.get(uri)) for uri in sorted(held.get(run.run_id, [])))
        entry = ledger.unrecorded.get(run.run_id)
        found.append(InFlight(run.run_id, run.record, samples, entry.age() if entry is not None else None))
    return tuple(found)


def failed_names(storage: Storage, view: DatasetView, ledger: Ledger, names: dict[str, str]) -> dict[str, str]:
    """The names of failed jobs' samples that no run recorded (their headers were not read then): read now."""
    if not view.samples:
        return {}
    unnamed = sorted(uri for uri in ledger.failed if uri not in names and uri not in ledger.in_flight)
    # A file that cannot be read (gone, not bgzipped, several samples) stays unnamed: the text says so.
    return check_headers(storage.s3, [Sample(uri) for uri in unnamed[:MAX_HEADER_READS]])[1] if unnamed else {}


def partly_ingested(
    view: DatasetView,
    ledger: Ledger,
    names: dict[str, str],
    runs: Sequence[Run],
    records: dict[str, RunRecord],
    dataset: Location,
) -> tuple[Partial, ...] | None:
    """Names the dataset lists whose ingestion job failed (and that no run stored since, or is storing now)."""
    if view.samples is None:
        return None
    created = {run.run_id: run.created_at or "" for run in runs}
    listed: dict[str, list[tuple[str, str]]] = {}
    unnamed: dict[str, int] = {}
    for uri, run_id in ledger.failed.items():
        name = names.get(uri)
        if uri in ledger.in_flight or run_id not in records:
            continue
        if name is None:
            unnamed[run_id] = unnamed.get(run_id, 0) + 1
            continue
        stored = ledger.names.get(name)  # (URI, run id) of a run that stored the name
        stored_since = stored is not None and created.get(stored[1], "") > created.get(run_id, "")
        if name in view.samples and name not in ledger.names_in_flight and not stored_since:
            listed.setdefault(run_id, []).append((name, uri))
    partial = []
    for run_id, samples in listed.items():
        resume, again = finish_commands(records[run_id], dataset)
        partial.append(Partial(run_id, records[run_id].location(), tuple(sorted(samples)), unnamed.get(run_id, 0),
                               resume, again))  # fmt: skip
    return tuple(sorted(partial, key=lambda item: (created.get(item.run_id, ""), item.run_id)))


def finish_commands(record: RunRecord, dataset: Location | str) -> tuple[str, str]:
    """The two ways to finish a failed run's samples: resume it, or delete and store them again."""
    options = record.options
    metadata = str(options.get("metadata_s3") or metadata_of(record))
    bucket, _, key = metadata.removeprefix("s3://").partition("/")
    if metadata.startswith("s3://") and not key.strip("/"):
        metadata = bucket  # as the run was most likely given it: a bucket name
    metadata = metadata.rstrip("/") or "/"
    where = executors.command_line(record.executor)
    defaults = {field.name: field.default for field in fields(IngestOptions)}
    resources = [item for name in RESOURCES if name in options and options[name] != defaults[name]
                 for item in (f"--{name}", str(options[name]))]  # fmt: skip
    head = ["python", "batch-ingest.py", "--dataset-uri", str(dataset)]
    tail = ["--metadata-s3", metadata, *where, *resources]
    # A prefix's samples are found again as they were: with the run's filters.
    filters = [item for name in ("include", "exclude") for glob in options.get(name) or ()
               for item in (f"--{name}", glob)]  # fmt: skip
    samples = ["--samples", str(options.get("samples") or "SAMPLES_FILE"), *filters]
    resume = [*head, *samples, *tail, "--resume", record.run_id]
    again = [*head, "--samples", "FILE_OF_THESE_SAMPLES", *tail, "--force-reingest", "--replace"]
    return shlex.join(resume), shlex.join(again)


def metadata_of(record: RunRecord) -> str:
    """The --metadata-s3 of a run, from where its record is: ``<metadata>/tiledbvcf-batch/runs/<id>/run.json``."""
    suffix = f"{RUNS_PREFIX}/{record.run_id}/{RUN_RECORD_NAME}"
    return record.location().removesuffix(suffix) or "METADATA"


# -- Showing it ---------------------------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def shown_sample(uri: str, name: str | None) -> str:
    return f"{name} ({uri})" if name is not None else uri


def text_lines(inventory: Inventory, *, with_samples: bool = False) -> list[str]:
    """What ``batch-runs.py dataset`` prints: the samples, what is partly ingested, the runs in flight, all runs."""
    view = inventory.view
    if view.samples is None:
        lines = [f"Dataset {view.uri}: its samples cannot be read ({view.problem})"]
    else:
        lines = [f"Dataset {view.uri} holds {plural(len(view.samples), 'sample')}"]
        lines += sorted(view.samples) if with_samples else []
    for partial in inventory.partial or ():
        lines += partial_lines(partial)
    for going in inventory.in_flight:
        lines += in_flight_lines(going, with_samples)
    if not inventory.runs:
        return [
            *lines,
            "No run of batch-ingest.py is known for it: none is registered beside it (an older version's "
            "runs are found with the --metadata-s3 they were given)",
        ]
    lines.append(f"Runs that wrote it ({len(inventory.runs)}):")
    for run in inventory.runs:
        older = "" if run.registered else "  (listed only under --metadata-s3)"
        lines.append(f"  {run.run_id}  {TEXT.get(run.state, run.state)}  {run.created_at or '-'}  "
                     f"{plural(run.samples, 'sample')}  {run.record}{older}")  # fmt: skip
    return lines


def partial_lines(partial: Partial) -> list[str]:
    shown = ", ".join(shown_sample(uri, name) for name, uri in partial.samples)
    lines = [
        f"PARTLY INGESTED: {plural(len(partial.samples), 'sample')} the dataset lists, whose ingestion job failed in "
        f"run {partial.run_id} (record {partial.record}): {shown}",
    ]
    if partial.unnamed:
        lines.append(f"  and {plural(partial.unnamed, 'sample')} of its failed jobs whose names cannot be read "
                     "(the dataset may list them too)")  # fmt: skip
    return [
        *lines,
        f"  finish that run:  {partial.resume}",
        f"  or delete them and store them again:  {partial.replace}",
    ]


def in_flight_lines(run: InFlight, with_samples: bool) -> list[str]:
    count = plural(len(run.samples), "sample")
    if run.unrecorded_for is not None:
        line = (f"IN FLIGHT: run {run.run_id} registered {run.unrecorded_for / 60:.0f} min ago and is being submitted "
                f"(its record {run.record} does not exist yet): {count}")  # fmt: skip
    else:
        line = f"IN FLIGHT: run {run.run_id} (record {run.record}) is still ingesting {count}"
    return [line, *(f"  {shown_sample(uri, name)}" for uri, name in run.samples if with_samples)]


def document(inventory: Inventory, *, with_samples: bool = False) -> dict[str, Any]:
    """The same as one JSON document: samples_count, samples (with --samples), partial, in_flight, runs."""
    view = inventory.view
    doc: dict[str, Any] = {
        "dataset": view.uri,
        "samples_count": len(view.samples) if view.samples is not None else None,
        "problem": view.problem,
    }
    if with_samples:
        doc["samples"] = sorted(view.samples) if view.samples is not None else None
    doc["partial"] = None if inventory.partial is None else [
        {"run_id": p.run_id, "record": p.record, "samples": [{"name": name, "uri": uri} for name, uri in p.samples],
         "unnamed": p.unnamed, "resume": p.resume, "replace": p.replace}
        for p in inventory.partial
    ]  # fmt: skip
    doc["in_flight"] = [in_flight_document(run, with_samples) for run in inventory.in_flight]
    doc["runs"] = [
        {"run_id": r.run_id, "created_at": r.created_at, "record": r.record, "state": r.state, "samples": r.samples,
         "registered": r.registered}
        for r in inventory.runs
    ]  # fmt: skip
    return doc


def in_flight_document(run: InFlight, with_samples: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "run_id": run.run_id,
        "record": run.record,
        "samples": len(run.samples),
        "being_submitted": run.unrecorded_for is not None,
    }
    if with_samples:
        item["held"] = [{"uri": uri, "name": name} for uri, name in run.samples]
    return item
