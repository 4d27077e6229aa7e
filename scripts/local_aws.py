"""Run the service on this machine against an embedded AWS (moto's server); `make dev` runs it.

1. starts moto's server on loopback as the embedded AWS, with an ECS whose deployments roll out, keep ECS's service
   deployment records and send ECS's deployment events to EventBridge (scripts/local_ecs.py),
2. creates the workload, the state table and the push work queue in it from infra/test-workload.yaml,
   infra/state-table.yaml and infra/push-queue.yaml through CloudFormation (the same templates as in AWS),
   and the workload's images in its ECR (the versions of LOCAL_TAGS), which the service verifies before it
   deploys one: a tag that was never pushed is refused with 422; a third service of the workload, web-paused,
   through ECS's API (blue/green, a PAUSE lifecycle hook at POST_TEST_TRAFFIC_SHIFT: ECS holds each of its
   deployments there, and the service makes the pause an approval); and, in each account, an EventBridge rule with
   the deployment_events function's own pattern (DEPLOYMENT_EVENTS) sending to a queue (DEPLOYMENT_EVENTS_QUEUE),
   where `chalice deploy` would make the rule invoke the function,
3. starts `chalice local` on the `local` stage, pointed at that server, and the consumer of the queues
   (scripts/local_queue.py: what Lambda's SQS event source, EventBridge's rules and the hourly schedule do in
   AWS), which hands every deployment event to the app's deployment_events: a deployment's record in the history
   goes from IN_PROGRESS to COMPLETED (LOCAL_ROLLOUT_SECONDS, 5 s) as in AWS,
4. prints the dashboard's URL with the key to type, and commands that update the workload and show its history,
   ask for and give approvals (of a change, and of a pause), and stops every process on Ctrl-C.

A second account (222222222222, in TARGET_ACCOUNTS of the local stage) holds a workload of the same
names and its own images: the service reaches it by assuming its role (moto accepts any), as it would
reach another account in AWS, and a printed command deploys to it by its cluster's ARN. Its deployment
events reach the function too (in AWS its rule forwards them to the home bus; here the consumer reads its queue).

`AUTH_MODE=iam make dev` runs the local stage with IAM sign-in: it then checks every request's SigV4
signature itself (credentials local / local, region us-east-1), and the printed commands sign.

The end-to-end tests drive the same functions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[1]
WORKLOAD_TEMPLATE = PROJECT_DIR / "infra" / "test-workload.yaml"
STATE_TABLE_TEMPLATE = PROJECT_DIR / "infra" / "state-table.yaml"
PUSH_QUEUE_TEMPLATE = PROJECT_DIR / "infra" / "push-queue.yaml"
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
STACK_NAME = "test-workload"
STATE_STACK_NAME = "ecs-image-updater-state"
QUEUE_STACK_NAME = "ecs-image-updater-push-queue"
START_TIMEOUT_SECONDS = 60.0
# The workload's images, in the embedded AWS's ECR (moto's account 123456789012): what was "pushed".
LOCAL_REPOSITORY = "nginx"
LOCAL_IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{LOCAL_REPOSITORY}"
# Another account of the organization, in the local stage's TARGET_ACCOUNTS, with a workload of its own.
SECOND_ACCOUNT = "222222222222"
SECOND_IMAGE = f"{SECOND_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{LOCAL_REPOSITORY}"
TARGET_ROLE = f"arn:aws:iam::{SECOND_ACCOUNT}:role/ecs-image-updater-target"
# ECS's deployment events go from each account's default bus to this queue, by this rule; the consumer hands them
# to the deployment_events function (in AWS the rule invokes the function itself).
DEPLOYMENT_EVENTS_QUEUE = "ecs-image-updater-local-deployment-events"
DEPLOYMENT_EVENTS_RULE = "ecs-image-updater-deployment-events"
# The workload's third service, made here through ECS's API (the template is deployed to AWS too, where a blue/green
# service needs load balancers): ECS holds each of its deployments at a PAUSE hook, which the service makes an approval.
PAUSED_SERVICE = "web-paused"
PAUSE_HOOK = {
    "targetType": "PAUSE",
    "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
    "timeoutConfiguration": {"timeoutInMinutes": 60, "action": "ROLLBACK"},
}
LOCAL_TAGS = ("1.27.0", "1.27.1", "1.27.9", "1.28.0", "1.28.1", "1.29.0", "1.29.1", "1.29.2", "2.0.0")
RUNNING_TAG = "1.27.0"


@dataclass(frozen=True)
class LocalRun:
    """Where the local service and its embedded AWS listen, and what to update."""

    aws_endpoint: str
    api_url: str
    api_key: str
    cluster: str
    service: str
    processes: tuple[subprocess.Popen[bytes], ...] = ()
    auth_mode: str = "key"  # "iam": every request must be signed (SigV4) with local / local
    image: str = LOCAL_IMAGE  # the workload's repository, in the embedded ECR, with the tags of LOCAL_TAGS
    second_cluster_arn: str = ""  # the second account's workload cluster, by ARN
    second_image: str = SECOND_IMAGE  # its repository, in that account's ECR, with the tags of LOCAL_TAGS
    reviewed_service: str = "web-reviewed"  # the workload's second service: every change waits for one approval
    paused_service: str = PAUSED_SERVICE  # its third: ECS pauses each deployment at a PAUSE hook, until approved

    def all_running(self) -> bool:
        """True while both servers are up."""
        return all(process.poll() is None for process in self.processes)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def embedded_aws_environment(endpoint: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which every AWS SDK call goes to `endpoint` with dummy credentials.

    Profiles, shared config files and real credentials are removed so that
    nothing can reach real AWS by accident.
    """
    env = {key: value for key, value in (os.environ if base is None else base).items() if not key.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


def start_moto(port: int, log: int | None = None, rollout_seconds: float | None = None) -> subprocess.Popen[bytes]:
    """Start moto's server on loopback:`port` in its own process group, with no AWS settings of yours.

    Its ECS starts deployments on UpdateService and completes them after
    `rollout_seconds` (scripts/local_ecs.py), as ECS does, with ECS's service
    deployments and its deployment events.
    """
    env = embedded_aws_environment(f"http://{LOOPBACK}:{port}")
    if rollout_seconds is not None:
        env["LOCAL_ROLLOUT_SECONDS"] = str(rollout_seconds)
    return subprocess.Popen(  # noqa: S603 - fixed command line
        [sys.executable, str(PROJECT_DIR / "scripts" / "local_ecs.py"), str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def chalice_local_command(port: int) -> list[str]:
    """`chalice local` on the local stage, on loopback:`port`."""
    chalice = Path(sys.executable).with_name("chalice")
    return [str(chalice), "local", "--stage", "local", "--host", LOOPBACK, "--port", str(port), "--no-autoreload"]


def start_chalice(
    port: int, aws_endpoint: str, log: int | None = None, auth_mode: str = "key", verify_images: str = "require"
) -> subprocess.Popen[bytes]:
    """Start `chalice local` on loopback:`port`, using the embedded AWS at `aws_endpoint`.

    With `auth_mode` "iam" it checks each request's SigV4 signature itself, against the
    credentials it runs with (local / local) and the local region. `verify_images` is its
    VERIFY_IMAGES: what it does with an image that no registry on reach can confirm.
    """
    return subprocess.Popen(  # noqa: S603 - fixed command line
        chalice_local_command(port),
        cwd=PROJECT_DIR,
        env={**embedded_aws_environment(aws_endpoint), "AUTH_MODE": auth_mode, "VERIFY_IMAGES": verify_images},
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def start_consumer(
    aws_endpoint: str, log: int | None = None, verify_images: str = "require"
) -> subprocess.Popen[bytes]:
    """Start the consumer of the push work queue and of the deployment events (scripts/local_queue.py) against the
    embedded AWS."""
    return subprocess.Popen(  # noqa: S603 - fixed command line
        [sys.executable, str(PROJECT_DIR / "scripts" / "local_queue.py")],
        cwd=PROJECT_DIR,
        env={
            **embedded_aws_environment(aws_endpoint),
            "VERIFY_IMAGES": verify_images,
            "DEPLOYMENT_EVENTS_QUEUE": DEPLOYMENT_EVENTS_QUEUE,
        },
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def wait_until_listening(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS) -> None:
    """Wait until `url` answers HTTP (any status), or fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args))} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL built here
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def account_session(aws_endpoint: str, account: str | None = None) -> boto3.session.Session:
    """A session in the embedded AWS: the home account's (local / local), or another's through its role."""
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=REGION)  # noqa: S106
    if account is None:
        return session
    role = f"arn:aws:iam::{account}:role/ecs-image-updater-target"
    sts = session.client("sts", endpoint_url=aws_endpoint)
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="make-dev")["Credentials"]
    return boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )


def create_stack(
    aws_endpoint: str,
    name: str,
    template: Path,
    parameters: Mapping[str, str] | None = None,
    session: boto3.session.Session | None = None,
) -> dict[str, str]:
    """Create a stack from `template` (with `parameters`) in the embedded AWS; returns its outputs."""
    session = session or account_session(aws_endpoint)
    cloudformation = session.client("cloudformation", endpoint_url=aws_endpoint)
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in (parameters or {}).items()],
    )
    cloudformation.get_waiter("stack_create_complete").wait(
        StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def create_workload(aws_endpoint: str) -> dict[str, str]:
    """Create the test workload, the state table, the push queue and the deployment events' route in the embedded
    AWS; the workload's outputs."""
    create_stack(aws_endpoint, STATE_STACK_NAME, STATE_TABLE_TEMPLATE)
    create_stack(aws_endpoint, QUEUE_STACK_NAME, PUSH_QUEUE_TEMPLATE)
    route_deployment_events(aws_endpoint)
    push_images(aws_endpoint, LOCAL_TAGS)
    outputs = create_stack(aws_endpoint, STACK_NAME, WORKLOAD_TEMPLATE, {"Image": f"{LOCAL_IMAGE}:{RUNNING_TAG}"})
    tag_service_as_the_template_does(aws_endpoint, outputs["ClusterName"], outputs["ServiceName"])
    tag_service_as_the_template_does(
        aws_endpoint, outputs["ClusterName"], outputs["ReviewedServiceName"], resource="ReviewedService"
    )
    create_paused_service(aws_endpoint, outputs["ClusterName"], outputs["ServiceName"])
    return outputs


def create_paused_service(aws_endpoint: str, cluster: str, like: str) -> None:
    """The workload's service that ECS pauses (PAUSED_SERVICE): blue/green, with a PAUSE hook at
    POST_TEST_TRAFFIC_SHIFT that rolls back after 60 minutes, running what the service `like` runs."""
    ecs = account_session(aws_endpoint).client("ecs", endpoint_url=aws_endpoint)
    running = ecs.describe_services(cluster=cluster, services=[like])["services"][0]
    ecs.create_service(
        cluster=cluster,
        serviceName=PAUSED_SERVICE,
        taskDefinition=running["taskDefinition"],
        desiredCount=1,
        deploymentConfiguration={"strategy": "BLUE_GREEN", "lifecycleHooks": [PAUSE_HOOK]},
    )


def create_second_account(aws_endpoint: str) -> str:
    """The same workload in the second account, with its own images; returns its cluster's ARN."""
    session = account_session(aws_endpoint, SECOND_ACCOUNT)
    route_deployment_events(aws_endpoint, session)
    push_images(aws_endpoint, LOCAL_TAGS, session)
    outputs = create_stack(
        aws_endpoint, STACK_NAME, WORKLOAD_TEMPLATE, {"Image": f"{SECOND_IMAGE}:{RUNNING_TAG}"}, session
    )
    tag_service_as_the_template_does(aws_endpoint, outputs["ClusterName"], outputs["ServiceName"], session)
    return f"arn:aws:ecs:{REGION}:{SECOND_ACCOUNT}:cluster/{outputs['ClusterName']}"


def deployment_events_pattern() -> dict[str, Any]:
    """The deployment_events function's own event pattern: what `chalice deploy` gives its rule."""
    if str(PROJECT_DIR) not in sys.path:  # `make dev` runs this file as a script, from scripts/
        sys.path.insert(0, str(PROJECT_DIR))
    from chalicelib.entrypoints.functions import DEPLOYMENT_EVENTS

    return dict(DEPLOYMENT_EVENTS)


def route_deployment_events(aws_endpoint: str, session: boto3.session.Session | None = None) -> str:
    """In the account: a queue (DEPLOYMENT_EVENTS_QUEUE) and a rule on the default bus with the deployment_events
    function's pattern that sends ECS's deployment events to it; returns the queue's URL."""
    session = session or account_session(aws_endpoint)
    sqs = session.client("sqs", endpoint_url=aws_endpoint)
    # As long as the function's timeout (60 s): a consumer that dies mid-invocation sees the event again then.
    url = sqs.create_queue(QueueName=DEPLOYMENT_EVENTS_QUEUE, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = session.client("events", endpoint_url=aws_endpoint)
    events.put_rule(Name=DEPLOYMENT_EVENTS_RULE, EventPattern=json.dumps(deployment_events_pattern()), State="ENABLED")
    events.put_targets(Rule=DEPLOYMENT_EVENTS_RULE, Targets=[{"Id": "deployment-events", "Arn": arn}])
    return str(url)


def push_images(aws_endpoint: str, tags: tuple[str, ...], session: boto3.session.Session | None = None) -> None:
    """Put an image for each tag into the embedded ECR's repository (a small manifest per tag: each its digest)."""
    ecr = (session or account_session(aws_endpoint)).client("ecr", endpoint_url=aws_endpoint)
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=LOCAL_REPOSITORY)
    for tag in tags:
        layer = hashlib.sha256(f"{LOCAL_REPOSITORY}:{tag}".encode()).hexdigest()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": f"sha256:{layer[::-1]}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654,
                    "digest": f"sha256:{layer}",
                }
            ],
        }
        ecr.put_image(repositoryName=LOCAL_REPOSITORY, imageManifest=json.dumps(manifest), imageTag=tag)


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags: `!Ref X` is read as {"Ref": "X"}, the others as plain values."""


_CloudFormationLoader.add_constructor("!Ref", lambda loader, node: {"Ref": loader.construct_scalar(node)})  # type: ignore[arg-type]
_CloudFormationLoader.add_multi_constructor("!", lambda loader, _suffix, node: None)


def tag_service_as_the_template_does(
    aws_endpoint: str,
    cluster: str,
    service: str,
    session: boto3.session.Session | None = None,
    resource: str = "Service",
) -> None:
    """Give the service the tags the workload template gives its `resource`: moto's CloudFormation drops ECS
    service tags."""
    template = yaml.load(WORKLOAD_TEMPLATE.read_text(), Loader=_CloudFormationLoader)  # noqa: S506 - a safe loader
    defaults = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    tags = []
    for tag in template["Resources"][resource]["Properties"].get("Tags", []):
        value = tag["Value"]
        if isinstance(value, dict) and "Ref" in value:
            value = defaults[value["Ref"]]
        tags.append({"key": tag["Key"], "value": str(value)})
    if not tags:
        return
    ecs = (session or account_session(aws_endpoint)).client("ecs", endpoint_url=aws_endpoint)
    arn = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["serviceArn"]
    ecs.tag_resource(resourceArn=arn, tags=tags)


def local_api_key() -> str:
    """The key the `local` stage expects in `x-api-key`."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    return str(config["stages"]["local"]["environment_variables"]["LOCAL_API_KEY"])


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 5.0) -> None:
    """Stop a process and everything it started (its process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, grace_seconds)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def local_run(
    moto_port: int | None = None,
    api_port: int | None = None,
    log: int | None = None,
    rollout_seconds: float | None = None,
    auth_mode: str = "key",
    verify_images: str = "require",
) -> Iterator[LocalRun]:
    """Embedded AWS with the workload, the service and the queue's consumer on top; all stopped on exit."""
    moto_port = moto_port or free_port()
    api_port = api_port or free_port()
    aws_endpoint = f"http://{LOOPBACK}:{moto_port}"
    moto = start_moto(moto_port, log, rollout_seconds)
    started: list[subprocess.Popen[bytes]] = []
    try:
        wait_until_listening(f"{aws_endpoint}/moto-api/", moto)
        outputs = create_workload(aws_endpoint)
        second_cluster_arn = create_second_account(aws_endpoint)
        chalice = start_chalice(api_port, aws_endpoint, log, auth_mode, verify_images)
        started.append(chalice)
        started.append(start_consumer(aws_endpoint, log, verify_images))
        api_url = f"http://{LOOPBACK}:{api_port}"
        wait_until_listening(f"{api_url}/update", chalice)
        yield LocalRun(
            aws_endpoint,
            api_url,
            local_api_key(),
            outputs["ClusterName"],
            outputs["ServiceName"],
            (moto, *started),
            auth_mode,
            second_cluster_arn=second_cluster_arn,
            reviewed_service=outputs["ReviewedServiceName"],
        )
    finally:
        for process in reversed(started):
            stop(process)
        stop(moto)


# What curl signs with on a run with AUTH_MODE=iam: the local credentials, the local region, API Gateway's service.
LOCAL_CREDENTIALS = "local:local"


def sign_in(run: LocalRun) -> str:
    """The curl options that sign in: the key, and on an IAM run a SigV4 signature (curl --aws-sigv4)."""
    key = f"-H 'x-api-key: {run.api_key}'"
    if run.auth_mode != "iam":
        return key
    return f"{key} \\\n  --aws-sigv4 'aws:amz:{REGION}:execute-api' --user {LOCAL_CREDENTIALS}"


def curl_command(run: LocalRun, tag: str = "1.27.1", cluster: str = "", image: str = "") -> str:
    """A ready-to-paste curl that updates the workload's image (or the one of `cluster`, from `image`)."""
    body = json.dumps(
        {"cluster": cluster or run.cluster, "service": run.service, "image": image or run.image, "tag": tag}
    )
    return (
        f"curl -sS --fail-with-body -X POST {run.api_url}/update \\\n"
        f"  {sign_in(run)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def refused_curl_command(run: LocalRun, tag: str = "9.9.9") -> str:
    """A ready-to-paste curl that asks for a version the embedded ECR does not have: answered 422."""
    body = json.dumps({"cluster": run.cluster, "service": run.service, "image": run.image, "tag": tag})
    return (
        f"curl -sS -X POST {run.api_url}/update \\\n"
        f"  {sign_in(run)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'; echo"
    )


def push_curl_command(run: LocalRun, tag: str = "1.28.0") -> str:
    """A ready-to-paste curl that tells the service an image was pushed (the workload follows semver:minor).

    Its answer is kept in push.json too, for the command that asks what became of the push.
    """
    body = json.dumps({"repository": run.image, "tag": tag})
    return (
        f"curl -sS --fail-with-body -X POST {run.api_url}/hooks/push \\\n"
        f"  {sign_in(run)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}' | tee push.json"
    )


def push_status_curl_command(run: LocalRun) -> str:
    """A ready-to-paste curl that shows what became of the push in push.json."""
    push_id = """$(python3 -c 'import json; print(json.load(open("push.json"))["pushId"])')"""
    return f'curl -sS --fail-with-body "{run.api_url}/pushes/{push_id}" \\\n  {sign_in(run)}'


def approval_request_curl_command(run: LocalRun, tag: str = "1.27.1") -> str:
    """A ready-to-paste curl that asks to update the reviewed service: answered 202 with the approval it waits for,
    kept in approval.json for the command that approves it."""
    body = json.dumps({"cluster": run.cluster, "service": run.reviewed_service, "image": run.image, "tag": tag})
    return (
        f"curl -sS --fail-with-body -X POST {run.api_url}/update \\\n"
        f"  {sign_in(run)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}' | tee approval.json; echo"
    )


def approvals_curl_command(run: LocalRun) -> str:
    """A ready-to-paste curl that lists the approvals waiting for a vote."""
    return f"curl -sS --fail-with-body {run.api_url}/approvals \\\n  {sign_in(run)}; echo"


def approve_curl_command(run: LocalRun, approver: str = "alice") -> str:
    """A ready-to-paste curl that approves the change in approval.json as someone else than its requester (the
    local stage takes the caller's name from x-local-principal); the one approval it needs deploys it."""
    approval_id = """$(python3 -c 'import json; print(json.load(open("approval.json"))["approval"]["id"])')"""
    return (
        f'curl -sS --fail-with-body -X POST "{run.api_url}/approvals/{approval_id}" \\\n'
        f"  {sign_in(run)} -H 'x-local-principal: {approver}' \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        """  -d '{"decision": "approve", "comment": "looks good"}'; echo"""
    )


def paused_update_curl_command(run: LocalRun, tag: str = "1.27.1") -> str:
    """A ready-to-paste curl that updates the paused service: answered 200, and ECS holds the deployment at its
    PAUSE hook a moment later."""
    body = json.dumps({"cluster": run.cluster, "service": run.paused_service, "image": run.image, "tag": tag})
    return (
        f"curl -sS --fail-with-body -X POST {run.api_url}/update \\\n"
        f"  {sign_in(run)} \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'; echo"
    )


def pause_wait_command(run: LocalRun, seconds: int = 30) -> str:
    """A ready-to-paste loop that lists the paused service's approvals into pause.json until its pause is there (ECS
    tells EventBridge, the consumer hands the event to deployment_events), for at most `seconds`."""
    url = f"{run.api_url}/approvals?service={run.paused_service}"
    return (
        f"for _ in $(seq {seconds}); do\n"
        f"  curl -sS --fail-with-body '{url}' \\\n"
        f"    {sign_in(run)} > pause.json\n"
        """  grep -Eq '"kind": ?"pause"' pause.json && break; sleep 1\n"""
        "done; cat pause.json; echo"
    )


def pause_approve_curl_command(run: LocalRun, approver: str = "alice") -> str:
    """A ready-to-paste curl that approves the newest pause in pause.json as someone else than the deployment's
    requester: the service tells ECS CONTINUE, and the deployment completes."""
    approval_id = (
        """$(python3 -c 'import json; print([a["id"] for a in json.load(open("pause.json"))["approvals"] """
        """if a["kind"] == "pause"][-1])')"""
    )
    return (
        f'curl -sS --fail-with-body -X POST "{run.api_url}/approvals/{approval_id}" \\\n'
        f"  {sign_in(run)} -H 'x-local-principal: {approver}' \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        """  -d '{"decision": "approve", "comment": "the test traffic looks fine"}'; echo"""
    )


def second_account_curl_command(run: LocalRun, tag: str = "1.27.1") -> str:
    """A ready-to-paste curl that updates the second account's workload, its cluster named by ARN."""
    return curl_command(run, tag, run.second_cluster_arn, run.second_image)


def history_curl_command(run: LocalRun) -> str:
    """A ready-to-paste curl that shows the workload's deployment history."""
    url = f"{run.api_url}/services/{run.cluster}/{run.service}/history"
    return f"curl -sS --fail-with-body {url} \\\n  {sign_in(run)}"


def dashboard_url(run: LocalRun) -> str:
    """The dashboard's page: the service's root (`GET /`)."""
    return f"{run.api_url}/"


def dashboard_lines(run: LocalRun) -> list[str]:
    """What `make dev` says about the dashboard: where it is and the key to type, or why an IAM run cannot use it."""
    if run.auth_mode == "iam":
        return [
            f"# Dashboard: {dashboard_url(run)} (with IAM sign-in a browser cannot sign its requests: run `make dev` "
            "without AUTH_MODE=iam to use it)"
        ]
    return [f"# Dashboard: open {dashboard_url(run)} in a browser and type the key {run.api_key}"]


def client_executable() -> str:
    """The client as installed in this checkout's virtual environment (a new terminal has it on no PATH)."""
    return str(Path(sys.executable).with_name("ecs-image-updater"))


def instructions(run: LocalRun) -> str:
    """What `make dev` prints: every command works as pasted into a new terminal, in order."""
    client = shlex.quote(client_executable())
    return "\n".join(
        [
            f"# Embedded AWS (moto) at {run.aws_endpoint}; service at {run.api_url}",
            *(
                ["# IAM sign-in (AUTH_MODE=iam): every request is signed with SigV4 as local / local, and has the key."]
                if run.auth_mode == "iam"
                else []
            ),
            f"# Workload: cluster '{run.cluster}', service '{run.service}'.",
            *dashboard_lines(run),
            "",
            "# Update it:",
            curl_command(run),
            "",
            "# A tag that was never pushed is refused before anything is written (422):",
            refused_curl_command(run),
            "",
            "# Tell it an image was pushed: the service follows semver:minor (its image-updater:policy tag):",
            push_curl_command(run),
            "",
            "# What became of that push (the queue's consumer deploys it within a few seconds):",
            "sleep 3",
            push_status_curl_command(run),
            "",
            "# See who deployed what, and how it went (COMPLETED when ECS's deployment event arrives, a few seconds "
            "after the update):",
            history_curl_command(run),
            "",
            f"# '{run.reviewed_service}' takes no change until someone approves it (its image-updater:approvals=1 "
            "tag): a change is answered 202 with the approval it waits for, and nothing is deployed yet:",
            approval_request_curl_command(run),
            "",
            "# The approvals waiting for a vote:",
            approvals_curl_command(run),
            "",
            "# Approve it as someone else (here x-local-principal names the caller; a requester never approves its own "
            "change): the approval deploys it",
            approve_curl_command(run),
            "",
            f"# '{run.paused_service}' deploys at once, but ECS pauses each deployment once the test traffic has "
            "moved (a PAUSE hook at POST_TEST_TRAFFIC_SHIFT; rolled back after 60 minutes): deploy it,",
            paused_update_curl_command(run),
            "# wait for its pause to become an approval (a few seconds),",
            pause_wait_command(run),
            "# and approve it as someone else: ECS is told CONTINUE and the deployment completes",
            pause_approve_curl_command(run),
            "",
            f"# The same workload in another account ({SECOND_ACCOUNT}): named by its cluster's ARN, reached by "
            "assuming its role:",
            second_account_curl_command(run),
            "",
            "# Or use the command-line client (installed in this checkout's .venv):",
            f"export ECS_IMAGE_UPDATER_URL={run.api_url} ECS_IMAGE_UPDATER_API_KEY={run.api_key}",
            *(
                [
                    "# IAM sign-in: the client signs with the AWS credentials of its environment (here the local ones)",
                    f"export ECS_IMAGE_UPDATER_AUTH=iam AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local "
                    f"AWS_REGION={REGION}",
                ]
                if run.auth_mode == "iam"
                else []
            ),
            f"{client} export {run.cluster} {run.service} -o web.yaml",
            "cp web.yaml web-before.yaml   # edit the tag in web.yaml, then:",
            f"{client} apply web.yaml --wait",
            f"{client} apply web-before.yaml --wait   # and back",
            f"{client} history {run.second_cluster_arn} {run.service}   # the other account's",
            f"{client} approvals   # what waits for a vote, the pauses too",
            "",
            f"# Inspect it with the AWS CLI, if you have one: AWS_ENDPOINT_URL={run.aws_endpoint} "
            f"aws ecs describe-services --region {REGION} --cluster {run.cluster} --services {run.service}",
            f"# and ECS's record of each deployment, its status and stage: AWS_ENDPOINT_URL={run.aws_endpoint} "
            f"aws ecs list-service-deployments --region {REGION} --cluster {run.cluster} --service {run.service}",
        ]
    )


def main() -> int:
    """`make dev`: run until Ctrl-C, then stop both servers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")) or None)
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", "0")) or None)
    parser.add_argument(
        "--auth",
        choices=("key", "iam"),
        default=(os.environ.get("AUTH_MODE") or "key").strip().lower(),
        help="key: the API key (default); iam: SigV4 too (AUTH_MODE=iam make dev)",
    )
    args = parser.parse_args()

    def interrupted(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for stop_signal in (signal.SIGTERM, signal.SIGHUP):  # kill, or the terminal closing
        signal.signal(stop_signal, interrupted)
    try:
        with local_run(args.moto_port, args.api_port, auth_mode=args.auth) as run:
            print("\n" + instructions(run))
            print("\nPress Ctrl-C to stop both servers.", flush=True)
            while run.all_running():
                time.sleep(0.5)
            print("\nA server stopped on its own; stopping the other.", file=sys.stderr, flush=True)
            return 1
    except KeyboardInterrupt:
        print("\nStopping the service and the embedded AWS.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
