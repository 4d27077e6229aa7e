"""Pure task-definition functions: faithful copy, container choice, image change, diff."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest

from chalicelib.core import taskdef
from chalicelib.core.errors import AmbiguousContainerError, ContainerNotFoundError, UncopyableTaskDefinitionError
from chalicelib.core.images import parse_image
from tests.conftest import RICH_TASK_DEFINITION, rich_container

# What RegisterTaskDefinition accepts, read from the installed SDK's model (no AWS call).
_MODEL = boto3.session.Session(region_name="eu-west-1").client("ecs").meta.service_model
REGISTRABLE = frozenset(_MODEL.operation_model("RegisterTaskDefinition").input_shape.members)


def described(**overrides: Any) -> dict[str, Any]:
    """A task definition as DescribeTaskDefinition returns it, read-only fields included."""
    return {
        **copy.deepcopy(RICH_TASK_DEFINITION),
        "containerDefinitions": [rich_container("app", "repo/web:1.0"), rich_container("worker", "repo/worker:3")],
        "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6",
        "revision": 6,
        "status": "ACTIVE",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
        "compatibilities": ["EC2", "FARGATE"],
        "registeredAt": "2026-11-25T10:00:00Z",
        "registeredBy": "arn:aws:iam::123456789012:role/ci",
        "deregisteredAt": None,
        **overrides,
    }


def test_every_field_ecs_describes_is_either_read_only_or_registrable() -> None:
    described_fields = set(_MODEL.shape_for("TaskDefinition").members)
    assert described_fields - taskdef.READ_ONLY_FIELDS <= REGISTRABLE
    assert not taskdef.READ_ONLY_FIELDS & REGISTRABLE


def test_copy_drops_only_read_only_fields() -> None:
    source = described()
    registration = taskdef.registration_input(source, [])
    assert set(source) - set(registration) == set(taskdef.READ_ONLY_FIELDS) & set(source)
    for key, value in registration.items():
        assert source[key] == value, key


def test_copy_is_deep_and_leaves_the_source_untouched() -> None:
    source = described()
    before = copy.deepcopy(source)
    registration = taskdef.registration_input(source, [])
    registration["containerDefinitions"][0]["environment"].append({"name": "X", "value": "1"})
    assert source == before


def test_copy_carries_tags_but_not_reserved_aws_tags() -> None:
    tags = [{"key": "team", "value": "a"}, {"key": "aws:cloudformation:stack-name", "value": "s"}]
    registration = taskdef.registration_input(described(), tags)
    assert registration["tags"] == [{"key": "team", "value": "a"}]


def test_copy_without_tags_sends_no_tags_field() -> None:
    assert "tags" not in taskdef.registration_input(described(), [])


def test_fields_no_sdk_knows_are_copied_at_every_depth() -> None:
    source = described(brandNewEcsFeature={"enabled": True})
    source["containerDefinitions"][0]["futureContainerField"] = "on"
    source["containerDefinitions"][0]["linuxParameters"]["futureNested"] = [1, 2]
    registration = taskdef.registration_input(source, [])
    assert registration["brandNewEcsFeature"] == {"enabled": True}
    assert registration["containerDefinitions"][0]["futureContainerField"] == "on"
    assert registration["containerDefinitions"][0]["linuxParameters"]["futureNested"] == [1, 2]


def test_with_images_changes_only_the_named_containers() -> None:
    registration = taskdef.registration_input(described(), [])
    changed = taskdef.with_images(registration, {"worker": "repo/worker:4"})
    assert taskdef.diff(registration, changed) == [
        taskdef.FieldChange("containerDefinitions[worker].image", "repo/worker:3", "repo/worker:4")
    ]
    assert registration["containerDefinitions"][1]["image"] == "repo/worker:3"


def test_named_container_is_chosen_even_from_another_repository() -> None:
    assert taskdef.choose_containers(described(), parse_image("other:1"), "worker") == ["worker"]


def test_unknown_container_lists_the_containers() -> None:
    with pytest.raises(ContainerNotFoundError, match=r"'sidecar'.*web:6.*app, worker"):
        taskdef.choose_containers(described(), parse_image("repo/web:2"), "sidecar")


def test_single_container_is_chosen_whatever_its_repository() -> None:
    single = described(containerDefinitions=[rich_container("app", "old/repo:1")])
    assert taskdef.choose_containers(single, parse_image("new/repo:2"), None) == ["app"]


def test_containers_from_the_requested_repository_are_chosen() -> None:
    shared = described(
        containerDefinitions=[
            rich_container("app", "repo/web:1.0"),
            rich_container("migrate", "repo/web:0.9"),
            rich_container("worker", "repo/worker:3"),
        ]
    )
    assert taskdef.choose_containers(shared, parse_image("repo/web:2"), None) == ["app", "migrate"]


def test_repository_match_understands_docker_hub_spellings() -> None:
    hub = described(containerDefinitions=[rich_container("app", "nginx:1"), rich_container("side", "redis:7")])
    assert taskdef.choose_containers(hub, parse_image("docker.io/library/nginx:2"), None) == ["app"]


def test_repository_match_keeps_registry_ports_apart() -> None:
    ported = described(containerDefinitions=[rich_container("a", "host:5000/app:1"), rich_container("b", "host/app:1")])
    assert taskdef.choose_containers(ported, parse_image("host:5000/app:2"), None) == ["a"]


def test_no_matching_repository_asks_for_a_container() -> None:
    with pytest.raises(AmbiguousContainerError, match=r"'container'.*app, worker"):
        taskdef.choose_containers(described(), parse_image("elsewhere/thing:1"), None)


@pytest.mark.parametrize(
    ("current", "wanted", "same"),
    [
        ("repo/web:1.0", "repo/web:1.0", True),
        ("nginx", "docker.io/library/nginx:latest", True),
        ("repo/web:1.0", "repo/web:1.1", False),
        ("not a valid image", "repo/web:1.0", False),
    ],
)
def test_is_same_image(current: str, wanted: str, same: bool) -> None:
    assert taskdef.is_same_image(current, parse_image(wanted)) is same


def test_diff_of_equal_definitions_is_empty() -> None:
    assert taskdef.diff(described(), described()) == []


def test_diff_names_containers_and_nested_fields() -> None:
    old = described()
    new = copy.deepcopy(old)
    new["containerDefinitions"][0]["environment"][0]["value"] = "staging"
    new["memory"] = "2048"
    del new["pidMode"]
    new["containerDefinitions"][1]["dockerLabels"]["owner"] = "me"
    assert [(c.path, c.old, c.new) for c in taskdef.diff(old, new)] == [
        ("containerDefinitions[app].environment[MODE].value", "production", "staging"),
        ("containerDefinitions[worker].dockerLabels.owner", None, "me"),
        ("memory", "1024", "2048"),
        ("pidMode", "task", None),
    ]


def test_diff_reports_added_and_removed_containers() -> None:
    old = described()
    new = copy.deepcopy(old)
    removed = new["containerDefinitions"].pop()
    paths = [c.path for c in taskdef.diff(old, new)]
    assert paths == ["containerDefinitions[worker]"]
    assert taskdef.diff(old, new)[0].old == removed


def test_field_change_json_shape() -> None:
    assert taskdef.FieldChange("a.b", 1, 2).as_dict() == {"path": "a.b", "from": 1, "to": 2}


def test_tag_names_the_revision_by_arn_or_by_label_when_the_arn_is_too_long() -> None:
    assert taskdef.tag_reference(described()) == "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:6"
    family = "f" * 250
    long_arn = described(
        family=family, taskDefinitionArn=f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:6"
    )
    assert taskdef.tag_reference(long_arn) == f"{family}:6"


def test_more_tags_than_ecs_allows_are_refused_before_registering() -> None:
    registration = {"tags": [{"key": f"k{i}", "value": "v"} for i in range(51)]}
    with pytest.raises(UncopyableTaskDefinitionError, match="51 tags"):
        taskdef.check_tag_count(registration)
    taskdef.check_tag_count({"tags": registration["tags"][:50]})
