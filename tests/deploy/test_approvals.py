"""Approvals before a deployment: asked for by the update path, voted on, deployed once on the N-th approval."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
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
    ECR,
    STATE_TABLE,
    Gateway,
    Workload,
    records_of,
    register,
    rich_container,
    running_task_definition,
    table_items,
)

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}


def require(setup_ecs: Any, workload: Workload, votes_needed: int, deadline_hours: int | None = None) -> None:
    """Tag the workload's service to require approvals."""
    arn = setup_ecs.describe_services(cluster=workload.cluster, services=[workload.service])["services"][0]
    tags = [{"key": approvals.APPROVALS_TAG, "value": str(votes_needed)}]
    if deadline_hours is not None:
        tags.append({"key": approvals.DEADLINE_TAG, "value": str(deadline_hours)})
    setup_ecs.tag_resource(resourceArn=arn["serviceArn"], tags=tags)


def image_of(setup_ecs: Any, workload: Workload) -> str:
    running = running_task_definition(setup_ecs, workload)
    return next(c["image"] for c in running["containerDefinitions"] if c["name"] == "app")


def ask(gateway: Gateway, by: str = "ci", body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = gateway("POST", "/update", body=body or UPDATE, key_id=by)
    assert answer.status == 202, answer.json
    return dict(answer.json["approval"])


def table() -> StateTable:
    return StateTable(clients.dynamodb_client(), STATE_TABLE)


def test_a_change_to_a_service_that_requires_approval_writes_nothing_to_ecs_and_answers_202(
    gateway: Gateway, setup_ecs: Any, workload: Workload, calls: list[str], request_log: list[dict[str, Any]]
) -> None:
    require(setup_ecs, workload, 2, deadline_hours=4)
    answer = gateway("POST", "/update", body=UPDATE, key_id="ci")
    assert answer.status == 202
    assert answer.json["Code"] == "ApprovalRequired"
    approval = answer.json["approval"]
    assert (approval["status"], approval["required"], approval["approvals"]) == ("PENDING", 2, 0)
    assert approval["kind"] == "deploy"
    assert approval["requestedBy"] == "ci"
    assert approval["services"][0]["containers"][0]["image"] == f"{ECR}/web:1.1"
    deadline = datetime.fromisoformat(approval["deadline"].replace("Z", "+00:00"))
    assert timedelta(hours=3, minutes=59) < deadline - datetime.now(UTC) <= timedelta(hours=4)
    assert calls == ["DescribeServices", "DescribeTaskDefinition"]  # read, never written
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["status"], record["approval"]) == (
        "PENDING_APPROVAL",
        202,
        {"id": approval["id"]},
    )
    assert record["containers"][0]["image"] == f"{ECR}/web:1.1"
    assert table_items("lock") == []
    [line] = request_log
    assert line["status"] == 202
    assert "error" not in line


