"""Latency per update: contenders take turns (A, B, A, B ...) so machine noise hits every side alike."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.contenders import Contender

CHANGED = "changed"
NO_OP = "no-op"


@dataclass(frozen=True)
class LatencySummary:
    """Median and 95th percentile of one contender's update times, in milliseconds."""

    samples: int
    median_ms: float
    p95_ms: float

    @classmethod
    def of(cls, milliseconds: Sequence[float]) -> LatencySummary:
        """Summarise samples; the p95 is the nearest-rank one (a sample that was actually seen)."""
        ordered = sorted(milliseconds)
        rank = max(1, math.ceil(0.95 * len(ordered)))
        return cls(len(ordered), statistics.median(ordered), ordered[rank - 1])


def interleaved_latencies(
    contenders: Sequence[Contender],
    rounds: int,
    tag_prefix: str,
    between_rounds: Callable[[], None] = lambda: None,
) -> dict[str, dict[str, LatencySummary]]:
    """Time `rounds` changed updates and as many no-op updates per contender, taking turns.

    Round i rolls every contender onto tag `{tag_prefix}.{i}` (a change), then onto
    the same tag again (a no-op); `between_rounds` runs after each round, untimed.
    Returns kind -> contender key -> summary.
    """
    samples: dict[str, dict[str, list[float]]] = {CHANGED: {}, NO_OP: {}}
    for round_number in range(rounds):
        tag = f"{tag_prefix}.{round_number}"
        for kind in (CHANGED, NO_OP):
            for contender in contenders:
                started = time.perf_counter()
                contender.roll_to(tag)
                elapsed_ms = (time.perf_counter() - started) * 1000
                samples[kind].setdefault(contender.key, []).append(elapsed_ms)
        between_rounds()
    return {
        kind: {key: LatencySummary.of(times) for key, times in by_contender.items()}
        for kind, by_contender in samples.items()
    }
