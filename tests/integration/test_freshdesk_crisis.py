"""A crisis on Freshdesk, end to end over HTTP: a burst of similar Telegram complaints becomes
one parent ticket; the complaints' tickets opened after the start are its children where the
account has parent/child tickets, every other member (ticketed before the start, or on an
account without the feature, or past a parent's 10 children) is tagged and gets a private
note with the parent's URL; the agent's one public answer on the parent reaches each customer
exactly once, also when Freshdesk delivers the webhook again and the schedule runs."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.helpdesks.freshdesk.crisis import PARENT_TAG, member_tag
from local.crisis_burst import PLATFORMS, complaint
from tests.integration.test_freshdesk_agent_replies import Rig, rig  # noqa: F401 - the fixture, reused
from tests.integration.test_freshdesk_flow import fd_stack  # noqa: F401 - the fixture, reused

ANSWER = "We found the bug in today's update and rolled it back: please update the app again. Sorry!"
TELEGRAM = PLATFORMS.index("telegram")
_runs = itertools.count(1)


@dataclass
class FreshdeskCrisisRig:
    rig: Rig
    answers: Any

    @property
    def sandbox(self) -> Any:
        return self.rig.stack.sandbox

    def complain(self, count: int) -> None:
        """``count`` Telegram customers write the same complaint (their chats exist on the sandbox), then the sync runs."""
        run = f"9{next(_runs)}{self.rig.run}"
        for index in range(TELEGRAM, TELEGRAM + len(PLATFORMS) * count, len(PLATFORMS)):
            route, payload = complaint(run, index)
            self.rig.telegram.add_chat(payload["message"]["chat"]["id"], messages=(1,), first_name="Customer")
            assert self.rig.stack.post_webhook(route, payload).status == 200
            self.rig.stack.sync()  # one at a time, as a burst's stream batches come

    def parents(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tickets() if PARENT_TAG in t["tags"]]

    def members(self) -> list[dict[str, Any]]:
        return [t for t in self.sandbox.tickets() if PARENT_TAG not in t["tags"]]

    def parent_notes(self, ticket: dict[str, Any], parent: dict[str, Any]) -> list[str]:
        return [
            c["body_text"]
            for c in self.sandbox.conversations(ticket["id"])
            if c["private"] and f"/a/tickets/{parent['id']}" in c["body_text"]
        ]

    def answers_received(self) -> Counter[int]:
        return Counter(call["chat_id"] for call in self.rig.sent() if call["body"].get("text") == ANSWER)


@pytest.fixture
def crisis(rig: Rig) -> Iterator[FreshdeskCrisisRig]:  # noqa: F811 - the fixture imported above
    from chalicelib import wiring
    from chalicelib.crisis import CrisisDetector, CrisisSettings, DynamoCrisisStore
    from chalicelib.crisis.tickets import CrisisAlerts, CrisisTickets
    from chalicelib.outbound.fanout import ProblemAnswers
    from chalicelib.sync.tickets import TicketSync

    store = wiring.message_store()
    detector = CrisisDetector(DynamoCrisisStore(store.table_name, rig.stack.dynamodb), CrisisSettings())
    tickets = CrisisTickets(
        detector, wiring.helpdesk(), store, CrisisAlerts(store.table_name, rig.stack.dynamodb), scope=lambda _m: "brand"
    )
    answers = ProblemAnswers(
        wiring.agent_replies(), tickets, store.table_name, rig.stack.dynamodb, rates=(50.0, {}), sleep=lambda _s: None
    )
    wiring.override("crisis", tickets)
    wiring.override("problem_answers", answers)
    wiring.override("sync", TicketSync(store, wiring.helpdesk(), wiring.dead_letters(), sleep=lambda _s: None, crisis=tickets))
    yield FreshdeskCrisisRig(rig, answers)


def _answer_on_parent(crisis: FreshdeskCrisisRig, parent: dict[str, Any]) -> dict[str, Any]:
    crisis.rig.rule()
    delivery = crisis.sandbox.agent_reply(parent["id"], ANSWER)["delivery"]
    assert delivery["status"] == 200, delivery["response"]
    return delivery


def test_members_after_the_start_are_children_and_one_answer_reaches_each_customer_once(crisis: FreshdeskCrisisRig) -> None:
    crisis.complain(16)
    (parent,) = crisis.parents()
    members = crisis.members()
    assert len(members) == 16 and all(member_tag(str(parent["id"])) in t["tags"] for t in members)
    children = [t for t in members if t.get("association_type") == 2]
    before = [t for t in members if t.get("association_type") != 2]
    assert children and before  # ticketed before the start: no parent_id on an existing ticket
    assert sorted(parent["associated_tickets_list"]) == sorted(t["id"] for t in children)
    assert all(len(crisis.parent_notes(t, parent)) == 1 for t in before)  # tagged, and a note with the parent's URL
    assert all(crisis.parent_notes(t, parent) == [] for t in children)  # Freshdesk shows a child's parent itself

    delivery = _answer_on_parent(crisis, parent)
    assert delivery["response"]["found_by"] == "crisis_parent"
    received = crisis.answers_received()
    assert len(received) == 16 and set(received.values()) == {1}, received

    again = crisis.sandbox.redeliver()  # Freshdesk's retry of the parent's webhook
    assert again["status"] == 200
    crisis.answers.run_schedule()
    assert crisis.answers_received() == received  # nobody twice
    counts = [c["body_text"] for c in crisis.sandbox.conversations(parent["id"]) if c["private"]]
    assert any(text.startswith("One answer to all: Sent 16 of 16.") for text in counts), counts


def test_without_parent_child_tickets_every_member_is_tagged_and_noted(crisis: FreshdeskCrisisRig) -> None:
    crisis.sandbox.set_parent_child(False)
    crisis.complain(14)
    (parent,) = crisis.parents()
    members = crisis.members()
    assert len(members) == 14 and not any(t.get("association_type") for t in members)
    assert all(member_tag(str(parent["id"])) in t["tags"] and len(crisis.parent_notes(t, parent)) == 1 for t in members)
    refused = [e for e in crisis.rig.stack.exchanges if e.method == "POST" and e.status == 403]
    assert len(refused) == 1  # the account's refusal is remembered: later members are created without parent_id

    _answer_on_parent(crisis, parent)
    received = crisis.answers_received()
    assert len(received) == 14 and set(received.values()) == {1}, received


def test_a_fan_out_cut_short_on_freshdesk_is_resumed_and_sends_nobody_twice(
    crisis: FreshdeskCrisisRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.outbound import fanout

    monkeypatch.setattr(fanout, "CHUNK", 4)
    crisis.complain(12)
    (parent,) = crisis.parents()
    real_progress = crisis.answers.jobs.progress
    crashes: list[int] = []

    def dies_once_after_sending(job: Any, cursor: int, tally: Any) -> None:
        if not crashes:  # the first chunk was sent; the Lambda dies before its cursor is written
            crashes.append(cursor)
            raise RuntimeError("Lambda timed out")
        real_progress(job, cursor, tally)

    monkeypatch.setattr(crisis.answers.jobs, "progress", dies_once_after_sending)
    crisis.rig.rule()
    delivery = crisis.sandbox.agent_reply(parent["id"], ANSWER)["delivery"]  # the webhook's run dies
    assert delivery["status"] == 500
    assert crashes and 0 < sum(crisis.answers_received().values()) <= 4
    crisis.answers.run_schedule()  # the lease was given back: resumed from the old cursor
    crisis.sandbox.redeliver()  # and Freshdesk's retry finds the job done
    received = crisis.answers_received()
    assert len(received) == 12 and set(received.values()) == {1}, received


def test_a_parent_takes_ten_children_and_the_members_after_are_tagged_and_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
    from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
    from chalicelib.store import MessageStore
    from local.freshdesk_sandbox import FreshdeskSandbox
    from tests.support.moto_table import moto_table

    sandbox = FreshdeskSandbox(api_key="k")
    sandbox.start()
    try:
        helpdesk = FreshdeskHelpdesk(sandbox.url, "k")
        with moto_table(monkeypatch) as (client, table):  # the members are kept in the table
            crisis = helpdesk.problem_tickets(MessageStore(table, client))
            parent = crisis.open_problem("crisis:brand:c-1", "Crisis: 12 similar complaints", "Samples: ...", ("socialdesk",))
            assert crisis.open_problem("crisis:brand:c-1", "Crisis: 12 similar complaints", "Samples: ...", ("socialdesk",)) == parent
            for index in range(12):
                author = Author(platform_id=f"5{index}", display_name=f"Customer {index}")
                message = SocialMessage(
                    platform=Platform.TELEGRAM,
                    kind=Kind.DIRECT_MESSAGE,
                    direction=Direction.INBOUND,
                    message_id=f"m{index}",
                    conversation_key=f"telegram:bot:5{index}",
                    account_id="bot",
                    author=author,
                    text="The app crashes at login since the update",
                    created_at=datetime.now(UTC),
                )
                requester = helpdesk.ensure_requester(Platform.TELEGRAM, author)
                helpdesk.open_ticket(message, requester, idempotency_key=f"k{index}", problem_id=parent.ticket_id)
            members = [t for t in sandbox.tickets() if member_tag(parent.ticket_id) in t["tags"]]
            children = [t for t in members if t.get("association_type") == 2]
            assert len(members) == 12 and len(children) == 10
            for ticket in members:
                notes = [
                    c
                    for c in sandbox.conversations(ticket["id"])
                    if c["private"] and f"/a/tickets/{parent.ticket_id}" in c["body_text"]
                ]
                assert len(notes) == (0 if ticket in children else 1)
            assert [t["id"] for t in crisis.incidents(parent.ticket_id)] == sorted(t["id"] for t in members)
            assert sandbox.stats()["requests"]["POST /api/v2/tickets"] == 1 + 12 + 1  # the parent, the members, one refusal
    finally:
        sandbox.stop()
