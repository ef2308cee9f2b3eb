"""AWS clients whose retries ride out throttling, and AWS errors as one line of text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


@dataclass
class Clients:
    region: str
    batch: Any
    s3: Any
    logs: Any


def resolve_region(region: str | None) -> str:
    return region or boto3.session.Session().region_name or "us-east-1"


def make_clients(region: str | None) -> Clients:
    """Clients whose retries ride out throttling (TooManyRequestsException, SlowDown) and 5xx.

    botocore's standard mode with 10 attempts backs off exponentially (up to 20 s a retry).
    Not adaptive mode: it is experimental, and its client-side rate limiter would second-guess
    the pacing of submissions and the polling backoff that the executor does itself.
    """
    region = resolve_region(region)
    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": 10},
        user_agent_extra="tiledbvcf-batch",
    )
    return Clients(
        region=region,
        batch=boto3.client("batch", config=config),
        s3=boto3.client("s3", config=config),
        logs=boto3.client("logs", config=config),
    )


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def aws_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    return str(error)
