#!/usr/bin/env python3
"""Right-sized export queries: ``tiledbvcf export`` with its own defaults against the budget and threads a job gets.

A cohort of ``--samples`` single-sample BCFs (``demo/cohort.py``) is stored into a local dataset with the real
tiledbvcf, then every sample is exported over a BED of whole contigs, one ``export`` at a time, in these ways:

1. tiledbvcf's defaults: ``-b`` 2048 MB and TileDB's threads from the host's cores;
2. the budget ``batch-export.py`` gives a job of ``--memory`` MiB, threads from the host;
3. that budget and the threads it gives a job of ``--vcpus`` (the job's command exactly, from
   ``tiledbvcf_batch.commands.export_command``);
4. that budget with the threads tiledbvcf would take on a 96-core host (what a container of a few vCPUs sees there:
   compute 1.5 x 96, I/O 96), on this machine's cores.

Each is run ``--repeat`` times, the ways taking turns (the machine's load moves; interleaving spreads it over all of
them), and the best and the median wall time are printed with the peak resident memory of tiledbvcf (its own, from
``wait4``). ``--sweep MB,MB,...`` also prints the peak memory at each of those budgets (one run each): what tiledbvcf
holds beyond ``-b``. Needs TILEDBVCF (or tiledbvcf on PATH) and pysam (requirements-dev.txt).

    TILEDBVCF=... python bench/export_budget.py [--samples 300] [--records 5000] [--repeat 5] [--memory 15000]
        [--vcpus 4] [--sweep 256,2048,8192] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import cohort  # noqa: E402
from tiledbvcf_batch.commands import COMPUTE_THREADS, IO_THREADS, export_command  # noqa: E402
from tiledbvcf_batch.executors.local_setup import find_tiledbvcf  # noqa: E402
from tiledbvcf_batch.options import ExportOptions  # noqa: E402
from tiledbvcf_batch.storage import LocalPath  # noqa: E402

BIG_HOST_CORES = 96  # an m5.24xlarge: tiledbvcf asks for 1.5 times the cores it sees as compute threads


@dataclass(frozen=True)
class Way:
    name: str
    args: list[str]  # the export's arguments, less -d

    def budget(self) -> str:
        return value(self.args, "-b") or "2048 (default)"

    def threads(self) -> str:
        config = dict(item.split("=", 1) for item in (value(self.args, "--tiledb-config") or "").split(",") if item)
        if COMPUTE_THREADS not in config:
            return "host's"
        return f"{config[COMPUTE_THREADS]} / {config[IO_THREADS]}"


def value(args: Sequence[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def without(args: Sequence[str], *flags: str) -> list[str]:
    """``args`` less each of ``flags`` and its value."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in flags:
            skip = True
        else:
            kept.append(arg)
    return kept


def ways(dataset: Path, names: Path, bed: Path, memory: int, vcpus: int) -> list[Way]:
    unused = LocalPath("/unused")  # the destination and the run record: the bench exports into a directory of its own
    opts = ExportOptions(dataset_uri=LocalPath(str(dataset)), dest_s3=unused, metadata_s3=unused,
                         samples=LocalPath(str(names)), bed=LocalPath(str(bed)), memory=memory, vcpus=vcpus,
                         scratch_path=unused.key)  # fmt: skip
    job = without(export_command(opts, str(names)), "--upload-dir", "-d")  # the job's command, less its upload
    big_host = f"{COMPUTE_THREADS}={int(BIG_HOST_CORES * 1.5)},{IO_THREADS}={BIG_HOST_CORES}"
    return [
        Way("tiledbvcf's defaults", without(job, "-b", "--tiledb-config")),
        Way(f"budget of a {memory} MiB job", without(job, "--tiledb-config")),
        Way(f"budget and threads of a {vcpus}-vCPU, {memory} MiB job", job),
        Way(
            f"that budget, threads of a {BIG_HOST_CORES}-core host",
            [*without(job, "--tiledb-config"), "--tiledb-config", big_host],
        ),
    ]


