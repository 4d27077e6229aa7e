"""Request bodies: parse JSON strictly and turn it into validated request objects (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from chalicelib.core.errors import InvalidRequestError, echo_input
from chalicelib.core.images import DIGEST_PATTERN, TAG_PATTERN, ImageReference, InvalidImageError, parse_image
from chalicelib.core.push_policy import Push
from chalicelib.core.requests import FanOutRequest, ImageChange, RollbackRequest, Target, UpdateRequest

MAX_NAME_LENGTH = 255
MAX_IMAGE_LENGTH = 512
MAX_ARN_LENGTH = 1600

_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
_ARN_PREFIX = r"arn:aws(?:-[a-z]+)*:ecs:[a-z0-9-]+:[0-9]{12}:"
_CLUSTER_ARN = re.compile(_ARN_PREFIX + r"cluster/(?P<cluster>[A-Za-z0-9_-]{1,255})")
_SERVICE_ARN = re.compile(
    _ARN_PREFIX + r"service/(?:(?P<cluster>[A-Za-z0-9_-]{1,255})/)?(?P<service>[A-Za-z0-9_-]{1,255})"
)

UPDATE_FIELDS = (
    "cluster",
    "service",
    "services",
    "image",
    "tag",
    "container",
    "containers",
    "forceNewDeployment",
    "dryRun",
)
# One request moves 2 to 20 services of one cluster.
MIN_SERVICES = 2
MAX_SERVICES = 20
# The query parameters that go with an imagedefinitions.json body.
IMAGE_DEFINITIONS_QUERY = ("cluster", "service", "services", "dryRun")
ROLLBACK_FIELDS = ("cluster", "service", "taskDefinition", "dryRun")
PUSH_FIELDS = ("repository", "tag", "digest")
# ECS allows at most 10 containers in a task definition.
MAX_CONTAINERS = 10
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.:-]{0,254}")
_REVISION = re.compile(r"[A-Za-z0-9_-]{1,255}:[0-9]{1,9}")
_TASK_DEFINITION_ARN = re.compile(_ARN_PREFIX + r"task-definition/[A-Za-z0-9_-]{1,255}:[0-9]{1,9}")


def parse_json_object(raw: bytes | None) -> dict[str, Any]:
    """Parse a request body that must be one JSON object (duplicate keys and NaN refused)."""
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {json_type(body)}")
    return body


def parse_json_body(raw: bytes | None) -> Any:
    """Parse a request body of JSON strictly (duplicate keys, NaN, huge numbers and deep nesting refused)."""
    if not raw:
        raise InvalidRequestError("the request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
        body = json.loads(text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        raise InvalidRequestError("the request body is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        raise InvalidRequestError(f"the request body is not valid JSON: {error.msg} at position {error.pos}") from error
    except ValueError as error:  # e.g. an integer too long to convert
        raise InvalidRequestError(f"the request body holds a value that cannot be read: {error}") from error
    except RecursionError as error:
        raise InvalidRequestError("the request body is nested too deeply") from error
    return body


def parse_update(body: Any, query: Mapping[str, str]) -> UpdateRequest | FanOutRequest:
    """Validate a `/update` request: a JSON object, or CodePipeline's imagedefinitions.json with the query."""
    if isinstance(body, list):
        return parse_image_definitions(body, query)
    if query:
        names = ", ".join(f"'{echo_input(name, 40)}'" for name in list(query)[:5])
        raise InvalidRequestError(
            f"query parameter(s) {names} go only with an imagedefinitions.json body (a JSON array); "
            "with a JSON object, put every field in the body"
        )
    if not isinstance(body, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, not {json_type(body)}")
    return parse_update_request(body)


def parse_update_request(body: Mapping[str, Any]) -> UpdateRequest | FanOutRequest:
    """Validate a `/update` body; the error message names the offending field."""
    refuse_unknown_fields(body, UPDATE_FIELDS)
    cluster = cluster_identifier(body, "cluster")
    if "services" in body:
        if "service" in body:
            raise InvalidRequestError("give 'service' (one) or 'services' (several), not both")
        services = service_list(body["services"], cluster, "services")
        change = _image_change(body)
        return FanOutRequest(
            cluster,
            tuple(Target(service, change) for service in services),
            force_new_deployment=_optional_bool(body, "forceNewDeployment"),
            dry_run=_optional_bool(body, "dryRun"),
        )
    service = service_identifier(body, "service", cluster)
    change = _image_change(body)
    return UpdateRequest(
        cluster,
        service,
        image=change.image,
        container=change.container,
        images=change.images,
        force_new_deployment=_optional_bool(body, "forceNewDeployment"),
        dry_run=_optional_bool(body, "dryRun"),
    )


def parse_image_definitions(entries: list[Any], query: Mapping[str, str]) -> UpdateRequest | FanOutRequest:
    """CodePipeline's imagedefinitions.json (`[{"name", "imageUri"}]`) as a `containers` map, target from the query."""
    _refuse_unknown_query(query, IMAGE_DEFINITIONS_QUERY)
    if "cluster" not in query or not ({"service", "services"} & set(query)):
        raise InvalidRequestError(
            "a JSON array body is read as an imagedefinitions.json: name what it deploys to in the query, "
            "?cluster=<cluster>&service=<service> (or &services=<a>,<b>)"
        )
    cluster = cluster_identifier(query, "cluster")
    dry_run = _query_bool(query, "dryRun")
    change = ImageChange(images=image_definitions(entries))
    if "services" in query:
        if "service" in query:
            raise InvalidRequestError("give 'service' (one) or 'services' (several), not both")
        listed = [name.strip() for name in query["services"].split(",")]
        services = service_list(listed, cluster, "services")
        return FanOutRequest(cluster, tuple(Target(service, change) for service in services), dry_run=dry_run)
    service = service_identifier(query, "service", cluster)
    return UpdateRequest(cluster, service, images=change.images, dry_run=dry_run)


def image_definitions(entries: list[Any]) -> dict[str, ImageReference]:
    """The containers map an imagedefinitions.json means: 1 to 10 entries of exactly `name` and `imageUri`."""
    if not 1 <= len(entries) <= MAX_CONTAINERS:
        raise InvalidRequestError(
            f"imagedefinitions.json must list 1 to {MAX_CONTAINERS} containers, not {len(entries)}"
        )
    images: dict[str, ImageReference] = {}
    for index, entry in enumerate(entries):
        where = f"imagedefinitions.json entry {index}"
        if not isinstance(entry, dict):
            raise InvalidRequestError(f"{where} must be an object with 'name' and 'imageUri', not {json_type(entry)}")
        if set(entry) != {"name", "imageUri"}:
            extra = [f"'{echo_input(key, 40)}'" for key in entry if key not in ("name", "imageUri")]
            missing = [f"'{key}'" for key in ("name", "imageUri") if key not in entry]
            problem = f"has unknown field(s) {', '.join(extra)}" if extra else f"lacks {', '.join(missing)}"
            raise InvalidRequestError(f"{where} {problem}; each entry is exactly 'name' and 'imageUri'")
        name = entry["name"]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidRequestError(f"{where}: 'name' must be a container name: letters, digits, '-' and '_'")
        if name in images:
            raise InvalidRequestError(f"imagedefinitions.json names container '{name}' more than once")
        image = _image(entry, "imageUri", f"imageUri of container '{name}'")
        if not image.is_pinned:
            raise InvalidRequestError(
                f"'imageUri' of container '{name}' must carry a tag or a digest ('{image}:tag' or '{image}@sha256:…')"
            )
        images[name] = image
    return images


def service_list(value: Any, cluster: str, name: str) -> list[str]:
    """2 to 20 service names or ARNs of `cluster`, each once (a name and its ARN are the same service)."""
    if not isinstance(value, list):
        raise InvalidRequestError(f"'{name}' must be a list of service names or ARNs, not {json_type(value)}")
    if not MIN_SERVICES <= len(value) <= MAX_SERVICES:
        raise InvalidRequestError(
            f"'{name}' must list {MIN_SERVICES} to {MAX_SERVICES} services, not {len(value)}"
            + ("; for one service, use 'service'" if len(value) == 1 else "")
        )
    services: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(value):
        service = service_identifier({f"{name}[{index}]": entry}, f"{name}[{index}]", cluster)
        short = service.rsplit("/", 1)[-1]
        if short in seen:
            raise InvalidRequestError(f"service '{short}' appears more than once in '{name}'")
        seen.add(short)
        services.append(service)
    return services


def _image_change(body: Mapping[str, Any]) -> ImageChange:
    if "containers" in body:
        mixed = [name for name in ("image", "tag", "container") if name in body]
        if mixed:
            raise InvalidRequestError(
                f"'containers' replaces 'image', 'tag' and 'container'; remove {', '.join(repr(m) for m in mixed)}"
            )
        return ImageChange(images=_container_images(body["containers"]))

    image = _image(body, "image")
    tag = _optional_string(body, "tag", 128)
    if tag is not None and image.is_pinned:
        raise InvalidRequestError(f"'tag' must be absent when 'image' already carries a tag or digest ('{image}')")
    if tag is None and not image.is_pinned:
        raise InvalidRequestError("'tag' is required unless 'image' carries its own tag or digest")
    if tag is not None:
        if not (TAG_PATTERN.fullmatch(tag) or DIGEST_PATTERN.fullmatch(tag)):
            raise InvalidRequestError(
                "'tag' must be a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) "
                "or a digest (sha256: and 64 lowercase hex digits)"
            )
        image = image.with_version(tag)
    return ImageChange(image=image, container=optional_container(body))


def optional_container(body: Mapping[str, Any]) -> str | None:
    """The body's `container`, a container name, when it has one."""
    container = _optional_string(body, "container", MAX_NAME_LENGTH)
    if container is not None and not _NAME.fullmatch(container):
        raise InvalidRequestError("'container' must be a container name: letters, digits, '-' and '_'")
    return container


def parse_push(body: Mapping[str, Any]) -> Push:
    """A `POST /hooks/push` body: the pushed `repository` and at least one of its `tag` and `digest`."""
    refuse_unknown_fields(body, PUSH_FIELDS)
    repository = _image(body, "repository")
    if repository.is_pinned:
        raise InvalidRequestError(
            f"'repository' must be the repository alone ('{repository.repository}'); put the tag in 'tag' "
            "and the digest in 'digest'"
        )
    tag = _optional_string(body, "tag", 128)
    if tag is not None and not TAG_PATTERN.fullmatch(tag):
        raise InvalidRequestError("'tag' must be a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127})")
    digest = _optional_string(body, "digest", 71)
    if digest is not None and not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidRequestError("'digest' must be a digest (sha256: and 64 lowercase hex digits)")
    if tag is None and digest is None:
        raise InvalidRequestError("give at least one of 'tag' and 'digest'")
    return Push(repository.repository, tag, digest)


def parse_rollback_request(body: Mapping[str, Any]) -> RollbackRequest:
    """Validate a `/rollback` body."""
    refuse_unknown_fields(body, ROLLBACK_FIELDS)
    cluster = cluster_identifier(body, "cluster")
    service = service_identifier(body, "service", cluster)
    target = _optional_string(body, "taskDefinition", MAX_ARN_LENGTH)
    if target is not None and not (_REVISION.fullmatch(target) or _TASK_DEFINITION_ARN.fullmatch(target)):
        raise InvalidRequestError("'taskDefinition' must be a revision as 'family:revision' or a task definition ARN")
    dry_run = body.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidRequestError("'dryRun' must be true or false")
    return RollbackRequest(cluster, service, target, dry_run)


def query_parameters(params: Any, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters of a route that takes `allowed` ones: unknown or repeated ones refused."""
    if not params:
        return {}
    found: dict[str, str] = {}
    unknown = [name for name in params if name not in allowed]
    if unknown:
        names = ", ".join(f"'{echo_input(name, 40)}'" for name in unknown[:5])
        takes = f"it takes: {', '.join(allowed)}" if allowed else "it takes none"
        raise InvalidRequestError(f"unknown query parameter(s) {names}; {takes}")
    for name in params:
        values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        if len(values) != 1:
            raise InvalidRequestError(f"query parameter '{name}' appears more than once")
        found[name] = values[0]
    return found


def history_page(params: Mapping[str, str], default_limit: int, max_limit: int) -> tuple[int, str | None]:
    """`limit` (1 to `max_limit`) and `next` of a history request."""
    limit = default_limit
    if "limit" in params:
        text = params["limit"]
        if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= max_limit:
            raise InvalidRequestError(f"'limit' must be a whole number from 1 to {max_limit}")
        limit = int(text)
    token = params.get("next")
    if token is not None and not token:
        raise InvalidRequestError("'next' must not be empty; leave it out for the first page")
    return limit, token


def deployment_id(params: Mapping[str, str]) -> str | None:
    """The `deployment` query parameter: an ECS deployment id (`ecs-svc/…`), or None."""
    value = params.get("deployment")
    if value is None:
        return None
    if not _DEPLOYMENT_ID.fullmatch(value):
        raise InvalidRequestError("'deployment' must be an ECS deployment id such as 'ecs-svc/1234567890123456789'")
    return value


_PUSH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def path_push_id(value: str) -> str:
    """A push id given in the URL path (what `/hooks/push` answered, or an ECR event's id)."""
    if not _PUSH_ID.fullmatch(value):
        raise InvalidRequestError("the push id must be the 'pushId' a push was answered with (letters, digits, '-')")
    return value


_APPROVAL_ID = re.compile(r"[0-9a-f]{16}")


def path_approval(value: str) -> str:
    """An approval id given in the URL path (what a 202 answered with)."""
    if not _APPROVAL_ID.fullmatch(value):
        raise InvalidRequestError("the approval id must be the 'id' an approval was answered with (16 hex digits)")
    return value


def approval_filter(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    """GET /approvals' `cluster` and `service` (names or ARNs; a service ARN's cluster must be the cluster)."""
    cluster = path_cluster(query["cluster"]) if "cluster" in query else None
    if "service" not in query:
        return cluster, None
    service = unquote(query["service"])
    if cluster is None:
        if _NAME.fullmatch(service) or _SERVICE_ARN.fullmatch(service):
            return None, service
        raise InvalidRequestError("'service' must be a service name or a service ARN")
    return cluster, service_identifier({"service": service}, "service", cluster)


def path_cluster(value: str) -> str:
    """A cluster name or ARN given in the URL path, percent-decoded once (`chalice local` hands a path
    parameter over still encoded, and API Gateway may keep `%2F` encoded)."""
    return cluster_identifier({"cluster": unquote(value)}, "cluster")


def path_deployment(value: str) -> str:
    """An ECS deployment id given in the URL path (`ecs-svc%2F…`), percent-decoded once."""
    decoded = unquote(value)
    if not _DEPLOYMENT_ID.fullmatch(decoded):
        raise InvalidRequestError(
            "the deployment in the path must be an ECS deployment id such as 'ecs-svc/1234567890123456789', "
            "URL-encoded (ecs-svc%2F1234567890123456789)"
        )
    return decoded


def path_service(value: str, cluster: str) -> str:
    """A service name or ARN given in the URL path, percent-decoded once."""
    return service_identifier({"service": unquote(value)}, "service", cluster)


def _image(body: Mapping[str, Any], name: str, label: str | None = None) -> ImageReference:
    text = _string(body, name, MAX_IMAGE_LENGTH)
    try:
        return parse_image(text)
    except InvalidImageError as error:
        raise InvalidRequestError(f"'{label or name}' is not a valid image reference: {error}") from error


def _container_images(value: Any, label: str = "containers") -> dict[str, ImageReference]:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"'{label}' must be an object of container name to image, not {json_type(value)}")
    if not value:
        raise InvalidRequestError(f"'{label}' must name at least one container")
    if len(value) > MAX_CONTAINERS:
        raise InvalidRequestError(f"'{label}' names more than {MAX_CONTAINERS} containers")
    images: dict[str, ImageReference] = {}
    for container in value:
        if not _NAME.fullmatch(container):
            raise InvalidRequestError(
                f"'{label}' key '{echo_input(container, 40)}' must be a container name: letters, digits, '-' and '_'"
            )
        field = f"{label}.{container}"
        image = _image(value, container, field) if isinstance(value[container], str) else None
        if image is None:
            raise InvalidRequestError(f"'{field}' must be a string, not {json_type(value[container])}")
        if not image.is_pinned:
            raise InvalidRequestError(f"'{field}' must carry a tag or a digest ('{image}:tag' or '{image}@sha256:…')")
        images[container] = image
    return images


def cluster_identifier(body: Mapping[str, Any], name: str) -> str:
    """A cluster name or cluster ARN."""
    value = _string(body, name, MAX_ARN_LENGTH)
    if _NAME.fullmatch(value) or _CLUSTER_ARN.fullmatch(value):
        return value
    raise InvalidRequestError(
        f"'{name}' must be a cluster name (up to 255 letters, digits, '-' and '_') or a cluster ARN"
    )


def service_identifier(body: Mapping[str, Any], name: str, cluster: str) -> str:
    """A service name or service ARN; an ARN's cluster must match `cluster`."""
    value = _string(body, name, MAX_ARN_LENGTH)
    if _NAME.fullmatch(value):
        return value
    match = _SERVICE_ARN.fullmatch(value)
    if not match:
        raise InvalidRequestError(
            f"'{name}' must be a service name (up to 255 letters, digits, '-' and '_') or a service ARN"
        )
    arn_cluster = match.group("cluster")
    if arn_cluster is not None and arn_cluster != cluster_name(cluster):
        raise InvalidRequestError(
            f"'{name}' is an ARN in cluster '{arn_cluster}', but 'cluster' is '{cluster_name(cluster)}'"
        )
    return value


def cluster_name(cluster: str) -> str:
    """The name of a cluster given by name or ARN."""
    match = _CLUSTER_ARN.fullmatch(cluster)
    return match.group("cluster") if match else cluster


def _refuse_unknown_query(query: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    unknown = [key for key in query if key not in allowed]
    if unknown:
        names = ", ".join(f"'{echo_input(key, 40)}'" for key in unknown[:5])
        raise InvalidRequestError(f"unknown query parameter(s) {names}; allowed are: {', '.join(allowed)}")


def _query_bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise InvalidRequestError(f"query parameter '{name}' must be true or false")
    return value == "true"


def refuse_unknown_fields(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = [key for key in body if key not in allowed]
    if unknown:
        names = ", ".join(f"'{echo_input(key, 40)}'" for key in unknown[:5])
        raise InvalidRequestError(f"unknown field(s) {names}; allowed fields are: {', '.join(allowed)}")


def _string(body: Mapping[str, Any], name: str, max_length: int) -> str:
    value = _optional_string(body, name, max_length)
    if value is None:
        raise InvalidRequestError(f"'{name}' is required")
    return value


def _optional_string(body: Mapping[str, Any], name: str, max_length: int) -> str | None:
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str):
        raise InvalidRequestError(f"'{name}' must be a string, not {json_type(value)}")
    if not value:
        raise InvalidRequestError(f"'{name}' must not be empty")
    if len(value) > max_length:
        raise InvalidRequestError(f"'{name}' is longer than {max_length} characters")
    return value


def _optional_bool(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"'{name}' must be true or false, not {json_type(value)}")
    return value


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise InvalidRequestError(f"field '{echo_input(key, 40)}' appears more than once in the request body")
        body[key] = value
    return body


def _refuse_constant(name: str) -> None:
    raise InvalidRequestError(f"the request body contains {name}, which is not JSON")


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
