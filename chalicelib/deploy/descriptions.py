"""Service descriptions: what each container of a service runs, as a file kept in git.

```yaml
cluster: prod
service: web
containers:
  app: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:1.4.2
  log-router: public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0
```

Nothing else: the task definition's other fields stay as they are, as with
`/update`. `GET /services/{cluster}/{service}/description` exports one (two ECS
calls); `POST /apply` makes services match theirs, through the all-or-nothing
update path. Containers not listed are left alone. Every image is a full
reference with a tag or digest, except that an image exactly as the service
runs it (some task definitions name one without a tag) is taken back as it is,
so every export applies as a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.aws import budget, ecs
from chalicelib.core import taskdef
from chalicelib.core.errors import InvalidRequestError, echo_input
from chalicelib.core.images import ImageReference, InvalidImageError, parse_image
from chalicelib.core.requests import FanOutRequest, ImageChange, Target
from chalicelib.core.results import cluster_name_of
from chalicelib.core.validation import (
    MAX_CONTAINERS,
    MAX_IMAGE_LENGTH,
    MAX_SERVICES,
    cluster_identifier,
    cluster_name,
    json_type,
    refuse_unknown_fields,
    service_identifier,
)

DESCRIPTION_FIELDS = ("cluster", "service", "containers")
APPLY_FIELDS = ("descriptions", "dryRun")
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def service_description(client: Any, cluster: str, service: str) -> dict[str, Any]:
    """What the service runs now, as a description: {"cluster", "service", "containers": {name: image}}."""
    with budget.within(budget.MAIN_SECONDS):
        described = ecs.describe_service(client, cluster, service)
        ecs.check_updatable(described)  # an EXTERNAL or CODE_DEPLOY service could not be applied to
        task_definition, _tags = ecs.describe_task_definition(client, described["taskDefinition"])
    return {
        "cluster": cluster_name_of(described),
        "service": described["serviceName"],
        "containers": taskdef.container_images(task_definition),
    }


def parse_apply_request(body: Mapping[str, Any]) -> FanOutRequest:
    """A `POST /apply` body: 1 to 20 descriptions of services of one cluster, each service once."""
    refuse_unknown_fields(body, APPLY_FIELDS)
    listed = body.get("descriptions")
    if not isinstance(listed, list):
        raise InvalidRequestError(f"'descriptions' must be a list of service descriptions, not {json_type(listed)}")
    if not 1 <= len(listed) <= MAX_SERVICES:
        raise InvalidRequestError(f"'descriptions' must hold 1 to {MAX_SERVICES} descriptions, not {len(listed)}")
    dry_run = body.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequestError(f"'dryRun' must be true or false, not {json_type(dry_run)}")
    targets: list[Target] = []
    clusters: set[str] = set()
    seen: set[str] = set()
    first_cluster = ""
    for index, description in enumerate(listed):
        cluster, service, change = parse_description(description, f"descriptions[{index}]")
        clusters.add(cluster_name(cluster))
        first_cluster = first_cluster or cluster
        if len(clusters) > 1:
            names = ", ".join(f"'{name}'" for name in sorted(clusters))
            raise InvalidRequestError(f"the descriptions name several clusters ({names}); apply one cluster at a time")
        short = service.rsplit("/", 1)[-1]
        if short in seen:
            raise InvalidRequestError(f"service '{short}' is described more than once")
        seen.add(short)
        targets.append(Target(service, change))
    return FanOutRequest(
        first_cluster,
        tuple(targets),
        dry_run=dry_run,
        name_services=True,
        record_no_change=False,
        look_up_early=False,
    )


def parse_description(description: Any, where: str) -> tuple[str, str, ImageChange]:
    """One description: its cluster, its service, and the change that makes the service match it."""
    if not isinstance(description, dict):
        raise InvalidRequestError(f"'{where}' must be a description (an object), not {json_type(description)}")
    unknown = [key for key in description if key not in DESCRIPTION_FIELDS]
    if unknown:
        names = ", ".join(f"'{echo_input(key, 40)}'" for key in unknown[:5])
        raise InvalidRequestError(
            f"'{where}' has unknown field(s) {names}; a description has: {', '.join(DESCRIPTION_FIELDS)}"
        )
    try:
        cluster = cluster_identifier(description, "cluster")
        service = service_identifier(description, "service", cluster)
    except InvalidRequestError as error:
        raise InvalidRequestError(f"'{where}': {error.message}") from error
    return cluster, service, _change(description.get("containers"), f"{where}.containers")


def _change(containers: Any, where: str) -> ImageChange:
    if not isinstance(containers, dict):
        raise InvalidRequestError(
            f"'{where}' must be an object of container name to image, not {json_type(containers)}"
        )
    if not containers:
        raise InvalidRequestError(f"'{where}' must name at least one container")
    if len(containers) > MAX_CONTAINERS:
        raise InvalidRequestError(f"'{where}' names more than {MAX_CONTAINERS} containers")
    pinned: dict[str, ImageReference] = {}
    as_running: dict[str, str] = {}
    for name, image in containers.items():
        field = f"{where}.{name}"
        if not name or not set(name) <= _NAME_CHARACTERS or len(name) > 255:
            raise InvalidRequestError(
                f"'{where}' key '{echo_input(name, 40)}' must be a container name: letters, digits, '-' and '_'"
            )
        if not isinstance(image, str) or not image:
            raise InvalidRequestError(f"'{field}' must be an image reference (a string), not {json_type(image)}")
        if len(image) > MAX_IMAGE_LENGTH:
            raise InvalidRequestError(f"'{field}' is longer than {MAX_IMAGE_LENGTH} characters")
        try:
            reference = parse_image(image)
        except InvalidImageError:
            as_running[name] = image  # only valid as the image the container runs now (checked under the lock)
            continue
        if reference.is_pinned:
            pinned[name] = reference
        else:
            as_running[name] = image
    return ImageChange(images=pinned, as_running=as_running)
