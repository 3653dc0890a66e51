"""Crises and token checks as the report reads them from scanned items."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.reporting.crises import MAX_POINTS, crises_from_items
from chalicelib.reporting.data import tokens_from_items
from chalicelib.reporting.model import build_report

NOW = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=7)


def incident(crisis_id: str, *, status: str = "active", size: int, ended: datetime | None = None) -> dict[str, Any]:
    item = {
        "pk": {"S": "CRISIS#brand"},
        "sk": {"S": f"INCIDENT#{crisis_id}"},
        "crisis_id": {"S": crisis_id},
        "crisis_status": {"S": status},
        "size": {"N": str(size)},
        "first_seen": {"N": str((NOW - timedelta(hours=5)).timestamp())},
        "last_seen": {"N": str((NOW - timedelta(hours=1)).timestamp())},
        "centroid": {"S": json.dumps({"refund": 0.5, "charge": 1.0, "double": 0.8, "card": 0.2, "bank": 0.1})},
    }
    if ended:
        item["ended_at"] = {"N": str(ended.timestamp())}
    return item


def member(crisis_id: str | None, minutes_ago: float) -> dict[str, Any]:
    """A window page holding one complaint, as ``crisis/store.py`` writes them (``e:`` maps)."""
    at = NOW - timedelta(minutes=minutes_ago)
    entry: dict[str, Any] = {"c": {"N": str(at.timestamp())}, "k": {"S": f"x:dm:{minutes_ago}"}, "s": {"S": "charg doubl"}}
    if crisis_id:
        entry["x"] = {"S": crisis_id}
    return {"pk": {"S": "CRISIS#brand"}, "sk": {"S": f"W#{at.isoformat()}#{minutes_ago}"}, f"e:x#m{minutes_ago}": {"M": entry}}


def test_the_size_grows_with_each_member_and_ends_at_the_recorded_size() -> None:
    # 10 counted, 3 complaints still in the table (7 expired with the history): the line starts at 8.
    items = [incident("c1", size=10), member("c1", 90), member("c1", 30), member("c1", 60)]
    items.append(member(None, 20))  # a complaint in no crisis: not a member
    (crisis,) = crises_from_items(items, since=SINCE)
    assert crisis.name == "charge, double, refund, card (brand)" and crisis.active
    assert [size for _, size in crisis.sizes] == [8, 9, 10]
    assert [moment for moment, _ in crisis.sizes] == [NOW - timedelta(minutes=m) for m in (90, 60, 30)]


def test_a_declared_crisis_without_member_items_still_shows_its_size() -> None:
    (crisis,) = crises_from_items([incident("t-77", size=4)], since=SINCE)
    assert [size for _, size in crisis.sizes] == [4]


def test_a_long_crisis_is_drawn_with_a_bounded_number_of_points_ending_at_its_size() -> None:
    items = [incident("c1", size=500), *(member("c1", minutes) for minutes in range(500, 0, -1))]
    (crisis,) = crises_from_items(items, since=SINCE)
    sizes = [size for _, size in crisis.sizes]
    assert len(sizes) <= MAX_POINTS and sizes[-1] == 500 and sizes == sorted(sizes)


def test_crises_that_ended_before_the_period_are_left_out() -> None:
    items = [
        incident("old", status="ended", size=20, ended=SINCE - timedelta(hours=1)),
        incident("recent", status="ended", size=12, ended=NOW - timedelta(days=1)),
        member("gone", 10),  # members of a crisis whose item expired
    ]
    crises = crises_from_items(items, since=SINCE)
    assert [(c.active, c.size) for c in crises] == [(False, 12)]
    # An ended crisis is charted but not in "what needs attention now".
    assert [item.kind for item in build_report([], now=NOW, crises=crises).attention] == []


def test_the_latest_token_check_is_read_and_only_refused_tokens_need_attention() -> None:
    results = [
        {"platform": "messenger", "status": "revoked", "detail": "the app was removed from the Page", "days_left": None},
        {"platform": "x", "status": "unreachable", "detail": "X answered 503", "days_left": None},
        {"platform": "telegram", "status": "ok", "detail": "works", "days_left": None},
    ]
    item = {"pk": {"S": "OPS#TOKENS"}, "sk": {"S": "LATEST"}, "checked_at": {"N": str(int(NOW.timestamp()))},
            "results": {"S": json.dumps(results)}}
    tokens = tokens_from_items([item])
    assert [(t.platform, t.failing, t.checked_at) for t in tokens] == [("messenger", True, NOW), ("x", False, NOW),
                                                                       ("telegram", False, NOW)]
    (attention,) = build_report([], now=NOW, tokens=tokens).attention
    assert attention.kind == "tokens_failing" and attention.subjects == (
        "messenger: revoked (the app was removed from the Page)",)
    assert tokens_from_items([]) == []
