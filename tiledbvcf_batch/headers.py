"""The sample names in a VCF/BCF file's header, read from its first bytes (a local file, or ranged reads on S3).

No botocore here: the image's entrypoint reads headers with it, and imports botocore only when
a file is on S3 (``s3`` is then a boto3 client; for local files it is not used).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from .storage import CONTROL_CHARS, LocalPath, Location

HEADER_FIRST_READ = 64 * 1024
HEADER_MAX_READ = 8 * 1024 * 1024

# tiledbvcf exports a sample to <directory>/<name><suffix>, opened by htslib: the name must make one file name.
FILE_NAME_MAX = 255  # bytes: a file name on Linux (NAME_MAX)
LONGEST_SUFFIX = ".vcf.gz.csi"  # the longest a name is given: a compressed VCF (-O z) and its index beside it
HTS_IDX_DELIM = "##idx##"  # htslib opens "a##idx##b" as the file "a" (with the index "b"), for writing too


def file_name_problem(name: str) -> str | None:
    """Why tiledbvcf cannot export sample ``name`` as a file of its own, or None if it can.

    Measured with tiledbvcf 0.40.3: "a/b" fails the export (its file would be in a directory "a" that does not
    exist), "x##idx##y" exits 0 having written a file "x", and a name of 250 bytes fails (with ".vcf.gz" it is no
    file name). "." and ".." are fine: the suffix makes them the files "..bcf" and "...bcf".
    """
    if "/" in name:
        return "contains '/': its file would be in a directory that does not exist, and the export fails"
    if CONTROL_CHARS.search(name):
        return "contains a control character, which no names file can give tiledbvcf"
    if HTS_IDX_DELIM in name:
        cut = name.split(HTS_IDX_DELIM)[0]
        return f"contains '{HTS_IDX_DELIM}', where htslib cuts a file name: the export would write a file {cut!r}"
    size = len(name.encode("utf-8"))
    if size > FILE_NAME_MAX - len(LONGEST_SUFFIX):
        return (
            f"is {size} bytes long: with '{LONGEST_SUFFIX}' its file name would pass the {FILE_NAME_MAX} bytes a file "
            "name may have"
        )
    return None


def bgzf_members(data: bytes) -> Iterator[bytes]:
    """The decompressed gzip members at the start of ``data`` (BGZF is a series of them), one at a time.

    One at a time because the header is usually in the first member or two: a check of 100,000
    headers should not inflate the records that follow them.
    """
    view = memoryview(data)
    while view:
        inflater = zlib.decompressobj(wbits=31)
        try:
            text = inflater.decompress(view)
        except zlib.error:
            return
        if not inflater.eof:
            yield text + inflater.flush()
            return
        yield text
        view = view[len(view) - len(inflater.unused_data) :]


def names_in_lines(lines: list[str]) -> list[str] | None:
    """The sample names of the #CHROM line among a header's ``lines``; None if it is not among them yet."""
    for line in lines:
        if line.startswith("#CHROM"):
            return [name for name in line.rstrip("\r").split("\t")[9:] if name]
        if not line.startswith("##"):
            raise ValueError("has no #CHROM header line before its first record")
    return None


def bcf_names(text: bytearray) -> list[str] | None:
    """A BCF's header is its declared length of text: read once it is all there."""
    if len(text) < 9 or len(text) < 9 + struct.unpack("<I", text[5:9])[0]:
        return None
    length = struct.unpack("<I", text[5:9])[0]
    return names_in_lines(bytes(text[9 : 9 + length]).rstrip(b"\x00").decode("utf-8", "replace").split("\n"))


NOT_BGZIP = "is not bgzip-compressed (tiledbvcf needs bgzipped, indexed VCF/BCF)"
PLAIN_GZIP = "is compressed with plain gzip, not BGZF: tiledbvcf needs it recompressed with bgzip"
COMPRESSION_BYTES = 14  # what compression_problem reads
# Said after each problem the repair stage repairs, when it was not asked for.
REPAIR_HINT = " (or pass --repair-to URI: the run then repairs it there, never in place, before ingesting it)"


