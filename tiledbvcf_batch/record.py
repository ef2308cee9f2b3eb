"""Run identity and places, and the run record: what a later process needs to watch, resume or cancel a run.

The JSON keys are those of every record written since the first release: the ledger reads
all earlier records of a dataset, and ``batch-runs.py`` reads old ones.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from .aws import aws_message
from .inputs import InputError, parse_metadata_location, parse_uri
from .plan import Plan, Stage, Task, done_marker
from .storage import LocalPath, Location, S3Uri, Storage, parse_location

RUNS_PREFIX = "tiledbvcf-batch/runs"
RUN_RECORD_NAME = "run.json"
DATASETS_PREFIX = "tiledbvcf-batch/datasets"


def new_run_id(kind: str, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_prefix_for(location: Location, run_id: str) -> Location:
    return location.as_prefix().child(f"{RUNS_PREFIX}/{run_id}/")


def record_uri_of(run_prefix: Location) -> Location:
    return run_prefix.child(RUN_RECORD_NAME)


def dataset_index(metadata: Location, dataset_uri: str) -> Location:
    """Where the runs of one dataset are listed (one small marker object per run)."""
    digest = hashlib.sha256(dataset_uri.encode("utf-8")).hexdigest()[:16]
    return metadata.as_prefix().child(f"{DATASETS_PREFIX}/{digest}/")


@dataclass
class RecordedJob:
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

    @property
    def kind(self) -> str:
        return Stage.parse(self.stage).kind

    @classmethod
    def of(cls, task: Task, job_id: str | None) -> RecordedJob:
        manifest = str(task.manifest.uri) if task.manifest else None
        return cls(task.key, str(task.stage), task.name, job_id, list(task.after), manifest, list(task.samples))

    @classmethod
    def all_of(cls, job: Task, run_prefix: Location) -> list[RecordedJob]:
        """A submitted job's record: itself, or, for an array job, each task it runs."""
        if not job.members:
            return [cls.of(job, None)]
        task_file = str(job.manifest.uri) if job.manifest else ""
        return [
            replace(
                cls.of(task, None),
                manifest=f"{task_file}#{index}",
                array=job.key,
                index=index,
                done=str(done_marker(run_prefix, task.key)) if task.stage.kind == "ingest" else None,
            )
            for index, task in enumerate(job.members)
        ]


@dataclass
class RunRecord:
    run_id: str
    kind: str  # "ingest" or "export"
    created_at: str  # ISO 8601, UTC
    region: str
    target: str
    record: str | None  # where this record is stored
    options: dict[str, Any]
    jobs: list[RecordedJob]
    executor: dict[str, Any]  # {"kind": "batch", "job_queue": ..., "job_definition": ...}
    sample_names: dict[str, str] = field(default_factory=dict)  # sample URI -> name, where headers were read

    @classmethod
    def new(
        cls,
        plan: Plan,
        tasks: list[Task],
        options: dict[str, Any],
        executor: dict[str, Any],
        region: str,
        sample_names: dict[str, str] | None = None,
    ) -> RunRecord:
        return cls(
            run_id=plan.run_id,
            kind=plan.kind,
            created_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            region=region,
            target=plan.target,
            record=str(record_uri_of(plan.run_prefix)),
            options=options,
            jobs=[recorded for task in tasks for recorded in RecordedJob.all_of(task, plan.run_prefix)],
            executor=executor,
            sample_names=dict(sample_names or {}),
        )

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        for job in document["jobs"]:  # a per-job run's record keeps the keys it always had
            for key in ("array", "index", "done"):
                if job[key] is None:
                    del job[key]
        # Readers of records older than the executor key look for these two at the top level.
        document["job_queue"] = self.executor.get("job_queue")
        document["job_definition"] = self.executor.get("job_definition")
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        executor = data.get("executor") or {
            "kind": "batch",
            "job_queue": data.get("job_queue"),
            "job_definition": data.get("job_definition"),
        }
        return cls(
            run_id=data["run_id"],
            kind=data["kind"],
            created_at=data["created_at"],
            region=data["region"],
            target=data["target"],
            record=data.get("record"),
            options=data.get("options", {}),
            jobs=[RecordedJob(**job) for job in data["jobs"]],
            executor=executor,
            sample_names=data.get("sample_names") or {},
        )

    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs if job.job_id]

    def names(self) -> dict[str, str]:
        return {job.job_id: job.name for job in self.jobs if job.job_id}

    def set_job_ids(self, ids: dict[str, str]) -> None:
        """The ids of the submitted jobs, by key; an array's children are ``<array id>:<index>``."""
        for job in self.jobs:
            if job.array is not None:
                job.job_id = f"{ids[job.array]}:{job.index}" if job.array in ids else job.job_id
            else:
                job.job_id = ids.get(job.key, job.job_id)

    def created_epoch(self) -> float:
        return datetime.datetime.fromisoformat(self.created_at).timestamp()

    def location(self) -> str:
        return self.record or self.run_id

    def save(self, storage: Storage) -> None:
        body = json.dumps(self.to_json(), indent=1).encode("utf-8")
        storage.put(parse_location(self.record or "", "record"), body, "application/json")


