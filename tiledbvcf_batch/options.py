"""The options of batch-ingest.py and batch-export.py, each declared once: flag, type, default, range, help.

A field of an options dataclass is the option: its default is the flag's, its ``Flag`` metadata
holds the spelling, the metavar, the range and the help, and the command-line layer makes the
click option of it (this package knows nothing of click). Field names are the flags' names, so a
value keeps one name from flag to run record. ``options_from`` is the one place that reads the
values click gave, by those names.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .inputs import (
    DEFAULT_SCRATCH_SIZE,
    MAX_RETRIES,
    InputError,
    Problems,
    Resources,
    check_range,
    check_scratch_path,
    parse_attributes,
    parse_dataset_uri,
    parse_metadata_location,
    parse_object,
    parse_prefix,
    parse_tiledb_config,
)
from .storage import LocalPath, Location, S3Uri

EXPORT_FORMATS = ("b", "u", "z", "v", "t")  # t: a TSV table of --tsv-fields
TSV_COLUMNS = ("SAMPLE", "ID", "REF", "ALT", "QUAL", "POS", "CHR", "FILTER")  # tiledbvcf's bare TSV fields
TSV_QUERY = ("POS", "END", "LINE")  # Q:<name>: the query region's start, end, and the BED line it came from
_TSV_FIELD_RE = re.compile(r"^[IF]:[A-Za-z0-9_.]+$")
INDEX_FORMATS = ("csi", "tbi", "none")
BALANCES = ("count", "bytes")  # --balance: equal sample counts per job, or equal bytes
FLAG = "flag"  # the key of a field's Flag in its metadata
Parse = Callable[[str, str, bool], Any]  # (text, option, local executor?) -> value; raises InputError
Check = Callable[[Any], Any]  # value -> value (checked, maybe converted); raises InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Flag:
    """How one field is given on the command line. Plain metadata: the CLI layer makes the click option."""

    help: str
    metavar: str | None = None
    names: tuple[str, ...] = ()  # the spellings, the one messages use first; default --<field-name>
    low: int | None = None
    high: int | None = None
    # The values, or where to read them when the command runs (the executors registered by then).
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    required: bool = False  # click refuses a command line without it
    required_for: str | None = None  # required with this executor only: shown [required], as the spec documents it
    switch: str | None = None  # the spelling that turns an on/off flag off (--no-consolidate)
    executor_default: bool = False  # not given: None, and the executor picks (the scratch path; its help says how)
    parse: Parse | None = None  # a text, parsed: locations depend on the executor
    check: Check | None = None  # the value's own check, e.g. a region name; may convert (CSV to names)
    multiple: bool = False  # may be given more than once: the values as a tuple

    def option(self, field_name: str) -> str:
        return self.names[0] if self.names else option_name(field_name)

    def value_of(self, given: Any, option: str, local: bool) -> Any:
        """The value of the field, from what click gave; InputError if refused."""
        if self.parse is not None and given is not None:
            given = self.parse(given, option, local)
        if self.check is not None:
            given = self.check(given)
        if self.low is not None:
            check_range(given, option, self.low, self.high)
        return given


def option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def flag(default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field that is also a command-line option (``spec``: the fields of ``Flag``)."""
    return field(default=default, metadata={FLAG: Flag(**spec)})


def flags_of(cls: type) -> list[tuple[dataclasses.Field[Any], Flag]]:
    """The fields of ``cls`` that are options, in their order."""
    return [(f, f.metadata[FLAG]) for f in dataclasses.fields(cls) if FLAG in f.metadata]


def options_from(cls: type[T], given: Mapping[str, Any], problems: Problems, *, local: bool = False) -> T:
    """``cls`` from the values click gave for its options, by field name: click's kwargs are read here only.

    Texts are parsed and values checked as their Flags declare; every problem goes to ``problems``
    rather than being raised, so that the problems of every class are listed at once. A field whose
    value was refused holds None: use the result only once ``problems`` is empty.
    """
    values = {}
    for f, spec in flags_of(cls):
        if f.name in given:  # a field that is not an option of this command keeps its default
            values[f.name] = problems.check(spec.value_of, given[f.name], spec.option(f.name), local)
    return cls(**values)


def retries_flag() -> Any:
    return flag(
        1,
        metavar="N",
        low=1,
        high=MAX_RETRIES,
        help=f"Max number (1-{MAX_RETRIES}) of retries for failed jobs. With 1, a job is retried only when its host "
        "went away (a Spot reclaim), up to 3 attempts; with N > 1, any failure, up to N attempts in all.",
    )


