"""The entry points of the ECS image updater: routes and event functions, each a few lines of wiring."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalice import Chalice, Response
from chalice.app import CloudWatchEvent

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, clients
from chalicelib.core.config import Settings, load_settings, unsafe_aws_endpoint
from chalicelib.core.errors import (
    INTERNAL_ERROR_MESSAGE,
    AwsThrottledError,
    NoHistoryError,
    ServiceBusyError,
    UpdateError,
    http_status,
)
from chalicelib.core.push_policy import Push
from chalicelib.core.requests import FanOutRequest
from chalicelib.core.results import ChangeResult
from chalicelib.core.validation import (
    IMAGE_DEFINITIONS_QUERY,
    deployment_id,
    history_page,
    parse_json_body,
    parse_json_object,
    parse_push,
    parse_rollback_request,
    parse_update,
    path_cluster,
    path_service,
    query_parameters,
)
from chalicelib.deploy.descriptions import parse_apply_request, service_description
from chalicelib.deploy.rollback import roll_back
from chalicelib.deploy.update import update_image, update_services
from chalicelib.entrypoints import requestlog
from chalicelib.follow import outcomes
from chalicelib.follow.discovery import cluster_services
from chalicelib.follow.history import DEFAULT_LIMIT, MAX_LIMIT, service_history
from chalicelib.follow.status import service_status
from chalicelib.state.lock import Locks
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import StateTable
from chalicelib.triggers import pipeline
from chalicelib.triggers.push import Pusher, PushResult, delivery_id, follow_push

if load_settings().require_loopback_aws and (problem := unsafe_aws_endpoint()):
    # The local stage must never reach real AWS by accident: refuse to start.
    raise RuntimeError(f"the local stage only runs against an AWS on this machine: {problem}")

app = Chalice(app_name="ecs-image-updater")
app.debug = False
requestlog.configure()
internal_log = logging.getLogger("ecs_image_updater.internal")

MAX_BODY_BYTES = 16 * 1024
# A busy service's lock is held for seconds; throttling passes as quickly.
RETRY_AFTER_SECONDS = 5
# What ECS sends to EventBridge about each deployment; `chalice deploy` creates the rule.
DEPLOYMENT_EVENTS = {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change"]}
# What ECR sends about each image pushed.
ECR_PUSHES = {
    "source": ["aws.ecr"],
    "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"]},
}
# /hooks/push deploys within the request's budget (letting each lock go gets its own attempt on top).
PUSH_HOOK_SECONDS = budget.MAIN_SECONDS + budget.CLEANUP_SECONDS
# registry_push stops starting updates this long before its Lambda timeout.
PUSH_FUNCTION_MARGIN_SECONDS = 30.0
# pipeline_deploy keeps this long to report to CodePipeline before its Lambda timeout.
PIPELINE_MARGIN_SECONDS = 10.0


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

    def handle(body: Any, log: dict[str, Any]) -> dict[str, Any]:
        request = parse_update(body, _query(IMAGE_DEFINITIONS_QUERY))
        policy = _policy()
        provenance = _provenance("update")
        log.update(audit=provenance.tags())
        if isinstance(request, FanOutRequest):
            policy.check_targets(request.cluster, request.targets)
            batch = update_services(clients.ecs_client(), request, locks=_locks(), provenance=provenance)
            log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
            log.update(changed=batch.changed, dryRun=batch.dry_run)
            return batch.as_dict()
        policy.check_targets(request.cluster, [request])
        log.update(cluster=_loggable(request.cluster), service=_loggable(request.service))
        result = update_image(clients.ecs_client(), request, locks=_locks(), provenance=provenance)
        return _logged_change(result, log)

    return _respond(handle, reads_body=True, takes_arrays=True)


@app.route("/rollback", methods=["POST"], api_key_required=True)
def rollback() -> Response:
    """Put a service back on an earlier revision of its task definition."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_rollback_request(body)
        policy = _policy()
        policy.check_target(request.cluster, request.service)
        result = roll_back(
            clients.ecs_client(), request, _locks(), allow_image=policy.check_image, provenance=_provenance("rollback")
        )
        return _logged_change(result, log)

    return _respond(handle, reads_body=True)


