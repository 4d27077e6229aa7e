"""Update policies as a table of cases: which pushed tag a container takes over the one it runs (pure)."""

from __future__ import annotations

import pytest

from chalicelib.core.images import parse_image
from chalicelib.core.push_policy import Following, Policy, Push, Verdict
from chalicelib.core.push_policy import judge as judge_reference

REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web"
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def judge(following: Following, running: str, running_tag: str | None, push: Push) -> Verdict:
    """The policy's verdict for a container running the image `running` (parsed as the push path parses it)."""
    return judge_reference(following, parse_image(running), running_tag, push)


def following(policy: str, pin_digest: bool = False) -> Following:
    return Following(Policy.parse(policy), None, pin_digest)


# (policy, running tag, pushed tag, expected action, words in the reason)
SEMVER_CASES = [
    # Keel's documented examples
    ("semver:minor", "1.2.3", "1.3.0", "deploy", "follows policy 'semver:minor'"),
    ("semver:minor", "1.2.3", "2.0.0", "skip", "changes the major version"),
    ("semver:major", "1.2.3", "2.0.0", "deploy", ""),
    ("semver:patch", "1.2.3", "1.2.4", "deploy", ""),
    ("semver:patch", "1.2.3", "1.3.0", "skip", "changes the minor version"),
    ("semver:minor", "1.2.3", "1.2.4", "deploy", ""),
    # never a downgrade or the same version
    ("semver:major", "1.2.3", "1.2.3", "skip", "the same version as the running 1.2.3"),
    ("semver:major", "1.2.3", "1.2.2", "skip", "older than the running 1.2.3"),
    ("semver:major", "2.0.0", "1.9.9", "skip", "older than"),
    # pre-releases: only when the service runs one too
    ("semver:minor", "1.4.3", "1.5.0-rc.1", "skip", "is a pre-release, and the service runs a release"),
    ("semver:minor", "1.5.0-rc.1", "1.5.0-rc.2", "deploy", ""),
    ("semver:minor", "1.5.0-rc.2", "1.5.0", "deploy", ""),
    ("semver:minor", "1.5.0-rc.2", "1.5.0-rc.1", "skip", "older than"),
    # v prefixes, on either side
    ("semver:minor", "v1.4.3", "v1.5.0", "deploy", ""),
    ("semver:minor", "1.4.3", "v1.5.0", "deploy", ""),
    ("semver:minor", "v1.4.3", "1.4.4", "deploy", ""),
    # not versions
    ("semver:minor", "latest", "1.5.0", "skip", "the service runs latest, which is not a version"),
    ("semver:minor", "1.4", "1.5.0", "skip", "which is not a version"),
    ("semver:minor", "1.4.3", "main", "skip", "the pushed tag main is not a version"),
    ("semver:minor", "1.4.3", "1.5", "skip", "is not a version"),
]


@pytest.mark.parametrize(("policy", "running", "pushed", "action", "reason"), SEMVER_CASES)
def test_semver_policies(policy: str, running: str, pushed: str, action: str, reason: str) -> None:
    verdict = judge(following(policy), f"{REPO}:{running}", running, Push(REPO, pushed))
    assert verdict.action == action, verdict.reason
    assert reason in verdict.reason
    if action == "deploy":
        assert str(verdict.image) == f"{REPO}:{pushed}"  # the deployed tag keeps its spelling, v included


@pytest.mark.parametrize(
    ("policy", "running", "pushed", "action", "reason"),
    [
        ("glob:release-*", "release-41", "release-42", "deploy", ""),
        ("glob:release-*", "release-41", "hotfix-1", "skip", "does not match policy 'glob:release-*'"),
        ("glob:*", "a", "a", "skip", "already runs"),
        ("regexp:^build-[0-9]+$", "build-1", "build-2", "deploy", ""),
        ("regexp:build-[0-9]+", "build-1", "build-2x", "skip", "does not match"),  # a full match, not a search
        ("regexp:[", "x", "y", "skip", "is not a valid regular expression"),
        ("tag", "latest", "latest", "redeploy", "latest was pushed again"),
        ("tag", "latest", "main", "skip", "is not the tag the service runs (latest)"),
        ("semver:huge", "1.0.0", "2.0.0", "skip", "unknown policy 'semver:huge'"),
        ("always", "1.0.0", "2.0.0", "skip", "unknown policy 'always'"),
        ("", "1.0.0", "2.0.0", "skip", "unknown policy ''"),
    ],
)
def test_other_policies(policy: str, running: str, pushed: str, action: str, reason: str) -> None:
    verdict = judge(following(policy), f"{REPO}:{running}", running, Push(REPO, pushed))
    assert verdict.action == action, verdict.reason
    assert reason in verdict.reason


