"""batch-export.py against an in-process emulated AWS."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import DATASET, make_dataset
from tiledbvcf_batch.dataset import DatasetView

NAMES = [f"SampleName{i}" for i in range(1, 11)]


@pytest.fixture
def export_inputs(aws):
    make_dataset(aws, samples=(*NAMES, "SampleName11"))
    aws.s3.put_object(Bucket="my-bucketname", Key="10-names.txt", Body="\n".join(NAMES).encode() + b"\n")
    aws.s3.put_object(Bucket="my-bucketname", Key="bedfiles/sorted1000000.bed", Body=b"chr1\t0\t100\n")
    return [
        "--dest-s3", "s3://my-bucketname/bcf-exports/",
        "--samples", "s3://my-bucketname/10-names.txt",
        "--bed", "s3://my-bucketname/bedfiles/sorted1000000.bed",
    ]  # fmt: skip


def export_command(names: str, dest: str = "s3://my-bucketname/bcf-exports/") -> list[str]:
    """A job's command: its names file, and beside it in the run prefix the cleaned copy of the BED and the run's
    delivery file."""
    folder = names.rpartition("/")[0]
    return [
        "export", "-u", DATASET, "-f", names, "-R", f"{folder}/regions.bed", "-d", "/data", "--upload-dir", dest,
        "--delivery", f"{folder}/delivery.json", "-b", "7244",
        "--tiledb-config", "sm.compute_concurrency_level=4,sm.io_concurrency_level=32",
    ]  # fmt: skip


def names_of(aws, command: list[str]) -> list[str]:
    """The names file a job exports: its own partition's names."""
    bucket, _, key = command[command.index("-f") + 1].removeprefix("s3://").partition("/")
    return aws.text(bucket, key).splitlines()


@pytest.mark.parametrize("array_option", ["--dataset-uri", "--array"])
def test_spec_example_submits_one_job_per_partition(aws, export_inputs, run_export, array_option):
    result = run_export(array_option, DATASET, *export_inputs, "--num-jobs", "2")
    assert result.exit_code == 0, result.stderr
    assert len(result.lines) == 1
    ids = result.lines[0].removeprefix("Submitted export job(s) ").split()
    assert len(ids) == 2 and result.lines[0].startswith("Submitted export job(s) ")
    # The run record and each partition's names land in the destination bucket, outside its prefix.
    run_id = aws.submitted[0]["tags"]["tiledbvcf-batch-run"]
    prefix = f"s3://my-bucketname/tiledbvcf-batch/runs/{run_id}/"
    for i, job in enumerate(aws.submitted):
        assert job["jobName"] == f"tiledbvcf-export-{i + 1}-of-2"
        assert job["containerOverrides"] == {
            "command": export_command(f"{prefix}export-names-{i + 1:04d}.txt"),
            "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "15000"}],
        }
        assert job["jobQueue"] == "tiledbvcf-job-queue" and job["jobDefinition"] == "tiledbvcf-24h"
        assert "dependsOn" not in job
    # Sorted names cut into contiguous partitions, as tiledbvcf's --sample-partition would: one file each.
    assert [names_of(aws, job["containerOverrides"]["command"]) for job in aws.submitted] == [
        sorted(NAMES)[:5],
        sorted(NAMES)[5:],
    ]
    described = aws.describe(ids)
    assert [d["container"]["command"] for d in described] == [j["containerOverrides"]["command"] for j in aws.submitted]
    record = json.loads(aws.text("my-bucketname", f"tiledbvcf-batch/runs/{run_id}/run.json"))
    assert record["jobs"][0]["samples"] == sorted(NAMES)[:5]
    assert record["jobs"][1]["samples"] == sorted(NAMES)[5:]
    # What every job delivers beyond tiledbvcf's files: indexes, and its part of the run's manifest.
    assert json.loads(aws.text("my-bucketname", f"tiledbvcf-batch/runs/{run_id}/delivery.json")) == {
        "run_id": run_id,
        "jobs": 2,
        "output_format": "b",
        "index": "csi",
        "manifest": f"s3://my-bucketname/bcf-exports/manifest-{run_id}.tsv",
    }


def test_never_more_jobs_than_samples(aws, export_inputs, run_export):
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "25")
    assert result.exit_code == 0, result.stderr
    assert len(result.lines[0].split()) == 3 + 10
    assert "10 samples to export: submitting 10 jobs instead of 25" in result.stderr
    assert [names_of(aws, job["containerOverrides"]["command"]) for job in aws.submitted] == [
        [n] for n in sorted(NAMES)
    ]