class DamagedRecord(Exception):
    """A run record that cannot be read as one (truncated, edited, not JSON): named, never a traceback."""

    def __init__(self, uri: Location, reason: str):
        super().__init__(
            f"run record {uri} is damaged ({reason}): restore it from a copy or S3 versioning, or remove the "
            "run's files (its manifests and record) if nothing of it must be kept"
        )
        self.uri = uri
        self.reason = reason


def load_record(storage: Storage, uri: Location) -> RunRecord:
    try:
        return RunRecord.from_json(json.loads(storage.read_bytes(uri).decode("utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError is a ValueError
        reason = f"{type(error).__name__}: {error}" if not isinstance(error, KeyError) else f"no {error} in it"
        raise DamagedRecord(uri, reason) from None


def load_or_fail(storage: Storage, uri: Location, hint: str) -> RunRecord:
    """The record at ``uri``, or an InputError that says what to check."""
    try:
        return load_record(storage, uri)
    except ClientError as error:
        raise InputError(f"cannot read run record {uri} ({aws_message(error)}): {hint}") from None
    except OSError as error:
        raise InputError(f"cannot read run record {uri} ({error.strerror}): {hint}") from None


def locate(run: str, metadata_s3: str | None) -> Location:
    """The record of ``run``: a record's s3:// URI or path, or a run id under --metadata-s3."""
    if run.startswith("s3://") or run.endswith(".json") or os.sep in run:
        uri = parse_uri(run, "RUN", local=not run.startswith("s3://"))
        return uri if uri.key.endswith(".json") else record_uri_of(uri.as_prefix())
    if metadata_s3 is None:
        raise InputError(f"RUN {run!r} is a run id: add --metadata-s3, or give the run record's s3:// URI instead")
    return record_uri_of(run_prefix_for(metadata_location(metadata_s3), run))


def metadata_location(text: str) -> Location:
    """--metadata-s3 of a recorded run: a bucket, s3://bucket/prefix, or (a local run's) a directory."""
    local = not text.startswith("s3://") and (os.sep in text or os.path.isdir(text))
    return parse_metadata_location(text, local=local)


def list_records(storage: Storage, location: Location) -> list[Location]:
    """The records under ``location``, oldest first (run ids carry their creation time)."""
    prefix = location.as_prefix().child(RUNS_PREFIX + "/")
    keys = [key for key in storage.list_sizes(prefix) if key.endswith("/" + RUN_RECORD_NAME)]
    keys.sort(key=lambda key: key.split("/")[-2].split("-", 1)[-1])
    return [LocalPath(key) if isinstance(prefix, LocalPath) else S3Uri(prefix.bucket, key) for key in keys]
