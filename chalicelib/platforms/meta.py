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

from chalicelib.errors import BadRequest, Forbidden
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
from chalicelib.platforms.common import EventNormalizer, require_list
from chalicelib.signatures import HmacSignatureVerifier

SIGNATURE_HEADER = "X-Hub-Signature-256"

# Feed items that are something a person wrote; reactions, likes and shares are not.
_FEED_POST_ITEMS = frozenset({"post", "status", "photo", "video"})


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
        if not isinstance(entry, dict):
            # Quarantined, not refused: a 4xx would make Meta retry the good entries forever.
            normalizer.reject(entry, "every entry must be a JSON object")
            continue
        account_id = str(entry.get("id", ""))
        # Some notifications (Instagram comments and mentions) carry no timestamp of
        # their own: the entry's time is when Meta saw the change.
        seen_at = _entry_time(entry.get("time"))
        # Instagram Login apps get flat entries (``field``/``value``) instead of ``changes``.
        changes = entry.get("changes")
        if changes is None and "field" in entry:
            changes = [{"field": entry["field"], "value": entry.get("value")}]
        if obj == "page":
            normalizer.each(changes, lambda c: _page_change(account_id, c, seen_at))
            for field in ("messaging", "standby"):
                normalizer.each(entry.get(field), lambda e: _chat_event(Platform.MESSENGER, account_id, e))
        elif obj == "instagram":
            normalizer.each(changes, lambda c: _instagram_change(account_id, c, seen_at))
            normalizer.each(entry.get("messaging"), lambda e: _chat_event(Platform.INSTAGRAM, account_id, e))
        elif obj == "whatsapp_business_account":
            normalizer.each(changes, _whatsapp_change)
        else:
            normalizer.ignore(f"object {obj!r}")
    return normalizer.batch


# --- Facebook Page feed -------------------------------------------------------


def _page_change(page_id: str, change: dict[str, Any], seen_at: datetime) -> NormalizedBatch:
    value = change.get("value") or {}
    field, verb, item = change.get("field"), value.get("verb"), value.get("item")
    if field == "ratings" or (field == "feed" and "recommendation_type" in value):
        return NormalizedBatch(messages=[normalize_recommendation(page_id, value, raw=change, seen_at=seen_at)])
    if field != "feed":
        return NormalizedBatch(ignored=1)
    if item == "comment" and verb in ("add", "edited", "remove"):
        message = normalize_feed_comment(page_id, value, raw=change, seen_at=seen_at)
        return NormalizedBatch(messages=[_as_change(message, verb, value.get("message") or "")])
    if item in _FEED_POST_ITEMS and verb == "add":
        return NormalizedBatch(messages=[normalize_feed_post(page_id, value, raw=change, seen_at=seen_at)])
    return NormalizedBatch(ignored=1)


def _as_change(message: SocialMessage, verb: str | None, text: str) -> SocialMessage:
    """An ``edited``/``remove`` notification as its own message about the original.

    The id must be the same on every redelivery of the same change and differ between
    two edits, and Meta sends no edit time: the new text's hash does both.
    """
    if verb == "edited":
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return message.model_copy(update={"message_id": f"{message.message_id}:edit:{digest}", "edit_of": message.message_id})
    if verb == "remove":
        return message.model_copy(update={"message_id": f"{message.message_id}:deleted", "edit_of": message.message_id, "deleted": True})
    return message


