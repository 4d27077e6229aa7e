"""Push an image, the services follow: find the services that opted in, decide, update each.

Two triggers share this engine: ECR's "ECR Image Action" events (the
`registry_push` function) and `POST /hooks/push` for any other registry.

1. The Resource Groups Tagging API lists the ECS services tagged
   `image-updater:policy` (GetResources, paged);
2. DescribeServices by cluster in batches of 10, and each distinct running
   revision described once, at once;
3. every service with a container from the pushed repository gets a decision
   (chalicelib.push_policy; the allowlists and REQUIRE_DIGEST apply);
4. each service to deploy goes through the same path as `/update` (its lock,
   the re-read under it, a record with `action: "push"`, the audit tags), at
   most PARALLEL_UPDATES at once. Services are independent: one failing does
   not stop or undo the others. The decision is re-checked under the lock: if
   the service changed meanwhile, nothing is done.

An ECR event is delivered at least once: before a service is updated for an
event, the event's id is claimed for that service in the state table (a
conditional put that expires after a day), so a duplicate deploys nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, clients, ecs, parallel
from chalicelib.core import taskdef
from chalicelib.core.errors import NotAllowedError, UpdateError
from chalicelib.core.images import ImageReference, InvalidImageError, parse_image
from chalicelib.core.push_policy import POLICY_TAG, PUSHED_TAG_TAG, Following, Push, Verdict, follows_repository, judge
from chalicelib.core.requests import ImageChange, Target
from chalicelib.deploy.update import update_target
from chalicelib.state.lock import Locks
from chalicelib.state.table import TTL_ATTRIBUTE, service_partition, to_item

logger = logging.getLogger(__name__)

DEPLOYED = "deployed"
SKIPPED = "skipped"
FAILED = "failed"
PARALLEL_UPDATES = 8
# An update needs a few seconds at the very least; one that cannot get them is not started.
MIN_SECONDS_TO_START = 6.0
EVENT_CLAIM_SECONDS = 24 * 3600
TAGGING_PAGE_SIZE = 100


@dataclass(frozen=True)
class Decision:
    """What a push did to one service that follows the pushed repository."""

    cluster: str
    service: str
    action: str
    reason: str
    result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {
            "cluster": self.cluster,
            "service": self.service,
            "action": self.action,
            "reason": self.reason,
            "result": self.result,
        }


@dataclass(frozen=True)
class PushResult:
    """A push and the decision for every opted-in service that runs the pushed repository."""

    push: Push
    decisions: list[Decision]

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the answer (the route's body, the function's log line)."""
        return {**self.push.as_dict(), "decisions": [decision.as_dict() for decision in self.decisions]}


def delivery_id(pushed: Push) -> str | None:
    """What makes two calls of the push hook the same push (a registry retrying its webhook), if it says.

    Only a push that names its digest can be told apart from a new push of the same tag.
    """
    if pushed.digest is None:
        return None
    return f"hook:{pushed.repository}:{pushed.tag or ''}@{pushed.digest}"


@dataclass(frozen=True)
class Pusher:
    """Who pushed (for the records and audit tags) and what applies to them."""

    provenance: Provenance
    access: AccessPolicy
    event_id: str | None = None  # an ECR event's id (or the hook's delivery id): each service updated once for it


@dataclass
class _Candidate:
    cluster: str
    service: dict[str, Any]
    following: Following
    running: dict[str, Any]
    revision_tags: list[dict[str, str]]
    followed: dict[str, ImageReference] = field(default_factory=dict)  # the containers that follow, parsed once
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.service["serviceName"])

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.name}"


def follow_push(ecs_client: Any, tagging_client: Any, locks: Locks, push: Push, pusher: Pusher) -> PushResult:
    """Decide for every service that follows the pushed repository, and update the ones to deploy."""
    with budget.within(budget.MAIN_SECONDS):
        opted_in = _opted_in(tagging_client)
        candidates, failures = _read(ecs_client, opted_in, push)
    decisions = list(failures)
    to_update: list[_Candidate] = []
    for candidate in candidates:
        decision = _decide(candidate, push, pusher.access)
        if decision is None:
            to_update.append(candidate)
        else:
            decisions.append(decision)
    update = _Updater(ecs_client, locks, push, pusher)
    decisions += parallel.values(update.one, to_update, PARALLEL_UPDATES)
    return PushResult(push, sorted(decisions, key=lambda d: (d.cluster, d.service)))


def _opted_in(tagging_client: Any) -> dict[str, dict[str, str]]:
    """Service ARN to its tags, for every ECS service tagged with a policy."""
    services: dict[str, dict[str, str]] = {}
    token = ""
    while True:
        arguments: dict[str, Any] = {
            "ResourceTypeFilters": ["ecs:service"],
            "TagFilters": [{"Key": POLICY_TAG}],
            "ResourcesPerPage": TAGGING_PAGE_SIZE,
        }
        if token:
            arguments["PaginationToken"] = token
        page = clients.call(tagging_client.get_resources, "GetResources", {}, **arguments)
        for resource in page.get("ResourceTagMappingList", []):
            services[resource["ResourceARN"]] = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
        token = page.get("PaginationToken") or ""
        if not token:
            return services


