"""batch-ingest.py against an in-process emulated AWS: payloads, manifests, lines, exit codes."""

from __future__ import annotations

import json
import re

import pytest

from conftest import DATASET, UUID, base, record_of, text_file
from tiledbvcf_batch.executors.batch import MAX_DEPENDS_ON
from tiledbvcf_batch.inputs import parse_dataset_uri
from tiledbvcf_batch.record import RunRecord, dataset_index
from tiledbvcf_batch.storage import S3Uri

RETRY_ONCE = {
    "attempts": 3,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}
INGEST_RESOURCES = [{"type": "VCPU", "value": "16"}, {"type": "MEMORY", "value": "61440"}]
CONSOLIDATION = [("consolidate", "fragment_meta"), ("consolidate", "commits"), ("vacuum", "fragment_meta"),
                 ("vacuum", "commits")]  # fmt: skip


def ids_of(line: str, prefix: str) -> list[str]:
    assert line.startswith(prefix), line
    ids = line[len(prefix) :].split()
    assert all(re.fullmatch(UUID, i) for i in ids), line
    return ids


def manifest_key(command: list[str]) -> tuple[str, str]:
    uri = command[command.index("-f") + 1]
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def consolidation_ids(stderr: str, batch: int) -> list[str]:
    """The ids of a batch's consolidation jobs, from their Submitted line: on stderr, not in the spec."""
    (line,) = [line for line in stderr.splitlines() if line.startswith(f"Submitted consolidation job(s) after "
                                                                       f"ingestion batch {batch}: ")]  # fmt: skip
    return ids_of(line, line.split(": ")[0] + ": ")


def test_spec_example_submits_creation_then_ingestion_jobs(aws, samples_file, run_ingest):
    samples = samples_file(25)
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name", "--num-jobs", "10"
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.lines) == 2  # the documented lines; consolidation is ours, its line goes to stderr
    (create_id,) = ids_of(result.lines[0], "Submitted array creation job ")
    ingest_ids = ids_of(result.lines[1], "Submitted ingestion job(s) ")
    assert len(ingest_ids) == 10
    consolidate_ids = consolidation_ids(result.stderr, 1)

    create, *stores = aws.submitted[:11]
    assert create == {
        "jobName": "tiledbvcf-create",
        "jobQueue": "tiledbvcf-job-queue",
        "jobDefinition": "tiledbvcf-24h",
        "containerOverrides": {
            "command": ["create", "-u", DATASET],
            "resourceRequirements": [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}],
        },
        "retryStrategy": RETRY_ONCE,
        "tags": {"tiledbvcf-batch-run": create["tags"]["tiledbvcf-batch-run"], "tiledbvcf-batch-stage": "create"},
    }
    run_id = create["tags"]["tiledbvcf-batch-run"]
    assert re.fullmatch(r"ingest-\d{8}T\d{6}Z-[0-9a-f]{6}", run_id)
    prefix = f"tiledbvcf-batch/runs/{run_id}/"
    ingested = []
    for j, store in enumerate(stores, start=1):
        manifest = f"s3://bucket2-name/{prefix}ingest-b001-j{j:04d}.txt"
        assert store["containerOverrides"] == {
            "command": [
                "store", "-u", DATASET, "-d", "/data", "-s", "1024000", "-t", "16",
                "-f", manifest, "--remove-sample-file", "-m", "53760", "--resume",
            ],
            "resourceRequirements": INGEST_RESOURCES,
        }  # fmt: skip
        assert store["dependsOn"] == [{"jobId": create_id}]
        assert store["retryStrategy"] == RETRY_ONCE
        assert store["jobName"] == f"tiledbvcf-ingest-b1-j{j}"
        body = aws.text(*manifest_key(store["containerOverrides"]["command"]))
        ingested.extend(body.splitlines())
        # 25 samples over 10 jobs: five jobs of 3, five of 2, larger first.
        assert len(body.splitlines()) == (3 if j <= 5 else 2)
    assert ingested == samples.read_text().splitlines()

    # What Batch holds agrees with what was sent.
    described = {d["jobId"]: d for d in aws.describe([create_id, *ingest_ids])}
    assert described[create_id]["container"]["command"] == ["create", "-u", DATASET]
    for job_id, store in zip(ingest_ids, stores, strict=True):
        assert described[job_id]["dependsOn"] == [{"jobId": create_id}]
        assert described[job_id]["container"]["command"] == store["containerOverrides"]["command"]
        assert described[job_id]["jobQueue"].endswith(":job-queue/tiledbvcf-job-queue")

    # Then the consolidation, one tiledbvcf utils call per job, in a row after every ingestion job.
    consolidations = aws.submitted[11:]
    after = [{"jobId": job_id} for job_id in ingest_ids]
    for (action, what), job, job_id in zip(CONSOLIDATION, consolidations, consolidate_ids, strict=True):
        assert job == {
            "jobName": f"tiledbvcf-{action}-{what.replace('_', '-')}-b1",
            "jobQueue": "tiledbvcf-job-queue",
            "jobDefinition": "tiledbvcf-24h",
            "containerOverrides": {
                "command": [
                    "utils",
                    action,
                    what,
                    "-u",
                    DATASET,
                    "--tiledb-config",
                    "sm.compute_concurrency_level=16,sm.io_concurrency_level=32",
                ],  # the jobs' 16 vCPUs
                "resourceRequirements": INGEST_RESOURCES,
            },
            "retryStrategy": RETRY_ONCE,
            "tags": {"tiledbvcf-batch-run": run_id, "tiledbvcf-batch-stage": "consolidate-1"},
            "dependsOn": after,
        }
        after = [{"jobId": job_id}]


