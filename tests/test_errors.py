"""Never a traceback: AWS set-up problems, damaged run records and bad files are one line each."""

from __future__ import annotations

import json
import socket
import time

import boto3
import pytest
from click.testing import CliRunner

from conftest import (
    DATASET,
    EXPORT,
    INGEST,
    base,
    http_answer,
    invoke,
    load_script,
    make_dataset,
    record_of,
    run_script,
)

RUNS = load_script("batch-runs.py")


def one_line(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ") and text in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# -- AWS cannot be used: exit status 4, not the "jobs failed" status ------------------------------------


@pytest.fixture
def no_aws_configuration(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # earlier tests' session holds their credentials
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # should a request go out after all: nowhere
    (tmp_path / "samples.txt").write_text("s3://bucket-name/a.bcf\n")
    return ["--dataset-uri", DATASET, "--samples", str(tmp_path / "samples.txt"), "--metadata-s3", "bucket2-name",
            "--job-queue", "q", "--job-definition", "d"]  # fmt: skip


def test_missing_credentials(no_aws_configuration):
    one_line(invoke(INGEST.main, no_aws_configuration), 4, "no AWS credentials found: run aws configure")


def test_unknown_profile(no_aws_configuration, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "nope")
    one_line(invoke(INGEST.main, no_aws_configuration), 4, "(nope) could not be found: check AWS_PROFILE")


def test_expired_credentials_end_everything_at_once(aws, samples_file, run_ingest):
    body = b'{"__type": "ExpiredTokenException", "message": "The security token included in the request is expired"}'
    aws.on("before-send.batch.DescribeJobQueues", lambda request, **_: http_answer(request, 403, body))
    one_line(run_ingest(*base(samples_file(2))), 4, "AWS refused your credentials (ExpiredTokenException")
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_malformed_region_is_bad_input(no_aws_configuration):
    one_line(invoke(INGEST.main, [*no_aws_configuration, "--region", "us east 1"]), 2, "is not an AWS region name")


def test_an_unreachable_endpoint_is_said_at_once(tmp_path, monkeypatch):
    """botocore retries a refused connection 10 times (20 s of silence): the first call fails at once."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    (tmp_path / "samples.txt").write_text("s3://bucket-name/a.bcf\n")
    started = time.monotonic()
    result = run_script("batch-ingest.py", "--dataset-uri", DATASET, "--samples", str(tmp_path / "samples.txt"),
                        "--metadata-s3", "bucket2-name", "--job-queue", "q", "--job-definition", "d")  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith(
        f'Error: cannot reach AWS (Could not connect to the endpoint URL: "http://127.0.0.1:{port}/'
    )
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert time.monotonic() - started < 10  # not 18-25 s of retries


RUN = "s3://bucket2-name/tiledbvcf-batch/runs/ingest-x/run.json"


@pytest.mark.parametrize(
    "args", [["status", RUN], ["logs", RUN], ["cancel", RUN], ["wait", RUN], ["list", "--metadata-s3", "bucket2-name"]]
)
def test_a_malformed_region_is_never_a_damaged_record(no_aws_configuration, monkeypatch, args):
    """botocore's region error is a ValueError: it must not read as a damaged record."""
    one_line(invoke(RUNS.main, [*args, "--region", "us east 1"]), 2, "--region 'us east 1' is not an AWS region name")
    monkeypatch.setenv("AWS_REGION", "us east 1")
    one_line(invoke(RUNS.main, args), 4, "AWS_REGION 'us east 1' is not an AWS region name: set it as e.g. us-east-1")
    one_line(invoke(INGEST.main, no_aws_configuration), 4, "AWS_REGION 'us east 1' is not an AWS region name")


# -- Damaged run records: named; they stop nothing else -----------------------------------------------------


def damage(aws, uri: str) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    aws.s3.put_object(Bucket=bucket, Key=key, Body=b'{"run_id": "ingest-x", "jobs": [')


def test_a_damaged_record_is_named_everywhere_and_blocks_no_new_ingestion(aws, samples_file, run_ingest):
    named_everywhere(aws, samples_file, run_ingest, damage, "JSONDecodeError")


def edit(change):
    """A damage that leaves the record JSON, with a value this version cannot use."""

    def damaging(aws, uri: str) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        document = json.loads(aws.text(bucket, key))
        change(document)
        aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())

    return damaging


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r.update(executor={"kind": "K 8s"}), 'executor kind is "K 8s", which this version does not know'),
        (lambda r: r.update(created_at="yesterday"), "created_at is 'yesterday', not an ISO 8601 time"),
        (lambda r: r["jobs"][1].update(stage="ingest-one"), "job 2 stage is 'ingest-one', not a stage of a run"),
        (lambda r: r["jobs"][0].update(job_id=42), "job 1 job_id is 42, not a text"),
        (lambda r: r.update(jobs={"create": "j-1"}), 'jobs is {"create": "j-1"}, not a list'),
        (lambda r: r["jobs"].append("j-9"), 'job 7 is "j-9", not a JSON object'),  # after 2 jobs, 4 consolidation
        (
            lambda r: r["jobs"][1].update(depends_on=["gone"]),
            "job ingest-1-1 depends on 'gone', which is not a job of the run",
        ),
        (lambda r: r["jobs"][1].update(manifest="s3://"), "job 2 manifest 's3://' has no valid bucket name"),
        (lambda r: r.update(region="us east 1"), "region is 'us east 1', not an AWS region name"),
        (lambda r: r["options"].update(instance_price="cheap"), 'options instance_price is "cheap", not a number'),
        (lambda r: r.pop("target"), "no 'target' in it"),
        (lambda r: r.update(run_id=[]), "run_id is [], not a text"),
    ],
)
def test_a_record_with_bad_values_is_named_everywhere_too(aws, samples_file, run_ingest, change, reason):
    named_everywhere(aws, samples_file, run_ingest, edit(change), reason)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda r: r["options"].update(output_format="q"), "output format 'q' is not one this version knows"),
        (lambda r: r.update(executor={"kind": "k8s"}), "executor kind 'k8s' is not one this version knows (batch"),
        (lambda r: r["jobs"][1].update(stage="annotate-1"), "job 2 stage 'annotate-1' is not one this version knows"),
        (lambda r: r.update(kind="merge"), "run kind 'merge' is not one this version knows (ingest, export)"),
    ],
)
def test_a_record_of_a_newer_version_says_upgrade_everywhere(aws, samples_file, run_ingest, change, reason):
    """A value a newer version may write: one line that names the record and says to upgrade, never a traceback."""
    named_everywhere(aws, samples_file, run_ingest, edit(change), reason, newer=True)


