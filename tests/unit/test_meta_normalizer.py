"""Meta deliveries (Page feed, Messenger, Instagram, WhatsApp) into canonical messages.

Every expected value below is read off the fixture in ``tests/events`` by hand, so a
field that is dropped, renamed or mis-keyed by the normalizer fails a test.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.errors import BadRequest
from chalicelib.models import DeliveryStatus, Direction, Kind, NormalizedBatch, Platform, SocialMessage
from chalicelib.channels.meta import webhook as meta
from tests.support.events import load_event

PAGE_ID = "448242228374517"
POST_ID = "448242228374517_122131676912594941"
TOP_COMMENT_ID = "122131676912594941_542072878449250"
REPLY_ID = "122131676912594941_1213590066982748"
PSID = "7001234567890123"
IG_ACCOUNT_ID = "17841405726653026"
WA_PHONE_NUMBER_ID = "106540352242922"
WA_CUSTOMER = "16505551234"

UTC = timezone.utc


def normalize(payload: str | dict[str, Any]) -> NormalizedBatch:
    return meta.normalize_delivery(load_event(payload) if isinstance(payload, str) else payload)


def only_message(payload: str | dict[str, Any]) -> SocialMessage:
    batch = normalize(payload)
    assert batch.rejected == [], [r.error for r in batch.rejected]
    assert batch.statuses == []
    assert len(batch.messages) == 1, batch.messages
    return batch.messages[0]


def feed_value(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["entry"][0]["changes"][0]["value"]


def chat_event(payload: dict[str, Any], field: str = "messaging") -> dict[str, Any]:
    return payload["entry"][0][field][0]


def wa_value(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["entry"][0]["changes"][0]["value"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def messenger_event(**fields: Any) -> dict[str, Any]:
    """A Messenger delivery of one event from the customer PSID to PAGE_ID with ``fields``."""
    payload = load_event("meta_messenger_message")
    base = chat_event(payload)
    payload["entry"][0]["messaging"] = [
        {"sender": base["sender"], "recipient": base["recipient"], "timestamp": base["timestamp"], **fields}
    ]
    return payload


def feed_change(page_id: str, field: str, **value: Any) -> dict[str, Any]:
    """A Page delivery of one change."""
    return {"object": "page", "entry": [{"id": page_id, "time": 1_764_000_000, "changes": [{"field": field, "value": value}]}]}


# --- Facebook Page feed ---------------------------------------------------------------


class TestPageFeedComment:
    def test_a_top_level_comment_becomes_an_inbound_comment(self) -> None:
        message = only_message("meta_page_feed_comment")
        assert message.platform is Platform.FACEBOOK
        assert message.kind is Kind.COMMENT
        assert message.direction is Direction.INBOUND
        assert message.message_id == TOP_COMMENT_ID
        assert message.conversation_key == f"facebook:comment:{TOP_COMMENT_ID}"
        assert message.account_id == PAGE_ID
        assert message.parent_id == POST_ID
        assert message.thread_id == POST_ID
        assert message.author.platform_id == "6001987654321012"
        assert message.author.display_name == "Dana Reyes"
        assert message.author.handle is None
        assert message.text == "My order #4411 arrived broken. Who do I talk to?"
        assert message.created_at == utc(2025, 3, 22, 18, 16, 28)
        assert message.created_at.utcoffset().total_seconds() == 0
        assert message.permalink == "https://www.facebook.com/448242228374517/posts/122131676912594941"
        assert message.attachments == ()
        assert not message.is_private

    def test_a_reply_shares_its_top_comments_conversation(self) -> None:
        top = only_message("meta_page_feed_comment")
        reply = only_message("meta_page_feed_reply")
        assert reply.kind is Kind.REPLY
        assert reply.message_id == REPLY_ID
        assert reply.parent_id == TOP_COMMENT_ID
        assert reply.thread_id == POST_ID
        assert reply.conversation_key == top.conversation_key == f"facebook:comment:{TOP_COMMENT_ID}"
        assert reply.text == "Still waiting for an answer…"
        assert reply.created_at == utc(2025, 3, 22, 18, 20, 4)

    def test_without_a_post_permalink_the_comment_links_to_itself(self) -> None:
        reply = only_message("meta_page_feed_reply")
        assert reply.permalink == f"https://www.facebook.com/{REPLY_ID}"

    def test_two_top_level_comments_on_one_post_are_two_conversations(self) -> None:
        first = only_message("meta_page_feed_comment")
        other = load_event("meta_page_feed_comment")
        value = feed_value(other)
        value["comment_id"] = "122131676912594941_987650001234567"
        value["from"] = {"id": "6003111222333444", "name": "Alex Kim"}
        value["message"] = "Same here."
        second = only_message(other)
        assert first.thread_id == second.thread_id == POST_ID
        assert second.kind is Kind.COMMENT
        assert second.conversation_key == "facebook:comment:122131676912594941_987650001234567"
        assert second.conversation_key != first.conversation_key

    def test_the_pages_own_reply_is_outbound_on_the_customers_thread(self) -> None:
        payload = load_event("meta_page_feed_reply")
        value = feed_value(payload)
        value["from"] = {"id": PAGE_ID, "name": "Acme Support"}
        value["comment_id"] = "122131676912594941_1213590066999999"
        value["message"] = "Sorry Dana, we've sent you a DM."
        message = only_message(payload)
        assert message.direction is Direction.OUTBOUND
        assert message.author.platform_id == PAGE_ID
        assert message.conversation_key == f"facebook:comment:{TOP_COMMENT_ID}"

    def test_an_iso_created_time_is_read_as_utc(self) -> None:
        payload = load_event("meta_page_feed_comment")
        feed_value(payload)["created_time"] = "2025-03-22T18:16:28+0000"
        assert only_message(payload).created_at == utc(2025, 3, 22, 18, 16, 28)

    def test_a_photo_on_a_comment_becomes_an_image_attachment(self) -> None:
        payload = load_event("meta_page_feed_comment")
        feed_value(payload)["photo"] = "https://scontent.xx.fbcdn.net/v/t39.30808-6/broken_box.jpg"
        (attachment,) = only_message(payload).attachments
        assert attachment.type == "image"
        assert attachment.url == "https://scontent.xx.fbcdn.net/v/t39.30808-6/broken_box.jpg"

    def test_a_reaction_is_counted_as_ignored_not_stored(self) -> None:
        payload = load_event("meta_page_feed_comment")
        payload["entry"][0]["changes"][0]["value"] = {
            "from": {"id": "6004555666777888", "name": "John Roe"},
            "item": "reaction",
            "reaction_type": "like",
            "verb": "add",
            "post_id": POST_ID,
            "parent_id": POST_ID,
            "created_time": 1742667695,
        }
        batch = normalize(payload)
        assert batch.messages == [] and batch.rejected == []
        assert (batch.ignored, batch.ignored_reasons) == (1, ["reaction"])

    def test_graph_2_10_named_the_author_in_sender_id_and_sender_name(self) -> None:
        payload = load_event("meta_page_feed_comment")
        value = feed_value(payload)
        del value["from"]
        value.update(sender_id=6001987654321012, sender_name="Dana Reyes")
        message = only_message(payload)
        assert (message.author.platform_id, message.author.display_name) == ("6001987654321012", "Dana Reyes")
        assert message.direction is Direction.INBOUND

    def test_a_comment_naming_no_author_is_kept_with_the_unknown_author(self) -> None:
        payload = load_event("meta_page_feed_comment")
        del feed_value(payload)["from"]
        message = only_message(payload)
        assert (message.author.platform_id, message.author.label) == ("unknown", "Unknown Facebook user")
        assert message.text == "My order #4411 arrived broken. Who do I talk to?"

    def test_an_edit_is_keyed_by_its_text_and_a_removal_by_the_original(self) -> None:
        def change(verb: str, text: str | None) -> SocialMessage:
            payload = load_event("meta_page_feed_comment")
            feed_value(payload).update(verb=verb, message=text)
            return only_message(payload)

        first, again, other = change("edited", "Arrived broken."), change("edited", "Arrived broken."), change("edited", "Fixed, thanks")
        assert first.edit_of == TOP_COMMENT_ID and first.message_id.startswith(f"{TOP_COMMENT_ID}:edit:")
        assert again.message_id == first.message_id != other.message_id
        removal = change("remove", None)
        assert (removal.message_id, removal.edit_of, removal.deleted) == (f"{TOP_COMMENT_ID}:deleted", TOP_COMMENT_ID, True)

    def test_a_hidden_comment_is_ignored_with_its_reason(self) -> None:
        payload = load_event("meta_page_feed_comment")
        feed_value(payload)["verb"] = "hide"
        batch = normalize(payload)
        assert batch.messages == [] and batch.ignored_reasons == ["a comment was hidden or unhidden by the Page"]

    def test_a_mention_of_the_page_is_a_mention_conversation(self) -> None:
        message = only_message(feed_change(
            PAGE_ID, "mention", item="comment", verb="add", post_id="9001_77", comment_id="77_88",
            message="@Acme my parcel is lost", created_time=1_764_000_000,
        ))
        assert (message.kind, message.direction) == (Kind.MENTION, Direction.INBOUND)
        assert (message.message_id, message.conversation_key) == ("mention:77_88", "facebook:mention:77_88")
        assert (message.text, message.thread_id, message.author.platform_id) == ("@Acme my parcel is lost", "9001_77", "unknown")

    def test_a_share_is_a_post_with_its_link(self) -> None:
        message = only_message(feed_change(
            PAGE_ID, "feed", item="share", verb="add", post_id=f"{PAGE_ID}_5", link="https://news.example/a",
            message="Look at this", **{"from": {"id": "6001", "name": "Dana"}},
        ))
        assert (message.kind, message.text) == (Kind.POST, "Look at this")
        assert [(a.type, a.url) for a in message.attachments] == [("link", "https://news.example/a")]


class TestRatings:
    def rating(self, **value: Any) -> dict[str, Any]:
        return feed_change(PAGE_ID, "ratings", **{"item": "rating", "verb": "add", "open_graph_story_id": 9040, "reviewer_id": 7059,
                                                  "reviewer_name": "Omar", "created_time": 1_764_000_000, **value})

    @pytest.mark.parametrize("kind", ["negative", "NEGATIVE", "Negative"])
    def test_recommendation_type_is_read_in_any_case(self, kind: str) -> None:
        message = only_message(self.rating(recommendation_type=kind, review_text="Never again"))
        assert (message.kind, message.recommends, message.rating) == (Kind.REVIEW, False, None)
        assert (message.conversation_key, message.author.label) == ("facebook:review:9040", "Omar")

    def test_a_comment_under_a_review_joins_the_reviews_conversation(self) -> None:
        message = only_message(self.rating(item="comment", comment_id="9040_1", post_id="7059_9040", parent_id="7059_9040",
                                           sender_id=7059, sender_name="Omar", message="Still waiting"))
        assert (message.kind, message.conversation_key, message.message_id) == (Kind.COMMENT, "facebook:review:9040", "9040_1")
        assert (message.author.platform_id, message.text, message.rating) == ("7059", "Still waiting", None)

    def test_the_pages_answer_under_a_review_is_outbound(self) -> None:
        message = only_message(self.rating(item="comment", comment_id="9040_2", post_id="7059_9040",
                                           **{"from": {"id": PAGE_ID, "name": "Acme"}}, message="Sorry!"))
        assert message.direction is Direction.OUTBOUND

    def test_a_like_on_a_review_is_ignored(self) -> None:
        batch = normalize(self.rating(item="like", **{"from": {"id": "7059", "name": "Omar"}}))
        assert batch.messages == [] and batch.ignored_reasons == ["like on a review"]

    def test_a_removed_rating_is_a_deletion_of_the_review(self) -> None:
        message = only_message(feed_change(PAGE_ID, "ratings", item="rating", verb="remove", open_graph_story_id=9040, reviewer_id=7059))
        assert (message.message_id, message.edit_of, message.deleted) == ("9040:deleted", "9040", True)
        assert message.author.platform_id == "7059"


class TestPageVisitorPost:
    def test_a_visitor_post_is_its_own_conversation(self) -> None:
        message = only_message("meta_page_visitor_post")
        post_id = "448242228374517_122131699001234567"
        assert message.platform is Platform.FACEBOOK
        assert message.kind is Kind.POST
        assert message.direction is Direction.INBOUND
        assert message.message_id == post_id
        assert message.conversation_key == f"facebook:post:{post_id}"
        assert message.thread_id == post_id
        assert message.parent_id is None
        assert message.account_id == PAGE_ID
        assert message.author.platform_id == "6002123456789034"
        assert message.author.display_name == "Sam Ortiz"
        assert message.text == "Delivery is two weeks late and nobody answers the phone. Order 88-1203."
        assert message.created_at == utc(2025, 3, 22, 19, 0, 10)
        assert message.permalink == f"https://www.facebook.com/{post_id}"

    def test_item_post_is_handled_like_item_status(self) -> None:
        payload = load_event("meta_page_visitor_post")
        feed_value(payload)["item"] = "post"
        assert only_message(payload).kind is Kind.POST

    def test_a_photo_post_carries_its_image(self) -> None:
        payload = load_event("meta_page_visitor_post")
        value = feed_value(payload)
        value["item"] = "photo"
        value["link"] = "https://www.facebook.com/photo.php?fbid=122131699001234999"
        (attachment,) = only_message(payload).attachments
        assert attachment.type == "image"
        assert attachment.url == "https://www.facebook.com/photo.php?fbid=122131699001234999"

    def test_the_pages_own_post_is_outbound(self) -> None:
        payload = load_event("meta_page_visitor_post")
        feed_value(payload)["from"] = {"id": PAGE_ID, "name": "Acme"}
        assert only_message(payload).direction is Direction.OUTBOUND

    def test_a_removed_post_is_a_deletion_of_it(self) -> None:
        payload = load_event("meta_page_visitor_post")
        feed_value(payload)["verb"] = "remove"
        message = only_message(payload)
        post_id = "448242228374517_122131699001234567"
        assert (message.message_id, message.edit_of, message.deleted) == (f"{post_id}:deleted", post_id, True)


# --- Messenger --------------------------------------------------------------------------


class TestMessenger:
    def test_a_text_message_is_an_inbound_dm_keyed_by_page_and_psid(self) -> None:
        message = only_message("meta_messenger_message")
        assert message.platform is Platform.MESSENGER
        assert message.kind is Kind.DIRECT_MESSAGE
        assert message.direction is Direction.INBOUND
        assert message.is_private
        assert message.message_id == "mid.1457764197618:41d102a3e1ae206a38"
        assert message.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}"
        assert message.account_id == PAGE_ID
        assert message.author.platform_id == PSID
        assert message.text == "Hi, I was charged twice for my subscription."
        # timestamp 1458692752478 is in milliseconds
        assert message.created_at == datetime(2016, 3, 23, 0, 25, 52, 478000, tzinfo=UTC)
        assert message.parent_id is None
        assert message.attachments == ()

    def test_an_attachment_only_message_keeps_its_file(self) -> None:
        message = only_message("meta_messenger_attachment")
        assert message.message_id == "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c"
        assert message.text == ""
        (attachment,) = message.attachments
        assert attachment.type == "image"
        assert attachment.url == "https://scontent.xx.fbcdn.net/v/t1.15752-9/invoice_inv2291.jpg"
        assert message.created_at == datetime(2018, 2, 12, 23, 46, 35, 308000, tzinfo=UTC)

    def test_an_echo_is_outbound_on_the_same_conversation(self) -> None:
        inbound = only_message("meta_messenger_message")
        echo = only_message("meta_messenger_echo")
        assert echo.direction is Direction.OUTBOUND
        assert echo.author.platform_id == PAGE_ID
        assert echo.message_id == "mid.1457764197618:41d102a3e1ae206a39"
        assert echo.text == "Thanks, we're looking into it."
        assert echo.conversation_key == inbound.conversation_key

    def test_standby_events_are_read_too(self) -> None:
        message = only_message("meta_messenger_standby")
        assert message.platform is Platform.MESSENGER
        assert message.direction is Direction.OUTBOUND
        assert message.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}"
        # A media template card without title or elements' words: its link is the text.
        assert (message.text, message.attachments) == ("Shared a card: https://www.facebook.com/commerce/update/", ())

    def test_an_inbound_standby_message_is_inbound(self) -> None:
        payload = load_event("meta_messenger_standby")
        event = chat_event(payload, "standby")
        event["sender"], event["recipient"] = {"id": PSID}, {"id": PAGE_ID}
        event["message"] = {"mid": "m_standby_inbound_1", "text": "Is a human there?"}
        message = only_message(payload)
        assert message.direction is Direction.INBOUND
        assert message.author.platform_id == PSID

    def test_a_reply_to_an_earlier_message_keeps_its_parent(self) -> None:
        payload = load_event("meta_messenger_message")
        chat_event(payload)["message"]["reply_to"] = {"mid": "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU"}
        assert only_message(payload).parent_id == "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU"

    def test_one_conversation_per_customer_per_page(self) -> None:
        base = only_message("meta_messenger_message")
        other_customer = load_event("meta_messenger_message")
        chat_event(other_customer)["sender"]["id"] = "7009999999999999"
        other_page = load_event("meta_messenger_message")
        other_page["entry"][0]["id"] = "104976543210001"
        chat_event(other_page)["recipient"]["id"] = "104976543210001"
        keys = {base.conversation_key, only_message(other_customer).conversation_key, only_message(other_page).conversation_key}
        assert keys == {
            f"messenger:dm:{PAGE_ID}:{PSID}",
            f"messenger:dm:{PAGE_ID}:7009999999999999",
            f"messenger:dm:104976543210001:{PSID}",
        }

    @pytest.mark.parametrize(
        ("event", "reason"),
        [
            ({"read": {"watermark": 1458668856253}}, "read receipt"),
            ({"delivery": {"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253}}, "delivery receipt"),
            ({"postback": {"mid": "m_postback_1", "title": "Get Started", "payload": "START"}}, "postback (a button press)"),
            ({"reaction": {"mid": "m_1", "action": "react", "reaction": "love", "emoji": "❤️"}}, "reaction"),
        ],
        ids=["read", "delivery", "postback", "reaction"],
    )
    def test_receipts_postbacks_and_reactions_are_ignored_with_their_reason(self, event: dict[str, Any], reason: str) -> None:
        batch = normalize(messenger_event(**event))
        assert batch.messages == [] and batch.rejected == []
        assert (batch.ignored, batch.ignored_reasons) == (1, [reason])

    def test_an_unsent_message_is_a_deletion_of_it(self) -> None:
        deletion = only_message(messenger_event(message={"mid": "m_deleted_1", "is_deleted": True}))
        assert (deletion.message_id, deletion.edit_of, deletion.deleted) == ("m_deleted_1:deleted", "m_deleted_1", True)
        assert deletion.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}"
        assert deletion.author.platform_id == PSID and deletion.direction is Direction.INBOUND

    def test_an_edit_is_a_change_of_the_original_numbered_by_its_edit_count(self) -> None:
        def edit(text: str, count: int) -> SocialMessage:
            return only_message(messenger_event(message_edit={"mid": "m_orig_1", "text": text, "num_edit": count}))

        first, again, second = edit("I was charged 3 times", 1), edit("I was charged 3 times", 1), edit("Charged 3x, see PDF", 2)
        assert (first.message_id, first.edit_of, first.text) == ("m_orig_1:edit:1", "m_orig_1", "I was charged 3 times")
        assert again.message_id == first.message_id  # a redelivery is deduplicated
        assert second.message_id == "m_orig_1:edit:2"  # another edit is kept too
        assert first.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}" and not first.deleted

    @pytest.mark.parametrize(
        ("attachment", "text"),
        [
            (
                {"type": "location", "title": "Pinned Location", "payload": {"coordinates": {"lat": 40.41, "long": -3.7}}},
                "Shared a location: Pinned Location (40.41, -3.7) https://www.google.com/maps/search/?api=1&query=40.41%2C-3.7",
            ),
            (
                {"type": "fallback", "title": "Order #4411", "url": "https://acme.example/o/4411", "payload": "BLOB"},
                "Shared a link: Order #4411 https://acme.example/o/4411",
            ),
            ({"type": "fallback", "title": "Order #4411", "url": "https://acme.example/o/4411"}, "Shared a link: Order #4411 https://acme.example/o/4411"),
            (
                {"type": "template", "payload": {"product": {"elements": [{"title": "Blue sofa", "subtitle": "$40", "image_url": "https://cdn.example/s.jpg"}]}}},
                "Shared a product: Blue sofa ($40) https://cdn.example/s.jpg",
            ),
            (
                {"type": "template", "payload": {"template_type": "generic", "elements": [{"title": "Return form", "item_url": "https://acme.example/r"}]}},
                "Shared a card: Return form https://acme.example/r",
            ),
        ],
        ids=["location", "fallback-string-payload", "fallback-without-payload", "product", "generic"],
    )
    def test_a_shared_location_link_or_card_is_written_into_the_text(self, attachment: dict[str, Any], text: str) -> None:
        message = only_message(messenger_event(message={"mid": "m_att_1", "attachments": [attachment]}))
        assert (message.text, message.attachments) == (text, ())

    def test_an_unsupported_message_says_so(self) -> None:
        message = only_message(messenger_event(message={"mid": "m_unsupported_1", "is_unsupported": True}))
        assert message.text == "[Messenger did not pass this message on: unsupported message type]"


# --- Instagram ----------------------------------------------------------------------------


class TestInstagram:
    def test_a_comment_on_media_is_an_inbound_comment(self) -> None:
        message = only_message("meta_instagram_comment")
        assert message.platform is Platform.INSTAGRAM
        assert message.kind is Kind.COMMENT
        assert message.direction is Direction.INBOUND
        assert message.message_id == "17865799348089039"
        assert message.conversation_key == "instagram:comment:17865799348089039"
        assert message.account_id == IG_ACCOUNT_ID
        assert message.author.platform_id == "8001765432109876"
        assert message.author.handle == "lena.k"
        assert message.text == "The zipper broke after two days. Not happy."
        assert message.thread_id == "17918195224117851"
        assert message.parent_id is None
        assert message.created_at.utcoffset().total_seconds() == 0

    def test_a_reply_shares_its_parent_comments_conversation(self) -> None:
        top = only_message("meta_instagram_comment")
        payload = load_event("meta_instagram_comment")
        value = feed_value(payload)
        value.update(id="17866000000000001", parent_id="17865799348089039", text="Any update?")
        reply = only_message(payload)
        assert reply.kind is Kind.REPLY
        assert reply.parent_id == "17865799348089039"
        assert reply.conversation_key == top.conversation_key

    def test_two_comments_on_one_media_are_two_conversations(self) -> None:
        first = only_message("meta_instagram_comment")
        payload = load_event("meta_instagram_comment")
        feed_value(payload).update(id="17866000000000002", **{"from": {"id": "8009", "username": "sam"}})
        second = only_message(payload)
        assert first.thread_id == second.thread_id
        assert first.conversation_key != second.conversation_key

    def test_live_comments_are_comments(self) -> None:
        payload = load_event("meta_instagram_comment")
        payload["entry"][0]["changes"][0]["field"] = "live_comments"
        assert only_message(payload).kind is Kind.COMMENT

    def test_a_comment_mention_points_at_the_comment(self) -> None:
        message = only_message("meta_instagram_mention")
        assert message.platform is Platform.INSTAGRAM
        assert message.kind is Kind.MENTION
        assert message.direction is Direction.INBOUND
        assert message.message_id == "mention:17894227972186120"
        assert message.conversation_key == "instagram:mention:17894227972186120"
        assert message.account_id == IG_ACCOUNT_ID
        assert message.parent_id == "17894227972186120"
        assert message.thread_id == "17918195224117851"
        # The webhook carries ids only: the ticket says where to look.
        assert "comment" in message.text and "17918195224117851" in message.text

    def test_a_caption_mention_points_at_the_media(self) -> None:
        payload = load_event("meta_instagram_mention")
        del feed_value(payload)["comment_id"]
        message = only_message(payload)
        assert message.message_id == "mention:17918195224117851"
        assert message.conversation_key == "instagram:mention:17918195224117851"
        assert message.parent_id is None
        assert "caption" in message.text

    def test_a_direct_message_is_keyed_by_account_and_igsid(self) -> None:
        message = only_message("meta_instagram_dm")
        assert message.platform is Platform.INSTAGRAM
        assert message.kind is Kind.DIRECT_MESSAGE
        assert message.direction is Direction.INBOUND
        assert message.conversation_key == f"instagram:dm:{IG_ACCOUNT_ID}:8002345678901234"
        assert message.author.platform_id == "8002345678901234"
        assert message.text == "Can I still return a jacket bought in March?"
        assert message.created_at == datetime(2025, 3, 22, 18, 28, 20, 221000, tzinfo=UTC)
        assert message.message_id.startswith("aWdfZAG1")

    def test_an_instagram_echo_is_outbound_on_the_customers_conversation(self) -> None:
        inbound = only_message("meta_instagram_dm")
        payload = load_event("meta_instagram_dm")
        event = chat_event(payload)
        event["sender"], event["recipient"] = {"id": IG_ACCOUNT_ID}, {"id": "8002345678901234"}
        event["message"] = {"mid": "aWdfZAG1echo", "text": "Yes, within 90 days.", "is_echo": True}
        echo = only_message(payload)
        assert echo.direction is Direction.OUTBOUND
        assert echo.conversation_key == inbound.conversation_key

    def test_an_unsupported_field_is_counted_as_ignored(self) -> None:
        batch = normalize("meta_unsupported_field")
        assert batch.messages == [] and batch.statuses == [] and batch.rejected == []
        assert batch.ignored == 1

    def test_a_comment_without_a_timestamp_is_dated_by_its_notification(self) -> None:
        message = only_message("meta_instagram_comment")
        assert message.created_at == utc(2025, 3, 22, 18, 26, 40)  # entry.time 1742668000

    def test_a_comment_naming_no_author_is_kept_with_the_unknown_author(self) -> None:
        payload = load_event("meta_instagram_comment")
        del feed_value(payload)["from"]
        message = only_message(payload)
        assert (message.author.platform_id, message.author.label) == ("unknown", "Unknown Instagram user")
        assert message.direction is Direction.INBOUND

    def test_standby_messages_are_read_like_messaging(self) -> None:
        payload = load_event("meta_instagram_dm")
        payload["entry"][0]["standby"] = payload["entry"][0].pop("messaging")
        message = only_message(payload)
        assert message.conversation_key == f"instagram:dm:{IG_ACCOUNT_ID}:8002345678901234"
        assert message.text == "Can I still return a jacket bought in March?"

    def test_an_unsent_direct_message_is_a_deletion_of_it(self) -> None:
        payload = load_event("meta_instagram_dm")
        chat_event(payload)["message"] = {"mid": "aWdfZAG1gone", "is_deleted": True}
        message = only_message(payload)
        assert (message.message_id, message.edit_of, message.deleted) == ("aWdfZAG1gone:deleted", "aWdfZAG1gone", True)
        assert message.conversation_key == f"instagram:dm:{IG_ACCOUNT_ID}:8002345678901234"

    def test_a_comment_whose_id_is_named_comment_id_is_stored(self) -> None:
        payload = load_event("meta_instagram_comment")
        value = feed_value(payload)
        value["comment_id"] = value.pop("id")
        message = only_message(payload)
        assert message.message_id == "17865799348089039"


# --- WhatsApp -----------------------------------------------------------------------------


class TestWhatsApp:
    def test_a_text_message_is_a_dm_keyed_by_phone_number_id_and_wa_id(self) -> None:
        message = only_message("meta_whatsapp_text")
        assert message.platform is Platform.WHATSAPP
        assert message.kind is Kind.DIRECT_MESSAGE
        assert message.direction is Direction.INBOUND
        assert message.message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
        assert message.conversation_key == f"whatsapp:dm:{WA_PHONE_NUMBER_ID}:{WA_CUSTOMER}"
        assert message.account_id == WA_PHONE_NUMBER_ID  # not the WABA id in entry.id
        assert message.author.platform_id == WA_CUSTOMER
        assert message.author.display_name == "Sheena Nelson"
        assert message.author.handle == "+16505551234"
        assert message.text == "Does it come in another color?"
        assert message.created_at == utc(2025, 6, 8, 20, 59, 43)  # "1749416383", a string of seconds
        assert message.attachments == ()

    def test_an_image_message_keeps_the_media_id_and_caption(self) -> None:
        message = only_message("meta_whatsapp_image")
        assert message.text == "Taj Mahal"
        (attachment,) = message.attachments
        assert attachment.type == "image"
        assert attachment.media_id == "1003383421387256"
        assert attachment.mime_type == "image/jpeg"
        assert attachment.url is None  # WhatsApp sends a media id, not a URL
        assert message.created_at == utc(2025, 4, 11, 4, 8, 16)

    def test_text_and_image_from_one_customer_share_a_conversation(self) -> None:
        assert only_message("meta_whatsapp_text").conversation_key == only_message("meta_whatsapp_image").conversation_key

    def test_a_quoted_message_keeps_its_context_as_parent(self) -> None:
        payload = load_event("meta_whatsapp_text")
        wa_value(payload)["messages"][0]["context"] = {
            "from": "15550783881",
            "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA",
        }
        assert only_message(payload).parent_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"

    def test_statuses_become_delivery_statuses_not_messages(self) -> None:
        batch = normalize("meta_whatsapp_status")
        assert batch.messages == [] and batch.rejected == []
        delivered, failed = batch.statuses
        assert all(isinstance(s, DeliveryStatus) for s in batch.statuses)
        assert delivered.platform is Platform.WHATSAPP
        assert delivered.message_id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjY5MjA5NDE5NTk0NTgA"
        assert delivered.status == "delivered"
        assert delivered.timestamp == utc(2025, 6, 18, 16, 22, 53)
        assert delivered.errors == ()
        # The receipt lands on the customer's conversation, where the brand's message was stored.
        assert delivered.conversation_key == only_message("meta_whatsapp_text").conversation_key
        assert failed.status == "failed"
        assert [e["code"] for e in failed.errors] == [131047]

    def test_a_reaction_is_ignored(self) -> None:
        payload = load_event("meta_whatsapp_text")
        wa_value(payload)["messages"] = [
            {
                "from": WA_CUSTOMER,
                "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJBNDUzQjU4QUYwRkZDOTI3NAA=",
                "timestamp": "1749416400",
                "type": "reaction",
                "reaction": {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjY5MjA5NDE5NTk0NTgA", "emoji": "👍"},
            }
        ]
        batch = normalize(payload)
        assert batch.messages == [] and batch.rejected == []
        assert (batch.ignored, batch.ignored_reasons) == (1, ["reaction"])

    def test_another_field_of_the_business_account_is_ignored(self) -> None:
        payload = load_event("meta_whatsapp_text")
        payload["entry"][0]["changes"][0] = {
            "field": "message_template_status_update",
            "value": {"event": "APPROVED", "message_template_id": 12345678, "message_template_name": "order_update"},
        }
        batch = normalize(payload)
        assert batch.messages == [] and batch.rejected == []
        assert batch.ignored == 1
        assert batch.ignored_reasons == ["WhatsApp field 'message_template_status_update' is not handled"]

    def test_a_user_known_by_bsuid_only_is_keyed_on_it_with_the_username_as_handle(self) -> None:
        payload = load_event("meta_whatsapp_text")
        value = wa_value(payload)
        value["contacts"] = [{"profile": {"name": "Sheena Nelson", "username": "@sheena"}, "user_id": "US.1349120865530274"}]
        message_event = value["messages"][0]
        del message_event["from"]
        message_event["from_user_id"] = "US.1349120865530274"
        message = only_message(payload)
        assert message.conversation_key == f"whatsapp:dm:{WA_PHONE_NUMBER_ID}:US.1349120865530274"
        assert (message.author.platform_id, message.author.handle, message.author.display_name) == (
            "US.1349120865530274", "sheena", "Sheena Nelson")

    def test_with_both_the_bsuid_keys_and_the_phone_stays_the_handle(self) -> None:
        payload = load_event("meta_whatsapp_text")
        value = wa_value(payload)
        value["contacts"][0]["user_id"] = "US.1349120865530274"
        message = only_message(payload)
        assert message.conversation_key == f"whatsapp:dm:{WA_PHONE_NUMBER_ID}:US.1349120865530274"
        assert (message.author.platform_id, message.author.handle) == ("US.1349120865530274", f"+{WA_CUSTOMER}")

    def test_a_receipt_keys_on_the_bsuid_like_the_customers_messages(self) -> None:
        payload = load_event("meta_whatsapp_status")
        value = wa_value(payload)
        value["contacts"] = [{"wa_id": WA_CUSTOMER, "user_id": "US.1349120865530274", "profile": {"name": "Sheena"}}]
        delivered, _ = normalize(payload).statuses
        assert delivered.conversation_key == f"whatsapp:dm:{WA_PHONE_NUMBER_ID}:US.1349120865530274"
        recipient_only = load_event("meta_whatsapp_status")
        status = wa_value(recipient_only)["statuses"][0]
        del status["recipient_id"]
        status["recipient_user_id"] = "US.1349120865530274"
        assert normalize(recipient_only).statuses[0].conversation_key == delivered.conversation_key

    def test_a_group_message_is_the_groups_conversation(self) -> None:
        payload = load_event("meta_whatsapp_text")
        wa_value(payload)["messages"][0]["group_id"] = "120363418770915618@g.us"
        message = only_message(payload)
        assert (message.kind, message.conversation_key) == (Kind.COMMENT, f"whatsapp:group:{WA_PHONE_NUMBER_ID}:120363418770915618@g.us")
        assert message.author.platform_id == WA_CUSTOMER

    @pytest.mark.parametrize(
        ("fields", "text"),
        [
            (
                {"type": "contacts", "contacts": [{"name": {"first_name": "Ana", "last_name": "Ruiz"}, "phones": [{"phone": "+34 600 000 000"}],
                                                   "emails": [{"email": "ana@example.com"}]}]},
                "Shared a contact: Ana Ruiz, +34 600 000 000, ana@example.com",
            ),
            (
                {"type": "order", "order": {"catalog_id": "1", "text": "For Friday please", "product_items": [
                    {"product_retailer_id": "sofa", "quantity": 1, "item_price": 499.5, "currency": "EUR"},
                    {"product_retailer_id": "lamp", "quantity": 2, "item_price": 20, "currency": "EUR"}]}},
                "For Friday please\nPlaced an order: 1 × sofa at 499.50 EUR, 2 × lamp at 20.00 EUR (total 539.50 EUR)",
            ),
            (
                {"type": "order", "order": {"product_items": [{"product_retailer_id": "sofa", "quantity": 1}]}},
                "Placed an order: 1 × sofa",
            ),
            (
                {"type": "location", "location": {"latitude": 40.41, "longitude": -3.7}},
                "Shared a location: 40.41, -3.7 https://www.google.com/maps/search/?api=1&query=40.41%2C-3.7",
            ),
            ({"type": "sticker", "sticker": {"id": "77", "mime_type": "image/webp"}}, "[sticker]"),
            ({"type": "ephemeral"}, "[WhatsApp did not pass this message on: message type 'ephemeral']"),
        ],
        ids=["contacts", "order", "order-without-prices", "location", "sticker", "unknown-type"],
    )
    def test_shapes_without_plain_text_become_readable_text(self, fields: dict[str, Any], text: str) -> None:
        payload = load_event("meta_whatsapp_text")
        message_event = wa_value(payload)["messages"][0]
        del message_event["text"]
        message_event.update(fields)
        assert only_message(payload).text == text

    def test_a_system_message_is_ignored_and_says_conversations_are_not_rekeyed(self) -> None:
        payload = load_event("meta_whatsapp_text")
        wa_value(payload)["messages"] = [{"from": WA_CUSTOMER, "id": "wamid.sys", "timestamp": "1749416400", "type": "system",
                                          "system": {"body": "changed", "wa_id": "12195555358", "type": "customer_changed_number"}}]
        batch = normalize(payload)
        assert batch.messages == [] and batch.ignored == 1
        assert "customer_changed_number" in batch.ignored_reasons[0] and "not re-keyed" in batch.ignored_reasons[0]


# --- batches ------------------------------------------------------------------------------


class TestBatches:
    def test_every_entry_and_event_of_a_batch_is_handled(self) -> None:
        batch = normalize("meta_multi_entry")
        assert batch.rejected == []
        assert batch.ignored == 2  # the reaction and the read receipt
        assert [(m.platform, m.kind, m.account_id) for m in batch.messages] == [
            (Platform.FACEBOOK, Kind.COMMENT, PAGE_ID),
            (Platform.MESSENGER, Kind.DIRECT_MESSAGE, PAGE_ID),
            (Platform.FACEBOOK, Kind.POST, "104976543210001"),
        ]
        assert [m.conversation_key for m in batch.messages] == [
            "facebook:comment:122131676912594941_987650001234567",
            f"messenger:dm:{PAGE_ID}:{PSID}",
            "facebook:post:104976543210001_555000111222333",
        ]

    def test_a_second_comment_in_a_batch_does_not_join_another_customers_thread(self) -> None:
        batch = normalize("meta_multi_entry")
        assert batch.messages[0].conversation_key != only_message("meta_page_feed_comment").conversation_key

    def test_malformed_events_are_quarantined_without_losing_the_others(self) -> None:
        payload = load_event("meta_multi_entry")
        broken_change = {"field": "feed", "value": {"item": "comment", "verb": "add", "post_id": POST_ID, "message": "no id, no author"}}
        broken_chat = {"recipient": {"id": PAGE_ID}, "timestamp": 1742667700600, "message": {"mid": "m_no_sender", "text": "?"}}
        payload["entry"][0]["changes"].insert(0, broken_change)
        payload["entry"][1]["messaging"].append(broken_chat)
        payload["entry"][1]["messaging"].append("not an event")
        batch = normalize(payload)
        assert len(batch.messages) == 3
        assert batch.ignored == 2
        assert len(batch.rejected) == 3
        assert {r.source for r in batch.rejected} == {"meta"}
        assert [r.event for r in batch.rejected] == [broken_change, broken_chat, "not an event"]
        assert all(r.error for r in batch.rejected)

    def test_a_malformed_whatsapp_message_does_not_lose_its_neighbour(self) -> None:
        payload = load_event("meta_whatsapp_text")
        good = wa_value(payload)["messages"][0]
        bad = copy.deepcopy(good)
        del bad["from"]
        bad["id"] = "wamid.broken"
        wa_value(payload)["messages"] = [bad, good]
        batch = normalize(payload)
        assert [m.message_id for m in batch.messages] == [good["id"]]
        assert [r.event for r in batch.rejected] == [bad]

    def test_an_event_without_a_receiving_account_is_quarantined(self) -> None:
        payload = load_event("meta_messenger_message")
        del payload["entry"][0]["id"]
        batch = normalize(payload)
        assert batch.messages == []
        assert len(batch.rejected) == 1

    def test_an_unknown_object_is_ignored(self) -> None:
        batch = normalize({"object": "user", "entry": [{"id": "1", "time": 1520383571, "changes": [{"field": "photos"}]}]})
        assert batch.messages == [] and batch.rejected == []
        assert batch.ignored == 1

    def test_an_empty_entry_list_is_an_empty_batch(self) -> None:
        batch = normalize({"object": "page", "entry": []})
        assert (batch.messages, batch.statuses, batch.ignored, batch.rejected) == ([], [], 0, [])

    def test_entry_that_is_not_a_list_is_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            normalize({"object": "page", "entry": {"id": PAGE_ID}})

    def test_a_non_object_entry_is_quarantined_without_losing_the_others(self) -> None:
        payload = load_event("meta_multi_entry")
        payload["entry"].insert(1, None)
        batch = normalize(payload)
        assert len(batch.messages) == 3
        assert len(batch.rejected) == 1

    def test_the_raw_event_is_kept_for_audit(self) -> None:
        payload = load_event("meta_page_feed_comment")
        message = only_message(payload)
        assert message.raw == payload["entry"][0]["changes"][0]
