"""What `make demo` prints for a ticket, read back over HTTP from the helpdesk sandboxes.

The tickets are written by the bridge's own helpdesk adapter, so the demo reads what a
real run leaves in the helpdesk.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from local.defaults import SANDBOX_FRESHDESK_API_KEY
from local.demo import _freshdesk_lookup, describe_ticket, is_sandbox
from local.freshdesk_sandbox import FreshdeskSandbox

KEY = "messenger:dm:448242228374517:7001234567890123"


def chat_message(message_id: str, text: str) -> SocialMessage:
    return SocialMessage(
        platform=Platform.MESSENGER, kind=Kind.DIRECT_MESSAGE, direction=Direction.INBOUND, message_id=message_id,
        conversation_key=KEY, account_id="448242228374517", author=Author(platform_id="7001234567890123", display_name="Dana Reyes"),
        text=text, created_at=datetime(2026, 11, 30, 9, 15, tzinfo=timezone.utc),
    )


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskSandbox]:
    sandbox = FreshdeskSandbox(port=0, api_key=SANDBOX_FRESHDESK_API_KEY).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def test_a_freshdesk_ticket_shows_its_first_message_and_its_status_in_words(freshdesk: FreshdeskSandbox) -> None:
    helpdesk = FreshdeskHelpdesk(freshdesk.url, SANDBOX_FRESHDESK_API_KEY)
    first = chat_message("m_1", "I was charged twice for order 88-1203.\nCard ending 4242.")
    requester = helpdesk.ensure_requester(first.platform, first.author)
    ticket = helpdesk.open_ticket(first, requester, idempotency_key="demo-1")
    helpdesk.append_message(ticket.ticket_id, chat_message("m_2", "Any news?"), requester)

    found = _freshdesk_lookup(freshdesk.url, sandbox=True)(KEY)
    assert found is not None
    lines = describe_ticket(KEY, *found)

    assert lines[0] == f"#{ticket.ticket_id}  {found[0]['subject']}"
    assert lines[1].startswith("    status Open · tags ") and lines[1].endswith(f"· conversation {KEY}")
    assert lines[2:] == ["    · I was charged twice for order 88-1203.", "    · Any news?"]

    freshdesk.set_status(ticket.ticket_id, 4)
    assert describe_ticket(KEY, *_freshdesk_lookup(freshdesk.url, sandbox=True)(KEY))[1].startswith("    status Resolved")


def test_credentials_follow_what_make_run_started_not_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # A helpdesk on this machine that make run did not start is the user's: their key, or a clear stop.
    state = {"helpdesk": "freshdesk", "helpdesk_url": "http://127.0.0.1:9", "sandboxes": ["google", "x"]}
    assert not is_sandbox(state, "freshdesk") and is_sandbox(state, "google")
    monkeypatch.delenv("FRESHDESK_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="FRESHDESK_API_KEY"):
        _freshdesk_lookup(state["helpdesk_url"], sandbox=False)
