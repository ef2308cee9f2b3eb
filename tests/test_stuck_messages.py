"""Messages that leave no user stuck (issue 22): each fault ends with the command that moves the user on."""

from __future__ import annotations

import gzip
import json
import re
import shutil

import pytest
from botocore.exceptions import ClientError
from test_export import NAMES as EXPORT_NAMES
from test_export import export_inputs as export_inputs  # the export's inputs' fixture
from test_local_executor import ingest
from test_local_executor import standin as standin  # the stand-in tiledbvcf's fixture
from test_report import fail_with, put_log, run_failing

from conftest import DATASET, invoke, load_script
from samplefiles import bgzip_vcf
from tiledbvcf_batch.aws import parse_region, resolve_region
from tiledbvcf_batch.executors.batch import BatchExecutor
from tiledbvcf_batch.headers import REPAIR_HINT
from tiledbvcf_batch.inputs import InputError

RUNS = load_script("batch-runs.py")


def recorded(stderr: str) -> tuple[str, str]:
    found = re.search(r"Run (\S+) recorded at (\S+)", stderr)
    assert found, stderr
    return found.group(1), found.group(2)


def test_a_batch_run_with_failed_jobs_says_how_to_resume_it(aws, samples_file, run_ingest, monkeypatch):
    result = run_failing(aws, samples_file, run_ingest, monkeypatch)
    assert result.exit_code == 1
    run_id, record = recorded(result.stderr)
    assert f"--resume {run_id}" in result.lines[-1] and result.lines[-1].startswith("To retry the failed jobs")
    again = invoke(RUNS.main, ["status", record])  # no command line to repeat: rebuilt from the record
    assert again.exit_code == 1
    line = again.stdout.splitlines()[-1]
    assert line.startswith("To retry the failed jobs, resume it") and "python batch-ingest.py --dataset-uri" in line
    assert f"--job-queue tiledbvcf-job-queue --job-definition tiledbvcf-24h --resume {run_id}" in line
    document = json.loads(invoke(RUNS.main, ["status", record, "--json"]).stdout)
    assert document["retry"].endswith(f"--resume {run_id}")


