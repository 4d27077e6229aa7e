"""Each function's policy grants every AWS call the function makes: each runs what it does, and its calls are
held against its own policy file (.chalice/policy-dev*.json), as IAM authorises them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from typing import Any

import pytest

from chalicelib.access.signatures import sign
from chalicelib.aws import clients
from tests.conftest import (
    API_KEY,
    ECR,
    PROJECT_DIR,
    CodePipeline,
    EcsDeployments,
    PushQueue,
    Subscriber,
    Workload,
    create_follower,
    create_service,
    deliver,
    index_followers,
    post,
    register,
    rich_container,
    scheduled_event,
)
from tests.follow.test_outcomes import deployment_event
from tests.triggers.test_pipeline import artifact, job_event
from tests.triggers.test_push import ecr_event

WEB = f"{ECR}/web"
SERVICES = ("ecs", "dynamodb", "sqs", "sns", "resourcegroupstaggingapi", "secretsmanager", "ecr", "ssm")
# Every version the functions deploy here, in moto's ECR: the checks before a write run as deployed.
PUSHED_TAGS = ("2", "3", "4", "7", "1.4.2", "1.4.3", "1.6.0", "1.9.0", "1.9.1", "1.9.2")
IAM_PREFIX = {"resourcegroupstaggingapi": "tag"}
# IAM authorises a batch or a transaction item by item, as the single call.
AUTHORISED_AS = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}
TRANSACTION_ITEM = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@pytest.fixture(autouse=True)
def functions_get_their_configured_time(lambda_time: None, atomic_aws: None) -> None:
    """The functions budget their work by the time their context says is left; moto takes one request at a time."""


@pytest.fixture(autouse=True)
def images_are_verified(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """VERIFY_IMAGES=require, as the stages leave it, with the images in moto's ECR."""
    from tests.deploy.test_verify import ecr_push

    monkeypatch.setenv("VERIFY_IMAGES", "require")
    for tag in PUSHED_TAGS:
        ecr_push(tag)


def granted(policy_file: str) -> set[str]:
    statements = json.loads((PROJECT_DIR / ".chalice" / policy_file).read_text())["Statement"]
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


@contextmanager
def calls_made() -> Iterator[set[str]]:
    """The IAM actions the service's own clients need for what runs inside."""
    needed: set[str] = set()
    recording = {"on": True}

    def note(service: str) -> Callable[..., None]:
        def record(model: Any, params: dict[str, Any], **_: Any) -> None:
            if not recording["on"]:
                return
            prefix = IAM_PREFIX.get(service, service)
            if model.name == "TransactWriteItems":
                needed.update(f"dynamodb:{TRANSACTION_ITEM[k]}" for item in params["TransactItems"] for k in item)
            else:
                needed.add(f"{prefix}:{AUTHORISED_AS.get((service, model.name), model.name)}")

        return record

    for service in SERVICES:
        clients.cached_client(service).meta.events.register("provide-client-params", note(service))
    yield needed
    recording["on"] = False


