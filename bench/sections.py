"""A section of bench/results.md that one benchmark script writes, between its own two markers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def run(
    description: str,
    measure: Callable[[int], Any],
    render: Callable[[Any], str],
    sizes: tuple[int, int],
    quick_help: str,
    markers: tuple[str, str],
) -> int:
    """A benchmark's command line: measure at the full size (`sizes[1]`) and write its section, or with
    --quick at the small size (`sizes[0]`) and only print it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args()
    section = render(measure(sizes[0] if args.quick else sizes[1]))
    print(section)
    if not args.quick:
        write_section(section, *markers)
    return 0
