"""The push work queue's consumer: every push lands, or ends with exactly one FAILED record and notification.

Failures are injected at each step: a lock another request holds, throttling,
a consumer that died between its claim and its deployment, a duplicate
message, two consumers at once, a service that changed meanwhile, retries
running out into the dead-letter queue, and an operator moving a message back.
The queue is moto's SQS with the template's redrive policy; back-off delays are
set to zero where a test needs the next delivery now (and asserted where the
delays themselves are the point).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from chalicelib.access.allowlists import AccessPolicy
from chalicelib.access.audit import Provenance
from chalicelib.aws import clients
from chalicelib.deploy.verify import Verifier
from chalicelib.entrypoints import wiring
from chalicelib.state.table import StateTable, to_item
from chalicelib.triggers import push_work
from tests.conftest import (
    ECR,
    EcsDeployments,
    PushQueue,
    Subscriber,
    Workload,
    create_follower,
    deliver,
    index_followers,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
    stage_locks,
    table_items,
)
from tests.faults import AttemptFaults, ServiceFaults, VirtualClock

WEB = f"{ECR}/web"
STATE_TABLE = "ecs-image-updater-state"


@pytest.fixture
def shop(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> str:
    """Service `shop` runs web:1.4.2 and follows semver:minor; it is in the follower index."""
    create_follower(setup_ecs)
    index_followers(app_client)
    return "shop"


@pytest.fixture
def no_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries come back at once instead of after 30 s, 60 s, ... (the delays have a test of their own)."""
    monkeypatch.setattr(push_work, "retry_delay", lambda _attempt: 0)


def push(http: Any, tag: str = "1.4.3") -> str:
    response = post(http, "/hooks/push", {"repository": WEB, "tag": tag})
    assert response.status_code == 202, response.json_body
    return str(response.json_body["pushId"])


def image_of(setup_ecs: Any, service: str) -> str:
    return str(
        running_task_definition(setup_ecs, Workload("test-cluster", service, "", ""))["containerDefinitions"][0][
            "image"
        ]
    )


def state_of(http: Any, push_id: str, service: str = "shop") -> dict[str, Any]:
    from tests.conftest import API_KEY

    body = http.get(f"/pushes/{push_id}", headers={"x-api-key": API_KEY}).json_body
    return next(entry for entry in body["services"] if entry["service"] == service)


def visibility_changes() -> list[int]:
    """The delays the consumer asks SQS for, in order."""
    made: list[int] = []
    clients.sqs_client().meta.events.register(
        "provide-client-params.sqs.ChangeMessageVisibility",
        lambda params, **_: made.append(params["VisibilityTimeout"]),
    )
    return made


def test_a_busy_lock_is_tried_again_later_and_then_deploys_once(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, no_back_off: None
) -> None:
    push_id = push(http)
    held = stage_locks().hold(["test-cluster/shop"], Provenance("update"))
    with held:
        first = deliver(app_client, push_queue, rounds=1)
    assert first[0]["batchItemFailures"]  # given back to the queue, not dropped
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    assert state_of(http, push_id)["state"] == "queued"
    assert "another request is changing service" in state_of(http, push_id)["reason"]

    deliver(app_client, push_queue)

    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"
    [record] = records_of("test-cluster", "shop")  # the busy attempt left no record of its own
    assert record["outcome"] == "IN_PROGRESS"
    assert push_queue.waiting() == 0


