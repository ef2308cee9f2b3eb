"""--executor local with the real tiledbvcf: the same job commands as on Batch, run on this machine.

Run whenever TILEDBVCF names a tiledbvcf (``.ci/run`` unpacks ../shared/tools and sets it).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

import cohort
from conftest import BED, ROOT, TILEDBVCF, listed, needs_tiledbvcf, run_script, tiledbvcf

pytestmark = needs_tiledbvcf


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    """A script with --executor local."""
    return run_script(name, "--executor", "local", *args)


def write_samples(path: Path, samples: list[Path] | list[str]) -> Path:
    """A samples file (or names file) at ``path``, one line each."""
    path.write_text("".join(f"{sample}\n" for sample in samples))
    return path


def ingest(here: Path, samples: Path, *extra: str) -> subprocess.CompletedProcess:
    return script("batch-ingest.py", "--dataset-uri", str(here / "ds"), "--samples", str(samples),
                  "--metadata-s3", str(here / "meta"), "--vcpus", "1", "--memory", "1024", *extra)  # fmt: skip


def export_all(here: Path, dataset: str, out: str, fmt: str) -> subprocess.CompletedProcess:
    names = here / "names.txt"
    names.write_text(tiledbvcf("list", "-u", dataset))
    (here / "regions.bed").write_text(BED)
    return script("batch-export.py", "--dataset-uri", dataset, "--dest-s3", out, "--samples", str(names),
                  "--bed", str(here / "regions.bed"), "--num-jobs", "2", "--vcpus", "1",
                  "--output-format", fmt)  # fmt: skip


@dataclass
class Place:
    """Where a test's dataset, samples and run records live: this machine, or the emulated S3."""

    kind: str
    root: Path  # the local working directory (exports are compared here)
    s3: Any = None

    @property
    def dataset(self) -> str:
        return str(self.root / "ds") if self.kind == "local" else "s3://my-bucketname/ds"

    @property
    def metadata(self) -> str:
        return str(self.root / "meta") if self.kind == "local" else "s3://bucket2-name/meta"

    def put(self, paths: list[Path]) -> list[str]:
        """The samples, where the run reads them (uploaded with their indexes, on S3)."""
        if self.kind == "local":
            return [str(path) for path in paths]
        for path in paths:
            for file in (path, Path(f"{path}.csi")):
                self.s3.upload_file(str(file), "bucket-name", f"cohort/{file.name}")
        return [f"s3://bucket-name/cohort/{path.name}" for path in paths]

    def manifests_left(self) -> list[str]:
        if self.kind == "local":
            return [str(path) for path in (self.root / "meta").rglob("ingest-b*.txt")]
        listed = self.s3.list_objects_v2(Bucket="bucket2-name", Prefix="meta/").get("Contents", [])
        return [item["Key"] for item in listed if "/ingest-b" in item["Key"] and item["Key"].endswith(".txt")]

    def record(self) -> dict[str, Any]:
        if self.kind == "local":
            return json.loads(next((self.root / "meta").rglob("run.json")).read_text())
        (key,) = [
            o["Key"]
            for o in self.s3.list_objects_v2(Bucket="bucket2-name")["Contents"]
            if o["Key"].endswith("run.json")
        ]
        return json.loads(self.s3.get_object(Bucket="bucket2-name", Key=key)["Body"].read())


@pytest.fixture(params=["local", "s3"])
def place(request, here) -> Place:
    if request.param == "local":
        return Place("local", here)
    request.getfixturevalue("moto_server")  # AWS_ENDPOINT_URL: the scripts, boto3 and tiledbvcf use it
    return Place("s3", here, boto3.client("s3", region_name="us-east-1"))


def ingest_at(place: Place, samples: Path, *extra: str) -> subprocess.CompletedProcess:
    return script("batch-ingest.py", "--dataset-uri", place.dataset, "--samples", str(samples),
                  "--metadata-s3", place.metadata, "--vcpus", "1", "--memory", "1024", *extra)  # fmt: skip


