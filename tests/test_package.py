"""`chalice package` output, checked offline: key on every route, the policy file, a tiny zip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_DIR

# The code is a few dozen KB; boto3 alone would add megabytes.
MAX_ZIP_BYTES = 200 * 1024


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": "eu-west-1"}
    subprocess.run(  # noqa: S603 - fixed command line
        [str(chalice), "package", "--stage", "dev", str(out)], cwd=PROJECT_DIR, env=env, check=True, capture_output=True
    )
    return out


@pytest.fixture(scope="module")
def template(package: Path) -> dict[str, Any]:
    return json.loads((package / "sam.json").read_text())


def test_every_route_requires_the_api_key(template: dict[str, Any]) -> None:
    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    operations = [op for path in swagger["paths"].values() for op in path.values()]
    assert operations
    for operation in operations:
        assert operation["security"] == [{"api_key": []}]
    assert swagger["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}


def test_lambda_uses_the_policy_file(template: dict[str, Any]) -> None:
    policy_file = json.loads((PROJECT_DIR / ".chalice" / "policy-dev.json").read_text())
    role = template["Resources"]["ApiHandlerRole"]["Properties"]
    assert [p["PolicyDocument"] for p in role["Policies"]] == [policy_file]
    assert template["Resources"]["APIHandler"]["Properties"]["Role"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}


def test_deployment_zip_is_small_and_has_no_boto3(package: Path) -> None:
    archive = package / "deployment.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert archive.stat().st_size < MAX_ZIP_BYTES
    assert "app.py" in names
    assert not [n for n in names if n.startswith(("boto3/", "botocore/", "moto/"))]


def test_lambda_timeout_leaves_room_for_the_request_budget(template: dict[str, Any]) -> None:
    assert template["Resources"]["APIHandler"]["Properties"]["Timeout"] >= 26
