"""--wait: which deployments a command started, how they are polled, and what exit code their outcome gives."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, cast

import pytest
from ecs_image_updater_cli.api import ApiClient
from ecs_image_updater_cli.console import Console
from ecs_image_updater_cli.exits import ExitCode, RateLimitedError, RefusedError, UnavailableError
from ecs_image_updater_cli.wait import (
    FollowedDeployment,
    LineReporter,
    LiveReporter,
    StartedDeployment,
    started_deployments,
    wait_for,
)

WEB = StartedDeployment("prod", "web", "ecs-svc/1")
WORKER = StartedDeployment("prod", "worker", "ecs-svc/2")
UNNAMED = StartedDeployment("prod", "api", None)


class FakeClock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.sleeps.append(seconds)
        self.now += seconds


Answer = Callable[[StartedDeployment, int], Any]


class ScriptedService:
    """Answers status polls from a script: for each deployment, a function of the poll number."""

    def __init__(self, clock: FakeClock, scripts: dict[str, Answer]) -> None:
        self.clock = clock
        self.scripts = scripts
        self.polls: list[tuple[float, str]] = []

    def send(self, method: str, target: str, payload: bytes | None) -> dict[str, Any]:
        """Answer one status poll from the script."""
        assert method == "GET"
        assert payload is None
        path, _, query = target.partition("?")
        deployment_id = query.split("=", 1)[1].replace("%2F", "/") if query else None
        started = next(d for d in (WEB, WORKER, UNNAMED) if d.deployment_id == deployment_id)
        assert path == f"/services/{started.cluster}/{started.service}"
        number = sum(1 for _, polled in self.polls if polled == deployment_id)
        self.polls.append((self.clock.now, deployment_id))
        answer = self.scripts[str(deployment_id)](started, number)
        if isinstance(answer, Exception):
            raise answer
        return cast(dict[str, Any], answer)


def status(outcome: str, running: int = 0, desired: int = 2, reason: str | None = None) -> Answer:
    """A status answer judging the polled deployment `outcome`, with its task counts."""

    def answer(started: StartedDeployment, _number: int) -> dict[str, Any]:
        """The scripted status body."""
        return {
            "cluster": started.cluster,
            "service": started.service,
            "runningCount": 9,
            "desiredCount": 9,
            "deployments": [{"id": started.deployment_id, "runningCount": running, "desiredCount": desired}],
            "deployment": {"id": started.deployment_id, "outcome": outcome, "reason": reason},
        }

    return answer


def after(polls: int, first: Answer, then: Answer) -> Answer:
    """`first` for the first `polls` polls, then `then`."""
    return lambda started, number: first(started, number) if number < polls else then(started, number)


def quiet() -> LineReporter:
    """A reporter that writes nowhere anyone reads."""
    return LineReporter(Console(io.StringIO(), io.StringIO()))


def wait(scripts: dict[str, Answer], timeout: float = 60, started: tuple[StartedDeployment, ...] = (WEB,)) -> Any:
    """wait_for on a fake clock against a scripted service."""
    clock = FakeClock()
    service = ScriptedService(clock, scripts)
    result = wait_for(cast(ApiClient, service), started, timeout, quiet(), clock=clock, sleep=clock.sleep)
    return result, service, clock


def test_a_completed_deployment_is_exit_code_0() -> None:
    result, service, _clock = wait({WEB.deployment_id: after(2, status("IN_PROGRESS"), status("COMPLETED", 2))})
    assert result.exit_code == ExitCode.DONE
    assert result.followed[0].outcome == "COMPLETED"
    assert (result.followed[0].running_count, result.followed[0].desired_count) == (2, 2)
    assert len(service.polls) == 3


@pytest.mark.parametrize("outcome", ["FAILED", "ROLLED_BACK", "SUPERSEDED"])
def test_a_failed_rolled_back_or_superseded_deployment_is_exit_code_1(outcome: str) -> None:
    result, _service, _clock = wait({WEB.deployment_id: after(1, status("IN_PROGRESS"), status(outcome, reason="x"))})
    assert result.exit_code == ExitCode.FAILED
    assert result.followed[0].reason == "x"


def test_running_out_of_time_is_exit_code_2_and_the_last_poll_is_at_the_deadline() -> None:
    result, service, clock = wait({WEB.deployment_id: status("IN_PROGRESS")}, timeout=30)
    assert result.exit_code == ExitCode.TIMED_OUT
    assert result.timed_out
    assert clock.now == pytest.approx(1030.0)
    assert service.polls[-1][0] == pytest.approx(1030.0)


def test_polls_back_off_from_2_to_10_seconds() -> None:
    _result, service, _clock = wait({WEB.deployment_id: status("IN_PROGRESS")}, timeout=60)
    times = [moment for moment, _ in service.polls]
    gaps = [round(times[index + 1] - times[index], 2) for index in range(len(times) - 1)]
    assert gaps[:5] == [2.0, 3.0, 4.5, 6.75, 10.0]
    assert max(gaps) == 10.0


def test_a_429_waits_its_retry_after_then_polls_again() -> None:
    limited = RateLimitedError("slow down", retry_after=7.0)
    script = after(1, lambda _s, _n: limited, status("COMPLETED"))
    result, service, _clock = wait({WEB.deployment_id: script})
    assert result.exit_code == ExitCode.DONE
    assert service.polls[1][0] - service.polls[0][0] == pytest.approx(7.0)


def test_a_few_failed_polls_in_a_row_are_tolerated() -> None:
    script = after(3, lambda _s, _n: UnavailableError("502"), status("COMPLETED"))
    result, _service, _clock = wait({WEB.deployment_id: script})
    assert result.exit_code == ExitCode.DONE


def test_more_failed_polls_in_a_row_end_the_wait_as_unavailable() -> None:
    with pytest.raises(UnavailableError):
        wait({WEB.deployment_id: lambda _s, _n: UnavailableError("502")})


def test_a_refusal_while_polling_ends_the_wait_as_refused() -> None:
    with pytest.raises(RefusedError, match="not listed"):
        wait({WEB.deployment_id: lambda _s, _n: RefusedError("deployment is not listed", status=404)})


def test_an_answer_without_a_verdict_is_a_bad_answer() -> None:
    with pytest.raises(UnavailableError, match="no verdict"):
        wait({WEB.deployment_id: lambda _s, _n: {"cluster": "prod", "service": "web"}})


def test_every_deployment_is_followed_and_one_failure_fails_the_wait() -> None:
    scripts = {
        WEB.deployment_id: status("COMPLETED"),
        WORKER.deployment_id: after(2, status("IN_PROGRESS"), status("FAILED")),
    }
    result, service, _clock = wait(scripts, started=(WEB, WORKER))
    assert [item.outcome for item in result.followed] == ["COMPLETED", "FAILED"]
    assert result.exit_code == ExitCode.FAILED
    assert sum(1 for _, polled in service.polls if polled == WEB.deployment_id) == 1  # settled: not polled again


def test_a_failure_wins_over_a_timeout() -> None:
    scripts = {WEB.deployment_id: status("ROLLED_BACK"), WORKER.deployment_id: status("IN_PROGRESS")}
    result, _service, _clock = wait(scripts, timeout=5, started=(WEB, WORKER))
    assert result.timed_out
    assert result.exit_code == ExitCode.FAILED


def test_the_deployments_started_come_from_single_fan_out_and_apply_answers() -> None:
    single = {"cluster": "prod", "service": "web", "changed": True, "deployment": {"id": "ecs-svc/1"}}
    fan_out = {
        "cluster": "prod",
        "services": [
            {"cluster": "prod", "service": "worker", "changed": True, "deployment": {"id": "ecs-svc/2"}},
            {"cluster": "prod", "service": "cron", "changed": False, "deployment": None},
            {"service": "redeployed", "changed": False, "deployment": {"id": "ecs-svc/3"}},
        ],
    }
    dry_run = {"cluster": "prod", "service": "web", "dryRun": True, "deployment": None}
    assert started_deployments([single, fan_out, dry_run]) == [
        WEB,
        WORKER,
        StartedDeployment("prod", "redeployed", "ecs-svc/3"),
    ]


def test_a_change_without_a_deployment_id_is_still_waited_for() -> None:
    changed_without_id = {"cluster": "prod", "service": "api", "changed": True, "deployment": None}
    assert started_deployments([changed_without_id]) == [UNNAMED]


def test_without_a_deployment_id_the_services_newest_outcome_is_followed() -> None:
    def newest(outcome: str) -> Answer:
        """A status answer without a verdict, whose newest deployment is `outcome`."""
        return lambda started, _n: {
            "cluster": started.cluster,
            "service": started.service,
            "deployments": [{"id": "ecs-svc/7", "runningCount": 1, "desiredCount": 1}, {"id": "ecs-svc/6"}],
            "outcome": outcome,
        }

    result, service, _clock = wait({"None": after(1, newest("IN_PROGRESS"), newest("ROLLED_BACK"))}, started=(UNNAMED,))
    assert result.exit_code == ExitCode.FAILED
    assert result.followed[0].outcome == "ROLLED_BACK"
    assert (result.followed[0].running_count, result.followed[0].desired_count) == (1, 1)
    assert len(service.polls) == 2


def test_in_a_log_each_change_of_outcome_or_tasks_is_one_line() -> None:
    stdout = io.StringIO()
    reporter = LineReporter(Console(stdout, io.StringIO()))
    item = FollowedDeployment(WEB, running_count=0, desired_count=2)
    reporter.seen(item, 0)
    reporter.seen(item, 2)  # nothing new: no line
    item.running_count = 1
    reporter.seen(item, 4)
    item.outcome = "COMPLETED"
    reporter.seen(item, 6)
    reporter.tick([item], 7)
    lines = stdout.getvalue().splitlines()
    assert lines == [
        "[0s] prod/web deployment ecs-svc/1 IN_PROGRESS, 0/2 tasks running",
        "[4s] prod/web deployment ecs-svc/1 IN_PROGRESS, 1/2 tasks running",
        "[6s] prod/web deployment ecs-svc/1 COMPLETED, 1/2 tasks running",
    ]
    assert "\r" not in stdout.getvalue()


def test_on_a_terminal_one_live_line_is_rewritten_with_tasks_and_elapsed_time() -> None:
    stdout = io.StringIO()
    reporter = LiveReporter(Console(stdout, io.StringIO()))
    item = FollowedDeployment(WEB, running_count=1, desired_count=2)
    reporter.tick([item], 3)
    reporter.tick([item], 4)
    item.outcome = "COMPLETED"
    reporter.seen(item, 5)
    reporter.finish()
    written = stdout.getvalue()
    assert "\rwaiting" not in written  # each rewrite also clears the line it replaces
    assert written.count("\r\x1b[K") >= 3
    assert "waiting 3s: prod/web IN_PROGRESS 1/2 tasks running" in written
    assert "waiting 4s: prod/web IN_PROGRESS 1/2 tasks running" in written
    assert "[5s] prod/web deployment ecs-svc/1 COMPLETED, 1/2 tasks running\n" in written