@pytest.fixture
def followers(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> Any:
    create_follower(setup_ecs)
    return app_client


def test_api_handler(
    http: Any, followers: Any, setup_ecs: Any, ecs_deployments: EcsDeployments, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_followers(followers)
    secrets = clients.session().client("secretsmanager", region_name="eu-west-1")
    api_secret = secrets.create_secret(Name="web/api", SecretString="t")["ARN"]
    clients.session().client("ssm", region_name="eu-west-1").put_parameter(Name="/web/db", Value="x", Type="String")
    for setting, name in (("GITHUB_WEBHOOK_SECRET", "github-webhook"), ("PUSH_WEBHOOK_SECRET", "push-webhook")):
        arn = secrets.create_secret(Name=f"ecs-image-updater/{name}", SecretString="s")["ARN"]
        assert fnmatch(arn, secret_resource())  # the policy's resource covers the secrets the docs name
        monkeypatch.setenv(setting, f"ecs-image-updater/{name}")
    create_service(
        setup_ecs,
        "test-cluster",
        "web-b",
        setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["taskDefinition"],
    )
    with calls_made() as needed:
        assert (
            post(
                http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2", "container": "app"}
            ).status_code
            == 200
        )
        assert (
            post(
                http,
                "/update",
                {"cluster": "test-cluster", "services": ["web", "web-b"], "image": f"{WEB}:3", "container": "app"},
            ).status_code
            == 200
        )
        assert post(http, "/rollback", {"cluster": "test-cluster", "service": "web"}).status_code == 200
        # A rollback to a revision with secrets of its own checks that they exist.
        with_secrets = register(
            setup_ecs,
            [
                {**rich_container("app", f"{WEB}:2"), "secrets": [{"name": "DB", "valueFrom": "/web/db"}]},
                {**rich_container("worker", f"{WEB}:3"), "secrets": [{"name": "API", "valueFrom": api_secret}]},
            ],
        )
        named = {"cluster": "test-cluster", "service": "web", "taskDefinition": with_secrets}
        assert post(http, "/rollback", named).status_code == 200
        apply = {"descriptions": [{"cluster": "test-cluster", "service": "web", "containers": {"app": f"{WEB}:4"}}]}
        assert post(http, "/apply", apply).status_code == 200
        for path in (
            "/services/test-cluster/web",
            "/services/test-cluster/web/history",
            "/services/test-cluster/web/description",
            "/clusters/test-cluster/services",
        ):
            assert http.get(path, headers={"x-api-key": "test-key-0123456789"}).status_code == 200
        body = json.dumps({"repository": WEB, "tag": "1.4.3"})
        pushed = post(http, "/hooks/push", body, {"X-Signature-256": sign(body.encode(), "s")})
        assert pushed.status_code == 202
        ping = b'{"zen": "Keep it logically awesome."}'
        assert (
            http.post(
                "/hooks/github",
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "ping",
                    "X-Hub-Signature-256": sign(ping, "s"),
                },
                body=ping,
            ).status_code
            == 202
        )
        assert http.get("/whoami", headers={"x-api-key": "test-key-0123456789"}).status_code == 200
        assert (
            http.get(f"/pushes/{pushed.json_body['pushId']}", headers={"x-api-key": "test-key-0123456789"}).status_code
            == 200
        )
    assert {"ecs:UpdateService", "dynamodb:PutItem", "sqs:SendMessage", "secretsmanager:GetSecretValue"} <= needed
    assert {"ecr:BatchGetImage", "secretsmanager:DescribeSecret", "ssm:GetParameters"} <= needed
    assert needed <= granted("policy-dev.json")


def secret_resource() -> str:
    """The secrets the REST function may read (the webhooks' signing secrets)."""
    statements = json.loads((PROJECT_DIR / ".chalice" / "policy-dev.json").read_text())["Statement"]
    [resource] = [s["Resource"] for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    return str(resource)


def test_registry_push(followers: Any, request_log: list[dict[str, Any]]) -> None:
    index_followers(followers)
    with calls_made() as needed:
        followers.lambda_.invoke("registry_push", ecr_event())
    assert "sqs:SendMessage" in needed
    assert needed <= granted("policy-dev-registry-push.json")


def test_push_work(followers: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, subscriber: Subscriber) -> None:
    index_followers(followers)
    post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.3"})
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.9.0")], family="shop")
    with calls_made() as needed:
        deliver(followers, push_queue)  # deploys web... and refuses shop, which moved meanwhile (a notification)
        setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)
        post(http, "/hooks/push", {"repository": WEB, "tag": "1.9.1"})
        held = post(http, "/hooks/push", {"repository": WEB, "tag": "1.9.2"})
        assert held.status_code == 202
        deliver(followers, push_queue)
    needed -= {"sqs:SendMessage"}  # the hook's, made in the same process
    assert {"ecs:UpdateService", "dynamodb:UpdateItem", "ecr:BatchGetImage"} <= needed
    assert needed <= granted("policy-dev-push-work.json")
    # What Lambda's event source does with the function's own role.
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= granted("policy-dev-push-work.json")


def test_deployment_events(
    followers: Any, http: Any, setup_ecs: Any, ecs_deployments: EcsDeployments, subscriber: Subscriber
) -> None:
    index_followers(followers)
    post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2", "container": "app"})
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.6.0")], family="shop")
    setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)
    shop = setup_ecs.describe_services(cluster="test-cluster", services=["shop"])["services"][0]["serviceArn"]
    web = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["serviceArn"]
    with calls_made() as needed:
        followers.lambda_.invoke(
            "deployment_events",
            deployment_event("SERVICE_DEPLOYMENT_COMPLETED", ecs_deployments.last_id, service_arn=web),
        )
        followers.lambda_.invoke(
            "deployment_events",
            deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/elsewhere", service_arn=shop),
        )
    assert {"sns:Publish", "ecs:DescribeServices"} <= needed
    assert needed <= granted("policy-dev-deployment-events.json")


def test_follower_tags(followers: Any, setup_ecs: Any) -> None:
    from tests.triggers.test_followers import tag_event

    arn = setup_ecs.describe_services(cluster="test-cluster", services=["shop"])["services"][0]["serviceArn"]
    with calls_made() as needed:
        followers.lambda_.invoke("follower_tags", tag_event(arn, ["image-updater:policy"]))
    assert "dynamodb:BatchWriteItem" in needed
    assert needed <= granted("policy-dev-follower-tags.json")


