"""The AWS Batch environment as code: cfn-lint, and the stack in moto driving both scripts."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import yaml

from conftest import EXPORT, INGEST, ROOT, invoke, make_dataset

TEMPLATE = ROOT / "infra" / "batch-environment.yaml"


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as plain values."""


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -r requirements-dev.txt"
    return found


def test_cfn_lint_reports_no_error():
    result = subprocess.run([tool("cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_user_data_mounts_scratch_at_data():
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    data = template["Resources"]["ScratchLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["DeleteOnTermination"] is True
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeType"] == "gp3"
    user_data = data["UserData"]["Fn::Base64"]
    script = user_data.split('Content-Type: text/x-shellscript; charset="us-ascii"\n\n', 1)[1].split("--==")[0]
    assert script.startswith("#!/bin/bash\n")
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert 'mount -o defaults,noatime "$device" /data' in script
    assert "AmazonEC2NVMeInstanceStorage" in script  # NVMe instance store first


@pytest.fixture
def stack(aws):
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    service_role = boto3.client("iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]
    parameters = {
        "SubnetIds": subnet,
        "SecurityGroupIds": group,
        "DatasetBucket": "my-bucketname",
        "MetadataBucket": "bucket2-name",
        "ExportBucket": "my-bucketname",
        "ReadBuckets": "bucket-name,my-bucketname",
        # moto cannot create a compute environment without a service role (AWS uses the
        # service-linked role when this is empty, the default) and splits only list
        # parameters that are passed, not their defaults.
        "ServiceRoleArn": service_role["Arn"],
        "InstanceTypes": "m5.4xlarge",
        "JobQueueName": "stack-queue",
        "JobDefinitionName": "stack-24h",
    }
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    cloudformation.create_stack(
        StackName="tiledbvcf-batch",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    described = cloudformation.describe_stacks(StackName="tiledbvcf-batch")["Stacks"][0]
    assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
    return {output["OutputKey"]: output["OutputValue"] for output in described["Outputs"]}


def test_stack_creates_what_the_scripts_need(aws, stack):
    assert stack["JobQueueName"] == "stack-queue" and stack["JobDefinitionName"] == "stack-24h"
    (definition,) = aws.batch.describe_job_definitions(jobDefinitionName="stack-24h")["jobDefinitions"]
    container = definition["containerProperties"]
    assert container["image"] == f"{stack['RepositoryUri']}:latest"
    assert container["resourceRequirements"] == [{"value": "16", "type": "VCPU"}, {"value": "61440", "type": "MEMORY"}]
    assert container["mountPoints"] == [{"containerPath": "/data", "readOnly": False, "sourceVolume": "data"}]
    assert container["logConfiguration"]["options"]["awslogs-group"] == stack["LogGroupName"] == "/aws/batch/stack-24h"
    # moto's CloudFormation drops the job definition's Timeout (it reads "timeout"): check the template.
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    assert template["Resources"]["JobDefinition"]["Properties"]["Timeout"] == {"AttemptDurationSeconds": 86400}
    assert container["jobRoleArn"] == stack["JobRoleArn"]
    # It says its image runs this project's entrypoint: the scripts submit array jobs to it.
    assert {"name": "TILEDBVCF_BATCH_ENTRYPOINT", "value": "1"} in container["environment"]
    (group,) = boto3.client("logs").describe_log_groups(logGroupNamePrefix="/aws/batch/stack-24h")["logGroups"]
    assert group["retentionInDays"] == 30

    iam = boto3.client("iam")
    role = stack["JobRoleArn"].rsplit("/", 1)[1]
    (policy,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
    if isinstance(document, str):  # moto returns the stack's inline policy as a Python repr
        document = ast.literal_eval(document)
    statements = {s["Sid"]: s for s in document["Statement"]}
    assert statements["ReadInputs"]["Resource"] == ["arn:aws:s3:::bucket-name/*", "arn:aws:s3:::my-bucketname/*"]
    assert statements["ReadAndConsumeManifests"]["Resource"] == "arn:aws:s3:::bucket2-name/tiledbvcf-batch/runs/*"
    assert "s3:*" not in json.dumps(document) and "FullAccess" not in json.dumps(document)


def test_both_scripts_run_against_the_stack(aws, stack, samples_file):
    samples = samples_file(4)
    ingest = invoke(
        INGEST.main,
        [
            "--dataset-uri", "s3://my-bucketname/ds", "--samples", str(samples), "--metadata-s3", "bucket2-name",
            "--job-queue", stack["JobQueueName"], "--job-definition", stack["JobDefinitionName"], "--num-jobs", "2",
            "--wait",
        ],
    )  # fmt: skip
    assert ingest.exit_code == 0, ingest.stderr
    assert "- 7 / 7 jobs succeeded" in ingest.lines  # creation, the array's 2 children, 4 consolidation
    assert [job.get("arrayProperties") for job in aws.submitted] == [None, {"size": 2}, None, None, None, None]
    assert {job["jobQueue"] for job in aws.submitted} == {"stack-queue"}
    assert {job["jobDefinition"] for job in aws.submitted} == {"stack-24h"}

    make_dataset(aws, "ds", samples=("S1", "S2"))
    aws.s3.put_object(Bucket="my-bucketname", Key="names.txt", Body=b"S1\nS2\n")
    aws.s3.put_object(Bucket="my-bucketname", Key="regions.bed", Body=b"chr1\t0\t10\n")
    export = invoke(
        EXPORT.main,
        [
            "--array", "s3://my-bucketname/ds", "--dest-s3", "s3://my-bucketname/out/",
            "--samples", "s3://my-bucketname/names.txt", "--bed", "s3://my-bucketname/regions.bed",
            "--job-queue", stack["JobQueueName"], "--job-definition", stack["JobDefinitionName"], "--num-jobs", "2",
        ],
    )  # fmt: skip
    assert export.exit_code == 0, export.stderr
    assert re.fullmatch(r"Submitted export job\(s\) \S+", export.lines[0])  # one array job of two children
    assert aws.submitted[-1]["arrayProperties"] == {"size": 2}
