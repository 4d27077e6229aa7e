"""`chalice package` output, checked offline: the key (and on an IAM stage SigV4) on every route, the policy
files, a small zip."""

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

# The code is about 170 KB zipped and PyYAML's wheel (its C loader) about 800 KB; boto3 alone would add megabytes.
MAX_ZIP_BYTES = 1200 * 1024
# GitHub cannot send a key or sign with SigV4: the webhook checks its own HMAC signature. The dashboard's page
# and files hold no data: they load before the caller types a key.
UNSIGNED_ROUTES = {"/hooks/github", "/", "/dashboard/{asset}"}


def chalice_package(out: Path, auth_mode: str | None = None) -> Path:
    """`chalice package --stage dev` into `out`, with AUTH_MODE as the shell would give it."""
    chalice = Path(sys.executable).with_name("chalice")
    env = {key: value for key, value in os.environ.items() if key != "AUTH_MODE"}
    env["AWS_DEFAULT_REGION"] = "eu-west-1"
    if auth_mode is not None:
        env["AUTH_MODE"] = auth_mode
    subprocess.run(  # noqa: S603 - fixed command line
        [str(chalice), "package", "--stage", "dev", str(out)], cwd=PROJECT_DIR, env=env, check=True, capture_output=True
    )
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chalice_package(tmp_path_factory.mktemp("package"))


@pytest.fixture(scope="module")
def template(package: Path) -> dict[str, Any]:
    return json.loads((package / "sam.json").read_text())


