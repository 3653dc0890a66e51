"""Telegram Bot API webhooks: private chats, groups (per forum topic) and Telegram Business.

Authentication: Telegram sends the ``secret_token`` given to ``setWebhook`` verbatim in
``X-Telegram-Bot-Api-Secret-Token``. It is a shared secret, not an HMAC of the body,
so it is compared in constant time and nothing else about the request is checked.

One ``Update`` per POST; besides ``update_id`` at most one optional field is set.
Handled: ``message``, ``edited_message``, ``business_message`` and
``edited_business_message``. Every other update type (``callback_query``,
``my_chat_member``, ``channel_post``, ``deleted_business_messages``, ...) is ignored,
with its reason. A message that is one bot command (``/start``) is stored with
``bot_command`` set; the ticket policy opens no ticket for it.

Identifiers:

* ``message_id`` is only unique inside one chat, so a message is ``<chat id>:<message_id>``
  (stable across redeliveries of the same update).
* An edit is its own message ``<chat id>:<message_id>:edit:<edit_date>`` with
  ``edit_of=<chat id>:<message_id>``, so every revision is kept and a redelivered edit
  is still deduplicated.

Account ids (the receiving side of the conversation):

* Messages to the bot itself: the update never names the bot, so the caller passes
  ``bot_id``. Use the bot's numeric user id -- the part of the bot token before the
  ``:`` (equal to ``getMe().id``). It survives token revocation (only the secret part
  after the colon changes), whereas the token, username or webhook URL do not.
* Telegram Business messages: the ``business_connection_id`` the message carries. It is
  the only account identifier in the payload (the owner's user id is only in
  ``business_connection`` updates), and conversation keys must be a pure function of
  the payload. It is stable for the life of the connection; if the owner disconnects
  and reconnects the bot, Telegram issues a new id and new conversations start.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.channels.common import EventNormalizer, location_text
from chalicelib.errors import BadRequest
from chalicelib.inbound.signatures import SignatureError, get_header
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

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Update fields that carry a Message we store; the flag says whether it is an edit.
_MESSAGE_FIELDS: dict[str, bool] = {
    "message": False,
    "edited_message": True,
    "business_message": False,
    "edited_business_message": True,
}
_GROUP_CHATS = frozenset({"group", "supergroup"})
# Update types that carry no message we store, and why.
_IGNORED_UPDATES = {
    "channel_post": "channel post",
    "edited_channel_post": "channel post edit",
    "callback_query": "callback query (a button press)",
    "inline_query": "inline query",
    "chosen_inline_result": "chosen inline result",
    "my_chat_member": "the bot's membership in a chat changed (added, removed or blocked)",
    "chat_member": "a member's status in a chat changed",
    "chat_join_request": "a request to join a chat",
    "message_reaction": "reaction",
    "message_reaction_count": "reaction count",
    "poll": "poll state",
    "poll_answer": "poll answer",
    "business_connection": "business connection changed",
    "deleted_business_messages": "business messages deleted",
}
# A bot command: "/" and up to 32 letters, digits or underscores, maybe "@<bot username>".
_BOT_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,})?")
# The forum topic that has no message_thread_id ("General") and every non-forum group.
MAIN_TOPIC = "main"


class SecretTokenVerifier:
    """Checks ``X-Telegram-Bot-Api-Secret-Token`` against the configured secret."""

    def __init__(self, secret: str, *, header: str = SECRET_HEADER) -> None:
        if not secret:
            # An empty secret would make every request without the header look genuine.
            raise ValueError("the Telegram webhook secret token must not be empty")
        self._secret = secret.encode()
        self.header = header

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless the header equals the secret (the body is not signed)."""
        received = get_header(headers, self.header)
        if not received:
            raise SignatureError(f"missing {self.header} header")
        if not hmac.compare_digest(received.encode(), self._secret):
            raise SignatureError(f"{self.header} does not match the configured secret")


def secret_token_verifier(secret: str) -> SecretTokenVerifier:
    """The verifier for the ``secret_token`` registered with ``setWebhook``."""
    return SecretTokenVerifier(secret)


def update_id(payload: Any) -> int | None:
    """The update's ``update_id``, or ``None`` when absent or not an integer.

    Ids increase by one per update, so a jump between consecutive deliveries reveals
    updates Telegram gave up on. Telegram picks a random next id after a week without
    updates, so a gap after a long silence is not a loss.
    """
    if not isinstance(payload, dict):
        return None
    value = payload.get("update_id")
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def normalize_delivery(payload: Any, *, bot_id: str = "bot") -> NormalizedBatch:
    """Turn one Telegram ``Update`` into canonical messages.

    ``bot_id`` is the account id for messages sent to the bot itself (see the module
    docstring: pass the numeric prefix of the bot token). A malformed message is
    quarantined with the whole update; a body that is not a JSON object is a
    ``BadRequest``.
    """
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    normalizer = EventNormalizer("telegram")
    field = next((name for name in _MESSAGE_FIELDS if name in payload), None)
    if field is None:
        other = next((name for name in _IGNORED_UPDATES if name in payload), None)
        normalizer.ignore(_IGNORED_UPDATES[other] if other else "update type not handled")
        return normalizer.batch
    message = payload[field]
    if not isinstance(message, dict):
        normalizer.reject(payload, f"'{field}' must be a JSON object")
        return normalizer.batch
    # The update (not just the message) is what gets quarantined, so update_id is kept.
    normalizer.each([payload], lambda update: _message(update, field, str(bot_id)))
    return normalizer.batch


