"""Approvals: a change that waits for people's votes, kept in the state table, every transition conditional.

| item            | pk          | sk                 |
|-----------------|-------------|--------------------|
| an approval     | `APPROVALS` | `APPROVAL#<id>`    |

An approval holds what a request would have deployed (per service: the
revision it ran when asked, the images, the record written for it), who asked,
how many votes it needs (`required`), its deadline, and the votes cast
(`votes`, by principal). Its `kind` says what deciding does: `deploy` (the
N-th approval sends the change through the one update path) or `pause` (an ECS
deployment waits at a PAUSE lifecycle hook, chalicelib.deploy.pauses: the N-th
approval continues it, a reject rolls it back; its `hook` names the service
deployment and the hook, its deadline is the hook's expiry).

Statuses: `PENDING` until it ends as `REJECTED` (one reject), `EXPIRED` (the
deadline passed), `SUPERSEDED` (a newer change to the same service and
containers asked for approval), or `APPROVING` (the N-th approval, the
deployment under way), which ends as `DEPLOYED`, `STALE` (the service no longer
ran what it was approved against: nothing deployed) or `FAILED`. A `pause`
moves to `APPROVING` or `REJECTING` while ECS is told, then ends `CONTINUED` or
`REJECTED`, or `STALE` when ECS no longer waits at the hook.

Every transition is one TransactWriteItems: the approval's update, conditional
on the status (and the vote count) it was read with, together with its
records' outcome (chalicelib.state.records: PENDING_APPROVAL then APPROVED,
REJECTED, EXPIRED, SUPERSEDED, STALE; a pause's record is the paused
deployment's own, marked right after: mark_pause), so two voters at the same
instant cannot both count as the N-th. A transition that owes a notification adds its event to
`owed`; the `approvals_sweep` function sends what is owed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.core.errors import ApprovalNotFoundError, ApprovalTagError, UpdateError
from chalicelib.core.results import iso8601
from chalicelib.state import pushes
from chalicelib.state.table import TTL_ATTRIBUTE, StateTable, from_item, service_partition, to_item

logger = logging.getLogger(__name__)

DEPLOY = "deploy"  # approving deploys the change
PAUSE = "pause"  # an ECS deployment waiting at a PAUSE lifecycle hook: approving continues it, rejecting rolls back
PENDING = "PENDING"
APPROVING = "APPROVING"
REJECTING = "REJECTING"  # a pause's reject, while ECS is told to roll back
DEPLOYED = "DEPLOYED"
CONTINUED = "CONTINUED"  # a pause approved: ECS was told to continue
REJECTED = "REJECTED"
EXPIRED = "EXPIRED"
SUPERSEDED = "SUPERSEDED"
STALE = "STALE"
FAILED = "FAILED"
FINAL = frozenset({DEPLOYED, CONTINUED, REJECTED, EXPIRED, SUPERSEDED, STALE, FAILED})
# Statuses an approval may still move from by a vote or a deployment under way.
OPEN = (PENDING, APPROVING, REJECTING)
# Statuses while a decision is being carried out (the deployment, or ECS told to continue or roll back).
ACTING = (APPROVING, REJECTING)
APPROVE = "approve"
REJECT = "reject"

APPROVALS_TAG = "image-updater:approvals"
DEADLINE_TAG = "image-updater:approval-deadline"
DEFAULT_DEADLINE_HOURS = 24
MAX_DEADLINE_HOURS = 24 * 14
MAX_APPROVALS = 5
# An approval is kept this long after its deadline (its history stays in the records).
KEEP_DAYS = 30
PARTITION = "APPROVALS"
PREFIX = "APPROVAL#"
# An APPROVING approval whose deployment never said how it ended (its function died) is FAILED after this.
APPROVING_SECONDS = 300
MAX_COMMENT = 1000


@dataclass(frozen=True)
class Requirement:
    """What a service's tags ask of a change: `required` votes within `deadline_hours` (0 votes: none)."""

    required: int
    deadline_hours: int = DEFAULT_DEADLINE_HOURS


NONE_REQUIRED = Requirement(0)