def _read(
    ecs_client: Any, opted_in: Mapping[str, Mapping[str, str]], push: Push
) -> tuple[list[_Candidate], list[Decision]]:
    """The opted-in services that run the pushed repository, described, with their running revisions."""
    by_cluster: dict[str, list[str]] = {}
    for arn in opted_in:
        cluster = _cluster_of(arn)
        if cluster is None:
            logger.warning("service %s has an ARN of the old format (no cluster); it cannot follow pushes", arn)
            continue
        by_cluster.setdefault(cluster, []).append(arn)
    batches = [(cluster, batch) for cluster, arns in sorted(by_cluster.items()) for batch in ecs.in_batches(arns)]
    failures: list[Decision] = []
    described: list[tuple[str, dict[str, Any]]] = []
    for outcome in parallel.each(lambda batch: ecs.describe_services(ecs_client, *batch), batches):
        cluster, arns = outcome.item
        if outcome.error is not None:
            failures += [_failed(cluster, arn.rsplit("/", 1)[-1], outcome.error) for arn in arns]
        else:
            described += [(cluster, service) for service in outcome.value or []]
    arns = sorted({s["taskDefinition"] for _, s in described if s.get("taskDefinition")})
    revisions = {o.item: o for o in parallel.each(lambda arn: ecs.describe_task_definition(ecs_client, arn), arns)}
    candidates: list[_Candidate] = []
    for cluster, service in described:
        running_arn = service.get("taskDefinition")
        if not running_arn:
            continue  # an EXTERNAL-controlled service runs no task definition here
        outcome = revisions[running_arn]
        if outcome.error is not None:
            failures.append(_failed(cluster, service["serviceName"], outcome.error))
            continue
        running, tags = outcome.value  # type: ignore[misc]
        following = Following.of(opted_in.get(service["serviceArn"], {}))
        followed = _followed_containers(following, running, push)
        if followed:
            candidates.append(_Candidate(cluster, service, following, running, tags, followed))
    return candidates, failures


def _followed_containers(following: Following, running: Mapping[str, Any], push: Push) -> dict[str, ImageReference]:
    """The containers that follow the push (the one named, or those from its repository), their images parsed.

    A container whose image is not a reference follows nothing.
    """
    images: dict[str, ImageReference] = {}
    for name, image in taskdef.container_images(running).items():
        if following.container in (None, name):
            try:
                images[name] = parse_image(image)
            except InvalidImageError:
                continue
    return {name: reference for name, reference in images.items() if follows_repository(reference, push)}


def _decide(candidate: _Candidate, push: Push, access: AccessPolicy) -> Decision | None:
    """The decision for a service, or None when it is to be updated (its verdicts are then set)."""
    try:
        access.check_target(candidate.cluster, candidate.name)
    except NotAllowedError as refused:
        return Decision(candidate.cluster, candidate.name, SKIPPED, refused.message)
    if access.require_digest and not candidate.following.pin_digest:
        return Decision(
            candidate.cluster,
            candidate.name,
            SKIPPED,
            "REQUIRE_DIGEST allows only digests, and the service does not set image-updater:pin-digest=true",
        )
    pushed_tag = taskdef.tag_value(candidate.revision_tags, PUSHED_TAG_TAG)
    verdicts: dict[str, Verdict] = {}
    for name, reference in candidate.followed.items():
        running_tag = pushed_tag if (candidate.following.pin_digest and pushed_tag) else reference.tag
        verdicts[name] = judge(candidate.following, reference, running_tag, push)
    acting = {name: verdict for name, verdict in verdicts.items() if verdict.action != "skip"}
    if not acting:
        reasons = "; ".join(dict.fromkeys(verdict.reason for verdict in verdicts.values()))
        return Decision(candidate.cluster, candidate.name, SKIPPED, reasons)
    for name, verdict in acting.items():
        try:
            # A redeploy starts the running image again: it too must be one the allowlists take.
            access.check_image(verdict.image if verdict.image is not None else candidate.followed[name])
        except NotAllowedError as refused:
            return Decision(candidate.cluster, candidate.name, SKIPPED, refused.message)
    candidate.verdicts = acting
    return None


INTERNAL_ERROR = "an internal error occurred; it has been logged"


