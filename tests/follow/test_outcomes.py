"""The deployment_events function: records follow ECS's events, subscribers are told once.

Deployments are recorded by real updates through the app (moto's UpdateService
answers given the new deployment, as ECS's carry it); events are built here
the way ECS sends them to EventBridge, each with its own id, and invoked
through Chalice's test client; SNS delivers to an SQS queue the test reads.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.follow import outcomes
from chalicelib.state import lock
from chalicelib.state.table import StateTable
from tests.conftest import (
    ACCOUNT,
    ECR,
    REGION,
    STATE_TABLE,
    EcsDeployments,
    Subscriber,
    Workload,
    post,
    records_of,
)

SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/test-cluster/web"
ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/0000000000000000001."


def deployment_event(
    name: str, deployment_id: str, reason: str = "", *, at: datetime | None = None, service_arn: str = SERVICE_ARN
) -> dict[str, Any]:
    """An "ECS Deployment State Change" event as EventBridge delivers it, with a fresh id."""
    moment = (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": moment,
        "region": REGION,
        "resources": [service_arn],
        "detail": {
            "eventType": "ERROR" if name.endswith("FAILED") else "INFO",
            "eventName": name,
            "deploymentId": deployment_id,
            "updatedAt": moment,
            "reason": reason,
        },
    }


@pytest.fixture
def deploy(app_client: Any, workload: Workload, ecs_deployments: EcsDeployments) -> Any:
    """Deploy a tag of web through /update; returns the ECS deployment id it started."""

    def run(tag: str) -> str:
        body = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:{tag}"}
        response = post(app_client.http, "/update", body)
        assert response.status_code == 200, response.json_body
        return ecs_deployments.last_id

    return run


@pytest.fixture
def invoke(app_client: Any) -> Any:
    """Invoke deployment_events with an event; returns its log line's fields."""

    def run(event: dict[str, Any]) -> None:
        app_client.lambda_.invoke("deployment_events", event)

    return run


def outcome_of(deployment_id: str) -> dict[str, Any]:
    [record] = [r for r in records_of("test-cluster", "web") if r.get("deploymentId") == deployment_id]
    return record


def test_completed_event_completes_the_record_and_tells_once(deploy: Any, invoke: Any, subscriber: Subscriber) -> None:
    deployment = deploy("1.1")
    event = deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment, "ECS deployment ecs-svc/1 completed.")
    invoke(event)
    invoke({**event})  # EventBridge delivers at least once

    record = outcome_of(deployment)
    assert (record["outcome"], record["outcomeReason"]) == ("COMPLETED", "ECS deployment ecs-svc/1 completed.")
    assert record["outcomeAt"] == event["detail"]["updatedAt"]
    [told] = subscriber.received()
    assert told["subject"] == "web on test-cluster: deployment web:2 completed (ECS deployment ecs-svc/1 completed)"
    assert told["attributes"] == {
        "event": "DEPLOYMENT_COMPLETED",
        "cluster": "test-cluster",
        "service": "web",
        "account": ACCOUNT,
        "region": REGION,
    }
    message = told["message"]
    assert message["event"] == "DEPLOYMENT_COMPLETED"
    assert message["deploymentId"] == deployment
    assert message["taskDefinition"]["revision"] == 2
    assert message["previousTaskDefinition"]["revision"] == 1
    assert message["containers"] == [{"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:1.1"}]
    assert message["keyId"] == "local"
    assert {"requestId", "at", "reason", "cluster", "service"} <= set(message)


def test_first_in_progress_event_tells_that_it_started_and_only_once(
    deploy: Any, invoke: Any, subscriber: Subscriber
) -> None:
    deployment = deploy("1.1")
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployment, "ECS deployment in progress."))
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployment, "ECS deployment in progress."))

    assert outcome_of(deployment)["outcome"] == "IN_PROGRESS"
    [told] = subscriber.received()
    assert told["subject"] == "web on test-cluster: deployment web:2 started"


def test_failed_then_rolled_back(deploy: Any, invoke: Any, subscriber: Subscriber) -> None:
    deploy("1.1")
    failing = deploy("1.2")
    invoke(
        deployment_event("SERVICE_DEPLOYMENT_FAILED", failing, "ECS deployment circuit breaker: tasks failed to start.")
    )
    assert outcome_of(failing)["outcome"] == "FAILED"

    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", ROLLBACK_REASON))

    record = outcome_of(failing)
    assert record["outcome"] == "ROLLED_BACK"
    assert record["rolledBackBy"] == "ecs-svc/rollback-1"
    told = subscriber.received()
    assert [t["attributes"]["event"] for t in told] == ["DEPLOYMENT_FAILED", "DEPLOYMENT_ROLLED_BACK"]
    assert told[0]["subject"] == "web on test-cluster: deployment web:3 failed (tasks failed to start)"
    assert told[1]["subject"].startswith("web on test-cluster: deployment web:3 rolled back (rolling back to")


