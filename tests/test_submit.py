"""Submission: throttling storms ridden out, pacing, rollback, --keep-partial, Ctrl-C, and what is sent."""

from __future__ import annotations

import json
import time

import pytest

import local_aws
from conftest import FakeClock, base, calls_of, http_answer, local_ingest_plan, manifest_of, options, record_of
from stub_executor import StubExecutor, Timeline
from tiledbvcf_batch.aws import credentials_refused, make_clients
from tiledbvcf_batch.executors.batch import SUBMITS_PER_SECOND, BatchExecutor, Pacer
from tiledbvcf_batch.inputs import Sample
from tiledbvcf_batch.options import IngestOptions
from tiledbvcf_batch.plan import ingest_batches, plan_ingest
from tiledbvcf_batch.record import run_prefix_for
from tiledbvcf_batch.storage import Storage
from tiledbvcf_batch.submit import SubmissionError, Ticker, jobs_for, submit_plan


def storm(aws, operation: str, status: int, body: bytes, times: int) -> list[int]:
    """Answer ``times`` requests of ``operation`` with a throttling error at the HTTP level."""
    answered = []

    def handler(request, **_):
        if len(answered) < times:
            answered.append(status)
            return http_answer(request, status, body)
        return None

    aws.on(f"before-send.{operation}", handler)
    return answered


@pytest.fixture
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


def test_throttling_storm_on_submit_is_ridden_out(aws, samples_file, run_ingest, no_sleep):
    body = b'{"__type": "TooManyRequestsException", "message": "Too Many Requests"}'
    samples = samples_file(4)
    answered = storm(aws, "batch.SubmitJob", 429, body, times=6)
    result = run_ingest(*base(samples), "--num-jobs", "4")
    assert result.exit_code == 0, result.stderr
    assert answered == [429] * 6
    assert len(result.lines[1].split()) == 3 + 4
    assert len(aws.describe([line.split()[-1] for line in result.lines])) == 2
    assert no_sleep  # botocore backed off


def test_slowdown_storm_on_s3_is_ridden_out(aws, samples_file, run_ingest, no_sleep):
    body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    samples = samples_file(4)
    answered = storm(aws, "s3.PutObject", 503, body, times=5)
    result = run_ingest(*base(samples), "--num-jobs", "4")
    assert result.exit_code == 0, result.stderr
    assert answered == [503] * 5
    run = record_of(aws, result.stderr)
    stores = [job for job in run["jobs"] if job["stage"] == "ingest-1"]
    assert [len(aws.text(*job["manifest"][5:].split("/", 1)).splitlines()) for job in stores] == [1, 1, 1, 1]


def test_submissions_are_paced_under_the_account_limit(aws):
    """The executor paces its SubmitJob calls; the pacer is injected through the executor."""
    opts = options(IngestOptions, num_jobs=30)
    samples = [Sample(uri) for uri in local_aws.put_samples(30)]
    prefix = run_prefix_for(opts.metadata_s3, "ingest-r1")
    batches, _ = ingest_batches(samples, opts, prefix)
    plan = plan_ingest(opts, batches, "ingest-r1", prefix)
    clients = make_clients("us-east-1")
    clock = FakeClock(0.0)
    pacer = Pacer(SUBMITS_PER_SECOND, clock=clock.now, sleep=clock.sleep)
    executor = BatchExecutor(clients, aws.job_queue, aws.job_definition, pacer=pacer)
    jobs = jobs_for(plan, executor)
    said = []
    ticker = Ticker(said.append, clock=clock.now)
    record = submit_plan(plan, jobs, executor, Storage(clients.s3), {}, region="us-east-1", ticker=ticker)
    assert len(record.job_ids()) == len(aws.submitted) == 37  # creation, 30 ingestion, 2 barriers, 4 consolidation
    # No silent phase: each is announced, and a long one reports its count every 10 s (the fake clock's).
    assert said[0] == "Uploading 30 manifests and the run record to s3://bucket2-name/tiledbvcf-batch/runs/ingest-r1/"
    assert said[1] == "Submitting 37 jobs on queue tiledbvcf-job-queue, job definition tiledbvcf-24h"
    assert said[2:] == []  # 0.9 s in all: nothing more to say
    assert SUBMITS_PER_SECOND < 50
    assert clock.time == pytest.approx(36 / SUBMITS_PER_SECOND)  # 37 submits, the first one at once


