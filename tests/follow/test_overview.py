"""GET /services: every service the caller may read, everywhere the stage reaches, with its newest deployment."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.aws import accounts, clients
from chalicelib.core.results import iso8601
from chalicelib.follow import overview
from chalicelib.state import approvals
from chalicelib.state.records import DeploymentRecord
from tests.conftest import (
    ACCOUNT,
    API_KEY,
    ECR,
    REGION,
    STATE_TABLE,
    EcsDeployments,
    Gateway,
    Workload,
    create_service,
    post,
    register,
    rich_container,
)
from tests.test_accounts import FAR_REGION, TARGET, Elsewhere

HEADERS = {"x-api-key": API_KEY}
DIGEST = "sha256:" + "ab" * 32
TARGET_CLUSTER = f"arn:aws:ecs:{REGION}:{TARGET}:cluster/test-cluster"


@pytest.fixture(autouse=True)
def no_revision_known() -> Iterator[None]:
    """Each test's AWS world is new: revisions of the same ARN run other images in each."""
    overview.revisions.forget()
    yield
    overview.revisions.forget()


@pytest.fixture
def aws_calls(moto_world: None) -> Counter[str]:
    """`service:Operation` of every call any client of the process makes from here on (home already known, as
    a Lambda function knows it from its own ARN)."""
    made: Counter[str] = Counter()

    def note(model: Any, **_: Any) -> None:
        made[f"{model.service_model.service_name}:{model.name}"] += 1

    clients.session().events.register("before-parameter-build", note)
    for client in list(clients._clients.values()):
        client.meta.events.register("before-parameter-build", note)
    return made


def listed(http: Any, query: str = "") -> dict[str, Any]:
    answer = http.get(f"/services{query}", headers=HEADERS)
    assert answer.status_code == 200, answer.json_body
    return dict(answer.json_body)


def names(body: dict[str, Any]) -> list[str]:
    return [s["service"] for s in body["services"]]


def write_record(service: str, outcome: str, at: datetime, cluster: str = "test-cluster", **extra: Any) -> None:
    """A deployment record of `service`, as the update path leaves it and the events move its outcome."""
    fields: dict[str, Any] = {
        "cluster": cluster,
        "service": service,
        "at": iso8601(at) or "",
        "action": "update",
        "request_id": "req-1",
        "key_id": "key-1",
        "source_ip": None,
        "changed": True,
        "force_new_deployment": False,
        "task_definition": {"arn": "arn:td/web:2", "family": "web", "revision": 2},
        "previous_task_definition": {"arn": "arn:td/web:1", "family": "web", "revision": 1},
        "containers": [{"name": "app", "previousImage": f"{ECR}/web:1.0", "image": f"{ECR}/web:2.0", "digest": None}],
        "deployment_id": "ecs-svc/1000000000000000001",
        "status": 200,
        "error": None,
        "outcome": outcome,
        "principal": "alice",
    }
    record = DeploymentRecord(**{**fields, **extra})
    dynamodb = clients.session().client("dynamodb", region_name=REGION)
    for item in record.items(history_days=30):
        dynamodb.put_item(TableName=STATE_TABLE, Item=item)


def write_approval(service: str, status: str = approvals.PENDING, deadline_hours: int = 24) -> None:
    """An open approval of a change to `service` in test-cluster."""
    now = datetime.now(UTC)
    change = approvals.ServiceChange(
        service, service, f"test-cluster/{service}", f"arn:svc/{service}", "arn:td/web:1", [{"name": "app"}]
    )
    approval = approvals.Approval(
        id=approvals.new_id(),
        kind=approvals.DEPLOY,
        status=status,
        cluster="test-cluster",
        services=[change],
        required=1,
        requested_by="bob",
        requested_at=now - timedelta(hours=1),
        deadline=now + timedelta(hours=deadline_hours),
        action="update",
    )
    clients.session().client("dynamodb", region_name=REGION).put_item(TableName=STATE_TABLE, Item=approval.item())


