"""The HTTP layer through Chalice's test client: status codes, bodies, key check, logging."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.conftest import API_KEY, ECR, PROJECT_DIR, Workload, active_revisions, create_service, post
from tests.faults import ENDPOINT, client_error, fail_call

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web", "tag": "1.1"}


def test_update_answers_200_with_the_documented_shape(http: Any, workload: Workload) -> None:
    response = post(http, "/update", UPDATE)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json_body
    assert set(body) == {
        "changed",
        "cluster",
        "service",
        "taskDefinition",
        "previousTaskDefinition",
        "containers",
        "deployment",
        "serviceStatus",
        "warnings",
    }
    assert body["changed"] is True
    assert (body["cluster"], body["service"], body["serviceStatus"]) == ("test-cluster", "web", "ACTIVE")
    assert body["taskDefinition"]["arn"].endswith(":task-definition/web:2")
    assert {k: body["taskDefinition"][k] for k in ("family", "revision", "status")} == {
        "family": "web",
        "revision": 2,
        "status": "ACTIVE",
    }
    assert body["previousTaskDefinition"] == {"arn": workload.running_arn, "family": "web", "revision": 1}
    assert body["containers"] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:1.1", "digest": None}
    ]


def test_dry_run_answers_the_diff_and_writes_nothing(http: Any, setup_ecs: Any, workload: Workload) -> None:
    body = post(http, "/update", {**UPDATE, "dryRun": True}).json_body
    assert body["dryRun"] is True
    assert body["diff"] == [
        {"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.0", "to": f"{ECR}/web:1.1"}
    ]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_containers_map_over_http(http: Any, workload: Workload) -> None:
    body = {"cluster": "test-cluster", "service": "web", "containers": {"app": f"{ECR}/web:3", "worker": "w:2"}}
    response = post(http, "/update", body)
    assert response.status_code == 200
    assert [c["image"] for c in response.json_body["containers"]] == [f"{ECR}/web:3", "w:2"]
    unknown = post(http, "/update", {**body, "containers": {"ghost": "w:2"}})
    assert unknown.status_code == 404
    assert "'ghost'" in unknown.json_body["Message"]


def test_noop_answers_changed_false(http: Any, workload: Workload) -> None:
    body = post(http, "/update", {**UPDATE, "tag": "1.0"}).json_body
    assert body["changed"] is False
    assert body["previousTaskDefinition"] is None
    assert body["taskDefinition"]["arn"] == workload.running_arn
    assert body["deployment"] is None


def test_force_new_deployment_fills_deployment_with_iso_timestamps(http: Any, workload: Workload) -> None:
    body = post(http, "/update", {**UPDATE, "tag": "1.0", "forceNewDeployment": True}).json_body
    assert body["changed"] is False
    assert body["deployment"]["status"] == "PRIMARY"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["deployment"]["createdAt"])


@pytest.mark.parametrize(
    "headers", [{"x-api-key": ""}, {"x-api-key": "wrong"}, {"x-api-key": API_KEY + "x"}, {"x-api-key": API_KEY[:-1]}]
)
def test_wrong_key_is_refused_with_403(http: Any, workload: Workload, setup_ecs: Any, headers: dict[str, str]) -> None:
    response = post(http, "/update", UPDATE, headers=headers)
    assert response.status_code == 403
    assert response.json_body == {"Code": "ForbiddenError", "Message": "a valid x-api-key header is required"}
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_missing_key_is_refused_with_403(http: Any, workload: Workload) -> None:
    response = http.post("/update", headers={"Content-Type": "application/json"}, body=json.dumps(UPDATE))
    assert response.status_code == 403


def test_without_local_key_the_app_leaves_the_key_to_api_gateway(
    http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_API_KEY")
    response = http.post("/update", headers={"Content-Type": "application/json"}, body=json.dumps(UPDATE))
    assert response.status_code == 200


def test_route_requires_an_api_key_in_api_gateway() -> None:
    from app import app

    assert app.routes["/update"]["POST"].api_key_required is True


def test_missing_content_type_is_a_400(http: Any, workload: Workload) -> None:
    response = http.post("/update", headers={"x-api-key": API_KEY}, body=json.dumps(UPDATE))
    assert response.status_code == 400
    assert "Content-Type" in response.json_body["Message"]


def test_other_content_type_keeps_chalices_415_as_json_that_says_so(http: Any, workload: Workload) -> None:
    response = post(http, "/update", UPDATE, headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["Content-Type"] == "application/json"
    assert response.json_body["Code"] == "UnsupportedMediaType"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "not valid JSON"),
        ("[]", "read as an imagedefinitions.json"),
        ({**UPDATE, "cluster": 1}, "'cluster'"),
        ({**UPDATE, "image": "UPPER/case"}, "'image'"),
        ({**UPDATE, "surprise": True}, "'surprise'"),
        ({k: v for k, v in UPDATE.items() if k != "tag"}, "'tag'"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(http: Any, workload: Workload, body: Any, field: str) -> None:
    response = post(http, "/update", body)
    assert response.status_code == 400
    assert response.json_body["Code"] == "BadRequestError"
    assert field in response.json_body["Message"]


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"cluster": "nope"}, 404, "cluster 'nope' was not found"),
        ({"service": "ghost"}, 404, "service 'ghost' was not found"),
        ({"container": "sidecar"}, 404, "container 'sidecar' is not in task definition web:1"),
        ({"image": "elsewhere/thing"}, 400, "name the one to change in 'container'"),
    ],
)
def test_domain_failures_map_to_their_status(
    http: Any, workload: Workload, change: dict[str, str], status: int, message: str
) -> None:
    response = post(http, "/update", {**UPDATE, **change})
    assert response.status_code == status
    assert message in response.json_body["Message"]


def test_code_deploy_service_is_a_409(http: Any, setup_ecs: Any, workload: Workload) -> None:
    create_service(
        setup_ecs, workload.cluster, "bg", workload.running_arn, deploymentController={"type": "CODE_DEPLOY"}
    )
    response = post(http, "/update", {**UPDATE, "service": "bg"})
    assert response.status_code == 409
    assert response.json_body["Code"] == "ConflictError"


def test_draining_or_inactive_service_is_a_409(http: Any, setup_ecs: Any, workload: Workload) -> None:
    setup_ecs.update_service(cluster=workload.cluster, service=workload.service, desiredCount=0)
    setup_ecs.delete_service(cluster=workload.cluster, service=workload.service)
    response = post(http, "/update", UPDATE)
    assert response.status_code == 409
    assert "INACTIVE" in response.json_body["Message"]


@pytest.mark.parametrize(
    ("operation", "error", "status", "code"),
    [
        (
            "DescribeServices",
            lambda: client_error("DescribeServices", "ThrottlingException"),
            429,
            "TooManyRequestsError",
        ),
        ("DescribeTaskDefinition", lambda: ReadTimeoutError(endpoint_url=ENDPOINT), 504, "GatewayTimeoutError"),
        (
            "RegisterTaskDefinition",
            lambda: client_error("RegisterTaskDefinition", "AccessDeniedException", "no"),
            502,
            "BadGatewayError",
        ),
        (
            "UpdateService",
            lambda: client_error("UpdateService", "ServerException", "boom", 500),
            502,
            "BadGatewayError",
        ),
    ],
)
def test_aws_failures_name_the_failed_step(
    http: Any, ecs: Any, setup_ecs: Any, workload: Workload, operation: str, error: Any, status: int, code: str
) -> None:
    fail_call(ecs, operation, error)
    response = post(http, "/update", UPDATE)
    assert response.status_code == status
    assert response.json_body["Code"] == code
    assert operation in response.json_body["Message"]
    assert "Traceback" not in response.body.decode()
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    assert ("Retry-After" in response.headers) == (status == 429)


def test_unexpected_bug_is_logged_not_shown(http: Any, ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "DescribeServices", lambda: RuntimeError("secret internals at line 42"))
    response = post(http, "/update", UPDATE)
    assert response.status_code == 500
    assert "secret internals" not in response.body.decode()
    assert "Traceback" not in response.body.decode()


def test_one_json_log_line_per_request_without_the_key(
    http: Any, workload: Workload, request_log: list[dict[str, Any]]
) -> None:
    post(http, "/update", UPDATE)
    post(http, "/update", UPDATE, headers={"x-api-key": "wrong-key-value"})

    assert len(request_log) == 2
    done, refused = request_log
    assert {k: done[k] for k in ("cluster", "service", "fromRevision", "toRevision", "changed", "status")} == {
        "cluster": "test-cluster",
        "service": "web",
        "fromRevision": 1,
        "toRevision": 2,
        "changed": True,
        "status": 200,
    }
    assert isinstance(done["durationMs"], float)
    assert refused["status"] == 403
    logged = json.dumps(request_log)
    assert API_KEY not in logged
    assert "wrong-key-value" not in logged


def test_local_stage_sets_a_key_and_deployed_stage_does_not() -> None:
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    assert config["autogen_policy"] is False
    assert "iam_policy_file" not in config  # each function of each deployed stage names its own
    functions = config["stages"]["dev"]["lambda_functions"]
    assert functions["api_handler"]["iam_policy_file"] == "policy-dev.json"
    assert functions["deployment_events"]["iam_policy_file"] == "policy-dev-deployment-events.json"
    for function in functions.values():
        assert (PROJECT_DIR / ".chalice" / function["iam_policy_file"]).exists()
    assert config["stages"]["local"]["environment_variables"]["LOCAL_API_KEY"]
    assert "LOCAL_API_KEY" not in config["stages"]["dev"].get("environment_variables", {})
    assert config["stages"]["dev"]["environment_variables"]["STATE_TABLE"] == "ecs-image-updater-state"
    assert "LOCAL_API_KEY" not in config.get("environment_variables", {})


def policy_statements() -> list[dict[str, Any]]:
    policy = json.loads((PROJECT_DIR / ".chalice" / "policy-dev.json").read_text())
    return list(policy["Statement"])


def actions_of(statement: dict[str, Any]) -> list[str]:
    listed = statement["Action"]
    return [listed] if isinstance(listed, str) else list(listed)


def resources_of(statement: dict[str, Any]) -> list[str]:
    listed = statement["Resource"]
    return [listed] if isinstance(listed, str) else list(listed)


def test_policy_scopes_each_action() -> None:
    for statement in policy_statements():
        assert statement["Effect"] == "Allow"
        actions = actions_of(statement)
        assert "*" not in actions
        assert not any(a.endswith(":*") for a in actions)
        if "iam:PassRole" in actions:
            assert actions == ["iam:PassRole"]
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
        if {"ecs:DescribeServices", "ecs:UpdateService"} & set(actions):
            assert all(":service/" in arn for arn in resources_of(statement))  # services only
        if {"ecs:DescribeServiceDeployments", "ecs:StopServiceDeployment", "ecs:ContinueServiceDeployment"} & set(
            actions
        ):
            assert all(":service-deployment/" in arn for arn in resources_of(statement))
        if "ecs:DescribeServiceRevisions" in actions:
            assert all(":service-revision/" in arn for arn in resources_of(statement))
        if "ecs:TagResource" in actions:
            assert statement["Condition"] == {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}
        if any(a.startswith("dynamodb:") for a in actions):
            assert all(":table/" in arn and not arn.endswith("/*") for arn in resources_of(statement))  # one table
        if any(a.startswith("logs:") for a in actions):
            assert statement["Resource"].startswith("arn:aws:logs:*:*:log-group:/aws/lambda/ecs-image-updater-")
        if statement["Resource"] == "*":
            # Only the calls that take no resource ARN in IAM.
            assert set(actions) <= {
                "ecs:ListClusters",  # GET /services lists every cluster of each place
                "ecs:ListServices",
                "ecs:DescribeTaskDefinition",
                "ecs:RegisterTaskDefinition",
                "ecs:DeregisterTaskDefinition",
            }


def test_policy_grants_exactly_the_calls_the_service_makes() -> None:
    actions = {action for statement in policy_statements() for action in actions_of(statement)}
    assert actions == {
        "ecs:ListClusters",
        "ecs:ListServices",
        "ecs:ListServiceDeployments",
        "ecs:DescribeServiceDeployments",
        "ecs:DescribeServiceRevisions",
        "ecs:StopServiceDeployment",
        "ecs:ContinueServiceDeployment",
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
        "ecs:DeregisterTaskDefinition",
        "ecs:TagResource",
        "iam:PassRole",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",  # a push's state, written with its record when the release falls back
        "dynamodb:BatchWriteItem",  # the follower index of a fan-out too large for one transaction
        "dynamodb:ConditionCheckItem",  # the freeze gates, checked in the transaction that takes the locks
        "dynamodb:BatchGetItem",  # the freeze gates read: a freeze that refuses, a dry run, a freeze written
        "sqs:GetQueueUrl",  # /hooks/push queues the work
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",  # the webhooks' signing secrets, ecs-image-updater/* only
        "ecr:BatchGetImage",  # the image exists, before anything is written
        "secretsmanager:DescribeSecret",  # a secret a rollback's revision references exists (never read)
        "ssm:GetParameters",
        "sts:AssumeRole",  # the target role of another account (ecs-image-updater-target only)
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
