"""Image manifests as registries serve them, and the platform a task runs on (pure).

A registry answers a reference with a manifest: an image manifest (one
platform), or an index (Docker's manifest list, OCI's image index) that names
one manifest per platform. ECS pulls the entry of the task's platform, its
`runtimePlatform` (`linux/amd64` when the task definition names none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# What a lookup accepts: an index first, so that a multi-platform image answers with its platforms.
ACCEPTED = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})

_ARCHITECTURES = {"X86_64": "amd64", "ARM64": "arm64"}


@dataclass(frozen=True)
class Platform:
    """An OS and CPU architecture, as an index names them (`linux/amd64`)."""

    os: str
    architecture: str

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"


@dataclass(frozen=True)
class Manifest:
    """What a registry says a reference is: its digest, its media type, and for an index the platforms it offers."""

    digest: str
    media_type: str
    platforms: tuple[Platform, ...] | None = None  # None: a single-platform image manifest

    def offers(self, platform: Platform) -> bool:
        """True when ECS can pull this image on `platform` (a single-platform manifest is not judged)."""
        return self.platforms is None or platform in self.platforms


def is_index(media_type: str | None) -> bool:
    """True for an OCI image index or a Docker manifest list."""
    return (media_type or "").split(";")[0].strip() in INDEXES


def platforms_of(body: str | bytes) -> tuple[Platform, ...]:
    """The platforms an index offers (attestation entries, `unknown/unknown`, left out); ValueError if unreadable."""
    try:
        document = json.loads(body)
    except ValueError as error:
        raise ValueError(f"the index is not JSON: {error}") from error
    entries = document.get("manifests") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("the index lists no manifests")
    found = []
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, Mapping) else None
        if not isinstance(platform, Mapping):
            continue
        os_name, architecture = platform.get("os"), platform.get("architecture")
        if isinstance(os_name, str) and isinstance(architecture, str) and "unknown" not in (os_name, architecture):
            found.append(Platform(os_name, architecture))
    return tuple(dict.fromkeys(found))


def task_platform(task_definition: Mapping[str, Any]) -> Platform:
    """The platform a revision's tasks run on: its `runtimePlatform`, or `linux/amd64` (ECS's default)."""
    runtime = task_definition.get("runtimePlatform") or {}
    family = str(runtime.get("operatingSystemFamily") or "LINUX")
    architecture = str(runtime.get("cpuArchitecture") or "X86_64")
    os_name = "linux" if family == "LINUX" else "windows"
    return Platform(os_name, _ARCHITECTURES.get(architecture, architecture.lower()))


def named(platforms: Sequence[Platform]) -> str:
    """`linux/amd64, linux/arm64` (or `none` for an empty list)."""
    return ", ".join(str(platform) for platform in platforms) or "none"
