"""One way every route answers: the key check, the body rules, errors mapped to HTTP, and one log line.

A route hands `respond` a function of its arguments (the path parameters, or
the parsed JSON body) and the log line; `respond` checks the request first and
maps whatever that function raises to one HTTP answer, never a stack trace.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.core.config import load_settings
from chalicelib.core.errors import (
    INTERNAL_ERROR_MESSAGE,
    AwsThrottledError,
    ServiceBusyError,
    UpdateError,
    http_status,
)
from chalicelib.core.validation import parse_json_body, parse_json_object, query_parameters
from chalicelib.entrypoints import requestlog

internal_log = logging.getLogger("ecs_image_updater.internal")

# The largest valid request of any route fits with room: an /apply of 20 services with 10 digest-pinned
# containers each is about 40 KB. The client checks the same number before it sends.
MAX_BODY_BYTES = 256 * 1024
# A busy service's lock is held for seconds; throttling passes as quickly.
RETRY_AFTER_SECONDS = 5

Handler = Callable[[Any, dict[str, Any]], dict[str, Any]]


def respond(
    request: Request, handle: Handler, *, reads_body: bool, takes_arrays: bool = False, status: int = 200
) -> Response:
    """Check the key, read the body or path, run `handle`, map errors, and log one line.

    A route that reads a body takes a JSON object (or, with `takes_arrays`, an
    array too) and no query parameters unless it reads them itself. `status` is
    the answer's status when `handle` succeeds (202 for work that goes on after).
    """
    started = time.monotonic()
    context = request.context or {}
    log: dict[str, Any] = {
        "method": request.method,
        "path": context.get("resourcePath", request.path),
        "requestId": context.get("requestId"),
    }
    try:
        if not _api_key_accepted(request.headers.get("x-api-key")):
            response = error(403, "ForbiddenError", "a valid x-api-key header is required")
        elif len(request.raw_body or b"") > MAX_BODY_BYTES:
            response = error(
                413, "RequestEntityTooLargeError", f"the request body is larger than {MAX_BODY_BYTES} bytes"
            )
        elif reads_body and not request.headers.get("content-type"):
            response = error(400, "BadRequestError", "the Content-Type header is missing; send application/json")
        else:
            if reads_body and not takes_arrays:
                query_parameters(request.query_params, ())
            if not reads_body:
                arguments: Any = dict(request.uri_params or {})
            else:
                arguments = parse_json_body(request.raw_body) if takes_arrays else parse_json_object(request.raw_body)
            if isinstance(arguments, dict):
                log.update(cluster=loggable(arguments.get("cluster")), service=loggable(arguments.get("service")))
            response = json_response(status, handle(arguments, log))
    except UpdateError as failure:
        status, code = http_status(failure)
        response = error(status, code, failure.message)
        if isinstance(failure, (ServiceBusyError, AwsThrottledError)):
            # Worth trying again soon, unlike the other 409s and 4xx: say when.
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        log["error"] = type(failure).__name__
    except Exception:
        # A bug, not a caller's mistake: keep the trace in the log, out of the response.
        internal_log.exception("unexpected failure")
        response = error(500, "InternalServerError", INTERNAL_ERROR_MESSAGE)
        log["error"] = "InternalError"
    log.update(status=response.status_code, durationMs=round((time.monotonic() - started) * 1000, 1))
    requestlog.log_request(log)
    return response


def json_answers_say_so(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """HTTP middleware: Chalice's own answers (its 415 for a non-JSON body, its 405) carry JSON without saying so."""
    response = get_response(event)
    if isinstance(response.body, dict) and not any(k.lower() == "content-type" for k in response.headers or {}):
        response.headers = {**(response.headers or {}), "Content-Type": "application/json"}
    return response


def error(status: int, code: str, message: str) -> Response:
    """An error answer in Chalice's shape: {"Code", "Message"}."""
    return json_response(status, {"Code": code, "Message": message})


def json_response(status: int, body: dict[str, Any]) -> Response:
    """A JSON answer."""
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def loggable(value: Any) -> str | None:
    """A caller's value as the log line may hold it (a string, cut short)."""
    return value[:300] if isinstance(value, str) else None


def _api_key_accepted(presented: str | None) -> bool:
    expected = load_settings().local_api_key
    if expected is None:
        return True  # API Gateway enforces the key in AWS.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
