"""A section of bench/results.md that one benchmark script writes, between its own two markers."""

from __future__ import annotations

from pathlib import Path

RESULTS_FILE = Path(__file__).resolve().parent / "results.md"


def write_section(section: str, start: str, end: str, results: Path = RESULTS_FILE) -> None:
    """Put `section` (which begins with `start` and ends with `end`) into the results, replacing the one there."""
    text = results.read_text() if results.exists() else ""
    if start in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end + "\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text)
