#!/usr/bin/env python3
"""Command line of TileDB-VCF ingestion on AWS Batch (the logic lives in common.py)."""

import sys

import click

import common


@click.command(cls=common.OneLineCommand)
@click.option(
    "--dataset-uri",
    required=True,
    metavar="URI",
    help="S3 URI of destination TileDB-VCF dataset. If the dataset does not exist, it will be created.",
)
@click.option(
    "--samples",
    "samples_path",
    required=True,
    metavar="PATH",
    help="Path to file containing a list of sample URIs (one per line) to ingest.",
)
@click.option(
    "--metadata-s3",
    required=True,
    metavar="NAME",
    help="Name of a bucket that can be used for shared metadata storage between batch jobs, "
    "e.g. uploading lists of samples to register or ingest.",
)
@click.option("--job-queue", required=True, metavar="NAME", help="Name of job queue to use for jobs.")
@click.option("--job-definition", required=True, metavar="NAME", help="Name of job definition to use for jobs.")
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
    metavar="N",
    help="Number of jobs to submit for ingestion. Each job will be responsible for ingesting "
    "nsamples/njobs samples to the array. When combined with --incremental, each incremental "
    "batch uses this many jobs.",
)
@click.option("--region", metavar="NAME", help="AWS region name of Batch environment")
@click.option("--retries", type=int, default=1, metavar="N", help="Max number (1-10) of retries for failed jobs.")
@click.option("--wait", is_flag=True, help="Waits for all jobs to complete before exiting.")
@click.option(
    "--incremental",
    type=int,
    default=1,
    metavar="N",
    help="If specified, ingest the samples in N batches instead of all at once.",
)
@click.option(
    "--register",
    is_flag=True,
    help="Legacy v2/v3 datasets (tiledbvcf <= 0.6): run a sample registration job before each "
    "batch's ingestion. v4 datasets need none.",
)
@click.option("--tiledb-config", metavar="K=V,...", help="TileDB config parameters passed to tiledbvcf.")
@click.option("--vcpus", type=int, default=16, show_default=True, metavar="N", help="vCPUs of each ingestion job.")
@click.option(
    "--memory", type=int, default=61440, show_default=True, metavar="MIB", help="Memory (MiB) of each ingestion job."
)
@click.option("--threads", type=int, metavar="N", help="tiledbvcf store threads (default: --vcpus).")
@click.option(
    "--scratch-path",
    default=common.DEFAULT_SCRATCH_PATH,
    show_default=True,
    metavar="PATH",
    help="Scratch directory inside the container (the job definition's mount point).",
)
@click.option(
    "--scratch-size",
    type=int,
    default=common.DEFAULT_SCRATCH_MB,
    show_default=True,
    metavar="MB",
    help="Scratch space tiledbvcf may use; at least two sample batches of downloaded files. "
    "0 streams the samples instead of downloading them.",
)
@click.option("--sample-batch-size", type=int, metavar="N", help="Samples per tiledbvcf store batch (store -e).")
@click.option(
    "--instance-price",
    type=float,
    default=common.DEFAULT_INSTANCE_PRICE,
    show_default=True,
    metavar="USD",
    help="Hourly instance price for the --wait cost estimate (on-demand m5.4xlarge, us-east-1).",
)
@click.option("--dry-run", is_flag=True, help="Check the inputs and print the plan; upload and submit nothing.")
def main(
    dataset_uri: str,
    samples_path: str,
    metadata_s3: str,
    job_queue: str,
    job_definition: str,
    attributes: str | None,
    num_jobs: int,
    region: str | None,
    retries: int,
    wait: bool,
    incremental: int,
    register: bool,
    tiledb_config: str | None,
    vcpus: int,
    memory: int,
    threads: int | None,
    scratch_path: str,
    scratch_size: int,
    sample_batch_size: int | None,
    instance_price: float,
    dry_run: bool,
) -> None:
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
    common.check_range(num_jobs, "--num-jobs", 1)
    common.check_range(retries, "--retries", 1, common.MAX_ATTEMPTS)
    common.check_range(incremental, "--incremental", 1)
    common.check_range(vcpus, "--vcpus", 1)
    common.check_range(memory, "--memory", 4)
    common.check_range(scratch_size, "--scratch-size", 0)
    if threads is not None:
        common.check_range(threads, "--threads", 1)
    if sample_batch_size is not None:
        common.check_range(sample_batch_size, "--sample-batch-size", 1)
    dataset = common.parse_dataset_uri(dataset_uri)
    metadata = common.parse_metadata_location(metadata_s3)
    attribute_names = common.parse_attributes(attributes)
    config = common.parse_tiledb_config(tiledb_config)
    samples = common.read_samples_file(samples_path)

    clients = common.make_clients(region)
    problems = (
        common.check_job_queue(clients.batch, job_queue, clients.region)
        + common.check_job_definition(clients.batch, job_definition, clients.region)
        + common.check_bucket(clients.s3, metadata.bucket, "--metadata-s3")
        + common.check_bucket(clients.s3, common.parse_s3_uri(dataset, "").bucket, "--dataset-uri")
    )
    if problems:
        raise common.InputError(problems)
    exists = common.dataset_exists(clients.s3, dataset)
    if exists and attribute_names:
        click.echo(f"Dataset {dataset} exists: --attributes is ignored (it only applies at creation)", err=True)
    elif exists:
        click.echo(f"Dataset {dataset} exists: no array creation job", err=True)

    opts = common.IngestOptions(
        dataset_uri=dataset,
        attributes=attribute_names,
        create_dataset=not exists,
        register=register,
        num_jobs=num_jobs,
        incremental=incremental,
        retries=retries,
        resources=common.Resources(vcpus, memory),
        threads=threads or vcpus,
        scratch_path=scratch_path,
        scratch_mb=scratch_size,
        sample_batch_size=sample_batch_size,
        tiledb_config=config,
    )
    run_id = common.new_run_id("ingest")
    plan = common.plan_ingest(opts, samples, run_id, common.run_prefix_for(metadata, run_id))
    for note in plan.notes:
        click.echo(note, err=True)
    if dry_run:
        for line in common.describe_plan(plan, job_queue, job_definition):
            click.echo(line)
        return
    recorded = {
        "dataset_uri": dataset,
        "samples": samples_path,
        "samples_count": len(samples),
        "metadata_s3": str(metadata),
        "attributes": attribute_names,
        "num_jobs": num_jobs,
        "incremental": incremental,
        "retries": retries,
        "register": register,
        "tiledb_config": common.redact_config(config),
        "vcpus": vcpus,
        "memory": memory,
        "scratch_path": scratch_path,
        "scratch_size": scratch_size,
    }
    job_ids = common.submit_plan(plan, clients, job_queue, job_definition, recorded)
    if wait:
        report = common.wait_and_report(clients, plan, job_ids, instance_price)
        sys.exit(0 if report.succeeded == report.total else 1)


if __name__ == "__main__":
    main()
