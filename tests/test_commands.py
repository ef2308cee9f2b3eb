"""The tiledbvcf command lines every job runs: flags, their order, the legacy CLI's forms, chunks, secrets hidden."""

from __future__ import annotations

import pytest

from conftest import DATASET, options
from tiledbvcf_batch.commands import (
    CONSOLIDATION_STEPS,
    DELETE_NAMES_CHARS,
    consolidation_commands,
    count_only_command,
    create_command,
    delete_commands,
    delivers,
    export_command,
    redact_command,
    register_command,
    scratch_dir,
    store_command,
    with_own_scratch,
)
from tiledbvcf_batch.options import ExportOptions, IngestOptions

MANIFEST = "s3://bucket2-name/tiledbvcf-batch/runs/r1/ingest-b001-j0001.txt"
SECRET = "vfs.s3.region=us-east-1,vfs.s3.aws_secret_access_key=TOPSECRET"


def test_creation_passes_the_attributes_and_the_tiledb_config_last():
    opts = options(IngestOptions, attributes=("fmt_DP", "info_AF"), tiledb_config=SECRET)
    assert create_command(opts) == ["create", "-u", DATASET, "-a", "fmt_DP,info_AF", "--tiledb-config", SECRET]
    assert create_command(options(IngestOptions)) == ["create", "-u", DATASET]


def test_store_threads_default_to_the_vcpus_and_sample_batches_are_passed_on():
    command = store_command(options(IngestOptions, vcpus=4, sample_batch_size=10, tiledb_config="a=b"), MANIFEST)
    # -m: the default 61440 MiB less an eighth (7680) for the entrypoint and what store's budget leaves out
    assert command == [
        "store", "-u", DATASET, "-d", "/data", "-s", "1024000", "-t", "4", "-f", MANIFEST, "--remove-sample-file",
        "-m", "53760", "--resume", "-e", "10", "--tiledb-config", "a=b",
    ]  # fmt: skip


def test_scratch_size_0_streams_the_samples_without_a_scratch_directory():
    command = store_command(options(IngestOptions, scratch_size=0), MANIFEST)
    assert "-d" not in command and "-s" not in command
    assert "-d" not in register_command(options(IngestOptions, register=True, scratch_size=0), MANIFEST)


def test_the_legacy_cli_registers_without_config_and_stores_without_resume():
    legacy = options(IngestOptions, register=True, tiledb_config="a=b", scratch_path="/scratch", scratch_size=10)
    assert register_command(legacy, MANIFEST) == ["register", "-u", DATASET, "-d", "/scratch", "-s", "10", "-f",
                                                  MANIFEST]  # fmt: skip
    store = store_command(legacy, MANIFEST)
    assert "--resume" not in store and "--remove-sample-file" in store and store[-2:] == ["--tiledb-config", "a=b"]


def test_consolidation_is_four_utils_commands_in_tiledb_vcfs_order():
    commands = consolidation_commands(options(IngestOptions, tiledb_config="a=b"))
    assert [command[:3] for command in commands] == [["utils", action, what] for action, what in CONSOLIDATION_STEPS]
    assert [command[1:3] for command in commands] == [
        ["consolidate", "fragment_meta"], ["consolidate", "commits"], ["vacuum", "fragment_meta"], ["vacuum", "commits"]
    ]  # fmt: skip
    # utils has no thread flag: the job's 16 vCPUs (the default) go in the TileDB config, the user's keys after
    threads = "sm.compute_concurrency_level=16,sm.io_concurrency_level=32"
    assert all(command[3:] == ["-u", DATASET, "--tiledb-config", f"{threads},a=b"] for command in commands)


def test_deletions_are_cut_to_fit_a_request_and_keep_every_name_once_in_order():
    names = [f"SAMPLE-{i:05d}-with-a-rather-long-name" for i in range(1000)]  # 36,999 characters with the commas
    chunks = delete_commands(options(IngestOptions, tiledb_config="a=b"), names)
    assert len(chunks) == 5
    assert [name for chunk, _ in chunks for name in chunk] == names
    for chunk, command in chunks:
        assert command == ["delete", "-u", DATASET, "-s", ",".join(chunk), "-b", "30464", "--tiledb-config",
                           f"{THREADS_16},a=b"]  # fmt: skip
        assert len(command[4]) <= DELETE_NAMES_CHARS
    small = options(IngestOptions, vcpus=2, memory=4096)  # -b: half of the memory past export's 512 MB reserve
    assert delete_commands(small, ["A", "B"]) == [
        (["A", "B"], ["delete", "-u", DATASET, "-s", "A,B", "-b", "1792", "--tiledb-config",
                      "sm.compute_concurrency_level=2,sm.io_concurrency_level=32"])
    ]  # fmt: skip
    assert delete_commands(options(IngestOptions), []) == []


