"""Tier 2: every real payload signed as its platform signs it, POSTed over real HTTP to
``/webhooks/<route>``, the stream synced into the Zendesk sandbox; then what the
helpdesk holds, what the table holds, and that nothing was quarantined."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conformance.expectations import PAYLOADS, SEQUENCES
from tests.conformance.realpay import (
    Expect,
    Helpdesk,
    payload_bytes,
    route_of,
    sequence_steps,
)
from tests.integration.conftest import Stack

PAIRS = {name: expect.after for name, expect in PAYLOADS.items() if expect.after}


def deliver(stack: Stack, route: str, body: bytes | dict[str, Any], expect: Expect) -> None:
    """POST one delivery, check the platform's acknowledgement, sync the stream."""
    answer = stack.post_webhook(route, body)
    assert answer.status == 200, answer.body
    counts = {k: answer.body[k] for k in ("stored", "statuses", "ignored", "quarantined")}
    assert counts == {
        "stored": len(expect.messages),
        "statuses": len(expect.statuses),
        "ignored": len(expect.ignored),
        "quarantined": 0,
    }
    stack.sync()
    assert stack.items("QUARANTINE#") == []
    assert stack.parked_in_queue() == 0


def stored_item(stack: Stack, key: str, message_id: str) -> dict[str, Any]:
    found = [
        i for i in stack.items(f"CONV#{key}") if i["pk"]["S"] == f"CONV#{key}" and i["sk"]["S"] == f"MSG#{message_id}"
    ]
    assert len(found) == 1, f"{message_id} is not stored under {key}"
    return found[0]


def assert_stored(stack: Stack, expect: Expect) -> None:
    for message in expect.messages:
        stored_item(stack, message.key, message.id)
    for status in expect.statuses:
        assert stored_item(stack, status.key, status.id)["delivery_status"]["S"] == status.status
    if not expect.messages and not expect.statuses:
        assert stack.items("CONV#") == [], "an ignored event left something in the table"


def requester_name(stack: Stack, ticket: dict[str, Any]) -> str:
    [user] = [u for u in stack.sandbox.users() if u["id"] == ticket["requester_id"]]
    return str(user["name"])


def channel_notes(key: str) -> list[str]:
    """The start of the notes a channel adds to a new ticket (``Channel.ticket_note``)."""
    if key.startswith("facebook:review:"):  # recommendations cannot be answered through the Graph API
        return ["Facebook no longer lets apps read or answer Page recommendations (Graph API v22.0 and later)"]
    return []


def assert_helpdesk(stack: Stack, expect: Expect) -> None:
    """The sandbox holds what ``expect.helpdesk`` says, for the delivery's one message."""
    tickets = stack.tickets()
    if expect.helpdesk is Helpdesk.NO_TICKET:
        assert tickets == []
        return
    [message] = expect.messages
    [ticket] = tickets
    assert ticket["external_id"] == message.key
    comments = stack.sandbox.comments(ticket["id"])
    if expect.helpdesk is Helpdesk.TICKET:
        assert requester_name(stack, ticket) == message.author_label
        assert [c["public"] for c in comments][:1] == [True] and sum(c["public"] for c in comments) == 1
        assert comments[0]["body"].startswith(message.text.strip() or "(no text)")
        notes = [c["body"] for c in comments if not c["public"]]
        assert [note.split(",", 1)[0] for note in notes] == channel_notes(message.key)
        return
    note = comments[-1]
    assert not note["public"], "an edit or deletion must reach the ticket as an internal note"
    if message.deleted:
        assert "deleted" in note["body"]
        assert "deleted_at" in stored_item(stack, message.key, message.edit_of or "")
    else:
        assert "edited" in note["body"] and message.text in note["body"]


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_reaches_the_helpdesk_as_documented(stack: Stack, name: str) -> None:
    expect = PAYLOADS[name]
    deliver(stack, route_of(name), payload_bytes(name), expect)
    assert_stored(stack, expect)
    assert_helpdesk(stack, expect)


@pytest.mark.parametrize("name", sorted(PAIRS), ids=[f"{name} after {PAIRS[name]}" for name in sorted(PAIRS)])
def test_a_change_of_a_ticketed_message_is_an_internal_note(stack: Stack, name: str) -> None:
    original = PAIRS[name]
    deliver(stack, route_of(original), payload_bytes(original), PAYLOADS[original])
    assert_helpdesk(stack, PAYLOADS[original])
    change = PAYLOADS[name]
    deliver(stack, route_of(name), payload_bytes(name), change)
    assert_helpdesk(stack, Expect(Helpdesk.NOTE, change.messages))


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_sequence_reaches_the_helpdesk_as_documented(stack: Stack, name: str) -> None:
    for step, expect in zip(sequence_steps(name), SEQUENCES[name], strict=True):
        deliver(stack, route_of(name), step, expect)
        assert_stored(stack, expect)
        assert_helpdesk(stack, expect)
