"""End to end over real HTTP: moto's server and `chalice local` as processes, as `make dev` runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from unittest import mock

import boto3
import pytest

from chalicelib.core.config import unsafe_aws_endpoint
from scripts.local_aws import (
    PROJECT_DIR,
    REGION,
    SECOND_ACCOUNT,
    LocalRun,
    account_session,
    chalice_local_command,
    curl_command,
    embedded_aws_environment,
    free_port,
    history_curl_command,
    instructions,
    local_run,
    push_curl_command,
)

T = TypeVar("T")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    log_path = tmp_path_factory.mktemp("local-run") / "servers.log"
    with log_path.open("wb") as log, local_run(log=log.fileno(), rollout_seconds=2) as run:
        yield run


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def embedded_ecs(run: LocalRun) -> Any:
    return boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name=REGION,
    ).client("ecs", endpoint_url=run.aws_endpoint)


def test_update_over_http_changes_the_service_in_the_embedded_aws(running: LocalRun) -> None:
    body = {
        "cluster": running.cluster,
        "service": running.service,
        "image": running.image,
        "tag": "1.28.1",
    }
    status, answer = post(
        f"{running.api_url}/update",
        body,
        {"Content-Type": "application/json", "x-api-key": running.api_key},
    )
    assert status == 200, answer
    assert answer["changed"] is True
    assert answer["deployment"]["status"] == "PRIMARY"  # the local ECS starts deployments, as ECS does
    assert answer["deployment"]["rolloutState"] == "IN_PROGRESS"

    ecs = embedded_ecs(running)
    service = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert service["taskDefinition"] == answer["taskDefinition"]["arn"]
    described = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert described["containerDefinitions"][0]["image"] == f"{running.image}:1.28.1"


def test_the_second_account_is_deployed_to_by_its_cluster_arn_over_http(running: LocalRun) -> None:
    """`chalice local` hands the ARN in the path over still percent-encoded (%3A, %2F): it is decoded once."""
    home_before = embedded_ecs(running).describe_services(cluster=running.cluster, services=[running.service])
    status, answer = post(
        f"{running.api_url}/update",
        {"cluster": running.second_cluster_arn, "service": running.service, "image": f"{running.second_image}:1.29.1"},
        {"Content-Type": "application/json", "x-api-key": running.api_key},
    )
    assert status == 200, answer
    there = account_session(running.aws_endpoint, SECOND_ACCOUNT).client("ecs", endpoint_url=running.aws_endpoint)
    service = there.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert service["taskDefinition"] == answer["taskDefinition"]["arn"]
    assert f":{SECOND_ACCOUNT}:" in service["taskDefinition"]
    home_after = embedded_ecs(running).describe_services(cluster=running.cluster, services=[running.service])
    assert home_after["services"][0]["taskDefinition"] == home_before["services"][0]["taskDefinition"]

    cluster = urllib.parse.quote(running.second_cluster_arn, safe="")
    assert "%3A" in cluster
    assert "%2F" in cluster
    status, history = get(
        f"{running.api_url}/services/{cluster}/{running.service}/history", {"x-api-key": running.api_key}
    )
    assert status == 200, history
    assert (history["account"], history["records"][0]["account"]) == (SECOND_ACCOUNT, SECOND_ACCOUNT)
    assert history["records"][0]["containers"][0]["image"] == f"{running.second_image}:1.29.1"


def get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_printed_history_curl_shows_who_deployed_what(running: LocalRun) -> None:
    body = {"cluster": running.cluster, "service": running.service, "image": f"{running.image}:1.29.0"}
    status, answer = post(
        f"{running.api_url}/update", body, {"Content-Type": "application/json", "x-api-key": running.api_key}
    )
    assert status == 200, answer
    command = history_curl_command(running)
    url = command.split()[3]
    assert url == f"{running.api_url}/services/{running.cluster}/{running.service}/history"
    status, history = get(url, {"x-api-key": running.api_key})
    assert status == 200, history
    newest = history["records"][0]
    assert (newest["action"], newest["keyId"], newest["sourceIp"]) == ("update", "local", "127.0.0.1")
    assert newest["containers"][0]["image"] == f"{running.image}:1.29.0"
    assert newest["taskDefinition"]["arn"] == answer["taskDefinition"]["arn"]
    assert newest["outcome"] == "IN_PROGRESS"
    assert newest["deploymentId"] == answer["deployment"]["id"]


def test_a_local_deployment_completes_and_the_status_says_so(running: LocalRun) -> None:
    body = {"cluster": running.cluster, "service": running.service, "image": f"{running.image}:1.29.1"}
    headers = {"Content-Type": "application/json", "x-api-key": running.api_key}
    status, answer = post(f"{running.api_url}/update", body, headers)
    assert status == 200, answer
    deployment = answer["deployment"]["id"]
    url = f"{running.api_url}/services/{running.cluster}/{running.service}?deployment={deployment}"
    status, judged = get(url, {"x-api-key": running.api_key})
    assert (status, judged["deployment"]["outcome"]) == (200, "IN_PROGRESS")
    deadline = time.monotonic() + 30
    while judged["deployment"]["outcome"] == "IN_PROGRESS" and time.monotonic() < deadline:
        time.sleep(0.5)
        judged = get(url, {"x-api-key": running.api_key})[1]
    assert (judged["deployment"]["id"], judged["deployment"]["outcome"]) == (deployment, "COMPLETED")
    # Judged from the local ECS's service deployment (scripts/local_ecs.py), as from ECS's.
    assert judged["deployment"]["ecsStatus"] == "SUCCESSFUL"
    assert judged["deployment"]["serviceDeploymentArn"].startswith(
        f"arn:aws:ecs:{REGION}:123456789012:service-deployment/{running.cluster}/{running.service}/"
    )


def test_the_printed_push_curl_rolls_the_service_through_the_queue(running: LocalRun) -> None:
    headers = {"Content-Type": "application/json", "x-api-key": running.api_key}
    start = {"cluster": running.cluster, "service": running.service, "image": f"{running.image}:1.27.9"}
    assert post(f"{running.api_url}/update", start, headers)[0] == 200
    command = push_curl_command(running, tag="1.28.0")
    body = json.loads(command.split("-d '", 1)[1].split("'", 1)[0])
    assert command.split()[5] == f"{running.api_url}/hooks/push"

    status, answer = post(f"{running.api_url}/hooks/push", body, headers)

    assert status == 202, answer
    [decision] = answer["decisions"]
    assert (decision["service"], decision["action"]) == (running.service, "queued")
    # The local consumer (scripts/local_queue.py) deploys it from the embedded AWS's queue.
    url = f"{running.api_url}/pushes/{answer['pushId']}"
    deadline = time.monotonic() + 30
    state = "queued"
    while state == "queued" and time.monotonic() < deadline:
        time.sleep(0.5)
        state = get(url, {"x-api-key": running.api_key})[1]["services"][0]["state"]
    assert state == "deployed"
    ecs = embedded_ecs(running)
    service = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    image = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert image["containerDefinitions"][0]["image"] == f"{running.image}:1.28.0"
    status, answer = post(f"{running.api_url}/hooks/push", {**body, "tag": "2.0.0"}, headers)
    assert answer["decisions"][0]["action"] == "skipped"  # semver:minor keeps the major version


def test_a_tag_that_was_never_pushed_is_refused_quickly_and_nothing_changes(running: LocalRun) -> None:
    ecs = embedded_ecs(running)
    before = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    families = ecs.list_task_definitions()["taskDefinitionArns"]
    body = {"cluster": running.cluster, "service": running.service, "image": running.image, "tag": "9.9.9"}
    started = time.monotonic()
    status, answer = post(
        f"{running.api_url}/update", body, {"Content-Type": "application/json", "x-api-key": running.api_key}
    )
    took = time.monotonic() - started
    assert status == 422, answer
    assert answer["Code"] == "UnprocessableEntityError"
    assert f"container 'web': image {running.image}:9.9.9 does not exist (ECR ImageNotFound" in answer["Message"]
    after = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert after["taskDefinition"] == before["taskDefinition"]
    assert ecs.list_task_definitions()["taskDefinitionArns"] == families  # no revision registered
    assert took < 5  # a tag that does not exist costs one ECR call, not a rollout (bench/ measures it)
    pushed = {"repository": running.image, "tag": "9.9.9"}
    status, answer = post(
        f"{running.api_url}/hooks/push", pushed, {"Content-Type": "application/json", "x-api-key": running.api_key}
    )
    assert (status, answer["Code"]) == (422, "UnprocessableEntityError")
    assert "nothing was queued" in answer["Message"]


def test_without_the_key_the_answer_is_403_and_nothing_changes(running: LocalRun) -> None:
    ecs = embedded_ecs(running)
    before = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    body = {"cluster": running.cluster, "service": running.service, "image": running.image, "tag": "9"}
    status, answer = post(f"{running.api_url}/update", body, {"Content-Type": "application/json"})
    after = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert status == 403
    assert answer["Code"] == "ForbiddenError"
    assert after["taskDefinition"] == before["taskDefinition"]


def test_the_reviewed_service_waits_for_an_approval_by_someone_else_and_then_deploys(running: LocalRun) -> None:
    ecs = embedded_ecs(running)
    headers = {"Content-Type": "application/json", "x-api-key": running.api_key}
    body = {"cluster": running.cluster, "service": running.reviewed_service, "image": f"{running.image}:1.28.1"}
    status, answer = post(f"{running.api_url}/update", body, headers)
    assert status == 202, answer
    approval = answer["approval"]["id"]
    service = ecs.describe_services(cluster=running.cluster, services=[running.reviewed_service])["services"][0]
    assert service["taskDefinition"].endswith(":1")  # nothing written yet
    vote = {"decision": "approve"}
    status, refused = post(f"{running.api_url}/approvals/{approval}", vote, headers)
    assert status == 403, refused  # the requester (local) cannot approve its own change
    status, approved = post(f"{running.api_url}/approvals/{approval}", vote, {**headers, "x-local-principal": "bob"})
    assert status == 200, approved
    assert approved["approval"]["status"] == "DEPLOYED"
    assert approved["approval"]["approvedBy"] == ["local:bob"]
    service = ecs.describe_services(cluster=running.cluster, services=[running.reviewed_service])["services"][0]
    revision = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    assert revision["containerDefinitions"][0]["image"] == f"{running.image}:1.28.1"


def wait_for(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Read until `done` says so (or the time is up); the last reading."""
    deadline = time.monotonic() + timeout
    reading = read()
    while not done(reading) and time.monotonic() < deadline:
        time.sleep(0.3)
        reading = read()
    return reading