NAMES = "s3://bucket2-name/tiledbvcf-batch/runs/r1/export-1.txt"
REGIONS = "s3://bucket2-name/tiledbvcf-batch/runs/r1/regions.bed"  # the cleaned copy, not --bed as given
THREADS_4 = "sm.compute_concurrency_level=4,sm.io_concurrency_level=32"  # a job of 4 vCPUs (the default)
THREADS_16 = "sm.compute_concurrency_level=16,sm.io_concurrency_level=32"  # an ingestion job's default


def test_export_names_its_own_names_file_and_passes_the_format_only_when_not_the_default():
    command = export_command(options(ExportOptions), NAMES, REGIONS)
    assert command == [
        "export", "-u", DATASET, "-f", NAMES, "-R", REGIONS, "-d", "/data",
        "--upload-dir", "s3://my-bucketname/bcf-exports/", "-b", "7244", "--tiledb-config", THREADS_4,
    ]  # fmt: skip
    assert "--sample-partition" not in command  # one typo would fail every partition
    vcf = export_command(options(ExportOptions, output_format="v", tiledb_config="a=b"), NAMES, REGIONS)
    assert vcf[-6:] == ["-O", "v", "-b", "7244", "--tiledb-config", THREADS_4 + ",a=b"]


@pytest.mark.parametrize(
    "memory, budget",
    [
        (15000, "7244"),  # the default job: half of what is left past the 512 MiB reserve
        (61440, "30464"),  # an ingestion-sized job: not tiledbvcf's 2048 whatever the job has
        (2048, "768"),  # smaller than tiledbvcf's default budget: the default would not fit beside the rest
        (600, "128"),  # too small for any share: the least budget tiledbvcf runs with
    ],
)
def test_the_export_budget_follows_the_jobs_memory(memory, budget):
    command = export_command(options(ExportOptions, memory=memory), NAMES, REGIONS)
    assert command[command.index("-b") + 1] == budget


def test_the_export_threads_follow_the_jobs_vcpus_and_io_threads_never_go_below_32():
    big = export_command(options(ExportOptions, vcpus=64), NAMES, REGIONS)
    assert big[-2:] == ["--tiledb-config", "sm.compute_concurrency_level=64,sm.io_concurrency_level=64"]
    one = export_command(options(ExportOptions, vcpus=1), NAMES, REGIONS)
    assert one[-2:] == ["--tiledb-config", "sm.compute_concurrency_level=1,sm.io_concurrency_level=32"]


def test_the_users_tiledb_config_is_kept_and_wins_over_the_export_threads():
    given = "vfs.s3.region=us-east-1, sm.io_concurrency_level=8,sm.compute_concurrency_level=2"
    command = export_command(options(ExportOptions, tiledb_config=given), NAMES, REGIONS)
    assert command[-2:] == ["--tiledb-config", given]  # every key is the user's: none of ours is left
    partly = export_command(options(ExportOptions, tiledb_config="sm.io_concurrency_level=8"), NAMES, REGIONS)
    assert partly[-1] == "sm.compute_concurrency_level=4,sm.io_concurrency_level=8"
    assert partly[-4:-2] == ["-b", "7244"]  # -b is not a config key: the user's config leaves it alone


def test_the_legacy_export_gets_a_budget_past_its_tile_cache_and_no_thread_settings():
    legacy = export_command(options(ExportOptions, legacy=True), NAMES, REGIONS)
    assert legacy[-4:] == ["--upload-dir", "s3://my-bucketname/bcf-exports/", "-b", "6732"]  # (15000-512-1024)/2
    configured = export_command(options(ExportOptions, legacy=True, tiledb_config="a=b"), NAMES, REGIONS)
    assert configured[-4:] == ["-b", "6732", "--tiledb-config", "a=b"]  # the user's config as given, nothing added


def test_secrets_are_hidden_in_a_printed_command_and_nothing_else_changes():
    command = store_command(options(IngestOptions, tiledb_config=SECRET), MANIFEST)
    shown = redact_command(command)
    assert shown[-1] == "vfs.s3.region=us-east-1,vfs.s3.aws_secret_access_key=***"
    assert shown[:-1] == command[:-1] and command[-1] == SECRET  # the job still gets the secret
    assert redact_command(["--tiledb-config"]) == ["--tiledb-config"]  # a dangling flag: nothing to hide


