"""Meta webhooks: Facebook Pages (feed, Messenger), Instagram, WhatsApp Cloud API.

Authentication: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``.
Subscription handshake: ``GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..``.
One POST may batch many entries, each with ``changes[]`` or ``messaging[]``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from chalicelib.channels.common import (
    EventNormalizer,
    as_deletion,
    as_edit,
    joined,
    location_text,
    not_passed_on,
    require_list,
    unknown_author,
)
from chalicelib.errors import BadRequest, Forbidden
from chalicelib.inbound.signatures import HmacSignatureVerifier
from chalicelib.jsonvalues import json_list, json_object
from chalicelib.models import (
    Attachment,
    Author,
    DeliveryStatus,
    Direction,
    Kind,
    NormalizedBatch,
    Platform,
    SocialMessage,
    conversation_key,
    from_epoch,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"

# Feed items that are posts someone wrote (a ``share`` is a post sharing a link);
# reactions and likes are not. The verbs that add, edit or remove one.
_FEED_POST_ITEMS = frozenset({"post", "status", "photo", "video", "share"})
_CHANGE_VERBS = frozenset({"add", "edited", "remove"})
# What a post's ``link`` is, by item.
_FEED_LINK_TYPES = {"photo": "image", "video": "video", "share": "link"}
# Feed and ratings items that are nobody's words, and why.
_FEED_IGNORED = {
    "reaction": "reaction",
    "like": "like",
}


def signature_verifier(app_secret: str) -> HmacSignatureVerifier:
    """The verifier for Meta's ``X-Hub-Signature-256`` header."""
    return HmacSignatureVerifier(app_secret, header=SIGNATURE_HEADER, prefix="sha256=", encoding="hex")


def answer_handshake(query: Mapping[str, str] | None, verify_token: str) -> str:
    """Return the ``hub.challenge`` to echo, or raise ``Forbidden``/``BadRequest``."""
    query = query or {}
    if query.get("hub.mode") != "subscribe":
        raise Forbidden("hub.mode must be 'subscribe'")
    token = query.get("hub.verify_token") or ""
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise Forbidden("hub.verify_token does not match")
    challenge = query.get("hub.challenge")
    if not challenge:
        raise BadRequest("hub.challenge is missing")
    return challenge


def normalize_delivery(payload: dict[str, Any]) -> NormalizedBatch:
    """Turn one Meta webhook body into canonical messages and delivery statuses."""
    entries = require_list(payload, "entry")
    obj = payload.get("object")
    normalizer = EventNormalizer("meta")
    for entry in entries:
        if isinstance(entry, dict):
            _entry(normalizer, obj, entry)
        else:
            # Quarantined, not refused: a 4xx would make Meta retry the good entries forever.
            normalizer.reject(entry, "every entry must be a JSON object")
    return normalizer.batch


def _entry(normalizer: EventNormalizer, obj: Any, entry: dict[str, Any]) -> None:
    account_id = str(entry.get("id", ""))
    # Some notifications (Instagram comments and mentions) carry no timestamp of
    # their own: the entry's time is when Meta saw the change.
    seen_at = _entry_time(entry.get("time"))
    # Instagram Login apps get flat entries (``field``/``value``) instead of ``changes``.
    changes = entry.get("changes")
    if changes is None and "field" in entry:
        changes = [{"field": entry["field"], "value": entry.get("value")}]
    if obj in ("page", "instagram"):
        platform = Platform.MESSENGER if obj == "page" else Platform.INSTAGRAM
        on_change = _page_change if obj == "page" else _instagram_change
        normalizer.each(changes, lambda change: on_change(account_id, change, seen_at))
        # ``standby``: the handover protocol gave the thread to another app; the
        # customer's messages (and the business's echoes) still belong on the ticket.
        normalizer.each(entry.get("messaging"), lambda event: _chat_event(platform, account_id, event))
        normalizer.each(entry.get("standby"), lambda event: _chat_event(platform, account_id, event))
    elif obj == "whatsapp_business_account":
        normalizer.each(changes, _whatsapp_change)
    else:
        normalizer.ignore(f"object {obj!r} is not handled")


