"""Answers on X: a reply post under the customer's mention, or a direct message.

X API v2 (``X_API_URL``, default ``https://api.x.com``), user-context access token of
the brand account in ``Authorization: Bearer`` (``X_USER_ACCESS_TOKEN``, scopes
``tweet.write`` and ``dm.write``):

* mention or reply (``x:tweets:<brand>:<customer>``): ``POST /2/tweets {text, reply:
  {in_reply_to_tweet_id}}`` answering the customer's latest post -> ``201 {"data":
  {"id", "text"}}``. X adds the @mention of the author itself.
* direct message (``x:dm:<brand>:<customer>``), or a public post answered privately:
  ``POST /2/dm_conversations/with/{customer}/messages {text}`` -> ``201 {"data":
  {"dm_conversation_id", "dm_event_id"}}``.

X has no idempotency key; its duplicate-content check ("You are not allowed to create
a Tweet with duplicate content.", 403) is the only guard, so a lost answer is
``duplicate_risk=True`` and a duplicate refusal says an earlier attempt may be live.

Rate limits come in ``x-rate-limit-limit/-remaining/-reset`` (epoch seconds) headers,
plus ``x-user-limit-24hour-*`` / ``x-app-limit-24hour-*`` for the daily caps; a 429
becomes ``rate_limited`` with ``retry_at`` at the latest exhausted window's reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.models import Platform
from chalicelib.outbound.base import (
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TARGET_DELETED,
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

DEFAULT_BASE_URL = "https://api.x.com"
BASE_URL_ENV = "X_API_URL"
DEFAULT_RATE_WAIT = timedelta(minutes=15)
_RESET_HEADERS = (
    ("x-rate-limit-remaining", "x-rate-limit-reset"),
    ("x-user-limit-24hour-remaining", "x-user-limit-24hour-reset"),
    ("x-app-limit-24hour-remaining", "x-app-limit-24hour-reset"),
)


def _problem_text(body: Mapping[str, Any]) -> str:
    """X's words: ``detail`` of a problem, else the first ``errors[].message``."""
    parts = [str(body.get("detail") or "")]
    errors = body.get("errors")
    if isinstance(errors, list):
        parts += [str(e.get("message") or e.get("detail") or "") for e in errors if isinstance(e, dict)]
    generic = ("", "forbidden", "unauthorized", "too many requests", "service unavailable")
    text = next((p for p in parts if p.strip().lower() not in generic), "")
    return short_detail(text)


def rate_limit_reset(headers: Mapping[str, str], now: datetime) -> datetime:
    """When sending works again: the latest reset of an exhausted window (else the
    standard reset, else 15 minutes from ``now``)."""
    headers = {k.lower(): v for k, v in headers.items()}
    exhausted, any_reset = [], []
    for remaining, reset in _RESET_HEADERS:
        try:
            moment = datetime.fromtimestamp(int(headers[reset]), tz=timezone.utc)
        except (KeyError, TypeError, ValueError):
            continue
        any_reset.append(moment)
        if str(headers.get(remaining, "")).strip() == "0":
            exhausted.append(moment)
    if exhausted:
        return max(exhausted)
    if any_reset:
        return max(any_reset)
    return utc(now) + DEFAULT_RATE_WAIT


