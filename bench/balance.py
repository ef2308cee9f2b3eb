#!/usr/bin/env python3
"""How evenly the ingestion jobs share a skewed cohort: --balance count against --balance bytes.

Sample sizes are log-normal (median 5 GB; sigma 1 by default, so the largest files are some
40 times the median), seeded, in random file order. For each split, prints the largest job's
bytes over the mean job's bytes (the worst batch's, with --incremental), as the plan prints it,
and the seconds the planner took. No AWS, no tiledbvcf: the planner alone.

    python bench/balance.py [--samples 10000] [--num-jobs 100] [--incremental 1] [--sigma 1.0] [--seed 12]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tiledbvcf_batch.inputs import Sample  # noqa: E402
from tiledbvcf_batch.options import IngestOptions  # noqa: E402
from tiledbvcf_batch.plan import imbalance, ingest_batches  # noqa: E402
from tiledbvcf_batch.storage import S3Uri  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--num-jobs", type=int, default=100)
    parser.add_argument("--incremental", type=int, default=1)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    samples = [Sample(f"s3://bucket-name/cohort/S{i:07d}.vcf.gz") for i in range(args.samples)]
    sizes = {s.uri: int(rng.lognormvariate(math.log(5e9), args.sigma)) for s in samples}
    prefix = S3Uri("bucket2-name", "tiledbvcf-batch/runs/bench/")
    print(f"{args.samples} samples, {sum(sizes.values()) / 2**40:.1f} TiB (log-normal, median 5 GB, sigma "
          f"{args.sigma}, seed {args.seed}), --num-jobs {args.num_jobs}, --incremental {args.incremental}")  # fmt: skip
    print("| --balance | largest job / mean job (bytes) | planning seconds |")
    print("|---|---|---|")
    for balance in ("count", "bytes"):
        opts = IngestOptions(S3Uri("my-bucketname", "ds"), "samples.txt", prefix, num_jobs=args.num_jobs,
                             incremental=args.incremental, balance=balance)  # fmt: skip
        start = time.perf_counter()
        batches, _ = ingest_batches(samples, opts, prefix, sizes)
        took = time.perf_counter() - start
        worst = max(imbalance([share.bytes for share in batch.shares]) for batch in batches)
        print(f"| {balance} | {worst:.3f} | {took:.2f} |")


if __name__ == "__main__":
    main()
