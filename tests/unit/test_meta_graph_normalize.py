"""Graph API objects (backfill) normalize to the same identity as webhook deliveries.

"A message both delivered and backfilled is stored once" holds only if both paths
produce the same ``message_id`` and ``conversation_key`` (the store's item key), and
the same direction and author id (the ticket's requester). Each test normalizes one
comment or message through the webhook fixture in ``tests/events`` and through the
Graph object Meta returns for it, and compares.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.http import HttpResponse
from chalicelib.models import Direction, Kind, Platform, SocialMessage
from chalicelib.channels.meta import webhook as meta
from chalicelib.channels.meta.graph import (
    GraphAuthError,
    GraphError,
    GraphRateLimited,
    business_usage_wait,
    normalize_conversation_messages,
    normalize_feed_comments,
    normalize_ig_media_comments,
    parse_graph_time,
    raise_for_graph_error,
    webhook_mid,
)
from tests.support.events import load_event

PAGE_ID = "448242228374517"
POST_ID = "448242228374517_122131676912594941"
TOP_COMMENT_ID = "122131676912594941_542072878449250"
REPLY_ID = "122131676912594941_1213590066982748"
CUSTOMER = "6001987654321012"
PSID = "7001234567890123"
IG_ACCOUNT_ID = "17841405726653026"
IG_MEDIA_ID = "17918195224117851"
IG_COMMENT_ID = "17865799348089039"
IGSID = "8001765432109876"
UTC = timezone.utc

IDENTITY = ("message_id", "conversation_key", "direction", "platform", "kind", "account_id", "parent_id", "thread_id")


def webhook_message(payload: dict[str, Any]) -> SocialMessage:
    batch = meta.normalize_delivery(payload)
    assert batch.rejected == [] and len(batch.messages) == 1, batch
    return batch.messages[0]


def assert_same_identity(graph: SocialMessage, hook: SocialMessage) -> None:
    for name in IDENTITY:
        assert getattr(graph, name) == getattr(hook, name), name
    assert graph.author.platform_id == hook.author.platform_id
    assert graph.text == hook.text
    assert graph.created_at == hook.created_at


def graph_time(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def by_id(messages: list[SocialMessage]) -> dict[str, SocialMessage]:
    return {m.message_id: m for m in messages}


# --- Facebook Page comments ---------------------------------------------------------------


def feed_post(*comments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": POST_ID,
        "created_time": "2025-03-22T18:00:00+0000",
        "permalink_url": "https://www.facebook.com/448242228374517/posts/122131676912594941",
        "comments": {"data": list(comments)},
    }


TOP_COMMENT = {
    "id": TOP_COMMENT_ID,
    "from": {"id": CUSTOMER, "name": "Dana Reyes"},
    "message": "My order #4411 arrived broken. Who do I talk to?",
    "created_time": graph_time(1742667388),
}
REPLY = {
    "id": REPLY_ID,
    "from": {"id": CUSTOMER, "name": "Dana Reyes"},
    "message": "Still waiting for an answer…",
    "created_time": graph_time(1742667604),
    "parent": {"id": TOP_COMMENT_ID},
}


def test_feed_comment_has_the_webhook_identity() -> None:
    hook = webhook_message(load_event("meta_page_feed_comment"))
    [graph] = normalize_feed_comments(PAGE_ID, feed_post(TOP_COMMENT)).messages
    assert_same_identity(graph, hook)
    assert graph.conversation_key == f"facebook:comment:{TOP_COMMENT_ID}"
    assert graph.kind is Kind.COMMENT and graph.direction is Direction.INBOUND
    assert graph.raw["id"] == TOP_COMMENT_ID  # the audit copy is what Graph returned


def test_flat_reply_has_the_webhook_identity() -> None:
    hook = webhook_message(load_event("meta_page_feed_reply"))
    messages = by_id(normalize_feed_comments(PAGE_ID, feed_post(REPLY, TOP_COMMENT)).messages)
    assert_same_identity(messages[REPLY_ID], hook)
    assert messages[REPLY_ID].conversation_key == f"facebook:comment:{TOP_COMMENT_ID}"
    assert messages[REPLY_ID].kind is Kind.REPLY


def test_nested_reply_has_the_webhook_identity() -> None:
    """Replies may also come nested in their comment's own ``comments`` (toplevel filter)."""
    hook = webhook_message(load_event("meta_page_feed_reply"))
    nested_reply = {k: v for k, v in REPLY.items() if k != "parent"}
    top = {**TOP_COMMENT, "comments": {"data": [nested_reply]}}
    messages = by_id(normalize_feed_comments(PAGE_ID, feed_post(top)).messages)
    assert set(messages) == {TOP_COMMENT_ID, REPLY_ID}
    assert_same_identity(messages[REPLY_ID], hook)


