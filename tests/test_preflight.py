"""Checked before anything is spent: queue, definition, writability, every sample and index, headers."""

from __future__ import annotations

import gzip
import hashlib

from conftest import base, calls_of
from samplefiles import bgzf, bgzip_bcf, bgzip_vcf
from tiledbvcf_batch.headers import HEADER_FIRST_READ, REPAIR_HINT, read_header_sample_names
from tiledbvcf_batch.storage import S3Uri


def test_every_preflight_problem_is_listed_and_nothing_is_written(aws, samples_file, run_ingest, tmp_path):
    samples = samples_file(3)
    with samples.open("a") as handle:
        handle.write("s3://bucket-name/samples/missing.bcf\n")
        handle.write("s3://bucket-name/other/x.bcf\ts3://bucket-name/other/x.bcf.tbi\n")
    aws.s3.put_object(Bucket="bucket-name", Key="other/x.bcf", Body=b"x")
    aws.s3.delete_object(Bucket="bucket-name", Key="samples/2.bcf.csi")
    aws.s3.put_object(Bucket="bucket-name", Key="samples/2.bcf", Body=bgzip_vcf(["S2"]))  # BGZF: bcftools indexes it
    aws.batch.update_job_queue(jobQueue="tiledbvcf-job-queue", state="DISABLED")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: --job-queue tiledbvcf-job-queue is DISABLED: enable it or pick another queue",
        "Error: 1 samples name their index after a TAB (e.g. s3://bucket-name/other/x.bcf): with scratch space "
        "tiledbvcf downloads such an index over the sample's own copy and the job fails; pass --scratch-size 0 "
        "to stream the samples, or put each index beside its sample (<sample>.csi) and drop it from the line",
        "Error: sample s3://bucket-name/samples/2.bcf has no index beside it (2.bcf.csi or .tbi): "
        "index it (bcftools index) or name the index after a TAB" + REPAIR_HINT,
        "Error: sample s3://bucket-name/samples/missing.bcf does not exist: fix the samples file or upload it",
        "Error: index s3://bucket-name/other/x.bcf.tbi of sample s3://bucket-name/other/x.bcf does not exist",
    ]
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_samples_are_checked_by_listing_not_one_request_each(aws, run_ingest, tmp_path):
    from moto.s3.models import s3_backends

    keys = [f"cohort/s{i:05d}.vcf.gz" for i in range(2500)]
    backend = s3_backends["123456789012"]["aws"]  # seeding 5,000 objects through the API takes too long
    for key in keys:
        backend.put_object("bucket-name", key, b"v")
        backend.put_object("bucket-name", key + ".tbi", b"i")
    samples = tmp_path / "cohort.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in keys))
    aws.calls.clear()
    result = run_ingest(*base(samples), "--num-jobs", "5", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "2500 samples, 0.00 GiB, all present with their indexes" in result.stderr
    assert calls_of(aws, "HeadObject") == []
    listings = [c for c in calls_of(aws, "ListObjectsV2") if c["Bucket"] == "bucket-name"]
    assert len(listings) == 5  # 5,000 objects, 1,000 per call


def test_job_definition_must_be_active(aws, samples_file, run_ingest):
    arn = aws.batch.describe_job_definitions(jobDefinitionName="tiledbvcf-24h")["jobDefinitions"][0]["jobDefinitionArn"]
    aws.batch.deregister_job_definition(jobDefinition=arn)
    result = run_ingest(*base(samples_file(1)))
    assert result.exit_code == 2
    assert "--job-definition tiledbvcf-24h: no ACTIVE job definition of that name in us-east-1" in result.stderr


def test_metadata_location_must_be_writable(aws, samples_file, run_ingest):
    samples = samples_file(1)
    aws.fail_call("s3.PutObject", "AccessDenied")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --metadata-s3: cannot write to s3://bucket2-name/ (AccessDenied: injected AccessDenied)"
    )
    assert aws.submitted == []


def test_check_headers_refuses_multi_sample_files_and_repeated_names(aws, run_ingest, tmp_path):
    files = {
        "h/a.vcf.gz": bgzip_vcf(["NA1"]),
        "h/b.bcf": bgzip_bcf("NA2"),
        "h/multi.vcf.gz": bgzip_vcf(["NA3", "NA4"]),
        "h/again.bcf": bgzip_bcf("NA1"),
        "h/plain.vcf": b"##fileformat=VCFv4.2\n",
        "h/gzip.vcf.gz": gzip.compress(
            b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tG\n"
        ),
    }
    for key, body in files.items():
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=body)
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".csi", Body=b"i")
    samples = tmp_path / "h.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in files))
    assert run_ingest(*base(samples), "--dry-run").exit_code == 0  # without the flag, headers are not read
    result = run_ingest(*base(samples), "--check-headers")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: sample s3://bucket-name/h/multi.vcf.gz has 2 samples in its header: tiledbvcf ingests "
        "single-sample files only (split it with bcftools +split)" + REPAIR_HINT,
        "Error: sample name NA1 is in both s3://bucket-name/h/a.vcf.gz and s3://bucket-name/h/again.bcf: "
        "remove one of them from the samples file",
        "Error: sample s3://bucket-name/h/plain.vcf is not bgzip-compressed (tiledbvcf needs bgzipped, "
        "indexed VCF/BCF)" + REPAIR_HINT,
        "Error: sample s3://bucket-name/h/gzip.vcf.gz is compressed with plain gzip, not BGZF: tiledbvcf needs it "
        "recompressed with bgzip" + REPAIR_HINT,
    ]
    ranges = {c["Range"] for c in calls_of(aws, "GetObject") if c["Key"].startswith("h/")}
    assert ranges == {f"bytes=0-{HEADER_FIRST_READ - 1}"}


def test_header_larger_than_the_first_read_is_read_further(aws):
    # Contig names that do not compress away, as in real assemblies with many scaffolds.
    contigs = "".join(f"##contig=<ID={hashlib.sha1(str(i).encode()).hexdigest()}>\n" for i in range(4000))
    body = bgzf(f"##fileformat=VCFv4.2\n{contigs}#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tBIG\n".encode())
    assert len(body) > 20_000
    aws.s3.put_object(Bucket="bucket-name", Key="big.vcf.gz", Body=body)
    assert read_header_sample_names(aws.s3, S3Uri("bucket-name", "big.vcf.gz")) == ["BIG"]


def test_dry_run_runs_the_preflight(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.s3.delete_object(Bucket="bucket-name", Key="samples/1.bcf")
    result = run_ingest(*base(samples), "--dry-run")
    assert result.exit_code == 2 and "samples/1.bcf does not exist" in result.stderr
