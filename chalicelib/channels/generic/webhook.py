"""Any other source (Trustpilot, app-store review tools, listening tools...) via Standard Webhooks.

Route: ``POST /webhooks/generic/{source}``. ``source`` names the sending tool; it is a
slug (``^[a-z0-9][a-z0-9_-]{0,39}$``) and becomes ``SocialMessage.source``.

Authentication follows the Standard Webhooks spec (https://www.standardwebhooks.com):

* headers ``webhook-id``, ``webhook-timestamp`` (integer Unix seconds) and
  ``webhook-signature``: a space-separated list of ``v1,<base64 HMAC-SHA256>``; any
  one valid signature passes (the sender signs with old and new key while rotating);
* signed content ``{webhook-id}.{webhook-timestamp}.{raw body}``;
* secrets ``whsec_<base64 key>``, at least 24 bytes of key; several may be configured
  at once, so *our* side can rotate too;
* the timestamp must be within 5 minutes of our clock, either way.

The HMAC and the secret's key handling are the maintained ``standardwebhooks`` library's
(``Webhook.sign``). Its ``Webhook.verify`` is not used as-is because it has a hard-wired
wall clock and 5-minute tolerance (no clock can be injected), takes a single secret,
and raises ``ValueError``/``binascii.Error``/``UnicodeDecodeError`` -- a 500 instead of a
401 -- on a malformed signature list or a non-UTF-8 body. Header names are read
case-insensitively, and the signatures compared in constant time.

``webhook-id`` is not tracked: a replay inside the 5 minutes carries the same items,
whose ``message_id`` the store's conditional write already deduplicates.

Body (JSON Schema: ``schemas/generic-webhook.schema.json``, from ``json_schema()``)::

    {"type": "review.created", "timestamp": "...", "data": {<GenericMessage>}}
    {"type": "message.created", "data": [{<GenericMessage>}, ...]}      # a batch

Handled types: ``message.created``/``review.created`` (a new item) and
``message.updated``/``review.updated`` (an edit, which needs ``data.updated_at``). Any
other type (``ping``, ``review.deleted``, ...) is counted as ignored. An item that does
not validate against ``GenericMessage`` is quarantined; a body that is not an envelope
at all is a ``BadRequest``.

Identifiers are namespaced by source so two tools can never collide: ``message_id``
``<source>:<id>`` (an edit ``<source>:<id>:edit:<updated_at epoch>`` with ``edit_of``),
conversation key ``other:<source>:<conversation_id or id>`` (one ticket per item unless
the sender groups items), author ``<source>:<author.id>`` (the helpdesk requester is
keyed on platform ``other`` + this id).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints
from standardwebhooks import Webhook

from chalicelib.channels.common import EventNormalizer
from chalicelib.errors import BadRequest, NotConfigured
from chalicelib.inbound.signatures import SignatureError, get_header
from chalicelib.models import (
    Attachment,
    Author,
    Direction,
    Kind,
    NormalizedBatch,
    Platform,
    SocialMessage,
    conversation_key,
)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
DEFAULT_TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"
MIN_SECRET_BYTES = 24  # the spec's minimum for symmetric keys
SECRET_ENV_PREFIX = "GENERIC_WEBHOOK_SECRET_"

SOURCE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # used with fullmatch
# The spec: "integer unix timestamp". Digits only, so the signed string and the one we
# rebuild from it cannot differ (the library re-renders it from a number).
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")

CREATED_TYPES = frozenset({"message.created", "review.created"})
UPDATED_TYPES = frozenset({"message.updated", "review.updated"})
HANDLED_TYPES = CREATED_TYPES | UPDATED_TYPES


# --- Authentication ----------------------------------------------------------------------


def decode_secret(secret: str | bytes) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (raw bytes are taken as the key itself).

    Stricter than the library, which silently skips characters that are not base64: a
    mistyped secret must fail at start-up, not turn into a different key.
    """
    if isinstance(secret, bytes):
        key = secret
    else:
        encoded = secret.strip().removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a webhook secret is not whsec_<base64>") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret is {len(key)} bytes; Standard Webhooks requires at least {MIN_SECRET_BYTES}")
    return key


