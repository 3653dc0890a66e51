"""Webhooks in over HTTP, tickets out in the Freshdesk sandbox: the Zendesk end-to-end
flow, on Freshdesk (moto -> stream -> sync -> ``FreshdeskHelpdesk`` -> sandbox).

The fixture is the shared ``stack`` fixture with a Freshdesk sandbox in place of the
Zendesk one (see the report for how to parametrize the shared fixture instead).
In Freshdesk a ticket's first message is its description and every later one is a
note, so "the ticket's messages" here are the description followed by the notes.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.defaults import LOCAL_SECRETS
from local.demo import expected_conversations
from local.samples import PAGE_ID, all_samples, facebook_comment_thread, messenger_chat, whatsapp
from tests.integration.conftest import ROOT, Stack

_stage_numbers = itertools.count(1)
API_KEY = "local-freshdesk-api-key"


class FreshdeskStack(Stack):
    """The shared ``Stack`` handles, reading tickets the Freshdesk way."""

    def ticket_for(self, conversation_key: str) -> list[dict[str, Any]]:
        """Tickets tagged with the conversation key's tag (Freshdesk has no external_id)."""
        from chalicelib.helpdesks.freshdesk.adapter import conversation_tag

        tag = conversation_tag(conversation_key)
        return [t for t in self.sandbox.tickets() if tag in t["tags"]]

    def messages(self, ticket: dict[str, Any]) -> list[dict[str, Any]]:
        """The description (as the first message) and every note, oldest first."""
        first = {"body_text": ticket["description_text"], "user_id": ticket["requester_id"], "incoming": True,
                 "private": False}
        return [first, *self.sandbox.conversations(ticket["id"])]

    def texts(self, ticket: dict[str, Any]) -> list[str]:
        """The first line of each message, as the customer wrote it."""
        return [m["body_text"].splitlines()[0] for m in self.messages(ticket)]


def _check_exchange(exchange: Any) -> str | None:
    """What Freshdesk would object to in one request, or None."""
    if not exchange.request_headers.get("Authorization", "").startswith("Basic "):
        return "no basic auth"
    if not urlsplit(exchange.url).path.startswith("/api/v2/"):
        return "not an API v2 path"
    if exchange.method in ("POST", "PUT") and exchange.request_headers.get("Content-Type") != "application/json":
        return "write without a JSON body"
    if exchange.status == 400:
        return f"validation error: {exchange.response_body[:300]!r}"
    return None


@pytest.fixture
def fd_stack(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FreshdeskStack]:
    """A fresh table, queue and Freshdesk sandbox, the app served over HTTP, and a stream poller."""
    import boto3
    from chalice.config import Config
    from chalice.local import LocalDevServer

    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
    from chalicelib.sync.tickets import TicketSync
    from local.freshdesk_sandbox import FreshdeskSandbox
    from local.resources import create_local_resources
    from local.stream_poller import StreamPoller

    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    resources = create_local_resources(
        dynamodb=dynamodb, sqs=sqs, template_path=ROOT / "infra" / "template.json", stage=f"fd{next(_stage_numbers)}"
    )
    sandbox = FreshdeskSandbox(host="127.0.0.1", port=0, api_key=API_KEY)
    sandbox.start()
    env = {
        **LOCAL_SECRETS,
        "TABLE_NAME": resources.table_name,
        "STREAM_ARN": resources.stream_arn,
        "DLQ_URL": resources.dlq_url,
        "HELPDESK": "freshdesk",
        "FRESHDESK_URL": sandbox.url,
        "FRESHDESK_API_KEY": API_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()

    exchanges: list[Any] = []
    violations: list[str] = []

    def check(exchange: Any) -> None:
        # Recorded, not raised: an assertion inside the client would look like a
        # helpdesk failure to the sync. The fixture fails the test at teardown.
        exchanges.append(exchange)
        problem = _check_exchange(exchange)
        if problem:
            violations.append(f"{exchange.method} {exchange.url}: {problem}")

    wiring.override("helpdesk", FreshdeskHelpdesk(sandbox.url, API_KEY, observer=check))
    sleeps: list[float] = []
    wiring.override("sync", TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), sleep=sleeps.append))

    server = LocalDevServer(lambda_app.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, name="chalice-local", daemon=True)
    thread.start()
    port = server.server.server_address[1]
    poller = StreamPoller(boto3.client("dynamodbstreams"), resources.stream_arn, lambda_app.sync_tickets)
    try:
        yield FreshdeskStack(f"http://127.0.0.1:{port}", sandbox, resources, poller, dynamodb, sqs, exchanges, sleeps)
    finally:
        server.shutdown()
        server.server.server_close()
        sandbox.stop()
        wiring.reset()
    assert not violations, "Freshdesk exchanges the API would refuse:\n" + "\n".join(violations)


