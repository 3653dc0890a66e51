"""A crisis end to end on the local stack: a burst of similar complaints through the real
webhooks becomes one Zendesk problem ticket with every complaint's ticket linked as an
incident and one alert; the agent's one public answer on the problem reaches each customer
exactly once on their platform's sandbox, also when Zendesk copies the answer onto the
incidents itself, when the fan-out is cut short and continued, and when deliveries repeat.
An agent's tag declares a crisis by hand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.crisis import CrisisDetector, CrisisSettings, DynamoCrisisStore
from chalicelib.crisis.tickets import CrisisAlerts, CrisisTickets
from chalicelib.outbound.agent_events import signed_headers
from chalicelib.outbound.fanout import ProblemAnswers
from chalicelib.sync.tickets import TicketSync
from local.crisis_burst import burst
from local.demo_replies import PlatformSandboxes
from local.samples import IG_ACCOUNT_ID
from tests.integration.conftest import http
from tests.integration.test_agent_replies import PLATFORM_SECRETS, Rig, rig  # noqa: F401 - the fixture, reused

ANSWER = "We found the bug in today's update and rolled it back: please update the app again. Sorry!"


@dataclass
class Crisis:
    rig: Rig
    tickets: CrisisTickets
    alerts: CrisisAlerts
    answers: ProblemAnswers
    sleeps: list[float]
    platforms: PlatformSandboxes

    def complain(self, deliveries: list[tuple[str, dict[str, Any]]]) -> None:
        """Each customer writes on their platform (its sandbox knows them), then its webhook arrives."""
        for route, payload in deliveries:
            self.platforms.seed(route, payload)
        self.rig.customer(deliveries)

    def problems(self) -> list[dict[str, Any]]:
        return [t for t in self.rig.zendesk.tickets() if t.get("type") == "problem"]

    def customer_tickets(self) -> list[dict[str, Any]]:
        return [t for t in self.rig.zendesk.tickets() if t.get("type") != "problem"]

    def answers_received(self) -> Counter[str]:
        """Answers received per customer (the send's body without the answer's text), on every platform sandbox."""
        received: Counter[str] = Counter()
        for platform, sandbox in (("meta", self.rig.meta), ("x", self.rig.x), ("telegram", self.rig.telegram), ("line", self.rig.line)):
            for call in sandbox.sent():
                if ANSWER in json.dumps(call["body"]):
                    received[f"{platform}:{json.dumps(_without_answer(call['body']), sort_keys=True)}"] += 1
        return received

    def deliver_again(self, ticket_id: int) -> Any:
        """Zendesk's retry of the agent-comment webhook for a ticket."""
        ticket = self.rig.zendesk.ticket(ticket_id)
        body = json.dumps(
            {"socialdesk_event": "agent_comment", "ticket_id": str(ticket_id), "external_id": ticket.get("external_id") or ""}
        ).encode()
        return http("POST", f"{self.rig.app_url}/helpdesk/zendesk", body, signed_headers(self.rig.secret, body))


def _without_answer(value: Any) -> Any:
    """A send's body with the answer's text taken out: what is left names the recipient."""
    if isinstance(value, dict):
        return {k: _without_answer(v) for k, v in value.items() if not (isinstance(v, str) and ANSWER in v)}
    if isinstance(value, list):
        return [_without_answer(v) for v in value]
    return value


