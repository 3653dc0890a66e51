"""The crisis fan-out's own guarantees, on the local stack: a runner that dies between sending
and recording its progress is resumed without sending anyone the answer twice; the incidents'
notes go out as one bulk update per chunk; pacing and the running count's words."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chalicelib.outbound import fanout
from chalicelib.outbound.fanout import Pacer, Tally
from local.crisis_burst import burst
from tests.integration.test_agent_replies import rig  # noqa: F401 - the fixture, reused
from tests.integration.test_crisis_flow import ANSWER, Crisis, crisis  # noqa: F401 - the fixture, reused


def test_a_runner_that_dies_before_recording_its_progress_is_resumed_without_sending_twice(
    crisis: Crisis,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "CHUNK", 5)
    crisis.complain(burst("4401", 18))
    (problem,) = crisis.problems()
    real_progress = crisis.answers.jobs.progress
    crashes: list[int] = []

    def dies_once_after_sending(job: Any, cursor: int, tally: Tally) -> None:
        if not crashes:  # the first chunk was sent; the Lambda dies before its cursor is written
            crashes.append(cursor)
            raise RuntimeError("Lambda timed out")
        real_progress(job, cursor, tally)

    monkeypatch.setattr(crisis.answers.jobs, "progress", dies_once_after_sending)
    crisis.rig.zendesk.agent_comment(problem["id"], ANSWER)  # the webhook's run dies
    assert crashes and 0 < sum(crisis.answers_received().values()) <= 5

    crisis.answers.run_schedule()  # the lease was given back: the schedule resumes from the old cursor
    received = crisis.answers_received()
    assert len(received) == 18 and set(received.values()) == {1}, received
    notes = [c["body"] for c in crisis.rig.zendesk.comments(problem["id"]) if not c["public"]]
    assert notes[-1] == "One answer to all: Sent 18 of 18."  # the re-handled first chunk counted once


def test_incident_notes_go_out_as_one_bulk_update_per_chunk(crisis: Crisis) -> None:  # noqa: F811
    crisis.complain(burst("4501", 30))
    (problem,) = crisis.problems()
    before = Counter(crisis.rig.zendesk.stats()["requests"])
    crisis.rig.zendesk.agent_comment(problem["id"], ANSWER)
    used = Counter(crisis.rig.zendesk.stats()["requests"]) - before
    assert sum(crisis.answers_received().values()) == 30
    assert used["PUT /api/v2/tickets/update_many"] == 1  # 30 incidents, one chunk
    assert used["PUT /api/v2/tickets/{ticket_id}"] == 1  # the running count on the problem, nothing per incident
    incident = next(t for t in crisis.customer_tickets() if t.get("problem_id") == problem["id"])
    notes = [c["body"] for c in crisis.rig.zendesk.comments(incident["id"]) if not c["public"]]
    assert notes and notes[-1].startswith("Sent to the customer on")


def test_the_pacer_spaces_one_platforms_sends_and_not_anothers() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10.0, {"x": 2.0}, clock=lambda: now[0], sleep=sleep)
    for platform in ("x", "line", "x", "line", "x"):
        pacer.wait(platform)
    assert slept == [pytest.approx(0.5), pytest.approx(0.5)]  # x twice waits its 0.5 s; LINE (10/s) had waited long enough
    with pytest.raises(ValueError):
        Pacer(0.0, {}, clock=lambda: 0.0, sleep=sleep)


def test_the_running_count_reads_like_the_issue_asks() -> None:
    tally = Tally(total=1000, sent=412, waiting=5, failed=Counter({"window_closed": 2, "token_expired": 1}))
    assert tally.summary() == "Sent 412 of 1,000; 3 failed: window closed (2), token expired; 5 waiting for a retry."
    assert Tally.from_json(tally.to_json()).failed == tally.failed
