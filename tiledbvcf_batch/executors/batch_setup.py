"""AWS Batch's job queue and job definition: asked for (``BatchOptions``, the Batch executor's command-line options),
and checked before anything is spent (``BatchExecutor.preflight``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from ..arraytasks import ENTRYPOINT_VARIABLE
from ..aws import aws_message
from ..options import flag


@dataclass(frozen=True)
class BatchOptions:
    """--executor batch's options. Click cannot require the queue and the definition: that depends on --executor."""

    job_queue: str | None = flag(None, metavar="NAME", required_for="batch", help="Name of job queue to use for jobs.")
    job_definition: str | None = flag(
        None, metavar="NAME", required_for="batch", help="Name of job definition to use for jobs."
    )
    array_jobs: bool | None = flag(
        None,
        switch="--no-array-jobs",
        help="On AWS Batch: one array job per stage (its children find their samples by index), or one job per "
        f"task. Default: array jobs when the job definition sets {ENTRYPOINT_VARIABLE} (this project's image "
        "and template do), else one job per task.",
    )


def check_job_queue(batch: Any, name: str, region: str) -> list[str]:
    try:
        queues = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    except ClientError as error:
        return [f"--job-queue {name}: cannot describe it ({aws_message(error)})"]
    if not queues:
        return [f"--job-queue {name}: no such job queue in {region}: check the name and --region"]
    queue = queues[0]
    problems = []
    if queue.get("state") != "ENABLED":
        problems.append(f"--job-queue {name} is {queue.get('state')}: enable it or pick another queue")
    if queue.get("status") not in ("VALID", "UPDATING"):
        problems.append(
            f"--job-queue {name} is {queue.get('status')} ({queue.get('statusReason', 'no reason given')}): "
            "fix or recreate it"
        )
    if not queue.get("computeEnvironmentOrder"):
        problems.append(f"--job-queue {name} has no compute environment: attach one")
    return problems


def find_job_definition(batch: Any, name: str) -> dict[str, Any] | None:
    """The ACTIVE job definition ``name``, ``name:revision`` or ARN (newest revision when none)."""
    if ":" in name:
        found = batch.describe_job_definitions(jobDefinitions=[name])["jobDefinitions"]
    else:
        found = []
        for page in batch.get_paginator("describe_job_definitions").paginate(jobDefinitionName=name, status="ACTIVE"):
            found.extend(page["jobDefinitions"])
    active = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
    return max(active, key=lambda d: d.get("revision", 0)) if active else None


def check_job_definition(batch: Any, name: str, region: str) -> tuple[list[str], dict[str, Any]]:
    """Problems of the job definition, and the definition itself (empty when it cannot be used)."""
    try:
        definition = find_job_definition(batch, name)
    except ClientError as error:
        return [f"--job-definition {name}: cannot describe it ({aws_message(error)})"], {}
    if definition is None:
        return [
            f"--job-definition {name}: no ACTIVE job definition of that name in {region}: check the name and --region"
        ], {}
    if definition.get("type") != "container":
        return [
            f"--job-definition {name} is of type {definition.get('type')}: it must be a container job definition"
        ], {}
    return [], definition


def runs_our_entrypoint(definition: dict[str, Any]) -> bool:
    """Whether the job definition says its image has this project's entrypoint (which resolves array tasks)."""
    environment = definition.get("containerProperties", {}).get("environment", [])
    return any(item.get("name") == ENTRYPOINT_VARIABLE and item.get("value") for item in environment)


RUN_TAG = "tiledbvcf-batch-run"  # each job's tag naming its run


def jobs_named(batch: Any, job_queue: str, name: str) -> list[str]:
    """The ids of the queue's jobs named ``name``, whatever their status (ListJobs ignores it when filtering)."""
    request: dict[str, Any] = {"jobQueue": job_queue, "filters": [{"name": "JOB_NAME", "values": [name]}]}
    ids: list[str] = []
    while True:
        page = batch.list_jobs(**request)
        ids += [summary["jobId"] for summary in page.get("jobSummaryList", [])]
        if not page.get("nextToken"):
            return ids
        request["nextToken"] = page["nextToken"]


# A RUNNABLE job's reason "MISCONFIGURATION:CODE - text" means it will never start: the advice follows the code.
MISCONFIGURATION_ADVICE = {
    "COMPUTE_ENVIRONMENT_MAX_RESOURCE": "the job asks for more vCPUs or memory than any instance of the "
    "compute environment has: lower --vcpus/--memory or allow larger instance types",
    "JOB_RESOURCE_REQUIREMENT": "no instance type of the compute environment fits the job's resources: "
    "lower --vcpus/--memory or change the allowed instance types",
    "SERVICE_ROLE_PERMISSIONS": "the Batch service role lacks permissions: check the compute "
    "environment's service role",
}
MISCONFIGURATION_DEFAULT = "check the compute environment, its service role and the job's resources"
# A RUNNABLE job's reason "CAPACITY:..." often clears by itself (instances being launched).
CAPACITY_ADVICE = (
    "the compute environment cannot get instances; consider other instance types, On-Demand instead of Spot, "
    "or another Availability Zone"
)
