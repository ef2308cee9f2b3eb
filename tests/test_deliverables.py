# ruff: noqa: F811  (the fixture place comes from test_real_tiledbvcf, and names the tests' parameters)
"""Exports that finish, with the real tiledbvcf: a gene panel where some samples have no record, indexes that
htslib can fetch a region with, and a manifest whose figures are those of the files.

Locally, and through the image's entrypoint to the emulated S3 (the same job commands as on Batch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pysam
import pytest
from test_real_tiledbvcf import Place, ingest_at, place, script, write_samples  # noqa: F401

import cohort
from conftest import needs_tiledbvcf, run_script, tiledbvcf

pytestmark = needs_tiledbvcf


def first_position(path: Path, contig: str) -> int:
    """The 1-based position of the sample's first record on ``contig``."""
    with pysam.VariantFile(str(path)) as variants:
        return next(variants.fetch(contig)).pos


def fetch(path: Path, contig: str, start: int, end: int) -> int:
    """Records in [start, end) of an exported file, found through its index (htslib needs one to seek)."""
    with pysam.VariantFile(str(path)) as variants:
        return sum(1 for _ in variants.fetch(contig, start, end))


def download(place: Place, dest: str, names: list[str], into: Path) -> Path:
    """The destination's files on this machine (the emulated S3's downloaded)."""
    if place.kind == "local":
        return Path(dest)
    into.mkdir()
    for name in names:
        place.s3.download_file("my-bucketname", f"panel/{name}", str(into / name))
    return into


def test_a_gene_panel_where_some_samples_have_no_record_delivers_the_others_indexed_with_a_manifest(place):
    here = place.root
    inputs = cohort.make_cohort(here / "in", 4, records=30)
    assert ingest_at(place, write_samples(here / "samples.txt", place.put(inputs)), "--num-jobs", "2").returncode == 0
    # A panel of two one-base regions: S0000's first record on chr1 and S0001's on chr2. With 10 records a contig
    # of 1 Mb each, S0002 and S0003 have none there.
    chr1, chr2 = first_position(inputs[0], "chr1"), first_position(inputs[1], "chr2")
    (here / "panel.bed").write_text(f"chr1\t{chr1 - 1}\t{chr1}\nchr2\t{chr2 - 1}\t{chr2}\n")
    (here / "names.txt").write_text("S0000\nS0001\nS0002\nS0003\n")
    dest = str(here / "panel") if place.kind == "local" else "s3://my-bucketname/panel/"
    result = script("batch-export.py", "--dataset-uri", place.dataset, "--dest-s3", dest, "--samples",
                    str(here / "names.txt"), "--bed", str(here / "panel.bed"), "--metadata-s3", place.metadata,
                    "--num-jobs", "2", "--vcpus", "1", "--memory", "1024")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "- 2 / 2 jobs succeeded" in result.stdout
    assert "- 2 samples have no records in the regions (no file): S0002, S0003" in result.stdout
    assert "MISSING" not in result.stdout
    run_id = result.stdout.split()[3].partition("/")[0]  # "Submitted export job(s) RUN/export-1 ..."
    manifest_name = f"manifest-{run_id}.tsv"
    assert f"- Manifest of the exported files: {dest.rstrip('/')}/{manifest_name}" in result.stdout

    files = ["S0000.bcf", "S0000.bcf.csi", "S0001.bcf", "S0001.bcf.csi", manifest_name]
    local = download(place, dest, files, here / "down")
    assert sorted(p.name for p in local.iterdir()) == sorted(files)  # nothing for S0002, S0003
    # The indexes serve a region query, and each file holds its sample's record there, as the input does.
    assert fetch(local / "S0000.bcf", "chr1", chr1 - 1, chr1) == 1
    assert fetch(local / "S0001.bcf", "chr2", chr2 - 1, chr2) == 1
    rows = [line.split("\t") for line in (local / manifest_name).read_text().splitlines()]
    assert rows[0] == ["sample", "file", "bytes", "records", "md5", "index", "status"]
    for _sample, file, size, records, md5, index, status in rows[1:3]:
        exported = local / file
        with pysam.VariantFile(str(exported)) as variants:
            assert int(records) == sum(1 for _ in variants) == len(cohort.sample_records(exported))
        assert (int(size), md5) == (exported.stat().st_size, hashlib.md5(exported.read_bytes()).hexdigest())
        assert (index, status) == (f"{file}.csi", "exported")
    assert rows[3:] == [[name, "", "0", "0", "", "", "no records in the regions"] for name in ("S0002", "S0003")]


