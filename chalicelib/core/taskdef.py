"""Task definitions as values: copy for registering, change images, diff (pure)."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.core.errors import AmbiguousContainerError, ContainerNotFoundError, UncopyableTaskDefinitionError
from chalicelib.core.images import ImageReference, InvalidImageError, parse_image

# Fields DescribeTaskDefinition returns that RegisterTaskDefinition does not take:
# ECS sets them. Everything else is copied.
READ_ONLY_FIELDS = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)
# ECS reserves the "aws:" tag prefix; RegisterTaskDefinition refuses such tags.
RESERVED_TAG_PREFIX = "aws:"
# Each revision /update registers names the one it replaced, so /rollback knows where to go back.
PREVIOUS_TASK_DEFINITION_TAG = "previous-task-definition"
# Tags that describe the images of a revision, so they do not outlive a change of images: the tag a
# digest-pinned push deployed (chalicelib.push_policy) would otherwise name the wrong version.
PUSHED_TAG_TAG = "image-updater:pushed-tag"
IMAGE_BOUND_TAGS = frozenset({PUSHED_TAG_TAG})
MAX_TAGS = 50
MAX_TAG_VALUE_LENGTH = 256


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between two task definitions."""

    path: str
    old: Any
    new: Any

    def as_dict(self) -> dict[str, Any]:
        """JSON shape: {"path", "from", "to"}."""
        return {"path": self.path, "from": self.old, "to": self.new}