def normalize_recommendation(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A Page recommendation (or a legacy star rating): a review, one conversation each.

    ``recommendation_type`` is ``positive`` or ``negative``; older ratings carry a
    1-5 ``rating`` instead. Whether it opens a ticket is the ticket policy's call.
    """
    reviewer = str(value.get("reviewer_id") or (value.get("from") or {}).get("id"))
    story = value.get("open_graph_story_id")
    review_id = str(story) if story else f"rating:{page_id}:{reviewer}"
    kind = value.get("recommendation_type")
    rating = value.get("rating")
    message = SocialMessage(
        platform=Platform.FACEBOOK,
        kind=Kind.REVIEW,
        direction=Direction.INBOUND,
        message_id=review_id,
        conversation_key=conversation_key(Platform.FACEBOOK, "review", review_id),
        account_id=page_id,
        author=Author(platform_id=reviewer, display_name=value.get("reviewer_name") or (value.get("from") or {}).get("name")),
        text=value.get("review_text") or "",
        created_at=_feed_time(value, seen_at),
        permalink=f"https://www.facebook.com/{story}" if story else None,
        rating=int(rating) if rating not in (None, "") else None,
        recommends={"positive": True, "negative": False}.get(str(kind)) if kind else None,
        raw=raw,
    )
    return _as_change(message, value.get("verb"), message.text)


def _feed_author(value: dict[str, Any]) -> Author:
    sender = value.get("from") or {}
    return Author(platform_id=str(sender["id"]), display_name=sender.get("name"))


def _feed_time(value: dict[str, Any], seen_at: datetime | None) -> datetime:
    created = value.get("created_time")
    return seen_at if created is None else _parse_time(created)


def normalize_feed_comment(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A comment (or reply) on a Page post: one conversation per top-level comment."""
    comment_id = str(value["comment_id"])
    post_id = str(value.get("post_id") or "")
    parent_id = str(value.get("parent_id") or post_id)
    is_reply = bool(parent_id) and parent_id != post_id
    top_comment = parent_id if is_reply else comment_id
    author = _feed_author(value)
    post = value.get("post") or {}
    attachments = []
    if value.get("photo"):
        attachments.append(Attachment(type="image", url=value["photo"]))
    if value.get("video"):
        attachments.append(Attachment(type="video", url=value["video"]))
    return SocialMessage(
        platform=Platform.FACEBOOK,
        kind=Kind.REPLY if is_reply else Kind.COMMENT,
        direction=Direction.OUTBOUND if author.platform_id == page_id else Direction.INBOUND,
        message_id=comment_id,
        conversation_key=conversation_key(Platform.FACEBOOK, "comment", top_comment),
        account_id=page_id,
        author=author,
        text=value.get("message") or "",
        created_at=_feed_time(value, seen_at),
        parent_id=parent_id or None,
        thread_id=post_id or None,
        permalink=post.get("permalink_url") or f"https://www.facebook.com/{comment_id}",
        attachments=tuple(attachments),
        raw=raw,
    )


def normalize_feed_post(
    page_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A visitor post on the Page (or the Page's own post, stored as outbound)."""
    post_id = str(value["post_id"])
    author = _feed_author(value)
    attachments = [Attachment(type="image", url=url) for url in value.get("photos") or []]
    if value.get("link") and value.get("item") == "photo":
        attachments.append(Attachment(type="image", url=value["link"]))
    if value.get("link") and value.get("item") == "video":
        attachments.append(Attachment(type="video", url=value["link"]))
    return SocialMessage(
        platform=Platform.FACEBOOK,
        kind=Kind.POST,
        direction=Direction.OUTBOUND if author.platform_id == page_id else Direction.INBOUND,
        message_id=post_id,
        conversation_key=conversation_key(Platform.FACEBOOK, "post", post_id),
        account_id=page_id,
        author=author,
        text=value.get("message") or "",
        created_at=_feed_time(value, seen_at),
        thread_id=post_id,
        permalink=value.get("permalink_url") or f"https://www.facebook.com/{post_id}",
        attachments=tuple(attachments),
        raw=raw,
    )


# --- Instagram comments and mentions --------------------------------------------


def _instagram_change(account_id: str, change: dict[str, Any], seen_at: datetime) -> NormalizedBatch:
    field = change.get("field")
    value = change.get("value") or {}
    if field in ("comments", "live_comments"):
        return NormalizedBatch(messages=[normalize_instagram_comment(account_id, value, raw=change, seen_at=seen_at)])
    if field == "mentions":
        return NormalizedBatch(messages=[normalize_instagram_mention(account_id, value, raw=change, seen_at=seen_at)])
    return NormalizedBatch(ignored=1)


def normalize_instagram_comment(
    account_id: str, value: dict[str, Any], *, raw: dict[str, Any], seen_at: datetime | None = None
) -> SocialMessage:
    """A comment on the account's media; replies carry ``parent_id`` (the top-level comment)."""
    # ``id`` in the webhooks reference; ``comment_id`` in Meta's Facebook-Login example.
    comment_id = str(value["id"] if "id" in value else value["comment_id"])
    parent_id = value.get("parent_id")
    sender = value.get("from") or {}
    author = Author(platform_id=str(sender["id"]), handle=sender.get("username"))
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
    return SocialMessage(
        platform=Platform.INSTAGRAM,
        kind=Kind.MENTION,
        direction=Direction.INBOUND,
        message_id=f"mention:{mention_id}",
        conversation_key=conversation_key(Platform.INSTAGRAM, "mention", mention_id),
        account_id=account_id,
        author=Author(platform_id=str(value.get("from", {}).get("id") or f"media:{media_id}")),
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


def _chat_event(platform: Platform, account_id: str, event: dict[str, Any]) -> NormalizedBatch:
    message = event.get("message")
    if not isinstance(message, dict) or message.get("is_deleted") or not message.get("mid"):
        return NormalizedBatch(ignored=1)  # read, delivery, postback, reaction, deletion
    return NormalizedBatch(messages=[normalize_chat_message(platform, account_id, event, raw=event)])


def normalize_chat_message(
    platform: Platform, account_id: str, event: dict[str, Any], *, raw: dict[str, Any]
) -> SocialMessage:
    """A Messenger or Instagram Direct message; echoes of the brand's own sends are outbound."""
    message = event["message"]
    sender = str(event["sender"]["id"])
    recipient = str(event["recipient"]["id"])
    outbound = bool(message.get("is_echo")) or sender == account_id
    customer = recipient if outbound else sender
    attachments = tuple(
        Attachment(type=str(a.get("type", "file")), url=(a.get("payload") or {}).get("url"))
        for a in message.get("attachments") or []
        if isinstance(a, dict)
    )
    reply_to = message.get("reply_to") or {}
    return SocialMessage(
        platform=platform,
        kind=Kind.DIRECT_MESSAGE,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        message_id=str(message["mid"]),
        conversation_key=conversation_key(platform, "dm", account_id, customer),
        account_id=account_id,
        author=Author(platform_id=sender),
        text=message.get("text") or "",
        created_at=from_epoch(event["timestamp"]),
        parent_id=reply_to.get("mid"),
        attachments=attachments,
        raw=raw,
    )


# --- WhatsApp Cloud API ----------------------------------------------------------

_WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")


def _whatsapp_change(change: dict[str, Any]) -> NormalizedBatch:
    value = change.get("value") or {}
    if change.get("field") != "messages":
        return NormalizedBatch(ignored=1)
    phone_number_id = str((value.get("metadata") or {})["phone_number_id"])
    names = {
        str(c.get("wa_id")): (c.get("profile") or {}).get("name") for c in value.get("contacts") or [] if isinstance(c, dict)
    }
    inner = EventNormalizer("whatsapp")
    inner.each(value.get("messages"), lambda m: _whatsapp_message(phone_number_id, names, m))
    inner.each(value.get("statuses"), lambda s: NormalizedBatch(statuses=[normalize_whatsapp_status(phone_number_id, s)]))
    return inner.batch


def _whatsapp_message(phone_number_id: str, names: dict[str, str | None], message: dict[str, Any]) -> NormalizedBatch:
    if message.get("type") in ("reaction", "system", "ephemeral"):
        return NormalizedBatch(ignored=1)
    return NormalizedBatch(messages=[normalize_whatsapp_message(phone_number_id, names, message)])


def _whatsapp_text(message: dict[str, Any]) -> str:
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    if kind == "text":
        return (message.get("text") or {}).get("body", "")
    if kind in _WHATSAPP_MEDIA:
        return (body or {}).get("caption", "")
    if kind == "button":
        return (body or {}).get("text", "")
    if kind == "interactive":
        reply = (body or {}).get("button_reply") or (body or {}).get("list_reply") or {}
        return reply.get("title", "")
    if kind == "location":
        loc = body or {}
        place = " ".join(str(loc[k]) for k in ("name", "address") if loc.get(k))
        return f"Location {loc.get('latitude')},{loc.get('longitude')} {place}".strip()
    if kind == "contacts":
        return "Shared contact card(s)"
    return f"[unsupported WhatsApp message type: {kind}]"


def normalize_whatsapp_message(
    phone_number_id: str, names: dict[str, str | None], message: dict[str, Any]
) -> SocialMessage:
    """An inbound WhatsApp message: one conversation per customer per business number."""
    wa_id = str(message["from"])
    kind = message.get("type")
    attachments: tuple[Attachment, ...] = ()
    if kind in _WHATSAPP_MEDIA and isinstance(message.get(kind), dict):
        media = message[kind]
        attachments = (
            Attachment(type=kind, media_id=media.get("id"), mime_type=media.get("mime_type"), caption=media.get("filename")),
        )
    return SocialMessage(
        platform=Platform.WHATSAPP,
        kind=Kind.DIRECT_MESSAGE,
        direction=Direction.INBOUND,
        message_id=str(message["id"]),
        conversation_key=conversation_key(Platform.WHATSAPP, "dm", phone_number_id, wa_id),
        account_id=phone_number_id,
        author=Author(platform_id=wa_id, handle=f"+{wa_id}", display_name=names.get(wa_id)),
        text=_whatsapp_text(message),
        created_at=from_epoch(message["timestamp"]),
        parent_id=(message.get("context") or {}).get("id"),
        attachments=attachments,
        raw=message,
    )


def normalize_whatsapp_status(phone_number_id: str, status: dict[str, Any]) -> DeliveryStatus:
    """A sent/delivered/read/failed receipt for a message the brand sent."""
    return DeliveryStatus(
        platform=Platform.WHATSAPP,
        message_id=str(status["id"]),
        conversation_key=conversation_key(Platform.WHATSAPP, "dm", phone_number_id, str(status["recipient_id"])),
        status=str(status["status"]),
        timestamp=from_epoch(status["timestamp"]),
        errors=tuple(e for e in status.get("errors") or [] if isinstance(e, dict)),
    )

