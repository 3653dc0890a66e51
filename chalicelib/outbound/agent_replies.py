"""An agent's answer in the helpdesk goes back to the platform the customer wrote on.

``AgentReplies(store, helpdesk, dispatcher, now).handle(event)`` takes a verified
``agent_events.AgentEvent``:

* ``agent_comment`` from Zendesk: the trigger names the ticket, nothing more (its body
  carries only ids, see ``agent_events``). The ticket's comments of the last
  ``REPLY_LOOKBACK`` are read through the API (``helpdesk.ticket_comments``) and every
  public comment by an agent is sent, oldest first, each at most once:

  - "by an agent": its author's role is agent or admin, it is not the ticket's requester
    nor the bridge's API user (``ZENDESK_EMAIL``), and it was not written through the API
    (``via.channel`` ``api``: the bridge's own writes, the same rule as the trigger's) or
    by a trigger (``rule``: auto-replies). Internal notes are never sent;
  - two comments before one delivery both go, in order; the second comment's own
    delivery then finds both in the ledger. A comment another invocation is sending
    right now is waited for (up to ~10 s) before a later one is sent;
  - when the ticket (or our table) cannot be read, the delivery answers 503 and a
    ``RECHECK#<helpdesk>#<ticket>`` item in the retry queue has the schedule read the
    ticket again (backing off; given up with a note after ``max_attempts``), so a refused
    delivery loses no answer. A delivery that finds no new agent answer at all has the
    ticket read again once too, in case the comment was not readable yet.

* ``agent_comment`` with a ``comment_id`` (Freshdesk: ``freshdesk_events`` reads the
  conversations itself): that one comment. Either way, one comment's way out is: the
  conversation's messages are read (``CONV#<key>`` / ``MSG#...``), the reply target is
  built (``replies.target_from_messages``: the ticket's customer and their latest message
  still on the platform; a private answer never reaches anyone else in a thread) and the
  text is sent through the ``ReplyDispatcher``, publicly, or privately when the ticket has
  the tag ``socialdesk_private``. Then:

  - the answer is stored as an OUTBOUND message whose id is the platform's id for it, so
    the platform's echo webhook of our own post hits the same item and is deduplicated
    (outbound messages are never ticketed). A platform that answers success without an
    id (LINE before 2023 answered ``{}``) still gets it stored, under
    ``<helpdesk>-reply-<ticket>-<comment>``, and everything below;
  - the conversation's first response time is recorded once (item ``CONV#<key>`` /
    ``RESPONSE``: ``first_response_at``, ``first_response_seconds`` from the customer's
    first message; ``last_response_at``, ``responses``);
  - the agent gets an internal note: "Sent to the customer on X ..." -- or, for a failure
    (``ReplyFailed``), the sender's plain words ("Not sent: ..."), plus when socialdesk
    retries ("retrying at 14:05 UTC").

* ``ticket_status``: the ticket's status is read from the helpdesk (a notification may be
  late or out of order; the ticket is the truth) and written to the conversation's
  ``ticket_status`` when the event is about the conversation's current ticket. The sync
  then follows the helpdesk's rules for the next customer message: a comment reopens a
  solved ticket (private chats start a new one), a closed ticket gets a follow-up.

Sending at most once -- the reply ledger
---------------------------------------
Each agent comment has a ledger item ``CONV#<key>`` / ``REPLY#<helpdesk>#<comment id>``
(``<helpdesk>`` is the adapter's ``name``: ``zendesk``, ``freshdesk``). It is the one guard
against sending twice, and it works across execution environments: every transition is a
conditional write.

=============  ===========================================================================
``sending``     claimed (conditional put) right before the platform is called
``sent``        the platform answered; ``platform_message_id`` recorded
``retry``       a transient failure that provably posted nothing (``ReplyFailed.retry_is_safe``:
                rate limit, no connection, 5xx before processing), or the conversation
                could not be read: retried at ``retry_at`` by ``retry_due`` (scheduled), at
                most ``max_attempts`` times in all, then noted
``failed``      the platform refused it (token expired, window closed...), or the attempts
                ran out: noted, not retried
``unknown``     the request may have reached the platform but no answer came back
                (``duplicate_risk``), or a ``sending`` claim was found older than the
                lease (the invocation died mid-send): noted, never resent automatically
``held``        an approval rule holds the answer for a lead (``outbound/approval.py``):
                noted, in no retry queue; ``held`` -> ``sending`` (then as above) once
                approved, ``held`` -> ``withdrawn`` (noted, never sent) once withdrawn
=============  ===========================================================================

A repeated event finds the item: ``sent`` -> nothing; ``sending`` within the lease -> it is
being sent right now, nothing; ``sending`` past the lease -> ambiguous. Why not resend an
ambiguous one: most platforms have no idempotency key (only LINE's ``X-Line-Retry-Key``),
so a resend may post the answer twice in public, which is worse than a short delay: the
agent gets a note saying so ("check the conversation before sending again") and decides.
A platform's transient failure is retried by the schedule (``retry_due``), not by answering
the helpdesk an error: its own retries are short and not guaranteed. (Our own table
failing before anything was sent does answer 503, with the claim given back as a retry
due at once -- counted as an attempt -- taken by the redelivery or the schedule.)

The pending retries are found through the table's ``by-author`` index as a sparse key
(``gsi1pk = RETRY#agent_reply#<helpdesk>``, ``gsi1sk`` = when): no extra index, no scan,
and a deployment that switched helpdesks never has its retries crowded out by the other
helpdesk's. Items written before the helpdesk was part of the key (``gsi1pk =
RETRY#agent_reply``) are still read, filtered to this helpdesk and paged through, and move
to the new key when next claimed; the old partition empties itself (items expire with the
ledger's TTL). A ``sending`` claim is in that queue too, due when its lease ends: if the
invocation died mid-send, the schedule finds it still ``sending`` and tells the agent
(``unknown``) even when the helpdesk never delivers the event again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from chalicelib.helpdesks.base import HelpdeskError, HelpdeskRejected, HelpdeskUnavailable, TicketClosed
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.ops import metrics as ops_metrics
from chalicelib.outbound.agent_events import APPROVAL_EVENT, COMMENT_EVENT, REPEAT_OUTCOMES, STATUS_EVENT, AgentEvent
from chalicelib.outbound.approval import (
    APPROVED,
    ApprovalRules,
    ConversationFacts,
    ReplyFacts,
    TicketFacts,
    held_note,
    needs_approval,
    with_crisis_state,
    withdrawn_note,
)
from chalicelib.outbound.base import (
    UNAVAILABLE,
    ReplyFailed,
    ReplyTarget,
    SentReply,
    describe_time,
    platform_label,
)
from chalicelib.outbound.dispatch import place_name, target_from_messages
from chalicelib.store import ConversationConflict, StoreUnavailable, conversation_pk
from chalicelib.store.ledger import DUE_ATTRIBUTES, Attr, Ledger, in_queue

if TYPE_CHECKING:
    from boto3.dynamodb.conditions import ConditionBase

    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.helpdesks.zendesk.adapter import TicketComments
    from chalicelib.outbound.dispatch import ReplyDispatcher
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

HELPDESK = "zendesk"
LEGACY_RETRY_PARTITION = "RETRY#agent_reply"  # the queue's key before it named the helpdesk
MAX_LEGACY_PAGES = 5  # pages of the old queue read per run (it only empties over time)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_LEASE = timedelta(minutes=3)  # longer than the API function's timeout
MIN_RETRY_DELAY = timedelta(seconds=30)
RECHECK_DELAY = timedelta(minutes=2)
# Agent comments older than this are never sent: a helpdesk delivers its webhooks within
# a day (Freshdesk defers those over its rate limit up to 24 h; Zendesk retries for
# minutes), and an answer older than that is better re-sent by the agent, knowingly.
REPLY_LOOKBACK = timedelta(hours=26)
# Channels of comments that are not an agent answering: written through the API (the
# bridge, apps) or added by a trigger or automation.
# A comment Zendesk copies from a problem onto its incidents comes ``via`` ``linked_problem``:
# the crisis fan-out (``outbound/fanout.py``) sends the problem's answer to each incident once.
NOT_AGENT_CHANNELS = frozenset({"api", "rule", "linked_problem"})
AGENT_ROLES = frozenset({"agent", "admin"})
ORDER_WAIT_POLLS, ORDER_WAIT_SECONDS = 20, 0.5
APPROVAL_WAIT_POLLS = 6  # ~3 s: Zendesk gives a webhook about 12 s
_CONFLICT_ATTEMPTS = 8


def retry_partition(helpdesk: str) -> str:
    """The retry queue's index key of one helpdesk's items."""
    return f"{LEGACY_RETRY_PARTITION}#{helpdesk}"


# How the answer went out, in the words of the ticket note ("Sent to the customer on X as a public reply.").
_SENT_VIA_WORDS = {
    "public_reply": " as a public reply",
    "private_reply": " as a private message",
    "human_agent_tag": " with the Human Agent tag (past the 24-hour window)",
    "line_reply": " as a reply",
    "line_push": " as a push message",
}


class Outcome(str, Enum):
    """What handling one event did (also the metric names)."""

    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED_NOTED = "failed_noted"
    AMBIGUOUS_NOTED = "ambiguous_noted"
    ALREADY_SENT = "already_sent"
    ALREADY_HANDLED = "already_handled"
    IN_PROGRESS = "in_progress"
    WAITING_RETRY = "waiting_retry"
    IGNORED_OWN = "ignored_own_comment"
    IGNORED_NOT_BRIDGED = "ignored_not_bridged"
    IGNORED_OTHER_TICKET = "ignored_other_ticket"
    NO_NEW_REPLY = "no_new_reply"
    TICKET_NOT_READABLE = "ticket_not_readable"
    RECHECK_FAILED = "recheck_failed"
    ERROR = "error"
    STATUS_UPDATED = "status_updated"
    STATUS_UNCHANGED = "status_unchanged"
    STATUS_UNKNOWN = "status_unknown"
    HELD = "held_for_approval"
    AWAITING_APPROVAL = "awaiting_approval"
    WITHDRAWN = "withdrawn"
    NOTHING_HELD = "nothing_held"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _ms(moment: datetime) -> int:
    return int(_utc(moment).timestamp() * 1000)


# --- the ledger ------------------------------------------------------------------------------


@dataclass
class ReplyRecord:
    """One agent comment's way to the platform (see the module docstring)."""

    conversation_key: str
    comment_id: str
    ticket_id: str
    text: str
    private: bool = False
    author_id: str | None = None
    author_name: str | None = None
    state: str = "sending"
    attempts: int = 1
    claimed_at_ms: int = 0
    retry_at: datetime | None = None
    platform_message_id: str | None = None
    failure_kind: str | None = None
    note: str | None = None
    noted: bool = False
    helpdesk: str = HELPDESK
    approved: bool = False  # a lead approved it: the approval rules are not asked again

    @property
    def idempotency_key(self) -> str:
        """The dispatcher's key for this answer (LINE turns it into ``X-Line-Retry-Key``)."""
        return f"{self.helpdesk}:{self.ticket_id}:{self.comment_id}"

    @classmethod
    def from_event(cls, event: AgentEvent, now: datetime, *, helpdesk: str = HELPDESK) -> ReplyRecord:
        assert event.conversation_key and event.comment_id
        return cls(
            conversation_key=event.conversation_key,
            comment_id=event.comment_id,
            ticket_id=event.ticket_id,
            text=event.text,
            private=event.private,
            author_id=event.author_id,
            author_name=event.author_name,
            claimed_at_ms=_ms(now),
            helpdesk=helpdesk,
        )


