"""Push an image, the services follow: decide which services move, record the decisions, queue the work.

Two triggers share this: ECR's "ECR Image Action" events (the `registry_push`
function) and `POST /hooks/push` for any other registry. Neither deploys
anything itself; each:

1. reads the services that follow the pushed repository from the follower
   index (chalicelib.state.followers): one Query, whatever the account holds;
2. gives each a decision from its policy (chalicelib.core.push_policy), the
   allowlists and the pusher's permissions (action `push`, chalicelib.access):
   `queued`, or `skipped` with the reason;
3. records the push and its decisions (chalicelib.state.pushes), each only if
   absent, so a duplicate event or a retried invocation changes none;
4. queues one work item per service to deploy (SendMessageBatch, ten a call).

The queue's consumer (chalicelib.triggers.push_work) deploys each item through
the one update path, retries what may pass, and records what cannot land.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.access.guard import Guard
from chalicelib.access.permissions import PUSH
from chalicelib.aws import accounts, budget
from chalicelib.core.errors import NotAllowedError
from chalicelib.core.images import ImageReference, InvalidImageError, parse_image
from chalicelib.core.locations import cluster_arn_of
from chalicelib.core.push_policy import Following, Push, Verdict, follows_repository, judge
from chalicelib.state import pushes
from chalicelib.state.followers import Follower, followers_of
from chalicelib.state.table import StateTable

QUEUED = pushes.QUEUED
SKIPPED = pushes.SKIPPED


@dataclass(frozen=True)
class WorkItem:
    """One service to move for one push: what the consumer deploys, as the message body carries it."""

    push_id: str
    push: Push
    service_arn: str
    cluster: str
    service: str
    images: dict[str, str]  # container -> the image decided on (empty: redeploy the running revision)
    redeploy: bool
    provenance: dict[str, Any]
    running: dict[str, str] = field(default_factory=dict)  # container -> its image when the push was decided
    # Queued when the push was first recorded (not again for a duplicate of it): only such a message, moved
    # back from the dead-letter queue, may reopen work whose retries ran out.
    first: bool = True

    @property
    def cluster_arn(self) -> str:
        """The cluster's ARN, from the service's (`…:service/<cluster>/<name>`)."""
        return cluster_arn_of(self.service_arn)

    def body(self) -> str:
        """The message body."""
        return json.dumps(
            {
                "v": 1,
                "pushId": self.push_id,
                "push": self.push.as_dict(),
                "serviceArn": self.service_arn,
                "cluster": self.cluster,
                "service": self.service,
                "images": self.images,
                "redeploy": self.redeploy,
                "provenance": self.provenance,
                "running": self.running,
                "first": self.first,
            },
            sort_keys=True,
        )

    @classmethod
    def of_body(cls, body: str) -> WorkItem:
        """Read a message body; ValueError says what is wrong with it."""
        try:
            raw = json.loads(body)
        except ValueError as error:
            raise ValueError(f"the message is not JSON: {error}") from error
        if not isinstance(raw, dict) or raw.get("v") != 1:
            raise ValueError("the message is not a push work item of this service (version 1)")
        try:
            pushed = raw["push"]
            item = cls(
                push_id=str(raw["pushId"]),
                push=Push(str(pushed["repository"]), pushed.get("tag"), pushed.get("digest")),
                service_arn=str(raw["serviceArn"]),
                cluster=str(raw["cluster"]),
                service=str(raw["service"]),
                images={str(k): str(v) for k, v in dict(raw["images"]).items()},
                redeploy=bool(raw["redeploy"]),
                provenance=dict(raw.get("provenance") or {}),
                running={str(k): str(v) for k, v in dict(raw.get("running") or {}).items()},
                first=raw.get("first") is not False,
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"the work item lacks a field: {error}") from error
        if ":service/" not in item.service_arn:
            raise ValueError(f"the work item's serviceArn is not a service ARN: {item.service_arn!r}")
        return item


@dataclass(frozen=True)
class Decision:
    """What a push decided for one service that follows the pushed repository."""

    cluster: str
    service: str
    service_arn: str
    action: str  # queued or skipped
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape."""
        return {"cluster": self.cluster, "service": self.service, "action": self.action, "reason": self.reason}


