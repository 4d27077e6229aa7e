"""Freezes over HTTP: scopes, the 423, expiry, lifting, windows, bypass, dry runs, what a change still costs, and
who may freeze."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.aws import clients
from chalicelib.state import freezes
from tests.conftest import (
    API_KEY,
    ECR,
    EcsDeployments,
    Gateway,
    Workload,
    create_service,
    lock_items,
    post,
    records_of,
    running_task_definition,
    table_items,
)

UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}
OTHER = {**UPDATE, "service": "web-b"}


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def freeze(http: Any, scope: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"scope": scope, "until": in_hours(2), "reason": "release 2.0 launch", **extra}
    response = post(http, "/freezes", body)
    assert response.status_code == 201, response.json_body
    return dict(response.json_body)


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


def delete(http: Any, path: str) -> Any:
    return http.delete(path, headers={"x-api-key": API_KEY})


@pytest.fixture
def web_b(setup_ecs: Any, workload: Workload) -> str:
    """Service `web-b` in the workload's cluster, on the workload's revision."""
    create_service(setup_ecs, workload.cluster, "web-b", workload.running_arn)
    return "web-b"


@pytest.fixture
def dynamodb_calls(http: Any) -> list[str]:
    made: list[str] = []
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: made.append(model.name)
    )
    return made


@pytest.fixture
def ecs_calls(ecs: Any) -> list[str]:
    made: list[str] = []
    ecs.meta.events.register("before-parameter-build.ecs", lambda model, **_: made.append(model.name))
    return made


# -- scopes and the 423 ----------------------------------------------------------------------------------------


def test_a_frozen_service_refuses_an_update_with_a_423_naming_the_freeze_and_changes_nothing(
    http: Any, setup_ecs: Any, workload: Workload, ecs_calls: list[str]
) -> None:
    made = freeze(http, {"clusters": ["test-cluster"]})
    response = post(http, "/update", UPDATE)
    assert response.status_code == 423
    assert response.json_body == {
        "Code": "LockedError",
        "Message": (
            f"service 'test-cluster/web' is frozen by freeze:{made['id']} (release 2.0 launch) until "
            f"{made['until']}; nothing was changed"
        ),
        "freezes": [
            {
                "kind": "freeze",
                "id": made["id"],
                "reason": "release 2.0 launch",
                "until": made["until"],
                "pushes": "wait",
            }
        ],
    }
    assert ecs_calls == []  # refused with the lock, before the service is read
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn
    assert lock_items() == []
    assert records_of("test-cluster", "web") == []


@pytest.mark.parametrize(
    ("scope", "web_frozen", "web_b_frozen"),
    [
        ({"clusters": ["test-cluster"]}, True, True),
        ({"clusters": ["other-cluster"]}, False, False),
        ({"services": ["web"]}, True, False),
        ({"clusters": ["test-cluster"], "services": ["web-b"]}, False, True),
        ({"clusters": ["other-cluster"], "services": ["web"]}, False, False),
        ({"clusters": ["arn:aws:ecs:eu-west-1:123456789012:cluster/test-cluster"]}, True, True),  # home, by ARN
        ({"clusters": ["arn:aws:ecs:eu-west-1:222222222222:cluster/test-cluster"]}, False, False),  # elsewhere
        ({}, True, True),  # the emergency stop
    ],
    ids=["cluster", "other cluster", "service", "cluster and service", "service elsewhere", "arn", "account", "all"],
)
def test_a_freeze_covers_exactly_the_services_of_its_scope(
    http: Any,
    workload: Workload,
    web_b: str,
    ecs_deployments: EcsDeployments,
    scope: dict[str, Any],
    web_frozen: bool,
    web_b_frozen: bool,
) -> None:
    freeze(http, scope)
    assert post(http, "/update", UPDATE).status_code == (423 if web_frozen else 200)
    assert post(http, "/update", OTHER).status_code == (423 if web_b_frozen else 200)


def test_every_write_route_is_refused_during_a_freeze(http: Any, workload: Workload, web_b: str) -> None:
    assert post(http, "/update", UPDATE).status_code == 200  # something to roll back from
    freeze(http, {})
    fan_out = {"cluster": "test-cluster", "services": ["web", "web-b"], "image": f"{ECR}/web:1.2", "container": "app"}
    apply = {"descriptions": [{"cluster": "test-cluster", "service": "web", "containers": {"app": f"{ECR}/web:1.3"}}]}
    for path, body in (
        ("/update", fan_out),
        ("/rollback", {"cluster": "test-cluster", "service": "web"}),
        ("/apply", apply),
    ):
        response = post(http, path, body)
        assert response.status_code == 423, (path, response.json_body)
        assert response.json_body["freezes"][0]["reason"] == "release 2.0 launch"
    assert len(records_of("test-cluster", "web")) == 1  # the update before the freeze, nothing since


def test_a_fan_out_is_refused_whole_naming_only_the_frozen_services(http: Any, workload: Workload, web_b: str) -> None:
    freeze(http, {"services": ["web-b"]})
    body = {"cluster": "test-cluster", "services": ["web", "web-b"], "image": f"{ECR}/web:1.2", "container": "app"}
    response = post(http, "/update", body)
    assert response.status_code == 423
    assert response.json_body["Message"].startswith("service 'test-cluster/web-b' is frozen by freeze:")
    assert "'test-cluster/web'" not in response.json_body["Message"]
    assert lock_items() == []


def test_a_fan_out_of_twenty_services_stays_within_one_transaction(
    http: Any, setup_ecs: Any, workload: Workload, dynamodb_calls: list[str]
) -> None:
    names = [f"svc-{i:02d}" for i in range(20)]
    for name in names:
        create_service(setup_ecs, workload.cluster, name, workload.running_arn)
    body = {"cluster": "test-cluster", "services": names, "image": f"{ECR}/web:1.2", "container": "app"}
    assert post(http, "/update", body).status_code == 200
    assert dynamodb_calls == ["TransactWriteItems", "TransactWriteItems"]
    freeze(http, {"services": ["svc-19"]})
    refused = post(http, "/update", {**body, "image": f"{ECR}/web:1.3"})
    assert refused.status_code == 423
    assert [entry["kind"] for entry in refused.json_body["freezes"]] == ["freeze"]


# -- cost ------------------------------------------------------------------------------------------------------


def test_a_change_costs_four_ecs_and_two_dynamodb_calls_with_freezes_elsewhere(
    http: Any, workload: Workload, ecs_calls: list[str], dynamodb_calls: list[str], ecs_deployments: EcsDeployments
) -> None:
    freeze(http, {"clusters": ["other-cluster"]})
    freeze(http, {"services": ["api"]})
    ecs_calls.clear()
    dynamodb_calls.clear()
    assert post(http, "/update", UPDATE).status_code == 200
    assert ecs_calls == ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    assert dynamodb_calls == ["TransactWriteItems", "TransactWriteItems"]


def test_a_refusal_reads_the_freeze_only_then(http: Any, workload: Workload, dynamodb_calls: list[str]) -> None:
    freeze(http, {"services": ["web"]})
    dynamodb_calls.clear()
    assert post(http, "/update", UPDATE).status_code == 423
    assert dynamodb_calls == ["TransactWriteItems", "BatchGetItem"]


# -- expiry and lifting ----------------------------------------------------------------------------------------


def test_writes_are_allowed_again_once_the_freeze_has_ended(
    http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch, ecs_deployments: EcsDeployments
) -> None:
    made = freeze(http, {"clusters": ["test-cluster"]})
    assert post(http, "/update", UPDATE).status_code == 423
    later = datetime.fromisoformat(made["until"]).timestamp() + 1
    monkeypatch.setattr(freezes, "clock", lambda: later)
    assert post(http, "/update", UPDATE).status_code == 200
    assert get(http, "/freezes").json_body["freezes"] == []


def test_lifting_a_freeze_allows_writes_and_leaves_no_gate(
    http: Any, workload: Workload, ecs_deployments: EcsDeployments
) -> None:
    made = freeze(http, {"clusters": ["test-cluster"], "services": ["web", "web-b"]})
    assert len(table_items("freeze-gate")) == 2
    lifted = delete(http, f"/freezes/{made['id']}")
    assert lifted.status_code == 200
    assert (lifted.json_body["id"], lifted.json_body["active"], lifted.json_body["liftedBy"]) == (
        made["id"],
        False,
        "local",
    )
    assert table_items("freeze-gate") == []
    assert table_items("freeze") == []
    assert post(http, "/update", UPDATE).status_code == 200
    assert delete(http, f"/freezes/{made['id']}").status_code == 404


def test_lifting_one_of_two_freezes_keeps_the_other_in_force(http: Any, workload: Workload) -> None:
    first = freeze(http, {"clusters": ["test-cluster"]}, reason="incident 42")
    second = freeze(http, {"clusters": ["test-cluster"]}, reason="launch", until=in_hours(5))
    refused = post(http, "/update", UPDATE).json_body
    assert {entry["id"] for entry in refused["freezes"]} == {first["id"], second["id"]}
    assert delete(http, f"/freezes/{second['id']}").status_code == 200
    refused = post(http, "/update", UPDATE)
    assert refused.status_code == 423
    assert [entry["id"] for entry in refused.json_body["freezes"]] == [first["id"]]
    [gate] = table_items("freeze-gate")
    assert gate["frozenUntil"] == int(datetime.fromisoformat(first["until"]).timestamp())


def test_get_freezes_lists_the_freezes_in_force(http: Any, workload: Workload) -> None:
    made = freeze(http, {"services": ["web"]}, pushes="drop")
    listed = get(http, "/freezes")
    assert listed.status_code == 200
    assert listed.json_body["freezes"] == [
        {
            "id": made["id"],
            "scope": {"services": ["web"]},
            "until": made["until"],
            "reason": "release 2.0 launch",
            "pushes": "drop",
            "createdBy": "local",
            "createdAt": made["createdAt"],
            "active": True,
        }
    ]
    assert listed.json_body["windows"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"scope": {}, "reason": "x"}, "'until' is required"),
        ({"scope": {}, "until": "2020-01-01T00:00:00Z", "reason": "x"}, "has passed"),
        ({"scope": {"clusters": ["prod-*"]}, "until": "2099-01-01T00:00:00Z", "reason": "x"}, "is a pattern"),
        ({"scope": {"clusters": ["a/b"]}, "until": in_hours(1), "reason": "x"}, "neither a cluster name nor"),
        (
            {
                "scope": {"clusters": ["arn:aws:ecs:eu-west-1:123456789012:service/a/b"]},
                "until": in_hours(1),
                "reason": "x",
            },
            "is not a cluster ARN",
        ),
    ],
)
def test_a_bad_freeze_is_a_400_naming_the_problem(http: Any, workload: Workload, body: Any, message: str) -> None:
    response = post(http, "/freezes", body)
    assert response.status_code == 400
    assert message in response.json_body["Message"]
    assert table_items("freeze") == []


def test_a_freeze_of_too_many_pairs_is_a_400(http: Any, workload: Workload) -> None:
    scope = {"clusters": [f"c{i}" for i in range(10)], "services": [f"s{i}" for i in range(10)]}
    response = post(http, "/freezes", {"scope": scope, "until": in_hours(1), "reason": "x"})
    assert response.status_code == 400
    assert "names 100 cluster and service pairs; one freeze covers at most 99" in response.json_body["Message"]


def test_a_malformed_freeze_id_is_a_400(http: Any, workload: Workload) -> None:
    response = delete(http, "/freezes/not-an-id")
    assert response.status_code == 400
    assert "12 hexadecimal digits" in response.json_body["Message"]


# -- dry runs --------------------------------------------------------------------------------------------------


def test_a_dry_run_is_not_refused_but_says_the_freeze_applies(http: Any, workload: Workload) -> None:
    made = freeze(http, {"services": ["web"]})
    response = post(http, "/update", {**UPDATE, "dryRun": True})
    assert response.status_code == 200
    assert response.json_body["dryRun"] is True
    assert response.json_body["freezes"] == [
        {
            "service": "web",
            "kind": "freeze",
            "id": made["id"],
            "reason": "release 2.0 launch",
            "until": made["until"],
            "pushes": "wait",
            "bypassed": False,
        }
    ]


# -- windows and bypass ----------------------------------------------------------------------------------------

FRIDAY_EVENING = datetime(2026, 1, 9, 18, 0, tzinfo=UTC).timestamp()
RULES = """
freezeWindows:
  - name: weekend
    scope: {clusters: [test-cluster]}
    timezone: Europe/Berlin
    start: FRI 16:00
    end: MON 08:00
    reason: no deploys over the weekend
