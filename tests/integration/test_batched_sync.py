"""The batched sync against the Zendesk sandbox: a burst of new conversations is opened
through ``create_many`` (requesters through ``users/create_or_update_many``), with the same
guarantees as one by one -- exactly one ticket per conversation with each message once, in
order, nothing overtaking a parked message -- when a job partly fails, outlives the wait,
loses its answer, or the invocation dies between submitting it and recording its tickets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.support.emf import points

T0 = 1_764_000_000


def _deliveries(events: list[tuple[str, str, str, int]]) -> list[dict[str, Any]]:
    """Messenger deliveries of ``(mid, psid, text, t)`` events, a hundred per webhook."""
    from local.samples import PAGE_ID

    payloads = []
    for start in range(0, len(events), 100):
        messaging = [{"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": t * 1000, "message": {"mid": mid, "text": text}}
                     for mid, psid, text, t in events[start:start + 100]]
        payloads.append({"object": "page", "entry": [{"id": PAGE_ID, "time": T0 * 1000, "messaging": messaging}]})
    return payloads


def _post(stack: Stack, events: list[tuple[str, str, str, int]]) -> None:
    for payload in _deliveries(events):
        assert stack.post_webhook("meta", payload).status == 200


def _burst(prefix: str, authors: int, start: int = 0) -> list[tuple[str, str, str, int]]:
    return [(f"m_{prefix}_{n}", str(8_000_000 + start + n), f"{prefix} complaint {n}: flight cancelled", T0 + n % 60)
            for n in range(authors)]


@pytest.fixture
def poller(stack: Stack) -> Any:
    """The stream read in batches of up to 1,000 records, like the deployed event source."""
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    return StreamPoller(boto3.client("dynamodbstreams"), stack.resources.stream_arn, lambda_app.sync_tickets,
                        batch_size=lambda_app.SYNC_BATCH_SIZE)


def _texts(stack: Stack, ticket: dict[str, Any]) -> list[str]:
    return [c["body"].splitlines()[0] for c in stack.sandbox.comments(ticket["id"]) if c["public"]]


def _one_ticket_each(stack: Stack, events: list[tuple[str, str, str, int]]) -> dict[str, dict[str, Any]]:
    """Every author's conversation has exactly one ticket, holding their messages once, in order."""
    from chalicelib import wiring

    by_author: dict[str, list[str]] = {}
    for _, psid, text, _ in sorted(events, key=lambda e: e[3]):
        by_author.setdefault(psid, []).append(text)
    tickets: dict[str, list[dict[str, Any]]] = {}
    for ticket in stack.tickets():
        tickets.setdefault(ticket["external_id"], []).append(ticket)
    found = {}
    for psid, texts in by_author.items():
        [key] = [k for k in tickets if k.endswith(f":{psid}")]
        [ticket] = tickets[key]
        assert _texts(stack, ticket) == texts
        conversation = wiring.message_store().get_conversation(key)
        assert conversation.ticket_id == str(ticket["id"]) and not conversation.has_parked
        found[psid] = ticket
    return found


def _calls(stack: Stack, operation: str) -> int:
    return stack.sandbox.stats()["requests"].get(operation, 0)


def measure_burst(stack: Stack, poller: Any, authors: int = 1000) -> float:
    """A burst of ``authors`` new complaints (one each) through the stream handler against
    the sandbox; returns helpdesk requests per message (every request counted: requester
    upserts, ticket creates, job polls)."""
    stack.sandbox.job_polls = 1  # every job is seen queued once before it completes
    events = _burst("burst", authors)
    _post(stack, events)
    before, started = stack.sandbox.stats()["total"], time.perf_counter()
    poller.drain()
    drained, calls = time.perf_counter() - started, stack.sandbox.stats()["total"] - before
    _one_ticket_each(stack, events)
    per_message = calls / authors
    print(f"burst of {authors}: {calls} helpdesk calls, {per_message:.3f} per message, drained in {drained:.1f} s, "
          f"by operation: {stack.sandbox.stats()['requests']}")
    return per_message


