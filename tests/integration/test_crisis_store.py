"""Crisis state in the real table layout (moto server, table from ``infra/template.json``).

The conditional writes are what keep concurrent Lambdas and stream retries from counting a
complaint twice or starting two crises for one group: each test here runs them against
DynamoDB's semantics as moto implements them, over real HTTP.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from chalicelib.crisis import CrisisDetector, CrisisSettings, DynamoCrisisStore, Outcome, Status
from chalicelib.crisis.model import Crisis, Origin
from chalicelib.crisis.similarity import Centroid, features
from chalicelib.crisis.store import ACTIVE_INDEX_PK, INDEX, account_pk
from chalicelib.crisis.window import WindowEntry
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.store import author_pk
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


def test_a_complaint_is_recorded_once_and_joins_one_crisis_once(table: str) -> None:
    store = store_for(table)
    assert store.record("page-1", entry(1), expires_at=T0 + 90_000)
    assert not store.record("page-1", entry(1), expires_at=T0 + 90_000)
    assert store.create(crisis("c-1")) and store.create(crisis("c-2"))
    assert not store.create(crisis("c-1"))
    assert store.mark("page-1", entry(1), "c-1")
    assert not store.mark("page-1", entry(1), "c-1") and not store.mark("page-1", entry(1), "c-2")
    assert not store.mark("page-1", entry(2), "c-1")  # never recorded: nothing to mark
    assert store.get_entry("page-1", entry(1)).crisis_id == "c-1"
    [held] = store.entries("page-1", since=T0 - 1)
    assert held.stems == features(OUTAGE[0]) and held.language == "en" and held.crisis_id == "c-1"
    assert store.entries("page-1", since=T0 + 1) == []
    # recorded straight into a crisis (it was like an active one): already a member
    member = replace(entry(3, T0 + 5), crisis_id="c-2")
    assert store.record("page-1", member, expires_at=T0 + 90_000)
    assert not store.mark("page-1", member, "c-1") and store.get_entry("page-1", member).crisis_id == "c-2"


def test_counts_per_platform_recount_and_ending(table: str) -> None:
    store = store_for(table)
    store.create(crisis())
    store.add_members("page-1", "c-1", {"x": 2, "whatsapp": 1}, seen_at=T0 + 60)
    counted = store.add_members("page-1", "c-1", {"x": 1}, seen_at=T0 + 120)
    assert counted.size == 4 and counted.platform_counts == {"x": 3, "whatsapp": 1} and counted.last_seen == T0 + 120
    assert store.recount("page-1", "c-1", {"x": 2}, seen_at=T0 + 180).size == 4  # never lowers the counts
    assert store.recount("page-1", "c-1", {"x": 4, "whatsapp": 1}, seen_at=T0 + 180).size == 5

    assert store.end("page-1", "c-1", ended_at=T0 + 200, reason="quiet", quiet_before=T0 + 100) is None  # not quiet
    assert [c.crisis_id for c in store.active()] == ["c-1"]
    ended = store.end("page-1", "c-1", ended_at=T0 + 9000, reason="quiet", quiet_before=T0 + 8000)
    assert ended is not None and ended.status is Status.ENDED and ended.end_reason == "quiet"
    assert store.end("page-1", "c-1", ended_at=T0 + 9001, reason="again", quiet_before=None) is None
    assert store.active() == [] and store.active("page-1") == []
    assert store.get("page-1", "c-1").size == 5


def test_the_start_lock_has_one_holder_until_released_or_lapsed(table: str) -> None:
    store = store_for(table)
    assert store.acquire("page-1", "a", seconds=30, now=T0)
    assert not store.acquire("page-1", "b", seconds=30, now=T0 + 1)
    assert store.acquire("page-1", "b", seconds=30, now=T0 + 31)  # a's lapsed (a crashed holder)
    store.release("page-1", "a")  # not a's any more: b keeps it
    assert not store.acquire("page-1", "a", seconds=30, now=T0 + 32)
    store.release("page-1", "b")
    assert store.acquire("page-1", "a", seconds=30, now=T0 + 33)


def test_items_stay_bounded_expire_and_are_found_by_their_author(table: str) -> None:
    client = boto3.client("dynamodb")
    detector = CrisisDetector(store_for(table), SETTINGS, clock=lambda: T0 + 3600)
    for i in range(60):
        detector.observe(complaint(i, T0 + i * 30))
    [active] = detector.active("page-1")
    assert active.size == 60 and sum(active.platform_counts.values()) == 60

    items = client.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": account_pk("page-1")}},
    )["Items"]
    incident = next(item for item in items if item["sk"]["S"].startswith("INCIDENT#"))
    assert len(str(incident)) < 4000  # counts and a centroid, no member list
    entries = [item for item in items if item["sk"]["S"].startswith("W#")]
    assert len(entries) == 60
    assert all(T0 + 86_400 < float(item["expires_at"]["N"]) < T0 + 4 * 86_400 for item in entries)
    # a data-deletion request finds a person's complaints through the by-author index
    found = client.query(
        TableName=table,
        IndexName=INDEX,
        KeyConditionExpression="gsi1pk = :author",
        ExpressionAttributeValues={":author": {"S": author_pk("x", "person-0")}},
    )["Items"]
    assert [item["pk"]["S"] for item in found] == [account_pk("page-1")]
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
            decisions[index] = [detectors[index].observe(m) for m in feeds[index]]
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
    reported = [m.message_id for ds in decisions for d in ds if not d.repeated for m in d.members]
    assert sorted(reported) == sorted(m.message_id for m in messages)  # each handed to the sync once
    assert [m.message_id for m in detectors[0].members("page-1", only.crisis_id)] == [m.message_id for m in messages]
