"""What the repair stage (``--repair-to``) repairs, decided before anything is spent: each input's header read
(however it is compressed), so that the repaired samples' names and files are known when the run is planned.

Reads only. The preflight's problems that a repair mends (a missing index) are dropped; the others stay. Also:
where a run's repaired files go, and which repairs a run needs once its samples are decided.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .aws import aws_message
from .headercheck import LOCAL_WORKERS, readable, unexportable
from .headers import (
    COMPRESSION_BYTES,
    any_header_sample_names,
    compression_problem,
    file_name_problem,
    read_header_sample_names,
)
from .inputs import Sample
from .options import IngestOptions
from .plan import IngestBatch
from .record import load_or_fail, record_uri_of, run_prefix_for
from .repair import INDEX, RECOMPRESS, SPLIT, Repair, repair_of, repairs_note, split_problem
from .storage import Location, Storage, parse_location

NO_INDEX = " has no index"  # how the preflight says a sample has none (preflight.check_samples)


@dataclass(frozen=True)
class Repairs:
    """The inputs' repairs, the samples the ingestion reads (repaired or as given), their names, what is wrong."""

    repairs: tuple[Repair, ...]
    samples: tuple[Sample, ...]
    names: dict[str, str]  # each sample the ingestion reads -> its name
    problems: tuple[str, ...]
    sizes: dict[str, int]  # each repaired sample -> its input's bytes (a split input's shared out), for --balance


def unindexed(sample_problems: Sequence[str]) -> set[str]:
    """The samples the preflight found without an index."""
    return {problem[len("sample ") : problem.index(NO_INDEX)] for problem in sample_problems if NO_INDEX in problem}


def find_repairs(
    s3: Any, samples: Sequence[Sample], sizes: dict[str, int], sample_problems: Sequence[str], root: Location,
    scratch: bool,
) -> Repairs:  # fmt: skip
    """Each input read: repaired under ``root`` (``<repair-to>/<run id>/``) if it needs it, else ingested as given.

    ``scratch``: the store jobs download their samples (--scratch-size > 0): an index repair of an S3 sample then
    copies its data file too (see ``repair``).
    """
    missing = unindexed(sample_problems)
    problems: list[str] = []
    read = dict(read_all(s3, readable(samples, sizes)))
    repairs: list[Repair] = []
    ingested: list[Sample] = []
    first_file: dict[str, str] = {}
    for sample in samples:
        found = read.get(sample.uri)
        if found is None:  # missing, empty, an index file: the preflight said so
            continue
        if isinstance(found, str):
            problems.append(f"sample {sample.uri} {found}")
            continue
        compression, names = found
        kind = SPLIT if len(names) > 1 else RECOMPRESS if compression else INDEX if sample.uri in missing else None
        problem = name_problems(sample.uri, names, first_file)
        if kind == SPLIT and not problem and (cannot := split_problem(sample.uri, names)) is not None:
            problem = [cannot]
        if problem:
            problems += problem
        elif kind is None:
            ingested.append(sample)
        else:
            copy = scratch and sample.uri.startswith("s3://")
            repairs.append(repair_of(kind, sample.uri, names, root, copy))
            ingested += repairs[-1].samples()
    sources = {repair.source for repair in repairs}  # their missing index is no problem: it is made
    problems = [p for p in sample_problems if NO_INDEX not in p or problem_uri(p) not in sources] + problems
    names_of = {uri: name for name, uri in first_file.items()}
    shares: dict[str, int] = {}
    for repair in repairs:
        for output, repaired in zip(repair.outputs, repair.samples(), strict=True):
            names_of[repaired.uri] = output.name
            shares[repaired.uri] = sizes.get(repair.source, 0) // len(repair.outputs)
    return Repairs(tuple(repairs), tuple(ingested), names_of, tuple(problems), shares)


def problem_uri(problem: str) -> str | None:
    return problem[len("sample ") : problem.index(NO_INDEX)] if problem.startswith("sample ") else None


def name_problems(uri: str, names: Sequence[str], first_file: dict[str, str]) -> list[str]:
    """The header's names: at least one, each a file name, none in two inputs (``first_file``: name -> input)."""
    if not names:
        return [f"sample {uri} has no sample in its header: tiledbvcf ingests files of one sample"]
    problems = []
    for name in names:
        if (problem := file_name_problem(name)) is not None:
            problems.append(unexportable(uri, name, problem))
        elif name in first_file:
            problems.append(
                f"sample name {name} is in both {first_file[name]} and {uri}: remove one of them from the samples file"
            )
        else:
            first_file[name] = uri
    return problems


Header = tuple[str | None, list[str]] | str  # (compression problem, names), or why it cannot be read


def read_all(s3: Any, samples: Sequence[Sample], workers: int = 16) -> list[tuple[str, Header]]:
    """Every sample's compression and header names (threads: S3 reads wait on the network, local ones less)."""
    if not any(sample.uri.startswith("s3://") for sample in samples):
        workers = LOCAL_WORKERS

    def read(sample: Sample) -> tuple[str, Header]:
        first: list[bytes] = []  # the file's first bytes tell its compression

        def parse(data: bytes) -> list[str] | None:
            first.append(data[:COMPRESSION_BYTES])
            return any_header_sample_names(data)

        try:
            names = read_header_sample_names(s3, parse_location(sample.uri, "sample"), parse)
            return sample.uri, (compression_problem(first[0]), names)
        except ValueError as error:
            return sample.uri, str(error)
        except OSError as error:
            return sample.uri, f"cannot be read ({error.strerror})"
        except ClientError as error:
            return sample.uri, f"cannot be read ({aws_message(error)})"

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(read, samples))


def needed(
    repairs: Repairs | None, batches: list[IngestBatch], notes: list[str], unrepaired: frozenset[str] | None
) -> tuple[Repair, ...]:
    """The repairs of the samples the run ingests (none for an input whose samples are all skipped; a resumed run:
    those whose repair did not succeed, ``unrepaired``), said in ``notes``."""
    if repairs is None:
        return ()
    planned = {uri for batch in batches for share in batch.shares for uri in share.manifest.sample_uris()}
    kept = tuple(
        repair
        for repair in repairs.repairs
        if any(s.uri in planned for s in repair.samples()) and (unrepaired is None or repair.source in unrepaired)
    )
    notes.append(repairs_note(kept))
    return kept


def repair_root(opts: IngestOptions, run_id: str, resume: str | None, storage: Storage) -> Location | None:
    """Where the run's repaired files go (--repair-to): a folder of the run's own, never over another run's.

    A resumed run's go where the run it resumes put them (as its record says): the jobs it resumes name them.
    """
    if opts.repair_to is None:
        return None
    if resume:
        uri = record_uri_of(run_prefix_for(opts.metadata_s3, resume))
        recorded = load_or_fail(storage, uri, f"--resume {resume}: check the run id and --metadata-s3").options
        if recorded.get("repair_root"):
            return parse_location(str(recorded["repair_root"]), "repair root").as_prefix()
    return opts.repair_to.child(run_id).as_prefix()
