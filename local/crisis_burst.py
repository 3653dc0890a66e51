"""A crisis for the demo and the tests: many customers complaining about the same outage at once,
on every platform, each from their own account, as the platforms would deliver it.

``burst(run, count)`` returns ``(route, body)`` pairs (sign them with ``local.samples.sign``);
``conversation_keys`` of the burst are what the sync will call the conversations.
"""

from __future__ import annotations

import time
from typing import Any

from local.samples import IG_ACCOUNT_ID, LINE_BOT_ID, PAGE_ID, WA_PHONE_NUMBER_ID, X_BRAND_ID

# Paraphrases of one complaint (an app outage after an update), as a crowd writes it.
WORDINGS = (
    "The app crashes every time I try to log in since the update",
    "Since the latest update the app crashes when I log in",
    "Can't log in, the app just crashes after the update",
    "Your app keeps crashing on login after today's update",
    "After updating, the app crashes as soon as I try to log in",
    "App crashing at login since the update this morning, please fix",
    "Login crashes the app since the new update",
    "The update broke the app, it crashes whenever I log in",
    "Every login attempt crashes the app after the update",
    "Is the app down? It crashes on login since I updated",
)
# Chats and mentions: their answers need nothing seeded on the platforms' sandboxes (a Facebook
# or Instagram comment's reply needs its post to exist there).
PLATFORMS = ("messenger", "instagram_dm", "whatsapp", "x", "telegram", "line")


def _text(index: int) -> str:
    return f"{WORDINGS[index % len(WORDINGS)]} ({index % 7 + 1} times now)"


def complaint(run: str, index: int) -> tuple[str, dict[str, Any]]:
    """The ``index``-th complaint of the burst, on the platform its index picks."""
    now = int(time.time())
    text = _text(index)
    uid = f"{run}{index:04d}"
    kind = PLATFORMS[index % len(PLATFORMS)]
    if kind in ("messenger", "instagram_dm"):
        account, sender = (PAGE_ID, f"71{uid}") if kind == "messenger" else (IG_ACCOUNT_ID, f"82{uid}")
        event = {
            "sender": {"id": sender},
            "recipient": {"id": account},
            "timestamp": now * 1000,
            "message": {"mid": f"m_burst_{kind}_{uid}", "text": text},
        }
        return "meta", {
            "object": "page" if kind == "messenger" else "instagram",
            "entry": [{"id": account, "time": now * 1000, "messaging": [event]}],
        }
    if kind == "whatsapp":
        wa_id = f"1650{uid}"[-12:]
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Customer {index}"}, "wa_id": wa_id}],
            "messages": [
                {"from": wa_id, "id": f"wamid.BURST{uid}", "timestamp": str(now), "type": "text", "text": {"body": text}}
            ],
        }
        return "meta", {
            "object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
        }
    if kind == "x":
        tweet = {
            "created_at": time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(now)),
            "id_str": f"17{uid}",
            "text": f"@acme_support {text}",
            "user": {"id_str": f"31{uid}", "screen_name": f"customer{uid}", "name": f"Customer {index}", "followers_count": 40},
            "in_reply_to_status_id_str": None,
            "in_reply_to_user_id_str": None,
            "entities": {"user_mentions": [{"id_str": X_BRAND_ID, "screen_name": "acme_support"}]},
        }
        return "x", {"for_user_id": X_BRAND_ID, "tweet_create_events": [tweet]}
    if kind == "telegram":
        chat = int(f"56{uid}")
        sender = {"id": chat, "is_bot": False, "first_name": "Customer", "last_name": str(index)}
        message = {
            "message_id": 1,
            "from": sender,
            "chat": {"id": chat, "first_name": "Customer", "type": "private"},
            "date": now,
            "text": text,
        }
        return "telegram", {"update_id": int(f"8{uid}"), "message": message}
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": now * 1000,
        "webhookEventId": f"01HBURST{uid}",
        "deliveryContext": {"isRedelivery": False},
        "replyToken": f"rtb{uid}",
        "source": {"type": "user", "userId": f"U{uid.rjust(32, 'b')}"},
        "message": {"type": "text", "id": f"4688{uid}", "quoteToken": f"qb{uid}", "text": text},
    }
    return "line", {"destination": LINE_BOT_ID, "events": [event]}


def burst(run: str, count: int = 200) -> list[tuple[str, dict[str, Any]]]:
    """``count`` similar complaints from ``count`` customers, spread over every platform."""
    return [complaint(run, index) for index in range(count)]