def test_a_paused_deployment_waits_for_an_approval_by_someone_else_and_then_completes(running: LocalRun) -> None:
    """ECS (the local one) holds web-paused's deployment at its PAUSE hook; the hook's event reaches
    deployment_events through EventBridge, the queue and the consumer, and opens the approval that continues it."""
    headers = {"Content-Type": "application/json", "x-api-key": running.api_key}
    body = {"cluster": running.cluster, "service": running.paused_service, "image": f"{running.image}:1.27.9"}
    status, answer = post(f"{running.api_url}/update", body, headers)
    assert (status, answer.get("changed")) == (200, True), answer
    deployment = answer["deployment"]["id"]

    def pauses() -> list[dict[str, Any]]:
        url = f"{running.api_url}/approvals?service={running.paused_service}"
        status, listed = get(url, {"x-api-key": running.api_key})
        assert status == 200, listed
        return [a for a in listed["approvals"] if a["kind"] == "pause"]

    [pause] = wait_for(pauses, bool)
    assert (pause["status"], pause["requestedBy"], pause["required"]) == ("PENDING", "local", 1)
    assert (pause["hook"]["lifecycleStage"], pause["hook"]["timeoutAction"]) == ("POST_TEST_TRAFFIC_SHIFT", "ROLLBACK")
    history_url = f"{running.api_url}/services/{running.cluster}/{running.paused_service}/history"

    def newest() -> dict[str, Any]:
        status, history = get(history_url, {"x-api-key": running.api_key})
        assert status == 200, history
        return dict(history["records"][0])

    time.sleep(3)  # past the deployment's rollout time (2 s): ECS still holds it
    assert (newest()["deploymentId"], newest()["outcome"]) == (deployment, "IN_PROGRESS")
    vote = {"decision": "approve", "comment": "the test traffic looks fine"}
    status, refused = post(f"{running.api_url}/approvals/{pause['id']}", vote, headers)
    assert status == 403, refused  # who asked for the deployment does not approve its pause
    status, approved = post(
        f"{running.api_url}/approvals/{pause['id']}", vote, {**headers, "x-local-principal": "alice"}
    )
    assert status == 200, approved
    assert approved["approval"]["status"] == "CONTINUED"
    assert approved["serviceDeployment"]["action"] == "CONTINUE"

    record = wait_for(newest, lambda r: r.get("outcome") == "COMPLETED")
    assert (record["deploymentId"], record["outcome"]) == (deployment, "COMPLETED")
    assert pauses() == []


