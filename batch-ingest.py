#!/usr/bin/env python3
"""Command line of TileDB-VCF ingestion on AWS Batch (the logic lives in tiledbvcf_batch/)."""

from dataclasses import dataclass
from typing import Any

import click

import common
import flags
from tiledbvcf_batch import discovery, prepare
from tiledbvcf_batch.options import IngestOptions, flag


@dataclass(frozen=True)
class IngestTail(flags.Tail):
    wait: bool = flag(False, help="Waits for all jobs to complete before exiting.")
    resume: str | None = flag(
        None,
        metavar="RUN_ID",
        help="Resubmit the jobs of an earlier run that did not succeed, with their original manifests.",
    )
    dry_run: bool = flag(False, help="Check the inputs and print the plan; upload and submit nothing.")


# --help lists the options in the spec's order, then this project's own.
ORDER = (
    "dataset_uri", "samples", "metadata_s3", "job_queue", "job_definition", "attributes", "num_jobs", "region",
    "profile", "retries", "wait", "incremental", "register", "balance", "consolidate", "tiledb_config", "vcpus",
    "memory", "max_memory", "threads", "scratch_path", "scratch_size", "sample_batch_size", "check_headers",
    "repair_to", "skip_existing", "replace", "force_reingest", "include", "exclude", "resume", "executor",
    "max_parallel", "array_jobs", "tiledbvcf", "instance_price", "keep_partial", "kms_key_id", "as_json",
    "log_lines", "report", "quiet", "verbose", "dry_run",
)  # fmt: skip


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
@common.version_option
@flags.click_options(ORDER, IngestOptions, flags.Where, flags.Aws, IngestTail)
def main(**given: Any) -> None:
    """Ingest VCF sample data into a TileDB-VCF dataset via AWS Batch.

    This script requires an existing AWS Batch setup, including a job definition with a Docker
    image containing the TileDB-VCF CLI executable. The CLI executable is invoked in each batch
    job by this script using the `command` container override parameter.

    Ingestion of the samples (specified via --samples argument) is distributed across the
    specified number of Batch jobs (--num-jobs), irrespective of the number of instances in the
    compute environment. For example, if there are 1,000 samples to be ingested, the compute
    environment contains 10 instances, and 10 jobs are requested, each instance will execute 1
    job that ingests 100 samples at a time. If 100 jobs were requested, 100 jobs would be queued
    (each ingesting 10 samples), and the 10 instances would pull jobs from the queue until all
    are finished.

    The bucket specified with the --metadata-s3 argument is used to store a file for each job
    containing the list of samples the job should ingest.
    """
    request, given_samples = flags.ingest_request(given, IngestTail)
    session = common.Session.for_request(request)
    opts, tail = request.opts, request.tail
    say = common.stderr_for(tail)
    samples, found = discovery.samples_of(given_samples, session.clients.s3, opts.include, opts.exclude, say)
    prepared = prepare.ingest(
        session.complete(opts),
        samples,
        session.storage,
        session.executor,
        session.executor_for,
        read_dataset=session.dataset_reader(opts.tiledb_config),
        resume=tail.resume,
        instance_price=session.instance_price,
        say=say,
    )
    prepared.discovery = found.document() if found is not None else None
    common.execute(prepared, session, tail)


if __name__ == "__main__":
    common.run_script(main)
