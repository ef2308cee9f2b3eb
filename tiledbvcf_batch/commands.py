"""The one module that spells ``tiledbvcf`` flags: every job's argument list is built here.

Job commands are argument lists, never shell strings, so a sample URI with spaces, quotes or
``;`` stays one argument. The image's entrypoint reads the same spellings back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .options import ExportOptions, IngestOptions
from .repair import REPAIR

EXPORT_SUFFIXES = {"b": ".bcf", "u": ".bcf", "z": ".vcf.gz", "v": ".vcf", "t": ".tsv"}
_SECRET_KEY_RE = re.compile(r"secret|token|password|session", re.IGNORECASE)
# How the image's entrypoint finds the options of an export job it uploads itself.
OPTION_NAMES = {
    "upload": ("--upload-dir",),
    "output_dir": ("-d", "--output-dir"),
    "samples_file": ("-f", "--samples-file"),
    "partition": ("--sample-partition",),
    "format": ("-O", "--output-format"),
    "delivery": ("--delivery",),
    "output": ("-o", "--output-path"),  # a combined file (--merge, -O t): the job's one file
    "tsv_fields": ("-t", "--tsv-fields"),
    "regions_partition": ("--region-partition",),
    "store_budget": ("-m", "--total-memory-budget-mb"),  # store's total memory budget (MiB)
}
MERGE_FLAG = "--merge"  # a switch: no value
STORE_BUDGET_FLAG = OPTION_NAMES["store_budget"][0]
BUDGET_FLAG = "-b"  # export's and delete's memory budget (MB)
# Not a tiledbvcf flag: the image's entrypoint takes it out and delivers the job's files as the run's delivery
# file says (tiledbvcf_batch/delivery.py). A stock image's tiledbvcf refuses it: such an export fails at once,
# where it would upload nothing and exit 0 (--upload-dir s3:// in 0.40.x).
DELIVERY_OPTION = OPTION_NAMES["delivery"][0]


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Contiguous chunks whose sizes differ by at most one, larger first; never an empty chunk.

    This is also how ``tiledbvcf export --sample-partition`` cuts its sorted sample list.
    """
    parts = min(parts, len(items))
    size, extra = divmod(len(items), parts) if parts else (0, 0)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks


# TileDB's thread pools. Their default is the host's core count (std::thread::hardware_concurrency; tiledbvcf's
# export asks for 1.5 times it): inside a Batch container that is the instance's cores, not the job's vCPUs.
COMPUTE_THREADS = "sm.compute_concurrency_level"
IO_THREADS = "sm.io_concurrency_level"
# I/O threads wait on S3 rather than on a CPU: 32 of them read a dataset's headers 7x faster than 2 on a 2-core
# client (bench/dataset.py). So the job's vCPUs set the compute threads, and the I/O threads never go below that.
IO_THREADS_AT_LEAST = 32

# export -b/--mem-budget-mb: what tiledbvcf gives its TileDB queries (tile cache, TileDB's own budget and its
# result buffers). Its default is 2048 MB whatever the job has. Outside it: the process itself, htslib, the
# image's entrypoint (Python and boto3, 50 MB), and the records tiledbvcf buffers for each sample of the job, up
# to 10,000 a sample before it writes them (about 4 MB a sample: 300 samples of 30,000 records peaked at 1,514 MB
# with -b 256; bench/export_budget.py). So -b takes half of the job's memory past a reserve; the rest is theirs.
EXPORT_RESERVE_MB = 512
EXPORT_BUDGET_SHARE = 0.5
EXPORT_BUDGET_MIN_MB = 128  # a job too small for any budget still gets one tiledbvcf can run with (measured: 64)
# The legacy reader (0.6 and earlier) keeps a fixed 1 GiB tile cache beside -b (its sm.tile_cache_size).
LEGACY_TILE_CACHE_MB = 1024