def test_output_format_retries_and_config(aws, export_inputs, run_export):
    result = run_export(
        "--array", DATASET, *export_inputs, "--output-format", "z", "--retries", "5",
        "--tiledb-config", "vfs.s3.region=us-east-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (job,) = aws.submitted
    names = job["containerOverrides"]["command"][4]
    assert job["containerOverrides"]["command"] == [
        *export_command(names)[:-4], "-O", "z", "-b", "7244",
        "--tiledb-config", "sm.compute_concurrency_level=4,sm.io_concurrency_level=32,vfs.s3.region=us-east-1",
    ]  # fmt: skip
    assert job["retryStrategy"] == {"attempts": 5}


def test_jobs_are_sized_to_their_resources_and_a_legacy_dataset_gets_the_legacy_settings(
    aws, export_inputs, run_export, fake_datasets
):
    sized = run_export("--array", DATASET, *export_inputs, "--vcpus", "16", "--memory", "61440")
    assert sized.exit_code == 0, sized.stderr
    assert aws.submitted[0]["containerOverrides"]["command"][-4:] == [
        "-b", "30464", "--tiledb-config", "sm.compute_concurrency_level=16,sm.io_concurrency_level=32",
    ]  # fmt: skip
    fake_datasets[DATASET] = DatasetView(DATASET, None, "a legacy v2/v3 dataset: its samples are numbered", legacy=True)
    legacy = run_export("--array", DATASET, *export_inputs)
    assert legacy.exit_code == 0, legacy.stderr
    assert aws.submitted[-1]["containerOverrides"]["command"][-2:] == ["-b", "6732"]  # past its 1 GiB tile cache
    assert "the names to export and the BED's contigs are not checked before the jobs run" in legacy.stderr


def test_wait_checks_every_file_landed(aws, export_inputs, run_export):
    for name in NAMES:
        aws.s3.put_object(Bucket="my-bucketname", Key=f"bcf-exports/{name}.bcf", Body=b"BCF")
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "2", "--wait")
    assert result.exit_code == 0, result.stderr
    assert "- 2 / 2 jobs succeeded" in result.lines
    assert "MISSING" not in result.stderr


def test_wait_reports_missing_files_even_when_jobs_succeeded(aws, export_inputs, run_export):
    """Today's tiledbvcf exits 0 from --upload-dir s3:// without uploading: never call that success."""
    for name in NAMES[:7]:
        aws.s3.put_object(Bucket="my-bucketname", Key=f"bcf-exports/{name}.bcf", Body=b"BCF")
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "2", "--wait")
    assert result.exit_code == 1
    assert "- 2 / 2 jobs succeeded" in result.lines
    assert result.lines[-1] == (
        "MISSING 3 of 10 exported files at s3://my-bucketname/bcf-exports/: SampleName10, SampleName8, SampleName9"
    )


# The checks of options are unit tests (test_inputs.py); these need AWS, or are click's own. One of them,
# --num-jobs 0, shows the wiring of every problem found before any AWS call.
BAD_EXPORTS = [
    (["--bed", "s3://my-bucketname/missing.bed"], "--bed: s3://my-bucketname/missing.bed does not exist"),
    (["--samples", "s3://my-bucketname/missing.txt"], "--samples: s3://my-bucketname/missing.txt does not exist"),
    (["--dest-s3", "s3://nope-bucket/x/"], "--dest-s3: bucket nope-bucket does not exist"),
    (["--num-jobs", "0"], "--num-jobs is 0: it must be at least 1"),
    (["--job-queue", "nope"], "--job-queue nope: no such job queue"),
    (["--output-format", "x"], "'x' is not one of"),
    (["--output-format", "t"], "--output-format t needs --tsv-fields: name the table's columns"),
    (["--tsv-fields", "SAMPLE,POS"], "--tsv-fields goes with --output-format t only, not b"),
    (["--output-format", "t", "--tsv-fields", "SAMPLE,END,Q:FOO,I:,F:DP"],
     "--tsv-fields names 'END', 'Q:FOO', 'I:': the fields are SAMPLE, ID, REF, ALT, QUAL, POS, CHR, FILTER, "
     "I:<info field>, F:<format field>, Q:POS, Q:END or Q:LINE, comma-separated (case sensitive)"),
]  # fmt: skip


def test_merge_with_a_table_and_a_table_without_fields_are_refused_at_once(aws, export_inputs, run_export):
    result = run_export(*export_inputs, "--array", DATASET, "--output-format", "t", "--merge")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: --output-format t needs --tsv-fields: name the table's columns, e.g. --tsv-fields "
        "SAMPLE,CHR,POS,REF,ALT,F:GT",
        "Error: --merge combines BCF/VCF files: -O t already writes one table per job of its samples; leave --merge "
        "out, or choose --output-format b, u, z or v",
    ]


