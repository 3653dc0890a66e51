"""One voice in a crisis, end to end over HTTP with the Zendesk sandbox: the agent's answer on the
problem ticket waits for a lead once, there (one note), and once approved reaches every incident's
customer once, without a second approval on any incident (the approval delivered twice changes
nothing); withdrawn, nobody gets it. An answer on an incident waits while the crisis lasts, and
follows the normal rules once it has ended.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chalicelib.outbound.agent_events import signed_headers
from chalicelib.outbound.approval import ApprovalRules
from local.crisis_burst import burst
from tests.integration.conftest import http
from tests.integration.test_agent_replies import rig  # noqa: F401 - the fixture the crisis rig uses
from tests.integration.test_crisis_flow import ANSWER, Crisis
from tests.integration.test_crisis_flow import crisis as crisis_rig  # noqa: F401 - the fixture, reused


@pytest.fixture
def crisis(crisis_rig: Crisis) -> Crisis:  # noqa: F811 - the imported fixture, extended
    """The crisis rig with the rules file's crisis rule (problem and incident tickets of an open crisis wait)."""
    use_rules(crisis_rig, ApprovalRules())
    return crisis_rig


def use_rules(crisis: Crisis, rules: ApprovalRules) -> None:
    """The approval rules of the app's agent replies, and of the fan-out's copy of them."""
    crisis.answers.replies.approval_rules = rules
    crisis.answers._incident_replies.approval_rules = rules  # noqa: SLF001 - the copy made for the bulk notes


def decide_on(crisis: Crisis, ticket_id: int, tag: str) -> dict[str, Any]:
    """A lead adds the decision tag to a ticket; the one approval delivery it fired."""
    [approval] = [d for d in crisis.rig.zendesk.agent_update(ticket_id, add_tags=[tag]) if '"approval"' in d["body"]]
    assert approval["status"] == 200, approval
    return approval


def comment_delivery(crisis: Crisis, ticket_id: int, text: str) -> dict[str, Any]:
    """An agent's public comment on a ticket; the one agent-comment delivery it fired."""
    [delivery] = [d for d in crisis.rig.zendesk.agent_comment(ticket_id, text) if '"agent_comment"' in d["body"]]
    assert delivery["status"] == 200, delivery
    return delivery


def notes_of(crisis: Crisis, ticket_id: int) -> list[str]:
    return [c["body"] for c in crisis.rig.zendesk.comments(ticket_id) if not c["public"]]


def test_a_crisis_answer_waits_once_on_the_problem_and_once_approved_reaches_every_customer_once(crisis: Crisis) -> None:
    # Any known reach would hold an incident's own send: the X customers' 40 followers do here.
    use_rules(crisis, ApprovalRules(reach_at_least=0))
    crisis.complain(burst("4711", 14))
    (problem,) = crisis.problems()
    incidents = [t["id"] for t in crisis.customer_tickets() if t.get("problem_id") == problem["id"]]
    assert len(incidents) == 14

    assert comment_delivery(crisis, problem["id"], ANSWER)["response"]["outcome"] == "held_for_approval"
    [held] = [n for n in notes_of(crisis, problem["id"]) if n.startswith("Waiting for approval by a lead")]
    assert "part of an open crisis" in held and "every incident's customer" in held
    # Zendesk's retry of the comment event, and the schedule, send nothing and note nothing more.
    assert crisis.deliver_again(problem["id"]).body["outcome"] == "awaiting_approval"
    crisis.answers.run_schedule()
    assert crisis.answers_received() == Counter()
    assert len([n for n in notes_of(crisis, problem["id"]) if n.startswith("Waiting for approval")]) == 1

    approval = decide_on(crisis, problem["id"], "socialdesk_approved")
    assert approval["response"]["outcome"] == "fanned_out"
    received = crisis.answers_received()
    assert len(received) == 14 and set(received.values()) == {1}, received
    assert any(customer.startswith("x:") for customer in received)  # the ones the reach rule would have held
    for incident in incidents:  # each incident sent without a second approval
        notes = notes_of(crisis, incident)
        assert any(n.startswith("Sent to the customer on") for n in notes), notes
        assert not any(n.startswith("Waiting for approval") for n in notes), notes

    # The approval delivered twice (Zendesk's retry), and the schedule: nobody gets it twice.
    body = approval["body"].encode()
    again = http(
        "POST", f"{crisis.rig.app_url}/helpdesk/zendesk", body, signed_headers(crisis.rig.secret, body, invocation_id="91")
    )
    assert again.status == 200 and again.body["outcome"] == "nothing_held"
    crisis.answers.run_schedule()
    assert crisis.answers_received() == received
    assert notes_of(crisis, problem["id"])[-1] == "One answer to all: Sent 14 of 14."


