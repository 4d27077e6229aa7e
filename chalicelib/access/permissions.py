"""Who may do what: the permissions file, read once, and its rules evaluated (pure but for reading the file).

The file (YAML, packaged with the app, named by the stage setting
PERMISSIONS_FILE) holds a top-level `rules:` list. Each rule names
`principals` and `actions` (both required) and may narrow them with
`clusters`, `services` and `images` (absent: any):

    rules:
      - principals: ["arn:aws:sts::123456789012:assumed-role/web-deployers/*"]
        actions: [read, update, rollback]
        clusters: [prod]
        services: ["web-*"]
        images: ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/web/"]

- `principals`: principal ids (chalicelib.access.identity) as globs, `*` and
  `?` within one ARN segment (chalicelib.core.patterns); a lone `*` is anyone.
  An IAM role's ARN (`arn:aws:iam::<account>:role/<path/><name>`) also matches
  every session of that role (`arn:aws:sts::<account>:assumed-role/<name>/*`),
  since that is the ARN a signed request of the role carries.
- `actions`: read, update, rollback, apply, push, freeze (or `*`, every
  action). Actions are independent: `update` does not imply `read`. `freeze`
  creates and lifts freezes (POST and DELETE /freezes) within the rule's
  clusters and services.
- `bypassFreeze: true` (optional): the rule's principals deploy through a
  freeze, to the services the rule allows them to change (the record says so).
- `approve`: vote on the approvals of changes to the rule's clusters and
  services (POST /approvals/{id}); `bypassApproval: true` (optional): the
  rule's principals deploy at once to a service that requires approval
  (chalicelib.state.approvals), recorded as such.
- `clusters`, `services`: names or ARNs, as globs (a cluster name means the
  home account and region's: chalicelib.access.guard); `images`: repository
  prefixes, matched at boundaries like the allowlists.

A top-level `freezeWindows:` list (optional) holds the recurring freezes
(chalicelib.core.windows).

A request is allowed when, for every service it names, one rule allows the
principal the action on that service with every image the request would
deploy to it. Once the file has a rule, anything no rule allows is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chalicelib.core.errors import NotPermittedError, PermissionsFileError
from chalicelib.core.images import ImageReference
from chalicelib.core.locations import name_of
from chalicelib.core.patterns import glob_matches, name_or_arn_matches, prefix_allows
from chalicelib.core.windows import Scope, Window, WindowError, parse_windows

READ = "read"
UPDATE = "update"
ROLLBACK = "rollback"
APPLY = "apply"
PUSH = "push"
FREEZE = "freeze"
APPROVE = "approve"
ACTIONS = (READ, UPDATE, ROLLBACK, APPLY, PUSH, FREEZE, APPROVE)
EVERY = "*"

_RULE_FIELDS = ("principals", "actions", "clusters", "services", "images", "bypassFreeze", "bypassApproval")
_TOP_LEVEL = ("rules", "freezeWindows")
_REQUIRED = ("principals", "actions")
_ROLE_ARN = re.compile(r"^arn:(?P<partition>[^:]+):iam::(?P<account>[^:]+):role/(?:.*/)?(?P<name>[^/]+)$")


@dataclass(frozen=True)
class Rule:
    """One rule of the file: who (`principals`) may do what (`actions`), where (None: anywhere)."""

    principals: tuple[str, ...]
    actions: tuple[str, ...]
    clusters: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    images: tuple[str, ...] | None = None
    bypass_freeze: bool = False
    bypass_approval: bool = False

    def concerns(self, principal: str) -> bool:
        """True when the rule names `principal`."""
        return any(_principal_matches(pattern, principal) for pattern in self.principals)

    def allows(self, action: str, cluster: str, service: str | None, images: Iterable[ImageReference] = ()) -> bool:
        """True when the rule allows `action` on the service (None: the cluster alone) with each of `images`."""
        if EVERY not in self.actions and action not in self.actions:
            return False
        if self.clusters is not None and not any(name_or_arn_matches(p, cluster) for p in self.clusters):
            return False
        services = self.services
        if service is not None and services is not None and not any(name_or_arn_matches(p, service) for p in services):
            return False
        return all(self.allows_image(image) for image in images)

    def allows_freeze(self, cluster: str | None, service: str | None) -> bool:
        """True when the rule gives `freeze` on the service of the cluster (None: every cluster, every service)."""
        if EVERY not in self.actions and FREEZE not in self.actions:
            return False
        if self.clusters is not None and (
            cluster is None or not any(name_or_arn_matches(p, cluster) for p in self.clusters)
        ):
            return False
        return self.services is None or (
            service is not None and any(name_or_arn_matches(p, service) for p in self.services)
        )

    def allows_image(self, image: ImageReference) -> bool:
        """True when `image`'s repository is below one of the rule's prefixes (or the rule names none)."""
        if self.images is None:
            return True
        candidates = (image.repository, image.canonical_repository())
        return any(prefix_allows(prefix, c) for prefix in self.images for c in candidates)

    def as_dict(self) -> dict[str, Any]:
        """JSON shape, fields that are set only."""
        shape: dict[str, Any] = {"principals": list(self.principals), "actions": list(self.actions)}
        for name in ("clusters", "services", "images"):
            value = getattr(self, name)
            if value is not None:
                shape[name] = list(value)
        if self.bypass_freeze:
            shape["bypassFreeze"] = True
        if self.bypass_approval:
            shape["bypassApproval"] = True
        return shape


@dataclass(frozen=True)
class Permissions:
    """The rules of the permissions file, in the file's order."""

    rules: tuple[Rule, ...]
    source: str = "the permissions file"
    windows: tuple[Window, ...] = ()

    def rules_of(self, principal: str) -> list[Rule]:
        """The rules that name `principal`."""
        return [rule for rule in self.rules if rule.concerns(principal)]

    def allows(
        self, principal: str, action: str, cluster: str, service: str | None, images: Iterable[ImageReference] = ()
    ) -> bool:
        """True when one rule allows `principal` `action` on the service (or the cluster) with all of `images`."""
        wanted = list(images)
        return any(rule.allows(action, cluster, service, wanted) for rule in self.rules_of(principal))

    def check(
        self, principal: str, action: str, cluster: str, targets: Iterable[tuple[str, Sequence[ImageReference]]]
    ) -> None:
        """Refuse (NotPermittedError) unless each (service, images) of the request is allowed by one rule."""
        mine = self.rules_of(principal)
        for service, images in targets:
            if any(rule.allows(action, cluster, service, images) for rule in mine):
                continue
            where = f"cluster {name_of(cluster)} service {name_of(service)}"
            if any(rule.allows(action, cluster, service) for rule in mine):
                alone = [i for i in images if not any(r.allows(action, cluster, service, [i]) for r in mine)]
                refused = alone[0] if alone else None
                if refused is not None:
                    raise NotPermittedError(f"principal {principal} may not {action} {where} with image {refused}")
                together = ", ".join(str(image) for image in images)
                raise NotPermittedError(
                    f"principal {principal} may not {action} {where} with images {together} together: each is "
                    "allowed by a rule, but no one rule allows them all"
                )
            raise NotPermittedError(f"principal {principal} may not {action} {where}")

    def bypasses_freeze(self, principal: str, action: str, cluster: str, service: str) -> bool:
        """True when a rule with `bypassFreeze: true` allows `principal` `action` on the service, whatever the
        images: a bypass is decided before the change's images are all known (a rollback's, a redeploy's), so a
        rule that limits images never bypasses (another rule could allow the images it does not)."""
        return any(
            rule.bypass_freeze and rule.images is None and rule.allows(action, cluster, service)
            for rule in self.rules_of(principal)
        )

    def bypasses_approval(self, principal: str, action: str, cluster: str, service: str) -> bool:
        """True when a rule with `bypassApproval: true` allows `principal` `action` on the service; as with
        bypassFreeze, a rule that limits images never bypasses (another rule could allow the images)."""
        return any(
            rule.bypass_approval and rule.images is None and rule.allows(action, cluster, service)
            for rule in self.rules_of(principal)
        )

    def check_freeze(self, principal: str, scope: Scope) -> None:
        """Refuse (NotPermittedError) unless rules give `principal` `freeze` on all of `scope` (its clusters as
        ARNs): each cluster and service pair, a cluster whole, a service name in every cluster, or everything."""
        mine = self.rules_of(principal)
        clusters: list[str | None] = list(scope.clusters) if scope.clusters is not None else [None]
        services: list[str | None] = list(scope.services) if scope.services is not None else [None]
        for cluster in clusters:
            for service in services:
                if any(rule.allows_freeze(cluster, service) for rule in mine):
                    continue
                where = " ".join(
                    part
                    for part in (
                        f"cluster {name_of(cluster)}" if cluster else "every cluster",
                        f"service {service}" if service else "every service",
                    )
                )
                raise NotPermittedError(
                    f"principal {principal} may not freeze {where}: no rule of {self.source} allows it"
                )

    def check_action(self, principal: str, action: str) -> None:
        """Refuse unless some rule gives `principal` `action` (somewhere)."""
        if not any(EVERY in rule.actions or action in rule.actions for rule in self.rules_of(principal)):
            raise NotPermittedError(f"principal {principal} may not {action}: no rule of {self.source} allows it")

    def check_cluster(self, principal: str, action: str, cluster: str) -> None:
        """Refuse unless a rule allows `action` on some service of `cluster` (a listing; each service is filtered)."""
        if not self.allows(principal, action, cluster, None):
            raise NotPermittedError(f"principal {principal} may not {action} cluster {name_of(cluster)}")


