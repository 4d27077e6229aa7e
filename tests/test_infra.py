"""CloudFormation templates: lint clean, and the workload deploys into moto with its outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from chalicelib import aws
from tests.conftest import PROJECT_DIR

TEMPLATES = sorted((PROJECT_DIR / "infra").glob("*.yaml"))


def test_templates_exist() -> None:
    assert {t.name for t in TEMPLATES} >= {"test-workload.yaml", "api-access.yaml", "lock-table.yaml"}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_cfn_lint_reports_no_errors_and_no_warnings(template: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(  # noqa: S603 - fixed command line
        [str(cfn_lint), "--format", "parseable", str(template)], capture_output=True, text=True, check=False
    )
    assert result.stdout + result.stderr == ""
    assert result.returncode == 0


def test_workload_stack_deploys_with_its_outputs(moto_world: None) -> None:
    cloudformation = aws.session().client("cloudformation")
    cloudformation.create_stack(
        StackName="workload",
        TemplateBody=(PROJECT_DIR / "infra" / "test-workload.yaml").read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": "ServiceName", "ParameterValue": "shop"}],
    )
    stack = cloudformation.describe_stacks(StackName="workload")["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs["ClusterName"] == "test-cluster"
    assert outputs["ServiceName"] == "shop"
    ecs: Any = aws.session().client("ecs")
    service = ecs.describe_services(cluster=outputs["ClusterName"], services=[outputs["ServiceName"]])["services"][0]
    assert service["taskDefinition"] == outputs["TaskDefinitionArn"]
    container = ecs.describe_task_definition(taskDefinition=outputs["TaskDefinitionArn"])["taskDefinition"]
    assert container["containerDefinitions"][0]["image"] == "public.ecr.aws/nginx/nginx:1.27"


def test_lock_table_stack_has_the_key_and_ttl_the_lock_uses(moto_world: None) -> None:
    cloudformation = aws.session().client("cloudformation")
    cloudformation.create_stack(StackName="locks", TemplateBody=(PROJECT_DIR / "infra" / "lock-table.yaml").read_text())
    stack = cloudformation.describe_stacks(StackName="locks")["Stacks"][0]
    name = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["LockTableName"]
    dynamodb = aws.session().client("dynamodb")
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert name == "ecs-image-updater-locks"
    assert table["KeySchema"] == [{"AttributeName": "lockId", "KeyType": "HASH"}]
    # moto's CloudFormation drops TimeToLiveSpecification, so the template itself is read for it.
    template, matches = decode(str(PROJECT_DIR / "infra" / "lock-table.yaml"))
    assert not matches
    ttl = template["Resources"]["LockTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": "expiresAt", "Enabled": True}
