"""Webhook intake: authenticate, parse, normalize, store durably, then acknowledge.

The same steps for every platform; only the verifier and the normalizer differ.
Nothing is stored before the signature is checked, and the response is sent only
after every message of the delivery is written (or found already written).

``save_batch`` is the one way anything normalized reaches the table (webhooks, Google
reviews, X polling, the Meta backfill): what DynamoDB refuses for good is quarantined
with the reason, never retried forever nor lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pydantic_core

from chalicelib.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable
from chalicelib.inbound.signatures import SignatureError
from chalicelib.models import DeliveryStatus, NormalizedBatch, RejectedEvent, SocialMessage
from chalicelib.store import StoreUnavailable, UnstorableMessages, UnstorableStatus


class Verifier(Protocol):
    """Anything with ``verify(headers, body)`` raising ``SignatureError``."""

    def verify(self, headers: Mapping[str, str], body: bytes) -> None: ...


@dataclass(frozen=True)
class IngestResult:
    """What a delivery turned into; returned to the platform as the 200 body."""

    stored: int
    duplicates: int
    statuses: int
    ignored: int
    quarantined: int

    def to_body(self) -> dict[str, Any]:
        """The JSON acknowledgement."""
        return {"ok": True, **self.__dict__}


def parse_json_body(body: bytes) -> Any:
    """Decode a JSON request body or raise ``BadRequest``."""
    if not body:
        raise BadRequest("the request body is empty")
    try:
        # pydantic's parser (in Rust, a third of the standard library's time) reads every
        # platform's JSON; what it refuses (a lone UTF-16 surrogate escape, deep nesting, UTF-16,
        # a byte-order mark) is decided by the standard library, which reads some of it.
        return pydantic_core.from_json(body, cache_strings="keys")
    except ValueError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested arrays: hostile, not a platform
        raise BadRequest("the body nests JSON too deeply") from exc


class BatchStore(Protocol):
    """The part of ``MessageStore`` that ``save_batch`` uses."""

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]: ...

    def record_status(self, status: DeliveryStatus) -> None: ...

    def quarantine(self, rejected: RejectedEvent) -> None: ...


@dataclass(frozen=True)
class SavedBatch:
    """What ``save_batch`` did: each message written or found already written, with
    whether it was new, and how many events went to quarantine."""

    saved: list[tuple[SocialMessage, bool]]
    quarantined: int

    @property
    def stored(self) -> int:
        """Messages written now."""
        return sum(1 for _, new in self.saved if new)

    @property
    def duplicates(self) -> int:
        """Messages the table already had (a redelivery, or both intake paths saw them)."""
        return len(self.saved) - self.stored


def save_batch(store: BatchStore, batch: NormalizedBatch) -> SavedBatch:
    """Store a normalized batch: its messages, its delivery receipts, and in quarantine,
    with the reason, every event the normalizer rejected and every message or receipt
    DynamoDB refused for good (a retry would be refused the same way, so it must not
    be retried forever, nor dropped).

    Raises ``StoreUnavailable`` when DynamoDB fails: retry the whole batch; what was
    already written is deduplicated.
    """
    to_quarantine = list(batch.rejected)
    refused: set[int] = set()
    try:
        flags = store.save_messages(batch.messages) if batch.messages else []
    except UnstorableMessages as exc:  # the others of the batch were written
        flags = exc.flags
        for message, reason in exc.rejected:
            refused.add(id(message))
            event = message.raw or message.model_dump(mode="json")  # the platform's own words when we have them
            to_quarantine.append(RejectedEvent(source=message.platform.value, error=reason, event=event))
    for status in batch.statuses:
        try:
            store.record_status(status)
        except UnstorableStatus as exc:
            event = status.model_dump(mode="json")
            to_quarantine.append(RejectedEvent(source=status.platform.value, error=str(exc), event=event))
    for rejected in to_quarantine:
        store.quarantine(rejected)
    saved = [(message, new) for message, new in zip(batch.messages, flags, strict=False) if id(message) not in refused]
    return SavedBatch(saved=saved, quarantined=len(to_quarantine))


def receive_webhook(
    *,
    headers: Mapping[str, str],
    body: bytes,
    verifier: Verifier,
    normalize: Callable[[Any], NormalizedBatch],
    store: BatchStore,
    max_body_bytes: int,
) -> IngestResult:
    """Handle one signed webhook delivery end to end."""
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {max_body_bytes}")
    try:
        verifier.verify(headers, body)
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from exc
    batch = normalize(parse_json_body(body))
    try:
        saved = save_batch(store, batch)
    except StoreUnavailable as exc:
        # Not acknowledged: the platform retries, and what was written is deduplicated.
        raise Unavailable(str(exc)) from exc
    return IngestResult(
        stored=saved.stored,
        duplicates=saved.duplicates,
        statuses=len(batch.statuses),
        ignored=batch.ignored,
        quarantined=saved.quarantined,
    )
