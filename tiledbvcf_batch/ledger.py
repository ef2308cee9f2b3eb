"""Never twice, never lost: what earlier runs of a dataset did with its samples, and resuming a run.

An ingestion job succeeded when its manifest is gone: ``store --remove-sample-file`` deletes
it only after a successful ingestion, so this holds even when nobody waited and the executor
has long forgotten the job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from botocore.exceptions import ClientError

from .executors.base import IN_FLIGHT, Executor, describe_fully
from .inputs import InputError, Sample
from .plan import IngestBatch, Manifest, StoreShare
from .record import DamagedRecord, RunRecord, dataset_index, load_record, record_uri_of, run_prefix_for
from .storage import Location, Storage, parse_location

SUCCEEDED, FAILED, RUNNING = "SUCCEEDED", "FAILED", "IN_FLIGHT"


def job_states(record: RunRecord, storage: Storage, executor: Executor) -> dict[str, str]:
    """SUCCEEDED, FAILED or IN_FLIGHT for each job of a run record, by job key.

    Jobs other than ingestion are judged by their status; a job the executor no longer
    knows counts as FAILED.
    """
    manifests = [parse_location(job.manifest, "manifest") for job in record.jobs if job.manifest]
    present: set[tuple[str, str]] = set()
    for directory in {replace(m, key=m.key.rpartition("/")[0] + "/") for m in manifests}:
        present.update((directory.bucket, key) for key in storage.list_sizes(directory))
    described = describe_fully(executor, record.job_ids())
    states = {}
    for job in record.jobs:
        status = described.get(job.job_id or "", {}).get("status")
        if status in IN_FLIGHT:
            states[job.key] = RUNNING
        elif job.kind == "ingest":
            manifest = parse_location(job.manifest or "", "manifest")
            gone = (manifest.bucket, manifest.key) not in present
            states[job.key] = SUCCEEDED if gone or status == SUCCEEDED else FAILED
        else:
            states[job.key] = SUCCEEDED if status == SUCCEEDED else FAILED
    return states


@dataclass
class Ledger:
    """What earlier runs (recorded under the same --metadata-s3) did with a dataset's samples."""

    ingested: set[str] = field(default_factory=set)
    in_flight: dict[str, str] = field(default_factory=dict)  # sample -> run id
    failed: dict[str, str] = field(default_factory=dict)  # sample -> run id, not ingested since
    runs: list[str] = field(default_factory=list)
    damaged: list[DamagedRecord] = field(default_factory=list)  # records that could not be read
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # ingested name -> (sample URI, run id)


def dataset_ledger(
    storage: Storage, executor_for: Callable[[RunRecord], Executor], metadata: Location, dataset_uri: str
) -> Ledger:
    ledger = Ledger()
    for key in sorted(storage.list_sizes(dataset_index(metadata, dataset_uri))):
        run_id = key.rpartition("/")[2].removesuffix(".json")
        try:
            record = load_record(storage, record_uri_of(run_prefix_for(metadata, run_id)))
        except (ClientError, OSError):
            continue  # the marker outlived its run record: nothing to learn from it
        except DamagedRecord as damaged:
            ledger.damaged.append(damaged)
            continue
        ledger.runs.append(run_id)
        states = job_states(record, storage, executor_for(record))
        for job in record.jobs:
            if job.kind != "ingest":
                continue
            for sample in job.samples:
                if states[job.key] == SUCCEEDED:
                    ledger.ingested.add(sample)
                    if sample in record.sample_names:
                        ledger.names[record.sample_names[sample]] = (sample, run_id)
                elif states[job.key] == RUNNING:
                    ledger.in_flight[sample] = run_id
                else:
                    ledger.failed[sample] = run_id
    for sample in ledger.ingested:
        ledger.in_flight.pop(sample, None)
        ledger.failed.pop(sample, None)
    return ledger


def skip_known_samples(samples: Sequence[Sample], ledger: Ledger) -> tuple[list[Sample], list[str]]:
    """The samples still to ingest, and one note per reason a sample was skipped."""
    keep, ingested, in_flight, failed = [], [], {}, {}
    for sample in samples:
        if sample.uri in ledger.ingested:
            ingested.append(sample.uri)
        elif sample.uri in ledger.in_flight:
            in_flight.setdefault(ledger.in_flight[sample.uri], []).append(sample.uri)
        elif sample.uri in ledger.failed:
            failed.setdefault(ledger.failed[sample.uri], []).append(sample.uri)
        else:
            keep.append(sample)
    notes = []
    if ingested:
        notes.append(
            f"skipped {len(ingested)} samples already ingested by earlier runs (to replace some, delete them first, "
            "then pass --force-reingest)"
        )
    for run_id, uris in in_flight.items():
        notes.append(f"skipped {len(uris)} samples that jobs of run {run_id} are still ingesting")
    for run_id, uris in failed.items():
        notes.append(
            f"skipped {len(uris)} samples of failed jobs of run {run_id}: resume that run with --resume {run_id} "
            "(store --resume needs the original manifests), or pass --force-reingest to ingest them in new jobs"
        )
    return keep, notes


def resume_batches(record: RunRecord, states: dict[str, str]) -> list[IngestBatch]:
    """The batches of an earlier run with only the jobs that did not succeed, original manifests."""
    in_flight = [key for key, state in states.items() if state == RUNNING]
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
        manifest = Manifest(parse_location(job.manifest or "", "manifest"), tuple(job.samples), existing=True)
        if job.kind == "register":
            registers[number] = manifest
        else:
            shares.setdefault(number, []).append(StoreShare(int(job.key.rsplit("-", 1)[1]), manifest))
    numbers = sorted(set(shares) | set(registers))
    return [IngestBatch(n, tuple(shares.get(n, [])), registers.get(n)) for n in numbers]
