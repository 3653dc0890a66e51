"""Webhooks in over HTTP, tickets out in the Zendesk sandbox: what a support team sees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.demo import expected_conversations
from local.samples import all_samples, facebook_comment_thread, messenger_chat, whatsapp
from tests.integration.conftest import Stack


def _comment_bodies(stack: Stack, ticket: dict[str, Any]) -> list[str]:
    return [c["body"] for c in stack.sandbox.comments(ticket["id"])]


def _messenger(mid: str, psid: str, text: str, t: int = 1_764_000_000) -> dict[str, Any]:
    from local.samples import PAGE_ID

    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": t * 1000, "message": {"mid": mid, "text": text}}]}]}


def test_every_platform_sample_becomes_one_ticket_per_conversation_with_follow_ups_as_comments(stack: Stack) -> None:
    samples = all_samples("101")
    for route, payload in samples:
        answer = stack.post_webhook(route, payload)
        assert answer.status == 200, answer.body
    stack.sync()

    expected = expected_conversations(samples)
    assert {key.split(":")[0] for key in expected} == {"facebook", "messenger", "instagram", "whatsapp", "x", "telegram", "line", "other"}
    tickets = stack.tickets()
    assert sorted(t["external_id"] for t in tickets) == sorted(expected)
    for key, count in expected.items():
        [ticket] = stack.ticket_for(key)
        # The customer's messages; a channel may add an internal note (a recommendation: answer on Facebook).
        comments = [c for c in stack.sandbox.comments(ticket["id"]) if c["public"]]
        assert len(comments) == count, key
        assert {"socialdesk", key.split(":")[0]} <= set(ticket["tags"])
        # the customer is the requester and authors their own follow-ups
        assert comments[0]["author_id"] == ticket["requester_id"]
    # the brand's own messages (Messenger echo, own reply tweet) are never customer comments
    every_body = "\n".join(body for t in tickets for body in _comment_bodies(stack, t))
    assert "Thanks, we're looking into it." not in every_body
    assert "please DM us your booking ref" not in every_body
    # a WhatsApp delivery receipt is recorded on the message, not ticketed
    assert "My refund hasn't arrived yet." in every_body


def test_follow_up_comment_keeps_the_thread_and_a_second_commenter_gets_their_own_ticket(stack: Stack) -> None:
    thread = facebook_comment_thread("202")
    for route, payload in thread:
        stack.post_webhook(route, payload)
    stack.sync()
    tickets = stack.tickets()
    assert len(tickets) == 2  # Dana's comment + her reply; Sam's separate comment on the same post
    by_size = sorted(tickets, key=lambda t: len(stack.sandbox.comments(t["id"])))
    assert [len(stack.sandbox.comments(t["id"])) for t in by_size] == [1, 2]
    dana = _comment_bodies(stack, by_size[1])
    assert dana[0].startswith("My order #4411 arrived broken") and dana[1].startswith("Still waiting")


def test_a_platform_retry_stores_nothing_new_and_opens_no_second_ticket(stack: Stack) -> None:
    route, payload = messenger_chat("303")[0]
    first, again = stack.post_webhook(route, payload), stack.post_webhook(route, payload)
    assert (first.body["stored"], first.body["duplicates"]) == (1, 0)
    assert (again.body["stored"], again.body["duplicates"]) == (0, 1)
    stack.sync()
    [ticket] = stack.tickets()
    assert len(stack.sandbox.comments(ticket["id"])) == 1
    assert len(stack.items("CONV#messenger:")) == 2  # the message and its conversation state


def test_stream_records_delivered_twice_reach_the_ticket_once(stack: Stack) -> None:
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    for route, payload in whatsapp("404"):
        stack.post_webhook(route, payload)
    stack.sync()
    calls_before = stack.sandbox.stats()["total"]
    # Lambda may hand the same records again (retried batch, moto's duplicate INSERTs):
    # replay the whole stream from its start into the sync handler.
    replay = StreamPoller(boto3.client("dynamodbstreams"), stack.resources.stream_arn, lambda_app.sync_tickets)
    assert replay.drain() > 0
    [ticket] = stack.tickets()
    assert len(stack.sandbox.comments(ticket["id"])) == 2
    assert stack.sandbox.stats()["total"] == calls_before


def test_out_of_order_and_repeated_deliveries_give_one_ticket_with_each_message_once(stack: Stack) -> None:
    top, reply, other = facebook_comment_thread("505")
    for route, payload in [reply, top, reply, other, top]:
        assert stack.post_webhook(route, payload).status == 200
    stack.sync()
    tickets = stack.tickets()
    assert len(tickets) == 2
    comment_counts = sorted(len(stack.sandbox.comments(t["id"])) for t in tickets)
    assert comment_counts == [1, 2]


def test_one_post_with_many_entries_stores_them_all(stack: Stack) -> None:
    first, second = _messenger("m_multi_1", "7777001", "first"), _messenger("m_multi_2", "7777002", "second")
    first["entry"].extend(second["entry"])
    answer = stack.post_webhook("meta", first)
    assert answer.status == 200 and answer.body["stored"] == 2
    stack.sync()
    assert len(stack.tickets()) == 2


def test_returning_customer_keeps_one_helpdesk_user(stack: Stack) -> None:
    from local.samples import PAGE_ID

    def comment(post: str, comment_id: str) -> dict[str, Any]:
        return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_000, "changes": [{"field": "feed", "value": {
            "from": {"id": "6100042", "name": "Returning Customer"}, "post_id": post, "comment_id": comment_id,
            "parent_id": post, "message": "again broken", "created_time": 1_764_000_000, "item": "comment", "verb": "add"}}]}]}

    stack.post_webhook("meta", comment(f"{PAGE_ID}_1", "1_1"))
    stack.sync()
    stack.post_webhook("meta", comment(f"{PAGE_ID}_2", "2_1"))
    stack.sync()
    tickets = stack.tickets()
    assert len(tickets) == 2
    assert tickets[0]["requester_id"] == tickets[1]["requester_id"]
    user_calls = sum(n for name, n in stack.sandbox.stats()["requests"].items() if "/users" in name)
    assert user_calls == 1


def test_message_after_a_closed_ticket_opens_a_linked_follow_up(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_closed_1", "7777100", "first problem"))
    stack.sync()
    [first] = stack.tickets()
    stack.sandbox.set_status(first["id"], "closed")
    stack.post_webhook("meta", _messenger("m_closed_2", "7777100", "a new problem"))
    stack.sync()
    tickets = sorted(stack.tickets(), key=lambda t: t["id"])
    assert len(tickets) == 2
    assert tickets[1]["external_id"] == first["external_id"]
    assert _comment_bodies(stack, tickets[1])[0].startswith("a new problem")
    assert len(stack.sandbox.comments(first["id"])) == 1


def test_rate_limited_ticket_creation_waits_for_retry_after_and_creates_once(stack: Stack) -> None:
    stack.sandbox.inject(match="POST /api/v2/tickets", status=429, retry_after=7, count=1)
    stack.post_webhook("meta", _messenger("m_429", "7777200", "hello?"))
    stack.sync()
    assert len(stack.tickets()) == 1
    assert 7 in stack.sleeps


def test_connection_dropped_after_the_comment_was_applied_does_not_double_it(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_drop_1", "7777300", "one"))
    stack.sync()
    stack.sandbox.inject(match="PUT /api/v2/tickets", drop=True, when="after", count=1)
    stack.post_webhook("meta", _messenger("m_drop_2", "7777300", "two", t=1_764_000_100))
    stack.sync()
    [ticket] = stack.tickets()
    assert [b.splitlines()[0] for b in _comment_bodies(stack, ticket)] == ["one", "two"]


def test_connection_dropped_after_the_ticket_was_created_does_not_double_it(stack: Stack) -> None:
    stack.sandbox.inject(match="POST /api/v2/tickets", drop=True, when="after", count=1)
    stack.post_webhook("meta", _messenger("m_drop_new", "7777400", "first words"))
    stack.sync()
    assert len(stack.tickets()) == 1


def test_helpdesk_outage_parks_messages_in_order_and_redrive_delivers_them_once(stack: Stack) -> None:
    import app as lambda_app
    from local.defaults import SCHEDULED_EVENT

    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_out_1", "7777500", "first"))
    stack.post_webhook("meta", _messenger("m_out_2", "7777500", "second", t=1_764_000_060))
    stack.post_webhook("meta", _messenger("m_out_3", "7777501", "someone else"))
    stack.sync()
    assert stack.tickets() == []
    assert stack.parked_in_queue() == 2  # a notice per failed message; the one waiting behind it has none
    assert stack.poller.failures == 0  # parked, never raised: the shard is not blocked

    stack.sandbox.clear_faults()
    lambda_app.redrive_parked(SCHEDULED_EVENT, None)
    tickets = stack.tickets()
    assert len(tickets) == 2
    [chat] = [t for t in tickets if t["external_id"].endswith(":7777500")]
    assert [b.splitlines()[0] for b in _comment_bodies(stack, chat)] == ["first", "second"]
    assert stack.parked_in_queue() == 0

    lambda_app.redrive_parked(SCHEDULED_EVENT, None)  # a second pass sends nothing again
    assert sum(len(stack.sandbox.comments(t["id"])) for t in stack.tickets()) == 3


def test_a_message_the_helpdesk_rejects_is_parked_without_blocking_other_conversations(stack: Stack) -> None:
    stack.sandbox.inject(match="POST /api/v2/tickets", status=400, count=1)
    stack.post_webhook("meta", _messenger("m_poison", "7777600", "rejected once"))
    stack.post_webhook("meta", _messenger("m_fine", "7777601", "fine"))
    stack.sync()
    assert [t["external_id"].rsplit(":", 1)[1] for t in stack.tickets()] == ["7777601"]
    assert stack.parked_in_queue() == 1


def test_refused_requests_store_nothing(stack: Stack) -> None:
    route, payload = messenger_chat("606")[0]
    body = json.dumps(payload).encode()
    forged = stack.post_webhook(route, body, {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0" * 64})
    unsigned = stack.post_webhook(route, body, {"Content-Type": "application/json"})
    assert forged.status == unsigned.status == 401
    assert forged.body["error"] and unsigned.body["error"]

    from local.defaults import LOCAL_SECRETS
    from local.samples import sign

    broken = b'{"object": "page", "entry": ['
    malformed = stack.post_webhook(route, broken, sign(route, broken, LOCAL_SECRETS))
    assert malformed.status == 400 and "JSON" in malformed.body["error"]["message"]
    huge = b'{"object":"page","entry":[],"pad":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    too_big = stack.post_webhook(route, huge, sign(route, huge, LOCAL_SECRETS))
    assert too_big.status == 413
    assert stack.items() == []


def test_event_types_we_do_not_handle_are_acknowledged_and_ignored(stack: Stack) -> None:
    from local.samples import PAGE_ID

    reaction = {"item": "reaction", "verb": "add", "reaction_type": "like", "post_id": f"{PAGE_ID}_1", "from": {"id": "1"}}
    payload = {"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "changes": [{"field": "feed", "value": reaction}]}]}
    answer = stack.post_webhook("meta", payload)
    assert answer.status == 200 and answer.body["ignored"] == 1 and answer.body["stored"] == 0


def test_meta_handshake_and_x_crc_over_http(stack: Stack) -> None:
    import base64
    import hashlib
    import hmac

    from local.defaults import LOCAL_SECRETS
    from tests.integration.conftest import http

    token = LOCAL_SECRETS["META_VERIFY_TOKEN"]
    ok = http("GET", f"{stack.app_url}/webhooks/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444")
    assert (ok.status, ok.body) == (200, 1158201444)
    assert ok.headers["Content-Type"].startswith("text/plain")
    wrong = http("GET", f"{stack.app_url}/webhooks/meta?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1")
    assert wrong.status == 403 and wrong.body["error"]

    crc = http("GET", f"{stack.app_url}/webhooks/x?crc_token=abc123")
    digest = hmac.new(LOCAL_SECRETS["X_CONSUMER_SECRET"].encode(), b"abc123", hashlib.sha256).digest()
    assert crc.body == {"response_token": "sha256=" + base64.b64encode(digest).decode()}
    assert stack.items() == []


@pytest.mark.parametrize("guard", ["a guarded update (settled ticket stamp)", "a sending marker (fresh ticket stamp)"])
@pytest.mark.parametrize("retried_in", ["the same execution environment", "a fresh execution environment"])
def test_a_failed_bookkeeping_write_after_delivery_does_not_deliver_twice(
    stack: Stack, monkeypatch, retried_in: str, guard: str
) -> None:
    from chalicelib import wiring
    from chalicelib.store import StoreUnavailable
    from chalicelib.sync.tickets import RECORD_PATIENCE_SECONDS, STAMP_SETTLE_SECONDS, TicketSync

    stack.post_webhook("meta", _messenger("m_ddb_1", "7777700", "charged twice"))
    stack.sync()
    [ticket] = stack.tickets()
    if guard.startswith("a guarded"):
        import time

        time.sleep(STAMP_SETTLE_SECONDS)  # real time (Zendesk's clock): any write now changes updated_at

    store = wiring.ticket_sync().store
    real_save = store.save_conversation
    saves = {"seen": 0}
    # The marker (if any) is written; the write recording the delivery fails for longer
    # than the sync's own retries: the whole batch fails after Zendesk took the comment.
    first_failing = 0 if guard.startswith("a guarded") else 1

    def flaky_save(conversation: Any, **kwargs: Any) -> None:
        saves["seen"] += 1
        if first_failing < saves["seen"] <= first_failing + 8:
            raise StoreUnavailable("ProvisionedThroughputExceededException")
        real_save(conversation, **kwargs)

    monkeypatch.setattr(store, "save_conversation", flaky_save)
    stack.post_webhook("meta", _messenger("m_ddb_2", "7777700", "still charged", t=1_764_000_300))
    stack.sync()  # the comment reached the ticket, its bookkeeping did not: Lambda retries the batch
    assert stack.poller.failures == 1
    assert len(stack.sandbox.comments(ticket["id"])) == 2
    assert sum(stack.sleeps) >= RECORD_PATIENCE_SECONDS  # it waited out that much throttling before giving up
    if retried_in == "a fresh execution environment":  # nothing the failed attempt knew survives
        wiring.override("sync", TicketSync(store, wiring.helpdesk(), wiring.dead_letters(),
                                           sleep=stack.time.sleep, clock=stack.time.now))
    stack.sync()
    assert [b.splitlines()[0] for b in _comment_bodies(stack, ticket)] == ["charged twice", "still charged"]
    assert stack.poller.failures == 1
    assert stack.parked_in_queue() == 0


def test_messages_batched_in_one_delivery_reach_the_ticket_in_the_order_they_were_sent(stack: Stack) -> None:
    # Meta batches a customer's quick messages into one POST, not always in order; the
    # ingest writes them in parallel. The agent must still read them as they were sent.
    from local.samples import PAGE_ID

    t = 1_764_000_000
    texts = ["hello?", "my order never came", "order 5521", "please call me"]
    events = [{"sender": {"id": "8800001"}, "recipient": {"id": PAGE_ID}, "timestamp": (t + 10 * i) * 1000,
               "message": {"mid": f"m_batch_{i}", "text": text}} for i, text in enumerate(texts)]
    payload = {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [events[i] for i in (2, 0, 3, 1)]}]}
    assert stack.post_webhook("meta", payload).status == 200
    stack.sync()
    [ticket] = stack.tickets()
    assert [b.splitlines()[0] for b in _comment_bodies(stack, ticket)] == texts
