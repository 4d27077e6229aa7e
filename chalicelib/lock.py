"""One writer per service at a time: a DynamoDB item per service, taken with a conditional write.

ECS has no compare-and-swap: two updates that each copy the running revision
and register their own would lose one of the changes. A request that changes a
service first takes its lock item (`lockId` = `cluster/service`), re-reads the
service under it, and deletes the item when done. The item carries its expiry
in the table's TTL attribute (`expiresAt`, epoch seconds), so a lock whose
holder died (a Lambda timeout) is taken over once it expires and later removed
by DynamoDB. A request that cannot take the lock within LOCK_WAIT_SECONDS gets
ServiceBusyError (409) and changes nothing.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from chalicelib import aws
from chalicelib.errors import AwsCallError, ServiceBusyError, UpdateError

logger = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 5.0
# Longer than a request can live (the Lambda stops at 29 s), so a held lock never expires early.
LOCK_TTL_SECONDS = 60
_warned = False


def lock_key(cluster: str, service: str) -> str:
    """`cluster/service` by name, whether the request gave names or ARNs."""
    return f"{cluster.rsplit('/', 1)[-1]}/{service.rsplit('/', 1)[-1]}"


def service_lock(client: Any, table: str | None, key: str) -> AbstractContextManager[None]:
    """The lock for `key` in `table`; with no table, no lock (and a warning once per process)."""
    global _warned
    if table is None:
        if not _warned:
            _warned = True
            logger.warning("LOCK_TABLE is not set: concurrent updates of one service are not serialised")
        return nullcontext()
    return _held(client, table, key)


@contextmanager
def _held(client: Any, table: str, key: str) -> Iterator[None]:
    owner = uuid.uuid4().hex
    try:
        _acquire(client, table, key, owner)
    except AwsCallError as failure:
        if failure.outcome_unknown:
            _release(client, table, key, owner)  # the put may have been applied without an answer
        raise
    try:
        yield
    finally:
        _release(client, table, key, owner)


def _acquire(client: Any, table: str, key: str, owner: str) -> None:
    give_up_at = aws.clock() + LOCK_WAIT_SECONDS
    while True:
        now = int(time.time())
        try:
            aws.call(
                client.put_item,
                "PutItem",
                {"ConditionalCheckFailedException": lambda _: _Busy()},
                TableName=table,
                Item={"lockId": {"S": key}, "owner": {"S": owner}, "expiresAt": {"N": str(now + LOCK_TTL_SECONDS)}},
                # Our own item too: a retried put whose first attempt was applied unanswered.
                ConditionExpression="attribute_not_exists(lockId) OR expiresAt < :now OR #owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":owner": {"S": owner}},
            )
            return
        except _Busy:
            if aws.clock() >= give_up_at:
                raise ServiceBusyError(
                    f"another request is changing service '{key}'; nothing was changed, try again in a few seconds"
                ) from None
            aws.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - jitter, not security


def _release(client: Any, table: str, key: str, owner: str) -> None:
    """Delete the item if it is still ours; on failure its TTL frees it."""
    with aws.time_budget(aws.RELEASE_BUDGET_SECONDS):
        try:
            aws.call(
                client.delete_item,
                "DeleteItem",
                {"ConditionalCheckFailedException": lambda _: _Busy()},
                TableName=table,
                Key={"lockId": {"S": key}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except _Busy:
            logger.warning("lock %s was no longer ours when released", key)
        except UpdateError as failure:
            logger.warning("lock %s was not released (%s); it expires within %s s", key, failure, LOCK_TTL_SECONDS)


class _Busy(UpdateError):
    def __init__(self) -> None:
        super().__init__("the lock is held")