# --max-memory's default: the documented instance type (m5.4xlarge, 64 GiB = 65,536 MiB) less 2 GiB for what is
# not the jobs' (the OS, Docker, the ECS agent: ECS registers less memory than the instance has). A job asking for
# more than its instances register waits RUNNABLE; the watch says so (STUCK).
DEFAULT_MAX_MEMORY = 63488


def max_memory_flag() -> Any:
    return flag(
        DEFAULT_MAX_MEMORY,
        metavar="MIB",
        low=4,
        help="A job killed for memory (out of memory on AWS Batch) is submitted again once, with twice its memory "
        "up to this many MiB (default: an m5.4xlarge's 64 GiB less 2 GiB for ECS and the OS), by --wait or --resume.",
    )


def memory_conflicts(memory: int | None, max_memory: int | None) -> list[str]:
    if memory is not None and max_memory is not None and max_memory < memory:
        return [f"--max-memory {max_memory} is less than --memory {memory}: give --max-memory at least --memory"]
    return []


def tiledb_config_flag() -> Any:
    return flag(
        None, metavar="K=V,...", check=parse_tiledb_config, help="TileDB config parameters passed to tiledbvcf."
    )


def scratch_path_flag(help_text: str) -> Any:
    """None unless given: the executor's default (``Executor.default_scratch``), filled in by the command line."""
    return flag(None, metavar="PATH", executor_default=True, check=check_scratch_path, help=help_text)


def parse_tsv_fields(text: str | None) -> tuple[str, ...]:
    """The TSV columns tiledbvcf knows (case sensitive); an I:/F: field is checked against the headers by the job."""
    if text is None:
        return ()
    names = [name.strip() for name in text.split(",")]
    bad = [name for name in names if not tsv_field_ok(name)]
    if bad or not [name for name in names if name]:
        shown = ", ".join(repr(name) for name in bad) if bad else "nothing"
        raise InputError(
            f"--tsv-fields names {shown}: the fields are {', '.join(TSV_COLUMNS)}, I:<info field>, F:<format field>, "
            "Q:POS, Q:END or Q:LINE, comma-separated (case sensitive)"
        )
    return tuple(names)


def tsv_field_ok(name: str) -> bool:
    if name in TSV_COLUMNS or bool(_TSV_FIELD_RE.match(name)):
        return True
    return name.startswith("Q:") and name[2:] in TSV_QUERY


