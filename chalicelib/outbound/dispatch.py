"""Choose the sender, check what can be checked before calling, send.

``target_from_messages(messages, private=..., text=...)`` turns a conversation's stored
messages into the ``ReplyTarget`` its answer goes to. The answer is addressed to the
ticket's customer: in a chat, the person the conversation key names; in a thread several
people can write in (Facebook and Instagram comment threads, LINE and Telegram groups),
the author of the conversation's first message -- the thread's top-level comment, the
ticket's requester -- not whoever wrote last. It answers that customer's latest message
still on the platform (a public answer falls back to the thread's latest message when
every one of theirs was deleted) and carries the customer's last message time for the
reply windows, LINE's reply token and Telegram's chat/topic.

A private answer (``socialdesk_private``) in such a thread goes to the ticket's customer
and to nobody else. The bridge refuses it with a plain note, sending nothing, when

* the answer @mentions someone else who wrote in the thread (by handle or name) and not
  the customer: the agent evidently means that person, and a private reply can only
  reach the customer -- "answer them on the platform directly, or remove the mention";
* the customer has no comment left in a Facebook/Instagram thread (a private reply
  answers one of their comments, ``recipient.comment_id``): it is never redirected to
  whoever commented last.

``ReplyDispatcher(senders).send(target, text, private=..., idempotency_key=...)``
refuses an empty answer, or one longer than the platform takes (X posts 280 weighted
characters, Telegram 4096, Messenger 2000, Instagram Direct 1000 bytes, WhatsApp 4096,
LINE 5000, ...) with a note saying by how much to shorten it -- nothing is split: a
reply cut in two reads badly and half of it could fail -- then hands a ``ReplyRequest``
to the platform's sender. It keeps no memory of what it sent: sending each answer at
most once, across execution environments, is the reply ledger's job
(``agent_replies.ReplyLedger``, one conditional write per helpdesk comment).

``build_dispatcher()`` wires every sender from the environment and secrets
(``META_PAGE_TOKEN_<account id>``, ``WHATSAPP_ACCESS_TOKEN``, ``X_USER_ACCESS_TOKEN``,
``TELEGRAM_BOT_TOKEN``, ``LINE_CHANNEL_ACCESS_TOKEN``; ``META_GRAPH_URL``,
``META_GRAPH_VERSION``, ``X_API_URL``, ``TELEGRAM_API_URL``, ``LINE_API_URL``;
``HUMAN_AGENT_TAG_ENABLED``, ``PUBLIC_ACK_TEXT``, ``PUBLIC_ACK_PLATFORMS``;
``META_INSTAGRAM_PAGES`` = ``<ig id>:<page id>,...`` for Instagram with Facebook Login).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage, source_name
from chalicelib.outbound.base import (
    REJECTED,
    TARGET_DELETED,
    ReplyConfig,
    ReplyFailed,
    ReplyRequest,
    ReplyTarget,
    Sender,
    SentReply,
    platform_label,
    utc,
)

def _where(target: ReplyTarget) -> str:
    """The platform's name for a sentence; for a Standard Webhooks source, the tool's
    (``other:trustpilot:…`` -> "Trustpilot"), which is what the agent knows it by."""
    if target.platform is Platform.OTHER:
        source = target.conversation_key.split(":")[1] if target.conversation_key.count(":") >= 2 else ""
        if source:
            return source_name(source)
    return platform_label(target.platform)


# --- text limits ------------------------------------------------------------------------

X_POST_LIMIT = 280
X_DM_LIMIT = 10_000
_X_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_X_URL_WEIGHT = 23
# twitter-text v3: these code points weigh 1, every other one 2.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
# Joiners and modifiers inside an emoji sequence add nothing to its weight of 2.
_X_FREE = {0x200D, *range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)}


def x_weighted_length(text: str) -> int:
    """The length X counts for a post: most letters 1, CJK and emoji 2, each link 23.

    Follows twitter-text's v3 weights; emoji sequences are approximated (joiners,
    variation selectors and skin tones are free), which can only over-count.
    """
    total = 0
    for part_index, part in enumerate(_X_URL.split(text)):
        if part_index:
            total += _X_URL_WEIGHT
        for char in part:
            point = ord(char)
            if point in _X_FREE:
                continue
            total += 1 if any(low <= point <= high for low, high in _X_LIGHT_RANGES) else 2
    return total


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


# (limit, unit word, counter, "X allows {limit} in ...": what, and an optional note)
Limit = tuple[int, str, Callable[[str], int], str, str]


def text_limit(target: ReplyTarget, private: bool) -> Limit | None:
    """The length rule the answer must meet on ``target``'s platform (None: no known limit)."""
    platform, scope = target.platform, target.scope
    if platform is Platform.X:
        if scope == "dm" or private:
            return X_DM_LIMIT, "characters", len, "X allows {limit} in a direct message", ""
        return X_POST_LIMIT, "characters", x_weighted_length, "X allows {limit} in a reply post", \
            " (emoji and CJK characters count twice, links 23)"
    if platform is Platform.TELEGRAM:
        return 4096, "characters", _utf16_units, "Telegram allows {limit} in a message", ""
    if platform is Platform.MESSENGER or (platform is Platform.FACEBOOK and private):
        return 2000, "characters", len, "Messenger allows {limit} in a message", ""
    if platform is Platform.FACEBOOK:
        return 8000, "characters", len, "Facebook allows {limit} in a comment", ""
    if platform is Platform.INSTAGRAM:
        if scope == "dm" or private:
            return 1000, "bytes", _utf8_bytes, "Instagram allows {limit} in a direct message", \
                " (accented letters take 2 bytes, emoji 4)"
        return 2200, "characters", len, "Instagram allows {limit} in a comment", ""
    if platform is Platform.WHATSAPP:
        return 4096, "characters", len, "WhatsApp allows {limit} in a message", ""
    if platform is Platform.LINE:
        return 5000, "characters", _utf16_units, "LINE allows {limit} in a message", ""
    return None


