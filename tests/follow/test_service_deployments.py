"""Outcomes, stages, strategies and alarms from ECS's own service deployments, and stopping one.

moto implements none of ECS's service deployment API (ListServiceDeployments,
DescribeServiceDeployments, DescribeServiceRevisions, StopServiceDeployment):
their answers are recorded ones, served on the service's own ECS client by
tests.ecs_answers.ServiceDeploymentAnswers; everything else is moto.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.follow import service_deployments
from chalicelib.follow.service_deployments import ServiceDeployment
from tests.conftest import API_KEY, ECR, EcsDeployments, Gateway, Subscriber, Workload, post, records_of
from tests.ecs_answers import (
    ServiceDeploymentAnswers,
    deployment,
    deployment_arn,
    recorded_service,
    serve_recorded,
    service_deployment,
)
from tests.follow.test_outcomes import deployment_event


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


class Deployed:
    """web updated to 1.1 through the app: its ECS deployment id, the revision it runs, and when."""

    def __init__(self, deployment_id: str, task_definition: str, at: datetime) -> None:
        self.id, self.task_definition, self.at = deployment_id, task_definition, at

    def service_deployment(self, ident: str, status: str, **extra: Any) -> dict[str, Any]:
        """Its service deployment as ECS describes it (created with it)."""
        answer = service_deployment(ident, status, 0, 0, created=self.at, **extra)
        answer["_revision"] = self.task_definition
        return answer

    def listed(self, status: str, state: str, reason: str = "") -> dict[str, Any]:
        """It as DescribeServices lists it."""
        return {**deployment("x", status, 2, state, reason, 0), "id": self.id, "createdAt": self.at}


@pytest.fixture
def deployed(http: Any, workload: Workload, ecs_deployments: EcsDeployments) -> Deployed:
    response = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})
    assert response.status_code == 200
    made = ecs_deployments.made[-1]
    return Deployed(made["id"], made["taskDefinition"], made["createdAt"])


def verdict(http: Any, deployment_id: str) -> dict[str, Any]:
    response = get(http, f"/services/test-cluster/web?deployment={deployment_id}")
    assert response.status_code == 200, response.json_body
    return dict(response.json_body["deployment"])


# --- What each status means -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("PENDING", "IN_PROGRESS"),
        ("IN_PROGRESS", "IN_PROGRESS"),
        ("STOP_REQUESTED", "IN_PROGRESS"),
        ("SUCCESSFUL", "COMPLETED"),
        ("STOPPED", "STOPPED"),
        ("ROLLBACK_REQUESTED", "ROLLED_BACK"),
        ("ROLLBACK_IN_PROGRESS", "ROLLED_BACK"),
        ("ROLLBACK_SUCCESSFUL", "ROLLED_BACK"),
        ("ROLLBACK_FAILED", "FAILED"),
    ],
)
def test_each_ecs_status_has_its_outcome(status: str, outcome: str) -> None:
    assert ServiceDeployment(service_deployment("a", status, 2, 0)).outcome == outcome


@pytest.mark.parametrize("strategy", ["ROLLING", "BLUE_GREEN", "LINEAR", "CANARY"])
def test_the_strategy_is_ecs_s_and_traffic_is_shown_for_stepped_ones(strategy: str) -> None:
    shown = ServiceDeployment(service_deployment("a", "IN_PROGRESS", 2, 0, strategy=strategy, traffic=(40.0, 100.0)))
    assert shown.strategy == strategy
    expected = {"production": 40.0, "test": 100.0} if strategy in ("LINEAR", "CANARY") else None
    assert shown.view()["traffic"] == expected


def test_an_alarm_that_rolled_back_is_named_before_ecs_s_reason() -> None:
    rolled_back = ServiceDeployment(
        service_deployment(
            "a",
            "ROLLBACK_SUCCESSFUL",
            2,
            0,
            alarms=["checkout-5xx", "checkout-latency"],
            triggered=["checkout-5xx"],
            reason="Service deployment rolled back because alarm was triggered.",
        )
    )
    assert rolled_back.reason == (
        "alarm checkout-5xx went off: Service deployment rolled back because alarm was triggered."
    )
    assert rolled_back.alarms == ["checkout-5xx"]


def test_stages_are_reached_in_ecs_s_order() -> None:
    assert service_deployments.stage_reached("BAKE_TIME", "BAKE_TIME")
    assert service_deployments.stage_reached("CLEAN_UP", "BAKE_TIME")
    assert not service_deployments.stage_reached("PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME")
    assert not service_deployments.stage_reached(None, "SCALE_UP")


# --- The status route ----------------------------------------------------------------------------------------


def test_a_23_hour_bake_is_in_progress_though_ecs_lists_the_rollout_completed(
    http: Any, ecs: Any, deployed: Deployed
) -> None:
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "COMPLETED")], [], 2))
    ServiceDeploymentAnswers(
        ecs.meta.events,
        [deployed.service_deployment("bake", "IN_PROGRESS", stage="BAKE_TIME", strategy="BLUE_GREEN")],
    )
    body = get(http, f"/services/test-cluster/web?deployment={deployed.id}").json_body
    assert body["outcome"] == "IN_PROGRESS"
    assert body["strategy"] == "ROLLING"  # moto drops the service's deploymentConfiguration; ECS's record keeps it
    assert body["serviceDeployment"]["lifecycleStage"] == "BAKE_TIME"
    assert body["serviceDeployment"]["strategy"] == "BLUE_GREEN"
    assert body["deployment"]["outcome"] == "IN_PROGRESS"
    assert body["deployment"]["lifecycleStage"] == "BAKE_TIME"
    assert body["deployment"]["ecsStatus"] == "IN_PROGRESS"
    assert body["deployment"]["serviceDeploymentArn"] == deployment_arn("bake")


def test_a_rollback_long_ago_whose_events_aged_out_reads_rolled_back(http: Any, ecs: Any, deployed: Deployed) -> None:
    # A day later ECS lists only the revision rolled back to, and no event says why.
    later = deployment("rollback", "PRIMARY", 1, "COMPLETED", "ECS deployment ecs-svc/rollback completed.", 0)
    serve_recorded(ecs, recorded_service([{**later, "createdAt": deployed.at + timedelta(days=1)}], [], 1))
    answers = ServiceDeploymentAnswers(
        ecs.meta.events,
        [
            deployed.service_deployment(
                "ours", "ROLLBACK_SUCCESSFUL", reason="Service deployment rolled back by the circuit breaker."
            ),
            # Another deployment close in time, of another revision: the tie reads the revisions to tell them apart.
            {**deployed.service_deployment("other", "SUCCESSFUL"), "_revision": "arn:other:1"},
        ],
    )
    judged = verdict(http, deployed.id)
    assert judged["outcome"] == "ROLLED_BACK"
    assert judged["reason"] == "Service deployment rolled back by the circuit breaker."
    assert judged["serviceDeploymentArn"] == deployment_arn("ours")
    assert "DescribeServiceRevisions" in [operation for operation, _ in answers.calls]


def test_without_ecs_s_record_the_same_rollback_reads_superseded(http: Any, ecs: Any, deployed: Deployed) -> None:
    """The judgement from DescribeServices alone, where the API is missing (here moto's): what the record fixes."""
    later = deployment("rollback", "PRIMARY", 1, "COMPLETED", "ECS deployment ecs-svc/rollback completed.", 0)
    serve_recorded(ecs, recorded_service([{**later, "createdAt": deployed.at + timedelta(days=1)}], [], 1))
    assert verdict(http, deployed.id)["outcome"] == "SUPERSEDED"


def test_an_alarm_rollback_names_the_alarm(http: Any, ecs: Any, deployed: Deployed) -> None:
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "IN_PROGRESS")], [], 2))
    ServiceDeploymentAnswers(
        ecs.meta.events,
        [
            deployed.service_deployment(
                "alarmed",
                "ROLLBACK_IN_PROGRESS",
                alarms=["web-5xx"],
                triggered=["web-5xx"],
                reason="Rolling back: alarm triggered.",
            )
        ],
    )
    judged = verdict(http, deployed.id)
    assert judged["outcome"] == "ROLLED_BACK"
    assert judged["reason"] == "alarm web-5xx went off: Rolling back: alarm triggered."


