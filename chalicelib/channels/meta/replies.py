"""Answers on Meta: Facebook comments, Messenger, Instagram comments and Direct, WhatsApp.

All calls go to the Graph API (``META_GRAPH_URL``, default ``https://graph.facebook.com``,
plus ``META_GRAPH_VERSION``, default ``v23.0``, unless the URL already ends in one),
with the token in ``Authorization: Bearer`` (never in the URL):

* Facebook comment, public: ``POST /{top-level comment}/comments {message}``. Facebook
  threads are two levels deep, so the answer goes under the thread's top-level comment
  (the conversation key's id) even when the customer wrote a reply inside it.
* Facebook visitor post, public: ``POST /{post}/comments {message}``.
* Facebook comment/post, private: ``POST /{page}/messages {recipient: {comment_id|post_id},
  message: {text}}`` -- one private reply per comment, within 7 days of the comment.
* Messenger / Instagram Direct: ``POST /{page or IG account}/messages {recipient: {id},
  messaging_type: RESPONSE, message: {text}}`` within 24 h of the customer's last
  message; from 24 h to 7 days ``messaging_type: MESSAGE_TAG, tag: HUMAN_AGENT`` when
  ``HUMAN_AGENT_TAG_ENABLED`` (the app needs the Human Agent feature); otherwise
  ``ReplyFailed(window_closed)`` before any call.
* Instagram comment, public: ``POST /{top-level IG comment}/replies {message}``
  (Instagram only allows replies to top-level comments); private: the private-reply
  form of the Send API on the IG account (7 days).
* WhatsApp: ``POST /{phone-number-id}/messages {messaging_product: whatsapp,
  recipient_type: individual, to, type: text, text: {preview_url, body},
  context: {message_id}?}`` within 24 h of the customer's last message, else
  ``window_closed`` (only a template may be sent then, which is not an agent's answer).

* Facebook Page recommendation: no call; the Graph API no longer allows it
  (``recommendations.not_answerable``).

Tokens: ``token_provider(account_id)`` gives the Page token for a Page or Instagram
account (``META_PAGE_TOKEN_<id>``, shared with the backfill); ``whatsapp_token_provider``
(``WHATSAPP_ACCESS_TOKEN``) the WhatsApp system-user token.

Meta has no idempotency key for any of these: a lost answer (timeout, reset) is
reported with ``duplicate_risk=True``.

Errors are mapped from Graph's envelope ``{"error": {"message", "type", "code",
"error_subcode", "is_transient", "fbtrace_id"}}`` by ``graph_failure``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalicelib.channels.meta.graph import (
    AUTH_CODES,
    BUSINESS_USAGE_HEADER,
    EXPIRED_SUBCODES,
    RATE_LIMIT_CODES,
    REVOKED_REASONS,
    TRANSIENT_CODES,
    business_usage_wait,
)
from chalicelib.channels.meta.recommendations import is_recommendation, not_answerable
from chalicelib.http import json_list, json_object
from chalicelib.models import Platform
from chalicelib.outbound.base import (
    HUMAN_AGENT_WINDOW,
    PERMISSION_MISSING,
    PRIVATE_REPLY_WINDOW,
    RATE_LIMITED,
    REJECTED,
    STANDARD_WINDOW,
    TARGET_DELETED,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    UNAVAILABLE,
    WINDOW_CLOSED,
    HttpSender,
    ReplyConfig,
    ReplyFailed,
    ReplyRequest,
    ReplyTarget,
    SentReply,
    TokenProvider,
    account_label,
    describe_age,
    json_body,
    platform_label,
    rate_limited_words,
    reconnect_label,
    short_detail,
    utc,
    window_closed_words,
)

# A WhatsApp business-scoped user id: country code, a dot, then alphanumerics (``US.1349...``,
# ``US.ENT.1181...`` for a parent id). Phone numbers are digits only.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v23.0"
BASE_URL_ENV = "META_GRAPH_URL"
VERSION_ENV = "META_GRAPH_VERSION"
# WhatsApp's published spec constrains User-Agent to "<product>/<x.y.z>".
USER_AGENT = "socialdesk/1.0.0"

# WhatsApp Cloud API's error codes ("Error codes"), besides Graph's (``graph.py``).
WHATSAPP_THROTTLING = {
    130429: "how many messages this WhatsApp number can send per second",
    131056: "how many messages can be sent to this customer in a short time",
}
WINDOW_SUBCODES = frozenset({2018278, 2534022})
WHATSAPP_TRANSIENT_CODES = frozenset({131000, 131016})
DEFAULT_THROTTLE_WAIT = timedelta(minutes=5)
WHATSAPP_THROTTLE_WAIT = timedelta(minutes=1)

# WhatsApp codes a person must act on, in plain words (after "Not sent: ").
WHATSAPP_REJECTIONS: dict[int, str] = {
    131026: "WhatsApp could not deliver it: the number may not be on WhatsApp, may use an old app version, or may have blocked this business",
    131051: "WhatsApp does not support this kind of message",
    131048: "WhatsApp is holding back messages from this number because earlier ones were reported or blocked (spam rate limit)",
    131049: "WhatsApp chose not to deliver it, to keep the customer's experience healthy (too many business messages)",
    131031: "the WhatsApp Business Account is locked; check WhatsApp Manager",
    131021: "the recipient is this business's own number",
    133010: "this phone number is not registered with the WhatsApp Cloud API",
    368: "the account is temporarily blocked for policy violations; check WhatsApp Manager or the Page's quality",
    131042: "there is a payment problem with the WhatsApp Business Account",
}
WHATSAPP_PERMISSION = frozenset({131005, 10, 3})

_EXPIRY_DATE = re.compile(r"expired on \w+, (\d{1,2})-(\w{3})-(\d{2,4})", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_VERSIONED = re.compile(r"/v\d+\.\d+$")


def graph_base_url(base_url: str | None = None, version: str | None = None) -> str:
    """``META_GRAPH_URL`` + ``/<version>`` (unless the URL already ends in ``/vNN.N``)."""
    base = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
    if _VERSIONED.search(base):
        return base
    return f"{base}/{(version or os.environ.get(VERSION_ENV) or DEFAULT_VERSION).strip('/')}"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def expiry_date(message: str) -> str | None:
    """``2026-11-20`` from Graph's "Session has expired on Friday, 20-Nov-26 ..." (else None)."""
    found = _EXPIRY_DATE.search(message or "")
    if not found:
        return None
    day, month, year = int(found.group(1)), _MONTHS.get(found.group(2).lower()), int(found.group(3))
    if month is None:
        return None
    if year < 100:
        year += 2000
    return f"{year:04d}-{month:02d}-{day:02d}"


