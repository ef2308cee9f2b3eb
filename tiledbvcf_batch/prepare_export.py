"""Preparing an export: every check before anything is uploaded (the destination, the dataset, the names,
the BED and its contigs, the tools the jobs need), then the plan. Ingestion's preparation is ``prepare``.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from .bed import Bed, contig_check
from .dataset import DatasetReader, DatasetView
from .deliverables import DELIVERY_TOOLS
from .executors.base import Executor
from .headers import file_name_problem
from .inputs import InputError, decode_names, parse_sample_names
from .options import ExportOptions
from .plan import plan_export
from .preflight import check_bed, check_object, check_writable, dataset_exists
from .prepare import Prepared, Say, recorded_options
from .record import earlier_measures, export_index, new_run_id, run_prefix_for
from .storage import LocalPath, Storage


def export(
    opts: ExportOptions,
    storage: Storage,
    executor: Executor,
    *,
    instance_price: float,
    read_dataset: DatasetReader,
    say: Say = lambda line: None,
) -> Prepared:
    """Check everything, the names and the BED's contigs against the dataset too, and plan the export."""
    s3 = storage.s3
    problems = executor.preflight() + executor.tool_problems(DELIVERY_TOOLS) + index_problems(opts)
    problems += executor.scratch_problems(opts.scratch_path)
    problems += check_writable(s3, opts.dest_s3, "--dest-s3", storage.encryption)
    if opts.metadata_s3.bucket != opts.dest_s3.bucket or isinstance(opts.metadata_s3, LocalPath):
        problems += check_writable(s3, opts.metadata_s3, "--metadata-s3", storage.encryption)
    try:
        exists = dataset_exists(s3, opts.dataset_uri, "--array")
    except InputError as error:
        exists, problems = False, problems + error.problems  # not a dataset: nothing to read
    else:
        if not exists:
            problems.append(f"--array {opts.dataset_uri} does not exist (nothing is stored under it): check the URI")
    bed_missing = check_object(s3, opts.bed, "--bed")
    bed = Bed(str(opts.bed), ()) if bed_missing else check_bed(storage, opts.bed)
    problems += [*bed_missing, *bed.problems]
    samples_missing = check_object(s3, opts.samples, "--samples")
    problems += samples_missing
    names: list[str] = []
    if not samples_missing:
        try:
            names = parse_sample_names(
                decode_names(storage.read_bytes(opts.samples), str(opts.samples)), str(opts.samples)
            )
        except InputError as error:
            problems += error.problems
    problems += unexportable_names(names, opts)
    warnings: list[str] = []
    if exists and (names or bed.intervals):
        view = read_dataset(opts.dataset_uri, contigs=bool(bed.intervals))
        problems += names_not_in(view, names, say)
        more, warnings = contigs_not_in(view, bed)
        problems += more
        opts = replace(opts, legacy=view.legacy)  # the legacy CLI's export takes fewer settings
    if problems:
        raise InputError(problems)
    run_id = new_run_id("export")
    index = export_index(opts.metadata_s3, opts.dataset_uri)
    plan = plan_export(opts, names, bed, run_id, run_prefix_for(opts.metadata_s3, run_id))
    plan = replace(plan, index_marker=index.child(f"{run_id}.json"))  # listed for the next export's estimate
    options = recorded_options(opts, samples_count=len(names), instance_price=instance_price)
    measured = tuple(earlier_measures(storage, index))
    return Prepared(plan, [*warnings, *plan.notes], options, measured=measured)


def contigs_not_in(view: DatasetView, bed: Bed) -> tuple[list[str], list[str]]:
    """The BED's contigs the dataset does not know: a problem when it knows none of them, else a warning.

    Unchecked when the dataset cannot be read (``names_not_in`` says so) or its headers list no contig.
    """
    if not view.readable or not view.samples or not bed.intervals:
        return [], []
    if view.contigs is None:
        return [], [
            f"WARNING: the VCF headers of dataset {view.uri} list no contigs (no ##contig line): the contigs of "
            f"--bed {bed.source} are not checked before the jobs run"
        ]
    return contig_check(bed, view.contigs, view.uri)


def index_problems(opts: ExportOptions) -> list[str]:
    if opts.index == "tbi" and opts.output_format != "z":
        return [f"--index tbi indexes compressed VCF only, not --output-format {opts.output_format}: use --index csi, "
                "or --output-format z"]  # fmt: skip
    return []


def unexportable_names(names: list[str], opts: ExportOptions) -> list[str]:
    """Names tiledbvcf cannot export as files of their own (every format here writes one file per sample)."""
    return [
        f"--samples names sample {name!r}, which tiledbvcf cannot export as a file of its own ({problem}): leave it "
        f"out of {opts.samples}"
        for name in names
        if (problem := file_name_problem(name)) is not None
    ]


def names_not_in(view: DatasetView, names: list[str], say: Say) -> list[str]:
    """The export's names the dataset does not hold, all of them in one problem (its job would fail on any one)."""
    if not view.readable:
        say(view.warning("the names to export and the BED's contigs are not checked before the jobs run"))
        return []
    unknown = [name for name in names if name not in (view.samples or ())]
    if not unknown:
        return []
    shown = ", ".join(unknown[:50]) + (f", ... ({len(unknown) - 50} more)" if len(unknown) > 50 else "")
    return [
        f"--samples names {len(unknown)} samples that dataset {view.uri} does not hold: {shown}. Fix the names file "
        f"(python batch-runs.py dataset {shlex.quote(view.uri)} --samples lists what it holds)"
    ]
