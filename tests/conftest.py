"""Shared test helpers: the emulated AWS (in process and as a loopback server), one scripted Batch,
one fake clock, the options and run records the unit tests build, the scripts and the image's entrypoint
as subprocesses, the stand-in tiledbvcf, and the real one."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from click.testing import CliRunner
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "demo"))

import local_aws  # noqa: E402
from stub_executor import START  # noqa: E402
from tiledbvcf_batch.aws import Clients  # noqa: E402
from tiledbvcf_batch.dataset import DatasetView  # noqa: E402
from tiledbvcf_batch.executors.batch import SCRATCH_PATH, BatchExecutor  # noqa: E402
from tiledbvcf_batch.inputs import Sample  # noqa: E402
from tiledbvcf_batch.options import ExportOptions, IngestOptions  # noqa: E402
from tiledbvcf_batch.plan import Plan, ingest_batches, plan_ingest  # noqa: E402
from tiledbvcf_batch.record import (  # noqa: E402
    RecordedJob,
    RunRecord,
    run_prefix_for,
)
from tiledbvcf_batch.storage import LocalPath, Location, S3Uri  # noqa: E402

DATASET = "s3://my-bucketname/test-vcf-dataset"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
T0 = START  # every fake clock starts at 2027-01-15T08:00:00Z
Options = TypeVar("Options", IngestOptions, ExportOptions)


def load_script(filename: str) -> Any:
    """The hyphenated scripts cannot be imported by name."""
    spec = importlib.util.spec_from_file_location(filename.replace("-", "_").removesuffix(".py"), ROOT / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


INGEST = load_script("batch-ingest.py")
EXPORT = load_script("batch-export.py")


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach a real AWS endpoint, whatever the developer's environment holds."""
    for name, value in local_aws.FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "MOTO_SIMPLE_BATCH_FAIL_AFTER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


# What the in-process tests' datasets hold, by URI: TileDB-Py cannot reach the in-process emulator (moto
# patches botocore, not TileDB's own S3 client), and must never reach AWS. A dataset not listed holds no
# sample; one listed by its names has headers with the contigs of FAKE_CONTIGS; a DatasetView is the dataset
# as given. The subprocess tests read real datasets, written by the real tiledbvcf.
DATASETS: dict[str, frozenset[str] | str | DatasetView] = {}  # a str: the problem that makes it unreadable
FAKE_CONTIGS = frozenset({*(f"chr{n}" for n in range(1, 23)), "chrX", "chrY"})


def fake_reader(dataset: Location, *, contigs: bool = False) -> DatasetView:
    uri = str(dataset)
    held = DATASETS.get(uri, frozenset())
    if isinstance(held, str):
        return DatasetView(uri, None, held)
    view = held if isinstance(held, DatasetView) else DatasetView(uri, held, contigs=FAKE_CONTIGS if held else None)
    return view if contigs else replace(view, contigs=None)  # as TileDB-Py reads it: contigs only when asked


@pytest.fixture(autouse=True)
def fake_datasets(monkeypatch: pytest.MonkeyPatch) -> dict[str, frozenset[str] | str | DatasetView]:
    import common
    import tiledbvcf_batch.dataset
    import tiledbvcf_batch.health

    DATASETS.clear()
    monkeypatch.setattr(common.Session, "dataset_reader", lambda self, config: fake_reader)
    monkeypatch.setattr(tiledbvcf_batch.dataset, "reader_for", lambda *args, **kwargs: fake_reader)
    # The health is read with TileDB-Py too: in process it would hold the GIL the emulated S3 needs; shown as unknown.
    monkeypatch.setattr(tiledbvcf_batch.health, "reader_for", lambda *args, **kwargs: lambda dataset: None)
    return DATASETS


