"""Roll an ECS service onto a new image: the `/update` capability.

A change costs four AWS calls (DescribeServices, DescribeTaskDefinition,
RegisterTaskDefinition, UpdateService) and a no-op two. The new revision is a
faithful copy of the one the service runs now, with only the image changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import aws, ecs, taskdef
from chalicelib.errors import AwsCallError, UpdateError
from chalicelib.images import ImageReference

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateRequest:
    """A validated request: which service, which image, which container."""

    cluster: str
    service: str
    image: ImageReference
    container: str | None = None
    force_new_deployment: bool = False


@dataclass(frozen=True)
class TaskDefinitionSummary:
    """A revision as the response names it."""

    arn: str
    family: str
    revision: int
    status: str | None = None
    registered_at: datetime | None = None

    @classmethod
    def of(cls, task_definition: Mapping[str, Any]) -> TaskDefinitionSummary:
        """Summarise a task definition as ECS describes it."""
        return cls(
            arn=task_definition["taskDefinitionArn"],
            family=task_definition["family"],
            revision=int(task_definition["revision"]),
            status=task_definition.get("status"),
            registered_at=task_definition.get("registeredAt"),
        )

    def as_reference(self) -> dict[str, Any]:
        """JSON shape naming the revision: arn, family, revision."""
        return {"arn": self.arn, "family": self.family, "revision": self.revision}

    def as_dict(self) -> dict[str, Any]:
        """JSON shape with the revision's status and registration time too."""
        return {**self.as_reference(), "status": self.status, "registeredAt": iso8601(self.registered_at)}


@dataclass(frozen=True)
class ContainerChange:
    """A container the request targets, with its image before and after."""

    name: str
    previous_image: str
    image: str

    def as_dict(self) -> dict[str, str]:
        """JSON shape."""
        return {"name": self.name, "previousImage": self.previous_image, "image": self.image}


@dataclass(frozen=True)
class UpdateResult:
    """What an update did, ready to become the response body."""

    changed: bool
    cluster: str
    service: str
    task_definition: TaskDefinitionSummary
    previous_task_definition: TaskDefinitionSummary | None
    containers: list[ContainerChange]
    deployment: dict[str, Any] | None
    service_status: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the 200 response."""
        body: dict[str, Any] = {
            "changed": self.changed,
            "cluster": self.cluster,
            "service": self.service,
            "taskDefinition": self.task_definition.as_dict(),
            "previousTaskDefinition": (
                self.previous_task_definition.as_reference() if self.previous_task_definition else None
            ),
            "containers": [change.as_dict() for change in self.containers],
            "deployment": self.deployment,
            "serviceStatus": self.service_status,
        }
        return body


def update_image(client: Any, request: UpdateRequest) -> UpdateResult:
    """Roll the service onto the requested image; see the module docstring for the calls made."""
    with aws.time_budget(aws.MAIN_BUDGET_SECONDS):
        service = ecs.describe_service(client, request.cluster, request.service)
        ecs.check_updatable(service)
        current, tags = ecs.describe_task_definition(client, service["taskDefinition"])

        targets = taskdef.choose_containers(current, request.image, request.container)
        images = taskdef.container_images(current)
        wanted = str(request.image)
        if all(taskdef.is_same_image(images[name], request.image) for name in targets):
            unchanged = [ContainerChange(name, images[name], images[name]) for name in targets]
            if not request.force_new_deployment:
                return _result(False, service, current, None, unchanged, deployment=None)
            redeployed = ecs.update_service(
                client, service["clusterArn"], service["serviceArn"], force_new_deployment=True
            )
            return _result(
                False,
                redeployed,
                current,
                None,
                unchanged,
                deployment=deployment_running(redeployed, redeployed["taskDefinition"]),
            )

        registration = taskdef.with_images(
            taskdef.registration_input(current, tags, ecs.registrable_fields(client)),
            {name: wanted for name in targets},
        )
        registered = ecs.register_task_definition(client, registration)
        changes = [ContainerChange(name, images[name], wanted) for name in targets]
        try:
            updated = ecs.update_service(
                client, service["clusterArn"], service["serviceArn"], registered["taskDefinitionArn"]
            )
        except UpdateError as failure:
            updated = _settle_failed_update(client, failure, service, registered)

    return _result(
        True,
        updated,
        registered,
        current,
        changes,
        deployment=deployment_running(updated, registered["taskDefinitionArn"]),
    )


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
            note = (
                f"the new revision {label} was deregistered, so none is left behind; the service was "
                f"still on {taskdef.revision_label(_revision_of(now.get('taskDefinition', '')))} when checked"
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


def _revision_of(task_definition_arn: str) -> dict[str, str]:
    """`family` and `revision` from a task definition ARN (`…:task-definition/web:7`)."""
    family, _, revision = task_definition_arn.rsplit("/", 1)[-1].partition(":")
    return {"family": family, "revision": revision}


def deployment_running(service: Mapping[str, Any], task_definition_arn: str) -> dict[str, Any] | None:
    """The newest deployment of `service` that runs `task_definition_arn`, or None."""
    candidates = [d for d in service.get("deployments", []) if d.get("taskDefinition") == task_definition_arn]
    if not candidates:
        return None
    newest = max(candidates, key=lambda d: (d.get("status") == "PRIMARY", _sortable(d.get("createdAt"))))
    return {
        "id": newest.get("id"),
        "status": newest.get("status"),
        "rolloutState": newest.get("rolloutState"),
        "createdAt": iso8601(newest.get("createdAt")),
    }


def _result(
    changed: bool,
    service: Mapping[str, Any],
    task_definition: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    containers: list[ContainerChange],
    deployment: dict[str, Any] | None,
) -> UpdateResult:
    return UpdateResult(
        changed=changed,
        cluster=service["clusterArn"].rsplit("/", 1)[-1],
        service=service["serviceName"],
        task_definition=TaskDefinitionSummary.of(task_definition),
        previous_task_definition=TaskDefinitionSummary.of(previous) if previous else None,
        containers=containers,
        deployment=deployment,
        service_status=service.get("status", "UNKNOWN"),
    )


def iso8601(moment: datetime | str | None) -> str | None:
    """A timestamp as ISO 8601 in UTC (`2026-11-25T10:00:00.000Z`); None stays None."""
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sortable(moment: Any) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else 0.0
