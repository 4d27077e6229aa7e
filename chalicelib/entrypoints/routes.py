"""The HTTP routes: each reads its request, makes one domain call, and answers through `respond`.

Every route but the signed GitHub webhook needs the API key; on a stage with
AUTH_MODE=iam, API Gateway's AWS_IAM authorization (SigV4) too. Both are part
of the template, so AUTH_MODE is read when the app is imported to be packaged.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, IAMAuthorizer, Response

from chalicelib.access import identity, signatures
from chalicelib.access.permissions import APPLY, FREEZE, PUSH, READ, ROLLBACK, UPDATE
from chalicelib.aws import accounts, secrets
from chalicelib.core.config import auth_mode, load_settings
from chalicelib.core.errors import (
    InvalidRequestError,
    NoHistoryError,
    NotAllowedError,
    NotPermittedError,
    PushNotFoundError,
    WebhookNotConfiguredError,
)
from chalicelib.core.locations import Location, cluster_arn_of, name_of, service_key
from chalicelib.core.requests import FanOutRequest
from chalicelib.core.results import ChangeResult
from chalicelib.core.validation import (
    IMAGE_DEFINITIONS_QUERY,
    approval_filter,
    deployment_id,
    history_page,
    parse_json_object,
    parse_push,
    parse_rollback_request,
    parse_update,
    path_approval,
    path_cluster,
    path_deployment,
    path_push_id,
    path_service,
    query_parameters,
)
from chalicelib.core.windows import WindowError, freeze_id, iso, parse_freeze_request
from chalicelib.deploy import approvals as approval_votes
from chalicelib.deploy.descriptions import parse_apply_request, service_description
from chalicelib.deploy.rollback import roll_back
from chalicelib.deploy.update import update_image, update_services
from chalicelib.entrypoints import wiring
from chalicelib.entrypoints.respond import Call, loggable, respond
from chalicelib.follow import overview
from chalicelib.follow.discovery import cluster_services
from chalicelib.follow.history import DEFAULT_LIMIT, MAX_LIMIT, service_history
from chalicelib.follow.status import service_status
from chalicelib.follow.stop import stop_action, stop_deployment
from chalicelib.state import freezes, pushes
from chalicelib.state.lock import Locks
from chalicelib.state.table import StateTable
from chalicelib.triggers import github
from chalicelib.triggers.push import Pusher, PushResult, follow_push, push_id_for

routes = Blueprint(__name__)
# The sign-in every route but /hooks/github asks of its callers: the key, and on an IAM stage a SigV4 signature
# (API Gateway checks both; the local stage, which has no API Gateway, checks them itself in `respond`).
SIGNED_IN: dict[str, Any] = {
    "api_key_required": True,
    "authorizer": IAMAuthorizer() if auth_mode() == "iam" and load_settings().local_api_key is None else None,
}
PUSH_SIGNATURE_HEADER = "x-signature-256"


@routes.route("/update", methods=["POST"], **SIGNED_IN)
def update() -> Response:
    """Roll a service onto a new image (or preview it with dryRun)."""

    def handle(body: Any, call: Call) -> dict[str, Any]:
        request = parse_update(body, _query(IMAGE_DEFINITIONS_QUERY))
        provenance = call.provenance("update")
        call.log.update(audit=provenance.tags())
        if isinstance(request, FanOutRequest):
            target = wiring.reach(request.cluster, *(t.service for t in request.targets))
            call.guard.check_targets(UPDATE, target.location.cluster_arn(request.cluster), request.targets)
            locks = wiring.locks(call.guard, UPDATE)
            batch = update_services(
                target.client("ecs"),
                request,
                locks=locks,
                provenance=provenance,
                verifier=wiring.verifier(target),
                gate=wiring.approval_gate(call.guard, UPDATE),
            )
            call.log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
            call.log.update(changed=batch.changed, dryRun=batch.dry_run)
            if batch.dry_run:
                names = [t.service for t in request.targets]
                return _with_freezes(batch.as_dict(), locks, request.cluster, names, target.where)
            return batch.as_dict()
        target = wiring.reach(request.cluster, request.service)
        cluster_arn = target.location.cluster_arn(request.cluster)
        call.guard.check(UPDATE, cluster_arn, [(request.service, request.change.requested_images())])
        call.log.update(cluster=loggable(request.cluster), service=loggable(request.service))
        locks = wiring.locks(call.guard, UPDATE)
        result = update_image(
            target.client("ecs"),
            request,
            locks=locks,
            provenance=provenance,
            verifier=wiring.verifier(target),
            gate=wiring.approval_gate(call.guard, UPDATE),
        )
        if result.dry_run:
            answer = _logged_change(result, call.log)
            return _with_freezes(answer, locks, request.cluster, [request.service], target.where)
        return _logged_change(result, call.log)

    return respond(routes.current_request, handle, reads_body=True, takes_arrays=True)


@routes.route("/rollback", methods=["POST"], **SIGNED_IN)
def rollback() -> Response:
    """Put a service back on an earlier revision of its task definition."""

    def handle(body: dict[str, Any], call: Call) -> dict[str, Any]:
        request = parse_rollback_request(body)
        target = wiring.reach(request.cluster, request.service)
        cluster_arn = target.location.cluster_arn(request.cluster)
        call.guard.check_target(ROLLBACK, cluster_arn, request.service)
        gate = call.guard.image_gate(ROLLBACK, cluster_arn)
        result = roll_back(
            target.client("ecs"),
            request,
            wiring.locks(call.guard, ROLLBACK),
            allow_image=lambda image: gate(request.service, image),
            provenance=call.provenance("rollback"),
            verifier=wiring.verifier(target),
        )
        return _logged_change(result, call.log)

    return respond(routes.current_request, handle, reads_body=True)


@routes.route("/services", methods=["GET"], **SIGNED_IN)
def services() -> Response:
    """Every service the caller may read in every account and region the stage reaches (`?cluster=` narrows them
    to one cluster): what each runs, how its newest deployment went, what waits for approval."""

    def handle(_params: dict[str, Any], call: Call) -> dict[str, Any]:
        query = _query(("cluster",))
        viewer = overview.Viewer(
            may_read_cluster=lambda cluster_arn: _may_read_cluster(call, cluster_arn),
            may_read=lambda cluster_arn, service: call.guard.allows(READ, cluster_arn, service),
        )
        if "cluster" in query:
            cluster_id = path_cluster(query["cluster"])
            target = wiring.reach(cluster_id)
            cluster_arn = target.location.cluster_arn(cluster_id)
            call.guard.check_cluster(READ, cluster_arn)
            answer = overview.one_cluster(target, cluster_id, viewer, wiring.state_table())
        else:
            answer = overview.everywhere(accounts.everywhere(), viewer, wiring.state_table())
        failed = [f"{place['account']}/{place['region']}" for place in answer["places"] if "error" in place]
        call.log.update(services=len(answer["services"]), placesFailed=failed)
        return answer

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/services/{cluster}/{service}", methods=["GET"], **SIGNED_IN)
def service(cluster: str, service: str) -> Response:
    """A service, what it runs, how its newest deployment is going, and (?deployment=) how a given one went."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        wanted = deployment_id(_query(("deployment",)))
        target = wiring.reach(cluster_id, service_id)
        call.guard.check_target(READ, target.location.cluster_arn(cluster_id), service_id)
        lookup = wiring.record_lookup(wiring.state_table(), target.where)
        return service_status(target.client("ecs"), cluster_id, service_id, wanted, lookup)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/services/{cluster}/{service}/deployments/{deployment}/stop", methods=["POST"], **SIGNED_IN)
