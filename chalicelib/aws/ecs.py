"""The conversation with ECS: one function per API call, AWS failures made actionable.

Every function takes the ECS client as its first argument and raises only
`UpdateError` subclasses; `step` on an AWS failure names the API operation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.aws import clients, fidelity
from chalicelib.core.errors import (
    AwsCallError,
    ClusterNotFoundError,
    InvalidRequestError,
    ServiceNotFoundError,
    ServiceNotUpdatableError,
    TaskDefinitionNotFoundError,
    UncopyableTaskDefinitionError,
)

DESCRIBE_SERVICES_BATCH = 10


def describe_service(client: Any, cluster: str, service: str) -> dict[str, Any]:
    """The service as ECS describes it, with its tags; 404-class errors for a missing cluster or service."""
    response = clients.call(
        client.describe_services,
        "DescribeServices",
        {
            "ClusterNotFoundException": lambda _: ClusterNotFoundError(f"cluster '{cluster}' was not found"),
            "InvalidParameterException": lambda message: InvalidRequestError(
                f"ECS refused cluster '{cluster}' or service '{service}': {message}"
            ),
        },
        cluster=cluster,
        services=[service],
        include=["TAGS"],
    )
    services = response.get("services", [])
    if not services:
        reasons = ", ".join(f.get("reason", "unknown") for f in response.get("failures", []))
        raise ServiceNotFoundError(
            f"service '{service}' was not found in cluster '{cluster}'" + (f" ({reasons})" if reasons else "")
        )
    return services[0]


def list_cluster_arns(client: Any) -> list[str]:
    """Every cluster ARN of the client's account and region (ListClusters, pages of 100)."""
    arns: list[str] = []
    token: str | None = None
    while True:
        arguments: dict[str, Any] = {"maxResults": 100}
        if token:
            arguments["nextToken"] = token
        page = clients.call(client.list_clusters, "ListClusters", {}, **arguments)
        arns.extend(page.get("clusterArns", []))
        token = page.get("nextToken")
        if not token:
            return arns


def list_service_arns(client: Any, cluster: str) -> list[str]:
    """Every service ARN in the cluster (ListServices, pages of 100)."""
    arns: list[str] = []
    token: str | None = None
    while True:
        arguments: dict[str, Any] = {"cluster": cluster, "maxResults": 100}
        if token:
            arguments["nextToken"] = token
        page = clients.call(
            client.list_services,
            "ListServices",
            {"ClusterNotFoundException": lambda _: ClusterNotFoundError(f"cluster '{cluster}' was not found")},
            **arguments,
        )
        arns.extend(page.get("serviceArns", []))
        token = page.get("nextToken")
        if not token:
            return arns


def describe_services(client: Any, cluster: str, services: list[str]) -> list[dict[str, Any]]:
    """Describe up to 10 services in one call, with their tags (services that vanished meanwhile are skipped)."""
    if len(services) > DESCRIBE_SERVICES_BATCH:
        raise ValueError(f"DescribeServices takes at most {DESCRIBE_SERVICES_BATCH} services")
    response = clients.call(
        client.describe_services,
        "DescribeServices",
        {
            "ClusterNotFoundException": lambda _: ClusterNotFoundError(f"cluster '{cluster}' was not found"),
            "InvalidParameterException": lambda message: InvalidRequestError(
                f"ECS refused cluster '{cluster}' or one of the services: {message}"
            ),
        },
        cluster=cluster,
        services=services,
        include=["TAGS"],
    )
    return list(response.get("services", []))


def in_batches(services: Sequence[str]) -> list[list[str]]:
    """The services in runs of at most DESCRIBE_SERVICES_BATCH, as DescribeServices takes them."""
    return [list(services[i : i + DESCRIBE_SERVICES_BATCH]) for i in range(0, len(services), DESCRIBE_SERVICES_BATCH)]


