"""`--auth iam`: the client signs with SigV4 (botocore, the AWS credential chain); the service's own check of a
signature (the local stage's, chalicelib.access.sigv4) takes what it sends, and the local stage with IAM sign-in
takes the client end to end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import CLUSTER, IMAGE, SERVICE, ScriptedServer, _serve, connection_env, run_cli, running_image
from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.config import Connection, resolve_connection
from ecs_image_updater_cli.exits import RefusedError
from ecs_image_updater_cli.signing import region_of
from test_cli_http import KEY

from chalicelib.access.sigv4 import SignatureRefused, SignedRequest, verify
from scripts.local_aws import REGION, LocalRun

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI", "AWS_REGION": "eu-west-1"}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    yield from _serve()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The credential chain finds these (and no profile or config file of the machine)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def as_received(server: ScriptedServer, index: int = -1) -> SignedRequest:
    received = server.received[index]
    parts = urlsplit(received.path)
    return SignedRequest(received.method, parts.path, parse_qs(parts.query), received.headers, received.body)


def test_each_request_is_signed_for_execute_api_with_the_chains_credentials(
    server: ScriptedServer, aws_credentials: None
) -> None:
    server.answer(200, {"ok": True})
    server.answer(200, {"records": []})
    client = ApiClient(Connection(server.url, KEY, auth="iam"), environ=CREDENTIALS)
    client.post("/update", {"cluster": "prod", "service": "web", "image": "nginx:1"})
    client.get("/services/prod/arn%3Aaws%3Aecs%3Aeu-west-1%3A1%3Aservice%2Fprod%2Fweb/history", {"next": "a/b+c=="})
    for index in (0, 1):
        received = as_received(server, index)
        assert received.headers["x-api-key"] == KEY  # the key still goes along, for metering
        verify(received, "AKIDEXAMPLE", "wJalrXUtnFEMI", "eu-west-1")
        with pytest.raises(SignatureRefused):
            verify(received, "AKIDEXAMPLE", "another secret", "eu-west-1")


def test_without_iam_nothing_is_signed(server: ScriptedServer) -> None:
    server.answer(200, {})
    ApiClient(Connection(server.url, KEY)).get("/whoami")
    assert "authorization" not in server.received[0].headers


def test_no_credentials_is_refused_before_anything_is_sent(
    server: ScriptedServer, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr("botocore.credentials.InstanceMetadataProvider.load", lambda _self: None)
    monkeypatch.setattr("botocore.credentials.ContainerProvider.load", lambda _self: None)
    client = ApiClient(Connection(server.url, KEY, auth="iam"), environ={"AWS_REGION": "eu-west-1"})
    with pytest.raises(RefusedError, match="--auth iam found no AWS credentials"):
        client.get("/whoami")
    assert server.received == []


def test_without_botocore_the_client_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    with pytest.raises(RefusedError, match=r"pip install 'ecs-image-updater\[iam\]'"):
        ApiClient(Connection("https://x.example", KEY, auth="iam"), environ={"AWS_REGION": "eu-west-1"})


@pytest.mark.parametrize(
    ("url", "environ", "region"),
    [
        ("https://abc123.execute-api.eu-central-1.amazonaws.com/api", {"AWS_REGION": "us-east-1"}, "eu-central-1"),
        ("https://deploy.example.com", {"ECS_IMAGE_UPDATER_REGION": "ap-south-1", "AWS_REGION": "x"}, "ap-south-1"),
        ("https://deploy.example.com", {"AWS_DEFAULT_REGION": "sa-east-1"}, "sa-east-1"),
    ],
)
def test_the_region_comes_from_the_url_else_the_environment(url: str, environ: dict[str, str], region: str) -> None:
    assert region_of(url, environ) == region


def test_a_custom_domain_without_a_region_is_refused() -> None:
    with pytest.raises(RefusedError, match="set ECS_IMAGE_UPDATER_REGION or AWS_REGION"):
        region_of("https://deploy.example.com", {})


def test_the_auth_mode_comes_from_the_flag_then_the_environment(tmp_path: Path) -> None:
    base = {"ECS_IMAGE_UPDATER_URL": "https://x.example", "ECS_IMAGE_UPDATER_API_KEY": KEY}
    assert resolve_connection(None, None, base, tmp_path).auth == "key"
    assert resolve_connection(None, None, {**base, "ECS_IMAGE_UPDATER_AUTH": "IAM"}, tmp_path).auth == "iam"
    assert resolve_connection(None, None, {**base, "ECS_IMAGE_UPDATER_AUTH": "iam"}, tmp_path, "key").auth == "key"
    with pytest.raises(RefusedError, match="neither 'key' nor 'iam'"):
        resolve_connection(None, None, {**base, "ECS_IMAGE_UPDATER_AUTH": "sso"}, tmp_path)


def signed_env(service: LocalRun, key: str = "local") -> dict[str, str]:
    return {
        **connection_env(service),
        "ECS_IMAGE_UPDATER_AUTH": "iam",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": key,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def test_the_client_deploys_and_waits_signed_against_an_iam_stage(iam_service: LocalRun, tmp_path: Path) -> None:
    deployed = run_cli(
        "deploy",
        "--cluster",
        CLUSTER,
        "--service",
        SERVICE,
        "--image",
        f"{IMAGE}:1.28.3",
        "--wait",
        "--timeout",
        "1m",
        env=signed_env(iam_service),
        cwd=tmp_path,
    )
    assert deployed.returncode == 0, deployed.output
    assert running_image(iam_service) == f"{IMAGE}:1.28.3"
    history = run_cli("history", CLUSTER, SERVICE, "--limit", "1", env=signed_env(iam_service), cwd=tmp_path)
    assert history.returncode == 0, history.output
    assert "local from 127.0.0.1" in history.stdout


def test_an_iam_stage_refuses_the_key_alone_and_a_wrong_secret(iam_service: LocalRun, tmp_path: Path) -> None:
    unsigned = run_cli("status", CLUSTER, SERVICE, env=connection_env(iam_service), cwd=tmp_path)
    assert unsigned.returncode == 3, unsigned.output
    assert "the request is not signed with AWS Signature Version 4" in unsigned.stderr
    wrong = run_cli("status", CLUSTER, SERVICE, env=signed_env(iam_service, key="guess"), cwd=tmp_path)
    assert wrong.returncode == 3, wrong.output
    assert "the signature does not match the request" in wrong.stderr
