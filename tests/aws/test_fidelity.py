"""No field lost, through botocore's real parser and serializer, on whatever SDK runs the suite.

DescribeTaskDefinition is answered at the HTTP layer with ECS's own JSON (a
`before-send` hook returning an AWSResponse), so botocore parses it exactly as
it parses ECS; the RegisterTaskDefinition request is read at the same layer,
after serialization and signing, as ECS would receive it. `make test` runs this
file on the current SDK and on the Lambda runtime's older one.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3
import botocore
import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.aws import fidelity
from chalicelib.aws.ecs import describe_task_definition, register_task_definition
from chalicelib.core import taskdef
from chalicelib.core.errors import UncopyableTaskDefinitionError
from chalicelib.core.images import parse_image
from chalicelib.core.requests import UpdateRequest
from chalicelib.deploy.update import update_image
from tests.conftest import ECR, RICH_TAGS, Workload, active_revisions, post, running_task_definition
from tests.faults import UNSERVED_URL, error_answer, json_answer, operation_of

# Fields of late 2024 that botocore 1.34 (the runtime's) does not know, and fields no botocore knows.
LATE_2024_TOP_LEVEL = {"enableFaultInjection": True}
LATE_2024_CONTAINER = {"versionConsistency": "disabled"}
NO_SDK_TOP_LEVEL = {"futureTopLevelSetting": {"mode": "strict", "levels": [1, 2, 3]}}
NO_SDK_CONTAINER = {"futureContainerSetting": "on"}
NO_SDK_NESTED = {"futureNested": {"deep": [{"a": 1}]}}
NO_SDK_VOLUME = {"futureVolumeOption": 7}


class EcsWire:
    """ECS at the HTTP layer of the service's own client: serve JSON answers, read request bodies."""

    def __init__(self, client: Any) -> None:
        self.answers: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any], Any]] = []
        self.throttle_first: set[str] = set()
        client.meta.events.register("before-send.ecs", self._before_send)

    def bodies(self, operation: str) -> list[dict[str, Any]]:
        """Every body sent for `operation`, attempt by attempt."""
        return [body for name, body, _ in self.requests if name == operation]

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = operation_of(request)
        body = json.loads(request.body or b"{}")
        self.requests.append((operation, body, request))
        if operation in self.throttle_first and len(self.bodies(operation)) == 1:
            request.url = UNSERVED_URL
            return error_answer("ThrottlingException", "Rate exceeded")
        if operation in self.answers:
            request.url = UNSERVED_URL  # moto serves nothing there: this answer is the only one
            return json_answer(self.answers[operation])
        return None


def ecs_json(setup_ecs: Any, arn: str) -> dict[str, Any]:
    """The answer ECS sends for DescribeTaskDefinition of `arn`, with fields newer than this SDK added."""
    response = setup_ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    definition = json.loads(json.dumps(response["taskDefinition"], default=lambda moment: moment.timestamp()))
    definition.update(copy.deepcopy({**LATE_2024_TOP_LEVEL, **NO_SDK_TOP_LEVEL}))
    for container in definition["containerDefinitions"]:
        container.update(copy.deepcopy({**LATE_2024_CONTAINER, **NO_SDK_CONTAINER}))
        container["linuxParameters"].update(copy.deepcopy(NO_SDK_NESTED))
    definition["volumes"][0].update(copy.deepcopy(NO_SDK_VOLUME))
    definition["volumes"][0]["efsVolumeConfiguration"]["futureEfsOption"] = "x"
    return {"taskDefinition": definition, "tags": response["tags"]}


@pytest.fixture
def wire(ecs: Any, setup_ecs: Any, workload: Workload) -> EcsWire:
    served = EcsWire(ecs)
    served.answers["DescribeTaskDefinition"] = ecs_json(setup_ecs, workload.running_arn)
    return served


def expected_registration(answer: dict[str, Any], images: dict[str, str]) -> dict[str, Any]:
    """ECS's answer as a registration: every field but the ones ECS sets, with the images changed."""
    definition = answer["taskDefinition"]
    copied = {k: v for k, v in definition.items() if k not in taskdef.READ_ONLY_FIELDS}
    return taskdef.with_images(copied, images)


def without_tags(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "tags"}


def test_the_sdk_parser_itself_drops_fields_it_does_not_know(ecs: Any, wire: EcsWire, workload: Workload) -> None:
    response = ecs.describe_task_definition(taskDefinition=workload.running_arn, include=["TAGS"])
    parsed = response["taskDefinition"]
    assert "futureTopLevelSetting" not in parsed
    assert "futureContainerSetting" not in parsed["containerDefinitions"][0]
    raw = fidelity.raw_answer(response)
    assert raw is not None
    assert raw["taskDefinition"]["futureTopLevelSetting"] == NO_SDK_TOP_LEVEL["futureTopLevelSetting"]


