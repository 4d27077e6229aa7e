"""No field lost, whatever botocore the Lambda runtime has: ECS's own JSON in, the full copy out.

botocore's response parser keeps only the fields its own model knows, and its
request serializer sends only those. The Lambda runtime's botocore always lags
ECS, so a revision copied through the parsed answer would silently lose every
field newer than the runtime (fault injection turned off, digest pinning back
on). Two hooks on the ECS client close that gap, inside botocore's own request
pipeline (endpoints, signing, retries, timeouts and the time budget all apply):

- `after-call` keeps the raw JSON of DescribeTaskDefinition and
  RegisterTaskDefinition answers next to the parsed ones (`raw_answer`);
- `before-parameter-build` hands botocore only what its model knows (so its
  validation passes), and `before-sign` puts the rest back into the serialized
  JSON body, at the path it came from, before the request is signed.

A field can only be lost if a client lacks these hooks or the protocol is not
JSON; the copy then stops with UncopyableTaskDefinitionError naming each field.
"""

from __future__ import annotations

import copy
import json
import logging
import weakref
from collections.abc import Mapping
from typing import Any

from chalicelib.core.errors import UncopyableTaskDefinitionError

logger = logging.getLogger(__name__)

# Operations whose answers are kept raw, and the one whose body is completed.
RAW_ANSWERS = ("DescribeTaskDefinition", "RegisterTaskDefinition")
FULL_BODY_OPERATION = "RegisterTaskDefinition"
# Where the raw answer sits in the parsed response (a key no AWS field can have).
_RAW_KEY = "ecs-image-updater:raw-answer"
_CONTEXT_KEY = "ecs-image-updater:full-body"
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
}


def install(client: Any) -> None:
    """Give an ECS client the hooks that keep every field (idempotent)."""
    if client in _instrumented:
        return
    events = client.meta.events
    for operation in RAW_ANSWERS:
        events.register(f"after-call.ecs.{operation}", _keep_raw_answer)
    events.register(f"before-parameter-build.ecs.{FULL_BODY_OPERATION}", _hand_botocore_what_it_knows)
    events.register(f"before-sign.ecs.{FULL_BODY_OPERATION}", _send_the_full_body)
    _instrumented.add(client)


def raw_answer(response: Mapping[str, Any]) -> dict[str, Any] | None:
    """ECS's answer as it sent it (every field), or None when it was not kept."""
    raw = response.get(_RAW_KEY)
    return raw if isinstance(raw, dict) else None


def unknown_paths(value: Any, shape: Any) -> list[str]:
    """Paths in `value` that a botocore `shape` does not describe (or describes with another type)."""
    return prune(value, shape)[1]


def prune(value: Any, shape: Any, path: str = "") -> tuple[Any, list[str]]:
    """`value` cut down to what `shape` describes, and the paths of what was cut."""
    if shape is None:
        return None, [path]
    expected = _PYTHON_TYPES.get(shape.type_name)
    if expected is not None and (not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)):
        return None, [path]
    if shape.type_name == "structure" and not getattr(shape, "is_document_type", False):
        kept: dict[str, Any] = {}
        lost: list[str] = []
        for key, member in value.items():
            member_path = f"{path}.{key}" if path else key
            member_shape = shape.members.get(key)
            if member_shape is None:
                lost.append(member_path)
                continue
            pruned, member_lost = prune(member, member_shape, member_path)
            lost.extend(member_lost)
            if pruned is not None:
                kept[key] = pruned
        return kept, lost
    if shape.type_name == "list":
        items: list[Any] = []
        lost = []
        for index, item in enumerate(value):
            pruned, item_lost = prune(item, shape.member, f"{path}[{index}]")
            if pruned is None:
                return None, [path]  # an item botocore cannot take: the list goes whole, as ECS sent it
            lost.extend(item_lost)
            items.append(pruned)
        return items, lost
    if shape.type_name == "map":
        entries: dict[str, Any] = {}
        lost = []
        for key, item in value.items():
            pruned, item_lost = prune(item, shape.value, f"{path}.{key}")
            lost.extend(item_lost)
            if pruned is not None:
                entries[key] = pruned
        return entries, lost
    return value, []


def overlay(serialized: Any, full: Any) -> Any:
    """`serialized` (what botocore wrote) with whatever it left out of `full` put back."""
    if isinstance(full, dict) and isinstance(serialized, dict):
        merged = dict(serialized)
        for key, value in full.items():
            merged[key] = overlay(serialized[key], value) if key in serialized else copy.deepcopy(value)
        return merged
    if isinstance(full, list) and isinstance(serialized, list) and len(full) == len(serialized):
        return [overlay(mine, theirs) for mine, theirs in zip(serialized, full, strict=True)]
    if serialized is None:
        return copy.deepcopy(full)
    return serialized


def check_carried(client: Any, operation: str, params: Mapping[str, Any]) -> None:
    """Refuse, before anything is sent, a call that would lose fields botocore does not know."""
    model = client.meta.service_model.operation_model(operation)
    why = None
    if client not in _instrumented:
        why = "this client sends only the fields its AWS SDK knows"
    elif model.metadata.get("protocol") != "json":
        why = f"the AWS SDK speaks the {model.metadata.get('protocol')} protocol to ECS, not JSON"
    if why is None:
        return  # the hooks carry every field (the walk for them is done once, in before-parameter-build)
    lost = unknown_paths(dict(params), model.input_shape)
    if lost:
        raise UncopyableTaskDefinitionError(
            f"the task definition has field(s) {', '.join(lost[:10])} that this service's AWS SDK cannot "
            f"send ({why}); nothing was changed (upgrade botocore in the deployment)"
        )


def _keep_raw_answer(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    if getattr(http_response, "status_code", 0) != 200:
        return
    try:
        raw = json.loads(http_response.content)
    except (TypeError, ValueError, AttributeError):
        return  # an answer not from the wire (a stub): only the parsed one exists
    if isinstance(raw, dict):
        parsed[_RAW_KEY] = raw


def _hand_botocore_what_it_knows(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    pruned, lost = prune(params, model.input_shape)
    if not lost:
        return
    if model.metadata.get("protocol") != "json":
        return  # check_carried refuses such a call before it gets here
    context[_CONTEXT_KEY] = json.loads(json.dumps(params))
    logger.info("carrying %d field(s) this AWS SDK does not know: %s", len(lost), ", ".join(lost[:20]))
    params.clear()
    params.update(pruned)


def _send_the_full_body(request: Any, **_: Any) -> None:
    full = getattr(request, "context", {}).get(_CONTEXT_KEY)
    if full is None:
        return
    serialized = json.loads(request.data or b"{}")
    request.data = json.dumps(overlay(serialized, full)).encode("utf-8")
