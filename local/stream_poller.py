"""Reads the table's stream locally and hands batches to the Lambda's own handler.

``chalice local`` runs HTTP routes only, so the local stack needs this to play the
part of Lambda's event-source mapping: same handler, same event shape, batches of
up to 100 records per shard, and a failed batch is retried from the same position.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]


class LocalLambdaContext:
    """The bits of a Lambda context the handlers use."""

    def __init__(self, function_name: str, timeout_seconds: float) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before this invocation would time out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class StreamPoller:
    """Polls every shard of a DynamoDB stream and invokes ``handler`` per batch."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        handler: Handler,
        *,
        batch_size: int = 100,
        function_name: str = "socialdesk-local-sync_tickets",
        timeout_seconds: float = 300.0,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._client = streams_client
        self.stream_arn = stream_arn
        self._handler = handler
        self.batch_size = batch_size
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self._on_error = on_error
        self._iterators: dict[str, str | None] = {}
        self.failures = 0
        self.records_handled = 0

    def _refresh_shards(self) -> None:
        description = self._client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Read what is new on every shard and hand it to the handler; returns records handled."""
        self._refresh_shards()
        handled = 0
        for shard_id, iterator in list(self._iterators.items()):
            if iterator is None:
                continue  # closed shard, fully read
            response = self._client.get_records(ShardIterator=iterator, Limit=self.batch_size)
            records = response.get("Records", [])
            if records:
                context = LocalLambdaContext(self.function_name, self.timeout_seconds)
                try:
                    self._handler({"Records": records}, context)
                except Exception as exc:  # Lambda retries the same batch: keep the old iterator
                    self.failures += 1
                    if self._on_error:
                        self._on_error(exc)
                    continue
                handled += len(records)
            self._iterators[shard_id] = response.get("NextShardIterator")
        self.records_handled += handled
        return handled

    def drain(self, *, max_rounds: int = 1000) -> int:
        """Poll until a round finds nothing new (tests use this to settle the sync)."""
        total = 0
        for _ in range(max_rounds):
            handled = self.poll_once()
            total += handled
            if handled == 0:
                return total
        return total

    def run(self, stop: threading.Event, *, interval: float = 0.5) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            try:
                if self.poll_once() == 0:
                    stop.wait(interval)
            except Exception as exc:  # a stream read failed: report it, keep going
                if self._on_error:
                    self._on_error(exc)
                stop.wait(interval)
