"""The pure planning layer: partitioning, the task graph, and the tiledbvcf commands it carries."""

from __future__ import annotations

import itertools
import random
import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import options
from tiledbvcf_batch.bed import read_bed
from tiledbvcf_batch.commands import consolidation_commands, register_command, split_evenly, store_command
from tiledbvcf_batch.executors.batch import MAX_DEPENDS_ON, SCRATCH_PATH, with_barriers
from tiledbvcf_batch.executors.jobs import Job, describe_plan, plan_document
from tiledbvcf_batch.inputs import Sample, parse_samples
from tiledbvcf_batch.ledger import Ledger, skip_known_samples
from tiledbvcf_batch.options import ExportOptions, IngestOptions
from tiledbvcf_batch.plan import (
    IngestBatch,
    Plan,
    Stage,
    Task,
    balance_by_bytes,
    balance_summary,
    imbalance,
    ingest_batches,
    plan_export,
    plan_ingest,
)
from tiledbvcf_batch.storage import S3Uri

RUN = S3Uri("meta", "tiledbvcf-batch/runs/r1/")


def ingest_opts(**changes) -> IngestOptions:
    return IngestOptions(S3Uri("bkt", "ds"), "samples.txt", S3Uri("meta"), **{"scratch_path": SCRATCH_PATH, **changes})


def samples(n: int) -> list[Sample]:
    return [Sample(f"s3://bkt/s{i}.bcf") for i in range(n)]


def plan_for(opts: IngestOptions, chosen: list[Sample], sizes: dict[str, int] | None = None) -> Plan:
    batches, notes = ingest_batches(chosen, opts, RUN, sizes)
    return plan_ingest(opts, batches, "r1", RUN, notes=notes)


def size_of(uri: str) -> int:
    """Deterministic, skewed sizes for the property test: a few large files among many small ones."""
    n = int(uri.removeprefix("s3://bkt/s").removesuffix(".bcf"))
    return (n * 7919) % 97 + (5000 if n % 13 == 0 else 1)


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
    balance=st.sampled_from(["count", "bytes"]),
    consolidate=st.booleans(),
)
def test_every_sample_lands_in_exactly_one_manifest_or_is_reported_skipped(
    n, num_jobs, incremental, create, register, done, balance, consolidate
):
    opts = ingest_opts(
        create_dataset=create, register=register, num_jobs=num_jobs, incremental=incremental, balance=balance,
        consolidate=consolidate,
    )  # fmt: skip
    ledger = Ledger(ingested={f"s3://bkt/s{i}.bcf" for i in done})
    chosen, notes = skip_known_samples(samples(n), ledger)
    skipped = [s.uri for s in samples(n) if s not in chosen]
    assert len(skipped) == len(done & set(range(n)))
    assert (f"skipped {len(skipped)} samples already ingested" in " ".join(notes)) == bool(skipped)
    if not chosen:
        return
    plan = plan_for(opts, chosen, {s.uri: size_of(s.uri) for s in chosen})
    tasks = {task.key: task for task in plan.tasks}
    assert len(tasks) == len(plan.tasks)
    stores = [task for task in plan.tasks if task.stage.kind == "ingest"]

    # Exactly once, never an empty job; by count in the samples file's order, by bytes in that order within a job.
    lines = [line for task in stores for line in task.manifest.lines]
    position = {s.uri: i for i, s in enumerate(chosen)}
    if balance == "count":
        assert lines == [s.uri for s in chosen]
    else:
        assert sorted(lines, key=position.get) == [s.uri for s in chosen]
        assert all(list(t.manifest.lines) == sorted(t.manifest.lines, key=position.get) for t in stores)
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

    # Consolidation (not for the legacy CLI, not with --no-consolidate): four jobs in a row after every store
    # job of its batch, before the next batch.
    consolidations = [task for task in plan.tasks if task.stage.kind == "consolidate"]
    assert len(consolidations) == (4 * len(batches) if consolidate and not register else 0)
    for stage in batches if consolidations else []:
        steps = [task for task in consolidations if task.stage.batch == stage.batch]
        assert [task.args[:3] for task in steps] == [tuple(c[:3]) for c in consolidation_commands(opts)]
        assert set(steps[0].after) == {t.key for t in stores if t.stage == stage}
        assert [step.after for step in steps[1:]] == [(step.key,) for step in steps[:-1]]
        later = [task for task in stores if task.stage.batch == stage.batch + 1]
        assert all(task.after == (steps[-1].key,) for task in later)

    # What AWS Batch is sent keeps that order within its limits: at most 20 dependencies per
    # job, dependencies always submitted earlier, and every batch still after the one before.
    jobs = with_barriers(jobs_of(plan))
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
    tasks = {task.key: task for task in plan.tasks}
    assert len(tasks["consolidate-1-1"].after) == 30  # logical: every job of batch 1, however many
    assert tasks["ingest-2-1"].after == ("consolidate-1-4",)
    assert {task.retries for task in plan.tasks} == {4}
    assert all(task.stage.kind != "gate" for task in plan.tasks)
    unconsolidated = plan_for(ingest_opts(num_jobs=30, incremental=2, consolidate=False), samples(60))
    second = [task for task in unconsolidated.tasks if task.stage == Stage("ingest", 2)]
    assert len(second[0].after) == 30
    assert all(task.stage.kind != "consolidate" for task in unconsolidated.tasks)


