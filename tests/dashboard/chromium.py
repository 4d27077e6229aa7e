"""Where the browser tests find Debian's Chromium and its driver, and where they put their screenshots."""

from __future__ import annotations

from pathlib import Path

from scripts.local_aws import PROJECT_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = PROJECT_DIR / "build" / "screenshots"
MISSING = "Chromium is not installed: apt-get install -y chromium chromium-driver"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when Chromium and chromedriver are both installed."""
    absent = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    return f"{MISSING} (missing: {', '.join(absent)})" if absent else None
