"""Every service the caller may read, in every account and region the stage reaches: `GET /services`.

The dashboard's first page. The calls go in waves, the calls of a wave at once
(chalicelib.aws.parallel), each wave over every place together:

1. ListClusters in each place (pages of 100), after AssumeRole where the place
   is another account (its credentials are then kept, chalicelib.aws.accounts);
2. ListServices of each cluster the caller may read (pages of 100);
3. DescribeServices, with tags, of the services the caller may read, 10 a call;
4. DescribeTaskDefinition of each distinct revision this process has not
   described before: a revision never changes, so what it runs is kept by ARN;
5. one Query (the five newest) of each service's deployment records, and the
   approvals kept (one Query, paged: every approval of the last 30 days past
   its deadline, the open ones counted), all at once. The newest record that
   deployed is the one shown: a refused request, a push dropped in a freeze or
   a change waiting for approval after a failed deployment does not hide it.

A place whose role cannot be assumed, or one of whose calls fails, is named in
`places` with the error, and its services are left out; the other places are
listed as usual. Narrowed to one cluster (`?cluster=`), a failure is the
request's error, as on `GET /clusters/{cluster}/services`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from chalicelib.aws import budget, ecs, parallel
from chalicelib.aws.accounts import Reach
from chalicelib.core.errors import ApprovalTagError, ClusterNotFoundError, UpdateError
from chalicelib.core.images import InvalidImageError, parse_image
from chalicelib.core.locations import name_of, service_key
from chalicelib.core.push_policy import POLICY_TAG
from chalicelib.core.results import as_datetime, iso8601, revision_of
from chalicelib.follow import discovery
from chalicelib.follow.service_deployments import AWAITING_ACTION
from chalicelib.state import approvals, records
from chalicelib.state.records import DeploymentRecord
from chalicelib.state.table import StateTable, from_item, service_partition

# What needs someone to look, in the order the overview names it when several apply.
FAILED = "FAILED"
ROLLED_BACK = "ROLLED_BACK"
STUCK = "STUCK"
PENDING_APPROVAL = "PENDING_APPROVAL"
STOPPED = "STOPPED"
# A service's newest records read for its newest deployment.
NEWEST_LOOKED_AT = 5
# Records that are deployments ECS made (not a refusal, a no-op, a dropped push or a change waiting for approval).
DEPLOYED = frozenset(
    {records.IN_PROGRESS, records.COMPLETED, records.FAILED, records.ROLLED_BACK, records.STOPPED, records.SUPERSEDED}
)
# A deployment still in progress after this long is stuck (ECS's own rollouts take minutes, not half an hour).
STUCK_AFTER = timedelta(minutes=30)
# Revisions kept per process: far more than a stage's services run; past it, the oldest half is forgotten.
MAX_KEPT_REVISIONS = 4096

Item = TypeVar("Item")


@dataclass(frozen=True)
class Viewer:
    """What the caller may see: the clusters on which some rule gives it read (by ARN), and each service."""

    may_read_cluster: Callable[[str], bool]
    may_read: Callable[[str, str], bool]


class RevisionContainers:
    """Each task definition revision's containers, by ARN, described once per process (a revision never changes:
    registering a change makes a new revision with a new ARN)."""

    def __init__(self, limit: int = MAX_KEPT_REVISIONS) -> None:
        self._kept: dict[str, list[dict[str, str]]] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, arn: str) -> list[dict[str, str]] | None:
        """The containers of `arn` if it was described before."""
        with self._lock:
            return self._kept.get(arn)

    def keep(self, arn: str, containers: list[dict[str, str]]) -> None:
        """Remember what `arn` runs."""
        with self._lock:
            if len(self._kept) >= self._limit:
                for old in list(self._kept)[: self._limit // 2]:
                    del self._kept[old]
            self._kept[arn] = containers

    def forget(self) -> None:
        """Forget every revision (tests start each AWS world afresh)."""
        with self._lock:
            self._kept.clear()


revisions = RevisionContainers()


@dataclass
class _Place:
    """One account and region being listed: its ECS client, the clusters the caller may read, and its error."""

    reach: Reach
    client: Any = None
    clusters: list[str] = field(default_factory=list)
    error: str | None = None

    def view(self) -> dict[str, Any]:
        where = {"account": self.reach.location.account, "region": self.reach.location.region}
        return {**where, "error": self.error} if self.error is not None else {**where, "clusters": len(self.clusters)}


@dataclass(frozen=True)
class _Cluster:
    place: _Place
    arn: str
    named: str  # as ECS is asked for it: the ARN, or the name the caller gave (its errors name it so)


@dataclass(frozen=True)
class _Batch:
    cluster: _Cluster
    services: list[str]


@dataclass(frozen=True)
class _Described:
    cluster: _Cluster
    service: dict[str, Any]


def everywhere(
    places: Sequence[Reach], viewer: Viewer, table: StateTable | None, now: datetime | None = None
) -> dict[str, Any]:
    """The overview of every service the caller may read in `places` (each account and region the stage reaches)."""
    with budget.within(discovery.DISCOVERY_BUDGET_SECONDS):
        listed = [_Place(reach) for reach in places]
        for place, arns in _settled(parallel.each(_list_clusters, listed), lambda place: place, strict=False):
            place.clusters = [arn for arn in arns if viewer.may_read_cluster(arn)]
        return _overview(listed, viewer, table, now or datetime.now(UTC), strict=False)


def one_cluster(
    place: Reach, cluster: str, viewer: Viewer, table: StateTable | None, now: datetime | None = None
) -> dict[str, Any]:
    """The overview narrowed to one cluster (a name at home, or an ARN) the caller may read; a failure is the
    request's error."""
    with budget.within(discovery.DISCOVERY_BUDGET_SECONDS):
        arn = place.location.cluster_arn(cluster)
        listed = _Place(place, client=place.client("ecs"), clusters=[arn])
        return _overview([listed], viewer, table, now or datetime.now(UTC), strict=True, named={arn: cluster})


