"""Where a service lives: an account and a region, read from the ARNs a request or an event names (pure).

A plain name means the home account and region (where the service runs); an
ARN (`arn:aws:ecs:eu-west-1:222222222222:cluster/prod`) names its own. A
service's lock and records are keyed by `cluster/service` at home, as they
always were, and by `account/region/cluster/service` elsewhere, so `prod/web`
in two accounts never collide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ECS_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):ecs:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):")


@dataclass(frozen=True)
class Location:
    """An AWS account and region."""

    account: str
    region: str
    partition: str = "aws"

    def __str__(self) -> str:
        return f"{self.account}/{self.region}"

    def cluster_arn(self, cluster: str) -> str:
        """The ARN of the cluster `cluster` (a name or an ARN) here."""
        if cluster.startswith("arn:"):
            return cluster
        return f"arn:{self.partition}:ecs:{self.region}:{self.account}:cluster/{cluster}"


def location_of(identifier: str) -> Location | None:
    """The account and region an ECS ARN names; None for a plain name."""
    found = _ECS_ARN.match(identifier)
    return Location(found["account"], found["region"], found["partition"]) if found else None


def name_of(identifier: str) -> str:
    """The last part of an ARN (`…:service/prod/web` is `web`), or the name itself."""
    return identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier


def cluster_arn_of(service_arn: str) -> str:
    """The ARN of a service's cluster, from the service's ARN (`…:service/<cluster>/<name>`); the service ARN
    itself for an ARN of the old format (no cluster)."""
    prefix, _, resource = service_arn.partition(":service/")
    cluster, _, name = resource.partition("/")
    return f"{prefix}:cluster/{cluster}" if cluster and name else service_arn


def where_of_key(key: str) -> Location | None:
    """The location a service key names (`account/region/cluster/service`); None for a home key."""
    parts = key.split("/")
    return Location(parts[0], parts[1]) if len(parts) == 4 else None


def service_key(cluster: str, service: str, where: Location | None = None) -> str:
    """The key of a service's lock and records: `cluster/service` at home (`where` None),
    `account/region/cluster/service` elsewhere."""
    base = f"{name_of(cluster)}/{name_of(service)}"
    return base if where is None else f"{where.account}/{where.region}/{base}"
