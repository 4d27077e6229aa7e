"""HTTP face of the ECS image updater: routes, request to call to response, one error map."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from chalice import Chalice, Response

from chalicelib import aws, requestlog
from chalicelib.access import AccessPolicy
from chalicelib.audit import audit_tags
from chalicelib.config import load_settings, unsafe_aws_endpoint
from chalicelib.discovery import cluster_services
from chalicelib.errors import (
    AmbiguousContainerError,
    AwsCallError,
    AwsThrottledError,
    AwsTimeoutError,
    ClusterNotFoundError,
    ContainerNotFoundError,
    InvalidRequestError,
    NotAllowedError,
    NothingToRollBackToError,
    RevisionNotActiveError,
    ServiceBusyError,
    ServiceNotFoundError,
    ServiceNotUpdatableError,
    TaskDefinitionNotFoundError,
    UncopyableTaskDefinitionError,
    UpdateError,
)
from chalicelib.lock import lock_key, service_lock
from chalicelib.results import ChangeResult
from chalicelib.rollback import roll_back
from chalicelib.status import service_status
from chalicelib.update import update_image
from chalicelib.validation import (
    parse_json_object,
    parse_rollback_request,
    parse_update_request,
    path_cluster,
    path_service,
)

if load_settings().require_loopback_aws and (problem := unsafe_aws_endpoint()):
    # The local stage must never reach real AWS by accident: refuse to start.
    raise RuntimeError(f"the local stage only runs against an AWS on this machine: {problem}")

app = Chalice(app_name="ecs-image-updater")
app.debug = False
requestlog.configure()
internal_log = logging.getLogger("ecs_image_updater.internal")

MAX_BODY_BYTES = 16 * 1024

# The one map from domain failures to HTTP: (status, Chalice-style error code).
ERROR_STATUS: dict[type[UpdateError], tuple[int, str]] = {
    InvalidRequestError: (400, "BadRequestError"),
    AmbiguousContainerError: (400, "BadRequestError"),
    ClusterNotFoundError: (404, "NotFoundError"),
    ServiceNotFoundError: (404, "NotFoundError"),
    ContainerNotFoundError: (404, "NotFoundError"),
    TaskDefinitionNotFoundError: (404, "NotFoundError"),
    NotAllowedError: (403, "ForbiddenError"),
    ServiceNotUpdatableError: (409, "ConflictError"),
    ServiceBusyError: (409, "ConflictError"),
    RevisionNotActiveError: (409, "ConflictError"),
    NothingToRollBackToError: (409, "ConflictError"),
    AwsThrottledError: (429, "TooManyRequestsError"),
    AwsTimeoutError: (504, "GatewayTimeoutError"),
    AwsCallError: (502, "BadGatewayError"),
    UncopyableTaskDefinitionError: (502, "BadGatewayError"),
}


@app.middleware("http")
def json_answers_say_so(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Chalice's own answers (its 415 for a non-JSON body, its 405) carry JSON without saying so."""
    response = get_response(event)
    if isinstance(response.body, dict) and not any(k.lower() == "content-type" for k in response.headers or {}):
        response.headers = {**(response.headers or {}), "Content-Type": "application/json"}
    return response


@app.route("/update", methods=["POST"], api_key_required=True)
def update() -> Response:
    """Roll a service onto a new image (or preview it with dryRun)."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_update_request(body)
        policy = _policy()
        policy.check_target(request.cluster, request.service)
        for image in [request.image] if request.image is not None else list((request.images or {}).values()):
            policy.check_image(image)
        audit = audit_tags(app.current_request.context or {})
        log.update(audit=audit)
        result = update_image(aws.ecs_client(), request, lock=_lock(request.cluster, request.service), audit_tags=audit)
        return _logged_change(result, log)

    return _respond(handle, reads_body=True)


@app.route("/rollback", methods=["POST"], api_key_required=True)
def rollback() -> Response:
    """Put a service back on an earlier revision of its task definition."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_rollback_request(body)
        policy = _policy()
        policy.check_target(request.cluster, request.service)
        result = roll_back(
            aws.ecs_client(), request, lock=_lock(request.cluster, request.service), allow_image=policy.check_image
        )
        return _logged_change(result, log)

    return _respond(handle, reads_body=True)


