"""The soak's traffic: many conversations over every webhook platform, duplicated and shuffled.

Builders in the style of ``bench/workload.py``, one per kind of conversation:

* Meta: Facebook Page comment threads (a top-level comment and replies, sometimes a
  second customer and the Page's own reply), Messenger chats (sometimes several
  messages in one delivery, sometimes the Page's echo), WhatsApp chats;
* X: direct messages and public mentions;
* Telegram private chats, LINE one-to-one chats (several events per delivery, as
  LINE batches them), and a generic Standard Webhooks source ("trustpilot": a
  low-rated review and follow-ups grouped by ``conversation_id``, sometimes batched).

Optionally one viral thread grows past ten thousand messages (``big_conversation``):
a Facebook comment that hundreds of people reply under, delivered as Meta batches
busy Pages (many changes per POST).

Every message knows its conversation, its platform timestamp and whether a customer
wrote it, so the checks do not depend on the app's own normalizers. Then a share of
deliveries is sent twice (platform retries) and the whole list is shuffled: a
conversation's messages arrive in any order, the way webhooks of a busy account do.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from local.samples import LINE_BOT_ID, PAGE_ID, WA_PHONE_NUMBER_ID, X_BRAND_ID

GENERIC_SOURCE = "trustpilot"


@dataclass(frozen=True)
class Message:
    """One message the soak sends, as it should end up in the helpdesk."""

    ref: str  # "<platform>:<message id>", what the sync records on the ticket's audit
    conversation: str  # the soak's own conversation label
    platform: str
    timestamp: float  # platform time, epoch seconds
    inbound: bool  # written by a customer: must reach the ticket exactly once


@dataclass(frozen=True)
class Delivery:
    """One webhook POST (it may carry several messages)."""

    id: int
    route: str  # "meta", "x", "telegram", "line", "generic/trustpilot"
    payload: dict[str, Any]
    refs: tuple[str, ...]


@dataclass
class SoakWorkload:
    """The deliveries in send order, and what they should turn into."""

    deliveries: list[Delivery] = field(default_factory=list)  # send order, duplicates included
    unique: list[Delivery] = field(default_factory=list)  # one per distinct delivery
    messages: dict[str, Message] = field(default_factory=dict)  # by ref
    conversations: dict[str, list[str]] = field(default_factory=dict)  # label -> refs in platform-time order
    platform_of: dict[str, str] = field(default_factory=dict)  # label -> builder name

    @property
    def duplicates(self) -> int:
        """Deliveries that repeat an earlier-built one (what a platform retry looks like)."""
        return len(self.deliveries) - len(self.unique)

    def inbound_conversations(self) -> dict[str, list[str]]:
        """Conversations with at least one customer message, with only those messages."""
        found = {}
        for label, refs in self.conversations.items():
            inbound = [r for r in refs if self.messages[r].inbound]
            if inbound:
                found[label] = inbound
        return found


class _Builder:
    """Collects one conversation's deliveries while a platform builder runs."""

    def __init__(self, work: SoakWorkload, label: str, platform: str, say: Callable[[random.Random], str] | None = None) -> None:
        self.work, self.label = work, label
        work.conversations[label] = []
        work.platform_of[label] = platform
        self.platform = platform
        self._say = say

    def say(self, rng: random.Random) -> str:
        """A customer's text: one of ``TEXTS``, or the conversation's own (a crisis complaint)."""
        return self._say(rng) if self._say is not None else rng.choice(TEXTS)

    def message(self, ref: str, timestamp: float, inbound: bool = True) -> str:
        self.work.messages[ref] = Message(ref, self.label, self.platform, timestamp, inbound)
        self.work.conversations[self.label].append(ref)
        return ref

    def deliver(self, route: str, payload: dict[str, Any], *refs: str) -> None:
        self.work.unique.append(Delivery(len(self.work.unique), route, payload, tuple(refs)))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


TEXTS = (
    "Where is my order?", "I was charged twice.", "The app keeps logging me out.", "Any news on this?",
    "Refund still missing.", "Order 88-1203, paid by card.", "Hello? Still waiting.", "Screenshot attached.",
    "My coupon code was rejected.", "Delivery is two weeks late.", "Can someone call me back?", "Thanks!",
)


# --- platform builders: (builder, rng, person id, first timestamp, message count) ---------------


