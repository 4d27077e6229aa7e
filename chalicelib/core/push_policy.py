"""Which pushed image a service follows: the update policies a service opts in to with its tags (pure).

A service opts in with ECS service tags, where the team already describes it
(CloudFormation, Terraform, CDK):

- `image-updater:policy` (required):
  - `semver:major` any higher version, `semver:minor` a higher version with the
    same major, `semver:patch` a higher version with the same major and minor;
  - `tag`: the tag the service runs was pushed again (a mutable tag such as
    `latest`): redeploy it;
  - `glob:<pattern>` (shell-style) or `regexp:<pattern>` (a full match): any
    pushed tag that matches;
- `image-updater:container` (optional): the one container to follow; otherwise
  every container whose image comes from the pushed repository;
- `image-updater:pin-digest` = `true` (optional): deploy `repository@sha256:…`
  of the pushed image, and keep the pushed tag in the revision's own tag
  `image-updater:pushed-tag`, so the next push still has a version to compare.

Versions are read with the `semver` package: `1.4.3` and `v1.4.3` (the
deployed tag keeps its `v`); a pre-release is taken only when the running tag
is one too; never a downgrade or the same version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import semver

from chalicelib.core import taskdef
from chalicelib.core.images import (
    DIGEST_PATTERN,
    TAG_PATTERN,
    ImageReference,
    InvalidImageError,
    canonical_repository,
    parse_image,
)

POLICY_TAG = "image-updater:policy"
CONTAINER_TAG = "image-updater:container"
PIN_DIGEST_TAG = "image-updater:pin-digest"
PUSHED_TAG_TAG = taskdef.PUSHED_TAG_TAG
SEMVER_LEVELS = ("major", "minor", "patch")
# The service tags that say how it follows pushes.
FOLLOWING_TAGS = (POLICY_TAG, CONTAINER_TAG, PIN_DIGEST_TAG)


@dataclass(frozen=True)
class Push:
    """An image pushed to a registry: its repository, and at least one of its tag and digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def canonical_repository(self) -> str:
        """The repository as a registry sees it (`nginx` is `docker.io/library/nginx`)."""
        return canonical_repository(self.repository)

    def as_dict(self) -> dict[str, str | None]:
        """JSON shape."""
        return {"repository": self.repository, "tag": self.tag, "digest": self.digest}

    def image(self) -> ImageReference:
        """What was pushed, as a reference: by digest when the push names one (what a tag pointed to then)."""
        return ImageReference(self.repository, None if self.digest else self.tag, self.digest)

    @classmethod
    def of_ecr_event(cls, event: Mapping[str, Any]) -> Push:
        """The push an "ECR Image Action" event tells of; ValueError names what is wrong with it."""
        if not isinstance(event, Mapping):
            raise ValueError("the payload is not an EventBridge event (not a JSON object)")
        detail = event.get("detail")
        if not isinstance(detail, Mapping):
            raise ValueError("the event has no detail")
        # The rule asks for successful pushes only; a changed or bypassed rule must not deploy a delete.
        if detail.get("action-type") != "PUSH":
            raise ValueError(f"the event's action-type is {detail.get('action-type')!r}, not 'PUSH'")
        if detail.get("result") != "SUCCESS":
            raise ValueError(f"the event's result is {detail.get('result')!r}, not 'SUCCESS'")
        name, account, region = detail.get("repository-name"), event.get("account"), event.get("region")
        if not all(isinstance(value, str) and value for value in (name, account, region)):
            raise ValueError("the event names no repository, account or region")
        repository = f"{account}.dkr.ecr.{region}.amazonaws.com/{name}"
        tag, digest = detail.get("image-tag") or None, detail.get("image-digest") or None
        if tag is not None and (not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag)):
            raise ValueError(f"the event's image-tag is not a tag: {tag!r}")
        if digest is not None and (not isinstance(digest, str) or not DIGEST_PATTERN.fullmatch(digest)):
            raise ValueError(f"the event's image-digest is not a sha256 digest: {digest!r}")
        if tag is None and digest is None:
            raise ValueError("the event names neither a tag nor a digest")
        try:
            parse_image(repository)
        except InvalidImageError as error:
            raise ValueError(f"the event's repository is not one: {error}") from error
        return cls(repository, tag, digest)


@dataclass(frozen=True)
class Policy:
    """A service's `image-updater:policy`, read."""

    kind: str  # "semver", "tag", "glob", "regexp", or "unknown"
    argument: str = ""
    text: str = ""

    @classmethod
    def parse(cls, value: str) -> Policy:
        """Read a policy tag value; anything not understood is the "unknown" policy."""
        kind, _, argument = value.strip().partition(":")
        if kind == "semver" and argument in SEMVER_LEVELS:
            return cls("semver", argument, value)
        if kind == "tag" and not argument:
            return cls("tag", "", value)
        if kind in ("glob", "regexp") and argument:
            return cls(kind, argument, value)
        return cls("unknown", "", value)


@dataclass(frozen=True)
class Verdict:
    """What one container of a service does about a push: deploy an image, redeploy as it is, or skip."""

    action: str  # "deploy", "redeploy" or "skip"
    reason: str
    image: ImageReference | None = None

    @classmethod
    def skip(cls, reason: str) -> Verdict:
        """Nothing to do, and why."""
        return cls("skip", reason)


