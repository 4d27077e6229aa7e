"""Push an image, the services follow: the ECR trigger and the push hook decide and queue, the consumer deploys.

Services opt in with tags given at create_service; the hourly reconcile (run by
the fixture) puts them in the follower index, as it would in AWS. The queue is
moto's SQS, fed to the push_work function the way Lambda's event source does
(tests.conftest.deliver). Chalice's test client gives every function a 3 s
context whatever its configured timeout, so functions get their configured time.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chalicelib.aws import clients
from tests.conftest import (
    ACCOUNT,
    API_KEY,
    ECR,
    REGION,
    EcsDeployments,
    PushQueue,
    Workload,
    create_service,
    deliver,
    index_followers,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
)

WEB = f"{ECR}/web"
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "01" * 32


def tags(**values: str) -> list[dict[str, str]]:
    return [{"key": f"image-updater:{key.replace('_', '-')}", "value": value} for key, value in values.items()]


@pytest.fixture
def followers(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> dict[str, str]:
    """Services that follow (or not) the web repository, in the follower index; returns service -> cluster."""
    setup_ecs.create_cluster(clusterName="cells")
    web = register(setup_ecs, [rich_container("app", f"{WEB}:1.4.2"), rich_container("worker", "other/w:1")])
    pinned = register(
        setup_ecs,
        [rich_container("app", f"{WEB}@{OLD_DIGEST}")],
        family="pinned",
        tags=[{"key": "image-updater:pushed-tag", "value": "1.4.2"}],
    )
    latest = register(setup_ecs, [rich_container("app", f"{WEB}:latest")], family="latest")
    multi = register(
        setup_ecs, [rich_container("app", f"{WEB}:1.4.2"), rich_container("migrate", f"{WEB}:1.4.2")], family="multi"
    )
    named = register(
        setup_ecs, [rich_container("app", f"{WEB}:1.4.2"), rich_container("worker", f"{WEB}:1.0.0")], family="named"
    )
    other = register(setup_ecs, [rich_container("app", "other/thing:1.0.0")], family="other")
    world = {
        ("test-cluster", "shop"): (web, tags(policy="semver:minor")),
        ("test-cluster", "shop-2"): (web, tags(policy="semver:minor")),
        ("cells", "api"): (web, tags(policy="semver:patch")),
        ("test-cluster", "pinned"): (pinned, tags(policy="semver:minor", pin_digest="true")),
        ("test-cluster", "latest"): (latest, tags(policy="tag")),
        ("test-cluster", "multi"): (multi, tags(policy="semver:minor")),
        ("test-cluster", "named"): (named, tags(policy="semver:minor", container="worker")),
        ("test-cluster", "other"): (other, tags(policy="semver:minor")),
        ("test-cluster", "not-opted"): (web, []),
    }
    for (cluster, name), (arn, service_tags) in world.items():
        extra = {"tags": service_tags} if service_tags else {}
        create_service(setup_ecs, cluster, name, arn, **extra)
    index_followers(app_client)
    return {name: cluster for cluster, name in world}


def ecr_event(tag: str | None = "1.4.3", digest: str | None = DIGEST, event_id: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"result": "SUCCESS", "repository-name": "web", "action-type": "PUSH"}
    if tag is not None:
        detail["image-tag"] = tag
    if digest is not None:
        detail["image-digest"] = digest
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": ACCOUNT,
        "time": "2026-12-01T10:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def pushed(app_client: Any, event: dict[str, Any], request_log: list[dict[str, Any]]) -> dict[str, Any]:
    """Invoke registry_push; its log line's decisions by service."""
    app_client.lambda_.invoke("registry_push", event)
    [line] = [line for line in request_log if line.get("function") == "registry_push"][-1:]
    return {decision["service"]: decision for decision in line["decisions"]}


def push_status(http: Any, push_id: str) -> dict[str, Any]:
    """GET /pushes/{pushId}: each service's state, by service."""
    response = http.get(f"/pushes/{push_id}", headers={"x-api-key": API_KEY})
    assert response.status_code == 200, response.json_body
    return {entry["service"]: entry for entry in response.json_body["services"]}


def last_push_id(request_log: list[dict[str, Any]], function: str = "registry_push") -> str:
    [line] = [line for line in request_log if line.get("function") == function][-1:]
    return str(line["pushId"])


def images_of(setup_ecs: Any, cluster: str, service: str) -> dict[str, str]:
    described = running_task_definition(setup_ecs, Workload(cluster, service, "", ""))
    return {c["name"]: c["image"] for c in described["containerDefinitions"]}