@pytest.mark.parametrize("fmt, index, suffix", [("z", "tbi", ".vcf.gz.tbi"), ("v", "csi", None)])
def test_a_compressed_vcf_gets_the_index_asked_for_and_uncompressed_output_none(here, fmt, index, suffix):
    inputs = cohort.make_cohort(here / "in", 2, records=30)
    place = Place("local", here)
    assert ingest_at(place, write_samples(here / "samples.txt", [str(p) for p in inputs])).returncode == 0
    (here / "all.bed").write_text("chr1\t0\t1000000\n")
    (here / "names.txt").write_text("S0000\nS0001\n")
    result = script("batch-export.py", "--dataset-uri", place.dataset, "--dest-s3", str(here / "out"), "--samples",
                    str(here / "names.txt"), "--bed", str(here / "all.bed"), "--metadata-s3", place.metadata,
                    "--output-format", fmt, "--index", index, "--vcpus", "1", "--memory", "1024")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    listed = sorted(p.name for p in (here / "out").iterdir() if not p.name.startswith("manifest-"))
    extension = ".vcf.gz" if fmt == "z" else ".vcf"
    expected = [f"S000{i}{extension}" for i in (0, 1)]
    assert listed == sorted(expected + ([f"S000{i}{suffix}" for i in (0, 1)] if suffix else []))
    (manifest,) = (here / "out").glob("manifest-*.tsv")
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:]]
    for path, row in zip(inputs, rows, strict=True):
        on_chr1 = len(cohort.sample_records(path, "chr1"))
        assert int(row[3]) == on_chr1 and row[5] == (f"{row[1]}.tbi" if suffix else "")
    if suffix:
        assert fetch(here / "out" / expected[0], "chr1", 0, 1_000_000) == int(rows[0][3])


def test_tbi_for_a_bcf_is_refused_before_anything_runs(here):
    result = script("batch-export.py", "--dataset-uri", str(here / "ds"), "--dest-s3", str(here / "out"),
                    "--samples", str(here / "names.txt"), "--bed", str(here / "r.bed"), "--index", "tbi")  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert "--index tbi indexes compressed VCF only, not --output-format b: use --index csi, or --output-format z" in (
        result.stderr
    )


def test_without_bcftools_a_local_export_is_refused_before_anything_runs(here, monkeypatch):
    monkeypatch.setenv("BCFTOOLS", str(here / "no-bcftools"))
    (here / "names.txt").write_text("S0000\n")
    (here / "r.bed").write_text("chr1\t0\t100\n")
    result = script("batch-export.py", "--dataset-uri", str(here / "ds"), "--dest-s3", str(here / "out"),
                    "--samples", str(here / "names.txt"), "--bed", str(here / "r.bed"))  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert (
        f"bcftools not found ({here / 'no-bcftools'}): the jobs need it with --executor local; install it (apt "
        "install bcftools, or conda install -c bioconda bcftools) or set BCFTOOLS to its path" in result.stderr
    )
    assert not (here / "out").exists() or list((here / "out").iterdir()) == []


def cohort_of(place: Place, samples: int) -> list[Path]:
    """A cohort ingested at ``place``; its names (S0000, ...) in ``names.txt``."""
    inputs = cohort.make_cohort(place.root / "in", samples, records=30)
    assert ingest_at(place, write_samples(place.root / "samples.txt", place.put(inputs))).returncode == 0
    write_samples(place.root / "names.txt", [path.name.split(".")[0] for path in inputs])
    return inputs


def export_at(place: Place, dest: str, bed: str, *extra: str):
    (place.root / "panel.bed").write_text(bed)
    result = script("batch-export.py", "--dataset-uri", place.dataset, "--dest-s3", dest, "--samples",
                    str(place.root / "names.txt"), "--bed", str(place.root / "panel.bed"), "--metadata-s3",
                    place.metadata, "--vcpus", "1", "--memory", "1024", *extra)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MISSING" not in result.stdout
    return result, result.stdout.split()[3].partition("/")[0]  # "Submitted export job(s) RUN/export-1 ..."


def manifest_rows(path: Path) -> list[list[str]]:
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert rows[0] == ["sample", "file", "bytes", "records", "md5", "index", "status"]  # the header of every export
    return rows[1:]


def merged_records(path: Path) -> list[tuple]:
    """A multi-sample file's records, each with every sample's genotype, as comparable tuples."""
    with pysam.VariantFile(str(path)) as variants:
        return [(r.chrom, r.pos, r.ref, r.alts, tuple((name, r.samples[name]["GT"]) for name in sorted(r.samples)))
                for r in variants]  # fmt: skip


def table_lines(path: Path) -> tuple[str, list[str]]:
    header, *lines = path.read_text().splitlines()
    return header, lines


