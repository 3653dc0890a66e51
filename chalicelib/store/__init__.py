"""The one DynamoDB table: the only code that reads or writes its items.

``ingest`` holds what a webhook writes (``IngestStore``: messages, delivery receipts,
quarantine; the message item and its keys); ``table`` holds ``MessageStore``, which extends
it with everything else (conversation state, parked messages, requester mappings, leases,
bulk intents) and the other key builders; ``ledger`` holds the one claim/complete/release
ledger and the owner leases (replies, fan-out jobs, agent events, leases, the crisis lock).
Import from here: the names of ``table`` are loaded on first use, so a webhook's cold start
does not load the sync's side of the table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from chalicelib.store.ingest import (
    IngestStore,
    StoreUnavailable,
    UnstorableMessages,
    UnstorableStatus,
    author_pk,
    condition_failed,
    conversation_pk,
    error_code,
    message_fields,
    message_item,
    stored_at,
)

if TYPE_CHECKING:
    from chalicelib.store.table import (
        AUTHOR_INDEX,
        PERMANENT_ERRORS,
        Conversation,
        ConversationConflict,
        MessageStore,
        ParkedEntry,
        UnstorableConversation,
        message_from_image,
        requester_key,
    )

# Names of ``table``, imported when first asked for.
_IN_TABLE = frozenset(
    {
        "AUTHOR_INDEX",
        "PERMANENT_ERRORS",
        "Conversation",
        "ConversationConflict",
        "MessageStore",
        "ParkedEntry",
        "UnstorableConversation",
        "message_from_image",
        "requester_key",
    }
)


def __getattr__(name: str) -> Any:
    if name in _IN_TABLE:
        return getattr(importlib.import_module("chalicelib.store.table"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AUTHOR_INDEX",
    "PERMANENT_ERRORS",
    "Conversation",
    "ConversationConflict",
    "IngestStore",
    "MessageStore",
    "ParkedEntry",
    "StoreUnavailable",
    "UnstorableConversation",
    "UnstorableMessages",
    "UnstorableStatus",
    "author_pk",
    "condition_failed",
    "conversation_pk",
    "error_code",
    "message_fields",
    "message_from_image",
    "message_item",
    "requester_key",
    "stored_at",
]
