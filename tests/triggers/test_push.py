"""Push an image, the services follow: the ECR trigger and the push hook, against moto's ECS and tagging API.

Services opt in with tags given at create_service (the Tagging API finds them).
Chalice's test client gives every function a 3 s context whatever its configured
timeout, so the ECR function's context gets the 300 s of `.chalice/config.json`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.triggers import push
from tests.conftest import (
    ACCOUNT,
    ECR,
    PROJECT_DIR,
    REGION,
    EcsDeployments,
    Workload,
    create_service,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
)
from tests.faults import AttemptFaults, ServiceFaults, VirtualClock, error_answer

WEB = f"{ECR}/web"
DIGEST = "sha256:" + "ab" * 32
OLD_DIGEST = "sha256:" + "01" * 32


def tags(**values: str) -> list[dict[str, str]]:
    return [{"key": f"image-updater:{key.replace('_', '-')}", "value": value} for key, value in values.items()]


@pytest.fixture(autouse=True)
def one_request_at_a_time(atomic_aws: None) -> None:
    """Services are updated in parallel threads; moto's backends take one request at a time, as AWS's apply each."""


@pytest.fixture(autouse=True)
def functions_get_their_configured_time(lambda_time: None) -> None:
    """registry_push budgets its updates by the time its context says is left."""


@pytest.fixture
def followers(setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments) -> dict[str, str]:
    """Services that follow (or not) the web repository; returns service -> cluster."""
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


def images_of(setup_ecs: Any, cluster: str, service: str) -> dict[str, str]:
    described = running_task_definition(setup_ecs, Workload(cluster, service, "", ""))
    return {c["name"]: c["image"] for c in described["containerDefinitions"]}


def test_an_ecr_push_rolls_each_follower_within_its_policy(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    decisions = pushed(app_client, ecr_event(), request_log)

    assert {name: d["action"] for name, d in decisions.items()} == {
        "shop": "deployed",
        "shop-2": "deployed",
        "api": "deployed",
        "pinned": "deployed",
        "latest": "skipped",
        "multi": "deployed",
        "named": "deployed",
    }  # "other" runs another repository and "not-opted" has no policy: no decision for either
    assert decisions["latest"]["reason"] == "the pushed tag 1.4.3 is not the tag the service runs (latest)"
    assert decisions["api"]["cluster"] == "cells"
    assert images_of(setup_ecs, "test-cluster", "shop") == {"app": f"{WEB}:1.4.3", "worker": "other/w:1"}
    assert images_of(setup_ecs, "cells", "api")["app"] == f"{WEB}:1.4.3"
    assert images_of(setup_ecs, "test-cluster", "pinned") == {"app": f"{WEB}@{DIGEST}"}
    assert images_of(setup_ecs, "test-cluster", "multi") == {"app": f"{WEB}:1.4.3", "migrate": f"{WEB}:1.4.3"}
    assert images_of(setup_ecs, "test-cluster", "named") == {"app": f"{WEB}:1.4.2", "worker": f"{WEB}:1.4.3"}
    assert images_of(setup_ecs, "test-cluster", "not-opted")["app"] == f"{WEB}:1.4.2"
    assert decisions["shop"]["result"]["containers"] == [
        {"name": "app", "previousImage": f"{WEB}:1.4.2", "image": f"{WEB}:1.4.3"}
    ]


def test_a_pinned_revision_keeps_the_pushed_tag_for_the_next_push(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    pushed(app_client, ecr_event(), request_log)
    revision = running_task_definition(setup_ecs, Workload("test-cluster", "pinned", "", ""))
    assert {"key": "image-updater:pushed-tag", "value": "1.4.3"} in revision["tags"]

    again = pushed(app_client, ecr_event(tag="1.4.2", digest="sha256:" + "02" * 32), request_log)
    assert again["pinned"]["action"] == "skipped"
    assert again["pinned"]["reason"] == "1.4.2 is older than the running 1.4.3"


def test_each_deployment_is_recorded_and_tagged_as_a_push(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    event = ecr_event()
    pushed(app_client, event, request_log)
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["keyId"], record["requestId"]) == ("push", "registry-push", event["id"])
    revision_tags = {
        t["key"]: t["value"]
        for t in running_task_definition(setup_ecs, Workload("test-cluster", "shop", "", ""))["tags"]
    }
    assert revision_tags["deployed-by-key"] == "registry-push"
    assert revision_tags["deployed-by-request"] == event["id"]


def test_a_duplicate_event_deploys_nothing_the_second_time(
    app_client: Any, followers: dict[str, str], calls: list[str], request_log: list[dict[str, Any]]
) -> None:
    event = ecr_event(tag="latest", digest=None)
    first = pushed(app_client, event, request_log)
    assert first["latest"]["action"] == "deployed"  # the `tag` policy redeploys
    assert first["latest"]["result"]["deployment"] is not None
    redeploys = calls.count("UpdateService")

    second = pushed(app_client, dict(event), request_log)
    assert second["latest"] == {**second["latest"], "action": "skipped"}
    assert second["latest"]["reason"] == "this push event was already handled (or is being handled) for the service"
    assert calls.count("UpdateService") == redeploys


def test_a_retry_after_a_crash_does_what_was_left_and_a_duplicate_meanwhile_waits(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    from chalicelib.aws import clients

    event = ecr_event()
    dynamodb = clients.session().client("dynamodb", region_name=REGION)

    def claim(service: str, handled: bool, lease: int) -> None:
        dynamodb.put_item(
            TableName="ecs-image-updater-state",
            Item={
                "pk": {"S": f"EVENT#{event['id']}"},
                "sk": {"S": f"SERVICE#test-cluster/{service}"},
                "handled": {"BOOL": handled},
                "leaseUntil": {"N": str(lease)},
            },
        )

    claim("shop", handled=False, lease=1)  # the first invocation died while updating shop: its lease is over
    claim("shop-2", handled=False, lease=2**40)  # another invocation is updating shop-2 right now
    claim("multi", handled=True, lease=1)  # the first invocation finished multi

    decisions = pushed(app_client, event, request_log)

    assert decisions["shop"]["action"] == "deployed"
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.3"
    for held in ("shop-2", "multi"):
        assert decisions[held]["action"] == "skipped"
        assert decisions[held]["reason"] == "this push event was already handled (or is being handled) for the service"
        assert images_of(setup_ecs, "test-cluster", held)["app"] == f"{WEB}:1.4.2"


def test_services_are_independent_one_failing_does_not_stop_the_others(
    app_client: Any, ecs: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    faults = ServiceFaults(ecs)
    faults.fail("UpdateService", "shop-2", "AccessDeniedException")
    decisions = pushed(app_client, ecr_event(), request_log)
    assert decisions["shop-2"]["action"] == "failed"
    assert "UpdateService failed: AccessDeniedException" in decisions["shop-2"]["reason"]
    assert images_of(setup_ecs, "test-cluster", "shop-2")["app"] == f"{WEB}:1.4.2"
    assert decisions["shop"]["action"] == "deployed"
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.3"


def test_a_service_changed_since_the_decision_is_left_alone(
    app_client: Any, ecs: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.9.0")], family="shop-newer")
    original = push._Updater._update

    def someone_else_deploys_first(self: Any, candidate: Any) -> dict[str, Any]:
        if candidate.name == "shop":
            setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)
        return original(self, candidate)

    import unittest.mock

    with unittest.mock.patch.object(push._Updater, "_update", someone_else_deploys_first):
        decisions = pushed(app_client, ecr_event(), request_log)
    assert decisions["shop"]["action"] == "failed"
    assert "the service changed since this change was decided" in decisions["shop"]["reason"]
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.9.0"  # not downgraded to 1.4.3


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
        assert decisions["pinned"]["action"] == "deployed"


def test_the_hook_takes_any_registry_and_answers_the_decisions(
    http: Any, setup_ecs: Any, followers: dict[str, str]
) -> None:
    response = post(http, "/hooks/push", {"repository": WEB, "tag": "1.5.0"})
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert (body["repository"], body["tag"], body["digest"]) == (WEB, "1.5.0", None)
    by_service = {d["service"]: d for d in body["decisions"]}
    assert by_service["shop"]["action"] == "deployed"
    assert by_service["api"]["action"] == "skipped"  # semver:patch does not take 1.5.0 over 1.4.2
    assert by_service["pinned"]["action"] == "skipped"  # pin-digest needs the digest, which the hook did not give
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["keyId"]) == ("push", "local")


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


def test_the_hook_starts_no_update_it_cannot_finish_in_time(
    http: Any, setup_ecs: Any, followers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.entrypoints import routes

    monkeypatch.setattr(routes, "PUSH_HOOK_SECONDS", push.MIN_SECONDS_TO_START - 1)
    response = post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.3"})
    assert response.status_code == 200
    failed = [d for d in response.json_body["decisions"] if d["action"] == "failed"]
    assert failed
    assert all("not started: the time for this push ran out" in d["reason"] for d in failed)
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"


def test_an_unreadable_ecr_event_is_logged_and_changes_nothing(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    app_client.lambda_.invoke("registry_push", ecr_event(tag=None, digest=None))
    assert request_log[-1]["ignored"] == "the event names neither a tag nor a digest"
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.2"


def test_calls_per_push_for_opted_in_services(
    app_client: Any,
    ecs: Any,
    setup_ecs: Any,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    request_log: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib.aws import clients

    monkeypatch.setattr(push, "TAGGING_PAGE_SIZE", 2)  # three services, two pages
    for number in range(3):
        arn = register(setup_ecs, [rich_container("app", f"{WEB}:1.0.0")], family=f"f{number}")
        create_service(setup_ecs, "test-cluster", f"s{number}", arn, tags=tags(policy="semver:minor"))
    made: list[str] = []
    for client in (clients.ecs_client(), clients.dynamodb_client(), clients.tagging_client()):
        client.meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))

    decisions = pushed(app_client, ecr_event(tag="1.1.0"), request_log)

    assert [d["action"] for d in decisions.values()] == ["deployed"] * 3
    counted = {name: made.count(name) for name in dict.fromkeys(made)}
    assert counted == {
        "GetResources": 2,
        "DescribeServices": 1 + 3,  # one batch to decide, then each service re-read under its lock
        "DescribeTaskDefinition": 3 + 3,
        "PutItem": 3 + 3,  # the event claimed for each service, and each lock
        "RegisterTaskDefinition": 3,
        "UpdateService": 3,
        "TransactWriteItems": 3,
        "UpdateItem": 3,  # each claim marked handled
    }


def test_a_failed_service_is_tried_again_by_a_later_delivery_of_the_same_event(
    app_client: Any, ecs: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    event = ecr_event()
    faults = ServiceFaults(ecs)
    faults.on(
        "UpdateService", "shop-2", lambda attempt: error_answer("AccessDeniedException") if attempt == 1 else None
    )
    first = pushed(app_client, event, request_log)
    assert first["shop-2"]["action"] == "failed"

    second = pushed(app_client, dict(event), request_log)

    assert second["shop-2"]["action"] == "deployed"
    assert second["shop"]["action"] == "skipped"  # done the first time
    assert images_of(setup_ecs, "test-cluster", "shop-2")["app"] == f"{WEB}:1.4.3"


def test_an_unexpected_error_in_one_update_is_its_decision_and_its_claim_is_let_go(
    app_client: Any, setup_ecs: Any, followers: dict[str, str], request_log: list[dict[str, Any]]
) -> None:
    import unittest.mock

    original = push._Updater._update

    def breaks_for_shop_2(self: Any, candidate: Any) -> dict[str, Any]:
        if candidate.name == "shop-2":
            raise KeyError("containerDefinitions")  # a bug, not an UpdateError
        return original(self, candidate)

    event = ecr_event()
    with unittest.mock.patch.object(push._Updater, "_update", breaks_for_shop_2):
        first = pushed(app_client, event, request_log)
    assert first["shop-2"] == {**first["shop-2"], "action": "failed", "reason": push.INTERNAL_ERROR}
    assert first["shop"]["action"] == "deployed"  # the others went on, and the log line has their decisions

    second = pushed(app_client, dict(event), request_log)  # Lambda's retry, or a later delivery

    assert second["shop-2"]["action"] == "deployed"
    assert images_of(setup_ecs, "test-cluster", "shop-2")["app"] == f"{WEB}:1.4.3"


def test_the_hook_called_twice_for_one_digest_redeploys_once(
    http: Any, followers: dict[str, str], calls: list[str]
) -> None:
    body = {"repository": WEB, "tag": "latest", "digest": DIGEST}
    first = post(http, "/hooks/push", body).json_body
    assert {d["service"]: d["action"] for d in first["decisions"]}["latest"] == "deployed"
    redeploys = calls.count("UpdateService")

    again = post(http, "/hooks/push", body).json_body  # the registry retried its webhook

    assert {d["service"]: d["action"] for d in again["decisions"]}["latest"] == "skipped"
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


def granted_dynamodb_actions(policy_file: str) -> set[str]:
    statements = json.loads((PROJECT_DIR / ".chalice" / policy_file).read_text())["Statement"]
    listed = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    return {action for action in listed if action.startswith("dynamodb:")}


def dynamodb_actions_of(operations: list[tuple[str, dict[str, Any]]]) -> set[str]:
    """The IAM actions the calls need; a transaction is authorised item by item (Put as PutItem, ...)."""
    needed = set()
    for name, params in operations:
        if name == "TransactWriteItems":
            needed |= {f"dynamodb:{kind}Item" for item in params["TransactItems"] for kind in item}
        else:
            needed.add(f"dynamodb:{name}")
    return needed


@pytest.mark.parametrize(
    ("trigger", "policy_file"), [("ecr", "policy-dev-registry-push.json"), ("hook", "policy-dev.json")]
)
def test_every_state_table_call_of_a_push_is_granted_to_its_function(
    app_client: Any,
    http: Any,
    followers: dict[str, str],
    request_log: list[dict[str, Any]],
    trigger: str,
    policy_file: str,
) -> None:
    made: list[tuple[str, dict[str, Any]]] = []
    clients.dynamodb_client().meta.events.register(
        "provide-client-params.dynamodb", lambda params, model, **_: made.append((model.name, dict(params)))
    )
    if trigger == "ecr":
        pushed(app_client, ecr_event(), request_log)
    else:
        post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.3", "digest": DIGEST})
    needed = dynamodb_actions_of(made)
    assert "dynamodb:UpdateItem" in needed  # the claim marked handled
    assert needed <= granted_dynamodb_actions(policy_file)


def test_a_lock_meeting_another_transaction_waits_and_the_push_still_deploys(
    http: Any, setup_ecs: Any, followers: dict[str, str], virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("PutItem", attempts={1})
    response = post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.3"})
    assert response.status_code == 200
    assert {d["service"]: d["action"] for d in response.json_body["decisions"]}["shop"] == "deployed"
    assert all(d["action"] != "failed" for d in response.json_body["decisions"])
    assert images_of(setup_ecs, "test-cluster", "shop")["app"] == f"{WEB}:1.4.3"


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
