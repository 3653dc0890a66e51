"""Counts what the route fuzzer tried, and prints it at the end of the run.

Every request the fuzz tests send goes through ``record()``; ``pytest_terminal_summary``
in ``tests/fuzz/conftest.py`` prints ``summary_lines()``, which is what ``make fuzz``
shows: how many inputs were tried, how many passed, how many answered 5xx and how
many requests that failed authentication still wrote to the table.

"passed" means the answer met the whole contract (2xx, or 4xx with a JSON ``error``
object; no write without authentication). An answer that breaks it in a way a known
bug explains (see ``KNOWN_BUGS`` in ``test_routes_fuzz.py``) is counted as "known",
not as passed; anything else is "failed" and fails its test.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RouteStats:
    """Counters for one route (``"POST /webhooks/meta"``)."""

    tried: int = 0
    passed: int = 0
    failed: int = 0
    known: int = 0
    status_5xx: int = 0
    unauthenticated: int = 0
    unauthenticated_writes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    known_bugs: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)  # cause -> count, for answers no known bug explains


class FuzzReport:
    """Thread-safe tallies of every fuzzed request, per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.routes: dict[str, RouteStats] = defaultdict(RouteStats)
        self.started = time.monotonic()
        self.profile = os.environ.get("FUZZ_PROFILE", "short")
        self.examples: dict[str, str] = {}  # first failing input per cause

    def record(
        self,
        route: str,
        *,
        status: int,
        authenticated: bool,
        writes: int,
        outcome: str,
        known_bug: str | None = None,
        cause: str | None = None,
        example: str | None = None,
    ) -> None:
        """Count one request; ``outcome`` is ``passed``, ``failed`` or ``known``."""
        with self._lock:
            stats = self.routes[route]
            stats.tried += 1
            stats.statuses[status] += 1
            if status >= 500:
                stats.status_5xx += 1
            if not authenticated:
                stats.unauthenticated += 1
                if writes:
                    stats.unauthenticated_writes += 1
            if outcome == "passed":
                stats.passed += 1
            elif outcome == "known":
                stats.known += 1
                stats.known_bugs[known_bug or "?"] += 1
            else:
                stats.failed += 1
                key = cause or "?"
                stats.failures[key] += 1
                if example and key not in self.examples:
                    self.examples[key] = example

    def totals(self) -> dict[str, int]:
        """Sums over every route."""
        with self._lock:
            keys = ("tried", "passed", "failed", "known", "status_5xx", "unauthenticated", "unauthenticated_writes")
            return {key: sum(getattr(s, key) for s in self.routes.values()) for key in keys}

    def as_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready (``FUZZ_REPORT_FILE`` gets this)."""
        with self._lock:
            routes = {
                name: {
                    **{k: v for k, v in s.__dict__.items() if k not in ("statuses", "known_bugs", "failures")},
                    "statuses": {str(code): n for code, n in sorted(s.statuses.items())},
                    "known_bugs": dict(s.known_bugs),
                    "failures": dict(s.failures),
                }
                for name, s in sorted(self.routes.items())
            }
        return {
            "profile": self.profile,
            "seconds": round(time.monotonic() - self.started, 1),
            "totals": self.totals(),
            "routes": routes,
            "failure_examples": dict(self.examples),
        }

    def summary_lines(self) -> list[str]:
        """The lines printed at the end of the run."""
        if not self.routes:
            return []
        t = self.totals()
        lines = [
            f"route fuzzing ({self.profile} profile): {t['tried']} inputs tried, {t['passed']} passed, "
            f"{t['failed']} failed, {t['known']} hit known bugs",
            f"  5xx answers: {t['status_5xx']}; writes from unauthenticated requests: "
            f"{t['unauthenticated_writes']} (of {t['unauthenticated']} unauthenticated requests)",
        ]
        with self._lock:
            width = max(len(name) for name in self.routes)
            for name, s in sorted(self.routes.items()):
                codes = " ".join(f"{code}x{n}" for code, n in sorted(s.statuses.items()))
                lines.append(
                    f"  {name:<{width}}  tried {s.tried:>6}  passed {s.passed:>6}  failed {s.failed:>4}  "
                    f"known {s.known:>4}  5xx {s.status_5xx:>4}  [{codes}]"
                )
            bugs: Counter[str] = Counter()
            failures: Counter[str] = Counter()
            for s in self.routes.values():
                bugs.update(s.known_bugs)
                failures.update(s.failures)
        if bugs:
            lines.append("  known bugs hit: " + ", ".join(f"{name} x{n}" for name, n in sorted(bugs.items())))
        if failures:
            lines.append("  failures by cause (no known bug explains them):")
            for cause, n in failures.most_common():
                lines.append(f"    {n:>5} x {cause}")
        return lines

    def write(self, path: str | os.PathLike[str]) -> None:
        """Save ``as_dict()`` as JSON."""
        Path(path).write_text(json.dumps(self.as_dict(), indent=2) + "\n")


REPORT = FuzzReport()
