#!/usr/bin/env python3
"""Waiting on a run: what one wait_for_jobs until done costs in DescribeJobs calls, on a simulated Batch.

A stage of --jobs jobs (1,000) on a compute environment that runs --slots (100) at a time: each
job is SUBMITTED, PENDING after 1-5 s, RUNNABLE after 1-10 s more, STARTING when a slot frees,
RUNNING 30-120 s later, and stops after 10-27 minutes; --failures of them (3) fail. Seeded: about
3.6 hours in all. The clock is fake: sleeping moves it, nothing really waits. The simulated Batch
answers DescribeJobs (jobs and array parents, with arrayProperties.size and statusSummary, as
tests/test_array_jobs.py's ArrayBatch), and counts every call.

Rows, each one wait from submission until done through the product's BatchExecutor.describe:

- per-job, before: the backoff this repository had, REIMPLEMENTED HERE (``wait_before``): the poll
  interval went back to 10 s whenever any job changed state;
- per-job, now: ``watch.wait_for_jobs`` with the stage as its group, as watch_run passes it;
- array: ``watch.wait_for_jobs`` on the 1,000 children (``<parent>:<index>``) of one array job;
  then the same without failures.

    python bench/waiting.py [--jobs 1000] [--slots 100] [--failures 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tiledbvcf_batch.aws import Clients  # noqa: E402
from tiledbvcf_batch.executors.base import TERMINAL_STATUSES, JobDescription  # noqa: E402
from tiledbvcf_batch.executors.batch import BatchExecutor  # noqa: E402
from tiledbvcf_batch.watch import Latest, wait_for_jobs  # noqa: E402

PARENT = "array-parent"


@dataclass(frozen=True)
class Job:
    """When a simulated job reaches each status (seconds after submission), and how it ends."""

    pending: float
    runnable: float
    starting: float
    running: float
    stopped: float
    failed: bool

    def status(self, now: float) -> str:
        for status, since in (("SUCCEEDED", self.stopped), ("RUNNING", self.running), ("STARTING", self.starting),
                              ("RUNNABLE", self.runnable), ("PENDING", self.pending)):  # fmt: skip
            if now >= since:
                return "FAILED" if status == "SUCCEEDED" and self.failed else status
        return "SUBMITTED"


def simulate(jobs: int, slots: int, failures: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    free = [0.0] * slots  # when each slot is free again
    failed = set(rng.sample(range(jobs), failures))
    simulated = []
    for j in range(jobs):
        pending = rng.uniform(1, 5)
        runnable = pending + rng.uniform(1, 10)
        starting = max(runnable, heapq.heappop(free))
        running = starting + rng.uniform(30, 120)
        stopped = running + rng.uniform(10 * 60, 27 * 60)
        heapq.heappush(free, stopped + rng.uniform(0, 30))
        simulated.append(Job(pending, runnable, starting, running, stopped, j in failed))
    return simulated


@dataclass
class Clock:
    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class SimulatedBatch:
    """DescribeJobs over the simulated jobs, at the clock's time; every call counted.

    Per-job mode: job ``j`` is ``job-j``. Array mode: one array ``PARENT`` whose child i is ``PARENT:i``.
    """

    jobs: list[Job]
    clock: Clock
    describe_calls: int = 0
    descriptions: int = 0

    def description(self, job_id: str) -> JobDescription:
        index = int(job_id.rpartition(":" if ":" in job_id else "-")[2])
        job, now = self.jobs[index], self.clock.now
        status = job.status(now)
        attempts: list[Any] = []
        if now >= job.running:
            attempt: dict[str, Any] = {"startedAt": int(1000 * job.running), "container": {}}
            if status in TERMINAL_STATUSES:
                attempt["stoppedAt"] = int(1000 * job.stopped)
                attempt["container"] = {"exitCode": 1 if job.failed else 0}
            attempts.append(attempt)
        return {"jobId": job_id, "jobName": "tiledbvcf-ingest", "status": status, "statusReason": "",
                "attempts": attempts}  # type: ignore[typeddict-item]  # fmt: skip

    def parent(self) -> dict[str, Any]:
        statuses = [job.status(self.clock.now) for job in self.jobs]
        summary = {status: statuses.count(status) for status in set(statuses)}
        ended = summary.get("SUCCEEDED", 0) + summary.get("FAILED", 0) == len(statuses)
        status = ("FAILED" if "FAILED" in summary else "SUCCEEDED") if ended else "PENDING"
        if not ended and any(s in summary for s in ("STARTING", "RUNNING", "SUCCEEDED", "FAILED")):
            status = "RUNNING"
        return {"jobId": PARENT, "jobName": "tiledbvcf-ingest-1", "status": status, "statusReason": "",
                "arrayProperties": {"size": len(statuses), "statusSummary": summary}}  # fmt: skip

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        assert len(jobs) <= 100, len(jobs)
        self.describe_calls += 1
        found = [self.parent() if job_id == PARENT else self.description(job_id) for job_id in jobs]
        self.descriptions += len(found)
        return {"jobs": found}


@dataclass
class CountingExecutor(BatchExecutor):
    """The product's BatchExecutor; the DescribeJobs calls of each poll (each describe) are noted."""

    per_poll: list[int] = field(default_factory=list)

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        batch: SimulatedBatch = self.clients.batch
        before = batch.describe_calls
        try:
            return super().describe(ids)
        finally:
            self.per_poll.append(batch.describe_calls - before)


