"""A recorded deployment follows ECS's own events to its true outcome, and subscribers are told.

ECS sends "ECS Deployment State Change" events to EventBridge; the
`deployment_events` function hands each to `follow`:

| event                                   | record                                          | told          |
|-----------------------------------------|-------------------------------------------------|---------------|
| SERVICE_DEPLOYMENT_IN_PROGRESS (first)  | its own: unchanged (IN_PROGRESS)                 | STARTED       |
| SERVICE_DEPLOYMENT_COMPLETED            | its own: IN_PROGRESS -> COMPLETED                | COMPLETED     |
| SERVICE_DEPLOYMENT_FAILED               | its own: IN_PROGRESS -> FAILED                   | FAILED        |
| IN_PROGRESS, reason "rolling back"      | the service's newest recorded deployment before | ROLLED_BACK   |
|                                         | the event, if IN_PROGRESS or FAILED -> ROLLED_BACK |             |

Where ECS keeps a service deployment for the deployment (chalicelib.follow.
service_deployments), its status decides instead of the event's name and
wording: the event function is given the service's ECS client, ties the record
to its service deployment (the ARN, strategy and stage are kept on the record)
and moves it to the outcome of ECS's status (SUCCESSFUL -> COMPLETED,
ROLLBACK_* -> ROLLED_BACK or FAILED, STOPPED -> STOPPED, told as
DEPLOYMENT_STOPPED) with ECS's reason, the alarm that went off named. A
deployment ECS still runs (baking, say) stays IN_PROGRESS whatever the event.
Each event also looks at the service's newest records still open with a
service deployment tied (one Query, one DescribeServiceDeployments): a deployment
stopped or rolled back without an event of its own is settled then. Where ECS
cannot describe service deployments, the table above applies.

EventBridge delivers at least once and in no set order, so every change is a
conditional write: COMPLETED and ROLLED_BACK are final, FAILED may still become
ROLLED_BACK, nothing goes back to IN_PROGRESS, and a duplicate changes nothing.
A transition and the notification it owes are written together; each owed
notification is then claimed (a lease, so two invocations never both send it),
published, and marked sent. When publishing fails the function fails, Lambda
retries it, and the retry sends only what is still owed. Events for deployments
this service did not record are logged and ignored; while the service's lock
is held (its request may still write the record) such an event fails the
invocation, so that Lambda delivers it again (see _record_or_none).
Notifications go out at least once, and normally exactly once: only a sender
that dies between publishing and marking it sent, for longer than the claim,
lets the message go out again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.aws import accounts
from chalicelib.core import circuit_breaker
from chalicelib.core.errors import UpdateError
from chalicelib.core.locations import Location
from chalicelib.core.results import as_datetime, iso8601
from chalicelib.follow import notify, service_deployments
from chalicelib.follow.service_deployments import ServiceDeployment
from chalicelib.state import records
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import (
    LOCK_SORT_KEY,
    POINTER_SORT_KEY,
    TTL_ATTRIBUTE,
    StateTable,
    deployment_partition,
    from_item,
    service_key,
    service_partition,
    to_item,
)

logger = logging.getLogger(__name__)

IN_PROGRESS_EVENT = "SERVICE_DEPLOYMENT_IN_PROGRESS"
COMPLETED_EVENT = "SERVICE_DEPLOYMENT_COMPLETED"
FAILED_EVENT = "SERVICE_DEPLOYMENT_FAILED"
# How long a claim on a notification keeps others from sending it (a crashed sender's lapses).
CLAIM_SECONDS = 30
# An event for an unknown deployment younger than this is delivered again (Lambda retries an event
# function twice, about one and three minutes later), since its record may not be written yet.
RECORD_GRACE_SECONDS = 150
# Records read, newest first, to find the one a circuit-breaker rollback undid.
ROLLBACK_SEARCH_PAGES = 4
ROLLBACK_SEARCH_PAGE_SIZE = 25
# The service's newest records looked at on each event, for deployments settled without an event of their own.
OPEN_RECORDS_LOOKED_AT = 5
# Outcomes after which a deployment no longer waits at a pause hook.
FINAL_ENDINGS = frozenset({records.COMPLETED, records.FAILED, records.ROLLED_BACK, records.STOPPED, records.SUPERSEDED})
# What each outcome of a service deployment owes, and the outcomes a record may move to it from.
_DECIDED: dict[str, tuple[str, tuple[str, ...]]] = {
    records.COMPLETED: (notify.COMPLETED, (records.IN_PROGRESS,)),
    records.FAILED: (notify.FAILED, (records.IN_PROGRESS,)),
    records.ROLLED_BACK: (notify.ROLLED_BACK, (records.IN_PROGRESS, records.FAILED)),
    records.STOPPED: (notify.STOPPED, (records.IN_PROGRESS, records.FAILED)),
    records.SUPERSEDED: ("", (records.IN_PROGRESS,)),  # replaced by a newer deployment: nobody is told
}


@dataclass(frozen=True)
class DeploymentEvent:
    """The fields of an "ECS Deployment State Change" event this service acts on."""

    event_id: str
    service_arn: str
    name: str
    deployment_id: str
    updated_at: str | None
    reason: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> DeploymentEvent:
        """Read an EventBridge event; ValueError names what is missing."""
        if not isinstance(event, Mapping):
            raise ValueError("the payload is not an EventBridge event (not a JSON object)")
        detail = event.get("detail")
        resources = event.get("resources")
        if not isinstance(detail, Mapping):
            raise ValueError("the event has no detail")
        if not isinstance(resources, list) or not resources or not isinstance(resources[0], str):
            raise ValueError("the event names no service in resources")
        name, deployment_id = detail.get("eventName"), detail.get("deploymentId")
        if not isinstance(name, str) or not isinstance(deployment_id, str) or not deployment_id:
            raise ValueError("the event has no eventName or deploymentId")
        updated_at = detail.get("updatedAt") if isinstance(detail.get("updatedAt"), str) else event.get("time")
        return cls(
            event_id=str(event.get("id", "")),
            service_arn=resources[0],
            name=name,
            deployment_id=deployment_id,
            updated_at=updated_at if isinstance(updated_at, str) else None,
            reason=detail.get("reason") if isinstance(detail.get("reason"), str) else "",
        )

    @property
    def is_rollback(self) -> bool:
        """True for the circuit breaker's rollback deployment starting."""
        return self.name == IN_PROGRESS_EVENT and circuit_breaker.says_rolling_back(self.reason)

    @property
    def rollback_target(self) -> str | None:
        """The deployment a rollback goes back to, when the reason names it."""
        return circuit_breaker.rollback_target(self.reason)

    def service_key(self) -> str | None:
        """The key of the service's lock and records (`cluster/service` at home, `account/region/cluster/service`
        elsewhere: an event may come from another account); None for an ARN of the old format (no cluster)."""
        _, _, resource = self.service_arn.partition(":service/")
        cluster, _, service = resource.partition("/")
        return service_key(cluster, service, accounts.where_of(self.service_arn)) if cluster and service else None