def x_failure(status: int, body: Mapping[str, Any], headers: Mapping[str, str], now: datetime, *, dm: bool) -> ReplyFailed:
    """The ``ReplyFailed`` for an X API error answer."""
    detail = _problem_text(body)
    lowered = f"{detail} {body.get('type') or ''}".lower()
    common: dict[str, Any] = {"platform": Platform.X, "code": str(status), "detail": detail or None}
    says = f" (X says: {detail})" if detail else ""
    if status == 401:
        return ReplyFailed(
            TOKEN_EXPIRED,
            "Not sent: X no longer accepts socialdesk's authorization for the X account (it expired or was revoked). "
            "Reconnect the X account in socialdesk settings.",
            **common,
        )
    if status == 429:
        retry_at = rate_limit_reset(headers, now)
        what = "how many direct messages this X account can send" if dm else "how many posts this X account can publish"
        return ReplyFailed(
            RATE_LIMITED, rate_limited_words(Platform.X, retry_at, now, what), retry_at=retry_at, transient=True, **common
        )
    if status >= 500:
        return HttpSender.server_error(Platform.X, status, detail=detail or None)
    if "duplicate" in lowered:
        return ReplyFailed(
            REJECTED,
            "Not sent: X refused it as a duplicate of a recent post from this account. If an earlier attempt went "
            "through, the answer is already on X; otherwise reword it and send again.",
            **common,
        )
    if "deleted or not visible" in lowered or (not dm and status == 404):
        return ReplyFailed(
            TARGET_DELETED,
            "Not sent: the post you're replying to is no longer on X (deleted, or its author made it private).",
            **common,
        )
    if "reply to this conversation is not allowed" in lowered or "not been mentioned" in lowered:
        return ReplyFailed(
            REJECTED,
            "Not sent: the author limited who can reply to this post on X. Answer by direct message instead.",
            **common,
        )
    if status == 403 and (
        any(word in lowered for word in ("oauth", "permission", "scope", "client-forbidden", "unsupported-authentication"))
        or (dm and not detail)
    ):
        return ReplyFailed(
            PERMISSION_MISSING,
            "Not sent: socialdesk's authorization for the X account does not allow "
            + ("sending direct messages" if dm else "posting replies")
            + f"{says}. Reconnect the X account in socialdesk settings and grant "
            + ("dm.write" if dm else "tweet.write")
            + ".",
            **common,
        )
    if dm and status in (403, 400, 404):
        return ReplyFailed(
            REJECTED,
            f"Not sent: this customer can't receive direct messages from the X account{says}. "
            "They may have closed their DMs or blocked the account.",
            **common,
        )
    return ReplyFailed(REJECTED, f"Not sent: X refused the reply{says or f' (HTTP {status})'}.", **common)


class XSender(SingleApiSender):
    """Sends reply posts and direct messages as the brand account."""

    platforms = frozenset({Platform.X})
    default_base_url = DEFAULT_BASE_URL
    base_url_env = BASE_URL_ENV

    def _post(self, account_id: str, path: str, body: dict[str, Any], now: datetime, *, dm: bool) -> dict[str, Any]:
        client = self.bearer_client(Platform.X, account_id)
        response = self.post(Platform.X, client, path, body)
        parsed = json_body(response)
        if response.ok:
            data = parsed.get("data")
            return data if isinstance(data, dict) else {}
        raise x_failure(response.status, parsed, response.headers, now, dm=dm)

    def _dm(self, request: ReplyRequest, now: datetime) -> SentReply:
        target = request.target
        data = self._post(
            target.account_id, f"/2/dm_conversations/with/{target.customer_id}/messages", {"text": request.text}, now, dm=True
        )
        return SentReply(
            platform_message_id=str(data.get("dm_event_id") or ""), via="message" if target.scope == "dm" else "private_reply"
        )

    def _reply_post(self, target: Any, text: str, now: datetime) -> dict[str, Any]:
        return self._post(
            target.account_id, "/2/tweets", {"text": text, "reply": {"in_reply_to_tweet_id": target.reply_to_id}}, now, dm=False
        )

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """A DM for DM conversations and private answers, else a reply post."""
        target = request.target
        if target.scope == "dm":
            return self._dm(request, now)
        if not request.private:
            data = self._reply_post(target, request.text, now)
            return SentReply(platform_message_id=str(data.get("id") or ""), via="public_reply")
        sent = self._dm(request, now)
        ack = self.config.ack_for(Platform.X)
        if not ack:
            return sent
        try:
            posted = self._reply_post(target, ack, now)
        except ReplyFailed as exc:
            return SentReply(
                sent.platform_message_id,
                via=sent.via,
                warnings=(f"The direct message was sent, but the public note could not be posted. {exc.plain_words}",),
            )
        return SentReply(
            sent.platform_message_id, visible_note=ack, via=sent.via, visible_note_id=str(posted.get("id") or "") or None
        )