@dataclass(frozen=True)
class PushResult:
    """A push, its id, and the decision for every service that follows the pushed repository."""

    push_id: str
    push: Push
    decisions: list[Decision]
    recorded: bool = True  # False: the push had been decided before (a duplicate); its work was queued again

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the 202 answer (and of the ECR function's log line)."""
        return {
            "pushId": self.push_id,
            **self.push.as_dict(),
            "decisions": [decision.as_dict() for decision in self.decisions],
        }


@dataclass(frozen=True)
class Pusher:
    """Who pushed (for the records and audit tags) and what the allowlists and permissions allow them."""

    provenance: Provenance
    guard: Guard
    source: str = "hook"  # "ecr", "hook" or "github"


@dataclass
class _Decided:
    decisions: list[Decision] = field(default_factory=list)
    work: list[WorkItem] = field(default_factory=list)


def push_id_for(pushed: Push, event_id: str | None = None) -> str:
    """The id of a push: an ECR event's own id; for the hook, one derived from a digest (a registry retrying
    its webhook sends the same repository, tag and digest), else a new one (without a digest, two calls are two
    pushes)."""
    if event_id:
        return event_id
    if pushed.digest is None:
        return uuid.uuid4().hex
    key = f"{pushed.canonical_repository()}:{pushed.tag or ''}@{pushed.digest}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


Enqueue = Callable[[Sequence[str]], None]


def follow_push(table: StateTable, enqueue: Enqueue, push: Push, pusher: Pusher, push_id: str) -> PushResult:
    """Decide for every service that follows the pushed repository, record the decisions, queue the work."""
    with budget.within(budget.MAIN_SECONDS):
        following = followers_of(table, push.canonical_repository())
        decided = decide(following, push, pusher, push_id)
        targets = [pushes.Target(d.service_arn, d.cluster, d.service, d.action, d.reason) for d in decided.decisions]
        header = pushes.header(push.repository, push.tag, push.digest, pusher.source, pusher.provenance.at)
        recorded = pushes.record_decisions(table, push_id, header, targets)
        # Queued again for a duplicate too: a first invocation that died before queueing leaves nothing lost,
        # and the consumer's claims deploy each service at most once (a duplicate's never reopen failed work).
        if decided.work:
            enqueue([replace(item, first=recorded).body() for item in decided.work])
    ordered = sorted(decided.decisions, key=lambda d: (d.cluster, d.service))
    return PushResult(push_id, push, ordered, recorded)


def decide(followers: Sequence[Follower], push: Push, pusher: Pusher, push_id: str) -> _Decided:
    """A decision for each follower (pure): what its policy and the allowlists make of the push."""
    decided = _Decided()
    provenance = _provenance_fields(pusher.provenance, push, push_id)
    for follower in followers:
        followed = _followed_containers(follower, push)
        if not followed:
            continue  # the index is behind: the service no longer runs the repository
        verdicts = _verdicts(follower, followed, push)
        refusal = _refusal(follower, verdicts, pusher.guard)
        if refusal is not None:
            decided.decisions.append(_decision(follower, SKIPPED, refusal))
            continue
        acting = {name: verdict for name, verdict in verdicts.items() if verdict.action != "skip"}
        images = {name: str(verdict.image) for name, verdict in acting.items() if verdict.image is not None}
        reason = "; ".join(dict.fromkeys(verdict.reason for verdict in acting.values()))
        decided.decisions.append(_decision(follower, QUEUED, reason))
        decided.work.append(
            WorkItem(
                push_id=push_id,
                push=push,
                service_arn=follower.service_arn,
                cluster=follower.cluster,
                service=follower.service,
                images=images,
                redeploy=not images,
                provenance=provenance,
                running={name: follower.images[name] for name in followed},
            )
        )
    return decided


def verdicts_for(
    following: Following, running: Mapping[str, ImageReference], pushed_tag: str | None, push: Push
) -> dict[str, Verdict]:
    """Each followed container's verdict on the push; `pushed_tag` is the revision's pushed tag (a pinned push)."""
    verdicts = {}
    for name, reference in running.items():
        running_tag = pushed_tag if (following.pin_digest and pushed_tag) else reference.tag
        verdicts[name] = judge(following, reference, running_tag, push)
    return verdicts


def followed_containers(following: Following, images: Mapping[str, str], push: Push) -> dict[str, ImageReference]:
    """The containers that follow the push (the one named, or those from its repository), their images parsed.

    A container whose image is not a reference follows nothing.
    """
    found: dict[str, ImageReference] = {}
    for name, image in images.items():
        if following.container in (None, name):
            try:
                reference = parse_image(image)
            except InvalidImageError:
                continue
            if follows_repository(reference, push):
                found[name] = reference
    return found


def _followed_containers(follower: Follower, push: Push) -> dict[str, ImageReference]:
    return followed_containers(follower.following, follower.images, push)


def _verdicts(follower: Follower, followed: Mapping[str, ImageReference], push: Push) -> dict[str, Verdict]:
    return verdicts_for(follower.following, followed, follower.pushed_tag, push)


def _refusal(follower: Follower, verdicts: Mapping[str, Verdict], guard: Guard) -> str | None:
    """Why the service does not move for this push, or None."""
    cluster = cluster_arn_of(follower.service_arn)
    try:
        accounts.reach(cluster)  # an account or region the service may reach (the index may hold others)
        guard.check_target(PUSH, cluster, follower.service)
    except NotAllowedError as refused:
        return refused.message
    if guard.ceiling.require_digest and not follower.following.pin_digest:
        return "REQUIRE_DIGEST allows only digests, and the service does not set image-updater:pin-digest=true"
    acting = {name: verdict for name, verdict in verdicts.items() if verdict.action != "skip"}
    if not acting:
        return "; ".join(dict.fromkeys(verdict.reason for verdict in verdicts.values()))
    # A redeploy starts the running image again: it too must be one the allowlists and the rules take.
    images = [verdict.image or follower.images[name] for name, verdict in acting.items()]
    try:
        guard.check(PUSH, cluster, [(follower.service, images)])
    except NotAllowedError as refused:
        return refused.message
    return None


def _decision(follower: Follower, action: str, reason: str) -> Decision:
    return Decision(follower.cluster, follower.service, follower.service_arn, action, reason)


def _provenance_fields(provenance: Provenance, push: Push, push_id: str) -> dict[str, Any]:
    return {
        "requestId": provenance.request_id,
        "keyId": provenance.key_id,
        "principal": provenance.principal,
        "sourceIp": provenance.source_ip,
        "at": provenance.at.isoformat(),
        "push": {"id": push_id, **push.as_dict()},
    }
