"""Crises as the report shows them: each crisis's size over time, from what the crisis package
keeps in the table (``chalicelib/crisis/store.py``).

A crisis item (``CRISIS#<account>`` / ``INCIDENT#<id>``) holds its size; each member complaint
(an ``e:`` map on a ``W#...`` page, with its crisis id ``x``) its platform time ``c``. The size at a moment is the members seen
by then. Complaints older than the crisis history (a day) have expired from the table: they are
counted from the start, so the line always ends at the crisis's recorded size.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.crisis.store import ENTRY_PREFIX
from chalicelib.reporting.model import Crisis

MAX_POINTS = 48  # a line of at most this many dots: later points replace earlier ones within a slice
KEYWORDS_SHOWN = 4


@dataclass
class _Found:
    account: str = ""
    status: str = ""
    size: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    ended_at: float | None = None
    keywords: list[str] = field(default_factory=list)
    ticket_id: str | None = None
    members: list[float] = field(default_factory=list)


def _value(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name) or {}
    return value.get("S", value.get("N"))


def _number(item: dict[str, Any], name: str) -> float | None:
    value = _value(item, name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _keywords(centroid: str | None) -> list[str]:
    try:
        weights = json.loads(centroid or "{}")
    except json.JSONDecodeError:
        return []
    return [stem for stem, _ in sorted(weights.items(), key=lambda pair: (-pair[1], pair[0]))[:KEYWORDS_SHOWN]]


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _sizes(found: _Found) -> tuple[tuple[datetime, int], ...]:
    times = sorted(found.members)
    expired = max(0, found.size - len(times))
    points = [(moment, expired + rank) for rank, moment in enumerate(times, start=1)]
    if len(points) > MAX_POINTS:  # the last point of each equal slice of time
        start, span = points[0][0], (points[-1][0] - points[0][0]) or 1.0
        by_slice: dict[int, tuple[float, int]] = {}
        for moment, size in points:
            by_slice[min(MAX_POINTS - 1, int((moment - start) / span * MAX_POINTS))] = (moment, size)
        points = [by_slice[index] for index in sorted(by_slice)]
    if not points or points[-1][1] < found.size:  # counted members whose complaints are not in the table
        points.append((found.last_seen or found.first_seen or 0.0, found.size))
    return tuple((_moment(moment), size) for moment, size in points)


def crises_from_items(items: Iterable[dict[str, Any]], *, since: datetime) -> list[Crisis]:
    """The crises going on or ended after ``since``, oldest first, from scanned ``CRISIS#`` items."""
    found: dict[tuple[str, str], _Found] = defaultdict(_Found)
    for item in items:
        pk, sk = _value(item, "pk") or "", _value(item, "sk") or ""
        if not pk.startswith("CRISIS#"):
            continue
        account = pk.removeprefix("CRISIS#")
        if sk.startswith("INCIDENT#"):
            crisis = found[(account, sk.removeprefix("INCIDENT#"))]
            crisis.account = account
            crisis.status = _value(item, "crisis_status") or ""
            crisis.size = int(_number(item, "size") or 0)
            crisis.first_seen, crisis.last_seen = _number(item, "first_seen"), _number(item, "last_seen")
            crisis.ended_at = _number(item, "ended_at")
            crisis.keywords = _keywords(_value(item, "centroid"))
            crisis.ticket_id = _value(item, "ticket_id")
        elif sk.startswith("W#"):  # a page of complaints, one map attribute each (crisis/store.py)
            for name, value in item.items():
                fields = value.get("M") if name.startswith(ENTRY_PREFIX) else None
                crisis_id, created = (fields or {}).get("x", {}).get("S"), (fields or {}).get("c", {}).get("N")
                if crisis_id and created is not None:
                    found[(account, crisis_id)].members.append(float(created))
    crises = []
    for (account, crisis_id), crisis in found.items():
        if not crisis.status:  # members of a crisis whose item is gone (expired a month after it ended)
            continue
        active = crisis.status == "active"
        if not active and crisis.ended_at is not None and _moment(crisis.ended_at) < since:
            continue
        name = ", ".join(crisis.keywords) or crisis_id
        ticket = f" · #{crisis.ticket_id}" if crisis.ticket_id else ""
        crises.append(Crisis(name=f"{name} ({account}{ticket})", active=active, sizes=_sizes(crisis)))
    return sorted(crises, key=lambda crisis: crisis.sizes[0][0] if crisis.sizes else since)
