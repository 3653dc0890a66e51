"""Helpdesk events: Zendesk signatures, our trigger bodies (ids only), reading the agent's
comments, sending each once, and the reply ledger under faults.

DynamoDB is moto in-process (the table built from ``infra/template.json``); the platforms
are a scripted fake dispatcher and the helpdesk a fake Zendesk: a ticket's comments (with
their authors' roles) and the internal notes the bridge writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.errors import BadRequest, Unauthorized, Unavailable
from chalicelib.helpdesks.base import HelpdeskRejected, HelpdeskUnavailable, TicketRef
from chalicelib.helpdesks.zendesk.adapter import TicketComment, TicketComments
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.outbound.agent_events import (
    COMMENT_EVENT_BODY,
    SIGNATURE_HEADER,
    STATUS_EVENT_BODY,
    TIMESTAMP_HEADER,
    EventLog,
    handle_zendesk_event,
    parse_event,
    sign,
    signed_headers,
    verify_signature,
)
from chalicelib.outbound.agent_replies import AgentReplies, Outcome
from chalicelib.outbound.base import RATE_LIMITED, TOKEN_EXPIRED, UNAVAILABLE, ReplyFailed, ReplyTarget, SentReply
from chalicelib.store import Conversation, MessageStore, StoreUnavailable
from tests.support.moto_table import moto_table

ROOT = Path(__file__).resolve().parents[2]
SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
PAGE, PSID = "104976543210001", "7001234567890123"
KEY = f"messenger:dm:{PAGE}:{PSID}"
T0 = datetime(2026, 11, 20, 14, 0, tzinfo=timezone.utc)


# --- fakes -----------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime = T0) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@dataclass
class FakeDispatcher:
    """Answers with scripted results (``SentReply`` or ``ReplyFailed``), in order; then success."""

    script: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    senders: dict[Any, Any] = field(default_factory=dict)

    def send(self, target: ReplyTarget, text: str, *, private: bool = False, idempotency_key: str) -> SentReply:
        self.calls.append({"target": target, "text": text, "private": private, "key": idempotency_key})
        result = self.script.pop(0) if self.script else SentReply(f"m_sent_{len(self.calls)}", via="message")
        if isinstance(result, BaseException):
            raise result
        return result


AGENT, REQUESTER, BRIDGE_USER, OTHER_USER = "9001", "300", "1", "301"
USERS = {  # id -> (role, email, name)
    AGENT: ("agent", "maria@acme.example", "Maria"),
    REQUESTER: ("end-user", None, "Dana"),
    OTHER_USER: ("end-user", "cc@example.com", "Someone CC'd"),
    BRIDGE_USER: ("admin", "agent@socialdesk.local", "socialdesk"),
}


@dataclass
class FakeHelpdesk:
    """Zendesk as the reply path sees it: tickets' tags and comments, and the notes we add."""

    name: str = "zendesk"
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    status: str = "solved"
    note_failures: int = 0
    read_failures: int = 0
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    comments: dict[str, list[TicketComment]] = field(default_factory=dict)
    reads: int = 0
    clock: Any = None

    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:
        if self.note_failures:
            self.note_failures -= 1
            raise HelpdeskUnavailable("zendesk is down")
        self.notes.append((ticket_id, f"{message.platform.value}:{message.message_id}", text))
        return TicketRef(ticket_id, "open")

    def ticket_status(self, ticket_id: str) -> TicketRef:
        return TicketRef(ticket_id, self.status)

    def comment(self, ticket_id: str, comment_id: str, text: str, *, author: str = AGENT, public: bool = True,
                channel: str = "web", at: datetime | None = None) -> None:
        role, email, name = USERS[author]
        self.comments.setdefault(ticket_id, []).append(TicketComment(
            comment_id=comment_id, author_id=author, public=public, text=text, created_at=at or self.clock(),
            channel=channel, author_role=role, author_email=email, author_name=name))

    def ticket_comments(self, ticket_id: str, *, since: datetime | None = None) -> TicketComments:
        self.reads += 1
        if self.read_failures:
            self.read_failures -= 1
            raise HelpdeskUnavailable("Zendesk answered 429", retry_after=30)
        if ticket_id not in self.comments:
            raise HelpdeskRejected("Zendesk GET /api/v2/tickets/{ticket_id} 404")
        found = [c for c in self.comments[ticket_id] if since is None or (c.created_at and c.created_at >= since)]
        return TicketComments(tags=self.tags.get(ticket_id, ("socialdesk", "messenger")), requester_id=REQUESTER,
                              comments=sorted(found, key=lambda c: (c.created_at, int(c.comment_id))))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with moto_table(monkeypatch) as found:
        yield found