def registration_input(task_definition: Mapping[str, Any], tags: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """The RegisterTaskDefinition arguments that recreate `task_definition` with its tags.

    `task_definition` is ECS's own JSON: every field is carried, at every depth,
    including fields newer than any AWS SDK, except the ones ECS sets itself.
    """
    registration = {key: copy.deepcopy(value) for key, value in task_definition.items() if key not in READ_ONLY_FIELDS}
    carried_tags = [
        {"key": tag["key"], "value": tag["value"]} for tag in tags if not tag["key"].startswith(RESERVED_TAG_PREFIX)
    ]
    if carried_tags:
        registration["tags"] = carried_tags
    return registration


def container_images(task_definition: Mapping[str, Any]) -> dict[str, str]:
    """Container name to image, in task definition order."""
    return {c["name"]: c.get("image", "") for c in task_definition.get("containerDefinitions", [])}


def choose_containers(task_definition: Mapping[str, Any], image: ImageReference, container: str | None) -> list[str]:
    """The containers a request for `image` changes.

    Named container: exactly that one. Otherwise the only container, or every
    container whose current image is from the same repository as `image`.
    """
    images = container_images(task_definition)
    names = list(images)
    if container is not None:
        require_containers(task_definition, [container])
        return [container]
    if len(names) == 1:
        return names
    wanted = image.canonical_repository()
    matching = [name for name, current in images.items() if _repository_of(current) == wanted]
    if not matching:
        raise AmbiguousContainerError(
            f"no container of task definition {revision_label(task_definition)} runs an image from "
            f"'{image.repository}'; name the one to change in 'container' (one of: {', '.join(names)})"
        )
    return matching


def require_containers(task_definition: Mapping[str, Any], names: Collection[str]) -> None:
    """Raise ContainerNotFoundError naming every one of `names` the task definition lacks."""
    known = container_images(task_definition)
    missing = [name for name in names if name not in known]
    if missing:
        quoted = ", ".join(f"'{name}'" for name in missing)
        raise ContainerNotFoundError(
            f"container {quoted} is not in task definition "
            f"{revision_label(task_definition)}; its containers are: {', '.join(known)}"
        )


def without_tags(registration: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    """A copy of `registration` without the tags named in `keys` (the rest shared, as in `with_tags`)."""
    if not any(tag["key"] in keys for tag in registration.get("tags", [])):
        return dict(registration)
    trimmed = dict(registration)
    trimmed["tags"] = [tag for tag in registration.get("tags", []) if tag["key"] not in keys]
    return trimmed


def with_tags(registration: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `registration` whose tags include `tags` (each replacing one of the same key).

    Only the top level and the tag list are new; the rest is shared with
    `registration`, which is left as it was.
    """
    tagged = dict(registration)
    kept = [tag for tag in registration.get("tags", []) if tag["key"] not in tags]
    tagged["tags"] = [*kept, *({"key": key, "value": value} for key, value in tags.items())]
    return tagged


def tag_reference(task_definition: Mapping[str, Any]) -> str:
    """How a tag names a revision: its ARN, or `family:revision` when the ARN is too long for a tag value."""
    arn = str(task_definition["taskDefinitionArn"])
    return arn if len(arn) <= MAX_TAG_VALUE_LENGTH else revision_label(task_definition)


def check_tag_count(registration: Mapping[str, Any]) -> None:
    """Refuse, before anything is written, a revision with more tags than ECS allows."""
    count = len(registration.get("tags", []))
    if count > MAX_TAGS:
        raise UncopyableTaskDefinitionError(
            f"the new revision would carry {count} tags (its own and this service's bookkeeping), "
            f"but ECS allows {MAX_TAGS}; nothing was changed"
        )


def tag_value(tags: Sequence[Mapping[str, str]], key: str) -> str | None:
    """The value of tag `key`, or None."""
    return next((tag["value"] for tag in tags if tag["key"] == key), None)


def with_images(registration: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `registration` whose named containers run the given images.

    Only what changes is new (the top level, the container list, the changed
    containers); the rest is shared with `registration`, which is left as it was.
    """
    changed = dict(registration)
    changed["containerDefinitions"] = [
        {**container, "image": images[container["name"]]} if container.get("name") in images else container
        for container in registration.get("containerDefinitions", [])
    ]
    return changed


def is_same_image(current: str, wanted: ImageReference) -> bool:
    """True when the image string a container runs is the reference `wanted`."""
    try:
        return parse_image(current).same_image_as(wanted)
    except InvalidImageError:
        return False


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """Every leaf field that differs between two task definitions (or registrations).

    Lists of named objects (containers, volumes) are matched by name, so a path
    reads `containerDefinitions[app].image`; other lists by position. Sorted by path.
    """
    changes: list[FieldChange] = []
    _diff_value(old, new, "", changes)
    return sorted(changes, key=lambda change: change.path)


def revision_label(task_definition: Mapping[str, Any]) -> str:
    """`family:revision`, the way ECS names a revision."""
    return f"{task_definition.get('family')}:{task_definition.get('revision')}"


def _repository_of(image: str) -> str | None:
    try:
        return parse_image(image).canonical_repository()
    except InvalidImageError:
        return None


_MISSING = object()


def _diff_value(old: Any, new: Any, path: str, changes: list[FieldChange]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            _diff_value(old.get(key, _MISSING), new.get(key, _MISSING), _join(path, str(key)), changes)
    elif isinstance(old, list) and isinstance(new, list):
        old_keys, new_keys = _list_keys(old), _list_keys(new)
        if old_keys is not None and new_keys is not None:
            old_by, new_by = dict(zip(old_keys, old, strict=True)), dict(zip(new_keys, new, strict=True))
            for key in old_keys + [k for k in new_keys if k not in old_by]:
                _diff_value(old_by.get(key, _MISSING), new_by.get(key, _MISSING), f"{path}[{key}]", changes)
        else:
            for index in range(max(len(old), len(new))):
                _diff_value(
                    old[index] if index < len(old) else _MISSING,
                    new[index] if index < len(new) else _MISSING,
                    f"{path}[{index}]",
                    changes,
                )
    elif old != new:
        changes.append(FieldChange(path, _absent_as_none(old), _absent_as_none(new)))


def _list_keys(items: list[Any]) -> list[str] | None:
    """Names of a list of named objects, or None when they cannot key the list."""
    if not items or not all(isinstance(i, Mapping) and isinstance(i.get("name"), str) for i in items):
        return None
    names = [i["name"] for i in items]
    return names if len(set(names)) == len(names) else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _absent_as_none(value: Any) -> Any:
    return None if value is _MISSING else value
