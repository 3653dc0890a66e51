"""Helpdesk events: Zendesk signatures, our trigger bodies, deduplication, and the reply ledger.

DynamoDB is moto in-process (the table built from ``infra/template.json``); the platforms
are a scripted fake dispatcher and the helpdesk a fake that records internal notes.
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
from moto import mock_aws

from chalicelib.agent_events import (
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
from chalicelib.agent_replies import AgentReplies, Outcome, first_response
from chalicelib.errors import BadRequest, Unauthorized, Unavailable
from chalicelib.helpdesk.base import HelpdeskUnavailable, TicketRef
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.replies.base import RATE_LIMITED, TOKEN_EXPIRED, UNAVAILABLE, ReplyFailed, ReplyTarget, SentReply
from chalicelib.store import Conversation, MessageStore

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


@dataclass
class FakeHelpdesk:
    name: str = "zendesk"
    notes: list[tuple[str, str, str]] = field(default_factory=list)
    status: str = "solved"
    note_failures: int = 0

    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:
        if self.note_failures:
            self.note_failures -= 1
            raise HelpdeskUnavailable("zendesk is down")
        self.notes.append((ticket_id, f"{message.platform.value}:{message.message_id}", text))
        return TicketRef(ticket_id, "open")

    def ticket_status(self, ticket_id: str) -> TicketRef:
        return TicketRef(ticket_id, self.status)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    from local.resources import create_local_resources

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_SESSION_TOKEN": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        resources = create_local_resources(dynamodb=client, sqs=boto3.client("sqs", region_name="us-east-1"),
                                           template_path=ROOT / "infra" / "template.json", stage="unit")
        yield client, resources.table_name


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

    def ledger_state(self, comment_id: str) -> str | None:
        record = self.replies.ledger.get(KEY, comment_id)
        return record.state if record else None


@pytest.fixture
def rig(aws: tuple[Any, str]) -> Rig:
    client, table = aws
    store = MessageStore(table, client)
    clock = Clock()
    dispatcher, helpdesk = FakeDispatcher(), FakeHelpdesk()
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


def comment_body(comment_id: str = "501", text: str = "We refunded the second charge.", *, tags: str = "socialdesk messenger direct_message",
                 email: str = "maria@acme.example", ticket: str = "7", key: str = KEY) -> bytes:
    rendered = {
        "socialdesk_event": "agent_comment", "ticket_id": ticket, "external_id": key, "status": "Open", "tags": tags,
        "updated_at": T0.strftime("%Y-%m-%dT%H:%M:%SZ"), "comment_id": comment_id, "author_id": "9001",
        "author_email": email, "author_name": "Maria", "comment": text,
    }
    return json.dumps(rendered).encode()


def status_body(status: str = "Solved", *, ticket: str = "7", at: datetime = T0) -> bytes:
    return json.dumps({
        "socialdesk_event": "ticket_status", "ticket_id": ticket, "external_id": KEY, "status": status,
        "tags": "socialdesk", "updated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "author_id": "9001",
        "author_email": "maria@acme.example",
    }).encode()


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
        verify_signature(headers, comment_body(text="Send me your password"), SECRET, T0)


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


def render(template: str, values: dict[str, str]) -> bytes:
    """Fill a trigger body the way Zendesk does for a JSON webhook (values JSON-escaped)."""
    out = template
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", json.dumps(value)[1:-1])
    return out.encode()


def test_the_trigger_bodies_parse() -> None:
    values = {"ticket.id": "7", "ticket.external_id": KEY, "ticket.status": "Open",
              "ticket.tags": "socialdesk messenger socialdesk_private", "ticket.updated_at_with_timestamp": "2026-11-20T14:00:00Z",
              "ticket.latest_public_comment.id": "501", "ticket.latest_public_comment.value": 'Say "hi"\nThanks',
              "current_user.id": "9001", "current_user.email": "maria@acme.example", "current_user.name": "Maria"}
    event = parse_event(render(COMMENT_EVENT_BODY, values))
    assert (event.kind, event.ticket_id, event.conversation_key, event.comment_id) == ("agent_comment", "7", KEY, "501")
    assert event.text == 'Say "hi"\nThanks' and event.private and event.status == "open"
    assert event.event_id == "comment:7:501"
    status = parse_event(render(STATUS_EVENT_BODY, {**values, "ticket.status": "Solved"}))
    assert (status.kind, status.status, status.event_id) == ("ticket_status", "solved", "status:7:solved:20261120T140000Z")


def test_an_unescaped_comment_is_still_read() -> None:
    raw = COMMENT_EVENT_BODY
    for name, value in {"ticket.id": "7", "ticket.external_id": KEY, "ticket.latest_public_comment.id": "502",
                        "ticket.tags": "socialdesk", "current_user.email": "maria@acme.example"}.items():
        raw = raw.replace("{{" + name + "}}", value)
    raw = raw.replace("{{ticket.latest_public_comment.value}}", 'Use the code "SPRING" at checkout\n\tBye')
    event = parse_event(raw.encode())
    assert (event.comment_id, event.text) == ("502", 'Use the code "SPRING" at checkout\n\tBye')


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"", "empty"),
        (b"not json", "not valid JSON"),
        (comment_body(comment_id=""), "latest_public_comment.id"),
        (json.dumps({"socialdesk_event": "something_else", "ticket_id": "7"}).encode(), "socialdesk_event"),
        (json.dumps({"socialdesk_event": "ticket_status", "ticket_id": ""}).encode(), "ticket_id"),
        (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
        (comment_body(text="\ud800 lone"), "not valid Unicode"),
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
    assert log.claim("zendesk", "comment:7:501", T0)
    assert not log.claim("zendesk", "comment:7:501", T0 + timedelta(seconds=5))
    assert log.claim("zendesk", "comment:7:501", T0 + timedelta(minutes=4))  # left "processing": taken over
    log.done("zendesk", "comment:7:501", "sent", T0)
    assert not log.claim("zendesk", "comment:7:501", T0 + timedelta(hours=1))  # done stays done
    assert log.claim("zendesk", "comment:7:502", T0)
    log.release("zendesk", "comment:7:502")
    assert log.claim("zendesk", "comment:7:502", T0)
    item = client.get_item(TableName=table, Key=EventLog.key("zendesk", "comment:7:501"))["Item"]
    assert int(item["expires_at"]["N"]) > T0.timestamp()


def test_a_duplicate_event_sends_one_reply(rig: Rig) -> None:
    first = rig.deliver(comment_body(), invocation="111")
    again = rig.deliver(comment_body(), invocation="111")  # Zendesk's retry of the same invocation
    other = rig.deliver(comment_body(), invocation="222")  # another trigger firing for the same comment
    assert (first.outcome, first.duplicate) == ("sent", False)
    assert again.duplicate and other.duplicate
    assert len(rig.dispatcher.calls) == 1


def test_a_repeat_that_slips_past_the_event_log_still_sends_once(rig: Rig) -> None:
    rig.deliver(comment_body())
    rig.client.delete_item(TableName=rig.store.table_name, Key=EventLog.key("zendesk", "comment:7:501"))
    assert rig.deliver(comment_body()).outcome == Outcome.ALREADY_SENT.value
    assert len(rig.dispatcher.calls) == 1


def test_a_failure_releases_the_claim_and_answers_503(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(event: Any) -> Any:
        calls.append(event)
        raise HelpdeskUnavailable("zendesk down")

    monkeypatch.setattr(rig.replies, "handle", broken)
    with pytest.raises(Unavailable):
        rig.deliver(status_body())
    monkeypatch.undo()
    assert rig.deliver(status_body()).outcome == Outcome.STATUS_UPDATED.value  # Zendesk's retry is processed


# --- replies ---------------------------------------------------------------------------------


def test_a_public_agent_comment_is_sent_stored_as_outbound_and_timed(rig: Rig) -> None:
    result = rig.deliver(comment_body())
    assert result.outcome == "sent"
    (call,) = rig.dispatcher.calls
    assert call["text"] == "We refunded the second charge." and call["private"] is False
    assert call["key"] == "zendesk:7:501"
    assert (call["target"].platform, call["target"].customer_id, call["target"].reply_to_id) == (Platform.MESSENGER, PSID, "m_in_1")
    stored = rig.store.get_message(KEY, "m_sent_1")
    assert stored is not None and stored.direction is Direction.OUTBOUND and stored.text == "We refunded the second charge."
    assert rig.ledger_state("501") == "sent"
    times = first_response(rig.store, KEY)
    assert times is not None and times["first_response_seconds"] == 30 * 60 and times["responses"] == 1
    rig.clock.advance(minutes=10)
    rig.deliver(comment_body(comment_id="502", text="Anything else?"))
    later = first_response(rig.store, KEY)
    assert later is not None and later["first_response_at"] == times["first_response_at"] and later["responses"] == 2
    assert [text for _, _, text in rig.helpdesk.notes] == ["Sent to the customer on Messenger."] * 2  # the agent sees each went out


def test_the_private_tag_asks_for_a_private_answer(rig: Rig) -> None:
    rig.deliver(comment_body(tags="socialdesk facebook comment socialdesk_private"))
    assert rig.dispatcher.calls[0]["private"] is True


def test_the_bridge_own_comments_are_ignored(rig: Rig) -> None:
    assert rig.deliver(comment_body(email="Agent@Socialdesk.local")).outcome == "ignored_own_comment"
    assert rig.dispatcher.calls == []


def test_a_ticket_without_a_conversation_key_is_ignored(rig: Rig) -> None:
    assert rig.deliver(comment_body(key="")).outcome == "ignored_not_bridged"


def test_a_token_expired_failure_becomes_a_note_in_plain_words(rig: Rig) -> None:
    words = "Not sent: the Facebook Page's access token expired. Reconnect the Page in socialdesk settings."
    rig.dispatcher.script.append(ReplyFailed(TOKEN_EXPIRED, words))
    assert rig.deliver(comment_body()).outcome == "failed_noted"
    assert rig.helpdesk.notes == [("7", "messenger:zendesk-comment-501", words)]
    assert rig.ledger_state("501") == "failed"
    rig.client.delete_item(TableName=rig.store.table_name, Key=EventLog.key("zendesk", "comment:7:501"))
    assert rig.deliver(comment_body()).outcome == "already_handled"
    assert len(rig.dispatcher.calls) == 1 and len(rig.helpdesk.notes) == 1


def test_a_rate_limit_is_noted_with_the_retry_time_and_retried_once_due(rig: Rig) -> None:
    retry_at = T0 + timedelta(minutes=5)
    words = "Not sent: Messenger is limiting how much this Facebook Page can send. It can be sent again after 14:05 UTC."
    rig.dispatcher.script.append(ReplyFailed(RATE_LIMITED, words, retry_at=retry_at, transient=True))
    assert rig.deliver(comment_body()).outcome == "retry_scheduled"
    ((_, _, note),) = rig.helpdesk.notes
    assert note == f"{words} socialdesk is retrying at 14:05 UTC."
    assert rig.ledger_state("501") == "retry"

    assert rig.replies.retry_due().outcomes == {}  # not due yet
    rig.clock.advance(minutes=6)
    assert rig.replies.retry_due().outcomes == {"sent": 1}
    assert rig.replies.retry_due().outcomes == {}
    assert len(rig.dispatcher.calls) == 2 and rig.ledger_state("501") == "sent"
    assert rig.store.get_message(KEY, "m_sent_2") is not None


def test_retries_stop_after_the_last_attempt_with_a_note(rig: Rig) -> None:
    rig.replies.max_attempts = 2
    failure = ReplyFailed(UNAVAILABLE, "Not sent: Messenger could not be reached. Nothing was posted; it is safe to send again.",
                          transient=True)
    rig.dispatcher.script.extend([failure, failure])
    rig.deliver(comment_body())
    rig.clock.advance(minutes=2)
    assert rig.replies.retry_due().outcomes == {"failed_noted": 1}
    assert rig.ledger_state("501") == "failed"
    assert "tried 2 times and stopped" in rig.helpdesk.notes[-1][2]
    assert len(rig.helpdesk.notes) == 2  # the first failure, then the end


def test_a_reply_that_may_have_been_posted_is_never_resent(rig: Rig) -> None:
    words = "Not confirmed: the connection to Messenger broke after the reply was sent, so it may have been posted."
    rig.dispatcher.script.append(ReplyFailed(UNAVAILABLE, words, transient=True, duplicate_risk=True))
    assert rig.deliver(comment_body()).outcome == "ambiguous_noted"
    rig.clock.advance(hours=1)
    assert rig.replies.retry_due().outcomes == {}
    assert len(rig.dispatcher.calls) == 1 and rig.helpdesk.notes[-1][2] == words
    assert rig.ledger_state("501") == "unknown"


def test_a_send_interrupted_mid_way_is_reported_not_resent(rig: Rig) -> None:
    from chalicelib.agent_replies import ReplyRecord
    from chalicelib.agent_events import parse_event as parse

    record = ReplyRecord.from_event(parse(comment_body()), T0)
    assert rig.replies.ledger.claim_new(record, T0)  # an invocation claimed it, then died
    rig.clock.advance(seconds=30)
    assert rig.deliver(comment_body()).outcome == "in_progress"
    rig.clock.advance(minutes=5)
    rig.client.delete_item(TableName=rig.store.table_name, Key=EventLog.key("zendesk", "comment:7:501"))
    assert rig.deliver(comment_body()).outcome == "ambiguous_noted"
    assert rig.dispatcher.calls == []
    assert "may or may not have been posted" in rig.helpdesk.notes[-1][2]


def test_a_send_interrupted_mid_way_is_reported_by_the_schedule(rig: Rig) -> None:
    from chalicelib.agent_replies import ReplyRecord
    from chalicelib.agent_events import parse_event as parse

    record = ReplyRecord.from_event(parse(comment_body()), T0)
    assert rig.replies.ledger.claim_new(record, T0)  # claimed, then the invocation died
    assert rig.replies.retry_due().outcomes == {}  # within the lease: maybe still sending
    rig.clock.advance(minutes=4)
    assert rig.replies.retry_due().outcomes == {"ambiguous_noted": 1}
    assert rig.replies.retry_due().outcomes == {}
    assert rig.ledger_state("501") == "unknown" and len(rig.helpdesk.notes) == 1 and rig.dispatcher.calls == []


def test_a_note_that_could_not_be_added_is_added_on_the_repeat(rig: Rig) -> None:
    rig.helpdesk.note_failures = 2
    rig.dispatcher.script.append(ReplyFailed(TOKEN_EXPIRED, "Not sent: token expired."))
    rig.deliver(comment_body())
    assert rig.helpdesk.notes == []
    rig.client.delete_item(TableName=rig.store.table_name, Key=EventLog.key("zendesk", "comment:7:501"))
    rig.deliver(comment_body())
    assert [n[2] for n in rig.helpdesk.notes] == ["Not sent: token expired."]


def test_an_empty_conversation_is_noted(rig: Rig) -> None:
    assert rig.deliver(comment_body(key="messenger:dm:1:2")).outcome == "failed_noted"
    assert "no messages to answer" in rig.helpdesk.notes[0][2]


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
    freshdesk = FakeHelpdesk(name="freshdesk", status="solved")
    replies = AgentReplies(rig.store, freshdesk, rig.dispatcher, rig.clock, sleep=lambda _s: None)
    rig.store.save_conversation(replace_helpdesk(rig.store.get_conversation(KEY), "freshdesk"))
    event = parse_event(comment_body(comment_id="901"))
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
