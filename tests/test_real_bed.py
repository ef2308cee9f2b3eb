"""BED files as people have them, with the real tiledbvcf and --executor local: the cleaned copy exports what a clean
BED by hand does; every defect is refused before any job runs; the dataset's contigs are read from its headers.

Run whenever TILEDBVCF names a tiledbvcf (``.ci/run`` unpacks ../shared/tools and sets it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import cohort
from conftest import TILEDBVCF, needs_tiledbvcf, run_script, tiledbvcf
from tiledbvcf_batch.dataset import DatasetAccess, read_samples

pytestmark = needs_tiledbvcf

# A UCSC-style panel: header lines, a comment, a blank line, spaces and extra columns (name, score, strand).
UCSC_PANEL = (
    "browser position chr1:100000-400000\n"
    'track name="panel" description="exons of a made-up panel"\n'
    "# chrom start end name\n"
    "\n"
    "chr1 100000 400000 GENE1 0 +\n"
    "chr2  250000   900000\n"
    "chr3\t0 600000\tGENE3\n"
)
CLEAN_PANEL = "chr1\t100000\t400000\nchr2\t250000\t900000\nchr3\t0\t600000\n"


@pytest.fixture
def dataset(here: Path) -> tuple[Path, Path, list[Path]]:
    """A dataset of 3 demo samples stored by hand, and a names file of them all."""
    inputs = cohort.make_cohort(here / "in", 3, records=90)
    (here / "samples.txt").write_text("".join(f"{path}\n" for path in inputs))
    tiledbvcf("create", "-u", str(here / "ds"))
    tiledbvcf("store", "-u", str(here / "ds"), "-f", str(here / "samples.txt"))
    names = here / "names.txt"
    names.write_text("".join(f"{path.name.removesuffix('.bcf')}\n" for path in inputs))
    return here / "ds", names, inputs


def export(here: Path, dataset: Path, names: Path, bed: str) -> subprocess.CompletedProcess:
    (here / "panel.bed").write_text(bed)
    return run_script("batch-export.py", "--executor", "local", "--dataset-uri", str(dataset), "--dest-s3",
                      str(here / "out"), "--samples", str(names), "--bed", str(here / "panel.bed"), "--metadata-s3",
                      str(here / "meta"), "--num-jobs", "2", "--vcpus", "1", "--output-format", "v")  # fmt: skip


def records(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def test_a_ucsc_bed_exports_the_records_of_the_clean_bed_by_hand(here, dataset):
    ds, names, inputs = dataset
    # What the cleaning is for: tiledbvcf itself fails on this BED as it is.
    (here / "panel.bed").write_text(UCSC_PANEL)
    (here / "as-is").mkdir()
    as_is = subprocess.run([TILEDBVCF, "export", "-u", str(ds), "-f", str(names), "-R", str(here / "panel.bed"),
                            "-O", "v", "-d", str(here / "as-is")],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert as_is.returncode != 0 and "Error parsing BED file" in as_is.stdout + as_is.stderr
    result = export(here, ds, names, UCSC_PANEL)
    assert result.returncode == 0, result.stdout + result.stderr
    (copy,) = (here / "meta").rglob("regions.bed")
    assert copy.read_text() == CLEAN_PANEL
    assert f"--bed {here / 'panel.bed'}: dropped 1 browser line, 1 track line, 1 comment line, 1 blank line" in (
        result.stderr
    )
    (here / "clean.bed").write_text(CLEAN_PANEL)
    (here / "by-hand").mkdir()
    tiledbvcf("export", "-u", str(ds), "-f", str(names), "-R", str(here / "clean.bed"), "-O", "v", "-d",
              str(here / "by-hand"))  # fmt: skip
    for path in inputs:
        name = path.name.removesuffix(".bcf")
        exported, by_hand = records(here / "out" / f"{name}.vcf"), records(here / "by-hand" / f"{name}.vcf")
        assert exported == by_hand and 0 < len(exported) < 90  # the panel's records, not the whole sample


@pytest.mark.parametrize(
    "bed, problem",
    [
        ("track name=empty\n", "holds no interval (dropped: 1 track line)"),
        ("chr1 0 1000\nchr1\t300\t300\n", "line 2 'chr1\\t300\\t300': the interval is empty"),
        ("chr1\t500\t400\n", "line 1 'chr1\\t500\\t400': start 500 is after end 400"),
        ("chr1\t5\nchr2 x 9\n", "line 1 'chr1\\t5': 2 columns"),
        ("1\t0\t1000\n2 0 100\n", "none of its contigs is in dataset"),
    ],
    ids=["empty", "zero-length", "reversed", "malformed", "no known contig"],
)
def test_each_bed_defect_is_refused_before_any_job_runs(here, dataset, bed, problem):
    ds, names, _ = dataset
    result = export(here, ds, names, bed)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"Error: --bed {here / 'panel.bed'}") and problem in result.stderr
    assert [path for path in here.glob("out/**/*") if path.is_file()] == []
    assert list((here / "meta").rglob("*.bed")) == [] and list((here / "meta").rglob("run.json")) == []


def test_contigs_come_from_the_headers_the_dataset_keeps(here, dataset):
    ds, names, _ = dataset
    view = read_samples(str(ds), DatasetAccess("us-east-1"), contigs=True)
    assert view.contigs == {"chr1", "chr2", "chr3"}
    assert read_samples(str(ds), DatasetAccess("us-east-1")).contigs is None  # read only when asked
    refused = export(here, ds, names, "1\t0\t1000\n2 0 100\n")
    assert "1, 2; the export would find no record. The dataset spells them chr1, chr2: rename them" in refused.stderr
    warned = export(here, ds, names, "chr1 0 1000000\nchrUn_KI270302v1 0 50\n")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert f"WARNING: --bed {here / 'panel.bed'}: 1 of its 2 contigs are not in dataset {ds}" in warned.stderr


def test_contigs_are_read_from_a_dataset_on_s3_too(here, moto_server):
    inputs = cohort.make_cohort(here / "in", 2, records=30, contigs=("chr7", "chrM"))
    (here / "samples.txt").write_text("".join(f"{path}\n" for path in inputs))
    tiledbvcf("create", "-u", "s3://my-bucketname/ds")  # AWS_ENDPOINT_URL: tiledbvcf stores to the emulated S3
    tiledbvcf("store", "-u", "s3://my-bucketname/ds", "-f", str(here / "samples.txt"))
    view = read_samples("s3://my-bucketname/ds", DatasetAccess("us-east-1", moto_server), contigs=True)
    assert view.samples == {"S0000", "S0001"} and view.contigs == {"chr7", "chrM"}
