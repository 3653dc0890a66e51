"""The local stream poller gathers batches as Lambda's event source mapping does."""

from __future__ import annotations

from typing import Any

import pytest

from local.stream_poller import GET_RECORDS_LIMIT, StreamPoller


class FakeStream:
    """One shard whose records appear at given times (of the fake clock); reads are recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.limits: list[int] = []

    def add(self, count: int, *, at: float = 0.0, text: str = "x") -> None:
        start = len(self.arrivals)
        self.arrivals += [(at, {"eventName": "INSERT", "n": start + n, "text": text}) for n in range(count)]

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"StreamDescription": {"Shards": [{"ShardId": "shard-1"}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:  # noqa: N803
        assert 1 <= Limit <= GET_RECORDS_LIMIT  # the API refuses more
        self.limits.append(Limit)
        position = int(ShardIterator)
        visible = [record for at, record in self.arrivals if at <= self.now]
        found = visible[position : position + Limit]
        return {"Records": found, "NextShardIterator": str(position + len(found))}


def _poller(stream: FakeStream, handled: list[list[int]], **options: Any) -> StreamPoller:
    def handler(event: dict[str, Any], context: Any) -> None:
        handled.append([record["n"] for record in event["Records"]])

    return StreamPoller(stream, "arn", handler, clock=lambda: stream.now, sleep=stream.sleep, **options)


def test_without_a_window_a_batch_is_what_one_read_finds() -> None:
    stream, handled = FakeStream(), []
    stream.add(30)
    stream.add(30, at=1.0)
    poller = _poller(stream, handled, batch_size=1000)
    assert poller.poll_once() == 30 and stream.now == 0.0  # no waiting for more
    stream.now = 1.0
    assert poller.poll_once() == 30
    assert [len(batch) for batch in handled] == [30, 30]


def test_a_short_batch_waits_for_the_window_and_takes_what_arrived_meanwhile() -> None:
    stream, handled = FakeStream(), []
    stream.add(40)
    stream.add(25, at=0.8)
    stream.add(10, at=2.5)  # after the window: the next batch's
    poller = _poller(stream, handled, batch_size=1000, batching_window_seconds=2)
    assert poller.poll_once() == 65
    assert 2.0 <= stream.now < 2.5
    assert poller.poll_once() == 0  # nothing new yet: nothing invoked, nothing waited for
    stream.now = 3.0
    assert poller.poll_once() == 10
    assert [len(batch) for batch in handled] == [65, 10]


def test_a_full_batch_goes_at_once_and_is_read_a_thousand_records_at_a_time() -> None:
    stream, handled = FakeStream(), []
    stream.add(2500)
    poller = _poller(stream, handled, batch_size=2000, batching_window_seconds=2)
    assert poller.poll_once() == 2000 and stream.now == 0.0  # full before the window ended
    assert max(stream.limits) == GET_RECORDS_LIMIT
    assert poller.poll_once() == 500
    assert handled[0] == list(range(2000)) and handled[1] == list(range(2000, 2500))  # stream order, nothing lost


def test_a_batch_stops_before_the_invocation_payload_limit_and_the_rest_comes_next() -> None:
    stream, handled = FakeStream(), []
    stream.add(10, text="y" * 1000)
    poller = _poller(stream, handled, batch_size=1000, max_payload_bytes=4500)
    assert poller.poll_once() == 4
    assert poller.drain() == 6
    assert [n for batch in handled for n in batch] == list(range(10))


def test_a_failed_batch_is_retried_as_it_was() -> None:
    stream = FakeStream()
    stream.add(5)
    calls: list[list[int]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append([record["n"] for record in event["Records"]])
        if len(calls) == 1:
            raise RuntimeError("helpdesk down")

    poller = StreamPoller(stream, "arn", handler, clock=lambda: stream.now, sleep=stream.sleep, batch_size=1000)
    assert poller.poll_once() == 0 and poller.failures == 1
    stream.add(5)  # arrived meanwhile: not part of the retried batch
    assert poller.poll_once() == 5
    assert poller.poll_once() == 5
    assert calls == [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


@pytest.mark.parametrize("window", [0, 2])
def test_an_empty_stream_invokes_nothing(window: float) -> None:
    stream, handled = FakeStream(), []
    assert _poller(stream, handled, batching_window_seconds=window).drain() == 0
    assert handled == [] and stream.now == 0.0