def test_rollback_marks_only_the_newest_deployment_and_a_duplicate_marks_nothing_more(
    deploy: Any, invoke: Any, subscriber: Subscriber
) -> None:
    older = deploy("1.1")  # never completed: an older deployment still IN_PROGRESS
    newest = deploy("1.2")
    rollback = deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", ROLLBACK_REASON)

    invoke(rollback)
    invoke({**rollback, "id": str(uuid.uuid4())})  # the same event again, as a new delivery

    assert outcome_of(newest)["outcome"] == "ROLLED_BACK"
    assert outcome_of(older)["outcome"] == "IN_PROGRESS"
    assert [t["attributes"]["event"] for t in subscriber.received()] == ["DEPLOYMENT_ROLLED_BACK"]


def test_a_rollback_after_the_deployment_completed_changes_nothing(
    deploy: Any, invoke: Any, subscriber: Subscriber
) -> None:
    deployment = deploy("1.1")
    invoke(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment))
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", ROLLBACK_REASON))
    assert outcome_of(deployment)["outcome"] == "COMPLETED"
    assert [t["attributes"]["event"] for t in subscriber.received()] == ["DEPLOYMENT_COMPLETED"]


def test_a_rollback_back_to_the_newest_recorded_deployment_undoes_none_of_ours(
    deploy: Any, invoke: Any, subscriber: Subscriber
) -> None:
    deployment = deploy("1.1")
    reason = f"ECS deployment circuit breaker: rolling back to deploymentId {deployment}."
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", reason))
    assert outcome_of(deployment)["outcome"] == "IN_PROGRESS"
    assert subscriber.received() == []


def test_a_deployment_asked_for_after_the_rollback_began_is_not_rolled_back(
    deploy: Any, invoke: Any, subscriber: Subscriber
) -> None:
    deployment = deploy("1.1")
    began = datetime.now(UTC) - timedelta(minutes=5)
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", ROLLBACK_REASON, at=began))
    assert outcome_of(deployment)["outcome"] == "IN_PROGRESS"


@pytest.mark.parametrize(
    ("first", "then", "outcome"),
    [
        ("SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_FAILED", "COMPLETED"),
        ("SERVICE_DEPLOYMENT_COMPLETED", "SERVICE_DEPLOYMENT_IN_PROGRESS", "COMPLETED"),
        ("SERVICE_DEPLOYMENT_FAILED", "SERVICE_DEPLOYMENT_COMPLETED", "FAILED"),
        ("ROLLBACK", "SERVICE_DEPLOYMENT_FAILED", "ROLLED_BACK"),
        ("ROLLBACK", "SERVICE_DEPLOYMENT_COMPLETED", "ROLLED_BACK"),
    ],
)
def test_events_out_of_order_never_undo_an_outcome(
    deploy: Any, invoke: Any, subscriber: Subscriber, first: str, then: str, outcome: str
) -> None:
    deployment = deploy("1.1")
    for name in (first, then):
        if name == "ROLLBACK":
            invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", ROLLBACK_REASON))
        else:
            invoke(deployment_event(name, deployment))
    assert outcome_of(deployment)["outcome"] == outcome
    told = [t["attributes"]["event"] for t in subscriber.received()]
    assert len(told) == 1  # only the first outcome is told; a late IN_PROGRESS tells no start
    assert told[0].removeprefix("DEPLOYMENT_") == outcome


