"""What an export run delivers, as data: the run's delivery file, the manifest's rows, where they go. Pure.

The client writes the delivery file with the plan; each export job reads it and delivers
(``delivery.py``); the report reads the parts and the manifest back (``report.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .commands import EXPORT_SUFFIXES
from .storage import Location, parse_location

DELIVERY_FILE = "delivery.json"
DELIVERY_TOOLS = {"bcftools": "BCFTOOLS"}  # what an export job runs besides tiledbvcf, and the variable naming it
EXPORTED = "exported"
NO_RECORDS = "no records in the regions"
INDEXABLE_FORMATS = ("b", "z")  # BGZF-compressed: uncompressed BCF and VCF cannot be indexed
MANIFEST_COLUMNS = ("sample", "file", "bytes", "records", "md5", "index", "status")
COMBINED = "*"  # the sample column of a combined file's row (--merge, -O t): the file holds several samples
PARTS = "delivered/"  # beside the delivery file: one part of the manifest per job


@dataclass(frozen=True)
class DeliverySpec:
    """What every export job of a run needs to know beyond tiledbvcf's own arguments."""

    run_id: str
    jobs: int  # how many parts make the manifest complete
    output_format: str
    index: str  # csi, tbi or none
    manifest: str  # where the run's manifest goes (at the destination)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DeliverySpec:
        data = json.loads(text)
        return cls(str(data["run_id"]), int(data["jobs"]), str(data["output_format"]), str(data["index"]),
                   str(data["manifest"]))  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One requested sample in the manifest: its file and figures, or no file because it has no records there.

    A combined export's row is one of its files (``sample`` is COMBINED): ``file`` names it even when it has no
    record in the regions (then it was not written: no bytes, no MD5).
    """

    sample: str
    file: str = ""
    bytes: int = 0
    records: int = 0
    md5: str = ""
    index: str = ""
    status: str = EXPORTED


def combined_name(run_id: str, number: int, total: int, output_format: str) -> str:
    """The file of job ``number`` of ``total`` of a combined export: the run's id keeps runs to one place apart."""
    return f"{run_id}-part-{number:04d}-of-{total:04d}{EXPORT_SUFFIXES[output_format]}"


def manifest_location(dest: Location, run_id: str) -> Location:
    return dest.as_prefix().child(f"manifest-{run_id}.tsv")


def parts_location(delivery: Location) -> Location:
    """Where the jobs' parts of the manifest go: beside the delivery file."""
    return parse_location(str(delivery).rpartition("/")[0] + "/" + PARTS, "parts")


def index_suffix(output_format: str, index: str) -> str | None:
    return f".{index}" if index != "none" and output_format in INDEXABLE_FORMATS else None


def manifest_text(rows: Sequence[Row]) -> str:
    lines = ["\t".join(MANIFEST_COLUMNS)]
    for row in sorted(rows, key=lambda r: (r.sample, r.file)):
        lines.append("\t".join(str(getattr(row, column)) for column in MANIFEST_COLUMNS))
    return "\n".join(lines) + "\n"


def rows_of_manifest(text: str) -> list[Row]:
    """The rows of a manifest written by ``manifest_text``."""
    lines = [line.split("\t") for line in text.splitlines()[1:] if line]
    return [Row(sample, file, int(size), int(records), md5, index, status)
            for sample, file, size, records, md5, index, status in lines]  # fmt: skip


def rows_of_part(text: str) -> list[Row]:
    return [Row(**item) for item in json.loads(text)]


def part_text(rows: Sequence[Row]) -> str:
    return json.dumps([asdict(row) for row in rows])