def facebook_comments(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A top-level comment under a Page post, then replies in its thread; sometimes a
    second customer joins the thread, sometimes the Page replies (outbound)."""
    post = f"{PAGE_ID}_7{who}"
    top = f"7{who}_0"

    def change(comment: str, parent: str, author: str, text: str, at: int) -> dict[str, Any]:
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": at, "changes": [{"field": "feed", "value": {
            "from": {"id": author, "name": "ACME" if author == PAGE_ID else f"Customer {author}"},
            "post_id": post, "comment_id": comment, "parent_id": parent, "message": text,
            "created_time": at, "item": "comment", "verb": "add"}}]}]}

    customer, other = f"61{who}", f"62{who}"
    for k in range(n):
        at = t + 40 * k
        comment = top if k == 0 else f"7{who}_{k}"
        author = other if k and rng.random() < 0.2 else customer
        b.deliver("meta", change(comment, post if k == 0 else top, author, b.say(rng), at),
                  b.message(f"facebook:{comment}", at))
    if rng.random() < 0.15:  # the Page answers in the thread: stored as outbound, never on the ticket
        at = t + 40 * n + 5
        b.deliver("meta", change(f"7{who}_page", top, PAGE_ID, "We sent you a DM.", at),
                  b.message(f"facebook:7{who}_page", at, inbound=False))


def messenger(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A Messenger chat; one in five deliveries carries two messages (two ``messaging``
    events in one entry, as Meta batches them); one chat in eight gets the Page's echo."""
    psid = f"71{who}"

    def event(mid: str, sender: str, recipient: str, text: str, at: int, echo: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"mid": mid, "text": text, **({"is_echo": True, "app_id": 1} if echo else {})}
        return {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": at * 1000, "message": message}

    def payload(*events: dict[str, Any]) -> dict[str, Any]:
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": events[-1]["timestamp"], "messaging": list(events)}]}

    k = 0
    while k < n:
        batch = 2 if k + 1 < n and rng.random() < 0.2 else 1
        events, refs = [], []
        for j in range(k, k + batch):
            at = t + 30 * j
            events.append(event(f"m_{who}_{j}", psid, PAGE_ID, b.say(rng), at))
            refs.append(b.message(f"messenger:m_{who}_{j}", at))
        b.deliver("meta", payload(*events), *refs)
        k += batch
    if rng.random() < 0.125:
        at = t + 30 * n + 7
        b.deliver("meta", payload(event(f"m_{who}_echo", PAGE_ID, psid, "Looking into it.", at, echo=True)),
                  b.message(f"messenger:m_{who}_echo", at, inbound=False))


def whatsapp(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A WhatsApp chat, one message per delivery."""
    wa_id = f"1650{who}"
    for k in range(n):
        at = t + 25 * k
        mid = f"wamid.{who}{k}"
        b.deliver("meta", {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_NUMBER_ID},
                "contacts": [{"profile": {"name": f"Customer {wa_id}"}, "wa_id": wa_id}],
                "messages": [{"from": wa_id, "id": mid, "timestamp": str(at), "type": "text",
                              "text": {"body": b.say(rng)}}]}}]}]},
            b.message(f"whatsapp:{mid}", at))


def x_dms(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """X direct messages from one customer (Account Activity API)."""
    sender = f"31{who}"
    for k in range(n):
        at = t + 20 * k
        event_id = f"19{who}{k:02d}"
        b.deliver("x", {"for_user_id": X_BRAND_ID, "direct_message_events": [{
            "type": "message_create", "id": event_id, "created_timestamp": str(at * 1000),
            "message_create": {"target": {"recipient_id": X_BRAND_ID}, "sender_id": sender,
                               "message_data": {"text": b.say(rng), "entities": {}}}}],
            "users": {sender: {"id": sender, "name": f"Customer {sender}", "screen_name": f"c{sender}", "followers_count": 12}}},
            b.message(f"x:{event_id}", at))


def x_mentions(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """Public mentions of the brand by one customer (one conversation per customer)."""
    user = {"id_str": f"32{who}", "screen_name": f"m{who}", "name": f"Customer {who}", "followers_count": 310}
    for k in range(n):
        at = t + 45 * k
        tweet_id = f"18{who}{k:02d}"
        b.deliver("x", {"for_user_id": X_BRAND_ID, "tweet_create_events": [{
            "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(at)), "timestamp_ms": str(at * 1000),
            "id_str": tweet_id, "text": f"@acme_support {b.say(rng)}", "user": user,
            "in_reply_to_status_id_str": None, "in_reply_to_user_id_str": None,
            "entities": {"user_mentions": [{"id_str": X_BRAND_ID, "screen_name": "acme_support"}]}}]},
            b.message(f"x:{tweet_id}", at))


def telegram(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A private chat with the bot; one update per delivery."""
    chat = int(f"55{who}")
    user = {"id": chat, "is_bot": False, "first_name": "Kenji", "last_name": who, "username": f"k{who}"}
    for k in range(n):
        at = t + 15 * k
        b.deliver("telegram", {"update_id": int(f"9{who}{k:02d}"), "message": {
            "message_id": k + 1, "from": user, "chat": {"id": chat, "first_name": "Kenji", "type": "private"},
            "date": at, "text": b.say(rng)}},
            b.message(f"telegram:{chat}:{k + 1}", at))


def line(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A one-to-one LINE chat; LINE batches events, so a delivery may carry up to three."""
    user_id = f"U{who.rjust(32, 'a')}"
    k = 0
    while k < n:
        batch = min(n - k, rng.choice((1, 1, 2, 3)))
        events, refs = [], []
        for j in range(k, k + batch):
            at = t + 12 * j
            events.append({"type": "message", "mode": "active", "timestamp": at * 1000, "webhookEventId": f"01HL{who}{j}",
                           "deliveryContext": {"isRedelivery": False}, "replyToken": f"rt{who}{j}",
                           "source": {"type": "user", "userId": user_id},
                           "message": {"type": "text", "id": f"46{who}{j:02d}", "quoteToken": f"q{who}{j}",
                                       "text": b.say(rng)}})
            refs.append(b.message(f"line:46{who}{j:02d}", at))
        b.deliver("line", {"destination": LINE_BOT_ID, "events": events}, *refs)
        k += batch


def generic(b: _Builder, rng: random.Random, who: str, t: int, n: int) -> None:
    """A low-rated review on a review tool and the customer's follow-ups, grouped by
    ``conversation_id``; sometimes two items come in one ``data`` array."""
    conversation = f"conv-{who}"

    def item(k: int, at: int) -> dict[str, Any]:
        base: dict[str, Any] = {"id": f"r{who}-{k}", "conversation_id": conversation, "text": b.say(rng),
                                "created_at": _iso(at), "author": {"id": f"a{who}", "name": f"Customer {who}"},
                                "account_id": "acme-shop"}
        if k == 0:
            return {**base, "kind": "review", "rating": rng.randint(1, 3), "title": "Disappointed"}
        return {**base, "kind": "comment", "parent_id": f"r{who}-0"}

    k = 0
    while k < n:
        batch = 2 if k + 1 < n and rng.random() < 0.2 else 1
        items, refs = [], []
        for j in range(k, k + batch):
            at = t + 50 * j
            items.append(item(j, at))
            refs.append(b.message(f"other:{GENERIC_SOURCE}:r{who}-{j}", at))
        data: Any = items if batch > 1 else items[0]
        b.deliver(f"generic/{GENERIC_SOURCE}", {"type": "review.created" if k == 0 else "message.created", "data": data}, *refs)
        k += batch


BUILDERS: dict[str, Callable[[_Builder, random.Random, str, int, int], None]] = {
    "facebook_comments": facebook_comments,
    "messenger": messenger,
    "whatsapp": whatsapp,
    "x_dms": x_dms,
    "x_mentions": x_mentions,
    "telegram": telegram,
    "line": line,
    "generic": generic,
}


def viral_thread(b: _Builder, rng: random.Random, who: str, t: int, n: int, *, per_delivery: int = 50) -> None:
    """One top-level comment and ``n - 1`` replies under it by many people, ``per_delivery``
    changes per POST: a single conversation that grows past ten thousand messages."""
    post = f"{PAGE_ID}_9{who}"
    top = f"9{who}_0"
    changes: list[dict[str, Any]] = []
    refs: list[str] = []

    def flush() -> None:
        if changes:
            b.deliver("meta", {"object": "page", "entry": [{"id": PAGE_ID, "time": (t + len(b.work.conversations[b.label])) * 1000,
                                                            "changes": list(changes)}]}, *refs)
            changes.clear()
            refs.clear()

    for k in range(n):
        comment = top if k == 0 else f"9{who}_{k}"
        author = f"91{who}{rng.randrange(2000):04d}"  # a crowd: people come back now and then
        at = t + k
        changes.append({"field": "feed", "value": {
            "from": {"id": author, "name": f"Customer {author}"}, "post_id": post, "comment_id": comment,
            "parent_id": post if k == 0 else top, "message": b.say(rng), "item": "comment", "verb": "add",
            "created_time": at}})
        refs.append(b.message(f"facebook:{comment}", at))
        if len(changes) >= per_delivery:
            flush()
    flush()


def crisis_burst(work: SoakWorkload, rng: random.Random, run: str, count: int, t: int, seconds: int) -> None:
    """``count`` customers, each their own one-message conversation, complain about one outage
    in their own words (``bench.burst_workload``'s paraphrases) within ``seconds`` from ``t``,
    the platforms taking turns: what crisis detection groups into one problem ticket."""
    from bench.burst_workload import CLUSTERS, paraphrase

    def complaint(rng: random.Random) -> str:
        return paraphrase(rng.choice(CLUSTERS["en-outage"]), rng, spanish=False)

    names = list(BUILDERS)
    for n in range(count):
        platform = names[n % len(names)]
        builder = _Builder(work, f"crisis-{platform}-{n:05d}", platform, say=complaint)
        BUILDERS[platform](builder, rng, f"{run}9{n:05d}", t + n * seconds // max(1, count), 1)


def build(
    deliveries: int,
    duplicate_share: float,
    *,
    seed: int,
    run: str,
    max_messages: int = 6,
    reorder_window: int = 0,
    big_conversation: int = 0,
    crisis: int = 0,
    crisis_seconds: int = 300,
) -> SoakWorkload:
    """``deliveries`` webhook POSTs in all, of which ``duplicate_share`` repeat another one.
    Conversations get 1..``max_messages`` messages (most have several).

    ``reorder_window`` 0: the whole list is shuffled (any order, also inside a
    conversation). Otherwise deliveries come in platform-time order, each moved by up to
    ``reorder_window`` places, and a duplicate comes within twice that after its original
    (a milder, more typical reordering). ``big_conversation``: that many messages in one
    more conversation (its deliveries come on top of ``deliveries``). ``crisis``: that many
    more customers, one each, post the same complaint in other words within
    ``crisis_seconds`` on every platform (``crisis_burst``; also on top of ``deliveries``)."""
    if not 0 <= duplicate_share < 1:
        raise ValueError("the duplicate share must be in [0, 1)")
    rng = random.Random(seed)
    work = SoakWorkload()
    unique_target = max(1, round(deliveries * (1 - duplicate_share)))
    t = int(time.time()) - 6 * 3600
    names = list(BUILDERS)
    n = 0
    big: list[Delivery] = []
    if big_conversation:
        viral_thread(_Builder(work, "viral-thread", "facebook_comments"), rng, f"{run}v", t, big_conversation)
        big, work.unique = work.unique, []
    if crisis:
        # Now, not hours ago like the rest: a crisis is detected as it happens (late arrivals
        # join one but do not start it).
        crisis_burst(work, rng, run, crisis, int(time.time()) - crisis_seconds, crisis_seconds)
        big, work.unique = big + work.unique, []
    while len(work.unique) < unique_target:
        platform = names[n % len(names)]
        label = f"{platform}-{n:05d}"
        who = f"{run}{n:05d}"
        count = rng.choice((1, 2, 2, 3, 3, 4, 5, max_messages))
        BUILDERS[platform](_Builder(work, label, platform), rng, who, t + rng.randint(0, 3600), count)
        n += 1
    # The last conversation may overshoot the target: drop its surplus deliveries and the
    # messages they carried, so the totals are exactly as asked.
    while len(work.unique) > unique_target:
        dropped = work.unique.pop()
        for ref in dropped.refs:
            message = work.messages.pop(ref)
            work.conversations[message.conversation].remove(ref)
    for delivery in big:  # after the trim: the thread is whole
        work.unique.append(Delivery(len(work.unique), delivery.route, delivery.payload, delivery.refs))
    for label in [c for c, refs in work.conversations.items() if not refs]:
        del work.conversations[label]
        del work.platform_of[label]
    for refs in work.conversations.values():
        refs.sort(key=lambda r: work.messages[r].timestamp)
    # Telegram numbers a bot's updates with one increasing sequence: renumber them in
    # platform-time order across all chats (the builder numbered them per chat).
    updates = sorted((d for d in work.unique if d.route == "telegram"), key=lambda d: work.messages[d.refs[0]].timestamp)
    for rank, delivery in enumerate(updates):
        delivery.payload["update_id"] = 700_000_000 + rank

    copies = [rng.choice(work.unique) for _ in range(deliveries + len(big) - len(work.unique))]
    if reorder_window <= 0:
        sent = list(work.unique) + copies
        rng.shuffle(sent)  # arrival order: any order, also inside a conversation
    else:
        first_time = {d.id: min(work.messages[r].timestamp for r in d.refs) for d in work.unique}
        in_time = sorted(work.unique, key=lambda d: first_time[d.id])
        position = {d.id: i + rng.uniform(0, reorder_window) for i, d in enumerate(in_time)}
        keyed = [(position[d.id], d) for d in in_time]
        keyed += [(position[d.id] + rng.uniform(0, 2 * reorder_window), d) for d in copies]
        sent = [d for _, d in sorted(keyed, key=lambda pair: pair[0])]
    work.deliveries = sent
    return work
