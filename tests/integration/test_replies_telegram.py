"""Telegram replies over real HTTP against the local Bot API sandbox.

Targets come from the webhook fixtures through the real normalizer, with the sandbox
seeded with the same chats and message ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.models import Platform
from chalicelib.channels.telegram.webhook import normalize_delivery
from chalicelib.outbound import ReplyDispatcher, ReplyFailed, ReplyTarget, target_from_messages
from chalicelib.channels.telegram.replies import TelegramSender
from local.telegram_sandbox import DEFAULT_BOT_TOKEN, TelegramSandbox
from tests.support.events import load_event

BOT_ID = DEFAULT_BOT_TOKEN.split(":")[0]
PRIVATE_CHAT, GROUP_CHAT, TOPIC = 111222333, -1001987654321, 55


@pytest.fixture
def sandbox() -> Iterator[TelegramSandbox]:
    server = TelegramSandbox()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def dispatcher(sandbox: TelegramSandbox, token: str = DEFAULT_BOT_TOKEN) -> ReplyDispatcher:
    return ReplyDispatcher({Platform.TELEGRAM: TelegramSender(lambda _a: token, base_url=sandbox.url, timeout=(1, 2))})


def target(name: str) -> ReplyTarget:
    return target_from_messages(normalize_delivery(load_event(name), bot_id=BOT_ID).messages)


def test_a_private_chat_answer_quotes_the_customer(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(41, 42))
    sent = dispatcher(sandbox).send(target("telegram_private_text"), "Hi! Let me check.", idempotency_key="zd-1")
    (message,) = sandbox.sent()
    assert message["body"] == {"chat_id": PRIVATE_CHAT, "text": "Hi! Let me check.",
                               "reply_parameters": {"message_id": 42, "allow_sending_without_reply": True}}
    assert sent.platform_message_id == f"{PRIVATE_CHAT}:43" and sent.via == "message"


def test_a_group_topic_answer_stays_in_the_topic(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(GROUP_CHAT, type="supergroup", messages=(907,))
    sandbox.add_topic(GROUP_CHAT, TOPIC)
    dispatcher(sandbox).send(target("telegram_group_topic"), "On it.", idempotency_key="zd-2")
    (message,) = sandbox.sent()
    assert message["body"]["chat_id"] == GROUP_CHAT and message["body"]["message_thread_id"] == TOPIC
    assert "business_connection_id" not in message["body"]


def test_a_business_chat_answer_goes_through_the_business_connection(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(888999000, messages=(3108,))
    dispatcher(sandbox).send(target("telegram_business_message"), "Thanks for writing!", idempotency_key="zd-3")
    assert sandbox.sent()[0]["body"]["business_connection_id"] == "AbCdEf_bizconn-01"


def test_a_deleted_message_is_answered_anyway_but_a_deleted_topic_is_not(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(42,))
    sandbox.delete_message(PRIVATE_CHAT, 42)
    assert dispatcher(sandbox).send(target("telegram_private_text"), "Still here for you.", idempotency_key="a").platform_message_id
    sandbox.add_chat(GROUP_CHAT, type="supergroup", messages=(907,))  # topic 55 not created: deleted
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_group_topic"), "Hello", idempotency_key="b")
    assert caught.value.kind == "target_deleted"
    assert caught.value.plain_words == "Not sent: the topic you're replying to no longer exists in Telegram; it was deleted."


def test_a_customer_who_blocked_the_bot(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(42,))
    sandbox.block(PRIVATE_CHAT)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_private_text"), "Hello", idempotency_key="c")
    assert caught.value.kind == "rejected" and not caught.value.transient
    assert caught.value.plain_words == "Not sent: the customer blocked the Telegram bot, so it can't message them."


def test_a_revoked_token_never_shows_up_in_the_failure(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(42,))
    sandbox.revoke()
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_private_text"), "Hello", idempotency_key="d")
    failure = caught.value
    assert failure.kind == "token_revoked"
    assert failure.plain_words == (
        "Not sent: Telegram no longer accepts the bot's token (it was revoked or replaced in @BotFather). Reconnect "
        "the Telegram bot in socialdesk settings with the current token."
    )
    secret = DEFAULT_BOT_TOKEN.split(":")[1]
    assert secret not in repr(failure) + str(failure) + str(failure.detail)


def test_retry_after_becomes_retry_at(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(42,))
    sandbox.inject_error(429, retry_after=35)
    before = datetime.now(timezone.utc)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_private_text"), "Hello", idempotency_key="e")
    failure = caught.value
    assert failure.kind == "rate_limited" and failure.transient
    assert before + timedelta(seconds=34) <= failure.retry_at <= datetime.now(timezone.utc) + timedelta(seconds=36)


def test_bad_gateway_is_transient_and_a_lost_answer_is_flagged(sandbox: TelegramSandbox) -> None:
    sandbox.add_chat(PRIVATE_CHAT, messages=(42,))
    sandbox.inject_error(502)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_private_text"), "Hello", idempotency_key="f")
    assert caught.value.kind == "unavailable" and caught.value.transient
    assert sandbox.sent() == []
    sandbox.inject_error(200, drop=True)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_private_text"), "Hello", idempotency_key="g")
    assert caught.value.duplicate_risk and len(sandbox.sent()) == 1


def test_a_group_upgraded_to_a_supergroup(sandbox: TelegramSandbox) -> None:
    event = load_event("telegram_group_topic")
    message: dict[str, Any] = event["message"]
    message["chat"] = {"id": -4001, "type": "group", "title": "Support"}
    message.pop("is_topic_message", None)
    message.pop("message_thread_id", None)
    message.pop("reply_to_message", None)
    sandbox.add_chat(-4001, type="group", messages=(907,))
    sandbox.migrate(-4001, -1004001)
    old_group = target_from_messages(normalize_delivery(event, bot_id=BOT_ID).messages)
    sent = dispatcher(sandbox).send(old_group, "Hello everyone", idempotency_key="h")
    (message_sent,) = sandbox.sent()
    assert message_sent["chat_id"] == -1004001
    assert sent.platform_message_id == "-1004001:1"
    assert sent.warnings == ("The Telegram group was upgraded to a supergroup; the answer went to the new group.",)


def test_a_private_answer_in_a_group_is_refused(sandbox: TelegramSandbox) -> None:
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(sandbox).send(target("telegram_group_topic"), "psst", private=True, idempotency_key="i")
    assert caught.value.kind == "rejected" and "can't start a private chat" in caught.value.plain_words
    assert sandbox.requests == []