def compression_problem(data: bytes) -> str | None:
    """Why a file starting with ``data`` is not BGZF (which bcftools can index), or None if it is."""
    if not data.startswith(b"\x1f\x8b"):
        return NOT_BGZIP
    # BGZF is gzip whose every member carries the extra subfield "BC" (its block size); plain gzip has none.
    if len(data) >= COMPRESSION_BYTES and not (data[3] & 4 and data[12:14] == b"BC"):
        return PLAIN_GZIP
    return None


INDEX_SUFFIXES = (".csi", ".tbi")


def index_file_problem(uri: str) -> str | None:
    """An index listed as a sample (a common slip when a folder's files are listed): None for a sample."""
    if uri.endswith(INDEX_SUFFIXES):
        return (
            f"sample {uri} is an index file ({uri.rpartition('.')[2]}), not a VCF/BCF: remove it from the "
            "samples file (an index beside its sample, <sample>.csi or .tbi, is found without being listed)"
        )
    return None


def new_header_problems(header_problems: list[str], sample_problems: list[str]) -> list[str]:
    """The header problems not already said: a file without index that is not BGZF is told so with its index."""
    told = {problem.split(" has no index")[0] for problem in sample_problems if " has no index" in problem}
    return [
        problem
        for problem in header_problems
        if not any(
            problem.endswith(" " + what + REPAIR_HINT) and problem[: -len(what + REPAIR_HINT) - 1] in told
            for what in (NOT_BGZIP, PLAIN_GZIP)
        )
    ]


def header_sample_names(data: bytes) -> list[str] | None:
    """Sample names from the start of a bgzipped VCF or BCF; None while the header is incomplete."""
    problem = compression_problem(data)
    if problem is not None:
        raise ValueError(problem)
    text = bytearray()
    scanned = 0  # a VCF's complete lines before this offset are read: a long header is not read again a member
    for member in bgzf_members(data):
        text += member
        if text.startswith(b"BCF\x02"):
            names = bcf_names(text)
        else:
            end = text.rfind(b"\n") + 1  # complete lines only (a UTF-8 character never holds a newline byte)
            names = names_in_lines(bytes(text[scanned:end]).decode("utf-8", "replace").split("\n")[:-1])
            scanned = end
        if names is not None:
            return names
    return None


def read_head(s3: Any, uri: Location, size: int) -> bytes:
    if isinstance(uri, LocalPath):
        with open(uri.key, "rb") as handle:
            return handle.read(size)
    return s3.get_object(Bucket=uri.bucket, Key=uri.key, Range=f"bytes=0-{size - 1}")["Body"].read()


def any_header_sample_names(data: bytes) -> list[str] | None:
    """Sample names from the start of a VCF or BCF however it is compressed (BGZF, plain gzip, not at all): what
    the repair stage (``--repair-to``) reads. None while the header is incomplete."""
    text = b"".join(bgzf_members(data)) if data.startswith(b"\x1f\x8b") else data
    if text.startswith(b"BCF\x02"):
        return bcf_names(bytearray(text))
    end = text.rfind(b"\n") + 1
    return names_in_lines(text[:end].decode("utf-8", "replace").split("\n")[:-1])


def read_header_sample_names(
    s3: Any, uri: Location, parse: Callable[[bytes], list[str] | None] = header_sample_names
) -> list[str]:
    """Range-read the first bytes of a sample file until its header is complete (as ``parse`` reads it)."""
    size = HEADER_FIRST_READ
    while True:
        data = read_head(s3, uri, size)
        names = parse(data)
        if names is not None:
            return names
        if len(data) < size or size >= HEADER_MAX_READ:
            raise ValueError(f"has no complete header in its first {len(data)} bytes")
        size *= 4
