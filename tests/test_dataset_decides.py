# ruff: noqa: F811  (the fixture place comes from test_real_tiledbvcf, and names the tests' parameters)
"""The dataset decides: never a sample twice, whatever the path, the metadata location, a race or a lost record.

With the real tiledbvcf, on local paths and on the emulated S3: each case ends with every sample present exactly
once and its records equal to its input (exported with tiledbvcf), or with a refusal that names the samples.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from test_real_tiledbvcf import Place, export_all, place, script, write_samples  # noqa: F401

import cohort
from conftest import ROOT, listed, needs_tiledbvcf, tiledbvcf

pytestmark = needs_tiledbvcf


def ingest_with(place: Place, samples: Path, metadata: str, *extra: str) -> subprocess.CompletedProcess:
    return script("batch-ingest.py", "--dataset-uri", place.dataset, "--samples", str(samples), "--metadata-s3",
                  metadata, "--vcpus", "1", "--memory", "1024", "--no-consolidate", *extra)  # fmt: skip


def other_metadata(place: Place) -> str:
    return str(place.root / "meta2") if place.kind == "local" else "s3://bucket2-name/elsewhere"


def exactly_once(place: Place, expected: dict[str, Path]) -> None:
    """The dataset lists each name once, and its records are each input's records."""
    assert sorted(listed(place.dataset)) == sorted(expected)
    out = place.root / f"out-{len(list(place.root.glob('out-*')))}"
    exported = export_all(place.root, place.dataset, str(out), "v")
    assert exported.returncode == 0, exported.stderr
    assert cohort.compare_exported(expected, out, ".vcf") == []


def registry_entries(place: Place) -> list[tuple[str, dict]]:
    """The dataset's registry entries: (where, document)."""
    if place.kind == "local":
        folder = Path(place.dataset + ".tiledbvcf-batch") / "runs"
        return [(str(path), json.loads(path.read_text())) for path in sorted(folder.glob("*.json"))]
    listing = place.s3.list_objects_v2(Bucket="my-bucketname", Prefix="ds.tiledbvcf-batch/runs/").get("Contents", [])
    return [
        (item["Key"], json.loads(place.s3.get_object(Bucket="my-bucketname", Key=item["Key"])["Body"].read()))
        for item in listing
    ]


def rewrite_entry(place: Place, where: str, document: dict) -> None:
    body = json.dumps(document).encode()
    if place.kind == "local":
        Path(where).write_bytes(body)
    else:
        place.s3.put_object(Bucket="my-bucketname", Key=where, Body=body)


def delete_record(place: Place, record: str) -> None:
    if place.kind == "local":
        os.remove(record)
    else:
        place.s3.delete_object(Bucket="bucket2-name", Key=record.removeprefix("s3://bucket2-name/"))


def by_name(paths: list[Path]) -> dict[str, Path]:
    return {path.name.removesuffix(".bcf"): path for path in paths}


def test_another_metadata_location_does_not_store_twice(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=60)
    samples = write_samples(place.root / "samples.txt", place.put(inputs))
    assert ingest_with(place, samples, place.metadata).returncode == 0
    again = ingest_with(place, samples, other_metadata(place))
    assert again.returncode == 0 and again.stdout == "", again.stderr
    assert "skipped 3 samples already ingested by earlier runs" in again.stderr
    assert "holds 3 samples" in again.stderr
    exactly_once(place, by_name(inputs))


def test_a_corrected_delivery_without_check_headers_is_refused_then_replaced(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=60)
    assert (
        ingest_with(place, write_samples(place.root / "samples.txt", place.put(inputs)), place.metadata).returncode == 0
    )
    corrected = cohort.make_cohort(place.root / "fixed", 2, records=90, seed=7)[1]  # S0001 again, other records
    fixed = str(corrected)
    if place.kind == "s3":  # under another key than the first delivery's
        fixed = "s3://bucket-name/redelivered/S0001.bcf"
        for suffix in ("", ".csi"):
            place.s3.upload_file(f"{corrected}{suffix}", "bucket-name", f"redelivered/S0001.bcf{suffix}")
    fix = write_samples(place.root / "fix.txt", [fixed])
    entries = registry_entries(place)
    refused = ingest_with(place, fix, other_metadata(place))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        f"Error: 1 samples are already in dataset {place.dataset}: S0001 ({fixed}). Storing them again would double "
        "their records: pass --skip-existing to ingest the others, or --replace to delete these from the dataset and "
        "store them again"
    )
    assert registry_entries(place) == entries  # nothing registered, nothing submitted
    skipped = ingest_with(place, fix, other_metadata(place), "--skip-existing")
    assert skipped.returncode == 0 and "Nothing to ingest" in skipped.stderr
    replaced = ingest_with(place, fix, other_metadata(place), "--replace")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert "Submitted sample deletion job" in replaced.stderr
    exactly_once(place, {**by_name(inputs), "S0001": corrected})  # the new records, and only them


