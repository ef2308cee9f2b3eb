"""The pure planning layer: partitioning, the job graph, commands, payload validation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import common

RUN = common.S3Uri("meta", "tiledbvcf-batch/runs/r1/")


def samples(n: int) -> list[common.Sample]:
    return [common.Sample(f"s3://bkt/s{i}.bcf") for i in range(n)]


def plan_for(opts: common.IngestOptions, chosen: list[common.Sample]) -> common.Plan:
    batches, notes = common.ingest_batches(chosen, opts, RUN)
    return common.plan_ingest(opts, batches, "r1", RUN, notes)


def ancestors(jobs: dict[str, common.PlannedJob], key: str) -> set[str]:
    seen: set[str] = set()
    stack = list(jobs[key].depends_on)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(jobs[current].depends_on)
    return seen


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 400),
    num_jobs=st.integers(1, 70),
    incremental=st.integers(1, 12),
    create=st.booleans(),
    register=st.booleans(),
    done=st.sets(st.integers(0, 399)),
)
def test_every_sample_lands_in_exactly_one_manifest_or_is_reported_skipped(
    n, num_jobs, incremental, create, register, done
):
    opts = common.IngestOptions(
        "s3://bkt/ds", create_dataset=create, register=register, num_jobs=num_jobs, incremental=incremental
    )
    ledger = common.Ledger(ingested={f"s3://bkt/s{i}.bcf" for i in done})
    chosen, notes = common.skip_known_samples(samples(n), ledger)
    skipped = [s.uri for s in samples(n) if s not in chosen]
    assert len(skipped) == len(done & set(range(n)))
    assert (f"skipped {len(skipped)} samples already ingested" in " ".join(notes)) == bool(skipped)
    if not chosen:
        return
    plan = plan_for(opts, chosen)
    jobs = {job.key: job for job in plan.jobs}
    assert len(jobs) == len(plan.jobs)
    stores = [job for job in plan.jobs if job.stage.startswith("ingest-")]

    # Exactly once, in the samples file's order, never an empty job.
    lines = [line for job in stores for line in job.manifest.lines]
    assert lines == [s.uri for s in chosen]
    assert sorted(lines + skipped) == sorted(s.uri for s in samples(n))
    assert all(job.manifest.lines for job in stores)
    assert len({m.uri for m in plan.manifests()}) == len(plan.manifests())

    # Batch sizes and job counts.
    batches = sorted({job.stage for job in stores}, key=lambda s: int(s.split("-")[1]))
    assert len(batches) == min(incremental, len(chosen))
    for stage in batches:
        in_batch = [job for job in stores if job.stage == stage]
        assert len(in_batch) == min(num_jobs, sum(len(j.manifest.lines) for j in in_batch))

    # Limits: at most 20 dependencies; dependencies always come earlier in submission order.
    order = {job.key: i for i, job in enumerate(plan.jobs)}
    for job in plan.jobs:
        assert len(job.depends_on) <= common.MAX_DEPENDS_ON
        assert all(order[dep] < order[job.key] for dep in job.depends_on)

    # Strictly one batch after another, and everything after creation.
    for earlier, later in itertools.pairwise(batches):
        first_of_later = next(job for job in plan.jobs if job.stage == later)
        assert {j.key for j in stores if j.stage == earlier} <= ancestors(jobs, first_of_later.key)
    if create:
        assert all("create" in ancestors(jobs, job.key) for job in plan.jobs if job.key != "create")


def test_split_evenly_matches_tiledbvcf_sample_partition():
    assert common.split_evenly(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert common.split_evenly(list("ab"), 5) == [["a"], ["b"]]
    assert common.split_evenly([], 3) == []


def test_store_commands_current_and_legacy():
    manifest = common.S3Uri("meta", "m.txt")
    current = common.IngestOptions("s3://bkt/ds", threads=8, scratch_mb=500, tiledb_config="a=b")
    assert common.store_command(current, manifest) == [
        "store", "-u", "s3://bkt/ds", "-d", "/data", "-s", "500", "-t", "8", "-f", "s3://meta/m.txt",
        "--remove-sample-file", "--resume", "--tiledb-config", "a=b",
    ]  # fmt: skip
    legacy = common.IngestOptions("s3://bkt/ds", register=True)
    assert "--resume" not in common.store_command(legacy, manifest)
    assert common.register_command(legacy, manifest) == [
        "register", "-u", "s3://bkt/ds", "-d", "/data", "-s", "1024000", "-f", "s3://meta/m.txt",
    ]  # fmt: skip


def test_sample_with_index_and_hostile_characters_stays_one_argument():
    parsed = common.parse_samples(["s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi\n"], "f")
    assert parsed == [common.Sample("s3://bkt/dir with space/a;rm -rf 'x'.bcf", "s3://bkt/idx/a.bcf.csi")]
    plan = plan_for(common.IngestOptions("s3://bkt/ds", create_dataset=False), parsed)
    assert plan.jobs[0].manifest.lines == ["s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi"]


def test_retry_strategy():
    assert common.retry_strategy(1) == {
        "attempts": 3,
        "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    assert common.retry_strategy(7) == {"attempts": 7}


def make_job(**changes):
    fields = {
        "key": "k",
        "stage": "ingest-1",
        "name": "tiledbvcf-ingest-b1-j1",
        "command": ["store"],
        "resources": common.Resources(1, 8),
        "retry": {"attempts": 1},
    }
    fields.update(changes)
    return common.PlannedJob(**fields)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"depends_on": [f"d{i}" for i in range(21)]}, "depends on 21 jobs; Batch allows 20"),
        ({"command": ["create", "-a", ""]}, "may not be empty or contain an empty string"),
        ({"name": "-bad"}, "not a valid Batch job name"),
        ({"name": "x" * 129}, "not a valid Batch job name"),
        ({"retry": {"attempts": 11}}, "retry attempts must be between 1 and 10"),
    ],
)
def test_payload_builder_enforces_batch_limits(changes, message):
    ids = {f"d{i}": f"id{i}" for i in range(21)}
    with pytest.raises(ValueError, match=message):
        common.job_payload(make_job(**changes), ids, "q", "jd", "r1")


def test_payload_maps_logical_dependencies_to_job_ids():
    payload = common.job_payload(make_job(depends_on=["d1", "d2"]), {"d1": "A", "d2": "B"}, "q", "jd", "r1")
    assert payload["dependsOn"] == [{"jobId": "A"}, {"jobId": "B"}]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bucket2-name", common.S3Uri("bucket2-name", "")),
        ("s3://bucket2-name", common.S3Uri("bucket2-name", "")),
        ("s3://bucket2-name/a/b", common.S3Uri("bucket2-name", "a/b/")),
    ],
)
def test_metadata_location(text, expected):
    assert common.parse_metadata_location(text) == expected


def test_redaction_hides_secret_values_only():
    assert (
        common.redact_config("vfs.s3.region=x,vfs.s3.aws_secret_access_key=s,vfs.s3.aws_session_token=t")
        == "vfs.s3.region=x,vfs.s3.aws_secret_access_key=***,vfs.s3.aws_session_token=***"
    )


class Queues:
    def __init__(self, queue):
        self.queue = queue

    def describe_job_queues(self, jobQueues):
        return {"jobQueues": [self.queue]}


def test_job_queue_must_be_valid_and_have_a_compute_environment():
    broken = {"state": "ENABLED", "status": "INVALID", "statusReason": "CE deleted", "computeEnvironmentOrder": []}
    assert common.check_job_queue(Queues(broken), "q", "us-east-1") == [
        "--job-queue q is INVALID (CE deleted): fix or recreate it",
        "--job-queue q has no compute environment: attach one",
    ]
    fine = {"state": "ENABLED", "status": "VALID", "computeEnvironmentOrder": [{"order": 1}]}
    assert common.check_job_queue(Queues(fine), "q", "us-east-1") == []