class StandardWebhookVerifier:
    """Checks a Standard Webhooks signature against any of the configured secrets.

    ``secrets`` is a list so the operator can rotate the secret without downtime:
    configure new and old, switch the sender, then drop the old one. ``now`` returns
    the current Unix time in seconds (tests freeze it); ``tolerance_seconds`` is how far
    ``webhook-timestamp`` may be from it, in the past or the future.
    """

    header = SIGNATURE_HEADER

    def __init__(
        self,
        secrets: Sequence[str | bytes],
        *,
        tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
        now: Callable[[], float] | None = None,
    ) -> None:
        # A lone string is a sequence too; iterating it would make one "secret" per character.
        if isinstance(secrets, (str, bytes)):
            raise TypeError("secrets must be a list of secrets, not one string")
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        if tolerance_seconds <= 0:
            raise ValueError("tolerance_seconds must be positive")
        self._webhooks = [Webhook(decode_secret(secret)) for secret in secrets]
        self.tolerance_seconds = tolerance_seconds
        self._now = now or time.time

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless ``headers`` carry a valid, current signature of ``body``."""
        msg_id = get_header(headers, ID_HEADER)
        timestamp = get_header(headers, TIMESTAMP_HEADER)
        signatures = get_header(headers, SIGNATURE_HEADER)
        present = {ID_HEADER: msg_id, TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signatures}
        missing = [name for name, value in present.items() if not value]
        if missing or msg_id is None or timestamp is None or signatures is None:
            raise SignatureError(f"missing {', '.join(missing)} header{'s' if len(missing) > 1 else ''}")
        sent_at = self._check_timestamp(timestamp)
        candidates = _v1_signatures(signatures)
        if not candidates:
            raise SignatureError(f"{SIGNATURE_HEADER} carries no v1,<base64> signature")
        try:
            text = body.decode("utf-8")  # the library signs text; a webhook body is UTF-8 JSON
        except UnicodeDecodeError as exc:
            raise SignatureError("the body is not UTF-8, so its signature cannot match") from exc
        for webhook in self._webhooks:
            expected = base64.b64decode(webhook.sign(msg_id, sent_at, text).partition(",")[2])
            # Check every candidate rather than stopping early: no timing hint of which matched.
            if any([hmac.compare_digest(expected, candidate) for candidate in candidates]):
                return
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the request (webhook-id, timestamp and body)")

    def _check_timestamp(self, value: str) -> datetime:
        if not _TIMESTAMP_PATTERN.fullmatch(value.strip()):
            raise SignatureError(f"{TIMESTAMP_HEADER} is not a Unix time in seconds")
        seconds = int(value.strip())
        drift = seconds - self._now()
        if drift < -self.tolerance_seconds:
            raise SignatureError(
                f"{TIMESTAMP_HEADER} is {int(-drift)} s old; the limit is {self.tolerance_seconds} s (replayed or delayed)"
            )
        if drift > self.tolerance_seconds:
            raise SignatureError(
                f"{TIMESTAMP_HEADER} is {int(drift)} s in the future; the limit is {self.tolerance_seconds} s (clock skew?)"
            )
        return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded ``v1`` signatures of a ``webhook-signature`` header.

    Other schemes (``v1a`` is ed25519) and malformed entries are skipped, not fatal: a
    sender may add schemes we do not use next to the one we do.
    """
    decoded: list[bytes] = []
    for entry in header.split():
        version, comma, signature = entry.partition(",")
        if version != "v1" or not comma:
            continue
        try:
            decoded.append(base64.b64decode(signature, validate=True))
        except (binascii.Error, ValueError):
            continue
    return decoded


