"""One answer to all: an agent's public comment on a crisis's problem ticket reaches every incident's customer once.

``ProblemAnswers`` stands in front of ``AgentReplies`` for the helpdesk's agent events:

* an event about a crisis problem ticket (``external_id`` ``crisis:...``, see
  ``crisis/tickets.py``) or a ticket an agent made a problem: each public agent comment on
  it becomes a fan-out job (``FANOUT#<helpdesk>#<problem>`` / ``COMMENT#<comment id>``,
  created once by a conditional put). A job lists the problem's incidents and hands each
  one to ``AgentReplies.handle_comment`` as that incident's own agent comment, with the
  comment id ``problem-<problem>-<comment>``: the reply ledger (``REPLY#...`` under the
  incident's conversation) claims it once, the answer goes out in the form the
  conversation needs (public reply, DM, LINE push...), and the incident gets its note
  ("Sent to the customer on X ..." or why not). A retry, a second delivery or a second
  runner finds the ledger item and sends nothing again;
* any other event goes to ``AgentReplies`` as before, then the ticket is read once: a
  ticket tagged ``socialdesk_crisis`` declares a crisis with it as the problem.

Incidents are taken in arrival order, a chunk at a time, one worker per platform, each no
faster than ``FANOUT_RATE_<PLATFORM>`` answers a second (default ``FANOUT_RATE_PER_SECOND``,
20: far under every platform's send limit, see docs/crisis.md). The chunk's incident notes
go out in one bulk update (Zendesk allows 100 ticket updates a minute). The problem ticket
gets a running count as an internal note every ``FANOUT_NOTE_EVERY`` answers and at the end
("Sent 412 of 1,000; 3 failed: window closed"), not one per incident (30 updates per ticket
in 10 minutes). A job runs under a lease and records its cursor with its counts after each
chunk; one that does not finish within the webhook's budget is continued by the schedule
(``run_schedule``), which also ends quiet crises.

When the approval rules hold the problem's answer (``outbound/approval.py``: by default, a
problem ticket of an open crisis), the job is created ``held`` instead, in no queue, with one
internal note on the problem ticket. A lead's ``socialdesk_approved`` on the problem turns it
``held`` -> ``running`` by one conditional write (a repeated approval changes nothing) and the
fan-out starts, each incident's send approved already (no second hold on an incident);
``socialdesk_withdrawn`` makes it ``withdrawn``: nobody gets it.

A comment Zendesk itself copies from the problem onto its incidents comes ``via``
``linked_problem``: the agent-reply path never sends those (``agent_replies.NOT_AGENT_CHANNELS``),
so each customer still gets the answer once, from here.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from chalicelib.crisis.tickets import DECLARE_TAG, is_problem_key, unapplied
from chalicelib.helpdesks.base import BulkJob, HelpdeskError, TicketRef
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.outbound.agent_events import APPROVAL_EVENT, COMMENT_EVENT, PRIVATE_TAG, AgentEvent
from chalicelib.outbound.agent_replies import Outcome, TicketCommentReader
from chalicelib.outbound.approval import (
    APPROVED,
    ConversationFacts,
    ReplyFacts,
    TicketFacts,
    held_note,
    needs_approval,
    with_crisis_state,
    withdrawn_note,
)
from chalicelib.store import StoreUnavailable
from chalicelib.store.ledger import DUE_ATTRIBUTES, Attr, Ledger, in_queue

if TYPE_CHECKING:
    from chalicelib.crisis.tickets import CrisisTickets
    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.outbound.agent_replies import AgentReplies

logger = logging.getLogger(__name__)

DEFAULT_RATE_PER_SECOND = 20.0
DEFAULT_NOTE_EVERY = 100
CHUNK = 60  # incidents answered between two progress writes (in parallel across platforms)
WEBHOOK_BUDGET_SECONDS = 8.0  # Zendesk gives a webhook about 12 s; the schedule continues the rest
LEASE_SECONDS = 300.0  # longer than a Lambda's run: a job is run by one runner at a time
JOB_TTL_SECONDS = 30 * 86400
# The least a run waits for its incident-note jobs, even past its deadline: Zendesk's jobs
# usually finish within a second or two; a job still running after that is logged.
NOTE_JOB_MIN_WAIT_SECONDS = 2.0

_SENT = frozenset({Outcome.SENT, Outcome.ALREADY_SENT})
_FAILED = frozenset({Outcome.FAILED_NOTED, Outcome.AMBIGUOUS_NOTED, Outcome.ALREADY_HANDLED})
_WAITING = frozenset({Outcome.RETRY_SCHEDULED, Outcome.WAITING_RETRY, Outcome.IN_PROGRESS})
_FRESH = frozenset({Outcome.SENT, Outcome.FAILED_NOTED, Outcome.AMBIGUOUS_NOTED, Outcome.RETRY_SCHEDULED})
# A ledger item found for an incident: what it stands for.
_KNOWN = {"sent": Outcome.ALREADY_SENT, "sending": Outcome.IN_PROGRESS, "retry": Outcome.WAITING_RETRY}
# A job found not running: what a repeated delivery answers.
_NOT_RUNNING = {"held": Outcome.AWAITING_APPROVAL.value, "withdrawn": Outcome.ALREADY_HANDLED.value}


def rates_from_env(env: Mapping[str, str] | None = None) -> tuple[float, dict[str, float]]:
    """The default answers per second and each platform's own (``FANOUT_RATE_<PLATFORM>``)."""
    env = os.environ if env is None else env
    default = float(env.get("FANOUT_RATE_PER_SECOND") or DEFAULT_RATE_PER_SECOND)
    own = {p.value: float(env[f"FANOUT_RATE_{p.value.upper()}"]) for p in Platform if env.get(f"FANOUT_RATE_{p.value.upper()}")}
    return default, own


