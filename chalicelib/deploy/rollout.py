"""One request's walk through the update's steps: read and plan, register, move, and undo what a failure left.

The executor keeps an explicit undo log as it writes: every revision it
registered and every service it moved. A failure replays the log backwards:
the moved services are put back on the revisions they ran, and every new
revision no service is left on is deregistered. Each step runs its calls at
once (chalicelib.aws.parallel) inside the request's time budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.aws import budget, ecs, parallel
from chalicelib.core import taskdef
from chalicelib.core.errors import ServiceNotFoundError, UpdateError
from chalicelib.core.images import ImageReference
from chalicelib.core.requests import FanOutRequest
from chalicelib.core.results import ChangeResult
from chalicelib.deploy import notes
from chalicelib.deploy.plan import Plan, RevisionKey, dry_result, plan_service, registrations, result, runs_new
from chalicelib.deploy.verify import ServiceChange, Verifier

logger = logging.getLogger(__name__)

Described = tuple[dict[str, Any], list[dict[str, str]]]


@dataclass
class UndoLog:
    """What the write phase did so far, for the undo to take back."""

    registered: dict[RevisionKey, dict[str, Any]] = field(default_factory=dict)  # new revisions, by revision key
    moved: list[Plan] = field(default_factory=list)  # services UpdateService moved (or redeployed)
    kept: set[str] = field(default_factory=set)  # new revisions a service is (or may be) left on: not deregistered


class Rollout:
    """One request's read and write phases (see chalicelib.deploy.update)."""

    def __init__(
        self,
        client: Any,
        request: FanOutRequest,
        audit_tags: Mapping[str, str],
        allow_image: Callable[[str, ImageReference], None] | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.client = client
        self.request = request
        self.audit_tags = audit_tags
        self.allow_image = allow_image
        self.verifier = verifier
        self.several = len(request.targets) > 1 or request.name_services
        self.plans: list[Plan] = []
        self.log = UndoLog()

    def run(self) -> list[ChangeResult]:
        """Read and plan, then (unless a dry run) register and move; a failure is undone and raised."""
        self.plans = plans = self.read()
        if self.request.dry_run:
            return [dry_result(plan) for plan in plans]
        return self.write(plans)

    def write(self, plans: list[Plan]) -> list[ChangeResult]:
        """Register and move what `read` planned (the update path decides between the two whether to write at
        all: a change that waits for approval writes nothing)."""
        self.plans = plans
        log = self.log
        self.register(plans, log)
        updated = self.move(plans, log)
        return [result(plan, log.registered, updated.get(id(plan))) for plan in plans]

    def moved_revisions(self) -> list[tuple[Plan, dict[str, Any]]]:
        """Each service moved onto a new revision, with that revision as ECS registered it."""
        return [(plan, self.log.registered[plan.revision_key]) for plan in self.plans if plan.is_change]

    # -- read phase: every check, nothing written --------------------------------------------------

    def read(self) -> list[Plan]:
        """Describe every service and each distinct running revision once, plan each service, and verify what
        would change (the lookups of the images the request names start first, alongside the reads, unless the
        request is an apply)."""
        if self.verifier is not None and self.request.look_up_early:
            self.verifier.prefetch(image for t in self.request.targets for image in t.change.requested_images())
        plans = self._plans()
        if self.verifier is not None:
            self._verify(plans, self.verifier)
        return plans

    def _verify(self, plans: Sequence[Plan], verifier: Verifier) -> None:
        """Check every image that changes (and its platform); keep each digest, and the warnings and checks."""
        changing = [plan for plan in plans if plan.is_change]
        changes = [
            ServiceChange.of(
                plan.name,
                plan.registration or plan.current,
                {c.name: c.image for c in plan.changes if c.image != c.previous_image},
            )
            for plan in changing
        ]
        for plan, verified in zip(changing, verifier.verify(changes, self.several), strict=True):
            plan.changes = [replace(c, digest=verified.digests.get(c.name)) for c in plan.changes]
            plan.warnings = verified.warnings
            plan.checks = [check.as_dict() for check in verified.checks]

    def _plans(self) -> list[Plan]:
        services = self._describe_services()
        for target in self.request.targets:
            self._named(target.service, lambda target=target: ecs.check_updatable(services[target.service]))
        # Each distinct revision once; a failure names the (first) service that runs it.
        runs = {services[t.service]["taskDefinition"]: t.service for t in reversed(self.request.targets)}
        arns = list(dict.fromkeys(services[target.service]["taskDefinition"] for target in self.request.targets))

        def describe(arn: str) -> Described:
            return self._named(runs[arn], lambda: ecs.describe_task_definition(self.client, arn))

        described = dict(zip(arns, parallel.values(describe, arns), strict=True))

        def plan(target: Any) -> Plan:
            service = services[target.service]
            current, tags = described[service["taskDefinition"]]
            return plan_service(
                target,
                service,
                current,
                tags,
                audit_tags=self.audit_tags,
                allow_image=self.allow_image,
                with_diff=self.request.dry_run,
            )

        return [self._named(target.service, lambda target=target: plan(target)) for target in self.request.targets]

    def _describe_services(self) -> dict[str, dict[str, Any]]:
        """The described service of each target, by the identifier the request gave."""
        wanted = [target.service for target in self.request.targets]
        if not self.several:
            return {wanted[0]: ecs.describe_service(self.client, self.request.cluster, wanted[0])}
        batches = ecs.in_batches(wanted)
        found = [s for batch in parallel.values(self._describe_batch, batches) for s in batch]
        by_identifier = ecs.by_identifier(wanted, found)
        missing = [identifier for identifier in wanted if identifier not in by_identifier]
        if missing:
            listed = ", ".join(f"'{identifier.rsplit('/', 1)[-1]}'" for identifier in missing)
            raise ServiceNotFoundError(
                f"service {listed} was not found in cluster '{self.request.cluster.rsplit('/', 1)[-1]}'; "
                "nothing was changed"
            )
        return by_identifier

    def _describe_batch(self, batch: list[str]) -> list[dict[str, Any]]:
        return ecs.describe_services(self.client, self.request.cluster, batch)

    def _named(self, service: str, step: Any) -> Any:
        """Run a check for one service; with several services, its failure names the service."""
        try:
            return step()
        except UpdateError as failure:
            if not self.several:
                raise
            raise notes.prefixed(failure, f"service '{service.rsplit('/', 1)[-1]}': ") from failure

    # -- write phase ------------------------------------------------------------------------------

    def register(self, plans: Sequence[Plan], log: UndoLog) -> None:
        """One new revision per distinct revision key: all of them registered, or none left."""
        wanted = registrations(plans)
        keys = list(wanted)
        outcomes = parallel.each(lambda key: ecs.register_task_definition(self.client, wanted[key]), keys)
        log.registered.update({o.item: o.value for o in outcomes if o.error is None and o.value is not None})
        failed = [outcome for outcome in outcomes if outcome.error is not None]
        if not failed:
            return
        first = failed[0].error
        assert first is not None
        with budget.within(budget.CLEANUP_SECONDS):
            said = self._deregister(log)
        if not isinstance(first, UpdateError):
            raise first
        if self.several:
            affected = [plan.name for plan in plans if plan.is_change and plan.revision_key == failed[0].item]
            said.insert(0, notes.register_failed(affected))
        raise notes.with_notes(first, said) from first

    def move(self, plans: Sequence[Plan], log: UndoLog) -> dict[int, dict[str, Any]]:
        """UpdateService for every service that changes (or is redeployed); undo everything if one fails.

        Returns each moved service as UpdateService answered it, by plan id.
        """
        movers = [plan for plan in plans if plan.is_change or self.request.force_new_deployment]
        outcomes = parallel.each(lambda plan: self._update_service(plan, log.registered), movers)
        updated = {id(o.item): o.value for o in outcomes if o.error is None and o.value is not None}
        log.moved += [o.item for o in outcomes if o.error is None]
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            updated.update(self._settle(failed, movers, log))
        return updated

    def _update_service(self, plan: Plan, registered: Mapping[RevisionKey, dict[str, Any]]) -> dict[str, Any]:
        service = plan.service
        if plan.is_change:
            new_arn = registered[plan.revision_key]["taskDefinitionArn"]
            return ecs.update_service(self.client, service["clusterArn"], service["serviceArn"], new_arn)
        return ecs.update_service(self.client, service["clusterArn"], service["serviceArn"], force_new_deployment=True)

    # -- undo -------------------------------------------------------------------------------------

    def _settle(
        self, failed: Sequence[parallel.Outcome[Plan, dict[str, Any]]], movers: Sequence[Plan], log: UndoLog
    ) -> dict[int, Any]:
        """After UpdateService failed for some: never a false outcome, no orphan revision, no silent mix.

        A timeout or a 5xx may hide an update that did take effect, so the failed
        services are read again first. If every one runs its new revision after
        all, that is the result. Otherwise the log is replayed: every moved
        service is put back, and the new revisions no service is left on are
        deregistered. A service that cannot be read is assumed to run its new
        revision, which is then kept.
        """
        with budget.within(budget.CLEANUP_SECONDS):
            states, unreadable = self._read_again([outcome.item for outcome in failed])
            took_effect = {
                id(o.item): states[id(o.item)]
                for o in failed
                if id(o.item) in states and runs_new(o.item, states[id(o.item)], log.registered)
            }
            moved = {id(plan) for plan in log.moved} | set(took_effect)
            log.moved = [plan for plan in movers if id(plan) in moved]  # in request order
            still_failed = [o for o in failed if id(o.item) not in took_effect]
            if not still_failed:
                for outcome in failed:
                    logger.warning("UpdateService of %s reported %s but took effect", outcome.item.name, outcome.error)
                return took_effect
            said = []
            if self.several:
                others = [(o.item.name, o.error) for o in still_failed[1:]]
                said.append(notes.update_failed(still_failed[0].item.name, others))
            said += self._put_back(log)
            for outcome in still_failed:
                plan = outcome.item
                whose = plan.name if self.several else None
                if id(plan) in states:
                    said.append(notes.still_on(whose, str(states[id(plan)].get("taskDefinition", ""))))
                elif plan.is_change:
                    new = log.registered[plan.revision_key]
                    log.kept.add(new["taskDefinitionArn"])
                    said.append(notes.unchecked(whose, new, unreadable))
            said += self._deregister(log)
        first = still_failed[0].error
        if not isinstance(first, UpdateError):
            raise first if first is not None else RuntimeError("UpdateService failed")
        raise notes.with_notes(first, said) from first

    def _read_again(self, plans: Sequence[Plan]) -> tuple[dict[int, dict[str, Any]], UpdateError | None]:
        """Each service as it is now (by plan id), read in batches of 10; the first failure to read some.

        A service missing from the answer is one that could not be read.
        """
        cluster = plans[0].service["clusterArn"]
        if len(plans) == 1:
            try:
                now = ecs.describe_service(self.client, cluster, plans[0].service["serviceArn"])
            except UpdateError as unreadable:
                return {}, unreadable
            return {id(plans[0]): now}, None
        arns = [plan.service["serviceArn"] for plan in plans]
        outcomes = parallel.each(lambda batch: ecs.describe_services(self.client, cluster, batch), ecs.in_batches(arns))
        by_arn = {s.get("serviceArn"): s for o in outcomes if o.error is None for s in (o.value or [])}
        failures = [o.error for o in outcomes if o.error is not None]
        unreadable = next((f for f in failures if isinstance(f, UpdateError)), None)
        if failures and unreadable is None:
            unreadable = UpdateError(f"DescribeServices failed: {failures[0]}")
        found = {id(plan): by_arn[plan.service["serviceArn"]] for plan in plans if plan.service["serviceArn"] in by_arn}
        return found, unreadable

    def _put_back(self, log: UndoLog) -> list[str]:
        """Point every moved service back at the revision it ran; a note for each, and for each that failed."""
        changed = [plan for plan in log.moved if plan.is_change]
        outcomes = parallel.each(
            lambda plan: ecs.update_service(
                self.client, plan.service["clusterArn"], plan.service["serviceArn"], plan.current["taskDefinitionArn"]
            ),
            changed,
        )
        said: list[str] = []
        back = [o.item.name for o in outcomes if o.error is None]
        if back:
            said.append(notes.put_back(back))
        for outcome in outcomes:
            if outcome.error is not None:
                plan = outcome.item
                new = log.registered[plan.revision_key]
                log.kept.add(new["taskDefinitionArn"])
                said.append(notes.not_put_back(plan.name, outcome.error, new, plan.current))
        redeployed = [plan.name for plan in log.moved if not plan.is_change]
        if redeployed:
            said.append(notes.redeployed(redeployed))
        return said

    def _deregister(self, log: UndoLog) -> list[str]:
        """Deregister the new revisions no service is left on; a note for each, or for each that failed."""
        revisions = [r for r in log.registered.values() if r["taskDefinitionArn"] not in log.kept]
        if not revisions:
            return []
        outcomes = parallel.each(
            lambda revision: ecs.deregister_task_definition(self.client, revision["taskDefinitionArn"]), revisions
        )
        done = [taskdef.revision_label(o.item) for o in outcomes if o.error is None]
        said = [notes.deregistered(done)] if done else []
        said += [
            notes.not_deregistered(taskdef.revision_label(o.item), o.error) for o in outcomes if o.error is not None
        ]
        return said
