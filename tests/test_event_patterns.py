"""The event functions' EventBridge patterns, checked against moto's EventBridge with an SQS target.

`chalice deploy` turns each `@app.on_cw_event` pattern into a rule on the default
bus; moto cannot deliver to a Lambda target, so the same rule is given an SQS
queue here and events are put on the bus the way AWS services put them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.aws import clients
from tests.conftest import REGION


def event_pattern(function: str) -> dict[str, Any]:
    from app import app

    [source] = [s for s in app.event_sources if s.name == function]
    return dict(source.event_pattern)


@pytest.fixture
def bus_to_queue(moto_world: None) -> Any:
    """A rule with the function's pattern on the default bus, delivering to a queue; returns a putter."""
    events = clients.session().client("events", region_name=REGION)
    sqs = clients.session().client("sqs", region_name=REGION)

    def route(function: str) -> Any:
        queue = sqs.create_queue(QueueName=f"{function}-target")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=function, EventPattern=json.dumps(event_pattern(function)))
        events.put_targets(Rule=function, Targets=[{"Id": "queue", "Arn": arn}])

        def delivered(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
            events.put_events(Entries=entries)
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            return [json.loads(m["Body"]) for m in messages]

        return delivered

    return route


def entry(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "Resources": []}


ECS_DEPLOYMENT = {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": "ecs-svc/1", "reason": ""}


def test_deployment_events_receive_ecs_deployment_state_changes(bus_to_queue: Any) -> None:
    delivered = bus_to_queue("deployment_events")
    [event] = delivered([entry("aws.ecs", "ECS Deployment State Change", ECS_DEPLOYMENT)])
    assert event["detail"] == ECS_DEPLOYMENT
    assert (event["source"], event["detail-type"]) == ("aws.ecs", "ECS Deployment State Change")


def test_deployment_events_receive_ecs_pause_hooks(bus_to_queue: Any) -> None:
    delivered = bus_to_queue("deployment_events")
    hook = {"eventName": "HOOK_AWAITING_ACTION", "hookId": "hook-1"}
    [event] = delivered([entry("aws.ecs", "ECS Hook State Change", hook)])
    assert (event["detail-type"], event["detail"]) == ("ECS Hook State Change", hook)


@pytest.mark.parametrize(
    ("source", "detail_type"),
    [
        ("aws.ecs", "ECS Service Action"),
        ("custom.app", "ECS Hook State Change"),
        ("aws.ecs", "ECS Task State Change"),
        ("aws.ecr", "ECS Deployment State Change"),
        ("custom.app", "ECS Deployment State Change"),
    ],
)
def test_deployment_events_receive_nothing_else(bus_to_queue: Any, source: str, detail_type: str) -> None:
    delivered = bus_to_queue("deployment_events")
    assert delivered([entry(source, detail_type, ECS_DEPLOYMENT)]) == []


ECR_PUSH = {"result": "SUCCESS", "repository-name": "web", "image-tag": "1.4.3", "action-type": "PUSH"}


def test_registry_push_receives_successful_ecr_pushes(bus_to_queue: Any) -> None:
    delivered = bus_to_queue("registry_push")
    [event] = delivered([entry("aws.ecr", "ECR Image Action", ECR_PUSH)])
    assert event["detail"] == ECR_PUSH


@pytest.mark.parametrize(
    ("source", "detail_type", "detail"),
    [
        ("aws.ecr", "ECR Image Action", {**ECR_PUSH, "action-type": "DELETE"}),
        ("aws.ecr", "ECR Image Action", {**ECR_PUSH, "result": "FAILURE"}),
        ("aws.ecr", "ECR Image Scan", ECR_PUSH),
        ("aws.ecs", "ECR Image Action", ECR_PUSH),
    ],
)
def test_registry_push_receives_nothing_else(
    bus_to_queue: Any, source: str, detail_type: str, detail: dict[str, Any]
) -> None:
    delivered = bus_to_queue("registry_push")
    assert delivered([entry(source, detail_type, detail)]) == []


SERVICE_ARN = "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web"


def tag_change(keys: list[str], service: str = "ecs", resource_type: str = "service") -> dict[str, Any]:
    detail = {
        "changed-tag-keys": keys,
        "service": service,
        "resource-type": resource_type,
        "version": 3,
        "tags": {"image-updater:policy": "semver:minor", "team": "web"},
    }
    return {**entry("aws.tag", "Tag Change on Resource", detail), "Resources": [SERVICE_ARN]}


@pytest.mark.parametrize(
    "keys", [["image-updater:policy"], ["team", "image-updater:container"], ["image-updater:pin-digest"]]
)
def test_follower_tags_receives_tag_changes_of_the_following_tags_on_ecs_services(
    bus_to_queue: Any, keys: list[str]
) -> None:
    delivered = bus_to_queue("follower_tags")
    [event] = delivered([tag_change(keys)])
    assert event["resources"] == [SERVICE_ARN]
    assert event["detail"]["changed-tag-keys"] == keys


@pytest.mark.parametrize(
    ("keys", "service", "resource_type"),
    [
        (["team"], "ecs", "service"),  # a tag the service does not read
        (["image-updater:policy"], "ecs", "task-definition"),
        (["image-updater:policy"], "ec2", "instance"),
    ],
)
def test_follower_tags_receives_nothing_else(
    bus_to_queue: Any, keys: list[str], service: str, resource_type: str
) -> None:
    delivered = bus_to_queue("follower_tags")
    assert delivered([tag_change(keys, service, resource_type)]) == []