def wait_before(
    executor: BatchExecutor,
    job_ids: Sequence[str],
    *,
    interval: float = 10.0,
    max_interval: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Latest:
    """BEFORE, reimplemented for comparison (not the product's code): wait_for_jobs as it was.

    The interval backed off while nothing changed, and went back to ``interval`` whenever any job
    changed state. (Its throttling and forgotten-job handling is left out: neither happens here.)
    """
    latest: Latest = {}
    pending = list(job_ids)
    delay = interval
    while pending:
        described = executor.describe(pending)
        changed = any(latest.get(job_id, {}).get("status") != d["status"] for job_id, d in described.items())
        latest.update(described)
        pending = [i for i in pending if latest.get(i, {}).get("status") not in TERMINAL_STATUSES]
        if pending:
            delay = interval if changed else min(delay * 2, max_interval)
            sleep(delay)
    return latest


@dataclass
class Row:
    name: str
    polls: int
    describe_calls: int
    descriptions: int
    per_poll_max: int  # while the jobs run: every poll but the last
    at_end: int  # the last poll (an array's children are described once, when it has ended)
    late: float  # seconds from the last job's end to the end of the wait
    took: float  # seconds of this machine's CPU


def measure(name: str, jobs: list[Job], array: bool, before: bool = False) -> Row:
    clock = Clock()
    batch = SimulatedBatch(jobs, clock)
    executor = CountingExecutor(Clients("us-east-1", batch, None, None), "queue", "definition", array_jobs=array)
    ids = [f"{PARENT}:{i}" for i in range(len(jobs))] if array else [f"job-{i}" for i in range(len(jobs))]
    start = time.process_time()
    if before:
        latest = wait_before(executor, ids, sleep=clock.sleep)
    else:
        latest = wait_for_jobs(executor, ids, sleep=clock.sleep, groups=[ids])
    took = time.process_time() - start
    expected = ["FAILED" if job.failed else "SUCCEEDED" for job in jobs]
    assert [latest[job_id]["status"] for job_id in ids] == expected, "the wait ended on the wrong statuses"
    assert not any(d.get("estimated") for d in latest.values())
    late = clock.now - max(job.stopped for job in jobs)
    polls = len(executor.per_poll)
    return Row(name, polls, batch.describe_calls, batch.descriptions, max(executor.per_poll[:-1], default=0),
               executor.per_poll[-1], late, took)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--failures", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    jobs = simulate(args.jobs, args.slots, args.failures, args.seed)
    clean = [Job(j.pending, j.runnable, j.starting, j.running, j.stopped, False) for j in jobs]
    rows = [
        measure("per-job, **before** (reset on any change; reimplemented here)", jobs, array=False, before=True),
        measure("per-job, now", jobs, array=False),
        measure(f"array of {args.jobs}, now", jobs, array=True),
        measure(f"array of {args.jobs}, now, no failure", clean, array=True),
    ]
    hours = max(job.stopped for job in jobs) / 3600
    print(f"{args.jobs} jobs of one stage, {args.slots} at a time, {args.failures} failing, seed {args.seed}: the "
          f"last ends {hours:.2f} h after submission. Polling from 10 s, doubling up to 60 s.")  # fmt: skip
    print()
    print("| wait | polls | DescribeJobs | descriptions returned | DescribeJobs per poll while running (mean / max) "
          "| DescribeJobs at the end | wait ended after the last job | CPU s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        running = (r.describe_calls - r.at_end) / max(r.polls - 1, 1)
        print(f"| {r.name} | {r.polls} | {r.describe_calls} | {r.descriptions} | {running:.2f} / {r.per_poll_max} "
              f"| {r.at_end} | {r.late:.0f} s | {r.took:.1f} |")  # fmt: skip
    array = [r for r in rows if r.name.startswith("array")]
    print()
    print("| target | measured | met |")
    print("|---|---|---|")
    for r in array:
        met = "yes" if r.per_poll_max <= 1 else "**no**"
        print(f"| {r.name}: at most one DescribeJobs per stage per poll | max {r.per_poll_max} in a poll while it "
              f"runs, then {r.at_end} once to describe the children | {met} |")  # fmt: skip


if __name__ == "__main__":
    main()
