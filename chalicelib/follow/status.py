"""The service as it is now, and an outcome for its newest deployment: `GET /services/{cluster}/{service}`.

AWS calls: DescribeServices, then DescribeTaskDefinition (for the images)
alongside ListServiceDeployments and DescribeServiceDeployments (ECS's own
record of the newest deployment: its status, stage, strategy and alarms; see
chalicelib.follow.service_deployments). With `?deployment=<id>`, two DynamoDB
GetItem more for that deployment's record and, when it is not the newest, one
DescribeServiceDeployments for its own (its ARN is on the record once the event
function tied it; until then ListServiceDeployments and DescribeServiceRevisions
before it). See chalicelib.follow.deployment_status for how a
deployment is judged. Where ECS cannot describe service deployments, the
outcome is judged from DescribeServices as before, and `serviceDeployment` is null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from chalicelib.aws import budget, ecs, parallel
from chalicelib.core import circuit_breaker, taskdef
from chalicelib.core.results import as_datetime, cluster_name_of, iso8601, revision_of, sortable_time
from chalicelib.follow import deployment_status, service_deployments
from chalicelib.follow.service_deployments import ServiceDeployment
from chalicelib.state.records import DeploymentRecord

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
ROLLED_BACK = "ROLLED_BACK"

# ECS may write the event a moment before it records the rollback deployment.
_EVENT_CLOCK_SKEW_SECONDS = 5.0


RecordLookup = Callable[[str], DeploymentRecord | None]


def service_status(
    client: Any,
    cluster: str,
    service: str,
    deployment_id: str | None = None,
    record_of: RecordLookup = lambda _id: None,
) -> dict[str, Any]:
    """The status body for one service; with `deployment_id`, also the verdict on that deployment."""
    with budget.within(budget.MAIN_SECONDS):
        described = ecs.describe_service(client, cluster, service)
        running = described.get("taskDefinition")  # absent for EXTERNAL-controlled services
        listed = described.get("deployments") or []
        first = min((m for m in (as_datetime(d.get("createdAt")) for d in listed) if m), default=None)
        task_definition, newest, record = parallel.values(
            lambda read: read(),
            [
                lambda: ecs.describe_task_definition(client, running)[0] if running else {},
                lambda: service_deployments.newest(client, cluster, service, first),
                lambda: record_of(deployment_id) if deployment_id else None,
            ],
        )
        tracked = (
            deployment_status.track(client, cluster, service, deployment_id, described, record, newest)
            if deployment_id
            else None
        )
    body = {
        "cluster": cluster_name_of(described),
        "service": described["serviceName"],
        "status": described.get("status"),
        "desiredCount": described.get("desiredCount"),
        "runningCount": described.get("runningCount"),
        "pendingCount": described.get("pendingCount"),
        "taskDefinition": task_definition_reference(running) if running else None,
        "containers": containers_of(task_definition),
        "deployments": [deployment_view(d) for d in newest_first(described.get("deployments", []))],
        "strategy": service_deployments.strategy_of(described),
        "outcome": newest.outcome if _is_newest(newest, described) else deployment_outcome(described),
        "serviceDeployment": newest.view() if newest else None,
    }
    if deployment_id is not None:
        body["deployment"] = deployment_status.judge(deployment_id, described, record, tracked)
    return body


def _is_newest(newest: ServiceDeployment | None, service: Mapping[str, Any]) -> bool:
    """True when `newest` is of the service's newest deployment (ListServiceDeployments may lag UpdateService);
    a rollback's own deployment, which ECS lists after it, belongs to the service deployment it rolls back."""
    if newest is None or newest.created is None:
        return False
    primary = next((d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"), None)
    began = as_datetime((primary or {}).get("createdAt"))
    lag = timedelta(seconds=service_deployments.TIE_EXACT_SECONDS)
    return began is None or began <= newest.created + lag or newest.status.startswith("ROLLBACK")


def deployment_outcome(service: Mapping[str, Any]) -> str:
    """IN_PROGRESS, COMPLETED, FAILED or ROLLED_BACK, judged on the newest deployment only.

    FAILED when the newest deployment failed (even a circuit-breaker rollback).
    ROLLED_BACK when the circuit breaker rolled the newest deployment back, while
    the rollback runs or after it is done: the rollback deployment's reason says
    so, or a service event no older than that deployment does. A rollback asked
    for through POST /rollback is an ordinary deployment with its own outcome.
    """
    deployments = newest_first(service.get("deployments", []))
    if not deployments:
        return COMPLETED if service.get("runningCount") == service.get("desiredCount") else IN_PROGRESS
    newest = deployments[0]
    if newest.get("rolloutState") == FAILED:
        return FAILED  # a failed rollback is a failure, not a rollback
    if circuit_breaker.says_rolling_back(newest.get("rolloutStateReason")):
        return ROLLED_BACK
    since = sortable_time(newest.get("createdAt")) - _EVENT_CLOCK_SKEW_SECONDS
    for event in service.get("events", []):
        if sortable_time(event.get("createdAt")) >= since and circuit_breaker.says_rolling_back(event.get("message")):
            return ROLLED_BACK
    state = newest.get("rolloutState")
    if state in (COMPLETED, FAILED, IN_PROGRESS):
        return str(state)
    # Services without rollout states: done when the newest deployment alone runs every task.
    settled = len(deployments) == 1 and newest.get("runningCount") == newest.get("desiredCount")
    return COMPLETED if settled else IN_PROGRESS


def newest_first(deployments: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Deployments from the newest (PRIMARY) to the oldest."""
    return sorted(
        deployments,
        key=lambda d: (d.get("status") == "PRIMARY", sortable_time(d.get("createdAt"))),
        reverse=True,
    )


def deployment_view(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """One deployment as the status body shows it."""
    return {
        "id": deployment.get("id"),
        "status": deployment.get("status"),
        "taskDefinition": deployment.get("taskDefinition"),
        "rolloutState": deployment.get("rolloutState"),
        "rolloutStateReason": deployment.get("rolloutStateReason"),
        "desiredCount": deployment.get("desiredCount"),
        "runningCount": deployment.get("runningCount"),
        "pendingCount": deployment.get("pendingCount"),
        "failedTasks": deployment.get("failedTasks"),
        "createdAt": iso8601(deployment.get("createdAt")),
        "updatedAt": iso8601(deployment.get("updatedAt")),
    }


def task_definition_reference(arn: str) -> dict[str, Any]:
    """{arn, family, revision} from a task definition ARN."""
    return {"arn": arn, **revision_of(arn)}


def containers_of(task_definition: Mapping[str, Any]) -> list[dict[str, str]]:
    """[{name, image}] in task definition order."""
    return [{"name": name, "image": image} for name, image in taskdef.container_images(task_definition).items()]
