"""Helpers shared by every platform's normalizer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from chalicelib.channels.registry import platform_label
from chalicelib.errors import BadRequest
from chalicelib.models import Author, NormalizedBatch, Platform, RejectedEvent, SocialMessage

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

    def ignore(self, reason: str) -> None:
        """Count an event we deliberately do not handle, and say why (e.g. "read receipt")."""
        self.batch.extend(NormalizedBatch.ignoring(reason))

    def reject(self, event: Any, error: str) -> None:
        """Quarantine an event we could not normalize."""
        self.batch.rejected.append(RejectedEvent(source=self.source, error=error[:500], event=event))


# --- changes: edits and deletions of a message we may have stored ------------------------


def as_edit(message: SocialMessage, revision: str) -> SocialMessage:
    """``message`` (the original's id, the new text) as an edit of that original.

    Its id is ``<original>:edit:<revision>``: ``revision`` must be the same on every
    redelivery of one edit and differ between two edits (an edit count, an edit time).
    """
    original = message.message_id
    return message.model_copy(update={"message_id": f"{original}:edit:{revision}", "edit_of": original})


def as_deletion(message: SocialMessage) -> SocialMessage:
    """``message`` (the original's id) as its author's deletion of it: ``<original>:deleted``."""
    original = message.message_id
    update = {"message_id": f"{original}:deleted", "edit_of": original, "deleted": True, "text": ""}
    return message.model_copy(update=update)


# --- authors and texts for what a platform sends without words ----------------------------

UNKNOWN_AUTHOR_ID = "unknown"


def unknown_author(platform: Platform) -> Author:
    """The author of a notification that names none (older Graph API shapes, mentions):
    one clear placeholder, so the words are kept rather than quarantined."""
    return Author(platform_id=UNKNOWN_AUTHOR_ID, display_name=f"Unknown {platform_label(platform)} user")


def location_text(latitude: Any, longitude: Any, *, name: Any = None, address: Any = None) -> str:
    """A shared location as agents read it: place, coordinates and a map link."""
    place = ", ".join(str(part) for part in (name, address) if part)
    where = f"{place} ({latitude}, {longitude})" if place else f"{latitude}, {longitude}"
    return f"Shared a location: {where} https://www.google.com/maps/search/?api=1&query={latitude}%2C{longitude}"


def not_passed_on(platform: Platform, detail: str) -> str:
    """The text of a message the platform did not pass on to apps (an unsupported type)."""
    return f"[{platform_label(platform)} did not pass this message on: {detail}]"


def joined(parts: Iterable[str | None], separator: str = "\n") -> str:
    """The non-empty parts, joined."""
    return separator.join(part for part in parts if part)
