"""moto's server for the local run, with ECS deployments that roll out, and are recorded and told, as ECS's are.

moto's UpdateService changes a service's task definition but never its
`deployments`, and moto knows nothing of ECS's service deployments or its
deployment events. This script patches moto's ECS in moto's own process so that:

- UpdateService with a new task definition (or forceNewDeployment) starts a new
  PRIMARY deployment (IN_PROGRESS, the one it replaces kept as ACTIVE), as ECS
  does; CreateService's first deployment rolls out the same way. A deployment
  completes once it is LOCAL_ROLLOUT_SECONDS old (default 5), whether or not
  anyone asks: a thread rolls every service of every account and region out
  every TICK_SECONDS, and every read rolls the services it reads out first.
- Each deployment has a *service deployment* (ListServiceDeployments,
  DescribeServiceDeployments, DescribeServiceRevisions, StopServiceDeployment,
  in ECS's JSON shapes and errors), tied to it as ECS's is: the same createdAt,
  and a target service revision whose taskDefinition is the deployment's.
  Its ARN is `arn:aws:ecs:<region>:<account>:service-deployment/<cluster>/<service>/<21 random characters>`
  (ECS documents no relation to the `ecs-svc/…` id, so there is none here either),
  a revision's `…:service-revision/<cluster>/<service>/<19 digits>`. Its status
  goes IN_PROGRESS -> SUCCESSFUL at the moment the deployment's rolloutState
  goes COMPLETED, its lifecycleStage through the strategy's stages on the way
  (ROLLING: SCALE_UP, PRODUCTION_TRAFFIC_SHIFT, BAKE_TIME, CLEAN_UP; BLUE_GREEN,
  LINEAR and CANARY: TEST_TRAFFIC_SHIFT and POST_TEST_TRAFFIC_SHIFT too, with the
  traffic weights moving as the strategy moves them). A deployment that a newer
  one replaces before it completes is STOPPED.
- PAUSE lifecycle hooks (deploymentConfiguration's `lifecycleHooks`, targetType
  PAUSE) hold each deployment that replaces a revision where they say: at
  PRE_SCALE_UP, POST_SCALE_UP, POST_TEST_TRAFFIC_SHIFT (not ROLLING) or
  POST_PRODUCTION_TRAFFIC_SHIFT (other stages never hold here). Held, its
  lifecycleStage stays at the hook's stage, its lifecycleHookDetails list the
  hook (`ecs-pause-…`, AWAITING_ACTION, expiresAt, timeoutAction), its rollout's
  clock stops (it completes that much later), and "ECS Hook State Change"
  (HOOK_AWAITING_ACTION, with the service deployment, the hook and its stage) goes
  to the bus. ContinueServiceDeployment CONTINUE (the default) marks the hook
  SUCCEEDED and the rollout goes on; ROLLBACK rolls back as StopServiceDeployment
  ROLLBACK does; an unknown ARN answers ServiceDeploymentNotFoundException, a
  hook not awaiting action or a deployment not IN_PROGRESS InvalidParameterException.
  At expiresAt (timeoutInMinutes, default 1440, each minute LOCAL_HOOK_MINUTE_SECONDS
  long, default 60) the hook is TIMED_OUT and its action (default ROLLBACK) is
  taken; a deployment stopped or replaced while held ends its hook FAILED. A
  service's first deployment, which replaces nothing, is never held.
- StopServiceDeployment ABORT: STOP_REQUESTED, then STOPPED (the deployment's
  rolloutState FAILED); ROLLBACK (the default): ROLLBACK_REQUESTED, then
  ROLLBACK_IN_PROGRESS (a new deployment of the previous revision, the service's
  task definition back to it), then ROLLBACK_SUCCESSFUL when that one completes.
  A stop takes effect STOP_SECONDS after it is asked for. A finished service
  deployment answers ConflictException, an unknown one ServiceDeploymentNotFoundException.
- ECS's "ECS Deployment State Change" events go to the account's default event
  bus (moto's EventBridge), as ECS sends them: SERVICE_DEPLOYMENT_IN_PROGRESS
  when a deployment starts (a rollback's reason says "rolling back to deploymentId
  ecs-svc/…"), SERVICE_DEPLOYMENT_COMPLETED when it completes, and
  SERVICE_DEPLOYMENT_FAILED (eventType ERROR) when it is aborted. Its rules send
  them on (scripts/local_aws.py makes one for the deployment_events function),
  whole: moto's EventBridge leaves an event's `account` out of what it delivers,
  and here puts it back.
- CreateService keeps the deploymentConfiguration it is given (moto drops it;
  CloudFormation's DeploymentConfiguration too), with ECS's defaults and the
  strategy ROLLING where it says none; UpdateService merges what it is given.

Run as `python scripts/local_ecs.py PORT`; `make dev` does.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import os
import secrets
import string
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import InvalidParameterException
from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser
from moto.server import main as moto_server

ROLLOUT_SECONDS = float(os.environ.get("LOCAL_ROLLOUT_SECONDS", "5"))
# How often the thread rolls every service out: deployments complete, and are told, with nobody asking.
TICK_SECONDS = 0.5
# A stop takes effect this long after it is asked for (STOP_REQUESTED and ROLLBACK_REQUESTED are seen meanwhile).
STOP_SECONDS = min(1.0, ROLLOUT_SECONDS / 5)

# Each strategy's lifecycle stages, with the share of the rollout at which each begins.
ROLLING_STAGES = (("SCALE_UP", 0.0), ("PRODUCTION_TRAFFIC_SHIFT", 0.4), ("BAKE_TIME", 0.6), ("CLEAN_UP", 0.85))
TRAFFIC_STAGES = (
    ("SCALE_UP", 0.0),
    ("TEST_TRAFFIC_SHIFT", 0.25),
    ("POST_TEST_TRAFFIC_SHIFT", 0.35),  # the test traffic has moved: a PAUSE hook typically holds here
    ("PRODUCTION_TRAFFIC_SHIFT", 0.4),
    ("BAKE_TIME", 0.6),
    ("CLEAN_UP", 0.85),
)
# Where a PAUSE hook at each stage holds the rollout (the share of it done), by strategy; a hook at another stage
# (RECONCILE_SERVICE, PRE_PRODUCTION_TRAFFIC_SHIFT, or POST_TEST_TRAFFIC_SHIFT of a ROLLING deployment) never holds.
ROLLING_HOLDS = {"PRE_SCALE_UP": 0.0, "POST_SCALE_UP": 0.4, "POST_PRODUCTION_TRAFFIC_SHIFT": 0.6}
TRAFFIC_HOLDS = {
    "PRE_SCALE_UP": 0.0,
    "POST_SCALE_UP": 0.25,
    "POST_TEST_TRAFFIC_SHIFT": 0.35,
    "POST_PRODUCTION_TRAFFIC_SHIFT": 0.6,
}
STAGE_ORDER = (
    "PRE_SCALE_UP",
    "SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
    "BAKE_TIME",
    "CLEAN_UP",
)
# How long a minute of a hook's timeout lasts here (the tests shorten it); ECS's defaults when a hook says none.
HOOK_MINUTE_SECONDS = float(os.environ.get("LOCAL_HOOK_MINUTE_SECONDS", "60"))
DEFAULT_HOOK_MINUTES = 1440
DEFAULT_HOOK_ACTION = "ROLLBACK"
HOOK_ACTIONS = ("CONTINUE", "ROLLBACK")
AWAITING_ACTION = "AWAITING_ACTION"
PRODUCTION_SHIFT = (0.4, 0.6)  # the share of the rollout during which production traffic moves
TEST_SHIFT_STARTS = 0.25
FINISHED = frozenset({"SUCCESSFUL", "STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED"})
STOPPING = frozenset({"STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"})
STATUSES = frozenset({"PENDING", "IN_PROGRESS", *STOPPING, *FINISHED})
STOP_TYPES = ("ROLLBACK", "ABORT")
# What ECS gives a replica service that was given no deploymentConfiguration.
DEFAULT_CONFIGURATION: dict[str, Any] = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "strategy": "ROLLING",
}
LIST_DEFAULT, LIST_MAX, DESCRIBE_MAX = 20, 100, 20
ARN_ID_CHARACTERS = string.ascii_letters + string.digits + "-_"
EVENT_DETAIL_TYPE = "ECS Deployment State Change"
HOOK_DETAIL_TYPE = "ECS Hook State Change"
HOOK_AWAITING_EVENT = "HOOK_AWAITING_ACTION"
# What EventBridge delivers to a target without an input transformer: moto's own template leaves `account` out.
DELIVERED_EVENT = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>", '
    '"time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)
IN_PROGRESS_EVENT = "SERVICE_DEPLOYMENT_IN_PROGRESS"
COMPLETED_EVENT = "SERVICE_DEPLOYMENT_COMPLETED"
FAILED_EVENT = "SERVICE_DEPLOYMENT_FAILED"

_update_service = ecs_models.EC2ContainerServiceBackend.update_service
_create_service = ecs_models.EC2ContainerServiceBackend.create_service
_describe_services = ecs_models.EC2ContainerServiceBackend.describe_services
_create_service_response = ecs_responses.EC2ContainerServiceResponse.create_service
_create_from_cloudformation = ecs_models.Service.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]
_sequence = [10**18]
# moto serves requests on several threads, and the rollout thread runs beside them: one lock for all of it.
_lock = threading.RLock()


class ServiceDeploymentNotFoundException(ServiceException):
    """ECS's answer for a service deployment ARN it does not know."""

    code = "ServiceDeploymentNotFoundException"


