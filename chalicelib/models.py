"""The one canonical model every platform's payload is normalized into.

Every webhook event, whatever its source, becomes a ``SocialMessage`` (something a
person or the brand wrote) or a ``DeliveryStatus`` (a receipt about a message the
brand sent). Everything downstream -- the store, the ticket sync, the helpdesk
adapters -- only ever sees these types.
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Which platforms exist is the channel registry's business; the model re-exports it.
from chalicelib.channels.registry import Platform as Platform


class Kind(str, Enum):
    """What sort of message it is, independent of the platform."""

    POST = "post"
    COMMENT = "comment"
    REPLY = "reply"
    MENTION = "mention"
    DIRECT_MESSAGE = "direct_message"
    REVIEW = "review"


class Direction(str, Enum):
    """``in``: written by a customer. ``out``: written by the brand."""

    INBOUND = "in"
    OUTBOUND = "out"


KIND_LABELS: dict[Kind, str] = {
    Kind.POST: "post",
    Kind.COMMENT: "comment",
    Kind.REPLY: "reply",
    Kind.MENTION: "mention",
    Kind.DIRECT_MESSAGE: "direct message",
    Kind.REVIEW: "review",
}

# Private chats are "one conversation per customer per account"; their tickets are
# reopened as new ones once solved or closed. Public threads key on the thread.
PRIVATE_KINDS = frozenset({Kind.DIRECT_MESSAGE})


def _valid_unicode(value: Any) -> Any:
    """Replace lone UTF-16 surrogates (valid in JSON escapes, unencodable in UTF-8)
    with U+FFFD, so one odd character cannot make a whole message unstorable."""
    if isinstance(value, str) and not value.isascii():  # ASCII always encodes: no copy made to find out
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


class Author(BaseModel):
    """The person (or the brand) who wrote a message, as the platform identifies them."""

    model_config = ConfigDict(frozen=True)

    platform_id: str
    handle: str | None = None
    display_name: str | None = None
    follower_count: int | None = None
    # Contact identities the platform vouches for as this person's own (never a number or an
    # address someone merely typed): the helpdesk user holding one is the requester
    # (``sync/requesters.py``). ``phone`` in E.164 (``+<digits>``).
    phone: str | None = None
    email: str | None = None

    _unicode = field_validator("*", mode="before")(_valid_unicode)

    @property
    def label(self) -> str:
        """A human-readable name: display name and handle when known, else the id."""
        if self.display_name and self.handle:
            return f"{self.display_name} (@{self.handle})"
        if self.display_name:
            return self.display_name
        if self.handle:
            return f"@{self.handle}"
        return self.platform_id


class Attachment(BaseModel):
    """A file sent with a message. ``url`` may be absent (WhatsApp sends only a media id)."""

    model_config = ConfigDict(frozen=True)

    type: str
    url: str | None = None
    media_id: str | None = None
    mime_type: str | None = None
    caption: str | None = None

    _unicode = field_validator("*", mode="before")(_valid_unicode)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class SocialMessage(BaseModel):
    """One message from any platform, in one shape.

    ``conversation_key`` decides which ticket the message lands on; it is a pure
    function of the payload, so a redelivered or backfilled copy of a message always
    lands on the same key and is deduplicated by the store's conditional write.
    """

    model_config = ConfigDict(frozen=True)

    platform: Platform
    kind: Kind
    direction: Direction
    # DynamoDB keys hold at most 1024 bytes (sort key) / 2048 (partition key).
    message_id: str = Field(min_length=1, max_length=500)
    conversation_key: str = Field(min_length=1, max_length=1000)
    account_id: str = Field(min_length=1, description="Receiving account: Page, IG account, WA phone-number id, X user")
    author: Author
    text: str = ""
    created_at: datetime
    parent_id: str | None = None
    thread_id: str | None = Field(default=None, description="Post, media or X conversation the message belongs to")
    permalink: str | None = None
    attachments: tuple[Attachment, ...] = ()
    source: str | None = Field(default=None, description="For Platform.OTHER: the sending tool, e.g. 'trustpilot'")
    rating: int | None = Field(default=None, ge=1, le=5, description="Star rating of a review or recommendation")
    recommends: bool | None = Field(default=None, description="Facebook recommendation: positive (True) or negative")
    deleted: bool = Field(default=False, description="The author deleted the message ``edit_of`` refers to")
    edit_of: str | None = Field(default=None, description="For an edit: the message_id of the message it changes")
    bot_command: str | None = Field(
        default=None, description="Telegram: the one bot command (e.g. ``/start``) that is the message's whole text"
    )
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    _unicode = field_validator("*", mode="before")(_valid_unicode)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @property
    def is_private(self) -> bool:
        """True for one-to-one chats (DMs)."""
        return self.kind in PRIVATE_KINDS


class DeliveryStatus(BaseModel):
    """A platform's receipt (sent, delivered, read, failed) for a message the brand sent."""

    model_config = ConfigDict(frozen=True)

    platform: Platform
    message_id: str
    conversation_key: str
    status: str
    timestamp: datetime
    errors: tuple[dict[str, Any], ...] = ()

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)


class RejectedEvent(BaseModel):
    """An event that failed normalization, quarantined with its error."""

    source: str
    error: str
    event: Any


class NormalizedBatch(BaseModel):
    """What one webhook delivery turned into."""

    messages: list[SocialMessage] = Field(default_factory=list)
    statuses: list[DeliveryStatus] = Field(default_factory=list)
    ignored: int = 0
    # Why events were ignored ("read receipt", "reaction"...), one entry per event a
    # normalizer ignored on purpose (callers that only count may leave it short).
    ignored_reasons: list[str] = Field(default_factory=list)
    # Events we should understand but could not (missing fields, wrong types): kept
    # with the error so nothing a platform sent is silently dropped.
    rejected: list[RejectedEvent] = Field(default_factory=list)

    @classmethod
    def ignoring(cls, reason: str) -> NormalizedBatch:
        """One event ignored on purpose, and why (e.g. "read receipt")."""
        return cls(ignored=1, ignored_reasons=[reason])

    def extend(self, other: NormalizedBatch) -> None:
        """Merge another batch into this one."""
        self.messages.extend(other.messages)
        self.statuses.extend(other.statuses)
        self.ignored += other.ignored
        self.ignored_reasons.extend(other.ignored_reasons)
        self.rejected.extend(other.rejected)


def source_name(source: str) -> str:
    """How people write a Standard Webhooks source's name: ``app-store`` -> "App Store"."""
    return source.replace("-", " ").replace("_", " ").title()


def conversation_key(platform: Platform, scope: str, *parts: str) -> str:
    """Build a conversation key such as ``messenger:dm:<page>:<psid>``."""
    return ":".join((platform.value, scope, *parts))


def from_epoch(value: int | float | str) -> datetime:
    """Parse an epoch timestamp in seconds or milliseconds (platforms use both)."""
    number = float(value)
    if number > 10_000_000_000:  # milliseconds: seconds would be past the year 2286
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, tz=timezone.utc)
    except (OverflowError, OSError) as exc:  # e.g. 1e300: not a time any platform sends
        raise ValueError(f"timestamp {value!r} is out of range") from exc
