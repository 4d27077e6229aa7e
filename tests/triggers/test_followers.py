"""The follower index: kept current by deployments made here, by ECS events for deployments made elsewhere,
by tag changes and by the hourly reconcile; and a push reads only it."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.state import followers
from chalicelib.state.followers import Follower
from chalicelib.state.table import StateTable
from chalicelib.triggers import followers as upkeep
from tests.conftest import (
    ACCOUNT,
    ECR,
    FOLLOWS_MINOR,
    REGION,
    STATE_TABLE,
    EcsDeployments,
    PushQueue,
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

WEB = f"{ECR}/web"


def table() -> StateTable:
    return StateTable(clients.dynamodb_client(), STATE_TABLE)


def indexed(repository: str = WEB) -> dict[str, Follower]:
    """The index's followers of a repository, by service name."""
    from chalicelib.core.images import parse_image

    return {f.service: f for f in followers.followers_of(table(), parse_image(repository).canonical_repository())}


def service_arn(setup_ecs: Any, name: str, cluster: str = "test-cluster") -> str:
    return str(setup_ecs.describe_services(cluster=cluster, services=[name])["services"][0]["serviceArn"])


@pytest.fixture
def shop(app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload) -> str:
    """Service `shop` on web:1.4.2, following semver:minor, in the index."""
    create_follower(setup_ecs)
    index_followers(app_client)
    return "shop"


def test_a_deployment_made_here_updates_the_index_in_the_transaction_that_writes_its_record(
    http: Any, shop: str, ecs_deployments: EcsDeployments
) -> None:
    made: list[str] = []
    clients.dynamodb_client().meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))
    response = post(http, "/update", {"cluster": "test-cluster", "service": "shop", "image": f"{WEB}:1.5.0"})
    assert response.status_code == 200
    assert made == ["TransactWriteItems", "TransactWriteItems"]  # /update keeps its 2 DynamoDB calls
    entry = indexed()["shop"]
    assert entry.images == {"app": f"{WEB}:1.5.0"}
    assert entry.revision == response.json_body["taskDefinition"]["arn"]


def test_a_service_moved_to_another_repository_leaves_the_old_repository_s_followers(
    http: Any, shop: str, ecs_deployments: EcsDeployments
) -> None:
    response = post(http, "/update", {"cluster": "test-cluster", "service": "shop", "image": "ghcr.io/acme/shop:2.0.0"})
    assert response.status_code == 200
    assert "shop" not in indexed()
    assert indexed("ghcr.io/acme/shop")["shop"].images == {"app": "ghcr.io/acme/shop:2.0.0"}


def test_a_deployment_of_a_service_that_follows_nothing_writes_no_index(
    http: Any, push_queue: PushQueue, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    assert (
        post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{WEB}:2.0"}).status_code == 200
    )
    assert followers.all_followers(table()) == []


def test_a_deployment_made_elsewhere_reaches_the_index_through_its_ecs_event(
    app_client: Any, setup_ecs: Any, shop: str, request_log: list[dict[str, Any]]
) -> None:
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.6.0")], family="shop")
    setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)  # the console, say
    event = deployment_event(
        "SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/elsewhere", service_arn=service_arn(setup_ecs, "shop")
    )
    app_client.lambda_.invoke("deployment_events", event)
    assert indexed()["shop"].images == {"app": f"{WEB}:1.6.0"}
    [line] = [line for line in request_log if line.get("function") == "deployment_events"]
    assert line["followerIndex"] == "written"


def test_an_event_of_a_service_that_is_no_follower_costs_one_read_and_no_ecs_call(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload
) -> None:
    made: list[str] = []
    for client in (clients.ecs_client(), clients.dynamodb_client()):
        client.meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))
    event = deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/x", service_arn=service_arn(setup_ecs, "web"))
    app_client.lambda_.invoke("deployment_events", event)
    assert not [name for name in made if name.startswith("Describe")]


def tag_event(arn: str, keys: list[str]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Tag Change on Resource",
        "source": "aws.tag",
        "account": ACCOUNT,
        "time": "2026-12-01T10:00:00Z",
        "region": REGION,
        "resources": [arn],
        "detail": {"changed-tag-keys": keys, "service": "ecs", "resource-type": "service", "version": 2, "tags": {}},
    }


def test_a_tag_change_adds_and_removes_a_follower(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    workload: Workload,
    ecs_deployments: EcsDeployments,
) -> None:
    arn = service_arn(setup_ecs, "web")
    setup_ecs.tag_resource(resourceArn=arn, tags=FOLLOWS_MINOR)
    app_client.lambda_.invoke("follower_tags", tag_event(arn, ["image-updater:policy"]))
    assert indexed()["web"].tags == {"image-updater:policy": "semver:minor"}

    # The very next push follows it: 1.0 is no version, so the semver policy skips it with that reason.
    decisions = post(http, "/hooks/push", {"repository": WEB, "tag": "1.1.0"}).json_body["decisions"]
    assert [(d["service"], d["action"]) for d in decisions] == [("web", "skipped")]

    setup_ecs.untag_resource(resourceArn=arn, tagKeys=["image-updater:policy"])
    app_client.lambda_.invoke("follower_tags", tag_event(arn, ["image-updater:policy"]))
    assert indexed() == {}
    assert followers.all_followers(table()) == []