class ConflictException(ServiceException):
    """ECS's answer for a stop of a service deployment that has finished."""

    code = "ConflictException"


@dataclass
class PauseHook:
    """One PAUSE hook a service deployment reached: where it holds the rollout, and what became of it."""

    hook_id: str
    stage: str
    share: float  # the share of the rollout done when it began to hold
    began_at: datetime
    expires_at: datetime
    timeout_action: str
    status: str = AWAITING_ACTION  # then SUCCEEDED (told to go on), TIMED_OUT, or FAILED (the deployment ended)
    ended_at: datetime | None = None

    def held(self, moment: datetime) -> timedelta:
        """How long it held the rollout by `moment`."""
        if moment <= self.began_at:
            return timedelta(0)
        return min(self.ended_at or moment, moment) - self.began_at

    def as_json(self) -> dict[str, Any]:
        """DescribeServiceDeployments' `lifecycleHookDetails` entry for it."""
        return {
            "hookId": self.hook_id,
            "targetType": "PAUSE",
            "status": self.status,
            "expiresAt": self.expires_at,
            "timeoutAction": self.timeout_action,
        }


@dataclass
class ServiceDeployment:
    """What the local ECS keeps of one service deployment; the rest of ECS's answer is derived from the clock."""

    arn: str
    service_arn: str
    cluster_arn: str
    service_key: str  # moto's key of the service: "<cluster>:<service>"
    deployment_id: str  # the ECS deployment (ecs-svc/…) it rolls out
    created_at: datetime
    target: str  # the target service revision's ARN
    sources: list[str]  # the revisions it replaces (none for a service's first)
    source_deployment_id: str | None  # the deployment that was PRIMARY before: a rollback goes back to it
    configuration: dict[str, Any]
    desired_count: int
    status: str = "IN_PROGRESS"
    status_reason: str | None = None
    changed_at: datetime | None = None  # when its status or a hook last changed
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_requested_at: datetime | None = None
    rollback: dict[str, Any] | None = None
    rollback_deployment_id: str | None = None
    rollback_cause: str = "Service deployment stop requested"  # how its rollback's reason begins
    hooks: list[PauseHook] = field(default_factory=list)  # the PAUSE hooks it reached, in order

    @property
    def strategy(self) -> str:
        """The deployment strategy it was started with."""
        return str(self.configuration.get("strategy") or "ROLLING")

    @property
    def rolled_back(self) -> bool:
        """True once its rollback has started."""
        return self.rollback_deployment_id is not None

    @property
    def waiting_hook(self) -> PauseHook | None:
        """The PAUSE hook it waits at, if any."""
        return next((hook for hook in self.hooks if hook.status == AWAITING_ACTION), None)

    def held(self, moment: datetime) -> timedelta:
        """How long its PAUSE hooks held its rollout by `moment`."""
        return sum((hook.held(moment) for hook in self.hooks), timedelta(0))

    def progress(self, moment: datetime) -> float:
        """The share of its rollout done at `moment` (0 to 1): the clock stops while a hook holds it."""
        elapsed = (moment - self.created_at - self.held(moment)) / timedelta(seconds=ROLLOUT_SECONDS)
        return round(min(max(elapsed, 0.0), 1.0), 6)  # rounded: a hold's share reads back as itself