@dataclass(frozen=True)
class Following:
    """How a service follows pushes: its policy, the container it names, whether it pins digests."""

    policy: Policy
    container: str | None
    pin_digest: bool

    @classmethod
    def of(cls, service_tags: Mapping[str, str]) -> Following:
        """From the service's tags."""
        container = (service_tags.get(CONTAINER_TAG) or "").strip() or None
        pin = (service_tags.get(PIN_DIGEST_TAG) or "").strip().lower() == "true"
        return cls(Policy.parse(service_tags.get(POLICY_TAG, "")), container, pin)


def follows_repository(running: ImageReference, push: Push) -> bool:
    """True when a container's image comes from the pushed repository (compared the way `/update` compares)."""
    return running.canonical_repository() == push.canonical_repository()


def judge(following: Following, reference: ImageReference, running_tag: str | None, push: Push) -> Verdict:
    """What a container that runs `reference` (whose version tag is `running_tag`) does about `push`.

    `running_tag` is the tag the revision says was pushed (`image-updater:pushed-tag`),
    or else the image's own tag.
    """
    policy = following.policy
    if policy.kind == "unknown":
        return Verdict.skip(f"unknown policy '{policy.text}'")
    if following.pin_digest and push.digest is None:
        return Verdict.skip("the service pins digests (image-updater:pin-digest) and the push names no digest")
    if push.tag is None:
        return Verdict.skip(f"the push has no tag, and policy '{policy.text}' follows tags")
    target = _image_for(reference, push, following.pin_digest)
    if policy.kind == "tag":
        return _same_tag(reference, running_tag, push.tag, push.digest, target, following.pin_digest)
    if policy.kind == "semver":
        verdict = _newer(policy.argument, running_tag, push.tag)
    elif policy.kind == "glob":
        verdict = _matches(fnmatchcase(push.tag, policy.argument), push.tag, policy.text)
    else:
        verdict = _regexp(policy.argument, push.tag, policy.text)
    if verdict is not None:
        return verdict
    if _already(reference, target):
        return Verdict.skip(f"the container already runs {target}")
    return Verdict("deploy", f"{push.tag} follows policy '{policy.text}'", target)


def _image_for(reference: ImageReference, push: Push, pin_digest: bool) -> ImageReference:
    """The image to deploy, in the repository's spelling the service already uses."""
    if pin_digest:
        return ImageReference(reference.repository, digest=push.digest)
    return ImageReference(reference.repository, tag=push.tag)


def _already(reference: ImageReference, target: ImageReference) -> bool:
    return reference.same_image_as(target)


def _same_tag(
    reference: ImageReference,
    running_tag: str | None,
    pushed_tag: str,
    pushed_digest: str | None,
    target: ImageReference,
    pin_digest: bool,
) -> Verdict:
    if running_tag is None:
        return Verdict.skip("the service runs no tag, and policy 'tag' follows the tag it runs")
    if pushed_tag != running_tag:
        return Verdict.skip(f"the pushed tag {pushed_tag} is not the tag the service runs ({running_tag})")
    if pin_digest:
        if reference.digest == pushed_digest:
            return Verdict.skip(f"the container already runs {target}")
        return Verdict("deploy", f"{running_tag} was pushed again as {pushed_digest}", target)
    return Verdict("redeploy", f"{running_tag} was pushed again", None)


def _newer(level: str, running_tag: str | None, pushed_tag: str) -> Verdict | None:
    """None when `pushed_tag` is a version the semver policy at `level` takes over `running_tag`."""
    running, pushed = _version(running_tag), _version(pushed_tag)
    if running is None:
        return Verdict.skip(f"the service runs {running_tag or 'no tag'}, which is not a version")
    if pushed is None:
        return Verdict.skip(f"the pushed tag {pushed_tag} is not a version")
    if pushed.prerelease and not running.prerelease:
        return Verdict.skip(f"{pushed_tag} is a pre-release, and the service runs a release ({running_tag})")
    if pushed.compare(running) <= 0:
        word = "the same version as" if pushed.compare(running) == 0 else "older than"
        return Verdict.skip(f"{pushed_tag} is {word} the running {running_tag}")
    if level == "minor" and pushed.major != running.major:
        return Verdict.skip(f"{pushed_tag} changes the major version of {running_tag}; semver:minor keeps it")
    if level == "patch" and (pushed.major, pushed.minor) != (running.major, running.minor):
        return Verdict.skip(f"{pushed_tag} changes the minor version of {running_tag}; semver:patch keeps it")
    return None


def _version(tag: str | None) -> semver.Version | None:
    if not tag:
        return None
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semver.Version.parse(text)
    except ValueError:
        return None


def _matches(matched: bool, pushed_tag: str, policy: str) -> Verdict | None:
    return None if matched else Verdict.skip(f"the pushed tag {pushed_tag} does not match policy '{policy}'")


def _regexp(pattern: str, pushed_tag: str, policy: str) -> Verdict | None:
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        return Verdict.skip(f"policy '{policy}' is not a valid regular expression ({error})")
    return _matches(compiled.fullmatch(pushed_tag) is not None, pushed_tag, policy)