def test_a_burst_of_a_thousand_new_complaints_costs_under_003_calls_each(stack: Stack, poller: Any) -> None:
    assert measure_burst(stack, poller) <= 0.03
    assert _calls(stack, "POST /api/v2/tickets") == 0  # not one single create
    assert _calls(stack, "POST /api/v2/tickets/create_many") == 10
    assert _calls(stack, "POST /api/v2/users/create_or_update_many") == 10


def test_later_messages_in_the_batch_follow_their_bulk_created_ticket_in_order(stack: Stack, poller: Any) -> None:
    events = _burst("order", 30)
    # Ten of the authors wrote twice more within the batch (delivered out of order).
    events += [(f"m_order_{n}_b", str(8_000_000 + n), f"order follow-up {n}: still waiting", T0 + 200 + n) for n in range(10)]
    events += [(f"m_order_{n}_a", str(8_000_000 + n), f"order second {n}: hello?", T0 + 100 + n) for n in range(10)]
    _post(stack, events)
    poller.drain()
    _one_ticket_each(stack, events)
    assert _calls(stack, "POST /api/v2/tickets/create_many") == 1 and _calls(stack, "POST /api/v2/tickets") == 0


def test_items_that_fail_in_the_job_are_created_one_by_one(stack: Stack, poller: Any) -> None:
    events = _burst("partial", 20)
    stack.sandbox.fail_bulk_items(*_conversation_keys(events[:3]), details="Injected: ticket not created")
    _post(stack, events)
    poller.drain()
    _one_ticket_each(stack, events)
    assert _calls(stack, "POST /api/v2/tickets/create_many") == 1
    assert _calls(stack, "POST /api/v2/tickets") == 3  # the three failed items, each once


def _conversation_keys(events: list[tuple[str, str, str, int]]) -> list[str]:
    """The conversation keys the bridge gives these Messenger DMs (as stored by the webhook)."""
    from local.samples import PAGE_ID

    return [f"messenger:dm:{PAGE_ID}:{psid}" for _, psid, _, _ in events]


def _ticket_jobs(stack: Stack) -> int:
    return _calls(stack, "POST /api/v2/tickets/create_many")


def test_a_job_that_outlives_the_wait_is_resolved_by_the_redelivered_batch(stack: Stack, poller: Any) -> None:
    from chalicelib import wiring

    events = _burst("slow", 20)
    stack.sandbox.hold_jobs(kind="tickets")  # Zendesk is slow: the job stays queued
    _post(stack, events)
    assert poller.poll_once() == 0 and poller.failures == 1  # the batch is handed back for a retry
    assert stack.tickets() == [] and _calls(stack, "POST /api/v2/tickets") == 0  # nothing overtook the job
    assert all(wiring.message_store().get_conversation(k).ticket_id is None for k in _conversation_keys(events))

    stack.sandbox.release_jobs()
    poller.drain()  # the same batch again: its job is followed, not submitted again
    _one_ticket_each(stack, events)
    assert _ticket_jobs(stack) == 1 and _calls(stack, "POST /api/v2/tickets") == 0


def test_a_crash_between_the_job_and_its_bookkeeping_creates_nothing_twice(
    stack: Stack, poller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.sync.tickets import TicketSync

    events = _burst("crash", 25)
    _post(stack, events)
    original, recorded = TicketSync.record_bulk_opening, []

    def dies_midway(self: TicketSync, *args: Any, **kwargs: Any) -> Any:
        if len(recorded) == 7:
            raise RuntimeError("Lambda killed")
        recorded.append(args[0].message_id)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TicketSync, "record_bulk_opening", dies_midway)
    assert poller.poll_once() == 0 and poller.failures == 1
    assert len(stack.tickets()) == 25  # the job created them all; seven are recorded
    monkeypatch.setattr(TicketSync, "record_bulk_opening", original)
    poller.drain()
    _one_ticket_each(stack, events)
    assert _ticket_jobs(stack) == 1 and _calls(stack, "POST /api/v2/tickets") == 0