def test_manifests_and_run_record_are_encrypted_and_complete(aws, samples_file, run_ingest):
    samples = samples_file(4)
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "s3://bucket2-name/md/x",
        "--no-consolidate",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "consolidat" not in result.stderr
    keys = aws.keys("bucket2-name")
    run_id = aws.submitted[0]["tags"]["tiledbvcf-batch-run"]
    marker = f"{dataset_index(S3Uri('bucket2-name', 'md/x/'), parse_dataset_uri(DATASET)).key}{run_id}.json"
    assert keys == [
        marker,
        f"md/x/tiledbvcf-batch/runs/{run_id}/ingest-b001-j0001.txt",
        f"md/x/tiledbvcf-batch/runs/{run_id}/run.json",
    ]
    for key in keys:
        assert aws.s3.head_object(Bucket="bucket2-name", Key=key)["ServerSideEncryption"] == "AES256"
    assert json.loads(aws.text("bucket2-name", marker)) == {
        "run_record": f"s3://bucket2-name/md/x/tiledbvcf-batch/runs/{run_id}/run.json"
    }
    record = json.loads(aws.text("bucket2-name", keys[2]))
    assert record["run_id"] == run_id
    assert [job["job_id"] for job in record["jobs"]] == [
        ids_of(line, line.rsplit(" ", 1)[0] + " ")[0] for line in result.lines
    ]
    assert record["jobs"][1]["samples"] == samples.read_text().splitlines()
    assert f"recorded at s3://bucket2-name/md/x/tiledbvcf-batch/runs/{run_id}/run.json" in result.stderr


def test_existing_dataset_gets_no_creation_job_and_attributes_are_ignored(aws, samples_file, run_ingest):
    aws.s3.put_object(Bucket="my-bucketname", Key="test-vcf-dataset/__tiledb_group.tdb", Body=b"")
    samples = samples_file(3)
    result = run_ingest(
        "--dataset-uri", DATASET + "/", "--samples", str(samples), "--metadata-s3", "bucket2-name",
        "--attributes", "fmt_DP,info_AF", "--num-jobs", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(result.lines) == 1
    ids_of(result.lines[0], "Submitted ingestion job(s) ")
    assert "--attributes is ignored" in result.stderr
    assert all("dependsOn" not in job for job in aws.submitted[:2])
    assert [job["containerOverrides"]["command"][:2] for job in aws.submitted] == [
        ["store", "-u"], ["store", "-u"], *[["utils", action] for action, _ in CONSOLIDATION],
    ]  # fmt: skip


def test_attributes_reach_the_creation_job(aws, samples_file, run_ingest):
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(1)), "--metadata-s3", "bucket2-name",
        "--attributes", "fmt_GT,info_AF", "--tiledb-config", "vfs.s3.region=us-east-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert aws.submitted[0]["containerOverrides"]["command"] == [
        "create", "-u", DATASET, "-a", "fmt_GT,info_AF", "--tiledb-config", "vfs.s3.region=us-east-1",
    ]  # fmt: skip
    assert aws.submitted[1]["containerOverrides"]["command"][-2:] == ["--tiledb-config", "vfs.s3.region=us-east-1"]


