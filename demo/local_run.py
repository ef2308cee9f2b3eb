#!/usr/bin/env python3
"""The main job, on this machine: a real ingestion and export with the real tiledbvcf.

Generates a small cohort of single-sample BCFs, ingests it with ``batch-ingest.py --executor
local`` (the very job commands AWS Batch would run), prints ``tiledbvcf stat``, exports every
sample back with ``batch-export.py --executor local``, and checks that every exported record
equals its input. Where no tiledbvcf is installed, it says how to get one and runs the
emulated-Batch walkthrough (``local_aws.py``) instead.

    python demo/local_run.py [--samples 12] [--records 300] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import cohort  # noqa: E402
import local_aws  # noqa: E402
from tiledbvcf_batch.executors.local_setup import INSTALL_HINT, find_tiledbvcf  # noqa: E402

BED = "".join(f"{contig}\t0\t100000000\n" for contig in ("chr1", "chr2", "chr3"))


NO_TILEDBVCF = 2  # the exit status when no tiledbvcf ran the main job (the walkthrough ran instead)


def run(args: list[str], cwd: Path) -> int:
    """Run a script as a user would, showing the command and its output."""
    shown = " ".join(str(arg) for arg in args)
    print(f"\n$ python {shown}", flush=True)
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=dict(os.environ)).returncode


def ingest_and_export(tiledbvcf: str, work: Path, count: int, records: int) -> int:
    inputs = cohort.make_cohort(work / "samples", count, records=records)
    print(f"Generated {count} single-sample BCFs ({records} records each, 3 contigs) in {work / 'samples'}")
    (work / "samples.txt").write_text("".join(f"samples/{path.name}\n" for path in inputs))
    dataset = work / "dataset"
    code = run([ROOT / "batch-ingest.py", "--executor", "local", "--dataset-uri", dataset, "--samples",
                "samples.txt", "--metadata-s3", work / "metadata", "--num-jobs", "3", "--vcpus", "1",
                "--memory", "2048"], work)  # fmt: skip
    if code != 0:
        return code
    print(f"\n$ tiledbvcf stat -u {dataset}", flush=True)
    subprocess.run([tiledbvcf, "stat", "-u", str(dataset)], check=True)
    names = subprocess.run([tiledbvcf, "list", "-u", str(dataset)], capture_output=True, text=True, check=True).stdout
    (work / "names.txt").write_text(names)
    (work / "regions.bed").write_text(BED)
    code = run([ROOT / "batch-export.py", "--executor", "local", "--dataset-uri", dataset, "--dest-s3",
                work / "exports", "--samples", "names.txt", "--bed", "regions.bed", "--num-jobs", "2",
                "--vcpus", "1", "--memory", "2048"], work)  # fmt: skip
    if code != 0:
        return code
    problems = cohort.compare_exported({p.name.removesuffix(".bcf"): p for p in inputs}, work / "exports", ".bcf")
    for problem in problems:
        print(f"MISMATCH {problem}")
    if problems:
        return 1
    print(f"\nAll {count} samples exported back: every record equals its input.")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--tiledbvcf", help="the tiledbvcf to run (default: $TILEDBVCF, else PATH)")
    args = parser.parse_args()
    tiledbvcf, version = find_tiledbvcf(args.tiledbvcf)
    if tiledbvcf is None:
        why = version if INSTALL_HINT in version else f"{version}: {INSTALL_HINT}"  # the hint once
        print(f"No real run: {why}.\nShowing the emulated AWS Batch walkthrough instead.\n", flush=True)
        # The main job did not run: exit 2, as batch-ingest.py --executor local does without tiledbvcf, so that
        # a script or CI does not take the walkthrough for it (a walkthrough that fails keeps its own status).
        return local_aws.main() or NO_TILEDBVCF
    print(f"Running the main job on this machine with {version} ({tiledbvcf}).")
    os.environ["TILEDBVCF"] = tiledbvcf
    work = Path(tempfile.mkdtemp(prefix="tiledbvcf-demo-"))
    os.environ["TILEDBVCF_BATCH_STATE"] = str(work / "state")
    try:
        return ingest_and_export(tiledbvcf, work, args.samples, args.records)
    finally:
        if args.keep:
            print(f"Kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
