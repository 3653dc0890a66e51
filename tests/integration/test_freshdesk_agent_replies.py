"""Agent replies from Freshdesk, end to end over HTTP.

A customer writes on Telegram (webhook -> table -> stream -> sync -> Freshdesk sandbox ticket);
an agent replies in the Freshdesk sandbox, whose automation rule POSTs ``event_body()`` with the
``X-Socialdesk-Token`` header to ``POST /helpdesk/freshdesk``; the route reads the ticket back from
the sandbox, sends the reply through the real Telegram sender to the Telegram sandbox and stores it.

``agent_events`` / ``agent_replies`` are wired with
the Telegram sandbox (``wiring.override``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.samples import telegram_chat
from tests.integration.test_freshdesk_flow import API_KEY, FreshdeskStack, fd_stack  # noqa: F401  (fixture)

ROUTE = "/helpdesk/freshdesk"
SECRET = "local-freshdesk-webhook-secret"
CONVERSATION_FIELD = "cf_socialdesk_conversation"
_runs = itertools.count(1)


@dataclass
class Rig:
    stack: FreshdeskStack
    telegram: Any
    url: str
    key: str
    chat_id: int
    run: str

    def customer_writes(self) -> dict[str, Any]:
        """The Telegram sample chat (two messages) becomes one Freshdesk ticket."""
        for route, payload in telegram_chat(self.run):
            assert self.stack.post_webhook(route, payload).status == 200
        self.stack.sync()
        [ticket] = self.stack.ticket_for(self.key)
        return ticket

    def rule(self, *, token: str | None = SECRET, field: str | None = None, events: tuple[str, ...] | None = None) -> None:
        from chalicelib.helpdesks.freshdesk.events import TOKEN_HEADER, event_body

        headers = {TOKEN_HEADER: token} if token is not None else {}
        kwargs = {"events": events} if events else {}
        self.stack.sandbox.configure_automation(self.url, body=event_body(field), headers=headers, **kwargs)

    def sent(self) -> list[dict[str, Any]]:
        return self.telegram.sent()

    def outbound(self) -> list[dict[str, Any]]:
        from chalicelib.store import message_from_image

        items = self.stack.items(f"CONV#{self.key}")
        messages = [m.model_dump(mode="json") for m in map(message_from_image, items) if m is not None]
        return [m for m in messages if m["direction"] == "out"]

    def conversation(self) -> Any:
        from chalicelib import wiring

        return wiring.message_store().get_conversation(self.key)


def _wire_replies(telegram_url: str) -> None:
    """``agent_events`` and ``agent_replies`` for the route: the current helpdesk, Telegram's sandbox."""
    from chalicelib import wiring
    from chalicelib.outbound.agent_events import EventLog
    from chalicelib.outbound.agent_replies import AgentReplies
    from chalicelib.models import Platform
    from chalicelib.outbound.dispatch import ReplyDispatcher
    from chalicelib.channels.telegram.replies import TelegramSender
    from local.telegram_sandbox import DEFAULT_BOT_TOKEN

    store = wiring.message_store()
    sender = TelegramSender(lambda _account: DEFAULT_BOT_TOKEN, base_url=telegram_url, timeout=(2, 5))
    wiring.override("agent_events", EventLog(store.table_name, store._client))  # noqa: SLF001
    wiring.override("agent_replies", AgentReplies(store, wiring.helpdesk(), ReplyDispatcher({Platform.TELEGRAM: sender}),
                                                  sleep=lambda _s: None))