def validate_source(source: str) -> str:
    """``source`` if it is a valid slug, else ``BadRequest``."""
    if not isinstance(source, str) or not SOURCE_PATTERN.fullmatch(source):
        raise BadRequest("source must match ^[a-z0-9][a-z0-9_-]{0,39}$ (e.g. 'trustpilot')")
    return source


def secret_name(source: str) -> str:
    """The secret holding ``source``'s signing secrets: ``GENERIC_WEBHOOK_SECRET_<SOURCE>``.

    Per source, not one shared secret: the URL's ``{source}`` is not signed, so with a
    shared secret one tool's signed request could be replayed as another source's.
    ``-`` becomes ``_`` (``app-store`` -> ``GENERIC_WEBHOOK_SECRET_APP_STORE``).
    """
    return SECRET_ENV_PREFIX + validate_source(source).upper().replace("-", "_")


def parse_secrets(configured: str) -> list[str]:
    """The secrets in a configured value: ``whsec_...`` separated by spaces or commas."""
    return [part for part in re.split(r"[\s,]+", configured) if part]


def signature_verifier(configured: str, *, name: str = "the generic webhook secret") -> StandardWebhookVerifier:
    """The verifier for a configured secrets value; ``NotConfigured`` (fail closed) if it is unusable."""
    try:
        return StandardWebhookVerifier(parse_secrets(configured))
    except ValueError as exc:
        raise NotConfigured(f"{name} is invalid: {exc}") from exc


# --- Body --------------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
HttpUrlText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048, pattern=r"^https?://\S+$")]


class _Strict(BaseModel):
    # Extra fields are ignored (a no-code mapper may send more; they stay in ``raw``).
    # Numbers are accepted for ids and strings: many tools send numeric ids.
    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True)


class GenericAuthor(_Strict):
    """Who wrote the item, as the source identifies them."""

    id: Id = Field(description="Stable id on the source; use the handle when the source has none")
    handle: str | None = Field(default=None, max_length=256, description="Username, without '@'")
    name: str | None = Field(default=None, max_length=256, description="Display name")
    followers: int | None = Field(default=None, ge=0, description="Follower count, for listening tools")
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The author's own email, when the source verified it: the helpdesk user with this email is the requester",
    )
    phone: str | None = Field(
        default=None,
        pattern=r"^\+[1-9][0-9]{6,14}$",
        description="The author's own phone number in E.164 (+<digits>), when the source verified it",
    )


class GenericAttachment(_Strict):
    """A file or image sent with the item, fetched later from ``url``."""

    type: str = Field(min_length=1, max_length=64, description="image, video, audio, file...")
    url: HttpUrlText
    mime_type: str | None = Field(default=None, max_length=256)
    caption: str | None = Field(default=None, max_length=4096)


class GenericMessage(_Strict):
    """One review, post, comment, reply, mention or direct message from any source."""

    id: Id = Field(description="The item's id on the source; unique per source")
    conversation_id: Id | None = Field(
        default=None, description="Groups items into one ticket (e.g. a review and its replies); defaults to id"
    )
    kind: Kind
    direction: Direction = Field(default=Direction.INBOUND, description="in: a customer wrote it; out: the brand did")
    title: str | None = Field(default=None, max_length=1024, description="A review's headline; shown above text")
    text: str = ""
    created_at: AwareDatetime = Field(description="RFC 3339 with an offset, e.g. 2024-05-01T09:30:00Z")
    updated_at: AwareDatetime | None = Field(default=None, description="When it was edited; required for *.updated")
    author: GenericAuthor
    account_id: Id = Field(description="The brand's page, profile or app on the source")
    parent_id: Id | None = Field(default=None, description="The id of the item this one answers")
    thread_id: Id | None = Field(default=None, description="The post, product or app the item is about")
    url: HttpUrlText | None = Field(default=None, description="Link to the item on the source")
    rating: int | None = Field(default=None, ge=1, le=5, description="Star rating, 1-5")
    attachments: list[GenericAttachment] = Field(default_factory=list, max_length=50)
    language: str | None = Field(default=None, max_length=35, description="BCP 47 tag, e.g. en-GB (kept in raw)")


