"""One JSON log line per request: what was asked, what happened, how long it took."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

logger = logging.getLogger("ecs_image_updater.requests")


def configure() -> None:
    """Send request lines to stdout as bare JSON (CloudWatch keeps one event per line)."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def log_request(fields: dict[str, Any]) -> None:
    """Write one request's outcome; `fields` must never hold a credential."""
    logger.info(json.dumps(fields, sort_keys=True, default=str))


def log_event(fields: dict[str, Any]) -> None:
    """Write what one event function invocation did, as one JSON line."""
    logger.info(json.dumps(fields, sort_keys=True, default=str))
