"""The command-line layer that batch-ingest.py, batch-export.py and batch-runs.py share.

One-line errors (exit 2 for bad input, 1 for a failed submission), the options the scripts
share, the documented ``Submitted ...`` lines on stdout, and the tail every script runs:
dry-run, or submit then (with --wait) watch and report. The domain lives in the
``tiledbvcf_batch`` package, which knows nothing of click.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from click.core import ParameterSource

from tiledbvcf_batch import __version__, executors, report, submit, watch
from tiledbvcf_batch.aws import AwsSetupError, Clients, aws_message, make_clients, setup_message
from tiledbvcf_batch.dataset import DatasetReader, reader_for
from tiledbvcf_batch.executors.base import Executor
from tiledbvcf_batch.executors.jobs import Job, describe_plan, plan_document
from tiledbvcf_batch.inputs import DEFAULT_SCRATCH_PATH, ExportOptions, IngestOptions, InputError
from tiledbvcf_batch.plan import BARRIER, CONSOLIDATE, DELETE, Plan, Stage
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
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
T = TypeVar("T", IngestOptions, ExportOptions)


class ShownError(click.ClickException):
    """A domain error, rendered as one ``Error: ...`` line per problem on stderr."""

    def __init__(self, lines: list[str], exit_code: int):
        super().__init__("; ".join(lines))
        self.lines = lines
        self.exit_code = exit_code

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


def options(*decorators: Decorator) -> Decorator:
    """Several click options as one decorator, listed in --help in the order given."""

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


class BatchOption(click.Option):
    """Shown as [required], as the spec documents it, but only AWS Batch needs it (checked in inputs)."""

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        self.required = False
        try:
            return super().process_value(ctx, value)
        finally:
            self.required = True


def version_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.version_option(__version__, message="%(prog)s %(version)s (tiledbvcf-batch)")(command)


# Option defaults may come from the environment: TILEDBVCF_BATCH_JOB_QUEUE=... stands for --job-queue.
ENVVAR_PREFIX = "TILEDBVCF_BATCH"


def run_script(command: click.Command) -> None:
    """A script's entry point: its command, with option defaults from TILEDBVCF_BATCH_* variables."""
    command(auto_envvar_prefix=ENVVAR_PREFIX)


# Options the scripts share, spelled once; their help texts are the spec's.
job_queue_option = click.option(
    "--job-queue", cls=BatchOption, required=True, metavar="NAME", help="Name of job queue to use for jobs."
)
job_definition_option = click.option(
    "--job-definition", cls=BatchOption, required=True, metavar="NAME", help="Name of job definition to use for jobs."
)


class RegisteredExecutor(click.Choice):
    """--executor's values: the executors registered when the command runs (``tiledbvcf_batch.executors``)."""

    def __init__(self) -> None:
        self.case_sensitive = True

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        return executors.names()


executor_options = options(
    click.option(
        "--executor",
        type=RegisteredExecutor(),
        default=executors.DEFAULT,
        show_default=True,
        help="Where the jobs run: AWS Batch, or this machine (the same job commands, with the real tiledbvcf; "
        "implies --wait). Locally, every location may also be a local path.",
    ),
    click.option(
        "--max-parallel",
        type=int,
        metavar="N",
        help="With --executor local: jobs at a time (default: the cores divided by the jobs' --vcpus, at least 1).",
    ),
    click.option(
        "--array-jobs/--no-array-jobs",
        default=None,
        help="On AWS Batch: one array job per stage (its children find their samples by index), or one job per "
        "task. Default: array jobs when the job definition sets TILEDBVCF_BATCH_ENTRYPOINT (this project's image "
        "and template do), else one job per task.",
    ),
    click.option(
        "--tiledbvcf",
        metavar="PATH",
        help="With --executor local: the tiledbvcf to run (default: $TILEDBVCF, else tiledbvcf on PATH).",
    ),
)
retries_option = click.option(
    "--retries",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Max number (1-10) of retries for failed jobs. With 1, a job is retried only when its host "
    "went away (a Spot reclaim), up to 3 attempts; with N > 1, any failure, up to N attempts in all.",
)
region_option = click.option(
    "--region",
    metavar="NAME",
    help="AWS region name of Batch environment  [default: AWS_REGION, else your AWS configuration's, else us-east-1]",
)
profile_option = click.option(
    "--profile", metavar="NAME", help="AWS profile of your AWS configuration (default: AWS_PROFILE, else the default)."
)
tiledb_config_option = click.option(
    "--tiledb-config", metavar="K=V,...", help="TileDB config parameters passed to tiledbvcf."
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the report as one JSON document on stdout (the text goes to stderr)."
)
log_lines_option = click.option(
    "--log-lines",
    type=int,
    default=report.DEFAULT_LOG_LINES,
    show_default=True,
    metavar="N",
    help="Log lines shown for each failed job.",
)
instance_price_option = click.option(
    "--instance-price",
    type=float,
    default=report.DEFAULT_INSTANCE_PRICE,
    show_default=True,
    metavar="USD",
    help="Hourly instance price for the --wait cost estimate (on-demand m5.4xlarge, us-east-1).",
)
submit_json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Exactly one JSON document on stdout: the report with --wait, else the submission (run id, record, "
    "job ids per stage); the plan with --dry-run. Everything else goes to stderr.",
)
keep_partial_option = click.option(
    "--keep-partial",
    is_flag=True,
    help="If submission fails part-way, keep the jobs and files already submitted (default: remove them).",
)
kms_key_option = click.option(
    "--kms-key-id", metavar="KEY", help="Encrypt manifests and run records with this KMS key (default: AES256)."
)


