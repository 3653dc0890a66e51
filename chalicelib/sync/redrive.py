"""Redrive: bring parked messages back, in order, once.

Run it after the cause is fixed (``make redrive`` locally, ``make redrive STAGE=prod``
against AWS), or let the schedule do it. It works from two sources: the dead-letter
queue's notices and a sweep of the table for conversations with parked messages (so
a lost notice loses nothing). Each conversation is replayed under a lease, so two
redrives running at once (EventBridge delivers at least once; an operator's manual
run during a scheduled one) never replay the same conversation together.

A head that has been refused for longer than ``set_aside_after`` no longer blocks its
conversation: it is set aside (still parked and retried every run, reported as
escalated) and the messages behind it go on. A head the helpdesk merely cannot take
right now (an outage) is never set aside: order matters more than a detour around an
outage, and the age of the oldest parked head is reported for the alarm.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from chalicelib.store import ParkedEntry
from chalicelib.sync.tickets import DELIVERED, Outcome

if TYPE_CHECKING:
    from chalicelib.store import MessageStore
    from chalicelib.sync.deadletter import DeadLetterQueue, ParkedMessage
    from chalicelib.sync.tickets import TicketSync

logger = logging.getLogger(__name__)

DEFAULT_SET_ASIDE_AFTER = timedelta(hours=1)
LEASE_SECONDS = 300.0
PAGE = 25  # parked entries read at a time
_DONE = DELIVERED | {Outcome.DUPLICATE}


@dataclass
class RedriveReport:
    """What one redrive pass did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    received: int = 0  # queue notices read
    conversations: int = 0  # conversations replayed
    leased_elsewhere: int = 0  # skipped: another redrive holds them
    set_aside: int = 0
    oldest_parked_seconds: float = 0.0  # how long the longest-blocked conversation has waited
    stopped_early: bool = False  # ran out of time; the rest waits for the next run

    @property
    def delivered(self) -> int:
        """Messages that reached their ticket in this pass."""
        return sum(self.outcomes[o.value] for o in DELIVERED)

    def metrics(self) -> dict[str, int]:
        """Counts to publish (outcomes, plus the pass's own)."""
        return {
            **self.outcomes,
            "conversations": self.conversations,
            "leased_elsewhere": self.leased_elsewhere,
            "set_aside": self.set_aside,
        }


