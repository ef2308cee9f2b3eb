"""The run record: written and read back unchanged, records of every earlier version still read, damage named."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import DATASET, options
from tiledbvcf_batch.executors.batch import BatchExecutor
from tiledbvcf_batch.inputs import InputError, Sample
from tiledbvcf_batch.options import IngestOptions
from tiledbvcf_batch.plan import ingest_batches, plan_ingest
from tiledbvcf_batch.record import (
    DamagedRecord,
    NewerRecord,
    RunRecord,
    dataset_index,
    list_records,
    load_record,
    locate,
    run_prefix_for,
)
from tiledbvcf_batch.storage import LocalPath, S3Uri, Storage

RUNS = "s3://bucket2-name/tiledbvcf-batch/runs"
# As batch-ingest.py wrote a legacy (--register) run before the executor key (commit 60a4df0): the queue and the
# definition at the top level, barrier jobs as "gate" stages, no sample names, no array keys.
LEGACY_INGEST = {
    "run_id": "ingest-20261120T080000Z-abcdef", "kind": "ingest", "created_at": "2026-11-20T08:00:00+00:00",
    "region": "us-east-1", "job_queue": "tiledbvcf-job-queue", "job_definition": "tiledbvcf-24h", "target": DATASET,
    "record": f"{RUNS}/ingest-20261120T080000Z-abcdef/run.json",
    "options": {"dataset_uri": DATASET, "samples": "samples.txt", "num_jobs": 21, "register": True,
                "sample_batch_size": None, "tiledb_config": None, "instance_price": 0.768},
    "jobs": [
        {"key": "create", "stage": "create", "name": "tiledbvcf-create", "job_id": "j-c", "depends_on": [],
         "manifest": None, "samples": []},
        {"key": "register-1", "stage": "register-1", "name": "tiledbvcf-register-b1", "job_id": "j-r",
         "depends_on": ["create"], "manifest": f"{RUNS}/ingest-20261120T080000Z-abcdef/register-b001.txt",
         "samples": ["s3://bucket-name/samples/1.bcf"]},
        {"key": "ingest-1-1", "stage": "ingest-1", "name": "tiledbvcf-ingest-b1-j1", "job_id": "j-1",
         "depends_on": ["register-1"], "manifest": f"{RUNS}/ingest-20261120T080000Z-abcdef/ingest-b001-j0001.txt",
         "samples": ["s3://bucket-name/samples/1.bcf"]},
        {"key": "gate-1-1-1", "stage": "gate-1", "name": "tiledbvcf-gate-b1-l1-1", "job_id": "j-g",
         "depends_on": ["ingest-1-1"], "manifest": None, "samples": []},
    ],
}  # fmt: skip
# As batch-export.py wrote an export then: the destination as the target, its own option keys.
LEGACY_EXPORT = {
    "run_id": "export-20261120T090000Z-123abc", "kind": "export", "created_at": "2026-11-20T09:00:00+00:00",
    "region": "eu-west-1", "job_queue": "q", "job_definition": "jd", "target": "s3://my-bucketname/bcf-exports/",
    "record": f"{RUNS}/export-20261120T090000Z-123abc/run.json",
    "options": {"dataset_uri": DATASET, "dest_s3": "s3://my-bucketname/bcf-exports/", "samples_count": 2,
                "output_format": "z", "instance_price": 0.5},
    "jobs": [{"key": "export-1", "stage": "export", "name": "tiledbvcf-export-1-of-1", "job_id": "j-e",
              "depends_on": [], "manifest": f"{RUNS}/export-20261120T090000Z-123abc/export-1.txt",
              "samples": ["A", "B"]}],
}  # fmt: skip


def planned(num_jobs: int = 2, arrays: bool = False, consolidate: bool = False) -> RunRecord:
    """A new ingestion run's record of 4 samples, as submission writes it, before any job id is known."""
    opts = options(IngestOptions, num_jobs=num_jobs, consolidate=consolidate)
    prefix = run_prefix_for(opts.metadata_s3, "ingest-r1")
    batches, _ = ingest_batches([Sample(f"s3://bucket-name/s{i}.bcf") for i in range(4)], opts, prefix)
    plan = plan_ingest(opts, batches, "ingest-r1", prefix)
    executor = BatchExecutor(None, "q", "jd", array_jobs=arrays)
    jobs = executor.recorded(plan, executor.submissions(plan))
    return RunRecord.new(plan, jobs, {"num_jobs": num_jobs}, executor.settings(), "us-east-1",
                         {"s3://bucket-name/s0.bcf": "S0"})  # fmt: skip