def test_page_reply_is_outbound_on_both_paths() -> None:
    payload = load_event("meta_page_feed_reply")
    value = payload["entry"][0]["changes"][0]["value"]
    value["from"] = {"id": PAGE_ID, "name": "Brand"}
    hook = webhook_message(payload)
    page_reply = {**REPLY, "from": {"id": PAGE_ID, "name": "Brand"}}
    [graph] = [m for m in normalize_feed_comments(PAGE_ID, feed_post(page_reply)).messages]
    assert_same_identity(graph, hook)
    assert graph.direction is Direction.OUTBOUND


def test_comment_photo_attachment_is_kept() -> None:
    with_photo = {**TOP_COMMENT, "attachment": {"type": "photo", "media": {"image": {"src": "https://cdn.example/p.jpg"}}}}
    [graph] = normalize_feed_comments(PAGE_ID, feed_post(with_photo)).messages
    assert [a.url for a in graph.attachments] == ["https://cdn.example/p.jpg"]


def test_comment_without_author_is_kept_with_a_per_comment_placeholder() -> None:
    hidden = {k: v for k, v in TOP_COMMENT.items() if k != "from"}
    batch = normalize_feed_comments(PAGE_ID, feed_post(hidden))
    assert batch.rejected == []
    assert batch.messages[0].author.platform_id == f"unknown:{TOP_COMMENT_ID}"
    assert batch.messages[0].direction is Direction.INBOUND


def test_malformed_comment_is_quarantined_not_raised() -> None:
    batch = normalize_feed_comments(PAGE_ID, feed_post({"message": "no id"}, TOP_COMMENT))
    assert len(batch.messages) == 1 and len(batch.rejected) == 1


# --- Messenger -------------------------------------------------------------------------------


def messenger_conversation(*messages: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "t_10223",
        "updated_time": graph_time(1458692752),
        "participants": {"data": [{"id": PSID, "name": "Sam"}, {"id": PAGE_ID, "name": "Brand"}]},
        "messages": {"data": list(messages)},
    }


def test_messenger_message_has_the_webhook_identity() -> None:
    hook = webhook_message(load_event("meta_messenger_message"))
    graph_message = {
        # Graph's id for a pre-2018 message is "m_" + the webhook mid.
        "id": "m_mid.1457764197618:41d102a3e1ae206a38",
        "created_time": "2016-03-23T00:25:52+0000",
        "from": {"id": PSID, "name": "Sam", "email": f"{PSID}@facebook.com"},
        "to": {"data": [{"id": PAGE_ID, "name": "Brand"}]},
        "message": "Hi, I was charged twice for my subscription.",
    }
    [graph] = normalize_conversation_messages(PAGE_ID, messenger_conversation(graph_message)).messages
    for name in IDENTITY:
        assert getattr(graph, name) == getattr(hook, name), name
    assert graph.author.platform_id == hook.author.platform_id == PSID
    assert graph.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}"
    # Graph's created_time has whole seconds; the webhook's timestamp has milliseconds.
    assert abs(graph.created_at - hook.created_at) < timedelta(seconds=1)


