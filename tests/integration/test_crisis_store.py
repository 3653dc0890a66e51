"""Crisis state in the real table layout (moto server, table from ``infra/template.json``).

The conditional writes are what keep concurrent Lambdas and stream retries from counting a
complaint twice or starting two crises for one group: each test here runs them against
DynamoDB's semantics as moto implements them, over real HTTP.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.crisis import CrisisDetector, CrisisSettings, DynamoCrisisStore, Outcome, Status
from chalicelib.crisis.model import Crisis, Origin
from chalicelib.crisis.similarity import Centroid, features
from chalicelib.crisis.store import ACTIVE_INDEX_PK, INDEX, account_pk
from chalicelib.crisis.window import WindowEntry
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from local.resources import create_local_resources

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
SETTINGS = CrisisSettings(refresh_seconds=0, active_seconds=0)
_stages = itertools.count(1)

OUTAGE = [
    "your app keeps crashing when I try to check in",
    "App crashed again, can't check in for my flight",
    "is the app down? check in fails every time",
    "cannot check in, the app just crashes",
    "check in through the app is impossible, it crashes",
    "the app is down and I need to check in",
]
PLATFORMS = [Platform.X, Platform.FACEBOOK, Platform.INSTAGRAM, Platform.WHATSAPP, Platform.TELEGRAM]


@pytest.fixture
def table(moto_url: str) -> Iterator[str]:
    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    resources = create_local_resources(
        dynamodb=dynamodb, sqs=sqs, template_path=ROOT / "infra" / "template.json", stage=f"crisis{next(_stages)}"
    )
    yield resources.table_name
    dynamodb.delete_table(TableName=resources.table_name)


def store_for(table: str) -> DynamoCrisisStore:
    return DynamoCrisisStore(table, boto3.client("dynamodb"))


def complaint(i: int, at: float, *, text: str | None = None) -> SocialMessage:
    platform = PLATFORMS[i % len(PLATFORMS)]
    return SocialMessage(
        platform=platform,
        kind=Kind.COMMENT,
        direction=Direction.INBOUND,
        message_id=f"msg-{i}",
        conversation_key=f"{platform.value}:thread:msg-{i}",
        account_id="page-1",
        author=Author(platform_id=f"person-{i}"),
        text=text or OUTAGE[i % len(OUTAGE)],
        created_at=datetime.fromtimestamp(at, tz=UTC),
    )


def entry(i: int, at: float = T0) -> WindowEntry:
    return WindowEntry(f"msg-{i}", f"x:thread:msg-{i}", "x", f"person-{i}", at, features(OUTAGE[0]), "en", OUTAGE[0])


def crisis(crisis_id: str = "c-1") -> Crisis:
    return Crisis("page-1", crisis_id, Origin.DETECTED, Centroid.of([features(OUTAGE[0])]), T0, T0, T0, language="en")


def counting(client: Any) -> Counter[str]:
    """The writes ``client`` makes, by operation."""
    writes: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        if model.name in {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}:
            writes[model.name] += 1

    client.meta.events.register("before-parameter-build.dynamodb", count)
    return writes


def test_a_batch_of_complaints_is_one_write_per_quarter_hour_and_a_redelivery_counts_nothing(table: str) -> None:
    store = store_for(table)
    writes = counting(store._client)
    batch = [entry(i, T0 + i) for i in range(150)]  # one quarter hour
    assert store.record_many("page-1", batch, keep_seconds=90_000) == {e.key for e in batch}
    assert sum(writes.values()) == 2  # 100 complaints an update
    assert store.record_many("page-1", [entry(i, T0 + i) for i in range(140, 160)], keep_seconds=90_000) == {
        f"x#msg-{i}" for i in range(150, 160)
    }  # redelivered with ten new ones: only those are new
    held = store.entries("page-1", since=T0 - 1)
    assert len(held) == 160 and held[0].stems == features(OUTAGE[0]) and held[0].language == "en"
    assert all(e.text == "" and e.author_id == "" for e in held)  # no customer text or author id in the table
    assert len(store.entries("page-1", since=T0 + 100)) == 60
    assert store.create(crisis("c-1")) and not store.create(crisis("c-1"))
    store.mark_many("page-1", held[:5], "c-1")
    assert {e.message_id for e in store.entries("page-1", since=0) if e.crisis_id == "c-1"} == {e.message_id for e in held[:5]}
    # recorded straight into a crisis (it was like an active one): already a member
    member = replace(entry(500, T0 + 5), crisis_id="c-2")
    store.record_many("page-1", [member], keep_seconds=90_000)
    assert next(e for e in store.entries("page-1", since=0) if e.message_id == "msg-500").crisis_id == "c-2"


def test_a_batch_across_a_quarter_hour_is_one_write_and_read_back_from_any_moment(table: str) -> None:
    store = store_for(table)
    writes = counting(store._client)
    start = T0 + 900 - 60  # the last minute of one quarter hour and the first of the next
    batch = [entry(i, start + i * 2) for i in range(60)]
    assert store.record_many("page-1", batch, keep_seconds=90_000) == {e.key for e in batch}
    assert sum(writes.values()) == 1
    for since in (start - 1, start + 30, T0 + 900, start + 100):
        assert {e.key for e in store.entries("page-1", since=since)} == {e.key for e in batch if e.created_at >= since}
    # redelivered (the same records): the same page, nothing new
    assert store.record_many("page-1", [entry(i, start + i * 2) for i in range(60)], keep_seconds=90_000) == set()
    assert len(store.entries("page-1", since=0)) == 60


def test_a_full_page_overflows_to_the_next(table: str) -> None:
    store = store_for(table)
    batch = [entry(i, T0 + i % 800) for i in range(700)]
    assert len(store.record_many("page-1", batch, keep_seconds=90_000)) == 700
    items = boto3.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :w)",
        ExpressionAttributeValues={":pk": {"S": account_pk("page-1")}, ":w": {"S": "W#"}},
    )["Items"]
    assert [int(item["entry_count"]["N"]) for item in items] == [300, 300, 100]
    assert all(len(str(item)) < 100_000 for item in items)  # far under DynamoDB's 400 KB
    assert all(T0 + 86_400 < float(item["expires_at"]["N"]) < T0 + 4 * 86_400 for item in items)
    assert len(store.entries("page-1", since=0)) == 700


def test_counts_per_platform_and_ending(table: str) -> None:
    store = store_for(table)
    store.create(crisis())
    store.add_members("page-1", "c-1", {"x": 2, "whatsapp": 1}, seen_at=T0 + 60)
    counted = store.add_members("page-1", "c-1", {"x": 1}, seen_at=T0 + 120)
    assert counted.size == 4 and counted.platform_counts == {"x": 3, "whatsapp": 1} and counted.last_seen == T0 + 120

    assert store.end("page-1", "c-1", ended_at=T0 + 200, reason="quiet", quiet_before=T0 + 100) is None  # not quiet
    assert [c.crisis_id for c in store.active()] == ["c-1"]
    ended = store.end("page-1", "c-1", ended_at=T0 + 9000, reason="quiet", quiet_before=T0 + 8000)
    assert ended is not None and ended.status is Status.ENDED and ended.end_reason == "quiet"
    assert store.end("page-1", "c-1", ended_at=T0 + 9001, reason="again", quiet_before=None) is None
    assert store.active() == [] and store.active("page-1") == []
    assert store.get("page-1", "c-1").size == 4


def test_the_start_lock_has_one_holder_until_released_or_lapsed(table: str) -> None:
    store = store_for(table)
    assert store.acquire("page-1", "a", seconds=30, now=T0)
    assert not store.acquire("page-1", "b", seconds=30, now=T0 + 1)
    assert store.acquire("page-1", "b", seconds=30, now=T0 + 31)  # a's lapsed (a crashed holder)
    store.release("page-1", "a")  # not a's any more: b keeps it
    assert not store.acquire("page-1", "a", seconds=30, now=T0 + 32)
    store.release("page-1", "b")
    assert store.acquire("page-1", "a", seconds=30, now=T0 + 33)


def test_a_crisis_in_one_stream_batch_costs_a_handful_of_writes(table: str) -> None:
    client = boto3.client("dynamodb")
    store = DynamoCrisisStore(table, client)
    writes = counting(client)
    detector = CrisisDetector(store, SETTINGS, clock=lambda: T0 + 3600)
    for i in range(60):
        detector.observe(complaint(i, T0 + i * 10))  # ten minutes: one quarter hour
    detector.flush()
    [active] = detector.active("page-1")
    assert active.size == 60 and sum(active.platform_counts.values()) == 60
    # the lock taken and given back, the crisis, the complaints (one page), the crisis's count
    assert sum(writes.values()) == 5, writes
    items = client.query(
        TableName=table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": account_pk("page-1")}}
    )["Items"]
    incident = next(item for item in items if item["sk"]["S"].startswith("INCIDENT#"))
    assert len(str(incident)) < 4000  # counts and a centroid, no member list
    listed = client.query(
        TableName=table,
        IndexName=INDEX,
        KeyConditionExpression="gsi1pk = :active",
        ExpressionAttributeValues={":active": {"S": ACTIVE_INDEX_PK}},
    )["Items"]
    assert [item["sk"]["S"] for item in listed] == [incident["sk"]["S"]]


def test_concurrent_observers_and_redeliveries_start_one_crisis_and_count_each_complaint_once(table: str) -> None:
    messages = [complaint(i, T0 + i * 20) for i in range(45)]
    unrelated = [
        complaint(100 + i, T0 + i * 20 + 10, text=f"my bag {word} never arrived")
        for i, word in enumerate(["blue", "red", "green", "small", "big"])
    ]
    clock_now = T0 + 3600
    # Four Lambdas, each with its own memory; every record reaches two of them (a batch
    # retried elsewhere) and one of them twice, in shuffled orders.
    detectors = [CrisisDetector(store_for(table), SETTINGS, clock=lambda: clock_now) for _ in range(4)]
    feeds: list[list[SocialMessage]] = [[] for _ in detectors]
    rng = random.Random(5)
    for message in messages + unrelated:
        first, second = rng.sample(range(len(detectors)), 2)
        feeds[first] += [message, message]
        feeds[second].append(message)
    for feed in feeds:
        feed.sort(key=lambda m: (m.created_at, rng.random()))  # roughly in time order, as a stream shard hands it
    decisions: list[list[object]] = [[] for _ in detectors]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            for start in range(0, len(feeds[index]), 10):  # stream batches of ten records
                decisions[index] += [detectors[index].observe(m) for m in feeds[index][start : start + 10]]
                detectors[index].flush()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(detectors))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    store = store_for(table)
    [only] = store.active("page-1")  # one crisis, however many Lambdas saw the spike
    started = [d for ds in decisions for d in ds if d.outcome is Outcome.STARTED and not d.repeated]
    assert len(started) == 1 and started[0].crisis.crisis_id == only.crisis_id
    members = [e for e in store.entries("page-1", since=0) if e.crisis_id == only.crisis_id]
    assert {e.message_id for e in members} == {m.message_id for m in messages}  # the outage, not the bags
    assert only.size == len(members) == 45  # each complaint counted once
    assert sum(only.platform_counts.values()) == 45
    # Each handed to the sync as a member (a Lambda that had not read another's batch yet may hand
    # it again: the sync links its ticket again, which changes nothing).
    reported = {m.message_id for ds in decisions for d in ds for m in d.members}
    assert reported == {m.message_id for m in messages}
    assert [m.message_id for m in detectors[0].members("page-1", only.crisis_id)] == [m.message_id for m in messages]
