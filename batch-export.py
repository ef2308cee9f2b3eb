#!/usr/bin/env python3
"""Command line of TileDB-VCF export on AWS Batch (the logic lives in tiledbvcf_batch/)."""

from dataclasses import dataclass
from typing import Any

import click

import common
import flags
from tiledbvcf_batch import prepare_export
from tiledbvcf_batch.options import ExportOptions, ExportRefusals, flag


@dataclass(frozen=True)
class ExportTail(flags.Tail):
    wait: bool = flag(
        False, help="Waits for all jobs to complete, then checks that every sample's file is at --dest-s3."
    )
    dry_run: bool = flag(False, help="Check the inputs and print the plan; submit nothing.")


# --help lists the options in the spec's order, then this project's own.
ORDER = (
    "dataset_uri", "dest_s3", "samples", "bed", "job_queue", "job_definition", "attributes", "num_jobs", "region",
    "profile", "retries", "wait", "tiledb_config", "output_format", "tsv_fields", "merge", "index", "vcpus", "memory",
    "max_memory", "scratch_path", "metadata_s3", "executor", "max_parallel", "array_jobs", "tiledbvcf",
    "instance_price", "keep_partial", "kms_key_id", "as_json", "log_lines", "report", "quiet", "verbose", "dry_run",
)  # fmt: skip


@click.command(cls=common.OneLineCommand, epilog=common.RUNS_EPILOG)
@common.version_option
@flags.click_options(ORDER, ExportOptions, ExportRefusals, flags.Where, flags.Aws, ExportTail)
def main(**given: Any) -> None:
    """Exports BCF sample data from a TileDB array via AWS Batch."""
    request = flags.export_request(given, ExportTail)
    session = common.Session.for_request(request)
    opts = request.opts
    prepared = prepare_export.export(
        session.complete(opts),
        session.storage,
        session.executor,
        instance_price=session.instance_price,
        read_dataset=session.dataset_reader(opts.tiledb_config),
        say=common.stderr_for(request.tail),
    )
    common.execute(prepared, session, request.tail)


if __name__ == "__main__":
    common.run_script(main)
