"""The batch stage of the ticket sync: a stream batch's new conversations opened in bulk.

When a burst brings hundreds of new conversations, one request per ticket (plus one per
requester) spends the helpdesk's rate limit exactly when it is scarce. For a helpdesk with
bulk endpoints (``Helpdesk.bulk_writer``), this stage takes the first message of each
conversation that has no ticket yet, creates their requesters a hundred at a time, then
their tickets a hundred at a time, follows the jobs to completion and records each ticket
on its conversation with the same bookkeeping as a single creation
(``TicketSync.record_bulk_opening``). Everything else in the batch -- follow-ups, the
conversations' later messages, anything the bulk path did not finish -- then goes through
the single path, in order. Why this stays exactly once is in ``docs/sync.md`` ("Batched
creation"); in short, an intent item is written before each bulk create and records its
job, so a redelivered batch resolves that job instead of submitting it again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesks.base import (
    BulkItem,
    BulkJob,
    BulkTicketWriter,
    HelpdeskError,
    HelpdeskRejected,
    HelpdeskUnavailable,
    NewTicket,
    TicketRef,
)
from chalicelib.models import Author, Platform, SocialMessage
from chalicelib.store import Conversation, UnstorableConversation
from chalicelib.sync.requesters import KnowsCustomers, contact_identities, known_customers

if TYPE_CHECKING:
    from chalicelib.sync.tickets import SyncReport, TicketSync

logger = logging.getLogger(__name__)

# Below this many new conversations in a batch the single path is as cheap (two requests
# per ticket against at least four for a bulk round) and faster: no job to wait for.
MIN_BULK_CONVERSATIONS = 10
# Jobs submitted before they are polled: Zendesk allows 30 queued or running per account,
# shared with every other integration and with this function's other shards.
JOBS_PER_WAVE = 10
FIRST_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 8.0
# A job still running after the polls of this long has its id written to its intent (a
# redelivered batch then follows it); one finished by then needs no such write: its tickets are
# recorded at once, and a crash before the first of them is recovered like a create without an
# answer (parked as maybe sent, the redrive looks for each ticket). Polls at 0.5, 1.5 and 3.5 s.
QUICK_JOB_SECONDS = 3.5
# How long one invocation waits for a wave's jobs before handing the batch back for a retry.
JOB_WAIT_SECONDS = 60.0
# A ticket job still unfinished this long after its submission is given up on: its
# messages are parked as "maybe sent", and the redrive looks for each ticket before creating.
JOB_PATIENCE_SECONDS = 900.0
_SUBMIT_ATTEMPTS = 3

# Intent states: submitting (the create may have been queued, its job id unknown), queued
# (the job id is known), refused (the helpdesk clearly did not take it).
SUBMITTING, QUEUED, REFUSED = "submitting", "queued", "refused"


@dataclass
class BulkResult:
    """What the batch stage did: ``done`` message ids need nothing more; messages of ``held``
    conversations wait for jobs still running (the batch is retried); ``maybe_created``
    message ids go through the single path looking for their ticket before creating one."""

    done: set[str] = field(default_factory=set)
    held: set[str] = field(default_factory=set)
    maybe_created: set[str] = field(default_factory=set)


@dataclass
class _Entry:
    """One new conversation's first message on its way to a bulk-created ticket."""

    message: SocialMessage
    conversation: Conversation | None = None
    requester_id: str | None = None
    requester_new: bool = False

    def state(self) -> list[Any]:
        return [self.message.message_id, self.requester_id, self.requester_new]


@dataclass
class _Chunk:
    """Up to ``max_items`` entries created by one bulk request, and its intent item."""

    key: str
    entries: list[_Entry]
    status: str | None = None  # None: nothing submitted yet
    job_id: str | None = None
    submitted_at: float = 0.0
    saved: str | None = None  # the status its intent item holds

    def intent(self) -> dict[str, Any]:
        return {"status": self.status, "job_id": self.job_id, "submitted_at": self.submitted_at,
                "entries": [entry.state() for entry in self.entries]}  # fmt: skip


