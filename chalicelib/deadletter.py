"""The dead-letter queue where the ticket sync parks messages it cannot deliver.

Chalice cannot give a DynamoDB stream mapping an on-failure destination or
bisect-on-error, so the sync handler parks a failing message here itself instead
of raising: a raise would block the whole shard for up to 24 hours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class ParkedMessage:
    """One message waiting in the dead-letter queue."""

    conversation_key: str
    message_id: str
    reason: str
    receipt_handle: str


class DeadLetterQueue:
    """An SQS queue of parked messages (the messages themselves stay in the table)."""

    def __init__(self, queue_url: str, client: SQSClient) -> None:
        self.queue_url = queue_url
        self._client = client

    def park(self, conversation_key: str, message_id: str, reason: str) -> None:
        """Put a message reference on the queue."""
        body = {
            "conversation_key": conversation_key,
            "message_id": message_id,
            "reason": reason[:1000],
            "parked_at": datetime.now(timezone.utc).isoformat(),
        }
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
                )
            )
        return parked

    def delete(self, parked: ParkedMessage) -> None:
        """Remove a message from the queue once it reached its ticket."""
        self._client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=parked.receipt_handle)

    def depth(self) -> int:
        """Approximate number of messages waiting (visible and in flight)."""
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
