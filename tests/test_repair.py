"""The repair stage (``--repair-to``): inputs without an index, compressed with plain gzip, uncompressed, or holding
several samples are repaired by jobs of their own into --repair-to (never in place), then ingested.

Real files (made with pysam and bcftools) and, where marked, the real tiledbvcf and the image's interpreter.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pysam
import pytest

import cohort
import local_aws
from conftest import (
    ROOT,
    base,
    calls_of,
    image_env,
    listed,
    make_dataset,
    needs_tiledbvcf,
    record_of,
    run_entrypoint,
    run_script,
    tiledbvcf,
)
from tiledbvcf_batch.arraytasks import ARRAY_INDEX, ENTRYPOINT_VARIABLE, task_file_body, tasks_in
from tiledbvcf_batch.repair import INDEX, RECOMPRESS, SPLIT, Repair, repair_of
from tiledbvcf_batch.storage import LocalPath, S3Uri

REPAIR_NOTE = (
    "--repair-to: 4 inputs repaired first (a repair job each): 1 indexed, 2 recompressed with BGZF and indexed, "
    "1 split into 3 single-sample files"
)
TRIO = ("S0003", "S0004", "S0005")
BED = "chr1\t0\t2000000\nchr2\t0\t2000000\nchr3\t0\t2000000\n"


def deliveries(folder: Path) -> tuple[list[Path], dict[str, Path]]:
    """What a lab delivers, in ``folder/in``: an unindexed BCF, a plain-gzip VCF, an uncompressed VCF, a trio's
    multi-sample VCF (indexed), and one good BCF. Returns the inputs and, by sample, the file holding its records
    as made (the trio's samples: the trio file)."""
    made = cohort.make_cohort(folder / "made", 7, records=120)
    given = folder / "in"
    given.mkdir()
    shutil.copy(made[0], given / "S0000.bcf")  # without its index
    text = pysam.bcftools.view("--no-version", str(made[1]))
    (given / "S0001.vcf.gz").write_bytes(gzip.compress(text.encode()))  # plain gzip, as `gzip` writes it
    (given / "S0002.vcf").write_text(pysam.bcftools.view("--no-version", str(made[2])))
    trio = given / "trio.vcf.gz"
    pysam.bcftools.merge("--no-version", "-Oz", "-o", str(trio), *map(str, made[3:6]), catch_stdout=False)
    pysam.bcftools.index("--csi", str(trio))
    for file in (made[6], Path(f"{made[6]}.csi")):
        shutil.copy(file, given / file.name)
    inputs = [given / name for name in ("S0000.bcf", "S0001.vcf.gz", "S0002.vcf", "trio.vcf.gz", "S0006.bcf")]
    expected = {f"S000{i}": made[i] for i in (0, 1, 2, 6)} | dict.fromkeys(TRIO, trio)
    return inputs, expected


def fingerprints(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def genotypes(path: Path, sample: str | int) -> list[tuple[Any, ...]]:
    """Each record's site and ``sample``'s genotype (a name, or 0: the file's one sample)."""
    with pysam.VariantFile(str(path)) as vcf:
        return sorted((r.chrom, r.pos, r.ref, r.alts, r.samples[sample]["GT"]) for r in vcf)


def samples_file(folder: Path, uris: list[str]) -> Path:
    path = folder / "samples.txt"
    path.write_text("".join(f"{uri}\n" for uri in uris))
    return path


# -- Locally, with the real tiledbvcf -----------------------------------------------------------------------------


def local_ingest(here: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_script("batch-ingest.py", "--executor", "local", "--dataset-uri", str(here / "ds"), "--samples",
                      str(here / "samples.txt"), "--metadata-s3", str(here / "meta"), "--vcpus", "1", "--memory",
                      "1024", *extra, env=env)  # fmt: skip


@needs_tiledbvcf
def test_each_repair_ingests_locally_and_the_records_equal_the_inputs(here: Path):
    inputs, expected = deliveries(here)
    samples_file(here, [str(path) for path in inputs])
    before = fingerprints(here / "in")

    refused = local_ingest(here)  # without --repair-to: refused as ever, each problem naming --repair-to
    assert refused.returncode == 2 and refused.stdout == ""
    problems = refused.stderr.splitlines()
    assert len(problems) == 4 and all("(or pass --repair-to URI: the run then repairs it there" in p for p in problems)
    assert [p.split()[2] for p in problems] == [str(path) for path in inputs[:4]]
    assert not (here / "meta").exists() and not (here / "ds").exists()

    result = local_ingest(here, "--repair-to", str(here / "repaired"), "--num-jobs", "2", "--wait")
    assert result.returncode == 0, result.stderr
    assert REPAIR_NOTE in result.stderr.splitlines()
    assert "- input repair: 4 / 4 jobs succeeded" in result.stdout
    assert fingerprints(here / "in") == before  # never in place
    record = json.loads(next((here / "meta").rglob("run.json")).read_text())
    made = here / "repaired" / record["run_id"]
    # The index of a local input is written alone (the manifest names it after a TAB); the others are new files.
    assert sorted(path.name for path in made.iterdir()) == sorted(
        ["S0000.bcf.csi"] + [f"S000{i}.vcf.gz{suffix}" for i in (1, 2, 3, 4, 5) for suffix in ("", ".csi")]
    )
    ingested = sorted(uri for job in record["jobs"] if job["stage"] == "ingest-1" for uri in job["samples"])
    assert ingested == sorted([str(inputs[0]), str(inputs[4])] + [str(made / f"S000{i}.vcf.gz") for i in range(1, 6)])
    assert [job["stage"] for job in record["jobs"]][:5] == ["repair"] * 4 + ["create"]

    assert sorted(listed(here / "ds")) == sorted(expected)
    (here / "regions.bed").write_text(BED)
    (here / "out").mkdir()
    tiledbvcf("export", "-u", str(here / "ds"), "-s", ",".join(expected), "-R", str(here / "regions.bed"), "-O", "v",
              "-d", str(here / "out"))  # fmt: skip
    single = {name: path for name, path in expected.items() if name not in TRIO}
    assert cohort.compare_exported(single, here / "out", ".vcf") == []
    for name in TRIO:  # each split sample holds its own genotypes of the trio, every record
        assert genotypes(here / "out" / f"{name}.vcf", 0) == genotypes(expected[name], name)
        assert len(genotypes(expected[name], name)) > 120  # the trio's records: the union of three samples'


@needs_tiledbvcf
def test_a_failed_repair_is_resumed_into_the_first_runs_folder(here: Path):
    made = cohort.make_cohort(here / "made", 1, records=50)[0]
    good = pysam.bcftools.view("--no-version", str(made))
    given = here / "S0000.vcf"
    given.write_text(good + "chr1\tnot a record\n")  # uncompressed, and broken at its end: bcftools stops there
    samples_file(here, [str(given)])
    repair_to = ("--repair-to", str(here / "repaired"))
    first = local_ingest(here, *repair_to, "--wait")
    assert first.returncode == 1 and "- input repair: 0 / 1 jobs succeeded" in first.stdout
    assert f"repair of {given}: view --no-version failed (exit" in first.stdout
    run_id = json.loads(next((here / "meta").rglob("run.json")).read_text())["run_id"]
    assert "--repair-to" in first.stdout.split("--resume")[0].splitlines()[-1]  # the printed command keeps it
    assert list((here / "repaired").rglob("*.vcf.gz*")) == []  # nothing half-written
    again = local_ingest(here, *repair_to, "--wait", "--resume", run_id)  # still broken: fails again
    assert again.returncode == 1 and "- input repair: 0 / 1 jobs succeeded" in again.stdout
    second_id = again.stdout.split("--resume ")[-1].split()[0]
    assert second_id != run_id
    given.write_text(good)  # mended: the resume of the resume repairs it where the first run's jobs look
    last = local_ingest(here, *repair_to, "--wait", "--resume", second_id)
    assert last.returncode == 0, last.stdout + last.stderr
    assert "- input repair: 1 / 1 jobs succeeded" in last.stdout
    assert sorted(path.name for path in (here / "repaired" / run_id).iterdir()) == ["S0000.vcf.gz", "S0000.vcf.gz.csi"]
    assert listed(here / "ds") == ["S0000"]
    (here / "regions.bed").write_text(BED)
    tiledbvcf("export", "-u", str(here / "ds"), "-s", "S0000", "-R", str(here / "regions.bed"), "-O", "v", "-d",
              str(here))  # fmt: skip
    assert cohort.compare_exported({"S0000": made}, here, ".vcf") == []
    elsewhere = here / "elsewhere"
    mixed = local_ingest(here, "--repair-to", str(elsewhere), "--resume", second_id)  # the same place, or refused
    assert mixed.returncode == 2 and mixed.stderr.splitlines() == [
        f"Error: --resume {second_id}: that run had --repair-to {here / 'repaired'}/, this command --repair-to "
        f"{elsewhere}/: give it as that run did"
    ]


@needs_tiledbvcf
def test_without_bcftools_the_local_run_says_so_in_one_line(here: Path):
    inputs, _ = deliveries(here)
    samples_file(here, [str(path) for path in inputs])
    missing = str(here / "no" / "bcftools")
    result = local_ingest(here, "--repair-to", str(here / "repaired"), env={**os.environ, "BCFTOOLS": missing})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: bcftools not found ({missing}): the jobs need it with --executor local; install it (apt install "
        "bcftools, or conda install -c bioconda bcftools) or set BCFTOOLS to its path"
    ]
    assert not (here / "meta").exists() and not (here / "repaired").exists()


def test_a_repair_that_fails_leaves_no_file_behind(tmp_path: Path):
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tX\nnot a record\n")
    good_made = cohort.make_cohort(tmp_path / "made", 1, records=20)[0]
    target = LocalPath(str(tmp_path / "repaired"))
    repairs = [
        repair_of(INDEX, str(good_made), ["S0000"], target, True),
        repair_of(RECOMPRESS, str(bad), ["X"], target, False),
    ]
    manifest = tmp_path / "repair.txt"
    manifest.write_text("".join(repair.line() + "\n" for repair in repairs))
    done = run_entrypoint(["repair", "-f", str(manifest), "-d", str(tmp_path)])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(f"[tiledbvcf-batch] repair of {bad}: view --no-version failed (exit")
    # The first input was repaired whole (its data file, then its index); the second left nothing, not even a part.
    assert sorted(path.name for path in (tmp_path / "repaired").iterdir()) == ["S0000.bcf", "S0000.bcf.csi"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("repair-")] == []  # its work directory


# -- On the emulated Batch: the repair stage's jobs ----------------------------------------------------------------


@pytest.fixture
def entrypoint_definition(aws) -> None:
    """The job definition as this project's template registers it: its image has our entrypoint (array jobs)."""
    found = aws.batch.describe_job_definitions(jobDefinitionName=local_aws.JOB_DEFINITION)["jobDefinitions"][0]
    properties = found["containerProperties"]
    aws.batch.register_job_definition(
        jobDefinitionName=local_aws.JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": properties["image"],
            "resourceRequirements": properties["resourceRequirements"],
            "environment": [{"name": ENTRYPOINT_VARIABLE, "value": "1"}],
        },
    )


def uploaded(aws, tmp_path: Path) -> tuple[list[str], Path]:
    """The lab's delivery on S3 (with the trio's index), and a samples file naming it."""
    inputs, _ = deliveries(tmp_path)
    for path in [*inputs, tmp_path / "in" / "trio.vcf.gz.csi", tmp_path / "in" / "S0006.bcf.csi"]:
        aws.s3.upload_file(str(path), "bucket-name", f"lab/{path.name}")
    uris = [f"s3://bucket-name/lab/{path.name}" for path in inputs]
    return uris, samples_file(tmp_path, uris)


def test_batch_repair_stage_is_an_array_the_ingestion_waits_for(aws, run_ingest, entrypoint_definition, tmp_path):
    uris, samples = uploaded(aws, tmp_path)
    refused = run_ingest(*base(samples), "--check-headers")
    assert refused.exit_code == 2 and aws.submitted == []
    assert len(refused.stderr.splitlines()) == 4 and all(
        "--repair-to URI" in line for line in refused.stderr.splitlines()
    )
    assert not [c for c in calls_of(aws, "PutObject") if c["Bucket"] == "bucket2-name" and "/runs/" in c["Key"]]

    result = run_ingest(*base(samples), "--repair-to", "s3://my-bucketname/repaired", "--num-jobs", "2",
                        "--no-consolidate")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert REPAIR_NOTE in result.stderr
    record = record_of(aws, result.stderr)
    run, prefix = record["run_id"], f"s3://my-bucketname/repaired/{record['run_id']}/"
    repair, create, ingest = aws.submitted
    assert repair["jobName"] == "tiledbvcf-repair" and repair["arrayProperties"] == {"size": 4}
    task_file = f"s3://bucket2-name/tiledbvcf-batch/runs/{run}/tasks-repair.json"
    assert repair["containerOverrides"]["command"] == ["repair", "-f", f"{task_file}#{ARRAY_INDEX}", "-d", "/data"]
    assert {r["type"]: r["value"] for r in repair["containerOverrides"]["resourceRequirements"]} == {
        "VCPU": "2", "MEMORY": "4096"}  # fmt: skip
    assert "dependsOn" not in repair or repair["dependsOn"] == []
    job_ids = {job["stage"]: job["job_id"].split(":")[0] for job in record["jobs"]}
    assert create["dependsOn"] == [{"jobId": job_ids["repair"]}]
    assert ingest["arrayProperties"] == {"size": 2} and ingest["dependsOn"] == [{"jobId": job_ids["create"]}]

    entries = tasks_in(aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run}/tasks-repair.json"))
    repairs = [Repair.from_line(line) for entry in entries for line in entry["lines"]]
    assert [(r.kind, r.source) for r in repairs] == list(
        zip([INDEX, RECOMPRESS, RECOMPRESS, SPLIT], uris[:4], strict=True)
    )
    # An S3 input with scratch space: its data file is copied beside its new index (no index named after a TAB).
    assert (
        repairs[0].outputs[0].data == prefix + "S0000.bcf" and repairs[0].outputs[0].index == prefix + "S0000.bcf.csi"
    )
    assert [o.name for o in repairs[3].outputs] == list(TRIO)
    lines = [line for entry in tasks_in(aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run}/tasks-ingest-1.json"))
             for line in entry["lines"]]  # fmt: skip
    assert sorted(lines) == sorted([prefix + "S0000.bcf", uris[4]] + [f"{prefix}S000{i}.vcf.gz" for i in range(1, 6)])


def test_batch_index_repair_without_scratch_names_the_new_index_after_a_tab(aws, run_ingest, tmp_path):
    uris, samples = uploaded(aws, tmp_path)
    result = run_ingest(*base(samples), "--repair-to", "s3://my-bucketname/repaired", "--scratch-size", "0",
                        "--no-consolidate")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    # A stock job definition: one plain job a repair, each with its manifest; the creation waits for all four.
    assert [job["jobName"] for job in aws.submitted] == [f"tiledbvcf-repair-{i}" for i in range(1, 5)] + [
        "tiledbvcf-create", "tiledbvcf-ingest-b1-j1"]  # fmt: skip
    record = record_of(aws, result.stderr)
    run, prefix = record["run_id"], f"s3://my-bucketname/repaired/{record['run_id']}/"
    first = aws.submitted[0]["containerOverrides"]["command"]
    assert first == ["repair", "-f", f"s3://bucket2-name/tiledbvcf-batch/runs/{run}/repair-000001.txt"]  # no -d
    repair_ids = [job["job_id"] for job in record["jobs"] if job["stage"] == "repair"]
    assert sorted(dep["jobId"] for dep in aws.submitted[4]["dependsOn"]) == sorted(repair_ids)
    (line,) = aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run}/repair-000001.txt").splitlines()
    assert Repair.from_line(line).outputs[0].data == ""  # the index alone: no copy of the data file
    manifest = aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run}/ingest-b001-j0001.txt").splitlines()
    assert f"{uris[0]}\t{prefix}S0000.bcf.csi" in manifest
    assert f"{prefix}S0001.vcf.gz" in manifest and uris[4] in manifest and len(manifest) == 7


