"""Agents answer from the helpdesk, end to end on the local stack.

A customer's webhook -> the app stores it -> the stream sync opens a ticket in the Zendesk
sandbox -> an agent answers in the sandbox -> the trigger created by ``make zendesk-setup``
fires and the sandbox POSTs the signed webhook (ids only) to the app -> the app reads the
ticket's comments from the sandbox and sends the agent's answer to the platform's sandbox
(Graph API, X, Telegram, LINE) -> the answer is stored as an outbound message, and the
platform's echo of it is recognised as already stored.

Every Zendesk exchange of the app is validated against Zendesk's spec by the ``stack``
fixture.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.outbound.agent_events import EventLog, signed_headers
from chalicelib.outbound.agent_replies import AgentReplies
from chalicelib.helpdesks.zendesk.admin import ZendeskAdmin
from chalicelib.outbound.dispatch import build_dispatcher
from local import samples
from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN
from local.line_sandbox import DEFAULT_CHANNEL_TOKEN, LineSandbox
from local.meta_graph_sandbox import MetaGraphSandbox
from local.telegram_sandbox import DEFAULT_BOT_TOKEN, TelegramSandbox
from local.x_sandbox import DEFAULT_TOKEN as X_TOKEN, XSandbox
from tests.integration.conftest import HttpAnswer, Stack, http

PAGE_ID, PHONE_ID, BRAND_X = samples.PAGE_ID, samples.WA_PHONE_NUMBER_ID, samples.X_BRAND_ID
PAGE_TOKEN, WA_TOKEN = "local-page-token", "local-whatsapp-token"
PLATFORM_SECRETS = {
    f"META_PAGE_TOKEN_{PAGE_ID}": PAGE_TOKEN,
    "WHATSAPP_ACCESS_TOKEN": WA_TOKEN,
    "X_USER_ACCESS_TOKEN": X_TOKEN,
    "TELEGRAM_BOT_TOKEN": DEFAULT_BOT_TOKEN,
    "LINE_CHANNEL_ACCESS_TOKEN": DEFAULT_CHANNEL_TOKEN,
}


# --- the route (as app.py gets it) -----------------------------------------------------------


# --- the rig ---------------------------------------------------------------------------------


@dataclass
class Rig:
    stack: Stack
    app_url: str
    meta: MetaGraphSandbox
    x: XSandbox
    telegram: TelegramSandbox
    line: LineSandbox
    secret: str

    @property
    def zendesk(self) -> Any:
        return self.stack.sandbox

    def customer(self, deliveries: list[tuple[str, dict[str, Any]]]) -> list[HttpAnswer]:
        answers = [self.stack.post_webhook(route, payload) for route, payload in deliveries]
        assert all(a.status == 200 for a in answers), [a.body for a in answers]
        self.stack.sync()
        self.zendesk.wait_for_deliveries()
        return answers

    def ticket(self, key: str) -> dict[str, Any]:
        (ticket,) = self.stack.ticket_for(key)
        return ticket

    def answer(self, key: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """An agent answers the conversation's ticket; the one webhook delivery it fired."""
        deliveries = self.zendesk.agent_comment(self.ticket(key)["id"], text, **kwargs)
        replies = [d for d in deliveries if '"agent_comment"' in d["body"]]
        assert len(replies) == 1, deliveries
        assert replies[0]["status"] == 200, replies[0]
        return replies[0]

    def notes(self, key: str) -> list[str]:
        ticket = self.ticket(key)
        return [c["body"] for c in self.zendesk.comments(ticket["id"]) if not c["public"]]

    def stored(self, key: str, message_id: str) -> Any:
        from chalicelib import wiring

        return wiring.message_store().get_message(key, message_id)