def requirement_of(service: Mapping[str, Any]) -> Requirement:
    """The approvals a described service (with its tags) requires; ApprovalTagError for a tag out of range.

    A tag that cannot be read refuses the change rather than letting it through unreviewed.
    """
    tags = {t.get("key"): t.get("value") for t in service.get("tags") or [] if isinstance(t, Mapping)}
    raw = tags.get(APPROVALS_TAG)
    if raw is None:
        return NONE_REQUIRED
    name = str(service.get("serviceName", "?"))
    required = _whole(raw)
    if required is None or not 0 <= required <= MAX_APPROVALS:
        raise ApprovalTagError(
            f"service '{name}': its tag {APPROVALS_TAG}={raw!r} must be a whole number from 1 to {MAX_APPROVALS} "
            "(or 0: none); nothing was changed"
        )
    hours_raw = tags.get(DEADLINE_TAG)
    hours = DEFAULT_DEADLINE_HOURS if hours_raw is None else _whole(hours_raw)
    if hours is None or not 1 <= hours <= MAX_DEADLINE_HOURS:
        raise ApprovalTagError(
            f"service '{name}': its tag {DEADLINE_TAG}={hours_raw!r} must be a whole number of hours from 1 to "
            f"{MAX_DEADLINE_HOURS}; nothing was changed"
        )
    return Requirement(required, hours)


@dataclass(frozen=True)
class Gate:
    """Whether the update path asks for approval: `bypass(key)` is True for a service whose change the caller's
    rule lets through (`bypassApproval`); `active` False for the deployment of an approved change."""

    bypass: Callable[[str], bool] = lambda _key: False
    active: bool = True


ASK = Gate()
APPROVED_ALREADY = Gate(active=False)


@dataclass(frozen=True)
class ServiceChange:
    """One service of an approval: what it ran when asked, and what would change."""

    service: str  # as the request named it (a name or an ARN)
    name: str
    key: str  # its lock and records' key (chalicelib.core.locations)
    service_arn: str
    task_definition: str  # the revision it ran when asked: approving deploys only onto that one
    containers: list[dict[str, Any]]  # [{name, previousImage, image, digest}]
    record_sk: str | None = None  # its PENDING_APPROVAL record, in the service's partition

    def images(self) -> dict[str, str]:
        """Container name to the image approving deploys."""
        return {c["name"]: c["image"] for c in self.containers}

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "service": self.name,
            "serviceArn": self.service_arn,
            "taskDefinition": self.task_definition,
            "containers": [dict(c) for c in self.containers],
        }

    def stored(self) -> dict[str, Any]:
        """As kept in the item."""
        return {**self.as_dict(), "identifier": self.service, "key": self.key, "recordSk": self.record_sk}

    @classmethod
    def of_stored(cls, value: Mapping[str, Any]) -> ServiceChange:
        """Read back from the item."""
        return cls(
            service=value["identifier"],
            name=value["service"],
            key=value["key"],
            service_arn=value.get("serviceArn") or "",
            task_definition=value["taskDefinition"],
            containers=list(value.get("containers") or []),
            record_sk=value.get("recordSk"),
        )


