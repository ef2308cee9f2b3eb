"""Array children with the real tiledbvcf: the image's entrypoint resolves each child's task by its index.

Each child runs as Batch runs it: the array job's command, with AWS_BATCH_JOB_ARRAY_INDEX set, against
the emulated S3. Run whenever TILEDBVCF names a tiledbvcf (``.ci/run`` unpacks ../shared/tools and sets it).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import boto3

import cohort
from conftest import listed, needs_tiledbvcf, options, run_entrypoint
from tiledbvcf_batch.arraytasks import ARRAY_INDEX_VARIABLE
from tiledbvcf_batch.bed import read_bed
from tiledbvcf_batch.commands import option_value
from tiledbvcf_batch.executors.batch import BatchExecutor
from tiledbvcf_batch.executors.jobs import Job
from tiledbvcf_batch.inputs import Sample, parse_dataset_uri
from tiledbvcf_batch.ledger import SUCCEEDED, job_states
from tiledbvcf_batch.oom import plan_resubmission
from tiledbvcf_batch.options import ExportOptions, IngestOptions
from tiledbvcf_batch.plan import Plan, ingest_batches, plan_export, plan_ingest
from tiledbvcf_batch.record import RunRecord, run_prefix_for
from tiledbvcf_batch.storage import LocalPath, S3Uri, Storage

pytestmark = needs_tiledbvcf
DATASET = "s3://my-bucketname/arrays-ds"
ARRAYS = BatchExecutor(None, "q", "jd", array_jobs=True)


def entrypoint(args: tuple[str, ...], index: int | None = None) -> subprocess.CompletedProcess:
    """The entrypoint as AWS Batch runs a job, or child ``index`` of an array job (it sets the index variable)."""
    return run_entrypoint(args, **({ARRAY_INDEX_VARIABLE: str(index)} if index is not None else {}))


def run_like_batch(jobs: list[Job]) -> None:
    """Each job in order; an array job as each of its children."""
    for job in jobs:
        for index in range(len(job.tasks)) if job.is_array else [None]:
            done = entrypoint(job.args, index)
            assert done.returncode == 0, done.stdout + done.stderr


def upload(s3, plan: Plan, jobs: list[Job]) -> None:
    """What submission uploads: the run's own files (an export's cleaned BED) and, in array mode, one task file per
    array."""
    for manifest in [*plan.uploads, *(job.manifest for job in jobs if job.manifest is not None)]:
        s3.put_object(Bucket=manifest.uri.bucket, Key=manifest.uri.key, Body=manifest.body())


@dataclass
class Forgotten(BatchExecutor):
    """The Batch executor once Batch forgot the jobs (it describes nothing): only the done markers are left."""

    asked: list[str] = field(default_factory=list)

    def describe(self, ids):
        self.asked += ids
        return {}


def test_array_children_ingest_and_export_through_the_entrypoint(tmp_path: Path, moto_server):
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs = cohort.make_cohort(tmp_path / "in", 6, records=120)
    uris = []
    for path in inputs:
        for file in (path, Path(f"{path}.csi")):
            s3.upload_file(str(file), "bucket-name", f"cohort/{file.name}")
        uris.append(f"s3://bucket-name/cohort/{path.name}")
    (tmp_path / "scratch").mkdir()
    opts = IngestOptions(parse_dataset_uri(DATASET), "samples.txt", S3Uri("bucket2-name"), num_jobs=3, vcpus=1,
                         memory=1024, scratch_path=str(tmp_path / "scratch"), scratch_size=2048)  # fmt: skip
    prefix = run_prefix_for(opts.metadata_s3, "ingest-arrays")
    batches, _ = ingest_batches([Sample(uri) for uri in uris], opts, prefix)
    plan = plan_ingest(opts, batches, "ingest-arrays", prefix)
    jobs = ARRAYS.submissions(plan)
    assert [(job.key, job.is_array, len(job.tasks)) for job in jobs][:3] == [
        ("create", False, 1),
        ("ingest-1-array", True, 3),
        ("consolidate-1-1", False, 1),
    ]
    upload(s3, plan, jobs)
    run_like_batch(jobs)

    assert sorted(listed(DATASET)) == sorted(path.name.removesuffix(".bcf") for path in inputs)
    # Each child recorded its success itself: the ledger needs nothing from Batch to count the samples in.
    record = RunRecord.new(plan, ARRAYS.recorded(plan, jobs), {}, ARRAYS.settings(), "us-east-1")
    record.set_job_ids({"create": "c", "ingest-1-array": "p"})
    forgotten = Forgotten(None, "q", "jd")
    states = job_states(record, Storage(s3), forgotten)
    assert not [job_id for job_id in forgotten.asked if job_id.startswith("p:")]  # the markers are proof enough
    assert {key: state for key, state in states.items() if key.startswith("ingest")} == dict.fromkeys(
        ["ingest-1-1", "ingest-1-2", "ingest-1-3"], SUCCEEDED
    )

    bed = read_bed(b"".join(b"chr%d\t0\t2000000\n" % c for c in (1, 2, 3)), "s3://bucket-name/regions.bed")
    (tmp_path / "export").mkdir()
    export = ExportOptions(parse_dataset_uri(DATASET), S3Uri("bucket-name", "exported/"),
                           S3Uri("bucket-name", "names.txt"), S3Uri("bucket-name", "regions.bed"),
                           S3Uri("bucket2-name"), num_jobs=2, output_format="v",
                           scratch_path=str(tmp_path / "export"))  # fmt: skip
    names = listed(DATASET)
    export_plan = plan_export(export, names, bed, "export-arrays", run_prefix_for(export.metadata_s3, "export-arrays"))
    export_jobs = ARRAYS.submissions(export_plan)
    assert [(job.key, job.is_array, len(job.tasks)) for job in export_jobs] == [("export-array", True, 2)]
    upload(s3, export_plan, export_jobs)
    run_like_batch(export_jobs)

    out = tmp_path / "out"
    out.mkdir()
    for name in names:  # every child uploaded its own partition's files (the entrypoint's upload)
        s3.download_file("bucket-name", f"exported/{name}.vcf", str(out / f"{name}.vcf"))
    by_name = {path.name.removesuffix(".bcf"): path for path in inputs}
    assert cohort.compare_exported(by_name, out, ".vcf") == []


def test_an_array_command_outside_an_array_job_is_refused(tmp_path: Path):
    opts = options(IngestOptions, dataset_uri=LocalPath(str(tmp_path / "ds")), num_jobs=2)
    prefix = run_prefix_for(opts.metadata_s3, "ingest-x")
    batches, _ = ingest_batches([Sample(f"/in/{i}.bcf") for i in range(4)], opts, prefix)
    (array,) = [job for job in ARRAYS.submissions(plan_ingest(opts, batches, "ingest-x", prefix)) if job.is_array]
    ran = entrypoint(array.args)
    assert ran.returncode == 2
    assert "AWS_BATCH_JOB_ARRAY_INDEX is '': an array job's command runs only as a child" in ran.stderr


def test_a_child_killed_for_memory_resubmitted_on_its_own_stores_its_samples(tmp_path: Path, moto_server):
    s3 = boto3.client("s3", region_name="us-east-1")
    inputs = cohort.make_cohort(tmp_path / "in", 6, records=120)
    uris = []
    for path in inputs:
        for file in (path, Path(f"{path}.csi")):
            s3.upload_file(str(file), "bucket-name", f"cohort/{file.name}")
        uris.append(f"s3://bucket-name/cohort/{path.name}")
    opts = IngestOptions(parse_dataset_uri(DATASET), "samples.txt", S3Uri("bucket2-name"), num_jobs=3, vcpus=1,
                         memory=1024, scratch_size=0)  # fmt: skip
    prefix = run_prefix_for(opts.metadata_s3, "ingest-oom")
    batches, _ = ingest_batches([Sample(uri) for uri in uris], opts, prefix)
    plan = plan_ingest(opts, batches, "ingest-oom", prefix)
    jobs = ARRAYS.submissions(plan)
    upload(s3, plan, jobs)
    create, array, *consolidation = jobs
    run_like_batch([create])
    for index in (0, 2):  # child 1 was killed for memory before it stored anything; what followed never ran
        assert entrypoint(array.args, index).returncode == 0
    failed = {"ingest-1-2", *(job.key for job in consolidation)}
    planned = plan_resubmission(jobs, {"ingest-1-2"}, failed, set(), max_memory=63488)
    child = planned.jobs[0]
    assert (child.key, child.resources.memory, option_value(child.args, "store_budget")) == ("ingest-1-2", 2048, "1536")
    for manifest in planned.uploads:  # as resubmit_killed uploads them
        s3.put_object(Bucket=manifest.uri.bucket, Key=manifest.uri.key, Body=manifest.body())
    run_like_batch(list(planned.jobs))
    assert sorted(listed(DATASET)) == sorted(path.name.removesuffix(".bcf") for path in inputs)