def test_a_tsv_export_writes_one_table_per_job_whose_rows_are_those_of_tiledbvcf_by_hand(here):
    place = Place("local", here)
    cohort_of(place, 3)
    bed = "chr2\t0\t500000\nchr1\t100000\t900000\n"
    fields = "SAMPLE,CHR,POS,REF,ALT,QUAL,FILTER,F:GT,F:DP,I:AF,Q:POS,Q:END,Q:LINE"
    _, run_id = export_at(place, str(here / "out"), bed, "--output-format", "t", "--tsv-fields", fields,
                               "--num-jobs", "2")  # fmt: skip
    names = [f"{run_id}-part-0001-of-0002.tsv", f"{run_id}-part-0002-of-0002.tsv"]
    assert sorted(p.name for p in (here / "out").iterdir()) == sorted([*names, f"manifest-{run_id}.tsv"])
    tiledbvcf("export", "-u", place.dataset, "-f", str(here / "names.txt"), "-R", str(here / "panel.bed"), "-O", "t",
              "-t", fields, "-o", str(here / "by-hand.tsv"))  # fmt: skip
    header, by_hand = table_lines(here / "by-hand.tsv")
    tables = [table_lines(here / "out" / name) for name in names]
    assert [table[0] for table in tables] == [header, header]
    assert sorted(tables[0][1] + tables[1][1]) == sorted(by_hand) and by_hand
    # The first job's table holds the first two samples, the second's the third (sample partitions, as today).
    assert {line.split("\t")[0] for line in tables[0][1]} == {"S0000", "S0001"}
    assert {line.split("\t")[0] for line in tables[1][1]} == {"S0002"}
    rows = manifest_rows(here / "out" / f"manifest-{run_id}.tsv")
    assert [(row[0], row[1], int(row[3]), row[5], row[6]) for row in rows] == [
        ("*", name, len(table[1]), "", "exported") for name, table in zip(names, tables, strict=True)
    ]


def test_a_merged_export_writes_one_indexed_cohort_file_per_part_of_the_regions_equal_to_tiledbvcf_by_hand(place):
    here = place.root
    cohort_of(place, 4)
    bed = "chr2\t0\t1000000\nchr1\t500000\t1000000\nchr1\t0\t500000\nchr3\t200000\t700000\n"
    dest = str(here / "out") if place.kind == "local" else "s3://my-bucketname/panel/"
    _, run_id = export_at(place, dest, bed, "--merge", "--num-jobs", "2")
    names = [f"{run_id}-part-000{i}-of-0002.bcf" for i in (1, 2)]
    files = [*names, *(f"{name}.csi" for name in names), f"manifest-{run_id}.tsv"]
    local = download(place, dest, files, here / "down")
    assert sorted(p.name for p in local.iterdir()) == sorted(files)
    tiledbvcf("export", "-u", place.dataset, "-f", str(here / "names.txt"), "-R", str(here / "panel.bed"),
              "--merge", "-o", str(here / "by-hand.bcf"))  # fmt: skip
    by_hand = merged_records(here / "by-hand.bcf")
    parts = [merged_records(local / name) for name in names]
    assert sorted(parts[0] + parts[1]) == sorted(by_hand) and parts[0] and parts[1]
    assert all(len(record[4]) == 4 for record in by_hand)  # every sample in each record
    # Each file is indexed: htslib fetches a region through it (the parts split the sorted regions: chr1 | chr2, chr3).
    assert fetch(local / names[0], "chr1", 0, 1_000_000) == len(parts[0])
    assert fetch(local / names[1], "chr2", 0, 1_000_000) + fetch(local / names[1], "chr3", 0, 1_000_000) == len(
        parts[1]
    )
    rows = manifest_rows(local / f"manifest-{run_id}.tsv")
    for row, name, records in zip(rows, names, parts, strict=True):
        exported = local / name
        assert row == ["*", name, str(exported.stat().st_size), str(len(records)),
                       hashlib.md5(exported.read_bytes()).hexdigest(), f"{name}.csi", "exported"]  # fmt: skip


def test_a_merged_part_of_the_regions_without_records_is_no_records_not_missing(here):
    place = Place("local", here)
    inputs = cohort_of(place, 2)
    chr1 = first_position(inputs[0], "chr1")
    bed = f"chr1\t{chr1 - 1}\t{chr1}\nchr3\t0\t10\n"  # chr3's first 10 bases: no record of the cohort
    result, run_id = export_at(place, str(here / "out"), bed, "--merge", "--num-jobs", "5", "--output-format", "z",
                               "--index", "tbi", "--wait")  # fmt: skip
    assert "2 intervals in the BED: submitting 2 jobs instead of 5" in result.stderr
    empty = f"{run_id}-part-0002-of-0002.vcf.gz"
    assert f"- 1 files (parts of the regions or samples) have no records in the regions (no file): {empty}" in (
        result.stdout
    )
    first = f"{run_id}-part-0001-of-0002.vcf.gz"
    assert sorted(p.name for p in (here / "out").iterdir()) == [first, f"{first}.tbi", f"manifest-{run_id}.tsv"]
    assert fetch(here / "out" / first, "chr1", chr1 - 1, chr1) == 1
    rows = manifest_rows(here / "out" / f"manifest-{run_id}.tsv")
    assert rows[0][:2] == ["*", first] and rows[0][3] == "1"
    assert rows[1] == ["*", empty, "0", "0", "", "", "no records in the regions"]
    status = run_script(
        "batch-runs.py", "status", str(here / "meta" / "tiledbvcf-batch" / "runs" / run_id / "run.json")
    )
    assert "MISSING" not in status.stdout and empty in status.stdout, status.stdout + status.stderr
