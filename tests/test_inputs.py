"""User input parsed and checked before any AWS call: pure, no emulator.

The checks of options and files live here; one command-line test per script (test_ingest.py,
test_export.py) shows the wiring: exit 2, one line per problem, nothing uploaded or submitted.
"""

from __future__ import annotations

import dataclasses

import pytest

import flags
from conftest import text_file
from tiledbvcf_batch.commands import redact_config
from tiledbvcf_batch.executors.base import Asked
from tiledbvcf_batch.executors.local_setup import LocalOptions
from tiledbvcf_batch.inputs import InputError, Problems, parse_metadata_location, parse_sample_names, parse_samples
from tiledbvcf_batch.options import ExportOptions, IngestOptions, options_from
from tiledbvcf_batch.storage import LocalPath, S3Uri


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


def ingest_given(tmp_path, **changes):
    """batch-ingest.py's command line as click gives it (by parameter name), with a good samples file."""
    samples = tmp_path / "s.txt"
    samples.write_text("s3://bkt/a.bcf\n")
    given = {"dataset_uri": "s3://bkt/ds/", "samples": str(samples), "metadata_s3": "meta", "job_queue": "q",
             "job_definition": "jd"}  # fmt: skip
    return {**given, **changes}


def problems_of(given, request=flags.ingest_request):
    with pytest.raises(InputError) as raised:
        request(given, flags.Tail)
    return raised.value.problems


def test_option_fields_keep_the_flag_names(tmp_path):
    given = ingest_given(tmp_path, scratch_size=0, vcpus=8, memory=100, wait=True)
    request, parsed = flags.ingest_request(given, flags.Tail)
    opts = request.opts
    assert (opts.dataset_uri, opts.samples, opts.metadata_s3) == (S3Uri("bkt", "ds"), given["samples"], S3Uri("meta"))
    assert str(opts.dataset_uri) == "s3://bkt/ds"  # the spelling commands, records and the index hash see
    assert (opts.scratch_size, opts.vcpus, opts.memory, opts.store_threads) == (0, 8, 100, 8)
    assert [s.uri for s in parsed] == ["s3://bkt/a.bcf"]
    assert (request.executor.job_queue, request.where.executor, request.aws.region) == ("q", "batch", None)


def test_every_input_problem_at_once(tmp_path):
    given = ingest_given(tmp_path, dataset_uri="/local", samples=str(tmp_path / "none.txt"), metadata_s3="a/b",
                         num_jobs=0, retries=11, attributes="DP", tiledb_config="x")  # fmt: skip
    assert len(problems_of(given)) == 7


def test_names_file_problems():
    with pytest.raises(InputError, match="line 3 repeats sample 'A' of line 1"):
        parse_sample_names("A\nB\nA\n", "names")


def test_every_problem_of_a_samples_file():
    with pytest.raises(InputError) as raised:
        parse_samples(["http://x/a.bcf", "s3://bucket-name/b.bcf", "s3://bucket-name/b.bcf"], "f")
    assert len(raised.value.problems) == 2
    assert "line 1" in raised.value.problems[0] and "line 3 repeats line 2" in raised.value.problems[1]


def test_queue_and_definition_are_required_for_batch_only(tmp_path):
    samples = tmp_path / "s.txt"
    samples.write_text(f"{tmp_path}/a.bcf\n")
    given = {"dataset_uri": str(tmp_path / "ds"), "samples": str(samples), "metadata_s3": str(tmp_path),
             "job_queue": None, "job_definition": None}  # fmt: skip
    problems = problems_of(given)
    assert problems[:2] == [
        "Missing option '--job-queue'. (see --help)",
        "Missing option '--job-definition'. (see --help)",
    ]
    assert "is not an S3 URI" in problems[2]  # Batch mode refuses local paths
    request, parsed = flags.ingest_request({**given, "executor": "local", "max_parallel": 2}, flags.Tail)
    assert request.opts.dataset_uri == LocalPath(str(tmp_path / "ds")) and parsed[0].uri == str(tmp_path / "a.bcf")
    assert request.executor == LocalOptions(max_parallel=2)  # the executor's own options, typed
    assert request.asked() == Asked(vcpus=16, register=False)