def test_legacy_registration_job_runs_between_creation_and_ingestion(aws, samples_file, run_ingest):
    samples = samples_file(6)
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
        "--num-jobs", "3", "--register", "--retries", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (create_id,) = ids_of(result.lines[0], "Submitted array creation job ")
    match = re.fullmatch(rf"Submitted sample registration job ({UUID}) using metadata (s3://\S+)", result.lines[1])
    assert match, result.lines[1]
    register_id, register_manifest = match.groups()
    assert register_manifest.endswith("/register-b001.txt")
    ingest_ids = ids_of(result.lines[2], "Submitted ingestion job(s) ")
    assert len(ingest_ids) == 3

    register = aws.submitted[1]
    assert register["containerOverrides"]["command"] == [
        "register", "-u", DATASET, "-d", "/data", "-s", "1024000", "-f", register_manifest,
    ]  # fmt: skip
    assert register["dependsOn"] == [{"jobId": create_id}]
    assert aws.text(*manifest_key(register["containerOverrides"]["command"])) == samples.read_text()
    assert len(aws.submitted) == 5  # no consolidation: the legacy CLI has no utils
    for store in aws.submitted[2:]:
        assert store["dependsOn"] == [{"jobId": register_id}]
        assert store["retryStrategy"] == {"attempts": 4}
        assert "--resume" not in store["containerOverrides"]["command"]  # the legacy CLI has none


def test_incremental_batches_chain_inside_batch_within_twenty_dependencies(aws, samples_file, run_ingest):
    samples = samples_file(90)
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name",
        "--num-jobs", "45", "--incremental", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(result.lines) == 3  # creation, then one ingestion line per batch
    first = ids_of(result.lines[1], "Submitted ingestion job(s) ")
    second = ids_of(result.lines[2], "Submitted ingestion job(s) ")
    assert len(first) == len(second) == 45
    assert "Submitted 3 barrier job(s) after ingestion batch 1" in result.stderr
    assert "Submitted 3 barrier job(s) after ingestion batch 2" in result.stderr

    # Each batch: its 45 ingestion jobs, 3 barriers of 15 of them, then the consolidation after the barriers,
    # and the next batch after the consolidation.
    assert all(len(job.get("dependsOn", [])) <= MAX_DEPENDS_ON for job in aws.submitted)
    names = [job["jobName"] for job in aws.submitted]
    consolidation = [f"tiledbvcf-{a}-{w.replace('_', '-')}" for a, w in CONSOLIDATION]
    for b in (1, 2):
        expected = [f"tiledbvcf-gate-b{b}-l1-{i}" for i in (1, 2, 3)] + [f"{c}-b{b}" for c in consolidation]
        assert names[names.index(f"tiledbvcf-ingest-b{b}-j45") + 1 :][:7] == expected
    gates = [job for job in aws.submitted if job["jobName"].startswith("tiledbvcf-gate-b1")]
    assert [len(g["dependsOn"]) for g in gates] == [15, 15, 15]
    assert {d["jobId"] for g in gates for d in g["dependsOn"]} == set(first)
    for gate in gates:
        assert gate["containerOverrides"] == {
            "command": ["--version"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}],
        }
    consolidated = consolidation_ids(result.stderr, 1)
    gate_ids = {d["jobId"] for d in aws.describe(consolidated[:1])[0]["dependsOn"]}
    assert len(gate_ids) == 3
    assert {job["jobId"] for job in aws.describe(list(gate_ids))} == gate_ids
    assert aws.describe(second[:1])[0]["dependsOn"] == [{"jobId": consolidated[-1]}]


def test_fewer_samples_than_jobs_never_submits_an_empty_job(aws, samples_file, run_ingest):
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(3)), "--metadata-s3", "bucket2-name", "--num-jobs", "10"
    )
    assert result.exit_code == 0, result.stderr
    assert len(ids_of(result.lines[1], "Submitted ingestion job(s) ")) == 3
    assert "submitting 3 jobs instead of 10" in result.stderr
    for store in aws.submitted[1:4]:
        assert len(aws.text(*manifest_key(store["containerOverrides"]["command"])).splitlines()) == 1


