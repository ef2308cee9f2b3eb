"""The executor seam: the registry (a made-up third executor), jobs vs tasks, and what Batch's reasons mean."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import pytest
from click.testing import CliRunner

import flags
from conftest import DATASET, base, ingest_plan, invoke, load_script, record_of
from hints import interrupted_message
from tiledbvcf_batch import executors
from tiledbvcf_batch.executors.arrays import as_arrays
from tiledbvcf_batch.executors.base import (
    Asked,
    Attempt,
    CancelOutcome,
    Executor,
    JobDescription,
    Kind,
    LogTail,
    Words,
    forgotten,
)
from tiledbvcf_batch.executors.batch import BatchExecutor, with_barriers
from tiledbvcf_batch.executors.jobs import Job, RecordedJob
from tiledbvcf_batch.executors.local import LocalExecutor
from tiledbvcf_batch.inputs import Problems
from tiledbvcf_batch.options import IngestOptions, flag
from tiledbvcf_batch.plan import Stage
from tiledbvcf_batch.record import DamagedRecord, RunRecord

RUNS = load_script("batch-runs.py")


# -- A third executor, registered by a test: selectable, recorded, made again from its record ----------------


INSTANT_WORDS = Words("the instant executor", "forgets nothing", "nowhere", "nothing", "lost hosts")


@dataclass
class Instant(Executor):
    """A made-up executor: every job has succeeded as soon as it is submitted (nothing runs)."""

    note: str
    submitted: list[Job] = field(default_factory=list)
    kind: str = "instant"
    poll_interval: tuple[float, float] = (0.0, 0.0)
    words: Words = INSTANT_WORDS
    blocks: bool = False
    bills_instances: bool = False

    def settings(self) -> dict[str, Any]:
        return {"kind": self.kind, "note": self.note}

    def where(self) -> str:
        return "at once"

    def default_scratch(self) -> str:
        return "/instant-scratch"

    def preflight(self) -> list[str]:
        return []

    def submit(self, job: Job, ids: dict[str, str], run_id: str) -> str:
        self.submitted.append(job)
        return f"{run_id}/{job.key}"

    def describe(self, ids: Sequence[str]) -> dict[str, JobDescription]:
        return {job_id: {"jobId": job_id, "jobName": job_id, "status": "SUCCEEDED", "attempts": []} for job_id in ids}

    def cancel(self, ids: Sequence[str], reason: str) -> CancelOutcome:
        return CancelOutcome(finished=list(ids))

    def terminate(self, ids: Sequence[str], reason: str) -> list[str]:
        return []

    def log_tail(self, job: JobDescription, attempt: Attempt, lines: int) -> LogTail | None:
        return None


@pytest.fixture
def instant() -> Any:
    made: list[Instant] = []

    def from_request(given: None, asked: Any, clients: Any) -> Instant:
        made.append(Instant(note=f"asked with {asked.vcpus} vCPUs"))
        return made[-1]

    def from_settings(settings: Any, clients: Any) -> Instant:
        made.append(Instant(note=settings["note"]))
        return made[-1]

    def command_line(settings: Any) -> list[str]:
        return ["--executor", "instant"]

    executors.register(Kind("instant", from_request, from_settings, settings={"note": True}, command_line=command_line))
    try:
        yield made
    finally:
        del executors.KINDS["instant"]


def test_a_registered_executor_is_selectable_recorded_and_made_again_from_its_record(
    aws, samples_file, run_ingest, instant
):
    assert executors.names() == ("batch", "local", "instant")
    result = run_ingest(*base(samples_file(2)), "--executor", "instant", "--no-consolidate")
    assert result.exit_code == 0, result.stderr
    assert aws.submitted == []  # nothing went to Batch
    (made,) = instant
    assert [job.key for job in made.submitted] == ["create", "ingest-1-1"]
    store = made.submitted[1].args
    assert store[store.index("-d") + 1] == "/instant-scratch"  # the executor's scratch default
    record = record_of(aws, result.stderr)
    assert record["executor"] == {"kind": "instant", "note": "asked with 16 vCPUs"}
    assert [job["job_id"] for job in record["jobs"]] == [f"{record['run_id']}/create", f"{record['run_id']}/ingest-1-1"]

    status = invoke(RUNS.main, ["status", record["record"]])
    assert status.exit_code == 0, status.stderr
    assert instant[-1].note == "asked with 16 vCPUs"  # made again from the record's settings
    assert "- 2 / 2 jobs succeeded" in status.stdout
    assert "- 0 lost hosts survived or retried." in status.stdout  # the executor's words, not Batch's
    assert "- Total cost estimate $0.00" in status.stdout  # it bills no instances: priced 0 unless asked


@dataclass(frozen=True)
class QuickOptions:
    speed: int | None = flag(None, metavar="N", low=1, required_for="quick", help="How fast the quick executor is.")


def test_an_executor_declares_its_own_options_which_the_command_line_offers_and_gives_it_typed():
    made: list[tuple[Any, Asked]] = []

    def from_request(given: QuickOptions, asked: Asked, clients: Any) -> Instant:
        made.append((given, asked))
        return Instant(note="quick")

    executors.register(Kind("quick", from_request, lambda settings, clients: Instant("quick"), settings={},
                            command_line=lambda settings: ["--executor", "quick"], options=QuickOptions))  # fmt: skip
    try:

        @click.command()
        @flags.click_options(("executor",), flags.Where)
        def command(**given: Any) -> None:
            pass

        # Options the script's order does not name follow --executor: the registered kinds' own, in their order.
        assert [param.name for param in command.params] == [
            "executor", "job_queue", "job_definition", "array_jobs", "max_parallel", "tiledbvcf", "speed"
        ]  # fmt: skip
        assert "How fast the quick executor is.  [required]" in CliRunner().invoke(command, ["--help"]).output
        given = {"dataset_uri": "s3://bkt/ds", "samples": "s.txt", "metadata_s3": "meta", "executor": "quick"}
        problems = Problems()
        request = flags.request_from(given, IngestOptions, flags.Tail, problems)
        assert problems.found == ["Missing option '--speed'. (see --help)"]
        request = flags.request_from({**given, "speed": 3, "vcpus": 2}, IngestOptions, flags.Tail, Problems())
        executors.for_request(request.where.executor, request.executor, request.asked(), None)
        assert made == [(QuickOptions(3), Asked(2, False))]  # typed
    finally:
        del executors.KINDS["quick"]


def test_a_record_names_the_settings_its_kind_needs(instant):
    document = {"run_id": "ingest-r1", "kind": "ingest", "created_at": "2027-01-15T08:00:00+00:00",
                "region": "us-east-1", "target": DATASET, "record": "s3://m/run.json", "options": {},
                "jobs": [], "executor": {"kind": "instant", "note": "n"}}  # fmt: skip
    assert RunRecord.from_json(document).executor == {"kind": "instant", "note": "n"}
    for settings, reason in (({"kind": "instant"}, "no 'note' in executor"),
                             ({"kind": "instant", "note": 3}, "executor note is 3, not a text"),
                             ({"kind": "k8s"}, "executor kind 'k8s' is not one this version knows "
                                               "(batch, local, instant)")):  # fmt: skip
        with pytest.raises(DamagedRecord, match=re.escape(reason)):
            RunRecord.from_json({**document, "executor": settings})


def test_an_executor_not_registered_is_refused_by_the_command_line(aws, samples_file, run_ingest):
    result = run_ingest(*base(samples_file(2)), "--executor", "instant")
    assert result.exit_code == 2
    assert "Invalid value for '--executor': 'instant' is not one of 'batch', 'local'" in result.stderr


def test_each_executor_says_whether_it_blocks_and_what_its_scratch_is(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    batch, local = BatchExecutor(None, "q", "jd"), LocalExecutor("tiledbvcf", root=tmp_path / "state")
    assert (batch.blocks, batch.bills_instances, batch.default_scratch()) == (False, True, "/data")
    with batch.handling_signals() as received:  # Batch's jobs outlive this process: no signal is caught
        assert received == []
    assert (local.blocks, local.bills_instances) == (True, False)
    scratch = local.default_scratch()
    assert local.default_scratch() == scratch and scratch.startswith(str(tmp_path / "tiledbvcf-scratch-"))
    local.close()  # the executor removes what it made
    assert list(tmp_path.iterdir()) == []


# -- A job is not a task: plain, array, barrier ------------------------------------------------------------------


def test_a_plain_job_runs_its_one_task():
    plan = ingest_plan(4, num_jobs=2)
    task = plan.tasks[1]
    job = Job.of(task)
    assert (job.key, job.stage, job.name, job.args, job.after, job.manifest) == (
        task.key, task.stage, task.name, task.args, task.after, task.manifest
    )  # fmt: skip
    assert job.tasks == (task,) and not job.is_array and job.samples == task.samples
    (entry,) = LocalExecutor("tiledbvcf").recorded(plan, [job])
    assert entry == RecordedJob("ingest-1-1", "ingest-1", task.name, None, ["create"], str(task.manifest.uri),
                                list(task.samples))  # fmt: skip
    assert set(entry.to_json()) == {"key", "stage", "name", "job_id", "depends_on", "manifest", "samples"}
    assert entry.submitted_id({"ingest-1-1": "j-1"}) == "j-1"


def test_an_array_job_runs_a_stage_and_the_record_keeps_each_task():
    plan = ingest_plan(6, num_jobs=3)
    create, array = as_arrays(plan)
    assert (
        array.is_array
        and array.tasks == plan.tasks[1:]
        and array.samples == tuple(sample for task in plan.tasks[1:] for sample in task.samples)
    )
    assert str(array.manifest.uri) == "s3://meta/tiledbvcf-batch/runs/ingest-r1/tasks-ingest-1.json"
    entries = BatchExecutor(None, "q", "jd", array_jobs=True).recorded(plan, [create, array])
    assert [(e.key, e.array, e.index, e.depends_on) for e in entries] == [
        ("create", None, None, []),
        ("ingest-1-1", "ingest-1-array", 0, ["create"]),
        ("ingest-1-2", "ingest-1-array", 1, ["create"]),
        ("ingest-1-3", "ingest-1-array", 2, ["create"]),
    ]
    assert entries[2].manifest == f"{array.manifest.uri}#1"
    assert entries[2].done == "s3://meta/tiledbvcf-batch/runs/ingest-r1/done/ingest-1-2.json"
    assert entries[2].submitted_id({"create": "c", "ingest-1-array": "p"}) == "p:1"  # Batch names children so
    assert entries[2].submitted_id({"create": "c"}) is None  # the array was not submitted


def test_a_barrier_job_runs_no_task():
    plan = ingest_plan(25, num_jobs=25)
    later = Job.of(plan.tasks[1])
    waiting = Job("after", later.stage, "after", ("store",), later.resources, 1, tuple(t.key for t in plan.tasks[1:]))
    jobs = with_barriers([Job.of(task) for task in plan.tasks] + [waiting])
    barriers = [job for job in jobs if job.stage.kind == "gate"]
    assert len(barriers) == 2 and all(job.tasks == () and not job.is_array and job.samples == () for job in barriers)
    assert jobs[-1].after == tuple(job.key for job in barriers)
    (entry,) = RunRecord.new(plan, BatchExecutor(None, "q", "jd").recorded(plan, barriers[:1]), {}, {}, "r").jobs
    assert (entry.stage, entry.manifest, entry.samples, len(entry.depends_on)) == ("gate-1", None, [], 13)


def test_the_barrier_stage_is_the_batch_executor_s_own_label_and_line():
    """Registered with the Batch executor's Kind: the neutral texts label it, and its Submitted line is Batch's."""
    assert executors.KINDS["batch"].stages == {"gate": "batch barrier"} and executors.KINDS["local"].stages == {}
    assert Stage.parse("gate-2").label == "batch barrier 2"
    line = BatchExecutor(None, "q", "jd").stage_line(Stage("gate", 2), ["a", "b"])
    assert line == "Submitted 2 barrier job(s) after ingestion batch 2"


# -- What Batch's reasons mean, said by the Batch executor ------------------------------------------------------


def test_batch_explains_jobs_that_will_never_start_or_wait_for_capacity():
    batch = BatchExecutor(None, "q", "jd")
    stuck = batch.explain({"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - big"})
    assert stuck.forever and stuck.advice.startswith("no instance type of the compute environment fits")
    unknown = batch.explain({"status": "RUNNABLE", "statusReason": "MISCONFIGURATION:NEW_CODE - what"})
    assert (
        unknown.forever and unknown.advice == "check the compute environment, its service role and the job's resources"
    )
    waiting = batch.explain({"status": "RUNNABLE", "statusReason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - none"})
    assert not waiting.forever and "On-Demand instead of Spot" in waiting.advice
    assert batch.explain({"status": "RUNNING", "statusReason": "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"}) is None
    assert batch.explain({"status": "RUNNABLE"}) is None
    assert LocalExecutor("tiledbvcf").explain({"status": "RUNNABLE", "statusReason": "CAPACITY:X"}) is None


def test_batch_says_which_attempts_lost_their_host():
    batch = BatchExecutor(None, "q", "jd")
    assert batch.host_lost({"statusReason": "Host EC2 (instance i-1) terminated."})
    assert not batch.host_lost({"statusReason": "Essential container in task exited"})
    assert not batch.host_lost({})
    assert not LocalExecutor("tiledbvcf").host_lost({"statusReason": "Host EC2 (instance i-1) terminated."})
    # The retry policy retries exactly what host_lost counts.
    assert batch.words.host_loss == "Spot interruptions (Host EC2 ...)"


def test_a_forgotten_job_and_an_interrupted_wait_say_the_executor_s_words():
    batch, local = BatchExecutor(None, "q", "jd"), LocalExecutor("tiledbvcf")
    assert forgotten("j-1", "one", batch.words)["statusReason"] == (
        "no longer known to the executor (AWS Batch forgets jobs some days after they end)"
    )
    assert "(this machine forgets a job whose state file is removed)" in forgotten("j", "", local.words)["statusReason"]
    run = RunRecord("ingest-r1", "ingest", "2027-01-15T08:00:00+00:00", "us-east-1", DATASET, None, {}, [], {})
    assert "keep running on AWS Batch." in interrupted_message(run, None, None, batch.words.detached)
    assert "keep running in the process that runs them." in interrupted_message(run, None, None, local.words.detached)


def test_the_registry_says_which_kinds_take_local_paths_and_how_to_ask_for_a_recorded_one_again():
    assert executors.takes_local_paths("local") and not executors.takes_local_paths("batch")
    assert executors.command_line({"kind": "local", "root": "/x"}) == ["--executor", "local"]
    # A record older than the executor key ran on Batch; one without its queue gets placeholders to fill in.
    assert executors.command_line({"job_queue": "q", "job_definition": "d"}) == [
        "--job-queue", "q", "--job-definition", "d",
    ]  # fmt: skip
    assert executors.command_line({"kind": "batch"}) == ["--job-queue", "QUEUE", "--job-definition", "DEFINITION"]
