"""The order the ticket sync delivers a stream batch in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.store import message_item
from chalicelib.sync.tickets import inbound_in_sync_order, received_at

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _message(message_id: str, customer: str, minute: int, direction: Direction = Direction.INBOUND) -> SocialMessage:
    return SocialMessage(
        platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=direction, message_id=message_id,
        conversation_key=f"messenger:dm:page:{customer}", account_id="page",
        author=Author(platform_id=customer if direction is Direction.INBOUND else "page"),
        text=message_id, created_at=T0 + timedelta(minutes=minute),
    )


def _insert(message: SocialMessage, *, now: float = 1_772_366_400.0) -> dict[str, Any]:
    return {"eventName": "INSERT", "dynamodb": {"NewImage": message_item(message, ttl_days=30, now=now)}}


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [m.message_id for m, _ in inbound_in_sync_order(records)]


def test_a_conversations_messages_in_one_batch_go_in_platform_time_order() -> None:
    # Written in the opposite order (a platform's reordering, or a multi-message delivery
    # written in parallel): the reply must not reach the ticket before what it answers.
    batch = [_insert(_message("ana-2", "ana", 5)), _insert(_message("bo-1", "bo", 1)), _insert(_message("ana-1", "ana", 2))]
    assert _ids(batch) == ["ana-1", "ana-2", "bo-1"]


def test_equal_times_keep_stream_order_and_other_records_are_left_out() -> None:
    same = [_insert(_message(f"m{i}", "ana", 0)) for i in (3, 1, 2)]
    brand = _insert(_message("echo", "ana", -5, Direction.OUTBOUND))
    modify = {**_insert(_message("m9", "ana", -9)), "eventName": "MODIFY"}
    assert _ids([same[0], brand, same[1], modify, same[2]]) == ["m3", "m1", "m2"]


def test_each_message_comes_with_when_it_was_stored() -> None:
    [(_, stored)] = inbound_in_sync_order([_insert(_message("m1", "ana", 0), now=1_772_366_401.7)])
    assert stored == 1_772_366_401
    assert received_at({"dynamodb": {"ApproximateCreationDateTime": 1_772_366_000}}) == 1_772_366_000
    assert received_at({"dynamodb": {}}) is None