def test_balance_bytes_shares_out_the_sizes_the_preflight_listed(aws, tmp_path, run_ingest):
    # Sizes in file order: two large files first, then small ones. By count, job 1 would get both large ones.
    sizes = [900, 800, 100, 100, 100, 100, 100, 100]
    uris = []
    for i, size in enumerate(sizes):
        aws.s3.put_object(Bucket="bucket-name", Key=f"sized/{i}.bcf", Body=b"x" * size)
        aws.s3.put_object(Bucket="bucket-name", Key=f"sized/{i}.bcf.csi", Body=b"i")
        uris.append(f"s3://bucket-name/sized/{i}.bcf")
    samples = tmp_path / "sized.txt"
    samples.write_text("".join(f"{uri}\n" for uri in uris))
    args = [*base(samples), "--num-jobs", "2", "--balance", "bytes"]
    aws.calls.clear()
    dry = run_ingest(*args, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    summary = "Balance by bytes: the largest ingestion job holds 1.04x the mean job's bytes; " \
              "count-based splitting would give 1.65x"  # fmt: skip
    assert summary in dry.lines  # 1200 | 1100 against 1900 | 400 (mean 1150)
    assert summary in dry.stderr.splitlines()
    # The sizes come from the preflight's one listing of the samples' folder: no call per sample.
    assert [(name, params) for name, params in aws.calls if params.get("Bucket") == "bucket-name"] == [
        ("ListObjectsV2", {"Bucket": "bucket-name", "Prefix": "sized/", "StartAfter": "sized/0.bc"})
    ]

    result = run_ingest(*args)
    assert result.exit_code == 0, result.stderr
    assert summary in result.stderr.splitlines()
    manifests = [aws.text(*manifest_key(job["containerOverrides"]["command"])).splitlines()
                 for job in aws.submitted if job["containerOverrides"]["command"][0] == "store"]  # fmt: skip
    # Largest first, to the lightest job (on a tie, the one with fewer samples); each in the file's order.
    assert manifests == [[uris[0], uris[3], uris[5], uris[7]], [uris[1], uris[2], uris[4], uris[6]]]
    assert record_of(aws, result.stderr)["options"]["balance"] == "bytes"

    by_count = run_ingest(*base(samples), "--num-jobs", "2", "--dry-run", "--force-reingest")
    assert "Balance by count: the largest ingestion job holds 1.65x the mean job's bytes; --balance bytes " \
           "shares out bytes instead" in by_count.lines  # fmt: skip


def test_options_shape_resources_and_scratch(aws, samples_file, run_ingest):
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(2)), "--metadata-s3", "bucket2-name",
        "--vcpus", "8", "--memory", "30000", "--threads", "6", "--scratch-size", "0", "--sample-batch-size", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    store = aws.submitted[1]["containerOverrides"]
    assert store["resourceRequirements"] == [{"type": "VCPU", "value": "8"}, {"type": "MEMORY", "value": "30000"}]
    assert store["command"][:5] == ["store", "-u", DATASET, "-t", "6"]
    assert "-d" not in store["command"] and store["command"][-2:] == ["-e", "5"]


def test_wait_reports_success(aws, samples_file, run_ingest):
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(4)), "--metadata-s3", "bucket2-name",
        "--num-jobs", "2", "--wait",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = result.lines[2:]
    assert report[:4] == [
        "Finished waiting on 7 jobs:",
        "- 7 / 7 jobs succeeded",
        "- 0 jobs had more than 1 attempt.",
        "- 1 instances used.",
    ]
    assert re.fullmatch(r"- Longest job took \d+\.\d{3} seconds \(includes retries\)\.", report[4])
    assert re.fullmatch(r"- Total cost estimate \$\d+\.\d\d \(\d+\.\d\d hours @ \$0\.7680 / hr\)", report[5])
    assert report[6].startswith("- Estimated 0.00 instance-hours, 0 min, $0.00 (default throughput); it took ")
    assert report[7] == "- 0 Spot interruptions (Host EC2 ...) survived or retried."
    assert re.fullmatch(r"- array creation: 1 / 1 jobs succeeded, took 0m0\ds", report[8])
    assert re.fullmatch(r"- ingestion 1: 2 / 2 jobs succeeded, took 0m0\ds", report[9])
    assert re.fullmatch(r"- consolidation 1: 4 / 4 jobs succeeded, took 0m0\ds", report[10])
    assert report[11] == "- Samples: 4 in jobs that succeeded, 0 in jobs that did not."


def test_wait_names_failed_jobs_and_exits_1(aws, samples_file, run_ingest, monkeypatch):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(2)), "--metadata-s3", "bucket2-name",
        "--num-jobs", "2", "--wait",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "- 0 / 7 jobs succeeded" in result.lines
    failed = [line for line in result.lines if line.startswith("FAILED job ")]
    assert len(failed) == 7
    assert any("(tiledbvcf-ingest-b1-j2)" in line for line in failed)


