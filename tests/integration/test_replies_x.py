"""X replies over real HTTP against the local X sandbox.

Mentions and DMs are seeded in the sandbox and read back through the v2 endpoints the
poller uses (and its normalizers), so the target carries the ids the store holds.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.models import Platform, SocialMessage
from chalicelib.channels.x.api import normalize_dm_events_page, normalize_mentions_page
from chalicelib.outbound import ReplyConfig, ReplyDispatcher, ReplyFailed, target_from_messages
from chalicelib.channels.x.replies import XSender
from local.x_sandbox import BRAND_ID, DEFAULT_TOKEN, XSandbox

CUSTOMER = "3001969357"


@pytest.fixture
def sandbox() -> Iterator[XSandbox]:
    server = XSandbox().start()
    try:
        yield server
    finally:
        server.stop()


def dispatcher(sandbox: XSandbox, token: str = DEFAULT_TOKEN, **config: object) -> ReplyDispatcher:
    sender = XSender(lambda _account: token, base_url=sandbox.url, config=ReplyConfig(**config), timeout=(1, 2))  # type: ignore[arg-type]
    return ReplyDispatcher({Platform.X: sender})


def read(sandbox: XSandbox, path: str) -> dict:
    request = urllib.request.Request(sandbox.url + path, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())


def mention_thread(sandbox: XSandbox) -> list[SocialMessage]:
    page = read(sandbox, f"/2/users/{BRAND_ID}/mentions?max_results=100&expansions=author_id"
                         "&tweet.fields=created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,entities")
    return normalize_mentions_page(page, brand_id=BRAND_ID).messages


def dm_thread(sandbox: XSandbox) -> list[SocialMessage]:
    page = read(sandbox, "/2/dm_events?max_results=100&expansions=sender_id&dm_event.fields=created_at,sender_id,dm_conversation_id")
    return normalize_dm_events_page(page, brand_id=BRAND_ID).messages


def test_a_reply_post_answers_the_latest_mention(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev my package is lost", author_id=CUSTOMER, username="dana")
    latest = sandbox.add_mention("@TwitterDev hello??", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    assert target.reply_to_id == latest["id"] and target.customer_id == CUSTOMER

    sent = dispatcher(sandbox).send(target, "Sorry Dana! Sending you a DM.", idempotency_key="zd-1")

    (post,) = sandbox.sent("tweet")
    assert post["body"] == {"text": "Sorry Dana! Sending you a DM.", "reply": {"in_reply_to_tweet_id": latest["id"]}}
    assert sent.platform_message_id == post["id"] and sent.via == "public_reply"
    assert sandbox.tweets[post["id"]]["in_reply_to_user_id"] == CUSTOMER


def test_a_private_answer_to_a_mention_is_a_dm_with_an_optional_public_note(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev my card was charged twice", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    sent = dispatcher(sandbox, public_ack_platforms=frozenset({Platform.X})).send(
        target, "Refund is on its way.", private=True, idempotency_key="zd-2")
    (dm,) = sandbox.sent("dm")
    assert dm["participant_id"] == CUSTOMER and dm["body"] == {"text": "Refund is on its way."}
    (note,) = sandbox.sent("tweet")
    assert note["body"]["text"] == "We've sent you a private message."
    assert sent.platform_message_id == dm["id"] and sent.visible_note == "We've sent you a private message."


def test_a_dm_conversation_is_answered_by_dm(sandbox: XSandbox) -> None:
    sandbox.add_dm("Hi, I need help with my order", sender_id=CUSTOMER)
    target = target_from_messages(dm_thread(sandbox))
    sent = dispatcher(sandbox).send(target, "Happy to help - order number?", idempotency_key="zd-3")
    (dm,) = sandbox.sent("dm")
    assert sent.platform_message_id == dm["id"] and sent.via == "message"
    assert any(m.message_id == dm["id"] and m.direction.value == "out" for m in dm_thread(sandbox))

    sandbox.close_dms(CUSTOMER)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "Are you there?", idempotency_key="zd-4")
    assert caught.value.kind == "rejected"
    assert caught.value.plain_words == (
        "Not sent: this customer can't receive direct messages from the X account (X says: You cannot send messages "
        "to this user.). They may have closed their DMs or blocked the account."
    )


def test_over_280_characters_is_refused_before_calling_x(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev help", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    before = len(sandbox.requests)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "word " * 60, idempotency_key="zd-5")
    assert caught.value.kind == "rejected" and "X allows 280 in a reply post" in caught.value.plain_words
    assert len(sandbox.requests) == before


def test_duplicates_and_deleted_tweets(sandbox: XSandbox) -> None:
    mention = sandbox.add_mention("@TwitterDev broken", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    dispatcher(sandbox).send(target, "We're looking into it.", idempotency_key="a")
    with pytest.raises(ReplyFailed) as caught:  # sent again: X's own duplicate check
        dispatcher(sandbox).send(target, "We're looking into it.", idempotency_key="a")
    assert caught.value.kind == "rejected" and "duplicate" in caught.value.plain_words

    sandbox.delete_tweet(mention["id"])
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "Still there?", idempotency_key="b")
    assert caught.value.kind == "target_deleted"


def test_an_expired_or_revoked_token(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev hi", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox, token="expired-token").send(target, "Hello", idempotency_key="c")
    assert caught.value.kind == "token_expired"
    assert caught.value.plain_words == (
        "Not sent: X no longer accepts socialdesk's authorization for the X account (it expired or was revoked). "
        "Reconnect the X account in socialdesk settings."
    )
    assert "expired-token" not in repr(caught.value) + caught.value.plain_words


def test_rate_limited_until_the_reset(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev hi", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    reset = int(time.time()) + 600
    sandbox.inject(429, match="/2/tweets", reset=reset)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "Hello", idempotency_key="d")
    assert caught.value.kind == "rate_limited" and caught.value.transient
    assert caught.value.retry_at == datetime.fromtimestamp(reset, tz=timezone.utc)
    assert sandbox.sent() == []


def test_an_outage_is_transient_and_a_lost_answer_is_flagged(sandbox: XSandbox) -> None:
    sandbox.add_mention("@TwitterDev hi", author_id=CUSTOMER)
    target = target_from_messages(mention_thread(sandbox))
    sandbox.inject(503, match="/2/tweets")
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "Hello", idempotency_key="e")
    assert caught.value.kind == "unavailable" and caught.value.transient
    assert caught.value.plain_words.startswith("Not confirmed: X had a temporary problem (HTTP 503)")

    sandbox.inject(200, match="/2/tweets", drop=True)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target, "Hello", idempotency_key="f")
    assert caught.value.kind == "unavailable" and caught.value.duplicate_risk
    assert len(sandbox.sent("tweet")) == 1  # it went out; a blind retry would have posted it twice


def test_old_mentions_have_no_window(sandbox: XSandbox) -> None:
    old = int((time.time() - 40 * 86400) * 1000)
    sandbox.add_mention("@TwitterDev ancient", author_id=CUSTOMER, created_ms=old)
    target = target_from_messages(mention_thread(sandbox))
    assert target.last_inbound_at < datetime.now(timezone.utc) - timedelta(days=30)
    assert dispatcher(sandbox).send(target, "Better late than never", idempotency_key="g").platform_message_id
