"""The BED as people have it, read and cleaned (tiledbvcf_batch/bed.py): what the jobs get, and every refusal."""

from __future__ import annotations

import gzip

import pytest

from conftest import DATASET
from tiledbvcf_batch.bed import SHOWN_LINES, Interval, contig_check, read_bed
from tiledbvcf_batch.dataset import DatasetView, spread
from tiledbvcf_batch.prepare_export import contigs_not_in

SOURCE = "s3://my-bucketname/panel.bed"
UCSC = (
    b"browser position chr1:1-1000\n"
    b'track name="panel" description="a gene panel"\n'
    b"# exons, 0-based\n"
    b"\n"
    b"chr1 100 200 GENE1 0 +\n"
    b"chr1\t300   400\n"
    b"  chr2\t0\t50\t\tGENE2\r\n"
)
CLEAN = ("chr1\t100\t200", "chr1\t300\t400", "chr2\t0\t50")


def test_a_ucsc_bed_is_cleaned_to_three_tab_separated_columns_in_the_file_order():
    bed = read_bed(UCSC, SOURCE)
    assert bed.problems == ()
    assert bed.lines() == CLEAN
    assert bed.intervals[0] == Interval("chr1", 100, 200, 5)  # its line in the user's file
    assert bed.dropped_text() == "1 browser line, 1 track line, 1 comment line, 1 blank line"
    assert bed.contigs() == ["chr1", "chr2"]


def test_a_clean_bed_drops_nothing_and_its_final_newline_is_no_blank_line():
    bed = read_bed(b"chr1\t0\t10\nchr2\t5\t6\n", SOURCE)
    assert bed.lines() == ("chr1\t0\t10", "chr2\t5\t6") and bed.dropped == () and bed.problems == ()
    assert read_bed(b"chr1\t0\t10", SOURCE).lines() == ("chr1\t0\t10",)  # no final newline


def test_gzip_and_bgzip_compressed_beds_are_read_whatever_their_name():
    assert read_bed(gzip.compress(UCSC), SOURCE).lines() == CLEAN
    half = len(UCSC) // 2  # bgzip writes a series of gzip members
    assert read_bed(gzip.compress(UCSC[:half]) + gzip.compress(UCSC[half:]), SOURCE).lines() == CLEAN


def test_a_byte_order_mark_does_not_stick_to_the_first_contig():
    assert read_bed("\ufeffchr1\t0\t10\n".encode(), SOURCE).lines() == ("chr1\t0\t10",)


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"chr1\t100\n", "line 1 'chr1\\t100': 2 columns, a BED line needs 3 (chrom, start, end)"),
        (b"chr1\n", "line 1 'chr1': 1 column, a BED line needs 3"),
        (b"chrom\tstart\tend\n", "line 1 'chrom\\tstart\\tend': start 'start' is not a whole number: columns 2 and 3"),
        (b"chr1 1,000 2000\n", "line 1 'chr1 1,000 2000': start '1,000' is not a whole number"),
        (b"chr1 10 2e3\n", "line 1 'chr1 10 2e3': end '2e3' is not a whole number"),
        (b"chr1\t-5\t10\n", "line 1 'chr1\\t-5\\t10': start -5 is negative: BED coordinates start at 0"),
        (
            b"chr1\t300\t300\n",
            "line 1 'chr1\\t300\\t300': the interval is empty (start = end = 300; tiledbvcf would "
            "export every record of each sample): BED ends are exclusive, the base at 0-based "
            "position 300 is 'chr1 300 301'",
        ),
        (
            b"chr1\t500\t400\n",
            "line 1 'chr1\\t500\\t400': start 500 is after end 400 (tiledbvcf would export every "
            "record of each sample): swap them, or fix the line",
        ),
    ],
)
def test_each_defect_is_named_with_its_line_number_and_text(body, problem):
    bed = read_bed(body, SOURCE)
    assert len(bed.problems) == 1 and bed.intervals == ()
    assert bed.problems[0].startswith(f"--bed {SOURCE} {problem}")


def test_every_bad_line_is_named_at_once_and_good_lines_do_not_hide_them():
    bed = read_bed(b"track name=x\nchr1 0 10\nchr1 5\nchr2 9 9\nchr3 0 100\nchr3 7 3\n", SOURCE)
    assert [problem.split("': ")[0] for problem in bed.problems] == [
        f"--bed {SOURCE} line 3 'chr1 5",
        f"--bed {SOURCE} line 4 'chr2 9 9",
        f"--bed {SOURCE} line 6 'chr3 7 3",
    ]


