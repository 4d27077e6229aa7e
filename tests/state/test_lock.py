"""The per-service lock: no lost update under real threads, 409 when busy, never left behind."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.access.audit import Provenance
from chalicelib.aws import budget, clients
from chalicelib.core import taskdef
from chalicelib.core.errors import AwsTimeoutError, ServiceBusyError, StateTableMissingError
from chalicelib.core.images import parse_image
from chalicelib.core.requests import UpdateRequest
from chalicelib.deploy.update import update_image
from chalicelib.state import lock
from chalicelib.state.lock import Locks
from chalicelib.state.table import StateTable, service_key
from tests.conftest import (
    STATE_TABLE,
    Workload,
    create_service,
    lock_items,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
    stage_locks,
)
from tests.faults import ENDPOINT, AttemptFaults, VirtualClock, client_error, error_answer, fail_call


def held_elsewhere(cluster: str, service: str) -> Any:
    """Another request holding the service's lock."""
    return stage_locks().hold([service_key(cluster, service)], Provenance("update"))


CONTAINERS = [f"c{i}" for i in range(10)]
# The lock is taken by the first TransactWriteItems; the release is the second.
RELEASE = 2


def apply_puts(dynamodb: Any, body: Any) -> None:
    """Carry out the puts of a TransactWriteItems body, as if DynamoDB had applied it and the answer was lost."""
    for entry in json.loads(body)["TransactItems"]:
        if "Put" in entry:
            dynamodb.put_item(TableName=entry["Put"]["TableName"], Item=entry["Put"]["Item"])


@pytest.fixture
def ten_containers(setup_ecs: Any, workload: Workload) -> Workload:
    """Service `wide` whose task definition has ten containers, all on image `base:0`."""
    arn = register(setup_ecs, [rich_container(name, f"repo/{name}:0") for name in CONTAINERS], family="wide")
    create_service(setup_ecs, workload.cluster, "wide", arn)
    return Workload(workload.cluster, "wide", "wide", arn)


def test_twenty_concurrent_updates_lose_nothing(
    ecs: Any, setup_ecs: Any, state_table: str, ten_containers: Workload, atomic_aws: None
) -> None:
    requests = [(name, f"repo/{name}:{round_}") for round_ in (1, 2) for name in CONTAINERS]
    outcomes: dict[tuple[str, str], Any] = {}
    start = threading.Barrier(len(requests))

    def run(container: str, image: str) -> None:
        request = UpdateRequest(ten_containers.cluster, "wide", parse_image(image), container=container)
        start.wait()
        try:
            outcomes[(container, image)] = update_image(ecs, request, locks=stage_locks())
        except ServiceBusyError as busy:
            outcomes[(container, image)] = busy

    threads = [threading.Thread(target=run, args=pair) for pair in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == len(requests)
    assert all(not isinstance(o, Exception) or isinstance(o, ServiceBusyError) for o in outcomes.values())
    succeeded = {pair: o for pair, o in outcomes.items() if not isinstance(o, Exception)}
    assert succeeded
    final = taskdef.container_images(running_task_definition(setup_ecs, ten_containers))
    # Every container shows the image of the last successful request that targeted it
    # (the one that registered the highest revision), or its original image.
    for name in CONTAINERS:
        mine = [(o.task_definition.revision, image) for (c, image), o in succeeded.items() if c == name]
        expected = max(mine)[1] if mine else f"repo/{name}:0"
        assert final[name] == expected
    assert lock_items() == []


def test_busy_service_is_a_409_after_five_seconds_and_changes_nothing(
    ecs: Any, setup_ecs: Any, state_table: str, workload: Workload, virtual_clock: VirtualClock
) -> None:
    request = UpdateRequest(workload.cluster, workload.service, parse_image("repo/x:1"), container="app")
    busy = pytest.raises(ServiceBusyError, match="another request is changing service 'test-cluster/web'")
    with held_elsewhere(workload.cluster, workload.service), busy:
        update_image(ecs, request, locks=stage_locks())
    assert lock.LOCK_WAIT_SECONDS <= virtual_clock.now < lock.LOCK_WAIT_SECONDS + 1
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn
    assert lock_items() == []


def test_busy_service_over_http_is_a_409(http: Any, workload: Workload, virtual_clock: VirtualClock) -> None:
    with held_elsewhere(workload.cluster, workload.service):
        response = post(
            http,
            "/update",
            {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"},
        )
    assert response.status_code == 409
    assert response.json_body["Code"] == "ConflictError"
    assert response.headers["Retry-After"] == "5"  # unlike the other 409s, this one passes


def test_lock_is_released_when_the_update_fails_midway(http: Any, ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "UpdateService", lambda: client_error("UpdateService", "AccessDeniedException"))
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"}
    )
    assert response.status_code == 502
    assert lock_items() == []


def test_lock_is_released_when_a_bug_escapes(http: Any, ecs: Any, workload: Workload) -> None:
    fail_call(ecs, "RegisterTaskDefinition", lambda: RuntimeError("bug"))
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"}
    )
    assert response.status_code == 500
    assert lock_items() == []


