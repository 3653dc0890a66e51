"""A mixed replay of webhook deliveries, the traffic the benchmark measures.

New and returning customers, several messages per conversation, the brand's own
echoes, and platform retries (the same delivery sent twice). A steady state: each
customer writes about their own matter, in their own words (``FIRST_MESSAGES``,
``FOLLOW_UPS``, each said by a few customers at most). An earlier version had every customer
of a channel send the same canned sentence ("Where is my order?", "I was charged twice (0)",
"Booking ref QX1"...), a dozen or more people within minutes: that is a crisis by definition,
and the crisis detection rightly opened problem tickets and wrote crisis state for it, in a
figure meant to measure the steady state.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from local.samples import IG_ACCOUNT_ID, PAGE_ID, WA_PHONE_NUMBER_ID, X_BRAND_ID

Delivery = tuple[str, dict[str, Any]]

# What customers of an online shop write about, one matter each (dealt in turn, so no two
# customers of a 60-customer replay open with the same one), and what they add later.
FIRST_MESSAGES = [
    "Where is my order? It was due on Monday",
    "I was charged twice for the same jacket",
    "The refund for the boots I sent back is still missing",
    "The zipper on my new backpack broke after two days",
    "Can I change the address on my purchase?",
    "The parcel tracking has not moved since Friday",
    "You sent me a medium instead of a large",
    "The discount from my birthday email did not apply",
    "The courier says delivered but nothing came",
    "The dress arrived with a stain on the sleeve",
    "How do I return something I bought in the outlet?",
    "My account shows a purchase I never made",
    "The size guide for your trainers is wrong, they run small",
    "Can I pay in instalments?",
    "The box was crushed and the lamp inside is cracked",
    "I ordered two shirts and only one arrived",
    "The gift wrapping I paid for was missing",
    "My loyalty points from last month are gone",
    "Is the blue raincoat coming back in stock?",
    "The colour of the sofa cover is nothing like the photo",
    "I need an invoice with my company name for the desk",
    "My sweater came without washing instructions",
    "The click and collect store says my parcel is not there",
    "The wrong item came: I got a kettle instead of a toaster",
    "My gift card balance shows zero after one purchase",
    "The heel came off my sandals on the first walk",
    "Can my brother collect it from the shop for me?",
    "The prepaid label will not print",
    "The website logged me out while paying and took the money",
    "The curtains are ten centimetres shorter than listed",
    "I want to cancel the order I placed this morning",
    "The kids' pyjamas shrank after one wash",
    "The driver left my parcel out in the rain",
    "Why did it come in three separate boxes?",
    "The glass vase arrived in pieces",
    "The promo on the homepage is not on the checkout page",
    "My exchange for a smaller size has not shipped",
    "The watch strap broke the week after I bought it",
    "Your app crashes when I open my basket",
    "The mattress smells of chemicals, is that safe?",
    "I paid for next day delivery and it took five days",
    "The duvet cover set is missing a pillowcase",
    "Can I still return the coat I bought in January?",
    "The pram wheel squeaks and wobbles",
    "I got a message saying my card was declined but it was charged",
    "The earrings turned my ears green",
    "Do you ship to the Canary Islands?",
    "The chair legs came without screws",
    "I never got a confirmation email after buying",
    "My voucher code from the survey has expired already",
    "The lining of my handbag is torn",
    "The store refused my return without a receipt",
    "The rug sheds everywhere, is that normal?",
    "Can I add a scarf to what I already paid for?",
    "The swimsuit top and bottom are different sizes",
    "The delivery slot I chose was changed without asking",
    "My jeans lost their button on the first day",
    "The price dropped the day after I bought the coat, can I get the difference?",
    "I received a stranger's package with their name on it",
    "The backpack strap stitching is coming apart",
    "The frying pan coating is peeling off already",
    "Your chat closed before anyone answered me",
    "The bed frame instructions are missing a page",
    "The hoodie is sold out but you kept the money",
    "The table arrived with a deep scratch",
    "My parcel went to my old address",
    "The shoes I returned were marked as never received",
    "Can I get the receipt for my in-store purchase by email?",
    "The headphones you sell stopped charging",
    "The cushion covers faded in a month",
]
FOLLOW_UPS = [
    "Any news?",
    "Still waiting for an answer here",
    "It has been a week now",
    "I attached the photos yesterday",
    "Can someone call me back?",
    "The order number is in my first message",
    "I already tried the form on the website",
    "Hello? Is anyone reading this?",
    "My neighbour has the same problem by the way",
    "I need it before the weekend",
    "The email you sent me has no link",
    "Thanks, I appreciate it",
    "I can send the receipt if you need it",
    "The shop told me to write here",
    "OK, tomorrow is fine",
    "Please let me know what happens next",
    "It is a present so I am worried",
    "I checked the spam folder too",
    "Should I post it back then?",
    "The tracking page gives an error now",
    "My phone number is on the account",
    "I'm at home all afternoon",
    "Sorry, typo: I meant Tuesday",
    "Forget it, it just turned up",
    "Your colleague on the phone hung up on me",
    "Is there a reference I should quote?",
    "I paid by PayPal if that matters",
    "The postcode is right, I checked",
    "Can I get store credit instead?",
    "I've been a customer for ten years",
    "My daughter ordered it with my card",
    "Great, that solves it",
    "It's the third time this year",
    "No, nobody contacted me",
    "Do I need the original packaging?",
    "The label says size 38",
    "I'll be abroad from Friday",
    "Which warehouse does it ship from?",
    "Photo of the damage sent by email",
    "Would a voucher cover the postage?",
    "Just saw your message, thanks",
    "I prefer a bank transfer",
    "The item code is on the tag",
    "Can you confirm in writing?",
    "My husband spoke to your team already",
    "Nobody rang the doorbell",
    "The online chat recommended a callback",
    "That was quick, cheers",
    "How many days does that take?",
    "Fine, I'll keep it",
]


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
    wording = random.Random(seed + 1)  # the texts apart: the traffic's shape stays that of ``seed``
    firsts: list[str] = []
    follow_texts: list[str] = []

    def first() -> str:
        if not firsts:
            firsts.extend(wording.sample(FIRST_MESSAGES, len(FIRST_MESSAGES)))
        return firsts.pop()

    def follow_up() -> str:
        if not follow_texts:
            follow_texts.extend(wording.sample(FOLLOW_UPS, len(FOLLOW_UPS)))
        return follow_texts.pop()

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
                add("meta", _feed_comment(post, top, post, f"61{person}", first(), t))
                for k in range(follow_ups):
                    add("meta", _feed_comment(post, f"7{run}{n}{thread}_{k + 1}", top, f"61{person}", follow_up(), t + k + 1))
        elif channel == 1:  # Messenger chat with the Page's echo
            psid = f"71{person}"
            for k in range(follow_ups + 1):
                add("meta", _messenger(f"m_{person}_{k}", psid, PAGE_ID, follow_up() if k else first(), t + k))
            if n % 8 == 1:
                add("meta", _messenger(f"m_{person}_echo", PAGE_ID, psid, "Looking into it.", t + 9, echo=True), inbound=False)
        elif channel == 2:  # WhatsApp
            wa_id = f"1650{person}"
            for k in range(follow_ups + 1):
                add("meta", _whatsapp(f"wamid.{person}{k}", wa_id, follow_up() if k else first(), t + k))
        elif channel == 3:  # Instagram comments on two media: a returning commenter
            threads = 2 if n % 3 == 0 else 1
            for thread in range(threads):
                add("meta", _ig_comment(f"17{person}{thread}", f"179{run}{n}{thread}", f"81{person}", first(), t + thread))
        else:  # X DMs
            for k in range(follow_ups + 1):
                add("x", _x_dm(f"19{person}{k}", f"31{person}", follow_up() if k else first(), t + k))
        work.customers.add(person)
    return work
