#!/usr/bin/env python3
"""Companion of batch-ingest.py and batch-export.py: come back to a run (the logic lives in common.py)."""

import functools
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import ClientError

import common

RUN_HELP = (
    "RUN is the run record's S3 URI, as printed when the run was submitted "
    "(Run ... recorded at s3://.../run.json), or a run id together with --metadata-s3."
)


@click.group(
    cls=common.OneLineGroup,
    help=f"Watch, diagnose and cancel runs of batch-ingest.py and batch-export.py.\n\n{RUN_HELP}",
)
def main() -> None:
    pass


def run_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """RUN, --metadata-s3 and --region, turned into (clients, record) for the command."""

    @click.argument("run")
    @click.option(
        "--metadata-s3", metavar="NAME", help="Where runs are recorded, when RUN is a run id: the bucket or "
        "s3://bucket/prefix given to batch-ingest.py (for export: --metadata-s3, else the --dest-s3 bucket)."
    )  # fmt: skip
    @click.option("--region", metavar="NAME", help="AWS region (default: the run's).")
    @functools.wraps(command)
    def wrapper(run: str, metadata_s3: str | None, region: str | None, **kwargs: Any) -> Any:
        uri = record_uri(run, metadata_s3)
        reader = common.make_clients(region)
        try:
            record = common.load_run_record(reader.s3, uri)
        except ClientError as error:
            raise common.InputError(
                f"cannot read run record {uri} ({common.aws_message(error)}): check RUN and --metadata-s3"
            ) from None
        clients = reader if region or record["region"] == reader.region else common.make_clients(record["region"])
        return command(clients, record, **kwargs)

    return wrapper


def record_uri(run: str, metadata_s3: str | None) -> common.S3Uri:
    if run.startswith("s3://"):
        try:
            uri = common.parse_s3_uri(run, "RUN")
        except ValueError as error:
            raise common.InputError(str(error)) from None
        return uri if uri.key.endswith(".json") else uri.as_prefix().child(common.RUN_RECORD_NAME)
    if metadata_s3 is None:
        raise common.InputError(
            f"RUN {run!r} is a run id: add --metadata-s3, or give the run record's s3:// URI instead"
        )
    return common.run_prefix_for(common.parse_metadata_location(metadata_s3), run).child(common.RUN_RECORD_NAME)


def price_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--instance-price",
        type=float,
        metavar="USD",
        help="Hourly instance price for the cost estimate (default: the run's, else 0.768).",
    )(command)


def price_of(record: dict[str, Any], given: float | None) -> float:
    return given if given is not None else record["options"].get("instance_price", common.DEFAULT_INSTANCE_PRICE)


@main.command()
@run_options
@price_option
@common.json_option
def status(clients: common.Clients, record: dict[str, Any], instance_price: float | None, as_json: bool) -> None:
    """Print a run's jobs per status and stage; its report once every job has finished.

    Exit status: 0 all succeeded, 1 some failed, 3 still running.
    """
    latest = common.describe_all(clients.batch, common.record_job_ids(record))
    for line in common.progress_lines(record, latest, time.time()):
        click.echo(line, err=as_json)
    if any(d["status"] not in common.TERMINAL_STATUSES for d in latest.values()):
        if as_json:
            click.echo(json.dumps({"run_id": record["run_id"], "finished": False,
                                   "stages": common.stage_counts(record, latest)}, indent=1))  # fmt: skip
        sys.exit(3)
    report = common.finish_report(
        clients, record, latest, instance_price=price_of(record, instance_price), log_lines=0, as_json=as_json
    )
    sys.exit(0 if report.ok else 1)


@main.command()
@run_options
@price_option
@common.json_option
@common.log_lines_option
def wait(
    clients: common.Clients, record: dict[str, Any], instance_price: float | None, as_json: bool, log_lines: int
) -> None:
    """Wait for a run, with the progress and report of --wait. Exit status: 0, 1, or 130 on Ctrl-C."""
    sys.exit(
        common.watch_run(
            clients, record, instance_price=price_of(record, instance_price), log_lines=log_lines, as_json=as_json
        )
    )


@main.command()
@run_options
@common.log_lines_option
@common.json_option
def logs(clients: common.Clients, record: dict[str, Any], log_lines: int, as_json: bool) -> None:
    """Print why a run's jobs failed: every attempt's reason, exit code, log stream and last log lines."""
    latest = common.describe_all(clients.batch, common.record_job_ids(record))
    failures = common.diagnose_failures(clients, list(latest.values()), log_lines)
    if as_json:
        click.echo(json.dumps(failures, indent=1))
        return
    for line in common.format_failures(failures) or [f"No failed jobs in run {record['run_id']}."]:
        click.echo(line)


@main.command()
@run_options
def cancel(clients: common.Clients, record: dict[str, Any]) -> None:
    """Cancel a run's jobs that have not started and terminate those that are running."""
    outcome = common.cancel_run(clients, record)
    names = {job["job_id"]: job["name"] for job in record["jobs"] if job.get("job_id")}
    for kind, text in (
        ("cancelled", "cancelled (had not started)"),
        ("terminated", "terminated (were running)"),
        ("finished", "had already finished"),
        ("unknown", "unknown to Batch (too old, or never submitted)"),
    ):
        if outcome[kind]:
            shown = " ".join(f"{job_id} ({names[job_id]})" for job_id in outcome[kind][:50])
            more = f" and {len(outcome[kind]) - 50} more" if len(outcome[kind]) > 50 else ""
            click.echo(f"{len(outcome[kind])} job(s) {text}: {shown}{more}")


@main.command("list")
@click.option(
    "--metadata-s3", required=True, metavar="NAME", help="Bucket or s3://bucket/prefix where runs are recorded."
)
@click.option("--region", metavar="NAME", help="AWS region.")
@click.option("--last", type=int, default=20, show_default=True, metavar="N", help="Show the N most recent runs.")
def list_runs(metadata_s3: str, region: str | None, last: int) -> None:
    """List the runs recorded under --metadata-s3, newest last."""
    location = common.parse_metadata_location(metadata_s3)
    clients = common.make_clients(region)
    prefix = location.as_prefix().child(common.RUNS_PREFIX + "/")
    keys = sorted(
        (key for key in common.list_sizes(clients.s3, prefix.bucket, prefix.key) if key.endswith("/run.json")),
        key=lambda key: key.split("/")[-2].split("-", 1)[1],
    )
    for key in keys[-last:]:
        record = common.load_run_record(clients.s3, common.S3Uri(prefix.bucket, key))
        click.echo(f"{record['run_id']}  {len(record['jobs'])} jobs  {record['target']}  s3://{prefix.bucket}/{key}")


if __name__ == "__main__":
    main()
