"""The audit trail: who registered a revision, from where, when (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chalicelib.results import iso8601

UNKNOWN = "unknown"
# ECS tag values: letters, digits, spaces and + - = . _ : / @, at most 256 characters.
_TAG_VALUE_UNSAFE = re.compile(r"[^A-Za-z0-9 +\-=._:/@]")
_TAG_VALUE_MAX = 256


def audit_tags(request_context: Mapping[str, Any], now: datetime | None = None) -> dict[str, str]:
    """Tags for a revision registered by this request (API Gateway's request context).

    The key's id is recorded, never the key itself.
    """
    identity = request_context.get("identity") or {}
    return {
        "deployed-by-request": _tag_value(request_context.get("requestId")),
        "deployed-by-key": _tag_value(identity.get("apiKeyId")),
        "deployed-from-ip": _tag_value(identity.get("sourceIp")),
        "deployed-at": _tag_value(iso8601(now or datetime.now(UTC))),
    }


def _tag_value(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return UNKNOWN
    return _TAG_VALUE_UNSAFE.sub("_", value.strip())[:_TAG_VALUE_MAX]
