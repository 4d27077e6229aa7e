"""`make dev`'s local ECS (scripts/local_ecs.py): service deployments, stops, and ECS's events delivered to the app.

One local run for the module (moto's server, `chalice local`, the queues' consumer), with deployments that take
ROLLOUT_SECONDS. A deployment is made through the service's own API (`POST /update`); ECS is read with boto3.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, TypeVar

import boto3
import pytest

from scripts.local_aws import REGION, SECOND_ACCOUNT, LocalRun, account_session, local_run

ROLLOUT_SECONDS = 3.0
POLL_SECONDS = 0.1
# A minute of a PAUSE hook's timeout lasts this long in the module's run (LOCAL_HOOK_MINUTE_SECONDS).
HOOK_MINUTE_SECONDS = 1.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    log_path = tmp_path_factory.mktemp("local-ecs") / "servers.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCAL_HOOK_MINUTE_SECONDS", str(HOOK_MINUTE_SECONDS))  # the servers' environment takes it
        with log_path.open("wb") as log, local_run(log=log.fileno(), rollout_seconds=ROLLOUT_SECONDS) as run:
            yield run


def ecs_of(run: LocalRun, account: str | None = None) -> Any:
    if account is not None:
        return account_session(run.aws_endpoint, account).client("ecs", endpoint_url=run.aws_endpoint)
    return session().client("ecs", endpoint_url=run.aws_endpoint)


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)


def call(run: LocalRun, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "x-api-key": run.api_key}
    request = urllib.request.Request(f"{run.api_url}{path}", data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def deploy(run: LocalRun, tag: str, cluster: str = "", image: str = "") -> dict[str, Any]:
    """`POST /update` of the workload to `tag`; the answer."""
    body = {"cluster": cluster or run.cluster, "service": run.service, "image": image or run.image, "tag": tag}
    status, answer = call(run, "POST", "/update", body)
    assert (status, answer.get("changed")) == (200, True), answer
    return answer


def wait_for(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Read until `done` says so (or the time is up); the last reading."""
    deadline = time.monotonic() + timeout
    reading = read()
    while not done(reading) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        reading = read()
    return reading


def ecs_deployment(ecs: Any, cluster: str, service: str, deployment_id: str) -> dict[str, Any] | None:
    """The ECS deployment (DescribeServices' deployments[]) of that id, if the service still lists it."""
    described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    return next((d for d in described["deployments"] if d["id"] == deployment_id), None)


def service_deployment(ecs: Any, arn: str) -> dict[str, Any]:
    [described] = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    return dict(described)


def tied_service_deployment(ecs: Any, cluster: str, service: str, deployment: dict[str, Any]) -> dict[str, Any]:
    """The service deployment of an ECS deployment, found as the contract says the core finds it: those created
    since 15 minutes before it whose target revision runs its task definition, the one created closest to it."""
    listed = ecs.list_service_deployments(
        cluster=cluster, service=service, createdAt={"after": deployment["createdAt"] - timedelta(minutes=15)}
    )["serviceDeployments"][:20]
    targets = [d["targetServiceRevisionArn"] for d in listed]
    revisions = {
        r["serviceRevisionArn"]: r
        for r in ecs.describe_service_revisions(serviceRevisionArns=targets)["serviceRevisions"]
    }
    candidates = [
        d for d in listed if revisions[d["targetServiceRevisionArn"]]["taskDefinition"] == deployment["taskDefinition"]
    ]
    assert candidates, listed
    return dict(min(candidates, key=lambda d: abs(d["createdAt"] - deployment["createdAt"])))


def history_record(run: LocalRun, deployment_id: str, cluster: str = "") -> dict[str, Any]:
    cluster = urllib.parse.quote(cluster or run.cluster, safe="")
    status, history = call(run, "GET", f"/services/{cluster}/{run.service}/history")
    assert status == 200, history
    return next((r for r in history["records"] if r.get("deploymentId") == deployment_id), {})


