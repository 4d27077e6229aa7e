"""Durations on the command line (`90s`, `15m`, `1h`, `1h30m`, `45`) and elapsed time for people."""

from __future__ import annotations

import argparse
import re

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smh])")
_MAX_SECONDS = 24 * 3600


def parse_duration(text: str) -> float:
    """Seconds in `text`: parts like `90s`, `15m`, `1h` (`1h30m` adds them up); a bare number is seconds."""
    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", cleaned):
        seconds = float(cleaned)
    else:
        if not cleaned or _PART.sub("", cleaned):
            raise ValueError(f"'{text}' is not a duration: write it like 90s, 15m, 1h or 1h30m")
        seconds = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"'{text}' is not a duration longer than zero")
    if seconds > _MAX_SECONDS:
        raise ValueError(f"'{text}' is longer than 24h")
    return seconds


def format_elapsed(seconds: float) -> str:
    """`7s`, `1m05s`, `15m`, `1h02m03s`: whole seconds, for a progress line (zero seconds left out after minutes)."""
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m" if hours else (f"{minutes}m" if minutes else "")
    if secs or not text:
        text += f"{secs:02d}s" if text else f"{secs}s"
    return text


def duration_argument(text: str) -> float:
    """parse_duration for argparse: a bad duration is a usage error that says how to write one."""
    try:
        return parse_duration(text)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None
