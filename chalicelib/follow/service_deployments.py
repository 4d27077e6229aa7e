"""ECS's own record of each deployment: its status, stage, strategy, alarms and reason, read and stopped.

Since November 2024 ECS keeps a *service deployment* per deployment
(ListServiceDeployments, DescribeServiceDeployments, DescribeServiceRevisions)
with an explicit status, and StopServiceDeployment stops or rolls back one.
This module reads them and says what they mean for this service's outcomes:

| ECS status                                                    | outcome       |
|---------------------------------------------------------------|---------------|
| PENDING, IN_PROGRESS, STOP_REQUESTED                          | IN_PROGRESS   |
| SUCCESSFUL                                                    | COMPLETED     |
| STOPPED                                                       | STOPPED       |
| ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS, ROLLBACK_SUCCESSFUL | ROLLED_BACK   |
| ROLLBACK_FAILED                                               | FAILED        |

A deployment baking (`lifecycleStage` BAKE_TIME) is IN_PROGRESS until ECS
says otherwise. ECS documents no link between a deployment's id (`ecs-svc/…`,
in UpdateService's answer and ECS's events) and its service deployment's ARN,
so `find` ties them: the service deployments created around the deployment's
time, whose target revision runs the deployment's task definition, the one
created closest to it. The ARN found is kept on the deployment's record, so
later reads cost one DescribeServiceDeployments.

A deployment configured with a PAUSE lifecycle hook waits at its stage (its
`lifecycleHookDetails` say AWAITING_ACTION, with the hook's id and expiry)
until ContinueServiceDeployment says CONTINUE or ROLLBACK (`continue_at`).

Reads never fail a request: where these operations are not there (an older
region, an emulator) or not allowed, they answer None and the caller keeps
its judgement from DescribeServices and ECS's events.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore import xform_name
from botocore.exceptions import ClientError

from chalicelib.aws import clients
from chalicelib.core.errors import (
    DeploymentNotFoundError,
    DeploymentNotStoppableError,
    HookNotWaitingError,
    InvalidRequestError,
    UpdateError,
)
from chalicelib.core.results import as_datetime, iso8601
from chalicelib.state import records

logger = logging.getLogger(__name__)

# ECS's lifecycle stages, in the order a deployment passes them.
STAGES = (
    "RECONCILE_SERVICE",
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
STRATEGIES = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
DEFAULT_STRATEGY = "ROLLING"
# Strategies that move traffic in steps: how far it has moved is shown.
STEPPED = frozenset({"LINEAR", "CANARY"})

OUTCOME_OF_STATUS = {
    "PENDING": records.IN_PROGRESS,
    "IN_PROGRESS": records.IN_PROGRESS,
    "STOP_REQUESTED": records.IN_PROGRESS,
    "SUCCESSFUL": records.COMPLETED,
    "STOPPED": records.STOPPED,
    "ROLLBACK_REQUESTED": records.ROLLED_BACK,
    "ROLLBACK_IN_PROGRESS": records.ROLLED_BACK,
    "ROLLBACK_SUCCESSFUL": records.ROLLED_BACK,
    "ROLLBACK_FAILED": records.FAILED,
}
# Outcomes a record may take from its service deployment (final ones: IN_PROGRESS is the record's own start).
DECIDED = frozenset({records.COMPLETED, records.STOPPED, records.ROLLED_BACK, records.FAILED})
STOP_ACTIONS = {"rollback": "ROLLBACK", "abort": "ABORT"}
# A lifecycle hook that pauses the deployment until it is told to go on, and the status it waits in.
PAUSE_HOOK = "PAUSE"
AWAITING_ACTION = "AWAITING_ACTION"
CONTINUE = "CONTINUE"
ROLLBACK = "ROLLBACK"

# A deployment's service deployment is created at most TIE_BEFORE before the time it is looked for by (ECS's
# clocks), and at most TIE_AFTER after it (a push's record keeps the push's time, its update may come later).
TIE_BEFORE = timedelta(minutes=2)
TIE_AFTER = timedelta(minutes=15)
# A lone candidate this close to the deployment's time is taken without reading its revision.
TIE_EXACT_SECONDS = 10.0
# The newest service deployment is looked for among those created since this before the oldest listed deployment
# (a 23-hour bake, then a rollback, is covered), at most this many pages of 100.
NEWEST_LOOKBACK = timedelta(days=2)
NEWEST_PAGES = 3
DESCRIBE_BATCH = 20
# Answers meaning the API is not there or not allowed: not asked again by that client for a while.
UNAVAILABLE_CODES = frozenset(
    {"UnknownOperationException", "InvalidAction", "AccessDeniedException", "UnsupportedFeatureException"}
)
UNAVAILABLE_SECONDS = 300.0
_unavailable: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ServiceDeployment:
    """One service deployment as ECS describes it."""

    raw: Mapping[str, Any]

    @property
    def arn(self) -> str:
        """Its ARN."""
        return str(self.raw.get("serviceDeploymentArn") or "")

    @property
    def status(self) -> str:
        """ECS's status (PENDING … ROLLBACK_FAILED)."""
        return str(self.raw.get("status") or "")

    @property
    def outcome(self) -> str:
        """What the status means for this service's outcomes (an unknown status: IN_PROGRESS)."""
        return OUTCOME_OF_STATUS.get(self.status, records.IN_PROGRESS)

    @property
    def stage(self) -> str | None:
        """The lifecycle stage it is at (e.g. BAKE_TIME), when ECS says."""
        stage = self.raw.get("lifecycleStage")
        return str(stage) if stage else None

    @property
    def strategy(self) -> str:
        """ROLLING, BLUE_GREEN, LINEAR or CANARY (ROLLING when ECS says none)."""
        configuration = self.raw.get("deploymentConfiguration") or {}
        return str(configuration.get("strategy") or DEFAULT_STRATEGY)

    @property
    def alarms(self) -> list[str]:
        """The CloudWatch alarms that went off during it (they roll it back)."""
        return [str(name) for name in (self.raw.get("alarms") or {}).get("triggeredAlarmNames") or []]

    @property
    def created(self) -> datetime | None:
        """When ECS created it."""
        return as_datetime(self.raw.get("createdAt"))

    @property
    def reason(self) -> str | None:
        """Why it is where it is, in ECS's words, the alarms that fired named first."""
        parts: list[str] = []
        if self.alarms:
            parts.append(f"{'alarm' if len(self.alarms) == 1 else 'alarms'} {', '.join(self.alarms)} went off")
        breaker = self.raw.get("deploymentCircuitBreaker") or {}
        if breaker.get("status") == "TRIGGERED" and not self.alarms:
            parts.append(
                f"the deployment circuit breaker tripped ({breaker.get('failureCount')} failed tasks, "
                f"threshold {breaker.get('threshold')})"
            )
        said = self.raw.get("statusReason") or (self.raw.get("rollback") or {}).get("reason")
        if said:
            parts.append(str(said))
        return ": ".join(parts) or None

    @property
    def traffic(self) -> dict[str, Any] | None:
        """How far a linear or canary deployment has moved the traffic (percent), else None."""
        if self.strategy not in STEPPED:
            return None
        target = self.raw.get("targetServiceRevision") or {}
        production = target.get("requestedProductionTrafficWeight")
        test = target.get("requestedTestTrafficWeight")
        if production is None and test is None:
            return None
        return {"production": production, "test": test}

    @property
    def pauses(self) -> list[dict[str, Any]]:
        """Its PAUSE hooks waiting for a decision: {serviceDeploymentArn, hookId, lifecycleStage, expiresAt,
        timeoutAction}."""
        return [
            {
                "serviceDeploymentArn": self.arn,
                "hookId": str(hook["hookId"]),
                "lifecycleStage": self.stage,
                "expiresAt": iso8601(hook.get("expiresAt")),
                "timeoutAction": hook.get("timeoutAction"),
            }
            for hook in self.raw.get("lifecycleHookDetails") or []
            if isinstance(hook, Mapping)
            and hook.get("targetType") == PAUSE_HOOK
            and hook.get("status") == AWAITING_ACTION
            and hook.get("hookId")
        ]

    def view(self) -> dict[str, Any]:
        """Its JSON shape in the status body."""
        return {
            "arn": self.arn,
            "status": self.status,
            "outcome": self.outcome,
            "reason": self.reason,
            "lifecycleStage": self.stage,
            "strategy": self.strategy,
            "traffic": self.traffic,
            "alarms": self.alarms,
            "createdAt": iso8601(self.raw.get("createdAt")),
            "startedAt": iso8601(self.raw.get("startedAt")),
            "finishedAt": iso8601(self.raw.get("finishedAt")),
            "stoppedAt": iso8601(self.raw.get("stoppedAt")),
        }

    def verdict_fields(self) -> dict[str, Any]:
        """What a deployment's verdict (`?deployment=`) carries from it."""
        return {
            "lifecycleStage": self.stage,
            "strategy": self.strategy,
            "ecsStatus": self.status,
            "serviceDeploymentArn": self.arn,
            "traffic": self.traffic,
        }


