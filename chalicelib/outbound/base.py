"""The shared vocabulary of outbound replies: what to answer, how it went, how it failed.

An agent answers a ticket; the answer goes back to the platform the customer wrote on.
Everything a platform sender needs is in a ``ReplyTarget`` (built from the
conversation's messages by ``dispatch.target_from_messages``: the ticket's customer and
their latest message) and a
``ReplyRequest`` (the target, the text, public or private, an idempotency key).

A send ends in a ``SentReply`` (the platform's id for what was posted) or in ONE
exception type, ``ReplyFailed``, whose ``kind`` says what happened in a word a program
can branch on, and whose ``plain_words`` say it in a sentence an agent can read as an
internal note on the ticket ("Not sent: ...", then what to do about it):

===================  ==========================================================
``token_expired``     the account's access token expired: reconnect the account
``token_revoked``     the platform no longer accepts the token (password changed,
                      app removed, bot token revoked): reconnect the account
``permission_missing`` the token lacks a permission or the account a feature
``window_closed``     outside the platform's reply window (24 h, 7 days): needs a
                      template / tag, or the customer to write again
``rate_limited``      too many sends: ``retry_at`` says when it can work again
``target_deleted``    the comment/message being answered is gone (deleted by its
                      author, hidden, topic removed)
``rejected``          the platform refused this reply for another reason
                      (blocked, duplicate, too long, ...)
``unavailable``       no (usable) answer from the platform: ``transient=True``
===================  ==========================================================

``duplicate_risk`` is True when the request may have reached the platform (a timeout
after sending, a reset connection) and the platform has no idempotency key: sending
again could post the answer twice, so a person should look first. ``retry_is_safe``
combines it with ``transient``.

Configuration read here (``ReplyConfig.from_env``):

``HUMAN_AGENT_TAG_ENABLED``  ``true`` once the Meta app has the Human Agent feature
                             (App Review): Messenger/Instagram replies between 24 h and
                             7 days after the customer's last message are sent with the
                             ``HUMAN_AGENT`` tag. Default off.
``PUBLIC_ACK_TEXT``          the short public comment posted when a public comment is
                             answered privately. Default "We've sent you a private
                             message."; empty, ``off`` or ``none`` turns it off.
``PUBLIC_ACK_PLATFORMS``     where the acknowledgement is posted; default
                             ``facebook,instagram``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

from chalicelib.channels.registry import account_label, platform_label, reconnect_label
from chalicelib.models import Kind, Platform

# --- failure kinds ------------------------------------------------------------------

TOKEN_EXPIRED = "token_expired"
TOKEN_REVOKED = "token_revoked"
PERMISSION_MISSING = "permission_missing"
WINDOW_CLOSED = "window_closed"
RATE_LIMITED = "rate_limited"
TARGET_DELETED = "target_deleted"
REJECTED = "rejected"
UNAVAILABLE = "unavailable"
FAILURE_KINDS = frozenset(
    {TOKEN_EXPIRED, TOKEN_REVOKED, PERMISSION_MISSING, WINDOW_CLOSED, RATE_LIMITED, TARGET_DELETED, REJECTED, UNAVAILABLE}
)

# --- platform rules -------------------------------------------------------------------

STANDARD_WINDOW = timedelta(hours=24)  # Messenger, Instagram Direct, WhatsApp free-form
HUMAN_AGENT_WINDOW = timedelta(days=7)  # Messenger/Instagram HUMAN_AGENT tag
PRIVATE_REPLY_WINDOW = timedelta(days=7)  # private reply to a Facebook/Instagram comment
# LINE reply tokens are single-use and valid about a minute after the webhook; observed
# failures start earlier than that, so anything older than this is pushed instead.
LINE_REPLY_TOKEN_TTL = timedelta(seconds=50)

DEFAULT_PUBLIC_ACK_TEXT = "We've sent you a private message."
DEFAULT_PUBLIC_ACK_PLATFORMS = frozenset({Platform.FACEBOOK, Platform.INSTAGRAM})


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes (Instagram Direct counts so)."""
    return len(text.encode("utf-8"))


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units (Telegram and LINE count so: an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken as UTC)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def describe_age(age: timedelta) -> str:
    """``26 hours``, ``3 days``, ``45 minutes``: how old a message is, in words."""
    seconds = max(0, int(age.total_seconds()))
    if seconds < 3600:
        minutes = max(1, seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds // 3600
    if hours < 48:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    days = hours // 24
    return f"{days} day{'s' if days != 1 else ''}"


def describe_time(moment: datetime, now: datetime) -> str:
    """``14:05 UTC`` today, else ``2026-11-20 14:05 UTC``."""
    moment, now = utc(moment), utc(now)
    if moment.date() == now.date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- results and errors ----------------------------------------------------------------


class ReplyFailed(Exception):
    """A reply that was not sent (or not confirmed), in a word and in plain words.

    ``kind`` is one of ``FAILURE_KINDS``; ``plain_words`` reads well as an internal note
    for the agent; ``retry_at`` (aware UTC) is when a rate limit lifts; ``transient``
    says trying again later may work without anyone changing anything.
    ``duplicate_risk``: the request may have been applied (see the module docstring).
    ``platform`` and ``code`` (the platform's own error code or status, for logs) are
    informational; ``detail`` is the platform's own message, never shown to customers.
    """

    def __init__(
        self,
        kind: str,
        plain_words: str,
        retry_at: datetime | None = None,
        transient: bool = False,
        *,
        duplicate_risk: bool = False,
        platform: Platform | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown reply failure kind {kind!r}")
        super().__init__(plain_words)
        self.kind = kind
        self.plain_words = plain_words
        self.retry_at = utc(retry_at) if retry_at is not None else None
        self.transient = transient
        self.duplicate_risk = duplicate_risk
        self.platform = platform
        self.code = code
        self.detail = detail

    @property
    def retry_is_safe(self) -> bool:
        """Trying again later may work and cannot post the answer twice."""
        return self.transient and not self.duplicate_risk

    def __repr__(self) -> str:
        return f"ReplyFailed({self.kind!r}, {self.plain_words!r}, retry_at={self.retry_at!r}, transient={self.transient!r})"


@dataclass(frozen=True)
class SentReply:
    """What was posted: the platform's id for it, and what else the customer can see.

    ``visible_note`` is the public acknowledgement posted alongside a private answer
    (e.g. "We've sent you a private message."), None when none was posted.
    ``via`` names the route taken, for the ticket's audit note: ``public_reply``,
    ``private_reply``, ``message``, ``human_agent_tag``, ``line_reply``, ``line_push``.
    ``warnings`` are plain-words notes on things that went wrong without stopping the
    answer (e.g. the acknowledgement could not be posted).
    """

    platform_message_id: str
    visible_note: str | None = None
    via: str = ""
    visible_note_id: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplyTarget:
    """Where and to what an answer goes: the ticket's customer and their latest message.

    * ``account_id``: the receiving account (Page, IG account, WA phone-number id, X
      user, Telegram bot or business connection, LINE bot user id).
    * ``customer_id``: the ticket's customer (PSID, IGSID, wa_id, X user id, Telegram
      user, LINE user id): in a thread or group, the author of its first message.
    * ``reply_to_id``: the platform id of the message/comment being answered (for
      Telegram the bare per-chat message number; edits resolve to the original).
    * ``reply_to_created_at``: when that message was written (private-reply window).
    * ``thread_root_id``: the top-level comment (Facebook/Instagram comment threads,
      where replies are two levels deep), the Page post for a visitor post.
    * ``last_inbound_at``: the customer's most recent message in the conversation
      (the 24-hour windows are measured from it).
    * Telegram: ``chat_id``, ``topic_id`` (forum topic, None for the main one),
      ``business_connection_id`` (Telegram Business chats).
    * LINE: ``line_to`` (user, group or room id to push to), ``line_reply_token`` and
      its ``line_reply_token_expires_at``; None once used or unknown.
    """

    platform: Platform
    kind: Kind
    conversation_key: str
    account_id: str
    customer_id: str
    reply_to_id: str
    last_inbound_at: datetime
    reply_to_created_at: datetime | None = None
    thread_root_id: str | None = None
    chat_id: str | None = None
    topic_id: str | None = None
    business_connection_id: str | None = None
    line_to: str | None = None
    line_reply_token: str | None = None
    line_reply_token_expires_at: datetime | None = None

    @property
    def scope(self) -> str:
        """The conversation key's second part: ``comment``, ``dm``, ``tweets``, ``group``..."""
        parts = self.conversation_key.split(":")
        return parts[1] if len(parts) > 1 else ""

    @property
    def is_public(self) -> bool:
        """A conversation others can read (comments, mentions, group chats)."""
        return self.kind is not Kind.DIRECT_MESSAGE

    def line_token_fresh(self, now: datetime) -> bool:
        """A LINE reply token that may still be used at ``now``."""
        return (
            bool(self.line_reply_token)
            and self.line_reply_token_expires_at is not None
            and utc(now) < utc(self.line_reply_token_expires_at)
        )


@dataclass(frozen=True)
class ReplyRequest:
    """One answer to send. ``idempotency_key`` identifies the answer (the helpdesk and
    comment id): LINE's ``X-Line-Retry-Key`` is derived from it. (Sending it at most once
    is the reply ledger's job, ``agent_replies.ReplyLedger``.)"""

    target: ReplyTarget
    text: str
    private: bool = False
    idempotency_key: str = ""


@runtime_checkable
class Sender(Protocol):
    """A platform family's sender."""

    platforms: frozenset[Platform]

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """Post the answer, or raise ``ReplyFailed``."""
        ...


TokenProvider = Callable[[str], str]
"""``token_provider(account_id)`` -> the access token (single-token platforms ignore the id)."""


# --- configuration ------------------------------------------------------------------------


_FALSE = {"", "0", "false", "no", "off", "none"}


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() not in _FALSE


def _platforms(value: str | None, default: frozenset[Platform]) -> frozenset[Platform]:
    if value is None:
        return default
    found = set()
    for name in value.split(","):
        name = name.strip().lower()
        if name:
            found.add(Platform(name))
    return frozenset(found)


@dataclass(frozen=True)
class ReplyConfig:
    """Reply behaviour that is a business decision, not a platform fact."""

    human_agent_allowed: bool = False
    public_ack_text: str | None = DEFAULT_PUBLIC_ACK_TEXT
    public_ack_platforms: frozenset[Platform] = field(default=DEFAULT_PUBLIC_ACK_PLATFORMS)
    line_reply_token_ttl: timedelta = LINE_REPLY_TOKEN_TTL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReplyConfig:
        """``HUMAN_AGENT_TAG_ENABLED``, ``PUBLIC_ACK_TEXT``, ``PUBLIC_ACK_PLATFORMS``."""
        env = os.environ if env is None else env
        ack = env.get("PUBLIC_ACK_TEXT")
        if ack is None:
            ack_text: str | None = DEFAULT_PUBLIC_ACK_TEXT
        else:
            ack_text = None if ack.strip().lower() in _FALSE else ack.strip()
        return cls(
            human_agent_allowed=_flag(env.get("HUMAN_AGENT_TAG_ENABLED")),
            public_ack_text=ack_text,
            public_ack_platforms=_platforms(env.get("PUBLIC_ACK_PLATFORMS"), DEFAULT_PUBLIC_ACK_PLATFORMS),
        )

    def ack_for(self, platform: Platform) -> str | None:
        """The acknowledgement text to post on ``platform``, or None."""
        return self.public_ack_text if self.public_ack_text and platform in self.public_ack_platforms else None


# --- plain words shared by every sender -----------------------------------------------------


def not_sent_no_token(platform: Platform) -> ReplyFailed:
    """No token configured for the account: the same fix as a revoked one."""
    account = account_label(platform)
    return ReplyFailed(
        TOKEN_REVOKED,
        f"Not sent: socialdesk has no access token for this {account}. Connect {reconnect_label(platform)} in socialdesk settings.",
        platform=platform,
        code="no_token",
    )


def window_closed_words(platform: Platform, age: timedelta, *, human_agent_allowed: bool | None = None) -> str:
    """The note for a chat answered too late (24 h rule; 7 days with HUMAN_AGENT)."""
    label = platform_label(platform)
    old = describe_age(age)
    if platform is Platform.WHATSAPP:
        return (
            f"Not sent: the customer's last message is {old} old, outside WhatsApp's 24-hour window. "
            "Send a template message from WhatsApp Manager or wait for the customer to write again."
        )
    if human_agent_allowed:
        return (
            f"Not sent: the customer's last message is {old} old. {label} allows replies for 24 hours, "
            "and human-agent replies for 7 days; both have passed. Wait for the customer to write again."
        )
    return (
        f"Not sent: the customer's last message is {old} old, outside {label}'s 24-hour reply window. "
        "Wait for the customer to write again (human-agent replies, which allow 7 days, are not enabled)."
    )


def rate_limited_words(platform: Platform, retry_at: datetime | None, now: datetime, what: str = "") -> str:
    """The note for a rate limit, with when sending works again."""
    label = platform_label(platform)
    what = what or f"how much this {account_label(platform)} can send"
    when = f" It can be sent again after {describe_time(retry_at, now)}." if retry_at else " Try again in a few minutes."
    return f"Not sent: {label} is limiting {what}.{when}"


def unavailable_words(platform: Platform, *, maybe_sent: bool, safe_retry: bool = False) -> str:
    """The note for no (usable) answer from the platform."""
    label = platform_label(platform)
    if not maybe_sent:
        return f"Not sent: {label} could not be reached. Nothing was posted; it is safe to send again."
    if safe_retry:
        return (
            f"Not confirmed: {label} did not confirm the reply. Sending again is safe: "
            f"{label} will not deliver the same reply twice."
        )
    return (
        f"Not confirmed: the connection to {label} broke after the reply was sent, so it may have been posted. "
        f"Check the conversation on {label} before sending again."
    )


def short_detail(value: Any, limit: int = 160) -> str:
    """A platform's own error message, trimmed for a note (never customer text)."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- HTTP plumbing shared by the senders -------------------------------------------------


def json_body(response: Any) -> dict[str, Any]:
    """The response body as a dict ({} when it is not a JSON object)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class HttpSender:
    """Base for the senders: one ``JsonHttpClient`` per (base URL, credential), one pool.

    ``token_provider(account_id)`` is called on every send, so a rotated secret is
    picked up without a new sender. ``observer`` is handed to every client (tests use it
    to check exchanges against published specs). Transport failures become
    ``ReplyFailed(unavailable, transient=True)``; ``duplicate_risk`` is set when the
    request may have been applied and the platform cannot deduplicate it.
    """

    platforms: frozenset[Platform] = frozenset()

    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider,
        *,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
        observer: Callable[[Any], None] | None = None,
        config: ReplyConfig | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token_provider = token_provider
        self._pool = pool
        self._timeout = timeout
        self._observer = observer
        self._clients: dict[tuple[str, str], Any] = {}
        self.config = config or ReplyConfig()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def token(self, platform: Platform, account_id: str, provider: TokenProvider | None = None) -> str:
        """The account's token (from ``provider``, default the sender's), or
        ``ReplyFailed(token_revoked)`` when none is configured."""
        try:
            token = ((provider or self._token_provider)(account_id) or "").strip()
        except Exception:  # NotConfigured, an unreadable secret: the account is not connected
            raise not_sent_no_token(platform) from None
        if not token:
            raise not_sent_no_token(platform)
        return token

    def client(self, platform: Platform, base_url: str, auth_header: str) -> Any:
        """A (cached) JSON client for ``base_url`` sending ``auth_header``."""
        from chalicelib.http import JsonHttpClient

        key = (base_url, auth_header)
        found = self._clients.get(key)
        if found is None:
            if self._pool is None:
                import urllib3

                self._pool = urllib3.PoolManager(num_pools=4, maxsize=4, retries=False)
            try:
                found = JsonHttpClient(base_url, auth_header, timeout=self._timeout, observer=self._observer, pool=self._pool)
            except ValueError:
                # The message names the URL, which for Telegram holds the bot token.
                raise ReplyFailed(
                    UNAVAILABLE,
                    f"Not sent: the {platform_label(platform)} API address in socialdesk's configuration is not valid. "
                    "An administrator needs to fix it.",
                    platform=platform,
                    code="bad_base_url",
                ) from None
            if len(self._clients) > 32:  # rotated tokens must not pile up clients
                self._clients.clear()
            self._clients[key] = found
        return found

    def post(
        self,
        platform: Platform,
        client: Any,
        path: str,
        body: Any,
        *,
        headers: Mapping[str, str] | None = None,
        retry_safe: bool = False,
    ) -> Any:
        """POST JSON; any HTTP status is returned, transport failures raise ``ReplyFailed``.

        ``retry_safe``: the platform deduplicates a repeat of this request (LINE's retry
        key), so a lost answer carries no duplicate risk.
        """
        from chalicelib.http import ConnectFailed, TransportError, UnsafeUrl

        try:
            return client.request("POST", path, json=body, headers=headers)
        except ConnectFailed:
            raise ReplyFailed(
                UNAVAILABLE, unavailable_words(platform, maybe_sent=False), transient=True, platform=platform, code="connect"
            ) from None
        except TransportError as exc:
            raise ReplyFailed(
                UNAVAILABLE,
                unavailable_words(platform, maybe_sent=True, safe_retry=retry_safe),
                transient=True,
                duplicate_risk=not retry_safe,
                platform=platform,
                code=type(exc).__name__,
            ) from None
        except UnsafeUrl:
            raise ReplyFailed(
                REJECTED,
                f"Not sent: socialdesk refused to send the reply to another address than {platform_label(platform)}'s.",
                platform=platform,
                code="unsafe_url",
            ) from None

    def bearer_client(self, platform: Platform, account_id: str, provider: TokenProvider | None = None) -> Any:
        """The client for ``self.base_url`` sending the account's token as ``Authorization: Bearer``."""
        return self.client(platform, self.base_url, f"Bearer {self.token(platform, account_id, provider)}")

    @staticmethod
    def server_error(platform: Platform, status: int, *, retry_safe: bool = False, detail: str | None = None) -> ReplyFailed:
        """A 5xx answer: the platform failed; the reply may or may not have been applied.

        Platforms answer 5xx before doing anything far more often than after, but only
        an idempotent send (``retry_safe``) can be repeated without any risk.
        """
        label = platform_label(platform)
        if retry_safe:
            words = f"Not sent: {label} had a temporary problem (HTTP {status}). Sending again is safe."
        else:
            words = (
                f"Not confirmed: {label} had a temporary problem (HTTP {status}), so the reply was probably not posted. "
                f"Check the conversation on {label} before sending again."
            )
        return ReplyFailed(
            UNAVAILABLE, words, transient=True, duplicate_risk=not retry_safe, platform=platform, code=str(status), detail=detail
        )


class SingleApiSender(HttpSender):
    """A sender for a platform with one API address: ``base_url``, else the environment
    variable named by ``base_url_env``, else ``default_base_url`` (read when the sender
    is built, so a test or the local sandbox can point it elsewhere)."""

    default_base_url: str = ""
    base_url_env: str = ""

    def __init__(
        self,
        token_provider: TokenProvider,
        *,
        base_url: str | None = None,
        config: ReplyConfig | None = None,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
        observer: Callable[[Any], None] | None = None,
    ) -> None:
        super().__init__(
            base_url or os.environ.get(self.base_url_env) or self.default_base_url,
            token_provider,
            pool=pool,
            timeout=timeout,
            observer=observer,
            config=config,
        )
