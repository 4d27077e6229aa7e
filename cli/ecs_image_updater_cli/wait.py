"""--wait: follow the deployments a command started to their outcome (or a stage), by polling the status route.

`GET /services/{cluster}/{service}?deployment=<id>` judges one deployment:
IN_PROGRESS, COMPLETED, FAILED, ROLLED_BACK, STOPPED (stopped by a person) or
SUPERSEDED (a newer deployment replaced it). The wait's goal says which ends it
well: COMPLETED for deploy, apply and rollback (every other final outcome is a
failure, since what was asked for is not what runs), the outcome `stop` asked
for, or with --wait-until a lifecycle stage reached. The verdict's
`lifecycleStage`, `strategy`, `traffic` and `ecsStatus` are shown as they move;
a server that reports none of them is followed as before, on the outcome alone.
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
from ecs_image_updater_cli.stages import COMPLETED_TARGET, VALID_TARGETS, stage_reached, wait_target_argument

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
ROLLED_BACK = "ROLLED_BACK"
STOPPED = "STOPPED"
# Final outcomes other than COMPLETED: a failure for a command that deploys, and printed with their reason.
FAILED_OUTCOMES = frozenset({"FAILED", ROLLED_BACK, "SUPERSEDED", STOPPED})
FINAL_OUTCOMES = FAILED_OUTCOMES | {COMPLETED}
# ECS statuses the ROLLED_BACK outcome covers before the rollback has finished.
ROLLBACK_UNDER_WAY = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"})
# ECS statuses that the outcome does not show (IN_PROGRESS or ROLLED_BACK): named in progress lines.
UNSHOWN_ECS_STATUSES = frozenset({"PENDING", "STOP_REQUESTED", *ROLLBACK_UNDER_WAY})
FIRST_POLL_INTERVAL_SECONDS = 2.0
LONGEST_POLL_INTERVAL_SECONDS = 10.0
POLL_INTERVAL_GROWTH = 1.5
FAILED_POLLS_TOLERATED = 3
DEFAULT_TIMEOUT = "15m"


@dataclass(frozen=True)
class WaitGoal:
    """What ends a wait well: one of the `succeeded` outcomes, or (--wait-until) `stage` or a later one reached.

    Any other final outcome is a failure.
    """

    succeeded: frozenset[str] = frozenset({COMPLETED})
    stage: str | None = None

    @property
    def aim(self) -> str:
        """` to reach BAKE_TIME (or complete)`, ` to end ROLLED_BACK`; nothing for a plain --wait."""
        if self.stage is not None:
            return f" to reach {self.stage} (or complete)"
        if self.succeeded != {COMPLETED}:
            return " to end " + " or ".join(sorted(self.succeeded))
        return ""


COMPLETION = WaitGoal()


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
    """What the latest poll said about one started deployment, and what the wait for it aims at."""

    started: StartedDeployment
    outcome: str = IN_PROGRESS
    reason: str | None = None
    running_count: int | None = None
    desired_count: int | None = None
    status_body: dict[str, Any] | None = None
    settled_after: float | None = None
    goal: WaitGoal = COMPLETION
    stage: str | None = None
    strategy: str | None = None
    ecs_status: str | None = None
    production_traffic: float | None = None
    test_traffic: float | None = None

    @property
    def failed(self) -> bool:
        """True once the outcome is final and not one the goal asked for."""
        return self.outcome in FINAL_OUTCOMES and self.outcome not in self.goal.succeeded

    @property
    def reached_stage(self) -> bool:
        """True when the deployment, still in progress, is at the goal's stage or a later one."""
        target = self.goal.stage
        return target is not None and self.outcome == IN_PROGRESS and stage_reached(target, self.stage)

    @property
    def succeeded(self) -> bool:
        """True once the goal is met: an outcome it asked for, or its stage reached."""
        if self.outcome in self.goal.succeeded:
            # A rollback asked for (stop) is done when ECS has finished it, not when it was requested.
            return not (self.outcome == ROLLED_BACK and self.ecs_status in ROLLBACK_UNDER_WAY)
        return self.reached_stage

    @property
    def settled(self) -> bool:
        """True once there is nothing more to wait for: the goal met, or a failure."""
        return self.failed or self.succeeded

    def tasks(self) -> str:
        """`1/2 tasks running`."""
        return f"{_count(self.running_count)}/{_count(self.desired_count)} tasks running"

    def state(self) -> str:
        """`IN_PROGRESS at BAKE_TIME (BLUE_GREEN)`: the outcome, with the stage, strategy and ECS status known."""
        text = self.outcome + (f" at {self.stage}" if self.stage else "")
        notes = [note for note in (self.strategy, self.ecs_status_note()) if note]
        return text + (f" ({', '.join(notes)})" if notes else "")

    def progress(self) -> str:
        """`IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT (LINEAR), production traffic 40%, 1/2 tasks running`."""
        parts = [self.state()]
        if self.production_traffic is not None:
            parts.append(f"production traffic {self.production_traffic:g}%")
        if self.test_traffic is not None:
            parts.append(f"test traffic {self.test_traffic:g}%")
        parts.append(self.tasks())
        return ", ".join(parts)

    def reason_shown(self) -> str:
        """`: <reason>` for a final outcome other than COMPLETED (the circuit breaker, the alarm, who stopped it)."""
        return f": {self.reason}" if self.reason and self.outcome in FAILED_OUTCOMES else ""

    def ecs_status_note(self) -> str | None:
        """`ECS ROLLBACK_IN_PROGRESS` when ECS's status says more than the outcome does."""
        return f"ECS {self.ecs_status}" if self.ecs_status in UNSHOWN_ECS_STATUSES else None