@pytest.mark.skipif(
    botocore.__version__.split(".")[:2] != ["1", "34"], reason="the runtime's SDK (botocore 1.34) lacks these fields"
)
def test_on_the_runtime_sdk_the_late_2024_fields_are_unknown_to_botocore(ecs: Any) -> None:
    """botocore 1.34's own model lacks them; the service's clients know them from the ECS model it ships
    (chalicelib/aws/models, docs/deployments.md), and the hooks keep any field newer than that one."""
    own = boto3.session.Session(region_name="eu-west-1").client("ecs").meta.service_model
    assert "enableFaultInjection" not in own.operation_model("RegisterTaskDefinition").input_shape.members
    assert "versionConsistency" not in own.shape_for("ContainerDefinition").members
    shipped = ecs.meta.service_model
    assert "enableFaultInjection" in shipped.operation_model("RegisterTaskDefinition").input_shape.members
    assert "versionConsistency" in shipped.shape_for("ContainerDefinition").members


def test_update_registers_every_field_ecs_returned(ecs: Any, wire: EcsWire, workload: Workload) -> None:
    update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(f"{ECR}/web:1.1")))

    [body] = wire.bodies("RegisterTaskDefinition")
    expected = expected_registration(wire.answers["DescribeTaskDefinition"], {"app": f"{ECR}/web:1.1"})
    assert taskdef.diff(expected, without_tags(body)) == []
    assert without_tags(body) == expected
    assert body["enableFaultInjection"] is True
    assert [c["versionConsistency"] for c in body["containerDefinitions"]] == ["disabled", "disabled"]
    assert body["containerDefinitions"][1]["linuxParameters"]["futureNested"] == NO_SDK_NESTED["futureNested"]
    assert body["volumes"][0]["futureVolumeOption"] == 7
    assert body["volumes"][0]["efsVolumeConfiguration"]["futureEfsOption"] == "x"
    assert body["tags"] == [*RICH_TAGS, {"key": "previous-task-definition", "value": workload.running_arn}]


def test_full_body_is_signed_and_sized_as_sent(ecs: Any, wire: EcsWire, workload: Workload) -> None:
    update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(f"{ECR}/web:1.1")))
    [(_name, _body, request)] = [entry for entry in wire.requests if entry[0] == "RegisterTaskDefinition"]
    assert request.headers["Authorization"].startswith(b"AWS4-HMAC-SHA256") or str(
        request.headers["Authorization"]
    ).startswith("AWS4-HMAC-SHA256")
    assert int(request.headers["Content-Length"]) == len(request.body)


def test_a_retried_register_sends_the_full_body_again(
    ecs: Any, setup_ecs: Any, wire: EcsWire, workload: Workload
) -> None:
    wire.throttle_first.add("RegisterTaskDefinition")
    result = update_image(ecs, UpdateRequest(workload.cluster, workload.service, parse_image(f"{ECR}/web:1.1")))

    first, second = wire.bodies("RegisterTaskDefinition")
    assert first == second
    assert second["futureTopLevelSetting"] == NO_SDK_TOP_LEVEL["futureTopLevelSetting"]
    assert active_revisions(setup_ecs, "web") == [workload.running_arn, result.task_definition.arn]


def test_http_update_registers_every_field_and_moves_the_service(
    http: Any, setup_ecs: Any, wire: EcsWire, workload: Workload
) -> None:
    response = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})

    assert response.status_code == 200, response.json_body
    [body] = wire.bodies("RegisterTaskDefinition")
    expected = expected_registration(wire.answers["DescribeTaskDefinition"], {"app": f"{ECR}/web:1.1"})
    assert without_tags(body) == expected
    running = running_task_definition(setup_ecs, workload)
    assert running["taskDefinitionArn"] == response.json_body["taskDefinition"]["arn"]


def test_dry_run_diff_is_taken_from_the_full_copy(http: Any, wire: EcsWire, workload: Workload) -> None:
    answer = wire.answers["DescribeTaskDefinition"]["taskDefinition"]
    answer["containerDefinitions"][0]["image"] = f"{ECR}/web:1.0"
    response = post(
        http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1", "dryRun": True}
    )
    assert response.status_code == 200, response.json_body
    assert response.json_body["diff"] == [
        {"path": "containerDefinitions[app].image", "from": f"{ECR}/web:1.0", "to": f"{ECR}/web:1.1"}
    ]
    assert wire.bodies("RegisterTaskDefinition") == []


def test_a_client_that_would_drop_fields_is_refused_before_any_write(setup_ecs: Any, workload: Workload) -> None:
    plain = boto3.session.Session(region_name="eu-west-1").client("ecs")  # none of the service's hooks
    registration = expected_registration(ecs_json(setup_ecs, workload.running_arn), {})

    with pytest.raises(UncopyableTaskDefinitionError) as refused:
        register_task_definition(plain, registration)

    assert "futureTopLevelSetting" in refused.value.message
    assert "containerDefinitions[0].futureContainerSetting" in refused.value.message
    assert "nothing was changed" in refused.value.message
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_an_answer_not_read_in_full_is_refused(setup_ecs: Any, workload: Workload) -> None:
    plain = boto3.session.Session(region_name="eu-west-1").client("ecs")
    with pytest.raises(UncopyableTaskDefinitionError, match="could not be read in full"):
        describe_task_definition(plain, workload.running_arn)


