"""The dataset itself: which samples it holds (and, for an export, its contigs), read with TileDB-Py, and where
its runs register.

The dataset is the truth; the run records are notes about it. A v4 dataset (tiledbvcf 0.7 and
later) keeps one VCF header per sample in ``<dataset>/metadata/vcf_headers``, a sparse array whose
``sample`` dimension is the sample's name: reading that dimension alone lists the samples (a few
ms locally, a few requests on S3). Its ``header`` attribute is the sample's VCF header text, with
the ``##contig`` lines of its reference. TileDB-Py reads it with the same credentials, region and
endpoint as the rest of the run. Anything else (a legacy v2/v3 dataset, a refused request,
TileDB-Py missing) gives a view that says why it could not be read, and the callers fall back to
the run records with a warning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .aws import session
from .commands import COMPUTE_THREADS, IO_THREADS
from .storage import LocalPath, Location, S3Uri

HEADERS_ARRAY = "metadata/vcf_headers"
REGISTRY_SUFFIX = ".tiledbvcf-batch"  # the dataset's run registry, beside it: s3://b/ds -> s3://b/ds.tiledbvcf-batch/
# TileDB's S3 client waits minutes for an endpoint that does not answer; a preflight should not.
TILEDB_TIMEOUTS = {"vfs.s3.connect_timeout_ms": "5000", "vfs.s3.connect_max_tries": "3",
                   "vfs.s3.request_timeout_ms": "30000"}  # fmt: skip
# A dataset ingested with the defaults has one vcf_headers fragment per 10 samples, each a few small
# requests: TileDB's default thread pools (the host's cores) leave a 2-core client waiting on S3 one
# request at a time. 32 of each made 200 fragments 7x faster (bench/dataset.py, README: Benchmarks).
READ_CONCURRENCY = {COMPUTE_THREADS: "32", IO_THREADS: "32"}
# Whose headers tell the dataset's contigs: a cohort shares its reference, so a few samples spread over the
# names (batches ingested from different places among them) will do. All of them would not: a GRCh38 header
# lists thousands of contigs (about 200 KB), and a dataset may hold 100,000 samples.
CONTIG_HEADERS = 8
CONTIG_RE = re.compile(r"^##contig=<(?:[^>]*?,)?ID=([^,>]+)", re.MULTILINE)


@dataclass(frozen=True)
class DatasetAccess:
    """How TileDB reaches S3 for this run: what boto3 resolved for the run's own requests."""

    region: str
    endpoint: str | None = None  # an S3-compatible endpoint (AWS_ENDPOINT_URL), None for AWS itself
    key_id: str | None = None
    secret: str | None = None
    token: str | None = None
    tiledb_config: str | None = None  # the run's --tiledb-config, applied last

    def config(self) -> dict[str, str]:
        config = {"vfs.s3.region": self.region, **TILEDB_TIMEOUTS, **READ_CONCURRENCY}
        if self.endpoint:
            scheme, _, host = self.endpoint.partition("://")
            config |= {"vfs.s3.endpoint_override": host.rstrip("/"), "vfs.s3.scheme": scheme,
                       "vfs.s3.use_virtual_addressing": "false"}  # fmt: skip
        if self.key_id and self.secret:
            config |= {"vfs.s3.aws_access_key_id": self.key_id, "vfs.s3.aws_secret_access_key": self.secret}
            if self.token:
                config["vfs.s3.aws_session_token"] = self.token
        for item in (self.tiledb_config or "").split(","):
            key, sep, value = item.partition("=")
            if sep:
                config[key.strip()] = value.strip()
        return config


INGEST_FALLBACK = (
    "only the records of earlier runs tell which samples it holds (a sample stored by other means would be stored "
    "again)"
)


@dataclass(frozen=True)
class DatasetView:
    """What the dataset holds, as read just now; ``samples`` is None when it could not be read (``problem``)."""

    uri: str
    samples: frozenset[str] | None
    problem: str | None = None
    # The ##contig IDs of a few samples' headers (see CONTIG_HEADERS), when asked for; None: not asked, or
    # those headers list none (a VCF may have no ##contig lines): the contigs are then unknown, not "none".
    contigs: frozenset[str] | None = None
    legacy: bool = False  # a v2/v3 dataset (tiledbvcf 0.6 and earlier): its names are not read, its CLI is older

    @property
    def readable(self) -> bool:
        return self.samples is not None

    def holding(self, names: list[str]) -> list[str]:
        """Those of ``names`` the dataset holds (none when it could not be read)."""
        return [name for name in names if self.samples is not None and name in self.samples]

    def warning(self, consequence: str = INGEST_FALLBACK) -> str:
        return f"WARNING: cannot read the samples of dataset {self.uri} ({self.problem}): {consequence}"


