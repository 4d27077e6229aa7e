"""--wait-until: ECS's lifecycle stages, how the command line names them, and a wait that stops at one.

The subprocess tests run the client against a scripted server (conftest.server)
that answers as a service reading ECS's service deployments would.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedServer, run_cli
from ecs_image_updater_cli.main import build_parser, main
from ecs_image_updater_cli.stages import LIFECYCLE_STAGES, parse_wait_target, stage_reached
from ecs_image_updater_cli.wait import COMPLETION, WaitGoal, requested_goal

KEY = "sk-stages-0123456789abcdef"
DEPLOY = ("deploy", "--cluster", "prod", "--service", "web", "--image", "repo:2")


def test_the_stages_are_in_ecs_order() -> None:
    assert LIFECYCLE_STAGES == (
        "RECONCILE_SERVICE",
        "PRE_SCALE_UP",
        "SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
        "BAKE_TIME",
        "CLEAN_UP",
    )


@pytest.mark.parametrize("written", ["bake-time", "BAKE_TIME", "Bake_Time", "bake_time", " BAKE-TIME "])
def test_a_stage_is_named_in_any_case_with_hyphens_or_underscores(written: str) -> None:
    assert parse_wait_target(written) == "BAKE_TIME"


def test_completed_is_a_target_too() -> None:
    assert parse_wait_target("completed") == "COMPLETED"
    assert parse_wait_target("Completed") == "COMPLETED"


def test_an_unknown_stage_is_refused_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="'baked' is not a stage") as refused:
        parse_wait_target("baked")
    for name in ("completed", "reconcile-service", "bake-time", "clean-up"):
        assert name in str(refused.value)


@pytest.mark.parametrize(
    ("stage", "reached"),
    [("BAKE_TIME", True), ("CLEAN_UP", True), ("POST_PRODUCTION_TRAFFIC_SHIFT", False), ("RECONCILE_SERVICE", False)],
)
def test_a_stage_is_reached_at_it_or_at_any_stage_after_it(stage: str, reached: bool) -> None:
    assert stage_reached("BAKE_TIME", stage) is reached


@pytest.mark.parametrize("stage", [None, "", "SOME_STAGE_ECS_ADDS_LATER"])
def test_an_unknown_or_missing_stage_is_never_reached(stage: str | None) -> None:
    assert stage_reached("RECONCILE_SERVICE", stage) is False


@pytest.mark.parametrize(
    ("options", "goal"),
    [
        ((), None),
        (("--wait",), COMPLETION),
        (("--wait-until", "completed"), COMPLETION),
        (("--wait-until", "bake-time"), WaitGoal(stage="BAKE_TIME")),
        (("--wait", "--wait-until", "TEST_TRAFFIC_SHIFT"), WaitGoal(stage="TEST_TRAFFIC_SHIFT")),
    ],
)
def test_wait_until_implies_wait(options: tuple[str, ...], goal: WaitGoal | None) -> None:
    for command in (DEPLOY, ("apply", "web.yaml"), ("rollback", "prod", "web")):
        assert requested_goal(build_parser().parse_args([*command, *options])) == goal


def test_an_unknown_stage_on_the_command_line_is_exit_code_3_naming_the_valid_ones(tmp_path: Path) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main([*DEPLOY, "--wait-until", "soon"], stdout, stderr, environ={}, directory=tmp_path)
    assert code == 3
    assert "'soon' is not a stage to wait until" in stderr.getvalue()
    assert "bake-time" in stderr.getvalue()
    assert stdout.getvalue() == ""


def test_stop_has_no_wait_until(tmp_path: Path) -> None:
    stderr = io.StringIO()
    code = main(["stop", "prod", "web", "ecs-svc/1", "--wait-until", "bake-time"], io.StringIO(), stderr, {}, tmp_path)
    assert code == 3
    assert "unrecognized arguments: --wait-until" in stderr.getvalue()


# --- the client as a process, against a scripted server -----------------------------------------------------

UPDATE_ANSWER = {
    "changed": True,
    "cluster": "prod",
    "service": "web",
    "taskDefinition": {"family": "web", "revision": 2},
    "previousTaskDefinition": {"family": "web", "revision": 1},
    "containers": [{"name": "app", "previousImage": "repo:1", "image": "repo:2"}],
    "deployment": {"id": "ecs-svc/42", "status": "PRIMARY"},
    "serviceStatus": "ACTIVE",
}


def verdict(outcome: str, stage: str | None, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    """The status body judging ecs-svc/42 of a blue/green service `outcome` at lifecycle `stage`."""
    return {
        "cluster": "prod",
        "service": "web",
        "strategy": "BLUE_GREEN",
        "outcome": outcome,
        "deployments": [{"id": "ecs-svc/42", "runningCount": 2, "desiredCount": 2}],
        "deployment": {
            "id": "ecs-svc/42",
            "outcome": outcome,
            "reason": reason,
            "lifecycleStage": stage,
            "strategy": "BLUE_GREEN",
            "ecsStatus": extra.pop("ecsStatus", "IN_PROGRESS"),
            "serviceDeploymentArn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/abc",
            "traffic": None,
            **extra,
        },
    }


def settings(server: ScriptedServer) -> dict[str, str]:
    """The client's settings for the scripted server."""
    return {"ECS_IMAGE_UPDATER_URL": server.url, "ECS_IMAGE_UPDATER_API_KEY": KEY}


