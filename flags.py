"""The scripts' options as click sees them, and click's values turned once into typed values.

Every option is declared once, as a field with a ``Flag`` (``tiledbvcf_batch/options.py``): the
domain's in ``IngestOptions``/``ExportOptions``, each executor's by its registry entry (``Kind.options``:
the Batch executor's queue, definition and array jobs, the local one's parallelism and tiledbvcf), the
command line's own here (``Where`` the jobs run, ``Aws``, the ``Tail``: what to do with the plan, and
``Runs``: batch-runs.py's). The click options are made from those declarations, and the values click
gives become a ``Request`` of those dataclasses, with every problem of every option listed at once (exit 2).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import click

from tiledbvcf_batch import executors
from tiledbvcf_batch.aws import parse_region
from tiledbvcf_batch.commands import batch_size_problems
from tiledbvcf_batch.discovery import filters_without_prefix, samples_source
from tiledbvcf_batch.executors.base import Asked
from tiledbvcf_batch.inputs import Problems, Sample, check_price, parse_report_file, read_samples_file
from tiledbvcf_batch.options import (
    ExportOptions,
    ExportRefusals,
    Flag,
    IngestOptions,
    flag,
    flags_of,
    option_name,
    options_from,
)
from tiledbvcf_batch.report import DEFAULT_INSTANCE_PRICE, DEFAULT_LOG_LINES
from tiledbvcf_batch.storage import Location

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
Opts = TypeVar("Opts", IngestOptions, ExportOptions)
TailT = TypeVar("TailT", bound="Tail")


@dataclass(frozen=True)
class Where:
    """Where the jobs run: the executor. Its own options are its Kind's (``executors.options_of``)."""

    executor: str = flag(
        executors.DEFAULT,
        choices=executors.names,
        help="Where the jobs run: AWS Batch, or this machine (the same job commands, with the real tiledbvcf; "
        "implies --wait). Locally, every location may also be a local path.",
    )

    @property
    def local(self) -> bool:
        """Paths on this machine are accepted where S3 URIs are (the executor's registry entry says so)."""
        return executors.takes_local_paths(self.executor)

    def missing(self, given: Any) -> list[str]:
        """The options this executor needs that were not ``given`` (its options), as click words a missing option."""
        fields = flags_of(type(given)) if given is not None else []
        return [
            f"Missing option '{spec.option(f.name)}'. (see --help)"
            for f, spec in fields
            if spec.required_for == self.executor and not getattr(given, f.name)
        ]


@dataclass(frozen=True)
class Aws:
    """How AWS is reached, as the AWS CLI would, and how the run's files are encrypted."""

    region: str | None = flag(
        None,
        metavar="NAME",
        check=parse_region,
        help="AWS region name of Batch environment  [default: AWS_REGION, else your AWS configuration's, else "
        "us-east-1]",
    )
    profile: str | None = flag(
        None, metavar="NAME", help="AWS profile of your AWS configuration (default: AWS_PROFILE, else the default)."
    )
    kms_key_id: str | None = flag(
        None, metavar="KEY", help="Encrypt manifests and run records with this KMS key (default: AES256)."
    )


@dataclass(frozen=True)
class Tail:
    """What to do with the plan (print it, submit it, wait for it) and what to say on the way."""

    instance_price: float = flag(
        DEFAULT_INSTANCE_PRICE,
        metavar="USD",
        check=check_price,
        help="Hourly instance price for the --wait cost estimate (on-demand m5.4xlarge, us-east-1).",
    )
    keep_partial: bool = flag(
        False, help="If submission fails part-way, keep the jobs and files already submitted (default: remove them)."
    )
    as_json: bool = flag(
        False,
        names=("--json",),
        help="Exactly one JSON document on stdout: the report with --wait, else the submission (run id, record, "
        "job ids per stage); the plan with --dry-run. Everything else goes to stderr.",
    )
    log_lines: int = flag(DEFAULT_LOG_LINES, metavar="N", help="Log lines shown for each failed job.")
    quiet: bool = flag(
        False, names=("--quiet", "-q"), help="Only errors on stderr (stdout keeps its lines, or --json)."
    )
    verbose: bool = flag(False, names=("--verbose", "-v"), help="Also each job's command on stderr, before submission.")
    report: str | None = flag(
        None,
        metavar="FILE.html",
        parse=parse_report_file,
        help="With --wait: also write the run's report as one self-contained HTML page there (a timeline of every "
        "job attempt, samples and bytes per job, cost per stage, failures with their logs, the estimate against "
        "what happened).",
    )
    # Each script declares --wait and --dry-run in its own Tail: their help says what that script does.
    wait: bool = False
    dry_run: bool = False

    def conflicts(self, always_waits: bool = False) -> list[str]:
        """What cannot be asked together; ``always_waits``: the executor watches every run to its end."""
        found = ["--quiet and --verbose say the opposite: give one of them"] if self.quiet and self.verbose else []
        if self.report and self.dry_run:
            found.append("--report writes the report of a run watched to its end: drop it with --dry-run")
        elif self.report and not (self.wait or always_waits):
            found.append(
                "--report needs --wait (the report is written once every job has ended); or, after the run, "
                "python batch-runs.py report RUN --html FILE.html"
            )
        return found


