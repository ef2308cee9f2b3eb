"""Container-true resources: every tiledbvcf call sized from the job's --vcpus and --memory, not the host's."""

from __future__ import annotations

import pytest

from conftest import DATASET, options
from tiledbvcf_batch.commands import (
    batch_size_problems,
    delete_commands,
    export_budget_mb,
    largest_batch,
    option_value,
    register_command,
    store_budget_mb,
    store_budget_within,
    store_command,
    with_memory,
)
from tiledbvcf_batch.options import IngestOptions

MANIFEST = "s3://meta/m.txt"


def ingest(**changes: object) -> IngestOptions:
    return options(IngestOptions, **changes)


@pytest.mark.parametrize(
    "memory, budget",
    [
        (61440, 53760),  # the default: an eighth (7680 MiB) kept for the entrypoint and what store does not count
        (4096, 3584),  # the reserve is at least 512 MiB
        (1024, 512),
        (600, 512),  # store refuses -m below 512: a job this small still gets store's minimum
    ],
)
def test_store_budget_is_the_jobs_memory_less_a_reserve(memory, budget):
    assert store_budget_mb(memory) == budget
    assert option_value(store_command(ingest(memory=memory), MANIFEST), "store_budget") == str(budget)


def test_store_threads_are_the_threads_or_the_vcpus():
    assert store_command(ingest(vcpus=8), MANIFEST)[7:9] == ["-t", "8"]
    assert store_command(ingest(vcpus=8, threads=3), MANIFEST)[7:9] == ["-t", "3"]


def test_largest_batch_follows_store_s_split_of_its_budget():
    # writer.cc: TileDB takes min(m/2, 4096); 1 MiB a sample a thread must fit half of what is left.
    assert largest_batch(16, 53760) == (53760 - 4096) // 2 // 16 == 1552
    assert largest_batch(4, 1536) == (1536 - 768) // 2 // 4 == 96
    assert largest_batch(64, 512) == 2
    assert largest_batch(1000, 512) == 0


def test_a_batch_that_fits_is_accepted_and_one_that_does_not_is_refused_naming_the_largest():
    assert batch_size_problems(ingest(vcpus=4, memory=2048, sample_batch_size=96)) == []
    (problem,) = batch_size_problems(ingest(vcpus=4, memory=2048, sample_batch_size=97))
    assert problem == (
        "--sample-batch-size 97 needs 388 MiB of input buffers (4 threads x 97 samples x 1 MiB) and --memory 2048 "
        "leaves store room for 384 MiB: the largest that fits is 96; give a smaller --sample-batch-size, more "
        "--memory or fewer --threads"
    )
    # --threads, not --vcpus, decides the buffers: fewer threads fit a larger batch
    assert batch_size_problems(ingest(vcpus=4, threads=1, memory=2048, sample_batch_size=384)) == []


def test_store_s_own_default_batch_is_checked_too():
    (problem,) = batch_size_problems(ingest(vcpus=64, memory=1024))
    assert problem.startswith("tiledbvcf store's default batch of 10 needs 640 MiB")
    assert "the largest that fits is 2;" in problem
    (problem,) = batch_size_problems(ingest(vcpus=1000, memory=1024))
    assert "no batch fits" in problem


def test_legacy_store_has_no_budget_and_register_takes_no_resources():
    legacy = ingest(register=True, vcpus=1000, memory=1024)
    assert batch_size_problems(legacy) == []  # the legacy store sizes its buffers by other flags
    assert "-m" not in store_command(legacy, MANIFEST)
    assert register_command(legacy, MANIFEST) == ["register", "-u", DATASET, "-d", "/data", "-s", "1024000", "-f",
                                                  MANIFEST]  # fmt: skip


def test_delete_gets_its_budget_and_threads():
    ((_, command),) = delete_commands(ingest(vcpus=2, memory=4096), ["A"])
    assert command[command.index("-b") + 1] == str(export_budget_mb(4096)) == "1792"
    assert command[-1] == "sm.compute_concurrency_level=2,sm.io_concurrency_level=32"


def test_a_resubmitted_job_s_budget_is_derived_again_from_its_new_memory():
    store = store_command(ingest(memory=4096), MANIFEST)
    doubled = with_memory(store, 8192)
    assert option_value(doubled, "store_budget") == str(store_budget_mb(8192)) == "7168"
    assert [a for a in doubled if a != "7168"] == [a for a in store if a != "3584"]  # nothing else changes
    ((_, delete),) = delete_commands(ingest(memory=4096), ["A"])
    assert with_memory(delete, 8192)[delete.index("-b") + 1] == str(export_budget_mb(8192))
    create = ["create", "-u", DATASET]
    assert with_memory(create, 8192) == create


def test_a_store_asking_more_than_the_machine_has_is_lowered_to_store_s_own_share_of_it():
    store = store_command(ingest(memory=61440), MANIFEST)  # -m 53760 on a 24 GiB machine: store would refuse it
    assert option_value(store_budget_within(store, 24000), "store_budget") == "18000"
    assert store_budget_within(store, 64000) == store
    export = ["export", "-u", DATASET, "-b", "99999"]
    assert store_budget_within(export, 1000) == export


RESOURCES_LINE = (
    "Each store: 16 threads (-t) of its job's 16 vCPUs, a 53760 MiB budget (-m) of its 61440 MiB; batches of 10 "
    "samples take 160 MiB of input buffers (at most 1552 samples a batch fit)"
)


def test_the_plan_and_verbose_show_each_store_s_threads_and_memory(aws, samples_file, run_ingest):
    args = ["--dataset-uri", DATASET, "--samples", str(samples_file(2)), "--metadata-s3", "bucket2-name"]
    planned = run_ingest(*args, "--dry-run")
    assert planned.exit_code == 0, planned.stderr
    assert RESOURCES_LINE in planned.lines
    (store,) = [line for line in planned.lines if line.strip().startswith("tiledbvcf store")]
    assert " -t 16 " in store and " -m 53760 " in store
    verbose = run_ingest(*args, "--verbose")
    assert verbose.exit_code == 0, verbose.stderr
    assert RESOURCES_LINE in verbose.stderr.splitlines()
    assert aws.submitted[1]["containerOverrides"]["command"][7:9] == ["-t", "16"]
