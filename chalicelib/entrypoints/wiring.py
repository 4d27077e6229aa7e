"""What the entry points build from the stage's settings: the access policy, the state table, locks, provenance."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.aws import clients, queue
from chalicelib.core.config import Settings, load_settings
from chalicelib.core.errors import NoHistoryError, NoPushQueueError
from chalicelib.follow import outcomes
from chalicelib.state.lock import Locks
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import StateTable


def policy() -> AccessPolicy:
    """The allowlists and digest rule of the stage."""
    return AccessPolicy.from_settings(load_settings())


def state_table(settings: Settings | None = None) -> StateTable | None:
    """The stage's state table, or None when it keeps none."""
    settings = settings or load_settings()
    return StateTable(clients.dynamodb_client(), settings.state_table) if settings.state_table else None


def record_lookup(table: StateTable | None) -> Callable[[str], DeploymentRecord | None]:
    """The record of an ECS deployment id, in `table` (none without one)."""
    return (lambda id_: outcomes.record_of_deployment(table, id_)) if table else (lambda _id: None)


def locks() -> Locks:
    """Where the stage keeps its locks and records."""
    settings = load_settings()
    return Locks(state_table(settings), settings.history_days)


def push_table() -> StateTable:
    """The state table, which a push needs (its followers, its decisions, its claims)."""
    table = state_table()
    if table is None:
        raise NoHistoryError("this stage takes no pushes: its STATE_TABLE is not set")
    return table


def push_queue_name() -> str:
    """The queue a push's work goes on."""
    name = load_settings().push_queue
    if name is None:
        raise NoPushQueueError("this stage takes no pushes: its PUSH_QUEUE is not set")
    return name


def enqueue_push_work(bodies: Sequence[str]) -> None:
    """Put a push's work items on the stage's queue."""
    sqs = clients.sqs_client()
    queue.send(sqs, queue.url_of(sqs, push_queue_name()), bodies)


def provenance(request_context: dict[str, Any], action: str) -> Provenance:
    """Who asked for a change, from API Gateway's request context."""
    found = Provenance.of_request(request_context, action)
    if found.key_id is None and load_settings().local_api_key is not None:
        # The local stage checked the key itself: there is no API Gateway key id, but it was the local key.
        found = replace(found, key_id="local")
    return found
