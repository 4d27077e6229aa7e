"""The OpenAPI description: in sync with the routes, and fuzzed from with schemathesis against the app on moto.

Schemathesis generates requests from openapi.yaml (examples, schema-valid and
schema-breaking data) and sends them through a WSGI bridge into Chalice's own
test client over the app, on a moto world with a real workload. For every
request: no 5xx, a documented status, a body that matches the schema, and, for
a rejected request, no ECS write.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from chalicelib.aws import clients
from tests.conftest import API_KEY, PROJECT_DIR, Workload

SPEC_PATH = PROJECT_DIR / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_PATH.read_text())
schema = schemathesis.openapi.from_dict(SPEC)
ECS_WRITES = {"RegisterTaskDefinition", "UpdateService", "DeregisterTaskDefinition"}
# No key or not allowed, too large, not JSON: refused before any AWS call (bad input too).
REFUSED_BEFORE_AWS = {401, 403, 413, 415}
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# What a URL path carries unencoded (RFC 3986 pchar and "/", but ";", see encoded_path).
PATH_SAFE = "/:@!$&'()*+,=-._~"
# Examples per operation: `make test` runs a quick pass, `make fuzz` a deep one.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def test_every_route_is_described_and_nothing_else() -> None:
    from app import app

    routes = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    described = {(path, method) for path, item in SPEC["paths"].items() for method in item}
    assert described == routes


def test_every_operation_but_the_github_webhook_and_the_dashboards_files_requires_the_api_key() -> None:
    assert SPEC["security"] == [{"apiKey": []}]
    assert SPEC["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    for path, item in SPEC["paths"].items():
        for operation in item.values():
            if path in ("/hooks/github", "/", "/dashboard/{asset}"):
                assert operation["security"] == []  # GitHub's signature instead; the page and its files hold no data
            else:
                assert "security" not in operation  # no other operation opts out


def encoded_path(environ: dict[str, Any]) -> str:
    """The request path encoded as it travelled, so each path parameter stays in its segment.

    WSGI hands over the decoded path, in which an encoded `?`, `#` or `/` inside a
    parameter would cut it or move it; API Gateway keeps it in the segment. The raw
    URI has it as sent. Chalice's matcher also cuts at `;` (urlparse's path
    parameters), which API Gateway keeps too, so it stays encoded.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    decoded = (environ.get("PATH_INFO") or "/").encode("latin-1")
    path = raw.split("?", 1)[0] if raw else quote(decoded, safe=PATH_SAFE)
    return path.replace(";", "%3B") or "/"


def wsgi_bridge(http: Any) -> WsgiApp:
    """A WSGI app that hands each request to Chalice's test client."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = encoded_path(environ)
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = {
            key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        response = http.request(environ["REQUEST_METHOD"], path, headers=headers, body=body)
        status = response.status_code
        start_response(f"{status} {HTTPStatus(status).phrase}", list(response.headers.items()))
        return [response.body]

    return app


@pytest.fixture
def aws_calls(ecs: Any, state_table: str) -> list[str]:
    """Calls the service's clients make: ECS and the state table (cleared by each example)."""
    made: list[str] = []
    ecs.meta.events.register("before-parameter-build.ecs", lambda model, **_: made.append(model.name))
    clients.dynamodb_client().meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: made.append(model.name)
    )
    return made


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_never_break_the_contract(
    case: Any, http: Any, workload: Workload, aws_calls: list[str]
) -> None:
    if case.method.upper() != case.operation.method.upper():
        # Probes with undeclared methods: API Gateway answers those itself, before the Lambda
        # (and Chalice's test client cannot carry the empty answer Chalice gives them).
        return
    aws_calls.clear()
    response = case.call(app=wsgi_bridge(http), headers={"x-api-key": API_KEY})
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )
    failure = f"{response.status_code} {response.text[:500]} after {aws_calls}"  # the dashboard's page is HTML
    if response.status_code in REFUSED_BEFORE_AWS or (
        response.status_code == 400 and "DescribeServices" not in aws_calls
    ):
        assert aws_calls == [], failure  # refused before any AWS call, the lock included
    elif response.status_code >= 400:
        # Refused after reading the service (404, 409, or no container to choose): the lock
        # item may have come and gone, but nothing was written to ECS.
        assert not set(aws_calls) & ECS_WRITES, failure
