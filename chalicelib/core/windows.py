"""Freezes as values: what a freeze covers (its scope), the recurring windows of the permissions file, and what
a refused write names (pure: no I/O).

A window is wall-clock time in its own time zone, from a weekday and time to
another (`FRI 16:00` to `MON 08:00`, `Europe/Berlin`): the same local times
every week, whatever daylight-saving time does to their distance in UTC. A
wall time that a change skips (02:30 on the last Sunday of March in Berlin)
is taken as PEP 495 takes it, with the offset before the change; one that
happens twice is its first occurrence.

A scope lists `clusters` and `services`; a service is in it when (no clusters
are listed, or its cluster is) and (no services are listed, or its name is).
The empty scope is everything: the emergency stop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.core.locations import Location
from chalicelib.core.patterns import name_or_arn_matches

WAIT = "wait"
DROP = "drop"
PUSH_MODES = (WAIT, DROP)
WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
WINDOW_FIELDS = ("name", "scope", "timezone", "start", "end", "reason", "pushes")
_REQUIRED = ("name", "scope", "timezone", "start", "end", "reason")
_WEEKLY = re.compile(r"^(?P<day>[A-Za-z]{3})\s+(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WEEK = timedelta(days=7)


class WindowError(ValueError):
    """A window (or a scope) that breaks a rule; the message says which and why."""


@dataclass(frozen=True)
class Scope:
    """What a freeze covers: clusters and services (None: any)."""

    clusters: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None

    @property
    def everything(self) -> bool:
        """The emergency stop: no cluster and no service named."""
        return self.clusters is None and self.services is None

    def covers(self, cluster_arn: str, service: str, home: Location | None = None) -> bool:
        """True when the service (its cluster's ARN, its name or ARN) is in the scope; cluster names mean the
        home account and region's clusters (`home` None: a name matches that name anywhere)."""
        if self.clusters is not None:
            patterns = [p if p.startswith("arn:") or home is None else home.cluster_arn(p) for p in self.clusters]
            if not any(name_or_arn_matches(pattern, cluster_arn) for pattern in patterns):
                return False
        return self.services is None or any(name_or_arn_matches(pattern, service) for pattern in self.services)

    def as_dict(self) -> dict[str, list[str]]:
        """JSON shape: the lists given ({} for everything)."""
        shape: dict[str, list[str]] = {}
        if self.clusters is not None:
            shape["clusters"] = list(self.clusters)
        if self.services is not None:
            shape["services"] = list(self.services)
        return shape


@dataclass(frozen=True)
class WeeklyTime:
    """A weekday (0 Monday) and a wall-clock time."""

    weekday: int
    at: time

    def __str__(self) -> str:
        return f"{WEEKDAYS[self.weekday]} {self.at.strftime('%H:%M')}"

    def minutes(self) -> int:
        """Minutes since Monday 00:00."""
        return self.weekday * 24 * 60 + self.at.hour * 60 + self.at.minute


@dataclass(frozen=True)
class InForce:
    """One freeze that stops a write now: a one-off freeze (its id) or a window (its name), and until when."""

    kind: str  # "freeze" or "window"
    name: str
    reason: str
    until: datetime
    pushes: str = WAIT

    @property
    def label(self) -> str:
        """How a record and a message name it: `freeze:<id>`, `window:<name>`."""
        return f"{self.kind}:{self.name}"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape of a 423's `freezes` entry and of a dry run's."""
        key = "id" if self.kind == "freeze" else "name"
        return {
            "kind": self.kind,
            key: self.name,
            "reason": self.reason,
            "until": iso(self.until),
            "pushes": self.pushes,
        }


@dataclass(frozen=True)
class Window:
    """A recurring freeze of the permissions file."""

    name: str
    scope: Scope
    timezone: str
    start: WeeklyTime
    end: WeeklyTime
    reason: str
    pushes: str = WAIT

    def period_at(self, moment: datetime) -> tuple[datetime, datetime] | None:
        """The (start, end) in UTC of the period `moment` falls in, or None when the window is not in force."""
        start, end = self._period_from(self._last_start(moment))
        instant = moment.astimezone(UTC)
        return (start, end) if start <= instant < end else None

    def next_period(self, moment: datetime) -> tuple[datetime, datetime]:
        """The (start, end) in UTC of the period in force at `moment`, or else of the next one."""
        current = self.period_at(moment)
        if current is not None:
            return current
        local_start = self._last_start(moment)
        return self._period_from(_wall(local_start.date() + WEEK, self.start.at, self.zone))

    @property
    def zone(self) -> ZoneInfo:
        """The window's time zone."""
        return ZoneInfo(self.timezone)

    def in_force(self, until: datetime) -> InForce:
        """The window as a write's refusal names it, with the end of its period."""
        return InForce("window", self.name, self.reason, until, self.pushes)

    def as_dict(self, moment: datetime) -> dict[str, Any]:
        """JSON shape of GET /freezes: the window as written, whether it applies at `moment`, and its period."""
        start, end = self.next_period(moment)
        return {
            "name": self.name,
            "scope": self.scope.as_dict(),
            "timezone": self.timezone,
            "start": str(self.start),
            "end": str(self.end),
            "reason": self.reason,
            "pushes": self.pushes,
            "appliesNow": self.period_at(moment) is not None,
            "periodStart": iso(start),
            "periodEnd": iso(end),
        }

    def _last_start(self, moment: datetime) -> datetime:
        """The latest start (local wall time, aware) at or before `moment`."""
        local = moment.astimezone(self.zone)
        days_back = (local.weekday() - self.start.weekday) % 7
        candidate = _wall(local.date() - timedelta(days=days_back), self.start.at, self.zone)
        if candidate.astimezone(UTC) > moment.astimezone(UTC):
            candidate = _wall(candidate.date() - WEEK, self.start.at, self.zone)
        return candidate

    def _period_from(self, local_start: datetime) -> tuple[datetime, datetime]:
        days = (self.end.weekday - self.start.weekday) % 7
        if days == 0 and self.end.at <= self.start.at:
            days = 7
        local_end = _wall(local_start.date() + timedelta(days=days), self.end.at, self.zone)
        return local_start.astimezone(UTC), local_end.astimezone(UTC)


def windows_in_force(
    windows: Iterable[Window], cluster_arn: str, service: str, moment: datetime, home: Location | None = None
) -> list[InForce]:
    """The windows whose scope covers the service and which are in force at `moment`."""
    found = []
    for window in windows:
        if not window.scope.covers(cluster_arn, service, home):
            continue
        period = window.period_at(moment)
        if period is not None:
            found.append(window.in_force(period[1]))
    return found


def parse_windows(raw: Any, where: str) -> tuple[Window, ...]:
    """The `freezeWindows:` list of the permissions file; WindowError names the entry and the problem."""
    if not isinstance(raw, list):
        raise WindowError(f"{where} must be a list of windows")
    windows = tuple(parse_window(entry, f"{where}[{index}]") for index, entry in enumerate(raw))
    names = [window.name for window in windows]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise WindowError(f"{where}: window names must be unique; {twice} appear more than once")
    return windows


def parse_window(raw: Any, where: str) -> Window:
    """One window of the file."""
    if not isinstance(raw, Mapping):
        raise WindowError(f"{where} must be a mapping with {list(_REQUIRED)} and an optional 'pushes'")
    unknown = sorted(str(key) for key in raw if key not in WINDOW_FIELDS)
    if unknown:
        raise WindowError(f"{where} has unknown fields {unknown}; a window takes {list(WINDOW_FIELDS)}")
    for name in _REQUIRED:
        if name not in raw:
            raise WindowError(f"{where} has no '{name}'")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise WindowError(f"{where}.name must be 1 to 64 letters, digits, '.', '_' or '-', not {name!r}")
    timezone = raw["timezone"]
    if not isinstance(timezone, str) or not timezone.strip():
        raise WindowError(f"{where}.timezone must be an IANA time zone such as 'Europe/Berlin'")
    _zone(timezone.strip(), f"{where}.timezone")
    start, end = weekly_time(raw["start"], f"{where}.start"), weekly_time(raw["end"], f"{where}.end")
    if start == end:
        raise WindowError(f"{where}: start and end are both {start}; a window must end at another time")
    reason = raw["reason"]
    if not isinstance(reason, str) or not reason.strip():
        raise WindowError(f"{where}.reason must be a non-empty string")
    pushes = raw.get("pushes", WAIT)
    if pushes not in PUSH_MODES:
        raise WindowError(f"{where}.pushes must be one of {list(PUSH_MODES)}, not {pushes!r}")
    return Window(
        name=name,
        scope=parse_scope(raw["scope"], f"{where}.scope", patterns=True),
        timezone=timezone.strip(),
        start=start,
        end=end,
        reason=reason.strip(),
        pushes=pushes,
    )


def parse_scope(raw: Any, where: str, *, patterns: bool, limit: int | None = None) -> Scope:
    """A scope: a mapping with optional non-empty `clusters` and `services` lists (`patterns`: globs allowed)."""
    if not isinstance(raw, Mapping):
        raise WindowError(f"{where} must be an object with optional 'clusters' and 'services' lists ({{}}: everything)")
    unknown = sorted(str(key) for key in raw if key not in ("clusters", "services"))
    if unknown:
        raise WindowError(f"{where} has unknown fields {unknown}; a scope takes 'clusters' and 'services'")
    lists = {key: _names(raw[key], f"{where}.{key}", patterns, limit) for key in ("clusters", "services") if key in raw}
    return Scope(lists.get("clusters"), lists.get("services"))


def weekly_time(raw: Any, where: str) -> WeeklyTime:
    """`FRI 16:00`: a weekday's three letters and a 24-hour time."""
    found = _WEEKLY.match(raw.strip()) if isinstance(raw, str) else None
    if found is None or found["day"].upper() not in WEEKDAYS:
        raise WindowError(f"{where} must be a weekday and a time such as 'FRI 16:00', not {raw!r}")
    hour, minute = int(found["hour"]), int(found["minute"])
    if hour > 23 or minute > 59:
        raise WindowError(f"{where}: {raw!r} is not a time of day (00:00 to 23:59)")
    return WeeklyTime(WEEKDAYS.index(found["day"].upper()), time(hour, minute))


def iso(moment: datetime) -> str:
    """An instant as ISO 8601 in UTC, to the second (`2026-03-27T15:00:00Z`)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _names(raw: Any, where: str, patterns: bool, limit: int | None) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise WindowError(f"{where} must be a non-empty list (leave it out for any)")
    if limit is not None and len(raw) > limit:
        raise WindowError(f"{where} lists {len(raw)} entries; at most {limit}")
    # A freeze's names become the keys of its gates (DynamoDB keys hold 2 KB): ECS's names are at most 255
    # characters, their ARNs some 330; a window's patterns only ever match.
    longest = 1600 if patterns else 400
    found: list[str] = []
    for entry in raw:
        if not isinstance(entry, str) or not entry.strip() or len(entry) > longest:
            raise WindowError(f"{where}: every entry must be a non-empty name or ARN, not {_short(entry)}")
        value = entry.strip()
        if not patterns and any(char in value for char in "*?[]"):
            raise WindowError(f"{where}: {_short(value)} is a pattern; a freeze names clusters and services exactly")
        if any(ord(char) < 32 for char in value):
            raise WindowError(f"{where}: {_short(value)} holds a control character")
        if value not in found:
            found.append(value)
    return tuple(found)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        raise WindowError(
            f"{where}: '{name}' is not a time zone this runtime knows (an IANA name such as 'Europe/Berlin')"
        ) from None
    except (ValueError, OSError):
        raise WindowError(f"{where}: '{name}' is not an IANA time zone name such as 'Europe/Berlin'") from None


def _wall(day: date, at: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time on a day in a zone (fold 0: the first of two, the offset before a skipped hour)."""
    return datetime.combine(day, at, tzinfo=zone)


def in_force_until(stops: Sequence[InForce]) -> datetime:
    """When the last of `stops` ends."""
    return max(stop.until for stop in stops)


MAX_REASON = 500
FREEZE_REQUEST_FIELDS = ("scope", "until", "reason", "pushes")
_FREEZE_ID = re.compile(r"^[0-9a-f]{12}$")


@dataclass(frozen=True)
class FreezeRequest:
    """A validated `POST /freezes`: what to freeze, until when, why, and what a push during it becomes."""

    scope: Scope
    until: datetime
    reason: str
    pushes: str = WAIT


def parse_freeze_request(body: Mapping[str, Any], moment: datetime, latest: datetime, max_names: int) -> FreezeRequest:
    """A `POST /freezes` body; WindowError (a 400) names the field and what is wrong with it."""
    unknown = sorted(str(key) for key in body if key not in FREEZE_REQUEST_FIELDS)
    if unknown:
        raise WindowError(f"unknown field(s) {unknown}; a freeze takes {list(FREEZE_REQUEST_FIELDS)}")
    for name in ("scope", "until", "reason"):
        if name not in body:
            raise WindowError(f"'{name}' is required")
    scope = parse_scope(body["scope"], "'scope'", patterns=False, limit=max_names)
    if scope.services is not None and any("/" in s or ":" in s for s in scope.services):
        raise WindowError("'scope.services' names services by name (a cluster goes in 'scope.clusters')")
    until = _instant(body["until"], "'until'")
    if until <= moment:
        raise WindowError(f"'until' ({iso(until)}) has passed; a freeze ends in the future")
    if until > latest:
        raise WindowError(f"'until' ({iso(until)}) is after {iso(latest)}; a freeze lasts at most that long")
    reason = body["reason"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise WindowError(f"'reason' must be a non-empty string of at most {MAX_REASON} characters")
    pushes = body.get("pushes", WAIT)
    if pushes not in PUSH_MODES:
        raise WindowError(f"'pushes' must be one of {list(PUSH_MODES)}")
    return FreezeRequest(scope, until, reason.strip(), pushes)


def freeze_id(value: str) -> str:
    """A freeze id given in the URL path (what `POST /freezes` answered: 12 hex digits)."""
    if not _FREEZE_ID.fullmatch(value):
        raise WindowError("the freeze id must be the 'id' POST /freezes answered with (12 hexadecimal digits)")
    return value


def _instant(raw: Any, where: str) -> datetime:
    if not isinstance(raw, str) or len(raw) > 40:
        raise WindowError(f"{where} must be an ISO 8601 time with its offset, such as '2026-12-24T18:00:00Z'")
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise WindowError(f"{where}: {_short(raw)} is not an ISO 8601 time such as '2026-12-24T18:00:00Z'") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise WindowError(f"{where} must say its offset ('Z' or '+01:00'): {_short(raw)} could be any time zone's")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-05:00 is past the end of time in UTC
        raise WindowError(f"{where}: {_short(raw)} is out of the range of times") from None
