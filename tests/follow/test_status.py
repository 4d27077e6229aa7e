"""GET /services/{cluster}/{service}: the service now, and the outcome of its newest deployment.

moto never changes `deployments` on UpdateService, so each deployment state is
served from a recorded DescribeServices answer through an event hook on the
service's moto-backed client (DescribeTaskDefinition still comes from moto).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.follow.status import deployment_outcome
from tests.conftest import API_KEY, ECR, Workload, register, rich_container
from tests.ecs_answers import deployment, event, recorded_service, serve_recorded

ROLLBACK_REASON = "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/old."
STATES: dict[str, tuple[dict[str, Any], str]] = {
    "in progress": (
        recorded_service(
            [
                deployment("new", "PRIMARY", 2, "IN_PROGRESS", "ECS deployment ecs-svc/new in progress.", 10, 1),
                deployment("old", "ACTIVE", 1, "COMPLETED", "ECS deployment ecs-svc/old completed.", 0),
            ],
            [event("(service web) has started 1 tasks: (task 1).", 10)],
            2,
        ),
        "IN_PROGRESS",
    ),
    "completed": (
        recorded_service(
            [deployment("new", "PRIMARY", 2, "COMPLETED", "ECS deployment ecs-svc/new completed.", 10)],
            [event("(service web) has reached a steady state.", 15)],
            2,
        ),
        "COMPLETED",
    ),
    "failed without rollback": (
        recorded_service(
            [
                deployment(
                    "new", "PRIMARY", 2, "FAILED", "ECS deployment circuit breaker: tasks failed to start.", 10, 0
                ),
                deployment("old", "ACTIVE", 1, "COMPLETED", "ECS deployment ecs-svc/old completed.", 0),
            ],
            [event("(service web) (deployment ecs-svc/new) deployment failed: tasks failed to start.", 14)],
            2,
        ),
        "FAILED",
    ),
    "circuit breaker rolling back": (
        recorded_service(
            [
                deployment("rb", "PRIMARY", 1, "IN_PROGRESS", ROLLBACK_REASON, 14, 1),
                deployment(
                    "new", "ACTIVE", 2, "FAILED", "ECS deployment circuit breaker: tasks failed to start.", 10, 0
                ),
            ],
            [event("(service web) rolling back to deployment ecs-svc/old.", 14)],
            1,
        ),
        "ROLLED_BACK",
    ),
    "circuit breaker rollback done": (
        recorded_service(
            [deployment("rb", "PRIMARY", 1, "COMPLETED", "ECS deployment ecs-svc/rb completed.", 14)],
            [
                event("(service web) has reached a steady state.", 20),
                event("(service web) rolling back to deployment ecs-svc/old.", 14),
                event("(service web) (deployment ecs-svc/new) deployment failed: tasks failed to start.", 14),
            ],
            1,
        ),
        "ROLLED_BACK",
    ),
    "new deployment after an old rollback": (
        recorded_service(
            [deployment("later", "PRIMARY", 3, "COMPLETED", "ECS deployment ecs-svc/later completed.", 60)],
            [event("(service web) rolling back to deployment ecs-svc/old.", 14)],
            3,
        ),
        "COMPLETED",
    ),
    "deliberate rollback through /rollback": (
        recorded_service(
            [
                deployment("back", "PRIMARY", 1, "IN_PROGRESS", "ECS deployment ecs-svc/back in progress.", 30, 1),
                deployment("new", "ACTIVE", 2, "COMPLETED", "ECS deployment ecs-svc/new completed.", 10),
            ],
            [],
            1,
        ),
        "IN_PROGRESS",
    ),
}


@pytest.mark.parametrize(("service", "outcome"), STATES.values(), ids=STATES.keys())
def test_outcome_of_the_newest_deployment(service: dict[str, Any], outcome: str) -> None:
    assert deployment_outcome(service) == outcome


def test_rollback_reason_alone_is_enough() -> None:
    service = recorded_service([deployment("rb", "PRIMARY", 1, "IN_PROGRESS", ROLLBACK_REASON, 14, 1)], [], 1)
    assert deployment_outcome(service) == "ROLLED_BACK"


@pytest.mark.parametrize(("seconds_before", "outcome"), [(0, "ROLLED_BACK"), (4, "ROLLED_BACK"), (30, "COMPLETED")])
def test_rollback_event_counts_only_from_the_newest_deployment_on(seconds_before: int, outcome: str) -> None:
    newest = deployment("rb", "PRIMARY", 1, "COMPLETED", "ECS deployment ecs-svc/rb completed.", 14)
    message = {
        "id": "e",
        "createdAt": newest["createdAt"] - timedelta(seconds=seconds_before),
        "message": "(service web) rolling back to deployment ecs-svc/old.",
    }
    assert deployment_outcome(recorded_service([newest], [message], 1)) == outcome


def test_failed_circuit_breaker_rollback_is_failed_not_rolled_back() -> None:
    service = recorded_service(
        [
            deployment("rb", "PRIMARY", 1, "FAILED", ROLLBACK_REASON, 14, 0),
            deployment("new", "ACTIVE", 2, "FAILED", "ECS deployment circuit breaker: tasks failed to start.", 10, 0),
        ],
        [event("(service web) rolling back to deployment ecs-svc/old.", 14)],
        1,
    )
    assert deployment_outcome(service) == "FAILED"


def test_external_service_without_a_task_definition_is_shown(http: Any, setup_ecs: Any, workload: Workload) -> None:
    setup_ecs.create_service(
        cluster=workload.cluster, serviceName="ext", desiredCount=0, deploymentController={"type": "EXTERNAL"}
    )
    response = get(http, "/services/test-cluster/ext")
    assert response.status_code == 200
    assert (response.json_body["taskDefinition"], response.json_body["containers"]) == (None, [])
    listed = {s["service"]: s for s in get(http, "/clusters/test-cluster/services").json_body["services"]}
    assert listed["ext"]["taskDefinition"] is None
    assert listed["web"]["taskDefinition"]["revision"] == 1


def test_service_without_rollout_states_is_judged_by_task_counts() -> None:
    settled = {"deployments": [{"status": "PRIMARY", "desiredCount": 2, "runningCount": 2}]}
    rolling = {"deployments": [{"status": "PRIMARY", "desiredCount": 2, "runningCount": 1}]}
    assert deployment_outcome(settled) == "COMPLETED"
    assert deployment_outcome(rolling) == "IN_PROGRESS"


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


@pytest.mark.parametrize(("service", "outcome"), STATES.values(), ids=STATES.keys())
def test_status_route_reports_each_outcome(
    http: Any, ecs: Any, setup_ecs: Any, workload: Workload, service: dict[str, Any], outcome: str
) -> None:
    register_revisions_up_to(setup_ecs, 3)
    serve_recorded(ecs, service)

    response = get(http, "/services/test-cluster/web")

    assert response.status_code == 200
    body = response.json_body
    assert body["outcome"] == outcome
    newest = body["deployments"][0]
    assert newest["status"] == "PRIMARY"
    assert newest["createdAt"].endswith("Z")
    assert body["taskDefinition"]["revision"] == int(service["taskDefinition"].rsplit(":", 1)[1])


def register_revisions_up_to(setup_ecs: Any, revision: int) -> None:
    """Revisions 2..revision of family web, so the recorded answers name real ones."""
    for number in range(2, revision + 1):
        register(setup_ecs, [rich_container("app", f"{ECR}/web:1.{number}"), rich_container("worker", "w:1")])


def test_status_of_a_live_service(http: Any, workload: Workload) -> None:
    response = get(http, "/services/test-cluster/web")
    assert response.status_code == 200
    body = response.json_body
    assert {k: body[k] for k in ("cluster", "service", "status", "desiredCount")} == {
        "cluster": "test-cluster",
        "service": "web",
        "status": "ACTIVE",
        "desiredCount": 1,
    }
    assert body["taskDefinition"] == {"arn": workload.running_arn, "family": "web", "revision": 1}
    assert body["containers"] == [
        {"name": "app", "image": f"{ECR}/web:1.0"},
        {"name": "worker", "image": "registry.example.com:5000/team/worker:3"},
    ]
    assert body["outcome"] in {"IN_PROGRESS", "COMPLETED"}
    assert set(body["deployments"][0]) == {
        "id",
        "status",
        "taskDefinition",
        "rolloutState",
        "rolloutStateReason",
        "desiredCount",
        "runningCount",
        "pendingCount",
        "failedTasks",
        "createdAt",
        "updatedAt",
    }


def test_status_makes_two_calls_where_ecs_has_no_service_deployments(
    http: Any, workload: Workload, calls: list[str]
) -> None:
    """moto lacks the service deployment API: it is tried once (and fails), then not asked again."""
    get(http, "/services/test-cluster/web")
    assert sorted(calls) == ["DescribeServices", "DescribeTaskDefinition", "ListServiceDeployments"]
    calls.clear()
    get(http, "/services/test-cluster/web")
    assert sorted(calls) == ["DescribeServices", "DescribeTaskDefinition"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/services/nope/web", 404, "cluster 'nope' was not found"),
        ("/services/test-cluster/ghost", 404, "service 'ghost' was not found"),
        ("/services/test-cluster/bad%20name", 400, "'service' must be a service name"),
    ],
)
def test_status_errors(http: Any, workload: Workload, path: str, status: int, message: str) -> None:
    response = get(http, path)
    assert response.status_code == status
    assert message in response.json_body["Message"]


def test_status_needs_the_key(http: Any, workload: Workload) -> None:
    assert http.get("/services/test-cluster/web").status_code == 403
