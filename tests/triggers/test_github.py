"""GitHub's signed webhooks for GHCR (`POST /hooks/github`) and the signed push hook (`POST /hooks/push`).

The payloads are GitHub's own examples (tests/triggers/github/README.md); the
secret is in moto's Secrets Manager, as the stage setting names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from chalicelib.access.signatures import sign
from chalicelib.aws import clients
from tests.conftest import (
    API_KEY,
    ECR,
    REGION,
    PushQueue,
    Workload,
    create_service,
    deliver,
    index_followers,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
)

SAMPLES = Path(__file__).parent / "github"
SECRET = "It's a Secret to Everybody"  # GitHub's own example secret
SECRET_NAME = "ecs-image-updater/github-webhook"
SITE = "ghcr.io/acme/site"


@pytest.fixture
def webhook_secret(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> str:
    secrets = clients.session().client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name=SECRET_NAME, SecretString=SECRET)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET_NAME)
    return SECRET


@pytest.fixture
def site(app_client: Any, push_queue: PushQueue, setup_ecs: Any, ecs_deployments: Any) -> Workload:
    """Service `site` runs ghcr.io/acme/site:1.4.2 and follows semver:minor; the follower index knows it."""
    setup_ecs.create_cluster(clusterName="test-cluster")
    arn = register(setup_ecs, [rich_container("app", f"{SITE}:1.4.2")], family="site")
    create_service(
        setup_ecs, "test-cluster", "site", arn, tags=[{"key": "image-updater:policy", "value": "semver:minor"}]
    )
    index_followers(app_client)
    return Workload("test-cluster", "site", "site", arn)


def sample(name: str = "registry_package") -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.published.docker.json").read_text())


def tagged(payload: dict[str, Any], event: str, tag: str, owner: str = "acme", name: str = "site") -> dict[str, Any]:
    """The example as GHCR sends it for a tagged push of ghcr.io/<owner>/<name>."""
    version = payload[event]["package_version"]
    version["container_metadata"]["tag"]["name"] = tag
    version["package_url"] = f"ghcr.io/{owner}/{name}:{tag}"
    return payload


def deliver_hook(
    http: Any,
    payload: Any,
    event: str = "registry_package",
    secret: str | None = SECRET,
    signature: str | None = None,
    content_type: str = "application/json",
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": content_type, "X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78"}
    if signature is not None or secret is not None:
        headers["X-Hub-Signature-256"] = signature if signature is not None else sign(body, secret or "")
    return http.post("/hooks/github", headers=headers, body=body)


def image_of(setup_ecs: Any, site: Workload) -> str:
    return str(running_task_definition(setup_ecs, site)["containerDefinitions"][0]["image"])


@pytest.mark.parametrize("event", ["registry_package", "package"])
def test_a_tagged_publication_is_followed_like_a_push_and_recorded_as_githubs(
    http: Any, app_client: Any, push_queue: PushQueue, setup_ecs: Any, site: Workload, webhook_secret: str, event: str
) -> None:
    answer = deliver_hook(http, tagged(sample(event), event, "1.5.0"), event)
    assert answer.status_code == 202, answer.json_body
    assert answer.json_body["repository"] == SITE
    assert answer.json_body["tag"] == "1.5.0"
    assert answer.json_body["digest"] == "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"
    assert [(d["service"], d["action"]) for d in answer.json_body["decisions"]] == [("site", "queued")]
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, site) == f"{SITE}:1.5.0"
    [record] = records_of("test-cluster", "site")
    assert (record["action"], record["principal"]) == ("push", "webhook:github")


def test_githubs_own_example_has_no_tag_and_deploys_nothing(
    http: Any, push_queue: PushQueue, setup_ecs: Any, site: Workload, webhook_secret: str
) -> None:
    for event in ("registry_package", "package"):
        answer = deliver_hook(http, sample(event), event)
        assert answer.status_code == 202
        assert answer.json_body == {"ignored": "the published version has no tag, so no policy can follow it"}
    assert push_queue.waiting() == 0
    assert image_of(setup_ecs, site) == f"{SITE}:1.4.2"


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        (None, "the x-hub-signature-256 header is missing: sign the body with the webhook's secret"),
        ("sha256=" + "0" * 64, "the x-hub-signature-256 signature does not match the body"),
        ("sha1=abc", "the x-hub-signature-256 header must be sha256=<hex HMAC-SHA256 of the body>"),
        ("sha256=ünicode", "the x-hub-signature-256 signature does not match the body"),
    ],
)
def test_a_missing_or_wrong_signature_is_a_401_and_nothing_is_read(
    http: Any, push_queue: PushQueue, site: Workload, webhook_secret: str, signature: str | None, message: str
) -> None:
    payload = tagged(sample(), "registry_package", "1.5.0")
    answer = deliver_hook(http, payload, secret=None, signature=signature)
    assert answer.status_code == 401
    assert answer.json_body == {"Code": "UnauthorizedError", "Message": message}
    assert push_queue.waiting() == 0


def test_a_body_signed_with_another_secret_or_changed_after_signing_is_refused(
    http: Any, push_queue: PushQueue, site: Workload, webhook_secret: str
) -> None:
    payload = tagged(sample(), "registry_package", "1.5.0")
    assert deliver_hook(http, payload, secret="another secret").status_code == 401
    body = json.dumps(payload).encode()
    signature = sign(body, SECRET)
    changed = body.replace(b"1.5.0", b"9.9.9")
    assert deliver_hook(http, changed, signature=signature).status_code == 401
    assert push_queue.waiting() == 0


def test_the_signature_is_checked_before_the_body_is_read(http: Any, webhook_secret: str) -> None:
    answer = deliver_hook(http, b"not json at all", secret=None, signature="sha256=" + "1" * 64)
    assert answer.status_code == 401
    assert deliver_hook(http, b"not json at all").status_code == 400  # signed, then read: not JSON


def test_a_form_encoded_delivery_is_read_too(
    http: Any, push_queue: PushQueue, site: Workload, webhook_secret: str
) -> None:
    body = urlencode({"payload": json.dumps(tagged(sample(), "registry_package", "1.5.0"))}).encode()
    answer = deliver_hook(http, body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 202, answer.json_body
    assert answer.json_body["tag"] == "1.5.0"


@pytest.mark.parametrize(
    ("event", "change", "reason"),
    [
        ("ping", None, "ping: the webhook reaches this service"),
        ("push", None, "the event 'push' is not a package publication"),
        ("registry_package", {"action": "updated"}, "the action 'updated' is not 'published'"),
    ],
)
def test_other_deliveries_are_answered_and_deploy_nothing(
    http: Any, push_queue: PushQueue, webhook_secret: str, event: str, change: dict[str, Any] | None, reason: str
) -> None:
    payload = {**tagged(sample(), "registry_package", "1.5.0"), **(change or {})}
    answer = deliver_hook(http, payload, event)
    assert answer.status_code == 202
    assert answer.json_body["ignored"].startswith(reason)
    assert push_queue.waiting() == 0


def test_a_package_that_is_no_container_deploys_nothing(http: Any, push_queue: PushQueue, webhook_secret: str) -> None:
    payload = tagged(sample(), "registry_package", "1.5.0")
    package = payload["registry_package"]
    package.update(package_type="npm", ecosystem="npm", registry={"type": "NPM"})
    assert deliver_hook(http, payload).json_body == {"ignored": "the package is not a container image"}


def test_a_stage_without_the_secret_takes_no_github_webhooks(http: Any, moto_world: None) -> None:
    answer = deliver_hook(http, tagged(sample(), "registry_package", "1.5.0"))
    assert answer.status_code == 404
    assert "GITHUB_WEBHOOK_SECRET is not set" in answer.json_body["Message"]


def test_the_rules_limit_what_githubs_pushes_move(
    http: Any, push_queue: PushQueue, site: Workload, webhook_secret: str, tmp_path: Path, monkeypatch: Any
) -> None:
    rules = tmp_path / "permissions.yaml"
    rules.write_text("rules:\n  - principals: [webhook:github]\n    actions: [push]\n    images: [ghcr.io/other/]\n")
    monkeypatch.setenv("PERMISSIONS_FILE", str(rules))
    answer = deliver_hook(http, tagged(sample(), "registry_package", "1.5.0"))
    assert answer.status_code == 202
    [decision] = answer.json_body["decisions"]
    assert decision["action"] == "skipped"
    assert decision["reason"] == (
        f"principal webhook:github may not push cluster test-cluster service site with image {SITE}:1.5.0"
    )
    rules.write_text("rules:\n  - principals: [someone]\n    actions: [read]\n")
    refused = deliver_hook(http, tagged(sample(), "registry_package", "1.5.1"))
    assert refused.status_code == 403
    assert refused.json_body["Message"].startswith("principal webhook:github may not push")


@pytest.fixture
def push_secret(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> str:
    secrets = clients.session().client("secretsmanager", region_name=REGION)
    arn = secrets.create_secret(Name="ecs-image-updater/push-webhook", SecretString="push secret")["ARN"]
    monkeypatch.setenv("PUSH_WEBHOOK_SECRET", arn)  # a name or an ARN
    return "push secret"


def test_the_push_hook_wants_a_signature_too_when_it_has_a_secret(
    http: Any, push_queue: PushQueue, workload: Workload, push_secret: str
) -> None:
    body = json.dumps({"repository": f"{ECR}/web", "tag": "1.5.0"}).encode()
    unsigned = post(http, "/hooks/push", body)
    assert unsigned.status_code == 401
    assert (
        unsigned.json_body["Message"]
        == "the x-signature-256 header is missing: sign the body with the webhook's secret"
    )
    wrong = post(http, "/hooks/push", body, {"X-Signature-256": sign(body, "guess")})
    assert wrong.status_code == 401
    right = post(http, "/hooks/push", body, {"X-Signature-256": sign(body, push_secret)})
    assert right.status_code == 202, right.json_body
    # The key is still needed: a signature alone is not enough either.
    keyless = http.post(
        "/hooks/push",
        headers={"Content-Type": "application/json", "X-Signature-256": sign(body, push_secret)},
        body=body,
    )
    assert keyless.status_code == 403
    assert API_KEY not in json.dumps(right.json_body)


def test_the_secret_is_read_once_per_container(
    http: Any, push_queue: PushQueue, webhook_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    client = clients.secretsmanager_client()
    client.meta.events.register("before-call.secrets-manager.GetSecretValue", lambda **_: reads.append("read"))
    for _ in range(3):
        assert deliver_hook(http, sample()).status_code == 202
    assert reads == ["read"]
