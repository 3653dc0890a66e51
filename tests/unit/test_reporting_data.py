"""Reading the table: items fold into one set of facts per conversation; the Scan pages and projects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from chalicelib.reporting.data import ParkedFact, ReplyFact, TableReader, conversations_from_items


def S(value: str) -> dict[str, str]:  # DynamoDB's own type letter
    return {"S": value}


def message(key: str, number: int, at: str, *, direction: str = "in", kind: str = "mention") -> dict[str, Any]:
    return {"pk": S(f"CONV#{key}"), "sk": S(f"MSG#{number}"), "platform": S(key.split(":")[0]), "direction": S(direction),
            "created_at": S(at), "message": S(json.dumps({"kind": kind, "text": "hello"}))}


def test_items_fold_into_conversations() -> None:
    dm = "x:dm:brand:7"
    items = [
        message("x:tweets:brand:1", 1, "2026-03-10T10:00:00Z"),
        message("x:tweets:brand:1", 2, "2026-03-10T10:30:00Z"),
        message("x:tweets:brand:1", 3, "2026-03-10T10:05:00Z", direction="out", kind="reply"),
        {"pk": S("CONV#x:tweets:brand:1"), "sk": S("CONV"),
         "state": S(json.dumps({"ticket_id": "41", "ticket_status": "open", "parked": 1}))},
        {"pk": S("CONV#x:tweets:brand:1"), "sk": S("RESPONSE"), "first_response_seconds": {"N": "300"},
         "last_response_at": S("2026-03-10T10:05:00Z")},
        {"pk": S("CONV#x:tweets:brand:1"), "sk": S("PARKED#000000000000"), "reason": S("Zendesk answered 503"),
         "parked_at": S("2026-03-10T10:31:00Z")},
        {"pk": S("CONV#x:tweets:brand:1"), "sk": S("REPLY#zendesk#1"), "state": S("sent"),
         "created_at": S("2026-03-10T10:04:00Z")},
        {"pk": S("CONV#x:tweets:brand:1"), "sk": S("REPLY#zendesk#2"), "state": S("failed"),
         "failure_kind": S("token_expired"), "note": S("Not sent: token expired."), "created_at": S("2026-03-10T10:40:00Z")},
        message(dm, 1, "2026-03-10T09:00:00Z", kind="direct_message"),
        {"pk": S(f"CONV#{dm}"), "sk": S("ASIDE#000000000003"), "reason": S("422"), "parked_at": S("2026-03-10T09:01:00Z")},
        {"pk": S(f"CONV#{dm}"), "sk": S("PARKID#1")},  # the duplicate check: not a second parked message
        {"pk": S("REQUESTER#zendesk#x#7"), "sk": S("REQUESTER")},  # not a conversation
        {"pk": S("CONV#x:tweets:brand:empty"), "sk": S("CONV"), "state": S("{}")},  # nothing to show
    ]
    found = {facts.key: facts for facts in conversations_from_items(items)}
    assert set(found) == {"x:tweets:brand:1", dm}
    mention = found["x:tweets:brand:1"]
    assert (mention.platform, mention.private, mention.ticket_id, mention.ticket_status) == ("x", False, "41", "open")
    assert mention.inbound == [datetime(2026, 3, 10, 10, 0, tzinfo=UTC), datetime(2026, 3, 10, 10, 30, tzinfo=UTC)]
    assert mention.outbound == [datetime(2026, 3, 10, 10, 5, tzinfo=UTC)]
    assert mention.response_seconds == 300
    assert mention.waiting_since() == datetime(2026, 3, 10, 10, 30, tzinfo=UTC)
    assert mention.parked == [ParkedFact(datetime(2026, 3, 10, 10, 31, tzinfo=UTC), "Zendesk answered 503", aside=False)]
    assert mention.reply_problems == [
        ReplyFact("failed", "token_expired", "Not sent: token expired.", datetime(2026, 3, 10, 10, 40, tzinfo=UTC))]
    assert found[dm].private is True
    assert [p.aside for p in found[dm].parked] == [True]
    assert found[dm].label == dm and mention.label == "#41 · x:tweets:brand:1"


class PagedClient:
    """Answers ``scan`` a page at a time, as DynamoDB does past 1 MB, and keeps the requests."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        index = len(self.requests) - 1
        page: dict[str, Any] = {"Items": self.pages[index]}
        if index + 1 < len(self.pages):
            page["LastEvaluatedKey"] = {"pk": S(f"page-{index}"), "sk": S("x")}
        return page


