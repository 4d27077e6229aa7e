"""Fault matrix for POST /update: each AWS call against throttling, access denied, a 500, a read timeout.

Faults are injected at the HTTP layer of the service's moto-backed client
(`before-send`), so botocore's retry loop and the time budget run for real on a
virtual clock. For every case: the status and a message naming the step, the
service still on its old revision, no orphan revision, no lock left, and the
whole request within API Gateway's 29 s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from chalicelib.aws import budget
from tests.conftest import (
    API_KEY,
    ECR,
    Workload,
    active_revisions,
    lock_items,
    post,
    running_task_definition,
)
from tests.faults import ENDPOINT, AttemptFaults, VirtualClock, error_answer

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web", "tag": "1.1"}
STEPS = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]


def throttled(clock: VirtualClock) -> Callable[[int], AWSResponse]:
    def outcome(_attempt: int) -> AWSResponse:
        clock.now += 0.2
        return error_answer("ThrottlingException", "Rate exceeded")

    return outcome


def denied(_clock: VirtualClock) -> Callable[[int], AWSResponse]:
    return lambda _attempt: error_answer("AccessDeniedException", "User is not authorized", 400)


def server_error(_clock: VirtualClock) -> Callable[[int], AWSResponse]:
    return lambda _attempt: error_answer("ServerException", "Internal failure", 500)


def timed_out(clock: VirtualClock) -> Callable[[int], None]:
    def outcome(_attempt: int) -> None:
        clock.now += budget.ATTEMPT_SECONDS
        raise ReadTimeoutError(endpoint_url=ENDPOINT)

    return outcome


FAULTS: dict[str, tuple[Callable[[VirtualClock], Callable[[int], Any]], int, str]] = {
    "throttling": (throttled, 429, "throttled"),
    "access denied": (denied, 502, "AccessDeniedException"),
    "500": (server_error, 502, "ServerException"),
    "read timeout": (timed_out, 504, "did not answer in time"),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("step", STEPS)
def test_fault_at_each_step(
    http: Any,
    ecs: Any,
    setup_ecs: Any,
    workload: Workload,
    virtual_clock: VirtualClock,
    step: str,
    fault: str,
) -> None:
    make_outcome, status, text = FAULTS[fault]
    faults = AttemptFaults(ecs, virtual_clock)
    faults.on(step, make_outcome(virtual_clock))

    response = post(http, "/update", UPDATE)

    assert response.status_code == status
    message = response.json_body["Message"]
    assert message.startswith(step)
    assert text in message
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    assert lock_items() == []
    assert virtual_clock.now < budget.API_GATEWAY_TIMEOUT_SECONDS
    if step == "UpdateService":
        assert "was deregistered, so none is left behind" in message


def test_key_value_never_appears_in_logs_or_responses(
    http: Any, ecs: Any, workload: Workload, caplog: pytest.LogCaptureFixture, request_log: list[dict[str, Any]]
) -> None:
    wrong_key = "wrong-but-secret-key-value-42"
    responses = []
    with caplog.at_level(logging.DEBUG):
        responses.append(post(http, "/update", UPDATE))  # success
        responses.append(post(http, "/update", {**UPDATE, "image": "Bad"}))  # 400
        responses.append(post(http, "/update", UPDATE, headers={"x-api-key": wrong_key}))  # 403
        responses.append(post(http, "/rollback", {"cluster": "test-cluster", "service": "web"}))
        responses.append(http.get("/services/test-cluster/web", headers={"x-api-key": API_KEY}))
        ecs.meta.events.register("before-call.ecs.DescribeServices", lambda **_: (_ for _ in ()).throw(RuntimeError))
        responses.append(post(http, "/update", UPDATE))  # 500
    assert [r.status_code for r in responses] == [200, 400, 403, 200, 200, 500]
    everything = (
        caplog.text
        + json.dumps(request_log)
        + "".join(r.body.decode() + json.dumps(dict(r.headers)) for r in responses)
    )
    for secret in (API_KEY, wrong_key):
        assert secret not in everything