@app.route("/services/{cluster}/{service}", methods=["GET"], api_key_required=True)
def service(cluster: str, service: str) -> Response:
    """A service, what it runs, how its newest deployment is going, and (?deployment=) how a given one went."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        wanted = deployment_id(_query(("deployment",)))
        _policy().check_target(cluster_id, service_id)
        lookup = _record_lookup(_state_table(load_settings()))
        return service_status(clients.ecs_client(), cluster_id, service_id, wanted, lookup)

    return _respond(handle, reads_body=False)


@app.route("/services/{cluster}/{service}/history", methods=["GET"], api_key_required=True)
def history(cluster: str, service: str) -> Response:
    """Who deployed what to the service, when, and how it ended; newest first, in pages."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        limit, token = history_page(_query(("limit", "next")), DEFAULT_LIMIT, MAX_LIMIT)
        _policy().check_target(cluster_id, service_id)
        table = _state_table(load_settings())
        if table is None:
            raise NoHistoryError("this stage keeps no history: its STATE_TABLE is not set")
        return service_history(table, cluster_id, service_id, limit, token)

    return _respond(handle, reads_body=False)


@app.route("/services/{cluster}/{service}/description", methods=["GET"], api_key_required=True)
def description(cluster: str, service: str) -> Response:
    """What the service runs now, as a description file ready to commit."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        _query(())
        _policy().check_target(cluster_id, service_id)
        return service_description(clients.ecs_client(), cluster_id, service_id)

    return _respond(handle, reads_body=False)


@app.route("/apply", methods=["POST"], api_key_required=True)
def apply() -> Response:
    """Make services match their descriptions, all or nothing (the GitOps way)."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_apply_request(body)
        policy = _policy()
        policy.check_targets(request.cluster, request.targets, images=False)
        provenance = _provenance("apply")
        # Only the images that change are checked (once read): an unchanged export applies as a no-op.
        batch = update_services(
            clients.ecs_client(), request, locks=_locks(), provenance=provenance, allow_image=policy.check_image
        )
        log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
        log.update(changed=batch.changed, dryRun=batch.dry_run, audit=provenance.tags())
        return batch.as_dict()

    return _respond(handle, reads_body=True)


@app.route("/hooks/push", methods=["POST"], api_key_required=True)
def push_hook() -> Response:
    """An image was pushed to some registry: roll every service that follows it within its policy."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        pushed = parse_push(body)
        pusher = Pusher(_provenance("push"), _policy(), event_id=delivery_id(pushed))
        with budget.capped(PUSH_HOOK_SECONDS):
            result = follow_push(clients.ecs_client(), clients.tagging_client(), _locks(), pushed, pusher)
        log.update(push=pushed.as_dict(), decisions=_decision_counts(result))
        return result.as_dict()

    return _respond(handle, reads_body=True)


@app.route("/clusters/{cluster}/services", methods=["GET"], api_key_required=True)
def cluster_services_route(cluster: str) -> Response:
    """Every service of a cluster with what it runs (only the allowed ones)."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        _query(())
        policy = _policy()
        policy.check_cluster(cluster_id)
        return cluster_services(clients.ecs_client(), cluster_id, include=policy.allows_service)

    return _respond(handle, reads_body=False)


@app.on_cw_event(DEPLOYMENT_EVENTS, name="deployment_events")
def deployment_events(event: CloudWatchEvent) -> None:
    """Follow a recorded deployment to the outcome ECS reports, and tell the subscribers (SNS)."""
    settings = load_settings()
    table = _state_table(settings)
    try:
        followed = outcomes.DeploymentEvent.parse(event.to_dict())
    except ValueError as unreadable:
        requestlog.log_event({"function": "deployment_events", "ignored": str(unreadable)})
        return
    if table is None:
        requestlog.log_event({"function": "deployment_events", "ignored": "STATE_TABLE is not set"})
        return
    topic = settings.notify_topic_arn
    try:
        done = outcomes.follow(table, clients.sns_client() if topic else None, topic, followed)
    except UpdateError as failure:
        # Failing the invocation makes Lambda deliver the event again; the retry sends only what is owed.
        requestlog.log_event({"function": "deployment_events", "event": followed.event_id, "error": failure.message})
        raise
    requestlog.log_event({"function": "deployment_events", **done.as_dict()})


@app.on_cw_event(ECR_PUSHES, name="registry_push")
def registry_push(event: CloudWatchEvent) -> None:
    """An image was pushed to ECR: roll every service that follows the repository within its policy."""
    raw = event.to_dict()
    try:
        pushed = Push.of_ecr_event(raw)
    except ValueError as unreadable:
        requestlog.log_event({"function": "registry_push", "event": raw.get("id"), "ignored": str(unreadable)})
        return
    provenance = Provenance("push", request_id=str(raw.get("id")), key_id="registry-push")
    pusher = Pusher(provenance, _policy(), event_id=str(raw.get("id")))
    left = event.context.get_remaining_time_in_millis() / 1000 if event.context else 300.0
    with budget.capped(max(left - PUSH_FUNCTION_MARGIN_SECONDS, 0.0)):
        result = follow_push(clients.ecs_client(), clients.tagging_client(), _locks(), pushed, pusher)
    requestlog.log_event({"function": "registry_push", "event": raw.get("id"), **result.as_dict()})


