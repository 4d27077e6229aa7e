"""Allowlist prefixes and patterns match at boundaries only: a table of allowed and refused values."""

from __future__ import annotations

import pytest

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.core.errors import NotAllowedError
from chalicelib.core.patterns import glob_matches, name_or_arn_matches, prefix_allows

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("prefix", "image", "allowed"),
    [
        # the registry host whole
        (ECR, f"{ECR}/web:1", True),
        (ECR, f"{ECR}.evil.example/x:1", False),
        (ECR, f"{ECR}:443/x:1", False),  # a port makes another host
        (f"{ECR}/", f"{ECR}/team/web@{DIGEST}", True),
        # then path segments whole
        ("ghcr.io/acme", "ghcr.io/acme/web:1", True),
        ("ghcr.io/acme", "ghcr.io/acme:1", True),
        ("ghcr.io/acme", "ghcr.io/acme-attacker/web:1", False),
        ("ghcr.io/acme", "ghcr.io/acmeweb:1", False),
        ("ghcr.io/acme", "ghcr.io/acme/team/web:1", True),
        # a trailing / means below this path only
        ("ghcr.io/acme/", "ghcr.io/acme/web:1", True),
        ("ghcr.io/acme/", "ghcr.io/acme:1", False),
        ("ghcr.io/acme/", "ghcr.io/acme-attacker/web:1", False),
        # Docker Hub's short names are compared as the registry sees them
        ("docker.io/library", "nginx:1.27", True),
        ("docker.io/library/nginx", "nginx:1.27", True),
        ("docker.io/library", "docker.io/libraryx/nginx:1", False),
        ("docker.io/library/nginx", "docker.io/library/nginx-evil:1", False),
        # a registry with a port
        ("registry.example.com:5000", "registry.example.com:5000/team/worker:3", True),
        ("registry.example.com:5000", "registry.example.com:50001/team/worker:3", False),
        ("registry.example.com", "registry.example.com:5000/team/worker:3", False),
    ],
)
def test_an_image_prefix_matches_at_a_boundary(prefix: str, image: str, allowed: bool) -> None:
    policy = AccessPolicy(image_prefixes=(prefix,))
    if allowed:
        policy.check_image(image)
    else:
        with pytest.raises(NotAllowedError, match="is not allowed by ALLOWED_IMAGE_PREFIXES"):
            policy.check_image(image)


def test_an_empty_prefix_allows_nothing() -> None:
    assert not prefix_allows("", "nginx")


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("web", "web", True),
        ("web", "web-evil", False),
        ("web", "Web", False),  # case-sensitive, like ECS names
        ("prod-*", "prod-eu", True),
        ("prod-*", "staging", False),
        ("worker-?", "worker-1", True),
        ("worker-?", "worker-12", False),
        ("worker-[0-9]", "worker-7", True),
        ("worker-[!0-9]", "worker-a", True),
        ("worker-[!0-9]", "worker-7", False),
        ("*", "anything", True),
        # * never crosses a segment of an ARN
        ("arn:aws:ecs:eu-west-1:*:cluster/prod", "arn:aws:ecs:eu-west-1:222222222222:cluster/prod", True),
        ("arn:aws:ecs:eu-west-1:*:cluster/prod", "arn:aws:ecs:eu-west-1:222222222222:cluster/prod-x", False),
        ("arn:aws:ecs:*:cluster/prod", "arn:aws:ecs:eu-west-1:222222222222:cluster/prod", False),
        ("arn:aws:ecs:*:222222222222:cluster/*", "arn:aws:ecs:us-east-1:222222222222:cluster/any", True),
        ("arn:aws:ecs:*:222222222222:cluster/*", "arn:aws:ecs:us-east-1:333333333333:cluster/any", False),
    ],
)
def test_a_pattern_matches_whole_within_segments(pattern: str, value: str, matches: bool) -> None:
    assert glob_matches(pattern, value) is matches


@pytest.mark.parametrize(
    ("pattern", "identifier", "matches"),
    [
        ("prod", "prod", True),
        ("prod", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", True),  # a name pattern matches an ARN's name
        ("prod", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod-evil", False),
        ("arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "prod", False),  # an ARN pattern wants the ARN
        ("arn:aws:ecs:eu-west-1:*:cluster/prod", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", True),
    ],
)
def test_names_and_arns(pattern: str, identifier: str, matches: bool) -> None:
    assert name_or_arn_matches(pattern, identifier) is matches


def test_cluster_and_service_lists_use_the_same_rule() -> None:
    policy = AccessPolicy(clusters=("prod",), services=("web",))
    policy.check_target("arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "web")
    with pytest.raises(NotAllowedError, match="cluster 'prod-evil'"):
        policy.check_target("prod-evil", "web")
    with pytest.raises(NotAllowedError, match="service 'web-evil'"):
        policy.check_target("prod", "web-evil")
