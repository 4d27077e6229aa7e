"""One way every route answers: who is asking, the body rules, errors mapped to HTTP, and one log line.

A route hands `respond` a function of its arguments (the path parameters, or
the parsed JSON body) and the call (its principal, its log line); `respond`
checks the request first and maps whatever that function raises to one HTTP
answer, never a stack trace.

In AWS, API Gateway has checked the key (and on an IAM stage the signature)
before the function runs. The local stage has no API Gateway: it checks its
one key itself, and with AUTH_MODE=iam the signature too (chalicelib.access.sigv4).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.access import identity, sigv4
from chalicelib.access.audit import Provenance
from chalicelib.access.guard import Guard
from chalicelib.aws import accounts
from chalicelib.core.config import Settings, load_settings
from chalicelib.core.errors import (
    INTERNAL_ERROR_MESSAGE,
    AwsThrottledError,
    ServiceBusyError,
    UpdateError,
    http_status,
)
from chalicelib.core.validation import parse_json_body, parse_json_object, query_parameters
from chalicelib.entrypoints import requestlog, wiring

internal_log = logging.getLogger("ecs_image_updater.internal")

# The largest valid request of any route fits with room: an /apply of 20 services with 10 digest-pinned
# containers each is about 40 KB. The client checks the same number before it sends.
MAX_BODY_BYTES = 256 * 1024
# A busy service's lock is held for seconds; throttling passes as quickly.
RETRY_AFTER_SECONDS = 5


@dataclass
class Call:
    """One request being answered: who asks, and the log line it will leave."""

    request: Request
    principal: identity.Principal
    log: dict[str, Any] = field(default_factory=dict)
    _guard: Guard | None = None

    @property
    def guard(self) -> Guard:
        """What the allowlists and the permissions allow this principal (the file read once per container)."""
        if self._guard is None:
            self._guard = wiring.guard(self.principal)
        return self._guard

    def provenance(self, action: str) -> Provenance:
        """Who asked for a change through `action`, from API Gateway's request context."""
        found = Provenance.of_request(self.request.context or {}, action, self.principal.id)
        if found.key_id is None and self.principal.kind == identity.LOCAL:
            # The local stage checked the key itself: there is no API Gateway key id, but it was the local key.
            return replace(found, key_id="local")
        return found


Handler = Callable[[Any, Call], dict[str, Any]]


def respond(
    request: Request,
    handle: Handler,
    *,
    reads_body: bool,
    takes_arrays: bool = False,
    status: int = 200,
    principal: identity.Principal | None = None,
    authenticate: Callable[[Request], None] | None = None,
) -> Response:
    """Check who asks, read the body or path, run `handle`, map errors, and log one line.

    A route that reads a body takes a JSON object (or, with `takes_arrays`, an
    array too) and no query parameters unless it reads them itself. `status` is
    the answer's status when `handle` succeeds (202 for work that goes on after).
    A route that authenticates its callers itself (a signed webhook) gives its
    fixed `principal`: neither key nor signature is then asked for.
    `authenticate` checks more before the body is read (a webhook's signature);
    it raises UnauthorizedError.
    """
    started = time.monotonic()
    context = request.context or {}
    log: dict[str, Any] = {
        "method": request.method,
        "path": context.get("resourcePath", request.path),
        "requestId": context.get("requestId"),
    }
    try:
        accounts.learn_home(getattr(request, "lambda_context", None))
        settings = load_settings()
        on_local_stage = settings.local_api_key is not None
        named = request.headers.get(identity.LOCAL_PRINCIPAL_HEADER) if on_local_stage else None
        caller = principal or identity.Principal.of_request(context, local=on_local_stage, local_name=named)
        log["principal"] = caller.id
        refusal = None if principal is not None else _sign_in_refused(request, settings)
        if refusal is not None:
            response = error(403, "ForbiddenError", refusal)
        elif len(request.raw_body or b"") > MAX_BODY_BYTES:
            response = error(
                413, "RequestEntityTooLargeError", f"the request body is larger than {MAX_BODY_BYTES} bytes"
            )
        elif reads_body and not request.headers.get("content-type"):
            response = error(400, "BadRequestError", "the Content-Type header is missing; send application/json")
        else:
            if authenticate is not None:
                authenticate(request)
            if reads_body and not takes_arrays:
                query_parameters(request.query_params, ())
            if not reads_body:
                arguments: Any = dict(request.uri_params or {})
            else:
                arguments = parse_json_body(request.raw_body) if takes_arrays else parse_json_object(request.raw_body)
            if isinstance(arguments, dict):
                log.update(cluster=loggable(arguments.get("cluster")), service=loggable(arguments.get("service")))
            response = json_response(status, handle(arguments, Call(request, caller, log)))
    except UpdateError as failure:
        status, code = http_status(failure)
        response = json_response(status, {"Code": code, "Message": failure.message, **failure.details()})
        if isinstance(failure, (ServiceBusyError, AwsThrottledError)):
            # Worth trying again soon, unlike the other 409s and 4xx: say when.
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if status >= 400:  # a 202 (a change that waits for approval) is no error
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


def _sign_in_refused(request: Request, settings: Settings) -> str | None:
    """Why the local stage refuses the request's key or signature; None when it takes them (or in AWS)."""
    expected = settings.local_api_key
    if expected is None:
        return None  # API Gateway checked the key, and on an IAM stage the signature, before the function ran.
    presented = request.headers.get("x-api-key")
    if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
        return "a valid x-api-key header is required"
    if settings.auth_mode != "iam":
        return None
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not (key_id and secret and region):
        return "AUTH_MODE=iam on the local stage needs AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION"
    try:
        sigv4.verify(_signed_request(request), key_id, secret, region)
    except sigv4.SignatureRefused as refused:
        return f"the request's AWS signature is refused: {refused}"
    return None


def _signed_request(request: Request) -> sigv4.SignedRequest:
    event = request.to_original_event()
    context = event.get("requestContext") or {}
    return sigv4.SignedRequest(
        method=request.method,
        path=context.get("path") or event.get("path") or request.path,
        query=event.get("multiValueQueryStringParameters") or {},
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.raw_body or b"",
    )
