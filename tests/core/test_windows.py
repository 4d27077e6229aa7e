"""Freeze windows and scopes: weekly wall-clock periods in their own zone, right across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.core.locations import Location
from chalicelib.core.windows import (
    Scope,
    WindowError,
    parse_freeze_request,
    parse_scope,
    parse_window,
    parse_windows,
    windows_in_force,
)

WEEKEND: dict[str, Any] = {
    "name": "weekend",
    "scope": {"clusters": ["prod"]},
    "timezone": "Europe/Berlin",
    "start": "FRI 16:00",
    "end": "MON 08:00",
    "reason": "no deploys over the weekend",
}
HOME = Location("123456789012", "eu-west-1")
PROD = HOME.cluster_arn("prod")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(**changes: Any) -> Any:
    return parse_window({**WEEKEND, **changes}, "freezeWindows[0]")


@pytest.mark.parametrize(
    ("moment", "in_force"),
    [
        # Winter (CET, UTC+1): Friday 16:00 is 15:00 UTC.
        ("2026-01-09T14:59:59", False),
        ("2026-01-09T15:00:00", True),
        ("2026-01-12T06:59:59", True),  # Monday 07:59:59 CET
        ("2026-01-12T07:00:00", False),  # Monday 08:00 CET
        ("2026-01-14T12:00:00", False),  # a Wednesday
    ],
)
def test_a_weekly_window_is_in_force_from_its_start_to_its_end(moment: str, in_force: bool) -> None:
    assert (window().period_at(utc(moment)) is not None) is in_force


def test_a_window_that_spans_the_spring_change_ends_at_eight_in_summer_time() -> None:
    # Berlin moves to CEST (UTC+2) on Sunday 2026-03-29: the window starts at 16:00 CET (15:00 UTC) on Friday
    # and ends at 08:00 CEST (06:00 UTC) on Monday, 63 hours later, not 64.
    start, end = window().next_period(utc("2026-03-28T12:00:00"))
    assert (start, end) == (utc("2026-03-27T15:00:00"), utc("2026-03-30T06:00:00"))
    assert end - start == timedelta(hours=63)
    assert window().period_at(utc("2026-03-30T05:59:00")) is not None
    assert window().period_at(utc("2026-03-30T06:30:00")) is None  # 08:30 CEST; a fixed +01:00 would say frozen


def test_a_window_that_spans_the_autumn_change_ends_at_eight_in_winter_time() -> None:
    # Berlin moves back to CET (UTC+1) on Sunday 2026-10-25: 16:00 CEST Friday is 14:00 UTC, 08:00 CET Monday is
    # 07:00 UTC, 65 hours later.
    start, end = window().next_period(utc("2026-10-24T12:00:00"))
    assert (start, end) == (utc("2026-10-23T14:00:00"), utc("2026-10-26T07:00:00"))
    assert window().period_at(utc("2026-10-26T06:30:00")) is not None  # 07:30 CET: still frozen
    assert window().period_at(utc("2026-10-26T07:00:00")) is None


def test_after_the_change_the_window_keeps_its_wall_clock_start() -> None:
    # The Friday after the spring change: 16:00 CEST is 14:00 UTC.
    assert window().period_at(utc("2026-04-03T13:59:00")) is None
    assert window().period_at(utc("2026-04-03T14:00:00")) is not None


def test_a_window_within_one_day_and_one_that_wraps_the_week() -> None:
    nightly = window(start="TUE 22:00", end="WED 02:00", timezone="UTC")
    assert nightly.period_at(utc("2026-01-06T23:00:00")) is not None  # Tuesday 23:00
    assert nightly.period_at(utc("2026-01-07T02:00:00")) is None
    wraps = window(start="SUN 20:00", end="MON 06:00", timezone="UTC")
    assert wraps.period_at(utc("2026-01-12T05:00:00")) is not None  # Monday early, from Sunday's start
    lunch = window(start="WED 12:00", end="WED 13:00", timezone="America/New_York")
    assert lunch.period_at(utc("2026-01-07T17:30:00")) is not None  # 12:30 EST
    assert lunch.period_at(utc("2026-07-08T17:30:00")) is None  # 13:30 EDT


def test_next_period_is_the_coming_one_when_none_is_in_force() -> None:
    start, end = window().next_period(utc("2026-01-14T12:00:00"))
    assert (start, end) == (utc("2026-01-16T15:00:00"), utc("2026-01-19T07:00:00"))


def test_a_window_applies_to_the_services_of_its_scope_only() -> None:
    windows = [window(), window(name="web-nights", scope={"services": ["web-*"]}, start="MON 00:00", end="SUN 23:59")]
    friday_evening = utc("2026-01-09T18:00:00")
    found = windows_in_force(windows, PROD, "web-front", friday_evening, HOME)
    assert [stop.label for stop in found] == ["window:weekend", "window:web-nights"]
    assert found[0].until == utc("2026-01-12T07:00:00")
    assert windows_in_force(windows, HOME.cluster_arn("staging"), "api", friday_evening, HOME) == []
    # A name means the home account's cluster: prod elsewhere is not in the scope.
    elsewhere = "arn:aws:ecs:eu-west-1:222222222222:cluster/prod"
    assert [s.label for s in windows_in_force(windows, elsewhere, "api", friday_evening, HOME)] == []


@pytest.mark.parametrize(
    ("scope", "cluster", "service", "covered"),
    [
        ({}, PROD, "web", True),
        ({"clusters": ["prod"]}, PROD, "web", True),
        ({"clusters": ["prod"]}, HOME.cluster_arn("staging"), "web", False),
        ({"services": ["web"]}, HOME.cluster_arn("staging"), "web", True),
        ({"services": ["web"]}, PROD, "api", False),
        ({"clusters": ["prod"], "services": ["web"]}, PROD, "web", True),
        ({"clusters": ["prod"], "services": ["web"]}, PROD, "api", False),
        ({"clusters": ["prod"], "services": ["web"]}, HOME.cluster_arn("staging"), "web", False),
        (
            {"clusters": ["arn:aws:ecs:*:222222222222:cluster/*"]},
            "arn:aws:ecs:us-east-1:222222222222:cluster/x",
            "a",
            True,
        ),
    ],
)
def test_a_scope_covers_a_service_when_its_cluster_and_its_name_are_in_it(
    scope: dict[str, Any], cluster: str, service: str, covered: bool
) -> None:
    assert parse_scope(scope, "scope", patterns=True).covers(cluster, service, HOME) is covered


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "FRIDAY 16:00"}, "freezeWindows[0].start must be a weekday and a time such as 'FRI 16:00'"),
        ({"end": "MON 24:00"}, "is not a time of day"),
        ({"end": "FRI 16:00"}, "start and end are both FRI 16:00"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone this runtime knows"),
        ({"timezone": "../etc/passwd"}, "not an IANA time zone name"),
        ({"scope": {"cluster": ["prod"]}}, "freezeWindows[0].scope has unknown fields ['cluster']"),
        ({"scope": {"clusters": []}}, "freezeWindows[0].scope.clusters must be a non-empty list"),
        ({"scope": None}, "freezeWindows[0].scope must be an object"),
        ({"reason": " "}, "freezeWindows[0].reason must be a non-empty string"),
        ({"pushes": "later"}, "freezeWindows[0].pushes must be one of ['wait', 'drop']"),
        ({"name": "a b"}, "freezeWindows[0].name must be 1 to 64 letters"),
        ({"until": "x"}, "has unknown fields ['until']"),
    ],
)
def test_a_broken_window_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(WindowError) as refused:
        window(**changes)
    assert message in str(refused.value)


def test_a_window_needs_every_field_and_a_unique_name() -> None:
    incomplete = {key: value for key, value in WEEKEND.items() if key != "timezone"}
    with pytest.raises(WindowError, match=r"freezeWindows\[0\] has no 'timezone'"):
        parse_windows([incomplete], "freezeWindows")
    with pytest.raises(WindowError, match=r"window names must be unique; \['weekend'\]"):
        parse_windows([WEEKEND, WEEKEND], "freezeWindows")


NOW = utc("2026-05-04T10:00:00")
LATEST = NOW + timedelta(days=90)


def test_a_freeze_request_is_read_with_its_defaults() -> None:
    body = {"scope": {"clusters": ["prod"]}, "until": "2026-05-04T14:00:00+02:00", "reason": "launch"}
    request = parse_freeze_request(body, NOW, LATEST, 50)
    assert request.scope == Scope(("prod",), None)
    assert request.until == utc("2026-05-04T12:00:00")
    assert (request.reason, request.pushes) == ("launch", "wait")
    assert parse_freeze_request({**body, "scope": {}}, NOW, LATEST, 50).scope.everything


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"until": "2026-05-04T09:00:00Z"}, "'until' (2026-05-04T09:00:00Z) has passed"),
        ({"until": "2026-12-04T09:00:00Z"}, "is after 2026-08-02T10:00:00Z"),
        ({"until": "2026-05-05T09:00:00"}, "'until' must say its offset"),
        ({"until": "tomorrow"}, "is not an ISO 8601 time"),
        ({"until": 1780000000}, "'until' must be an ISO 8601 time"),
        ({"reason": ""}, "'reason' must be a non-empty string"),
        ({"reason": "x" * 501}, "at most 500 characters"),
        ({"pushes": "keep"}, "'pushes' must be one of ['wait', 'drop']"),
        ({"scope": {"clusters": ["prod-*"]}}, "is a pattern; a freeze names clusters and services exactly"),
        ({"scope": {"services": ["prod/web"]}}, "names services by name"),
        ({"scope": {"clusters": [f"c{i}" for i in range(51)]}}, "lists 51 entries; at most 50"),
        ({"scope": []}, "'scope' must be an object"),
        ({"extra": 1}, "unknown field(s) ['extra']"),
    ],
)
def test_a_broken_freeze_request_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    body = {"scope": {}, "until": "2026-05-05T09:00:00Z", "reason": "launch", **changes}
    with pytest.raises(WindowError) as refused:
        parse_freeze_request(body, NOW, LATEST, 50)
    assert message in str(refused.value)


def test_a_freeze_request_needs_scope_until_and_reason() -> None:
    for missing in ("scope", "until", "reason"):
        body = {"scope": {}, "until": "2026-05-05T09:00:00Z", "reason": "launch"}
        del body[missing]
        with pytest.raises(WindowError, match=f"'{missing}' is required"):
            parse_freeze_request(body, NOW, LATEST, 50)
