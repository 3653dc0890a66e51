"""Choose the sender, check what can be checked before calling, remember what was sent.

``target_from_messages(messages)`` turns a conversation's stored messages into the
``ReplyTarget`` its answer goes to (the most recent inbound message, the customer's
last message time for the reply windows, LINE's reply token, Telegram's chat/topic).

``ReplyDispatcher(senders).send(target, text, private=..., idempotency_key=...)``:

1. refuses an empty answer, or one longer than the platform takes (X posts 280
   weighted characters, Telegram 4096, Messenger 2000, Instagram Direct 1000 bytes,
   WhatsApp 4096, LINE 5000, ...) with a note saying by how much to shorten it --
   nothing is split: a reply cut in two reads badly and half of it could fail;
2. claims the idempotency key in the ledger: an answer already sent returns its
   ``SentReply`` (a redelivered helpdesk event must not post it twice); an earlier
   attempt that never finished is refused with ``duplicate_risk`` (it may be live);
3. hands a ``ReplyRequest`` to the platform's sender and records the result -- or
   releases the claim when the failure proves nothing was posted, so a retry may send.

The ledger gives at-most-once: a public answer posted twice is worse than one an agent
is asked to check. ``DynamoLedger`` keeps it in the bridge's table (``REPLY#<key>``).

``build_dispatcher()`` wires every sender from the environment and secrets
(``META_PAGE_TOKEN_<account id>``, ``WHATSAPP_ACCESS_TOKEN``, ``X_USER_ACCESS_TOKEN``,
``TELEGRAM_BOT_TOKEN``, ``LINE_CHANNEL_ACCESS_TOKEN``; ``META_GRAPH_URL``,
``META_GRAPH_VERSION``, ``X_API_URL``, ``TELEGRAM_API_URL``, ``LINE_API_URL``;
``HUMAN_AGENT_TAG_ENABLED``, ``PUBLIC_ACK_TEXT``, ``PUBLIC_ACK_PLATFORMS``;
``META_INSTAGRAM_PAGES`` = ``<ig id>:<page id>,...`` for Instagram with Facebook Login).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage, source_name
from chalicelib.replies.base import (
    REJECTED,
    TARGET_DELETED,
    UNAVAILABLE,
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


def target_from_messages(
    messages: Iterable[SocialMessage], *, config: ReplyConfig | None = None
) -> ReplyTarget:
    """The ``ReplyTarget`` for a conversation, from its stored messages (any order).

    The answer goes to the most recent inbound message still on the platform (messages
    the customer deleted are skipped). ``last_inbound_at`` is the customer's most
    recent message (edits do not reopen a reply window). Raises ``ReplyFailed`` when
    there is nothing to answer, ``ValueError`` for messages of several conversations.
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
    latest = max(inbound, key=lambda m: (m.created_at, m.message_id))
    originals = [m for m in inbound_all if not m.edit_of and not m.deleted] or inbound
    last_inbound_at = max(m.created_at for m in originals)
    reply_to = latest.edit_of or latest.message_id
    reply_to_message = next((m for m in found if m.message_id == reply_to), latest)
    parts = _key_parts(key)
    scope = parts[1] if len(parts) > 1 else ""
    tail = parts[-1]

    customer = latest.author.platform_id
    if scope in ("dm", "tweets"):
        customer = tail  # the key names the customer, whoever wrote the latest message
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


# --- the ledger ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingSend:
    """An earlier attempt with this idempotency key started and never finished: it may
    have been posted (a crash mid-send, a lost answer from a platform without an
    idempotency key)."""

    since: datetime | None = None


class SentLedger(Protocol):
    """Where answers are remembered by idempotency key, so each is posted at most once.

    ``claim(key)`` atomically records a pending send and returns None -- or returns
    what an earlier attempt left: its ``SentReply``, or ``PendingSend``. ``complete``
    records the result; ``release`` forgets a claim whose send certainly did not
    happen, so a later retry may send.
    """

    def claim(self, key: str, now: datetime) -> SentReply | PendingSend | None: ...

    def complete(self, key: str, sent: SentReply) -> None: ...

    def release(self, key: str) -> None: ...


class MemoryLedger:
    """A per-process ledger (tests, local runs). Lambda should use ``DynamoLedger``."""

    def __init__(self) -> None:
        self._entries: dict[str, SentReply | PendingSend] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, now: datetime) -> SentReply | PendingSend | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self._entries[key] = PendingSend(utc(now))
            return found

    def complete(self, key: str, sent: SentReply) -> None:
        with self._lock:
            self._entries[key] = sent

    def release(self, key: str) -> None:
        with self._lock:
            if isinstance(self._entries.get(key), PendingSend):
                del self._entries[key]


LEDGER_TTL_DAYS = 90