def test_page_sent_messenger_message_is_outbound_like_the_echo() -> None:
    hook = webhook_message(load_event("meta_messenger_echo"))
    graph_message = {
        "id": "m_mid.1457764197618:41d102a3e1ae206a39",
        "created_time": "2016-03-12T06:29:57+0000",
        "from": {"id": PAGE_ID, "name": "Brand"},
        "to": {"data": [{"id": PSID, "name": "Sam"}]},
        "message": "Thanks, we're looking into it.",
    }
    [graph] = normalize_conversation_messages(PAGE_ID, messenger_conversation(graph_message)).messages
    assert graph.direction is Direction.OUTBOUND is hook.direction
    for name in ("message_id", "conversation_key", "account_id"):
        assert getattr(graph, name) == getattr(hook, name), name
    assert graph.author.platform_id == hook.author.platform_id == PAGE_ID


def test_page_sent_message_without_to_uses_the_other_participant() -> None:
    graph_message = {"id": "m_abc", "created_time": "2025-03-22T18:00:00+0000", "from": {"id": PAGE_ID}, "message": "hi"}
    [graph] = normalize_conversation_messages(PAGE_ID, messenger_conversation(graph_message)).messages
    assert graph.conversation_key == f"messenger:dm:{PAGE_ID}:{PSID}"
    assert graph.direction is Direction.OUTBOUND


def test_messenger_image_attachment_matches_the_webhook_shape() -> None:
    hook = webhook_message(load_event("meta_messenger_attachment"))
    graph_message = {
        "id": "m_mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
        "created_time": "2018-02-12T23:46:35+0000",
        "from": {"id": PSID},
        "to": {"data": [{"id": PAGE_ID}]},
        "message": "",
        "attachments": {"data": [{"id": "1", "mime_type": "image/jpeg", "image_data": {"url": hook.attachments[0].url}}]},
    }
    [graph] = normalize_conversation_messages(PAGE_ID, messenger_conversation(graph_message)).messages
    assert graph.message_id == hook.message_id == "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c"
    assert graph.attachments == hook.attachments


def test_current_message_ids_are_used_as_they_are() -> None:
    assert webhook_mid("m_AbCdEf123") == "m_AbCdEf123"
    assert webhook_mid("m_mid.1457764197618:41d1") == "mid.1457764197618:41d1"


# --- Instagram ---------------------------------------------------------------------------------


def ig_media(*comments: dict[str, Any]) -> dict[str, Any]:
    return {"id": IG_MEDIA_ID, "timestamp": "2025-03-22T17:00:00+0000", "comments": {"data": list(comments)}}


IG_COMMENT = {
    "id": IG_COMMENT_ID,
    "from": {"id": IGSID, "username": "lena.k"},
    "username": "lena.k",
    "text": "The zipper broke after two days. Not happy.",
    "timestamp": graph_time(1742668000),
}


def test_instagram_comment_has_the_webhook_identity() -> None:
    hook = webhook_message(load_event("meta_instagram_comment"))
    [graph] = normalize_ig_media_comments(IG_ACCOUNT_ID, ig_media(IG_COMMENT)).messages
    assert_same_identity(graph, hook)
    assert graph.author.handle == hook.author.handle == "lena.k"
    assert graph.conversation_key == f"instagram:comment:{IG_COMMENT_ID}"


def test_instagram_reply_has_the_webhook_identity() -> None:
    payload = load_event("meta_instagram_comment")
    value = payload["entry"][0]["changes"][0]["value"]
    value.update({"id": "17999999999999999", "parent_id": IG_COMMENT_ID, "text": "Sorry! DM us please."})
    value["from"] = {"id": IG_ACCOUNT_ID, "username": "brand"}
    hook = webhook_message(payload)
    reply = {"id": "17999999999999999", "from": {"id": IG_ACCOUNT_ID, "username": "brand"}, "username": "brand",
             "text": "Sorry! DM us please.", "timestamp": graph_time(1742668000)}
    top = {**IG_COMMENT, "replies": {"data": [reply]}}
    messages = by_id(normalize_ig_media_comments(IG_ACCOUNT_ID, ig_media(top)).messages)
    assert set(messages) == {IG_COMMENT_ID, "17999999999999999"}
    assert_same_identity(messages["17999999999999999"], hook)
    assert messages["17999999999999999"].direction is Direction.OUTBOUND
    assert messages["17999999999999999"].kind is Kind.REPLY
    assert messages["17999999999999999"].conversation_key == f"instagram:comment:{IG_COMMENT_ID}"


