"""The message item the webhook path writes (``store.message_item``): what it keeps, and that
what DynamoDB would refuse never costs the message itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.store.ingest import MAX_RAW_BYTES, message_fields, message_item, stored_at
from chalicelib.store.table import message_from_image

DYNAMODB_ITEM_LIMIT = 400 * 1024


def _message(raw: dict[str, Any], text: str = "mi pedido no llegó") -> SocialMessage:
    return SocialMessage(
        platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=Direction.INBOUND, message_id="m_1",
        conversation_key="messenger:dm:104976543210001:7100000042", account_id="104976543210001",
        author=Author(platform_id="7100000042"), text=text, created_at=datetime(2026, 3, 10, 9, 0, tzinfo=UTC), raw=raw,
    )


def _item_bytes(item: dict[str, Any]) -> int:
    # DynamoDB's item size: attribute names plus values, strings in UTF-8.
    return sum(len(name.encode()) + len(next(iter(value.values())).encode()) for name, value in item.items())


def test_the_item_gives_back_the_message_and_the_platforms_own_words() -> None:
    raw = {"sender": {"id": "7100000042"}, "message": {"mid": "m_1", "text": "mi pedido no llegó 😞", "n": 1.5}}
    item = message_item(_message(raw), ttl_days=30, now=1_773_133_200)
    assert message_from_image(item) == _message({})  # the model without its raw payload
    assert json.loads(item["raw"]["S"]) == raw
    assert message_fields(item) == {
        "platform": "messenger", "direction": "in", "created_at": "2026-03-10T09:00:00Z", "kind": "direct_message"}
    assert item["gsi1pk"] == {"S": "AUTHOR#messenger#7100000042"} and item["gsi1sk"] == {"S": "2026-03-10T09:00:00Z"}
    assert item["expires_at"] == {"N": str(1_773_133_200 + 30 * 86400)} and stored_at(item) == 1_773_133_200


def test_items_written_before_and_receipts_read_as_before() -> None:
    # Older message items also carried item_type, received_at and copies of platform, direction, time.
    new = message_item(_message({"message": {"mid": "m_1"}}), ttl_days=30, now=1_773_133_200)
    body = json.loads(new["message"]["S"])
    del body["received_at"]
    old = {**new, "message": {"S": json.dumps(body)}, "item_type": {"S": "message"}, "received_at": {"N": "1773130000"},
           "platform": {"S": "messenger"}, "direction": {"S": "in"}, "created_at": {"S": "2026-03-10T09:00:00Z"}}
    assert message_from_image(old) == message_from_image(new) == _message({})
    assert stored_at(old) == 1_773_130_000 and message_fields(old) == message_fields(new)
    # a delivery receipt recorded on the message, or before it (a stub without the message)
    receipt = {**new, "delivery_status": {"S": "read"}}
    stub = {"pk": new["pk"], "sk": new["sk"], "delivery_status": {"S": "read"}, "item_type": {"S": "status"}}
    assert message_from_image(receipt) == _message({}) and message_from_image(stub) is None and stored_at(stub) is None
    # another item that happens to hold a "message" attribute is not a message
    other = {"pk": new["pk"], "sk": {"S": "REPLY#zendesk#1"}, "message": new["message"]}
    assert message_from_image(other) is None and message_from_image({**other, "item_type": {"S": "agent_reply"}}) is None


def test_a_payload_with_a_lone_surrogate_is_kept() -> None:
    # JSON may escape half of a UTF-16 pair ("\ud83d"); Python reads it into a str UTF-8 cannot encode.
    raw = json.loads('{"message": {"mid": "m_1", "text": "broken \\ud83d emoji"}}')
    item = message_item(_message(raw), ttl_days=30)
    assert json.loads(item["raw"]["S"]) == raw
    item["raw"]["S"].encode()  # storable: DynamoDB takes UTF-8


def test_a_payload_too_large_in_utf8_is_replaced_by_a_note_not_the_message() -> None:
    # 90,000 emoji: under the limit counted in characters, 360 KB in UTF-8 with the rest of the item.
    raw = {"message": {"mid": "m_1", "text": "😞" * 90_000}}
    item = message_item(_message(raw), ttl_days=30)
    assert json.loads(item["raw"]["S"])["truncated"] is True
    assert _item_bytes(item) < DYNAMODB_ITEM_LIMIT and message_from_image(item) == _message({})
    # just under the limit: kept whole
    fits = {"message": {"mid": "m_1", "text": "é" * (MAX_RAW_BYTES // 2 - 2_000)}}
    kept = message_item(_message(fits), ttl_days=30)
    assert json.loads(kept["raw"]["S"]) == fits and _item_bytes(kept) < DYNAMODB_ITEM_LIMIT
