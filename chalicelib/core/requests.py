"""Validated requests: what a caller asked the update path to do, parsed once at the border (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.core.images import ImageReference

# (the service as described now, the revision it runs, that revision's tags) -> the images to deploy.
Recheck = Callable[[Mapping[str, Any], Mapping[str, Any], Sequence[Mapping[str, str]]], Mapping[str, ImageReference]]


@dataclass(frozen=True)
class ImageChange:
    """What to change in a service: `image` (with an optional `container`), or `images` by container name.

    `as_running` names containers that must already run exactly the given image
    (an image without a tag or digest can only be taken back as it runs), and
    are left alone. `recheck` decides a change made on an earlier read again,
    under the lock, from the service as it is now (described with its tags),
    the revision it runs and that revision's tags: it returns the images to
    deploy, or raises a refusal (ServiceChangedError) and nothing is done.
    `revision_tags` go on the new revision too.
    """

    image: ImageReference | None = None
    container: str | None = None
    images: Mapping[str, ImageReference] | None = None
    as_running: Mapping[str, str] | None = None
    revision_tags: Mapping[str, str] | None = None
    recheck: Recheck | None = None

    def requested_images(self) -> list[ImageReference]:
        """Every image the change would deploy."""
        return [self.image] if self.image is not None else list((self.images or {}).values())


@dataclass(frozen=True)
class UpdateRequest:
    """A validated `/update` request for one service.

    Either `image` (with an optional `container`) or `images`, a map of container
    name to image, says what to change.
    """

    cluster: str
    service: str
    image: ImageReference | None = None
    container: str | None = None
    images: Mapping[str, ImageReference] | None = None
    force_new_deployment: bool = False
    dry_run: bool = False

    @property
    def change(self) -> ImageChange:
        """What to change, apart from which service."""
        return ImageChange(self.image, self.container, self.images)


@dataclass(frozen=True)
class Target:
    """One service of a request, and what to change in it."""

    service: str
    change: ImageChange


@dataclass(frozen=True)
class FanOutRequest:
    """Several services of one cluster, moved together or not at all."""

    cluster: str
    targets: tuple[Target, ...]
    force_new_deployment: bool = False
    dry_run: bool = False
    # Errors name the service even when there is only one (an apply of one description file).
    name_services: bool = False
    # A service the request leaves as it is gets a NO_CHANGE record; an apply (a reconcile loop may run it
    # every minute) records only what it changed, so no-ops never push real deployments out of the history.
    record_no_change: bool = True
    # A failure after the lock was taken gets an ERROR record; a queued push's attempts do not (it records
    # its failure once, when it stops retrying).
    record_failures: bool = True
    # The images named are looked up alongside the reads (no extra round trip for a change, one lookup for a
    # no-op); an apply, where a no-op is the common case, looks up only what the reads say changes.
    look_up_early: bool = True


@dataclass(frozen=True)
class RollbackRequest:
    """A validated `/rollback` request; `task_definition` is an ARN or `family:revision`, or None."""

    cluster: str
    service: str
    task_definition: str | None = None
    dry_run: bool = False  # every check and the diff of the two revisions; nothing locked, nothing written
