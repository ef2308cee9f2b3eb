"""The estimate before spending: its arithmetic (estimate.py), and what --dry-run says of it on the emulated AWS."""

from __future__ import annotations

import json

import pytest

from conftest import base, record_of
from demo import local_aws
from tiledbvcf_batch.estimate import (
    DEFAULT_THROUGHPUT,
    INSTANCE_VCPUS,
    JobLoad,
    beside,
    estimate,
    jobs_seconds,
    learned_throughput,
    measurement,
)
from tiledbvcf_batch.report import DEFAULT_INSTANCE_PRICE

GIB = 2**30


def test_default_throughput_when_no_run_measured():
    loads = [JobLoad("ingest-1", 16, 16 * GIB), JobLoad("ingest-1", 16, 8 * GIB), JobLoad("ingest-2", 8, 4 * GIB)]
    found = estimate(loads, [{"bytes": 0, "vcpu_seconds": 5}], 0.5)
    vcpu_seconds = 28 * GIB / DEFAULT_THROUGHPUT
    assert found.source == "default throughput" and found.throughput == DEFAULT_THROUGHPUT
    assert found.instance_hours == pytest.approx(vcpu_seconds / INSTANCE_VCPUS / 3600)
    assert found.cost == pytest.approx(found.instance_hours * 0.5)
    # Batch 1's largest job (16 GiB on 16 vCPUs) then batch 2's (4 GiB on 8 vCPUs).
    wall = 16 * GIB / (DEFAULT_THROUGHPUT * 16) + 4 * GIB / (DEFAULT_THROUGHPUT * 8)
    assert found.wall_seconds == pytest.approx(wall)
    assert found.bytes == 28 * GIB


def test_throughput_learned_from_earlier_runs():
    runs = [{"bytes": 100, "vcpu_seconds": 10}, {"bytes": 300, "vcpu_seconds": 10}, {"bytes": 0, "vcpu_seconds": 0}]
    assert learned_throughput(runs) == (20.0, "estimate from 2 earlier runs")
    assert learned_throughput(runs[:1])[1] == "estimate from 1 earlier run"
    found = estimate([JobLoad("ingest-1", 4, 7200)], runs, 2.0)
    assert found.instance_hours == pytest.approx(7200 / 20 / INSTANCE_VCPUS / 3600)
    assert found.wall_seconds == pytest.approx(7200 / 20 / 4)
    assert found.cost == pytest.approx(found.instance_hours * 2.0)
    assert found.line().startswith("Estimate (estimate from 2 earlier runs, ")


def test_measure_of_a_watched_run():
    descriptions = {
        "a": {"attempts": [{"startedAt": 0, "stoppedAt": 60_000}, {"startedAt": 70_000, "stoppedAt": 100_000}]},
        "b": {"attempts": [{"startedAt": 0}]},  # never stopped: not counted
    }
    assert jobs_seconds(["a", "b", "gone"], descriptions) == 90.0
    assert measurement(1000, 16, 90.0) == {"bytes": 1000, "vcpu_seconds": 1440.0}
    assert measurement(0, 16, 90.0) is None and measurement(1000, 16, 0.0) is None
    planned = {"instance_hours": 1.0, "wall_seconds": 600, "cost": 0.77, "source": "default throughput"}
    assert beside(planned, 2.0, 1200, 1.54) == (
        "- Estimated 1.00 instance-hours, 10 min, $0.77 (default throughput); "
        "it took 2.00 instance-hours, 20 min, $1.54"
    )


def test_dry_run_gives_the_estimate_in_text_and_json(aws, samples_file, run_ingest):
    args = [*base(samples_file(4)), "--num-jobs", "2", "--dry-run"]
    text = run_ingest(*args)
    assert text.exit_code == 0, text.stderr
    assert (
        f"Estimate (default throughput, {DEFAULT_THROUGHPUT / 2**20:.2f} MiB per vCPU-second): 0.00 instance-hours"
        in text.stdout
    )
    document = json.loads(run_ingest(*args, "--json").stdout)["estimate"]
    size = 4 * len(b"BCF\x02\x02")
    hours = size / DEFAULT_THROUGHPUT / INSTANCE_VCPUS / 3600
    assert document["source"] == "default throughput" and document["bytes"] == size
    assert document["throughput_bytes_per_vcpu_second"] == round(DEFAULT_THROUGHPUT, 1)
    assert document["instance_hours"] == round(hours, 4)
    assert document["cost"] == round(hours * DEFAULT_INSTANCE_PRICE, 4)
    assert aws.submitted == []


def test_estimate_learned_from_a_measured_earlier_run(aws, samples_file, run_ingest, tmp_path):
    first = run_ingest(*base(samples_file(2)))
    assert first.exit_code == 0, first.stderr
    assert "Estimate (default throughput" in first.stderr  # said before the submission too
    record = record_of(aws, first.stderr)
    assert record["options"]["estimate"]["source"] == "default throughput"
    record["measured"] = {"bytes": 1000, "vcpu_seconds": 10}  # as a run watched to its end records
    bucket, _, key = record["record"].removeprefix("s3://").partition("/")
    aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(record).encode())
    others = tmp_path / "others.txt"
    others.write_text("".join(f"{uri}\n" for uri in local_aws.put_samples(4)[2:]))
    second = run_ingest(*base(others), "--dry-run", "--json")
    document = json.loads(second.stdout)["estimate"]
    assert document["source"] == "estimate from 1 earlier run"
    assert document["throughput_bytes_per_vcpu_second"] == 100.0
    assert document["wall_seconds"] == round(5 / 100 / 16, 1)


def test_an_exports_work_is_its_samples_and_a_merge_shares_them_out():
    from tiledbvcf_batch.estimate import RATES, plan_estimate, plan_loads
    from tiledbvcf_batch.inputs import Resources
    from tiledbvcf_batch.plan import Plan, Stage, Task
    from tiledbvcf_batch.storage import LocalPath

    def export_plan(chunks: list[tuple[str, ...]]) -> Plan:
        tasks = tuple(
            Task(f"export-{i}", Stage("export"), f"e{i}", (), Resources(4, 8192), 1, samples=chunk)
            for i, chunk in enumerate(chunks, start=1)
        )
        return Plan("export", "r", LocalPath("/m/"), tasks, "/out")

    split = export_plan([("a", "b", "c"), ("d",)])
    assert [load.work for load in plan_loads(split, {})] == [3, 1]
    merged = export_plan([("a", "b", "c", "d")] * 4)  # --merge: every job all names, a quarter of the regions
    assert [load.work for load in plan_loads(merged, {}, merge=True)] == [1.0] * 4
    found = plan_estimate(split, {}, [{"samples": 10, "vcpu_seconds": 100}, {"bytes": 5, "vcpu_seconds": 1}], 2.0)
    assert found is not None and found.source == "estimate from 1 earlier run" and found.throughput == 0.1
    assert found.wall_seconds == pytest.approx(3 / (0.1 * 4))  # the larger job, on its 4 vCPUs
    assert found.instance_hours == pytest.approx(4 / 0.1 / INSTANCE_VCPUS / 3600)
    assert found.line().startswith("Estimate (estimate from 1 earlier run, 0.10 samples per vCPU-second): ")
    assert found.document()["samples"] == 4 and found.document()["throughput_samples_per_vcpu_second"] == 0.1
    default = plan_estimate(split, {}, [], 1.0)
    assert default is not None and default.throughput == RATES["export"].default
