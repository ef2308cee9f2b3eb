"""Submission through any executor: upload the manifests, record the run, submit in order, roll back.

Every job is checked by the executor before the first upload, so that a refused job cannot
leave half a run behind. Once uploading has started, any failure (an AWS error, a bug,
Ctrl-C) is caught, and the run is rolled back, or with --keep-partial kept and described.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .aws import aws_message
from .executors.base import Executor
from .executors.jobs import Job, with_bytes
from .inputs import InputError
from .plan import Plan, Stage
from .record import RunRecord, record_uri_of
from .registry import WITHDRAWN, Claim, register, withdraw
from .storage import Location, Storage

OnStage = Callable[[Stage, list[Job], list[str]], None]
PROGRESS_EVERY = 10.0  # seconds between two progress lines of a long upload or submission


@dataclass
class Ticker:
    """Says how far a long phase has come, at most once every PROGRESS_EVERY seconds."""

    say: Callable[[str], None] | None
    clock: Callable[[], float] = time.monotonic
    _last: float = 0.0

    def start(self, message: str) -> None:
        self._last = self.clock()
        if self.say is not None:
            self.say(message)

    def tick(self, done: int, total: int, what: str) -> None:
        if self.say is not None and done < total and self.clock() - self._last >= PROGRESS_EVERY:
            self._last = self.clock()
            self.say(f"  {what} {done}/{total}")


class SubmissionError(Exception):
    """Submission failed part-way; the message says what was rolled back and what is left."""


def jobs_for(plan: Plan, executor: Executor) -> list[Job]:
    """The executor's jobs for ``plan``, every one checked: nothing has been written yet."""
    try:
        return executor.submissions(plan)
    except ValueError as error:
        raise InputError(f"the {plan.kind} run cannot be submitted: {error}") from None


def submit_plan(
    plan: Plan,
    jobs: list[Job],
    executor: Executor,
    storage: Storage,
    options: dict[str, Any],
    *,
    region: str,
    keep_partial: bool = False,
    on_stage: OnStage | None = None,
    sample_names: dict[str, str] | None = None,
    ticker: Ticker | None = None,
    claim: Claim | None = None,
    sizes: Mapping[str, int] | None = None,
) -> RunRecord:
    """Register the run beside the dataset, upload manifests, record the run, submit every job in order.

    The registration comes first: a run that another run beat to some of its samples stops there
    (ClaimConflict, bad input: nothing written). On any later failure, unless ``keep_partial``,
    the jobs already submitted are stopped, the uploads deleted and the registration withdrawn;
    SubmissionError says what happened and anything left behind.
    """
    if claim is not None:
        register(storage, claim)
    recorded = with_bytes(executor.recorded(plan, jobs), sizes or {})  # each job's bytes: the trace and the report
    record = RunRecord.new(plan, recorded, options, executor.settings(), region, sample_names)
    ids: dict[str, str] = {}
    uploaded: list[Location] = []
    last_of_stage = {job.stage: job.key for job in jobs}
    ticker = ticker or Ticker(None)
    under_way: list[Job] = []  # the job whose submission has begun and not returned its id
    try:
        upload_run(plan, jobs, record, storage, ticker, uploaded)
        ticker.start(f"Submitting {len(jobs)} jobs {executor.where()}")
        for job in jobs:
            under_way[:] = [job]
            ids[job.key] = executor.submit(job, ids, plan.run_id)
            under_way.clear()
            ticker.tick(len(ids), len(jobs), "jobs submitted:")
            if on_stage is not None and last_of_stage[job.stage] == job.key:
                stage_jobs = [j for j in jobs if j.stage == job.stage]
                on_stage(job.stage, stage_jobs, [ids[j.key] for j in stage_jobs])
        record.set_job_ids(ids)
        record.submitting = False
        record.save(storage)
    except (Exception, KeyboardInterrupt) as error:
        cause = "interrupted" if isinstance(error, KeyboardInterrupt) else aws_message(error)
        failed = f"submission of run {plan.run_id} failed after {len(ids)} of {len(jobs)} jobs ({cause})"
        stray = Stray.after(executor, under_way[0], plan.run_id) if under_way else Stray()
        if stray.job is not None and stray.found and keep_partial:
            ids[stray.job.key] = stray.found[0]  # created after all: the record names it (the others go)
            stray = Stray(stray.job, stray.found[1:], stray.unsure, stray.hint)
        record.set_job_ids(ids)
        outcome = undo_or_keep(failed, plan, record, executor, storage, ids, uploaded, keep_partial, stray)
        if not keep_partial and claim is not None:
            outcome = withdrawal(storage, claim, outcome)
        raise outcome from None
    return record


