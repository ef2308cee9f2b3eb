#!/usr/bin/env python3
"""Companion of batch-ingest.py and batch-export.py: come back to a run (the logic lives in tiledbvcf_batch/)."""

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError

import common
import flags
from tiledbvcf_batch import dataset, health, htmlreport, inventory, joblogs, progress, report, watch
from tiledbvcf_batch import record as records
from tiledbvcf_batch import trace as traces
from tiledbvcf_batch.aws import AwsSetupError, Clients, aws_message, error_code, make_clients
from tiledbvcf_batch.executors import for_record
from tiledbvcf_batch.executors.base import Executor, describe_fully
from tiledbvcf_batch.exportcheck import check_exports
from tiledbvcf_batch.inputs import InputError, parse_dataset_uri
from tiledbvcf_batch.record import RunRecord
from tiledbvcf_batch.storage import Storage

RUN_HELP = (
    "RUN is the run record's S3 URI, as printed when the run was submitted "
    "(Run ... recorded at s3://.../run.json), or a run id together with --metadata-s3."
)


@click.group(
    cls=common.OneLineGroup,
    context_settings={"auto_envvar_prefix": common.ENVVAR_PREFIX},
    help="Watch, diagnose and cancel runs of batch-ingest.py and batch-export.py; show what a dataset holds."
    f"\n\n{RUN_HELP}",
)
@common.version_option
def main() -> None:
    pass


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """RUN, --metadata-s3 and --region, turned into (session, record) for the command."""

    @click.argument("run")
    @flags.runs_option(
        "metadata_s3", help_text="Where runs are recorded, when RUN is a run id: the bucket or s3://bucket/prefix "
        "given to batch-ingest.py (for export: --metadata-s3, else the --dest-s3 bucket)."
    )  # fmt: skip
    @flags.runs_option("region", help_text="AWS region (default: the run's).")
    @flags.profile_option
    @functools.wraps(command)
    def wrapper(run: str, metadata_s3: str | None, region: str | None, profile: str | None, **kwargs: Any) -> Any:
        uri = records.locate(run, metadata_s3)
        reader = make_clients(region, profile)
        record = records.load_or_fail(Storage(reader.s3), uri, "check RUN and --metadata-s3")
        clients = reader if region or record.region == reader.region else make_clients(record.region, profile)
        session = common.Session(clients, Storage(clients.s3), for_record(record.executor, clients))
        return command(session, record, **kwargs)

    return wrapper


price_option = flags.runs_option("instance_price")
json_option = flags.runs_option(
    "as_json", help_text="Print the report as one JSON document on stdout (the text goes to stderr)."
)


def price_of(record: RunRecord, given: float | None) -> float:
    return given if given is not None else record.options.get("instance_price", report.DEFAULT_INSTANCE_PRICE)


@main.command()
@run_options
@price_option
@json_option
def status(session: common.Session, record: RunRecord, instance_price: float | None, as_json: bool) -> None:
    """Print a run's jobs per status and stage; its report once every job has finished.

    Exit status: 0 all succeeded, 1 some failed, 3 still running.
    """
    latest = watch.describe_now(session.executor, record)
    sys.exit(status_of(session, record, latest, price_of(record, instance_price), as_json))


@main.command("report")
@run_options
@price_option
@json_option
@flags.runs_option("trace")
@flags.runs_option("html")
def report_command(
    session: common.Session,
    record: RunRecord,
    instance_price: float | None,
    as_json: bool,
    trace: str | None,
    html: str | None,
) -> None:
    """Print a run's report (the lines of status); with --trace, also write one row per job attempt to a file;
    with --html, the report as one self-contained HTML page.

    The trace is written whatever the run's state (a running job's attempts so far); the page once every job
    has ended. Exit status: 0 all succeeded, 1 some failed, 3 still running.
    """
    latest = watch.describe_now(session.executor, record)
    if trace is not None:
        exports = check_exports(record, session.storage) if record.kind == "export" else None
        rows = traces.trace_rows(record, latest, report.job_bytes(record, exports))
        with open(trace, "w", encoding="utf-8") as out:
            out.write(traces.trace_text(rows))
        click.echo(f"Trace of {len(rows)} job attempts written to {trace}", err=True)
    sys.exit(status_of(session, record, latest, price_of(record, instance_price), as_json, html))