def run(tiledbvcf: str, args: list[str], out: Path, expected: int) -> tuple[float, float]:
    """Wall seconds and tiledbvcf's peak resident MB of one export into an empty ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    child = subprocess.Popen([tiledbvcf, *args, "-d", str(out)], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    files = len(list(out.glob("*.bcf")))
    if os.waitstatus_to_exitcode(status) != 0 or files != expected:
        raise SystemExit(f"export {' '.join(args)} failed: exit status {status}, {files} of {expected} files")
    return elapsed, usage.ru_maxrss / 1024


def make_dataset(tiledbvcf: str, work: Path, samples: int, records: int) -> tuple[Path, Path, Path, float]:
    start = time.perf_counter()
    paths = cohort.make_cohort(work / "samples", samples, records=records)
    manifest = work / "manifest.txt"
    manifest.write_text("".join(f"{path}\n" for path in paths))
    dataset = work / "dataset"
    subprocess.run([tiledbvcf, "create", "-u", str(dataset)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([tiledbvcf, "store", "-u", str(dataset), "-f", str(manifest), "-t", str(os.cpu_count() or 1)],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    names = work / "names.txt"
    names.write_text("".join(f"{path.name.removesuffix('.bcf')}\n" for path in paths))
    bed = work / "regions.bed"
    bed.write_text("".join(f"{contig}\t0\t{cohort.CONTIG_LENGTH}\n" for contig in ("chr1", "chr2", "chr3")))
    return dataset, names, bed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--records", type=int, default=5000, help="records per sample")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--memory", type=int, default=15000, help="the job's --memory (MiB): batch-export's default")
    parser.add_argument("--vcpus", type=int, default=4, help="the job's --vcpus: batch-export's default")
    parser.add_argument("--sweep", default="", help="budgets (MB, comma-separated) to measure peak memory at")
    parser.add_argument("--work", type=Path, help="a directory to keep the cohort and dataset in (default: temporary)")
    args = parser.parse_args()
    tiledbvcf, version = find_tiledbvcf(None)
    if tiledbvcf is None:
        raise SystemExit(version)
    work = args.work or Path(tempfile.mkdtemp(prefix="export-budget-"))
    try:
        dataset, names, bed, made = make_dataset(tiledbvcf, work, args.samples, args.records)
        print(f"{version}; {args.samples} samples x {args.records} records: cohort and dataset made in {made:.1f} s; "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")  # fmt: skip
        chosen = ways(dataset, names, bed, args.memory, args.vcpus)
        times: dict[str, list[float]] = {way.name: [] for way in chosen}
        peaks: dict[str, float] = {}
        for _ in range(args.repeat):
            for way in chosen:
                elapsed, peak = run(tiledbvcf, way.args, work / "out", args.samples)
                times[way.name].append(elapsed)
                peaks[way.name] = max(peaks.get(way.name, 0.0), peak)
        print(f"\n| export of {args.samples} samples | -b (MB) | threads (compute / I/O) | best (s) | median (s) | "
              "peak RSS (MB) |\n|---|---|---|---|---|---|")  # fmt: skip
        for way in chosen:
            print(f"| {way.name} | {way.budget()} | {way.threads()} | {min(times[way.name]):.2f} | "
                  f"{statistics.median(times[way.name]):.2f} | {peaks[way.name]:.0f} |")  # fmt: skip
        budgets = [int(mb) for mb in args.sweep.split(",") if mb.strip()]
        if budgets:
            print("\n| -b (MB) | peak RSS (MB) |\n|---|---|")
            base = without(chosen[0].args, "-b")
            for mb in budgets:
                _, peak = run(tiledbvcf, [*base, "-b", str(mb)], work / "out", args.samples)
                print(f"| {mb} | {peak:.0f} |")
        print(f"\nload {os.getloadavg()[0]:.2f} at the end")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