def operations_of(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation of the REST API, by `METHOD path`."""
    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    return {f"{method.upper()} {path}": op for path, ops in swagger["paths"].items() for method, op in ops.items()}


def test_every_route_but_the_github_webhook_requires_the_api_key(template: dict[str, Any]) -> None:
    operations = operations_of(template)
    assert len(operations) > 10
    for name, operation in operations.items():
        if name.split(" ", 1)[1] in UNSIGNED_ROUTES:
            assert "security" not in operation, name
        else:
            assert operation["security"] == [{"api_key": []}], name
    swagger = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert swagger["securityDefinitions"] == {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}


def test_an_iam_stage_asks_for_sigv4_and_the_key_on_every_route_but_the_github_webhook(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    iam = json.loads((chalice_package(tmp_path_factory.mktemp("iam"), "iam") / "sam.json").read_text())
    operations = operations_of(iam)
    for name, operation in operations.items():
        if name.split(" ", 1)[1] in UNSIGNED_ROUTES:
            assert "security" not in operation, name
        else:
            # Chalice writes API Gateway's two requirements of a method as two objects: AWS_IAM, and the key.
            assert sorted(operation["security"], key=str) == [{"api_key": []}, {"sigv4": []}], name
    swagger = iam["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_an_unknown_auth_mode_refuses_to_package(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        chalice_package(tmp_path, "iam-please")
    assert b"AUTH_MODE='iam-please' is neither 'key' nor 'iam'" in failed.value.stderr + failed.value.stdout


@pytest.mark.parametrize(
    ("function", "role", "policy"),
    [
        ("APIHandler", "ApiHandlerRole", "policy-dev.json"),
        ("DeploymentEvents", "DeploymentEventsRole", "policy-dev-deployment-events.json"),
        ("RegistryPush", "RegistryPushRole", "policy-dev-registry-push.json"),
        ("PipelineDeploy", "PipelineDeployRole", "policy-dev-pipeline-deploy.json"),
        ("PushWork", "PushWorkRole", "policy-dev-push-work.json"),
        ("FollowerTags", "FollowerTagsRole", "policy-dev-follower-tags.json"),
        ("FollowersReconcile", "FollowersReconcileRole", "policy-dev-followers-reconcile.json"),
        ("ApprovalsSweep", "ApprovalsSweepRole", "policy-dev-approvals-sweep.json"),
    ],
)
def test_each_function_has_its_own_role_with_its_policy_file(
    template: dict[str, Any], function: str, role: str, policy: str
) -> None:
    policy_file = json.loads((PROJECT_DIR / ".chalice" / policy).read_text())
    properties = template["Resources"][role]["Properties"]
    assert [p["PolicyDocument"] for p in properties["Policies"]] == [policy_file]
    assert template["Resources"][function]["Properties"]["Role"] == {"Fn::GetAtt": [role, "Arn"]}


def test_deployment_events_is_triggered_by_ecs_deployment_state_changes(template: dict[str, Any]) -> None:
    function = template["Resources"]["DeploymentEvents"]["Properties"]
    assert function["Handler"] == "chalicelib.entrypoints.functions.deployment_events"
    [trigger] = function["Events"].values()
    assert trigger == {
        "Type": "CloudWatchEvent",
        "Properties": {
            "Pattern": {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change", "ECS Hook State Change"]}
        },
    }
    assert function["Environment"]["Variables"]["STATE_TABLE"] == "ecs-image-updater-state"


def test_deployment_events_may_publish_only_to_the_topic_and_change_nothing_in_ecs() -> None:
    policy = json.loads((PROJECT_DIR / ".chalice" / "policy-dev-deployment-events.json").read_text())
    granted = {
        (action, statement["Resource"])
        for statement in policy["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert ("sns:Publish", "arn:aws:sns:*:*:ecs-image-updater-*") in granted
    # It reads services and revisions (the follower index) and ECS's service deployments (outcomes); it writes
    # nothing to ECS (StopServiceDeployment is the REST API's alone).
    assert {action for action, _ in granted if action.startswith("ecs:")} == {
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:ListServiceDeployments",
        "ecs:DescribeServiceDeployments",
        "ecs:DescribeServiceRevisions",
    }
    assert all(resource != "*" for action, resource in granted if action != "ecs:DescribeTaskDefinition")


def test_deployment_zip_is_small_and_has_no_boto3(package: Path) -> None:
    archive = package / "deployment.zip"
    names = zipfile.ZipFile(archive).namelist()
    assert archive.stat().st_size < MAX_ZIP_BYTES
    assert "app.py" in names
    assert "chalicelib/permissions.example.yaml" in names  # a permissions file under chalicelib/ is packaged
    assert not [n for n in names if n.startswith(("boto3/", "botocore/", "moto/"))]


def test_the_dashboards_files_are_packaged(package: Path) -> None:
    archive = zipfile.ZipFile(package / "deployment.zip")
    for name in ("index.html", "app.js", "style.css"):
        packaged = archive.read(f"chalicelib/dashboard/{name}")
        assert packaged == (PROJECT_DIR / "chalicelib" / "dashboard" / name).read_bytes(), name


def test_lambda_timeout_leaves_room_for_the_request_budget(template: dict[str, Any]) -> None:
    assert template["Resources"]["APIHandler"]["Properties"]["Timeout"] >= 26


@pytest.mark.parametrize(
    ("function", "megabytes"),
    [
        ("APIHandler", 1769),
        ("PushWork", 1769),
        ("PipelineDeploy", 1769),
        ("FollowersReconcile", 1769),
        ("RegistryPush", 256),  # it only decides and queues
        ("DeploymentEvents", 256),
        ("FollowerTags", 256),
        ("ApprovalsSweep", 256),  # a Query and a few conditional writes a minute
    ],
)
def test_functions_that_move_services_get_a_full_vcpu(template: dict[str, Any], function: str, megabytes: int) -> None:
    # Lambda's CPU follows memory (one vCPU at 1769 MB); a fan-out spends ~90 ms of one core in botocore.
    assert template["Resources"][function]["Properties"]["MemorySize"] == megabytes


def test_registry_push_runs_on_successful_ecr_pushes(template: dict[str, Any]) -> None:
    function = template["Resources"]["RegistryPush"]["Properties"]
    assert function["Handler"] == "chalicelib.entrypoints.functions.registry_push"
    assert function["Timeout"] == 60  # one Query, one transaction, one batch of messages
    [trigger] = function["Events"].values()
    assert trigger["Properties"]["Pattern"] == {
        "source": ["aws.ecr"],
        "detail-type": ["ECR Image Action"],
        "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
    }


def test_only_the_functions_that_find_followers_may_list_tagged_resources() -> None:
    def grants(policy: str) -> set[str]:
        statements = json.loads((PROJECT_DIR / ".chalice" / policy).read_text())["Statement"]
        return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    holders = [
        p.name for p in (PROJECT_DIR / ".chalice").glob("policy-dev*.json") if "tag:GetResources" in grants(p.name)
    ]
    assert holders == ["policy-dev-followers-reconcile.json"]  # a push reads the follower index instead
    assert not any(a.startswith("ecs:") for a in grants("policy-dev-registry-push.json"))  # it deploys nothing


def test_push_work_is_fed_by_the_queue_and_finishes_long_before_a_message_comes_back(template: dict[str, Any]) -> None:
    from chalicelib.entrypoints.functions import PUSH_QUEUE_NAME, PUSH_WORK_BATCH

    function = template["Resources"]["PushWork"]["Properties"]
    [trigger] = function["Events"].values()
    assert trigger["Type"] == "SQS"
    assert trigger["Properties"]["Queue"]["Fn::Sub"].endswith(f":{PUSH_QUEUE_NAME}")
    assert trigger["Properties"]["BatchSize"] == PUSH_WORK_BATCH
    assert function["Timeout"] == 120
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["environment_variables"]["PUSH_QUEUE"] == PUSH_QUEUE_NAME


def test_pipeline_deploy_may_report_job_results_and_reads_artifacts_with_the_jobs_credentials(
    template: dict[str, Any],
) -> None:
    function = template["Resources"]["PipelineDeploy"]["Properties"]
    assert function["Handler"] == "chalicelib.entrypoints.functions.pipeline_deploy"
    assert function["Timeout"] == 60
    statements = json.loads((PROJECT_DIR / ".chalice" / "policy-dev-pipeline-deploy.json").read_text())["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"codepipeline:PutJobSuccessResult", "codepipeline:PutJobFailureResult"} <= actions
    assert not any(action.startswith("s3:") for action in actions)  # the job's artifact credentials read S3


def test_each_event_function_runs_from_its_own_handler_module_without_app_py(template: dict[str, Any]) -> None:
    # Lambda imports the handler's module alone (app.py is never imported for an event function): it must
    # set up its own log line. An unreadable event is logged and ignored without touching AWS.
    handlers = {
        name: resource["Properties"]["Handler"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function" and name != "APIHandler"
    }
    assert set(handlers) == {
        "DeploymentEvents",
        "RegistryPush",
        "PipelineDeploy",
        "PushWork",
        "FollowerTags",
        "FollowersReconcile",
        "ApprovalsSweep",
    }
    handlers.pop("FollowersReconcile")  # its every run reads AWS: imported below, not run
    unreadable = {
        "version": "0",
        "id": "e1",
        "detail-type": "x",
        "source": "x",
        "account": "123456789012",
        "time": "2026-12-06T10:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {},
    }
    payloads = {"PushWork": {"Records": []}}
    for name, handler in handlers.items():
        module, _, function = handler.rpartition(".")
        script = f"import {module} as m; m.{function}({payloads.get(name, unreadable)!r}, None)"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"AWS_DEFAULT_REGION": "eu-west-1"}
        ran = subprocess.run(  # noqa: S603 - fixed command line
            [sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=True
        )
        logged = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
        assert logged, f"{handler} wrote no log line: {ran.stdout!r} {ran.stderr!r}"
        assert logged[-1]["function"] == function
    module, _, function = template["Resources"]["FollowersReconcile"]["Properties"]["Handler"].rpartition(".")
    subprocess.run(  # noqa: S603 - fixed command line
        [sys.executable, "-c", f"import {module} as m; assert callable(m.{function})"], cwd=PROJECT_DIR, check=True
    )
