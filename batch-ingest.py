#!/usr/bin/env python3
"""Command line of TileDB-VCF ingestion on AWS Batch (the logic lives in common.py)."""

import dataclasses
import sys

import click
from botocore.exceptions import ClientError

import common


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
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
@common.instance_price_option
@click.option(
    "--check-headers",
    is_flag=True,
    help="Also read each sample's header (a range request): refuse multi-sample files and sample "
    "names found in two files.",
)
@click.option(
    "--force-reingest",
    is_flag=True,
    help="Ingest samples that earlier runs of this dataset already ingested (v4 stores them twice).",
)
@click.option(
    "--resume",
    "resume_run",
    metavar="RUN_ID",
    help="Resubmit the jobs of an earlier run that did not succeed, with their original manifests.",
)
@common.keep_partial_option
@common.kms_key_option
@common.json_option
@common.log_lines_option
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
    check_headers: bool,
    force_reingest: bool,
    resume_run: str | None,
    keep_partial: bool,
    kms_key_id: str | None,
    as_json: bool,
    log_lines: int,
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
    problems: list[str] = []
    for value, option, low, high in (
        (num_jobs, "--num-jobs", 1, None),
        (retries, "--retries", 1, common.MAX_ATTEMPTS),
        (incremental, "--incremental", 1, None),
        (vcpus, "--vcpus", 1, None),
        (memory, "--memory", 4, None),
        (scratch_size, "--scratch-size", 0, None),
        (threads or 1, "--threads", 1, None),
        (sample_batch_size or 1, "--sample-batch-size", 1, None),
    ):
        common.gather(problems, common.check_range, value, option, low, high)
    dataset = common.gather(problems, common.parse_dataset_uri, dataset_uri)
    metadata = common.gather(problems, common.parse_metadata_location, metadata_s3)
    attribute_names = common.gather(problems, common.parse_attributes, attributes)
    config = common.gather(problems, common.parse_tiledb_config, tiledb_config)
    samples = common.gather(problems, common.read_samples_file, samples_path)
    if problems:
        raise common.InputError(problems)

    clients = common.make_clients(region)
    encryption = common.encryption_args(kms_key_id)
    problems += common.check_job_queue(clients.batch, job_queue, clients.region)
    problems += common.check_job_definition(clients.batch, job_definition, clients.region)
    problems += common.check_writable(clients.s3, metadata, "--metadata-s3", encryption)
    problems += common.check_bucket(clients.s3, common.parse_s3_uri(dataset, "").bucket, "--dataset-uri")
    sample_problems, sizes = common.check_samples(clients.s3, samples)
    problems += sample_problems
    if check_headers and not sample_problems:
        problems += common.check_headers(clients.s3, samples)
    if problems:
        raise common.InputError(problems)
    click.echo(
        f"{len(samples)} samples, {sum(sizes.values()) / 2**30:.2f} GiB, all present with their indexes", err=True
    )

    exists = common.dataset_exists(clients.s3, dataset)
    notes: list[str] = []
    if exists:
        notes.append(
            f"dataset {dataset} exists: no array creation job"
            + (" and --attributes is ignored (it only applies at creation)" if attribute_names else "")
        )
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
    run_prefix = common.run_prefix_for(metadata, run_id)
    if resume_run:
        opts, batches, resume_notes = resumed_batches(clients, metadata, resume_run, opts, samples)
        notes += resume_notes
    else:
        ledger = common.dataset_ledger(clients, metadata, dataset)
        if ledger.in_flight and not exists:
            run_ids = sorted(set(ledger.in_flight.values()))
            raise common.InputError(
                f"run {', '.join(run_ids)} is still creating and ingesting {dataset}: wait for it to finish "
                "(python batch-runs.py wait ...) before starting another run of this dataset"
            )
        if not exists and ledger.ingested:
            notes.append(f"dataset {dataset} does not exist any more: the record of earlier runs is ignored")
            ledger = common.Ledger()
        if not force_reingest:
            samples, skip_notes = common.skip_known_samples(samples, ledger)
            notes += skip_notes
        batches, split_notes = common.ingest_batches(samples, opts, run_prefix)
        notes += split_notes
    for note in notes:
        click.echo(note, err=True)
    if not batches:
        click.echo("Nothing to ingest: no job submitted", err=True)
        return

    plan = common.plan_ingest(opts, batches, run_id, run_prefix)
    plan.index_marker = common.dataset_index(metadata, dataset).child(f"{run_id}.json")
    if dry_run:
        for line in common.describe_plan(plan, job_queue, job_definition):
            click.echo(line)
        return
    recorded = {
        "dataset_uri": dataset,
        "samples": samples_path,
        "samples_count": sum(len(job.samples) for job in plan.jobs if job.stage.startswith("ingest")),
        "sample_bytes": sum(
            sizes.get(uri, 0) for job in plan.jobs if job.stage.startswith("ingest") for uri in job.samples
        ),
        "metadata_s3": str(metadata),
        "attributes": attribute_names,
        "num_jobs": num_jobs,
        "incremental": incremental,
        "retries": retries,
        "register": opts.register,
        "sample_batch_size": opts.sample_batch_size,
        "tiledb_config": common.redact_config(config),
        "vcpus": vcpus,
        "memory": memory,
        "scratch_path": scratch_path,
        "scratch_size": scratch_size,
        "resumes": resume_run,
        "instance_price": instance_price,
    }
    record = common.submit_plan(
        plan, clients, job_queue, job_definition, recorded, encryption=encryption, keep_partial=keep_partial
    )
    if wait:
        sys.exit(common.watch_run(clients, record, instance_price=instance_price, log_lines=log_lines, as_json=as_json))


def resumed_batches(
    clients: common.Clients,
    metadata: common.S3Uri,
    run_id: str,
    opts: common.IngestOptions,
    samples: list[common.Sample],
) -> tuple[common.IngestOptions, list[common.IngestBatch], list[str]]:
    """The unfinished jobs of run ``run_id``, checked against this command's dataset and samples."""
    record_uri = common.run_prefix_for(metadata, run_id).child(common.RUN_RECORD_NAME)
    try:
        record = common.load_run_record(clients.s3, record_uri)
    except ClientError as error:
        raise common.InputError(
            f"--resume {run_id}: cannot read {record_uri} ({common.aws_message(error)}): "
            "check the run id and --metadata-s3"
        ) from None
    if record.get("kind") != "ingest" or record.get("target") != opts.dataset_uri:
        raise common.InputError(
            f"--resume {run_id}: that run ingested into {record.get('target')}, not {opts.dataset_uri}"
        )
    recorded = {uri for job in record["jobs"] if job["stage"].startswith("ingest") for uri in job["samples"]}
    given = {sample.uri for sample in samples}
    if recorded != given:
        raise common.InputError(
            f"--resume {run_id}: --samples lists {len(given - recorded)} samples that run did not have and "
            f"lacks {len(recorded - given)} it had: pass the samples file of that run"
        )
    original = record["options"]
    # store --resume only matches the original sample batches: keep what shaped them.
    opts = dataclasses.replace(
        opts, register=original.get("register", False), sample_batch_size=original.get("sample_batch_size")
    )
    batches = common.resume_batches(record, common.job_states(clients, record))
    jobs = sum(len(b.shares) + (b.register is not None) for b in batches)
    return opts, batches, [f"resuming run {run_id}: resubmitting {jobs} jobs that did not succeed"]


if __name__ == "__main__":
    main()
