"""In-memory stand-ins for the ticket sync's store and dead-letter queue (pure unit tests).

They keep the semantics the sync relies on -- optimistic versions, parked entries in
parking order, one entry per parked message -- so a unit test exercises the sync's real
decisions. Integration tests use the real ``MessageStore`` against moto instead.
"""

from __future__ import annotations

import copy
from typing import Any

from chalicelib.models import SocialMessage
from chalicelib.store import Conversation, ConversationConflict, ParkedEntry


class MemoryStore:
    """The conversation side of ``chalicelib.store.MessageStore``, in memory."""

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.entries: dict[str, dict[int, ParkedEntry]] = {}
        self.messages: dict[tuple[str, str], SocialMessage] = {}
        self.requesters: dict[tuple[str, str, str], str] = {}
        self.deleted: list[tuple[str, str]] = []

    def get_conversation(self, key: str) -> Conversation:
        return copy.deepcopy(self.conversations.get(key) or Conversation(key))

    def _check_version(self, conversation: Conversation) -> None:
        stored = self.conversations.get(conversation.key)
        if (stored.version if stored else 0) != conversation.version:
            raise ConversationConflict(conversation.key)

    def save_conversation(self, conversation: Conversation, *, unpark: ParkedEntry | None = None) -> None:
        if unpark is not None:
            self.remove_parked(unpark)
        self._check_version(conversation)
        conversation.version += 1
        self.conversations[conversation.key] = copy.deepcopy(conversation)

    def park(self, conversation: Conversation, message_id: str, reason: str, *, attempted: bool = True) -> ParkedEntry | None:
        if self.is_parked(conversation.key, message_id):
            return None
        entry = ParkedEntry(conversation.key, conversation.park_seq, message_id, reason, "2026-01-01T00:00:00Z",
                            attempted=attempted)
        conversation.parked += 1
        conversation.park_seq += 1
        try:
            self.save_conversation(conversation)
        except ConversationConflict:
            conversation.parked -= 1
            conversation.park_seq -= 1
            raise
        self.entries.setdefault(conversation.key, {})[entry.seq] = entry
        return entry

    def set_aside(self, conversation: Conversation, entry: ParkedEntry) -> ParkedEntry:
        aside = ParkedEntry(entry.conversation_key, entry.seq, entry.message_id, entry.reason, entry.parked_at, aside=True)
        conversation.parked -= 1
        conversation.aside += 1
        self.save_conversation(conversation)
        self.entries[conversation.key][entry.seq] = aside
        return aside

    def remove_parked(self, entry: ParkedEntry) -> None:
        self.entries.get(entry.conversation_key, {}).pop(entry.seq, None)

    def parked_entries(self, key: str, *, aside: bool = False, limit: int = 25) -> list[ParkedEntry]:
        found = sorted(self.entries.get(key, {}).values(), key=lambda e: e.seq)
        return [e for e in found if e.aside == aside][:limit]

    def parked_head(self, key: str) -> ParkedEntry | None:
        found = self.parked_entries(key, limit=1)
        return found[0] if found else None

    def is_parked(self, key: str, message_id: str) -> bool:
        return any(e.message_id == message_id for e in self.entries.get(key, {}).values())

    def find_requester(self, helpdesk: str, platform: str, author_id: str) -> str | None:
        return self.requesters.get((helpdesk, platform, author_id))

    def save_requester(self, helpdesk: str, platform: str, author_id: str, user_id: str) -> None:
        self.requesters[(helpdesk, platform, author_id)] = user_id

    def get_message(self, key: str, message_id: str) -> SocialMessage | None:
        return self.messages.get((key, message_id))

    def mark_deleted(self, key: str, message_id: str) -> None:
        self.deleted.append((key, message_id))


class MemoryQueue:
    """``chalicelib.sync.deadletter.DeadLetterQueue``'s ``park``, recording the notices."""

    def __init__(self) -> None:
        self.parked: list[tuple[str, str, str]] = []

    def park(self, conversation_key: str, message_id: str, reason: str, **_: Any) -> None:
        self.parked.append((conversation_key, message_id, reason))