class ReplyLedger:
    """The ``REPLY#<helpdesk>#<comment id>`` items; every transition is a conditional write
    through the store's one ledger (``store.ledger``)."""

    def __init__(self, ledger: Ledger, *, ttl_days: int = 30, lease: timedelta = DEFAULT_LEASE, helpdesk: str = HELPDESK) -> None:
        self._ledger = ledger
        self.ttl_days = ttl_days
        self.lease = lease
        self.helpdesk = helpdesk
        self.queue = retry_partition(helpdesk)

    def key(self, conversation_key: str, comment_id: str) -> dict[str, dict[str, str]]:
        return {"pk": _s(conversation_pk(conversation_key)), "sk": _s(f"REPLY#{self.helpdesk}#{comment_id}")}

    def _key(self, record: ReplyRecord) -> dict[str, dict[str, str]]:
        return self.key(record.conversation_key, record.comment_id)

    def _claimed_by(self, record: ReplyRecord) -> ConditionBase:
        """Still the ``sending`` claim ``record`` was read with (nobody took it over since)."""
        return Attr("state").eq("sending") & Attr("claimed_at").eq(record.claimed_at_ms)

    def get(self, conversation_key: str, comment_id: str) -> ReplyRecord | None:
        item = self._ledger.get(self.key(conversation_key, comment_id))
        return self._record(conversation_key, comment_id, item) if item else None

    def _record(self, conversation_key: str, comment_id: str, item: dict[str, Any]) -> ReplyRecord:
        return ReplyRecord(
            conversation_key=conversation_key,
            comment_id=comment_id,
            ticket_id=item["ticket_id"]["S"],
            text=item.get("text", {}).get("S", ""),
            private=bool(item.get("private", {}).get("BOOL", False)),
            author_id=item.get("author_id", {}).get("S"),
            author_name=item.get("author_name", {}).get("S"),
            state=item["state"]["S"],
            attempts=int(item.get("attempts", {}).get("N", "1")),
            claimed_at_ms=int(item.get("claimed_at", {}).get("N", "0")),
            retry_at=_parse_iso(item.get("retry_at", {}).get("S")),
            platform_message_id=item.get("platform_message_id", {}).get("S"),
            failure_kind=item.get("failure_kind", {}).get("S"),
            note=item.get("note", {}).get("S"),
            noted=bool(item.get("noted", {}).get("BOOL", False)),
            helpdesk=self.helpdesk,
            approved=bool(item.get("approved", {}).get("BOOL", False)),
        )

    def _lease_check(self, now: datetime) -> dict[str, str]:
        # Looked at by the schedule once the lease is over, in case this invocation dies mid-send.
        return in_queue(self.queue, _iso(now + self.lease))

    def claim_new(self, record: ReplyRecord, now: datetime) -> bool:
        """``sending``, unless the comment already has an item."""
        item: dict[str, Any] = {
            "item_type": "agent_reply",
            "state": "sending",
            "ticket_id": record.ticket_id,
            "comment_id": record.comment_id,
            "text": record.text,
            "private": record.private,
            "attempts": 1,
            "claimed_at": _ms(now),
            "created_at": _iso(now),
            "expires_at": int(_utc(now).timestamp()) + self.ttl_days * 86400,
            **self._lease_check(now),
        }
        if record.author_id:
            item["author_id"] = record.author_id
        if record.author_name:
            item["author_name"] = record.author_name
        return self._ledger.claim(self._key(record), item)

    def claim_retry(self, record: ReplyRecord, now: datetime) -> bool:
        """``retry`` -> ``sending`` once ``retry_at`` has passed (one worker wins)."""
        return self._ledger.move(
            self._key(record),
            set={"state": "sending", "claimed_at": _ms(now), **self._lease_check(now)},
            add={"attempts": 1},
            if_=Attr("state").eq("retry") & Attr("retry_at").lte(_iso(now)),
        )

    def take_over_stale(self, record: ReplyRecord, note: str) -> bool:
        """A ``sending`` claim nobody finished becomes ``unknown`` (exactly one caller wins)."""
        return self._ledger.move(
            self._key(record),
            set={"state": "unknown", "failure_kind": "interrupted", "note": note, "noted": False},
            remove=DUE_ATTRIBUTES,
            if_=self._claimed_by(record),
        )

    def mark_sent(self, record: ReplyRecord, sent: SentReply, now: datetime) -> None:
        self._ledger.move(
            self._key(record),
            set={"state": "sent", "platform_message_id": sent.platform_message_id, "sent_at": _iso(now), "via": sent.via or ""},
            remove=DUE_ATTRIBUTES,
        )

    def mark_retry(self, record: ReplyRecord, retry_at: datetime, kind: str, note: str, noted: bool) -> None:
        when = _iso(retry_at)
        self._ledger.move(
            self._key(record),
            set={
                "state": "retry",
                "retry_at": when,
                "failure_kind": kind,
                "note": note,
                "noted": noted,
                **in_queue(self.queue, when),
            },
        )

    def mark_final(self, record: ReplyRecord, state: str, kind: str, note: str, noted: bool) -> None:
        assert state in ("failed", "unknown")
        self._ledger.move(
            self._key(record),
            set={"state": state, "failure_kind": kind, "note": note, "noted": noted},
            remove=DUE_ATTRIBUTES,
        )

    def mark_held(self, record: ReplyRecord, note: str) -> bool:
        """Our ``sending`` claim -> ``held`` (out of the retry queue: only a decision moves it)."""
        return self._ledger.move(
            self._key(record),
            set={"state": "held", "note": note, "noted": False},
            remove=DUE_ATTRIBUTES,
            if_=self._claimed_by(record),
        )

    def release_held(self, record: ReplyRecord, now: datetime) -> bool:
        """``held`` -> ``sending``, approved (one caller wins; in the queue for the lease, like any claim)."""
        return self._ledger.move(
            self._key(record),
            set={"state": "sending", "approved": True, "claimed_at": _ms(now), **self._lease_check(now)},
            if_=Attr("state").eq("held"),
        )

    def withdraw_held(self, record: ReplyRecord, note: str) -> bool:
        """``held`` -> ``withdrawn``: never sent (one caller wins)."""
        return self._ledger.move(
            self._key(record),
            set={"state": "withdrawn", "note": note, "noted": False},
            if_=Attr("state").eq("held"),
        )

    def in_state(self, conversation_key: str, ticket_id: str, state: str = "held") -> list[ReplyRecord]:
        """The ticket's answers in ``state`` (by default: waiting for approval), oldest first."""
        items = self._ledger.partition(
            conversation_pk(conversation_key),
            sk_prefix=f"REPLY#{self.helpdesk}#",
            where=Attr("state").eq(state) & Attr("ticket_id").eq(ticket_id),
        )
        records = [self._record(conversation_key, item["comment_id"]["S"], item) for item in items]
        return sorted(records, key=lambda r: (r.claimed_at_ms, r.comment_id.zfill(20)))

    def mark_noted(self, record: ReplyRecord) -> None:
        self._ledger.move(self._key(record), set={"noted": True})

    def due(self, now: datetime, *, limit: int = 25) -> list[DueItem]:
        """Retries whose time has come, ``sending`` claims past their lease (an invocation
        that died mid-send) and tickets to read again, oldest first: this helpdesk's queue,
        then what is left of the queue's old, shared key (see the module docstring)."""
        until = _iso(now)
        found = [
            item
            for item in (_due_item(i, self.helpdesk) for i in self._ledger.due(self.queue, until, limit=limit).get("Items", []))
            if item is not None
        ]
        start: dict[str, Any] | None = None
        for _ in range(MAX_LEGACY_PAGES):
            if len(found) >= limit:
                break
            # Shared by every helpdesk: keep this one's.
            page = self._ledger.due(LEGACY_RETRY_PARTITION, until, limit=100, start=start, sk_prefix=f"REPLY#{self.helpdesk}#")
            found += [item for item in (_due_item(i, self.helpdesk) for i in page.get("Items", [])) if item is not None]
            start = page.get("LastEvaluatedKey")
            if start is None:
                break
        return found[:limit]

    # --- tickets to read again --------------------------------------------------------------

    def recheck_key(self, conversation_key: str, ticket_id: str) -> dict[str, dict[str, str]]:
        return {"pk": _s(conversation_pk(conversation_key)), "sk": _s(f"RECHECK#{self.helpdesk}#{ticket_id}")}

    def schedule_recheck(self, conversation_key: str, ticket_id: str, now: datetime, *, failures: int = 1) -> None:
        """Have the schedule read the ticket's comments again, ``RECHECK_DELAY`` after a first
        failure and twice as long after each further one (``failures`` so far)."""
        self._ledger.move(
            self.recheck_key(conversation_key, ticket_id),
            set={
                "item_type": "reply_recheck",
                "ticket_id": ticket_id,
                "failures": failures,
                "expires_at": int(_utc(now).timestamp()) + self.ttl_days * 86400,
                **in_queue(self.queue, _iso(now + RECHECK_DELAY * 2 ** (max(1, failures) - 1))),
            },
        )

    def recheck_failures(self, conversation_key: str, ticket_id: str) -> int:
        """How many times reading the ticket has failed so far."""
        item = self._ledger.get(self.recheck_key(conversation_key, ticket_id)) or {}
        return int(item.get("failures", {}).get("N", "0"))

    def finish_recheck(self, conversation_key: str, ticket_id: str, due_at: str) -> None:
        """The ticket was read: out of the queue -- unless a failed delivery put it back in
        meanwhile (it is then due at another time than ``due_at``)."""
        self._ledger.move(
            self.recheck_key(conversation_key, ticket_id),
            remove=(*DUE_ATTRIBUTES, "failures"),
            if_=Attr("gsi1sk").eq(due_at),
        )