def strategy_of(service: Mapping[str, Any]) -> str:
    """The deployment strategy a described service is configured with (ROLLING when it says none)."""
    return str((service.get("deploymentConfiguration") or {}).get("strategy") or DEFAULT_STRATEGY)


def describe(client: Any, arns: Iterable[str]) -> dict[str, ServiceDeployment] | None:
    """The service deployments of `arns` by ARN (one call per 20); None when ECS could not say."""
    wanted = list(dict.fromkeys(arn for arn in arns if arn))
    found: dict[str, ServiceDeployment] = {}
    for start in range(0, len(wanted), DESCRIBE_BATCH):
        answer = _read(
            client, "DescribeServiceDeployments", serviceDeploymentArns=wanted[start : start + DESCRIBE_BATCH]
        )
        if answer is None:
            return None
        found.update(
            (str(item.get("serviceDeploymentArn")), ServiceDeployment(item))
            for item in answer.get("serviceDeployments") or []
        )
    return found


def find(
    client: Any,
    cluster: str,
    service: str,
    task_definition: str | None,
    created: datetime | None,
    known_arn: str | None = None,
) -> ServiceDeployment | None:
    """The service deployment of one deployment: by its known ARN, else tied by time and task definition.

    None when there is none to be found or ECS could not say (the caller keeps its own judgement).
    """
    if known_arn:
        return (describe(client, [known_arn]) or {}).get(known_arn)
    if created is None:
        return None
    listed = _read(
        client,
        "ListServiceDeployments",
        cluster=cluster,
        service=service,
        createdAt={"after": created - TIE_BEFORE, "before": created + TIE_AFTER},
        maxResults=100,
    )
    if listed is None:
        return None
    briefs = sorted(listed.get("serviceDeployments") or [], key=lambda brief: _distance(brief, created))
    arn = _tied(client, briefs, task_definition, created)
    return (describe(client, [arn]) or {}).get(arn) if arn else None