def test_a_broken_permissions_file_is_tried_again_and_the_push_lands_once_it_is_fixed(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    no_back_off: None,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    push_id = push(http)
    rules = tmp_path / "permissions.yaml"
    rules.write_text("rules:\n  - principals: [local]\n    actions: [push, read]\n    sevices: [shop]\n")
    monkeypatch.setenv("PERMISSIONS_FILE", str(rules))
    first = deliver(app_client, push_queue, rounds=1)
    assert first[0]["batchItemFailures"]  # the item goes back to the queue; no final refusal
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    assert records_of("test-cluster", "shop") == []

    rules.write_text("rules:\n  - principals: [local]\n    actions: [push, read]\n    services: [shop]\n")
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"
    [record] = records_of("test-cluster", "shop")
    assert record["principal"] == "local"


def test_throttling_is_retried_with_growing_delays_over_more_than_five_minutes(
    app_client: Any,
    http: Any,
    ecs: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    original = push_work.queue.retry_in

    def now_instead(sqs: Any, url: str, receipt: str, seconds: int) -> None:
        asked.append(seconds)  # what the consumer asks SQS for; the test does not wait it out
        original(sqs, url, receipt, 0)

    monkeypatch.setattr(push_work.queue, "retry_in", now_instead)
    faults = ServiceFaults(ecs)
    faults.on("UpdateService", "shop", lambda _attempt: _throttled())
    push(http)

    deliver(app_client, push_queue, rounds=20)

    assert asked[:4] == [30, 60, 120, 240]  # after attempts 1 to 4; the fifth gives up (0: to the dead letters)
    assert asked[4:] == [0, 0]
    assert sum(asked[:4]) >= 5 * 60
    assert len(records_of("test-cluster", "shop")) == 1  # retries add no records: only the final failure


def _throttled() -> Any:
    from tests.faults import error_answer

    return error_answer("ThrottlingException", "Rate exceeded")


def test_a_consumer_that_died_between_its_claim_and_the_deployment_is_taken_over_once_its_lease_lapses(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str
) -> None:
    push_id = push(http)
    service_arn = _service_arn(setup_ecs, "shop")
    dynamodb = clients.session().client("dynamodb")
    dynamodb.update_item(  # as a consumer that claimed the work and then died left it
        TableName=STATE_TABLE,
        Key=to_item({"pk": f"PUSH#{push_id}", "sk": f"SERVICE#{service_arn}"}),
        UpdateExpression="SET #state = :working, leaseUntil = :lapsed",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues=to_item({":working": "working", ":lapsed": 1}),
    )
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"


def test_a_live_lease_of_another_consumer_sends_the_message_back_for_when_it_lapses(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str
) -> None:
    delays = visibility_changes()
    push_id = push(http)
    service_arn = _service_arn(setup_ecs, "shop")
    clients.session().client("dynamodb").update_item(
        TableName=STATE_TABLE,
        Key=to_item({"pk": f"PUSH#{push_id}", "sk": f"SERVICE#{service_arn}"}),
        UpdateExpression="SET #state = :working, leaseUntil = :later",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues=to_item({":working": "working", ":later": 2**40}),
    )
    [answer] = deliver(app_client, push_queue, rounds=1)
    assert answer["batchItemFailures"]
    assert delays
    assert delays[0] > 0
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"


def test_a_duplicate_message_deploys_once(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    calls: list[str],
    request_log: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    original = push_work.queue.retry_in

    def now_instead(sqs: Any, url: str, receipt: str, seconds: int) -> None:
        asked.append(seconds)
        original(sqs, url, receipt, 0)

    monkeypatch.setattr(push_work.queue, "retry_in", now_instead)
    push(http)
    sqs = push_queue.sqs()
    [message] = sqs.receive_message(QueueUrl=push_queue.url, VisibilityTimeout=0)["Messages"]
    sqs.send_message(QueueUrl=push_queue.url, MessageBody=message["Body"])  # SQS delivered it twice

    deliver(app_client, push_queue)

    assert calls.count("UpdateService") == 1
    assert len(records_of("test-cluster", "shop")) == 1
    # The copy that met the other's live claim came back once that claim's lease would have lapsed, and found it done.
    [waited] = asked
    assert push_work.LEASE_SECONDS - 2 <= waited <= push_work.LEASE_SECONDS
    states = [item["state"] for line in request_log if line.get("function") == "push_work" for item in line["items"]]
    assert sorted(states) == ["deployed", "deployed", "retry"]
    assert push_queue.waiting() == 0


def test_two_consumers_at_once_deploy_once(
    http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    push(http)
    sqs = push_queue.sqs()
    [message] = sqs.receive_message(QueueUrl=push_queue.url)["Messages"]
    services = push_work.WorkServices(
        reach=wiring.reach,
        table=StateTable(clients.dynamodb_client(), STATE_TABLE),
        locks=stage_locks(),
        access=AccessPolicy(),
        permissions=lambda: None,
        verifier=lambda _target: Verifier("off"),
        sqs=clients.sqs_client(),
        queue_url=push_queue.url,
        sns=None,
        topic_arn=None,
    )
    start = threading.Barrier(2)
    done: list[Any] = []

    def consume() -> None:
        start.wait()
        done.extend(push_work.work([{"messageId": "m", "receiptHandle": "", "body": message["Body"]}], services))

    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert calls.count("UpdateService") == 1
    assert sorted(d.state for d in done) in (["deployed", "retry"], ["deployed", "deployed"])
    assert len(records_of("test-cluster", "shop")) == 1


def test_a_service_that_changed_meanwhile_to_something_newer_is_refused_once_with_a_record_and_a_notification(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, subscriber: Subscriber
) -> None:
    push_id = push(http)
    newer = register(setup_ecs, [rich_container("app", f"{WEB}:1.9.0")], family="shop")
    setup_ecs.update_service(cluster="test-cluster", service="shop", taskDefinition=newer)  # someone deployed first

    deliver(app_client, push_queue)

    assert image_of(setup_ecs, "shop") == f"{WEB}:1.9.0"  # not downgraded to 1.4.3
    [record] = records_of("test-cluster", "shop")
    assert (record["action"], record["outcome"]) == ("push", "FAILED")
    assert "the service changed since the push was decided" in record["outcomeReason"]
    assert "1.4.3 is older than the running 1.9.0" in record["outcomeReason"]
    assert record["push"]["tag"] == "1.4.3"
    assert record["containers"] == [{"name": "app", "previousImage": f"{WEB}:1.4.2", "image": f"{WEB}:1.4.3"}]
    assert state_of(http, push_id)["state"] == "failed"
    [told] = subscriber.received()
    assert told["attributes"]["event"] == "DEPLOYMENT_FAILED"
    assert told["message"]["service"] == "shop"
    assert push_queue.waiting() == 0  # a refusal is never retried


def test_retries_that_run_out_end_with_one_record_one_notification_and_the_message_in_the_dead_letter_queue(
    app_client: Any,
    http: Any,
    ecs: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    subscriber: Subscriber,
    no_back_off: None,
) -> None:
    faults = ServiceFaults(ecs)
    faults.on("UpdateService", "shop", lambda _attempt: _throttled())
    push_id = push(http)

    deliver(app_client, push_queue, rounds=20)

    assert faults.attempts.count(("UpdateService", "shop")) == push_work.ATTEMPTS * 3  # 5 deliveries, 3 tries each
    [record] = records_of("test-cluster", "shop")
    assert record["outcome"] == "FAILED"
    assert "throttled" in record["outcomeReason"]
    assert state_of(http, push_id)["state"] == "failed"
    assert "(after 5 attempts)" in state_of(http, push_id)["reason"]
    assert [m["attributes"]["event"] for m in subscriber.received()] == ["DEPLOYMENT_FAILED"]
    [dead] = push_queue.dead()
    assert (dead["pushId"], dead["service"]) == (push_id, "shop")
    assert push_queue.waiting() == 0
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"


def test_a_message_moved_back_from_the_dead_letter_queue_is_tried_again(
    app_client: Any, http: Any, ecs: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, no_back_off: None
) -> None:
    faults = ServiceFaults(ecs)
    broken = {"on": True}
    faults.on("UpdateService", "shop", lambda _attempt: _throttled() if broken["on"] else None)
    push_id = push(http)
    deliver(app_client, push_queue, rounds=20)
    [dead] = push_queue.dead()

    broken["on"] = False  # the cause is fixed; the operator redrives the dead-letter queue
    push_queue.sqs().send_message(QueueUrl=push_queue.url, MessageBody=json.dumps(dead))
    deliver(app_client, push_queue)

    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"


def test_a_duplicate_of_a_push_whose_retries_ran_out_reopens_nothing(
    app_client: Any, http: Any, ecs: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, no_back_off: None
) -> None:
    """A registry sending its webhook again (same digest: the same push) queues the work again; its message
    arrives for the first time, like one moved back from the dead-letter queue, but it is a duplicate."""
    faults = ServiceFaults(ecs)
    broken = {"on": True}
    faults.on("UpdateService", "shop", lambda _attempt: _throttled() if broken["on"] else None)
    body = {"repository": WEB, "tag": "1.4.3", "digest": "sha256:" + "e" * 64}
    first = post(http, "/hooks/push", body).json_body["pushId"]
    deliver(app_client, push_queue, rounds=20)
    assert len(push_queue.dead()) == 1

    broken["on"] = False
    again = post(http, "/hooks/push", body)
    assert again.status_code == 202, again.json_body
    assert again.json_body["pushId"] == first
    deliver(app_client, push_queue)

    assert len(records_of("test-cluster", "shop")) == 1  # still the one FAILED record
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    assert state_of(http, first)["state"] == "failed"


def test_a_lock_meeting_another_transaction_waits_and_the_push_still_deploys(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, virtual_clock: VirtualClock
) -> None:
    push(http)
    faults = AttemptFaults(clients.dynamodb_client(), virtual_clock, service="dynamodb")
    faults.conflict("PutItem", attempts={1})
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"


def test_an_unreadable_message_is_logged_and_dropped(
    app_client: Any, push_queue: PushQueue, request_log: list[dict[str, Any]]
) -> None:
    push_queue.sqs().send_message(QueueUrl=push_queue.url, MessageBody="not a work item")
    [answer] = deliver(app_client, push_queue)
    assert answer == {"batchItemFailures": []}
    [line] = [line for line in request_log if line.get("function") == "push_work"]
    assert line["items"][0]["state"] == "ignored"


def test_a_bug_in_one_item_is_retried_and_the_others_go_on(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    workload: Workload,
    monkeypatch: pytest.MonkeyPatch,
    no_back_off: None,
) -> None:
    create_follower(setup_ecs, "shop-2")
    index_followers(app_client)
    original = push_work._Worker._recheck
    broken = {"times": 1}

    def breaks_once_for_shop_2(self: Any, *args: Any) -> Any:
        if self.item.service == "shop-2" and broken["times"]:
            broken["times"] -= 1
            raise KeyError("containerDefinitions")  # a bug, not an UpdateError
        return original(self, *args)

    monkeypatch.setattr(push_work._Worker, "_recheck", breaks_once_for_shop_2)
    push(http)
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert image_of(setup_ecs, "shop-2") == f"{WEB}:1.4.3"  # its second delivery deployed it
    assert len(records_of("test-cluster", "shop-2")) == 1


def test_an_item_costs_its_claim_and_the_update_path(
    app_client: Any, http: Any, push_queue: PushQueue, shop: str
) -> None:
    push(http)
    made: list[str] = []
    for client in (clients.ecs_client(), clients.dynamodb_client(), clients.sqs_client()):
        client.meta.events.register("before-parameter-build", lambda model, **_: made.append(model.name))
    deliver(app_client, push_queue)
    assert made == [
        "UpdateItem",  # the claim (the queue's URL was looked up once, by the hook, in this warm process)
        "TransactWriteItems",  # the lock, and the freeze gates checked in the same call
        "DescribeServices",
        "DescribeTaskDefinition",
        "RegisterTaskDefinition",
        "UpdateService",
        "TransactWriteItems",  # the lock let go, the record, the push's state and the follower index
    ]
    assert [item["sk"] for item in table_items("follower")] != []


def _service_arn(setup_ecs: Any, service: str) -> str:
    return str(setup_ecs.describe_services(cluster="test-cluster", services=[service])["services"][0]["serviceArn"])
