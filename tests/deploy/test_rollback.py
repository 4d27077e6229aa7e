"""POST /rollback: back to the exact previous revision, checked before the one write."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core import taskdef
from chalicelib.core.errors import (
    InvalidRequestError,
    NothingToRollBackToError,
    RevisionNotActiveError,
    TaskDefinitionNotFoundError,
)
from chalicelib.core.images import parse_image
from chalicelib.core.requests import RollbackRequest, UpdateRequest
from chalicelib.deploy.rollback import roll_back
from chalicelib.deploy.update import update_image
from tests.conftest import (
    ECR,
    Workload,
    active_revisions,
    create_service,
    post,
    register,
    rich_container,
    running_task_definition,
)


def updated(ecs: Any, workload: Workload, tag: str = "1.1") -> str:
    """Update the workload through /update's domain call; returns the new revision's ARN."""
    result = update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(f"{ECR}/web:{tag}")))
    assert result.task_definition.arn is not None
    return result.task_definition.arn


def test_rollback_after_update_restores_the_exact_previous_revision(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    new_arn = updated(ecs, workload)
    calls.clear()

    result = roll_back(ecs, RollbackRequest(workload.cluster, workload.service))

    assert calls == ["DescribeServices", "DescribeTaskDefinition", "DescribeTaskDefinition", "UpdateService"]
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn
    assert active_revisions(setup_ecs, "web") == [workload.running_arn, new_arn]  # nothing registered
    assert result.changed is True
    assert result.task_definition.arn == workload.running_arn
    assert result.previous_task_definition is not None
    assert result.previous_task_definition.arn == new_arn
    assert [c.as_dict() for c in result.containers] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.1", "image": f"{ECR}/web:1.0", "digest": None}
    ]


def test_two_updates_roll_back_one_step(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    first = updated(ecs, workload, "1.1")
    updated(ecs, workload, "1.2")
    result = roll_back(ecs, RollbackRequest(workload.cluster, workload.service))
    assert result.task_definition.arn == first


def test_explicit_revision_of_the_same_family(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    updated(ecs, workload, "1.1")
    updated(ecs, workload, "1.2")
    result = roll_back(ecs, RollbackRequest(workload.cluster, workload.service, "web:1"))
    assert result.task_definition.arn == workload.running_arn
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn


def test_other_family_is_refused_before_any_write(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    register(setup_ecs, [rich_container("app", "other:1")], family="other")
    with pytest.raises(InvalidRequestError, match="not of the service's family 'web'"):
        roll_back(ecs, RollbackRequest(workload.cluster, workload.service, "other:1"))
    assert "UpdateService" not in calls


def test_inactive_target_is_refused_before_any_write(
    ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    updated(ecs, workload)
    setup_ecs.deregister_task_definition(taskDefinition=workload.running_arn)
    calls.clear()
    # moto would accept an INACTIVE revision in UpdateService; ECS would not start tasks from it.
    with pytest.raises(RevisionNotActiveError, match="web:1 is INACTIVE"):
        roll_back(ecs, RollbackRequest(workload.cluster, workload.service))
    assert "UpdateService" not in calls


def test_revision_not_made_by_update_has_nothing_to_roll_back_to(
    ecs: Any, workload: Workload, calls: list[str]
) -> None:
    with pytest.raises(NothingToRollBackToError, match="web:1 was not registered by /update"):
        roll_back(ecs, RollbackRequest(workload.cluster, workload.service))
    assert calls == ["DescribeServices", "DescribeTaskDefinition"]


def test_target_that_is_already_running_changes_nothing(ecs: Any, workload: Workload, calls: list[str]) -> None:
    result = roll_back(ecs, RollbackRequest(workload.cluster, workload.service, "web:1"))
    assert result.changed is False
    assert "UpdateService" not in calls


def test_unknown_revision_is_a_404_class_error(ecs: Any, workload: Workload) -> None:
    with pytest.raises(TaskDefinitionNotFoundError, match="web:99"):
        roll_back(ecs, RollbackRequest(workload.cluster, workload.service, "web:99"))


def test_update_tags_the_revision_it_replaced(ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    updated(ecs, workload)
    tags = running_task_definition(setup_ecs, workload)["tags"]
    assert taskdef.tag_value(tags, taskdef.PREVIOUS_TASK_DEFINITION_TAG) == workload.running_arn


def test_rollback_route_answers_like_update(http: Any, ecs: Any, workload: Workload) -> None:
    new_arn = updated(ecs, workload)
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web"})
    assert response.status_code == 200
    body = response.json_body
    assert body["changed"] is True
    assert body["taskDefinition"]["arn"] == workload.running_arn
    assert body["previousTaskDefinition"]["arn"] == new_arn
    assert body["containers"] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.1", "image": f"{ECR}/web:1.0", "digest": None}
    ]


def test_a_dry_run_of_a_rollback_shows_the_two_revisions_diff_and_writes_nothing(
    http: Any, ecs: Any, setup_ecs: Any, workload: Workload, calls: list[str]
) -> None:
    new_arn = updated(ecs, workload)
    calls.clear()
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web", "dryRun": True})
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert (body["dryRun"], body["changed"], body["deployment"]) == (True, True, None)
    assert body["taskDefinition"]["arn"] == workload.running_arn
    assert body["previousTaskDefinition"]["arn"] == new_arn
    # Only what the revisions differ in, as registered: not ECS's own fields (revision, ARN), not the audit tags.
    assert body["diff"] == [
        {"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.1", "to": f"{ECR}/web:1.0"}
    ]
    assert "UpdateService" not in calls
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == new_arn
    refused = post(http, "/rollback", {"cluster": "test-cluster", "service": "web", "dryRun": "yes"})
    assert refused.status_code == 400
    assert "'dryRun' must be true or false" in refused.json_body["Message"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"cluster": "test-cluster", "service": "web"}, 409, "was not registered by /update"),
        ({"cluster": "test-cluster", "service": "web", "taskDefinition": "web:42"}, 404, "web:42"),
        ({"cluster": "test-cluster", "service": "web", "taskDefinition": "web"}, 400, "'taskDefinition' must be"),
        ({"cluster": "test-cluster", "service": "web", "image": "x"}, 400, "unknown field(s) 'image'"),
        ({"cluster": "test-cluster"}, 400, "'service' is required"),
        ({"cluster": "nope", "service": "web"}, 404, "cluster 'nope' was not found"),
        (
            {"cluster": "test-cluster", "service": "web", "taskDefinition": "other:1"},
            400,
            "not of the service's family",
        ),
        ({"cluster": "test-cluster", "service": "bg", "taskDefinition": "web:1"}, 409, "CODE_DEPLOY"),
    ],
)
def test_rollback_route_errors(
    http: Any, setup_ecs: Any, workload: Workload, body: dict[str, Any], status: int, message: str
) -> None:
    register(setup_ecs, [rich_container("app", "other:1")], family="other")
    create_service(
        setup_ecs, workload.cluster, "bg", workload.running_arn, deploymentController={"type": "CODE_DEPLOY"}
    )
    response = post(http, "/rollback", body)
    assert response.status_code == status
    assert message in response.json_body["Message"]
