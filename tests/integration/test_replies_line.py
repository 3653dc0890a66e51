"""LINE replies over real HTTP against the local Messaging API sandbox: reply token
while fresh, push (with LINE's retry key) otherwise."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.models import Platform, SocialMessage
from chalicelib.channels.line.webhook import normalize_delivery
from chalicelib.outbound import ReplyDispatcher, ReplyFailed, ReplyTarget, target_from_messages
from chalicelib.channels.line.replies import LineSender, retry_key
from local.line_sandbox import DEFAULT_CHANNEL_TOKEN, LineSandbox
from tests.support.events import load_event

USER, GROUP, BOT = "U4af4980629aaaaaaaaaaaaaaaaaaaaaa", "Ca56f94637caaaaaaaaaaaaaaaaaaaaaa", "U0123456789abcdef0123456789abcdef"


@pytest.fixture
def sandbox() -> Iterator[LineSandbox]:
    server = LineSandbox()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dispatcher(sandbox: LineSandbox, token: str = DEFAULT_CHANNEL_TOKEN) -> ReplyDispatcher:
    return ReplyDispatcher({Platform.LINE: LineSender(lambda _a: token, base_url=sandbox.url, timeout=(1, 2))})


def messages(name: str, reply_token: str, age: timedelta) -> list[SocialMessage]:
    """The fixture's event, as received ``age`` ago with the sandbox's reply token."""
    event = load_event(name)
    event["events"][0]["replyToken"] = reply_token
    event["events"][0]["timestamp"] = int((time.time() - age.total_seconds()) * 1000)
    return normalize_delivery(event).messages


def target(sandbox: LineSandbox, age: timedelta, name: str = "line_text_user", to: str = USER) -> ReplyTarget:
    token = sandbox.issue_reply_token(to, issued_at=time.time() - age.total_seconds())
    return target_from_messages(messages(name, token, age))


def test_a_fresh_reply_token_is_used(sandbox: LineSandbox) -> None:
    sent = dispatcher(sandbox).send(target(sandbox, timedelta(seconds=3)), "Thanks for your message!", idempotency_key="zd-1")
    (reply,) = sandbox.sent()
    assert reply["kind"] == "reply" and reply["to"] == USER
    assert reply["body"]["messages"] == [{"type": "text", "text": "Thanks for your message!"}]
    assert reply["retry_key"] is None
    assert sent.platform_message_id == reply["sentMessages"][0]["id"] and sent.via == "line_reply"


def test_a_stale_token_means_push_with_the_retry_key(sandbox: LineSandbox) -> None:
    sandbox.add_group(GROUP)
    stale = target(sandbox, timedelta(minutes=10), name="line_image_group", to=GROUP)
    assert not stale.line_token_fresh(datetime.now(timezone.utc))
    sent = dispatcher(sandbox).send(stale, "We'll get back to the group shortly.", idempotency_key="zendesk:9:comment:1")
    (push,) = sandbox.sent()
    assert push["kind"] == "push" and push["body"]["to"] == GROUP
    assert push["retry_key"] == retry_key("zendesk:9:comment:1") and uuid.UUID(push["retry_key"])
    assert sent.via == "line_push" and sent.platform_message_id == push["sentMessages"][0]["id"]
    assert [r.route for r in sandbox.requests] == ["message.push"]  # no doomed reply attempt first


def test_a_token_line_refuses_falls_back_to_push(sandbox: LineSandbox) -> None:
    # Our clock says the token is fresh; LINE already considers it expired.
    sandbox.reply_token_ttl = 0.0
    sent = dispatcher(sandbox).send(target(sandbox, timedelta(seconds=2)), "Hello!", idempotency_key="zd-2")
    assert [r.route for r in sandbox.requests] == ["message.reply", "message.push"]
    assert [s["kind"] for s in sandbox.sent()] == ["push"]
    assert sent.via == "line_push" and sent.warnings


def test_a_lost_push_answer_is_safe_to_retry_and_is_delivered_once(sandbox: LineSandbox) -> None:
    stale = target(sandbox, timedelta(minutes=5))
    sandbox.inject_error(200, match="/push", drop=True)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(stale, "Your refund is approved.", idempotency_key="zendesk:1:comment:2")
    failure = caught.value
    assert failure.kind == "unavailable" and failure.transient and failure.retry_is_safe
    assert failure.plain_words == (
        "Not confirmed: LINE did not confirm the reply. Sending again is safe: LINE will not deliver the same reply twice."
    )
    # A retry with the same idempotency key (the dispatcher keeps no memory) -> 409 -> already sent.
    sent = dispatcher(sandbox).send(stale, "Your refund is approved.", idempotency_key="zendesk:1:comment:2")
    assert len(sandbox.sent()) == 1
    assert sent.platform_message_id == sandbox.sent()[0]["sentMessages"][0]["id"]
    assert "not sent twice" in sent.warnings[-1]


def test_an_expired_channel_token(sandbox: LineSandbox) -> None:
    sandbox.expire_token()
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target(sandbox, timedelta(minutes=5)), "Hello", idempotency_key="zd-3")
    assert caught.value.kind == "token_expired"
    assert caught.value.plain_words == (
        "Not sent: LINE no longer accepts the channel access token (it expired or was reissued). Reconnect the LINE "
        "channel in socialdesk settings."
    )


def test_rate_limits_and_the_monthly_quota(sandbox: LineSandbox) -> None:
    stale = target(sandbox, timedelta(minutes=5))
    sandbox.inject_error(429, match="/push")
    before = datetime.now(timezone.utc)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(stale, "Hello", idempotency_key="zd-4")
    assert caught.value.kind == "rate_limited" and caught.value.transient
    assert before + timedelta(seconds=59) <= caught.value.retry_at <= datetime.now(timezone.utc) + timedelta(seconds=61)

    sandbox.monthly_quota = 0
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(stale, "Hello", idempotency_key="zd-5")
    failure = caught.value
    assert failure.kind == "rate_limited" and not failure.transient
    assert failure.retry_at is not None and failure.retry_at.day in (28, 29, 30, 31, 1) and failure.retry_at.hour == 15
    assert "monthly message quota is used up" in failure.plain_words


def test_an_outage_on_push_is_transient(sandbox: LineSandbox) -> None:
    sandbox.inject_error(500, match="/push")
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target(sandbox, timedelta(minutes=5)), "Hello", idempotency_key="zd-6")
    assert caught.value.kind == "unavailable" and caught.value.retry_is_safe


def test_push_to_someone_who_is_not_a_friend(sandbox: LineSandbox) -> None:
    stale = target(sandbox, timedelta(minutes=5))
    sandbox.recipients.discard(USER)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(stale, "Hello", idempotency_key="zd-7")
    assert caught.value.kind == "rejected"
    assert caught.value.plain_words == (
        "Not sent: LINE could not deliver it (LINE says: Failed to send messages). The customer may have blocked the "
        "account or never added it as a friend."
    )