@dataclass
class Aws:
    batch: Any
    s3: Any
    logs: Any
    submitted: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    job_queue: str = local_aws.JOB_QUEUE
    job_definition: str = local_aws.JOB_DEFINITION

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        response = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [item["Key"] for item in response.get("Contents", [])]

    def text(self, bucket: str, key: str) -> str:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def describe(self, job_ids: list[str]) -> list[dict[str, Any]]:
        return self.batch.describe_jobs(jobs=job_ids)["jobs"]

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        boto3.DEFAULT_SESSION.events.register(event, handler)

    def fail_call(self, operation: str, code: str, after: int = 0, times: int = 10**9) -> None:
        """Make the scripts' ``operation`` calls fail with ``code`` after ``after`` successful ones."""
        from botocore.exceptions import ClientError

        seen = {"n": 0, "failed": 0}

        def handler(**kwargs: Any) -> None:
            seen["n"] += 1
            if seen["n"] > after and seen["failed"] < times:
                seen["failed"] += 1
                raise ClientError({"Error": {"Code": code, "Message": f"injected {code}"}}, operation)

        self.on(f"before-parameter-build.{operation}", handler)


@pytest.fixture
def aws() -> Any:
    with mock_aws(config={"batch": {"use_docker": False}}):
        local_aws.create_buckets()
        local_aws.create_batch_environment()
        # The scripts' clients come from boto3's default session: record what they send.
        boto3.setup_default_session()
        state = Aws(
            batch=boto3.client("batch", region_name="us-east-1"),
            s3=boto3.client("s3", region_name="us-east-1"),
            logs=boto3.client("logs", region_name="us-east-1"),
        )
        state.on(
            "before-parameter-build.batch.SubmitJob",
            lambda params, **_: state.submitted.append(copy.deepcopy(params)),
        )
        state.on(
            "before-parameter-build.*.*",
            lambda params, model, **_: state.calls.append(
                (model.name, {k: "<body>" if k == "Body" else copy.deepcopy(v) for k, v in params.items()})
            ),
        )
        yield state


class Raw:
    """The body of a made-up HTTP answer, streamed as botocore streams a real one."""

    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def http_answer(request: Any, status: int, body: bytes) -> AWSResponse:
    """What a before-send hook returns to answer ``request`` itself, as the endpoint would have (throttling, 403)."""
    return AWSResponse(request.url, status, {}, Raw(body))


def text_file(directory: Path, text: str, name: str = "bad.txt") -> str:
    """The path of a file of ``text`` in ``directory`` (a samples or names file a test gets wrong on purpose)."""
    path = directory / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def samples_file(tmp_path: Path) -> Callable[[int], Path]:
    """Write a samples file of ``n`` sample URIs (their objects exist in the emulated S3)."""

    def make(n: int, name: str = "samples.txt") -> Path:
        uris = local_aws.put_samples(n)
        path = tmp_path / name
        path.write_text("".join(f"{uri}\n" for uri in uris))
        return path

    return make


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def invoke(command: Any, args: list[str]) -> Result:
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def run_ingest() -> Callable[..., Result]:
    def run(*args: str, defaults: bool = True) -> Result:
        base = ["--job-queue", local_aws.JOB_QUEUE, "--job-definition", local_aws.JOB_DEFINITION] if defaults else []
        return invoke(INGEST.main, [*base, *args])

    return run


@pytest.fixture
def run_export() -> Callable[..., Result]:
    def run(*args: str, defaults: bool = True) -> Result:
        base = ["--job-queue", local_aws.JOB_QUEUE, "--job-definition", local_aws.JOB_DEFINITION] if defaults else []
        return invoke(EXPORT.main, [*base, *args])

    return run