@dataclass(frozen=True)
class Approval:
    """One approval: what it would deploy, who asked, the votes, and how it ended."""

    id: str
    kind: str
    status: str
    cluster: str  # as the request named it
    services: list[ServiceChange]
    required: int
    requested_by: str
    requested_at: datetime
    deadline: datetime
    # Who asked and through what (the records and audit tags of the deployment name the requester).
    action: str
    provenance: dict[str, Any] = field(default_factory=dict)
    force_new_deployment: bool = False
    revision_tags: dict[str, str] = field(default_factory=dict)
    votes: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended_at: datetime | None = None
    reason: str | None = None
    deployments: list[dict[str, Any]] = field(default_factory=list)
    owed: list[str] = field(default_factory=list)
    # A pause's hook: {serviceDeploymentArn, hookId, lifecycleStage, expiresAt, timeoutAction}.
    hook: dict[str, Any] | None = None

    @property
    def approvals(self) -> list[str]:
        """The principals who approved, in the order they voted."""
        ordered = sorted(self.votes.items(), key=lambda item: str(item[1].get("at")))
        return [who for who, vote in ordered if vote.get("decision") == APPROVE]

    @property
    def voters(self) -> list[str]:
        """Every principal who voted."""
        return sorted(self.votes)

    def expired_at(self, now: datetime) -> bool:
        """True when it is still PENDING and its deadline has passed."""
        return self.status == PENDING and now >= self.deadline

    def as_dict(self) -> dict[str, Any]:
        """JSON shape (GET /approvals/{id})."""
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "cluster": self.cluster.rsplit("/", 1)[-1],
            "clusterIdentifier": self.cluster,
            "services": [s.as_dict() for s in self.services],
            "required": self.required,
            "approvals": len(self.approvals),
            "approvedBy": self.approvals,
            "votes": [{"principal": who, **vote} for who, vote in sorted(self.votes.items())],
            "requestedBy": self.requested_by,
            "requestedAt": iso8601(self.requested_at),
            "deadline": iso8601(self.deadline),
            "action": self.action,
            "endedAt": iso8601(self.ended_at),
            "reason": self.reason,
            "deployments": list(self.deployments),
            "hook": dict(self.hook) if self.hook else None,
        }

    def item(self) -> dict[str, Any]:
        """The DynamoDB item."""
        return to_item(
            {
                "pk": PARTITION,
                "sk": f"{PREFIX}{self.id}",
                "kind": "approval",
                "approvalId": self.id,
                "approvalKind": self.kind,
                "status": self.status,
                "cluster": self.cluster,
                "services": [s.stored() for s in self.services],
                "serviceKeys": [s.key for s in self.services],
                "required": self.required,
                "approvalCount": len(self.approvals),
                "requestedBy": self.requested_by,
                "requestedAt": iso8601(self.requested_at),
                "deadline": iso8601(self.deadline),
                "deadlineEpoch": int(self.deadline.timestamp()),
                "action": self.action,
                "provenance": self.provenance or None,
                "forceNewDeployment": self.force_new_deployment,
                "revisionTags": self.revision_tags or None,
                "votes": self.votes,
                "owed": set(self.owed) or None,
                "hook": self.hook or None,
                TTL_ATTRIBUTE: int(self.deadline.timestamp()) + KEEP_DAYS * 86400,
            }
        )

    @classmethod
    def of_item(cls, item: Mapping[str, Any]) -> Approval:
        """Read back (plain values, see table.from_item)."""
        return cls(
            id=item["approvalId"],
            kind=item.get("approvalKind", DEPLOY),
            status=item["status"],
            cluster=item["cluster"],
            services=[ServiceChange.of_stored(s) for s in item.get("services") or []],
            required=int(item["required"]),
            requested_by=item["requestedBy"],
            requested_at=moment_of(item["requestedAt"]),
            deadline=moment_of(item["deadline"]),
            action=item.get("action", "update"),
            provenance=dict(item.get("provenance") or {}),
            force_new_deployment=bool(item.get("forceNewDeployment")),
            revision_tags=dict(item.get("revisionTags") or {}),
            votes=dict(item.get("votes") or {}),
            ended_at=moment_of(item["endedAt"]) if item.get("endedAt") else None,
            reason=item.get("reason"),
            deployments=list(item.get("deployments") or []),
            owed=list(item.get("owed") or []),
            hook=dict(item["hook"]) if item.get("hook") else None,
        )


def new_id() -> str:
    """A new approval's id."""
    return uuid.uuid4().hex[:16]


def key_of(approval_id: str) -> dict[str, Any]:
    """The approval's key."""
    return to_item({"pk": PARTITION, "sk": f"{PREFIX}{approval_id}"})


def creation_entries(table: StateTable, approval: Approval) -> list[dict[str, Any]]:
    """What the lock's release writes with the PENDING_APPROVAL records: the approval (a new id: never there)."""
    return [{"Put": {"TableName": table.name, "Item": approval.item()}}]


def get(table: StateTable, approval_id: str) -> Approval:
    """The approval; ApprovalNotFoundError (404) when there is none (or it expired long ago)."""
    response = table.call("GetItem", TableName=table.name, Key=key_of(approval_id), ConsistentRead=True)
    if not response.get("Item"):
        raise ApprovalNotFoundError(f"no approval '{approval_id}' (or it ended more than {KEEP_DAYS} days ago)")
    return Approval.of_item(from_item(response["Item"]))


def listed(table: StateTable, *, open_only: bool = True) -> list[Approval]:
    """The approvals kept: the open ones (PENDING, APPROVING, REJECTING), or with `open_only` False every one,
    oldest first."""
    found = [Approval.of_item(item) for item in table.every_item(PARTITION, PREFIX)]
    if open_only:
        found = [a for a in found if a.status in OPEN]
    return sorted(found, key=lambda a: (a.requested_at, a.id))


@dataclass(frozen=True)
class Transition:
    """A change of an approval's status, with its records' outcome and the notification it owes."""

    to: str
    reason: str | None = None
    record_outcome: str | None = None  # None: the records keep theirs
    owes: str | None = None  # the notification's event
    vote: tuple[str, dict[str, Any]] | None = None  # (principal, vote) cast with it
    deployments: list[dict[str, Any]] | None = None


class _OtherPause(UpdateError):
    """The record no longer shows this pause."""

    def __init__(self) -> None:
        super().__init__("the record shows another pause")


class Conflict(UpdateError):
    """The approval was not as it was read (another transition came first): read it again."""

    def __init__(self) -> None:
        super().__init__("the approval changed meanwhile")