def test_printed_curl_names_the_real_url_key_and_workload(running: LocalRun) -> None:
    command = curl_command(running)
    for part in (f"{running.api_url}/update", f"x-api-key: {running.api_key}", running.cluster, running.service):
        assert part in command


def test_leaving_the_run_stops_every_process(tmp_path: Any) -> None:
    with (tmp_path / "servers.log").open("wb") as log, local_run(log=log.fileno()) as run:
        assert run.all_running()
        assert len(run.processes) == 3  # moto, chalice local, the queue's consumer
        ports = [int(url.rsplit(":", 1)[1]) for url in (run.aws_endpoint, run.api_url)]
    assert [process.poll() is not None for process in run.processes] == [True, True, True]
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("endpoint", [None, "http://10.1.2.3:5000", "https://ecs.eu-west-1.amazonaws.com"])
def test_local_stage_refuses_to_start_without_a_loopback_endpoint(endpoint: str | None) -> None:
    env = embedded_aws_environment("http://127.0.0.1:1")
    if endpoint is None:
        del env["AWS_ENDPOINT_URL"]
    else:
        env["AWS_ENDPOINT_URL"] = endpoint
    result = subprocess.run(  # noqa: S603 - fixed command line
        chalice_local_command(free_port()),
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "the local stage only runs against an AWS on this machine" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, None),
        ({"AWS_ENDPOINT_URL": "http://localhost:5000"}, None),
        ({"AWS_ENDPOINT_URL": "http://[::1]:5000"}, None),
        ({"AWS_ENDPOINT_URL": "http://127.8.9.10:5000"}, None),
        ({}, "AWS_ENDPOINT_URL is not set"),
        (
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        ),
        ({"AWS_ENDPOINT_URL": "http://192.168.1.5:5000"}, "not a loopback address"),
        ({"AWS_ENDPOINT_URL": "http://localhost.example.com"}, "not a loopback address"),
        (
            {
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "AWS_ENDPOINT_URL_ECS": "https://ecs.us-east-1.amazonaws.com",
            },
            "AWS_ENDPOINT_URL_ECS",
        ),
    ],
)
def test_unsafe_aws_endpoint(env: dict[str, str], problem: str | None) -> None:
    found = unsafe_aws_endpoint(env)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_embedded_environment_drops_real_credentials_and_profiles() -> None:
    env = embedded_aws_environment(
        "http://127.0.0.1:1", {"AWS_PROFILE": "prod", "AWS_SESSION_TOKEN": "real", "PATH": os.defpath}
    )
    assert "AWS_PROFILE" not in env
    assert "AWS_SESSION_TOKEN" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert env["PATH"] == os.defpath