def test_http_update_with_a_client_that_would_drop_fields_is_a_502_naming_them(
    http: Any, setup_ecs: Any, wire: EcsWire, workload: Workload, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the service's client had not been given the hooks that carry unknown fields.
    monkeypatch.setattr(fidelity, "_instrumented", fidelity.weakref.WeakSet())

    response = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})

    assert response.status_code == 502
    assert "futureTopLevelSetting" in response.json_body["Message"]
    assert wire.bodies("RegisterTaskDefinition") == []
    assert active_revisions(setup_ecs, "web") == [workload.running_arn]


def test_rollback_reads_both_revisions_from_ecs_json(http: Any, setup_ecs: Any, ecs: Any, workload: Workload) -> None:
    first = post(http, "/update", {"cluster": "test-cluster", "service": "web", "image": f"{ECR}/web:1.1"})
    assert first.status_code == 200
    served = EcsWire(ecs)
    answers = {
        workload.running_arn: ecs_json(setup_ecs, workload.running_arn),
        first.json_body["taskDefinition"]["arn"]: ecs_json(setup_ecs, first.json_body["taskDefinition"]["arn"]),
    }

    def by_arn(request: Any, **_: Any) -> AWSResponse | None:
        if operation_of(request) != "DescribeTaskDefinition":
            return None
        wanted = json.loads(request.body)["taskDefinition"]
        answer = answers.get(wanted)
        if answer is None:
            return None
        request.url = UNSERVED_URL
        return json_answer(answer)

    ecs.meta.events.register_first("before-send.ecs", by_arn)
    response = post(http, "/rollback", {"cluster": "test-cluster", "service": "web"})

    assert response.status_code == 200, response.json_body
    assert response.json_body["containers"] == [
        {"name": "app", "previousImage": f"{ECR}/web:1.1", "image": f"{ECR}/web:1.0", "digest": None}
    ]
    assert served.bodies("RegisterTaskDefinition") == []
    assert running_task_definition(setup_ecs, workload)["taskDefinitionArn"] == workload.running_arn


class TestPruneAndOverlay:
    """The two halves of carrying a field botocore does not know, on the installed SDK's model."""

    shape = (
        boto3.session.Session(region_name="eu-west-1")
        .client("ecs")
        .meta.service_model.operation_model("RegisterTaskDefinition")
        .input_shape
    )

    def test_known_fields_are_kept_and_unknown_ones_named(self) -> None:
        value = {"family": "web", "containerDefinitions": [{"name": "app", "zzUnknown": 1}], "zzTop": True}
        pruned, lost = fidelity.prune(value, self.shape)
        assert pruned == {"family": "web", "containerDefinitions": [{"name": "app"}]}
        assert lost == ["containerDefinitions[0].zzUnknown", "zzTop"]

    def test_a_value_of_another_type_than_the_model_says_is_carried_as_sent(self) -> None:
        value = {"family": "web", "cpu": {"units": 512}, "containerDefinitions": [{"name": "a", "cpu": True}]}
        pruned, lost = fidelity.prune(value, self.shape)
        assert pruned == {"family": "web", "containerDefinitions": [{"name": "a"}]}
        assert lost == ["cpu", "containerDefinitions[0].cpu"]
        assert fidelity.overlay(pruned, value) == value

    def test_a_list_with_an_item_of_another_type_goes_whole(self) -> None:
        value = {"family": "web", "containerDefinitions": [{"name": "a"}, "not-an-object"]}
        pruned, lost = fidelity.prune(value, self.shape)
        assert pruned == {"family": "web"}
        assert lost == ["containerDefinitions"]
        assert fidelity.overlay(pruned, value) == value

    def test_map_values_are_checked_too(self) -> None:
        value = {"family": "web", "containerDefinitions": [{"name": "a", "dockerLabels": {"ok": "1", "bad": 2}}]}
        pruned, lost = fidelity.prune(value, self.shape)
        assert pruned["containerDefinitions"][0]["dockerLabels"] == {"ok": "1"}
        assert lost == ["containerDefinitions[0].dockerLabels.bad"]
        assert fidelity.overlay(pruned, value) == value

    def test_overlay_keeps_what_botocore_wrote_and_adds_only_what_it_left_out(self) -> None:
        serialized = {"family": "web", "containerDefinitions": [{"name": "a", "image": "x:1"}]}
        full = {"family": "ignored", "containerDefinitions": [{"name": "a", "image": "y", "new": 1}], "top": [1]}
        assert fidelity.overlay(serialized, full) == {
            "family": "web",
            "containerDefinitions": [{"name": "a", "image": "x:1", "new": 1}],
            "top": [1],
        }
