"""Telegram gap detection: the last update_id per bot, advanced atomically in DynamoDB (moto, in-process)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.channels.telegram.gaps import TELEGRAM_RESTART_JUMP, TelegramGapTracker, record_update_id, telegram_updates_key
from chalicelib.store import MessageStore

TABLE = "socialdesk-test-messages"
BOT = "7000000001"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def tracker(dynamodb: Any) -> TelegramGapTracker:
    return TelegramGapTracker(TABLE, dynamodb)


def test_first_update_is_no_gap(tracker: TelegramGapTracker) -> None:
    assert tracker.record(BOT, 500) == 0
    assert tracker.last(BOT) == 500


def test_consecutive_updates_are_no_gap(tracker: TelegramGapTracker) -> None:
    assert [tracker.record(BOT, n) for n in (500, 501, 502)] == [0, 0, 0]


def test_a_jump_counts_the_missing_ids(tracker: TelegramGapTracker) -> None:
    tracker.record(BOT, 500)
    assert tracker.record(BOT, 504) == 3  # 501, 502, 503 never arrived
    gap = tracker.observe(BOT, 505)
    assert (gap.missing, gap.previous, gap.restarted, gap.stale) == (0, 504, False, False)


def test_duplicates_and_late_arrivals_are_stale_and_never_move_back(tracker: TelegramGapTracker) -> None:
    tracker.record(BOT, 500)
    tracker.record(BOT, 503)
    for late in (503, 502, 400):
        gap = tracker.observe(BOT, late)
        assert gap.stale and gap.missing == 0
    assert tracker.last(BOT) == 503


def test_a_huge_forward_jump_is_a_restart_not_a_gap(tracker: TelegramGapTracker) -> None:
    tracker.record(BOT, 500)
    gap = tracker.observe(BOT, 500 + TELEGRAM_RESTART_JUMP + 1)
    assert gap.restarted and gap.missing == 0
    assert tracker.record(BOT, 500 + TELEGRAM_RESTART_JUMP + 3) == 1


def test_a_restart_to_a_lower_random_id_is_followed(tracker: TelegramGapTracker) -> None:
    """After a week of silence Telegram may restart below the old id; tracking must resume there."""
    tracker.record(BOT, 900_000_000)
    gap = tracker.observe(BOT, 12_345)
    assert gap.restarted and gap.missing == 0
    assert tracker.last(BOT) == 12_345
    assert tracker.record(BOT, 12_348) == 2


def test_bots_are_tracked_separately(tracker: TelegramGapTracker) -> None:
    tracker.record(BOT, 10)
    tracker.record("other", 1000)
    assert tracker.record(BOT, 11) == 0
    assert tracker.last("other") == 1000


def test_record_update_id_accepts_a_tracker_a_store_or_a_client(dynamodb: Any) -> None:
    store = MessageStore(TABLE, dynamodb)
    assert record_update_id(store, BOT, 100) == 0
    assert record_update_id(TelegramGapTracker(TABLE, dynamodb), BOT, 102) == 1
    assert record_update_id(dynamodb, BOT, 105, table_name=TABLE) == 2
    with pytest.raises(ValueError):
        record_update_id(dynamodb, BOT, 106)


def test_the_item_is_marked_so_the_sync_ignores_it(tracker: TelegramGapTracker, dynamodb: Any) -> None:
    tracker.record(BOT, 7)
    item = dynamodb.get_item(TableName=TABLE, Key=telegram_updates_key(BOT))["Item"]
    assert item["item_type"]["S"] == "telegram_updates"
    assert item["last"]["N"] == "7"


@pytest.mark.parametrize("bad", [-1, "5", 1.5, True])
def test_invalid_update_ids_are_refused(tracker: TelegramGapTracker, bad: Any) -> None:
    with pytest.raises(ValueError):
        tracker.record(BOT, bad)


@pytest.mark.parametrize("seed", range(5))
def test_reordered_deliveries_never_count_the_same_gap_twice(tracker: TelegramGapTracker, seed: int) -> None:
    """Updates delivered on parallel connections arrive shuffled: every id once; the total
    reported missing stays within what reordering can make look missing, and the last
    id is the highest. (Arrival order is shuffled in one thread: moto's conditional
    writes are not atomic across threads, DynamoDB's are.)"""
    tracker.record(BOT, 1000)
    ids = list(range(1001, 1041))
    random.Random(seed).shuffle(ids)
    results = [tracker.record(BOT, update_id) for update_id in ids]
    assert tracker.last(BOT) == 1040
    # Conditional writes make each reported range disjoint: the sum can never exceed
    # the span of ids (40 ids, none really missing -> at most 39 "seen missing").
    assert sum(results) <= 39
