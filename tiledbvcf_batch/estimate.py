"""An estimate before spending: the instance-hours, wall time and cost of a run, from its work.

Pure arithmetic. An ingestion's work is its samples' bytes; an export's is its samples (each job exports its
names over the regions; with --merge every job exports all names over a share of the regions, so a job's work
is the names over the jobs). The throughput ``T`` (work per vCPU-second) is learned from earlier runs of the
same kind and dataset that were watched to their end (their records keep ``measured``: the work and the
vCPU-seconds of the ingestion or export jobs), ``T = sum(work) / sum(vCPU-seconds)``; else it is the kind's
default (``Rate.default``, measured by ``bench/throughput.py``). Then, for the ingestion or export jobs only
(creation, registration and consolidation jobs are short and not counted):

* vCPU-seconds = the run's work / T
* instance-hours = vCPU-seconds / INSTANCE_VCPUS / 3600 (instances packed full)
* wall time = per stage (an ingestion batch), its largest job's work / (T x its vCPUs), summed over stages (a
  stage's jobs all run at once)
* cost = instance-hours x --instance-price
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .executors.base import JobDescription, attempt_seconds
from .plan import Plan

# Measured with bench/throughput.py --samples 20 --records 100000 (README "Estimates"): the real tiledbvcf
# 0.40.3 on a 2-core machine, 20 generated single-sample BCFs of 100,000 records (1.1 MiB each), jobs of 1 vCPU:
# store took 2.34 MiB of BCF per vCPU-second; export gave 2.5 samples per vCPU-second, each over its whole
# genome (about an exome's worth of records). Real samples differ (a genome's export takes far longer): the
# first run of a dataset watched to its end replaces these with its own figures.
DEFAULT_THROUGHPUT = 2.34 * 2**20
DEFAULT_EXPORT_THROUGHPUT = 2.5
# vCPUs of the documented instance type (m5.4xlarge), as report.DEFAULT_INSTANCE_PRICE.
INSTANCE_VCPUS = 16


@dataclass(frozen=True)
class Rate:
    """What a kind of run's work is counted in, its default throughput, and how a throughput is said."""

    unit: str  # the key of a measure's work: "bytes" or "samples"
    default: float  # work per vCPU-second
    scale: float  # the throughput said per vCPU-second in units of this size
    said: str

    def text(self, throughput: float) -> str:
        return f"{throughput / self.scale:.2f} {self.said} per vCPU-second"


RATES = {
    "ingest": Rate("bytes", DEFAULT_THROUGHPUT, 2**20, "MiB"),
    "export": Rate("samples", DEFAULT_EXPORT_THROUGHPUT, 1, "samples"),
}


@dataclass(frozen=True)
class JobLoad:
    """One ingestion or export task: its stage, vCPUs and work (bytes, or samples)."""

    stage: str
    vcpus: int
    work: float


@dataclass(frozen=True)
class Estimate:
    instance_hours: float
    wall_seconds: float
    cost: float
    throughput: float  # work per vCPU-second
    source: str  # "default throughput" or "estimate from N earlier runs"
    work: float
    rate: Rate = RATES["ingest"]

    @property
    def bytes(self) -> int:
        return int(self.work)

    def line(self) -> str:
        return (
            f"Estimate ({self.source}, {self.rate.text(self.throughput)}): "
            f"{self.instance_hours:.2f} instance-hours, wall time {self.wall_seconds / 60:.0f} min, "
            f"cost ${self.cost:.2f}"
        )

    def document(self) -> dict[str, Any]:
        unit = self.rate.unit
        return {
            "instance_hours": round(self.instance_hours, 4),
            "wall_seconds": round(self.wall_seconds, 1),
            "cost": round(self.cost, 4),
            f"throughput_{unit}_per_vcpu_second": round(self.throughput, 4 if unit == "samples" else 1),
            "source": self.source,
            unit: round(self.work, 3) if unit == "samples" else int(self.work),
        }


