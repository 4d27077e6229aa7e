"""Every service of a cluster with what it runs: `GET /clusters/{cluster}/services`.

ListServices in pages of 100, DescribeServices in batches of 10 (at once), and one
DescribeTaskDefinition per distinct task definition (services that share one
cost one call), up to PARALLEL_DESCRIBES at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.aws import budget, ecs, parallel
from chalicelib.core.validation import cluster_name
from chalicelib.follow.status import containers_of, task_definition_reference

# DescribeTaskDefinition takes one revision per call: a few run at once.
PARALLEL_DESCRIBES = 8
# Discovery may describe many services and task definitions; it gets the whole budget.
DISCOVERY_BUDGET_SECONDS = budget.MAIN_SECONDS + budget.CLEANUP_SECONDS


def cluster_services(client: Any, cluster: str, include: Callable[[str], bool] = lambda _name: True) -> dict[str, Any]:
    """The discovery body: services sorted by name (case-sensitive); `include` filters by name."""
    with budget.within(DISCOVERY_BUDGET_SECONDS):
        arns = ecs.list_service_arns(client, cluster)
        wanted = [arn for arn in arns if include(arn.rsplit("/", 1)[-1])]
        batches = parallel.values(lambda batch: ecs.describe_services(client, cluster, batch), ecs.in_batches(wanted))
        described = [service for batch in batches for service in batch]
        # Absent for EXTERNAL-controlled services; shared ones are described once, in parallel.
        distinct = sorted({s["taskDefinition"] for s in described if s.get("taskDefinition")})
        containers = _containers_by_arn(client, distinct)
    services = [
        {
            "service": service["serviceName"],
            "status": service.get("status"),
            "taskDefinition": task_definition_reference(service["taskDefinition"])
            if service.get("taskDefinition")
            else None,
            "containers": containers.get(service.get("taskDefinition", ""), []),
        }
        for service in described
    ]
    return {"cluster": cluster_name(cluster), "services": sorted(services, key=lambda s: s["service"])}


def revision_containers(client: Any, arn: str) -> list[dict[str, str]]:
    """One task definition's containers, [{name, image}] in its order (one DescribeTaskDefinition)."""
    return containers_of(ecs.describe_task_definition(client, arn)[0])


def _containers_by_arn(client: Any, arns: list[str]) -> dict[str, list[dict[str, str]]]:
    """Each task definition's containers, PARALLEL_DESCRIBES at a time (chalicelib.parallel keeps the budget)."""
    described = parallel.values(lambda arn: revision_containers(client, arn), arns, PARALLEL_DESCRIBES)
    return dict(zip(arns, described, strict=True))