class BatchStage:
    """Opens a batch's new conversations through ``writer``, for ``sync`` (one invocation)."""

    def __init__(
        self,
        sync: TicketSync,
        writer: BulkTicketWriter,
        *,
        min_conversations: int = MIN_BULK_CONVERSATIONS,
        job_wait_seconds: float = JOB_WAIT_SECONDS,
        job_patience_seconds: float = JOB_PATIENCE_SECONDS,
    ) -> None:
        self.sync, self.writer = sync, writer
        self.store = sync.store
        self.min_conversations = min_conversations
        self.job_wait_seconds = job_wait_seconds
        self.job_patience_seconds = job_patience_seconds

    def run(
        self,
        batch_id: str,
        messages: Sequence[SocialMessage],
        report: SyncReport,
        *,
        time_left: Callable[[], float] | None = None,
    ) -> BulkResult:
        """Open in bulk what can be; ``messages`` in sync order, ``batch_id`` stable across
        redeliveries of the batch. ``time_left()``: seconds this invocation may still wait."""
        result = BulkResult()
        candidates = self._candidates(messages)
        if len(candidates) < self.min_conversations:
            return result
        size = self.writer.max_items
        chunks = [
            _Chunk(
                _chunk_key(batch_id, index, candidates[start : start + size]),
                [_Entry(m) for m in candidates[start : start + size]],
            )
            for index, start in enumerate(range(0, len(candidates), size))
        ]
        for wave in range(0, len(chunks), JOBS_PER_WAVE):
            self._run_wave(chunks[wave : wave + JOBS_PER_WAVE], messages, report, result, time_left)
        return result

    # --- choosing ------------------------------------------------------------------------

    def _candidates(self, messages: Sequence[SocialMessage]) -> list[SocialMessage]:
        """The first message of each conversation, when it may open a ticket in bulk: a new
        message (no edit), without files (uploaded one by one), that opens a ticket."""
        seen: set[str] = set()
        found = []
        for message in messages:
            if message.conversation_key in seen:
                continue
            seen.add(message.conversation_key)
            if (
                message.edit_of is None
                and not message.attachments
                and self.sync.policy.opens_ticket(message)
                and not self.sync.is_noise(message)  # the single path marks it and opens nothing
            ):
                found.append(message)
        return found

    def _eligible(self, entry: _Entry, conversation: Conversation) -> bool:
        """True when the conversation has no ticket, nothing parked or being sent, and has not
        seen this message (the single path handles everything else)."""
        entry.conversation = conversation
        return (
            conversation.ticket_id is None
            and not conversation.has_parked
            and conversation.sending is None
            and entry.message.message_id not in conversation.synced
        )

    # --- one wave of chunks ------------------------------------------------------------------

    def _run_wave(
        self,
        chunks: list[_Chunk],
        messages: Sequence[SocialMessage],
        report: SyncReport,
        result: BulkResult,
        time_left: Callable[[], float] | None,
    ) -> None:
        by_id = {m.message_id: m for m in messages}
        fresh: list[_Chunk] = []
        for chunk in chunks:
            intent = self.store.get_bulk_intent(chunk.key)
            if intent is None:
                conversations = self.store.get_conversations([e.message.conversation_key for e in chunk.entries])
                chunk.entries = [e for e in chunk.entries if self._eligible(e, conversations[e.message.conversation_key])]
                fresh.append(chunk)
            else:
                self._resume(chunk, intent, by_id)
        self._find_requesters([e for c in fresh for e in c.entries], time_left)
        for chunk in fresh:
            chunk.entries = [e for e in chunk.entries if e.requester_id is not None]
        # Crisis decisions for the whole wave at once, before any chunk is submitted: a crisis that
        # starts in a later chunk then makes the earlier chunks' complaints incidents too (their
        # tickets do not exist yet, so nothing could link them afterwards). Answers are remembered.
        self.sync.crisis_problems([e.message for c in fresh for e in c.entries])
        for chunk in fresh:
            if chunk.entries:
                self._submit(chunk)
        jobs = self._follow_queued(chunks, time_left)
        for chunk in chunks:
            if chunk.status == SUBMITTING:  # its job may exist, unknown
                self._resolve_unknown_job(chunk, report, result)
            elif chunk.status == QUEUED and chunk.job_id:
                self._settle(chunk, jobs, report, result)

    def _follow_queued(self, chunks: list[_Chunk], time_left: Callable[[], float] | None) -> dict[str, BulkJob | None]:
        """Follow the wave's queued jobs: first for ``QUICK_JOB_SECONDS``; the id of each job still
        running then is written to its intent before the wait goes on (same polls as one wait)."""
        queued = [c for c in chunks if c.status == QUEUED and c.job_id]
        quick = min(QUICK_JOB_SECONDS, self.job_wait_seconds)
        jobs = self._follow([c.job_id for c in queued if c.job_id], time_left, max_wait=quick)
        running = [c for c in queued if c.job_id not in jobs or _running(jobs[c.job_id])]
        for chunk in running:
            if chunk.saved != QUEUED:
                self._save(chunk)
        if running and self.job_wait_seconds > quick:
            later = self._follow(
                [c.job_id for c in running if c.job_id],
                time_left,
                max_wait=self.job_wait_seconds - quick,
                first_pause=_next_pause(quick),
            )
            jobs.update(later)
        return jobs

    def _resolve_unknown_job(self, chunk: _Chunk, report: SyncReport, result: BulkResult) -> None:
        """A chunk whose job's id was never written. When some of its tickets were recorded, the
        job had finished (tickets are recorded only from a finished job): the others are looked
        for by the single path before it creates one. Otherwise its job may still be running:
        parked as maybe sent, the redrive looks for each ticket."""
        conversations = self.store.get_conversations([e.message.conversation_key for e in chunk.entries])
        recorded = [e for e in chunk.entries if e.message.message_id in conversations[e.message.conversation_key].synced]
        if not recorded:
            self._park_all(chunk, report, result, "its bulk creation had no clear answer")
            return
        for entry in chunk.entries:
            if entry in recorded:
                result.done.add(entry.message.message_id)
            else:
                result.maybe_created.add(entry.message.message_id)

    def _save(self, chunk: _Chunk) -> None:
        self.store.save_bulk_intent(chunk.key, chunk.intent())
        chunk.saved = chunk.status

    def _resume(self, chunk: _Chunk, intent: dict[str, Any], by_id: dict[str, SocialMessage]) -> None:
        """A redelivered batch: the chunk as recorded before its bulk request."""
        chunk.status, chunk.job_id = intent.get("status"), intent.get("job_id")
        chunk.saved = chunk.status
        chunk.submitted_at = float(intent.get("submitted_at") or 0.0)
        entries = []
        for message_id, requester_id, requester_new in intent.get("entries") or []:
            message = by_id.get(message_id)
            if message is not None:
                entries.append(_Entry(message, None, requester_id, bool(requester_new)))
        chunk.entries = entries if chunk.status != REFUSED else []

    # --- requesters ------------------------------------------------------------------------

    def _find_requesters(self, entries: list[_Entry], time_left: Callable[[], float] | None) -> None:
        """Each entry's helpdesk user: the one saved for the person (found again after a merge
        or re-created, which ``external_id`` would not find), else upserted in bulk, which finds
        everyone else's by ``external_id`` (the single path also looks in the person's other
        conversations first: a query each, which a burst of new customers does not need). One
        that cannot be had stays None (the single path creates it). An author with a phone or
        email is first looked for among the helpdesk's users (``sync/requesters.py``: the one who
        holds it is the requester); the others are upserted with the identities nobody holds."""
        identities = list(dict.fromkeys((e.message.platform.value, e.message.author.platform_id) for e in entries))
        saved = self.store.requester_mappings(self.sync.helpdesk.name, identities)
        unknown: dict[tuple[Platform, str], list[_Entry]] = {}
        for entry in entries:
            message = entry.message
            known = saved.get((message.platform.value, message.author.platform_id))
            if known:
                entry.requester_id = known
            else:
                unknown.setdefault((message.platform, message.author.platform_id), []).append(entry)
        creatable = self._known_customers(unknown)
        people = list(unknown)
        size = self.writer.max_items
        for wave in range(0, len(people), size * JOBS_PER_WAVE):
            groups = [people[s : s + size] for s in range(wave, min(wave + size * JOBS_PER_WAVE, len(people)), size)]
            submitted: dict[str, list[tuple[Platform, str]]] = {}
            for group in groups:
                authors: list[tuple[Platform, Author]] = [(p, creatable[(p, a)]) for p, a in group]
                try:
                    submitted[self._submit_with_retries(partial(self.writer.submit_requesters, authors))] = group
                except HelpdeskError as exc:  # the single path creates these one by one
                    logger.warning("bulk requester upsert not taken", extra={"reason": type(exc).__name__})
            users = self._follow(list(submitted), time_left)
            for job_id, group in submitted.items():
                job = users.get(job_id)
                for item in job.items if job is not None and job.finished else ():
                    if item.record_id is None or not 0 <= item.index < len(group):
                        continue
                    platform, author_id = group[item.index]
                    if item.external_id is not None and item.external_id.lower() != f"{platform.value}:{author_id}".lower():
                        continue  # not the person sent at this index: not trusted
                    for entry in unknown[(platform, author_id)]:
                        entry.requester_id, entry.requester_new = item.record_id, True

    def _known_customers(self, unknown: dict[tuple[Platform, str], list[_Entry]]) -> dict[tuple[Platform, str], Author]:
        """Known customers among the people to upsert, looked up together (``requesters.known_customers``:
        a search per hundred identities on Zendesk): an author whose phone or email one user holds
        gets that user (and leaves ``unknown``); the rest, as their new users get them. An author
        whose lookup failed is left to the single path."""
        helpdesk = self.sync.helpdesk
        authors = {person: self.sync.author_of(waiting[0].message) for person, waiting in unknown.items()}
        looked_up = [person for person, author in authors.items() if contact_identities(author)]
        if looked_up and isinstance(helpdesk, KnowsCustomers):
            for person, known in zip(looked_up, known_customers(helpdesk, [authors[p] for p in looked_up]), strict=True):
                if known is None:
                    del unknown[person], authors[person]
                elif known.user_id is not None:
                    for entry in unknown.pop(person):
                        entry.requester_id, entry.requester_new = known.user_id, True
                    del authors[person]
                else:
                    authors[person] = known.creatable(authors[person])
        return authors

    # --- tickets ---------------------------------------------------------------------------

    def _submit(self, chunk: _Chunk) -> None:
        """Record the intent, then queue the chunk's creation; the intent says how it went."""
        chunk.status, chunk.submitted_at = SUBMITTING, self.sync.now()
        self._save(chunk)
        # Which crisis problem each new ticket joins (crisis/tickets.py), asked as the single path asks.
        problems = self.sync.crisis_problems([e.message for e in chunk.entries if e.requester_id is not None])
        tickets = [
            NewTicket(e.message, e.requester_id, self.sync.routing_for(e.message), problems.get(e.message.message_id))
            for e in chunk.entries
            if e.requester_id is not None
        ]
        try:
            chunk.job_id = self._submit_with_retries(partial(self.writer.submit_tickets, tickets))
        except HelpdeskUnavailable as exc:
            if exc.maybe_applied:
                return  # stays SUBMITTING: parked once the wave is followed
            self._refuse(chunk, exc)
            return
        except HelpdeskRejected as exc:
            self._refuse(chunk, exc)
            return
        chunk.status = QUEUED  # its intent says so only if the job outlives the first polls (_follow_queued)

    def _refuse(self, chunk: _Chunk, exc: HelpdeskError) -> None:
        """The helpdesk did not take the chunk: its messages go the single way (also on a retry)."""
        logger.warning("bulk ticket creation not taken", extra={"reason": type(exc).__name__, "tickets": len(chunk.entries)})
        chunk.status, chunk.entries = REFUSED, []
        self._save(chunk)

    def _submit_with_retries(self, submit: Callable[[], str]) -> str:
        """``submit()``, again after a wait when the helpdesk clearly did not take it (429,
        ``TooManyJobs``, 503 with Retry-After); an ambiguous failure is never repeated."""
        for attempt in range(_SUBMIT_ATTEMPTS):
            try:
                return submit()
            except HelpdeskUnavailable as exc:
                if exc.maybe_applied or attempt + 1 >= _SUBMIT_ATTEMPTS:
                    raise
                self.sync.wait(exc.retry_after or self.sync.backoff_seconds * 2**attempt)
        raise AssertionError("unreachable")

    def _follow(
        self,
        job_ids: list[str],
        time_left: Callable[[], float] | None,
        *,
        max_wait: float | None = None,
        first_pause: float = FIRST_POLL_SECONDS,
    ) -> dict[str, BulkJob | None]:
        """Each job's last state, polled until it finished or the wait is over (``BulkTicketWriter.follow``)."""
        return self.writer.follow(
            job_ids,
            max_wait=self.job_wait_seconds if max_wait is None else max_wait,
            wait=self.sync.wait,
            time_left=time_left,
            first_pause=first_pause,
            max_pause=MAX_POLL_SECONDS,
        )

    def _settle(self, chunk: _Chunk, jobs: dict[str, BulkJob | None], report: SyncReport, result: BulkResult) -> None:
        """Write a finished job's tickets back; leave an unfinished one (or one that could not
        be read) for the retry, until ``job_patience_seconds`` after its submission."""
        assert chunk.job_id is not None
        job = jobs.get(chunk.job_id)
        if chunk.job_id not in jobs or (job is not None and not job.finished):
            if self.sync.now() - chunk.submitted_at >= self.job_patience_seconds:
                self._park_all(chunk, report, result, f"bulk job {chunk.job_id} did not finish in time")
            else:
                result.held.update(e.message.conversation_key for e in chunk.entries)
            return
        items: dict[int, BulkItem] = {item.index: item for item in job.items} if job is not None else {}
        for index, entry in enumerate(chunk.entries):
            item = items.get(index)
            if job is None or item is None:
                # The job is gone (or said nothing of it): the ticket may exist; looked for first.
                result.maybe_created.add(entry.message.message_id)
            elif item.record_id is not None and entry.requester_id is not None:
                self._record(entry, item.record_id, report, result)
            else:
                logger.info("bulk item failed; sent on its own", extra={"reason": (item.error or "")[:200]})

    def _record(self, entry: _Entry, ticket_id: str, report: SyncReport, result: BulkResult) -> None:
        assert entry.requester_id is not None
        message = entry.message
        conversation = entry.conversation or self.store.get_conversation(message.conversation_key)
        if message.message_id not in conversation.synced:
            ticket = TicketRef(ticket_id, "new")
            try:
                outcome = self.sync.record_bulk_opening(
                    message, conversation, ticket, entry.requester_id, new=entry.requester_new
                )
            except UnstorableConversation:
                # DynamoDB refuses this conversation's bookkeeping: the single path finds the
                # ticket (by external_id) instead of creating one, and parks it unrecorded.
                result.maybe_created.add(message.message_id)
                return
            report.add(outcome)
        result.done.add(message.message_id)

    def _park_all(self, chunk: _Chunk, report: SyncReport, result: BulkResult, reason: str) -> None:
        """Park the chunk's messages not yet on a ticket, as maybe sent: the redrive looks
        for each ticket (by external_id and the message reference) before creating one."""
        for entry in chunk.entries:
            conversation = self.store.get_conversation(entry.message.conversation_key)
            if entry.message.message_id not in conversation.synced:
                report.add(self.sync.park_maybe_sent(entry.message, conversation, reason))
            result.done.add(entry.message.message_id)


def _running(job: BulkJob | None) -> bool:
    return job is not None and not job.finished


def _next_pause(waited: float) -> float:
    """The pause that follows ``waited`` seconds of doubling pauses from ``FIRST_POLL_SECONDS``."""
    pause, total = FIRST_POLL_SECONDS, 0.0
    while total + pause <= waited:
        total += pause
        pause = min(pause * 2, MAX_POLL_SECONDS)
    return pause


def _chunk_key(batch_id: str, index: int, messages: Sequence[SocialMessage]) -> str:
    """The intent item's key: the same for the same chunk of a redelivered batch."""
    digest = hashlib.sha256("\n".join(m.message_id for m in messages).encode()).hexdigest()[:24]
    return f"{batch_id}#{index}#{digest}"