def test_votes_count_once_per_principal_and_the_nth_deploys_once(
    gateway: Gateway, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    require(setup_ecs, workload, 2)
    approval = ask(gateway)
    path = f"/approvals/{approval['id']}"
    first = gateway("POST", path, body={"decision": "approve", "comment": "looks fine"}, key_id="alice")
    assert first.status == 200, first.json
    assert (first.json["approval"]["status"], first.json["approval"]["approvals"]) == ("PENDING", 1)
    again = gateway("POST", path, body={"decision": "approve"}, key_id="alice")
    assert again.status == 409
    assert "voted on approval" in again.json["Message"]
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"
    calls.clear()
    second = gateway("POST", path, body={"decision": "approve"}, key_id="bob")
    assert second.status == 200, second.json
    assert second.json["approval"]["status"] == "DEPLOYED"
    assert second.json["approval"]["approvedBy"] == ["alice", "bob"]
    assert second.json["deployment"]["services"][0]["changed"] is True
    assert calls.count("RegisterTaskDefinition") == 1
    assert calls.count("UpdateService") == 1
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.1"
    deployed, asked = records_of("test-cluster", "web")
    assert (asked["outcome"], deployed["outcome"]) == ("APPROVED", "IN_PROGRESS")
    assert deployed["principal"] == "ci"  # the requester's change; the approvers are named beside it
    assert deployed["approval"] == {"id": approval["id"], "approvedBy": ["alice", "bob"]}
    assert gateway("GET", path, key_id="alice").json["status"] == "DEPLOYED"


def test_the_requester_cannot_approve_its_own_change(gateway: Gateway, setup_ecs: Any, workload: Workload) -> None:
    require(setup_ecs, workload, 1)
    approval = ask(gateway, by="ci")
    refused = gateway("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="ci")
    assert refused.status == 403
    assert refused.json["Message"] == "principal ci requested this change and cannot approve it"
    assert gateway("GET", f"/approvals/{approval['id']}", key_id="ci").json["status"] == "PENDING"


def test_one_reject_ends_it_and_nothing_deploys(gateway: Gateway, setup_ecs: Any, workload: Workload) -> None:
    require(setup_ecs, workload, 2)
    approval = ask(gateway)
    path = f"/approvals/{approval['id']}"
    assert gateway("POST", path, body={"decision": "approve"}, key_id="alice").status == 200
    rejected = gateway("POST", path, body={"decision": "reject", "comment": "not on a Friday"}, key_id="bob")
    assert rejected.status == 200
    assert rejected.json["approval"]["status"] == "REJECTED"
    assert rejected.json["approval"]["reason"] == "rejected by bob: not on a Friday"
    late = gateway("POST", path, body={"decision": "approve"}, key_id="carol")
    assert late.status == 409
    assert "is REJECTED" in late.json["Message"]
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "REJECTED"


def test_a_newer_change_supersedes_the_pending_approval_and_its_votes(
    gateway: Gateway, setup_ecs: Any, workload: Workload
) -> None:
    require(setup_ecs, workload, 2)
    older = ask(gateway)
    gateway("POST", f"/approvals/{older['id']}", body={"decision": "approve"}, key_id="alice")
    newer = ask(gateway, body={**UPDATE, "image": f"{ECR}/web:1.2"})
    assert newer["approvals"] == 0  # votes are not carried over
    ended = gateway("GET", f"/approvals/{older['id']}", key_id="alice").json
    assert ended["status"] == "SUPERSEDED"
    assert ended["reason"].startswith(f"superseded by approval {newer['id']}")
    assert "APPROVAL_SUPERSEDED" in approvals.get(table(), older["id"]).owed  # the voters are told
    listed = gateway("GET", "/approvals", key_id="alice").json["approvals"]
    assert [a["id"] for a in listed] == [newer["id"]]
    outcomes = [r["outcome"] for r in records_of("test-cluster", "web")]
    assert outcomes == ["PENDING_APPROVAL", "SUPERSEDED"]


def test_a_change_to_other_containers_leaves_the_pending_approval_alone(
    gateway: Gateway, setup_ecs: Any, workload: Workload
) -> None:
    require(setup_ecs, workload, 1)
    older = ask(gateway)
    ask(gateway, body={**UPDATE, "container": "worker", "image": "registry.example.com:5000/team/worker:4"})
    assert gateway("GET", f"/approvals/{older['id']}", key_id="alice").json["status"] == "PENDING"


def test_a_deadline_passing_expires_it_on_read_and_votes_are_refused(
    gateway: Gateway, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    require(setup_ecs, workload, 1, deadline_hours=1)
    approval = ask(gateway)
    later = datetime.now(UTC) + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(approvals, "now_utc", lambda: later)
    seen = gateway("GET", f"/approvals/{approval['id']}", key_id="alice").json
    assert seen["status"] == "EXPIRED"
    refused = gateway("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert refused.status == 409
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "EXPIRED"


def test_the_sweep_expires_what_is_due_and_sends_what_is_owed_once(
    gateway: Gateway, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch, subscriber: Any
) -> None:
    require(setup_ecs, workload, 1, deadline_hours=2)
    approval = ask(gateway)
    sns = clients.sns_client()
    first = votes.sweep(table(), sns, subscriber.topic_arn)
    assert first.sent == [f"{approval['id']}:APPROVAL_REQUESTED"]
    later = datetime.now(UTC) + timedelta(hours=3)
    monkeypatch.setattr(approvals, "now_utc", lambda: later)
    second = votes.sweep(table(), sns, subscriber.topic_arn)
    assert second.expired == [approval["id"]]
    assert second.sent == [f"{approval['id']}:APPROVAL_EXPIRED"]
    assert votes.sweep(table(), sns, subscriber.topic_arn).sent == []
    told = subscriber.received()
    assert [m["message"]["event"] for m in told] == ["APPROVAL_REQUESTED", "APPROVAL_EXPIRED"]
    assert told[0]["message"]["requestedBy"] == "ci"
    assert told[0]["subject"] == f"web on test-cluster: app {ECR}/web:1.1 waits for approval"


def test_a_service_changed_since_the_approval_is_stale_and_nothing_deploys(
    gateway: Gateway, setup_ecs: Any, workload: Workload
) -> None:
    require(setup_ecs, workload, 1)
    approval = ask(gateway)
    other = register(setup_ecs, [rich_container("app", f"{ECR}/web:1.5"), rich_container("worker", "w:1")])
    setup_ecs.update_service(cluster="test-cluster", service="web", taskDefinition=other)
    answer = gateway("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert answer.status == 409
    assert "which the approval was made against; nothing was deployed" in answer.json["Message"]
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.5"
    assert gateway("GET", f"/approvals/{approval['id']}", key_id="alice").json["status"] == "STALE"
    assert [r["outcome"] for r in records_of("test-cluster", "web")] == ["STALE"]
    assert table_items("lock") == []


def test_two_approvers_at_the_same_instant_deploy_once(
    gateway: Gateway, setup_ecs: Any, workload: Workload, calls: list[str], atomic_aws: None
) -> None:
    require(setup_ecs, workload, 1)
    approval = ask(gateway)
    calls.clear()
    start = threading.Barrier(2)
    answers: list[Any] = []

    def approve(who: str) -> None:
        guard = Guard(Principal(who, "key"), AccessPolicy())
        start.wait()
        try:
            answers.append(votes.vote(table(), approval["id"], guard, votes.Vote("approve"), deployer(guard)))
        except Exception as refused:
            answers.append(refused)

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert calls.count("RegisterTaskDefinition") == 1
    assert calls.count("UpdateService") == 1
    deployed = [a for a in answers if isinstance(a, dict)]
    refused = [a for a in answers if not isinstance(a, dict)]
    assert len(deployed) == 1
    assert deployed[0]["approval"]["status"] == "DEPLOYED"
    assert len(refused) == 1
    assert "takes no more votes" in str(refused[0])
    assert len([r for r in records_of("test-cluster", "web") if r["outcome"] == "IN_PROGRESS"]) == 1


def test_two_votes_at_the_same_instant_both_count_when_two_are_needed(
    gateway: Gateway, setup_ecs: Any, workload: Workload, atomic_aws: None
) -> None:
    require(setup_ecs, workload, 2)
    approval = ask(gateway)
    start = threading.Barrier(2)

    def approve(who: str) -> None:
        guard = Guard(Principal(who, "key"), AccessPolicy())
        start.wait()
        votes.vote(table(), approval["id"], guard, votes.Vote("approve"), deployer(guard))

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert approvals.get(table(), approval["id"]).status == "DEPLOYED"
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.1"


def test_a_service_without_the_tag_deploys_at_once(gateway: Gateway, workload: Workload, calls: list[str]) -> None:
    answer = gateway("POST", "/update", body=UPDATE, key_id="ci")
    assert answer.status == 200
    assert len(calls) == 4


@pytest.mark.parametrize("value", ["6", "two", "-1"])
def test_an_approvals_tag_out_of_range_refuses_the_change_naming_it(
    gateway: Gateway, setup_ecs: Any, workload: Workload, value: str
) -> None:
    arn = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["serviceArn"]
    setup_ecs.tag_resource(resourceArn=arn, tags=[{"key": approvals.APPROVALS_TAG, "value": value}])
    answer = gateway("POST", "/update", body=UPDATE, key_id="ci")
    assert answer.status == 409
    assert approvals.APPROVALS_TAG in answer.json["Message"]
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"


def test_a_fan_out_waits_whole_for_the_service_that_asks(gateway: Gateway, setup_ecs: Any, workload: Workload) -> None:
    from tests.conftest import create_service

    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    require(setup_ecs, workload, 1)
    body = {"cluster": "test-cluster", "services": ["web", "api"], "image": f"{ECR}/web:1.1", "container": "app"}
    approval = ask(gateway, body=body)
    assert [s["service"] for s in approval["services"]] == ["web", "api"]
    answer = gateway("POST", f"/approvals/{approval['id']}", body={"decision": "approve"}, key_id="alice")
    assert answer.status == 200, answer.json
    assert [s["changed"] for s in answer.json["deployment"]["services"]] == [True, True]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"decision": "maybe"}, "'decision'"),
        ({"decision": "approve", "extra": 1}, "unknown field"),
        ({"decision": "approve", "comment": 5}, "'comment'"),
    ],
)
def test_a_bad_vote_is_a_400_naming_the_problem(
    gateway: Gateway, setup_ecs: Any, workload: Workload, body: dict[str, Any], named: str
) -> None:
    require(setup_ecs, workload, 1)
    approval = ask(gateway)
    answer = gateway("POST", f"/approvals/{approval['id']}", body=body, key_id="alice")
    assert answer.status == 400
    assert named in answer.json["Message"]


def test_unknown_and_malformed_approval_ids(gateway: Gateway, workload: Workload) -> None:
    assert gateway("GET", "/approvals/0123456789abcdef", key_id="a").status == 404
    assert gateway("GET", "/approvals/nope", key_id="a").status == 400
    assert gateway("GET", "/approvals?colour=red", key_id="a").status == 400


def deployer(guard: Guard) -> votes.Deployer:
    return wiring.approval_deployer(guard)


def test_an_apply_of_a_service_that_requires_approval_waits_too(
    gateway: Gateway, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    require(setup_ecs, workload, 1)
    exported = gateway("GET", "/services/test-cluster/web/description", key_id="ci").json
    exported["containers"]["app"] = f"{ECR}/web:1.4"
    answer = gateway("POST", "/apply", body={"descriptions": [exported]}, key_id="ci")
    assert answer.status == 202, answer.json
    assert answer.json["approval"]["action"] == "apply"
    assert answer.json["approval"]["services"][0]["containers"] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:1.4", "digest": None}
    ]
    assert not {"RegisterTaskDefinition", "UpdateService"} & set(calls)


def test_a_dry_run_never_asks(gateway: Gateway, setup_ecs: Any, workload: Workload) -> None:
    require(setup_ecs, workload, 1)
    answer = gateway("POST", "/update", body={**UPDATE, "dryRun": True}, key_id="ci")
    assert answer.status == 200
    assert answer.json["dryRun"] is True
    assert approvals.listed(table()) == []


def test_an_approval_a_freeze_stops_stays_pending_and_deploys_when_approved_again(
    gateway: Gateway, setup_ecs: Any, workload: Workload
) -> None:
    from chalicelib.aws import accounts
    from chalicelib.core.windows import Scope
    from chalicelib.state import freezes

    require(setup_ecs, workload, 1)
    approval = ask(gateway)
    until = datetime.now(UTC) + timedelta(hours=1)
    frozen = freezes.create(table(), Scope(("test-cluster",)), accounts.home(), until, "launch", "wait", "ops")
    path = f"/approvals/{approval['id']}"
    stopped = gateway("POST", path, body={"decision": "approve"}, key_id="alice")
    assert stopped.status == 423
    assert stopped.json["Message"].endswith(f"; approval {approval['id']} is pending again: approve it again later")
    again = gateway("GET", path, key_id="alice").json
    assert (again["status"], again["approvals"], again["votes"]) == ("PENDING", 0, [])
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.0"
    freezes.lift(table(), frozen)
    deployed = gateway("POST", path, body={"decision": "approve"}, key_id="alice")
    assert deployed.status == 200, deployed.json
    assert deployed.json["approval"]["status"] == "DEPLOYED"
    assert image_of(setup_ecs, workload) == f"{ECR}/web:1.1"
