"""Voting on approvals, and deploying on the N-th approval through the one update path.

- Each principal counts once; the requester may reject (withdraw) its own
  change but never approve it; one reject ends the approval (REJECTED).
- Every vote is a conditional write on the status and the count it was read
  with: two voters at the same instant are applied one after the other (the
  loser reads again), and only one of them can be the N-th.
- The N-th approval moves the approval to APPROVING and deploys the change
  through chalicelib.deploy.update, which re-checks under the lock that every
  service still runs the revision the approval was made against; if one does
  not, nothing deploys and the approval ends STALE. The release that writes
  the deployment's records also marks the approval DEPLOYED and its
  PENDING_APPROVAL records APPROVED.
- A deadline that has passed ends the approval as EXPIRED: on every read, and
  in the `approvals_sweep` function, which also sends the notifications owed.
- A `pause` (an ECS deployment waiting at a PAUSE hook, chalicelib.deploy.pauses)
  takes the same votes; its deciding vote (the N-th approval, or a reject) is
  carried out by telling ECS to continue or to roll back instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.access import identity
from chalicelib.access.audit import Provenance
from chalicelib.access.guard import Guard
from chalicelib.access.permissions import APPROVE, READ
from chalicelib.aws.accounts import Reach
from chalicelib.core.errors import (
    ApprovalClosedError,
    ApprovalPendingError,
    FrozenError,
    InvalidRequestError,
    NotPermittedError,
    ServiceBusyError,
    ServiceChangedError,
    UpdateError,
    echo_input,
)
from chalicelib.core.images import ImageReference, parse_image
from chalicelib.core.locations import cluster_arn_of
from chalicelib.core.requests import FanOutRequest, ImageChange, Recheck, Target
from chalicelib.core.results import ChangeResult, FanOutResult, iso8601
from chalicelib.deploy import pauses
from chalicelib.deploy.update import update_services
from chalicelib.deploy.verify import Verifier
from chalicelib.follow import notify
from chalicelib.state import approvals, freezes, pushes, records
from chalicelib.state.approvals import Approval, Transition
from chalicelib.state.lock import Locks
from chalicelib.state.table import StateTable

logger = logging.getLogger(__name__)

# A vote whose conditional write lost to another voter's reads the approval again, this many times at most.
VOTE_ATTEMPTS = 8
DECISION_FIELDS = ("decision", "comment")


class StaleApprovalError(ServiceChangedError):
    """A service no longer runs the revision the approval was made against: nothing deployed."""


@dataclass(frozen=True)
class Vote:
    """A validated POST /approvals/{id} body."""

    decision: str
    comment: str | None = None


def parse_vote(body: Mapping[str, Any]) -> Vote:
    """`{"decision": "approve" | "reject", "comment": "…"}`; InvalidRequestError names what is wrong."""
    unknown = sorted(str(k) for k in body if k not in DECISION_FIELDS)
    if unknown:
        raise InvalidRequestError(
            f"unknown field(s) {', '.join(map(echo_input, unknown))}; a vote takes decision, comment"
        )
    decision = body.get("decision")
    if decision not in (approvals.APPROVE, approvals.REJECT):
        raise InvalidRequestError('\'decision\' must be "approve" or "reject"')
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > approvals.MAX_COMMENT):
        raise InvalidRequestError(f"'comment' must be a string of at most {approvals.MAX_COMMENT} characters")
    return Vote(str(decision), comment.strip() or None if isinstance(comment, str) else None)


@dataclass(frozen=True)
class Deployer:
    """What the N-th approval deploys with: where the services are, the locks, the checks before a write."""

    reach: Callable[..., Reach]
    locks: Locks
    verifier: Callable[[Reach], Verifier]


def read(table: StateTable, approval_id: str) -> Approval:
    """The approval, EXPIRED first if its deadline has passed (the check on every read)."""
    return expire_if_due(table, approvals.get(table, approval_id), approvals.now_utc())


def pending(table: StateTable, guard: Guard, cluster: str | None = None, service: str | None = None) -> list[Approval]:
    """The approvals the caller may vote on (PENDING, or APPROVING or REJECTING while their decision is carried
    out), of a cluster and service when given (names or ARNs); the due ones expired first."""
    now = approvals.now_utc()
    found = [expire_if_due(table, a, now) for a in approvals.listed(table)]
    return [
        a for a in found if a.status in approvals.OPEN and _concerns(a, cluster, service) and may(guard, APPROVE, a)
    ]


def may(guard: Guard, action: str, approval: Approval) -> bool:
    """True when the guard gives `action` on every service of the approval."""
    return all(guard.allows(action, _cluster_arn(approval), s.service) for s in approval.services)


def approvers(guard: Guard, approval: Approval) -> list[str] | None:
    """Who may approve it: the principal patterns of the rules that give `approve` on all its services (None
    without a permissions file: anyone); the requester never may."""
    return guard.principals_allowed(APPROVE, _cluster_arn(approval), [s.service for s in approval.services])


def check_may_see(guard: Guard, approval: Approval) -> None:
    """Refuse (403) a caller who may neither read nor approve the approval's services."""
    if not (may(guard, READ, approval) or may(guard, APPROVE, approval)):
        names = ", ".join(s.name for s in approval.services)
        raise NotPermittedError(
            f"principal {guard.principal.id} may not see approval {approval.id}: no rule gives it read or approve "
            f"on service {names}"
        )