# --- Facebook Page feed -------------------------------------------------------


def _page_change(page_id: str, change: dict[str, Any], seen_at: datetime) -> NormalizedBatch:
    value = change.get("value") or {}
    field, verb, item = change.get("field"), value.get("verb"), value.get("item")
    if field == "ratings":
        return _ratings_change(page_id, value, change, seen_at)
    if field == "mention":
        message = normalize_page_mention(page_id, value, raw=change, seen_at=seen_at)
        return NormalizedBatch(messages=[_as_change(message, verb, message.text)])
    if field != "feed":
        return NormalizedBatch.ignoring(f"Page field {field!r} is not handled")
    if "recommendation_type" in value:
        return NormalizedBatch(messages=[normalize_recommendation(page_id, value, raw=change, seen_at=seen_at)])
    if item == "comment" and verb in _CHANGE_VERBS:
        message = normalize_feed_comment(page_id, value, raw=change, seen_at=seen_at)
        return NormalizedBatch(messages=[_as_change(message, verb, message.text)])
    if item in _FEED_POST_ITEMS and verb in _CHANGE_VERBS:
        message = normalize_feed_post(page_id, value, raw=change, seen_at=seen_at)
        return NormalizedBatch(messages=[_as_change(message, verb, message.text)])
    if item == "comment" and verb in ("hide", "unhide"):
        return NormalizedBatch.ignoring("a comment was hidden or unhidden by the Page")
    return NormalizedBatch.ignoring(_FEED_IGNORED.get(str(item), f"feed {item!r} {verb!r} is not handled"))


def _ratings_change(page_id: str, value: dict[str, Any], change: dict[str, Any], seen_at: datetime) -> NormalizedBatch:
    """Only a new, edited or removed rating/recommendation is a review; a comment under
    one belongs to the review's conversation; a like on one is nobody's words."""
    item, verb = value.get("item"), value.get("verb")
    if item == "comment" and verb in _CHANGE_VERBS:
        message = normalize_review_comment(page_id, value, raw=change, seen_at=seen_at)
        return NormalizedBatch(messages=[_as_change(message, verb, message.text)])
    if item in (None, "rating", "recommendation") and verb in _CHANGE_VERBS:
        return NormalizedBatch(messages=[normalize_recommendation(page_id, value, raw=change, seen_at=seen_at)])
    reason = _FEED_IGNORED.get(str(item))
    return NormalizedBatch.ignoring(f"{reason} on a review" if reason else f"ratings {item!r} {verb!r} is not handled")


def _as_change(message: SocialMessage, verb: str | None, text: str) -> SocialMessage:
    """An ``edited``/``remove`` notification as its own message about the original.

    The id must be the same on every redelivery of the same change and differ between
    two edits, and Meta sends no edit time: the new text's hash does both.
    """
    if verb == "edited":
        return as_edit(message, hashlib.sha256(text.encode()).hexdigest()[:16])
    if verb == "remove":
        return as_deletion(message)
    return message


