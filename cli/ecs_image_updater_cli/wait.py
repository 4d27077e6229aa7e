"""--wait: follow the deployments a command started to their outcome, by polling the status route.

`GET /services/{cluster}/{service}?deployment=<id>` judges one deployment:
IN_PROGRESS, COMPLETED, FAILED, ROLLED_BACK or SUPERSEDED (a newer deployment
replaced it; counted as failed, since what was asked for is not what runs).
Polls back off from 2 s to 10 s; a 429 waits at least its Retry-After; a few
failed polls in a row (5xx, no answer) are tolerated before giving up.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ecs_image_updater_cli.api import ApiClient, path_of
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.durations import format_elapsed
from ecs_image_updater_cli.exits import ExitCode, TryAgainLaterError, UnavailableError
from ecs_image_updater_cli.render import change_results

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED_OUTCOMES = frozenset({"FAILED", "ROLLED_BACK", "SUPERSEDED"})
FIRST_POLL_INTERVAL_SECONDS = 2.0
LONGEST_POLL_INTERVAL_SECONDS = 10.0
POLL_INTERVAL_GROWTH = 1.5
FAILED_POLLS_TOLERATED = 3
DEFAULT_TIMEOUT = "15m"


@dataclass(frozen=True)
class StartedDeployment:
    """A deployment a command started: the service it runs on and ECS's deployment id.

    The id is None when the service changed but UpdateService reported no
    deployment; then the service's newest deployment is followed instead.
    """

    cluster: str
    service: str
    deployment_id: str | None

    @property
    def label(self) -> str:
        """`cluster/service`."""
        return f"{self.cluster}/{self.service}"

    @property
    def shown_id(self) -> str:
        """The deployment id, or what stands for it when there is none."""
        return self.deployment_id or "(the newest)"


@dataclass
class FollowedDeployment:
    """What the latest poll said about one started deployment."""

    started: StartedDeployment
    outcome: str = IN_PROGRESS
    reason: str | None = None
    running_count: int | None = None
    desired_count: int | None = None
    status_body: dict[str, Any] | None = None
    settled_after: float | None = None

    @property
    def settled(self) -> bool:
        """True once the outcome is final: completed, or one of the failed ones."""
        return self.outcome == COMPLETED or self.outcome in FAILED_OUTCOMES

    def tasks(self) -> str:
        """`1/2 tasks running`."""
        return f"{_count(self.running_count)}/{_count(self.desired_count)} tasks running"


@dataclass(frozen=True)
class WaitResult:
    """Every followed deployment when waiting ended, and how long it took."""

    followed: tuple[FollowedDeployment, ...]
    elapsed: float
    timed_out: bool = field(default=False)

    @property
    def exit_code(self) -> ExitCode:
        """1 if any failed (or was rolled back or superseded), else 2 if any is still going, else 0."""
        if any(item.outcome in FAILED_OUTCOMES for item in self.followed):
            return ExitCode.FAILED
        if any(not item.settled for item in self.followed):
            return ExitCode.TIMED_OUT
        return ExitCode.DONE


def started_deployments(bodies: Sequence[Mapping[str, Any]]) -> list[StartedDeployment]:
    """The deployment of each service that a command's answers say was changed or redeployed."""
    found: list[StartedDeployment] = []
    for body in bodies:
        for result in change_results(body):
            if result.get("dryRun"):
                continue
            deployment = result.get("deployment")
            deployment_id = deployment.get("id") if isinstance(deployment, Mapping) else None
            if not deployment_id and not result.get("changed"):
                continue  # nothing changed and nothing redeployed: nothing to wait for
            cluster = result.get("cluster") or body.get("cluster")
            found.append(
                StartedDeployment(
                    str(cluster), str(result.get("service")), str(deployment_id) if deployment_id else None
                )
            )
    return found


class LineReporter:
    """Progress for logs: one line each time a deployment's outcome or task count changes."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last: dict[StartedDeployment, tuple[str, int | None, int | None]] = {}

    def seen(self, followed: FollowedDeployment, elapsed: float) -> None:
        """A poll answered for `followed`."""
        state = (followed.outcome, followed.running_count, followed.desired_count)
        if self._last.get(followed.started) == state:
            return
        self._last[followed.started] = state
        self._console.progress(f"[{format_elapsed(elapsed)}] {_line(followed)}")

    def tick(self, followed: Sequence[FollowedDeployment], elapsed: float) -> None:
        """Time passes between polls: nothing to say in a log."""

    def finish(self) -> None:
        """Waiting is over."""


class LiveReporter:
    """Progress for a terminal: one line, rewritten in place, with tasks and elapsed time."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._announced: set[StartedDeployment] = set()

    def seen(self, followed: FollowedDeployment, elapsed: float) -> None:
        """A poll answered for `followed`: a settled deployment gets a line that stays."""
        if followed.settled and followed.started not in self._announced:
            self._announced.add(followed.started)
            self._console.end_live()
            self._console.progress(f"[{format_elapsed(elapsed)}] {_line(followed)}")

    def tick(self, followed: Sequence[FollowedDeployment], elapsed: float) -> None:
        """Rewrite the live line with every deployment still going."""
        going = [item for item in followed if not item.settled]
        if going:
            parts = [f"{item.started.label} {item.outcome} {item.tasks()}" for item in going]
            self._console.live(f"waiting {format_elapsed(elapsed)}: " + "; ".join(parts))

    def finish(self) -> None:
        """Clear the live line."""
        self._console.end_live()


