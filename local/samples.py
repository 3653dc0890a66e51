"""Sample webhook deliveries for the demo and the benchmark, shaped like the platforms' own.

Each builder takes a ``run`` suffix so repeated demos make new conversations, and
returns ``(route, body)`` pairs; ``sign`` adds the header the platform would send.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from chalicelib.channels.generic import webhook as generic
from chalicelib.channels.line import webhook as line
from chalicelib.channels.meta import webhook as meta
from chalicelib.channels.registry import CHANNELS, channel
from chalicelib.channels.telegram import webhook as telegram
from chalicelib.channels.x import webhook as x
from chalicelib.models import NormalizedBatch

PAGE_ID = "104976543210001"
IG_ACCOUNT_ID = "17841400000000001"
WA_PHONE_NUMBER_ID = "106540352242922"
X_BRAND_ID = "2244994945"


def _now(offset: int = 0) -> int:
    return int(time.time()) + offset


def facebook_comment_thread(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A complaint under a Page post, the customer's follow-up reply, and a second customer's comment."""
    post = f"{PAGE_ID}_90{run}"

    def change(comment: str, parent: str, who: tuple[str, str], text: str, t: int) -> dict[str, Any]:
        return {
            "object": "page",
            "entry": [
                {
                    "id": PAGE_ID,
                    "time": _now(t),
                    "changes": [
                        {
                            "field": "feed",
                            "value": {
                                "from": {"id": who[0], "name": who[1]},
                                "post": {"id": post, "status_type": "added_photos", "is_published": True,
                                         "permalink_url": f"https://www.facebook.com/{post}"},
                                "message": text,
                                "post_id": post,
                                "comment_id": comment,
                                "parent_id": parent,
                                "created_time": _now(t),
                                "item": "comment",
                                "verb": "add",
                            },
                        }
                    ],
                }
            ],
        }

    first = f"90{run}_1001"
    return [
        ("meta", change(first, post, ("6001" + run, "Dana Reyes"), "My order #4411 arrived broken. Who do I talk to?", 0)),
        ("meta", change(f"90{run}_1002", first, ("6001" + run, "Dana Reyes"), "Still waiting for an answer…", 1)),
        ("meta", change(f"90{run}_1003", post, ("6002" + run, "Sam Ortiz"), "Same here, delivery is 2 weeks late.", 2)),
    ]


