"""Who may deploy what: allowlists, the digest rule, audit tags and the body size limit."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from chalicelib.access import allowlists
from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.core.config import load_settings
from chalicelib.core.errors import NotAllowedError
from chalicelib.core.images import parse_image
from chalicelib.core.requests import RollbackRequest, UpdateRequest
from chalicelib.deploy.rollback import roll_back
from chalicelib.deploy.update import update_image
from tests.conftest import ECR, Workload, active_revisions, post, running_task_definition

DIGEST = "sha256:" + "ab" * 32
UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web", "tag": "1.1"}


def test_lists_are_trimmed_and_empty_entries_dropped() -> None:
    settings = load_settings({"ALLOWED_CLUSTERS": " prod-* , ,staging ", "ALLOWED_SERVICES": ""})
    assert settings.allowed_clusters == ("prod-*", "staging")
    assert settings.allowed_services == ()  # set but empty: nothing is allowed
    assert settings.allowed_image_prefixes is None


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "Yes", " true "])
def test_require_digest_accepts_true_1_yes_in_any_case(value: str) -> None:
    assert load_settings({"REQUIRE_DIGEST": value}).require_digest is True


@pytest.mark.parametrize("value", ["", "false", "0", "no", "on"])
def test_require_digest_is_off_otherwise(value: str) -> None:
    assert load_settings({"REQUIRE_DIGEST": value}).require_digest is False


def test_globs_are_case_sensitive_and_match_names_inside_arns() -> None:
    policy = AccessPolicy(clusters=("prod-*",), services=("web",))
    policy.check_cluster("prod-eu")
    policy.check_cluster("arn:aws:ecs:eu-west-1:123456789012:cluster/prod-eu")
    policy.check_service("arn:aws:ecs:eu-west-1:123456789012:service/prod-eu/web")
    with pytest.raises(NotAllowedError, match="cluster 'Prod-eu' is not allowed by ALLOWED_CLUSTERS"):
        policy.check_cluster("Prod-eu")
    with pytest.raises(NotAllowedError, match="service 'Web' is not allowed by ALLOWED_SERVICES"):
        policy.check_service("arn:aws:ecs:eu-west-1:123456789012:service/prod-eu/Web")


def test_image_prefixes_match_the_repository() -> None:
    policy = AccessPolicy(image_prefixes=(f"{ECR}/", "docker.io/library/"))
    policy.check_image(parse_image(f"{ECR}/web:1"))
    policy.check_image(parse_image("nginx:1"))  # docker.io/library/nginx
    with pytest.raises(NotAllowedError, match=r"'evil\.example\.com/web' is not allowed by ALLOWED_IMAGE_PREFIXES"):
        policy.check_image(parse_image("evil.example.com/web:1"))
    with pytest.raises(NotAllowedError):
        policy.check_image(parse_image(f"{ECR}.evil.com/web:1"))


def test_require_digest_refuses_tags() -> None:
    policy = AccessPolicy(require_digest=True)
    policy.check_image(parse_image(f"repo@{DIGEST}"))
    with pytest.raises(NotAllowedError, match="REQUIRE_DIGEST"):
        policy.check_image(parse_image("repo:1"))


def test_unset_lists_allow_everything_and_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    allowlists._warned.clear()
    with caplog.at_level(logging.WARNING, logger="chalicelib.access.allowlists"):
        AccessPolicy.from_settings(load_settings({}))
        AccessPolicy.from_settings(load_settings({}))
    warnings = [r.getMessage() for r in caplog.records if r.name == "chalicelib.access.allowlists"]
    assert sorted(warnings) == sorted(
        f"{name} is not set: every value is allowed"
        for name in ("ALLOWED_IMAGE_PREFIXES", "ALLOWED_CLUSTERS", "ALLOWED_SERVICES")
    )
    AccessPolicy.from_settings(load_settings({})).check_image(parse_image("anything:1"))


@pytest.mark.parametrize(
    ("env", "body", "rule"),
    [
        ({"ALLOWED_CLUSTERS": "prod-*"}, UPDATE, "ALLOWED_CLUSTERS"),
        ({"ALLOWED_SERVICES": "api,worker-*"}, UPDATE, "ALLOWED_SERVICES"),
        ({"ALLOWED_IMAGE_PREFIXES": "public.ecr.aws/"}, UPDATE, "ALLOWED_IMAGE_PREFIXES"),
        ({"REQUIRE_DIGEST": "yes"}, UPDATE, "REQUIRE_DIGEST"),
        ({"ALLOWED_IMAGE_PREFIXES": "public.ecr.aws/"}, {**UPDATE, "dryRun": True}, "ALLOWED_IMAGE_PREFIXES"),
        (
            {"ALLOWED_IMAGE_PREFIXES": f"{ECR}/"},
            {"cluster": "test-cluster", "service": "web", "containers": {"app": f"{ECR}/web:2", "worker": "x/y:1"}},
            "ALLOWED_IMAGE_PREFIXES",
        ),
    ],
)
def test_update_outside_the_lists_is_a_403_before_any_aws_call(
    http: Any,
    workload: Workload,
    calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    body: dict[str, Any],
    rule: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    response = post(http, "/update", body)
    assert response.status_code == 403
    assert rule in response.json_body["Message"]
    assert calls == []


def test_update_inside_the_lists_goes_through(http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_CLUSTERS", "test-*")
    monkeypatch.setenv("ALLOWED_SERVICES", "web")
    monkeypatch.setenv("ALLOWED_IMAGE_PREFIXES", f"{ECR}/")
    monkeypatch.setenv("REQUIRE_DIGEST", "true")
    response = post(http, "/update", {**UPDATE, "tag": DIGEST})
    assert response.status_code == 200


def test_rollback_to_an_image_outside_the_lists_writes_nothing(
    http: Any, ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    request = UpdateRequest(workload.cluster, workload.service, parse_image("public.ecr.aws/x/web:2"), container="app")
    new = update_image(ecs, request)
    monkeypatch.setenv("ALLOWED_IMAGE_PREFIXES", "public.ecr.aws/")
    calls.clear()
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web"})
    assert response.status_code == 403
    assert "ALLOWED_IMAGE_PREFIXES" in response.json_body["Message"]
    assert "UpdateService" not in calls
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == new.task_definition.arn


def test_rollback_checks_only_the_images_it_changes(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    first = f"{ECR}/web@sha256:" + "1" * 64
    update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(first), container="app"))
    update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(f"{ECR}/web@{DIGEST}")))
    # The worker runs a tag in both revisions; REQUIRE_DIGEST judges only what changes back.
    result = roll_back(
        ecs,
        RollbackRequest(workload.cluster, workload.service),
        allow_image=AccessPolicy(require_digest=True).check_image,
    )
    assert [c.as_dict() for c in result.containers] == [
        {"name": "app", "previousImage": f"{ECR}/web@{DIGEST}", "image": first, "digest": None}
    ]


def test_without_rules_images_are_not_even_parsed() -> None:
    AccessPolicy().check_image("Not/A:valid image")


def test_rollback_outside_the_cluster_list_is_a_403(
    http: Any, workload: Workload, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_CLUSTERS", "prod")
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web"})
    assert response.status_code == 403
    assert calls == []


def test_status_outside_the_lists_is_a_403(
    http: Any, workload: Workload, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_SERVICES", "api")
    response = http.get("/services/test-cluster/web", headers={"x-api-key": "test-key-0123456789"})
    assert response.status_code == 403
    assert "ALLOWED_SERVICES" in response.json_body["Message"]
    assert calls == []


def test_discovery_lists_only_allowed_services(
    http: Any, setup_ecs: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import create_service

    create_service(setup_ecs, workload.cluster, "api", workload.running_arn)
    create_service(setup_ecs, workload.cluster, "admin", workload.running_arn)
    monkeypatch.setenv("ALLOWED_SERVICES", "web,a?i")
    body = http.get("/clusters/test-cluster/services", headers={"x-api-key": "test-key-0123456789"}).json_body
    assert [s["service"] for s in body["services"]] == ["api", "web"]
    monkeypatch.setenv("ALLOWED_CLUSTERS", "prod")
    refused = http.get("/clusters/test-cluster/services", headers={"x-api-key": "test-key-0123456789"})
    assert refused.status_code == 403


def test_audit_tags_name_principal_request_key_ip_and_time() -> None:
    from datetime import UTC, datetime

    context = {"requestId": "req-1", "identity": {"apiKeyId": "abc123", "apiKey": "SECRET", "sourceIp": "203.0.113.9"}}
    principal = "arn:aws:sts::123456789012:assumed-role/deployers/ci,run=7"
    tags = Provenance.of_request(context, "update", principal, datetime(2026, 11, 25, 10, 0, tzinfo=UTC)).tags()
    assert tags == {
        "deployed-by": "arn:aws:sts::123456789012:assumed-role/deployers/ci_run=7",
        "deployed-by-request": "req-1",
        "deployed-by-key": "abc123",
        "deployed-from-ip": "203.0.113.9",
        "deployed-at": "2026-11-25T10:00:00.000Z",
    }
    assert "SECRET" not in str(tags)


def test_audit_tags_say_unknown_for_what_the_context_lacks() -> None:
    tags = Provenance.of_request({}, "update", "").tags()
    assert tags["deployed-by-request"] == tags["deployed-by-key"] == tags["deployed-from-ip"] == "unknown"


def test_registered_revision_carries_the_audit_tags_and_the_log_too(
    http: Any, setup_ecs: Any, workload: Workload, request_log: list[dict[str, Any]]
) -> None:
    post(http, "/update", UPDATE)
    tags = {t["key"]: t["value"] for t in running_task_definition(setup_ecs, workload)["tags"]}
    for key in ("deployed-by", "deployed-by-request", "deployed-by-key", "deployed-from-ip", "deployed-at"):
        assert request_log[-1]["audit"][key] == tags[key]
    # Chalice's test client sends a source IP but no request id and no API key id; the app checked
    # the local key itself, so the key is "local".
    assert tags["deployed-from-ip"] == "127.0.0.1"
    assert tags["deployed-by-request"] == "unknown"
    assert tags["deployed-by-key"] == "local"
    assert tags["deployed-at"].endswith("Z")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/update"),
        ("POST", "/rollback"),
        ("GET", "/services/test-cluster/web"),
        ("GET", "/services/test-cluster/web/history"),
        ("GET", "/clusters/c/services"),
    ],
)
def test_bodies_over_256_kib_get_413_on_every_route(http: Any, workload: Workload, method: str, path: str) -> None:
    body = '{"cluster": "' + "c" * (256 * 1024) + '"}'
    response = http.request(
        method, path, headers={"x-api-key": "test-key-0123456789", "Content-Type": "application/json"}, body=body
    )
    assert response.status_code == 413
    assert f"{256 * 1024} bytes" in response.json_body["Message"]


def test_a_body_of_exactly_256_kib_is_read(http: Any, setup_ecs: Any, workload: Workload) -> None:
    padding = 256 * 1024 - len('{"cluster": "test-cluster", "service": "web", "x": ""}')
    body = '{"cluster": "test-cluster", "service": "web", "x": "' + "p" * padding + '"}'
    assert len(body) == 256 * 1024
    response = post(http, "/update", body)
    assert response.status_code == 400  # read, then refused for its unknown field
    assert "'x'" in response.json_body["Message"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
