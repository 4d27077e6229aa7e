"""Who deployed what, when, and did it work: `GET /services/{cluster}/{service}/history`.

One DynamoDB Query per page, newest first, in the service's partition of the
state table. `next` is an opaque token for the following page (null on the
last); it only ever addresses records of the same service.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from chalicelib.aws import accounts
from chalicelib.core.errors import InvalidRequestError
from chalicelib.core.validation import cluster_name
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import RECORD_PREFIX, StateTable, from_item, service_key, service_partition, to_item

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_TOKEN_LENGTH = 1024


def service_history(table: StateTable, cluster: str, service: str, limit: int, token: str | None) -> dict[str, Any]:
    """One page of the service's deployment records, newest first."""
    where = accounts.where_of(cluster, service)
    key = service_key(cluster, service, where)
    partition = service_partition(key)
    start = to_item({"pk": partition, "sk": decode_token(token, key)}) if token is not None else None
    # One more than asked for tells, in the same call, whether a next page exists.
    items = table.records_page(partition, limit + 1, start).get("Items", [])
    page = [DeploymentRecord.from_item(from_item(item)) for item in items[:limit]]
    more = len(items) > limit
    location = where or accounts.home()
    return {
        "cluster": cluster_name(cluster),
        "service": service.rsplit("/", 1)[-1],
        "account": location.account,
        "region": location.region,
        # Records written before accounts were kept are of the home account and region, as their key says.
        "records": [{**record.as_dict(), "account": location.account, "region": location.region} for record in page],
        "next": encode_token(page[-1].sort_key, key) if more and page else None,
    }


def encode_token(sort_key: str, key: str) -> str:
    """The token for the page of service `key`'s history after the record at `sort_key`."""
    return base64.urlsafe_b64encode(json.dumps({"of": key, "after": sort_key}).encode()).decode().rstrip("=")


def decode_token(token: str, key: str) -> str:
    """The sort key a token of service `key`'s history resumes after; InvalidRequestError for any other."""
    problem = InvalidRequestError("'next' is not a token from a previous page of this history")
    if len(token) > MAX_TOKEN_LENGTH:
        raise problem
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise problem from None
    if not isinstance(decoded, dict) or decoded.get("of") != key:
        raise problem
    after = decoded.get("after")
    if not isinstance(after, str) or not after.startswith(RECORD_PREFIX) or len(after) > 300:
        raise problem
    return after
