"""Ticket sync: turns stored inbound messages into helpdesk tickets and comments.

Fed by the table's stream (the outbox). The first message of a conversation opens a
ticket; later ones become comments authored by the same requester; edits and
deletions become internal notes. Every message reaches its ticket exactly once, in
conversation order, whatever the stream, the helpdesk or an operator does. How that
is guaranteed -- guarded writes, the "sending" marker, parking, the redrive -- is in
``docs/sync.md``.

This module knows neither HTTP nor boto3: it talks to a ``Helpdesk``, a
``MessageStore`` and a ``DeadLetterQueue`` passed in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesks.base import (
    Helpdesk,
    HelpdeskError,
    HelpdeskRejected,
    HelpdeskUnavailable,
    IdempotencyConflict,
    RequesterGone,
    StaleTicket,
    TicketClosed,
    TicketGone,
    TicketRef,
    TicketRouting,
)
from chalicelib.helpdesks.formatting import change_note
from chalicelib.models import Author, Direction, SocialMessage
from chalicelib.ops import metrics as ops_metrics
from chalicelib.store import (
    Conversation,
    ConversationConflict,
    ParkedEntry,
    StoreUnavailable,
    UnstorableConversation,
    message_from_image,
    requester_key,
    stored_at,
)
from chalicelib.sync.attachments import problem_note
from chalicelib.sync.policy import TicketPolicy

if TYPE_CHECKING:
    from chalicelib.crisis.tickets import CrisisTickets
    from chalicelib.store import MessageStore
    from chalicelib.sync.attachments import AttachmentFetcher, FileToAttach
    from chalicelib.sync.batch import BulkResult
    from chalicelib.sync.deadletter import DeadLetterQueue
    from chalicelib.sync.profiles import ProfileLookup
    from chalicelib.triage.rules import Triage
    from chalicelib.triage.signals import Signals

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 30.0
_RECORD_ATTEMPTS = 8
_CONFLICT_RESTARTS = 5
# After the helpdesk accepted a message, its bookkeeping write is retried through at
# least this much throttling before the batch is given up (and retried by Lambda).
RECORD_PATIENCE_SECONDS = 60.0
# Zendesk keeps an Idempotency-Key about 2 hours: a ticket creation replayed from an
# older stream record first looks for the ticket instead of trusting the key.
KEY_TRUST_SECONDS = 3600.0
# A stream record younger than this when its message is parked behind another was not
# handled by an earlier, failed invocation (those raise only after a helpdesk write and
# ``RECORD_PATIENCE_SECONDS``, or time out): the redrive sends it without looking first.
FRESH_RECORD_SECONDS = 5.0
# A ticket's ``updated_at`` has 1 s resolution: a write within this long of the last
# recorded one could leave the same stamp, so it gets a "sending" marker as well.
STAMP_SETTLE_SECONDS = 2.0


class Outcome(str, Enum):
    """What happened to one message."""

    TICKET_OPENED = "ticket_opened"
    COMMENT_ADDED = "comment_added"
    NOTE_ADDED = "note_added"  # an edit or deletion, noted on the ticket for agents
    STORED_ONLY = "stored_only"  # needs no agent (praise, a change to something never ticketed)
    DUPLICATE = "duplicate"  # already on the ticket, already parked, or gone
    PARKED = "parked"
    STILL_FAILING = "still_failing"  # redrive: the helpdesk is still unavailable; it stays parked
    STILL_REJECTED = "still_rejected"  # redrive: the helpdesk still refuses it; it stays parked


DELIVERED = frozenset({Outcome.TICKET_OPENED, Outcome.COMMENT_ADDED, Outcome.NOTE_ADDED, Outcome.STORED_ONLY})


class SyncInterrupted(Exception):
    """Stopped before the Lambda timeout; the batch is retried and finished ones are skipped."""


class _Ambiguous(Exception):
    """A write that may have been applied and cannot be repeated safely right now: parked,
    so that the redrive looks for it on the ticket once the request has surely ended."""

    def __init__(self, cause: HelpdeskUnavailable) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass
class SyncReport:
    """Counts of outcomes over a batch."""

    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        """Count one outcome."""
        self.outcomes[outcome.value] += 1


@dataclass(frozen=True)
class _Requester:
    """The helpdesk user a message is written as; ``new``: just created or re-created."""

    user_id: str
    key: str
    new: bool = False  # just created in the helpdesk
    replaced: bool = False  # found again after the helpdesk refused the user we had


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
        profiles: ProfileLookup | None = None,
        wall_clock: Callable[[], float] = time.time,
        triage: Triage | None = None,
        crisis: CrisisTickets | None = None,
    ) -> None:
        if backoff_seconds <= 0:
            raise ValueError("backoff_seconds must be positive")
        self.store = store
        self.fetcher = fetcher
        self.policy = policy or TicketPolicy()
        self.helpdesk = helpdesk
        self.dead_letters = dead_letters
        # ``enrich(message) -> Author``: the customer's name for a new helpdesk user.
        self.profiles = profiles
        # Which crisis problem a message's ticket joins (``chalicelib/crisis/tickets.py``); None: no detection.
        self.crisis = crisis
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        self._clock = clock  # epoch seconds; ``sleep`` and ``clock`` must agree (tests fake both)
        # The real time, never faked or compressed: compared with the helpdesk's own clock.
        self._wall_clock = wall_clock
        self._next_in_batch: dict[str, str] = {}  # message id -> its conversation's next one in the batch
        self._premarked: set[str] = set()  # marked ahead by this invocation, not attempted yet
        # Opened in bulk by a job whose outcome is lost (sync/batch.py): looked for before creating.
        self._maybe_created: set[str] = set()
        # Signals, noise, priority, routing and SLA from the rules file (None: every ticket alike).
        self.triage = triage
        self._signals: tuple[str, Signals] | None = None  # the last message's, kept across attempts

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
        records = list(records)
        ordered = inbound_in_sync_order(records)
        self._next_in_batch = _next_of_same_conversation([message for message, _ in ordered])
        if self.crisis is not None:  # the batch's crisis observations are written together at its end
            self.crisis.begin_batch()
        try:
            bulk = self._open_in_bulk(records, [message for message, _ in ordered], report, remaining_seconds, reserve_seconds)
            self._maybe_created = bulk.maybe_created
            for message, stored_at in ordered:
                if message.message_id in bulk.done or message.conversation_key in bulk.held:
                    continue
                if remaining_seconds is not None and remaining_seconds() < reserve_seconds:
                    raise SyncInterrupted("close to the Lambda timeout; the batch will be retried")
                try:
                    outcome = self.sync_message(message, received_at=stored_at)
                except UnstorableConversation as exc:
                    # DynamoDB refuses this conversation's bookkeeping for good: the rest of the
                    # batch must not be held hostage, and the message must not be dropped.
                    outcome = self._park_unrecorded(message, f"its bookkeeping was refused: {exc}")
                report.add(outcome)
            if bulk.held:
                raise SyncInterrupted("bulk jobs are still running; the batch will be retried")
        finally:
            self._next_in_batch, self._premarked, self._maybe_created = {}, set(), set()
            if self.crisis is not None:
                self.crisis.end_batch()
        return report

    def _open_in_bulk(
        self,
        records: list[dict[str, Any]],
        messages: list[SocialMessage],
        report: SyncReport,
        remaining_seconds: Callable[[], float] | None,
        reserve_seconds: float,
    ) -> BulkResult:
        """The batch's new conversations opened through the helpdesk's bulk endpoints, when
        it has them (``sync/batch.py``); the rest of the batch then goes one by one."""
        from chalicelib.sync.batch import BatchStage, BulkResult

        writer = self.helpdesk.bulk_writer()
        if writer is None:
            return BulkResult()
        first = ((records[0].get("dynamodb") or {}).get("SequenceNumber") if records else None) or "batch"
        time_left = None if remaining_seconds is None else (lambda: remaining_seconds() - reserve_seconds)
        return BatchStage(self, writer).run(str(first), messages, report, time_left=time_left)

    # --- for the batch stage (sync/batch.py) -----------------------------------------

    def now(self) -> float:
        """The sync's clock (epoch seconds)."""
        return self._clock()

    def wait(self, seconds: float) -> None:
        """Wait as the sync waits between attempts (at most ``MAX_BACKOFF_SECONDS``)."""
        self._sleep(min(seconds, MAX_BACKOFF_SECONDS))

    def author_of(self, message: SocialMessage) -> Author:
        """The author as a new helpdesk user gets it (with their name, from a profile lookup)."""
        return self._author(message)

    def record_bulk_opening(
        self, message: SocialMessage, conversation: Conversation, ticket: TicketRef, requester_id: str, *, new: bool
    ) -> Outcome:
        """Record a ticket a bulk job opened with ``message`` as its first comment, as a
        single creation is recorded (the conversation's first epoch, the hook)."""
        key = requester_key(self.helpdesk.name, message.platform.value, message.author.platform_id)
        epoch = conversation.epoch + 1
        self._record(message, conversation, ticket, _Requester(requester_id, key, new=new), epoch=epoch, unpark=None)
        self._point_ticket(message, ticket)
        self._count_opened(message, ticket)
        return Outcome.TICKET_OPENED

    def park_maybe_sent(self, message: SocialMessage, conversation: Conversation, reason: str) -> Outcome:
        """Park a message that may have reached the helpdesk: the redrive looks before sending."""
        return self._park(message, conversation, reason, attempted=True)

    def sync_message(
        self, message: SocialMessage, *, redrive: ParkedEntry | None = None, received_at: float | None = None
    ) -> Outcome:
        """Deliver one message to its ticket, or park it. ``redrive`` replays that parked entry.

        ``received_at`` (epoch seconds) is when the message was stored: a ticket creation
        replayed from an old record is looked for before it is sent.
        """
        for _ in range(_CONFLICT_RESTARTS):
            try:
                return self._sync_once(message, redrive, received_at)
            except ConversationConflict:  # someone changed the conversation meanwhile: decide again
                continue
        raise ConversationConflict(f"conversation {message.conversation_key} kept changing")

    def forget_parked(self, entry: ParkedEntry) -> None:
        """Remove a parked entry whose message is gone (expired or erased): nothing left to send."""
        conversation = self.store.get_conversation(entry.conversation_key)
        self._update_conversation(conversation, lambda current: None, unpark=entry)

    def heal_counters(self, key: str) -> None:
        """Make the conversation's parked counters agree with its entries (after a crash
        between writing the two): a counter without entries blocks nothing any more."""
        conversation = self.store.get_conversation(key)
        parked = conversation.parked and self.store.parked_head(key) is None
        aside = conversation.aside and not self.store.parked_entries(key, aside=True, limit=1)
        if parked or aside:

            def apply(current: Conversation) -> None:
                current.parked = 0 if parked else current.parked
                current.aside = 0 if aside else current.aside

            self._update_conversation(conversation, apply)

    def set_aside(self, entry: ParkedEntry) -> ParkedEntry:
        """Let the conversation's later messages go past a head that keeps being refused;
        the head stays parked (and is retried) out of order."""
        for _ in range(_RECORD_ATTEMPTS):
            conversation = self.store.get_conversation(entry.conversation_key)
            try:
                return self.store.set_aside(conversation, entry)
            except ConversationConflict:
                continue
        raise ConversationConflict(f"conversation {entry.conversation_key} kept changing")

    # --- deciding -------------------------------------------------------------------

    def _sync_once(self, message: SocialMessage, redrive: ParkedEntry | None, received_at: float | None) -> Outcome:
        key = message.conversation_key
        conversation = self.store.get_conversation(key)
        if conversation.legacy_parked:
            conversation = self._migrate_legacy_parked(conversation)
        if message.message_id in conversation.synced:
            if redrive is not None:  # delivered earlier, its entry left behind
                self._update_conversation(conversation, lambda current: None, unpark=redrive)
            return Outcome.DUPLICATE
        if redrive is None and conversation.has_parked:
            if self.store.is_parked(key, message.message_id):
                return Outcome.DUPLICATE  # a stream retry of a message parked already
            if conversation.parked:
                # (A counter left without entries by a crash is healed by the redrive, which
                # then finds this message first in line.)
                fresh = received_at is not None and self._clock() - received_at < FRESH_RECORD_SECONDS
                return self._park(
                    message,
                    conversation,
                    "waiting behind an earlier parked message",
                    attempted=self._marked_by_an_attempt(conversation, message) or not fresh,
                    behind=True,
                )
        # A redrive hands parked entries in parking order, holding the conversation's lease.
        return self._send(message, conversation, redrive, received_at)

    def _send(
        self, message: SocialMessage, conversation: Conversation, redrive: ParkedEntry | None, received_at: float | None
    ) -> Outcome:
        # A replayed message, or one whose earlier attempt may have reached the helpdesk
        # unrecorded (its "sending" marker is still set), is looked for on its ticket
        # first. A ticket creation replayed from an old record looks before creating.
        maybe_sent = (redrive is not None and redrive.attempted) or self._marked_by_an_attempt(conversation, message)
        age = None if received_at is None else self._clock() - received_at
        old_record = age is not None and age >= KEY_TRUST_SECONDS
        look_before_creating = maybe_sent or old_record or message.message_id in self._maybe_created
        # Whether the helpdesk may have the message by the time it is parked: an earlier
        # invocation may have sent it (an old record), or a write here had no clear answer.
        uncertain = maybe_sent or age is None or age >= FRESH_RECORD_SECONDS or message.message_id in self._maybe_created
        files = _FilesForDelivery(self, message)
        error: Exception | None = None
        for attempt in range(self.attempts):
            try:
                if maybe_sent:
                    found = self._already_on_ticket(message, conversation, redrive)
                    if found is not None:
                        return found
                    maybe_sent = False
                return self._deliver(message, conversation, files, redrive, look_first=look_before_creating)
            except _Ambiguous as exc:
                error = exc.cause  # never resent in this invocation: the redrive looks first
                uncertain = True
                break
            except StaleTicket as exc:
                error = exc  # something changed the ticket: perhaps an earlier attempt of this message
                maybe_sent = uncertain = True
                self._refresh_ticket(conversation)
            except HelpdeskUnavailable as exc:
                error = exc
                maybe_sent = maybe_sent or exc.maybe_applied
                uncertain = uncertain or exc.maybe_applied
                if attempt + 1 < self.attempts:
                    self._sleep(min(exc.retry_after or self.backoff_seconds * 2**attempt, MAX_BACKOFF_SECONDS))
            except HelpdeskRejected as exc:
                error = exc
                break
        reason = f"{type(error).__name__}: {error}"
        if redrive is not None:
            logger.warning(
                "parked message still failing",
                extra={"conversation_key": message.conversation_key, "message_id": message.message_id, "reason": reason},
            )
            return Outcome.STILL_REJECTED if isinstance(error, HelpdeskRejected) else Outcome.STILL_FAILING
        return self._park(message, conversation, reason, attempted=uncertain)

    # --- delivery ------------------------------------------------------------------

    def _deliver(
        self,
        message: SocialMessage,
        conversation: Conversation,
        files: _FilesForDelivery,
        redrive: ParkedEntry | None,
        *,
        look_first: bool,
    ) -> Outcome:
        has_ticket = conversation.ticket_id is not None and conversation.helpdesk == self.helpdesk.name
        if has_ticket and message.edit_of is not None:
            return self._note_change(message, conversation, redrive)
        if not has_ticket and not self.policy.opens_ticket(message):
            return self._stored_only(conversation, redrive)
        if not has_ticket and self.triage is not None and (noise := self.triage.noise(message)) is not None:
            return self._noise(message, conversation, redrive, noise)
        requester = self._requester(message, conversation)
        follow_up_of: str | None = None
        if has_ticket and not self._needs_new_ticket(conversation, message):
            assert conversation.ticket_id is not None
            ticket_id = conversation.ticket_id

            def append(user_id: str) -> TicketRef:
                return self._guarded_write(
                    conversation,
                    message,
                    lambda guard: self.helpdesk.append_message(ticket_id, message, user_id, **files.extras(), **guard),
                )

            try:
                ticket, requester = self._as_requester(message, conversation, requester, append)
            except TicketClosed:
                follow_up_of = ticket_id
            except TicketGone:  # deleted by an agent: the conversation starts over on a new ticket
                logger.warning(
                    "ticket deleted in the helpdesk; opening a new one",
                    extra={"conversation_key": message.conversation_key, "ticket_id": ticket_id},
                )
            else:
                triage = self._triage_state(message)
                self._record(message, conversation, ticket, requester, epoch=None, unpark=redrive, triage=triage)
                self._join_crisis(message, ticket.ticket_id)
                return Outcome.COMMENT_ADDED
        elif has_ticket:
            follow_up_of = conversation.ticket_id
        epoch = conversation.epoch + 1
        routing = self._routing(message)

        def create(user_id: str) -> TicketRef:
            return self._open_ticket(message, user_id, epoch, follow_up_of, files, look_first=look_first, routing=routing)

        ticket, requester = self._as_requester(message, conversation, requester, create)
        ticket = self._triage_note(message, ticket, routing)
        triage = None if routing is None else {**(self._triage_state(message) or {}), "ticket": _routing_state(routing)}
        self._record(message, conversation, ticket, requester, epoch=epoch, unpark=redrive, triage=triage)
        self._point_ticket(message, ticket)
        self._count_opened(message, ticket)
        return Outcome.TICKET_OPENED

    def _count_opened(self, message: SocialMessage, ticket: TicketRef) -> None:
        """The metric and the console line of a ticket opened, singly or in bulk; a crisis member's
        ticket (opened as the problem's incident) is remembered as linked."""
        if self.crisis is not None:
            self.crisis.opened(message, ticket.ticket_id)
        ops_metrics.ticket_opened(message)
        logger.info(
            "ticket opened",
            extra={"conversation_key": message.conversation_key, "message_id": message.message_id, "ticket_id": ticket.ticket_id},
        )

    def _open_ticket(
        self,
        message: SocialMessage,
        requester: str,
        epoch: int,
        follow_up_of: str | None,
        files: _FilesForDelivery,
        *,
        look_first: bool,
        routing: TicketRouting | None = None,
    ) -> TicketRef:
        """Open the ticket, unless an earlier delivery of this message already did.

        A redrive (or a retry of an old record) may replay a creation that reached the
        helpdesk hours ago: the idempotency key may have expired, and the files are
        uploaded anew (new tokens, so a new body for the same key). So it first looks for
        the conversation's ticket that has the message, and so does an ``IdempotencyConflict``.
        Without idempotent creates, an ambiguous failure is never repeated in this invocation.
        """
        link = self._crisis_link(message)
        if look_first:
            found = self.helpdesk.find_ticket_with_message(message.conversation_key, message)
            if found is not None:
                self._join_crisis(message, found.ticket_id)
                return found
        extras = {**files.extras(), **link}
        # Triage's decision, only with triage configured (adapters written before it never see the keyword).
        routed: dict[str, Any] = {"routing": routing} if routing is not None else {}
        key = idempotency_key(message.conversation_key, epoch, message.message_id)
        try:
            try:
                return self.helpdesk.open_ticket(
                    message, requester, idempotency_key=key, follow_up_of=follow_up_of, **extras, **routed
                )
            except IdempotencyConflict:
                found = self.helpdesk.find_ticket_with_message(message.conversation_key, message)
                if found is not None:
                    self._join_crisis(message, found.ticket_id)
                    return found
                # The key is held by a request that left no ticket with this message (it
                # failed, or its ticket was deleted): this body gets a key of its own, still
                # stable across this delivery's retries.
                variant = json.dumps([requester, extras], sort_keys=True, default=list)
                key = idempotency_key(message.conversation_key, epoch, message.message_id, variant)
                return self.helpdesk.open_ticket(
                    message, requester, idempotency_key=key, follow_up_of=follow_up_of, **extras, **routed
                )
        except HelpdeskUnavailable as exc:
            if exc.maybe_applied and not self.helpdesk.idempotent_creates:
                raise _Ambiguous(exc) from exc
            raise

    def _crisis_link(self, message: SocialMessage) -> dict[str, str]:
        """``{"problem_id": ...}`` when the message's new ticket is an incident of a crisis's problem."""
        problem = self.crisis.problem_for(message) if self.crisis is not None and self.crisis.links_tickets else None
        return {"problem_id": problem} if problem else {}

    def crisis_problems(self, messages: Sequence[SocialMessage]) -> dict[str, str | None]:
        """Message id -> the crisis problem its new ticket joins (None: none), for a bulk create."""
        if self.crisis is None or not self.crisis.links_tickets:
            return {}
        return self.crisis.problems_for(messages)

    def _join_crisis(self, message: SocialMessage, ticket_id: str) -> None:
        """A message of an existing ticket that is part of a crisis: the ticket becomes its incident."""
        problem = self._crisis_link(message).get("problem_id")
        if problem is not None and self.crisis is not None:
            self.crisis.link(ticket_id, problem)

    def _guarded_write(
        self, conversation: Conversation, message: SocialMessage, write: Callable[[dict[str, Any]], TicketRef]
    ) -> TicketRef:
        """Run a write to the conversation's ticket so that a repeat can never double it.

        With a guarded helpdesk and a settled stamp, the write carries ``updated_stamp``:
        if this very write was applied before (unrecorded), its repeat is refused with
        ``StaleTicket``. Otherwise a "sending" marker is recorded first, so any later
        attempt looks on the ticket before writing; and an ambiguous failure is not
        repeated in this invocation (``_Ambiguous``)."""
        stamp = conversation.ticket_updated_at if self.helpdesk.guards_stale_updates else None
        guard = {"updated_stamp": stamp} if stamp else {}
        guarded = stamp is not None and self._settled(stamp)
        if not guarded and conversation.sending != message.message_id:
            self._update_conversation(conversation, lambda current: setattr(current, "sending", message.message_id))
        self._premarked.discard(message.message_id)  # from here on the marker means "maybe sent"
        try:
            return write(guard)
        except HelpdeskUnavailable as exc:
            if exc.maybe_applied and not guarded:
                raise _Ambiguous(exc) from exc
            raise

    def _marked_by_an_attempt(self, conversation: Conversation, message: SocialMessage) -> bool:
        """True when the conversation's "sending" marker names ``message`` because a write of
        it may have been tried (not merely marked ahead by this invocation's previous record)."""
        return conversation.sending == message.message_id and message.message_id not in self._premarked

    def _settled(self, stamp: str) -> bool:
        """True when ``stamp`` is far enough in the past that any new write changes it."""
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return False
        return self._wall_clock() - moment.timestamp() >= STAMP_SETTLE_SECONDS

    def _refresh_ticket(self, conversation: Conversation) -> None:
        """Read the ticket's current stamp and status after a ``StaleTicket`` (in memory:
        recorded with the next delivery)."""
        if conversation.ticket_id is None:
            return
        try:
            current = self.helpdesk.current_ticket(conversation.ticket_id)
        except HelpdeskError:  # a deleted ticket shows itself on the next write
            conversation.ticket_updated_at = None
            return
        conversation.ticket_updated_at = current.updated_at
        conversation.ticket_status = current.status

    def _note_change(self, message: SocialMessage, conversation: Conversation, redrive: ParkedEntry | None) -> Outcome:
        """An edit or deletion of a message already on the ticket: an internal note
        with the new text, so agents see what changed (the customer comment stays)."""
        assert conversation.ticket_id is not None
        ticket_id = conversation.ticket_id
        note = change_note(message)
        try:
            ticket = self._guarded_write(
                conversation, message, lambda guard: self.helpdesk.add_note(ticket_id, message, note, **guard)
            )
        except (TicketClosed, TicketGone):
            # Nobody works a closed or deleted ticket; the change stays stored.
            return self._stored_only(conversation, redrive)
        if message.deleted and message.edit_of:
            self.store.mark_deleted(message.conversation_key, message.edit_of)
        self._record(message, conversation, ticket, None, epoch=None, unpark=redrive)
        return Outcome.NOTE_ADDED

    def _stored_only(self, conversation: Conversation, redrive: ParkedEntry | None) -> Outcome:
        """A message that needs no helpdesk write. Nothing is written -- a redelivered record
        reaches the same decision again -- except that a replayed one leaves the parked list."""
        if redrive is not None:
            self._update_conversation(conversation, lambda current: None, unpark=redrive)
        return Outcome.STORED_ONLY

    def _already_on_ticket(
        self, message: SocialMessage, conversation: Conversation, redrive: ParkedEntry | None
    ) -> Outcome | None:
        """If the conversation's ticket already has the message, record that and say how
        it got there; None when it does not (or there is no ticket yet)."""
        if conversation.ticket_id is None or conversation.helpdesk != self.helpdesk.name:
            return None
        try:
            if not self.helpdesk.ticket_has_message(conversation.ticket_id, message):
                return None
        except TicketGone:
            return None
        # The ticket changed since our stamp (it has this message): the next write gets a marker.
        ticket = TicketRef(conversation.ticket_id, conversation.ticket_status or "open")
        requester = None if message.edit_of is not None else self._requester(message, conversation)
        self._record(message, conversation, ticket, requester, epoch=None, unpark=redrive)
        return Outcome.NOTE_ADDED if requester is None else Outcome.COMMENT_ADDED

    @staticmethod
    def _needs_new_ticket(conversation: Conversation, message: SocialMessage) -> bool:
        # A closed ticket takes no comments. A solved one is reopened by a comment,
        # except in private chats, where a message after "solved" starts a new request.
        return conversation.ticket_status == "closed" or (message.is_private and conversation.ticket_status == "solved")

    # --- requesters ------------------------------------------------------------------

    def _requester(self, message: SocialMessage, conversation: Conversation) -> _Requester:
        # Known on this conversation, else by the author's own mapping or another of their
        # conversations, else created in the helpdesk (with their name, when a profile
        # lookup is configured); recorded with the delivery.
        key = requester_key(self.helpdesk.name, message.platform.value, message.author.platform_id)
        if conversation.requester_key == key and conversation.requester_id and conversation.helpdesk == self.helpdesk.name:
            return _Requester(conversation.requester_id, key)
        known = conversation.legacy_requesters.get(key) or self.store.find_requester(
            self.helpdesk.name, message.platform.value, message.author.platform_id
        )
        if known:
            return _Requester(known, key)
        return _Requester(self.helpdesk.ensure_requester(message.platform, self._author(message)), key, new=True)

    def _author(self, message: SocialMessage) -> Author:
        if self.profiles is None:
            return message.author
        try:
            return self.profiles.enrich(message)
        except Exception:  # noqa: BLE001 - a name is a nicety; the ticket is not
            logger.warning("profile lookup failed", extra={"platform": message.platform.value})
            return message.author

    def _as_requester(
        self,
        message: SocialMessage,
        conversation: Conversation,
        requester: _Requester,
        call: Callable[[str], TicketRef],
    ) -> tuple[TicketRef, _Requester]:
        """``call(user id)``; when the helpdesk refuses that user (deleted, or merged into
        another), the person's user is found again by their platform identity and the call
        repeated once with it."""
        try:
            return call(requester.user_id), requester
        except RequesterGone as refused:
            fresh = self.helpdesk.ensure_requester(message.platform, self._author(message))
            if fresh == requester.user_id:
                raise HelpdeskRejected(
                    f"the helpdesk refuses user {fresh} and gives it back for this person: {refused}"
                ) from refused
            logger.warning(
                "helpdesk user gone; using the person's user found again",
                extra={"conversation_key": conversation.key, "platform": message.platform.value},
            )
            replacement = _Requester(fresh, requester.key, new=True, replaced=True)
            return call(fresh), replacement

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
        """Let the adapter keep what its agent events need to find the new ticket's conversation."""
        try:
            self.helpdesk.ticket_opened(ticket, message, self.store)
        except Exception as exc:  # best effort: the delivery is recorded; the events have a slower way
            logger.warning("ticket_opened hook failed", extra={"helpdesk": self.helpdesk.name, "reason": type(exc).__name__})
        self._channel_note(message, ticket)

    def _channel_note(self, message: SocialMessage, ticket: TicketRef) -> None:
        """The channel's note for agents on a new ticket (``Channel.ticket_note``), once:
        after the opening is recorded, so a redelivery never writes it again (the next
        comment's guarded write finds the stamp moved and reads it again, once)."""
        from chalicelib.channels.registry import channel_of

        note = channel_of(message.platform).ticket_note(message)
        if not note:
            return
        reference = message.model_copy(
            update={"message_id": f"{message.message_id}#channel-note", "direction": Direction.OUTBOUND}
        )
        try:
            self.helpdesk.add_note(ticket.ticket_id, reference, note)
        except HelpdeskError as exc:  # best effort, like the hook above: the answer path says it again
            logger.warning("channel note not added", extra={"ticket_id": ticket.ticket_id, "reason": type(exc).__name__})

    # --- triage ----------------------------------------------------------------------

    def _message_signals(self, message: SocialMessage) -> Signals | None:
        """The message's triage signals, read once per message (retries reuse them); None
        when the detectors fail: the ticket then opens untriaged rather than not at all."""
        if self.triage is None or message.direction is not Direction.INBOUND:
            return None
        if self._signals is None or self._signals[0] != message.message_id:
            try:
                self._signals = (message.message_id, self.triage.signals(message))
            except Exception as exc:  # noqa: BLE001 - triage is a nicety; the customer's message is not
                logger.error("triage signals failed", extra={"platform": message.platform.value, "reason": type(exc).__name__})
                return None
        return self._signals[1]

    def _triage_state(self, message: SocialMessage) -> dict[str, Any] | None:
        signals = self._message_signals(message)
        return None if signals is None else {"signals": signals.as_state(), "message_id": message.message_id}

    def _routing(self, message: SocialMessage) -> TicketRouting | None:
        signals = self._message_signals(message)
        return None if signals is None or self.triage is None else self.triage.routing(message, signals)

    def routing_for(self, message: SocialMessage) -> TicketRouting | None:
        """Triage's decision for a new ticket opened with ``message`` (the batch stage's bulk
        creates carry it too; their tickets get no note: the fields and tags say it)."""
        return self._routing(message)

    def is_noise(self, message: SocialMessage) -> bool:
        """True when triage keeps ``message`` out of the helpdesk as a conversation's first
        message (the batch stage leaves it to the single path, which marks it)."""
        return self.triage is not None and self.triage.noise(message) is not None

    def _triage_note(self, message: SocialMessage, ticket: TicketRef, routing: TicketRouting | None) -> TicketRef:
        """The triage summary as an internal note on the new ticket (best effort), written before
        the opening is recorded, so that the stamp recorded is the note's (the next comment's
        guarded write is not refused for it)."""
        if routing is None or not routing.note:
            return ticket
        reference = message.model_copy(update={"message_id": f"{message.message_id}#triage", "direction": Direction.OUTBOUND})
        try:
            return self.helpdesk.add_note(ticket.ticket_id, reference, routing.note)
        except HelpdeskError as exc:  # the fields and tags carry the decision; the note is for reading
            logger.warning("triage note not added", extra={"ticket_id": ticket.ticket_id, "reason": type(exc).__name__})
            # (It may have been written all the same: the ticket's stamp is unknown now.)
            return TicketRef(ticket.ticket_id, ticket.status, None, ticket.requester_id)

    def _noise(self, message: SocialMessage, conversation: Conversation, redrive: ParkedEntry | None, reason: str) -> Outcome:
        """Noise opens no ticket: the message stays stored, marked with the reason and its signals."""
        signals = self._message_signals(message)
        try:
            self.store.mark_noise(message.conversation_key, message.message_id, reason, signals.as_state() if signals else None)
        except StoreUnavailable as exc:  # the decision is taken again on a redelivery; nothing is lost
            logger.warning("noise mark not stored", extra={"message_id": message.message_id, "reason": str(exc)})
        logger.info("message is noise: no ticket", extra={"platform": message.platform.value, "reason": reason})
        return self._stored_only(conversation, redrive)

    # --- bookkeeping ---------------------------------------------------------------

    def _record(
        self,
        message: SocialMessage,
        conversation: Conversation,
        ticket: TicketRef,
        requester: _Requester | None,
        *,
        epoch: int | None,
        unpark: ParkedEntry | None,
        triage: dict[str, Any] | None = None,
    ) -> None:
        """Remember the delivery on the conversation (with the message's ``triage`` signals,
        at no extra write). The helpdesk call is never repeated here: on a write conflict
        only the bookkeeping is re-applied."""

        def apply(current: Conversation) -> None:
            if triage is not None:
                current.triage = {**(current.triage or {}), **triage}
            current.helpdesk = self.helpdesk.name
            current.ticket_id = ticket.ticket_id
            current.ticket_status = ticket.status
            # Our write's stamp; unknown (None) after a lookup, so the next write is marked.
            current.ticket_updated_at = ticket.updated_at
            if requester is not None and (
                epoch is not None or current.requester_id is None or current.requester_key == requester.key
            ):
                current.requester_id, current.requester_key = requester.user_id, requester.key
            if epoch is not None:
                current.epoch = max(current.epoch, epoch)
            current.remember_synced(message.message_id)
            # The conversation's next message in this batch is written to the ticket right
            # after: its "sending" marker rides on this write instead of costing one of its
            # own (should this invocation end first, the marker only makes the next attempt
            # look on the ticket before writing).
            following = self._next_in_batch.get(message.message_id)
            if following is not None and current.sending is None and following not in current.synced:
                current.sending = following
                self._premarked.add(following)

        self._update_conversation(conversation, apply, delivered=True, unpark=unpark)
        if requester is not None and (requester.replaced or (requester.new and conversation.requester_key != requester.key)):
            # Another participant of a shared thread, or a person whose user was re-created:
            # their mapping gets an item of its own, found first by every conversation.
            try:
                self.store.save_requester(
                    self.helpdesk.name, message.platform.value, message.author.platform_id, requester.user_id
                )
            except (StoreUnavailable, UnstorableConversation) as exc:  # found again by upsert next time
                logger.warning("requester mapping not saved", extra={"reason": str(exc)})

    def _park(
        self, message: SocialMessage, conversation: Conversation, reason: str, *, attempted: bool = True, behind: bool = False
    ) -> Outcome:
        """Park a message: recorded on the conversation first (so the sweep finds it whatever
        happens next), then -- for a message that failed itself, not one waiting ``behind``
        another -- a notice on the dead-letter queue. ``attempted``: the helpdesk may have it
        (the redrive looks before sending)."""
        failures = 0
        while True:
            try:
                entry = self.store.park(conversation, message.message_id, reason, attempted=attempted)
                break
            except StoreUnavailable:
                failures += 1
                if failures >= _RECORD_ATTEMPTS:
                    raise
                self._sleep(min(self.backoff_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS))
                conversation = self.store.get_conversation(message.conversation_key)
        if entry is None:
            return Outcome.DUPLICATE
        if behind:
            return Outcome.PARKED
        logger.warning(
            "message parked",
            extra={"conversation_key": message.conversation_key, "message_id": message.message_id, "reason": reason},
        )
        ops_metrics.message_parked(message)
        try:
            self.dead_letters.park(message.conversation_key, message.message_id, reason)
        except Exception as exc:  # noqa: BLE001 - the sweep finds the conversation without it
            logger.warning("dead-letter notice not sent", extra={"reason": type(exc).__name__})
        return Outcome.PARKED

    def _park_unrecorded(self, message: SocialMessage, reason: str) -> Outcome:
        """Park a message whose conversation cannot be written: the queue entry is all there is."""
        logger.error(
            "message parked without bookkeeping",
            extra={"conversation_key": message.conversation_key, "message_id": message.message_id, "reason": reason},
        )
        self.dead_letters.park(message.conversation_key, message.message_id, reason, unrecorded=True)
        ops_metrics.message_parked(message)
        return Outcome.PARKED

    def _migrate_legacy_parked(self, conversation: Conversation) -> Conversation:
        """Give parked ids kept in the conversation item (older versions) entries of their own."""
        while conversation.legacy_parked:
            message_id = conversation.legacy_parked.pop(0)
            try:
                if self.store.park(conversation, message_id, "parked before an upgrade") is None:
                    self.store.save_conversation(conversation)  # it has an entry already: only drop it from the list
            except ConversationConflict:
                conversation = self.store.get_conversation(conversation.key)
        return conversation

    def _update_conversation(
        self,
        conversation: Conversation,
        apply: Callable[[Conversation], None],
        *,
        delivered: bool = False,
        unpark: ParkedEntry | None = None,
    ) -> None:
        """Apply ``apply`` to the conversation and save it, re-reading it on conflicts
        and waiting out throttling (of the write and of the re-read alike); ``unpark``
        removes that parked entry in the same write. ``conversation`` ends up as saved.

        When ``delivered`` (the helpdesk already has the message), it gives up only after
        ``RECORD_PATIENCE_SECONDS`` of backoff: throttling passes, and a retried batch
        finds the write guarded or marked, so nothing is sent twice either way."""
        current: Conversation | None = conversation
        conflicts = failures = 0
        waited = 0.0
        while True:
            try:
                if current is None:
                    current = self.store.get_conversation(conversation.key)
                apply(current)
                if unpark is not None and not unpark.unrecorded:
                    if unpark.aside:
                        current.aside = max(0, current.aside - 1)
                    else:
                        current.parked = max(0, current.parked - 1)
                self.store.save_conversation(current, unpark=None if unpark is None or unpark.unrecorded else unpark)
                if current is not conversation:
                    conversation.__dict__.update(current.__dict__)
                return
            except ConversationConflict as exc:
                conflicts += 1
                if conflicts >= _RECORD_ATTEMPTS:
                    raise ConversationConflict(f"conversation {conversation.key} kept changing while being recorded") from exc
            except StoreUnavailable:
                failures += 1
                if failures >= _RECORD_ATTEMPTS and (not delivered or waited >= RECORD_PATIENCE_SECONDS):
                    raise
                wait = min(self.backoff_seconds * 2 ** (failures - 1), MAX_BACKOFF_SECONDS)
                self._sleep(wait)
                waited += wait
            current = None


def _routing_state(routing: TicketRouting) -> dict[str, Any]:
    """What the conversation remembers of its ticket's triage."""
    return {"priority": routing.priority, "group_id": routing.group_id, "brand_id": routing.brand_id, "tags": list(routing.tags)}


def _next_of_same_conversation(messages: list[SocialMessage]) -> dict[str, str]:
    """Each message's id -> the id of the next message of its conversation in ``messages``."""
    following: dict[str, str] = {}
    last_of: dict[str, str] = {}
    for message in messages:
        previous = last_of.get(message.conversation_key)
        if previous is not None:
            following[previous] = message.message_id
        last_of[message.conversation_key] = message.message_id
    return following


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
    """When the stream record's message was stored (epoch seconds): as the item says
    (``store.stored_at``), else the stream's ``ApproximateCreationDateTime``."""
    change = record.get("dynamodb") or {}
    stored = stored_at(change.get("NewImage") or {})
    if stored is not None:
        return stored
    value = change.get("ApproximateCreationDateTime")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