def status_of(
    session: common.Session,
    record: RunRecord,
    latest: dict[str, Any],
    instance_price: float,
    as_json: bool,
    html: str | None = None,
) -> int:
    """Print the progress, and the report once every job has finished; the exit status (0, 1, or 3 running)."""
    for line in progress.progress_lines(record, latest, time.time()):
        click.echo(line, err=as_json)
    if not progress.is_finished(latest):
        if html is not None:
            click.echo(f"No HTML report written: run {record.run_id} is still running (the page is written once "
                       f"every job has ended: python batch-runs.py wait {record.record}, then report --html)",
                       err=True)  # fmt: skip
        if as_json:
            click.echo(json.dumps({"run_id": record.run_id, "finished": False,
                                   "stages": progress.stage_counts(record, latest)}, indent=1))  # fmt: skip
        return 3
    finished = report.finish_report(
        record, latest, session.storage, session.executor, instance_price=instance_price, log_lines=0
    )
    htmlreport.set_beside(record, finished)
    if html is not None:  # the page shows the failures' log lines, which the text report leaves to logs
        common.write_html(htmlreport.with_logs(finished, session.executor), session.executor, html)
    common.print_finished(finished, as_json)
    return 0 if finished.report.ok else 1


@main.command()
@run_options
@price_option
@json_option
@flags.log_lines_option
@flags.runs_option("html")
def wait(
    session: common.Session,
    record: RunRecord,
    instance_price: float | None,
    as_json: bool,
    log_lines: int,
    html: str | None,
) -> None:
    """Wait for a run, with the progress and report of --wait (and --html: the report as a page).
    Exit status: 0, 1, or 130 on Ctrl-C."""
    price = price_of(record, instance_price)
    sys.exit(common.wait_and_report(record, session, price, log_lines, as_json, html=html))


@main.command()
@run_options
@flags.log_lines_option
@json_option
@flags.runs_option("all_jobs")
def logs(session: common.Session, record: RunRecord, log_lines: int, as_json: bool, all_jobs: bool) -> None:
    """Print why a run's jobs failed: every attempt's reason, exit code, log stream and last log lines.

    With --all, also those of the jobs that succeeded (then --json gives {"failed": [...], "succeeded": [...]}).
    """
    latest = describe_fully(session.executor, record.job_ids())
    dependents = report.followers(record, latest)
    failures = report.diagnose_failures(session.executor, list(latest.values()), log_lines, dependents)
    succeeded = joblogs.succeeded_logs(session.executor, list(latest.values()), log_lines) if all_jobs else []
    if as_json:
        click.echo(json.dumps({"failed": failures, "succeeded": succeeded} if all_jobs else failures, indent=1))
        return
    for line in report.format_failures(failures) or [f"No failed jobs in run {record.run_id}."]:
        click.echo(line)
    if all_jobs:
        for line in joblogs.format_succeeded(succeeded) or [f"No job of run {record.run_id} succeeded."]:
            click.echo(line)


@main.command()
@run_options
def cancel(session: common.Session, record: RunRecord) -> None:
    """Cancel a run's jobs that have not started and terminate those that are running."""
    outcome = watch.cancel_run(record, session.executor)
    names = record.names()
    for ids, text in (
        (outcome.cancelled, "cancelled (had not started)"),
        (outcome.terminated, "terminated (were running)"),
        (outcome.finished, "had already finished"),
        (outcome.unknown, f"unknown to {session.executor.words.name} (too old, or never submitted)"),
    ):
        if ids:
            shown = " ".join(f"{job_id} ({names[job_id]})" for job_id in ids[:50])
            more = f" and {len(ids) - 50} more" if len(ids) > 50 else ""
            click.echo(f"{len(ids)} job(s) {text}: {shown}{more}")


@main.command("list")
@flags.runs_option("metadata_s3", required=True)
@flags.runs_option("region")
@flags.profile_option
@flags.runs_option("last")
@flags.runs_option("as_json", help_text="The runs as one JSON document (a list) on stdout.")
def list_runs(metadata_s3: str, region: str | None, profile: str | None, last: int, as_json: bool) -> None:
    """List the runs recorded under --metadata-s3, newest last: state, jobs, duration, target, record."""
    clients = make_clients(region, profile)
    storage = Storage(clients.s3)
    by_region = {clients.region: clients}

    def clients_for(run_region: str) -> Any:
        if region is None and run_region not in by_region:  # each run in its own region, as status does
            by_region[run_region] = make_clients(run_region, profile)
        return by_region.get(run_region, clients)

    runs = [listed_run(uri, storage, clients_for) for uri in recorded_runs(storage, metadata_s3)[-last:]]
    if as_json:
        click.echo(json.dumps(runs, indent=1))
        return
    for run in runs:
        took = progress.format_duration(run["seconds"]) if run["seconds"] is not None else "-"
        click.echo(f"{run['run_id']}  {run['state']}  {run['jobs']} jobs  {took}  {run['target']}  {run['record']}")


def recorded_runs(storage: Storage, metadata_s3: str) -> list[Any]:
    """The records under --metadata-s3; a bucket that does not exist or cannot be listed is named."""
    location = records.metadata_location(metadata_s3)
    try:
        return records.list_records(storage, location)
    except ClientError as error:
        if error_code(error) == "NoSuchBucket":
            raise InputError(f"--metadata-s3: bucket {location.bucket} does not exist: check the name") from None
        raise AwsSetupError(f"--metadata-s3: cannot list the runs under {location} ({aws_message(error)})") from None