def _amount(number: int, unit: str) -> str:
    return f"{number:,} {unit if number != 1 else unit.rstrip('s')}"


def check_text(target: ReplyTarget, text: str, private: bool) -> None:
    """``ReplyFailed(rejected)`` for an empty or too long answer."""
    if not text.strip():
        raise ReplyFailed(REJECTED, "Not sent: the reply is empty.", platform=target.platform, code="empty")
    rule = text_limit(target, private)
    if rule is None:
        return
    limit, unit, count, allows, note = rule
    length = count(text)
    if length > limit:
        raise ReplyFailed(
            REJECTED,
            f"Not sent: the reply is {length:,} {unit} long, and {allows.format(limit=f'{limit:,}')}{note}. "
            f"Shorten it by {_amount(length - limit, unit)} and send again.",
            platform=target.platform,
            code="too_long",
        )


# --- targets --------------------------------------------------------------------------------


def _key_parts(key: str) -> list[str]:
    return key.split(":")


def _telegram_number(message_key: str) -> str:
    """``<chat id>:<message_id>`` (or an edit of it) -> ``<message_id>``."""
    parts = message_key.split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _business_connection(raw: Mapping[str, Any]) -> str | None:
    for field in ("business_message", "edited_business_message"):
        found = raw.get(field)
        if isinstance(found, dict) and found.get("business_connection_id"):
            return str(found["business_connection_id"])
    return None


def _ticket_customer(inbound: list[SocialMessage], scope: str, tail: str) -> str:
    """Who the ticket belongs to: the person a chat's key names, else the author of the
    thread's top-level message (its root, when stored) or of its first message."""
    if scope in ("dm", "tweets"):
        return tail
    root = next((m for m in inbound if m.message_id == tail and not m.edit_of), None)
    if root is not None:
        return root.author.platform_id
    originals = [m for m in inbound if not m.edit_of] or inbound
    return min(originals, key=lambda m: (m.created_at, m.message_id)).author.platform_id


def _names(author: Author) -> set[str]:
    return {name.strip().lower() for name in (author.handle, author.display_name) if name and name.strip()}


def _mentions(text: str, names: set[str]) -> bool:
    """``@name`` in ``text`` (any case), not followed by another letter of a longer name."""
    return any(re.search(rf"@{re.escape(name)}(?![\w])", text, re.IGNORECASE) for name in names)


