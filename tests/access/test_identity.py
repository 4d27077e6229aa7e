"""Who is asking: the principal of a request, in order: the signed IAM identity, the key's id, `local`."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.access.identity import Principal
from tests.conftest import ECR, Workload, post, records_of

ROLE_SESSION = "arn:aws:sts::123456789012:assumed-role/deployers/alice"


@pytest.mark.parametrize(
    ("identity", "local", "expected"),
    [
        ({"userArn": ROLE_SESSION, "apiKeyId": "k1"}, False, Principal(ROLE_SESSION, "iam")),
        ({"userArn": ROLE_SESSION}, True, Principal(ROLE_SESSION, "iam")),
        ({"apiKeyId": "k1", "userArn": None}, False, Principal("k1", "key")),
        ({"apiKeyId": " k1 ", "userArn": "  "}, False, Principal("k1", "key")),
        ({"sourceIp": "127.0.0.1"}, True, Principal("local", "local")),
        ({}, False, Principal("anonymous", "key")),
    ],
)
def test_the_principal_is_the_signer_then_the_key_then_local(
    identity: dict[str, Any], local: bool, expected: Principal
) -> None:
    assert Principal.of_request({"identity": identity}, local=local) == expected


def test_the_local_stage_records_local_as_the_principal(http: Any, workload: Workload) -> None:
    answer = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})
    assert answer.status_code == 200
    [record] = records_of("test-cluster", "web")
    assert (record["principal"], record["keyId"]) == ("local", "local")


def test_on_the_local_stage_a_request_may_name_who_it_stands_for() -> None:
    assert Principal.of_request({}, local=True, local_name="alice") == Principal("local:alice", "local")
    # A name outside letters, digits and ._@- is no name: the caller stays `local`.
    assert Principal.of_request({}, local=True, local_name="al ice/../x") == Principal("local", "local")
    # Outside the local stage the name counts for nothing.
    assert Principal.of_request({"identity": {"apiKeyId": "k1"}}, local=False, local_name="alice").id == "k1"


def test_the_local_stage_reads_the_local_principal_header(http: Any) -> None:
    from tests.conftest import API_KEY

    local = http.get("/whoami", headers={"x-api-key": API_KEY, "x-local-principal": "alice"})
    assert local.json_body["principal"] == "local:alice"


def test_a_stage_behind_api_gateway_ignores_the_local_principal_header(gateway: Any) -> None:
    assert gateway("GET", "/whoami", key_id="k1", headers={"x-local-principal": "alice"}).json["principal"] == "k1"