@pytest.fixture
def rig(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from chalice.config import Config
    from chalice.local import LocalDevServer

    import app as lambda_app
    from chalicelib import wiring

    monkeypatch.setenv("TELEGRAM_BOT_ID", "bot")
    meta, x, telegram, line = MetaGraphSandbox(), XSandbox(), TelegramSandbox(), LineSandbox()
    for sandbox in (meta, x, telegram, line):
        sandbox.start()
    meta.set_token(PAGE_ID, PAGE_TOKEN)
    meta.set_token(PHONE_ID, WA_TOKEN)
    dispatcher = build_dispatcher(
        {"META_GRAPH_URL": meta.url, "X_API_URL": x.url, "TELEGRAM_API_URL": telegram.url, "LINE_API_URL": line.url},
        get_secret=lambda name: PLATFORM_SECRETS[name],
    )
    store = wiring.message_store()
    wiring.override("agent_events", EventLog(store.table_name, stack.dynamodb))
    wiring.override("agent_replies", AgentReplies(store, wiring.helpdesk(), dispatcher, bridge_email=SANDBOX_ZENDESK_EMAIL))

    server = LocalDevServer(lambda_app.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, name="chalice-helpdesk", daemon=True)
    thread.start()
    app_url = f"http://127.0.0.1:{server.server.server_address[1]}"
    # make zendesk-setup, against the sandbox, for this app.
    result = ZendeskAdmin(stack.sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).ensure(app_url)
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", result.signing_secret)
    try:
        yield Rig(stack, app_url, meta, x, telegram, line, result.signing_secret)
    finally:
        stack.sandbox.wait_for_deliveries()
        server.shutdown()
        server.server.server_close()
        for sandbox in (meta, x, telegram, line):
            sandbox.stop()


def seed_facebook(rig: Rig, run: str) -> str:
    post = f"{PAGE_ID}_90{run}"
    rig.meta.add_post(PAGE_ID, post, message="Spring sale")
    rig.meta.add_post_comment(PAGE_ID, post, "My order #4411 arrived broken.", comment_id=f"90{run}_1001",
                              from_id="6001" + run, created=time.time())
    rig.meta.add_post_comment(PAGE_ID, post, "Still waiting…", comment_id=f"90{run}_1002", parent_id=f"90{run}_1001",
                              from_id="6001" + run, created=time.time())
    rig.customer(samples.facebook_comment_thread(run)[:2])
    return f"facebook:comment:90{run}_1001"


# --- one answer per platform -----------------------------------------------------------------


def test_a_facebook_comment_gets_a_public_reply_and_its_echo_is_recognised(rig: Rig) -> None:
    key = seed_facebook(rig, "5101")
    delivery = rig.answer(key, "Sorry about that! We're sending a new one today.")
    assert delivery["response"]["outcome"] == "sent"

    (call,) = rig.meta.sent()
    assert call["route"] == "send.comment" and call["object_id"] == "905101_1001"  # under the top-level comment
    assert call["body"]["message"] == "Sorry about that! We're sending a new one today."
    sent_id = call["answer"]["id"]
    stored = rig.stored(key, sent_id)
    assert stored is not None and stored.direction.value == "out" and stored.parent_id == "905101_1002"

    # Facebook's feed webhook for our own comment: the same item, nothing new.
    route, echo = samples.facebook_comment_thread("5101")[1]
    value = echo["entry"][0]["changes"][0]["value"]
    value.update({"from": {"id": PAGE_ID, "name": "ACME"}, "comment_id": sent_id, "parent_id": "905101_1001",
                  "message": "Sorry about that! We're sending a new one today."})
    answer = rig.stack.post_webhook(route, echo)
    assert (answer.body["stored"], answer.body["duplicates"]) == (0, 1)
    comments_before = len(rig.zendesk.comments(rig.ticket(key)["id"]))
    rig.stack.sync()
    assert len(rig.zendesk.comments(rig.ticket(key)["id"])) == comments_before  # the echo is never ticketed
    from chalicelib import wiring

    times = wiring.message_store().response_times(key)
    assert times is not None and times["responses"] == 1 and times["first_response_ticket_id"] == str(rig.ticket(key)["id"])


def test_a_private_answer_to_a_public_comment(rig: Rig) -> None:
    key = seed_facebook(rig, "5102")
    ticket = rig.ticket(key)
    rig.zendesk.agent_update(ticket["id"], add_tags=["socialdesk_private"])  # the macro "Reply privately"
    rig.answer(key, "We've sent the tracking link to your inbox.")

    private = rig.meta.sent("send.messages")
    assert len(private) == 1 and private[0]["body"]["recipient"] == {"comment_id": "905102_1002"}
    assert [s["body"]["message"] for s in rig.meta.sent("send.comment")] == ["We've sent you a private message."]


def test_a_messenger_answer_and_its_echo(rig: Rig) -> None:
    run = "5103"
    psid = f"7001{run}"
    rig.meta.add_conversation_message(PAGE_ID, psid, "Hi, I was charged twice.", created=time.time())
    rig.customer(samples.messenger_chat(run)[:2])
    key = f"messenger:dm:{PAGE_ID}:{psid}"
    rig.answer(key, "We refunded the second charge.")

    (call,) = rig.meta.sent("send.messages")
    assert call["body"]["recipient"] == {"id": psid} and call["body"]["message"]["text"] == "We refunded the second charge."
    mid = call["answer"]["message_id"]
    assert rig.stored(key, mid).text == "We refunded the second charge."

    echo = {"object": "page", "entry": [{"id": PAGE_ID, "time": int(time.time() * 1000), "messaging": [{
        "sender": {"id": PAGE_ID}, "recipient": {"id": psid}, "timestamp": int(time.time() * 1000),
        "message": {"mid": mid, "text": "We refunded the second charge.", "is_echo": True, "app_id": 1517776481860111}}]}]}
    answer = rig.stack.post_webhook("meta", echo)
    assert (answer.body["stored"], answer.body["duplicates"]) == (0, 1)


def test_a_whatsapp_answer(rig: Rig) -> None:
    run = "5104"
    wa_id = f"1650555{run}"
    rig.meta.add_whatsapp_contact(PHONE_ID, wa_id)
    rig.customer(samples.whatsapp(run)[:2])
    key = f"whatsapp:dm:{PHONE_ID}:{wa_id}"
    rig.answer(key, "Your refund was issued today.")

    (call,) = rig.meta.sent("send.messages")
    assert call["object_id"] == PHONE_ID and call["body"]["to"] == wa_id
    assert call["body"]["text"]["body"] == "Your refund was issued today."
    assert rig.stored(key, call["answer"]["messages"][0]["id"]) is not None


def test_an_x_mention_gets_a_reply_post_and_its_echo_is_recognised(rig: Rig) -> None:
    run = "5105"
    customer = f"3001{run}"
    rig.x.add_mention("@acme_support my voucher code doesn't work", author_id=customer, username="mo_travels",
                      tweet_id=f"18{run}01")
    rig.customer(samples.x_events(run)[:1])
    key = f"x:tweets:{BRAND_X}:{customer}"
    rig.answer(key, "@mo_travels sorry! DM us the code and we'll fix it.")

    (call,) = rig.x.sent("tweet")
    assert call["body"]["reply"]["in_reply_to_tweet_id"] == f"18{run}01"
    tweet_id = call["id"]
    assert rig.stored(key, tweet_id) is not None

    own = samples.x_events(run)[2][1]
    own["tweet_create_events"][0].update({"id_str": tweet_id, "text": "@mo_travels sorry! DM us the code and we'll fix it."})
    answer = rig.stack.post_webhook("x", own)
    assert (answer.body["stored"], answer.body["duplicates"]) == (0, 1)


def test_a_telegram_answer(rig: Rig) -> None:
    run = "5106"
    chat = int(f"5501{run}")
    rig.telegram.add_chat(chat, messages=(1, 2))
    rig.customer(samples.telegram_chat(run))
    key = f"telegram:dm:bot:{chat}"
    rig.answer(key, "Please update to 4.2.2, it fixes the logouts.")

    (call,) = rig.telegram.sent()
    assert int(call["body"]["chat_id"]) == chat and call["body"]["text"] == "Please update to 4.2.2, it fixes the logouts."
    assert rig.stored(key, f"{chat}:{call['message_id']}") is not None  # Telegram ids are "<chat>:<number>"
    assert any(note.startswith("Sent to the customer on Telegram") for note in rig.notes(key))  # the agent sees it went out


def test_a_line_answer(rig: Rig) -> None:
    run = "5107"
    user = f"U{run.rjust(32, 'a')}"
    token = rig.line.issue_reply_token(user)
    (route, payload), = samples.line_chat(run)
    payload["events"][0]["replyToken"] = token
    rig.customer([(route, payload)])
    key = f"line:dm:{samples.LINE_BOT_ID}:{user}"
    rig.answer(key, "We've issued a new coupon: SPRING25.")

    (call,) = rig.line.sent()
    assert call["to"] == user and call["body"]["messages"][0]["text"] == "We've issued a new coupon: SPRING25."
    assert rig.stored(key, call["sentMessages"][0]["id"]) is not None


# --- failures become notes --------------------------------------------------------------------


def test_an_expired_token_becomes_an_internal_note(rig: Rig) -> None:
    run = "5108"
    psid = f"7001{run}"
    rig.meta.add_conversation_message(PAGE_ID, psid, "Hello?", created=time.time())
    rig.customer(samples.messenger_chat(run)[:2])
    key = f"messenger:dm:{PAGE_ID}:{psid}"
    rig.meta.expire_token(PAGE_ID)

    delivery = rig.answer(key, "We refunded the second charge.")

    assert delivery["response"]["outcome"] == "failed_noted"
    (note,) = rig.notes(key)
    assert note.startswith("Not sent:") and "expired" in note and "Reconnect" in note
    assert rig.meta.sent() == []


def test_a_closed_whatsapp_window_becomes_an_internal_note(rig: Rig) -> None:
    run = "5109"
    wa_id = f"1650555{run}"
    rig.meta.add_whatsapp_contact(PHONE_ID, wa_id, last_inbound=time.time() - 2 * 86400)
    rig.customer(samples.whatsapp(run)[:1])
    key = f"whatsapp:dm:{PHONE_ID}:{wa_id}"

    rig.answer(key, "Your refund was issued today.")

    (note,) = rig.notes(key)
    assert note.startswith("Not sent:") and "24" in note


def test_a_rate_limit_is_noted_with_the_time_socialdesk_retries(rig: Rig) -> None:
    run = "5110"
    chat = int(f"5501{run}")
    rig.telegram.add_chat(chat, messages=(1, 2))
    rig.customer(samples.telegram_chat(run))
    key = f"telegram:dm:bot:{chat}"
    rig.telegram.inject_error(429, retry_after=120)

    assert rig.answer(key, "Please update the app.")["response"]["outcome"] == "retry_scheduled"
    (note,) = rig.notes(key)
    assert "retrying at" in note and note.rstrip(".").endswith("UTC")
    assert rig.telegram.sent() == []


# --- repeats, own writes, signatures -----------------------------------------------------------


def test_a_redelivered_webhook_sends_one_answer(rig: Rig) -> None:
    key = seed_facebook(rig, "5111")
    delivery = rig.answer(key, "On its way!")
    body = delivery["body"].encode()
    again = http("POST", f"{rig.app_url}/helpdesk/zendesk", body, signed_headers(rig.secret, body, invocation_id="77"))
    assert again.status == 200 and again.body["duplicate"] is True
    assert len(rig.meta.sent()) == 1


def test_only_agents_public_comments_are_sent(rig: Rig) -> None:
    key = seed_facebook(rig, "5112")
    ticket = rig.ticket(key)
    assert rig.zendesk.agent_update(ticket["id"], comment="Internal: check the warehouse", public=False) == []
    # The bridge's own writes (customers' follow-ups, notes) never come back as replies.
    rig.customer(samples.facebook_comment_thread("5112")[2:])
    assert [d for d in rig.zendesk.deliveries() if '"agent_comment"' in d["body"]] == []
    assert rig.meta.sent() == []


def test_an_answer_with_quotes_and_newlines_reaches_the_customer_as_written(rig: Rig) -> None:
    run = "5115"
    chat = int(f"5501{run}")
    rig.telegram.add_chat(chat, messages=(1, 2))
    rig.customer(samples.telegram_chat(run))
    key = f"telegram:dm:bot:{chat}"
    text = 'Open Settings > "Account", then:\n\t1. tap \\ "Reset"\n2. type {"code": "SPRING"}'

    delivery = rig.answer(key, text)

    assert set(json.loads(delivery["body"])) == {"socialdesk_event", "ticket_id", "external_id", "author_id"}  # ids only
    (call,) = rig.telegram.sent()
    assert call["body"]["text"] == text


def test_an_answer_whose_delivery_failed_goes_out_with_the_next_one_in_order(rig: Rig) -> None:
    run = "5116"
    chat = int(f"5501{run}")
    rig.telegram.add_chat(chat, messages=(1, 2))
    rig.customer(samples.telegram_chat(run))
    key = f"telegram:dm:bot:{chat}"
    ticket_id = rig.ticket(key)["id"]
    rig.zendesk.inject(match="GET /api/v2/tickets/{ticket_id}/comments", status=429, retry_after=30)  # our read throttled

    deliveries = rig.zendesk.agent_comment(ticket_id, "First: we refunded the charge.")
    (failed,) = [d for d in deliveries if '"agent_comment"' in d["body"]]
    assert failed["status"] == 503 and rig.telegram.sent() == []
    rig.answer(key, "Second: it shows on your card in 3 days.")  # its delivery reads both

    assert [c["body"]["text"] for c in rig.telegram.sent()] == ["First: we refunded the charge.",
                                                                 "Second: it shows on your card in 3 days."]
    from chalicelib import wiring

    assert wiring.agent_replies().retry_due().outcomes == {}  # a schedule run now sends nothing more
    assert len(rig.telegram.sent()) == 2


def test_a_private_answer_reaches_the_ticket_customer_when_someone_else_wrote_last(rig: Rig) -> None:
    key = seed_facebook(rig, "5117")
    # Sam writes inside Dana's thread; the ticket stays Dana's.
    route, payload = samples.facebook_comment_thread("5117")[2]
    value = payload["entry"][0]["changes"][0]["value"]
    value.update({"parent_id": "905117_1001", "created_time": int(time.time()) + 5})
    rig.meta.add_post_comment(PAGE_ID, f"{PAGE_ID}_905117", value["message"], comment_id="905117_1003",
                              parent_id="905117_1001", from_id="60025117", created=time.time() + 5)
    rig.customer([(route, payload)])
    ticket = rig.ticket(key)
    rig.zendesk.agent_update(ticket["id"], add_tags=["socialdesk_private"])

    rig.answer(key, "We've sent the tracking link to your inbox.")

    (private,) = rig.meta.sent("send.messages")
    assert private["body"]["recipient"] == {"comment_id": "905117_1002"}  # Dana's latest comment, not Sam's


def test_a_platform_that_answers_without_an_id_still_gets_the_note_and_the_response_time(rig: Rig) -> None:
    from chalicelib import wiring

    run = "5118"
    user = f"U{run.rjust(32, 'a')}"
    token = rig.line.issue_reply_token(user)
    (route, payload), = samples.line_chat(run)
    payload["events"][0]["replyToken"] = token
    rig.customer([(route, payload)])
    key = f"line:dm:{samples.LINE_BOT_ID}:{user}"
    rig.line.answer_without_ids()  # 200 {}, as LINE answered before 2023

    assert rig.answer(key, "We've issued a new coupon: SPRING25.")["response"]["outcome"] == "sent"

    assert len(rig.line.sent()) == 1
    assert any(note.startswith("Sent to the customer on LINE") for note in rig.notes(key))
    times = wiring.message_store().response_times(key)
    assert times is not None and times["responses"] == 1


def test_a_forged_helpdesk_event_is_refused(rig: Rig) -> None:
    body = json.dumps({"socialdesk_event": "agent_comment", "ticket_id": "1", "comment_id": "2",
                       "external_id": "facebook:comment:1", "comment": "Send me your password"}).encode()
    forged = http("POST", f"{rig.app_url}/helpdesk/zendesk", body, signed_headers("not-the-secret", body))
    assert forged.status == 401 and forged.body["error"]["code"] == "unauthorized"
    unsigned = http("POST", f"{rig.app_url}/helpdesk/zendesk", body, {"Content-Type": "application/json"})
    assert unsigned.status == 401
    old = signed_headers(rig.secret, body, timestamp="2020-01-01T00:00:00Z")
    assert http("POST", f"{rig.app_url}/helpdesk/zendesk", body, old).status == 401


# --- ticket status follows the helpdesk --------------------------------------------------------


def test_solved_then_the_customer_writes_and_the_ticket_reopens(rig: Rig) -> None:
    from chalicelib import wiring

    key = seed_facebook(rig, "5113")
    ticket = rig.ticket(key)
    rig.zendesk.set_status(ticket["id"], "solved")  # the status trigger tells the app
    assert wiring.message_store().get_conversation(key).ticket_status == "solved"

    rig.customer([_follow_up_comment("5113")])

    assert [t["id"] for t in rig.stack.ticket_for(key)] == [ticket["id"]]
    assert rig.zendesk.ticket(ticket["id"])["status"] == "open"
    assert wiring.message_store().get_conversation(key).ticket_status == "open"


def test_closed_then_the_customer_writes_and_a_follow_up_ticket_opens(rig: Rig) -> None:
    from chalicelib import wiring

    key = seed_facebook(rig, "5114")
    ticket = rig.ticket(key)
    rig.zendesk.set_status(ticket["id"], "closed")
    assert wiring.message_store().get_conversation(key).ticket_status == "closed"
    updates_before = rig.zendesk.stats()["requests"].get("PUT /api/v2/tickets/{ticket_id}", 0)

    rig.customer([_follow_up_comment("5114")])

    old, new = sorted(rig.stack.ticket_for(key), key=lambda t: t["id"])
    assert old["id"] == ticket["id"] and new["via_followup_source_id"] == ticket["id"]
    # Known closed: no update was even tried on the closed ticket.
    assert rig.zendesk.stats()["requests"].get("PUT /api/v2/tickets/{ticket_id}", 0) == updates_before
    assert wiring.message_store().get_conversation(key).ticket_id == str(new["id"])

    # The agent answers on the follow-up: only that answer goes out (not the customer's comments).
    deliveries = rig.zendesk.agent_comment(new["id"], "Sorry it broke again! A new one ships today.")
    assert [d["response"]["outcome"] for d in deliveries if '"agent_comment"' in d["body"]] == ["sent"]
    assert [c["body"]["message"] for c in rig.meta.sent("send.comment")] == ["Sorry it broke again! A new one ships today."]


def _follow_up_comment(run: str) -> tuple[str, dict[str, Any]]:
    route, payload = samples.facebook_comment_thread(run)[1]
    value = payload["entry"][0]["changes"][0]["value"]
    value.update({"comment_id": f"90{run}_1009", "message": "It broke again!", "created_time": int(time.time()) + 5})
    return route, payload
