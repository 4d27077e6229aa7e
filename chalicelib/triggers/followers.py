"""Keep the follower index current with what ECS runs and how services are tagged.

The index (chalicelib.state.followers) is written by every deployment this
service makes, inside the transaction that writes its record. What it makes
nothing of is caught here:

- a deployment made elsewhere (the console, another tool, the circuit breaker
  rolling back): ECS's deployment event for a service the index holds, which
  is read again (`refresh`);
- a tag added, changed or removed: the "Tag Change on Resource" event of an
  ECS service whose `image-updater:*` tags changed (`refresh`);
- anything either missed (events are best effort): the hourly `reconcile`,
  which walks the tagged services of every account and region the service
  reaches (home, each of TARGET_ACCOUNTS in each of TARGET_REGIONS) in ⌈N/100⌉ GetResources, one
  DescribeServices per 10 services of a cluster and one DescribeTaskDefinition
  per revision it has never seen, and writes only what differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.aws import budget, clients, ecs, parallel
from chalicelib.aws.accounts import Reach
from chalicelib.core.errors import ServiceNotFoundError, UpdateError
from chalicelib.core.locations import cluster_arn_of, location_of
from chalicelib.core.push_policy import POLICY_TAG
from chalicelib.state import followers
from chalicelib.state.followers import Follower, Revision
from chalicelib.state.table import StateTable

logger = logging.getLogger(__name__)

TAGGING_PAGE_SIZE = 100
PARALLEL_DESCRIBES = 8
# The reconcile's budget: minutes, in a function of its own (not an HTTP request's 29 s).
RECONCILE_SECONDS = 240.0


@dataclass
class Reconciled:
    """What one reconcile saw and wrote."""

    tagged: int = 0
    followers: int = 0
    written: int = 0
    removed: int = 0
    revisions_read: int = 0
    unreadable: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of the function's log line."""
        return {
            "tagged": self.tagged,
            "followers": self.followers,
            "written": self.written,
            "removed": self.removed,
            "revisionsRead": self.revisions_read,
            "unreadable": self.unreadable[:20],
        }


def refresh(ecs_client: Any, table: StateTable, service_arn: str) -> str:
    """Read one service again and make the index say what it runs and follows; what was done, in words."""
    cluster = _cluster_of(service_arn)
    if cluster is None:
        return "ignored: an ARN of the old format names no cluster"
    known = followers.follower(table, service_arn)
    try:
        service = ecs.describe_service(ecs_client, cluster, service_arn)
    except ServiceNotFoundError:
        service = None
    follower = _follower_of(ecs_client, table, service) if service and service.get("status") == "ACTIVE" else None
    if follower == known:
        return "unchanged"
    entries = followers.writes(
        table.name, service_arn, follower, known.repositories if known else (follower.repositories if follower else ())
    )
    followers.write_batch(table, entries)
    return "removed" if follower is None else "written"


def on_deployment(ecs_client: Any, table: StateTable, service_arn: str) -> str | None:
    """A deployment made elsewhere: read the service again if the index holds it; None when it does not."""
    if followers.follower(table, service_arn) is None:
        return None  # not a follower (a tag added since comes as its own event, or with the reconcile)
    return refresh(ecs_client, table, service_arn)


def reconcile(places: Sequence[Reach], table: StateTable) -> Reconciled:
    """Walk every tagged service of every place the service reaches and write what the index has wrong (see
    the module docstring). A place that cannot be read (its role cannot be assumed, its API fails) is reported,
    and its followers are left as they were."""
    report = Reconciled()
    current: dict[str, Follower] = {}
    unread: set[str] = set()
    scanned: set[tuple[str, str]] = set()
    for place in places:
        try:
            found, missed = _reconcile_place(place, table, report)
        except UpdateError as failure:
            report.unreadable.append(f"{place.location}: {failure.message}")
            continue
        scanned.add((place.location.account, place.location.region))
        current.update(found)
        unread |= missed
    report.followers = len(current)
    indexed = {f.service_arn: f for f in followers.all_followers(table)}
    entries: list[dict[str, Any]] = []
    for arn, follower in current.items():
        if indexed.get(arn) != follower:
            old = indexed[arn].repositories if arn in indexed else set()
            entries += followers.writes(table.name, arn, follower, old)
            report.written += 1
    for arn, gone in indexed.items():
        # A service that could not be read, or of a place that was not read, is left as it was.
        if arn not in current and arn not in unread and _place_of(arn) in scanned:
            entries += followers.writes(table.name, arn, None, gone.repositories)
            report.removed += 1
    followers.write_batch(table, entries)
    return report