@dataclass(frozen=True)
class RolledOut:
    """One deployment through `POST /update`, watched from start to end."""

    deployment: dict[str, Any]  # the ECS deployment as DescribeServices answered right after the update
    tied: dict[str, Any]  # its service deployment, as ListServiceDeployments answered then
    first: dict[str, Any]  # DescribeServiceDeployments' answer then
    watched: list[tuple[str, str]]  # (status, lifecycleStage) as it moved, in order
    last: dict[str, Any]  # DescribeServiceDeployments' answer once finished
    completed: dict[str, Any] | None  # the ECS deployment once finished


@pytest.fixture(scope="module")
def rolled_out(running: LocalRun) -> RolledOut:
    ecs = ecs_of(running)
    answer = deploy(running, "1.27.1")
    deployment = ecs_deployment(ecs, running.cluster, running.service, answer["deployment"]["id"])
    assert deployment is not None
    tied = tied_service_deployment(ecs, running.cluster, running.service, deployment)
    first = service_deployment(ecs, tied["serviceDeploymentArn"])
    watched: list[tuple[str, str]] = []

    def read() -> dict[str, Any]:
        described = service_deployment(ecs, tied["serviceDeploymentArn"])
        watched.append((described["status"], described["lifecycleStage"]))
        return described

    last = wait_for(read, lambda d: d["status"] != "IN_PROGRESS")
    completed = ecs_deployment(ecs, running.cluster, running.service, deployment["id"])
    return RolledOut(deployment, tied, first, watched, last, completed)


def test_an_update_has_a_service_deployment_created_at_its_deployment_s_moment(rolled_out: RolledOut) -> None:
    assert rolled_out.tied["createdAt"] == rolled_out.deployment["createdAt"]
    assert rolled_out.first["createdAt"] == rolled_out.deployment["createdAt"]
    assert rolled_out.first["status"] == "IN_PROGRESS"


def test_the_service_deployment_s_target_revision_runs_the_deployment_s_task_definition(
    running: LocalRun, rolled_out: RolledOut
) -> None:
    ecs = ecs_of(running)
    target = rolled_out.first["targetServiceRevision"]["arn"]
    [revision] = ecs.describe_service_revisions(serviceRevisionArns=[target])["serviceRevisions"]
    assert revision["taskDefinition"] == rolled_out.deployment["taskDefinition"]
    assert revision["containerImages"] == [{"containerName": "web", "image": f"{running.image}:1.27.1"}]
    [source] = rolled_out.first["sourceServiceRevisions"]
    [previous] = ecs.describe_service_revisions(serviceRevisionArns=[source["arn"]])["serviceRevisions"]
    assert previous["taskDefinition"] != revision["taskDefinition"]


def test_service_deployment_and_revision_arns_have_ecs_s_forms(running: LocalRun, rolled_out: RolledOut) -> None:
    prefix = f"arn:aws:ecs:{REGION}:123456789012"
    place = f"{running.cluster}/{running.service}"
    arn = rolled_out.first["serviceDeploymentArn"]
    assert re.fullmatch(rf"{prefix}:service-deployment/{place}/[A-Za-z0-9_-]{{21}}", arn)
    assert rolled_out.deployment["id"].split("/")[-1] not in arn  # ECS documents no relation to ecs-svc/…
    assert re.fullmatch(
        rf"{prefix}:service-revision/{place}/\d{{19}}", rolled_out.first["targetServiceRevision"]["arn"]
    )
    assert rolled_out.first["serviceArn"] == f"{prefix}:service/{place}"
    assert rolled_out.first["clusterArn"] == f"{prefix}:cluster/{running.cluster}"


def test_a_service_deployment_moves_through_its_stages_and_bake_time_to_successful(rolled_out: RolledOut) -> None:
    assert rolled_out.last["status"] == "SUCCESSFUL"
    stages = [stage for status, stage in rolled_out.watched if status == "IN_PROGRESS"]
    assert "BAKE_TIME" in stages  # a deployment baking is still IN_PROGRESS
    order = ["SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT", "BAKE_TIME", "CLEAN_UP"]
    assert [order.index(stage) for stage in stages] == sorted(order.index(stage) for stage in stages)
    assert rolled_out.last["deploymentConfiguration"]["strategy"] == "ROLLING"
    target = rolled_out.last["targetServiceRevision"]
    assert (target["runningTaskCount"], target["pendingTaskCount"]) == (target["requestedTaskCount"], 0)