def resources_options(what: str, vcpus: int, memory: int) -> Decorator:
    return options(
        click.option("--vcpus", type=int, default=vcpus, show_default=True, metavar="N", help=f"vCPUs of each {what}."),
        click.option(
            "--memory", type=int, default=memory, show_default=True, metavar="MIB", help=f"Memory (MiB) of each {what}."
        ),
    )


def scratch_path_option(help_text: str) -> Decorator:
    more = f" Default: {DEFAULT_SCRATCH_PATH}; with --executor local, a temporary directory of the run."
    return click.option("--scratch-path", metavar="PATH", help=help_text + more)


verbosity_options = options(
    click.option("--quiet", "-q", is_flag=True, help="Only errors on stderr (stdout keeps its lines, or --json)."),
    click.option("--verbose", "-v", is_flag=True, help="Also each job's command on stderr, before submission."),
)
# The tail every submitting script shares: after --json and --log-lines, before --dry-run.
run_tail_options = options(
    instance_price_option, keep_partial_option, kms_key_option, submit_json_option, log_lines_option, verbosity_options
)


def submitted_line(stage: Stage, jobs: list[Job], ids: list[str]) -> str:
    """The line the documented scripts print once a stage is submitted (stdout, parsed by scripts)."""
    if stage.kind == "create":
        return f"Submitted array creation job {ids[0]}"
    if stage.kind == "register":
        return f"Submitted sample registration job {ids[0]} using metadata {jobs[0].manifest.uri}"
    if stage.kind == "ingest":
        return f"Submitted ingestion job(s) {' '.join(ids)}"
    if stage.kind == "export":
        return f"Submitted export job(s) {' '.join(ids)}"
    if stage.kind == DELETE:
        return f"Submitted sample deletion job {ids[0]} (--replace)"
    if stage.kind == CONSOLIDATE:
        return f"Submitted consolidation job(s) after ingestion batch {stage.batch}: {' '.join(ids)}"
    return f"Submitted {len(ids)} barrier job(s) after ingestion batch {stage.batch}"


# Stages of ours, not of the documented system: their Submitted lines stay off stdout.
UNDOCUMENTED_STAGES = (BARRIER, CONSOLIDATE, DELETE)


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
    def for_flags(cls, flags: Mapping[str, Any]) -> Session:
        """The session the flags ask for; its executor is closed (its scratch removed) when the command ends."""
        clients = make_clients(flags.get("region"), flags.get("profile"))
        storage = Storage(clients.s3, encryption_args(flags.get("kms_key_id")))
        executor = executors.for_request(flags.get("executor") or executors.DEFAULT, flags, clients)
        context = click.get_current_context()
        context.call_on_close(executor.close)
        priced = context.get_parameter_source("instance_price") != ParameterSource.DEFAULT
        price = flags["instance_price"] if priced or executor.bills_instances else 0.0
        return cls(clients, storage, executor, price, flags.get("profile"))

    def executor_for(self, record: RunRecord) -> Executor:
        """The executor that ran a recorded run."""
        return executors.for_record(record.executor, self.clients)

    def complete(self, opts: T) -> T:
        """The options with the executor's scratch, where --scratch-path was not given."""
        return opts if opts.scratch_path is not None else replace(opts, scratch_path=self.executor.default_scratch())


