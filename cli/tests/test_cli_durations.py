"""Durations on the command line, and elapsed time as people read it."""

from __future__ import annotations

import argparse

import pytest
from ecs_image_updater_cli.durations import duration_argument, format_elapsed, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2m30s", 150), ("45", 45), (" 3S ", 3), ("1.5m", 90)],
)
def test_durations_are_read_in_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "15 m", "5x", "-5s", "1d", "0s", "0", "s15", "25h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|24h"):
        parse_duration(text)


def test_a_bad_duration_is_a_usage_error_that_shows_how_to_write_one() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="like 90s, 15m, 1h"):
        duration_argument("soon")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (7.9, "7s"), (65, "1m05s"), (900, "15m"), (3723, "1h02m03s"), (-3, "0s")],
)
def test_elapsed_time_reads_as_hours_minutes_seconds(seconds: float, shown: str) -> None:
    assert format_elapsed(seconds) == shown
