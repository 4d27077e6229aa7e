"""--wait against the real service, with the outcome decided by the test.

This local service's deployments never complete on their own (a rollout of an
hour). While the client waits, a test writes the outcome into the deployment's
record in the state table, as the `deployment_events` function does when ECS
reports it; the status route judges a record's final or failed outcome first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CLUSTER, IMAGE, SERVICE, connection_env, finish, local_service, run_cli, start_cli, state_table

from scripts.local_aws import LocalRun

TABLE = "ecs-image-updater-state"
PARTITION = f"SERVICE#{CLUSTER}/{SERVICE}"


@pytest.fixture(scope="module")
def held_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """A local service whose deployments stay IN_PROGRESS until a test says otherwise."""
    yield from local_service(tmp_path_factory, rollout_seconds=3600)


def deploy_and_wait(service: LocalRun, tag: str, cwd: Path, *extra: str) -> Any:
    """Start `deploy --wait` onto IMAGE:`tag` and let it run."""
    return start_cli(
        "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:{tag}", "--wait", *extra,
        env=connection_env(service), cwd=cwd,
    )  # fmt: skip


def record_of_image(service: LocalRun, image: str, timeout: float = 20) -> dict[str, Any]:
    """The deployment record of the update to `image`, once the service has written it."""
    dynamodb = state_table(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :records)",
            ExpressionAttributeValues={":pk": {"S": PARTITION}, ":records": {"S": "RECORD#"}},
            ConsistentRead=True,
        )["Items"]
        for item in items:
            images = [c["M"]["image"]["S"] for c in item.get("containers", {}).get("L", [])]
            if image in images and "deploymentId" in item:
                return dict(item)
        time.sleep(0.2)
    raise AssertionError(f"no record of a deployment of {image}")


def set_outcome(service: LocalRun, record: dict[str, Any], outcome: str, reason: str) -> None:
    """Write `outcome` into the record, as deployment_events does when ECS reports one."""
    state_table(service).update_item(
        TableName=TABLE,
        Key={"pk": record["pk"], "sk": record["sk"]},
        UpdateExpression="SET outcome = :outcome, outcomeReason = :reason, outcomeAt = :at",
        ExpressionAttributeValues={
            ":outcome": {"S": outcome},
            ":reason": {"S": reason},
            ":at": {"S": "2026-12-01T10:00:00.000Z"},
        },
    )


@pytest.mark.parametrize(
    ("outcome", "exit_code"),
    [("COMPLETED", 0), ("FAILED", 1), ("ROLLED_BACK", 1)],
)
def test_the_exit_code_follows_the_outcome_of_the_deployment(
    held_service: LocalRun, workdir: Path, outcome: str, exit_code: int
) -> None:
    tag = f"4.0.{exit_code}-{outcome.lower().replace('_', '-')}"
    waiting = deploy_and_wait(held_service, tag, workdir)
    record = record_of_image(held_service, f"{IMAGE}:{tag}")
    set_outcome(held_service, record, outcome, f"ECS said {outcome.lower()} (set by the test)")
    result = finish(waiting)
    assert result.returncode == exit_code, result.output
    assert f"test-cluster/web: {outcome} after" in result.stdout
    assert record["deploymentId"]["S"] in result.stdout
    if exit_code:
        assert f"ECS said {outcome.lower()} (set by the test)" in result.stdout
    assert held_service.api_key not in result.output


def test_a_deployment_superseded_by_a_newer_one_is_a_failure(held_service: LocalRun, workdir: Path) -> None:
    waiting = deploy_and_wait(held_service, "5.0.0", workdir)
    first = record_of_image(held_service, f"{IMAGE}:5.0.0")
    newer = run_cli(
        "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:5.0.1",
        env=connection_env(held_service), cwd=workdir,
    )  # fmt: skip
    assert newer.returncode == 0, newer.output
    result = finish(waiting)
    assert result.returncode == 1, result.output
    assert "test-cluster/web: SUPERSEDED after" in result.stdout
    assert first["deploymentId"]["S"] in result.stdout
    assert "replaced by" in result.stdout  # the verdict's "replaced by deployment …" or the record's "… a newer one"


def test_a_deployment_still_going_when_time_runs_out_is_exit_code_2(held_service: LocalRun, workdir: Path) -> None:
    started = time.monotonic()
    result = finish(deploy_and_wait(held_service, "6.0.0", workdir, "--timeout", "3s"))
    assert result.returncode == 2, result.output
    assert re.search(r"timed out after [3-9]s waiting for test-cluster/web", result.stderr)
    assert re.search(r"test-cluster/web: IN_PROGRESS still going after [3-9]s", result.stdout)
    assert 3 <= time.monotonic() - started < 15


def test_a_rollback_is_followed_too(held_service: LocalRun, workdir: Path) -> None:
    assert run_cli(
        "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:7.0.0",
        env=connection_env(held_service), cwd=workdir,
    ).returncode == 0  # fmt: skip
    waiting = start_cli("rollback", CLUSTER, SERVICE, "--wait", env=connection_env(held_service), cwd=workdir)
    record = _newest_rollback(held_service)
    set_outcome(held_service, record, "ROLLED_BACK", "tasks failed to start")
    result = finish(waiting)
    assert result.returncode == 1, result.output
    assert "ROLLED_BACK" in result.stdout
    assert "tasks failed to start" in result.stdout


def _newest_rollback(service: LocalRun, timeout: float = 20) -> dict[str, Any]:
    dynamodb = state_table(service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :records)",
            ExpressionAttributeValues={":pk": {"S": PARTITION}, ":records": {"S": "RECORD#"}},
            ScanIndexForward=False,
            ConsistentRead=True,
        )["Items"]
        rollbacks = [item for item in items if item["action"]["S"] == "rollback" and "deploymentId" in item]
        if rollbacks:
            return dict(rollbacks[0])
        time.sleep(0.2)
    raise AssertionError("no record of a rollback")
