"""The push work queue's consumer: deploy each work item through the one update path, and lose none.

For each message of a batch (the `push_work` function, fed by SQS):

1. claim the service's work for this push (chalicelib.state.pushes): a lease
   that covers one update's whole budget, taken over once it lapses; a service
   already deployed (or failed for good) for the push is not touched again;
2. deploy through the update path (its lock, its record, its audit), after the
   policy decided the change again on the service as it is now, under the lock;
3. on success, the push's item says `deployed` (written with the record);
   a final refusal (the policy or the allowlists no longer take the change, the
   service changed meanwhile, is gone or cannot be updated) is recorded once,
   as a FAILED record with a FAILED notification, and not retried;
   a failure that may pass (a busy lock, throttling, a 5xx, a timeout, the time
   running out, the function dying) is reported back to SQS
   (`batchItemFailures`) and tried again after 30 s, 60 s, 120 s and 240 s; the
   fifth attempt that fails is recorded like a refusal, and the message goes
   to the dead-letter queue (the queue's maxReceiveCount is MAX_RECEIVES, one
   more than the attempts, so a consumer that died on its last attempt still
   gets a sixth delivery that records the failure);
4. a freeze (chalicelib.state.freezes) that stops the service keeps the work
   waiting: the item is queued again as a new message, delayed until the
   freeze ends (15 minutes at most, SQS's longest delay, and again after that),
   so the wait uses none of its attempts, and deploys once the freeze is over
   (or lifted). A freeze that says `"pushes": "drop"` ends the work instead: a
   FROZEN record, the push's item `frozen`, nothing deployed;
5. a service that requires approval (chalicelib.deploy.gate) turns the push into
   the approval, written with the locks' release together with the push's item
   (`awaiting-approval`): the message is done, nothing is lost, and the N-th
   approval deploys it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from chalicelib.access import identity
from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.access.guard import Guard
from chalicelib.access.permissions import PUSH, Permissions
from chalicelib.aws import accounts, budget, parallel, queue
from chalicelib.aws.accounts import Reach
from chalicelib.core import taskdef
from chalicelib.core.errors import (
    ApprovalPendingError,
    FrozenError,
    ServiceChangedError,
    UnexpectedError,
    UpdateError,
)
from chalicelib.core.images import ImageReference, parse_image
from chalicelib.core.push_policy import POLICY_TAG, PUSHED_TAG_TAG, Following
from chalicelib.core.requests import ImageChange, Target
from chalicelib.core.results import ChangeResult
from chalicelib.deploy.update import update_target
from chalicelib.deploy.verify import Verifier
from chalicelib.follow import notify, outcomes
from chalicelib.state import approvals, freezes, pushes
from chalicelib.state.lock import Locks
from chalicelib.state.records import FROZEN, DeploymentRecord
from chalicelib.state.table import StateTable, service_key
from chalicelib.triggers.push import WorkItem, followed_containers, verdicts_for

logger = logging.getLogger(__name__)

# One update's whole budget (main + cleanup + release: 27 s), with room to spare.
LEASE_SECONDS = 40
ATTEMPTS = 5
MAX_RECEIVES = ATTEMPTS + 1  # the queue's redrive policy (infra/service.yaml, infra/push-queue.yaml)
FIRST_RETRY_SECONDS = 30
PARALLEL_ITEMS = 8
# An update needs a few seconds at the very least; one that cannot get them is tried again later.
MIN_SECONDS_TO_START = 6.0
NOT_STARTED_RETRY_SECONDS = 5
# A push's item while the service's change waits for approval (chalicelib.state.approvals): the message is done,
# the approval deploys it, and its item then says deployed (or failed, when the approval ends otherwise).
AWAITING_APPROVAL = "awaiting-approval"


@dataclass(frozen=True)
class WorkServices:
    """What the consumer works with."""

    # Where a service is (from its cluster's ARN) and how to reach it; refuses an account or region it may not.
    reach: Callable[[str], Reach]
    table: StateTable
    locks: Locks
    access: AccessPolicy
    # Read per item, so that a broken file fails the item (retryable) rather than the batch.
    permissions: Callable[[], Permissions | None]
    # The checks before a write (VERIFY_IMAGES), one verifier per item, with its target's credentials.
    verifier: Callable[[Reach], Verifier]
    sqs: Any
    queue_url: str
    sns: Any | None
    topic_arn: str | None
    now: Callable[[], float] = time.time


@dataclass(frozen=True)
class Done:
    """What became of one message: acknowledged, or given back to the queue (and why)."""

    message_id: str
    back_to_queue: bool
    state: str
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the function's log line."""
        return {
            "message": self.message_id,
            "backToQueue": self.back_to_queue,
            "state": self.state,
            "reason": self.reason,
        }