@pytest.fixture
def rig(fd_stack: FreshdeskStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:  # noqa: F811
    from local.demo import expected_conversations
    from local.telegram_sandbox import DEFAULT_BOT_TOKEN, TelegramSandbox

    run = f"77{next(_runs)}"
    telegram = TelegramSandbox()
    telegram.start()
    chat_id = int(f"5501{run}")
    telegram.add_chat(chat_id, messages=(1, 2), first_name="Kenji")
    monkeypatch.setenv("FRESHDESK_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TELEGRAM_API_URL", telegram.url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", DEFAULT_BOT_TOKEN)
    _wire_replies(telegram.url)
    [key] = expected_conversations(telegram_chat(run))
    try:
        yield Rig(fd_stack, telegram, f"{fd_stack.app_url}{ROUTE}", key, chat_id, run)
    finally:
        telegram.stop()


def test_an_agent_reply_in_freshdesk_reaches_the_telegram_customer_once(rig: Rig) -> None:
    ticket = rig.customer_writes()
    rig.rule()
    notes_before = len(rig.stack.sandbox.conversations(ticket["id"]))

    answer = rig.stack.sandbox.agent_reply(ticket["id"], "Please update to 4.2.2, it fixes the logouts.")
    delivery = answer["delivery"]
    assert delivery["status"] == 200, delivery["response"]
    assert delivery["response"]["outcome"] == "sent"
    assert delivery["response"]["found_by"] in ("pointer", "requester")  # pointer: once the sync writes one
    [sent] = rig.sent()
    assert sent["chat_id"] == rig.chat_id
    assert sent["body"]["text"] == "Please update to 4.2.2, it fixes the logouts."
    assert sent["body"]["reply_parameters"]["message_id"] == 2  # quotes the customer's latest message
    [stored] = rig.outbound()
    assert stored["text"] == "Please update to 4.2.2, it fixes the logouts."
    assert stored["message_id"] == f"{rig.chat_id}:{sent['message_id']}"  # the platform's id: its echo lands on it

    # Freshdesk retries the webhook (or someone replays it): nothing is sent again
    again = rig.stack.sandbox.redeliver()
    assert again["status"] == 200 and again["response"]["duplicate"] is True
    assert len(rig.sent()) == 1 and len(rig.outbound()) == 1

    # the stored answer is outbound: the sync never copies it back into the ticket
    rig.stack.sync()
    conversations = rig.stack.sandbox.conversations(ticket["id"])
    public = [c for c in conversations if not c["private"]]
    assert len(public) == notes_before + 1  # only the agent's reply itself
    [note] = [c for c in conversations if c["private"]]  # and one note for the agent: it went out
    assert "Sent to the customer on Telegram" in note["body_text"]


def test_a_missing_or_wrong_token_is_refused_and_nothing_is_sent(rig: Rig) -> None:
    ticket = rig.customer_writes()
    reads_before = rig.stack.sandbox.stats()["requests"].get("GET /api/v2/tickets/{id}", 0)
    for token in (None, "not-the-secret"):
        rig.rule(token=token)
        delivery = rig.stack.sandbox.agent_reply(ticket["id"], f"Hello ({token})")["delivery"]
        assert delivery["status"] == 401, delivery
        assert delivery["response"]["error"]["code"] == "unauthorized"
    assert rig.sent() == [] and rig.outbound() == []
    assert rig.stack.sandbox.stats()["requests"].get("GET /api/v2/tickets/{id}", 0) == reads_before  # nothing read

    # once the rule carries the right token, the next webhook sends the replies it finds, oldest first
    rig.rule()
    delivery = rig.stack.sandbox.set_status(ticket["id"], "pending") and rig.stack.sandbox.deliveries()[-1]
    assert delivery["status"] == 200, delivery["response"]
    assert [m["body"]["text"] for m in rig.sent()] == ["Hello (None)", "Hello (not-the-secret)"]


def test_the_custom_field_finds_the_conversation_and_the_status_follows_the_ticket(rig: Rig) -> None:
    from chalicelib import wiring
    from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
    from chalicelib.sync.tickets import TicketSync

    wiring.override("helpdesk", FreshdeskHelpdesk(rig.stack.sandbox.url, API_KEY, conversation_field=CONVERSATION_FIELD))
    wiring.override("sync", TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), sleep=lambda _s: None))
    _wire_replies(rig.telegram.url)
    ticket = rig.customer_writes()
    assert ticket["custom_fields"][CONVERSATION_FIELD] == rig.key
    rig.rule(field=CONVERSATION_FIELD)

    answer = rig.stack.sandbox.agent_reply(ticket["id"], "Fixed in 4.2.2 - closing this.", note=True, status="resolved")
    assert answer["delivery"]["status"] == 200, answer["delivery"]["response"]
    assert answer["delivery"]["response"]["found_by"] == "custom_field"
    assert [m["body"]["text"] for m in rig.sent()] == ["Fixed in 4.2.2 - closing this."]  # a public note is an answer too
    assert rig.conversation().ticket_status == "solved"

    rig.stack.sandbox.set_status(ticket["id"], "closed")
    assert rig.stack.sandbox.deliveries()[-1]["response"]["ticket_status"] == "status_updated"
    assert rig.conversation().ticket_status == "closed"
    assert len(rig.sent()) == 1


def test_a_private_note_is_never_sent(rig: Rig) -> None:
    ticket = rig.customer_writes()
    rig.rule(events=("reply_sent", "note_public", "note_private", "status"))  # even if the rule fires on it
    delivery = rig.stack.sandbox.agent_reply(ticket["id"], "Internal: customer is on a beta build", note=True,
                                             private=True)["delivery"]
    assert delivery["status"] == 200 and delivery["response"]["outcome"] == "no_new_reply"
    assert rig.sent() == [] and rig.outbound() == []
