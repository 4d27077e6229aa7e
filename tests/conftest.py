"""Shared moto worlds: an ECS workload to update, and a record of the AWS calls made."""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from chalice.test import Client
from moto import mock_aws

from chalicelib.aws import budget, clients
from tests.faults import VirtualClock

PROJECT_DIR = Path(__file__).resolve().parents[1]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
API_KEY = "test-key-0123456789"

# The routes read AUTH_MODE when the app is imported (the authorizers are part of the template): the tests
# import a key stage, whatever the shell says; the IAM stage's template is packaged in a process of its own.
os.environ.pop("AUTH_MODE", None)
importlib.import_module("app")  # imported once, here, on a key stage, before any test sets AUTH_MODE

# The tests need a subnet and a security group from moto's EC2, not its AMI catalogue.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


@pytest.fixture(autouse=True)
def offline_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, and nothing that could reach a real endpoint."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_ECS",
        "LOCAL_API_KEY",
        "AWS_SESSION_TOKEN",
        "AUTH_MODE",
        "PERMISSIONS_FILE",
        "GITHUB_WEBHOOK_SECRET",
        "PUSH_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # Most tests deploy made-up versions of images no registry holds; the checks before a write have tests of
    # their own (tests/deploy/test_verify.py), which set VERIFY_IMAGES=require, as the stages leave it.
    monkeypatch.setenv("VERIFY_IMAGES", "off")


@pytest.fixture
def moto_world() -> Iterator[None]:
    """An empty in-process AWS; the service's cached clients are made inside it."""
    from chalicelib.aws import accounts, queue, secrets
    from chalicelib.deploy import verify

    def forget() -> None:
        clients.reset_clients()
        accounts.forget()
        queue.forget_urls()
        secrets.forget()
        verify.forget()

    with mock_aws():
        forget()
        yield
        forget()


@pytest.fixture
def atomic_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto applies each request whole, as AWS does: its in-process backends are not thread-safe.

    Without this, a DynamoDB GetItem in one thread can read an item while an
    UpdateItem in another is changing it (moto raises "dictionary changed size
    during iteration"); real DynamoDB applies every request atomically.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    one_at_a_time = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        with one_at_a_time:
            return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)


@pytest.fixture
def lambda_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Functions invoked through Chalice's test client get minutes, as their configured timeouts give them.

    The test client hands every function a context with 3 s left whatever
    `lambda_timeout` says; the functions that budget their work by it need more.
    """
    import functools

    from chalice import local as chalice_local

    monkeypatch.setattr(
        "chalice.test.LambdaContext", functools.partial(chalice_local.LambdaContext, max_runtime_ms=300_000)
    )


@pytest.fixture
def ecs(moto_world: None) -> Any:
    """The ECS client the service itself uses (same timeouts, retries and time budget)."""
    return clients.ecs_client()


@pytest.fixture
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """Drive the time budget and botocore's retry back-off by a virtual clock."""
    clock = VirtualClock()
    monkeypatch.setattr(budget, "clock", clock)
    monkeypatch.setattr(budget, "sleep", clock.sleep)
    monkeypatch.setattr("botocore.endpoint.time.sleep", clock.sleep)
    return clock


@pytest.fixture
def setup_ecs(moto_world: None) -> Any:
    """A plain client for arranging and inspecting the world, outside the counted calls."""
    return clients.session().client("ecs", region_name=REGION)


@pytest.fixture
def calls(ecs: Any) -> list[str]:
    """Names of the ECS operations the service's client makes (one per call, not per retry).

    Recorded when parameters are built, before any `before-call` fault hook runs.
    """
    made: list[str] = []
    ecs.meta.events.register("before-parameter-build.ecs", lambda model, **_: made.append(model.name))
    return made


def rich_container(name: str, image: str) -> dict[str, Any]:
    """A container definition that uses most of what ECS offers."""
    return {
        "name": name,
        "image": image,
        "cpu": 128,
        "memory": 256,
        "memoryReservation": 128,
        "essential": name == "app",
        "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp", "name": f"{name}-http"}],
        "environment": [{"name": "MODE", "value": "production"}, {"name": "EMPTY", "value": ""}],
        "secrets": [
            {"name": "DB_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:db-AbCdEf"}
        ],
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": False}],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/ecs/web", "awslogs-region": REGION, "awslogs-stream-prefix": name},
        },
        "healthCheck": {
            "command": ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"],
            "interval": 30,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 10,
        },
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        "dockerLabels": {"team": "platform"},
        "linuxParameters": {"initProcessEnabled": True},
        "stopTimeout": 30,
        "readonlyRootFilesystem": True,
        "user": "1000:1000",
        "workingDirectory": "/srv",
        "command": ["serve", "--port", "8080"],
    }


