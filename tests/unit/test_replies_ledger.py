"""The sent-answer ledger: each idempotency key is posted at most once, in memory and in DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from chalicelib.models import Kind, Platform
from chalicelib.replies import (
    DynamoLedger,
    MemoryLedger,
    PendingSend,
    ReplyDispatcher,
    ReplyFailed,
    ReplyTarget,
    SentReply,
)
from chalicelib.replies.base import ReplyRequest

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
TARGET = ReplyTarget(Platform.X, Kind.MENTION, "x:tweets:1:2", "1", "2", "99", NOW)


class Scripted:
    """A sender that answers from a script: a SentReply or a ReplyFailed per call."""

    platforms = frozenset({Platform.X})

    def __init__(self, *outcomes: SentReply | ReplyFailed) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[ReplyRequest] = []

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        self.calls.append(request)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, ReplyFailed):
            raise outcome
        return outcome


def test_a_maybe_posted_answer_is_never_sent_again_automatically() -> None:
    lost = ReplyFailed("unavailable", "Not confirmed: ...", transient=True, duplicate_risk=True)
    sender = Scripted(lost, SentReply("never"))
    dispatcher = ReplyDispatcher({Platform.X: sender}, now=lambda: NOW)
    with pytest.raises(ReplyFailed):
        dispatcher.send(TARGET, "hello", idempotency_key="zd:1")
    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(TARGET, "hello", idempotency_key="zd:1")
    assert caught.value.kind == "unavailable" and caught.value.duplicate_risk and not caught.value.transient
    assert caught.value.plain_words == (
        "Not sent: an earlier attempt to send this reply did not finish, so it may already be on X. Check the "
        "conversation on X; if the reply is not there, send it again as a new reply."
    )
    assert len(sender.calls) == 1


def test_a_certainly_unsent_answer_can_be_retried() -> None:
    refused = ReplyFailed("rate_limited", "Not sent: ...", retry_at=NOW, transient=True)
    sender = Scripted(refused, SentReply("42"))
    dispatcher = ReplyDispatcher({Platform.X: sender}, now=lambda: NOW)
    with pytest.raises(ReplyFailed):
        dispatcher.send(TARGET, "hello", idempotency_key="zd:2")
    assert dispatcher.send(TARGET, "hello", idempotency_key="zd:2") == SentReply("42")
    assert dispatcher.send(TARGET, "hello", idempotency_key="zd:2") == SentReply("42")
    assert len(sender.calls) == 2


def test_refusals_before_sending_claim_nothing() -> None:
    sender = Scripted(SentReply("1"))
    dispatcher = ReplyDispatcher({Platform.X: sender}, now=lambda: NOW)
    with pytest.raises(ReplyFailed):
        dispatcher.send(TARGET, "x" * 300, idempotency_key="zd:3")  # too long: refused before the ledger
    assert dispatcher.send(TARGET, "short", idempotency_key="zd:3").platform_message_id == "1"


def test_memory_ledger() -> None:
    ledger = MemoryLedger()
    assert ledger.claim("k", NOW) is None
    assert ledger.claim("k", NOW) == PendingSend(NOW)
    ledger.release("k")
    assert ledger.claim("k", NOW) is None
    ledger.complete("k", SentReply("1"))
    ledger.release("k")  # a completed answer is never released
    assert ledger.claim("k", NOW) == SentReply("1")


@pytest.fixture
def dynamo() -> Iterator[DynamoLedger]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
        client.create_table(
            TableName="messages",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoLedger("messages", client)


def test_dynamo_ledger_claims_once_and_remembers_the_result(dynamo: DynamoLedger) -> None:
    assert dynamo.claim("zendesk:7:comment:1", NOW) is None
    assert dynamo.claim("zendesk:7:comment:1", NOW) == PendingSend(NOW)
    dynamo.release("zendesk:7:comment:1")
    assert dynamo.claim("zendesk:7:comment:1", NOW) is None
    sent = SentReply("m_1", visible_note="We've sent you a private message.", via="private_reply",
                     visible_note_id="c_2", warnings=("a note",))
    dynamo.complete("zendesk:7:comment:1", sent)
    dynamo.release("zendesk:7:comment:1")
    assert dynamo.claim("zendesk:7:comment:1", NOW) == sent
    item = dynamo._client.get_item(TableName="messages", Key={"pk": {"S": "REPLY#zendesk:7:comment:1"}, "sk": {"S": "REPLY"}})["Item"]
    assert item["state"]["S"] == "sent" and int(item["expires_at"]["N"]) > NOW.timestamp()


def test_a_dispatcher_on_dynamo_posts_once(dynamo: DynamoLedger) -> None:
    sender = Scripted(SentReply("t1"))
    first = ReplyDispatcher({Platform.X: sender}, now=lambda: NOW, ledger=dynamo)
    second = ReplyDispatcher({Platform.X: sender}, now=lambda: NOW, ledger=dynamo)  # another Lambda
    assert first.send(TARGET, "hello", idempotency_key="zd:9").platform_message_id == "t1"
    assert second.send(TARGET, "hello", idempotency_key="zd:9").platform_message_id == "t1"
    assert len(sender.calls) == 1
