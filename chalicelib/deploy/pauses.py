"""ECS pause hooks as approvals: a deployment waiting at a PAUSE lifecycle hook waits for people's votes.

A service whose deployment configuration has a lifecycle hook of target type
PAUSE (say at POST_TEST_TRAFFIC_SHIFT) stops its deployments there; ECS sends
"ECS Hook State Change" (`HOOK_AWAITING_ACTION`) and waits until
ContinueServiceDeployment says CONTINUE or ROLLBACK, or the hook's timeout
takes its action. The `deployment_events` function hands the event to
`open_pauses`:

1. The waiting hooks are read from ECS's own record: DescribeServiceDeployments
   of the service deployment the event names, or of the service's IN_PROGRESS
   ones (ListServiceDeployments) when it names none. The event's own fields
   are trusted for nothing but where to look.
2. The service is described with its tags (DescribeServices): the approval needs
   `image-updater:approvals` = N votes (1 without the tag; a pause always
   waits for someone).
3. One transaction opens the approval (kind `pause`, its deadline the hook's
   expiry, its id made from the service deployment and the hook, so a
   duplicate event opens nothing) and keeps `pause` on the deployment's record
   (when this service made the deployment: the record tied to the service
   deployment, or the open one whose revision ECS is deploying).
4. APPROVAL_REQUESTED is sent at once.

Votes are cast as for any approval (chalicelib.deploy.approvals): each person
once, the requester of the deployment never approving it, every transition
conditional. The N-th approval moves it to APPROVING, one reject to REJECTING;
`decide` then calls ContinueServiceDeployment (CONTINUE or ROLLBACK) and ends it
CONTINUED or REJECTED. Where ECS no longer waits at the hook (someone used the
console, the deployment ended, the hook timed out) it ends STALE in ECS's words;
where telling ECS failed otherwise (throttled, AWS failing) it is pending again
without the deciding vote. A deadline passing ends it EXPIRED: ECS took the
hook's timeout action. A deployment that ends while its pause waits (stopped,
superseded, rolled back by an alarm) ends the pause STALE (`end_waiting`, from
the event that settles the record).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chalicelib.aws import accounts, ecs
from chalicelib.core.errors import (
    ApprovalNotFoundError,
    ApprovalTagError,
    AwsCallError,
    HookNotWaitingError,
    UpdateError,
)
from chalicelib.core.locations import cluster_arn_of, name_of, service_key
from chalicelib.core.results import as_datetime, iso8601
from chalicelib.follow import notify, service_deployments
from chalicelib.follow.service_deployments import ServiceDeployment
from chalicelib.state import approvals, records
from chalicelib.state.approvals import Approval, ServiceChange, Transition
from chalicelib.state.table import StateTable, from_item, service_partition, to_item

logger = logging.getLogger(__name__)

HOOK_EVENTS = "ECS Hook State Change"
AWAITING_EVENT = "HOOK_AWAITING_ACTION"
# Who asked for a paused deployment this service did not make (the console, CloudFormation): ECS itself.
ECS_PRINCIPAL = "ecs.amazonaws.com"
# The service's newest records looked at for the paused deployment's own.
RECORDS_LOOKED_AT = 5
IN_PROGRESS = "IN_PROGRESS"
# The hook's status once ContinueServiceDeployment has taken the decision.
SUCCEEDED = "SUCCEEDED"
# Ending an approval is read again and retried this many times while other writers come first.
FINISH_ATTEMPTS = 5
# A hook whose expiry ECS does not say is decided within this.
DEFAULT_DEADLINE = timedelta(hours=approvals.DEFAULT_DEADLINE_HOURS)


@dataclass(frozen=True)
class HookEvent:
    """Where an "ECS Hook State Change" event says to look: the service, and its service deployment and hook
    when the event names them."""

    event_id: str
    name: str
    service_arn: str
    service_deployment_arn: str | None = None
    hook_id: str | None = None

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> HookEvent:
        """Read an EventBridge event; ValueError names what is missing.

        ECS's reference gives the event's name (`eventName`) in its detail; the service and its service
        deployment are looked for among the resources and the detail's values, by their ARNs' form.
        """
        if not isinstance(event, Mapping) or not isinstance(event.get("detail"), Mapping):
            raise ValueError("the event has no detail")
        detail = event["detail"]
        name = detail.get("eventName")
        if not isinstance(name, str) or not name:
            raise ValueError("the event has no eventName")
        resources = event.get("resources") if isinstance(event.get("resources"), list) else []
        named = [value for value in [*resources, *detail.values()] if isinstance(value, str)]
        deployment = next((value for value in named if ":service-deployment/" in value), None)
        service = next((value for value in named if ":service/" in value), None) or _service_of(deployment)
        if service is None:
            raise ValueError("the event names no service")
        hook = detail.get("hookId")
        return cls(
            event_id=str(event.get("id", "")),
            name=name,
            service_arn=service,
            service_deployment_arn=deployment,
            hook_id=hook if isinstance(hook, str) and hook else None,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the log line."""
        return {
            "event": self.event_id,
            "eventName": self.name,
            "service": self.service_arn,
            "serviceDeploymentArn": self.service_deployment_arn,
            "hookId": self.hook_id,
        }


