"""A headless Chromium (Debian's, driven by its own chromedriver) and `make dev`'s servers, once per module."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.local_aws import LocalRun, local_run
from tests.dashboard.chromium import CHROMEDRIVER, CHROMIUM, SCREENSHOTS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "expects_refusal: the test makes the browser log a 403 on purpose")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """The embedded AWS with the workload, `chalice local` and the queue's consumer, as `make dev` runs them."""
    log_path = tmp_path_factory.mktemp("dashboard-run") / "servers.log"
    with log_path.open("wb") as log, local_run(log=log.fileno(), rollout_seconds=2) as run:
        yield run


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium, headless, with its console log kept; nothing is downloaded (the system's driver, offline)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never fetches a browser or a driver
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    browser.downloads = downloads  # where the page's downloads land
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