def vote(table: StateTable, approval_id: str, guard: Guard, cast: Vote, deployer: Deployer) -> dict[str, Any]:
    """Cast one vote; the N-th approval deploys. Returns {"approval", "deployment"?}.

    Votes go by person (identity.person_of): every session of one role is one voter.
    """
    principal = identity.person_of(guard.principal.id)
    for _ in range(VOTE_ATTEMPTS):
        approval = read(table, approval_id)
        _check_vote(guard, approval, cast)
        now = approvals.now_utc()
        ballot = {"decision": cast.decision, "comment": cast.comment, "at": iso8601(now), "by": guard.principal.id}
        try:
            deciding = cast.decision == approvals.REJECT or len(approval.approvals) + 1 >= approval.required
            if approval.kind == approvals.PAUSE and deciding:
                # Where ECS is, and whether a freeze stops the deployment going on, before the decision is taken.
                client = deployer.reach(approval.cluster, *[s.service for s in approval.services]).client("ecs")
                if cast.decision == approvals.APPROVE:
                    _check_not_frozen(approval, deployer)
                to = approvals.APPROVING if cast.decision == approvals.APPROVE else approvals.REJECTING
                acting = approvals.apply(table, approval, Transition(to, vote=(principal, ballot)), now)
                return pauses.decide(table, acting, client, principal, cast.comment)
            if cast.decision == approvals.REJECT:
                reason = f"rejected by {principal}" + (f": {cast.comment}" if cast.comment else "")
                transition = Transition(
                    approvals.REJECTED,
                    reason=reason,
                    record_outcome=records.REJECTED,
                    owes=notify.APPROVAL_REJECTED,
                    vote=(principal, ballot),
                )
                ended = approvals.apply(
                    table, approval, transition, now, approvals.push_entries(table, approval, reason)
                )
                return {"approval": ended.as_dict()}
            if len(approval.approvals) + 1 < approval.required:
                return {"approval": approvals.cast(table, approval, principal, ballot).as_dict()}
            transition = Transition(approvals.APPROVING, vote=(principal, ballot), owes=notify.APPROVAL_APPROVED)
            approving = approvals.apply(table, approval, transition, now)
        except approvals.Conflict:
            continue  # another vote or transition came first: read it again
        return _deploy(table, approving, deployer, principal)
    raise ServiceBusyError(f"approval {approval_id} kept changing while the vote was cast; try again")


def _check_not_frozen(approval: Approval, deployer: Deployer) -> None:
    """Refuse (423) continuing a paused deployment while a freeze or window holds its service, unless the
    approver's rule says `bypassFreeze`: going on moves production traffic. Rolling back is never refused."""
    check = deployer.locks.freeze_check
    keys = [s.key for s in approval.services if not check.bypass(s.key)]
    stops = freezes.in_force_for(deployer.locks.table, check, keys) if keys else {}
    if stops:
        refused = freezes.refusal(stops)
        refused.message += f"; pause {approval.id} stays pending: approve it after the freeze, or reject it"
        raise refused


def _check_vote(guard: Guard, approval: Approval, cast: Vote) -> None:
    principal = guard.principal.id
    if not may(guard, APPROVE, approval):
        names = ", ".join(s.name for s in approval.services)
        raise NotPermittedError(f"principal {principal} may not approve changes to service {names}")
    if approval.status != approvals.PENDING:
        raise ApprovalClosedError(
            f"approval {approval.id} is {approval.status}"
            + (f" ({approval.reason})" if approval.reason else "")
            + ": it takes no more votes"
        )
    person = identity.person_of(principal)
    if cast.decision == approvals.APPROVE and person == identity.person_of(approval.requested_by):
        raise NotPermittedError(f"principal {principal} requested this change and cannot approve it")
    if person in {identity.person_of(voter) for voter in approval.votes}:
        raise ApprovalClosedError(f"principal {principal} voted on approval {approval.id} already; each counts once")