def newest(client: Any, cluster: str, service: str, since: datetime | None) -> ServiceDeployment | None:
    """The service's newest service deployment created after `since` minus NEWEST_LOOKBACK; None if none."""
    if since is None:
        return None
    best: Mapping[str, Any] | None = None
    token: str | None = None
    for _ in range(NEWEST_PAGES):
        arguments: dict[str, Any] = {"createdAt": {"after": since - NEWEST_LOOKBACK}, "maxResults": 100}
        if token:
            arguments["nextToken"] = token
        listed = _read(client, "ListServiceDeployments", cluster=cluster, service=service, **arguments)
        if listed is None:
            return None
        for brief in listed.get("serviceDeployments") or []:
            if best is None or _time(brief) > _time(best):
                best = brief
        token = listed.get("nextToken")
        if not token:
            break
    arn = str(best.get("serviceDeploymentArn") or "") if best else ""
    return (describe(client, [arn]) or {}).get(arn) if arn else None


def stop(client: Any, arn: str, action: str) -> dict[str, Any]:
    """Ask ECS to stop one service deployment (`action`: rollback or abort); raises what ECS refuses."""
    return clients.call(
        client.stop_service_deployment,
        "StopServiceDeployment",
        {
            "ServiceDeploymentNotFoundException": DeploymentNotFoundError,
            "ConflictException": DeploymentNotStoppableError,
            "UnsupportedFeatureException": lambda said: DeploymentNotStoppableError(f"ECS cannot stop it: {said}"),
            # ECS's reference documents ROLLBACK as the stop type it takes: it may refuse an abort.
            "InvalidParameterException": lambda said: InvalidRequestError(f"ECS refused the stop: {said}"),
            "ClientException": lambda said: InvalidRequestError(f"ECS refused the stop: {said}"),
        },
        serviceDeploymentArn=arn,
        stopType=STOP_ACTIONS[action],
    )


