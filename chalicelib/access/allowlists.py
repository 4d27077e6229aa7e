"""Who may deploy what: the allowlists and the digest rule, checked before any AWS write.

A leaked API key must not mean "run anything anywhere". Operators limit the
clusters and services (glob patterns, case-sensitive like ECS names) and the
image repositories (prefixes) this service will touch, and can insist on
immutable `sha256:` digests. Prefixes and patterns match at boundaries only
(chalicelib.core.patterns). An unset list allows everything; the service then
logs a warning once per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from chalicelib.core.config import Settings
from chalicelib.core.errors import NotAllowedError
from chalicelib.core.images import ImageReference, InvalidImageError, parse_image
from chalicelib.core.locations import name_of
from chalicelib.core.patterns import name_or_arn_matches, prefix_allows

logger = logging.getLogger(__name__)
_warned: set[str] = set()


@dataclass(frozen=True)
class AccessPolicy:
    """The allowlists and the digest rule of one request."""

    image_prefixes: tuple[str, ...] | None = None
    clusters: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    require_digest: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """The policy the settings describe; warns once per process for each unset list."""
        for name, value in (
            ("ALLOWED_IMAGE_PREFIXES", settings.allowed_image_prefixes),
            ("ALLOWED_CLUSTERS", settings.allowed_clusters),
            ("ALLOWED_SERVICES", settings.allowed_services),
        ):
            if value is None and name not in _warned:
                _warned.add(name)
                logger.warning("%s is not set: every value is allowed", name)
        return cls(
            settings.allowed_image_prefixes,
            settings.allowed_clusters,
            settings.allowed_services,
            settings.require_digest,
        )

    def check_cluster(self, cluster: str) -> None:
        """Refuse a cluster (name or ARN) outside ALLOWED_CLUSTERS."""
        if self.clusters is not None and not any(name_or_arn_matches(p, cluster) for p in self.clusters):
            raise NotAllowedError(f"cluster '{name_of(cluster)}' is not allowed by ALLOWED_CLUSTERS")

    def allows_service(self, service: str) -> bool:
        """True when a service (name or ARN) matches ALLOWED_SERVICES."""
        return self.services is None or any(name_or_arn_matches(p, service) for p in self.services)

    def check_service(self, service: str) -> None:
        """Refuse a service (name or ARN) outside ALLOWED_SERVICES."""
        if not self.allows_service(service):
            raise NotAllowedError(f"service '{name_of(service)}' is not allowed by ALLOWED_SERVICES")

    def check_image(self, image: ImageReference | str) -> None:
        """Refuse an image outside ALLOWED_IMAGE_PREFIXES, or a tag when REQUIRE_DIGEST is on."""
        if not self.require_digest and self.image_prefixes is None:
            return
        reference = image if isinstance(image, ImageReference) else _parse(image)
        if self.require_digest and reference.digest is None:
            raise NotAllowedError(f"image '{reference}' has no sha256 digest, and REQUIRE_DIGEST allows only digests")
        if self.image_prefixes is None:
            return
        candidates = (reference.repository, reference.canonical_repository())
        if not any(prefix_allows(prefix, c) for c in candidates for prefix in self.image_prefixes):
            raise NotAllowedError(f"image repository '{reference.repository}' is not allowed by ALLOWED_IMAGE_PREFIXES")

    def check_target(self, cluster: str, service: str) -> None:
        """Refuse a cluster or a service outside the lists."""
        self.check_cluster(cluster)
        self.check_service(service)


def _parse(image: str) -> ImageReference:
    try:
        return parse_image(image)
    except InvalidImageError as error:
        raise NotAllowedError(f"image '{image}' cannot be checked against the allowlists: {error}") from error