@dataclass
class Opened:
    """What one hook event did, for the function's log line."""

    event: HookEvent
    opened: list[Approval] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    ignored: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the log line."""
        return {
            **self.event.as_dict(),
            "opened": [a.id for a in self.opened],
            "alreadyOpen": self.already,
            "ignored": self.ignored,
        }


def approval_id(service_deployment_arn: str, hook_id: str) -> str:
    """The id of the approval of one hook of one service deployment (the same for every delivery of its event)."""
    return hashlib.sha256(f"{service_deployment_arn}#{hook_id}".encode()).hexdigest()[:16]


def open_pauses(table: StateTable, client: Any, event: HookEvent) -> Opened:
    """Open an approval of kind `pause` for each PAUSE hook of the service waiting for a decision.

    Raises (a retryable UpdateError) when ECS cannot say what waits, for the event to be delivered again.
    """
    done = Opened(event)
    if event.name != AWAITING_EVENT:
        done.ignored = f"hook event {event.name} asks for no decision"
        return done
    waiting = _waiting(client, event)
    hooks = [
        (deployment, hook)
        for deployment in waiting
        if deployment.status == IN_PROGRESS  # a late event of a deployment that has ended opens nothing
        for hook in deployment.pauses
        if event.hook_id is None or hook["hookId"] == event.hook_id
    ]
    if not hooks:
        done.ignored = f"no PAUSE hook of {name_of(event.service_arn)} waits for a decision (decided already?)"
        return done
    cluster_arn = cluster_arn_of(event.service_arn)
    described = ecs.describe_services(client, cluster_arn, [event.service_arn])
    if not described:
        done.ignored = f"service {event.service_arn} was not found"
        return done
    required = _required(described[0])
    key = service_key(cluster_arn, event.service_arn, accounts.where_of(event.service_arn))
    for deployment, hook in hooks:
        approval = _approval(table, client, described[0], key, deployment, hook, required)
        if _create(table, approval):
            done.opened.append(approval)
        else:
            done.already.append(approval.id)
    return done


def decide(table: StateTable, approval: Approval, client: Any, voter: str, comment: str | None) -> dict[str, Any]:
    """Carry out the deciding vote of a pause (APPROVING: CONTINUE, REJECTING: ROLLBACK) and end the approval;
    returns {"approval", "serviceDeployment"}.

    Raises HookNotWaitingError (409) when ECS no longer waits (the approval ends STALE), and what telling ECS
    raised otherwise, the approval pending again without the deciding vote. ContinueServiceDeployment is never
    sent twice (chalicelib.aws.budget); when its answer is lost, ECS's record says whether it was taken.
    """
    hook = approval.hook or {}
    arn, hook_id = str(hook.get("serviceDeploymentArn")), str(hook.get("hookId"))
    approving = approval.status == approvals.APPROVING
    action = service_deployments.CONTINUE if approving else service_deployments.ROLLBACK
    told = {"arn": arn, "hookId": hook_id, "action": action}
    try:
        service_deployments.continue_at(client, arn, hook_id, action)
    except HookNotWaitingError as gone:
        _finish(table, approval, Transition(approvals.STALE, gone.message, records.STALE, notify.APPROVAL_STALE))
        raise
    except UpdateError as failure:
        status = hook_status(client, arn, hook_id) if getattr(failure, "outcome_unknown", False) else None
        if status == SUCCEEDED:  # the answer was lost, the decision taken
            ended = _finish(table, approval, _decided(approval, voter, comment, approving, " (ECS's answer was lost)"))
            return {"approval": ended.as_dict(), "serviceDeployment": told}
        if status is not None and status != service_deployments.AWAITING_ACTION:
            reason = f"ECS no longer waits at hook {hook_id} (it is {status}); {failure.message}"
            _finish(table, approval, Transition(approvals.STALE, reason, records.STALE, notify.APPROVAL_STALE))
            raise HookNotWaitingError(reason) from failure
        try:
            approvals.reopen(table, approval, voter, f"decided by {voter}, but ECS was not told: {failure.message}",
                             approvals.now_utc())  # fmt: skip
        except approvals.Conflict:
            logger.warning("approval %s moved on before it could be reopened", approval.id)
        else:
            failure.message += f"; approval {approval.id} is pending again: decide again"
        raise
    ended = _finish(table, approval, _decided(approval, voter, comment, approving))
    return {"approval": ended.as_dict(), "serviceDeployment": told}


def hook_status(client: Any, arn: str, hook_id: str) -> str | None:
    """The hook's status in ECS's record (AWAITING_ACTION, SUCCEEDED, TIMED_OUT, …); None when ECS cannot say."""
    found = (service_deployments.describe(client, [arn]) or {}).get(arn)
    if found is None:
        return None
    for hook in found.raw.get("lifecycleHookDetails") or []:
        if isinstance(hook, Mapping) and hook.get("hookId") == hook_id:
            return str(hook.get("status") or "") or None
    return None


def reopen_undecided(table: StateTable, approval: Approval) -> Approval | None:
    """A pause whose decision never finished (its function ended while telling ECS): pending again, without the
    deciding vote. A vote cast again tells ECS, which refuses it (STALE) if the first was taken after all."""
    decider = max(approval.votes.items(), key=lambda item: str(item[1].get("at")), default=(None, {}))[0]
    if decider is None:
        return None
    reason = "whether ECS was told of the decision is not known (it did not finish): decide again"
    try:
        return approvals.reopen(table, approval, decider, reason, approvals.now_utc())
    except approvals.Conflict:
        return None


def _decided(approval: Approval, voter: str, comment: str | None, approving: bool, note: str = "") -> Transition:
    if approving:
        reason = f"continued by {', '.join(approval.approvals)}{note}"
        return Transition(approvals.CONTINUED, reason, records.APPROVED, notify.APPROVAL_APPROVED)
    reason = f"rejected by {voter}" + (f": {comment}" if comment else "") + f"; ECS rolls the deployment back{note}"
    return Transition(approvals.REJECTED, reason, records.REJECTED, notify.APPROVAL_REJECTED)


def end_waiting(table: StateTable, approval_id: str, reason: str) -> Approval | None:
    """End a pause still PENDING whose deployment ended meanwhile: STALE (`reason`), or EXPIRED when its hook's
    expiry has passed (ECS took the timeout action); None when it had moved on."""
    try:
        approval = approvals.get(table, approval_id)
    except ApprovalNotFoundError:
        return None
    if approval.status != approvals.PENDING:
        return None
    if approval.expired_at(approvals.now_utc()):  # ECS took the hook's timeout action before anyone decided
        expired = Transition(approvals.EXPIRED, expiry_reason(approval), records.EXPIRED, notify.APPROVAL_EXPIRED)
        return _finish(table, approval, expired)
    return _finish(table, approval, Transition(approvals.STALE, reason, records.STALE, notify.APPROVAL_STALE))


def _waiting(client: Any, event: HookEvent) -> list[ServiceDeployment]:
    if event.service_deployment_arn:
        found = service_deployments.describe(client, [event.service_deployment_arn])
        waiting = None if found is None else list(found.values())
    else:
        waiting = service_deployments.in_progress(client, cluster_arn_of(event.service_arn), event.service_arn)
    if waiting is None:
        raise AwsCallError(
            "DescribeServiceDeployments",
            f"ECS could not say which hook of {name_of(event.service_arn)} waits (see the log); the event is "
            "delivered again",
        )
    return waiting


def _required(service: Mapping[str, Any]) -> int:
    """The votes a pause of `service` needs: its approvals tag, at least one; a tag out of range asks the most."""
    try:
        return max(1, approvals.requirement_of(service).required)
    except ApprovalTagError as unreadable:
        logger.warning("%s; its pauses need %d approvals", unreadable.message, approvals.MAX_APPROVALS)
        return approvals.MAX_APPROVALS


def _approval(
    table: StateTable,
    client: Any,
    service: Mapping[str, Any],
    key: str,
    deployment: ServiceDeployment,
    hook: Mapping[str, Any],
    required: int,
) -> Approval:
    now = approvals.now_utc()
    record = _record_of(table, client, key, deployment)
    task_definition = (record or {}).get("taskDefinition") or {}
    containers = [
        {"name": c.get("name"), "previousImage": c.get("previousImage"), "image": c.get("image")}
        for c in (record or {}).get("containers") or []
        if isinstance(c, Mapping)
    ]
    change = ServiceChange(
        service=str(service["serviceArn"]),
        name=str(service["serviceName"]),
        key=key,
        service_arn=str(service["serviceArn"]),
        task_definition=str(task_definition.get("arn") or service.get("taskDefinition") or ""),
        containers=containers,
        record_sk=str(record["sk"]) if record else None,
    )
    expires = as_datetime(hook.get("expiresAt"))
    return Approval(
        id=approval_id(deployment.arn, str(hook["hookId"])),
        kind=approvals.PAUSE,
        status=approvals.PENDING,
        cluster=cluster_arn_of(str(service["serviceArn"])),
        services=[change],
        required=required,
        requested_by=str((record or {}).get("principal") or ECS_PRINCIPAL),
        requested_at=now,
        deadline=expires if expires is not None else now + DEFAULT_DEADLINE,
        action="pause",
        owed=[notify.APPROVAL_REQUESTED],
        hook=dict(hook),
    )


def _record_of(table: StateTable, client: Any, key: str, deployment: ServiceDeployment) -> dict[str, Any] | None:
    """The paused deployment's record: the one tied to its service deployment, else the open untied one the
    service deployment is found to be (service_deployments.find); None for a deployment this service did not
    make."""
    page = table.records_page(service_partition(key), RECORDS_LOOKED_AT).get("Items", [])
    items = [from_item(raw) for raw in page]
    tied = next((item for item in items if item.get("serviceDeploymentArn") == deployment.arn), None)
    if tied is not None:
        return tied
    for item in items:
        if item.get("serviceDeploymentArn") or item.get("outcome") != records.IN_PROGRESS:
            continue
        found = service_deployments.find(
            client,
            str(item.get("cluster")),
            str(item.get("service")),
            (item.get("taskDefinition") or {}).get("arn"),
            as_datetime(item.get("at")),
        )
        if found is not None and found.arn == deployment.arn:
            return item
    return None


def _create(table: StateTable, approval: Approval) -> bool:
    """Write the approval and its record's `pause` in one transaction; False when the approval is there already
    (the event delivered again: `attribute_not_exists` makes the write idempotent, its contents differing by
    the moment it was made)."""
    put = {"Put": {"TableName": table.name, "Item": approval.item(), "ConditionExpression": "attribute_not_exists(pk)"}}
    entries = [put, *_pause_entries(table, approval)]
    try:
        table.call(
            "TransactWriteItems",
            {"TransactionCanceledException": lambda _: approvals.Conflict()},
            TransactItems=entries,
        )
    except approvals.Conflict:
        try:
            approvals.get(table, approval.id)
        except UpdateError:
            raise AwsCallError(
                "TransactWriteItems", f"approval {approval.id} could not be opened (a write conflicted); retried"
            ) from None
        return False
    return True


def _pause_entries(table: StateTable, approval: Approval) -> list[dict[str, Any]]:
    """The paused deployment's record keeps the pause: the stage, the hook, its expiry and the approval."""
    hook = approval.hook or {}
    pause = {
        "status": service_deployments.AWAITING_ACTION,
        "approvalId": approval.id,
        "hookId": hook.get("hookId"),
        "lifecycleStage": hook.get("lifecycleStage"),
        "expiresAt": hook.get("expiresAt"),
        "timeoutAction": hook.get("timeoutAction"),
        "since": iso8601(approval.requested_at),
        "required": approval.required,
    }
    entries = []
    for change in approval.services:
        if not change.record_sk:
            continue
        values: dict[str, Any] = {":pause": pause, ":sd": hook.get("serviceDeploymentArn")}
        sets = "pause = :pause, serviceDeploymentArn = :sd"
        if hook.get("lifecycleStage"):
            sets += ", lifecycleStage = :stage"
            values[":stage"] = hook["lifecycleStage"]
        entries.append(
            {
                "Update": {
                    "TableName": table.name,
                    "Key": to_item({"pk": service_partition(change.key), "sk": change.record_sk}),
                    "UpdateExpression": "SET " + sets,
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": to_item(values),
                }
            }
        )
    return entries


