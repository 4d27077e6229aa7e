"""Cold start: importing the app in a fresh interpreter, and the size of the deployment package."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import PROJECT_DIR, REGION

IMPORTS = {
    "python -c pass": "pass",
    "import boto3": "import boto3",
    "import app": "import app",
    "import ecs_deploy.cli": "import ecs_deploy.cli",
}


def _child_environment() -> dict[str, str]:
    """The caller's environment without settings that make `import app` refuse or reach AWS."""
    removed = ("LOCAL_API_KEY", "REQUIRE_LOOPBACK_AWS", "AWS_PROFILE")
    env = {k: v for k, v in os.environ.items() if k not in removed and not k.startswith("AWS_ENDPOINT_URL")}
    return {**env, "AWS_DEFAULT_REGION": REGION}


def _seconds_to_run(statement: str, env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=PROJECT_DIR, env=env, check=True)  # noqa: S603 - fixed
    return time.perf_counter() - started


def import_medians_ms(runs: int, imports: Mapping[str, str] = IMPORTS) -> dict[str, float]:
    """Median wall time of `runs` fresh interpreters per statement, in milliseconds, taking turns.

    One unmeasured run of each goes first, so every statement finds its bytecode cached.
    """
    env = _child_environment()
    for statement in imports.values():
        _seconds_to_run(statement, env)
    times: dict[str, list[float]] = {label: [] for label in imports}
    for _ in range(runs):
        for label, statement in imports.items():
            times[label].append(_seconds_to_run(statement, env) * 1000)
    return {label: statistics.median(samples) for label, samples in times.items()}


def deployment_zip_bytes() -> int:
    """Size of `deployment.zip` as `chalice package --stage dev` builds it."""
    chalice = Path(sys.executable).with_name("chalice")
    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        subprocess.run(  # noqa: S603 - fixed command line
            [str(chalice), "package", "--stage", "dev", out],
            cwd=PROJECT_DIR,
            env=_child_environment(),
            check=True,
            capture_output=True,
        )
        return (Path(out) / "deployment.zip").stat().st_size
