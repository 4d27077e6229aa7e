"""The approval gate of the update path: between the reads and the writes, does the change wait for people?

A service opts in with its tag `image-updater:approvals` = N (1 to 5) and
optionally `image-updater:approval-deadline` (hours, 24 by default); the tags
come with DescribeServices, so asking costs nothing for a service without them.
A request that would change the image of such a service (a forced redeploy of
the running revision changes no image and needs none) writes nothing to ECS:
with the locks' release it writes the approval (chalicelib.state.approvals) and
a PENDING_APPROVAL record per service it would change. A request for several
services waits whole (all or nothing, as it would deploy): the most votes and
the shortest deadline any of them asks for.

A caller whose rule says `bypassApproval` for every such service deploys at
once; its records say `approval` among what was bypassed. A newer change that
asks for approval supersedes the pending approvals of the same services and
containers (SUPERSEDED, their votes not carried over, the voters told).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from chalicelib.access.audit import Provenance
from chalicelib.core.errors import NoHistoryError
from chalicelib.core.requests import FanOutRequest
from chalicelib.core.results import iso8601
from chalicelib.deploy.plan import Plan, dry_result
from chalicelib.follow import notify
from chalicelib.state import approvals, records
from chalicelib.state.lock import Held, Locks
from chalicelib.state.table import StateTable

logger = logging.getLogger(__name__)

BYPASSED = "approval"  # what a record's `bypassed` says of a change made without the approval its service asks


def ask(
    request: FanOutRequest,
    plans: Sequence[Plan],
    keys: Sequence[str],
    gate: approvals.Gate,
    locks: Locks,
    who: Provenance,
    held: Held,
) -> approvals.Approval | None:
    """The approval the change must wait for (its records and item given to `held`), or None: write it now."""
    changing = [(key, plan) for key, plan in zip(keys, plans, strict=True) if plan.is_change]
    if not gate.active or not changing:
        return None
    required = {key: approvals.requirement_of(plan.service) for key, plan in changing}
    asking = [key for key, _ in changing if required[key].required > 0]
    if not asking:
        return None
    waiting = [key for key in asking if not gate.bypass(key)]
    if not waiting:
        for key in asking:
            held.bypass(key, [BYPASSED])
        return None
    table = locks.table
    if table is None:
        raise NoHistoryError(
            "this stage keeps no approvals (its STATE_TABLE is not set), and the change needs one; nothing was changed"
        )
    now = approvals.now_utc()
    approval_id = approvals.new_id()
    services = []
    for key, plan in changing:
        record = held.succeeded(key, dry_result(plan))
        record = replace(
            record,
            changed=False,
            status=202,
            outcome=records.PENDING_APPROVAL,
            outcome_reason=f"waiting for approval {approval_id}",
            approval={"id": approval_id},
            task_definition=None,
        )
        held.records[key] = record
        services.append(
            approvals.ServiceChange(
                service=plan.target.service,
                name=plan.name,
                key=key,
                service_arn=str(plan.service.get("serviceArn", "")),
                task_definition=str(plan.current["taskDefinitionArn"]),
                containers=[change.as_dict() for change in plan.changes if change.image != change.previous_image],
                record_sk=record.sort_key,
            )
        )
    revision_tags: dict[str, str] = {}
    for target in request.targets:
        revision_tags.update(target.change.revision_tags or {})
    approval = approvals.Approval(
        id=approval_id,
        kind=approvals.DEPLOY,
        status=approvals.PENDING,
        cluster=request.cluster,
        services=services,
        required=max(required[key].required for key in waiting),
        requested_by=who.principal or "unknown",
        requested_at=now,
        deadline=approvals.deadline_of(now, min(required[key].deadline_hours for key in waiting)),
        action=who.action,
        provenance={
            "requestId": who.request_id,
            "keyId": who.key_id,
            "sourceIp": who.source_ip,
            "push": dict(who.push) if who.push else None,
            "batchId": who.batch_id,
        },
        force_new_deployment=request.force_new_deployment,
        revision_tags=revision_tags,
        owed=[notify.APPROVAL_REQUESTED],
    )
    _supersede(table, approval, now)
    held.also(approvals.creation_entries(table, approval))
    return approval


def _supersede(table: StateTable, newer: approvals.Approval, now: object) -> None:
    """End the pending approvals of the same services and containers: SUPERSEDED, the voters told."""
    keys = [s.key for s in newer.services]
    containers = {s.key: {c["name"] for c in s.containers} for s in newer.services}
    for older in approvals.pending_for(approvals.listed(table), keys, containers):
        transition = approvals.Transition(
            approvals.SUPERSEDED,
            reason=f"superseded by approval {newer.id}, a newer change requested by {newer.requested_by}",
            record_outcome=records.SUPERSEDED,
            owes=notify.APPROVAL_SUPERSEDED,
        )
        try:
            approvals.apply(
                table,
                older,
                transition,
                approvals.now_utc(),
                approvals.push_entries(table, older, transition.reason or ""),
            )
        except approvals.Conflict:
            logger.info("approval %s changed while being superseded; left as it is now", older.id)


def message(approval: approvals.Approval) -> str:
    """What the 202 says."""
    names = ", ".join(f"'{s.name}'" for s in approval.services)
    votes = "1 approval" if approval.required == 1 else f"{approval.required} approvals"
    return (
        f"the change of service {names} waits for {votes}: approval {approval.id} is pending until "
        f"{iso8601(approval.deadline)}; nothing was deployed yet"
    )
