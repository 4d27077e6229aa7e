"""What people read: tables of changes, dry-run diffs, status and history; and the console that hides keys."""

from __future__ import annotations

import io
from typing import Any

from ecs_image_updater_cli import render
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode
from ecs_image_updater_cli.status import status_exit_code

OLD, NEW = "repo/web:1.0", "repo/web:1.1"


def change(service: str = "web", changed: bool = True, **extra: Any) -> dict[str, Any]:
    """An /update answer for `service` of cluster prod."""
    body: dict[str, Any] = {
        "changed": changed,
        "cluster": "prod",
        "service": service,
        "taskDefinition": {"arn": "arn:…:web:7", "family": "web", "revision": 7, "status": "ACTIVE"},
        "previousTaskDefinition": {"arn": "arn:…:web:6", "family": "web", "revision": 6} if changed else None,
        "containers": [{"name": "app", "previousImage": OLD if changed else NEW, "image": NEW}],
        "deployment": {"id": f"ecs-svc/{service}1", "status": "PRIMARY"} if changed else None,
        "serviceStatus": "ACTIVE",
    }
    body.update(extra)
    return body


def test_a_table_aligns_columns_under_their_headers() -> None:
    shown = render.table(["A", "LONGER"], [["wide cell", "x"], ["y", "z"]])
    lines = shown.splitlines()
    assert lines[0] == "A          LONGER"
    assert lines[1] == "wide cell  x"
    assert lines[2] == "y          z"


def test_a_change_shows_revision_and_image_from_to_and_the_deployment() -> None:
    shown = render.change_table([change()])
    row = shown.splitlines()[1]
    assert "prod/web" in row
    assert "web:6 → web:7" in row
    assert f"{OLD} → {NEW}" in row
    assert "ecs-svc/web1" in row


def test_a_no_op_says_nothing_changed() -> None:
    shown = render.change_table([change(changed=False)])
    assert "web:7 (no change)" in shown
    assert f"{NEW} (unchanged)" in shown
    assert render.change_summary([change(changed=False)], dry_run=False) == "0 services changed, 1 already up to date."


def test_a_fan_out_answer_shows_every_service() -> None:
    fan_out = {"changed": True, "cluster": "prod", "services": [change("web"), change("worker", changed=False)]}
    shown = render.change_table([fan_out])
    assert "prod/web" in shown
    assert "prod/worker" in shown
    assert render.change_summary([fan_out], dry_run=False) == "1 service changed, 1 already up to date."


def test_a_forced_redeploy_counts_as_redeployed() -> None:
    redeployed = change(changed=False, deployment={"id": "ecs-svc/9"})
    assert render.change_summary([redeployed], dry_run=False) == "0 services changed, 1 redeployed."


def test_a_dry_run_shows_each_diff_entry_path_from_to() -> None:
    diff = [{"path": "containerDefinitions[app].image", "from": OLD, "to": NEW}]
    preview = change(dryRun=True, diff=diff, taskDefinition={"family": "web", "revision": None})
    shown = render.dry_run_table([preview, change("worker", changed=False, dryRun=True, diff=[])])
    assert "containerDefinitions[app].image" in shown
    assert f"{OLD} → {NEW}" in shown
    assert "prod/worker  -" in shown
    assert "nothing to change" in shown
    assert render.change_summary([preview], dry_run=True).endswith("(dry run: nothing was written)")


def test_a_dry_run_names_the_revision_it_would_register_new() -> None:
    assert render.revision_label({"family": "web", "revision": None}) == "web:new"
    assert render.revision_label(None) == "-"


def test_history_shows_when_who_images_and_outcome() -> None:
    record = {
        "at": "2026-12-01T10:00:00.000Z",
        "action": "update",
        "keyId": "a1b2c3",
        "sourceIp": "203.0.113.9",
        "containers": [{"name": "app", "previousImage": OLD, "image": NEW}],
        "outcome": "COMPLETED",
        "error": None,
    }
    failed = {**record, "outcome": "ERROR", "status": 409, "error": {"Code": "ConflictError", "Message": "busy"}}
    shown = render.history_table({"cluster": "prod", "service": "web", "records": [record, failed]})
    lines = shown.splitlines()
    assert lines[0].split() == ["WHEN", "ACTION", "WHO", "IMAGES", "OUTCOME"]
    assert "2026-12-01T10:00:00.000Z" in lines[1]
    assert "a1b2c3 from 203.0.113.9" in lines[1]
    assert f"{OLD} → {NEW}" in lines[1]
    assert lines[1].endswith("COMPLETED")
    assert lines[2].endswith("ERROR 409 ConflictError: busy")


def test_history_names_the_principal_where_the_record_has_one() -> None:
    role = "arn:aws:sts::123456789012:assumed-role/github-web-ci/GitHubActions"
    record = {"action": "update", "principal": role, "keyId": "a1b2c3", "sourceIp": "203.0.113.9"}
    assert f"{role} from 203.0.113.9" in render.history_table({"records": [record]})


def test_history_of_a_service_never_deployed_says_so() -> None:
    assert "no deployment recorded" in render.history_table({"cluster": "c", "service": "s", "records": []})


def test_history_names_each_container_when_several_changed() -> None:
    record = {
        "containers": [
            {"name": "app", "previousImage": OLD, "image": NEW},
            {"name": "sidecar", "previousImage": "s:1", "image": "s:1"},
        ]
    }
    assert f"app: {OLD} → {NEW}; sidecar: s:1 (unchanged)" in render.history_table({"records": [record]})


