"""Go back to an earlier revision: `POST /rollback`.

Without a target, the service goes back to the revision it ran before the last
`/update`, which that update recorded in the `previous-task-definition` tag of
the revision it registered. No revision is registered; at most four ECS calls:
DescribeServices, DescribeTaskDefinition (running, with tags),
DescribeTaskDefinition (target), UpdateService (and the two DynamoDB calls of
the lock and its record). Every check happens before the
one write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.aws import accounts, budget, ecs
from chalicelib.core import taskdef
from chalicelib.core.errors import (
    InvalidRequestError,
    NothingToRollBackToError,
    RevisionNotActiveError,
    ServiceNotUpdatableError,
)
from chalicelib.core.requests import RollbackRequest
from chalicelib.core.results import ChangeResult, ContainerChange, deployment_running
from chalicelib.deploy.verify import ServiceChange, Verified, Verifier
from chalicelib.state import approvals
from chalicelib.state.lock import NO_LOCKS, Locks
from chalicelib.state.table import service_key


def roll_back(
    client: Any,
    request: RollbackRequest,
    locks: Locks = NO_LOCKS,
    allow_image: Callable[[str], None] = lambda _image: None,
    provenance: Provenance | None = None,
    verifier: Verifier | None = None,
) -> ChangeResult:
    """Point the service at the target revision; same result shape as an update.

    The service's lock is held from before the service is read, and its release
    records the rollback; `allow_image` raises for an image the rollback would
    change a container to that the allowlists refuse.
    """
    if request.dry_run:  # what it would do, every check made; nothing locked, recorded or written
        with budget.within(budget.MAIN_SECONDS):
            return _roll_back_checked(client, request, allow_image, verifier)
    key = service_key(request.cluster, request.service, accounts.where_of(request.cluster, request.service))
    with (
        budget.within(budget.MAIN_SECONDS),
        locks.hold([key], provenance or Provenance("rollback")) as held,
    ):
        result = _roll_back_checked(client, request, allow_image, verifier)
        held.succeeded(key, result)
        return result


def _check_going_back(service: dict[str, Any], target: dict[str, Any], previous: str | None) -> None:
    """A service that requires approval rolls back, unapproved, only to the revision it ran before: any other
    revision of its family (one registered for another service of the family, say) is a change to approve."""
    if previous is not None and target["taskDefinitionArn"] in (previous, _arn_of(previous, target)):
        return
    raise ServiceNotUpdatableError(
        f"service '{service.get('serviceName')}' requires approval for its changes: without one it rolls back only "
        f"to the revision it ran before ({previous or 'none is named'}); deploy "
        f"{taskdef.revision_label(target)} through /update, which asks for the approval"
    )


def _arn_of(name: str, target: dict[str, Any]) -> str:
    """`family:revision` as the full ARN of the target's account and region (a tag may hold either)."""
    return name if name.startswith("arn:") else target["taskDefinitionArn"].rsplit("/", 1)[0] + "/" + name


def _roll_back_checked(
    client: Any, request: RollbackRequest, allow_image: Callable[[str], None], verifier: Verifier | None
) -> ChangeResult:
    service = ecs.describe_service(client, request.cluster, request.service)
    ecs.check_updatable(service)
    running, tags = ecs.describe_task_definition(client, service["taskDefinition"])
    target_name = request.task_definition or taskdef.tag_value(tags, taskdef.PREVIOUS_TASK_DEFINITION_TAG)
    if target_name is None:
        raise NothingToRollBackToError(
            f"revision {taskdef.revision_label(running)} was not registered by /update, so it names no "
            "previous revision; give 'taskDefinition' to choose one"
        )
    previous = taskdef.tag_value(tags, taskdef.PREVIOUS_TASK_DEFINITION_TAG)
    target, _target_tags = ecs.describe_task_definition(client, target_name)
    if request.task_definition and approvals.requirement_of(service).required:
        _check_going_back(service, target, previous)
    if target["taskDefinitionArn"] == running["taskDefinitionArn"]:
        return ChangeResult.of(False, service, running, None, [], None, dry_run=request.dry_run)
    if target["family"] != running["family"]:
        raise InvalidRequestError(
            f"'taskDefinition' {taskdef.revision_label(target)} is not of the service's family '{running['family']}'"
        )
    if target.get("status") != "ACTIVE":
        raise RevisionNotActiveError(
            f"revision {taskdef.revision_label(target)} is {target.get('status')}, not ACTIVE; "
            "ECS cannot start new tasks from it"
        )
    running_images = taskdef.container_images(running)
    for name, image in taskdef.container_images(target).items():
        if running_images.get(name) != image:  # only what the rollback changes
            allow_image(image)
    target_images = taskdef.container_images(target)
    changed = {name: image for name, image in target_images.items() if running_images.get(name) != image}
    verified = Verified()
    if verifier is not None:
        [verified] = verifier.verify([ServiceChange.of(service["serviceName"], target, changed, running)])
    changes = [
        ContainerChange(name, running_images.get(name, ""), image, verified.digests.get(name))
        for name, image in changed.items()
    ]
    if request.dry_run:
        result = ChangeResult.of(True, service, target, running, changes, None, dry_run=True)
        return replace(
            result,
            # What differs between the two revisions, as registered (not ECS's own fields, not the audit tags).
            diff=taskdef.diff(taskdef.registration_input(running, []), taskdef.registration_input(target, [])),
            warnings=verified.warnings,
            verification=[check.as_dict() for check in verified.checks],
        )
    updated = ecs.update_service(client, service["clusterArn"], service["serviceArn"], target["taskDefinitionArn"])
    result = ChangeResult.of(
        True, updated, target, running, changes, deployment_running(updated, target["taskDefinitionArn"])
    )
    return replace(result, warnings=verified.warnings)