def apply(
    table: StateTable,
    approval: Approval,
    transition: Transition,
    now: datetime,
    also: Sequence[dict[str, Any]] = (),
) -> Approval:
    """Move `approval` (as read) to `transition.to` in one transaction with its records (and `also`: a push's
    items); Conflict when it was not as read any more. Returns the approval as it is now.

    A pause's record is the paused deployment's own, which ECS's events write meanwhile and a later pause of
    the same deployment takes over: it is marked after the transition, only while it still shows this pause
    (mark_pause)."""
    entries = [transition_entry(table, approval, transition, now, conditional=True), *also]
    if transition.record_outcome is not None and approval.kind != PAUSE:
        entries += record_entries(table, approval, transition.record_outcome, transition.reason, now)
    table.call(
        "TransactWriteItems",
        {
            "TransactionCanceledException": lambda _: Conflict(),
            "TransactionConflictException": lambda _: Conflict(),
        },
        TransactItems=entries,
    )
    if transition.record_outcome is not None and approval.kind == PAUSE:
        mark_pause(table, approval, transition.record_outcome, transition.reason, now)
    return moved(approval, transition, now)


def mark_pause(table: StateTable, approval: Approval, status: str, reason: str | None, now: datetime) -> None:
    """Set the paused deployment's record's `pause` status while it is this approval's pause (a later pause of
    the deployment has its own); a record that cannot be marked now is logged, the approval being the truth."""
    for change in approval.services:
        if not change.record_sk:
            continue
        try:
            table.call(
                "UpdateItem",
                {"ConditionalCheckFailedException": lambda _: _OtherPause()},
                TableName=table.name,
                Key=to_item({"pk": service_partition(change.key), "sk": change.record_sk}),
                UpdateExpression="SET pause.#status = :status, pause.decidedAt = :at, pause.reason = :reason",
                ConditionExpression="pause.approvalId = :id",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=to_item(
                    {":status": status, ":at": iso8601(now), ":reason": reason or status, ":id": approval.id}
                ),
            )
        except _OtherPause:
            continue  # the record shows a later pause of the deployment now
        except UpdateError as failure:
            logger.warning("the record of pause %s was not marked %s: %s", approval.id, status, failure.message)


def cast(table: StateTable, approval: Approval, who: str, vote: dict[str, Any]) -> Approval:
    """Add one approving vote that is not the N-th (status stays PENDING); Conflict when not as read."""
    table.call(
        "UpdateItem",
        {"ConditionalCheckFailedException": lambda _: Conflict()},
        TableName=table.name,
        Key=key_of(approval.id),
        UpdateExpression="SET votes.#who = :vote, approvalCount = :count",
        ConditionExpression="#status = :pending AND approvalCount = :seen AND attribute_not_exists(votes.#who)",
        ExpressionAttributeNames={"#who": who, "#status": "status"},
        ExpressionAttributeValues=to_item(
            {
                ":vote": vote,
                ":count": len(approval.approvals) + 1,
                ":seen": len(approval.approvals),
                ":pending": PENDING,
            }
        ),
    )
    return replace(approval, votes={**approval.votes, who: vote})


def reopen(table: StateTable, approval: Approval, who: str, reason: str, now: datetime) -> Approval:
    """Back from APPROVING (or a pause's REJECTING) to PENDING, the deciding vote (`who`'s) taken back: what it
    decided could not be done now (a freeze, a busy lock, AWS failing) and may be later, by a vote cast again.
    Conflict when not as read."""
    table.call(
        "UpdateItem",
        {"ConditionalCheckFailedException": lambda _: Conflict()},
        TableName=table.name,
        Key=key_of(approval.id),
        UpdateExpression="SET #status = :pending, approvalCount = :count, #reason = :reason, changedAt = :at "
        "REMOVE votes.#who",
        ConditionExpression="#status IN (:approving, :rejecting)",
        ExpressionAttributeNames={"#status": "status", "#reason": "reason", "#who": who},
        ExpressionAttributeValues=to_item(
            {
                ":pending": PENDING,
                ":approving": APPROVING,
                ":rejecting": REJECTING,
                ":count": len([p for p in approval.approvals if p != who]),
                ":reason": reason,
                ":at": iso8601(now),
            }
        ),
    )
    votes = {principal: vote for principal, vote in approval.votes.items() if principal != who}
    return replace(approval, status=PENDING, votes=votes, reason=reason)


