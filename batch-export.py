#!/usr/bin/env python3
"""Command line of TileDB-VCF export on AWS Batch (the logic lives in common.py)."""

import sys

import click

import common


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
@click.option(
    "--array",
    "--dataset-uri",
    "array",
    required=True,
    metavar="URI",
    help="S3 URI of TileDB array to read from.",
)
@click.option("--dest-s3", required=True, metavar="URI", help="S3 URI where exported BCFs will be stored.")
@click.option(
    "--samples",
    required=True,
    metavar="URI",
    help="S3 URI of file containing a list of sample names (one per line) to export.",
)
@click.option("--bed", required=True, metavar="URI", help="S3 URI of BED file containing sample regions to export.")
@click.option("--job-queue", required=True, metavar="NAME", help="Name of job queue to use for jobs.")
@click.option("--job-definition", required=True, metavar="NAME", help="Name of job definition to use for jobs.")
@click.option(
    "--attributes",
    metavar="CSV",
    help="Comma-separated list of BCF info and/or format field names that should be included in the "
    "exported BCFs. Today's tiledbvcf cannot restrict BCF fields, so this is refused; see README.",
)
@click.option(
    "--num-jobs",
    type=int,
    default=1,
    metavar="N",
    help="Number of jobs to submit for export. Each job will be responsible for exporting "
    "nsamples/njobs samples from the array.",
)
@click.option("--region", metavar="NAME", help="AWS region name")
@click.option("--retries", type=int, default=1, metavar="N", help="Max number (1-10) of retries for failed jobs.")
@click.option(
    "--wait",
    is_flag=True,
    help="Waits for all jobs to complete, then checks that every sample's file is at --dest-s3.",
)
@click.option("--tiledb-config", metavar="K=V,...", help="TileDB config parameters passed to tiledbvcf.")
@click.option(
    "--output-format",
    type=click.Choice(sorted(common.EXPORT_SUFFIXES)),
    default="b",
    show_default=True,
    help="b: compressed BCF, u: uncompressed BCF, z: compressed VCF, v: VCF (one file per sample).",
)
@click.option("--vcpus", type=int, default=4, show_default=True, metavar="N", help="vCPUs of each export job.")
@click.option(
    "--memory", type=int, default=15000, show_default=True, metavar="MIB", help="Memory (MiB) of each export job."
)
@click.option(
    "--scratch-path",
    default=common.DEFAULT_SCRATCH_PATH,
    show_default=True,
    metavar="PATH",
    help="Existing directory inside the container where files are written before upload.",
)
@click.option(
    "--metadata-s3",
    metavar="NAME",
    help="Bucket name or s3://bucket/prefix for the run record (default: the --dest-s3 bucket).",
)
@common.instance_price_option
@common.keep_partial_option
@common.kms_key_option
@common.json_option
@common.log_lines_option
@click.option("--dry-run", is_flag=True, help="Check the inputs and print the plan; submit nothing.")
def main(
    array: str,
    dest_s3: str,
    samples: str,
    bed: str,
    job_queue: str,
    job_definition: str,
    attributes: str | None,
    num_jobs: int,
    region: str | None,
    retries: int,
    wait: bool,
    tiledb_config: str | None,
    output_format: str,
    vcpus: int,
    memory: int,
    scratch_path: str,
    metadata_s3: str | None,
    instance_price: float,
    keep_partial: bool,
    kms_key_id: str | None,
    as_json: bool,
    log_lines: int,
    dry_run: bool,
) -> None:
    """Exports BCF sample data from a TileDB array via AWS Batch."""
    problems: list[str] = []
    if attributes is not None:
        problems.append(
            "--attributes: tiledbvcf export cannot restrict the INFO/FORMAT fields of a BCF/VCF, so the "
            "files would hold every field anyway: leave --attributes out (bcftools annotate -x trims fields)"
        )
    for value, option, low, high in (
        (num_jobs, "--num-jobs", 1, None),
        (retries, "--retries", 1, common.MAX_ATTEMPTS),
        (vcpus, "--vcpus", 1, None),
        (memory, "--memory", 4, None),
    ):
        common.gather(problems, common.check_range, value, option, low, high)
    dataset = common.gather(problems, common.parse_dataset_uri, array, "--array")
    dest = common.gather(problems, parse_uri, dest_s3, "--dest-s3", False)
    samples_uri = common.gather(problems, parse_uri, samples, "--samples", True)
    bed_uri = common.gather(problems, parse_uri, bed, "--bed", True)
    metadata = common.gather(problems, common.parse_metadata_location, metadata_s3) if metadata_s3 else None
    config = common.gather(problems, common.parse_tiledb_config, tiledb_config)
    if problems:
        raise common.InputError(problems)
    dest = dest.as_prefix()
    metadata = metadata or common.S3Uri(dest.bucket)

    clients = common.make_clients(region)
    encryption = common.encryption_args(kms_key_id)
    problems += common.check_job_queue(clients.batch, job_queue, clients.region)
    problems += common.check_job_definition(clients.batch, job_definition, clients.region)
    problems += common.check_writable(clients.s3, dest, "--dest-s3", encryption)
    if metadata.bucket != dest.bucket:
        problems += common.check_writable(clients.s3, metadata, "--metadata-s3", encryption)
    problems += common.check_object(clients.s3, bed_uri, "--bed")
    samples_missing = common.check_object(clients.s3, samples_uri, "--samples")
    problems += samples_missing
    names = []
    if not samples_missing:
        names = common.gather(
            problems, common.parse_sample_names, common.read_s3_text(clients.s3, samples_uri), str(samples_uri)
        )
    if problems:
        raise common.InputError(problems)

    opts = common.ExportOptions(
        dataset_uri=dataset,
        dest=dest,
        samples_uri=str(samples_uri),
        bed_uri=str(bed_uri),
        num_jobs=num_jobs,
        retries=retries,
        resources=common.Resources(vcpus, memory),
        scratch_path=scratch_path,
        output_format=output_format,
        tiledb_config=config,
    )
    run_id = common.new_run_id("export")
    plan = common.plan_export(opts, names, run_id, common.run_prefix_for(metadata, run_id))
    for note in plan.notes:
        click.echo(note, err=True)
    if dry_run:
        for line in common.describe_plan(plan, job_queue, job_definition):
            click.echo(line)
        return
    recorded = {
        "dataset_uri": dataset,
        "dest_s3": str(dest),
        "samples": str(samples_uri),
        "samples_count": len(names),
        "bed": str(bed_uri),
        "num_jobs": num_jobs,
        "retries": retries,
        "output_format": output_format,
        "tiledb_config": common.redact_config(config),
        "vcpus": vcpus,
        "memory": memory,
        "instance_price": instance_price,
    }
    record = common.submit_plan(
        plan, clients, job_queue, job_definition, recorded, encryption=encryption, keep_partial=keep_partial
    )
    if wait:
        sys.exit(common.watch_run(clients, record, instance_price=instance_price, log_lines=log_lines, as_json=as_json))


def parse_uri(text: str, option: str, need_key: bool) -> common.S3Uri:
    try:
        return common.parse_s3_uri(text.strip(), option, need_key=need_key)
    except ValueError as error:
        raise common.InputError(str(error)) from None


if __name__ == "__main__":
    main()