def _messenger(mid: str, psid: str, text: str, t: int = 1_764_000_000) -> dict[str, Any]:
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": t * 1000, "message": {"mid": mid, "text": text}}]}]}


def _calls(stack: FreshdeskStack, operation: str) -> int:
    return stack.sandbox.stats()["requests"].get(operation, 0)


# --- the flow ---------------------------------------------------------------------------------------


def test_every_platform_sample_becomes_one_ticket_per_conversation_with_follow_ups_as_incoming_notes(fd_stack: FreshdeskStack) -> None:
    from chalicelib.helpdesks.freshdesk.adapter import conversation_tag

    samples = all_samples("101")
    for route, payload in samples:
        answer = fd_stack.post_webhook(route, payload)
        assert answer.status == 200, answer.body
    fd_stack.sync()

    expected = expected_conversations(samples)
    assert {key.split(":")[0] for key in expected} == {"facebook", "messenger", "instagram", "whatsapp", "x", "telegram", "line", "other"}
    tickets = fd_stack.tickets()
    assert len(tickets) == len(expected)
    for key, count in expected.items():
        [ticket] = fd_stack.ticket_for(key)
        # The customer's messages; a channel may add a private note (a recommendation: answer on Facebook).
        messages = [m for m in fd_stack.messages(ticket) if not m.get("private")]
        assert len(messages) == count, key
        assert {"socialdesk", key.split(":")[0], conversation_tag(key)} <= set(ticket["tags"])
        assert ticket["status"] == 2 and ticket["priority"] == 1 and ticket["source"] in (2, 7)
        # the customer is the requester and writes their own follow-ups, as public incoming notes
        for note in messages[1:]:
            assert (note["user_id"], note["incoming"], note["private"]) == (ticket["requester_id"], True, False)
    every_body = "\n".join(m["body_text"] for t in tickets for m in fd_stack.messages(t))
    assert "Thanks, we're looking into it." not in every_body
    assert "please DM us your booking ref" not in every_body
    assert "My refund hasn't arrived yet." in every_body
    # a DM is a chat, a public comment a portal ticket (Freshdesk refuses 5/6 on create)
    sources = {key.split(":")[0]: fd_stack.ticket_for(key)[0]["source"] for key in expected}
    assert sources["messenger"] == 7 and sources["facebook"] == 2


def test_follow_up_comment_keeps_the_thread_and_a_second_commenter_gets_their_own_ticket(fd_stack: FreshdeskStack) -> None:
    for route, payload in facebook_comment_thread("202"):
        fd_stack.post_webhook(route, payload)
    fd_stack.sync()
    tickets = sorted(fd_stack.tickets(), key=lambda t: len(fd_stack.messages(t)))
    assert [len(fd_stack.messages(t)) for t in tickets] == [1, 2]
    dana = fd_stack.texts(tickets[1])
    assert dana[0].startswith("My order #4411 arrived broken") and dana[1].startswith("Still waiting")


def test_stream_records_delivered_twice_reach_the_ticket_once(fd_stack: FreshdeskStack) -> None:
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    for route, payload in whatsapp("404"):
        fd_stack.post_webhook(route, payload)
    fd_stack.sync()
    calls_before = fd_stack.sandbox.stats()["total"]
    replay = StreamPoller(boto3.client("dynamodbstreams"), fd_stack.resources.stream_arn, lambda_app.sync_tickets)
    assert replay.drain() > 0
    [ticket] = fd_stack.tickets()
    assert len(fd_stack.messages(ticket)) == 2
    assert fd_stack.sandbox.stats()["total"] == calls_before
    # a WhatsApp customer's contact carries their number
    [contact] = fd_stack.sandbox.contacts()
    assert contact["phone"].startswith("+") and contact["unique_external_id"].startswith("whatsapp:")


def test_a_platform_retry_opens_no_second_ticket(fd_stack: FreshdeskStack) -> None:
    route, payload = messenger_chat("303")[0]
    fd_stack.post_webhook(route, payload)
    fd_stack.post_webhook(route, payload)
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    assert len(fd_stack.messages(ticket)) == 1