@dataclass(frozen=True)
class DueItem:
    """Something in the retry queue: an answer (``comment_id``) or a ticket to read again."""

    conversation_key: str
    due_at: str  # its ``gsi1sk``
    comment_id: str | None = None
    ticket_id: str | None = None


def _due_item(item: dict[str, Any], helpdesk: str) -> DueItem | None:
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    key, due_at = pk.removeprefix("CONV#"), item.get("gsi1sk", {}).get("S", "")
    for prefix, field_name in ((f"REPLY#{helpdesk}#", "comment_id"), (f"RECHECK#{helpdesk}#", "ticket_id")):
        if sk.startswith(prefix):
            return DueItem(key, due_at, **{field_name: sk[len(prefix) :]})
    return None


# --- reading a conversation ------------------------------------------------------------------


def conversation_messages(store: MessageStore, key: str) -> list[SocialMessage]:
    """Every stored message of a conversation, the latest with their raw payload (LINE reply
    tokens, Telegram business connections live there)."""
    return store.conversation_messages(key)


def _platform_of(key: str) -> Platform:
    try:
        return Platform(key.split(":", 1)[0])
    except ValueError:
        return Platform.OTHER


# --- the orchestration -----------------------------------------------------------------------


# What a comment the ledger already knows is, when it is left to the ledger's schedule.
_KNOWN_STATES = {
    "sent": Outcome.ALREADY_SENT,
    "sending": Outcome.IN_PROGRESS,
    "retry": Outcome.WAITING_RETRY,
    "held": Outcome.AWAITING_APPROVAL,
}