def test_ingest_12_samples_over_3_jobs_then_export_round_trip(place):
    here = place.root
    inputs = cohort.make_cohort(here / "in", 12, records=200)
    result = ingest_at(place, write_samples(here / "samples.txt", place.put(inputs)), "--num-jobs", "3")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()[1].split()) == 3 + 3  # "Submitted ingestion job(s)" and 3 ids
    assert "- 8 / 8 jobs succeeded" in result.stdout  # creation, 3 ingestion, 4 consolidation
    assert sorted(listed(place.dataset)) == sorted(p.name.removesuffix(".bcf") for p in inputs)
    # The manifests were consumed by store --remove-sample-file: the ledger's proof of success.
    assert place.manifests_left() == []
    by_name = {p.name.removesuffix(".bcf"): p for p in inputs}
    for fmt, suffix in (("b", ".bcf"), ("v", ".vcf")):
        exported = export_all(here, place.dataset, str(here / f"out-{fmt}"), fmt)
        assert exported.returncode == 0, exported.stderr
        assert cohort.compare_exported(by_name, here / f"out-{fmt}", suffix) == []

    again = ingest_at(place, here / "samples.txt", "--num-jobs", "3")
    assert again.returncode == 0 and again.stdout == ""
    assert "skipped 12 samples already ingested by earlier runs" in again.stderr
    assert len(listed(place.dataset)) == 12


def test_incremental_batches_run_one_after_another_each_consolidated(place):
    here = place.root
    inputs = cohort.make_cohort(here / "in", 6, records=100)
    samples = write_samples(here / "samples.txt", place.put(inputs))
    result = ingest_at(place, samples, "--num-jobs", "2", "--incremental", "3", "--balance", "bytes")
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()[:4]] == ["array", "ingestion", "ingestion",
                                                                           "ingestion"]  # fmt: skip
    assert re.search(r"^Balance by bytes: the largest ingestion job holds \d\.\d\dx", result.stderr, re.MULTILINE)
    stages = re.findall(r"- ingestion (\d): 2 / 2 jobs succeeded", result.stdout)
    assert stages == ["1", "2", "3"]
    # After each batch, consolidation: utils consolidate then vacuum of fragment_meta and commits, one job each.
    assert re.findall(r"- consolidation (\d): 4 / 4 jobs succeeded", result.stdout) == ["1", "2", "3"]
    assert len(re.findall(r"^Submitted consolidation job\(s\) after ingestion batch \d: ", result.stderr,
                          re.MULTILINE)) == 3  # fmt: skip
    record = place.record()
    assert record["options"]["balance"] == "bytes" and record["options"]["consolidate"] is True
    started = {}
    for job in record["jobs"]:
        state = json.loads((here / "state" / f"{job['job_id']}.json").read_text())
        assert state["status"] == "SUCCEEDED", job["key"]
        started[job["key"]] = (state["attempts"][0]["startedAt"], state["attempts"][0]["stoppedAt"])
    order = ["ingest-1-*", *[f"consolidate-1-{i}" for i in range(1, 5)], "ingest-2-*", "consolidate-2-1"]
    spans = [[span for key, span in started.items() if re.fullmatch(step.replace("*", r"\d"), key)] for step in order]
    for before, after in itertools.pairwise(spans):
        assert max(stop for _, stop in before) <= min(start for start, _ in after)
    assert len(record["jobs"]) == 1 + 3 * (2 + 4)
    assert sorted(listed(place.dataset)) == sorted(p.name.removesuffix(".bcf") for p in inputs)
    if place.kind == "local":  # vacuumed: one consolidated commits file and one fragment metadata file remain
        assert [p.suffix for p in (here / "ds" / "data" / "__commits").iterdir()] == [".con"]
        assert [p.suffix for p in (here / "ds" / "data" / "__fragment_meta").iterdir()] == [".meta"]


