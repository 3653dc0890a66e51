"""Ticket sync: turns stored inbound messages into helpdesk tickets and comments.

Fed by the table's stream (the outbox). For each inbound message:

* the first message of a conversation opens a ticket, later ones become comments
  authored by the same requester;
* a message already on the ticket (a stream record seen twice) is skipped, using the
  ids remembered on the conversation item;
* transient helpdesk failures are retried a bounded number of times, then the
  message is *parked* in the dead-letter queue rather than raised: raising would
  block the shard. Once a conversation has a parked message, its later messages
  are parked behind it, so nothing overtakes it into the ticket; the redrive
  replays them in order.

This module knows neither HTTP nor boto3: it talks to a ``Helpdesk``, a
``MessageStore`` and a ``DeadLetterQueue`` passed in.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesk.base import Helpdesk, HelpdeskRejected, HelpdeskUnavailable, TicketClosed, TicketRef
from chalicelib.helpdesk.formatting import change_note
from chalicelib.models import Direction, SocialMessage
from chalicelib.policy import TicketPolicy
from chalicelib.store import Conversation, ConversationConflict, message_from_image, requester_key

if TYPE_CHECKING:
    from chalicelib.deadletter import DeadLetterQueue
    from chalicelib.store import MessageStore

MAX_BACKOFF_SECONDS = 30.0
_RECORD_ATTEMPTS = 8


class Outcome(str, Enum):
    """What happened to one message."""

    TICKET_OPENED = "ticket_opened"
    COMMENT_ADDED = "comment_added"
    NOTE_ADDED = "note_added"  # an edit or deletion, noted on the ticket for agents
    STORED_ONLY = "stored_only"  # needs no agent (praise, a change to something never ticketed)
    DUPLICATE = "duplicate"  # already on the ticket, or already parked
    PARKED = "parked"
    WAITING = "waiting"  # redrive: an earlier parked message of the conversation must go first
    STILL_FAILING = "still_failing"  # redrive: the helpdesk still refuses it; it stays parked


DELIVERED = frozenset({Outcome.TICKET_OPENED, Outcome.COMMENT_ADDED, Outcome.NOTE_ADDED, Outcome.STORED_ONLY})


class SyncInterrupted(Exception):
    """Stopped before the Lambda timeout; the batch is retried and finished ones are skipped."""


@dataclass
class SyncReport:
    """Counts of outcomes over a batch."""

    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.outcomes[outcome.value] += 1


def idempotency_key(conversation_key: str, epoch: int, message_id: str) -> str:
    """The helpdesk idempotency key for opening a conversation's ``epoch``-th ticket."""
    digest = hashlib.sha256(f"{conversation_key}\n{epoch}\n{message_id}".encode()).hexdigest()
    return f"socialdesk-{digest[:48]}"


