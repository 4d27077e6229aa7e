"""The HTTP conversation with the service: JSON in and out, the key in `x-api-key`, failures as exit codes.

The key travels in the `x-api-key` header only, never in a URL. Redirects are
not followed (urllib would send the header on to wherever they point): a 3xx is
a bad answer. A busy service (409 with Retry-After) and throttling (429) mean
that nothing was done: they are tried again, after their Retry-After or a
growing pause, until the command's --timeout runs out, and then end with exit
code 4 ("try again later"). Nothing else is retried here, since a retried
write could act twice. A body larger than the service takes (MAX_BODY_BYTES) is
refused before it is sent. TLS is verified against the system's certificates,
or the CA bundle the configuration names (for TLS-intercepting proxies). With
`--auth iam`, each request (each retry too) is signed with SigV4 as well.
A query is encoded as RFC 3986 has it, the form SigV4 signs.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from ecs_image_updater_cli import __version__
from ecs_image_updater_cli.config import Connection
from ecs_image_updater_cli.exits import (
    BusyError,
    RateLimitedError,
    RefusedError,
    TryAgainLaterError,
    UnavailableError,
)
from ecs_image_updater_cli.signing import Signer

REQUEST_TIMEOUT_SECONDS = 35.0  # API Gateway gives up after 29 s
RETRY_FIRST_PAUSE_SECONDS = 2.0
RETRY_LONGEST_PAUSE_SECONDS = 30.0
DEFAULT_RETRY_SECONDS = 15 * 60.0
# The service's own limit (chalicelib/entrypoints/respond.py); a test keeps the two equal.
MAX_BODY_BYTES = 256 * 1024
USER_AGENT = f"ecs-image-updater-cli/{__version__}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an HTTPError instead of following it with the key."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        """Follow nothing."""
        return None


def path_of(*segments: str) -> str:
    """`/a/b/c` with each segment percent-encoded (a name cannot break out of its place in the path)."""
    return "".join("/" + quote(segment, safe="") for segment in segments)


class ApiClient:
    """Calls to one service with one key; every answer is a JSON object, every failure a CliError."""

    def __init__(
        self,
        connection: Connection,
        sleep: Callable[[float], None] = time.sleep,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._connection = connection
        self._signer = Signer(connection.url, environ or {}) if connection.auth == "iam" else None
        self._sleep = sleep
        self._clock = clock
        self._retry_until = clock() + retry_seconds
        handlers: list[Any] = [_NoRedirects()]
        if connection.ca_bundle is not None:
            handlers.append(urllib.request.HTTPSHandler(context=_tls_context(connection.ca_bundle)))
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET `path` (with `query`), answered with a JSON object."""
        suffix = f"?{urlencode(dict(query), quote_via=quote)}" if query else ""
        return self._trying_again_later("GET", path + suffix, None)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST `body` as JSON to `path`, answered with a JSON object."""
        payload = json.dumps(body).encode("utf-8")
        if len(payload) > MAX_BODY_BYTES:
            raise RefusedError(
                f"the request is {len(payload)} bytes, more than the {MAX_BODY_BYTES} bytes the service takes; "
                "send fewer services or containers at a time"
            )
        return self._trying_again_later("POST", path, payload)

    def _trying_again_later(self, method: str, target: str, payload: bytes | None) -> dict[str, Any]:
        """Send; while the service is busy or throttling, wait its Retry-After (or a growing pause) and send again."""
        pause = RETRY_FIRST_PAUSE_SECONDS
        while True:
            try:
                return self.send(method, target, payload)
            except TryAgainLaterError as later:
                wait = min(later.retry_after if later.retry_after is not None else pause, RETRY_LONGEST_PAUSE_SECONDS)
                if self._clock() + wait > self._retry_until:
                    raise TryAgainLaterError(
                        f"{later.message}; still so when --timeout ran out: try again later",
                        later.retry_after,
                        later.body,
                        later.status,
                    ) from None
                self._sleep(wait)
                pause = min(pause * 2, RETRY_LONGEST_PAUSE_SECONDS)

    def send(self, method: str, target: str, payload: bytes | None) -> dict[str, Any]:
        """One request, no retry: the answer's JSON object, or the CliError that says what went wrong."""
        url = self._connection.url + target
        headers = {"x-api-key": self._connection.api_key, "Accept": "application/json", "User-Agent": USER_AGENT}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if self._signer is not None:
            headers = self._signer.headers(method, url, headers, payload)
        request = urllib.request.Request(url, data=payload, headers=headers, method=method)  # noqa: S310 - http(s) only, checked in config
        where = f"{method} {self._connection.url}{target.split('?', 1)[0]}"
        try:
            with self._opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as answered:
            status, raw = answered.code, _read_quietly(answered)
            raise _failure(where, status, raw, answered.headers) from None
        except (OSError, http.client.HTTPException) as unreachable:
            raise UnavailableError(f"could not reach the service ({where}): {_reason(unreachable)}") from None
        return _json_object(where, status, raw)


def _tls_context(ca_bundle: str) -> ssl.SSLContext:
    """TLS verified against the CA bundle the configuration names (checked to be readable there)."""
    return ssl.create_default_context(cafile=ca_bundle)


def _read_quietly(answer: urllib.error.HTTPError) -> bytes:
    try:
        return answer.read()
    except (OSError, http.client.HTTPException):
        return b""


def _reason(failure: BaseException) -> str:
    cause: object = failure.reason if isinstance(failure, urllib.error.URLError) else failure
    # TimeoutError, and on Python 3.9 socket.timeout, which is not yet an alias of it.
    if isinstance(cause, TimeoutError) or "timed out" in str(cause):
        return f"no answer within {REQUEST_TIMEOUT_SECONDS:.0f} s"
    if isinstance(cause, OSError) and cause.strerror:
        return str(cause.strerror)
    return str(cause) or type(cause).__name__


def _json_object(where: str, status: int, raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnavailableError(f"the service answered {status} to {where} with a body that is not JSON") from None
    if not isinstance(body, dict):
        raise UnavailableError(f"the service answered {status} to {where} with JSON that is not an object")
    return body


def _error_body(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _failure(where: str, status: int, raw: bytes, headers: Any) -> Exception:
    body = _error_body(raw)
    body_fields = body or {}
    # Chalice's errors say {"Code", "Message"}; API Gateway's own (a missing key, a quota) say {"message"}.
    message = body_fields.get("Message") or body_fields.get("message")
    code = body_fields.get("Code")
    said = f"{status} {code}" if isinstance(code, str) else str(status)
    text = str(message) if message else "no message"
    if status == 429:
        return RateLimitedError(f"the service is throttling requests ({said}): {text}", _retry_after(headers), body)
    if status == 409 and _retry_after(headers) is not None:
        return BusyError(f"the service is busy ({said}): {text}", _retry_after(headers), body)
    if 400 <= status < 500:
        return RefusedError(f"the service refused {where} ({said}): {text}", body, status)
    if 300 <= status < 400:
        return UnavailableError(
            f"the service answered {where} with a redirect ({status}); it is not followed, so that the API key "
            "goes nowhere else: check the URL"
        )
    return UnavailableError(f"the service failed {where} ({said}): {text}", body)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
