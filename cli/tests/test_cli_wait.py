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
    COMPLETION,
    FollowedDeployment,
    LineReporter,
    LiveReporter,
    StartedDeployment,
    WaitGoal,
    WaitResult,
    final_line,
    report_outcome,
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


def status(outcome: str, running: int = 0, desired: int = 2, reason: str | None = None, **verdict: Any) -> Answer:
    """A status answer judging the polled deployment `outcome`, with its task counts (and `verdict`'s fields).

    Without `verdict`, the answer of a server from before service deployments: no stage, strategy or traffic.
    """

    def answer(started: StartedDeployment, _number: int) -> dict[str, Any]:
        """The scripted status body."""
        return {
            "cluster": started.cluster,
            "service": started.service,
            "runningCount": 9,
            "desiredCount": 9,
            "deployments": [{"id": started.deployment_id, "runningCount": running, "desiredCount": desired}],
            "deployment": {"id": started.deployment_id, "outcome": outcome, "reason": reason, **verdict},
        }

    return answer


def after(polls: int, first: Answer, then: Answer) -> Answer:
    """`first` for the first `polls` polls, then `then`."""
    return lambda started, number: first(started, number) if number < polls else then(started, number)


def quiet() -> LineReporter:
    """A reporter that writes nowhere anyone reads."""
    return LineReporter(Console(io.StringIO(), io.StringIO()))


def wait(
    scripts: dict[str, Answer],
    timeout: float = 60,
    started: tuple[StartedDeployment, ...] = (WEB,),
    goal: WaitGoal = COMPLETION,
) -> Any:
    """wait_for on a fake clock against a scripted service."""
    clock = FakeClock()
    service = ScriptedService(clock, scripts)
    result = wait_for(cast(ApiClient, service), started, timeout, quiet(), goal, clock=clock, sleep=clock.sleep)
    return result, service, clock


def test_a_completed_deployment_is_exit_code_0() -> None:
    result, service, _clock = wait({WEB.deployment_id: after(2, status("IN_PROGRESS"), status("COMPLETED", 2))})
    assert result.exit_code == ExitCode.DONE
    assert result.followed[0].outcome == "COMPLETED"
    assert (result.followed[0].running_count, result.followed[0].desired_count) == (2, 2)
    assert len(service.polls) == 3


@pytest.mark.parametrize("outcome", ["FAILED", "ROLLED_BACK", "SUPERSEDED", "STOPPED"])
def test_a_failed_rolled_back_superseded_or_stopped_deployment_is_exit_code_1(outcome: str) -> None:
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
    assert "waiting 3s: prod/web IN_PROGRESS, 1/2 tasks running" in written
    assert "waiting 4s: prod/web IN_PROGRESS, 1/2 tasks running" in written
    assert "[5s] prod/web deployment ecs-svc/1 COMPLETED, 1/2 tasks running\n" in written


# --- --wait-until: a lifecycle stage as the goal --------------------------------------------------------------

BAKE = WaitGoal(stage="BAKE_TIME")


def staged(stage: str, outcome: str = "IN_PROGRESS", **verdict: Any) -> Answer:
    """A status answer judging the polled deployment `outcome` at lifecycle `stage` of a blue/green deployment."""
    return status(outcome, 1, 1, lifecycleStage=stage, strategy="BLUE_GREEN", **verdict)


def test_waiting_until_a_stage_ends_at_the_first_poll_that_sees_it() -> None:
    script = after(2, staged("SCALE_UP"), staged("BAKE_TIME"))
    result, service, _clock = wait({WEB.deployment_id: script}, goal=BAKE)
    assert result.exit_code == ExitCode.DONE
    assert result.followed[0].outcome == "IN_PROGRESS"
    assert result.followed[0].reached_stage
    assert len(service.polls) == 3


def test_a_stage_after_the_one_waited_for_counts_as_reached() -> None:
    result, service, _clock = wait({WEB.deployment_id: staged("CLEAN_UP")}, goal=BAKE)
    assert result.exit_code == ExitCode.DONE
    assert result.followed[0].stage == "CLEAN_UP"
    assert len(service.polls) == 1


