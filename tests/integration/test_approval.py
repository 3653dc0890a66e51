"""One voice in public: a sensitive public answer waits for a lead, end to end over HTTP.

Zendesk: a customer with 250,000 followers mentions the brand on X -> ticket in the Zendesk
sandbox -> an agent answers publicly -> the comment trigger (``make zendesk-setup``) tells the
app, which holds the answer with a note -> a lead adds the tag ``socialdesk_approved`` (or
``socialdesk_withdrawn``) -> the approval trigger tells the app (and takes the tag off) -> the
answer reaches the X sandbox once, or never.

Freshdesk: the Telegram customer's ticket is urgent and the rule holds private answers too ->
the lead's scenario adds the tag with a private note -> the automation rule tells the app.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.outbound.agent_events import signed_headers
from local import samples
from tests.integration.conftest import http
from tests.integration.test_agent_replies import BRAND_X, Rig
from tests.integration.test_agent_replies import rig as zendesk_rig  # noqa: F401  (fixture)
from tests.integration.test_freshdesk_agent_replies import Rig as FreshdeskRig
from tests.integration.test_freshdesk_agent_replies import rig as fd_rig  # noqa: F401  (fixture)
from tests.integration.test_freshdesk_flow import API_KEY, fd_stack  # noqa: F401  (fixture)

HIGH_REACH = 250_000


def high_reach_mention(rig: Rig, run: str) -> str:
    """A public X mention by a customer with ``HIGH_REACH`` followers; its conversation key."""
    customer = f"3001{run}"
    rig.x.add_mention("@acme_support you lost my luggage", author_id=customer, username="mo_travels", tweet_id=f"18{run}01")
    route, mention = copy.deepcopy(samples.x_events(run)[0])
    mention["tweet_create_events"][0]["user"]["followers_count"] = HIGH_REACH
    rig.customer([(route, mention)])
    return f"x:tweets:{BRAND_X}:{customer}"


def schedule_an_hour_later() -> Any:
    """The app's agent replies as the retry schedule runs them an hour from now (every lease over)."""
    from chalicelib import wiring
    from chalicelib.outbound.agent_replies import AgentReplies

    replies = wiring.agent_replies()
    return AgentReplies(replies.store, replies.helpdesk, replies.dispatcher, now=lambda: datetime.now(UTC) + timedelta(hours=1),
                        approval_rules=replies.approval_rules)


def decide(rig: Rig, key: str, tag: str) -> dict[str, Any]:
    """A lead adds the decision tag; the one approval delivery it fired."""
    deliveries = rig.zendesk.agent_update(rig.ticket(key)["id"], add_tags=[tag])
    [approval] = [d for d in deliveries if '"approval"' in d["body"]]
    assert approval["status"] == 200, approval
    return approval


def test_a_high_reach_public_answer_waits_and_is_sent_once_when_approved(zendesk_rig: Rig) -> None:  # noqa: F811
    key = high_reach_mention(zendesk_rig, "6201")
    delivery = zendesk_rig.answer(key, "@mo_travels so sorry, your bag is on the next flight.")
    assert delivery["response"]["outcome"] == "held_for_approval"
    assert zendesk_rig.x.sent() == []
    [held] = [n for n in zendesk_rig.notes(key) if n.startswith("Waiting for approval by a lead")]
    assert "250,000 followers" in held and "socialdesk_approved" in held and "socialdesk_withdrawn" in held

    # Neither the helpdesk's redelivery nor the retry schedule sends a held answer.
    body = delivery["body"].encode()
    again = http("POST", f"{zendesk_rig.app_url}/helpdesk/zendesk", body, signed_headers(zendesk_rig.secret, body, invocation_id="88"))
    assert again.status == 200 and again.body["outcome"] == "awaiting_approval" and again.body["duplicate"] is True
    later = schedule_an_hour_later()
    assert [due for due in later.ledger.due(later.now()) if due.conversation_key == key] == []  # in no retry queue
    later.retry_due()
    assert zendesk_rig.x.sent() == []

    approval = decide(zendesk_rig, key, "socialdesk_approved")
    assert approval["response"]["outcome"] == "sent"
    [tweet] = zendesk_rig.x.sent("tweet")
    assert tweet["body"]["text"] == "@mo_travels so sorry, your bag is on the next flight."
    assert "socialdesk_approved" not in zendesk_rig.ticket(key)["tags"]  # the trigger took it off: it fired once
    assert any(n.startswith("Sent to the customer on X") for n in zendesk_rig.notes(key))

    # The approval delivered twice (Zendesk's retry) sends nothing more.
    body = approval["body"].encode()
    repeat = http("POST", f"{zendesk_rig.app_url}/helpdesk/zendesk", body, signed_headers(zendesk_rig.secret, body, invocation_id="89"))
    assert repeat.status == 200 and repeat.body["outcome"] == "nothing_held"
    assert len(zendesk_rig.x.sent()) == 1


def test_a_withdrawn_answer_is_never_sent(zendesk_rig: Rig) -> None:  # noqa: F811
    key = high_reach_mention(zendesk_rig, "6202")
    assert zendesk_rig.answer(key, "@mo_travels it was your fault.")["response"]["outcome"] == "held_for_approval"

    withdrawn = decide(zendesk_rig, key, "socialdesk_withdrawn")
    assert withdrawn["response"]["outcome"] == "withdrawn"
    assert any(n.startswith("Withdrawn by a lead") for n in zendesk_rig.notes(key))
    # Approving afterwards, or the schedule, still sends nothing.
    assert decide(zendesk_rig, key, "socialdesk_approved")["response"]["outcome"] == "nothing_held"
    assert schedule_an_hour_later().retry_due().outcomes == {}
    assert zendesk_rig.x.sent() == []