def test_keep_partial_keeps_the_jobs_and_says_what_is_left(aws, samples_file, run_ingest):
    aws.fail_call("batch.SubmitJob", "ServerException", after=2)
    result = run_ingest(*base(samples_file(4)), "--num-jobs", "4", "--keep-partial")
    assert result.exit_code == 1
    error = result.stderr.splitlines()[-1]
    run_id = error.split("submission of run ")[1].split()[0]
    assert f"kept 2 submitted job(s) and 6 file(s) under s3://bucket2-name/tiledbvcf-batch/runs/{run_id}/" in error
    assert f"the same command plus --resume {run_id}" in error
    assert "python batch-runs.py cancel s3://bucket2-name/tiledbvcf-batch/runs/" in error
    record = json.loads(aws.text("bucket2-name", f"tiledbvcf-batch/runs/{run_id}/run.json"))
    assert [job["job_id"] is not None for job in record["jobs"]] == [True, True] + [False] * (3 + 4)


def test_a_rollback_that_cannot_finish_never_leaves_a_record_without_its_manifests(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.fail_call("batch.SubmitJob", "ServerException", after=1)
    aws.fail_call("s3.DeleteObject", "AccessDenied", after=2)  # the write probe and one more deletion work
    result = run_ingest(*base(samples), "--num-jobs", "2")
    assert result.exit_code == 1
    assert "tried to undo it but these remain, remove them by hand" in result.stderr
    left = aws.keys("bucket2-name", "tiledbvcf-batch/runs/")
    assert any(key.endswith("/run.json") for key in left)
    assert len([key for key in left if key.endswith(".txt")]) == 2  # the record's manifests are all still there
    assert aws.keys("bucket2-name", "tiledbvcf-batch/datasets/") == []  # the marker went first


def test_credentials_expiring_mid_submission_leave_every_job_and_file_named(aws, samples_file, run_ingest):
    """Expired credentials are no ClientError: the rollback still tries every step and names what is left."""
    tried = []

    def expired(model, **_):
        if len(aws.submitted) > 2:  # from the third job on, as AWS answers an expired token
            tried.append(model.name)
            credentials_refused({"Error": {"Code": "ExpiredToken", "Message": "The token has expired."}}, model)

    for operation in ("batch.SubmitJob", "batch.TerminateJob", "s3.DeleteObject"):
        aws.on(f"before-parameter-build.{operation}", expired)
    result = run_ingest(*base(samples_file(3)), "--num-jobs", "3", "--no-consolidate")
    assert result.exit_code == 1, result.stderr
    error = result.stderr.splitlines()[-1]
    assert "failed after 2 of 4 jobs (AWS refused your credentials (ExpiredToken: The token has expired)" in error
    left = error.split("remove them by hand: ")[1]
    assert tried.count("TerminateJob") == 2 and tried.count("DeleteObject") == 5  # every step tried
    keys = aws.keys("bucket2-name", "tiledbvcf-batch/")
    assert len(keys) == 5  # 3 manifests, the record, the index marker
    assert all(f"s3://bucket2-name/{key}" in left for key in keys)
    assert left.count("job ") == 2  # both jobs named
    assert left.count("AWS refused your credentials") == 2  # the reason once for the jobs, once for the files


def test_an_unexpected_error_mid_submission_is_rolled_back_too(aws, samples_file, run_ingest):
    """Not only AWS errors: nothing that goes wrong after the first upload may leave half a run."""
    sent = []

    def fail(**_):
        sent.append(1)
        if len(sent) == 2:
            raise RuntimeError("something unexpected")

    aws.on("before-parameter-build.batch.SubmitJob", fail)
    result = run_ingest(*base(samples_file(2)), "--num-jobs", "2")
    assert result.exit_code == 1
    assert "failed after 1 of 7 jobs (something unexpected); terminated the 1 job(s)" in result.stderr
    assert aws.keys("bucket2-name") == []


def test_ctrl_c_while_submitting_removes_what_was_submitted(aws, samples_file, run_ingest):
    samples = samples_file(3)
    ctrl_c_while_submitting(aws, 3)
    terminated = []
    aws.on("before-parameter-build.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"]))
    result = run_ingest(*base(samples), "--num-jobs", "3")
    assert result.exit_code == 1
    assert "failed after 2 of 8 jobs (interrupted); terminated the 2 job(s) already submitted" in result.stderr
    assert len(terminated) == 2
    assert aws.keys("bucket2-name") == []


