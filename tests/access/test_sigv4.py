"""The local stage's SigV4 check: requests signed by botocore pass; a wrong secret, an old date, a changed body,
path or query, another region or service, do not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.access.sigv4 import SignatureRefused, SignedRequest, verify
from tests.conftest import API_KEY, ECR, Workload, records_of

KEY_ID, SECRET, REGION = "local", "local", "eu-west-1"
HOST = "127.0.0.1:8000"


def signed(
    method: str = "POST",
    path: str = "/update",
    body: bytes = b'{"cluster": "c"}',
    secret: str = SECRET,
    region: str = REGION,
    service: str = "execute-api",
    headers: dict[str, str] | None = None,
) -> AWSRequest:
    """A request botocore signed, as a client with these credentials would send it."""
    request = AWSRequest(
        method=method,
        url=f"http://{HOST}{path}",
        data=body,
        headers={"Content-Type": "application/json", "x-api-key": API_KEY, **(headers or {})},
    )
    SigV4Auth(Credentials(KEY_ID, secret), service, region).add_auth(request)
    return request


def arrived(request: AWSRequest, **changes: Any) -> SignedRequest:
    """The request as the local stage sees it (the path as sent, the query decoded, headers lower-case)."""
    parts = urlsplit(request.url)
    headers = {name.lower(): value for name, value in request.headers.items()}
    headers["host"] = parts.netloc
    values: dict[str, Any] = {
        "method": request.method,
        "path": parts.path,
        "query": parse_qs(parts.query, keep_blank_values=True),
        "headers": headers,
        "body": request.body or b"",
    }
    values.update(changes)
    return SignedRequest(**values)


def test_a_request_botocore_signed_passes() -> None:
    verify(arrived(signed()), KEY_ID, SECRET, REGION)


def test_a_query_and_an_encoded_path_pass() -> None:
    request = signed("GET", "/services/prod/arn%3Aaws%3Aecs%2Fweb/history?limit=5&next=a%2Bb%3D", b"")
    verify(arrived(request), KEY_ID, SECRET, REGION)


@pytest.mark.parametrize(
    ("request_", "changes", "reason"),
    [
        (signed(secret="wrong"), {}, "the signature does not match the request"),
        (signed(), {"body": b'{"cluster": "prod"}'}, "the signature does not match the request"),
        (signed(), {"path": "/rollback"}, "the signature does not match the request"),
        (signed("GET", "/whoami?x=1", b""), {"query": {"x": ["2"]}}, "the signature does not match the request"),
        (signed(region="us-west-2"), {}, "the signature's scope is not"),
        (signed(service="s3"), {}, "the signature's scope is not"),
    ],
)
def test_anything_changed_or_signed_for_elsewhere_is_refused(
    request_: AWSRequest, changes: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SignatureRefused, match=reason):
        verify(arrived(request_, **changes), KEY_ID, SECRET, REGION)


def test_a_changed_signed_header_is_refused() -> None:
    request = arrived(signed())
    headers = {**request.headers, "x-api-key": "another-key"}
    with pytest.raises(SignatureRefused, match="does not match"):
        verify(arrived(signed(), headers=headers), KEY_ID, SECRET, REGION)


def test_a_date_more_than_15_minutes_off_is_refused_either_way() -> None:
    request = arrived(signed())
    verify(request, KEY_ID, SECRET, REGION, now=datetime.now(UTC) + timedelta(minutes=14))
    for skew in (timedelta(minutes=16), -timedelta(minutes=16)):
        with pytest.raises(SignatureRefused, match="more than 15 minutes from now"):
            verify(request, KEY_ID, SECRET, REGION, now=datetime.now(UTC) + skew)


def test_an_unsigned_or_otherwise_signed_request_is_refused() -> None:
    request = arrived(signed())
    with pytest.raises(SignatureRefused, match="not signed with AWS Signature Version 4"):
        verify(arrived(signed(), headers={**request.headers, "authorization": "Bearer x"}), KEY_ID, SECRET, REGION)
    with pytest.raises(SignatureRefused, match="access key id is not the one"):
        verify(request, "another", SECRET, REGION)


def test_a_declared_payload_hash_must_be_the_bodys() -> None:
    request = signed(headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    with pytest.raises(SignatureRefused, match="x-amz-content-sha256 is not the SHA-256 of the body"):
        verify(arrived(request), KEY_ID, SECRET, REGION)


@pytest.fixture
def iam_stage(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """AUTH_MODE=iam, with the credentials the local run was started with (after moto has set its own)."""
    monkeypatch.setenv("AUTH_MODE", "iam")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


def send(http: Any, request: AWSRequest) -> Any:
    parts = urlsplit(request.url)
    headers = {name: value for name, value in request.headers.items()}
    headers["Host"] = parts.netloc
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return http.request(request.method, target, headers=headers, body=request.body or b"")


def test_the_local_stage_with_iam_sign_in_takes_signed_requests_only(
    iam_stage: None, http: Any, workload: Workload
) -> None:
    body = json.dumps({"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"}).encode()
    answer = send(http, signed(body=body))
    assert answer.status_code == 200, answer.json_body
    assert records_of("test-cluster", "web")[0]["principal"] == "local"
    unsigned = http.post("/update", headers={"x-api-key": API_KEY, "Content-Type": "application/json"}, body=body)
    assert unsigned.status_code == 403
    assert unsigned.json_body["Message"].startswith("the request's AWS signature is refused: the request is not signed")
    tampered = signed(body=body)
    tampered.data = body.replace(b"1.1", b"6.6")
    refused = send(http, tampered)
    assert refused.status_code == 403
    assert "does not match" in refused.json_body["Message"]
    assert len(records_of("test-cluster", "web")) == 1


def test_the_local_stage_with_iam_sign_in_still_wants_its_key(iam_stage: None, http: Any, workload: Workload) -> None:
    answer = send(http, signed("GET", "/whoami", b"", headers={"x-api-key": "wrong"}))
    assert answer.status_code == 403
    assert answer.json_body["Message"] == "a valid x-api-key header is required"
    assert send(http, signed("GET", "/whoami?", b"")).json_body["principal"] == "local"