# store -m/--total-memory-budget-mb: the whole of what tiledbvcf store plans to use. Its default is 75% of the
# *host's* RAM (sysconf), not the container's limit, and -t defaults to the host's cores: jobs that Batch packs
# onto one instance would each budget most of the instance. So -t is the job's threads (--threads, else --vcpus)
# and -m the job's memory less a reserve kept outside tiledbvcf's budget: the image's entrypoint (Python and
# boto3, 50 MB), the process itself and what its budget does not count (htslib's open files and their indexes,
# heap fragmentation). The reserve is an eighth of the job, at least 512 MiB.
STORE_RESERVE_MB = 512
STORE_RESERVE_SHARE = 8  # 1/8 of the job's memory, when that is more than STORE_RESERVE_MB
STORE_BUDGET_MIN_MB = 512  # store refuses -m below 512 (CLI::Range(512, system memory) in tiledbvcf.cc)
# How store splits -m (libtiledbvcf/src/write/writer.cc, Writer::update_params, TileDB-VCF 0.40 / main 2026):
#   tiledb = min(m * 0.5, 4096)                       (--ratio-tiledb-memory 0.5, --max-tiledb-memory-mb 4096)
#   input  = 1 MiB * threads * sample_batch_size      (--input-record-buffer-mb 1: one buffer a sample a thread)
#   output = (m - tiledb - input) * 0.5, stats the other half
# in uint32 arithmetic: input past m - tiledb wraps the output budget round to about 2 PiB (2^31 MiB), so store's
# output buffers are never flushed for their size and grow with the batch's records (measured with 0.40.3:
# -m 512 -t 4 -e 100 logs "output=2147483520 MiB", "Output buffers = 4 threads * 536870880 MiB"). We keep the
# input buffers to at most half of what TileDB's part leaves, so that output and stats keep the other half.
STORE_TILEDB_SHARE = 0.5
STORE_TILEDB_MAX_MB = 4096
STORE_INPUT_BUFFER_MB = 1
STORE_DEFAULT_BATCH = 10  # store's -e when none is given (IngestionParams::sample_batch_size)