@dataclass
class Ledger:
    """The service deployments and service revisions of one account and region, beside moto's ECS backend."""

    deployments: dict[str, ServiceDeployment] = field(default_factory=dict)
    revisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    running_revision: dict[str, str] = field(default_factory=dict)  # service ARN -> the revision it runs

    def of_service(self, service: Any) -> list[ServiceDeployment]:
        """The service's service deployments, oldest first."""
        return [d for d in self.deployments.values() if d.service_arn == service.arn]


def ledger_of(backend: Any) -> Ledger:
    """The backend's ledger (a moto reset makes a new backend, and so a new ledger)."""
    found = backend.__dict__.get("_local_ecs_ledger")
    if found is None:
        found = backend._local_ecs_ledger = Ledger()
    return found


def utcnow() -> datetime:
    """Now, naive in UTC as moto keeps its times."""
    return ecs_models.utcnow()


def iso_millis(moment: datetime) -> str:
    """ECS's event time format: 2024-05-23T11:11:11.123Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def arn_prefix(service: Any) -> str:
    """`arn:aws:ecs:<region>:<account>` of the service."""
    return str(service.cluster_arn).split(":cluster/", 1)[0]


def next_deployment_id() -> str:
    """A new `ecs-svc/…` id."""
    _sequence[0] += 1
    return f"ecs-svc/{_sequence[0]}"


# --- ECS deployments (DescribeServices' `deployments`) -------------------------------------------------------------


def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
    """moto's UpdateService, then a new deployment when the revision changed or a redeploy was asked for."""
    with _lock:
        cluster = service_properties.get("cluster", "default")
        name = str(service_properties.get("service", "")).split("/")[-1]
        service = self._get_service(cluster, name)
        before = service.task_definition
        configured = service_properties.get("deployment_configuration")
        configuration = dict(getattr(service, "deployment_configuration", None) or DEFAULT_CONFIGURATION)
        # moto's own forceNewDeployment renames the running deployment in place; the new one is started here.
        forced = bool(service_properties.pop("force_new_deployment", False))
        service = _update_service(self, service_properties)
        if isinstance(configured, Mapping):
            service.deployment_configuration = {**configuration, **configured}
        if service.task_definition != before or forced:
            start_deployment(self, service)
        return service