def _ticket_facts(event: AgentEvent) -> TicketFacts:
    return TicketFacts(
        tags=frozenset(event.tags),
        priority=event.priority,
        ticket_type=event.ticket_type,
        ticket_id=event.ticket_id,
        problem_id=event.problem_id,
    )


def _summary(outcomes: list[Outcome]) -> Outcome:
    """One outcome for several comments: the last one something happened to, else the last."""
    fresh = [o for o in outcomes if o.value not in REPEAT_OUTCOMES]
    return fresh[-1] if fresh else (outcomes[-1] if outcomes else Outcome.NO_NEW_REPLY)


@dataclass
class RetryReport:
    """Counts of outcomes of one ``retry_due`` run."""

    outcomes: Counter[str] = field(default_factory=Counter)


@runtime_checkable
class TicketCommentReader(Protocol):
    """A helpdesk whose comment events name only the ticket (Zendesk): its comments are read."""

    def ticket_comments(self, ticket_id: str, *, since: datetime | None = None) -> TicketComments:
        """The ticket's tags, requester and comments (since ``since``), oldest first."""
        ...


class AgentReplies:
    """Turns verified helpdesk events into platform replies and conversation updates.

    ``helpdesk`` needs ``add_note(ticket_id, message, text)`` (internal notes), for events
    that name only the ticket ``ticket_comments(ticket_id, since=)`` (Zendesk), and, for
    status events, ``ticket_status(ticket_id)`` (optional; else the event's word is used).
    ``bridge_email``: the API user's email (``ZENDESK_EMAIL``): its comments are never sent.
    ``open_crisis(ticket id, problem id)``: whether a problem or incident ticket belongs to an
    open crisis (None: its type alone says so), for the approval rules.
    """

    def __init__(
        self,
        store: MessageStore,
        helpdesk: Helpdesk,
        dispatcher: ReplyDispatcher,
        now: Callable[[], datetime] = _utcnow,
        *,
        ledger: ReplyLedger | None = None,
        bridge_email: str | None = None,
        bridge_user_id: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        lease: timedelta = DEFAULT_LEASE,
        lookback: timedelta = REPLY_LOOKBACK,
        sleep: Callable[[float], None] = time.sleep,
        approval_rules: ApprovalRules | None = None,
        open_crisis: Callable[[str | None, str | None], bool] | None = None,
    ) -> None:
        self.store = store
        self.helpdesk = helpdesk
        self.dispatcher = dispatcher
        self._now = now
        self.helpdesk_name = str(getattr(helpdesk, "name", HELPDESK) or HELPDESK)
        self.ledger = ledger or ReplyLedger(
            store.ledger("reply ledger"),
            ttl_days=store.raw_ttl_days,
            lease=lease,
            helpdesk=self.helpdesk_name,
        )
        self.bridge_email = (bridge_email or "").strip().lower() or None
        self.bridge_user_id = (bridge_user_id or "").strip() or None
        self.max_attempts = max(1, max_attempts)
        self.lease = lease
        self.lookback = lookback
        self._sleep = sleep
        self.approval_rules = approval_rules or ApprovalRules()
        self.open_crisis = open_crisis

    def now(self) -> datetime:
        return _utc(self._now())

    # --- entry points ---------------------------------------------------------------------

    def handle(self, event: AgentEvent) -> Outcome:
        """Handle one verified, not yet seen event."""
        if event.kind == COMMENT_EVENT:
            return self.handle_comment(event)
        if event.kind == STATUS_EVENT:
            return self.handle_status(event)
        if event.kind == APPROVAL_EVENT:
            return self.handle_approval(event)
        raise ValueError(f"unknown event kind {event.kind!r}")

    def handle_comment(self, event: AgentEvent, *, resume: bool = True, approved: bool = False) -> Outcome:
        """Send a public agent comment to the customer, at most once (see the module docstring).

        An event without ``comment_id`` names only the ticket: its new agent comments are
        read from the helpdesk (``send_new_comments``). ``resume=False`` leaves a comment the
        ledger already knows to the ledger's own schedule. ``approved``: a lead approved it
        already (a crisis problem's answer): the approval rules are not asked."""
        if not event.conversation_key:
            return Outcome.IGNORED_NOT_BRIDGED
        if event.comment_id is None:
            return self.send_new_comments(event)
        if self._written_by_bridge(event):
            return Outcome.IGNORED_OWN
        now = self.now()
        record = replace(ReplyRecord.from_event(event, now, helpdesk=self.helpdesk_name), approved=approved)
        for _ in range(2):  # a record deleted between our put and our read: claim again once
            if self.ledger.claim_new(record, now):
                return self._attempt(record, ticket=_ticket_facts(event))
            existing = self.ledger.get(record.conversation_key, record.comment_id)
            if existing is not None:
                return self._resume(existing, now) if resume else _KNOWN_STATES.get(existing.state, Outcome.ALREADY_HANDLED)
        return Outcome.IN_PROGRESS

    def send_new_comments(self, event: AgentEvent) -> Outcome:
        """The ticket's public agent comments of the last ``lookback``, each sent at most once,
        oldest first. If the ticket or our table cannot be read, the schedule reads it again
        (``RECHECK#``) and the error is raised (the route answers 503). So it does when the
        ticket shows no new agent answer at all: the comment that fired the trigger may not
        be readable yet."""
        assert event.conversation_key
        try:
            outcome = _summary(self._send_comments_of(event.conversation_key, event.ticket_id, resume=True))
        except (HelpdeskUnavailable, StoreUnavailable, ConversationConflict):
            self._recheck_later(event.conversation_key, event.ticket_id)
            raise
        if outcome is Outcome.NO_NEW_REPLY:
            self._recheck_later(event.conversation_key, event.ticket_id)
        return outcome

    def _recheck_later(self, key: str, ticket_id: str) -> None:
        try:
            self.ledger.schedule_recheck(key, ticket_id, self.now())
        except StoreUnavailable as exc:
            logger.error("ticket recheck not scheduled", extra={"ticket_id": ticket_id, "reason": str(exc)})

    def _send_comments_of(self, key: str, ticket_id: str, *, resume: bool) -> list[Outcome]:
        try:
            if not isinstance(self.helpdesk, TicketCommentReader):
                raise HelpdeskRejected(f"{self.helpdesk_name} cannot list a ticket's comments")
            read = self.helpdesk.ticket_comments(ticket_id, since=self.now() - self.lookback)
        except HelpdeskRejected as exc:  # deleted, or not a ticket of this account
            logger.warning("ticket not readable; nothing sent", extra={"ticket_id": ticket_id, "reason": str(exc)})
            return [Outcome.TICKET_NOT_READABLE]
        outcomes: list[Outcome] = []
        previous = ""
        for comment in (c for c in read.comments if self.is_agent_answer(c, read.requester_id)):
            if outcomes and outcomes[-1] is Outcome.IN_PROGRESS:
                self._wait_while_sending(key, previous)  # keep the order of a concurrent delivery
            event = AgentEvent(
                kind=COMMENT_EVENT,
                ticket_id=ticket_id,
                conversation_key=key,
                tags=tuple(read.tags),
                comment_id=comment.comment_id,
                text=comment.text,
                author_id=comment.author_id,
                author_email=comment.author_email,
                author_name=comment.author_name,
                priority=read.priority,
                ticket_type=read.ticket_type,
                problem_id=read.problem_id,
            )
            outcomes.append(self.handle_comment(event, resume=resume))
            previous = comment.comment_id
        logger.info("agent comments handled", extra={"ticket_id": ticket_id, "outcomes": [o.value for o in outcomes]})
        return outcomes

    def is_agent_answer(self, comment: Any, requester_id: str | None) -> bool:
        """A public comment an agent wrote to the customer (see the module docstring)."""
        email = (comment.author_email or "").strip().lower()
        return (
            bool(comment.public)
            and comment.channel not in NOT_AGENT_CHANNELS
            and comment.author_role in AGENT_ROLES
            and comment.author_id != requester_id
            and not (self.bridge_email and email == self.bridge_email)
            and not (self.bridge_user_id and comment.author_id == self.bridge_user_id)
        )

    def handle_approval(self, event: AgentEvent) -> Outcome:
        """A lead's decision on the ticket's held answers: each is sent once (approved) or
        dropped with a note (withdrawn). Where the event names only the ticket (Zendesk), its
        comments are read first, so an answer written just before the decision is held (or
        sent) before the decision is applied."""
        key = event.conversation_key
        if not key:
            return Outcome.IGNORED_NOT_BRIDGED
        if isinstance(self.helpdesk, TicketCommentReader):
            self._send_comments_of(key, event.ticket_id, resume=True)
        # An answer written in the same update as the decision may be in another invocation's
        # hands right now (claimed, about to be held): wait a moment for it.
        for _ in range(APPROVAL_WAIT_POLLS):
            if not self.ledger.in_state(key, event.ticket_id, "sending"):
                break
            self._sleep(ORDER_WAIT_SECONDS)
        outcomes: list[Outcome] = []
        for record in self.ledger.in_state(key, event.ticket_id):
            if event.decision == APPROVED:
                now = self.now()
                if self.ledger.release_held(record, now):
                    outcomes.append(self._attempt(replace(record, state="sending", approved=True, claimed_at_ms=_ms(now))))
            elif self.ledger.withdraw_held(record, withdrawn_note()):
                if self._note(record, withdrawn_note()):
                    self.ledger.mark_noted(record)
                outcomes.append(Outcome.WITHDRAWN)
        logger.info("approval decided", extra={"ticket_id": event.ticket_id, "decision": event.decision, "held": len(outcomes)})
        return outcomes[-1] if outcomes else Outcome.NOTHING_HELD

    def _triage_state(self, record: ReplyRecord) -> dict[str, Any] | None:
        """The conversation's triage state (its latest signals), when it has one."""
        return self.store.get_conversation(record.conversation_key).triage

    def _hold(self, record: ReplyRecord, reason: str) -> Outcome:
        """Keep the answer for a lead's approval, with a note saying why and how to decide."""
        note = held_note(reason)
        if not self.ledger.mark_held(record, note):
            return Outcome.IN_PROGRESS  # our claim was taken over meanwhile
        if self._note(record, note):
            self.ledger.mark_noted(record)
        logger.info("reply held for approval", extra={"conversation": record.conversation_key, "ticket_id": record.ticket_id})
        return Outcome.HELD

    def _wait_while_sending(self, key: str, comment_id: str) -> None:
        """Wait (a few seconds at most) for another invocation to finish sending a comment."""
        for _ in range(ORDER_WAIT_POLLS):
            self._sleep(ORDER_WAIT_SECONDS)
            record = self.ledger.get(key, comment_id)
            if record is None or record.state != "sending":
                return

    def handle_status(self, event: AgentEvent) -> Outcome:
        """Record the ticket's current status on the conversation whose current ticket it is."""
        key = event.conversation_key
        if not key:
            return Outcome.IGNORED_NOT_BRIDGED
        conversation = self.store.get_conversation(key)
        if conversation.ticket_id != event.ticket_id or conversation.helpdesk not in (None, self.helpdesk_name):
            return Outcome.IGNORED_OTHER_TICKET  # an older ticket of the conversation, or another helpdesk's
        status = self._current_status(event)
        if status is None:
            return Outcome.STATUS_UNKNOWN
        for _ in range(_CONFLICT_ATTEMPTS):
            if conversation.ticket_id != event.ticket_id:
                return Outcome.IGNORED_OTHER_TICKET  # the sync opened a new ticket meanwhile
            if conversation.ticket_status == status:
                return Outcome.STATUS_UNCHANGED
            conversation.ticket_status = status
            try:
                self.store.save_conversation(conversation)
            except ConversationConflict:
                conversation = self.store.get_conversation(key)
                continue
            logger.info("ticket status recorded", extra={"ticket_id": event.ticket_id, "status": status})
            if status in ("solved", "closed"):
                try:
                    self._record_resolution(key, self.now())
                except Exception as exc:  # the status is recorded; a lost resolution time must not undo it
                    logger.warning("resolution time not recorded", extra={"reason": f"{type(exc).__name__}: {exc}"})
            return Outcome.STATUS_UPDATED
        raise ConversationConflict(f"conversation {key} kept changing while its status was recorded")

    def retry_due(
        self, *, limit: int = 25, remaining_seconds: Callable[[], float] | None = None, reserve_seconds: float = 30.0
    ) -> RetryReport:
        """Retry the answers whose transient failure has passed, report interrupted sends, and
        read again the tickets that could not be read (the schedule calls this). One item's
        failure is logged and counted (``error``); the run goes on with the next."""
        report = RetryReport()
        for item in self.ledger.due(self.now(), limit=limit):
            if remaining_seconds is not None and remaining_seconds() < reserve_seconds:
                break
            outcome: Outcome | None
            try:
                if item.ticket_id is not None:
                    outcome = self._recheck(item)
                else:
                    assert item.comment_id is not None
                    outcome = self._retry(item.conversation_key, item.comment_id)
            except Exception:
                logger.exception("reply retry failed", extra={"conversation": item.conversation_key})
                outcome = Outcome.ERROR
            if outcome is not None:
                report.outcomes[outcome.value] += 1
        return report

    def _retry(self, key: str, comment_id: str) -> Outcome | None:
        record = self.ledger.get(key, comment_id)
        if record is not None and record.state == "sending":
            return self._resume(record, self.now())  # ambiguous once the lease is over
        if record is None or record.state != "retry" or not self.ledger.claim_retry(record, self.now()):
            return None  # another worker took it, or it is not due after all
        return self._attempt(replace(record, state="sending", attempts=record.attempts + 1), raise_unreadable=False)

    def _recheck(self, item: DueItem) -> Outcome:
        """Read a ticket whose comments could not be read before; send what is new."""
        key, ticket_id = item.conversation_key, str(item.ticket_id)
        try:
            outcomes = self._send_comments_of(key, ticket_id, resume=False)
        except (HelpdeskUnavailable, StoreUnavailable, ConversationConflict) as exc:
            failures = self.ledger.recheck_failures(key, ticket_id) + 1
            if failures < self.max_attempts:
                self.ledger.schedule_recheck(key, ticket_id, self.now(), failures=failures)
                return Outcome.RECHECK_FAILED
            logger.error("ticket comments unreadable; gave up", extra={"ticket_id": ticket_id, "reason": str(exc)})
            label = platform_label(_platform_of(key))
            self._note(
                ReplyRecord(key, f"recheck-{ticket_id}", ticket_id, ""),
                f"Not sent: socialdesk could not read this ticket's comments ({type(exc).__name__}), tried {failures} "
                f"times and stopped, so an answer written here may not have reached the customer. "
                f"Check the conversation on {label}, and send any missing answer again as a new comment.",
            )
            self.ledger.finish_recheck(key, ticket_id, item.due_at)
            return Outcome.FAILED_NOTED
        self.ledger.finish_recheck(key, ticket_id, item.due_at)
        return _summary(outcomes)

    # --- one attempt ------------------------------------------------------------------------

    def _resume(self, record: ReplyRecord, now: datetime) -> Outcome:
        """A repeated event for a comment the ledger knows."""
        if record.state == "sent":
            return Outcome.ALREADY_SENT
        if record.state == "sending":
            age = now.timestamp() * 1000 - record.claimed_at_ms
            if age < self.lease.total_seconds() * 1000:
                return Outcome.IN_PROGRESS
            label = platform_label(_platform_of(record.conversation_key))
            note = (
                f"Not confirmed: socialdesk was interrupted while sending this reply to {label}, so it may or may not "
                f"have been posted. Check the conversation on {label} before sending it again."
            )
            if not self.ledger.take_over_stale(record, note):
                return Outcome.IN_PROGRESS
            noted = self._note(record, note)
            if noted:
                self.ledger.mark_noted(record)
            return Outcome.AMBIGUOUS_NOTED
        if record.state == "retry":
            if record.retry_at is not None and record.retry_at <= now and self.ledger.claim_retry(record, now):
                return self._attempt(replace(record, state="sending", attempts=record.attempts + 1))
            return Outcome.WAITING_RETRY
        if record.state == "held":
            return Outcome.AWAITING_APPROVAL  # only a lead's decision moves it
        # failed / unknown / withdrawn: handled; make sure the agent got the note
        if not record.noted and record.note and self._note(record, record.note):
            self.ledger.mark_noted(record)
        return Outcome.ALREADY_HANDLED

    def _attempt(self, record: ReplyRecord, *, raise_unreadable: bool = True, ticket: TicketFacts | None = None) -> Outcome:
        """Send a claimed (``sending``) answer and record how it went. An unreadable
        conversation raises (``raise_unreadable``: an event answers 503) or counts as a retry.
        With ``ticket`` (an answer's first attempt), the approval rules may hold it instead."""
        try:
            messages = conversation_messages(self.store, record.conversation_key)
            # What the approval rules read: the messages' reach, and triage's (profile lookups).
            facts = None if ticket is None or record.approved else ConversationFacts.of(messages, self._triage_state(record))
        except Exception as exc:
            return self._unreadable(record, exc, raise_error=raise_unreadable)
        target: ReplyTarget | None = None
        try:
            target = target_from_messages(messages, config=self._reply_config(), private=record.private, text=record.text)
            if ticket is not None and facts is not None:
                public = target.is_public and not record.private
                ticket = with_crisis_state(ticket, self.approval_rules, self.open_crisis)
                reason = needs_approval(facts, ticket, ReplyFacts(public=public), self.approval_rules)
                if reason:
                    return self._hold(record, reason)
            sent = self.dispatcher.send(target, record.text, private=record.private, idempotency_key=record.idempotency_key)
        except ReplyFailed as failure:
            return self._failed(record, failure, target)
        except Exception as exc:  # a sender bug: we cannot tell whether anything was posted
            logger.exception("reply sender failed unexpectedly", extra={"conversation": record.conversation_key})
            label = platform_label(target.platform if target else _platform_of(record.conversation_key))
            unconfirmed = ReplyFailed(
                UNAVAILABLE,
                f"Not confirmed: socialdesk hit an unexpected error ({type(exc).__name__}) while sending this reply to "
                f"{label}, so it may or may not have been posted. Check the conversation on {label} before sending it again.",
                transient=True,
                duplicate_risk=True,
            )
            return self._failed(record, unconfirmed, target)
        self._finish_sent(record, target, sent, messages)
        return Outcome.SENT

    def _unreadable(self, record: ReplyRecord, exc: Exception, *, raise_error: bool) -> Outcome:
        """The conversation could not be read, so nothing was sent: an attempt like any
        other. The claim is given back as a retry due at once (the helpdesk's redelivery or
        the schedule takes it) and, with ``raise_error``, the error raised; when the
        attempts run out, the agent gets a note instead."""
        logger.warning(
            "conversation not readable",
            extra={"conversation": record.conversation_key, "attempt": record.attempts, "reason": str(exc)},
        )
        if record.attempts < self.max_attempts:
            self.ledger.mark_retry(record, self.now(), "unreadable", record.note or "", record.noted)
            if not raise_error:
                return Outcome.RETRY_SCHEDULED
            if isinstance(exc, StoreUnavailable):
                raise exc
            raise StoreUnavailable(f"could not read conversation {record.conversation_key}: {exc}") from exc
        label = platform_label(_platform_of(record.conversation_key))
        note = (
            "Not sent: socialdesk could not read this conversation's messages (its database did not answer), "
            f"tried {record.attempts} times and stopped. Send the answer again as a new comment, or answer on "
            f"{label} directly."
        )
        self.ledger.mark_final(record, "failed", "unreadable", note, self._note(record, note))
        ops_metrics.reply_failed(_platform_of(record.conversation_key).value, "unreadable")
        return Outcome.FAILED_NOTED

    def _finish_sent(self, record: ReplyRecord, target: ReplyTarget, sent: SentReply, messages: list[SocialMessage]) -> None:
        now = self.now()
        # The ledger first: it is what keeps a repeat from posting the answer again.
        for attempt in range(3):
            try:
                self.ledger.mark_sent(record, sent, now)
                break
            except StoreUnavailable:
                if attempt == 2:
                    logger.error(
                        "sent reply could not be recorded; a repeat will be treated as ambiguous",
                        extra={"conversation": record.conversation_key, "platform_id": sent.platform_message_id},
                    )
                    raise
                self._sleep(0.2 * 2**attempt)
        # Sent is sent: nothing below may fail the event (a 5xx would not unsend it), so each
        # step is on its own and only logged.
        try:
            for message in self._outbound_messages(record, target, sent, now):
                stored = self.store.save_message(message)
                logger.info("outbound message stored", extra={"message_id": message.message_id, "new": stored})
        except Exception as exc:  # the platform's echo will still store it
            logger.warning("outbound message not stored", extra={"reason": f"{type(exc).__name__}: {exc}"})
        try:
            self._record_first_response(record, messages, now)
        except Exception as exc:
            logger.warning("first response time not recorded", extra={"reason": f"{type(exc).__name__}: {exc}"})
        logger.info(
            "reply sent",
            extra={
                "ticket_id": record.ticket_id,
                "comment_id": record.comment_id,
                "platform": target.platform.value,
                "platform_message_id": sent.platform_message_id,
            },
        )
        # The agent sees on the ticket that the answer reached the customer (or, below, why not).
        label = place_name(target)  # a Standard Webhooks source by its own name ("Trustpilot")
        how = _SENT_VIA_WORDS.get(sent.via, "")
        self._note(record, " ".join([f"Sent to the customer on {label}{how}.", *sent.warnings]))

    def _failed(self, record: ReplyRecord, failure: ReplyFailed, target: ReplyTarget | None) -> Outcome:
        now = self.now()
        label = platform_label(target.platform if target else (failure.platform or _platform_of(record.conversation_key)))
        logger.warning(
            "reply not sent",
            extra={
                "conversation": record.conversation_key,
                "kind": failure.kind,
                "attempt": record.attempts,
                "transient": failure.transient,
                "duplicate_risk": failure.duplicate_risk,
            },
        )
        if failure.duplicate_risk:
            note = failure.plain_words
            noted = self._note(record, note)
            self.ledger.mark_final(record, "unknown", failure.kind, note, noted)
            ops_metrics.reply_failed(_platform_of(record.conversation_key).value, failure.kind)
            return Outcome.AMBIGUOUS_NOTED
        if failure.transient and record.attempts < self.max_attempts:
            backoff = timedelta(minutes=2 ** (record.attempts - 1))
            retry_at = max(failure.retry_at or now + backoff, now + MIN_RETRY_DELAY)
            note = f"{failure.plain_words} socialdesk is retrying at {describe_time(retry_at, now)}."
            # One note when it first fails (or fails differently), not one per attempt.
            first = record.attempts == 1 or record.failure_kind != failure.kind
            noted = self._note(record, note) if first else record.noted
            self.ledger.mark_retry(record, retry_at, failure.kind, note, noted)
            return Outcome.RETRY_SCHEDULED
        if failure.transient:
            note = (
                f"{failure.plain_words} socialdesk tried {record.attempts} times and stopped. "
                f"Send the answer again as a new comment, or answer on {label} directly."
            )
        else:
            note = failure.plain_words
        noted = self._note(record, note)
        self.ledger.mark_final(record, "failed", failure.kind, note, noted)
        ops_metrics.reply_failed(_platform_of(record.conversation_key).value, failure.kind)
        return Outcome.FAILED_NOTED

    # --- helpers ----------------------------------------------------------------------------

    def _written_by_bridge(self, event: AgentEvent) -> bool:
        if self.bridge_email and (event.author_email or "").strip().lower() == self.bridge_email:
            return True
        return bool(self.bridge_user_id and event.author_id == self.bridge_user_id)

    def _reply_config(self) -> Any:
        senders = getattr(self.dispatcher, "senders", {}) or {}
        return next((getattr(s, "config", None) for s in senders.values() if getattr(s, "config", None)), None)

    def _current_status(self, event: AgentEvent) -> str | None:
        reader = getattr(self.helpdesk, "ticket_status", None)
        if callable(reader):
            try:
                return str(reader(event.ticket_id).status)
            except HelpdeskError as exc:
                logger.warning("ticket status not readable; using the event's", extra={"reason": str(exc)})
        return event.status

    def _note_reference(self, record: ReplyRecord) -> SocialMessage:
        """The message an internal note is filed under. Never a customer message: the sync
        recognises a customer message already on the ticket by its reference in the audits."""
        return SocialMessage(
            platform=_platform_of(record.conversation_key),
            kind=Kind.REPLY,
            direction=Direction.OUTBOUND,
            message_id=f"{record.helpdesk}-comment-{record.comment_id}",
            conversation_key=record.conversation_key,
            account_id="zendesk",
            author=Author(platform_id=record.author_id or "agent", display_name=record.author_name),
            text="",
            created_at=self.now(),
        )

    def _note(self, record: ReplyRecord, text: str) -> bool:
        """An internal note for the agent; True once the ticket has it (or cannot take one)."""
        reference = self._note_reference(record)
        for attempt in range(2):
            try:
                self.helpdesk.add_note(record.ticket_id, reference, text)
                return True
            except TicketClosed:
                return True  # a closed ticket takes no notes, and nobody works it any more
            except HelpdeskUnavailable as exc:
                if attempt == 0:
                    self._sleep(min(exc.retry_after or 1.0, 5.0))
                    continue
                logger.error("note for the agent not added", extra={"ticket_id": record.ticket_id, "reason": str(exc)})
            except HelpdeskError as exc:
                logger.error("note for the agent refused", extra={"ticket_id": record.ticket_id, "reason": str(exc)})
                break
        return False

    def _outbound_messages(
        self, record: ReplyRecord, target: ReplyTarget, sent: SentReply, now: datetime
    ) -> Iterable[SocialMessage]:
        """The answer (and a public acknowledgement posted with a private one) as stored messages.

        The message id is the platform's id for the post (when it gave one), so its echo
        webhook lands on the same item. A private answer to a public comment goes to the customer's inbox: its
        echo arrives in the chat's conversation and is stored there as outbound too."""
        private_route = record.private and target.is_public
        raw = {
            "source": record.helpdesk,
            "ticket_id": record.ticket_id,
            "comment_id": record.comment_id,
            "agent_id": record.author_id,
            "private": private_route,
            "via": sent.via,
        }
        author = Author(platform_id=target.account_id, display_name=record.author_name)
        yield SocialMessage(
            platform=target.platform,
            kind=Kind.DIRECT_MESSAGE if (private_route or not target.is_public) else Kind.REPLY,
            direction=Direction.OUTBOUND,
            # Without the platform's id (it answered success without one) the echo cannot be
            # matched, but the answer is still on record.
            message_id=sent.platform_message_id or f"{record.helpdesk}-reply-{record.ticket_id}-{record.comment_id}",
            conversation_key=record.conversation_key,
            account_id=target.account_id,
            author=author,
            text=record.text.strip(),
            created_at=now,
            parent_id=target.reply_to_id,
            raw=raw,
        )
        if sent.visible_note and sent.visible_note_id:
            yield SocialMessage(
                platform=target.platform,
                kind=Kind.REPLY,
                direction=Direction.OUTBOUND,
                message_id=sent.visible_note_id,
                conversation_key=record.conversation_key,
                account_id=target.account_id,
                author=author,
                text=sent.visible_note,
                created_at=now,
                parent_id=target.reply_to_id,
                raw={**raw, "acknowledgement": True},
            )

    def _record_first_response(self, record: ReplyRecord, messages: list[SocialMessage], now: datetime) -> None:
        """``CONV#<key>`` / ``RESPONSE``: first response time (set once, and then published with
        its SLA verdict), last response, count."""
        first_message = _first_inbound(messages)
        inbound = [first_message.created_at] if first_message else []
        values: dict[str, Any] = {
            ":type": _s("response_times"),
            ":now": _s(_iso(now)),
            ":ticket": _s(record.ticket_id),
            ":one": _n(1),
        }
        expression = (
            "SET item_type = :type, first_response_at = if_not_exists(first_response_at, :now),"
            " first_response_ticket_id = if_not_exists(first_response_ticket_id, :ticket), last_response_at = :now"
        )
        if inbound:
            values[":seconds"] = _n(max(0, int((now - _utc(min(inbound))).total_seconds())))
            values[":first_in"] = _s(_iso(min(inbound)))
            expression += (
                ", first_response_seconds = if_not_exists(first_response_seconds, :seconds),"
                " first_inbound_at = if_not_exists(first_inbound_at, :first_in)"
            )
        expression += " ADD responses :one"
        before = self.store.update_response_times(record.conversation_key, expression, values)
        if first_message is not None and "first_response_seconds" not in before:
            ops_metrics.answered(first_message, "first_response", float(values[":seconds"]["N"]))

    def _record_resolution(self, key: str, now: datetime) -> None:
        """``CONV#<key>`` / ``RESPONSE``: ``resolved_at`` and ``resolution_seconds``, from the
        customer's first message to the first time the ticket was solved (set once, and then
        published with its SLA verdict; a reopened conversation keeps its first resolution)."""
        first_message = _first_inbound(conversation_messages(self.store, key))
        if first_message is None:
            return
        seconds = max(0, int((now - _utc(first_message.created_at)).total_seconds()))
        before = self.store.update_response_times(
            key,
            "SET item_type = :type, resolved_at = if_not_exists(resolved_at, :now),"
            " resolution_seconds = if_not_exists(resolution_seconds, :seconds)",
            {":type": _s("response_times"), ":now": _s(_iso(now)), ":seconds": _n(seconds)},
        )
        if "resolution_seconds" not in before:
            ops_metrics.answered(first_message, "resolution", float(seconds))


def _first_inbound(messages: Iterable[SocialMessage]) -> SocialMessage | None:
    """The customer's first message (platform time), which response times are measured from."""
    return min((m for m in messages if m.direction is Direction.INBOUND), key=lambda m: _utc(m.created_at), default=None)
