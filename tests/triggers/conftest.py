"""What every trigger's tests share: functions get their configured time, and moto takes one request at a time."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def one_request_at_a_time(atomic_aws: None) -> None:
    """Services are updated in parallel threads; moto's backends take one request at a time, as AWS's apply each."""


@pytest.fixture(autouse=True)
def functions_get_their_configured_time(lambda_time: None) -> None:
    """The event functions budget their work by the time their context says is left (the test client gives 3 s)."""