def stop(cluster: str, service: str, deployment: str) -> Response:
    """Have ECS stop one deployment (`{"action": "rollback"}`, the default, or `"abort"`); its outcome follows (202)."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        wanted = path_deployment(params["deployment"])
        request = routes.current_request
        _query(())
        body = parse_json_object(request.raw_body) if request.raw_body else {}
        action = stop_action(body)
        target = wiring.reach(cluster_id, service_id)
        call.guard.check_target(UPDATE, target.location.cluster_arn(cluster_id), service_id)
        table = wiring.state_table()
        call.log.update(deploymentId=wanted, action=action)
        return stop_deployment(
            target.client("ecs"),
            table,
            cluster_id,
            service_id,
            wanted,
            action,
            call.principal.id,
            wiring.record_lookup(table, target.where),
        )

    return respond(routes.current_request, handle, reads_body=False, status=202)


@routes.route("/services/{cluster}/{service}/history", methods=["GET"], **SIGNED_IN)
def history(cluster: str, service: str) -> Response:
    """Who deployed what to the service, when, and how it ended; newest first, in pages."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        limit, token = history_page(_query(("limit", "next")), DEFAULT_LIMIT, MAX_LIMIT)
        target = wiring.reach(cluster_id, service_id)
        call.guard.check_target(READ, target.location.cluster_arn(cluster_id), service_id)
        table = wiring.state_table()
        if table is None:
            raise NoHistoryError("this stage keeps no history: its STATE_TABLE is not set")
        return service_history(table, cluster_id, service_id, limit, token)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/services/{cluster}/{service}/description", methods=["GET"], **SIGNED_IN)