def _deploy(table: StateTable, approval: Approval, deployer: Deployer, voter: str) -> dict[str, Any]:
    """Deploy what was approved (APPROVING) through the update path; end the approval however that goes, but for
    a deployment that may work later (a freeze, a busy lock, AWS failing): then it is pending again, without the
    vote that could not deploy it, for that vote to be cast again."""
    try:
        batch = deploy_approved(approval, deployer, table)
    except StaleApprovalError as stale:
        _end(table, approval, approvals.STALE, stale.message, records.STALE, notify.APPROVAL_STALE)
        raise
    except ApprovalPendingError:
        raise  # not reached: the approved change does not ask again
    except UpdateError as failure:
        if isinstance(failure, FrozenError) or failure.retryable:
            reason = f"approved by {voter}, but not deployed: {failure.message}"
            try:
                approvals.reopen(table, approval, voter, reason, approvals.now_utc())
            except approvals.Conflict:
                logger.warning("approval %s moved on before it could be reopened", approval.id)
            else:
                failure.message += f"; approval {approval.id} is pending again: approve it again later"
                raise

        reason = f"the approved deployment failed: {failure.message}"
        _end(table, approval, approvals.FAILED, reason, records.ERROR, notify.APPROVAL_FAILED)
        raise
    except Exception:
        logger.exception("the deployment of approval %s failed unexpectedly", approval.id)
        reason = "the approved deployment failed with an internal error; it has been logged"
        _end(table, approval, approvals.FAILED, reason, records.ERROR, notify.APPROVAL_FAILED)
        raise
    deployments = _deployments(batch.services)
    deployed = approvals.moved(approval, Transition(approvals.DEPLOYED, deployments=deployments), approvals.now_utc())
    return {"approval": deployed.as_dict(), "deployment": batch.as_dict()}


def deploy_approved(approval: Approval, deployer: Deployer, table: StateTable) -> FanOutResult:
    """The approved change through the one update path, only onto the revisions it was approved against."""
    identifiers = [s.service for s in approval.services]
    target = deployer.reach(approval.cluster, *identifiers)
    request = FanOutRequest(
        approval.cluster,
        tuple(
            Target(s.service, ImageChange(recheck=_unchanged_since(s), revision_tags=approval.revision_tags or None))
            for s in approval.services
        ),
        force_new_deployment=approval.force_new_deployment,
        name_services=len(approval.services) > 1,
        record_failures=False,  # the approval's own records say how it ended
    )
    provenance = _provenance(approval)

    def finish(results: Sequence[ChangeResult]) -> list[dict[str, Any]]:
        now = approvals.now_utc()
        done = Transition(approvals.DEPLOYED, deployments=_deployments(results))
        entries = [approvals.transition_entry(table, approval, done, now, conditional=False)]
        entries += approvals.record_entries(table, approval, records.APPROVED, f"approved by {_by(approval)}", now)
        push = (approval.provenance or {}).get("push")
        if push and push.get("id"):
            for change, result in zip(approval.services, results, strict=True):
                deployment = (result.deployment or {}).get("id")
                reason = f"approved ({approval.id}) and deployed"
                entries.append(
                    pushes.done_entry(table, push["id"], change.service, pushes.DEPLOYED, reason, deployment)
                )
        return entries

    # The approval's own table holds the locks and records: its DEPLOYED goes with them, whatever the settings say.
    locks = deployer.locks if deployer.locks.table is not None else replace(deployer.locks, table=table)
    return update_services(
        target.client("ecs"),
        request,
        locks,
        provenance,
        verifier=deployer.verifier(target),
        gate=approvals.APPROVED_ALREADY,
        finish=finish,
    )


def expire_if_due(table: StateTable, approval: Approval, now: datetime) -> Approval:
    """EXPIRED if its deadline passed while PENDING (the approval as it is now either way)."""
    if not approval.expired_at(now):
        return approval
    reason = (
        f"not approved by its deadline {iso8601(approval.deadline)} ({len(approval.approvals)} of {approval.required})"
        if approval.kind != approvals.PAUSE
        else pauses.expiry_reason(approval)
    )
    transition = Transition(approvals.EXPIRED, reason, records.EXPIRED, notify.APPROVAL_EXPIRED)
    try:
        return approvals.apply(table, approval, transition, now, approvals.push_entries(table, approval, reason))
    except approvals.Conflict:
        return approvals.get(table, approval.id)


@dataclass(frozen=True)
class Swept:
    """What one run of the sweep did."""

    expired: list[str]
    failed: list[str]
    sent: list[str]
    reopened: list[str] = field(default_factory=list)  # pauses whose decision never finished

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the function's log line."""
        return {"expired": self.expired, "failed": self.failed, "sent": self.sent, "reopened": self.reopened}


