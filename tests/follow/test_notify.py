"""Notification messages (pure): a subject a person can read, JSON a machine can, attributes to filter on."""

from __future__ import annotations

from typing import Any

from chalicelib.core.config import load_settings
from chalicelib.follow import notify

RECORD: dict[str, Any] = {
    "cluster": "prod",
    "service": "web",
    "deploymentId": "ecs-svc/1",
    "taskDefinition": {
        "arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7",
        "family": "web",
        "revision": 7,
    },
    "previousTaskDefinition": {"arn": "arn:…:web:6", "family": "web", "revision": 6},
    "containers": [{"name": "app", "previousImage": "repo:1.4", "image": "repo:1.5"}],
    "requestId": "req-1",
    "keyId": "key-1",
    "action": "update",
    "at": "2026-12-01T10:00:00.000Z",
}


def test_the_subject_says_what_happened_to_which_revision_and_why() -> None:
    sent = notify.notification(notify.ROLLED_BACK, RECORD, "ECS deployment circuit breaker: tasks failed to start.")
    assert sent.subject == "web on prod: deployment web:7 rolled back (tasks failed to start)"


def test_a_start_has_no_reason_in_its_subject() -> None:
    assert notify.notification(notify.STARTED, RECORD, "in progress").subject == "web on prod: deployment web:7 started"


def test_subjects_stay_within_what_sns_takes() -> None:
    sent = notify.notification(notify.FAILED, RECORD, "tasks failed:\n\t" + "é" * 10 + "x" * 200)
    assert len(sent.subject) <= 99
    assert sent.subject.isascii()
    assert "\n" not in sent.subject
    assert "\t" not in sent.subject
    assert sent.subject.endswith("...")


def test_the_message_carries_the_record_and_the_attributes_filter_on_it() -> None:
    sent = notify.notification(notify.COMPLETED, RECORD, "done")
    assert sent.message == {
        "event": "DEPLOYMENT_COMPLETED",
        "cluster": "prod",
        "service": "web",
        "account": None,
        "region": None,
        "deploymentId": "ecs-svc/1",
        "taskDefinition": RECORD["taskDefinition"],
        "previousTaskDefinition": RECORD["previousTaskDefinition"],
        "containers": RECORD["containers"],
        "requestId": "req-1",
        "keyId": "key-1",
        "action": "update",
        "at": "2026-12-01T10:00:00.000Z",
        "reason": "done",
        "serviceDeploymentArn": None,
        "strategy": None,
        "stop": None,
    }
    assert sent.attributes == {"event": "DEPLOYMENT_COMPLETED", "cluster": "prod", "service": "web"}


def test_a_record_of_another_account_is_told_with_its_account_and_region_to_filter_on() -> None:
    elsewhere = {**RECORD, "account": "222222222222", "region": "us-west-2"}
    sent = notify.notification(notify.FAILED, elsewhere, "tasks failed")
    assert (sent.message["account"], sent.message["region"]) == ("222222222222", "us-west-2")
    assert sent.attributes["account"] == "222222222222"
    assert sent.attributes["region"] == "us-west-2"


def test_history_days_and_topic_come_from_the_environment() -> None:
    settings = load_settings({"HISTORY_DAYS": "30", "NOTIFY_TOPIC_ARN": " arn:aws:sns:eu-west-1:1:t "})
    assert (settings.history_days, settings.notify_topic_arn) == (30, "arn:aws:sns:eu-west-1:1:t")
    for wrong in ("0", "-3", "many", "1.5"):
        assert load_settings({"HISTORY_DAYS": wrong}).history_days == 400
    assert load_settings({}).history_days == 400
