"""User input parsed and checked before any AWS call."""

from __future__ import annotations

import pytest

from tiledbvcf_batch.commands import redact_config
from tiledbvcf_batch.inputs import InputError, ingest_options, parse_metadata_location, parse_sample_names
from tiledbvcf_batch.storage import S3Uri


@pytest.mark.parametrize(
    "text, expected",
    [
        ("bucket2-name", S3Uri("bucket2-name", "")),
        ("s3://bucket2-name", S3Uri("bucket2-name", "")),
        ("s3://bucket2-name/a/b", S3Uri("bucket2-name", "a/b/")),
    ],
)
def test_metadata_location(text, expected):
    assert parse_metadata_location(text) == expected


def test_redaction_hides_secret_values_only():
    assert (
        redact_config("vfs.s3.region=x,vfs.s3.aws_secret_access_key=s,vfs.s3.aws_session_token=t")
        == "vfs.s3.region=x,vfs.s3.aws_secret_access_key=***,vfs.s3.aws_session_token=***"
    )


def test_option_fields_keep_the_flag_names(tmp_path):
    samples = tmp_path / "s.txt"
    samples.write_text("s3://bkt/a.bcf\n")
    flags = {"dataset_uri": "s3://bkt/ds/", "samples": str(samples), "metadata_s3": "meta", "scratch_size": 0,
             "vcpus": 8, "memory": 100, "job_queue": "q", "job_definition": "jd", "wait": True}  # fmt: skip
    opts, parsed = ingest_options(flags)
    assert (opts.dataset_uri, opts.samples, opts.metadata_s3) == ("s3://bkt/ds", str(samples), S3Uri("meta"))
    assert (opts.scratch_size, opts.vcpus, opts.memory, opts.store_threads) == (0, 8, 100, 8)
    assert [s.uri for s in parsed] == ["s3://bkt/a.bcf"]


def test_every_input_problem_at_once(tmp_path):
    flags = {"dataset_uri": "/local", "samples": str(tmp_path / "none.txt"), "metadata_s3": "a/b", "num_jobs": 0,
             "retries": 11, "attributes": "DP", "tiledb_config": "x", "job_queue": "q",
             "job_definition": "jd"}  # fmt: skip
    with pytest.raises(InputError) as raised:
        ingest_options(flags)
    assert len(raised.value.problems) == 7


def test_names_file_problems():
    with pytest.raises(InputError, match="line 3 repeats sample 'A' of line 1"):
        parse_sample_names("A\nB\nA\n", "names")


def test_queue_and_definition_are_required_for_batch_only(tmp_path):
    samples = tmp_path / "s.txt"
    samples.write_text(f"{tmp_path}/a.bcf\n")
    flags = {"dataset_uri": str(tmp_path / "ds"), "samples": str(samples), "metadata_s3": str(tmp_path)}
    with pytest.raises(InputError) as raised:
        ingest_options(flags)
    assert raised.value.problems[:2] == [
        "Missing option '--job-queue'. (see --help)",
        "Missing option '--job-definition'. (see --help)",
    ]
    assert "is not an S3 URI" in raised.value.problems[2]  # Batch mode refuses local paths
    opts, parsed = ingest_options({**flags, "executor": "local"})
    assert opts.dataset_uri == str(tmp_path / "ds") and parsed[0].uri == str(tmp_path / "a.bcf")
