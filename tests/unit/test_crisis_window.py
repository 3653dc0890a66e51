"""The crisis window's memory: pruning forgets old complaints, and what it keeps is still found and counted."""

from __future__ import annotations

from chalicelib.crisis.window import Window, WindowEntry

STEMS = frozenset({"refund", "late", "flight"})


def complaint(message_id: str, at: float, crisis_id: str | None = None) -> WindowEntry:
    return WindowEntry(message_id, "x:dm:b:1", "x", "1", created_at=at, stems=STEMS, language="en", crisis_id=crisis_id)


def test_pruning_forgets_old_complaints_and_keeps_the_recent_ones_found_and_counted() -> None:
    window = Window()
    for n in range(8):
        window.add(complaint(f"old{n}", 1_000.0 + n))
    window.add(complaint("new-free", 50_000.0))
    for n in range(2):
        window.add(complaint(f"new-crisis{n}", 50_001.0 + n, crisis_id="c1"))

    window.prune(before=40_000.0)

    assert len(window) == 3
    assert window.traffic("en", 0, 60_000) == 3 and window.traffic("en", 0, 60_000, outside_crises=True) == 1
    assert window.members("c1") == 2
    found = window.similar(STEMS, "en", threshold=0.9, since=0, until=60_000)
    assert [entry.message_id for entry in found] == ["new-free"]  # the old ones are gone, crisis members are not offered
