"""The HTTP routes: each reads its request, makes one domain call, and answers through `respond`."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.aws import clients
from chalicelib.core.errors import NoHistoryError, PushNotFoundError
from chalicelib.core.requests import FanOutRequest
from chalicelib.core.results import ChangeResult
from chalicelib.core.validation import (
    IMAGE_DEFINITIONS_QUERY,
    deployment_id,
    history_page,
    parse_push,
    parse_rollback_request,
    parse_update,
    path_cluster,
    path_push_id,
    path_service,
    query_parameters,
)
from chalicelib.deploy.descriptions import parse_apply_request, service_description
from chalicelib.deploy.rollback import roll_back
from chalicelib.deploy.update import update_image, update_services
from chalicelib.entrypoints import wiring
from chalicelib.entrypoints.respond import loggable, respond
from chalicelib.follow.discovery import cluster_services
from chalicelib.follow.history import DEFAULT_LIMIT, MAX_LIMIT, service_history
from chalicelib.follow.status import service_status
from chalicelib.state import pushes
from chalicelib.triggers.push import Pusher, PushResult, follow_push, push_id_for

routes = Blueprint(__name__)


@routes.route("/update", methods=["POST"], api_key_required=True)
def update() -> Response:
    """Roll a service onto a new image (or preview it with dryRun)."""

    def handle(body: Any, log: dict[str, Any]) -> dict[str, Any]:
        request = parse_update(body, _query(IMAGE_DEFINITIONS_QUERY))
        policy = wiring.policy()
        provenance = _provenance("update")
        log.update(audit=provenance.tags())
        if isinstance(request, FanOutRequest):
            policy.check_targets(request.cluster, request.targets)
            batch = update_services(clients.ecs_client(), request, locks=wiring.locks(), provenance=provenance)
            log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
            log.update(changed=batch.changed, dryRun=batch.dry_run)
            return batch.as_dict()
        policy.check_targets(request.cluster, [request])
        log.update(cluster=loggable(request.cluster), service=loggable(request.service))
        result = update_image(clients.ecs_client(), request, locks=wiring.locks(), provenance=provenance)
        return _logged_change(result, log)

    return respond(routes.current_request, handle, reads_body=True, takes_arrays=True)


@routes.route("/rollback", methods=["POST"], api_key_required=True)
def rollback() -> Response:
    """Put a service back on an earlier revision of its task definition."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_rollback_request(body)
        policy = wiring.policy()
        policy.check_target(request.cluster, request.service)
        result = roll_back(
            clients.ecs_client(),
            request,
            wiring.locks(),
            allow_image=policy.check_image,
            provenance=_provenance("rollback"),
        )
        return _logged_change(result, log)

    return respond(routes.current_request, handle, reads_body=True)


@routes.route("/services/{cluster}/{service}", methods=["GET"], api_key_required=True)
def service(cluster: str, service: str) -> Response:
    """A service, what it runs, how its newest deployment is going, and (?deployment=) how a given one went."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        wanted = deployment_id(_query(("deployment",)))
        wiring.policy().check_target(cluster_id, service_id)
        lookup = wiring.record_lookup(wiring.state_table())
        return service_status(clients.ecs_client(), cluster_id, service_id, wanted, lookup)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/services/{cluster}/{service}/history", methods=["GET"], api_key_required=True)
def history(cluster: str, service: str) -> Response:
    """Who deployed what to the service, when, and how it ended; newest first, in pages."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        limit, token = history_page(_query(("limit", "next")), DEFAULT_LIMIT, MAX_LIMIT)
        wiring.policy().check_target(cluster_id, service_id)
        table = wiring.state_table()
        if table is None:
            raise NoHistoryError("this stage keeps no history: its STATE_TABLE is not set")
        return service_history(table, cluster_id, service_id, limit, token)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/services/{cluster}/{service}/description", methods=["GET"], api_key_required=True)
def description(cluster: str, service: str) -> Response:
    """What the service runs now, as a description file ready to commit."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        _query(())
        wiring.policy().check_target(cluster_id, service_id)
        return service_description(clients.ecs_client(), cluster_id, service_id)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/apply", methods=["POST"], api_key_required=True)
def apply() -> Response:
    """Make services match their descriptions, all or nothing (the GitOps way)."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        request = parse_apply_request(body)
        policy = wiring.policy()
        policy.check_targets(request.cluster, request.targets, images=False)
        provenance = _provenance("apply")
        # Only the images that change are checked (once read): an unchanged export applies as a no-op.
        batch = update_services(
            clients.ecs_client(), request, locks=wiring.locks(), provenance=provenance, allow_image=policy.check_image
        )
        log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
        log.update(changed=batch.changed, dryRun=batch.dry_run, audit=provenance.tags())
        return batch.as_dict()

    return respond(routes.current_request, handle, reads_body=True)


@routes.route("/hooks/push", methods=["POST"], api_key_required=True)
def push_hook() -> Response:
    """An image was pushed to some registry: decide which services follow it and queue their deployments (202)."""

    def handle(body: dict[str, Any], log: dict[str, Any]) -> dict[str, Any]:
        pushed = parse_push(body)
        wiring.push_queue_name()  # refused before anything is decided on a stage that could not queue the work
        push_id = push_id_for(pushed)
        pusher = Pusher(_provenance("push"), wiring.policy(), "hook")
        result = follow_push(wiring.push_table(), wiring.enqueue_push_work, pushed, pusher, push_id)
        log.update(push=pushed.as_dict(), pushId=push_id, decisions=_decision_counts(result))
        return result.as_dict()

    return respond(routes.current_request, handle, reads_body=True, status=202)


@routes.route("/pushes/{push_id}", methods=["GET"], api_key_required=True)
def push_route(push_id: str) -> Response:
    """What became of each service a push concerns: queued, deployed, failed or skipped, and why."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        wanted = path_push_id(params["push_id"])
        _query(())
        found = pushes.status(wiring.push_table(), wanted)
        if found is None:
            raise PushNotFoundError(
                f"no push '{wanted}' was recorded (or its record expired after {pushes.PUSH_DAYS} days)"
            )
        header, targets = found
        return {
            "pushId": wanted,
            "repository": header.get("repository"),
            "tag": header.get("tag"),
            "digest": header.get("digest"),
            "at": header.get("at"),
            "services": [target.as_dict() for target in targets],
        }

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/clusters/{cluster}/services", methods=["GET"], api_key_required=True)
def cluster_services_route(cluster: str) -> Response:
    """Every service of a cluster with what it runs (only the allowed ones)."""

    def handle(params: dict[str, Any], _log: dict[str, Any]) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        _query(())
        policy = wiring.policy()
        policy.check_cluster(cluster_id)
        return cluster_services(clients.ecs_client(), cluster_id, include=policy.allows_service)

    return respond(routes.current_request, handle, reads_body=False)


def _query(allowed: tuple[str, ...]) -> dict[str, str]:
    return query_parameters(routes.current_request.query_params, allowed)


def _provenance(action: str) -> Any:
    return wiring.provenance(routes.current_request.context or {}, action)


def _decision_counts(result: PushResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in result.decisions:
        counts[decision.action] = counts.get(decision.action, 0) + 1
    return counts


def _logged_change(result: ChangeResult, log: dict[str, Any]) -> dict[str, Any]:
    log.update(
        changed=result.changed,
        dryRun=result.dry_run,
        fromRevision=(result.previous_task_definition or result.task_definition).revision,
        toRevision=result.task_definition.revision,
        deploymentId=(result.deployment or {}).get("id"),
    )
    return result.as_dict()