def test_followers_reconcile(followers: Any) -> None:
    with calls_made() as needed:
        followers.lambda_.invoke("followers_reconcile", scheduled_event())
    assert {"tag:GetResources", "ecs:DescribeTaskDefinition"} <= needed
    assert needed <= granted("policy-dev-followers-reconcile.json")


def test_pipeline_deploy(
    app_client: Any, codepipeline: CodePipeline, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    key = artifact({"imagedefinitions.json": [{"name": "app", "imageUri": f"{WEB}:7"}]})
    codepipeline.expect_success("job-1", variables=True)
    with calls_made() as needed:
        app_client.lambda_.invoke(
            "pipeline_deploy", job_event("job-1", {"cluster": "test-cluster", "service": "web", "wait": False}, key)
        )
    needed.add("codepipeline:PutJobSuccessResult")  # its client is stubbed (moto lacks it): the call it made
    assert {"ecs:RegisterTaskDefinition", "dynamodb:PutItem", "ecr:BatchGetImage"} <= needed
    assert needed <= granted("policy-dev-pipeline-deploy.json")


def test_api_handler_approvals(
    gateway: Any, workload: Workload, setup_ecs: Any, ecs_deployments: EcsDeployments
) -> None:
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    setup_ecs.tag_resource(resourceArn=service["serviceArn"], tags=[{"key": "image-updater:approvals", "value": "1"}])
    body = {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2", "container": "app"}
    with calls_made() as needed:
        asked = gateway("POST", "/update", body=body, key_id="ci")
        assert asked.status == 202
        approval = asked.json["approval"]["id"]
        newer = gateway("POST", "/update", body={**body, "image": f"{WEB}:3"}, key_id="ci")  # supersedes
        assert newer.status == 202
        assert gateway("GET", "/approvals", key_id="alice").status == 200
        assert gateway("GET", f"/approvals/{approval}", key_id="alice").status == 200
        voted = gateway("POST", f"/approvals/{newer.json['approval']['id']}", body={"decision": "approve"}, key_id="a")
        assert voted.status == 200
    assert {"dynamodb:Query", "dynamodb:UpdateItem", "ecs:UpdateService"} <= needed
    assert needed <= granted("policy-dev.json")


def test_pause_hooks(
    gateway: Any, app_client: Any, workload: Workload, ecs_deployments: EcsDeployments, subscriber: Subscriber
) -> None:
    from tests.ecs_answers import ServiceDeploymentAnswers, deployment_arn, hook_event, pause_hook, service_deployment

    body = {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2", "container": "app"}
    assert gateway("POST", "/update", body=body, key_id="ci", headers={"x-api-key": API_KEY}).status == 200
    made = ecs_deployments.made[-1]
    paused = service_deployment(
        "paused", "IN_PROGRESS", 0, 0, created=made["createdAt"], stage="POST_TEST_TRAFFIC_SHIFT", hooks=[pause_hook()]
    )
    ServiceDeploymentAnswers(clients.ecs_client().meta.events, [{**paused, "_revision": made["taskDefinition"]}])
    with calls_made() as needed:
        app_client.lambda_.invoke("deployment_events", hook_event(deployment_arn("paused"), "hook-1"))
    assert {"dynamodb:PutItem", "ecs:DescribeServiceDeployments", "sns:Publish"} <= needed
    assert needed <= granted("policy-dev-deployment-events.json")
    [approval] = gateway("GET", "/approvals", key_id="alice", headers={"x-api-key": API_KEY}).json["approvals"]
    with calls_made() as needed:
        voted = gateway(
            "POST",
            f"/approvals/{approval['id']}",
            body={"decision": "approve"},
            key_id="alice",
            headers={"x-api-key": API_KEY},
        )
        assert voted.json["approval"]["status"] == "CONTINUED"
    assert "ecs:ContinueServiceDeployment" in needed
    assert needed <= granted("policy-dev.json")


def test_approvals_sweep(
    gateway: Any, app_client: Any, workload: Workload, setup_ecs: Any, subscriber: Subscriber
) -> None:
    service = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]
    setup_ecs.tag_resource(resourceArn=service["serviceArn"], tags=[{"key": "image-updater:approvals", "value": "1"}])
    body = {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2", "container": "app"}
    # app_client's stage checks the local key itself.
    assert gateway("POST", "/update", body=body, key_id="ci", headers={"x-api-key": API_KEY}).status == 202
    with calls_made() as needed:
        app_client.lambda_.invoke("approvals_sweep", scheduled_event())
    assert [m["message"]["event"] for m in subscriber.received()] == ["APPROVAL_REQUESTED"]
    assert {"dynamodb:Query", "sns:Publish", "dynamodb:UpdateItem"} <= needed
    assert needed <= granted("policy-dev-approvals-sweep.json")
