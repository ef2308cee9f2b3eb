"""PURE: a BED file as people have them, checked and cleaned into what tiledbvcf reads. No I/O.

tiledbvcf's own BED parser (0.40) fails every job on UCSC ``track``/``browser`` lines, on columns
separated by spaces and on an empty file, and takes a zero-length or reversed interval for "the whole
sample" (every record exported, exit 0). So the BED is read before anything is submitted: header,
comment and blank lines are dropped, any whitespace separates columns, each interval is checked, and
the jobs read a cleaned copy: one ``chrom<TAB>start<TAB>end`` line per interval, in the file's order.
Columns after the third (name, score, strand, ...) are dropped: tiledbvcf reads regions only.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"  # gzip and bgzip alike: a .bed.gz is read whatever its name
HEADER_WORDS = ("track", "browser")  # UCSC's header lines
SHOWN_LINES = 20  # bad lines named one by one: a file of another format has thousands
SHOWN_TEXT = 60  # characters of a bad line quoted in its problem


@dataclass(frozen=True, slots=True)  # slots: a BED of a million regions is a million of these
class Interval:
    chrom: str
    start: int  # 0-based, inclusive
    end: int  # exclusive
    line: int  # where it is in the original file, from 1

    def text(self) -> str:
        return f"{self.chrom}\t{self.start}\t{self.end}"


@dataclass(frozen=True)
class Bed:
    """A BED file read: its intervals, the lines dropped (by kind), and every problem (none: it can be used)."""

    source: str  # where it was read from, as the user named it
    intervals: tuple[Interval, ...]
    dropped: tuple[tuple[str, int], ...] = ()  # ("track line", 1), ("blank line", 3), ...
    problems: tuple[str, ...] = ()

    def lines(self) -> tuple[str, ...]:
        """The cleaned copy's lines."""
        return tuple(interval.text() for interval in self.intervals)

    def contigs(self) -> list[str]:
        """Its contigs, each once, in the order they first appear."""
        return list(dict.fromkeys(interval.chrom for interval in self.intervals))

    def dropped_text(self) -> str:
        """What cleaning removed, e.g. "1 track line, 3 blank lines" ("" if nothing)."""
        return ", ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in self.dropped)


def read_bed(data: bytes, source: str) -> Bed:
    """The BED in ``data`` (plain or gzip-compressed), its intervals checked; ``source`` names it in problems."""
    text, problem = decoded(data, source)
    if text is None:
        return Bed(source, (), problems=(problem,))
    return parse_bed(text, source)


def decoded(data: bytes, source: str) -> tuple[str | None, str]:
    """The file's text (gzip undone, a byte-order mark dropped), or None and why it cannot be read."""
    if data.startswith(GZIP_MAGIC):
        try:
            data = gzip.decompress(data)  # every member: a bgzipped file is a series of gzip members
        except (OSError, EOFError, zlib.error) as error:
            return None, f"--bed {source} is gzip-compressed but cannot be decompressed ({error}): compress it again"
    try:
        return data.decode("utf-8-sig"), ""  # -sig: a byte-order mark (Windows editors) would stick to the contig
    except UnicodeDecodeError as error:
        return None, (
            f"--bed {source} is not a text file (byte {error.start} is not UTF-8 text): give a BED file, "
            "one 'chrom start end' line per region"
        )


def parse_bed(text: str, source: str) -> Bed:
    """Every line of ``text``: dropped (header, comment, blank), an interval, or a problem."""
    intervals: list[Interval] = []
    dropped: Counter[str] = Counter()
    bad: list[str] = []
    # split("\n"), not splitlines(): the line numbers must be those an editor shows (no form feeds as breaks).
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line: no blank line after it
    for number, line in enumerate(lines, start=1):
        words = line.split()  # spaces, tabs, a Windows \r: all whitespace
        kind = dropped_kind(words)
        if kind is not None:
            dropped[kind] += 1
            continue
        interval = parse_interval(words, number)
        if isinstance(interval, Interval):
            intervals.append(interval)
        else:
            bad.append(f"--bed {source} line {number} {quoted(line)}: {interval}")
    kinds = tuple(dropped.items())
    problems = shown(bad, source)
    if not intervals and not problems:
        left = f" (dropped: {Bed(source, (), kinds).dropped_text()})" if kinds else ""
        problems = [
            f"--bed {source} holds no interval{left}: tiledbvcf fails on an empty BED; give at least one "
            "'chrom start end' line"
        ]
    return Bed(source, tuple(intervals), kinds, tuple(problems))


