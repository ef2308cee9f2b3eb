#!/usr/bin/env python3
"""Repair throughput on this machine (``--repair-to``): files a second for each kind of repair.

Generates ``--files`` inputs of each kind with ``demo/cohort.py`` (``--records`` records each, 3 contigs):

- ``index``: BGZF BCFs without their index (the job builds a .csi);
- ``recompress``: VCFs compressed with plain gzip (the job writes them again as BGZF, then indexes them);
- ``split``: multi-sample VCFs (BGZF, indexed) of ``--split-samples`` samples each, a sample's records with its
  column repeated (the job splits each into one BGZF VCF a sample and indexes those).

Each kind is repaired two ways, through the image's entrypoint as the jobs run it (``image/entrypoint.py
repair -f MANIFEST -d DIR``, bcftools as ``BCFTOOLS`` or PATH gives it), into a fresh directory each time:

1. one job repairing all the files of its manifest: the repair's own throughput;
2. one job a file, one after another, as the repair stage plans it (a job an input): the entrypoint's start
   (Python, the package) is paid for each file.

Best of ``--repeat``. Files a second, and the inputs' MB a second.

    .venv/bin/python bench/repair.py [--files 20] [--records 2000] [--split-samples 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import pysam  # noqa: E402

import cohort  # noqa: E402
from tiledbvcf_batch.repair import INDEX, RECOMPRESS, SPLIT, Repair, repair_of  # noqa: E402
from tiledbvcf_batch.storage import LocalPath  # noqa: E402

ENTRYPOINT = ROOT / "image" / "entrypoint.py"


def index_inputs(work: Path, files: int, records: int) -> list[tuple[Path, list[str]]]:
    made = cohort.make_cohort(work / "index", files, records=records, prefix="I")
    for path in made:
        Path(f"{path}.csi").unlink()
    return [(path, [path.name.removesuffix(".bcf")]) for path in made]


def recompress_inputs(work: Path, files: int, records: int) -> list[tuple[Path, list[str]]]:
    made = cohort.make_cohort(work / "made-r", files, records=records, prefix="R")
    (work / "recompress").mkdir()
    inputs = []
    for path in made:
        target = work / "recompress" / path.name.replace(".bcf", ".vcf.gz")
        target.write_bytes(gzip.compress(pysam.bcftools.view("--no-version", str(path)).encode()))
        inputs.append((target, [path.name.removesuffix(".bcf")]))
    return inputs


def split_inputs(work: Path, files: int, records: int, samples: int) -> list[tuple[Path, list[str]]]:
    """Multi-sample VCFs: a cohort sample's records, its column repeated under ``samples`` names (random samples
    of the cohort would not merge: their records meet at positions with different REF alleles)."""
    made = cohort.make_cohort(work / "made-s", files, records=records, prefix="M")
    (work / "split").mkdir()
    inputs = []
    for number, path in enumerate(made):
        names = [f"F{number:04d}-{member}" for member in range(samples)]
        lines = []
        for line in pysam.bcftools.view("--no-version", str(path)).splitlines():
            if line.startswith("##"):
                lines.append(line)
            else:
                fields = line.split("\t")
                columns = names if line.startswith("#") else [fields[9]] * samples
                lines.append("\t".join(fields[:9] + columns))
        plain = work / "split" / f"family{number:04d}.vcf"
        plain.write_text("\n".join(lines) + "\n")
        target = Path(f"{plain}.gz")
        pysam.bcftools.view("--no-version", "-Oz", "-o", str(target), "--write-index", str(plain), catch_stdout=False)
        plain.unlink()
        inputs.append((target, names))
    return inputs


def job(manifest: Path, work: Path) -> None:
    """One repair job through the entrypoint; it must succeed."""
    done = subprocess.run([sys.executable, str(ENTRYPOINT), "repair", "-f", str(manifest), "-d", str(work)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the repair job failed: {done.stderr.strip()}")


def timed_run(kind: str, inputs: list[tuple[Path, list[str]]], work: Path, per_file: bool) -> float:
    """Seconds to repair all ``inputs`` into a fresh directory: one job, or one job a file."""
    out = Path(tempfile.mkdtemp(prefix="out-", dir=work))
    repairs = [repair_of(kind, str(path), names, LocalPath(str(out)), False) for path, names in inputs]
    groups: list[list[Repair]] = [[repair] for repair in repairs] if per_file else [repairs]
    manifests = []
    for number, group in enumerate(groups):
        manifest = out / f"repair-{number:04d}.txt"
        manifest.write_text("".join(repair.line() + "\n" for repair in group))
        manifests.append(manifest)
    start = time.perf_counter()
    for manifest in manifests:
        job(manifest, work)
    seconds = time.perf_counter() - start
    made = sum(len(repair.outputs) for repair in repairs)
    assert len(list(out.glob("*.csi"))) == made, f"{kind}: {made} indexes expected"
    shutil.rmtree(out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20, help="inputs of each kind")
    parser.add_argument("--records", type=int, default=2000, help="records a sample")
    parser.add_argument("--split-samples", type=int, default=4, help="samples of each multi-sample input")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bcftools = os.environ.get("BCFTOOLS") or shutil.which("bcftools")
    if not bcftools:
        raise SystemExit("bcftools not found: install it (apt install bcftools) or set BCFTOOLS")
    version = subprocess.run([bcftools, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    with tempfile.TemporaryDirectory(prefix="bench-repair-") as folder:
        work = Path(folder)
        start = time.perf_counter()
        kinds = {
            INDEX: index_inputs(work, args.files, args.records),
            RECOMPRESS: recompress_inputs(work, args.files, args.records),
            SPLIT: split_inputs(work, args.files, args.records, args.split_samples),
        }
        made = time.perf_counter() - start
        print(f"{args.files} inputs of each kind, {args.records} records a sample, split inputs of "
              f"{args.split_samples} samples; {version}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; "
              f"inputs made in {made:.0f} s; best of {args.repeat}")  # fmt: skip
        print()
        print("| repair | input MB | one job for all: s | files/s | MB/s | a job a file: s | files/s |")
        print("|---|---|---|---|---|---|---|")
        for kind, inputs in kinds.items():
            megabytes = sum(path.stat().st_size for path, _ in inputs) / 1e6
            together = min(timed_run(kind, inputs, work, False) for _ in range(args.repeat))
            apart = min(timed_run(kind, inputs, work, True) for _ in range(args.repeat))
            files = len(inputs)
            print(f"| {kind} | {megabytes:.1f} | {together:.2f} | {files / together:.1f} | {megabytes / together:.1f} "
                  f"| {apart:.2f} | {files / apart:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
