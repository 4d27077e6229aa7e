"""One writer per service at a time, and a record of every change: the lock items of the state table.

ECS has no compare-and-swap: two updates that each copy the running revision
and register their own would lose one of the changes. A request that changes
services first takes the lock item of each (`SERVICE#cluster/service`, `LOCK`),
all of them or none, re-reads them under it, and lets go when done:

- taking costs one call: a TransactWriteItems of conditional puts, one per
  service (all or none, so two requests can never deadlock on each other's
  half), with a ConditionCheck on each freeze gate the services can be frozen
  through (chalicelib.state.freezes): a freeze is seen in the same call, and
  read (one BatchGetItem) only when it refuses;
- letting go costs one call too: a TransactWriteItems that deletes the lock
  items and writes the request's deployment records (and the pointers from their
  ECS deployment ids), so recording adds no round trip.

A lock carries its expiry in the TTL attribute, so one whose holder died (a
Lambda timeout) is taken over once it expires. A request that cannot take its
locks within LOCK_WAIT_SECONDS gets ServiceBusyError (409) naming the busy
service, and changes nothing. A freeze (a one-off freeze's gate, or a window of
the permissions file, checked in code before the call) refuses with FrozenError
(423) naming it, unless the caller may deploy through it (`bypassFreeze`): then
the records say which freezes were bypassed.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, parallel
from chalicelib.core.config import DEFAULT_HISTORY_DAYS
from chalicelib.core.errors import AwsCallError, ServiceBusyError, UpdateError
from chalicelib.core.results import ChangeResult
from chalicelib.state import freezes
from chalicelib.state.followers import write_batch
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import LOCK_SORT_KEY, TTL_ATTRIBUTE, StateTable, service_partition, to_item

logger = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 5.0
# Longer than any one update holds a lock (25 s at most, whichever function runs it), so a held lock
# never expires early.
LOCK_TTL_SECONDS = 60
# Of the release's own budget: the transaction's attempts; the rest writes the records on their own.
TRANSACTION_SECONDS = budget.RELEASE_SECONDS - budget.STATE_ATTEMPT_SECONDS
MAX_TRANSACTION_ITEMS = 100
_CANCELLATION_REASONS = re.compile(r"\[([A-Za-z, ]+)\]\s*$")
_warned = False


class Held:
    """The locks a request holds, and the records it leaves when it lets them go."""

    def __init__(
        self, keys: Sequence[str], provenance: Provenance, force_new_deployment: bool, record_failures: bool = True
    ) -> None:
        self.keys = list(keys)
        self.provenance = provenance
        self.force_new_deployment = force_new_deployment
        self.record_failures = record_failures
        self.records: dict[str, DeploymentRecord] = {}
        self.writes: list[dict[str, Any]] = []
        # The freezes each service's change goes through (`freeze:<id>`, `window:<name>`), for its record.
        self.bypassed: dict[str, list[str]] = {}

    def also(self, entries: Sequence[dict[str, Any]]) -> None:
        """More TransactWriteItems entries to write with the records (the follower index, a push's state)."""
        self.writes.extend(entries)

    def succeeded(self, key: str, result: ChangeResult) -> DeploymentRecord:
        """Record what the request did to service `key` (answered with a 200)."""
        record = self._noting_bypass(
            key, DeploymentRecord.of_result(self.provenance, result, self.force_new_deployment, key)
        )
        self.records[key] = record
        return record

    def failed(self, key: str, failure: BaseException) -> DeploymentRecord:
        """Record that the request failed for service `key`."""
        record = self._noting_bypass(
            key, DeploymentRecord.of_failure(self.provenance, key, failure, self.force_new_deployment)
        )
        self.records[key] = record
        return record

    def bypass(self, key: str, labels: Sequence[str]) -> None:
        """Note that the change of service `key` goes through these freezes."""
        noted = self.bypassed.setdefault(key, [])
        noted.extend(label for label in labels if label not in noted)

    def _noting_bypass(self, key: str, record: DeploymentRecord) -> DeploymentRecord:
        return replace(record, bypassed=list(self.bypassed[key])) if self.bypassed.get(key) else record


@dataclass(frozen=True)
class Locks:
    """Where a stage keeps its locks and records (no table: neither), and for how long records live."""

    table: StateTable | None = None
    history_days: int = DEFAULT_HISTORY_DAYS
    # The windows, and whose changes go through a freeze; the gates of one-off freezes are checked whatever it says.
    freeze_check: freezes.FreezeCheck = freezes.NO_FREEZE_CHECK

    def bypassing(self, bypass: Callable[[str], bool]) -> Locks:
        """These locks, for a caller who deploys through a freeze to each service key `bypass` says True of."""
        return replace(self, freeze_check=replace(self.freeze_check, bypass=bypass))

    def hold(
        self,
        keys: Sequence[str],
        provenance: Provenance,
        *,
        force_new_deployment: bool = False,
        record_failures: bool = True,
    ) -> AbstractContextManager[Held]:
        """Hold the locks of `keys` (see `hold`)."""
        return hold(
            self.table,
            keys,
            provenance,
            force_new_deployment=force_new_deployment,
            history_days=self.history_days,
            record_failures=record_failures,
            freeze_check=self.freeze_check,
        )


NO_LOCKS = Locks()


@contextmanager
def hold(
    table: StateTable | None,
    keys: Sequence[str],
    provenance: Provenance,
    *,
    force_new_deployment: bool = False,
    history_days: int = DEFAULT_HISTORY_DAYS,
    record_failures: bool = True,
    freeze_check: freezes.FreezeCheck = freezes.NO_FREEZE_CHECK,
) -> Iterator[Held]:
    """Hold the locks of every service in `keys` (`cluster/service`), and record each when done.

    A key left without a record when the block raises gets an ERROR record for
    that failure, unless `record_failures` is False (a queued push records its
    failure once, when it stops retrying). With no table there is no lock and no
    record (a warning once). A freeze refuses before anything is taken
    (FrozenError): a window of the permissions file is checked here, in code, a
    one-off freeze with the locks; `freeze_check` says whose changes go through.
    """
    held = Held(keys, provenance, force_new_deployment, record_failures)
    _check_windows(held, freeze_check, table)
    if table is None:
        _warn_once()
        yield held
        return
    owner = uuid.uuid4().hex
    try:
        _acquire(table, held.keys, owner, held, freeze_check)
    except AwsCallError as failure:
        if failure.outcome_unknown:
            _release(table, held.keys, owner, [], history_days)  # the put may have been applied unanswered
        raise
    try:
        yield held
    except BaseException as failure:
        held.writes.clear()  # what they describe did not happen
        for key in held.keys if held.record_failures else ():
            if key not in held.records:
                held.failed(key, failure)
        raise
    finally:
        records = [held.records[k] for k in held.keys if k in held.records]
        _release(table, held.keys, owner, records, history_days, held.writes)


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(
            "STATE_TABLE is not set: concurrent updates of one service are not serialised, and nothing is recorded"
        )


def _lock_item(key: str, owner: str, now: int) -> dict[str, Any]:
    return to_item(
        {
            "pk": service_partition(key),
            "sk": LOCK_SORT_KEY,
            "kind": "lock",
            "owner": owner,
            TTL_ATTRIBUTE: now + LOCK_TTL_SECONDS,
        }
    )


# Free, expired, or our own (a retried put whose first attempt was applied unanswered).
_FREE = "attribute_not_exists(pk) OR #expires < :now OR #owner = :owner"


def _check_windows(held: Held, check: freezes.FreezeCheck, table: StateTable | None) -> None:
    """Refuse a change that a window of the permissions file stops now (no call: the file is read already).

    A refusal names every freeze that stops each service, one-off ones too (one read of their gates): a push
    must see a freeze that drops it, and the 423 the latest end.
    """
    moment = freezes.now_utc()
    stops = check.windows_of(held.keys, moment)
    refused = {key: found for key, found in stops.items() if not check.bypass(key)}
    if refused:
        if table is not None:
            gates = [gate for key in refused for gate in freezes.gates_of_key(key)]
            for key, found in freezes.stops_of(table, list(refused), gates, moment).items():
                refused[key] = [*refused[key], *found]
        raise freezes.refusal(refused)
    for key, found in stops.items():
        held.bypass(key, [stop.label for stop in found])


def _acquire(table: StateTable, keys: Sequence[str], owner: str, held: Held, check: freezes.FreezeCheck) -> None:
    give_up_at = budget.clock() + LOCK_WAIT_SECONDS
    gated = list(keys)  # the services whose freeze gates are checked (not those already let through one)
    while True:
        now = int(time.time())
        names = {"#owner": "owner", "#expires": TTL_ATTRIBUTE}
        values = to_item({":now": now, ":owner": owner})
        puts = [
            {
                "Put": {
                    "TableName": table.name,
                    "Item": _lock_item(key, owner, now),
                    "ConditionExpression": _FREE,
                    "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values,
                }
            }
            for key in keys
        ]
        # At most 20 services of one cluster: 20 puts and 2 + 2 x 20 gates, within DynamoDB's 100 items.
        gates, checks = freezes.gate_checks(table.name, gated, int(freezes.clock())) if gated else ([], [])
        try:
            table.call(
                "TransactWriteItems",
                {
                    "TransactionCanceledException": lambda message, gates=gates: _cancelled_take(keys, gates, message),
                    # An item is inside another request's transaction (its release): busy for a moment.
                    "TransactionConflictException": lambda _: _Busy(keys),
                },
                TransactItems=[*puts, *checks],
            )
            return
        except _Frozen as frozen:
            stops = freezes.stops_of(table, gated, frozen.gates or gates, freezes.now_utc())
            refused = {key: found for key, found in stops.items() if not check.bypass(key)}
            if refused:
                raise freezes.refusal(refused) from None
            for key, found in stops.items():
                held.bypass(key, [stop.label for stop in found])
            gated = [key for key in gated if key not in stops]
            if stops:
                continue  # let through: take the locks again without those gates
            busy: _Busy = _Busy(keys)  # the freeze ended meanwhile: try again
        except _Busy as is_busy:
            busy = is_busy
        if budget.clock() >= give_up_at:
            which = ", ".join(f"'{key}'" for key in busy.keys)
            raise ServiceBusyError(
                f"another request is changing service {which}; nothing was changed, try again in a few seconds"
            ) from None
        budget.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - jitter, not security


def _cancelled_take(keys: Sequence[str], gates: Sequence[str], message: str) -> UpdateError:
    """What cancelled taking the locks: a freeze gate (its condition failed), else busy locks."""
    reasons = _reasons(message)
    if len(reasons) == len(keys) + len(gates):
        failed = [
            gate for gate, reason in zip(gates, reasons[len(keys) :], strict=True) if reason == "ConditionalCheckFailed"
        ]
        if failed:
            return _Frozen(failed)
        return _Busy(_busy_keys(keys, reasons[: len(keys)]))
    if gates and "ConditionalCheckFailed" in message:
        return _Frozen([])  # the reasons cannot be read: the gates say whether a freeze was the cause
    return _Busy(list(keys))


def _reasons(message: str) -> list[str]:
    """DynamoDB's cancellation reasons, item by item, from a TransactionCanceledException's message."""
    match = _CANCELLATION_REASONS.search(message or "")
    return [reason.strip() for reason in match.group(1).split(",")] if match else []


def _busy_keys(keys: Sequence[str], reasons: Sequence[str]) -> list[str]:
    """The keys whose condition failed (all of them when the reasons cannot be read)."""
    if len(reasons) != len(keys):
        return list(keys)
    busy = [key for key, reason in zip(keys, reasons, strict=True) if reason == "ConditionalCheckFailed"]
    return busy or list(keys)


def _release(
    table: StateTable,
    keys: Sequence[str],
    owner: str,
    records: Sequence[DeploymentRecord],
    history_days: int,
    writes: Sequence[dict[str, Any]] = (),
) -> None:
    """Delete the lock items that are still ours and write the records, in one transaction.

    The release has a budget of its own (budget.RELEASE_SECONDS), separate from
    the request's: the transaction is tried again after a failed or slow attempt
    (botocore retries throttling and 5xx answers; a conflict with another
    transaction is tried again here) for up to TRANSACTION_SECONDS. If it still
    cannot run, the records are written on their own, item by item, in what is
    left (the locks then expire by their TTL); only a record that cannot be
    written even so is logged in full, so that nothing of it is lost.
    """
    deletes = [
        {
            "Delete": {
                "TableName": table.name,
                "Key": to_item({"pk": service_partition(key), "sk": LOCK_SORT_KEY}),
                "ConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": to_item({":owner": owner}),
            }
        }
        for key in keys
    ]
    puts = [{"Put": {"TableName": table.name, "Item": item}} for r in records for item in r.items(history_days)]
    # What must go with the records (a push's state) always does; the follower index fills what room is left in
    # the one transaction (DynamoDB takes 100 items), and the rest follows it in batches.
    bound = [entry for entry in writes if "Update" in entry]
    index = [entry for entry in writes if "Update" not in entry]
    room = max(MAX_TRANSACTION_ITEMS - len(deletes) - len(puts) - len(bound), 0)
    with budget.within(budget.RELEASE_SECONDS, beyond_cap=True):
        try:
            with budget.within(TRANSACTION_SECONDS, beyond_cap=True):
                _transact(table, deletes, puts + bound + index[:room])
            if index[room:]:
                write_batch(table, index[room:])
            return
        except UpdateError as failure:
            logger.warning("release of %s failed (%s); writing the records on their own", keys, failure.message)
        _write_apart(table, keys, records, deletes, puts + bound + index)


def _transact(table: StateTable, deletes: list[dict[str, Any]], puts: list[dict[str, Any]]) -> None:
    """The release transaction, tried again while a conflict passes and the budget allows another attempt.

    A lock that is no longer ours (expired and taken) must keep neither the
    records out nor the other locks held: its delete is dropped and the rest
    tried again.
    """
    pending = list(deletes)
    while True:
        try:
            _write(table, pending + puts)
            return
        except _Cancelled as cancelled:
            reasons = cancelled.reasons if len(cancelled.reasons) == len(pending) + len(puts) else []
            lost = {index for index, reason in enumerate(reasons[: len(pending)]) if reason == "ConditionalCheckFailed"}
            if "ConditionalCheckFailed" in cancelled.reasons and not lost:
                lost = set(range(len(pending)))  # the reasons could not be read: keep to the records
            if lost:
                gone = [pending[index]["Delete"]["Key"]["pk"]["S"].removeprefix("SERVICE#") for index in sorted(lost)]
                logger.warning("lock(s) %s no longer ours when released", ", ".join(gone))
            pending = [delete for index, delete in enumerate(pending) if index not in lost]
            if not lost and not _time_for_another_attempt():
                raise
        except _Conflict:
            if not _time_for_another_attempt():
                raise
        budget.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - jitter, not security


def _write_apart(
    table: StateTable,
    keys: Sequence[str],
    records: Sequence[DeploymentRecord],
    deletes: list[dict[str, Any]],
    puts: list[dict[str, Any]],
) -> None:
    """Write each record item with a PutItem of its own, and let go of each lock that is still ours."""
    operations = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
    calls = [(operations[op], body) for entry in puts for op, body in entry.items()]
    calls += [("DeleteItem", delete["Delete"]) for delete in deletes]
    outcomes = parallel.each(lambda item: _write_one(table, *item), calls)
    failed = [o for o in outcomes if o.error is not None and o.item[0] == "PutItem"]
    if any(o.error is not None for o in outcomes if o.item[1].get("Key", {}).get("sk") == {"S": LOCK_SORT_KEY}):
        logger.warning("locks of %s not released; they expire within %s s", keys, LOCK_TTL_SECONDS)
    if failed:
        first = failed[0].error
        _log_unwritten(records, first if isinstance(first, UpdateError) else UpdateError(str(first)))


def _write_one(table: StateTable, operation: str, arguments: dict[str, Any]) -> None:
    try:
        table.call(
            operation,
            {"ConditionalCheckFailedException": lambda _: _Cancelled(["ConditionalCheckFailed"])},
            **arguments,
        )
    except _Cancelled:
        if operation == "PutItem":
            raise
        logger.warning("lock %s was no longer ours when released", arguments["Key"])


def _time_for_another_attempt() -> bool:
    left = budget.time_left()
    return left is None or left > budget.STATE_ATTEMPT_SECONDS


def _write(table: StateTable, items: list[dict[str, Any]]) -> None:
    if not items:
        return
    conflict = {"TransactionConflictException": lambda _: _Conflict()}
    if len(items) == 1 and "Delete" in items[0]:
        try:
            table.call(
                "DeleteItem",
                {"ConditionalCheckFailedException": lambda _: _Cancelled(["ConditionalCheckFailed"]), **conflict},
                **items[0]["Delete"],
            )
        except _Cancelled:
            logger.warning("lock %s was no longer ours when released", items[0]["Delete"]["Key"])
        return
    table.call(
        "TransactWriteItems",
        {"TransactionCanceledException": lambda message: _Cancelled(_reasons(message)), **conflict},
        TransactItems=items,
    )


def _log_unwritten(records: Sequence[DeploymentRecord], failure: UpdateError) -> None:
    for record in records:
        logger.error("deployment record not written (%s): %s", failure.message, json.dumps(record.as_dict()))


class _Busy(UpdateError):
    def __init__(self, keys: Sequence[str]) -> None:
        super().__init__("the lock is held")
        self.keys = list(keys)


class _Frozen(UpdateError):
    def __init__(self, gates: Sequence[str]) -> None:
        super().__init__("a freeze gate's condition failed")
        self.gates = list(gates)


class _Conflict(UpdateError):
    def __init__(self) -> None:
        super().__init__("the item is part of another transaction in progress")


class _Cancelled(UpdateError):
    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(f"the transaction was cancelled ({', '.join(reasons) or 'no reason given'})")
        self.reasons = list(reasons)
