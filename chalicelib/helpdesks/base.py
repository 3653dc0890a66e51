"""The one interface the ticket sync uses to talk to any helpdesk.

The sync logic never knows whether it talks to Zendesk or Freshdesk, and it holds
no HTTP code: it calls these methods and reacts to these exceptions.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from chalicelib.helpdesks.plugin import HelpdeskPlugin as HelpdeskPlugin
from chalicelib.models import Author, Platform, SocialMessage

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from chalicelib.crisis.tickets import ProblemTickets
    from chalicelib.store import MessageStore
    from chalicelib.sync.attachments import FileToAttach


@dataclass(frozen=True)
class TicketRef:
    """A ticket as the sync needs to remember it."""

    ticket_id: str
    status: str  # the helpdesk's status word, normalized to: new, open, pending, hold, solved, closed
    # The ticket's ``updated_at`` as the helpdesk wrote it, for guarded updates (see
    # ``Helpdesk.guards_stale_updates``); None where the helpdesk has no such guard.
    updated_at: str | None = None
    requester_id: str | None = None  # who the ticket belongs to now, when the answer says


@dataclass(frozen=True)
class TicketRouting:
    """What triage decided for a new ticket (``chalicelib/triage/rules.py``); each adapter
    maps what its helpdesk has (Zendesk: priority, group, brand, tags; Freshdesk: priority,
    group, product, tags, ``fr_due_by``/``due_by``). None: the helpdesk's own default."""

    priority: str | None = None  # "urgent" | "high" | "normal" | "low"
    group_id: str | None = None
    brand_id: str | None = None  # Zendesk brand; Freshdesk product
    tags: tuple[str, ...] = ()  # added to the adapter's own tags (the SLA tag among them)
    first_reply_due: datetime | None = None
    due: datetime | None = None
    note: str | None = None  # the internal note the sync adds after the ticket is opened


class HelpdeskError(Exception):
    """Base class for every helpdesk failure the sync must react to."""


