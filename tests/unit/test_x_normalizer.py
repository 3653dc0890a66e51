"""X Account Activity deliveries (tweets and DMs) into canonical messages."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.errors import BadRequest
from chalicelib.models import Direction, Kind, NormalizedBatch, Platform, SocialMessage
from chalicelib.channels.x import webhook as x
from tests.support.events import load_event

BRAND = "2244994945"
CUSTOMER = "3001969357"
UTC = timezone.utc


def normalize(payload: str | dict[str, Any]) -> NormalizedBatch:
    return x.normalize_delivery(load_event(payload) if isinstance(payload, str) else payload)


def only_message(payload: str | dict[str, Any]) -> SocialMessage:
    batch = normalize(payload)
    assert batch.rejected == [], [r.error for r in batch.rejected]
    assert len(batch.messages) == 1, batch.messages
    return batch.messages[0]


def first_tweet(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["tweet_create_events"][0]


def first_dm(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["direct_message_events"][0]


# --- tweets ---------------------------------------------------------------------------------


class TestTweets:
    def test_a_mention_is_an_inbound_mention_with_author_details(self) -> None:
        message = only_message("x_mention")
        assert message.platform is Platform.X
        assert message.kind is Kind.MENTION
        assert message.direction is Direction.INBOUND
        assert message.message_id == "1050118621198921728"
        assert message.conversation_key == f"x:tweets:{BRAND}:{CUSTOMER}"
        assert message.account_id == BRAND
        assert message.author.platform_id == CUSTOMER
        assert message.author.handle == "furiouscamper"
        assert message.author.display_name == "Jordan Brinks"
        assert message.author.follower_count == 15200
        assert message.text == "@TwitterDev my flight voucher code doesn't work, 3rd time asking https://t.co/QpKwgs9H4y"
        assert message.created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
        assert message.parent_id is None
        assert message.permalink == "https://x.com/furiouscamper/status/1050118621198921728"
        assert not message.is_private

    def test_a_mention_keeps_its_photo(self) -> None:
        (attachment,) = only_message("x_mention").attachments
        assert attachment.type == "photo"
        assert attachment.url == "https://pbs.twimg.com/media/DpLhHB7U8AA5Tjq.jpg"

    def test_a_reply_to_the_brand_is_a_reply_with_its_full_text(self) -> None:
        message = only_message("x_reply")
        assert message.kind is Kind.REPLY
        assert message.direction is Direction.INBOUND
        assert message.parent_id == "1050100000000000001"
        # The tweet is truncated; the words are in extended_tweet.full_text.
        assert message.text.startswith("@TwitterDev I followed the steps")
        assert message.text.endswith("Booking ref QX7P2L.")
        assert "…" not in message.text
        assert message.created_at == datetime(2018, 10, 10, 21, 2, 11, tzinfo=UTC)

    def test_a_customers_mention_and_reply_share_one_conversation(self) -> None:
        assert only_message("x_mention").conversation_key == only_message("x_reply").conversation_key

    def test_a_retweet_is_ignored(self) -> None:
        batch = normalize("x_retweet")
        assert batch.messages == [] and batch.rejected == []
        assert (batch.ignored, batch.ignored_reasons) == (1, ["retweet (no words of its own)"])

    def test_html_escaped_text_reads_as_written(self) -> None:
        payload = load_event("x_mention")
        first_tweet(payload)["text"] = "@TwitterDev Q&amp;A: is 3 &lt; 4 &gt; 2? Write &amp;lt; for <"
        first_tweet(payload).pop("extended_tweet", None)
        assert only_message(payload).text == "@TwitterDev Q&A: is 3 < 4 > 2? Write &lt; for <"
        dm = load_event("x_dm_inbound")
        first_dm(dm)["message_create"]["message_data"]["text"] = "Fish &amp; chips"
        assert only_message(dm).text == "Fish & chips"

    def test_the_brands_own_reply_is_outbound_on_the_customers_conversation(self) -> None:
        mention = only_message("x_mention")
        own = only_message("x_own_tweet")
        assert own.direction is Direction.OUTBOUND
        assert own.author.platform_id == BRAND
        assert own.author.handle == "TwitterDev"
        assert own.message_id == "1050121549001234946"
        assert own.parent_id == mention.message_id
        assert own.conversation_key == mention.conversation_key
        assert own.created_at == datetime(2018, 10, 10, 20, 31, 2, tzinfo=UTC)
        assert own.permalink == "https://x.com/TwitterDev/status/1050121549001234946"

    def test_the_brands_standalone_tweet_is_outbound_and_joins_no_customer(self) -> None:
        payload = load_event("x_own_tweet")
        tweet = first_tweet(payload)
        for key in ("in_reply_to_status_id", "in_reply_to_status_id_str", "in_reply_to_user_id", "in_reply_to_user_id_str"):
            tweet[key] = None
        message = only_message(payload)
        assert message.direction is Direction.OUTBOUND
        assert message.conversation_key != only_message("x_mention").conversation_key

    def test_two_customers_are_two_conversations(self) -> None:
        payload = load_event("x_mention")
        tweet = first_tweet(payload)
        tweet["id_str"] = tweet["id"] = "1050118621198921999"
        tweet["user"] = {**tweet["user"], "id": 42, "id_str": "42", "screen_name": "other"}
        assert only_message(payload).conversation_key == f"x:tweets:{BRAND}:42"

    def test_created_at_is_read_when_timestamp_ms_is_absent(self) -> None:
        payload = load_event("x_mention")
        del first_tweet(payload)["timestamp_ms"]
        assert only_message(payload).created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)

    def test_a_user_with_only_a_numeric_id_is_still_identified(self) -> None:
        payload = load_event("x_mention")
        del first_tweet(payload)["user"]["id_str"]
        assert only_message(payload).author.platform_id == CUSTOMER

    def test_a_quote_tweet_of_the_brand_is_an_inbound_mention(self) -> None:
        payload = load_event("x_mention")
        tweet = first_tweet(payload)
        tweet["is_quote_status"] = True
        tweet["quoted_status"] = copy.deepcopy(load_event("x_retweet")["tweet_create_events"][0]["retweeted_status"])
        message = only_message(payload)
        assert message.kind is Kind.MENTION and message.direction is Direction.INBOUND

    def test_several_tweets_in_one_delivery(self) -> None:
        payload = load_event("x_mention")
        payload["tweet_create_events"] += load_event("x_retweet")["tweet_create_events"]
        payload["tweet_create_events"] += load_event("x_own_tweet")["tweet_create_events"]
        batch = normalize(payload)
        assert [m.message_id for m in batch.messages] == ["1050118621198921728", "1050121549001234946"]
        assert batch.ignored == 1
        assert batch.rejected == []


# --- direct messages -------------------------------------------------------------------------


class TestDirectMessages:
    def test_an_inbound_dm_uses_the_users_map_for_the_author(self) -> None:
        message = only_message("x_dm_inbound")
        assert message.platform is Platform.X
        assert message.kind is Kind.DIRECT_MESSAGE
        assert message.direction is Direction.INBOUND
        assert message.is_private
        assert message.message_id == "1050135671001234947"
        assert message.conversation_key == f"x:dm:{BRAND}:{CUSTOMER}"
        assert message.account_id == BRAND
        assert message.author.platform_id == CUSTOMER
        assert message.author.handle == "furiouscamper"
        assert message.author.display_name == "Jordan Brinks"
        assert message.author.follower_count == 22
        assert message.text == "DMing as asked: booking ref QX7P2L"
        # created_timestamp "1539206828011" is a string of milliseconds
        assert message.created_at == datetime(2018, 10, 10, 21, 27, 8, 11000, tzinfo=UTC)
        assert message.attachments == ()

    def test_the_brands_dm_is_outbound_on_the_same_conversation(self) -> None:
        inbound = only_message("x_dm_inbound")
        outbound = only_message("x_dm_outbound")
        assert outbound.direction is Direction.OUTBOUND
        assert outbound.author.platform_id == BRAND
        assert outbound.author.handle == "TwitterDev"
        assert outbound.conversation_key == inbound.conversation_key
        assert outbound.text == "Thanks Jordan, a new voucher is on its way to your email."

    def test_dms_and_public_tweets_of_one_customer_are_separate_conversations(self) -> None:
        assert only_message("x_dm_inbound").conversation_key != only_message("x_mention").conversation_key

    def test_one_dm_conversation_per_customer(self) -> None:
        payload = load_event("x_dm_inbound")
        first_dm(payload)["message_create"]["sender_id"] = "777"
        first_dm(payload)["id"] = "1050135671001299999"
        message = only_message(payload)
        assert message.conversation_key == f"x:dm:{BRAND}:777"
        assert message.author.handle is None  # not in the users map

    def test_a_dm_with_media_keeps_the_image(self) -> None:
        payload = load_event("x_dm_inbound")
        first_dm(payload)["message_create"]["message_data"]["attachment"] = {
            "type": "media",
            "media": {
                "id_str": "1050135600000000000",
                "media_url_https": "https://ton.twitter.com/1.1/ton/data/dm/1050135671001234947/1050135600000000000/abc.jpg",
                "type": "photo",
            },
        }
        (attachment,) = only_message(payload).attachments
        assert attachment.type == "photo"
        assert attachment.url.endswith("/abc.jpg")


# --- deliveries ---------------------------------------------------------------------------------


class TestDeliveries:
    @pytest.mark.parametrize(
        "key,events,reason",
        [
            ("favorite_events", [{"id": "a7ba59eab0bfcba386f7acedac279542", "created_at": "Mon Mar 26 16:33:26 +0000 2018"}], "like"),
            ("follow_events", [{"type": "follow", "created_timestamp": "1517588749178"}], "follow"),
            ("direct_message_indicate_typing_events", [{"created_timestamp": "1518127183443"}] * 2, "typing indicator"),
            ("tweet_delete_events", [{"status": {"id": "1", "user_id": BRAND}, "timestamp_ms": "1539202764000"}],
             "the account deleted its own tweet"),
            ("some_new_events", [{}], "X some_new_events are not handled"),
        ],
    )
    def test_other_activity_is_ignored_with_its_reason(self, key: str, events: list[dict[str, Any]], reason: str) -> None:
        batch = normalize({"for_user_id": BRAND, key: events})
        assert batch.messages == [] and batch.rejected == []
        assert batch.ignored == len(events) and batch.ignored_reasons == [reason] * len(events)

    def test_a_customers_deleted_tweet_is_a_deletion_in_their_conversation(self) -> None:
        event = {"status": {"id": "1050118621198921728", "user_id": CUSTOMER}, "timestamp_ms": "1539202764000"}
        deletion = only_message({"for_user_id": BRAND, "tweet_delete_events": [event]})
        assert (deletion.message_id, deletion.edit_of, deletion.deleted) == ("1050118621198921728:deleted", "1050118621198921728", True)
        assert deletion.conversation_key == only_message("x_mention").conversation_key
        assert deletion.created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)

    def test_a_delivery_without_for_user_id_cannot_be_attributed(self) -> None:
        payload = load_event("x_mention")
        del payload["for_user_id"]
        with pytest.raises(BadRequest):
            normalize(payload)

    @pytest.mark.parametrize("body", [[], "text", 1, None])
    def test_a_body_that_is_not_an_object_is_a_bad_request(self, body: Any) -> None:
        with pytest.raises(BadRequest):
            x.normalize_delivery(body)

    def test_a_malformed_tweet_is_quarantined_without_losing_the_others(self) -> None:
        payload = load_event("x_mention")
        broken = {"id_str": "1050118621198920000", "text": "no user object"}
        payload["tweet_create_events"].insert(0, broken)
        payload["tweet_create_events"].append(42)
        batch = normalize(payload)
        assert [m.message_id for m in batch.messages] == ["1050118621198921728"]
        assert [r.event for r in batch.rejected] == [broken, 42]
        assert {r.source for r in batch.rejected} == {"x"}

    def test_a_malformed_dm_is_quarantined_without_losing_the_others(self) -> None:
        payload = load_event("x_dm_inbound")
        broken = {"type": "message_create", "id": "1050135671001200000", "created_timestamp": "1539206828011"}
        payload["direct_message_events"].append(broken)
        batch = normalize(payload)
        assert [m.message_id for m in batch.messages] == ["1050135671001234947"]
        assert [r.event for r in batch.rejected] == [broken]

    def test_the_raw_tweet_is_kept_for_audit(self) -> None:
        payload = load_event("x_mention")
        assert only_message(payload).raw == first_tweet(payload)
