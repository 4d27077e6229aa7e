"""Configuration precedence over real HTTP: --url/--api-key, then ECS_IMAGE_UPDATER_*, then API_*, then .api.env.

Each source that should lose holds a URL where nothing listens (exit code 4
if it were used) or a wrong key (exit code 3), so the exit code tells which
source the client took. No key, right or wrong, may show in the output.
"""

from __future__ import annotations

from pathlib import Path

from conftest import CLUSTER, SERVICE, CliResult, run_cli

from scripts.local_aws import LocalRun, free_port

WRONG_KEY = "sk-wrong-key-0123456789"


def dead_url() -> str:
    """A URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


def status(service: LocalRun, cwd: Path, env: dict[str, str], *flags: str) -> CliResult:
    """`status` of the workload with only `env`; no key may show in the output."""
    result = run_cli(*flags, "status", CLUSTER, SERVICE, env=env, cwd=cwd)
    assert service.api_key not in result.output
    assert WRONG_KEY not in result.output
    return result


def write_env_file(directory: Path, url: str, key: str) -> None:
    """An .api.env as scripts/aws_connection.py writes it."""
    (directory / ".api.env").write_text(f"API_URL={url}\nAPI_KEY={key}\nCLUSTER={CLUSTER}\nSERVICE={SERVICE}\n")


def test_flags_win_over_the_environment(quick_service: LocalRun, workdir: Path) -> None:
    env = {"ECS_IMAGE_UPDATER_URL": dead_url(), "ECS_IMAGE_UPDATER_API_KEY": WRONG_KEY}
    result = status(quick_service, workdir, env, "--url", quick_service.api_url, "--api-key", quick_service.api_key)
    assert result.returncode == 0, result.output


def test_the_key_flag_wins_over_a_right_key_in_the_environment(quick_service: LocalRun, workdir: Path) -> None:
    env = {"ECS_IMAGE_UPDATER_URL": quick_service.api_url, "ECS_IMAGE_UPDATER_API_KEY": quick_service.api_key}
    result = status(quick_service, workdir, env, "--api-key", WRONG_KEY)
    assert result.returncode == 3
    assert "403 ForbiddenError" in result.stderr


def test_the_named_variables_win_over_api_url_and_api_key(quick_service: LocalRun, workdir: Path) -> None:
    env = {
        "ECS_IMAGE_UPDATER_URL": quick_service.api_url,
        "ECS_IMAGE_UPDATER_API_KEY": quick_service.api_key,
        "API_URL": dead_url(),
        "API_KEY": WRONG_KEY,
    }
    assert status(quick_service, workdir, env).returncode == 0
    env_with_wrong_named_key = {**env, "API_URL": quick_service.api_url, "API_KEY": quick_service.api_key}
    env_with_wrong_named_key["ECS_IMAGE_UPDATER_API_KEY"] = WRONG_KEY
    assert status(quick_service, workdir, env_with_wrong_named_key).returncode == 3


def test_api_url_and_api_key_win_over_the_env_file(quick_service: LocalRun, workdir: Path) -> None:
    write_env_file(workdir, dead_url(), WRONG_KEY)
    env = {"API_URL": quick_service.api_url, "API_KEY": quick_service.api_key}
    assert status(quick_service, workdir, env).returncode == 0


def test_the_env_file_in_the_current_directory_is_the_last_source(quick_service: LocalRun, workdir: Path) -> None:
    write_env_file(workdir, quick_service.api_url, quick_service.api_key)
    assert status(quick_service, workdir, {}).returncode == 0
    result = status(quick_service, workdir, {"API_KEY": WRONG_KEY})
    assert result.returncode == 3  # the key from API_KEY, the URL still from the file


def test_with_no_configuration_nothing_is_sent_and_the_sources_are_named(
    quick_service: LocalRun, workdir: Path
) -> None:
    result = status(quick_service, workdir, {})
    assert result.returncode == 3
    assert "no service URL" in result.stderr
    assert "ECS_IMAGE_UPDATER_URL" in result.stderr