def test_only_the_inputs_of_samples_the_run_ingests_are_repaired(aws, run_ingest, tmp_path):
    _, samples = uploaded(aws, tmp_path)
    make_dataset(aws, samples=("S0000", "S0003", "S0004", "S0005", "S0006"))  # the dataset holds them already
    result = run_ingest(*base(samples), "--repair-to", "s3://my-bucketname/repaired", "--skip-existing",
                        "--no-consolidate", "--dry-run", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    assert [job["stage"] for job in jobs] == ["repair", "repair", "ingest-1"]
    assert jobs[2]["after"] == ["repair-1", "repair-2"]  # no creation (the dataset exists): the stores wait for them
    assert (
        "--repair-to: 2 inputs repaired first (a repair job each): 0 indexed, 2 recompressed with BGZF and indexed, "
        "0 split into 0 single-sample files"
    ) in result.stderr.splitlines()


def test_inputs_that_need_no_repair_get_no_repair_job(aws, run_ingest, tmp_path):
    uris, _ = uploaded(aws, tmp_path)
    samples = samples_file(tmp_path, [uris[4]])  # a BGZF single-sample BCF with its index
    result = run_ingest(*base(samples), "--repair-to", "s3://my-bucketname/repaired", "--no-consolidate",
                        "--dry-run", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert [job["stage"] for job in json.loads(result.stdout)["jobs"]] == ["create", "ingest-1"]
    assert "--repair-to: no input needs a repair: no repair job" in result.stderr.splitlines()


# -- The image's interpreter ---------------------------------------------------------------------------------------

BOOKWORM = ROOT / ".venv-bookworm" / "bin" / "python"


@pytest.mark.skipif(not BOOKWORM.exists(), reason=f"no {BOOKWORM} (the image's Python and boto3; .ci/run makes it)")
def test_the_repair_job_runs_under_the_images_python_on_s3(tmp_path: Path, moto_server):
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs, expected = deliveries(tmp_path)
    for path in inputs:
        s3.upload_file(str(path), "bucket-name", f"lab/{path.name}")
    root = S3Uri("my-bucketname", "repaired/run/")
    repairs = [
        repair_of(INDEX, "s3://bucket-name/lab/S0000.bcf", ["S0000"], root, True),
        repair_of(RECOMPRESS, "s3://bucket-name/lab/S0001.vcf.gz", ["S0001"], root, False),
        repair_of(SPLIT, "s3://bucket-name/lab/trio.vcf.gz", list(TRIO), root, False),
    ]
    entries = [{"key": f"repair-{i}", "lines": [r.line()]} for i, r in enumerate(repairs, start=1)]
    s3.put_object(Bucket="bucket2-name", Key="tasks-repair.json", Body=task_file_body(entries).encode())
    (tmp_path / "data").mkdir()
    for index in range(3):  # each child of the array, as Batch runs it
        done = subprocess.run(
            [str(BOOKWORM), str(ROOT / "image" / "entrypoint.py"), "repair", "-f",
             f"s3://bucket2-name/tasks-repair.json{'#' + ARRAY_INDEX}", "-d", str(tmp_path / "data")],
            env=image_env(AWS_BATCH_JOB_ARRAY_INDEX=str(index)), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "[tiledbvcf-batch] repaired 1 inputs" in done.stderr
    keys = sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket="my-bucketname", Prefix="repaired/run/")["Contents"]
    )
    names = ["S0000.bcf"] + [f"{name}.vcf.gz" for name in ("S0001", *TRIO)]
    assert keys == sorted(f"repaired/run/{name}{suffix}" for name in names for suffix in ("", ".csi"))
    assert {s3.head_object(Bucket="my-bucketname", Key=key)["ServerSideEncryption"] for key in keys} == {"AES256"}
    (tmp_path / "down").mkdir()
    for key in keys:
        s3.download_file("my-bucketname", key, str(tmp_path / "down" / key.rpartition("/")[2]))
    for name in ("S0000", "S0001"):
        got = next((tmp_path / "down").glob(f"{name}.*[fz]"))
        assert cohort.sample_records(got) == cohort.sample_records(expected[name])
        assert pysam.bcftools.index("-n", str(got)).strip() == str(len(cohort.sample_records(got)))  # indexed
    for name in TRIO:
        assert genotypes(tmp_path / "down" / f"{name}.vcf.gz", 0) == genotypes(expected[name], name)
    assert list((tmp_path / "data").iterdir()) == []  # the job's work directory is gone