def _message(update: dict[str, Any], field: str, bot_id: str) -> NormalizedBatch:
    message = update[field]
    chat_type = message["chat"]["type"]
    if chat_type != "private" and chat_type not in _GROUP_CHATS:
        return NormalizedBatch.ignoring("channel post")  # channel posts reach us only via channel_post
    text = message_text(message)
    attachments = message_attachments(message)
    if not text and not attachments:
        # Service messages (members joined, pinned, topic created, ...) carry no words.
        return NormalizedBatch.ignoring("service message (no text or file)")
    return NormalizedBatch(messages=[normalize_message(message, edited=_MESSAGE_FIELDS[field], bot_id=bot_id, raw=update)])


def message_key(message: Mapping[str, Any]) -> str:
    """``<chat id>:<message_id>``: Telegram numbers messages per chat, not globally."""
    return f"{message['chat']['id']}:{message['message_id']}"


def topic_of(message: Mapping[str, Any]) -> str:
    """The forum topic a group message belongs to, or ``"main"``.

    ``message_thread_id`` is also set on replies in ordinary supergroups (the id of
    the message that started the reply chain); only ``is_topic_message`` says it names
    a forum topic, so a reply chain does not split a group into many conversations.
    """
    if message.get("is_topic_message") and message.get("message_thread_id") is not None:
        return str(message["message_thread_id"])
    return MAIN_TOPIC


def is_outbound(message: Mapping[str, Any]) -> bool:
    """Whether the brand wrote the message.

    * ``sender_business_bot`` is set only on messages a bot sent on behalf of the
      connected business account.
    * In a business chat (always private) ``chat.id`` is the customer, so a message
      whose sender is not the chat was typed by the business owner.
    * ``from.is_bot``: bots never see other bots' messages, so a bot sender is us --
      except the placeholder bot users Telegram puts in ``from`` for anonymous admins
      and channel posts, which always come with ``sender_chat``.
    """
    if message.get("sender_business_bot"):
        return True
    sender = message.get("from") or {}
    chat = message["chat"]
    if message.get("business_connection_id") and chat["type"] == "private" and sender:
        return str(sender["id"]) != str(chat["id"])
    return bool(sender.get("is_bot")) and not message.get("sender_chat")


def author_of(message: Mapping[str, Any]) -> Author:
    """The sender: the user in ``from``, or the chat in ``sender_chat`` (anonymous admins, channels)."""
    sender_chat = message.get("sender_chat")
    if isinstance(sender_chat, dict):
        return Author(
            platform_id=str(sender_chat["id"]),
            handle=sender_chat.get("username"),
            display_name=sender_chat.get("title"),
        )
    sender = message["from"]
    name = " ".join(str(sender[k]) for k in ("first_name", "last_name") if sender.get(k))
    return Author(
        platform_id=str(sender["id"]), handle=sender.get("username"), display_name=name or None, phone=_own_phone(message, sender)
    )


def _own_phone(message: Mapping[str, Any], sender: Mapping[str, Any]) -> str | None:
    """The number on a contact card that is the sender's own (its ``user_id`` is the sender's id:
    what a bot's "share my phone number" button sends); someone else's card is not theirs."""
    contact = message.get("contact")
    if not isinstance(contact, dict) or str(contact.get("user_id")) != str(sender.get("id")):
        return None
    digits = "".join(c for c in str(contact.get("phone_number") or "") if c.isdigit())
    return f"+{digits}" if 7 <= len(digits) <= 15 else None


def message_text(message: Mapping[str, Any]) -> str:
    """The words of a message: its text, a media caption, or a description of non-media content."""
    if message.get("text"):
        return str(message["text"])
    if message.get("caption"):
        return str(message["caption"])
    sticker = message.get("sticker")
    if isinstance(sticker, dict):
        return f"[sticker {sticker['emoji']}]" if sticker.get("emoji") else "[sticker]"
    venue = message.get("venue")
    if isinstance(venue, dict):
        spot = json_object(venue.get("location"))
        return location_text(spot.get("latitude"), spot.get("longitude"), name=venue.get("title"), address=venue.get("address"))
    location = message.get("location")
    if isinstance(location, dict):
        return location_text(location.get("latitude"), location.get("longitude"))
    contact = message.get("contact")
    if isinstance(contact, dict):
        name = " ".join(str(contact[k]) for k in ("first_name", "last_name") if contact.get(k))
        return f"Shared contact: {name} {contact.get('phone_number', '')}".strip()
    poll = message.get("poll")
    if isinstance(poll, dict):
        return f"[poll] {poll.get('question', '')}".strip()
    game = message.get("game")
    if isinstance(game, dict):
        return f"Shared a game: {game.get('title') or '(untitled)'}"
    dice = message.get("dice")
    if isinstance(dice, dict):
        return f"[rolled {dice.get('emoji') or 'a die'}: {dice.get('value')}]"
    return ""