def _check_private_addressee(inbound: list[SocialMessage], own: list[SocialMessage], customer: str, text: str,
                             platform: Platform, scope: str) -> None:
    """``ReplyFailed`` when a private answer could reach someone other than the ticket's
    customer, or evidently means someone else (see the module docstring)."""
    label = platform_label(platform)
    customer_author = next((m.author for m in inbound if m.author.platform_id == customer), None)
    customer_names = _names(customer_author) if customer_author else set()
    who = customer_author.label if customer_author else "the customer"
    others = {m.author.platform_id: m.author for m in inbound if m.author.platform_id != customer}
    named = [a for a in others.values() if _mentions(text, _names(a) - customer_names)]
    if named and not _mentions(text, customer_names):
        other = named[0].label
        raise ReplyFailed(
            REJECTED,
            f"Not sent: this private reply mentions {other}, but a private reply goes only to the ticket's customer, "
            f"{who}. To answer {other}, write to them on {label} directly; to send this to {who}, remove the mention.",
            platform=platform,
            code="private_means_someone_else",
        )
    if not own and platform in (Platform.FACEBOOK, Platform.INSTAGRAM) and scope in ("comment", "post"):
        raise ReplyFailed(
            TARGET_DELETED,
            f"Not sent: a private reply answers one of the customer's own comments, and {who}'s comments in this "
            f"thread are no longer on {label}. socialdesk does not send it to anyone else in the thread. "
            "Answer publicly instead.",
            platform=platform,
            code="customer_comments_deleted",
        )


def target_from_messages(
    messages: Iterable[SocialMessage], *, config: ReplyConfig | None = None, private: bool = False, text: str = ""
) -> ReplyTarget:
    """The ``ReplyTarget`` for a conversation, from its stored messages (any order).

    The answer is addressed to the ticket's customer and answers their most recent
    message still on the platform (see the module docstring); ``last_inbound_at`` is the
    customer's most recent message (edits do not reopen a reply window). With
    ``private``, ``text`` is checked for a mention of someone else in the thread. Raises
    ``ReplyFailed`` when there is nothing to answer or nobody the answer may go to,
    ``ValueError`` for messages of several conversations.
    """
    config = config or ReplyConfig()
    found = list(messages)
    if not found:
        raise ReplyFailed(REJECTED, "Not sent: this conversation has no messages to answer.", code="no_messages")
    keys = {m.conversation_key for m in found}
    if len(keys) != 1:
        raise ValueError(f"messages of {len(keys)} conversations given; expected one")
    key = keys.pop()
    deleted = {m.edit_of for m in found if m.deleted and m.edit_of} | {m.message_id for m in found if m.deleted}
    inbound_all = [m for m in found if m.direction is Direction.INBOUND]
    inbound = [m for m in inbound_all if m.message_id not in deleted and (m.edit_of or m.message_id) not in deleted]
    platform = found[0].platform
    if not inbound:
        if inbound_all:
            raise ReplyFailed(
                TARGET_DELETED,
                f"Not sent: the customer deleted their messages in this conversation on {platform_label(platform)}.",
                platform=platform,
                code="all_deleted",
            )
        raise ReplyFailed(
            REJECTED, "Not sent: there is no message from the customer in this conversation to answer.",
            platform=platform, code="no_inbound",
        )
    parts = _key_parts(key)
    scope = parts[1] if len(parts) > 1 else ""
    tail = parts[-1]
    customer = _ticket_customer(inbound_all, scope, tail)
    # A chat has one customer whoever its messages name; elsewhere the customer's own messages.
    own = inbound if scope == "dm" else [m for m in inbound if m.author.platform_id == customer]
    if private and scope != "dm":
        _check_private_addressee(inbound_all, own, customer, text, platform, scope)
    latest = max(own or inbound, key=lambda m: (m.created_at, m.message_id))
    originals = [m for m in inbound_all if not m.edit_of and not m.deleted] or inbound
    customer_originals = [m for m in originals if scope == "dm" or m.author.platform_id == customer] or originals
    last_inbound_at = max(m.created_at for m in customer_originals)
    reply_to = latest.edit_of or latest.message_id
    reply_to_message = next((m for m in found if m.message_id == reply_to), latest)
    thread_root = tail if platform in (Platform.FACEBOOK, Platform.INSTAGRAM) and scope in ("comment", "post") else None

    chat_id = topic_id = business = line_to = token = None
    token_expires = None
    if platform is Platform.TELEGRAM:
        reply_to = _telegram_number(reply_to)
        if scope == "dm":
            chat_id = parts[3] if len(parts) > 3 else tail
        else:
            chat_id = parts[2] if len(parts) > 2 else tail
            topic_id = parts[3] if len(parts) > 3 and parts[3] != "main" else None
        business = _business_connection(latest.raw or {})
    if platform is Platform.LINE:
        line_to = tail
        raw_token = (latest.raw or {}).get("replyToken")
        used = any(m.direction is Direction.OUTBOUND and m.created_at >= latest.created_at for m in found)
        if raw_token and not used:
            token = str(raw_token)
            token_expires = utc(latest.created_at) + config.line_reply_token_ttl

    return ReplyTarget(
        platform=platform,
        kind=latest.kind if latest.kind else Kind.DIRECT_MESSAGE,
        conversation_key=key,
        account_id=latest.account_id,
        customer_id=customer,
        reply_to_id=reply_to,
        last_inbound_at=utc(last_inbound_at),
        reply_to_created_at=utc(reply_to_message.created_at),
        thread_root_id=thread_root,
        chat_id=chat_id,
        topic_id=topic_id,
        business_connection_id=business,
        line_to=line_to,
        line_reply_token=token,
        line_reply_token_expires_at=token_expires,
    )


