"""One-off freezes in the state table, and the gates through which taking a lock sees them.

| item                        | pk                      | sk               |
|-----------------------------|-------------------------|------------------|
| a freeze                    | `FREEZES`               | `FREEZE#<id>`    |
| a gate                      | `FREEZEGATE#<gate>`     | `GATE`           |

Taking a service's lock must see a freeze without a call of its own, so a
freeze is also written into **gates**, one item per scope key, and the
transaction that takes the locks (chalicelib.state.lock) checks the four gates
a service can be frozen through with a ConditionCheck each:

- `ALL`: the emergency stop (`scope: {}`);
- `CLUSTER#<cluster key>`: a cluster, every service of it;
- `NAME#<service>`: a service name, in every cluster;
- `SERVICE#<cluster key>/<service>`: one service of one cluster.

A cluster key is the cluster's name at home and `<account>/<region>/<name>`
elsewhere, like a service key (chalicelib.core.locations). A freeze of
clusters C and services S writes the gates C x S (or C, or S, or ALL). A gate
holds every freeze behind it (`freezes`: id -> until, reason, pushes) and the
latest end of them (`frozenUntil`, epoch seconds); the lock's condition is that
the gate is absent or its `frozenUntil` has passed. A fan-out of 20 services of
one cluster checks 2 + 2 x 20 gates beside its 20 lock puts: 62 of DynamoDB's
100 items a transaction.

Creating and lifting a freeze read its gates first and then write the freeze
and every gate in one transaction, each gate on the condition that it is
still the version read: gates and freezes never disagree, and two freezes
written at once both land. Windows (the permissions file's recurring freezes)
are evaluated in code, with no call at all (chalicelib.core.windows).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws import budget
from chalicelib.core.errors import FreezeNotFoundError, FrozenError, InvalidRequestError, ServiceBusyError, UpdateError
from chalicelib.core.locations import Location, location_of, name_of
from chalicelib.core.windows import WAIT, InForce, Scope, Window, iso, windows_in_force
from chalicelib.state.table import TTL_ATTRIBUTE, StateTable, from_item, to_item

FREEZES_PARTITION = "FREEZES"
FREEZE_PREFIX = "FREEZE#"
GATE_PREFIX = "FREEZEGATE#"
GATE_SORT_KEY = "GATE"
UNTIL_ATTRIBUTE = "frozenUntil"
ALL = "ALL"
# A freeze and its gates are written in one transaction of at most 100 items.
MAX_GATES = 99
MAX_DAYS = 90
# How long a freeze's item is kept after its end (its TTL), for GET /freezes?all=true and for a person to look.
KEEP_DAYS = 30
WRITE_ATTEMPTS = 5
BATCH_GET = 100
# The clusters and services one freeze may name; their product is bounded by MAX_GATES.
MAX_NAMES = 50


def clock() -> float:
    """Now, in epoch seconds (tests move it)."""
    return time.time()


def now_utc() -> datetime:
    """Now, as an aware datetime in UTC."""
    return datetime.fromtimestamp(clock(), UTC)


@dataclass(frozen=True)
class Freeze:
    """A one-off freeze: what it covers, until when, why, and what becomes of a push during it."""

    id: str
    scope: Scope
    until: datetime
    reason: str
    pushes: str
    created_by: str
    created_at: datetime
    gates: tuple[str, ...]

    def active(self, moment: datetime) -> bool:
        """True while it is in force."""
        return moment < self.until

    def in_force(self) -> InForce:
        """How a refused write names it."""
        return InForce("freeze", self.id, self.reason, self.until, self.pushes)

    def as_dict(self, moment: datetime) -> dict[str, Any]:
        """JSON shape of the /freezes routes."""
        return {
            "id": self.id,
            "scope": self.scope.as_dict(),
            "until": iso(self.until),
            "reason": self.reason,
            "pushes": self.pushes,
            "createdBy": self.created_by,
            "createdAt": iso(self.created_at),
            "active": self.active(moment),
        }

    def item(self) -> dict[str, Any]:
        """Its DynamoDB item (kept KEEP_DAYS after its end)."""
        return to_item(
            {
                "pk": FREEZES_PARTITION,
                "sk": FREEZE_PREFIX + self.id,
                "kind": "freeze",
                "id": self.id,
                "scope": self.scope.as_dict(),
                "until": iso(self.until),
                "reason": self.reason,
                "pushes": self.pushes,
                "createdBy": self.created_by,
                "createdAt": iso(self.created_at),
                "gates": list(self.gates),
                TTL_ATTRIBUTE: int(self.until.timestamp()) + KEEP_DAYS * 24 * 3600,
            }
        )

    @classmethod
    def of_item(cls, item: Mapping[str, Any]) -> Freeze:
        """A freeze read back (plain values)."""
        scope = item.get("scope") or {}
        return cls(
            id=str(item["id"]),
            scope=Scope(
                tuple(scope["clusters"]) if "clusters" in scope else None,
                tuple(scope["services"]) if "services" in scope else None,
            ),
            until=datetime.fromisoformat(str(item["until"])),
            reason=str(item.get("reason", "")),
            pushes=str(item.get("pushes", WAIT)),
            created_by=str(item.get("createdBy", "")),
            created_at=datetime.fromisoformat(str(item.get("createdAt") or item["until"])),
            gates=tuple(item.get("gates") or ()),
        )


@dataclass(frozen=True)
class FreezeCheck:
    """What taking a lock checks besides the gates: the windows (in code), and whose deployments go through.

    `windows` gives the windows of the permissions file; `bypass` says, for a
    service key, whether the caller may deploy through a freeze (a rule with
    `bypassFreeze: true`); `home` makes a key's cluster a cluster ARN for the
    windows' scopes (None: names match names).
    """

    # Read when a lock is taken (a broken permissions file then fails that change alone, retryably).
    windows: Callable[[], Sequence[Window]] = field(default=lambda: ())
    bypass: Callable[[str], bool] = field(default=lambda _key: False)
    home: Callable[[], Location] | None = None

    def windows_of(self, keys: Sequence[str], moment: datetime) -> dict[str, list[InForce]]:
        """The windows in force at `moment` for each key (only keys that have some)."""
        windows = self.windows()
        if not windows:
            return {}
        home = self.home() if self.home is not None else None
        found: dict[str, list[InForce]] = {}
        for key in keys:
            cluster_arn, service = located(key, home)
            stops = windows_in_force(windows, cluster_arn, service, moment, home)
            if stops:
                found[key] = stops
        return found


NO_FREEZE_CHECK = FreezeCheck()


def located(key: str, home: Location | None) -> tuple[str, str]:
    """A service key's cluster (an ARN when the home is known, else the name) and service name."""
    parts = key.split("/")
    cluster, service = parts[-2], parts[-1]
    if len(parts) == 4:
        partition = home.partition if home is not None else "aws"
        return f"arn:{partition}:ecs:{parts[1]}:{parts[0]}:cluster/{cluster}", service
    return (home.cluster_arn(cluster) if home is not None else cluster), service


