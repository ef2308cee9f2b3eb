"""An estimate before spending: the instance-hours, wall time and cost of an ingestion, from its samples' bytes.

Pure arithmetic. The throughput ``T`` (bytes ingested per vCPU-second) is learned from earlier runs of the
same dataset that were watched to their end (their records keep ``measured``: bytes and ingestion
vCPU-seconds), ``T = sum(bytes) / sum(vCPU-seconds)``; else it is ``DEFAULT_THROUGHPUT``. Then, for the
ingestion jobs only (creation, registration and consolidation jobs are short and not counted):

* vCPU-seconds = sum of the jobs' bytes / T
* instance-hours = vCPU-seconds / INSTANCE_VCPUS / 3600 (instances packed full)
* wall time = per ingestion batch, its largest job's bytes / (T x its vCPUs), summed over batches (a batch's
  jobs all run at once)
* cost = instance-hours x --instance-price
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .executors.base import JobDescription, attempt_seconds

# An assumption, not a measurement: 1 MiB of VCF/BCF per vCPU-second (a 16-vCPU job stores ~56 GiB an hour).
DEFAULT_THROUGHPUT = 2**20
# vCPUs of the documented instance type (m5.4xlarge), as report.DEFAULT_INSTANCE_PRICE.
INSTANCE_VCPUS = 16


@dataclass(frozen=True)
class JobLoad:
    """One ingestion task: its batch (stage), vCPUs and bytes."""

    stage: str
    vcpus: int
    bytes: int


@dataclass(frozen=True)
class Estimate:
    instance_hours: float
    wall_seconds: float
    cost: float
    throughput: float  # bytes per vCPU-second
    source: str  # "default throughput" or "N earlier runs"
    bytes: int

    def line(self) -> str:
        return (
            f"Estimate ({self.source}, {self.throughput / 2**20:.2f} MiB per vCPU-second): "
            f"{self.instance_hours:.2f} instance-hours, wall time {self.wall_seconds / 60:.0f} min, "
            f"cost ${self.cost:.2f}"
        )

    def document(self) -> dict[str, Any]:
        return {
            "instance_hours": round(self.instance_hours, 4),
            "wall_seconds": round(self.wall_seconds, 1),
            "cost": round(self.cost, 4),
            "throughput_bytes_per_vcpu_second": round(self.throughput, 1),
            "source": self.source,
            "bytes": self.bytes,
        }


def learned_throughput(measured: Sequence[Mapping[str, Any]]) -> tuple[float, str]:
    """T and where it came from: the earlier runs that measured bytes and vCPU-seconds, else the default."""
    usable = [m for m in measured if m.get("bytes", 0) > 0 and m.get("vcpu_seconds", 0) > 0]
    if not usable:
        return float(DEFAULT_THROUGHPUT), "default throughput"
    total_bytes = sum(m["bytes"] for m in usable)
    total_seconds = sum(m["vcpu_seconds"] for m in usable)
    runs = "1 earlier run" if len(usable) == 1 else f"{len(usable)} earlier runs"
    return total_bytes / total_seconds, f"estimate from {runs}"


def estimate(loads: Sequence[JobLoad], measured: Sequence[Mapping[str, Any]], instance_price: float) -> Estimate:
    throughput, source = learned_throughput(measured)
    total = sum(load.bytes for load in loads)
    vcpu_seconds = total / throughput
    instance_hours = vcpu_seconds / INSTANCE_VCPUS / 3600
    longest: dict[str, float] = {}
    for load in loads:
        seconds = load.bytes / (throughput * load.vcpus)
        longest[load.stage] = max(longest.get(load.stage, 0.0), seconds)
    return Estimate(instance_hours, sum(longest.values()), instance_hours * instance_price, throughput, source, total)


def measurement(total_bytes: int, vcpus: int, ingest_seconds: float) -> dict[str, Any] | None:
    """What a run watched to its end records for later estimates: its bytes and ingestion vCPU-seconds."""
    if total_bytes <= 0 or ingest_seconds <= 0:
        return None
    return {"bytes": total_bytes, "vcpu_seconds": ingest_seconds * vcpus}


def ingest_seconds(job_ids: Sequence[str], descriptions: Mapping[str, JobDescription]) -> float:
    """The seconds the attempts of the jobs ``job_ids`` ran (started to stopped), summed."""
    return sum(attempt_seconds(a) for job_id in job_ids for a in descriptions.get(job_id, {}).get("attempts", []))


def beside(planned: Mapping[str, Any], instance_hours: float, wall_seconds: float, cost: float) -> str:
    """The estimate made before the run, beside what happened."""
    return (
        f"- Estimated {planned['instance_hours']:.2f} instance-hours, {planned['wall_seconds'] / 60:.0f} min, "
        f"${planned['cost']:.2f} ({planned['source']}); it took {instance_hours:.2f} instance-hours, "
        f"{wall_seconds / 60:.0f} min, ${cost:.2f}"
    )
