"""moto's server for the local run, with ECS deployments that roll out as ECS's do.

moto's UpdateService changes a service's task definition but never its
`deployments`, so locally there would be no deployment id to follow and no
outcome to wait for. Here UpdateService starts a new PRIMARY deployment
(IN_PROGRESS, the one it replaces kept as ACTIVE), as ECS does, and a
deployment completes once it is LOCAL_ROLLOUT_SECONDS old (default 5; the
end-to-end tests set it high and decide outcomes themselves). Run as
`python scripts/local_ecs.py PORT`; `make dev` does.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from moto.ecs import models as ecs_models
from moto.server import main as moto_server

ROLLOUT_SECONDS = float(os.environ.get("LOCAL_ROLLOUT_SECONDS", "5"))
_update_service = ecs_models.EC2ContainerServiceBackend.update_service
_describe_services = ecs_models.EC2ContainerServiceBackend.describe_services
_sequence = [10**18]


def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
    """moto's UpdateService, then a new deployment when the revision changed or a redeploy was asked for."""
    cluster = service_properties.get("cluster", "default")
    name = str(service_properties.get("service", "")).split("/")[-1]
    before = self._get_service(cluster, name).task_definition
    forced = bool(service_properties.get("force_new_deployment"))
    service = _update_service(self, service_properties)
    if service.task_definition != before or forced:
        start_deployment(service)
    return service


def start_deployment(service: Any) -> None:
    """A new PRIMARY deployment of the service's revision; the previous PRIMARY goes on as ACTIVE."""
    now = ecs_models.utcnow()
    _sequence[0] += 1
    deployment_id = f"ecs-svc/{_sequence[0]}"
    earlier = [{**d, "status": "ACTIVE"} for d in service.deployments if d["status"] == "PRIMARY"]
    service.deployments = [
        {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": service.desired_count,
            "pendingCount": service.desired_count,
            "runningCount": 0,
            "failedTasks": 0,
            "launchType": service.launch_type,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
            "createdAt": now,
            "updatedAt": now,
        },
        *earlier,
    ]


def describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
    """moto's DescribeServices, after completing every deployment old enough."""
    for service in self.services.values():
        roll_out(service)
    return _describe_services(self, cluster_str, service_names_or_arns)


def roll_out(service: Any) -> None:
    """Complete the PRIMARY deployment once it is ROLLOUT_SECONDS old, dropping the ones it replaced.

    The service's own task counts then say its tasks run, as ECS's do.
    """
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "IN_PROGRESS":
        return
    now = ecs_models.utcnow()
    if now - primary["createdAt"] < timedelta(seconds=ROLLOUT_SECONDS):
        return
    primary.update(
        rolloutState="COMPLETED",
        rolloutStateReason=f"ECS deployment {primary['id']} completed.",
        runningCount=primary["desiredCount"],
        pendingCount=0,
        updatedAt=now,
    )
    service.deployments = [primary]
    service.running_count, service.pending_count = primary["desiredCount"], 0  # the service's own counts follow


def install() -> None:
    """Patch moto's ECS backend in this process."""
    ecs_models.EC2ContainerServiceBackend.update_service = update_service  # type: ignore[method-assign]
    ecs_models.EC2ContainerServiceBackend.describe_services = describe_services  # type: ignore[method-assign]


if __name__ == "__main__":
    install()
    moto_server(["-H", "127.0.0.1", "-p", sys.argv[1]])