@dataclass(frozen=True)
class IngestOptions:
    dataset_uri: Location = flag(
        metavar="URI",
        required=True,
        parse=parse_dataset_uri,
        help="S3 URI of destination TileDB-VCF dataset. If the dataset does not exist, it will be created.",
    )
    samples: str = flag(  # the local samples file, or a prefix or directory whose files are found (discovery)
        metavar="PATH",
        required=True,
        help="Path to file containing a list of sample URIs (one per line) to ingest. Or an S3 prefix "
        "(s3://bucket/prefix/; with --executor local also a directory) whose VCF/BCF files, found recursively "
        "and paired with their indexes, are the samples.",
    )
    metadata_s3: Location = flag(
        metavar="NAME",
        required=True,
        parse=parse_metadata_location,
        help="Name of a bucket that can be used for shared metadata storage between batch jobs, "
        "e.g. uploading lists of samples to register or ingest. Also s3://bucket/prefix (or, with "
        "--executor local, a directory).",
    )
    attributes: tuple[str, ...] = flag(
        (),
        metavar="CSV",
        check=parse_attributes,
        help="Comma-separated list of VCF info and/or format field names that should be extracted as "
        "separate TileDB attributes. This option is only used if the destination array does not yet exist.",
    )
    num_jobs: int = flag(
        1,
        metavar="N",
        low=1,
        help="Number of jobs to submit for ingestion. Each job will be responsible for ingesting "
        "nsamples/njobs samples to the array. When combined with --incremental, each incremental "
        "batch uses this many jobs.",
    )
    incremental: int = flag(
        1, metavar="N", low=1, help="If specified, ingest the samples in N batches instead of all at once."
    )
    retries: int = retries_flag()
    register: bool = flag(  # legacy v2/v3 datasets: register before store, no --resume
        False,
        help="Legacy v2/v3 datasets (tiledbvcf <= 0.6): run a sample registration job before each "
        "batch's ingestion. v4 datasets need none.",
    )
    tiledb_config: str | None = tiledb_config_flag()
    vcpus: int = flag(16, metavar="N", low=1, help="vCPUs of each ingestion job.")
    memory: int = flag(61440, metavar="MIB", low=4, help="Memory (MiB) of each ingestion job.")
    max_memory: int = max_memory_flag()
    threads: int | None = flag(None, metavar="N", low=1, help="tiledbvcf store threads (default: --vcpus).")
    scratch_path: str | None = scratch_path_flag(  # None: the executor's default
        "Scratch directory inside the container (the job definition's mount point)."
    )
    scratch_size: int = flag(
        DEFAULT_SCRATCH_SIZE,
        metavar="MB",
        low=0,
        help="Scratch space tiledbvcf may use; at least two sample batches of downloaded files. "
        "0 streams the samples instead of downloading them.",
    )
    sample_batch_size: int | None = flag(None, metavar="N", low=1, help="Samples per tiledbvcf store batch (store -e).")
    check_headers: bool = flag(
        False,
        help="Also read each sample's header (a range request): refuse multi-sample files and sample "
        "names found in two files.",
    )
    repair_to: Location | None = flag(  # the repair stage: its files go here, never over the inputs
        None,
        metavar="URI",
        parse=parse_prefix,
        help="Repair the inputs that need it before ingesting them, into this S3 prefix (a directory with --executor "
        "local), never in place: a missing index is built, a plain-gzip or uncompressed VCF recompressed with BGZF "
        "and indexed, a multi-sample file split into one file a sample. Every header is read (as --check-headers).",
    )
    force_reingest: bool = flag(  # plan samples whatever earlier runs did with them (the dataset still decides)
        False,
        help="Plan samples whatever earlier runs did with them (ingested, or failed). A name the dataset holds is "
        "still never stored twice: add --replace to store such samples again.",
    )
    skip_existing: bool = flag(  # names the dataset holds are skipped, not refused
        False,
        help="Samples whose name the dataset already holds (from another file, or stored by other means) are "
        "skipped and the others ingested. Default: refuse the run, naming them.",
    )
    replace: bool = flag(  # names the dataset holds are deleted, then stored again
        False,
        help="Samples whose name the dataset already holds are deleted from it (tiledbvcf delete, a job before "
        "the stores) and stored again from the files given: the dataset never holds both versions. Not with "
        "--register.",
    )
    balance: str = flag(  # how samples are shared out among a batch's jobs
        "count",
        choices=BALANCES,
        help="How each batch's samples are shared out among its jobs: equal counts (contiguous, in file order), "
        "or equal bytes (largest sample first, to the lightest job), so that no job draws all the big files.",
    )
    consolidate: bool = flag(  # consolidate and vacuum fragment metadata and commits after each batch
        True,
        switch="--no-consolidate",
        help="After each batch, consolidate and vacuum the dataset's fragment metadata and commits "
        "(tiledbvcf utils; not with --register).",
    )
    include: tuple[str, ...] = flag(
        (),
        metavar="GLOB",
        multiple=True,
        help="With --samples naming a prefix or directory: only the files whose path under it matches GLOB "
        "(* matches / too; repeatable).",
    )
    exclude: tuple[str, ...] = flag(
        (),
        metavar="GLOB",
        multiple=True,
        help="With --samples naming a prefix or directory: leave out the files whose path under it matches GLOB "
        "(* matches / too; repeatable).",
    )
    create_dataset: bool = True  # not a flag: decided by looking at the dataset

    @property
    def resources(self) -> Resources:
        return Resources(self.vcpus, self.memory)

    @property
    def store_threads(self) -> int:
        return self.threads or self.vcpus

    def conflicts(self) -> list[str]:
        """Options that say the opposite of each other."""
        found = memory_conflicts(self.memory, self.max_memory)
        if self.replace and self.skip_existing:
            found.append("--replace and --skip-existing say the opposite: give one of them")
        if self.replace and self.register:
            found.append(
                "--replace needs tiledbvcf delete, which legacy (v2/v3, --register) datasets do not have: delete "
                "the samples by other means, or leave --replace out"
            )
        return found