def test_a_stopped_deployment_reads_stopped(http: Any, ecs: Any, deployed: Deployed) -> None:
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "IN_PROGRESS")], [], 2))
    ServiceDeploymentAnswers(
        ecs.meta.events, [deployed.service_deployment("stopped", "STOPPED", reason="Stopped by a user.")]
    )
    judged = verdict(http, deployed.id)
    assert (judged["outcome"], judged["reason"]) == ("STOPPED", "Stopped by a user.")


def test_a_deployment_stopped_by_a_newer_one_is_superseded(http: Any, ecs: Any, deployed: Deployed) -> None:
    newer = deployment("newer", "PRIMARY", 3, "IN_PROGRESS", "", 0)
    serve_recorded(
        ecs,
        recorded_service(
            [{**newer, "createdAt": deployed.at + timedelta(minutes=3)}, deployed.listed("ACTIVE", "IN_PROGRESS")],
            [],
            2,
        ),
    )
    ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "STOPPED", stopped_minutes=3.05)])
    assert verdict(http, deployed.id)["outcome"] == "SUPERSEDED"


def test_a_linear_deployment_shows_how_far_the_traffic_moved(http: Any, ecs: Any, deployed: Deployed) -> None:
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "IN_PROGRESS")], [], 2))
    ServiceDeploymentAnswers(
        ecs.meta.events,
        [
            deployed.service_deployment(
                "linear", "IN_PROGRESS", strategy="LINEAR", stage="PRODUCTION_TRAFFIC_SHIFT", traffic=(40.0, None)
            )
        ],
    )
    judged = verdict(http, deployed.id)
    assert judged["traffic"] == {"production": 40.0, "test": None}
    assert (judged["strategy"], judged["lifecycleStage"]) == ("LINEAR", "PRODUCTION_TRAFFIC_SHIFT")


