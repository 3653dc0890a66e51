"""X (Twitter) Account Activity webhooks: mentions, replies and direct messages.

Authentication: ``x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(consumer
secret, raw body)>``; the CRC check answers ``crc_token`` with the same HMAC.
Each delivery is for one subscribed account (``for_user_id``); events that account
wrote itself are stored as outbound and never open a ticket. X escapes ``&``, ``<`` and
``>`` in tweet and DM text (``&amp;``...); the text is stored as the person wrote it.
A customer's deleted tweet (``tweet_delete_events``) is a deletion of it.
"""

from __future__ import annotations

import base64
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from chalicelib.channels.common import EventNormalizer, as_deletion
from chalicelib.errors import BadRequest
from chalicelib.inbound.signatures import HmacSignatureVerifier, hmac_sha256
from chalicelib.jsonvalues import json_object
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

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
_HANDLED = ("tweet_create_events", "direct_message_events", "tweet_delete_events")
# Activity that carries no one's words, and why it is ignored.
_IGNORED_EVENTS = {
    "favorite_events": "like",
    "follow_events": "follow",
    "unfollow_events": "unfollow",
    "block_events": "block",
    "unblock_events": "unblock",
    "mute_events": "mute",
    "unmute_events": "unmute",
    "direct_message_indicate_typing_events": "typing indicator",
    "direct_message_mark_read_events": "read receipt",
    "user_event": "account event (e.g. revoked access)",
}


def unescape(text: str) -> str:
    """X's HTML escaping of ``&``, ``<`` and ``>`` undone (``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def signature_verifier(consumer_secret: str) -> HmacSignatureVerifier:
    """The verifier for X's ``x-twitter-webhooks-signature`` header."""
    return HmacSignatureVerifier(consumer_secret, header=SIGNATURE_HEADER, prefix="sha256=", encoding="base64")


def crc_response(crc_token: str | None, consumer_secret: str) -> dict[str, str]:
    """The body X expects for its challenge-response check."""
    if not crc_token:
        raise BadRequest("crc_token query parameter is missing")
    digest = hmac_sha256(consumer_secret, crc_token)
    return {"response_token": "sha256=" + base64.b64encode(digest).decode()}


