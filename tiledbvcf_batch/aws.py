"""AWS clients whose retries ride out throttling, made when first used; AWS errors as one line of text."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)

from .inputs import InputError, is_region_spelling

# Answers that mean the credentials, not the request, are wrong: no check can go on without them.
CREDENTIAL_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
    "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "RequestExpired", "AuthFailure",
})  # fmt: skip


CONNECT_TIMEOUT = 5  # seconds to open a connection (botocore's default: 60)
MAKING = threading.RLock()  # a boto3 session is not thread-safe: clients are made one at a time


class AwsSetupError(Exception):
    """AWS cannot be used at all (credentials, profile, region, endpoint): one line, exit status 4."""


def credentials_refused(parsed: dict[str, Any], model: Any, **_: Any) -> None:
    """after-call hook: a credentials error ends everything at once, whatever check asked."""
    code = (parsed or {}).get("Error", {}).get("Code", "")
    if code in CREDENTIAL_CODES:
        message = (parsed.get("Error", {}).get("Message") or "").rstrip(".")
        raise AwsSetupError(
            f"AWS refused your credentials ({code}: {message}) in {model.name}: they have expired or are wrong; "
            "refresh them (aws sso login, aws configure, or new keys) and run the command again"
        )


def setup_message(error: BotoCoreError) -> str:
    """One line for what botocore raises before any request is answered."""
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return (
            "no AWS credentials found: run aws configure (or aws sso login), or set AWS_PROFILE, or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(error, ProfileNotFound):
        return f"{error}: check AWS_PROFILE (aws configure list-profiles lists the profiles)"
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        return f"cannot reach AWS ({error}): check the network, --region and AWS_ENDPOINT_URL"
    return f"AWS cannot be used: {error}"


class LazyClient:
    """A boto3 client made on first use: a run on local paths never imports boto3 (a third of a second)."""

    def __init__(self, service: str, region: str, profile: str | None = None):
        self._service = service
        self._region = region
        self._profile = profile
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with MAKING:
                if self._client is None:
                    self._client = make_client(self._service, self._region, self._profile)
        return getattr(self._client, name)

    def sibling(self, pool_size: int = 10) -> Any:
        """A new client like this one (session, region, retries, hooks), for a caller that adds hooks of its own."""
        return make_client(self._service, self._region, self._profile, pool_size)


@dataclass
class Clients:
    region: str
    batch: Any
    s3: Any
    logs: Any


def is_region_name(text: str) -> bool:
    """A region's spelling (``us-east-1``, and those yet to come), or a region botocore's partitions know
    (``eusc-de-east-1``, ``us-isob-east-1``): its endpoints data, read only for a name the spelling refuses."""
    return is_region_spelling(text) or text in known_regions()


@functools.cache
def known_regions() -> frozenset[str]:
    """Every region botocore's endpoints data lists, across its partitions."""
    from botocore.loaders import create_loader

    partitions = create_loader().load_data("endpoints").get("partitions", [])
    return frozenset(region for partition in partitions for region in partition.get("regions", {}))


def parse_region(text: str | None) -> str | None:
    """--region: a region name (``is_region_name``), else bad input."""
    if text is not None and not is_region_name(text):
        raise InputError(f"--region {text!r} is not an AWS region name: write it as e.g. us-east-1")
    return text


def resolve_region(region: str | None, profile: str | None = None) -> str:
    """--region, else AWS_REGION / AWS_DEFAULT_REGION, else the AWS configuration's region, else us-east-1.

    A malformed name is one line: bad input (exit 2) as --region, an AWS set-up error (exit 4) from
    the environment or the configuration, before botocore would raise it at the first request.
    """
    parse_region(region)
    for source in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if not region and os.environ.get(source):
            region = checked_region(os.environ[source], source)
    if region:
        return region
    if not profile and not os.environ.get("AWS_PROFILE") and not os.path.exists(config_file()):
        return "us-east-1"  # what botocore would say, without importing it: a local run may need no AWS at all
    return checked_region(session(profile).region_name or "us-east-1", "the region of your AWS configuration")


def config_file() -> str:
    return os.path.expanduser(os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config"))


def checked_region(name: str, source: str) -> str:
    if not is_region_name(name):
        raise AwsSetupError(f"{source} {name!r} is not an AWS region name: set it as e.g. us-east-1, or give --region")
    return name


def session(profile: str | None) -> Any:
    """boto3's default session (tests hook it), or one of --profile's."""
    import boto3

    if profile:
        return boto3.Session(profile_name=profile)
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


class FirstContact:
    """needs-retry hook: until the endpoint has answered once, a connection error ends the call at once.

    botocore's standard mode retries connection errors like throttling, up to 10 attempts with
    backoff: 20 s of silence before saying that an endpoint cannot be reached. Once it has
    answered, a connection error is a blip, and is retried as before.
    """

    def __init__(self) -> None:
        self.answered = False

    def __call__(self, response: Any = None, caught_exception: Exception | None = None, **_: Any) -> None:
        if response is not None:
            self.answered = True
        elif not self.answered and isinstance(caught_exception, EndpointConnectionError | ConnectTimeoutError):
            raise caught_exception


def make_client(service: str, region: str, profile: str | None = None, pool_size: int = 10) -> Any:
    """A client whose retries ride out throttling (TooManyRequestsException, SlowDown) and 5xx.

    botocore's standard mode with 10 attempts backs off exponentially (up to 20 s a retry).
    Not adaptive mode: it is experimental, and its client-side rate limiter would second-guess
    the pacing of submissions and the polling backoff that the executor does itself. An endpoint
    that cannot be reached fails the first call at once (FirstContact), after at most
    CONNECT_TIMEOUT seconds where nothing answers.
    ``pool_size`` connections are kept open: as many as the threads that share the client.
    """
    from botocore.config import Config

    config = Config(
        region_name=region,
        retries={"mode": "standard", "max_attempts": 10},
        connect_timeout=CONNECT_TIMEOUT,
        user_agent_extra="tiledbvcf-batch",
        max_pool_connections=pool_size,
    )
    with MAKING:
        client = session(profile).client(service, config=config)
    client.meta.events.register("after-call.*.*", credentials_refused)
    client.meta.events.register("needs-retry", FirstContact())
    return client


def make_clients(region: str | None, profile: str | None = None) -> Clients:
    region = resolve_region(region, profile)
    return Clients(region, *(LazyClient(service, region, profile) for service in ("batch", "s3", "logs")))


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def aws_message(error: Exception) -> str:
    if isinstance(error, ClientError):
        return f"{error_code(error)}: {error.response.get('Error', {}).get('Message', '')}".rstrip(": ")
    return str(error)
