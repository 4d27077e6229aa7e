"""Settings read from the environment, in one place (read per request, so tests can set them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The service's settings for one request."""

    # When set (the `local` stage), the app checks `x-api-key` itself: `chalice local`
    # and the Chalice test client do not enforce `api_key_required`.
    local_api_key: str | None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (the process environment by default)."""
    env = os.environ if environ is None else environ
    return Settings(local_api_key=env.get("LOCAL_API_KEY") or None)
