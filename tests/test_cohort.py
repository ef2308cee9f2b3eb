"""The synthetic cohort (demo/cohort.py): files the real tiledbvcf ingests, and the check that an export matches them.

The round trip through the real binary runs only when TILEDBVCF names it; everything else needs only pysam.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pysam
import pytest

import cohort

CONTIGS = ("chr1", "chr2", "chr3")


@pytest.fixture(scope="module")
def bcf_cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return cohort.make_cohort(tmp_path_factory.mktemp("bcf"), 4, records=60)


def _inputs(paths: list[Path]) -> dict[str, Path]:
    return {path.name.split(".")[0]: path for path in paths}


def _rewrite(source: Path, target: Path, change) -> None:
    """Copy ``source`` to an uncompressed VCF ``target``, letting ``change(index, record)`` edit or drop records."""
    with pysam.VariantFile(str(source)) as vcf, pysam.VariantFile(str(target), "w", header=vcf.header) as out:
        for index, record in enumerate(vcf):
            if change(index, record) is not False:
                out.write(record)


# --------------------------------------------------------------------------------------------------------------------
# Generated files


@pytest.mark.parametrize("fmt, index_suffix", [("bcf", ".csi"), ("vcf.gz", ".tbi")])
def test_files_are_single_sample_indexed_and_complete(tmp_path: Path, fmt: str, index_suffix: str) -> None:
    paths = cohort.make_cohort(tmp_path, 3, records=50, fmt=fmt, prefix="P")

    assert paths == [tmp_path / f"P{i:04d}.{fmt}" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in paths] + [p.name + index_suffix for p in paths]
    )
    for path in paths:
        with pysam.VariantFile(str(path)) as vcf:
            assert list(vcf.header.samples) == [path.name.split(".")[0]]
            assert tuple(vcf.header.contigs) == CONTIGS
            assert [sum(1 for _ in vcf.fetch(contig)) for contig in CONTIGS] == [17, 17, 16]  # the index works
        records = cohort.sample_records(path)
        assert len(records) == 50
        assert records == sorted(records, key=lambda r: (CONTIGS.index(r.chrom), r.pos))
        assert all(r.gt is not None and len(r.gt) == 2 and dict(r.fmt)["DP"] >= 1 for r in records)


def test_a_cohort_is_varied(tmp_path: Path) -> None:
    """The round trip should exercise more than biallelic SNVs with one genotype."""
    records = [r for path in cohort.make_cohort(tmp_path, 4, records=100) for r in cohort.sample_records(path)]
    genotypes = {r.gt for r in records}
    assert {(0, 0), (0, 1), (1, 1)} <= genotypes
    assert any(len(r.alts) == 2 for r in records)
    assert any(len(r.ref) > 1 for r in records) and any(len(r.alts[0]) > 1 for r in records)
    assert any(r.phased for r in records) and any(r.qual is None for r in records)
    assert {("PASS",), ("LowQual",)} <= {r.filters for r in records}


def test_cohorts_are_deterministic(tmp_path: Path) -> None:
    first = cohort.make_cohort(tmp_path / "a", 3, records=40, seed=7)
    again = cohort.make_cohort(tmp_path / "b", 3, records=40, seed=7)
    longer = cohort.make_cohort(tmp_path / "c", 5, records=40, seed=7)
    other_seed = cohort.make_cohort(tmp_path / "d", 3, records=40, seed=8)

    for a, b, c in zip(first, again, longer, strict=False):
        assert a.read_bytes() == b.read_bytes() == c.read_bytes()
        assert Path(f"{a}.csi").read_bytes() == Path(f"{b}.csi").read_bytes()
    assert first[0].read_bytes() != first[1].read_bytes()
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other_seed]


def test_bcf_and_vcf_gz_cohorts_hold_the_same_records(tmp_path: Path) -> None:
    bcf = cohort.make_cohort(tmp_path, 2, records=30, contigs=("1", "X"))
    vcf = cohort.make_cohort(tmp_path, 2, records=30, contigs=("1", "X"), fmt="vcf.gz")
    assert [cohort.sample_records(p) for p in bcf] == [cohort.sample_records(p) for p in vcf]
    assert [r.chrom for r in cohort.sample_records(bcf[0])] == ["1"] * 15 + ["X"] * 15


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        cohort.make_cohort(tmp_path, 1, fmt="vcf")
    with pytest.raises(ValueError, match="do not fit"):
        cohort.make_cohort(tmp_path, 1, contigs=())


def test_cli_prints_a_manifest(tmp_path: Path) -> None:
    script = Path(cohort.__file__)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out"), "2", "--records", "9", "--format", "vcf.gz"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.splitlines() == [str(tmp_path / "out" / f"S000{i}.vcf.gz") for i in range(2)]
    assert len(cohort.sample_records(tmp_path / "out" / "S0001.vcf.gz")) == 9


# --------------------------------------------------------------------------------------------------------------------
# Reading back


def test_region_keeps_overlapping_records(bcf_cohort: list[Path]) -> None:
    records = cohort.sample_records(bcf_cohort[0])
    by_contig = [cohort.sample_records(bcf_cohort[0], contig) for contig in CONTIGS]
    assert [r for part in by_contig for r in part] == records

    deletion = next(r for r in records if len(r.ref) > 1)
    end = deletion.pos + len(deletion.ref) - 1
    assert deletion in cohort.sample_records(bcf_cohort[0], f"{deletion.chrom}:{end}-{end}")  # starts before, overlaps
    assert deletion not in cohort.sample_records(bcf_cohort[0], f"{deletion.chrom}:{end + 1}-{end + 1}")


def test_export_normalisations_compare_equal(tmp_path: Path) -> None:
    """What tiledbvcf 0.40.3 changes on export: END added to INFO, GT moved first, floats in shortest form."""
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n"
        '##INFO=<ID=END,Number=1,Type=Integer,Description="End">\n'
        '##INFO=<ID=AF,Number=A,Type=Float,Description="AF">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n'
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="DP">\n'
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="GQ">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tX\n"
    )
    original = "chr1\t10\t.\tAC\tA\t30.0\tPASS\tAF=1.0\tGT:GQ:DP\t0/1:20:7\n"
    exported = "chr1\t10\t.\tAC\tA\t30\tPASS\tEND=11;AF=1\tGT:DP:GQ\t0/1:7:20\n"
    changed = "chr1\t10\t.\tAC\tA\t30\tPASS\tEND=11;AF=1\tGT:DP:GQ\t0|1:7:20\n"
    (tmp_path / "in.vcf").write_text(header + original)
    (tmp_path / "out.vcf").write_text(header + exported)
    (tmp_path / "phased.vcf").write_text(header + changed)

    assert cohort.sample_records(tmp_path / "in.vcf") == cohort.sample_records(tmp_path / "out.vcf")
    assert cohort.sample_records(tmp_path / "in.vcf") != cohort.sample_records(tmp_path / "phased.vcf")


# --------------------------------------------------------------------------------------------------------------------
# compare_exported


def test_identical_copies_compare_clean(tmp_path: Path, bcf_cohort: list[Path]) -> None:
    for path in bcf_cohort:
        shutil.copy(path, tmp_path / path.name)  # no index: tiledbvcf exports have none either
    assert cohort.compare_exported(_inputs(bcf_cohort), tmp_path, ".bcf") == []


def test_a_changed_record_names_the_sample_and_the_field(tmp_path: Path, bcf_cohort: list[Path]) -> None:
    for path in bcf_cohort:
        _rewrite(path, tmp_path / f"{path.name.split('.')[0]}.vcf", lambda i, r: None)
    target = cohort.sample_records(bcf_cohort[1])[5]

    def bump_dp(index: int, record: pysam.VariantRecord) -> None:
        if index == 5:
            record.samples[0]["DP"] += 1

    _rewrite(bcf_cohort[1], tmp_path / "S0001.vcf", bump_dp)

    problems = cohort.compare_exported(_inputs(bcf_cohort), tmp_path, ".vcf")
    assert len(problems) == 1
    assert problems[0].startswith(
        f"S0001: 1 record differs (input 60, exported 60), first at {target.chrom}:{target.pos}"
    )
    dp = dict(target.fmt)["DP"]
    assert f"fmt (('DP', {dp}),) != (('DP', {dp + 1}),)" in problems[0]


def test_missing_and_extra_records_and_files_are_reported(tmp_path: Path, bcf_cohort: list[Path]) -> None:
    records = cohort.sample_records(bcf_cohort[0])
    _rewrite(bcf_cohort[0], tmp_path / "S0000.vcf", lambda i, r: i not in (3, 4))
    _rewrite(bcf_cohort[1], tmp_path / "S0001.vcf", lambda i, r: None)
    shutil.copy(tmp_path / "S0001.vcf", tmp_path / "S0002.vcf")  # the wrong sample under S0002's name
    # S0003: no exported file

    problems = cohort.compare_exported(_inputs(bcf_cohort), tmp_path, ".vcf")

    assert problems[0].startswith(f"S0000: 2 records differ (input 60, exported 58), first at chr1:{records[3].pos}: ")
    assert "only in input" in problems[0]
    assert problems[1] == "S0002: exported file S0002.vcf holds sample 'S0001'"
    assert problems[2] == f"S0003: no exported file ({tmp_path / 'S0003.vcf'})"
    assert len(problems) == 3


def test_doubled_records_are_a_difference(tmp_path: Path, bcf_cohort: list[Path]) -> None:
    """Storing a sample twice without --resume doubles its records: the check must notice."""
    with (
        pysam.VariantFile(str(bcf_cohort[0])) as vcf,
        pysam.VariantFile(str(tmp_path / "S0000.vcf"), "w", header=vcf.header) as out,
    ):
        for record in vcf:
            out.write(record)
            out.write(record)
    (problem,) = cohort.compare_exported({"S0000": bcf_cohort[0]}, tmp_path, ".vcf")
    assert problem.startswith("S0000: 60 records differ (input 60, exported 120), first at chr1:")
    assert "only in export" in problem


def test_corrupt_keeps_the_index_and_breaks_reading(tmp_path: Path, bcf_cohort: list[Path]) -> None:
    path = tmp_path / bcf_cohort[0].name
    shutil.copy(bcf_cohort[0], path)
    shutil.copy(f"{bcf_cohort[0]}.csi", f"{path}.csi")
    size, index = path.stat().st_size, Path(f"{path}.csi").read_bytes()

    cohort.corrupt(path)

    assert 0 < path.stat().st_size < size
    assert Path(f"{path}.csi").read_bytes() == index
    with pytest.raises(OSError, match="truncated"):
        cohort.sample_records(path)
    (problem,) = cohort.compare_exported({"S0000": bcf_cohort[0]}, tmp_path, ".bcf")
    assert problem.startswith("S0000: cannot read exported file")


# --------------------------------------------------------------------------------------------------------------------
# The real tiledbvcf


@pytest.fixture
def tiledbvcf() -> str:
    binary = os.environ.get("TILEDBVCF")
    if not binary:
        pytest.skip("TILEDBVCF is not set: set it to a tiledbvcf binary to run the real store/export round trip")
    return binary


def _run(binary: str, *args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([binary, *map(str, args)], capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, f"tiledbvcf {args[0]} exited {result.returncode}: {result.stdout}{result.stderr}"
    return result


def _store(binary: str, tmp_path: Path, paths: list[Path], ok: bool = True) -> tuple[Path, subprocess.CompletedProcess]:
    dataset, manifest = tmp_path / "dataset", tmp_path / "manifest.txt"
    manifest.write_text("".join(f"{path}\n" for path in paths))
    _run(binary, "create", "-u", dataset)
    return dataset, _run(binary, "store", "-u", dataset, "-f", manifest, ok=ok)


@pytest.mark.parametrize("fmt", ["bcf", "vcf.gz"])
def test_real_round_trip(tiledbvcf: str, tmp_path: Path, fmt: str) -> None:
    paths = cohort.make_cohort(tmp_path / "in", 3, records=200, fmt=fmt)
    dataset, _ = _store(tiledbvcf, tmp_path, paths)
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{name}\n" for name in _inputs(paths)))

    for output, suffix in (("v", ".vcf"), ("b", ".bcf")):
        exported = tmp_path / f"out-{output}"
        exported.mkdir()
        _run(tiledbvcf, "export", "-u", dataset, "-f", names, "-d", exported, "-O", output)
        assert sorted(p.name for p in exported.iterdir()) == [f"S000{i}{suffix}" for i in range(3)]
        assert cohort.compare_exported(_inputs(paths), exported, suffix) == []


def test_real_store_fails_on_a_corrupt_sample(tiledbvcf: str, tmp_path: Path) -> None:
    paths = cohort.make_cohort(tmp_path / "in", 2, records=200)
    cohort.corrupt(paths[1])
    _, result = _store(tiledbvcf, tmp_path, paths, ok=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Error reading VCF record" in result.stdout + result.stderr
