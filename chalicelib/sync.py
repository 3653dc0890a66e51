"""Ticket sync: turns stored inbound messages into helpdesk tickets and comments.

Fed by the table's stream (the outbox). For each inbound message:

* the first message of a conversation opens a ticket, later ones become comments
  authored by the same requester;
* a message already on the ticket (a stream record seen twice) is skipped, using the
  ids remembered on the conversation item;
* a message the helpdesk accepted but whose bookkeeping write then failed (DynamoDB
  throttled for longer than the sync waits) is never sent twice: the sync gives up on
  that write only after ``RECORD_PATIENCE_SECONDS`` of backoff, so when Lambda retries
  the batch -- in the same execution environment or a fresh one -- the record is at
  least that old, and a record that old is first looked for on its ticket. Fresh
  records, the steady state, cost no lookup;
* transient helpdesk failures are retried a bounded number of times, then the
  message is *parked* in the dead-letter queue rather than raised: raising would
  block the shard. Once a conversation has a parked message, its later messages
  are parked behind it, so nothing overtakes it into the ticket; the redrive
  replays them in order.

Attachments: with an ``AttachmentFetcher`` and a helpdesk that ``supports_uploads``,
a message's files are downloaded and uploaded to the helpdesk *once per delivery*
(lazily, when the message is about to become a comment), and every retry of that
delivery sends the same upload tokens and notes: ticket creation carries an
idempotency key, and the same key with another body is refused. A file that cannot be
fetched or stored becomes a note under the comment text; the text always goes through.
A redrive is a new delivery (new downloads, new tokens): before opening a ticket it
first looks for the conversation's ticket that already has the message, and an
``IdempotencyConflict`` (the key was used with other tokens) is answered the same way.

This module knows neither HTTP nor boto3: it talks to a ``Helpdesk``, a
``MessageStore`` and a ``DeadLetterQueue`` passed in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from chalicelib.attachments import problem_note
from chalicelib.helpdesk.base import (
    Helpdesk,
    HelpdeskError,
    HelpdeskRejected,
    HelpdeskUnavailable,
    IdempotencyConflict,
    TicketClosed,
    TicketRef,
)
from chalicelib.helpdesk.formatting import change_note
from chalicelib.models import Direction, SocialMessage
from chalicelib.policy import TicketPolicy
from chalicelib.store import Conversation, ConversationConflict, StoreUnavailable, message_from_image, requester_key

if TYPE_CHECKING:
    from chalicelib.attachments import AttachmentFetcher, FileToAttach
    from chalicelib.deadletter import DeadLetterQueue
    from chalicelib.store import MessageStore

MAX_BACKOFF_SECONDS = 30.0
_RECORD_ATTEMPTS = 8
# After the helpdesk accepted a message, its bookkeeping write is given up only after
# this much backoff; a stream record older than this may have been delivered already.
RECORD_PATIENCE_SECONDS = 60.0


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


def idempotency_key(conversation_key: str, epoch: int, message_id: str, variant: str = "") -> str:
    """The helpdesk idempotency key for opening a conversation's ``epoch``-th ticket.

    ``variant`` (normally empty) gives a request of its own a key of its own, after the
    plain key turned out to be taken by a request that left no ticket with the message.
    """
    seed = f"{conversation_key}\n{epoch}\n{message_id}" + (f"\n{variant}" if variant else "")
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"socialdesk-{digest[:48]}"


class _FilesForDelivery:
    """A message's files, fetched and uploaded at most once per ``sync_message`` call.

    ``extras()`` are the keyword arguments for ``open_ticket``/``append_message``:
    empty when nothing is to be attached (no fetcher, a helpdesk without uploads, no
    attachments), else ``uploads`` and ``problems``. Computed on first use and then
    kept, so every retry of the delivery sends exactly the same request.
    """

    def __init__(self, sync: TicketSync, message: SocialMessage) -> None:
        self._sync, self._message = sync, message
        self._extras: dict[str, Any] | None = None

    def extras(self) -> dict[str, Any]:
        if self._extras is None:
            self._extras = self._sync._prepare_files(self._message)
        return self._extras


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
        clock: Callable[[], float] = time.time,
        policy: TicketPolicy | None = None,
        fetcher: AttachmentFetcher | None = None,
    ) -> None:
        if backoff_seconds <= 0:
            raise ValueError("backoff_seconds must be positive")
        self.store = store
        self.fetcher = fetcher
        self.policy = policy or TicketPolicy()
        self.helpdesk = helpdesk
        self.dead_letters = dead_letters
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._clock = clock  # epoch seconds; ``sleep`` and ``clock`` must agree (tests fake both)

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
        for message, stored_at in inbound_in_sync_order(records):
            if remaining_seconds is not None and remaining_seconds() < reserve_seconds:
                raise SyncInterrupted("close to the Lambda timeout; the batch will be retried")
            report.add(self.sync_message(message, received_at=stored_at))
        return report

    def sync_message(self, message: SocialMessage, *, redrive: bool = False, received_at: float | None = None) -> Outcome:
        """Deliver one message to its ticket, or park it. ``redrive`` replays a parked one.

        ``received_at`` (epoch seconds) is when the message was stored: a message older
        than ``RECORD_PATIENCE_SECONDS`` may have reached the helpdesk in an attempt
        whose bookkeeping failed, so it is looked for before it is sent.
        """
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
        # A replayed message, an old one (an earlier attempt may have delivered it and
        # failed to record it), or one whose last attempt may have reached the helpdesk
        # (timeout or dropped connection after sending) is looked for on its ticket
        # before it is sent again. A retried ticket creation needs no check: it carries
        # an idempotency key (and the same uploads); a replayed or old one is looked for
        # by ``_open_ticket`` first, as the key may have expired or its uploads changed.
        maybe_sent_before = redrive or (received_at is not None and self._clock() - received_at >= RECORD_PATIENCE_SECONDS)
        look_first = maybe_sent_before
        # Fetched and uploaded once, on first need: every retry below reuses the tokens.
        files = _FilesForDelivery(self, message)
        for attempt in range(self.attempts):
            try:
                if look_first:
                    found = self._already_on_ticket(message, conversation)
                    if found is not None:
                        return found
                return self._deliver(message, conversation, files, look_first=maybe_sent_before)
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

    def _deliver(
        self, message: SocialMessage, conversation: Conversation, files: _FilesForDelivery, *, look_first: bool = False
    ) -> Outcome:
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
                ticket = self.helpdesk.append_message(conversation.ticket_id, message, requester, **files.extras())
            except TicketClosed:
                follow_up_of = conversation.ticket_id
            else:
                self._record(message, conversation, ticket, requester, epoch=None)
                return Outcome.COMMENT_ADDED
        elif has_ticket:
            follow_up_of = conversation.ticket_id
        epoch = conversation.epoch + 1
        ticket = self._open_ticket(message, requester, epoch, follow_up_of, files, look_first=look_first)
        self._record(message, conversation, ticket, requester, epoch=epoch)
        self._point_ticket(message, ticket)
        return Outcome.TICKET_OPENED

    def _open_ticket(
        self,
        message: SocialMessage,
        requester: str,
        epoch: int,
        follow_up_of: str | None,
        files: _FilesForDelivery,
        *,
        look_first: bool,
    ) -> TicketRef:
        """Open the ticket, unless an earlier delivery of this message already did.

        A redrive (or a retry of an old record) may replay a creation that reached the
        helpdesk hours ago: the idempotency key may have expired, and the files are
        uploaded anew (new tokens, so a new body for the same key). So it first looks for
        the conversation's ticket that has the message, and so does an ``IdempotencyConflict``.
        """
        if look_first:
            found = self.helpdesk.find_ticket_with_message(message.conversation_key, message)
            if found is not None:
                return found
        extras = files.extras()
        key = idempotency_key(message.conversation_key, epoch, message.message_id)
        try:
            return self.helpdesk.open_ticket(message, requester, idempotency_key=key, follow_up_of=follow_up_of, **extras)
        except IdempotencyConflict:
            found = self.helpdesk.find_ticket_with_message(message.conversation_key, message)
            if found is not None:
                return found
            # The key is held by a request that left no ticket with this message (it
            # failed, or its ticket was deleted): this body gets a key of its own, still
            # stable across this delivery's retries.
            variant = json.dumps(extras, sort_keys=True, default=list)
            key = idempotency_key(message.conversation_key, epoch, message.message_id, variant)
            return self.helpdesk.open_ticket(message, requester, idempotency_key=key, follow_up_of=follow_up_of, **extras)

    # --- attachments ---------------------------------------------------------------

    def _prepare_files(self, message: SocialMessage) -> dict[str, Any]:
        """Fetch the message's files and upload them to the helpdesk; never raises.

        A file that cannot be fetched or stored becomes a note (``problems``)."""
        if self.fetcher is None or not self.helpdesk.supports_uploads or not message.attachments:
            return {}
        fetched = self.fetcher.fetch(message)
        tokens: list[str] = []
        problems = list(fetched.problems)
        helpdesk_label = self.helpdesk.name.title()
        for file in fetched.files:
            try:
                tokens.extend(self._upload(file))
            except HelpdeskRejected:
                problems.append(problem_note(message, file.kind, f"{helpdesk_label} did not accept the file"))
            except HelpdeskError:
                problems.append(problem_note(message, file.kind, f"{helpdesk_label} could not store the file in time"))
        return {"uploads": tuple(tokens), "problems": tuple(problems)}

    def _upload(self, file: FileToAttach) -> list[str]:
        """Upload one file, retrying transient failures like any helpdesk call."""
        for attempt in range(self.attempts):
            try:
                return self.helpdesk.upload([file])
            except HelpdeskUnavailable as exc:
                if attempt + 1 >= self.attempts:
                    raise
                self._sleep(min(exc.retry_after or self.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS))
        return []

    def _point_ticket(self, message: SocialMessage, ticket: TicketRef) -> None:
        """``TICKET#freshdesk#<id>`` -> this conversation: Freshdesk's automation webhooks find it
        in one read (its tickets have no external_id). Best effort: they can find it without."""
        if self.helpdesk.name != "freshdesk":
            return
        from chalicelib.helpdesk.freshdesk_events import record_ticket_pointer

        try:
            record_ticket_pointer(self.store, self.helpdesk.name, ticket.ticket_id, message)
        except Exception:  # the delivery is recorded; the webhook has a slower way to the conversation
            pass

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

    def _already_on_ticket(self, message: SocialMessage, conversation: Conversation) -> Outcome | None:
        """If the conversation's ticket already has the message, record that and say how
        it got there; None when it does not (or there is no ticket yet)."""
        if conversation.ticket_id is None or conversation.helpdesk != self.helpdesk.name:
            return None
        if not self.helpdesk.ticket_has_message(conversation.ticket_id, message):
            return None
        ticket = TicketRef(conversation.ticket_id, conversation.ticket_status or "open")
        requester = None if message.edit_of is not None else self._requester(message, conversation)
        self._record(message, conversation, ticket, requester, epoch=None)
        return Outcome.NOTE_ADDED if requester is None else Outcome.COMMENT_ADDED

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

        self._update_conversation(conversation, apply, delivered=True)

    def _park(self, message: SocialMessage, reason: str) -> Outcome:
        # Queue first: if the bookkeeping write then fails, the stream retries the
        # record and parks it again; the redrive tolerates the extra queue entry.
        self.dead_letters.park(message.conversation_key, message.message_id, reason)

        def apply(current: Conversation) -> None:
            if message.message_id not in current.parked:
                current.parked.append(message.message_id)

        self._update_conversation(self.store.get_conversation(message.conversation_key), apply)
        return Outcome.PARKED

    def _update_conversation(
        self, conversation: Conversation, apply: Callable[[Conversation], None], *, delivered: bool = False
    ) -> None:
        """Apply ``apply`` to the conversation and save it, re-reading it on conflicts
        and waiting out throttling (of the write and of the re-read alike).

        When ``delivered`` (the helpdesk already has the message), it gives up only after
        ``RECORD_PATIENCE_SECONDS`` of backoff: the batch is then retried, and the record
        is old enough to be looked for on its ticket instead of being sent again."""
        current: Conversation | None = conversation
        conflicts = failures = 0
        waited = 0.0
        while True:
            try:
                if current is None:
                    current = self.store.get_conversation(conversation.key)
                apply(current)
                self.store.save_conversation(current)
                return
            except ConversationConflict:
                conflicts += 1
                if conflicts >= _RECORD_ATTEMPTS:
                    raise ConversationConflict(f"conversation {conversation.key} kept changing while being recorded")
            except StoreUnavailable:
                failures += 1
                if failures >= _RECORD_ATTEMPTS and (not delivered or waited >= RECORD_PATIENCE_SECONDS):
                    raise
                wait = min(self.backoff_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                self._sleep(wait)
                waited += wait
            current = None


def inbound_in_sync_order(records: Iterable[dict[str, Any]]) -> list[tuple[SocialMessage, float | None]]:
    """The batch's new inbound messages (with when each was stored), in the order the
    sync delivers them: stream order, except that a conversation's messages within the
    batch go in platform-time order. Platforms reorder deliveries and a multi-message
    delivery is written in parallel, so the stream alone may put a reply before the
    message it answers; across batches, a message already on its ticket stays first."""
    found: list[tuple[SocialMessage, float | None]] = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        message = message_from_image((record.get("dynamodb") or {}).get("NewImage") or {})
        if message is not None and message.direction is Direction.INBOUND:
            found.append((message, received_at(record)))
    first_seen: dict[str, int] = {}
    for index, (message, _) in enumerate(found):
        first_seen.setdefault(message.conversation_key, index)
    # Stable: messages with the same timestamp keep their stream order.
    return sorted(found, key=lambda pair: (first_seen[pair[0].conversation_key], pair[0].created_at))


def received_at(record: dict[str, Any]) -> float | None:
    """When the stream record's message was stored (epoch seconds): the item's own
    ``received_at``, else the stream's ``ApproximateCreationDateTime``."""
    change = record.get("dynamodb") or {}
    stored = ((change.get("NewImage") or {}).get("received_at") or {}).get("N")
    value = stored if stored is not None else change.get("ApproximateCreationDateTime")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
