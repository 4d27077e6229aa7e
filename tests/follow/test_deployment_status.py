"""GET /services/{cluster}/{service}?deployment=<id>: judge *that* deployment, by the first rule that applies."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.core.errors import DeploymentNotFoundError
from chalicelib.follow.deployment_status import judge
from chalicelib.state.records import DeploymentRecord
from tests.conftest import API_KEY, ECR, EcsDeployments, Workload, post
from tests.ecs_answers import T0, deployment, event, recorded_service, serve_recorded

OURS = "ecs-svc/ours"
ROLLING_BACK_TO_OLD = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/old."
ROLLING_BACK_TO_OURS = f"ECS deployment circuit breaker: rolling back to deploymentId {OURS}."


def record(outcome: str, reason: str | None = None, minutes: int = 10) -> DeploymentRecord:
    return DeploymentRecord(
        cluster="test-cluster",
        service="web",
        at=(T0.replace(minute=minutes)).isoformat().replace("+00:00", "Z"),
        action="update",
        request_id="r",
        key_id="k",
        source_ip="1.2.3.4",
        changed=True,
        force_new_deployment=False,
        task_definition={"arn": "arn:…:web:2", "family": "web", "revision": 2},
        previous_task_definition={"arn": "arn:…:web:1", "family": "web", "revision": 1},
        containers=[],
        deployment_id=OURS,
        status=200,
        error=None,
        outcome=outcome,
        outcome_reason=reason,
    )


def ours(status: str, state: str, reason: str = "", minutes: int = 10) -> dict[str, Any]:
    return deployment("ours", status, 2, state, reason, minutes)


def service(deployments: list[dict[str, Any]], events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return recorded_service(deployments, events or [], 2)


CASES: dict[str, tuple[dict[str, Any], DeploymentRecord | None, str, str | None]] = {
    "a final record wins over what ECS lists": (
        service([ours("PRIMARY", "IN_PROGRESS")]),
        record("COMPLETED", "done"),
        "COMPLETED",
        "done",
    ),
    "a rolled-back record stays rolled back": (
        service([deployment("rb", "PRIMARY", 1, "COMPLETED", "completed", 30)]),
        record("ROLLED_BACK", "rolled back"),
        "ROLLED_BACK",
        "rolled back",
    ),
    "primary and in progress": (
        service([ours("PRIMARY", "IN_PROGRESS", "in progress"), deployment("old", "ACTIVE", 1, "COMPLETED", "", 0)]),
        record("IN_PROGRESS"),
        "IN_PROGRESS",
        "in progress",
    ),
    "primary and completed, with no record": (
        service([ours("PRIMARY", "COMPLETED", "completed")]),
        None,
        "COMPLETED",
        "completed",
    ),
    "failed without a rollback": (
        service([ours("PRIMARY", "FAILED", "tasks failed to start")]),
        record("IN_PROGRESS"),
        "FAILED",
        "tasks failed to start",
    ),
    "failed and then rolled back: the newer deployment's reason says so": (
        service(
            [
                deployment("rb", "PRIMARY", 1, "IN_PROGRESS", ROLLING_BACK_TO_OLD, 20),
                ours("ACTIVE", "FAILED", "tasks failed to start"),
            ]
        ),
        record("FAILED", "tasks failed to start"),
        "ROLLED_BACK",
        ROLLING_BACK_TO_OLD,
    ),
    "rolled back, and only the service event still tells": (
        service(
            [deployment("rb", "PRIMARY", 1, "COMPLETED", "ECS deployment ecs-svc/rb completed.", 20)],
            [event("(service web) rolling back to deployment ecs-svc/old.", 20)],
        ),
        record("IN_PROGRESS"),
        "ROLLED_BACK",
        "(service web) rolling back to deployment ecs-svc/old.",
    ),
    "a rollback event older than the deployment does not count": (
        service(
            [ours("PRIMARY", "IN_PROGRESS")],
            [event("(service web) rolling back to deployment ecs-svc/old.", 2)],
        ),
        record("IN_PROGRESS"),
        "IN_PROGRESS",
        "",
    ),
    "a later rollback back *to* this deployment did not roll it back": (
        service(
            [
                deployment(
                    "rb", "PRIMARY", 2, "IN_PROGRESS", f"circuit breaker: rolling back to deploymentId {OURS}.", 40
                ),
                ours("ACTIVE", "COMPLETED", "completed"),
            ],
            [event(f"(service web) rolling back to deployment {OURS}.", 40)],
        ),
        None,
        "COMPLETED",
        "completed",
    ),
    "replaced by a newer deployment: superseded": (
        service([deployment("next", "PRIMARY", 3, "IN_PROGRESS", "", 20)]),
        record("IN_PROGRESS"),
        "SUPERSEDED",
        "replaced by deployment ecs-svc/next",
    ),
    "listed but replaced before it completed: superseded": (
        service([deployment("next", "PRIMARY", 3, "IN_PROGRESS", "", 20), ours("ACTIVE", "IN_PROGRESS")]),
        None,
        "SUPERSEDED",
        "replaced by deployment ecs-svc/next",
    ),
    "a rollback of a deployment that came after this one: superseded, not rolled back": (
        service(
            [
                deployment("rb", "PRIMARY", 1, "IN_PROGRESS", ROLLING_BACK_TO_OLD, 30),
                deployment("next", "ACTIVE", 3, "FAILED", "tasks failed", 20),
            ]
        ),
        record("IN_PROGRESS"),
        "SUPERSEDED",
        "replaced by deployment ecs-svc/rb",
    ),
    "a failed record no longer listed": (
        service([deployment("next", "PRIMARY", 3, "IN_PROGRESS", "", 20)]),
        record("FAILED", "tasks failed to start"),
        "FAILED",
        "tasks failed to start",
    ),
}


# What a verdict says of ECS's service deployment where ECS could not describe one (moto has no such API).
UNTRACKED = {"lifecycleStage": None, "strategy": None, "ecsStatus": None, "serviceDeploymentArn": None, "traffic": None}


@pytest.mark.parametrize(("described", "recorded", "outcome", "reason"), CASES.values(), ids=CASES.keys())
def test_each_rule(
    described: dict[str, Any], recorded: DeploymentRecord | None, outcome: str, reason: str | None
) -> None:
    verdict = judge(OURS, described, recorded)
    assert verdict == {**UNTRACKED, "id": OURS, "outcome": outcome, "reason": reason}


def test_a_deployment_known_to_neither_is_not_found() -> None:
    with pytest.raises(DeploymentNotFoundError, match=r"'ecs-svc/ours' is not listed by ECS for service 'web'"):
        judge(OURS, service([deployment("next", "PRIMARY", 3, "IN_PROGRESS", "", 20)]), None)


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


@pytest.fixture
def deployed(http: Any, workload: Workload, ecs_deployments: EcsDeployments) -> str:
    """web updated to 1.1 through the app; the ECS deployment id it started."""
    response = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})
    assert response.status_code == 200
    return ecs_deployments.last_id


def test_the_route_judges_the_deployment_asked_about(http: Any, ecs: Any, deployed: str) -> None:
    listed = deployment("x", "PRIMARY", 2, "IN_PROGRESS", "ECS deployment in progress.", 10)
    serve_recorded(ecs, service([{**listed, "id": deployed}]))
    response = get(http, f"/services/test-cluster/web?deployment={deployed}")
    assert response.status_code == 200
    assert response.json_body["deployment"] == {
        **UNTRACKED,
        "id": deployed,
        "outcome": "IN_PROGRESS",
        "reason": "ECS deployment in progress.",
    }


def test_the_route_uses_the_record_once_ecs_no_longer_lists_it(
    http: Any, app_client: Any, ecs: Any, deployed: str
) -> None:
    from tests.follow.test_outcomes import deployment_event

    app_client.lambda_.invoke("deployment_events", deployment_event("SERVICE_DEPLOYMENT_COMPLETED", deployed, "done"))
    serve_recorded(ecs, service([deployment("next", "PRIMARY", 3, "IN_PROGRESS", "", 20)]))
    response = get(http, f"/services/test-cluster/web?deployment={deployed}")
    assert response.json_body["deployment"] == {**UNTRACKED, "id": deployed, "outcome": "COMPLETED", "reason": "done"}


def test_where_ecs_has_no_service_deployments_the_route_costs_what_it_did(
    http: Any, deployed: str, calls: list[str]
) -> None:
    """moto lacks the service deployment API: one ListServiceDeployments is tried, then not asked again."""
    dynamodb: list[str] = []
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: dynamodb.append(model.name)
    )
    calls.clear()
    assert get(http, f"/services/test-cluster/web?deployment={deployed}").status_code == 200
    assert sorted(calls) == ["DescribeServices", "DescribeTaskDefinition", "ListServiceDeployments"]
    assert dynamodb == ["GetItem", "GetItem"]
    calls.clear()
    assert get(http, f"/services/test-cluster/web?deployment={deployed}").status_code == 200
    assert sorted(calls) == ["DescribeServices", "DescribeTaskDefinition"]


def test_without_the_parameter_the_body_has_no_deployment(http: Any, deployed: str) -> None:
    assert "deployment" not in get(http, "/services/test-cluster/web").json_body


def test_an_unknown_deployment_is_a_404_naming_it(http: Any, deployed: str) -> None:
    response = get(http, "/services/test-cluster/web?deployment=ecs-svc/unknown")
    assert response.status_code == 404
    assert "'ecs-svc/unknown'" in response.json_body["Message"]


def test_a_deployment_of_another_service_is_not_taken_for_this_one(
    http: Any, setup_ecs: Any, workload: Workload, deployed: str
) -> None:
    from tests.conftest import create_service

    create_service(setup_ecs, workload.cluster, "worker", workload.running_arn)
    response = get(http, f"/services/test-cluster/worker?deployment={deployed}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("deployment=", "'deployment' must be an ECS deployment id"),
        ("deployment=%20bad", "'deployment' must be an ECS deployment id"),
        ("deploymentId=ecs-svc/1", "unknown query parameter(s) 'deploymentId'; it takes: deployment"),
        ("deployment=a&deployment=b", "'deployment' appears more than once"),
    ],
)
def test_bad_queries_are_a_400(http: Any, workload: Workload, query: str, message: str) -> None:
    response = get(http, f"/services/test-cluster/web?{query}")
    assert response.status_code == 400
    assert message in response.json_body["Message"]