def test_instagram_dm_has_the_webhook_identity() -> None:
    hook = webhook_message(load_event("meta_instagram_dm"))
    conversation = {
        "id": "aWdfZAG06",
        "updated_time": "2025-03-22T18:28:20+0000",
        "messages": {"data": [{
            "id": hook.message_id,
            "created_time": "2025-03-22T18:28:20+0000",
            "from": {"id": "8002345678901234", "username": "jo"},
            "to": {"data": [{"id": IG_ACCOUNT_ID, "username": "brand"}]},
            "message": "Can I still return a jacket bought in March?",
        }]},
    }
    [graph] = normalize_conversation_messages(IG_ACCOUNT_ID, conversation, Platform.INSTAGRAM).messages
    for name in IDENTITY:
        assert getattr(graph, name) == getattr(hook, name), name
    assert graph.author.platform_id == hook.author.platform_id
    assert graph.conversation_key == f"instagram:dm:{IG_ACCOUNT_ID}:8002345678901234"


# --- errors and helpers ------------------------------------------------------------------------


def response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    import json

    return HttpResponse(status=status, headers={k.lower(): v for k, v in (headers or {}).items()}, body=json.dumps(body).encode())


@pytest.mark.parametrize("code", [190, 102])
def test_expired_token_is_an_auth_error(code: int) -> None:
    answer = response(400, {"error": {"message": "Session has expired", "type": "OAuthException", "code": code, "error_subcode": 463}})
    with pytest.raises(GraphAuthError) as caught:
        raise_for_graph_error(answer, what="the Page feed", account_id=PAGE_ID)
    assert caught.value.code == code and caught.value.subcode == 463
    assert "new Page access token" in str(caught.value) and PAGE_ID in str(caught.value)


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80002])
def test_throttling_codes_are_rate_limits_with_the_buc_wait(code: int) -> None:
    usage = '{"448242228374517": [{"type": "pages", "call_count": 100, "total_cputime": 5, "total_time": 5, "estimated_time_to_regain_access": 17}]}'
    answer = response(400, {"error": {"message": "limit", "code": code}}, {"X-Business-Use-Case-Usage": usage})
    with pytest.raises(GraphRateLimited) as caught:
        raise_for_graph_error(answer, what="the Page feed")
    assert caught.value.retry_after == timedelta(minutes=17)


def test_other_errors_are_graph_errors_and_ok_is_silent() -> None:
    with pytest.raises(GraphError) as caught:
        raise_for_graph_error(response(400, {"error": {"message": "Unsupported get request", "code": 100}}), what="x")
    assert not isinstance(caught.value, (GraphAuthError, GraphRateLimited))
    raise_for_graph_error(response(200, {"data": []}), what="x")


def test_business_usage_header_parsing() -> None:
    assert business_usage_wait(None) is None
    assert business_usage_wait("not json") is None
    assert business_usage_wait('{"1": [{"estimated_time_to_regain_access": 0}]}') is None
    assert business_usage_wait('{"1": [{"estimated_time_to_regain_access": 3}], "2": [{"estimated_time_to_regain_access": 9}]}') == timedelta(minutes=9)


def test_graph_time_parsing() -> None:
    assert parse_graph_time("2025-03-22T18:16:28+0000") == datetime(2025, 3, 22, 18, 16, 28, tzinfo=UTC)
    assert parse_graph_time(1742667388) == datetime(2025, 3, 22, 18, 16, 28, tzinfo=UTC)
    assert parse_graph_time(None) is None
