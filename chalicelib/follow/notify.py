"""Notifications: one SNS message per outcome of a recorded deployment (building them is pure).

SNS is the fan-out: mail, AWS Chatbot for Slack or Teams, HTTPS webhooks, SQS.
Each message is JSON, with a one-line Subject a person can read and message
attributes `event`, `cluster` and `service` that subscriptions can filter on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.aws import clients

STARTED = "DEPLOYMENT_STARTED"
COMPLETED = "DEPLOYMENT_COMPLETED"
FAILED = "DEPLOYMENT_FAILED"
ROLLED_BACK = "DEPLOYMENT_ROLLED_BACK"
STOPPED = "DEPLOYMENT_STOPPED"
# The order in which a record's notifications go out.
IN_ORDER = (STARTED, COMPLETED, FAILED, ROLLED_BACK, STOPPED)
# What becomes of an approval (chalicelib.state.approvals): asked for, and each way it can end. The deployment
# an approval makes is told of like any other (DEPLOYMENT_STARTED, ...).
APPROVAL_REQUESTED = "APPROVAL_REQUESTED"
APPROVAL_APPROVED = "APPROVAL_APPROVED"
APPROVAL_REJECTED = "APPROVAL_REJECTED"
APPROVAL_SUPERSEDED = "APPROVAL_SUPERSEDED"
APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
APPROVAL_STALE = "APPROVAL_STALE"
APPROVAL_FAILED = "APPROVAL_FAILED"
_APPROVAL_VERBS = {
    APPROVAL_REQUESTED: "waits for approval",
    APPROVAL_APPROVED: "approved, deploying",
    APPROVAL_REJECTED: "rejected",
    APPROVAL_SUPERSEDED: "superseded by a newer change",
    APPROVAL_EXPIRED: "expired unapproved",
    APPROVAL_STALE: "approved too late: the service changed meanwhile",
    APPROVAL_FAILED: "approved, but the deployment failed",
}
# A pause (an ECS deployment waiting at a PAUSE hook) is continued or rolled back, not deployed.
_PAUSE_VERBS = {
    **_APPROVAL_VERBS,
    APPROVAL_REQUESTED: "paused, waits for approval to continue",
    APPROVAL_APPROVED: "approved, continuing",
    APPROVAL_REJECTED: "rejected, rolling back",
    APPROVAL_EXPIRED: "not decided before the pause timed out",
    APPROVAL_STALE: "ended undecided or decided too late: ECS no longer waits",
}
_VERBS = {STARTED: "started", COMPLETED: "completed", FAILED: "failed", ROLLED_BACK: "rolled back", STOPPED: "stopped"}
# SNS subjects: ASCII, no line breaks, under 100 characters.
MAX_SUBJECT = 99
_NOT_SUBJECT_TEXT = re.compile(r"[^\x20-\x7e]+")
_REASON_PREFIX = re.compile(r"^ECS deployment circuit breaker:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Notification:
    """One SNS message."""

    subject: str
    message: dict[str, Any]
    attributes: dict[str, str]


def notification(event: str, record: Mapping[str, Any], reason: str | None) -> Notification:
    """The message telling that the deployment of `record` (its JSON shape) reached `event`."""
    task_definition = record.get("taskDefinition") or {}
    revision = f"{task_definition.get('family')}:{task_definition.get('revision')}"
    subject = f"{record.get('service')} on {record.get('cluster')}: deployment {revision} {_VERBS[event]}"
    if reason and event != STARTED:
        subject += f" ({_REASON_PREFIX.sub('', reason).rstrip('.')})"
    message = {
        "event": event,
        "cluster": record.get("cluster"),
        "service": record.get("service"),
        "account": record.get("account"),
        "region": record.get("region"),
        "deploymentId": record.get("deploymentId"),
        "taskDefinition": record.get("taskDefinition"),
        "previousTaskDefinition": record.get("previousTaskDefinition"),
        "containers": record.get("containers") or [],
        "requestId": record.get("requestId"),
        "keyId": record.get("keyId"),
        "action": record.get("action"),
        "at": record.get("at"),
        "reason": reason,
        "serviceDeploymentArn": record.get("serviceDeploymentArn"),
        "strategy": record.get("strategy"),
        "stop": record.get("stop"),  # who asked ECS to stop it, how and when
    }
    attributes = {"event": event, "cluster": str(record.get("cluster")), "service": str(record.get("service"))}
    # A subscription may filter on the account or region (an SNS filter policy on the attribute).
    attributes.update({name: str(record[name]) for name in ("account", "region") if record.get(name)})
    return Notification(_subject_text(subject), message, attributes)


def approval_notification(event: str, approval: Mapping[str, Any]) -> Notification:
    """The message telling that an approval (its JSON shape, chalicelib.state.approvals) reached `event`; it
    names the requester and the voters, whom a subscription can route it to."""
    services = approval.get("services") or []
    names = ", ".join(str(s.get("service")) for s in services)
    images = ", ".join(f"{c.get('name')} {c.get('image')}" for s in services for c in s.get("containers") or [])
    subject = f"{names} on {approval.get('cluster')}: {images} {_APPROVAL_VERBS[event]}"
    if approval.get("kind") == "pause":  # the images are those of the deployment under way: its stage says more
        stage = (approval.get("hook") or {}).get("lifecycleStage") or "a hook"
        subject = f"{names} on {approval.get('cluster')} at {stage}: {_PAUSE_VERBS[event]}"
    message = {
        "event": event,
        "approvalId": approval.get("id"),
        "kind": approval.get("kind"),
        "status": approval.get("status"),
        "cluster": approval.get("cluster"),
        "services": services,
        "required": approval.get("required"),
        "approvedBy": approval.get("approvedBy") or [],
        "voters": [vote.get("principal") for vote in approval.get("votes") or []],
        "requestedBy": approval.get("requestedBy"),
        "deadline": approval.get("deadline"),
        "reason": approval.get("reason"),
        "deployments": approval.get("deployments") or [],
        "hook": approval.get("hook"),
    }
    attributes = {"event": event, "cluster": str(approval.get("cluster")), "service": names}
    return Notification(_subject_text(subject), message, attributes)


def publish(client: Any, topic_arn: str, sent: Notification) -> str:
    """Publish one notification; returns SNS's message id. AWS failures raise UpdateError."""
    response = clients.call(
        client.publish,
        "Publish",
        {},
        TopicArn=topic_arn,
        Subject=sent.subject,
        Message=json.dumps(sent.message, sort_keys=True),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in sent.attributes.items()
        },
    )
    return str(response.get("MessageId", ""))


def _subject_text(text: str) -> str:
    text = _NOT_SUBJECT_TEXT.sub(" ", text.replace("\u2026", "...")).strip()
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 3].rstrip() + "..."