def create_service(self: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's CreateService, with ECS's default deploymentConfiguration and a service deployment for the first."""
    with _lock:
        service = _create_service(self, *args, **kwargs)
        service.deployment_configuration = copy.deepcopy(DEFAULT_CONFIGURATION)
        first = service.deployments[0] if service.deployments else None
        if first is not None:
            # moto's Service.__init__ read the clock twice; the deployment starts at one moment.
            first["updatedAt"] = first["createdAt"]
            record_service_deployment(self, service, first, None)
            if first.get("rolloutState") == "IN_PROGRESS":
                emit(service, IN_PROGRESS_EVENT, first["id"], first["createdAt"], str(first["rolloutStateReason"]))
        return service


def configure(backend: Any, service: Any, given: Mapping[str, Any]) -> None:
    """Give a new service the deploymentConfiguration it was created with, and its first service deployment too."""
    service.deployment_configuration = {**DEFAULT_CONFIGURATION, **given}
    for deployment in ledger_of(backend).of_service(service):
        deployment.configuration = copy.deepcopy(service.deployment_configuration)


def create_service_answer(self: Any) -> Any:
    """moto's CreateService action, keeping the request's deploymentConfiguration (moto drops it)."""
    answer = _create_service_response(self)
    given = self._get_param("deploymentConfiguration")
    if isinstance(given, Mapping):
        with _lock:
            configure(self.ecs_backend, answer.result["service"], given)
    return answer


def camel_keys(value: Any) -> Any:
    """CloudFormation's property names as the API's: DeploymentCircuitBreaker -> deploymentCircuitBreaker."""
    if isinstance(value, Mapping):
        return {str(k)[:1].lower() + str(k)[1:]: camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def create_from_cloudformation_json(
    cls: Any, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
) -> Any:
    """moto's AWS::ECS::Service, keeping its DeploymentConfiguration."""
    service = _create_from_cloudformation(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    given = (cloudformation_json.get("Properties") or {}).get("DeploymentConfiguration")
    if isinstance(given, Mapping):
        with _lock:
            configure(ecs_models.ecs_backends[account_id][region_name], service, camel_keys(given))
    return service


def start_deployment(backend: Any, service: Any) -> None:
    """A new PRIMARY deployment of the service's revision, with its service deployment; the previous PRIMARY goes
    on as ACTIVE."""
    now = utcnow()
    deployment_id = next_deployment_id()
    previous = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    earlier = [{**d, "status": "ACTIVE"} for d in service.deployments if d["status"] == "PRIMARY"]
    reason = f"ECS deployment {deployment_id} in progress."
    deployment = new_deployment(service, deployment_id, service.task_definition, now, reason)
    service.deployments = [deployment, *earlier]
    record_service_deployment(backend, service, deployment, previous["id"] if previous else None)
    emit(service, IN_PROGRESS_EVENT, deployment_id, now, reason)


def new_deployment(service: Any, deployment_id: str, task_definition: str, at: datetime, reason: str) -> dict[str, Any]:
    """An ECS deployment just started, as DescribeServices shows it, with `reason` as its rolloutStateReason."""
    return {
        "id": deployment_id,
        "status": "PRIMARY",
        "taskDefinition": task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": service.desired_count,
        "runningCount": 0,
        "failedTasks": 0,
        "launchType": service.launch_type,
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": reason,
        "createdAt": at,
        "updatedAt": at,
    }


def describe_services(self: Any, cluster_str: str, service_names_or_arns: list[str]) -> Any:
    """moto's DescribeServices, after rolling every service out."""
    with _lock:
        roll_out_backend(self, utcnow())
        return _describe_services(self, cluster_str, service_names_or_arns)


# --- service deployments and revisions -----------------------------------------------------------------------------


def record_service_deployment(backend: Any, service: Any, deployment: dict[str, Any], previous: str | None) -> None:
    """The service deployment of a deployment just started: created at its moment, targeting its task definition.

    Unfinished service deployments of the service are STOPPED: the new one replaces them.
    """
    ledger = ledger_of(backend)
    at = deployment["createdAt"]
    arn = f"{arn_prefix(service)}:service-deployment/{service.cluster_name}/{service.name}/" + "".join(
        secrets.choice(ARN_ID_CHARACTERS) for _ in range(21)
    )
    for replaced in ledger.of_service(service):
        if replaced.status not in FINISHED:
            replaced.status, replaced.changed_at, replaced.stopped_at = "STOPPED", at, at
            replaced.status_reason = f"Service deployment stopped: the newer service deployment {arn} replaced it."
            end_waiting_hook(replaced, at)
    target = record_revision(backend, ledger, service, deployment["taskDefinition"], at)
    source = ledger.running_revision.get(service.arn)
    completed = deployment.get("rolloutState") == "COMPLETED"
    ledger.deployments[arn] = ServiceDeployment(
        arn=arn,
        service_arn=service.arn,
        cluster_arn=service.cluster_arn,
        service_key=f"{service.cluster_name}:{service.name}",
        deployment_id=deployment["id"],
        created_at=at,
        target=target,
        sources=[source] if source else [],
        source_deployment_id=previous,
        configuration=copy.deepcopy(getattr(service, "deployment_configuration", None) or DEFAULT_CONFIGURATION),
        desired_count=int(service.desired_count or 0),
        status="SUCCESSFUL" if completed else "IN_PROGRESS",
        changed_at=at,
        finished_at=at if completed else None,
    )
    ledger.running_revision[service.arn] = target


def record_revision(backend: Any, ledger: Ledger, service: Any, task_definition: str, at: datetime) -> str:
    """A new service revision of the service, running `task_definition`; its ARN."""
    arn = f"{arn_prefix(service)}:service-revision/{service.cluster_name}/{service.name}/{next_revision_number()}"
    try:
        containers = backend.describe_task_definition(task_definition).container_definitions
    except ServiceException:
        containers = []
    revision = {
        "serviceRevisionArn": arn,
        "serviceArn": service.arn,
        "clusterArn": service.cluster_arn,
        "taskDefinition": task_definition,
        "launchType": service.launch_type,
        "platformVersion": service.platform_version,
        "loadBalancers": copy.deepcopy(service.load_balancers),
        "serviceRegistries": copy.deepcopy(service.service_registries),
        "networkConfiguration": copy.deepcopy(service.network_configuration) or None,
        "containerImages": [{"containerName": c.get("name"), "image": c.get("image")} for c in containers],
        "guardDutyEnabled": False,
        "createdAt": at,
    }
    ledger.revisions[arn] = {key: value for key, value in revision.items() if value is not None}
    return arn


def next_revision_number() -> int:
    """A 19-digit number, as ECS's revision ARNs end with."""
    return 10**18 + secrets.randbelow(9 * 10**18)


def stage_at(strategy: str, progress: float) -> tuple[str, float]:
    """The lifecycle stage a deployment of `strategy` is in at `progress` (0 to 1), and where that stage began."""
    stages = ROLLING_STAGES if strategy == "ROLLING" else TRAFFIC_STAGES
    return next((name, start) for name, start in reversed(stages) if progress >= start)


def production_weight(configuration: Mapping[str, Any], progress: float) -> float:
    """The share of production traffic (percent) the target revision is asked to take at `progress`."""
    start, end = PRODUCTION_SHIFT
    if progress < start:
        return 0.0
    if progress >= end:
        return 100.0
    within = (progress - start) / (end - start)
    strategy = str(configuration.get("strategy") or "ROLLING")
    if strategy == "LINEAR":
        step = float((configuration.get("linearConfiguration") or {}).get("stepPercent") or 10.0)
        return min(100.0, step * (1 + math.floor(within * math.ceil(100.0 / step))))
    if strategy == "CANARY":
        canary = float((configuration.get("canaryConfiguration") or {}).get("canaryPercent") or 5.0)
        return canary if within < 0.5 else 100.0
    if strategy == "BLUE_GREEN":
        return 100.0
    return round(100.0 * within, 1)


def as_json(deployment: ServiceDeployment, now: datetime) -> dict[str, Any]:
    """DescribeServiceDeployments' answer for one service deployment, at `now`."""
    # Where the rollout stands: it stops moving when the deployment is stopped, replaced or done, or a hook holds it.
    moment = deployment.stop_requested_at or deployment.stopped_at or deployment.finished_at or now
    progress = deployment.progress(moment)
    stage, stage_start = stage_at(deployment.strategy, progress)
    # A hold at a hook of its own stage is inside that stage; one at a hook that takes no time (POST_SCALE_UP, say,
    # where the next stage begins) comes before the stage that begins there.
    before = [h for h in deployment.hooks if h.share < stage_start or (h.share == stage_start and h.stage != stage)]
    held_before = sum((h.held(now) for h in before), timedelta(0))
    stage_began = deployment.created_at + timedelta(seconds=ROLLOUT_SECONDS * stage_start) + held_before
    last_hook = deployment.hooks[-1] if deployment.hooks else None
    if last_hook is not None and (
        last_hook.status == AWAITING_ACTION or (deployment.status != "IN_PROGRESS" and last_hook.share == progress)
    ):
        stage = last_hook.stage  # held there (or stopped there): a hook's stage may take no time of its own
    ongoing = deployment.status not in FINISHED
    answer: dict[str, Any] = {
        "serviceDeploymentArn": deployment.arn,
        "serviceArn": deployment.service_arn,
        "clusterArn": deployment.cluster_arn,
        "createdAt": deployment.created_at,
        "startedAt": deployment.created_at,
        "updatedAt": max(deployment.changed_at or deployment.created_at, stage_began),
        "finishedAt": deployment.finished_at,
        "stoppedAt": deployment.stopped_at,
        "sourceServiceRevisions": [],
        "targetServiceRevision": {},
        "status": deployment.status,
        "statusReason": deployment.status_reason,
        "lifecycleStage": stage,
        "lifecycleHookDetails": [hook.as_json() for hook in deployment.hooks] or None,
        "deploymentConfiguration": deployment.configuration,
        "rollback": deployment.rollback,
        "deploymentCircuitBreaker": monitor(deployment.configuration.get("deploymentCircuitBreaker"), ongoing),
        "alarms": monitor(deployment.configuration.get("alarms"), ongoing),
    }
    desired = deployment.desired_count
    scaled_up = stage not in ("PRE_SCALE_UP", "SCALE_UP")
    cleaned_up = stage == "CLEAN_UP" and not deployment.rolled_back
    requested = 0 if deployment.rolled_back else desired
    running = desired if scaled_up and not deployment.rolled_back else 0
    moving = deployment.status in ("PENDING", "IN_PROGRESS", "STOP_REQUESTED")
    production = 0.0 if deployment.rolled_back else production_weight(deployment.configuration, progress)
    with_test = deployment.strategy != "ROLLING"
    test = 100.0 if with_test and progress >= TEST_SHIFT_STARTS and not deployment.rolled_back else 0.0
    answer["targetServiceRevision"] = {
        "arn": deployment.target,
        "requestedTaskCount": requested,
        "runningTaskCount": running,
        "pendingTaskCount": requested - running if moving else 0,
        "requestedProductionTrafficWeight": production,
        **({"requestedTestTrafficWeight": test} if with_test else {}),
    }
    for source in deployment.sources:
        left = 0 if cleaned_up else desired
        answer["sourceServiceRevisions"].append(
            {
                "arn": source,
                "requestedTaskCount": left,
                "runningTaskCount": left,
                "pendingTaskCount": 0,
                "requestedProductionTrafficWeight": round((100.0 - production) / len(deployment.sources), 1),
                **({"requestedTestTrafficWeight": 100.0 - test} if with_test else {}),
            }
        )
    return {key: value for key, value in answer.items() if value is not None}


def monitor(configured: Any, ongoing: bool) -> dict[str, Any]:
    """The circuit breaker's or the alarms' state: DISABLED, or watching (nothing ever fails locally)."""
    if not isinstance(configured, Mapping) or not configured.get("enable"):
        return {"status": "DISABLED"}
    state: dict[str, Any] = {"status": "MONITORING" if ongoing else "MONITORING_COMPLETE"}
    if "alarmNames" in configured:
        state.update(alarmNames=list(configured.get("alarmNames") or []), triggeredAlarmNames=[])
    else:
        state.update(failureCount=0, threshold=3)
    return state


def brief(deployment: ServiceDeployment) -> dict[str, Any]:
    """ListServiceDeployments' answer for one service deployment."""
    answer = {
        "serviceDeploymentArn": deployment.arn,
        "serviceArn": deployment.service_arn,
        "clusterArn": deployment.cluster_arn,
        "startedAt": deployment.created_at,
        "createdAt": deployment.created_at,
        "finishedAt": deployment.finished_at,
        "targetServiceRevisionArn": deployment.target,
        "status": deployment.status,
        "statusReason": deployment.status_reason,
    }
    return {key: value for key, value in answer.items() if value is not None}


# --- rolling out ---------------------------------------------------------------------------------------------------


def roll_out_backend(backend: Any, now: datetime) -> None:
    """Move every deployment of the backend's services on to where `now` has it."""
    for service in list(backend.services.values()):
        roll_out(backend, service, now)


def roll_out(backend: Any, service: Any, now: datetime) -> None:
    """Move the service's deployments and service deployments on to `now`, telling EventBridge of each change."""
    ledger = ledger_of(backend)
    unfinished = [d for d in ledger.of_service(service) if d.status not in FINISHED]
    for deployment in unfinished:
        pause_at_hooks(service, deployment, now)
        carry_out_stop(ledger, service, deployment, now)
    complete_primary(ledger, service, now)
    for deployment in unfinished:
        follow_deployments(service, deployment)


def carry_out_stop(ledger: Ledger, service: Any, deployment: ServiceDeployment, now: datetime) -> None:
    """A stop asked for STOP_SECONDS ago takes effect: ABORT stops it, ROLLBACK starts the rollback."""
    if deployment.stop_requested_at is None or deployment.status not in ("STOP_REQUESTED", "ROLLBACK_REQUESTED"):
        return
    at = deployment.stop_requested_at + timedelta(seconds=STOP_SECONDS)
    if now < at:
        return
    stopped = next((d for d in service.deployments if d["id"] == deployment.deployment_id), None)
    deployment.stopped_at = deployment.changed_at = at
    if deployment.status == "STOP_REQUESTED":
        deployment.status = "STOPPED"
        deployment.status_reason = "Service deployment stopped: a stop (ABORT) was requested."
        if stopped is not None and stopped["rolloutState"] == "IN_PROGRESS":
            reason = f"ECS deployment {stopped['id']} stopped: a stop (ABORT) was requested."
            stopped.update(rolloutState="FAILED", rolloutStateReason=reason, updatedAt=at)
            emit(service, FAILED_EVENT, stopped["id"], at, reason, error=True)
        return
    source = ledger.revisions[deployment.sources[0]]
    rollback_id = next_deployment_id()
    reason = f"{deployment.rollback_cause}: rolling back to deploymentId {deployment.source_deployment_id}."
    rollback = new_deployment(service, rollback_id, source["taskDefinition"], at, reason)
    if stopped is not None:
        stopped_reason = f"ECS deployment {stopped['id']} stopped: rolling back."
        stopped.update(status="ACTIVE", rolloutState="FAILED", rolloutStateReason=stopped_reason, updatedAt=at)
    others = [{**d, "status": "ACTIVE"} for d in service.deployments]
    service.deployments = [rollback, *others]
    service.task_definition = source["taskDefinition"]
    ledger.running_revision[service.arn] = source["serviceRevisionArn"]
    deployment.status, deployment.status_reason = "ROLLBACK_IN_PROGRESS", reason
    deployment.rollback = {"reason": reason, "startedAt": at, "serviceRevisionArn": source["serviceRevisionArn"]}
    deployment.rollback_deployment_id = rollback_id
    emit(service, IN_PROGRESS_EVENT, rollback_id, at, reason)


def complete_primary(ledger: Ledger, service: Any, now: datetime) -> None:
    """Complete the PRIMARY deployment once it is ROLLOUT_SECONDS old, dropping the ones it replaced.

    One whose stop was asked for never completes, nor one a PAUSE hook holds; the time hooks held it is
    added. The service's own task counts then say its tasks run, as ECS's do.
    """
    primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
    if primary is None or primary.get("rolloutState") != "IN_PROGRESS":
        return
    tied = next((d for d in ledger.of_service(service) if d.deployment_id == primary["id"]), None)
    if tied is not None and (tied.stop_requested_at or tied.waiting_hook):
        return
    held = tied.held(now) if tied is not None else timedelta(0)  # the time its hooks held it
    done_at = primary["createdAt"] + timedelta(seconds=ROLLOUT_SECONDS) + held
    if now < done_at:
        return
    reason = f"ECS deployment {primary['id']} completed."
    primary.update(
        rolloutState="COMPLETED",
        rolloutStateReason=reason,
        runningCount=primary["desiredCount"],
        pendingCount=0,
        updatedAt=done_at,
    )
    service.deployments = [primary]
    service.running_count, service.pending_count = primary["desiredCount"], 0  # the service's own counts follow
    emit(service, COMPLETED_EVENT, primary["id"], done_at, reason)


def follow_deployments(service: Any, deployment: ServiceDeployment) -> None:
    """A service deployment finishes when the ECS deployment it waits for (its own, or its rollback) completes."""
    waits_for = {"IN_PROGRESS": deployment.deployment_id, "ROLLBACK_IN_PROGRESS": deployment.rollback_deployment_id}
    awaited = waits_for.get(deployment.status)
    done = next((d for d in service.deployments if d["id"] == awaited and d["rolloutState"] == "COMPLETED"), None)
    if done is None:
        return
    deployment.status = "SUCCESSFUL" if deployment.status == "IN_PROGRESS" else "ROLLBACK_SUCCESSFUL"
    deployment.finished_at = deployment.changed_at = done["updatedAt"]


def emit(service: Any, name: str, deployment_id: str, at: datetime, reason: str, error: bool = False) -> None:
    """Put ECS's "ECS Deployment State Change" event on the service's account's default bus, as ECS does."""
    detail = {
        "eventType": "ERROR" if error else "INFO",
        "eventName": name,
        "deploymentId": deployment_id,
        "updatedAt": iso_millis(at),
        "reason": reason,
    }
    put_event(service, EVENT_DETAIL_TYPE, detail, at, f"{name} of {deployment_id}")


def put_event(service: Any, detail_type: str, detail: Mapping[str, Any], at: datetime, what: str) -> None:
    """Put one of ECS's events about the service on its account's default bus."""
    entry = {
        "Source": "aws.ecs",
        "DetailType": detail_type,
        "Detail": json.dumps(detail),
        "Resources": [service.arn],
        "Time": at.replace(tzinfo=UTC).timestamp(),
    }
    try:
        events_backends[service._account_id][service.region_name].put_events([entry])
    except Exception as failure:  # a deployment goes on even when its event cannot be told
        print(f"local ECS: {what} not sent: {failure!r}", file=sys.stderr, flush=True)


# --- PAUSE lifecycle hooks -----------------------------------------------------------------------------------------


def hold_points(deployment: ServiceDeployment) -> list[tuple[float, int, str, int, str]]:
    """Where its PAUSE hooks hold the deployment, in the order it reaches them: (share of the rollout, stage's
    place, stage, timeout in minutes, timeout action) for each stage of each hook that its strategy passes."""
    holds = ROLLING_HOLDS if deployment.strategy == "ROLLING" else TRAFFIC_HOLDS
    found = []
    for hook in deployment.configuration.get("lifecycleHooks") or []:
        if not isinstance(hook, Mapping) or hook.get("targetType") != "PAUSE":
            continue
        timeout = hook.get("timeoutConfiguration") or {}
        minutes = int(timeout.get("timeoutInMinutes") or DEFAULT_HOOK_MINUTES)
        action = str(timeout.get("action") or DEFAULT_HOOK_ACTION)
        for stage in hook.get("lifecycleStages") or []:
            if stage in holds:
                found.append((holds[stage], STAGE_ORDER.index(stage), str(stage), minutes, action))
    return sorted(found)


def pause_at_hooks(service: Any, deployment: ServiceDeployment, now: datetime) -> None:
    """Hold the rollout at the next PAUSE hook once it is reached by `now` (telling EventBridge), and take a hook's
    timeout action once its expiry has passed.

    Only a deployment that replaces a revision holds: a service's first has nothing to test or roll back to.
    """
    if not deployment.sources:
        return
    while deployment.status == "IN_PROGRESS":
        waiting = deployment.waiting_hook
        if waiting is not None:
            if now < waiting.expires_at:
                return
            waiting.status, waiting.ended_at = "TIMED_OUT", waiting.expires_at
            deployment.changed_at = waiting.expires_at
            if waiting.timeout_action == "ROLLBACK":
                cause = f"Lifecycle hook {waiting.hook_id} timed out"
                request_stop(deployment, "ROLLBACK", waiting.expires_at, f"{cause} (ROLLBACK).", cause)
            continue  # CONTINUE: the rollout goes on, maybe to the next hook
        points = hold_points(deployment)
        if len(deployment.hooks) >= len(points):
            return
        share, _, stage, minutes, action = points[len(deployment.hooks)]
        # Every earlier hook has ended: the rollout reaches this one that much later.
        began = deployment.created_at + timedelta(seconds=ROLLOUT_SECONDS * share) + deployment.held(now)
        if now < began:
            return
        hook = PauseHook(
            hook_id=f"ecs-pause-{secrets.token_urlsafe(32)}",
            stage=stage,
            share=share,
            began_at=began,
            expires_at=began + timedelta(seconds=minutes * HOOK_MINUTE_SECONDS),
            timeout_action=action,
        )
        deployment.hooks.append(hook)
        deployment.changed_at = began
        emit_hook(service, deployment, hook)


def emit_hook(service: Any, deployment: ServiceDeployment, hook: PauseHook) -> None:
    """Put ECS's "ECS Hook State Change" event (HOOK_AWAITING_ACTION) of a hook that began to hold on the bus."""
    detail = {
        "eventType": "INFO",
        "eventName": HOOK_AWAITING_EVENT,
        "serviceDeploymentArn": deployment.arn,
        "hookId": hook.hook_id,
        "targetType": "PAUSE",
        "lifecycleStage": hook.stage,
        "expiresAt": iso_millis(hook.expires_at),
        "timeoutAction": hook.timeout_action,
        "updatedAt": iso_millis(hook.began_at),
    }
    put_event(service, HOOK_DETAIL_TYPE, detail, hook.began_at, f"{HOOK_AWAITING_EVENT} of {deployment.arn}")


def end_waiting_hook(deployment: ServiceDeployment, at: datetime) -> None:
    """A deployment that stops waiting otherwise (stopped, replaced) ends the hook it waited at FAILED."""
    waiting = deployment.waiting_hook
    if waiting is not None:
        waiting.status, waiting.ended_at = "FAILED", at


def request_stop(
    deployment: ServiceDeployment,
    stop_type: str,
    at: datetime,
    reason: str,
    cause: str = "Service deployment stop requested",
) -> None:
    """Ask for the deployment's stop (ROLLBACK or ABORT) at `at`; it takes effect STOP_SECONDS later."""
    deployment.stop_requested_at = deployment.changed_at = at
    deployment.status = "STOP_REQUESTED" if stop_type == "ABORT" else "ROLLBACK_REQUESTED"
    deployment.status_reason, deployment.rollback_cause = reason, cause
    end_waiting_hook(deployment, at)


def every_backend() -> Iterator[Any]:
    """moto's ECS backends of every account and region made so far."""
    for regional in list(ecs_models.ecs_backends.values()):
        yield from list(regional.values())


def keep_rolling_out(stopping: threading.Event) -> None:
    """Every TICK_SECONDS, roll every service out: deployments complete, and are told, with nobody asking."""
    while not stopping.wait(TICK_SECONDS):
        for backend in every_backend():
            try:
                with _lock:
                    roll_out_backend(backend, utcnow())
            except Exception as failure:  # the thread goes on for the other services
                print(f"local ECS: rollout failed: {failure!r}", file=sys.stderr, flush=True)


# --- the service deployment API ------------------------------------------------------------------------------------


def as_moment(value: Any, name: str) -> datetime | None:
    """A request's timestamp (epoch seconds, ISO 8601, or already parsed) as a naive UTC time."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, int | float) or (isinstance(value, str) and value.replace(".", "", 1).isdigit()):
            moment = datetime.fromtimestamp(float(value), UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError, OverflowError) as unreadable:
        raise InvalidParameterException(f"{name} is not a timestamp.") from unreadable
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def page_start(token: Any) -> int:
    """Where a nextToken says the page starts."""
    if token is None:
        return 0
    try:
        return int(base64.urlsafe_b64decode(str(token).encode()).decode())
    except (ValueError, binascii.Error) as unreadable:
        raise InvalidParameterException("The nextToken is not valid.") from unreadable


def list_service_deployments(self: Any) -> ActionResult:
    """ListServiceDeployments: the service's service deployments, newest first, filtered and paged."""
    name = self._get_param("service")
    if not name:
        raise InvalidParameterException("service must be specified.")
    statuses = list(self._get_param("status") or [])
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise InvalidParameterException(f"Unknown service deployment status: {', '.join(map(str, unknown))}.")
    limit = self._get_int_param("maxResults", LIST_DEFAULT)
    if not 1 <= limit <= LIST_MAX:
        raise InvalidParameterException(f"maxResults must be between 1 and {LIST_MAX}.")
    created = self._get_param("createdAt") or {}
    after = as_moment(created.get("after"), "createdAt.after")
    before = as_moment(created.get("before"), "createdAt.before")
    start = page_start(self._get_param("nextToken"))
    backend = self.ecs_backend
    with _lock:
        service = backend._get_service(self._get_param("cluster") or "default", str(name))
        roll_out(backend, service, utcnow())
        chosen = [
            d
            for d in ledger_of(backend).of_service(service)
            if (not statuses or d.status in statuses)
            and (after is None or d.created_at >= after)
            and (before is None or d.created_at <= before)
        ]
        chosen.sort(key=lambda d: d.created_at, reverse=True)
        answer: dict[str, Any] = {"serviceDeployments": [brief(d) for d in chosen[start : start + limit]]}
    if start + limit < len(chosen):
        answer["nextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    return ActionResult(answer)


def describe_service_deployments(self: Any) -> ActionResult:
    """DescribeServiceDeployments: each known ARN described, the others as failures (MISSING)."""
    arns = [str(arn) for arn in self._get_param("serviceDeploymentArns") or []]
    if not arns or len(arns) > DESCRIBE_MAX:
        raise InvalidParameterException(f"serviceDeploymentArns must hold 1 to {DESCRIBE_MAX} ARNs.")
    backend = self.ecs_backend
    found, failures = [], []
    with _lock:
        ledger, now = ledger_of(backend), utcnow()
        for arn in arns:
            deployment = ledger.deployments.get(arn)
            if deployment is None:
                failures.append({"arn": arn, "reason": "MISSING"})
                continue
            service = backend.services.get(deployment.service_key)
            if service is not None:
                roll_out(backend, service, now)
            found.append(as_json(deployment, now))
    return ActionResult({"serviceDeployments": found, "failures": failures})


def describe_service_revisions(self: Any) -> ActionResult:
    """DescribeServiceRevisions: each known ARN described, the others as failures (MISSING)."""
    arns = [str(arn) for arn in self._get_param("serviceRevisionArns") or []]
    if not arns or len(arns) > DESCRIBE_MAX:
        raise InvalidParameterException(f"serviceRevisionArns must hold 1 to {DESCRIBE_MAX} ARNs.")
    with _lock:
        revisions = ledger_of(self.ecs_backend).revisions
        found = [copy.deepcopy(revisions[arn]) for arn in arns if arn in revisions]
    failures = [{"arn": arn, "reason": "MISSING"} for arn in arns if arn not in revisions]
    return ActionResult({"serviceRevisions": found, "failures": failures})


def rolled_out(backend: Any, arn: str) -> tuple[ServiceDeployment, datetime]:
    """The service deployment `arn` (ServiceDeploymentNotFoundException if none), its service rolled out to now
    first; held under `_lock` by the caller."""
    deployment = ledger_of(backend).deployments.get(arn)
    if deployment is None:
        raise ServiceDeploymentNotFoundException(f"The service deployment {arn} does not exist.")
    now = utcnow()
    service = backend.services.get(deployment.service_key)
    if service is not None:
        roll_out(backend, service, now)
    return deployment, now


def stop_service_deployment(self: Any) -> ActionResult:
    """StopServiceDeployment: ROLLBACK (the default) or ABORT an unfinished service deployment."""
    arn = str(self._get_param("serviceDeploymentArn") or "")
    stop_type = self._get_param("stopType") or "ROLLBACK"
    if stop_type not in STOP_TYPES:
        raise InvalidParameterException(f"stopType must be one of {', '.join(STOP_TYPES)}.")
    with _lock:
        deployment, now = rolled_out(self.ecs_backend, arn)
        if deployment.status in FINISHED:
            raise ConflictException(
                f"The service deployment {arn} is {deployment.status}: a finished service deployment can't be stopped."
            )
        if deployment.status in STOPPING:
            return ActionResult({"serviceDeploymentArn": arn})  # already stopping: it goes on as it was asked
        if stop_type == "ROLLBACK" and not deployment.sources:
            raise InvalidParameterException(
                f"The service deployment {arn} has no previous service revision to roll back to."
            )
        request_stop(deployment, stop_type, now, f"A stop ({stop_type}) was requested.")
    return ActionResult({"serviceDeploymentArn": arn})


def continue_service_deployment(self: Any) -> ActionResult:
    """ContinueServiceDeployment: a deployment held at a PAUSE hook goes on (CONTINUE, the default) or rolls back
    (ROLLBACK, as StopServiceDeployment's)."""
    arn = str(self._get_param("serviceDeploymentArn") or "")
    hook_id = str(self._get_param("hookId") or "")
    action = self._get_param("action") or "CONTINUE"
    if action not in HOOK_ACTIONS:
        raise InvalidParameterException(f"action must be one of {', '.join(HOOK_ACTIONS)}.")
    with _lock:
        deployment, now = rolled_out(self.ecs_backend, arn)
        if deployment.status != "IN_PROGRESS":
            raise InvalidParameterException(
                f"The service deployment {arn} is {deployment.status}: it waits at no lifecycle hook."
            )
        hook = next((h for h in deployment.hooks if h.hook_id == hook_id), None)
        if hook is None or hook.status != AWAITING_ACTION:
            said = f" ({hook.status})" if hook is not None else ""
            raise InvalidParameterException(f"The lifecycle hook {hook_id} is not awaiting action{said}.")
        hook.status, hook.ended_at = "SUCCEEDED", now
        deployment.changed_at = now
        if action == "ROLLBACK":
            cause = f"Lifecycle hook {hook_id} was told ROLLBACK"
            request_stop(deployment, "ROLLBACK", now, f"{cause}.", cause)
    return ActionResult({"serviceDeploymentArn": arn})


def install() -> None:
    """Patch moto's ECS backend and its API, and what its EventBridge delivers, in this process."""
    backend = ecs_models.EC2ContainerServiceBackend
    backend.update_service = update_service  # type: ignore[method-assign]
    backend.create_service = create_service  # type: ignore[method-assign]
    backend.describe_services = describe_services  # type: ignore[method-assign]
    ecs_models.Service.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[method-assign, assignment]
    api = ecs_responses.EC2ContainerServiceResponse
    api.create_service = create_service_answer  # type: ignore[method-assign]
    api.list_service_deployments = list_service_deployments  # type: ignore[attr-defined]
    api.describe_service_deployments = describe_service_deployments  # type: ignore[attr-defined]
    api.describe_service_revisions = describe_service_revisions  # type: ignore[attr-defined]
    api.stop_service_deployment = stop_service_deployment  # type: ignore[attr-defined]
    api.continue_service_deployment = continue_service_deployment  # type: ignore[attr-defined]
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = DELIVERED_EVENT


def start_rolling_out() -> threading.Event:
    """Start the thread that rolls every service out; set the event it returns to stop it."""
    stopping = threading.Event()
    threading.Thread(target=keep_rolling_out, args=(stopping,), name="local-ecs-rollout", daemon=True).start()
    return stopping


if __name__ == "__main__":
    install()
    start_rolling_out()
    moto_server(["-H", "127.0.0.1", "-p", sys.argv[1]])
