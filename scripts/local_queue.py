"""The push work queue's consumer for the local run: what Lambda's SQS event source and scheduler do in AWS.

`chalice local` runs the REST API only. In AWS, SQS hands the queue's messages
to the `push_work` function in batches and deletes the ones it does not report
back (batchItemFailures), and EventBridge runs `followers_reconcile` every hour.
Here one loop does both against the embedded AWS: it receives up to ten
messages at a time, calls the app's own `push_work` with the event Lambda would
build, deletes what it acknowledged, and reconciles the follower index at start
and every RECONCILE_SECONDS. Run as `python scripts/local_queue.py`, with the
embedded AWS's environment; `make dev` starts it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
RECONCILE_SECONDS = 60.0
WAIT_SECONDS = 1


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


def serve() -> None:
    """Consume the queue and reconcile the index until stopped."""
    os.environ.update(local_stage_environment())
    sys.path.insert(0, str(PROJECT_DIR))
    import boto3

    from chalicelib.entrypoints.functions import followers_reconcile, push_work

    region = os.environ.get("AWS_REGION", "us-east-1")
    sqs = boto3.session.Session().client("sqs", region_name=region)
    url = sqs.get_queue_url(QueueName=os.environ["PUSH_QUEUE"])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    reconciled_at = 0.0
    while True:
        if time.monotonic() - reconciled_at > RECONCILE_SECONDS:
            followers_reconcile(scheduled_event(region), LambdaContext(300))
            reconciled_at = time.monotonic()
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