class TicketSync:
    """Delivers stored messages to a helpdesk exactly once, in conversation order."""

    def __init__(
        self,
        store: MessageStore,
        helpdesk: Helpdesk,
        dead_letters: DeadLetterQueue,
        *,
        attempts: int = 3,
        backoff_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        policy: TicketPolicy | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or TicketPolicy()
        self.helpdesk = helpdesk
        self.dead_letters = dead_letters
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep

    # --- entry points -------------------------------------------------------------

    def sync_stream_records(
        self,
        records: Iterable[dict[str, Any]],
        *,
        remaining_seconds: Callable[[], float] | None = None,
        reserve_seconds: float = 20.0,
    ) -> SyncReport:
        """Sync every new inbound message in a batch of DynamoDB stream records."""
        report = SyncReport()
        for record in records:
            if record.get("eventName") != "INSERT":
                continue
            message = message_from_image((record.get("dynamodb") or {}).get("NewImage") or {})
            if message is None or message.direction is not Direction.INBOUND:
                continue
            if remaining_seconds is not None and remaining_seconds() < reserve_seconds:
                raise SyncInterrupted("close to the Lambda timeout; the batch will be retried")
            report.add(self.sync_message(message))
        return report

    def sync_message(self, message: SocialMessage, *, redrive: bool = False) -> Outcome:
        """Deliver one message to its ticket, or park it. ``redrive`` replays a parked one."""
        conversation = self.store.get_conversation(message.conversation_key)
        if message.message_id in conversation.synced:
            return Outcome.DUPLICATE
        if conversation.parked:
            head = conversation.parked[0]
            if redrive and head != message.message_id:
                return Outcome.WAITING
            if not redrive:
                if message.message_id in conversation.parked:
                    return Outcome.DUPLICATE
                return self._park(message, f"waiting behind parked message {head}")

        error: Exception | None = None
        # A replayed message, or one whose last attempt may have reached the helpdesk
        # (timeout or dropped connection after sending), is looked for on its ticket
        # before it is sent again. Ticket creation needs no check: it carries an
        # idempotency key.
        look_first = redrive
        for attempt in range(self.attempts):
            try:
                if look_first and self._already_on_ticket(message, conversation):
                    return Outcome.COMMENT_ADDED
                return self._deliver(message, conversation)
            except HelpdeskUnavailable as exc:
                error = exc
                look_first = look_first or exc.maybe_applied
                if attempt + 1 < self.attempts:
                    self._sleep(min(exc.retry_after or self.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS))
            except HelpdeskRejected as exc:
                error = exc
                break
        if redrive:
            return Outcome.STILL_FAILING
        return self._park(message, f"{type(error).__name__}: {error}")

    # --- delivery ------------------------------------------------------------------

    def _deliver(self, message: SocialMessage, conversation: Conversation) -> Outcome:
        has_ticket = conversation.ticket_id is not None and conversation.helpdesk == self.helpdesk.name
        if has_ticket and message.edit_of is not None:
            return self._note_change(message, conversation)
        if not has_ticket and not self.policy.opens_ticket(message):
            # Nothing written: a redelivered record reaches the same decision again.
            return Outcome.STORED_ONLY
        requester = self._requester(message, conversation)
        follow_up_of: str | None = None
        if has_ticket and not self._needs_new_ticket(conversation, message):
            assert conversation.ticket_id is not None
            try:
                ticket = self.helpdesk.append_message(conversation.ticket_id, message, requester)
            except TicketClosed:
                follow_up_of = conversation.ticket_id
            else:
                self._record(message, conversation, ticket, requester, epoch=None)
                return Outcome.COMMENT_ADDED
        elif has_ticket:
            follow_up_of = conversation.ticket_id
        epoch = conversation.epoch + 1
        ticket = self.helpdesk.open_ticket(
            message,
            requester,
            idempotency_key=idempotency_key(message.conversation_key, epoch, message.message_id),
            follow_up_of=follow_up_of,
        )
        self._record(message, conversation, ticket, requester, epoch=epoch)
        return Outcome.TICKET_OPENED

    def _note_change(self, message: SocialMessage, conversation: Conversation) -> Outcome:
        """An edit or deletion of a message already on the ticket: an internal note
        with the new text, so agents see what changed (the customer comment stays)."""
        assert conversation.ticket_id is not None
        try:
            ticket = self.helpdesk.add_note(conversation.ticket_id, message, change_note(message))
        except TicketClosed:
            return Outcome.STORED_ONLY  # nobody works a closed ticket; the change stays stored
        if message.deleted and message.edit_of:
            self.store.mark_deleted(message.conversation_key, message.edit_of)
        self._record(message, conversation, ticket, None, epoch=None)
        return Outcome.NOTE_ADDED

    def _already_on_ticket(self, message: SocialMessage, conversation: Conversation) -> bool:
        if conversation.ticket_id is None or conversation.helpdesk != self.helpdesk.name:
            return False
        if not self.helpdesk.ticket_has_message(conversation.ticket_id, message):
            return False
        ticket = TicketRef(conversation.ticket_id, conversation.ticket_status or "open")
        requester = self._requester(message, conversation)
        self._record(message, conversation, ticket, requester, epoch=None)
        return True

    @staticmethod
    def _needs_new_ticket(conversation: Conversation, message: SocialMessage) -> bool:
        # A closed ticket takes no comments. A solved one is reopened by a comment,
        # except in private chats, where a message after "solved" starts a new request.
        return conversation.ticket_status == "closed" or (message.is_private and conversation.ticket_status == "solved")

    def _requester(self, message: SocialMessage, conversation: Conversation) -> str:
        # Known on this conversation, else on another one of the author's (one
        # index lookup), else created in the helpdesk; recorded with the delivery.
        key = requester_key(self.helpdesk.name, message.platform.value, message.author.platform_id)
        known = conversation.requesters.get(key) or self.store.find_requester(
            self.helpdesk.name, message.platform.value, message.author.platform_id
        )
        return known or self.helpdesk.ensure_requester(message.platform, message.author)

    # --- bookkeeping ---------------------------------------------------------------

    def _record(
        self,
        message: SocialMessage,
        conversation: Conversation,
        ticket: TicketRef,
        requester: str | None,
        *,
        epoch: int | None,
    ) -> None:
        """Remember the delivery on the conversation. The helpdesk call is never
        repeated here: on a write conflict only the bookkeeping is re-applied."""

        def apply(current: Conversation) -> None:
            current.helpdesk = self.helpdesk.name
            current.ticket_id = ticket.ticket_id
            current.ticket_status = ticket.status
            if requester is not None:
                if epoch is not None or current.requester_id is None:
                    current.requester_id = requester  # the ticket's requester
                key = requester_key(self.helpdesk.name, message.platform.value, message.author.platform_id)
                current.requesters[key] = requester
            if epoch is not None:
                current.epoch = max(current.epoch, epoch)
            current.remember_synced(message.message_id)
            if message.message_id in current.parked:
                current.parked.remove(message.message_id)

        self._update_conversation(conversation, apply)

    def _park(self, message: SocialMessage, reason: str) -> Outcome:
        # Queue first: if the bookkeeping write then fails, the stream retries the
        # record and parks it again; the redrive tolerates the extra queue entry.
        self.dead_letters.park(message.conversation_key, message.message_id, reason)

        def apply(current: Conversation) -> None:
            if message.message_id not in current.parked:
                current.parked.append(message.message_id)

        self._update_conversation(self.store.get_conversation(message.conversation_key), apply)
        return Outcome.PARKED

    def _update_conversation(self, conversation: Conversation, apply: Callable[[Conversation], None]) -> None:
        current = conversation
        for _ in range(_RECORD_ATTEMPTS):
            apply(current)
            try:
                self.store.save_conversation(current)
                return
            except ConversationConflict:
                current = self.store.get_conversation(conversation.key)
        raise ConversationConflict(f"conversation {conversation.key} kept changing while being recorded")