def run_as_pasted(printed: str, directory: Any) -> subprocess.CompletedProcess[str]:
    """What make dev printed, run in a new terminal: nothing of this checkout on PATH, no virtual environment
    active, another directory; it must succeed."""
    terminal = {"PATH": "/usr/bin:/bin", "HOME": str(directory), "LANG": "C.UTF-8"}
    ran = subprocess.run(  # noqa: S603 - the script is what make dev prints
        ["bash", "-euo", "pipefail", "-c", printed],  # noqa: S607 - bash from PATH
        cwd=directory,
        env=terminal,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran


def test_what_make_dev_prints_runs_as_pasted_into_a_new_terminal(running: LocalRun, tmp_path: Any) -> None:
    printed = instructions(running)
    ran = run_as_pasted(printed, tmp_path)
    assert (tmp_path / "web.yaml").read_text().startswith("cluster: test-cluster")
    assert '"records"' in ran.stdout  # the history curl answered
    assert '"pushId"' in ran.stdout  # the push's curl answered, and what became of it too
    assert (tmp_path / "push.json").exists()
    # The reviewed service's change waited (202) and the printed approval, by someone else, deployed it.
    assert json.loads((tmp_path / "approval.json").read_text())["Code"] == "ApprovalRequired"
    assert "DEPLOYED" in ran.stdout
    # web-paused's deployment paused, and the printed approval of its pause continued it.
    assert any(a["kind"] == "pause" for a in json.loads((tmp_path / "pause.json").read_text())["approvals"])
    assert "CONTINUED" in ran.stdout
    assert "ecs-image-updater" in printed
    assert "pip install" not in printed


@pytest.fixture(scope="module")
def iam_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    """`AUTH_MODE=iam make dev`: the local stage checks every request's SigV4 signature (local / local)."""
    log_path = tmp_path_factory.mktemp("iam-run") / "servers.log"
    with log_path.open("wb") as log, local_run(log=log.fileno(), rollout_seconds=2, auth_mode="iam") as run:
        yield run


def signed_request(
    run: LocalRun,
    method: str,
    path: str,
    body: bytes = b"",
    key: str = "local",
    minutes_ago: float = 0,
) -> urllib.request.Request:
    """A request signed by botocore with the local credentials (at a date `minutes_ago`)."""
    import datetime as dt

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"x-api-key": run.api_key, "Content-Type": "application/json"}
    request = AWSRequest(method=method, url=f"{run.api_url}{path}", data=body, headers=headers)
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    signer = SigV4Auth(Credentials("local", key), "execute-api", REGION)
    with mock.patch("botocore.auth.get_current_datetime", return_value=moment.replace(tzinfo=None)):
        signer.add_auth(request)
    return urllib.request.Request(  # noqa: S310 - loopback
        request.url, data=body or None, headers=dict(request.headers.items()), method=method
    )


