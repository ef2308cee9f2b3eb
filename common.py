"""The command-line layer that batch-ingest.py, batch-export.py and batch-runs.py share.

One-line errors (exit 2 for bad input, 1 for a failed submission), the documented
``Submitted ...`` lines on stdout, and the tail every script runs: dry-run, or submit then
(with --wait) watch and report. The options and their typed values are ``flags.py``'s; the
domain lives in the ``tiledbvcf_batch`` package, which knows nothing of click.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from click.core import ParameterSource

from flags import Request, Tail
from hints import Hints, interrupted_message, retry_line, what_next
from tiledbvcf_batch import __version__, estimate, executors, htmlreport, oom, report, submit, watch
from tiledbvcf_batch.aws import AwsSetupError, Clients, aws_message, make_clients, setup_message
from tiledbvcf_batch.dataset import DatasetReader, reader_for
from tiledbvcf_batch.executors.base import Executor
from tiledbvcf_batch.executors.jobs import Job, describe_plan, plan_document
from tiledbvcf_batch.inputs import InputError
from tiledbvcf_batch.options import DEFAULT_MAX_MEMORY, ExportOptions, IngestOptions
from tiledbvcf_batch.plan import CONSOLIDATE, DELETE, Plan, Stage
from tiledbvcf_batch.prepare import Prepared
from tiledbvcf_batch.record import DamagedRecord, RunRecord
from tiledbvcf_batch.storage import Storage, encryption_args

MAX_LISTED_PROBLEMS = 20
EXIT_AWS = 4  # AWS could not be used: credentials, profile, region, endpoint, permissions
EXIT_ONLY_FAILED_LEFT = 5  # nothing submitted, and samples were skipped because earlier jobs failed
RUNS_EPILOG = (
    "Every run is recorded (the path is printed on stderr). To show its status again, wait "
    "on it from another terminal, print the logs of its failed jobs or cancel it, see: "
    "python batch-runs.py --help"
)
T = TypeVar("T", IngestOptions, ExportOptions)


class ShownError(click.ClickException):
    """A domain error, rendered as one ``Error: ...`` line per problem on stderr."""

    def __init__(self, lines: list[str], exit_code: int):
        super().__init__("; ".join(lines))
        self.lines = lines
        self.exit_code = exit_code  # type: ignore[misc]  # click reads it per instance; each error has its own

    def show(self, file: Any = None) -> None:
        shown = self.lines[:MAX_LISTED_PROBLEMS]
        for line in shown:
            click.echo(f"Error: {line}", err=True)
        if len(self.lines) > len(shown):
            click.echo(f"Error: ... and {len(self.lines) - len(shown)} more problems", err=True)


class OneLineErrors:
    """Usage errors as one line that names the problem and the fix (exit 2); domain errors rendered."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc]
        except click.UsageError as error:
            raise ShownError([f"{error.format_message()} (see --help)"], 2) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except InputError as error:
            raise ShownError(error.problems, 2) from None
        except submit.SubmissionError as error:
            raise ShownError([str(error)], 1) from None
        except AwsSetupError as error:
            raise ShownError([str(error)], EXIT_AWS) from None
        except BotoCoreError as error:
            raise ShownError([setup_message(error)], EXIT_AWS) from None
        except ClientError as error:
            raise ShownError([f"AWS refused a request ({aws_message(error)})"], EXIT_AWS) from None
        except DamagedRecord as error:
            raise ShownError([str(error)], 2) from None


class OneLineCommand(OneLineErrors, click.Command):
    pass


class OneLineGroup(OneLineErrors, click.Group):
    command_class = OneLineCommand


def version_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.version_option(__version__, message="%(prog)s %(version)s (tiledbvcf-batch)")(command)


# Option defaults may come from the environment: TILEDBVCF_BATCH_JOB_QUEUE=... stands for --job-queue.
ENVVAR_PREFIX = "TILEDBVCF_BATCH"


def run_script(command: click.Command) -> None:
    """A script's entry point: its command, with option defaults from TILEDBVCF_BATCH_* variables."""
    command(auto_envvar_prefix=ENVVAR_PREFIX)