@dataclass(frozen=True)
class WaitResult:
    """Every followed deployment when waiting ended, and how long it took."""

    followed: tuple[FollowedDeployment, ...]
    elapsed: float
    timed_out: bool = field(default=False)
    goal: WaitGoal = COMPLETION

    @property
    def exit_code(self) -> ExitCode:
        """1 if any ended otherwise than the goal asked (failed), else 2 if any is still going, else 0."""
        if any(item.failed for item in self.followed):
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
    """Progress for logs: one line each time a deployment's outcome, stage, traffic or task count changes."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._last: dict[StartedDeployment, str] = {}

    def seen(self, followed: FollowedDeployment, elapsed: float) -> None:
        """A poll answered for `followed`."""
        state = _line(followed)
        if self._last.get(followed.started) == state:
            return
        self._last[followed.started] = state
        self._console.progress(f"[{format_elapsed(elapsed)}] {_line(followed)}")

    def tick(self, followed: Sequence[FollowedDeployment], elapsed: float) -> None:
        """Time passes between polls: nothing to say in a log."""

    def finish(self) -> None:
        """Waiting is over."""


class LiveReporter:
    """Progress for a terminal: one line, rewritten in place, with stage, traffic, tasks and elapsed time."""

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
            parts = [f"{item.started.label} {item.progress()}" for item in going]
            self._console.live(f"waiting {format_elapsed(elapsed)}: " + "; ".join(parts))

    def finish(self) -> None:
        """Clear the live line."""
        self._console.end_live()


def wait_for(
    client: ApiClient,
    started: Sequence[StartedDeployment],
    timeout_seconds: float,
    reporter: LineReporter | LiveReporter,
    goal: WaitGoal = COMPLETION,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll each started deployment until every one is settled (as `goal` has it) or `timeout_seconds` have passed."""
    began = clock()
    deadline = began + timeout_seconds
    followed = [FollowedDeployment(item, goal=goal) for item in started]
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
    return WaitResult(tuple(followed), clock() - began, timed_out, goal)


def _poll(client: ApiClient, item: FollowedDeployment) -> None:
    started = item.started
    target = path_of("services", started.cluster, started.service)
    if started.deployment_id is not None:
        target += "?" + urlencode({"deployment": started.deployment_id})
    body = client.send("GET", target, None)
    verdict = _verdict(body, started)
    deployments = [d for d in body.get("deployments") or [] if isinstance(d, Mapping)]
    if started.deployment_id is None:
        listed = deployments[0] if deployments else body  # newest first
    else:
        listed = next((d for d in deployments if d.get("id") == started.deployment_id), body)
    traffic = verdict.get("traffic") if isinstance(verdict.get("traffic"), Mapping) else {}
    item.outcome = str(verdict["outcome"])
    item.reason = _text(verdict.get("reason"))
    item.stage = _text(verdict.get("lifecycleStage"))
    item.strategy = _text(verdict.get("strategy")) or _text(body.get("strategy"))
    item.ecs_status = _text(verdict.get("ecsStatus"))
    item.production_traffic = _percent(traffic.get("production"))
    item.test_traffic = _percent(traffic.get("test"))
    item.running_count = _integer(listed.get("runningCount"))
    item.desired_count = _integer(listed.get("desiredCount"))
    item.status_body = body


