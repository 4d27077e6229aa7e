"""DescribeServices answers as ECS gives them, for the states moto cannot reach (deployments, events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.awsrequest import AWSResponse

from tests.conftest import ACCOUNT, REGION

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/test-cluster"
TD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web"


def deployment(
    ident: str, status: str, revision: int, state: str, reason: str, minutes: int, running: int = 2
) -> dict[str, Any]:
    return {
        "id": f"ecs-svc/{ident}",
        "status": status,
        "taskDefinition": f"{TD}:{revision}",
        "desiredCount": 2,
        "pendingCount": 2 - running,
        "runningCount": running,
        "failedTasks": 0 if state != "FAILED" else 3,
        "createdAt": T0 + timedelta(minutes=minutes),
        "updatedAt": T0 + timedelta(minutes=minutes + 1),
        "launchType": "FARGATE",
        "rolloutState": state,
        "rolloutStateReason": reason,
    }


def event(message: str, minutes: int) -> dict[str, Any]:
    return {"id": f"e-{minutes}", "createdAt": T0 + timedelta(minutes=minutes), "message": message}


def recorded_service(deployments: list[dict[str, Any]], events: list[dict[str, Any]], revision: int) -> dict[str, Any]:
    """A DescribeServices answer as ECS gives it (parsed by botocore)."""
    return {
        "serviceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/test-cluster/web",
        "serviceName": "web",
        "clusterArn": CLUSTER_ARN,
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": sum(d["runningCount"] for d in deployments),
        "pendingCount": sum(d["pendingCount"] for d in deployments),
        "launchType": "FARGATE",
        "taskDefinition": f"{TD}:{revision}",
        "deployments": deployments,
        "events": events,
        "deploymentController": {"type": "ECS"},
    }


def serve_recorded(ecs: Any, service: dict[str, Any]) -> None:
    """Answer DescribeServices with `service` instead of asking moto."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        http = AWSResponse("https://ecs.eu-west-1.amazonaws.com/", 200, {}, None)
        return http, {"services": [service], "failures": [], "ResponseMetadata": {"HTTPStatusCode": 200}}

    ecs.meta.events.register("before-call.ecs.DescribeServices", answer)