rules:
  - principals: [arn:aws:iam::123456789012:role/release-managers]
    actions: [update, read, freeze]
    bypassFreeze: true
  - principals: [arn:aws:iam::123456789012:role/web-team]
    actions: [update, read, freeze]
    clusters: [test-cluster]
    services: [web]
  - principals: [arn:aws:sts::123456789012:assumed-role/auditors/*]
    actions: [read]
  - principals: [local]
    actions: ["*"]
"""
MANAGER = "arn:aws:sts::123456789012:assumed-role/release-managers/erin"
WEB_TEAM = "arn:aws:sts::123456789012:assumed-role/web-team/frank"
AUDITOR = "arn:aws:sts::123456789012:assumed-role/auditors/carol"
INTERN = "arn:aws:sts::123456789012:assumed-role/intern/dave"
GATEWAY_UPDATE = {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "container": "app"}


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "permissions.yaml"
    path.write_text(RULES)
    monkeypatch.setenv("PERMISSIONS_FILE", str(path))
    return path


@pytest.fixture
def friday_evening(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(freezes, "clock", lambda: FRIDAY_EVENING)


def test_a_window_refuses_writes_while_it_is_in_force(
    gateway: Gateway, workload: Workload, rules: Path, friday_evening: None
) -> None:
    refused = gateway("POST", "/update", body=GATEWAY_UPDATE, user_arn=WEB_TEAM)
    assert refused.status == 423
    assert refused.json["freezes"] == [
        {
            "kind": "window",
            "name": "weekend",
            "reason": "no deploys over the weekend",
            "until": "2026-01-12T07:00:00Z",
            "pushes": "wait",
        }
    ]
    assert (
        "frozen by window:weekend (no deploys over the weekend) until 2026-01-12T07:00:00Z" in refused.json["Message"]
    )


def test_a_window_not_in_force_refuses_nothing(
    gateway: Gateway, workload: Workload, rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(freezes, "clock", lambda: FRIDAY_EVENING - 4 * 3600)  # 15:00 CET
    assert gateway("POST", "/update", body=GATEWAY_UPDATE, user_arn=WEB_TEAM).status == 200


def test_a_bypassing_principal_deploys_through_a_window_and_a_freeze_and_the_record_says_so(
    gateway: Gateway, workload: Workload, rules: Path, friday_evening: None
) -> None:
    made = gateway(
        "POST", "/freezes", body={"scope": {}, "until": "2026-01-10T00:00:00Z", "reason": "incident"}, user_arn=MANAGER
    )
    assert made.status == 201, made.json
    assert gateway("POST", "/update", body=GATEWAY_UPDATE, user_arn=WEB_TEAM).status == 423
    allowed = gateway("POST", "/update", body=GATEWAY_UPDATE, user_arn=MANAGER)
    assert allowed.status == 200, allowed.json
    [record] = records_of("test-cluster", "web")
    assert record["principal"] == MANAGER
    assert record["bypassed"] == ["window:weekend", f"freeze:{made.json['id']}"]
    history = gateway("GET", "/services/test-cluster/web/history", user_arn=MANAGER).json
    assert history["records"][0]["bypassed"] == ["window:weekend", f"freeze:{made.json['id']}"]


def test_a_dry_run_says_whether_the_caller_goes_through(
    gateway: Gateway, workload: Workload, rules: Path, friday_evening: None
) -> None:
    for principal, through in ((WEB_TEAM, False), (MANAGER, True)):
        answer = gateway("POST", "/update", body={**GATEWAY_UPDATE, "dryRun": True}, user_arn=principal)
        assert answer.status == 200
        assert [(n["kind"], n["name"], n["bypassed"]) for n in answer.json["freezes"]] == [
            ("window", "weekend", through)
        ]


def test_get_freezes_shows_the_windows_and_whether_they_apply_now(
    gateway: Gateway, workload: Workload, rules: Path, friday_evening: None
) -> None:
    listed = gateway("GET", "/freezes", user_arn=AUDITOR)
    assert listed.status == 200
    assert listed.json["at"] == "2026-01-09T18:00:00Z"
    assert listed.json["windows"] == [
        {
            "name": "weekend",
            "scope": {"clusters": ["test-cluster"]},
            "timezone": "Europe/Berlin",
            "start": "FRI 16:00",
            "end": "MON 08:00",
            "reason": "no deploys over the weekend",
            "pushes": "wait",
            "appliesNow": True,
            "periodStart": "2026-01-09T15:00:00Z",
            "periodEnd": "2026-01-12T07:00:00Z",
        }
    ]


# -- who may freeze --------------------------------------------------------------------------------------------


def freeze_body(scope: dict[str, Any]) -> dict[str, Any]:
    return {"scope": scope, "until": in_hours(1), "reason": "launch"}


@pytest.mark.parametrize(
    ("principal", "scope", "status"),
    [
        (WEB_TEAM, {"clusters": ["test-cluster"], "services": ["web"]}, 201),
        (WEB_TEAM, {"clusters": ["test-cluster"]}, 403),  # the rule covers web only, not the whole cluster
        (WEB_TEAM, {"services": ["web"]}, 403),  # nor web in every cluster
        (WEB_TEAM, {}, 403),  # nor the emergency stop
        (MANAGER, {}, 201),
        (AUDITOR, {"services": ["web"]}, 403),
        (INTERN, {"services": ["web"]}, 403),
    ],
)
def test_post_freezes_needs_the_freeze_action_on_the_whole_scope(
    gateway: Gateway, workload: Workload, rules: Path, principal: str, scope: dict[str, Any], status: int
) -> None:
    answer = gateway("POST", "/freezes", body=freeze_body(scope), user_arn=principal)
    assert answer.status == status, answer.json
    if status == 403:
        assert answer.json["Message"].startswith(f"principal {principal} may not freeze")
        assert table_items("freeze") == []


def test_delete_freezes_needs_the_freeze_action_on_the_freeze_s_scope(
    gateway: Gateway, workload: Workload, rules: Path
) -> None:
    made = gateway("POST", "/freezes", body=freeze_body({}), user_arn=MANAGER).json
    for principal in (WEB_TEAM, AUDITOR, INTERN):
        refused = gateway("DELETE", f"/freezes/{made['id']}", user_arn=principal)
        assert refused.status == 403
        assert "may not freeze every cluster every service" in refused.json["Message"]
    assert gateway("DELETE", f"/freezes/{made['id']}", user_arn=MANAGER).status == 200


def test_get_freezes_is_for_readers_and_freezers(gateway: Gateway, workload: Workload, rules: Path) -> None:
    assert gateway("GET", "/freezes", user_arn=AUDITOR).status == 200
    assert gateway("GET", "/freezes", user_arn=WEB_TEAM).status == 200
    refused = gateway("GET", "/freezes", user_arn=INTERN)
    assert refused.status == 403
    assert refused.json["Message"] == f"principal {INTERN} may not see the freezes: no rule gives it read or freeze"


def test_a_key_principal_freezes_like_any_other(
    gateway: Gateway, workload: Workload, rules: Path, tmp_path: Path
) -> None:
    rules.write_text(RULES + "  - principals: [ci-key-id]\n    actions: [freeze]\n    clusters: [test-cluster]\n")
    made = gateway("POST", "/freezes", body=freeze_body({"clusters": ["test-cluster"]}), key_id="ci-key-id")
    assert made.status == 201, made.json
    assert made.json["createdBy"] == "ci-key-id"
    assert gateway("POST", "/freezes", body=freeze_body({}), key_id="ci-key-id").status == 403


def test_the_items_of_a_freeze_and_its_gates_agree(http: Any, workload: Workload) -> None:
    made = freeze(http, {"clusters": ["test-cluster", "arn:aws:ecs:us-east-1:222222222222:cluster/prod"]})
    [item] = table_items("freeze")
    assert sorted(item["gates"]) == ["CLUSTER#222222222222/us-east-1/prod", "CLUSTER#test-cluster"]
    gates = {g["pk"]: g for g in table_items("freeze-gate")}
    assert set(gates) == {"FREEZEGATE#CLUSTER#test-cluster", "FREEZEGATE#CLUSTER#222222222222/us-east-1/prod"}
    for gate in gates.values():
        assert json.dumps(gate["freezes"][made["id"]]["reason"]) == '"release 2.0 launch"'


def test_freezes_made_at_once_on_one_gate_both_land_and_the_gate_holds_both(
    http: Any, workload: Workload, atomic_aws: None
) -> None:
    import threading

    from chalicelib.aws import accounts
    from chalicelib.core.windows import Scope
    from chalicelib.state.table import StateTable

    table = StateTable(clients.dynamodb_client(), "ecs-image-updater-state")
    until = datetime.now(UTC) + timedelta(hours=1)
    home = accounts.home()
    made: list[str] = []
    start = threading.Barrier(4)

    def make(reason: str) -> None:
        start.wait()
        made.append(freezes.create(table, Scope(("test-cluster",)), home, until, reason, "wait", "t").id)

    threads = [threading.Thread(target=make, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(made) == 4
    [gate] = table_items("freeze-gate")
    assert sorted(gate["freezes"]) == sorted(made)
    assert sorted(item["id"] for item in table_items("freeze")) == sorted(made)
