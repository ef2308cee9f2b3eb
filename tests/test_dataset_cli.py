# ruff: noqa: F811  (the fixture place comes from test_real_tiledbvcf, and names the tests' parameters)
"""batch-runs.py dataset: what a dataset holds, read from the dataset itself, and the runs that wrote it.

In process on the emulated AWS (the dataset's samples come from conftest's fake reader), then with the real
tiledbvcf on local paths and on the emulated S3 (the samples read with TileDB-Py, as a user's would be).
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import subprocess

from test_real_tiledbvcf import ingest_at, place, write_samples  # noqa: F401

import cohort
from conftest import (
    DATASET,
    ROOT,
    base,
    invoke,
    listed,
    load_script,
    make_dataset,
    needs_tiledbvcf,
    record_of,
    run_script,
    tiledbvcf,
)
from samplefiles import bgzip_bcf
from tiledbvcf_batch.dataset import registry_of
from tiledbvcf_batch.inputs import parse_dataset_uri
from tiledbvcf_batch.registry import Claim, register, withdraw
from tiledbvcf_batch.storage import Storage

RUNS = load_script("batch-runs.py")
RUN_ID = r"ingest-\d{8}T\d{6}Z-[0-9a-f]{6}"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"


def show(*args: str):
    return invoke(RUNS.main, ["dataset", *args])


def named_samples(aws, tmp_path, names: list[str]):
    """Single-sample BCFs whose headers name ``names`` (read by --check-headers), and their samples file."""
    uris = []
    for name in names:
        aws.s3.put_object(Bucket="bucket-name", Key=f"named/{name}.bcf", Body=bgzip_bcf(name))
        aws.s3.put_object(Bucket="bucket-name", Key=f"named/{name}.bcf.csi", Body=b"index")
        uris.append(f"s3://bucket-name/named/{name}.bcf")
    path = tmp_path / "named.txt"
    path.write_text("".join(f"{uri}\n" for uri in uris))
    return path, uris


def running(aws) -> None:
    """Batch says every job is running (moto's own jobs succeed at once)."""

    def handler(parsed, **_):
        for job in parsed.get("jobs", []):
            job["status"] = "RUNNING"

    aws.on("after-call.batch.DescribeJobs", handler)


def test_a_dataset_its_samples_and_a_run_in_flight(aws, samples_file, run_ingest):
    made = run_ingest(*base(samples_file(3)), "--num-jobs", "2")
    assert made.exit_code == 0, made.stderr
    running(aws)
    record = record_of(aws, made.stderr)
    make_dataset(aws, samples=("NA2", "NA1"))  # the creation job's dataset, and what a store wrote so far

    text = show(DATASET, "--samples")
    assert text.exit_code == 0 and text.stderr == "", text.stderr
    assert text.lines == [
        f"Dataset {DATASET} holds 2 samples",
        "NA1",
        "NA2",
        f"IN FLIGHT: run {record['run_id']} (record {record['record']}) is still ingesting 3 samples",
        *[f"  s3://bucket-name/samples/{i}.bcf" for i in (1, 2, 3)],
        "Runs that wrote it (1):",
        f"  {record['run_id']}  in flight  {record['created_at']}  3 samples  {record['record']}",
    ]
    assert show(DATASET).lines[:2] == [f"Dataset {DATASET} holds 2 samples", text.lines[3]]  # no names

    as_json = show(DATASET, "--json")
    assert as_json.exit_code == 0 and as_json.stderr == ""
    assert json.loads(as_json.stdout) == {
        "dataset": DATASET,
        "samples_count": 2,
        "problem": None,
        "partial": [],
        "in_flight": [{"run_id": record["run_id"], "record": record["record"], "samples": 3,
                       "being_submitted": False}],
        "runs": [{"run_id": record["run_id"], "created_at": record["created_at"], "record": record["record"],
                  "state": "in_flight", "samples": 3, "registered": True}],
        "health": None,  # not read in process (conftest): the real tiledbvcf's tests read it
    }  # fmt: skip
    listed_names = json.loads(show(DATASET, "--json", "--samples").stdout)
    assert listed_names["samples"] == ["NA1", "NA2"]
    assert listed_names["in_flight"][0]["held"][0] == {"uri": "s3://bucket-name/samples/1.bcf", "name": None}


def test_a_failed_job_leaves_samples_partly_ingested_and_says_how_to_finish(aws, tmp_path, run_ingest, monkeypatch):
    samples, uris = named_samples(aws, tmp_path, ["NA1", "NA2", "NA3"])
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # every job fails
    failed = run_ingest(*base(samples), "--check-headers")  # the names are read, and recorded
    assert failed.exit_code == 0, failed.stderr
    record = record_of(aws, failed.stderr)
    make_dataset(aws, samples=("NA1", "NA3"))  # store wrote the batch's headers before it failed

    text = show(DATASET)
    assert text.exit_code == 0, text.stderr
    common = f"--dataset-uri {DATASET}"
    where = "--metadata-s3 bucket2-name --job-queue tiledbvcf-job-queue --job-definition tiledbvcf-24h"
    assert text.lines == [
        f"Dataset {DATASET} holds 2 samples",
        f"PARTLY INGESTED: 2 samples the dataset lists, whose ingestion job failed in run {record['run_id']} "
        f"(record {record['record']}): NA1 ({uris[0]}), NA3 ({uris[2]})",
        f"  finish that run:  python batch-ingest.py {common} --samples {samples} {where} --resume {record['run_id']}",
        f"  or delete them and store them again:  python batch-ingest.py {common} --samples FILE_OF_THESE_SAMPLES "
        f"{where} --force-reingest --replace",
        "Runs that wrote it (1):",
        f"  {record['run_id']}  failed  {record['created_at']}  3 samples  {record['record']}",
    ]
    document = json.loads(show(DATASET, "--json").stdout)
    assert document["partial"] == [{
        "run_id": record["run_id"], "record": record["record"],
        "samples": [{"name": "NA1", "uri": uris[0]}, {"name": "NA3", "uri": uris[2]}], "unnamed": 0,
        "resume": text.lines[2].split(":  ")[1], "replace": text.lines[3].split(":  ")[1],
    }]  # fmt: skip
    assert document["runs"][0]["state"] == "failed" and document["in_flight"] == []


def test_names_no_run_recorded_are_read_from_the_headers(aws, tmp_path, samples_file, run_ingest, monkeypatch):
    samples, uris = named_samples(aws, tmp_path, ["NA1", "NA2"])
    with samples.open("a") as handle:  # a stand-in file whose header cannot be read
        handle.write(samples_file(1).read_text())
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    failed = run_ingest(*base(samples))  # a new dataset: no header read, no name recorded
    assert failed.exit_code == 0, failed.stderr
    assert record_of(aws, failed.stderr)["sample_names"] == {}
    make_dataset(aws, samples=("NA2",))

    text = show(DATASET)
    assert text.lines[1].endswith(f"failed in run {record_of(aws, failed.stderr)['run_id']} (record "
                                  f"{record_of(aws, failed.stderr)['record']}): NA2 ({uris[1]})")  # fmt: skip
    assert (
        text.lines[2] == "  and 1 sample of its failed jobs whose names cannot be read (the dataset may list them too)"
    )
    assert json.loads(show(DATASET, "--json").stdout)["partial"][0]["unnamed"] == 1


def test_a_registered_run_without_a_record_is_in_flight_and_a_withdrawn_one_holds_nothing(aws):
    make_dataset(aws, samples=("NA1",))
    storage = Storage(aws.s3)
    registry = registry_of(parse_dataset_uri(DATASET))
    record = "s3://bucket2-name/tiledbvcf-batch/runs/ingest-20270101T000000Z-aaaaaa/run.json"
    samples = ("s3://bucket-name/x/1.bcf", "s3://bucket-name/x/2.bcf")
    now = datetime.datetime.now(datetime.timezone.utc)
    earlier = now - datetime.timedelta(minutes=5)
    register(storage, Claim(registry, "ingest-20270101T000000Z-aaaaaa", record, samples, {samples[0]: "NA7"}, 0),
             now=lambda: earlier)  # fmt: skip
    gone = record.replace("aaaaaa", "bbbbbb")
    register(storage, Claim(registry, "ingest-20270101T000000Z-bbbbbb", gone, samples[1:], {}, 1))
    withdraw(storage, registry, "ingest-20270101T000000Z-bbbbbb")  # rolled back: its samples are free

    text = show(DATASET, "--samples")
    assert text.exit_code == 0, text.stderr
    assert text.lines[1:] == [
        "NA1",
        f"IN FLIGHT: run ingest-20270101T000000Z-aaaaaa registered 5 min ago and is being submitted (its record "
        f"{record} does not exist yet): 2 samples",
        f"  NA7 ({samples[0]})",
        f"  {samples[1]}",
        "Runs that wrote it (2):",
        f"  ingest-20270101T000000Z-aaaaaa  in flight  {earlier.isoformat(timespec='seconds')}  2 samples  {record}",
        f"  ingest-20270101T000000Z-bbbbbb  withdrawn  {now.isoformat(timespec='seconds')}  1 sample  {gone}",
    ]
    document = json.loads(show(DATASET, "--json").stdout)
    assert [run["being_submitted"] for run in document["in_flight"]] == [True]
    assert [run["state"] for run in document["runs"]] == ["in_flight", "withdrawn"]


def test_a_dataset_that_does_not_exist_is_one_line_and_exit_2(aws):
    for args in (["s3://my-bucketname/nope"], ["s3://my-bucketname/nope/", "--json"]):
        result = show(*args)
        assert result.exit_code == 2 and result.stdout == ""
        assert result.stderr == (
            "Error: dataset s3://my-bucketname/nope does not exist (nothing is stored under it): check the URI\n"
        )
    bad = show("s3://my-bucketname//x")
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: DATASET_URI 's3://my-bucketname//x' has an empty")


def test_an_unreadable_dataset_is_said_in_one_line_and_its_runs_still_shown(aws, samples_file, run_ingest,
                                                                            fake_datasets):  # fmt: skip
    made = run_ingest(*base(samples_file(1)))
    record = record_of(aws, made.stderr)
    make_dataset(aws)
    fake_datasets[DATASET] = "a legacy v2/v3 dataset: its samples are numbered, not named"

    text = show(DATASET, "--samples")
    assert text.exit_code == 0, text.stderr
    assert text.lines[0] == (
        f"Dataset {DATASET}: its samples cannot be read (a legacy v2/v3 dataset: its samples are numbered, not named)"
    )
    assert text.lines[-2:] == [
        "Runs that wrote it (1):",
        f"  {record['run_id']}  succeeded  {record['created_at']}  1 sample  {record['record']}",
    ]
    as_json = show(DATASET, "--json", "--samples")
    assert as_json.exit_code == 0
    document = json.loads(as_json.stdout)
    assert (document["samples_count"], document["samples"], document["partial"]) == (None, None, None)
    assert document["problem"] == "a legacy v2/v3 dataset: its samples are numbered, not named"
    assert [run["run_id"] for run in document["runs"]] == [record["run_id"]]
    assert as_json.stderr == f"WARNING: cannot read the samples of dataset {DATASET} ({document['problem']})\n"


def test_runs_of_older_versions_are_found_with_metadata_s3_and_a_damaged_record_is_named(aws, samples_file,
                                                                                       run_ingest):  # fmt: skip
    made = run_ingest(*base(samples_file(2)))
    record = record_of(aws, made.stderr)
    make_dataset(aws, samples=("NA1",))
    for key in aws.keys("my-bucketname", "test-vcf-dataset.tiledbvcf-batch/"):  # as an older version left it
        aws.s3.delete_object(Bucket="my-bucketname", Key=key)

    assert show(DATASET).lines == [
        f"Dataset {DATASET} holds 1 sample",
        "No run of batch-ingest.py is known for it: none is registered beside it (an older version's runs are found "
        "with the --metadata-s3 they were given)",
    ]
    older = show(DATASET, "--metadata-s3", "bucket2-name")
    assert older.lines[-1] == (
        f"  {record['run_id']}  succeeded  {record['created_at']}  2 samples  {record['record']}  "
        "(listed only under --metadata-s3)"
    )
    assert json.loads(show(DATASET, "--metadata-s3", "bucket2-name", "--json").stdout)["runs"][0]["registered"] is False

    key = record["record"].removeprefix("s3://bucket2-name/")
    aws.s3.put_object(Bucket="bucket2-name", Key=key, Body=b'{"run_id": ')
    damaged = show(DATASET, "--metadata-s3", "bucket2-name", "--json")
    assert damaged.exit_code == 0
    assert json.loads(damaged.stdout)["runs"] == [{
        "run_id": record["run_id"], "created_at": None, "record": record["record"], "state": "damaged",
        "samples": 0, "registered": False,
    }]  # fmt: skip
    assert damaged.stderr.startswith(f"WARNING: run record {record['record']} is damaged (JSONDecodeError")


def test_help_lists_the_dataset_command():
    text = invoke(RUNS.main, ["--help"]).stdout
    assert re.search(r"^  dataset\s", text, re.MULTILINE)


# -- With the real tiledbvcf: the samples as TileDB-Py reads them, the runs as the local executor ran them ------


def dataset_of(place, *args: str) -> subprocess.CompletedProcess:
    return run_script("batch-runs.py", "dataset", place.dataset, *args)


@needs_tiledbvcf
def test_the_samples_tiledbvcf_lists_and_the_run_that_wrote_them(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=60)
    ingested = ingest_at(place, write_samples(place.root / "samples.txt", place.put(inputs)), "--no-consolidate")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    run_id = re.search(r"Run (\S+) recorded at (\S+)", ingested.stderr)

    result = dataset_of(place, "--json", "--samples")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["samples"] == sorted(listed(place.dataset)) == ["S0000", "S0001", "S0002"]
    assert document["samples_count"] == 3 and document["problem"] is None
    assert (document["partial"], document["in_flight"]) == ([], [])
    (run,) = document["runs"]
    assert (run["run_id"], run["record"], run["state"], run["samples"]) == (run_id[1], run_id[2], "succeeded", 3)
    assert re.fullmatch(TIME, run["created_at"]) and run["registered"] is True
    health = document["health"]  # read with TileDB-Py, on S3 with the run's endpoint and credentials too
    assert health["problem"] is None and "metadata/vcf_headers" in {array["name"] for array in health["arrays"]}
    assert all(array["fragments"] >= 1 and array["size_bytes"] > 0 for array in health["arrays"])

    text = dataset_of(place)
    assert text.returncode == 0 and text.stdout.splitlines()[0] == f"Dataset {place.dataset} holds 3 samples"


@needs_tiledbvcf
def test_a_sample_store_left_half_written_is_shown_until_the_run_is_resumed(place):
    inputs = cohort.make_cohort(place.root / "in", 3, records=150)
    good = inputs[1].read_bytes()
    cohort.corrupt(inputs[1])  # store fails after it wrote the batch's headers: list shows all three
    samples = write_samples(place.root / "samples.txt", place.put(inputs))
    failed = ingest_at(place, samples, "--no-consolidate")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    run_id = re.search(r"Run (\S+) recorded", failed.stderr)[1]
    assert sorted(listed(place.dataset)) == ["S0000", "S0001", "S0002"]

    document = json.loads(dataset_of(place, "--json").stdout)
    (partial,) = document["partial"]
    assert partial["run_id"] == run_id
    assert [sample["name"] for sample in partial["samples"]] == ["S0000", "S0001", "S0002"]
    assert partial["resume"].endswith(f"--executor local --vcpus 1 --memory 1024 --resume {run_id}")
    assert [run["state"] for run in document["runs"]] == ["failed"]

    inputs[1].write_bytes(good)
    place.put([inputs[1]])
    words = shlex.split(partial["resume"])  # the command as printed, run from the scripts' directory
    assert words[:2] == ["python", "batch-ingest.py"]
    resumed = run_script(*words[1:], cwd=ROOT)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = json.loads(dataset_of(place, "--json").stdout)
    assert after["partial"] == [] and after["samples_count"] == 3
    # The resumed run's store consumed the failed job's manifest: the first run's samples are in, as the ledger sees.
    assert [run["state"] for run in after["runs"]] == ["succeeded", "succeeded"]


@needs_tiledbvcf
def test_the_health_counts_the_fragments_listed_and_its_advice_follows_consolidation(here):
    dataset = str(here / "ds")
    tiledbvcf("create", "-u", dataset)
    for sample in cohort.make_cohort(here / "in", 3, records=20):
        tiledbvcf("store", "-u", dataset, str(sample))  # one store each: fragments pile up

    def health() -> dict:
        done = run_script("batch-runs.py", "dataset", dataset, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["health"]

    found = health()
    arrays = {array["name"]: array for array in found["arrays"]}
    assert sorted(arrays) == ["allele_count", "data", "metadata/vcf_headers", "sample_stats", "variant_stats"]
    for name, array in arrays.items():
        assert array["fragments"] == len(list((here / "ds" / name / "__fragments").iterdir())) > 0, name
        assert array["size_bytes"] == sum(p.stat().st_size for p in (here / "ds" / name).rglob("*") if p.is_file())
        assert array["consolidated_through"] is None and array["unconsolidated_meta"] == array["fragments"]
    assert arrays["metadata/vcf_headers"]["fragments"] == 3  # one a store
    assert found["advice"] == "consolidate"
    assert found["commands"] == [f"tiledbvcf utils {action} {what} -u {dataset}" for action in ("consolidate", "vacuum")
                                 for what in ("fragment_meta", "commits")]  # fmt: skip

    for what in ("fragment_meta", "commits"):
        tiledbvcf("utils", "consolidate", what, "-u", dataset)
    found = health()
    assert found["advice"] == "vacuum" and all(array["to_vacuum"] for array in found["arrays"])
    assert found["commands"] == [f"tiledbvcf utils vacuum {what} -u {dataset}" for what in ("fragment_meta", "commits")]
    assert all(re.fullmatch(TIME, array["consolidated_through"]) for array in found["arrays"])

    for what in ("fragment_meta", "commits"):
        tiledbvcf("utils", "vacuum", what, "-u", dataset)
    assert health()["advice"] == "nothing"
    text = run_script("batch-runs.py", "dataset", dataset).stdout.splitlines()
    assert text[-1] == "Advice: nothing to do" and "Health (each array):" in text
    data = next(line for line in text if line.startswith("  data: "))
    assert data.startswith(f"  data: {arrays['data']['fragments']} fragments, ") and "0 to vacuum" in data
