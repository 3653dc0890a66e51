"""LINE Messaging API: the x-line-signature check and the normalizer, against documented webhook shapes.

Expected signatures are computed here with ``hmac``/``hashlib`` directly, never with
the code under test.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.errors import BadRequest
from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
from chalicelib.channels.line import webhook as line
from chalicelib.inbound.signatures import SignatureError
from tests.support.events import event_bytes, load_event

CHANNEL_SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
BOT = "U0123456789abcdef0123456789abcdef"
USER = "U4af4980629aaaaaaaaaaaaaaaaaaaaaa"
GROUP = "Ca56f94637caaaaaaaaaaaaaaaaaaaaaa"


def line_header(body: bytes, secret: str = CHANNEL_SECRET) -> str:
    """What LINE sends: base64 HMAC-SHA256(channel secret, raw body), no prefix."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def normalize_one(payload: dict[str, Any]) -> SocialMessage:
    batch = line.normalize_delivery(payload)
    assert batch.rejected == [] and batch.ignored == 0
    assert len(batch.messages) == 1
    return batch.messages[0]


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


# --- Authentication -------------------------------------------------------------------


class TestSignature:
    @pytest.fixture
    def body(self) -> bytes:
        return event_bytes("line_text_user")

    def test_a_genuine_signature_is_accepted(self, body: bytes) -> None:
        line.signature_verifier(CHANNEL_SECRET).verify({"x-line-signature": line_header(body)}, body)

    @pytest.mark.parametrize("name", ["x-line-signature", "X-Line-Signature", "X-LINE-SIGNATURE"])
    def test_the_header_name_is_matched_whatever_its_case(self, body: bytes, name: str) -> None:
        line.signature_verifier(CHANNEL_SECRET).verify({"Content-Type": "application/json", name: line_header(body)}, body)

    def test_a_signature_made_with_another_secret_is_refused(self, body: bytes) -> None:
        with pytest.raises(SignatureError, match="does not match"):
            line.signature_verifier(CHANNEL_SECRET).verify({"x-line-signature": line_header(body, "other")}, body)

    def test_an_altered_body_is_refused(self, body: bytes) -> None:
        header = line_header(body)
        altered = body.replace(b"late", b"lost")
        assert altered != body
        with pytest.raises(SignatureError, match="does not match"):
            line.signature_verifier(CHANNEL_SECRET).verify({"x-line-signature": header}, altered)

    def test_a_hex_or_prefixed_signature_is_refused(self, body: bytes) -> None:
        digest = hmac.new(CHANNEL_SECRET.encode(), body, hashlib.sha256)
        for wrong in (digest.hexdigest(), "sha256=" + line_header(body)):
            with pytest.raises(SignatureError):
                line.signature_verifier(CHANNEL_SECRET).verify({"x-line-signature": wrong}, body)

    @pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json"}, {"x-line-signature": ""}])
    def test_a_missing_signature_is_refused_and_the_header_named(self, body: bytes, headers: dict[str, str]) -> None:
        with pytest.raises(SignatureError, match="x-line-signature"):
            line.signature_verifier(CHANNEL_SECRET).verify(headers, body)

    def test_the_verification_request_is_signed_too(self) -> None:
        body = event_bytes("line_verification")
        line.signature_verifier(CHANNEL_SECRET).verify({"X-Line-Signature": line_header(body)}, body)


# --- Canonical fields per fixture -------------------------------------------------------


