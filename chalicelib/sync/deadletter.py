"""The dead-letter queue: a notice for every message the ticket sync parks after it failed.

Chalice cannot give a DynamoDB stream mapping an on-failure destination or
bisect-on-error, so the sync handler parks a failing message itself instead of
raising: a raise would block the whole shard for up to 24 hours. The parked message
is recorded in the table first (the redrive's sweep finds it there even if its notice
is lost); the queue is what operators watch (its depth) and what wakes the redrive. A
message parked only because an earlier one of its conversation is (it waits behind it)
gets no notice: the table lists it, and it goes when its conversation does.
An ``unrecorded`` notice is the exception: its conversation could not be written, so
the notice is the only record and is deleted only once the message is delivered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# What SQS answers for a receipt handle of a notice already deleted or received again elsewhere.
_STALE_RECEIPT = frozenset(
    {"ReceiptHandleIsInvalid", "AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight", "InvalidParameterValue"}
)


@dataclass(frozen=True)
class ParkedMessage:
    """One message waiting in the dead-letter queue."""

    conversation_key: str
    message_id: str
    reason: str
    receipt_handle: str
    unrecorded: bool = False


class DeadLetterQueue:
    """An SQS queue of parked messages (the messages themselves stay in the table)."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self.queue_url = queue_url
        self._client = client

    def park(self, conversation_key: str, message_id: str, reason: str, *, unrecorded: bool = False) -> None:
        """Put a message reference on the queue."""
        body: dict[str, object] = {
            "conversation_key": conversation_key,
            "message_id": message_id,
            "reason": reason[:1000],
            "parked_at": datetime.now(timezone.utc).isoformat(),
        }
        if unrecorded:
            body["unrecorded"] = True
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body))

    def receive(self, *, max_messages: int = 10, wait_seconds: int = 0, visibility_timeout: int = 60) -> list[ParkedMessage]:
        """Take up to ``max_messages`` parked messages (they reappear unless deleted)."""
        response = self._client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(max_messages, 10)),
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
        )
        parked = []
        for message in response.get("Messages", []):
            body = json.loads(message["Body"])
            parked.append(
                ParkedMessage(
                    conversation_key=body["conversation_key"],
                    message_id=body["message_id"],
                    reason=body.get("reason", ""),
                    receipt_handle=message["ReceiptHandle"],
                    unrecorded=bool(body.get("unrecorded")),
                )
            )
        return parked

    def delete(self, parked: ParkedMessage) -> None:
        """Remove a message from the queue once it reached its ticket."""
        self._settle(lambda: self._client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=parked.receipt_handle))

    def release(self, parked: ParkedMessage) -> None:
        """Make a notice visible again at once (its message is still parked): the next run sees it."""
        self._settle(
            lambda: self._client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=parked.receipt_handle, VisibilityTimeout=0
            )
        )

    @staticmethod
    def _settle(call: Callable[[], object]) -> None:
        """Run a call on a received notice. Another redrive may have received the same notice
        since (its visibility ran out) and deleted it: our receipt is then stale, and there
        is nothing left to do."""
        try:
            call()
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in _STALE_RECEIPT:
                raise

    def depth(self) -> int:
        """Approximate number of messages waiting (visible and in flight)."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