def test_consolidation_after_each_batch_and_at_the_end():
    opts = ingest_opts(num_jobs=2, incremental=2, tiledb_config="vfs.s3.region=us-east-1", vcpus=8, memory=30000)
    plan = plan_for(opts, samples(4))
    assert [(task.key, task.after) for task in plan.tasks] == [
        ("create", ()),
        ("ingest-1-1", ("create",)), ("ingest-1-2", ("create",)),
        ("consolidate-1-1", ("ingest-1-1", "ingest-1-2")), ("consolidate-1-2", ("consolidate-1-1",)),
        ("consolidate-1-3", ("consolidate-1-2",)), ("consolidate-1-4", ("consolidate-1-3",)),
        ("ingest-2-1", ("consolidate-1-4",)), ("ingest-2-2", ("consolidate-1-4",)),
        ("consolidate-2-1", ("ingest-2-1", "ingest-2-2")), ("consolidate-2-2", ("consolidate-2-1",)),
        ("consolidate-2-3", ("consolidate-2-2",)), ("consolidate-2-4", ("consolidate-2-3",)),
    ]  # fmt: skip
    last = [task for task in plan.tasks if task.stage == Stage("consolidate", 2)]
    threads = "sm.compute_concurrency_level=8,sm.io_concurrency_level=32"  # the jobs' --vcpus 8
    rest = ("-u", "s3://bkt/ds", "--tiledb-config", f"{threads},vfs.s3.region=us-east-1")
    assert [(task.name, task.args) for task in last] == [
        ("tiledbvcf-consolidate-fragment-meta-b2", ("utils", "consolidate", "fragment_meta", *rest)),
        ("tiledbvcf-consolidate-commits-b2", ("utils", "consolidate", "commits", *rest)),
        ("tiledbvcf-vacuum-fragment-meta-b2", ("utils", "vacuum", "fragment_meta", *rest)),
        ("tiledbvcf-vacuum-commits-b2", ("utils", "vacuum", "commits", *rest)),
    ]
    assert {(task.resources.vcpus, task.resources.memory, task.manifest) for task in last} == {(8, 30000, None)}
    assert Stage("consolidate", 2).label == "consolidation 2"
    # The legacy CLI (--register) has no utils.
    assert all(task.stage.kind != "consolidate" for task in plan_for(ingest_opts(register=True), samples(3)).tasks)