def test_a_service_deployment_succeeds_at_the_moment_its_deployment_completes(rolled_out: RolledOut) -> None:
    assert rolled_out.completed is not None
    assert rolled_out.completed["rolloutState"] == "COMPLETED"
    assert rolled_out.last["finishedAt"] == rolled_out.completed["updatedAt"]
    took = rolled_out.last["finishedAt"] - rolled_out.last["createdAt"]
    assert took == timedelta(seconds=ROLLOUT_SECONDS)


def test_the_history_shows_completed_through_the_delivered_deployment_events(
    running: LocalRun, rolled_out: RolledOut
) -> None:
    record = wait_for(
        lambda: history_record(running, rolled_out.deployment["id"]), lambda r: r.get("outcome") == "COMPLETED"
    )
    assert record.get("outcome") == "COMPLETED", record


def test_a_deployment_completes_and_is_told_with_nobody_asking(running: LocalRun) -> None:
    """Only the probe's queue is read: the local ECS rolls out and sends ECS's events by itself."""
    sqs = session().client("sqs", endpoint_url=running.aws_endpoint)
    events = session().client("events", endpoint_url=running.aws_endpoint)
    url = sqs.create_queue(QueueName="probe-deployment-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change"]}
    events.put_rule(Name="probe-deployment-events", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="probe-deployment-events", Targets=[{"Id": "probe", "Arn": arn}])
    deployment_id = deploy(running, "1.28.1")["deployment"]["id"]
    told: list[dict[str, Any]] = []

    def receive() -> list[dict[str, Any]]:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(message["Body"])
            if event["detail"]["deploymentId"] == deployment_id:
                told.append(event)
        return told

    wait_for(receive, lambda got: any(e["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED" for e in got))
    assert [e["detail"]["eventName"] for e in told] == [
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "SERVICE_DEPLOYMENT_COMPLETED",
    ]
    completed = told[-1]
    assert set(completed) >= {"version", "id", "detail-type", "source", "account", "time", "region", "resources"}
    assert (completed["version"], completed["detail-type"], completed["source"]) == (
        "0",
        "ECS Deployment State Change",
        "aws.ecs",
    )
    assert (completed["account"], completed["region"]) == ("123456789012", REGION)
    assert completed["resources"] == [f"arn:aws:ecs:{REGION}:123456789012:service/{running.cluster}/{running.service}"]
    assert completed["detail"] == {
        "eventType": "INFO",
        "eventName": "SERVICE_DEPLOYMENT_COMPLETED",
        "deploymentId": deployment_id,
        "updatedAt": completed["detail"]["updatedAt"],
        "reason": f"ECS deployment {deployment_id} completed.",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", completed["detail"]["updatedAt"])


def test_abort_stops_a_service_deployment_and_its_deployment_never_completes(running: LocalRun) -> None:
    ecs = ecs_of(running)
    deployment_id = deploy(running, "1.27.9")["deployment"]["id"]
    deployment = ecs_deployment(ecs, running.cluster, running.service, deployment_id)
    assert deployment is not None
    arn = tied_service_deployment(ecs, running.cluster, running.service, deployment)["serviceDeploymentArn"]

    assert ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")["serviceDeploymentArn"] == arn

    assert service_deployment(ecs, arn)["status"] in ("STOP_REQUESTED", "STOPPED")
    stopped = wait_for(lambda: service_deployment(ecs, arn), lambda d: d["status"] == "STOPPED")
    assert stopped["status"] == "STOPPED"
    assert stopped["stoppedAt"] >= stopped["createdAt"]
    time.sleep(max(0.0, ROLLOUT_SECONDS + 0.5 - (time.time() - deployment["createdAt"].timestamp())))
    assert service_deployment(ecs, arn)["status"] == "STOPPED"  # past its rollout time: still stopped
    after = ecs_deployment(ecs, running.cluster, running.service, deployment_id)
    assert after is not None
    assert after["rolloutState"] == "FAILED"
    with pytest.raises(ecs.exceptions.ConflictException):
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")


def test_rollback_returns_the_service_to_the_previous_revision(running: LocalRun) -> None:
    ecs = ecs_of(running)
    before = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    deployment_id = deploy(running, "1.28.0")["deployment"]["id"]
    deployment = ecs_deployment(ecs, running.cluster, running.service, deployment_id)
    assert deployment is not None
    arn = tied_service_deployment(ecs, running.cluster, running.service, deployment)["serviceDeploymentArn"]

    ecs.stop_service_deployment(serviceDeploymentArn=arn)  # ROLLBACK, ECS's default

    statuses = [service_deployment(ecs, arn)["status"]]
    done = wait_for(
        lambda: service_deployment(ecs, arn),
        lambda d: statuses.append(d["status"]) or d["status"] == "ROLLBACK_SUCCESSFUL",  # type: ignore[func-returns-value]
    )
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert statuses[0] in ("ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
    assert "ROLLBACK_IN_PROGRESS" in statuses
    [source] = done["sourceServiceRevisions"]
    assert done["rollback"]["serviceRevisionArn"] == source["arn"]
    after = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert after["taskDefinition"] == before["taskDefinition"] != deployment["taskDefinition"]
    assert after["deployments"][0]["rolloutState"] == "COMPLETED"
    record = wait_for(lambda: history_record(running, deployment_id), lambda r: r.get("outcome") == "ROLLED_BACK")
    assert record.get("outcome") == "ROLLED_BACK", record


def test_the_second_account_s_deployment_events_reach_its_history(running: LocalRun) -> None:
    answer = deploy(running, "1.29.1", running.second_cluster_arn, running.second_image)
    ecs = ecs_of(running, SECOND_ACCOUNT)
    listed = ecs.list_service_deployments(cluster=running.cluster, service=running.service)["serviceDeployments"]
    assert f":{SECOND_ACCOUNT}:service-deployment/" in listed[0]["serviceDeploymentArn"]
    record = wait_for(
        lambda: history_record(running, answer["deployment"]["id"], running.second_cluster_arn),
        lambda r: r.get("outcome") == "COMPLETED",
    )
    assert record.get("outcome") == "COMPLETED", record


def test_a_service_keeps_the_deployment_configuration_it_was_created_with(running: LocalRun) -> None:
    ecs = ecs_of(running)
    workload = ecs.describe_services(cluster=running.cluster, services=[running.service])["services"][0]
    assert workload["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert workload["deploymentConfiguration"]["strategy"] == "ROLLING"  # the template names none
    linear = {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 0}}

    created = ecs.create_service(
        cluster=running.cluster,
        serviceName="linear-web",
        taskDefinition=workload["taskDefinition"],
        desiredCount=1,
        deploymentConfiguration=linear,
    )["service"]

    assert created["deploymentConfiguration"]["linearConfiguration"] == linear["linearConfiguration"]
    [first] = ecs.list_service_deployments(cluster=running.cluster, service="linear-web")["serviceDeployments"]
    watched: list[tuple[str, float]] = []

    def read() -> dict[str, Any]:
        described = service_deployment(ecs, first["serviceDeploymentArn"])
        watched.append(
            (described["lifecycleStage"], described["targetServiceRevision"]["requestedProductionTrafficWeight"])
        )
        return described

    last = wait_for(read, lambda d: d["status"] != "IN_PROGRESS")
    assert last["status"] == "SUCCESSFUL"
    assert last["deploymentConfiguration"]["strategy"] == "LINEAR"
    assert "TEST_TRAFFIC_SHIFT" in [stage for stage, _ in watched]
    weights = sorted({weight for _, weight in watched})
    assert weights[0] == 0.0
    assert weights[-1] == 100.0
    assert 50.0 in weights  # the traffic moved in steps of 50


def test_unknown_service_deployments_and_revisions_are_failures(running: LocalRun) -> None:
    ecs = ecs_of(running)
    unknown = f"arn:aws:ecs:{REGION}:123456789012:service-deployment/{running.cluster}/{running.service}/nothing"
    described = ecs.describe_service_deployments(serviceDeploymentArns=[unknown])
    assert (described["serviceDeployments"], described["failures"]) == ([], [{"arn": unknown, "reason": "MISSING"}])
    revision = unknown.replace("service-deployment", "service-revision")
    described = ecs.describe_service_revisions(serviceRevisionArns=[revision])
    assert (described["serviceRevisions"], described["failures"]) == ([], [{"arn": revision, "reason": "MISSING"}])
    with pytest.raises(ecs.exceptions.ServiceDeploymentNotFoundException):
        ecs.stop_service_deployment(serviceDeploymentArn=unknown)
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.list_service_deployments(cluster=running.cluster, service="no-such-service")


def test_a_stop_of_an_unknown_type_is_refused(running: LocalRun, rolled_out: RolledOut) -> None:
    ecs = ecs_of(running)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_service_deployment(serviceDeploymentArn=rolled_out.tied["serviceDeploymentArn"], stopType="PAUSE")


def test_list_service_deployments_filters_and_pages(running: LocalRun, rolled_out: RolledOut) -> None:
    ecs = ecs_of(running)
    place = {"cluster": running.cluster, "service": running.service}
    everything = ecs.list_service_deployments(**place, maxResults=100)["serviceDeployments"]
    assert len(everything) >= 2  # the template's first deployment, and the update's
    created = [d["createdAt"] for d in everything]
    assert created == sorted(created, reverse=True)  # newest first

    pages, token = [], None
    while True:
        page = ecs.list_service_deployments(**place, maxResults=1, **({"nextToken": token} if token else {}))
        pages += page["serviceDeployments"]
        token = page.get("nextToken")
        if not token:
            break
    assert [d["serviceDeploymentArn"] for d in pages] == [d["serviceDeploymentArn"] for d in everything]

    moment = rolled_out.tied["createdAt"]
    after = ecs.list_service_deployments(**place, createdAt={"after": moment})["serviceDeployments"]
    before = ecs.list_service_deployments(**place, createdAt={"before": moment - timedelta(milliseconds=1)})
    assert all(d["createdAt"] >= moment for d in after)
    assert rolled_out.tied["serviceDeploymentArn"] in [d["serviceDeploymentArn"] for d in after]
    assert rolled_out.tied["serviceDeploymentArn"] not in [
        d["serviceDeploymentArn"] for d in before["serviceDeployments"]
    ]
    successful = ecs.list_service_deployments(**place, status=["SUCCESSFUL"])["serviceDeployments"]
    assert successful
    assert {d["status"] for d in successful} == {"SUCCESSFUL"}


# --- PAUSE lifecycle hooks -----------------------------------------------------------------------------------------

HOOK_DETAIL_TYPE = "ECS Hook State Change"


def hooked_service(
    run: LocalRun, name: str, stage: str, minutes: int, action: str, strategy: str = "BLUE_GREEN"
) -> dict[str, Any]:
    """A new service of the workload's revision whose deployments a PAUSE hook holds at `stage`; as created."""
    ecs = ecs_of(run)
    workload = ecs.describe_services(cluster=run.cluster, services=[run.service])["services"][0]
    hook = {
        "targetType": "PAUSE",
        "lifecycleStages": [stage],
        "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": action},
    }
    return dict(
        ecs.create_service(
            cluster=run.cluster,
            serviceName=name,
            taskDefinition=workload["taskDefinition"],
            desiredCount=1,
            deploymentConfiguration={"strategy": strategy, "lifecycleHooks": [hook]},
        )["service"]
    )


@dataclass(frozen=True)
class Held:
    """A deployment of a hooked service, from its update until a PAUSE hook holds it."""

    service: dict[str, Any]  # the service as created
    arn: str  # the update's service deployment
    deployment_id: str  # the update's ECS deployment
    task_definition: str  # what the update deploys
    described: dict[str, Any]  # DescribeServiceDeployments' answer once held


def update_and_hold(run: LocalRun, service: dict[str, Any], tag: str) -> Held:
    """Update the hooked service to a new revision (image `tag`) and wait until its hook holds the deployment."""
    ecs = ecs_of(run)
    revision = ecs.register_task_definition(
        family=f"{service['serviceName']}-revisions",
        containerDefinitions=[{"name": "web", "image": f"{run.image}:{tag}", "memory": 128}],
    )["taskDefinition"]["taskDefinitionArn"]
    updated = ecs.update_service(cluster=run.cluster, service=service["serviceName"], taskDefinition=revision)
    deployment_id = updated["service"]["deployments"][0]["id"]
    [brief_of] = ecs.list_service_deployments(
        cluster=run.cluster, service=service["serviceName"], status=["IN_PROGRESS"]
    )["serviceDeployments"]
    arn = brief_of["serviceDeploymentArn"]
    described = wait_for(lambda: service_deployment(ecs, arn), lambda d: bool(d.get("lifecycleHookDetails")))
    return Held(service, arn, deployment_id, revision, described)


def probe_queue(run: LocalRun, name: str, detail_type: str) -> str:
    """A queue that a rule on the default bus fills with ECS's events of `detail_type`; its URL."""
    sqs = session().client("sqs", endpoint_url=run.aws_endpoint)
    events = session().client("events", endpoint_url=run.aws_endpoint)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps({"source": ["aws.ecs"], "detail-type": [detail_type]}))
    events.put_targets(Rule=name, Targets=[{"Id": "probe", "Arn": arn}])
    return str(url)


def received(run: LocalRun, url: str) -> list[dict[str, Any]]:
    sqs = session().client("sqs", endpoint_url=run.aws_endpoint)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


@dataclass(frozen=True)
class HeldAndTold:
    held: Held
    later: dict[str, Any]  # DescribeServiceDeployments' answer past the deployment's rollout time, still held
    ecs_deployment: dict[str, Any] | None  # the ECS deployment then
    told: list[dict[str, Any]]  # the hook events a rule delivered for its service deployment


@pytest.fixture(scope="module")
def held(running: LocalRun) -> HeldAndTold:
    ecs = ecs_of(running)
    url = probe_queue(running, "probe-hook-events", HOOK_DETAIL_TYPE)
    service = hooked_service(running, "paused-web", "POST_TEST_TRAFFIC_SHIFT", 60, "ROLLBACK")
    deployment = update_and_hold(running, service, "1.27.1")
    told: list[dict[str, Any]] = []

    def receive() -> list[dict[str, Any]]:
        told.extend(e for e in received(running, url) if e["detail"].get("serviceDeploymentArn") == deployment.arn)
        return told

    wait_for(receive, bool)
    time.sleep(max(0.0, ROLLOUT_SECONDS + 0.5 - (time.time() - deployment.described["createdAt"].timestamp())))
    later = service_deployment(ecs, deployment.arn)
    return HeldAndTold(
        deployment,
        later,
        ecs_deployment(ecs, running.cluster, service["serviceName"], deployment.deployment_id),
        told,
    )


def test_a_pause_hook_holds_the_deployment_at_its_stage_past_its_rollout_time(held: HeldAndTold) -> None:
    assert held.held.described["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert (held.later["status"], held.later["lifecycleStage"]) == ("IN_PROGRESS", "POST_TEST_TRAFFIC_SHIFT")
    assert held.ecs_deployment is not None
    assert held.ecs_deployment["rolloutState"] == "IN_PROGRESS"
    target = held.later["targetServiceRevision"]
    assert (target["requestedTestTrafficWeight"], target["requestedProductionTrafficWeight"]) == (100.0, 0.0)


def test_a_held_deployment_lists_its_hook_awaiting_action(held: HeldAndTold) -> None:
    [hook] = held.later["lifecycleHookDetails"]
    assert re.fullmatch(r"ecs-pause-[A-Za-z0-9_-]{43}", hook["hookId"])
    assert (hook["targetType"], hook["status"], hook["timeoutAction"]) == ("PAUSE", "AWAITING_ACTION", "ROLLBACK")
    waited = hook["expiresAt"] - held.later["createdAt"]
    # Held once 35% of the rollout was done; its 60 minutes last HOOK_MINUTE_SECONDS each here.
    assert waited == timedelta(seconds=0.35 * ROLLOUT_SECONDS + 60 * HOOK_MINUTE_SECONDS)


def test_the_hook_awaiting_action_is_told_to_the_bus_and_its_rules(running: LocalRun, held: HeldAndTold) -> None:
    [event] = held.told
    [hook] = held.later["lifecycleHookDetails"]
    assert (event["detail-type"], event["source"], event["account"]) == (HOOK_DETAIL_TYPE, "aws.ecs", "123456789012")
    assert event["resources"] == [held.held.service["serviceArn"]]
    assert event["detail"] == {
        "eventType": "INFO",
        "eventName": "HOOK_AWAITING_ACTION",
        "serviceDeploymentArn": held.held.arn,
        "hookId": hook["hookId"],
        "targetType": "PAUSE",
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "expiresAt": event["detail"]["expiresAt"],
        "timeoutAction": "ROLLBACK",
        "updatedAt": event["detail"]["updatedAt"],
    }
    assert event["detail"]["expiresAt"] == hook["expiresAt"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_service_s_first_deployment_passes_its_hooks(running: LocalRun, held: HeldAndTold) -> None:
    ecs = ecs_of(running)
    listed = ecs.list_service_deployments(cluster=running.cluster, service=held.held.service["serviceName"])
    first = service_deployment(ecs, listed["serviceDeployments"][-1]["serviceDeploymentArn"])
    assert first["serviceDeploymentArn"] != held.held.arn
    assert "lifecycleHookDetails" not in first
    assert first["deploymentConfiguration"]["lifecycleHooks"][0]["lifecycleStages"] == ["POST_TEST_TRAFFIC_SHIFT"]


@dataclass(frozen=True)
class Continued:
    answer: dict[str, Any]
    watched: list[tuple[str, str]]  # (status, lifecycleStage) from the continue on
    last: dict[str, Any]
    completed: dict[str, Any] | None  # the ECS deployment once finished


@pytest.fixture(scope="module")
def continued(running: LocalRun, held: HeldAndTold) -> Continued:
    ecs = ecs_of(running)
    [hook] = held.later["lifecycleHookDetails"]
    answer = ecs.continue_service_deployment(serviceDeploymentArn=held.held.arn, hookId=hook["hookId"])
    watched: list[tuple[str, str]] = []

    def read() -> dict[str, Any]:
        described = service_deployment(ecs, held.held.arn)
        watched.append((described["status"], described["lifecycleStage"]))
        return described

    last = wait_for(read, lambda d: d["status"] != "IN_PROGRESS")
    completed = ecs_deployment(ecs, running.cluster, held.held.service["serviceName"], held.held.deployment_id)
    return Continued(dict(answer), watched, last, completed)


def test_continue_resumes_the_rollout_where_it_stopped_and_it_completes(
    held: HeldAndTold, continued: Continued
) -> None:
    assert continued.answer["serviceDeploymentArn"] == held.held.arn
    assert continued.last["status"] == "SUCCESSFUL"
    stages = [stage for status, stage in continued.watched if status == "IN_PROGRESS"]
    assert stages[-1] in ("BAKE_TIME", "CLEAN_UP")
    assert "TEST_TRAFFIC_SHIFT" not in stages  # on from where it was held, not from the start
    assert continued.completed is not None
    assert continued.completed["rolloutState"] == "COMPLETED"
    took = continued.last["finishedAt"] - continued.last["createdAt"]
    assert took > timedelta(seconds=ROLLOUT_SECONDS + 0.5)  # its rollout time, and the time it was held


def test_a_continued_hook_is_succeeded(held: HeldAndTold, continued: Continued) -> None:
    [hook] = continued.last["lifecycleHookDetails"]
    assert (hook["hookId"], hook["status"]) == (held.later["lifecycleHookDetails"][0]["hookId"], "SUCCEEDED")


def test_continue_is_refused_for_a_hook_or_deployment_that_waits_no_more(
    running: LocalRun, held: HeldAndTold, continued: Continued
) -> None:
    ecs = ecs_of(running)
    hook_id = held.later["lifecycleHookDetails"][0]["hookId"]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="SUCCESSFUL"):
        ecs.continue_service_deployment(serviceDeploymentArn=held.held.arn, hookId=hook_id)
    unknown = held.held.arn.rsplit("/", 1)[0] + "/nothing"
    with pytest.raises(ecs.exceptions.ServiceDeploymentNotFoundException):
        ecs.continue_service_deployment(serviceDeploymentArn=unknown, hookId=hook_id, action="ROLLBACK")


def test_continue_is_refused_for_a_hook_that_is_not_waiting(running: LocalRun) -> None:
    ecs = ecs_of(running)
    service = hooked_service(running, "refusing-web", "POST_TEST_TRAFFIC_SHIFT", 60, "ROLLBACK", "CANARY")
    deployment = update_and_hold(running, service, "1.28.0")
    [hook] = deployment.described["lifecycleHookDetails"]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="not awaiting action"):
        ecs.continue_service_deployment(serviceDeploymentArn=deployment.arn, hookId="ecs-pause-not-this-one")
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="action"):
        ecs.continue_service_deployment(serviceDeploymentArn=deployment.arn, hookId=hook["hookId"], action="PAUSE")
    assert service_deployment(ecs, deployment.arn)["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION"


def test_rollback_at_a_hook_returns_the_service_to_its_previous_revision(running: LocalRun) -> None:
    ecs = ecs_of(running)
    service = hooked_service(running, "rolled-back-web", "POST_SCALE_UP", 60, "CONTINUE", "ROLLING")
    deployment = update_and_hold(running, service, "1.28.1")
    assert deployment.described["lifecycleStage"] == "POST_SCALE_UP"
    [hook] = deployment.described["lifecycleHookDetails"]

    ecs.continue_service_deployment(serviceDeploymentArn=deployment.arn, hookId=hook["hookId"], action="ROLLBACK")

    done = wait_for(lambda: service_deployment(ecs, deployment.arn), lambda d: d["status"] == "ROLLBACK_SUCCESSFUL")
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert done["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"
    assert done["rollback"]["serviceRevisionArn"] == done["sourceServiceRevisions"][0]["arn"]
    after = ecs.describe_services(cluster=running.cluster, services=[service["serviceName"]])["services"][0]
    assert after["taskDefinition"] == service["taskDefinition"] != deployment.task_definition
    assert after["deployments"][0]["rolloutState"] == "COMPLETED"


@pytest.mark.parametrize(
    ("action", "ends"), [("CONTINUE", "SUCCESSFUL"), ("ROLLBACK", "ROLLBACK_SUCCESSFUL")], ids=str.lower
)
def test_a_hook_that_times_out_takes_its_timeout_action(running: LocalRun, action: str, ends: str) -> None:
    ecs = ecs_of(running)
    service = hooked_service(running, f"timing-out-{action.lower()}", "POST_PRODUCTION_TRAFFIC_SHIFT", 1, action)
    deployment = update_and_hold(running, service, "1.29.0")
    assert deployment.described["lifecycleStage"] == "POST_PRODUCTION_TRAFFIC_SHIFT"
    [hook] = deployment.described["lifecycleHookDetails"]
    assert hook["status"] == "AWAITING_ACTION"

    done = wait_for(lambda: service_deployment(ecs, deployment.arn), lambda d: d["status"] == ends)

    assert done["status"] == ends
    [timed_out] = done["lifecycleHookDetails"]
    assert (timed_out["hookId"], timed_out["status"]) == (hook["hookId"], "TIMED_OUT")
    assert (done.get("finishedAt") or done["updatedAt"]) >= hook["expiresAt"]


def test_a_held_deployment_that_is_stopped_ends_its_hook_failed(running: LocalRun) -> None:
    ecs = ecs_of(running)
    service = hooked_service(running, "stopped-web", "PRE_SCALE_UP", 60, "ROLLBACK", "LINEAR")
    deployment = update_and_hold(running, service, "1.29.1")
    assert deployment.described["lifecycleStage"] == "PRE_SCALE_UP"
    assert deployment.described["targetServiceRevision"]["runningTaskCount"] == 0

    ecs.stop_service_deployment(serviceDeploymentArn=deployment.arn, stopType="ABORT")

    stopped = wait_for(lambda: service_deployment(ecs, deployment.arn), lambda d: d["status"] == "STOPPED")
    assert stopped["status"] == "STOPPED"
    assert stopped["lifecycleHookDetails"][0]["status"] == "FAILED"
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.continue_service_deployment(
            serviceDeploymentArn=deployment.arn, hookId=stopped["lifecycleHookDetails"][0]["hookId"]
        )
