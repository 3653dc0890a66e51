"""An account's recent complaints in memory, indexed by stem for fast similarity lookups."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

from chalicelib.crisis.similarity import MIN_SHARED_STEMS, Centroid, compatible

BUCKET_SECONDS = 900
MAX_TEXT = 280  # characters of a complaint kept with it (a crisis's samples)
LIVE_CENTROID_MEMBERS = 5  # a crisis is compared by its members' centroid once it has this many in the window


@dataclass
class WindowEntry:
    """One observed complaint: what it is compared by, where it came from, which crisis it joined."""

    message_id: str
    conversation_key: str
    platform: str
    author_id: str
    created_at: float  # the platform's time (epoch seconds): what windows and baselines count by
    stems: frozenset[str]
    language: str = ""
    text: str = ""  # held in memory only (a new crisis's samples): the table keeps no customer text
    crisis_id: str | None = None
    home: str = ""  # the sort key of the table item holding it ("": not written yet)

    @property
    def key(self) -> str:
        """Unique within an account (message ids are unique per platform)."""
        return f"{self.platform}#{self.message_id}"


class Window:
    """Complaints of one account over the baseline period, with an inverted index on stems.

    Lookups walk only the postings of the query's stems, so their cost grows with how
    many recent complaints share a word with the query, not with the window's size. The
    window also keeps, per crisis, how often its members use each stem: a crisis is
    compared by what its members say, so it takes in the wordings a crowd adds as it grows.
    """

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        """Hold nothing (the whole index is rebuilt by ``prune``)."""
        self.entries: dict[str, WindowEntry] = {}
        # The index holds small ints (each entry's id()), so C code can count them; with each
        # entry, the square root of its stem count (the cosine's denominator).
        self._by_id: dict[int, tuple[WindowEntry, float]] = {}
        # Postings are split by quarter hour, so a lookup over the last hour reads only its own.
        self._postings: dict[tuple[str, int], list[int]] = defaultdict(list)
        # Each conversation's latest complaint held: a customer's later messages are not more complaints.
        self._conversations: dict[str, WindowEntry] = {}
        self._crisis_stems: dict[str, Counter[str]] = defaultdict(Counter)
        self._crisis_members: Counter[str] = Counter()
        self._centroids: dict[str, tuple[int, Centroid]] = {}
        # How many complaints each quarter hour holds, per language, and how many of them
        # are in a crisis: the account's traffic, against which a group's volume is judged.
        self._traffic: Counter[tuple[str, int]] = Counter()
        self._in_crises: Counter[tuple[str, int]] = Counter()

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: WindowEntry) -> WindowEntry:
        """Add a complaint (once); a copy already held only takes the newer crisis mark."""
        held = self.entries.get(entry.key)
        if held is not None:
            if entry.crisis_id and not held.crisis_id:
                self.assign(held, entry.crisis_id)
            return held
        self.entries[entry.key] = entry
        latest = self._conversations.get(entry.conversation_key)
        if latest is None or entry.created_at >= latest.created_at:
            self._conversations[entry.conversation_key] = entry
        self._by_id[id(entry)] = (entry, math.sqrt(len(entry.stems)))
        bucket = _bucket(entry.created_at)
        for stem in entry.stems:
            self._postings[(stem, bucket)].append(id(entry))
        self._traffic[(entry.language, bucket)] += 1
        if entry.crisis_id:
            self._count(entry)
        return entry

    def assign(self, entry: WindowEntry, crisis_id: str) -> None:
        """Record that a held complaint joined a crisis."""
        if entry.crisis_id:
            return
        entry.crisis_id = crisis_id
        self._count(entry)

    def _count(self, entry: WindowEntry) -> None:
        assert entry.crisis_id
        self._crisis_stems[entry.crisis_id].update(entry.stems)
        self._crisis_members[entry.crisis_id] += 1
        self._in_crises[(entry.language, _bucket(entry.created_at))] += 1

    def traffic(self, language: str, since: float, until: float, *, outside_crises: bool = False) -> int:
        """Complaints in a compatible language written from about ``since`` to ``until`` (whole
        quarter hours), or only those not in a crisis."""
        buckets = range(_bucket(since), _bucket(until) + 1)
        languages = {lang for lang, _ in self._traffic if compatible(language, lang)}
        total = sum(self._traffic[(lang, bucket)] for lang in languages for bucket in buckets)
        if outside_crises:
            total -= sum(self._in_crises[(lang, bucket)] for lang in languages for bucket in buckets)
        return total

    def conversation_complaint(self, conversation_key: str, around: float, within: float) -> WindowEntry | None:
        """The conversation's latest complaint held, if written within ``within`` seconds of ``around``."""
        latest = self._conversations.get(conversation_key)
        if latest is None or abs(latest.created_at - around) > within:
            return None
        return latest

    def members(self, crisis_id: str) -> int:
        """How many of a crisis's members the window holds."""
        return self._crisis_members.get(crisis_id, 0)

    def members_of(self, crisis_id: str) -> list[WindowEntry]:
        """The held members of a crisis, in time order."""
        return sorted((e for e in self.entries.values() if e.crisis_id == crisis_id), key=lambda e: e.created_at)

    def crisis_centroid(self, crisis_id: str, stored: Centroid) -> Centroid:
        """What a crisis is about: its members' centroid once enough are held, else ``stored``."""
        members = self._crisis_members.get(crisis_id, 0)
        if members < LIVE_CENTROID_MEMBERS:
            return stored
        cached = self._centroids.get(crisis_id)
        if cached is None or members >= cached[0] * 1.05 + 1:  # rebuilt as the crisis grows by 5 %
            counts = self._crisis_stems[crisis_id]
            cached = (members, Centroid.from_counts(counts, members))
            self._centroids[crisis_id] = cached
        return cached[1]

    def prune(self, before: float) -> None:
        """Forget complaints written before ``before``. The index is rebuilt only once a quarter
        of it is stale: lookups skip stale complaints by their time anyway."""
        kept = [entry for entry in self.entries.values() if entry.created_at >= before]
        if len(kept) > 0.75 * len(self.entries):
            return
        self._clear()
        for entry in kept:
            self.add(entry)

    def _shared(self, stems: Iterable[str], since: float, until: float) -> Counter[int]:
        """How many of ``stems`` each complaint held from about ``since`` to ``until`` has
        (counted in C: this is the hot loop; callers check the exact times)."""
        shared: Counter[int] = Counter()
        buckets = range(_bucket(since), _bucket(until) + 1)
        for stem in stems:
            for bucket in buckets:
                postings = self._postings.get((stem, bucket))
                if postings:
                    shared.update(postings)
        return shared

    def similar(self, stems: frozenset[str], language: str, *, threshold: float, since: float, until: float) -> list[WindowEntry]:
        """Complaints written in [since, until], not in a crisis, in a compatible language,
        whose stem-set cosine with ``stems`` is at least ``threshold``."""
        if not stems:
            return []
        floor = threshold * math.sqrt(len(stems))
        found = []
        for handle, count in self._shared(stems, since, until).items():
            entry, root = self._by_id[handle]
            if count < floor * root or count < MIN_SHARED_STEMS:
                continue
            if entry.crisis_id or not since <= entry.created_at <= until or not compatible(language, entry.language):
                continue
            found.append(entry)
        return found

    def matching(
        self,
        centroid: Centroid,
        language: str,
        *,
        threshold: float,
        since: float,
        until: float,
        unassigned: bool = True,
    ) -> list[WindowEntry]:
        """Complaints written in [since, until], in a compatible language, whose similarity with
        ``centroid`` is at least ``threshold`` (only those not in a crisis yet when ``unassigned``)."""
        if not centroid.norm:
            return []
        weights = centroid.weights
        terms, weight_of = weights.keys(), weights.__getitem__  # the exact score below, summed in C
        # A complaint sharing k of the centroid's stems scores at most its k heaviest weights:
        # most are ruled out by that bound before their exact score is computed.
        heaviest = list(accumulate(sorted(weights.values(), reverse=True), initial=0.0))
        floor = threshold * centroid.norm
        found = []
        for handle, count in self._shared(weights, since, until).items():
            entry, root = self._by_id[handle]
            if count < MIN_SHARED_STEMS or heaviest[count] < floor * root:
                continue
            if (unassigned and entry.crisis_id) or not since <= entry.created_at <= until:
                continue
            if sum(map(weight_of, entry.stems & terms)) >= floor * root and compatible(language, entry.language):
                found.append(entry)
        return found


def _bucket(moment: float) -> int:
    return int(moment // BUCKET_SECONDS)