def normalize_recommendation(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A Page recommendation (or a legacy star rating): a review, one conversation each.

    ``recommendation_type`` is ``positive`` or ``negative`` (any case); older ratings
    carry a 1-5 ``rating`` instead. Whether it opens a ticket is the ticket policy's call.
    """
    author = _reviewer(value)
    story = value.get("open_graph_story_id")
    review_id = str(story) if story else f"rating:{page_id}:{author.platform_id}"
    kind = str(value.get("recommendation_type") or "").lower()
    rating = value.get("rating")
    message = SocialMessage(
        platform=Platform.FACEBOOK,
        kind=Kind.REVIEW,
        direction=Direction.INBOUND,
        message_id=review_id,
        conversation_key=conversation_key(Platform.FACEBOOK, "review", review_id),
        account_id=page_id,
        author=author,
        text=value.get("review_text") or "",
        created_at=_feed_time(value, seen_at),
        permalink=f"https://www.facebook.com/{story}" if story else None,
        rating=int(rating) if rating not in (None, "") else None,
        recommends={"positive": True, "negative": False}.get(kind),
        raw=raw,
    )
    return _as_change(message, value.get("verb"), message.text)


def _reviewer(value: dict[str, Any]) -> Author:
    """``reviewer_id``/``reviewer_name``; a removal may name the reviewer in ``from`` or not at all."""
    if value.get("reviewer_id") is not None:
        return Author(platform_id=str(value["reviewer_id"]), display_name=value.get("reviewer_name"))
    return _feed_author(value)


def normalize_review_comment(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A comment under a review (``ratings`` with ``item: comment``): it joins the
    review's conversation (``open_graph_story_id``), whoever wrote it."""
    comment_id = str(value["comment_id"])
    story = value.get("open_graph_story_id")
    review_id = str(story) if story else str(value.get("parent_id") or value["post_id"])
    return _feed_message(
        page_id,
        value,
        raw=raw,
        seen_at=seen_at,
        kind=Kind.COMMENT,
        message_id=comment_id,
        conversation=("review", review_id),
        parent_id=str(value["parent_id"]) if value.get("parent_id") else None,
        thread_id=review_id,
        permalink=f"https://www.facebook.com/{comment_id}",
    )


def _feed_author(value: dict[str, Any]) -> Author:
    """``from``; Graph API 2.10 and older sent ``sender_id``/``sender_name``; some
    notifications (mentions) name nobody."""
    sender = value.get("from")
    if isinstance(sender, dict) and sender.get("id") is not None:
        return Author(platform_id=str(sender["id"]), display_name=sender.get("name"))
    if value.get("sender_id") is not None:
        return Author(platform_id=str(value["sender_id"]), display_name=value.get("sender_name"))
    return unknown_author(Platform.FACEBOOK)


def _feed_time(value: dict[str, Any], seen_at: datetime | None) -> datetime:
    created = value.get("created_time")
    if created is not None:
        return _parse_time(created)
    if seen_at is None:  # a Graph API object (backfill) always has one
        raise ValueError("the change has no created_time")
    return seen_at


def _feed_message(
    page_id: str,
    value: dict[str, Any],
    *,
    raw: dict[str, Any],
    seen_at: datetime | None,
    kind: Kind,
    message_id: str,
    conversation: tuple[str, str],
    text: str | None = None,
    **fields: Any,
) -> SocialMessage:
    """A Page feed item (``from``, ``message``, ``created_time``) as a message; the Page's
    own words are outbound. ``conversation``: the key's kind and id; ``text`` replaces
    an empty ``message``; ``fields`` are the item's own (``thread_id``, ``permalink``...)."""
    author = _feed_author(value)
    return SocialMessage(
        platform=Platform.FACEBOOK,
        kind=kind,
        direction=Direction.OUTBOUND if author.platform_id == page_id else Direction.INBOUND,
        message_id=message_id,
        conversation_key=conversation_key(Platform.FACEBOOK, *conversation),
        account_id=page_id,
        author=author,
        text=value.get("message") or text or "",
        created_at=_feed_time(value, seen_at),
        raw=raw,
        **fields,
    )


def normalize_feed_comment(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A comment (or reply) on a Page post: one conversation per top-level comment."""
    comment_id = str(value["comment_id"])
    post_id = str(value.get("post_id") or "")
    parent_id = str(value.get("parent_id") or post_id)
    is_reply = bool(parent_id) and parent_id != post_id
    top_comment = parent_id if is_reply else comment_id
    post = value.get("post") or {}
    attachments = []
    if value.get("photo"):
        attachments.append(Attachment(type="image", url=value["photo"]))
    if value.get("video"):
        attachments.append(Attachment(type="video", url=value["video"]))
    return _feed_message(
        page_id,
        value,
        raw=raw,
        seen_at=seen_at,
        kind=Kind.REPLY if is_reply else Kind.COMMENT,
        message_id=comment_id,
        conversation=("comment", top_comment),
        parent_id=parent_id or None,
        thread_id=post_id or None,
        permalink=post.get("permalink_url") or f"https://www.facebook.com/{comment_id}",
        attachments=tuple(attachments),
    )


def normalize_feed_post(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A visitor post on the Page (or the Page's own post, stored as outbound)."""
    post_id = str(value["post_id"])
    item = value.get("item")
    attachments = [Attachment(type="image", url=url) for url in value.get("photos") or []]
    link = value.get("link")
    if link and item in _FEED_LINK_TYPES:
        attachments.append(Attachment(type=_FEED_LINK_TYPES[item], url=link))
    return _feed_message(
        page_id,
        value,
        raw=raw,
        seen_at=seen_at,
        kind=Kind.POST,
        message_id=post_id,
        conversation=("post", post_id),
        thread_id=post_id,
        permalink=value.get("permalink_url") or f"https://www.facebook.com/{post_id}",
        attachments=tuple(attachments),
    )


def normalize_page_mention(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """The Page was @mentioned in a post or comment elsewhere (``mention`` field): a
    conversation of its own, like an Instagram or X mention. The notification names no
    author, so it is the unknown author unless a ``from`` is present."""
    post_id = str(value.get("post_id") or "")
    mention_id = str(value.get("comment_id") or value["post_id"])
    return _feed_message(
        page_id,
        value,
        raw=raw,
        seen_at=seen_at,
        kind=Kind.MENTION,
        message_id=f"mention:{mention_id}",
        conversation=("mention", mention_id),
        text=f"@mentioned the Page in a {value.get('item') or 'post'}",
        thread_id=post_id or None,
        permalink=f"https://www.facebook.com/{mention_id}",
    )


# --- Instagram comments and mentions --------------------------------------------


def _instagram_change(account_id: str, change: dict[str, Any], seen_at: datetime) -> NormalizedBatch:
    field = change.get("field")
    value = change.get("value") or {}
    if field in ("comments", "live_comments"):
        return NormalizedBatch(messages=[normalize_instagram_comment(account_id, value, raw=change, seen_at=seen_at)])
    if field == "mentions":
        return NormalizedBatch(messages=[normalize_instagram_mention(account_id, value, raw=change, seen_at=seen_at)])
    return NormalizedBatch.ignoring(f"Instagram field {field!r} is not handled")


def _instagram_author(value: dict[str, Any]) -> Author:
    """``from`` (id and username); older comment and mention notifications name nobody."""
    sender = value.get("from")
    if isinstance(sender, dict) and sender.get("id") is not None:
        return Author(platform_id=str(sender["id"]), handle=sender.get("username"))
    return unknown_author(Platform.INSTAGRAM)


def normalize_instagram_comment(
    account_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A comment on the account's media (``comments``) or live video (``live_comments``);
    replies carry ``parent_id`` (the top-level comment)."""
    # ``id`` in the webhooks reference; ``comment_id`` in Meta's Facebook-Login example.
    comment_id = str(value.get("id") or value["comment_id"])
    parent_id = value.get("parent_id")
    author = _instagram_author(value)
    media = value.get("media") or {}
    created = value.get("timestamp")
    return SocialMessage(
        platform=Platform.INSTAGRAM,
        kind=Kind.REPLY if parent_id else Kind.COMMENT,
        direction=Direction.OUTBOUND if author.platform_id == account_id else Direction.INBOUND,
        message_id=comment_id,
        conversation_key=conversation_key(Platform.INSTAGRAM, "comment", str(parent_id or comment_id)),
        account_id=account_id,
        author=author,
        text=value.get("text") or "",
        created_at=_parse_time(created, seen_at),
        parent_id=str(parent_id) if parent_id else None,
        thread_id=str(media["id"]) if media.get("id") else None,
        permalink=media.get("permalink"),
        raw=raw,
    )


def normalize_instagram_mention(
    account_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """The account was @mentioned in a comment or caption.

    Meta's mention webhook carries only ids (``media_id``, ``comment_id``); the text
    must be fetched from the Graph API, so the ticket says where to look.
    """
    comment_id = value.get("comment_id")
    media_id = str(value["media_id"])
    mention_id = str(comment_id or media_id)
    author = _instagram_author(value)
    return SocialMessage(
        platform=Platform.INSTAGRAM,
        kind=Kind.MENTION,
        direction=Direction.INBOUND,
        message_id=f"mention:{mention_id}",
        conversation_key=conversation_key(Platform.INSTAGRAM, "mention", mention_id),
        account_id=account_id,
        author=author,
        text=value.get("text") or f"@mentioned in a {'comment' if comment_id else 'caption'} on media {media_id}",
        created_at=_parse_time(value.get("timestamp"), seen_at),
        parent_id=str(comment_id) if comment_id else None,
        thread_id=media_id,
        raw=raw,
    )


def _entry_time(value: Any) -> datetime:
    """The entry's time, or now when it is missing or garbled (it is only a fallback)."""
    try:
        return _parse_time(value)
    except (ValueError, TypeError):
        return datetime.now(timezone.utc)


def _parse_time(value: Any, fallback: datetime | None = None) -> datetime:
    if value is None:
        return fallback or datetime.now(timezone.utc)
    if isinstance(value, (int, float)) or str(value).isdigit():
        return from_epoch(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("+0000", "+00:00"))


# --- Messenger and Instagram Direct ----------------------------------------------

# Messaging events that carry no one's words, by the field that names them.
_CHAT_IGNORED = {
    "read": "read receipt",
    "delivery": "delivery receipt",
    "reaction": "reaction",
    "postback": "postback (a button press)",
    "optin": "opt-in",
    "referral": "referral (the chat was opened from a link or an ad)",
    "pass_thread_control": "handover protocol: thread control passed",
    "take_thread_control": "handover protocol: thread control taken",
    "request_thread_control": "handover protocol: thread control requested",
    "account_linking": "account linking",
    "policy_enforcement": "policy enforcement notice",
    "game_play": "game play",
}


def _chat_event(platform: Platform, account_id: str, event: dict[str, Any]) -> NormalizedBatch:
    edit = event.get("message_edit")
    if isinstance(edit, dict) and edit.get("mid"):
        return NormalizedBatch(messages=[normalize_chat_edit(platform, account_id, event)])
    message = event.get("message")
    if not isinstance(message, dict) or not message.get("mid"):
        field = next((name for name in _CHAT_IGNORED if name in event), None)
        return NormalizedBatch.ignoring(_CHAT_IGNORED[field] if field else f"{platform.value} event without a message")
    normalized = normalize_chat_message(platform, account_id, event, raw=event)
    # Unsent by its author (Instagram; Messenger sends the same flag).
    return NormalizedBatch(messages=[as_deletion(normalized) if message.get("is_deleted") else normalized])


def normalize_chat_edit(platform: Platform, account_id: str, event: dict[str, Any]) -> SocialMessage:
    """``message_edits``: the customer edited message ``mid``; ``num_edit`` counts the
    edits (at most 5), so ``<mid>:edit:<num_edit>`` is stable and distinct per edit."""
    edit = event["message_edit"]
    original = {**event, "message": {"mid": edit["mid"], "text": edit.get("text") or ""}}
    message = normalize_chat_message(platform, account_id, original, raw=event)
    if edit.get("num_edit") is None:
        return _as_change(message, "edited", message.text)
    return as_edit(message, str(edit["num_edit"]))


def normalize_chat_message(platform: Platform, account_id: str, event: dict[str, Any], *, raw: dict[str, Any]) -> SocialMessage:
    """A Messenger or Instagram Direct message; echoes of the brand's own sends are outbound.

    Files (image, video, audio, file, share, story mention) are attachments; a shared
    location, product or link card is written into the text.
    """
    message = event["message"]
    sender = str(event["sender"]["id"])
    recipient = str(event["recipient"]["id"])
    outbound = bool(message.get("is_echo")) or sender == account_id
    customer = recipient if outbound else sender
    attachments: list[Attachment] = []
    described: list[str] = []
    for item in message.get("attachments") or []:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type") or "file")
        # ``payload`` is an object, but a string in fallback attachments, or absent.
        payload = json_object(item.get("payload"))
        if kind in _CHAT_DESCRIBED:
            described.append(_CHAT_DESCRIBED[kind](item, payload))
            continue
        attachments.append(Attachment(type=kind, url=payload.get("url")))
        if kind == "story_mention":
            described.append("Mentioned the account in their story")
        elif kind == "unsupported_type":
            described.append(not_passed_on(platform, "unsupported attachment"))
    if message.get("is_unsupported") and not message.get("text") and not attachments and not described:
        described.append(not_passed_on(platform, "unsupported message type"))
    if message.get("sticker_id") and not message.get("text"):
        described.append("[sticker]")
    reply_to = message.get("reply_to") or {}
    return SocialMessage(
        platform=platform,
        kind=Kind.DIRECT_MESSAGE,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        message_id=str(message["mid"]),
        conversation_key=conversation_key(platform, "dm", account_id, customer),
        account_id=account_id,
        author=Author(platform_id=sender),
        text=joined([message.get("text"), *described]),
        created_at=from_epoch(event["timestamp"]),
        parent_id=reply_to.get("mid"),
        attachments=tuple(attachments),
        raw=raw,
    )


def _location(item: dict[str, Any], payload: dict[str, Any]) -> str:
    coordinates = payload.get("coordinates") or {}
    return location_text(coordinates.get("lat"), coordinates.get("long"), name=item.get("title"))


def _template(item: dict[str, Any], payload: dict[str, Any]) -> str:
    """A product (``payload.product.elements``) or card (``payload.elements``): each
    element's title, subtitle and link; else the attachment's own title and url."""
    product = payload.get("product") if isinstance(payload.get("product"), dict) else None
    elements = (product or payload).get("elements") or []
    cards = []
    for element in elements if isinstance(elements, list) else []:
        if not isinstance(element, dict):
            continue
        action = json_object(element.get("default_action"))
        link = element.get("url") or element.get("item_url") or action.get("url") or element.get("image_url")
        subtitle = f"({element['subtitle']})" if element.get("subtitle") else None
        cards.append(joined([element.get("title"), subtitle, link], " "))
    described = "; ".join(card for card in cards if card) or joined([item.get("title"), item.get("url")], " ")
    what = "a product" if product is not None else "a card"
    return f"Shared {what}: {described}" if described else f"Shared {what}"


def _fallback(item: dict[str, Any], payload: dict[str, Any]) -> str:
    """A link Messenger shows as a plain card: ``title`` and ``url`` beside the payload."""
    return "Shared a link: " + (joined([item.get("title"), item.get("url") or payload.get("url")], " ") or "(no title)")


_CHAT_DESCRIBED = {"location": _location, "template": _template, "fallback": _fallback}


# --- WhatsApp Cloud API ----------------------------------------------------------

_WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")
# Fields of the business account that carry no customer message.
_WHATSAPP_FIELDS = {
    "user_id_update": "WhatsApp user_id_update (a customer's BSUID changed; conversations are not re-keyed)",
}


def _whatsapp_change(change: dict[str, Any]) -> NormalizedBatch:
    field = change.get("field")
    if field != "messages":
        return NormalizedBatch.ignoring(_WHATSAPP_FIELDS.get(str(field), f"WhatsApp field {field!r} is not handled"))
    value = change.get("value") or {}
    phone_number_id = str((value.get("metadata") or {})["phone_number_id"])
    people = _whatsapp_contacts(value.get("contacts"))
    inner = EventNormalizer("whatsapp")
    inner.each(value.get("messages"), lambda m: _whatsapp_message(phone_number_id, people, m))
    inner.each(value.get("statuses"), lambda status: _whatsapp_status(phone_number_id, status, people))
    return inner.batch


def _whatsapp_status(phone_number_id: str, status: dict[str, Any], people: dict[str, dict[str, Any]]) -> NormalizedBatch:
    return NormalizedBatch(statuses=[normalize_whatsapp_status(phone_number_id, status, people)])


def _whatsapp_contacts(contacts: Any) -> dict[str, dict[str, Any]]:
    """``value.contacts`` by every id they carry: BSUID (``user_id``) and phone (``wa_id``)."""
    found: dict[str, dict[str, Any]] = {}
    for contact in contacts if isinstance(contacts, list) else []:
        if isinstance(contact, dict):
            for field in ("user_id", "wa_id"):
                if contact.get(field):
                    found[str(contact[field])] = contact
    return found


def _whatsapp_message(phone_number_id: str, people: dict[str, dict[str, Any]], message: dict[str, Any]) -> NormalizedBatch:
    kind = message.get("type")
    if kind == "reaction":
        return NormalizedBatch.ignoring("reaction")
    if kind == "request_welcome":
        return NormalizedBatch.ignoring("the customer opened the chat (request_welcome)")
    if kind == "system":
        system = json_object(message.get("system"))
        return NormalizedBatch.ignoring(
            f"WhatsApp system message ({system.get('type')}): a customer's number or BSUID changed;"
            " conversations are not re-keyed"
        )
    return NormalizedBatch(messages=[normalize_whatsapp_message(phone_number_id, people, message)])


def _whatsapp_customer(message: dict[str, Any], people: dict[str, dict[str, Any]]) -> Author:
    """The customer who wrote ``message``.

    Since 2026 a user may hide their phone behind a username, and webhooks carry the
    business-scoped user id (BSUID): ``from_user_id`` on the message, ``user_id`` on the
    contact; ``from``/``wa_id`` (the phone) may be missing. The id is the BSUID when the
    payload has one, else the phone; ``+<phone>`` (or else the username) is the handle.
    """
    bsuid, phone = message.get("from_user_id"), message.get("from")
    contact = people.get(str(bsuid)) or people.get(str(phone)) or {}
    bsuid, phone = bsuid or contact.get("user_id"), phone or contact.get("wa_id")
    if not bsuid and not phone:
        raise KeyError("from")
    profile = json_object(contact.get("profile"))
    username = str(profile.get("username") or "").lstrip("@") or None
    handle = f"+{phone}" if phone else username
    # The number WhatsApp delivered from is the customer's own: the helpdesk user holding it is the requester.
    return Author(
        platform_id=str(bsuid or phone), handle=handle, display_name=profile.get("name"), phone=f"+{phone}" if phone else None
    )


def normalize_whatsapp_message(phone_number_id: str, people: dict[str, dict[str, Any]], message: dict[str, Any]) -> SocialMessage:
    """An inbound WhatsApp message: one conversation per customer per business number,
    or per group for a message in a group (``group_id``)."""
    author = _whatsapp_customer(message, people)
    kind = message.get("type")
    attachments: tuple[Attachment, ...] = ()
    if kind in _WHATSAPP_MEDIA and isinstance(message.get(kind), dict):
        media = message[kind]
        attachments = (
            Attachment(type=kind, media_id=media.get("id"), mime_type=media.get("mime_type"), caption=media.get("filename")),
        )
    group = message.get("group_id")
    if group:
        key = conversation_key(Platform.WHATSAPP, "group", phone_number_id, str(group))
    else:
        key = conversation_key(Platform.WHATSAPP, "dm", phone_number_id, author.platform_id)
    return SocialMessage(
        platform=Platform.WHATSAPP,
        kind=Kind.COMMENT if group else Kind.DIRECT_MESSAGE,
        direction=Direction.INBOUND,
        message_id=str(message["id"]),
        conversation_key=key,
        account_id=phone_number_id,
        author=author,
        text=_whatsapp_text(message),
        created_at=from_epoch(message["timestamp"]),
        parent_id=(message.get("context") or {}).get("id"),
        thread_id=str(group) if group else None,
        attachments=attachments,
        raw=message,
    )


def _whatsapp_text(message: dict[str, Any]) -> str:
    kind = message.get("type")
    body = json_object(message.get(kind)) if isinstance(kind, str) else {}
    if kind == "text":
        return str(body.get("body") or "")
    if kind == "sticker":
        return "[sticker]"
    if kind in _WHATSAPP_MEDIA:
        return str(body.get("caption") or "")
    if kind == "button":
        return str(body.get("text") or "")
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or body.get("nfm_reply") or {}
        return str(reply.get("title") or reply.get("body") or "")
    if kind == "location":
        return location_text(body.get("latitude"), body.get("longitude"), name=body.get("name"), address=body.get("address"))
    if kind == "contacts":
        return _contacts_text(message.get("contacts"))
    if kind == "order":
        return _order_text(body)
    errors = json_list(message.get("errors"))
    error = json_object(errors[0]) if errors else {}
    data = json_object(error.get("error_data"))
    detail = data.get("details") or error.get("details") or error.get("message") or error.get("title")
    return not_passed_on(Platform.WHATSAPP, str(detail or f"message type {kind!r}"))


def _contacts_text(contacts: Any) -> str:
    """Contact cards: each person's name, company, phone numbers and emails."""
    cards = []
    for card in contacts if isinstance(contacts, list) else []:
        if not isinstance(card, dict):
            continue
        name = json_object(card.get("name"))
        org = json_object(card.get("org"))
        who = name.get("formatted_name") or joined([name.get("first_name"), name.get("last_name")], " ") or "(no name)"
        if org.get("company"):
            who += f" ({org['company']})"
        reach = [p.get("phone") for p in card.get("phones") or [] if isinstance(p, dict)]
        reach += [e.get("email") for e in card.get("emails") or [] if isinstance(e, dict)]
        cards.append(joined([who, *reach], ", "))
    if len(cards) == 1:
        return f"Shared a contact: {cards[0]}"
    return f"Shared {len(cards)} contacts: {'; '.join(cards)}"


def _order_text(order: dict[str, Any]) -> str:
    """An order from the business's catalog: items, quantities, unit prices, the total."""
    lines, total, currencies, priced = [], 0.0, set(), True
    for item in order.get("product_items") or []:
        item = json_object(item)
        quantity, price, currency = item.get("quantity") or 1, item.get("item_price"), str(item.get("currency") or "")
        unit = f" at {joined([f'{float(price):.2f}', currency], ' ')}" if price is not None else ""
        lines.append(f"{quantity} × {item.get('product_retailer_id')}{unit}")
        if price is None:
            priced = False
        else:
            total += float(quantity) * float(price)
        currencies.add(currency)
    summary = "Placed an order: " + (", ".join(lines) or "(no items)")
    if lines and priced and len(currencies) == 1:
        summary += f" (total {joined([f'{total:.2f}', currencies.pop()], ' ')})"
    return joined([order.get("text"), summary])


def normalize_whatsapp_status(
    phone_number_id: str, status: dict[str, Any], people: dict[str, dict[str, Any]] | None = None
) -> DeliveryStatus:
    """A sent/delivered/read/failed receipt for a message the brand sent, keyed like the
    customer's messages: on the BSUID when the receipt (or its contact) has one."""
    phone = status.get("recipient_id")
    contact = (people or {}).get(str(phone)) or {}
    recipient = status.get("recipient_user_id") or contact.get("user_id") or status["recipient_id"]
    return DeliveryStatus(
        platform=Platform.WHATSAPP,
        message_id=str(status["id"]),
        conversation_key=conversation_key(Platform.WHATSAPP, "dm", phone_number_id, str(recipient)),
        status=str(status["status"]),
        timestamp=from_epoch(status["timestamp"]),
        errors=tuple(e for e in status.get("errors") or [] if isinstance(e, dict)),
    )