def execute(prepared: Prepared, session: Session, flags: Mapping[str, Any]) -> None:
    """Notes, then the plan (--dry-run) or the submission, then (--wait) the watch and the report.

    With --json, stdout carries exactly one JSON document, whatever happens; everything else,
    the documented Submitted lines included, goes to stderr.
    """
    plan = prepared.plan
    as_json = flags["as_json"]
    say = stderr_for(flags)
    # Every job is checked before anything is said or written: a refused job is bad input.
    jobs = submit.jobs_for(plan, session.executor) if plan is not None else []
    for note in prepared.notes:
        say(note)
    if plan is None:
        if as_json:
            click.echo(json.dumps({"run_id": None, "submitted": {}, "notes": prepared.notes}, indent=1))
        if prepared.blocked:
            sys.exit(EXIT_ONLY_FAILED_LEFT)
        return
    if flags["dry_run"]:
        if as_json:
            click.echo(json.dumps(plan_document(plan, jobs, session.executor.where()), indent=1))
        else:
            for line in describe_plan(plan, jobs, session.executor.where()):
                click.echo(line)
        return
    if flags.get("verbose"):
        for line in describe_plan(plan, jobs, session.executor.where()):
            say(line)
    hints = watch.Hints(flags.get("profile"), invocation())
    with session.executor.handling_signals() as received:  # a blocking executor's jobs stop with this process
        record, submitted = submit_run(plan, prepared, jobs, session, flags, say)
        if flags["wait"] or session.executor.blocks:  # nothing to detach from
            extra = {"submitted": submitted}
            quiet = flags.get("quiet", False)
            code = wait_and_report(
                record, session, session.instance_price, flags["log_lines"], as_json, extra, quiet, hints
            )
            sys.exit(128 + received[0] if received else code)
    for line in watch.what_next(record, hints):
        say(line)
    if as_json:
        document = {"run_id": record.run_id, "kind": record.kind, "record": record.record, "submitted": submitted}
        click.echo(json.dumps(document, indent=1))


def submit_run(
    plan: Plan,
    prepared: Prepared,
    jobs: list[Job],
    session: Session,
    flags: Mapping[str, Any],
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
        keep_partial=flags["keep_partial"],
        on_stage=stage_printer(submitted, flags["as_json"], say),
        sample_names=prepared.sample_names,
        ticker=submit.Ticker(say),
        claim=prepared.claim,
    )
    say(f"Run {record.run_id} recorded at {record.record}")
    return record, submitted


def invocation() -> tuple[str, ...]:
    """This script's command line as given, to print again (e.g. with --resume after a Ctrl-C)."""
    return ("python", sys.argv[0], *sys.argv[1:])


def stage_printer(submitted: dict[str, list[str]], as_json: bool, say: Callable[[str], None]) -> submit.OnStage:
    """What to do once a stage is submitted: keep its ids, and print its Submitted line."""

    def on_stage(stage: Stage, stage_jobs: list[Job], ids: list[str]) -> None:
        submitted[str(stage)] = ids
        line = submitted_line(stage, stage_jobs, ids)
        if stage.kind in UNDOCUMENTED_STAGES:
            say(line)  # ours, not the documented system's: stderr, and nothing with --quiet
        else:
            click.echo(line, err=as_json)  # the documented lines: stdout, unless --json takes it

    return on_stage


def wait_and_report(
    record: RunRecord,
    session: Session,
    instance_price: float,
    log_lines: int,
    as_json: bool,
    extra: dict[str, Any] | None = None,
    quiet: bool = False,
    hints: watch.Hints | None = None,
) -> int:
    """Watch a run to its end and print the report; the exit status (0, 1, or 130 on Ctrl-C)."""
    interval, max_interval = session.executor.poll_interval
    stream = io.StringIO() if quiet else sys.stderr  # --quiet: no progress
    latest = watch.watch_run(
        record, session.executor, stream=stream, interval=interval, max_interval=max_interval, hints=hints
    )
    if latest is None:
        if as_json:  # one document, whatever happens
            click.echo(json.dumps({"run_id": record.run_id, "record": record.record, "interrupted": True,
                                   **(extra or {})}, indent=1))  # fmt: skip
        return watch.EXIT_INTERRUPTED
    finished = report.finish_report(
        record, latest, session.storage, session.executor, instance_price=instance_price, log_lines=log_lines
    )
    finished.document.update(extra or {})
    print_finished(finished, as_json, quiet)
    return 0 if finished.report.ok else 1


def print_finished(finished: report.Finished, as_json: bool, quiet: bool = False) -> None:
    """The report on stdout; with --json the document takes stdout and the text goes to stderr."""
    for line in finished.lines:
        if not (as_json and quiet):
            click.echo(line, err=as_json)
    if as_json:
        click.echo(json.dumps(finished.document, indent=1))


def stderr_for(flags: Mapping[str, Any]) -> Callable[[str], None]:
    """Where notes and progress go: stderr, or nowhere with --quiet (errors still reach stderr)."""
    if flags.get("quiet") and flags.get("verbose"):
        raise InputError("--quiet and --verbose say the opposite: give one of them")
    if flags.get("quiet"):
        return lambda line: None
    return lambda line: click.echo(line, err=True)