def redrive(
    store: MessageStore,
    sync: TicketSync,
    dead_letters: DeadLetterQueue,
    *,
    max_batches: int = 100,
    visibility_timeout: int = 300,
    remaining_seconds: Callable[[], float] | None = None,
    reserve_seconds: float = 150.0,
    set_aside_after: timedelta = DEFAULT_SET_ASIDE_AFTER,
    lease_seconds: float = LEASE_SECONDS,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> RedriveReport:
    """Replay parked messages: every conversation with a notice on the queue or parked
    messages in the table, longest blocked first, until done or close to the timeout."""
    report = RedriveReport()
    owner = uuid.uuid4().hex
    notices: dict[str, list[ParkedMessage]] = {}
    for _ in range(max_batches):
        batch = dead_letters.receive(max_messages=10, visibility_timeout=visibility_timeout)
        if not batch:
            break
        report.received += len(batch)
        for parked in batch:
            notices.setdefault(parked.conversation_key, []).append(parked)

    blocked = store.blocked_conversations()
    started = now()
    for _, since in blocked:
        age = _age(since, started)
        report.oldest_parked_seconds = max(report.oldest_parked_seconds, age)
    keys = list(dict.fromkeys([key for key, _ in blocked] + list(notices)))
    failures: list[Exception] = []
    for key in keys:
        if remaining_seconds is not None and remaining_seconds() < reserve_seconds:
            report.stopped_early = True
            break
        lease = f"redrive#{key}"
        try:
            leased = store.acquire_lease(lease, owner, lease_seconds)
        except Exception as exc:  # noqa: BLE001 - e.g. throttled: this conversation waits for the next run
            failures.append(exc)
            continue
        if not leased:
            report.leased_elsewhere += 1
            continue
        try:
            report.conversations += 1
            try:
                _replay(store, sync, key, report, lease, owner, lease_seconds, set_aside_after, now)
            except Exception as exc:  # noqa: BLE001 - the other conversations go on; raised at the end
                failures.append(exc)
                logger.error("redrive of a conversation failed", extra={"conversation_key": key, "reason": repr(exc)[:300]})
                continue
            for notice in notices.pop(key, []):
                if notice.unrecorded:
                    _replay_unrecorded(store, sync, notice, report, dead_letters)
                elif not store.is_parked(key, notice.message_id):
                    dead_letters.delete(notice)  # delivered (now or earlier) or gone
                else:
                    dead_letters.release(notice)  # still parked: seen again by the next run
        finally:
            store.release_lease(lease, owner)
    for left in notices.values():  # not reached this run (time ran out, or leased elsewhere)
        for notice in left:
            dead_letters.release(notice)
    if report.oldest_parked_seconds > set_aside_after.total_seconds():
        logger.error(
            "a parked message has waited longer than the limit",
            extra={"oldest_parked_seconds": round(report.oldest_parked_seconds)},
        )
    if failures:  # the invocation fails (and is seen failing) after doing what it could
        raise failures[0]
    return report


def _replay(
    store: MessageStore,
    sync: TicketSync,
    key: str,
    report: RedriveReport,
    lease: str,
    owner: str,
    lease_seconds: float,
    set_aside_after: timedelta,
    now: Callable[[], datetime],
) -> None:
    """One conversation: messages set aside (out of order), then the parked ones in order."""
    for entry in store.parked_entries(key, aside=True):
        message = store.get_message(key, entry.message_id)
        _outcome(_forget(sync, entry) if message is None else sync.sync_message(message, redrive=entry), report)
    renewed = time.monotonic()
    while True:
        entries = store.parked_entries(key, limit=PAGE)  # in parking order, a page at a time
        if not entries:
            sync.heal_counters(key)
            return
        for entry in entries:
            if time.monotonic() - renewed > lease_seconds / 3:  # renewed well before it runs out
                if not store.acquire_lease(lease, owner, lease_seconds):
                    return
                renewed = time.monotonic()
            message = store.get_message(key, entry.message_id)
            if message is None:  # expired by TTL or erased on request: nothing left to send
                _outcome(_forget(sync, entry), report)
                continue
            outcome = sync.sync_message(message, redrive=entry)
            _outcome(outcome, report)
            if outcome in _DONE:
                continue
            if outcome is Outcome.STILL_REJECTED and _age(entry.parked_at, now()) > set_aside_after.total_seconds():
                sync.set_aside(entry)
                report.set_aside += 1
                logger.error(
                    "parked message set aside: the helpdesk keeps refusing it; later messages go on",
                    extra={"conversation_key": key, "message_id": entry.message_id, "reason": entry.reason},
                )
                continue
            return


def _forget(sync: TicketSync, entry: ParkedEntry) -> Outcome:
    sync.forget_parked(entry)
    return Outcome.DUPLICATE


def _replay_unrecorded(
    store: MessageStore, sync: TicketSync, notice: ParkedMessage, report: RedriveReport, dead_letters: DeadLetterQueue
) -> None:
    """A notice that is the only record of its message: delete it only once delivered."""
    message = store.get_message(notice.conversation_key, notice.message_id)
    entry = ParkedEntry(notice.conversation_key, -1, notice.message_id, notice.reason, unrecorded=True)
    outcome = Outcome.DUPLICATE if message is None else sync.sync_message(message, redrive=entry)
    _outcome(outcome, report)
    if outcome in _DONE:
        dead_letters.delete(notice)
    else:
        dead_letters.release(notice)


def _outcome(outcome: Outcome, report: RedriveReport) -> None:
    report.outcomes[outcome.value] += 1


def _age(iso: str, now: datetime) -> float:
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (now - moment).total_seconds())
