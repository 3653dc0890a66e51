"""The one DynamoDB table: the only code that reads or writes its items.

``table`` holds ``MessageStore`` (messages, conversation state, parked messages,
requester mappings, leases, quarantine) and the key builders; import from here.
"""

from chalicelib.store.table import (
    AUTHOR_INDEX,
    PERMANENT_ERRORS,
    Conversation,
    ConversationConflict,
    MessageStore,
    ParkedEntry,
    StoreUnavailable,
    UnstorableConversation,
    UnstorableMessages,
    UnstorableStatus,
    author_pk,
    condition_failed,
    conversation_pk,
    error_code,
    message_from_image,
    message_item,
    requester_key,
)

__all__ = [
    "AUTHOR_INDEX",
    "PERMANENT_ERRORS",
    "Conversation",
    "ConversationConflict",
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
    "message_from_image",
    "message_item",
    "requester_key",
]