@pytest.mark.parametrize("arrays", [False, True])
def test_a_record_reads_back_as_it_was_written(arrays):
    record = planned(arrays=arrays)
    record.set_job_ids({job.array or job.key: f"id-{job.array or job.key}" for job in record.jobs})
    written = json.loads(json.dumps(record.to_json()))
    assert RunRecord.from_json(written) == record
    assert written["record"] == f"{RUNS}/ingest-r1/run.json" and written["sample_names"] == {
        "s3://bucket-name/s0.bcf": "S0"
    }
    # Readers of records older than the executor key find the queue and the definition where they always were.
    assert (written["job_queue"], written["job_definition"]) == ("q", "jd")


def test_an_array_run_with_consolidation_reads_back():
    record = planned(arrays=True, consolidate=True)
    assert RunRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    # The consolidation waits for every task of the array, by the entries the record has for them.
    first = next(job for job in record.jobs if job.kind == "consolidate")
    assert first.depends_on == ["ingest-1-1", "ingest-1-2"]


def test_a_per_job_record_keeps_the_job_keys_it_always_had_and_an_array_record_adds_its_own():
    per_job = planned().to_json()
    assert all(set(job) == set(LEGACY_INGEST["jobs"][0]) for job in per_job["jobs"])
    arrays = planned(arrays=True)
    children = [job for job in arrays.jobs if job.array is not None]
    assert [(job.key, job.index) for job in children] == [("ingest-1-1", 0), ("ingest-1-2", 1)]
    assert all(job.done and job.done.endswith(f"/done/{job.key}.json") for job in children)
    arrays.set_job_ids({children[0].array: "parent"})
    assert [job.job_id for job in children] == ["parent:0", "parent:1"]  # each child watched, resumed, cancelled


def test_a_legacy_record_of_the_first_release_still_reads_and_keeps_every_key():
    loaded = RunRecord.from_json(copy.deepcopy(LEGACY_INGEST))
    assert loaded.executor == {"kind": "batch", "job_queue": "tiledbvcf-job-queue", "job_definition": "tiledbvcf-24h"}
    assert loaded.sample_names == {} and loaded.options["register"] is True
    assert [job.kind for job in loaded.jobs] == ["create", "register", "ingest", "gate"]
    assert loaded.job_ids() == ["j-c", "j-r", "j-1", "j-g"]
    assert loaded.names()["j-g"] == "tiledbvcf-gate-b1-l1-1"
    written = loaded.to_json()
    assert written | LEGACY_INGEST == written  # every old key, with its value, is still there
    assert [set(job) for job in written["jobs"]] == [set(job) for job in LEGACY_INGEST["jobs"]]


def test_a_legacy_export_record_still_reads():
    loaded = RunRecord.from_json(copy.deepcopy(LEGACY_EXPORT))
    assert (loaded.kind, loaded.target, loaded.region) == ("export", "s3://my-bucketname/bcf-exports/", "eu-west-1")
    assert loaded.options["output_format"] == "z" and loaded.jobs[0].samples == ["A", "B"]
    assert loaded.executor == {"kind": "batch", "job_queue": "q", "job_definition": "jd"}


def test_a_record_with_the_executor_key_but_no_sample_names_reads():
    """Between the executor key (1df7277) and recorded sample names (baac09e)."""
    data = {**copy.deepcopy(LEGACY_INGEST), "executor": {"kind": "batch", "job_queue": "q2", "job_definition": "d2"}}
    loaded = RunRecord.from_json(data)
    assert loaded.executor["job_queue"] == "q2" and loaded.sample_names == {}


def test_a_local_run_names_its_state_root():
    data = {**copy.deepcopy(LEGACY_INGEST), "executor": {"kind": "local", "root": "/home/me/.tiledbvcf-batch"}}
    assert RunRecord.from_json(data).executor["root"] == "/home/me/.tiledbvcf-batch"
    del data["executor"]["root"]
    with pytest.raises(DamagedRecord, match="no 'root' in executor"):
        RunRecord.from_json(data)


