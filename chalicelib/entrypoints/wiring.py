"""What the entry points build from the stage's settings: the access policy, the state table, locks, provenance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.aws import clients
from chalicelib.core.config import Settings, load_settings
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


def provenance(request_context: dict[str, Any], action: str) -> Provenance:
    """Who asked for a change, from API Gateway's request context."""
    found = Provenance.of_request(request_context, action)
    if found.key_id is None and load_settings().local_api_key is not None:
        # The local stage checked the key itself: there is no API Gateway key id, but it was the local key.
        found = replace(found, key_id="local")
    return found