def _bulk_intent_writes(stack: Stack) -> list[str]:
    """Counts the bulk intents' writes from here on (the list grows with each one's status)."""
    import json

    from chalicelib import wiring

    written: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Item", {}).get("pk", {}).get("S", "")).startswith("BULK#"):
            written.append(json.loads(params["Item"]["state"]["S"])["status"])

    wiring._client("dynamodb").meta.events.register("before-parameter-build.dynamodb.PutItem", count)
    return written


def test_a_job_that_finishes_within_the_first_polls_costs_one_intent_write(stack: Stack, poller: Any) -> None:
    events = _burst("quick", 15)
    stack.sandbox.job_polls = 1  # seen queued once, then done: within the first polls
    written = _bulk_intent_writes(stack)
    _post(stack, events)
    poller.drain()
    _one_ticket_each(stack, events)
    assert written == ["submitting"]  # the job's id needed no write: its tickets were recorded at once


def test_a_job_still_running_after_the_first_polls_has_its_id_written(stack: Stack, poller: Any) -> None:
    events = _burst("slowish", 15)
    stack.sandbox.job_polls = 3
    written = _bulk_intent_writes(stack)
    _post(stack, events)
    poller.drain()
    _one_ticket_each(stack, events)
    assert written == ["submitting", "queued"]


def test_a_crash_before_a_quick_jobs_first_record_is_found_again_by_the_redrive(
    stack: Stack, poller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive
    from chalicelib.sync.tickets import TicketSync

    events = _burst("early", 12)
    _post(stack, events)
    original = TicketSync.record_bulk_opening

    def dies(self: TicketSync, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Lambda killed")

    monkeypatch.setattr(TicketSync, "record_bulk_opening", dies)
    assert poller.poll_once() == 0 and len(stack.tickets()) == 12  # created, none recorded, the job's id unwritten
    monkeypatch.setattr(TicketSync, "record_bulk_opening", original)
    poller.drain()  # the redelivery cannot know the job: parked as maybe sent, nothing created again
    assert stack.parked_in_queue() == 12 and len(stack.tickets()) == 12
    redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters())
    _one_ticket_each(stack, events)  # each found by external_id and its message
    assert _ticket_jobs(stack) == 1 and _calls(stack, "POST /api/v2/tickets") == 0


def test_a_bulk_create_without_an_answer_is_parked_and_found_again_by_the_redrive(stack: Stack, poller: Any) -> None:
    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive

    events = _burst("lost", 15)
    # Zendesk queues the job but its answer is lost: the bridge cannot know the job's id.
    stack.sandbox.inject(match="POST /api/v2/tickets/create_many", status=502, when="after")
    _post(stack, events)
    poller.drain()
    assert len(stack.tickets()) == 15 and _calls(stack, "POST /api/v2/tickets") == 0
    assert stack.parked_in_queue() == 15  # parked as maybe sent, not created again

    redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters())
    _one_ticket_each(stack, events)  # each found by external_id and its message, none created twice
    assert _calls(stack, "POST /api/v2/tickets") == 0 and stack.parked_in_queue() == 0


def test_a_parked_conversation_in_the_burst_stays_parked_and_nothing_overtakes_it(stack: Stack, poller: Any) -> None:
    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive

    first = [("m_held_0", "8009999", "held first: refund please", T0)]
    stack.sandbox.inject(match="POST /api/v2/tickets$", status=422)  # its ticket is refused: parked
    _post(stack, first)
    poller.drain()
    [key] = _conversation_keys(first)
    assert wiring.message_store().get_conversation(key).parked == 1

    later = [("m_held_1", "8009999", "held second: still no refund", T0 + 300)]
    events = _burst("beside", 20)
    _post(stack, events + later)
    poller.drain()
    assert stack.ticket_for(key) == []  # not opened in bulk, nothing overtook the parked message
    assert wiring.message_store().get_conversation(key).parked == 2
    assert _ticket_jobs(stack) == 1 and len(stack.tickets()) == 20

    redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters())
    _one_ticket_each(stack, events + first + later)  # its messages in order, on one ticket