def refuse(client: Any, operation: str, code: str = "AccessDenied") -> None:
    """Every `operation` of `client` answered by AWS with an error `code`."""

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Error": {"Code": code, "Message": f"not allowed to call {operation}"}}
        return AWSResponse("https://aws.example/", 400, {}, None), error

    client.meta.events.register(f"before-call.{client.meta.service_model.endpoint_prefix}.{operation}", answer)


def test_lists_each_service_with_what_it_runs_its_policy_and_the_approvals_it_asks_for(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    pinned = register(setup_ecs, [rich_container("app", f"{ECR}/api@{DIGEST}")], family="api")
    tags = [{"key": "image-updater:policy", "value": "semver:minor"}, {"key": "image-updater:approvals", "value": "2"}]
    setup_ecs.create_cluster(clusterName="jobs")
    create_service(setup_ecs, "jobs", "api", pinned, tags=tags)

    body = listed(http)

    assert names(body) == ["api", "web"]  # by cluster (jobs, test-cluster), then service
    api, web = body["services"]
    assert web == {
        "account": ACCOUNT,
        "region": REGION,
        "cluster": "test-cluster",
        "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/test-cluster",
        "service": "web",
        "status": "ACTIVE",
        "taskDefinition": "web:1",
        "containers": [
            {"name": "app", "image": f"{ECR}/web:1.0", "tag": "1.0", "digest": None},
            {"name": "worker", "image": "registry.example.com:5000/team/worker:3", "tag": "3", "digest": None},
        ],
        "policy": None,
        "approvals": 0,
        "newest": None,
        "pendingApprovals": 0,
        "attention": None,
    }
    assert api["containers"] == [{"name": "app", "image": f"{ECR}/api@{DIGEST}", "tag": None, "digest": DIGEST}]
    assert (api["cluster"], api["taskDefinition"], api["policy"], api["approvals"]) == (
        "jobs",
        "api:1",
        "semver:minor",
        2,
    )
    assert body["places"] == [{"account": ACCOUNT, "region": REGION, "clusters": 2}]
    assert body["generatedAt"].endswith("Z")


def test_one_place_costs_a_list_per_cluster_a_describe_per_ten_services_and_a_query_per_service(
    http: Any, setup_ecs: Any, workload: Workload, aws_calls: Counter[str]
) -> None:
    other = register(setup_ecs, [rich_container("app", f"{ECR}/web:2.0")])
    for index in range(11):
        create_service(setup_ecs, "test-cluster", f"svc-{index:02d}", other if index % 2 else workload.running_arn)
    accounts.home()
    aws_calls.clear()  # the arranging above

    assert len(listed(http)["services"]) == 12
    assert aws_calls == {
        "ecs:ListClusters": 1,
        "ecs:ListServices": 1,
        "ecs:DescribeServices": 2,  # 12 services, 10 a call
        "ecs:DescribeTaskDefinition": 2,  # two revisions shared by all
        "dynamodb:Query": 13,  # each service's newest record, and the open approvals
    }
    aws_calls.clear()

    assert len(listed(http)["services"]) == 12
    assert aws_calls == {"ecs:ListClusters": 1, "ecs:ListServices": 1, "ecs:DescribeServices": 2, "dynamodb:Query": 13}


def test_a_revision_is_described_once_per_process_and_a_new_one_when_a_service_moves(
    http: Any, setup_ecs: Any, workload: Workload, aws_calls: Counter[str]
) -> None:
    listed(http)
    moved = register(setup_ecs, [rich_container("app", f"{ECR}/web:3.0")])
    setup_ecs.update_service(cluster="test-cluster", service="web", taskDefinition=moved)
    aws_calls.clear()

    [web] = listed(http)["services"]

    assert (web["taskDefinition"], web["containers"][0]["image"]) == ("web:2", f"{ECR}/web:3.0")
    assert aws_calls["ecs:DescribeTaskDefinition"] == 1
    assert overview.revisions.get(workload.running_arn) is not None  # the old one stays known


def test_the_newest_deployment_says_who_moved_what_from_where_to_where(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    moved = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})
    assert moved.status_code == 200, moved.json_body

    [web] = listed(http)["services"]

    newest = web["newest"]
    assert newest["deploymentId"] == ecs_deployments.last_id
    assert (newest["action"], newest["outcome"], newest["by"]) == ("update", "IN_PROGRESS", "local")
    assert newest["from"] == {"taskDefinition": "web:1", "images": {"app": f"{ECR}/web:1.0"}}
    assert newest["to"] == {"taskDefinition": "web:2", "images": {"app": f"{ECR}/web:1.1"}}
    assert web["attention"] is None  # in progress for seconds, not stuck