class GenericDelivery(BaseModel):
    """The body of ``POST /webhooks/generic/{source}``: one Standard Webhooks event."""

    model_config = ConfigDict(
        title="socialdesk generic webhook",
        json_schema_extra={
            "description": (
                "The body of POST /webhooks/generic/{source}, signed per Standard Webhooks. "
                "type message.created/review.created adds items, message.updated/review.updated "
                "records edits (data.updated_at required); other types are ignored. "
                "data is one item or an array of items."
            )
        },
    )

    type: str = Field(min_length=1, examples=sorted(HANDLED_TYPES))
    timestamp: AwareDatetime | None = Field(default=None, description="When the event happened (informational)")
    data: GenericMessage | list[GenericMessage]


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of the body (``schemas/generic-webhook.schema.json``)."""
    schema = GenericDelivery.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def normalize_delivery(payload: Any, *, source: str) -> NormalizedBatch:
    """Turn one generic webhook body from ``source`` into canonical messages.

    ``BadRequest`` for an invalid ``source`` or a body that is not
    ``{"type": str, "data": object | array}``; an unhandled type is counted as ignored
    (one per item); an item that fails validation is quarantined.
    """
    validate_source(source)
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    event_type = payload.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise BadRequest("'type' is missing")
    data = payload.get("data")
    if isinstance(data, dict):
        items: list[Any] = [data]
    elif isinstance(data, list):
        items = data
    else:
        raise BadRequest("'data' must be a JSON object or an array of objects")
    normalizer = EventNormalizer(f"{Platform.OTHER.value}:{source}")
    if event_type not in HANDLED_TYPES:
        normalizer.batch.ignored += len(items)
        return normalizer.batch
    edited = event_type in UPDATED_TYPES
    normalizer.each(items, lambda item: NormalizedBatch(messages=[normalize_item(item, source=source, edited=edited)]))
    return normalizer.batch


def normalize_item(item: dict[str, Any], *, source: str, edited: bool = False) -> SocialMessage:
    """One ``GenericMessage`` as a ``SocialMessage`` (``ValidationError``/``ValueError`` if invalid)."""
    data = GenericMessage.model_validate(item)
    original_id = f"{source}:{data.id}"
    if edited:
        if data.updated_at is None:
            raise ValueError("updated_at is required for an update")
        message_id = f"{original_id}:edit:{int(data.updated_at.timestamp())}"
        created_at = data.updated_at
    else:
        message_id = original_id
        created_at = data.created_at
    text = f"{data.title}\n\n{data.text}" if data.title and data.text else (data.title or data.text)
    return SocialMessage(
        platform=Platform.OTHER,
        source=source,
        kind=data.kind,
        direction=data.direction,
        message_id=message_id,
        conversation_key=conversation_key(Platform.OTHER, source, data.conversation_id or data.id),
        account_id=data.account_id,
        author=Author(
            platform_id=f"{source}:{data.author.id}",
            handle=data.author.handle,
            display_name=data.author.name,
            follower_count=data.author.followers,
            email=data.author.email.lower() if data.author.email else None,
            phone=data.author.phone,
        ),
        text=text,
        created_at=created_at,
        parent_id=f"{source}:{data.parent_id}" if data.parent_id else None,
        thread_id=data.thread_id,
        permalink=data.url,
        attachments=tuple(Attachment(type=a.type, url=a.url, mime_type=a.mime_type, caption=a.caption) for a in data.attachments),
        rating=data.rating,
        edit_of=original_id if edited else None,
        raw=item,
    )


if __name__ == "__main__":
    # Regenerate the published schema: python -m chalicelib.channels.generic.webhook > schemas/generic-webhook.schema.json
    json.dump(json_schema(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