def in_progress(client: Any, cluster: str, service: str) -> list[ServiceDeployment] | None:
    """The service's service deployments ECS is running now (IN_PROGRESS); None when ECS could not say."""
    listed = _read(
        client, "ListServiceDeployments", cluster=cluster, service=service, status=["IN_PROGRESS"], maxResults=100
    )
    if listed is None:
        return None
    arns = [str(brief.get("serviceDeploymentArn") or "") for brief in listed.get("serviceDeployments") or []]
    described = describe(client, arns)
    return None if described is None else list(described.values())


def continue_at(client: Any, arn: str, hook_id: str, action: str) -> dict[str, Any]:
    """Tell ECS to go on from a PAUSE hook: `action` CONTINUE or ROLLBACK. HookNotWaitingError when ECS no longer
    waits there (the deployment ended, or the hook was decided or timed out); other failures raise as they are."""

    def not_waiting(said: str) -> HookNotWaitingError:
        return HookNotWaitingError(f"ECS no longer waits at hook {hook_id} of {arn.rsplit('/', 1)[-1]}: {said}")

    return clients.call(
        client.continue_service_deployment,
        "ContinueServiceDeployment",
        {
            "ServiceDeploymentNotFoundException": not_waiting,
            "InvalidParameterException": not_waiting,
            "ClientException": not_waiting,
            "UnsupportedFeatureException": not_waiting,
        },
        serviceDeploymentArn=arn,
        hookId=hook_id,
        action=action,
    )


def superseded(deployment: ServiceDeployment, newer_starts: Iterable[datetime | None]) -> bool:
    """True when a STOPPED service deployment was stopped by a newer deployment (not by a person): one of
    `newer_starts` (when other deployments of the service began) falls after it began and by when it stopped."""
    if deployment.status != "STOPPED" or deployment.created is None:
        return False
    stopped = as_datetime(deployment.raw.get("stoppedAt") or deployment.raw.get("finishedAt"))
    skew = timedelta(seconds=TIE_EXACT_SECONDS)
    return any(
        began is not None and began > deployment.created and (stopped is None or began <= stopped + skew)
        for began in newer_starts
    )


# ECS statuses whose outcome is settled here (ROLLED_BACK, STOPPED) while ECS still works on the deployment.
MOVING_STATUSES = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS", "STOP_REQUESTED"})
# Stages at which ECS goes on after the tasks are healthy (traffic shifts, the bake): a COMPLETED event then
# does not end the deployment; only ECS's record does.
CONTINUING_STAGES = frozenset(
    {
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
        "BAKE_TIME",
    }
)