def submitted_line(stage: Stage, jobs: list[Job], ids: list[str], executor: Executor) -> str:
    """The line said once a stage is submitted: the documented stages' on stdout (parsed by scripts)."""
    if stage.kind == "create":
        return f"Submitted array creation job {ids[0]}"
    if stage.kind == "register":
        manifest = jobs[0].manifest  # a registration job always has one
        return f"Submitted sample registration job {ids[0]} using metadata {manifest.uri if manifest else ''}"
    if stage.kind == "ingest":
        return f"Submitted ingestion job(s) {' '.join(ids)}"
    if stage.kind == "export":
        return f"Submitted export job(s) {' '.join(ids)}"
    if stage.kind == DELETE:
        return f"Submitted sample deletion job {ids[0]} (--replace)"
    if stage.kind == CONSOLIDATE:
        return f"Submitted consolidation job(s) after ingestion batch {stage.batch}: {' '.join(ids)}"
    return executor.stage_line(stage, ids)  # a stage of the executor's own


# The documented system's stages. The Submitted lines of the others (ours, the executor's) stay off stdout.
DOCUMENTED_STAGES = ("create", "register", "ingest", "export")


@dataclass
class Session:
    """What a command works with: AWS clients, the run's storage, the executor, and its defaults."""

    clients: Clients
    storage: Storage
    executor: Executor
    instance_price: float = report.DEFAULT_INSTANCE_PRICE
    profile: str | None = None

    def dataset_reader(self, tiledb_config: str | None) -> DatasetReader:
        """Reads a dataset's samples with TileDB-Py, reaching S3 as this session's clients do."""
        return reader_for(self.clients.s3, self.profile, self.clients.region, tiledb_config)

    @classmethod
    def for_request(cls, request: Request[Any, Any]) -> Session:
        """The session the command asks for; its executor is closed (its scratch removed) when the command ends."""
        aws = request.aws
        clients = make_clients(aws.region, aws.profile)
        storage = Storage(clients.s3, encryption_args(aws.kms_key_id))
        executor = executors.for_request(request.where.executor, request.executor, request.asked(), clients)
        context = click.get_current_context()
        context.call_on_close(executor.close)
        priced = context.get_parameter_source("instance_price") != ParameterSource.DEFAULT
        # A machine that bills no instance hours (this one) costs nothing, unless the user prices it.
        price = request.tail.instance_price if priced or executor.bills_instances else 0.0
        return cls(clients, storage, executor, price, aws.profile)

    def executor_for(self, record: RunRecord) -> Executor:
        """The executor that ran a recorded run."""
        return executors.for_record(record.executor, self.clients)

    def complete(self, opts: T) -> T:
        """The options with the executor's scratch, where --scratch-path was not given."""
        return opts if opts.scratch_path is not None else replace(opts, scratch_path=self.executor.default_scratch())


def execute(prepared: Prepared, session: Session, tail: Tail) -> None:
    """Notes, then the plan (--dry-run) or the submission, then (--wait) the watch and the report.

    With --json, stdout carries exactly one JSON document, whatever happens; everything else,
    the documented Submitted lines included, goes to stderr.
    """
    plan = prepared.plan
    as_json = tail.as_json
    say = stderr_for(tail)
    found = {"discovery": prepared.discovery} if prepared.discovery is not None else {}  # --samples PREFIX
    # Every job is checked before anything is said or written: a refused job is bad input.
    jobs = submit.jobs_for(plan, session.executor) if plan is not None else []
    for note in prepared.notes:
        say(note)
    if plan is None:
        if as_json:
            click.echo(json.dumps({"run_id": None, "submitted": {}, "notes": prepared.notes, **found}, indent=1))
        if prepared.blocked:
            sys.exit(EXIT_ONLY_FAILED_LEFT)
        return
    foreseen = plan_estimate(plan, prepared, session.instance_price)
    if tail.dry_run:
        show_plan(plan, jobs, session.executor.where(), foreseen, as_json, found)
        return
    if tail.verbose:
        for line in describe_plan(plan, jobs, session.executor.where()):
            say(line)
    if foreseen:
        say(foreseen.line())
        prepared.options["estimate"] = foreseen.document()  # kept in the record, set beside what happened
    hints = Hints(session.profile, invocation())
    with session.executor.handling_signals() as received:  # a blocking executor's jobs stop with this process
        record, submitted = submit_run(plan, prepared, jobs, session, tail, say)
        if tail.wait or session.executor.blocks:  # nothing to detach from
            extra = {"submitted": submitted, **found}
            try:
                code = wait_and_report(
                    record, session, session.instance_price, tail.log_lines, as_json, extra, tail.quiet, hints, jobs,
                    html=tail.report,
                )  # fmt: skip
            except (ClientError, BotoCoreError) as error:  # the run is submitted: say how to come back to it
                shown = aws_message(error) if isinstance(error, ClientError) else setup_message(error)
                raise ShownError(
                    [
                        f"AWS refused a request while waiting ({shown}); run {record.run_id} was submitted and "
                        f"its jobs go on {session.executor.words.detached}",
                        f"come back to it with: {hints.runs('wait', record)}",
                    ],
                    EXIT_AWS,
                ) from None
            sys.exit(128 + received[0] if received else code)
    for line in what_next(record, hints):
        say(line)
    if as_json:
        document = {"run_id": record.run_id, "kind": record.kind, "record": record.record, "submitted": submitted,
                    **found}  # fmt: skip
        click.echo(json.dumps(document, indent=1))


