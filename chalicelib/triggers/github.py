"""GitHub's webhooks for GHCR: a container version published becomes a push (`POST /hooks/github`).

GitHub signs each delivery with the webhook's secret (`X-Hub-Signature-256:
sha256=<HMAC-SHA256 of the raw body>`), checked before anything else. A
`registry_package` or `package` event with action `published` for a
container names its repository in `package_url` (`ghcr.io/<owner>/<name>:<tag>`)
and its tag and digest in `container_metadata.tag`. Any other delivery (the
`ping` GitHub sends when the webhook is created, another event or action, a
package that is no container, a version without a tag, as GitHub's own
examples are) deploys nothing and says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from chalicelib.core.errors import InvalidRequestError
from chalicelib.core.images import DIGEST_PATTERN, TAG_PATTERN, InvalidImageError, parse_image
from chalicelib.core.push_policy import Push

SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
PACKAGE_EVENTS = ("registry_package", "package")
_CONTAINER_KINDS = frozenset({"container", "docker"})


@dataclass(frozen=True)
class Delivery:
    """What one delivery asks for: a push to follow, or the reason it deploys nothing."""

    push: Push | None = None
    ignored: str | None = None


def read_delivery(event_name: str | None, body: bytes, content_type: str | None) -> Delivery:
    """The push a (signature-checked) delivery tells of; InvalidRequestError for a body GitHub would not send."""
    payload = _payload(body, content_type)
    if event_name == "ping":
        return Delivery(ignored="ping: the webhook reaches this service")
    if event_name not in PACKAGE_EVENTS:
        return Delivery(ignored=f"the event '{event_name}' is not a package publication ({', '.join(PACKAGE_EVENTS)})")
    if payload.get("action") != "published":
        return Delivery(ignored=f"the action '{payload.get('action')}' is not 'published'")
    package = payload.get(event_name)
    if not isinstance(package, Mapping):
        raise InvalidRequestError(f"the '{event_name}' event has no '{event_name}' object")
    if not _is_container(package):
        return Delivery(ignored="the package is not a container image")
    version = package.get("package_version")
    if not isinstance(version, Mapping):
        raise InvalidRequestError(f"the '{event_name}' event has no package_version")
    tag_fields = _mapping(_mapping(version.get("container_metadata")).get("tag"))
    tag = tag_fields.get("name")
    if not isinstance(tag, str) or not tag:
        return Delivery(ignored="the published version has no tag, so no policy can follow it")
    if not TAG_PATTERN.fullmatch(tag):
        raise InvalidRequestError(f"the published tag is not a tag: {tag[:130]!r}")
    return Delivery(push=Push(_repository(package, version, tag), tag, _digest(tag_fields, version)))


def _payload(body: bytes, content_type: str | None) -> Mapping[str, Any]:
    """The JSON payload, sent as application/json or as the `payload` field of a form (GitHub's two choices)."""
    text = body.decode("utf-8", errors="replace")
    if (content_type or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        text = (parse_qs(text).get("payload") or [""])[0]
    try:
        payload = json.loads(text)
    except ValueError:
        raise InvalidRequestError("the delivery's payload is not JSON") from None
    if not isinstance(payload, Mapping):
        raise InvalidRequestError("the delivery's payload is not a JSON object")
    return payload


def _is_container(package: Mapping[str, Any]) -> bool:
    kinds = (package.get("package_type"), package.get("ecosystem"), _mapping(package.get("registry")).get("type"))
    return any(isinstance(kind, str) and kind.lower() in _CONTAINER_KINDS for kind in kinds)


def _repository(package: Mapping[str, Any], version: Mapping[str, Any], tag: str) -> str:
    """`ghcr.io/<owner>/<name>`, lower-case as image references are, from package_url (else owner and name)."""
    url = version.get("package_url")
    if isinstance(url, str) and url.startswith("ghcr.io/"):
        repository = url[: -len(tag) - 1] if url.endswith(f":{tag}") else url.rpartition(":")[0] or url
    else:
        owner = _mapping(package.get("owner")).get("login")
        repository = f"ghcr.io/{owner}/{package.get('name')}"
    repository = repository.lower()
    try:
        reference = parse_image(repository)
    except InvalidImageError as error:
        raise InvalidRequestError(f"the package's repository '{repository[:200]}' is not one: {error}") from None
    if reference.is_pinned:
        raise InvalidRequestError(f"the package's repository '{repository[:200]}' carries a tag or digest")
    return reference.repository


def _digest(tag_fields: Mapping[str, Any], version: Mapping[str, Any]) -> str | None:
    """The version's sha256 digest, if GitHub gives a valid one (its examples carry a short, invalid one)."""
    for candidate in (tag_fields.get("digest"), version.get("version"), version.get("name")):
        if isinstance(candidate, str) and DIGEST_PATTERN.fullmatch(candidate):
            return candidate
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