@dataclass(frozen=True)
class Runs:
    """batch-runs.py's own options: each command takes those it needs (``runs_option``), worded for what it does."""

    metadata_s3: str | None = flag(None, metavar="NAME", help="Bucket or s3://bucket/prefix where runs are recorded.")
    region: str | None = flag(None, metavar="NAME", help="AWS region.")
    instance_price: float | None = flag(
        None,
        metavar="USD",
        check=check_price,
        help=f"Hourly instance price for the cost estimate (default: the run's, else {DEFAULT_INSTANCE_PRICE}).",
    )
    last: int = flag(20, metavar="N", low=1, help="Show the N most recent runs.")
    trace: str | None = flag(
        None,
        metavar="FILE.tsv",
        help="Also write the run's trace there: one row per job attempt (job, stage, samples, submitted, started, "
        "stopped, exit code, status reason, instance), tab-separated with a header row, times ISO 8601 UTC.",
    )
    html: str | None = flag(
        None,
        metavar="FILE.html",
        parse=parse_report_file,
        help="Also write the run's report as one self-contained HTML page there: a timeline of every job attempt "
        "by stage, retries and host losses marked, samples and bytes per job, cost per stage, failures with "
        "their log lines, the estimate against what happened (the page needs no network).",
    )
    all_jobs: bool = flag(
        False, names=("--all",), help="Also the jobs that succeeded: every attempt, its log stream and last lines."
    )
    as_json: bool = flag(
        False, names=("--json",), help="Exactly one JSON document on stdout; everything else on stderr."
    )


@dataclass(frozen=True)
class Request(Generic[Opts, TailT]):
    """A command line, typed: the domain's options, where the jobs run, AWS, and what to do with the plan."""

    opts: Opts
    where: Where
    executor: Any  # the chosen executor's own options (an instance of its Kind's ``options``), None if none
    aws: Aws
    tail: TailT

    def asked(self) -> Asked:
        """What the run asks of its executor, beside the executor's own options."""
        register = self.opts.register if isinstance(self.opts, IngestOptions) else None  # None: export has none
        return Asked(self.opts.vcpus, register)


def request_from(
    given: Mapping[str, Any], options: type[Opts], tail: type[TailT], problems: Problems
) -> Request[Opts, TailT]:
    """click's values (``given``, by parameter name) as a Request; the problems collected, not raised."""
    where = options_from(Where, given, problems)
    kind_options = executors.options_of(where.executor)
    executor = options_from(kind_options, given, problems) if kind_options is not None else None
    problems.found += where.missing(executor)
    request = Request(
        options_from(options, given, problems, local=where.local),
        where,
        executor,
        options_from(Aws, given, problems),
        options_from(tail, given, problems),
    )
    problems.found += request.tail.conflicts(executors.always_waits(where.executor))
    return request


def ingest_request(
    given: Mapping[str, Any], tail: type[TailT]
) -> tuple[Request[IngestOptions, TailT], list[Sample] | Location]:
    """batch-ingest.py's command line and the samples of its samples file, or the prefix or directory where they are
    to be found (``discovery``); every problem at once (InputError)."""
    problems = Problems()
    request = request_from(given, IngestOptions, tail, problems)
    opts = request.opts
    refused = len(problems.found)
    source = problems.check(samples_source, opts.samples, request.where.local) if opts.samples else None
    samples = None
    if source is None and opts.samples and len(problems.found) == refused:  # a samples file
        samples = problems.check(lambda: read_samples_file(opts.samples, local=request.where.local))
        problems.found += filters_without_prefix(opts.include, opts.exclude)
    problems.found += opts.conflicts() + batch_size_problems(opts)
    problems.raise_any()
    return request, source if source is not None else samples or []


def export_request(given: Mapping[str, Any], tail: type[TailT]) -> Request[ExportOptions, TailT]:
    """batch-export.py's command line; every problem at once (InputError)."""
    problems = Problems()
    options_from(ExportRefusals, given, problems)
    request = request_from(given, ExportOptions, tail, problems)
    problems.found += request.opts.conflicts()
    problems.raise_any()
    return dataclasses.replace(request, opts=request.opts.completed())