def facebook_recommendation(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A negative recommendation of the Page (opens a ticket) and a positive one (stored only)."""

    def rating(story: str, kind: str, who: str, text: str) -> dict[str, Any]:
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": _now(), "changes": [{"field": "ratings", "value": {
            "item": "rating", "verb": "add", "reviewer_id": f"62{story}", "reviewer_name": who, "recommendation_type": kind,
            "review_text": text, "open_graph_story_id": story, "created_time": _now()}}]}]}

    return [
        ("meta", rating(f"93{run}1", "negative", "Tomás Ruiz", "Ordered a sofa in May, still not delivered, no answers.")),
        ("meta", rating(f"93{run}2", "positive", "Mia Klein", "Friendly staff and quick delivery!")),
    ]


def messenger_chat(run: str) -> list[tuple[str, dict[str, Any]]]:
    """Two Messenger messages from one person, then the Page's own echo."""
    psid = f"7001{run}"

    def event(mid: str, sender: str, recipient: str, text: str, t: int, echo: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"mid": mid, "text": text}
        if echo:
            message["is_echo"] = True
            message["app_id"] = 1517776481860111
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": _now(t) * 1000, "messaging": [
            {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": _now(t) * 1000, "message": message}]}]}

    return [
        ("meta", event(f"m_{run}a", psid, PAGE_ID, "Hi, I was charged twice for my subscription.", 0)),
        ("meta", event(f"m_{run}b", psid, PAGE_ID, "Here is the invoice number: INV-2291", 1)),
        ("meta", event(f"m_{run}c", PAGE_ID, psid, "Thanks, we're looking into it.", 2, echo=True)),
    ]


def instagram(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A comment on the brand's media, and a DM from another customer."""
    comment = {"object": "instagram", "entry": [{"id": IG_ACCOUNT_ID, "time": _now(), "changes": [{"field": "comments", "value": {
        "from": {"id": f"8001{run}", "username": "lena.k"},
        "media": {"id": f"1790{run}", "media_product_type": "FEED"},
        "id": f"1791{run}",
        "text": "The zipper broke after two days. Not happy.",
    }}]}]}
    dm = {"object": "instagram", "entry": [{"id": IG_ACCOUNT_ID, "time": _now(1) * 1000, "messaging": [{
        "sender": {"id": f"8002{run}"}, "recipient": {"id": IG_ACCOUNT_ID}, "timestamp": _now(1) * 1000,
        "message": {"mid": f"aWdfZAG1{run}", "text": "Can I still return a jacket bought in March?"}}]}]}
    return [("meta", comment), ("meta", dm)]


def whatsapp(run: str) -> list[tuple[str, dict[str, Any]]]:
    """Two WhatsApp messages from one customer, and a delivery receipt (never a ticket)."""
    wa_id = f"1650555{run[-4:].rjust(4, '0')}"

    def value(extra: dict[str, Any]) -> dict[str, Any]:
        return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_NUMBER_ID},
            **extra}}]}]}

    def message(mid: str, text: str, t: int) -> dict[str, Any]:
        return value({"contacts": [{"profile": {"name": "Priya Shah"}, "wa_id": wa_id}],
                      "messages": [{"from": wa_id, "id": mid, "timestamp": str(_now(t)), "type": "text", "text": {"body": text}}]})

    status = value({"statuses": [{"id": f"wamid.OUT{run}", "status": "delivered", "timestamp": str(_now(3)), "recipient_id": wa_id}]})
    return [
        ("meta", message(f"wamid.HBgL{run}A", "My refund hasn't arrived yet.", 0)),
        ("meta", message(f"wamid.HBgL{run}B", "Order 88-1203, paid by card.", 1)),
        ("meta", status),
    ]


