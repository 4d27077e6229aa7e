"""Where the client finds the service and its key: flag, then ECS_IMAGE_UPDATER_*, then API_*, then .api.env."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from ecs_image_updater_cli.config import Connection, candidate_keys, read_env_file, resolve_connection
from ecs_image_updater_cli.exits import ExitCode, RefusedError
from ecs_image_updater_cli.main import main

FLAG = ("https://flag.example.com", "flag-key")
NAMED = {"ECS_IMAGE_UPDATER_URL": "https://named.example.com", "ECS_IMAGE_UPDATER_API_KEY": "named-key"}
GENERIC = {"API_URL": "https://generic.example.com", "API_KEY": "generic-key"}
FILE_LINES = "API_URL=https://file.example.com/api\nAPI_KEY=file-key\nCLUSTER=test-cluster\n"


@pytest.fixture
def with_env_file(tmp_path: Path) -> Path:
    """A directory holding an .api.env as scripts/aws_connection.py writes it."""
    (tmp_path / ".api.env").write_text(FILE_LINES)
    return tmp_path


def test_flags_win_over_every_other_source(with_env_file: Path) -> None:
    found = resolve_connection(*FLAG, {**NAMED, **GENERIC}, with_env_file)
    assert (found.url, found.api_key) == FLAG


def test_the_named_variables_win_over_the_generic_ones_and_the_file(with_env_file: Path) -> None:
    found = resolve_connection(None, None, {**NAMED, **GENERIC}, with_env_file)
    assert (found.url, found.api_key) == ("https://named.example.com", "named-key")


def test_the_generic_variables_win_over_the_file(with_env_file: Path) -> None:
    found = resolve_connection(None, None, GENERIC, with_env_file)
    assert (found.url, found.api_key) == ("https://generic.example.com", "generic-key")


def test_the_env_file_is_the_last_source(with_env_file: Path) -> None:
    found = resolve_connection(None, None, {}, with_env_file)
    assert (found.url, found.api_key) == ("https://file.example.com/api", "file-key")


def test_url_and_key_are_each_taken_from_the_first_source_that_has_it(with_env_file: Path) -> None:
    found = resolve_connection(None, None, {"ECS_IMAGE_UPDATER_URL": "https://named.example.com"}, with_env_file)
    assert (found.url, found.api_key) == ("https://named.example.com", "file-key")


def test_an_empty_variable_counts_as_unset(with_env_file: Path) -> None:
    found = resolve_connection(None, None, {"ECS_IMAGE_UPDATER_API_KEY": "  ", "API_KEY": ""}, with_env_file)
    assert found.api_key == "file-key"


def test_a_trailing_slash_is_dropped(tmp_path: Path) -> None:
    assert resolve_connection("https://x.example.com/api/", "k", {}, tmp_path).url == "https://x.example.com/api"


def test_the_env_file_reads_as_aws_connection_writes_it_and_tolerates_shell_habits(tmp_path: Path) -> None:
    path = tmp_path / ".api.env"
    path.write_text("# written by hand\n\nexport API_URL='https://q.example.com'\nAPI_KEY=\"a=b\"\nnot a line\n")
    assert read_env_file(path) == {"API_URL": "https://q.example.com", "API_KEY": "a=b"}


def test_a_missing_env_file_is_no_setting(tmp_path: Path) -> None:
    assert read_env_file(tmp_path / ".api.env") == {}


def test_no_url_anywhere_is_refused_and_names_the_sources(tmp_path: Path) -> None:
    with pytest.raises(RefusedError) as refused:
        resolve_connection(None, "k", {}, tmp_path)
    assert refused.value.exit_code == ExitCode.REFUSED
    for source in ("--url", "ECS_IMAGE_UPDATER_URL", "API_URL", ".api.env"):
        assert source in refused.value.message


def test_no_key_anywhere_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RefusedError, match="no API key"):
        resolve_connection("https://x.example.com", None, {}, tmp_path)


@pytest.mark.parametrize(
    "url",
    ["x.example.com", "ftp://x.example.com", "https://", "https://x.example.com?k=v", "https://u:p@x.example.com"],
)
def test_a_url_that_is_not_a_plain_http_base_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(RefusedError, match="URL"):
        resolve_connection(url, "k", {}, tmp_path)


def test_every_offered_key_is_a_candidate_to_hide(with_env_file: Path) -> None:
    keys = candidate_keys("flag-key", {**NAMED, **GENERIC}, with_env_file)
    assert sorted(keys) == ["file-key", "flag-key", "generic-key", "named-key"]


@pytest.mark.parametrize(
    ("url", "in_clear"),
    [
        ("http://127.0.0.1:8000", False),
        ("http://localhost:8000", False),
        ("http://[::1]:8000", False),
        ("https://x.example.com", False),
        ("http://x.example.com", True),
    ],
)
def test_the_key_is_said_to_travel_in_clear_only_over_http_to_another_host(url: str, in_clear: bool) -> None:
    assert Connection(url, "k").sends_key_in_clear is in_clear


def test_the_key_is_not_in_the_connections_repr() -> None:
    assert "s3cr3t-value" not in repr(Connection("https://x.example.com", "s3cr3t-value"))


@pytest.mark.parametrize(
    ("flag_key", "environ", "named"),
    [
        (None, {"ECS_IMAGE_UPDATER_API_KEY": "named-key", "API_URL": "https://elsewhere.example.com"}, "API_URL"),
        ("flag-key", {"API_URL": "https://elsewhere.example.com"}, "API_URL"),
        (None, {"ECS_IMAGE_UPDATER_API_KEY": "named-key"}, "the API_URL line of .api.env"),
    ],
)
def test_a_key_is_never_sent_to_a_url_from_a_later_source(
    with_env_file: Path, flag_key: str | None, environ: dict[str, str], named: str
) -> None:
    with pytest.raises(RefusedError) as refused:
        resolve_connection(None, flag_key, environ, with_env_file)
    assert f"but the URL from {named}" in refused.value.message
    assert "named-key" not in refused.value.message
    assert "flag-key" not in refused.value.message


@pytest.mark.parametrize(
    "given",
    [["--api_key", "sk-typo-0123456789"], ["--api_key=sk-typo-0123456789"], ["--apikey", "sk-typo-0123456789"]],
)
def test_a_misspelt_key_flag_is_refused_without_printing_the_key(tmp_path: Path, given: list[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["status", "c", "s", *given], stdout=out, stderr=err, environ={}, directory=tmp_path)
    assert code == ExitCode.REFUSED
    assert "unrecognized arguments" in err.getvalue()  # argparse names what it refused...
    assert "sk-typo-0123456789" not in out.getvalue() + err.getvalue()  # ...with the key masked
