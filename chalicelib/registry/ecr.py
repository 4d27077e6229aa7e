"""ECR: what a reference is, in one BatchGetImage in the registry's own account and region.

The answer carries the manifest itself, so an index's platforms come with it
(no second call). `<account>.dkr.ecr.<region>.amazonaws.com/<repository>`
names the registry; the client is the one for that region.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import clients
from chalicelib.core.errors import AwsCallError
from chalicelib.core.images import ImageReference
from chalicelib.core.manifests import ACCEPTED, Manifest, is_index, platforms_of
from chalicelib.registry import ImageMissing, RegistryUnreachable

_HOST = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$")
_MISSING = {"ImageNotFound", "ImageTagDoesNotMatchDigest"}


@dataclass(frozen=True)
class EcrRepository:
    """Where an ECR image lives."""

    host: str
    account: str
    region: str
    name: str


def repository_of(reference: ImageReference) -> EcrRepository | None:
    """The ECR repository of a reference, or None for any other registry."""
    host, _, name = reference.repository.partition("/")
    found = _HOST.match(host)
    if found is None or not name:
        return None
    return EcrRepository(host, found["account"], found["region"], name)


def lookup(repository: EcrRepository, reference: ImageReference, client_for: Callable[[str], Any]) -> Manifest:
    """The manifest `reference` names; ImageMissing or RegistryUnreachable otherwise."""
    image_id = {"imageDigest": reference.digest} if reference.digest else {"imageTag": reference.tag or "latest"}
    try:
        answer = clients.call(
            client_for(repository.region).batch_get_image,
            "BatchGetImage",
            {"RepositoryNotFoundException": lambda message: ImageMissingError(f"no repository: {message}")},
            registryId=repository.account,
            repositoryName=repository.name,
            imageIds=[image_id],
            acceptedMediaTypes=list(ACCEPTED),
        )
    except ImageMissingError as missing:
        raise ImageMissing(str(missing)) from None
    except AwsCallError as failure:
        raise RegistryUnreachable(repository.host, failure.message) from None
    for failure in answer.get("failures") or []:
        code = failure.get("failureCode")
        if code in _MISSING:
            raise ImageMissing(f"ECR {code}: {failure.get('failureReason') or 'not found'}")
        raise RegistryUnreachable(repository.host, f"BatchGetImage: {code}: {failure.get('failureReason')}")
    images = answer.get("images") or []
    if not images:
        raise ImageMissing("ECR found no such image")
    image = images[0]
    media_type = image.get("imageManifestMediaType") or ""
    digest = (image.get("imageId") or {}).get("imageDigest") or ""
    if not is_index(media_type):
        return Manifest(digest, media_type)
    try:
        return Manifest(digest, media_type, platforms_of(image.get("imageManifest") or ""))
    except ValueError as unreadable:
        raise RegistryUnreachable(repository.host, f"its index of {reference} cannot be read: {unreadable}") from None


class ImageMissingError(AwsCallError):
    """A repository that does not exist: the image cannot either."""

    def __init__(self, message: str) -> None:
        super().__init__("BatchGetImage", message)
