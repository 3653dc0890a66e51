"""A clock and a ``sleep`` that agree, for code that waits: sleeping moves the clock."""

from __future__ import annotations

import time


class FakeTime:
    """``sleep`` records the wait and moves ``now`` by it instead of blocking.

    The ticket sync reasons about time (a record older than its bookkeeping patience
    may already be on its ticket), so a test that skips its waits must also move the
    clock, as real waiting would.
    """

    def __init__(self, start: float | None = None) -> None:
        self.sleeps: list[float] = []
        self._offset = 0.0 if start is None else start - time.time()

    def sleep(self, seconds: float) -> None:
        """Record ``seconds`` and count them as passed."""
        self.sleeps.append(seconds)
        self._offset += max(0.0, seconds)

    def now(self) -> float:
        """Epoch seconds: real time (from ``start``, if given) plus every skipped wait."""
        return time.time() + self._offset