def test_ctrl_c_while_a_submit_job_request_is_in_flight_stops_the_job_it_created(aws, samples_file, run_ingest):
    """The job is created on AWS, its id never read: the rollback finds it by name and run tag, and stops it."""
    sent = []

    def interrupt(parsed, **_):  # after AWS answered, before the id is read: as Ctrl-C in the middle of the request
        sent.append(parsed["jobId"])
        if len(sent) == 3:
            raise KeyboardInterrupt

    aws.on("after-call.batch.SubmitJob", interrupt)
    terminated = []
    aws.on("before-parameter-build.batch.TerminateJob", lambda params, **_: terminated.append(params["jobId"]))
    result = run_ingest(*base(samples_file(3)), "--num-jobs", "3")
    assert result.exit_code == 1
    assert "failed after 2 of 8 jobs (interrupted); terminated the 3 job(s) already submitted" in result.stderr
    assert "was looked for and not found" not in result.stderr and "nothing is left behind" in result.stderr
    assert sorted(terminated) == sorted(sent)
    assert aws.keys("bucket2-name") == []


def ctrl_c_while_submitting(aws, number: int) -> None:
    """Ctrl-C as the ``number``-th SubmitJob request is being built: its job may or may not exist."""
    sent = []

    def interrupt(**_):
        sent.append(1)
        if len(sent) == number:
            raise KeyboardInterrupt

    aws.on("before-parameter-build.batch.SubmitJob", interrupt)


def test_a_job_that_may_have_been_created_is_never_said_to_be_gone(aws, samples_file, run_ingest):
    """The job that was being submitted cannot be looked for (ListJobs refused): named, with how to find it."""
    ctrl_c_while_submitting(aws, 3)
    aws.fail_call("batch.ListJobs", "AccessDeniedException")
    result = run_ingest(*base(samples_file(3)), "--num-jobs", "3")
    assert result.exit_code == 1
    assert "nothing is left behind" not in result.stderr
    assert (
        "job tiledbvcf-ingest-b1-j2 (its submission was under way: it may have been created) (find it with aws batch "
        f"list-jobs --job-queue {aws.job_queue} --filters name=JOB_NAME,values=tiledbvcf-ingest-b1-j2 (tagged "
        "tiledbvcf-batch-run=ingest-"
    ) in result.stderr


def test_a_job_looked_for_and_not_found_is_said_so(aws, samples_file, run_ingest):
    ctrl_c_while_submitting(aws, 3)
    result = run_ingest(*base(samples_file(3)), "--num-jobs", "3")
    assert "terminated the 2 job(s) already submitted and deleted" in result.stderr
    assert "; job tiledbvcf-ingest-b1-j2, whose submission was under way, was looked for and not found; nothing is " \
        "left" in result.stderr  # fmt: skip
    assert calls_of(aws, "ListJobs") == [
        {"jobQueue": aws.job_queue, "filters": [{"name": "JOB_NAME", "values": ["tiledbvcf-ingest-b1-j2"]}]}
    ]


# -- Security ------------------------------------------------------------------------------


def test_hostile_sample_uris_stay_one_argument_in_the_manifest(aws, run_ingest, tmp_path):
    keys = ["odd/with space.bcf", "odd/quote'\"s.bcf", "odd/semi;rm -rf $HOME.bcf"]
    for key in keys:
        aws.s3.put_object(Bucket="bucket-name", Key=key, Body=b"x")
        aws.s3.put_object(Bucket="bucket-name", Key=key + ".csi", Body=b"i")
    samples = tmp_path / "odd.txt"
    samples.write_text("".join(f"s3://bucket-name/{key}\n" for key in keys))
    result = run_ingest(*base(samples))
    assert result.exit_code == 0, result.stderr
    manifest = manifest_of(aws.submitted[1])
    assert aws.text(*manifest[5:].split("/", 1)).splitlines() == [f"s3://bucket-name/{key}" for key in keys]


