"""Reads the table's stream locally and hands batches to the Lambda's own handler.

``chalice local`` runs HTTP routes only, so the local stack needs this to play the
part of Lambda's event-source mapping: same handler, same event shape, and a failed
batch is retried as it was. A batch is gathered as the event source mapping gathers it
(``batch_size``, ``batching_window_seconds``: ``MaximumBatchingWindowInSeconds``): records
are read (at most 1,000 a ``GetRecords``, the API's limit, four reads a second) until the
batch holds ``batch_size`` records, or the window has passed since its first record was
read, or one more record would take the event past Lambda's 6 MB invocation payload,
whichever comes first. With no window (Lambda's default) a batch is what one read returns.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

GET_RECORDS_LIMIT = 1000  # DynamoDB Streams' GetRecords answers at most this many records
READ_INTERVAL_SECONDS = 0.25  # Lambda reads a DynamoDB stream's shard four times a second
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit


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
        batching_window_seconds: float = 0.0,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        function_name: str = "socialdesk-local-sync_tickets",
        timeout_seconds: float = 300.0,
        on_error: Callable[[Exception], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = streams_client
        self.stream_arn = stream_arn
        self._handler = handler
        self.batch_size = batch_size
        self.batching_window_seconds = batching_window_seconds
        self.max_payload_bytes = max_payload_bytes
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self._on_error = on_error
        self._clock, self._sleep = clock, sleep
        self._iterators: dict[str, str | None] = {}
        self._read: dict[str, list[dict[str, Any]]] = {}  # per shard: records read, in no batch yet
        self._failed: dict[str, list[dict[str, Any]]] = {}  # per shard: a batch that failed, retried as it was
        self.failures = 0
        self.records_handled = 0
        self.batches: list[int] = []  # records per batch handed to the handler (retries included)

    def _refresh_shards(self) -> None:
        description = self._client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._client.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Hand every shard's next batch to the handler; returns records handled. A batch short
        of ``batch_size`` is waited for up to the batching window, as Lambda does."""
        self._refresh_shards()
        handled = 0
        for shard_id in list(self._iterators):
            records = self._next_batch(shard_id)
            if not records:
                continue
            context = LocalLambdaContext(self.function_name, self.timeout_seconds)
            self.batches.append(len(records))
            try:
                self._handler({"Records": records}, context)
            except Exception as exc:  # Lambda retries the same batch
                self._failed[shard_id] = records
                self.failures += 1
                if self._on_error:
                    self._on_error(exc)
                continue
            handled += len(records)
        self.records_handled += handled
        return handled

    def _next_batch(self, shard_id: str) -> list[dict[str, Any]]:
        """The shard's next batch: the one that failed, else records gathered (see the module docstring)."""
        if shard_id in self._failed:
            return self._failed.pop(shard_id)
        read = self._read.setdefault(shard_id, [])
        started = self._clock() if read else None
        while len(read) < self.batch_size:
            found = self._get_records(shard_id, self.batch_size - len(read))
            read.extend(found)
            if read and started is None:
                started = self._clock()
            if started is None:
                return []  # nothing new: nothing to invoke
            left = self.batching_window_seconds - (self._clock() - started)
            if left <= 0:
                break
            if not found:
                self._sleep(min(READ_INTERVAL_SECONDS, left))
        batch: list[dict[str, Any]] = []
        size = 2  # the event's {"Records": [...]} around them
        for record in read[: self.batch_size]:
            size += len(json.dumps(record, default=str)) + 2
            if batch and size > self.max_payload_bytes:
                break
            batch.append(record)
        del read[: len(batch)]
        return batch

    def _get_records(self, shard_id: str, wanted: int) -> list[dict[str, Any]]:
        iterator = self._iterators.get(shard_id)
        if iterator is None:
            return []  # closed shard, fully read
        response = self._client.get_records(ShardIterator=iterator, Limit=min(wanted, GET_RECORDS_LIMIT))
        self._iterators[shard_id] = response.get("NextShardIterator")
        return list(response.get("Records", []))

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
