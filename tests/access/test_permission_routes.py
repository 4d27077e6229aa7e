"""Every route with an allowed and a refused principal, as API Gateway hands them over: an API key's id, or the
IAM identity that signed the request (`userArn`), in the request context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ECR,
    PUSH_QUEUE,
    Gateway,
    PushQueue,
    Workload,
    records_of,
    running_task_definition,
)

CI = "arn:aws:sts::123456789012:assumed-role/github-web-ci/run-42"
READER = "arn:aws:sts::123456789012:assumed-role/auditors/carol"
CI_KEY = "ci-key-id"
RULES = f"""
rules:
  - principals: ["arn:aws:iam::123456789012:role/github-web-ci"]
    actions: [update, read, rollback, apply, push]
    clusters: [test-cluster]
    services: [web]
    images: ["{ECR}/web"]
  - principals: ["arn:aws:sts::123456789012:assumed-role/auditors/*"]
    actions: [read]
  - principals: ["{CI_KEY}"]
    actions: [update]
    services: [web]
"""
UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"}


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))
    return path


def description_body(gateway: Gateway) -> dict[str, Any]:
    exported = gateway("GET", "/services/test-cluster/web/description", user_arn=READER)
    assert exported.status == 200
    return {"descriptions": [exported.json]}


# (method, path, body) of each route, and the principal the rules allow it.
ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/update", UPDATE),
    ("POST", "/rollback", {"cluster": "test-cluster", "service": "web"}),
    ("GET", "/services/test-cluster/web", None),
    ("GET", "/services/test-cluster/web/history", None),
    ("GET", "/services/test-cluster/web/description", None),
    ("POST", "/apply", "description"),
    ("POST", "/hooks/push", {"repository": f"{ECR}/web", "tag": "1.2.0"}),
    ("GET", "/clusters/test-cluster/services", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_each_route_serves_an_allowed_principal_and_refuses_another_naming_both(
    gateway: Gateway,
    workload: Workload,
    rules: Path,
    push_queue: PushQueue,
    method: str,
    path: str,
    body: Any,
) -> None:
    sent = description_body(gateway) if body == "description" else body
    # The signed identity counts, whatever key the request carried.
    refused = gateway(method, path, body=sent, user_arn="arn:aws:sts::123456789012:assumed-role/intern/dave")
    assert refused.status == 403, refused.json
    assert refused.json["Code"] == "ForbiddenError"
    assert "principal arn:aws:sts::123456789012:assumed-role/intern/dave may not" in refused.json["Message"]
    allowed = gateway(method, path, body=sent, user_arn=CI, key_id="some-key")
    # 409 for the rollback: the service names no earlier revision yet; allowed, but nothing to roll back to.
    assert allowed.status in (200, 202, 409), allowed.json
    assert allowed.json.get("Code") != "ForbiddenError"


def test_a_key_id_is_the_principal_when_nothing_signed_the_request(
    gateway: Gateway, workload: Workload, rules: Path
) -> None:
    assert gateway("POST", "/update", body=UPDATE, key_id=CI_KEY).status == 200
    # The key's rule gives update only: reading is another action.
    refused = gateway("GET", "/services/test-cluster/web", key_id=CI_KEY)
    assert refused.status == 403
    assert refused.json["Message"] == f"principal {CI_KEY} may not read cluster test-cluster service web"


def test_an_image_outside_the_rule_is_refused_before_anything_is_written(
    gateway: Gateway, setup_ecs: Any, workload: Workload, rules: Path
) -> None:
    before = running_task_definition(setup_ecs, workload)["taskDefinitionArn"]
    refused = gateway("POST", "/update", body={**UPDATE, "image": f"{ECR}/other:1"}, user_arn=CI)
    assert refused.status == 403
    assert refused.json["Message"] == (
        f"principal {CI} may not update cluster test-cluster service web with image {ECR}/other:1"
    )
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == before
    assert records_of("test-cluster", "web") == []


def test_a_fan_out_with_one_service_outside_the_rules_is_refused_whole(
    gateway: Gateway, setup_ecs: Any, workload: Workload, rules: Path
) -> None:
    from tests.conftest import create_service

    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    body = {"cluster": "test-cluster", "services": ["web", "api"], "image": f"{ECR}/web:1.1"}
    refused = gateway("POST", "/update", body=body, user_arn=CI)
    assert refused.status == 403
    assert refused.json["Message"].endswith("may not update cluster test-cluster service api")
    assert records_of("test-cluster", "web") == records_of("test-cluster", "api") == []


def test_discovery_lists_only_what_the_principal_may_read(
    gateway: Gateway, setup_ecs: Any, workload: Workload, rules: Path
) -> None:
    from tests.conftest import create_service

    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    everything = gateway("GET", "/clusters/test-cluster/services", user_arn=READER).json
    assert [s["service"] for s in everything["services"]] == ["api", "web"]
    mine = gateway("GET", "/clusters/test-cluster/services", user_arn=CI).json
    assert [s["service"] for s in mine["services"]] == ["web"]


def test_a_push_needs_a_rule_that_gives_push(gateway: Gateway, rules: Path, push_queue: PushQueue) -> None:
    refused = gateway("POST", "/hooks/push", body={"repository": f"{ECR}/web", "tag": "2.0.0"}, key_id=CI_KEY)
    assert refused.status == 403
    assert refused.json["Message"].startswith(f"principal {CI_KEY} may not push: no rule of the permissions file")
    assert push_queue.waiting() == 0


def test_whoami_says_who_the_caller_is_and_which_rules_apply(gateway: Gateway, rules: Path) -> None:
    answer = gateway("GET", "/whoami", user_arn=READER, key_id="k")
    assert answer.status == 200
    assert answer.json == {
        "principal": READER,
        "kind": "iam",
        "permissionsFile": str(rules),
        "rules": [{"principals": ["arn:aws:sts::123456789012:assumed-role/auditors/*"], "actions": ["read"]}],
        "allowlists": {"clusters": None, "services": None, "imagePrefixes": None, "requireDigest": False},
    }
    assert gateway("GET", "/whoami", key_id="nobody").json["rules"] == []


def test_whoami_without_a_file_says_there_are_no_rules(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_CLUSTERS", "prod-*")
    answer = gateway("GET", "/whoami", key_id="abc123")
    assert answer.json["principal"] == "abc123"
    assert answer.json["kind"] == "key"
    assert answer.json["rules"] is None
    assert answer.json["allowlists"]["clusters"] == ["prod-*"]


def test_a_broken_permissions_file_refuses_everything_and_says_why(
    gateway: Gateway, workload: Workload, rules: Path
) -> None:
    rules.write_text("rules:\n  - principals: [x]\n    action: [read]\n")
    answer = gateway("POST", "/update", body=UPDATE, user_arn=CI)
    assert answer.status == 500
    assert answer.json["Code"] == "ConfigurationError"
    assert "unknown fields ['action']" in answer.json["Message"]
    assert records_of("test-cluster", "web") == []


def test_the_push_status_shows_only_the_services_the_caller_may_read(
    gateway: Gateway, rules: Path, push_queue: PushQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.aws import clients
    from chalicelib.state import pushes
    from chalicelib.state.table import StateTable

    table = StateTable(clients.dynamodb_client(), "ecs-image-updater-state")
    header = pushes.header(f"{ECR}/web", "2.0.0", None, "hook", __import__("datetime").datetime.now())
    arn = "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/{}"
    targets = [pushes.Target(arn.format(name), "test-cluster", name, "queued", "") for name in ("api", "web")]
    pushes.record_decisions(table, "p1", header, targets)
    assert [s["service"] for s in gateway("GET", "/pushes/p1", user_arn=READER).json["services"]] == ["api", "web"]
    assert [s["service"] for s in gateway("GET", "/pushes/p1", user_arn=CI).json["services"]] == ["web"]
    assert PUSH_QUEUE  # the stage's queue exists; the push itself was recorded directly


def test_the_principal_is_in_the_record_the_history_the_audit_tags_and_the_log(
    gateway: Gateway, setup_ecs: Any, workload: Workload, request_log: list[dict[str, Any]]
) -> None:
    assert gateway("POST", "/update", body=UPDATE, user_arn=CI, key_id="abc123").status == 200
    [record] = records_of("test-cluster", "web")
    assert record["principal"] == CI
    assert record["keyId"] == "abc123"
    [entry] = gateway("GET", "/services/test-cluster/web/history", user_arn=CI).json["records"]
    assert entry["principal"] == CI
    tags = {t["key"]: t["value"] for t in running_task_definition(setup_ecs, workload)["tags"]}
    assert tags["deployed-by"] == CI
    assert tags["deployed-by-key"] == "abc123"
    assert [line["principal"] for line in request_log] == [CI, CI]
    assert json.dumps(request_log).count("abc123") >= 1