def parse(document: Any, source: str = "the permissions file") -> Permissions:
    """The permissions a parsed YAML document describes; PermissionsFileError names what is wrong, and where."""
    if not isinstance(document, Mapping) or "rules" not in document or not set(document) <= set(_TOP_LEVEL):
        found = sorted(str(key) for key in document) if isinstance(document, Mapping) else type(document).__name__
        raise PermissionsFileError(
            f"{source} must hold one top-level key, 'rules:', a list of rules, and may hold 'freezeWindows:' "
            f"(found {found})"
        )
    raw_rules = document["rules"]
    if not isinstance(raw_rules, list):
        raise PermissionsFileError(f"{source}: 'rules' must be a list of rules")
    rules = tuple(_rule(raw, f"{source}: rules[{index}]") for index, raw in enumerate(raw_rules))
    try:
        windows = (
            parse_windows(document["freezeWindows"], f"{source}: freezeWindows") if "freezeWindows" in document else ()
        )
    except WindowError as wrong:
        raise PermissionsFileError(str(wrong)) from None
    return Permissions(rules, source, windows)


def load(path: Path, name: str | None = None) -> Permissions:
    """Read and parse the permissions file at `path` (called `name` in messages: the setting, not a local path)."""
    import yaml  # only a stage with a permissions file pays for the import

    source = f"the permissions file {name or path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as unreadable:
        raise PermissionsFileError(f"{source} cannot be read: {unreadable.strerror}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as invalid:
        where = getattr(invalid, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise PermissionsFileError(f"{source} is not valid YAML{line}") from None
    return parse(document, source)


def _rule(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise PermissionsFileError(f"{where} must be a mapping with principals, actions and optional narrowing")
    unknown = sorted(str(key) for key in raw if key not in _RULE_FIELDS)
    if unknown:
        raise PermissionsFileError(f"{where} has unknown fields {unknown}; a rule takes {list(_RULE_FIELDS)}")
    for name in _REQUIRED:
        if name not in raw:
            raise PermissionsFileError(f"{where} has no '{name}'")
    fields = {name: _strings(raw[name], f"{where}.{name}") for name in _RULE_FIELDS[:5] if name in raw}
    for action in fields["actions"]:
        if action != EVERY and action not in ACTIONS:
            raise PermissionsFileError(f"{where}.actions: '{action}' is not one of {[*ACTIONS, EVERY]}")
    bypass = raw.get("bypassFreeze", False)
    if not isinstance(bypass, bool):
        raise PermissionsFileError(f"{where}.bypassFreeze must be true or false, not {bypass!r}")
    bypass_approval = raw.get("bypassApproval", False)
    if not isinstance(bypass_approval, bool):
        raise PermissionsFileError(f"{where}.bypassApproval must be true or false, not {bypass_approval!r}")
    return Rule(**fields, bypass_freeze=bypass, bypass_approval=bypass_approval)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise PermissionsFileError(f"{where} must be a non-empty list")
    found = []
    for entry in value:
        if not isinstance(entry, str) or not entry.strip():
            raise PermissionsFileError(f"{where}: every entry must be a non-empty string, not {entry!r}")
        found.append(entry.strip())
    return tuple(found)


def _principal_matches(pattern: str, principal: str) -> bool:
    if pattern == EVERY or glob_matches(pattern, principal):
        return True
    role = _ROLE_ARN.match(pattern)
    if role is None:
        return False
    sessions = f"arn:{role['partition']}:sts::{role['account']}:assumed-role/{role['name']}/*"
    return glob_matches(sessions, principal)