@pytest.mark.parametrize("change, message", BAD_EXPORTS, ids=[m for _, m in BAD_EXPORTS])
def test_bad_export_input_is_one_line_exit_2(aws, export_inputs, run_export, change, message):
    args = dict(zip(export_inputs[::2], export_inputs[1::2], strict=True))
    args["--array"] = DATASET
    args.update(dict(zip(change[::2], change[1::2], strict=True)))
    result = run_export(*[x for pair in args.items() for x in pair])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert aws.submitted == [] and aws.keys("my-bucketname", "tiledbvcf-batch/") == []


@pytest.mark.parametrize(
    "body, message",
    [(b"\n \n", "lists no sample names"), (b"A\nB\nA\n", "line 3 repeats sample 'A' of line 1")],
)
def test_bad_names_file(aws, export_inputs, run_export, body, message):
    aws.s3.put_object(Bucket="my-bucketname", Key="10-names.txt", Body=body)
    result = run_export("--array", DATASET, *export_inputs)
    assert result.exit_code == 2 and message in result.stderr
    assert aws.submitted == []


def test_names_the_dataset_does_not_hold_are_all_refused_up_front(aws, export_inputs, run_export, fake_datasets):
    fake_datasets[DATASET] = frozenset(NAMES[2:9])
    result = run_export("--dataset-uri", DATASET, *export_inputs, "--num-jobs", "2")
    assert result.exit_code == 2 and aws.submitted == [] and aws.keys("my-bucketname", "bcf-exports") == []
    assert result.stderr.splitlines() == [
        f"Error: --samples names 3 samples that dataset {DATASET} does not hold: SampleName1, SampleName2, "
        f"SampleName10. Fix the names file (python batch-runs.py dataset {DATASET} --samples lists what it holds)"
    ]
    fake_datasets[DATASET] = "TileDB: legacy"  # unreadable: a warning, and the jobs find out
    unchecked = run_export("--dataset-uri", DATASET, *export_inputs, "--num-jobs", "2")
    assert unchecked.exit_code == 0 and len(aws.submitted) == 2
    assert f"WARNING: cannot read the samples of dataset {DATASET} (TileDB: legacy): the names to export" in (
        unchecked.stderr
    )


# -- The BED: checked and cleaned before anything is submitted; the jobs read the cleaned copy ------------------

BED_URI = "s3://my-bucketname/bedfiles/sorted1000000.bed"
UCSC_BED = b'browser position chr1:1-200\ntrack name="panel"\n# exons\nchr1 100 200 GENE1 0 +\nchr2  0   50\n'


def put_bed(aws, body: bytes) -> None:
    aws.s3.put_object(Bucket="my-bucketname", Key="bedfiles/sorted1000000.bed", Body=body)


def nothing_submitted(aws) -> bool:
    return aws.submitted == [] and aws.keys("my-bucketname", "tiledbvcf-batch/") == []


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_a_ucsc_bed_is_uploaded_cleaned_and_every_job_reads_the_copy(aws, export_inputs, run_export, compress):
    put_bed(aws, gzip.compress(UCSC_BED) if compress else UCSC_BED)
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "2")
    assert result.exit_code == 0, result.stderr
    run_id = aws.submitted[0]["tags"]["tiledbvcf-batch-run"]
    copy = f"s3://my-bucketname/tiledbvcf-batch/runs/{run_id}/regions.bed"
    assert aws.text("my-bucketname", f"tiledbvcf-batch/runs/{run_id}/regions.bed") == "chr1\t100\t200\nchr2\t0\t50\n"
    commands = [job["containerOverrides"]["command"] for job in aws.submitted]
    assert [command[command.index("-R") + 1] for command in commands] == [copy, copy]
    assert (
        f"--bed {BED_URI}: dropped 1 browser line, 1 track line, 1 comment line; the jobs read the cleaned copy {copy}"
    ) in result.stderr.splitlines()
    record = json.loads(aws.text("my-bucketname", f"tiledbvcf-batch/runs/{run_id}/run.json"))
    assert record["options"]["bed"] == BED_URI  # the user's file, as given; left as it was
    assert aws.s3.get_object(Bucket="my-bucketname", Key="bedfiles/sorted1000000.bed")["Body"].read() != b""


def test_the_dry_run_names_the_cleaned_copy_and_uploads_nothing(aws, export_inputs, run_export):
    put_bed(aws, UCSC_BED)
    result = run_export("--array", DATASET, *export_inputs, "--dry-run")
    assert result.exit_code == 0, result.stderr
    (line,) = [line for line in result.lines if line.startswith("Regions: ")]
    assert line.startswith(f"Regions: 2 intervals of --bed {BED_URI}, cleaned copy s3://my-bucketname/tiledbvcf-")
    assert line.endswith("/regions.bed") and nothing_submitted(aws)


