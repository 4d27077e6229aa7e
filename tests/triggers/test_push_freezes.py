"""A push during a freeze is not lost: its work waits for the freeze's end (as a new, delayed message, using none
of its attempts) and deploys then; a freeze that drops pushes ends it as FROZEN."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import queue
from chalicelib.state import freezes
from tests.conftest import (
    API_KEY,
    ECR,
    EcsDeployments,
    PushQueue,
    Workload,
    create_follower,
    deliver,
    index_followers,
    post,
    records_of,
)
from tests.triggers.test_push_work import image_of, push, state_of

WEB = f"{ECR}/web"


@pytest.fixture
def shop(
    app_client: Any, push_queue: PushQueue, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> str:
    """Service `shop` runs web:1.4.2 and follows semver:minor; it is in the follower index."""
    create_follower(setup_ecs)
    index_followers(app_client)
    return "shop"


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The delays the consumer asks for when it queues waiting work again; the messages come back at once."""
    asked: list[int] = []
    original = queue.send_later

    def send_now(sqs: Any, url: str, body: str, seconds: int) -> None:
        asked.append(seconds)
        original(sqs, url, body, 0)

    monkeypatch.setattr(queue, "send_later", send_now)
    return asked


def freeze(http: Any, minutes: int, **extra: Any) -> dict[str, Any]:
    until = (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0).isoformat()
    response = post(http, "/freezes", {"scope": {"services": ["shop"]}, "until": until, "reason": "launch", **extra})
    assert response.status_code == 201, response.json_body
    return dict(response.json_body)


def test_a_push_during_a_freeze_waits_and_deploys_once_it_has_ended(
    app_client: Any,
    http: Any,
    push_queue: PushQueue,
    setup_ecs: Any,
    shop: str,
    delays: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made = freeze(http, minutes=40)
    push_id = push(http)

    answers = deliver(app_client, push_queue, rounds=2)  # the item, then its copy: both find the freeze

    assert all(answer["batchItemFailures"] == [] for answer in answers)  # no attempt used: a new message
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    assert push_queue.waiting() == 1
    assert len(delays) == 2
    assert all(seconds >= 40 * 60 - 60 for seconds in delays)  # the freeze's end (SQS then caps it at 900)
    waiting = state_of(http, push_id)
    assert waiting["state"] == "queued"
    assert waiting["reason"].startswith(
        f"waiting for the end of the freeze: service 'test-cluster/shop' is frozen by freeze:{made['id']}"
    )
    assert records_of("test-cluster", "shop") == []

    ended = datetime.fromisoformat(made["until"]).timestamp() + 1
    monkeypatch.setattr(freezes, "clock", lambda: ended)
    deliver(app_client, push_queue)

    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"
    [record] = records_of("test-cluster", "shop")
    assert record["outcome"] == "IN_PROGRESS"
    assert push_queue.waiting() == 0
    assert push_queue.dead() == []


def test_a_push_waiting_for_a_freeze_deploys_once_it_is_lifted(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, delays: list[int]
) -> None:
    made = freeze(http, minutes=600)
    push_id = push(http)
    deliver(app_client, push_queue, rounds=1)
    assert delays[0] >= 600 * 60 - 60

    assert http.delete(f"/freezes/{made['id']}", headers={"x-api-key": API_KEY}).status_code == 200
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "deployed"


def test_the_wait_is_capped_at_sqs_s_longest_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    class Sqs:
        def send_message(self, **arguments: Any) -> dict[str, Any]:
            sent.append(arguments)
            return {}

    queue.send_later(Sqs(), "https://queue", "{}", 3 * 24 * 3600)
    assert sent[0]["DelaySeconds"] == 900


def test_a_push_during_a_freeze_that_drops_pushes_is_recorded_frozen_and_never_deploys(
    app_client: Any, http: Any, push_queue: PushQueue, setup_ecs: Any, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = freeze(http, minutes=30, pushes="drop")
    push_id = push(http)

    deliver(app_client, push_queue)

    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.2"
    dropped = state_of(http, push_id)
    assert dropped["state"] == "frozen"
    assert dropped["reason"].startswith(f"dropped: service 'test-cluster/shop' is frozen by freeze:{made['id']}")
    [record] = records_of("test-cluster", "shop")
    assert (record["outcome"], record["status"], record["action"]) == ("FROZEN", 423, "push")
    assert record["error"]["Code"] == "LockedError"
    assert record["containers"] == [{"name": "app", "previousImage": f"{WEB}:1.4.2", "image": f"{WEB}:1.4.3"}]
    assert push_queue.waiting() == 0

    # Once the freeze is over, the dropped push stays dropped; a push made then deploys.
    monkeypatch.setattr(freezes, "clock", lambda: datetime.fromisoformat(made["until"]).timestamp() + 1)
    later = push(http)
    deliver(app_client, push_queue)
    assert image_of(setup_ecs, "shop") == f"{WEB}:1.4.3"
    assert state_of(http, push_id)["state"] == "frozen"
    assert state_of(http, later)["state"] == "deployed"
