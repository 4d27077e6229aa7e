"""What became of a push, service by service: its items in the state table, and the claims on its work.

| item                          | pk             | sk                       |
|-------------------------------|----------------|--------------------------|
| the push                      | `PUSH#<id>`    | `PUSH`                   |
| one service it concerns       | `PUSH#<id>`    | `SERVICE#<service ARN>`  |

A service's item is its work item's claim too: `queued` when decided, `working`
while a consumer holds it (a lease, `leaseUntil`), then `deployed`, `failed`
(`final`: `refused`, or `exhausted` once the retries ran out), `skipped`, or
`frozen` (a freeze that drops pushes stopped it: chalicelib.state.freezes). A
push that a freeze keeps waiting goes back to `queued` until the freeze ends.
Every change is a conditional write, so a duplicate message, a redelivery or two
consumers at once deploy a service at most once for one push. Items expire
after PUSH_DAYS.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.core.errors import UpdateError
from chalicelib.core.results import iso8601
from chalicelib.state.table import TTL_ATTRIBUTE, StateTable, from_item, to_item

QUEUED = "queued"
WORKING = "working"
DEPLOYED = "deployed"
FAILED = "failed"
SKIPPED = "skipped"
FROZEN = "frozen"
FINAL_STATES = frozenset({DEPLOYED, FAILED, SKIPPED, FROZEN})
REFUSED = "refused"
EXHAUSTED = "exhausted"
DROPPED = "dropped"
PUSH_DAYS = 14
HEADER_SORT_KEY = "PUSH"
TRANSACTION_ITEMS = 100


def push_partition(push_id: str) -> str:
    """The partition of one push."""
    return f"PUSH#{push_id}"


def target_sort_key(service_arn: str) -> str:
    """Where a service's item sits in its push's partition."""
    return f"SERVICE#{service_arn}"


@dataclass(frozen=True)
class Target:
    """One service a push concerns, and what became of it."""

    service_arn: str
    cluster: str
    service: str
    state: str
    reason: str = ""
    deployment_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of GET /pushes/{pushId}: a service being worked on still reads `queued`."""
        return {
            "cluster": self.cluster,
            "service": self.service,
            "state": QUEUED if self.state == WORKING else self.state,
            "reason": self.reason,
            "deploymentId": self.deployment_id,
        }


@dataclass(frozen=True)
class Claim:
    """What claiming a service's work found: `won` (it is ours now), or the state someone else left it in."""

    won: bool
    state: str
    final: str | None = None
    attempts: int = 0
    lease_until: int = 0
    record_pk: str | None = None
    record_sk: str | None = None


