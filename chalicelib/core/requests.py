"""Validated requests: what a caller asked the update path to do, parsed once at the border (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.core.images import ImageReference


@dataclass(frozen=True)
class ImageChange:
    """What to change in a service: `image` (with an optional `container`), or `images` by container name.

    `as_running` names containers that must already run exactly the given image
    (an image without a tag or digest can only be taken back as it runs), and
    are left alone. `expect_running` guards a change decided on an earlier read:
    under the lock, each named container must still run that image, or nothing
    is done (ServiceChangedError). `revision_tags` go on the new revision too.
    """

    image: ImageReference | None = None
    container: str | None = None
    images: Mapping[str, ImageReference] | None = None
    as_running: Mapping[str, str] | None = None
    revision_tags: Mapping[str, str] | None = None
    expect_running: Mapping[str, str] | None = None

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


@dataclass(frozen=True)
class RollbackRequest:
    """A validated `/rollback` request; `task_definition` is an ARN or `family:revision`, or None."""

    cluster: str
    service: str
    task_definition: str | None = None
