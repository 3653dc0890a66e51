"""Freshdesk automation webhooks: the token, our rule's body, finding the conversation, sending replies once.

DynamoDB is moto in-process (the table from ``infra/template.json``); Freshdesk is a scripted
reader (ticket, conversations, contact), the platforms a fake dispatcher behind the real
``AgentReplies``, so what reaches the platform and what is stored is the real thing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import BadRequest, NotConfigured, NotFound, Unauthorized, Unavailable
from chalicelib.helpdesks.base import HelpdeskRejected, HelpdeskUnavailable, TicketRef
from chalicelib.helpdesks.freshdesk.adapter import conversation_tag
from chalicelib.helpdesks.freshdesk.events import (
    EVENT_NAME,
    TOKEN_HEADER,
    ConversationFinder,
    event_body,
    handle_freshdesk_event,
    parse_notification,
    parse_triggered_event,
    plain_text,
    read_ticket_pointer,
    record_ticket_pointer,
    replies_to_send,
    sample_body,
    verify_token,
)
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.outbound.agent_events import EventLog
from chalicelib.outbound.agent_replies import AgentReplies
from chalicelib.outbound.base import TOKEN_EXPIRED, ReplyFailed, ReplyTarget, SentReply
from chalicelib.store import Conversation, MessageStore, StoreUnavailable
from tests.support.moto_table import moto_table

ROOT = Path(__file__).resolve().parents[2]
SECRET = "fd-webhook-secret-for-tests"
PAGE, PSID = "104976543210001", "7001234567890123"
KEY = f"messenger:dm:{PAGE}:{PSID}"
T0 = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.utc)
TICKET = 42
AGENT, REQUESTER, BRIDGE = 900, 300, 1


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- fakes -----------------------------------------------------------------------------------


@dataclass
class FakeFreshdesk:
    """The reads the handler makes, scripted; ``fail`` raises instead of answering."""

    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail: Exception | None = None
    reads: list[str] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    conversation_field: str | None = None
    name: str = "freshdesk"  # AgentReplies keys its ledger and status check on it

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        self.reads.append(f"ticket {ticket_id}")
        if self.fail:
            raise self.fail
        if ticket_id not in self.tickets:
            raise HelpdeskRejected("Freshdesk rejected GET /api/v2/tickets/{id} (404: not found)")
        return dict(self.tickets[ticket_id])

    def conversations(self, ticket_id: str) -> list[dict[str, Any]]:
        self.reads.append(f"conversations {ticket_id}")
        return [dict(c) for c in self.threads.get(ticket_id, [])]

    def contact(self, contact_id: str) -> dict[str, Any]:
        self.reads.append(f"contact {contact_id}")
        if contact_id not in self.contacts:
            raise HelpdeskRejected("404")
        return dict(self.contacts[contact_id])

    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:  # AgentReplies' notes
        self.notes.append((ticket_id, text))
        return TicketRef(ticket_id, "open")


@dataclass
class FakeDispatcher:
    script: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    senders: dict[Any, Any] = field(default_factory=dict)

    def send(self, target: ReplyTarget, text: str, *, private: bool = False, idempotency_key: str) -> SentReply:
        self.calls.append({"target": target, "text": text, "private": private, "key": idempotency_key})
        result = self.script.pop(0) if self.script else SentReply(f"m_sent_{len(self.calls)}", via="message")
        if isinstance(result, BaseException):
            raise result
        return result


def ticket_json(*, tags: list[str] | None = None, status: int = 2, responder: int | None = AGENT,
                custom: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": TICKET, "status": status, "requester_id": REQUESTER, "responder_id": responder,
            "tags": tags if tags is not None else ["socialdesk", "messenger", "direct_message", conversation_tag(KEY)],
            "custom_fields": custom or {"cf_socialdesk_conversation": None}, "updated_at": stamp(T0)}


def reply(conversation_id: int, text: str, *, at: datetime = T0, user: int = AGENT, incoming: bool = False,
          private: bool = False, source: int = 0, body: str | None = None) -> dict[str, Any]:
    return {"id": conversation_id, "body": body if body is not None else f"<div>{text}</div>", "body_text": text,
            "incoming": incoming, "private": private, "user_id": user, "source": source, "ticket_id": TICKET,
            "created_at": stamp(at), "updated_at": stamp(at)}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with moto_table(monkeypatch) as found:
        yield found


@dataclass
class Rig:
    store: MessageStore
    events: EventLog
    freshdesk: FakeFreshdesk
    dispatcher: FakeDispatcher
    replies: AgentReplies
    client: Any
    now: datetime = T0 + timedelta(minutes=1)

    def deliver(self, body: bytes | None = None, *, token: str | None = SECRET, **kwargs: Any) -> Any:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers[TOKEN_HEADER] = token
        return handle_freshdesk_event(headers, body if body is not None else sample_body(TICKET), secret=SECRET,
                                      events=self.events, replies=self.replies, helpdesk=self.freshdesk,
                                      store=self.store, now=self.now, **kwargs)


def customer_message(index: int, text: str) -> SocialMessage:
    return SocialMessage(
        platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=Direction.INBOUND,
        message_id=f"m_in_{index}", conversation_key=KEY, account_id=PAGE,
        author=Author(platform_id=PSID, display_name="Dana"), text=text,
        created_at=T0 - timedelta(minutes=30 - index), raw={"mid": f"m_in_{index}"},
    )


@pytest.fixture
def rig(aws: tuple[Any, str]) -> Rig:
    client, table = aws
    store = MessageStore(table, client)
    for index, text in enumerate(["Hi, I was charged twice.", "Invoice INV-2291"]):
        store.save_message(customer_message(index, text))
    store.save_conversation(Conversation(key=KEY, helpdesk="freshdesk", ticket_id=str(TICKET), ticket_status="open"))
    freshdesk = FakeFreshdesk(
        tickets={str(TICKET): ticket_json()},
        threads={str(TICKET): []},
        contacts={str(REQUESTER): {"id": REQUESTER, "unique_external_id": f"messenger:{PSID}"}},
    )
    dispatcher = FakeDispatcher()
    replies = AgentReplies(store, freshdesk, dispatcher, lambda: T0 + timedelta(minutes=1), sleep=lambda _s: None)  # type: ignore[arg-type]
    return Rig(store, EventLog(table, client), freshdesk, dispatcher, replies, client)


# --- the token -------------------------------------------------------------------------------


def test_the_shared_secret_must_match() -> None:
    verify_token({TOKEN_HEADER: SECRET}, SECRET)
    verify_token({TOKEN_HEADER.lower(): f" {SECRET} "}, SECRET)  # any header case, stray spaces
    with pytest.raises(Unauthorized, match="missing X-Socialdesk-Token"):
        verify_token({}, SECRET)
    with pytest.raises(Unauthorized, match="does not match"):
        verify_token({TOKEN_HEADER: SECRET + "x"}, SECRET)
    with pytest.raises(NotConfigured):
        verify_token({TOKEN_HEADER: ""}, "")


def test_a_bad_token_reads_nothing_and_sends_nothing(rig: Rig) -> None:
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Refunded!")]
    for token in (None, "guess"):
        with pytest.raises(Unauthorized):
            rig.deliver(token=token)
    assert rig.freshdesk.reads == [] and rig.dispatcher.calls == []


# --- the rule's body -------------------------------------------------------------------------


def test_the_rule_body_is_json_once_freshdesk_fills_it_in() -> None:
    template = event_body("cf_socialdesk_conversation")
    assert "{{ticket.cf_socialdesk_conversation}}" in template and "{{ticket.id}}" in template
    rendered = (template.replace("{{ticket.id}}", "42").replace("{{triggered_event}}", "{note_type:public}")
                .replace("{{ticket.cf_socialdesk_conversation}}", KEY))
    for placeholder in ("ticket.status", "ticket.tags", "ticket.agent.email", "ticket.agent.name"):
        rendered = rendered.replace("{{%s}}" % placeholder, "x")
    note = parse_notification(rendered.encode())
    assert (note.ticket_id, note.conversation_key, note.event) == ("42", KEY, ("note_type", "public"))
    with pytest.raises(ValueError):
        event_body("socialdesk conversation")


def test_body_problems_are_named() -> None:
    with pytest.raises(BadRequest, match="socialdesk_event"):
        parse_notification(json.dumps({"ticket_id": "1"}).encode())
    with pytest.raises(BadRequest, match="ticket_id"):
        parse_notification(event_body().encode())  # placeholders never rendered
    with pytest.raises(BadRequest):
        parse_notification(b"")


def test_an_unescaped_quote_in_a_name_is_read_leniently() -> None:
    body = ('{"socialdesk_event": "%s", "ticket_id": "42", "triggered_event": "{reply_sent:sent}", '
            '"agent_name": "Dana "The Fixer" Li"}' % EVENT_NAME).encode()
    note = parse_notification(body)
    assert note.ticket_id == "42" and note.event == ("reply_sent", "sent")


@pytest.mark.parametrize("text, expected", [
    ("{note_type:public}", ("note_type", "public")),
    ("{reply_sent:sent}", ("reply_sent", "sent")),
    ("{status:{from:2,to:4}}", ("status", "4")),
    ("{status:{from:Open,to:Resolved}}", ("status", "Resolved")),
    ("", (None, None)),
    ("garbage", (None, None)),
])
def test_triggered_event(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_triggered_event(text) == expected


# --- which conversations are replies to send -------------------------------------------------


def test_only_recent_public_agent_replies_are_sent_oldest_first() -> None:
    since = T0 - timedelta(hours=1)
    items = [
        reply(7, "second", at=T0),
        reply(5, "first", at=T0 - timedelta(minutes=5), source=2),  # a public note
        reply(6, "customer", incoming=True, user=REQUESTER),
        reply(8, "private note", private=True, source=2),
        reply(9, "bridge note", source=2, user=BRIDGE, body="<p><small>[socialdesk:messenger:m_in_0]</small></p>"),
        reply(10, "forwarded", source=8),
        reply(11, "yesterday", at=T0 - timedelta(hours=2)),
    ]
    assert [c["id"] for c in replies_to_send(items, since)] == [5, 7]


def test_plain_text_falls_back_to_the_html_body() -> None:
    assert plain_text({"body_text": "  Hello  "}) == "Hello"
    assert plain_text({"body": "<div>Hi &amp; welcome<br>line two</div><p>bye</p>"}) == "Hi & welcome\nline two\nbye"


# --- ticket -> conversation ------------------------------------------------------------------


def test_the_custom_field_is_used_when_it_matches_the_tag(rig: Rig) -> None:
    finder = ConversationFinder(rig.store, rig.freshdesk, conversation_field="cf_socialdesk_conversation")
    assert finder.find(ticket_json(custom={"cf_socialdesk_conversation": KEY})) == (KEY, "custom_field")
    # an edited field that no longer matches the ticket's tag is not trusted; the requester is
    other = "messenger:dm:1:2"
    assert finder.find(ticket_json(custom={"cf_socialdesk_conversation": other})) == (KEY, "requester")


def test_the_pointer_then_the_requester(rig: Rig) -> None:
    finder = ConversationFinder(rig.store, rig.freshdesk)
    assert finder.find(ticket_json()) == (KEY, "requester")
    assert rig.freshdesk.reads == [f"contact {REQUESTER}"]
    assert record_ticket_pointer(rig.store, "freshdesk", str(TICKET), customer_message(0, "x"))
    assert read_ticket_pointer(rig.store, "freshdesk", str(TICKET)) == KEY
    rig.freshdesk.reads.clear()
    assert finder.find(ticket_json()) == (KEY, "pointer")
    assert rig.freshdesk.reads == []  # one GetItem, no Freshdesk call


def test_a_ticket_without_our_tag_is_not_ours(rig: Rig) -> None:
    finder = ConversationFinder(rig.store, rig.freshdesk)
    assert finder.find(ticket_json(tags=["socialdesk"])) == (None, "no_conversation_tag")
    assert finder.find(ticket_json(tags=[conversation_tag("x:y")])) == (None, "conversation_not_found")
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Hello")]
    rig.freshdesk.tickets[str(TICKET)] = ticket_json(tags=["billing"])
    result = rig.deliver()
    assert (result.status, result.outcome) == (200, "ignored_not_bridged") and rig.dispatcher.calls == []


def test_the_pointer_is_forgotten_with_the_person(rig: Rig) -> None:
    from chalicelib.privacy.deletion import DeletionRequests

    record_ticket_pointer(rig.store, "freshdesk", str(TICKET), customer_message(0, "x"))
    DeletionRequests(rig.store.table_name, rig.client).forget("messenger", PSID)
    assert read_ticket_pointer(rig.store, "freshdesk", str(TICKET)) is None


# --- the handler -----------------------------------------------------------------------------


def test_an_agent_reply_goes_to_the_customer_once(rig: Rig) -> None:

    rig.freshdesk.threads[str(TICKET)] = [reply(6, "Invoice attached", incoming=True, user=REQUESTER, at=T0 - timedelta(minutes=20)),
                                          reply(501, "We refunded the second charge.")]
    result = rig.deliver(sample_body(TICKET, triggered_event="{reply_sent:sent}", agent_name="Maria",
                                     agent_email="maria@acme.example"))
    assert (result.status, result.outcome, result.duplicate) == (200, "sent", False)
    assert result.replies == ((f"comment:{TICKET}:501", "sent"),)
    [call] = rig.dispatcher.calls
    assert call["text"] == "We refunded the second charge." and call["private"] is False
    assert call["target"].platform is Platform.MESSENGER
    stored = rig.store.get_message(KEY, "m_sent_1")
    assert stored is not None and stored.direction is Direction.OUTBOUND and stored.author.display_name == "Maria"
    assert rig.store.response_times(KEY)["first_response_seconds"] == 31 * 60  # from the customer's first message
    ledger = rig.client.get_item(TableName=rig.store.table_name, Key={"pk": {"S": f"CONV#{KEY}"}, "sk": {"S": "REPLY#freshdesk#501"}})
    assert ledger["Item"]["state"]["S"] == "sent"  # the reply ledger is keyed on Freshdesk's conversation id

    again = rig.deliver()  # Freshdesk's retry, or a replay
    assert (again.outcome, again.duplicate) == ("duplicate", True) and len(rig.dispatcher.calls) == 1
    body = again.to_body()
    assert body["ok"] is True and "conversation" not in json.dumps(body)  # no conversation key (an id) in the answer


def test_two_quick_replies_both_go_even_if_one_webhook_is_lost(rig: Rig) -> None:
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "First", at=T0), reply(502, "Second", at=T0 + timedelta(seconds=20))]
    result = rig.deliver()
    assert [outcome for _, outcome in result.replies] == ["sent", "sent"]
    assert [c["text"] for c in rig.dispatcher.calls] == ["First", "Second"]
    assert rig.deliver().duplicate


def test_old_replies_are_never_sent(rig: Rig) -> None:
    rig.freshdesk.threads[str(TICKET)] = [reply(400, "Answered long ago", at=T0 - timedelta(days=2))]
    result = rig.deliver()
    assert (result.outcome, result.replies) == ("no_new_reply", ()) and rig.dispatcher.calls == []


def test_the_private_tag_answers_privately(rig: Rig) -> None:
    rig.freshdesk.tickets[str(TICKET)] = ticket_json(tags=["socialdesk", conversation_tag(KEY), "socialdesk_private"])
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Sent you a DM")]
    rig.deliver()
    # a chat is private already; the flag is passed and the dispatcher decides
    assert rig.dispatcher.calls[0]["private"] is True


def test_a_platform_refusal_becomes_a_note_not_a_retry(rig: Rig) -> None:
    rig.dispatcher.script = [ReplyFailed(TOKEN_EXPIRED, "Not sent: the Messenger page token expired.")]
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Hello")]
    result = rig.deliver()
    assert result.outcome == "failed_noted"
    assert rig.freshdesk.notes == [(str(TICKET), "Not sent: the Messenger page token expired.")]
    assert rig.deliver().duplicate and len(rig.dispatcher.calls) == 1


def test_an_outage_is_503_and_the_retry_sends(rig: Rig) -> None:
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Hello")]
    rig.freshdesk.fail = HelpdeskUnavailable("Freshdesk rate limit (429)", retry_after=30)
    with pytest.raises(Unavailable, match="Freshdesk will retry"):
        rig.deliver()
    rig.freshdesk.fail = None

    class Flaky:
        def __init__(self, inner: AgentReplies) -> None:
            self.inner, self.failures = inner, 1

        def handle(self, event: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailable("throttled")
            return self.inner.handle(event)

    flaky = Flaky(rig.replies)
    with pytest.raises(Unavailable):
        handle_freshdesk_event({TOKEN_HEADER: SECRET}, sample_body(TICKET), secret=SECRET, events=rig.events,
                               replies=flaky, helpdesk=rig.freshdesk, store=rig.store, now=rig.now)
    result = handle_freshdesk_event({TOKEN_HEADER: SECRET}, sample_body(TICKET), secret=SECRET, events=rig.events,
                                    replies=flaky, helpdesk=rig.freshdesk, store=rig.store, now=rig.now)
    assert result.outcome == "sent" and len(rig.dispatcher.calls) == 1  # the claim was released


def test_a_deployment_on_zendesk_has_no_freshdesk_route(rig: Rig) -> None:
    rig.freshdesk.name = "zendesk"
    with pytest.raises(NotFound, match="not Freshdesk"):
        rig.deliver()
    assert rig.freshdesk.reads == []


def test_a_deleted_ticket_is_answered_200(rig: Rig) -> None:
    result = rig.deliver(sample_body(777))
    assert (result.status, result.outcome) == (200, "ticket_not_found")


def test_the_ticket_status_is_recorded_from_freshdesk(rig: Rig) -> None:
    rig.freshdesk.tickets[str(TICKET)] = ticket_json(status=4)  # resolved
    result = rig.deliver(sample_body(TICKET, triggered_event="{status:{from:2,to:4}}"))
    assert result.ticket_status == "status_updated"
    assert rig.store.get_conversation(KEY).ticket_status == "solved"
    assert rig.deliver().ticket_status == "status_unchanged"
    # an older ticket of the conversation does not touch the current one's status
    conversation = rig.store.get_conversation(KEY)
    conversation.ticket_id = "43"
    rig.store.save_conversation(conversation)
    rig.freshdesk.tickets[str(TICKET)] = ticket_json(status=5)
    assert rig.deliver().ticket_status == "ignored_other_ticket"
    assert rig.store.get_conversation(KEY).ticket_status == "solved"


def test_outcomes_for_metrics(rig: Rig) -> None:
    rig.freshdesk.threads[str(TICKET)] = [reply(501, "Hello")]
    assert rig.deliver().outcomes() == {"sent": 1, "status_unchanged": 1}