def graph_failure(
    platform: Platform,
    status: int,
    body: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    now: datetime,
    *,
    tagged: bool = False,
    private_reply: bool = False,
) -> ReplyFailed:
    """The ``ReplyFailed`` for a Graph error answer (``body`` is the parsed JSON).

    ``tagged``: the request used the HUMAN_AGENT tag (a window error then most likely
    means the app lacks the Human Agent feature). ``private_reply``: a private reply to
    a comment was attempted.
    """
    error = json_object(body.get("error"))
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    meta_says = short_detail(error.get("error_user_msg") or error.get("message"))
    label, account, reconnect = platform_label(platform), account_label(platform), reconnect_label(platform)
    common: dict[str, Any] = {
        "platform": platform,
        "code": f"{code}/{subcode}" if subcode else (str(code) if code is not None else str(status)),
        "detail": meta_says or None,
    }
    headers = {k.lower(): v for k, v in (headers or {}).items()}

    if code in AUTH_CODES:
        message = str(error.get("message") or "")
        if subcode in EXPIRED_SUBCODES or (subcode is None and "expired" in message.lower()):
            when = expiry_date(message)
            when_words = f" on {when}" if when else ""
            token = {
                Platform.FACEBOOK: "Facebook Page token",
                Platform.MESSENGER: "Facebook Page token",
                Platform.WHATSAPP: "WhatsApp access token",
            }.get(platform, f"{account}'s access token")
            return ReplyFailed(
                TOKEN_EXPIRED,
                f"Not sent: the {token} expired{when_words}. Reconnect {reconnect} in socialdesk settings.",
                **common,
            )
        reason = REVOKED_REASONS.get(subcode or -1, "the access was invalidated")
        return ReplyFailed(
            TOKEN_REVOKED,
            f"Not sent: Meta no longer accepts socialdesk's access to the {account} ({reason}). "
            f"Reconnect {reconnect} in socialdesk settings.",
            **common,
        )

    if code in RATE_LIMIT_CODES or code in WHATSAPP_THROTTLING or status == 429:
        wait = business_usage_wait(headers.get(BUSINESS_USAGE_HEADER))
        if wait is None:
            wait = WHATSAPP_THROTTLE_WAIT if code in WHATSAPP_THROTTLING else DEFAULT_THROTTLE_WAIT
        retry_at = utc(now) + wait
        return ReplyFailed(
            RATE_LIMITED,
            rate_limited_words(platform, retry_at, now, WHATSAPP_THROTTLING.get(code or -1, "")),
            retry_at=retry_at,
            transient=True,
            **common,
        )

    if code == 131047 or (code == 10 and subcode in WINDOW_SUBCODES):
        if tagged:
            return ReplyFailed(
                WINDOW_CLOSED,
                f"Not sent: {label} refused a human-agent reply outside the 24-hour window. The app may not have "
                "Meta's Human Agent feature approved; until it does, wait for the customer to write again.",
                **common,
            )
        if platform is Platform.WHATSAPP:
            words = (
                "Not sent: WhatsApp says more than 24 hours have passed since the customer's last message. "
                "Send a template message from WhatsApp Manager or wait for the customer to write again."
            )
        else:
            words = (
                f"Not sent: {label} says the reply window for this conversation has closed. Wait for the customer to write again."
            )
        return ReplyFailed(WINDOW_CLOSED, words, **common)

    if code == 10900 or "already replied" in meta_says.lower():
        return ReplyFailed(
            REJECTED,
            f"Not sent: this comment already has a private reply; {label} allows only one. "
            "Continue in the private conversation instead.",
            **common,
        )

    if code == 10903:
        return ReplyFailed(
            REJECTED,
            f"Not sent: {label} does not let this person receive a private reply to this comment. Answer publicly instead.",
            **common,
        )

    if code == 551:
        return ReplyFailed(
            REJECTED,
            f"Not sent: this person can't receive messages from the {account} right now "
            "(they may have blocked it or deactivated their account).",
            **common,
        )

    if code == 100 and (subcode == 33 or "does not exist" in meta_says.lower()):
        thing = "message" if platform in (Platform.MESSENGER, Platform.WHATSAPP) else "comment"
        return ReplyFailed(
            TARGET_DELETED,
            f"Not sent: the {thing} you're replying to no longer exists on {label}; its author probably deleted it.",
            **common,
        )

    if code == 100 and subcode == 2018001:
        return ReplyFailed(REJECTED, f"Not sent: {label} can't find this customer for the {account} any more.", **common)

    if code in WHATSAPP_REJECTIONS:
        return ReplyFailed(REJECTED, f"Not sent: {WHATSAPP_REJECTIONS[code]}.", **common)

    if code in (10, 3, 131005) or (code is not None and 200 <= code <= 299):
        return ReplyFailed(
            PERMISSION_MISSING,
            f"Not sent: socialdesk's connection to the {account} lacks a permission needed to reply"
            + (f" (Meta says: {meta_says})" if meta_says else "")
            + f". Reconnect {reconnect} in socialdesk settings and grant every permission asked for.",
            **common,
        )

    if code in TRANSIENT_CODES or code in WHATSAPP_TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
        # Code 1 subcode 1357046 "Received invalid JSON reply": Meta documents that the
        # message may have been sent anyway.
        maybe = (code == 1 and subcode == 1357046) or status >= 500
        words = (
            f"Not confirmed: {label} had a temporary problem"
            + (f" (Meta says: {meta_says})" if meta_says else "")
            + f". Check the conversation on {label} before sending again, in case it went through."
            if maybe
            else f"Not sent: {label} had a temporary problem"
            + (f" (Meta says: {meta_says})" if meta_says else "")
            + ". Try again in a few minutes."
        )
        return ReplyFailed(UNAVAILABLE, words, transient=True, duplicate_risk=maybe, **common)

    if private_reply and code == 100:
        return ReplyFailed(
            REJECTED,
            f"Not sent: {label} does not allow a private reply to this comment"
            + (f" (Meta says: {meta_says})" if meta_says else "")
            + ". Answer publicly instead.",
            **common,
        )

    return ReplyFailed(
        REJECTED,
        f"Not sent: {label} refused the reply" + (f" (Meta says: {meta_says})" if meta_says else f" (HTTP {status})") + ".",
        **common,
    )