def test_the_status_route_costs_four_ecs_calls_with_service_deployments(
    http: Any, ecs: Any, deployed: Deployed, calls: list[str]
) -> None:
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "IN_PROGRESS")], [], 2))
    ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    calls.clear()
    assert verdict(http, deployed.id)["serviceDeploymentArn"] == deployment_arn("ours")
    # The deployment asked about is the newest: its service deployment is read once.
    assert sorted(calls) == [
        "DescribeServiceDeployments",
        "DescribeServices",
        "DescribeTaskDefinition",
        "ListServiceDeployments",
    ]


def test_access_denied_falls_back_to_describe_services_and_is_not_asked_again(
    http: Any, ecs: Any, deployed: Deployed, calls: list[str]
) -> None:
    def denied(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "AccessDeniedException", "Message": "not authorized to perform ecs:ListServiceDeployments"}
        return AWSResponse("https://ecs", 400, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    ecs.meta.events.register("before-call.ecs.ListServiceDeployments", denied)
    serve_recorded(ecs, recorded_service([deployed.listed("PRIMARY", "IN_PROGRESS", "in progress")], [], 2))
    calls.clear()
    body = get(http, f"/services/test-cluster/web?deployment={deployed.id}").json_body
    assert (body["outcome"], body["serviceDeployment"]) == ("IN_PROGRESS", None)
    assert body["deployment"]["outcome"] == "IN_PROGRESS"
    assert calls.count("ListServiceDeployments") == 1
    calls.clear()
    assert get(http, "/services/test-cluster/web").status_code == 200
    assert "ListServiceDeployments" not in calls


# --- The event function ----------------------------------------------------------------------------------------


def test_a_completed_event_during_a_bake_leaves_the_record_in_progress_at_its_stage(
    app_client: Any, ecs: Any, deployed: Deployed
) -> None:
    answers = ServiceDeploymentAnswers(
        ecs.meta.events,
        [deployed.service_deployment("ours", "IN_PROGRESS", stage="BAKE_TIME", strategy="BLUE_GREEN")],
    )
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployed.id))
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "IN_PROGRESS"
    assert (record["lifecycleStage"], record["strategy"]) == ("BAKE_TIME", "BLUE_GREEN")
    assert record["serviceDeploymentArn"] == deployment_arn("ours")
    # The bake ends: ECS says SUCCESSFUL, and the next event settles it (the ARN kept: no list any more).
    answers.deployments[0].update(status="SUCCESSFUL", lifecycleStage="CLEAN_UP")
    answers.calls.clear()
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployed.id))
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "COMPLETED"
    assert "ListServiceDeployments" not in [operation for operation, _ in answers.calls]