def x_events(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A public mention, a DM, and the brand's own reply tweet (stored as outbound)."""
    customer = f"3001{run}"
    user = {"id_str": customer, "screen_name": "mo_travels", "name": "Mo Hassan", "followers_count": 15200}
    mention = {"for_user_id": X_BRAND_ID, "tweet_create_events": [{
        "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime()),
        "id_str": f"18{run}01", "text": "@acme_support my flight voucher code doesn't work, 3rd time asking",
        "user": user, "in_reply_to_status_id_str": None, "in_reply_to_user_id_str": None,
        "entities": {"user_mentions": [{"id_str": X_BRAND_ID, "screen_name": "acme_support"}]}}]}
    dm = {"for_user_id": X_BRAND_ID, "direct_message_events": [{
        "type": "message_create", "id": f"19{run}01", "created_timestamp": str(_now(1) * 1000),
        "message_create": {"target": {"recipient_id": X_BRAND_ID}, "sender_id": f"3002{run}",
                           "message_data": {"text": "DMing as asked: booking ref QX7P2L", "entities": {}}}}],
        "users": {f"3002{run}": {"id": f"3002{run}", "name": "Ada Byrne", "screen_name": "adab", "followers_count": 310}}}
    own = {"for_user_id": X_BRAND_ID, "tweet_create_events": [{
        "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime()),
        "id_str": f"18{run}02", "text": "@mo_travels sorry about that, please DM us your booking ref.",
        "user": {"id_str": X_BRAND_ID, "screen_name": "acme_support", "name": "ACME Support"},
        "in_reply_to_status_id_str": f"18{run}01", "in_reply_to_user_id_str": customer}]}
    return [("x", mention), ("x", dm), ("x", own)]


LINE_BOT_ID = "U0123456789abcdef0123456789abcdef"


def telegram_chat(run: str) -> list[tuple[str, dict[str, Any]]]:
    """Two messages from one person to the bot in a private chat."""
    chat = int(f"5501{run}")
    user = {"id": chat, "is_bot": False, "first_name": "Kenji", "last_name": "Sato", "username": "kenji_s"}

    def update(n: int, text: str, t: int) -> dict[str, Any]:
        return {"update_id": int(f"9{run}{n}"), "message": {"message_id": n, "from": user,
                "chat": {"id": chat, "first_name": "Kenji", "type": "private"}, "date": _now(t), "text": text}}

    return [("telegram", update(1, "The app logs me out every five minutes.", 0)),
            ("telegram", update(2, "iPhone 15, app version 4.2.1", 1))]


def line_chat(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A LINE message from one user to the official account."""
    return [("line", {"destination": LINE_BOT_ID, "events": [{
        "type": "message", "mode": "active", "timestamp": _now() * 1000, "webhookEventId": f"01HLINE{run}",
        "deliveryContext": {"isRedelivery": False}, "replyToken": f"rt{run}",
        "source": {"type": "user", "userId": f"U{run.rjust(32, 'a')}"},
        "message": {"type": "text", "id": f"4687{run}", "quoteToken": f"q{run}", "text": "My coupon code was rejected at checkout."}}]})]


def trustpilot_review(run: str) -> list[tuple[str, dict[str, Any]]]:
    """A 2-star review forwarded by a review tool as a Standard Webhook."""
    return [("generic/trustpilot", {"type": "review.created", "data": {
        "id": f"66320{run}", "kind": "review", "title": "Parcel arrived broken", "rating": 2,
        "text": "The mug was in pieces and nobody answers the chat.",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "author": {"id": f"5f8e{run}", "name": "Jane Doe"}, "account_id": "acme-shop",
        "url": f"https://www.trustpilot.com/reviews/66320{run}"}})]


def all_samples(run: str) -> list[tuple[str, dict[str, Any]]]:
    """Every sample, in delivery order."""
    return [
        *facebook_comment_thread(run), *facebook_recommendation(run), *messenger_chat(run), *instagram(run), *whatsapp(run), *x_events(run),
        *telegram_chat(run), *line_chat(run), *trustpilot_review(run),
    ]


def normalizer(route: str) -> Callable[[Any], NormalizedBatch] | None:
    """The app's normalizer of a webhook route (``meta``, ``generic/trustpilot``...), found
    in the channel registry like the app finds it (the demo predicts tickets with it);
    None for a route no channel has."""
    name = route.partition("/")[0]
    if name not in CHANNELS:
        return None
    entry = channel(name)
    return lambda payload: entry.normalize(payload, route)


def encode(payload: dict[str, Any]) -> bytes:
    """The body as a platform would send it (compact JSON)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def sign(route: str, body: bytes, secrets: dict[str, str]) -> dict[str, str]:
    """Headers a genuine platform would send with ``body``."""
    headers = {"Content-Type": "application/json"}
    if route == "telegram":
        headers[telegram.SECRET_HEADER] = secrets["TELEGRAM_SECRET_TOKEN"]
        return headers
    if route.startswith("generic/"):
        from standardwebhooks import Webhook

        message_id, now = f"msg_{hash(body) & 0xFFFFFFFF:x}", datetime.now(timezone.utc)
        secret = secrets[generic.secret_name(route.split("/", 1)[1])].split()[0]
        signature = Webhook(secret).sign(message_id, now, body.decode())
        return {**headers, "webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    verifier = {
        "meta": lambda: meta.signature_verifier(secrets["META_APP_SECRET"]),
        "x": lambda: x.signature_verifier(secrets["X_CONSUMER_SECRET"]),
        "line": lambda: line.signature_verifier(secrets["LINE_CHANNEL_SECRET"]),
    }[route]()
    headers[verifier.header] = verifier.sign(body)
    return headers
