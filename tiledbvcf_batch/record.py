"""Run identity and places, and the run record: what a later process needs to watch, resume or cancel a run.

The JSON keys are those of every record written since the first release: the ledger reads
all earlier records of a dataset, and ``batch-runs.py`` reads old ones.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from . import __version__, executors
from .aws import aws_message, is_region_name
from .commands import EXPORT_SUFFIXES
from .executors.jobs import RecordedJob
from .inputs import InputError, parse_metadata_location, parse_uri
from .plan import STAGE_LABELS, Plan
from .storage import LocalPath, Location, S3Uri, Storage, parse_location

RUNS_PREFIX = "tiledbvcf-batch/runs"
# Records older than the executor key kept the Batch executor's settings at the top level, and ran on Batch.
OLDER_TOP_LEVEL_KEYS = ("job_queue", "job_definition")
RUN_RECORD_NAME = "run.json"
DATASETS_PREFIX = "tiledbvcf-batch/datasets"


def new_run_id(kind: str, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_prefix_for(location: Location, run_id: str) -> Location:
    return location.as_prefix().child(f"{RUNS_PREFIX}/{run_id}/")


def export_index(metadata: Location, dataset: Location) -> Location:
    """Where the exports of one dataset are listed (beside its ingestions' list, not in it: the ledger judges only
    ingestions): their measures make the next export's estimate."""
    index = dataset_index(metadata, dataset)
    return replace(index, key=index.key.rstrip("/") + "-exports/")


def earlier_measures(storage: Storage, index: Location, most: int = 20) -> list[dict[str, Any]]:
    """What the latest ``most`` runs listed at ``index`` measured; a record gone or damaged is passed over (an
    estimate is no reason to stop a run)."""
    measures = []
    for key in sorted(storage.list_sizes(index))[-most:]:  # run ids sort by their time
        try:
            marker = json.loads(storage.read_bytes(replace(index, key=key)).decode("utf-8"))
            record = load_record(storage, parse_location(marker["run_record"], "record"))
        except (ClientError, OSError, ValueError, KeyError, TypeError, DamagedRecord):
            continue
        if record.measured:
            measures.append(record.measured)
    return measures


def record_uri_of(run_prefix: Location) -> Location:
    return run_prefix.child(RUN_RECORD_NAME)


def dataset_index(metadata: Location, dataset: Location) -> Location:
    """Where the runs of one dataset are listed (one small marker object per run): a hash of its one spelling."""
    digest = hashlib.sha256(str(dataset).encode("utf-8")).hexdigest()[:16]
    return metadata.as_prefix().child(f"{DATASETS_PREFIX}/{digest}/")


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
    executor: dict[str, Any]  # the executor's settings(): {"kind": "batch", "job_queue": ..., ...}
    sample_names: dict[str, str] = field(default_factory=dict)  # sample URI -> name, where headers were read
    # Written before the first job is submitted, until the last one is: jobs without an id are then being
    # submitted (in flight), not jobs that will never run. Records older than this key were never saved so.
    submitting: bool = False
    # What a run watched to its end measured, for the estimates of later runs (estimate.py): bytes, vcpu_seconds.
    measured: dict[str, Any] | None = None

    @classmethod
    def new(
        cls,
        plan: Plan,
        jobs: list[RecordedJob],
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
            jobs=jobs,
            executor=executor,
            sample_names=dict(sample_names or {}),
        )

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["jobs"] = [job.to_json() for job in self.jobs]
        if self.measured is None:  # records measure only once a run is watched to its end
            del document["measured"]
        # Readers of records older than the executor key look for the Batch settings at the top level.
        for key in OLDER_TOP_LEVEL_KEYS:
            document[key] = self.executor.get(key)
        return document

    @classmethod
    def from_json(cls, data: Any, uri: Location | str | None = None) -> RunRecord:
        """The record in ``data``, every value checked: else DamagedRecord, naming ``uri``."""
        try:
            return cls._checked(data)
        except BadValue as bad:
            where = uri if uri is not None else (data.get("record") if isinstance(data, dict) else None)
            damage = NewerRecord if isinstance(bad, NewerValue) else DamagedRecord
            raise damage(where or "(unnamed)", str(bad)) from None

    @classmethod
    def _checked(cls, data: Any) -> RunRecord:
        expect(isinstance(data, dict), f"it holds {shown(data)}, not a JSON object")
        run_id = text_of(data, "run_id")
        kind = text_of(data, "kind")
        if kind not in RUN_KINDS and is_name(kind):
            raise NewerValue(f"run kind {kind!r} is not one this version knows (ingest, export)")
        expect(kind in RUN_KINDS, f"kind is {kind!r}, not ingest or export")
        created_at = text_of(data, "created_at")
        expect(is_timestamp(created_at), f"created_at is {created_at!r}, not an ISO 8601 time")
        region = text_of(data, "region")
        expect(is_region_name(region), f"region is {region!r}, not an AWS region name")
        jobs = value_of(data, "jobs", list)
        checked = [checked_job(job, number) for number, job in enumerate(jobs, start=1)]
        keys = {job.key for job in checked}
        for job in checked:
            unknown = [key for key in job.depends_on if key not in keys]
            if unknown:
                raise BadValue(f"job {job.key} depends on {unknown[0]!r}, which is not a job of the run")
        sample_names = value_of(data, "sample_names", dict, required=False) or {}
        expect(all(isinstance(v, str) for v in [*sample_names, *sample_names.values()]), "sample_names holds non-text")
        submitting = data.get("submitting", False)
        expect(isinstance(submitting, bool), f"submitting is {shown(submitting)}, not true or false")
        measured = value_of(data, "measured", dict, required=False)
        if measured is not None:
            work = measured.get("bytes", measured.get("samples"))  # an ingestion's bytes, an export's samples
            numbers = [work, measured.get("vcpu_seconds")]
            expect(all(isinstance(n, int | float) for n in numbers), f"measured is {shown(measured)}")
        return cls(
            run_id=run_id,
            kind=kind,
            created_at=created_at,
            region=region,
            target=text_of(data, "target"),
            record=text_of(data, "record", required=False),
            options=checked_options(data),
            jobs=checked,
            executor=checked_executor(data),
            sample_names=sample_names,
            submitting=submitting,
            measured=measured,
        )

    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs if job.job_id]

    def names(self) -> dict[str, str]:
        return {job.job_id: job.name for job in self.jobs if job.job_id}

    def set_job_ids(self, ids: dict[str, str]) -> None:
        """The ids of the submitted jobs, by submission key (an array's children get theirs from the array's)."""
        for job in self.jobs:
            job.job_id = job.submitted_id(ids)

    def created_epoch(self) -> float:
        return datetime.datetime.fromisoformat(self.created_at).timestamp()

    def location(self) -> str:
        return self.record or self.run_id

    def save(self, storage: Storage) -> None:
        body = json.dumps(self.to_json(), indent=1).encode("utf-8")
        storage.put(parse_location(self.record or "", "record"), body, "application/json")


