"""The one stack of `make deploy`: infra/service.yaml merged into `chalice package`'s SAM template, offline."""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import decode
from chalice.app import CloudWatchEventConfig
from chalice.utils import to_cfn_resource_name

from scripts.aws_connection import SERVICE_STACK_OUTPUTS
from tests.conftest import ACCOUNT, PROJECT_DIR, REGION

MERGE_TEMPLATE = "infra/service.yaml"
API_HANDLER = "api_handler"  # the one function behind every route
TOPIC_NAME = "ecs-image-updater-notifications"


def chalice_package(project_dir: Path, out: Path, *options: str) -> None:
    """`chalice package --stage dev OUT` in project_dir, offline, writing no bytecode into chalicelib/."""
    chalice = Path(sys.executable).with_name("chalice")
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env |= {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    subprocess.run(  # noqa: S603 - fixed command line
        [str(chalice), "package", *options, "--stage", "dev", str(out)],
        cwd=project_dir,
        env=env,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def merged_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`chalice package --merge-template infra/service.yaml --stage dev`, as `make deploy` runs it."""
    out = tmp_path_factory.mktemp("merged")
    chalice_package(PROJECT_DIR, out, "--merge-template", MERGE_TEMPLATE)
    return out


@pytest.fixture(scope="module")
def template(merged_package: Path) -> dict[str, Any]:
    """The merged template: a YAML merge template makes Chalice write sam.yaml, whatever --template-format says."""
    return dict(yaml.safe_load((merged_package / "sam.yaml").read_text()))


@pytest.fixture(scope="module")
def chalice_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What Chalice generates without the merge template."""
    out = tmp_path_factory.mktemp("plain")
    chalice_package(PROJECT_DIR, out)
    return dict(json.loads((out / "sam.json").read_text()))


def app_functions() -> dict[str, str]:
    """Every Lambda function of the app, by Chalice's name, with its handler."""
    from app import app

    functions = {API_HANDLER: "app.app"} if app.routes else {}
    for registered in [*app.event_sources, *app.pure_lambda_functions, *app.builtin_auth_handlers]:
        functions[registered.name] = registered.handler_string
    assert set(functions) - {API_HANDLER} <= set(app.handler_map)
    return functions


def logical_id(function: str) -> str:
    """The logical id Chalice gives a function in the SAM template."""
    return "APIHandler" if function == API_HANDLER else to_cfn_resource_name(function)


def sam_rest_api_stage_id(api: str, stage_name: str) -> str:
    """The logical id SAM gives the stage of an AWS::Serverless::Api (samtranslator ApiGenerator._construct_stage).

    An alphanumeric stage name is spliced in; any other is hashed, and a DependsOn written by
    hand could no longer name the stage.
    """
    assert stage_name.isalnum(), f"SAM hashes the logical id of stage {stage_name!r}"
    return f"{api}{stage_name}Stage"


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """The template's resources of one type, by logical id."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}


def dev_stage() -> dict[str, Any]:
    """The dev stage of .chalice/config.json."""
    return dict(json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())["stages"]["dev"])


def infra_template(name: str) -> dict[str, Any]:
    """One of the templates in infra/, intrinsic functions in their long form (as Chalice writes them)."""
    template, matches = decode(str(PROJECT_DIR / "infra" / name))
    assert not matches
    return dict(template)


def test_merged_template_passes_cfn_lint_with_no_errors_and_no_warnings(merged_package: Path) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(  # noqa: S603 - fixed command line
        [str(cfn_lint), "--format", "parseable", str(merged_package / "sam.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout + result.stderr == ""
    assert result.returncode == 0


def test_the_stack_has_every_lambda_function_of_the_app(template: dict[str, Any]) -> None:
    functions = app_functions()
    assert {API_HANDLER, "deployment_events"} <= set(functions)
    deployed = resources_of_type(template, "AWS::Serverless::Function")
    assert set(deployed) == {logical_id(name) for name in functions}
    for name, handler in functions.items():
        assert deployed[logical_id(name)]["Properties"]["Handler"] == handler


def test_each_event_function_keeps_its_eventbridge_rule(template: dict[str, Any]) -> None:
    from app import app

    assert app.event_sources
    for source in app.event_sources:
        events = list(template["Resources"][logical_id(source.name)]["Properties"]["Events"].values())
        assert events, source.name
        if isinstance(source, CloudWatchEventConfig):
            pattern = source.event_pattern
            expected = json.loads(pattern) if isinstance(pattern, str) else pattern
            assert {"Type": "CloudWatchEvent", "Properties": {"Pattern": expected}} in events, source.name


def test_the_merge_keeps_what_chalice_generates_and_adds_one_variable(
    template: dict[str, Any], chalice_template: dict[str, Any]
) -> None:
    assert template["Transform"] == chalice_template["Transform"] == "AWS::Serverless-2016-10-31"
    for name, output in chalice_template["Outputs"].items():
        assert template["Outputs"][name] == output, name
    for name, resource in chalice_template["Resources"].items():
        merged = copy.deepcopy(template["Resources"][name])
        if name in ("DeploymentEvents", "ApprovalsSweep"):
            # The stand-in of infra/service.yaml adds its lint waiver and NOTIFY_TOPIC_ARN, nothing else.
            del merged["Metadata"]
            del merged["Properties"]["Environment"]["Variables"]["NOTIFY_TOPIC_ARN"]
        if name == "PushWork":
            # It waits for the queue, and reports failed messages one by one: nothing else is added.
            del merged["Metadata"]
            del merged["Properties"]["Environment"]["Variables"]["NOTIFY_TOPIC_ARN"]
            assert merged.pop("DependsOn") == "PushWorkQueue"
            events = merged["Properties"]["Events"]["PushWorkSqsEventSource"]["Properties"]
            assert events.pop("FunctionResponseTypes") == ["ReportBatchItemFailures"]
        assert merged == resource, name


def test_the_push_queue_is_the_same_in_both_ways_to_deploy_and_its_redrive_gives_every_attempt(
    template: dict[str, Any],
) -> None:
    from chalicelib.entrypoints.functions import PUSH_QUEUE_NAME
    from chalicelib.triggers.push_work import MAX_RECEIVES

    own = infra_template("push-queue.yaml")["Resources"]
    merged = template["Resources"]
    for name in ("PushWorkQueue", "PushDeadLetterQueue"):
        assert merged[name] == own[name], name
    queue = merged["PushWorkQueue"]["Properties"]
    assert queue["QueueName"] == PUSH_QUEUE_NAME
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
    timeout = template["Resources"]["PushWork"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout  # Lambda's rule for a queue it reads
    alarm = merged["PushDeadLettersAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["PushDeadLetterQueue", "QueueName"]}}]
    assert (alarm["MetricName"], alarm["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)


def test_api_key_usage_plan_and_plan_key_mirror_api_access_yaml(template: dict[str, Any]) -> None:
    access = infra_template("api-access.yaml")
    resources = template["Resources"]
    for parameter in ("RateLimit", "BurstLimit", "QuotaLimit", "QuotaPeriod"):
        assert template["Parameters"][parameter] == access["Parameters"][parameter], parameter
    assert resources["ApiKey"] == access["Resources"]["ApiKey"]
    assert resources["UsagePlanKey"] == access["Resources"]["UsagePlanKey"]
    plan = resources["UsagePlan"]["Properties"]
    expected_plan = access["Resources"]["UsagePlan"]["Properties"]
    for field in ("UsagePlanName", "Throttle", "Quota"):
        assert plan[field] == expected_plan[field], field
    assert template["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "ApiKey"}
    assert template["Outputs"]["UsagePlanId"]["Value"] == {"Ref": "UsagePlan"}


def test_usage_plan_names_the_rest_apis_stage_and_waits_for_sam_to_make_it(template: dict[str, Any]) -> None:
    rest_api = template["Resources"]["RestAPI"]
    stage_name = rest_api["Properties"]["StageName"]
    assert rest_api["Type"] == "AWS::Serverless::Api"
    assert stage_name == dev_stage()["api_gateway_stage"]
    plan = template["Resources"]["UsagePlan"]
    assert plan["Properties"]["ApiStages"] == [{"ApiId": {"Ref": "RestAPI"}, "Stage": stage_name}]
    # The stage is made by the SAM transform, so it is not in the template yet: cfn-lint does not
    # check this DependsOn (its model of SAM calls the stage RestAPIStage); SAM's rule is applied here.
    stage_id = sam_rest_api_stage_id("RestAPI", stage_name)
    assert plan["DependsOn"] in (stage_id, [stage_id])
    assert f"/{stage_name}/" in template["Outputs"]["EndpointURL"]["Value"]["Fn::Sub"]


def test_every_route_but_the_github_webhook_and_the_dashboard_still_requires_the_api_key(
    template: dict[str, Any],
) -> None:
    from app import app

    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert set(swagger["paths"]) == set(app.routes)
    operations = [(path, operation) for path, ops in swagger["paths"].items() for operation in ops.values()]
    assert operations
    for path, operation in operations:
        if path in ("/hooks/github", "/", "/dashboard/{asset}"):
            # The webhook checks GitHub's HMAC signature itself; the dashboard's page and files hold no data.
            assert "security" not in operation
        else:
            assert operation["security"] == [{"api_key": []}]
    assert swagger["securityDefinitions"]["api_key"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}


def test_state_table_is_the_one_state_table_yaml_defines(template: dict[str, Any]) -> None:
    state = infra_template("state-table.yaml")
    table = template["Resources"]["StateTable"]
    name = state["Parameters"]["TableName"]["Default"]
    expected = dict(state["Resources"]["StateTable"])
    expected["Properties"] = {**expected["Properties"], "TableName": name}  # fixed here, not a parameter
    assert table == expected
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert "TableName" not in template["Parameters"]
    assert template["Outputs"]["StateTableName"] == state["Outputs"]["StateTableName"]
    for function in resources_of_type(template, "AWS::Serverless::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["STATE_TABLE"] == name


def test_notification_topic_is_created_only_when_asked_for(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["NotificationTopic"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("false", ["false", "true"])
    [(topic_id, topic)] = resources_of_type(template, "AWS::SNS::Topic").items()
    condition = topic["Condition"]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "NotificationTopic"}, "true"]}
    assert topic["Properties"]["TopicName"] == TOPIC_NAME
    output = template["Outputs"]["NotificationTopicArn"]
    assert (output["Condition"], output["Value"]) == (condition, {"Ref": topic_id})
    # deployment_events may publish to it.
    policy = json.loads((PROJECT_DIR / ".chalice" / "policy-dev-deployment-events.json").read_text())
    [publish] = [s for s in policy["Statement"] if s["Action"] == "sns:Publish"]
    assert fnmatch.fnmatchcase(f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC_NAME}", publish["Resource"])


def test_notify_topic_arn_reaches_the_functions_that_notify_only_with_the_topic(template: dict[str, Any]) -> None:
    [(topic_id, topic)] = resources_of_type(template, "AWS::SNS::Topic").items()
    functions = resources_of_type(template, "AWS::Serverless::Function")
    for name in ("DeploymentEvents", "PushWork", "ApprovalsSweep"):
        variables = functions[name]["Properties"]["Environment"]["Variables"]
        expected = {"Fn::If": [topic["Condition"], {"Ref": topic_id}, {"Ref": "AWS::NoValue"}]}
        assert variables["NOTIFY_TOPIC_ARN"] == expected
        assert variables["STATE_TABLE"] == dev_stage()["environment_variables"]["STATE_TABLE"]  # Chalice's are kept
    notifying = {
        name for name, f in functions.items() if "NOTIFY_TOPIC_ARN" in f["Properties"]["Environment"]["Variables"]
    }
    assert notifying == {"DeploymentEvents", "PushWork", "ApprovalsSweep"}
    for policy in ("policy-dev-deployment-events.json", "policy-dev-push-work.json", "policy-dev-approvals-sweep.json"):
        statements = json.loads((PROJECT_DIR / ".chalice" / policy).read_text())["Statement"]
        assert any(s["Action"] == "sns:Publish" for s in statements)


def test_the_stack_outputs_what_aws_connection_reads(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert set(SERVICE_STACK_OUTPUTS) <= set(outputs)
    assert "${RestAPI}" in outputs["EndpointURL"]["Value"]["Fn::Sub"]
    assert outputs["RestAPIId"]["Value"] == {"Ref": "RestAPI"}


def test_deployment_zip_is_byte_identical_when_built_again_from_scratch(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT_DIR / "chalicelib", project / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_DIR / "app.py", project / "app.py")
    (project / ".chalice").mkdir()
    for config_file in (PROJECT_DIR / ".chalice").glob("*.json"):
        shutil.copy(config_file, project / ".chalice" / config_file.name)
    # Offline: no requirements to download; the app's own files are what must not vary.
    (project / "requirements.txt").write_text("# none\n")

    chalice_package(project, tmp_path / "first", "--merge-template", str(PROJECT_DIR / MERGE_TEMPLATE))
    shutil.rmtree(project / ".chalice" / "deployments")  # no cached zip to reuse
    for path in project.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))  # as after a fresh checkout
    chalice_package(project, tmp_path / "second", "--merge-template", str(PROJECT_DIR / MERGE_TEMPLATE))

    first = (tmp_path / "first" / "deployment.zip").read_bytes()
    assert first == (tmp_path / "second" / "deployment.zip").read_bytes()
    assert (tmp_path / "first" / "sam.yaml").read_bytes() == (tmp_path / "second" / "sam.yaml").read_bytes()


# `make deploy`


def run_make(*arguments: str, path: Path) -> subprocess.CompletedProcess[str]:
    """make in the project with nothing but `path` on PATH and no DEPLOY_BUCKET from the environment."""
    make = shutil.which("make")
    assert make
    env = {"PATH": str(path), "HOME": str(path)}
    return subprocess.run(  # noqa: S603 - fixed command line
        [make, "--no-print-directory", *arguments],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def fake_path(tmp_path: Path) -> Path:
    """A PATH with an `aws` that only records that it was run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "aws-calls"}\nexit 1\n')
    aws.chmod(0o755)
    return bin_dir


def deploy_commands(*variables: str, path: Path) -> list[str]:
    """The commands `make deploy` would run, continuation lines joined."""
    result = run_make("-n", "deploy", *variables, path=path)
    assert result.returncode == 0, result.stderr
    return [" ".join(line.split()) for line in result.stdout.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.mark.parametrize("bucket", [None, "DEPLOY_BUCKET=", "DEPLOY_BUCKET= "])
def test_deploy_refuses_to_run_without_a_bucket(fake_path: Path, bucket: str | None) -> None:
    result = run_make("deploy", *([bucket] if bucket else []), path=fake_path)
    assert result.returncode != 0
    assert "DEPLOY_BUCKET is not set" in result.stderr
    assert result.stdout == ""  # not one command started
    assert not (fake_path.parent / "aws-calls").exists()


def test_deploy_packages_uploads_deploys_and_writes_the_env_file_in_order(
    fake_path: Path, merged_package: Path
) -> None:
    commands = deploy_commands("DEPLOY_BUCKET=code-bucket", path=fake_path)
    steps = [
        "--merge-template infra/service.yaml --stage dev build/package",
        "aws cloudformation package --template-file build/package/sam.yaml --s3-bucket code-bucket "
        "--output-template-file build/packaged.yaml",
        "aws cloudformation deploy --template-file build/packaged.yaml --stack-name ecs-image-updater",
        "scripts/aws_connection.py --stack ecs-image-updater",
    ]
    positions = [next(i for i, command in enumerate(commands) if step in command) for step in steps]
    assert positions == sorted(positions)
    package, _, deploy, _ = (commands[i] for i in positions)
    assert "chalice package" in package
    assert "PYTHONDONTWRITEBYTECODE=1" in package
    assert any("__pycache__" in command and "rm -rf" in command for command in commands[: positions[0]])
    for flag in ("--capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND", "--no-fail-on-empty-changeset"):
        assert flag in deploy
    assert "--parameter-overrides" not in deploy  # unset parameters keep the stack's values
    assert (merged_package / "sam.yaml").exists()  # the file `aws cloudformation package` is given


def test_deploy_passes_the_stack_name_and_parameters_it_is_given(fake_path: Path, template: dict[str, Any]) -> None:
    commands = deploy_commands(
        "DEPLOY_BUCKET=b",
        "STACK_NAME=ecs-image-updater-staging",
        "NOTIFICATION_TOPIC=true",
        "DEPLOY_PARAMETERS=RateLimit=2 QuotaLimit=100",
        path=fake_path,
    )
    [deploy] = [command for command in commands if "aws cloudformation deploy" in command]
    assert "--stack-name ecs-image-updater-staging " in deploy
    overrides = deploy.split("--parameter-overrides ", 1)[1].split()
    assert overrides == ["NotificationTopic=true", "RateLimit=2", "QuotaLimit=100"]
    assert {override.split("=")[0] for override in overrides} <= set(template["Parameters"])
    assert any("aws_connection.py --stack ecs-image-updater-staging" in command for command in commands)


def test_default_stack_name_keeps_every_function_within_its_log_permissions(
    fake_path: Path, template: dict[str, Any]
) -> None:
    [deploy] = [c for c in deploy_commands("DEPLOY_BUCKET=b", path=fake_path) if "aws cloudformation deploy" in c]
    stack = deploy.split("--stack-name ", 1)[1].split()[0]
    for name, function in resources_of_type(template, "AWS::Serverless::Function").items():
        # CloudFormation names the function <stack>-<logical id>-<suffix>.
        log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{stack}-{name}-AbCdEf123456"
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        [policy] = template["Resources"][role]["Properties"]["Policies"]
        statements = policy["PolicyDocument"]["Statement"]
        log_resources = [s["Resource"] for s in statements if "logs:PutLogEvents" in s["Action"]]
        assert [r for r in log_resources if fnmatch.fnmatchcase(log_group, r)], name
