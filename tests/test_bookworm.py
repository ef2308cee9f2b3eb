"""The image's entrypoint as the image runs it: Debian bookworm's python3 (3.11) with Debian's boto3 1.26.27 and
botocore 1.29.27, and nothing else (no click, rich, tiledb, numpy).

``.ci/run`` makes that interpreter, ``.venv-bookworm``; these tests run the entrypoint with it against the emulated
S3 and the real tiledbvcf: an ingestion's create and ``store --resume`` jobs (with the job check), and an export job
with ``--delivery`` (files, indexes, the run's manifest). Skipped without ``.venv-bookworm`` (CI always has it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest

import cohort
from conftest import ROOT, image_env, listed, needs_tiledbvcf
from tiledbvcf_batch.bed import read_bed
from tiledbvcf_batch.deliverables import NO_RECORDS, manifest_location
from tiledbvcf_batch.inputs import Sample, parse_dataset_uri
from tiledbvcf_batch.jobcheck import started_marker
from tiledbvcf_batch.options import ExportOptions, IngestOptions
from tiledbvcf_batch.plan import Plan, ingest_batches, plan_export, plan_ingest
from tiledbvcf_batch.record import run_prefix_for
from tiledbvcf_batch.storage import S3Uri

BOOKWORM = ROOT / ".venv-bookworm" / "bin" / "python"
BOTOCORE = "1.29.27"  # apt-cache policy python3-botocore, Debian 12
ABSENT = ("click", "rich", "tiledb", "tiledbvcf", "numpy", "pysam", "moto")  # what the image does not hold
pytestmark = [
    needs_tiledbvcf,
    pytest.mark.skipif(not BOOKWORM.exists(), reason=f"no {BOOKWORM} (the image's Python and boto3; .ci/run makes it)"),
]
DATASET = "s3://my-bucketname/bookworm-ds"


def bookworm(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``args`` run by the image's interpreter, the package on PYTHONPATH as in the image."""
    return subprocess.run([str(BOOKWORM), *args], env=image_env(), cwd=cwd, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def job(args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """One job's command as Batch runs it: the entrypoint, under the image's interpreter."""
    done = bookworm(str(ROOT / "image" / "entrypoint.py"), *args)
    assert done.returncode == 0, f"{args}\n{done.stdout}{done.stderr}"
    return done


def upload(s3, plan: Plan) -> None:
    """What submission uploads: the run's own files (an export's cleaned BED and delivery file), the manifests."""
    for manifest in plan.manifests():
        s3.put_object(Bucket=manifest.uri.bucket, Key=manifest.uri.key, Body=manifest.body())


def keys(s3, bucket: str, prefix: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_the_interpreter_is_the_images():
    done = bookworm("-c", "import sys, boto3, botocore; print(sys.version_info[:2], boto3.__version__, "
                    "botocore.__version__)")  # fmt: skip
    assert done.stdout.split(")")[1].split() == ["1.26.27", BOTOCORE], done.stderr
    assert done.stdout.startswith("(3, 11)")


def test_the_entrypoint_imports_nothing_the_image_lacks():
    code = (
        "import sys; sys.path.insert(0, 'image'); import entrypoint; "
        "print(' '.join(sorted({name.partition('.')[0] for name in sys.modules})))"
    )
    done = bookworm("-c", code)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "tiledbvcf_batch" in loaded and not loaded & {*ABSENT, "boto3", "botocore"}  # boto3: only when S3 is used


def ingest(s3, tmp_path: Path) -> list[Path]:
    """Three samples ingested on the emulated S3 by the jobs an ingestion plan makes: create, two store --resume."""
    inputs = cohort.make_cohort(tmp_path / "in", 3, records=30)
    for path in inputs:
        for file in (path, Path(f"{path}.csi")):
            s3.upload_file(str(file), "bucket-name", f"bookworm/{file.name}")
    (tmp_path / "scratch").mkdir()
    opts = IngestOptions(parse_dataset_uri(DATASET), "samples.txt", S3Uri("bucket2-name"), num_jobs=2, vcpus=1,
                         memory=1024, scratch_path=str(tmp_path / "scratch"), scratch_size=2048,
                         consolidate=False)  # fmt: skip
    prefix = run_prefix_for(opts.metadata_s3, "ingest-bookworm")
    batches, _ = ingest_batches([Sample(f"s3://bucket-name/bookworm/{p.name}") for p in inputs], opts, prefix)
    plan = plan_ingest(opts, batches, "ingest-bookworm", prefix)
    assert [task.args[0] for task in plan.tasks] == ["create", "store", "store"]
    upload(s3, plan)
    for task in plan.tasks:
        ran = job(task.args)
        if task.args[0] == "store":  # a store --resume: the job check read its manifest and markers on S3
            assert "--resume" in task.args and task.manifest is not None
            marker = started_marker(str(task.manifest.uri))
            assert f"none stored twice; started marker {marker}" in ran.stderr
            bucket, _, key = marker.removeprefix("s3://").partition("/")
            assert keys(s3, bucket, key) == [key]
    names = [p.name.removesuffix(".bcf") for p in inputs]
    assert sorted(listed(DATASET)) == names
    assert [key for key in keys(s3, "bucket2-name", "") if key.endswith(".txt")] == []  # store consumed each manifest
    return inputs


def test_ingestion_then_an_export_with_delivery_through_the_entrypoint(tmp_path: Path, moto_server):
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs = ingest(s3, tmp_path)
    names = [p.name.removesuffix(".bcf") for p in inputs]
    # A panel of two one-base regions: S0000's first record on chr1 and S0002's on chr2; S0001 has none there.
    chr1 = cohort.sample_records(inputs[0], "chr1")[0].pos
    chr2 = cohort.sample_records(inputs[2], "chr2")[0].pos
    regions = [f"chr1:{chr1}-{chr1}", f"chr2:{chr2}-{chr2}"]
    held = {name: sum(len(cohort.sample_records(path, region)) for region in regions)
            for name, path in zip(names, inputs, strict=True)}  # fmt: skip
    assert held["S0001"] == 0 and held["S0000"] and held["S0002"]
    bed = read_bed(f"chr2\t{chr2 - 1}\t{chr2}\nchr1\t{chr1 - 1}\t{chr1}\n".encode(), "s3://bucket-name/panel.bed")
    (tmp_path / "export").mkdir()
    export = ExportOptions(parse_dataset_uri(DATASET), S3Uri("my-bucketname", "delivered/"),
                           S3Uri("bucket-name", "names.txt"), S3Uri("bucket-name", "panel.bed"),
                           S3Uri("bucket2-name"), num_jobs=2, vcpus=1, memory=1024,
                           scratch_path=str(tmp_path / "export"))  # fmt: skip
    export_plan = plan_export(
        export, names, bed, "export-bookworm", run_prefix_for(export.metadata_s3, "export-bookworm")
    )
    assert all("--delivery" in task.args for task in export_plan.tasks) and len(export_plan.tasks) == 2
    upload(s3, export_plan)  # the cleaned BED and the delivery file first, then each job's names
    said = [job(task.args).stderr for task in export_plan.tasks]
    assert "1 samples have no records in the regions (no file): S0001" in said[0]
    assert "manifest of 3 samples written" in said[1]

    files = ["S0000.bcf", "S0000.bcf.csi", "S0002.bcf", "S0002.bcf.csi", "manifest-export-bookworm.tsv"]
    assert keys(s3, "my-bucketname", "delivered/") == [f"delivered/{name}" for name in sorted(files)]
    (tmp_path / "down").mkdir()
    for name in files:
        s3.download_file("my-bucketname", f"delivered/{name}", str(tmp_path / "down" / name))
    for name in ("S0000", "S0002"):
        exported = tmp_path / "down" / f"{name}.bcf"
        assert len(cohort.sample_records(exported)) == held[name]
    manifest = manifest_location(export.dest_s3, "export-bookworm")
    assert manifest.key == "delivered/manifest-export-bookworm.tsv"
    rows = [line.split("\t") for line in (tmp_path / "down" / Path(manifest.key).name).read_text().splitlines()]
    assert rows[0] == ["sample", "file", "bytes", "records", "md5", "index", "status"]
    by_sample = {row[0]: row for row in rows[1:]}
    assert sorted(by_sample) == names
    assert by_sample["S0001"] == ["S0001", "", "0", "0", "", "", NO_RECORDS]
    for name in ("S0000", "S0002"):
        row = by_sample[name]
        size = (tmp_path / "down" / f"{name}.bcf").stat().st_size
        assert row[1:4] == [f"{name}.bcf", str(size), str(held[name])] and row[5:] == [f"{name}.bcf.csi", "exported"]
