"""The steady replay the benchmark measures: customers each about their own matter."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from bench.workload import FIRST_MESSAGES, FOLLOW_UPS, mixed_replay
from chalicelib.crisis import CrisisDetector, Outcome
from chalicelib.crisis.similarity import cosine, features
from chalicelib.crisis.store import MemoryCrisisStore
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage


def _texts(run: str, customers: int) -> list[str]:
    """The customer texts of the replay's deliveries, in order (the brand's echoes left out)."""
    found = []
    for _, payload in mixed_replay(run, customers).deliveries:
        body = json.dumps(payload)
        found += [text for text in (*FIRST_MESSAGES, *FOLLOW_UPS) if json.dumps(text)[1:-1] in body][:1]
    return found


def test_the_replay_keeps_its_shape_new_and_returning_customers_on_five_channels() -> None:
    work = mixed_replay("12345", 60)
    assert (len(work.deliveries), work.inbound, work.outbound, len(work.customers)) == (167, 165, 2, 60)
    assert {route for route, _ in work.deliveries} == {"meta", "x"}


def test_customers_write_in_their_own_words_nothing_a_crowd_says_together() -> None:
    texts = _texts("12345", 60)
    assert len(texts) == 165  # every customer message is one of the pools' texts
    firsts = [text for text in texts if text in FIRST_MESSAGES]
    assert Counter(firsts).most_common(1)[0][1] == 1  # no two customers open with the same matter
    assert Counter(texts).most_common(1)[0][1] <= 3
    # A crisis needs ten or more alike complaints within the hour; here each message is alike
    # (the detector's pair measure) to a handful of the others at most.
    stems = [features(text) for text in texts]
    alike = [sum(1 for j, other in enumerate(stems) if j != i and cosine(mine, other) >= 0.3) for i, mine in enumerate(stems)]
    assert max(alike) < 10


def test_the_crisis_detection_finds_no_crisis_in_the_steady_replay() -> None:
    """Every customer message of the replay, observed in order within its five minutes (the
    table empty before, as in the benchmark): none starts or joins a crisis."""
    start = 1_800_000_000.0
    now = [start]
    detector = CrisisDetector(MemoryCrisisStore(), clock=lambda: now[0])
    outcomes = Counter()
    for n, text in enumerate(_texts("12345", 60)):
        now[0] = start + n * 2
        message = SocialMessage(
            platform=Platform.X,
            kind=Kind.DIRECT_MESSAGE,
            direction=Direction.INBOUND,
            message_id=f"m{n}",
            conversation_key=f"x:dm:brand:{n}",
            account_id="brand",
            author=Author(platform_id=f"p{n}"),
            text=text,
            created_at=datetime.fromtimestamp(now[0], tz=UTC),
        )
        outcomes[detector.observe(message).outcome] += 1
    detector.flush()
    assert outcomes[Outcome.STARTED] == outcomes[Outcome.JOINED] == 0
