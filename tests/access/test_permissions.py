"""The permissions file: how it is read, and what its rules allow, as a table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from chalicelib.access import permissions
from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.guard import Guard
from chalicelib.access.identity import Principal
from chalicelib.access.permissions import Permissions, parse
from chalicelib.core.errors import NotAllowedError, NotPermittedError, PermissionsFileError
from chalicelib.core.images import parse_image
from chalicelib.core.windows import Scope
from tests.conftest import PROJECT_DIR

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
WEB_ROLE = "arn:aws:iam::123456789012:role/web-team-deployers"
WEB_SESSION = "arn:aws:sts::123456789012:assumed-role/web-team-deployers/alice"
CI_SESSION = "arn:aws:sts::123456789012:assumed-role/github-web-ci/GitHubActions-run-7"
EXAMPLE = PROJECT_DIR / "chalicelib" / "permissions.example.yaml"


def example() -> Permissions:
    return permissions.load(EXAMPLE, "chalicelib/permissions.example.yaml")


def images(*references: str) -> list[Any]:
    return [parse_image(reference) for reference in references]


@pytest.mark.parametrize(
    ("principal", "action", "cluster", "service", "image", "allowed"),
    [
        # A role's ARN matches each of its sessions, which is what a signed request carries.
        (WEB_SESSION, "update", "prod", "web-front", f"{ECR}/web/front:1.2", True),
        (WEB_SESSION, "read", "staging", "web-front", None, True),
        (WEB_SESSION, "update", "prod", "payments-api", f"{ECR}/web/front:1.2", False),  # not its service
        (WEB_SESSION, "update", "dev", "web-front", f"{ECR}/web/front:1.2", False),  # not its cluster
        (WEB_SESSION, "update", "prod", "web-front", f"{ECR}/webhook/x:1", False),  # prefix at a boundary only
        (WEB_SESSION, "update", "prod", "web-front", f"{ECR}/payments/api:1", False),  # not its images
        (WEB_SESSION, "push", "prod", "web-front", None, False),  # an action it is not given
        ("arn:aws:sts::123456789012:assumed-role/web-team-deployers-evil/x", "read", "prod", "web-a", None, False),
        ("arn:aws:sts::999999999999:assumed-role/web-team-deployers/alice", "read", "prod", "web-a", None, False),
        # Cluster and service ARNs match by their names, and whole ARNs by ARN patterns.
        (WEB_SESSION, "read", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", "web-a", None, True),
        (
            WEB_SESSION,
            "read",
            "prod",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/web-a",
            None,
            True,
        ),
        # The CI role: update and read are separate actions; staging only.
        (CI_SESSION, "update", "staging", "web-front", f"{ECR}/web/front:1.2", True),
        (CI_SESSION, "read", "staging", "web-front", None, True),
        (CI_SESSION, "rollback", "staging", "web-front", None, False),
        (CI_SESSION, "update", "prod", "web-front", f"{ECR}/web/front:1.2", False),
        # A glob in a principal stays within one segment: no other role's session matches.
        ("arn:aws:sts::123456789012:assumed-role/github-web-ci", "read", "staging", "web-a", None, False),
        # On-call reads and rolls back anything, changes nothing.
        ("arn:aws:sts::123456789012:assumed-role/on-call/bob", "rollback", "prod", "payments-api", None, True),
        ("arn:aws:sts::123456789012:assumed-role/on-call/bob", "update", "prod", "payments-api", None, False),
        # The triggers.
        ("aws:ecr", "push", "any", "thing", f"{ECR}/web/front:2", True),
        ("aws:ecr", "push", "any", "thing", "ghcr.io/acme/web:2", False),
        ("aws:ecr", "update", "any", "thing", f"{ECR}/web/front:2", False),
        ("webhook:github", "push", "prod", "web-front", "ghcr.io/acme/web:2", True),
        ("webhook:github", "push", "prod", "web-front", "ghcr.io/acme-evil/web:2", False),
        ("aws:codepipeline", "update", "staging", "web-front", None, True),
        ("aws:codepipeline", "update", "prod", "web-front", None, False),
        # Default deny: a principal no rule names (an API key's id) may do nothing.
        ("k3y1d", "read", "prod", "web-front", None, False),
    ],
)
def test_the_example_file_allows_exactly_what_it_says(
    principal: str, action: str, cluster: str, service: str, image: str | None, allowed: bool
) -> None:
    wanted = images(image) if image else []
    assert example().allows(principal, action, cluster, service, wanted) is allowed


def test_a_lone_star_is_anyone_and_a_star_action_is_every_action() -> None:
    rules = parse({"rules": [{"principals": ["*"], "actions": ["*"], "clusters": ["sandbox"]}]})
    for principal in ("k3y1d", WEB_SESSION, "webhook:github"):
        for action in permissions.ACTIONS:
            assert rules.allows(principal, action, "sandbox", "anything")
    assert not rules.allows("k3y1d", "read", "prod", "anything")


def test_a_role_with_a_path_matches_its_sessions_and_key_ids_match_exactly() -> None:
    rules = parse(
        {
            "rules": [
                {"principals": ["arn:aws:iam::123456789012:role/teams/web/deployer"], "actions": ["read"]},
                {"principals": ["abc123"], "actions": ["update"]},
            ]
        }
    )
    assert rules.allows("arn:aws:sts::123456789012:assumed-role/deployer/s1", "read", "c", "s")
    assert rules.allows("abc123", "update", "c", "s")
    assert not rules.allows("abc1234", "update", "c", "s")
    assert not rules.allows("abc123", "read", "c", "s")


def test_each_service_with_its_images_needs_one_rule_that_allows_both() -> None:
    rules = parse(
        {
            "rules": [
                {"principals": ["p"], "actions": ["update"], "services": ["a"], "images": ["registry.example/x"]},
                {"principals": ["p"], "actions": ["update"], "services": ["b"], "images": ["registry.example/y"]},
            ]
        }
    )
    # Two services, each allowed by its own rule: the fan-out is allowed.
    rules.check("p", "update", "c", [("a", images("registry.example/x:1")), ("b", images("registry.example/y:1"))])
    # Service a with b's image: neither rule allows both, even though each allows one.
    with pytest.raises(NotPermittedError) as refused:
        rules.check("p", "update", "c", [("a", images("registry.example/x:1")), ("a", images("registry.example/y:1"))])
    assert refused.value.message == "principal p may not update cluster c service a with image registry.example/y:1"
    # One service with both images (an app and its sidecar), each allowed by a different rule: refused, a 403.
    both = [*images("registry.example/x:1"), *images("registry.example/y:1")]
    rules = parse(
        {
            "rules": [
                {"principals": ["p"], "actions": ["update"], "services": ["a"], "images": ["registry.example/x"]},
                {"principals": ["p"], "actions": ["update"], "services": ["a"], "images": ["registry.example/y"]},
            ]
        }
    )
    with pytest.raises(NotPermittedError, match="no one rule allows them all"):
        rules.check("p", "update", "c", [("a", both)])


def test_a_refusal_names_the_principal_the_action_and_the_target() -> None:
    with pytest.raises(NotPermittedError) as refused:
        example().check(CI_SESSION, "update", "prod", [("web-front", []), ("api", [])])
    assert refused.value.message == f"principal {CI_SESSION} may not update cluster prod service web-front"
    arn = "arn:aws:ecs:eu-west-1:123456789012:service/prod/api"
    with pytest.raises(NotPermittedError, match=r"may not update cluster prod service api$"):
        example().check(CI_SESSION, "update", "arn:aws:ecs:eu-west-1:123456789012:cluster/prod", [(arn, [])])


def test_a_principal_with_no_rule_for_an_action_is_refused_it_everywhere() -> None:
    example().check_action("aws:ecr", "push")
    with pytest.raises(NotPermittedError, match="principal k3y1d may not push: no rule of the permissions file"):
        example().check_action("k3y1d", "push")


def test_a_listing_needs_the_action_on_the_cluster_and_ignores_the_service_narrowing() -> None:
    example().check_cluster(CI_SESSION, "read", "staging")
    with pytest.raises(NotPermittedError, match="may not read cluster prod"):
        example().check_cluster(CI_SESSION, "read", "prod")


def test_the_allowlists_stay_a_ceiling_no_rule_widens() -> None:
    anyone = parse({"rules": [{"principals": ["*"], "actions": ["*"]}]})
    guard = Guard(Principal("k3y1d", "key"), AccessPolicy(clusters=("staging",)), anyone)
    guard.check("update", "staging", [("web", [])])
    with pytest.raises(NotAllowedError, match="ALLOWED_CLUSTERS"):
        guard.check("update", "prod", [("web", [])])


def test_without_a_file_every_principal_may_do_what_the_allowlists_allow() -> None:
    guard = Guard(Principal("anyone", "key"), AccessPolicy(services=("web",)), None)
    guard.check("update", "prod", [("web", images("nginx:1"))])
    guard.check_action("push")
    assert not guard.allows("read", "prod", "api")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, "must hold one top-level key, 'rules:'"),
        ({"rules": [], "extra": 1}, "must hold one top-level key, 'rules:'"),
        ({"rules": {"principals": ["p"]}}, "'rules' must be a list of rules"),
        ({"rules": ["read"]}, r"rules\[0\] must be a mapping"),
        ({"rules": [{"principals": ["p"]}]}, r"rules\[0\] has no 'actions'"),
        ({"rules": [{"actions": ["read"]}]}, r"rules\[0\] has no 'principals'"),
        # A misspelt narrowing must not quietly widen the rule to everything.
        ({"rules": [{"principals": ["p"], "actions": ["read"], "service": ["web"]}]}, r"unknown fields \['service'\]"),
        ({"rules": [{"principals": ["p"], "actions": ["deploy"]}]}, r"'deploy' is not one of"),
        ({"rules": [{"principals": "p", "actions": ["read"]}]}, r"principals must be a non-empty list"),
        ({"rules": [{"principals": [], "actions": ["read"]}]}, r"principals must be a non-empty list"),
        ({"rules": [{"principals": ["p"], "actions": ["read"], "images": [""]}]}, r"every entry must be a non-empty"),
        ({"rules": [{"principals": ["p"], "actions": ["read", 3]}]}, r"every entry must be a non-empty string"),
    ],
)
def test_a_file_that_breaks_a_rule_is_refused_naming_where(document: Any, message: str) -> None:
    with pytest.raises(PermissionsFileError, match=message):
        parse(document)


def test_a_file_that_is_not_yaml_names_its_line(tmp_path: Path) -> None:
    broken = tmp_path / "permissions.yaml"
    broken.write_text("rules:\n  - principals: [p\n    actions: [read]\n")
    with pytest.raises(PermissionsFileError, match=r"the permissions file mine.yaml is not valid YAML \(line \d\)"):
        permissions.load(broken, "mine.yaml")
    with pytest.raises(PermissionsFileError, match="cannot be read"):
        permissions.load(tmp_path / "missing.yaml")


def test_the_stage_reads_its_file_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.entrypoints import wiring

    path = tmp_path / "permissions.yaml"
    path.write_text("rules:\n  - principals: [a]\n    actions: [read]\n")
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))
    reads: list[Path] = []
    original = permissions.load
    monkeypatch.setattr(permissions, "load", lambda p, n=None: reads.append(p) or original(p, n))
    first = wiring.permissions()
    assert wiring.permissions() is first
    assert len(reads) == 1
    path.write_text("rules:\n  - principals: [b]\n    actions: [read, update]\n")
    assert wiring.permissions().rules[0].principals == ("b",)
    assert len(reads) == 2


def test_a_stage_without_a_file_warns_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from chalicelib.entrypoints import wiring

    monkeypatch.setattr(wiring, "_warned_no_permissions", [])
    with caplog.at_level(logging.WARNING, logger=wiring.__name__):
        assert wiring.permissions() is None
        assert wiring.permissions() is None
    warnings = [r.getMessage() for r in caplog.records if "PERMISSIONS_FILE" in r.getMessage()]
    assert warnings == ["PERMISSIONS_FILE is not set: every caller may do everything within the allowlists"]


def test_a_relative_file_is_found_next_to_app_py(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.entrypoints import wiring

    monkeypatch.setenv("PERMISSIONS_FILE", "chalicelib/permissions.example.yaml")
    found = wiring.permissions()
    assert found is not None
    assert found.rules == example().rules
    monkeypatch.setenv("PERMISSIONS_FILE", "chalicelib/nothing-here.yaml")
    with pytest.raises(PermissionsFileError, match=r"permissions file chalicelib/nothing-here\.yaml cannot be read"):
        wiring.permissions()


WINDOW = {
    "name": "weekend",
    "scope": {"clusters": ["prod"]},
    "timezone": "Europe/Berlin",
    "start": "FRI 16:00",
    "end": "MON 08:00",
    "reason": "weekend",
}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"rules": [{"principals": ["p"], "actions": ["read"], "bypassFreeze": "yes"}]},
            r"bypassFreeze must be true or",
        ),
        ({"rules": [], "freezeWindows": {"name": "x"}}, r"freezeWindows must be a list of windows"),
        ({"rules": [], "freezeWindows": [{**WINDOW, "timezone": "Berlin"}]}, r"freezeWindows\[0\]\.timezone: 'Berlin'"),
        ({"rules": [], "freezeWindows": [{**WINDOW, "start": "FR 16:00"}]}, r"freezeWindows\[0\]\.start must be a"),
        ({"rules": [], "freezeWindows": [{**WINDOW, "scope": {"service": ["x"]}}]}, r"unknown fields \['service'\]"),
        ({"freezeWindows": [WINDOW]}, "must hold one top-level key, 'rules:'"),
    ],
)
def test_a_broken_freeze_setting_is_refused_naming_where(document: Any, message: str) -> None:
    with pytest.raises(PermissionsFileError, match=message):
        parse(document)


def test_the_example_file_has_a_weekend_window_and_an_on_call_rule_that_freezes_and_bypasses() -> None:
    found = example()
    [weekend] = found.windows
    assert (weekend.name, weekend.timezone, str(weekend.start), str(weekend.end)) == (
        "weekend",
        "Europe/Berlin",
        "FRI 16:00",
        "MON 08:00",
    )
    on_call = "arn:aws:sts::123456789012:assumed-role/on-call/olga"
    assert found.bypasses_freeze(on_call, "rollback", "prod", "web-front")
    assert not found.bypasses_freeze(on_call, "update", "prod", "web-front")  # the rule does not give update
    assert not found.bypasses_freeze(
        "arn:aws:sts::123456789012:assumed-role/web-team-deployers/x", "update", "prod", "web-a"
    )
    found.check_freeze(on_call, Scope())  # the emergency stop


def test_freeze_is_checked_on_the_whole_scope() -> None:
    rules = parse(
        {"rules": [{"principals": ["p"], "actions": ["freeze"], "clusters": ["prod"], "services": ["web-*"]}]}
    )
    rules.check_freeze("p", Scope(("prod",), ("web-a", "web-b")))
    for scope, refused in (
        (Scope(("prod",), None), "cluster prod every service"),
        (Scope(None, ("web-a",)), "every cluster service web-a"),
        (Scope(("prod",), ("api",)), "cluster prod service api"),
        (Scope(), "every cluster every service"),
    ):
        with pytest.raises(NotAllowedError, match=f"principal p may not freeze {refused}"):
            rules.check_freeze("p", scope)
    with pytest.raises(NotAllowedError, match="may not freeze"):
        rules.check_freeze("q", Scope(("prod",), ("web-a",)))