RICH_TASK_DEFINITION: dict[str, Any] = {
    "family": "web",
    "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/web-task",
    "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/web-execution",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "512",
    "memory": "1024",
    "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
    "ephemeralStorage": {"sizeInGiB": 30},
    "pidMode": "task",
    "ipcMode": "task",
    "proxyConfiguration": {
        "type": "APPMESH",
        "containerName": "app",
        "properties": [{"name": "IgnoredUID", "value": "1337"}, {"name": "ProxyIngressPort", "value": "15000"}],
    },
    "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.availability-zone in [eu-west-1a]"}],
    "volumes": [
        {"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678", "transitEncryption": "ENABLED"}}
    ],
}
RICH_TAGS = [{"key": "team", "value": "platform"}, {"key": "cost-centre", "value": "42"}]


@dataclass(frozen=True)
class Workload:
    """A cluster and a service running a revision of a task definition family."""

    cluster: str
    service: str
    family: str
    running_arn: str


def register(setup_ecs: Any, containers: list[dict[str, Any]], **overrides: Any) -> str:
    """Register a revision of the rich task definition with these containers; returns its ARN."""
    definition = {**RICH_TASK_DEFINITION, "containerDefinitions": containers, "tags": RICH_TAGS, **overrides}
    return setup_ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]


def network() -> tuple[str, str]:
    """A subnet and a security group in moto's EC2, made on first use."""
    ec2 = clients.session().client("ec2", region_name=REGION)
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web"]}])["SecurityGroups"]
    if groups:
        subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [groups[0]["VpcId"]]}])["Subnets"][0]
        return subnet["SubnetId"], groups[0]["GroupId"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    return subnet, group


def create_service(setup_ecs: Any, cluster: str, name: str, task_definition: str, **extra: Any) -> dict[str, Any]:
    """An awsvpc service (moto, like ECS, wants a real subnet and security group for it)."""
    subnet, group = network()
    return setup_ecs.create_service(
        cluster=cluster,
        serviceName=name,
        taskDefinition=task_definition,
        desiredCount=1,
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
        **extra,
    )["service"]


@pytest.fixture
def workload(setup_ecs: Any) -> Workload:
    """Service `web` in cluster `test-cluster`, running web:1 with containers app and worker."""
    setup_ecs.create_cluster(clusterName="test-cluster")
    arn = register(
        setup_ecs,
        [rich_container("app", f"{ECR}/web:1.0"), rich_container("worker", "registry.example.com:5000/team/worker:3")],
    )
    create_service(setup_ecs, "test-cluster", "web", arn)
    return Workload("test-cluster", "web", "web", arn)


def running_task_definition(setup_ecs: Any, workload: Workload) -> dict[str, Any]:
    """The task definition the workload's service runs now, with its tags."""
    service = setup_ecs.describe_services(cluster=workload.cluster, services=[workload.service])["services"][0]
    response = setup_ecs.describe_task_definition(taskDefinition=service["taskDefinition"], include=["TAGS"])
    return {**response["taskDefinition"], "tags": response.get("tags", [])}


def active_revisions(setup_ecs: Any, family: str) -> list[str]:
    """ARNs of the family's ACTIVE revisions."""
    return setup_ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


STATE_TABLE = "ecs-image-updater-state"  # what the dev stage names in STATE_TABLE
STATE_TABLE_TEMPLATE = PROJECT_DIR / "infra" / "state-table.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) read as plain values."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, _suffix, node: loader.construct_scalar(node))


def state_table_definition() -> dict[str, Any]:
    """The table's properties as infra/state-table.yaml defines them."""
    template = yaml.load(STATE_TABLE_TEMPLATE.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - safe loader
    return dict(template["Resources"]["StateTable"]["Properties"])


def create_state_table(name: str = STATE_TABLE) -> None:
    """The state table, with the keys and TTL of infra/state-table.yaml."""
    definition = state_table_definition()
    dynamodb = clients.session().client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=definition["AttributeDefinitions"],
        KeySchema=definition["KeySchema"],
        BillingMode=definition["BillingMode"],
    )
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=definition["TimeToLiveSpecification"])