def test_an_alarm_rollback_is_recorded_and_told_with_the_alarm(
    app_client: Any, ecs: Any, deployed: Deployed, subscriber: Subscriber
) -> None:
    ServiceDeploymentAnswers(
        ecs.meta.events,
        [
            deployed.service_deployment(
                "ours", "ROLLBACK_IN_PROGRESS", alarms=["web-5xx"], triggered=["web-5xx"], reason="alarm triggered"
            )
        ],
    )
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_FAILED", deployed.id))
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "ROLLED_BACK"
    assert record["outcomeReason"] == "alarm web-5xx went off: alarm triggered"
    [told] = [m for m in subscriber.received() if m["message"]["event"] == "DEPLOYMENT_ROLLED_BACK"]
    assert "web-5xx" in told["message"]["reason"]
    assert told["message"]["serviceDeploymentArn"] == deployment_arn("ours")


def test_a_deployment_stopped_without_an_event_of_its_own_is_settled_by_the_next_event(
    app_client: Any, ecs: Any, deployed: Deployed, subscriber: Subscriber
) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployed.id))
    answers.deployments[0].update(status="STOPPED", statusReason="Stopped by user alice.")
    # ECS tells of another deployment of the service (not recorded here): the open record is looked at too.
    app_client.lambda_.invoke(
        "deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/9999999999999999999")
    )
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["outcomeReason"]) == ("STOPPED", "Stopped by user alice.")
    events = [m["message"]["event"] for m in subscriber.received()]
    assert events == ["DEPLOYMENT_STARTED", "DEPLOYMENT_STOPPED"]


# --- Stopping a deployment -----------------------------------------------------------------------------------


def stop(http: Any, deployment_id: str, body: Any = None) -> Any:
    path = f"/services/test-cluster/web/deployments/{quote(deployment_id, safe='')}/stop"
    if body is None:
        return http.post(path, headers={"x-api-key": API_KEY})
    return post(http, path, body)


@pytest.mark.parametrize(("body", "stop_type"), [(None, "ROLLBACK"), ({"action": "abort"}, "ABORT")])
def test_stop_asks_ecs_and_keeps_who_asked_on_the_record(
    http: Any, ecs: Any, deployed: Deployed, body: Any, stop_type: str
) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    response = stop(http, deployed.id, body)
    assert response.status_code == 202, response.json_body
    action = (body or {}).get("action", "rollback")
    assert response.json_body["serviceDeploymentArn"] == deployment_arn("ours")
    assert (response.json_body["action"], response.json_body["principal"]) == (action, "local")
    [sent] = [params for operation, params in answers.calls if operation == "StopServiceDeployment"]
    assert sent == {"serviceDeploymentArn": deployment_arn("ours"), "stopType": stop_type}
    [record] = records_of("test-cluster", "web")
    assert record["stop"]["action"] == action
    assert record["stop"]["by"] == "local"
    assert record["outcome"] == "IN_PROGRESS"  # the outcome follows ECS's events


def test_a_finished_deployment_cannot_be_stopped(http: Any, ecs: Any, deployed: Deployed) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "SUCCESSFUL")])
    response = stop(http, deployed.id, {"action": "abort"})
    assert response.status_code == 409
    assert "SUCCESSFUL" in response.json_body["Message"]
    assert "StopServiceDeployment" not in [operation for operation, _ in answers.calls]


