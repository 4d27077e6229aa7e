"""`stop`: the request it sends, what it prints, and with --wait the exit code of the outcome it asked for.

The client runs as a process against a scripted server (conftest.server) that
answers as the service's stop and status routes do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import ScriptedServer, run_cli
from ecs_image_updater_cli.stop import stop_path

KEY = "sk-stop-0123456789abcdef"
STOP = ("stop", "prod", "web", "ecs-svc/123")
STOP_ROUTE = "/services/prod/web/deployments/ecs-svc%2F123/stop"
STATUS_ROUTE = "/services/prod/web?deployment=ecs-svc%2F123"


def accepted(action: str) -> dict[str, Any]:
    """The service's 202 answer to a stop with `action`."""
    return {
        "cluster": "prod",
        "service": "web",
        "deploymentId": "ecs-svc/123",
        "serviceDeploymentArn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/abc",
        "action": action,
        "principal": "a1b2c3d4e5",
        "requestedAt": "2026-12-01T10:00:00.000Z",
    }


def judged(outcome: str, ecs_status: str, reason: str | None = None) -> dict[str, Any]:
    """The status body judging ecs-svc/123 `outcome`, ECS's own status `ecs_status`."""
    return {
        "cluster": "prod",
        "service": "web",
        "deployments": [{"id": "ecs-svc/123", "runningCount": 1, "desiredCount": 2}],
        "deployment": {
            "id": "ecs-svc/123",
            "outcome": outcome,
            "reason": reason,
            "lifecycleStage": "SCALE_UP",
            "strategy": "ROLLING",
            "ecsStatus": ecs_status,
            "serviceDeploymentArn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/abc",
            "traffic": None,
        },
    }


def stop(server: ScriptedServer, workdir: Path, *options: str) -> Any:
    """`ecs-image-updater stop prod web ecs-svc/123` with `options`, against the scripted server."""
    env = {"ECS_IMAGE_UPDATER_URL": server.url, "ECS_IMAGE_UPDATER_API_KEY": KEY}
    return run_cli(*STOP, *options, env=env, cwd=workdir)


def test_the_deployment_id_is_one_segment_of_the_path() -> None:
    assert stop_path("prod", "web", "ecs-svc/123") == STOP_ROUTE
    assert stop_path("prod", "web/x", "../ecs-svc") == "/services/prod/web%2Fx/deployments/..%2Fecs-svc/stop"


def test_stop_asks_for_a_rollback_by_default(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, accepted("rollback"))
    result = stop(server, workdir)
    assert result.returncode == 0, result.output
    [request] = server.received  # no --wait: nothing polled
    assert (request.method, request.path) == ("POST", STOP_ROUTE)
    assert json.loads(request.body) == {"action": "rollback"}
    assert request.headers["x-api-key"] == KEY
    assert result.stdout.splitlines()[0] == "Asked ECS to roll back deployment ecs-svc/123 of prod/web."
    assert "requested by a1b2c3d4e5, at 2026-12-01T10:00:00.000Z" in result.stdout


def test_stop_abort_asks_to_stop_without_rolling_back(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, accepted("abort"))
    result = stop(server, workdir, "--abort")
    assert result.returncode == 0, result.output
    assert json.loads(server.received[0].body) == {"action": "abort"}
    assert result.stdout.splitlines()[0] == (
        "Asked ECS to stop deployment ecs-svc/123 of prod/web where it is, without rolling back (abort)."
    )


def test_stop_json_prints_the_services_answer(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, accepted("rollback"))
    result = stop(server, workdir, "--json")
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout) == accepted("rollback")


def test_stopping_a_finished_deployment_is_refused_with_the_services_message(
    server: ScriptedServer, workdir: Path
) -> None:
    server.answer(409, {"Code": "ConflictError", "Message": "deployment 'ecs-svc/123' has already finished"})
    result = stop(server, workdir, "--wait")
    assert result.returncode == 3, result.output
    assert "has already finished" in result.stderr
    assert len(server.received) == 1  # a refusal without Retry-After is not tried again, and nothing is polled


def test_stopping_an_unknown_deployment_is_refused(server: ScriptedServer, workdir: Path) -> None:
    server.answer(404, {"Code": "NotFoundError", "Message": "deployment 'ecs-svc/123' is not known"})
    result = stop(server, workdir)
    assert result.returncode == 3
    assert "404 NotFoundError" in result.stderr


def test_stop_wait_follows_the_rollback_until_ecs_has_finished_it(server: ScriptedServer, workdir: Path) -> None:
    reason = "stopped by a1b2c3d4e5: rolled back"
    server.answer(202, accepted("rollback"))
    server.answer(200, judged("ROLLED_BACK", "ROLLBACK_IN_PROGRESS", reason))
    server.answer(200, judged("ROLLED_BACK", "ROLLBACK_SUCCESSFUL", reason))
    result = stop(server, workdir, "--wait")
    assert result.returncode == 0, result.output
    assert [request.path for request in server.received] == [STOP_ROUTE, STATUS_ROUTE, STATUS_ROUTE]
    assert "for 1 deployment(s) to end ROLLED_BACK." in result.stdout
    assert "ROLLED_BACK at SCALE_UP (ROLLING, ECS ROLLBACK_IN_PROGRESS), 1/2 tasks running" in result.stdout
    assert re.search(
        rf"^prod/web: ROLLED_BACK after \d+s \(deployment ecs-svc/123, at SCALE_UP\): {reason}$",
        (result.stdout),
        re.MULTILINE,
    )


def test_stop_abort_wait_is_exit_0_when_the_deployment_ends_stopped(server: ScriptedServer, workdir: Path) -> None:
    server.answer(202, accepted("abort"))
    server.answer(200, judged("STOPPED", "STOPPED", "stopped by a1b2c3d4e5"))
    result = stop(server, workdir, "--abort", "--wait")
    assert result.returncode == 0, result.output
    assert "prod/web: STOPPED after" in result.stdout
    assert result.stdout.rstrip().endswith(": stopped by a1b2c3d4e5")


def test_stop_wait_is_exit_1_when_the_deployment_ends_otherwise_than_asked(
    server: ScriptedServer, workdir: Path
) -> None:
    server.answer(202, accepted("abort"))
    server.answer(200, judged("COMPLETED", "SUCCESSFUL"))
    result = stop(server, workdir, "--abort", "--wait")
    assert result.returncode == 1, result.output
    assert "prod/web: COMPLETED after" in result.stdout


def test_stop_help_documents_its_exit_codes(workdir: Path) -> None:
    shown = run_cli("stop", "--help", env={}, cwd=workdir)
    assert shown.returncode == 0
    assert "stop --wait: 0 when the deployment ended as asked" in shown.stdout
    assert "1 when it ended otherwise" in shown.stdout
    assert "--abort" in shown.stdout
