"""Webhook intake: authenticate, parse, normalize, store durably, then acknowledge.

The same steps for every platform; only the verifier and the normalizer differ.
Nothing is stored before the signature is checked, and the response is sent only
after every message of the delivery is written (or found already written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chalicelib.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable
from chalicelib.models import NormalizedBatch, RejectedEvent
from chalicelib.signatures import SignatureError
from chalicelib.store import MessageStore, StoreUnavailable, UnstorableMessages, UnstorableStatus


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
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # thousands of nested arrays: hostile, not a platform
        raise BadRequest("the body nests JSON too deeply") from exc


def receive_webhook(
    *,
    headers: Mapping[str, str],
    body: bytes,
    verifier: Verifier,
    normalize: Callable[[Any], NormalizedBatch],
    store: MessageStore,
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
        try:
            flags = store.save_messages(batch.messages)
        except UnstorableMessages as refused:
            # Acknowledged and kept in quarantine with the reason: a retry would fail the same way.
            flags = refused.flags
            for message, reason in refused.rejected:
                batch.rejected.append(RejectedEvent(source=message.platform.value, error=reason, event=message.raw))
        for status in batch.statuses:
            try:
                store.record_status(status)
            except UnstorableStatus as refused:  # quarantined like a refused message
                event = status.model_dump(mode="json")
                batch.rejected.append(RejectedEvent(source=status.platform.value, error=str(refused), event=event))
        for rejected in batch.rejected:
            store.quarantine(rejected)
    except StoreUnavailable as exc:
        # Not acknowledged: the platform retries, and what was written is deduplicated.
        raise Unavailable(str(exc)) from exc
    stored = sum(flags)
    return IngestResult(
        stored=stored,
        duplicates=len(flags) - stored,
        statuses=len(batch.statuses),
        ignored=batch.ignored,
        quarantined=len(batch.rejected),
    )

