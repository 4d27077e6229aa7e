"""Deployment records: who deployed what, when, and how it ended (values and their JSON shape).

Every request that took a service's lock (`/update`, `/rollback`, `/apply`, a
push, a pipeline job) leaves one record per service (dry runs never do). Its
`outcome` starts as IN_PROGRESS for a deployment started, NO_CHANGE for a
no-op or ERROR for a failure, and then follows ECS's own events
and ECS's record of the deployment (chalicelib.follow.outcomes and
service_deployments) to COMPLETED, FAILED, ROLLED_BACK, STOPPED or SUPERSEDED.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.access.audit import Provenance
from chalicelib.core.errors import INTERNAL_ERROR_MESSAGE, UpdateError, http_status
from chalicelib.core.locations import location_of, where_of_key
from chalicelib.core.results import ChangeResult, as_datetime, iso8601
from chalicelib.state.table import (
    POINTER_SORT_KEY,
    RECORD_PREFIX,
    TTL_ATTRIBUTE,
    deployment_partition,
    service_partition,
    to_item,
)

IN_PROGRESS = "IN_PROGRESS"
NO_CHANGE = "NO_CHANGE"
ERROR = "ERROR"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
ROLLED_BACK = "ROLLED_BACK"
STOPPED = "STOPPED"  # stopped by a person (POST .../deployments/{id}/stop with "abort", or ECS's console)
SUPERSEDED = "SUPERSEDED"  # ECS stopped it for a newer deployment (its service deployment says STOPPED)
FROZEN = "FROZEN"  # a push that arrived during a freeze that drops pushes (chalicelib.state.freezes): not deployed
FINAL_OUTCOMES = frozenset({COMPLETED, ROLLED_BACK, STOPPED, SUPERSEDED})
# A change that waits for approval (chalicelib.state.approvals), and how its wait ended: APPROVED (the change
# was deployed, under a record of its own), REJECTED, EXPIRED, STALE (the service changed meanwhile), or
# SUPERSEDED (a newer change asked for approval; the same word as ECS replacing a deployment).
PENDING_APPROVAL = "PENDING_APPROVAL"
APPROVED = "APPROVED"
REJECTED = "REJECTED"
EXPIRED = "EXPIRED"
STALE = "STALE"


@dataclass(frozen=True)
class DeploymentRecord:
    """One request's change to one service, and the outcome ECS reported for it."""

    cluster: str
    service: str
    at: str
    action: str
    request_id: str | None
    key_id: str | None
    source_ip: str | None
    changed: bool
    force_new_deployment: bool
    task_definition: dict[str, Any] | None
    previous_task_definition: dict[str, Any] | None
    containers: list[dict[str, str]]
    deployment_id: str | None
    status: int
    error: dict[str, str] | None
    outcome: str
    outcome_at: str | None = None
    outcome_reason: str | None = None
    batch_id: str | None = None
    push: dict[str, Any] | None = None
    # Who asked (chalicelib.access.identity); None on records written before principals were kept.
    principal: str | None = None
    # What the checks before the write could not confirm (VERIFY_IMAGES=warn).
    warnings: list[str] = field(default_factory=list)
    # The service's account and region (None on records written before they were kept: the home ones), and
    # the key its lock and records go by (chalicelib.core.locations; None: `cluster/service`).
    account: str | None = None
    region: str | None = None
    service_key: str | None = None
    # ECS's service deployment of the deployment once tied to it (chalicelib.follow.service_deployments), its
    # strategy, the lifecycle stage and ECS's status last seen; who asked ECS to stop it, how and when
    # ({action, by, at}).
    service_deployment_arn: str | None = None
    strategy: str | None = None
    lifecycle_stage: str | None = None
    ecs_status: str | None = None
    stop: dict[str, Any] | None = None
    # The freezes the change went through, its principal's rule saying `bypassFreeze` (`freeze:<id>`,
    # `window:<name>`).
    bypassed: list[str] = field(default_factory=list)
    # The approval the change waits for, or was deployed by: {"id", "approvedBy"} (chalicelib.state.approvals).
    approval: dict[str, Any] | None = None
    # The deployment waiting at an ECS PAUSE hook, or how that ended (chalicelib.deploy.pauses): {status,
    # approvalId, hookId, lifecycleStage, expiresAt, timeoutAction, since, required, decidedAt?, reason?}.
    pause: dict[str, Any] | None = None
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def of_result(
        cls, provenance: Provenance, result: ChangeResult, force_new_deployment: bool, key: str | None = None
    ) -> DeploymentRecord:
        """The record of a change that was answered with a 200 (`key`: its service's, see service_key)."""
        located = location_of(result.service_arn or "")
        started = result.changed or result.deployment is not None
        return cls(
            cluster=result.cluster,
            service=result.service,
            at=_at(provenance),
            action=provenance.action,
            request_id=provenance.request_id,
            key_id=provenance.key_id,
            source_ip=provenance.source_ip,
            changed=result.changed,
            force_new_deployment=force_new_deployment,
            task_definition=result.task_definition.as_reference(),
            previous_task_definition=(
                result.previous_task_definition.as_reference() if result.previous_task_definition else None
            ),
            containers=[change.as_dict() for change in result.containers],
            deployment_id=(result.deployment or {}).get("id"),
            status=200,
            error=None,
            outcome=IN_PROGRESS if started else NO_CHANGE,
            batch_id=provenance.batch_id,
            push=dict(provenance.push) if provenance.push else None,
            principal=provenance.principal,
            warnings=list(result.warnings),
            account=located.account if located else None,
            region=located.region if located else None,
            service_key=key,
            approval=dict(provenance.approval) if provenance.approval else None,
        )

    @classmethod
    def of_failure(
        cls, provenance: Provenance, key: str, failure: BaseException, force_new_deployment: bool
    ) -> DeploymentRecord:
        """The record of a request that failed after taking the lock of service `key` (`cluster/service`)."""
        status, code = http_status(failure)
        message = failure.message if isinstance(failure, UpdateError) else INTERNAL_ERROR_MESSAGE
        parts = key.split("/")
        cluster, service = parts[-2], parts[-1]
        elsewhere = len(parts) == 4  # account/region/cluster/service
        return cls(
            cluster=cluster,
            service=service,
            at=_at(provenance),
            action=provenance.action,
            request_id=provenance.request_id,
            key_id=provenance.key_id,
            source_ip=provenance.source_ip,
            changed=False,
            force_new_deployment=force_new_deployment,
            task_definition=None,
            previous_task_definition=None,
            containers=[],
            deployment_id=None,
            status=status,
            error={"Code": code, "Message": message},
            outcome=ERROR,
            batch_id=provenance.batch_id,
            push=dict(provenance.push) if provenance.push else None,
            principal=provenance.principal,
            account=parts[0] if elsewhere else None,
            region=parts[1] if elsewhere else None,
            service_key=key,
        )

    @classmethod
    def of_push_failure(
        cls,
        provenance: Provenance,
        cluster: str,
        service: str,
        failure: BaseException,
        containers: list[dict[str, str]],
        key: str,
        service_arn: str,
    ) -> DeploymentRecord:
        """The one record of a push that could not deploy a service (`key`: its service's, see service_key):
        refused, or out of retries; its account and region from the service's ARN, as a change's."""
        failed = cls.of_failure(provenance, key, failure, force_new_deployment=False)
        located = location_of(service_arn)
        return replace(
            failed,
            cluster=cluster,  # a name with a "/" (an ARN) stays whole
            service=service,
            account=located.account if located else None,
            region=located.region if located else None,
            containers=containers,
            outcome=FAILED,
            outcome_at=iso8601(datetime.now(UTC)),
            outcome_reason=(failed.error or {}).get("Message"),
        )

    @property
    def key(self) -> str:
        """The key its service's lock and records go by: `cluster/service` at home (chalicelib.core.locations)."""
        return self.service_key or f"{self.cluster}/{self.service}"

    @property
    def sort_key(self) -> str:
        """Where the record sits in its service's partition: newest last, by time."""
        return f"{RECORD_PREFIX}{self.at}#{self.record_id}"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape, as the history shows it."""
        return {
            "at": self.at,
            "action": self.action,
            "cluster": self.cluster,
            "service": self.service,
            "account": self.account,
            "region": self.region,
            "principal": self.principal,
            "requestId": self.request_id,
            "keyId": self.key_id,
            "sourceIp": self.source_ip,
            "changed": self.changed,
            "forceNewDeployment": self.force_new_deployment,
            "taskDefinition": self.task_definition,
            "previousTaskDefinition": self.previous_task_definition,
            "containers": self.containers,
            "deploymentId": self.deployment_id,
            "status": self.status,
            "error": self.error,
            "outcome": self.outcome,
            "outcomeAt": self.outcome_at,
            "outcomeReason": self.outcome_reason,
            "batchId": self.batch_id,
            "push": self.push,
            "warnings": list(self.warnings),
            "serviceDeploymentArn": self.service_deployment_arn,
            "strategy": self.strategy,
            "lifecycleStage": self.lifecycle_stage,
            "ecsStatus": self.ecs_status,
            "stop": self.stop,
            "bypassed": list(self.bypassed),
            "approval": self.approval,
            "pause": self.pause,
        }

    def items(self, history_days: int, owed: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """The record's DynamoDB item, and the pointer to it from its ECS deployment id if it has one.

        `owed` are notifications the record owes from the start (a push that failed for good owes one).
        """
        expires = _epoch(self.at) + int(timedelta(days=history_days).total_seconds())
        record = to_item(
            {
                "pk": service_partition(self.key),
                "sk": self.sort_key,
                "kind": "record",
                "recordId": self.record_id,
                TTL_ATTRIBUTE: expires,
                **self.as_dict(),
                # Claims (leases) on the notifications being sent, by event name; the ones sent go in `sent`.
                "sending": {},
                "owed": set(owed) or None,
            }
        )
        items = [record]
        if self.deployment_id:
            items.append(
                to_item(
                    {
                        "pk": deployment_partition(self.deployment_id, where_of_key(self.key)),
                        "sk": POINTER_SORT_KEY,
                        "kind": "pointer",
                        "recordPk": service_partition(self.key),
                        "recordSk": self.sort_key,
                        TTL_ATTRIBUTE: expires,
                    }
                )
            )
        return items

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> DeploymentRecord:
        """A record read back from the table (plain values, see from_item)."""
        return cls(
            cluster=item["cluster"],
            service=item["service"],
            at=item["at"],
            action=item["action"],
            request_id=item.get("requestId"),
            key_id=item.get("keyId"),
            source_ip=item.get("sourceIp"),
            changed=bool(item.get("changed")),
            force_new_deployment=bool(item.get("forceNewDeployment")),
            task_definition=item.get("taskDefinition"),
            previous_task_definition=item.get("previousTaskDefinition"),
            containers=list(item.get("containers") or []),
            deployment_id=item.get("deploymentId"),
            status=int(item.get("status", 0)),
            error=item.get("error"),
            outcome=item["outcome"],
            outcome_at=item.get("outcomeAt"),
            outcome_reason=item.get("outcomeReason"),
            batch_id=item.get("batchId"),
            push=item.get("push"),
            principal=item.get("principal"),
            warnings=list(item.get("warnings") or []),
            account=item.get("account"),
            region=item.get("region"),
            service_key=str(item["pk"]).removeprefix("SERVICE#") if item.get("pk") else None,
            service_deployment_arn=item.get("serviceDeploymentArn"),
            strategy=item.get("strategy"),
            lifecycle_stage=item.get("lifecycleStage"),
            ecs_status=item.get("ecsStatus"),
            stop=item.get("stop"),
            bypassed=list(item.get("bypassed") or []),
            approval=item.get("approval"),
            pause=item.get("pause"),
            record_id=item.get("recordId", ""),
        )


def _at(provenance: Provenance) -> str:
    return iso8601(provenance.at) or ""


def _epoch(at: str) -> int:
    moment = as_datetime(at)
    return int(moment.timestamp()) if moment else 0