def test_a_batch_without_store_jobs_is_its_consolidation():
    """What a resumed run plans when only a consolidation failed: the consolidation, on its own."""
    plan = plan_ingest(ingest_opts(create_dataset=False), [IngestBatch(3, ())], "r1", RUN)
    assert [(task.key, task.after) for task in plan.tasks] == [
        ("consolidate-3-1", ()), ("consolidate-3-2", ("consolidate-3-1",)),
        ("consolidate-3-3", ("consolidate-3-2",)), ("consolidate-3-4", ("consolidate-3-3",)),
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(sizes=st.lists(st.integers(0, 10**12), min_size=1, max_size=300), parts=st.integers(1, 60))
def test_balance_by_bytes_is_a_partition_with_the_lpt_bound(sizes, parts):
    groups = balance_by_bytes(sizes, parts)
    assert len(groups) == min(parts, len(sizes))
    assert sorted(i for group in groups for i in group) == list(range(len(sizes)))  # each sample in one job
    assert all(groups) and all(group == sorted(group) for group in groups)  # none empty; file order within
    loads = [sum(sizes[i] for i in group) for group in groups]
    # Graham's bound for largest-first greedy: the heaviest job's last (smallest) sample went to the then
    # lightest job, which held at most the mean of the rest.
    heaviest = groups[loads.index(max(loads))]
    last = min(sizes[i] for i in heaviest)
    assert max(loads) * len(groups) <= sum(sizes) - last + last * len(groups)
    assert balance_by_bytes(sizes, parts) == groups  # deterministic


def test_balance_by_bytes_on_a_skewed_cohort():
    """10,000 log-normal sample sizes (median 5 GB, sigma 1) over 100 jobs, as the README reports."""
    rng = random.Random(12)
    cohort = samples(10_000)
    sizes = {s.uri: int(rng.lognormvariate(22.3, 1.0)) for s in cohort}
    by_bytes, _ = ingest_batches(cohort, ingest_opts(num_jobs=100, balance="bytes"), RUN, sizes)
    by_count, _ = ingest_batches(cohort, ingest_opts(num_jobs=100), RUN, sizes)
    bytes_ratio = imbalance([share.bytes for share in by_bytes[0].shares])
    count_ratio = imbalance([share.bytes for share in by_count[0].shares])
    assert bytes_ratio <= 1.05 < 1.2 <= count_ratio
    assert imbalance(by_bytes[0].count_based) == count_ratio
    assert balance_summary(by_bytes, "bytes") == (
        f"Balance by bytes: the largest ingestion job holds {bytes_ratio:.2f}x the mean job's bytes; "
        f"count-based splitting would give {count_ratio:.2f}x"
    )
    assert balance_summary(by_count, "count").startswith(f"Balance by count: the largest ingestion job holds "
                                                         f"{count_ratio:.2f}x the mean job's bytes;")  # fmt: skip
    assert balance_summary(ingest_batches(cohort, ingest_opts(), RUN)[0], "count") is None  # sizes unknown


def test_split_evenly_matches_tiledbvcf_sample_partition():
    assert split_evenly(list("abcdefg"), 3) == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert split_evenly(list("ab"), 5) == [["a"], ["b"]]
    assert split_evenly([], 3) == []


def test_store_commands_current_and_legacy():
    current = ingest_opts(threads=8, scratch_size=500, tiledb_config="a=b")
    assert store_command(current, "s3://meta/m.txt") == [
        "store", "-u", "s3://bkt/ds", "-d", "/data", "-s", "500", "-t", "8", "-f", "s3://meta/m.txt",
        "--remove-sample-file", "-m", "53760", "--resume", "--tiledb-config", "a=b",
    ]  # fmt: skip
    legacy = ingest_opts(register=True)  # the legacy store has neither --resume nor -m
    assert "--resume" not in store_command(legacy, "s3://meta/m.txt")
    assert "-m" not in store_command(legacy, "s3://meta/m.txt")
    assert register_command(legacy, "s3://meta/m.txt") == [
        "register", "-u", "s3://bkt/ds", "-d", "/data", "-s", "1024000", "-f", "s3://meta/m.txt",
    ]  # fmt: skip


def test_sample_with_index_and_hostile_characters_stays_one_argument():
    parsed = parse_samples(["s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi\n"], "f")
    assert parsed == [Sample("s3://bkt/dir with space/a;rm -rf 'x'.bcf", "s3://bkt/idx/a.bcf.csi")]
    plan = plan_for(ingest_opts(create_dataset=False), parsed)
    assert plan.tasks[0].manifest.lines == ("s3://bkt/dir with space/a;rm -rf 'x'.bcf\ts3://bkt/idx/a.bcf.csi",)


def test_stage_names_round_trip_and_label():
    for text, label in (("create", "array creation"), ("ingest-12", "ingestion 12"), ("gate-3", "batch barrier 3"),
                        ("consolidate-2", "consolidation 2")):  # fmt: skip
        assert str(Stage.parse(text)) == text and Stage.parse(text).label == label


def test_a_sample_larger_than_the_mean_job_is_named_as_the_bound():
    cohort = samples(4)
    sizes = {s.uri: 100 if s.uri.endswith("s2.bcf") else 1 for s in cohort}
    batches, _ = ingest_batches(cohort, ingest_opts(num_jobs=2, balance="bytes"), RUN, sizes)
    assert [share.manifest.sample_uris() for share in batches[0].shares] == [
        ("s3://bkt/s2.bcf",), ("s3://bkt/s0.bcf", "s3://bkt/s1.bcf", "s3://bkt/s3.bcf")
    ]  # fmt: skip
    assert balance_summary(batches, "bytes") == (
        "Balance by bytes: the largest ingestion job holds 1.94x the mean job's bytes, a single sample larger than "
        "the mean job; count-based splitting would give 1.96x"
    )


def jobs_of(plan) -> list[Job]:
    """The plan's tasks as plain jobs, as an executor without arrays or barriers submits them."""
    return [Job.of(task) for task in plan.tasks]


def test_dry_run_text_and_document_show_the_expected_balance():
    cohort = samples(6)
    opts = ingest_opts(num_jobs=2, balance="bytes")
    batches, _ = ingest_batches(cohort, opts, RUN, {s.uri: 10 if s.uri.endswith("s0.bcf") else 1 for s in cohort})
    summary = balance_summary(batches, "bytes")
    assert summary.startswith("Balance by bytes: the largest ingestion job holds 1.33x")  # 10 | 5: best there is
    assert summary.endswith("count-based splitting would give 1.60x")  # 12 | 3
    plan = plan_ingest(opts, batches, "r1", RUN, summary=[summary])
    assert describe_plan(plan, jobs_of(plan), "here")[2] == summary
    assert plan_document(plan, jobs_of(plan), "here")["summary"] == [summary]


def test_dry_run_text_hides_secrets():
    plan = plan_for(ingest_opts(tiledb_config="vfs.s3.aws_secret_access_key=hunter2"), samples(2))
    text = "\n".join(describe_plan(plan, jobs_of(plan), "here"))
    assert "hunter2" not in text and "vfs.s3.aws_secret_access_key=***" in text
    assert "retried on host loss only" in text


def test_dry_run_commands_are_shell_quoted():
    """Pasted into a shell, each printed command is the job's own arguments: one word each, nothing run."""
    opts = IngestOptions(
        S3Uri("bkt", "my data/$(touch pwned)"), "samples.txt", S3Uri("meta"), scratch_path="/scratch dir"
    )
    plan = plan_for(opts, samples(2))
    commands = [line.strip() for line in describe_plan(plan, jobs_of(plan), "here") if "    tiledbvcf " in line]
    assert [shlex.split(command) for command in commands] == [["tiledbvcf", *task.args] for task in plan.tasks]
    assert "'s3://bkt/my data/$(touch pwned)'" in commands[0]


def export_plan(names: list[str], intervals: int, **changes) -> Plan:
    bed = read_bed("".join(f"chr1\t{i * 100}\t{i * 100 + 50}\n" for i in range(intervals)).encode(), "panel.bed")
    opts = options(ExportOptions, **changes)
    return plan_export(opts, names, bed, "export-r1", S3Uri("meta", "tiledbvcf-batch/runs/export-r1/"))


def test_a_merged_export_splits_the_intervals_never_more_jobs_than_intervals_each_with_every_name():
    plan = export_plan(["S3", "S1", "S2"], 2, merge=True, num_jobs=5)
    assert [task.name for task in plan.tasks] == ["tiledbvcf-export-1-of-2", "tiledbvcf-export-2-of-2"]
    assert plan.notes == ("2 intervals in the BED: submitting 2 jobs instead of 5",)
    for i, task in enumerate(plan.tasks):
        assert task.samples == ("S1", "S2", "S3") and task.manifest is not None
        assert task.manifest.lines == ("S1", "S2", "S3")
        args = list(task.args)
        assert args[args.index("--region-partition") + 1] == f"{i}:2" and "--merge" in args
        assert args[args.index("-o") + 1] == f"export-r1-part-000{i + 1}-of-0002.bcf"
        assert "--sample-partition" not in args
    assert len(export_plan(["S1"], 4, merge=True, num_jobs=3).tasks) == 3  # one sample, still a job per part


def test_a_tsv_export_splits_the_samples_one_table_per_job():
    plan = export_plan(["S1", "S2", "S3"], 5, output_format="t", tsv_fields=("SAMPLE", "POS"), num_jobs=2)
    assert [task.samples for task in plan.tasks] == [("S1", "S2"), ("S3",)]
    outputs = [task.args[list(task.args).index("-o") + 1] for task in plan.tasks]
    assert outputs == ["export-r1-part-0001-of-0002.tsv", "export-r1-part-0002-of-0002.tsv"]
    assert all("--region-partition" not in task.args and "--merge" not in task.args for task in plan.tasks)