def test_ecs_refusing_a_stop_is_a_409(http: Any, ecs: Any, deployed: Deployed) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    original = answers._stop

    def finished_meanwhile(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answers.deployments[0]["status"] = "SUCCESSFUL"
        return original(params)

    answers._stop = finished_meanwhile  # type: ignore[method-assign]
    response = stop(http, deployed.id)
    assert response.status_code == 409
    assert "can't be stopped" in response.json_body["Message"]


@pytest.mark.parametrize(
    ("deployment_id", "body", "status", "message"),
    [
        ("ecs-svc/0000000000000000042", {"action": "abort"}, 404, "'ecs-svc/0000000000000000042' is not listed"),
        ("DEPLOYED", {"action": "pause"}, 400, "'action' must be"),
        ("DEPLOYED", {"action": ["abort"]}, 400, "'action' must be"),
        ("DEPLOYED", {"action": "abort", "force": True}, 400, "unknown field(s) 'force'"),
        ("bad id!", {"action": "abort"}, 400, "must be an ECS deployment id"),
    ],
)
def test_stop_refuses_what_it_cannot_do_naming_it(
    http: Any, ecs: Any, deployed: Deployed, deployment_id: str, body: Any, status: int, message: str
) -> None:
    ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    response = stop(http, deployed.id if deployment_id == "DEPLOYED" else deployment_id, body)
    assert response.status_code == status
    assert message in response.json_body["Message"]


def test_where_ecs_has_no_service_deployments_stop_says_so(http: Any, deployed: Deployed) -> None:
    """moto lacks the API: the answer says why nothing was stopped, never a 500."""
    response = stop(http, deployed.id, {"action": "abort"})
    assert response.status_code == 502
    assert "service deployment API is not available" in response.json_body["Message"]


STOP_RULES = """
rules:
  - principals: ["arn:aws:sts::123456789012:assumed-role/deployers/*"]
    actions: [update, read]
  - principals: ["arn:aws:sts::123456789012:assumed-role/auditors/*"]
    actions: [read]
"""


def test_stopping_takes_the_update_permission(
    gateway: Gateway,
    ecs: Any,
    workload: Workload,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text(STOP_RULES)
    monkeypatch.setenv("PERMISSIONS_FILE", str(rules))
    listed = deployment("ours", "PRIMARY", 2, "IN_PROGRESS", "", 0)
    created = datetime.now(UTC)
    serve_recorded(ecs, recorded_service([{**listed, "createdAt": created}], [], 2))
    ServiceDeploymentAnswers(ecs.meta.events, [service_deployment("ours", "IN_PROGRESS", 2, 0, created=created)])
    path = "/services/test-cluster/web/deployments/ecs-svc%2Fours/stop"
    auditor = "arn:aws:sts::123456789012:assumed-role/auditors/carol"
    refused = gateway("POST", path, body={"action": "abort"}, user_arn=auditor)
    assert refused.status == 403
    assert refused.json["Message"] == f"principal {auditor} may not update cluster test-cluster service web"
    deployer = "arn:aws:sts::123456789012:assumed-role/deployers/dana"
    allowed = gateway("POST", path, body={"action": "abort"}, user_arn=deployer)
    assert allowed.status == 202, allowed.json
    assert allowed.json["principal"] == deployer


# --- What a review found: each of these failed before its fix --------------------------------------------------


def told(subscriber: Subscriber) -> list[str]:
    return [m["message"]["event"] for m in subscriber.received()]


def test_a_rollback_that_fails_ends_failed_after_reading_rolled_back(
    app_client: Any, ecs: Any, deployed: Deployed, subscriber: Subscriber
) -> None:
    answers = ServiceDeploymentAnswers(
        ecs.meta.events, [deployed.service_deployment("ours", "ROLLBACK_IN_PROGRESS", reason="tasks failed")]
    )
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_FAILED", deployed.id))
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["ecsStatus"]) == ("ROLLED_BACK", "ROLLBACK_IN_PROGRESS")
    answers.deployments[0].update(status="ROLLBACK_FAILED", statusReason="the rollback failed too")
    app_client.lambda_.invoke(
        "deployment_events", deployment_event("SERVICE_DEPLOYMENT_FAILED", "ecs-svc/9999999999999999999")
    )
    [record] = records_of("test-cluster", "web")
    assert (record["outcome"], record["outcomeReason"]) == ("FAILED", "the rollback failed too")
    assert told(subscriber) == ["DEPLOYMENT_ROLLED_BACK", "DEPLOYMENT_FAILED"]


@pytest.mark.parametrize(
    ("event", "outcome"), [("SERVICE_DEPLOYMENT_COMPLETED", "COMPLETED"), ("SERVICE_DEPLOYMENT_FAILED", "FAILED")]
)
def test_an_event_ahead_of_ecs_s_record_applies_unless_it_shifts_traffic_or_bakes(
    app_client: Any, ecs: Any, deployed: Deployed, event: str, outcome: str
) -> None:
    ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS", stage="SCALE_UP")])
    app_client.lambda_.invoke("deployment_events", deployment_event(event, deployed.id))
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == outcome
    assert record["serviceDeploymentArn"] == deployment_arn("ours")


def test_started_is_told_even_when_ecs_has_finished_by_the_first_event(
    app_client: Any, ecs: Any, deployed: Deployed, subscriber: Subscriber
) -> None:
    ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "SUCCESSFUL")])
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployed.id))
    assert records_of("test-cluster", "web")[0]["outcome"] == "COMPLETED"
    assert told(subscriber) == ["DEPLOYMENT_STARTED", "DEPLOYMENT_COMPLETED"]


