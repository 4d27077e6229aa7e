"""The follower index: which services follow which repository, kept in the state table.

A push must find the services that run the pushed repository without reading
every opted-in service of the account. The index answers that with one Query:

| item                                  | pk                         | sk              |
|---------------------------------------|----------------------------|-----------------|
| a service that follows pushes         | `FOLLOWERS`                | its service ARN |
| ... under each repository it follows  | `REPOSITORY#<repository>`  | its service ARN |
| what a task definition revision runs  | `REVISION#<revision ARN>`  | `REVISION`      |

Both follower items hold the same copy: the service's `image-updater:*` tags,
the revision it runs, that revision's images and its pushed tag. Revisions are
immutable, so what one runs is read from ECS once and then kept. The index is
kept current by every deployment this service makes (inside the transaction
that writes its record), by ECS's deployment events for deployments made
elsewhere, by tag-change events, and by an hourly reconcile (chalicelib.triggers.followers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.images import InvalidImageError, parse_image
from chalicelib.core.push_policy import CONTAINER_TAG, POLICY_TAG, PUSHED_TAG_TAG, Following
from chalicelib.state.table import StateTable, from_item, to_item

FOLLOWERS_PARTITION = "FOLLOWERS"
REVISION_SORT_KEY = "REVISION"
TAG_PREFIX = "image-updater:"
# BatchGetItem takes 100 keys, BatchWriteItem 25 requests.
BATCH_GET = 100
BATCH_WRITE = 25


def repository_partition(repository: str) -> str:
    """The partition of the followers of a (canonical) repository."""
    return f"REPOSITORY#{repository}"


def revision_partition(arn: str) -> str:
    """The partition of what a task definition revision runs."""
    return f"REVISION#{arn}"


@dataclass(frozen=True)
class Revision:
    """What a task definition revision runs: its containers' images, and the tag a pinned push deployed."""

    arn: str
    images: dict[str, str]
    pushed_tag: str | None = None

    @classmethod
    def of(cls, task_definition: Mapping[str, Any], tags: Sequence[Mapping[str, str]]) -> Revision:
        """From a task definition as ECS describes it, and its tags."""
        images = {c["name"]: c.get("image", "") for c in task_definition.get("containerDefinitions", [])}
        pushed = next((t["value"] for t in tags if t.get("key") == PUSHED_TAG_TAG), None)
        return cls(str(task_definition["taskDefinitionArn"]), images, pushed)

    def item(self) -> dict[str, Any]:
        """The revision's item."""
        return to_item(
            {
                "pk": revision_partition(self.arn),
                "sk": REVISION_SORT_KEY,
                "kind": "revision",
                "images": self.images,
                "pushedTag": self.pushed_tag,
            }
        )


@dataclass(frozen=True)
class Follower:
    """A service that follows pushes, as the index knows it."""

    service_arn: str
    cluster: str
    service: str
    tags: dict[str, str]
    revision: str
    images: dict[str, str] = field(default_factory=dict)
    pushed_tag: str | None = None

    @classmethod
    def of(cls, service: Mapping[str, Any], revision: Revision) -> Follower | None:
        """From a service described with its tags, and the revision it runs; None when it follows nothing."""
        tags = {t["key"]: t["value"] for t in service.get("tags") or [] if str(t.get("key", "")).startswith(TAG_PREFIX)}
        if POLICY_TAG not in tags:
            return None
        return cls(
            service_arn=str(service["serviceArn"]),
            cluster=str(service["clusterArn"]).rsplit("/", 1)[-1],
            service=str(service["serviceName"]),
            tags=tags,
            revision=revision.arn,
            images=dict(revision.images),
            pushed_tag=revision.pushed_tag,
        )

    @property
    def following(self) -> Following:
        """How it follows pushes (its policy, the container it names, whether it pins digests)."""
        return Following.of(self.tags)

    @property
    def repositories(self) -> set[str]:
        """The canonical repositories of the containers it follows."""
        return followed_repositories(self.images, self.tags.get(CONTAINER_TAG))

    def item(self, pk: str) -> dict[str, Any]:
        """Its item in the partition `pk` (the followers' or a repository's)."""
        return to_item(
            {
                "pk": pk,
                "sk": self.service_arn,
                "kind": "follower",
                "cluster": self.cluster,
                "service": self.service,
                "tags": self.tags,
                "revision": self.revision,
                "images": self.images,
                "pushedTag": self.pushed_tag,
            }
        )

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Follower:
        """Read back from the table (plain values)."""
        return cls(
            service_arn=str(item["sk"]),
            cluster=str(item["cluster"]),
            service=str(item["service"]),
            tags=dict(item.get("tags") or {}),
            revision=str(item.get("revision", "")),
            images=dict(item.get("images") or {}),
            pushed_tag=item.get("pushedTag"),
        )


