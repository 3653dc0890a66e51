"""One voice in public: an agent's public answer that a rule marks as sensitive waits for a lead.

``needs_approval(conversation, ticket, reply, rules)`` says why an answer must wait (or None).
The rule (``ApprovalRules``, the ``approval`` section of the rules file; defaults below) can ask
for approval when

* the customer's reach is at least ``reach_at_least`` (followers or subscribers the platform
  sent with the customer's messages: the largest one seen in the conversation);
* the ticket's priority is one of ``priorities`` (``urgent`` by default);
* the ticket belongs to a crisis: one of ``crisis_tags`` (``socialdesk_crisis``: as long as an
  agent leaves it on), or its type is one of ``crisis_ticket_types`` (``problem``/``incident``:
  how a crisis links tickets) while that crisis is open. Once the crisis has ended (the crisis
  store knows: ``CrisisTickets.in_open_crisis``, asked through ``with_crisis_state``), its
  problem and incidents follow the other rules again.

Only answers seen in public are held unless ``private_replies`` is true: a reply in a chat, or
an answer to a public comment sent privately (``socialdesk_private``), goes out as before.

How a held answer moves (the reply ledger in ``agent_replies`` does it, exactly once): it is
recorded ``held`` instead of being sent, and the ticket gets one internal note
(``held_note``). An approver adds the tag ``socialdesk_approved`` (by hand or with a macro):
each held answer of the ticket is claimed ``held`` -> ``sending`` by one conditional write and
sent once; ``socialdesk_withdrawn`` makes it ``withdrawn``: never sent, noted. A held answer is
in no retry queue, so neither the schedule nor a redelivered event sends it. An answer on a
crisis's problem ticket is held the same way, once, as the fan-out job that would send it to
every incident's customer (``outbound/fanout.py``); approved, each incident's send is not
asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.models import Direction, SocialMessage

logger = logging.getLogger(__name__)

APPROVED_TAG = "socialdesk_approved"
WITHDRAWN_TAG = "socialdesk_withdrawn"
APPROVED, WITHDRAWN = "approved", "withdrawn"
DECISION_TAGS = {APPROVED: APPROVED_TAG, WITHDRAWN: WITHDRAWN_TAG}


class ApprovalRules(BaseModel):
    """When a public answer waits for a lead's approval: the ``approval`` section of the
    triage rules file (``chalicelib/rules/triage.json``). Every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    reach_at_least: int | None = Field(
        default=100_000, ge=0, description="hold public answers to customers with at least this many followers (null: never)"
    )
    priorities: tuple[Literal["low", "normal", "high", "urgent"], ...] = Field(
        default=("urgent",), description="hold public answers on tickets of these priorities"
    )
    crisis_tags: tuple[str, ...] = Field(
        default=("socialdesk_crisis",), description="a ticket with one of these tags is in a crisis"
    )
    crisis_ticket_types: tuple[str, ...] = Field(
        default=("problem", "incident"),
        description="a ticket of one of these types is in a crisis while that crisis is open (its problem ticket is an active crisis's)",
    )
    private_replies: bool = Field(default=False, description="hold private answers too")


@dataclass(frozen=True)
class TicketFacts:
    """What the rule reads from the ticket (as the helpdesk's event or API gave it)."""

    tags: frozenset[str] = field(default_factory=frozenset)
    priority: str | None = None  # low, normal, high, urgent
    ticket_type: str | None = None  # question, incident, problem, task (Freshdesk: its own words)
    ticket_id: str | None = None
    problem_id: str | None = None  # an incident's problem ticket (Zendesk), when known
    # Whether the crisis the ticket's type ties it to is still open; None: nobody could tell,
    # so the type alone counts (the safe side: the answer waits).
    open_crisis: bool | None = None


