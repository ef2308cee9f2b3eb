"""The pure planning layer: partitioning, the task graph, and the tiledbvcf commands it carries."""

from __future__ import annotations

import itertools
import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from tiledbvcf_batch.commands import register_command, split_evenly, store_command
from tiledbvcf_batch.executors.batch import MAX_DEPENDS_ON, with_barriers
from tiledbvcf_batch.inputs import IngestOptions, Sample, parse_samples
from tiledbvcf_batch.ledger import Ledger, skip_known_samples
from tiledbvcf_batch.plan import Plan, Stage, Task, describe_plan, ingest_batches, plan_ingest
from tiledbvcf_batch.storage import S3Uri

RUN = S3Uri("meta", "tiledbvcf-batch/runs/r1/")


def ingest_opts(**changes) -> IngestOptions:
    return IngestOptions("s3://bkt/ds", "samples.txt", S3Uri("meta"), **changes)


def samples(n: int) -> list[Sample]:
    return [Sample(f"s3://bkt/s{i}.bcf") for i in range(n)]


def plan_for(opts: IngestOptions, chosen: list[Sample]) -> Plan:
    batches, notes = ingest_batches(chosen, opts, RUN)
    return plan_ingest(opts, batches, "r1", RUN, notes=notes)


def ancestors(tasks: dict[str, Task], key: str) -> set[str]:
    seen: set[str] = set()
    stack = list(tasks[key].after)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(tasks[current].after)
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
    opts = ingest_opts(create_dataset=create, register=register, num_jobs=num_jobs, incremental=incremental)
    ledger = Ledger(ingested={f"s3://bkt/s{i}.bcf" for i in done})
    chosen, notes = skip_known_samples(samples(n), ledger)
    skipped = [s.uri for s in samples(n) if s not in chosen]
    assert len(skipped) == len(done & set(range(n)))
    assert (f"skipped {len(skipped)} samples already ingested" in " ".join(notes)) == bool(skipped)
    if not chosen:
        return
    plan = plan_for(opts, chosen)
    tasks = {task.key: task for task in plan.tasks}
    assert len(tasks) == len(plan.tasks)
    stores = [task for task in plan.tasks if task.stage.kind == "ingest"]

    # Exactly once, in the samples file's order, never an empty job.
    lines = [line for task in stores for line in task.manifest.lines]
    assert lines == [s.uri for s in chosen]
    assert sorted(lines + skipped) == sorted(s.uri for s in samples(n))
    assert all(task.manifest.lines for task in stores)
    assert len({m.uri for m in plan.manifests()}) == len(plan.manifests())

    # Batch sizes and job counts.
    batches = sorted({task.stage for task in stores})
    assert len(batches) == min(incremental, len(chosen))
    for stage in batches:
        in_batch = [task for task in stores if task.stage == stage]
        assert len(in_batch) == min(num_jobs, sum(len(t.manifest.lines) for t in in_batch))

    # Strictly one batch after another, and everything after creation.
    for earlier, later in itertools.pairwise(batches):
        first_of_later = next(task for task in plan.tasks if task.stage.batch == later.batch)
        assert {t.key for t in stores if t.stage == earlier} <= ancestors(tasks, first_of_later.key)
    if create:
        assert all("create" in ancestors(tasks, task.key) for task in plan.tasks if task.key != "create")

    # What AWS Batch is sent keeps that order within its limits: at most 20 dependencies per
    # job, dependencies always submitted earlier, and every batch still after the one before.
    jobs = with_barriers(plan.tasks)
    order = {job.key: i for i, job in enumerate(jobs)}
    for job in jobs:
        assert len(job.after) <= MAX_DEPENDS_ON
        assert all(order[dep] < order[job.key] for dep in job.after)
    by_key = {job.key: job for job in jobs}
    for earlier, later in itertools.pairwise(batches):
        first_of_later = next(job for job in jobs if job.stage.batch == later.batch and job.stage.kind != "gate")
        assert {t.key for t in stores if t.stage == earlier} <= ancestors(by_key, first_of_later.key)


def test_plan_carries_no_executor_request_fragments():
    plan = plan_for(ingest_opts(num_jobs=30, incremental=2, retries=4), samples(60))
    second = [task for task in plan.tasks if task.stage == Stage("ingest", 2)]
    assert len(second[0].after) == 30  # logical: every job of batch 1, however many
    assert {task.retries for task in plan.tasks} == {4}
    assert all(task.stage.kind != "gate" for task in plan.tasks)


def test_split_evenly_matches_tiledbvcf_sample_partition():
    assert split_evenly(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert split_evenly(list("ab"), 5) == [["a"], ["b"]]
    assert split_evenly([], 3) == []


def test_store_commands_current_and_legacy():
    current = ingest_opts(threads=8, scratch_size=500, tiledb_config="a=b")
    assert store_command(current, "s3://meta/m.txt") == [
        "store", "-u", "s3://bkt/ds", "-d", "/data", "-s", "500", "-t", "8", "-f", "s3://meta/m.txt",
        "--remove-sample-file", "--resume", "--tiledb-config", "a=b",
    ]  # fmt: skip
    legacy = ingest_opts(register=True)
    assert "--resume" not in store_command(legacy, "s3://meta/m.txt")
    assert register_command(legacy, "s3://meta/m.txt") == [
        "register", "-u", "s3://bkt/ds", "-d", "/data", "-s", "1024000", "-f", "s3://meta/m.txt",
    ]  # fmt: skip


def test_sample_with_index_and_hostile_characters_stays_one_argument():
    parsed = parse_samples(["s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi\n"], "f")
    assert parsed == [Sample("s3://bkt/dir with space/a;rm -rf 'x'.bcf", "s3://bkt/idx/a.bcf.csi")]
    plan = plan_for(ingest_opts(create_dataset=False), parsed)
    assert plan.tasks[0].manifest.lines == ("s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi",)


def test_stage_names_round_trip_and_label():
    for text, label in (("create", "array creation"), ("ingest-12", "ingestion 12"), ("gate-3", "batch barrier 3")):
        assert str(Stage.parse(text)) == text and Stage.parse(text).label == label


def test_dry_run_text_hides_secrets():
    plan = plan_for(ingest_opts(tiledb_config="vfs.s3.aws_secret_access_key=hunter2"), samples(2))
    text = "\n".join(describe_plan(plan, list(plan.tasks), "here"))
    assert "hunter2" not in text and "vfs.s3.aws_secret_access_key=***" in text
    assert "retried on host loss only" in text


def test_dry_run_commands_are_shell_quoted():
    """Pasted into a shell, each printed command is the job's own arguments: one word each, nothing run."""
    opts = IngestOptions("s3://bkt/my data/$(touch pwned)", "samples.txt", S3Uri("meta"), scratch_path="/scratch dir")
    plan = plan_for(opts, samples(2))
    commands = [line.strip() for line in describe_plan(plan, list(plan.tasks), "here") if "    tiledbvcf " in line]
    assert [shlex.split(command) for command in commands] == [["tiledbvcf", *task.args] for task in plan.tasks]
    assert "'s3://bkt/my data/$(touch pwned)'" in commands[0]