def bot_command(message: Mapping[str, Any]) -> str | None:
    """The bot command (``/start``, ``/help@acme_bot``) that is the message's whole text.

    Telegram marks commands with a ``bot_command`` entity; a client may omit entities,
    so a text that is exactly one command counts too.
    """
    text = message.get("text")
    if not isinstance(text, str) or not _BOT_COMMAND.fullmatch(text.strip()):
        return None
    entities = message.get("entities")
    if isinstance(entities, list) and entities:
        whole = len(text.encode("utf-16-le")) // 2  # entity offsets count UTF-16 code units
        if not any(
            isinstance(e, dict) and e.get("type") == "bot_command" and e.get("offset") == 0 and e.get("length") == whole
            for e in entities
        ):
            return None
    return text.strip()


# Message field -> canonical attachment type. Voice notes and music are both audio.
_MEDIA_TYPES: dict[str, str] = {
    "document": "document",
    "video": "video",
    "animation": "video",
    "video_note": "video",
    "voice": "audio",
    "audio": "audio",
}


def message_attachments(message: Mapping[str, Any]) -> tuple[Attachment, ...]:
    """Files sent with the message. Only ``file_id`` is known: the file is fetched later with ``getFile``.

    ``caption`` is the message caption, or the file name when there is none.
    """
    caption = message.get("caption")
    found: list[Attachment] = []
    photo = message.get("photo")
    if isinstance(photo, list) and photo:
        # Telegram sends several sizes of one picture; keep the largest.
        largest = max(
            (p for p in photo if isinstance(p, dict)),
            key=lambda p: (int(p.get("width", 0)) * int(p.get("height", 0)), int(p.get("file_size", 0))),
        )
        found.append(Attachment(type="image", media_id=str(largest["file_id"]), mime_type="image/jpeg", caption=caption))
    for field, kind in _MEDIA_TYPES.items():
        media = message.get(field)
        if field == "document" and message.get("animation"):
            continue  # an animation is also sent as a document for old clients
        if isinstance(media, dict):
            found.append(
                Attachment(
                    type=kind,
                    media_id=str(media["file_id"]),
                    mime_type=media.get("mime_type"),
                    caption=caption or media.get("file_name"),
                )
            )
    return tuple(found)


def _permalink(message: Mapping[str, Any], topic: str) -> str | None:
    chat = message["chat"]
    if chat["type"] != "supergroup":
        return None  # private chats and basic groups have no message links
    if chat.get("username"):
        return f"https://t.me/{chat['username']}/{message['message_id']}"
    internal = str(chat["id"]).removeprefix("-100")
    path = f"{internal}/{topic}/{message['message_id']}" if topic != MAIN_TOPIC else f"{internal}/{message['message_id']}"
    return f"https://t.me/c/{path}"


def normalize_message(message: Mapping[str, Any], *, edited: bool, bot_id: str, raw: dict[str, Any]) -> SocialMessage:
    """One Telegram Message (or an edit of one) as a ``SocialMessage``.

    Private chats are one conversation per customer per account
    (``telegram:dm:<account>:<chat id>``); groups are one conversation per chat per
    forum topic (``telegram:group:<chat id>:<topic or main>``).
    """
    chat = message["chat"]
    chat_id = str(chat["id"])
    original_id = message_key(message)
    business = message.get("business_connection_id")
    account_id = str(business) if business else bot_id
    outbound = is_outbound(message)
    thread: str | None = None
    if chat["type"] == "private":
        kind = Kind.DIRECT_MESSAGE
        # chat.id is always the customer in a private chat, whoever wrote the message.
        key = conversation_key(Platform.TELEGRAM, "dm", account_id, chat_id)
    else:
        kind = Kind.COMMENT
        topic = topic_of(message)
        thread = topic if topic != MAIN_TOPIC else None
        key = conversation_key(Platform.TELEGRAM, "group", chat_id, topic)
    reply_to = message.get("reply_to_message")
    parent_id = None
    if isinstance(reply_to, dict) and reply_to.get("message_id") is not None:
        # Every message in a forum topic "replies" to the topic's creation message;
        # that is the thread, not a parent.
        if not (thread and str(reply_to["message_id"]) == thread):
            parent_id = f"{chat_id}:{reply_to['message_id']}"
    if edited:
        message_id = f"{original_id}:edit:{message['edit_date']}"
        created_at = from_epoch(message["edit_date"])
    else:
        message_id = original_id
        created_at = from_epoch(message["date"])
    return SocialMessage(
        platform=Platform.TELEGRAM,
        kind=kind,
        direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
        message_id=message_id,
        conversation_key=key,
        account_id=account_id,
        author=author_of(message),
        text=message_text(message),
        created_at=created_at,
        parent_id=parent_id,
        thread_id=thread,
        permalink=_permalink(message, topic_of(message)),
        attachments=message_attachments(message),
        edit_of=original_id if edited else None,
        bot_command=bot_command(message),
        raw=raw,
    )