class Pacer:
    """At most ``rate`` sends a second per platform (a minimum gap between two sends)."""

    def __init__(
        self, default: float, rates: Mapping[str, float], *, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        if default <= 0 or any(r <= 0 for r in rates.values()):
            raise ValueError("fan-out rates must be positive")
        self.default, self.rates = default, dict(rates)
        self._clock, self._sleep = clock, sleep
        self._next: dict[str, float] = {}

    def wait(self, platform: str) -> None:
        now = self._clock()
        due = self._next.get(platform, now)
        if due > now:
            self._sleep(due - now)
        self._next[platform] = max(now, due) + 1.0 / self.rates.get(platform, self.default)


@dataclass
class Tally:
    """Where one problem comment stands: the incidents handled so far (up to the job's cursor), by outcome."""

    total: int = 0
    sent: int = 0
    waiting: int = 0
    skipped: int = 0  # incidents that are no bridged conversation
    failed: Counter[str] = field(default_factory=Counter)  # failure kind -> count

    def to_json(self) -> str:
        return json.dumps({"sent": self.sent, "waiting": self.waiting, "skipped": self.skipped, "failed": self.failed})

    @classmethod
    def from_json(cls, text: str | None) -> Tally:
        data = json.loads(text) if text else {}
        return cls(
            sent=data.get("sent", 0),
            waiting=data.get("waiting", 0),
            skipped=data.get("skipped", 0),
            failed=Counter(data.get("failed") or {}),
        )

    def summary(self) -> str:
        text = f"Sent {self.sent:,} of {self.total:,}"
        if self.failed:
            kinds = ", ".join(f"{kind.replace('_', ' ')}" + (f" ({n})" if n > 1 else "") for kind, n in self.failed.most_common())
            text += f"; {sum(self.failed.values()):,} failed: {kinds}"
        if self.waiting:
            text += f"; {self.waiting:,} waiting for a retry"
        if self.skipped:
            text += f"; {self.skipped:,} not from a social conversation"
        return text + "."


@dataclass(frozen=True)
class FanoutJob:
    """One problem comment to send to every incident."""

    helpdesk: str
    problem_id: str
    comment_id: str
    text: str
    private: bool
    author_id: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    state: str = "running"  # held (waiting for a lead), running, done, withdrawn
    approved: bool = False  # a lead approved it: the incidents' sends are not held again
    cursor: int = 0  # incidents with a lower or equal id are handled and counted in ``tally``
    tally: Tally = field(default_factory=Tally)


class FanoutJobs:
    """The ``FANOUT#`` items: created once, run under a lease, in a due queue until done."""

    def __init__(self, table_name: str, client: Any, helpdesk: str) -> None:
        self.helpdesk = helpdesk
        self._ledger = Ledger(client, table_name, owner="fan-out")
        self.queue = f"FANOUT#due#{helpdesk}"

    def key(self, problem_id: str, comment_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"FANOUT#{self.helpdesk}#{problem_id}"}, "sk": {"S": f"COMMENT#{comment_id}"}}

    def _key(self, job: FanoutJob) -> dict[str, dict[str, str]]:
        return self.key(job.problem_id, job.comment_id)

    def start(self, job: FanoutJob, now: float, *, held: bool = False) -> bool:
        """Create the job, due now (``held``: waiting for a lead, in no queue); False when it exists."""
        item: dict[str, Any] = {
            "item_type": "fanout",
            "state": "held" if held else "running",
            "text": job.text,
            "private": job.private,
            "lease_until": 0,
            "cursor": 0,
            "expires_at": int(now + JOB_TTL_SECONDS),
        }
        if not held:
            item.update(in_queue(self.queue, _iso(now)))
        for name in ("author_id", "author_name", "author_email"):
            if getattr(job, name):
                item[name] = getattr(job, name)
        return self._ledger.claim(self._key(job), item)

    def get(self, problem_id: str, comment_id: str) -> FanoutJob | None:
        item = self._ledger.get(self.key(problem_id, comment_id))
        if not item:
            return None
        return FanoutJob(
            helpdesk=self.helpdesk,
            problem_id=problem_id,
            comment_id=comment_id,
            text=item.get("text", {}).get("S", ""),
            private=bool(item.get("private", {}).get("BOOL", False)),
            author_id=item.get("author_id", {}).get("S"),
            author_name=item.get("author_name", {}).get("S"),
            author_email=item.get("author_email", {}).get("S"),
            state=item["state"]["S"],
            approved=bool(item.get("approved", {}).get("BOOL", False)),
            cursor=int(item.get("cursor", {}).get("N", "0")),
            tally=Tally.from_json(item.get("tally", {}).get("S")),
        )

    def held(self, problem_id: str) -> list[str]:
        """The comment ids of the problem's answers waiting for a lead, oldest job first."""
        items = self._ledger.partition(self.key(problem_id, "")["pk"]["S"], sk_prefix="COMMENT#", where=Attr("state").eq("held"))
        return [item["sk"]["S"].removeprefix("COMMENT#") for item in items]

    def approve(self, problem_id: str, comment_id: str, now: float) -> bool:
        """``held`` -> ``running``, approved and due now; False when it was not held (one caller wins)."""
        return self._ledger.move(
            self.key(problem_id, comment_id),
            set={"state": "running", "approved": True, **in_queue(self.queue, _iso(now))},
            if_=Attr("state").eq("held"),
        )

    def withdraw(self, problem_id: str, comment_id: str) -> bool:
        """``held`` -> ``withdrawn``: never sent; False when it was not held (one caller wins)."""
        return self._ledger.move(self.key(problem_id, comment_id), set={"state": "withdrawn"}, if_=Attr("state").eq("held"))

    def claim(self, job: FanoutJob, now: float) -> bool:
        """Take the running job's lease (one runner at a time; a dead runner's lease lapses)."""
        return self._ledger.move(
            self._key(job),
            set={"lease_until": now + LEASE_SECONDS},
            if_=Attr("state").eq("running") & Attr("lease_until").lt(now),
        )

    def progress(self, job: FanoutJob, cursor: int, tally: Tally) -> None:
        """Record the cursor and the counts up to it, in one write: a runner that dies after this
        resumes from here and counts nothing twice."""
        self._ledger.move(self._key(job), set={"cursor": cursor, "tally": tally.to_json()})

    def release(self, job: FanoutJob, now: float) -> None:
        """Give the lease back, due again at once (the schedule continues it)."""
        self._ledger.move(self._key(job), set={"lease_until": 0, "gsi1sk": _iso(now)})

    def finish(self, job: FanoutJob, summary: str) -> None:
        self._ledger.move(self._key(job), set={"state": "done", "summary": summary}, remove=DUE_ATTRIBUTES)

    def due(self, now: float, limit: int = 10) -> list[tuple[str, str]]:
        """(problem id, comment id) of the jobs due, oldest first."""
        items = self._ledger.due(self.queue, _iso(now), limit=limit).get("Items", [])
        prefix = f"FANOUT#{self.helpdesk}#"
        return [(i["pk"]["S"].removeprefix(prefix), i["sk"]["S"].removeprefix("COMMENT#")) for i in items]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@runtime_checkable
