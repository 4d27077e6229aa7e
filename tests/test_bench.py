"""The benchmark against ecs-deploy, run short so it cannot rot: call counts and fidelity only, never timings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bench.contenders import ECS_DEPLOY_API, ECS_DEPLOY_CLI, OURS_DIRECT, OURS_HTTP
from bench.fanout import ONE_REVISION, OURS, OWN_FAMILIES, SEQUENTIAL, SHAPES, THREADS, FanOutFindings, measure_fan_out
from bench.hooks import operations
from bench.measurements import OURS_CHANGE_CALLS, OURS_NO_OP_CALLS, QUICK, BenchResults, broken_promises
from bench.report import render_results_file
from bench.run import run_benchmark
from chalicelib.core.taskdef import PREVIOUS_TASK_DEFINITION_TAG

# A couple of timed rounds so every part of the run is exercised; no subprocesses (cold start, chalice package).
SHORT_RUN = replace(
    QUICK, iterations=2, network_iterations=1, round_trip_ms=1.0, cold_start_runs=0, package=False, fan_out_rounds=0
)


@pytest.fixture(scope="module")
def results() -> BenchResults:
    """One short benchmark run, rendered once so a broken report fails here too."""
    measured = run_benchmark(SHORT_RUN)
    render_results_file(measured, ECS_DEPLOY_API, "pytest tests/test_bench.py")
    return measured


def test_update_image_makes_the_four_calls_of_a_change(results: BenchResults) -> None:
    assert operations(results.findings[OURS_DIRECT].change_calls) == OURS_CHANGE_CALLS


def test_update_image_makes_two_calls_for_a_no_op(results: BenchResults) -> None:
    assert operations(results.findings[OURS_DIRECT].no_op_calls) == OURS_NO_OP_CALLS


def test_post_update_makes_the_same_ecs_calls(results: BenchResults) -> None:
    found = results.findings[OURS_HTTP]
    assert operations(found.change_calls, "ecs") == OURS_CHANGE_CALLS
    assert operations(found.no_op_calls, "ecs") == OURS_NO_OP_CALLS


@pytest.mark.parametrize("ours", [OURS_DIRECT, OURS_HTTP])
@pytest.mark.parametrize("theirs", [ECS_DEPLOY_API, ECS_DEPLOY_CLI])
def test_ours_makes_no_more_ecs_calls_than_ecs_deploy(results: BenchResults, ours: str, theirs: str) -> None:
    mine, other = results.findings[ours], results.findings[theirs]
    assert len(operations(mine.change_calls, "ecs")) <= len(other.change_calls)
    assert len(operations(mine.no_op_calls, "ecs")) <= len(other.no_op_calls)


@pytest.mark.parametrize("ours", [OURS_DIRECT, OURS_HTTP])
def test_ours_loses_no_field_and_changes_only_the_image(results: BenchResults, ours: str) -> None:
    fidelity = results.findings[ours].fidelity
    assert fidelity.replaced_revision
    assert [change.path for change in fidelity.image_changes] == ["containerDefinitions[app].image"]
    assert fidelity.lost == []
    assert fidelity.added == []
    assert fidelity.altered == []


def test_update_image_adds_only_the_rollback_tag(results: BenchResults) -> None:
    bookkeeping = results.findings[OURS_DIRECT].fidelity.bookkeeping
    assert [change.path for change in bookkeeping] == [f"tags.{PREVIOUS_TASK_DEFINITION_TAG}"]


def test_the_run_reports_no_broken_promise(results: BenchResults) -> None:
    assert broken_promises(results.findings, ECS_DEPLOY_API, OURS_DIRECT) == []


def test_post_update_adds_only_the_lock_and_its_record(results: BenchResults) -> None:
    found = results.findings[OURS_HTTP]
    assert operations(found.change_calls, "dynamodb") == ["TransactWriteItems", "TransactWriteItems"]
    assert operations(found.no_op_calls, "dynamodb") == ["TransactWriteItems", "TransactWriteItems"]


@pytest.fixture(scope="module")
def fan_out() -> dict[str, FanOutFindings]:
    """One counted 10-service rollout per contender and fleet shape, in process, untimed."""
    return {shape: measure_fan_out(shape, rounds=0, server=False) for shape in SHAPES}


def counts(calls: list[Any], service: str) -> dict[str, int]:
    names = operations(calls, service)
    return {name: names.count(name) for name in dict.fromkeys(names)}


def test_ten_services_on_their_own_families_cost_one_call_per_revision_and_service(
    fan_out: dict[str, FanOutFindings],
) -> None:
    ours = fan_out[OWN_FAMILIES].calls[OURS]
    assert counts(ours, "ecs") == {
        "DescribeServices": 1,
        "DescribeTaskDefinition": 10,
        "RegisterTaskDefinition": 10,
        "UpdateService": 10,
    }
    assert operations(ours, "dynamodb") == ["TransactWriteItems", "TransactWriteItems"]


def test_ten_services_on_one_revision_share_one_new_revision(fan_out: dict[str, FanOutFindings]) -> None:
    ours = fan_out[ONE_REVISION].calls[OURS]
    assert counts(ours, "ecs") == {
        "DescribeServices": 1,
        "DescribeTaskDefinition": 1,
        "RegisterTaskDefinition": 1,
        "UpdateService": 10,
    }


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("theirs", [SEQUENTIAL, THREADS])
def test_ecs_deploy_pays_four_calls_per_service(fan_out: dict[str, FanOutFindings], shape: str, theirs: str) -> None:
    assert counts(fan_out[shape].calls[theirs], "ecs") == dict.fromkeys(
        ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"], 10
    )


def test_ours_waits_six_round_trips_in_a_row_for_ten_services(fan_out: dict[str, FanOutFindings]) -> None:
    from bench.fanout import waits_in_a_row

    found = fan_out[OWN_FAMILIES]
    assert waits_in_a_row(found.calls[OURS], OURS) == 6
    assert waits_in_a_row(found.calls[SEQUENTIAL], SEQUENTIAL) == 40


def test_the_push_cost_benchmark_counts_a_push_that_does_not_grow_with_the_account() -> None:
    import math

    from bench.push_cost import CLUSTERS, measure, render

    cost = measure(30)
    assert cost.deployed == CLUSTERS
    assert sum(cost.push.values()) <= 25
    assert set(cost.push) == {"Query", "TransactWriteItems", "GetQueueUrl", "SendMessageBatch"}
    assert sum(cost.deployments.values()) == 7 * CLUSTERS
    assert cost.first_reconcile["GetResources"] <= math.ceil(30 / 100) + 1
    assert cost.first_reconcile["DescribeServices"] == math.ceil(30 / CLUSTERS / 10) * CLUSTERS
    assert cost.first_reconcile["DescribeTaskDefinition"] == 30
    assert "DescribeTaskDefinition" not in cost.second_reconcile
    assert "**the push now**" in render(cost)


def test_the_verify_cost_benchmark_counts_one_ecr_lookup_per_verified_change_and_nothing_else() -> None:
    from bench.verify_cost import UNVERIFIED, VERIFIED, measure, render

    cost = measure(2, round_trip_ms=0)
    assert cost.calls[VERIFIED] - cost.calls[UNVERIFIED] == {"BatchGetImage": 2}
    assert cost.calls[UNVERIFIED]["UpdateService"] == 2
    assert "VERIFY_IMAGES=require" in render(cost)
