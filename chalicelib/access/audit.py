"""The audit trail: who asked for a change, from where, when (pure).

The same facts go into the tags of every revision registered and into the
deployment record of every change: the principal (chalicelib.access.identity),
the API key's id (never the key), the request and where it came from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.results import iso8601

UNKNOWN = "unknown"
# ECS tag values: letters, digits, spaces and + - = . _ : / @, at most 256 characters.
_TAG_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")
_TAG_VALUE_MAX = 256


@dataclass(frozen=True)
class Provenance:
    """Who asked for a change (`action` says through which entry point) and when."""

    action: str
    request_id: str | None = None
    key_id: str | None = None
    principal: str | None = None
    source_ip: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    batch_id: str | None = None
    # The push a change was made for: {"id", "repository", "tag", "digest"}.
    push: Mapping[str, Any] | None = None
    # The approval a change was deployed by: {"id", "approvedBy"} (chalicelib.state.approvals).
    approval: Mapping[str, Any] | None = None

    @classmethod
    def of_request(
        cls, request_context: Mapping[str, Any], action: str, principal: str, now: datetime | None = None
    ) -> Provenance:
        """From API Gateway's request context, for the request's `principal`."""
        identity = request_context.get("identity") or {}
        return cls(
            action=action,
            request_id=_text(request_context.get("requestId")),
            key_id=_text(identity.get("apiKeyId")),
            principal=principal,
            source_ip=_text(identity.get("sourceIp")),
            at=now or datetime.now(UTC),
        )

    def tags(self) -> dict[str, str]:
        """The audit tags of a revision registered for this request."""
        return {
            "deployed-by": _tag_value(self.principal),
            "deployed-by-request": _tag_value(self.request_id),
            "deployed-by-key": _tag_value(self.key_id),
            "deployed-from-ip": _tag_value(self.source_ip),
            "deployed-at": _tag_value(iso8601(self.at)),
        }


def _text(value: Any) -> str | None:
    return value.strip()[:_TAG_VALUE_MAX] if isinstance(value, str) and value.strip() else None


def _tag_value(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return UNKNOWN
    return _TAG_VALUE_UNSAFE.sub("_", value.strip())[:_TAG_VALUE_MAX]
