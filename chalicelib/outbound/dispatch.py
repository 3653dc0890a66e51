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

``build_dispatcher()`` asks every channel for its sender (``Channel.reply_sender``: each
reads its own settings and secrets, e.g. ``META_PAGE_TOKEN_<account id>``,
``TELEGRAM_BOT_TOKEN``, ``X_API_URL``) and shares ``HUMAN_AGENT_TAG_ENABLED``,
``PUBLIC_ACK_TEXT`` and ``PUBLIC_ACK_PLATFORMS`` between them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from chalicelib.channels.base import TextLimit
from chalicelib.channels.registry import all_channels, channel_of
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


def place_name(target: ReplyTarget) -> str:
    """The platform's name for a sentence; for a Standard Webhooks source, the tool's
    (``other:trustpilot:…`` -> "Trustpilot"), which is what the agent knows it by."""
    if target.platform is Platform.OTHER:
        source = target.conversation_key.split(":")[1] if target.conversation_key.count(":") >= 2 else ""
        if source:
            return source_name(source)
    return platform_label(target.platform)


# --- text limits ------------------------------------------------------------------------

# (limit, unit word, counter, "X allows {limit} in ...": what, and an optional note)
Limit = TextLimit


def text_limit(target: ReplyTarget, private: bool) -> Limit | None:
    """The length rule the answer must meet on ``target``'s platform (None: no known limit)."""
    return channel_of(target.platform).text_limit(target, private)


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


def _check_private_addressee(
    inbound: list[SocialMessage], own: list[SocialMessage], customer: str, text: str, platform: Platform, scope: str
) -> None:
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
    if not own and channel_of(platform).private_reply_answers_a_comment(platform, scope):
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
            REJECTED,
            "Not sent: there is no message from the customer in this conversation to answer.",
            platform=platform,
            code="no_inbound",
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
    target = ReplyTarget(
        platform=platform,
        kind=latest.kind if latest.kind else Kind.DIRECT_MESSAGE,
        conversation_key=key,
        account_id=latest.account_id,
        customer_id=customer,
        reply_to_id=reply_to,
        last_inbound_at=utc(last_inbound_at),
        reply_to_created_at=utc(reply_to_message.created_at),
    )
    # What only this platform's sender needs (Telegram's chat and topic, LINE's reply token...).
    return channel_of(platform).address(target, found, latest, config)


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
            label = place_name(target)
            raise ReplyFailed(
                REJECTED,
                f"Not sent: socialdesk can't answer on {label} yet. Reply on {label} directly.",
                platform=target.platform,
                code="no_sender",
            )
        return sender.send(ReplyRequest(target, text, private, idempotency_key), utc(self._now()))


def build_dispatcher(
    env: Mapping[str, str] | None = None,
    get_secret: Callable[[str], str] | None = None,
    *,
    pool: Any = None,
    now: Callable[[], datetime] = _utcnow,
) -> ReplyDispatcher:
    """Every sender, wired from the environment (see the module docstring)."""
    import os

    env = os.environ if env is None else env
    if get_secret is None:
        from chalicelib.config import get_secret as configured_secret

        get_secret = configured_secret
    secret = get_secret
    config = ReplyConfig.from_env(env)
    if pool is None:
        import urllib3

        pool = urllib3.PoolManager(num_pools=6, maxsize=4, retries=False)
    senders: dict[Platform, Sender] = {}
    for entry in all_channels():
        found = entry.reply_sender(config, secret, env, pool)
        if found is not None:
            senders.update(dict.fromkeys(found.platforms, found))
    return ReplyDispatcher(senders, now)