def _list_clusters(place: _Place) -> list[str]:
    place.client = place.reach.client("ecs")  # elsewhere, AssumeRole first: a refused role is this place's error
    return ecs.list_cluster_arns(place.client)


def _overview(
    places: list[_Place],
    viewer: Viewer,
    table: StateTable | None,
    now: datetime,
    strict: bool,
    named: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    clusters = [
        _Cluster(place, arn, (named or {}).get(arn, arn))
        for place in places
        if place.error is None
        for arn in place.clusters
    ]
    batches: list[_Batch] = []
    for cluster, arns in _settled(
        parallel.each(lambda c: _service_arns(c, strict), clusters), lambda c: c.place, strict
    ):
        readable = [arn for arn in arns if viewer.may_read(cluster.arn, name_of(arn))]
        batches += [_Batch(cluster, batch) for batch in ecs.in_batches(readable)]
    described = [
        _Described(batch.cluster, service)
        for batch, found in _settled(parallel.each(_describe, batches), lambda b: b.cluster.place, strict)
        for service in found
    ]
    _describe_revisions(described, strict)
    shown = [d for d in described if d.cluster.place.error is None]
    newest, waiting = _history(shown, table)
    services = [_service_view(d, newest.get(_key_of(d)), waiting.get(_key_of(d), 0), now) for d in shown]
    services.sort(key=lambda s: (s["attention"] is None, s["account"], s["region"], s["cluster"], s["service"]))
    return {"services": services, "places": [place.view() for place in places], "generatedAt": iso8601(now)}


def _service_arns(cluster: _Cluster, strict: bool) -> list[str]:
    try:
        return ecs.list_service_arns(cluster.place.client, cluster.named)
    except ClusterNotFoundError:
        if strict:
            raise
        return []  # deleted since ListClusters named it (an INACTIVE cluster is listed for a while)


def _describe(batch: _Batch) -> list[dict[str, Any]]:
    return ecs.describe_services(batch.cluster.place.client, batch.cluster.named, batch.services)


def _describe_revisions(described: Sequence[_Described], strict: bool) -> None:
    """Describe, at once, every revision the services run that this process has not described before."""
    wanted: dict[str, _Place] = {}
    for entry in described:
        arn = entry.service.get("taskDefinition")  # absent for EXTERNAL-controlled services
        if arn and revisions.get(arn) is None and entry.cluster.place.error is None:
            wanted.setdefault(arn, entry.cluster.place)

    def describe(arn: str) -> list[dict[str, str]]:
        return discovery.revision_containers(wanted[arn].client, arn)

    outcomes = parallel.each(describe, list(wanted), discovery.PARALLEL_DESCRIBES)
    for arn, containers in _settled(outcomes, lambda arn: wanted[arn], strict):
        revisions.keep(arn, containers)


def _history(
    shown: Sequence[_Described], table: StateTable | None
) -> tuple[dict[str, DeploymentRecord], dict[str, int]]:
    """Each service's newest record (one Query each) and its open approvals (one Query for all), at once."""
    if table is None:
        return {}, {}
    keys = sorted({_key_of(d) for d in shown})
    open_approvals = parallel.start(lambda _: approvals.listed(table), None)
    found = parallel.values(lambda key: _newest_record(table, key), keys)
    listed = open_approvals()
    if listed.error is not None:
        raise listed.error
    now = approvals.now_utc()
    waiting: dict[str, int] = {}
    for approval in listed.value or []:
        if approval.status == approvals.PENDING and approval.expired_at(now):
            continue  # past its deadline: the sweep expires it
        for change in approval.services:
            waiting[change.key] = waiting.get(change.key, 0) + 1
    return {key: record for key, record in zip(keys, found, strict=True) if record is not None}, waiting


def _newest_record(table: StateTable, key: str) -> DeploymentRecord | None:
    """The newest of the service's newest records that is a deployment, else its newest record."""
    items = table.records_page(service_partition(key), NEWEST_LOOKED_AT).get("Items", [])
    found = [DeploymentRecord.from_item(from_item(item)) for item in items]
    return next((record for record in found if record.outcome in DEPLOYED), found[0] if found else None)


def _key_of(described: _Described) -> str:
    """The key of the service's records and approvals (chalicelib.core.locations)."""
    return service_key(described.cluster.arn, described.service["serviceName"], described.cluster.place.reach.where)


def _service_view(
    described: _Described, newest: DeploymentRecord | None, pending: int, now: datetime
) -> dict[str, Any]:
    """One service as the overview shows it."""
    service = described.service
    location = described.cluster.place.reach.location
    running = service.get("taskDefinition")
    tags = {t.get("key"): t.get("value") for t in service.get("tags") or [] if isinstance(t, Mapping)}
    return {
        "account": location.account,
        "region": location.region,
        "cluster": name_of(described.cluster.arn),
        "clusterArn": described.cluster.arn,
        "service": service["serviceName"],
        "status": service.get("status"),
        "taskDefinition": _revision_name(running) if running else None,
        "containers": [_container_view(c) for c in (revisions.get(running) or [] if running else [])],
        "policy": tags.get(POLICY_TAG),
        "approvals": _required_approvals(service),
        "newest": _newest_view(newest) if newest is not None else None,
        "pendingApprovals": pending,
        "attention": attention_of(newest, pending, now),
    }


def attention_of(newest: DeploymentRecord | None, pending: int, now: datetime) -> str | None:
    """Why a service needs someone to look (FAILED, ROLLED_BACK, STUCK, PENDING_APPROVAL, STOPPED), or None."""
    outcome = newest.outcome if newest is not None else None
    if outcome in (records.FAILED, records.ROLLED_BACK):
        return outcome
    started = as_datetime(newest.at) if newest is not None else None
    if newest is not None and outcome == records.IN_PROGRESS and is_paused(newest):
        return PENDING_APPROVAL  # ECS holds it at a PAUSE hook for people to decide: not stuck
    if outcome == records.IN_PROGRESS and started is not None and now - started > STUCK_AFTER:
        return STUCK
    if pending > 0 or outcome == records.PENDING_APPROVAL:
        return PENDING_APPROVAL
    if outcome == records.STOPPED:
        return STOPPED
    return None


def is_paused(record: DeploymentRecord) -> bool:
    """True while ECS holds the record's deployment at a PAUSE hook (chalicelib.deploy.pauses)."""
    return (record.pause or {}).get("status") == AWAITING_ACTION


def _newest_view(record: DeploymentRecord) -> dict[str, Any]:
    return {
        "deploymentId": record.deployment_id,
        "action": record.action,
        "outcome": record.outcome,
        "paused": is_paused(record),
        "lifecycleStage": record.lifecycle_stage,
        "reason": record.outcome_reason,
        "at": record.at,
        "by": record.principal or record.key_id,
        "from": _side(record.previous_task_definition, record.containers, "previousImage"),
        "to": _side(record.task_definition, record.containers, "image"),
    }


def _side(reference: Mapping[str, Any] | None, containers: Iterable[Mapping[str, Any]], image: str) -> dict[str, Any]:
    """One side of a record's change: the revision (`family:revision`) and each container's image."""
    revision = f"{reference.get('family')}:{reference.get('revision')}" if reference else None
    return {"taskDefinition": revision, "images": {c["name"]: c.get(image) for c in containers if "name" in c}}


def _container_view(container: Mapping[str, str]) -> dict[str, Any]:
    image = container["image"]
    try:
        parsed = parse_image(image)
    except InvalidImageError:
        return {"name": container["name"], "image": image, "tag": None, "digest": None}
    return {"name": container["name"], "image": image, "tag": parsed.tag, "digest": parsed.digest}


def _revision_name(arn: str) -> str:
    revision = revision_of(arn)
    return f"{revision['family']}:{revision['revision']}"


def _required_approvals(service: Mapping[str, Any]) -> int | None:
    """The approvals the service's tags require (0: none); None when its tag cannot be read (changes are refused)."""
    try:
        return approvals.requirement_of(service).required
    except ApprovalTagError:
        return None


def _settled(
    outcomes: Sequence[parallel.Outcome[Item, Any]], place_of: Callable[[Item], _Place], strict: bool
) -> list[tuple[Item, Any]]:
    """The outcomes that succeeded, of places with no error yet; a failure is its place's error (or, `strict`, the
    request's). A bug is never a place's error: it is raised."""
    settled: list[tuple[Item, Any]] = []
    for outcome in outcomes:
        place = place_of(outcome.item)
        if outcome.error is not None:
            if strict or not isinstance(outcome.error, UpdateError):
                raise outcome.error
            place.error = place.error or outcome.error.message
        elif place.error is None:
            settled.append((outcome.item, outcome.value))
    return settled
