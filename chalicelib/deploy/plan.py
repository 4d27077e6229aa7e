"""What an update writes, decided from what was read (pure): one plan per service, and the answer it gives.

A plan holds the described service, the revision it runs, which containers
change to which images, and the copy to register. Services with the same
running revision, new images and revision tags share one new revision
(`revision_key`), so K distinct revisions cost K registrations, not N.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.core import taskdef
from chalicelib.core.errors import InvalidRequestError, echo_input
from chalicelib.core.images import ImageReference
from chalicelib.core.requests import ImageChange, Target
from chalicelib.core.results import (
    ChangeResult,
    ContainerChange,
    TaskDefinitionSummary,
    cluster_name_of,
    deployment_running,
)

RevisionKey = tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


@dataclass
class Plan:
    """What the request does to one service, found in the read phase."""

    target: Target
    service: dict[str, Any]
    current: dict[str, Any]
    changes: list[ContainerChange]
    wanted: dict[str, str] = field(default_factory=dict)
    registration: dict[str, Any] | None = None  # the copy to register, for a change
    proposed_diff: list[taskdef.FieldChange] = field(default_factory=list)
    # What verification found (chalicelib.deploy.verify): warnings, and every check for a dry run's answer.
    warnings: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The service's name."""
        return str(self.service["serviceName"])

    @property
    def is_change(self) -> bool:
        """True when a container gets a new image (a new revision is registered)."""
        return bool(self.wanted)

    @property
    def revision_key(self) -> RevisionKey:
        """Services with the same running revision, new images and tags share one new revision."""
        tags = tuple(sorted((self.target.change.revision_tags or {}).items()))
        return self.current["taskDefinitionArn"], tuple(sorted(self.wanted.items())), tags


def plan_service(
    target: Target,
    service: dict[str, Any],
    current: dict[str, Any],
    tags: Sequence[Mapping[str, str]],
    *,
    audit_tags: Mapping[str, str],
    allow_image: Callable[[str, ImageReference], None] | None = None,
    with_diff: bool = False,
) -> Plan:
    """The plan for one described service running `current` (with its `tags`).

    `allow_image` checks each image that would change (given the service as the
    request names it, and the image); `with_diff` (a dry run)
    keeps the fields the new revision would change.
    """
    targets = container_targets(service, current, tags, target.change)
    images = taskdef.container_images(current)
    if all(taskdef.is_same_image(images[name], image) for name, image in targets.items()):
        unchanged = [ContainerChange(name, images[name], images[name]) for name in targets]
        return Plan(target, service, current, unchanged)
    if allow_image is not None:
        for name, image in targets.items():
            if not taskdef.is_same_image(images[name], image):
                allow_image(target.service, image)
    wanted = {name: str(image) for name, image in targets.items()}
    copied = taskdef.registration_input(current, tags)
    registration = taskdef.with_images(taskdef.without_tags(copied, taskdef.IMAGE_BOUND_TAGS), wanted)
    bookkeeping = {
        taskdef.PREVIOUS_TASK_DEFINITION_TAG: taskdef.tag_reference(current),
        **audit_tags,
        **(target.change.revision_tags or {}),
    }
    tagged = taskdef.with_tags(registration, bookkeeping)
    taskdef.check_tag_count(tagged)
    changes = [ContainerChange(name, images[name], wanted[name]) for name in targets]
    proposed = taskdef.diff(copied, registration) if with_diff else []
    return Plan(target, service, current, changes, wanted, tagged, proposed)


def registrations(plans: Sequence[Plan]) -> dict[RevisionKey, dict[str, Any]]:
    """One revision to register per distinct revision key among the plans that change."""
    found: dict[RevisionKey, dict[str, Any]] = {}
    for plan in plans:
        if plan.is_change and plan.registration is not None:
            found.setdefault(plan.revision_key, plan.registration)
    return found


def runs_new(plan: Plan, now: Mapping[str, Any], registered: Mapping[RevisionKey, Mapping[str, Any]]) -> bool:
    """True when the service, as read `now`, runs the revision registered for its plan."""
    if not plan.is_change:
        return False
    return now.get("taskDefinition") == registered[plan.revision_key]["taskDefinitionArn"]


def dry_result(plan: Plan) -> ChangeResult:
    """What a dry run answers for the plan: the revision that would be registered (no ARN yet), its diff, and
    every check verification made."""
    return replace(_dry_result(plan), warnings=list(plan.warnings), verification=list(plan.checks))


def _dry_result(plan: Plan) -> ChangeResult:
    if not plan.is_change:
        return ChangeResult.of(False, plan.service, plan.current, None, plan.changes, None, dry_run=True)
    return ChangeResult(
        changed=True,
        cluster=cluster_name_of(plan.service),
        service=plan.name,
        task_definition=TaskDefinitionSummary(None, plan.current["family"], None),
        previous_task_definition=TaskDefinitionSummary.of(plan.current),
        containers=plan.changes,
        deployment=None,
        service_status=plan.service.get("status", "UNKNOWN"),
        dry_run=True,
        diff=plan.proposed_diff,
    )


def result(
    plan: Plan, registered: Mapping[RevisionKey, dict[str, Any]], updated: dict[str, Any] | None
) -> ChangeResult:
    """What the update answers for the plan, from the revision registered and the service UpdateService returned."""
    return replace(_result(plan, registered, updated), warnings=list(plan.warnings))


def _result(
    plan: Plan, registered: Mapping[RevisionKey, dict[str, Any]], updated: dict[str, Any] | None
) -> ChangeResult:
    if plan.is_change:
        new = registered[plan.revision_key]
        assert updated is not None
        deployment = deployment_running(updated, new["taskDefinitionArn"])
        return ChangeResult.of(True, updated, new, plan.current, plan.changes, deployment)
    if updated is not None:  # a forced redeploy of the running revision
        deployment = deployment_running(updated, updated["taskDefinition"])
        return ChangeResult.of(False, updated, plan.current, None, plan.changes, deployment)
    return ChangeResult.of(False, plan.service, plan.current, None, plan.changes, None)


def container_targets(
    service: Mapping[str, Any], current: Mapping[str, Any], tags: Sequence[Mapping[str, str]], change: ImageChange
) -> dict[str, ImageReference]:
    """Container name to the image it should run."""
    if change.recheck is not None:
        decided = dict(change.recheck(service, current, tags))
        taskdef.require_containers(current, list(decided))
        return decided
    if change.images is not None or change.as_running:
        taskdef.require_containers(current, [*(change.images or {}), *(change.as_running or {})])
        running = taskdef.container_images(current)
        for name, image in (change.as_running or {}).items():
            if running[name] != image:
                raise InvalidRequestError(
                    f"container '{name}': '{echo_input(image)}' is not an image reference with a tag or digest; "
                    f"such a value is only taken back exactly as the container runs it, and it runs "
                    f"'{echo_input(running[name])}'"
                )
        return dict(change.images or {})
    assert change.image is not None, "validation gives either image or images"
    names = taskdef.choose_containers(current, change.image, change.container)
    return dict.fromkeys(names, change.image)
