"""LINE Messaging API webhooks: one-to-one chats, group chats and multi-person rooms.

Authentication: ``x-line-signature: <base64 HMAC-SHA256(channel secret, raw body)>``,
no prefix. LINE publishes no IP ranges, so the signature is the only check.

A delivery is ``{"destination": <bot user id>, "events": [...]}``; ``destination`` is
the receiving account. ``events: []`` is LINE's "Verify" request from the console: it
is answered 200 and nothing is stored.

Deduplication: LINE may redeliver an event (``deliveryContext.isRedelivery: true``,
same ``webhookEventId``). A redelivered message event carries the same ``message.id``,
which is globally unique, and that is our ``message_id`` -- so the store's conditional
write already deduplicates redeliveries without tracking ``webhookEventId``.
"""

from __future__ import annotations

from typing import Any

from chalicelib.channels.common import EventNormalizer, as_deletion, as_edit, location_text, require_list
from chalicelib.errors import BadRequest
from chalicelib.inbound.signatures import HmacSignatureVerifier
from chalicelib.models import (
    Attachment,
    Author,
    Direction,
    Kind,
    NormalizedBatch,
    Platform,
    SocialMessage,
    conversation_key,
    from_epoch,
)

SIGNATURE_HEADER = "x-line-signature"

# Media whose bytes are fetched later from the content API with the message id.
_MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})
# Event types that carry no one's words, and why they are ignored.
_IGNORED_EVENTS = {
    "follow": "follow (the user added the account as a friend)",
    "unfollow": "unfollow (the user blocked the account)",
    "join": "the account joined a group or room",
    "leave": "the account left a group or room",
    "memberJoined": "a member joined a group",
    "memberLeft": "a member left a group",
    "postback": "postback (a button press)",
    "videoPlayComplete": "video play complete",
    "beacon": "beacon",
    "accountLink": "account link",
    "things": "LINE Things device event",
    "membership": "membership event",
    "module": "module channel event",
    "activated": "module channel event",
    "deactivated": "module channel event",
    "botSuspended": "module channel event",
    "botResumed": "module channel event",
}


def signature_verifier(channel_secret: str) -> HmacSignatureVerifier:
    """The verifier for LINE's ``x-line-signature`` header (base64, no prefix)."""
    return HmacSignatureVerifier(channel_secret, header=SIGNATURE_HEADER, prefix="", encoding="base64")


def normalize_delivery(payload: Any) -> NormalizedBatch:
    """Turn one LINE webhook body into canonical messages.

    ``message`` events become messages, ``messageEdited`` edits and ``unsend``
    deletions of them. Every other event type (``follow``, ``unfollow``, ``join``,
    ``postback``, ...) is ignored with its reason. A malformed event is quarantined; a
    body that is not a JSON object, or has events but no ``destination``, is a ``BadRequest``.
    """
    events = require_list(payload, "events")
    normalizer = EventNormalizer("line")
    if not events:
        return normalizer.batch  # the console's webhook verification request
    destination = payload.get("destination")
    if not destination or not isinstance(destination, str):
        raise BadRequest("destination is missing")
    normalizer.each(events, lambda event: _event(destination, event))
    return normalizer.batch


def _event(destination: str, event: dict[str, Any]) -> NormalizedBatch:
    kind = event.get("type")
    if kind == "message":
        return NormalizedBatch(messages=[normalize_message_event(destination, event)])
    if kind == "messageEdited":
        # Edits may arrive out of order; the one with the largest timestamp is the latest.
        # The event time is the same on a redelivery and differs between two edits.
        return NormalizedBatch(messages=[as_edit(normalize_message_event(destination, event), str(event["timestamp"]))])
    if kind == "unsend":
        return NormalizedBatch(messages=[normalize_unsend(destination, event)])
    return NormalizedBatch.ignoring(_IGNORED_EVENTS.get(str(kind), f"LINE event type {kind!r} is not handled"))


def normalize_unsend(destination: str, event: dict[str, Any]) -> SocialMessage:
    """The user unsent message ``unsend.messageId``: a deletion of it, in its conversation."""
    original = {**event, "message": {"id": event["unsend"]["messageId"], "type": "text", "text": ""}}
    return as_deletion(normalize_message_event(destination, original))


def message_text(message: dict[str, Any]) -> str:
    """The words of a LINE message, or a description for stickers and locations."""
    kind = message.get("type")
    if kind == "text":
        return str(message.get("text") or "")
    if kind == "sticker":
        return _sticker_text(message)
    if kind == "location":
        return location_text(
            message.get("latitude"), message.get("longitude"), name=message.get("title"), address=message.get("address")
        )
    if kind in _MEDIA_TYPES:
        return ""
    return f"[unsupported LINE message type: {kind}]"


def _sticker_text(message: dict[str, Any]) -> str:
    """A message sticker's ``text`` is what the user typed on it; ``keywords`` (up to
    15, a random choice each time) say what the sticker shows: the first few are enough."""
    keywords = [str(k) for k in message.get("keywords") or [] if k][:3]
    shows = f"sticker: {', '.join(keywords)}" if keywords else "sticker"
    typed = str(message.get("text") or "").strip()
    return f"{typed} ({shows})" if typed else f"[{shows}]"


def message_attachments(message: dict[str, Any]) -> tuple[Attachment, ...]:
    """The file of an image/video/audio/file message.

    ``media_id`` is the message id: LINE-hosted content is downloaded later from
    ``/v2/bot/message/{id}/content``. Content from an external provider has its URL.
    """
    kind = message.get("type")
    if kind not in _MEDIA_TYPES:
        return ()
    provider = message.get("contentProvider") or {}
    url = provider.get("originalContentUrl") if provider.get("type") == "external" else None
    return (Attachment(type=str(kind), media_id=str(message["id"]), url=url, caption=message.get("fileName")),)


def normalize_message_event(destination: str, event: dict[str, Any]) -> SocialMessage:
    """A message event as a ``SocialMessage``.

    One-to-one chats are one conversation per user per bot (``line:dm:<bot>:<user>``);
    group chats and rooms one per chat (``line:group:<bot>:<group or room id>``).
    Only users of LINE's mobile apps are identified in groups; a message from anyone
    else is attributed to the group itself.
    """
    source = event["source"]
    message = event["message"]
    source_type = source["type"]
    if source_type == "user":
        user_id = str(source["userId"])
        kind = Kind.DIRECT_MESSAGE
        container = None
        key = conversation_key(Platform.LINE, "dm", destination, user_id)
    elif source_type in ("group", "room"):
        container = str(source["groupId"] if source_type == "group" else source["roomId"])
        user_id = str(source.get("userId") or container)
        kind = Kind.COMMENT
        key = conversation_key(Platform.LINE, "group", destination, container)
    else:
        raise ValueError(f"unknown source type {source_type!r}")
    quoted = message.get("quotedMessageId")
    return SocialMessage(
        platform=Platform.LINE,
        kind=kind,
        # Webhooks carry only what users send; the bot's own pushes are never echoed.
        direction=Direction.INBOUND,
        message_id=str(message["id"]),
        conversation_key=key,
        account_id=destination,
        author=Author(platform_id=user_id),
        text=message_text(message),
        created_at=from_epoch(event["timestamp"]),
        parent_id=str(quoted) if quoted else None,
        thread_id=container,
        attachments=message_attachments(message),
        raw=event,
    )
