"""The push work queue (SQS): send work items, put one off for later.

The queue is named in the stage's settings (PUSH_QUEUE); its URL is looked up
once per process. Sending is SendMessageBatch, ten messages a call, and a
message SQS did not take is an error naming it, so a push is never half-queued
without the caller knowing (the caller fails, and is retried, rather than
answering that the work is queued).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from chalicelib.aws import clients
from chalicelib.core.errors import AwsCallError, UpdateError

SEND_BATCH = 10
_urls: dict[str, str] = {}
_urls_lock = threading.Lock()


class QueueMissingError(UpdateError):
    """The stage names a queue that does not exist."""

    retryable = True


def url_of(sqs: Any, name: str) -> str:
    """The queue's URL (GetQueueUrl, once per process)."""
    with _urls_lock:
        if name in _urls:
            return _urls[name]
    response = clients.call(
        sqs.get_queue_url,
        "GetQueueUrl",
        {
            "AWS.SimpleQueueService.NonExistentQueue": lambda _: QueueMissingError(
                f"the push queue '{name}' (PUSH_QUEUE) does not exist in this account and region"
            ),
            "QueueDoesNotExist": lambda _: QueueMissingError(
                f"the push queue '{name}' (PUSH_QUEUE) does not exist in this account and region"
            ),
        },
        QueueName=name,
    )
    with _urls_lock:
        _urls[name] = str(response["QueueUrl"])
        return _urls[name]


def forget_urls() -> None:
    """Forget the looked-up URLs (tests start each AWS world afresh)."""
    with _urls_lock:
        _urls.clear()


def send(sqs: Any, queue_url: str, bodies: Sequence[str]) -> None:
    """Put every body on the queue; AwsCallError (retryable) names any message SQS did not take."""
    for start in range(0, len(bodies), SEND_BATCH):
        chunk = bodies[start : start + SEND_BATCH]
        response = clients.call(
            sqs.send_message_batch,
            "SendMessageBatch",
            {},
            QueueUrl=queue_url,
            Entries=[{"Id": str(index), "MessageBody": body} for index, body in enumerate(chunk)],
        )
        failed = response.get("Failed") or []
        if failed:
            reasons = ", ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed[:3])
            raise AwsCallError("SendMessageBatch", f"SendMessageBatch did not queue {len(failed)} item(s): {reasons}")


# SQS delays a message at most 15 minutes; a longer wait is made of several.
MAX_DELAY_SECONDS = 900


def send_later(sqs: Any, queue_url: str, body: str, seconds: int) -> None:
    """Put one body on the queue, delivered after `seconds` (at most MAX_DELAY_SECONDS)."""
    clients.call(
        sqs.send_message,
        "SendMessage",
        {},
        QueueUrl=queue_url,
        MessageBody=body,
        DelaySeconds=max(0, min(seconds, MAX_DELAY_SECONDS)),
    )


def retry_in(sqs: Any, queue_url: str, receipt_handle: str, seconds: int) -> None:
    """Make a received message visible again after `seconds` (the next try of a failed work item)."""
    clients.call(
        sqs.change_message_visibility,
        "ChangeMessageVisibility",
        {},
        QueueUrl=queue_url,
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=max(0, min(seconds, 12 * 3600)),
    )
