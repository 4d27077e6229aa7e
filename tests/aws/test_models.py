"""ECS's model shipped as data: the service deployment operations on any botocore the Lambda runtime has.

`make test` runs this file on the current botocore and on the runtime's older one
(requirements-runtime-sdk.txt), which has none of these operations of its own.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import boto3
import botocore
import pytest

from chalicelib.aws import clients

# Every ECS operation the service calls that the runtime's botocore (1.34) lacks.
NEWER_OPERATIONS = (
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "DescribeServiceRevisions",
    "StopServiceDeployment",
    "ContinueServiceDeployment",
)


def shipped_model() -> dict[str, Any]:
    [path] = (clients.MODELS_DIR / "ecs").glob("*/service-2.json.gz")
    return dict(json.loads(gzip.decompress(path.read_bytes())))


def test_the_shipped_model_has_every_newer_operation_and_no_documentation() -> None:
    model = shipped_model()
    assert set(NEWER_OPERATIONS) <= set(model["operations"])
    assert "documentation" not in json.dumps(model)  # a tenth of the size without it
    assert (next((clients.MODELS_DIR / "ecs").glob("*/service-2.json.gz"))).stat().st_size < 40_000


def test_the_service_s_ecs_clients_can_call_them_whatever_the_botocore(moto_world: None) -> None:
    client = clients.session().client("ecs", region_name="us-east-1")
    operations = set(client.meta.service_model.operation_names)
    assert set(NEWER_OPERATIONS) <= operations, botocore.__version__
    # Parameters are checked against the model: the call is built as ECS expects it.
    request = client._serializer.serialize_to_request(
        {"serviceDeploymentArn": "arn:aws:ecs:us-east-1:1:service-deployment/c/s/x", "stopType": "ABORT"},
        client.meta.service_model.operation_model("StopServiceDeployment"),
    )
    assert request["headers"]["X-Amz-Target"] == "AmazonEC2ContainerServiceV20141113.StopServiceDeployment"


@pytest.mark.parametrize(("installed", "added"), [("1.34.162", True), ("99.0.0", False)])
def test_the_shipped_model_is_used_only_by_an_older_botocore(
    monkeypatch: pytest.MonkeyPatch, installed: str, added: bool
) -> None:
    monkeypatch.setattr(botocore, "__version__", installed)
    session = boto3.session.Session()
    assert clients.add_shipped_models(session) is added
    search_paths = session._session.get_component("data_loader").search_paths
    assert (search_paths[0] == str(clients.MODELS_DIR)) is added
