"""Crisis decisions as helpdesk tickets: a start opens one problem ticket, links the earlier
complaints' tickets and alerts once; later complaints join it; an ended crisis takes no more;
an agent's declaration makes the ticket the problem; failures never hold a ticket back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from chalicelib.crisis import CrisisDecision, CrisisDetector, CrisisSettings, CrisisStoreUnavailable, MemoryCrisisStore, Outcome
from chalicelib.crisis.model import Crisis, Member, Origin
from chalicelib.crisis.similarity import Centroid
from chalicelib.crisis.tickets import CrisisTickets, is_problem_key, problem_external_id
from chalicelib.crisis.window import WindowEntry
from chalicelib.helpdesks.base import HelpdeskUnavailable, TicketGone, TicketRef
from chalicelib.store import Conversation
from tests.unit.test_crisis_detector import OUTAGE_EN, T0, UNRELATED, Clock, complaint

SETTINGS = CrisisSettings(refresh_seconds=0, active_seconds=0, quiet_minutes=30)


class Helpdesk:
    """A helpdesk with problem tickets, in memory: what was opened and linked."""

    name = "zendesk"

    def __init__(self) -> None:
        self.problems: dict[str, str] = {}  # external id -> ticket id
        self.types: dict[str, tuple[str, str | None]] = {}  # ticket -> (type, problem id)
        self.open_calls = 0
        self.looked_first: list[bool] = []  # per open_problem call: whether it looked for an existing ticket
        self.refuse_links: set[str] = set()
        self.unavailable = False

    def open_problem(
        self, external_id: str, subject: str, description: str, tags: Sequence[str], *, look_first: bool = True
    ) -> TicketRef:
        self.open_calls += 1
        self.looked_first.append(look_first)
        if self.unavailable:
            raise HelpdeskUnavailable("503")
        ticket = self.problems.setdefault(external_id, f"P{len(self.problems) + 1}")
        self.types[ticket] = ("problem", None)
        return TicketRef(ticket, "new")

    def set_ticket_type(self, ticket_id: str, ticket_type: str, problem_id: str | None = None) -> TicketRef:
        if ticket_id in self.refuse_links:
            raise TicketGone("deleted")
        self.types[ticket_id] = (ticket_type, problem_id)
        return TicketRef(ticket_id, "open")

    def incidents(self, problem_id: str) -> Iterable[dict[str, Any]]:
        return [{"id": t} for t, (kind, p) in self.types.items() if kind == "incident" and p == problem_id]

    def ticket_details(self, ticket_id: str) -> dict[str, Any]:
        return {"id": ticket_id, "type": self.types.get(ticket_id, ("question", None))[0]}


class Store:
    """Conversations and their tickets, as the sync records them."""

    def __init__(self) -> None:
        self.tickets: dict[str, str] = {}

    def get_conversation(self, key: str) -> Conversation:
        ticket = self.tickets.get(key)
        return Conversation(key=key, helpdesk="zendesk" if ticket else None, ticket_id=ticket)


class Alerts:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str | None]] = []

    def crisis_started(self, crisis: Any, problem_ticket_id: str | None) -> bool:
        self.sent.append((crisis.crisis_id, problem_ticket_id))
        return True


@pytest.fixture
def rig() -> tuple[CrisisTickets, Helpdesk, Store, Alerts, Clock, MemoryCrisisStore]:
    clock, memory = Clock(), MemoryCrisisStore()
    helpdesk, store, alerts = Helpdesk(), Store(), Alerts()
    detector = CrisisDetector(memory, SETTINGS, clock=clock)
    tickets = CrisisTickets(detector, helpdesk, store, alerts, scope=lambda message: "brand")  # type: ignore[arg-type]
    return tickets, helpdesk, store, alerts, clock, memory


def deliver(rig: Any, text: str, at: float) -> tuple[Any, str | None]:
    """What the sync does: ask for the problem, then open the conversation's ticket (as an incident)."""
    tickets, helpdesk, store, _alerts, clock, _memory = rig
    clock.now = max(clock.now, at)
    message = complaint(text, at)
    problem = tickets.problem_for(message)
    ticket = f"T-{message.message_id}"
    store.tickets[message.conversation_key] = ticket
    helpdesk.types[ticket] = ("incident", problem) if problem else ("question", None)
    return message, problem