@dataclass
class Rig:
    store: MessageStore
    events: EventLog
    dispatcher: FakeDispatcher
    helpdesk: FakeHelpdesk
    clock: Clock
    replies: AgentReplies
    client: Any

    def deliver(self, body: bytes, *, at: datetime | None = None, invocation: str = "1001") -> Any:
        stamp = (at or self.clock()).strftime("%Y-%m-%dT%H:%M:%SZ")
        headers = signed_headers(SECRET, body, timestamp=stamp, invocation_id=invocation)
        return handle_zendesk_event(headers, body, secret=SECRET, events=self.events, replies=self.replies, now=self.clock)

    def agent_answers(self, comment_id: str = "501", text: str = "We refunded the second charge.", *, ticket: str = "7",
                      **comment: Any) -> Any:
        """An agent's public comment on the ticket, then the webhook its trigger sends."""
        self.helpdesk.comment(ticket, comment_id, text, **comment)
        return self.deliver(comment_body(ticket=ticket))

    def ledger_state(self, comment_id: str) -> str | None:
        record = self.replies.ledger.get(KEY, comment_id)
        return record.state if record else None


@pytest.fixture
def rig(aws: tuple[Any, str]) -> Rig:
    client, table = aws
    store = MessageStore(table, client)
    clock = Clock()
    dispatcher, helpdesk = FakeDispatcher(), FakeHelpdesk(clock=clock)
    helpdesk.comment("7", "400", "Hi, I was charged twice.", author=REQUESTER, channel="api", at=T0 - timedelta(minutes=30))
    replies = AgentReplies(store, helpdesk, dispatcher, clock, bridge_email="agent@socialdesk.local", sleep=lambda _s: None)
    rig = Rig(store, EventLog(table, client), dispatcher, helpdesk, clock, replies, client)
    seed_conversation(rig)
    return rig


def seed_conversation(rig: Rig, *, ticket_id: str = "7", status: str = "open") -> None:
    for index, text in enumerate(["Hi, I was charged twice.", "Invoice INV-2291"]):
        rig.store.save_message(SocialMessage(
            platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=Direction.INBOUND,
            message_id=f"m_in_{index}", conversation_key=KEY, account_id=PAGE,
            author=Author(platform_id=PSID, display_name="Dana"), text=text,
            created_at=T0 - timedelta(minutes=30 - index), raw={"mid": f"m_in_{index}"},
        ))
    rig.store.save_conversation(Conversation(key=KEY, helpdesk="zendesk", ticket_id=ticket_id, ticket_status=status))


def comment_body(*, ticket: str = "7", key: str = KEY, author: str = AGENT) -> bytes:
    """What our comment trigger sends: ids only (COMMENT_EVENT_BODY as Zendesk renders it)."""
    return render(COMMENT_EVENT_BODY, {"ticket.id": ticket, "ticket.external_id": key, "current_user.id": author})


def status_body(status: str = "Solved", *, ticket: str = "7", at: datetime = T0) -> bytes:
    return render(STATUS_EVENT_BODY, {"ticket.id": ticket, "ticket.external_id": KEY, "ticket.status": status,
                                      "ticket.updated_at_with_timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                      "current_user.id": AGENT})


def render(template: str, values: dict[str, str]) -> bytes:
    """Fill a trigger body the way Zendesk does (an unknown placeholder renders empty)."""
    import re

    return re.sub(r"\{\{\s*([a-z_.]+)\s*\}\}", lambda m: values.get(m.group(1), ""), template).encode()


# --- signatures ------------------------------------------------------------------------------


def test_the_signature_is_base64_hmac_sha256_of_timestamp_then_body() -> None:
    body, stamp = b'{"say": "hello"}', "2021-07-25T10:00:00Z"
    expected = base64.b64encode(hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    assert sign(SECRET, stamp, body) == expected


def test_a_genuine_request_passes() -> None:
    body = comment_body()
    headers = signed_headers(SECRET, body, timestamp="2026-11-20T14:00:00Z")
    assert verify_signature(headers, body, SECRET, T0 + timedelta(seconds=20)) == T0


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda h: h.pop(SIGNATURE_HEADER), "missing X-Zendesk-Webhook-Signature"),
        (lambda h: h.pop(TIMESTAMP_HEADER), "missing X-Zendesk-Webhook-Signature-Timestamp"),
        (lambda h: h.update({SIGNATURE_HEADER: sign("another-secret", h[TIMESTAMP_HEADER], b"x")}), "does not match"),
        (lambda h: h.update({TIMESTAMP_HEADER: "2026-11-20T14:00:01Z"}), "does not match"),  # the timestamp is signed too
    ],
)
def test_a_forged_or_incomplete_request_is_refused(change: Any, reason: str) -> None:
    body = comment_body()
    headers = signed_headers(SECRET, body, timestamp="2026-11-20T14:00:00Z")
    change(headers)
    with pytest.raises(Unauthorized, match=reason):
        verify_signature(headers, body, SECRET, T0)