def _reconcile_place(place: Reach, table: StateTable, report: Reconciled) -> tuple[dict[str, Follower], set[str]]:
    """The followers of one account and region, and the tagged services of it that could not be read."""
    tagged = _tagged_services(place.client("resourcegroupstaggingapi"))
    report.tagged += len(tagged)
    ecs_client = place.client("ecs")
    described = _describe(ecs_client, tagged, report)
    revisions = _revisions(
        ecs_client, table, {s["taskDefinition"] for s in described if s.get("taskDefinition")}, report
    )
    current: dict[str, Follower] = {}
    for service in described:
        revision = revisions.get(service.get("taskDefinition", ""))
        if revision is None or service.get("status") != "ACTIVE":
            continue
        found = Follower.of(
            {**service, "tags": service.get("tags") or _as_tag_list(tagged.get(service["serviceArn"]))}, revision
        )
        if found is not None:
            current[found.service_arn] = found
    read = {service["serviceArn"] for service in described}
    return current, set(tagged) - read


def _place_of(service_arn: str) -> tuple[str, str] | None:
    found = location_of(service_arn)
    return (found.account, found.region) if found else None


def _follower_of(ecs_client: Any, table: StateTable, service: Mapping[str, Any]) -> Follower | None:
    arn = service.get("taskDefinition")
    if not arn or POLICY_TAG not in {t.get("key") for t in service.get("tags") or []}:
        return None
    revision = _revisions(ecs_client, table, {arn}, Reconciled()).get(arn)
    return Follower.of(service, revision) if revision else None


def _revisions(ecs_client: Any, table: StateTable, arns: set[str], report: Reconciled) -> dict[str, Revision]:
    """What each revision runs: from the table when known, else read once from ECS and kept."""
    known = followers.known_revisions(table, arns)
    unknown = sorted(arns - set(known))

    def describe(arn: str) -> Revision:
        definition, tags = ecs.describe_task_definition(ecs_client, arn)
        return Revision.of(definition, tags)

    read = parallel.each(describe, unknown, PARALLEL_DESCRIBES)
    fresh = [o.value for o in read if o.error is None and o.value is not None]
    report.revisions_read += len(fresh)
    report.unreadable += [f"{o.item}: {o.error}" for o in read if o.error is not None]
    if fresh:
        followers.write_batch(table, [{"Put": {"TableName": table.name, "Item": r.item()}} for r in fresh])
    return {**known, **{revision.arn: revision for revision in fresh}}


def _tagged_services(tagging: Any) -> dict[str, dict[str, str]]:
    """Service ARN to its tags, for every ECS service tagged with a policy (GetResources, 100 a page)."""
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
        page = clients.call(tagging.get_resources, "GetResources", {}, **arguments)
        for resource in page.get("ResourceTagMappingList", []):
            services[resource["ResourceARN"]] = {t["Key"]: t["Value"] for t in resource.get("Tags", [])}
        token = page.get("PaginationToken") or ""
        if not token:
            return services


def _describe(ecs_client: Any, tagged: Mapping[str, Any], report: Reconciled) -> list[dict[str, Any]]:
    by_cluster: dict[str, list[str]] = {}
    for arn in tagged:
        cluster = _cluster_of(arn)
        if cluster is None:
            report.unreadable.append(f"{arn}: an ARN of the old format names no cluster")
            continue
        by_cluster.setdefault(cluster, []).append(arn)
    batches = [(cluster, batch) for cluster, arns in sorted(by_cluster.items()) for batch in ecs.in_batches(arns)]
    described: list[dict[str, Any]] = []
    for outcome in parallel.each(lambda batch: ecs.describe_services(ecs_client, *batch), batches, PARALLEL_DESCRIBES):
        if outcome.error is not None:
            report.unreadable += [f"{arn}: {outcome.error}" for arn in outcome.item[1]]
        else:
            described += outcome.value or []
    return described


def _cluster_of(service_arn: str) -> str | None:
    """The cluster's ARN; None for a service ARN of the old format (it names no cluster)."""
    cluster = cluster_arn_of(service_arn)
    return None if cluster == service_arn else cluster


def _as_tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in (tags or {}).items()]


def reconcile_in_time(places: Sequence[Reach], table: StateTable) -> Reconciled:
    """The reconcile within its function's time (a budget of its own, not an HTTP request's)."""
    with budget.within(RECONCILE_SECONDS):
        return reconcile(places, table)