class _Updater:
    """Updates one chosen service through the update path, within the time left."""

    def __init__(self, ecs_client: Any, locks: Locks, push: Push, pusher: Pusher) -> None:
        self.ecs_client = ecs_client
        self.locks = locks
        self.push = push
        self.pusher = pusher

    def one(self, candidate: _Candidate) -> Decision:
        left = budget.seconds_left()
        if left is not None and left < MIN_SECONDS_TO_START:
            return Decision(
                candidate.cluster,
                candidate.name,
                FAILED,
                "not started: the time for this push ran out before this service's turn "
                "(more services follow the repository than fit); push again, or use the ECR trigger",
            )
        try:
            if not self._claim(candidate):
                return Decision(
                    candidate.cluster,
                    candidate.name,
                    SKIPPED,
                    "this push event was already handled (or is being handled) for the service",
                )
        except UpdateError as failure:
            return _failed(candidate.cluster, candidate.name, failure)
        try:
            result = self._update(candidate)
        except Exception as failure:  # one service's failure, whatever it is, is its decision: the others go on
            self._let_go(candidate)  # a failed update may be tried again by another delivery of the push
            return _failed(candidate.cluster, candidate.name, failure)
        self._done(candidate)
        reasons = "; ".join(dict.fromkeys(verdict.reason for verdict in candidate.verdicts.values()))
        return Decision(candidate.cluster, candidate.name, DEPLOYED, reasons, result)

    def _update(self, candidate: _Candidate) -> dict[str, Any]:
        images = {name: verdict.image for name, verdict in candidate.verdicts.items() if verdict.image is not None}
        running = taskdef.container_images(candidate.running)
        change = ImageChange(
            images=images,
            expect_running={name: running[name] for name in candidate.verdicts},
            revision_tags=(
                {PUSHED_TAG_TAG: self.push.tag} if candidate.following.pin_digest and self.push.tag and images else None
            ),
        )
        result = update_target(
            self.ecs_client,
            candidate.service["clusterArn"],
            Target(candidate.service["serviceArn"], change),
            force_new_deployment=not images,  # the `tag` policy: a new deployment of the running revision
            locks=self.locks,
            provenance=self.pusher.provenance,
        )
        return result.as_dict()

    def _claim(self, candidate: _Candidate) -> bool:
        """Claim the event for this service; False when it was handled, or is being handled, already.

        The claim is a lease for the time this invocation has left: a retry after
        this one died (its Lambda timed out) takes it over, while a duplicate
        delivered meanwhile finds it held. `_done` marks it handled for good.
        """
        table = self.locks.table
        if self.pusher.event_id is None or table is None:
            return True
        now = int(time.time())
        lease = now + int(budget.seconds_left() or budget.MAIN_SECONDS + budget.CLEANUP_SECONDS) + 1
        try:
            with budget.within(budget.ONE_CALL_SECONDS):
                table.call(
                    "PutItem",
                    {"ConditionalCheckFailedException": lambda _: _Claimed()},
                    TableName=table.name,
                    Item=to_item(
                        {
                            **self._claim_key(candidate),
                            "kind": "event",
                            "handled": False,
                            "leaseUntil": lease,
                            TTL_ATTRIBUTE: now + EVENT_CLAIM_SECONDS,
                        }
                    ),
                    ConditionExpression="attribute_not_exists(pk) OR (handled = :no AND leaseUntil < :now)",
                    ExpressionAttributeValues=to_item({":no": False, ":now": now}),
                )
        except _Claimed:
            return False
        return True

    def _done(self, candidate: _Candidate) -> None:
        """Mark the push handled for this service: it was deployed (never recreating a claim that is gone)."""
        self._settle_claim(
            candidate,
            "UpdateItem",
            {":yes": True},
            UpdateExpression="SET handled = :yes",
            ConditionExpression="attribute_exists(pk)",
        )

    def _let_go(self, candidate: _Candidate) -> None:
        """Give the claim up: the update failed, and a later delivery of the push may try again."""
        self._settle_claim(candidate, "DeleteItem", {":no": False}, ConditionExpression="handled = :no")

    def _settle_claim(self, candidate: _Candidate, operation: str, values: dict[str, bool], **expression: str) -> None:
        table = self.locks.table
        if self.pusher.event_id is None or table is None:
            return
        try:
            with budget.within(budget.ONE_CALL_SECONDS, beyond_cap=True):
                table.call(
                    operation,
                    {"ConditionalCheckFailedException": lambda _: _Claimed()},
                    TableName=table.name,
                    Key=to_item(self._claim_key(candidate)),
                    ExpressionAttributeValues=to_item(values),
                    **expression,
                )
        except UpdateError as failure:
            logger.warning("claim of push %s for %s not settled (%s)", self.pusher.event_id, candidate.key, failure)

    def _claim_key(self, candidate: _Candidate) -> dict[str, Any]:
        return {"pk": f"EVENT#{self.pusher.event_id}", "sk": service_partition(candidate.key)}


def _cluster_of(service_arn: str) -> str | None:
    _, _, resource = service_arn.partition(":service/")
    cluster, _, name = resource.partition("/")
    return cluster if cluster and name else None


def _failed(cluster: str, service: str, failure: BaseException) -> Decision:
    message = failure.message if isinstance(failure, UpdateError) else INTERNAL_ERROR
    if not isinstance(failure, UpdateError):
        logger.error("push update of %s/%s failed", cluster, service, exc_info=failure)
    return Decision(cluster, service, FAILED, message)


class _Claimed(UpdateError):
    def __init__(self) -> None:
        super().__init__("the event was claimed before")
