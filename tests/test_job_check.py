"""The job check with the real tiledbvcf: a store job never stores a sample twice, even when run twice.

tiledbvcf 0.40 ``store`` does not refuse a sample already in the dataset: it doubles its records. The
image's entrypoint checks each store job's samples against ``tiledbvcf list`` before it runs store, and
lets through only what an earlier attempt of the same job wrote (its started marker). Locally, a job whose
script was killed stays RUNNING while its tiledbvcf runs, so nothing resumes or re-plans it meanwhile.
Run whenever TILEDBVCF names a tiledbvcf (``.ci/run`` unpacks ../shared/tools and sets it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import cohort
from conftest import BED, ROOT, TILEDBVCF, listed, needs_tiledbvcf, run_entrypoint, run_script, tiledbvcf
from tiledbvcf_batch.executors.local import LocalExecutor
from tiledbvcf_batch.jobcheck import lock_file, started_marker
from tiledbvcf_batch.processes import job_runs


def manifest(path: Path, samples: list[Path]) -> str:
    path.write_text("".join(f"{sample}\n" for sample in samples))
    return str(path)


def exported_problems(here: Path, dataset: Path, inputs: dict[str, Path]) -> list[str]:
    """Each sample of ``inputs`` exported from the dataset, compared with its input: doubled records show."""
    out = here / f"out-{time.monotonic_ns()}"
    out.mkdir()
    (here / "regions.bed").write_text(BED)
    names = manifest(here / "names.txt", list(inputs))
    tiledbvcf("export", "-u", str(dataset), "-f", names, "-R", str(here / "regions.bed"), "-O", "v", "-d", str(out))
    return cohort.compare_exported(inputs, out, ".vcf")


def test_started_marker_paths():
    assert started_marker("s3://b/meta/tiledbvcf-batch/runs/RUN/ingest-b001-j0001.txt") == (
        "s3://b/meta/tiledbvcf-batch/runs/RUN/started/ingest-b001-j0001.txt.json"
    )
    assert started_marker("/m/tiledbvcf-batch/runs/RUN/ingest-b002-j0010.txt") == (
        "/m/tiledbvcf-batch/runs/RUN/started/ingest-b002-j0010.txt.json"
    )
    assert started_marker("m.txt") == "started/m.txt.json"
    assert lock_file(started_marker("/r/m.txt")) == "/r/started/m.txt.json.lock"


@needs_tiledbvcf
def test_a_store_job_refuses_a_sample_already_in_the_dataset_and_stores_nothing(here):
    inputs = cohort.make_cohort(here / "in", 3, records=150)
    dataset = here / "ds"
    tiledbvcf("create", "-u", str(dataset))
    tiledbvcf("store", "-u", str(dataset), "-f", manifest(here / "by-hand.txt", [inputs[1]]))  # by hand, earlier
    job = manifest(here / "ingest-b001-j0001.txt", inputs)
    args = ["store", "-u", str(dataset), "-t", "1", "-f", job, "--remove-sample-file", "--resume"]
    refused = run_entrypoint(args)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.splitlines() == [
        f"[tiledbvcf-batch] store refused: 1 of this job's 3 samples already in dataset {dataset}, not stored by an "
        f"earlier attempt of this job: S0001 ({inputs[1]}). Nothing was stored, so nothing is stored twice; to "
        "replace them with these files, ingest them with batch-ingest.py ... --replace"
    ]
    assert listed(dataset) == ["S0001"] and Path(job).exists()  # store never ran: the manifest is still there
    assert exported_problems(here, dataset, {"S0001": inputs[1]}) == []  # its records, once
    assert not Path(started_marker(job)).exists()


@needs_tiledbvcf
def test_a_job_whose_earlier_attempt_stored_part_of_it_is_finished_by_store_resume(here):
    """The earlier attempt wrote its marker, stored its first batch (-e 1: one sample a batch), and died."""
    inputs = cohort.make_cohort(here / "in", 3, records=150)
    dataset = here / "ds"
    tiledbvcf("create", "-u", str(dataset))
    job = manifest(here / "ingest-b001-j0001.txt", inputs)
    marker = Path(started_marker(job))
    marker.parent.mkdir()
    marker.write_text(json.dumps({"task": job, "names": {str(p): p.name.removesuffix(".bcf") for p in inputs}}))
    tiledbvcf("store", "-u", str(dataset), "-f", manifest(here / "first.txt", inputs[:1]), "-e", "1", "--resume")
    assert listed(dataset) == ["S0000"]
    args = ["store", "-u", str(dataset), "-t", "1", "-f", job, "--remove-sample-file", "--resume", "-e", "1"]
    finished = run_entrypoint(args)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert (
        "[tiledbvcf-batch] job check: 3 samples, none stored twice; 1 already stored by an earlier attempt of this "
        f"job, which store --resume finishes; started marker {marker}"
    ) in finished.stderr.splitlines()
    assert sorted(listed(dataset)) == ["S0000", "S0001", "S0002"] and not Path(job).exists()
    assert exported_problems(here, dataset, {p.name.removesuffix(".bcf"): p for p in inputs}) == []
    assert json.loads(marker.read_text())["names"] == {str(p): p.name.removesuffix(".bcf") for p in inputs}


def wait_until(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@needs_tiledbvcf
def test_a_killed_script_leaves_its_store_running_and_nothing_doubles_it(here):
    """SIGKILL the script while store runs: --resume refuses while the orphaned tiledbvcf runs, cancel stops
    it, then --resume finishes the run, every sample once."""
    inputs = cohort.make_cohort(here / "in", 80, records=3000)  # one job of 80 batches: about 8 s of store
    (here / "samples.txt").write_text("".join(f"{path}\n" for path in inputs))
    dataset = here / "ds"
    command = [str(ROOT / "batch-ingest.py"), "--executor", "local", "--dataset-uri", str(dataset), "--samples",
               "samples.txt", "--metadata-s3", str(here / "meta"), "--vcpus", "1", "--memory", "1024",
               "--num-jobs", "1", "--sample-batch-size", "1"]  # fmt: skip
    script = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: (dataset / "metadata").exists() and len(listed(dataset)) >= 3, 120, "store should run")
    finally:
        script.kill()  # SIGKILL: no handler runs, the job's process (a session of its own) is left running
        script.communicate()
    record = json.loads(next((here / "meta").rglob("run.json")).read_text())
    run_id = record["run_id"]
    (store,) = [job for job in record["jobs"] if job["key"] == "ingest-1-1"]
    state = json.loads((here / "state" / f"{store['job_id']}.json").read_text())
    pid, start = state["pid"], state["starttime"]
    try:
        seen = LocalExecutor(TILEDBVCF).describe([store["job_id"]])[store["job_id"]]
        assert seen["status"] == "RUNNING", seen
        assert seen["statusReason"] == (
            f"the script that ran it (pid {script.pid}) ended; its tiledbvcf (pid {pid}) still runs: wait for it, "
            "or stop it with batch-runs.py cancel"
        )
        refused = run_script(*command, "--resume", run_id)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"run {run_id} still has 1 unfinished jobs" in refused.stderr
        # Not even by hand: a second store of the same manifest finds the lock the running tiledbvcf holds.
        log = Path(state["attempts"][0]["container"]["logStreamName"]).read_text()
        args = shlex.split(log.splitlines()[0].split(": ", 1)[1])[1:]
        second = run_entrypoint(args)
        lock = lock_file(started_marker(store["manifest"]))
        assert second.returncode == 1 and re.fullmatch(
            rf"\[tiledbvcf-batch\] another store of this manifest is running: {re.escape(lock)} is locked by pid "
            rf"{pid} \(its tiledbvcf: pid \d+\); store did not run \(two at once would store its samples twice\)\n",
            second.stderr,
        ), second.stderr
        assert job_runs(pid, start), "the store should still run: make the cohort bigger"
        cancelled = run_script("batch-runs.py", "cancel", record["record"])
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert f"1 job(s) terminated (were running): {store['job_id']}" in cancelled.stdout
        assert not job_runs(pid, start)  # the entrypoint and its tiledbvcf are gone
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    stored = listed(dataset)
    assert 3 <= len(stored) < len(inputs), "the store should have been stopped part-way"
    resumed = run_script(*command, "--resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    by_name = {path.name.removesuffix(".bcf"): path for path in inputs}
    assert sorted(listed(dataset)) == sorted(by_name)
    assert exported_problems(here, dataset, by_name) == []  # every sample once, with exactly its records