def test_a_local_run_with_failed_jobs_says_how_to_resume_it_and_where_its_log_is(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("STANDIN_FAIL_TIMES", "1")
    result = ingest(tmp_path, "--log-lines", "3")
    assert result.exit_code == 1
    run_id, record = recorded(result.stderr)
    log = tmp_path / "state" / run_id / "ingest-1-1.log"
    assert f"    log: {log}" in result.lines and log.exists()
    assert f"--resume {run_id}" in result.lines[-1]
    again = invoke(RUNS.main, ["status", record])
    line = again.stdout.splitlines()[-1]
    assert " --executor local " in line and line.endswith(f" --resume {run_id}")


def test_a_describe_refused_while_waiting_names_the_command_to_come_back(aws, samples_file, run_ingest, monkeypatch):
    def refused(self, ids):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DescribeJobs")

    monkeypatch.setattr(BatchExecutor, "describe", refused)
    samples = samples_file(2)
    result = run_ingest("--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3",
                        "bucket2-name", "--wait")  # fmt: skip
    assert result.exit_code == 4
    run_id = re.search(r"Run (\S+) recorded at", result.stderr).group(1)
    assert "AccessDeniedException" in result.stderr and f"run {run_id} was submitted" in result.stderr
    assert re.search(r"Error: come back to it with: python batch-runs.py wait s3://bucket2-name/\S+/run.json",
                     result.stderr)  # fmt: skip


def test_terminal_escape_sequences_of_a_log_reach_no_terminal(aws, samples_file, run_ingest, monkeypatch):
    fail_with(aws, "Essential container in task exited\x1b]0;owned\x07", 1, None)
    hostile = ["\x1b[2J\x1b[31mscreen cleared", "tab\tstays", "\x9b31m C1 too \x7f"]
    aws.on(
        "after-call.batch.SubmitJob",
        lambda parsed, **_: put_log(aws, "/aws/batch/job", f"tiledbvcf-24h/default/{parsed['jobId']}", hostile),
    )
    result = run_failing(aws, samples_file, run_ingest, monkeypatch, "--log-lines", "3")
    assert result.exit_code == 1
    _, record = recorded(result.stderr)
    logs = invoke(RUNS.main, ["logs", record, "--log-lines", "3"])
    for out in (result.stdout, logs.stdout):
        assert not any(c in out for c in "\x1b\x07\x9b\x7f")
        assert "    | \\x1b[2J\\x1b[31mscreen cleared" in out and "    | tab\tstays" in out
        assert "    | \\x9b31m C1 too \\x7f" in out and "exited\\x1b]0;owned\\x07" in out
    document = json.loads(invoke(RUNS.main, ["logs", record, "--json"]).stdout)
    assert document[0]["attempts"][0]["log"][0] == hostile[0]  # JSON keeps the text: its escapes are JSON's


def test_preflight_tells_how_to_fix_each_sample_and_all_at_once(tmp_path, standin):
    vcf = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\n"
    (tmp_path / "plain.vcf").write_text(vcf)
    (tmp_path / "gzipped.vcf.gz").write_bytes(gzip.compress(vcf.encode()))
    (tmp_path / "multi.bcf").write_bytes(bgzip_vcf(["M1", "M2"]))
    (tmp_path / "multi.bcf.csi").write_bytes(b"i")
    (tmp_path / "samples.txt").write_text("s0.bcf\ns0.bcf.csi\nplain.vcf\ngzipped.vcf.gz\nmulti.bcf\n")
    result = ingest(tmp_path)
    assert result.exit_code == 2
    errors = result.stderr.replace(f"{tmp_path}/", "").splitlines()
    recompress = "which bcftools cannot index: compress it with bgzip"
    assert errors == [
        "Error: sample s0.bcf.csi is an index file (csi), not a VCF/BCF: remove it from the samples file (an index "
        "beside its sample, <sample>.csi or .tbi, is found without being listed)",
        "Error: sample plain.vcf has no index (plain.vcf.csi or plain.vcf.tbi): it is not bgzip-compressed, "
        f"{recompress} (bgzip FILE for an uncompressed VCF; zcat FILE | bgzip > NEW for plain gzip), then index it "
        "(bcftools index)" + REPAIR_HINT,
        "Error: sample gzipped.vcf.gz has no index (gzipped.vcf.gz.csi or gzipped.vcf.gz.tbi): it is compressed with "
        f"plain gzip, not BGZF, {recompress} (bgzip FILE for an uncompressed VCF; zcat FILE | bgzip > NEW for plain "
        "gzip), then index it (bcftools index)" + REPAIR_HINT,
        # with the index problems, not once they are fixed
        "Error: sample multi.bcf has 2 samples in its header: tiledbvcf ingests single-sample files only (split it "
        "with bcftools +split)" + REPAIR_HINT,
    ]


def test_an_s3_sample_that_is_not_bgzipped_is_told_to_be_compressed_first(aws, samples_file, run_ingest):
    samples = samples_file(2)
    aws.s3.put_object(Bucket="bucket-name", Key="samples/1.bcf", Body=b"##fileformat=VCFv4.2\n")
    aws.s3.delete_object(Bucket="bucket-name", Key="samples/1.bcf.csi")
    result = run_ingest("--dataset-uri", DATASET, "--samples", str(samples), "--metadata-s3", "bucket2-name")
    assert result.exit_code == 2
    assert "1.bcf.csi or .tbi): it is not bgzip-compressed, which bcftools cannot index: compress it" in result.stderr


def test_a_region_botocore_knows_is_a_region(monkeypatch):
    for region in ("eusc-de-east-1", "us-isob-east-1", "us-east-1", "eu-isoe-west-1"):
        assert parse_region(region) == region
    monkeypatch.setenv("AWS_REGION", "eusc-de-east-1")
    assert resolve_region(None) == "eusc-de-east-1"
    with pytest.raises(InputError, match="is not an AWS region name"):
        parse_region("eusc-xx")


def test_list_names_a_missing_bucket_and_refuses_what_is_neither_bucket_nor_directory(aws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = invoke(RUNS.main, ["list", "--metadata-s3", "no-such-bucket"])
    assert missing.exit_code in (2, 4)
    assert "no-such-bucket" in missing.stderr, missing.stderr
    slashed = invoke(RUNS.main, ["list", "--metadata-s3", "bucket2-name/x"])
    assert slashed.exit_code == 2 and slashed.stdout == ""
    assert "s3://bucket2-name/x" in slashed.stderr and "bucket2-name/x" in slashed.stderr
    (tmp_path / "meta" / "sub").mkdir(parents=True)
    assert invoke(RUNS.main, ["list", "--metadata-s3", "meta/sub"]).exit_code == 0  # a local run's directory


def test_list_judges_an_export_by_its_files_as_status_does(aws, export_inputs, run_export):
    for name in EXPORT_NAMES[:7]:
        aws.s3.put_object(Bucket="my-bucketname", Key=f"bcf-exports/{name}.bcf", Body=b"BCF")
    result = run_export("--array", DATASET, *export_inputs, "--num-jobs", "2", "--wait")
    assert result.exit_code == 1
    _, record = recorded(result.stderr)
    assert invoke(RUNS.main, ["status", record]).exit_code == 1
    listed = invoke(RUNS.main, ["list", "--metadata-s3", "my-bucketname", "--json"])
    (run,) = json.loads(listed.stdout)
    assert run["state"] == "failed (3 of 10 exported files missing)"


def test_a_local_run_whose_state_folder_is_gone_is_told_in_the_local_executors_words(tmp_path, standin):
    result = ingest(tmp_path)
    assert result.exit_code == 0, result.stderr
    run_id, record = recorded(result.stderr)
    shutil.rmtree(tmp_path / "state" / run_id)
    status = invoke(RUNS.main, ["status", record])
    assert "AWS Batch" not in status.stdout + status.stderr
    assert "jobs are no longer known to this machine (it forgets a job whose state file is removed)" in status.stdout
