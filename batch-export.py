#!/usr/bin/env python3
"""Command line of TileDB-VCF export on AWS Batch (the logic lives in tiledbvcf_batch/)."""

from typing import Any

import click

import common
from tiledbvcf_batch import inputs, prepare


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
@common.version_option
@click.option(
    "--array",
    "--dataset-uri",
    "dataset_uri",
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
@common.job_queue_option
@common.job_definition_option
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
    show_default=True,
    metavar="N",
    help="Number of jobs to submit for export. Each job will be responsible for exporting "
    "nsamples/njobs samples from the array.",
)
@common.region_option
@common.profile_option
@common.retries_option
@click.option(
    "--wait",
    is_flag=True,
    help="Waits for all jobs to complete, then checks that every sample's file is at --dest-s3.",
)
@common.tiledb_config_option
@click.option(
    "--output-format",
    type=click.Choice(inputs.EXPORT_FORMATS),
    default="b",
    show_default=True,
    help="b: compressed BCF, u: uncompressed BCF, z: compressed VCF, v: VCF (one file per sample).",
)
@common.resources_options("export job", vcpus=4, memory=15000)
@common.scratch_path_option("Existing directory inside the container where files are written before upload.")
@click.option(
    "--metadata-s3",
    metavar="NAME",
    help="Bucket name or s3://bucket/prefix for the run record (default: the --dest-s3 bucket).",
)
@common.executor_options
@common.run_tail_options
@click.option("--dry-run", is_flag=True, help="Check the inputs and print the plan; submit nothing.")
def main(**flags: Any) -> None:
    """Exports BCF sample data from a TileDB array via AWS Batch."""
    opts = inputs.export_options(flags)
    session = common.Session.for_flags(flags)
    prepared = prepare.export(
        session.complete(opts),
        session.storage,
        session.executor,
        instance_price=session.instance_price,
        read_dataset=session.dataset_reader(opts.tiledb_config),
        say=common.stderr_for(flags),
    )
    common.execute(prepared, session, flags)


if __name__ == "__main__":
    common.run_script(main)
