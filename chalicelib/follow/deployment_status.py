"""How one deployment, named by its id, ended or is going: `GET /services/{cluster}/{service}?deployment=<id>`.

"The service is stable" is not "my deployment worked": a pipeline must judge
its own deployment, which a newer one may have replaced, the circuit breaker
or an alarm rolled back, or a person stopped. The first rule that applies wins:

1. the record's outcome, when final (COMPLETED, ROLLED_BACK, STOPPED);
2. ECS's own record of the deployment (its service deployment, see
   chalicelib.follow.service_deployments) when ECS can describe it: its status's
   outcome, with its reason (the alarm that went off), stage and strategy;
   STOPPED because a newer deployment came is SUPERSEDED;

Only where ECS cannot describe service deployments do the rules from
DescribeServices apply:

3. ROLLED_BACK when a newer deployment's reason, or a service event not older
   than this deployment, says the circuit breaker rolled back (it may also have
   FAILED: it failed and was rolled back) - unless the rollback went back *to*
   this deployment, or another deployment came between;
4. FAILED when the record or ECS's listed rolloutState says so;
5. while ECS lists it as the PRIMARY deployment, its rolloutState; listed but
   replaced, COMPLETED if it had completed, else SUPERSEDED;
6. SUPERSEDED when a newer deployment replaced it and nothing says it was rolled back.

Known to neither ECS nor the records: DeploymentNotFoundError (404).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from chalicelib.core import circuit_breaker
from chalicelib.core.errors import DeploymentNotFoundError, echo_input
from chalicelib.core.locations import location_of
from chalicelib.core.results import as_datetime, cluster_name_of
from chalicelib.follow import service_deployments
from chalicelib.follow.service_deployments import ServiceDeployment
from chalicelib.state import records
from chalicelib.state.records import DeploymentRecord

SUPERSEDED = records.SUPERSEDED
# ECS may write an event a moment before it records the deployment it is about.
CLOCK_SKEW_SECONDS = 5.0


def judge(
    deployment_id: str,
    service: Mapping[str, Any],
    record: DeploymentRecord | None,
    tracked: ServiceDeployment | None = None,
) -> dict[str, Any]:
    """{"id", "outcome", "reason", "lifecycleStage", "strategy", "ecsStatus", "serviceDeploymentArn", "traffic"}
    for `deployment_id` of the described `service`; `tracked`: its service deployment, when ECS described it.

    A record of another service's deployment (the id was mistyped or reused) is
    not this deployment's: it is left out.
    """
    if record is not None and not of_service(record, service):
        record = None
    verdict = _judged(deployment_id, service, record, tracked)
    if tracked is not None:
        return {**verdict, **tracked.verdict_fields()}
    return {
        **verdict,
        "lifecycleStage": record.lifecycle_stage if record else None,
        "strategy": record.strategy if record else None,
        "ecsStatus": record.ecs_status if record else None,
        "serviceDeploymentArn": record.service_deployment_arn if record else None,
        "traffic": None,
    }


def _judged(
    deployment_id: str,
    service: Mapping[str, Any],
    record: DeploymentRecord | None,
    tracked: ServiceDeployment | None,
) -> dict[str, Any]:
    deployments = list(service.get("deployments") or [])
    listed = next((d for d in deployments if d.get("id") == deployment_id), None)
    if listed is None and record is None:
        raise DeploymentNotFoundError(
            f"deployment '{echo_input(deployment_id)}' is not listed by ECS for service "
            f"'{service.get('serviceName')}' and was not recorded by this service"
        )
    moving = tracked is not None and record is not None and record.ecs_status in service_deployments.MOVING_STATUSES
    if record is not None and record.outcome in records.FINAL_OUTCOMES and not moving:
        return _verdict(deployment_id, record.outcome, record.outcome_reason)
    if tracked is not None:
        others = [as_datetime(d.get("createdAt")) for d in deployments if d.get("id") != deployment_id]
        if not (record is not None and record.stop) and service_deployments.superseded(tracked, others):
            newest = _primary(deployments)
            return _verdict(deployment_id, SUPERSEDED, f"replaced by deployment {(newest or {}).get('id')}")
        if tracked.outcome == records.IN_PROGRESS and record is not None and record.outcome == records.FAILED:
            return _verdict(deployment_id, records.FAILED, record.outcome_reason)  # ECS said so; no rollback yet
        said = listed.get("rolloutStateReason") if listed is not None else None
        return _verdict(deployment_id, tracked.outcome, tracked.reason or said)

    created = as_datetime(listed.get("createdAt")) if listed else None
    created = created or (as_datetime(record.at) if record else None)
    rolled_back = _rollback_evidence(deployment_id, created, deployments, service.get("events") or [])
    if rolled_back is not None:
        return _verdict(deployment_id, records.ROLLED_BACK, rolled_back)

    if record is not None and record.outcome == records.FAILED:
        return _verdict(deployment_id, records.FAILED, record.outcome_reason)
    if listed is not None and listed.get("rolloutState") == records.FAILED:
        return _verdict(deployment_id, records.FAILED, listed.get("rolloutStateReason"))

    if listed is not None:
        state = listed.get("rolloutState")
        if listed.get("status") == "PRIMARY":
            if state in (records.IN_PROGRESS, records.COMPLETED):
                return _verdict(deployment_id, str(state), listed.get("rolloutStateReason"))
            settled = len(deployments) == 1 and listed.get("runningCount") == listed.get("desiredCount")
            return _verdict(deployment_id, records.COMPLETED if settled else records.IN_PROGRESS, None)
        if state == records.COMPLETED:
            return _verdict(deployment_id, records.COMPLETED, listed.get("rolloutStateReason"))
    newest = _primary(deployments)
    replacement = f"replaced by deployment {newest.get('id')}" if newest else "replaced by a newer deployment"
    return _verdict(deployment_id, SUPERSEDED, replacement)


def track(
    client: Any,
    cluster: str,
    service: str,
    deployment_id: str,
    described: Mapping[str, Any],
    record: DeploymentRecord | None,
    newest: ServiceDeployment | None = None,
) -> ServiceDeployment | None:
    """The service deployment of `deployment_id` of the described service, when ECS can say (`newest`: the
    service's newest, when already read)."""
    if record is not None and not of_service(record, described):
        record = None
    if (
        record is not None
        and record.outcome in records.FINAL_OUTCOMES
        and record.ecs_status not in service_deployments.MOVING_STATUSES
    ):
        return None  # settled: its record says how it ended, at no cost (unless ECS was still rolling it back)
    known = record.service_deployment_arn if record else None
    if newest is not None and known == newest.arn:
        return newest
    listed = next((d for d in described.get("deployments") or [] if d.get("id") == deployment_id), None)
    if known is None and listed is None and record is None:
        return None
    primary = listed is not None and listed.get("status") == "PRIMARY"
    if known is None and newest is not None and primary and _same_moment(newest, listed or {}):
        return newest  # the newest deployment is the one asked about: no second look-up
    recorded = (record.task_definition or {}).get("arn") if record else None
    task_definition = (listed or {}).get("taskDefinition") or recorded
    created = as_datetime((listed or {}).get("createdAt")) or (as_datetime(record.at) if record else None)
    return service_deployments.find(client, cluster, service, task_definition, created, known)


def _same_moment(deployment: ServiceDeployment, listed: Mapping[str, Any]) -> bool:
    created = as_datetime(listed.get("createdAt"))
    return bool(
        created
        and deployment.created
        and abs((created - deployment.created).total_seconds()) <= service_deployments.TIE_EXACT_SECONDS
    )


def of_service(record: DeploymentRecord, service: Mapping[str, Any]) -> bool:
    """True when the record is of the described service: its cluster and name, and its account and region
    when the record says them (records of a service elsewhere are kept under `account/region/cluster/service`)."""
    if record.key.split("/")[-2:] != [cluster_name_of(service), str(service.get("serviceName"))]:
        return False
    located = location_of(str(service.get("serviceArn") or ""))
    if record.account is None or located is None:
        return True
    return (record.account, record.region) == (located.account, located.region)


def _verdict(deployment_id: str, outcome: str, reason: str | None) -> dict[str, Any]:
    return {"id": deployment_id, "outcome": outcome, "reason": reason}


def _primary(deployments: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((d for d in deployments if d.get("status") == "PRIMARY"), None)


def _rollback_evidence(
    deployment_id: str,
    created: datetime | None,
    deployments: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
) -> str | None:
    """The text saying the circuit breaker rolled this deployment back, or None."""
    if created is None:
        return None
    since = created.timestamp() - CLOCK_SKEW_SECONDS
    newer = sorted(
        (d for d in deployments if d.get("id") != deployment_id and _time(d.get("createdAt")) > created.timestamp()),
        key=lambda d: _time(d.get("createdAt")),
    )
    for position, deployment in enumerate(newer):
        reason = deployment.get("rolloutStateReason") or ""
        if _rolls_back_other_than(reason, deployment_id):
            # Only the deployment the rollback replaced was rolled back: none may come between.
            return reason if position == 0 else None
    first_newer = _time(newer[0].get("createdAt")) if newer else None
    for event in events:
        message = event.get("message") or ""
        moment = _time(event.get("createdAt"))
        if (
            moment < since
            or not circuit_breaker.says_rolling_back(message)
            or circuit_breaker.rollback_target(message) == deployment_id
        ):
            continue
        # A rollback event after a newer, non-rollback deployment began is about that one.
        if first_newer is not None and moment > first_newer + CLOCK_SKEW_SECONDS and len(newer) > 1:
            continue
        return str(message)
    return None


def _rolls_back_other_than(text: str, deployment_id: str) -> bool:
    """True when `text` says the circuit breaker rolled back, to a deployment other than `deployment_id`."""
    return circuit_breaker.says_rolling_back(text) and circuit_breaker.rollback_target(text) != deployment_id


def _time(moment: Any) -> float:
    parsed = as_datetime(moment)
    return parsed.timestamp() if parsed else 0.0
