"""What a run is prepared from, without AWS: resuming a run's unfinished jobs, and the decisions about samples."""

from __future__ import annotations

import pytest

from conftest import DATASET, options, recorded_run
from tiledbvcf_batch import ledger
from tiledbvcf_batch.arraytasks import task_file_body
from tiledbvcf_batch.dataset import DatasetView
from tiledbvcf_batch.executors.arrays import resumed_with_arrays
from tiledbvcf_batch.inputs import InputError, Sample
from tiledbvcf_batch.ledger import FAILED, SUCCEEDED, UNFINISHED, Ledger
from tiledbvcf_batch.options import ExportOptions, IngestOptions
from tiledbvcf_batch.plan import IngestBatch, Manifest, StoreShare
from tiledbvcf_batch.prepare import (
    DatasetState,
    held_by_runs,
    in_the_dataset,
    named_index_with_scratch,
    recorded_options,
    still_creating,
)
from tiledbvcf_batch.prepare_export import names_not_in
from tiledbvcf_batch.record import RecordedJob
from tiledbvcf_batch.registry import Entry
from tiledbvcf_batch.storage import S3Uri

RUN = "s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1"


def in_run(name: str) -> S3Uri:
    return S3Uri("bucket2-name", f"tiledbvcf-batch/runs/ingest-r1/{name}")


def store_job(batch: int, index: int, samples: list[str]) -> RecordedJob:
    key = f"ingest-{batch}-{index}"
    manifest = f"{RUN}/ingest-b{batch:03d}-j{index:04d}.txt"
    return RecordedJob(key, f"ingest-{batch}", f"tiledbvcf-ingest-b{batch}-j{index}", f"id-{key}", ["create-1"],
                       manifest, samples)  # fmt: skip


def resume_batches(run, states, task_lines=None):
    """ledger.resume_batches with the manifests the AWS Batch executor resumes from (array children's from their
    task file, whose lines ``task_lines`` gives by key)."""
    bodies = {
        "task-file": task_file_body([{"key": key, "lines": list(lines)} for key, lines in (task_lines or {}).items()])
    }
    return ledger.resume_batches(run, states, resumed_with_arrays(run.jobs, bodies))


def ingestion(*jobs: RecordedJob):
    run = recorded_run({"create": 1})
    run.jobs += list(jobs)
    return run


def test_resume_keeps_only_the_jobs_that_did_not_succeed_with_their_own_manifests():
    run = ingestion(store_job(1, 1, ["s3://b/a.bcf"]), store_job(1, 2, ["s3://b/b.bcf", "s3://b/c.bcf"]),
                    store_job(2, 1, ["s3://b/d.bcf"]), store_job(3, 1, ["s3://b/e.bcf"]))  # fmt: skip
    states = {"create-1": SUCCEEDED, "ingest-1-1": SUCCEEDED, "ingest-1-2": FAILED, "ingest-2-1": SUCCEEDED,
              "ingest-3-1": FAILED}  # fmt: skip
    first = Manifest(in_run("ingest-b001-j0002.txt"), ("s3://b/b.bcf", "s3://b/c.bcf"), existing=True)
    third = Manifest(in_run("ingest-b003-j0001.txt"), ("s3://b/e.bcf",), existing=True)
    assert resume_batches(run, states) == [
        IngestBatch(1, (StoreShare(2, first),)),
        IngestBatch(3, (StoreShare(1, third),)),
    ]
    assert resume_batches(run, dict.fromkeys(states, SUCCEEDED)) == []  # nothing left to do


def test_resume_refuses_a_run_with_jobs_still_running():
    run = ingestion(store_job(1, 1, ["s3://b/a.bcf"]), store_job(1, 2, ["s3://b/b.bcf"]))
    with pytest.raises(InputError, match="run ingest-r1 still has 1 unfinished jobs: wait for them, or cancel them"):
        resume_batches(run, {"create-1": SUCCEEDED, "ingest-1-1": UNFINISHED, "ingest-1-2": FAILED})


def test_resume_of_a_legacy_run_registers_the_failed_batch_again():
    register = RecordedJob("register-1", "register-1", "tiledbvcf-register-b1", "id-r", ["create-1"],
                           f"{RUN}/register-b001.txt", ["s3://b/a.bcf"])  # fmt: skip
    run = ingestion(register, store_job(1, 1, ["s3://b/a.bcf"]))
    (batch,) = resume_batches(run, {"create-1": SUCCEEDED, "register-1": FAILED, "ingest-1-1": FAILED})
    assert batch.register == Manifest(in_run("register-b001.txt"), ("s3://b/a.bcf",), existing=True)
    assert [share.index for share in batch.shares] == [1]


def test_an_array_childs_samples_come_from_its_task_file_in_a_manifest_of_its_own():
    child = RecordedJob("ingest-1-2", "ingest-1", "tiledbvcf-ingest-b1-j2", "parent:1", ["create-1"],
                        f"{RUN}/tasks-ingest-1.json#1", ["s3://b/b.bcf"], array="ingest-1-array", index=1,
                        done=f"{RUN}/done/ingest-1-2.json")  # fmt: skip
    run = ingestion(child)
    (batch,) = resume_batches(run, {"create-1": SUCCEEDED, "ingest-1-2": FAILED}, {"ingest-1-2": ("s3://b/b.bcf\tx",)})
    (share,) = batch.shares
    # Named as a per-job run names it, and written again (not existing): the task file holds every child's lines.
    assert share == StoreShare(2, Manifest(in_run("ingest-b001-j0002.txt"), ("s3://b/b.bcf\tx",)))


