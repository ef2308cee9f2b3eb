#!/usr/bin/env python3
"""Command line of TileDB-VCF ingestion on AWS Batch (the logic lives in tiledbvcf_batch/)."""

from typing import Any

import click

import common
from tiledbvcf_batch import inputs, prepare


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
@common.version_option
@click.option(
    "--dataset-uri",
    required=True,
    metavar="URI",
    help="S3 URI of destination TileDB-VCF dataset. If the dataset does not exist, it will be created.",
)
@click.option(
    "--samples",
    required=True,
    metavar="PATH",
    help="Path to file containing a list of sample URIs (one per line) to ingest.",
)
@click.option(
    "--metadata-s3",
    required=True,
    metavar="NAME",
    help="Name of a bucket that can be used for shared metadata storage between batch jobs, "
    "e.g. uploading lists of samples to register or ingest. Also s3://bucket/prefix (or, with "
    "--executor local, a directory).",
)
@common.job_queue_option
@common.job_definition_option
@click.option(
    "--attributes",
    metavar="CSV",
    help="Comma-separated list of VCF info and/or format field names that should be extracted as "
    "separate TileDB attributes. This option is only used if the destination array does not yet exist.",
)
@click.option(
    "--num-jobs",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Number of jobs to submit for ingestion. Each job will be responsible for ingesting "
    "nsamples/njobs samples to the array. When combined with --incremental, each incremental "
    "batch uses this many jobs.",
)
@common.region_option
@common.profile_option
@common.retries_option
@click.option("--wait", is_flag=True, help="Waits for all jobs to complete before exiting.")
@click.option(
    "--incremental",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="If specified, ingest the samples in N batches instead of all at once.",
)
@click.option(
    "--register",
    is_flag=True,
    help="Legacy v2/v3 datasets (tiledbvcf <= 0.6): run a sample registration job before each "
    "batch's ingestion. v4 datasets need none.",
)
@click.option(
    "--balance",
    type=click.Choice(inputs.BALANCES),
    default="count",
    show_default=True,
    help="How each batch's samples are shared out among its jobs: equal counts (contiguous, in file order), "
    "or equal bytes (largest sample first, to the lightest job), so that no job draws all the big files.",
)
@click.option(
    "--consolidate/--no-consolidate",
    default=True,
    show_default=True,
    help="After each batch, consolidate and vacuum the dataset's fragment metadata and commits "
    "(tiledbvcf utils; not with --register).",
)
@common.tiledb_config_option
@common.resources_options("ingestion job", vcpus=16, memory=61440)
@click.option("--threads", type=int, metavar="N", help="tiledbvcf store threads (default: --vcpus).")
@common.scratch_path_option("Scratch directory inside the container (the job definition's mount point).")
@click.option(
    "--scratch-size",
    type=int,
    default=inputs.DEFAULT_SCRATCH_SIZE,
    show_default=True,
    metavar="MB",
    help="Scratch space tiledbvcf may use; at least two sample batches of downloaded files. "
    "0 streams the samples instead of downloading them.",
)
@click.option("--sample-batch-size", type=int, metavar="N", help="Samples per tiledbvcf store batch (store -e).")
@click.option(
    "--check-headers",
    is_flag=True,
    help="Also read each sample's header (a range request): refuse multi-sample files and sample "
    "names found in two files.",
)
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Samples whose name the dataset already holds (from another file, or stored by other means) are skipped "
    "and the others ingested. Default: refuse the run, naming them.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Samples whose name the dataset already holds are deleted from it (tiledbvcf delete, a job before the "
    "stores) and stored again from the files given: the dataset never holds both versions. Not with --register.",
)
@click.option(
    "--force-reingest",
    is_flag=True,
    help="Plan samples whatever earlier runs did with them (ingested, or failed). A name the dataset holds is still "
    "never stored twice: add --replace to store such samples again.",
)
@click.option(
    "--resume",
    metavar="RUN_ID",
    help="Resubmit the jobs of an earlier run that did not succeed, with their original manifests.",
)
@common.executor_options
@common.run_tail_options
@click.option("--dry-run", is_flag=True, help="Check the inputs and print the plan; upload and submit nothing.")
def main(**flags: Any) -> None:
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
    opts, samples = inputs.ingest_options(flags)
    session = common.Session.for_flags(flags)
    prepared = prepare.ingest(
        session.complete(opts),
        samples,
        session.storage,
        session.executor,
        session.executor_for,
        read_dataset=session.dataset_reader(opts.tiledb_config),
        resume=flags["resume"],
        instance_price=session.instance_price,
        say=common.stderr_for(flags),
    )
    common.execute(prepared, session, flags)


if __name__ == "__main__":
    common.run_script(main)
