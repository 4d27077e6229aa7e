"""Every service of a cluster with what it runs: `GET /clusters/{cluster}/services`.

ListServices in pages of 100, DescribeServices in batches of 10, and one
DescribeTaskDefinition per distinct task definition (services that share one
cost one call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib import aws, ecs
from chalicelib.status import containers_of, task_definition_reference
from chalicelib.validation import cluster_name

# Discovery may describe many services and task definitions; it gets the whole budget.
DISCOVERY_BUDGET_SECONDS = aws.MAIN_BUDGET_SECONDS + aws.CLEANUP_BUDGET_SECONDS


def cluster_services(client: Any, cluster: str, include: Callable[[str], bool] = lambda _name: True) -> dict[str, Any]:
    """The discovery body: services sorted by name (case-sensitive); `include` filters by name."""
    with aws.time_budget(DISCOVERY_BUDGET_SECONDS):
        arns = ecs.list_service_arns(client, cluster)
        wanted = [arn for arn in arns if include(arn.rsplit("/", 1)[-1])]
        described: list[dict[str, Any]] = []
        for start in range(0, len(wanted), ecs.DESCRIBE_SERVICES_BATCH):
            described.extend(
                ecs.describe_services(client, cluster, wanted[start : start + ecs.DESCRIBE_SERVICES_BATCH])
            )
        containers: dict[str, list[dict[str, str]]] = {}
        for service in described:
            arn = service.get("taskDefinition")  # absent for EXTERNAL-controlled services
            if arn and arn not in containers:
                task_definition, _tags = ecs.describe_task_definition(client, arn)
                containers[arn] = containers_of(task_definition)
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