def test_a_deleted_run_record_holds_its_samples_then_the_dataset_decides(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=60)
    samples = write_samples(place.root / "samples.txt", place.put(inputs))
    first = ingest_with(place, samples, place.metadata)
    assert first.returncode == 0, first.stderr
    ((where, entry),) = registry_entries(place)
    delete_record(place, entry["record"])
    held = ingest_with(place, samples, place.metadata)
    assert held.returncode == 0 and held.stdout == ""
    assert f"skipped 3 samples that run {entry['run_id']} registered 0 min ago" in held.stderr
    assert f"its record {entry['record']} does not exist" in held.stderr
    # Two hours later the claim has lapsed: the dataset itself still knows its samples.
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    rewrite_entry(place, where, {**entry, "created_at": then.isoformat(timespec="seconds")})
    refused = ingest_with(place, samples, place.metadata)
    assert refused.returncode == 2 and "Error: 3 samples are already in dataset" in refused.stderr
    exactly_once(place, by_name(inputs))


def test_a_symlinked_dataset_is_the_same_dataset(here):
    place = Place("local", here)
    inputs = cohort.make_cohort(here / "in", 2, records=60)
    samples = write_samples(here / "samples.txt", inputs)
    assert ingest_with(place, samples, place.metadata).returncode == 0
    (here / "link").symlink_to(here / "ds")
    again = script("batch-ingest.py", "--dataset-uri", str(here / "link" / ".." / "link"), "--samples", str(samples),
                   "--metadata-s3", str(here / "meta3"), "--vcpus", "1", "--memory", "1024")  # fmt: skip
    assert again.returncode == 0 and "skipped 2 samples already ingested by earlier runs" in again.stderr
    exactly_once(place, by_name(inputs))


def test_two_ingestions_started_together_store_each_sample_once(place):
    inputs = cohort.make_cohort(place.root / "in", 4, records=60)
    samples = write_samples(place.root / "samples.txt", place.put(inputs))
    tiledbvcf("create", "-u", place.dataset)
    tiledbvcf("store", "-u", place.dataset, str(cohort.make_cohort(place.root / "seed", 1, prefix="X")[0]))
    env = dict(os.environ)
    commands = [
        [sys.executable, str(ROOT / "batch-ingest.py"), "--executor", "local", "--dataset-uri", place.dataset,
         "--samples", str(samples), "--metadata-s3", metadata, "--vcpus", "1", "--memory", "1024", "--no-consolidate"]
        for metadata in (place.metadata, other_metadata(place))
    ]  # fmt: skip
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in commands]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    ingested = [r for r in results if r[0] == 0 and "Submitted ingestion job" in r[1]]
    assert len(ingested) == 1, results
    (other,) = [r for r in results if r not in ingested]
    # Refused at registration, or skipped as the first run's samples: never submitted.
    assert "Submitted" not in other[1], other
    assert (other[0] == 2 and "registered 4 of these samples a moment ago" in other[2]) or (
        other[0] == 0 and "skipped 4 samples" in other[2]
    ), other
    exactly_once(place, {**by_name(inputs), "X0000": place.root / "seed" / "X0000.bcf"})


READ = """
import json, sys
import boto3
from tiledbvcf_batch.dataset import reader_for
view = reader_for(boto3.client("s3", region_name="us-east-1"), None, "us-east-1", None)(sys.argv[1])
print(json.dumps({"samples": sorted(view.samples) if view.readable else None, "problem": view.problem}))
"""


def read_in_a_process(uri: str) -> dict:
    """TileDB-Py in a process of its own: in this one it would hold the GIL that the emulated S3 needs to answer."""
    done = subprocess.run([sys.executable, "-c", READ, uri], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_reader_lists_what_tiledbvcf_lists(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=20)
    tiledbvcf("create", "-u", place.dataset)
    tiledbvcf("store", "-u", place.dataset, *map(str, inputs))
    assert read_in_a_process(place.dataset) == {"samples": sorted(listed(place.dataset)), "problem": None}
    missing = read_in_a_process(place.dataset + "-not-there")
    assert missing["samples"] is None and missing["problem"].startswith("TileDB: ")


def test_a_legacy_dataset_is_said_unreadable(here):
    import numpy as np
    import tiledb

    from tiledbvcf_batch.dataset import DatasetAccess, read_samples

    headers = here / "legacy" / "metadata" / "vcf_headers"
    headers.parent.mkdir(parents=True)
    domain = tiledb.Domain(tiledb.Dim(name="sample", domain=(0, 1000), tile=10, dtype=np.uint32))
    schema = tiledb.ArraySchema(domain=domain, sparse=True, attrs=[tiledb.Attr(name="header", dtype=str)])
    tiledb.Array.create(str(headers), schema)
    view = read_samples(str(here / "legacy"), DatasetAccess("us-east-1"))
    assert view.samples is None and view.problem == "a legacy v2/v3 dataset: its samples are numbered, not named"
    assert view.legacy  # its export jobs are given the legacy CLI's settings