def test_dry_run_prints_the_plan_and_submits_nothing(aws, samples_file, run_ingest, monkeypatch):
    monkeypatch.setattr("tiledbvcf_batch.prepare.ANNOUNCE_FROM", 5)  # as a cohort's checks do
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(5)), "--metadata-s3", "bucket2-name",
        "--num-jobs", "2", "--dry-run", "--tiledb-config", "vfs.s3.aws_secret_access_key=hunter2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.lines[0].startswith("Plan for ingest run ingest-")
    assert (
        "tiledbvcf create -u s3://my-bucketname/test-vcf-dataset --tiledb-config 'vfs.s3.aws_secret_access_key=***'"
        in result.stdout
    )
    assert "hunter2" not in result.stdout + result.stderr
    assert aws.submitted == [] and aws.keys("bucket2-name") == []
    # No silent phase: the checks say what they do as they start (stderr, so the plan stays parsable).
    assert result.stderr.splitlines()[0] == "Checking 5 samples and their indexes, the job queue and the buckets"


# The checks of options and files are unit tests (test_inputs.py); these need AWS, or are click's own. One of
# them, --num-jobs 0, shows the wiring of every problem found before any AWS call.
BAD_INPUTS = [
    (lambda p: ["--num-jobs", "0"], "--num-jobs is 0: it must be at least 1"),
    (lambda p: ["--job-queue", "no-such-queue"], "--job-queue no-such-queue: no such job queue in us-east-1"),
    (lambda p: ["--job-definition", "no-such-def"], "--job-definition no-such-def: no ACTIVE job definition"),
    (lambda p: ["--metadata-s3", "missing-bucket"], "--metadata-s3: bucket missing-bucket does not exist"),
    (lambda p: ["--num-jobs", "two"], "'two' is not a valid integer"),
    (
        lambda p: ["--vcpus", "16", "--memory", "2048", "--sample-batch-size", "64"],
        "--sample-batch-size 64 needs 1024 MiB of input buffers (16 threads x 64 samples x 1 MiB) and --memory 2048 "
        "leaves store room for 384 MiB: the largest that fits is 24",
    ),
]


@pytest.mark.parametrize("change, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_happens(aws, samples_file, run_ingest, tmp_path, change, message):
    args = {
        "--dataset-uri": DATASET,
        "--samples": str(samples_file(3)),
        "--metadata-s3": "bucket2-name",
        "--job-queue": "tiledbvcf-job-queue",
        "--job-definition": "tiledbvcf-24h",
    }
    extra = change(tmp_path)
    args.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    result = run_ingest(*[x for pair in args.items() for x in pair], defaults=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_missing_required_option_is_one_line(aws, run_ingest):
    result = run_ingest("--samples", "x.txt", defaults=False)
    assert result.exit_code == 2
    assert result.stderr == "Error: Missing option '--dataset-uri'. (see --help)\n"


def test_every_problem_is_listed(aws, tmp_path, run_ingest):
    samples = text_file(tmp_path, "http://x/a.bcf\ns3://bucket-name/b.bcf\ns3://bucket-name/b.bcf\n")
    result = run_ingest("--dataset-uri", DATASET, "--samples", samples, "--metadata-s3", "bucket2-name")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 2
    assert "line 1" in result.stderr and "line 3 repeats line 2" in result.stderr


def test_failure_mid_submission_terminates_submitted_jobs_and_removes_manifests(aws, samples_file, run_ingest):
    aws.fail_call("batch.SubmitJob", "ServerException", after=3)
    terminated = []
    aws.on("before-parameter-build.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"]))
    result = run_ingest(
        "--dataset-uri", DATASET, "--samples", str(samples_file(6)), "--metadata-s3", "bucket2-name", "--num-jobs", "6"
    )
    assert result.exit_code == 1
    assert "failed after 3 of 11 jobs (ServerException: injected ServerException)" in result.stderr
    assert (
        "terminated the 3 job(s) already submitted and deleted 8 uploaded file(s); job tiledbvcf-ingest-b1-j3, whose "
        "submission was under way, was looked for and not found; nothing is left behind"
    ) in result.stderr
    submitted_ids = [line.split()[-1] for line in result.lines[:1]]
    assert terminated[:1] == submitted_ids and len(terminated) == 3
    assert aws.keys("bucket2-name") == []


def test_help_shows_the_documented_options():
    from click.testing import CliRunner

    from conftest import INGEST

    text = CliRunner().invoke(INGEST.main, ["--help"]).output
    assert "Ingest VCF sample data into a TileDB-VCF dataset via AWS Batch." in text
    for option in (
        "--dataset-uri URI", "--samples PATH", "--metadata-s3 NAME", "--job-queue NAME", "--job-definition NAME",
        "--attributes CSV", "--num-jobs N", "--region NAME", "--retries N", "--wait", "--incremental N",
    ):  # fmt: skip
        assert option in text