def test_kms_key_encrypts_manifests_and_record(aws, samples_file, run_ingest):
    result = run_ingest(*base(samples_file(1)), "--kms-key-id", "alias/tiledbvcf")
    assert result.exit_code == 0, result.stderr
    puts = [c for c in calls_of(aws, "PutObject") if c["Bucket"] == "bucket2-name"]
    assert len(puts) >= 4  # probe, manifest, record (twice), marker
    assert all(c["ServerSideEncryption"] == "aws:kms" and c["SSEKMSKeyId"] == "alias/tiledbvcf" for c in puts)


def test_secrets_never_reach_the_record_or_the_output(aws, samples_file, run_ingest):
    secret = "vfs.s3.aws_secret_access_key=TOPSECRET,vfs.s3.aws_session_token=TOKEN"
    result = run_ingest(*base(samples_file(1)), "--tiledb-config", secret, "--wait")
    assert result.exit_code == 0, result.stderr
    assert "TOPSECRET" not in result.stdout + result.stderr
    text = json.dumps(record_of(aws, result.stderr))
    assert "TOPSECRET" not in text and "TOKEN" not in text.replace("session_token", "")


def test_printed_commands_survive_copy_and_paste(aws, samples_file, run_ingest):
    """A metadata prefix with a space and $(...) stays one argument, and runs nothing when pasted."""
    import shlex

    from hints import interrupted_message
    from tiledbvcf_batch.record import RunRecord

    hostile = "s3://bucket2-name/my runs/$(touch pwned)"
    aws.fail_call("batch.SubmitJob", "ServerException", after=1)
    result = run_ingest(*base(samples_file(2))[:-2], "--metadata-s3", hostile, "--keep-partial")
    assert result.exit_code == 1
    cancel = result.stderr.split("stop it with: ")[1].strip()
    words = shlex.split(cancel)
    assert words[:3] == ["python", "batch-runs.py", "cancel"] and len(words) == 4
    assert words[3].startswith(f"{hostile}/tiledbvcf-batch/runs/ingest-") and words[3].endswith("/run.json")
    record = RunRecord.from_json(json.loads(aws.text("bucket2-name", words[3].removeprefix("s3://bucket2-name/"))))
    for line in interrupted_message(record, None).splitlines()[1:]:
        assert shlex.split(line.split(": ", 1)[1])[3] == words[3]


def test_a_long_phase_reports_its_count_every_ten_seconds():
    now = [0.0]
    said = []
    ticker = Ticker(said.append, clock=lambda: now[0])
    ticker.start("Submitting 100 jobs")
    for done in range(1, 101):
        now[0] += 0.25  # 40 a second
        ticker.tick(done, 100, "jobs submitted:")
    assert said == ["Submitting 100 jobs", "  jobs submitted: 40/100", "  jobs submitted: 80/100"]


# -- Submission whatever the executor: the stub executor, files on this machine, no emulator ----------------


class Recording(Storage):
    """Storage on this machine that keeps each write's location and body, in order."""

    def __init__(self) -> None:
        super().__init__(None)
        self.writes: list[tuple[str, bytes]] = []

    def put(self, uri, body: bytes, content_type: str = "text/plain") -> None:
        self.writes.append((str(uri), body))
        super().put(uri, body, content_type)


