"""Array jobs' protocol: what the Batch executor writes and the image's entrypoint reads."""

from __future__ import annotations

import pytest

from conftest import options
from tiledbvcf_batch.arraytasks import ARRAY_MARK, array_args, array_task_file, task_file_body, task_of
from tiledbvcf_batch.commands import store_command
from tiledbvcf_batch.options import IngestOptions

MANIFEST = "s3://bucket2-name/tiledbvcf-batch/runs/r1/ingest-b001-j0001.txt"


def test_an_array_child_finds_its_task_by_its_index():
    task_file = "s3://bucket2-name/tiledbvcf-batch/runs/r1/tasks-ingest-1.json"
    args = array_args(store_command(options(IngestOptions), MANIFEST), task_file)
    assert args[args.index("-f") + 1] == task_file + ARRAY_MARK and array_task_file(args) == task_file
    assert array_task_file(store_command(options(IngestOptions), MANIFEST)) is None  # a plain job
    body = task_file_body([{"key": "ingest-1-1", "lines": ["s3://b/a.bcf"]}, {"key": "ingest-1-2", "lines": []}])
    assert task_of(body, 1)["key"] == "ingest-1-2"
    with pytest.raises(ValueError, match="array index 2 is outside the task file's 2 tasks"):
        task_of(body, 2)