class DatasetReader(Protocol):
    """Reads a dataset's view: its samples, and with ``contigs`` the contigs of its headers too."""

    def __call__(self, dataset: Location, *, contigs: bool = False) -> DatasetView: ...


def read_samples(uri: str, access: DatasetAccess, *, contigs: bool = False) -> DatasetView:
    """The samples of the dataset at ``uri`` (which exists), and with ``contigs`` its contigs; or why not."""
    try:
        import tiledb  # here: it takes a fifth of a second to import, and not every command reads a dataset
    except ImportError:
        return DatasetView(uri, None, "TileDB-Py is not installed: pip install -r requirements.txt")
    try:
        ctx = tiledb.Ctx(tiledb.Config(access.config()))
        with tiledb.open(f"{uri.rstrip('/')}/{HEADERS_ARRAY}", ctx=ctx) as array:
            dimension = array.schema.domain.dim(0)
            if dimension.name != "sample" or dimension.dtype.kind not in "SU":
                return DatasetView(uri, None, "a legacy v2/v3 dataset: its samples are numbered, not named",
                                   legacy=True)  # fmt: skip
            found = array.query(dims=["sample"], attrs=[])[:]["sample"]
            view = DatasetView(uri, frozenset(name.decode("utf-8") if isinstance(name, bytes) else str(name)
                                              for name in found))  # fmt: skip
            if contigs and view.samples:
                view = replace(view, contigs=header_contigs(array, spread(sorted(view.samples), CONTIG_HEADERS)))
    except tiledb.TileDBError as error:
        return DatasetView(uri, None, f"TileDB: {first_line(str(error))}")
    return view


def spread(names: Sequence[str], count: int) -> list[str]:
    """Up to ``count`` of ``names``, evenly spaced, the first and the last among them."""
    if len(names) <= count:
        return list(names)
    return [names[round(i * (len(names) - 1) / (count - 1))] for i in range(count)]


def header_contigs(array: Any, names: list[str]) -> frozenset[str] | None:
    """The ##contig IDs of the headers of ``names`` (an open vcf_headers array); None if they list none."""
    headers = array.query(attrs=["header"]).multi_index[names]["header"]
    found = frozenset(
        contig
        for header in headers
        for contig in CONTIG_RE.findall(header.decode("utf-8", "replace") if isinstance(header, bytes) else header)
    )
    return found or None


def first_line(text: str, width: int = 300) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no message"
    return line if len(line) <= width else line[: width - 3] + "..."


def access_for(s3: Any, profile: str | None, region: str, tiledb_config: str | None) -> DatasetAccess:
    """TileDB's way to S3: the endpoint of the run's S3 client, the credentials of its session (--profile, SSO...)."""
    endpoint = str(s3.meta.endpoint_url)
    custom = None if endpoint.rstrip("/").endswith(".amazonaws.com") else endpoint
    credentials = session(profile).get_credentials()
    frozen = credentials.get_frozen_credentials() if credentials is not None else None
    if frozen is None:
        return DatasetAccess(region, custom, tiledb_config=tiledb_config)
    return DatasetAccess(region, custom, frozen.access_key, frozen.secret_key, frozen.token, tiledb_config)


def reader_for(s3: Any, profile: str | None, region: str, tiledb_config: str | None) -> DatasetReader:
    """A reader that makes its access (and so touches AWS) only when a dataset on S3 is read."""

    def read(dataset: Location, *, contigs: bool = False) -> DatasetView:
        if isinstance(dataset, LocalPath):
            return read_samples(str(dataset), DatasetAccess(region, tiledb_config=tiledb_config), contigs=contigs)
        return read_samples(str(dataset), access_for(s3, profile, region, tiledb_config), contigs=contigs)

    return read


def registry_of(dataset: Location) -> Location:
    """Where the runs of a dataset register, whatever their --metadata-s3: beside the dataset, never inside it."""
    key = dataset.key.rstrip("/") + REGISTRY_SUFFIX
    return (LocalPath(key) if isinstance(dataset, LocalPath) else S3Uri(dataset.bucket, key)).as_prefix()


def dataset_identity(location: Location) -> str:
    """One spelling per dataset: a local path resolved (symlinks, ``..``), an S3 key without trailing slashes."""
    if isinstance(location, LocalPath):
        return os.path.realpath(location.key) or "/"
    return str(S3Uri(location.bucket, location.key.rstrip("/")))
