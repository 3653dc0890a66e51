"""`make demo`'s approval part: a sensitive public answer waits for a lead, then goes out once.

By the time this runs, ``local.demo_replies`` has answered every ticket as an agent. The answer
to the angry public X post of an author with 182,000 followers (``local.demo_triage``) was held:
the approval rule (``chalicelib/outbound/approval.py``) holds public answers to customers with
100,000 followers or more, and to urgent tickets. The ticket has the note "Waiting for approval
by a lead". Here a lead adds the tag ``socialdesk_approved`` (Zendesk: a ticket update in the
web UI, which fires the approval trigger ``make run`` installed; Freshdesk: a scenario adding
the tag with a private note, which fires the automation rule), and the answer reaches the X
sandbox once; the same approval a second time sends nothing.
"""

from __future__ import annotations

import time
from typing import Any

from local.demo_replies import FreshdeskAgent, PlatformSandboxes, ZendeskAgent, _local, _plain, _post_json, http_json

HELD_NOTE = "Waiting for approval by a lead"
SENT_NOTE = "Sent to the customer"
APPROVED_TAG = "socialdesk_approved"


def _notes(agent: ZendeskAgent | FreshdeskAgent, ticket_id: int) -> list[str]:
    """Every internal note of the ticket, oldest first."""
    if isinstance(agent, FreshdeskAgent):
        _, answer = http_json("GET", f"{agent.url}/api/v2/tickets/{ticket_id}/conversations", headers=agent.headers)
        return [(c.get("body_text") or "").strip() for c in answer or [] if isinstance(c, dict) and c.get("private")]
    _, answer = http_json("GET", f"{agent.url}/api/v2/tickets/{ticket_id}/comments.json", headers=agent.headers)
    return [(c.get("body") or "").strip() for c in (answer or {}).get("comments") or [] if not c.get("public")]


def _approve(agent: ZendeskAgent | FreshdeskAgent, ticket_id: int) -> str:
    """A lead approves the held answer; what the app answered the helpdesk's webhook."""
    if isinstance(agent, FreshdeskAgent):
        status, answer = _post_json(
            f"{agent.url}/__sandbox/tickets/{ticket_id}/reply",
            {"body": "Approved for sending.", "note": True, "private": True, "add_tags": [APPROVED_TAG]},
            timeout=60,
        )
        delivery = (answer or {}).get("delivery") if status == 200 else None
    else:
        status, answer = _post_json(
            f"{agent.url}/__sandbox/tickets/{ticket_id}/agent_update", {"add_tags": [APPROVED_TAG]}, timeout=60
        )
        found = (
            [d for d in ((answer or {}).get("deliveries") or []) if '"approval"' in d.get("body", "")] if status == 200 else []
        )
        delivery = found[0] if found else None
    if not delivery:
        return f"no approval webhook (helpdesk answered {status})"
    response = delivery.get("response")
    return str(response.get("outcome") if isinstance(response, dict) else response)


def show_approval(
    state: dict[str, Any],
    tickets: dict[str, dict[str, Any]],
    platforms: PlatformSandboxes,
    held_key: str,
    delivery: tuple[str, dict[str, Any]],
) -> bool:
    """Approve the held answer of ``held_key`` (its customer's ``delivery`` is put on the X
    sandbox first, so the answer can land), print what happened; False when it did not go out once."""
    helpdesk_url = state["helpdesk_url"].rstrip("/")
    ticket = tickets.get(held_key)
    if ticket is None or not _local(helpdesk_url):
        print("\nOne voice in public: skipped (no ticket for the high-reach post, or a real helpdesk).")
        return ticket is not None
    freshdesk = state.get("helpdesk") == "freshdesk"
    agent: ZendeskAgent | FreshdeskAgent = (FreshdeskAgent if freshdesk else ZendeskAgent)(helpdesk_url, state["app_url"])
    ticket_id = int(ticket["id"])
    print(f"\nOne voice in public: #{ticket_id}, the angry post by an author with 182,000 followers")
    held = [n for n in _notes(agent, ticket_id) if n.startswith(HELD_NOTE)]
    if not held:
        print("  ✗ its answer was not held for approval")
        return False
    print(f"  · note: {_plain(held[-1])}")
    platforms.seed(*delivery)
    before = len(platforms.sent())
    first = _approve(agent, ticket_id)
    print(f"  a lead adds the tag {APPROVED_TAG} → [{first}]")
    sent_note: list[str] = []
    for _ in range(20):  # the note follows the send
        sent_note = [n for n in _notes(agent, ticket_id) if n.startswith(SENT_NOTE)]
        if sent_note:
            break
        time.sleep(0.25)
    again = _approve(agent, ticket_id)
    print(f"  the same approval once more → [{again}]")
    sent = len(platforms.sent()) - before
    for note in sent_note:
        print(f"  ✓ note: {_plain(note)}")
    ok = first == "sent" and again in ("nothing_held", "no_new_reply", "duplicate") and bool(sent_note) and sent == 1
    print(f"  {'✓' if ok else '✗'} the held answer reached the customer {sent} time(s)")
    return ok
