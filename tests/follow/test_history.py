"""GET /services/{cluster}/{service}/history: newest first, one Query per page, strict paging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib.aws import clients
from chalicelib.follow import history
from tests.conftest import API_KEY, ECR, PROJECT_DIR, STATE_TABLE, Workload, post

HISTORY = "/services/test-cluster/web/history"


def get(http: Any, path: str) -> Any:
    return http.get(path, headers={"x-api-key": API_KEY})


@pytest.fixture
def five_updates(http: Any, workload: Workload) -> list[str]:
    """Five updates of web, 1.1 to 1.5; returns the tags in the order deployed."""
    tags = [f"1.{n}" for n in range(1, 6)]
    for tag in tags:
        response = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:{tag}"})
        assert response.status_code == 200
    return tags


@pytest.fixture
def queries(http: Any) -> list[str]:
    made: list[str] = []
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda model, **_: made.append(model.name)
    )
    return made


def images(page: dict[str, Any]) -> list[str]:
    return [record["containers"][0]["image"].rsplit(":", 1)[-1] for record in page["records"]]


def test_history_is_newest_first_with_every_field(http: Any, five_updates: list[str]) -> None:
    response = get(http, HISTORY)
    assert response.status_code == 200
    page = response.json_body
    assert (page["cluster"], page["service"], page["next"]) == ("test-cluster", "web", None)
    assert images(page) == list(reversed(five_updates))
    newest = page["records"][0]
    assert newest["action"] == "update"
    assert newest["outcome"] == "IN_PROGRESS"
    assert newest["keyId"] == "local"  # the local key check stands in for API Gateway's key id
    assert newest["previousTaskDefinition"]["revision"] == newest["taskDefinition"]["revision"] - 1


def test_pages_follow_each_other_with_one_query_each(http: Any, five_updates: list[str], queries: list[str]) -> None:
    seen: list[str] = []
    path = f"{HISTORY}?limit=2"
    pages = 0
    while True:
        page = get(http, path).json_body
        pages += 1
        seen.extend(images(page))
        if page["next"] is None:
            break
        path = f"{HISTORY}?limit=2&next={page['next']}"
    assert seen == list(reversed(five_updates))
    assert pages == 3
    assert queries == ["Query"] * 3


def test_a_page_that_ends_the_history_exactly_has_no_next(http: Any, five_updates: list[str]) -> None:
    assert get(http, f"{HISTORY}?limit=5").json_body["next"] is None
    assert get(http, f"{HISTORY}?limit=4").json_body["next"] is not None


def test_an_empty_history(http: Any, workload: Workload) -> None:
    page = get(http, HISTORY).json_body
    assert (page["records"], page["next"]) == ([], None)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "'limit' must be a whole number from 1 to 100"),
        ("limit=101", "'limit' must be a whole number from 1 to 100"),
        ("limit=ten", "'limit' must be a whole number from 1 to 100"),
        ("limit=-1", "'limit' must be a whole number from 1 to 100"),
        ("limit=1&limit=2", "'limit' appears more than once"),
        ("next=", "'next' must not be empty"),
        ("next=bm90LWEtdG9rZW4", "'next' is not a token from a previous page of this history"),
        ("next=%F0%9F%98%80", "'next' is not a token from a previous page of this history"),
        ("page=2", "unknown query parameter(s) 'page'; it takes: limit, next"),
    ],
)
def test_bad_paging_is_a_400_naming_it(http: Any, workload: Workload, query: str, message: str) -> None:
    response = get(http, f"{HISTORY}?{query}")
    assert response.status_code == 400
    assert message in response.json_body["Message"]


def test_a_token_of_another_service_is_refused(http: Any, five_updates: list[str]) -> None:
    token = get(http, f"{HISTORY}?limit=1").json_body["next"]
    response = get(http, f"/services/test-cluster/worker/history?next={token}")
    assert response.status_code == 400


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = history.encode_token("RECORD#2026-12-01T10:00:00.000Z#abc", "c/web")
    assert history.decode_token(token, "c/web") == "RECORD#2026-12-01T10:00:00.000Z#abc"
    forged = history.encode_token("LOCK", "c/web")
    with pytest.raises(Exception, match="not a token"):
        history.decode_token(forged, "c/web")


def test_the_allowlists_apply(http: Any, workload: Workload, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_SERVICES", "worker")
    response = get(http, HISTORY)
    assert response.status_code == 403
    assert "ALLOWED_SERVICES" in response.json_body["Message"]


def test_a_stage_without_state_table_keeps_no_history(workload: Workload, ecs: Any, tmp_path: Path) -> None:
    from app import app

    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    del config["stages"]["dev"]["environment_variables"]["STATE_TABLE"]
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    with Client(app, stage_name="dev", project_dir=str(tmp_path)) as client:
        response = client.http.get(HISTORY, headers={})
    assert response.status_code == 409
    assert response.json_body["Message"] == "this stage keeps no history: its STATE_TABLE is not set"


def test_a_missing_table_is_a_502_naming_it(http: Any, workload: Workload) -> None:
    clients.session().client("dynamodb").delete_table(TableName=STATE_TABLE)
    response = get(http, HISTORY)
    assert response.status_code == 502
    assert "deploy infra/state-table.yaml" in response.json_body["Message"]
