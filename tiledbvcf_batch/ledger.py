"""Never twice, never lost: what earlier runs of a dataset did with its samples, and resuming a run.

An ingestion task succeeded when the object its executor names as its proof says so, even when nobody
waited and the executor has long forgotten the job (``Executor.proofs``): by default its manifest,
whose absence proves it (``store --remove-sample-file`` deletes it only after a successful ingestion).
The ledger lists the proofs' directories and judges every executor's proofs alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from .executors.base import IN_FLIGHT, Executor, Proof, describe_fully
from .inputs import InputError, Sample
from .plan import IngestBatch, Manifest, StoreShare
from .record import DamagedRecord, RunRecord, dataset_index, load_record, record_uri_of, run_prefix_for
from .registry import CLAIM_GRACE, Entry
from .storage import Location, Storage, parse_location

# What the ledger concludes of a recorded job: words of its own, not executor statuses (UNFINISHED is any of
# the executor's IN_FLIGHT statuses, or an estimated one).
SUCCEEDED, FAILED, UNFINISHED = "SUCCEEDED", "FAILED", "UNFINISHED"


def job_states(record: RunRecord, storage: Storage, executor: Executor) -> dict[str, str]:
    """SUCCEEDED, FAILED or UNFINISHED for each job of a run record, by job key.

    An ingestion task whose proof (``Executor.proofs``) says so succeeded; other jobs are judged by
    their status, and a job the executor no longer knows counts as FAILED. A job not submitted yet by a
    run still being submitted is UNFINISHED (for CLAIM_GRACE at most: a submission that died leaves its
    record saying it submits).
    """
    being_submitted = record.submitting and time.time() - record.created_epoch() < CLAIM_GRACE
    proofs = executor.proofs([job for job in record.jobs if job.kind == "ingest"])
    present = present_objects([proof.uri for proof in proofs.values()], storage)
    settled = {key for key, proof in proofs.items() if proven_by(proof, present)}
    # An object whose presence proves success settles its task before the executor is asked (the ledger reads
    # every earlier run of the dataset, each time a run starts); one whose absence does, once the job is not in flight.
    proven = {key for key in settled if proofs[key].present_means_success}
    described = describe_fully(executor, [job.job_id for job in record.jobs if job.job_id and job.key not in proven])
    states = {}
    for job in record.jobs:
        description = described.get(job.job_id or "", {})
        status = description.get("status")
        if job.key in proven:
            states[job.key] = SUCCEEDED
        elif (job.job_id is None and being_submitted) or status in IN_FLIGHT or description.get("estimated"):
            states[job.key] = UNFINISHED
        else:
            states[job.key] = SUCCEEDED if job.key in settled or status == SUCCEEDED else FAILED
    return states


def proven_by(proof: Proof, present: set[tuple[str, str]]) -> bool:
    """Whether the objects ``present`` prove a task's success: its proof is there, or gone, as the proof says."""
    return (object_key(proof.uri) in present) == proof.present_means_success


def object_key(uri: str) -> tuple[str, str]:
    location = parse_location(uri, "proof")
    return location.bucket, location.key


def present_objects(uris: Sequence[str], storage: Storage) -> set[tuple[str, str]]:
    """Which of ``uris`` exist, as (bucket, key): one listing per directory."""
    locations = [parse_location(uri, "proof") for uri in uris]
    present: set[tuple[str, str]] = set()
    for directory in {replace(m, key=m.key.rpartition("/")[0] + "/") for m in locations}:
        present.update((directory.bucket, key) for key in storage.list_sizes(directory))
    return present


@dataclass
class Ledger:
    """What earlier runs of a dataset did with its samples: those recorded under the same --metadata-s3, and
    those registered beside the dataset (any --metadata-s3)."""

    ingested: set[str] = field(default_factory=set)
    in_flight: dict[str, str] = field(default_factory=dict)  # sample -> run id
    failed: dict[str, str] = field(default_factory=dict)  # sample -> run id, not ingested since
    runs: list[str] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)  # records that could not be read
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # ingested name -> (sample URI, run id)
    uri_names: dict[str, str] = field(default_factory=dict)  # sample URI -> its name, as recorded
    names_in_flight: dict[str, str] = field(default_factory=dict)  # name -> run id still ingesting it
    unrecorded: dict[str, Entry] = field(default_factory=dict)  # run id -> its entry: registered, no record (yet)
    measured: list[dict[str, Any]] = field(default_factory=list)  # what runs watched to their end measured

    def name_of(self, uri: str) -> str | None:
        return self.uri_names.get(uri)


def recorded_runs(
    storage: Storage, metadata: Location | None, dataset: Location, entries: Sequence[Entry]
) -> dict[str, str]:
    """Run id -> record location: the runs listed under --metadata-s3 (if any), then those registered beside the
    dataset."""
    runs = {}
    if metadata is not None:
        for key in sorted(storage.list_sizes(dataset_index(metadata, dataset))):
            run_id = key.rpartition("/")[2].removesuffix(".json")
            runs[run_id] = str(record_uri_of(run_prefix_for(metadata, run_id)))
    for entry in entries:
        runs.setdefault(entry.run_id, entry.record)
    return runs


