"""A mixed replay of webhook deliveries, the traffic the benchmark measures.

New and returning customers, several messages per conversation, the brand's own
echoes, and platform retries (the same delivery sent twice).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from local.samples import IG_ACCOUNT_ID, PAGE_ID, WA_PHONE_NUMBER_ID, X_BRAND_ID

Delivery = tuple[str, dict[str, Any]]


@dataclass
class Workload:
    """Deliveries in order, with what they should turn into."""

    deliveries: list[Delivery] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)
    inbound: int = 0
    outbound: int = 0
    retries: int = 0


def _feed_comment(post: str, comment: str, parent: str, author: str, text: str, t: int) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t, "changes": [{"field": "feed", "value": {
        "from": {"id": author, "name": f"Customer {author}"}, "post_id": post, "comment_id": comment,
        "parent_id": parent, "message": text, "created_time": t, "item": "comment", "verb": "add"}}]}]}


def _messenger(mid: str, sender: str, recipient: str, text: str, t: int, echo: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid, "text": text, **({"is_echo": True, "app_id": 1} if echo else {})}
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": recipient}, "timestamp": t * 1000, "message": message}]}]}


def _whatsapp(mid: str, wa_id: str, text: str, t: int) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": WA_PHONE_NUMBER_ID},
                  "contacts": [{"profile": {"name": f"Customer {wa_id}"}, "wa_id": wa_id}],
                  "messages": [{"from": wa_id, "id": mid, "timestamp": str(t), "type": "text", "text": {"body": text}}]}}]}]}


def _x_dm(event_id: str, sender: str, text: str, t: int) -> dict[str, Any]:
    return {"for_user_id": X_BRAND_ID, "direct_message_events": [{
        "type": "message_create", "id": event_id, "created_timestamp": str(t * 1000),
        "message_create": {"target": {"recipient_id": X_BRAND_ID}, "sender_id": sender,
                           "message_data": {"text": text, "entities": {}}}}],
        "users": {sender: {"id": sender, "name": f"Customer {sender}", "screen_name": f"c{sender}", "followers_count": 12}}}


def _ig_comment(comment: str, media: str, author: str, text: str, t: int) -> dict[str, Any]:
    return {"object": "instagram", "entry": [{"id": IG_ACCOUNT_ID, "time": t, "changes": [{"field": "comments", "value": {
        "from": {"id": author, "username": f"user{author}"}, "media": {"id": media}, "id": comment, "text": text}}]}]}


def mixed_replay(run: str, customers: int = 40, *, seed: int = 7, retry_share: float = 0.0) -> Workload:
    """``customers`` people over five channels; a third of the commenters come back
    with a second thread, every chat has 2-4 messages, one in eight chats gets a
    brand echo, and a ``retry_share`` of deliveries is sent twice (platform retries)."""
    rng = random.Random(seed)
    work = Workload()
    t = int(time.time()) - 3600

    def add(route: str, payload: dict[str, Any], *, inbound: bool = True) -> None:
        work.deliveries.append((route, payload))
        if inbound:
            work.inbound += 1
        else:
            work.outbound += 1
        if rng.random() < retry_share:
            work.deliveries.append((route, payload))
            work.retries += 1

    for n in range(customers):
        t += 5
        person = f"{run}{n:04d}"
        channel = n % 5
        follow_ups = rng.randint(1, 3)
        if channel == 0:  # Facebook comment thread, maybe a second thread later
            threads = 2 if n % 3 == 0 else 1
            for thread in range(threads):
                post = f"{PAGE_ID}_7{run}{n}{thread}"
                top = f"7{run}{n}{thread}_0"
                add("meta", _feed_comment(post, top, post, f"61{person}", "Where is my order?", t))
                for k in range(follow_ups):
                    add("meta", _feed_comment(post, f"7{run}{n}{thread}_{k + 1}", top, f"61{person}", f"Any news? ({k})", t + k + 1))
        elif channel == 1:  # Messenger chat with the Page's echo
            psid = f"71{person}"
            for k in range(follow_ups + 1):
                add("meta", _messenger(f"m_{person}_{k}", psid, PAGE_ID, f"I was charged twice ({k})", t + k))
            if n % 8 == 1:
                add("meta", _messenger(f"m_{person}_echo", PAGE_ID, psid, "Looking into it.", t + 9, echo=True), inbound=False)
        elif channel == 2:  # WhatsApp
            wa_id = f"1650{person}"
            for k in range(follow_ups + 1):
                add("meta", _whatsapp(f"wamid.{person}{k}", wa_id, f"Refund still missing ({k})", t + k))
        elif channel == 3:  # Instagram comments on two media: a returning commenter
            threads = 2 if n % 3 == 0 else 1
            for thread in range(threads):
                add("meta", _ig_comment(f"17{person}{thread}", f"179{run}{n}{thread}", f"81{person}", "Zipper broke", t + thread))
        else:  # X DMs
            for k in range(follow_ups + 1):
                add("x", _x_dm(f"19{person}{k}", f"31{person}", f"Booking ref QX{k}", t + k))
        work.customers.add(person)
    return work