def test_the_reconcile_adds_removes_and_corrects_what_the_index_has_wrong(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, request_log: list[dict[str, Any]]
) -> None:
    # The events were lost: a new follower, a follower untagged, and a deployment made elsewhere.
    arn = register(setup_ecs, [rich_container("app", f"{WEB}:1.0.0")], family="basket")
    create_service(setup_ecs, "test-cluster", "basket", arn, tags=FOLLOWS_MINOR)
    setup_ecs.untag_resource(resourceArn=service_arn(setup_ecs, "shop"), tagKeys=["image-updater:policy"])
    arn = register(setup_ecs, [rich_container("app", f"{WEB}:2.0.0")], family="cart")
    create_service(setup_ecs, "test-cluster", "cart", arn, tags=FOLLOWS_MINOR)
    index_followers(app_client)
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:2.1.0")], family="cart")
    setup_ecs.update_service(cluster="test-cluster", service="cart", taskDefinition=newer)

    app_client.lambda_.invoke("followers_reconcile", scheduled_event())

    assert {name: f.images["app"] for name, f in indexed().items()} == {
        "basket": f"{WEB}:1.0.0",
        "cart": f"{WEB}:2.1.0",
    }
    line = [line for line in request_log if line.get("function") == "followers_reconcile"][-1]
    assert (line["written"], line["removed"], line["revisionsRead"]) == (1, 0, 1)  # shop went in the first run


def test_the_reconcile_walks_the_account_in_pages_and_reads_each_revision_once(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upkeep, "TAGGING_PAGE_SIZE", 4)
    shared = register(setup_ecs, [rich_container("app", f"{WEB}:1.0.0")], family="shared")
    for number in range(12):
        create_service(setup_ecs, "test-cluster", f"s{number:02d}", shared, tags=FOLLOWS_MINOR)
    own = register(setup_ecs, [rich_container("app", f"{WEB}:1.0.0")], family="own")
    create_service(setup_ecs, "test-cluster", "s12", own, tags=FOLLOWS_MINOR)
    made: list[str] = []
    for client in (clients.ecs_client(), clients.tagging_client()):
        client.meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))

    app_client.lambda_.invoke("followers_reconcile", scheduled_event())

    counted = {name: made.count(name) for name in dict.fromkeys(made)}
    assert counted == {
        "GetResources": math.ceil(13 / 4) + (13 % 4 == 0),
        "DescribeServices": math.ceil(13 / 10),
        "DescribeTaskDefinition": 2,  # two distinct revisions, each read once
    }
    made.clear()
    app_client.lambda_.invoke("followers_reconcile", scheduled_event())
    assert "DescribeTaskDefinition" not in made  # revisions never change: never read twice
    assert len(indexed()) == 13


def test_a_stale_entry_is_caught_by_the_consumer_under_the_lock(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, ecs_deployments: EcsDeployments
) -> None:
    # The index says shop runs 1.4.2; it runs 1.4.9 (deployed elsewhere, its event not yet in). A push of 1.4.5
    # is queued from the stale entry, and the consumer, deciding again on what runs, refuses it.
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.4.9")], family="shop")
    setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)
    answer = post(http, "/hooks/push", {"repository": WEB, "tag": "1.4.5"}).json_body
    assert [d["action"] for d in answer["decisions"]] == ["queued"]
    deliver(app_client, push_queue)
    status = http.get(f"/pushes/{answer['pushId']}", headers={"x-api-key": "test-key-0123456789"}).json_body
    [target] = status["services"]
    assert target["state"] == "failed"
    assert "1.4.5 is older than the running 1.4.9" in target["reason"]


def test_follower_items_read_back_as_written() -> None:
    follower = Follower(
        service_arn="arn:aws:ecs:eu-west-1:123456789012:service/c/s",
        cluster="c",
        service="s",
        tags={"image-updater:policy": "tag", "image-updater:container": "app"},
        revision="arn:aws:ecs:eu-west-1:123456789012:task-definition/s:3",
        images={"app": "nginx:1.27", "sidecar": "ghcr.io/acme/log:1"},
        pushed_tag=None,
    )
    from chalicelib.state.table import from_item

    assert Follower.from_item(from_item(follower.item("FOLLOWERS"))) == follower
    assert follower.repositories == {"docker.io/library/nginx"}  # only the container it names
    entries = followers.writes("t", follower.service_arn, follower, {"ghcr.io/acme/log", "docker.io/library/nginx"})
    assert [next(iter(e)) for e in entries] == ["Put", "Put", "Delete"]
    assert json.dumps(entries[2]["Delete"]["Key"]["pk"]) == '{"S": "REPOSITORY#ghcr.io/acme/log"}'
