"""A crisis in the helpdesk: one problem ticket, every complaint's ticket an incident of it, one alert.

The sync calls ``CrisisTickets.problem_for(message)`` for each new inbound message just
before its ticket is written: it observes the message (``CrisisDetector.observe``) and
answers which problem ticket the message's ticket joins (None: no crisis). The single
ticket path and the batched one both ask it, and put ``type=incident`` and ``problem_id``
in the ticket they create; a message added to an existing ticket has that ticket linked
(``link``). On a start, the problem ticket is opened once (``external_id =
crisis:<account>:<crisis id>``, looked for before it is created, recorded on the crisis with
a conditional write), the tickets of the complaints that came before are linked, and one
alert goes out. Nothing here ever holds a ticket back: every failure is logged and the
message goes on without a problem. Design and limits: ``docs/crisis.md``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from chalicelib.crisis.model import Crisis, CrisisDecision, Member, Outcome
from chalicelib.helpdesks.base import BulkJob, HelpdeskError, TicketRef
from chalicelib.store.table import condition_failed

if TYPE_CHECKING:
    from chalicelib.crisis.detector import CrisisDetector
    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.models import SocialMessage
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

PROBLEM_KEY_PREFIX = "crisis:"
# The bridge's tag (the agents' comment trigger needs it) and one naming the problem.
PROBLEM_TAGS = ("socialdesk", "socialdesk_crisis_problem")
DECLARE_TAG = "socialdesk_crisis"  # an agent tags a ticket with it: a crisis with that ticket as the problem
ALERT_PK = "ALERT#crisis"
ALERT_TTL_SECONDS = 30 * 86400
_REMEMBERED = 5000  # decisions kept per container (more than a stream batch holds): a retried delivery asks again
# Tickets this container knows are a problem's incidents (opened or linked as such): a member's
# later messages do not link them again (one ticket update each, of the account's 100 a minute).
_KNOWN_INCIDENTS = 20_000
# How long a start waits for its bulk link jobs before linking what is left one by one
# (Zendesk's jobs usually finish within seconds; a link repeated singly changes nothing).
LINK_JOB_WAIT_SECONDS = 20.0
_Item = TypeVar("_Item")
# One deployment feeds one helpdesk account: a crisis groups the complaints of all its
# receiving accounts (Page, Instagram, WhatsApp number, X handle...) unless
# ``CRISIS_GROUP_BY=account`` keeps each receiving account apart.
DEPLOYMENT_SCOPE = "deployment"


def crisis_scope_from_env() -> Callable[[SocialMessage], str]:
    """Which complaints are grouped together: the whole deployment (default), or each receiving account."""
    if os.environ.get("CRISIS_GROUP_BY", DEPLOYMENT_SCOPE).strip().lower() == "account":
        return lambda message: message.account_id
    return lambda message: DEPLOYMENT_SCOPE


@runtime_checkable
class ProblemTickets(Protocol):
    """A helpdesk's crisis tickets (``Helpdesk.problem_tickets``): Zendesk's problem and incidents,
    Freshdesk's parent ticket with children or tagged, noted members (``helpdesks/freshdesk/crisis.py``).
    ``set_ticket_type(t, "incident", problem)`` links a member's existing ticket; ``incidents`` lists
    the members (``id``, ``external_id`` = conversation key, ``tags``) for the fan-out."""

    def open_problem(
        self, external_id: str, subject: str, description: str, tags: Sequence[str], *, look_first: bool = True
    ) -> TicketRef: ...

    def set_ticket_type(self, ticket_id: str, ticket_type: str, problem_id: str | None = None) -> TicketRef: ...

    def incidents(self, problem_id: str) -> Iterable[dict[str, Any]]: ...

    def ticket_details(self, ticket_id: str) -> dict[str, Any]: ...


@runtime_checkable
class IncidentLinker(Protocol):
    """A helpdesk's bulk update of many tickets into incidents of one problem (Zendesk ``update_many``)."""

    max_items: int

    def submit_links(self, ticket_ids: Sequence[str], problem_id: str) -> str: ...

    def follow(
        self, job_ids: Sequence[str], *, max_wait: float, wait: Callable[[float], None] = ...
    ) -> dict[str, BulkJob | None]: ...