class DynamoLedger:
    """The ledger in the bridge's DynamoDB table: ``REPLY#<key>`` / ``REPLY`` items with
    ``state`` (``pending`` | ``sent`` | ``released``), the ``SentReply`` as JSON and the
    table's TTL attribute ``expires_at``; needs only ``GetItem`` and ``PutItem``. The claim is a conditional put, so two Lambdas handling
    the same helpdesk event cannot both post the answer."""

    def __init__(self, table_name: str, client: Any, *, ttl_days: int = LEDGER_TTL_DAYS) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl = ttl_days * 86400

    @staticmethod
    def _key(key: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"REPLY#{key}"}, "sk": {"S": "REPLY"}}

    def claim(self, key: str, now: datetime) -> SentReply | PendingSend | None:
        moment = utc(now)
        item = {
            **self._key(key),
            "item_type": {"S": "reply"},
            "state": {"S": "pending"},
            "claimed_at": {"S": moment.isoformat()},
            "expires_at": {"N": str(int(moment.timestamp()) + self._ttl)},
        }
        try:
            self._client.put_item(
                TableName=self.table_name, Item=item,
                ConditionExpression="attribute_not_exists(pk) OR #state = :released",
                ExpressionAttributeNames={"#state": "state"}, ExpressionAttributeValues={":released": {"S": "released"}},
            )
            return None
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        found = self._client.get_item(TableName=self.table_name, Key=self._key(key), ConsistentRead=True).get("Item") or {}
        if found.get("state", {}).get("S") == "sent" and "sent" in found:
            data = json.loads(found["sent"]["S"])
            data["warnings"] = tuple(data.get("warnings") or ())
            return SentReply(**data)
        claimed = found.get("claimed_at", {}).get("S")
        return PendingSend(datetime.fromisoformat(claimed) if claimed else None)

    def complete(self, key: str, sent: SentReply) -> None:
        self._client.put_item(
            TableName=self.table_name,
            Item={
                **self._key(key),
                "item_type": {"S": "reply"},
                "state": {"S": "sent"},
                "sent": {"S": json.dumps(asdict(sent), separators=(",", ":"))},
                "expires_at": {"N": str(int(datetime.now(timezone.utc).timestamp()) + self._ttl)},
            },
        )

    def release(self, key: str) -> None:
        # A put, not a delete: the function's role needs no dynamodb:DeleteItem.
        item = {**self._key(key), "item_type": {"S": "reply"}, "state": {"S": "released"},
                "expires_at": {"N": str(int(datetime.now(timezone.utc).timestamp()) + self._ttl)}}
        try:
            self._client.put_item(
                TableName=self.table_name, Item=item, ConditionExpression="#state = :pending",
                ExpressionAttributeNames={"#state": "state"}, ExpressionAttributeValues={":pending": {"S": "pending"}},
            )
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def pending_words(platform: Platform) -> str:
    label = platform_label(platform)
    return (
        f"Not sent: an earlier attempt to send this reply did not finish, so it may already be on {label}. "
        f"Check the conversation on {label}; if the reply is not there, send it again as a new reply."
    )


# --- the dispatcher ---------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReplyDispatcher:
    """Sends an agent's answer with the sender of the conversation's platform."""

    def __init__(
        self,
        senders: Mapping[Platform, Sender],
        now: Callable[[], datetime] = _utcnow,
        *,
        ledger: SentLedger | None = None,
    ) -> None:
        self.senders = dict(senders)
        self._now = now
        self.ledger: SentLedger = ledger if ledger is not None else MemoryLedger()

    def send(self, target: ReplyTarget, text: str, *, private: bool = False, idempotency_key: str) -> SentReply:
        """Post ``text`` to ``target``; ``SentReply`` or ``ReplyFailed`` (see the module docstring)."""
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
        now = utc(self._now())
        if idempotency_key:
            earlier = self.ledger.claim(idempotency_key, now)
            if isinstance(earlier, SentReply):
                return earlier
            if earlier is not None:
                raise ReplyFailed(UNAVAILABLE, pending_words(target.platform), duplicate_risk=True,
                                  platform=target.platform, code="pending")
        try:
            sent = sender.send(ReplyRequest(target, text, private, idempotency_key), now)
        except ReplyFailed as failure:
            # Certainly not posted: a later attempt may send. Maybe posted: the claim
            # stays, so no automatic retry can post it twice.
            if idempotency_key and not failure.duplicate_risk:
                self.ledger.release(idempotency_key)
            raise
        if idempotency_key:
            self.ledger.complete(idempotency_key, sent)
        return sent

    def send_to_conversation(
        self, messages: Iterable[SocialMessage], text: str, *, private: bool = False, idempotency_key: str
    ) -> SentReply:
        """``send`` to ``target_from_messages(messages)``."""
        config = next((getattr(s, "config", None) for s in self.senders.values() if getattr(s, "config", None)), None)
        return self.send(target_from_messages(messages, config=config), text, private=private, idempotency_key=idempotency_key)


def sent_message(
    target: ReplyTarget, text: str, sent: SentReply, *, private: bool = False, idempotency_key: str = "", now: datetime | None = None
) -> SocialMessage:
    """The answer as an outbound ``SocialMessage`` of the conversation, for the store.

    Its ``message_id`` is the platform's id, the one the platform's echo of our own
    message carries (Messenger/Instagram ``mid``, the Page comment id, the tweet or DM
    event id, ``<chat>:<n>`` for Telegram), so a later echo or backfill is the same
    item. It also marks a LINE reply token as used.
    """
    moment = utc(now or datetime.now(timezone.utc))
    return SocialMessage(
        platform=target.platform,
        kind=Kind.DIRECT_MESSAGE if private or not target.is_public else target.kind,
        direction=Direction.OUTBOUND,
        message_id=sent.platform_message_id or f"reply:{idempotency_key or int(moment.timestamp())}",
        conversation_key=target.conversation_key,
        account_id=target.account_id,
        author=Author(platform_id=target.account_id),
        text=text.strip(),
        created_at=moment,
        parent_id=target.reply_to_id,
        thread_id=target.thread_root_id,
        raw={"reply": {"via": sent.via, "visible_note": sent.visible_note, "visible_note_id": sent.visible_note_id}},
    )


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
    ledger: SentLedger | None = None,
    now: Callable[[], datetime] = _utcnow,
) -> ReplyDispatcher:
    """Every sender, wired from the environment (see the module docstring)."""
    import os

    from chalicelib.replies.line import LineSender
    from chalicelib.replies.meta import MetaSender
    from chalicelib.replies.telegram import TelegramSender
    from chalicelib.replies.x import XSender

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
    return ReplyDispatcher(senders, now, ledger=ledger)
