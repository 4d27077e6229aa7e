"""Service descriptions: export what runs, apply a description (the GitOps way), through the HTTP layer on moto."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import (
    API_KEY,
    ECR,
    EcsDeployments,
    Workload,
    active_revisions,
    create_service,
    post,
    records_of,
    register,
    rich_container,
    running_task_definition,
)

CLUSTER = "test-cluster"


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


def apply(http: Any, *descriptions: dict[str, Any], dry_run: bool | None = None) -> Any:
    body: dict[str, Any] = {"descriptions": list(descriptions)}
    if dry_run is not None:
        body["dryRun"] = dry_run
    return post(http, "/apply", body)


@pytest.fixture
def exported(http: Any, workload: Workload) -> dict[str, Any]:
    response = get(http, "/services/test-cluster/web/description")
    assert response.status_code == 200, response.json_body
    return dict(response.json_body)


def test_export_is_what_the_service_runs(exported: dict[str, Any]) -> None:
    assert exported == {
        "cluster": "test-cluster",
        "service": "web",
        "containers": {"app": f"{ECR}/web:1.0", "worker": "registry.example.com:5000/team/worker:3"},
    }


def test_an_export_applies_as_a_no_op(
    http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any], calls: list[str]
) -> None:
    calls.clear()
    response = apply(http, exported)
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert body["changed"] is False
    assert body["services"][0]["changed"] is False
    assert calls == ["DescribeServices", "DescribeTaskDefinition"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    assert records_of(CLUSTER, "web") == []  # a reconcile loop applying every minute fills no history


def test_an_apply_records_only_the_services_it_changed(
    http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any], ecs_deployments: EcsDeployments
) -> None:
    create_service(setup_ecs, CLUSTER, "web-b", workload.running_arn)
    moved = {"cluster": CLUSTER, "service": "web-b", "containers": {"app": f"{ECR}/web:1.1"}}
    response = apply(http, exported, moved)
    assert response.status_code == 200, response.json_body
    assert records_of(CLUSTER, "web") == []
    [record] = records_of(CLUSTER, "web-b")
    assert (record["action"], record["outcome"], record["batchId"]) == (
        "apply",
        "IN_PROGRESS",
        response.json_body["batchId"],
    )


def test_a_forty_kilobyte_apply_of_twenty_services_with_ten_pinned_containers_each_is_taken(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    names = [f"component-{index}" for index in range(10)]
    arn = register(setup_ecs, [rich_container(name, f"{ECR}/{name}:1") for name in names], family="wide")
    services = [f"wide-{index:02d}" for index in range(20)]
    for service in services:
        create_service(setup_ecs, CLUSTER, service, arn)
    descriptions = [
        {
            "cluster": CLUSTER,
            "service": service,
            "containers": {
                name: f"{ECR}/platform/payments-europe/{name}-service:2026.12.1@sha256:{name[-1] * 64}"
                for name in names
            },
        }
        for service in services
    ]
    body = {"descriptions": descriptions}
    assert len(json.dumps(body)) > 2 * 16 * 1024  # about 40 KB: twice the old 16 KiB limit and more
    response = post(http, "/apply", body)
    assert response.status_code == 200, response.json_body
    assert [result["changed"] for result in response.json_body["services"]] == [True] * 20


def test_an_image_without_a_tag_is_taken_back_as_it_runs(http: Any, setup_ecs: Any, workload: Workload) -> None:
    arn = register(setup_ecs, [rich_container("app", "public.ecr.aws/nginx/nginx")], family="bare")
    create_service(setup_ecs, CLUSTER, "bare", arn)
    exported = get(http, "/services/test-cluster/bare/description").json_body
    assert exported["containers"] == {"app": "public.ecr.aws/nginx/nginx"}
    response = apply(http, exported)
    assert response.status_code == 200, response.json_body
    assert response.json_body["changed"] is False


def test_an_image_without_a_tag_that_differs_from_what_runs_is_a_400(http: Any, exported: dict[str, Any]) -> None:
    response = apply(http, {**exported, "containers": {"app": f"{ECR}/web"}})
    assert response.status_code == 400
    assert "container 'app'" in response.json_body["Message"]
    assert f"it runs '{ECR}/web:1.0'" in response.json_body["Message"]


def test_editing_the_tag_rolls_the_service_and_the_old_file_brings_it_back(
    http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any], ecs_deployments: EcsDeployments
) -> None:
    edited = {**exported, "containers": {**exported["containers"], "app": f"{ECR}/web:1.1"}}
    forward = apply(http, edited)
    assert forward.status_code == 200, forward.json_body
    assert running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"] == f"{ECR}/web:1.1"

    back = apply(http, exported)
    assert back.status_code == 200, back.json_body
    running = running_task_definition(setup_ecs, workload)
    assert [c["image"] for c in running["containerDefinitions"]] == list(exported["containers"].values())
    assert back.json_body["services"][0]["containers"][0] == {
        "name": "app",
        "previousImage": f"{ECR}/web:1.1",
        "image": f"{ECR}/web:1.0",
        "digest": None,  # the checks before a write are off in this test (tests/deploy/test_verify.py)
    }


def test_containers_not_listed_are_left_alone(http: Any, setup_ecs: Any, workload: Workload) -> None:
    response = apply(http, {"cluster": CLUSTER, "service": "web", "containers": {"worker": "w/orker:9"}})
    assert response.status_code == 200, response.json_body
    running = running_task_definition(setup_ecs, workload)
    assert {c["name"]: c["image"] for c in running["containerDefinitions"]} == {
        "app": f"{ECR}/web:1.0",
        "worker": "w/orker:9",
    }


def test_several_services_move_together_and_a_matching_one_is_a_no_op(
    http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any]
) -> None:
    create_service(setup_ecs, CLUSTER, "web-2", workload.running_arn)
    other = {"cluster": CLUSTER, "service": "web-2", "containers": {"app": f"{ECR}/web:1.1"}}
    response = apply(http, exported, other)
    assert response.status_code == 200, response.json_body
    assert [(s["service"], s["changed"]) for s in response.json_body["services"]] == [("web", False), ("web-2", True)]
    assert response.json_body["batchId"]


def test_a_dry_run_writes_nothing(http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any]) -> None:
    edited = {**exported, "containers": {"app": f"{ECR}/web:1.1"}}
    response = apply(http, edited, dry_run=True)
    assert response.status_code == 200
    assert response.json_body["dryRun"] is True
    assert response.json_body["services"][0]["diff"] == [
        {"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.0", "to": f"{ECR}/web:1.1"}
    ]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_an_unknown_container_is_a_404_naming_it(http: Any, workload: Workload) -> None:
    response = apply(http, {"cluster": CLUSTER, "service": "web", "containers": {"sidecar": "x/y:1"}})
    assert response.status_code == 404
    assert response.json_body["Message"].startswith("service 'web': container 'sidecar' is not in")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "'descriptions' must be a list of service descriptions, not null"),
        ({"descriptions": []}, "'descriptions' must hold 1 to 20 descriptions, not 0"),
        ({"descriptions": [{"cluster": CLUSTER, "service": "web", "containers": {}}]}, "must name at least one"),
        ({"descriptions": [{"cluster": CLUSTER, "service": "web"}]}, "'descriptions[0].containers' must be an object"),
        (
            {"descriptions": [{"cluster": CLUSTER, "service": "web", "containers": {"app": "x:1"}, "image": "y"}]},
            "'descriptions[0]' has unknown field(s) 'image'",
        ),
        ({"descriptions": [{"cluster": CLUSTER, "service": "web", "containers": {"app": 1}}]}, "not a number"),
        ({"descriptions": ["web"]}, "'descriptions[0]' must be a description (an object), not a string"),
        ({"descriptions": [{"service": "web", "containers": {"app": "x:1"}}]}, "'descriptions[0]': 'cluster' is"),
        (
            {
                "descriptions": [
                    {"cluster": CLUSTER, "service": "web", "containers": {"app": "x:1"}},
                    {"cluster": "other", "service": "api", "containers": {"app": "x:1"}},
                ]
            },
            "the descriptions name several clusters ('other', 'test-cluster')",
        ),
        (
            {
                "descriptions": [
                    {"cluster": CLUSTER, "service": "web", "containers": {"app": "x:1"}},
                    {
                        "cluster": CLUSTER,
                        "service": "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web",
                        "containers": {"app": "x:2"},
                    },
                ]
            },
            "service 'web' is described more than once",
        ),
        ({"descriptions": [], "dryRun": "yes"}, "'descriptions' must hold"),
        ({"descriptions": [{"cluster": CLUSTER, "service": "web", "containers": {"a": "x:1"}}], "dryRun": 1}, "true"),
        ({"descriptions": [], "force": True}, "unknown field(s) 'force'"),
    ],
)
def test_bad_applies_are_a_400_naming_the_problem(
    http: Any, setup_ecs: Any, workload: Workload, body: dict[str, Any], message: str
) -> None:
    response = post(http, "/apply", body)
    assert response.status_code == 400, response.json_body
    assert message in response.json_body["Message"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_the_allowlists_apply_to_apply_and_export(
    http: Any, workload: Workload, exported: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_IMAGE_PREFIXES", "registry.example.com:5000/")
    response = apply(http, {**exported, "containers": {"app": f"{ECR}/web:1.1"}})
    assert response.status_code == 403
    monkeypatch.setenv("ALLOWED_SERVICES", "api")
    assert get(http, "/services/test-cluster/web/description").status_code == 403


def test_export_of_a_service_that_cannot_be_applied_to_is_a_409(http: Any, setup_ecs: Any, workload: Workload) -> None:
    create_service(setup_ecs, CLUSTER, "blue-green", workload.running_arn, deploymentController={"type": "CODE_DEPLOY"})
    response = get(http, "/services/test-cluster/blue-green/description")
    assert response.status_code == 409


def test_export_errors(http: Any, workload: Workload) -> None:
    assert get(http, "/services/nope/web/description").status_code == 404
    assert get(http, "/services/test-cluster/ghost/description").status_code == 404
    assert get(http, "/services/test-cluster/web/description?x=1").status_code == 400


def test_under_the_allowlists_an_export_still_applies_as_a_no_op_and_only_changes_are_checked(
    http: Any, setup_ecs: Any, workload: Workload, exported: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_IMAGE_PREFIXES", f"{ECR}/")  # the worker sidecar's registry is not listed
    unchanged = apply(http, exported)
    assert unchanged.status_code == 200, unchanged.json_body
    assert unchanged.json_body["changed"] is False

    moved = apply(http, {**exported, "containers": {**exported["containers"], "app": f"{ECR}/web:1.1"}})
    assert moved.status_code == 200, moved.json_body  # the worker is listed as it runs: not checked
    assert running_task_definition(setup_ecs, workload)["containerDefinitions"][0]["image"] == f"{ECR}/web:1.1"

    refused = apply(http, {**exported, "containers": {"worker": "registry.example.com:5000/team/worker:4"}})
    assert refused.status_code == 403, refused.json_body
    assert "ALLOWED_IMAGE_PREFIXES" in refused.json_body["Message"]