def named_everywhere(aws, samples_file, run_ingest, damaging, reason: str, newer: bool = False) -> None:
    """A damaged record: --resume, status, logs, cancel, wait name it; a new ingestion and list go on."""
    says, state = ("was written by a newer version of tiledbvcf-batch", "NEWER VERSION") if newer else (
        "is damaged", "DAMAGED")  # fmt: skip
    samples = samples_file(2)
    first = run_ingest(*base(samples))
    record = record_of(aws, first.stderr)["record"]
    damaging(aws, record)
    resumed = run_ingest(*base(samples), "--resume", record.split("/")[-2])
    one_line(resumed, 2, f"run record {record} {says} ({reason}")

    make_dataset(aws)
    again = run_ingest(*base(samples))
    assert again.exit_code == 0, again.stderr
    assert f"WARNING: run record {record} {says} ({reason}" in again.stderr
    runner = CliRunner()
    listed = runner.invoke(RUNS.main, ["list", "--metadata-s3", "bucket2-name"])
    assert listed.exit_code == 0 and len(listed.stdout.splitlines()) == 2, listed.output
    damaged, fine = sorted(listed.stdout.splitlines(), key=lambda line: state not in line)
    assert f"{state} ({reason}" in damaged and damaged.endswith(record)
    assert "  5 jobs  " in fine  # 1 ingestion, 4 consolidation
    for command in ("status", "logs", "cancel", "wait"):
        one_line(invoke(RUNS.main, [command, record]), 2, f"run record {record} {says} ({reason}")
        if newer:
            assert "upgrade this checkout (git pull" in invoke(RUNS.main, [command, record]).stderr


# -- Accepted, though it must fail (the values the README says are refused: test_inputs.py) ------------------


def test_empty_sample_and_index_files(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.s3.put_object(Bucket="bucket-name", Key="samples/1.bcf", Body=b"")
    aws.s3.put_object(Bucket="bucket-name", Key="samples/2.bcf.csi", Body=b"")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: sample s3://bucket-name/samples/1.bcf is empty (0 bytes): upload it again",
        "Error: the index of sample s3://bucket-name/samples/2.bcf is empty (0 bytes): index it again (bcftools index)",
    ]


@pytest.fixture
def export_args(aws):
    aws.s3.put_object(Bucket="my-bucketname", Key="bedfiles/r.bed", Body=b"chr1\t0\t100\n")
    return ["--array", DATASET, "--dest-s3", "s3://my-bucketname/out/", "--samples", "s3://my-bucketname/n.txt",
            "--bed", "s3://my-bucketname/bedfiles/r.bed", "--job-queue", aws.job_queue,
            "--job-definition", aws.job_definition]  # fmt: skip


@pytest.mark.parametrize(
    "body, message",
    [
        ("\ufeffS1\nS2\n".encode(), "s3://my-bucketname/n.txt starts with a byte-order mark (BOM)"),
        (b"S1\n\xff\xfeS2\n", "s3://my-bucketname/n.txt is not a UTF-8 text file of sample names"),
    ],
)
def test_export_names_files_tiledbvcf_would_reject(aws, export_args, body, message):
    make_dataset(aws)
    aws.s3.put_object(Bucket="my-bucketname", Key="n.txt", Body=body)
    one_line(invoke(EXPORT.main, export_args), 2, message)


def test_export_of_a_dataset_that_does_not_exist(aws, export_args):
    aws.s3.put_object(Bucket="my-bucketname", Key="n.txt", Body=b"S1\n")
    one_line(invoke(EXPORT.main, export_args), 2, f"--array {DATASET} does not exist")
    assert aws.submitted == [] and json.dumps(aws.keys("my-bucketname")).count("tiledbvcf-batch") == 0


def test_list_last_must_be_positive(aws):
    result = CliRunner().invoke(RUNS.main, ["list", "--metadata-s3", "bucket2-name", "--last", "-1"])
    assert result.exit_code == 2 and result.stderr == "Error: --last is -1: it must be at least 1\n"


@pytest.mark.parametrize("command", ["status", "wait"])
def test_a_negative_instance_price_is_refused_by_batch_runs_too(command):
    one_line(invoke(RUNS.main, [command, RUN, "--instance-price", "-0.5"]), 2, "--instance-price is -0.5: it must be")