@app.lambda_function(name="pipeline_deploy")
def pipeline_deploy(event: dict[str, Any], context: Any) -> None:
    """A CodePipeline Invoke action: deploy the job's artifact, follow the outcome, report to CodePipeline."""
    services = pipeline.Services(
        ecs=clients.ecs_client(),
        codepipeline=clients.codepipeline_client(),
        locks=_locks(),
        access=_policy(),
        artifact_client=clients.artifact_client,
        record_of=_record_lookup(_state_table(load_settings())),
    )
    left = context.get_remaining_time_in_millis() / 1000 if context else 60.0
    with budget.capped(max(left - PIPELINE_MARGIN_SECONDS, 1.0)):
        report = pipeline.run_job(event, services)
    job = (event.get("CodePipeline.job") or {}).get("id") if isinstance(event, dict) else None
    requestlog.log_event({"function": "pipeline_deploy", "job": job, **(report.as_dict() if report else {})})


def _decision_counts(result: PushResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in result.decisions:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return counts


def _policy() -> AccessPolicy:
    return AccessPolicy.from_settings(load_settings())


def _state_table(settings: Settings) -> StateTable | None:
    return StateTable(clients.dynamodb_client(), settings.state_table) if settings.state_table else None


def _record_lookup(table: StateTable | None) -> Callable[[str], DeploymentRecord | None]:
    """The record of an ECS deployment id, in `table` (none without one)."""
    return (lambda id_: outcomes.record_of_deployment(table, id_)) if table else (lambda _id: None)


def _locks() -> Locks:
    settings = load_settings()
    return Locks(_state_table(settings), settings.history_days)


def _provenance(action: str) -> Provenance:
    provenance = Provenance.of_request(app.current_request.context or {}, action)
    if provenance.key_id is None and load_settings().local_api_key is not None:
        # The local stage checked the key itself: there is no API Gateway key id, but it was the local key.
        provenance = replace(provenance, key_id="local")
    return provenance


def _query(allowed: tuple[str, ...]) -> dict[str, str]:
    return query_parameters(app.current_request.query_params, allowed)


def _logged_change(result: ChangeResult, log: dict[str, Any]) -> dict[str, Any]:
    log.update(
        changed=result.changed,
        dryRun=result.dry_run,
        fromRevision=(result.previous_task_definition or result.task_definition).revision,
        toRevision=result.task_definition.revision,
        deploymentId=(result.deployment or {}).get("id"),
    )
    return result.as_dict()


Handler = Callable[[Any, dict[str, Any]], dict[str, Any]]


def _respond(handle: Handler, *, reads_body: bool, takes_arrays: bool = False) -> Response:
    """Check the key, read the body or path, run `handle`, map errors, and log one line.

    A route that reads a body takes a JSON object (or, with `takes_arrays`, an
    array too) and no query parameters unless it reads them itself.
    """
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
            if reads_body and not takes_arrays:
                query_parameters(request.query_params, ())
            if not reads_body:
                arguments: Any = dict(request.uri_params or {})
            else:
                arguments = parse_json_body(request.raw_body) if takes_arrays else parse_json_object(request.raw_body)
            if isinstance(arguments, dict):
                log.update(cluster=_loggable(arguments.get("cluster")), service=_loggable(arguments.get("service")))
            response = _json(200, handle(arguments, log))
    except UpdateError as failure:
        status, code = http_status(failure)
        response = _error(status, code, failure.message)
        if isinstance(failure, (ServiceBusyError, AwsThrottledError)):
            # Worth trying again soon, unlike the other 409s and 4xx: say when.
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        log["error"] = type(failure).__name__
    except Exception:
        # A bug, not a caller's mistake: keep the trace in the log, out of the response.
        internal_log.exception("unexpected failure")
        response = _error(500, "InternalServerError", INTERNAL_ERROR_MESSAGE)
        log["error"] = "InternalError"
    log.update(status=response.status_code, durationMs=round((time.monotonic() - started) * 1000, 1))
    requestlog.log_request(log)
    return response


def _api_key_accepted(presented: str | None) -> bool:
    expected = load_settings().local_api_key
    if expected is None:
        return True  # API Gateway enforces the key in AWS.
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"Code": code, "Message": message})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def _loggable(value: Any) -> str | None:
    return value[:300] if isinstance(value, str) else None