def test_a_stage_before_the_one_waited_for_keeps_the_wait_going_until_the_timeout() -> None:
    result, _service, _clock = wait({WEB.deployment_id: staged("PRODUCTION_TRAFFIC_SHIFT")}, timeout=20, goal=BAKE)
    assert result.exit_code == ExitCode.TIMED_OUT
    assert not result.followed[0].reached_stage


def test_without_wait_until_a_deployment_baking_is_still_in_progress() -> None:
    result, _service, _clock = wait({WEB.deployment_id: staged("BAKE_TIME")}, timeout=20)
    assert result.exit_code == ExitCode.TIMED_OUT  # a 23-hour bake is not done
    assert result.followed[0].stage == "BAKE_TIME"


def test_a_completed_deployment_ends_a_wait_until_a_stage_it_was_never_seen_at() -> None:
    script = after(1, staged("SCALE_UP"), staged("CLEAN_UP", "COMPLETED"))
    result, _service, _clock = wait({WEB.deployment_id: script}, goal=BAKE)
    assert result.exit_code == ExitCode.DONE
    assert not result.followed[0].reached_stage
    assert result.followed[0].outcome == "COMPLETED"


def test_a_server_that_reports_no_stage_is_followed_on_the_outcome_alone() -> None:
    old_server = after(3, status("IN_PROGRESS"), status("COMPLETED", 2))
    result, service, _clock = wait({WEB.deployment_id: old_server}, goal=BAKE)
    assert result.exit_code == ExitCode.DONE
    assert result.followed[0].stage is None
    assert len(service.polls) == 4
    still_going, _service, _clock = wait({WEB.deployment_id: status("IN_PROGRESS")}, timeout=20, goal=BAKE)
    assert still_going.exit_code == ExitCode.TIMED_OUT


def test_an_unknown_stage_never_counts_as_reached() -> None:
    result, _service, _clock = wait({WEB.deployment_id: staged("A_STAGE_ECS_ADDS_LATER")}, timeout=10, goal=BAKE)
    assert result.exit_code == ExitCode.TIMED_OUT


def test_a_rollback_before_the_stage_waited_for_is_exit_code_1() -> None:
    rolled_back = staged("TEST_TRAFFIC_SHIFT", "ROLLED_BACK", ecsStatus="ROLLBACK_SUCCESSFUL")
    result, _service, _clock = wait({WEB.deployment_id: after(1, staged("SCALE_UP"), rolled_back)}, goal=BAKE)
    assert result.exit_code == ExitCode.FAILED


def test_a_rollback_at_the_stage_waited_for_is_a_failure_reported_with_its_alarm() -> None:
    reason = "rolled back: alarm 'web-5xx' fired"
    script = after(1, staged("SCALE_UP"), status("ROLLED_BACK", reason=reason, lifecycleStage="BAKE_TIME"))
    result, _service, _clock = wait({WEB.deployment_id: script}, goal=BAKE)
    assert result.exit_code == ExitCode.FAILED  # at BAKE_TIME, but rolled back: the failure wins over the stage
    assert final_line(result.followed[0], result.elapsed).endswith(f"(deployment ecs-svc/1, at BAKE_TIME): {reason}")


def test_a_poll_reads_the_stage_strategy_traffic_and_ecs_status_of_the_verdict() -> None:
    linear = status(
        "IN_PROGRESS",
        lifecycleStage="PRODUCTION_TRAFFIC_SHIFT",
        strategy="LINEAR",
        ecsStatus="IN_PROGRESS",
        traffic={"production": 40, "test": None},
    )
    result, _service, _clock = wait({WEB.deployment_id: linear}, timeout=1)
    item = result.followed[0]
    assert (item.stage, item.strategy, item.ecs_status) == ("PRODUCTION_TRAFFIC_SHIFT", "LINEAR", "IN_PROGRESS")
    assert (item.production_traffic, item.test_traffic) == (40.0, None)