def record_decisions(
    table: StateTable, push_id: str, header: Mapping[str, Any], targets: Sequence[Target], now: float | None = None
) -> bool:
    """Write the push and one item per service, each only if absent; False when they were all there already.

    A duplicate event or a retried invocation finds them written and changes
    none (a service already deployed never goes back to queued).
    """
    moment = now if now is not None else time.time()
    expires = int(moment) + PUSH_DAYS * 24 * 3600
    items = [
        to_item(
            {"pk": push_partition(push_id), "sk": HEADER_SORT_KEY, "kind": "push", TTL_ATTRIBUTE: expires, **header}
        )
    ]
    items += [
        to_item(
            {
                "pk": push_partition(push_id),
                "sk": target_sort_key(target.service_arn),
                "kind": "push-target",
                "cluster": target.cluster,
                "service": target.service,
                "state": target.state,
                "reason": target.reason,
                "attempts": 0,
                TTL_ATTRIBUTE: expires,
            }
        )
        for target in targets
    ]
    wrote = False
    for start in range(0, len(items), TRANSACTION_ITEMS):
        chunk = items[start : start + TRANSACTION_ITEMS]
        try:
            table.call(
                "TransactWriteItems",
                {"TransactionCanceledException": lambda message: _AlreadyThere(message)},
                TransactItems=[
                    {"Put": {"TableName": table.name, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
                    for item in chunk
                ],
            )
            wrote = True
        except _AlreadyThere as there:
            if "ConditionalCheckFailed" not in there.message:
                raise UpdateError(f"the push could not be recorded: {there.message}") from there
    return wrote


def claim(
    table: StateTable,
    push_id: str,
    target: Target,
    lease_seconds: int,
    *,
    reopen: bool = False,
    now: float | None = None,
) -> Claim:
    """Take the service's work for a lease, unless it is done or someone else holds a live lease.

    `reopen` lets a push whose retries ran out be tried again (a message an
    operator moved back from the dead-letter queue).
    """
    moment = int(now if now is not None else time.time())
    condition = "attribute_not_exists(pk) OR #state = :queued OR (#state = :working AND #lease < :now)"
    values: dict[str, Any] = {
        ":queued": QUEUED,
        ":working": WORKING,
        ":now": moment,
        ":lease": moment + lease_seconds,
        ":zero": 0,
        ":one": 1,
        ":cluster": target.cluster,
        ":service": target.service,
        ":expires": moment + PUSH_DAYS * 24 * 3600,
    }
    if reopen:
        condition += " OR (#state = :failed AND #final = :exhausted)"
        values.update({":failed": FAILED, ":exhausted": EXHAUSTED})
    try:
        response = table.call(
            "UpdateItem",
            {"ConditionalCheckFailedException": lambda _: _Taken()},
            TableName=table.name,
            Key=_key(push_id, target.service_arn),
            UpdateExpression=(
                "SET #state = :working, #lease = :lease, #attempts = if_not_exists(#attempts, :zero) + :one, "
                "#cluster = if_not_exists(#cluster, :cluster), #service = if_not_exists(#service, :service), "
                "#kind = if_not_exists(#kind, :kind), #expires = if_not_exists(#expires, :expires)"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames=_names("#state #lease #attempts #cluster #service #kind #expires", condition),
            ExpressionAttributeValues=to_item({**values, ":kind": "push-target"}),
            ReturnValues="ALL_NEW",
        )
    except _Taken:
        return _claim_of(_get(table, push_id, target.service_arn), won=False)
    return _claim_of(from_item(response.get("Attributes", {})), won=True)


def give_back(table: StateTable, push_id: str, service_arn: str, lease_until: int, reason: str) -> None:
    """Let the work go (it will be tried again), if the lease is still ours."""
    try:
        table.call(
            "UpdateItem",
            {"ConditionalCheckFailedException": lambda _: _Taken()},
            TableName=table.name,
            Key=_key(push_id, service_arn),
            UpdateExpression="SET #state = :queued, #reason = :reason REMOVE #lease",
            ConditionExpression="#state = :working AND #lease = :lease",
            ExpressionAttributeNames=_names("#state #reason #lease"),
            ExpressionAttributeValues=to_item(
                {":queued": QUEUED, ":working": WORKING, ":lease": lease_until, ":reason": reason}
            ),
        )
    except _Taken:
        return  # taken over meanwhile (our lease lapsed): the new holder decides


def done_entry(
    table: StateTable, push_id: str, service_arn: str, state: str, reason: str, deployment_id: str | None
) -> dict[str, Any]:
    """A TransactWriteItems entry that marks the service's work done (written with its deployment's record)."""
    values = {":state": state, ":reason": reason, ":deployment": deployment_id or ""}
    return {
        "Update": {
            "TableName": table.name,
            "Key": _key(push_id, service_arn),
            "UpdateExpression": "SET #state = :state, #reason = :reason, #deployment = :deployment REMOVE #lease",
            "ExpressionAttributeNames": _names("#state #reason #deployment #lease"),
            "ExpressionAttributeValues": to_item(values),
        }
    }


def fail(
    table: StateTable,
    push_id: str,
    service_arn: str,
    final: str,
    reason: str,
    record_items: Sequence[Mapping[str, Any]],
    state: str = FAILED,
) -> bool:
    """Mark the service's work failed for good (or `state`, e.g. frozen) and write its one record, together; False
    when it was final already."""
    record_pk, record_sk = (record_items[0]["pk"]["S"], record_items[0]["sk"]["S"]) if record_items else ("", "")
    update = {
        "Update": {
            "TableName": table.name,
            "Key": _key(push_id, service_arn),
            "UpdateExpression": (
                "SET #state = :state, #final = :final, #reason = :reason, #recordPk = :pk, #recordSk = :sk "
                "REMOVE #lease"
            ),
            "ConditionExpression": (
                "attribute_not_exists(#state) OR NOT #state IN (:failed, :deployed, :skipped, :frozen)"
            ),
            "ExpressionAttributeNames": _names("#state #final #reason #recordPk #recordSk #lease"),
            "ExpressionAttributeValues": to_item(
                {
                    ":state": state,
                    ":frozen": FROZEN,
                    ":failed": FAILED,
                    ":deployed": DEPLOYED,
                    ":skipped": SKIPPED,
                    ":final": final,
                    ":reason": reason,
                    ":pk": record_pk,
                    ":sk": record_sk,
                }
            ),
        }
    }
    puts = [{"Put": {"TableName": table.name, "Item": dict(item)}} for item in record_items]
    try:
        table.call(
            "TransactWriteItems",
            {"TransactionCanceledException": lambda message: _AlreadyThere(message)},
            TransactItems=[update, *puts],
        )
    except _AlreadyThere as there:
        if "ConditionalCheckFailed" in there.message:
            return False
        raise UpdateError(f"the failed push could not be recorded: {there.message}") from there
    return True


def status(table: StateTable, push_id: str) -> tuple[dict[str, Any], list[Target]] | None:
    """The push's header and each service's target, or None when the push is unknown."""
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        arguments: dict[str, Any] = {
            "TableName": table.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": push_partition(push_id)}),
            "ConsistentRead": True,
        }
        if start:
            arguments["ExclusiveStartKey"] = start
        page = table.call("Query", **arguments)
        items += [from_item(item) for item in page.get("Items", [])]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    header = next((item for item in items if item["sk"] == HEADER_SORT_KEY), None)
    if header is None:
        return None
    targets = [
        Target(
            service_arn=str(item["sk"]).removeprefix("SERVICE#"),
            cluster=str(item.get("cluster", "")),
            service=str(item.get("service", "")),
            state=str(item.get("state", QUEUED)),
            reason=str(item.get("reason") or ""),
            deployment_id=item.get("deploymentId") or None,
        )
        for item in items
        if item["sk"] != HEADER_SORT_KEY
    ]
    return header, sorted(targets, key=lambda t: (t.cluster, t.service))


def header(repository: str, tag: str | None, digest: str | None, source: str, at: datetime) -> dict[str, Any]:
    """The push's own fields."""
    return {"repository": repository, "tag": tag, "digest": digest, "source": source, "at": iso8601(at)}


# Every attribute an expression names goes through a placeholder: several are DynamoDB reserved words.
_ATTRIBUTES = {
    "#state": "state",
    "#final": "final",
    "#reason": "reason",
    "#lease": "leaseUntil",
    "#attempts": "attempts",
    "#cluster": "cluster",
    "#service": "service",
    "#kind": "kind",
    "#expires": TTL_ATTRIBUTE,
    "#deployment": "deploymentId",
    "#recordPk": "recordPk",
    "#recordSk": "recordSk",
}


def _names(*used: str) -> dict[str, str]:
    """The placeholders the expressions use (DynamoDB refuses one that is given and not used)."""
    text = " ".join(used)
    return {placeholder: name for placeholder, name in _ATTRIBUTES.items() if placeholder in text}


def _key(push_id: str, service_arn: str) -> dict[str, Any]:
    return to_item({"pk": push_partition(push_id), "sk": target_sort_key(service_arn)})


def _get(table: StateTable, push_id: str, service_arn: str) -> dict[str, Any]:
    response = table.call("GetItem", TableName=table.name, Key=_key(push_id, service_arn), ConsistentRead=True)
    return from_item(response.get("Item") or {})


def _claim_of(item: Mapping[str, Any], *, won: bool) -> Claim:
    return Claim(
        won=won,
        state=str(item.get("state", QUEUED)),
        final=item.get("final"),
        attempts=int(item.get("attempts") or 0),
        lease_until=int(item.get("leaseUntil") or 0),
        record_pk=item.get("recordPk") or None,
        record_sk=item.get("recordSk") or None,
    )


class _AlreadyThere(UpdateError):
    pass


class _Taken(UpdateError):
    def __init__(self) -> None:
        super().__init__("the work is taken or done")