def problem_external_id(account_id: str, crisis_id: str) -> str:
    """The problem ticket's ``external_id`` (its agent events' ``conversation_key``)."""
    return f"{PROBLEM_KEY_PREFIX}{account_id}:{crisis_id}"


def is_problem_key(key: str | None) -> bool:
    """True for a crisis problem ticket's ``external_id`` (never a conversation's: those start with a platform)."""
    return bool(key) and str(key).startswith(PROBLEM_KEY_PREFIX)


def problem_description(crisis: Crisis, samples: Sequence[str]) -> tuple[str, str]:
    """The problem ticket's subject and first (internal) comment: what the cluster says, how many, where, since when."""
    words = ", ".join(crisis.keywords[:6]) or "similar complaints"
    subject = f"Crisis: {crisis.size} similar complaints ({words})"
    counts = ", ".join(f"{platform} {count}" for platform, count in sorted(crisis.platform_counts.items()))
    first_seen = datetime.fromtimestamp(crisis.first_seen, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"socialdesk found {crisis.size} similar complaints ({crisis.origin.value}, crisis {crisis.crisis_id}).",
        f"Per platform: {counts or 'none yet'}. First seen {first_seen}. About: {words}.",
        "Every complaint's ticket is linked here as an incident; later ones join while the crisis lasts.",
        "A public comment here is sent once to every incident's customer, on their platform.",
    ]
    if samples:
        lines += ["", "Samples:", *(f"- {text}" for text in samples)]
    return subject, "\n".join(lines)


class CrisisAlerts:
    """One alert per crisis: an ``ALERT#crisis`` item written with a conditional put (so a
    retry or a second Lambda alerts nobody twice), then the SNS topic (``ALERT_TOPIC_ARN``)
    when one is configured; locally the item and a log line are the alert."""

    def __init__(self, table_name: str, dynamodb: Any, *, sns: Any = None, topic_arn: str | None = None) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._sns = sns
        self.topic_arn = topic_arn or None

    def crisis_started(self, crisis: Crisis, problem_ticket_id: str | None) -> bool:
        """Alert about a new crisis; False when it was alerted before."""
        now = time.time()
        summary = {
            "crisis_id": crisis.crisis_id,
            "account_id": crisis.account_id,
            "origin": crisis.origin.value,
            "size": crisis.size,
            "platform_counts": crisis.platform_counts,
            "keywords": crisis.keywords[:8],
            "problem_ticket_id": problem_ticket_id,
        }
        try:
            self._dynamodb.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": ALERT_PK},
                    "sk": {"S": f"{crisis.account_id}#{crisis.crisis_id}"},
                    "item_type": {"S": "crisis_alert"},
                    "alert": {"S": json.dumps(summary, sort_keys=True)},
                    "alerted_at": {"N": str(int(now))},
                    "expires_at": {"N": str(int(now + ALERT_TTL_SECONDS))},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if condition_failed(exc):
                return False
            raise
        logger.warning("crisis started", extra={"alert": summary})  # ids and counts only: no customer text
        if self._sns is not None and self.topic_arn:
            subject = f"socialdesk crisis: {crisis.size} similar complaints"
            self._sns.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=json.dumps(summary, indent=2))
        return True

    def recorded(self) -> list[dict[str, Any]]:
        """Every crisis alert still in the table (the demo shows them)."""
        response = self._dynamodb.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": ALERT_PK}},
            ConsistentRead=True,
        )
        return [json.loads(item["alert"]["S"]) for item in response.get("Items", [])]


@dataclass(frozen=True)
class Declared:
    """What an agent's crisis tag did: the crisis, and whether this call made the ticket its problem."""

    crisis: Crisis | None
    started: bool