class ScriptedBatch:
    """A Batch whose describe_jobs replays one status map per poll round.

    A round ends when a job is described a second time. ``rounds[i]`` maps job ids to the
    fields of their description in round i (the last round repeats); ``throttle_rounds``
    answer with TooManyRequestsException. Every call's ids are kept in ``calls``.
    """

    def __init__(self, rounds: list[dict[str, dict[str, Any]]], throttle_rounds: frozenset[int] = frozenset()):
        self.rounds = rounds
        self.throttle_rounds = throttle_rounds
        self.round = 0
        self.seen: set[str] = set()
        self.calls: list[list[str]] = []

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if set(jobs) & self.seen:
            self.round += 1
            self.seen = set()
        self.seen |= set(jobs)
        self.calls.append(list(jobs))
        if self.round in self.throttle_rounds:
            raise ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "slow"}}, "DescribeJobs")
        state = self.rounds[min(self.round, len(self.rounds) - 1)]
        return {"jobs": [{"jobId": j, "jobName": j, "attempts": [], **state[j]} for j in jobs]}

    def describe_job_definitions(self, **_: Any) -> dict[str, Any]:
        return {"jobDefinitions": []}

    def executor(self) -> BatchExecutor:
        return BatchExecutor(Clients("us-east-1", self, None, None), "q", "jd")


class FakeClock:
    """Time that moves only when slept: ``now`` and ``sleep`` to inject; ``slept`` records each sleep."""

    def __init__(self, start: float = T0):
        self.time = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# What a unit test builds an options object from: every required field, the same in every test. Build them with
# ``options``, never by hand: a change of the option dataclasses is then made here once.
REQUIRED_OPTIONS: dict[type, dict[str, Any]] = {
    IngestOptions: {
        "dataset_uri": S3Uri("my-bucketname", "test-vcf-dataset"),
        "samples": "samples.txt",
        "metadata_s3": S3Uri("bucket2-name"),
    },
    ExportOptions: {
        "dataset_uri": S3Uri("my-bucketname", "test-vcf-dataset"),
        "dest_s3": S3Uri("my-bucketname", "bcf-exports/"),
        "samples": S3Uri("my-bucketname", "names.txt"),
        "bed": S3Uri("my-bucketname", "bedfiles/sorted1000000.bed"),
        "metadata_s3": S3Uri("bucket2-name"),
    },
}


def options(kind: type[Options], **changes: Any) -> Options:
    """IngestOptions or ExportOptions of the README's examples, with ``changes``: as the command line completes
    them (the scratch directory the Batch executor picks where --scratch-path is not given)."""
    return kind(**{**REQUIRED_OPTIONS[kind], "scratch_path": SCRATCH_PATH, **changes})


PLAN_PREFIX = S3Uri("meta", "tiledbvcf-batch/runs/ingest-r1/")


def ingest_plan(
    samples: int, num_jobs: int, incremental: int = 1, create: bool = True, consolidate: bool = False
) -> Plan:
    """An ingestion plan "ingest-r1" of ``samples`` samples (s3://in/s000000.bcf, ...) into s3://b/ds, recorded
    under PLAN_PREFIX."""
    opts = options(IngestOptions, dataset_uri=S3Uri("b", "ds"), metadata_s3=S3Uri("meta"), num_jobs=num_jobs,
                   incremental=incremental, create_dataset=create, consolidate=consolidate)  # fmt: skip
    batches, _ = ingest_batches([Sample(f"s3://in/s{i:06d}.bcf") for i in range(samples)], opts, PLAN_PREFIX)
    return plan_ingest(opts, batches, "ingest-r1", PLAN_PREFIX)


def local_ingest_plan(root: Path, samples: int = 3, **changes: Any) -> Plan:
    """An ingestion plan "ingest-r1" of ``samples`` samples, one per job, dataset and records under ``root``."""
    opts = options(IngestOptions, dataset_uri=LocalPath(str(root / "ds")), metadata_s3=LocalPath(str(root / "meta")),
                   num_jobs=samples, consolidate=False, **changes)  # fmt: skip
    prefix = run_prefix_for(opts.metadata_s3, "ingest-r1")
    batches, _ = ingest_batches([Sample(f"s3://in/s{i}.bcf") for i in range(samples)], opts, prefix)
    return plan_ingest(opts, batches, "ingest-r1", prefix)