def learned_throughput(measured: Sequence[Mapping[str, Any]], rate: Rate = RATES["ingest"]) -> tuple[float, str]:
    """T and where it came from: the earlier runs that measured work and vCPU-seconds, else the default."""
    usable = [m for m in measured if m.get(rate.unit, 0) > 0 and m.get("vcpu_seconds", 0) > 0]
    if not usable:
        return float(rate.default), "default throughput"
    total_work = sum(m[rate.unit] for m in usable)
    total_seconds = sum(m["vcpu_seconds"] for m in usable)
    runs = "1 earlier run" if len(usable) == 1 else f"{len(usable)} earlier runs"
    return total_work / total_seconds, f"estimate from {runs}"


def estimate(
    loads: Sequence[JobLoad], measured: Sequence[Mapping[str, Any]], instance_price: float, rate: Rate = RATES["ingest"]
) -> Estimate:
    throughput, source = learned_throughput(measured, rate)
    total = sum(load.work for load in loads)
    vcpu_seconds = total / throughput
    instance_hours = vcpu_seconds / INSTANCE_VCPUS / 3600
    longest: dict[str, float] = {}
    for load in loads:
        seconds = load.work / (throughput * load.vcpus)
        longest[load.stage] = max(longest.get(load.stage, 0.0), seconds)
    wall = sum(longest.values())
    return Estimate(instance_hours, wall, instance_hours * instance_price, throughput, source, total, rate)


def plan_loads(plan: Plan, sizes: Mapping[str, int], merge: bool = False) -> list[JobLoad]:
    """The work of each ingestion task (its samples' bytes, ``sizes``) or export task (its samples; with
    ``merge`` every task has all the names over a share of the regions)."""
    tasks = [task for task in plan.tasks if task.stage.kind == plan.kind]
    if plan.kind == "ingest":
        return [JobLoad(str(t.stage), t.resources.vcpus, sum(sizes.get(uri, 0) for uri in t.samples)) for t in tasks]
    share = len(tasks) if merge else 1
    return [JobLoad(str(t.stage), t.resources.vcpus, len(t.samples) / share) for t in tasks]


def plan_estimate(
    plan: Plan, sizes: Mapping[str, int], measured: Sequence[Mapping[str, Any]], price: float, merge: bool = False
) -> Estimate | None:
    """The estimate of an ingestion or an export; None for a run with no such job."""
    if plan.kind not in RATES or not any(task.stage.kind == plan.kind for task in plan.tasks):
        return None
    return estimate(plan_loads(plan, sizes, merge), measured, price, RATES[plan.kind])


def measurement(work: float, vcpus: int, seconds: float, unit: str = "bytes") -> dict[str, Any] | None:
    """What a run watched to its end records for later estimates: its work (``unit``: its bytes, or its samples)
    and the vCPU-seconds of its ingestion (or export) jobs."""
    if work <= 0 or seconds <= 0:
        return None
    return {unit: work, "vcpu_seconds": seconds * vcpus}


def jobs_seconds(job_ids: Sequence[str], descriptions: Mapping[str, JobDescription]) -> float:
    """The seconds the attempts of the jobs ``job_ids`` ran (started to stopped), summed."""
    return sum(attempt_seconds(a) for job_id in job_ids for a in descriptions.get(job_id, {}).get("attempts", []))


def beside(planned: Mapping[str, Any], instance_hours: float, wall_seconds: float, cost: float) -> str:
    """The estimate made before the run, beside what happened."""
    return (
        f"- Estimated {planned['instance_hours']:.2f} instance-hours, {planned['wall_seconds'] / 60:.0f} min, "
        f"${planned['cost']:.2f} ({planned['source']}); it took {instance_hours:.2f} instance-hours, "
        f"{wall_seconds / 60:.0f} min, ${cost:.2f}"
    )
