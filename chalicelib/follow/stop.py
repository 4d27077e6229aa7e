"""Stop one deployment: `POST /services/{cluster}/{service}/deployments/{id}/stop`.

`{"action": "rollback"}` (the default) has ECS roll the service back to what it
ran before; `"abort"` stops the deployment where it is. Either goes through
ECS's StopServiceDeployment on the deployment's service deployment, found as
the status route finds it (chalicelib.follow.deployment_status.track). The
request is kept on the deployment's record (`stop`: action, principal, time);
the outcome then follows ECS's events and its service deployment: ROLLED_BACK
or STOPPED.

AWS calls: DescribeServices, then DescribeServiceDeployments (the record knows
the ARN) or ListServiceDeployments, DescribeServiceRevisions and
DescribeServiceDeployments, then StopServiceDeployment; DynamoDB: the record's two
GetItem and one UpdateItem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.aws import budget, ecs
from chalicelib.core.errors import (
    AwsCallError,
    DeploymentNotFoundError,
    DeploymentNotStoppableError,
    InvalidRequestError,
    UpdateError,
    echo_input,
)
from chalicelib.core.results import iso8601
from chalicelib.follow import deployment_status, service_deployments
from chalicelib.state import records
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import StateTable, service_partition, to_item

DEFAULT_ACTION = "rollback"


def stop_action(body: Mapping[str, Any]) -> str:
    """The body's `action` (rollback when absent); InvalidRequestError for anything else."""
    unknown = sorted(set(body) - {"action"})
    if unknown:
        raise InvalidRequestError(f"unknown field(s) {', '.join(map(repr, unknown))}: a stop takes only 'action'")
    action = body.get("action", DEFAULT_ACTION)
    if not isinstance(action, str) or action not in service_deployments.STOP_ACTIONS:
        raise InvalidRequestError('\'action\' must be "rollback" (the default) or "abort"')
    return str(action)


def stop_deployment(
    client: Any,
    table: StateTable | None,
    cluster: str,
    service: str,
    deployment_id: str,
    action: str,
    principal: str,
    record_of: Callable[[str], DeploymentRecord | None],
) -> dict[str, Any]:
    """Ask ECS to stop the deployment; the answer says what was asked (the outcome comes later)."""
    with budget.within(budget.MAIN_SECONDS):
        described = ecs.describe_service(client, cluster, service)
        record = record_of(deployment_id)
        if record is not None and not deployment_status.of_service(record, described):
            record = None
        listed = any(d.get("id") == deployment_id for d in described.get("deployments") or [])
        if record is None and not listed:
            raise DeploymentNotFoundError(
                f"deployment '{echo_input(deployment_id)}' is not listed by ECS for service "
                f"'{described.get('serviceName')}' and was not recorded by this service"
            )
        if record is not None and record.outcome in records.FINAL_OUTCOMES:
            raise DeploymentNotStoppableError(
                f"deployment {deployment_id} has already ended: {record.outcome}; there is nothing to stop"
            )
        tracked = deployment_status.track(client, cluster, service, deployment_id, described, record)
        if tracked is None:
            if not service_deployments.available(client):
                raise AwsCallError(
                    "StopServiceDeployment",
                    "ECS's service deployment API is not available here (or not allowed): this deployment cannot "
                    "be stopped through it",
                )
            raise DeploymentNotFoundError(f"ECS keeps no service deployment for deployment {deployment_id}")
        if tracked.outcome != records.IN_PROGRESS or tracked.status == "STOP_REQUESTED":
            raise DeploymentNotStoppableError(
                f"deployment {deployment_id} cannot be stopped: ECS says it is {tracked.status}"
            )
        service_deployments.stop(client, tracked.arn, action)
    requested = {"action": action, "by": principal, "at": iso8601(datetime.now(UTC))}
    warnings = []
    if table is not None and record is not None:
        try:
            _keep_on_record(table, record, tracked.arn, requested)
        except UpdateError as failure:  # ECS took the stop: say so, and that the record does not show it
            warnings.append(f"ECS is stopping the deployment, but its record does not say who asked: {failure.message}")
    return {
        "cluster": record.cluster if record else str(described.get("clusterArn", "")).rsplit("/", 1)[-1],
        "service": str(described.get("serviceName")),
        "deploymentId": deployment_id,
        "serviceDeploymentArn": tracked.arn,
        "action": action,
        "principal": principal,
        "requestedAt": requested["at"],
        "warnings": warnings,
    }


def _keep_on_record(table: StateTable, record: DeploymentRecord, arn: str, requested: dict[str, Any]) -> None:
    table.call(
        "UpdateItem",
        TableName=table.name,
        Key=to_item({"pk": service_partition(record.key), "sk": record.sort_key}),
        UpdateExpression="SET #stop = :stop, serviceDeploymentArn = :arn",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#stop": "stop"},
        ExpressionAttributeValues=to_item({":stop": requested, ":arn": arn}),
    )
