"""A sample name that cannot be a file name is never ingested, and never asked of an export: every one named.

tiledbvcf exports each sample to ``<dir>/<name><suffix>``: a name with '/' fails the export, one with htslib's
'##idx##' writes a file of another name, one too long is no file name. Where the client reads the names (local
files, --check-headers, a dataset that already holds samples) the ingestion refuses them with exit 2, nothing
written; where it does not (S3, no --check-headers, a new dataset), the store job's own check refuses them before
anything is stored; an export that names one is refused with exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pysam
import pytest

import cohort
from conftest import DATASET, base, listed, make_dataset, needs_tiledbvcf, run_entrypoint, run_script, tiledbvcf
from samplefiles import bgzip_bcf, bgzip_vcf
from tiledbvcf_batch.headers import file_name_problem
from tiledbvcf_batch.jobcheck import started_marker

LONG = "L" * 245  # with ".vcf.gz.csi", 256 bytes: one more than a file name may have


@pytest.mark.parametrize(
    "name, problem",
    [
        ("a/b", "contains '/': its file would be in a directory that does not exist, and the export fails"),
        ("/lead", "contains '/': its file would be in a directory that does not exist, and the export fails"),
        ("x##idx##y", "contains '##idx##', where htslib cuts a file name: the export would write a file 'x'"),
        ("bell\x07", "contains a control character, which no names file can give tiledbvcf"),
        ("nul\x00", "contains a control character, which no names file can give tiledbvcf"),
        (LONG, "is 245 bytes long: with '.vcf.gz.csi' its file name would pass the 255 bytes a file name may have"),
        (
            "é" * 123,
            "is 246 bytes long: with '.vcf.gz.csi' its file name would pass the 255 bytes a file name may have",
        ),
    ],
)
def test_names_that_cannot_be_file_names_and_why(name, problem):
    assert file_name_problem(name) == problem


@pytest.mark.parametrize("name", ["NA12878", "L" * 244, ".", "..", "-dash", "a b", "a\\b", "ü", "S:1|2"])
def test_names_that_make_file_names(name):
    """'.' and '..' are exported as '..bcf' and '...bcf' (measured): ordinary files, if hidden ones."""
    assert file_name_problem(name) is None


def test_check_headers_refuses_every_such_name_and_writes_nothing(aws, run_ingest, tmp_path):
    files = {"h/slash.vcf.gz": bgzip_vcf(["pop/NA1"]), "h/idx.bcf": bgzip_bcf("x##idx##y"),
             "h/long.bcf": bgzip_bcf(LONG), "h/fine.bcf": bgzip_bcf("NA2"), "h/dot.bcf": bgzip_bcf(".")}  # fmt: skip
    for key, body in files.items():
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=body)
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".csi", Body=b"i")
    samples = tmp_path / "h.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in files))
    result = run_ingest(*base(samples), "--check-headers")
    assert result.exit_code == 2
    fix = "rename the sample in its file (bcftools reheader -s) and ingest that file"
    assert result.stderr.splitlines() == [
        "Error: sample s3://bucket-name/h/slash.vcf.gz is named 'pop/NA1', which tiledbvcf can never export as a "
        f"file of its own (contains '/': its file would be in a directory that does not exist, and the export fails): "
        f"{fix}",
        "Error: sample s3://bucket-name/h/idx.bcf is named 'x##idx##y', which tiledbvcf can never export as a file of "
        f"its own (contains '##idx##', where htslib cuts a file name: the export would write a file 'x'): {fix}",
        f"Error: sample s3://bucket-name/h/long.bcf is named '{LONG}', which tiledbvcf can never export as a file of "
        f"its own (is 245 bytes long: with '.vcf.gz.csi' its file name would pass the 255 bytes a file name may "
        f"have): {fix}",
    ]
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_names_are_read_and_refused_when_the_dataset_already_holds_samples(aws, run_ingest, tmp_path):
    """No --check-headers: the new samples' names are read all the same, since the dataset holds samples."""
    make_dataset(aws, samples=("NA0",))
    aws.s3.put_object(Bucket="bucket-name", Key="h/slash.bcf", Body=bgzip_bcf("pop/NA1"))
    aws.s3.put_object(Bucket="bucket-name", Key="h/slash.bcf.csi", Body=b"i")
    samples = tmp_path / "h.txt"
    samples.write_text("s3://bucket-name/h/slash.bcf\n")
    result = run_ingest(*base(samples))
    assert result.exit_code == 2
    assert "Error: sample s3://bucket-name/h/slash.bcf is named 'pop/NA1', which tiledbvcf can never export" in (
        result.stderr
    )
    assert aws.submitted == [] and aws.keys("bucket2-name") == []