def recorded_run(stages: dict[str, int], kind: str = "ingest") -> RunRecord:
    """A run on AWS Batch as its record holds it: ``stages`` maps each stage to its number of jobs, all submitted."""
    jobs = [
        RecordedJob(
            f"{stage}-{i}", stage, f"tiledbvcf-{stage}-{i}", f"{stage}/{i}", samples=[f"s3://b/{stage}-{i}.bcf"]
        )
        for stage, count in stages.items()
        for i in range(1, count + 1)
    ]
    return RunRecord(
        run_id="ingest-r1",
        kind=kind,
        created_at="2027-01-15T08:00:00+00:00",
        region="us-east-1",
        target=DATASET,
        record="s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/run.json",
        options={},
        jobs=jobs,
        executor={"kind": "batch", "job_queue": "q", "job_definition": "jd"},
    )


# -- Subprocesses: the scripts as a user runs them, the image's entrypoint as AWS Batch runs it -----------------

ENTRYPOINT = [sys.executable, str(ROOT / "image" / "entrypoint.py")]


def run_script(
    script: str, *args: str, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT ARGS`` (a path under the checkout) in a process of its own, with this environment by default."""
    return subprocess.run([sys.executable, str(ROOT / script), *args], env=dict(os.environ) if env is None else env,
                          capture_output=True, text=True, timeout=300, **kwargs)  # fmt: skip


def image_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), **extra)  # the package sits beside the entrypoint in the image


def run_entrypoint(args: Sequence[str], **env: str) -> subprocess.CompletedProcess:
    """The image's entrypoint on a job's ``args``, with ``env`` added to this environment."""
    return subprocess.run([*ENTRYPOINT, *args], env=image_env(**env), capture_output=True, text=True, timeout=300)


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A moto server on 127.0.0.1 with the spec's buckets and Batch set-up; subprocesses reach it."""
    server, endpoint = local_aws.start_server()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    try:
        local_aws.create_buckets()
        local_aws.create_batch_environment()
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def server(moto_server: str, samples_file: Callable[..., Path]) -> str:
    """The moto server, and samples.txt in the test's directory naming 4 samples on it (the scripts run there)."""
    samples_file(4)
    return moto_server


def set_job_status(job_ids: list[str], status: str) -> None:
    """Move jobs of the moto server (same process) to ``status``: a subprocess cannot use a botocore hook."""
    from moto.batch.models import batch_backends

    jobs = batch_backends["123456789012"]["us-east-1"]._jobs
    for job_id in job_ids:
        jobs[job_id].status = status
        jobs[job_id].job_stopped = status in ("SUCCEEDED", "FAILED")


def stop_requests(job_ids: list[str]) -> list[str | None]:
    """The reason each job of the moto server was asked to stop (cancel or terminate), None if not asked."""
    from moto.batch.models import batch_backends

    jobs = batch_backends["123456789012"]["us-east-1"]._jobs
    return [jobs[job_id].job_stopped_reason if jobs[job_id].stop else None for job_id in job_ids]


# -- Helpers of the ingestion tests -------------------------------------------------------


def base(samples: Any) -> list[str]:
    return ["--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name"]


def calls_of(aws, operation: str) -> list[dict]:
    return [params for name, params in aws.calls if name == operation]


def record_of(aws, stderr: str) -> dict:
    uri = stderr.split("recorded at ")[1].split()[0]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(aws.text(bucket, key))


def consume_manifests(aws, record: dict, which: list[int]) -> None:
    """What store --remove-sample-file does after a successful ingestion."""
    stores = [job for job in record["jobs"] if job["stage"].startswith("ingest")]
    for i in which:
        bucket, _, key = stores[i]["manifest"].removeprefix("s3://").partition("/")
        aws.s3.delete_object(Bucket=bucket, Key=key)


def manifest_of(job: dict) -> str:
    command = job["containerOverrides"]["command"]
    return command[command.index("-f") + 1]


def make_dataset(aws, key: str = "test-vcf-dataset", samples: tuple[str, ...] = ()) -> None:
    """What a creation job leaves (moto's Batch runs none), holding ``samples`` as the dataset reader sees it."""
    aws.s3.put_object(Bucket="my-bucketname", Key=f"{key}/__tiledb_group.tdb", Body=b"")
    DATASETS[f"s3://my-bucketname/{key}"] = frozenset(samples)


# -- The stand-in tiledbvcf (tests/tiledbvcf_standin.py), and the real one ------------------------------------

STANDIN = ROOT / "tests" / "tiledbvcf_standin.py"
UNPACKED_TILEDBVCF = ".tools/tiledbvcf-0.40.3/bin/tiledbvcf"  # where demo/run-local.sh unpacks it in a checkout


def find_tiledbvcf(environ: Mapping[str, str], root: Path) -> str:
    """The real tiledbvcf, found as demo/run-local.sh finds it: TILEDBVCF, else on PATH, else the one it unpacked
    into the checkout's .tools/; "" if none. So the README's second command runs what its first one ran."""
    unpacked = root / UNPACKED_TILEDBVCF
    return (
        environ.get("TILEDBVCF")
        or shutil.which("tiledbvcf", path=environ.get("PATH", ""))
        or (str(unpacked) if os.access(unpacked, os.X_OK) else "")
    )


TILEDBVCF = find_tiledbvcf(os.environ, ROOT)
if TILEDBVCF:  # the scripts, the demo and the entrypoint the tests run as subprocesses find it the same way
    os.environ["TILEDBVCF"] = TILEDBVCF


@pytest.fixture(autouse=True, scope="session")
def bcftools(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Export jobs index and count with bcftools (CI installs Debian's); without one, the bcftools inside pysam."""
    if os.environ.get("BCFTOOLS") or shutil.which("bcftools"):
        return
    program = tmp_path_factory.mktemp("bcftools") / "bcftools"
    program.write_text(f"#!{sys.executable}\nimport runpy\nrunpy.run_path({str(ROOT / 'demo' / 'bcftools-pysam')!r}, "
                       "run_name='__main__')\n")  # fmt: skip
    program.chmod(0o755)
    os.environ["BCFTOOLS"] = str(program)


needs_tiledbvcf = pytest.mark.skipif(
    not TILEDBVCF,
    reason="no tiledbvcf (TILEDBVCF, PATH, or .tools/ as bash demo/run-local.sh unpacks it): these tests run the real "
    "one (.ci/run unpacks and sets it)",
)
BED = "chr1\t0\t2000000\nchr2\t0\t2000000\nchr3\t0\t2000000\n"  # every record of a demo cohort


@dataclass(frozen=True)
class Standin:
    program: Path
    log: Path

    def calls(self) -> list[list[str]]:
        """The arguments of each call so far, in order."""
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


def install_standin(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Standin:
    """The stand-in as ``directory``/tiledbvcf, named by TILEDBVCF (not the real tiledbvcf it may name: these tests
    are of what the real one cannot be made to do), its calls logged to ``directory``/calls.log."""
    directory.mkdir(exist_ok=True)
    program = directory / "tiledbvcf"
    program.write_text(STANDIN.read_text().replace("/usr/bin/env python3", sys.executable, 1))
    program.chmod(0o755)
    monkeypatch.setenv("TILEDBVCF", str(program))
    monkeypatch.setenv("STANDIN_LOG", str(directory / "calls.log"))
    return Standin(program, directory / "calls.log")


def tiledbvcf(*args: str) -> str:
    """The real tiledbvcf's output; it must succeed."""
    return subprocess.run([TILEDBVCF, *args], capture_output=True, text=True, check=True, timeout=120).stdout


def listed(dataset: str | Path) -> list[str]:
    return tiledbvcf("list", "-u", str(dataset)).split()


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a state root of its own for the local executor's job states and logs."""
    monkeypatch.setenv("TILEDBVCF_BATCH_STATE", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path