def test_a_start_opens_one_problem_links_the_earlier_tickets_and_alerts_once(rig) -> None:
    tickets, helpdesk, _store, alerts, _clock, _memory = rig
    problems = [deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30)[1] for i in range(25)]

    assert len(helpdesk.problems) == 1
    ((external_id, problem),) = helpdesk.problems.items()
    assert is_problem_key(external_id) and external_id.startswith(problem_external_id("brand", ""))
    first = problems.index(problem)
    assert problems[:first] == [None] * first and set(problems[first:]) == {problem}
    incidents = [t for t, (kind, p) in helpdesk.types.items() if kind == "incident" and p == problem]
    assert len(incidents) == 25  # the complaints before the start were linked when it started
    assert alerts.sent == [(alerts.sent[0][0], problem)]
    assert helpdesk.open_calls == 1
    assert helpdesk.looked_first == [False]  # the crisis was created by that very decision: no ticket to look for


def test_unrelated_complaints_are_not_linked_and_a_retry_asks_nothing_twice(rig) -> None:
    tickets, helpdesk, _store, _alerts, _clock, _memory = rig
    for i in range(20):
        deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30)
    message, problem = deliver(rig, UNRELATED[0], T0 + 700)
    assert problem is None
    assert helpdesk.types[f"T-{message.message_id}"] == ("question", None)
    outage, linked = deliver(rig, OUTAGE_EN[2], T0 + 710)
    assert linked is not None
    calls = helpdesk.open_calls
    assert tickets.problem_for(outage) == linked  # the sync's retry of the same delivery
    assert helpdesk.open_calls == calls


def test_an_ended_crisis_takes_no_more_members(rig) -> None:
    tickets, helpdesk, _store, _alerts, clock, _memory = rig
    for i in range(20):
        deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30)
    (problem,) = helpdesk.problems.values()
    clock.now = T0 + 20 * 30 + 31 * 60  # quiet for longer than quiet_minutes
    (ended,) = tickets.end_quiet()
    assert ended.ticket_id == problem
    _message, later = deliver(rig, OUTAGE_EN[0], clock.now + 1)
    assert later != problem


def test_a_start_whose_problem_ticket_failed_is_completed_by_the_next_join(rig) -> None:
    tickets, helpdesk, _store, alerts, _clock, _memory = rig
    helpdesk.unavailable = True
    early = [deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30)[1] for i in range(15)]
    assert early == [None] * 15  # never held back: the tickets were opened without a problem
    helpdesk.unavailable = False
    _message, problem = deliver(rig, OUTAGE_EN[3], T0 + 15 * 30)
    assert problem is not None and len(helpdesk.problems) == 1
    linked = [t for t, (kind, p) in helpdesk.types.items() if kind == "incident" and p == problem]
    assert len(linked) >= 10  # the start's members, linked once the problem exists
    assert [p for _c, p in alerts.sent] == [problem]
    # the start's own attempt need not look; the join's must (the first attempt may have created it)
    assert helpdesk.looked_first[0] is False and helpdesk.looked_first[-1] is True


def test_a_ticket_that_cannot_be_linked_does_not_stop_the_others(rig) -> None:
    tickets, helpdesk, store, _alerts, _clock, _memory = rig
    messages = [deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30) for i in range(5)]
    helpdesk.refuse_links.add(f"T-{messages[0][0].message_id}")
    for i in range(5, 20):
        deliver(rig, OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30)
    (problem,) = helpdesk.problems.values()
    linked = [t for t, (kind, p) in helpdesk.types.items() if kind == "incident" and p == problem]
    assert len(linked) == 19


def test_the_detectors_store_failing_never_holds_a_ticket_back(rig, monkeypatch) -> None:
    tickets, _helpdesk, _store, _alerts, clock, memory = rig

    def down(*_args: Any, **_kwargs: Any) -> bool:
        raise CrisisStoreUnavailable("throttled")

    monkeypatch.setattr(memory, "record_many", down)  # the batch's write fails: logged
    assert tickets.problem_for(complaint(OUTAGE_EN[0], T0)) is None
    monkeypatch.setattr(memory, "entries", down)  # the window cannot be read: no decision
    assert tickets.problem_for(complaint(OUTAGE_EN[1], T0)) is None


