"""The local run's event sources: what Lambda's SQS event source, EventBridge's rules and its scheduler do in AWS.

`chalice local` runs the REST API only. In AWS, SQS hands the push work queue's
messages to the `push_work` function in batches and deletes the ones it does not
report back (batchItemFailures); EventBridge hands ECS's "ECS Deployment State
Change" events to `deployment_events` (its rule has the function's own pattern),
and Lambda invokes it again when it fails; and EventBridge runs
`followers_reconcile` every hour. Here one loop does all three against the
embedded AWS:

- it receives up to ten push work messages at a time, calls the app's own
  `push_work` with the event Lambda would build, and deletes what it acknowledged;
- it receives the deployment events that the local ECS (scripts/local_ecs.py) put
  on each account's default bus and a rule sent to the DEPLOYMENT_EVENTS_QUEUE of
  that account (scripts/local_aws.py makes them, at home and in each of the local
  stage's TARGET_ACCOUNTS, read through its role: in AWS those accounts forward
  them to the home bus), and calls the app's own `deployment_events` with each
  event as EventBridge delivers it. A failed invocation is tried again
  EVENT_RETRY_SECONDS later, EVENT_ATTEMPTS times in all (Lambda retries an
  asynchronous invocation twice, a minute or more apart: locally seconds do);
- it reconciles the follower index at start and every RECONCILE_SECONDS;
- it runs `approvals_sweep` (expiries, what approvals owe) every SWEEP_SECONDS, as
  EventBridge's schedule does every minute.

Run as `python scripts/local_queue.py`, with the embedded AWS's environment;
`make dev` starts it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
RECONCILE_SECONDS = 60.0
SWEEP_SECONDS = 60.0
WAIT_SECONDS = 1
# A deployment event whose invocation failed is delivered again this much later, up to EVENT_ATTEMPTS times in all.
EVENT_RETRY_SECONDS = 2
EVENT_ATTEMPTS = 5
# deployment_events' Lambda timeout (.chalice/config.json).
EVENT_FUNCTION_SECONDS = 60


class LambdaContext:
    """The part of Lambda's context the functions read: the time they have left."""

    def __init__(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's timeout."""
        return int((self._deadline - time.monotonic()) * 1000)


def local_stage_environment() -> dict[str, str]:
    """The `local` stage's environment variables, as `chalice local` gives them to the app."""
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    return {str(k): str(v) for k, v in config["stages"]["local"]["environment_variables"].items()}


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda hands the function for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def scheduled_event(region: str) -> dict[str, Any]:
    """The event EventBridge hands a scheduled function."""
    return {
        "version": "0",
        "id": f"local-{time.time_ns()}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": {},
    }


@dataclass(frozen=True)
class EventQueue:
    """The queue a rule fills with one account's ECS deployment events, and the client that reads it."""

    account: str
    sqs: Any
    url: str


def deployment_event_queues(region: str) -> list[EventQueue]:
    """The DEPLOYMENT_EVENTS_QUEUE of the home account and of each TARGET_ACCOUNTS account (through its role).

    Empty when DEPLOYMENT_EVENTS_QUEUE is not set; an account without the queue is left out, and said so.
    """
    import boto3

    from chalicelib.core.config import load_settings

    name = os.environ.get("DEPLOYMENT_EVENTS_QUEUE")
    if not name:
        return []
    settings = load_settings()
    home = boto3.session.Session(region_name=region)
    sessions = {"home": home}
    sts = home.client("sts")
    for account in settings.target_accounts or ():
        role = f"arn:aws:iam::{account}:role/{settings.target_role_name}"
        credentials = sts.assume_role(RoleArn=role, RoleSessionName="local-deployment-events")["Credentials"]
        sessions[account] = boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=region,
        )
    queues = []
    for account, session in sessions.items():
        sqs = session.client("sqs")
        try:
            queues.append(EventQueue(account, sqs, sqs.get_queue_url(QueueName=name)["QueueUrl"]))
        except sqs.exceptions.QueueDoesNotExist:
            print(f"local_queue: no {name} queue in account {account}: its deployment events are not delivered")
    return queues


def deliver_deployment_events(queue: EventQueue, deployment_events: Any) -> None:
    """Hand each deployment event waiting in `queue` to the function, as EventBridge does; a failed one again later."""
    from chalicelib.core.errors import UpdateError

    messages = queue.sqs.receive_message(
        QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"]
    ).get("Messages", [])
    for message in messages:
        event = json.loads(message["Body"])
        event.pop("ingestion-time", None)  # moto's own field: EventBridge delivers none
        try:
            deployment_events(event, LambdaContext(EVENT_FUNCTION_SECONDS))
        except Exception as failure:  # a failed invocation, whatever failed: Lambda would invoke it again
            if not isinstance(failure, UpdateError):  # the function logs its own refusals; the rest is a bug
                traceback.print_exc()
            attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if attempt < EVENT_ATTEMPTS:
                queue.sqs.change_message_visibility(
                    QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=EVENT_RETRY_SECONDS
                )
                continue
            print(
                f"local_queue: deployment event {event.get('id')} dropped after {attempt} failed attempts", flush=True
            )
        queue.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])


def serve() -> None:
    """Consume the queues and reconcile the index until stopped."""
    os.environ.update(local_stage_environment())
    sys.path.insert(0, str(PROJECT_DIR))
    import boto3

    from chalicelib.entrypoints.functions import approvals_sweep, deployment_events, followers_reconcile, push_work

    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.session.Session().client("sqs", region_name=region)
    url = sqs.get_queue_url(QueueName=os.environ["PUSH_QUEUE"])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    event_queues = deployment_event_queues(region)
    reconciled_at = swept_at = 0.0
    while True:
        if time.monotonic() - swept_at > SWEEP_SECONDS:
            approvals_sweep(scheduled_event(region), LambdaContext(60))
            swept_at = time.monotonic()
        if time.monotonic() - reconciled_at > RECONCILE_SECONDS:
            followers_reconcile(scheduled_event(region), LambdaContext(300))
            reconciled_at = time.monotonic()
        for event_queue in event_queues:
            deliver_deployment_events(event_queue, deployment_events)
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=WAIT_SECONDS, AttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            continue
        answer = push_work(sqs_event(messages, arn, region), LambdaContext(120)) or {}
        failed = {entry["itemIdentifier"] for entry in answer.get("batchItemFailures", [])}
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def main() -> int:
    """Run until SIGTERM or Ctrl-C."""

    def stopped(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stopped)
    try:
        serve()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
