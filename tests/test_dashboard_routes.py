"""The dashboard's page and files: served with no key, a strict Content-Security-Policy, only what is listed."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.entrypoints import dashboard
from tests.conftest import PROJECT_DIR, Gateway

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
FILES = PROJECT_DIR / "chalicelib" / "dashboard"


def headers_of(response: Any) -> dict[str, str]:
    return {name: response.headers.get(name) for name in (*SECURITY, "Content-Type")}


def test_the_page_loads_with_no_key_and_says_the_stage_signs_in_by_key(http: Any) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert headers_of(response) == {**SECURITY, "Content-Type": "text/html; charset=utf-8"}
    page = response.body.decode()
    assert '<meta name="auth-mode" content="key">' in page
    assert "{{AUTH_MODE}}" not in page


@pytest.mark.parametrize(("requested", "location"), [("/api", "api/"), ("/ecs/deployer", "deployer/")])
def test_the_stage_root_without_its_slash_is_sent_on_to_it(gateway: Gateway, requested: str, location: str) -> None:
    # API Gateway answers `…/api` with the root resource too; the page's relative URLs need `…/api/`.
    answer = gateway("GET", "/", key_id=None, requested_path=requested)
    assert (answer.status, answer.headers["Location"]) == (301, location)
    assert answer.headers["Content-Security-Policy"] == CSP
    assert gateway("GET", "/", key_id=None).status == 200  # `/api/`


def test_a_wrong_key_does_not_keep_the_page_from_loading(http: Any) -> None:
    assert http.get("/", headers={"x-api-key": "wrong"}).status_code == 200


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8")],
)
def test_each_file_is_served_with_its_type_and_the_pages_headers(http: Any, asset: str, content_type: str) -> None:
    response = http.get(f"/dashboard/{asset}")
    assert response.status_code == 200
    assert headers_of(response) == {**SECURITY, "Content-Type": content_type}
    assert response.body.decode() == (FILES / asset).read_text(encoding="utf-8")


@pytest.mark.parametrize("asset", ["index.html", "other.js", "APP.JS", "..%2F..%2Fapp.py", "%2Fetc%2Fpasswd"])
def test_any_other_file_is_a_json_404(http: Any, asset: str) -> None:
    response = http.get(f"/dashboard/{asset}")
    assert response.status_code == 404
    assert response.json_body["Code"] == "NotFoundError"
    assert headers_of(response) == {**SECURITY, "Content-Type": "application/json"}


def page_as_api_gateway_serves_it() -> dict[str, Any]:
    """GET / as API Gateway hands it to the function (no key: the route asks for none), and the function's answer."""
    from app import app

    event = {
        "resource": "/",
        "path": "/",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {"resourcePath": "/", "httpMethod": "GET", "path": "/api/", "identity": {}},
        "body": None,
        "isBase64Encoded": False,
    }
    return dict(app(event, None))


def test_behind_api_gateway_the_page_is_text_and_says_key(moto_world: None) -> None:
    answer = page_as_api_gateway_serves_it()
    assert answer["statusCode"] == 200
    assert answer.get("isBase64Encoded", False) is False  # HTML as text, not a binary body
    assert '<meta name="auth-mode" content="key">' in answer["body"]


@pytest.mark.parametrize("local_key", [True, False], ids=["local stage", "behind API Gateway"])
def test_an_iam_stage_tells_the_page_a_key_alone_is_not_enough(
    moto_world: None, monkeypatch: pytest.MonkeyPatch, local_key: bool
) -> None:
    # The local stage under AUTH_MODE=iam checks the signature itself, as API Gateway does in AWS.
    if local_key:
        monkeypatch.setenv("LOCAL_API_KEY", "local-key")
    monkeypatch.setenv("AUTH_MODE", "iam")
    answer = page_as_api_gateway_serves_it()
    assert answer["statusCode"] == 200
    assert '<meta name="auth-mode" content="iam">' in answer["body"]


def test_neither_route_asks_for_a_key_or_a_signature() -> None:
    from app import app

    for path in ("/", "/dashboard/{asset}"):
        route = app.routes[path]["GET"]
        assert (route.api_key_required, route.authorizer) == (False, None), path


def test_the_files_are_read_once_per_process(http: Any) -> None:
    dashboard.static_file.cache_clear()
    for _ in range(3):
        assert http.get("/").status_code == 200
    info = dashboard.static_file.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_the_page_names_its_files_relatively_and_holds_no_inline_script_or_style() -> None:
    page = (FILES / "index.html").read_text(encoding="utf-8")
    assert 'src="dashboard/app.js"' in page
    assert 'href="dashboard/style.css"' in page
    # Relative to the page: under API Gateway's stage prefix (/api/) an absolute path would miss it.
    assert re.findall(r'(?:src|href|action)="(/[^"]*|[a-z]+://[^"]*)"', page) == []
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []  # every script has a src
    assert "<style" not in page
    assert " style=" not in page