class TestMessages:
    def test_a_text_from_a_user_is_an_inbound_direct_message(self) -> None:
        payload = load_event("line_text_user")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.LINE,
            kind=Kind.DIRECT_MESSAGE,
            direction=Direction.INBOUND,
            message_id="468789577898262530",
            conversation_key=f"line:dm:{BOT}:{USER}",
            account_id=BOT,
            author=Author(platform_id=USER),
            text="Hello, my parcel is late",
            created_at=ms(1692251666727),
            raw=payload["events"][0],
        )
        assert message.is_private

    def test_an_image_in_a_group_is_a_comment_with_a_content_api_media_id(self) -> None:
        payload = load_event("line_image_group")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.LINE,
            kind=Kind.COMMENT,
            direction=Direction.INBOUND,
            message_id="354718705033693861",
            conversation_key=f"line:group:{BOT}:{GROUP}",
            account_id=BOT,
            author=Author(platform_id=USER),
            text="",
            created_at=ms(1692251700000),
            thread_id=GROUP,
            attachments=(Attachment(type="image", media_id="354718705033693861"),),
            raw=payload["events"][0],
        )
        assert not message.is_private

    def test_externally_hosted_media_keep_their_url(self) -> None:
        payload = load_event("line_image_group")
        payload["events"][0]["message"]["contentProvider"] = {
            "type": "external",
            "originalContentUrl": "https://cdn.example.com/a.jpg",
            "previewImageUrl": "https://cdn.example.com/a-small.jpg",
        }
        assert normalize_one(payload).attachments[0].url == "https://cdn.example.com/a.jpg"

    @pytest.mark.parametrize(
        ("content", "type_"),
        [
            ({"type": "video", "id": "701", "duration": 60000, "contentProvider": {"type": "line"}}, "video"),
            ({"type": "audio", "id": "702", "duration": 3000, "contentProvider": {"type": "line"}}, "audio"),
            ({"type": "file", "id": "703", "fileName": "receipt.pdf", "fileSize": 2138}, "file"),
        ],
    )
    def test_media_messages_become_attachments(self, content: dict[str, Any], type_: str) -> None:
        payload = load_event("line_text_user")
        payload["events"][0]["message"] = content
        message = normalize_one(payload)
        (attachment,) = message.attachments
        assert (attachment.type, attachment.media_id) == (type_, content["id"])
        assert attachment.caption == content.get("fileName")
        assert message.message_id == content["id"]

    def test_a_sticker_is_described_in_the_text(self) -> None:
        payload = load_event("line_text_user")
        payload["events"][0]["message"] = {
            "type": "sticker",
            "id": "704",
            "quoteToken": "q",
            "packageId": "446",
            "stickerId": "1988",
            "stickerResourceType": "STATIC",
        }
        message = normalize_one(payload)
        assert (message.text, message.attachments) == ("[sticker]", ())

    def test_a_location_carries_its_title_and_address(self) -> None:
        payload = load_event("line_text_user")
        payload["events"][0]["message"] = {
            "type": "location",
            "id": "705",
            "title": "Acme Shibuya",
            "address": "1-2-3 Shibuya, Tokyo",
            "latitude": 35.658,
            "longitude": 139.7016,
        }
        assert normalize_one(payload).text == (
            "Shared a location: Acme Shibuya, 1-2-3 Shibuya, Tokyo (35.658, 139.7016) "
            "https://www.google.com/maps/search/?api=1&query=35.658%2C139.7016"
        )

    @pytest.mark.parametrize(
        ("extra", "text"),
        [
            ({"keywords": ["Thanks", "Bow", "Grateful", "Cony"], "text": "thank you!!"}, "thank you!! (sticker: Thanks, Bow, Grateful)"),
            ({"keywords": ["Sad"]}, "[sticker: Sad]"),
        ],
        ids=["message-sticker", "keywords-only"],
    )
    def test_a_stickers_typed_text_and_keywords_are_kept(self, extra: dict[str, Any], text: str) -> None:
        payload = load_event("line_text_user")
        payload["events"][0]["message"] = {"type": "sticker", "id": "706", "quoteToken": "q", "packageId": "446",
                                           "stickerId": "1988", "stickerResourceType": "MESSAGE", **extra}
        assert normalize_one(payload).text == text

    def test_a_quoted_message_becomes_the_parent(self) -> None:
        payload = load_event("line_text_user")
        payload["events"][0]["message"]["quotedMessageId"] = "468789500000000000"
        assert normalize_one(payload).parent_id == "468789500000000000"


class TestThreading:
    def test_each_user_has_one_conversation_per_bot(self) -> None:
        first = normalize_one(load_event("line_text_user"))
        other = load_event("line_text_user")
        other["events"][0]["source"]["userId"] = "Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        other["events"][0]["message"]["id"] = "468789577898262531"
        second = normalize_one(other)
        assert second.conversation_key == f"line:dm:{BOT}:Ubbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" != first.conversation_key

    def test_a_user_writing_in_a_group_is_not_their_private_conversation(self) -> None:
        private = normalize_one(load_event("line_text_user"))
        group = normalize_one(load_event("line_image_group"))
        assert private.author == group.author
        assert private.conversation_key != group.conversation_key

    def test_every_member_of_a_group_shares_its_conversation(self) -> None:
        payload = load_event("line_image_group")
        payload["events"][0]["source"]["userId"] = "Uccccccccccccccccccccccccccccccccc"
        assert normalize_one(payload).conversation_key == f"line:group:{BOT}:{GROUP}"

    def test_a_room_is_keyed_on_its_room_id(self) -> None:
        payload = load_event("line_image_group")
        payload["events"][0]["source"] = {"type": "room", "roomId": "Ra8dbf4673cdddddddddddddddddddddd", "userId": USER}
        message = normalize_one(payload)
        assert (message.kind, message.conversation_key) == (
            Kind.COMMENT,
            f"line:group:{BOT}:Ra8dbf4673cdddddddddddddddddddddd",
        )

    def test_an_unidentified_group_member_is_attributed_to_the_group(self) -> None:
        # LINE names only users of its mobile apps in group events.
        payload = load_event("line_image_group")
        del payload["events"][0]["source"]["userId"]
        assert normalize_one(payload).author == Author(platform_id=GROUP)


# --- Delivery handling -------------------------------------------------------------------


