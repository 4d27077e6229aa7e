"""Roll services onto new images, one or many in one request, all or nothing: the one update path.

`/update` (one service or `services`), `/apply`, a registry push and a pipeline
job all come here: one lock set, one record per service, one audit. For N
services on K distinct running task definitions, of which K' change:

1. take every service's lock together (one DynamoDB call, see chalicelib.lock);
2. read everything first: DescribeServices in batches of 10 and one
   DescribeTaskDefinition per distinct running revision, at once. Every check
   runs here (missing, not ACTIVE or not ECS-controlled, no container to
   choose); any failure names the service and nothing is written;
3. write, at once: one RegisterTaskDefinition per distinct revision that changes
   (services on the same revision share the new one), then one UpdateService per
   service that changes;
4. if a write fails, check the failed ones (a timeout can hide a success), put
   back every service moved, deregister every new revision no service is
   left on, and answer the failure, saying what was put back and what is left;
5. let the locks go and write one record per service, in one transaction.

So a change of one service costs four ECS calls (DescribeServices,
DescribeTaskDefinition, RegisterTaskDefinition, UpdateService), a no-op or a dry
run two, a forced redeploy three. The new revision is a faithful copy of the one
the service runs now, with only the images changed, tagged with the revision it
replaced.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, ecs, parallel
from chalicelib.core import taskdef
from chalicelib.core.errors import (
    AwsCallError,
    InvalidRequestError,
    ServiceChangedError,
    ServiceNotFoundError,
    UpdateError,
    echo_input,
)
from chalicelib.core.images import ImageReference
from chalicelib.core.requests import FanOutRequest, ImageChange, Target, UpdateRequest
from chalicelib.core.results import (
    ChangeResult,
    ContainerChange,
    FanOutResult,
    TaskDefinitionSummary,
    cluster_name_of,
    deployment_running,
    revision_of,
)
from chalicelib.state.lock import NO_LOCKS, Locks
from chalicelib.state.table import service_key

logger = logging.getLogger(__name__)


def update_image(
    client: Any,
    request: UpdateRequest,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
) -> ChangeResult:
    """Roll one service onto the requested images; see the module docstring for the calls made."""
    fan_out = FanOutRequest(
        request.cluster,
        (Target(request.service, request.change),),
        force_new_deployment=request.force_new_deployment,
        dry_run=request.dry_run,
    )
    return _update(client, fan_out, locks, provenance)[0]


def update_target(
    client: Any,
    cluster: str,
    target: Target,
    *,
    force_new_deployment: bool = False,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
) -> ChangeResult:
    """Roll one service onto a change decided elsewhere (a registry push): the same path as `/update`."""
    request = FanOutRequest(cluster, (target,), force_new_deployment=force_new_deployment)
    return _update(client, request, locks, provenance)[0]


def update_services(
    client: Any,
    request: FanOutRequest,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
    allow_image: Callable[[ImageReference], None] | None = None,
) -> FanOutResult:
    """Roll several services onto the requested images together: all of them, or none.

    `allow_image`, when given, checks in the read phase each image that would
    change (a container given the image it runs already is not checked: an
    unchanged description applies whatever the allowlists say of it).
    """
    batch_id = None if request.dry_run else uuid.uuid4().hex
    if provenance is not None:
        provenance = replace(provenance, batch_id=batch_id)
    results = _update(client, request, locks, provenance, batch_id, allow_image)
    return FanOutResult(_cluster_name(request.cluster, results), results, request.dry_run, batch_id)


def _update(
    client: Any,
    request: FanOutRequest,
    locks: Locks,
    provenance: Provenance | None,
    batch_id: str | None = None,
    allow_image: Callable[[ImageReference], None] | None = None,
) -> list[ChangeResult]:
    """The one update path: lock, read, write, undo on failure, record (see the module docstring).

    `provenance` says who asked: its audit tags go on every new revision and its
    identity into every record (none given: no audit tags).
    """
    audit_tags = provenance.tags() if provenance else {}
    who = provenance or Provenance("update", batch_id=batch_id)
    with budget.within(budget.MAIN_SECONDS):
        if request.dry_run:
            return _Rollout(client, request, audit_tags, allow_image).run()
        keys = [service_key(request.cluster, target.service) for target in request.targets]
        with locks.hold(keys, who, force_new_deployment=request.force_new_deployment) as held:
            results = _Rollout(client, request, audit_tags, allow_image).run()
            for key, result in zip(keys, results, strict=True):
                held.succeeded(key, result)
            return results


@dataclass
class _Plan:
    """What the request does to one service, found in the read phase."""

    target: Target
    service: dict[str, Any]
    current: dict[str, Any]
    changes: list[ContainerChange]
    wanted: dict[str, str] = field(default_factory=dict)
    registration: dict[str, Any] | None = None  # the copy to register, for a change
    proposed_diff: list[taskdef.FieldChange] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.service["serviceName"])

    @property
    def is_change(self) -> bool:
        return bool(self.wanted)

    @property
    def revision_key(self) -> tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """Services with the same running revision, new images and tags share one new revision."""
        tags = tuple(sorted((self.target.change.revision_tags or {}).items()))
        return self.current["taskDefinitionArn"], tuple(sorted(self.wanted.items())), tags


class _Rollout:
    """One request's walk through the read and write phases (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        request: FanOutRequest,
        audit_tags: Mapping[str, str],
        allow_image: Callable[[ImageReference], None] | None = None,
    ) -> None:
        self.client = client
        self.request = request
        self.audit_tags = audit_tags
        self.allow_image = allow_image
        self.several = len(request.targets) > 1 or request.name_services

    def run(self) -> list[ChangeResult]:
        plans = self._read()
        if self.request.dry_run:
            return [self._dry_result(plan) for plan in plans]
        registered = self._register(plans)
        return self._move(plans, registered)

    # -- read phase: every check, nothing written --------------------------------------------------

    def _read(self) -> list[_Plan]:
        services = self._describe_services()
        for target in self.request.targets:
            self._named(target.service, lambda target=target: ecs.check_updatable(services[target.service]))
        # Each distinct revision once; a failure names the (first) service that runs it.
        runs = {services[t.service]["taskDefinition"]: t.service for t in reversed(self.request.targets)}
        arns = list(dict.fromkeys(services[target.service]["taskDefinition"] for target in self.request.targets))

        def describe(arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
            return self._named(runs[arn], lambda: self._describe_task_definition(arn))

        described = dict(zip(arns, parallel.values(describe, arns), strict=True))
        return [
            self._named(target.service, lambda target=target: self._plan(target, services[target.service], described))
            for target in self.request.targets
        ]

    def _describe_services(self) -> dict[str, dict[str, Any]]:
        """The described service of each target, by the identifier the request gave."""
        wanted = [target.service for target in self.request.targets]
        if not self.several:
            return {wanted[0]: ecs.describe_service(self.client, self.request.cluster, wanted[0])}
        found = [s for batch in parallel.values(self._describe_batch, ecs.in_batches(wanted)) for s in batch]
        by_identifier = ecs.by_identifier(wanted, found)
        missing = [identifier for identifier in wanted if identifier not in by_identifier]
        if missing:
            names = ", ".join(f"'{identifier.rsplit('/', 1)[-1]}'" for identifier in missing)
            raise ServiceNotFoundError(
                f"service {names} was not found in cluster '{self.request.cluster.rsplit('/', 1)[-1]}'; "
                "nothing was changed"
            )
        return by_identifier

    def _describe_batch(self, batch: list[str]) -> list[dict[str, Any]]:
        return ecs.describe_services(self.client, self.request.cluster, batch)

    def _describe_task_definition(self, arn: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
        return ecs.describe_task_definition(self.client, arn)

    def _plan(
        self,
        target: Target,
        service: dict[str, Any],
        described: Mapping[str, tuple[dict[str, Any], list[dict[str, str]]]],
    ) -> _Plan:
        current, tags = described[service["taskDefinition"]]
        targets = _targets(current, target.change)
        images = taskdef.container_images(current)
        if all(taskdef.is_same_image(images[name], image) for name, image in targets.items()):
            unchanged = [ContainerChange(name, images[name], images[name]) for name in targets]
            return _Plan(target, service, current, unchanged)
        if self.allow_image is not None:
            for name, image in targets.items():
                if not taskdef.is_same_image(images[name], image):
                    self.allow_image(image)
        wanted = {name: str(image) for name, image in targets.items()}
        copied = taskdef.registration_input(current, tags)
        registration = taskdef.with_images(taskdef.without_tags(copied, taskdef.IMAGE_BOUND_TAGS), wanted)
        bookkeeping = {
            taskdef.PREVIOUS_TASK_DEFINITION_TAG: taskdef.tag_reference(current),
            **self.audit_tags,
            **(target.change.revision_tags or {}),
        }
        tagged = taskdef.with_tags(registration, bookkeeping)
        taskdef.check_tag_count(tagged)
        changes = [ContainerChange(name, images[name], wanted[name]) for name in targets]
        proposed = taskdef.diff(copied, registration) if self.request.dry_run else []
        return _Plan(target, service, current, changes, wanted, tagged, proposed)

    def _named(self, service: str, step: Any) -> Any:
        """Run a check for one service; with several services, its failure names the service."""
        try:
            return step()
        except UpdateError as failure:
            if not self.several:
                raise
            raise _prefixed(failure, f"service '{service.rsplit('/', 1)[-1]}': ") from failure

    def _dry_result(self, plan: _Plan) -> ChangeResult:
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

    # -- write phase ------------------------------------------------------------------------------

    def _register(self, plans: Sequence[_Plan]) -> dict[tuple[str, Any], dict[str, Any]]:
        """One new revision per distinct (running revision, new images); all of them, or none left."""
        registrations: dict[tuple[str, Any], dict[str, Any]] = {}
        for plan in plans:
            if plan.is_change and plan.registration is not None:
                registrations.setdefault(plan.revision_key, plan.registration)
        keys = list(registrations)
        outcomes = parallel.each(lambda key: ecs.register_task_definition(self.client, registrations[key]), keys)
        failed = [outcome for outcome in outcomes if outcome.error is not None]
        registered = {o.item: o.value for o in outcomes if o.error is None and o.value is not None}
        if not failed:
            return registered
        first = failed[0].error
        assert first is not None
        with budget.within(budget.CLEANUP_SECONDS):
            notes = self._deregister(list(registered.values()))
        if not isinstance(first, UpdateError):
            raise first
        affected = [plan.name for plan in plans if plan.is_change and plan.revision_key == failed[0].item]
        if self.several:
            notes.insert(0, f"it failed for service {_names(affected)}; no service was changed")
        raise _with_notes(first, notes) from first

    def _move(self, plans: Sequence[_Plan], registered: Mapping[tuple[str, Any], dict[str, Any]]) -> list[ChangeResult]:
        """UpdateService for every service that changes (or is redeployed); undo everything if one fails."""
        movers = [plan for plan in plans if plan.is_change or self.request.force_new_deployment]
        outcomes = parallel.each(lambda plan: self._update_service(plan, registered), movers)
        updated = {id(o.item): o.value for o in outcomes if o.error is None}
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            updated.update(self._settle(failed, plans, registered, updated))
        return [self._result(plan, registered, updated.get(id(plan))) for plan in plans]

    def _update_service(self, plan: _Plan, registered: Mapping[tuple[str, Any], dict[str, Any]]) -> dict[str, Any]:
        service = plan.service
        if plan.is_change:
            new_arn = registered[plan.revision_key]["taskDefinitionArn"]
            return ecs.update_service(self.client, service["clusterArn"], service["serviceArn"], new_arn)
        return ecs.update_service(self.client, service["clusterArn"], service["serviceArn"], force_new_deployment=True)

    def _result(
        self, plan: _Plan, registered: Mapping[tuple[str, Any], dict[str, Any]], updated: dict[str, Any] | None
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

    # -- undo -------------------------------------------------------------------------------------

    def _settle(
        self,
        failed: Sequence[parallel.Outcome[_Plan, dict[str, Any]]],
        plans: Sequence[_Plan],
        registered: Mapping[tuple[str, Any], dict[str, Any]],
        updated: Mapping[int, Any],
    ) -> dict[int, Any]:
        """After UpdateService failed for some: never a false outcome, no orphan revision, no silent mix.

        A timeout or a 5xx may hide an update that did take effect, so the failed
        services are read again first. If every one runs its new revision after
        all, that is the result. Otherwise every moved service is put back, and
        the new revisions no service is left on are deregistered. A service that
        cannot be read is assumed to run its new revision, which is then kept.
        """
        with budget.within(budget.CLEANUP_SECONDS):
            states, unreadable = self._read_again([outcome.item for outcome in failed])
            took_effect = {
                id(o.item): states[id(o.item)]
                for o in failed
                if id(o.item) in states and _runs_new(o.item, states[id(o.item)], registered)
            }
            still_failed = [o for o in failed if id(o.item) not in took_effect]
            if not still_failed:
                for outcome in failed:
                    logger.warning("UpdateService of %s reported %s but took effect", outcome.item.name, outcome.error)
                return took_effect
            notes = self._failure_notes(still_failed)
            left_on: dict[str, str] = {}  # service name -> the new revision it is (or may be) left on
            moved = [p for p in plans if id(p) in updated or id(p) in took_effect]
            notes += self._put_back(moved, registered, left_on)
            for outcome in still_failed:
                plan = outcome.item
                if id(plan) in states:
                    whose = "the service was" if not self.several else f"service '{plan.name}' was"
                    running = revision_label_of_arn(str(states[id(plan)].get("taskDefinition", "")))
                    notes.append(f"{whose} still on {running} when checked")
                elif plan.is_change:
                    new = registered[plan.revision_key]
                    left_on[plan.name] = new["taskDefinitionArn"]
                    whose = "the service" if not self.several else f"service '{plan.name}'"
                    notes.append(
                        f"could not check whether {whose} took revision {taskdef.revision_label(new)} "
                        f"({unreadable.message if unreadable else 'no answer'}), so it was left registered; "
                        "deregister it if the service does not run it"
                    )
            in_use = set(left_on.values())
            notes += self._deregister([r for r in registered.values() if r["taskDefinitionArn"] not in in_use])
        first = still_failed[0].error
        if not isinstance(first, UpdateError):
            raise first if first is not None else RuntimeError("UpdateService failed")
        raise _with_notes(first, notes) from first

    def _read_again(self, plans: Sequence[_Plan]) -> tuple[dict[int, dict[str, Any]], UpdateError | None]:
        """Each service as it is now (by plan id), read in batches of 10; the first failure to read some.

        A service missing from the answer is one that could not be read.
        """
        cluster = plans[0].service["clusterArn"]
        if len(plans) == 1:
            try:
                now = [ecs.describe_service(self.client, cluster, plans[0].service["serviceArn"])]
            except UpdateError as unreadable:
                return {}, unreadable
            return {id(plans[0]): now[0]}, None
        arns = [plan.service["serviceArn"] for plan in plans]
        outcomes = parallel.each(lambda batch: ecs.describe_services(self.client, cluster, batch), ecs.in_batches(arns))
        by_arn = {s.get("serviceArn"): s for o in outcomes if o.error is None for s in (o.value or [])}
        failures = [o.error for o in outcomes if o.error is not None]
        unreadable = next((f for f in failures if isinstance(f, UpdateError)), None)
        if failures and unreadable is None:
            unreadable = UpdateError(f"DescribeServices failed: {failures[0]}")
        found = {id(plan): by_arn[plan.service["serviceArn"]] for plan in plans if plan.service["serviceArn"] in by_arn}
        return found, unreadable

    def _failure_notes(self, still_failed: Sequence[parallel.Outcome[_Plan, Any]]) -> list[str]:
        if not self.several:
            return []
        described = ", ".join(f"'{o.item.name}' ({_message(o.error)})" for o in still_failed[1:])
        note = f"UpdateService failed for service '{still_failed[0].item.name}'"
        return [note + (f" and for {described}" if described else "")]

    def _put_back(
        self, moved: Sequence[_Plan], registered: Mapping[tuple[str, Any], dict[str, Any]], left_on: dict[str, str]
    ) -> list[str]:
        """Point every moved service back at the revision it ran; note each one and what failed."""
        changed = [plan for plan in moved if plan.is_change]
        redeployed = [plan for plan in moved if not plan.is_change]
        outcomes = parallel.each(
            lambda plan: ecs.update_service(
                self.client, plan.service["clusterArn"], plan.service["serviceArn"], plan.current["taskDefinitionArn"]
            ),
            changed,
        )
        notes: list[str] = []
        back = [o.item.name for o in outcomes if o.error is None]
        if back:
            notes.append(
                f"service {_names(back)} {'was' if len(back) == 1 else 'were'} put back on the previous revision"
            )
        for outcome in outcomes:
            if outcome.error is not None:
                plan = outcome.item
                new = registered[plan.revision_key]
                left_on[plan.name] = new["taskDefinitionArn"]
                notes.append(
                    f"service '{plan.name}' could not be put back ({_message(outcome.error)}) and still runs "
                    f"{taskdef.revision_label(new)}: put it back on {taskdef.revision_label(plan.current)} by hand"
                )
        if redeployed:
            notes.append(f"service {_names([p.name for p in redeployed])} had been redeployed on its running revision")
        return notes

    def _deregister(self, revisions: Sequence[Mapping[str, Any]]) -> list[str]:
        """Deregister new revisions no service runs; a note for each, or for each that failed."""
        if not revisions:
            return []
        outcomes = parallel.each(
            lambda revision: ecs.deregister_task_definition(self.client, revision["taskDefinitionArn"]), revisions
        )
        done = [taskdef.revision_label(o.item) for o in outcomes if o.error is None]
        notes = []
        if done:
            which = f"the new revision {done[0]} was" if len(done) == 1 else f"the new revisions {', '.join(done)} were"
            notes.append(f"{which} deregistered, so none is left behind")
        notes += [
            f"the new revision {taskdef.revision_label(o.item)} could not be deregistered ({_message(o.error)}); "
            "deregister it by hand"
            for o in outcomes
            if o.error is not None
        ]
        return notes


def _runs_new(plan: _Plan, now: Mapping[str, Any], registered: Mapping[tuple[str, Any], Mapping[str, Any]]) -> bool:
    if not plan.is_change:
        return False
    return now.get("taskDefinition") == registered[plan.revision_key]["taskDefinitionArn"]


def _targets(current: Mapping[str, Any], change: ImageChange) -> dict[str, ImageReference]:
    """Container name to the image it should run."""
    running_now = taskdef.container_images(current)
    changed = {
        name: running_now.get(name)
        for name, image in (change.expect_running or {}).items()
        if running_now.get(name) != image
    }
    if changed:
        now = ", ".join(f"'{name}' runs '{image}'" for name, image in changed.items())
        raise ServiceChangedError(f"the service changed since this change was decided: {now} now; nothing was done")
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


def _cluster_name(cluster: str, results: Sequence[ChangeResult]) -> str:
    return results[0].cluster if results else cluster.rsplit("/", 1)[-1]


def _names(names: Sequence[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _message(error: BaseException | None) -> str:
    return error.message if isinstance(error, UpdateError) else str(error)


def _prefixed(failure: UpdateError, prefix: str) -> UpdateError:
    message = prefix + failure.message
    if isinstance(failure, AwsCallError):
        return type(failure)(failure.step, message, failure.outcome_unknown)
    return type(failure)(message)


def _with_notes(failure: UpdateError, notes: Sequence[str]) -> UpdateError:
    if not notes:
        return failure
    message = f"{failure.message}; {'; '.join(notes)}"
    if isinstance(failure, AwsCallError):
        return type(failure)(failure.step, message, failure.outcome_unknown)
    return type(failure)(message)


def revision_label_of_arn(arn: str) -> str:
    """`family:revision` of a task definition ARN."""
    return taskdef.revision_label(revision_of(arn))