OLD_RECORD = {  # as batch-ingest.py wrote it before the typed RunRecord (commit 60a4df0)
    "run_id": "ingest-20261120T080000Z-abcdef", "kind": "ingest", "created_at": "2026-11-20T08:00:00+00:00",
    "region": "us-east-1", "job_queue": "tiledbvcf-job-queue", "job_definition": "tiledbvcf-24h",
    "target": DATASET, "record": "s3://bucket2-name/tiledbvcf-batch/runs/ingest-20261120T080000Z-abcdef/run.json",
    "options": {"dataset_uri": DATASET, "samples": "samples.txt", "samples_count": 1, "sample_bytes": 5,
                "metadata_s3": "s3://bucket2-name/", "attributes": [], "num_jobs": 1, "incremental": 1, "retries": 1,
                "register": False, "sample_batch_size": None, "tiledb_config": None, "vcpus": 16, "memory": 61440,
                "scratch_path": "/data", "scratch_size": 1024000, "resumes": None, "instance_price": 0.768},
    "jobs": [{"key": "ingest-1-1", "stage": "ingest-1", "name": "tiledbvcf-ingest-b1-j1", "job_id": "j-1",
              "depends_on": [], "manifest": "s3://bucket2-name/tiledbvcf-batch/runs/x/ingest-b001-j0001.txt",
              "samples": ["s3://bucket-name/samples/1.bcf"]}],
}  # fmt: skip


def test_records_written_before_the_typed_record_still_load_and_keep_their_keys(aws, samples_file, run_ingest):
    loaded = RunRecord.from_json(OLD_RECORD)
    assert loaded.executor == {"kind": "batch", "job_queue": "tiledbvcf-job-queue", "job_definition": "tiledbvcf-24h"}
    assert loaded.to_json() | OLD_RECORD == loaded.to_json()  # every old key, with its value, is still there
    result = run_ingest("--dataset-uri", DATASET, "--samples", str(samples_file(2)), "--metadata-s3", "bucket2-name")
    written = json.loads(aws.text("bucket2-name", re.search(r"recorded at s3://bucket2-name/(\S+)", result.stderr)[1]))
    assert set(OLD_RECORD) < set(written) and set(OLD_RECORD["options"]) < set(written["options"])
    assert set(OLD_RECORD["jobs"][0]) == set(written["jobs"][0])


def test_json_is_exactly_one_document_in_every_mode(aws, samples_file, run_ingest):
    samples = str(samples_file(4))
    args = ["--dataset-uri", DATASET, "--samples", samples, "--metadata-s3", "bucket2-name", "--num-jobs", "2"]
    plan = json.loads(run_ingest(*args, "--dry-run", "--json").stdout)
    consolidation = [f"consolidate-1-{i}" for i in range(1, 5)]
    assert [job["key"] for job in plan["jobs"]] == ["create", "ingest-1-1", "ingest-1-2", *consolidation]
    assert plan["jobs"][1]["command"][0] == "store" and plan["jobs"][1]["after"] == ["create"]
    assert aws.submitted == []

    submitted = run_ingest(*args, "--json")
    assert submitted.exit_code == 0, submitted.stderr
    document = json.loads(submitted.stdout)
    assert list(document["submitted"]) == ["create", "ingest-1", "consolidate-1"]
    ids = [job["jobId"] for job in aws.describe([i for stage in document["submitted"].values() for i in stage])]
    assert len(ids) == 7 and document["record"].endswith(f"/{document['run_id']}/run.json")
    assert "Submitted ingestion job(s) " in submitted.stderr  # the documented lines, off stdout
    assert "What next:" in submitted.stderr and f"python batch-runs.py wait {document['record']}" in submitted.stderr


def test_what_next_follows_every_submission(aws, samples_file, run_ingest):
    result = run_ingest("--dataset-uri", DATASET, "--samples", str(samples_file(1)), "--metadata-s3", "bucket2-name")
    record = re.search(r"recorded at (\S+)", result.stderr)[1]
    assert result.stderr.splitlines()[-4:] == [
        "What next:",
        f"  status: python batch-runs.py status {record}",
        f"  wait:   python batch-runs.py wait {record}",
        f"  cancel: python batch-runs.py cancel {record}",
    ]
