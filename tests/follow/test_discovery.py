"""GET /clusters/{cluster}/services: every service, paginated and batched, task definitions described once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.conftest import API_KEY, ECR, Workload, create_service, register, rich_container


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


@pytest.fixture
def many_services(setup_ecs: Any, workload: Workload) -> list[str]:
    """23 more services on two shared task definitions, with names that sort case-sensitively."""
    other = register(setup_ecs, [rich_container("app", f"{ECR}/web:2.0"), rich_container("worker", "w:1")])
    names = [f"svc-{i:02d}" for i in range(20)] + ["Zeta", "alpha", "Beta"]
    for index, name in enumerate(names):
        create_service(setup_ecs, workload.cluster, name, other if index % 2 else workload.running_arn)
    return names


def test_lists_every_service_sorted_by_name(http: Any, many_services: list[str]) -> None:
    body = get(http, "/clusters/test-cluster/services").json_body
    names = [s["service"] for s in body["services"]]
    assert body["cluster"] == "test-cluster"
    assert names == sorted([*many_services, "web"])
    assert names[:2] == ["Beta", "Zeta"]  # uppercase sorts before lowercase


def test_each_service_shows_its_revision_and_images(http: Any, many_services: list[str], workload: Workload) -> None:
    services = {s["service"]: s for s in get(http, "/clusters/test-cluster/services").json_body["services"]}
    assert services["web"] == {
        "service": "web",
        "status": "ACTIVE",
        "taskDefinition": {"arn": workload.running_arn, "family": "web", "revision": 1},
        "containers": [
            {"name": "app", "image": f"{ECR}/web:1.0"},
            {"name": "worker", "image": "registry.example.com:5000/team/worker:3"},
        ],
    }
    assert services["svc-01"]["containers"][0]["image"] == f"{ECR}/web:2.0"


def test_batches_describe_by_ten_and_describes_shared_task_definitions_once(
    http: Any, many_services: list[str], calls: list[str]
) -> None:
    get(http, "/clusters/test-cluster/services")
    assert calls.count("ListServices") == 1
    assert calls.count("DescribeServices") == 3  # 24 services
    assert calls.count("DescribeTaskDefinition") == 2  # two task definitions shared by all


def test_follows_list_services_pages(http: Any, ecs: Any, setup_ecs: Any, many_services: list[str]) -> None:
    # moto answers ListServices in one page whatever maxResults says; real ECS pages by 100.
    # Serve moto's own answer as two pages to walk the nextToken loop.
    everything = setup_ecs.list_services(cluster="test-cluster")["serviceArns"]
    asked: list[dict[str, Any]] = []

    def paged(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        sent = json.loads(params["body"])
        asked.append(sent)
        first = "nextToken" not in sent
        parsed: dict[str, Any] = {"serviceArns": everything[:15] if first else everything[15:]}
        if first:
            parsed["nextToken"] = "page-2"
        return AWSResponse("https://ecs.eu-west-1.amazonaws.com/", 200, {}, None), parsed

    ecs.meta.events.register("before-call.ecs.ListServices", paged)

    body = get(http, "/clusters/test-cluster/services").json_body

    assert len(body["services"]) == len(everything)
    assert [a.get("nextToken") for a in asked] == [None, "page-2"]
    assert all(a["maxResults"] == 100 for a in asked)


def test_unknown_cluster_is_a_404(http: Any, workload: Workload) -> None:
    response = get(http, "/clusters/nope/services")
    assert response.status_code == 404
    assert "cluster 'nope' was not found" in response.json_body["Message"]


def test_empty_cluster_has_no_services(http: Any, setup_ecs: Any, workload: Workload) -> None:
    setup_ecs.create_cluster(clusterName="empty")
    assert get(http, "/clusters/empty/services").json_body == {"cluster": "empty", "services": []}


def test_parallel_describes_keep_the_time_budget(
    http: Any, ecs: Any, many_services: list[str], virtual_clock: Any
) -> None:
    # Time runs out just before the task definitions are described (in pool threads):
    # they must see the request's deadline and give up, not call AWS past it.
    ecs.meta.events.register("before-call.ecs.DescribeTaskDefinition", lambda **_: setattr(virtual_clock, "now", 1e6))
    response = get(http, "/clusters/test-cluster/services")
    assert response.status_code == 504
    assert response.json_body["Message"].startswith("DescribeTaskDefinition did not answer in time")