@pytest.fixture
def crisis(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Iterator[Crisis]:  # noqa: F811 - the fixture imported above
    """A crisis rig whose approval rules hold no crisis answer: these tests are about the fan-out
    (``crisis_approval`` in ``test_approval.py`` keeps the rule that does)."""
    from chalicelib import wiring
    from chalicelib.outbound.approval import ApprovalRules

    monkeypatch.setitem(PLATFORM_SECRETS, f"META_PAGE_TOKEN_{IG_ACCOUNT_ID}", "local-ig-token")
    rig.meta.set_token(IG_ACCOUNT_ID, "local-ig-token")
    for name, sandbox in (("META", rig.meta), ("TELEGRAM", rig.telegram), ("LINE", rig.line)):
        monkeypatch.setenv(f"{name}_SANDBOX_PORT", sandbox.url.rsplit(":", 1)[1].rstrip("/"))
    platforms = PlatformSandboxes({"x_api_url": rig.x.url})

    stack = rig.stack
    store = wiring.message_store()
    replies = wiring.agent_replies()
    replies.approval_rules = ApprovalRules(crisis_tags=(), crisis_ticket_types=())
    detector = CrisisDetector(DynamoCrisisStore(store.table_name, stack.dynamodb), CrisisSettings())
    alerts = CrisisAlerts(store.table_name, stack.dynamodb)
    tickets = CrisisTickets(detector, wiring.helpdesk(), store, alerts, scope=lambda message: "brand")
    replies.open_crisis = tickets.in_open_crisis  # as wiring.agent_replies() asks crisis_tickets()
    sleeps: list[float] = []
    answers = ProblemAnswers(replies, tickets, store.table_name, stack.dynamodb, rates=(50.0, {}), sleep=sleeps.append)
    wiring.override("crisis", tickets)
    wiring.override("problem_answers", answers)
    wiring.override(
        "sync",
        TicketSync(store, wiring.helpdesk(), wiring.dead_letters(), sleep=stack.time.sleep, clock=stack.time.now, crisis=tickets),
    )
    yield Crisis(rig, tickets, alerts, answers, sleeps, platforms)


def test_a_burst_becomes_one_problem_and_one_answer_reaches_each_customer_once(crisis: Crisis) -> None:
    crisis.complain(burst("4101", 36))

    (problem,) = crisis.problems()
    assert problem["external_id"].startswith("crisis:brand:") and "socialdesk" in problem["tags"]
    incidents = crisis.customer_tickets()
    assert len(incidents) == 36
    assert all(t["type"] == "incident" and t["problem_id"] == problem["id"] for t in incidents)
    (alert,) = crisis.alerts.recorded()
    assert alert["problem_ticket_id"] == str(problem["id"]) and alert["size"] >= 10
    description = crisis.rig.zendesk.comments(problem["id"])[0]["body"]
    assert "Samples:" in description and "Per platform:" in description

    # Later complaints join while it lasts.
    crisis.complain(burst("4102", 6))
    assert len([t for t in crisis.customer_tickets() if t.get("problem_id") == problem["id"]]) == 42
    assert len(crisis.alerts.recorded()) == 1

    # Zendesk copies the answer onto every incident too: their triggers fire, nothing is sent twice.
    crisis.rig.zendesk.propagate_problem_comments = True
    deliveries = crisis.rig.zendesk.agent_comment(problem["id"], ANSWER)
    assert all(d["status"] == 200 for d in deliveries)
    assert len([d for d in deliveries if '"agent_comment"' in d["body"]]) == 43  # the problem and its 42 incidents
    received = crisis.answers_received()
    assert len(received) == 42 and set(received.values()) == {1}, received

    # Zendesk retries the problem's delivery, and the schedule runs: still once each.
    assert crisis.deliver_again(problem["id"]).status == 200
    crisis.answers.run_schedule()
    assert crisis.answers_received() == received
    notes = [c["body"] for c in crisis.rig.zendesk.comments(problem["id"]) if not c["public"]]
    assert notes[-1] == "One answer to all: Sent 42 of 42."
    incident_notes = [c["body"] for c in crisis.rig.zendesk.comments(incidents[0]["id"]) if not c["public"]]
    assert any(n.startswith("Sent to the customer on") for n in incident_notes)


def test_a_fan_out_cut_short_is_continued_and_sends_nobody_twice(crisis: Crisis) -> None:
    crisis.complain(burst("4201", 24))
    (problem,) = crisis.problems()
    crisis.answers.webhook_budget = 0.0  # the webhook starts the job and leaves all of it to the schedule
    crisis.rig.zendesk.agent_comment(problem["id"], ANSWER)
    assert crisis.answers_received() == Counter()
    assert crisis.deliver_again(problem["id"]).status == 200  # a repeated delivery: still nothing doubled
    assert sum(crisis.answers_received().values()) == 0

    crisis.answers.webhook_budget = 0.3
    for _ in range(40):  # a few incidents per run, like Lambdas timing out, plus repeats
        crisis.answers.run_schedule(remaining_seconds=lambda: 30.05)
        crisis.deliver_again(problem["id"])
    received = crisis.answers_received()
    assert len(received) == 24 and set(received.values()) == {1}, received
    notes = [c["body"] for c in crisis.rig.zendesk.comments(problem["id"]) if not c["public"]]
    assert notes[-1] == "One answer to all: Sent 24 of 24."


def test_an_agent_tag_declares_a_crisis_with_that_ticket_as_the_problem(crisis: Crisis) -> None:
    crisis.complain(burst("4301", 4))  # too few for a crisis of its own
    assert crisis.problems() == []
    tickets = crisis.customer_tickets()
    first = tickets[0]
    crisis.rig.zendesk.agent_update(first["id"], add_tags=["socialdesk_crisis"])
    crisis.rig.zendesk.agent_comment(first["id"], ANSWER)

    assert crisis.rig.zendesk.ticket(first["id"])["type"] == "problem"
    linked = [t for t in crisis.customer_tickets() if t.get("problem_id") == first["id"]]
    assert len(linked) == 3
    received = crisis.answers_received()
    assert len(received) == 4 and set(received.values()) == {1}, received  # its own customer and the three others


def test_complaints_ticketed_before_the_start_are_linked_in_one_bulk_update(crisis: Crisis) -> None:
    crisis.complain(burst("4601", 8))  # ticketed one by one, no crisis yet
    assert crisis.problems() == [] and len(crisis.customer_tickets()) == 8
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    crisis.complain(burst("4602", 12))
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    (problem,) = crisis.problems()
    assert all(t.get("problem_id") == problem["id"] for t in crisis.customer_tickets())
    assert used["PUT /api/v2/tickets/update_many"] == 1 and used["PUT /api/v2/tickets/{ticket_id}"] == 0


def test_a_burst_in_one_stream_batch_costs_its_bulk_calls_and_one_problem_and_no_link_afterwards(crisis: Crisis) -> None:
    """250 complaints read in one stream batch (the deployed batch size): ceil(250/100) requester
    calls and ticket calls, the wave's jobs polled together, one known-customer search, and the
    problem ticket opened before the members' bulk create, so each is created as its incident
    (no update afterwards)."""
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    deliveries = burst("4301", 250)
    for route, payload in deliveries:
        crisis.platforms.seed(route, payload)
        assert crisis.rig.stack.post_webhook(route, payload).status == 200
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    poller = StreamPoller(
        boto3.client("dynamodbstreams"), crisis.rig.stack.resources.stream_arn, lambda_app.sync_tickets,
        batch_size=lambda_app.SYNC_BATCH_SIZE,
    )
    poller.drain()
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    assert poller.batches[0] >= 250  # every complaint in the first batch
    (problem,) = crisis.problems()
    tickets = crisis.customer_tickets()
    assert len(tickets) == 250 and all(t.get("problem_id") == problem["id"] for t in tickets)
    assert used["POST /api/v2/users/create_or_update_many"] == 3 and used["POST /api/v2/tickets/create_many"] == 3
    assert used["GET /api/v2/job_statuses/show_many"] == 2  # the requesters' jobs together, then the tickets'
    assert used["POST /api/v2/tickets"] == 1  # the problem ticket only
    assert used["PUT /api/v2/tickets/update_many"] == used["PUT /api/v2/tickets/{ticket_id}"] == 0
    assert used["GET /api/v2/users/search"] <= 1


def test_members_writing_again_cost_one_update_each_not_a_second_one_to_link_again(crisis: Crisis) -> None:
    """A crisis member's later message is one comment on their ticket: the ticket is already the
    problem's incident, so linking it again would spend one more of the account's ticket updates
    (100 a minute on Professional) per message."""
    deliveries = burst("4401", 24)
    crisis.complain(deliveries)
    (problem,) = crisis.problems()
    assert all(t.get("problem_id") == problem["id"] for t in crisis.customer_tickets())
    # Six of them write once more in their chat, in the same words (an X mention would be a thread of its own).
    again = [deliveries[n] for n in (0, 1, 2, 4, 5, 6)]
    later = [_written_again(route, payload) for route, payload in again]
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    crisis.complain(later)
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    assert used["PUT /api/v2/tickets/{ticket_id}"] == 6  # their comments, nothing else
    assert used["PUT /api/v2/tickets/update_many"] == 0
    assert all(t.get("problem_id") == problem["id"] for t in crisis.customer_tickets())


def _written_again(route: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The same customer's next message in the same conversation: new ids, same words."""
    text = json.dumps(payload)
    for old, new in (("m_burst_", "m_again_"), ("wamid.BURST", "wamid.AGAIN"), ('"id_str": "17', '"id_str": "18'),
                     ('"update_id": ', '"update_id": 9'), ('"message_id": ', '"message_id": 9'), ("01HB", "01HC"), ('"id": "4688', '"id": "4689')):
        text = text.replace(old, new)
    return route, json.loads(text)
