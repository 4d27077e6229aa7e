"""One question every entry point asks before it touches a service: may this principal do this, here, with that?

Two layers answer it, both before any AWS write:

1. the allowlists and the digest rule (chalicelib.access.allowlists), an outer
   ceiling for every caller that no rule can widen;
2. the permissions file (chalicelib.access.permissions), when the stage has
   one: its rules for the principal. Without a file, every principal may do
   everything the ceiling allows (the behaviour before permissions existed).

A cluster is checked by its ARN. A cluster *name* in either layer (`prod`,
`web-*`) means a cluster of the home account and region, as a name does in a
request: it never matches a cluster elsewhere, which only an ARN pattern
(`arn:aws:ecs:*:222222222222:cluster/*`) names. So listing more accounts in
TARGET_ACCOUNTS widens no rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.identity import Principal
from chalicelib.access.permissions import Permissions
from chalicelib.core.errors import NotAllowedError
from chalicelib.core.images import ImageReference, InvalidImageError, as_reference
from chalicelib.core.locations import Location
from chalicelib.core.windows import Scope


class _Change(Protocol):
    def requested_images(self) -> Sequence[ImageReference]: ...


class _Target(Protocol):
    @property
    def service(self) -> str: ...

    @property
    def change(self) -> _Change: ...


ImageGate = Callable[[str, ImageReference | str], None]


@dataclass(frozen=True)
class Guard:
    """The allowlists and the permissions that apply to one principal."""

    principal: Principal
    ceiling: AccessPolicy
    permissions: Permissions | None = None
    # The home account and region, asked for at the first check: a cluster name in the lists and rules means
    # its cluster. None (in tests that never see another account): a name matches that name anywhere.
    home: Callable[[], Location] | None = None

    @functools.cached_property
    def _as_checked(self) -> tuple[AccessPolicy, Permissions | None]:
        """`ceiling` and `permissions` as the checks apply them: each cluster name made the ARN pattern of that
        name at home (`ceiling` and `permissions` themselves stay as written, for /whoami)."""
        if self.home is None:
            return self.ceiling, self.permissions
        home = self.home()
        ceiling = replace(self.ceiling, clusters=_at_home(self.ceiling.clusters, home))
        permissions = self.permissions
        if permissions is not None:
            rules = tuple(replace(rule, clusters=_at_home(rule.clusters, home)) for rule in permissions.rules)
            permissions = replace(permissions, rules=rules)
        return ceiling, permissions

    @property
    def _ceiling(self) -> AccessPolicy:
        return self._as_checked[0]

    @property
    def _permissions(self) -> Permissions | None:
        return self._as_checked[1]

    def check(self, action: str, cluster: str, services: Iterable[tuple[str, Sequence[ImageReference | str]]]) -> None:
        """Refuse (403) unless every (service, images) is inside the allowlists and allowed by one rule."""
        wanted = [(service, [_reference(image) for image in images]) for service, images in services]
        for service, images in wanted:
            self._ceiling.check_target(cluster, service)
            for image in images:
                self._ceiling.check_image(image)
        if self._permissions is not None:
            self._permissions.check(self.principal.id, action, cluster, wanted)

    def check_targets(self, action: str, cluster: str, targets: Iterable[_Target], *, images: bool = True) -> None:
        """`check` for a request's targets, each with the images it asks for (`images` False: the service alone,
        its changed images are checked later through `image_gate`)."""
        self.check(action, cluster, [(t.service, list(t.change.requested_images()) if images else []) for t in targets])

    def check_target(self, action: str, cluster: str, service: str) -> None:
        """`check` for one service, no image."""
        self.check(action, cluster, [(service, [])])

    def image_gate(self, action: str, cluster: str) -> ImageGate:
        """A check of one image a service of `cluster` would be moved to, for the update path to call."""
        return lambda service, image: self.check(action, cluster, [(service, [image])])

    def check_action(self, action: str) -> None:
        """Refuse a principal to whom no rule gives `action` anywhere (a push that could move nothing)."""
        if self.permissions is not None:
            self.permissions.check_action(self.principal.id, action)

    def check_cluster(self, action: str, cluster: str) -> None:
        """Refuse a cluster outside the allowlists, or one on which no rule gives the principal `action`."""
        self._ceiling.check_cluster(cluster)
        if self._permissions is not None:
            self._permissions.check_cluster(self.principal.id, action, cluster)

    def bypasses_freeze(self, action: str, cluster: str, service: str) -> bool:
        """True when a rule with `bypassFreeze: true` gives the principal `action` on the service (none without a
        permissions file: deploying through a freeze is always granted explicitly)."""
        if self._permissions is None:
            return False
        return self._permissions.bypasses_freeze(self.principal.id, action, cluster, service)

    def bypasses_approval(self, action: str, cluster: str, service: str) -> bool:
        """True when a rule with `bypassApproval: true` gives the principal `action` on the service (none without a
        permissions file: deploying without the approval a service asks for is always granted explicitly)."""
        if self._permissions is None:
            return False
        return self._permissions.bypasses_approval(self.principal.id, action, cluster, service)

    def principals_allowed(self, action: str, cluster: str, services: Sequence[str]) -> list[str] | None:
        """The principal patterns of the rules that give `action` on every one of `services` (None without a
        permissions file: anyone); for saying whom something waits for."""
        if self._permissions is None:
            return None
        found: list[str] = []
        for rule in self._permissions.rules:
            if all(rule.allows(action, cluster, service) for service in services):
                found.extend(p for p in rule.principals if p not in found)
        return found

    def check_freeze(self, scope: Scope) -> None:
        """Refuse (403) unless the rules give the principal `freeze` on the whole scope (without a permissions
        file, everyone may). The allowlists do not apply: a freeze changes nothing in ECS."""
        if self._permissions is None:
            return
        clusters = scope.clusters
        if clusters is not None and self.home is not None:
            home = self.home()
            clusters = tuple(c if c.startswith("arn:") else home.cluster_arn(c) for c in clusters)
        self._permissions.check_freeze(self.principal.id, Scope(clusters, scope.services))

    def allows(self, action: str, cluster: str, service: str) -> bool:
        """True when `check_target` would pass (for lists that show only what the principal may see)."""
        try:
            self.check_target(action, cluster, service)
        except NotAllowedError:
            return False
        return True


def _at_home(patterns: tuple[str, ...] | None, home: Location) -> tuple[str, ...] | None:
    """Cluster patterns with each name made the ARN pattern of that name in the home account and region."""
    if patterns is None:
        return None
    return tuple(pattern if pattern.startswith("arn:") else home.cluster_arn(pattern) for pattern in patterns)


def _reference(image: ImageReference | str) -> ImageReference:
    try:
        return as_reference(image)
    except InvalidImageError as error:
        raise NotAllowedError(f"image '{image}' cannot be checked against the allowlists: {error}") from error