def test_events_of_deployments_not_recorded_here_are_ignored(
    deploy: Any, invoke: Any, subscriber: Subscriber, request_log: list[dict[str, Any]]
) -> None:
    deploy("1.1")
    old_enough = datetime.now(UTC) - timedelta(minutes=5)
    invoke(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", "ecs-svc/made-in-the-console", at=old_enough))
    logged = [line for line in request_log if line.get("function") == "deployment_events"]
    assert logged[-1]["ignored"] == "deployment ecs-svc/made-in-the-console was not recorded by this service"
    assert subscriber.received() == []
    assert all(r["outcome"] == "IN_PROGRESS" for r in records_of("test-cluster", "web"))


def test_a_fresh_event_of_a_deployment_made_elsewhere_is_ignored_at_once_when_no_lock_is_held(
    deploy: Any, invoke: Any, subscriber: Subscriber, request_log: list[dict[str, Any]]
) -> None:
    deploy("1.1")  # the service's lock was taken and let go
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/made-by-another-tool"))  # no failure, no retry
    logged = [line for line in request_log if line.get("function") == "deployment_events"]
    assert logged[-1]["ignored"] == "deployment ecs-svc/made-by-another-tool was not recorded by this service"
    assert subscriber.received() == []


def test_a_fresh_event_naming_no_cluster_waits_for_its_record_by_the_clock(invoke: Any, state_table: str) -> None:
    old_format = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/web"
    with pytest.raises(Exception, match="has no record yet"):
        invoke(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", "ecs-svc/unknown", service_arn=old_format))


def test_an_event_before_its_record_is_delivered_again_and_then_applies(
    app_client: Any,
    workload: Workload,
    ecs_deployments: EcsDeployments,
    invoke: Any,
    subscriber: Subscriber,
    request_log: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    early: list[dict[str, Any]] = []
    original = lock._release

    def ecs_tells_before_the_record_is_written(*args: Any, **kwargs: Any) -> None:
        event = deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", ecs_deployments.last_id, "in progress")
        early.append(event)
        with pytest.raises(Exception, match="has no record yet"):
            invoke(event)  # the invocation fails, so Lambda delivers the event again
        original(*args, **kwargs)

    monkeypatch.setattr(lock, "_release", ecs_tells_before_the_record_is_written)
    body = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"}
    assert post(app_client.http, "/update", body).status_code == 200
    monkeypatch.setattr(lock, "_release", original)

    invoke(early[0])  # Lambda's retry, once the record is there
    assert [t["attributes"]["event"] for t in subscriber.received()] == ["DEPLOYMENT_STARTED"]


def test_an_unreadable_event_is_logged_and_ignored(
    invoke: Any, state_table: str, request_log: list[dict[str, Any]]
) -> None:
    event = deployment_event("SERVICE_DEPLOYMENT_COMPLETED", "ecs-svc/1")
    del event["detail"]["deploymentId"]
    invoke(event)
    assert request_log[-1] == {"function": "deployment_events", "ignored": "the event has no eventName or deploymentId"}


def test_a_failed_publish_fails_the_invocation_and_the_retry_tells_once(
    deploy: Any, invoke: Any, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy("1.1")
    event = deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment)
    sns = clients.sns_client()
    failures = {"left": 1}

    def unavailable(**_: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            from tests.faults import client_error

            raise client_error("Publish", "InternalError", "SNS is down", 500)

    sns.meta.events.register("before-call.sns.Publish", unavailable)
    with pytest.raises(Exception, match="Publish failed"):
        invoke(event)
    assert outcome_of(deployment)["outcome"] == "COMPLETED"  # the outcome is kept; only the telling failed
    assert subscriber.received() == []

    invoke(event)  # Lambda's retry of the same event
    invoke(event)  # and a duplicate delivery on top
    assert [t["attributes"]["event"] for t in subscriber.received()] == ["DEPLOYMENT_COMPLETED"]


def test_concurrent_deliveries_of_one_event_tell_once(deploy: Any, subscriber: Subscriber, atomic_aws: None) -> None:
    deployment = deploy("1.1")
    event = outcomes.DeploymentEvent.parse(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment))
    table = StateTable(clients.dynamodb_client(), STATE_TABLE)
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def deliver() -> None:
        start.wait()
        try:
            outcomes.follow(table, clients.sns_client(), subscriber.topic_arn, event)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert outcome_of(deployment)["outcome"] == "COMPLETED"
    assert len(subscriber.received()) == 1


def test_a_crashed_senders_claim_lapses_and_the_message_goes_out(
    deploy: Any, invoke: Any, subscriber: Subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deploy("1.1")
    event = deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment)
    monkeypatch.setattr(outcomes, "_unclaim", lambda *_args: None)  # the sender died holding its claim
    sns = clients.sns_client()
    calls = {"n": 0}

    def crash_once(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            from tests.faults import client_error

            raise client_error("Publish", "InternalError", "gone", 500)

    sns.meta.events.register("before-call.sns.Publish", crash_once)
    with pytest.raises(Exception, match="Publish failed"):
        invoke(event)
    invoke(event)
    assert subscriber.received() == []  # the claim still holds

    monkeypatch.setattr(outcomes, "CLAIM_SECONDS", -1)
    monkeypatch.setattr(outcomes.time, "time", lambda: 10**10)  # long after the claim lapsed
    invoke(event)
    assert [t["attributes"]["event"] for t in subscriber.received()] == ["DEPLOYMENT_COMPLETED"]


def test_without_a_topic_outcomes_are_still_recorded(deploy: Any, invoke: Any) -> None:
    deployment = deploy("1.1")
    invoke(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployment))
    record = outcome_of(deployment)
    assert record["outcome"] == "COMPLETED"
    assert "owed" not in record


def test_an_old_format_service_arn_is_followed_through_the_deployment_rolled_back_to(deploy: Any, invoke: Any) -> None:
    target = deploy("1.1")
    invoke(deployment_event("SERVICE_DEPLOYMENT_COMPLETED", target))
    failing = deploy("1.2")
    reason = f"ECS deployment circuit breaker: rolling back to deploymentId {target}."
    old_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/web"
    invoke(deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/rollback-1", reason, service_arn=old_arn))
    assert outcome_of(failing)["outcome"] == "ROLLED_BACK"
    assert outcome_of(target)["outcome"] == "COMPLETED"