def transition_entry(
    table: StateTable, approval: Approval, transition: Transition, now: datetime, *, conditional: bool
) -> dict[str, Any]:
    """The approval's Update for a transition; conditional on the status and count it was read with."""
    names = {"#status": "status"}
    values: dict[str, Any] = {":to": transition.to, ":at": iso8601(now)}
    sets = ["#status = :to", "endedAt = :at" if transition.to in FINAL else "changedAt = :at"]
    if transition.reason is not None:
        names["#reason"] = "reason"
        sets.append("#reason = :reason")
        values[":reason"] = transition.reason
    if transition.vote is not None:
        who, vote = transition.vote
        names["#who"] = who
        sets.append("votes.#who = :vote")
        values[":vote"] = vote
        if vote.get("decision") == APPROVE:
            sets.append("approvalCount = :count")
            values[":count"] = len(approval.approvals) + 1
    if transition.deployments is not None:
        sets.append("deployments = :deployments")
        values[":deployments"] = transition.deployments
    expression = "SET " + ", ".join(sets)
    if transition.owes is not None:
        expression += " ADD owed :owes"
        values[":owes"] = {transition.owes}
    update: dict[str, Any] = {
        "TableName": table.name,
        "Key": key_of(approval.id),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
    }
    if conditional:
        update["ConditionExpression"] = "#status = :from AND approvalCount = :seen" + (
            " AND attribute_not_exists(votes.#who)" if transition.vote is not None else ""
        )
        values.update({":from": approval.status, ":seen": len(approval.approvals)})
    update["ExpressionAttributeValues"] = to_item(values)
    return {"Update": update}


def record_entries(
    table: StateTable, approval: Approval, outcome: str, reason: str | None, now: datetime
) -> list[dict[str, Any]]:
    """Updates moving each service's PENDING_APPROVAL record to `outcome` (a pause's record: mark_pause)."""
    return [
        {
            "Update": {
                "TableName": table.name,
                "Key": to_item({"pk": service_partition(s.key), "sk": s.record_sk}),
                "UpdateExpression": "SET outcome = :outcome, outcomeAt = :at, outcomeReason = :reason",
                "ExpressionAttributeValues": to_item(
                    {":outcome": outcome, ":at": iso8601(now), ":reason": reason or outcome}
                ),
            }
        }
        for s in approval.services
        if s.record_sk
    ]


def moved(approval: Approval, transition: Transition, now: datetime) -> Approval:
    """The approval as a transition leaves it."""
    votes = dict(approval.votes)
    if transition.vote is not None:
        votes[transition.vote[0]] = transition.vote[1]
    return replace(
        approval,
        status=transition.to,
        votes=votes,
        ended_at=now if transition.to in FINAL else approval.ended_at,
        reason=transition.reason if transition.reason is not None else approval.reason,
        deployments=transition.deployments if transition.deployments is not None else approval.deployments,
        owed=[*approval.owed, transition.owes] if transition.owes else approval.owed,
    )


def sent(table: StateTable, approval_id: str, event: str) -> None:
    """Mark one owed notification sent."""
    table.call(
        "UpdateItem",
        TableName=table.name,
        Key=key_of(approval_id),
        UpdateExpression="DELETE owed :event",
        ExpressionAttributeValues=to_item({":event": {event}}),
    )


def push_entries(table: StateTable, approval: Approval, reason: str) -> list[dict[str, Any]]:
    """A push's items say the approval ended it without a deployment (rejected, expired, stale, superseded)."""
    push = (approval.provenance or {}).get("push")
    if not push or not push.get("id"):
        return []
    return [pushes.done_entry(table, push["id"], s.service, pushes.FAILED, reason, None) for s in approval.services]


def deadline_of(now: datetime, hours: int) -> datetime:
    """When an approval asked for `now` expires."""
    return now + timedelta(hours=hours)


def pending_for(found: Sequence[Approval], keys: Sequence[str], containers: Mapping[str, set[str]]) -> list[Approval]:
    """The PENDING approvals among `found` that change a container of one of the services `keys` would change
    (`containers`: by key, the container names)."""
    hits = []
    for approval in found:
        if approval.status != PENDING or approval.kind != DEPLOY:  # a pause is of a deployment under way
            continue
        for change in approval.services:
            names = {c["name"] for c in change.containers}
            if change.key in keys and names & containers.get(change.key, set()):
                hits.append(approval)
                break
    return hits


def now_utc() -> datetime:
    """The time now (tests set it)."""
    return datetime.now(UTC)


def _whole(value: Any) -> int | None:
    text = str(value).strip()
    return int(text) if text.isdigit() else None


def moment_of(text: str) -> datetime:
    """A time as the item keeps it (ISO 8601)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