def test_an_export_naming_such_a_sample_is_refused_up_front(aws, run_export):
    make_dataset(aws, samples=("NA1", "pop/NA2"))
    aws.s3.put_object(Bucket="my-bucketname", Key="names.txt", Body=b"NA1\npop/NA2\n")
    aws.s3.put_object(Bucket="my-bucketname", Key="r.bed", Body=b"chr1\t0\t100\n")
    result = run_export("--array", DATASET, "--dest-s3", "s3://my-bucketname/out/", "--samples",
                        "s3://my-bucketname/names.txt", "--bed", "s3://my-bucketname/r.bed")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "Error: --samples names sample 'pop/NA2', which tiledbvcf cannot export as a file of its own (contains '/': "
        "its file would be in a directory that does not exist, and the export fails): leave it out of "
        "s3://my-bucketname/names.txt"
    ]
    assert aws.submitted == [] and aws.keys("my-bucketname", "tiledbvcf-batch/") == []


def indexed_vcf(path: Path, name: str) -> Path:
    """A real single-sample vcf.gz of sample ``name``, bgzipped and indexed by htslib (.tbi)."""
    header = "\t".join(("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", name))
    path.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000000>\n##contig=<ID=chr2,length=1000000>\n"
        "##contig=<ID=chr3,length=1000000>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        f"{header}\nchr1\t10\t.\tA\tC\t.\tPASS\t.\tGT\t0/1\n"
    )
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path.with_name(path.name + ".gz")


@needs_tiledbvcf
def test_a_local_ingestion_of_a_sample_named_with_a_slash_exits_2_naming_it(here):
    good = cohort.make_cohort(here / "in", 2, records=30)
    bad = indexed_vcf(here / "in" / "slash.vcf", "pop/NA1")
    (here / "samples.txt").write_text("".join(f"{path}\n" for path in [*good, bad]))
    result = run_script("batch-ingest.py", "--executor", "local", "--dataset-uri", str(here / "ds"), "--samples",
                        str(here / "samples.txt"), "--metadata-s3", str(here / "meta"), "--vcpus", "1")  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"Error: sample {bad} is named 'pop/NA1', which tiledbvcf can never export as a file of its own (contains "
        "'/': its file would be in a directory that does not exist, and the export fails): rename the sample in its "
        "file (bcftools reheader -s) and ingest that file"
    ]
    assert not (here / "ds").exists()  # nothing created
    assert [path for path in (here / "meta").rglob("*") if path.is_file()] == []  # nothing recorded or uploaded


@needs_tiledbvcf
def test_a_store_job_whose_names_were_not_read_refuses_them_before_storing_anything(here):
    """S3 without --check-headers into a new dataset: the client reads no header, the job's own check does."""
    good = cohort.make_cohort(here / "in", 1, records=30)
    bad = [indexed_vcf(here / "in" / "slash.vcf", "pop/NA1"), indexed_vcf(here / "in" / "idx.vcf", "x##idx##y")]
    dataset = here / "ds"
    tiledbvcf("create", "-u", str(dataset))
    job = here / "ingest-b001-j0001.txt"
    job.write_text("".join(f"{path}\n" for path in [*good, *bad]))
    refused = run_entrypoint(["store", "-u", str(dataset), "-t", "1", "-f", str(job), "--remove-sample-file",
                              "--resume"])  # fmt: skip
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.splitlines() == [
        "[tiledbvcf-batch] store refused: tiledbvcf could never export 2 of this job's samples as files of their own: "
        f"{bad[0]} is named 'pop/NA1', which contains '/': its file would be in a directory that does not exist, and "
        f"the export fails; {bad[1]} is named 'x##idx##y', which contains '##idx##', where htslib cuts a file name: "
        "the export would write a file 'x'. Nothing was stored; rename them in their files (bcftools reheader -s)"
    ]
    assert listed(dataset) == [] and job.exists() and not Path(started_marker(str(job))).exists()