@pytest.mark.parametrize(
    "args, own",
    [
        (["export", "-u", DATASET, "-d", "/data", "--upload-dir", "s3://b/out/"], "/data/own"),
        (["export", "--output-dir=/data", "--upload-dir=s3://b/out/"], "/data/own"),
        (["store", "-u", DATASET, "-d", "/data", "-f", "m.txt"], "/data/own"),
        (["store", "-u", DATASET, "-f", "m.txt"], None),  # streams: no scratch to share
    ],
)
def test_a_job_gets_a_scratch_directory_of_its_own_in_either_spelling(args, own):
    found = scratch_dir(args)
    assert found == (None if own is None else "/data")
    moved = with_own_scratch(args, "/data/own")
    assert scratch_dir(moved) == own and len(moved) == len(args)


def test_the_entrypoint_delivers_exports_that_name_their_delivery_and_older_ones_to_s3():
    assert delivers(["export", "--upload-dir", "/local/out", "--delivery", "/meta/runs/r1/delivery.json"])
    assert delivers(["export", "--upload-dir", "s3://b/out/"])  # a job of an older client: uploaded as before
    assert not delivers(["export", "--upload-dir", "/local/out"])
    assert not delivers(["store", "--upload-dir", "s3://b/out/", "--delivery", "x"])
    assert not delivers([])


def test_an_export_names_its_delivery_file_and_its_count_asks_only_the_absent_samples():
    opts = options(ExportOptions, output_format="z", tiledb_config="vfs.s3.region=us-east-1")
    args = export_command(opts, "s3://m/runs/r1/export-names-0001.txt", "s3://m/runs/r1/regions.bed",
                          "s3://m/runs/r1/delivery.json")  # fmt: skip
    assert args[args.index("--delivery") + 1] == "s3://m/runs/r1/delivery.json"
    config = f"{THREADS_4},vfs.s3.region=us-east-1"
    assert args[-2:] == ["--tiledb-config", config]  # it swallows what follows: last
    # The same query, budget and threads, of the absent samples' names only, counting: no file, no -O.
    assert count_only_command(args, "/tmp/absent.txt") == [
        "export", "-u", "s3://my-bucketname/test-vcf-dataset", "-f", "/tmp/absent.txt",
        "-R", "s3://m/runs/r1/regions.bed", "-b", "7244", "-c", "--tiledb-config", config,
    ]  # fmt: skip


def test_a_tsv_export_names_its_fields_and_its_one_table_and_its_count_drops_them():
    opts = options(ExportOptions, output_format="t", tsv_fields=("SAMPLE", "POS", "F:GT", "Q:LINE"))
    args = export_command(opts, "s3://m/runs/r1/export-names-0002.txt", "s3://m/runs/r1/regions.bed",
                          "s3://m/runs/r1/delivery.json", "r1-part-0002-of-0002.tsv")  # fmt: skip
    assert args == [
        "export", "-u", DATASET, "-f", "s3://m/runs/r1/export-names-0002.txt", "-R", "s3://m/runs/r1/regions.bed",
        "-d", "/data", "--upload-dir", "s3://my-bucketname/bcf-exports/", "--delivery", "s3://m/runs/r1/delivery.json",
        "-O", "t", "-t", "SAMPLE,POS,F:GT,Q:LINE", "-o", "r1-part-0002-of-0002.tsv",
        "-b", "7244", "--tiledb-config", THREADS_4,
    ]  # fmt: skip
    assert count_only_command(args, "/tmp/all.txt") == [
        "export", "-u", DATASET, "-f", "/tmp/all.txt", "-R", "s3://m/runs/r1/regions.bed", "-b", "7244", "-c",
        "--tiledb-config", THREADS_4,
    ]  # fmt: skip


def test_a_merged_export_names_its_region_partition_and_file_and_its_count_keeps_the_partition():
    opts = options(ExportOptions, output_format="z", merge=True, tiledb_config="a=b")
    args = export_command(opts, "s3://m/runs/r1/export-names-0001.txt", "s3://m/runs/r1/regions.bed",
                          "s3://m/runs/r1/delivery.json", "r1-part-0001-of-0003.vcf.gz", (0, 3))  # fmt: skip
    assert args[args.index("--delivery") + 2 :] == [
        "-O", "z", "--merge", "--region-partition", "0:3", "-o", "r1-part-0001-of-0003.vcf.gz",
        "-b", "7244", "--tiledb-config", f"{THREADS_4},a=b",
    ]  # fmt: skip
    assert count_only_command(args, "/tmp/all.txt") == [
        "export", "-u", DATASET, "-f", "/tmp/all.txt", "-R", "s3://m/runs/r1/regions.bed",
        "--region-partition", "0:3", "-b", "7244", "-c", "--tiledb-config", f"{THREADS_4},a=b",
    ]  # fmt: skip