def files_under(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_jobs_are_submitted_in_order_each_after_the_ids_it_waits_for(tmp_path):
    plan = local_ingest_plan(tmp_path)
    executor = StubExecutor(Timeline())
    storage = Recording()
    stages = []
    record = submit_plan(plan, jobs_for(plan, executor), executor, storage, {}, region="us-east-1",
                         on_stage=lambda stage, jobs, ids: stages.append((str(stage), ids)))  # fmt: skip
    assert executor.submitted == [
        ("create", "id-create", ()),
        ("ingest-1-1", "id-ingest-1-1", ("id-create",)),
        ("ingest-1-2", "id-ingest-1-2", ("id-create",)),
        ("ingest-1-3", "id-ingest-1-3", ("id-create",)),
    ]
    assert stages == [("create", ["id-create"]), ("ingest-1", ["id-ingest-1-1", "id-ingest-1-2", "id-ingest-1-3"])]
    run = "meta/tiledbvcf-batch/runs/ingest-r1/"
    assert [uri.removeprefix(f"{tmp_path}/") for uri, _ in storage.writes] == [
        f"{run}ingest-b001-j0001.txt",
        f"{run}ingest-b001-j0002.txt",
        f"{run}ingest-b001-j0003.txt",
        f"{run}run.json",
        f"{run}run.json",
    ]
    # Until every job has its id, the record says the run is being submitted: no other run takes it for failed.
    first, last = (json.loads(body) for uri, body in storage.writes[3:])
    assert first["submitting"] is True and {job["job_id"] for job in first["jobs"]} == {None}
    assert last["submitting"] is False and [job["job_id"] for job in last["jobs"]] == [
        "id-create",
        "id-ingest-1-1",
        "id-ingest-1-2",
        "id-ingest-1-3",
    ]
    assert record.job_ids() == [job["job_id"] for job in last["jobs"]]


def test_a_job_refused_mid_way_rolls_the_whole_run_back(tmp_path):
    plan = local_ingest_plan(tmp_path)
    executor = StubExecutor(Timeline(), refuse="ingest-1-2")
    with pytest.raises(SubmissionError) as error:
        submit_plan(plan, jobs_for(plan, executor), executor, Storage(None), {}, region="us-east-1")
    assert str(error.value) == (
        "submission of run ingest-r1 failed after 2 of 4 jobs (the stub refused ingest-1-2); terminated the 2 job(s) "
        "already submitted and deleted 4 uploaded file(s); job tiledbvcf-ingest-b1-j2, whose submission was under "
        "way, was looked for and not found; nothing is left behind"
    )
    assert executor.terminated == ["id-create", "id-ingest-1-1"]
    assert files_under(tmp_path / "meta") == []


def test_ctrl_c_mid_way_rolls_back_too(tmp_path):
    class Interrupted(StubExecutor):
        def submit(self, job, ids, run_id):
            if job.key == "ingest-1-3":
                raise KeyboardInterrupt
            return super().submit(job, ids, run_id)

    plan = local_ingest_plan(tmp_path)
    executor = Interrupted(Timeline())
    with pytest.raises(SubmissionError, match=r"failed after 3 of 4 jobs \(interrupted\); terminated the 3 job"):
        submit_plan(plan, jobs_for(plan, executor), executor, Storage(None), {}, region="us-east-1")
    assert executor.terminated == ["id-create", "id-ingest-1-1", "id-ingest-1-2"]
    assert files_under(tmp_path / "meta") == []


def test_keep_partial_keeps_what_was_submitted_and_says_how_to_finish(tmp_path):
    plan = local_ingest_plan(tmp_path)
    executor = StubExecutor(Timeline(), refuse="ingest-1-2")
    with pytest.raises(SubmissionError) as error:
        submit_plan(plan, jobs_for(plan, executor), executor, Storage(None), {}, region="us-east-1", keep_partial=True)
    run = tmp_path / "meta/tiledbvcf-batch/runs/ingest-r1"
    assert str(error.value) == (
        "submission of run ingest-r1 failed after 2 of 4 jobs (the stub refused ingest-1-2); kept 2 submitted job(s) "
        f"and 4 file(s) under {run}/; finish the run with the same command plus --resume ingest-r1, or stop it with: "
        f"python batch-runs.py cancel {run}/run.json"
    )
    assert executor.terminated == []
    kept = json.loads((run / "run.json").read_text())  # (a stub's record: no registered executor reads it back)
    assert [job["job_id"] for job in kept["jobs"]] == ["id-create", "id-ingest-1-1", None, None]
    assert kept["submitting"] is False  # the jobs without an id are the resume's to submit, not in flight