BAD_INGEST = [
    (lambda p: {"samples": str(p / "none.txt")}, "--samples: cannot read"),
    (lambda p: {"samples": text_file(p, "\n\n")}, "lists no samples"),
    (lambda p: {"samples": text_file(p, "s3://bucket-name/a.bcf\n/local/b.bcf\n")},
     "line 2: sample '/local/b.bcf' is not an S3 URI"),
    (lambda p: {"samples": text_file(p, "s3://bucket-name/a.bcf\ns3://bucket-name/a.bcf\n")}, "line 2 repeats line 1"),
    (lambda p: {"samples": text_file(p, "s3://bucket-name/a.bcf\tx\ty\n")}, "3 tab-separated fields"),
    (lambda p: {"samples": text_file(p, "s3://bucket-name/a\x00.bcf\n")}, "control character"),
    (lambda p: {"samples": text_file(p, "\ufeffs3://bucket-name/a.bcf\n")}, "starts with a byte-order mark (BOM)"),
    (lambda p: {"dataset_uri": "/local/dataset"}, "--dataset-uri '/local/dataset' is not an S3 URI"),
    (lambda p: {"dataset_uri": "s3://my-bucketname"}, "names a bucket but no object"),
    (lambda p: {"dataset_uri": "s3://my-bucketname/" + "d" * 900}, "S3 keys are at most 1,024 bytes"),
    (lambda p: {"num_jobs": 0}, "--num-jobs is 0: it must be at least 1"),
    (lambda p: {"retries": 11}, "--retries is 11: it must be between 1 and 10"),
    (lambda p: {"retries": 0}, "--retries is 0: it must be between 1 and 10"),
    (lambda p: {"incremental": 0}, "--incremental is 0: it must be at least 1"),
    (lambda p: {"vcpus": 0}, "--vcpus is 0: it must be at least 1"),
    (lambda p: {"memory": 3}, "--memory is 3: it must be at least 4"),
    (lambda p: {"scratch_size": -1}, "--scratch-size is -1: it must be at least 0"),
    (lambda p: {"threads": 0}, "--threads is 0: it must be at least 1"),
    (lambda p: {"sample_batch_size": 0}, "--sample-batch-size is 0: it must be at least 1"),
    (lambda p: {"attributes": "DP,fmt_GT"}, "'DP' is not of the form fmt_<FIELD> or info_<FIELD>"),
    (lambda p: {"tiledb_config": "novalue"}, "'novalue' is not key=value"),
    (lambda p: {"metadata_s3": "bad/name"}, "--metadata-s3 'bad/name' is not a bucket name"),
    (lambda p: {"scratch_path": ""}, "--scratch-path '' is not an absolute path"),
    (lambda p: {"scratch_path": " "}, "--scratch-path ' ' is not an absolute path"),
    (lambda p: {"scratch_path": "data"}, "--scratch-path 'data' is not an absolute path"),
    (lambda p: {"replace": True, "skip_existing": True}, "--replace and --skip-existing say the opposite"),
    (lambda p: {"replace": True, "register": True}, "--replace needs tiledbvcf delete, which legacy"),
    # The command line's own options, checked at its edge.
    (lambda p: {"region": "us east 1"}, "--region 'us east 1' is not an AWS region name"),
    (lambda p: {"instance_price": -1.0}, "--instance-price is -1.0: it must be an hourly price in USD, 0 or more"),
    (lambda p: {"instance_price": float("nan")}, "--instance-price is nan: it must be an hourly price in USD"),
    (lambda p: {"executor": "local", "max_parallel": 0}, "--max-parallel is 0: it must be at least 1"),
    (lambda p: {"quiet": True, "verbose": True}, "--quiet and --verbose say the opposite: give one of them"),
]  # fmt: skip


@pytest.mark.parametrize("change, message", BAD_INGEST, ids=[m for _, m in BAD_INGEST])
def test_bad_ingest_input_is_one_problem(tmp_path, change, message):
    problems = problems_of(ingest_given(tmp_path, **change(tmp_path)))
    assert len(problems) == 1 and message in problems[0], problems


def export_given(**changes):
    given = {"dataset_uri": "s3://my-bucketname/ds", "dest_s3": "s3://my-bucketname/out", "samples":
             "s3://my-bucketname/n.txt", "bed": "s3://my-bucketname/r.bed", "metadata_s3": None, "attributes": None,
             "job_queue": "q", "job_definition": "jd"}  # fmt: skip
    return {**given, **changes}


BAD_EXPORT = [
    ({"attributes": "fmt_GT"}, "--attributes: tiledbvcf export cannot restrict the INFO/FORMAT fields"),
    ({"samples": "names.txt"}, "--samples 'names.txt' is not an S3 URI"),
    ({"bed": "s3://my-bucketname"}, "--bed 's3://my-bucketname' names a bucket but no object"),
    ({"dataset_uri": "my-bucketname/ds"}, "--array 'my-bucketname/ds' is not an S3 URI"),
    ({"dest_s3": "/out"}, "--dest-s3 '/out' is not an S3 URI"),
    ({"num_jobs": 0}, "--num-jobs is 0: it must be at least 1"),
    ({"memory": 0}, "--memory is 0: it must be at least 4"),
]


@pytest.mark.parametrize("change, message", BAD_EXPORT, ids=[m for _, m in BAD_EXPORT])
def test_bad_export_input_is_one_problem(change, message):
    problems = problems_of(export_given(**change), flags.export_request)
    assert len(problems) == 1 and message in problems[0], problems


def test_export_records_at_the_destination_unless_told():
    request = flags.export_request(export_given(), flags.Tail)
    assert request.opts.dest_s3 == S3Uri("my-bucketname", "out/") and request.opts.metadata_s3 == S3Uri("my-bucketname")
    assert request.opts.dataset_uri == S3Uri("my-bucketname", "ds")
    told = flags.export_request(export_given(metadata_s3="s3://meta/runs"), flags.Tail)
    assert told.opts.metadata_s3 == S3Uri("meta", "runs/")


def test_every_option_is_declared_once_with_its_default():
    """The dataclass default is the flag's: no other place repeats it (click shows the field's)."""
    defaults = {f.name: f.default for f in dataclasses.fields(IngestOptions)}
    assert (defaults["vcpus"], defaults["memory"], defaults["num_jobs"], defaults["retries"]) == (16, 61440, 1, 1)
    exported = {f.name: f.default for f in dataclasses.fields(ExportOptions)}
    assert (exported["vcpus"], exported["memory"]) == (4, 15000)
    problems = Problems()
    opts = options_from(
        IngestOptions, {"dataset_uri": "s3://bkt/ds", "samples": "s.txt", "metadata_s3": "meta"}, problems
    )
    assert not problems.found and (opts.vcpus, opts.attributes, opts.consolidate) == (16, (), True)
