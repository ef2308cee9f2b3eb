"""AWS plumbing: the region, clients made when first used with retries that ride out throttling, AWS errors as text."""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from conftest import http_answer
from tiledbvcf_batch.aws import (
    CONNECT_TIMEOUT,
    AwsSetupError,
    FirstContact,
    LazyClient,
    aws_message,
    credentials_refused,
    error_code,
    make_client,
    make_clients,
    resolve_region,
    setup_message,
)
from tiledbvcf_batch.inputs import InputError


@pytest.fixture
def no_region(monkeypatch, tmp_path):
    """Neither the environment nor an AWS configuration names a region; a fresh default session."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    return tmp_path / "config"


def test_the_region_is_the_flag_then_the_environment_then_the_configuration(no_region, monkeypatch):
    assert resolve_region(None) == "us-east-1"  # nothing anywhere: what botocore would say
    no_region.write_text("[default]\nregion = eu-west-2\n")
    assert resolve_region(None) == "eu-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert resolve_region(None) == "eu-central-1"
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert resolve_region(None) == "ap-south-1"
    assert resolve_region("us-west-2") == "us-west-2"


def test_a_malformed_region_is_bad_input_as_a_flag_and_a_setup_error_elsewhere(no_region, monkeypatch):
    with pytest.raises(InputError, match="--region 'us east 1' is not an AWS region name"):
        resolve_region("us east 1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "Frankfurt")
    with pytest.raises(AwsSetupError, match="AWS_DEFAULT_REGION 'Frankfurt' is not an AWS region name"):
        resolve_region(None)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    no_region.write_text("[default]\nregion = eu west\n")
    with pytest.raises(AwsSetupError, match="the region of your AWS configuration 'eu west' is not an AWS region"):
        resolve_region(None)


def test_clients_retry_in_standard_mode_and_give_up_connecting_after_5_seconds():
    client = make_client("s3", "eu-west-1", pool_size=16)
    config = client.meta.config
    # Not adaptive: the executor paces itself. botocore reads max_attempts=10 as 10 retries: 11 attempts.
    assert config.retries == {"mode": "standard", "total_max_attempts": 11}
    assert config.connect_timeout == CONNECT_TIMEOUT == 5  # seconds, not botocore's 60
    assert config.max_pool_connections == 16 and config.region_name == "eu-west-1"
    assert "tiledbvcf-batch" in config.user_agent_extra


def test_clients_are_made_when_first_used_in_the_resolved_region(no_region, monkeypatch):
    made = []

    def make(service: str, region: str, profile: str | None = None, pool_size: int = 10) -> SimpleNamespace:
        made.append((service, region, profile))
        return SimpleNamespace(list_buckets=lambda: "listed")

    monkeypatch.setattr("tiledbvcf_batch.aws.make_client", make)
    no_region.write_text("[default]\nregion = eu-west-2\n")
    clients = make_clients(None)
    assert clients.region == "eu-west-2" and made == []  # a run on local paths never makes one
    assert clients.s3.list_buckets() == "listed" and clients.s3.list_buckets() == "listed"
    assert made == [("s3", "eu-west-2", None)]  # once, then kept
    assert isinstance(clients.batch, LazyClient) and isinstance(clients.logs, LazyClient)


@pytest.mark.parametrize(
    "code, refused",
    [("ExpiredToken", True), ("InvalidClientTokenId", True), ("SignatureDoesNotMatch", True),
     ("AccessDenied", False), ("NoSuchKey", False)],
)  # fmt: skip
def test_refused_credentials_end_everything_other_errors_are_the_callers(code, refused):
    parsed = {"Error": {"Code": code, "Message": "The security token included in the request is expired."}}
    if not refused:
        assert credentials_refused(parsed, SimpleNamespace(name="GetObject")) is None
        return
    with pytest.raises(AwsSetupError) as error:
        credentials_refused(parsed, SimpleNamespace(name="GetObject"))
    assert str(error.value) == (
        f"AWS refused your credentials ({code}: The security token included in the request is expired) in "
        "GetObject: they have expired or are wrong; refresh them (aws sso login, aws configure, or new keys) and "
        "run the command again"
    )


def test_the_credentials_hook_is_on_every_client(aws):
    client = make_client("s3", "us-east-1")
    expired = b"<Error><Code>ExpiredToken</Code><Message>gone</Message></Error>"
    client.meta.events.register("before-send.s3.ListBuckets", lambda request, **_: http_answer(request, 403, expired))
    with pytest.raises(AwsSetupError, match=r"AWS refused your credentials \(ExpiredToken: gone\) in ListBuckets"):
        client.list_buckets()


def test_setup_errors_are_one_line_that_says_what_to_do():
    assert setup_message(NoCredentialsError()).startswith("no AWS credentials found: run aws configure")
    assert setup_message(PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY")).startswith(
        "no AWS credentials found"
    )
    assert setup_message(ProfileNotFound(profile="nope")).endswith(
        ": check AWS_PROFILE (aws configure list-profiles lists the profiles)"
    )
    unreachable = setup_message(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert unreachable.startswith("cannot reach AWS (") and unreachable.endswith(
        "check the network, --region and AWS_ENDPOINT_URL"
    )
    assert setup_message(ReadTimeoutError(endpoint_url="x")).startswith("AWS cannot be used: ")


def test_an_endpoint_that_never_answered_fails_at_once_then_a_blip_is_retried():
    first = FirstContact()
    refused = EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(EndpointConnectionError):
        first(caught_exception=refused)
    with pytest.raises(ConnectTimeoutError):
        first(caught_exception=ConnectTimeoutError(endpoint_url="x"))
    assert first(response=({}, {})) is None  # it answered once
    assert first(caught_exception=refused) is None  # now botocore retries as usual


def test_aws_errors_read_as_code_and_message():
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")
    assert error_code(denied) == "AccessDenied" and aws_message(denied) == "AccessDenied: Access Denied"
    bare = ClientError({"Error": {"Code": "404"}}, "HeadObject")
    assert aws_message(bare) == "404"
    assert error_code(ClientError({}, "HeadObject")) == "" and aws_message(OSError("disk full")) == "disk full"