@app.route("/services/{cluster}/{service}", methods=["GET"], api_key_required=True)
def service(cluster: str, service: str) -> Response:
    """A service, what it runs, and how its newest deployment is going."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        _policy().check_target(cluster_id, service_id)
        return service_status(aws.ecs_client(), cluster_id, service_id)

    return _respond(handle, reads_body=False)


@app.route("/clusters/{cluster}/services", methods=["GET"], api_key_required=True)
def cluster_services_route(cluster: str) -> Response:
    """Every service of a cluster with what it runs (only the allowed ones)."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        policy = _policy()
        policy.check_cluster(cluster_id)
        return cluster_services(aws.ecs_client(), cluster_id, include=policy.allows_service)

    return _respond(handle, reads_body=False)


def _policy() -> AccessPolicy:
    return AccessPolicy.from_settings(load_settings())


def _lock(cluster: str, service: str) -> AbstractContextManager[None]:
    table = load_settings().lock_table
    return service_lock(aws.dynamodb_client() if table else None, table, lock_key(cluster, service))


def _logged_change(result: ChangeResult, log: dict[str, Any]) -> dict[str, Any]:
    log.update(
        changed=result.changed,
        dryRun=result.dry_run,
        fromRevision=(result.previous_task_definition or result.task_definition).revision,
        toRevision=result.task_definition.revision,
    )
    return result.as_dict()


Handler = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _respond(handle: Handler, *, reads_body: bool) -> Response:
    """Check the key, read the body or path, run `handle`, map errors, and log one line."""
    started = time.monotonic()
    request = app.current_request
    context = request.context or {}
    log: dict[str, Any] = {
        "method": request.method,
        "path": context.get("resourcePath", request.path),
        "requestId": context.get("requestId"),
    }
    try:
        if not _api_key_accepted(request.headers.get("x-api-key")):
            response = _error(403, "ForbiddenError", "a valid x-api-key header is required")
        elif len(request.raw_body or b"") > MAX_BODY_BYTES:
            response = _error(
                413, "RequestEntityTooLargeError", f"the request body is larger than {MAX_BODY_BYTES} bytes"
            )
        elif reads_body and not request.headers.get("content-type"):
            response = _error(400, "BadRequestError", "the Content-Type header is missing; send application/json")
        else:
            arguments = parse_json_object(request.raw_body) if reads_body else dict(request.uri_params or {})
            log.update(cluster=_loggable(arguments.get("cluster")), service=_loggable(arguments.get("service")))
            response = _json(200, handle(arguments, log))
    except UpdateError as failure:
        status, code = _status_of(failure)
        response = _error(status, code, failure.message)
        log["error"] = type(failure).__name__
    except Exception:
        # A bug, not a caller's mistake: keep the trace in the log, out of the response.
        internal_log.exception("unexpected failure")
        response = _error(500, "InternalServerError", "an internal error occurred; it has been logged")
        log["error"] = "InternalError"
    log.update(status=response.status_code, durationMs=round((time.monotonic() - started) * 1000, 1))
    requestlog.log_request(log)
    return response


def _api_key_accepted(presented: str | None) -> bool:
    expected = load_settings().local_api_key
    if expected is None:
        return True  # API Gateway enforces the key in AWS.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def _status_of(failure: UpdateError) -> tuple[int, str]:
    for cls in type(failure).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 502, "BadGatewayError"


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"Code": code, "Message": message})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def _loggable(value: Any) -> str | None:
    return value[:300] if isinstance(value, str) else None