def description(cluster: str, service: str) -> Response:
    """What the service runs now, as a description file ready to commit."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        service_id = path_service(params["service"], cluster_id)
        _query(())
        target = wiring.reach(cluster_id, service_id)
        call.guard.check_target(READ, target.location.cluster_arn(cluster_id), service_id)
        described = service_description(target.client("ecs"), cluster_id, service_id)
        # A description of a service elsewhere names its cluster by ARN, so that applying it reaches it again.
        return {**described, "cluster": target.cluster(described["cluster"])}

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/apply", methods=["POST"], **SIGNED_IN)
def apply() -> Response:
    """Make services match their descriptions, all or nothing (the GitOps way)."""

    def handle(body: dict[str, Any], call: Call) -> dict[str, Any]:
        request = parse_apply_request(body)
        target = wiring.reach(request.cluster, *(t.service for t in request.targets))
        cluster_arn = target.location.cluster_arn(request.cluster)
        call.guard.check_targets(APPLY, cluster_arn, request.targets, images=False)
        provenance = call.provenance("apply")
        # Only the images that change are checked (once read): an unchanged export applies as a no-op.
        locks = wiring.locks(call.guard, APPLY)
        batch = update_services(
            target.client("ecs"),
            request,
            locks=locks,
            provenance=provenance,
            allow_image=call.guard.image_gate(APPLY, cluster_arn),
            verifier=wiring.verifier(target),
            gate=wiring.approval_gate(call.guard, APPLY),
        )
        call.log.update(cluster=batch.cluster, services=[r.service for r in batch.services], batchId=batch.batch_id)
        call.log.update(changed=batch.changed, dryRun=batch.dry_run, audit=provenance.tags())
        if batch.dry_run:
            names = [t.service for t in request.targets]
            return _with_freezes(batch.as_dict(), locks, request.cluster, names, target.where)
        return batch.as_dict()

    return respond(routes.current_request, handle, reads_body=True)


@routes.route("/hooks/push", methods=["POST"], **SIGNED_IN)
def push_hook() -> Response:
    """An image was pushed to some registry: decide which services follow it and queue their deployments (202)."""

    def handle(body: dict[str, Any], call: Call) -> dict[str, Any]:
        pushed = parse_push(body)
        return _follow(pushed, call, "hook")

    secret = load_settings().push_webhook_secret
    return respond(
        routes.current_request,
        handle,
        reads_body=True,
        status=202,
        authenticate=(lambda request: _check_signature(request, PUSH_SIGNATURE_HEADER, secret)) if secret else None,
    )


@routes.route(
    "/hooks/github", methods=["POST"], content_types=["application/json", "application/x-www-form-urlencoded"]
)
def github_hook() -> Response:
    """GitHub says a container version was published to GHCR: follow it like a push (202), signed, with no key."""

    def handle(_params: dict[str, Any], call: Call) -> dict[str, Any]:
        request = call.request
        delivery = github.read_delivery(
            request.headers.get(github.EVENT_HEADER), request.raw_body or b"", request.headers.get("content-type")
        )
        call.log.update(githubEvent=loggable(request.headers.get(github.EVENT_HEADER)))
        call.log.update(delivery=loggable(request.headers.get(github.DELIVERY_HEADER)))
        if delivery.push is None:
            call.log.update(ignored=delivery.ignored)
            return {"ignored": delivery.ignored}
        return _follow(delivery.push, call, "github")

    def authenticate(request: Any) -> None:
        secret_id = load_settings().github_webhook_secret
        if secret_id is None:
            raise WebhookNotConfiguredError("this stage takes no GitHub webhooks: its GITHUB_WEBHOOK_SECRET is not set")
        _check_signature(request, github.SIGNATURE_HEADER, secret_id)

    return respond(
        routes.current_request,
        handle,
        reads_body=False,
        status=202,
        principal=identity.Principal.service(identity.GITHUB_WEBHOOK),
        authenticate=authenticate,
    )


@routes.route("/pushes/{push_id}", methods=["GET"], **SIGNED_IN)
def push_route(push_id: str) -> Response:
    """What became of each service a push concerns (those the caller may read): queued, deployed, failed, skipped."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
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
            "services": [
                target.as_dict()
                for target in targets
                if call.guard.allows(READ, cluster_arn_of(target.service_arn), target.service)
            ],
        }

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/clusters/{cluster}/services", methods=["GET"], **SIGNED_IN)
def cluster_services_route(cluster: str) -> Response:
    """Every service of a cluster with what it runs (only those the caller may read)."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster_id = path_cluster(params["cluster"])
        _query(())
        target = wiring.reach(cluster_id)
        cluster_arn = target.location.cluster_arn(cluster_id)
        call.guard.check_cluster(READ, cluster_arn)
        include = lambda service: call.guard.allows(READ, cluster_arn, service)  # noqa: E731 - one use
        return cluster_services(target.client("ecs"), cluster_id, include=include)

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/freezes", methods=["POST"], **SIGNED_IN)
def freeze_create() -> Response:
    """Freeze writes to the services of a scope until a time (`scope: {}`: every service, the emergency stop)."""

    def handle(body: dict[str, Any], call: Call) -> dict[str, Any]:
        try:
            request = parse_freeze_request(body, freezes.now_utc(), freezes.latest_until(), freezes.MAX_NAMES)
        except WindowError as wrong:
            raise InvalidRequestError(str(wrong)) from None
        call.guard.check_freeze(request.scope)
        table = _freeze_table()
        home = wiring.home()
        frozen = freezes.create(
            table, request.scope, home, request.until, request.reason, request.pushes, call.principal.id
        )
        call.log.update(
            freeze=frozen.id, scope=request.scope.as_dict(), until=frozen.as_dict(frozen.created_at)["until"]
        )
        return frozen.as_dict(freezes.now_utc())

    return respond(routes.current_request, handle, reads_body=True, status=201)


@routes.route("/freezes", methods=["GET"], **SIGNED_IN)
def freeze_list() -> Response:
    """The freezes in force and the stage's freeze windows, each saying whether it applies now."""

    def handle(_params: dict[str, Any], call: Call) -> dict[str, Any]:
        _query(())
        _check_may_see_freezes(call)
        moment = freezes.now_utc()
        table = wiring.state_table()
        kept = freezes.listed(table) if table is not None else []
        rules = call.guard.permissions
        return {
            "at": iso(moment),
            "freezes": [freeze.as_dict(moment) for freeze in kept if freeze.active(moment)],
            "windows": [window.as_dict(moment) for window in (rules.windows if rules is not None else ())],
        }

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/freezes/{freeze}", methods=["DELETE"], **SIGNED_IN)
def freeze_delete(freeze: str) -> Response:
    """Lift a freeze before its end (the same `freeze` permission on its whole scope as making it)."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        try:
            wanted = freeze_id(params["freeze"])
        except WindowError as wrong:
            raise InvalidRequestError(str(wrong)) from None
        _query(())
        table = _freeze_table()
        found = freezes.get(table, wanted)
        call.guard.check_freeze(found.scope)
        freezes.lift(table, found)
        call.log.update(freeze=found.id, lifted=True)
        return {**found.as_dict(freezes.now_utc()), "active": False, "liftedBy": call.principal.id}

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/approvals", methods=["GET"], **SIGNED_IN)
def approval_list() -> Response:
    """The approvals the caller may vote on (`?cluster=&service=` narrows them), oldest first."""

    def handle(_params: dict[str, Any], call: Call) -> dict[str, Any]:
        cluster, service = approval_filter(_query(("cluster", "service")))
        found = approval_votes.pending(wiring.approval_table(), call.guard, cluster, service)
        return {"approvals": [approval.as_dict() for approval in found]}

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/approvals/{approval}", methods=["GET"], **SIGNED_IN)
def approval_get(approval: str) -> Response:
    """One approval: what it would deploy, who asked, the votes, how it ended (for whoever may read or approve)."""

    def handle(params: dict[str, Any], call: Call) -> dict[str, Any]:
        wanted = path_approval(params["approval"])
        _query(())
        found = approval_votes.read(wiring.approval_table(), wanted)
        approval_votes.check_may_see(call.guard, found)
        return {**found.as_dict(), "approvers": approval_votes.approvers(call.guard, found)}

    return respond(routes.current_request, handle, reads_body=False)


@routes.route("/approvals/{approval}", methods=["POST"], **SIGNED_IN)
def approval_vote(approval: str) -> Response:
    """Approve or reject (`{"decision": "approve" | "reject", "comment": "…"}`); the N-th approval deploys."""

    def handle(body: dict[str, Any], call: Call) -> dict[str, Any]:
        wanted = path_approval(call.request.uri_params["approval"])
        vote = approval_votes.parse_vote(body)
        call.log.update(approval=wanted, decision=vote.decision)
        answer = approval_votes.vote(
            wiring.approval_table(), wanted, call.guard, vote, wiring.approval_deployer(call.guard)
        )
        call.log.update(status_of_approval=answer["approval"]["status"])
        return answer

    return respond(routes.current_request, handle, reads_body=True)


@routes.route("/whoami", methods=["GET"], **SIGNED_IN)
def whoami() -> Response:
    """The caller's principal and what the stage's rules and allowlists allow it (to understand a 403)."""

    def handle(_params: dict[str, Any], call: Call) -> dict[str, Any]:
        _query(())
        return whoami_answer(call)

    return respond(routes.current_request, handle, reads_body=False)


def whoami_answer(call: Call) -> dict[str, Any]:
    """JSON shape of GET /whoami."""
    guard = call.guard
    ceiling = guard.ceiling
    rules = guard.permissions.rules_of(call.principal.id) if guard.permissions is not None else None
    return {
        **call.principal.as_dict(),
        "permissionsFile": load_settings().permissions_file,
        "rules": [rule.as_dict() for rule in rules] if rules is not None else None,
        "allowlists": {
            "clusters": list(ceiling.clusters) if ceiling.clusters is not None else None,
            "services": list(ceiling.services) if ceiling.services is not None else None,
            "imagePrefixes": list(ceiling.image_prefixes) if ceiling.image_prefixes is not None else None,
            "requireDigest": ceiling.require_digest,
        },
    }


def _follow(pushed: Any, call: Call, source: str) -> dict[str, Any]:
    """Decide, record and queue a push for the caller (the pusher)."""
    wiring.push_queue_name()  # refused before anything is decided on a stage that could not queue the work
    call.guard.check_action(PUSH)
    warnings = wiring.verifier().check_pushed(pushed.image())
    push_id = push_id_for(pushed)
    pusher = Pusher(call.provenance(PUSH), call.guard, source)
    result = follow_push(wiring.push_table(), wiring.enqueue_push_work, pushed, pusher, push_id)
    call.log.update(push=pushed.as_dict(), pushId=push_id, decisions=_decision_counts(result), warnings=warnings)
    return {**result.as_dict(), "warnings": warnings}


def _with_freezes(
    answer: dict[str, Any], locks: Locks, cluster: str, services: list[str], where: Location | None
) -> dict[str, Any]:
    """A dry run's answer, with the freezes that would refuse (or let through) the change it previews."""
    keys = {service_key(cluster, service, where): service for service in services}
    found = freezes.in_force_for(locks.table, locks.freeze_check, list(keys))
    notes = [
        {"service": name_of(keys[key]), **stop.as_dict(), "bypassed": locks.freeze_check.bypass(key)}
        for key, stops in found.items()
        for stop in stops
    ]
    return {**answer, "freezes": notes}


def _freeze_table() -> StateTable:
    table = wiring.state_table()
    if table is None:
        raise NoHistoryError("this stage keeps no freezes: its STATE_TABLE is not set")
    return table


def _check_may_see_freezes(call: Call) -> None:
    """Anyone who may read, or freeze, something may see the freezes (they stop everyone's writes)."""
    try:
        call.guard.check_action(READ)
    except NotPermittedError:
        try:
            call.guard.check_action(FREEZE)
        except NotPermittedError:
            raise NotPermittedError(
                f"principal {call.principal.id} may not see the freezes: no rule gives it read or freeze"
            ) from None


def _may_read_cluster(call: Call, cluster_arn: str) -> bool:
    """True for a cluster inside the allowlists on which some rule gives the caller read."""
    try:
        call.guard.check_cluster(READ, cluster_arn)
    except NotAllowedError:
        return False
    return True


def _check_signature(request: Any, header: str, secret_id: str) -> None:
    signatures.check(header, request.headers.get(header), request.raw_body or b"", secrets.secret_string(secret_id))


def _query(allowed: tuple[str, ...]) -> dict[str, str]:
    return query_parameters(routes.current_request.query_params, allowed)


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