def test_status_shows_tasks_revision_images_deployments_and_the_verdict() -> None:
    body = {
        "cluster": "prod",
        "service": "web",
        "status": "ACTIVE",
        "desiredCount": 2,
        "runningCount": 1,
        "pendingCount": 1,
        "taskDefinition": {"family": "web", "revision": 7},
        "containers": [{"name": "app", "image": NEW}],
        "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": "IN_PROGRESS", "runningCount": 1}],
        "outcome": "IN_PROGRESS",
        "deployment": {"id": "ecs-svc/0", "outcome": "SUPERSEDED", "reason": "replaced by deployment ecs-svc/1"},
    }
    shown = render.status_text(body)
    assert shown.splitlines()[0] == "prod/web: ACTIVE, newest deployment IN_PROGRESS"
    assert "1 running / 2 desired (1 pending)" in shown
    assert "web:7" in shown
    assert NEW in shown
    deployment_row = next(line for line in shown.splitlines() if line.startswith("ecs-svc/1 "))
    assert deployment_row.split() == ["ecs-svc/1", "PRIMARY", "IN_PROGRESS", "1/?", "-"]
    assert "deployment ecs-svc/0: SUPERSEDED (replaced by deployment ecs-svc/1)" in shown


def test_status_shows_the_strategy_and_the_newest_service_deployments_stage_traffic_and_alarms() -> None:
    body = {
        "cluster": "prod",
        "service": "web",
        "status": "ACTIVE",
        "strategy": "LINEAR",
        "outcome": "ROLLED_BACK",
        "serviceDeployment": {
            "status": "ROLLBACK_IN_PROGRESS",
            "outcome": "ROLLED_BACK",
            "reason": "alarm 'web-5xx' fired",
            "lifecycleStage": "PRODUCTION_TRAFFIC_SHIFT",
            "traffic": {"production": 30, "test": None},
            "alarms": ["web-5xx"],
        },
        "deployment": {"id": "ecs-svc/1", "outcome": "ROLLED_BACK", "lifecycleStage": "PRODUCTION_TRAFFIC_SHIFT"},
    }
    lines = render.status_text(body).splitlines()
    assert "strategy  LINEAR" in lines
    assert (
        "stage     PRODUCTION_TRAFFIC_SHIFT (ECS ROLLBACK_IN_PROGRESS), production traffic 30%, "
        "alarms fired: web-5xx: alarm 'web-5xx' fired"
    ) in lines
    assert "deployment ecs-svc/1: ROLLED_BACK at PRODUCTION_TRAFFIC_SHIFT" in lines


def test_status_from_a_server_without_service_deployments_shows_no_stage() -> None:
    shown = render.status_text({"cluster": "prod", "service": "web", "serviceDeployment": None})
    assert "strategy" not in shown
    assert "stage" not in shown


def test_status_exits_1_for_a_stopped_deployment_and_0_for_one_baking() -> None:
    assert status_exit_code({"outcome": "IN_PROGRESS", "deployment": {"outcome": "STOPPED"}}) == ExitCode.FAILED
    assert status_exit_code({"outcome": "IN_PROGRESS", "serviceDeployment": {"lifecycleStage": "BAKE_TIME"}}) == 0


def test_history_shows_the_stage_of_a_deployment_in_progress() -> None:
    baking = {"action": "update", "outcome": "IN_PROGRESS", "lifecycleStage": "BAKE_TIME"}
    done = {"action": "update", "outcome": "STOPPED", "lifecycleStage": "SCALE_UP"}
    lines = render.history_table({"records": [baking, done]}).splitlines()
    assert lines[1].endswith("IN_PROGRESS at BAKE_TIME")
    assert lines[2].endswith("STOPPED")


def test_a_stop_says_what_was_asked_and_who_asked() -> None:
    answer = {
        "cluster": "prod",
        "service": "web",
        "deploymentId": "ecs-svc/1",
        "action": "rollback",
        "principal": "a1b2c3",
        "requestedAt": "2026-12-01T10:00:00.000Z",
        "serviceDeploymentArn": None,
    }
    assert render.stop_text(answer) == (
        "Asked ECS to roll back deployment ecs-svc/1 of prod/web.\nrequested by a1b2c3, at 2026-12-01T10:00:00.000Z"
    )
    aborted = render.stop_text({**answer, "action": "abort", "principal": None, "requestedAt": None})
    assert aborted == "Asked ECS to stop deployment ecs-svc/1 of prod/web where it is, without rolling back (abort)."


def test_the_console_replaces_every_secret_on_stdout_and_stderr() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    console = Console(stdout, stderr, ["key-one"])
    console.hide("a-much-longer-key-one")
    console.out("sent key-one and a-much-longer-key-one")
    console.err("refused key-one")
    console.json({"echo": "key-one"})
    assert "key-one" not in stdout.getvalue() + stderr.getvalue()
    assert stdout.getvalue().startswith("sent *** and ***\n")
    assert stderr.getvalue() == "refused ***\n"


def test_the_console_writes_an_ascii_arrow_where_the_stream_cannot_encode_one() -> None:
    raw = io.BytesIO()
    ascii_stream = io.TextIOWrapper(raw, encoding="ascii")
    Console(ascii_stream, ascii_stream).out("a → b")
    ascii_stream.flush()
    assert raw.getvalue() == b"a -> b\n"


def test_progress_goes_to_stderr_when_stdout_carries_json() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    Console(stdout, stderr, json_output=True).progress("waiting")
    assert (stdout.getvalue(), stderr.getvalue()) == ("", "waiting\n")
