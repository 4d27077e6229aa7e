"""The client against a scripted HTTP server: where the key goes, and how 5xx, 429, redirects and junk end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedServer, run_cli
from ecs_image_updater_cli.api import MAX_BODY_BYTES, ApiClient
from ecs_image_updater_cli.config import Connection
from ecs_image_updater_cli.exits import RefusedError

KEY = "sk-test-0123456789abcdef"  # a key distinctive enough to find in any output


def settings(server: ScriptedServer) -> dict[str, str]:
    """The client's settings for `server`, with the distinctive KEY."""
    return {"ECS_IMAGE_UPDATER_URL": server.url, "ECS_IMAGE_UPDATER_API_KEY": KEY}


def deploy_web(server: ScriptedServer, workdir: Path, *options: str) -> Any:
    """`ecs-image-updater deploy` of repo:2 to prod/web against the scripted server."""
    args = ("deploy", "--cluster", "prod", "--service", "web", "--image", "repo:2", *options)
    return run_cli(*args, env=settings(server), cwd=workdir)


DRY_RUN_ANSWER = {
    "changed": True,
    "dryRun": True,
    "cluster": "prod",
    "service": "web",
    "taskDefinition": {"family": "web", "revision": None},
    "previousTaskDefinition": {"family": "web", "revision": 1},
    "containers": [{"name": "app", "previousImage": "repo:1", "image": "repo:2"}],
    "deployment": None,
    "serviceStatus": "ACTIVE",
    "diff": [{"path": "containerDefinitions[app].image", "from": "repo:1", "to": "repo:2"}],
}


def test_the_key_travels_in_the_x_api_key_header_only(server: ScriptedServer, workdir: Path) -> None:
    server.answer(200, DRY_RUN_ANSWER)
    result = deploy_web(server, workdir, "--dry-run")
    assert result.returncode == 0, result.output
    [request] = server.received
    assert request.headers["x-api-key"] == KEY
    assert KEY not in request.path
    assert KEY.encode() not in request.body
    assert [value for name, value in request.headers.items() if name != "x-api-key" and KEY in value] == []
    assert json.loads(request.body) == {
        "cluster": "prod",
        "service": "web",
        "image": "repo:2",
        "dryRun": True,
    }
    assert request.headers["content-type"] == "application/json"


def test_a_5xx_is_exit_code_4_with_the_services_message(server: ScriptedServer, workdir: Path) -> None:
    server.answer(502, {"Code": "BadGatewayError", "Message": "ECS DescribeServices failed: AccessDenied"})
    result = run_cli("status", "prod", "web", env=settings(server), cwd=workdir)
    assert result.returncode == 4
    assert "502 BadGatewayError" in result.stderr
    assert "ECS DescribeServices failed: AccessDenied" in result.stderr
    assert result.stdout == ""


def test_an_answer_that_is_not_json_is_exit_code_4(server: ScriptedServer, workdir: Path) -> None:
    server.answer(200, b"<html>proxy login</html>", {"Content-Type": "text/html"})
    result = run_cli("status", "prod", "web", env=settings(server), cwd=workdir)
    assert result.returncode == 4
    assert "not JSON" in result.stderr


def test_a_redirect_is_not_followed_so_the_key_goes_nowhere_else(
    server: ScriptedServer, elsewhere: ScriptedServer, workdir: Path
) -> None:
    server.answer(302, b"", {"Location": f"{elsewhere.url}/services/prod/web"})
    result = run_cli("status", "prod", "web", env=settings(server), cwd=workdir)
    assert result.returncode == 4
    assert "redirect" in result.stderr
    assert elsewhere.received == []


def test_a_429_is_retried_after_its_retry_after(server: ScriptedServer, workdir: Path) -> None:
    server.answer(429, {"message": "Too Many Requests"}, {"Retry-After": "0"})
    server.answer(200, DRY_RUN_ANSWER)
    result = deploy_web(server, workdir, "--dry-run")
    assert result.returncode == 0, result.output
    assert len(server.received) == 2
    assert "containerDefinitions[app].image" in result.stdout


def test_a_429_that_lasts_until_the_timeout_is_exit_code_4_try_again_later(
    server: ScriptedServer, workdir: Path
) -> None:
    for _ in range(50):
        server.answer(
            429, {"Code": "TooManyRequestsError", "Message": "try again in a few seconds"}, {"Retry-After": "1"}
        )
    result = run_cli("status", "prod", "web", "--timeout", "2s", env=settings(server), cwd=workdir)
    assert result.returncode == 4  # not 3: nothing was refused, it was only not done yet
    assert 2 <= len(server.received) <= 3  # at 0 s, 1 s (and 2 s): each Retry-After honoured
    assert "try again in a few seconds" in result.stderr
    assert "try again later" in result.stderr