@dataclass(frozen=True)
class ExportOptions:
    dataset_uri: Location = flag(
        metavar="URI", names=("--array", "--dataset-uri"), required=True, parse=parse_dataset_uri,
        help="S3 URI of TileDB array to read from.",
    )  # fmt: skip
    dest_s3: Location = flag(
        metavar="URI", required=True, parse=parse_prefix, help="S3 URI where exported BCFs will be stored."
    )
    samples: Location = flag(
        metavar="URI",
        required=True,
        parse=parse_object,
        help="S3 URI of file containing a list of sample names (one per line) to export.",
    )
    bed: Location = flag(
        metavar="URI", required=True, parse=parse_object, help="S3 URI of BED file containing sample regions to export."
    )
    # Not given (None): the destination's bucket, or locally the destination itself (``completed``).
    metadata_s3: Location = flag(
        metavar="NAME",
        parse=parse_metadata_location,
        help="Bucket name or s3://bucket/prefix for the run record (default: the --dest-s3 bucket).",
    )
    num_jobs: int = flag(
        1,
        metavar="N",
        low=1,
        help="Number of jobs to submit for export. Each job will be responsible for exporting "
        "nsamples/njobs samples from the array.",
    )
    retries: int = retries_flag()
    output_format: str = flag(
        "b",
        choices=EXPORT_FORMATS,
        help="b: compressed BCF, u: uncompressed BCF, z: compressed VCF, v: VCF (one file per sample, or one "
        "combined file per job with --merge); t: one TSV table per job of the --tsv-fields of its samples.",
    )
    tsv_fields: tuple[str, ...] = flag(
        (),
        metavar="FIELDS",
        check=parse_tsv_fields,
        help="With --output-format t: the table's columns, comma-separated: SAMPLE, ID, REF, ALT, QUAL, POS, CHR, "
        "FILTER, I:<info field>, F:<format field>, Q:POS, Q:END, Q:LINE (the query region's start, end, BED line).",
    )
    merge: bool = flag(
        False,
        help="One combined multi-sample file per job (BCF/VCF) instead of one per sample: every job exports all the "
        "samples, the jobs splitting the BED's intervals (at most one job per interval). Not with -O t.",
    )
    index: str = flag(
        "csi",
        choices=INDEX_FORMATS,
        help="The index made beside each exported file: csi (BCF or compressed VCF), tbi (compressed VCF only) "
        "or none. Uncompressed output (u, v) cannot be indexed.",
    )
    tiledb_config: str | None = tiledb_config_flag()
    vcpus: int = flag(4, metavar="N", low=1, help="vCPUs of each export job.")
    memory: int = flag(15000, metavar="MIB", low=4, help="Memory (MiB) of each export job.")
    max_memory: int = max_memory_flag()
    scratch_path: str | None = scratch_path_flag(  # None: the executor's default
        "Existing directory inside the container where files are written before upload."
    )
    legacy: bool = False  # not a flag: a legacy (v2/v3) dataset, as read from the dataset; its export takes no threads

    @property
    def resources(self) -> Resources:
        return Resources(self.vcpus, self.memory)

    @property
    def combined(self) -> bool:
        """One file per job holding several samples (--merge, or a TSV table), not one file per sample."""
        return self.merge or self.output_format == "t"

    def conflicts(self) -> list[str]:
        """Options that go only with others, or not with them."""
        found = memory_conflicts(self.memory, self.max_memory)
        if self.output_format == "t" and self.tsv_fields == ():
            found.append("--output-format t needs --tsv-fields: name the table's columns, e.g. --tsv-fields "
                         "SAMPLE,CHR,POS,REF,ALT,F:GT")  # fmt: skip
        if self.tsv_fields and self.output_format != "t":
            found.append(f"--tsv-fields goes with --output-format t only, not {self.output_format}: add "
                         "--output-format t, or leave --tsv-fields out")  # fmt: skip
        if self.merge and self.output_format == "t":
            found.append("--merge combines BCF/VCF files: -O t already writes one table per job of its samples; "
                         "leave --merge out, or choose --output-format b, u, z or v")  # fmt: skip
        return found

    def completed(self) -> ExportOptions:
        """The options with the run record's place, where --metadata-s3 was not given."""
        if self.metadata_s3 is not None:
            return self
        dest = self.dest_s3
        return dataclasses.replace(self, metadata_s3=dest if isinstance(dest, LocalPath) else S3Uri(dest.bucket))


EXPORT_ATTRIBUTES_REFUSED = (
    "--attributes: tiledbvcf export cannot restrict the INFO/FORMAT fields of a BCF/VCF, so the "
    "files would hold every field anyway: leave --attributes out (bcftools annotate -x trims fields)"
)


def refuse_export_attributes(value: str | None) -> None:
    if value is not None:
        raise InputError(EXPORT_ATTRIBUTES_REFUSED)


@dataclass(frozen=True)
class ExportRefusals:
    """Options the spec gives batch-export.py that today's tiledbvcf cannot honour: refused when given."""

    attributes: None = flag(
        None,
        metavar="CSV",
        check=refuse_export_attributes,
        help="Comma-separated list of BCF info and/or format field names that should be included in the "
        "exported BCFs. Today's tiledbvcf cannot restrict BCF fields, so this is refused; see README.",
    )