def test_lock_is_held_while_the_service_is_read_and_written(
    http: Any, ecs: Any, workload: Workload, calls: list[str]
) -> None:
    seen: list[int] = []
    ecs.meta.events.register("before-call.ecs", lambda **_: seen.append(len(lock_items())))
    post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"})
    assert calls == ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    assert seen == [1, 1, 1, 1]
    assert lock_items() == []


def test_expired_lock_of_a_dead_holder_is_taken_over(
    ecs: Any, setup_ecs: Any, state_table: str, workload: Workload
) -> None:
    dynamodb = clients.session().client("dynamodb")
    dynamodb.put_item(
        TableName=state_table,
        Item={
            "pk": {"S": "SERVICE#test-cluster/web"},
            "sk": {"S": "LOCK"},
            "kind": {"S": "lock"},
            "owner": {"S": "dead"},
            "expiresAt": {"N": "1"},
        },
    )
    request = UpdateRequest(workload.cluster, workload.service, parse_image("x/y:1"), container="app")
    result = update_image(ecs, request, locks=stage_locks())
    assert result.changed is True
    assert lock_items() == []


def test_dry_run_takes_no_lock(http: Any, workload: Workload, virtual_clock: VirtualClock) -> None:
    with held_elsewhere(workload.cluster, workload.service):
        body = {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"}
        response = post(http, "/update", {**body, "dryRun": True})
    assert response.status_code == 200
    assert response.json_body["dryRun"] is True


def test_lock_keys_are_names_whatever_the_request_gave() -> None:
    arn = "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web"
    assert service_key("arn:aws:ecs:eu-west-1:123456789012:cluster/test-cluster", arn) == "test-cluster/web"
    assert service_key("test-cluster", "web") == "test-cluster/web"


def test_without_a_table_there_is_no_lock_and_one_warning(
    ecs: Any, workload: Workload, caplog: pytest.LogCaptureFixture
) -> None:
    lock._warned = False
    with caplog.at_level(logging.WARNING, logger="chalicelib.state.lock"):
        for _ in range(2):
            with Locks(None).hold(["a/b"], Provenance("update")):
                pass
    assert [r.getMessage() for r in caplog.records if r.name == "chalicelib.state.lock"] == [
        "STATE_TABLE is not set: concurrent updates of one service are not serialised, and nothing is recorded"
    ]


def test_missing_state_table_is_a_502_naming_it_and_its_template(ecs: Any, workload: Workload) -> None:
    # No table at all: DynamoDB answers ResourceNotFoundException.
    request = UpdateRequest(workload.cluster, workload.service, parse_image("x/y:1"), container="app")
    locks = Locks(StateTable(clients.dynamodb_client(), "missing-table"))
    with pytest.raises(StateTableMissingError) as missing:
        update_image(ecs, request, locks=locks)
    assert "'missing-table' (STATE_TABLE) does not exist" in missing.value.message
    assert "deploy infra/state-table.yaml" in missing.value.message


def test_missing_state_table_over_http_is_a_502_and_changes_nothing(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    clients.session().client("dynamodb").delete_table(TableName=STATE_TABLE)  # the stage names a table never deployed
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y", "tag": "1", "container": "app"}
    )
    assert response.status_code == 502
    assert response.json_body["Message"] == (
        "the state table 'ecs-image-updater-state' (STATE_TABLE) does not exist in this account and region; "
        "deploy infra/state-table.yaml to create it"
    )
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn


def test_lock_put_applied_but_unanswered_is_taken_on_the_retry(
    ecs: Any, setup_ecs: Any, state_table: str, workload: Workload, virtual_clock: VirtualClock
) -> None:
    dynamodb = clients.dynamodb_client()
    setup_dynamodb = clients.session().client("dynamodb")
    faults = AttemptFaults(dynamodb, virtual_clock, service="dynamodb")

    def applied_then_lost(attempt: int) -> None:
        if attempt == 1:
            apply_puts(setup_dynamodb, faults.last_body)
            raise ReadTimeoutError(endpoint_url=ENDPOINT)

    faults.on("TransactWriteItems", applied_then_lost)
    request = UpdateRequest(workload.cluster, workload.service, parse_image("x/y:1"), container="app")

    result = update_image(ecs, request, locks=stage_locks())

    assert result.changed is True
    assert faults.attempts[:2] == ["TransactWriteItems", "TransactWriteItems"]  # the take, and its retry
    assert lock_items() == []


def test_lock_is_released_when_taking_it_fails_after_it_may_have_been_applied(
    ecs: Any, state_table: str, workload: Workload, virtual_clock: VirtualClock
) -> None:
    dynamodb = clients.dynamodb_client()
    setup_dynamodb = clients.session().client("dynamodb")
    faults = AttemptFaults(dynamodb, virtual_clock, service="dynamodb")

    def applied_then_lost(_attempt: int) -> None:
        if "ConditionCheck" not in str(faults.last_body):
            return  # the release that follows
        apply_puts(setup_dynamodb, faults.last_body)
        virtual_clock.now += budget.ATTEMPT_SECONDS
        raise ReadTimeoutError(endpoint_url=ENDPOINT)

    faults.on("TransactWriteItems", applied_then_lost)
    request = UpdateRequest(workload.cluster, workload.service, parse_image("x/y:1"), container="app")

    with pytest.raises(AwsTimeoutError, match="TransactWriteItems"):
        update_image(ecs, request, locks=stage_locks())

    assert lock_items() == []


def test_a_lock_put_meeting_a_release_transaction_is_busy_for_a_moment_and_taken_on_a_retry(
    ecs: Any, state_table: str, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("TransactWriteItems", attempts={1})
    request = UpdateRequest(workload.cluster, workload.service, parse_image("x/y:1"), container="app")

    result = update_image(ecs, request, locks=stage_locks())

    assert result.changed is True
    # botocore does not retry the conflict: the lock's wait does (then the release)
    assert faults.attempts == ["TransactWriteItems", "TransactWriteItems", "TransactWriteItems"]
    assert virtual_clock.now < lock.LOCK_WAIT_SECONDS
    assert lock_items() == []


def test_a_lock_put_in_conflict_for_the_whole_wait_is_a_409_naming_the_service(
    http: Any, setup_ecs: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("TransactWriteItems")
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"}
    )
    assert response.status_code == 409
    assert "another request is changing service 'test-cluster/web'" in response.json_body["Message"]
    assert response.headers["Retry-After"] == "5"
    assert lock.LOCK_WAIT_SECONDS <= virtual_clock.now < lock.LOCK_WAIT_SECONDS + 1
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn


@pytest.fixture
def second_service(setup_ecs: Any, workload: Workload) -> str:
    """Service `web-b` in the workload's cluster, on the workload's revision."""
    create_service(setup_ecs, workload.cluster, "web-b", workload.running_arn)
    return "web-b"


@pytest.mark.parametrize(
    ("path", "body", "lock_call"),
    [
        (
            "/update",
            {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"},
            "TransactWriteItems",
        ),
        (
            "/update",
            {"cluster": "test-cluster", "services": ["web", "web-b"], "image": "x/y:1", "container": "app"},
            "TransactWriteItems",
        ),
        (
            "/apply",
            {"descriptions": [{"cluster": "test-cluster", "service": "web", "containers": {"app": "x/y:1"}}]},
            "TransactWriteItems",
        ),
        ("/rollback", {"cluster": "test-cluster", "service": "web", "taskDefinition": "web:1"}, "TransactWriteItems"),
    ],
    ids=["update", "fan-out", "apply", "rollback"],
)
def test_every_route_that_takes_a_lock_waits_out_a_conflicting_transaction(
    http: Any,
    setup_ecs: Any,
    workload: Workload,
    second_service: str,
    virtual_clock: VirtualClock,
    path: str,
    body: dict[str, Any],
    lock_call: str,
) -> None:
    if path == "/rollback":  # something to roll back from
        update = {"cluster": "test-cluster", "service": "web", "image": "x/y:0", "container": "app"}
        assert post(http, "/update", update).status_code == 200
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict(lock_call, attempts={1})

    response = post(http, path, body)

    assert response.status_code == 200, response.json_body
    assert faults.attempts[:2] == [lock_call, lock_call]
    assert lock_items() == []


def test_the_release_survives_a_failed_first_attempt_after_a_stall(
    http: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")

    def stall_then_fail(attempt: int) -> Any:
        if attempt == RELEASE:
            virtual_clock.now += 0.6
            return error_answer("InternalServerError", "Internal server error", status=500)
        return None

    faults.on("TransactWriteItems", stall_then_fail)
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"}
    )

    assert response.status_code == 200
    assert faults.attempts.count("TransactWriteItems") == RELEASE + 1
    [record] = records_of("test-cluster", "web")
    assert record["taskDefinition"]["arn"] == response.json_body["taskDefinition"]["arn"]
    assert lock_items() == []


def test_the_release_survives_a_first_attempt_that_times_out(
    http: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")

    def slow_timeout(attempt: int) -> None:
        if attempt == RELEASE:
            virtual_clock.now += budget.STATE_ATTEMPT_SECONDS
            raise ReadTimeoutError(endpoint_url=ENDPOINT)

    faults.on("TransactWriteItems", slow_timeout)
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"}
    )

    assert response.status_code == 200
    assert len(records_of("test-cluster", "web")) == 1
    assert lock_items() == []


def test_the_release_waits_out_a_conflict_with_another_transaction(
    http: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("TransactWriteItems", attempts={RELEASE})
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"}
    )
    assert response.status_code == 200
    assert faults.attempts.count("TransactWriteItems") == RELEASE + 1
    assert len(records_of("test-cluster", "web")) == 1
    assert lock_items() == []


def test_a_release_that_keeps_failing_writes_the_record_on_its_own_within_the_budget(
    http: Any, workload: Workload, virtual_clock: VirtualClock
) -> None:
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.time_out("TransactWriteItems", attempts=set(range(RELEASE, 100)))  # every attempt of the release: 2 s each

    started = virtual_clock.now
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": "x/y:1", "container": "app"}
    )

    assert response.status_code == 200
    assert len(records_of("test-cluster", "web")) == 1  # written with a PutItem of its own
    assert lock_items() == []  # and the lock let go of with a DeleteItem of its own
    assert virtual_clock.now - started <= budget.MAIN_SECONDS + budget.RELEASE_SECONDS