def replaced(client: Any, cluster: str, service: str, deployment: ServiceDeployment) -> bool:
    """True when ECS lists a service deployment of the service that began after this STOPPED one and by when
    it stopped (ECS stopped it for that one); False when none, or when ECS could not say."""
    if deployment.status != "STOPPED" or deployment.created is None:
        return False
    listed = _read(
        client, "ListServiceDeployments", cluster=cluster, service=service,
        createdAt={"after": deployment.created}, maxResults=100,
    )  # fmt: skip
    others = [
        as_datetime(brief.get("createdAt"))
        for brief in (listed or {}).get("serviceDeployments") or []
        if brief.get("serviceDeploymentArn") != deployment.arn
    ]
    return superseded(deployment, others)


def stage_reached(stage: str | None, wanted: str) -> bool:
    """True when a deployment at `stage` has reached `wanted` (one of STAGES) or gone past it."""
    return stage in STAGES and STAGES.index(stage) >= STAGES.index(wanted)


def _tied(
    client: Any, briefs: Sequence[Mapping[str, Any]], task_definition: str | None, created: datetime
) -> str | None:
    """The ARN among `briefs` (closest to `created` first) that deploys `task_definition`."""
    if not briefs:
        return None
    if not task_definition:
        # Nothing to check the revision against: only a lone candidate created with it is taken.
        if len(briefs) == 1 and _distance(briefs[0], created) <= TIE_EXACT_SECONDS:
            return str(briefs[0].get("serviceDeploymentArn") or "") or None
        return None
    revisions = [str(b.get("targetServiceRevisionArn")) for b in briefs if b.get("targetServiceRevisionArn")]
    answer = _read(client, "DescribeServiceRevisions", serviceRevisionArns=revisions[:DESCRIBE_BATCH])
    if answer is None:
        return None
    running = {
        str(revision.get("serviceRevisionArn")): revision.get("taskDefinition")
        for revision in answer.get("serviceRevisions") or []
    }
    for brief in briefs:
        if running.get(str(brief.get("targetServiceRevisionArn"))) == task_definition:
            return str(brief.get("serviceDeploymentArn") or "") or None
    return None


def available(client: Any) -> bool:
    """False while `client` is known not to reach the service deployment API (see _read)."""
    return _unavailable.get(client, 0.0) <= time.monotonic()


def _read(client: Any, operation: str, **arguments: Any) -> dict[str, Any] | None:
    """One read of the service deployment API; None (logged) when it fails in any way.

    Where the API is not there or not allowed for this client (an emulator, an older region, a role without
    the permission), it is not asked again for UNAVAILABLE_SECONDS: status polls then cost what they did.
    """
    if not available(client):
        return None
    method = getattr(client, xform_name(operation), None)
    try:
        if method is None:
            raise NotImplementedError(f"this botocore has no {operation}")
        return clients.call(method, operation, {}, **arguments)
    except UpdateError as failure:
        cause = failure.__cause__
        code = cause.response.get("Error", {}).get("Code") if isinstance(cause, ClientError) else None
        if code in UNAVAILABLE_CODES:
            _unavailable[client] = time.monotonic() + UNAVAILABLE_SECONDS
        logger.warning("%s failed (%s); judging from DescribeServices and events", operation, failure.message)
    except Exception as failure:  # an emulator without the operation fails in its own way
        _unavailable[client] = time.monotonic() + UNAVAILABLE_SECONDS
        logger.warning("%s is not available (%r); judging from DescribeServices and events", operation, failure)
    return None


def _time(brief: Mapping[str, Any]) -> float:
    moment = as_datetime(brief.get("createdAt"))
    return moment.timestamp() if moment else 0.0


def _distance(brief: Mapping[str, Any], created: datetime) -> float:
    moment = as_datetime(brief.get("createdAt"))
    return abs(moment.timestamp() - created.timestamp()) if moment else float("inf")
