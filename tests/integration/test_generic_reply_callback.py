"""A Standard Webhooks source's reply callback: the agent's answer, signed like the source's
own deliveries, POSTed to a real receiver on 127.0.0.1 that verifies it with the
``standardwebhooks`` library and keeps each ``webhook-id`` once.

The sender runs as the app builds it (``build_dispatcher``); the last case goes through the
whole local stack: a Trustpilot review -> its ticket -> an agent answers in the Zendesk
sandbox -> the receiver gets the answer, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.channels.generic import CHANNEL as GENERIC
from chalicelib.outbound import ReplyDispatcher, ReplyFailed, ReplyTarget, target_from_messages
from chalicelib.outbound.dispatch import build_dispatcher
from local import samples
from local.defaults import LOCAL_SECRETS
from local.reply_callback import ReplyCallbackReceiver
from tests.integration.conftest import Stack

SECRET = LOCAL_SECRETS["GENERIC_WEBHOOK_SECRET_TRUSTPILOT"]
OLD_SECRET = "whsec_" + "b2xkLXRydXN0cGlsb3Qtc2lnbmluZy1zZWNyZXQtMDE="  # 32 bytes: "old-trustpilot-signing-secret-01"


@pytest.fixture
def receiver() -> Iterator[ReplyCallbackReceiver]:
    box = ReplyCallbackReceiver(SECRET).start()
    try:
        yield box
    finally:
        box.stop()


def dispatcher(url: str | None, secrets: str = SECRET) -> ReplyDispatcher:
    env = {"GENERIC_REPLY_URL_TRUSTPILOT": url} if url else {}
    return build_dispatcher(env, get_secret={"GENERIC_WEBHOOK_SECRET_TRUSTPILOT": secrets}.__getitem__)


def review_target(run: str = "1") -> ReplyTarget:
    (route, payload), = samples.trustpilot_review(run)
    return target_from_messages(GENERIC.normalize(payload, route).messages)


def test_the_answer_arrives_signed_and_exactly_once(receiver: ReplyCallbackReceiver) -> None:
    target = review_target("71")
    send = dispatcher(receiver.reply_url)
    sent = send.send(target, "Sorry, Jane: a new mug is on its way.", idempotency_key="zendesk:9:12")
    again = send.send(target, "Sorry, Jane: a new mug is on its way.", idempotency_key="zendesk:9:12")  # a retry

    (answer,) = receiver.sent()
    assert receiver.stats() == {"delivered": 2, "repeats": 1}  # both verified; the repeat kept once
    assert answer["body"]["type"] == "reply.created"
    assert answer["body"]["data"] == {
        "id": answer["webhook_id"],
        "conversation_id": "6632071",
        "in_reply_to": "6632071",
        "account_id": "acme-shop",
        "customer_id": "5f8e71",
        "text": "Sorry, Jane: a new mug is on its way.",
        "private": False,
    }
    assert sent.platform_message_id == again.platform_message_id == f"trustpilot:{answer['id']}"
    assert sent.warnings == ("It went to Trustpilot's reply callback, which publishes it there.",)


def test_two_answers_are_two_messages(receiver: ReplyCallbackReceiver) -> None:
    send = dispatcher(receiver.reply_url)
    send.send(review_target("72"), "First.", idempotency_key="zendesk:9:1")
    send.send(review_target("72"), "Second.", idempotency_key="zendesk:9:2")
    assert [a["body"]["data"]["text"] for a in receiver.sent()] == ["First.", "Second."]


def test_while_secrets_rotate_a_receiver_with_either_one_verifies(receiver: ReplyCallbackReceiver) -> None:
    old = ReplyCallbackReceiver(OLD_SECRET).start()
    try:
        for box in (receiver, old):
            dispatcher(box.reply_url, secrets=f"{SECRET} {OLD_SECRET}").send(review_target("73"), "Hi", idempotency_key="k")
            assert len(box.sent()) == 1 and "refused" not in box.stats()
    finally:
        old.stop()


def test_a_receiver_with_another_secret_refuses_and_the_note_says_so(receiver: ReplyCallbackReceiver) -> None:
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(receiver.reply_url, secrets=OLD_SECRET).send(review_target("74"), "Hi", idempotency_key="k")
    failure = caught.value
    assert failure.kind == "permission_missing" and not failure.transient
    assert failure.plain_words.startswith("Not sent: Trustpilot's reply callback refused socialdesk's signature (HTTP 401)")
    assert receiver.sent() == [] and receiver.stats() == {"refused": 1}


def test_a_failing_receiver_is_retried_and_still_gets_the_answer_once(receiver: ReplyCallbackReceiver) -> None:
    target, send = review_target("75"), dispatcher(receiver.reply_url)
    receiver.fail_next(503)
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "Hi", idempotency_key="zendesk:9:5")
    assert caught.value.kind == "unavailable" and caught.value.retry_is_safe
    receiver.fail_next(0)  # kept, but the answer is lost on the way back
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "Hi", idempotency_key="zendesk:9:5")
    assert caught.value.transient and not caught.value.duplicate_risk
    send.send(target, "Hi", idempotency_key="zendesk:9:5")
    assert len(receiver.sent()) == 1 and receiver.stats()["repeats"] == 1


def test_a_rate_limit_and_a_refusal(receiver: ReplyCallbackReceiver) -> None:
    target, send = review_target("76"), dispatcher(receiver.reply_url)
    receiver.fail_next(429)
    before = datetime.now(timezone.utc)
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "Hi", idempotency_key="k")
    assert caught.value.kind == "rate_limited" and caught.value.retry_at is not None and caught.value.retry_at > before
    receiver.fail_next(422)
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "Hi", idempotency_key="k")
    assert caught.value.kind == "rejected" and caught.value.plain_words == (
        "Not sent: Trustpilot's reply callback refused the answer (HTTP 422) (Trustpilot says: Injected failure.)."
    )


def test_a_source_without_a_reply_callback_gets_a_note_and_nothing_is_sent() -> None:
    with pytest.raises(ReplyFailed) as caught:
        dispatcher(None).send(review_target("77"), "Hi", idempotency_key="k")
    assert caught.value.plain_words == (
        "Not sent: Trustpilot has no reply callback set up in socialdesk, so answers can't be sent there. "
        "Reply on Trustpilot directly."
    )


# --- end to end on the local stack -------------------------------------------------------------


@pytest.fixture
def app_with_callback(stack: Stack, receiver: ReplyCallbackReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from chalice.config import Config
    from chalice.local import LocalDevServer

    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.helpdesks.zendesk.admin import ZendeskAdmin
    from chalicelib.outbound.agent_events import EventLog
    from chalicelib.outbound.agent_replies import AgentReplies
    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN

    store = wiring.message_store()
    wiring.override("agent_events", EventLog(store.table_name, stack.dynamodb))
    replies = AgentReplies(store, wiring.helpdesk(), dispatcher(receiver.reply_url), bridge_email=SANDBOX_ZENDESK_EMAIL)
    wiring.override("agent_replies", replies)
    server = LocalDevServer(lambda_app.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    threading.Thread(target=server.server.serve_forever, name="chalice-helpdesk", daemon=True).start()
    app_url = f"http://127.0.0.1:{server.server.server_address[1]}"
    result = ZendeskAdmin(stack.sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).ensure(app_url)
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", result.signing_secret)
    try:
        yield stack
    finally:
        stack.sandbox.wait_for_deliveries()
        server.shutdown()
        server.server.server_close()


def test_an_agents_answer_on_a_trustpilot_ticket_reaches_the_callback_once(
    app_with_callback: Stack, receiver: ReplyCallbackReceiver
) -> None:
    stack = app_with_callback
    (route, payload), = samples.trustpilot_review("78")
    assert stack.post_webhook(route, payload).status == 200
    stack.sync()
    (ticket,) = stack.ticket_for("other:trustpilot:6632078")

    deliveries = [d for d in stack.sandbox.agent_comment(ticket["id"], "A new mug is on its way.") if '"agent_comment"' in d["body"]]
    assert [d["response"]["outcome"] for d in deliveries] == ["sent"]
    (answer,) = receiver.sent()
    assert answer["body"]["data"]["text"] == "A new mug is on its way." and receiver.stats() == {"delivered": 1}
    notes = [c["body"] for c in stack.sandbox.comments(ticket["id"]) if not c["public"]]
    assert notes[-1] == "Sent to the customer on Trustpilot. It went to Trustpilot's reply callback, which publishes it there."