def refusal(stops_by_key: Mapping[str, Sequence[InForce]]) -> FrozenError:
    """The 423 of a write that freezes stop: each service, and each freeze with its reason and end."""
    parts = []
    every: dict[str, InForce] = {}
    for key, stops in stops_by_key.items():
        named = ", ".join(f"{stop.label} ({stop.reason}) until {iso(stop.until)}" for stop in stops)
        parts.append(f"service '{key}' is frozen by {named}")
        every.update({stop.label: stop for stop in stops})
    return FrozenError("; ".join(parts) + "; nothing was changed", list(every.values()))


# -- the gates ---------------------------------------------------------------------------------------------------


def gates_of_key(key: str) -> list[str]:
    """The four gates a service (by its key) can be frozen through."""
    cluster_key, _, service = key.rpartition("/")
    return [ALL, f"CLUSTER#{cluster_key}", f"NAME#{service}", f"SERVICE#{key}"]


def gates_of_scope(cluster_keys: Sequence[str] | None, services: Sequence[str] | None) -> list[str]:
    """The gates a freeze of these clusters (by key) and service names writes."""
    if cluster_keys is None and services is None:
        return [ALL]
    if services is None:
        return [f"CLUSTER#{cluster}" for cluster in cluster_keys or ()]
    if cluster_keys is None:
        return [f"NAME#{service}" for service in services]
    return [f"SERVICE#{cluster}/{service}" for cluster in cluster_keys for service in services]