def followed_repositories(images: Mapping[str, str], container: str | None) -> set[str]:
    """The canonical repositories of the followed containers: the one named, or every one whose image reads."""
    repositories = set()
    for name, image in images.items():
        if container and name.strip() != container.strip():
            continue
        try:
            repositories.add(parse_image(image).canonical_repository())
        except InvalidImageError:
            continue
    return repositories


def writes(
    table_name: str, service_arn: str, new: Follower | None, old_repositories: Iterable[str]
) -> list[dict[str, Any]]:
    """TransactWriteItems entries that make the index say `new` of the service (None: it follows nothing).

    `old_repositories` are the ones it was indexed under before; the entries no
    longer true are deleted (deleting an entry that is not there is harmless).
    """
    keep = new.repositories if new is not None else set()
    items: list[dict[str, Any]] = []
    if new is None:
        items.append(_delete(table_name, FOLLOWERS_PARTITION, service_arn))
    else:
        items.append({"Put": {"TableName": table_name, "Item": new.item(FOLLOWERS_PARTITION)}})
        items += [{"Put": {"TableName": table_name, "Item": new.item(repository_partition(r))}} for r in sorted(keep)]
    items += [_delete(table_name, repository_partition(r), service_arn) for r in sorted(set(old_repositories) - keep)]
    return items


def moved(
    table_name: str,
    service: Mapping[str, Any],
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    new_tags: Sequence[Mapping[str, str]],
) -> list[dict[str, Any]]:
    """The index entries for a service (described with its tags) moved from revision `old` to `new`.

    Nothing for a service that follows no pushes; else the service's entries
    under the repositories `new` runs, the deletion of those only `old` ran, and
    what `new` runs, kept for good (a revision never changes).
    """
    revision = Revision.of(new, new_tags)
    follower = Follower.of(service, revision)
    if follower is None:
        return []
    old_images = {c["name"]: c.get("image", "") for c in old.get("containerDefinitions", [])}
    previous = followed_repositories(old_images, follower.tags.get(CONTAINER_TAG))
    remembered = {"Put": {"TableName": table_name, "Item": revision.item()}}
    return [*writes(table_name, follower.service_arn, follower, previous), remembered]


def followers_of(table: StateTable, repository: str) -> list[Follower]:
    """The services indexed as following the (canonical) repository."""
    return [Follower.from_item(item) for item in _query(table, repository_partition(repository))]


def all_followers(table: StateTable) -> list[Follower]:
    """Every service the index holds as a follower."""
    return [Follower.from_item(item) for item in _query(table, FOLLOWERS_PARTITION)]


def follower(table: StateTable, service_arn: str) -> Follower | None:
    """The index's entry for one service, or None."""
    response = table.call(
        "GetItem",
        TableName=table.name,
        Key=to_item({"pk": FOLLOWERS_PARTITION, "sk": service_arn}),
        ConsistentRead=True,
    )
    item = response.get("Item")
    return Follower.from_item(from_item(item)) if item else None


def known_revisions(table: StateTable, arns: Iterable[str]) -> dict[str, Revision]:
    """The revisions of `arns` the table already knows (BatchGetItem, 100 keys a call)."""
    wanted = sorted(set(arns))
    found: dict[str, Revision] = {}
    for start in range(0, len(wanted), BATCH_GET):
        keys = [
            to_item({"pk": revision_partition(arn), "sk": REVISION_SORT_KEY})
            for arn in wanted[start : start + BATCH_GET]
        ]
        request: dict[str, Any] = {table.name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = table.call("BatchGetItem", RequestItems=request)
            for raw in response.get("Responses", {}).get(table.name, []):
                item = from_item(raw)
                arn = str(item["pk"]).removeprefix("REVISION#")
                found[arn] = Revision(arn, dict(item.get("images") or {}), item.get("pushedTag"))
            request = response.get("UnprocessedKeys") or {}
    return found


def write_batch(table: StateTable, entries: Sequence[Mapping[str, Any]]) -> None:
    """Put and Delete entries (TransactWriteItems' shape) written with BatchWriteItem, 25 a call, none lost."""
    requests = [_as_batch_request(entry) for entry in entries]
    for start in range(0, len(requests), BATCH_WRITE):
        pending: dict[str, Any] = {table.name: requests[start : start + BATCH_WRITE]}
        while pending:
            response = table.call("BatchWriteItem", RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}


def _as_batch_request(entry: Mapping[str, Any]) -> dict[str, Any]:
    if "Put" in entry:
        return {"PutRequest": {"Item": entry["Put"]["Item"]}}
    return {"DeleteRequest": {"Key": entry["Delete"]["Key"]}}


def _delete(table_name: str, pk: str, sk: str) -> dict[str, Any]:
    return {"Delete": {"TableName": table_name, "Key": to_item({"pk": pk, "sk": sk})}}


def _query(table: StateTable, partition: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        arguments: dict[str, Any] = {
            "TableName": table.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": to_item({":pk": partition}),
        }
        if start:
            arguments["ExclusiveStartKey"] = start
        page = table.call("Query", **arguments)
        items += [from_item(item) for item in page.get("Items", [])]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items