BED_DEFECTS = {
    "empty": (b"", f"--bed {BED_URI} holds no interval: tiledbvcf fails on an empty BED; give at least one 'chrom "
                   "start end' line"),
    "headers only": (b"track name=x\n\n", f"--bed {BED_URI} holds no interval (dropped: 1 track line, 1 blank "
                                           "line)"),
    "2 columns": (b"chr1\t0\t10\nchr1 20\n", f"--bed {BED_URI} line 2 'chr1 20': 2 columns, a BED line needs 3"),
    "not a number": (b"chr1\tx\t10\n", f"--bed {BED_URI} line 1 'chr1\\tx\\t10': start 'x' is not a whole number"),
    "negative": (b"chr1\t-1\t10\n", f"--bed {BED_URI} line 1 'chr1\\t-1\\t10': start -1 is negative"),
    "zero-length": (b"chr1\t0\t10\nchr1\t300\t300\n", f"--bed {BED_URI} line 2 'chr1\\t300\\t300': the interval "
                                                      "is empty"),
    "reversed": (b"chr1\t500\t400\n", f"--bed {BED_URI} line 1 'chr1\\t500\\t400': start 500 is after end 400"),
    "no known contig": (b"1\t0\t100\nMT 0 10\n", f"--bed {BED_URI}: none of its contigs is in dataset {DATASET} (the "
                        "contigs of its samples' VCF headers): 1, MT; the export would find no record. The dataset "
                        "spells them chr1: rename them"),
}  # fmt: skip


@pytest.mark.parametrize("body, problem", BED_DEFECTS.values(), ids=BED_DEFECTS.keys())
def test_each_bed_defect_is_refused_naming_its_lines_before_anything_is_submitted(
    aws, export_inputs, run_export, body, problem
):
    put_bed(aws, body)
    result = run_export("--array", DATASET, *export_inputs)
    assert result.exit_code == 2 and nothing_submitted(aws)
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {problem}"), line


def test_every_problem_of_the_bed_and_the_names_is_listed_at_once(aws, export_inputs, run_export):
    put_bed(aws, b"track name=x\nchr1 0 10\nchr1 5 5\nchr2 9 3\nchr3\n")
    aws.s3.put_object(Bucket="my-bucketname", Key="10-names.txt", Body=b"SampleName1\nSampleName1\n")
    result = run_export("--array", DATASET, *export_inputs)
    assert result.exit_code == 2 and nothing_submitted(aws)
    assert [line.split(": ")[1] for line in result.stderr.splitlines()] == [
        f"--bed {BED_URI} line 3 'chr1 5 5'",
        f"--bed {BED_URI} line 4 'chr2 9 3'",
        f"--bed {BED_URI} line 5 'chr3'",
        "s3://my-bucketname/10-names.txt line 2 repeats sample 'SampleName1' of line 1",
    ]


def test_contigs_the_dataset_does_not_know_are_named_in_one_warning(aws, export_inputs, run_export):
    put_bed(aws, b"chr1\t0\t100\nchrUn_KI270302v1\t0\t50\nHLA-A*01:01:01:01\t0\t10\nchr2\t0\t10\n")
    result = run_export("--array", DATASET, *export_inputs)
    assert result.exit_code == 0, result.stderr
    assert len(aws.submitted) == 1
    assert (
        f"WARNING: --bed {BED_URI}: 2 of its 4 contigs are not in dataset {DATASET} (the contigs of its samples' VCF "
        "headers): chrUn_KI270302v1, HLA-A*01:01:01:01; 2 of its 4 intervals are on them and export nothing"
    ) in result.stderr.splitlines()


def test_a_run_rolled_back_deletes_its_cleaned_bed_too(aws, export_inputs, run_export):
    put_bed(aws, UCSC_BED)
    aws.fail_call("batch.SubmitJob", "ServerException", after=1)
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "2")
    assert result.exit_code == 1
    # The cleaned BED, the delivery file, 2 names files, the run record and its line in the dataset's exports.
    assert (
        "terminated the 1 job(s) already submitted and deleted 6 uploaded file(s); job tiledbvcf-export-2-of-2, whose "
        "submission was under way, was looked for and not found; nothing is left behind"
    ) in result.stderr
    assert aws.keys("my-bucketname", "tiledbvcf-batch/") == []


def test_help_shows_the_documented_options():
    from click.testing import CliRunner

    from conftest import EXPORT

    text = CliRunner().invoke(EXPORT.main, ["--help"]).output
    assert "Exports BCF sample data from a TileDB array via AWS Batch." in text
    for option in (
        "--array, --dataset-uri URI", "--dest-s3 URI", "--samples URI", "--bed URI", "--job-queue NAME",
        "--job-definition NAME", "--attributes CSV", "--num-jobs N", "--region NAME",
    ):  # fmt: skip
        assert option in text