class CrisisTickets:
    """Turns crisis decisions into problem and incident tickets (see the module docstring)."""

    def __init__(
        self,
        detector: CrisisDetector,
        helpdesk: Helpdesk,
        store: MessageStore,
        alerts: CrisisAlerts | None = None,
        *,
        scope: Callable[[SocialMessage], str] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
        job_wait_seconds: float = LINK_JOB_WAIT_SECONDS,
        wait: Callable[[float], None] = time.sleep,
    ) -> None:
        self.detector = detector
        self.helpdesk = helpdesk
        self.store = store
        # The helpdesk's crisis tickets (None: only the alert goes out).
        hook = getattr(helpdesk, "problem_tickets", None)
        self.problems: ProblemTickets | None = (
            hook(store) if hook is not None else (helpdesk if isinstance(helpdesk, ProblemTickets) else None)
        )
        self.job_wait_seconds = job_wait_seconds
        self._wait = wait
        self.alerts = alerts
        self._on_error = on_error
        self.scope = scope or crisis_scope_from_env()
        self._decided: dict[str, str | None] = {}  # message id -> problem ticket id (None: no crisis)
        self._grown = 0  # decisions that made earlier complaints members (a start, a catch-up, another wording)
        self._batches = 0  # stream batches begun and not ended: the detector's writes wait for the outermost's end
        self._unlinked: dict[str, list[str]] = {}  # problem -> existing tickets to link when the batch ends
        self._incidents: dict[str, str] = {}  # ticket -> the problem it is known to be an incident of

    @property
    def links_tickets(self) -> bool:
        """Whether the helpdesk has crisis tickets (a problem or parent, and its members)."""
        return self.problems is not None

    # --- the sync's calls ---------------------------------------------------------------

    def begin_batch(self) -> None:
        """A stream batch starts: what its messages' observations learn is written once, at
        ``end_batch`` (``CrisisDetector.flush``), not once per message."""
        self._batches += 1

    def end_batch(self) -> None:
        """The batch ended (also when it failed): its members' existing tickets are linked, its
        crisis state is written."""
        self._batches = max(0, self._batches - 1)
        if not self._batches:
            try:
                self._link_queued()
            except Exception as exc:  # noqa: BLE001 - logged; each member's next message links it
                self._failed("crisis links of the batch not made", exc)
            self.flush()

    def flush(self) -> None:
        """Write the detector's state now; never raises (a crisis never holds a ticket back)."""
        try:
            self.detector.flush()
        except Exception as exc:  # noqa: BLE001 - logged; the observations stay in this container's memory
            self._failed("crisis state not written", exc)

    def problem_for(self, message: SocialMessage) -> str | None:
        """The problem ticket this message's ticket joins, or None. Observes the message once
        per container (a retried delivery gets the same answer); never raises."""
        if message.message_id in self._decided:
            return self._decided[message.message_id]
        problem: str | None = None
        try:
            decision = self.detector.observe(message.model_copy(update={"account_id": self.scope(message)}))
            problem = self._act(decision, message)
        except Exception as exc:  # noqa: BLE001 - a crisis never holds a ticket back
            self._failed("crisis decision failed", exc)
            return None  # not remembered: the next attempt asks again
        if len(self._decided) >= _REMEMBERED:
            self._decided.clear()
        self._decided[message.message_id] = problem
        if not self._batches:
            self.flush()
        return problem

    def problems_for(self, messages: Sequence[SocialMessage]) -> dict[str, str | None]:
        """``problem_for`` of each message (a bulk create). The complaints that became members
        later in the same batch (a crisis started, or took in earlier wordings) have no ticket yet
        to link: they are asked again, and get the problem as its members."""
        grown = self._grown
        found = {m.message_id: self.problem_for(m) for m in messages}
        if grown != self._grown:
            for message in messages:
                if found[message.message_id] is None:
                    self._decided.pop(message.message_id, None)
                    found[message.message_id] = self.problem_for(message)
        return found

    def opened(self, message: SocialMessage, ticket_id: str) -> None:
        """The sync opened ``ticket_id`` with ``message``: when the message's decision named a
        problem, the ticket was created as its incident (remembered: nothing to link later)."""
        problem = self._decided.get(message.message_id)
        if problem is not None:
            self._linked(ticket_id, problem)

    def link(self, ticket_id: str, problem_id: str) -> bool:
        """Make an existing ticket an incident of the problem (repeating it is harmless, so a ticket
        not known here to be its incident is linked again); never raises."""
        if self.problems is None or ticket_id == problem_id:
            return False
        if self._incidents.get(ticket_id) == problem_id:
            return True  # opened or linked as its incident already: no update spent
        try:
            self.problems.set_ticket_type(ticket_id, "incident", problem_id)
        except HelpdeskError as exc:  # closed or deleted since, or the helpdesk refused: the rest go on
            self._failed(f"ticket {ticket_id} not linked to problem {problem_id}", exc)
            return False
        self._linked(ticket_id, problem_id)
        return True

    def _linked(self, ticket_id: str, problem_id: str) -> None:
        if len(self._incidents) >= _KNOWN_INCIDENTS:
            self._incidents.clear()
        self._incidents[ticket_id] = problem_id

    def end_quiet(self) -> list[Crisis]:
        """End the crises quiet for ``quiet_minutes`` (a schedule); they take no more members."""
        ended = self.detector.end_quiet()
        for crisis in ended:
            logger.info("crisis ended", extra={"crisis_id": crisis.crisis_id, "size": crisis.size, "reason": crisis.end_reason})
        return ended

    def in_open_crisis(self, ticket_id: str | None, problem_id: str | None = None) -> bool:
        """Whether the ticket is the problem of an active crisis, or an incident of one (its
        ``problem_id``): the approval rules hold crisis tickets only while their crisis lasts."""
        problems = {c.ticket_id for c in self.detector.active() if c.ticket_id}
        return bool({ticket_id, problem_id} & problems)

    # --- an agent's crisis --------------------------------------------------------------

    def declare(self, message: SocialMessage, ticket_id: str) -> Declared:
        """An agent tagged ``ticket_id`` (``DECLARE_TAG``), the ticket of ``message``: it becomes the
        problem of a crisis about the message's text, the recent similar complaints' tickets its
        incidents. When an active crisis is already about that text, nothing new starts."""
        decision = self.detector.declare(self.scope(message), ticket_id, message.text)
        if decision.outcome is not Outcome.STARTED or decision.crisis is None:
            return Declared(decision.crisis, started=False)
        if not self._batches:
            self.flush()
        if self.problems is not None and not decision.repeated:
            self.problems.set_ticket_type(ticket_id, "problem")
            self._link_members(decision.members, ticket_id, skip_message=None)
            if self.alerts is not None:
                self.alerts.crisis_started(decision.crisis, ticket_id)
        return Declared(decision.crisis, started=not decision.repeated)

    # --- acting on a decision -------------------------------------------------------------

    def _act(self, decision: CrisisDecision, message: SocialMessage) -> str | None:
        for ended in decision.ended:
            logger.info("crisis ended", extra={"crisis_id": ended.crisis_id, "size": ended.size})
        crisis = decision.crisis
        if decision.outcome is Outcome.NONE or crisis is None or self.problems is None:
            if decision.outcome is Outcome.STARTED and crisis is not None and self.alerts is not None:
                self.alerts.crisis_started(crisis, None)  # a helpdesk without problems: the alert still goes out
            return None
        # A crisis this very decision created has no problem ticket anywhere yet: none to look for first.
        created = decision.outcome is Outcome.STARTED and not decision.repeated
        problem, attached = self._problem_ticket(crisis, decision.samples, look_first=not created)
        if attached and decision.outcome is Outcome.JOINED:  # a start whose problem ticket failed, completed by this join
            self._grown += 1
            self._link_members(
                self.detector.members(crisis.account_id, crisis.crisis_id), problem, skip_message=message.message_id
            )
        elif decision.outcome is Outcome.STARTED or any(m.message_id != message.message_id for m in decision.members):
            self._grown += 1
            # The complaints before this one already have tickets: link them (a retried start
            # links them again, harmlessly); this message's ticket is created as an incident.
            self._link_members(decision.members, problem, skip_message=message.message_id)
        if attached and self.alerts is not None:
            self.alerts.crisis_started(crisis, problem)
        return problem

    def _problem_ticket(self, crisis: Crisis, samples: Sequence[str], *, look_first: bool = True) -> tuple[str, bool]:
        """The crisis's problem ticket id, opened now if it has none; True when this call attached it."""
        if crisis.ticket_id:
            return crisis.ticket_id, False
        assert self.problems is not None
        subject, description = problem_description(crisis, samples)
        opened = self.problems.open_problem(
            problem_external_id(crisis.account_id, crisis.crisis_id), subject, description, PROBLEM_TAGS, look_first=look_first
        )
        if self.detector.attach_ticket(crisis.account_id, crisis.crisis_id, opened.ticket_id):
            crisis.ticket_id = opened.ticket_id
            logger.info("crisis problem ticket opened", extra={"crisis_id": crisis.crisis_id, "ticket_id": opened.ticket_id})
            return opened.ticket_id, True
        # Another Lambda attached one first (found by the same external id, so normally the same ticket).
        winner = next((c for c in self.detector.active(crisis.account_id) if c.crisis_id == crisis.crisis_id), None)
        crisis.ticket_id = winner.ticket_id if winner is not None and winner.ticket_id else opened.ticket_id
        return crisis.ticket_id, False

    def _link_members(self, members: Iterable[Member], problem: str, *, skip_message: str | None) -> int:
        """Link the tickets the crisis's members already have (at the batch's end, in a batch:
        all of its links in the fewest bulk updates); the count of tickets."""
        queued = self._unlinked.setdefault(problem, [])
        seen = {problem, *queued}
        for member in members:
            if member.message_id == skip_message:
                continue
            try:
                conversation = self.store.get_conversation(member.conversation_key)
            except Exception as exc:  # noqa: BLE001 - the member's next message links it
                self._failed(f"conversation of crisis member {member.message_id} not read", exc)
                continue
            ticket = conversation.ticket_id
            if ticket is None or ticket in seen or conversation.helpdesk not in (None, self.helpdesk.name):
                continue  # no ticket yet: it is created as an incident when its message is delivered
            if self._incidents.get(ticket) == problem:
                continue  # opened or linked as its incident already
            seen.add(ticket)
            queued.append(ticket)
        count = len(queued)
        if not self._batches:
            self._link_queued()
        return count

    def _link_queued(self) -> None:
        """Link the queued tickets to their problems, 100 to a bulk update where the helpdesk has
        one (else one update each), and follow every job together."""
        queued, self._unlinked = self._unlinked, {}
        writer = getattr(self.helpdesk, "bulk_writer", lambda: None)()
        if not isinstance(writer, IncidentLinker):
            for problem, tickets in queued.items():
                for ticket in tickets:
                    self.link(ticket, problem)
            return
        jobs: dict[str, tuple[str, list[str]]] = {}
        for problem, tickets in queued.items():
            for start in range(0, len(tickets), writer.max_items):
                chunk = tickets[start : start + writer.max_items]
                try:
                    jobs[writer.submit_links(chunk, problem)] = (problem, chunk)
                except HelpdeskError as exc:  # one by one, then
                    self._failed(f"bulk link of {len(chunk)} tickets to problem {problem} refused", exc)
                    for ticket in chunk:
                        self.link(ticket, problem)
        if jobs:
            self._settle_links(writer, jobs)

    def _settle_links(self, writer: IncidentLinker, jobs: dict[str, tuple[str, list[str]]]) -> None:
        """Follow the link jobs to their end; link one by one the tickets a job did not link
        (an item that failed, a job that failed, vanished or did not finish in time: linking
        again is harmless), so no member waits for its next message to join the problem."""
        states = writer.follow(list(jobs), max_wait=self.job_wait_seconds, wait=self._wait)
        for job_id, (problem, tickets) in jobs.items():
            missed = unapplied(states.get(job_id), tickets)
            for ticket in set(tickets) - set(missed):
                self._linked(ticket, problem)
            if not missed:
                continue
            logger.warning(
                "bulk link job left tickets unlinked; linking them one by one", extra={"job_id": job_id, "tickets": len(missed)}
            )
            for ticket in missed:
                self.link(ticket, problem)

    def _failed(self, what: str, exc: Exception) -> None:
        logger.warning(what, extra={"reason": f"{type(exc).__name__}: {exc}"[:300]})
        if self._on_error is not None:
            self._on_error(what, exc)


def unapplied(job: BulkJob | None, sent: Sequence[_Item]) -> list[_Item]:
    """The items of ``sent`` (a bulk job's request, in order) the job did not apply: all of them
    when the job is unknown (None: gone) or unfinished, else those it reported failed or did not
    report. An update's result has no ``index``: results are read in request order."""
    if job is None or not job.finished:
        return list(sent)
    applied = {item.index for item in job.items if item.error is None and item.record_id is not None}
    return [value for index, value in enumerate(sent) if index not in applied]
