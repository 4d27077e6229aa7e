"""Container image references: parse, validate, compare (pure, no I/O).

The grammar is the one container registries use (the distribution "reference"
grammar), restricted to what ECS can pull:

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path ( "/" path )*
    domain     := host [ ":" port ]
    path       := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9._-]{0,127}
    digest     := "sha256:" 64 lowercase hex digits

The first "/"-separated part is a registry host when it contains "." or ":"
or is "localhost" (so `host:5000/app:1` is repository `host:5000/app`, tag `1`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chalicelib.core.errors import echo_input

MAX_REPOSITORY_LENGTH = 255
MAX_REFERENCE_LENGTH = 512

TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST_PATTERN = re.compile(r"sha256:[a-f0-9]{64}")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


class InvalidImageError(ValueError):
    """An image reference or tag that does not follow the reference grammar."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference: repository plus an optional tag and digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def is_pinned(self) -> bool:
        """True when the reference names a tag or a digest."""
        return self.tag is not None or self.digest is not None

    def canonical_repository(self) -> str:
        """The repository as a registry sees it (`nginx` is `docker.io/library/nginx`)."""
        return canonical_repository(self.repository)

    def same_image_as(self, other: ImageReference) -> bool:
        """True when both references resolve to the same repository, tag and digest."""
        return (
            self.canonical_repository() == other.canonical_repository()
            and self._effective_tag() == other._effective_tag()
            and self.digest == other.digest
        )

    def _effective_tag(self) -> str | None:
        # A bare repository means its "latest" tag; a bare digest has no tag.
        if self.tag is None and self.digest is None:
            return "latest"
        return self.tag

    def with_version(self, version: str) -> ImageReference:
        """This repository at `version`, a tag or a `sha256:` digest."""
        if DIGEST_PATTERN.fullmatch(version):
            return ImageReference(self.repository, digest=version)
        if TAG_PATTERN.fullmatch(version):
            return ImageReference(self.repository, tag=version)
        raise InvalidImageError(
            f"'{echo_input(version)}' is neither a tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}) "
            "nor a digest (sha256: and 64 lowercase hex digits)"
        )


def parse_image(text: str) -> ImageReference:
    """Parse an image reference, raising InvalidImageError with the reason."""
    if not text:
        raise InvalidImageError("the image reference is empty")
    if len(text) > MAX_REFERENCE_LENGTH:
        raise InvalidImageError(f"the image reference is longer than {MAX_REFERENCE_LENGTH} characters")
    if text != text.strip() or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidImageError(f"'{echo_input(text)}' contains whitespace or control characters")

    rest, _, digest = text.partition("@")
    if "@" in text and not DIGEST_PATTERN.fullmatch(digest):
        raise InvalidImageError(
            f"'{echo_input(text)}' has an invalid digest: expected sha256: and 64 lowercase hex digits"
        )
    # A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    last_slash = rest.rfind("/")
    colon = rest.find(":", last_slash + 1)
    repository, tag = (rest[:colon], rest[colon + 1 :]) if colon >= 0 else (rest, None)
    if tag is not None and not TAG_PATTERN.fullmatch(tag):
        raise InvalidImageError(
            f"'{echo_input(text)}' has an invalid tag '{echo_input(tag)}': expected [A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}"
        )
    _check_repository(repository, text)
    return ImageReference(repository, tag, digest or None)


def as_reference(image: ImageReference | str) -> ImageReference:
    """`image` as a reference, parsed if it is text (InvalidImageError if it is not one)."""
    return image if isinstance(image, ImageReference) else parse_image(image)


def canonical_repository(repository: str) -> str:
    """Normalise Docker Hub spellings so `nginx` and `docker.io/library/nginx` compare equal."""
    domain, _, remainder = repository.partition("/")
    if not remainder or not _looks_like_domain(domain):
        domain, remainder = DOCKER_HUB, repository
    elif domain in _DOCKER_HUB_ALIASES:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    return f"{domain}/{remainder}"


def _check_repository(repository: str, original: str) -> None:
    if not repository:
        raise InvalidImageError(f"'{echo_input(original)}' has no repository name")
    if len(repository) > MAX_REPOSITORY_LENGTH:
        raise InvalidImageError(f"the repository name is longer than {MAX_REPOSITORY_LENGTH} characters")
    parts = repository.split("/")
    if len(parts) > 1 and _looks_like_domain(parts[0]):
        _check_domain(parts[0], original)
        parts = parts[1:]
    for part in parts:
        if not _PATH_COMPONENT.fullmatch(part):
            raise InvalidImageError(
                f"'{echo_input(original)}' has an invalid repository part '{echo_input(part)}': "
                "use lowercase letters and digits, separated by '.', '_', '__' or '-'"
            )


def _check_domain(domain: str, original: str) -> None:
    host, _, port = domain.partition(":")
    if ":" in domain and not (_PORT.fullmatch(port) and 0 < int(port) <= 65535):
        raise InvalidImageError(f"'{echo_input(original)}' has an invalid registry port '{echo_input(port)}'")
    labels = host.split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise InvalidImageError(f"'{echo_input(original)}' has an invalid registry host '{echo_input(host)}'")


def _looks_like_domain(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"