def test_services_that_need_attention_come_first_each_saying_why(http: Any, setup_ecs: Any, workload: Workload) -> None:
    now = datetime.now(UTC)
    outcomes = {
        "a-fine": ("COMPLETED", now - timedelta(hours=2)),
        "b-failed": ("FAILED", now - timedelta(hours=1)),
        "c-rolled-back": ("ROLLED_BACK", now - timedelta(hours=1)),
        "d-stuck": ("IN_PROGRESS", now - timedelta(minutes=31)),
        "e-rolling": ("IN_PROGRESS", now - timedelta(minutes=5)),
        "f-stopped": ("STOPPED", now - timedelta(hours=1)),
    }
    for name, (outcome, at) in outcomes.items():
        create_service(setup_ecs, "test-cluster", name, workload.running_arn)
        write_record(name, outcome, at)
    create_service(setup_ecs, "test-cluster", "g-waiting", workload.running_arn)
    write_approval("g-waiting")

    body = listed(http)

    assert [(s["service"], s["attention"]) for s in body["services"]] == [
        ("b-failed", "FAILED"),
        ("c-rolled-back", "ROLLED_BACK"),
        ("d-stuck", "STUCK"),
        ("f-stopped", "STOPPED"),
        ("g-waiting", "PENDING_APPROVAL"),
        ("a-fine", None),
        ("e-rolling", None),
        ("web", None),
    ]