def test_without_a_deployment_id_the_stage_comes_from_the_newest_service_deployment() -> None:
    def newest(outcome: str, stage: str, status: str) -> Answer:
        """A status answer without a verdict; its newest service deployment at `stage`."""
        return lambda started, _n: {
            "cluster": started.cluster,
            "service": started.service,
            "strategy": "CANARY",
            "outcome": outcome,
            "deployments": [{"id": "ecs-svc/7", "runningCount": 1, "desiredCount": 2}],
            "serviceDeployment": {
                "arn": "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/api/abc",
                "status": status,
                "outcome": outcome,
                "reason": None,
                "lifecycleStage": stage,
                "strategy": None,
                "traffic": {"production": 10, "test": 100},
                "alarms": [],
            },
        }

    script = after(1, newest("IN_PROGRESS", "SCALE_UP", "PENDING"), newest("IN_PROGRESS", "BAKE_TIME", "IN_PROGRESS"))
    result, service, _clock = wait({"None": script}, started=(UNNAMED,), goal=BAKE)
    item = result.followed[0]
    assert result.exit_code == ExitCode.DONE
    assert len(service.polls) == 2
    assert (item.stage, item.strategy, item.ecs_status) == ("BAKE_TIME", "CANARY", "IN_PROGRESS")
    assert item.progress() == "IN_PROGRESS at BAKE_TIME (CANARY), production traffic 10%, test traffic 100%, " + (
        "1/2 tasks running"
    )


# --- the goal of stop: the outcome asked for ------------------------------------------------------------------

ROLLBACK_ASKED = WaitGoal(succeeded=frozenset({"ROLLED_BACK"}))
ABORT_ASKED = WaitGoal(succeeded=frozenset({"STOPPED"}))


def test_a_rollback_asked_for_is_done_once_ecs_has_finished_it() -> None:
    under_way = status("ROLLED_BACK", ecsStatus="ROLLBACK_IN_PROGRESS", reason="stopped by alice")
    done = status("ROLLED_BACK", ecsStatus="ROLLBACK_SUCCESSFUL", reason="stopped by alice")
    result, service, _clock = wait({WEB.deployment_id: after(2, under_way, done)}, goal=ROLLBACK_ASKED)
    assert result.exit_code == ExitCode.DONE
    assert len(service.polls) == 3


def test_a_rollback_still_under_way_at_the_timeout_is_exit_code_2() -> None:
    under_way = status("ROLLED_BACK", ecsStatus="ROLLBACK_REQUESTED")
    result, _service, _clock = wait({WEB.deployment_id: under_way}, timeout=10, goal=ROLLBACK_ASKED)
    assert result.exit_code == ExitCode.TIMED_OUT
    assert "(deployment ecs-svc/1, ECS ROLLBACK_REQUESTED)" in final_line(result.followed[0], result.elapsed)


def test_a_rolled_back_outcome_from_a_server_without_ecs_status_is_done() -> None:
    result, _service, _clock = wait({WEB.deployment_id: status("ROLLED_BACK")}, goal=ROLLBACK_ASKED)
    assert result.exit_code == ExitCode.DONE


@pytest.mark.parametrize(
    ("goal", "outcome", "exit_code"),
    [
        (ABORT_ASKED, "STOPPED", ExitCode.DONE),
        (ABORT_ASKED, "COMPLETED", ExitCode.FAILED),  # it completed before the stop took
        (ABORT_ASKED, "ROLLED_BACK", ExitCode.FAILED),
        (ROLLBACK_ASKED, "STOPPED", ExitCode.FAILED),
        (ROLLBACK_ASKED, "FAILED", ExitCode.FAILED),  # ECS's ROLLBACK_FAILED
        (ROLLBACK_ASKED, "COMPLETED", ExitCode.FAILED),
    ],
)
def test_a_stop_succeeds_only_with_the_outcome_it_asked_for(goal: WaitGoal, outcome: str, exit_code: int) -> None:
    result, _service, _clock = wait({WEB.deployment_id: status(outcome)}, goal=goal)
    assert result.exit_code == exit_code


