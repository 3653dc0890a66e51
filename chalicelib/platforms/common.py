"""Helpers shared by every platform's normalizer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from chalicelib.errors import BadRequest
from chalicelib.models import NormalizedBatch, RejectedEvent

# What a malformed event raises while we pick it apart.
_EVENT_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, ValidationError)


def require_list(payload: Any, field: str) -> list[Any]:
    """``payload[field]`` as a list, or ``BadRequest`` when the body is not shaped like a delivery."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    value = payload.get(field, [])
    if not isinstance(value, list):
        raise BadRequest(f"'{field}' must be a JSON array")
    return value


class EventNormalizer:
    """Normalizes events one by one so that one malformed event neither fails the
    whole delivery (the platform would retry it forever) nor disappears: it is
    recorded as a ``RejectedEvent`` and stored in quarantine."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.batch = NormalizedBatch()

    def each(self, events: Any, normalize: Callable[[dict[str, Any]], NormalizedBatch]) -> None:
        """Apply ``normalize`` to every event of a (possibly absent) list."""
        if events is None:
            return
        if not isinstance(events, list):
            self.reject(events, "expected a JSON array of events")
            return
        for event in events:
            if not isinstance(event, dict):
                self.reject(event, "expected a JSON object")
                continue
            try:
                self.batch.extend(normalize(event))
            except _EVENT_ERRORS as exc:
                self.reject(event, f"{type(exc).__name__}: {exc}")

    def ignore(self, _reason: str) -> None:
        """Count an event type we deliberately do not handle."""
        self.batch.ignored += 1

    def reject(self, event: Any, error: str) -> None:
        """Quarantine an event we could not normalize."""
        self.batch.rejected.append(RejectedEvent(source=self.source, error=error[:500], event=event))