def test_returning_customer_keeps_one_contact(fd_stack: FreshdeskStack) -> None:
    def comment(post: str, comment_id: str) -> dict[str, Any]:
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_000, "changes": [{"field": "feed", "value": {
            "from": {"id": "6100042", "name": "Returning Customer"}, "post_id": post, "comment_id": comment_id,
            "parent_id": post, "message": "again broken", "created_time": 1_764_000_000, "item": "comment", "verb": "add"}}]}]}

    fd_stack.post_webhook("meta", comment(f"{PAGE_ID}_1", "1_1"))
    fd_stack.sync()
    fd_stack.post_webhook("meta", comment(f"{PAGE_ID}_2", "2_1"))
    fd_stack.sync()
    tickets = fd_stack.tickets()
    assert len(tickets) == 2
    assert tickets[0]["requester_id"] == tickets[1]["requester_id"]
    contact_calls = sum(n for name, n in fd_stack.sandbox.stats()["requests"].items() if "/contacts" in name)
    assert contact_calls == 1
    [contact] = fd_stack.sandbox.contacts()
    assert contact["unique_external_id"] == "facebook:6100042"


def test_message_after_a_closed_ticket_opens_a_new_ticket_on_the_same_conversation(fd_stack: FreshdeskStack) -> None:
    opening = _messenger("m_closed_1", "7777100", "first problem")
    [key] = expected_conversations([("meta", opening)])
    fd_stack.post_webhook("meta", opening)
    fd_stack.sync()
    [first] = fd_stack.tickets()
    fd_stack.sandbox.set_status(first["id"], "closed")
    fd_stack.post_webhook("meta", _messenger("m_closed_2", "7777100", "a new problem"))
    fd_stack.sync()
    tickets = sorted(fd_stack.tickets(), key=lambda t: t["id"])
    assert len(tickets) == 2
    second = tickets[1]
    assert set(first["tags"]) & set(second["tags"]) >= {"socialdesk", "messenger"}
    assert [t["id"] for t in fd_stack.ticket_for(key)] == [first["id"], second["id"]]
    assert fd_stack.texts(second)[0] == f"Follow-up to ticket #{first['id']}, which is closed."
    assert "a new problem" in second["description_text"]
    assert fd_stack.sandbox.conversations(first["id"]) == []  # nothing was added to the closed ticket
    assert second["requester_id"] == first["requester_id"]


def test_a_customer_note_reopens_a_resolved_ticket(fd_stack: FreshdeskStack) -> None:
    thread = facebook_comment_thread("707")
    fd_stack.post_webhook(*thread[0])
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    fd_stack.sandbox.set_status(ticket["id"], "resolved")
    fd_stack.post_webhook(*thread[1])
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    assert ticket["status"] == 2
    assert len(fd_stack.messages(ticket)) == 2


def test_rate_limited_ticket_creation_waits_for_retry_after_and_creates_once(fd_stack: FreshdeskStack) -> None:
    fd_stack.sandbox.inject(match="POST /api/v2/tickets$", status=429, retry_after=7, count=1)
    fd_stack.post_webhook("meta", _messenger("m_429", "7777200", "hello?"))
    fd_stack.sync()
    assert len(fd_stack.tickets()) == 1
    assert 7 in fd_stack.sleeps
    assert _calls(fd_stack, "POST /api/v2/tickets") == 2
    assert _calls(fd_stack, "GET /api/v2/tickets") == 0  # a 429 is not ambiguous: no lookup


def test_rate_limited_note_waits_for_retry_after_and_adds_it_once(fd_stack: FreshdeskStack) -> None:
    fd_stack.post_webhook("meta", _messenger("m_429n_1", "7777250", "one"))
    fd_stack.sync()
    fd_stack.sandbox.inject(match="POST /api/v2/tickets/{id}/notes", status=429, retry_after=3, count=1)
    fd_stack.post_webhook("meta", _messenger("m_429n_2", "7777250", "two", t=1_764_000_100))
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    assert [t.splitlines()[0] for t in fd_stack.texts(ticket)] == ["one", "two"]
    assert 3 in fd_stack.sleeps


def _redrive() -> Any:
    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive

    return redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters())


def test_connection_dropped_after_the_note_was_applied_does_not_double_it(fd_stack: FreshdeskStack) -> None:
    fd_stack.post_webhook("meta", _messenger("m_drop_1", "7777300", "one"))
    fd_stack.sync()
    fd_stack.sandbox.inject(match="POST /api/v2/tickets/{id}/notes", drop=True, when="after", count=1)
    fd_stack.post_webhook("meta", _messenger("m_drop_2", "7777300", "two", t=1_764_000_100))
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    # Freshdesk has no guard against a repeated note: it is not resent in the same invocation
    # (the request may still be under way); parked, and the redrive looks before sending.
    assert fd_stack.texts(ticket) == ["one", "two"] and _calls(fd_stack, "POST /api/v2/tickets/{id}/notes") == 1
    assert _redrive().delivered == 1
    assert fd_stack.texts(ticket) == ["one", "two"] and _calls(fd_stack, "POST /api/v2/tickets/{id}/notes") == 1
    assert _calls(fd_stack, "GET /api/v2/tickets/{id}/conversations") >= 1  # it looked instead of resending


