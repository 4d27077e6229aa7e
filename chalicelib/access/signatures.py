"""Signed webhooks: an HMAC-SHA256 of the raw body with a shared secret, compared in constant time (pure).

GitHub sends `X-Hub-Signature-256: sha256=<hex>`; `POST /hooks/push` takes the
same form in `X-Signature-256` (Harbor's and Quay's relays, a CI step).
"""

from __future__ import annotations

import hashlib
import hmac

from chalicelib.core.errors import UnauthorizedError

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The header value that signs `body` with `secret`: `sha256=<hex HMAC-SHA256>`."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check(header: str, presented: str | None, body: bytes, secret: str) -> None:
    """Refuse (401) a missing signature or one that is not the body's HMAC with `secret`."""
    if not presented:
        raise UnauthorizedError(f"the {header} header is missing: sign the body with the webhook's secret")
    if not presented.strip().startswith(PREFIX):
        raise UnauthorizedError(f"the {header} header must be {PREFIX}<hex HMAC-SHA256 of the body>")
    if not hmac.compare_digest(presented.strip().encode("utf-8"), sign(body, secret).encode("utf-8")):
        raise UnauthorizedError(f"the {header} signature does not match the body")
