"""The state table: one DynamoDB table, several item kinds (the usual single-table design).

| item                                  | pk                               | sk                            |
|---------------------------------------|----------------------------------|-------------------------------|
| a service's lock                      | `SERVICE#<key>`                  | `LOCK`                        |
| a deployment record                   | `SERVICE#<key>`                  | `RECORD#<at>#<id>`            |
| where a deployment's record is        | `DEPLOYMENT#<ECS deployment id>` | `POINTER`                     |
| a push and each service it concerns   | `PUSH#<push id>`                 | `PUSH`, `SERVICE#<arn>`       |
| the follower index                    | `FOLLOWERS`, `REPOSITORY#…`, `REVISION#…` | see chalicelib.state.followers |
| a CodePipeline job's deployments      | `JOB#<job id>`                   | `JOB`                         |
| an approval (chalicelib.state.approvals) | `APPROVALS`                   | `APPROVAL#<id>`               |

A service's key is `<cluster>/<service>` in the home account and region (as it
always was, so an existing table carries over unchanged), and
`<account>/<region>/<cluster>/<service>` in any other (chalicelib.core.locations).
A service's lock and its records share a partition, so the history is one
Query and the lock never shows in it. Every item carries its expiry in the
table's TTL attribute `expiresAt` (epoch seconds): a minute for a lock,
HISTORY_DAYS for a record and its pointer, a day for a push claim
(push.EVENT_CLAIM_SECONDS) and a week for a job (pipeline.JOB_MEMORY_SECONDS).
`infra/state-table.yaml` creates the table; STATE_TABLE names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.aws import clients
from chalicelib.core import locations
from chalicelib.core.errors import StateTableMissingError, UpdateError
from chalicelib.core.locations import Location

TTL_ATTRIBUTE = "expiresAt"
LOCK_SORT_KEY = "LOCK"
RECORD_PREFIX = "RECORD#"
POINTER_SORT_KEY = "POINTER"
TEMPLATE = "infra/state-table.yaml"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def service_key(cluster: str, service: str, where: Location | None = None) -> str:
    """`cluster/service` by name, whether the caller gave names or ARNs; `account/region/cluster/service` for a
    service in another account or region (`where`: chalicelib.core.locations)."""
    return locations.service_key(cluster, service, where)


def service_partition(key: str) -> str:
    """The partition of a service's lock and records."""
    return f"SERVICE#{key}"


def deployment_partition(deployment_id: str, where: Location | None = None) -> str:
    """The partition of the pointer from an ECS deployment id to its record: `DEPLOYMENT#<id>` at home,
    `DEPLOYMENT#<account>/<region>/<id>` elsewhere (ECS's ids are unique within an account and region)."""
    return (
        f"DEPLOYMENT#{deployment_id}" if where is None else f"DEPLOYMENT#{where.account}/{where.region}/{deployment_id}"
    )


def to_item(value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict as a DynamoDB item (None values left out, floats as numbers)."""
    return {key: _serializer.serialize(_for_dynamodb(item)) for key, item in value.items() if item is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict (numbers back to int or float, sets to sorted lists)."""
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


@dataclass(frozen=True)
class StateTable:
    """The table and the client that reaches it."""

    client: Any
    name: str

    def call(
        self, operation: str, known: Mapping[str, Callable[[str], UpdateError]] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """One DynamoDB call on this table; a missing table is StateTableMissingError (502) naming it."""
        method = getattr(self.client, _snake(operation))
        return clients.call(method, operation, {"ResourceNotFoundException": self._missing, **(known or {})}, **kwargs)

    def every_item(self, partition: str, prefix: str) -> list[dict[str, Any]]:
        """Every item of `partition` whose sort key begins with `prefix`, page after page (plain values)."""
        found: list[dict[str, Any]] = []
        start: Mapping[str, Any] | None = None
        while True:
            arguments: dict[str, Any] = {
                "TableName": self.name,
                "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                "ExpressionAttributeValues": to_item({":pk": partition, ":prefix": prefix}),
                "ConsistentRead": True,
            }
            if start:
                arguments["ExclusiveStartKey"] = dict(start)
            page = self.call("Query", **arguments)
            found += [from_item(item) for item in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def records_page(self, partition: str, limit: int, start: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One Query page of the deployment records in a service's partition, newest first (raw items)."""
        arguments: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :records)",
            "ExpressionAttributeValues": to_item({":pk": partition, ":records": RECORD_PREFIX}),
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": limit,
        }
        if start:
            arguments["ExclusiveStartKey"] = dict(start)
        return self.call("Query", **arguments)

    def _missing(self, _message: str) -> UpdateError:
        return StateTableMissingError(
            f"the state table '{self.name}' (STATE_TABLE) does not exist in this account and region; "
            f"deploy {TEMPLATE} to create it"
        )


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _for_dynamodb(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _for_dynamodb(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_for_dynamodb(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value
