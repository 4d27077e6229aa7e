"""Deployment records: every /update and /rollback that took the lock leaves one, at no extra round trip."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from chalice.local import LambdaEventConverter
from chalice.test import Client

from chalicelib.aws import clients
from chalicelib.core.results import as_datetime
from tests.conftest import (
    API_KEY,
    ECR,
    PROJECT_DIR,
    STATE_TABLE,
    EcsDeployments,
    Workload,
    lock_items,
    post,
    records_of,
    table_items,
)
from tests.faults import client_error, fail_call

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"}
CONTEXT = {"requestId": "req-123", "identity": {"apiKeyId": "key-abc", "sourceIp": "203.0.113.9"}}


@pytest.fixture
def dynamodb_calls(http: Any) -> list[str]:
    """DynamoDB operations the service's own client makes."""
    made: list[str] = []
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: made.append(model.name)
    )
    return made


@pytest.fixture
def gateway_identity(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Requests carry API Gateway's request id and identity (key id, source IP), as in AWS."""
    original = LambdaEventConverter.create_lambda_event

    def create(self: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        event = original(self, *args, **kwargs)
        event["requestContext"]["requestId"] = CONTEXT["requestId"]
        event["requestContext"]["identity"] = {**event["requestContext"].get("identity", {}), **CONTEXT["identity"]}
        return event

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", create)
    return CONTEXT


def test_a_change_is_recorded_with_who_what_and_in_progress(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments, gateway_identity: dict[str, Any]
) -> None:
    response = post(http, "/update", UPDATE)
    assert response.status_code == 200, response.json_body

    [record] = records_of("test-cluster", "web")
    body = response.json_body
    assert {k: record[k] for k in ("action", "requestId", "keyId", "sourceIp", "changed", "forceNewDeployment")} == {
        "action": "update",
        "requestId": "req-123",
        "keyId": "key-abc",
        "sourceIp": "203.0.113.9",
        "changed": True,
        "forceNewDeployment": False,
    }
    assert record["taskDefinition"] == {k: body["taskDefinition"][k] for k in ("arn", "family", "revision")}
    assert record["previousTaskDefinition"] == body["previousTaskDefinition"]
    assert record["containers"] == [{"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:1.1"}]
    assert record["deploymentId"] == body["deployment"]["id"] == ecs_deployments.last_id
    assert (record["status"], record["outcome"]) == (200, "IN_PROGRESS")
    assert "error" not in record  # null is left out of the item
    assert lock_items() == []


def test_the_pointer_leads_from_the_ecs_deployment_to_its_record(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    post(http, "/update", UPDATE)
    [pointer] = table_items("pointer")
    [record] = records_of("test-cluster", "web")
    assert pointer["pk"] == f"DEPLOYMENT#{ecs_deployments.last_id}"
    assert (pointer["recordPk"], pointer["recordSk"]) == (record["pk"], record["sk"])
    assert pointer["expiresAt"] == record["expiresAt"]


def test_records_expire_after_history_days(http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    post(http, "/update", UPDATE)
    [record] = records_of("test-cluster", "web")
    at = as_datetime(record["at"])
    assert at is not None
    assert record["expiresAt"] == int(at.timestamp()) + 400 * 86400


def test_history_days_is_read_from_the_stage(
    workload: Workload, state_table: str, ecs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app

    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["HISTORY_DAYS"] = "7"
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("LOCAL_API_KEY", API_KEY)
    with Client(app, stage_name="dev", project_dir=str(tmp_path)) as client:
        response = post(client.http, "/update", UPDATE)
    assert response.status_code == 200
    [record] = records_of("test-cluster", "web")
    at = as_datetime(record["at"])
    assert at is not None
    assert record["expiresAt"] == int(at.timestamp()) + 7 * 86400


def test_a_noop_is_recorded_as_no_change(http: Any, workload: Workload) -> None:
    post(http, "/update", {**UPDATE, "image": f"{ECR}/web:1.0"})
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["changed"], record.get("deploymentId")) == ("NO_CHANGE", False, None)
    assert table_items("pointer") == []


def test_a_forced_redeploy_is_a_deployment_in_progress(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    post(http, "/update", {**UPDATE, "image": f"{ECR}/web:1.0", "forceNewDeployment": True})
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["changed"], record["forceNewDeployment"]) == ("IN_PROGRESS", False, True)
    assert record["deploymentId"] == ecs_deployments.last_id


def test_a_dry_run_records_nothing(http: Any, workload: Workload, dynamodb_calls: list[str]) -> None:
    response = post(http, "/update", {**UPDATE, "dryRun": True})
    assert response.status_code == 200
    assert table_items() == []
    assert dynamodb_calls == ["BatchGetItem"]  # the freeze gates, read to say whether a freeze applies


def test_a_failure_after_the_lock_is_recorded_as_an_error_with_the_status_answered(
    http: Any, ecs: Any, workload: Workload
) -> None:
    fail_call(ecs, "UpdateService", lambda: client_error("UpdateService", "AccessDeniedException", "no"))
    response = post(http, "/update", UPDATE)
    assert response.status_code == 502

    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["status"], record["changed"]) == ("ERROR", 502, False)
    assert record["error"] == {"Code": "BadGatewayError", "Message": response.json_body["Message"]}
    assert lock_items() == []


def test_a_bug_after_the_lock_is_recorded_without_its_internals(http: Any, ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "RegisterTaskDefinition", lambda: RuntimeError("secret internals"))
    assert post(http, "/update", UPDATE).status_code == 500
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["status"]) == ("ERROR", 500)
    assert "secret" not in json.dumps(record)


@pytest.mark.parametrize(
    "body",
    [
        {**UPDATE, "image": "UPPER/case:1"},  # 400 before the lock
        {**UPDATE, "service": "ghost"},  # 404 after it: the missing service is recorded
    ],
)
def test_only_requests_that_took_the_lock_are_recorded(http: Any, workload: Workload, body: dict[str, Any]) -> None:
    response = post(http, "/update", body)
    assert response.status_code >= 400
    taken = response.status_code == 404
    assert len(records_of("test-cluster", body["service"])) == (1 if taken else 0)


def test_a_rollback_is_recorded_as_a_rollback(http: Any, workload: Workload, ecs_deployments: EcsDeployments) -> None:
    post(http, "/update", UPDATE)
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web"})
    assert response.status_code == 200
    newest, first = records_of("test-cluster", "web")
    assert (newest["action"], first["action"]) == ("rollback", "update")
    assert newest["containers"] == [{"name": "app", "previousImage": f"{ECR}/web:1.1", "image": f"{ECR}/web:1.0"}]
    assert newest["deploymentId"] == ecs_deployments.last_id
    assert newest["outcome"] == "IN_PROGRESS"


def test_a_change_costs_four_ecs_and_two_dynamodb_calls(
    http: Any, workload: Workload, calls: list[str], dynamodb_calls: list[str], ecs_deployments: EcsDeployments
) -> None:
    post(http, "/update", UPDATE)
    assert calls == ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    assert dynamodb_calls == ["TransactWriteItems", "TransactWriteItems"]  # the lock (and freeze gates); the release
    assert len(table_items("record")) == len(table_items("pointer")) == 1


def test_a_noop_costs_two_ecs_and_two_dynamodb_calls(
    http: Any, workload: Workload, calls: list[str], dynamodb_calls: list[str]
) -> None:
    post(http, "/update", {**UPDATE, "image": f"{ECR}/web:1.0"})
    assert calls == ["DescribeServices", "DescribeTaskDefinition"]
    assert dynamodb_calls == ["TransactWriteItems", "TransactWriteItems"]


def test_a_lock_lost_meanwhile_still_leaves_the_record(http: Any, ecs: Any, workload: Workload) -> None:
    setup_dynamodb = clients.session().client("dynamodb")

    def take_the_lock_away(**_: Any) -> None:
        # As if the lock had expired and another request had taken it.
        setup_dynamodb.put_item(
            TableName=STATE_TABLE,
            Item={"pk": {"S": "SERVICE#test-cluster/web"}, "sk": {"S": "LOCK"}, "owner": {"S": "someone-else"}},
        )

    ecs.meta.events.register("before-call.ecs.UpdateService", take_the_lock_away)
    assert post(http, "/update", UPDATE).status_code == 200
    assert len(records_of("test-cluster", "web")) == 1
    [lock] = [item for item in table_items() if item["sk"] == "LOCK"]
    assert lock["owner"] == "someone-else"  # not ours to delete


def test_a_release_transaction_that_cannot_run_leaves_the_record_written_on_its_own(
    http: Any, workload: Workload, dynamodb_calls: list[str], ecs_deployments: EcsDeployments
) -> None:
    def refuse(params: dict[str, Any], **_: Any) -> None:
        if b'"Delete"' in params["body"]:  # the release, not the take
            raise client_error("TransactWriteItems", "ValidationException", "refused")

    clients.dynamodb_client().meta.events.register("before-call.dynamodb.TransactWriteItems", refuse)
    response = post(http, "/update", UPDATE)
    assert response.status_code == 200
    [record] = records_of("test-cluster", "web")
    assert record["taskDefinition"]["arn"] == response.json_body["taskDefinition"]["arn"]
    assert len(table_items("pointer")) == 1
    assert lock_items() == []  # let go of on its own too
    assert dynamodb_calls[:2] == ["TransactWriteItems", "TransactWriteItems"]
    assert sorted(dynamodb_calls[2:]) == ["DeleteItem", "PutItem", "PutItem"]


def test_a_record_that_cannot_be_written_at_all_is_logged_in_full_and_the_answer_stands(
    http: Any, workload: Workload, caplog: pytest.LogCaptureFixture
) -> None:
    dynamodb = clients.dynamodb_client()
    lock_taken = {"done": False}

    def refuse(model: Any, **_: Any) -> None:
        if model.name == "TransactWriteItems" and not lock_taken["done"]:
            lock_taken["done"] = True  # the lock itself is taken
            return
        if model.name in ("TransactWriteItems", "PutItem"):
            raise client_error(model.name, "AccessDeniedException", "denied")

    dynamodb.meta.events.register("before-call.dynamodb", refuse)
    with caplog.at_level(logging.ERROR, logger="chalicelib.state.lock"):
        response = post(http, "/update", UPDATE)
    assert response.status_code == 200
    assert records_of("test-cluster", "web") == []
    [logged] = [r.getMessage() for r in caplog.records if "deployment record not written" in r.getMessage()]
    assert '"taskDefinition": {"arn": "' + response.json_body["taskDefinition"]["arn"] in logged
