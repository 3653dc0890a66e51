"""Answers on LINE: the reply API while the reply token is fresh, else a push message.

``LINE_API_URL`` (default ``https://api.line.me``), ``Authorization: Bearer <channel
access token>`` (``LINE_CHANNEL_ACCESS_TOKEN``):

* ``POST /v2/bot/message/reply {replyToken, messages: [{type: text, text}]}`` when the
  latest inbound message's reply token is still fresh (single-use, valid about a
  minute; see ``ReplyTarget.line_token_fresh``). Replies are free of quota. If LINE
  answers 400 "Invalid reply token" (expired or already used), nothing was sent and
  the answer is pushed instead.
* ``POST /v2/bot/message/push {to, messages}`` otherwise, to the user (one-to-one
  chat) or the group/room, with ``X-Line-Retry-Key: <UUID>`` derived from the answer's
  idempotency key. That is LINE's own idempotency for push: a repeat with the same key
  is answered ``409`` and not delivered again, so a lost answer, a 5xx or a timeout
  are safe to retry (``duplicate_risk=False``), and a 409 means the answer is already
  out (treated as sent).

Both answer ``200 {"sentMessages": [{"id", "quoteToken"}]}``. Errors are
``{"message", "details"?}``: 401 -> ``token_expired``; 403 -> ``permission_missing``;
429 "monthly limit" -> ``rate_limited`` until the quota resets (the 1st, 00:00 JST),
other 429 -> ``rate_limited`` for a minute; 400/404 -> ``rejected``; 5xx ->
``unavailable``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.models import Platform
from chalicelib.outbound.base import (
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TOKEN_EXPIRED,
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

DEFAULT_BASE_URL = "https://api.line.me"
BASE_URL_ENV = "LINE_API_URL"
RETRY_KEY_HEADER = "X-Line-Retry-Key"
ACCEPTED_REQUEST_HEADER = "x-line-accepted-request-id"
JST = timezone(timedelta(hours=9))
RATE_WAIT = timedelta(minutes=1)
_NAMESPACE = uuid.UUID("5f1c7a8e-3b1d-4c55-9a43-0d2f5e4c9b10")  # socialdesk's namespace for retry keys


def retry_key(idempotency_key: str) -> str:
    """The ``X-Line-Retry-Key`` for an answer: the key itself if it is a UUID, else a
    UUIDv5 of it (same key -> same retry key, across processes and retries)."""
    if not idempotency_key:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(idempotency_key))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, idempotency_key))


def next_quota_reset(now: datetime) -> datetime:
    """The 1st of next month, 00:00 Japan time: when LINE's monthly message quota resets."""
    local = utc(now).astimezone(JST)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=JST).astimezone(timezone.utc)


def _line_words(body: Mapping[str, Any]) -> str:
    message = str(body.get("message") or "")
    details = body.get("details")
    if isinstance(details, list) and details:
        first = details[0] if isinstance(details[0], dict) else {}
        extra = " ".join(str(first.get(k) or "") for k in ("property", "message")).strip()
        if extra:
            message = f"{message}: {extra}" if message else extra
    return short_detail(message)


def is_invalid_reply_token(status: int, body: Mapping[str, Any]) -> bool:
    """LINE's answer to an expired or already used reply token."""
    return status == 400 and "invalid reply token" in str(body.get("message") or "").lower()


def line_failure(status: int, body: Mapping[str, Any], now: datetime, *, push: bool) -> ReplyFailed:
    """The ``ReplyFailed`` for a LINE error answer."""
    detail = _line_words(body)
    lowered = detail.lower()
    common: dict[str, Any] = {"platform": Platform.LINE, "code": str(status), "detail": detail or None}
    says = f" (LINE says: {detail})" if detail else ""
    if status == 401:
        return ReplyFailed(
            TOKEN_EXPIRED,
            "Not sent: LINE no longer accepts the channel access token (it expired or was reissued). "
            "Reconnect the LINE channel in socialdesk settings.",
            **common,
        )
    if status == 403:
        return ReplyFailed(
            PERMISSION_MISSING,
            f"Not sent: this LINE channel is not allowed to send this kind of message{says}. Check the LINE "
            "Official Account's plan and the channel's settings.",
            **common,
        )
    if status == 429:
        if "monthly limit" in lowered:
            retry_at = next_quota_reset(now)
            return ReplyFailed(
                RATE_LIMITED,
                rate_limited_words(
                    Platform.LINE, retry_at, now, "this LINE Official Account: its monthly message quota is used up"
                )
                + " Upgrade the LINE plan to send sooner.",
                retry_at=retry_at,
                **common,
            )
        retry_at = utc(now) + RATE_WAIT
        return ReplyFailed(
            RATE_LIMITED,
            rate_limited_words(Platform.LINE, retry_at, now, "how fast this channel can send"),
            retry_at=retry_at,
            transient=True,
            **common,
        )
    if status >= 500:
        return HttpSender.server_error(Platform.LINE, status, retry_safe=push, detail=detail or None)
    if is_invalid_reply_token(status, body):
        return ReplyFailed(REJECTED, "Not sent: LINE's reply token for this message expired or was already used.", **common)
    if "failed to send messages" in lowered or status == 404:
        return ReplyFailed(
            REJECTED,
            f"Not sent: LINE could not deliver it{says}. The customer may have blocked the account or "
            "never added it as a friend.",
            **common,
        )
    return ReplyFailed(REJECTED, f"Not sent: LINE refused the reply{says or f' (HTTP {status})'}.", **common)


def _sent_id(body: Mapping[str, Any]) -> str:
    sent = body.get("sentMessages")
    if isinstance(sent, list) and sent and isinstance(sent[0], dict):
        return str(sent[0].get("id") or "")
    return ""


class LineSender(SingleApiSender):
    """Sends answers as the LINE Official Account (see the module docstring)."""

    platforms = frozenset({Platform.LINE})
    default_base_url = DEFAULT_BASE_URL
    base_url_env = BASE_URL_ENV

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """Reply with the fresh reply token, else push (with a retry key)."""
        target = request.target
        client = self.bearer_client(Platform.LINE, target.account_id)
        messages = [{"type": "text", "text": request.text}]
        fallback: tuple[str, ...] = ()
        if target.line_token_fresh(now) and not request.private:
            response = self.post(
                Platform.LINE, client, "/v2/bot/message/reply", {"replyToken": target.line_reply_token, "messages": messages}
            )
            parsed = json_body(response)
            if response.ok:
                return SentReply(platform_message_id=_sent_id(parsed), via="line_reply")
            if not is_invalid_reply_token(response.status, parsed):
                raise line_failure(response.status, parsed, now, push=False)
            fallback = ("LINE's reply token had expired, so the answer was sent as a push message.",)
        to = target.customer_id if request.private else (target.line_to or target.customer_id)
        response = self.post(
            Platform.LINE,
            client,
            "/v2/bot/message/push",
            {"to": to, "messages": messages},
            headers={RETRY_KEY_HEADER: retry_key(request.idempotency_key)},
            retry_safe=True,
        )
        parsed = json_body(response)
        if response.ok:
            return SentReply(platform_message_id=_sent_id(parsed), via="line_push", warnings=fallback)
        if response.status == 409:
            # The retry key was already accepted: an earlier attempt delivered this answer.
            sent = _sent_id(parsed) or str(response.header(ACCEPTED_REQUEST_HEADER) or "")
            return SentReply(
                platform_message_id=sent,
                via="line_push",
                warnings=fallback + ("LINE had already accepted this answer from an earlier attempt; it was not sent twice.",),
            )
        raise line_failure(response.status, parsed, now, push=True)
