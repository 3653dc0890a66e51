"""What crisis detection decides and keeps: settings, crises, decisions."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from chalicelib.crisis.similarity import Centroid
from chalicelib.crisis.window import WindowEntry


@dataclass(frozen=True)
class CrisisSettings:
    """Thresholds and windows (defaults measured on real complaint bursts: docs/crisis.md)."""

    window_minutes: float = 60.0  # complaints counted towards a spike: those of the last hour
    baseline_hours: float = 24.0  # a group's usual volume: its complaints in the day before the window
    baseline_multiple: float = 3.0  # a spike is this many times the group's usual volume per window...
    min_size: int = 10  # ...and at least this many complaints...
    min_share: float = 0.1  # ...and this share of the window's complaints not in a crisis yet
    pair_similarity: float = 0.3  # two complaints are alike (stem-set cosine): a group grows from these
    join_similarity: float = 0.35  # a complaint belongs to a group or crisis (cosine with its centroid)
    merge_similarity: float = 0.2  # a new group is an active crisis's (cosine of their centroids): no second crisis
    related_similarity: float = 0.1  # a spike too small a share to start a crisis joins a running one this close
    quiet_minutes: float = 120.0  # a crisis with no new complaint for this long ends
    min_stems: int = 2  # shorter complaints ("help!!") say too little to group
    # The in-memory window of each warm Lambda: complaints other Lambdas wrote are read
    # every ``refresh_seconds`` (those at most ``lateness_seconds`` older than the newest
    # read before), everything again every ``reload_seconds``; active crises every
    # ``active_seconds`` (a start always reads them afresh under the account's lock).
    refresh_seconds: float = 5.0
    lateness_seconds: float = 600.0
    reload_seconds: float = 900.0
    active_seconds: float = 10.0

    @classmethod
    def from_env(cls) -> CrisisSettings:
        """Defaults, overridden by ``CRISIS_*`` environment variables."""
        default = cls()

        def number(name: str, value: float) -> float:
            return float(os.environ.get(f"CRISIS_{name}", value))

        return cls(
            window_minutes=number("WINDOW_MINUTES", default.window_minutes),
            baseline_hours=number("BASELINE_HOURS", default.baseline_hours),
            baseline_multiple=number("BASELINE_MULTIPLE", default.baseline_multiple),
            min_size=int(number("MIN_SIZE", default.min_size)),
            min_share=number("MIN_SHARE", default.min_share),
            pair_similarity=number("PAIR_SIMILARITY", default.pair_similarity),
            join_similarity=number("JOIN_SIMILARITY", default.join_similarity),
            merge_similarity=number("MERGE_SIMILARITY", default.merge_similarity),
            related_similarity=number("RELATED_SIMILARITY", default.related_similarity),
            quiet_minutes=number("QUIET_MINUTES", default.quiet_minutes),
            min_stems=int(number("MIN_STEMS", default.min_stems)),
        )

    @property
    def window_seconds(self) -> float:
        return self.window_minutes * 60

    @property
    def baseline_seconds(self) -> float:
        return self.baseline_hours * 3600

    @property
    def quiet_seconds(self) -> float:
        return self.quiet_minutes * 60

    @property
    def history_seconds(self) -> float:
        """How far back complaints are kept: the window and the baseline period before it."""
        return self.window_seconds + self.baseline_seconds


class Origin(str, Enum):
    DETECTED = "detected"  # a spike of similar complaints
    DECLARED = "declared"  # an agent tagged a ticket


class Status(str, Enum):
    ACTIVE = "active"
    ENDED = "ended"


@dataclass
class Crisis:
    """One crisis of one receiving account (bounded: counts and a centroid, no member list)."""

    account_id: str
    crisis_id: str
    origin: Origin
    centroid: Centroid  # as it started; while it runs, its members' centroid in the window is used
    started_at: float
    first_seen: float  # platform time of its earliest complaint
    last_seen: float  # when a complaint last joined it (the detector's clock): quiet is measured from it
    status: Status = Status.ACTIVE
    size: int = 0
    platform_counts: dict[str, int] = field(default_factory=dict)
    baseline: float = 0.0  # the group's usual complaints per window when it started
    language: str = ""  # "en", "es", or "" (complaints of any language may join)
    ticket_id: str | None = None  # the declaring ticket, or the problem ticket the sync attached
    ended_at: float | None = None
    end_reason: str | None = None

    @property
    def keywords(self) -> list[str]:
        """Its most used word stems (what it is about)."""
        return self.centroid.top()


@dataclass(frozen=True)
class Member:
    """A message that joined a crisis: where its ticket is."""

    conversation_key: str
    message_id: str
    platform: str

    @classmethod
    def of(cls, entry: WindowEntry) -> Member:
        return cls(entry.conversation_key, entry.message_id, entry.platform)


class Outcome(str, Enum):
    NONE = "none"
    JOINED = "joined"
    STARTED = "started"


@dataclass(frozen=True)
class CrisisDecision:
    """What one observed message (or one declaration) did.

    ``members`` are the messages that joined ``crisis`` with this decision: the message
    itself when it joined; when a crisis started, the whole group (earlier complaints
    whose tickets already exist included). ``repeated``: the message (or declaration) had
    been handled before and this call changed nothing; a repeated JOINED names the crisis
    the message is in. ``ended``: crises this call found quiet and ended.
    """

    outcome: Outcome
    crisis: Crisis | None = None
    members: tuple[Member, ...] = ()
    samples: tuple[str, ...] = ()
    repeated: bool = False
    ended: tuple[Crisis, ...] = ()
