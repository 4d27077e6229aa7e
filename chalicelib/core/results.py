"""What `/update` and `/rollback` report: values that become the JSON response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.taskdef import FieldChange


@dataclass(frozen=True)
class TaskDefinitionSummary:
    """A revision as a response names it (no ARN or revision yet for one a dry run would register)."""

    arn: str | None
    family: str
    revision: int | None
    status: str | None = None
    registered_at: datetime | None = None

    @classmethod
    def of(cls, task_definition: Mapping[str, Any]) -> TaskDefinitionSummary:
        """Summarise a task definition as ECS describes it."""
        revision = task_definition.get("revision")
        return cls(
            arn=task_definition.get("taskDefinitionArn"),
            family=task_definition["family"],
            revision=int(revision) if revision is not None else None,
            status=task_definition.get("status"),
            registered_at=as_datetime(task_definition.get("registeredAt")),
        )

    def as_reference(self) -> dict[str, Any]:
        """JSON shape naming the revision: arn, family, revision."""
        return {"arn": self.arn, "family": self.family, "revision": self.revision}

    def as_dict(self) -> dict[str, Any]:
        """JSON shape with the revision's status and registration time too."""
        return {**self.as_reference(), "status": self.status, "registeredAt": iso8601(self.registered_at)}


@dataclass(frozen=True)
class ContainerChange:
    """A container a request targets, with its image before and after."""

    name: str
    previous_image: str
    image: str
    digest: str | None = None  # what the image resolved to when it was verified (chalicelib.deploy.verify)

    def as_dict(self) -> dict[str, str | None]:
        """JSON shape."""
        return {"name": self.name, "previousImage": self.previous_image, "image": self.image, "digest": self.digest}


@dataclass(frozen=True)
class ChangeResult:
    """What an update or a rollback did (or, for a dry run, would do)."""

    changed: bool
    cluster: str
    service: str
    task_definition: TaskDefinitionSummary
    previous_task_definition: TaskDefinitionSummary | None
    containers: list[ContainerChange]
    deployment: dict[str, Any] | None
    service_status: str
    dry_run: bool = False
    diff: list[FieldChange] = field(default_factory=list)
    # What the checks before the write could not confirm (VERIFY_IMAGES=warn), and, for a dry run, every check.
    warnings: list[str] = field(default_factory=list)
    verification: list[dict[str, Any]] = field(default_factory=list)
    service_arn: str | None = None  # which account and region the service is in (not in the JSON: the record has it)

    @classmethod
    def of(
        cls,
        changed: bool,
        service: Mapping[str, Any],
        task_definition: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        containers: list[ContainerChange],
        deployment: dict[str, Any] | None,
        dry_run: bool = False,
    ) -> ChangeResult:
        """A result from the service and task definitions as ECS describes them."""
        return cls(
            changed=changed,
            cluster=cluster_name_of(service),
            service=service["serviceName"],
            task_definition=TaskDefinitionSummary.of(task_definition),
            previous_task_definition=TaskDefinitionSummary.of(previous) if previous else None,
            containers=containers,
            deployment=deployment,
            service_status=service.get("status", "UNKNOWN"),
            dry_run=dry_run,
            service_arn=service.get("serviceArn"),
        )

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
            "warnings": list(self.warnings),
        }
        if self.dry_run:
            body["dryRun"] = True
            body["diff"] = [change.as_dict() for change in self.diff]
            body["verification"] = list(self.verification)
        return body


@dataclass(frozen=True)
class FanOutResult:
    """What a request for several services did (or, for a dry run, would do)."""

    cluster: str
    services: list[ChangeResult]
    dry_run: bool = False
    batch_id: str | None = None

    @property
    def changed(self) -> bool:
        """True when any service changed."""
        return any(result.changed for result in self.services)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the 200 response: each service's /update body, in request order."""
        return {
            "changed": self.changed,
            "cluster": self.cluster,
            "dryRun": self.dry_run,
            "batchId": self.batch_id,
            "services": [result.as_dict() for result in self.services],
        }


def cluster_name_of(service: Mapping[str, Any]) -> str:
    """The cluster name of a described service."""
    return str(service["clusterArn"]).rsplit("/", 1)[-1]


def revision_of(task_definition_arn: str) -> dict[str, Any]:
    """`family` and `revision` from a task definition ARN (`…:task-definition/web:7`) or `web:7`."""
    family, _, revision = task_definition_arn.rsplit("/", 1)[-1].partition(":")
    return {"family": family, "revision": int(revision) if revision.isdigit() else None}


def deployment_running(service: Mapping[str, Any], task_definition_arn: str) -> dict[str, Any] | None:
    """The newest deployment of `service` that runs `task_definition_arn`, or None."""
    candidates = [d for d in service.get("deployments", []) if d.get("taskDefinition") == task_definition_arn]
    if not candidates:
        return None
    newest = max(candidates, key=lambda d: (d.get("status") == "PRIMARY", sortable_time(d.get("createdAt"))))
    return {
        "id": newest.get("id"),
        "status": newest.get("status"),
        "rolloutState": newest.get("rolloutState"),
        "createdAt": iso8601(newest.get("createdAt")),
    }


def iso8601(moment: datetime | str | None) -> str | None:
    """A timestamp as ISO 8601 in UTC (`2026-11-25T10:00:00.000Z`); None stays None."""
    if moment is None or isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_datetime(moment: Any) -> datetime | None:
    """A timestamp as ECS's JSON sends it (epoch seconds) or as botocore parses it, as a datetime."""
    if isinstance(moment, datetime):
        return moment
    if isinstance(moment, (int, float)) and not isinstance(moment, bool):
        return datetime.fromtimestamp(moment, UTC)
    if isinstance(moment, str):
        try:
            return datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def sortable_time(moment: Any) -> float:
    """A timestamp as seconds for ordering; missing ones sort first."""
    return moment.timestamp() if isinstance(moment, datetime) else 0.0
