"""Image references: parsing, refusal of malformed input, comparison."""

from __future__ import annotations

import pytest

from chalicelib.core.images import ImageReference, InvalidImageError, parse_image

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "repository", "tag", "digest"),
    [
        ("nginx", "nginx", None, None),
        ("nginx:1.25", "nginx", "1.25", None),
        ("public.ecr.aws/nginx/nginx:stable-alpine", "public.ecr.aws/nginx/nginx", "stable-alpine", None),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web:v1.2.3",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web",
            "v1.2.3",
            None,
        ),
        ("registry.example.com:5000/team/app", "registry.example.com:5000/team/app", None, None),
        ("host:5000/app:1", "host:5000/app", "1", None),
        ("localhost/app:dev", "localhost/app", "dev", None),
        (f"repo@{DIGEST}", "repo", None, DIGEST),
        (f"host:5000/app:1@{DIGEST}", "host:5000/app", "1", DIGEST),
        ("a/b__c/d-e.f_g:Tag_1.x-y", "a/b__c/d-e.f_g", "Tag_1.x-y", None),
    ],
)
def test_parses_repository_tag_and_digest(text: str, repository: str, tag: str | None, digest: str | None) -> None:
    parsed = parse_image(text)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" nginx:1", "whitespace"),
        ("nginx:1 ", "whitespace"),
        ("ng inx:1", "whitespace"),
        ("nginx:1\n", "whitespace"),
        ("nginx\x00:1", "control"),
        ("Nginx:1", "invalid repository part"),
        ("team/App:1", "invalid repository part"),
        ("repo..name:1", "invalid repository part"),
        ("repo/../etc:1", "invalid repository part"),
        ("repo/:1", "invalid repository part"),
        ("-repo:1", "invalid repository part"),
        ("repo:", "invalid tag"),
        ("repo:-dash", "invalid tag"),
        ("repo:" + "t" * 129, "invalid tag"),
        ("repo@sha256:abc", "invalid digest"),
        ("repo@md5:" + "a" * 32, "invalid digest"),
        ("repo@" + DIGEST.upper(), "invalid digest"),
        ("host:port/app:1", "invalid registry port"),
        ("bad_host.com/app:1", "invalid registry host"),
        ("h" * 64 + ".com/app:1", "invalid registry host"),
        ("host.com:99999/app:1", "invalid registry port"),
        ("host.com:0/app:1", "invalid registry port"),
        ("a" * 256, "longer than 255"),
        ("x" * 600, "longer than 512"),
    ],
)
def test_refuses_malformed_references(text: str, reason: str) -> None:
    with pytest.raises(InvalidImageError, match=reason):
        parse_image(text)


def test_error_message_escapes_control_characters() -> None:
    with pytest.raises(InvalidImageError) as caught:
        parse_image("repo\x1b[31m:1")
    assert "\x1b" not in str(caught.value)
    assert "\\x1b" in str(caught.value)


def test_registry_port_is_not_mistaken_for_a_tag() -> None:
    parsed = parse_image("registry.example.com:5000/team/app")
    assert parsed.tag is None
    assert not parsed.is_pinned


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nginx:1", "docker.io/library/nginx:1"),
        ("nginx", "nginx:latest"),
        ("library/nginx:1", "index.docker.io/library/nginx:1"),
        (f"repo@{DIGEST}", f"docker.io/library/repo@{DIGEST}"),
    ],
)
def test_docker_hub_spellings_are_the_same_image(a: str, b: str) -> None:
    assert parse_image(a).same_image_as(parse_image(b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nginx:1", "nginx:2"),
        ("nginx:1", "public.ecr.aws/nginx/nginx:1"),
        (f"repo:1@{DIGEST}", "repo:1"),
        (f"repo@{DIGEST}", "repo:latest"),
    ],
)
def test_different_images_differ(a: str, b: str) -> None:
    assert not parse_image(a).same_image_as(parse_image(b))


def test_with_version_accepts_a_tag_or_a_digest() -> None:
    repo = ImageReference("host:5000/app")
    assert str(repo.with_version("1.2")) == "host:5000/app:1.2"
    assert str(repo.with_version(DIGEST)) == f"host:5000/app@{DIGEST}"
    with pytest.raises(InvalidImageError, match="neither a tag"):
        repo.with_version("sha256:short")