@dataclass(frozen=True)
class ConversationFacts:
    """What the rule reads from the conversation: the customer's reach."""

    reach: int | None = None

    @classmethod
    def of(cls, messages: Iterable[SocialMessage], triage: Mapping[str, Any] | None = None) -> ConversationFacts:
        """The largest follower count the customers' messages carried, or triage found for the
        latest one (``Conversation.triage``: a profile lookup's, e.g. Instagram); None: unknown."""
        counts = [m.author.follower_count for m in messages if m.direction is Direction.INBOUND]
        counts.append(((triage or {}).get("signals") or {}).get("reach"))
        known = [c for c in counts if isinstance(c, int)]
        return cls(reach=max(known) if known else None)


@dataclass(frozen=True)
class ReplyFacts:
    """The answer: whether the customer and others see it in public."""

    public: bool


def needs_approval(
    conversation: ConversationFacts, ticket: TicketFacts, reply: ReplyFacts, rules: ApprovalRules | None = None
) -> str | None:
    """Why this answer waits for a lead's approval, in plain words; None when it may go out."""
    rules = rules or ApprovalRules()
    if not rules.enabled or not (reply.public or rules.private_replies):
        return None
    reasons = []
    if rules.reach_at_least is not None and conversation.reach is not None and conversation.reach >= rules.reach_at_least:
        reasons.append(f"the customer has {conversation.reach:,} followers")
    if ticket.priority and ticket.priority.lower() in rules.priorities:
        reasons.append(f"the ticket is {ticket.priority.lower()}")
    tags = {t.lower() for t in ticket.tags}
    crisis_tags, crisis_types = {t.lower() for t in rules.crisis_tags}, {t.lower() for t in rules.crisis_ticket_types}
    in_crisis_by_type = (ticket.ticket_type or "").lower() in crisis_types and ticket.open_crisis is not False
    if tags & crisis_tags or in_crisis_by_type:
        reasons.append("the ticket is part of an open crisis")
    if not reasons:
        return None
    return f"{'this public answer' if reply.public else 'this answer'} goes to a sensitive conversation ({'; '.join(reasons)})"


def with_crisis_state(
    ticket: TicketFacts, rules: ApprovalRules, open_crisis: Callable[[str | None, str | None], bool] | None
) -> TicketFacts:
    """The ticket's facts with whether its crisis is still open (``open_crisis(ticket id, problem id)``),
    asked only when the ticket's type would hold the answer. A lookup that fails leaves it unknown."""
    if open_crisis is None or (ticket.ticket_type or "").lower() not in {t.lower() for t in rules.crisis_ticket_types}:
        return ticket
    try:
        return replace(ticket, open_crisis=open_crisis(ticket.ticket_id, ticket.problem_id))
    except Exception as exc:  # noqa: BLE001 - unknown: the type alone counts, the answer waits
        logger.warning(
            "crisis state unknown", extra={"ticket_id": ticket.ticket_id, "reason": f"{type(exc).__name__}: {exc}"[:200]}
        )
        return ticket


def held_note(reason: str, *, to_everyone: bool = False) -> str:
    """The internal note on a held answer (``to_everyone``: a crisis problem's, for every incident's customer)."""
    what = "send it to every incident's customer" if to_everyone else "send it"
    return f"Waiting for approval by a lead: {reason}. Add the tag {APPROVED_TAG} to {what}, or {WITHDRAWN_TAG} to drop it."


def withdrawn_note(*, to_everyone: bool = False) -> str:
    """The internal note on a withdrawn answer."""
    who = "any incident's customer" if to_everyone else "the customer"
    return f"Withdrawn by a lead: this answer was not sent to {who}, and never will be."


def decision_of(tags: Iterable[str]) -> str | None:
    """The approver's decision a ticket's tags carry (withdrawn wins over approved), else None."""
    present = {t.lower() for t in tags}
    if WITHDRAWN_TAG in present:
        return WITHDRAWN
    if APPROVED_TAG in present:
        return APPROVED
    return None