def test_a_file_of_another_format_names_its_first_bad_lines_and_counts_the_rest():
    bed = read_bed(b"".join(b"not a bed line %d here\n" % i for i in range(SHOWN_LINES + 30)), SOURCE)
    assert len(bed.problems) == SHOWN_LINES + 1
    assert bed.problems[0].startswith(f"--bed {SOURCE} line 1 'not a bed line 0 here': start 'a' is not a whole")
    assert bed.problems[-1] == (
        f"--bed {SOURCE}: 30 more bad lines like these: is it a BED file (chrom, start, end on each line)?"
    )


def test_a_long_bad_line_is_shown_cut():
    (problem,) = read_bed(b"chr1 x " + b"y" * 500 + b"\n", SOURCE).problems
    assert f"line 1 'chr1 x {'y' * 50}...': start 'x'" in problem


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"", "holds no interval: tiledbvcf fails on an empty BED; give at least one 'chrom start end' line"),
        (b"\n\n", "holds no interval (dropped: 2 blank lines): tiledbvcf fails on an empty BED"),
        (b"track name=x\n# nothing yet\n", "holds no interval (dropped: 1 track line, 1 comment line)"),
        (gzip.compress(b""), "holds no interval: tiledbvcf fails on an empty BED"),
    ],
)
def test_an_empty_bed_is_refused(body, problem):
    (found,) = read_bed(body, SOURCE).problems
    assert found.startswith(f"--bed {SOURCE} {problem}")


def test_a_bed_that_is_not_text_or_not_whole_is_refused_in_one_line():
    (binary,) = read_bed(b"BCF\x02\x02\xff\xfe\x00", SOURCE).problems
    assert binary == (
        f"--bed {SOURCE} is not a text file (byte 5 is not UTF-8 text): give a BED file, one 'chrom start end' "
        "line per region"
    )
    (cut,) = read_bed(gzip.compress(UCSC)[:-12], SOURCE).problems
    assert cut.startswith(f"--bed {SOURCE} is gzip-compressed but cannot be decompressed (")
    assert cut.endswith("): compress it again")


def test_contigs_the_dataset_does_not_know_are_all_named_a_warning_unless_it_knows_none():
    bed = read_bed(b"chr1 0 10\nchrUn_x 0 5\nchr2 0 10\nHLA-A 3 4\nchrUn_x 9 12\n", SOURCE)
    known = {"chr1", "chr2", "chr3"}
    assert contig_check(read_bed(b"chr1 0 10\nchr3 4 5\n", SOURCE), known, DATASET) == ([], [])
    problems, warnings = contig_check(bed, known, DATASET)
    assert problems == [] and warnings == [
        f"WARNING: --bed {SOURCE}: 2 of its 4 contigs are not in dataset {DATASET} (the contigs of its samples' VCF "
        "headers): chrUn_x, HLA-A; 3 of its 5 intervals are on them and export nothing"
    ]
    problems, warnings = contig_check(read_bed(b"1 0 10\n2 0 10\nMT 0 5\n", SOURCE), known, DATASET)
    assert warnings == [] and problems == [
        f"--bed {SOURCE}: none of its contigs is in dataset {DATASET} (the contigs of its samples' VCF headers): "
        "1, 2, MT; the export would find no record. The dataset spells them chr1, chr2: rename them"
    ]
    (other,), _ = contig_check(read_bed(b"scaffold_9 0 10\n", SOURCE), known, DATASET)
    assert other.endswith("no record. Its contigs are chr1, chr2, chr3: fix the contig names")


def test_contigs_are_not_checked_where_the_dataset_cannot_tell_them():
    bed = read_bed(b"chrZ 0 10\n", SOURCE)
    unreadable = DatasetView(DATASET, None, "TileDB-Py is not installed")  # names_not_in warns about it
    assert contigs_not_in(unreadable, bed) == ([], [])
    assert contigs_not_in(DatasetView(DATASET, frozenset(), contigs=frozenset({"chr1"})), bed) == ([], [])  # empty
    assert contigs_not_in(DatasetView(DATASET, frozenset({"S1"})), bed) == ([], [
        f"WARNING: the VCF headers of dataset {DATASET} list no contigs (no ##contig line): the contigs of --bed "
        f"{SOURCE} are not checked before the jobs run"
    ])  # fmt: skip
    (problem,), _ = contigs_not_in(DatasetView(DATASET, frozenset({"S1"}), contigs=frozenset({"chr1"})), bed)
    assert problem.startswith(f"--bed {SOURCE}: none of its contigs is in dataset {DATASET}")


def test_the_headers_read_for_contigs_are_spread_over_the_samples():
    names = [f"S{i:03d}" for i in range(100)]
    assert spread(names, 8) == ["S000", "S014", "S028", "S042", "S057", "S071", "S085", "S099"]
    assert spread(names[:3], 8) == names[:3]