def sweep(table: StateTable, sns: Any | None, topic_arn: str | None) -> Swept:
    """Expire the approvals past their deadline, end the ones whose deployment never reported (FAILED), reopen
    the pauses whose decision never finished, and send every notification owed (without a topic, they are
    dropped as sent)."""
    now = approvals.now_utc()
    swept = Swept([], [], [])
    for approval in approvals.listed(table, open_only=False):
        if approval.expired_at(now):
            approval = expire_if_due(table, approval, now)
            swept.expired.append(approval.id)
        elif approval.status in approvals.ACTING and _approving_since(approval) < now - timedelta(
            seconds=approvals.APPROVING_SECONDS
        ):
            if approval.kind == approvals.PAUSE:
                reopened = pauses.reopen_undecided(table, approval)
                if reopened is not None:
                    approval = reopened
                    swept.reopened.append(approval.id)
            else:
                reason = "the approved deployment never reported how it ended; see the services' history"
                ended = _end(table, approval, approvals.FAILED, reason, records.ERROR, notify.APPROVAL_FAILED)
                if ended is not None:
                    approval = ended
                    swept.failed.append(approval.id)
        swept.sent.extend(f"{approval.id}:{event}" for event in send_owed(table, sns, topic_arn, approval))
    return swept


def send_owed(table: StateTable, sns: Any | None, topic_arn: str | None, approval: Approval) -> list[str]:
    """Send the notifications an approval owes, each marked sent once published (without a topic, dropped as
    sent); returns their events."""
    for event in sorted(approval.owed):
        if sns is not None and topic_arn:
            notify.publish(sns, topic_arn, notify.approval_notification(event, approval.as_dict()))
        approvals.sent(table, approval.id, event)
    return sorted(approval.owed)


def _end(table: StateTable, approval: Approval, to: str, reason: str, outcome: str, owes: str) -> Approval | None:
    """End an APPROVING (or a pause's REJECTING) approval; None when it had moved on meanwhile."""
    try:
        return approvals.apply(
            table,
            approval,
            Transition(to, reason, outcome, owes),
            approvals.now_utc(),
            approvals.push_entries(table, approval, reason),
        )
    except approvals.Conflict:
        logger.warning("approval %s moved on before it could be marked %s", approval.id, to)
        return None


def _unchanged_since(change: approvals.ServiceChange) -> Recheck:
    """The approved images, under the lock, only if the service still runs what the approval was made against."""

    def recheck(
        service: Mapping[str, Any], _current: Mapping[str, Any], _tags: Sequence[Mapping[str, str]]
    ) -> dict[str, ImageReference]:
        now = str(service.get("taskDefinition", ""))
        if now != change.task_definition:
            raise StaleApprovalError(
                f"service '{change.name}' runs {_label(now)} now, not {_label(change.task_definition)}, which the "
                "approval was made against; nothing was deployed (ask again for the change)"
            )
        return {name: parse_image(image) for name, image in change.images().items()}

    return recheck


def _provenance(approval: Approval) -> Provenance:
    fields = approval.provenance or {}
    return Provenance(
        approval.action,
        request_id=fields.get("requestId"),
        key_id=fields.get("keyId"),
        principal=approval.requested_by,
        source_ip=fields.get("sourceIp"),
        push=fields.get("push"),
        batch_id=fields.get("batchId"),
        approval={"id": approval.id, "approvedBy": approval.approvals},
    )


def _deployments(results: Sequence[ChangeResult]) -> list[dict[str, Any]]:
    return [
        {
            "service": r.service,
            "deploymentId": (r.deployment or {}).get("id"),
            "taskDefinition": r.task_definition.as_reference(),
        }
        for r in results
    ]


def _approving_since(approval: Approval) -> datetime:
    moments = [approvals.moment_of(str(v["at"])) for v in approval.votes.values() if v.get("at")]
    return max(moments) if moments else approval.requested_at


def _by(approval: Approval) -> str:
    return ", ".join(approval.approvals) or "nobody"


def _cluster_arn(approval: Approval) -> str:
    arn = approval.services[0].service_arn if approval.services else ""
    return cluster_arn_of(arn) if arn else approval.cluster


def _concerns(approval: Approval, cluster: str | None, service: str | None) -> bool:
    if cluster is not None:
        names = {approval.cluster, approval.cluster.rsplit("/", 1)[-1], _cluster_arn(approval)}
        if cluster not in names:
            return False
    if service is not None:
        return any(service in (s.name, s.service, s.service_arn) for s in approval.services)
    return True


def _label(task_definition_arn: str) -> str:
    return task_definition_arn.rsplit("/", 1)[-1] or "nothing"
