"""The conversation with image registries: ECR through its API, any other through the OCI distribution API.

A lookup answers what a reference is (its digest, its media type, the
platforms of an index), or says that it does not exist (`ImageMissing`), or
that the registry could not say (`RegistryUnreachable`).
"""

from __future__ import annotations


class ImageMissing(Exception):
    """The registry says the reference does not exist."""


class RegistryUnreachable(Exception):
    """The registry could not be asked, or would not say (unreachable, 5xx, refused credentials)."""

    def __init__(self, registry: str, reason: str) -> None:
        super().__init__(f"registry {registry}: {reason}")
        self.registry = registry
        self.reason = reason