def gate_checks(table_name: str, keys: Sequence[str], now: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The gates of `keys` (each once) and a ConditionCheck entry for each: absent, or its freezes over."""
    gates = list(dict.fromkeys(gate for key in keys for gate in gates_of_key(key)))
    checks = [
        {
            "ConditionCheck": {
                "TableName": table_name,
                "Key": _gate_key(gate),
                "ConditionExpression": "attribute_not_exists(pk) OR #until <= :now",
                "ExpressionAttributeNames": {"#until": UNTIL_ATTRIBUTE},
                "ExpressionAttributeValues": to_item({":now": now}),
            }
        }
        for gate in gates
    ]
    return gates, checks


def stops_of(
    table: StateTable, keys: Sequence[str], gates: Iterable[str], moment: datetime
) -> dict[str, list[InForce]]:
    """The freezes in force at `moment` behind `gates`, for each key whose gates they are (one BatchGetItem)."""
    wanted = list(dict.fromkeys(gates))
    held = _read_gates(table, wanted)
    found: dict[str, list[InForce]] = {}
    for key in keys:
        stops: dict[str, InForce] = {}
        for gate in gates_of_key(key):
            for freeze_id, entry in (held.get(gate) or _Gate.absent()).entries.items():
                stop = _in_force(freeze_id, entry)
                if stop.until > moment:
                    stops[freeze_id] = stop
        if stops:
            found[key] = sorted(stops.values(), key=lambda s: s.until)
    return found


def in_force_for(table: StateTable | None, check: FreezeCheck, keys: Sequence[str]) -> dict[str, list[InForce]]:
    """Every freeze and window in force now for each key (a dry run's note; one BatchGetItem with a table)."""
    moment = now_utc()
    found = {key: list(stops) for key, stops in check.windows_of(keys, moment).items()}
    if table is not None:
        gates = [gate for key in keys for gate in gates_of_key(key)]
        for key, stops in stops_of(table, keys, gates, moment).items():
            found.setdefault(key, []).extend(stops)
    return found


# -- freezes -----------------------------------------------------------------------------------------------------


def cluster_key(cluster: str, home: Location) -> str:
    """The key a freeze's cluster goes by: its name at home, `<account>/<region>/<name>` elsewhere."""
    if not cluster.startswith("arn:"):
        if "/" in cluster or ":" in cluster:
            raise InvalidRequestError(f"'scope.clusters': {cluster!r} is neither a cluster name nor a cluster ARN")
        return cluster
    where = location_of(cluster)
    if where is None or ":cluster/" not in cluster or not name_of(cluster):
        raise InvalidRequestError(f"'scope.clusters': {cluster!r} is not a cluster ARN (arn:aws:ecs:…:cluster/<name>)")
    if where.account == home.account and where.region == home.region:
        return name_of(cluster)
    return f"{where.account}/{where.region}/{name_of(cluster)}"


def create(
    table: StateTable,
    scope: Scope,
    home: Location,
    until: datetime,
    reason: str,
    pushes: str,
    principal: str,
) -> Freeze:
    """Write a freeze and its gates (one transaction, tried again while another freeze write races it)."""
    moment = now_utc()
    cluster_keys = [cluster_key(c, home) for c in scope.clusters] if scope.clusters is not None else None
    services = list(scope.services) if scope.services is not None else None
    gates = tuple(dict.fromkeys(gates_of_scope(cluster_keys, services)))
    if len(gates) > MAX_GATES:
        raise InvalidRequestError(
            f"'scope' names {len(gates)} cluster and service pairs; one freeze covers at most {MAX_GATES} "
            "(name the clusters alone, or the services alone, or make several freezes)"
        )
    freeze = Freeze(uuid.uuid4().hex[:12], scope, until, reason, pushes, principal, moment, gates)
    entry = {"until": int(until.timestamp()), "reason": reason, "pushes": pushes}

    def writes(current: Mapping[str, _Gate], now: int) -> list[dict[str, Any]]:
        put = {
            "Put": {"TableName": table.name, "Item": freeze.item(), "ConditionExpression": "attribute_not_exists(pk)"}
        }
        gate_writes = [
            current.get(gate, _Gate.absent()).written(table.name, gate, {freeze.id: entry}, (), now) for gate in gates
        ]
        return [put, *gate_writes]

    _transact_with_gates(table, gates, writes)
    return freeze


def lift(table: StateTable, freeze: Freeze) -> None:
    """Delete a freeze and take it out of its gates (one transaction)."""

    def writes(current: Mapping[str, _Gate], now: int) -> list[dict[str, Any]]:
        delete = {
            "Delete": {
                "TableName": table.name,
                "Key": to_item({"pk": FREEZES_PARTITION, "sk": FREEZE_PREFIX + freeze.id}),
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        gate_writes = [
            current[gate].written(table.name, gate, {}, (freeze.id,), now) for gate in freeze.gates if gate in current
        ]
        return [delete, *gate_writes]

    _transact_with_gates(table, freeze.gates, writes, missing=lambda: _gone(freeze.id))


def get(table: StateTable, freeze_id: str) -> Freeze:
    """The freeze with that id; FreezeNotFoundError when there is none."""
    response = table.call(
        "GetItem",
        TableName=table.name,
        Key=to_item({"pk": FREEZES_PARTITION, "sk": FREEZE_PREFIX + freeze_id}),
        ConsistentRead=True,
    )
    if not response.get("Item"):
        raise _gone(freeze_id)
    return Freeze.of_item(from_item(response["Item"]))


def listed(table: StateTable) -> list[Freeze]:
    """Every freeze kept (in force or ended within KEEP_DAYS), ending first first."""
    found = [Freeze.of_item(item) for item in table.every_item(FREEZES_PARTITION, FREEZE_PREFIX)]
    return sorted(found, key=lambda freeze: (freeze.until, freeze.id))


def latest_until() -> datetime:
    """The latest end a freeze may have."""
    return now_utc() + timedelta(days=MAX_DAYS)


# -- inside ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gate:
    """A gate as read: its freezes (id -> until, reason, pushes) and its version ("": absent).

    A version is a random token, never a count: a gate deleted and made again must not match a version read
    before the delete (a writer holding it would put back a lifted freeze and lose the new one).
    """

    entries: dict[str, dict[str, Any]]
    version: str

    @classmethod
    def absent(cls) -> _Gate:
        return cls({}, "")

    def written(
        self, table_name: str, gate: str, adding: Mapping[str, Any], removing: Sequence[str], now: int
    ) -> dict[str, Any]:
        """The entry that writes this gate with `adding` and without `removing` (and without freezes that ended),
        on the condition that it is still the version read; a gate left with no freeze is deleted."""
        kept = {i: e for i, e in self.entries.items() if i not in removing and int(e.get("until", 0)) > now}
        kept.update(adding)
        if not self.version:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#version = :version",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": to_item({":version": self.version}),
            }
        if not kept:
            return {"Delete": {"TableName": table_name, "Key": _gate_key(gate), **condition}}
        until = max(int(e["until"]) for e in kept.values())
        item = {
            **_plain_key(gate),
            "kind": "freeze-gate",
            "freezes": kept,
            UNTIL_ATTRIBUTE: until,
            "version": uuid.uuid4().hex,
            TTL_ATTRIBUTE: until + 24 * 3600,
        }
        return {"Put": {"TableName": table_name, "Item": to_item(item), **condition}}


def _transact_with_gates(
    table: StateTable,
    gates: Sequence[str],
    writes: Callable[[Mapping[str, _Gate], int], list[dict[str, Any]]],
    missing: Callable[[], UpdateError] | None = None,
) -> None:
    """Read the gates, write what `writes` makes of them, and again while another write races this one."""
    for _attempt in range(WRITE_ATTEMPTS):
        current = _read_gates(table, gates)
        items = writes(current, int(clock()))
        try:
            table.call(
                "TransactWriteItems",
                {
                    "TransactionCanceledException": lambda message: _Raced(message),
                    "TransactionConflictException": lambda message: _Raced(message),
                },
                TransactItems=items,
                # botocore's own retries of this attempt send the same token: one applied but not answered is
                # not applied again, nor answered as a conflict with itself.
                ClientRequestToken=uuid.uuid4().hex,
            )
            return
        except _Raced as raced:
            reasons = _reasons(raced.message)
            if missing is not None and reasons[:1] == ["ConditionalCheckFailed"]:
                raise missing() from None  # the freeze itself is gone (lifted meanwhile)
        budget.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - jitter, not security
    raise ServiceBusyError("other requests are changing the same freezes; nothing was changed, try again")


def _read_gates(table: StateTable, gates: Sequence[str]) -> dict[str, _Gate]:
    """The gates that exist among `gates` (BatchGetItem, consistent, unprocessed keys asked again)."""
    found: dict[str, _Gate] = {}
    wanted = list(dict.fromkeys(gates))
    for start in range(0, len(wanted), BATCH_GET):
        keys = [_gate_key(gate) for gate in wanted[start : start + BATCH_GET]]
        while keys:
            response = table.call("BatchGetItem", RequestItems={table.name: {"Keys": keys, "ConsistentRead": True}})
            for raw in response.get("Responses", {}).get(table.name, []):
                item = from_item(raw)
                gate = str(item["pk"]).removeprefix(GATE_PREFIX)
                found[gate] = _Gate(dict(item.get("freezes") or {}), str(item.get("version") or ""))
            keys = list((response.get("UnprocessedKeys") or {}).get(table.name, {}).get("Keys") or [])
            if keys:
                budget.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - jitter, not security
    return found


def _in_force(freeze_id: str, entry: Mapping[str, Any]) -> InForce:
    until = datetime.fromtimestamp(int(entry.get("until", 0)), UTC)
    return InForce("freeze", freeze_id, str(entry.get("reason", "")), until, str(entry.get("pushes", WAIT)))


def _plain_key(gate: str) -> dict[str, str]:
    return {"pk": GATE_PREFIX + gate, "sk": GATE_SORT_KEY}


def _gate_key(gate: str) -> dict[str, Any]:
    return to_item(_plain_key(gate))


def _reasons(message: str) -> list[str]:
    start, end = (message or "").rfind("["), (message or "").rfind("]")
    if start == -1 or end < start:
        return []
    return [reason.strip() for reason in message[start + 1 : end].split(",")]


def _gone(freeze_id: str) -> FreezeNotFoundError:
    return FreezeNotFoundError(f"no freeze '{freeze_id}' (lifted, or ended more than {KEEP_DAYS} days ago)")


class _Raced(UpdateError):
    pass