def test_connection_dropped_after_the_ticket_was_created_does_not_double_it(fd_stack: FreshdeskStack) -> None:
    fd_stack.sandbox.inject(match="POST /api/v2/tickets$", drop=True, when="after", count=1)
    fd_stack.post_webhook("meta", _messenger("m_drop_new", "7777400", "first words"))
    fd_stack.sync()
    assert _redrive().delivered == 1  # a fresh look (search by the conversation's tag), no second create
    [ticket] = fd_stack.tickets()
    assert fd_stack.texts(ticket) == ["first words"]
    assert _calls(fd_stack, "POST /api/v2/tickets") == 1
    # the conversation is recorded against the ticket that exists
    fd_stack.post_webhook("meta", _messenger("m_drop_new_2", "7777400", "more words", t=1_764_000_100))
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    assert fd_stack.texts(ticket) == ["first words", "more words"]


def test_server_error_on_ticket_creation_that_did_not_apply_creates_it_once(fd_stack: FreshdeskStack) -> None:
    fd_stack.sandbox.inject(match="POST /api/v2/tickets$", status=502, count=1)
    fd_stack.post_webhook("meta", _messenger("m_502", "7777450", "hello"))
    fd_stack.sync()
    assert fd_stack.tickets() == []  # a 502 may hide a ticket made behind it: the redrive looks first
    assert _redrive().delivered == 1
    assert len(fd_stack.tickets()) == 1
    assert _calls(fd_stack, "POST /api/v2/tickets") == 2


def test_helpdesk_outage_parks_messages_in_order_and_redrive_delivers_them_once(fd_stack: FreshdeskStack) -> None:
    import app as lambda_app
    from local.defaults import SCHEDULED_EVENT

    fd_stack.sandbox.inject(status=503, count=1000)
    fd_stack.post_webhook("meta", _messenger("m_out_1", "7777500", "first"))
    fd_stack.post_webhook("meta", _messenger("m_out_2", "7777500", "second", t=1_764_000_060))
    fd_stack.post_webhook("meta", _messenger("m_out_3", "7777501", "someone else"))
    fd_stack.sync()
    assert fd_stack.tickets() == []
    assert fd_stack.parked_in_queue() == 2  # a notice per failed message; the one waiting behind it has none
    assert fd_stack.poller.failures == 0

    fd_stack.sandbox.clear_faults()
    lambda_app.redrive_parked(SCHEDULED_EVENT, None)
    tickets = fd_stack.tickets()
    assert len(tickets) == 2
    [chat] = [t for t in tickets if len(fd_stack.messages(t)) == 2]
    assert fd_stack.texts(chat) == ["first", "second"]
    assert fd_stack.parked_in_queue() == 0

    lambda_app.redrive_parked(SCHEDULED_EVENT, None)  # a second pass sends nothing again
    assert sum(len(fd_stack.messages(t)) for t in fd_stack.tickets()) == 3


def test_a_message_freshdesk_rejects_is_parked_without_blocking_other_conversations(fd_stack: FreshdeskStack) -> None:
    fd_stack.sandbox.inject(match="POST /api/v2/tickets$", status=403, count=1)
    fd_stack.post_webhook("meta", _messenger("m_poison", "7777600", "rejected once"))
    fd_stack.post_webhook("meta", _messenger("m_fine", "7777601", "fine"))
    fd_stack.sync()
    assert [fd_stack.texts(t)[0] for t in fd_stack.tickets()] == ["fine"]
    assert fd_stack.parked_in_queue() == 1


def test_an_edited_comment_adds_a_private_note_with_the_new_text(fd_stack: FreshdeskStack) -> None:
    post = f"{PAGE_ID}_555"

    def comment(verb: str, text: str) -> dict[str, Any]:
        value = {"from": {"id": "6100077", "name": "Ines Varga"}, "post_id": post, "comment_id": "555_1",
                 "parent_id": post, "created_time": 1_764_000_000, "item": "comment", "verb": verb, "message": text}
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_100, "changes": [{"field": "feed", "value": value}]}]}

    fd_stack.post_webhook("meta", comment("add", "The app crashes on login"))
    fd_stack.sync()
    edit = comment("edited", "The app crashes on login. Reinstalling did not help.")
    fd_stack.post_webhook("meta", edit)
    fd_stack.post_webhook("meta", edit)
    fd_stack.sync()
    [ticket] = fd_stack.tickets()
    [note] = fd_stack.sandbox.conversations(ticket["id"])
    assert note["private"] is True and note["incoming"] is False
    assert "Reinstalling did not help." in note["body_text"]
