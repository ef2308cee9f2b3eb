#!/usr/bin/env python3
"""The estimates' default throughputs: what an ingestion and an export of a generated cohort measured.

A cohort of single-sample BCFs (``demo/cohort.py``) is ingested with ``batch-ingest.py --executor local`` and
then exported whole with ``batch-export.py --executor local``, the same job commands Batch runs, with the real
tiledbvcf. Each run is watched to its end, so its record keeps its ``measured`` figures (as every run's does):
its work (the ingestion's bytes, the export's samples) and the vCPU-seconds of its jobs. The bench prints
them and the throughputs that ``tiledbvcf_batch/estimate.py`` takes as its defaults:

* ingestion: MiB of input per vCPU-second (``DEFAULT_THROUGHPUT``);
* export: samples per vCPU-second (``DEFAULT_EXPORT_THROUGHPUT``), each sample over its whole genome.

One job at a time (``--max-parallel 1``), each with ``--vcpus`` threads: a vCPU-second is a second of one
thread. Generated records are smaller and more regular than real ones; the first real run of a dataset that
is watched to its end replaces the defaults with its own figures.

    TILEDBVCF=... python bench/throughput.py [--samples 40] [--records 20000] [--vcpus 1] [--num-jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import cohort  # noqa: E402
from tiledbvcf_batch.executors.local_setup import find_tiledbvcf  # noqa: E402


def run(script: str, args: list[str], work: Path) -> dict:
    """Run a script as a user would; the record of its run (read where it said it recorded it)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / script), "--executor", "local", *args],
        capture_output=True, text=True, env={**os.environ, "TILEDBVCF_BATCH_STATE": str(work / "state")},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{script} failed ({done.returncode}):\n{done.stderr}")
    record = done.stderr.split(" recorded at ")[1].split()[0]
    return json.loads(Path(record).read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--vcpus", type=int, default=1)
    parser.add_argument("--num-jobs", type=int, default=2)
    args = parser.parse_args()
    tiledbvcf, version = find_tiledbvcf(None)
    if tiledbvcf is None:
        print(version)
        return 2
    os.environ["TILEDBVCF"] = tiledbvcf
    work = Path(tempfile.mkdtemp(prefix="tiledbvcf-throughput-"))
    try:
        measure(args, version, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def measure(args: argparse.Namespace, version: str, work: Path) -> None:
    paths = cohort.make_cohort(work / "in", args.samples, records=args.records)
    (work / "samples.txt").write_text("".join(f"{path}\n" for path in paths))
    (work / "names.txt").write_text("".join(f"{path.name.split('.')[0]}\n" for path in paths))
    (work / "all.bed").write_text("".join(f"{c}\t0\t{cohort.CONTIG_LENGTH}\n" for c in ("chr1", "chr2", "chr3")))
    (work / "out").mkdir()
    common = ["--vcpus", str(args.vcpus), "--num-jobs", str(args.num_jobs), "--max-parallel", "1"]
    where = ["--dataset-uri", str(work / "ds"), "--metadata-s3", str(work / "meta"), *common]
    ingested = run("batch-ingest.py", [*where, "--samples", str(work / "samples.txt"), "--no-consolidate"], work)
    exported = run("batch-export.py", [*where, "--samples", str(work / "names.txt"), "--bed", str(work / "all.bed"),
                                       "--dest-s3", str(work / "out")], work)  # fmt: skip
    size = sum(path.stat().st_size for path in paths)
    print(f"tiledbvcf {version}; {args.samples} samples of {args.records} records ({size / 2**20:.1f} MiB of BCF), "
          f"{args.num_jobs} jobs of {args.vcpus} vCPU, one at a time")  # fmt: skip
    for kind, record, unit, scale, said in (("ingestion", ingested, "bytes", 2**20, "MiB"),
                                            ("export", exported, "samples", 1, "samples")):  # fmt: skip
        measured = record.get("measured") or {}
        if not measured:
            print(f"{kind}: no measure in its record (did every job succeed?)")
            continue
        rate = measured[unit] / measured["vcpu_seconds"] / scale
        print(f"{kind}: {measured[unit] / scale:.2f} {said} in {measured['vcpu_seconds']:.1f} vCPU-seconds: "
              f"{rate:.3f} {said} per vCPU-second")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