def damaged(change) -> dict:
    data = copy.deepcopy(LEGACY_INGEST)
    change(data)
    return data


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda d: d.update(kind="Merge!"), "kind is 'Merge!', not ingest or export"),
        (lambda d: d.update(created_at="yesterday"), "created_at is 'yesterday', not an ISO 8601 time"),
        (lambda d: d.update(region="us east"), "region is 'us east', not an AWS region name"),
        (lambda d: d.pop("jobs"), "no 'jobs' in it"),
        (lambda d: d["jobs"][2].update(depends_on=["gone"]), "job ingest-1-1 depends on 'gone', which is not a job"),
        (lambda d: d["jobs"][1].update(stage="ingest-0"), "job 2 stage is 'ingest-0', not a stage of a run"),
        (lambda d: d["jobs"][0].update(samples="s3://x"), 'job 1 samples is "s3://x", not a list'),
        (lambda d: d["jobs"][0].update(samples=[1]), "job 1 samples holds [1], not texts"),
        (lambda d: d.update(executor={"kind": 8}), "executor kind is 8, which this version does not know"),
        (lambda d: d["options"].update(register="yes"), 'options register is "yes", not true or false'),
        (lambda d: d["options"].update(instance_price="cheap"), 'options instance_price is "cheap", not a number'),
    ],
)
def test_a_damaged_record_is_named_with_what_is_wrong(change, reason):
    with pytest.raises(DamagedRecord) as error:
        RunRecord.from_json(damaged(change))
    assert str(error.value).startswith(f"run record {LEGACY_INGEST['record']} is damaged ({reason}")
    assert "restore it from a copy or S3 versioning" in str(error.value)


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda d: d["options"].update(output_format="cram"), "output format 'cram' is not one this version knows"),
        (lambda d: d["jobs"][0].update(stage="annotate"), "job 1 stage 'annotate' is not one this version knows"),
        (lambda d: d.update(executor={"kind": "k8s"}), "executor kind 'k8s' is not one this version knows"),
    ],
)
def test_an_export_record_of_a_newer_version_says_upgrade(change, reason):
    data = copy.deepcopy(LEGACY_EXPORT)
    change(data)
    with pytest.raises(NewerRecord) as error:
        RunRecord.from_json(data)
    assert str(error.value).startswith(
        f"run record {LEGACY_EXPORT['record']} was written by a newer version of tiledbvcf-batch ({reason}"
    )
    assert "upgrade this checkout" in str(error.value) and "damaged" not in str(error.value)


def test_a_record_saved_on_disk_loads_and_one_cut_short_is_damaged(tmp_path):
    storage = Storage(None)
    record = planned()
    record.record = str(tmp_path / "runs" / "ingest-r1" / "run.json")
    record.save(storage)
    assert load_record(storage, LocalPath(record.record)) == record
    (tmp_path / "cut.json").write_text(json.dumps(record.to_json())[:100])
    with pytest.raises(DamagedRecord, match=r"cut.json is damaged \(JSONDecodeError: "):
        load_record(storage, LocalPath(str(tmp_path / "cut.json")))


def test_a_run_is_located_by_its_record_or_by_its_id_under_the_metadata_location():
    uri = f"{RUNS}/ingest-r1/run.json"
    assert locate(uri, None) == S3Uri("bucket2-name", "tiledbvcf-batch/runs/ingest-r1/run.json")
    assert locate(f"{RUNS}/ingest-r1/", None) == locate(uri, None)  # the run's directory
    assert locate("ingest-r1", "bucket2-name") == locate(uri, None)
    assert locate("ingest-r1", "s3://bucket2-name/meta") == S3Uri(
        "bucket2-name", "meta/tiledbvcf-batch/runs/ingest-r1/run.json"
    )
    with pytest.raises(InputError, match="RUN 'ingest-r1' is a run id: add --metadata-s3"):
        locate("ingest-r1", None)


def test_records_are_listed_oldest_first_whatever_their_kind(tmp_path):
    storage = Storage(None)
    for run_id in ("ingest-20270102T000000Z-aaaaaa", "export-20270101T000000Z-bbbbbb", "ingest-20270103T000000Z-0"):
        storage.put(LocalPath(str(tmp_path / "tiledbvcf-batch" / "runs" / run_id / "run.json")), b"{}")
    storage.put(LocalPath(str(tmp_path / "tiledbvcf-batch" / "runs" / "stray.json")), b"{}")  # not a record
    found = [location.key.split("/")[-2] for location in list_records(storage, LocalPath(str(tmp_path)))]
    assert found == ["export-20270101T000000Z-bbbbbb", "ingest-20270102T000000Z-aaaaaa", "ingest-20270103T000000Z-0"]


def test_each_dataset_has_an_index_of_its_own_runs():
    metadata = S3Uri("bucket2-name")
    index = dataset_index(metadata, DATASET)
    assert index == dataset_index(metadata, DATASET) and index.key.startswith("tiledbvcf-batch/datasets/")
    assert index != dataset_index(metadata, DATASET + "-2") and index.key.endswith("/")
