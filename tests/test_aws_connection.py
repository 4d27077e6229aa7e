"""The command that gathers the deployed service's URL, key, cluster and service into one file."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from chalicelib.aws import clients
from scripts import aws_connection
from scripts.aws_connection import deployed_rest_api, gather, gather_from_stack, invoke_url, write_env_file
from tests.conftest import PROJECT_DIR

SERVICE_URL = "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api/"
KEY_VALUE = "the-secret-key-value-0123"


def deployed_state(project_dir: Path, url: str) -> None:
    deployed = project_dir / ".chalice" / "deployed"
    deployed.mkdir(parents=True)
    state = {
        "resources": [
            {"name": "api_handler", "resource_type": "lambda_function", "lambda_arn": "arn:aws:lambda:…"},
            {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "abcdefghij", "rest_api_url": url},
        ],
        "schema_version": "2.0",
        "backend": "api",
    }
    (deployed / "dev.json").write_text(json.dumps(state))


def test_gathers_url_key_cluster_and_service(moto_world: None, tmp_path: Path) -> None:
    session = clients.session()
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName="workload",
        TemplateBody=(PROJECT_DIR / "infra" / "test-workload.yaml").read_text(),
        Capabilities=["CAPABILITY_IAM"],
    )
    # moto's CloudFormation ignores AWS::ApiGateway::ApiKey, so the key is made with the direct
    # API and a stand-in stack carries its id as the ApiKeyId output, as api-access.yaml does.
    key = session.client("apigateway").create_api_key(name="k", enabled=True, value="the-secret-key-value-0123")
    stand_in = {
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "stand-in"}}},
        "Outputs": {"ApiKeyId": {"Value": key["id"]}},
    }
    cloudformation.create_stack(StackName="access", TemplateBody=json.dumps(stand_in))
    deployed_state(tmp_path, "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api/")

    values = gather(session, tmp_path, "dev", "access", "workload")

    assert values == {
        "API_URL": "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api",
        "API_KEY": "the-secret-key-value-0123",
        "CLUSTER": "test-cluster",
        "SERVICE": "web",
    }


def test_missing_deployed_state_says_to_deploy_first(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="chalice deploy --stage dev"):
        invoke_url(tmp_path, "dev")


def test_env_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / ".api.env"
    write_env_file({"API_URL": "https://x", "API_KEY": "k"}, path)
    assert path.read_text() == "API_URL=https://x\nAPI_KEY=k\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rest_api_id_comes_from_the_deployed_state(tmp_path: Path) -> None:
    deployed_state(tmp_path, "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api/")
    assert deployed_rest_api(tmp_path, "dev")["rest_api_id"] == "abcdefghij"


# The service as one stack (`make deploy`): its outputs name the URL and the key.


def service_stack(name: str, outputs: dict[str, str]) -> None:
    """A stand-in for the one stack with these outputs (moto's CloudFormation runs no SAM transform)."""
    template = {
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": f"{name}-logs"}}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    clients.session().client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def api_key() -> str:
    """A key in moto's API Gateway (its CloudFormation ignores AWS::ApiGateway::ApiKey); its id."""
    return str(clients.session().client("apigateway").create_api_key(name="k", enabled=True, value=KEY_VALUE)["id"])


def workload_stack(name: str) -> None:
    """The test workload of infra/test-workload.yaml."""
    clients.session().client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=(PROJECT_DIR / "infra" / "test-workload.yaml").read_text(),
        Capabilities=["CAPABILITY_IAM"],
    )


def test_stack_mode_reads_url_and_key_from_the_one_stack(moto_world: None) -> None:
    service_stack("svc", {"EndpointURL": SERVICE_URL, "ApiKeyId": api_key(), "RestAPIId": "abcdefghij"})
    workload_stack("workload")

    values = gather_from_stack(clients.session(), "svc", "workload")

    assert values == {
        "API_URL": "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api",
        "API_KEY": KEY_VALUE,
        "CLUSTER": "test-cluster",
        "SERVICE": "web",
    }


def test_stack_mode_without_a_workload_stack_leaves_out_cluster_and_service(moto_world: None) -> None:
    service_stack("svc", {"EndpointURL": SERVICE_URL, "ApiKeyId": api_key()})
    values = gather_from_stack(clients.session(), "svc", "no-such-workload")
    assert values == {"API_URL": SERVICE_URL.rstrip("/"), "API_KEY": KEY_VALUE}


def test_stack_mode_says_to_deploy_when_the_stack_is_missing(moto_world: None) -> None:
    with pytest.raises(SystemExit, match=r"stack svc does not exist: run `make deploy` first"):
        gather_from_stack(clients.session(), "svc", "workload")


def test_stack_mode_names_the_outputs_a_stack_lacks(moto_world: None) -> None:
    service_stack("access-only", {"ApiKeyId": api_key()})  # api-access.yaml's stack, say
    with pytest.raises(SystemExit, match="has no output EndpointURL"):
        gather_from_stack(clients.session(), "access-only", "workload")


def test_main_with_stack_writes_the_private_env_file_and_prints_no_key(
    moto_world: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    service_stack("ecs-image-updater", {"EndpointURL": SERVICE_URL, "ApiKeyId": api_key()})
    workload_stack("ecs-image-updater-workload")
    output = tmp_path / ".api.env"
    monkeypatch.setattr(sys, "argv", ["aws_connection.py", "--stack", "ecs-image-updater", "--output", str(output)])
    # Stack mode reads no Chalice deployed state.
    monkeypatch.setattr(aws_connection, "PROJECT_DIR", tmp_path / "no-project")

    assert aws_connection.main() == 0

    assert output.read_text() == (
        "API_URL=https://abcdefghij.execute-api.eu-west-1.amazonaws.com/api\n"
        f"API_KEY={KEY_VALUE}\n"
        "CLUSTER=test-cluster\n"
        "SERVICE=web\n"
    )
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert "CLUSTER=test-cluster" in printed
    assert KEY_VALUE not in printed