def stage_locks(table: str = STATE_TABLE) -> Any:
    """The locks and records of the dev stage, through the service's own DynamoDB client."""
    from chalicelib.state.lock import Locks
    from chalicelib.state.table import StateTable

    return Locks(StateTable(clients.dynamodb_client(), table))


@pytest.fixture
def state_table(moto_world: None) -> str:
    """The state table of the dev stage, in moto."""
    create_state_table(STATE_TABLE)
    return STATE_TABLE


def table_items(kind: str | None = None, table: str = STATE_TABLE) -> list[dict[str, Any]]:
    """Every item of the state table (of one kind: lock, record, pointer), as plain values."""
    from chalicelib.state.table import from_item

    items = clients.session().client("dynamodb", region_name=REGION).scan(TableName=table, ConsistentRead=True)["Items"]
    plain = [from_item(item) for item in items]
    return [item for item in plain if kind is None or item.get("kind") == kind]


def lock_items(table: str = STATE_TABLE) -> list[dict[str, Any]]:
    """Every lock item left in the table."""
    return table_items("lock", table)


def records_of(cluster: str, service: str, table: str = STATE_TABLE) -> list[dict[str, Any]]:
    """The deployment records of a service, newest first, as the table holds them."""
    items = [i for i in table_items("record", table) if i["pk"] == f"SERVICE#{cluster}/{service}"]
    return sorted(items, key=lambda item: item["sk"], reverse=True)


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch, ecs: Any, state_table: str) -> Iterator[Any]:
    """Chalice's test client over the app on the dev stage (locks and records on), with the local key check on."""
    from app import app

    monkeypatch.setenv("LOCAL_API_KEY", API_KEY)
    with Client(app, stage_name="dev", project_dir=str(PROJECT_DIR)) as client:
        yield client


@pytest.fixture
def http(app_client: Any) -> Any:
    """The routes of the app, through Chalice's test client."""
    return app_client.http


@dataclass(frozen=True)
class Answer:
    """What API Gateway would hand back: the status, the headers and the JSON body."""

    status: int
    headers: dict[str, str]
    json: Any


class Gateway:
    """The app behind API Gateway, as in AWS: the key (and on an IAM stage the signature) checked before the
    function runs, which sees the caller in `requestContext.identity` (`apiKeyId`, or `userArn` when signed)."""

    def __init__(self) -> None:
        from chalice.local import RouteMatcher

        from app import app

        self.app = app
        self.routes = RouteMatcher(list(app.routes))

    def __call__(
        self,
        method: str,
        path: str,
        *,
        key_id: str | None = "key-id-ci",
        user_arn: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        requested_path: str | None = None,
    ) -> Answer:
        """`requested_path`: the path as the browser asked for it, stage included (`/api/` + `path` by default)."""
        from chalice.local import LambdaContext

        match = self.routes.match_route(path)
        raw = body if body is None or isinstance(body, str) else json.dumps(body)
        sent = {"content-type": "application/json"} if raw is not None else {}
        sent.update({name.lower(): value for name, value in (headers or {}).items()})
        identity = {"sourceIp": "198.51.100.7", "apiKeyId": key_id, "userArn": user_arn}
        event = {
            "resource": match.route,
            "path": path.split("?")[0],
            "httpMethod": method,
            "headers": sent,
            "multiValueHeaders": {name: [value] for name, value in sent.items()},
            "queryStringParameters": {k: v[-1] for k, v in match.query_params.items()} or None,
            "multiValueQueryStringParameters": match.query_params or None,
            "pathParameters": match.captured or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": match.route,
                "httpMethod": method,
                "path": requested_path if requested_path is not None else "/api" + path.split("?")[0],
                "requestId": "req-gateway",
                "identity": {name: value for name, value in identity.items() if value is not None},
            },
            "body": raw,
            "isBase64Encoded": False,
        }
        answer = self.app(event, LambdaContext("api_handler", 1769, max_runtime_ms=29_000))
        body_text = answer.get("body")
        content_type = (answer.get("headers") or {}).get("Content-Type", "")
        parsed = json.loads(body_text) if body_text and content_type.startswith("application/json") else body_text
        return Answer(answer["statusCode"], answer.get("headers") or {}, parsed)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch, ecs: Any, state_table: str) -> Gateway:
    """The app as API Gateway runs it on the dev stage (the state table on; no local key check)."""
    monkeypatch.setenv("STATE_TABLE", state_table)
    return Gateway()