def test_deploy_wait_until_bake_time_stops_at_bake_time(server: ScriptedServer, workdir: Path) -> None:
    server.answer(200, UPDATE_ANSWER)
    server.answer(200, verdict("IN_PROGRESS", "SCALE_UP"))
    server.answer(200, verdict("IN_PROGRESS", "BAKE_TIME"))
    server.answer(200, verdict("COMPLETED", "CLEAN_UP", ecsStatus="SUCCESSFUL"))  # never asked for
    result = run_cli(*DEPLOY, "--wait-until", "bake-time", env=settings(server), cwd=workdir)
    assert result.returncode == 0, result.output
    assert [request.path for request in server.received] == [
        "/update",
        "/services/prod/web?deployment=ecs-svc%2F42",
        "/services/prod/web?deployment=ecs-svc%2F42",
    ]
    assert "for 1 deployment(s) to reach BAKE_TIME (or complete)." in result.stdout
    assert "prod/web deployment ecs-svc/42 IN_PROGRESS at SCALE_UP (BLUE_GREEN), 2/2 tasks running" in result.stdout
    assert "prod/web deployment ecs-svc/42 IN_PROGRESS at BAKE_TIME (BLUE_GREEN), 2/2 tasks running" in result.stdout
    assert result.stdout.splitlines()[-1].startswith("prod/web: reached BAKE_TIME after ")
    assert result.stdout.splitlines()[-1].endswith("(deployment ecs-svc/42, IN_PROGRESS at BAKE_TIME)")


def test_deploy_wait_until_bake_time_with_json_prints_the_status_it_stopped_at(
    server: ScriptedServer, workdir: Path
) -> None:
    server.answer(200, UPDATE_ANSWER)
    server.answer(200, verdict("IN_PROGRESS", "BAKE_TIME"))
    result = run_cli(*DEPLOY, "--wait-until", "BAKE_TIME", "--json", env=settings(server), cwd=workdir)
    assert result.returncode == 0, result.output
    answer, final = (json.loads(line) for line in result.stdout.splitlines())
    assert answer["deployment"]["id"] == "ecs-svc/42"
    assert final["deployment"]["lifecycleStage"] == "BAKE_TIME"
    assert "IN_PROGRESS at BAKE_TIME" in result.stderr  # progress on stderr, stdout stays JSON


def test_a_deployment_stopped_by_a_person_fails_a_deploy_wait_with_its_reason(
    server: ScriptedServer, workdir: Path
) -> None:
    reason = "stopped by arn:aws:iam::123456789012:user/alice (abort)"
    server.answer(200, UPDATE_ANSWER)
    server.answer(200, verdict("STOPPED", "SCALE_UP", reason, ecsStatus="STOPPED"))
    result = run_cli(*DEPLOY, "--wait", env=settings(server), cwd=workdir)
    assert result.returncode == 1, result.output
    assert re.search(
        rf"prod/web: STOPPED after \d+s \(deployment ecs-svc/42, at SCALE_UP\): {re.escape(reason)}$",
        (result.stdout),
        re.MULTILINE,
    )


def test_an_alarm_rollback_names_the_alarm(server: ScriptedServer, workdir: Path) -> None:
    reason = "rolled back: CloudWatch alarm 'web-5xx' fired"
    server.answer(200, UPDATE_ANSWER)
    server.answer(200, verdict("ROLLED_BACK", "BAKE_TIME", reason, ecsStatus="ROLLBACK_IN_PROGRESS"))
    result = run_cli(*DEPLOY, "--wait-until", "bake-time", env=settings(server), cwd=workdir)
    assert result.returncode == 1, result.output  # rolled back at BAKE_TIME: the stage does not make it a success
    shown = r"prod/web: ROLLED_BACK after \d+s \(deployment ecs-svc/42, at BAKE_TIME, ECS ROLLBACK_IN_PROGRESS\)"
    assert re.search(f"{shown}: {re.escape(reason)}$", result.stdout, re.MULTILINE)


def test_an_old_server_without_stages_is_followed_to_completion(server: ScriptedServer, workdir: Path) -> None:
    server.answer(200, UPDATE_ANSWER)
    server.answer(
        200,
        {
            "cluster": "prod",
            "service": "web",
            "outcome": "COMPLETED",
            "deployments": [{"id": "ecs-svc/42", "runningCount": 2, "desiredCount": 2}],
            "deployment": {"id": "ecs-svc/42", "outcome": "COMPLETED", "reason": "ECS deployment completed."},
        },
    )
    result = run_cli(*DEPLOY, "--wait-until", "bake-time", env=settings(server), cwd=workdir)
    assert result.returncode == 0, result.output
    assert "[0s] prod/web deployment ecs-svc/42 COMPLETED, 2/2 tasks running" in result.stdout
    assert re.search(r"^prod/web: COMPLETED after \d+s \(deployment ecs-svc/42\)$", result.stdout, re.MULTILINE)