class HelpdeskUnavailable(HelpdeskError):
    """Transient: rate-limited, 5xx, timeout or connection failure after retries.

    ``maybe_applied`` is True when the request may have reached the helpdesk (a
    timeout or dropped connection after sending), so a retry must first check
    whether the message is already on the ticket.
    """

    def __init__(self, message: str, *, maybe_applied: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after


class HelpdeskRejected(HelpdeskError):
    """Permanent: the helpdesk refused the request (validation, permissions, auth)."""


class IdempotencyConflict(HelpdeskRejected):
    """The idempotency key was already used with a different request body.

    Zendesk answers 400 ``IdempotentRequestError``. For the bridge this means an earlier
    request with the same key (same conversation, epoch and message) reached the
    helpdesk, e.g. before a redrive re-uploaded the files and got new upload tokens.
    The sync then looks for the ticket (``find_ticket_with_message``) before anything
    else. A ``HelpdeskRejected``, so code that does not know it still parks the message.
    """


class TicketClosed(HelpdeskError):
    """The ticket can no longer take comments; a follow-up ticket is needed."""


class TicketGone(HelpdeskRejected):
    """The ticket no longer exists (an agent deleted it): the conversation needs a new one.
    A ``HelpdeskRejected``, so code that does not know it still parks the message."""


class RequesterGone(HelpdeskRejected):
    """The helpdesk refused the user we sent as author or requester (deleted, or merged
    into another user): the person's user must be found again before anything is sent."""


class StaleTicket(HelpdeskError):
    """A guarded update was refused because the ticket changed since the ``updated_stamp``
    we sent (Zendesk's 409 on ``safe_update``): nothing was written. Whatever changed it --
    an agent, or an earlier attempt of this very write -- must be looked at before resending."""


@dataclass(frozen=True)
class NewTicket:
    """One ticket of a bulk create: what ``open_ticket`` would send for ``message`` (no files)."""

    message: SocialMessage
    requester_id: str
    routing: TicketRouting | None = None  # triage's priority, group and tags (as ``open_ticket``'s)
    problem_id: str | None = None  # the crisis problem ticket it is an incident of (``crisis/tickets.py``)


@dataclass(frozen=True)
class BulkItem:
    """One item of a finished bulk job, by its position in the request: the id of the
    record it created or found (``record_id``), else the helpdesk's ``error``."""

    index: int
    record_id: str | None
    error: str | None = None
    external_id: str | None = None  # the record's, when the helpdesk says (a check on ``index``)


@dataclass(frozen=True)
class BulkJob:
    """A bulk request's background job as the helpdesk shows it now."""

    job_id: str
    status: str  # queued, working, completed, failed
    items: tuple[BulkItem, ...] = ()

    @property
    def finished(self) -> bool:
        """True once the job ran (``items`` then say what happened to each)."""
        return self.status in ("completed", "failed")


class BulkTicketWriter(ABC):
    """A helpdesk's bulk endpoints (``Helpdesk.bulk_writer``): requesters and tickets by the
    hundred, each call queueing a job whose outcome is read later (``read_jobs``).
    Submissions raise like any helpdesk call; one that ``maybe_applied`` may have queued a job."""

    max_items: int = 100  # per submission, and job ids per ``read_jobs``

    @abstractmethod
    def submit_requesters(self, people: Sequence[tuple[Platform, Author]]) -> str:
        """Queue the creation (or update, found by platform identity) of each person's user;
        return the job id. Each item's ``record_id`` is the user id."""

    @abstractmethod
    def submit_tickets(self, tickets: Sequence[NewTicket]) -> str:
        """Queue the creation of these tickets (each as ``open_ticket`` would create it, its
        ``external_id`` the conversation key); return the job id. Not idempotent."""

    @abstractmethod
    def read_jobs(self, job_ids: Sequence[str]) -> dict[str, BulkJob]:
        """The jobs' current state, by id; a job the helpdesk no longer knows is left out."""

    def follow(
        self,
        job_ids: Sequence[str],
        *,
        max_wait: float,
        wait: Callable[[float], None] = time.sleep,
        time_left: Callable[[], float] | None = None,
        first_pause: float = 0.5,
        max_pause: float = 8.0,
    ) -> dict[str, BulkJob | None]:
        """Poll the jobs (``read_jobs``, up to ``max_items`` per request) with growing pauses
        until each finished or is gone, or ``max_wait`` (and ``time_left()``) is spent. Returns
        each job's last state: None for a job the helpdesk no longer knows; a job never read is
        left out. A failed read is tried again after the next pause."""
        latest: dict[str, BulkJob | None] = {}
        pending = list(dict.fromkeys(job_ids))
        waited, pause = 0.0, first_pause
        while pending:
            budget = max_wait - waited
            if time_left is not None:
                budget = min(budget, time_left())
            if budget <= 0:
                break
            wait(min(pause, budget))
            waited += min(pause, budget)
            pause = min(pause * 2, max_pause)
            for start in range(0, len(pending), self.max_items):
                group = pending[start : start + self.max_items]
                try:
                    found = self.read_jobs(group)
                except HelpdeskError as exc:  # read again after the next pause
                    logger.warning("bulk job statuses not read", extra={"reason": type(exc).__name__})
                    continue
                latest.update({job_id: found.get(job_id) for job_id in group})
            pending = [j for j in pending if j not in latest or _running(latest[j])]
        return latest


def _running(job: BulkJob | None) -> bool:
    return job is not None and not job.finished


class Helpdesk(ABC):
    """A helpdesk the bridge turns conversations into tickets in."""

    name: str
    # True when ``upload`` stores files and ``open_ticket``/``append_message`` accept the
    # ``uploads`` and ``problems`` keywords. The sync only fetches attachments, and only
    # passes those keywords, for a helpdesk that says so: an adapter written before
    # attachments existed keeps working unchanged (its comments list the links).
    supports_uploads: bool = False
    # True when ``open_ticket`` with the same ``idempotency_key`` and body never opens a
    # second ticket (Zendesk's Idempotency-Key, kept about 2 hours).
    idempotent_creates: bool = False
    # True when ``append_message``/``add_note`` honour ``updated_stamp``: the write is refused
    # with ``StaleTicket`` if the ticket changed since, so a repeat of a write that was
    # applied is refused instead of doubled (Zendesk ``safe_update``). Without it the sync
    # writes a "sending" marker before each write instead.
    guards_stale_updates: bool = False

    @abstractmethod
    def ensure_requester(self, platform: Platform, author: Author) -> str:
        """Return the helpdesk user id for a social author, creating the user if needed."""

    @abstractmethod
    def open_ticket(
        self,
        message: SocialMessage,
        requester_id: str,
        *,
        idempotency_key: str,
        follow_up_of: str | None = None,
        uploads: Sequence[str] = (),
        problems: Sequence[str] | None = None,
        routing: TicketRouting | None = None,
    ) -> TicketRef:
        """Create a ticket whose first comment is ``message``; safe to repeat with the same key.

        ``uploads``: tokens from ``upload``, attached to the first comment. ``problems``:
        notes about files that could not be attached, shown under the comment text
        (``formatting.comment_body(message, problems)``). Both are passed only to a
        helpdesk with ``supports_uploads``. ``routing``: triage's priority, group, tags and
        due dates, passed only when triage rules are configured. May raise ``IdempotencyConflict``.
        """

    @abstractmethod
    def append_message(
        self,
        ticket_id: str,
        message: SocialMessage,
        requester_id: str,
        *,
        uploads: Sequence[str] = (),
        problems: Sequence[str] | None = None,
        updated_stamp: str | None = None,
    ) -> TicketRef:
        """Add ``message`` to the ticket as a comment authored by the requester.

        ``uploads`` and ``problems`` as for ``open_ticket``. ``updated_stamp``: with
        ``guards_stale_updates``, refuse (``StaleTicket``) if the ticket changed since.
        Raises ``TicketClosed`` when the ticket cannot take it any more, ``TicketGone``
        when it was deleted, ``RequesterGone`` when the author's user was.
        """

    @abstractmethod
    def add_note(self, ticket_id: str, message: SocialMessage, text: str, *, updated_stamp: str | None = None) -> TicketRef:
        """Add an internal note (seen by agents only) about ``message``, e.g. that its
        author edited or deleted it. Raises like ``append_message``."""

    @abstractmethod
    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        """True when ``message`` is already on the ticket (used after an ambiguous failure)."""

    # --- optional: attachments and lookups (safe defaults for every adapter) ------------

    def upload(self, files: Sequence[FileToAttach]) -> list[str]:
        """Store files to attach to the next comment; return one token per stored file.

        The default stores nothing (``supports_uploads`` is False). An adapter raises
        ``HelpdeskUnavailable`` (transient) or ``HelpdeskRejected`` (this file is refused,
        e.g. too large or a forbidden type); the sync notes a file it could not store
        and still delivers the message.
        """
        return []

    def current_ticket(self, ticket_id: str) -> TicketRef:
        """The ticket as it is now (status, ``updated_at``, requester); a read. Needed by
        adapters with ``guards_stale_updates``; the default refuses."""
        raise HelpdeskRejected(f"{self.name} cannot read a ticket's current state")

    def ticket_opened(self, ticket: TicketRef, message: SocialMessage, store: MessageStore) -> None:
        """Called once a ticket was opened for ``message``'s conversation, to keep what the
        helpdesk's agent events need to find it again (Freshdesk: a pointer item, its
        tickets have no external id). Best effort: may raise; the sync goes on. Default: nothing."""
        return None

    def find_ticket_with_message(self, external_id: str, message: SocialMessage) -> TicketRef | None:
        """A ticket with this ``external_id`` (the conversation key) that already has
        ``message``, if any. Used before re-creating a ticket whose creation may have
        been applied (redrive, ``IdempotencyConflict``). Default: no lookup (None)."""
        return None

    def bulk_writer(self) -> BulkTicketWriter | None:
        """The helpdesk's bulk endpoints, used by the sync for many new conversations at once
        (``chalicelib/sync/batch.py``); None (the default): one request per ticket."""
        return None

    def problem_tickets(self, store: MessageStore) -> ProblemTickets | None:
        """How a crisis becomes tickets here (``crisis/tickets.py`` ``ProblemTickets``): one
        problem (or parent) ticket and its members linked to it. The default: the adapter
        itself when it has those calls (Zendesk's problem and incidents), else None (only the
        crisis alert goes out)."""
        from chalicelib.crisis.tickets import ProblemTickets

        return self if isinstance(self, ProblemTickets) else None