class DamagedRecord(Exception):
    """A run record that cannot be read as one (truncated, edited, not JSON): named, never a traceback."""

    def __init__(self, uri: Location | str, reason: str):
        super().__init__(self.message(uri, reason))
        self.uri = uri
        self.reason = reason

    @staticmethod
    def message(uri: Location | str, reason: str) -> str:
        return (
            f"run record {uri} is damaged ({reason}): restore it from a copy or S3 versioning, or remove the "
            "run's files (its manifests and record) if nothing of it must be kept"
        )


class NewerRecord(DamagedRecord):
    """A record written by a newer version of these scripts (a value this one does not know, well-formed): the fix
    is to upgrade, not to restore it."""

    @staticmethod
    def message(uri: Location | str, reason: str) -> str:
        return (
            f"run record {uri} was written by a newer version of tiledbvcf-batch ({reason}): upgrade this "
            f"checkout (git pull; this is {__version__}) to read it"
        )


def load_record(storage: Storage, uri: Location) -> RunRecord:
    """The record at ``uri``; DamagedRecord if it is not one. Reading errors (AWS, files) pass through."""
    body = storage.read_bytes(uri)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedRecord(uri, f"{type(error).__name__}: {error}") from None
    return RunRecord.from_json(data, uri)


# -- Checking a record's values: whatever was edited or truncated is named, never a traceback later ----------

RUN_KINDS = ("ingest", "export")
JSON_TYPES = {(str,): "a text", (int,): "a whole number", (int, float): "a number", (list,): "a list",
              (dict,): "a JSON object"}  # fmt: skip


class BadValue(ValueError):
    """One value of a record that this version cannot use."""


class NewerValue(BadValue):
    """A well-formed value this version does not know: what a newer version may write (a new output format,
    executor or stage)."""


NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


def is_name(value: Any) -> bool:
    """Whether ``value`` looks like a name a version of these scripts would write (not a damaged value)."""
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def expect(condition: bool, reason: str) -> None:
    if not condition:
        raise BadValue(reason)


def shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def value_of(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], *, where: str = "", required: bool = True
) -> Any:
    """``data[key]``, of type ``kind``; None if absent and not required."""
    name = f"{where}{key}"
    if data.get(key) is None:
        expect(not required, f"no {key!r} in {where.strip() or 'it'}")
        return None
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    expected = JSON_TYPES.get(kinds, str(kinds))
    expect(isinstance(value, kinds) and not isinstance(value, bool), f"{name} is {shown(value)}, not {expected}")
    return value


def text_of(data: dict[str, Any], key: str, *, where: str = "", required: bool = True) -> Any:
    value = value_of(data, key, str, where=where, required=required)
    expect(value is None or value.strip() != "", f"{where}{key} is empty")
    return value