def retry_delay(attempt: int) -> int:
    """Seconds before attempt `attempt` + 1: 30, 60, 120, 240."""
    return FIRST_RETRY_SECONDS * 2 ** max(attempt - 1, 0)


def work(records: Sequence[Mapping[str, Any]], services: WorkServices) -> list[Done]:
    """Work through one batch of messages, at most PARALLEL_ITEMS at once; what became of each."""
    return parallel.values(lambda record: _one(record, services), list(records), PARALLEL_ITEMS)


def _one(record: Mapping[str, Any], services: WorkServices) -> Done:
    message_id = str(record.get("messageId", ""))
    try:
        item = WorkItem.of_body(str(record.get("body", "")))
    except ValueError as unreadable:
        logger.error("push work message %s ignored: %s", message_id, unreadable)
        return Done(message_id, False, "ignored", str(unreadable))
    receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
    worker = _Worker(item, services, message_id, str(record.get("receiptHandle", "")), receives)
    try:
        return worker.run()
    except UpdateError as failure:
        # The work's own bookkeeping failed (the table, SQS): the message comes back after its visibility timeout.
        logger.warning("push work message %s back to the queue: %s", message_id, failure.message)
        return Done(message_id, True, "retry", failure.message)


class _Worker:
    def __init__(self, item: WorkItem, services: WorkServices, message_id: str, receipt: str, receives: int) -> None:
        self.item = item
        self.services = services
        self.message_id = message_id
        self.receipt = receipt
        self.receives = receives
        self.target = pushes.Target(item.service_arn, item.cluster, item.service, pushes.QUEUED)

    def run(self) -> Done:
        left = budget.seconds_left()
        if left is not None and left < MIN_SECONDS_TO_START:
            self._retry_in(NOT_STARTED_RETRY_SECONDS)
            return self._back("not started: the function's time ran out before this item's turn")
        # A message that comes back from the dead-letter queue (moved there by an operator) starts afresh; a
        # duplicate push's message, which also arrives for the first time, does not.
        reopen = self.receives == 1 and self.item.first
        claim = pushes.claim(self.services.table, self.item.push_id, self.target, LEASE_SECONDS, reopen=reopen)
        if not claim.won:
            return self._already(claim)
        try:
            target = self.services.reach(self.item.cluster_arn)
            guard = self._guard()
            locks = self.services.locks.bypassing(
                lambda key: guard.bypasses_freeze(PUSH, *freezes.located(key, accounts.home()))
            )
            gate = approvals.Gate(
                bypass=lambda key: guard.bypasses_approval(PUSH, *freezes.located(key, accounts.home()))
            )
            result = update_target(
                target.client("ecs"),
                self.item.cluster_arn,
                Target(self.item.service_arn, self._change()),
                force_new_deployment=self.item.redeploy,
                locks=locks,
                provenance=self._provenance(),
                settle=lambda _key, result: [self._settled(result)],
                verifier=self.services.verifier(target),
                gate=gate,
                pending=self._awaiting,
            )
        except ApprovalPendingError as asked:
            # The push became the approval (written with the locks' release): it deploys when approved.
            return Done(self.message_id, False, AWAITING_APPROVAL, asked.message)
        except FrozenError as frozen:
            return self._frozen(frozen, claim)
        except UpdateError as failure:
            return self._failed(failure, claim)
        except Exception as bug:  # a bug is logged and treated as a failure that may pass: nothing is lost
            logger.exception("push work for %s failed unexpectedly", self.item.service_arn)
            failure = UnexpectedError(f"an internal error occurred; it has been logged ({type(bug).__name__})")
            return self._failed(failure, claim)
        state = pushes.DEPLOYED if result.changed or result.deployment else pushes.SKIPPED
        return Done(self.message_id, False, state, _deployed_reason(result))

    # -- the outcomes ------------------------------------------------------------------------------

    def _already(self, claim: pushes.Claim) -> Done:
        if claim.state == pushes.FAILED:
            self._send_owed(claim)
            if claim.final == pushes.EXHAUSTED:
                return self._park("the push's retries ran out; the failure is recorded")
            return Done(self.message_id, False, pushes.FAILED, "refused before; the failure is recorded")
        if claim.state in pushes.FINAL_STATES:
            return Done(self.message_id, False, claim.state, "done before (a duplicate)")
        if claim.state == AWAITING_APPROVAL:
            return Done(self.message_id, False, claim.state, "it became an approval before (a duplicate)")
        wait = max(claim.lease_until - int(self.services.now()), 1)
        self._retry_in(wait)
        return self._back(f"another consumer holds the work for {wait} s more")

    def _failed(self, failure: UpdateError, claim: pushes.Claim) -> Done:
        if not failure.retryable:
            self._record_failure(failure, pushes.REFUSED)
            return Done(self.message_id, False, pushes.FAILED, failure.message)
        if self.receives >= ATTEMPTS:
            self._record_failure(failure, pushes.EXHAUSTED)
            return self._park(failure.message)
        pushes.give_back(
            self.services.table, self.item.push_id, self.item.service_arn, claim.lease_until, failure.message
        )
        self._retry_in(retry_delay(self.receives))
        return self._back(failure.message)

    def _frozen(self, frozen: FrozenError, claim: pushes.Claim) -> Done:
        """A freeze stops the service: wait for its end as a new message (no attempt used), or drop the work."""
        table, push_id, service_arn = self.services.table, self.item.push_id, self.item.service_arn
        if frozen.drops_pushes:
            failed = DeploymentRecord.of_push_failure(
                self._provenance(),
                self.item.cluster,
                self.item.service,
                frozen,
                self._intended_containers(),
                service_key(self.item.cluster, self.item.service, accounts.where_of(service_arn)),
                service_arn,
            )
            record = replace(failed, outcome=FROZEN)
            reason = f"dropped: {frozen.message}"
            items = record.items(self.services.locks.history_days)
            pushes.fail(table, push_id, service_arn, pushes.DROPPED, reason, items, state=pushes.FROZEN)
            return Done(self.message_id, False, pushes.FROZEN, reason)
        wait = max(int(frozen.until.timestamp() - self.services.now()), 1)
        again = replace(self.item, first=False)  # a copy never reopens work whose retries ran out
        queue.send_later(self.services.sqs, self.services.queue_url, again.body(), wait)
        reason = f"waiting for the end of the freeze: {frozen.message}"
        pushes.give_back(table, push_id, service_arn, claim.lease_until, reason)
        return Done(self.message_id, False, "waiting", reason)

    def _record_failure(self, failure: UpdateError, final: str) -> None:
        """The push's one record for this service (FAILED, the reason, the pushed reference), and its notification."""
        where = accounts.where_of(self.item.service_arn)
        record = DeploymentRecord.of_push_failure(
            self._provenance(),
            self.item.cluster,
            self.item.service,
            failure,
            self._intended_containers(),
            service_key(self.item.cluster, self.item.service, where),
            self.item.service_arn,
        )
        owed = frozenset({notify.FAILED}) if self.services.topic_arn else frozenset()
        items = record.items(self.services.locks.history_days, owed=owed)
        reason = failure.message if final == pushes.REFUSED else f"{failure.message} (after {self.receives} attempts)"
        pushes.fail(self.services.table, self.item.push_id, self.item.service_arn, final, reason, items)
        self._send_owed(
            pushes.Claim(False, pushes.FAILED, final, record_pk=items[0]["pk"]["S"], record_sk=items[0]["sk"]["S"])
        )

    def _send_owed(self, claim: pushes.Claim) -> None:
        if self.services.sns is None or not self.services.topic_arn or not claim.record_pk or not claim.record_sk:
            return
        outcomes.send_owed(
            self.services.table, self.services.sns, self.services.topic_arn, claim.record_pk, claim.record_sk
        )

    def _park(self, reason: str) -> Done:
        """Give the message back at once: SQS moves it to the dead-letter queue, where a person can look at it."""
        self._retry_in(0)
        return Done(self.message_id, True, pushes.FAILED, reason)

    def _back(self, reason: str) -> Done:
        return Done(self.message_id, True, "retry", reason)

    def _retry_in(self, seconds: int) -> None:
        if self.receipt:
            queue.retry_in(self.services.sqs, self.services.queue_url, self.receipt, seconds)

    # -- what the update is given ------------------------------------------------------------------

    def _change(self) -> ImageChange:
        # A digest-pinned deployment keeps the pushed tag on its revision, for the next push to compare with.
        pinned = any("@" in image for image in self.item.images.values())
        tags = {PUSHED_TAG_TAG: self.item.push.tag} if pinned and self.item.push.tag else None
        return ImageChange(recheck=self._recheck, revision_tags=tags)

    def _recheck(
        self, service: Mapping[str, Any], current: Mapping[str, Any], tags: Sequence[Mapping[str, str]]
    ) -> dict[str, ImageReference]:
        """The change decided again, under the lock, on the service as it is now; a refusal if it no longer holds."""
        service_tags = {t["key"]: t["value"] for t in service.get("tags") or []}
        if POLICY_TAG not in service_tags:
            raise ServiceChangedError("the service no longer follows pushes (its image-updater:policy tag is gone)")
        following = Following.of(service_tags)
        guard = self._guard()
        guard.check_target(PUSH, self.item.cluster_arn, self.item.service)
        followed = followed_containers(following, taskdef.container_images(current), self.item.push)
        verdicts = verdicts_for(following, followed, taskdef.tag_value(tags, PUSHED_TAG_TAG), self.item.push)
        decided: dict[str, ImageReference] = {}
        for name, wanted in self.item.images.items():
            target = parse_image(wanted)
            verdict = verdicts.get(name)
            if verdict is not None and verdict.action == "deploy":
                guard.check(PUSH, self.item.cluster_arn, [(self.item.service, [verdict.image or target])])
                decided[name] = verdict.image or target
            elif name in followed and followed[name].same_image_as(target):
                decided[name] = followed[name]  # it runs the pushed image already: nothing to do
            else:
                why = verdict.reason if verdict is not None else "it no longer runs the pushed repository"
                raise ServiceChangedError(f"the service changed since the push was decided: container '{name}': {why}")
        if self.item.redeploy and not any(v.action == "redeploy" for v in verdicts.values()):
            reasons = "; ".join(v.reason for v in verdicts.values()) or "it no longer runs the pushed repository"
            raise ServiceChangedError(f"the service changed since the push was decided: {reasons}")
        return decided

    def _settled(self, result: ChangeResult) -> dict[str, Any]:
        state = pushes.DEPLOYED if result.changed or result.deployment else pushes.SKIPPED
        deployment = (result.deployment or {}).get("id")
        return pushes.done_entry(
            self.services.table, self.item.push_id, self.item.service_arn, state, _deployed_reason(result), deployment
        )

    def _awaiting(self, approval: approvals.Approval) -> list[dict[str, Any]]:
        """The push's item says which approval its change waits for (written with the approval)."""
        reason = f"waiting for approval {approval.id}"
        return [
            pushes.done_entry(
                self.services.table, self.item.push_id, self.item.service_arn, AWAITING_APPROVAL, reason, None
            )
        ]

    def _guard(self) -> Guard:
        """The allowlists and the permissions as they are now, for the principal the push came from."""
        principal = self.item.provenance.get("principal") or identity.ANONYMOUS
        return Guard(
            identity.Principal(str(principal), "recorded"),
            self.services.access,
            self.services.permissions(),
            accounts.home,
        )

    def _provenance(self) -> Provenance:
        fields = self.item.provenance
        at = fields.get("at")
        return Provenance(
            "push",
            request_id=fields.get("requestId"),
            key_id=fields.get("keyId"),
            principal=fields.get("principal"),
            source_ip=fields.get("sourceIp"),
            at=datetime.fromisoformat(at) if isinstance(at, str) else Provenance("push").at,
            push=fields.get("push") or {"id": self.item.push_id, **self.item.push.as_dict()},
        )

    def _intended_containers(self) -> list[dict[str, str]]:
        return [
            {"name": name, "previousImage": self.item.running.get(name, ""), "image": image}
            for name, image in self.item.images.items()
        ]


def _deployed_reason(result: ChangeResult) -> str:
    if result.changed:
        return ", ".join(f"{c.name}: {c.previous_image} -> {c.image}" for c in result.containers)
    if result.deployment:
        return "redeployed on its running revision (the tag it runs was pushed again)"
    return "it already runs the pushed image"
