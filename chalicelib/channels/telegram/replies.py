"""Answers on Telegram: ``sendMessage`` into the customer's chat or group topic.

``POST {TELEGRAM_API_URL}/bot<token>/sendMessage`` (default ``https://api.telegram.org``;
the bot token is part of the path, so no URL of this module is ever put in a note or
an exception) with::

    {"chat_id": <chat>, "text": "...",
     "message_thread_id": <forum topic>,              # group topics only
     "business_connection_id": "<id>",                # Telegram Business chats only
     "reply_parameters": {"message_id": <customer's message>, "allow_sending_without_reply": true}}

``allow_sending_without_reply`` keeps the answer going out when the customer deleted
the message it quotes. Answers are ``{"ok": true, "result": {Message}}``; the sent
message's id is returned as ``<chat id>:<message_id>``, the form the webhook normalizer
uses. Errors are ``{"ok": false, "error_code", "description", "parameters"}``:

* 401 / 404 -> the bot token was revoked (``@BotFather``) -> ``token_revoked``
* 403 "bot was blocked by the user", "user is deactivated" -> ``rejected``;
  "bot was kicked", "not enough rights" -> ``permission_missing``
* 400 "message to be replied not found", "message thread not found" -> ``target_deleted``
* 400 with ``parameters.migrate_to_chat_id`` (the group became a supergroup): sent
  again, once, to the new chat id
* 429 with ``parameters.retry_after`` seconds -> ``rate_limited``
* 5xx -> ``unavailable`` (transient)

A private answer to a group message is refused: a bot cannot start a private chat.
Telegram has no idempotency key, so a lost answer is ``duplicate_risk=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.http import json_object
from chalicelib.models import Platform
from chalicelib.outbound.base import (
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TARGET_DELETED,
    TOKEN_REVOKED,
    HttpSender,
    ReplyFailed,
    ReplyRequest,
    SentReply,
    SingleApiSender,
    json_body,
    rate_limited_words,
    short_detail,
    utc,
)

DEFAULT_BASE_URL = "https://api.telegram.org"
BASE_URL_ENV = "TELEGRAM_API_URL"
DEFAULT_RETRY_AFTER = 30  # seconds, when a 429 does not say


def _chat_ref(value: str) -> int | str:
    """Numeric chat ids as numbers (``-100123...``), ``@channel`` names as they are."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def telegram_failure(status: int, body: Mapping[str, Any], now: datetime, *, group: bool) -> ReplyFailed:
    """The ``ReplyFailed`` for a Bot API error answer."""
    raw_code = body.get("error_code")
    code: int = raw_code if isinstance(raw_code, int) else status
    description = short_detail(body.get("description") or "")
    text = description.lower()
    parameters = json_object(body.get("parameters"))
    common: dict[str, Any] = {"platform": Platform.TELEGRAM, "code": str(code), "detail": description or None}
    says = f" (Telegram says: {description})" if description else ""
    if code in (401, 404):
        return ReplyFailed(
            TOKEN_REVOKED,
            "Not sent: Telegram no longer accepts the bot's token (it was revoked or replaced in @BotFather). "
            "Reconnect the Telegram bot in socialdesk settings with the current token.",
            **common,
        )
    if code == 429:
        try:
            wait = int(str(parameters.get("retry_after")))
        except (TypeError, ValueError):
            wait = DEFAULT_RETRY_AFTER
        retry_at = utc(now) + timedelta(seconds=max(1, wait))
        what = "how fast the bot can send in this group" if group else "how fast the bot can send in this chat"
        return ReplyFailed(
            RATE_LIMITED, rate_limited_words(Platform.TELEGRAM, retry_at, now, what), retry_at=retry_at, transient=True, **common
        )
    if code >= 500:
        return HttpSender.server_error(Platform.TELEGRAM, code, detail=description or None)
    if "blocked by the user" in text:
        return ReplyFailed(REJECTED, "Not sent: the customer blocked the Telegram bot, so it can't message them.", **common)
    if "user is deactivated" in text:
        return ReplyFailed(REJECTED, "Not sent: the customer's Telegram account was deleted.", **common)
    if "kicked" in text or "not a member" in text or "not enough rights" in text or "have no rights" in text:
        return ReplyFailed(
            PERMISSION_MISSING,
            f"Not sent: the Telegram bot can no longer write in this chat{says}. "
            "Add it back to the group (with permission to send messages) and try again.",
            **common,
        )
    if (
        "replied not found" in text
        or "reply message not found" in text
        or "replied message not found" in text
        or "message thread not found" in text
        or "topic_deleted" in text
    ):
        thing = "topic" if "thread" in text or "topic" in text else "message"
        return ReplyFailed(
            TARGET_DELETED, f"Not sent: the {thing} you're replying to no longer exists in Telegram; it was deleted.", **common
        )
    if "topic_closed" in text:
        return ReplyFailed(
            REJECTED, "Not sent: this forum topic is closed in Telegram. Reopen it or answer in another topic.", **common
        )
    if "chat not found" in text:
        return ReplyFailed(REJECTED, "Not sent: Telegram can't find this chat for the bot any more.", **common)
    return ReplyFailed(REJECTED, f"Not sent: Telegram refused the reply{says or f' (HTTP {code})'}.", **common)


class TelegramSender(SingleApiSender):
    """Sends answers as the bot (see the module docstring)."""

    platforms = frozenset({Platform.TELEGRAM})
    default_base_url = DEFAULT_BASE_URL
    base_url_env = BASE_URL_ENV

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """``sendMessage`` into the conversation's chat (and topic), quoting the customer."""
        target = request.target
        group = target.scope == "group"
        if request.private and group:
            raise ReplyFailed(
                REJECTED,
                "Not sent: a Telegram bot can't start a private chat with a group member. Answer in the group, "
                "or ask the customer to message the bot directly.",
                platform=Platform.TELEGRAM,
                code="private_in_group",
            )
        token = self.token(Platform.TELEGRAM, target.account_id)
        bot_id = token.split(":", 1)[0]
        body: dict[str, Any] = {"chat_id": _chat_ref(target.chat_id or target.customer_id), "text": request.text}
        if target.topic_id:
            body["message_thread_id"] = _chat_ref(target.topic_id)
        business = target.business_connection_id or (
            target.account_id if not group and target.account_id not in (bot_id, "bot") else None
        )
        if business:
            body["business_connection_id"] = business
        if target.reply_to_id:
            body["reply_parameters"] = {"message_id": _chat_ref(target.reply_to_id), "allow_sending_without_reply": True}
        client = self.client(Platform.TELEGRAM, self.base_url, "")
        path = f"/bot{token}/sendMessage"
        warnings: tuple[str, ...] = ()
        response = self.post(Platform.TELEGRAM, client, path, body)
        parsed = json_body(response)
        migrated = (
            (parsed.get("parameters") or {}).get("migrate_to_chat_id") if isinstance(parsed.get("parameters"), dict) else None
        )
        if not response.ok and migrated:
            body["chat_id"] = _chat_ref(str(migrated))
            body.pop("message_thread_id", None)
            response = self.post(Platform.TELEGRAM, client, path, body)
            parsed = json_body(response)
            warnings = ("The Telegram group was upgraded to a supergroup; the answer went to the new group.",)
        if response.ok and parsed.get("ok") is not False:
            result = json_object(parsed.get("result"))
            chat = (result.get("chat") or {}).get("id", body["chat_id"])
            sent = f"{chat}:{result['message_id']}" if result.get("message_id") is not None else ""
            return SentReply(platform_message_id=sent, via="message", warnings=warnings)
        raise telegram_failure(response.status, parsed, now, group=group)