def test_the_record_keeps_the_options_under_the_flags_names_with_secrets_hidden():
    opts = options(IngestOptions, attributes=("fmt_DP",), tiledb_config="vfs.s3.aws_secret_access_key=TOPSECRET")
    recorded = recorded_options(opts, samples_count=3, instance_price=0.5)
    assert recorded["metadata_s3"] == "s3://bucket2-name/" and recorded["attributes"] == ["fmt_DP"]
    assert recorded["tiledb_config"] == "vfs.s3.aws_secret_access_key=***"
    assert (recorded["samples_count"], recorded["instance_price"], recorded["num_jobs"]) == (3, 0.5, 1)
    exported = recorded_options(options(ExportOptions, output_format="z"))
    assert exported["bed"] == "s3://my-bucketname/bedfiles/sorted1000000.bed" and exported["output_format"] == "z"


def test_an_index_named_after_a_tab_needs_streamed_samples():
    samples = [Sample("s3://b/a.bcf", "s3://b/idx/a.bcf.csi"), Sample("s3://b/c.bcf")]
    (problem,) = named_index_with_scratch(options(IngestOptions), samples)
    assert problem.startswith("1 samples name their index after a TAB (e.g. s3://b/a.bcf)")
    assert "pass --scratch-size 0 to stream the samples" in problem
    assert named_index_with_scratch(options(IngestOptions, scratch_size=0), samples) == []
    assert named_index_with_scratch(options(IngestOptions), [Sample("/local/a.bcf", "/local/a.csi")]) == []


def test_names_the_dataset_holds_are_refused_skipped_or_replaced():
    samples = [Sample("s3://b/a.bcf"), Sample("s3://b/b.bcf"), Sample("s3://b/c.bcf")]
    names = {"s3://b/a.bcf": "A", "s3://b/b.bcf": "B", "s3://b/c.bcf": "C"}
    view = DatasetView(DATASET, frozenset({"B", "Z"}))
    with pytest.raises(InputError, match=r"1 samples are already in dataset .*: B \(s3://b/b.bcf\)\. Storing them"):
        in_the_dataset(options(IngestOptions), samples, names, view, [], 0)
    skipped = in_the_dataset(options(IngestOptions, skip_existing=True), samples, names, view, [], 2)
    assert [s.uri for s in skipped.samples] == ["s3://b/a.bcf", "s3://b/c.bcf"] and skipped.blocked == 2
    assert skipped.notes == ["skipped 1 samples the dataset already holds: B (s3://b/b.bcf)"]
    replaced = in_the_dataset(options(IngestOptions, replace=True), samples, names, view, [], 0)
    assert replaced.samples == samples and replaced.replaces == ("B",)
    fresh = in_the_dataset(options(IngestOptions), samples, names, DatasetView(DATASET, frozenset()), ["n"], 0)
    assert fresh.samples == samples and fresh.notes == ["n"]


def test_a_name_another_run_is_ingesting_waits_for_it():
    samples = [Sample("s3://b/a.bcf"), Sample("s3://b/b2.bcf")]
    ledger = Ledger(names_in_flight={"B": "ingest-r0"})
    kept, notes = held_by_runs(samples, {"s3://b/a.bcf": "A", "s3://b/b2.bcf": "B"}, ledger)
    assert kept == samples[:1]
    assert notes == [
        "skipped 1 samples whose names run ingest-r0 is still ingesting from other files: B (s3://b/b2.bcf)"
    ]


def test_a_new_dataset_waits_for_the_run_still_creating_it():
    message = still_creating(options(IngestOptions), ["ingest-r0"])
    assert message.startswith(f"run ingest-r0 is still creating and ingesting {DATASET}: wait for it to finish (")
    assert "python batch-runs.py wait s3://bucket2-name/tiledbvcf-batch/runs/ingest-r0/run.json" in message


def test_export_names_the_dataset_does_not_hold_are_listed_at_once():
    said: list[str] = []
    view = DatasetView(DATASET, frozenset({"A"}))
    (problem,) = names_not_in(view, ["A", "X", "Y"], said.append)
    assert problem.startswith(f"--samples names 2 samples that dataset {DATASET} does not hold: X, Y. Fix the names")
    assert names_not_in(view, ["A"], said.append) == [] and said == []
    unreadable = DatasetView(DATASET, None, "TileDB-Py is not installed")
    assert names_not_in(unreadable, ["X"], said.append) == []
    assert said == [f"WARNING: cannot read the samples of dataset {DATASET} (TileDB-Py is not installed): the names "
                    "to export and the BED's contigs are not checked before the jobs run"]  # fmt: skip


def test_a_withdrawn_run_holds_nothing_and_numbering_goes_on_after_every_entry():
    entries = tuple(Entry(n, f"ingest-r{n}", f"{RUN}{n}/run.json", "2027-01-15T08:00:00+00:00") for n in (1, 2, 3))
    state = DatasetState(True, DatasetView(DATASET, frozenset()), entries, frozenset({"ingest-r2"}))
    assert [entry.run_id for entry in state.live()] == ["ingest-r1", "ingest-r3"]
    assert state.seen == 3 and DatasetState(False, DatasetView(DATASET, frozenset())).seen == 0
