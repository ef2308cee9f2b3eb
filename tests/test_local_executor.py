"""The local executor's failure paths, with a stand-in tiledbvcf: finding it, retries, failed dependencies.

The real tiledbvcf runs in tests/test_real_tiledbvcf.py; a stand-in is for what the real one cannot be
made to do on demand (fail once, then succeed; be a legacy release).
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
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import INGEST, ROOT, install_standin, invoke
from samplefiles import bgzip_vcf
from tiledbvcf_batch.executors.local import JOB_VARIABLE, LocalExecutor, default_parallel, orphaned
from tiledbvcf_batch.inputs import Resources
from tiledbvcf_batch.plan import Stage, Task
from tiledbvcf_batch.processes import job_runs, process_exists, process_start, process_state, stop_jobs


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in tiledbvcf in this test's directory, which holds 4 samples and samples.txt; the stand-in's calls."""
    tiledbvcf = install_standin(tmp_path, monkeypatch)
    monkeypatch.setenv("TILEDBVCF_BATCH_STATE", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    for i in range(4):
        (tmp_path / f"s{i}.bcf").write_bytes(bgzip_vcf([f"S{i}"]))  # headers are read: local files cost nothing
        (tmp_path / f"s{i}.bcf.csi").write_bytes(b"i")
    (tmp_path / "samples.txt").write_text("".join(f"s{i}.bcf\n" for i in range(4)))
    return tiledbvcf.calls


def ingest(tmp_path: Path, *extra: str):
    local = ["--executor", "local", "--vcpus", "1", "--metadata-s3", str(tmp_path / "meta")]
    return invoke(INGEST.main, [*local, "--dataset-uri", str(tmp_path / "ds"), "--samples", "samples.txt", *extra])


def test_a_missing_tiledbvcf_is_one_line_with_the_install_hint(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("TILEDBVCF", str(tmp_path / "nowhere" / "tiledbvcf"))
    result = ingest(tmp_path)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "conda install -c conda-forge -c tiledb libtiledbvcf" in result.stderr
    assert not (tmp_path / "meta").exists() and standin() == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("import time\ntime.sleep(60)\n", "--version did not answer in 1 seconds"),
        ("import sys\nsys.stdout.buffer.write(b'TileDB-VCF \\xff\\xfe version\\n')\n", "--version printed 'TileDB-VCF"),
    ],
    ids=["hangs", "not-utf8"],
)
def test_a_tiledbvcf_whose_version_hangs_or_is_not_text_is_one_line(tmp_path, standin, monkeypatch, body, says):
    monkeypatch.setattr("tiledbvcf_batch.executors.local_setup.VERSION_TIMEOUT", 1.0)
    program = tmp_path / "odd" / "tiledbvcf"
    program.parent.mkdir()
    program.write_text(f"#!{sys.executable}\n{body}")
    program.chmod(0o755)
    monkeypatch.setenv("TILEDBVCF", str(program))
    started = time.monotonic()
    result = ingest(tmp_path)
    assert time.monotonic() - started < 30
    assert result.exit_code == 2 and result.stdout == "", result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert f"{program} is not a working tiledbvcf" in result.stderr and says in result.stderr
    assert "conda install -c conda-forge -c tiledb libtiledbvcf" in result.stderr
    assert not (tmp_path / "meta").exists() and standin() == []