def test_an_agents_tag_makes_the_ticket_the_problem_of_the_similar_complaints(rig) -> None:
    tickets, helpdesk, _store, alerts, clock, _memory = rig
    messages = [deliver(rig, OUTAGE_EN[i], T0 + i * 30)[0] for i in range(4)]  # too few to start by themselves
    assert helpdesk.problems == {}
    declared = tickets.declare(messages[0], "T-agent")
    assert declared.started and declared.crisis is not None and declared.crisis.ticket_id == "T-agent"
    assert helpdesk.types["T-agent"] == ("problem", None)
    assert sum(1 for kind, p in helpdesk.types.values() if kind == "incident" and p == "T-agent") == 4
    assert tickets.declare(messages[0], "T-agent").started is False  # the tag seen again
    _message, joined = deliver(rig, OUTAGE_EN[5], T0 + 200)
    assert joined == "T-agent"
    assert [p for _c, p in alerts.sent] == ["T-agent"]


def test_a_bulk_create_gives_the_complaints_before_the_start_the_problem_too(rig) -> None:
    tickets, helpdesk, _store, _alerts, clock, _memory = rig
    messages = [complaint(OUTAGE_EN[i % len(OUTAGE_EN)], T0 + i * 30) for i in range(20)]
    clock.now = T0 + 20 * 30
    found = tickets.problems_for(messages)  # none of them has a ticket yet: one bulk create for all
    (problem,) = helpdesk.problems.values()
    assert list(found.values()) == [problem] * 20
    unrelated = complaint(UNRELATED[1], clock.now)
    assert tickets.problems_for([unrelated]) == {unrelated.message_id: None}


class JoinsWithEarlier:
    """A detector whose every decision is a join that also takes in an earlier complaint (a running
    crisis catching up, or another wording joining it as a group)."""

    def __init__(self, earlier: Any, crisis: Any) -> None:
        self.earlier, self.crisis = earlier, crisis

    def observe(self, message: Any) -> CrisisDecision:
        return CrisisDecision(Outcome.JOINED, self.crisis, (Member.of(self.earlier), Member.of(message)))

    def flush(self) -> None:
        return None


def test_a_join_that_takes_in_earlier_complaints_links_their_tickets(rig) -> None:
    _tickets, helpdesk, store, _alerts, _clock, _memory = rig
    earlier = WindowEntry("m-early", "x:thread:m-early", "x", "p", T0, frozenset({"app"}))
    store.tickets[earlier.conversation_key] = "T-early"
    crisis = Crisis("brand", "c-1", Origin.DETECTED, Centroid({"app": 1.0}), T0, T0, T0, ticket_id="P-1")
    tickets = CrisisTickets(JoinsWithEarlier(earlier, crisis), helpdesk, store, scope=lambda message: "brand")  # type: ignore[arg-type]
    assert tickets.problem_for(complaint(OUTAGE_EN[0], T0 + 60)) == "P-1"
    assert helpdesk.types["T-early"] == ("incident", "P-1")  # its ticket existed: linked now, not at its next message


def test_in_a_stream_batch_the_links_wait_for_its_end(rig) -> None:
    _tickets, helpdesk, store, _alerts, _clock, _memory = rig
    earlier = WindowEntry("m-early", "x:thread:m-early", "x", "p", T0, frozenset({"app"}))
    store.tickets[earlier.conversation_key] = "T-early"
    crisis = Crisis("brand", "c-1", Origin.DETECTED, Centroid({"app": 1.0}), T0, T0, T0, ticket_id="P-1")
    tickets = CrisisTickets(JoinsWithEarlier(earlier, crisis), helpdesk, store, scope=lambda message: "brand")  # type: ignore[arg-type]
    tickets.begin_batch()
    for i in range(3):  # three decisions naming the same earlier complaint
        assert tickets.problem_for(complaint(OUTAGE_EN[i], T0 + 60 + i)) == "P-1"
    assert "T-early" not in helpdesk.types  # queued: one bulk update per problem for the whole batch
    tickets.end_batch()
    assert helpdesk.types["T-early"] == ("incident", "P-1")
