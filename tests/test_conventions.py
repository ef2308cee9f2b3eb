"""The conventions users of dsub, Nextflow and the AWS CLI expect: --version, env defaults, --profile, help."""

from __future__ import annotations

import os
import re
import shlex

import pytest
from click.testing import CliRunner

import local_aws
from conftest import EXPORT, INGEST, ROOT, UNPACKED_TILEDBVCF, base, find_tiledbvcf, load_script, run_script

RUNS = load_script("batch-runs.py")
SCRIPTS = ("batch-ingest.py", "batch-export.py", "batch-runs.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_executable_and_tell_their_version(script):
    path = ROOT / script
    assert os.access(path, os.X_OK) and path.read_text().startswith("#!/usr/bin/env python3\n")
    result = run_script(script, "--version")
    assert result.returncode == 0 and re.fullmatch(rf"{script} \d+\.\d+\.\d+ \(tiledbvcf-batch\)\n", result.stdout)


def test_option_defaults_from_the_environment(server, tmp_path, monkeypatch):
    """The real scripts, as run from a shell: the wiring of the prefix is what is tested."""
    monkeypatch.setenv("TILEDBVCF_BATCH_JOB_QUEUE", local_aws.JOB_QUEUE)
    monkeypatch.setenv("TILEDBVCF_BATCH_JOB_DEFINITION", local_aws.JOB_DEFINITION)
    monkeypatch.setenv("TILEDBVCF_BATCH_NUM_JOBS", "2")
    monkeypatch.setenv("TILEDBVCF_BATCH_LIST_METADATA_S3", "bucket2-name")

    ingest = run_script("batch-ingest.py", *base("samples.txt"), cwd=tmp_path)
    assert ingest.returncode == 0, ingest.stderr
    assert len(ingest.stdout.splitlines()[1].split()) == 3 + 2  # "Submitted ingestion job(s)" and 2 ids
    listed = run_script("batch-runs.py", "list", cwd=tmp_path)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1, listed.stderr


def test_profile_is_honoured(aws, samples_file):
    result = CliRunner().invoke(INGEST.main, [*base(samples_file(1)), "--job-queue", "q", "--job-definition", "d",
                                              "--profile", "nope"])  # fmt: skip
    assert result.exit_code == 4 and "(nope) could not be found: check AWS_PROFILE" in result.stderr


@pytest.mark.parametrize("command", [INGEST.main, EXPORT.main])
def test_help_shows_defaults_and_what_retries_1_does(command):
    text = " ".join(CliRunner().invoke(command, ["--help"]).output.split())
    assert "--num-jobs N" in text and "[default: 1]" in text
    assert "With 1, a job is retried only when its host went away (a Spot reclaim), up to 3 attempts" in text
    assert "[default:AWS_REGION,elseyourAWSconfiguration's,elseus-east-1]" in text.replace(" ", "")
    assert "--version" in text and "--profile NAME" in text
    assert "Default: the executor's (batch: /data; local: a temporary directory of the run)." in text


def test_ingest_help_names_the_prefix_form_of_metadata_s3():
    text = " ".join(CliRunner().invoke(INGEST.main, ["--help"]).output.split())
    assert "Also s3://bucket/prefix" in text and "--incremental N" in text


def test_quiet_keeps_stdout_and_errors_only_and_verbose_shows_each_job(aws, samples_file):
    args = [*base(samples_file(2)), "--job-queue", aws.job_queue, "--job-definition", aws.job_definition]
    quiet = CliRunner().invoke(INGEST.main, [*args, "--quiet", "--wait"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout.startswith("Submitted array creation job ") and "- 6 / 6 jobs succeeded" in quiet.stdout
    verbose = CliRunner().invoke(INGEST.main, [*args, "--verbose", "--force-reingest"])
    assert verbose.exit_code == 0 and "    tiledbvcf store -u " in verbose.stderr


def test_aws_region_is_honoured_as_the_aws_cli_does(monkeypatch):
    from tiledbvcf_batch.aws import make_clients

    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert make_clients(None).region == "eu-west-1"
    assert make_clients("us-west-2").region == "us-west-2"  # --region first


def test_what_next_carries_the_profile_of_the_run(aws, samples_file, tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.write_text("[profile work]\nregion = us-east-1\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    args = [*base(samples_file(1)), "--job-queue", aws.job_queue, "--job-definition", aws.job_definition]
    result = CliRunner().invoke(INGEST.main, [*args, "--profile", "work"])
    assert result.exit_code == 0, result.stderr
    record = re.search(r"recorded at (\S+)", result.stderr)[1]
    assert result.stderr.splitlines()[-4:] == [
        "What next:",
        f"  status: python batch-runs.py status {record} --profile work",
        f"  wait:   python batch-runs.py wait {record} --profile work",
        f"  cancel: python batch-runs.py cancel {record} --profile work",
    ]
    words = shlex.split(result.stderr.splitlines()[-3].split(": ", 1)[1])
    status = CliRunner().invoke(RUNS.main, words[2:])
    assert status.exit_code in (0, 3) and "6/6 jobs finished" in status.stdout, status.output  # it works as printed


def test_every_link_of_the_readme_to_a_section_finds_it():
    text = (ROOT / "README.md").read_text()
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # no "# comment" of a code block

    def slug(heading: str) -> str:  # as GitHub makes a heading's anchor
        return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

    anchors = {slug(heading) for heading in re.findall(r"^#+ (.+)$", prose, flags=re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors, sorted(links - anchors)


def test_the_tests_find_tiledbvcf_as_the_demo_does(tmp_path):
    """The README's second command (pytest) runs the real-tiledbvcf tests right after its first (the demo) unpacked
    tiledbvcf into .tools/: TILEDBVCF, else PATH, else that one."""
    assert f'"$PWD/{UNPACKED_TILEDBVCF}"' in (ROOT / "demo" / "run-local.sh").read_text()  # the demo's own path
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    assert find_tiledbvcf({"PATH": str(empty)}, tmp_path) == ""
    unpacked = tmp_path / UNPACKED_TILEDBVCF
    unpacked.parent.mkdir(parents=True)
    unpacked.write_text("#!/bin/sh\n")
    unpacked.chmod(0o755)
    assert find_tiledbvcf({"PATH": str(empty)}, tmp_path) == str(unpacked)
    on_path = tmp_path / "bin" / "tiledbvcf"
    on_path.parent.mkdir()
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert find_tiledbvcf({"PATH": str(on_path.parent)}, tmp_path) == str(on_path)
    given = {"PATH": str(on_path.parent), "TILEDBVCF": "/opt/tiledbvcf/bin/tiledbvcf"}  # CI's TILEDBVCF wins
    assert find_tiledbvcf(given, tmp_path) == "/opt/tiledbvcf/bin/tiledbvcf"
