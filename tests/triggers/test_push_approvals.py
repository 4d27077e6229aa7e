"""A push to a service that requires approval is not lost: it becomes the approval, and deploys when approved."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.guard import Guard
from chalicelib.access.identity import Principal
from chalicelib.aws import clients
from chalicelib.deploy import approvals as votes
from chalicelib.entrypoints import wiring
from chalicelib.state import approvals
from chalicelib.state.table import StateTable
from tests.conftest import (
    API_KEY,
    EcsDeployments,
    PushQueue,
    Workload,
    create_follower,
    deliver,
    index_followers,
    records_of,
)
from tests.triggers.test_push_work import WEB, image_of, push

STATE_TABLE = "ecs-image-updater-state"


@pytest.fixture
def shop(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> str:
    """Service `shop` follows semver:minor from web:1.4.2 and requires one approval."""
    create_follower(setup_ecs)
    arn = setup_ecs.describe_services(cluster="test-cluster", services=["shop"])["services"][0]["serviceArn"]
    setup_ecs.tag_resource(resourceArn=arn, tags=[{"key": approvals.APPROVALS_TAG, "value": "1"}])
    index_followers(app_client)
    return "shop"


def push_state(http: Any, push_id: str) -> dict[str, Any]:
    answer = http.get(f"/pushes/{push_id}", headers={"x-api-key": API_KEY})
    [state] = [s for s in answer.json_body["services"] if s["service"] == "shop"]
    return dict(state)


def approve(approval_id: str, who: str = "alice") -> dict[str, Any]:
    guard = Guard(Principal(who, "key"), AccessPolicy())
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    return votes.vote(table, approval_id, guard, votes.Vote("approve"), wiring.approval_deployer(guard))


def test_a_push_becomes_the_approval_and_deploys_on_approval(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str
) -> None:
    push_id = push(http)
    answers = deliver(app_client, push_queue)
    assert answers[0]["batchItemFailures"] == []  # the message is done: the approval holds the change
    assert push_queue.waiting() == 0
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    state = push_state(http, push_id)
    assert state["state"] == "awaiting-approval"
    [approval] = approvals.listed(StateTable(clients.dynamodb_client(), STATE_TABLE))
    assert state["reason"] == f"waiting for approval {approval.id}"
    assert approval.action == "push"
    assert approval.services[0].images() == {"app": f"{WEB}:1.4.3"}
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["outcome"]) == ("push", "PENDING_APPROVAL")
    assert record["push"]["id"] == push_id

    answer = approve(approval.id)
    assert answer["approval"]["status"] == "DEPLOYED"
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert push_state(http, push_id)["state"] == "deployed"
    deployed, asked = records_of("test-cluster", "shop")
    assert (asked["outcome"], deployed["outcome"], deployed["action"]) == ("APPROVED", "IN_PROGRESS", "push")
    assert deployed["push"]["id"] == push_id


def test_a_rejected_push_says_so_in_its_status(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str
) -> None:
    push_id = push(http)
    deliver(app_client, push_queue)
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    [approval] = approvals.listed(table)
    guard = Guard(Principal("bob", "key"), AccessPolicy())
    votes.vote(table, approval.id, guard, votes.Vote("reject", "not now"), wiring.approval_deployer(guard))
    state = push_state(http, push_id)
    assert state["state"] == "failed"
    assert state["reason"] == "rejected by bob: not now"
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"


def test_a_duplicate_message_of_a_push_awaiting_approval_is_done_without_a_second_approval(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str
) -> None:
    push(http)
    sqs = push_queue.sqs()
    [message] = sqs.receive_message(QueueUrl=push_queue.url)["Messages"]
    sqs.change_message_visibility(QueueUrl=push_queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    deliver(app_client, push_queue)
    sqs.send_message(QueueUrl=push_queue.url, MessageBody=message["Body"])  # the same work, delivered again
    [answer] = deliver(app_client, push_queue)
    assert answer["batchItemFailures"] == []
    assert push_queue.waiting() == 0
    assert len(approvals.listed(StateTable(clients.dynamodb_client(), STATE_TABLE))) == 1