# -- The click options, made from the declarations --------------------------------------------------------


def click_options(order: Sequence[str], *classes: type) -> Decorator:
    """The options of ``classes`` and of every registered executor, listed in --help in the ``order`` of their field
    names; an executor's options the order does not name follow --executor."""
    classes = (*classes, *executors.option_classes())
    fields = [(cls, f, spec) for cls in classes for f, spec in flags_of(cls)]
    declared = {f.name: (cls, f, spec) for cls, f, spec in fields}
    executors_own = [f.name for cls in executors.option_classes() for f, _ in flags_of(cls) if f.name not in order]
    at = list(order).index("executor") + 1 if "executor" in order else len(order)
    order = [*order[:at], *executors_own, *order[at:]]
    if sorted(order) != sorted(declared) or len(fields) != len(declared):  # none forgotten, none declared twice
        raise ValueError(f"the options of {[cls.__name__ for cls in classes]} are not those of the order {order}")
    made = [click_option(*declared[name]) for name in order]

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(made):
            command = decorator(command)
        return command

    return apply


def click_option_of(cls: type, name: str) -> Decorator:
    """One option of ``cls``, for a command that takes it alone (batch-runs.py's --profile, say)."""
    f, spec = field_of(cls, name)
    return click_option(cls, f, spec)


def field_of(cls: type, name: str) -> tuple[dataclasses.Field[Any], Flag]:
    return next((f, spec) for f, spec in flags_of(cls) if f.name == name)


def runs_option(name: str, *, help_text: str | None = None, required: bool = False) -> Decorator:
    """One of batch-runs.py's options (``Runs``), with the command's own ``help_text`` if given; its value is checked
    as declared (range, check) when click reads it: an InputError then, as any command's (exit 2)."""
    f, spec = field_of(Runs, name)
    spec = dataclasses.replace(spec, help=help_text or spec.help, required=required)
    option = spec.option(f.name)
    return click_option(Runs, f, spec, callback=lambda ctx, param, value: spec.value_of(value, option, False))


def click_option(cls: type, f: dataclasses.Field[Any], spec: Flag, **more: Any) -> Decorator:
    names = list(spec.names or (option_name(f.name),))
    if spec.switch:
        names[0] = f"{names[0]}/{spec.switch}"
    default = click_default(f, spec)
    kind = value_type(typing.get_type_hints(cls)[f.name])
    if spec.choices:
        choices = spec.choices
        typed: dict[str, Any] = {"type": click.Choice(choices) if isinstance(choices, tuple) else LazyChoice(choices)}
    elif spec.multiple:
        typed = {"multiple": True}
    elif kind is bool:  # an on/off switch is a flag by its two spellings alone
        typed = {} if spec.switch else {"is_flag": True}
    else:
        typed = {"type": kind} if kind is not str else {}
    # A default only where there is one: click takes an explicit None as given (a required option would pass),
    # except for an on/off switch, whose None says "neither" (click would make it False).
    if spec.switch or (default is not None and default is not False):
        typed |= {"default": default, "show_default": default is not None}
    return click.option(
        *names,
        f.name,
        metavar=spec.metavar,
        required=spec.required,
        help=help_of(spec),
        **typed,
        **more,
    )


def help_of(spec: Flag) -> str:
    """The help text; a default the executor picks is said by each executor, a required_for option shown
    [required] as click shows a required option."""
    if spec.executor_default:
        return f"{spec.help} Default: the executor's ({executors.scratch_defaults()})."
    return spec.help + ("  [required]" if spec.required_for else "")


class LazyChoice(click.Choice):
    """A Choice whose values are read when the command runs: a test or a plug-in may register an executor."""

    def __init__(self, source: Callable[[], tuple[str, ...]]) -> None:
        self.source = source
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]  # click sets it once; this one reads it late
        return tuple(self.source())


def click_default(f: dataclasses.Field[Any], spec: Flag) -> Any:
    """What click gives when the option is not: the field's default, or None where a text or the executor decides."""
    if spec.executor_default or not isinstance(f.default, bool | int | float | str):
        return None
    return f.default


def value_type(hint: Any) -> type:
    """The type click converts to: bool, int or float (optional or not); anything else is given as text."""
    kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)] or [hint]
    return kinds[0] if len(kinds) == 1 and kinds[0] in (bool, int, float) else str


# The options batch-runs.py shares with the submitting scripts.
profile_option = click_option_of(Aws, "profile")
log_lines_option = click_option_of(Tail, "log_lines")
tiledb_config_option = click_option_of(IngestOptions, "tiledb_config")
