"""What the browser tests need, and what `make dev` says about the dashboard; no browser needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.local_aws import LocalRun, instructions
from tests.dashboard import chromium


def a_run(auth_mode: str = "key") -> LocalRun:
    api = "http://127.0.0.1:8000"
    return LocalRun("http://127.0.0.1:5000", api, "local-dev-key", "test-cluster", "web", (), auth_mode)


def test_without_chromium_the_skip_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chromium, "CHROMIUM", Path("/nonexistent/chromium"))
    missing = chromium.browser_missing()
    assert missing is not None
    assert missing.startswith("Chromium is not installed: apt-get install -y chromium chromium-driver")
    assert "/nonexistent/chromium" in missing


def test_make_dev_prints_the_dashboard_url_and_the_key() -> None:
    printed = instructions(a_run()).splitlines()
    assert "# Dashboard: open http://127.0.0.1:8000/ in a browser and type the key local-dev-key" in printed


def test_make_dev_with_iam_sign_in_says_the_dashboard_needs_a_key_run() -> None:
    [line] = [line for line in instructions(a_run("iam")).splitlines() if line.startswith("# Dashboard:")]
    assert "http://127.0.0.1:8000/" in line
    assert "without AUTH_MODE=iam" in line