def test_an_ecr_push_queues_each_follower_within_its_policy_and_the_consumer_rolls_them(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    followers: dict[str, str],
    request_log: list[dict[str, Any]],
) -> None:
    decisions = pushed(app_client, ecr_event(), request_log)

    assert {name: d["action"] for name, d in decisions.items()} == {
        "shop": "queued",
        "shop-2": "queued",
        "api": "queued",
        "pinned": "queued",
        "latest": "skipped",
        "multi": "queued",
        "named": "queued",
    }  # "other" runs another repository and "not-opted" has no policy: no decision for either
    assert decisions["latest"]["reason"] == "the pushed tag 1.4.3 is not the tag the service runs (latest)"
    assert decisions["api"]["cluster"] == "cells"
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"  # nothing deployed yet

    deliver(app_client, push_queue)

    assert images_of(setup_ecs, "test-cluster", "shop") == {"app": f"{WEB}:1.4.3", "worker": "other/w:1"}
    assert images_of(setup_ecs, "cells", "api")["app"] == f"{WEB}:1.4.3"
    assert images_of(setup_ecs, "test-cluster", "pinned") == {"app": f"{WEB}@{DIGEST}"}
    assert images_of(setup_ecs, "test-cluster", "multi") == {"app": f"{WEB}:1.4.3", "migrate": f"{WEB}:1.4.3"}
    assert images_of(setup_ecs, "test-cluster", "named") == {"app": f"{WEB}:1.4.2", "worker": f"{WEB}:1.4.3"}
    assert images_of(setup_ecs, "test-cluster", "not-opted")["app"] == f"{WEB}:1.4.2"
    states = push_status(http, last_push_id(request_log))
    assert {name: entry["state"] for name, entry in states.items()} == {
        "shop": "deployed",
        "shop-2": "deployed",
        "api": "deployed",
        "pinned": "deployed",
        "latest": "skipped",
        "multi": "deployed",
        "named": "deployed",
    }
    assert states["shop"]["deploymentId"].startswith("ecs-svc/")
    assert push_queue.waiting() == 0


