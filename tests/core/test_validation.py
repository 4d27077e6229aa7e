"""Request validation: every bad input class is refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.errors import InvalidRequestError
from chalicelib.core.validation import cluster_name, parse_json_object, parse_rollback_request, parse_update_request

DIGEST = "sha256:" + "12" * 32
VALID = {"cluster": "test-cluster", "service": "web", "image": "repo/web", "tag": "1.1"}
CLUSTER_ARN = "arn:aws:ecs:eu-west-1:123456789012:cluster/test-cluster"


def with_fields(**fields: Any) -> dict[str, Any]:
    body = {**VALID, **fields}
    return {k: v for k, v in body.items() if v is not ...}


def test_valid_request_combines_image_and_tag() -> None:
    request = parse_update_request(VALID)
    assert (request.cluster, request.service, str(request.image)) == ("test-cluster", "web", "repo/web:1.1")
    assert request.container is None
    assert request.force_new_deployment is False


def test_digest_tag_yields_repo_at_digest() -> None:
    assert str(parse_update_request(with_fields(tag=DIGEST)).image) == f"repo/web@{DIGEST}"


@pytest.mark.parametrize("image", ["repo/web:2", f"repo/web@{DIGEST}", "host:5000/team/app:1"])
def test_image_may_carry_its_own_version_without_tag(image: str) -> None:
    assert str(parse_update_request(with_fields(image=image, tag=...)).image) == image


def test_options_are_read() -> None:
    request = parse_update_request(with_fields(container="worker", forceNewDeployment=True))
    assert (request.container, request.force_new_deployment) == ("worker", True)


@pytest.mark.parametrize(
    ("cluster", "service"),
    [
        (CLUSTER_ARN, "web"),
        ("test-cluster", "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web"),
        ("test-cluster", "arn:aws:ecs:eu-west-1:123456789012:service/web"),
        (CLUSTER_ARN, "arn:aws:ecs:eu-west-1:123456789012:service/test-cluster/web"),
        ("Mixed_Case-1", "Svc_2"),
        ("cn", "arn:aws-cn:ecs:cn-north-1:123456789012:service/cn/web"),
    ],
)
def test_names_and_arns_are_accepted(cluster: str, service: str) -> None:
    request = parse_update_request(with_fields(cluster=cluster, service=service))
    assert (request.cluster, request.service) == (cluster, service)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cluster": ...}, "'cluster' is required"),
        ({"service": ...}, "'service' is required"),
        ({"image": ...}, "'image' is required"),
        ({"tag": ...}, "'tag' is required unless 'image' carries"),
        ({"cluster": ""}, "'cluster' must not be empty"),
        ({"image": ""}, "'image' must not be empty"),
        ({"tag": ""}, "'tag' must not be empty"),
        ({"container": ""}, "'container' must not be empty"),
        ({"cluster": 7}, "'cluster' must be a string, not a number"),
        ({"service": ["web"]}, "'service' must be a string, not an array"),
        ({"image": {"repo": "x"}}, "'image' must be a string, not an object"),
        ({"tag": 1.1}, "'tag' must be a string, not a number"),
        ({"container": None}, "'container' must be a string, not null"),
        ({"tag": True}, "'tag' must be a string, not a boolean"),
        ({"forceNewDeployment": "true"}, "'forceNewDeployment' must be true or false, not a string"),
        ({"forceNewDeployment": 1}, "'forceNewDeployment' must be true or false, not a number"),
        ({"cluster": "c" * 2000}, "'cluster' is longer than"),
        ({"cluster": "c" * 256}, "'cluster' must be a cluster name"),
        ({"service": "s" * 256}, "'service' must be a service name"),
        ({"image": "r" * 600}, "'image' is longer than 512"),
        ({"tag": "t" * 129}, "'tag' is longer than 128"),
        ({"container": "c" * 256}, "'container' is longer than 255"),
        ({"cluster": "my cluster"}, "'cluster' must be a cluster name"),
        ({"cluster": "arn:aws:ecs:eu-west-1:123456789012:service/x/y"}, "'cluster' must be a cluster name"),
        ({"service": "../web"}, "'service' must be a service name"),
        ({"service": "arn:aws:ecs:eu-west-1:123456789012:service/other/web"}, "'service' is an ARN in cluster 'other'"),
        ({"container": "app;rm"}, "'container' must be a container name"),
        ({"image": "Repo/Web"}, "'image' is not a valid image reference"),
        ({"image": "repo web"}, "'image' is not a valid image reference"),
        ({"image": "repo/../web"}, "'image' is not a valid image reference"),
        ({"image": "repo/web:2"}, "'tag' must be absent when 'image' already carries"),
        ({"tag": "-bad"}, "'tag' must be a tag"),
        ({"tag": "sha256:abc"}, "'tag' must be a tag"),
        ({"tag": "1.0\n"}, "'tag' must be a tag"),
        ({"extra": 1}, "unknown field(s) 'extra'"),
        ({"Cluster": "x"}, "unknown field(s) 'Cluster'"),
    ],
)
def test_bad_fields_are_refused_by_name(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_update_request(with_fields(**fields))
    assert message in caught.value.message


def test_containers_map_replaces_image_and_tag() -> None:
    request = parse_update_request(
        {"cluster": "c", "service": "s", "containers": {"app": "repo/web:2", "worker": f"repo/w@{DIGEST}"}}
    )
    assert request.image is None
    assert {name: str(image) for name, image in (request.images or {}).items()} == {
        "app": "repo/web:2",
        "worker": f"repo/w@{DIGEST}",
    }


def test_dry_run_flag_is_read() -> None:
    assert parse_update_request(with_fields(dryRun=True)).dry_run is True


@pytest.mark.parametrize(
    ("containers", "extra", "message"),
    [
        ({}, {}, "'containers' must name at least one container"),
        ([], {}, "'containers' must be an object"),
        ({"app": "repo/web"}, {}, "'containers.app' must carry a tag or a digest"),
        ({"app": 1}, {}, "'containers.app' must be a string, not a number"),
        ({"app": "Repo:1"}, {}, "'containers.app' is not a valid image reference"),
        ({"bad name": "repo:1"}, {}, "must be a container name"),
        ({f"c{i}": "repo:1" for i in range(11)}, {}, "more than 10 containers"),
        ({"app": "repo:1"}, {"image": "repo"}, "remove 'image'"),
        ({"app": "repo:1"}, {"tag": "1"}, "remove 'tag'"),
        ({"app": "repo:1"}, {"container": "app"}, "remove 'container'"),
    ],
)
def test_bad_containers_maps_are_refused(containers: Any, extra: dict[str, Any], message: str) -> None:
    body = {"cluster": "c", "service": "s", "containers": containers, **extra}
    with pytest.raises(InvalidRequestError) as caught:
        parse_update_request(body)
    assert message in caught.value.message


def test_dry_run_must_be_a_boolean() -> None:
    with pytest.raises(InvalidRequestError, match="'dryRun' must be true or false"):
        parse_update_request(with_fields(dryRun="yes"))


@pytest.mark.parametrize("target", [None, "web:3", "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3"])
def test_rollback_request(target: str | None) -> None:
    body = {"cluster": "c", "service": "s", **({"taskDefinition": target} if target else {})}
    request = parse_rollback_request(body)
    assert (request.cluster, request.service, request.task_definition) == ("c", "s", target)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"cluster": "c", "service": "s", "taskDefinition": "web"}, "'taskDefinition' must be"),
        ({"cluster": "c", "service": "s", "taskDefinition": 3}, "must be a string"),
        ({"cluster": "c", "service": "s", "tag": "1"}, "unknown field(s) 'tag'"),
        ({"service": "s"}, "'cluster' is required"),
    ],
)
def test_bad_rollback_requests(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_rollback_request(body)
    assert message in caught.value.message


def test_unknown_field_message_lists_the_allowed_fields() -> None:
    with pytest.raises(InvalidRequestError, match="allowed fields are: cluster, service, services, image, tag"):
        parse_update_request(with_fields(imag="x"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "the request body is empty"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, not an array"),
        (b'"text"', "must be a JSON object, not a string"),
        (b"null", "must be a JSON object, not null"),
        (b"42", "must be a JSON object, not a number"),
        (b'{"image": 1, "image": 2}', "'image' appears more than once"),
        (b'{"tag": NaN}', "NaN, which is not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"n": ' + b"1" * 5000 + b"}", "cannot be read"),
    ],
)
def test_bodies_that_are_not_one_json_object_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_json_object(raw)
    assert message in caught.value.message


def test_json_object_is_parsed() -> None:
    assert parse_json_object(b'{"cluster": "c"}') == {"cluster": "c"}


def test_cluster_name_of_an_arn() -> None:
    assert cluster_name(CLUSTER_ARN) == "test-cluster"
    assert cluster_name("plain") == "plain"
