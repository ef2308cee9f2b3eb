#!/usr/bin/env python3
"""The local executor's cost: a real ingestion of a generated cohort, against the same commands by hand.

Three ways of ingesting the same cohort into a fresh dataset, each timed from start to end:

1. ``batch-ingest.py --executor local --max-parallel 1``: the whole script (checks, plan,
   manifests, run record, the jobs one at a time, the report);
2. by hand: ``tiledbvcf create``, then the very ``store`` commands of that plan, one after another;
3. ``batch-ingest.py --executor local --max-parallel 2``.

The overhead is (1) against (2); the speed-up is (1) against (3). Each is run --repeat times, into
a fresh dataset each time, and the best time is kept (the machine's noise is larger than the
overhead). The executor's own time, (1) less the time its jobs ran (the sum of each job's recorded
start to stop: the scheduler's gaps between jobs are the executor's), is printed too: it does not
move with tiledbvcf's noise. Needs TILEDBVCF (or tiledbvcf on PATH).

The project's modules are compiled first, as a user's Python has them from the second run on
(``PYTHONDONTWRITEBYTECODE``, which this machine sets, would otherwise make every run compile
them again: about 0.2 s a run). ``--cold`` runs the scripts as this machine does: the project's
compiled modules removed before each run, none written (Python's own and the installed packages'
are compiled when installed, and kept).

    TILEDBVCF=... python bench/local.py [--samples 200] [--records 2000] [--num-jobs 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "demo")]

import cohort  # noqa: E402
from tiledbvcf_batch.commands import create_command  # noqa: E402
from tiledbvcf_batch.executors.local_setup import find_tiledbvcf  # noqa: E402
from tiledbvcf_batch.inputs import read_samples_file  # noqa: E402
from tiledbvcf_batch.options import IngestOptions  # noqa: E402
from tiledbvcf_batch.plan import ingest_batches, plan_ingest  # noqa: E402
from tiledbvcf_batch.storage import LocalPath  # noqa: E402


def timed(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def with_executor(
    work: Path, samples: Path, name: str, num_jobs: int, parallel: int, cold: bool
) -> tuple[float, float]:
    """The whole script, as a user runs it (without the consolidation jobs: by hand runs none either).

    Its wall time, and the time its jobs ran (the sum of their attempts' start to stop, from their states).
    """
    state = work / f"state-{name}"
    env = {**os.environ, "TILEDBVCF_BATCH_STATE": str(state)}
    if cold:  # the project's compiled modules neither read nor written
        for cache in ROOT.glob("**/__pycache__"):
            if ".venv" not in cache.parts:
                shutil.rmtree(cache)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    wall = timed([sys.executable, str(ROOT / "batch-ingest.py"), "--executor", "local", "--dataset-uri",
                  str(work / name), "--samples", str(samples), "--metadata-s3", str(work / f"meta-{name}"),
                  "--num-jobs", str(num_jobs), "--vcpus", "1", "--max-parallel", str(parallel),
                  "--scratch-path", str(work / "scratch"), "--no-consolidate"], env=env)  # fmt: skip
    jobs = [json.loads(path.read_text()) for path in state.glob("*/*.json")]
    ran = sum(a["stoppedAt"] - a["startedAt"] for job in jobs for a in job.get("attempts", []))
    return wall, ran / 1000


def by_hand(tiledbvcf: str, work: Path, samples: Path, name: str, num_jobs: int) -> float:
    """The same create and store commands as the executor's plan, run one after another."""
    opts = IngestOptions(LocalPath(str(work / name)), str(samples), LocalPath(str(work / f"meta-{name}")),
                         num_jobs=num_jobs, vcpus=1, scratch_path=str(work / "scratch"))  # fmt: skip
    prefix = LocalPath(str(work / f"meta-{name}/runs/r/"))
    batches, _ = ingest_batches(read_samples_file(str(samples), local=True), opts, prefix)
    plan = plan_ingest(opts, batches, "r", prefix)
    for manifest in plan.manifests():  # what the script uploads; not timed
        Path(manifest.uri.key).parent.mkdir(parents=True, exist_ok=True)
        Path(manifest.uri.key).write_bytes(manifest.body())
    start = time.perf_counter()
    for args in [create_command(opts), *(list(task.args) for task in plan.tasks if task.stage.kind == "ingest")]:
        subprocess.run([tiledbvcf, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--num-jobs", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="remove the project's compiled modules before each run")
    args = parser.parse_args()
    if not args.cold:
        compileall.compile_dir(ROOT / "tiledbvcf_batch", quiet=1)
        compileall.compile_file(ROOT / "common.py", quiet=1)
        compileall.compile_file(ROOT / "flags.py", quiet=1)
    tiledbvcf, version = find_tiledbvcf(None)
    if tiledbvcf is None:
        print(version)
        return 2
    os.environ["TILEDBVCF"] = tiledbvcf
    work = Path(tempfile.mkdtemp(prefix="tiledbvcf-bench-"))
    try:
        return measure(args, tiledbvcf, version, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, tiledbvcf: str, version: str, work: Path) -> int:
    (work / "scratch").mkdir()
    inputs = cohort.make_cohort(work / "in", args.samples, records=args.records)
    samples = work / "samples.txt"
    samples.write_text("".join(f"{path}\n" for path in inputs))
    walls: dict[str, list[float]] = {"serial": [], "hand": [], "parallel": [], "own": []}

    def serial(i: int) -> None:
        wall, ran = with_executor(work, samples, f"serial-{i}", args.num_jobs, 1, args.cold)
        walls["serial"].append(wall)
        walls["own"].append(wall - ran)

    def hand(i: int) -> None:
        walls["hand"].append(by_hand(tiledbvcf, work, samples, f"by-hand-{i}", args.num_jobs))

    def parallel(i: int) -> None:
        walls["parallel"].append(with_executor(work, samples, f"parallel-{i}", args.num_jobs, 2, args.cold)[0])

    runs = [serial, hand, parallel]
    for i in range(args.repeat):  # interleaved, in turns, so that a slow moment or a warm cache favours none
        for run in runs[i % 3 :] + runs[: i % 3]:
            run(i)
    serial_s, hand_s, parallel_s, own = (min(walls[name]) for name in ("serial", "hand", "parallel", "own"))
    modules = "run from source (--cold)" if args.cold else "compiled"
    print(f"{args.samples} samples x {args.records} records, --num-jobs {args.num_jobs}, {version}, "
          f"{os.cpu_count()} cores, best of {args.repeat}, the project's modules {modules}")  # fmt: skip
    print("| run | seconds |")
    print("|---|---|")
    print(f"| by hand: create + {args.num_jobs} store commands, one after another | {hand_s:.2f} |")
    print(f"| batch-ingest.py --executor local --max-parallel 1 | {serial_s:.2f} |")
    print(f"| batch-ingest.py --executor local --max-parallel 2 | {parallel_s:.2f} |")
    print(f"overhead of the executor: {100 * (serial_s - hand_s) / hand_s:+.1f}% ({serial_s - hand_s:+.2f} s); "
          f"its own time (wall less its jobs' run): {own:.2f} s = {100 * own / hand_s:.1f}% of by hand; "
          f"speed-up from --max-parallel 2: {serial_s / parallel_s:.2f}x")  # fmt: skip
    print("every run, seconds: " + "; ".join(f"{name} " + " ".join(f"{t:.2f}" for t in times)
                                             for name, times in walls.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