def dropped_kind(words: list[str]) -> str | None:
    """What kind of line is dropped from the copy (None: an interval, or a bad line)."""
    if not words:
        return "blank line"
    if words[0].startswith("#"):
        return "comment line"
    if words[0] in HEADER_WORDS:
        return f"{words[0]} line"
    return None


def parse_interval(words: list[str], number: int) -> Interval | str:
    """The interval of one line, or what is wrong with it and how to fix it."""
    if len(words) >= 3 and whole(words[1]) and whole(words[2]) and int(words[1]) < int(words[2]):
        return Interval(words[0], int(words[1]), int(words[2]), number)  # the usual line, first: a BED has millions
    return line_problem(words)


def whole(value: str) -> bool:
    """A whole number >= 0 in ASCII digits (int() would also take "+5", "1_000" and other scripts' digits)."""
    return value.isascii() and value.isdigit()


def line_problem(words: list[str]) -> str:
    """What is wrong with a line that is no interval, and how to fix it."""
    if len(words) < 3:
        return (
            f"{len(words)} column{'s' if len(words) > 1 else ''}, a BED line needs 3 (chrom, start, end); "
            "a header line must start with #, track or browser"
        )
    chrom, start, end = words[:3]
    for name, value in (("start", start), ("end", end)):
        if value.startswith("-") and whole(value[1:]):
            return f"{name} {value} is negative: BED coordinates start at 0"
        if not whole(value):
            return (
                f"{name} {value!r} is not a whole number: columns 2 and 3 are 0-based positions; "
                "a header line must start with #, track or browser"
            )
    first, last = int(start), int(end)
    if first == last:
        return (
            f"the interval is empty (start = end = {first}; tiledbvcf would export every record of each sample): "
            f"BED ends are exclusive, the base at 0-based position {first} is '{chrom} {first} {first + 1}'"
        )
    return (
        f"start {first} is after end {last} (tiledbvcf would export every record of each sample): "
        "swap them, or fix the line"
    )


def quoted(line: str) -> str:
    line = line.rstrip("\r\n")
    return repr(line if len(line) <= SHOWN_TEXT else line[: SHOWN_TEXT - 3] + "...")


def shown(bad: list[str], source: str) -> list[str]:
    """Every bad line, one problem each, up to SHOWN_LINES; the rest counted in one more."""
    if len(bad) <= SHOWN_LINES:
        return bad
    rest = len(bad) - SHOWN_LINES
    return [
        *bad[:SHOWN_LINES],
        f"--bed {source}: {rest} more bad lines like these: is it a BED file (chrom, start, end on each line)?",
    ]


def contig_check(bed: Bed, known: Iterable[str], dataset: str) -> tuple[list[str], list[str]]:
    """The problem (no contig of the BED is known) or the warning (some are not), naming every unknown contig."""
    known = frozenset(known)
    contigs = bed.contigs()
    unknown = [contig for contig in contigs if contig not in known]
    if not unknown:
        return [], []
    where = f"in dataset {dataset} (the contigs of its samples' VCF headers)"
    if len(unknown) == len(contigs):
        return [
            f"--bed {bed.source}: none of its contigs is {where}: {', '.join(unknown)}; "
            f"the export would find no record. {spelling_hint(unknown, known)}"
        ], []
    missing = set(unknown)
    intervals = sum(interval.chrom in missing for interval in bed.intervals)
    return [], [
        f"WARNING: --bed {bed.source}: {len(unknown)} of its {len(contigs)} contigs are not {where}: "
        f"{', '.join(unknown)}; {intervals} of its {len(bed.intervals)} intervals are on them and export nothing"
    ]


def spelling_hint(unknown: list[str], known: frozenset[str]) -> str:
    """How to fix contig names that differ from the dataset's by a "chr" prefix (1 vs chr1), the usual mistake."""
    respelled = [contig[3:] if contig.startswith("chr") else f"chr{contig}" for contig in unknown]
    found = [contig for contig in respelled if contig in known]
    if found:
        return f"The dataset spells them {', '.join(found[:10])}{', ...' if len(found) > 10 else ''}: rename them"
    sample = ", ".join(sorted(known)[:10]) + (", ..." if len(known) > 10 else "")
    return f"Its contigs are {sample}: fix the contig names"
