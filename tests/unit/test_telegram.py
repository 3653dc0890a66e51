"""Telegram Bot API: the secret-token check and the normalizer, against documented Update shapes."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.errors import BadRequest
from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
from chalicelib.channels.telegram import webhook as telegram
from chalicelib.inbound.signatures import SignatureError
from tests.support.events import event_bytes, load_event

SECRET = "s3cr3t_Token-for-acme-bot"
BOT_ID = "123456789"


def normalize_one(payload: dict[str, Any], **kwargs: Any) -> SocialMessage:
    batch = telegram.normalize_delivery(payload, bot_id=BOT_ID, **kwargs)
    assert batch.rejected == [] and batch.ignored == 0
    assert len(batch.messages) == 1
    return batch.messages[0]


def utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# --- Authentication -------------------------------------------------------------------


class TestSecretToken:
    @pytest.fixture
    def body(self) -> bytes:
        return event_bytes("telegram_private_text")

    def test_the_configured_secret_is_accepted(self, body: bytes) -> None:
        telegram.secret_token_verifier(SECRET).verify({telegram.SECRET_HEADER: SECRET}, body)

    @pytest.mark.parametrize(
        "name", ["x-telegram-bot-api-secret-token", "X-TELEGRAM-BOT-API-SECRET-TOKEN", "X-Telegram-Bot-Api-Secret-Token"]
    )
    def test_the_header_name_is_matched_whatever_its_case(self, body: bytes, name: str) -> None:
        telegram.secret_token_verifier(SECRET).verify({"Content-Type": "application/json", name: SECRET}, body)

    @pytest.mark.parametrize("wrong", ["not-the-secret", SECRET + "x", SECRET[:-1], SECRET.upper()])
    def test_a_wrong_secret_is_refused(self, body: bytes, wrong: str) -> None:
        with pytest.raises(SignatureError, match="does not match"):
            telegram.secret_token_verifier(SECRET).verify({telegram.SECRET_HEADER: wrong}, body)

    @pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json"}, {telegram.SECRET_HEADER: ""}])
    def test_a_missing_secret_is_refused_and_the_header_named(self, body: bytes, headers: dict[str, str]) -> None:
        with pytest.raises(SignatureError, match="X-Telegram-Bot-Api-Secret-Token"):
            telegram.secret_token_verifier(SECRET).verify(headers, body)

    def test_the_body_is_not_part_of_the_check(self) -> None:
        # Telegram signs nothing: the same header authenticates any body.
        telegram.secret_token_verifier(SECRET).verify({telegram.SECRET_HEADER: SECRET}, b"{}")

    def test_an_empty_configured_secret_is_a_configuration_error(self) -> None:
        with pytest.raises(ValueError):
            telegram.secret_token_verifier("")


# --- Canonical fields per fixture -------------------------------------------------------


class TestPrivateChat:
    def test_a_text_message_is_an_inbound_direct_message(self) -> None:
        payload = load_event("telegram_private_text")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.TELEGRAM,
            kind=Kind.DIRECT_MESSAGE,
            direction=Direction.INBOUND,
            message_id="111222333:42",
            conversation_key="telegram:dm:123456789:111222333",
            account_id=BOT_ID,
            author=Author(platform_id="111222333", handle="janedoe", display_name="Jane Doe"),
            text="Hi, my order #1234 has not arrived yet",
            created_at=utc(1700000000),
            raw=payload,
        )
        assert message.raw["update_id"] == 918273645
        assert message.is_private

    def test_a_photo_keeps_the_largest_size_and_the_caption(self) -> None:
        message = normalize_one(load_event("telegram_private_photo"))
        assert message.message_id == "111222333:43"
        assert message.text == "The box arrived damaged"
        assert message.attachments == (
            Attachment(
                type="image", media_id="AgACAgIAAxkBAAIBK2V_large", mime_type="image/jpeg", caption="The box arrived damaged"
            ),
        )
        assert message.created_at == utc(1700000060)

    def test_the_largest_photo_is_chosen_whatever_the_order(self) -> None:
        payload = load_event("telegram_private_photo")
        payload["message"]["photo"].reverse()
        assert normalize_one(payload).attachments[0].media_id == "AgACAgIAAxkBAAIBK2V_large"

    def test_every_message_of_one_customer_shares_a_conversation(self) -> None:
        text = normalize_one(load_event("telegram_private_text"))
        photo = normalize_one(load_event("telegram_private_photo"))
        assert text.conversation_key == photo.conversation_key
        assert text.message_id != photo.message_id

    def test_two_customers_get_two_conversations(self) -> None:
        other = load_event("telegram_private_text")
        other["message"]["chat"]["id"] = other["message"]["from"]["id"] = 999
        assert normalize_one(other).conversation_key == "telegram:dm:123456789:999"

    def test_message_ids_are_scoped_by_chat(self) -> None:
        # message_id 42 exists in every chat; the canonical id must not collide.
        first = normalize_one(load_event("telegram_private_text"))
        other = load_event("telegram_private_text")
        other["message"]["chat"]["id"] = 999
        assert normalize_one(other).message_id == "999:42" != first.message_id

    def test_the_default_account_is_a_placeholder(self) -> None:
        message = telegram.normalize_delivery(load_event("telegram_private_text")).messages[0]
        assert message.account_id == "bot"
        assert message.conversation_key == "telegram:dm:bot:111222333"

    @pytest.mark.parametrize(
        ("field", "value", "type_", "mime"),
        [
            ("document", {"file_id": "DOC1", "file_unique_id": "u", "file_name": "a.pdf", "mime_type": "application/pdf"}, "document", "application/pdf"),
            ("video", {"file_id": "VID1", "file_unique_id": "u", "width": 1, "height": 1, "duration": 3, "mime_type": "video/mp4"}, "video", "video/mp4"),
            ("voice", {"file_id": "VOI1", "file_unique_id": "u", "duration": 2, "mime_type": "audio/ogg"}, "audio", "audio/ogg"),
            ("audio", {"file_id": "AUD1", "file_unique_id": "u", "duration": 200, "mime_type": "audio/mpeg"}, "audio", "audio/mpeg"),
        ],
    )
    def test_media_become_attachments(self, field: str, value: dict[str, Any], type_: str, mime: str) -> None:
        payload = load_event("telegram_private_text")
        del payload["message"]["text"]
        payload["message"][field] = value
        (attachment,) = normalize_one(payload).attachments
        assert (attachment.type, attachment.media_id, attachment.mime_type) == (type_, value["file_id"], mime)

    def test_a_sticker_is_described_in_the_text(self) -> None:
        payload = load_event("telegram_private_text")
        del payload["message"]["text"]
        payload["message"]["sticker"] = {"file_id": "S", "file_unique_id": "u", "type": "regular", "emoji": "👍"}
        assert normalize_one(payload).text == "[sticker 👍]"

    @pytest.mark.parametrize(
        ("field", "value", "text"),
        [
            ("location", {"latitude": 52.52, "longitude": 13.405},
             "Shared a location: 52.52, 13.405 https://www.google.com/maps/search/?api=1&query=52.52%2C13.405"),
            ("venue", {"location": {"latitude": 52.52, "longitude": 13.405}, "title": "Acme Store", "address": "Main St 1"},
             "Shared a location: Acme Store, Main St 1 (52.52, 13.405) https://www.google.com/maps/search/?api=1&query=52.52%2C13.405"),
            ("game", {"title": "Karate Kido", "description": "d", "photo": []}, "Shared a game: Karate Kido"),
            ("dice", {"emoji": "🎲", "value": 4}, "[rolled 🎲: 4]"),
        ],
        ids=["location", "venue", "game", "dice"],
    )
    def test_places_games_and_dice_are_described_in_the_text(self, field: str, value: dict[str, Any], text: str) -> None:
        payload = load_event("telegram_private_text")
        del payload["message"]["text"]
        payload["message"][field] = value
        assert normalize_one(payload).text == text


class TestBotCommands:
    def message(self, text: str, entities: list[dict[str, Any]] | None = None) -> SocialMessage:
        payload = load_event("telegram_private_text")
        payload["message"]["text"] = text
        if entities is None:
            payload["message"].pop("entities", None)
        else:
            payload["message"]["entities"] = entities
        return normalize_one(payload)

    def test_a_message_that_is_one_command_is_marked(self) -> None:
        message = self.message("/start", [{"offset": 0, "length": 6, "type": "bot_command"}])
        assert (message.text, message.bot_command) == ("/start", "/start")

    def test_a_command_addressed_to_the_bot_by_name_is_one_command(self) -> None:
        assert self.message("/help@acme_bot", [{"offset": 0, "length": 14, "type": "bot_command"}]).bot_command == "/help@acme_bot"

    def test_a_client_that_sends_no_entities_is_read_by_the_text(self) -> None:
        assert self.message("/start").bot_command == "/start"

    @pytest.mark.parametrize(
        ("text", "entities"),
        [
            ("/start my order never came", [{"offset": 0, "length": 6, "type": "bot_command"}]),
            ("please /start", [{"offset": 7, "length": 6, "type": "bot_command"}]),
            ("/etc/hosts is broken", None),
            ("/start", [{"offset": 0, "length": 6, "type": "code"}]),
        ],
        ids=["command-and-words", "command-inside", "a-path", "not-a-command-entity"],
    )
    def test_words_around_or_instead_of_a_command_are_a_message(self, text: str, entities: list[dict[str, Any]] | None) -> None:
        assert self.message(text, entities).bot_command is None


class TestGroups:
    def test_a_forum_topic_message_is_a_comment_on_that_topic(self) -> None:
        payload = load_event("telegram_group_topic")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.TELEGRAM,
            kind=Kind.COMMENT,
            direction=Direction.INBOUND,
            message_id="-1001987654321:907",
            conversation_key="telegram:group:-1001987654321:55",
            account_id=BOT_ID,
            author=Author(platform_id="444555666", handle="ravi_k", display_name="Ravi"),
            text="Is shipping to Norway available?",
            created_at=utc(1700000300),
            # The reply to the topic's creation message is the topic, not a parent.
            parent_id=None,
            thread_id="55",
            permalink="https://t.me/acme_customers/907",
            raw=payload,
        )
        assert not message.is_private

    def test_each_topic_is_its_own_conversation(self) -> None:
        other = load_event("telegram_group_topic")
        other["message"]["message_thread_id"] = 77
        other["message"]["message_id"] = 908
        del other["message"]["reply_to_message"]
        assert normalize_one(other).conversation_key == "telegram:group:-1001987654321:77"

    def test_messages_outside_topics_share_the_main_conversation(self) -> None:
        payload = load_event("telegram_group_topic")
        for field in ("message_thread_id", "is_topic_message", "reply_to_message"):
            del payload["message"][field]
        message = normalize_one(payload)
        assert message.conversation_key == "telegram:group:-1001987654321:main"
        assert message.thread_id is None

    def test_a_reply_chain_in_a_plain_supergroup_does_not_split_the_conversation(self) -> None:
        # message_thread_id is also set on replies outside forums; only is_topic_message names a topic.
        payload = load_event("telegram_group_topic")
        del payload["message"]["is_topic_message"]
        payload["message"]["reply_to_message"] = {**payload["message"]["reply_to_message"], "message_id": 55}
        message = normalize_one(payload)
        assert message.conversation_key == "telegram:group:-1001987654321:main"
        assert message.parent_id == "-1001987654321:55"

    def test_a_basic_group_is_keyed_per_chat(self) -> None:
        payload = load_event("telegram_private_text")
        payload["message"]["chat"] = {"id": -4001, "title": "Acme fans", "type": "group"}
        message = normalize_one(payload)
        assert (message.kind, message.conversation_key, message.message_id) == (
            Kind.COMMENT,
            "telegram:group:-4001:main",
            "-4001:42",
        )
        assert message.permalink is None

    def test_a_private_supergroup_links_through_t_me_c(self) -> None:
        payload = load_event("telegram_group_topic")
        del payload["message"]["chat"]["username"]
        assert normalize_one(payload).permalink == "https://t.me/c/1987654321/55/907"

    def test_an_anonymous_admin_is_attributed_to_the_chat(self) -> None:
        payload = load_event("telegram_group_topic")
        payload["message"]["from"] = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
        payload["message"]["sender_chat"] = {"id": -1001987654321, "title": "Acme Customers", "type": "supergroup"}
        message = normalize_one(payload)
        assert message.author == Author(platform_id="-1001987654321", display_name="Acme Customers")
        assert message.direction == Direction.INBOUND


# --- Edits, business, outbound -----------------------------------------------------------


class TestEdits:
    def test_an_edit_points_at_the_original_message(self) -> None:
        payload = load_event("telegram_edited_message")
        message = normalize_one(payload)
        original = normalize_one(load_event("telegram_private_text"))
        assert message.edit_of == original.message_id == "111222333:42"
        assert message.message_id == "111222333:42:edit:1700000120"
        assert message.conversation_key == original.conversation_key
        assert message.created_at == utc(1700000120)
        assert message.text == "Hi, my order #1235 has not arrived yet"
        assert message.raw == payload

    def test_an_edit_without_edit_date_is_quarantined(self) -> None:
        payload = load_event("telegram_edited_message")
        del payload["edited_message"]["edit_date"]
        batch = telegram.normalize_delivery(payload, bot_id=BOT_ID)
        assert batch.messages == []
        assert len(batch.rejected) == 1 and "edit_date" in batch.rejected[0].error

    def test_an_edited_business_message_is_an_edit_on_the_business_conversation(self) -> None:
        payload = load_event("telegram_business_message")
        payload["edited_business_message"] = payload.pop("business_message")
        payload["edited_business_message"]["edit_date"] = 1700000500
        message = normalize_one(payload)
        assert message.edit_of == "888999000:3108"
        assert message.message_id == "888999000:3108:edit:1700000500"
        assert message.conversation_key == "telegram:dm:AbCdEf_bizconn-01:888999000"


class TestBusiness:
    def test_a_customer_business_message_is_inbound_on_the_connection(self) -> None:
        payload = load_event("telegram_business_message")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.TELEGRAM,
            kind=Kind.DIRECT_MESSAGE,
            direction=Direction.INBOUND,
            message_id="888999000:3108",
            conversation_key="telegram:dm:AbCdEf_bizconn-01:888999000",
            account_id="AbCdEf_bizconn-01",
            author=Author(platform_id="888999000", handle="marta_l", display_name="Marta Lopez"),
            text="Can you check this invoice?",
            created_at=utc(1700000400),
            attachments=(
                Attachment(
                    type="document",
                    media_id="BQACAgIAAxkBAAIDdocument",
                    mime_type="application/pdf",
                    caption="Can you check this invoice?",
                ),
            ),
            raw=payload,
        )

    def test_a_document_without_caption_is_labelled_with_its_file_name(self) -> None:
        payload = load_event("telegram_business_message")
        del payload["business_message"]["caption"]
        message = normalize_one(payload)
        assert message.text == ""
        assert message.attachments[0].caption == "invoice-5521.pdf"

    def test_a_message_typed_by_the_business_owner_is_outbound_on_the_customer_conversation(self) -> None:
        payload = load_event("telegram_business_message")
        payload["business_message"]["from"] = {"id": 555000555, "is_bot": False, "first_name": "Acme Store"}
        message = normalize_one(payload)
        assert message.direction == Direction.OUTBOUND
        assert message.conversation_key == "telegram:dm:AbCdEf_bizconn-01:888999000"
        assert message.author.platform_id == "555000555"

    def test_a_message_a_bot_sent_for_the_business_is_outbound(self) -> None:
        payload = load_event("telegram_business_message")
        payload["business_message"]["from"] = {"id": 555000555, "is_bot": False, "first_name": "Acme Store"}
        payload["business_message"]["sender_business_bot"] = {"id": int(BOT_ID), "is_bot": True, "first_name": "Acme Bot"}
        assert normalize_one(payload).direction == Direction.OUTBOUND


class TestOutbound:
    def test_a_bot_sender_in_a_group_is_outbound(self) -> None:
        payload = load_event("telegram_group_topic")
        payload["message"]["from"] = {"id": int(BOT_ID), "is_bot": True, "first_name": "Acme Bot", "username": "acme_bot"}
        message = normalize_one(payload)
        assert message.direction == Direction.OUTBOUND
        assert message.conversation_key == "telegram:group:-1001987654321:55"

    def test_a_human_sender_is_inbound(self) -> None:
        assert normalize_one(load_event("telegram_group_topic")).direction == Direction.INBOUND


# --- Redelivery, ignored, malformed ------------------------------------------------------


class TestDeliveryHandling:
    @pytest.mark.parametrize(
        "name",
        [
            "telegram_private_text",
            "telegram_private_photo",
            "telegram_group_topic",
            "telegram_edited_message",
            "telegram_business_message",
        ],
    )
    def test_a_redelivered_update_yields_identical_messages(self, name: str) -> None:
        first = telegram.normalize_delivery(load_event(name), bot_id=BOT_ID)
        again = telegram.normalize_delivery(load_event(name), bot_id=BOT_ID)
        assert first.messages == again.messages
        assert [m.message_id for m in first.messages] == [m.message_id for m in again.messages]

    def test_a_callback_query_is_ignored(self) -> None:
        batch = telegram.normalize_delivery(load_event("telegram_callback_query"), bot_id=BOT_ID)
        assert (batch.messages, batch.ignored, batch.rejected) == ([], 1, [])
        assert batch.ignored_reasons == ["callback query (a button press)"]

    @pytest.mark.parametrize(
        ("field", "reason"),
        [
            ("my_chat_member", "the bot's membership in a chat changed (added, removed or blocked)"),
            ("channel_post", "channel post"),
            ("deleted_business_messages", "business messages deleted"),
            ("poll_answer", "poll answer"),
            ("some_future_update", "update type not handled"),
        ],
    )
    def test_other_update_types_are_ignored_with_their_reason(self, field: str, reason: str) -> None:
        batch = telegram.normalize_delivery({"update_id": 1, field: {}}, bot_id=BOT_ID)
        assert (batch.messages, batch.ignored, batch.ignored_reasons, batch.rejected) == ([], 1, [reason], [])

    def test_a_service_message_is_ignored(self) -> None:
        payload = load_event("telegram_group_topic")
        del payload["message"]["text"]
        payload["message"]["new_chat_members"] = [{"id": 1, "is_bot": False, "first_name": "New"}]
        batch = telegram.normalize_delivery(payload, bot_id=BOT_ID)
        assert (batch.messages, batch.ignored, batch.rejected) == ([], 1, [])

    def test_a_message_in_a_channel_chat_is_ignored(self) -> None:
        payload = load_event("telegram_private_text")
        payload["message"]["chat"] = {"id": -100777, "title": "News", "type": "channel"}
        batch = telegram.normalize_delivery(payload, bot_id=BOT_ID)
        assert (batch.messages, batch.ignored) == ([], 1)

    @pytest.mark.parametrize(
        "damage",
        [
            lambda m: m.pop("chat"),
            lambda m: m.pop("from"),
            lambda m: m.pop("date"),
            lambda m: m.update(chat="not an object"),
            lambda m: m.update(photo=[{"width": 1, "height": 1}]),  # no file_id
        ],
    )
    def test_a_malformed_message_is_quarantined_with_its_update(self, damage: Any) -> None:
        payload = load_event("telegram_private_photo")
        damage(payload["message"])
        batch = telegram.normalize_delivery(payload, bot_id=BOT_ID)
        assert batch.messages == []
        assert len(batch.rejected) == 1
        assert batch.rejected[0].source == "telegram"
        assert batch.rejected[0].event == payload

    def test_a_message_that_is_not_an_object_is_quarantined(self) -> None:
        batch = telegram.normalize_delivery({"update_id": 5, "message": "hello"}, bot_id=BOT_ID)
        assert batch.messages == [] and len(batch.rejected) == 1

    @pytest.mark.parametrize("body", [[], "update", 42, None, [load_event("telegram_private_text")]])
    def test_a_body_that_is_not_an_object_is_a_bad_request(self, body: Any) -> None:
        with pytest.raises(BadRequest):
            telegram.normalize_delivery(body, bot_id=BOT_ID)

    def test_the_fixture_is_not_mutated(self) -> None:
        payload = load_event("telegram_group_topic")
        before = copy.deepcopy(payload)
        telegram.normalize_delivery(payload, bot_id=BOT_ID)
        assert payload == before


class TestUpdateId:
    def test_the_update_id_is_exposed(self) -> None:
        assert telegram.update_id(load_event("telegram_private_text")) == 918273645
        assert telegram.update_id(load_event("telegram_callback_query")) == 918273650

    @pytest.mark.parametrize("payload", [{}, {"update_id": "12"}, {"update_id": True}, {"update_id": None}, [], "x"])
    def test_a_missing_or_invalid_update_id_is_none(self, payload: Any) -> None:
        assert telegram.update_id(payload) is None
