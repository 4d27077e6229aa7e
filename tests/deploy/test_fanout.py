"""One image to many services in one request, all or nothing (POST /update with `services`).

The fleet: services web-a and web-b run the same revision of family `web`
(containers app and worker), api runs family `api` (one container, the same
repository), and jobs runs family `jobs`. moto's UpdateService answers are given
the new deployment, as ECS's carry it (conftest.EcsDeployments).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.aws import budget, clients
from tests.conftest import (
    ECR,
    EcsDeployments,
    Workload,
    active_revisions,
    create_service,
    lock_items,
    post,
    records_of,
    register,
    rich_container,
    stage_locks,
    table_items,
)
from tests.faults import AttemptFaults, ServiceFaults, VirtualClock, error_answer

CLUSTER = "test-cluster"
NEW = f"{ECR}/web:2.0"
SERVICES = ["web-a", "web-b", "api", "jobs"]


@pytest.fixture
def fleet(setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments) -> dict[str, str]:
    """Four services on three families; returns service -> the revision ARN it runs."""
    web = workload.running_arn
    api = register(setup_ecs, [rich_container("app", f"{ECR}/web:1.0")], family="api")
    jobs = register(setup_ecs, [rich_container("app", f"{ECR}/web:1.0")], family="jobs")
    running = {"web-a": web, "web-b": web, "api": api, "jobs": jobs}
    for name, arn in running.items():
        create_service(setup_ecs, CLUSTER, name, arn)
    return running


@pytest.fixture
def dynamodb_calls(http: Any) -> list[str]:
    made: list[str] = []
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: made.append(model.name)
    )
    return made


def fan_out(http: Any, services: list[str] = SERVICES, **extra: Any) -> Any:
    return post(http, "/update", {"cluster": CLUSTER, "services": services, "image": NEW, **extra})


def running(setup_ecs: Any, services: list[str] = SERVICES) -> dict[str, str]:
    described = setup_ecs.describe_services(cluster=CLUSTER, services=services)["services"]
    return {s["serviceName"]: s["taskDefinition"] for s in described}


def all_families_active(setup_ecs: Any) -> list[str]:
    return [arn for family in ("web", "api", "jobs") for arn in active_revisions(setup_ecs, family)]


def assert_nothing_changed(setup_ecs: Any, fleet: dict[str, str]) -> None:
    assert running(setup_ecs) == fleet
    assert sorted(all_families_active(setup_ecs)) == sorted(set(fleet.values()))
    assert lock_items() == []


# -- the happy path ---------------------------------------------------------------------------------


def test_every_service_moves_in_one_request(http: Any, setup_ecs: Any, fleet: dict[str, str]) -> None:
    response = fan_out(http)
    assert response.status_code == 200, response.json_body
    body = response.json_body
    assert (body["changed"], body["cluster"], body["dryRun"]) == (True, CLUSTER, False)
    assert [s["service"] for s in body["services"]] == SERVICES
    now = running(setup_ecs)
    for answer in body["services"]:
        assert answer["changed"] is True
        assert now[answer["service"]] == answer["taskDefinition"]["arn"]
        assert answer["previousTaskDefinition"]["arn"] == fleet[answer["service"]]
        assert answer["deployment"]["status"] == "PRIMARY"


def test_services_on_one_revision_share_one_new_revision(http: Any, setup_ecs: Any, fleet: dict[str, str]) -> None:
    body = fan_out(http).json_body
    by_service = {s["service"]: s["taskDefinition"]["arn"] for s in body["services"]}
    assert by_service["web-a"] == by_service["web-b"]
    assert len(set(by_service.values())) == 3
    assert len(active_revisions(setup_ecs, "web")) == 2  # the old one and one new one, not one per service


def test_calls_are_one_describe_per_ten_services_and_one_per_revision(
    http: Any, fleet: dict[str, str], calls: list[str], dynamodb_calls: list[str]
) -> None:
    fan_out(http)
    assert sorted(calls) == sorted(
        ["DescribeServices"] + ["DescribeTaskDefinition"] * 3 + ["RegisterTaskDefinition"] * 3 + ["UpdateService"] * 4
    )
    assert dynamodb_calls == ["TransactWriteItems", "TransactWriteItems"]


def test_twelve_services_are_described_in_two_batches(
    http: Any, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments, calls: list[str]
) -> None:
    names = [f"svc-{n:02d}" for n in range(12)]
    for name in names:
        create_service(setup_ecs, CLUSTER, name, workload.running_arn)
    response = fan_out(http, names)
    assert response.status_code == 200, response.json_body
    assert calls.count("DescribeServices") == 2
    assert calls.count("DescribeTaskDefinition") == calls.count("RegisterTaskDefinition") == 1
    assert calls.count("UpdateService") == 12


def test_a_service_that_already_runs_the_image_is_a_noop_in_the_list(
    http: Any, setup_ecs: Any, fleet: dict[str, str], calls: list[str]
) -> None:
    first = post(http, "/update", {"cluster": CLUSTER, "service": "jobs", "image": NEW})
    assert first.status_code == 200
    calls.clear()
    body = fan_out(http).json_body
    jobs = next(s for s in body["services"] if s["service"] == "jobs")
    assert (jobs["changed"], jobs["previousTaskDefinition"], jobs["deployment"]) == (False, None, None)
    assert calls.count("UpdateService") == 3


def test_each_service_is_recorded_with_a_shared_batch_id(http: Any, fleet: dict[str, str]) -> None:
    body = fan_out(http).json_body
    records = [records_of(CLUSTER, name) for name in SERVICES]
    assert all(len(found) == 1 for found in records)
    batch_ids = {found[0]["batchId"] for found in records}
    assert batch_ids == {body["batchId"]}
    assert body["batchId"]
    assert {found[0]["outcome"] for found in records} == {"IN_PROGRESS"}
    assert lock_items() == []


def test_dry_run_writes_nothing_and_shows_each_diff(
    http: Any, setup_ecs: Any, fleet: dict[str, str], calls: list[str], dynamodb_calls: list[str]
) -> None:
    body = fan_out(http, dryRun=True).json_body
    assert body["dryRun"] is True
    assert body["batchId"] is None
    assert all(
        s["diff"] == [{"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.0", "to": NEW}]
        for s in body["services"]
    )
    assert set(calls) == {"DescribeServices", "DescribeTaskDefinition"}
    assert dynamodb_calls == ["BatchGetItem"]  # the freeze gates, read to say whether a freeze applies
    assert body["freezes"] == []
    assert_nothing_changed(setup_ecs, fleet)


def test_the_containers_map_applies_to_each_service(http: Any, setup_ecs: Any, fleet: dict[str, str]) -> None:
    body = {"cluster": CLUSTER, "services": ["web-a", "web-b"], "containers": {"app": NEW, "worker": "w/orker:9"}}
    response = post(http, "/update", body)
    assert response.status_code == 200, response.json_body
    assert [c["name"] for c in response.json_body["services"][0]["containers"]] == ["app", "worker"]


# -- the lock set -----------------------------------------------------------------------------------


def test_a_held_lock_on_one_service_blocks_the_whole_request(
    http: Any, setup_ecs: Any, fleet: dict[str, str], virtual_clock: VirtualClock
) -> None:
    from chalicelib.access.audit import Provenance

    with stage_locks().hold([f"{CLUSTER}/api"], Provenance("update")):
        response = fan_out(http)
        assert response.status_code == 409
        assert "'test-cluster/api'" in response.json_body["Message"]
        assert "'test-cluster/web-a'" not in response.json_body["Message"]
    assert_nothing_changed(setup_ecs, fleet)
    assert table_items("record") == []


# -- the read phase: any failure, nothing written ---------------------------------------------------


@pytest.mark.parametrize(
    ("services", "extra", "status", "message"),
    [
        (["web-a", "ghost", "api"], {}, 404, "service 'ghost' was not found in cluster 'test-cluster'"),
        (["web-a", "api"], {"container": "sidecar"}, 404, "service 'web-a': container 'sidecar' is not in"),
        (["web-a", "api"], {"image": "elsewhere/thing:1"}, 400, "service 'web-a': no container of task definition"),
    ],
)
def test_a_read_phase_failure_names_the_service_and_writes_nothing(
    http: Any,
    setup_ecs: Any,
    fleet: dict[str, str],
    calls: list[str],
    services: list[str],
    extra: dict[str, Any],
    status: int,
    message: str,
) -> None:
    response = fan_out(http, services, **extra)
    assert response.status_code == status, response.json_body
    assert message in response.json_body["Message"]
    assert not {"RegisterTaskDefinition", "UpdateService"} & set(calls)
    assert_nothing_changed(setup_ecs, fleet)


def test_a_service_that_cannot_take_a_revision_stops_the_request(
    http: Any, setup_ecs: Any, fleet: dict[str, str], workload: Workload
) -> None:
    create_service(setup_ecs, CLUSTER, "blue-green", workload.running_arn, deploymentController={"type": "CODE_DEPLOY"})
    response = fan_out(http, ["web-a", "blue-green"])
    assert response.status_code == 409
    assert response.json_body["Message"].startswith("service 'blue-green': ")
    assert_nothing_changed(setup_ecs, fleet)


def test_an_image_outside_the_allowlist_is_refused_before_any_call(
    http: Any, fleet: dict[str, str], calls: list[str], dynamodb_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_SERVICES", "web-*")
    response = fan_out(http)
    assert response.status_code == 403
    assert "'api'" in response.json_body["Message"]
    assert calls == dynamodb_calls == []


# -- the write phase: a failure at each step ends with every service on its old revision -----------


@pytest.fixture
def faults(ecs: Any, virtual_clock: VirtualClock) -> ServiceFaults:
    """Faults whose timeouts take no virtual time of their own (retry back-offs still do).

    The virtual clock is one for all threads, so a timeout charged to it in one
    thread would eat the budget of calls running beside it; the budget itself is
    tested with its own slow faults below.
    """
    return ServiceFaults(ecs)


def test_a_failed_register_of_one_family_registers_nothing_and_moves_nothing(
    http: Any, setup_ecs: Any, fleet: dict[str, str], faults: ServiceFaults, calls: list[str]
) -> None:
    faults.fail("RegisterTaskDefinition", "api", "AccessDeniedException")
    response = fan_out(http)
    assert response.status_code == 502
    message = response.json_body["Message"]
    assert "RegisterTaskDefinition failed: AccessDeniedException" in message
    assert "it failed for service 'api'; no service was changed" in message
    assert "were deregistered, so none is left behind" in message
    assert "UpdateService" not in calls
    assert_nothing_changed(setup_ecs, fleet)
    assert {r[0]["outcome"] for r in (records_of(CLUSTER, s) for s in SERVICES)} == {"ERROR"}


@pytest.mark.parametrize("failing", ["web-a", "api", "jobs"], ids=["first", "middle", "last"])
@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (lambda faults, service: faults.fail("UpdateService", service, "AccessDeniedException"), 502),
        (
            lambda faults, service: faults.on("UpdateService", service, lambda _n: error_answer("ThrottlingException")),
            429,
        ),
        (lambda faults, service: faults.time_out("UpdateService", service), 504),
    ],
    ids=["denied", "throttled", "timed-out"],
)
def test_a_failed_update_puts_every_moved_service_back(
    http: Any,
    setup_ecs: Any,
    fleet: dict[str, str],
    faults: ServiceFaults,
    failing: str,
    fault: Callable[[ServiceFaults, str], None],
    status: int,
) -> None:
    fault(faults, failing)
    response = fan_out(http)
    assert response.status_code == status, response.json_body
    message = response.json_body["Message"]
    assert f"UpdateService failed for service '{failing}'" in message
    assert "put back on the previous revision" in message
    assert "deregistered, so none is left behind" in message
    assert_nothing_changed(setup_ecs, fleet)
    assert {r[0]["status"] for r in (records_of(CLUSTER, s) for s in SERVICES)} == {status}


def test_an_update_that_took_effect_despite_a_timeout_counts_as_done(
    http: Any, setup_ecs: Any, fleet: dict[str, str], faults: ServiceFaults
) -> None:
    def applied() -> None:
        newest = active_revisions(setup_ecs, "api")[-1]
        setup_ecs.update_service(cluster=CLUSTER, service="api", taskDefinition=newest)

    faults.time_out("UpdateService", "api", then=applied)
    response = fan_out(http)
    assert response.status_code == 200, response.json_body
    now = running(setup_ecs)
    assert all(now[s["service"]] == s["taskDefinition"]["arn"] for s in response.json_body["services"])


def test_a_service_that_cannot_be_put_back_is_named_with_where_it_is_left(
    http: Any, setup_ecs: Any, fleet: dict[str, str], faults: ServiceFaults
) -> None:
    faults.fail("UpdateService", "jobs", "AccessDeniedException")
    # web-a moves, then putting it back (its second UpdateService) is refused.
    faults.on("UpdateService", "web-a", lambda attempt: error_answer("AccessDeniedException") if attempt > 1 else None)
    response = fan_out(http)
    assert response.status_code == 502
    message = response.json_body["Message"]
    web_a_now = running(setup_ecs)["web-a"]
    assert web_a_now != fleet["web-a"]
    label = web_a_now.rsplit("/", 1)[-1]
    assert "service 'web-a' could not be put back" in message
    assert f"still runs {label}: put it back on web:1 by hand" in message
    assert running(setup_ecs)["web-b"] == fleet["web-b"]  # the others were put back
    assert web_a_now in active_revisions(setup_ecs, "web")  # the revision it runs is kept
    assert active_revisions(setup_ecs, "api") == [fleet["api"]]


def test_the_whole_failed_request_stays_inside_25_seconds(
    http: Any, setup_ecs: Any, fleet: dict[str, str], faults: ServiceFaults, virtual_clock: VirtualClock
) -> None:
    for service in SERVICES:
        faults.on("UpdateService", service, lambda _n: (_slow(virtual_clock), error_answer("ThrottlingException"))[1])
    response = fan_out(http)
    assert response.status_code in (429, 504)
    assert virtual_clock.now <= 25 < budget.API_GATEWAY_TIMEOUT_SECONDS
    assert running(setup_ecs) == fleet


def _slow(clock: VirtualClock) -> None:
    clock.now += budget.ATTEMPT_SECONDS - 0.01


def test_the_threads_keep_the_request_time_budget(ecs: Any, http: Any, fleet: dict[str, str]) -> None:
    import threading

    seen: list[tuple[bool, float | None]] = []

    def note(**_: Any) -> None:
        seen.append((threading.current_thread() is threading.main_thread(), budget._deadline.get()))

    ecs.meta.events.register("before-send.ecs", note)
    fan_out(http)
    from_threads = [deadline for main, deadline in seen if not main]
    assert from_threads  # the parallel calls ran in worker threads
    assert all(deadline is not None for deadline in from_threads)


# -- the request ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"service": "web-a", "services": ["web-a", "api"]}, "give 'service' (one) or 'services' (several), not both"),
        ({"services": ["web-a"]}, "'services' must list 2 to 20 services, not 1; for one service, use 'service'"),
        ({"services": [f"s{n}" for n in range(21)]}, "'services' must list 2 to 20 services, not 21"),
        ({"services": "web-a,api"}, "'services' must be a list of service names or ARNs, not a string"),
        ({"services": ["web-a", "web-a"]}, "service 'web-a' appears more than once in 'services'"),
        (
            {"services": ["web-a", "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web-a"]},
            "service 'web-a' appears more than once in 'services'",
        ),
        (
            {"services": ["web-a", "arn:aws:ecs:eu-west-1:123456789012:service/other/api"]},
            "'services[1]' is an ARN in cluster 'other', but 'cluster' is 'test-cluster'",
        ),
        ({"services": ["web-a", 7]}, "'services[1]' must be a string"),
    ],
)
def test_bad_service_lists_are_a_400_naming_the_problem(
    http: Any, fleet: dict[str, str], body: dict[str, Any], message: str
) -> None:
    response = post(http, "/update", {"cluster": CLUSTER, "image": NEW, **body})
    assert response.status_code == 400
    assert message in response.json_body["Message"]


# -- CodePipeline's imagedefinitions.json, posted as it is ------------------------------------------


def post_definitions(http: Any, query: str, body: Any) -> Any:
    return post(http, f"/update?{query}", body)


def test_imagedefinitions_for_one_service_means_its_containers_map(
    http: Any, setup_ecs: Any, fleet: dict[str, str]
) -> None:
    definitions = [{"name": "app", "imageUri": NEW}, {"name": "worker", "imageUri": "w/orker:9"}]
    response = post_definitions(http, "cluster=test-cluster&service=web-a", definitions)
    assert response.status_code == 200, response.json_body
    assert [(c["name"], c["image"]) for c in response.json_body["containers"]] == [
        ("app", NEW),
        ("worker", "w/orker:9"),
    ]
    assert running(setup_ecs)["web-a"] == response.json_body["taskDefinition"]["arn"]


def test_imagedefinitions_for_several_services_and_a_dry_run(http: Any, setup_ecs: Any, fleet: dict[str, str]) -> None:
    definitions = [{"name": "app", "imageUri": NEW}]
    response = post_definitions(http, f"cluster={CLUSTER}&services=web-a,api&dryRun=true", definitions)
    assert response.status_code == 200, response.json_body
    assert [s["service"] for s in response.json_body["services"]] == ["web-a", "api"]
    assert response.json_body["dryRun"] is True
    assert running(setup_ecs) == fleet


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        (f"cluster={CLUSTER}&service=web-a", [], "must list 1 to 10 containers, not 0"),
        (f"cluster={CLUSTER}&service=web-a", [{"name": f"c{n}", "imageUri": NEW} for n in range(11)], "not 11"),
        (f"cluster={CLUSTER}&service=web-a", [{"name": "app"}], "entry 0 lacks 'imageUri'"),
        (f"cluster={CLUSTER}&service=web-a", [{"name": "app", "imageUri": NEW, "x": 1}], "unknown field(s) 'x'"),
        (f"cluster={CLUSTER}&service=web-a", ["app"], "entry 0 must be an object"),
        (
            f"cluster={CLUSTER}&service=web-a",
            [{"name": "app", "imageUri": NEW}, {"name": "app", "imageUri": NEW}],
            "names container 'app' more than once",
        ),
        (
            f"cluster={CLUSTER}&service=web-a",
            [{"name": "app", "imageUri": f"{ECR}/web"}],
            "must carry a tag or a digest",
        ),
        (f"cluster={CLUSTER}&service=web-a", [{"name": "app", "imageUri": "UP/per:1"}], "not a valid image reference"),
        ("service=web-a", [{"name": "app", "imageUri": NEW}], "read as an imagedefinitions.json"),
        (f"cluster={CLUSTER}", [{"name": "app", "imageUri": NEW}], "read as an imagedefinitions.json"),
        (f"cluster={CLUSTER}&service=web-a&services=web-a,api", [{"name": "app", "imageUri": NEW}], "not both"),
        (f"cluster={CLUSTER}&service=web-a&dryRun=yes", [{"name": "app", "imageUri": NEW}], "must be true or false"),
        (f"cluster={CLUSTER}&service=web-a&force=1", [{"name": "app", "imageUri": NEW}], "unknown query parameter"),
        (f"cluster={CLUSTER}&service=web-a", {"cluster": CLUSTER, "service": "web-a", "image": NEW}, "go only with"),
    ],
)
def test_bad_imagedefinitions_requests_are_a_400(
    http: Any, setup_ecs: Any, fleet: dict[str, str], query: str, body: Any, message: str
) -> None:
    response = post_definitions(http, query, body)
    assert response.status_code == 400, response.json_body
    assert message in response.json_body["Message"]
    assert running(setup_ecs) == fleet


def test_no_route_takes_a_query_parameter_it_does_not_use(http: Any, fleet: dict[str, str]) -> None:
    response = post(http, "/rollback?cluster=x", {"cluster": CLUSTER, "service": "web-a"})
    assert response.status_code == 400
    assert "unknown query parameter(s) 'cluster'" in response.json_body["Message"]
    response = http.get("/clusters/test-cluster/services?page=2", headers={"x-api-key": "test-key-0123456789"})
    assert response.status_code == 400


def test_no_lock_is_left_when_a_write_fails_midway(http: Any, fleet: dict[str, str], faults: ServiceFaults) -> None:
    faults.fail("UpdateService", "api", "AccessDeniedException")
    assert fan_out(http).status_code == 502
    assert lock_items() == []


def test_more_than_ten_failed_updates_are_read_again_in_batches_and_all_undone(
    http: Any, setup_ecs: Any, workload: Workload, ecs_deployments: EcsDeployments, faults: ServiceFaults
) -> None:
    names = [f"cell-{n:02d}" for n in range(14)]
    for name in names:
        create_service(setup_ecs, CLUSTER, name, workload.running_arn)
    for name in names[3:]:
        faults.fail("UpdateService", name, "AccessDeniedException")  # 11 of 14 refused, 3 moved

    response = fan_out(http, names)

    assert response.status_code == 502, response.json_body
    message = response.json_body["Message"]
    assert "were put back on the previous revision" in message
    assert "the new revision web:2 was deregistered, so none is left behind" in message
    assert set(running(setup_ecs, names[:10]).values()) | set(running(setup_ecs, names[10:]).values()) == {
        workload.running_arn
    }
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]
    assert lock_items() == []


def test_a_lock_lost_meanwhile_keeps_neither_the_records_out_nor_the_other_locks_held(
    http: Any, ecs: Any, fleet: dict[str, str]
) -> None:
    dynamodb = clients.session().client("dynamodb")
    taken = {"done": False}

    def take_one_lock(**_: Any) -> None:
        if not taken["done"]:
            taken["done"] = True  # as if api's lock had expired and another request had taken it
            dynamodb.put_item(
                TableName="ecs-image-updater-state",
                Item={
                    "pk": {"S": "SERVICE#test-cluster/api"},
                    "sk": {"S": "LOCK"},
                    "kind": {"S": "lock"},
                    "owner": {"S": "someone-else"},
                },
            )

    ecs.meta.events.register("before-call.ecs.UpdateService", take_one_lock)
    assert fan_out(http).status_code == 200
    assert [item["pk"] for item in lock_items()] == ["SERVICE#test-cluster/api"]  # only the one not ours
    assert all(len(records_of(CLUSTER, name)) == 1 for name in SERVICES)


def test_a_revision_that_cannot_be_read_names_a_service_that_runs_it(
    http: Any, ecs: Any, setup_ecs: Any, fleet: dict[str, str], calls: list[str]
) -> None:
    AttemptFaults(ecs).on("DescribeTaskDefinition", lambda _attempt: error_answer("AccessDeniedException", "no", 400))
    response = fan_out(http, ["web-a", "api"])
    assert response.status_code == 502, response.json_body
    assert re.match(r"service '(web-a|api)': DescribeTaskDefinition failed", response.json_body["Message"])
    assert not {"RegisterTaskDefinition", "UpdateService"} & set(calls)
    assert_nothing_changed(setup_ecs, fleet)


def test_ecs_refusing_the_names_is_a_400_for_several_services_as_for_one(
    http: Any, ecs: Any, setup_ecs: Any, fleet: dict[str, str]
) -> None:
    AttemptFaults(ecs).on("DescribeServices", lambda _attempt: error_answer("InvalidParameterException", "bad", 400))
    response = fan_out(http, ["web-a", "api"])
    assert response.status_code == 400, response.json_body
    assert "ECS refused cluster 'test-cluster' or one of the services: bad" in response.json_body["Message"]
    assert_nothing_changed(setup_ecs, fleet)