@dataclass
class Followed:
    """What one event did, for the function's log line."""

    event_id: str
    event_name: str
    deployment_id: str
    applied: list[str]
    published: list[str]
    ignored: str | None = None
    # Pause approvals (chalicelib.deploy.pauses) whose deployment ended while they waited: (approval id, why).
    pauses_ended: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the log line."""
        return {
            "event": self.event_id,
            "eventName": self.event_name,
            "deploymentId": self.deployment_id,
            "applied": self.applied,
            "published": self.published,
            "ignored": self.ignored,
            **({"pausesEnded": [approval for approval, _ in self.pauses_ended]} if self.pauses_ended else {}),
        }


def follow(
    table: StateTable, sns: Any | None, topic_arn: str | None, event: DeploymentEvent, ecs: Any | None = None
) -> Followed:
    """Apply one event to the records it concerns and publish what they owe; raises if publishing fails.

    `ecs`: the ECS client of the service's account and region, to read ECS's service deployments with.
    """
    followed = Followed(event.event_id, event.name, event.deployment_id, [], [])
    notifying = topic_arn is not None
    if event.is_rollback:
        touched = _roll_back(table, event, notifying, followed, ecs)
    elif event.name in (IN_PROGRESS_EVENT, COMPLETED_EVENT, FAILED_EVENT):
        touched = _own_record(table, event, notifying, followed, ecs)
    else:
        followed.ignored = f"event {event.name} is not one this service follows"
        return followed
    settled = _settle_open(table, event, notifying, followed, ecs, touched) if ecs is not None else []
    for item in [touched, *settled]:
        _pause_ended(item, followed)
    if sns is not None and topic_arn is not None:
        for item in [touched, *settled]:
            if item is not None:
                _publish_owed(table, sns, topic_arn, item, followed)
    return followed


def _pause_ended(item: Mapping[str, Any] | None, followed: Followed) -> None:
    """A record whose deployment has ended while its pause still waits: the pause is to end (from the record as
    it is, so an event delivered again after a failure ends it too)."""
    record = item or {}
    pause, outcome = record.get("pause") or {}, record.get("outcome")
    waiting = pause.get("status") == service_deployments.AWAITING_ACTION and pause.get("approvalId")
    if outcome in FINAL_ENDINGS and waiting:
        reason = record.get("outcomeReason")
        ended = f"the deployment ended {outcome} while it waited" + (f": {reason}" if reason else "")
        followed.pauses_ended.append((str(pause.get("approvalId")), ended))


def _own_record(
    table: StateTable, event: DeploymentEvent, notifying: bool, followed: Followed, ecs: Any | None = None
) -> dict[str, Any] | None:
    found = _record_or_none(table, event)
    if found is None:
        followed.ignored = f"deployment {event.deployment_id} was not recorded by this service"
        return None
    at = event.updated_at or iso8601(_now())
    tracked = _tracked(ecs, found) if ecs is not None else None
    if tracked is not None:
        return _by_service_deployment(table, ecs, found, tracked, event, at, notifying, followed)
    if event.name == COMPLETED_EVENT:
        change = _Transition(records.COMPLETED, (records.IN_PROGRESS,), notify.COMPLETED)
    elif event.name == FAILED_EVENT:
        change = _Transition(records.FAILED, (records.IN_PROGRESS,), notify.FAILED)
    else:
        return _mark_started(table, found, at, notifying, followed)
    return _apply(table, found, change, at, event.reason, notifying, followed) or _reread(table, found)


@dataclass(frozen=True)
class _Transition:
    to: str
    allowed_from: tuple[str, ...]
    owes: str


def _apply(
    table: StateTable,
    item: Mapping[str, Any],
    change: _Transition,
    at: str | None,
    reason: str,
    notifying: bool,
    followed: Followed,
    rolled_back_by: str | None = None,
    tracked: ServiceDeployment | None = None,
    rollback_failing: bool = False,
) -> dict[str, Any] | None:
    """Move the record to `change.to` if it is in one of `allowed_from`; None when it was not.

    `tracked`: the deployment's service deployment, whose ARN, strategy and stage the record keeps.
    `rollback_failing`: a record ROLLED_BACK while ECS was still rolling it back may move too (to FAILED).
    """
    updates = "SET outcome = :to, outcomeAt = :at, outcomeReason = :reason"
    values: dict[str, Any] = {":to": change.to, ":at": at, ":reason": reason}
    if tracked is not None:
        tracking, tracked_values = _tracking(tracked)
        updates += ", " + tracking
        values.update(tracked_values)
    if rolled_back_by:
        updates += ", rolledBackBy = :by"
        values[":by"] = rolled_back_by
    if notifying and change.owes:
        updates += " ADD owed :owes"
        values[":owes"] = {change.owes}
    allowed = ", ".join(f":from{i}" for i in range(len(change.allowed_from)))
    values.update({f":from{i}": outcome for i, outcome in enumerate(change.allowed_from)})
    condition = f"outcome IN ({allowed})"
    if rollback_failing:
        condition += " OR (outcome = :rolled AND ecsStatus IN (:asked, :rolling))"
        values.update(
            {":rolled": records.ROLLED_BACK, ":asked": "ROLLBACK_REQUESTED", ":rolling": "ROLLBACK_IN_PROGRESS"}
        )
    updated = _conditional_update(table, item, updates, condition, values, {})
    if updated is not None:
        followed.applied.append(f"{item['key']}: {item['outcome']} -> {change.to}")
    return updated


def _mark_started(
    table: StateTable, item: Mapping[str, Any], at: str, notifying: bool, followed: Followed
) -> dict[str, Any] | None:
    updates = "SET startedAt = :at" + (" ADD owed :owes" if notifying else "")
    values: dict[str, Any] = {":at": at, ":running": records.IN_PROGRESS}
    if notifying:
        values[":owes"] = {notify.STARTED}
    updated = _conditional_update(
        table, item, updates, "outcome = :running AND attribute_not_exists(startedAt)", values, {}
    )
    if updated is not None:
        followed.applied.append(f"{item['key']}: started")
    return updated or _reread(table, item)


def _tracking(tracked: ServiceDeployment) -> tuple[str, dict[str, Any]]:
    """The SET clauses (and their values) that keep a service deployment's ARN, strategy and stage on a record."""
    values: dict[str, Any] = {":sd": tracked.arn, ":strategy": tracked.strategy, ":ecs": tracked.status}
    clauses = "serviceDeploymentArn = :sd, strategy = :strategy, ecsStatus = :ecs"
    if tracked.stage:
        clauses += ", lifecycleStage = :stage"
        values[":stage"] = tracked.stage
    return clauses, values