@dataclass(frozen=True)
class Stray:
    """What a submission cut off (Ctrl-C, an error) left: the jobs it created all the same, found by the executor,
    or that it could not tell (``unsure``, and ``hint`` says how to find such a job)."""

    job: Job | None = None
    found: list[str] = field(default_factory=list)
    unsure: bool = False
    hint: str = ""

    @classmethod
    def after(cls, executor: Executor, job: Job, run_id: str) -> Stray:
        found = executor.created_anyway(job, run_id)
        return cls(job, found or [], found is None, executor.find_by_hand(job, run_id))

    def checked(self) -> str:
        """What was checked, for the message that says nothing is left behind."""
        if self.job is None or self.found:
            return ""
        return f"; job {self.job.name}, whose submission was under way, was looked for and not found"

    def left(self) -> list[tuple[str, str]]:
        """A job that may exist, unknown: never say that nothing is left behind."""
        if self.job is None or not self.unsure:
            return []
        return [(f"job {self.job.name} (its submission was under way: it may have been created)", self.hint)]


def upload_run(
    plan: Plan, jobs: list[Job], record: RunRecord, storage: Storage, ticker: Ticker, uploaded: list[Location]
) -> None:
    """What the jobs read (the run's own files, each task's manifest, or one task file per array job), then the
    run record saying that its jobs are being submitted, then the run's marker beside the dataset; ``uploaded``
    grows with each."""
    manifests = [
        *plan.uploads,
        *(job.manifest for job in jobs if job.manifest is not None and not job.manifest.existing),
    ]
    ticker.start(f"Uploading {len(manifests)} manifests and the run record to {plan.run_prefix}")
    for number, manifest in enumerate(manifests, start=1):
        storage.put(manifest.uri, manifest.body())
        uploaded.append(manifest.uri)
        ticker.tick(number, len(manifests), "manifests uploaded:")
    # The record goes up before any job: whatever happens next, the run can be found, and until its
    # jobs have ids it says they are being submitted (another run must not take them for failed).
    record.submitting = True
    record.save(storage)
    uploaded.append(record_uri_of(plan.run_prefix))
    if plan.index_marker is not None:
        marker = json.dumps({"run_record": record.record}).encode("utf-8")
        storage.put(plan.index_marker, marker, "application/json")
        uploaded.append(plan.index_marker)


def withdrawal(storage: Storage, claim: Claim, outcome: SubmissionError) -> SubmissionError:
    """Withdraw a rolled back run's registration beside the dataset: its samples are free again."""
    try:
        withdraw(storage, claim.registry, claim.run_id)
    except Exception as error:
        return SubmissionError(
            f"{outcome}; its registration beside the dataset could not be withdrawn ({aws_message(error)}): "
            f"its samples count as being submitted for another hour, or create {claim.registry}"
            f"{WITHDRAWN}{claim.run_id}.json by hand"
        )
    return outcome


def undo_or_keep(
    failed: str,
    plan: Plan,
    record: RunRecord,
    executor: Executor,
    storage: Storage,
    ids: dict[str, str],
    uploaded: list[Location],
    keep_partial: bool,
    stray: Stray | None = None,
) -> SubmissionError:
    """After a failed submission: roll back (or, with --keep-partial, keep) and say what is left.

    ``stray``: a job whose submission was cut off, which may have been created all the same: found, it is
    stopped (a second one, from retries, too); not known either way, it is named with the way to find it.
    """
    stray = stray or Stray()
    extra = {f"{stray.job.key}#{number}": job_id for number, job_id in enumerate(stray.found)} if stray.job else {}
    if keep_partial:
        kept = kept_message(plan, record, storage, ids, uploaded, executor)
        left = [(f"job {job_id}", why) for job_id, why in stopped(executor, extra, plan)] + stray.left()
        also = f"; also: {grouped(left)}" if left else ""
        return SubmissionError(f"{failed}; {kept}{also}")
    left = rollback(plan, executor, storage, {**ids, **extra}, uploaded) + stray.left()
    if left:
        return SubmissionError(f"{failed}; tried to undo it but these remain, remove them by hand: {grouped(left)}")
    return SubmissionError(
        f"{failed}; terminated the {len(ids) + len(extra)} job(s) already submitted and deleted "
        f"{len(uploaded)} uploaded file(s){stray.checked()}; nothing is left behind"
    )