def test_open_approvals_are_counted_per_service_and_one_past_its_deadline_is_not(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    write_approval("web")
    write_approval("web", status=approvals.APPROVING)
    write_approval("api", deadline_hours=-1)
    write_approval("api", status=approvals.REJECTED)

    counts = {s["service"]: (s["pendingApprovals"], s["attention"]) for s in listed(http)["services"]}

    assert counts == {"web": (2, "PENDING_APPROVAL"), "api": (0, None)}


def test_a_refusal_or_a_dropped_push_after_a_failed_deployment_does_not_hide_it(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    now = datetime.now(UTC)
    write_record("web", "FAILED", now - timedelta(hours=1))
    write_record("web", "ERROR", now - timedelta(minutes=30), deployment_id=None, changed=False)
    write_record("web", "NO_CHANGE", now - timedelta(minutes=20), deployment_id=None, changed=False)
    write_record("web", "FROZEN", now - timedelta(minutes=10), deployment_id=None, changed=False)
    [web] = listed(http)["services"]
    assert (web["attention"], web["newest"]["outcome"]) == ("FAILED", "FAILED")


def test_a_deployment_ecs_holds_at_a_pause_hook_waits_for_people_and_is_not_stuck(
    http: Any, setup_ecs: Any, workload: Workload
) -> None:
    pause = {"status": "AWAITING_ACTION", "approvalId": "0123456789abcdef", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT"}
    write_record("web", "IN_PROGRESS", datetime.now(UTC) - timedelta(minutes=45), pause=pause)
    [web] = listed(http)["services"]
    assert (web["attention"], web["newest"]["paused"]) == ("PENDING_APPROVAL", True)


def test_attention_names_the_most_urgent_reason() -> None:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def newest(outcome: str, minutes_ago: int = 60) -> DeploymentRecord:
        at = iso8601(now - timedelta(minutes=minutes_ago)) or ""
        return DeploymentRecord(
            "c", "s", at, "update", None, None, None, True, False, None, None, [], None, 200, None, outcome
        )

    assert overview.attention_of(newest("FAILED"), 1, now) == "FAILED"  # a failure before the approval waiting
    assert overview.attention_of(newest("IN_PROGRESS", 30), 0, now) is None  # 30 minutes is not yet stuck
    assert overview.attention_of(newest("IN_PROGRESS", 31), 1, now) == "STUCK"
    assert overview.attention_of(newest("PENDING_APPROVAL", 5), 0, now) == "PENDING_APPROVAL"
    assert overview.attention_of(newest("NO_CHANGE"), 0, now) is None
    assert overview.attention_of(newest("ERROR"), 0, now) is None  # the caller was answered with the error
    assert overview.attention_of(None, 0, now) is None


def test_services_in_another_account_are_listed_with_their_own_history(
    http: Any, monkeypatch: pytest.MonkeyPatch, workload: Workload, aws_calls: Counter[str]
) -> None:
    monkeypatch.setenv("TARGET_ACCOUNTS", TARGET)
    elsewhere = Elsewhere()
    elsewhere.workload(services=("web", "api"))
    write_record("web", "FAILED", datetime.now(UTC), service_key=f"{TARGET}/{REGION}/test-cluster/web")
    aws_calls.clear()  # the arranging above

    body = listed(http)

    assert [(s["account"], s["service"], s["attention"]) for s in body["services"]] == [
        (TARGET, "web", "FAILED"),  # the home web has no record: keys of two accounts never mix
        (ACCOUNT, "web", None),
        (TARGET, "api", None),
    ]
    assert body["services"][0]["clusterArn"] == TARGET_CLUSTER
    assert body["places"] == [
        {"account": ACCOUNT, "region": REGION, "clusters": 1},
        {"account": TARGET, "region": REGION, "clusters": 1},
    ]
    assert aws_calls["sts:AssumeRole"] == 1
    assert aws_calls["ecs:ListClusters"] == 2


def test_a_place_whose_role_is_refused_is_named_with_its_error_and_the_others_are_listed(
    http: Any, monkeypatch: pytest.MonkeyPatch, workload: Workload
) -> None:
    monkeypatch.setenv("TARGET_ACCOUNTS", TARGET)
    monkeypatch.setenv("TARGET_REGIONS", FAR_REGION)
    refuse(clients.cached_client("sts"), "AssumeRole")

    body = listed(http)

    assert names(body) == ["web"]
    home, far, *elsewhere = body["places"]
    assert home == {"account": ACCOUNT, "region": REGION, "clusters": 1}
    assert far == {"account": ACCOUNT, "region": FAR_REGION, "clusters": 0}
    assert [(p["account"], p["region"]) for p in elsewhere] == [(TARGET, REGION), (TARGET, FAR_REGION)]
    assert all("AssumeRole" in p["error"] and "clusters" not in p for p in elsewhere)


def test_a_place_whose_calls_fail_midway_lists_none_of_its_services(
    http: Any, monkeypatch: pytest.MonkeyPatch, workload: Workload
) -> None:
    monkeypatch.setenv("TARGET_ACCOUNTS", TARGET)
    Elsewhere().workload()
    listed(http)  # the target account's client is made (and kept) by the first listing
    [there] = [c for key, c in accounts._clients.items() if key[0] == "ecs" and key[1] == TARGET]
    refuse(there, "DescribeServices")

    body = listed(http)

    assert [(s["account"], s["service"]) for s in body["services"]] == [(ACCOUNT, "web")]
    assert "DescribeServices" in body["places"][1]["error"]


RULES = """
rules:
  - principals: ["arn:aws:sts::123456789012:assumed-role/web-team/*"]
    actions: [read]
    clusters: [test-cluster]
    services: [web]
"""
WEB_TEAM = "arn:aws:sts::123456789012:assumed-role/web-team/erin"


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "permissions.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))


def test_only_what_the_caller_may_read_is_listed_and_other_clusters_are_never_described(
    gateway: Gateway, setup_ecs: Any, workload: Workload, rules: None, aws_calls: Counter[str]
) -> None:
    create_service(setup_ecs, "test-cluster", "api", workload.running_arn)
    setup_ecs.create_cluster(clusterName="payments")
    create_service(setup_ecs, "payments", "ledger", workload.running_arn)
    aws_calls.clear()  # the arranging above

    answer = gateway("GET", "/services", user_arn=WEB_TEAM)

    assert answer.status == 200, answer.json
    assert [(s["cluster"], s["service"]) for s in answer.json["services"]] == [("test-cluster", "web")]
    assert answer.json["places"] == [{"account": ACCOUNT, "region": REGION, "clusters": 1}]
    assert aws_calls["ecs:ListServices"] == 1  # payments is skipped unread
    assert aws_calls["ecs:DescribeServices"] == 1
    assert aws_calls["dynamodb:Query"] == 2  # web's newest record, and the approvals


def test_a_caller_who_may_read_nothing_sees_no_service(gateway: Gateway, workload: Workload, rules: None) -> None:
    answer = gateway("GET", "/services", user_arn="arn:aws:sts::123456789012:assumed-role/intern/dave")
    assert answer.status == 200, answer.json
    assert answer.json["services"] == []
    assert answer.json["places"] == [{"account": ACCOUNT, "region": REGION, "clusters": 0}]


def test_cluster_narrows_the_list_to_one_cluster_without_listing_clusters(
    http: Any, setup_ecs: Any, workload: Workload, aws_calls: Counter[str]
) -> None:
    setup_ecs.create_cluster(clusterName="jobs")
    create_service(setup_ecs, "jobs", "batch", workload.running_arn)
    aws_calls.clear()  # the arranging above

    body = listed(http, "?cluster=jobs")

    assert [(s["cluster"], s["service"]) for s in body["services"]] == [("jobs", "batch")]
    assert body["places"] == [{"account": ACCOUNT, "region": REGION, "clusters": 1}]
    assert aws_calls["ecs:ListClusters"] == 0


def test_cluster_takes_the_arn_of_a_cluster_in_another_account(
    http: Any, monkeypatch: pytest.MonkeyPatch, workload: Workload
) -> None:
    monkeypatch.setenv("TARGET_ACCOUNTS", TARGET)
    Elsewhere().workload(services=("api",))

    body = listed(http, f"?cluster={quote(TARGET_CLUSTER, safe='')}")

    assert [(s["account"], s["clusterArn"], s["service"]) for s in body["services"]] == [
        (TARGET, TARGET_CLUSTER, "api")
    ]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?cluster=nope", 404, "cluster 'nope' was not found"),
        ("?cluster=", 400, "cluster"),
        ("?service=web", 400, "unknown query parameter(s) 'service'"),
        (f"?cluster={quote('arn:aws:ecs:eu-west-1:333333333333:cluster/x', safe='')}", 403, "333333333333"),
    ],
)
def test_a_wrong_cluster_is_the_requests_error(
    http: Any, workload: Workload, query: str, status: int, message: str
) -> None:
    answer = http.get(f"/services{query}", headers=HEADERS)
    assert answer.status_code == status, answer.json_body
    assert message in answer.json_body["Message"]


def test_a_cluster_the_caller_may_not_read_is_a_403(gateway: Gateway, workload: Workload, rules: None) -> None:
    setup = clients.session().client("ecs", region_name=REGION)
    setup.create_cluster(clusterName="payments")
    answer = gateway("GET", "/services?cluster=payments", user_arn=WEB_TEAM)
    assert answer.status == 403
    assert "may not read cluster" in answer.json["Message"]


def test_follows_list_clusters_pages(http: Any, ecs: Any, setup_ecs: Any, workload: Workload) -> None:
    # moto answers ListClusters in one page; real ECS pages by 100. Serve moto's own answer as two pages.
    setup_ecs.create_cluster(clusterName="jobs")
    create_service(setup_ecs, "jobs", "batch", workload.running_arn)
    everything = setup_ecs.list_clusters()["clusterArns"]
    asked: list[dict[str, Any]] = []

    def paged(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        sent = json.loads(params["body"])
        asked.append(sent)
        first = "nextToken" not in sent
        parsed: dict[str, Any] = {"clusterArns": everything[:1] if first else everything[1:]}
        if first:
            parsed["nextToken"] = "page-2"
        return AWSResponse("https://ecs.eu-west-1.amazonaws.com/", 200, {}, None), parsed

    ecs.meta.events.register("before-call.ecs.ListClusters", paged)

    body = listed(http)

    assert sorted(names(body)) == ["batch", "web"]
    assert [a.get("nextToken") for a in asked] == [None, "page-2"]
    assert all(a["maxResults"] == 100 for a in asked)