def _verdict(body: Mapping[str, Any], started: StartedDeployment) -> Mapping[str, Any]:
    """What a status body says of the followed deployment.

    A named deployment: the `deployment` verdict. The newest: the service's
    `outcome`, with the stage, strategy, traffic, ECS status and reason of its
    newest service deployment (`serviceDeployment`, null or absent on a server
    that cannot read ECS's service deployments).
    """
    if started.deployment_id is not None:
        verdict = body.get("deployment")
    else:
        newest = body.get("serviceDeployment")
        details = dict(newest) if isinstance(newest, Mapping) else {}
        verdict = {**details, "ecsStatus": details.get("status"), "outcome": body.get("outcome")}
    if not isinstance(verdict, Mapping) or not isinstance(verdict.get("outcome"), str):
        raise UnavailableError(f"the status of {started.label} has no verdict on deployment {started.shown_id}")
    return verdict


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
        console.out(final_line(item, result.elapsed))
    if result.timed_out:
        going = ", ".join(item.started.label for item in result.followed if not item.settled)
        console.err(f"timed out after {format_elapsed(result.elapsed)} waiting for {going}{result.goal.aim}")


def final_line(item: FollowedDeployment, elapsed: float) -> str:
    """`prod/web: COMPLETED after 1m12s (deployment ecs-svc/1)`; for --wait-until, the stage it stopped at."""
    when = (
        f"after {format_elapsed(item.settled_after)}"
        if item.settled_after is not None
        else f"still going after {format_elapsed(elapsed)}"
    )
    shown = f"deployment {item.started.shown_id}"
    if item.reached_stage:
        return f"{item.started.label}: reached {item.goal.stage} {when} ({shown}, {item.outcome} at {item.stage})"
    details = [shown]
    if item.stage and item.outcome != COMPLETED:
        details.append(f"at {item.stage}")
    note = item.ecs_status_note()
    if note:
        details.append(note)
    return f"{item.started.label}: {item.outcome} {when} ({', '.join(details)}){item.reason_shown()}"


def follow(
    console: Console,
    client: ApiClient,
    bodies: Sequence[Mapping[str, Any]],
    timeout_seconds: float,
    goal: WaitGoal = COMPLETION,
) -> int:
    """Wait for what the change answers `bodies` started (none started: done); the exit code of the outcome."""
    started = started_deployments(bodies)
    if not started:
        if not console.json_output:
            console.out("Nothing to wait for: no deployment was started.")
        return ExitCode.DONE
    return follow_deployments(console, client, started, timeout_seconds, goal)


def follow_deployments(
    console: Console,
    client: ApiClient,
    started: Sequence[StartedDeployment],
    timeout_seconds: float,
    goal: WaitGoal,
) -> int:
    """Wait for `started` to meet `goal`, showing progress, and return the exit code of the outcome."""
    if not console.json_output:
        console.out(f"Waiting up to {format_elapsed(timeout_seconds)} for {len(started)} deployment(s){goal.aim}.")
    reporter = LiveReporter(console) if console.progress_is_live() else LineReporter(console)
    result = wait_for(client, started, timeout_seconds, reporter, goal)
    report_outcome(console, result)
    return result.exit_code


def _line(item: FollowedDeployment) -> str:
    return f"{item.started.label} deployment {item.started.shown_id} {item.progress()}{item.reason_shown()}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _percent(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def add_wait_arguments(parser: argparse.ArgumentParser, stages: bool = True, wait_help: str | None = None) -> None:
    """--wait, and (for the commands that start deployments) --wait-until; --timeout is every command's."""
    parser.add_argument(
        "--wait",
        action="store_true",
        help=wait_help or "follow the deployments started to their outcome (exit 0 completed, 1 failed, 2 timed out)",
    )
    if stages:
        parser.add_argument(
            "--wait-until",
            type=wait_target_argument,
            metavar="STAGE",
            help=(
                "implies --wait: stop waiting once each deployment is at this lifecycle stage or a later one, "
                f"or has completed; one of {VALID_TARGETS} (default completed)"
            ),
        )


def requested_goal(args: argparse.Namespace) -> WaitGoal | None:
    """What --wait and --wait-until ask to wait for; None when the command is not to wait."""
    target = getattr(args, "wait_until", None)
    if target is not None:
        return WaitGoal(stage=None if target == COMPLETED_TARGET else target)
    return COMPLETION if args.wait else None