class TestDeliveryHandling:
    def test_a_redelivered_event_yields_the_same_message(self) -> None:
        original = normalize_one(load_event("line_text_user"))
        redelivered = load_event("line_redelivery")
        assert redelivered["events"][0]["deliveryContext"]["isRedelivery"] is True
        again = normalize_one(redelivered)
        assert again.message_id == original.message_id
        assert again.conversation_key == original.conversation_key
        assert again.model_dump(exclude={"raw"}) == original.model_dump(exclude={"raw"})

    def test_the_verification_request_stores_nothing(self) -> None:
        batch = line.normalize_delivery(load_event("line_verification"))
        assert (batch.messages, batch.ignored, batch.rejected) == ([], 0, [])

    def test_a_verification_request_without_destination_is_accepted(self) -> None:
        batch = line.normalize_delivery({"events": []})
        assert batch.messages == []

    def test_a_follow_is_ignored(self) -> None:
        batch = line.normalize_delivery(load_event("line_follow"))
        assert (batch.messages, batch.ignored, batch.rejected) == ([], 1, [])

    @pytest.mark.parametrize("event_type", ["unfollow", "join", "leave", "postback", "memberJoined", "beacon", "brandNew"])
    def test_other_event_types_are_ignored_with_a_reason(self, event_type: str) -> None:
        payload = load_event("line_follow")
        payload["events"][0]["type"] = event_type
        batch = line.normalize_delivery(payload)
        assert batch.ignored == 1 and len(batch.ignored_reasons) == 1 and batch.ignored_reasons[0]

    def test_an_unsent_message_is_a_deletion_of_it_in_its_conversation(self) -> None:
        payload = load_event("line_image_group")
        event = payload["events"][0]
        del event["message"]
        event.update(type="unsend", unsend={"messageId": "354718705033693861"})
        deletion = normalize_one(payload)
        assert (deletion.message_id, deletion.edit_of, deletion.deleted) == ("354718705033693861:deleted", "354718705033693861", True)
        assert (deletion.conversation_key, deletion.author.platform_id) == (f"line:group:{BOT}:{GROUP}", USER)
        assert deletion.attachments == () and deletion.text == ""

    def test_an_edit_is_a_change_of_the_original_named_by_its_time(self) -> None:
        def edit(text: str, timestamp: int) -> SocialMessage:
            payload = load_event("line_image_group")
            event = payload["events"][0]
            event.update(type="messageEdited", timestamp=timestamp)
            event["message"] = {"id": "468789577898262530", "type": "text", "text": text, "quoteToken": "q"}
            return normalize_one(payload)

        first, again, later = edit("see you at 5", 1_764_000_000_000), edit("see you at 5", 1_764_000_000_000), edit("at 6", 1_764_000_090_000)
        assert (first.message_id, first.edit_of, first.text) == ("468789577898262530:edit:1764000000000", "468789577898262530", "see you at 5")
        assert again.message_id == first.message_id != later.message_id
        assert first.conversation_key == f"line:group:{BOT}:{GROUP}" and not first.deleted

    def test_a_mixed_delivery_keeps_messages_and_counts_the_rest(self) -> None:
        payload = load_event("line_text_user")
        payload["events"] += load_event("line_follow")["events"] + load_event("line_image_group")["events"]
        batch = line.normalize_delivery(payload)
        assert [m.message_id for m in batch.messages] == ["468789577898262530", "354718705033693861"]
        assert batch.ignored == 1

    @pytest.mark.parametrize(
        "damage",
        [
            lambda e: e.pop("source"),
            lambda e: e.pop("timestamp"),
            lambda e: e["message"].pop("id"),
            lambda e: e.update(message="hello"),
            lambda e: e["source"].update(type="planet"),
            lambda e: e["source"].pop("userId"),
        ],
    )
    def test_a_malformed_event_is_quarantined_and_the_others_kept(self, damage: Any) -> None:
        payload = load_event("line_text_user")
        payload["events"].append(load_event("line_image_group")["events"][0])
        damage(payload["events"][0])
        batch = line.normalize_delivery(payload)
        assert [m.message_id for m in batch.messages] == ["354718705033693861"]
        assert len(batch.rejected) == 1
        assert batch.rejected[0].source == "line"
        assert batch.rejected[0].event == payload["events"][0]

    def test_an_event_that_is_not_an_object_is_quarantined(self) -> None:
        payload = load_event("line_text_user")
        payload["events"].append("junk")
        batch = line.normalize_delivery(payload)
        assert len(batch.messages) == 1 and len(batch.rejected) == 1

    @pytest.mark.parametrize("body", [[], "events", 42, None])
    def test_a_body_that_is_not_an_object_is_a_bad_request(self, body: Any) -> None:
        with pytest.raises(BadRequest):
            line.normalize_delivery(body)

    def test_events_that_are_not_an_array_are_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            line.normalize_delivery({"destination": BOT, "events": {"type": "message"}})

    def test_events_without_destination_are_a_bad_request(self) -> None:
        payload = load_event("line_text_user")
        del payload["destination"]
        with pytest.raises(BadRequest, match="destination"):
            line.normalize_delivery(payload)

    def test_the_fixture_is_not_mutated(self) -> None:
        payload = load_event("line_image_group")
        before = copy.deepcopy(payload)
        line.normalize_delivery(payload)
        assert payload == before
