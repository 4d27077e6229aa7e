"""Roll services onto new images, one or many in one request, all or nothing: the one update path.

`/update` (one service or `services`), `/apply`, a registry push and a pipeline
job all come here: one lock set, one record per service, one audit. For N
services on K distinct running task definitions, of which K' change:

1. take every service's lock together (one DynamoDB call, see chalicelib.state.lock);
2. read everything first: DescribeServices in batches of 10 and one
   DescribeTaskDefinition per distinct running revision, at once, and, alongside,
   look up each image that would change (chalicelib.deploy.verify: it exists, it
   offers the task's platform). Every check runs here (missing, not ACTIVE or
   not ECS-controlled, no container to choose, an image that is not there); any
   failure names the service and nothing is written;
3. write, at once: one RegisterTaskDefinition per distinct revision that changes
   (services on the same revision share the new one), then one UpdateService per
   service that changes;
4. if a write fails, check the failed ones (a timeout can hide a success), put
   back every service moved, deregister every new revision no service is
   left on, and answer the failure, saying what was put back and what is left;
5. let the locks go and write one record per service, in one transaction.

Between the reads and the writes the update path asks whether the change may be
made at all: a service tagged `image-updater:approvals` (its tags came with
DescribeServices: no call) makes a change that waits for approval instead
(chalicelib.deploy.gate): nothing is written to ECS, the locks go, and the
transaction that lets them go writes the approval and a PENDING_APPROVAL record
per service; the caller gets ApprovalPendingError (202).

So a change of one service costs four ECS calls (DescribeServices,
DescribeTaskDefinition, RegisterTaskDefinition, UpdateService), a no-op or a dry
run two, a forced redeploy three (plus, under VERIFY_IMAGES, the registry
lookup of each image named, made alongside the reads). The new revision is a faithful copy of the one
the service runs now, with only the images changed, tagged with the revision it
replaced.

The steps live in their own modules: `plan` decides what to write from what was
read (pure), `rollout` reads, writes and keeps the undo log a failure replays,
and `notes` words what a failure did and left.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.aws import accounts, budget
from chalicelib.core.errors import ApprovalPendingError
from chalicelib.core.images import ImageReference
from chalicelib.core.requests import FanOutRequest, Target, UpdateRequest
from chalicelib.core.results import ChangeResult, FanOutResult
from chalicelib.deploy import gate as approval_gate
from chalicelib.deploy.rollout import Rollout
from chalicelib.deploy.verify import Verifier
from chalicelib.state import approvals, followers
from chalicelib.state.lock import NO_LOCKS, Held, Locks
from chalicelib.state.table import service_key

# Entries to write with the records, for the result of one service (`cluster/service`).
Settle = Callable[[str, ChangeResult], Sequence[dict[str, Any]]]
# Entries to write with the records, for the results of the whole request (an approval's own deployment).
Finish = Callable[[Sequence[ChangeResult]], Sequence[dict[str, Any]]]
# Entries to write with the approval a change waits for (a push's item says so).
Pending = Callable[[approvals.Approval], Sequence[dict[str, Any]]]


def update_image(
    client: Any,
    request: UpdateRequest,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
    *,
    verifier: Verifier | None = None,
    gate: approvals.Gate = approvals.ASK,
) -> ChangeResult:
    """Roll one service onto the requested images; see the module docstring for the calls made."""
    fan_out = FanOutRequest(
        request.cluster,
        (Target(request.service, request.change),),
        force_new_deployment=request.force_new_deployment,
        dry_run=request.dry_run,
    )
    return _update(client, fan_out, locks, provenance, verifier=verifier, gate=gate)[0]


def update_target(
    client: Any,
    cluster: str,
    target: Target,
    *,
    force_new_deployment: bool = False,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
    settle: Settle | None = None,
    verifier: Verifier | None = None,
    gate: approvals.Gate = approvals.ASK,
    pending: Pending | None = None,
) -> ChangeResult:
    """Roll one service onto a change decided elsewhere (a queued push): the same path as `/update`.

    A no-op leaves no record, and a failure none either (the caller records a
    push's failure once, when it stops retrying); `settle` gives entries to write
    with the record (the push's own state).
    """
    request = FanOutRequest(
        cluster, (target,), force_new_deployment=force_new_deployment, record_no_change=False, record_failures=False
    )
    return _update(client, request, locks, provenance, settle=settle, verifier=verifier, gate=gate, pending=pending)[0]


def update_services(
    client: Any,
    request: FanOutRequest,
    locks: Locks = NO_LOCKS,
    provenance: Provenance | None = None,
    allow_image: Callable[[str, ImageReference], None] | None = None,
    *,
    verifier: Verifier | None = None,
    gate: approvals.Gate = approvals.ASK,
    finish: Finish | None = None,
) -> FanOutResult:
    """Roll several services onto the requested images together: all of them, or none.

    `allow_image`, when given, checks in the read phase each image that would
    change (a container given the image it runs already is not checked: an
    unchanged description applies whatever the allowlists say of it).
    """
    batch_id = None if request.dry_run else uuid.uuid4().hex
    if provenance is not None:
        provenance = replace(provenance, batch_id=batch_id)
    results = _update(
        client, request, locks, provenance, batch_id, allow_image, verifier=verifier, gate=gate, finish=finish
    )
    return FanOutResult(_cluster_name(request.cluster, results), results, request.dry_run, batch_id)


def _update(
    client: Any,
    request: FanOutRequest,
    locks: Locks,
    provenance: Provenance | None,
    batch_id: str | None = None,
    allow_image: Callable[[str, ImageReference], None] | None = None,
    settle: Settle | None = None,
    verifier: Verifier | None = None,
    gate: approvals.Gate = approvals.ASK,
    finish: Finish | None = None,
    pending: Pending | None = None,
) -> list[ChangeResult]:
    """The one update path: lock, read, (ask for approval,) write, undo on failure, record (see the module
    docstring).

    `provenance` says who asked: its audit tags go on every new revision and its
    identity into every record (none given: no audit tags). The transaction that
    writes the records also keeps the follower index current for every service
    moved, and writes what `settle` gives for each result.
    """
    audit_tags = provenance.tags() if provenance else {}
    who = provenance or Provenance("update", batch_id=batch_id)
    with budget.within(budget.MAIN_SECONDS):
        if request.dry_run:
            return Rollout(client, request, audit_tags, allow_image, verifier).run()
        where = accounts.where_of(request.cluster, *(target.service for target in request.targets))
        keys = [service_key(request.cluster, target.service, where) for target in request.targets]
        hold = locks.hold(
            keys, who, force_new_deployment=request.force_new_deployment, record_failures=request.record_failures
        )
        with hold as held:
            rollout = Rollout(client, request, audit_tags, allow_image, verifier)
            plans = rollout.read()
            asked = approval_gate.ask(request, plans, keys, gate, locks, who, held)
            if asked is not None:
                if pending is not None:
                    held.also(pending(asked))
            else:
                results = rollout.write(plans)
                _recorded(request, locks, rollout, held, keys, results, settle, finish)
                return results
        assert asked is not None
        raise ApprovalPendingError(approval_gate.message(asked), asked.as_dict())


def _recorded(
    request: FanOutRequest,
    locks: Locks,
    rollout: Rollout,
    held: Held,
    keys: Sequence[str],
    results: Sequence[ChangeResult],
    settle: Settle | None,
    finish: Finish | None,
) -> None:
    """What the release writes for a change made: a record per service, the follower index, what settles it."""
    for key, result in zip(keys, results, strict=True):
        if request.record_no_change or result.changed or result.deployment is not None:
            held.succeeded(key, result)
    if locks.table is not None:
        for plan, revision in rollout.moved_revisions():
            new_tags = (plan.registration or {}).get("tags", [])
            held.also(followers.moved(locks.table.name, plan.service, plan.current, revision, new_tags))
        if settle is not None:
            for key, result in zip(keys, results, strict=True):
                held.also(settle(key, result))
    if finish is not None:
        held.also(finish(results))


def _cluster_name(cluster: str, results: Sequence[ChangeResult]) -> str:
    return results[0].cluster if results else cluster.rsplit("/", 1)[-1]