class NoteWriter(Protocol):
    """A helpdesk's bulk endpoint for notes on many tickets (Zendesk ``update_many``)."""

    max_items: int

    def submit_notes(self, notes: Sequence[tuple[str, str]]) -> str: ...

    def follow(
        self, job_ids: Sequence[str], *, max_wait: float, wait: Callable[[float], None] = ...
    ) -> dict[str, BulkJob | None]: ...


class _NoteBuffer:
    """The helpdesk as the fan-out's ``AgentReplies`` sees it: each incident's outcome note is
    kept and written with the chunk's others in one bulk update, not one ticket update each
    (Zendesk allows 100 ticket updates a minute on a Professional account; a bulk update is one
    request). Everything else goes to the helpdesk itself."""

    def __init__(self, helpdesk: Helpdesk) -> None:
        self._helpdesk = helpdesk
        self._lock = threading.Lock()
        self.notes: list[tuple[str, str]] = []

    def add_note(self, ticket_id: str, message: SocialMessage, text: str, *, updated_stamp: str | None = None) -> TicketRef:
        with self._lock:
            self.notes.append((ticket_id, text))
        return TicketRef(ticket_id, "open")

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            taken, self.notes = self.notes, []
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._helpdesk, name)


class ProblemAnswers:
    """Agent events, with the crisis problems' fan-out in front (see the module docstring)."""

    def __init__(
        self,
        replies: AgentReplies,
        crisis: CrisisTickets,
        table_name: str,
        client: Any,
        *,
        rates: tuple[float, Mapping[str, float]] | None = None,
        note_every: int | None = None,
        webhook_budget: float = WEBHOOK_BUDGET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.replies = replies
        self.crisis = crisis
        self.helpdesk = replies.helpdesk
        writer = getattr(self.helpdesk, "bulk_writer", lambda: None)()
        self._note_writer = writer if isinstance(writer, NoteWriter) else None
        self._buffer = _NoteBuffer(self.helpdesk)
        self._note_jobs: dict[str, list[tuple[str, str]]] = {}  # submitted, not yet followed: job id -> notes
        # The incidents' answers: the same ledger, dispatcher and rules (a copy of the agent
        # replies), but their notes are kept for one bulk update per chunk.
        self._incident_replies = replies
        if self._note_writer is not None:
            self._incident_replies = copy.copy(replies)
            self._incident_replies.helpdesk = cast("Helpdesk", self._buffer)
        self.jobs = FanoutJobs(table_name, client, replies.helpdesk_name)
        default, own = rates or rates_from_env()
        self._pacer = Pacer(default, own, clock=clock, sleep=sleep)
        self.note_every = max(1, note_every or int(os.environ.get("FANOUT_NOTE_EVERY") or DEFAULT_NOTE_EVERY))
        self.webhook_budget = webhook_budget
        self._clock, self._wall_clock, self._sleep = clock, wall_clock, sleep

    # --- entry points ----------------------------------------------------------------------

    def handle(self, event: AgentEvent) -> str:
        """One verified helpdesk event (``agent_events.handle_zendesk_event`` calls this)."""
        deadline = self._clock() + self.webhook_budget
        if is_problem_key(event.conversation_key):
            if event.kind == APPROVAL_EVENT:
                return self.decide(event.ticket_id, event.decision, deadline=deadline)
            if event.kind != COMMENT_EVENT:
                return "problem_status"  # Zendesk solves the incidents with their problem itself
            return self.answer_problem(event.ticket_id, deadline=deadline)
        outcome = self.replies.handle(event)
        # A problem an agent made is its own customer's ticket too: an answer held for that customer
        # has its note already, the fan-out's hold adds none (one note on the ticket).
        self._problem_or_declared(event, deadline, note_held=outcome is not Outcome.HELD)
        return outcome.value

    def answer_problem(self, problem_id: str, *, deadline: float, note_held: bool = True) -> str:
        """Start a job for each public agent comment on the problem and run them until ``deadline``
        (or hold them for a lead, with a note unless ``note_held`` is false)."""
        if not isinstance(self.helpdesk, TicketCommentReader):
            return Outcome.TICKET_NOT_READABLE.value
        since = datetime.fromtimestamp(self._wall_clock() - self.replies.lookback.total_seconds(), UTC)
        read = self.helpdesk.ticket_comments(problem_id, since=since)
        answers = [c for c in read.comments if self.replies.is_agent_answer(c, read.requester_id)]
        private = PRIVATE_TAG in read.tags
        ticket = TicketFacts(frozenset(read.tags), read.priority, read.ticket_type, ticket_id=problem_id)
        jobs = [_job_of(problem_id, self.jobs.helpdesk, c, private) for c in answers]
        return self._answer_all(problem_id, jobs, deadline, ticket, note_held=note_held)

    def answer_events(self, problem_id: str, answers: Sequence[AgentEvent], *, private: bool = False) -> str:
        """Each agent answer on a crisis's parent ticket, already read by the helpdesk's event path
        (Freshdesk's conversations), sent once to every member: a job each, as ``answer_problem``."""
        deadline = self._clock() + self.webhook_budget
        jobs = [_job_of(problem_id, self.jobs.helpdesk, event, private) for event in answers if event.comment_id]
        if not jobs:
            return Outcome.NO_NEW_REPLY.value
        ticket = TicketFacts(frozenset(answers[0].tags), answers[0].priority, answers[0].ticket_type, ticket_id=problem_id)
        return self._answer_all(problem_id, jobs, deadline, ticket)

    def _answer_all(
        self, problem_id: str, jobs: Sequence[FanoutJob], deadline: float, ticket: TicketFacts, *, note_held: bool = True
    ) -> str:
        if not jobs:
            return Outcome.NO_NEW_REPLY.value
        rules = self.replies.approval_rules
        ticket = with_crisis_state(ticket, rules, self.crisis.in_open_crisis)
        outcomes = []
        for job in jobs:
            # The problem's answer is the crisis's one public voice: held here once, not per incident.
            reason = needs_approval(ConversationFacts(), ticket, ReplyFacts(public=not job.private), rules)
            if self.jobs.start(job, self._wall_clock(), held=reason is not None) and reason is not None:
                if note_held:
                    self._problem_note(job, held_note(reason, to_everyone=True), "held")
                logger.info("crisis answer held for approval", extra={"problem_id": problem_id})
                outcomes.append(Outcome.HELD.value)
                continue
            outcomes.append(self.run(problem_id, job.comment_id, deadline=deadline))
        return outcomes[-1]

    def decide(self, problem_id: str, decision: str | None, *, deadline: float | None = None, note_held: bool = True) -> str:
        """A lead's decision on the problem's held answers: each approved one starts its fan-out
        (once: a repeated decision finds nothing held), each withdrawn one is sent to nobody. The
        problem's comments are read first, so an answer written in the same update is held first.
        Runs until ``deadline`` (default: the webhook's budget from now)."""
        deadline = self._clock() + self.webhook_budget if deadline is None else deadline
        self.answer_problem(problem_id, deadline=deadline, note_held=note_held)
        outcomes = []
        for comment_id in self.jobs.held(problem_id):
            if decision == APPROVED:
                if self.jobs.approve(problem_id, comment_id, self._wall_clock()):
                    outcomes.append(self.run(problem_id, comment_id, deadline=deadline))
            elif self.jobs.withdraw(problem_id, comment_id):
                job = FanoutJob(self.jobs.helpdesk, problem_id, comment_id, "", private=False)
                self._problem_note(job, withdrawn_note(to_everyone=True), "withdrawn")
                outcomes.append(Outcome.WITHDRAWN.value)
        logger.info("crisis answer decided", extra={"problem_id": problem_id, "decision": decision, "held": len(outcomes)})
        return outcomes[-1] if outcomes else Outcome.NOTHING_HELD.value

    def run_schedule(
        self, *, remaining_seconds: Callable[[], float] | None = None, reserve_seconds: float = 30.0
    ) -> Counter[str]:
        """The schedule: end quiet crises, continue the fan-outs that did not finish."""
        report: Counter[str] = Counter()
        report["crises_ended"] += len(self.crisis.end_quiet())
        budget = (remaining_seconds() - reserve_seconds) if remaining_seconds is not None else 240.0
        deadline = self._clock() + max(0.0, budget)
        for problem_id, comment_id in self.jobs.due(self._wall_clock()):
            if self._clock() >= deadline:
                break
            try:
                report[self.run(problem_id, comment_id, deadline=deadline)] += 1
            except Exception:
                logger.exception("fan-out failed", extra={"problem_id": problem_id})
                report["error"] += 1
        return report

    # --- one job ----------------------------------------------------------------------------

    def run(self, problem_id: str, comment_id: str, *, deadline: float) -> str:
        """Send one problem comment to the incidents after the job's cursor (ascending ids: a crowd's
        arrival order), a chunk at a time, until ``deadline``."""
        job = self.jobs.get(problem_id, comment_id)
        if job is None or job.state != "running":
            return _NOT_RUNNING.get(job.state, "fanout_done") if job is not None else "fanout_missing"
        if not self.jobs.claim(job, self._wall_clock()):
            return Outcome.IN_PROGRESS.value
        try:
            return self._run_claimed(job, deadline)
        except Exception:
            self.jobs.release(job, self._wall_clock())  # due again at once: the ledger keeps every send single
            raise

    def _run_claimed(self, job: FanoutJob, deadline: float) -> str:
        try:
            return self._answer_incidents(job, deadline)
        finally:
            self._settle_notes(deadline)

    def _answer_incidents(self, job: FanoutJob, deadline: float) -> str:
        problems = self.crisis.problems
        assert problems is not None
        incidents = sorted(problems.incidents(job.problem_id), key=lambda t: int(t["id"]))
        tally, fresh = job.tally, 0
        tally.total = len(incidents)
        pending = [i for i in incidents if int(i["id"]) > job.cursor]
        for start in range(0, len(pending), CHUNK):
            if self._clock() >= deadline:
                if fresh:
                    self._note(job, f"{tally.summary()[:-1]} so far; continuing.", fresh)
                self.jobs.release(job, self._wall_clock())
                logger.info("fan-out continues later", extra={"problem_id": job.problem_id, "sent": tally.sent})
                return "fanout_continues"
            chunk = pending[start : start + CHUNK]
            noted_at = fresh // self.note_every
            for incident, outcome in zip(chunk, self._answer_chunk(job, chunk), strict=True):
                self._count(tally, outcome, incident, job)
                fresh += outcome in _FRESH
            self._write_notes()
            self.jobs.progress(job, int(chunk[-1]["id"]), tally)
            if fresh // self.note_every > noted_at and start + CHUNK < len(pending):
                self._note(job, f"{tally.summary()[:-1]} so far; sending.", fresh)
        summary = tally.summary()
        self._note(job, summary, fresh)
        self.jobs.finish(job, summary)
        logger.info("fan-out finished", extra={"problem_id": job.problem_id, "sent": tally.sent, "total": tally.total})
        return "fanned_out"

    def _answer_chunk(self, job: FanoutJob, chunk: list[dict[str, Any]]) -> list[Outcome | None]:
        """Each incident of the chunk answered, one worker per platform (each paced on its own):
        the outcomes in the chunk's order."""
        by_platform: dict[str, list[dict[str, Any]]] = {}
        for incident in chunk:
            by_platform.setdefault(str(incident.get("external_id") or "").split(":", 1)[0], []).append(incident)

        def answer_all(incidents: list[dict[str, Any]]) -> list[tuple[int, Outcome | None]]:
            return [(int(i["id"]), self._answer_incident(job, i)) for i in incidents]

        with ThreadPoolExecutor(max_workers=len(by_platform), thread_name_prefix="fanout") as workers:
            done = dict(pair for result in workers.map(answer_all, by_platform.values()) for pair in result)
        return [done[int(i["id"])] for i in chunk]

    def _answer_incident(self, job: FanoutJob, incident: dict[str, Any]) -> Outcome | None:
        key = incident.get("external_id")
        if not key or is_problem_key(str(key)):
            return None
        key = str(key)
        comment_id = f"problem-{job.problem_id}-{job.comment_id}"
        known = self.replies.ledger.get(key, comment_id)
        if known is not None:  # handled before (a runner that died before recording its cursor)
            return _KNOWN.get(known.state, Outcome.ALREADY_HANDLED)
        platform = key.split(":", 1)[0]
        event = AgentEvent(
            kind=COMMENT_EVENT,
            ticket_id=str(incident["id"]),
            conversation_key=key,
            tags=tuple(str(t) for t in incident.get("tags") or ()) + ((PRIVATE_TAG,) if job.private else ()),
            comment_id=comment_id,
            text=self._text_for(key, platform, job),
            author_id=job.author_id,
            author_name=job.author_name,
            author_email=job.author_email,
        )
        self._pacer.wait(platform)
        return self._incident_replies.handle_comment(event, resume=False, approved=job.approved)

    def _write_notes(self) -> None:
        """The chunk's incident notes, up to 100 tickets a request (best effort, like every note)."""
        notes = self._buffer.take()
        if self._note_writer is None:
            return
        size = self._note_writer.max_items
        for start in range(0, len(notes), size):
            chunk = notes[start : start + size]
            try:
                self._note_jobs[self._note_writer.submit_notes(chunk)] = chunk
            except HelpdeskError as exc:
                logger.error("incident notes not written in bulk", extra={"tickets": len(chunk), "reason": str(exc)[:200]})
                self._notes_one_by_one(chunk)

    def _settle_notes(self, deadline: float) -> None:
        """Follow the run's note jobs to their end (at least ``NOTE_JOB_MIN_WAIT_SECONDS``, else until
        ``deadline``) and write one by one the notes a job reported failed. A job that vanished or
        is still running is logged, not repeated: its notes may be written, and a note twice is noise."""
        jobs, self._note_jobs = self._note_jobs, {}
        if not jobs or self._note_writer is None:
            return
        wait = max(deadline - self._clock(), NOTE_JOB_MIN_WAIT_SECONDS)
        states = self._note_writer.follow(list(jobs), max_wait=wait, wait=self._sleep)
        for job_id, notes in jobs.items():
            state = states.get(job_id)
            if state is None or not state.finished:
                logger.error("incident notes' job not confirmed", extra={"job_id": job_id, "tickets": len(notes)})
                continue
            failed = unapplied(state, notes)
            if failed:
                logger.warning(
                    "incident notes failed in bulk; written one by one", extra={"job_id": job_id, "tickets": len(failed)}
                )
                self._notes_one_by_one(failed)

    def _notes_one_by_one(self, notes: Sequence[tuple[str, str]]) -> None:
        for ticket_id, text in notes:
            try:
                self.helpdesk.add_note(
                    ticket_id, _reference(f"fanout-note-{ticket_id}", f"fanout:{ticket_id}", self.jobs.helpdesk), text
                )
            except HelpdeskError as exc:
                logger.error("incident note not written", extra={"ticket_id": ticket_id, "reason": str(exc)[:200]})

    def _text_for(self, key: str, platform: str, job: FanoutJob) -> str:
        """The answer as this customer gets it. On X a public reply names the customer: X refuses
        a post with the same text as a recent one (the same answer to many tweets)."""
        if platform != Platform.X.value or job.private or ":tweets:" not in key:
            return job.text
        try:
            messages = self.replies.store.conversation_messages(key)
        except StoreUnavailable:
            return job.text
        handle = next((m.author.handle for m in messages if m.direction is Direction.INBOUND and m.author.handle), None)
        return f"@{handle} {job.text}" if handle else job.text

    def _count(self, tally: Tally, outcome: Outcome | None, incident: dict[str, Any], job: FanoutJob) -> None:
        if outcome is None or outcome in (Outcome.IGNORED_OWN, Outcome.IGNORED_NOT_BRIDGED):
            tally.skipped += 1
        elif outcome in _SENT:
            tally.sent += 1
        elif outcome in _WAITING:
            tally.waiting += 1
        elif outcome in _FAILED:
            record = self.replies.ledger.get(str(incident.get("external_id")), f"problem-{job.problem_id}-{job.comment_id}")
            tally.failed[(record.failure_kind if record else None) or "unknown"] += 1
        else:
            tally.failed[outcome.value] += 1

    def _note(self, job: FanoutJob, text: str, fresh: int) -> None:
        """The running count on the problem ticket, as an internal note (best effort)."""
        self._problem_note(job, f"One answer to all: {text}", str(fresh))

    def _problem_note(self, job: FanoutJob, text: str, what: str) -> None:
        """An internal note on the problem ticket about one answer (best effort)."""
        reference = _reference(f"fanout-{job.problem_id}-{job.comment_id}-{what}", f"fanout:{job.problem_id}", self.jobs.helpdesk)
        try:
            self.helpdesk.add_note(job.problem_id, reference, text)
        except HelpdeskError as exc:
            logger.warning("fan-out note not written", extra={"problem_id": job.problem_id, "reason": str(exc)[:200]})

    # --- a problem an agent made ---------------------------------------------------------------

    def _problem_or_declared(self, event: AgentEvent, deadline: float, *, note_held: bool) -> None:
        """A bridged ticket that is a problem fans its answers out too (and takes a lead's decision on
        them); one tagged ``socialdesk_crisis`` declares a crisis with itself as the problem. Best
        effort: the customer's own answer is sent."""
        problems = self.crisis.problems
        if problems is None or not event.conversation_key:
            return
        try:
            ticket = problems.ticket_details(event.ticket_id)
            if ticket.get("type") != "problem" and DECLARE_TAG in (ticket.get("tags") or ()):
                messages = self.replies.store.conversation_messages(event.conversation_key)
                first = next((m for m in messages if m.direction is Direction.INBOUND), None)
                if first is not None:
                    declared = self.crisis.declare(first, event.ticket_id)
                    logger.info("crisis declared by an agent", extra={"ticket_id": event.ticket_id, "started": declared.started})
                    ticket["type"] = "problem" if declared.started else ticket.get("type")
            if ticket.get("type") == "problem" and event.kind == COMMENT_EVENT:
                self.answer_problem(event.ticket_id, deadline=deadline, note_held=note_held)
            elif ticket.get("type") == "problem" and event.kind == APPROVAL_EVENT:
                self.decide(event.ticket_id, event.decision, deadline=deadline, note_held=note_held)
        except (HelpdeskError, StoreUnavailable) as exc:
            logger.warning("problem ticket not handled", extra={"ticket_id": event.ticket_id, "reason": str(exc)[:200]})


def _job_of(problem_id: str, helpdesk: str, comment: Any, private: bool) -> FanoutJob:
    """The fan-out job of one agent answer (a Zendesk comment or an ``AgentEvent``)."""
    return FanoutJob(
        helpdesk,
        problem_id,
        str(comment.comment_id),
        comment.text,
        private=private,
        author_id=comment.author_id,
        author_name=comment.author_name,
        author_email=comment.author_email,
    )


def _reference(message_id: str, conversation_key: str, account_id: str) -> SocialMessage:
    """The message a note of the fan-out's own is about (the adapters' ``add_note`` takes one)."""
    return SocialMessage(
        platform=Platform.OTHER,
        kind=Kind.REPLY,
        direction=Direction.OUTBOUND,
        message_id=message_id,
        conversation_key=conversation_key,
        account_id=account_id,
        author=Author(platform_id="socialdesk"),
        text="",
        created_at=datetime.now(UTC),
    )
