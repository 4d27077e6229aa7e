"""CloudFormation templates: lint clean, and the workload deploys into moto with its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

from chalicelib.aws import clients
from chalicelib.state.table import TTL_ATTRIBUTE
from tests.conftest import PROJECT_DIR

TEMPLATES = sorted((PROJECT_DIR / "infra").glob("*.yaml"))


def test_templates_exist() -> None:
    assert {t.name for t in TEMPLATES} >= {"test-workload.yaml", "api-access.yaml", "state-table.yaml"}
    assert not (PROJECT_DIR / "infra" / "lock-table.yaml").exists()  # the state table replaced it


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_cfn_lint_reports_no_errors_and_no_warnings(template: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(  # noqa: S603 - fixed command line
        [str(cfn_lint), "--format", "parseable", str(template)], capture_output=True, text=True, check=False
    )
    assert result.stdout + result.stderr == ""
    assert result.returncode == 0


def test_workload_stack_deploys_with_its_outputs(moto_world: None) -> None:
    cloudformation = clients.session().client("cloudformation")
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
    ecs: Any = clients.session().client("ecs")
    service = ecs.describe_services(cluster=outputs["ClusterName"], services=[outputs["ServiceName"]])["services"][0]
    assert service["taskDefinition"] == outputs["TaskDefinitionArn"]
    container = ecs.describe_task_definition(taskDefinition=outputs["TaskDefinitionArn"])["taskDefinition"]
    assert container["containerDefinitions"][0]["image"] == "public.ecr.aws/nginx/nginx:1.27.0"


def test_state_table_stack_has_the_keys_and_ttl_the_service_uses(moto_world: None) -> None:
    cloudformation = clients.session().client("cloudformation")
    template_path = PROJECT_DIR / "infra" / "state-table.yaml"
    cloudformation.create_stack(StackName="state", TemplateBody=template_path.read_text())
    stack = cloudformation.describe_stacks(StackName="state")["Stacks"][0]
    name = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["StateTableName"]
    dynamodb = clients.session().client("dynamodb")
    table = dynamodb.describe_table(TableName=name)["Table"]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    assert name == config["stages"]["dev"]["environment_variables"]["STATE_TABLE"] == "ecs-image-updater-state"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    # moto's CloudFormation drops TimeToLiveSpecification, so the template itself is read for it.
    template, matches = decode(str(template_path))
    assert not matches
    ttl = template["Resources"]["StateTable"]["Properties"]["TimeToLiveSpecification"]
    assert ttl == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}


def test_every_policy_names_the_state_table_of_the_template() -> None:
    template, _ = decode(str(PROJECT_DIR / "infra" / "state-table.yaml"))
    default = template["Parameters"]["TableName"]["Default"]
    for policy_file in sorted((PROJECT_DIR / ".chalice").glob("policy-*.json")):
        statements = json.loads(policy_file.read_text())["Statement"]
        tables = [s["Resource"] for s in statements if any(a.startswith("dynamodb:") for a in _actions(s))]
        assert tables == [f"arn:aws:dynamodb:*:*:table/{default}"], policy_file.name


def _actions(statement: dict[str, Any]) -> list[str]:
    listed = statement["Action"]
    return [listed] if isinstance(listed, str) else list(listed)


def test_the_example_pipeline_hands_the_deploy_function_parameters_it_takes() -> None:
    from chalicelib.triggers.pipeline import parse_parameters

    template, matches = decode(str(PROJECT_DIR / "infra" / "pipeline.yaml"))
    assert not matches
    [deploy] = [
        stage for stage in template["Resources"]["Pipeline"]["Properties"]["Stages"] if stage["Name"] == "Deploy"
    ]
    [action] = deploy["Actions"]
    assert action["ActionTypeId"] == {"Category": "Invoke", "Owner": "AWS", "Provider": "Lambda", "Version": "1"}
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    assert "pipeline_deploy" in config["stages"]["dev"]["lambda_functions"]
    default_name = template["Parameters"]["DeployFunctionName"]["Default"]
    assert default_name == f"{config['app_name']}-dev-pipeline_deploy"  # how Chalice names the function
    values = {"ClusterName": "prod", "ServiceName": "web", "ContainerName": "app", "TimeoutMinutes": "30"}
    for branch in action["Configuration"]["UserParameters"]["Fn::If"][1:]:
        text = branch["Fn::Sub"]
        for name, value in values.items():
            text = text.replace("${" + name + "}", value)
        parameters = parse_parameters(text)
        assert (parameters.cluster, parameters.services, parameters.wait) == ("prod", ("web",), True)
        assert parameters.timeout_minutes == 30