def texts_of(data: dict[str, Any], key: str, where: str) -> list[str]:
    values = value_of(data, key, list, where=where, required=False) or []
    expect(all(isinstance(value, str) for value in values), f"{where}{key} holds {shown(values)}, not texts")
    return values


def is_timestamp(text: str) -> bool:
    try:
        datetime.datetime.fromisoformat(text).timestamp()
    except (ValueError, OverflowError):
        return False
    return True


def is_stage(text: str) -> bool:
    kind, dash, batch = text.partition("-")
    if kind not in STAGE_LABELS:
        return False
    return not dash if kind in ("create", "export", "repair") else batch.isdigit() and int(batch) >= 1  # delete-<n>


def checked_job(data: Any, number: int) -> RecordedJob:
    expect(isinstance(data, dict), f"job {number} is {shown(data)}, not a JSON object")
    where = f"job {number} "
    stage = text_of(data, "stage", where=where)
    stage_kind, dash, batch = stage.partition("-")
    if stage_kind not in STAGE_LABELS and is_name(stage_kind) and (not dash or batch.isdigit()):
        raise NewerValue(f"{where}stage {stage!r} is not one this version knows")
    expect(is_stage(stage), f"{where}stage is {stage!r}, not a stage of a run (e.g. create, ingest-1)")
    manifest = text_of(data, "manifest", where=where, required=False)
    if manifest is not None:
        try:
            parse_location(manifest, "manifest")
        except ValueError as error:
            raise BadValue(f"{where}{error}") from None
    return RecordedJob(
        key=text_of(data, "key", where=where),
        stage=stage,
        name=text_of(data, "name", where=where),
        job_id=text_of(data, "job_id", where=where, required=False),
        depends_on=texts_of(data, "depends_on", where),
        manifest=manifest,
        samples=texts_of(data, "samples", where),
        array=text_of(data, "array", where=where, required=False),
        index=value_of(data, "index", int, where=where, required=False),
        done=text_of(data, "done", where=where, required=False),
        bytes=value_of(data, "bytes", int, where=where, required=False),
        resubmitted=data["resubmitted"] if isinstance(data.get("resubmitted"), dict) else None,
    )


def checked_executor(data: dict[str, Any]) -> dict[str, Any]:
    """The executor that ran the run, with the settings its kind records (executors/__init__.py)."""
    executor = value_of(data, "executor", dict, required=False) or {
        "kind": executors.DEFAULT,
        **{key: data.get(key) for key in OLDER_TOP_LEVEL_KEYS},
    }
    kind = executor.get("kind", executors.DEFAULT)
    settings = executors.recorded_settings(kind) if isinstance(kind, str) else None
    known = ", ".join(executors.names())
    if settings is None and is_name(kind):
        raise NewerValue(f"executor kind {kind!r} is not one this version knows ({known})")
    expect(settings is not None, f"executor kind is {shown(kind)}, which this version does not know ({known})")
    for key, required in (settings or {}).items():
        if required:
            text_of(executor, key, where="executor ")
        else:
            value_of(executor, key, str, where="executor ", required=False)
    return executor


def checked_options(data: dict[str, Any]) -> dict[str, Any]:
    """The recorded options; those a later command reads must have their type."""
    options = value_of(data, "options", dict, required=False) or {}
    value_of(options, "instance_price", (int, float), where="options ", required=False)
    value_of(options, "sample_batch_size", int, where="options ", required=False)
    output_format = value_of(options, "output_format", str, where="options ", required=False)
    if output_format is not None and output_format not in EXPORT_SUFFIXES:
        known = ", ".join(EXPORT_SUFFIXES)
        expect(is_name(output_format), f"options output_format is {shown(output_format)}, not one of {known}")
        raise NewerValue(f"output format {output_format!r} is not one this version knows ({known})")
    register = options.get("register", False)
    expect(isinstance(register, bool), f"options register is {shown(register)}, not true or false")
    return options


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
    if local and not os.path.isdir(text):  # "bucket/prefix" is no bucket name: batch-ingest.py refuses it too
        raise InputError(
            f"--metadata-s3 {text!r} is neither a bucket name nor a directory: give a bucket name, s3://{text} "
            "for a prefix of a bucket, or a local run's --metadata-s3 directory"
        )
    return parse_metadata_location(text, local=local)


def list_records(storage: Storage, location: Location) -> list[Location]:
    """The records under ``location``, oldest first (run ids carry their creation time)."""
    prefix = location.as_prefix().child(RUNS_PREFIX + "/")
    keys = [key for key in storage.list_sizes(prefix) if key.endswith("/" + RUN_RECORD_NAME)]
    keys.sort(key=lambda key: key.split("/")[-2].split("-", 1)[-1])
    return [LocalPath(key) if isinstance(prefix, LocalPath) else S3Uri(prefix.bucket, key) for key in keys]
