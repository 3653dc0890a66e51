"""Redrive: bring parked messages back from the dead-letter queue, in order, once.

Run it after the cause is fixed (``make redrive`` locally, ``make redrive STAGE=prod``
against AWS), or let the scheduled redrive do it. Each conversation's parked
messages are replayed in the order they were parked; a message that already
reached its ticket is only removed from the queue, never sent again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.sync import DELIVERED, Outcome

if TYPE_CHECKING:
    from chalicelib.deadletter import DeadLetterQueue, ParkedMessage
    from chalicelib.store import MessageStore
    from chalicelib.sync import TicketSync


@dataclass
class RedriveReport:
    """What one redrive pass did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    received: int = 0

    @property
    def delivered(self) -> int:
        """Messages that reached their ticket in this pass."""
        return sum(self.outcomes[o.value] for o in DELIVERED)


def redrive(
    store: MessageStore,
    sync: TicketSync,
    dead_letters: DeadLetterQueue,
    *,
    max_batches: int = 100,
    visibility_timeout: int = 60,
) -> RedriveReport:
    """Replay parked messages until the queue is empty or ``max_batches`` batches were read."""
    report = RedriveReport()
    by_conversation: dict[str, list[ParkedMessage]] = {}
    for _ in range(max_batches):
        batch = dead_letters.receive(max_messages=10, visibility_timeout=visibility_timeout)
        if not batch:
            break
        report.received += len(batch)
        for parked in batch:
            by_conversation.setdefault(parked.conversation_key, []).append(parked)

    for key, entries in by_conversation.items():
        conversation = store.get_conversation(key)
        # Replay in parked order; the conversation item is the source of truth for it.
        for message_id in list(conversation.parked):
            message = store.get_message(key, message_id)
            if message is None:  # expired by TTL or erased on request: nothing left to send
                outcome = Outcome.DUPLICATE
                _forget_parked(store, key, message_id)
            else:
                outcome = sync.sync_message(message, redrive=True)
            report.outcomes[outcome.value] += 1
            if outcome not in DELIVERED and outcome is not Outcome.DUPLICATE:
                break
        # Queue entries whose message is no longer parked (delivered now or earlier,
        # or a duplicate entry) are done; the rest reappear after the visibility timeout.
        still_parked = set(store.get_conversation(key).parked)
        for entry in entries:
            if entry.message_id not in still_parked:
                dead_letters.delete(entry)
    return report


def _forget_parked(store: MessageStore, key: str, message_id: str) -> None:
    conversation = store.get_conversation(key)
    if message_id in conversation.parked:
        conversation.parked.remove(message_id)
        store.save_conversation(conversation)
