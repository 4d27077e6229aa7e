"""--wait-until against the real local run: `chalice local` on moto's server, the client as a process.

These tests need issue 24's server core and the local ECS's service deployments:
the status route must answer `lifecycleStage` for a deployment, and the local ECS
must move its deployments through ECS's lifecycle stages. Against a local run
without them they fail, saying so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLUSTER, IMAGE, SERVICE, connection_env, local_service, run_cli
from ecs_image_updater_cli.stages import LIFECYCLE_STAGES, stage_reached

from scripts.local_aws import LocalRun

ROLLOUT_SECONDS = 20  # long enough for the polls (2 s, 3 s, 4.5 s, ...) to see the stages move
PROGRESS = re.compile(r"^\[\S+\] test-cluster/web deployment (\S+) ([A-Z_]+)(?: at ([A-Z_]+))?", re.MULTILINE)


@pytest.fixture(scope="module")
def staged_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """A local service whose deployments take ROLLOUT_SECONDS to complete, moving through their stages."""
    yield from local_service(tmp_path_factory, rollout_seconds=ROLLOUT_SECONDS)


def test_deploy_wait_until_bake_time_stops_at_the_first_poll_at_bake_time_or_later(
    staged_service: LocalRun, workdir: Path
) -> None:
    """Needs the local ECS's service deployments (issue 24): stages in the status route's verdict.

    The client stops at the first poll that sees the deployment at BAKE_TIME or a later stage while it is
    still in progress; if the polls never catch it there, completion ends the wait. Either way it exits 0,
    the stages it printed only move forward, and the service agrees afterwards.
    """
    result = run_cli(
        "deploy", "--cluster", CLUSTER, "--service", SERVICE, "--image", f"{IMAGE}:24.0.0",
        "--wait-until", "bake-time", "--timeout", "2m",
        env=connection_env(staged_service), cwd=workdir, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.output
    assert staged_service.api_key not in result.output
    polls = PROGRESS.findall(result.stdout)
    assert polls, result.output
    stages = [stage for _id, _outcome, stage in polls if stage]
    assert stages, f"the local run reported no lifecycle stage (no service deployments yet?):\n{result.stdout}"
    assert all(stage in LIFECYCLE_STAGES for stage in stages)
    positions = [LIFECYCLE_STAGES.index(stage) for stage in stages]
    assert positions == sorted(positions), stages

    deployment_id, last_outcome, last_stage = polls[-1]
    final = result.stdout.splitlines()[-1]
    if last_outcome == "IN_PROGRESS":
        assert stage_reached("BAKE_TIME", last_stage), final
        assert final.startswith("test-cluster/web: reached BAKE_TIME after "), final
        assert final.endswith(f"(deployment {deployment_id}, IN_PROGRESS at {last_stage})")
        earlier = [stage for _id, outcome, stage in polls[:-1] if outcome == "IN_PROGRESS"]
        assert not any(stage_reached("BAKE_TIME", stage) for stage in earlier)  # it stopped at the first one
    else:
        assert last_outcome == "COMPLETED", final
        assert final.startswith("test-cluster/web: COMPLETED after "), final

    status = run_cli(
        "status", CLUSTER, SERVICE, "--deployment", deployment_id, "--json",
        env=connection_env(staged_service), cwd=workdir,
    )  # fmt: skip
    assert status.returncode == 0, status.output
    verdict = json.loads(status.stdout)["deployment"]
    assert verdict["outcome"] == "COMPLETED" or stage_reached("BAKE_TIME", verdict["lifecycleStage"]), verdict