def stopped(executor: Executor, extra: dict[str, str], plan: Plan) -> list[tuple[str, str]]:
    """Stop jobs created twice by a cut-off submission (kept with --keep-partial: the record names one)."""
    if not extra:
        return []
    try:
        texts = executor.terminate(list(extra.values()), f"submission of run {plan.run_id} created it twice")
    except Exception as error:
        return [(job_id, aws_message(error)) for job_id in extra.values()]
    return [(what.removeprefix("job "), why) for what, _, why in (text.partition(": ") for text in texts)]


def rollback(
    plan: Plan, executor: Executor, storage: Storage, ids: dict[str, str], uploaded: list[Location]
) -> list[tuple[str, str]]:
    """Stop the jobs this run submitted and delete what it uploaded; what could not be undone, and why.

    Each step is tried whatever failed before it: expired credentials, say, fail every step, and
    every job and file is then named.
    """
    left: list[tuple[str, str]] = []
    try:
        for text in executor.terminate(list(ids.values()), f"submission of run {plan.run_id} failed"):
            what, _, why = text.partition(": ")
            left.append((what, why))
    except Exception as error:
        left = [(f"job {job_id}", aws_message(error)) for job_id in ids.values()]
    # Newest first: the index marker and the record go before the manifests. Were it the other
    # way round, a record left behind would show manifests that are gone, and the ledger would
    # take their samples for ingested.
    for uri in reversed(uploaded):
        try:
            storage.delete(uri)
        except Exception as error:
            left.append((str(uri), aws_message(error)))
    return left


def grouped(left: list[tuple[str, str]]) -> str:
    """What is left, those with the same reason together: one reason, not a thousand times."""
    by_reason: dict[str, list[str]] = {}
    for what, why in left:
        by_reason.setdefault(why, []).append(what)
    return "; ".join(f"{', '.join(whats)} ({why})" if why else ", ".join(whats) for why, whats in by_reason.items())


def kept_message(
    plan: Plan, record: RunRecord, storage: Storage, ids: dict[str, str], uploaded: list[Location], executor: Executor
) -> str:
    """--keep-partial: say exactly what is left and how to finish or remove it."""
    prefix = shlex.quote(str(plan.run_prefix))
    cancel = f"python batch-runs.py cancel {shlex.quote(record.location())}"
    if record_uri_of(plan.run_prefix) not in uploaded:
        # Never write a record now: its missing manifests would read as consumed, i.e. ingested.
        return (
            f"no job was submitted; kept {len(uploaded)} manifest(s) under {plan.run_prefix}: "
            f"remove them with aws s3 rm --recursive {prefix}"
        )
    try:
        record.submitting = False  # the jobs without an id will not run unless the run is resumed
        record.save(storage)  # so that the record names the jobs that were submitted
    except Exception as error:
        return (
            f"kept {len(ids)} submitted job(s) ({' '.join(ids.values()) or 'none'}) and "
            f"{len(uploaded)} uploaded file(s) under {plan.run_prefix}, but the run record could not be "
            f"updated ({aws_message(error)}): terminate the jobs with {executor.words.stop_by_hand} and remove "
            f"the files with aws s3 rm --recursive {prefix}"
        )
    if plan.kind == "export":
        return f"kept {len(ids)} submitted job(s) and the run record {record.record}; cancel them with: {cancel}"
    return (
        f"kept {len(ids)} submitted job(s) and {len(uploaded)} file(s) under {plan.run_prefix}; "
        f"finish the run with the same command plus --resume {plan.run_id}, or stop it with: {cancel}"
    )