def test_a_push_without_a_tag_is_skipped_by_every_policy() -> None:
    for policy in ("semver:minor", "tag", "glob:*", "regexp:.*"):
        verdict = judge(following(policy), f"{REPO}:1.0.0", "1.0.0", Push(REPO, digest=DIGEST))
        assert (verdict.action, verdict.reason) == ("skip", f"the push has no tag, and policy '{policy}' follows tags")


def test_pinned_digests_deploy_the_digest_and_compare_the_pushed_tag() -> None:
    running = f"{REPO}@{OTHER_DIGEST}"
    verdict = judge(following("semver:minor", pin_digest=True), running, "1.4.2", Push(REPO, "1.4.3", DIGEST))
    assert (verdict.action, str(verdict.image)) == ("deploy", f"{REPO}@{DIGEST}")


def test_pinned_digests_need_the_pushed_digest() -> None:
    verdict = judge(following("semver:minor", pin_digest=True), f"{REPO}@{OTHER_DIGEST}", "1.4.2", Push(REPO, "1.4.3"))
    assert verdict.action == "skip"
    assert "names no digest" in verdict.reason


def test_the_tag_policy_with_pinned_digests_moves_to_the_new_digest_once() -> None:
    pinned = following("tag", pin_digest=True)
    moved = judge(pinned, f"{REPO}@{OTHER_DIGEST}", "latest", Push(REPO, "latest", DIGEST))
    assert (moved.action, str(moved.image)) == ("deploy", f"{REPO}@{DIGEST}")
    again = judge(pinned, f"{REPO}@{DIGEST}", "latest", Push(REPO, "latest", DIGEST))
    assert again.action == "skip"
    assert "already runs" in again.reason


def test_the_repository_keeps_the_spelling_the_service_uses() -> None:
    verdict = judge(following("semver:minor"), "nginx:1.27.0", "1.27.0", Push("docker.io/library/nginx", "1.28.0"))
    assert str(verdict.image) == "nginx:1.28.0"


@pytest.mark.parametrize(
    ("tags", "container", "pin"),
    [
        ({"image-updater:policy": "semver:minor"}, None, False),
        (
            {"image-updater:policy": "tag", "image-updater:container": " app ", "image-updater:pin-digest": "TRUE"},
            "app",
            True,
        ),
        ({"image-updater:policy": "tag", "image-updater:pin-digest": "yes"}, None, False),
    ],
)
def test_following_is_read_from_the_service_tags(tags: dict[str, str], container: str | None, pin: bool) -> None:
    found = Following.of(tags)
    assert (found.container, found.pin_digest) == (container, pin)


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"detail": {"image-tag": "1"}}, "names no repository"),
        ({"account": "1", "region": "r", "detail": {"repository-name": "web"}}, "neither a tag nor a digest"),
        ({"account": "1", "region": "r", "detail": {"repository-name": "web", "image-tag": "a b"}}, "not a tag"),
        ({"account": "1", "region": "r", "detail": {"repository-name": "web", "image-digest": "md5:1"}}, "digest"),
        ({"account": "1", "region": "r", "detail": {"repository-name": "Web", "image-tag": "1"}}, "repository"),
    ],
)
def test_unreadable_ecr_events_say_why(event: dict[str, object], problem: str) -> None:
    detail = {"action-type": "PUSH", "result": "SUCCESS", **event["detail"]}  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=problem):
        Push.of_ecr_event({**event, "detail": detail})


def test_an_ecr_event_names_the_pushed_image() -> None:
    event = {
        "account": "123456789012",
        "region": "eu-west-1",
        "detail": {
            "action-type": "PUSH",
            "result": "SUCCESS",
            "repository-name": "team/web",
            "image-tag": "1.4.3",
            "image-digest": DIGEST,
        },
    }
    assert Push.of_ecr_event(event) == Push("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/web", "1.4.3", DIGEST)