def test_a_corrupt_sample_fails_its_job_and_resume_finishes_the_run(place):
    here = place.root
    inputs = cohort.make_cohort(here / "in", 6, records=150)
    good = inputs[4].read_bytes()
    cohort.corrupt(inputs[4])
    samples = write_samples(here / "samples.txt", place.put(inputs))
    failed = ingest_at(place, samples, "--num-jobs", "3", "--log-lines", "5")
    assert failed.returncode == 1
    assert "- 3 / 8 jobs succeeded" in failed.stdout  # the consolidation did not run after a failed batch
    assert "- consolidation 1: 0 / 4 jobs succeeded, did not run" in failed.stdout
    assert re.search(r"- Total cost estimate \$0\.00 \([\d.]+ hours @ \$0\.0000 / hr\)", failed.stdout)  # not billed
    assert "1 job failed: tiledbvcf-ingest-b1-j3" in failed.stdout
    assert re.search(r"    log: \S+/ingest-1-3\.log\n", failed.stdout)
    assert "    | " in failed.stdout  # the tail of its log
    run_id = re.search(r"Run (\S+) recorded", failed.stderr).group(1)
    record = re.search(r"recorded at (\S+)", failed.stderr).group(1)
    status = run_script("batch-runs.py", "status", record)
    assert status.returncode == 1 and "- 3 / 8 jobs succeeded" in status.stdout, status.stderr
    logs = run_script("batch-runs.py", "logs", run_id, "--metadata-s3", place.metadata)
    assert "1 job failed: tiledbvcf-ingest-b1-j3" in logs.stdout and "[critical]" in logs.stdout, logs.stderr
    listed_runs = run_script("batch-runs.py", "list", "--metadata-s3", place.metadata)
    assert listed_runs.stdout.startswith(f"{run_id}  failed  8 jobs  "), listed_runs.stderr
    assert listed_runs.stdout.rstrip().endswith(f"  {place.dataset}  {record}")

    inputs[4].write_bytes(good)  # the corrected file, same path
    place.put([inputs[4]])
    resumed = ingest_at(place, samples, "--num-jobs", "3", "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run_id}: resubmitting 1 jobs that did not succeed" in resumed.stderr
    assert "- consolidation 1: 4 / 4 jobs succeeded" in resumed.stdout  # the resumed batch is consolidated again
    by_name = {p.name.removesuffix(".bcf"): p for p in inputs}
    assert sorted(listed(place.dataset)) == sorted(by_name)
    exported = export_all(here, place.dataset, str(here / "out"), "v")
    assert exported.returncode == 0, exported.stderr
    assert cohort.compare_exported(by_name, here / "out", ".vcf") == []  # each sample once, every record


def tiledbvcf_processes(subcommand: str = "", under: Path | None = None) -> list[int]:
    """The tiledbvcf processes running (with ``under``: those of this test's files, not another session's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            mine = under is None or any(str(under) in arg for arg in command)
            if command[0] == TILEDBVCF and subcommand in [*command[1:2], ""] and mine:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_every_tiledbvcf_and_says_how_to_resume(here, signum, code):
    inputs = cohort.make_cohort(here / "in", 60, records=4000)
    samples = write_samples(here / "samples.txt", inputs)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "batch-ingest.py"), "--executor", "local", "--dataset-uri", str(here / "ds"),
         "--samples", str(samples), "--metadata-s3", str(here / "meta"), "--vcpus", "1", "--num-jobs", "2",
         "--sample-batch-size", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        # As from a terminal: a shell's background job (pytest ... &) would hand SIGINT down ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not tiledbvcf_processes("store", here) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert tiledbvcf_processes("store", here), "a store job should be running"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "running job(s) stopped" in err and "--resume ingest-" in err
    assert "Traceback" not in err
    assert tiledbvcf_processes(under=here) == []
    record = json.loads(next((here / "meta").rglob("run.json")).read_text())
    states = [json.loads((here / "state" / f"{job['job_id']}.json").read_text()) for job in record["jobs"]]
    assert states[0]["status"] == "SUCCEEDED"  # the creation job finished, and that is recorded
    assert {state["status"] for state in states[1:]} == {"FAILED"}


@pytest.fixture
def emulated_s3(moto_server, here):
    return boto3.client("s3", region_name="us-east-1")


def test_on_the_emulated_s3_ingest_and_export(emulated_s3, here):
    s3 = emulated_s3
    inputs = cohort.make_cohort(here / "in", 4, records=120)
    for path in inputs:
        for file in (path, Path(f"{path}.csi")):
            s3.upload_file(str(file), "bucket-name", f"cohort/{file.name}")
    samples = write_samples(here / "samples.txt", [f"s3://bucket-name/cohort/{p.name}" for p in inputs])
    dataset = "s3://my-bucketname/ds"
    result = script("batch-ingest.py", "--dataset-uri", dataset, "--samples", str(samples),
                    "--metadata-s3", "s3://bucket2-name", "--vcpus", "1", "--num-jobs", "2")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(listed(dataset)) == sorted(p.name.removesuffix(".bcf") for p in inputs)
    left = [item["Key"] for item in s3.list_objects_v2(Bucket="bucket2-name")["Contents"]]
    assert [key for key in left if key.endswith(".txt")] == []  # store consumed every manifest on S3
    exported = export_all(here, dataset, "s3://my-bucketname/exports/", "b")
    assert exported.returncode == 0, exported.stdout + exported.stderr
    (here / "down").mkdir()
    for path in inputs:
        s3.download_file("my-bucketname", f"exports/{path.name}", str(here / "down" / path.name))
    assert cohort.compare_exported({p.name.removesuffix(".bcf"): p for p in inputs}, here / "down", ".bcf") == []


def test_the_demo_runs_the_main_job_with_the_real_tiledbvcf():
    result = run_script("demo/local_run.py", "--samples", "6", "--records", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "- Number of samples: 6" in result.stdout  # tiledbvcf stat
    assert "All 6 samples exported back: every record equals its input." in result.stdout


def test_the_image_pins_the_release_the_tests_run():
    version = tiledbvcf("--version").splitlines()[0].split()[-1]
    assert f"ARG TILEDBVCF_VERSION={version}\n" in (ROOT / "Dockerfile-cli").read_text()


# A script run as `python -c WITHOUT_TILEDB_PY SCRIPT ARGS...`, as on a machine without TileDB-Py.
WITHOUT_TILEDB_PY = (
    "import os, runpy, sys; sys.modules['tiledb'] = None; sys.argv[:] = sys.argv[1:]; "
    "sys.path.insert(0, os.path.dirname(sys.argv[0])); runpy.run_path(sys.argv[0], run_name='__main__')"
)


def test_an_unknown_name_is_refused_up_front_or_fails_only_its_own_partition(here):
    inputs = cohort.make_cohort(here / "in", 6, records=80)
    assert ingest(here, write_samples(here / "samples.txt", inputs), "--num-jobs", "2").returncode == 0
    (here / "names.txt").write_text("".join(f"{p.name.removesuffix('.bcf')}\n" for p in inputs) + "NOPE\n")
    (here / "regions.bed").write_text(BED)
    args = ["--executor", "local", "--dataset-uri", str(here / "ds"), "--dest-s3", str(here / "out"), "--samples",
            "names.txt", "--bed", "regions.bed", "--num-jobs", "3", "--vcpus", "1", "--output-format", "v",
            "--log-lines", "50"]  # fmt: skip
    refused = script("batch-export.py", *args[2:])
    assert refused.returncode == 2 and list(here.glob("out/*.vcf")) == []
    assert f"Error: --samples names 1 samples that dataset {here / 'ds'} does not hold: NOPE." in refused.stderr
    # Where the dataset cannot be read (here: TileDB-Py missing), the job of the unknown name fails, alone.
    result = subprocess.run([sys.executable, "-c", WITHOUT_TILEDB_PY, str(ROOT / "batch-export.py"), *args],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "WARNING: cannot read the samples of dataset" in result.stderr
    assert "(TileDB-Py is not installed: pip install -r requirements.txt)" in result.stderr
    assert result.returncode == 1
    assert "- 2 / 3 jobs succeeded" in result.stdout
    assert "1 job failed: tiledbvcf-export-1-of-3" in result.stdout  # sorted: NOPE, S0000, S0001 | ...
    assert "NOPE" in result.stdout.split("1 job failed")[1]  # its log names the unknown sample
    landed = sorted(path.name for path in (here / "out").glob("*.vcf"))
    assert landed == ["S0002.vcf", "S0003.vcf", "S0004.vcf", "S0005.vcf"]
    assert "MISSING 3 of 7 exported files" in result.stdout


def test_a_corrected_file_is_refused_then_replaced_as_the_readme_says(here):
    inputs = cohort.make_cohort(here / "in", 3, records=100)
    assert ingest(here, write_samples(here / "samples.txt", inputs)).returncode == 0
    corrected = cohort.make_cohort(here / "fixed", 2, records=130, seed=7)[1]  # S0001 again, other records
    refused = ingest(here, write_samples(here / "again.txt", [inputs[0], corrected, inputs[2]]))
    assert refused.returncode == 2, refused.stderr
    assert f"Error: 1 samples are already in dataset {here / 'ds'}: S0001 ({corrected})." in refused.stderr
    assert "skipped 2 samples already ingested by earlier runs" not in refused.stdout

    replaced = ingest(here, write_samples(here / "fix.txt", [corrected]), "--replace")
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    exported = export_all(here, str(here / "ds"), str(here / "out"), "v")
    assert exported.returncode == 0, exported.stderr
    expected = {"S0000": inputs[0], "S0001": corrected, "S0002": inputs[2]}
    assert cohort.compare_exported(expected, here / "out", ".vcf") == []  # the new records, and only them


def recorded(result: subprocess.CompletedProcess) -> dict[str, Any]:
    """The run record of a local run, where the script said it recorded it."""
    return json.loads(Path(result.stderr.split(" recorded at ")[1].split()[0]).read_text())


def test_runs_watched_to_their_end_teach_the_next_estimate_and_write_their_page(here):
    inputs = cohort.make_cohort(here / "in", 6, records=300)
    first = ingest(here, write_samples(here / "first.txt", inputs[:4]), "--num-jobs", "2", "--no-consolidate",
                   "--report", str(here / "ingest.html"))  # fmt: skip
    assert first.returncode == 0, first.stderr
    measured = recorded(first)["measured"]
    assert measured["bytes"] == sum(path.stat().st_size for path in inputs[:4]) and measured["vcpu_seconds"] > 0
    assert f"HTML report written to {here / 'ingest.html'}" in first.stderr  # the local executor always waits
    assert (here / "ingest.html").read_text().count('"outcome":"succeeded"') == 3  # creation and 2 ingestions
    plan = ingest(here, write_samples(here / "next.txt", inputs[4:]), "--dry-run", "--json")
    learned = json.loads(plan.stdout)["estimate"]
    assert learned["source"] == "estimate from 1 earlier run"
    assert learned["throughput_bytes_per_vcpu_second"] == round(measured["bytes"] / measured["vcpu_seconds"], 1)

    names = write_samples(here / "names.txt", [p.name.removesuffix(".bcf") for p in inputs[:4]])
    (here / "regions.bed").write_text(BED)
    export = ["batch-export.py", "--dataset-uri", str(here / "ds"), "--samples", str(names), "--bed",
              str(here / "regions.bed"), "--dest-s3", str(here / "out"), "--metadata-s3", str(here / "meta"),
              "--num-jobs", "2", "--vcpus", "1"]  # fmt: skip
    exported = script(*export)
    assert exported.returncode == 0, exported.stderr
    assert "Estimate (default throughput, " in exported.stderr  # no export of this dataset before
    measured = recorded(exported)["measured"]
    assert measured["samples"] == 4 and measured["vcpu_seconds"] > 0
    again = json.loads(script(*export, "--dry-run", "--json").stdout)["estimate"]
    assert again["source"] == "estimate from 1 earlier run" and again["samples"] == 4
    assert again["throughput_samples_per_vcpu_second"] == round(4 / measured["vcpu_seconds"], 4)


def store_attempts(here: Path) -> list[str]:
    """The store commands the local jobs ran, as their logs show them (one line per attempt)."""
    return [line for log in (here / "state").rglob("*.log") for line in log.read_text().splitlines()
            if line.startswith("--- attempt") and " store " in line]  # fmt: skip


def test_store_sized_from_the_job_still_ingests_every_record(here):
    inputs = cohort.make_cohort(here / "in", 4, records=300)
    result = script("batch-ingest.py", "--dataset-uri", str(here / "ds"), "--samples",
                    str(write_samples(here / "samples.txt", inputs)), "--metadata-s3", str(here / "meta"),
                    "--vcpus", "2", "--memory", "2048", "--sample-batch-size", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (attempt,) = store_attempts(here)
    assert " -t 2 " in attempt and " -m 1536 " in attempt  # 2048 MiB less the 512 MiB reserve
    exported = export_all(here, str(here / "ds"), str(here / "out"), "v")
    assert exported.returncode == 0, exported.stderr
    assert cohort.compare_exported({p.name.removesuffix(".bcf"): p for p in inputs}, here / "out", ".vcf") == []


@pytest.mark.skipif(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20 >= 53760,
                    reason="this machine has the memory a default job's store budget asks for")  # fmt: skip
def test_a_store_budget_above_this_machine_is_lowered_not_refused(here):
    # store refuses -m above the machine's RAM (exit 105): the default --memory asks for 53760 MiB.
    inputs = cohort.make_cohort(here / "in", 2, records=100)
    result = ingest(here, write_samples(here / "samples.txt", inputs), "--memory", "61440")
    assert result.returncode == 0, result.stderr
    (attempt,) = store_attempts(here)
    assert " -m 53760 " in attempt
    logs = "".join(log.read_text() for log in (here / "state").rglob("*.log"))
    assert re.search(r"store -m 53760 is more than this machine's \d+ MiB: lowered to \d+", logs)
    assert sorted(listed(str(here / "ds"))) == sorted(p.name.removesuffix(".bcf") for p in inputs)