def test_a_tampered_body_is_refused() -> None:
    headers = signed_headers(SECRET, comment_body(), timestamp="2026-11-20T14:00:00Z")
    with pytest.raises(Unauthorized, match="does not match"):
        verify_signature(headers, comment_body(ticket="8"), SECRET, T0)


def test_a_refused_request_is_refused_before_the_helpdesk_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route builds the reply side only for a verified event: a forged request to a
    deployment whose Zendesk is not configured yet is a 401, not a 503."""
    from chalice.test import Client

    import app as lambda_app
    from chalicelib import wiring

    monkeypatch.setenv("HELPDESK", "zendesk")
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", SECRET)
    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)  # clients are built, never called
    for name in ("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_WEBHOOK_SECRET_PARAM", "CRISIS_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    wiring.reset()
    body = comment_body()
    headers = signed_headers("another-secret", body, timestamp=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    try:
        with Client(lambda_app.app) as client:
            answer = client.http.post("/helpdesk/zendesk", headers=headers, body=body)
    finally:
        wiring.reset()
        boto3.DEFAULT_SESSION = None  # built under this test's environment: not the next test's
    assert answer.status_code == 401, answer.body


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_replayed_request_outside_five_minutes_is_refused(offset: timedelta) -> None:
    body = comment_body()
    headers = signed_headers(SECRET, body, timestamp=(T0 + offset).strftime("%Y-%m-%dT%H:%M:%SZ"))
    with pytest.raises(Unauthorized, match="replays"):
        verify_signature(headers, body, SECRET, T0)


def test_header_names_are_read_whatever_their_case() -> None:
    body = comment_body()
    headers = {k.lower(): v for k, v in signed_headers(SECRET, body, timestamp="2026-11-20T14:00:00Z").items()}
    verify_signature(headers, body, SECRET, T0)


# --- our trigger bodies ----------------------------------------------------------------------


def test_the_trigger_bodies_carry_only_documented_ids() -> None:
    # Only placeholders whose values cannot break a JSON string (ids, our own key, a status word).
    import re

    assert set(re.findall(r"\{\{([a-z_.]+)\}\}", COMMENT_EVENT_BODY)) == {"ticket.id", "ticket.external_id", "current_user.id"}
    assert set(re.findall(r"\{\{([a-z_.]+)\}\}", STATUS_EVENT_BODY)) == {
        "ticket.id", "ticket.external_id", "ticket.status", "ticket.updated_at_with_timestamp", "current_user.id"}
    event = parse_event(comment_body())
    assert (event.kind, event.ticket_id, event.conversation_key, event.author_id) == ("agent_comment", "7", KEY, AGENT)
    assert event.comment_id is None and event.text == "" and event.event_id == "comments:7"
    status = parse_event(status_body("Solved"))
    assert (status.kind, status.status, status.event_id) == ("ticket_status", "solved", "status:7:solved:20261120T140000Z")


def test_a_body_of_the_old_trigger_is_read_for_its_ids_only() -> None:
    # Before `make zendesk-setup` runs again, the old trigger still sends the comment's text
    # (maybe unescaped) and an undocumented comment id: neither is trusted.
    old = ('{"socialdesk_event": "agent_comment", "ticket_id": "7", "external_id": "' + KEY + '", "tags": "socialdesk", '
           '"comment_id": "", "author_id": "9001", "comment": "Use the code "SPRING"\n\tBye"}').encode()
    event = parse_event(old)
    assert (event.ticket_id, event.conversation_key, event.comment_id, event.text) == ("7", KEY, None, "")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", "empty"),
        (b"not json", "not valid JSON"),
        (json.dumps({"socialdesk_event": "something_else", "ticket_id": "7"}).encode(), "socialdesk_event"),
        (json.dumps({"socialdesk_event": "ticket_status", "ticket_id": ""}).encode(), "ticket_id"),
        (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
        (json.dumps({"socialdesk_event": "agent_comment", "ticket_id": "7", "external_id": "\ud800"}).encode(), "not valid Unicode"),
        (comment_body(key="k" * 5000), "longer than"),
        (b"\xff\xfe not utf-8", "not UTF-8"),
    ],
)
def test_a_body_that_is_not_ours_is_a_bad_request(body: bytes, reason: str) -> None:
    with pytest.raises(BadRequest, match=reason):
        parse_event(body)


# --- deduplication ---------------------------------------------------------------------------


def test_an_event_is_claimed_once_and_a_crashed_claim_is_taken_over_after_the_lease(aws: tuple[Any, str]) -> None:
    client, table = aws
    log = EventLog(table, client, lease=timedelta(minutes=3))
    assert log.claim("zendesk", "status:7:solved:1", T0)
    assert not log.claim("zendesk", "status:7:solved:1", T0 + timedelta(seconds=5))
    assert log.claim("zendesk", "status:7:solved:1", T0 + timedelta(minutes=4))  # left "processing": taken over
    log.done("zendesk", "status:7:solved:1", "status_updated", T0)
    assert not log.claim("zendesk", "status:7:solved:1", T0 + timedelta(hours=1))  # done stays done
    assert log.claim("zendesk", "status:7:open:2", T0)
    log.release("zendesk", "status:7:open:2")
    assert log.claim("zendesk", "status:7:open:2", T0)
    item = client.get_item(TableName=table, Key=EventLog.key("zendesk", "status:7:solved:1"))["Item"]
    assert int(item["expires_at"]["N"]) > T0.timestamp()


def test_a_repeated_delivery_sends_one_reply(rig: Rig) -> None:
    first = rig.agent_answers()
    again = rig.deliver(comment_body(), invocation="1001")  # Zendesk's retry of the same invocation
    other = rig.deliver(comment_body(), invocation="2002")  # another trigger firing for the same update
    assert (first.outcome, first.duplicate) == ("sent", False)
    assert (again.outcome, again.duplicate) == ("already_sent", True) and other.duplicate
    assert len(rig.dispatcher.calls) == 1


def test_a_failure_releases_the_status_claim_and_answers_503(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(event: Any) -> Any:
        calls.append(event)
        raise HelpdeskUnavailable("zendesk down")

    monkeypatch.setattr(rig.replies, "handle", broken)
    with pytest.raises(Unavailable):
        rig.deliver(status_body())
    monkeypatch.undo()
    assert rig.deliver(status_body()).outcome == Outcome.STATUS_UPDATED.value  # Zendesk's retry is processed


# --- which comments are sent -----------------------------------------------------------------


def test_the_agents_comment_is_read_from_zendesk_with_its_text_intact(rig: Rig) -> None:
    text = 'Use the code "SPRING" at checkout.\n\tThen tap \\ "Apply" {"not": "json"}'
    assert rig.agent_answers(text=text).outcome == "sent"
    (call,) = rig.dispatcher.calls
    assert call["text"] == text and call["key"] == "zendesk:7:501"


def test_two_agent_comments_before_one_delivery_are_both_sent_in_order_once(rig: Rig) -> None:
    rig.helpdesk.comment("7", "501", "First: we refunded the charge.")
    rig.clock.advance(seconds=20)
    rig.helpdesk.comment("7", "502", "Second: it shows in 3 days.")
    result = rig.deliver(comment_body())  # the first comment's webhook came late: both are there
    assert result.outcome == "sent"
    assert [c["text"] for c in rig.dispatcher.calls] == ["First: we refunded the charge.", "Second: it shows in 3 days."]
    assert rig.deliver(comment_body(), invocation="1002").duplicate  # the second comment's own webhook
    assert len(rig.dispatcher.calls) == 2


def test_only_public_comments_of_agents_are_sent(rig: Rig) -> None:
    rig.helpdesk.comment("7", "402", "Invoice INV-2291", author=REQUESTER, channel="api")  # the customer, via the bridge
    rig.helpdesk.comment("7", "403", "Not sent: token expired.", author=BRIDGE_USER, public=False, channel="api")  # our note
    rig.helpdesk.comment("7", "404", "Ours, through the API", author=BRIDGE_USER, channel="api")
    rig.helpdesk.comment("7", "405", "Check the warehouse", public=False)  # an agent's internal note
    rig.helpdesk.comment("7", "406", "Me too!", author=OTHER_USER, channel="email")  # an end user CC'd by email
    rig.helpdesk.comment("7", "407", "Written by an app through the API", channel="api")
    rig.helpdesk.comment("7", "408", "An auto-reply added by a trigger", channel="rule")
    assert rig.deliver(comment_body()).outcome == "no_new_reply"
    assert rig.dispatcher.calls == [] and rig.helpdesk.notes == []
    rig.helpdesk.comment("7", "409", "Done!")
    assert rig.deliver(comment_body()).outcome == "sent"
    assert [c["key"] for c in rig.dispatcher.calls] == ["zendesk:7:409"]


def test_comments_older_than_the_lookback_are_never_sent(rig: Rig) -> None:
    rig.helpdesk.comment("7", "480", "Answered long ago (before socialdesk read comments)", at=T0 - timedelta(hours=30))
    rig.helpdesk.comment("7", "501", "New answer")
    rig.deliver(comment_body())
    assert [c["key"] for c in rig.dispatcher.calls] == ["zendesk:7:501"]


def test_a_follow_up_ticket_sends_its_own_comments(rig: Rig) -> None:
    rig.agent_answers("501", "On the first ticket")
    rig.store.save_conversation(replace_ticket(rig.store.get_conversation(KEY), "8"))
    rig.helpdesk.comment("8", "600", "Hi again", author=REQUESTER, channel="api")  # the follow-up's first comment
    assert rig.agent_answers("601", "On the follow-up", ticket="8").outcome == "sent"
    assert [c["key"] for c in rig.dispatcher.calls] == ["zendesk:7:501", "zendesk:8:601"]


def test_a_comment_another_delivery_is_sending_is_waited_for_before_the_next(rig: Rig) -> None:
    from chalicelib.outbound.agent_replies import ReplyRecord

    rig.helpdesk.comment("7", "501", "First")
    rig.clock.advance(seconds=5)
    rig.helpdesk.comment("7", "502", "Second")
    other = ReplyRecord(KEY, "501", "7", "First", claimed_at_ms=int(rig.clock().timestamp() * 1000))
    assert rig.replies.ledger.claim_new(other, rig.clock())  # another invocation is sending the first one
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # it finishes while we wait
        waits.append(seconds)
        rig.replies.ledger.mark_sent(other, SentReply("m_other"), rig.clock())

    rig.replies._sleep = sleep  # noqa: SLF001
    rig.deliver(comment_body())
    assert waits and [c["text"] for c in rig.dispatcher.calls] == ["Second"]


def test_a_ticket_that_cannot_be_read_is_rechecked_by_the_schedule(rig: Rig) -> None:
    rig.helpdesk.comment("7", "501", "We refunded the second charge.")
    rig.helpdesk.read_failures = 3  # Zendesk answers 429 to our read
    with pytest.raises(Unavailable):
        rig.deliver(comment_body())
    assert rig.dispatcher.calls == []
    rig.clock.advance(minutes=3)
    assert rig.replies.retry_due().outcomes == {"recheck_failed": 1}
    rig.clock.advance(minutes=5)
    assert rig.replies.retry_due().outcomes == {"recheck_failed": 1}
    rig.clock.advance(minutes=10)
    assert rig.replies.retry_due().outcomes == {"sent": 1}  # Zendesk answers again: the comment goes out
    rig.clock.advance(hours=1)
    assert rig.replies.retry_due().outcomes == {}  # nothing left to recheck
    assert len(rig.dispatcher.calls) == 1


def test_a_comment_not_readable_yet_when_its_delivery_comes_is_sent_by_the_recheck(rig: Rig) -> None:
    assert rig.deliver(comment_body()).outcome == "no_new_reply"  # the API does not show the comment yet
    rig.helpdesk.comment("7", "501", "We refunded the second charge.")
    rig.clock.advance(minutes=2)
    assert rig.replies.retry_due().outcomes == {"sent": 1}
    rig.clock.advance(hours=1)
    assert rig.replies.retry_due().outcomes == {}
    assert len(rig.dispatcher.calls) == 1


def test_a_deleted_ticket_is_answered_200_with_nothing_sent(rig: Rig) -> None:
    assert rig.deliver(comment_body(ticket="99")).outcome == "ticket_not_readable"


# --- replies ---------------------------------------------------------------------------------


def test_a_public_agent_comment_is_sent_stored_as_outbound_and_timed(rig: Rig) -> None:
    result = rig.agent_answers()
    assert result.outcome == "sent"
    (call,) = rig.dispatcher.calls
    assert call["text"] == "We refunded the second charge." and call["private"] is False
    assert call["key"] == "zendesk:7:501"
    assert (call["target"].platform, call["target"].customer_id, call["target"].reply_to_id) == (Platform.MESSENGER, PSID, "m_in_1")
    stored = rig.store.get_message(KEY, "m_sent_1")
    assert stored is not None and stored.direction is Direction.OUTBOUND and stored.text == "We refunded the second charge."
    assert rig.ledger_state("501") == "sent"
    times = rig.store.response_times(KEY)
    assert times is not None and times["first_response_seconds"] == 30 * 60 and times["responses"] == 1
    rig.clock.advance(minutes=10)
    rig.agent_answers("502", "Anything else?")
    later = rig.store.response_times(KEY)
    assert later is not None and later["first_response_at"] == times["first_response_at"] and later["responses"] == 2
    assert [text for _, _, text in rig.helpdesk.notes] == ["Sent to the customer on Messenger."] * 2  # the agent sees each went out


def test_a_platform_that_answers_without_an_id_still_gets_the_note_and_the_response_time(rig: Rig) -> None:
    rig.dispatcher.script.append(SentReply("", via="line_push"))  # e.g. LINE before 2023: 200 {}
    assert rig.agent_answers().outcome == "sent"
    assert [text for _, _, text in rig.helpdesk.notes] == ["Sent to the customer on Messenger as a push message."]
    assert rig.store.response_times(KEY)["responses"] == 1  # type: ignore[index]
    assert rig.ledger_state("501") == "sent"
    stored = rig.store.get_message(KEY, "zendesk-reply-7-501")  # no platform id: the answer is kept under ours
    assert stored is not None and stored.direction is Direction.OUTBOUND


def test_the_private_tag_asks_for_a_private_answer(rig: Rig) -> None:
    rig.helpdesk.tags["7"] = ("socialdesk", "facebook", "socialdesk_private")
    rig.agent_answers()
    assert rig.dispatcher.calls[0]["private"] is True


def test_a_ticket_without_a_conversation_key_is_ignored(rig: Rig) -> None:
    assert rig.deliver(comment_body(key="")).outcome == "ignored_not_bridged"
    assert rig.helpdesk.reads == 0


def test_a_token_expired_failure_becomes_a_note_in_plain_words(rig: Rig) -> None:
    words = "Not sent: the Facebook Page's access token expired. Reconnect the Page in socialdesk settings."
    rig.dispatcher.script.append(ReplyFailed(TOKEN_EXPIRED, words))
    assert rig.agent_answers().outcome == "failed_noted"
    assert rig.helpdesk.notes == [("7", "messenger:zendesk-comment-501", words)]
    assert rig.ledger_state("501") == "failed"
    assert rig.deliver(comment_body()).outcome == "already_handled"
    assert len(rig.dispatcher.calls) == 1 and len(rig.helpdesk.notes) == 1


def test_a_rate_limit_is_noted_with_the_retry_time_and_retried_once_due(rig: Rig) -> None:
    retry_at = T0 + timedelta(minutes=5)
    words = "Not sent: Messenger is limiting how much this Facebook Page can send. It can be sent again after 14:05 UTC."
    rig.dispatcher.script.append(ReplyFailed(RATE_LIMITED, words, retry_at=retry_at, transient=True))
    assert rig.agent_answers().outcome == "retry_scheduled"
    ((_, _, note),) = rig.helpdesk.notes
    assert note == f"{words} socialdesk is retrying at 14:05 UTC."
    assert rig.ledger_state("501") == "retry"

    assert rig.replies.retry_due().outcomes == {}  # not due yet
    rig.clock.advance(minutes=6)
    assert rig.replies.retry_due().outcomes == {"sent": 1}
    assert rig.replies.retry_due().outcomes == {}
    assert len(rig.dispatcher.calls) == 2 and rig.ledger_state("501") == "sent"
    assert rig.store.get_message(KEY, "m_sent_2") is not None


def test_the_schedule_running_twice_sends_once(rig: Rig) -> None:
    rig.dispatcher.script.append(ReplyFailed(RATE_LIMITED, "Not sent: slow down.", retry_at=T0 + timedelta(minutes=1),
                                             transient=True))
    rig.agent_answers()
    rig.clock.advance(minutes=2)
    first, second = rig.replies.retry_due(), rig.replies.retry_due()  # EventBridge delivered the tick twice
    assert first.outcomes == {"sent": 1} and second.outcomes == {}
    assert len(rig.dispatcher.calls) == 2


def test_retries_stop_after_the_last_attempt_with_a_note(rig: Rig) -> None:
    rig.replies.max_attempts = 2
    failure = ReplyFailed(UNAVAILABLE, "Not sent: Messenger could not be reached. Nothing was posted; it is safe to send again.",
                          transient=True)
    rig.dispatcher.script.extend([failure, failure])
    rig.agent_answers()
    rig.clock.advance(minutes=2)
    assert rig.replies.retry_due().outcomes == {"failed_noted": 1}
    assert rig.ledger_state("501") == "failed"
    assert "tried 2 times and stopped" in rig.helpdesk.notes[-1][2]
    assert len(rig.helpdesk.notes) == 2  # the first failure, then the end


def test_an_unreadable_conversation_counts_as_an_attempt_and_is_noted_when_they_run_out(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chalicelib.outbound.agent_replies as agent_replies

    def unreadable(store: Any, key: str) -> Any:
        raise StoreUnavailable("could not read conversation: ProvisionedThroughputExceededException")

    monkeypatch.setattr(agent_replies, "conversation_messages", unreadable)
    rig.replies.max_attempts = 3
    with pytest.raises(Unavailable):
        rig.agent_answers()  # 503: the helpdesk's own retry, or the schedule, tries again
    outcomes = []
    for _ in range(6):
        rig.clock.advance(minutes=2)
        outcomes.append(dict(rig.replies.retry_due().outcomes))
    # The ticket is read again too (the delivery failed): the comment is the ledger's already.
    assert outcomes[:2] == [{"retry_scheduled": 1, "waiting_retry": 1}, {"failed_noted": 1}]
    assert outcomes[2:] == [{}] * 4  # it stops: not every 2 minutes forever
    assert rig.ledger_state("501") == "failed" and rig.dispatcher.calls == []
    (note,) = [text for _, _, text in rig.helpdesk.notes]
    assert note == ("Not sent: socialdesk could not read this conversation's messages (its database did not answer), "
                    "tried 3 times and stopped. Send the answer again as a new comment, or answer on Messenger directly.")


def test_a_reply_that_may_have_been_posted_is_never_resent(rig: Rig) -> None:
    words = "Not confirmed: the connection to Messenger broke after the reply was sent, so it may have been posted."
    rig.dispatcher.script.append(ReplyFailed(UNAVAILABLE, words, transient=True, duplicate_risk=True))
    assert rig.agent_answers().outcome == "ambiguous_noted"
    rig.clock.advance(hours=1)
    assert rig.replies.retry_due().outcomes == {}
    assert len(rig.dispatcher.calls) == 1 and rig.helpdesk.notes[-1][2] == words
    assert rig.ledger_state("501") == "unknown"


def _claimed_then_died(rig: Rig) -> None:
    from chalicelib.outbound.agent_replies import ReplyRecord

    rig.helpdesk.comment("7", "501", "We refunded the second charge.")
    record = ReplyRecord(KEY, "501", "7", "We refunded the second charge.", claimed_at_ms=int(T0.timestamp() * 1000))
    assert rig.replies.ledger.claim_new(record, T0)  # an invocation claimed it, then died mid-send


def test_a_send_interrupted_mid_way_is_reported_not_resent(rig: Rig) -> None:
    _claimed_then_died(rig)
    rig.clock.advance(seconds=30)
    assert rig.deliver(comment_body()).outcome == "in_progress"
    rig.clock.advance(minutes=5)
    assert rig.deliver(comment_body()).outcome == "ambiguous_noted"
    assert rig.dispatcher.calls == []
    assert "may or may not have been posted" in rig.helpdesk.notes[-1][2]


def test_a_send_interrupted_mid_way_is_reported_by_the_schedule(rig: Rig) -> None:
    _claimed_then_died(rig)
    assert rig.replies.retry_due().outcomes == {}  # within the lease: maybe still sending
    rig.clock.advance(minutes=4)
    assert rig.replies.retry_due().outcomes == {"ambiguous_noted": 1}
    assert rig.replies.retry_due().outcomes == {}
    assert rig.ledger_state("501") == "unknown" and len(rig.helpdesk.notes) == 1 and rig.dispatcher.calls == []


def test_a_note_that_could_not_be_added_is_added_on_the_repeat(rig: Rig) -> None:
    rig.helpdesk.note_failures = 2
    rig.dispatcher.script.append(ReplyFailed(TOKEN_EXPIRED, "Not sent: token expired."))
    rig.agent_answers()
    assert rig.helpdesk.notes == []
    rig.deliver(comment_body())
    assert [n[2] for n in rig.helpdesk.notes] == ["Not sent: token expired."]


def test_an_empty_conversation_is_noted(rig: Rig) -> None:
    rig.helpdesk.comment("7", "501", "Hello?")
    assert rig.deliver(comment_body(key="messenger:dm:1:2")).outcome == "failed_noted"
    assert "no messages to answer" in rig.helpdesk.notes[0][2]


def test_one_failing_retry_does_not_stop_the_schedule_run(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    for comment_id in ("501", "502"):
        rig.dispatcher.script.append(ReplyFailed(RATE_LIMITED, "Not sent: slow down.", retry_at=T0, transient=True))
        rig.agent_answers(comment_id, f"Answer {comment_id}")
    real = rig.replies._attempt  # noqa: SLF001

    def flaky(record: Any, **options: Any) -> Any:
        if record.comment_id == "501":
            raise RuntimeError("a bug in one record")
        return real(record, **options)

    monkeypatch.setattr(rig.replies, "_attempt", flaky)
    rig.clock.advance(minutes=2)
    assert rig.replies.retry_due().outcomes == {"error": 1, "sent": 1}


# --- the retry queue -------------------------------------------------------------------------


def test_the_retry_queue_is_per_helpdesk_and_old_items_are_still_read(rig: Rig) -> None:
    """Items written before the helpdesk was part of the queue key (``RETRY#agent_reply``)
    are still found, filtered to this helpdesk, however many of another helpdesk come first."""
    rig.dispatcher.script.append(ReplyFailed(RATE_LIMITED, "Not sent: slow down.", retry_at=T0, transient=True))
    rig.agent_answers()
    item = rig.client.get_item(TableName=rig.store.table_name, Key=rig.replies.ledger.key(KEY, "501"))["Item"]
    assert item["gsi1pk"]["S"] == "RETRY#agent_reply#zendesk"
    # An upgrade: our pending retry still under the old key, behind 30 of a Freshdesk deployment's.
    rig.client.update_item(TableName=rig.store.table_name, Key=rig.replies.ledger.key(KEY, "501"),
                           UpdateExpression="SET gsi1pk = :old", ExpressionAttributeValues={":old": {"S": "RETRY#agent_reply"}})
    for n in range(30):
        rig.client.put_item(TableName=rig.store.table_name, Item={
            "pk": {"S": f"CONV#messenger:dm:1:{n}"}, "sk": {"S": f"REPLY#freshdesk#{n}"}, "item_type": {"S": "agent_reply"},
            "state": {"S": "retry"}, "gsi1pk": {"S": "RETRY#agent_reply"}, "gsi1sk": {"S": "2026-01-01T00:00:00.000000Z"}})
    rig.clock.advance(minutes=2)
    assert rig.replies.retry_due().outcomes == {"sent": 1}
    assert rig.ledger_state("501") == "sent"


# --- status ----------------------------------------------------------------------------------


def test_a_status_change_is_read_from_the_ticket_and_recorded(rig: Rig) -> None:
    rig.helpdesk.status = "solved"
    assert rig.deliver(status_body("Solved")).outcome == "status_updated"
    assert rig.store.get_conversation(KEY).ticket_status == "solved"
    # A late "open" notification: the ticket (still solved) wins.
    assert rig.deliver(status_body("Open", at=T0 - timedelta(minutes=1))).outcome == "status_unchanged"
    rig.helpdesk.status = "closed"
    assert rig.deliver(status_body("Closed", at=T0 + timedelta(minutes=1))).outcome == "status_updated"
    assert rig.store.get_conversation(KEY).ticket_status == "closed"


def test_a_status_change_of_an_older_ticket_is_ignored(rig: Rig) -> None:
    assert rig.deliver(status_body("Solved", ticket="3")).outcome == "ignored_other_ticket"
    assert rig.store.get_conversation(KEY).ticket_status == "open"


def test_the_ledger_and_the_status_rule_follow_the_helpdesk_adapter(rig: Rig) -> None:
    from chalicelib.outbound.agent_events import AgentEvent

    freshdesk = FakeHelpdesk(name="freshdesk", status="solved")
    replies = AgentReplies(rig.store, freshdesk, rig.dispatcher, rig.clock, sleep=lambda _s: None)
    rig.store.save_conversation(replace_helpdesk(rig.store.get_conversation(KEY), "freshdesk"))
    event = AgentEvent(kind="agent_comment", ticket_id="7", conversation_key=KEY, comment_id="901", text="Hi")
    assert replies.handle(event).value == "sent"
    assert rig.dispatcher.calls[-1]["key"] == "freshdesk:7:901"
    sks = {i["sk"]["S"] for i in rig.client.query(TableName=rig.store.table_name, KeyConditionExpression="pk = :pk",
                                                   ExpressionAttributeValues={":pk": {"S": f"CONV#{KEY}"}})["Items"]}
    assert "REPLY#freshdesk#901" in sks and "REPLY#zendesk#901" not in sks
    assert replies.handle(parse_event(status_body("Solved"))).value == "status_updated"
    assert rig.replies.handle(parse_event(status_body("Open"))).value == "ignored_other_ticket"  # zendesk's replies


def replace_helpdesk(conversation: Conversation, name: str) -> Conversation:
    conversation.helpdesk = name
    return conversation


def replace_ticket(conversation: Conversation, ticket_id: str) -> Conversation:
    conversation.ticket_id, conversation.ticket_status = ticket_id, "new"
    return conversation