def submit_run(
    plan: Plan,
    prepared: Prepared,
    jobs: list[Job],
    session: Session,
    tail: Tail,
    say: Callable[[str], None],
) -> tuple[RunRecord, dict[str, list[str]]]:
    """Submit the plan, printing the Submitted lines; the record and the job ids of each stage."""
    submitted: dict[str, list[str]] = {}
    record = submit.submit_plan(
        plan,
        jobs,
        session.executor,
        session.storage,
        prepared.options,
        region=session.clients.region,
        keep_partial=tail.keep_partial,
        on_stage=stage_printer(submitted, session.executor, tail.as_json, say),
        sample_names=prepared.sample_names,
        ticker=submit.Ticker(say),
        claim=prepared.claim,
        sizes=prepared.sizes,
    )
    say(f"Run {record.run_id} recorded at {record.record}")
    return record, submitted


def show_plan(
    plan: Plan,
    jobs: list[Job],
    where: str,
    foreseen: estimate.Estimate | None,
    as_json: bool,
    extra: dict[str, Any] | None = None,
) -> None:
    """--dry-run: the plan and its estimate, as text or as one JSON document (with ``extra``)."""
    if as_json:
        document = plan_document(plan, jobs, where) | (extra or {})
        document["estimate"] = foreseen.document() if foreseen else None
        click.echo(json.dumps(document, indent=1))
        return
    for line in describe_plan(plan, jobs, where):
        click.echo(line)
    if foreseen:
        click.echo(foreseen.line())


def plan_estimate(plan: Plan, prepared: Prepared, price: float) -> estimate.Estimate | None:
    """The run's estimate: its ingestion tasks' bytes (or export tasks' samples), earlier runs' throughput."""
    merge = bool(prepared.options.get("merge"))
    return estimate.plan_estimate(plan, prepared.sizes, prepared.measured, price, merge)


def invocation() -> tuple[str, ...]:
    """This script's command line as given, to print again (e.g. with --resume after a Ctrl-C)."""
    return ("python", sys.argv[0], *sys.argv[1:])


def stage_printer(
    submitted: dict[str, list[str]], executor: Executor, as_json: bool, say: Callable[[str], None]
) -> submit.OnStage:
    """What to do once a stage is submitted: keep its ids, and print its Submitted line."""

    def on_stage(stage: Stage, stage_jobs: list[Job], ids: list[str]) -> None:
        submitted[str(stage)] = ids
        line = submitted_line(stage, stage_jobs, ids, executor)
        if stage.kind in DOCUMENTED_STAGES:
            echo_out(line, err=as_json)  # the documented lines: stdout, unless --json takes it
        else:
            say(line)  # ours, not the documented system's: stderr, and nothing with --quiet

    return on_stage


STDOUT_CLOSED = (
    "stdout was closed by its reader (e.g. | head -1): the lines after it were not written; the run goes on, "
    "its jobs kept (every job id is in its run record: python batch-runs.py status RECORD)"
)


def echo_out(line: str, err: bool = False) -> None:
    """A line on stdout (or stderr). Once its reader has gone (``| head -1``), the line is dropped and stdout
    points at /dev/null, said once on stderr: a closed stdout must not roll back jobs already submitted.
    """
    try:
        click.echo(line, err=err)
    except BrokenPipeError:
        if err:
            return  # nowhere left to say anything
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nothing more to fail, nor the flush at exit
            os.close(devnull)
        with contextlib.suppress(OSError):
            click.echo(STDOUT_CLOSED, err=True)


