"""The approval rule: which answers wait for a lead, and the rules file's ``approval`` section."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.outbound.approval import (
    ApprovalRules,
    ConversationFacts,
    ReplyFacts,
    TicketFacts,
    decision_of,
    needs_approval,
    with_crisis_state,
)

PUBLIC, PRIVATE = ReplyFacts(public=True), ReplyFacts(public=False)
QUIET = ConversationFacts(reach=1_200)


def test_a_public_answer_to_a_high_reach_customer_waits() -> None:
    reason = needs_approval(ConversationFacts(reach=250_000), TicketFacts(), PUBLIC)
    assert reason is not None and "250,000 followers" in reason
    assert needs_approval(ConversationFacts(reach=99_999), TicketFacts(), PUBLIC) is None
    assert needs_approval(ConversationFacts(reach=None), TicketFacts(), PUBLIC) is None  # reach never sent


def test_reach_is_the_largest_a_customers_message_or_triage_found() -> None:
    from datetime import datetime, timezone

    from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage

    def message(followers: int | None, direction: Direction = Direction.INBOUND) -> SocialMessage:
        return SocialMessage(
            platform=Platform.INSTAGRAM, kind=Kind.DIRECT_MESSAGE, direction=direction, message_id=f"m{followers}{direction.value}",
            conversation_key="instagram:dm:1:2", account_id="1", author=Author(platform_id="2", follower_count=followers),
            text="hi", created_at=datetime(2026, 12, 1, tzinfo=timezone.utc),
        )

    assert ConversationFacts.of([message(None), message(1200)]).reach == 1200
    assert ConversationFacts.of([message(9_000_000, Direction.OUTBOUND)]).reach is None  # the brand's own reach does not count
    # Instagram DMs carry no follower count: triage's profile lookup found it.
    assert ConversationFacts.of([message(None)], {"signals": {"reach": 250_000}}).reach == 250_000


def test_urgent_tickets_and_open_crises_wait() -> None:
    assert "the ticket is urgent" in (needs_approval(QUIET, TicketFacts(priority="Urgent"), PUBLIC) or "")
    assert needs_approval(QUIET, TicketFacts(priority="high"), PUBLIC) is None
    crisis = "part of an open crisis"
    assert crisis in (needs_approval(QUIET, TicketFacts(tags=frozenset({"socialdesk_crisis"})), PUBLIC) or "")
    assert crisis in (needs_approval(QUIET, TicketFacts(ticket_type="incident"), PUBLIC) or "")
    assert needs_approval(QUIET, TicketFacts(ticket_type="question"), PUBLIC) is None


def test_a_crisis_ticket_waits_only_while_its_crisis_is_open() -> None:
    rules = ApprovalRules()
    asked: list[tuple[str | None, str | None]] = []

    def open_crisis(ticket_id: str | None, problem_id: str | None) -> bool:
        asked.append((ticket_id, problem_id))
        return problem_id == "900"  # problem #900's crisis is active; #800's has ended

    during = with_crisis_state(TicketFacts(ticket_type="incident", ticket_id="17", problem_id="900"), rules, open_crisis)
    after = with_crisis_state(TicketFacts(ticket_type="incident", ticket_id="18", problem_id="800"), rules, open_crisis)
    assert needs_approval(QUIET, during, PUBLIC) is not None
    assert needs_approval(QUIET, after, PUBLIC) is None
    assert needs_approval(QUIET, replace(after, priority="urgent"), PUBLIC) is not None  # the other rules still apply
    # Asked only for a ticket its type would hold; a tag still holds after the crisis (the agent's word).
    question = TicketFacts(ticket_type="question", ticket_id="19")
    assert with_crisis_state(question, rules, open_crisis) is question and asked == [("17", "900"), ("18", "800")]
    assert needs_approval(QUIET, replace(after, tags=frozenset({"socialdesk_crisis"})), PUBLIC) is not None


def test_a_crisis_store_that_cannot_be_read_leaves_the_answer_waiting() -> None:
    def unreadable(ticket_id: str | None, problem_id: str | None) -> bool:
        raise RuntimeError("throttled")

    ticket = with_crisis_state(TicketFacts(ticket_type="problem", ticket_id="900"), ApprovalRules(), unreadable)
    assert ticket.open_crisis is None and needs_approval(QUIET, ticket, PUBLIC) is not None


def test_private_answers_go_out_unless_a_rule_says_so() -> None:
    sensitive = TicketFacts(priority="urgent")
    assert needs_approval(ConversationFacts(reach=500_000), sensitive, PRIVATE) is None
    strict = ApprovalRules(private_replies=True)
    assert needs_approval(QUIET, sensitive, PRIVATE, strict) == "this answer goes to a sensitive conversation (the ticket is urgent)"


def _rules_file(approval: str) -> str:
    shipped = (Path(__file__).resolve().parents[2] / "chalicelib" / "rules" / "triage.json").read_text()
    head = shipped[: shipped.index('"approval"')]
    return head + '"approval": ' + approval + "\n}\n"


def test_the_rules_file_changes_behaviour_and_names_the_line_of_a_bad_field() -> None:
    from chalicelib.triage.rules import RulesError, load_rules, parse_rules

    assert load_rules().approval == ApprovalRules()  # the shipped file states the defaults
    lenient = parse_rules(_rules_file('{"reach_at_least": null, "priorities": []}')).approval
    assert needs_approval(ConversationFacts(reach=10**7), TicketFacts(priority="urgent"), PUBLIC, lenient) is None
    off = parse_rules(_rules_file('{"enabled": false}')).approval
    assert needs_approval(QUIET, TicketFacts(priority="urgent"), PUBLIC, off) is None
    text = _rules_file('{\n    "reach_at_least": "10k"\n  }')
    with pytest.raises(RulesError, match="approval.reach_at_least") as caught:
        parse_rules(text, "rules.json")
    assert caught.value.line == text.splitlines().index('    "reach_at_least": "10k"') + 1


def test_the_decision_a_ticket_carries() -> None:
    assert decision_of(["socialdesk", "socialdesk_approved"]) == "approved"
    assert decision_of(["socialdesk_approved", "socialdesk_withdrawn"]) == "withdrawn"  # withdrawing wins
    assert decision_of(["socialdesk"]) is None
