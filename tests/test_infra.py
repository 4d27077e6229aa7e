"""CloudFormation templates: lint clean, and the workload deploys into moto with its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from fnmatch import fnmatch
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


def test_a_target_account_forwards_what_the_event_functions_match() -> None:
    from chalicelib.entrypoints.functions import DEPLOYMENT_EVENTS, ECR_PUSHES, TAG_CHANGES

    template, matches = decode(str(PROJECT_DIR / "infra" / "target-account.yaml"))
    assert not matches
    rules = {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    assert rules["ForwardDeploymentEvents"]["EventPattern"] == DEPLOYMENT_EVENTS
    assert rules["ForwardRegistryPushes"]["EventPattern"] == ECR_PUSHES
    assert rules["ForwardServiceTagChanges"]["EventPattern"] == TAG_CHANGES
    for rule in rules.values():
        [target] = rule["Targets"]
        assert target["Arn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:events:${HomeRegion}:${HomeAccountId}:event-bus/default"
        }


def test_the_target_role_trusts_only_the_service_functions_with_the_external_id() -> None:
    template, _ = decode(str(PROJECT_DIR / "infra" / "target-account.yaml"))
    role = template["Resources"]["TargetRole"]["Properties"]
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    assert template["Parameters"]["RoleName"]["Default"] == "ecs-image-updater-target"
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"] == {"sts:ExternalId": {"Ref": "ExternalId"}}
    home = "arn:aws:iam::111111111111:role/"
    patterns = [
        pattern["Fn::Sub"]
        .replace("${AWS::Partition}", "aws")
        .replace("${HomeAccountId}", "111111111111")
        .replace("${HomeStackName}", template["Parameters"]["HomeStackName"]["Default"])
        .replace("${HomeStage}", template["Parameters"]["HomeStage"]["Default"])
        for pattern in trust["Condition"]["ArnLike"]["aws:PrincipalArn"]
    ]
    # registry_push only decides and queues; approvals_sweep only reads and writes the state table.
    staying_home = ("registry_push", "approvals_sweep")
    reaching = [name for name in config["stages"]["dev"]["lambda_functions"] if name not in staying_home]
    for function in reaching:  # as `chalice deploy` names a function's role, and as `make deploy`'s stack does
        assert any(fnmatch(f"{home}{config['app_name']}-dev-{function}", p) for p in patterns), function
        logical = "".join(part.title() for part in function.split("_")) + "Role"
        assert any(fnmatch(f"{home}ecs-image-updater-{logical}-1A2B3C4D", p) for p in patterns), logical
    others = (
        "ecs-image-updater-workload-TaskExecutionRole-1A2B",
        "ecs-image-updater-dev-registry_push",
        "ecs-image-updater-dev-approvals_sweep",
        "admin",
    )
    for other in others:
        assert not any(fnmatch(f"{home}{other}", p) for p in patterns), other
    passes = [s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if "iam:PassRole" in _actions(s)]
    assert [s["Condition"] for s in passes] == [{"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}]


def test_the_target_account_stack_deploys_in_another_account(moto_world: None) -> None:
    """Deployed into account 222222222222 (moto's CloudFormation, with the credentials of a role there)."""
    credentials = (
        clients.session()
        .client("sts")
        .assume_role(RoleArn="arn:aws:iam::222222222222:role/admin", RoleSessionName="stackset")["Credentials"]
    )
    there = {
        "aws_access_key_id": credentials["AccessKeyId"],
        "aws_secret_access_key": credentials["SecretAccessKey"],
        "aws_session_token": credentials["SessionToken"],
    }
    cloudformation = clients.session().client("cloudformation", region_name="eu-west-1", **there)
    parameters = {"HomeAccountId": "123456789012", "HomeRegion": "us-east-1", "ExternalId": "org-external-id"}
    cloudformation.create_stack(
        StackName="ecs-image-updater-target",
        TemplateBody=(PROJECT_DIR / "infra" / "target-account.yaml").read_text(),
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
    )
    stack = cloudformation.describe_stacks(StackName="ecs-image-updater-target")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["TargetRoleArn"] == "arn:aws:iam::222222222222:role/ecs-image-updater-target"
    rules = clients.session().client("events", region_name="eu-west-1", **there).list_rules()["Rules"]
    assert len(rules) == 3