def test_a_pinned_revision_keeps_the_pushed_tag_for_the_next_push(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    pushed(app_client, ecr_event(), request_log)
    deliver(app_client, push_queue)
    revision = running_task_definition(setup_ecs, Workload("test-cluster", "pinned", "", ""))
    assert {"key": "image-updater:pushed-tag", "value": "1.4.3"} in revision["tags"]

    again = pushed(app_client, ecr_event(tag="1.4.2", digest="sha256:" + "02" * 32), request_log)
    assert again["pinned"]["action"] == "skipped"  # the index knows the new revision, written with its record
    assert again["pinned"]["reason"] == "1.4.2 is older than the running 1.4.3"


def test_each_deployment_is_recorded_and_tagged_as_a_push(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    event = ecr_event()
    pushed(app_client, event, request_log)
    deliver(app_client, push_queue)
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["keyId"], record["requestId"]) == ("push", "registry-push", event["id"])
    assert record["principal"] == "aws:ecr"
    assert record["push"] == {"id": event["id"], "repository": WEB, "tag": "1.4.3", "digest": DIGEST}
    revision_tags = {
        t["key"]: t["value"]
        for t in running_task_definition(setup_ecs, Workload("test-cluster", "shop", "", ""))["tags"]
    }
    assert revision_tags["deployed-by-key"] == "registry-push"
    assert revision_tags["deployed-by"] == "aws:ecr"
    assert revision_tags["deployed-by-request"] == event["id"]


def test_a_duplicate_event_queues_again_and_deploys_nothing_the_second_time(
    app_client: Any,
    push_queue: PushQueue,
    followers: dict[str, str],
    calls: list[str],
    request_log: list[dict[str, Any]],
) -> None:
    event = ecr_event(tag="latest", digest=None)
    first = pushed(app_client, event, request_log)
    assert first["latest"]["action"] == "queued"  # the `tag` policy redeploys
    deliver(app_client, push_queue)
    redeploys = calls.count("UpdateService")
    assert redeploys == 1

    second = pushed(app_client, dict(event), request_log)
    assert second["latest"]["action"] == "queued"
    deliver(app_client, push_queue)

    assert calls.count("UpdateService") == redeploys
    assert len(records_of("test-cluster", "latest")) == 1
    assert push_queue.waiting() == 0


@pytest.mark.parametrize(
    ("variable", "value", "service", "reason"),
    [
        ("ALLOWED_SERVICES", "shop,api", "multi", "service 'multi' is not allowed by ALLOWED_SERVICES"),
        ("ALLOWED_CLUSTERS", "test-cluster", "api", "cluster 'cells' is not allowed by ALLOWED_CLUSTERS"),
        ("ALLOWED_IMAGE_PREFIXES", "registry.example.com/", "shop", "is not allowed by ALLOWED_IMAGE_PREFIXES"),
        ("REQUIRE_DIGEST", "true", "shop", "REQUIRE_DIGEST allows only digests"),
    ],
)
def test_the_allowlists_and_the_digest_rule_apply(
    app_client: Any,
    followers: dict[str, str],
    request_log: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    service: str,
    reason: str,
) -> None:
    monkeypatch.setenv(variable, value)
    decisions = pushed(app_client, ecr_event(), request_log)
    assert decisions[service]["action"] == "skipped"
    assert reason in decisions[service]["reason"]
    if variable == "REQUIRE_DIGEST":
        assert decisions["pinned"]["action"] == "queued"


def test_ecr_pushes_move_only_what_the_rules_give_aws_ecr(
    app_client: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    followers: dict[str, str],
    request_log: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text("rules:\n  - principals: [aws:ecr]\n    actions: [push]\n    services: [shop]\n")
    monkeypatch.setenv("PERMISSIONS_FILE", str(rules))
    decisions = pushed(app_client, ecr_event(), request_log)
    assert decisions["shop"]["action"] == "queued"
    assert decisions["shop-2"] == {
        "cluster": "test-cluster",
        "service": "shop-2",
        "action": "skipped",
        "reason": "principal aws:ecr may not push cluster test-cluster service shop-2",
    }
    # The consumer checks again at deploy time: a rule taken away meanwhile stops the deployment.
    rules.write_text("rules:\n  - principals: [aws:ecr]\n    actions: [push]\n    services: [nothing]\n")
    deliver(app_client, push_queue)
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"
    [record] = records_of("test-cluster", "shop")
    assert record["outcome"] == "FAILED"
    assert "principal aws:ecr may not push cluster test-cluster service shop" in record["outcomeReason"]


def test_the_hook_takes_any_registry_and_answers_202_with_the_decisions(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, followers: dict[str, str]
) -> None:
    response = post(http, "/hooks/push", {"repository": WEB, "tag": "1.5.0"})
    assert response.status_code == 202, response.json_body
    body = response.json_body
    assert (body["repository"], body["tag"], body["digest"]) == (WEB, "1.5.0", None)
    by_service = {d["service"]: d for d in body["decisions"]}
    assert by_service["shop"]["action"] == "queued"
    assert by_service["api"]["action"] == "skipped"  # semver:patch does not take 1.5.0 over 1.4.2
    assert by_service["pinned"]["action"] == "skipped"  # pin-digest needs the digest, which the hook did not give
    deliver(app_client, push_queue)
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["keyId"]) == ("push", "local")
    assert push_status(http, body["pushId"])["shop"]["state"] == "deployed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"repository": WEB}, "give at least one of 'tag' and 'digest'"),
        ({"repository": f"{WEB}:1.0", "tag": "1.1"}, "'repository' must be the repository alone"),
        ({"repository": WEB, "tag": "bad tag"}, "'tag' must be a tag"),
        ({"repository": WEB, "digest": "sha256:xyz"}, "'digest' must be a digest"),
        ({"repository": WEB, "tag": "1", "branch": "main"}, "unknown field(s) 'branch'"),
        ({"tag": "1"}, "'repository' is required"),
    ],
)
def test_bad_hook_bodies_are_a_400(http: Any, followers: dict[str, str], body: dict[str, Any], message: str) -> None:
    response = post(http, "/hooks/push", body)
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_an_unknown_push_is_a_404_and_a_bad_id_a_400(http: Any, push_queue: PushQueue) -> None:
    missing = http.get("/pushes/0123456789abcdef", headers={"x-api-key": API_KEY})
    assert missing.status_code == 404
    assert "no push '0123456789abcdef' was recorded" in missing.json_body["Message"]
    bad = http.get("/pushes/not%20an%20id", headers={"x-api-key": API_KEY})
    assert bad.status_code == 400


def test_a_stage_without_a_push_queue_refuses_pushes_instead_of_dropping_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.core.errors import NoPushQueueError, http_status
    from chalicelib.entrypoints import wiring

    monkeypatch.delenv("PUSH_QUEUE", raising=False)  # the committed stages set it; a stage of one's own may not
    with pytest.raises(NoPushQueueError, match="this stage takes no pushes: its PUSH_QUEUE is not set") as refused:
        wiring.push_queue_name()
    assert http_status(refused.value) == (409, "ConflictError")