def _tracked(ecs: Any, item: Mapping[str, Any]) -> ServiceDeployment | None:
    """The service deployment of a record's deployment: by the ARN it keeps, else tied by time and revision."""
    task_definition = (item.get("taskDefinition") or {}).get("arn")
    return service_deployments.find(
        ecs,
        str(item.get("cluster")),
        str(item.get("service")),
        str(task_definition) if task_definition else None,
        as_datetime(item.get("at")),
        item.get("serviceDeploymentArn"),
    )


def _by_service_deployment(
    table: StateTable,
    ecs: Any,
    item: Mapping[str, Any],
    tracked: ServiceDeployment,
    event: DeploymentEvent | None,
    at: str,
    notifying: bool,
    followed: Followed,
    rolled_back_by: str | None = None,
) -> dict[str, Any] | None:
    """Settle a record as its service deployment says.

    One ECS still runs stays IN_PROGRESS, its stage kept, while it shifts traffic or bakes; at any other
    stage a COMPLETED or FAILED event is ECS's word ahead of its record, and applies. A rollback ECS has
    begun (ROLLED_BACK) may still end FAILED, when its rollback fails.
    """
    if event is not None and event.name == IN_PROGRESS_EVENT and not event.is_rollback:
        _mark_started(table, item, at, notifying, followed)  # told STARTED even when ECS has finished since
    outcome = tracked.outcome
    if outcome == records.STOPPED and _replaced(ecs, item, tracked):
        outcome = records.SUPERSEDED
    decided = _DECIDED.get(outcome)
    if decided is not None:
        owes, allowed = decided
        change = _Transition(outcome, allowed, owes)
        reason = tracked.reason or (event.reason if event else "")
        if outcome == records.SUPERSEDED:
            reason = "replaced by a newer deployment" + (f": {reason}" if reason else "")
        updated = _apply(
            table, item, change, at, reason, notifying, followed, rolled_back_by, tracked,
            rollback_failing=outcome == records.FAILED,
        )  # fmt: skip
        return updated or _keep_tracking(table, item, tracked, followed)
    ahead = event is not None and not event.is_rollback and event.name in (COMPLETED_EVENT, FAILED_EVENT)
    if ahead and event is not None and tracked.stage not in service_deployments.CONTINUING_STAGES:
        to, owes = (
            (records.COMPLETED, notify.COMPLETED) if event.name == COMPLETED_EVENT else (records.FAILED, notify.FAILED)
        )
        change = _Transition(to, (records.IN_PROGRESS,), owes)
        updated = _apply(table, item, change, at, event.reason, notifying, followed, tracked=tracked)
        return updated or _reread(table, item)
    return _keep_tracking(table, item, tracked, followed)


