"""Each sample's header, read before anything is spent: one sample a file, no name twice, a name that can be a file.

Local files are read with a few threads, S3 files with ranged reads in 16 (``headers`` parses them).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from .aws import aws_message
from .headers import NOT_BGZIP, PLAIN_GZIP, REPAIR_HINT, file_name_problem, index_file_problem, read_header_sample_names
from .inputs import Sample
from .storage import parse_location

LOCAL_WORKERS = 4  # threads reading local headers (see check_headers)


def readable(samples: Sequence[Sample], sizes: dict[str, int]) -> list[Sample]:
    """The samples whose headers can be read: they exist, hold bytes, and are no index files."""
    return [sample for sample in samples if sizes.get(sample.uri, 0) > 0 and index_file_problem(sample.uri) is None]


def check_headers(s3: Any, samples: Sequence[Sample], workers: int = 16) -> tuple[list[str], dict[str, str]]:
    """Each file holds exactly one sample, and no sample name appears in two files; each file's sample name."""
    problems: list[str] = []

    def read(sample: Sample) -> tuple[Sample, list[str] | str]:
        try:
            return sample, read_header_sample_names(s3, parse_location(sample.uri, "sample"))
        except ValueError as error:
            return sample, str(error)
        except OSError as error:
            return sample, f"cannot be read ({error.strerror})"
        except ClientError as error:
            return sample, f"cannot be read ({aws_message(error)})"

    first_file: dict[str, str] = {}
    if not any(sample.uri.startswith("s3://") for sample in samples):
        # A local disk reads faster with fewer threads (200 headers: 1 thread 0.035 s, 16 threads 0.054 s);
        # a few still hide a network file system's latency.
        workers = min(workers, LOCAL_WORKERS)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for sample, result in pool.map(read, samples):
            if isinstance(result, str):
                hint = REPAIR_HINT if result in (NOT_BGZIP, PLAIN_GZIP) else ""
                problems.append(f"sample {sample.uri} {result}{hint}")
            elif len(result) != 1:
                problems.append(
                    f"sample {sample.uri} has {len(result)} samples in its header: tiledbvcf ingests "
                    f"single-sample files only (split it with bcftools +split){REPAIR_HINT}"
                )
            elif (problem := file_name_problem(result[0])) is not None:
                problems.append(unexportable(sample.uri, result[0], problem))
            elif result[0] in first_file:
                problems.append(
                    f"sample name {result[0]} is in both {first_file[result[0]]} and {sample.uri}: "
                    "remove one of them from the samples file"
                )
            else:
                first_file[result[0]] = sample.uri
    return problems, {uri: name for name, uri in first_file.items()}


def unexportable(uri: str, name: str, problem: str) -> str:
    return (
        f"sample {uri} is named {name!r}, which tiledbvcf can never export as a file of its own ({problem}): "
        "rename the sample in its file (bcftools reheader -s) and ingest that file"
    )
