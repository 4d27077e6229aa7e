"""The GitHub Action in action.yml: its inputs, the key kept off command lines, and its deploy step run for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import IMAGE, client_environment, running_image

from scripts.local_aws import PROJECT_DIR, LocalRun

ACTION = yaml.safe_load((PROJECT_DIR / "action.yml").read_text())
STEPS = ACTION["runs"]["steps"]
INPUT_REFERENCE = re.compile(r"\$\{\{\s*inputs\.([A-Za-z0-9_-]+)\s*\}\}")


def test_it_is_a_composite_action_with_the_inputs_of_a_deploy() -> None:
    assert ACTION["runs"]["using"] == "composite"
    inputs = ACTION["inputs"]
    assert {name for name, spec in inputs.items() if spec.get("required")} == {
        "url",
        "api-key",
        "cluster",
        "services",
        "image",
    }
    assert inputs["container"]["required"] is False
    assert inputs["timeout"]["default"] == "15m"
    assert inputs["wait-until"]["default"] == "completed"
    assert inputs["auth"]["default"] == "key"


def test_it_installs_the_client_from_the_actions_own_checkout() -> None:
    install = STEPS[0]["run"]
    assert 'package="$GITHUB_ACTION_PATH/cli"' in install
    assert 'if [ "$INPUT_AUTH" = "iam" ]; then package="$package[iam]"; fi' in install
    assert 'pip install --quiet --disable-pip-version-check "$package"' in install
    assert STEPS[0]["env"] == {"INPUT_AUTH": "${{ inputs.auth }}"}
    assert "GITHUB_PATH" in install


def test_no_input_is_written_into_a_script_and_the_key_travels_in_an_env_var() -> None:
    for step in STEPS:
        assert "${{" not in step["run"]  # inputs in a script's text could inject shell code
    deploy_step = STEPS[1]
    assert deploy_step["env"]["ECS_IMAGE_UPDATER_API_KEY"] == "${{ inputs.api-key }}"
    assert "--api-key" not in deploy_step["run"]
    assert 'ecs-image-updater "${args[@]}"' in deploy_step["run"]
    assert "--wait" in deploy_step["run"]


def run_deploy_step(
    inputs: dict[str, str], cwd: Path, job_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The deploy step's script in bash, with its env as GitHub Actions would fill it from `inputs`, in a job
    whose environment has `job_env` too (what configure-aws-credentials exports, say)."""
    step = STEPS[1]
    given = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()} | inputs

    def filled(value: Any) -> str:
        """`value` with each inputs reference replaced as GitHub Actions would."""
        return INPUT_REFERENCE.sub(lambda reference: given[reference.group(1)], str(value))

    env = client_environment({**(job_env or {}), **{name: filled(value) for name, value in step["env"].items()}})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # where pip put the client
    bash = shutil.which("bash")
    assert bash is not None, "the action's steps run in bash"
    return subprocess.run(  # noqa: S603 - the action's own script
        [bash, "-c", step["run"]], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def inputs(quick_service: LocalRun) -> dict[str, str]:
    """The action's inputs for the quick local service."""
    return {
        "url": quick_service.api_url,
        "api-key": quick_service.api_key,
        "cluster": quick_service.cluster,
        "services": quick_service.service,
        "image": f"{IMAGE}:8.0.0",
    }


def test_the_deploy_step_rolls_the_service_and_waits(
    quick_service: LocalRun, inputs: dict[str, str], workdir: Path
) -> None:
    finished = run_deploy_step({**inputs, "services": f"\n  {quick_service.service}  \n", "timeout": "2m"}, workdir)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "Waiting up to 2m for 1 deployment(s)." in finished.stdout
    assert "test-cluster/web: COMPLETED after" in finished.stdout
    assert running_image(quick_service) == f"{IMAGE}:8.0.0"
    assert quick_service.api_key not in finished.stdout + finished.stderr


def test_services_separated_by_commas_and_newlines_move_together(
    quick_service: LocalRun, inputs: dict[str, str], workdir: Path
) -> None:
    before = running_image(quick_service)
    finished = run_deploy_step({**inputs, "services": "web,\nghost", "image": f"{IMAGE}:8.0.1"}, workdir)
    assert finished.returncode == 3
    assert "service 'ghost' was not found" in finished.stderr  # one request for both: nothing moved
    assert running_image(quick_service) == before


def test_the_wait_until_input_stops_waiting_at_a_stage(
    quick_service: LocalRun, inputs: dict[str, str], workdir: Path
) -> None:
    finished = run_deploy_step({**inputs, "wait-until": "bake-time", "image": f"{IMAGE}:8.0.3"}, workdir)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "reached BAKE_TIME" in finished.stdout or "COMPLETED after" in finished.stdout
    # The input reaches the client: a stage ECS does not have is refused before anything is sent.
    refused = run_deploy_step({**inputs, "wait-until": "lunch-time", "image": f"{IMAGE}:8.0.4"}, workdir)
    assert refused.returncode == 3
    assert "bake-time" in refused.stderr  # the valid stages are named


def test_the_container_input_is_passed_on(quick_service: LocalRun, inputs: dict[str, str], workdir: Path) -> None:
    finished = run_deploy_step({**inputs, "container": "sidecar", "image": f"{IMAGE}:8.0.2"}, workdir)
    assert finished.returncode == 3
    assert "sidecar" in finished.stderr


def test_with_auth_iam_the_deploy_step_signs_with_the_jobs_aws_credentials(
    iam_service: LocalRun, workdir: Path
) -> None:
    inputs = {
        "url": iam_service.api_url,
        "api-key": iam_service.api_key,
        "cluster": iam_service.cluster,
        "services": iam_service.service,
        "image": f"{IMAGE}:8.1.0",
        "auth": "iam",
    }
    # What aws-actions/configure-aws-credentials exports after assuming the role with GitHub's OIDC token.
    job = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    finished = run_deploy_step(inputs, workdir, job)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert running_image(iam_service) == f"{IMAGE}:8.1.0"
    unsigned = run_deploy_step({**inputs, "auth": "key", "image": f"{IMAGE}:8.1.1"}, workdir, job)
    assert unsigned.returncode == 3
    assert "not signed with AWS Signature Version 4" in unsigned.stderr