def test_a_busy_service_is_tried_again_after_its_retry_after_and_then_deploys(
    server: ScriptedServer, workdir: Path
) -> None:
    busy = {"Code": "ConflictError", "Message": "another request is changing service 'prod/web'"}
    server.answer(409, busy, {"Retry-After": "1"})
    server.answer(200, DRY_RUN_ANSWER)
    result = deploy_web(server, workdir, "--dry-run")
    assert result.returncode == 0, result.output
    assert [r.path for r in server.received] == ["/update", "/update"]
    assert "containerDefinitions[app].image" in result.stdout


def test_a_service_busy_until_the_timeout_is_exit_code_4_never_3(server: ScriptedServer, workdir: Path) -> None:
    busy = {"Code": "ConflictError", "Message": "another request is changing service 'prod/web'"}
    for _ in range(50):
        server.answer(409, busy, {"Retry-After": "1"})
    result = deploy_web(server, workdir, "--timeout", "2s")
    assert result.returncode == 4
    assert "busy" in result.stderr
    assert "try again later" in result.stderr


def test_a_conflict_without_retry_after_is_a_refusal(server: ScriptedServer, workdir: Path) -> None:
    server.answer(409, {"Code": "ConflictError", "Message": "service 'web' is DRAINING, not ACTIVE"})
    result = deploy_web(server, workdir)
    assert result.returncode == 3
    assert len(server.received) == 1  # not tried again: waiting would not change it


def test_a_body_larger_than_the_service_takes_is_refused_before_it_is_sent(server: ScriptedServer) -> None:
    client = ApiClient(Connection(server.url, KEY))
    with pytest.raises(RefusedError, match=f"more than the {MAX_BODY_BYTES} bytes the service takes"):
        client.post("/apply", {"descriptions": "d" * MAX_BODY_BYTES})
    assert server.received == []


def test_a_body_at_the_limit_is_sent(server: ScriptedServer) -> None:
    server.answer(200, {"ok": True})
    wrapper = len(json.dumps({"padding": ""}).encode())
    ApiClient(Connection(server.url, KEY)).post("/apply", {"padding": "p" * (MAX_BODY_BYTES - wrapper)})
    assert len(server.received[0].body) == MAX_BODY_BYTES


def test_api_gateways_own_403_is_refused_with_its_message(server: ScriptedServer, workdir: Path) -> None:
    server.answer(403, {"message": "Forbidden"})
    result = run_cli("history", "prod", "web", env=settings(server), cwd=workdir)
    assert result.returncode == 3
    assert "403" in result.stderr
    assert "Forbidden" in result.stderr


def test_a_message_that_echoes_the_key_is_printed_without_it(server: ScriptedServer, workdir: Path) -> None:
    server.answer(400, {"Code": "BadRequestError", "Message": f"header x-api-key '{KEY}' is not valid"})
    result = run_cli("--json", "status", "prod", "web", env=settings(server), cwd=workdir)
    assert result.returncode == 3
    assert KEY not in result.output
    assert "header x-api-key '***' is not valid" in result.stderr
    assert json.loads(result.stdout)["Code"] == "BadRequestError"  # --json: the error body too, redacted


def test_names_are_percent_encoded_into_the_path(server: ScriptedServer, workdir: Path) -> None:
    server.answer(404, {"Code": "NotFoundError", "Message": "no such service"})
    result = run_cli("export", "prod", "../web?x=1", env=settings(server), cwd=workdir)
    assert result.returncode == 3
    assert server.received[0].path == "/services/prod/..%2Fweb%3Fx%3D1/description"


def fan_out_answer(cluster: str, dry_run: bool) -> dict[str, Any]:
    """A POST /apply answer that moved one service, `web`, of `cluster`."""
    moved = {
        **DRY_RUN_ANSWER,
        "cluster": cluster,
        "dryRun": dry_run,
        "taskDefinition": {"family": "web", "revision": 2},
    }
    return {"changed": True, "cluster": cluster, "dryRun": dry_run, "services": [moved]}


def test_a_cluster_that_fails_after_others_were_applied_still_shows_what_they_changed(
    server: ScriptedServer, workdir: Path
) -> None:
    for cluster in ("blue", "green"):
        (workdir / f"{cluster}.yaml").write_text(f"cluster: {cluster}\nservice: web\ncontainers:\n  app: repo:2\n")
    server.answer(200, fan_out_answer("blue", True))
    server.answer(200, fan_out_answer("green", True))
    server.answer(200, fan_out_answer("blue", False))
    server.answer(502, {"Code": "BadGatewayError", "Message": "UpdateService failed: InternalFailure"})

    result = run_cli("apply", "blue.yaml", "green.yaml", env=settings(server), cwd=workdir)

    assert result.returncode == 4
    assert "blue/web" in result.stdout  # the change the first cluster made is shown, not lost
    assert "already applied: cluster(s) blue" in result.stderr


def test_the_client_checks_the_same_body_limit_as_the_service() -> None:
    from chalicelib.entrypoints.respond import MAX_BODY_BYTES as SERVICE_LIMIT

    assert MAX_BODY_BYTES == SERVICE_LIMIT
