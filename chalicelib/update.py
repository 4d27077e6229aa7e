"""Roll an ECS service onto a new image: the `/update` capability.

A change costs four AWS calls (DescribeServices, DescribeTaskDefinition,
RegisterTaskDefinition, UpdateService), a no-op or a dry run two, a forced
redeploy three. The new revision is a faithful copy of the one the service runs
now, with only the images changed, tagged with the revision it replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import aws, ecs, taskdef
from chalicelib.audit import Provenance
from chalicelib.errors import AwsCallError, UpdateError
from chalicelib.images import ImageReference
from chalicelib.lock import NO_LOCKS, Locks
from chalicelib.results import (
    ChangeResult,
    ContainerChange,
    TaskDefinitionSummary,
    cluster_name_of,
    deployment_running,
    revision_of,
)
from chalicelib.state import service_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateRequest:
    """A validated `/update` request.

    Either `image` (with an optional `container`) or `images`, a map of container
    name to image, says what to change.
    """

    cluster: str
    service: str
    image: ImageReference | None = None
    container: str | None = None
    images: Mapping[str, ImageReference] | None = None
    force_new_deployment: bool = False
    dry_run: bool = False


def update_image(
    client: Any,
    request: UpdateRequest,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
) -> ChangeResult:
    """Roll the service onto the requested images; see the module docstring for the calls made.

    The service's lock (see chalicelib.lock) is held from before the service is
    read until the end, and its release records the change; a dry run never
    takes it. `provenance` says who asked: its audit tags go on the new revision.
    """
    audit_tags = provenance.tags() if provenance else {}
    with aws.time_budget(aws.MAIN_BUDGET_SECONDS):
        if request.dry_run:
            return _update_under_lock(client, request, audit_tags)
        key = service_key(request.cluster, request.service)
        with locks.hold(
            [key], provenance or Provenance("update"), force_new_deployment=request.force_new_deployment
        ) as held:
            result = _update_under_lock(client, request, audit_tags)
            held.succeeded(key, result)
            return result


def _update_under_lock(client: Any, request: UpdateRequest, audit_tags: Mapping[str, str]) -> ChangeResult:
    service = ecs.describe_service(client, request.cluster, request.service)
    ecs.check_updatable(service)
    current, tags = ecs.describe_task_definition(client, service["taskDefinition"])

    targets = _targets(current, request)
    images = taskdef.container_images(current)
    if all(taskdef.is_same_image(images[name], image) for name, image in targets.items()):
        unchanged = [ContainerChange(name, images[name], images[name]) for name in targets]
        if request.force_new_deployment and not request.dry_run:
            redeployed = ecs.update_service(
                client, service["clusterArn"], service["serviceArn"], force_new_deployment=True
            )
            deployment = deployment_running(redeployed, redeployed["taskDefinition"])
            return ChangeResult.of(False, redeployed, current, None, unchanged, deployment)
        return ChangeResult.of(False, service, current, None, unchanged, None, dry_run=request.dry_run)

    wanted = {name: str(image) for name, image in targets.items()}
    copied = taskdef.registration_input(current, tags)
    registration = taskdef.with_images(copied, wanted)
    changes = [ContainerChange(name, images[name], wanted[name]) for name in targets]
    if request.dry_run:
        proposed = TaskDefinitionSummary(None, current["family"], None)
        return ChangeResult(
            changed=True,
            cluster=cluster_name_of(service),
            service=service["serviceName"],
            task_definition=proposed,
            previous_task_definition=TaskDefinitionSummary.of(current),
            containers=changes,
            deployment=None,
            service_status=service.get("status", "UNKNOWN"),
            dry_run=True,
            diff=taskdef.diff(copied, registration),
        )

    tagged = taskdef.with_tag(registration, taskdef.PREVIOUS_TASK_DEFINITION_TAG, taskdef.tag_reference(current))
    for key, value in audit_tags.items():
        tagged = taskdef.with_tag(tagged, key, value)
    taskdef.check_tag_count(tagged)
    registered = ecs.register_task_definition(client, tagged)
    try:
        updated = ecs.update_service(
            client, service["clusterArn"], service["serviceArn"], registered["taskDefinitionArn"]
        )
    except UpdateError as failure:
        updated = _settle_failed_update(client, failure, service, registered)

    deployment = deployment_running(updated, registered["taskDefinitionArn"])
    return ChangeResult.of(True, updated, registered, current, changes, deployment)


def _targets(current: Mapping[str, Any], request: UpdateRequest) -> dict[str, ImageReference]:
    """Container name to the image it should run."""
    if request.images is not None:
        taskdef.require_containers(current, list(request.images))
        return dict(request.images)
    assert request.image is not None, "validation gives either image or images"
    names = taskdef.choose_containers(current, request.image, request.container)
    return dict.fromkeys(names, request.image)


def _settle_failed_update(
    client: Any, failure: UpdateError, service: Mapping[str, Any], registered: Mapping[str, Any]
) -> dict[str, Any]:
    """After UpdateService failed: leave no orphan revision, and never report a false outcome.

    A timeout or a 5xx may hide an update that did take effect, so the service
    is read again first. If it runs the new revision, that is the result. If it
    does not, the new revision is deregistered. If the service cannot be read,
    the revision is left registered rather than risk deregistering one in use.
    """
    new_arn = registered["taskDefinitionArn"]
    label = taskdef.revision_label(registered)
    with aws.time_budget(aws.CLEANUP_BUDGET_SECONDS):
        try:
            now = ecs.describe_service(client, service["clusterArn"], service["serviceArn"])
        except UpdateError as unreadable:
            note = (
                f"could not check whether the service took revision {label} ({unreadable.message}), "
                "so it was left registered; deregister it if the service does not run it"
            )
            raise _with_note(failure, note) from failure
        if now.get("taskDefinition") == new_arn:
            logger.warning("UpdateService reported %s but the service runs %s", failure.message, new_arn)
            return now
        try:
            ecs.deregister_task_definition(client, new_arn)
            checked = taskdef.revision_label(revision_of(now.get("taskDefinition", "")))
            note = (
                f"the new revision {label} was deregistered, so none is left behind; "
                f"the service was still on {checked} when checked"
            )
        except UpdateError as cleanup_failure:
            note = (
                f"the new revision {label} could not be deregistered ({cleanup_failure.message}); deregister it by hand"
            )
    raise _with_note(failure, note) from failure


def _with_note(failure: UpdateError, note: str) -> UpdateError:
    message = f"{failure.message}; {note}"
    if isinstance(failure, AwsCallError):
        return type(failure)(failure.step, message, failure.outcome_unknown)
    return type(failure)(message)
