"""What verifying an image costs a change: POST /update with VERIFY_IMAGES=require against =off.

.venv/bin/python bench/verify_cost.py          # 60 changes each; rewrites the verify section of bench/results.md
.venv/bin/python bench/verify_cost.py --quick  # 5 changes each; prints only

Every AWS call (ECS, the state table, ECR) takes at least the simulated round
trip (30 ms by default: bench/hooks.py), moto's own work included. Each change
rolls onto a tag never looked up before (each is in moto's ECR), so every
verified change asks ECR once: no answer is reused. Verified and unverified
changes alternate, each on a service of its own.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chalice.test import Client

from bench.hooks import CallLog, SimulatedRoundTrip, operations
from bench.sections import run
from bench.world import CLUSTER, REPOSITORY, bench_world
from chalicelib.aws import clients
from tests.conftest import API_KEY, PROJECT_DIR, REGION

SECTION_START = "<!-- verify cost: written by bench/verify_cost.py -->"
SECTION_END = "<!-- end of verify cost -->"
MARKERS = (SECTION_START, SECTION_END)
UNVERIFIED, VERIFIED = "web-unverified", "web-verified"
MODES = {UNVERIFIED: "off", VERIFIED: "require"}


@dataclass
class VerifyCost:
    """Wall time and calls of each kind of change."""

    round_trip_ms: float
    seconds: dict[str, list[float]] = field(default_factory=lambda: {UNVERIFIED: [], VERIFIED: []})
    calls: dict[str, Counter[str]] = field(default_factory=lambda: {UNVERIFIED: Counter(), VERIFIED: Counter()})
    changes: int = 0

    def median_ms(self, service: str) -> float:
        """The median wall time of a change, in ms."""
        return statistics.median(self.seconds[service]) * 1000

    @property
    def ratio(self) -> float:
        """Verified over unverified, by median."""
        return self.median_ms(VERIFIED) / self.median_ms(UNVERIFIED)


def measure(changes: int, round_trip_ms: float = 30.0) -> VerifyCost:
    """`changes` changes of each kind, alternating."""
    cost = VerifyCost(round_trip_ms, changes=changes)
    tags = [f"2.{number}" for number in range(2 * changes)]
    with (
        _quiet_request_log(),
        bench_world([UNVERIFIED, VERIFIED]),
        Client(_app(), stage_name="dev", project_dir=str(PROJECT_DIR)) as app,
    ):
        _push(tags)
        log, round_trip = CallLog(), SimulatedRoundTrip()
        for client in (clients.ecs_client(), clients.dynamodb_client(), clients.regional_client("ecr", REGION)):
            log.watch(client)
            round_trip.attach(client)
        round_trip.seconds = round_trip_ms / 1000
        for number in range(changes):
            for index, service in enumerate((UNVERIFIED, VERIFIED)):
                tag = tags[2 * number + index]
                os.environ["VERIFY_IMAGES"] = MODES[service]
                started = time.perf_counter()
                calls = log.calls_made_by(lambda service=service, tag=tag: _change(app, service, tag))
                cost.seconds[service].append(time.perf_counter() - started)
                cost.calls[service].update(operations(calls))
    return cost


def render(cost: VerifyCost) -> str:
    """The section of bench/results.md."""
    per_change = {service: {op: n / cost.changes for op, n in sorted(cost.calls[service].items())} for service in MODES}
    return "\n".join(
        [
            SECTION_START,
            "## What verifying the image costs a change",
            "",
            f"`POST /update` of one service, {cost.changes} changes each way, alternating, every AWS call taking at "
            f"least {cost.round_trip_ms:g} ms (ECS, the state table and ECR alike); each change rolls onto a tag "
            "never looked up before, so each verified change asks ECR (`BatchGetImage`) once.",
            "",
            "| | VERIFY_IMAGES=off | VERIFY_IMAGES=require |",
            "|---|---|---|",
            f"| calls per change | {_calls(per_change[UNVERIFIED])} | {_calls(per_change[VERIFIED])} |",
            f"| median wall time | {cost.median_ms(UNVERIFIED):.0f} ms | {cost.median_ms(VERIFIED):.0f} ms |",
            f"| verified / unverified | | **{cost.ratio:.2f}×** |",  # noqa: RUF001 - the multiplication sign
            "",
            "The lookup starts with the request's first read and runs alongside the DescribeServices and "
            "DescribeTaskDefinition the change makes anyway, so it adds a call but no round trip in a row. "
            "Measured with `bench/verify_cost.py`.",
            SECTION_END,
            "",
        ]
    )


@contextmanager
def _quiet_request_log() -> Iterator[None]:
    """No request log line on the terminal while measuring (the level is put back after)."""
    logger = logging.getLogger("ecs_image_updater.requests")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _app() -> Any:
    from app import app

    return app


def _push(tags: list[str]) -> None:
    """Put an image for each tag into moto's ECR (the bench's repository)."""
    from tests.deploy.test_verify import ecr_push

    for tag in tags:
        ecr_push(tag, REPOSITORY.rsplit("/", 1)[-1])


def _change(app: Any, service: str, tag: str) -> None:
    body = json.dumps({"cluster": CLUSTER, "service": service, "image": REPOSITORY, "tag": tag, "container": "app"})
    headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
    response = app.http.post("/update", headers=headers, body=body)
    if response.status_code != 200:
        raise RuntimeError(f"POST /update answered {response.status_code}: {response.body!r}")


def _calls(per_change: dict[str, float]) -> str:
    return ", ".join(f"{operation} {count:g}" for operation, count in per_change.items())


def main() -> int:
    return run(__doc__.splitlines()[0], measure, render, (5, 60), "5 changes each, printed only", MARKERS)


if __name__ == "__main__":
    sys.exit(main())
