"""What operators really do to a crisis's tickets, and that no complaint is left parked by it."""

from __future__ import annotations

from chalicelib import wiring
from local.crisis_burst import burst
from tests.integration.test_agent_replies import rig  # noqa: F401 - the fixture, reused
from tests.integration.test_crisis_flow import Crisis, crisis  # noqa: F401 - the fixture, reused


def test_complaints_after_an_operator_deleted_the_problem_ticket_still_get_their_tickets(crisis: Crisis) -> None:  # noqa: F811
    """Found by the soak: Zendesk refuses a new ticket linked to a deleted problem (422 "Problem: is
    invalid"), and the complaint was parked for good. It opens unlinked instead."""
    crisis.complain(burst("4601", 24))
    (problem,) = crisis.problems()
    crisis.rig.zendesk.delete_ticket(problem["id"])

    crisis.complain(burst("4602", 4))
    assert len({t["external_id"] for t in crisis.customer_tickets()}) == 28
    assert wiring.message_store().blocked_conversations() == []