def test_the_scan_reads_every_page_without_raw_payloads() -> None:
    client = PagedClient([
        [message("x:tweets:brand:1", 1, "2026-03-10T10:00:00Z")],
        [],  # a page the filter emptied: the scan goes on
        [message("x:tweets:brand:1", 2, "2026-03-10T11:00:00Z"), message("line:dm:d:2", 1, "2026-03-10T11:00:00Z")],
    ])
    facts = TableReader(client, "messages").conversations()  # type: ignore[arg-type]
    assert sorted((f.key, len(f.inbound)) for f in facts) == [("line:dm:d:2", 1), ("x:tweets:brand:1", 2)]
    assert [r.get("ExclusiveStartKey") for r in client.requests] == [None, {"pk": S("page-0"), "sk": S("x")},
                                                                    {"pk": S("page-1"), "sk": S("x")}]
    first = client.requests[0]
    projected = set(first["ExpressionAttributeNames"].values())
    # Never a payload nor a complaint's words (crisis items keep the text for the detector).
    assert not {"raw", "text"} & projected and {"pk", "sk", "state", "message", "created_at"} <= projected
    assert first["TableName"] == "messages"
    assert sorted(value["S"] for value in first["ExpressionAttributeValues"].values()) == ["CONV#", "CRISIS#", "OPS#TOKENS"]


def test_an_answer_held_for_a_lead_is_listed_as_waiting_for_approval() -> None:
    from chalicelib.reporting.html import LABELS

    note = "Waiting for approval by a lead: this public answer goes to a sensitive conversation (the ticket is urgent)."
    items = [
        message("x:tweets:brand:9", 1, "2026-03-10T10:00:00Z"),
        {"pk": S("CONV#x:tweets:brand:9"), "sk": S("REPLY#zendesk#5"), "state": S("held"), "note": S(note),
         "created_at": S("2026-03-10T10:10:00Z")},
        {"pk": S("CONV#x:tweets:brand:9"), "sk": S("REPLY#zendesk#6"), "state": S("withdrawn"),
         "created_at": S("2026-03-10T10:20:00Z")},  # dropped by a lead: nothing to do any more
    ]
    [facts] = conversations_from_items(items)
    assert facts.reply_problems == [ReplyFact("held", "awaiting_approval", note, datetime(2026, 3, 10, 10, 10, tzinfo=UTC))]
    for language in ("en", "es"):  # the page names the state, the reason and what to do, in words
        assert {"state_held", "kind_awaiting_approval", "advice_awaiting_approval"} <= set(LABELS[language])


def test_messages_are_reported_as_the_store_writes_them() -> None:
    """The report reads the items the webhook path writes (``store.message_item``), whatever
    attributes the store keeps at the top level, and still reads items written before."""
    from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
    from chalicelib.store.ingest import message_item

    def stored(message_id: str, at: datetime, direction: Direction, kind: Kind) -> dict[str, Any]:
        return message_item(
            SocialMessage(
                platform=Platform.INSTAGRAM, kind=kind, direction=direction, message_id=message_id,
                conversation_key="instagram:dm:17841400000000001:5500", account_id="17841400000000001",
                author=Author(platform_id="5500"), text="where is my order", created_at=at,
            ),
            ttl_days=30,
        )

    items = [
        stored("q1", datetime(2026, 3, 10, 9, 0, tzinfo=UTC), Direction.INBOUND, Kind.DIRECT_MESSAGE),
        stored("a1", datetime(2026, 3, 10, 9, 7, tzinfo=UTC), Direction.OUTBOUND, Kind.DIRECT_MESSAGE),
        message("x:tweets:brand:1", 1, "2026-03-10T10:00:00Z"),  # written before: platform, direction, created_at on top
    ]
    found = {facts.key: facts for facts in conversations_from_items(items)}
    dm = found["instagram:dm:17841400000000001:5500"]
    assert (dm.platform, dm.private) == ("instagram", True)
    assert dm.inbound == [datetime(2026, 3, 10, 9, 0, tzinfo=UTC)]
    assert dm.outbound == [datetime(2026, 3, 10, 9, 7, tzinfo=UTC)]
    assert found["x:tweets:brand:1"].inbound == [datetime(2026, 3, 10, 10, 0, tzinfo=UTC)]