def store_budget_mb(memory_mib: int) -> int:
    """store -m for a job of ``memory_mib``: its memory less the reserve, never below store's minimum."""
    reserve = max(STORE_RESERVE_MB, memory_mib // STORE_RESERVE_SHARE)
    return max(STORE_BUDGET_MIN_MB, memory_mib - reserve)


def largest_batch(threads: int, budget_mb: int) -> int:
    """The largest store -e whose input buffers (1 MiB a sample a thread) fit ``budget_mb`` (see update_params)."""
    tiledb = min(int(budget_mb * STORE_TILEDB_SHARE), STORE_TILEDB_MAX_MB)
    return (budget_mb - tiledb) // 2 // (STORE_INPUT_BUFFER_MB * max(1, threads))


def batch_size_problems(opts: IngestOptions) -> list[str]:
    """A sample batch size (given, or store's default 10) whose buffers cannot fit the job's memory: refused."""
    if opts.memory is None or opts.vcpus is None or opts.register:  # refused already; the legacy store has no -m
        return []
    threads, budget = opts.store_threads, store_budget_mb(opts.memory)
    batch, fits = opts.sample_batch_size or STORE_DEFAULT_BATCH, largest_batch(opts.store_threads, budget)
    if batch <= fits:
        return []
    which = f"--sample-batch-size {batch}" if opts.sample_batch_size else f"tiledbvcf store's default batch of {batch}"
    largest = f"the largest that fits is {fits}" if fits else "no batch fits"
    return [
        f"{which} needs {batch * threads * STORE_INPUT_BUFFER_MB} MiB of input buffers ({threads} threads x {batch} "
        f"samples x 1 MiB) and --memory {opts.memory} leaves store room for {fits * threads} MiB: {largest}; "
        "give a smaller --sample-batch-size, more --memory or fewer --threads"
    ]


def store_resources(opts: IngestOptions) -> str:
    """What each store job gets of its job's resources, for the plan's text (--dry-run, --verbose)."""
    if opts.register:
        return (
            f"Each store: {opts.store_threads} threads (-t) of its job's {opts.vcpus} vCPUs; the legacy store has no -m"
        )
    budget, batch = store_budget_mb(opts.memory), opts.sample_batch_size or STORE_DEFAULT_BATCH
    return (
        f"Each store: {opts.store_threads} threads (-t) of its job's {opts.vcpus} vCPUs, a {budget} MiB budget (-m) "
        f"of its {opts.memory} MiB; batches of {batch} samples take {batch * opts.store_threads} MiB of input buffers "
        f"(at most {largest_batch(opts.store_threads, budget)} samples a batch fit)"
    )


def config_args(tiledb_config: str | None) -> list[str]:
    # --tiledb-config takes every following word as a value: it must come last.
    return ["--tiledb-config", tiledb_config] if tiledb_config else []


def merged_config(ours: dict[str, str], given: str | None) -> str | None:
    """Our TileDB settings, then the user's --tiledb-config as given: a key the user sets is the user's alone."""
    items = [item for item in (given or "").split(",") if item.strip()]
    theirs = {item.partition("=")[0].strip() for item in items}
    merged = [f"{key}={value}" for key, value in ours.items() if key not in theirs] + items
    return ",".join(merged) or None


def export_budget_mb(memory_mib: int, legacy: bool = False) -> int:
    """export -b for a job of ``memory_mib``: half of what is left past the reserve (and the legacy tile cache)."""
    spare = memory_mib - EXPORT_RESERVE_MB - (LEGACY_TILE_CACHE_MB if legacy else 0)
    return max(EXPORT_BUDGET_MIN_MB, int(spare * EXPORT_BUDGET_SHARE))


def thread_config(vcpus: int) -> dict[str, str]:
    """TileDB's thread pools for a job of ``vcpus``: compute threads its vCPUs, I/O threads at least 32."""
    return {COMPUTE_THREADS: str(vcpus), IO_THREADS: str(max(vcpus, IO_THREADS_AT_LEAST))}


def scratch_args(path: str | None, size_mb: int) -> list[str]:
    # Without -d/-s htslib streams the inputs instead of downloading them to scratch. No path (None) would be an
    # empty argument, which the executor refuses before anything is submitted.
    return ["-d", path or "", "-s", str(size_mb)] if size_mb > 0 else []


def create_command(opts: IngestOptions) -> list[str]:
    command = ["create", "-u", str(opts.dataset_uri)]
    if opts.attributes:
        command += ["-a", ",".join(opts.attributes)]
    return command + config_args(opts.tiledb_config)


def register_command(opts: IngestOptions, manifest: str) -> list[str]:
    # The legacy CLI's register takes no --tiledb-config, and no thread or memory flag (-u -d -s -f only).
    return [
        "register",
        "-u",
        str(opts.dataset_uri),
        *scratch_args(opts.scratch_path, opts.scratch_size),
        "-f",
        manifest,
    ]


def store_command(opts: IngestOptions, manifest: str) -> list[str]:
    command = [
        "store",
        "-u",
        str(opts.dataset_uri),
        *scratch_args(opts.scratch_path, opts.scratch_size),
        "-t",
        str(opts.store_threads),
        "-f",
        manifest,
        "--remove-sample-file",
    ]
    if not opts.register:  # the legacy store has neither -m nor --resume
        command += [STORE_BUDGET_FLAG, str(store_budget_mb(opts.memory))]
        # A retried attempt skips what an earlier attempt of the same manifest already wrote.
        command.append("--resume")
    if opts.sample_batch_size:
        command += ["-e", str(opts.sample_batch_size)]
    return command + config_args(opts.tiledb_config)


DELETE_NAMES_CHARS = 8000  # names per delete job: a SubmitJob request is at most 30 KiB, names included


def delete_commands(opts: IngestOptions, names: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """``delete -u URI -s A,B,...`` (records, headers and the stats arrays), names cut to fit a request."""
    chunks: list[list[str]] = []
    for name in names:
        if not chunks or len(",".join([*chunks[-1], name])) > DELETE_NAMES_CHARS:
            chunks.append([])
        chunks[-1].append(name)
    # delete -b is export's (its queries are an export's, ExportParams); its threads go in the TileDB config.
    budget = ["-b", str(export_budget_mb(opts.memory))]
    config = config_args(merged_config(thread_config(opts.vcpus), opts.tiledb_config))
    return [(chunk, ["delete", "-u", str(opts.dataset_uri), "-s", ",".join(chunk), *budget, *config])
            for chunk in chunks]  # fmt: skip


# What follows an ingestion batch, in this order: TileDB-VCF's advice after adding many samples.
# One ``utils`` call does one of them (0.40.3 refuses a second subcommand), so each is a job of its own.
CONSOLIDATION_STEPS = (
    ("consolidate", "fragment_meta"),
    ("consolidate", "commits"),
    ("vacuum", "fragment_meta"),
    ("vacuum", "commits"),
)


def consolidation_commands(opts: IngestOptions) -> list[list[str]]:
    """``utils consolidate`` then ``utils vacuum`` of fragment metadata and commits (not in the legacy CLI)."""
    # utils has no thread or memory flag: its threads go in the TileDB config, as export's do.
    config = merged_config(thread_config(opts.vcpus), opts.tiledb_config)
    return [utils_command(opts.dataset_uri, action, what, config) for action, what in CONSOLIDATION_STEPS]


def utils_command(dataset_uri: object, action: str, what: str, tiledb_config: str | None = None) -> list[str]:
    """``utils consolidate|vacuum fragment_meta|commits -u URI``: one step of CONSOLIDATION_STEPS."""
    return ["utils", action, what, "-u", str(dataset_uri), *config_args(tiledb_config)]


def export_command(
    opts: ExportOptions,
    names: str,
    regions: str,
    delivery: str | None = None,
    output: str | None = None,
    part: tuple[int, int] | None = None,
) -> list[str]:
    """One partition's export: ``names`` is a file of that partition's sample names only; ``regions`` a BED.

    Not the whole list with --sample-partition I:N: tiledbvcf rejects a whole names file for
    one unknown name, so one typo would fail every partition instead of its own. ``delivery``:
    the run's delivery file, for the entrypoint (see DELIVERY_OPTION). ``output``: the file name of
    a combined export (``-o``: --merge, or -O t); ``part``: (I, N) of --merge's --region-partition.
    """
    command = [
        "export",
        "-u",
        str(opts.dataset_uri),
        "-f",
        names,
        "-R",
        regions,
        "-d",
        opts.scratch_path or "",
        "--upload-dir",
        str(opts.dest_s3),
    ]
    if delivery is not None:
        command += [DELIVERY_OPTION, delivery]
    if opts.output_format != "b":  # the legacy CLI has no -O; b is the default of both
        command += ["-O", opts.output_format]
    if opts.output_format == "t":
        command += ["-t", ",".join(opts.tsv_fields)]
    if opts.merge:
        command.append(MERGE_FLAG)
    if part is not None:
        command += ["--region-partition", f"{part[0]}:{part[1]}"]
    if output is not None:
        command += ["-o", output]
    # Both CLIs take -b, an unsigned count of MB. The legacy export gets no thread settings: 0.1 and 0.2 take no
    # --tiledb-config on export (nor does the legacy form the documentation gives), and no legacy release ran here.
    command += [BUDGET_FLAG, str(export_budget_mb(opts.memory, opts.legacy))]
    threads = {} if opts.legacy else thread_config(opts.vcpus)
    return command + config_args(merged_config(threads, opts.tiledb_config))


def count_only_command(args: Sequence[str], names_file: str) -> list[str]:
    """An export job's query for the samples of ``names_file`` only, counting records (``-c``), writing nothing.

    The job asks it of the samples tiledbvcf wrote no file for: 0 records means they have none in the regions.
    A combined export's job asks it of all its samples, in its --region-partition if it has one.
    """
    counted = [arg for arg in with_value(args, OPTION_NAMES["samples_file"], names_file) if arg != MERGE_FLAG]
    for key in ("upload", "output_dir", "delivery", "format", "output", "tsv_fields"):
        counted = without(counted, OPTION_NAMES[key])
    config = option(counted, ("--tiledb-config",))
    if config is None:
        return [*counted, "-c"]
    return [*without(counted, ("--tiledb-config",)), "-c", *config_args(config[1])]


def without(args: Sequence[str], names: Sequence[str]) -> list[str]:
    """``args`` without the option ``names`` (``--name value`` or ``--name=value``) and its value."""
    found = option(args, names)
    if found is None:
        return list(args)
    i = found[0]
    width = 1 if "=" in args[i] else 2
    return [*args[:i], *args[i + width :]]


def redact_config(text: str | None) -> str | None:
    """A TileDB config string safe to print or record: secret-looking values are hidden."""
    if text is None:
        return None
    items = []
    for item in text.split(","):
        key = item.partition("=")[0]
        items.append(f"{key}=***" if _SECRET_KEY_RE.search(key) else item)
    return ",".join(items)


def redact_command(command: Sequence[str]) -> list[str]:
    shown = list(command)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--tiledb-config":
            shown[i + 1] = redact_config(shown[i + 1]) or ""
    return shown


def repair_command(manifest: str, work_dir: str | None) -> list[str]:
    """A repair job (``--repair-to``; the image's entrypoint runs it with bcftools, ``repairjob``): its manifest, one
    repair a line, named as a store's samples file is, so that the stage becomes an array job as the ingestion does
    (``arraytasks``); its working directory as a store's scratch (-d), checked by the entrypoint as that is."""
    work = [OPTION_NAMES["output_dir"][0], work_dir] if work_dir else []
    return [REPAIR, OPTION_NAMES["samples_file"][0], manifest, *work]


def option(args: Sequence[str], names: Sequence[str]) -> tuple[int, str] | None:
    """Position and value of the first ``--name value`` or ``--name=value``."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return i, args[i + 1]
            if name.startswith("--") and arg.startswith(name + "="):
                return i, arg.split("=", 1)[1]
    return None


def delivers(args: Sequence[str]) -> bool:
    """An export the entrypoint delivers itself (tiledbvcf_batch/delivery.py): one that names the run's delivery
    file, or (a client older than it) one to ``s3://``, which tiledbvcf 0.40.x exits 0 from without uploading.
    """
    if not args or args[0] != "export":
        return False
    upload = option(args, OPTION_NAMES["upload"])
    return option(args, OPTION_NAMES["delivery"]) is not None or (upload is not None and upload[1].startswith("s3://"))


def scratch_dir(args: Sequence[str]) -> str | None:
    """The scratch (store, register) or output (export) directory a job names with -d, if any."""
    found = option(args, OPTION_NAMES["output_dir"])
    return found[1] if found and args and args[0] in ("store", "register", "export", REPAIR) else None


def with_own_scratch(args: Sequence[str], directory: str) -> list[str]:
    """The job's arguments with ``directory`` as its -d.

    Jobs that share a scratch volume (two on one instance, or on this machine) must not share
    the directory: tiledbvcf cleans up its downloads there, and would delete the other job's.
    """
    if option(args, OPTION_NAMES["output_dir"]) is None:
        return list(args)
    return with_value(args, OPTION_NAMES["output_dir"], directory)


def option_value(args: Sequence[str], key: str) -> str | None:
    """The value of the option ``OPTION_NAMES[key]`` in a job's ``args``, if given."""
    found = option(args, OPTION_NAMES[key])
    return found[1] if found else None


def with_value(args: Sequence[str], names: Sequence[str], new: str) -> list[str]:
    found = option(args, names)
    if found is None:
        return [*args, names[0], new]
    i = found[0]
    if "=" in args[i]:
        return [*args[:i], f"{args[i].split('=', 1)[0]}={new}", *args[i + 1 :]]
    return [*args[: i + 1], new, *args[i + 2 :]]


def with_memory(args: Sequence[str], memory_mib: int) -> list[str]:
    """A job's arguments for a job of ``memory_mib`` (a job resubmitted with more memory): store's -m and
    export's or delete's -b derived again, as for a job planned with that memory. Others are unchanged.
    """
    if args and args[0] == "store" and option(args, OPTION_NAMES["store_budget"]) is not None:
        return with_value(args, OPTION_NAMES["store_budget"], str(store_budget_mb(memory_mib)))
    if args and args[0] in ("export", "delete") and option(args, (BUDGET_FLAG,)) is not None:
        # export's legacy tile cache is not counted again: twice the memory leaves it room.
        return with_value(args, (BUDGET_FLAG,), str(export_budget_mb(memory_mib)))
    return list(args)


def store_budget_within(args: Sequence[str], host_mib: int) -> list[str]:
    """A store's arguments with -m no more than this machine can give: store refuses an -m above the machine's
    RAM (CLI::Range(512, system memory)), which a job planned with more --memory than a local machine has asks.
    Lowered to store's own default share of the machine (75%), never below its minimum. (Measured with 0.40.3 on a
    24,105 MiB machine: -m 53760 exits 105 with "Value 53760 not in range 512 to 24105".)
    """
    found = option(args, OPTION_NAMES["store_budget"]) if args and args[0] == "store" else None
    if found is None or not found[1].isdigit() or int(found[1]) <= host_mib:
        return list(args)
    return with_value(args, OPTION_NAMES["store_budget"], str(max(STORE_BUDGET_MIN_MB, host_mib * 3 // 4)))