def test_the_tie_checks_the_revision_even_of_a_candidate_created_with_the_record(
    app_client: Any, ecs: Any, deployed: Deployed
) -> None:
    """A push's record keeps the push's time: its UpdateService (and service deployment) may come minutes later."""
    ours = deployed.service_deployment("ours", "IN_PROGRESS", stage="SCALE_UP")
    ours["createdAt"] = deployed.at + timedelta(minutes=3)
    other = {**deployed.service_deployment("other", "SUCCESSFUL"), "_revision": "arn:other:1"}
    other["createdAt"] = deployed.at + timedelta(seconds=5)
    ServiceDeploymentAnswers(ecs.meta.events, [other, ours])
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployed.id))
    [record] = records_of("test-cluster", "web")
    assert (record["serviceDeploymentArn"], record["outcome"]) == (deployment_arn("ours"), "IN_PROGRESS")


def test_a_deployment_replaced_by_one_made_elsewhere_is_superseded_and_told_to_nobody(
    app_client: Any, ecs: Any, deployed: Deployed, subscriber: Subscriber
) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])
    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", deployed.id))
    # Someone deploys in ECS's console: ECS stops ours for it.
    answers.deployments[0].update(status="STOPPED", stoppedAt=deployed.at + timedelta(minutes=2))
    console = service_deployment("console", "IN_PROGRESS", 3, 0, created=deployed.at + timedelta(minutes=2))
    answers.deployments.append(console)
    app_client.lambda_.invoke(
        "deployment_events", deployment_event("SERVICE_DEPLOYMENT_IN_PROGRESS", "ecs-svc/9999999999999999999")
    )
    [record] = records_of("test-cluster", "web")
    assert record["outcome"] == "SUPERSEDED"
    assert record["outcomeReason"].startswith("replaced by a newer deployment")
    assert told(subscriber) == ["DEPLOYMENT_STARTED"]


def test_ecs_refusing_the_stop_s_parameters_is_a_400_with_its_words(http: Any, ecs: Any, deployed: Deployed) -> None:
    answers = ServiceDeploymentAnswers(ecs.meta.events, [deployed.service_deployment("ours", "IN_PROGRESS")])

    def refused(params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        message = "The specified stopType isn't supported. The valid values are ROLLBACK."
        return 400, {"Error": {"Code": "InvalidParameterException", "Message": message}}

    answers._stop = refused  # type: ignore[method-assign]
    response = stop(http, deployed.id, {"action": "abort"})
    assert response.status_code == 400
    assert response.json_body["Message"] == (
        "ECS refused the stop: The specified stopType isn't supported. The valid values are ROLLBACK."
    )
