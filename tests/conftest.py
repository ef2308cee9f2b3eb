"""Fixtures: an in-process emulated AWS (moto) with the spec's Batch set-up, and the scripts."""

from __future__ import annotations

import copy
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "demo"))

import local_aws  # noqa: E402


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