# --- the dispatcher ---------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReplyDispatcher:
    """Sends an agent's answer with the sender of the conversation's platform."""

    def __init__(self, senders: Mapping[Platform, Sender], now: Callable[[], datetime] = _utcnow) -> None:
        self.senders = dict(senders)
        self._now = now

    def send(self, target: ReplyTarget, text: str, *, private: bool = False, idempotency_key: str) -> SentReply:
        """Post ``text`` to ``target``; ``SentReply`` or ``ReplyFailed`` (see the module docstring).

        ``idempotency_key`` identifies the answer for the platforms that deduplicate
        (LINE's ``X-Line-Retry-Key``); the dispatcher itself does not."""
        text = text.strip()
        private = bool(private) and target.is_public  # a chat is already private
        check_text(target, text, private)
        sender = self.senders.get(target.platform)
        if sender is None:
            label = _where(target)
            raise ReplyFailed(
                REJECTED,
                f"Not sent: socialdesk can't answer on {label} yet. Reply on {label} directly.",
                platform=target.platform,
                code="no_sender",
            )
        return sender.send(ReplyRequest(target, text, private, idempotency_key), utc(self._now()))


def _instagram_pages(value: str | None) -> dict[str, str]:
    pairs = {}
    for item in (value or "").split(","):
        ig, _, page = item.strip().partition(":")
        if ig and page:
            pairs[ig.strip()] = page.strip()
    return pairs


def build_dispatcher(
    env: Mapping[str, str] | None = None,
    get_secret: Callable[[str], str] | None = None,
    *,
    pool: Any = None,
    now: Callable[[], datetime] = _utcnow,
) -> ReplyDispatcher:
    """Every sender, wired from the environment (see the module docstring)."""
    import os

    from chalicelib.channels.line.replies import LineSender
    from chalicelib.channels.meta.replies import MetaSender
    from chalicelib.channels.telegram.replies import TelegramSender
    from chalicelib.channels.x.replies import XSender

    env = os.environ if env is None else env
    if get_secret is None:
        from chalicelib.config import get_secret as configured_secret

        get_secret = configured_secret
    secret = get_secret
    config = ReplyConfig.from_env(env)
    if pool is None:
        import urllib3

        pool = urllib3.PoolManager(num_pools=6, maxsize=4, retries=False)
    meta = MetaSender(
        lambda account: secret(f"META_PAGE_TOKEN_{account}"),
        whatsapp_token_provider=lambda _account: secret("WHATSAPP_ACCESS_TOKEN"),
        base_url=env.get("META_GRAPH_URL") or None,
        version=env.get("META_GRAPH_VERSION") or None,
        config=config,
        instagram_pages=_instagram_pages(env.get("META_INSTAGRAM_PAGES")),
        pool=pool,
    )
    x = XSender(lambda _account: secret("X_USER_ACCESS_TOKEN"), base_url=env.get("X_API_URL") or None, config=config, pool=pool)
    telegram = TelegramSender(lambda _account: secret("TELEGRAM_BOT_TOKEN"), base_url=env.get("TELEGRAM_API_URL") or None,
                              config=config, pool=pool)
    line = LineSender(lambda _account: secret("LINE_CHANNEL_ACCESS_TOKEN"), base_url=env.get("LINE_API_URL") or None,
                      config=config, pool=pool)
    senders: dict[Platform, Sender] = {}
    for sender in (meta, x, telegram, line):
        for platform in sender.platforms:
            senders[platform] = sender
    return ReplyDispatcher(senders, now)