def post(http: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    """POST a JSON body the way curl would, with the key."""
    sent_headers = {"Content-Type": "application/json", "x-api-key": API_KEY, **(headers or {})}
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return http.post(path, headers=sent_headers, body=raw)


@pytest.fixture
def request_log() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines the service logs for requests, parsed."""
    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(record.getMessage()))

    handler = Collect()
    logger = logging.getLogger("ecs_image_updater.requests")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


class EcsDeployments:
    """What moto's UpdateService leaves out: the new PRIMARY deployment, as ECS reports it.

    moto never changes a service's `deployments`; ECS answers UpdateService with
    the new deployment first (PRIMARY, IN_PROGRESS) and the one it replaces as
    ACTIVE. Each UpdateService answer of the client gets that shape here, with
    ids `ecs-svc/1000000000000000001`, `…2`, and so on.
    """

    def __init__(self, events: Any) -> None:
        """`events`: a client's (its calls) or the session's (the calls of every client made after)."""
        self.made: list[dict[str, Any]] = []
        events.register("after-call.ecs.UpdateService", self._add_deployment)

    def _add_deployment(self, parsed: dict[str, Any], **_: Any) -> None:
        service = parsed.get("service")
        if not service:
            return
        deployment = {
            "id": f"ecs-svc/{1000000000000000001 + len(self.made)}",
            "status": "PRIMARY",
            "taskDefinition": service["taskDefinition"],
            "desiredCount": service.get("desiredCount", 1),
            "runningCount": 0,
            "pendingCount": 0,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": "ECS deployment in progress.",
            "createdAt": datetime.now(UTC),
            "updatedAt": datetime.now(UTC),
        }
        self.made.append(deployment)
        earlier = [{**d, "status": "ACTIVE"} for d in service.get("deployments", [])[:1]]
        service["deployments"] = [deployment, *earlier]

    @property
    def last_id(self) -> str:
        """The id of the newest deployment made."""
        return str(self.made[-1]["id"])


@pytest.fixture
def ecs_deployments(ecs: Any) -> EcsDeployments:
    """UpdateService answers that carry the new deployment, as ECS's do."""
    return EcsDeployments(ecs.meta.events)


TOPIC_NAME = "ecs-image-updater-notifications"


@dataclass(frozen=True)
class Subscriber:
    """An SQS queue subscribed to the notification topic: what SNS delivered, in order."""

    topic_arn: str
    queue_url: str

    def received(self) -> list[dict[str, Any]]:
        """Every message delivered since the last call: {"subject", "message", "attributes"}."""
        sqs = clients.session().client("sqs", region_name=REGION)
        found: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "subject": envelope.get("Subject"),
                        "message": json.loads(envelope["Message"]),
                        "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                    }
                )
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def subscriber(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> Subscriber:
    """The notification topic, NOTIFY_TOPIC_ARN set to it, and a queue subscribed to it."""
    sns = clients.session().client("sns", region_name=REGION)
    sqs = clients.session().client("sqs", region_name=REGION)
    topic = sns.create_topic(Name=TOPIC_NAME)["TopicArn"]
    queue = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("NOTIFY_TOPIC_ARN", topic)
    return Subscriber(topic, queue)


PUSH_QUEUE = "ecs-image-updater-push-work"
PUSH_DEAD_LETTERS = "ecs-image-updater-push-dead-letters"


@dataclass(frozen=True)
class PushQueue:
    """The push work queue and its dead-letter queue in moto, as infra/push-queue.yaml makes them."""

    url: str
    dead_letters_url: str

    def sqs(self) -> Any:
        return clients.session().client("sqs", region_name=REGION)

    def waiting(self) -> int:
        """Messages on the queue, visible or not."""
        attributes = self.sqs().get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead(self) -> list[dict[str, Any]]:
        """What the dead-letter queue holds (received, and made visible again at once)."""
        messages = (
            self.sqs().receive_message(QueueUrl=self.dead_letters_url, MaxNumberOfMessages=10).get("Messages", [])
        )
        for message in messages:
            self.sqs().change_message_visibility(
                QueueUrl=self.dead_letters_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def push_queue(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> PushQueue:
    """The push work queue (and its dead-letter queue) with the template's redrive policy; PUSH_QUEUE names it."""
    from chalicelib.triggers.push_work import MAX_RECEIVES

    sqs = clients.session().client("sqs", region_name=REGION)
    dead = sqs.create_queue(QueueName=PUSH_DEAD_LETTERS)["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=PUSH_QUEUE,
        Attributes={
            "VisibilityTimeout": "720",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        },
    )["QueueUrl"]
    monkeypatch.setenv("PUSH_QUEUE", PUSH_QUEUE)
    return PushQueue(url, dead)


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS event source hands the function for a batch of received messages."""
    from scripts.local_queue import sqs_event as lambda_sqs_event

    return lambda_sqs_event(messages, queue_arn, REGION)


def deliver(app_client: Any, queue: PushQueue, rounds: int = 10) -> list[dict[str, Any]]:
    """Run the push_work function as Lambda's SQS event source does, until nothing visible is left.

    Each batch (up to 10 messages) is handed to the function; the messages it
    does not report in batchItemFailures are deleted. Returns the function's
    answers, batch by batch.
    """
    sqs = queue.sqs()
    arn = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    answers = []
    for _ in range(rounds):
        messages = sqs.receive_message(
            QueueUrl=queue.url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not messages:
            break
        answer = app_client.lambda_.invoke("push_work", sqs_event(messages, arn)).payload or {}
        answers.append(answer)
        failed = {entry["itemIdentifier"] for entry in answer.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
    return answers


FOLLOWS_MINOR = [{"key": "image-updater:policy", "value": "semver:minor"}]


def create_follower(setup_ecs: Any, name: str = "shop") -> str:
    """Service `name` in test-cluster on web:1.4.2 (moto's ECR), following semver:minor; its revision's ARN."""
    arn = register(setup_ecs, [rich_container("app", f"{ECR}/web:1.4.2")], family=name)
    create_service(setup_ecs, "test-cluster", name, arn, tags=FOLLOWS_MINOR)
    return arn


def index_followers(app_client: Any) -> None:
    """Run the hourly reconcile now: the follower index holds every tagged service."""
    app_client.lambda_.invoke("followers_reconcile", scheduled_event())


def scheduled_event() -> dict[str, Any]:
    """The event EventBridge Scheduler hands a scheduled function."""
    return {
        "version": "0",
        "id": "schedule-1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": "2026-12-01T10:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/followers-reconcile"],
        "detail": {},
    }


class CodePipeline:
    """The stubbed CodePipeline client: the results expected, and the results sent.

    moto does not implement CodePipeline's job-result calls, so its client is
    botocore's Stubber on a client of its own, which checks each call against
    CodePipeline's model and the parameters expected.
    """

    def __init__(self, client: Any, stubber: Any) -> None:
        self.client = client
        self.stubber = stubber
        self.sent: list[tuple[str, dict[str, Any]]] = []
        client.meta.events.register(
            "before-parameter-build.codepipeline", lambda model, params, **_: self.sent.append((model.name, params))
        )

    def expect_success(self, job: str, *, continues: bool = False, variables: bool = False) -> None:
        from botocore.stub import ANY

        expected: dict[str, Any] = {"jobId": job, "executionDetails": ANY}
        if continues:
            expected["continuationToken"] = ANY
        if variables:
            expected["outputVariables"] = ANY
        self.stubber.add_response("put_job_success_result", {}, expected)

    def expect_failure(self, job: str) -> None:
        from botocore.stub import ANY

        self.stubber.add_response("put_job_failure_result", {}, {"jobId": job, "failureDetails": ANY})

    def last(self) -> dict[str, Any]:
        return self.sent[-1][1]


@pytest.fixture
def codepipeline(moto_world: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[CodePipeline]:
    """CodePipeline's client, stubbed; the service's own getter hands it out."""
    import botocore.session
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "codepipeline", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        stubbed = CodePipeline(client, stubber)
        monkeypatch.setattr(clients, "codepipeline_client", lambda: client)
        yield stubbed
        stubber.assert_no_pending_responses()