# --- what people read ---------------------------------------------------------------------------------------


def test_in_a_log_each_move_of_stage_or_traffic_is_one_line() -> None:
    stdout = io.StringIO()
    reporter = LineReporter(Console(stdout, io.StringIO()))
    item = FollowedDeployment(WEB, running_count=2, desired_count=2, stage="SCALE_UP", strategy="LINEAR")
    reporter.seen(item, 0)
    item.stage, item.production_traffic = "PRODUCTION_TRAFFIC_SHIFT", 20.0
    reporter.seen(item, 2)
    reporter.seen(item, 4)  # nothing moved: no line
    item.production_traffic = 40.0
    reporter.seen(item, 6)
    assert stdout.getvalue().splitlines() == [
        "[0s] prod/web deployment ecs-svc/1 IN_PROGRESS at SCALE_UP (LINEAR), 2/2 tasks running",
        "[2s] prod/web deployment ecs-svc/1 IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT (LINEAR), "
        "production traffic 20%, 2/2 tasks running",
        "[6s] prod/web deployment ecs-svc/1 IN_PROGRESS at PRODUCTION_TRAFFIC_SHIFT (LINEAR), "
        "production traffic 40%, 2/2 tasks running",
    ]


def test_the_live_line_shows_the_stage_strategy_and_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the line is not cut to fit
    stdout = io.StringIO()
    reporter = LiveReporter(Console(stdout, io.StringIO()))
    item = FollowedDeployment(
        WEB, running_count=1, desired_count=1, stage="BAKE_TIME", strategy="BLUE_GREEN", production_traffic=100.0
    )
    reporter.tick([item], 3)
    assert "waiting 3s: prod/web IN_PROGRESS at BAKE_TIME (BLUE_GREEN), production traffic 100%, 1/1 tasks running" in (
        stdout.getvalue()
    )


def test_the_final_report_names_the_stage_a_wait_until_stopped_at() -> None:
    item = FollowedDeployment(WEB, goal=BAKE, stage="CLEAN_UP", strategy="BLUE_GREEN", settled_after=72)
    assert final_line(item, 80) == (
        "prod/web: reached BAKE_TIME after 1m12s (deployment ecs-svc/1, IN_PROGRESS at CLEAN_UP)"
    )


def test_a_stopped_deployment_is_reported_with_its_reason() -> None:
    reason = "stopped by alice (abort)"
    item = FollowedDeployment(WEB, outcome="STOPPED", reason=reason, stage="SCALE_UP", settled_after=5)
    assert final_line(item, 5) == f"prod/web: STOPPED after 5s (deployment ecs-svc/1, at SCALE_UP): {reason}"


@pytest.mark.parametrize("goal", [COMPLETION, ROLLBACK_ASKED])
def test_a_rolled_back_deployment_is_reported_with_its_alarm_asked_for_or_not(goal: WaitGoal) -> None:
    reason = "alarm 'web-5xx' fired: rolled back"
    item = FollowedDeployment(WEB, outcome="ROLLED_BACK", reason=reason, goal=goal, settled_after=9)
    assert final_line(item, 9) == f"prod/web: ROLLED_BACK after 9s (deployment ecs-svc/1): {reason}"


def test_a_completed_deployment_is_reported_without_its_last_stage() -> None:
    item = FollowedDeployment(WEB, outcome="COMPLETED", stage="CLEAN_UP", reason="done", settled_after=3)
    assert final_line(item, 3) == "prod/web: COMPLETED after 3s (deployment ecs-svc/1)"


def test_a_timeout_says_what_the_wait_was_for() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    item = FollowedDeployment(WEB, goal=BAKE, stage="SCALE_UP")
    report_outcome(Console(stdout, stderr), WaitResult((item,), 30, timed_out=True, goal=BAKE))
    assert stdout.getvalue() == "prod/web: IN_PROGRESS still going after 30s (deployment ecs-svc/1, at SCALE_UP)\n"
    assert stderr.getvalue() == "timed out after 30s waiting for prod/web to reach BAKE_TIME (or complete)\n"
