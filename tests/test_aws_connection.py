"""The command that gathers the deployed service's URL, key, cluster and service into one file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from chalicelib import aws
from scripts.aws_connection import deployed_rest_api, gather, invoke_url, write_env_file
from tests.conftest import PROJECT_DIR


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
    session = aws.session()
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
