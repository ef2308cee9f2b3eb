"""Shared logic of batch-ingest.py and batch-export.py.

Three layers, each usable and testable on its own:

- inputs and plan: pure functions from the user's options and sample lists to a
  ``Plan`` (jobs with their commands, resources and logical dependencies). No AWS calls.
- submit: preflight checks, manifest upload, submission in dependency order, run record.
- watch: polling until every job is terminal, the report, export output verification.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import json
import os
import re
import secrets
import struct
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
import click
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Limits from AWS Batch (see aws-batch-facts.md). moto does not enforce them, so we do.
MAX_DEPENDS_ON = 20
DESCRIBE_JOBS_MAX_IDS = 100
# The account-wide SubmitJob limit is 50/s; staying below it leaves room for other clients.
SUBMITS_PER_SECOND = 40
MAX_ATTEMPTS = 10
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED"})

DEFAULT_SCRATCH_PATH = "/data"
DEFAULT_SCRATCH_MB = 1000 * 1024  # the 1 TB scratch volume of the documented set-up
# On-demand m5.4xlarge in us-east-1, the instance type of the documented compute environment.
DEFAULT_INSTANCE_PRICE = 0.768
DEFAULT_LOG_LINES = 20
# When --retries is 1, jobs still get this many attempts, but only for host loss (Spot).
HOST_LOSS_ATTEMPTS = 3
RUNS_PREFIX = "tiledbvcf-batch/runs"
RUN_RECORD_NAME = "run.json"
DATASETS_PREFIX = "tiledbvcf-batch/datasets"

RUNS_EPILOG = (
    "Every run is recorded in S3 (the path is printed on stderr). To show its status again, wait "
    "on it from another terminal, print the logs of its failed jobs or cancel it, see: "
    "python batch-runs.py --help"
)

EXPORT_SUFFIXES = {"b": ".bcf", "u": ".bcf", "z": ".vcf.gz", "v": ".vcf"}

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_ATTRIBUTE_RE = re.compile(r"^(fmt|info)_[A-Za-z0-9_.]+$")
_SECRET_KEY_RE = re.compile(r"secret|token|password|session", re.IGNORECASE)
_MAX_LISTED_PROBLEMS = 20


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class InputError(click.ClickException):
    """Bad input: one line per problem on stderr, exit status 2, nothing uploaded or submitted."""

    exit_code = 2

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))

    def show(self, file: Any = None) -> None:
        shown = self.problems[:_MAX_LISTED_PROBLEMS]
        for problem in shown:
            click.echo(f"Error: {problem}", err=True)
        if len(self.problems) > len(shown):
            click.echo(f"Error: ... and {len(self.problems) - len(shown)} more problems", err=True)


class SubmissionError(click.ClickException):
    """Submission failed part-way; the message says what was rolled back and what is left."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)


class OneLineErrors:
    """Click usage errors as one line that names the problem and the fix (exit 2)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as error:
            raise InputError(f"{error.format_message()} (see --help)") from None


class OneLineCommand(OneLineErrors, click.Command):
    pass


class OneLineGroup(OneLineErrors, click.Group):
    command_class = OneLineCommand


# Options that batch-ingest.py, batch-export.py and batch-runs.py share, spelled once.
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the report as one JSON document on stdout (the text goes to stderr)."
)
log_lines_option = click.option(
    "--log-lines",
    type=int,
    default=DEFAULT_LOG_LINES,
    show_default=True,
    metavar="N",
    help="Log lines shown for each failed job.",
)
instance_price_option = click.option(
    "--instance-price",
    type=float,
    default=DEFAULT_INSTANCE_PRICE,
    show_default=True,
    metavar="USD",
    help="Hourly instance price for the --wait cost estimate (on-demand m5.4xlarge, us-east-1).",
)
keep_partial_option = click.option(
    "--keep-partial",
    is_flag=True,
    help="If submission fails part-way, keep the jobs and files already submitted (default: remove them).",
)
kms_key_option = click.option(
    "--kms-key-id", metavar="KEY", help="Encrypt manifests and run records with this KMS key (default: AES256)."
)


# ---------------------------------------------------------------------------
# Inputs: URIs, sample lists, options
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, name: str) -> S3Uri:
        base = self.key if not self.key or self.key.endswith("/") else self.key + "/"
        return S3Uri(self.bucket, base + name)

    def as_prefix(self) -> S3Uri:
        """The same location as a "directory": empty or ending with one slash."""
        key = self.key.rstrip("/")
        return S3Uri(self.bucket, key + "/" if key else "")


def parse_s3_uri(text: str, what: str, *, need_key: bool = True) -> S3Uri:
    """Parse ``s3://bucket/key``; raise ValueError with a message that says how to fix it."""
    if _CONTROL_CHARS.search(text):
        raise ValueError(f"{what} {text!r} contains a control character (newline, tab, NUL...)")
    if not text.startswith("s3://"):
        raise ValueError(f"{what} {text!r} is not an S3 URI: write it as s3://bucket/path")
    bucket, _, key = text[len("s3://") :].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(f"{what} {text!r} has no valid bucket name: write it as s3://bucket/path")
    if need_key and not key.strip("/"):
        raise ValueError(f"{what} {text!r} names a bucket but no object: write it as s3://bucket/path")
    return S3Uri(bucket, key)


def parse_dataset_uri(text: str, option: str = "--dataset-uri") -> str:
    try:
        uri = parse_s3_uri(text.strip(), f"{option}")
    except ValueError as error:
        raise InputError(str(error)) from None
    return f"s3://{uri.bucket}/{uri.key.rstrip('/')}"


def parse_metadata_location(text: str) -> S3Uri:
    """``--metadata-s3`` takes a bucket name (as documented) or an ``s3://bucket/prefix``."""
    text = text.strip()
    try:
        if text.startswith("s3://"):
            return parse_s3_uri(text, "--metadata-s3", need_key=False).as_prefix()
        if not _BUCKET_RE.match(text) or "/" in text:
            raise ValueError(f"--metadata-s3 {text!r} is not a bucket name: give a bucket name or s3://bucket/prefix")
    except ValueError as error:
        raise InputError(str(error)) from None
    return S3Uri(text, "")


@dataclass(frozen=True)
class Sample:
    """One line of an ingestion samples file: a VCF/BCF URI and, optionally, its index."""

    uri: str
    index_uri: str | None = None

    def manifest_line(self) -> str:
        return self.uri if self.index_uri is None else f"{self.uri}\t{self.index_uri}"


def parse_samples(lines: Iterable[str], source: str) -> list[Sample]:
    """Parse sample lines (``<vcf-uri>`` or ``<vcf-uri><TAB><index-uri>``); report every problem."""
    samples: list[Sample] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n").strip(" ")
        if not line.strip() or line.startswith("#"):
            continue
        fields = [part.strip(" ") for part in line.split("\t")]
        if len(fields) > 2:
            problems.append(
                f"{source} line {number}: expected '<vcf-uri>' or '<vcf-uri><TAB><index-uri>', "
                f"found {len(fields)} tab-separated fields"
            )
            continue
        try:
            for part, what in zip(fields, ("sample", "index")[: len(fields)], strict=True):
                parse_s3_uri(part, f"{source} line {number}: {what}")
        except ValueError as error:
            problems.append(str(error))
            continue
        sample = Sample(fields[0], fields[1] if len(fields) == 2 else None)
        if sample.uri in first_seen:
            problems.append(
                f"{source} line {number} repeats line {first_seen[sample.uri]} ({sample.uri}): "
                "remove the duplicate, a sample ingested twice doubles its records"
            )
            continue
        first_seen[sample.uri] = number
        samples.append(sample)
    if not samples and not problems:
        problems.append(f"{source} lists no samples: give one s3:// sample URI per line")
    if problems:
        raise InputError(problems)
    return samples