def listed_run(uri: Any, storage: Storage, clients_for: Callable[[str], Any]) -> dict[str, Any]:
    """One run of the list: its state asks the executor that ran it, in the run's region."""
    try:
        record = records.load_record(storage, uri)
        clients = clients_for(record.region)
        executor = for_record(record.executor, clients)
        latest, _ = report.judge_forgotten(record, watch.describe_now(executor, record), storage, executor)
    except records.NewerRecord as newer:  # named, and the others still listed
        return unlisted(uri, f"NEWER VERSION ({newer.reason}: upgrade to read it)")
    except records.DamagedRecord as damaged:
        return unlisted(uri, f"DAMAGED ({damaged.reason})")
    except (ClientError, BotoCoreError, OSError) as error:  # one run that cannot be read stops no other
        return unlisted(uri, f"UNKNOWN ({aws_message(error)})")
    state = progress.run_state(latest)
    if state == "succeeded" and record.kind == "export":  # as status judges it: by the files at the destination
        try:
            exports = check_exports(record, storage)
        except (ClientError, BotoCoreError, OSError) as error:
            return unlisted(uri, f"UNKNOWN ({aws_message(error)})")
        if exports.missing:
            state = f"failed ({len(exports.missing)} of {exports.expected} exported files missing)"
    running = state == "running"
    return {
        "run_id": record.run_id,
        "state": state,
        "jobs": len(record.jobs),
        "seconds": time.time() - record.created_epoch() if running else progress.run_seconds(record, latest),
        "target": record.target,
        "record": str(uri),
    }


def unlisted(uri: Any, state: str) -> dict[str, Any]:
    return {"run_id": str(uri).split("/")[-2], "state": state, "jobs": 0, "seconds": None, "target": "?",
            "record": str(uri)}  # fmt: skip


@main.command("dataset")
@click.argument("dataset_uri", metavar="DATASET_URI")
@click.option("--samples", "with_samples", is_flag=True, help="Also each sample's name (sorted), one per line.")
@flags.runs_option(
    "metadata_s3", help_text="Also the runs recorded there by older versions of batch-ingest.py (the runs of this "
    "version register beside the dataset, whatever their --metadata-s3)."
)  # fmt: skip
@flags.runs_option("region", help_text="AWS region (default: as the AWS CLI finds it, else us-east-1).")
@flags.profile_option
@flags.tiledb_config_option
@flags.runs_option("as_json")
def dataset_command(
    dataset_uri: str,
    with_samples: bool,
    metadata_s3: str | None,
    region: str | None,
    profile: str | None,
    tiledb_config: str | None,
    as_json: bool,
) -> None:
    """Print what a dataset holds, read from the dataset itself: its samples, those only partly ingested (a failed
    job's), the runs still ingesting into it, every run that wrote it with its state, and its health: each array's
    fragments, size and last consolidation, and what to consolidate or vacuum (the commands that do it).

    DATASET_URI is the dataset's s3:// URI (or a local path). Exit status: 0, or 2 if there is no dataset there.
    """
    uri = parse_dataset_uri(dataset_uri, "DATASET_URI", local=not dataset_uri.startswith("s3://"))
    metadata = records.metadata_location(metadata_s3) if metadata_s3 is not None else None
    clients = make_clients(region, profile)
    read = dataset.reader_for(clients.s3, profile, clients.region, tiledb_config)
    found = inventory.read_inventory(Storage(clients.s3), executors(clients, region, profile), read, uri, metadata)
    state = health.reader_for(clients.s3, profile, clients.region, tiledb_config)(uri)
    for warning in found.warnings:
        click.echo(warning, err=True)
    if not as_json:
        for line in [*inventory.text_lines(found, with_samples=with_samples), *health.text_lines(state)]:
            click.echo(line)
        return
    if found.view.problem is not None:
        click.echo(f"WARNING: cannot read the samples of dataset {uri} ({found.view.problem})", err=True)
    doc = inventory.document(found, with_samples=with_samples) | {"health": health.document(state)}
    click.echo(json.dumps(doc, indent=1))


def executors(clients: Clients, region: str | None, profile: str | None) -> Callable[[RunRecord], Executor]:
    """The executor that ran a recorded run, in the run's own region unless --region says otherwise."""
    by_region = {clients.region: clients}

    def executor_for(record: RunRecord) -> Executor:
        if region is None and record.region not in by_region:
            by_region[record.region] = make_clients(record.region, profile)
        return for_record(record.executor, by_region.get(record.region, clients))

    return executor_for


if __name__ == "__main__":
    main()
