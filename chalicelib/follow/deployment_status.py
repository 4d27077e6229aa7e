"""How one deployment, named by its id, ended or is going: `GET /services/{cluster}/{service}?deployment=<id>`.

"The service is stable" is not "my deployment worked": a pipeline must judge
its own deployment, which a newer one may have replaced or the circuit breaker
rolled back. The first rule that applies wins:

1. the record's outcome, when final (COMPLETED, ROLLED_BACK);
2. ROLLED_BACK when a newer deployment's reason, or a service event not older
   than this deployment, says the circuit breaker rolled back (it may also have
   FAILED: it failed and was rolled back) - unless the rollback went back *to*
   this deployment, or another deployment came between;
3. FAILED when the record or ECS's listed rolloutState says so;
4. while ECS lists it as the PRIMARY deployment, its rolloutState; listed but
   replaced, COMPLETED if it had completed, else SUPERSEDED;
5. SUPERSEDED when a newer deployment replaced it and nothing says it was rolled back.

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
from chalicelib.state import records
from chalicelib.state.records import DeploymentRecord

SUPERSEDED = "SUPERSEDED"
# ECS may write an event a moment before it records the deployment it is about.
CLOCK_SKEW_SECONDS = 5.0


def judge(deployment_id: str, service: Mapping[str, Any], record: DeploymentRecord | None) -> dict[str, Any]:
    """{"id", "outcome", "reason"} for `deployment_id` of the described `service`.

    A record of another service's deployment (the id was mistyped or reused) is
    not this deployment's: it is left out.
    """
    if record is not None and not _of_service(record, service):
        record = None
    deployments = list(service.get("deployments") or [])
    listed = next((d for d in deployments if d.get("id") == deployment_id), None)
    if listed is None and record is None:
        raise DeploymentNotFoundError(
            f"deployment '{echo_input(deployment_id)}' is not listed by ECS for service "
            f"'{service.get('serviceName')}' and was not recorded by this service"
        )
    if record is not None and record.outcome in records.FINAL_OUTCOMES:
        return _verdict(deployment_id, record.outcome, record.outcome_reason)

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


def _of_service(record: DeploymentRecord, service: Mapping[str, Any]) -> bool:
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