def test_a_later_answer_needs_its_own_approval(zendesk_rig: Rig) -> None:  # noqa: F811
    key = high_reach_mention(zendesk_rig, "6203")
    zendesk_rig.answer(key, "@mo_travels first answer")
    decide(zendesk_rig, key, "socialdesk_approved")
    assert zendesk_rig.answer(key, "@mo_travels second answer")["response"]["outcome"] == "held_for_approval"
    assert [t["body"]["text"] for t in zendesk_rig.x.sent("tweet")] == ["@mo_travels first answer"]


def test_a_lead_who_answers_and_approves_in_one_update_sends_it_once(zendesk_rig: Rig) -> None:  # noqa: F811
    key = high_reach_mention(zendesk_rig, "6205")
    ticket_id = zendesk_rig.ticket(key)["id"]
    deliveries = zendesk_rig.zendesk.agent_update(
        ticket_id, comment="@mo_travels we're rebooking you now.", add_tags=["socialdesk_approved"]
    )
    outcomes = {d["body"].split('"socialdesk_event": "')[1].split('"')[0]: d["response"]["outcome"] for d in deliveries}
    # (the reply also opened the ticket: the status trigger fired too)
    assert (outcomes["agent_comment"], outcomes["approval"]) == ("held_for_approval", "sent")
    assert [t["body"]["text"] for t in zendesk_rig.x.sent("tweet")] == ["@mo_travels we're rebooking you now."]


def test_a_private_answer_to_a_high_reach_customer_is_not_held(zendesk_rig: Rig) -> None:  # noqa: F811
    run = "6204"
    route, dm = copy.deepcopy(samples.x_events(run)[1])
    dm["users"][f"3002{run}"]["followers_count"] = HIGH_REACH
    zendesk_rig.x.add_dm("DMing as asked: booking ref QX7P2L", sender_id=f"3002{run}", username="adab", followers=HIGH_REACH,
                 event_id=f"19{run}01")
    zendesk_rig.customer([(route, dm)])
    key = f"x:dm:{BRAND_X}:3002{run}"
    assert zendesk_rig.answer(key, "Thanks, rebooked you on tomorrow's flight.")["response"]["outcome"] == "sent"
    assert len(zendesk_rig.x.sent("dm")) == 1
    assert not any(n.startswith("Waiting for approval") for n in zendesk_rig.notes(key))


# --- Freshdesk --------------------------------------------------------------------------------


@pytest.fixture
def urgent_rig(fd_rig: FreshdeskRig) -> FreshdeskRig:  # noqa: F811
    """The Freshdesk rig, whose rule also holds private answers on urgent tickets."""
    from chalicelib import wiring
    from chalicelib.outbound.approval import ApprovalRules

    wiring.agent_replies().approval_rules = ApprovalRules(reach_at_least=None, private_replies=True)
    return fd_rig


def _urgent_ticket(rig: FreshdeskRig) -> dict[str, Any]:
    """The customer's ticket, made urgent by an agent (``PUT /api/v2/tickets/{id}``)."""
    ticket = rig.customer_writes()
    body = json.dumps({"priority": 4}).encode()
    auth = "Basic " + base64.b64encode(f"{API_KEY}:X".encode()).decode()
    answer = http("PUT", f"{rig.stack.sandbox.url}/api/v2/tickets/{ticket['id']}", body,
                  {"Authorization": auth, "Content-Type": "application/json"})
    assert answer.status == 200, answer.body
    rig.rule(events=("reply_sent", "note_public", "note_private", "status"))
    return ticket


def test_freshdesk_an_urgent_answer_waits_and_is_sent_once_when_approved(urgent_rig: FreshdeskRig) -> None:
    fd, sandbox = urgent_rig, urgent_rig.stack.sandbox
    ticket = _urgent_ticket(fd)
    answer = sandbox.agent_reply(ticket["id"], "We're on it, a fix ships tonight.")
    assert answer["delivery"]["response"]["outcome"] == "held_for_approval"
    assert fd.sent() == []
    notes = [c["body_text"] for c in sandbox.conversations(ticket["id"]) if c["private"]]
    assert any("Waiting for approval by a lead" in n and "the ticket is urgent" in n for n in notes)

    approved = sandbox.agent_reply(ticket["id"], "Approved.", note=True, private=True, add_tags=("socialdesk_approved",))
    assert approved["delivery"]["status"] == 200, approved["delivery"]
    [sent] = fd.sent()
    assert sent["body"]["text"] == "We're on it, a fix ships tonight."
    assert "socialdesk_approved" not in sandbox.ticket(ticket["id"])["tags"]  # taken off: a later answer waits again
    # Freshdesk's retry of the approval: nothing more.
    assert sandbox.redeliver()["status"] == 200
    assert len(fd.sent()) == 1


def test_freshdesk_a_withdrawn_answer_is_never_sent(urgent_rig: FreshdeskRig) -> None:
    fd, sandbox = urgent_rig, urgent_rig.stack.sandbox
    ticket = _urgent_ticket(fd)
    sandbox.agent_reply(ticket["id"], "Not our problem.")
    withdrawn = sandbox.agent_reply(ticket["id"], "No.", note=True, private=True, add_tags=("socialdesk_withdrawn",))
    assert withdrawn["delivery"]["status"] == 200, withdrawn["delivery"]
    assert withdrawn["delivery"]["response"]["outcome"] == "withdrawn"
    sandbox.agent_reply(ticket["id"], "Oops.", note=True, private=True, add_tags=("socialdesk_approved",))
    assert fd.sent() == []