def test_tickets_of_a_job_zendesk_no_longer_knows_are_found_by_external_id(
    stack: Stack, poller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.sync.tickets import TicketSync

    events = _burst("gone", 12)
    _post(stack, events)
    original = TicketSync.record_bulk_opening

    def dies(self: TicketSync, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("Lambda killed")

    monkeypatch.setattr(TicketSync, "record_bulk_opening", dies)
    stack.sandbox.job_polls = 3  # the job outlives the first polls: its id is written before the wait goes on
    assert poller.poll_once() == 0 and len(stack.tickets()) == 12  # created, none recorded
    monkeypatch.setattr(TicketSync, "record_bulk_opening", original)
    stack.sandbox.forget_jobs()  # the retry comes after Zendesk dropped the job's status
    poller.drain()
    _one_ticket_each(stack, events)
    assert _ticket_jobs(stack) == 1 and _calls(stack, "POST /api/v2/tickets") == 0
    assert _calls(stack, "GET /api/v2/tickets") == 12  # each looked up by external_id, once


def test_a_conversation_whose_bookkeeping_is_refused_is_not_given_a_second_ticket(
    stack: Stack, poller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import UnstorableConversation
    from chalicelib.sync.tickets import TicketSync

    events = _burst("refused", 12)
    _post(stack, events)
    original = TicketSync.record_bulk_opening

    def refuses_one(self: TicketSync, message: Any, *args: Any, **kwargs: Any) -> Any:
        if message.message_id == "m_refused_3":
            raise UnstorableConversation("ValidationException: item too large")
        return original(self, message, *args, **kwargs)

    monkeypatch.setattr(TicketSync, "record_bulk_opening", refuses_one)
    poller.drain()
    _one_ticket_each(stack, events)  # the single path found its ticket and recorded it there
    assert poller.failures == 0 and _calls(stack, "POST /api/v2/tickets") == 0


def test_without_bulk_user_imports_customers_are_upserted_one_by_one_and_not_asked_again(
    stack: Stack, poller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.helpdesks.zendesk import bulk

    monkeypatch.setattr(bulk, "_users_refused_until", {})  # the container's memory: this test's alone
    # Zendesk's answer until the account owner has bulk user imports enabled.
    stack.sandbox.inject(match="POST /api/v2/users/create_or_update_many", status=403, count=100)
    first, second = _burst("noimport", 12), _burst("noimport2", 12, start=100)
    _post(stack, first)
    poller.drain()
    _post(stack, second)
    poller.drain()
    _one_ticket_each(stack, first + second)
    assert _calls(stack, "POST /api/v2/users/create_or_update_many") == 1  # refused once, then remembered
    assert _calls(stack, "POST /api/v2/users/create_or_update") == 24 and _calls(stack, "POST /api/v2/tickets") == 24


def test_a_customer_whose_user_was_found_again_keeps_it_in_a_burst(stack: Stack, poller: Any) -> None:
    from chalicelib import wiring

    # Earlier, this person's user was merged into another (``save_requester`` kept the survivor):
    # an upsert by their external_id would create a new user instead.
    survivor = stack.sandbox.add_end_user("Ana Merged", external_id="messenger:other-id")["id"]
    wiring.message_store().save_requester("zendesk", "messenger", "8000003", str(survivor))
    events = _burst("known", 12)
    _post(stack, events)
    poller.drain()
    tickets = _one_ticket_each(stack, events)
    assert tickets["8000003"]["requester_id"] == survivor
    assert not any(u["external_id"] == "messenger:8000003" for u in stack.sandbox.users())
    assert _ticket_jobs(stack) == 1


def test_tickets_opened_in_bulk_are_counted_like_single_ones(
    stack: Stack, poller: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    events = _burst("counted", 12)
    _post(stack, events)
    capsys.readouterr()
    poller.drain()
    out = capsys.readouterr().out
    assert _calls(stack, "POST /api/v2/tickets/create_many") == 1
    assert sum(sum(point.value) for point in points(out, "tickets_opened")) == 12
