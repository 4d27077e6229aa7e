"""DescribeServices answers as ECS gives them, for the states moto cannot reach (deployments, events)."""

from __future__ import annotations

import json
import uuid
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


# ECS's service deployment API (ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions,
# StopServiceDeployment, ContinueServiceDeployment) is not implemented by moto: its answers are served here in the
# shapes ECS documents (the API reference and the AWS CLI's describe-service-deployments example), parsed as botocore
# gives them.
SERVICE_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/test-cluster/web"


def service_deployment(
    ident: str,
    status: str,
    revision: int,
    minutes: float,
    *,
    stage: str | None = None,
    strategy: str = "ROLLING",
    reason: str | None = None,
    alarms: list[str] | None = None,
    triggered: list[str] | None = None,
    breaker: str | None = None,
    traffic: tuple[float, float] | None = None,
    created: datetime | None = None,
    stopped_minutes: float | None = None,
    hooks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One service deployment, as DescribeServiceDeployments describes it (`created`: overrides `minutes`)."""
    began = created or T0 + timedelta(minutes=minutes)
    target: dict[str, Any] = {
        "arn": revision_arn(ident),
        "requestedTaskCount": 2,
        "runningTaskCount": 2 if status == "SUCCESSFUL" else 1,
        "pendingTaskCount": 0 if status == "SUCCESSFUL" else 1,
    }
    if traffic is not None:
        target["requestedProductionTrafficWeight"], target["requestedTestTrafficWeight"] = traffic
    answer: dict[str, Any] = {
        "serviceDeploymentArn": deployment_arn(ident),
        "serviceArn": SERVICE_ARN,
        "clusterArn": CLUSTER_ARN,
        "createdAt": began,
        "startedAt": began,
        "updatedAt": began + timedelta(minutes=1),
        "targetServiceRevision": target,
        "status": status,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": True, "rollback": True},
            "maximumPercent": 200,
            "minimumHealthyPercent": 100,
            "strategy": strategy,
            "alarms": {"alarmNames": alarms or [], "enable": bool(alarms), "rollback": bool(alarms)},
        },
        "deploymentCircuitBreaker": {"status": breaker or "MONITORING", "failureCount": 0, "threshold": 3},
        "_revision": f"{TD}:{revision}",  # what its target revision runs: DescribeServiceRevisions answers it
    }
    if stage:
        answer["lifecycleStage"] = stage
    if reason:
        answer["statusReason"] = reason
    if alarms:
        answer["alarms"] = {"status": "TRIGGERED" if triggered else "MONITORING", "alarmNames": alarms}
        if triggered:
            answer["alarms"]["triggeredAlarmNames"] = triggered
    if breaker == "TRIGGERED":
        answer["deploymentCircuitBreaker"] = {"status": "TRIGGERED", "failureCount": 3, "threshold": 3}
    if status.startswith("ROLLBACK"):
        answer["rollback"] = {"reason": reason or "rolled back", "startedAt": began + timedelta(minutes=5)}
    if status in ("SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"):
        answer["finishedAt"] = began + timedelta(minutes=10)
    if stopped_minutes is not None:
        answer["stoppedAt"] = began + timedelta(minutes=stopped_minutes)
    if hooks is not None:
        answer["lifecycleHookDetails"] = hooks
    return answer


def pause_hook(
    hook_id: str = "hook-1", expires: datetime | None = None, status: str = "AWAITING_ACTION", timeout: str = "ROLLBACK"
) -> dict[str, Any]:
    """A PAUSE lifecycle hook as DescribeServiceDeployments lists it in `lifecycleHookDetails`."""
    return {
        "hookId": hook_id,
        "targetType": "PAUSE",
        "status": status,
        "expiresAt": expires or datetime.now(UTC) + timedelta(hours=2),
        "timeoutAction": timeout,
    }


def hook_event(
    service_deployment_arn: str | None = None, hook_id: str | None = None, name: str = "HOOK_AWAITING_ACTION"
) -> dict[str, Any]:
    """An "ECS Hook State Change" event as EventBridge delivers it, with a fresh id. ECS's guide names the event
    and its HOOK_AWAITING_ACTION; its detail is not documented field by field: the service is in `resources`, the
    service deployment and the hook, when given, in the detail."""
    detail: dict[str, Any] = {"eventType": "INFO", "eventName": name}
    if service_deployment_arn:
        detail["serviceDeploymentArn"] = service_deployment_arn
    if hook_id:
        detail["hookId"] = hook_id
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Hook State Change",
        "source": "aws.ecs",
        "account": ACCOUNT,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "region": REGION,
        "resources": [SERVICE_ARN],
        "detail": detail,
    }


def deployment_arn(ident: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/test-cluster/web/{ident}"


def revision_arn(ident: str) -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-revision/test-cluster/web/{ident}"


class ServiceDeploymentAnswers:
    """Serves the service deployment API from `deployments` (service_deployment's dicts) on a client's events
    (moto lacks it); every call made is kept in `calls` as (operation, parameters)."""

    def __init__(self, events: Any, deployments: list[dict[str, Any]] | None = None) -> None:
        self.deployments = list(deployments or [])
        self.calls: list[tuple[str, dict[str, Any]]] = []
        for operation, answer in (
            ("ListServiceDeployments", "_list"),
            ("DescribeServiceDeployments", "_describe"),
            ("DescribeServiceRevisions", "_revisions"),
            ("StopServiceDeployment", "_stop"),
            ("ContinueServiceDeployment", "_continue"),
        ):
            events.register(f"before-call.ecs.{operation}", self._served(operation, answer))

    def _served(self, operation: str, answer: str) -> Any:
        def serve(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            sent = json.loads(params["body"] or b"{}")  # the request as serialized (times as epoch seconds)
            self.calls.append((operation, sent))
            status, body = getattr(self, answer)(sent)
            http = AWSResponse(f"https://ecs.{REGION}.amazonaws.com/", status, {}, None)
            return http, {**body, "ResponseMetadata": {"HTTPStatusCode": status}}

        return serve

    def _public(self, deployment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in deployment.items() if not k.startswith("_")}

    def _list(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        window = params.get("createdAt") or {}
        after, before = _epoch(window.get("after")), _epoch(window.get("before"))
        found = [
            {
                "serviceDeploymentArn": d["serviceDeploymentArn"],
                "serviceArn": d["serviceArn"],
                "clusterArn": d["clusterArn"],
                "createdAt": d["createdAt"],
                "startedAt": d["startedAt"],
                "targetServiceRevisionArn": d["targetServiceRevision"]["arn"],
                "status": d["status"],
            }
            for d in self.deployments
            if (after is None or d["createdAt"].timestamp() >= after)
            and (before is None or d["createdAt"].timestamp() <= before)
            and (not params.get("status") or d["status"] in params["status"])
        ]
        return 200, {"serviceDeployments": found}

    def _describe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        wanted = params["serviceDeploymentArns"]
        found = [self._public(d) for d in self.deployments if d["serviceDeploymentArn"] in wanted]
        known = {d["serviceDeploymentArn"] for d in found}
        failures = [{"arn": arn, "reason": "MISSING"} for arn in wanted if arn not in known]
        return 200, {"serviceDeployments": found, "failures": failures}

    def _revisions(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        found = [
            {
                "serviceRevisionArn": d["targetServiceRevision"]["arn"],
                "serviceArn": d["serviceArn"],
                "clusterArn": d["clusterArn"],
                "taskDefinition": d["_revision"],
                "createdAt": d["createdAt"],
            }
            for d in self.deployments
            if d["targetServiceRevision"]["arn"] in params["serviceRevisionArns"]
        ]
        return 200, {"serviceRevisions": found, "failures": []}

    def _stop(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        arn = params["serviceDeploymentArn"]
        found = next((d for d in self.deployments if d["serviceDeploymentArn"] == arn), None)
        if found is None:
            message = "The service deployment does not exist."
            return 400, {"Error": {"Code": "ServiceDeploymentNotFoundException", "Message": message}}
        if found["status"] not in ("PENDING", "IN_PROGRESS"):
            message = f"The service deployment is in {found['status']} status and can't be stopped."
            return 400, {"Error": {"Code": "ConflictException", "Message": message}}
        found["status"] = "STOP_REQUESTED" if params.get("stopType") == "ABORT" else "ROLLBACK_REQUESTED"
        return 200, {"serviceDeploymentArn": arn}

    def _continue(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        arn, hook_id = params["serviceDeploymentArn"], params["hookId"]
        found = next((d for d in self.deployments if d["serviceDeploymentArn"] == arn), None)
        if found is None:
            message = "The service deployment does not exist."
            return 400, {"Error": {"Code": "ServiceDeploymentNotFoundException", "Message": message}}
        hook = next((h for h in found.get("lifecycleHookDetails") or [] if h["hookId"] == hook_id), None)
        if found["status"] != "IN_PROGRESS" or hook is None or hook["status"] != "AWAITING_ACTION":
            message = f"The lifecycle hook {hook_id} is not awaiting action."
            return 400, {"Error": {"Code": "InvalidParameterException", "Message": message}}
        hook["status"] = "SUCCEEDED"
        if params.get("action") == "ROLLBACK":
            found["status"] = "ROLLBACK_REQUESTED"
        return 200, {"serviceDeploymentArn": arn}


def _epoch(moment: Any) -> float | None:
    if moment is None:
        return None
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)