def wait_for(
    client: ApiClient,
    started: Sequence[StartedDeployment],
    timeout_seconds: float,
    reporter: LineReporter | LiveReporter,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll each started deployment until every one is settled or `timeout_seconds` have passed."""
    began = clock()
    deadline = began + timeout_seconds
    followed = [FollowedDeployment(item) for item in started]
    interval = FIRST_POLL_INTERVAL_SECONDS
    failed_polls = 0
    try:
        while True:
            pause = interval
            for item in (item for item in followed if not item.settled):
                try:
                    _poll(client, item)
                except TryAgainLaterError as limited:
                    pause = max(pause, limited.retry_after or interval)
                    continue
                except UnavailableError:
                    failed_polls += 1
                    if failed_polls > FAILED_POLLS_TOLERATED:
                        raise
                    continue
                failed_polls = 0
                if item.settled:
                    item.settled_after = clock() - began
                reporter.seen(item, clock() - began)
            remaining = deadline - clock()
            if all(item.settled for item in followed) or remaining <= 0:
                break
            _pause(min(pause, remaining), followed, reporter, began, clock, sleep)
            interval = min(interval * POLL_INTERVAL_GROWTH, LONGEST_POLL_INTERVAL_SECONDS)
    finally:
        reporter.finish()
    timed_out = not all(item.settled for item in followed)
    return WaitResult(tuple(followed), clock() - began, timed_out)


def _poll(client: ApiClient, item: FollowedDeployment) -> None:
    started = item.started
    target = path_of("services", started.cluster, started.service)
    if started.deployment_id is not None:
        target += "?" + urlencode({"deployment": started.deployment_id})
    body = client.send("GET", target, None)
    verdict = body.get("deployment") if started.deployment_id is not None else {"outcome": body.get("outcome")}
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("outcome"), str):
        raise UnavailableError(f"the status of {started.label} has no verdict on deployment {started.shown_id}")
    deployments = [d for d in body.get("deployments") or [] if isinstance(d, Mapping)]
    if started.deployment_id is None:
        listed = deployments[0] if deployments else body  # newest first
    else:
        listed = next((d for d in deployments if d.get("id") == started.deployment_id), body)
    item.outcome = str(verdict["outcome"])
    item.reason = verdict.get("reason") if isinstance(verdict.get("reason"), str) else None
    item.running_count = _integer(listed.get("runningCount"))
    item.desired_count = _integer(listed.get("desiredCount"))
    item.status_body = body


def _pause(
    seconds: float,
    followed: Sequence[FollowedDeployment],
    reporter: LineReporter | LiveReporter,
    began: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """Sleep `seconds` in slices of at most one, so a live line can show the time passing."""
    until = clock() + seconds
    reporter.tick(followed, clock() - began)
    while (left := until - clock()) > 0:
        sleep(min(left, 1.0))
        reporter.tick(followed, clock() - began)


def report_outcome(console: Console, result: WaitResult) -> None:
    """The last word on each deployment (its final status body, for --json), and on the wait as a whole."""
    for item in result.followed:
        if console.json_output:
            if item.status_body is not None:
                console.json(item.status_body)
            continue
        when = (
            f"after {format_elapsed(item.settled_after)}"
            if item.settled_after is not None
            else f"still going after {format_elapsed(result.elapsed)}"
        )
        reason = f": {item.reason}" if item.reason and item.outcome in FAILED_OUTCOMES else ""
        console.out(f"{item.started.label}: {item.outcome} {when} (deployment {item.started.shown_id}){reason}")
    if result.timed_out:
        going = ", ".join(item.started.label for item in result.followed if not item.settled)
        console.err(f"timed out after {format_elapsed(result.elapsed)} waiting for {going}")


def follow(
    console: Console,
    client: ApiClient,
    bodies: Sequence[Mapping[str, Any]],
    timeout_seconds: float,
) -> int:
    """Wait for what `bodies` started (none started: done) and return the exit code of the outcome."""
    started = started_deployments(bodies)
    if not started:
        if not console.json_output:
            console.out("Nothing to wait for: no deployment was started.")
        return ExitCode.DONE
    if not console.json_output:
        console.out(f"Waiting up to {format_elapsed(timeout_seconds)} for {len(started)} deployment(s).")
    reporter = LiveReporter(console) if console.progress_is_live() else LineReporter(console)
    result = wait_for(client, started, timeout_seconds, reporter)
    report_outcome(console, result)
    return result.exit_code


def _line(item: FollowedDeployment) -> str:
    reason = f": {item.reason}" if item.reason and item.outcome in FAILED_OUTCOMES else ""
    return f"{item.started.label} deployment {item.started.shown_id} {item.outcome}, {item.tasks()}{reason}"


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    """--wait and --timeout, for the commands that start deployments."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help="follow the deployments started to their outcome (exit 0 completed, 1 failed, 2 timed out)",
    )