def _finish(table: StateTable, approval: Approval, transition: Transition) -> Approval:
    """End the approval as decided: read again and retried while another writer came first and it is still open
    (PENDING for a deployment that ended, APPROVING or REJECTING for a decision); as it is once it has moved on."""
    current = approval
    for _ in range(FINISH_ATTEMPTS):
        try:
            return approvals.apply(table, current, transition, approvals.now_utc())
        except approvals.Conflict:
            current = approvals.get(table, approval.id)
            if current.status != approval.status:
                logger.warning("approval %s moved on to %s before it was marked %s", approval.id, current.status,
                               transition.to)  # fmt: skip
                return current
    raise AwsCallError("TransactWriteItems", f"approval {approval.id} kept changing; it was not marked {transition.to}")


def _service_of(deployment_arn: str | None) -> str | None:
    """The service of a service deployment's ARN (`…:service-deployment/<cluster>/<service>/<id>`)."""
    if not deployment_arn:
        return None
    prefix, _, resource = deployment_arn.partition(":service-deployment/")
    parts = resource.split("/")
    return f"{prefix}:service/{parts[0]}/{parts[1]}" if len(parts) >= 3 else None


def expiry_reason(approval: Approval) -> str:
    """Why a pause expired: ECS took the hook's timeout action."""
    action = (approval.hook or {}).get("timeoutAction") or "its timeout action"
    return f"not decided before the hook timed out at {iso8601(approval.deadline)}: ECS took {action}"
