"""The approval routes with allowed and refused principals, `approve` in the permissions file, and
`bypassApproval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.access.permissions import parse
from chalicelib.core.errors import PermissionsFileError
from chalicelib.state import approvals
from tests.conftest import ECR, Gateway, Workload, records_of, running_task_definition

CI = "ci-key"
LEAD = "arn:aws:sts::123456789012:assumed-role/web-leads/erin"
READER = "arn:aws:sts::123456789012:assumed-role/auditors/carol"
OUTSIDER = "arn:aws:sts::123456789012:assumed-role/intern/dave"
BREAK_GLASS = "arn:aws:sts::123456789012:assumed-role/break-glass/oncall"
RULES = f"""
rules:
  - principals: ["{CI}"]
    actions: [update, read]
  - principals: ["arn:aws:iam::123456789012:role/web-leads"]
    actions: [approve]
    clusters: [test-cluster]
    services: [web]
  - principals: ["arn:aws:sts::123456789012:assumed-role/auditors/*"]
    actions: [read]
  - principals: ["arn:aws:iam::123456789012:role/break-glass"]
    actions: [update]
    bypassApproval: true
"""
UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))
    return path


@pytest.fixture
def asked(gateway: Gateway, setup_ecs: Any, workload: Workload, rules: Path) -> str:
    """The id of a pending approval of web (one vote needed), requested by the CI key."""
    arn = setup_ecs.describe_services(cluster="test-cluster", services=["web"])["services"][0]["serviceArn"]
    setup_ecs.tag_resource(resourceArn=arn, tags=[{"key": approvals.APPROVALS_TAG, "value": "1"}])
    answer = gateway("POST", "/update", body=UPDATE, key_id=CI)
    assert answer.status == 202, answer.json
    return str(answer.json["approval"]["id"])


def test_listing_shows_the_approvals_a_principal_may_approve_only(gateway: Gateway, asked: str) -> None:
    assert [a["id"] for a in gateway("GET", "/approvals", user_arn=LEAD).json["approvals"]] == [asked]
    assert gateway("GET", "/approvals", user_arn=READER).json["approvals"] == []
    narrowed = gateway("GET", "/approvals?cluster=test-cluster&service=other", user_arn=LEAD)
    assert narrowed.json["approvals"] == []
    assert len(gateway("GET", "/approvals?cluster=test-cluster&service=web", user_arn=LEAD).json["approvals"]) == 1


def test_an_approval_is_seen_by_who_may_read_or_approve_it(gateway: Gateway, asked: str) -> None:
    assert gateway("GET", f"/approvals/{asked}", user_arn=READER).status == 200
    seen = gateway("GET", f"/approvals/{asked}", user_arn=LEAD)
    assert seen.status == 200
    assert seen.json["approvers"] == ["arn:aws:iam::123456789012:role/web-leads"]  # whom it waits for
    refused = gateway("GET", f"/approvals/{asked}", user_arn=OUTSIDER)
    assert refused.status == 403
    assert refused.json["Message"].startswith(f"principal {OUTSIDER} may not see approval {asked}")


def test_only_a_principal_the_rules_give_approve_may_vote(
    gateway: Gateway, setup_ecs: Any, workload: Workload, asked: str
) -> None:
    for who in (READER, OUTSIDER):
        refused = gateway("POST", f"/approvals/{asked}", body={"decision": "approve"}, user_arn=who)
        assert refused.status == 403
        assert refused.json["Message"] == f"principal {who} may not approve changes to service web"
    allowed = gateway("POST", f"/approvals/{asked}", body={"decision": "approve"}, user_arn=LEAD)
    assert allowed.status == 200, allowed.json
    assert allowed.json["approval"]["status"] == "DEPLOYED"
    image = running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"]
    assert image == f"{ECR}/web:1.1"


def test_a_rule_with_bypass_approval_deploys_at_once_recorded_as_such(
    gateway: Gateway, setup_ecs: Any, workload: Workload, asked: str
) -> None:
    answer = gateway("POST", "/update", body={**UPDATE, "image": f"{ECR}/web:1.3"}, user_arn=BREAK_GLASS)
    assert answer.status == 200, answer.json
    newest = records_of("test-cluster", "web")[0]
    assert (newest["outcome"], newest["bypassed"], newest["principal"]) == ("IN_PROGRESS", ["approval"], BREAK_GLASS)
    # The pending approval was made against the revision web ran before: approving it now deploys nothing.
    stale = gateway("POST", f"/approvals/{asked}", body={"decision": "approve"}, user_arn=LEAD)
    assert stale.status == 409
    assert gateway("GET", f"/approvals/{asked}", user_arn=LEAD).json["status"] == "STALE"


def test_bypass_approval_must_be_true_or_false() -> None:
    document = {"rules": [{"principals": ["x"], "actions": ["update"], "bypassApproval": "yes"}]}
    with pytest.raises(PermissionsFileError, match=r"rules\[0\].bypassApproval must be true or false"):
        parse(document)
    assert parse({"rules": [{"principals": ["x"], "actions": ["approve"]}]}).rules[0].actions == ("approve",)