def test_a_legacy_tiledbvcf_needs_register(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("STANDIN_VERSION", "TileDB-VCF version 0.6.2")
    result = ingest(tmp_path)
    assert result.exit_code == 2
    assert "is TileDB-VCF version 0.6.2, a legacy release (v2/v3 datasets): pass --register" in result.stderr


def test_dry_run_names_the_tiledbvcf_and_runs_nothing(tmp_path, standin):
    result = ingest(tmp_path, "--dry-run", "--num-jobs", "2")
    assert result.exit_code == 0, result.stderr
    cores_allow = len(os.sched_getaffinity(0))  # --vcpus 1
    assert result.lines[0].endswith(f"on this machine, {cores_allow} at a time, with TileDB-VCF version 0.40.3")
    assert standin() == [] and not (tmp_path / "meta" / "tiledbvcf-batch" / "runs").exists()


def test_retries_give_more_attempts_with_resume(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL_TIMES", "1")
    result = ingest(tmp_path, "--retries", "2")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "- 1 jobs had more than 1 attempt." in result.lines
    stores = [call for call in standin() if call[0] == "store"]
    scratch = [store.pop(store.index("-d") + 1) for store in stores]  # each attempt has scratch of its own
    assert len(stores) == 2 and stores[0] == stores[1] and "--resume" in stores[0]
    assert scratch[0] != scratch[1]


def test_a_failed_job_fails_its_dependents_without_running_them(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL_TIMES", "1")
    result = ingest(tmp_path, "--incremental", "2", "--log-lines", "3")
    assert result.exit_code == 1
    assert [call[0] for call in standin()] == [
        "create",
        "list",
        "store",
    ]  # the job check, then store; batch 2 never ran
    assert "- ingestion 1: 0 / 1 jobs succeeded" in result.stdout
    assert "- ingestion 2: 0 / 1 jobs succeeded, did not run" in result.stdout
    # The root cause is diagnosed; the job that only failed because of it is named apart, after it.
    assert "- consolidation 1: 0 / 4 jobs succeeded, did not run" in result.stdout
    assert "FAILED: 9 jobs did not run because a job they depend on failed: tiledbvcf-consolidate-fragment-meta-b1, " \
           "tiledbvcf-consolidate-commits-b1, " in result.stdout  # fmt: skip
    assert (
        "1 job failed: tiledbvcf-ingest-b1-j1" in result.stdout
        and "tiledbvcf-ingest-b2-j1\n  status" not in result.stdout
    )
    assert "    | [critical] Error: stand-in failure 1" in result.stdout  # the failed job's log tail
    assert "- Samples: 0 in jobs that succeeded, 4 in jobs that did not." in result.stdout


def test_scratch_is_a_temporary_directory_of_the_run_unless_given(tmp_path, standin, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    assert ingest(tmp_path).exit_code == 0
    store = next(call for call in standin() if call[0] == "store")
    scratch = store[store.index("-d") + 1]
    # The run's scratch, and in it a directory of the job's own (jobs may run side by side).
    assert Path(scratch).parent.parent == temporary and Path(scratch).parent.name.startswith("tiledbvcf-scratch-")
    assert Path(scratch).name.startswith("store-")
    assert list(temporary.iterdir()) == []  # removed at the end of the run
    given = ingest(tmp_path, "--scratch-path", str(tmp_path), "--force-reingest")
    assert given.exit_code == 0, given.stderr
    store = [call for call in standin() if call[0] == "store"][-1]
    assert Path(store[store.index("-d") + 1]).parent == tmp_path


def test_default_parallelism_counts_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)  # taskset, a container's share
    assert default_parallel(1) == 2 and default_parallel(2) == 1 and default_parallel(16) == 1


def test_a_job_that_ignores_sigterm_is_killed_after_a_bounded_wait(tmp_path):
    program = tmp_path / "stubborn"
    program.write_text(
        f"#!{sys.executable}\nimport signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[-1], 'w').close()\ntime.sleep(120)\n"
    )
    program.chmod(0o755)
    executor = LocalExecutor(str(program), root=tmp_path / "state", stop_grace=0.5)
    ready = tmp_path / "ready"
    task = Task("create", Stage("create"), "create", ("create", "-u", str(ready)), Resources(1, 1024), 1)
    job_id = executor.submit(task, {}, "ingest-r1")
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = executor.describe([job_id])[job_id]["pid"]
    stopping = threading.Thread(target=executor.stop, args=([job_id], "stopped by the test"), daemon=True)
    try:
        stopping.start()
        stopping.join(timeout=20)
        assert not stopping.is_alive(), "stop() waits forever for a job that ignores SIGTERM"
        assert not process_exists(pid)
        assert executor.describe([job_id])[job_id]["status"] == "FAILED"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def chain(tmp_path: Path, executor: LocalExecutor, length: int) -> list[str]:
    """``length`` jobs, each after the one before, of a program that notes its start and ends at once."""
    ids: dict[str, str] = {}
    for number in range(length):
        after = (f"job-{number - 1}",) if number else ()
        args = ("create", "-u", str(tmp_path / f"started-{number}"))
        task = Task(f"job-{number}", Stage("create"), f"job-{number}", args, Resources(1, 1024), 1, after)
        ids[task.key] = executor.submit(task, ids, "ingest-r1")
    return list(ids.values())


def finished(executor: LocalExecutor, ids: list[str], within: float) -> list[str]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        states = [d["status"] for d in executor.describe(ids).values()]
        if all(state in ("SUCCEEDED", "FAILED") for state in states):
            return states
        time.sleep(0.05)
    return [d["status"] for d in executor.describe(ids).values()]


QUICK = '#!/bin/sh\ntouch "$3"\n'


def test_the_next_job_starts_when_one_ends_not_a_poll_later(tmp_path):
    program = tmp_path / "quick"
    program.write_text(QUICK)
    program.chmod(0o755)
    # A poll far longer than the chain takes: only the jobs' own ends can move it along.
    executor = LocalExecutor(str(program), root=tmp_path / "state", poll=60.0)
    ids = chain(tmp_path, executor, 4)
    assert finished(executor, ids, within=30) == ["SUCCEEDED"] * 4
    assert all((tmp_path / f"started-{number}").exists() for number in range(4))


def test_without_a_thread_to_spare_the_poll_still_notices_each_end(tmp_path, monkeypatch):
    program = tmp_path / "quick"
    program.write_text(QUICK)
    program.chmod(0o755)
    start = threading.Thread.start

    def refuse_waiters(thread: threading.Thread) -> None:
        if thread.name.startswith("wait-"):
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_waiters)
    executor = LocalExecutor(str(program), root=tmp_path / "state", poll=0.05)
    ids = chain(tmp_path, executor, 3)
    assert finished(executor, ids, within=30) == ["SUCCEEDED"] * 3


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_jobs_and_prints_the_command_that_resumes(tmp_path, standin, monkeypatch, signum, code):
    """SIGTERM is Ctrl-C: no tiledbvcf outlives the script, and the printed command resumes the run."""
    monkeypatch.setenv("STANDIN_SLEEP", "60")
    args = [str(ROOT / "batch-ingest.py"), "--executor", "local", "--vcpus", "1", "--metadata-s3", "my meta",
            "--dataset-uri", str(tmp_path / "ds"), "--samples", "samples.txt", "--no-consolidate"]  # fmt: skip
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "calls.log.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)  # the store job runs: the submission is over, the script waits
    store = int(pid_file.read_text())
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert "Traceback" not in err and not process_exists(store)
    again = next(line for line in err.splitlines() if "to finish it: " in line).split("to finish it: ")[1]
    run_id = re.search(r"Stopped run (\S+):", err)[1]
    assert shlex.split(again) == ["python", *args, "--resume", run_id]
    record = json.loads(next((tmp_path / "my meta").rglob("run.json")).read_text())
    states = [json.loads((tmp_path / "state" / f"{job['job_id']}.json").read_text()) for job in record["jobs"]]
    assert [state["status"] for state in states] == ["SUCCEEDED", "FAILED"]


# -- A job whose script died: still RUNNING while its process runs, and cancel stops it ----------------


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended.pid


def orphan_state(pid: int, start: int | None) -> dict:
    return {"jobId": "ingest-r1/ingest-1-1", "jobName": "tiledbvcf-ingest-b1-j1", "status": "RUNNING",
            "owner": dead_pid(), "pid": pid, "starttime": start,
            "attempts": [{"startedAt": 1, "container": {"logStreamName": "x.log"}}]}  # fmt: skip


@pytest.fixture
def sleeper():
    """A job's process: a group of its own, as the local executor starts it."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_a_job_whose_owner_died_stays_running_while_its_process_runs(sleeper):
    start = process_start(sleeper.pid)
    state = orphaned(orphan_state(sleeper.pid, start))
    assert state["status"] == "RUNNING" and state["orphan"]
    assert state["statusReason"] == (
        f"the script that ran it (pid {state['owner']}) ended; its tiledbvcf (pid {sleeper.pid}) still runs: "
        "wait for it, or stop it with batch-runs.py cancel"
    )
    # Another start time: the pid names another process now (reused), the job's process is gone.
    reused = orphaned(orphan_state(sleeper.pid, start + 1))
    assert reused["status"] == "FAILED" and "ended before it did" in reused["statusReason"]
    assert orphaned(orphan_state(sleeper.pid, None))["status"] == "FAILED"  # a state of before start times
    sleeper.kill()
    sleeper.wait()
    assert orphaned(orphan_state(sleeper.pid, start))["status"] == "FAILED"


def test_a_group_whose_leader_ended_still_runs_until_its_last_process_ends(tmp_path):
    """The entrypoint killed, its tiledbvcf running on: the job's process group is what runs."""
    leader = subprocess.Popen(["sh", "-c", "sleep 60 & echo $!"], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    start = process_start(leader.pid)
    member = int(leader.stdout.readline())
    member_start = process_start(member)
    leader.wait()
    try:
        assert job_runs(leader.pid, start)
        stop_jobs([(leader.pid, start)], grace=5)
        assert not job_runs(leader.pid, start) and process_state(member) in (None, ("Z", leader.pid, member_start))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


@pytest.mark.parametrize("stubborn", [False, True])
def test_cancel_from_another_process_stops_a_job_its_script_left_running(tmp_path, stubborn):
    ignore = "trap '' TERM; " if stubborn else ""
    process = subprocess.Popen(["sh", "-c", f"{ignore}sleep 60 & wait"], start_new_session=True)
    try:
        state = orphan_state(process.pid, process_start(process.pid))
        path = tmp_path / "state" / f"{state['jobId']}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(state))
        # batch-runs.py cancel: an executor with no jobs of its own
        outcome = LocalExecutor("tiledbvcf", root=tmp_path / "state", stop_grace=0.5).cancel([state["jobId"]], "why")
        assert outcome.terminated == [state["jobId"]] and outcome.finished == []
        process.wait(timeout=10)
        assert not job_runs(process.pid, state["starttime"])
        saved = json.loads(path.read_text())
        assert saved["status"] == "FAILED" and saved["statusReason"] == "why"
        assert saved["attempts"][-1]["stoppedAt"] > 0 and not (tmp_path / "state" / "ingest-r1" / "cancel").exists()
        assert LocalExecutor("tiledbvcf", root=tmp_path / "state").describe([state["jobId"]])[state["jobId"]][
            "status"] == "FAILED"  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.parametrize("status", ["SUBMITTED", "RUNNABLE"])
def test_a_job_whose_script_was_killed_as_it_started_it_is_found_by_its_environment(tmp_path, status):
    """The script killed between starting a job's process and recording its pid (a first attempt, or a retry whose
    state names the attempt before): the job runs all the same. It is RUNNING, and cancel stops it."""
    state = orphan_state(dead_pid(), 1)
    state["status"] = status
    if status == "SUBMITTED":
        del state["pid"], state["starttime"], state["attempts"]
    path = tmp_path / "state" / f"{state['jobId']}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(state))
    env = {**os.environ, JOB_VARIABLE: str(path)}  # as the local executor starts it
    process = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], start_new_session=True, env=env)
    try:
        executor = LocalExecutor("tiledbvcf", root=tmp_path / "state", stop_grace=0.5)
        described = executor.describe([state["jobId"]])[state["jobId"]]
        assert described["status"] == "RUNNING" and described["pid"] == process.pid, described
        outcome = LocalExecutor("tiledbvcf", root=tmp_path / "state", stop_grace=0.5).cancel([state["jobId"]], "why")
        assert outcome.terminated == [state["jobId"]] and outcome.finished == []
        process.wait(timeout=10)
        assert json.loads(path.read_text())["status"] == "FAILED"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    # Its process gone, the job is what it was: failed, its script having ended before it did.
    assert executor.describe([state["jobId"]])[state["jobId"]]["status"] == "FAILED"


def test_cancel_after_the_script_was_killed_stops_its_running_store(tmp_path, standin, monkeypatch):
    """kill -9 of batch-ingest.py while a store runs, then batch-runs.py cancel: terminated, not "finished"."""
    monkeypatch.setenv("STANDIN_SLEEP", "60")
    args = [str(ROOT / "batch-ingest.py"), "--executor", "local", "--vcpus", "1", "--metadata-s3", "meta",
            "--dataset-uri", str(tmp_path / "ds"), "--samples", "samples.txt", "--no-consolidate"]  # fmt: skip
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = tmp_path / "calls.log.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.2)
    store = int(pid_file.read_text())
    process.kill()
    process.wait()
    try:
        record = next((tmp_path / "meta").rglob("run.json"))
        result = subprocess.run([sys.executable, str(ROOT / "batch-runs.py"), "cancel", str(record)],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "1 job(s) terminated (were running): " in result.stdout and "(tiledbvcf-ingest-b1-j1)" in result.stdout
        assert "tiledbvcf-ingest-b1-j1)" not in result.stdout.split("had already finished")[-1]
        assert not process_exists(store)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(store, signal.SIGKILL)


def test_each_job_runs_through_the_entrypoint_and_its_state_names_its_process(tmp_path, standin, monkeypatch):
    """A store of a sample the dataset holds already is refused by the job itself, and no store runs."""
    monkeypatch.setenv("STANDIN_LISTED", "S2")
    result = ingest(tmp_path, "--no-consolidate", "--log-lines", "5")
    assert result.exit_code == 1
    assert [call[0] for call in standin()] == ["create", "list"]
    assert f"store refused: 1 of this job's 4 samples already in dataset {tmp_path / 'ds'}" in result.stdout
    assert f"S2 ({tmp_path / 's2.bcf'})" in result.stdout  # the log's tail, in the diagnosis
    states = [json.loads(path.read_text()) for path in (tmp_path / "state").rglob("*.json")]
    assert {state["jobName"] for state in states} == {"tiledbvcf-create", "tiledbvcf-ingest-b1-j1"}
    for state in states:
        assert state["starttime"] > 0 and state["ownerstart"] == process_start(os.getpid())