def test_a_queue_that_refuses_the_work_fails_the_push_so_that_it_is_sent_again(
    app_client: Any, http: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    def refuse(**_: Any) -> None:
        from tests.faults import client_error

        raise client_error("SendMessageBatch", "ServiceUnavailable", "down", status=503)

    clients.sqs_client().meta.events.register("before-call.sqs.SendMessageBatch", refuse)
    hook = post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.3"})
    assert hook.status_code == 502  # not a 202: the registry sends its webhook again
    with pytest.raises(Exception, match="SendMessageBatch"):
        app_client.lambda_.invoke("registry_push", ecr_event())  # the invocation fails: Lambda retries it


def test_an_unreadable_ecr_event_is_logged_and_changes_nothing(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    app_client.lambda_.invoke("registry_push", ecr_event(tag=None, digest=None))
    assert request_log[-1]["ignored"] == "the event names neither a tag nor a digest"
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"


def test_a_push_reads_only_the_index_then_records_and_queues_in_one_call_each(
    app_client: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    made: list[str] = []
    for client in (clients.ecs_client(), clients.dynamodb_client(), clients.tagging_client(), clients.sqs_client()):
        client.meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))

    pushed(app_client, ecr_event(), request_log)

    # One Query of the index, one transaction for the decisions, the queue's URL once, one batch of six items.
    assert made == ["Query", "TransactWriteItems", "GetQueueUrl", "SendMessageBatch"]


def test_the_hook_called_twice_for_one_digest_redeploys_once(
    app_client: Any, http: Any, push_queue: PushQueue, followers: dict[str, str], calls: list[str]
) -> None:
    body = {"repository": WEB, "tag": "latest", "digest": DIGEST}
    first = post(http, "/hooks/push", body).json_body
    assert {d["service"]: d["action"] for d in first["decisions"]}["latest"] == "queued"
    deliver(app_client, push_queue)
    redeploys = calls.count("UpdateService")

    again = post(http, "/hooks/push", body).json_body  # the registry retried its webhook
    assert again["pushId"] == first["pushId"]
    deliver(app_client, push_queue)

    assert calls.count("UpdateService") == redeploys


def test_a_redeploy_too_must_run_an_image_the_allowlists_take(
    http: Any, followers: dict[str, str], monkeypatch: pytest.MonkeyPatch, calls: list[str]
) -> None:
    monkeypatch.setenv("ALLOWED_IMAGE_PREFIXES", "registry.example.com/")
    answer = post(http, "/hooks/push", {"repository": WEB, "tag": "latest"}).json_body
    latest = {d["service"]: d for d in answer["decisions"]}["latest"]
    assert latest["action"] == "skipped"
    assert "is not allowed by ALLOWED_IMAGE_PREFIXES" in latest["reason"]
    assert "UpdateService" not in calls


@pytest.mark.parametrize(
    ("detail", "ignored"),
    [
        ({"action-type": "DELETE"}, "the event's action-type is 'DELETE', not 'PUSH'"),
        ({"result": "FAILURE"}, "the event's result is 'FAILURE', not 'SUCCESS'"),
        ({"action-type": None}, "the event's action-type is None, not 'PUSH'"),
    ],
)
def test_registry_push_itself_ignores_a_delete_or_a_failed_push(
    app_client: Any,
    setup_ecs: Any,
    followers: dict[str, str],
    request_log: list[dict[str, Any]],
    detail: dict[str, Any],
    ignored: str,
) -> None:
    # The EventBridge rule asks for successful pushes only; a changed or bypassed rule must not deploy.
    event = ecr_event()
    event["detail"] = {**event["detail"], **detail}
    app_client.lambda_.invoke("registry_push", event)
    [line] = [line for line in request_log if line.get("function") == "registry_push"]
    assert line["ignored"] == ignored
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"


@pytest.mark.parametrize("function", ["registry_push", "deployment_events"])
@pytest.mark.parametrize(
    "payload", [{}, "a string", ["a", "list"], 7, None, {"detail": "not an object"}, {"version": "0", "detail": {}}]
)
def test_a_payload_that_is_not_an_eventbridge_event_is_logged_and_ignored(
    app_client: Any, request_log: list[dict[str, Any]], function: str, payload: Any
) -> None:
    response = app_client.lambda_.invoke(function, payload)
    assert response.payload is None  # returned normally: no stack trace, nothing for Lambda to retry
    [line] = [line for line in request_log if line.get("function") == function]
    assert line["ignored"]
