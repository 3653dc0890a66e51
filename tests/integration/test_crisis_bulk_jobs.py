"""The crisis's Zendesk bulk jobs are followed to their end: a link job whose items fail, or
that never finishes, leaves no complaint's ticket outside the problem, and a note job whose
items fail still leaves each incident its outcome note, once (the sandbox's job faults)."""

from __future__ import annotations

from collections import Counter

from local.crisis_burst import burst
from tests.integration.test_agent_replies import rig  # noqa: F401 - the fixture, reused
from tests.integration.test_crisis_flow import ANSWER, Crisis, crisis  # noqa: F401 - the fixture, reused


def test_tickets_a_link_job_failed_to_link_are_linked_one_by_one(crisis: Crisis) -> None:  # noqa: F811
    crisis.complain(burst("4701", 8))  # ticketed before the crisis: linked by the start's bulk update
    early = sorted(t["id"] for t in crisis.customer_tickets())
    crisis.rig.zendesk.fail_bulk_items(*early[:3])
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    crisis.complain(burst("4702", 12))
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    (problem,) = crisis.problems()
    assert [t["id"] for t in crisis.customer_tickets() if t.get("problem_id") != problem["id"]] == []
    assert used["PUT /api/v2/tickets/update_many"] == 1
    assert used["PUT /api/v2/tickets/{ticket_id}"] == 3  # exactly the three the job failed


def test_a_link_job_that_does_not_finish_in_time_is_done_one_by_one(crisis: Crisis) -> None:  # noqa: F811
    crisis.tickets.job_wait_seconds = 1.0
    crisis.complain(burst("4711", 8))
    crisis.rig.zendesk.hold_jobs(kind="update")
    crisis.complain(burst("4712", 12))
    (problem,) = crisis.problems()
    assert all(t.get("problem_id") == problem["id"] for t in crisis.customer_tickets())
    crisis.rig.zendesk.release_jobs()  # the late job changes nothing more: the links are the same


def test_incident_notes_a_note_job_failed_are_written_one_by_one_and_once(crisis: Crisis) -> None:  # noqa: F811
    crisis.complain(burst("4721", 20))
    (problem,) = crisis.problems()
    incidents = sorted(t["id"] for t in crisis.customer_tickets() if t.get("problem_id") == problem["id"])
    crisis.rig.zendesk.fail_bulk_items(*incidents[:4])
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    crisis.rig.zendesk.agent_comment(problem["id"], ANSWER)
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    assert sum(crisis.answers_received().values()) == 20
    for incident in incidents:
        notes = [c["body"] for c in crisis.rig.zendesk.comments(incident) if not c["public"]]
        assert sum(n.startswith("Sent to the customer on") for n in notes) == 1, (incident, notes)
    assert used["PUT /api/v2/tickets/update_many"] == 1
    assert used["PUT /api/v2/tickets/{ticket_id}"] == 4 + 1  # the four failed notes, and the count on the problem