def _keep_tracking(
    table: StateTable, item: Mapping[str, Any], tracked: ServiceDeployment, followed: Followed
) -> dict[str, Any] | None:
    """Keep the service deployment's ARN, strategy, stage and status on the record, whatever its outcome."""
    current = _reread(table, item) or dict(item)
    if (current.get("ecsStatus"), current.get("lifecycleStage")) == (tracked.status, tracked.stage):
        return current
    tracking, values = _tracking(tracked)
    kept = _conditional_update(
        table, current, "SET " + tracking, "outcome = :now", {**values, ":now": current.get("outcome")}, {}
    )
    if kept is not None and tracked.stage and tracked.stage != item.get("lifecycleStage"):
        followed.applied.append(f"{item['key']}: at {tracked.stage}")
    return kept or current


def _replaced(ecs: Any, item: Mapping[str, Any], tracked: ServiceDeployment) -> bool:
    """True when a STOPPED service deployment was stopped by a newer deployment (ECS's own list says), not by a
    person (a stop asked for through this service is a person's)."""
    if item.get("stop"):
        return False
    return service_deployments.replaced(ecs, str(item.get("cluster")), str(item.get("service")), tracked)


def _settle_open(
    table: StateTable,
    event: DeploymentEvent,
    notifying: bool,
    followed: Followed,
    ecs: Any,
    touched: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Settle the service's newest records still open whose service deployment ECS has settled meanwhile."""
    key = event.service_key()
    if key is None or not service_deployments.available(ecs):
        return []
    page = table.records_page(service_partition(key), OPEN_RECORDS_LOOKED_AT).get("Items", [])
    skipped = (touched or {}).get("sk")
    open_items = [
        item
        for item in (_with_key(from_item(raw)) for raw in page)
        if item.get("serviceDeploymentArn")
        and (
            item.get("outcome") in (records.IN_PROGRESS, records.FAILED)
            or item.get("ecsStatus") in service_deployments.MOVING_STATUSES  # a rollback that may yet fail
        )
        and item.get("sk") != skipped
    ]
    if not open_items:
        return []
    described = service_deployments.describe(ecs, [str(item["serviceDeploymentArn"]) for item in open_items])
    settled = []
    for item in open_items:
        tracked = (described or {}).get(str(item["serviceDeploymentArn"]))
        if tracked is None or (tracked.outcome not in _DECIDED and tracked.status == item.get("ecsStatus")):
            continue
        at = iso8601(tracked.raw.get("finishedAt") or tracked.raw.get("stoppedAt")) or iso8601(_now()) or ""
        updated = _by_service_deployment(table, ecs, item, tracked, None, at, notifying, followed)
        if updated is not None:
            settled.append(updated)
    return settled


def _roll_back(
    table: StateTable, event: DeploymentEvent, notifying: bool, followed: Followed, ecs: Any | None = None
) -> dict[str, Any] | None:
    partition = _rolled_back_partition(table, event)
    if partition is None:
        followed.ignored = f"the service of {event.service_arn} has no recorded deployment"
        return None
    target = _find_rolled_back(table, partition, event)
    if target is None:
        followed.ignored = "no recorded deployment of the service was rolled back by this event"
        return None
    if target.get("rolledBackBy") == event.deployment_id:
        return _reread(table, target)  # the same event again: only what it still owes
    at = event.updated_at or iso8601(_now())
    tracked = _tracked(ecs, target) if ecs is not None else None
    if tracked is not None:
        return _by_service_deployment(
            table, ecs, target, tracked, event, at or "", notifying, followed, rolled_back_by=event.deployment_id
        )
    change = _Transition(records.ROLLED_BACK, (records.IN_PROGRESS, records.FAILED), notify.ROLLED_BACK)
    updated = _apply(table, target, change, at, event.reason, notifying, followed, rolled_back_by=event.deployment_id)
    return updated or _reread(table, target)


def _rolled_back_partition(table: StateTable, event: DeploymentEvent) -> str | None:
    key = event.service_key()
    if key is not None:
        return service_partition(key)
    # An old-format service ARN names no cluster: the deployment rolled back to may be recorded.
    target = event.rollback_target
    pointer = _pointer(table, target, accounts.where_of(event.service_arn)) if target else None
    return str(pointer["recordPk"]) if pointer else None


def _find_rolled_back(table: StateTable, partition: str, event: DeploymentEvent) -> dict[str, Any] | None:
    """The newest recorded deployment of the service from before the event, if the rollback undid it.

    Records without a deployment (no-ops, errors) are passed over; the rollback's
    own deployment and the one it goes back to are not it. The newest remaining
    one is the deployment the circuit breaker stopped, unless it had already
    completed or been rolled back (then this rollback undid one not recorded here).
    """
    event_time = as_datetime(event.updated_at)
    start: dict[str, Any] | None = None
    for _ in range(ROLLBACK_SEARCH_PAGES):
        page = table.records_page(partition, ROLLBACK_SEARCH_PAGE_SIZE, start)
        for raw in page.get("Items", []):
            item = _with_key(from_item(raw))
            deployment = item.get("deploymentId")
            if not deployment or deployment == event.deployment_id:
                continue
            recorded_at = as_datetime(item.get("at"))
            if event_time and recorded_at and recorded_at > event_time:
                continue  # asked for after the rollback began: not what it undid
            if deployment == event.rollback_target:
                return None  # the newest recorded one is the one rolled back to
            if item.get("rolledBackBy") == event.deployment_id:
                return item
            return item if item.get("outcome") in (records.IN_PROGRESS, records.FAILED) else None
        start = page.get("LastEvaluatedKey")
        if not start:
            return None
    return None


def _record_of_deployment(
    table: StateTable, deployment_id: str, where: Location | None = None
) -> dict[str, Any] | None:
    pointer = _pointer(table, deployment_id, where)
    if pointer is None:
        return None
    return _get(table, str(pointer["recordPk"]), str(pointer["recordSk"]))


def record_of_deployment(
    table: StateTable, deployment_id: str, where: Location | None = None
) -> DeploymentRecord | None:
    """The record of an ECS deployment of a service at home (or in `where`), or None when this service did
    not record it."""
    item = _record_of_deployment(table, deployment_id, where)
    return DeploymentRecord.from_item(item) if item else None


def _pointer(table: StateTable, deployment_id: str, where: Location | None) -> dict[str, Any] | None:
    return _get(table, deployment_partition(deployment_id, where), POINTER_SORT_KEY)


def _get(table: StateTable, pk: str, sk: str) -> dict[str, Any] | None:
    response = table.call("GetItem", TableName=table.name, Key=to_item({"pk": pk, "sk": sk}), ConsistentRead=True)
    item = response.get("Item")
    return _with_key(from_item(item)) if item else None


def _reread(table: StateTable, item: Mapping[str, Any]) -> dict[str, Any] | None:
    return _get(table, str(item["pk"]), str(item["sk"]))


def _with_key(item: dict[str, Any]) -> dict[str, Any]:
    if "cluster" in item and "service" in item:
        item["key"] = f"{item['cluster']}/{item['service']}"
    return item


def _conditional_update(
    table: StateTable,
    item: Mapping[str, Any],
    updates: str,
    condition: str,
    values: Mapping[str, Any],
    names: Mapping[str, str],
) -> dict[str, Any] | None:
    """UpdateItem under `condition`; the item after it, or None when the condition did not hold."""
    arguments: dict[str, Any] = {
        "TableName": table.name,
        "Key": to_item({"pk": item["pk"], "sk": item["sk"]}),
        "UpdateExpression": updates,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": to_item(values),
        "ReturnValues": "ALL_NEW",
    }
    if names:
        arguments["ExpressionAttributeNames"] = dict(names)
    try:
        response = table.call("UpdateItem", {"ConditionalCheckFailedException": lambda _: _NotNow()}, **arguments)
    except _NotNow:
        return None
    return _with_key(from_item(response.get("Attributes", {})))


def send_owed(table: StateTable, sns: Any, topic_arn: str, pk: str, sk: str) -> list[str]:
    """Publish what the record at (pk, sk) still owes (each at most once); the events published.

    Raises UpdateError when publishing fails: what is still owed is sent by the next try.
    """
    item = _get(table, pk, sk)
    if item is None:
        return []
    followed = Followed("", "", str(item.get("deploymentId") or ""), [], [])
    _publish_owed(table, sns, topic_arn, item, followed)
    return followed.published


def _publish_owed(table: StateTable, sns: Any, topic_arn: str, item: Mapping[str, Any], followed: Followed) -> None:
    owed, sent = set(item.get("owed") or []), set(item.get("sent") or [])
    record = DeploymentRecord.from_item(item).as_dict()
    for event in notify.IN_ORDER:
        if event not in owed or event in sent:
            continue
        lease = _claim(table, item, event)
        if lease is None:
            continue  # another invocation is sending it, or has sent it
        reason = None if event == notify.STARTED else item.get("outcomeReason")
        try:
            notify.publish(sns, topic_arn, notify.notification(event, record, reason))
        except UpdateError:
            _unclaim(table, item, event, lease)
            raise
        _mark_sent(table, item, event)
        followed.published.append(event)


def _claim(table: StateTable, item: Mapping[str, Any], event: str) -> int | None:
    """Take the right to send `event` for a while; the lease taken, or None when another holds it or sent it."""
    now = int(time.time())
    lease = now + CLAIM_SECONDS
    claimed = _conditional_update(
        table,
        item,
        "SET sending.#event = :lease",
        "contains(owed, :event) AND NOT contains(sent, :event) AND "
        "(attribute_not_exists(sending.#event) OR sending.#event < :now)",
        {":lease": lease, ":event": event, ":now": now},
        {"#event": event},
    )
    return lease if claimed is not None else None


def _unclaim(table: StateTable, item: Mapping[str, Any], event: str, lease: int) -> None:
    """Give the claim back (only if it is still ours), so a retry need not wait for it to lapse."""
    try:
        _conditional_update(
            table, item, "REMOVE sending.#event", "sending.#event = :lease", {":lease": lease}, {"#event": event}
        )
    except UpdateError as failure:
        logger.warning("claim on %s of %s not released (%s); it lapses by itself", event, item["sk"], failure)


def _mark_sent(table: StateTable, item: Mapping[str, Any], event: str) -> None:
    table.call(
        "UpdateItem",
        TableName=table.name,
        Key=to_item({"pk": item["pk"], "sk": item["sk"]}),
        UpdateExpression="ADD sent :event REMOVE sending.#event",
        ExpressionAttributeNames={"#event": event},
        ExpressionAttributeValues=to_item({":event": {event}}),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _record_or_none(table: StateTable, event: DeploymentEvent) -> dict[str, Any] | None:
    """The record of the event's deployment; None when this service did not make it.

    ECS may tell of a deployment before the request that made it has written its
    record: the record is written by the transaction that lets the service's lock
    go. So while the lock is held the event fails (RecordNotYetWrittenError, and
    Lambda delivers it again); once it is free, the pointer is read once more,
    since that transaction may have committed in between. An event that names no
    cluster (an old-format ARN) has no lock to look at: the clock decides.
    """
    where = accounts.where_of(event.service_arn)
    found = _record_of_deployment(table, event.deployment_id, where)
    if found is not None:
        return found
    key = event.service_key()
    may_come = _lock_held(table, key) if key is not None else _recent(event)
    if may_come:
        raise RecordNotYetWrittenError(
            f"deployment {event.deployment_id} has no record yet; it may still be written, so try again"
        )
    return _record_of_deployment(table, event.deployment_id, where) if key is not None else None


def _lock_held(table: StateTable, key: str) -> bool:
    lock = _get(table, service_partition(key), LOCK_SORT_KEY)
    return lock is not None and int(lock.get(TTL_ATTRIBUTE) or 0) > _now().timestamp()


def _recent(event: DeploymentEvent) -> bool:
    moment = as_datetime(event.updated_at)
    return moment is not None and (_now() - moment).total_seconds() < RECORD_GRACE_SECONDS


class RecordNotYetWrittenError(UpdateError):
    """An event for a deployment whose record may not be written yet; Lambda should deliver it again."""


class _NotNow(UpdateError):
    def __init__(self) -> None:
        super().__init__("the condition did not hold")