def read_samples_file(path: str) -> list[Sample]:
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_samples(handle, path)
    except OSError as error:
        raise InputError(f"--samples: cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"--samples: {path} is not a UTF-8 text file of sample URIs") from None


def parse_sample_names(text: str, source: str) -> list[str]:
    """Parse an export sample-names file (one name per line); report every problem."""
    names: list[str] = []
    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        name = raw.strip()
        if not name:
            continue
        if _CONTROL_CHARS.search(name):
            problems.append(f"{source} line {number}: sample name {name!r} contains a control character")
        elif name in first_seen:
            problems.append(f"{source} line {number} repeats sample {name!r} of line {first_seen[name]}")
        else:
            first_seen[name] = number
            names.append(name)
    if not names and not problems:
        problems.append(f"{source} lists no sample names: give one name per line")
    if problems:
        raise InputError(problems)
    return names


def parse_attributes(text: str | None) -> list[str]:
    """``fmt_X``/``info_X`` names for ``tiledbvcf create -a`` (case sensitive, no duplicates)."""
    if text is None:
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    problems = [
        f"--attributes: {name!r} is not of the form fmt_<FIELD> or info_<FIELD> (e.g. fmt_DP, info_AF)"
        for name in names
        if not _ATTRIBUTE_RE.match(name)
    ]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        problems.append(f"--attributes names {', '.join(duplicates)} more than once")
    if not names and not problems:
        problems.append("--attributes is empty: give field names such as fmt_DP,info_AF or leave it out")
    if problems:
        raise InputError(problems)
    return names


def parse_tiledb_config(text: str | None) -> str | None:
    """Check ``k=v,k=v`` (the form every tiledbvcf subcommand takes) and return it unchanged."""
    if text is None:
        return None
    if _CONTROL_CHARS.search(text):
        raise InputError("--tiledb-config contains a control character")
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--tiledb-config: {item!r} is not key=value: write it as key1=val1,key2=val2")
    return text


def redact_config(text: str | None) -> str | None:
    """A TileDB config string safe to print or record: secret-looking values are hidden."""
    if text is None:
        return None
    items = []
    for item in text.split(","):
        key = item.partition("=")[0]
        items.append(f"{key}=***" if _SECRET_KEY_RE.search(key) else item)
    return ",".join(items)


def redact_command(command: Sequence[str]) -> list[str]:
    shown = list(command)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--tiledb-config":
            shown[i + 1] = redact_config(shown[i + 1]) or ""
    return shown


def gather(problems: list[str], check: Callable[..., Any], *args: Any) -> Any:
    """Run a check that raises InputError; collect its problems instead, so all are listed at once."""
    try:
        return check(*args)
    except InputError as error:
        problems.extend(error.problems)
        return None


def check_range(value: int, option: str, low: int, high: int | None = None) -> int:
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InputError(f"{option} is {value}: it must be {bound}")
    return value


# ---------------------------------------------------------------------------
# Plan (pure)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resources:
    vcpus: int
    memory_mib: int

    def requirements(self) -> list[dict[str, str]]:
        return [
            {"type": "VCPU", "value": str(self.vcpus)},
            {"type": "MEMORY", "value": str(self.memory_mib)},
        ]


GATE_RESOURCES = Resources(vcpus=1, memory_mib=1024)
CREATE_RESOURCES = Resources(vcpus=2, memory_mib=4096)


@dataclass
class Manifest:
    uri: S3Uri
    lines: list[str]
    existing: bool = False  # already in S3 (a resumed run reuses the original manifests)

    def body(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode("utf-8")

    def sample_uris(self) -> list[str]:
        return [line.split("\t", 1)[0] for line in self.lines]


@dataclass
class PlannedJob:
    key: str  # unique within the run; dependencies refer to it
    stage: str  # "create", "register-<b>", "ingest-<b>", "gate-<b>" or "export"
    name: str  # the Batch job name
    command: list[str]
    resources: Resources
    retry: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    manifest: Manifest | None = None
    samples: list[str] = field(default_factory=list)  # sample URIs (ingest) or names (export)


@dataclass
class Plan:
    kind: str  # "ingest" or "export"
    run_id: str
    run_prefix: S3Uri
    jobs: list[PlannedJob]
    notes: list[str] = field(default_factory=list)
    target: str = ""  # the dataset (ingest) or the destination prefix (export)
    index_marker: S3Uri | None = None  # lists this run among the dataset's runs (ingest)

    @property
    def record_uri(self) -> S3Uri:
        return self.run_prefix.child(RUN_RECORD_NAME)

    def manifests(self) -> list[Manifest]:
        """The manifests this run uploads."""
        return [job.manifest for job in self.jobs if job.manifest is not None and not job.manifest.existing]


@dataclass(frozen=True)
class IngestOptions:
    dataset_uri: str
    attributes: list[str] = field(default_factory=list)
    create_dataset: bool = True
    register: bool = False  # legacy v2/v3 datasets: register before store, no --resume
    num_jobs: int = 1
    incremental: int = 1
    retries: int = 1
    resources: Resources = Resources(16, 61440)
    threads: int = 16
    scratch_path: str = DEFAULT_SCRATCH_PATH
    scratch_mb: int = DEFAULT_SCRATCH_MB
    sample_batch_size: int | None = None
    tiledb_config: str | None = None


@dataclass(frozen=True)
class ExportOptions:
    dataset_uri: str
    dest: S3Uri
    samples_uri: str
    bed_uri: str
    num_jobs: int = 1
    retries: int = 1
    resources: Resources = Resources(4, 15000)
    scratch_path: str = DEFAULT_SCRATCH_PATH
    output_format: str = "b"
    tiledb_config: str | None = None


def new_run_id(kind: str, now: datetime.datetime | None = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_prefix_for(location: S3Uri, run_id: str) -> S3Uri:
    return location.as_prefix().child(f"{RUNS_PREFIX}/{run_id}/")


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Contiguous chunks whose sizes differ by at most one, larger first; never an empty chunk.

    This is also how ``tiledbvcf export --sample-partition`` cuts its sorted sample list.
    """
    parts = min(parts, len(items))
    size, extra = divmod(len(items), parts) if parts else (0, 0)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


def retry_strategy(retries: int) -> dict[str, Any]:
    """Batch retry strategy for ``--retries N``.

    With N = 1 a job is still retried, up to HOST_LOSS_ATTEMPTS attempts, when its host
    went away (Spot reclaim, lost instance); any other failure ends it. With N > 1 every
    failure is retried up to N attempts in all, host loss included.
    """
    if retries == 1:
        return {
            "attempts": HOST_LOSS_ATTEMPTS,
            "evaluateOnExit": [
                {"onStatusReason": "Host EC2*", "action": "RETRY"},
                {"onReason": "*", "action": "EXIT"},
            ],
        }
    return {"attempts": retries}


def config_args(tiledb_config: str | None) -> list[str]:
    return ["--tiledb-config", tiledb_config] if tiledb_config else []


def scratch_args(path: str, size_mb: int) -> list[str]:
    # Without -d/-s htslib streams the inputs instead of downloading them to scratch.
    return ["-d", path, "-s", str(size_mb)] if size_mb > 0 else []


def create_command(opts: IngestOptions) -> list[str]:
    command = ["create", "-u", opts.dataset_uri]
    if opts.attributes:
        command += ["-a", ",".join(opts.attributes)]
    return command + config_args(opts.tiledb_config)


def register_command(opts: IngestOptions, manifest: S3Uri) -> list[str]:
    # The legacy CLI's register takes no --tiledb-config.
    return ["register", "-u", opts.dataset_uri, *scratch_args(opts.scratch_path, opts.scratch_mb), "-f", str(manifest)]


def store_command(opts: IngestOptions, manifest: S3Uri) -> list[str]:
    command = [
        "store",
        "-u",
        opts.dataset_uri,
        *scratch_args(opts.scratch_path, opts.scratch_mb),
        "-t",
        str(opts.threads),
        "-f",
        str(manifest),
        "--remove-sample-file",
    ]
    if not opts.register:
        # A retried attempt skips what an earlier attempt of the same manifest already wrote.
        command.append("--resume")
    if opts.sample_batch_size:
        command += ["-e", str(opts.sample_batch_size)]
    return command + config_args(opts.tiledb_config)


# ``tiledbvcf --version`` does nothing and exits 0 on every release: a barrier job's command.
GATE_COMMAND = ["--version"]


def gate_jobs(keys: list[str], batch: int, retry: dict[str, Any]) -> tuple[list[PlannedJob], list[str]]:
    """Barrier jobs so that whatever waits for ``keys`` has at most MAX_DEPENDS_ON dependencies."""
    gates: list[PlannedJob] = []
    level = 0
    while len(keys) > MAX_DEPENDS_ON:
        level += 1
        next_keys = []
        for i, group in enumerate(split_evenly(keys, -(-len(keys) // MAX_DEPENDS_ON)), start=1):
            key = f"gate-{batch}-{level}-{i}"
            gates.append(
                PlannedJob(
                    key=key,
                    stage=f"gate-{batch}",
                    name=f"tiledbvcf-gate-b{batch}-l{level}-{i}",
                    command=list(GATE_COMMAND),
                    resources=GATE_RESOURCES,
                    retry=retry,
                    depends_on=list(group),
                )
            )
            next_keys.append(key)
        keys = next_keys
    return gates, keys


@dataclass
class Share:
    """One ingestion job's samples: its batch, its number in the batch, its manifest."""

    batch: int
    index: int
    manifest: Manifest


@dataclass
class IngestBatch:
    number: int
    shares: list[Share]
    register: Manifest | None = None  # legacy: the batch's registration manifest, when it must run


def ingest_batches(
    samples: Sequence[Sample], opts: IngestOptions, run_prefix: S3Uri
) -> tuple[list[IngestBatch], list[str]]:
    """Cut the samples into --incremental batches of --num-jobs shares, in file order."""
    batches, notes = [], []
    parts = split_evenly(samples, opts.incremental)
    if samples and len(parts) < opts.incremental:
        notes.append(f"--incremental {opts.incremental} asks for more batches than samples: using {len(parts)}")
    for b, part in enumerate(parts, start=1):
        shares = [
            Share(b, j, Manifest(run_prefix.child(f"ingest-b{b:03d}-j{j:04d}.txt"), [s.manifest_line() for s in chunk]))
            for j, chunk in enumerate(split_evenly(part, opts.num_jobs), start=1)
        ]
        if len(shares) < opts.num_jobs:
            notes.append(f"batch {b} has {len(part)} samples: submitting {len(part)} jobs instead of {opts.num_jobs}")
        register = None
        if opts.register:
            register = Manifest(run_prefix.child(f"register-b{b:03d}.txt"), [s.manifest_line() for s in part])
        batches.append(IngestBatch(b, shares, register))
    return batches, notes


def plan_ingest(
    opts: IngestOptions, batches: Sequence[IngestBatch], run_id: str, run_prefix: S3Uri, notes: Sequence[str] = ()
) -> Plan:
    """The ingestion job graph: [create] -> per batch: [register] -> store jobs -> next batch."""
    retry = retry_strategy(opts.retries)
    jobs: list[PlannedJob] = []
    ready: list[str] = []  # keys the next stage must wait for (at most MAX_DEPENDS_ON)
    if opts.create_dataset:
        jobs.append(
            PlannedJob(
                key="create",
                stage="create",
                name="tiledbvcf-create",
                command=create_command(opts),
                resources=CREATE_RESOURCES,
                retry=retry,
            )
        )
        ready = ["create"]
    for position, batch in enumerate(batches, start=1):
        b = batch.number
        if batch.register is not None:
            jobs.append(
                PlannedJob(
                    key=f"register-{b}",
                    stage=f"register-{b}",
                    name=f"tiledbvcf-register-b{b}",
                    command=register_command(opts, batch.register.uri),
                    resources=opts.resources,
                    retry=retry,
                    depends_on=ready,
                    manifest=batch.register,
                    samples=batch.register.sample_uris(),
                )
            )
            ready = [f"register-{b}"]
        store_keys = []
        for share in batch.shares:
            key = f"ingest-{b}-{share.index}"
            jobs.append(
                PlannedJob(
                    key=key,
                    stage=f"ingest-{b}",
                    name=f"tiledbvcf-ingest-b{b}-j{share.index}",
                    command=store_command(opts, share.manifest.uri),
                    resources=opts.resources,
                    retry=retry,
                    depends_on=list(ready),
                    manifest=share.manifest,
                    samples=share.manifest.sample_uris(),
                )
            )
            store_keys.append(key)
        if position < len(batches):
            gates, ready = gate_jobs(store_keys, b, retry)
            jobs.extend(gates)
    return Plan("ingest", run_id, run_prefix, jobs, list(notes), target=opts.dataset_uri)


def export_command(opts: ExportOptions, partition: int, partitions: int) -> list[str]:
    command = [
        "export",
        "-u",
        opts.dataset_uri,
        "-f",
        opts.samples_uri,
        "-R",
        opts.bed_uri,
        "--sample-partition",
        f"{partition}:{partitions}",
        "-d",
        opts.scratch_path,
        "--upload-dir",
        str(opts.dest),
    ]
    if opts.output_format != "b":  # the legacy CLI has no -O; b is the default of both
        command += ["-O", opts.output_format]
    return command + config_args(opts.tiledb_config)


def plan_export(opts: ExportOptions, names: Sequence[str], run_id: str, run_prefix: S3Uri) -> Plan:
    """One job per sample partition; never more partitions than samples (tiledbvcf fails then)."""
    retry = retry_strategy(opts.retries)
    partitions = split_evenly(sorted(names), opts.num_jobs)
    notes = []
    if len(partitions) < opts.num_jobs:
        notes.append(f"{len(names)} samples to export: submitting {len(partitions)} jobs instead of {opts.num_jobs}")
    jobs = [
        PlannedJob(
            key=f"export-{i + 1}",
            stage="export",
            name=f"tiledbvcf-export-{i + 1}-of-{len(partitions)}",
            command=export_command(opts, i, len(partitions)),
            resources=opts.resources,
            retry=retry,
            samples=chunk,
        )
        for i, chunk in enumerate(partitions)
    ]
    return Plan("export", run_id, run_prefix, jobs, notes, target=str(opts.dest))


STAGE_LABELS = {
    "create": "array creation",
    "register": "sample registration",
    "ingest": "ingestion",
    "gate": "batch barrier",
    "export": "export",
}


def stage_kind(stage: str) -> str:
    return stage.split("-", 1)[0]


def stage_label(stage: str) -> str:
    kind, _, batch = stage.partition("-")
    label = STAGE_LABELS[kind]
    return f"{label} {batch}" if batch else label


def submitted_line(stage: str, jobs: Sequence[PlannedJob], ids: Sequence[str]) -> str:
    """The line the documented scripts print once a stage is submitted (stdout, parsed by scripts)."""
    kind = stage_kind(stage)
    if kind == "create":
        return f"Submitted array creation job {ids[0]}"
    if kind == "register":
        return f"Submitted sample registration job {ids[0]} using metadata {jobs[0].manifest.uri}"
    if kind == "ingest":
        return f"Submitted ingestion job(s) {' '.join(ids)}"
    if kind == "export":
        return f"Submitted export job(s) {' '.join(ids)}"
    return f"Submitted {len(ids)} barrier job(s) after ingestion batch {stage.split('-')[1]}"


def describe_plan(plan: Plan, job_queue: str, job_definition: str) -> list[str]:
    """The plan as text, for --dry-run."""
    lines = [
        f"Plan for {plan.kind} run {plan.run_id} ({len(plan.jobs)} jobs) on queue {job_queue}, "
        f"job definition {job_definition}",
        f"Manifests and run record under {plan.run_prefix}",
    ]
    for job in plan.jobs:
        deps = f" after {', '.join(job.depends_on)}" if job.depends_on else ""
        lines.append(
            f"  {job.key}: {job.name} [{job.resources.vcpus} vCPU, {job.resources.memory_mib} MiB, "
            f"{job.retry['attempts']} attempts]{deps}"
        )
        lines.append(f"    tiledbvcf {' '.join(redact_command(job.command))}")
        if job.manifest is not None:
            lines.append(f"    manifest {job.manifest.uri}: {len(job.manifest.lines)} samples")
        elif job.samples:
            lines.append(f"    samples: {len(job.samples)}")
    return lines


# ---------------------------------------------------------------------------
# AWS: clients and preflight
# ---------------------------------------------------------------------------


@dataclass
class Clients:
    region: str
    batch: Any
    s3: Any
    logs: Any


def resolve_region(region: str | None) -> str:
    return region or boto3.session.Session().region_name or "us-east-1"


def make_clients(region: str | None) -> Clients:
    """Clients whose retries ride out throttling (TooManyRequestsException, SlowDown) and 5xx.

    botocore's standard mode with 10 attempts backs off exponentially (up to 20 s a retry).
    Not adaptive mode: it is experimental, and its client-side rate limiter would second-guess
    the pacing of submissions and the polling backoff that this module does itself.
    """
    region = resolve_region(region)
    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": 10},
        user_agent_extra="tiledbvcf-batch",
    )
    return Clients(
        region=region,
        batch=boto3.client("batch", config=config),
        s3=boto3.client("s3", config=config),
        logs=boto3.client("logs", config=config),
    )


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def aws_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    return str(error)


def check_job_queue(batch: Any, name: str, region: str) -> list[str]:
    try:
        queues = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    except ClientError as error:
        return [f"--job-queue {name}: cannot describe it ({aws_message(error)})"]
    if not queues:
        return [f"--job-queue {name}: no such job queue in {region}: check the name and --region"]
    queue = queues[0]
    problems = []
    if queue.get("state") != "ENABLED":
        problems.append(f"--job-queue {name} is {queue.get('state')}: enable it or pick another queue")
    if queue.get("status") not in ("VALID", "UPDATING"):
        problems.append(
            f"--job-queue {name} is {queue.get('status')} ({queue.get('statusReason', 'no reason given')}): "
            "fix or recreate it"
        )
    if not queue.get("computeEnvironmentOrder"):
        problems.append(f"--job-queue {name} has no compute environment: attach one")
    return problems


def find_job_definition(batch: Any, name: str) -> dict[str, Any] | None:
    """The ACTIVE job definition ``name``, ``name:revision`` or ARN (newest revision when none)."""
    if ":" in name:
        found = batch.describe_job_definitions(jobDefinitions=[name])["jobDefinitions"]
    else:
        found = []
        for page in batch.get_paginator("describe_job_definitions").paginate(jobDefinitionName=name, status="ACTIVE"):
            found.extend(page["jobDefinitions"])
    active = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
    return max(active, key=lambda d: d.get("revision", 0)) if active else None


def check_job_definition(batch: Any, name: str, region: str) -> list[str]:
    try:
        definition = find_job_definition(batch, name)
    except ClientError as error:
        return [f"--job-definition {name}: cannot describe it ({aws_message(error)})"]
    if definition is None:
        return [
            f"--job-definition {name}: no ACTIVE job definition of that name in {region}: check the name and --region"
        ]
    if definition.get("type") != "container":
        return [f"--job-definition {name} is of type {definition.get('type')}: it must be a container job definition"]
    return []


def check_bucket(s3: Any, bucket: str, option: str) -> list[str]:
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error_code(error)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return [f"{option}: bucket {bucket} does not exist: create it or fix the name"]
        if code in ("403", "AccessDenied", "Forbidden"):
            return [f"{option}: access to bucket {bucket} is denied: check your credentials and its policy"]
        return [f"{option}: cannot reach bucket {bucket} ({aws_message(error)})"]
    return []


def check_object(s3: Any, uri: S3Uri, option: str) -> list[str]:
    try:
        s3.head_object(Bucket=uri.bucket, Key=uri.key)
    except ClientError as error:
        if error_code(error) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            return [f"{option}: {uri} does not exist: upload it first (aws s3 cp FILE {uri})"]
        return [f"{option}: cannot read {uri} ({aws_message(error)})"]
    return []


def dataset_exists(s3: Any, dataset_uri: str) -> bool:
    """A dataset is a TileDB group: it exists when any object lives under ``<uri>/``."""
    uri = parse_s3_uri(dataset_uri, "dataset").as_prefix()
    response = s3.list_objects_v2(Bucket=uri.bucket, Prefix=uri.key, MaxKeys=1)
    return response.get("KeyCount", 0) > 0


def read_s3_text(s3: Any, uri: S3Uri) -> str:
    return s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode("utf-8")


def list_sizes(s3: Any, bucket: str, prefix: str, last: str | None = None) -> dict[str, int]:
    """Keys under ``prefix`` with their sizes, 1,000 per call; stops once past ``last``."""
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        contents = page.get("Contents", [])
        sizes.update((item["Key"], item["Size"]) for item in contents)
        if last is not None and contents and contents[-1]["Key"] > last:
            break
    return sizes


def index_candidates(sample: Sample) -> list[S3Uri]:
    if sample.index_uri is not None:
        return [parse_s3_uri(sample.index_uri, "index")]
    uri = parse_s3_uri(sample.uri, "sample")
    return [S3Uri(uri.bucket, uri.key + ".csi"), S3Uri(uri.bucket, uri.key + ".tbi")]


def check_samples(s3: Any, samples: Sequence[Sample]) -> tuple[list[str], dict[str, int]]:
    """Every sample exists with its index; return the problems and each sample's size.

    Samples that share a directory are checked with one listing of it (about N/1000 calls),
    not one HEAD request per file.
    """
    wanted: dict[tuple[str, str], set[str]] = {}
    for sample in samples:
        for uri in [parse_s3_uri(sample.uri, "sample"), *index_candidates(sample)]:
            directory = uri.key.rpartition("/")[0]
            wanted.setdefault((uri.bucket, directory), set()).add(uri.key)
    found: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for (bucket, _directory), keys in wanted.items():
        # A key prefix, compared character by character on purpose: it narrows the listing.
        prefix = os.path.commonprefix([min(keys), max(keys)])  # noqa: RUF071
        try:
            listed = list_sizes(s3, bucket, prefix, last=max(keys))
        except ClientError as error:
            problems.append(
                f"cannot list s3://{bucket}/{prefix} to check {len(keys)} sample and index files "
                f"({aws_message(error)}): the scripts need s3:ListBucket there"
            )
            found.update(dict.fromkeys(((bucket, key) for key in keys), -1))
            continue
        found.update(((bucket, key), size) for key, size in listed.items() if key in keys)
    sizes: dict[str, int] = {}
    for sample in samples:
        uri = parse_s3_uri(sample.uri, "sample")
        size = found.get((uri.bucket, uri.key))
        if size is None:
            problems.append(f"sample {sample.uri} does not exist: fix the samples file or upload it")
            continue
        sizes[sample.uri] = size
        if size == -1:
            continue  # its directory could not be listed, reported above
        if not any((c.bucket, c.key) in found for c in index_candidates(sample)):
            if sample.index_uri is not None:
                problems.append(f"index {sample.index_uri} of sample {sample.uri} does not exist")
            else:
                problems.append(
                    f"sample {sample.uri} has no index beside it ({uri.key.rpartition('/')[2]}.csi or .tbi): "
                    "index it (bcftools index) or name the index after a TAB"
                )
    return problems, sizes


HEADER_FIRST_READ = 64 * 1024
HEADER_MAX_READ = 8 * 1024 * 1024


def decompress_bgzf(data: bytes) -> bytes:
    """Decompress the complete gzip members at the start of ``data`` (BGZF is a series of them)."""
    out = []
    while data:
        inflater = zlib.decompressobj(wbits=31)
        try:
            out.append(inflater.decompress(data))
        except zlib.error:
            break
        if not inflater.eof:
            out.append(inflater.flush())
            break
        data = inflater.unused_data
    return b"".join(out)


def header_sample_names(data: bytes) -> list[str] | None:
    """Sample names from the start of a bgzipped VCF or BCF; None while the header is incomplete."""
    if not data.startswith(b"\x1f\x8b"):
        raise ValueError("is not bgzip-compressed (tiledbvcf needs bgzipped, indexed VCF/BCF)")
    text = decompress_bgzf(data)
    if text.startswith(b"BCF\x02"):
        if len(text) < 9 or len(text) < 9 + struct.unpack("<I", text[5:9])[0]:
            return None
        length = struct.unpack("<I", text[5:9])[0]
        header = text[9 : 9 + length].rstrip(b"\x00").decode("utf-8", "replace") + "\n"
    else:
        header = text.decode("utf-8", "replace")
    complete_lines = header.split("\n")[:-1]  # the last piece may be cut short
    for line in complete_lines:
        if line.startswith("#CHROM"):
            return [name for name in line.rstrip("\r").split("\t")[9:] if name]
        if not line.startswith("##"):
            raise ValueError("has no #CHROM header line before its first record")
    return None


def read_header_sample_names(s3: Any, uri: S3Uri) -> list[str]:
    """Range-read the first bytes of a sample file until its header is complete."""
    size = HEADER_FIRST_READ
    while True:
        response = s3.get_object(Bucket=uri.bucket, Key=uri.key, Range=f"bytes=0-{size - 1}")
        data = response["Body"].read()
        names = header_sample_names(data)
        if names is not None:
            return names
        if len(data) < size or size >= HEADER_MAX_READ:
            raise ValueError(f"has no complete header in its first {len(data)} bytes")
        size *= 4


def check_headers(s3: Any, samples: Sequence[Sample], workers: int = 16) -> list[str]:
    """Each file holds exactly one sample, and no sample name appears in two files."""
    problems: list[str] = []

    def read(sample: Sample) -> tuple[Sample, list[str] | str]:
        try:
            return sample, read_header_sample_names(s3, parse_s3_uri(sample.uri, "sample"))
        except ValueError as error:
            return sample, str(error)
        except ClientError as error:
            return sample, f"cannot be read ({aws_message(error)})"

    first_file: dict[str, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for sample, result in pool.map(read, samples):
            if isinstance(result, str):
                problems.append(f"sample {sample.uri} {result}")
            elif len(result) != 1:
                problems.append(
                    f"sample {sample.uri} has {len(result)} samples in its header: tiledbvcf ingests "
                    "single-sample files only (split it with bcftools +split)"
                )
            elif result[0] in first_file:
                problems.append(
                    f"sample name {result[0]} is in both {first_file[result[0]]} and {sample.uri}: "
                    "remove one of them from the samples file"
                )
            else:
                first_file[result[0]] = sample.uri
    return problems


def check_writable(s3: Any, location: S3Uri, option: str, encryption: dict[str, str]) -> list[str]:
    """The bucket exists and a small object can be written and deleted there: the only sure test."""
    missing = check_bucket(s3, location.bucket, option)
    if missing:
        return missing
    probe = location.as_prefix().child(f"tiledbvcf-batch/.write-check-{secrets.token_hex(4)}")
    try:
        s3.put_object(Bucket=probe.bucket, Key=probe.key, Body=b"", **encryption)
    except ClientError as error:
        return [f"{option}: cannot write to {location.as_prefix()} ({aws_message(error)})"]
    try:
        s3.delete_object(Bucket=probe.bucket, Key=probe.key)
    except ClientError as error:
        return [f"{option}: can write to {location.as_prefix()} but not delete {probe} ({aws_message(error)})"]
    return []


def encryption_args(kms_key_id: str | None) -> dict[str, str]:
    if kms_key_id:
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
    return {"ServerSideEncryption": "AES256"}


# ---------------------------------------------------------------------------
# Never twice, never lost: what earlier runs of a dataset did
# ---------------------------------------------------------------------------

IN_FLIGHT = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"})


def dataset_index(metadata: S3Uri, dataset_uri: str) -> S3Uri:
    """Where the runs of one dataset are listed (one small marker object per run)."""
    digest = hashlib.sha256(dataset_uri.encode("utf-8")).hexdigest()[:16]
    return metadata.as_prefix().child(f"{DATASETS_PREFIX}/{digest}/")


def load_run_record(s3: Any, uri: S3Uri) -> dict[str, Any]:
    return json.loads(read_s3_text(s3, uri))


def describe_all(batch: Any, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for group in chunks(list(job_ids), DESCRIBE_JOBS_MAX_IDS):
        for description in batch.describe_jobs(jobs=list(group))["jobs"]:
            found[description["jobId"]] = description
    return found


def job_states(clients: Clients, record: dict[str, Any]) -> dict[str, str]:
    """SUCCEEDED, FAILED or IN_FLIGHT for each job of a run record.

    An ingestion job succeeded when its manifest is gone: ``store --remove-sample-file``
    deletes it only after a successful ingestion, so this holds even when nobody waited and
    Batch has long forgotten the job. Other jobs are judged by their Batch status; a job
    Batch no longer knows counts as FAILED.
    """
    manifests = [parse_s3_uri(job["manifest"], "manifest") for job in record["jobs"] if job.get("manifest")]
    present: set[tuple[str, str]] = set()
    for bucket, directory in {(m.bucket, m.key.rpartition("/")[0] + "/") for m in manifests}:
        present.update((bucket, key) for key in list_sizes(clients.s3, bucket, directory))
    ids = [job["job_id"] for job in record["jobs"] if job.get("job_id")]
    described = describe_all(clients.batch, ids)
    states = {}
    for job in record["jobs"]:
        status = described.get(job.get("job_id") or "", {}).get("status")
        if status in IN_FLIGHT:
            states[job["key"]] = "IN_FLIGHT"
        elif stage_kind(job["stage"]) == "ingest":
            manifest = parse_s3_uri(job["manifest"], "manifest")
            gone = (manifest.bucket, manifest.key) not in present
            states[job["key"]] = "SUCCEEDED" if gone or status == "SUCCEEDED" else "FAILED"
        else:
            states[job["key"]] = "SUCCEEDED" if status == "SUCCEEDED" else "FAILED"
    return states


@dataclass
class Ledger:
    """What earlier runs (recorded under the same --metadata-s3) did with a dataset's samples."""

    ingested: set[str] = field(default_factory=set)
    in_flight: dict[str, str] = field(default_factory=dict)  # sample -> run id
    failed: dict[str, str] = field(default_factory=dict)  # sample -> run id, not ingested since
    runs: list[str] = field(default_factory=list)


def dataset_ledger(clients: Clients, metadata: S3Uri, dataset_uri: str) -> Ledger:
    ledger = Ledger()
    index = dataset_index(metadata, dataset_uri)
    for key in sorted(list_sizes(clients.s3, index.bucket, index.key)):
        run_id = key.rpartition("/")[2].removesuffix(".json")
        try:
            record = load_run_record(clients.s3, run_prefix_for(metadata, run_id).child(RUN_RECORD_NAME))
        except ClientError:
            continue  # the marker outlived its run record: nothing to learn from it
        ledger.runs.append(run_id)
        states = job_states(clients, record)
        for job in record["jobs"]:
            if stage_kind(job["stage"]) != "ingest":
                continue
            for sample in job["samples"]:
                if states[job["key"]] == "SUCCEEDED":
                    ledger.ingested.add(sample)
                elif states[job["key"]] == "IN_FLIGHT":
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
            f"skipped {len(ingested)} samples already ingested by earlier runs (--force-reingest ingests them again)"
        )
    for run_id, uris in in_flight.items():
        notes.append(f"skipped {len(uris)} samples that jobs of run {run_id} are still ingesting")
    for run_id, uris in failed.items():
        notes.append(
            f"skipped {len(uris)} samples of failed jobs of run {run_id}: resume that run with --resume {run_id} "
            "(store --resume needs the original manifests), or pass --force-reingest to ingest them in new jobs"
        )
    return keep, notes


def resume_batches(record: dict[str, Any], states: dict[str, str]) -> list[IngestBatch]:
    """The batches of an earlier run with only the jobs that did not succeed, original manifests."""
    in_flight = [key for key, state in states.items() if state == "IN_FLIGHT"]
    if in_flight:
        raise InputError(
            f"run {record['run_id']} still has {len(in_flight)} unfinished jobs: wait for them, or cancel "
            "them, before resuming it"
        )
    batches: dict[int, IngestBatch] = {}
    for job in record["jobs"]:
        kind, _, rest = job["stage"].partition("-")
        if kind not in ("ingest", "register") or states[job["key"]] == "SUCCEEDED":
            continue
        number = int(rest)
        batch = batches.setdefault(number, IngestBatch(number, []))
        manifest = Manifest(parse_s3_uri(job["manifest"], "manifest"), list(job["samples"]), existing=True)
        if kind == "register":
            batch.register = manifest
        else:
            batch.shares.append(Share(number, int(job["key"].rsplit("-", 1)[1]), manifest))
    return [batches[n] for n in sorted(batches)]


# ---------------------------------------------------------------------------
# Submit
# ---------------------------------------------------------------------------


def job_payload(
    job: PlannedJob, job_ids: dict[str, str], job_queue: str, job_definition: str, run_id: str
) -> dict[str, Any]:
    """The SubmitJob request for ``job``, checked against the Batch limits that moto does not enforce."""
    if not JOB_NAME_RE.match(job.name):
        raise ValueError(f"job name {job.name!r} is not a valid Batch job name")
    if not job.command or any(not isinstance(arg, str) or arg == "" for arg in job.command):
        raise ValueError(f"job {job.name}: a command may not be empty or contain an empty string")
    if len(job.depends_on) > MAX_DEPENDS_ON:
        raise ValueError(f"job {job.name} depends on {len(job.depends_on)} jobs; Batch allows {MAX_DEPENDS_ON}")
    if not 1 <= job.retry["attempts"] <= MAX_ATTEMPTS:
        raise ValueError(f"job {job.name}: retry attempts must be between 1 and {MAX_ATTEMPTS}")
    payload: dict[str, Any] = {
        "jobName": job.name,
        "jobQueue": job_queue,
        "jobDefinition": job_definition,
        "containerOverrides": {
            "command": list(job.command),
            "resourceRequirements": job.resources.requirements(),
        },
        "retryStrategy": job.retry,
        "tags": {"tiledbvcf-batch-run": run_id, "tiledbvcf-batch-stage": job.stage},
    }
    if job.depends_on:
        payload["dependsOn"] = [{"jobId": job_ids[key]} for key in job.depends_on]
    return payload


@dataclass
class Pacer:
    """Keeps calls under a rate (calls per second) with an injectable clock and sleep."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + 1.0 / self.rate


def put_text(s3: Any, uri: S3Uri, body: bytes, encryption: dict[str, str], content_type: str = "text/plain") -> None:
    s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type, **encryption)


def run_record(
    plan: Plan, options: dict[str, Any], job_ids: dict[str, str], job_queue: str, job_definition: str, region: str
) -> dict[str, Any]:
    """What a later process needs to find, watch, resume or cancel this run. No secrets."""
    return {
        "run_id": plan.run_id,
        "kind": plan.kind,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "region": region,
        "job_queue": job_queue,
        "job_definition": job_definition,
        "target": plan.target,
        "record": str(plan.record_uri),
        "options": options,
        "jobs": [
            {
                "key": job.key,
                "stage": job.stage,
                "name": job.name,
                "job_id": job_ids.get(job.key),
                "depends_on": job.depends_on,
                "manifest": str(job.manifest.uri) if job.manifest else None,
                "samples": job.samples,
            }
            for job in plan.jobs
        ],
    }


def rollback(clients: Clients, plan: Plan, job_ids: dict[str, str], uploaded: list[S3Uri]) -> list[str]:
    """Stop the jobs this run submitted and delete what it uploaded; return what could not be undone."""
    left: list[str] = []
    for key, job_id in job_ids.items():
        try:
            # terminate_job cancels jobs that have not started and stops the others.
            clients.batch.terminate_job(jobId=job_id, reason=f"submission of run {plan.run_id} failed")
        except (ClientError, BotoCoreError) as error:
            left.append(f"job {job_id} ({key}): {aws_message(error)}")
    # Newest first: the index marker and the record go before the manifests. Were it the other
    # way round, a record left behind would show manifests that are gone, and the ledger would
    # take their samples for ingested.
    for uri in reversed(uploaded):
        try:
            clients.s3.delete_object(Bucket=uri.bucket, Key=uri.key)
        except (ClientError, BotoCoreError) as error:
            left.append(f"{uri}: {aws_message(error)}")
    return left


def submit_plan(
    plan: Plan,
    clients: Clients,
    job_queue: str,
    job_definition: str,
    options: dict[str, Any],
    *,
    encryption: dict[str, str],
    keep_partial: bool = False,
    pacer: Pacer | None = None,
) -> dict[str, Any]:
    """Upload manifests, record the run, submit every job in order and print the documented lines.

    Returns the run record, as written to S3 with every job's id.

    On any failure, unless ``keep_partial``, the jobs already submitted are terminated and the
    uploads deleted; SubmissionError says what happened and anything left behind.
    """
    pacer = pacer or Pacer(SUBMITS_PER_SECOND)
    job_ids: dict[str, str] = {}
    uploaded: list[S3Uri] = []
    stage_jobs: dict[str, list[PlannedJob]] = {}
    for job in plan.jobs:
        stage_jobs.setdefault(job.stage, []).append(job)

    def record() -> dict[str, Any]:
        body = run_record(plan, options, job_ids, job_queue, job_definition, clients.region)
        put_text(
            clients.s3, plan.record_uri, json.dumps(body, indent=1).encode("utf-8"), encryption, "application/json"
        )
        return body

    try:
        for manifest in plan.manifests():
            put_text(clients.s3, manifest.uri, manifest.body(), encryption)
            uploaded.append(manifest.uri)
        # The record goes up before any job: whatever happens next, the run can be found.
        record()
        uploaded.append(plan.record_uri)
        if plan.index_marker is not None:
            marker = json.dumps({"run_record": str(plan.record_uri)}).encode("utf-8")
            put_text(clients.s3, plan.index_marker, marker, encryption, "application/json")
            uploaded.append(plan.index_marker)
        for job in plan.jobs:
            pacer.wait()
            response = clients.batch.submit_job(**job_payload(job, job_ids, job_queue, job_definition, plan.run_id))
            job_ids[job.key] = response["jobId"]
            jobs_of_stage = stage_jobs[job.stage]
            if job is jobs_of_stage[-1]:
                line = submitted_line(job.stage, jobs_of_stage, [job_ids[j.key] for j in jobs_of_stage])
                # Barrier jobs are ours, not the documented system's: keep them off stdout.
                click.echo(line, err=stage_kind(job.stage) == "gate")
        final = record()
    except (ClientError, BotoCoreError, KeyboardInterrupt) as error:
        cause = "interrupted" if isinstance(error, KeyboardInterrupt) else aws_message(error)
        failed = f"submission of run {plan.run_id} failed after {len(job_ids)} of {len(plan.jobs)} jobs ({cause})"
        if keep_partial:
            raise SubmissionError(f"{failed}; {kept_message(clients, plan, job_ids, uploaded, record)}") from None
        left = rollback(clients, plan, job_ids, uploaded)
        if left:
            raise SubmissionError(
                f"{failed}; tried to undo it but these remain, remove them by hand: {'; '.join(left)}"
            ) from None
        raise SubmissionError(
            f"{failed}; terminated the {len(job_ids)} job(s) already submitted and deleted "
            f"{len(uploaded)} uploaded file(s); nothing is left behind"
        ) from None
    click.echo(f"Run {plan.run_id} recorded at {plan.record_uri}", err=True)
    return final


def kept_message(
    clients: Clients, plan: Plan, job_ids: dict[str, str], uploaded: list[S3Uri], record: Callable[[], Any]
) -> str:
    """--keep-partial: say exactly what is left and how to finish or remove it."""
    if plan.record_uri not in uploaded:
        # Never write a record now: its missing manifests would read as consumed, i.e. ingested.
        return (
            f"no job was submitted; kept {len(uploaded)} manifest(s) under {plan.run_prefix}: "
            f"remove them with aws s3 rm --recursive {plan.run_prefix}"
        )
    try:
        record()  # so that the record names the jobs that were submitted
    except (ClientError, BotoCoreError) as error:
        return (
            f"kept {len(job_ids)} submitted job(s) ({' '.join(job_ids.values()) or 'none'}) and "
            f"{len(uploaded)} uploaded file(s) under {plan.run_prefix}, but the run record could not be "
            f"updated ({aws_message(error)}): terminate the jobs with aws batch terminate-job and remove "
            f"the files with aws s3 rm --recursive {plan.run_prefix}"
        )
    if plan.kind == "export":
        return (
            f"kept {len(job_ids)} submitted job(s) and the run record {plan.record_uri}; cancel them with: "
            f"python batch-runs.py cancel {plan.record_uri}"
        )
    return (
        f"kept {len(job_ids)} submitted job(s) and {len(uploaded)} file(s) under {plan.run_prefix}; "
        f"finish the run with the same command plus --resume {plan.run_id}, or stop it with: "
        f"python batch-runs.py cancel {plan.record_uri}"
    )


# ---------------------------------------------------------------------------
# Watch
# ---------------------------------------------------------------------------

DEFAULT_LOG_GROUP = "/aws/batch/job"
# A CAPACITY reason often clears by itself (instances being launched); say so only if it lasts.
CAPACITY_WARN_AFTER = 15 * 60
PLAIN_PROGRESS_EVERY = 60
EXIT_INTERRUPTED = 130
MISCONFIGURATION_ADVICE = {
    "COMPUTE_ENVIRONMENT_MAX_RESOURCE": "the job asks for more vCPUs or memory than any instance of the "
    "compute environment has: lower --vcpus/--memory or allow larger instance types",
    "JOB_RESOURCE_REQUIREMENT": "no instance type of the compute environment fits the job's resources: "
    "lower --vcpus/--memory or change the allowed instance types",
    "SERVICE_ROLE_PERMISSIONS": "the Batch service role lacks permissions: check the compute "
    "environment's service role",
}


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {n}" for status, n in counts.items() if n)


def wait_for_jobs(
    batch: Any,
    job_ids: Sequence[str],
    *,
    interval: float = 10.0,
    max_interval: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    observe: Callable[[dict[str, dict[str, Any]]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Poll until every job is terminal; return the last description of each job.

    Only unfinished jobs are polled, at most DESCRIBE_JOBS_MAX_IDS per call, and the
    interval backs off while nothing changes. Throttling slows polling down; it never
    ends the wait. ``observe(latest)`` is called after every round.
    """
    latest: dict[str, dict[str, Any]] = {}
    pending = list(job_ids)
    delay = interval
    while pending:
        changed = False
        throttled = False
        for group in chunks(pending, DESCRIBE_JOBS_MAX_IDS):
            try:
                described = batch.describe_jobs(jobs=list(group))["jobs"]
            except ClientError as error:
                if error_code(error) not in ("TooManyRequestsException", "ThrottlingException"):
                    raise
                throttled = True
                continue
            for description in described:
                previous = latest.get(description["jobId"])
                if previous is None or previous["status"] != description["status"]:
                    changed = True
                latest[description["jobId"]] = description
        pending = [i for i in pending if latest.get(i, {}).get("status") not in TERMINAL_STATUSES]
        if observe is not None:
            observe(latest)
        if pending:
            delay = interval if changed and not throttled else min(delay * 2, max_interval)
            sleep(delay)
    return latest


def record_job_ids(record: dict[str, Any]) -> list[str]:
    return [job["job_id"] for job in record["jobs"] if job.get("job_id")]


def stage_counts(record: dict[str, Any], latest: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Jobs per status for each stage, in the run's stage order; unseen jobs count as SUBMITTED."""
    counts: dict[str, dict[str, int]] = {}
    for job in record["jobs"]:
        if not job.get("job_id"):
            continue
        stage = counts.setdefault(job["stage"], dict.fromkeys(JOB_STATUSES, 0))
        stage[latest.get(job["job_id"], {}).get("status", "SUBMITTED")] += 1
    return counts


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def created_epoch(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(record["created_at"]).timestamp()


def progress_lines(record: dict[str, Any], latest: dict[str, dict[str, Any]], now: float) -> list[str]:
    counts = stage_counts(record, latest)
    total = sum(sum(c.values()) for c in counts.values())
    done = sum(c["SUCCEEDED"] + c["FAILED"] for c in counts.values())
    elapsed = format_duration(now - created_epoch(record))
    lines = [f"[{record['run_id']}] {done}/{total} jobs finished, {elapsed} since submission"]
    lines += [f"  {stage_label(stage)}: {format_counts(c)}" for stage, c in counts.items()]
    return lines


@dataclass
class Progress:
    """Progress on stderr: redrawn in place on a terminal, else one line on change (at most once a minute)."""

    record: dict[str, Any]
    now: Callable[[], float] = time.time
    tty: bool = False
    stream: Any = None
    _drawn: int = 0
    _last_plain: float | None = None
    _last_text: str = ""

    def show(self, latest: dict[str, dict[str, Any]], final: bool = False) -> None:
        stream = self.stream or click.get_text_stream("stderr")
        lines = progress_lines(self.record, latest, self.now())
        if self.tty:
            # Move up over the previous drawing and clear it, then draw again.
            erase = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
            stream.write(erase + "\n".join(lines) + "\n")
            stream.flush()
            self._drawn = len(lines)
            return
        text = " | ".join(line.strip() for line in lines[1:])
        due = self._last_plain is None or self.now() - self._last_plain >= PLAIN_PROGRESS_EVERY
        if text != self._last_text and (final or due):
            stream.write(f"{lines[0]}: {text}\n")
            stream.flush()
            self._last_plain = self.now()
            self._last_text = text


@dataclass
class StuckJobs:
    """Notices RUNNABLE jobs that will never start (MISCONFIGURATION) or wait long for capacity."""

    now: Callable[[], float] = time.time
    reported: set[str] = field(default_factory=set)
    capacity_since: dict[str, float] = field(default_factory=dict)

    def check(self, latest: dict[str, dict[str, Any]], names: dict[str, str]) -> list[str]:
        messages = []
        for job_id, description in latest.items():
            reason = description.get("statusReason", "") if description["status"] == "RUNNABLE" else ""
            name = names.get(job_id, job_id)
            if reason.startswith("MISCONFIGURATION:") and reason not in self.reported:
                self.reported.add(reason)
                advice = MISCONFIGURATION_ADVICE.get(
                    reason.split(":", 1)[1], "check the compute environment, its service role and the job's resources"
                )
                stuck = sum(1 for d in latest.values() if d.get("statusReason") == reason and d["status"] == "RUNNABLE")
                messages.append(
                    f"STUCK: {stuck} job(s) (e.g. {name}) are RUNNABLE with {reason} and will never start: "
                    f"{advice}. Cancel the run with python batch-runs.py cancel ..."
                )
            if reason.startswith("CAPACITY:"):
                since = self.capacity_since.setdefault(job_id, self.now())
                key = f"capacity:{reason}"
                if self.now() - since >= CAPACITY_WARN_AFTER and key not in self.reported:
                    self.reported.add(key)
                    messages.append(
                        f"WARNING: {name} has waited {format_duration(self.now() - since)} for capacity "
                        f"({reason}): the compute environment cannot get instances; consider other "
                        "instance types, On-Demand instead of Spot, or another Availability Zone"
                    )
            else:
                self.capacity_since.pop(job_id, None)
        return messages


# -- Report ---------------------------------------------------------------------


@dataclass
class Report:
    total: int
    succeeded: int
    retried: int
    instances: int
    longest_seconds: float
    instance_hours: float
    instance_price: float
    failed: list[dict[str, Any]] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    spot_interruptions: int = 0
    samples_succeeded: int | None = None
    samples_failed: int | None = None
    missing_exports: list[str] = field(default_factory=list)
    exports_expected: int = 0
    export_dest: str = ""

    @property
    def cost(self) -> float:
        return self.instance_hours * self.instance_price

    @property
    def ok(self) -> bool:
        return self.succeeded == self.total and not self.missing_exports


def attempt_seconds(attempt: dict[str, Any]) -> float:
    if "startedAt" not in attempt or "stoppedAt" not in attempt:
        return 0.0
    return max(0, attempt["stoppedAt"] - attempt["startedAt"]) / 1000.0


def stage_durations(record: dict[str, Any], descriptions: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each stage: jobs, succeeded, and wall time from its first start to its last stop."""
    stages: dict[str, dict[str, Any]] = {}
    for job in record["jobs"]:
        stage = stages.setdefault(job["stage"], {"jobs": 0, "succeeded": 0, "starts": [], "stops": []})
        stage["jobs"] += 1
        description = descriptions.get(job.get("job_id") or "")
        if description is None:
            continue
        stage["succeeded"] += description["status"] == "SUCCEEDED"
        for attempt in description.get("attempts", []):
            stage["starts"] += [attempt["startedAt"]] if "startedAt" in attempt else []
            stage["stops"] += [attempt["stoppedAt"]] if "stoppedAt" in attempt else []
    for stage in stages.values():
        starts, stops = stage.pop("starts"), stage.pop("stops")
        stage["started_at"] = min(starts) if starts else None
        stage["stopped_at"] = max(stops) if stops else None
        ran = starts and stops
        stage["seconds"] = (stage["stopped_at"] - stage["started_at"]) / 1000.0 if ran else None
    return stages


def build_report(
    descriptions: Sequence[dict[str, Any]], instance_price: float, record: dict[str, Any] | None = None
) -> Report:
    """The documented figures, plus per-stage durations, Spot interruptions and samples.

    Cost: each instance is billed from its first attempt's start to its last attempt's stop,
    summed over instances.
    """
    spans: dict[str, tuple[int, int]] = {}
    longest = 0.0
    retried = 0
    spot = 0
    failed = []
    for description in descriptions:
        attempts = description.get("attempts", [])
        retried += len(attempts) > 1
        longest = max(longest, sum(attempt_seconds(a) for a in attempts))
        spot += sum(1 for a in attempts if a.get("statusReason", "").startswith("Host EC2"))
        for attempt in attempts:
            instance = attempt.get("container", {}).get("containerInstanceArn")
            if not instance or "startedAt" not in attempt or "stoppedAt" not in attempt:
                continue
            start, stop = spans.get(instance, (attempt["startedAt"], attempt["stoppedAt"]))
            spans[instance] = (min(start, attempt["startedAt"]), max(stop, attempt["stoppedAt"]))
        if description["status"] != "SUCCEEDED":
            failed.append(
                {
                    "job_id": description["jobId"],
                    "name": description.get("jobName", ""),
                    "status": description["status"],
                    "reason": description.get("statusReason", "no status reason given"),
                }
            )
    report = Report(
        total=len(descriptions),
        succeeded=sum(d["status"] == "SUCCEEDED" for d in descriptions),
        retried=retried,
        instances=len(spans),
        longest_seconds=longest,
        instance_hours=sum((stop - start) / 3_600_000 for start, stop in spans.values()),
        instance_price=instance_price,
        failed=failed,
        spot_interruptions=spot,
    )
    if record is not None:
        by_id = {d["jobId"]: d for d in descriptions}
        report.stages = stage_durations(record, by_id)
        if record["kind"] == "ingest":
            ingest_jobs = [job for job in record["jobs"] if stage_kind(job["stage"]) == "ingest"]
            ok = {
                job["key"] for job in ingest_jobs if by_id.get(job.get("job_id") or "", {}).get("status") == "SUCCEEDED"
            }
            report.samples_succeeded = sum(len(job["samples"]) for job in ingest_jobs if job["key"] in ok)
            report.samples_failed = sum(len(job["samples"]) for job in ingest_jobs if job["key"] not in ok)
    return report


def format_report(report: Report) -> list[str]:
    lines = [
        f"Finished waiting on {report.total} jobs:",
        f"- {report.succeeded} / {report.total} jobs succeeded",
        f"- {report.retried} jobs had more than 1 attempt.",
        f"- {report.instances} instances used.",
        f"- Longest job took {report.longest_seconds:.3f} seconds (includes retries).",
        f"- Total cost estimate ${report.cost:.2f} ({report.instance_hours:.2f} hours @ "
        f"${report.instance_price:.4f} / hr)",
    ]
    if report.stages:
        lines.append(f"- {report.spot_interruptions} Spot interruptions (Host EC2 ...) survived or retried.")
        for stage, figures in report.stages.items():
            took = "did not run" if figures["seconds"] is None else f"took {format_duration(figures['seconds'])}"
            lines.append(f"- {stage_label(stage)}: {figures['succeeded']} / {figures['jobs']} jobs succeeded, {took}")
    if report.samples_succeeded is not None:
        lines.append(
            f"- Samples: {report.samples_succeeded} in jobs that succeeded, "
            f"{report.samples_failed} in jobs that did not."
        )
    for failure in report.failed:
        lines.append(f"FAILED job {failure['job_id']} ({failure['name']}): {failure['reason']}")
    if report.missing_exports:
        shown = ", ".join(report.missing_exports[:20])
        more = f" and {len(report.missing_exports) - 20} more" if len(report.missing_exports) > 20 else ""
        lines.append(
            f"MISSING {len(report.missing_exports)} of {report.exports_expected} exported files at "
            f"{report.export_dest}: {shown}{more}"
        )
    return lines


def report_json(report: Report, record: dict[str, Any], failures: list[dict[str, Any]]) -> dict[str, Any]:
    document = asdict(report)
    document.update(
        {
            "run_id": record["run_id"],
            "kind": record["kind"],
            "target": record["target"],
            "record": record.get("record"),
            "cost": round(report.cost, 4),
            "ok": report.ok,
            "failures": failures,
        }
    )
    return document


def missing_exports(s3: Any, dest: S3Uri, names: Sequence[str], output_format: str) -> list[str]:
    """Sample names whose exported file is not at ``dest`` (one listing, not one HEAD per file)."""
    prefix = dest.as_prefix()
    present = set(list_sizes(s3, prefix.bucket, prefix.key))
    suffix = EXPORT_SUFFIXES[output_format]
    return [name for name in names if f"{prefix.key}{name}{suffix}" not in present]


# -- Failure diagnosis --------------------------------------------------------------


def log_group_of(batch: Any, definition_arn: str, cache: dict[str, str]) -> str:
    """The job definition's awslogs group, else Batch's default group."""
    if definition_arn not in cache:
        group = DEFAULT_LOG_GROUP
        try:
            found = batch.describe_job_definitions(jobDefinitions=[definition_arn])["jobDefinitions"]
        except ClientError:
            found = []
        for definition in found:
            config = definition.get("containerProperties", {}).get("logConfiguration", {})
            if config.get("logDriver") == "awslogs":
                group = config.get("options", {}).get("awslogs-group", DEFAULT_LOG_GROUP)
        cache[definition_arn] = group
    return cache[definition_arn]


def tail_log(logs: Any, group: str, stream: str, lines: int) -> tuple[list[str], str | None]:
    """The last ``lines`` messages of a log stream, or why they cannot be read."""
    try:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream, limit=lines, startFromHead=False)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            return [], f"log stream {stream} not found in log group {group}"
        return [], f"cannot read log stream {stream} ({aws_message(error)})"
    return [event["message"].rstrip("\n") for event in events.get("events", [])][-lines:], None


def failure_signature(description: dict[str, Any]) -> tuple[Any, ...]:
    last = (description.get("attempts") or [{}])[-1]
    container = last.get("container", {})
    return (description.get("statusReason"), container.get("exitCode"), container.get("reason"))


def diagnose_failures(
    clients: Clients, descriptions: Sequence[dict[str, Any]], log_lines: int = DEFAULT_LOG_LINES
) -> list[dict[str, Any]]:
    """Failed jobs grouped by identical failure, with every attempt and the log tail of the first job."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for description in descriptions:
        if description["status"] == "FAILED":
            groups.setdefault(failure_signature(description), []).append(description)
    cache: dict[str, str] = {}
    diagnosed = []
    fetch_logs = log_lines > 0
    for (status_reason, exit_code, container_reason), jobs in groups.items():
        first = jobs[0]
        attempts = []
        for number, attempt in enumerate(first.get("attempts", []), start=1):
            container = attempt.get("container", {})
            stream = container.get("logStreamName")
            entry = {
                "attempt": number,
                "status_reason": attempt.get("statusReason"),
                "exit_code": container.get("exitCode"),
                "container_reason": container.get("reason"),
                "log_stream": stream,
                "log_group": None,
                "log": [],
                "log_error": None if stream else "no log stream: the attempt never reached RUNNING",
            }
            if stream and fetch_logs:
                entry["log_group"] = log_group_of(clients.batch, first.get("jobDefinition", ""), cache)
                entry["log"], entry["log_error"] = tail_log(clients.logs, entry["log_group"], stream, log_lines)
            attempts.append(entry)
        diagnosed.append(
            {
                "jobs": [{"job_id": j["jobId"], "name": j.get("jobName", "")} for j in jobs],
                "status_reason": status_reason,
                "exit_code": exit_code,
                "container_reason": container_reason,
                "attempts": attempts,
            }
        )
    return diagnosed


def format_failures(diagnosed: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for group in diagnosed:
        jobs = group["jobs"]
        names = ", ".join(job["name"] or job["job_id"] for job in jobs[:10]) + (" ..." if len(jobs) > 10 else "")
        head = f"{len(jobs)} jobs failed with the same error" if len(jobs) > 1 else "1 job failed"
        lines.append(f"{head}: {names}")
        lines.append(f"  status reason: {group['status_reason'] or 'none given'}")
        if not group["attempts"]:
            lines.append("  it never started (no attempt)")
        for attempt in group["attempts"]:
            lines.append(
                f"  attempt {attempt['attempt']} of {jobs[0]['name'] or jobs[0]['job_id']}: "
                f"exit code {attempt['exit_code']}, {attempt['status_reason'] or 'no status reason'}"
                + (f", container: {attempt['container_reason']}" if attempt["container_reason"] else "")
            )
            if attempt["log_stream"]:
                lines.append(f"    log: {attempt['log_group']} {attempt['log_stream']}")
            if attempt["log_error"]:
                lines.append(f"    ({attempt['log_error']})")
            lines.extend(f"    | {message}" for message in attempt["log"])
    return lines


# -- Watching a run ------------------------------------------------------------------


def record_location(record: dict[str, Any]) -> str:
    return record.get("record") or record["run_id"]


def interrupted_message(record: dict[str, Any]) -> str:
    where = record_location(record)
    return (
        f"Stopped waiting. The jobs of run {record['run_id']} keep running on AWS Batch.\n"
        f"  re-attach: python batch-runs.py wait {where}\n"
        f"  cancel:    python batch-runs.py cancel {where}"
    )


def finish_report(
    clients: Clients,
    record: dict[str, Any],
    latest: dict[str, dict[str, Any]],
    *,
    instance_price: float,
    log_lines: int = DEFAULT_LOG_LINES,
    as_json: bool = False,
) -> Report:
    """Report on a finished run (stdout, or stderr when the JSON document takes stdout)."""
    descriptions = [latest[i] for i in record_job_ids(record) if i in latest]
    report = build_report(descriptions, instance_price, record)
    if record["kind"] == "export":
        options = record["options"]
        names = [name for job in record["jobs"] for name in job["samples"]]
        dest = parse_s3_uri(record["target"], "destination", need_key=False)
        report.missing_exports = missing_exports(clients.s3, dest, names, options.get("output_format", "b"))
        report.exports_expected, report.export_dest = len(names), str(dest.as_prefix())
    failures = diagnose_failures(clients, descriptions, log_lines) if report.failed else []
    human = format_report(report) + format_failures(failures)
    for line in human:
        click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(report_json(report, record, failures), indent=1))
    return report


def watch_run(
    clients: Clients,
    record: dict[str, Any],
    *,
    instance_price: float,
    log_lines: int = DEFAULT_LOG_LINES,
    as_json: bool = False,
    interval: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
    tty: bool | None = None,
) -> int:
    """Wait for a run with live progress, then report; the exit status (0, 1, or 130 on Ctrl-C)."""
    tty = sys.stderr.isatty() if tty is None else tty
    progress = Progress(record, now=now, tty=tty)
    stuck = StuckJobs(now=now)
    names = {job["job_id"]: job["name"] for job in record["jobs"] if job.get("job_id")}
    ids = record_job_ids(record)
    click.echo(f"Waiting on {len(ids)} jobs of run {record['run_id']} to terminate...", err=True)

    def observe(latest: dict[str, dict[str, Any]]) -> None:
        progress.show(latest)
        for message in stuck.check(latest, names):
            click.echo(message, err=True)

    try:
        latest = wait_for_jobs(clients.batch, ids, sleep=sleep, interval=interval, observe=observe)
    except KeyboardInterrupt:
        click.echo("\n" + interrupted_message(record), err=True)
        return EXIT_INTERRUPTED
    progress.show(latest, final=True)
    report = finish_report(clients, record, latest, instance_price=instance_price, log_lines=log_lines, as_json=as_json)
    return 0 if report.ok else 1


def cancel_run(clients: Clients, record: dict[str, Any]) -> dict[str, list[str]]:
    """Cancel the run's jobs that have not started and terminate those that have; say which."""
    latest = describe_all(clients.batch, record_job_ids(record))
    reason = f"cancelled with batch-runs.py (run {record['run_id']})"
    outcome: dict[str, list[str]] = {"cancelled": [], "terminated": [], "finished": [], "unknown": []}
    for job_id in record_job_ids(record):
        status = latest.get(job_id, {}).get("status")
        if status in ("SUBMITTED", "PENDING", "RUNNABLE"):
            clients.batch.cancel_job(jobId=job_id, reason=reason)
            outcome["cancelled"].append(job_id)
        elif status in ("STARTING", "RUNNING"):
            clients.batch.terminate_job(jobId=job_id, reason=reason)
            outcome["terminated"].append(job_id)
        elif status in TERMINAL_STATUSES:
            outcome["finished"].append(job_id)
        else:
            outcome["unknown"].append(job_id)
    return outcome
