"""What an adapter remembers of a few tickets' comments between lookups, so that checking many
messages against one ticket (a redrive of a viral thread's parked backlog) reads each comment
about once, not once per message. Each adapter keeps its own kind of scan (Zendesk reads
newest first by time, Freshdesk oldest first by page); docs/sync.md."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

TICKETS_REMEMBERED = 16  # whose comments' references one execution environment keeps

Scan = TypeVar("Scan")


class TicketScans(Generic[Scan]):
    """The scans of the last few tickets looked at, the least recently used forgotten first."""

    def __init__(self, size: int = TICKETS_REMEMBERED) -> None:
        self._scans: OrderedDict[int, Scan] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # local runs share one adapter between threads

    def get(self, number: int) -> Scan | None:
        with self._lock:
            return self._scans.get(number)

    def keep(self, number: int, scan: Scan) -> None:
        with self._lock:
            self._scans[number] = scan
            self._scans.move_to_end(number)
            while len(self._scans) > self._size:
                self._scans.popitem(last=False)

    def forget(self, number: int) -> None:
        with self._lock:
            self._scans.pop(number, None)
