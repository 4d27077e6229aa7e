"""What a review of approvals found; each of these failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.access import identity
from chalicelib.aws import clients
from chalicelib.state import approvals
from chalicelib.state.table import StateTable
from tests.conftest import ECR, Gateway, PushQueue, Workload, deliver, running_task_definition
from tests.triggers.test_push_approvals import STATE_TABLE, push_state, shop  # noqa: F401
from tests.triggers.test_push_work import push

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}


def require_approval(setup_ecs: Any, votes: str = "1") -> None:
    arn = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["serviceArn"]
    setup_ecs.tag_resource(resourceArn=arn, tags=[{"key": approvals.APPROVALS_TAG, "value": votes}])


def with_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "permissions.yaml"
    path.write_text(text)
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))


def test_a_bypass_rule_limited_to_images_does_not_bypass_approval(
    gateway: Gateway, setup_ecs: Any, workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_rules(
        tmp_path,
        monkeypatch,
        f"""
rules:
  - principals: [ci]
    actions: [update, read]
  - principals: [ci]
    actions: [update]
    images: ["{ECR}/hotfix/"]
    bypassApproval: true
""",
    )
    require_approval(setup_ecs)
    asked = gateway("POST", "/update", body=UPDATE, key_id="ci")
    assert asked.status == 202, asked.json  # web:1.1 is no hotfix: it waits for its approval


@pytest.mark.parametrize(
    ("principal", "person"),
    [
        ("arn:aws:sts::123456789012:assumed-role/Deployers/run-1", "arn:aws:iam::123456789012:role/deployers"),
        (
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com",
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com",
        ),
        ("arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:user/bob"),
        ("key-id-1", "key-id-1"),
    ],
)
def test_every_session_of_a_role_is_one_person_but_identity_center_s_users(principal: str, person: str) -> None:
    assert identity.person_of(principal) == person


def test_the_requester_cannot_approve_from_another_session_of_the_same_role(
    gateway: Gateway, setup_ecs: Any, workload: Workload, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_rules(
        tmp_path,
        monkeypatch,
        """
rules:
  - principals: ["arn:aws:iam::123456789012:role/deployers"]
    actions: [update, read, approve]
""",
    )
    require_approval(setup_ecs)
    asked = gateway(
        "POST", "/update", body=UPDATE, key_id=None, user_arn="arn:aws:sts::123456789012:assumed-role/deployers/run-1"
    )
    assert asked.status == 202, asked.json
    before = running_task_definition(setup_ecs, workload)["taskDefinitionArn"]
    voted = gateway(
        "POST",
        f"/approvals/{asked.json['approval']['id']}",
        body={"decision": "approve"},
        key_id=None,
        user_arn="arn:aws:sts::123456789012:assumed-role/deployers/RUN-1",
    )
    assert voted.status == 403
    assert "cannot approve" in voted.json["Message"]
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == before


def test_a_service_that_requires_approval_rolls_back_unapproved_only_to_what_it_ran_before(
    gateway: Gateway, setup_ecs: Any, workload: Workload
) -> None:
    require_approval(setup_ecs, "2")
    running = running_task_definition(setup_ecs, workload)
    copied = {
        k: v
        for k, v in running.items()
        if k in ("family", "containerDefinitions", "cpu", "memory", "networkMode", "requiresCompatibilities")
    }
    for container in copied["containerDefinitions"]:
        if container["name"] == "app":
            container["image"] = f"{ECR}/web:unreviewed"
    newer = setup_ecs.register_task_definition(**copied)["taskDefinition"]["taskDefinitionArn"]
    refused = gateway("POST", "/rollback", body={"cluster": "test-cluster", "service": "web", "taskDefinition": newer})
    assert refused.status == 409, refused.json
    assert "requires approval" in refused.json["Message"]
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == running["taskDefinitionArn"]


@pytest.fixture
def pushing(atomic_aws: None, lambda_time: None) -> None:
    """The push tests' world: atomic transactions and Lambda's time."""


def test_a_superseded_push_says_so(
    pushing: None,
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,  # noqa: F811
) -> None:
    first = push(http, "1.4.3")
    deliver(app_client, push_queue)
    assert push_state(http, first)["state"] == "awaiting-approval"
    push(http, "1.4.4")
    deliver(app_client, push_queue)
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    assert sorted(a.status for a in approvals.listed(table, open_only=False)) == ["PENDING", "SUPERSEDED"]
    assert push_state(http, first)["state"] != "awaiting-approval"