def test_a_withdrawn_crisis_answer_reaches_nobody(crisis: Crisis) -> None:
    crisis.complain(burst("4721", 10))
    (problem,) = crisis.problems()
    assert comment_delivery(crisis, problem["id"], ANSWER)["response"]["outcome"] == "held_for_approval"

    assert decide_on(crisis, problem["id"], "socialdesk_withdrawn")["response"]["outcome"] == "withdrawn"
    assert "Withdrawn by a lead: this answer was not sent to any incident's customer, and never will be." in notes_of(
        crisis, problem["id"]
    )
    # Approving afterwards, a retried comment event, or the schedule: still nobody.
    assert decide_on(crisis, problem["id"], "socialdesk_approved")["response"]["outcome"] == "nothing_held"
    assert crisis.deliver_again(problem["id"]).status == 200
    crisis.answers.run_schedule()
    assert crisis.answers_received() == Counter()


def test_an_incident_answer_waits_while_the_crisis_lasts_and_not_after_it_ended(crisis: Crisis) -> None:
    crisis.complain(burst("4731", 12))
    (problem,) = crisis.problems()
    # The public ones (X mentions; the burst's other customers wrote in chats).
    during, after = [t["id"] for t in crisis.customer_tickets() if str(t.get("external_id")).startswith("x:tweets:")]

    delivery = comment_delivery(crisis, during, "@customer sorry, we're on it.")
    assert delivery["response"]["outcome"] == "held_for_approval"
    assert any("part of an open crisis" in n for n in notes_of(crisis, during))
    assert crisis.rig.x.sent() == []

    detector = crisis.tickets.detector
    (active,) = detector.active("brand")
    assert detector.end("brand", active.crisis_id) is not None  # an agent ends it (the schedule ends a quiet one)

    # Its incidents and its problem follow the normal rules again (nothing else here needs approval).
    assert crisis.rig.zendesk.ticket(after)["type"] == "incident"
    assert comment_delivery(crisis, after, "@customer fixed now, sorry!")["response"]["outcome"] == "sent"
    assert [t["body"]["text"] for t in crisis.rig.x.sent("tweet")] == ["@customer fixed now, sorry!"]
    assert comment_delivery(crisis, problem["id"], ANSWER)["response"]["outcome"] == "fanned_out"
    received = crisis.answers_received()
    assert len(received) == 12 and set(received.values()) == {1}, received


def test_a_crisis_an_agent_declared_waits_with_one_note_and_approved_reaches_its_customer_and_the_others(crisis: Crisis) -> None:
    crisis.complain(burst("4741", 4))  # too few for a crisis of its own; the fourth customer wrote on X, in public
    [declared] = [t for t in crisis.customer_tickets() if str(t.get("external_id")).startswith("x:tweets:")]
    crisis.rig.zendesk.agent_update(declared["id"], add_tags=["socialdesk_crisis"])

    # Its own customer's answer and the fan-out's both wait, under one note.
    assert comment_delivery(crisis, declared["id"], ANSWER)["response"]["outcome"] == "held_for_approval"
    assert crisis.rig.zendesk.ticket(declared["id"])["type"] == "problem"
    assert len([n for n in notes_of(crisis, declared["id"]) if n.startswith("Waiting for approval")]) == 1
    assert crisis.answers_received() == Counter()

    decide_on(crisis, declared["id"], "socialdesk_approved")
    received = crisis.answers_received()
    assert len(received) == 4 and set(received.values()) == {1}, received  # its own customer and the three others