def answer_of(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_iam_run_takes_botocore_signed_requests_and_refuses_the_rest(iam_running: LocalRun) -> None:
    body = json.dumps(
        {"cluster": iam_running.cluster, "service": iam_running.service, "image": f"{iam_running.image}:1.29.2"}
    ).encode()
    status, answer = answer_of(signed_request(iam_running, "POST", "/update", body))
    assert (status, answer.get("changed")) == (200, True), answer
    status, answer = post(
        f"{iam_running.api_url}/update", json.loads(body), {"Content-Type": "application/json", "x-api-key": "x"}
    )
    assert status == 403
    refusals = {
        "a wrong secret": signed_request(iam_running, "GET", "/whoami", key="guess"),
        "an expired date": signed_request(iam_running, "GET", "/whoami", minutes_ago=20),
    }
    tampered = signed_request(iam_running, "POST", "/update", body)
    tampered.data = body.replace(b"1.29.2", b"6.6.6")
    refusals["a tampered body"] = tampered
    for why, request in refusals.items():
        status, answer = answer_of(request)
        assert status == 403, why
        assert answer["Message"].startswith("the request's AWS signature is refused"), why
    assert "more than 15 minutes" in answer_of(refusals["an expired date"])[1]["Message"]


def test_what_make_dev_prints_with_iam_sign_in_runs_signed(iam_running: LocalRun, tmp_path: Any) -> None:
    printed = instructions(iam_running)
    assert "--aws-sigv4 'aws:amz:us-east-1:execute-api' --user local:local" in printed
    ran = run_as_pasted(printed, tmp_path)
    assert '"records"' in ran.stdout
    assert (tmp_path / "web.yaml").read_text().startswith("cluster: test-cluster")