def normalize_delivery(payload: dict[str, Any]) -> NormalizedBatch:
    """Turn one Account Activity delivery into canonical messages."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    normalizer = EventNormalizer("x")
    brand_id = payload.get("for_user_id")
    handled = [key for key in _HANDLED if key in payload]
    if not brand_id:
        if handled:
            raise BadRequest("for_user_id is missing")
        normalizer.ignore("no for_user_id")
        return normalizer.batch
    brand_id = str(brand_id)
    users = json_object(payload.get("users"))
    normalizer.each(payload.get("tweet_create_events"), lambda t: _tweet(brand_id, t))
    normalizer.each(payload.get("direct_message_events"), lambda e: _direct_message(brand_id, users, e))
    normalizer.each(payload.get("tweet_delete_events"), lambda e: _tweet_delete(brand_id, e))
    for key, events in payload.items():
        if (key.endswith("_events") or key in _IGNORED_EVENTS) and key not in _HANDLED:
            reason = _IGNORED_EVENTS.get(key, f"X {key} are not handled")
            for _ in events if isinstance(events, list) else [events]:
                normalizer.ignore(reason)
    return normalizer.batch


def _tweet(brand_id: str, tweet: dict[str, Any]) -> NormalizedBatch:
    if "retweeted_status" in tweet:
        return NormalizedBatch.ignoring("retweet (no words of its own)")
    return NormalizedBatch(messages=[normalize_tweet(brand_id, tweet)])


def _tweet_delete(brand_id: str, event: dict[str, Any]) -> NormalizedBatch:
    """A deleted tweet: the customer's is a deletion in their conversation; the brand's
    own names no customer, so it cannot be placed and is ignored."""
    status = event["status"]
    author = str(status["user_id"])
    if author == brand_id:
        return NormalizedBatch.ignoring("the account deleted its own tweet")
    original = SocialMessage(
        platform=Platform.X,
        kind=Kind.MENTION,
        direction=Direction.INBOUND,
        message_id=str(status["id"]),
        conversation_key=conversation_key(Platform.X, "tweets", brand_id, author),
        account_id=brand_id,
        author=Author(platform_id=author),
        created_at=from_epoch(event["timestamp_ms"]),
        raw=event,
    )
    return NormalizedBatch(messages=[as_deletion(original)])


def _tweet_text(tweet: dict[str, Any]) -> str:
    extended = tweet.get("extended_tweet") or {}
    return unescape(extended.get("full_text") or tweet.get("full_text") or tweet.get("text") or "")


def _tweet_time(tweet: dict[str, Any]) -> datetime:
    if tweet.get("timestamp_ms"):
        return from_epoch(tweet["timestamp_ms"])
    return parsedate_to_datetime(tweet["created_at"])


def normalize_tweet(brand_id: str, tweet: dict[str, Any]) -> SocialMessage:
    """A mention of, or reply to, the brand account (or the brand's own tweet, outbound).

    Public tweets group per customer per brand account, like a chat: the webhook's
    tweet objects carry no ``conversation_id`` that a polled copy of the same tweet
    would share, and the conversation key must be a pure function of the tweet so a
    tweet arriving by both paths is stored once. X's ``conversation_id`` is kept as
    ``thread_id`` when present.
    """
    user = tweet.get("user") or {}
    author = Author(
        platform_id=str(user["id_str"] if "id_str" in user else user["id"]),
        handle=user.get("screen_name"),
        display_name=user.get("name"),
        follower_count=user.get("followers_count"),
    )
    outbound = author.platform_id == brand_id
    replied_to_user = tweet.get("in_reply_to_user_id_str")
    customer = str(replied_to_user or brand_id) if outbound else author.platform_id
    tweet_id = str(tweet.get("id_str") or tweet["id"])
    media = (tweet.get("extended_entities") or tweet.get("entities") or {}).get("media") or []
    attachments = tuple(
        Attachment(type=str(m.get("type", "photo")), url=m.get("media_url_https") or m.get("media_url"))
        for m in media
        if isinstance(m, dict)
    )
    return SocialMessage(
        platform=Platform.X,
        kind=Kind.REPLY if replied_to_user == brand_id and not outbound else Kind.MENTION,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        message_id=tweet_id,
        conversation_key=conversation_key(Platform.X, "tweets", brand_id, customer),
        account_id=brand_id,
        author=author,
        text=_tweet_text(tweet),
        created_at=_tweet_time(tweet),
        parent_id=tweet.get("in_reply_to_status_id_str"),
        thread_id=str(tweet["conversation_id"]) if tweet.get("conversation_id") else None,
        permalink=f"https://x.com/{author.handle or 'i'}/status/{tweet_id}",
        attachments=attachments,
        raw=tweet,
    )


def _direct_message(brand_id: str, users: dict[str, Any], event: dict[str, Any]) -> NormalizedBatch:
    if event.get("type") != "message_create":
        return NormalizedBatch.ignoring(f"direct message event {event.get('type')!r}")
    return NormalizedBatch(messages=[normalize_direct_message(brand_id, users, event)])


def normalize_direct_message(brand_id: str, users: dict[str, Any], event: dict[str, Any]) -> SocialMessage:
    """A direct message to (or, as an echo, from) the brand account."""
    create = event["message_create"]
    sender = str(create["sender_id"])
    recipient = str(create["target"]["recipient_id"])
    outbound = sender == brand_id
    profile = users.get(sender) or {}
    data = create.get("message_data") or {}
    attachment = data.get("attachment") or {}
    media = attachment.get("media") if attachment.get("type") == "media" else None
    attachments = (Attachment(type=str(media.get("type", "photo")), url=media.get("media_url_https")),) if media else ()
    return SocialMessage(
        platform=Platform.X,
        kind=Kind.DIRECT_MESSAGE,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        message_id=str(event["id"]),
        conversation_key=conversation_key(Platform.X, "dm", brand_id, recipient if outbound else sender),
        account_id=brand_id,
        author=Author(
            platform_id=sender,
            handle=profile.get("screen_name"),
            display_name=profile.get("name"),
            follower_count=profile.get("followers_count"),
        ),
        text=unescape(data.get("text") or ""),
        created_at=from_epoch(event["created_timestamp"]),
        attachments=attachments,
        raw=event,
    )