def by_identifier(wanted: Sequence[str], described: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each wanted name or ARN matched with its described service; the ones not found are left out.

    An ARN of the old format (no cluster in it) is matched by the service's name,
    since ECS answers with the new format.
    """
    found: dict[str, dict[str, Any]] = {}
    for identifier in wanted:
        name = identifier.rsplit("/", 1)[-1]
        match = next((s for s in described if identifier in (s.get("serviceArn"), s.get("serviceName"))), None)
        if match is None:
            match = next((s for s in described if s.get("serviceName") == name), None)
        if match is not None:
            found[identifier] = match
    return found


def check_updatable(service: Mapping[str, Any]) -> None:
    """Refuse a service that cannot take a new task definition through UpdateService."""
    name = service.get("serviceName")
    status = service.get("status")
    if status != "ACTIVE":
        raise ServiceNotUpdatableError(f"service '{name}' is {status}, not ACTIVE; it cannot be updated")
    controller = (service.get("deploymentController") or {}).get("type", "ECS")
    if controller != "ECS":
        raise ServiceNotUpdatableError(
            f"service '{name}' uses the {controller} deployment controller; only ECS-controlled "
            "services take a new task definition through UpdateService"
        )


def describe_task_definition(client: Any, task_definition: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The task definition as ECS sent it (every field, timestamps as epoch seconds) and its tags.

    The copy is taken from this, never from botocore's parsed answer, which holds
    only the fields the installed SDK knows (see chalicelib.fidelity).
    """
    response = clients.call(
        client.describe_task_definition,
        "DescribeTaskDefinition",
        {
            "ClientException": lambda message: TaskDefinitionNotFoundError(
                f"task definition '{task_definition}' could not be described: {message}"
            )
        },
        taskDefinition=task_definition,
        include=["TAGS"],
    )
    raw = fidelity.raw_answer(response)
    if raw is None or not isinstance(raw.get("taskDefinition"), dict):
        raise UncopyableTaskDefinitionError(
            f"ECS's answer for task definition '{task_definition}' could not be read in full "
            "(only the fields this AWS SDK knows were available); nothing was changed"
        )
    return raw["taskDefinition"], list(raw.get("tags") or [])


def register_task_definition(client: Any, registration: Mapping[str, Any]) -> dict[str, Any]:
    """Register a new revision with every field of `registration`; returns it as ECS describes it."""
    fidelity.check_carried(client, "RegisterTaskDefinition", registration)
    try:
        response = clients.call(client.register_task_definition, "RegisterTaskDefinition", {}, **registration)
    except AwsCallError as failure:
        if not failure.outcome_unknown:
            raise
        # Not retried (a retry could register twice), and not knowable from here.
        raise type(failure)(
            failure.step,
            f"{failure.message}; ECS may have registered a revision of family '{registration.get('family')}' "
            "anyway: if one newer than the service's revision is not used by any service, deregister it",
            outcome_unknown=True,
        ) from failure
    raw = fidelity.raw_answer(response)
    return raw["taskDefinition"] if raw and isinstance(raw.get("taskDefinition"), dict) else response["taskDefinition"]


def update_service(
    client: Any,
    cluster: str,
    service: str,
    task_definition: str | None = None,
    force_new_deployment: bool = False,
) -> dict[str, Any]:
    """Point the service at `task_definition` (or redeploy it); returns the service."""
    arguments: dict[str, Any] = {"cluster": cluster, "service": service}
    if task_definition is not None:
        arguments["taskDefinition"] = task_definition
    if force_new_deployment:
        arguments["forceNewDeployment"] = True
    response = clients.call(
        client.update_service,
        "UpdateService",
        {
            "ClusterNotFoundException": lambda _: ClusterNotFoundError(f"cluster '{cluster}' was not found"),
            "ServiceNotFoundException": lambda _: ServiceNotFoundError(
                f"service '{service}' was not found in cluster '{cluster}'"
            ),
            "ServiceNotActiveException": lambda message: ServiceNotUpdatableError(
                f"service '{service}' is not ACTIVE: {message}"
            ),
        },
        **arguments,
    )
    return response["service"]


def deregister_task_definition(client: Any, task_definition: str) -> None:
    """Deregister a revision (it becomes INACTIVE)."""
    clients.call(client.deregister_task_definition, "DeregisterTaskDefinition", {}, taskDefinition=task_definition)
