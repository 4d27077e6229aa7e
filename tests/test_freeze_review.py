"""What a review of freezes found; each of these failed before its fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from chalicelib.access import permissions
from chalicelib.aws import accounts, clients
from chalicelib.core.windows import Scope
from chalicelib.state import freezes
from chalicelib.state.table import StateTable
from tests.conftest import ECR, STATE_TABLE, Gateway, Workload, post
from tests.test_freezes import GATEWAY_UPDATE, MANAGER, UPDATE, WEB_TEAM, friday_evening, rules  # noqa: F401

ONCALL = "arn:aws:iam::123456789012:role/oncall"
IN_AN_HOUR = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
IMAGE_LIMITED_BYPASS = f"""
rules:
  - principals: ["{ONCALL}"]
    actions: [update]
    bypassFreeze: true
    images: ["{ECR}/safe"]
  - principals: ["{ONCALL}"]
    actions: [update]
"""


def test_a_bypass_rule_that_limits_images_never_bypasses() -> None:
    """Another rule could allow an image the bypass rule does not: the change would pass the freeze with it."""
    rules_found = permissions.parse(yaml.safe_load(IMAGE_LIMITED_BYPASS))
    assert not rules_found.bypasses_freeze(ONCALL, "update", "test-cluster", "web")


@pytest.mark.parametrize("until", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_an_until_out_of_the_range_of_times_is_a_400(http: Any, workload: Workload, until: str) -> None:
    response = post(http, "/freezes", {"scope": {}, "until": until, "reason": "x"})
    assert response.status_code == 400
    assert "out of the range of times" in response.json_body["Message"]


def test_a_gate_deleted_and_made_again_does_not_take_a_stale_writer(
    http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that read a gate before it was deleted must not write it back over a newer freeze."""
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    home, now = accounts.home(), datetime.now(UTC)
    scope = Scope(("test-cluster",))
    first = freezes.create(table, scope, home, now + timedelta(hours=1), "first", "wait", "p")
    stale = freezes._read_gates(table, ["CLUSTER#test-cluster"])
    freezes.lift(table, first)
    later = freezes.create(table, scope, home, now + timedelta(hours=10), "later", "wait", "p")
    real = freezes._read_gates
    reads = iter([stale])
    monkeypatch.setattr(freezes, "_read_gates", lambda t, g: next(reads, None) or real(t, g))
    freezes.create(table, scope, home, now + timedelta(hours=1), "racing", "wait", "p")
    monkeypatch.setattr(freezes, "_read_gates", real)
    gate = real(table, ["CLUSTER#test-cluster"])["CLUSTER#test-cluster"]
    assert later.id in gate.entries
    assert first.id not in gate.entries
    monkeypatch.setattr(freezes, "clock", lambda: (now + timedelta(hours=2)).timestamp())
    assert post(http, "/update", UPDATE).status_code == 423  # the later freeze still stops writes


def test_a_refusal_by_a_window_names_the_one_off_freezes_too(
    gateway: Gateway,
    workload: Workload,
    rules: Path,  # noqa: F811
    friday_evening: None,  # noqa: F811
) -> None:
    made = gateway(
        "POST",
        "/freezes",
        body={"scope": {}, "until": "2026-01-20T00:00:00Z", "reason": "incident", "pushes": "drop"},
        user_arn=MANAGER,
    )
    assert made.status == 201, made.json
    refused = gateway("POST", "/update", body=GATEWAY_UPDATE, user_arn=WEB_TEAM)
    assert refused.status == 423
    assert len(refused.json["freezes"]) == 2  # the window and the emergency stop, whose end is later
    assert "incident" in refused.json["Message"]


def test_a_name_longer_than_ecs_allows_is_a_400_not_a_502(http: Any, workload: Workload) -> None:
    """Its gate's key would pass DynamoDB's 2 KB limit for keys."""
    response = post(
        http,
        "/freezes",
        {"scope": {"clusters": ["c" * 1500], "services": ["s" * 1500]}, "until": IN_AN_HOUR, "reason": "x"},
    )
    assert response.status_code == 400
    assert "non-empty name or ARN" in response.json_body["Message"]


def test_a_freeze_is_written_with_an_idempotency_token(http: Any, workload: Workload) -> None:
    sent: list[dict[str, Any]] = []
    clients.dynamodb_client().meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems", lambda params, **_: sent.append(dict(params))
    )
    assert post(http, "/freezes", {"scope": {}, "until": IN_AN_HOUR, "reason": "x"}).status_code == 201
    assert sent
    assert all(len(params.get("ClientRequestToken", "")) == 32 for params in sent)
