"""Result values: deployment choice, timestamps, the response shape."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from chalicelib.core.results import deployment_running, iso8601, revision_of


def test_deployment_running_picks_the_primary_deployment_of_the_revision() -> None:
    service = {
        "deployments": [
            {"id": "ecs-svc/old", "status": "ACTIVE", "taskDefinition": "td:1", "rolloutState": "COMPLETED"},
            {"id": "ecs-svc/new", "status": "PRIMARY", "taskDefinition": "td:2", "rolloutState": "IN_PROGRESS"},
        ]
    }
    assert deployment_running(service, "td:2") == {
        "id": "ecs-svc/new",
        "status": "PRIMARY",
        "rolloutState": "IN_PROGRESS",
        "createdAt": None,
    }
    assert deployment_running(service, "td:3") is None


def test_timestamps_are_iso8601_utc() -> None:
    moment = datetime(2026, 11, 25, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert iso8601(moment) == "2026-11-25T10:00:00.000Z"
    assert iso8601(None) is None


def test_revision_of_an_arn_or_a_label() -> None:
    assert revision_of("arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7") == {"family": "web", "revision": 7}
    assert revision_of("web:7") == {"family": "web", "revision": 7}