def dataset_ledger(
    storage: Storage,
    executor_for: Callable[[RunRecord], Executor],
    metadata: Location | None,
    dataset: Location,
    entries: Sequence[Entry] = (),
) -> Ledger:
    ledger = Ledger()
    registered = {entry.run_id: entry for entry in entries}
    for run_id, uri in recorded_runs(storage, metadata, dataset, entries).items():
        try:
            record = load_record(storage, parse_location(uri, "record"))
        except (ClientError, OSError):
            entry = registered.get(run_id)
            if entry is not None and entry.age() < CLAIM_GRACE:  # registered, its record not written yet
                ledger.unrecorded[run_id] = entry
                ledger.in_flight.update(dict.fromkeys(entry.samples, run_id))
                ledger.names_in_flight.update(dict.fromkeys(entry.names.values(), run_id))
            continue  # else the marker outlived its run record, or the run died before it wrote one
        except DamagedRecord as damaged:
            ledger.damaged.append(damaged)
            continue
        ledger.runs.append(run_id)
        learn_run(ledger, record, job_states(record, storage, executor_for(record)))
    for sample in ledger.ingested:
        ledger.in_flight.pop(sample, None)
        ledger.failed.pop(sample, None)
    return ledger


def learn_run(ledger: Ledger, record: RunRecord, states: dict[str, str]) -> None:
    """What one earlier run did with its samples, by the state of the jobs that held them."""
    ledger.uri_names.update(record.sample_names)
    if record.measured:
        ledger.measured.append(record.measured)
    for job in record.jobs:
        if job.kind != "ingest":
            continue
        for sample in job.samples:
            name = record.sample_names.get(sample)
            if states[job.key] == SUCCEEDED:
                ledger.ingested.add(sample)
                if name is not None:
                    ledger.names[name] = (sample, record.run_id)
            elif states[job.key] == UNFINISHED:
                ledger.in_flight[sample] = record.run_id
                if name is not None:
                    ledger.names_in_flight[name] = record.run_id
            else:
                ledger.failed[sample] = record.run_id


def skip_known_samples(
    samples: Sequence[Sample], ledger: Ledger, *, force: bool = False, gone: Callable[[str], bool] = lambda uri: False
) -> tuple[list[Sample], list[str]]:
    """The samples still to ingest, and one note per reason a sample was skipped.

    Samples that runs still in flight hold are always skipped. With ``force`` (--force-reingest) the
    others are all kept: the dataset decides about them. ``gone(uri)``: an ingested sample that the
    dataset no longer holds (deleted since), to ingest again.
    """
    keep: list[Sample] = []
    ingested: list[str] = []
    again: list[str] = []
    in_flight: dict[str, list[str]] = {}
    failed: dict[str, list[str]] = {}
    for sample in samples:
        name = ledger.name_of(sample.uri)
        holder = ledger.in_flight.get(sample.uri) or (ledger.names_in_flight.get(name) if name else None)
        if holder is not None:
            in_flight.setdefault(holder, []).append(sample.uri)
        elif force:
            keep.append(sample)
        elif sample.uri in ledger.ingested:
            if gone(sample.uri):
                again.append(sample.uri)
                keep.append(sample)
            else:
                ingested.append(sample.uri)
        elif sample.uri in ledger.failed:
            failed.setdefault(ledger.failed[sample.uri], []).append(sample.uri)
        else:
            keep.append(sample)
    notes = []
    if ingested:
        notes.append(
            f"skipped {len(ingested)} samples already ingested by earlier runs (to store a sample again, pass "
            "--force-reingest --replace)"
        )
    if again:
        notes.append(
            f"{len(again)} samples that earlier runs ingested are no longer in the dataset: ingesting them again"
        )
    for run_id, uris in in_flight.items():
        entry = ledger.unrecorded.get(run_id)
        if entry is None:
            notes.append(f"skipped {len(uris)} samples that jobs of run {run_id} are still ingesting (e.g. {uris[0]})")
            continue
        notes.append(
            f"skipped {len(uris)} samples that run {run_id} registered {entry.age() / 60:.0f} min ago (e.g. "
            f"{uris[0]}); its record {entry.record} does not exist: the run is being submitted, or its record was "
            f"deleted (its claim then lapses {CLAIM_GRACE // 60} min after it registered)"
        )
    for run_id, uris in failed.items():
        notes.append(
            f"skipped {len(uris)} samples of failed jobs of run {run_id}: resume that run with --resume {run_id} "
            "(store --resume needs the original manifests), or pass --force-reingest to ingest them in new jobs"
        )
    return keep, notes


def resume_batches(record: RunRecord, states: dict[str, str], manifests: dict[str, Manifest]) -> list[IngestBatch]:
    """The batches of an earlier run with only the jobs that did not succeed, with their original sample lists.

    ``manifests``: what each job resumes from, as the executor that ran it says (``Executor.resumed``):
    a job's own manifest, still there (store consumes it only on success), or a new one with its samples.
    """
    in_flight = [key for key, state in states.items() if state == UNFINISHED]
    if in_flight:
        raise InputError(
            f"run {record.run_id} still has {len(in_flight)} unfinished jobs: wait for them, or cancel "
            "them, before resuming it"
        )
    shares: dict[int, list[StoreShare]] = {}
    registers: dict[int, Manifest] = {}
    for job in record.jobs:
        if job.kind not in ("ingest", "register") or states[job.key] == SUCCEEDED:
            continue
        number = int(job.stage.partition("-")[2])
        manifest = manifests[job.key]
        if job.kind == "register":
            registers[number] = manifest
        else:
            shares.setdefault(number, []).append(StoreShare(int(job.key.rsplit("-", 1)[1]), manifest))
    numbers = sorted(set(shares) | set(registers))
    return [IngestBatch(n, tuple(shares.get(n, [])), registers.get(n)) for n in numbers]