def wait_and_report(
    record: RunRecord,
    session: Session,
    instance_price: float,
    log_lines: int,
    as_json: bool,
    extra: dict[str, Any] | None = None,
    quiet: bool = False,
    hints: Hints | None = None,
    jobs: Sequence[Job] = (),
    *,
    html: str | None = None,
) -> int:
    """Watch a run to its end and print the report (and write it as a page to ``html``); the exit status (0, 1,
    or 130 on Ctrl-C).

    ``jobs``: the run's submissions, when this process submitted them: a job killed for memory is then
    submitted again with more (``oom``), and the run watched again.
    """
    interval, max_interval = session.executor.poll_interval
    stream = io.StringIO() if quiet else sys.stderr  # --quiet: no progress
    watched = watch.watch_run(record, session.executor, stream=stream, interval=interval, max_interval=max_interval)
    if jobs and not isinstance(watched, watch.Interrupted):
        max_memory = int(record.options.get("max_memory", DEFAULT_MAX_MEMORY))
        again = oom.resubmit_killed(record, watched, jobs, session.executor, session.storage, max_memory)
        for line in again.lines(max_memory):
            print(line, file=stream, flush=True)
        if again.jobs:
            watched = watch.watch_run(record, session.executor, stream=stream, interval=interval,
                                      max_interval=max_interval)  # fmt: skip
    if isinstance(watched, watch.Interrupted):
        message = interrupted_message(record, watched.stopped, hints, session.executor.words.detached)
        print(f"\n{message}", file=stream, flush=True)
        if as_json:  # one document, whatever happens
            click.echo(json.dumps({"run_id": record.run_id, "record": record.record, "interrupted": True,
                                   **(extra or {})}, indent=1))  # fmt: skip
        return watch.EXIT_INTERRUPTED
    finished = report.finish_report(
        record, watched, session.storage, session.executor, instance_price=instance_price, log_lines=log_lines
    )
    finished.document.update(extra or {})
    compare_estimate(record, watched, finished, session.storage)
    if html is not None:
        write_html(finished, session.executor, html, quiet)
    print_finished(finished, as_json, quiet, hints)
    return 0 if finished.report.ok else 1


def write_html(finished: report.Finished, executor: Executor, path: str, quiet: bool = False) -> None:
    """The report as one self-contained HTML page at ``path``; a file that cannot be written is said, not raised:
    the run and its text report stand."""
    page = htmlreport.html_page(finished, executor.words, executor.host_lost)
    try:
        htmlreport.write_page(path, page)
    except OSError as error:
        run = finished.record.record if finished.record is not None and finished.record.record else "RUN"
        click.echo(f"The HTML report could not be written to {path} ({error.strerror or error}); "
                   f"write it again with python batch-runs.py report {run} --html FILE.html", err=True)  # fmt: skip
        return
    if not quiet:
        click.echo(f"HTML report written to {path}", err=True)


def compare_estimate(record: RunRecord, watched: dict[str, Any], finished: report.Finished, storage: Storage) -> None:
    """A run watched to its end: the estimate made before it set beside what happened, and (an ingestion whose
    every job succeeded) its measure kept in its record, for later estimates."""
    htmlreport.set_beside(record, finished)
    if record.kind not in estimate.RATES or not finished.report.ok:
        return
    ids = [job.job_id for job in record.jobs if job.kind == record.kind and job.job_id]
    seconds = estimate.jobs_seconds(ids, watched)
    unit = estimate.RATES[record.kind].unit
    work = record.options.get("sample_bytes" if unit == "bytes" else "samples_count", 0)
    measured = estimate.measurement(work, record.options.get("vcpus", 0), seconds, unit)
    if measured is not None and record.record:
        record.measured = measured
        record.save(storage)


def print_finished(finished: report.Finished, as_json: bool, quiet: bool = False, hints: Hints | None = None) -> None:
    """The report on stdout; with --json the document takes stdout and the text goes to stderr.

    A run whose jobs failed ends with the command that retries them (``retry`` in the document).
    """
    lines = list(finished.lines)
    if finished.report.failed and finished.record is not None:
        lines.append(retry_line(finished.record, hints))
        finished.document["retry"] = (hints or Hints()).retry(finished.record)
    for line in lines:
        if not (as_json and quiet):
            click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(finished.document, indent=1))


def stderr_for(tail: Tail) -> Callable[[str], None]:
    """Where notes and progress go: stderr, or nowhere with --quiet (errors still reach stderr)."""
    if tail.quiet:
        return lambda line: None
    return lambda line: echo_out(line, err=True)  # a closed stderr (2>&1 | head) undoes nothing either