class MetaSender(HttpSender):
    """Sends answers through the Graph API (see the module docstring).

    ``instagram_pages`` maps an Instagram account id to its Facebook Page id, for apps
    using Instagram API *with Facebook Login*, where Direct and private replies are
    sent on the Page (``/{page}/messages``) with the Page's token. Without an entry the
    IG account's own id and token are used (``/{ig-id}/messages``).
    ``quote_whatsapp``: WhatsApp answers quote the customer's message (``context``).
    """

    platforms = frozenset({Platform.FACEBOOK, Platform.MESSENGER, Platform.INSTAGRAM, Platform.WHATSAPP})

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        whatsapp_token_provider: TokenProvider | None = None,
        base_url: str | None = None,
        version: str | None = None,
        config: ReplyConfig | None = None,
        instagram_pages: Mapping[str, str] | None = None,
        quote_whatsapp: bool = False,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
        observer: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(
            graph_base_url(base_url, version), token_provider, pool=pool, timeout=timeout, observer=observer, config=config
        )
        self._whatsapp_token_provider = whatsapp_token_provider or token_provider
        self.instagram_pages = dict(instagram_pages or {})
        self.quote_whatsapp = quote_whatsapp

    # --- plumbing ---------------------------------------------------------------------

    def _graph(self, platform: Platform, account_id: str) -> Any:
        provider = self._whatsapp_token_provider if platform is Platform.WHATSAPP else None
        return self.bearer_client(platform, account_id, provider)

    def _call(
        self, platform: Platform, account_id: str, path: str, body: dict[str, Any], now: datetime, **failure: Any
    ) -> dict[str, Any]:
        client = self._graph(platform, account_id)
        response = self.post(platform, client, path, body, headers={"User-Agent": USER_AGENT})
        parsed = json_body(response)
        if response.ok and "error" not in parsed:
            return parsed
        raise graph_failure(platform, response.status, parsed, response.headers, now, **failure)

    # --- routing ----------------------------------------------------------------------

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """Post ``request`` (see the module docstring for which call each case makes)."""
        target = request.target
        platform, scope = target.platform, target.scope
        if platform is Platform.WHATSAPP:
            return self._whatsapp(request, now)
        if platform is Platform.MESSENGER or (platform is Platform.INSTAGRAM and scope == "dm"):
            return self._chat(request, now)
        if platform is Platform.FACEBOOK and scope in ("comment", "post"):
            return self._private_reply(request, now) if request.private else self._public_comment(request, now)
        if platform is Platform.INSTAGRAM and scope == "comment":
            return self._private_reply(request, now) if request.private else self._public_comment(request, now)
        if is_recommendation(platform, target.conversation_key):
            raise not_answerable(target)  # gone from the Graph API: no call at all
        what = {"mention": "@mentions"}.get(scope, f"{scope or 'these'} conversations")
        raise ReplyFailed(
            REJECTED,
            f"Not sent: socialdesk can't answer {platform_label(platform)} {what} yet. Reply on {platform_label(platform)} directly.",
            platform=platform,
            code="unsupported",
        )

    # --- public comments --------------------------------------------------------------

    def _comment_path(self, target: ReplyTarget) -> str:
        root = target.thread_root_id or target.reply_to_id
        edge = "replies" if target.platform is Platform.INSTAGRAM else "comments"
        return f"/{root}/{edge}"

    def _public_comment(self, request: ReplyRequest, now: datetime) -> SentReply:
        target = request.target
        body = self._call(target.platform, target.account_id, self._comment_path(target), {"message": request.text}, now)
        return SentReply(platform_message_id=str(body.get("id") or ""), via="public_reply")

    # --- private replies --------------------------------------------------------------

    def _sending_node(self, target: ReplyTarget) -> str:
        if target.platform is Platform.INSTAGRAM:
            return self.instagram_pages.get(target.account_id, target.account_id)
        return target.account_id

    def _private_reply(self, request: ReplyRequest, now: datetime) -> SentReply:
        target = request.target
        label = platform_label(target.platform)
        created = target.reply_to_created_at or target.last_inbound_at
        age = utc(now) - utc(created)
        if age > PRIVATE_REPLY_WINDOW:
            raise ReplyFailed(
                WINDOW_CLOSED,
                f"Not sent: the comment is {describe_age(age)} old; {label} allows a private reply only within "
                "7 days of the comment. Answer publicly instead.",
                platform=target.platform,
                code="private_reply_window",
            )
        node = self._sending_node(target)
        field = "post_id" if target.platform is Platform.FACEBOOK and target.scope == "post" else "comment_id"
        body = {"recipient": {field: target.reply_to_id}, "message": {"text": request.text}}
        answer = self._call(target.platform, node, f"/{node}/messages", body, now, private_reply=True)
        sent_id = str(answer.get("message_id") or answer.get("id") or "")
        ack = self.config.ack_for(target.platform)
        if not ack:
            return SentReply(platform_message_id=sent_id, via="private_reply")
        try:
            posted = self._call(target.platform, target.account_id, self._comment_path(target), {"message": ack}, now)
        except ReplyFailed as exc:
            return SentReply(
                platform_message_id=sent_id,
                via="private_reply",
                warnings=(f"The private reply was sent, but the public note could not be posted. {exc.plain_words}",),
            )
        return SentReply(
            platform_message_id=sent_id,
            visible_note=ack,
            via="private_reply",
            visible_note_id=str(posted.get("id") or "") or None,
        )

    # --- Messenger / Instagram Direct -----------------------------------------------

    def _chat(self, request: ReplyRequest, now: datetime) -> SentReply:
        target = request.target
        age = utc(now) - utc(target.last_inbound_at)
        body: dict[str, Any] = {"recipient": {"id": target.customer_id}}
        if age <= STANDARD_WINDOW:
            body["messaging_type"], via = "RESPONSE", "message"
        elif self.config.human_agent_allowed and age <= HUMAN_AGENT_WINDOW:
            body["messaging_type"], body["tag"], via = "MESSAGE_TAG", "HUMAN_AGENT", "human_agent_tag"
        else:
            raise ReplyFailed(
                WINDOW_CLOSED,
                window_closed_words(target.platform, age, human_agent_allowed=self.config.human_agent_allowed),
                platform=target.platform,
                code="window",
            )
        body["message"] = {"text": request.text}
        node = self._sending_node(target)
        answer = self._call(target.platform, node, f"/{node}/messages", body, now, tagged=via == "human_agent_tag")
        return SentReply(platform_message_id=str(answer.get("message_id") or ""), via=via)

    # --- WhatsApp ---------------------------------------------------------------------

    def _whatsapp(self, request: ReplyRequest, now: datetime) -> SentReply:
        target = request.target
        age = utc(now) - utc(target.last_inbound_at)
        if age > STANDARD_WINDOW:
            raise ReplyFailed(
                WINDOW_CLOSED, window_closed_words(Platform.WHATSAPP, age), platform=Platform.WHATSAPP, code="window"
            )
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual"}
        if target.scope == "group":  # a WhatsApp group: the answer goes to the group
            body.update(recipient_type="group", to=target.conversation_key.rsplit(":", 1)[-1])
        elif _BSUID.fullmatch(target.customer_id):
            # A customer known by their business-scoped user id (a username, no phone number
            # in the webhook): sent to that id ("recipient"), as Meta asks since 2026.
            body["recipient"] = target.customer_id
        else:
            body["to"] = target.customer_id
        body.update(type="text", text={"preview_url": False, "body": request.text})
        if self.quote_whatsapp and target.reply_to_id:
            body["context"] = {"message_id": target.reply_to_id}
        answer = self._call(Platform.WHATSAPP, target.account_id, f"/{target.account_id}/messages", body, now)
        messages = json_list(answer.get("messages"))
        sent_id = str((messages[0] or {}).get("id") or "") if messages and isinstance(messages[0], dict) else ""
        return SentReply(platform_message_id=sent_id, via="message")
