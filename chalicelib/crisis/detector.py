"""Crisis detection: similar complaints to one account, a spike over their baseline, a crisis.

For each new inbound complaint the sync calls ``CrisisDetector.observe(message)``:

1. the complaint joins the window this container holds (a repeat is recognised and counts
   nothing); what it changed is written by ``flush``, once per stream batch;
2. if it is like an active crisis of its account (cosine with the crisis's centroid), it
   joins that crisis;
3. otherwise its group is formed: the recent complaints like it (pairwise), grown in a
   few rounds to every complaint of the last ``window_minutes`` close to the group's
   centroid. At least ``min_size`` of them, and at least ``baseline_multiple`` times the
   group's usual volume per window over the ``baseline_hours`` before, start a crisis
   that the whole group joins (or, when the group is too small a share of the traffic, it
   joins the running crisis whose words it shares). Complaints group only with complaints
   in the same language.
4. a running crisis is compared by its members' centroid, so it takes in the wordings a
   crowd adds as it grows, and it looks back for recent complaints it missed.

An agent can declare a crisis from a ticket (``declare``); similar complaints then join
it. A crisis ends after ``quiet_minutes`` without a new complaint, or by ``end``.
Design, thresholds and measured precision/recall: ``docs/crisis.md``.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from chalicelib.crisis.model import Crisis, CrisisDecision, CrisisSettings, Member, Origin, Outcome, Status
from chalicelib.crisis.similarity import Centroid, compatible, features, language, normalize
from chalicelib.crisis.store import CrisisStore
from chalicelib.crisis.window import MAX_TEXT, Window, WindowEntry
from chalicelib.models import Direction, SocialMessage
from chalicelib.observability import logger

SAMPLES = 5  # texts of a new crisis handed to the caller (the problem ticket's description)
LOCK_SECONDS = 30.0  # the account's start lock, held until the batch is written; a crashed holder's lapses
LOCK_MARGIN_SECONDS = 10.0  # a lock held with less time left than this is taken again before a start
LOCK_ATTEMPTS = 50  # another Lambda's batch is waited for 5 s at most; then the start is left to it
LOCK_WAIT_SECONDS = 0.1
PRUNE_EVERY_SECONDS = 600.0
MIN_SEEDS = 3  # a group is formed only around a complaint with this many alike (itself included)
GROWTH_ROUNDS = 3  # a group is grown to its centroid's neighbourhood this many times
VERDICTS = 32  # groups found too small, remembered per account...
VERDICT_SECONDS = 30.0  # ...for this long
CATCH_UP_GROWTH = 1.1  # a running crisis looks for recent complaints it missed each time it grows by a tenth
NOTHING = CrisisDecision(Outcome.NONE)


def is_complaint(message: SocialMessage) -> bool:
    """Whether a message can be part of a crisis: a customer's own words, not praise, not an edit."""
    if message.direction is not Direction.INBOUND or message.deleted or message.edit_of or message.bot_command:
        return False
    if message.rating is not None and message.rating >= 4:
        return False
    return message.recommends is not True and bool(message.text.strip())


@dataclass
class _Verdict:
    """A group found too small for a crisis, remembered briefly: the complaints like it that
    follow are counted against it instead of growing the same group again (the costly part)."""

    centroid: Centroid
    language: str
    size: int
    needed: float
    until: float  # clock time it is trusted to


@dataclass
class _Account:
    """What a warm Lambda holds of one account between calls."""

    window: Window
    loaded_at: float
    refreshed_at: float
    pruned_at: float
    newest: float  # platform time of the newest complaint read from the store
    active: list[Crisis] = field(default_factory=list)
    active_at: float = float("-inf")
    swept: dict[str, int] = field(default_factory=dict)  # crisis id -> its members at the last catch-up
    verdicts: list[_Verdict] = field(default_factory=list)


class CrisisDetector:
    """Groups an account's complaints and decides when a group is a crisis (see the module docstring)."""

    def __init__(
        self,
        store: CrisisStore,
        settings: CrisisSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or CrisisSettings.from_env()
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._owner = uuid.uuid4().hex  # this detector's name on the account's start lock
        self._accounts: dict[str, _Account] = {}
        # Written by ``flush`` (once per stream batch): new complaints per account, complaints already
        # stored that joined a crisis, and per crisis the members it gained and when it last did.
        self._unwritten: dict[str, list[WindowEntry]] = defaultdict(list)
        self._unmarked: dict[tuple[str, str], list[WindowEntry]] = defaultdict(list)
        self._uncounted: dict[tuple[str, str], list[WindowEntry]] = defaultdict(list)
        self._seen_at: dict[tuple[str, str], float] = {}
        self._locks: dict[str, float] = {}  # account -> until when this detector holds its start lock

    # --- the sync's calls ----------------------------------------------------------

    def observe(self, message: SocialMessage) -> CrisisDecision:
        """Record one new inbound message and say whether it joined or started a crisis."""
        if not is_complaint(message):
            return NOTHING
        stems = features(message.text)
        if len(stems) < self.settings.min_stems:
            return NOTHING
        entry = WindowEntry(
            message_id=message.message_id,
            conversation_key=message.conversation_key,
            platform=message.platform.value,
            author_id=message.author.platform_id,
            created_at=message.created_at.timestamp(),
            stems=stems,
            language=language(message.text),
            text=message.text[:MAX_TEXT],
        )
        return self._observe(message.account_id, entry)

    def declare(self, account_id: str, ticket_id: str, sample_text: str) -> CrisisDecision:
        """An agent's crisis, from a ticket (its id names the crisis: ``t-<ticket id>``).

        STARTED with the recent similar complaints as members; JOINED (nothing created)
        when an active crisis of the account is already about the sample; ``repeated``
        when this ticket declared it before.
        """
        now = self._clock()
        crisis_id = f"t-{ticket_id}"
        existing = self._store.get(account_id, crisis_id)
        if existing is not None:
            return CrisisDecision(Outcome.STARTED, existing, repeated=True)
        stems, lang = features(sample_text), language(sample_text)
        account = self._account(account_id, now)
        ended = self._end_quiet(account_id, account, now)
        match = self._best_match(account, stems, lang)
        if match is not None:
            return CrisisDecision(Outcome.JOINED, match, ended=ended)
        since = now - self.settings.window_seconds
        alike = account.window.similar(stems, lang, threshold=self.settings.pair_similarity, since=since, until=now)
        centroid = Centroid.of([stems, *(n.stems for n in alike)])
        group = account.window.matching(centroid, lang, threshold=self.settings.join_similarity, since=since, until=now)
        crisis = Crisis(
            account_id=account_id,
            crisis_id=crisis_id,
            origin=Origin.DECLARED,
            centroid=centroid,
            started_at=now,
            first_seen=min([now, *(g.created_at for g in group)]),
            last_seen=now,
            ticket_id=ticket_id,
            language=lang,
        )
        decision = self._start(account_id, account, crisis, group, trigger=None, now=now)
        return replace(decision, ended=ended)

    def end(self, account_id: str, crisis_id: str, reason: str = "ended by an agent") -> Crisis | None:
        """End a crisis now. The ended crisis, or None if it was not active."""
        ended = self._store.end(account_id, crisis_id, ended_at=self._clock(), reason=reason, quiet_before=None)
        self._forget_active(account_id, crisis_id)
        return ended

    def end_quiet(self, account_id: str | None = None) -> list[Crisis]:
        """End every active crisis (of one account, or all) quiet for ``quiet_minutes``: for a schedule."""
        now = self._clock()
        cutoff = now - self.settings.quiet_seconds
        ended = []
        for crisis in self._store.active(account_id):
            if crisis.last_seen < cutoff:
                done = self._store.end(crisis.account_id, crisis.crisis_id, ended_at=now, reason="quiet", quiet_before=cutoff)
                if done is not None:
                    ended.append(done)
                    self._forget_active(crisis.account_id, crisis.crisis_id)
        return ended

    def active(self, account_id: str | None = None) -> list[Crisis]:
        """Active crises of one account, or of every account."""
        return self._store.active(account_id)

    def members(self, account_id: str, crisis_id: str) -> list[Member]:
        """A crisis's members still in the table (complaints are kept for the baseline period),
        oldest first: to link every member's ticket again after a failure."""
        self.flush()
        since = self._clock() - self.settings.history_seconds
        entries = [e for e in self._store.entries(account_id, since=since) if e.crisis_id == crisis_id]
        return [Member.of(e) for e in sorted(entries, key=lambda e: e.created_at)]

    def attach_ticket(self, account_id: str, crisis_id: str, ticket_id: str) -> bool:
        """Record the ticket standing for a crisis (the problem ticket). False if it has one already."""
        return self._store.attach_ticket(account_id, crisis_id, ticket_id)

    def flush(self) -> None:
        """Write what the observations since the last flush learned (the sync calls it once per
        stream batch): the new complaints (one write per quarter hour and 100 complaints), the
        stored ones that joined a crisis (one conditional update per page), each crisis's new members
        (one count per crisis). Only a complaint this flush wrote as new, or made a member, counts:
        one another Lambda wrote or made a member first counts nothing again."""
        unwritten, self._unwritten = self._unwritten, defaultdict(list)
        unmarked, self._unmarked = self._unmarked, defaultdict(list)
        uncounted, self._uncounted = self._uncounted, defaultdict(list)
        seen_at, self._seen_at = self._seen_at, {}
        locks, self._locks = self._locks, {}
        try:
            self._write(unwritten, unmarked, uncounted, seen_at)
        finally:  # the start locks go back once the batch's members are written (or could not be)
            for account_id in locks:
                self._store.release(account_id, self._owner)

    def _write(
        self,
        unwritten: dict[str, list[WindowEntry]],
        unmarked: dict[tuple[str, str], list[WindowEntry]],
        uncounted: dict[tuple[str, str], list[WindowEntry]],
        seen_at: dict[tuple[str, str], float],
    ) -> None:
        counted: set[tuple[str, str]] = set()  # complaints written as members by this flush
        for account_id, entries in unwritten.items():
            new = self._store.record_many(account_id, entries, keep_seconds=self.settings.history_seconds + 3600)
            for entry in entries:
                if entry.key in new:
                    counted.add((account_id, entry.key))
                elif entry.crisis_id:  # stored before (a redelivery another Lambda wrote): a member only if no crisis has it
                    unmarked[(account_id, entry.crisis_id)].append(entry)
        for (account_id, crisis_id), entries in unmarked.items():
            counted |= {(account_id, key) for key in self._store.mark_many(account_id, entries, crisis_id)}
        for (account_id, crisis_id), members in uncounted.items():
            counts = Counter(m.platform for m in {m.key: m for m in members}.values() if (account_id, m.key) in counted)
            if counts:
                updated = self._store.add_members(account_id, crisis_id, counts, seen_at=seen_at[(account_id, crisis_id)])
                if updated is not None and account_id in self._accounts:
                    self._remember_active(self._accounts[account_id], updated)

    # --- observing ---------------------------------------------------------------------

    def _observe(self, account_id: str, entry: WindowEntry) -> CrisisDecision:
        now = self._clock()
        account = self._account(account_id, now)
        ended = self._end_quiet(account_id, account, now)
        held = account.window.entries.get(entry.key)
        if held is not None:  # observed before (here, or read from the table): it counts nothing again
            if not held.crisis_id:
                return CrisisDecision(Outcome.NONE, repeated=True, ended=ended)
            crisis = next((c for c in account.active if c.crisis_id == held.crisis_id), None)
            crisis = crisis or self._store.get(account_id, held.crisis_id)
            return CrisisDecision(Outcome.JOINED, crisis, (Member.of(held),), repeated=True, ended=ended)
        prior = account.window.conversation_complaint(entry.conversation_key, entry.created_at, self.settings.window_seconds)
        if prior is not None:  # the customer wrote before, within the window: one complaint, not two
            return replace(self._later_message(account_id, account, entry, prior, now), ended=ended)
        match = self._best_match(account, entry.stems, entry.language)
        entry = account.window.add(replace(entry, crisis_id=None))
        self._unwritten[account_id].append(entry)
        if match is not None:
            self._assign(account_id, account, entry, match.crisis_id)
            decision = self._joined(account_id, account, entry, match, now)
        else:
            decision = self._detect(account_id, account, entry, now)
        return replace(decision, ended=ended)

    def _later_message(
        self, account_id: str, account: _Account, entry: WindowEntry, prior: WindowEntry, now: float
    ) -> CrisisDecision:
        """A customer's later message in a conversation whose complaint the window holds: it adds no
        complaint (a crisis is many customers, not one customer writing often; nothing is written
        for it). It names the crisis the conversation is in; if the conversation is in none and this
        message is like a running crisis, the conversation becomes its member (counted once)."""
        if prior.crisis_id:
            crisis = next((c for c in account.active if c.crisis_id == prior.crisis_id), None)
            if crisis is None or crisis.status is not Status.ACTIVE:
                return NOTHING
            return CrisisDecision(Outcome.JOINED, crisis, (Member.of(entry),))
        match = self._best_match(account, entry.stems, entry.language)
        if match is None:
            return NOTHING
        self._assign(account_id, account, prior, match.crisis_id)
        self._count(account_id, match, [prior], now)
        self._remember_active(account, match)
        return CrisisDecision(Outcome.JOINED, match, (Member.of(entry),))

    def _detect(self, account_id: str, account: _Account, entry: WindowEntry, now: float) -> CrisisDecision:
        settings = self.settings
        at = min(entry.created_at, now)
        since = at - settings.window_seconds
        if self._still_too_small(account, entry, now):
            return NOTHING
        alike = account.window.similar(entry.stems, entry.language, threshold=settings.pair_similarity, since=since, until=at)
        if len(alike) < MIN_SEEDS:
            return NOTHING
        centroid = Centroid.of(a.stems for a in alike)
        for _ in range(GROWTH_ROUNDS):
            group = self._group(account, centroid, entry, at)
            centroid = Centroid.of(g.stems for g in group)
        lang = _language_of(group)
        group = [g for g in group if compatible(lang, g.language)]  # a trigger of no known language grows any
        baseline = 0.0
        needed: float = settings.min_size
        if len(group) >= needed:  # only then is the baseline worth reading
            outside = account.window.traffic(lang, since, at, outside_crises=True)
            baseline = self._baseline(account, centroid, lang, at, len(group))
            needed = max(needed, settings.baseline_multiple * baseline, settings.min_share * outside)
            if len(group) < needed and len(group) >= max(settings.min_size, settings.baseline_multiple * baseline):
                # A spike too small a share of the traffic to be a crisis of its own: another wording
                # of a running crisis when it shares that crisis's words ("sin conexión" beside "sin
                # internet"): the whole group joins it.
                related = self._related(account, centroid, lang)
                if related is not None:
                    for member in group:
                        self._assign(account_id, account, member, related.crisis_id)
                    return self._joined_group(account_id, account, group, related, now)
        if len(group) < needed:
            verdict = _Verdict(centroid, lang, len(group), needed, now + VERDICT_SECONDS)
            account.verdicts = [*account.verdicts[-(VERDICTS - 1) :], verdict]
            return NOTHING
        crisis = Crisis(
            account_id=account_id,
            crisis_id=_detected_id(account_id, entry),
            origin=Origin.DETECTED,
            centroid=centroid,
            started_at=now,
            first_seen=min(g.created_at for g in group),
            last_seen=now,
            baseline=round(baseline, 3),
            language=lang,
        )
        return self._start(account_id, account, crisis, group, entry, now)

    def _baseline(self, account: _Account, centroid: Centroid, lang: str, at: float, size: int) -> float:
        """A group of ``size`` complaints' usual volume per window: those like it in the baseline
        period before the window, scaled up when the rest of the account's traffic is up."""
        settings = self.settings
        since = at - settings.window_seconds
        usual = account.window.matching(
            centroid,
            lang,
            threshold=settings.join_similarity,
            since=at - settings.history_seconds,
            until=since,
            unassigned=False,
        )
        per_window = settings.window_seconds / settings.baseline_seconds
        baseline = len(usual) * per_window
        # When everything else is up too (a campaign, a flood of every kind of complaint), the
        # group's usual volume is up with it: a crisis is a group that outgrows the rest.
        others_now = account.window.traffic(lang, since, at) - size
        others_usual = account.window.traffic(lang, at - settings.history_seconds, since) * per_window - baseline
        if others_usual > 0:
            baseline *= max(1.0, others_now / others_usual)
        return baseline

    def _still_too_small(self, account: _Account, entry: WindowEntry, now: float) -> bool:
        """Whether the complaint belongs to a group found too small moments ago, and adding it
        still leaves it too small (then it is counted there, and nothing is recomputed)."""
        account.verdicts = [v for v in account.verdicts if v.until > now]
        for verdict in account.verdicts:
            alike = verdict.centroid.similarity(entry.stems) >= self.settings.join_similarity
            if alike and compatible(entry.language, verdict.language):
                verdict.size += 1
                return verdict.size < verdict.needed
        return False

    def _group(self, account: _Account, centroid: Centroid, entry: WindowEntry, at: float) -> list[WindowEntry]:
        """The window's complaints (not in a crisis yet, in ``entry``'s language) close to ``centroid``,
        ``entry`` always among them."""
        settings = self.settings
        group = account.window.matching(
            centroid, entry.language, threshold=settings.join_similarity, since=at - settings.window_seconds, until=at
        )
        if not entry.crisis_id and all(g is not entry for g in group):
            group.append(entry)
        return group

    def _assign(self, account_id: str, account: _Account, entry: WindowEntry, crisis_id: str) -> None:
        """Make a held complaint a member (written by ``flush``: with it if it is new, else marked)."""
        account.window.assign(entry, crisis_id)
        if entry.home:
            self._unmarked[(account_id, crisis_id)].append(entry)

    def _count(self, account_id: str, crisis: Crisis, members: list[WindowEntry], now: float) -> None:
        """Count new members: at once in the crisis this container holds, in the table at ``flush``."""
        for member in members:
            crisis.platform_counts[member.platform] = crisis.platform_counts.get(member.platform, 0) + 1
        crisis.size += len(members)
        crisis.last_seen = now
        self._uncounted[(account_id, crisis.crisis_id)].extend(members)
        self._seen_at[(account_id, crisis.crisis_id)] = now

    def _joined(self, account_id: str, account: _Account, entry: WindowEntry, crisis: Crisis, now: float) -> CrisisDecision:
        """Count a complaint that just became a member (and those the crisis missed before)."""
        joined = [entry, *self._catch_up(account_id, account, crisis, min(entry.created_at, now))]
        return self._joined_group(account_id, account, joined, crisis, now)

    def _joined_group(
        self, account_id: str, account: _Account, group: list[WindowEntry], crisis: Crisis, now: float
    ) -> CrisisDecision:
        """Count complaints that just became members of a running crisis together."""
        self._count(account_id, crisis, group, now)
        self._remember_active(account, crisis)
        return CrisisDecision(Outcome.JOINED, crisis, tuple(Member.of(m) for m in sorted(group, key=lambda g: g.created_at)))

    def _related(self, account: _Account, centroid: Centroid, lang: str) -> Crisis | None:
        """The running crisis whose members' words a group shares most, if it shares enough."""
        best, score = None, self.settings.related_similarity
        for crisis in account.active:
            if crisis.status is Status.ACTIVE and crisis.language == lang:
                overlap = account.window.crisis_centroid(crisis.crisis_id, crisis.centroid).overlap(centroid)
                if overlap >= score:
                    best, score = crisis, overlap
        return best

    def _catch_up(self, account_id: str, account: _Account, crisis: Crisis, at: float) -> list[WindowEntry]:
        """As a crisis grows, its centroid takes in more wordings: recent complaints that came
        before it could recognise them join it now (each time it has grown by a tenth)."""
        members = account.window.members(crisis.crisis_id)
        if members < account.swept.setdefault(crisis.crisis_id, members) * CATCH_UP_GROWTH:
            return []
        account.swept[crisis.crisis_id] = members
        centroid = account.window.crisis_centroid(crisis.crisis_id, crisis.centroid)
        since = at - self.settings.window_seconds
        late = account.window.matching(centroid, crisis.language, threshold=self.settings.join_similarity, since=since, until=at)
        for member in late:
            self._assign(account_id, account, member, crisis.crisis_id)
        return late

    def _start(
        self,
        account_id: str,
        account: _Account,
        crisis: Crisis,
        group: list[WindowEntry],
        trigger: WindowEntry | None,
        now: float,
    ) -> CrisisDecision:
        """Create ``crisis`` and make ``group`` its members, all under the account's lock: a
        concurrent start finds the crisis and joins it, a repeat finds the start complete."""
        with self._locked(account_id) as locked:
            if not locked:
                return NOTHING
            account.active, account.active_at = self._store.active(account_id), now
            held = next((c for c in account.active if c.crisis_id == crisis.crisis_id), None)
            if held is not None:  # this very start was made before (a declaration repeated)
                return CrisisDecision(Outcome.STARTED, held, repeated=True)
            rival = self._rival(account, crisis, trigger)
            if rival is not None:  # another Lambda started it meanwhile
                if trigger is None:
                    return CrisisDecision(Outcome.JOINED, rival)
                self._assign(account_id, account, trigger, rival.crisis_id)
                return self._joined(account_id, account, trigger, rival, now)
            if not self._store.create(crisis):  # it exists but is no longer active: it ended meanwhile
                return NOTHING
        logger.info("crisis started", extra={"account_id": account_id, "crisis_id": crisis.crisis_id, "group": len(group)})
        # The group's complaints become members (written with the batch by ``flush``), the trigger last.
        ordered = sorted((g for g in group if g is not trigger and not g.crisis_id), key=lambda g: g.created_at)
        marked = [*ordered, *([trigger] if trigger is not None and not trigger.crisis_id else [])]
        for member in marked:
            self._assign(account_id, account, member, crisis.crisis_id)
        self._count(account_id, crisis, marked, now)
        self._remember_active(account, crisis)
        account.swept[crisis.crisis_id] = account.window.members(crisis.crisis_id)
        members = tuple(Member.of(m) for m in marked)
        return CrisisDecision(Outcome.STARTED, crisis, members, _samples(group, crisis.centroid))

    @contextmanager
    def _locked(self, account_id: str) -> Iterator[bool]:
        """The account's start lock (waited for a few seconds); yields whether it is held. It is
        kept until ``flush``: every start of a batch under one lock (two writes, not two a start),
        and no other Lambda starts a crisis before this batch's members are written."""
        now = time.time()
        if self._locks.get(account_id, 0.0) - now < LOCK_MARGIN_SECONDS:
            for _ in range(LOCK_ATTEMPTS):
                if self._store.acquire(account_id, self._owner, seconds=LOCK_SECONDS, now=now):
                    self._locks[account_id] = now + LOCK_SECONDS
                    break
                self._sleep(LOCK_WAIT_SECONDS)
                now = time.time()
            else:
                logger.warning("crisis start skipped: the account's start lock stayed taken", extra={"account_id": account_id})
                yield False
                return
        yield True

    # --- state held between calls ------------------------------------------------------

    def _account(self, account_id: str, now: float) -> _Account:
        settings = self.settings
        horizon = now - settings.history_seconds
        account = self._accounts.get(account_id)
        if account is None or now - account.loaded_at >= settings.reload_seconds:
            window = Window()
            for entry in self._store.entries(account_id, since=horizon):
                window.add(entry)
            newest = max((e.created_at for e in window.entries.values()), default=horizon)
            account = _Account(window, loaded_at=now, refreshed_at=now, pruned_at=now, newest=newest)
            self._accounts[account_id] = account
        elif now - account.refreshed_at >= settings.refresh_seconds:
            for entry in self._store.entries(account_id, since=max(horizon, account.newest - settings.lateness_seconds)):
                account.window.add(entry)
                account.newest = max(account.newest, entry.created_at)
            account.refreshed_at = now
        if now - account.pruned_at >= PRUNE_EVERY_SECONDS:
            account.window.prune(horizon)
            account.pruned_at = now
        if now - account.active_at >= settings.active_seconds:
            account.active, account.active_at = self._store.active(account_id), now
        return account

    def _end_quiet(self, account_id: str, account: _Account, now: float) -> tuple[Crisis, ...]:
        cutoff = now - self.settings.quiet_seconds
        ended = []
        for crisis in [c for c in account.active if c.last_seen < cutoff]:
            done = self._store.end(account_id, crisis.crisis_id, ended_at=now, reason="quiet", quiet_before=cutoff)
            if done is not None:
                logger.info("crisis ended", extra={"account_id": account_id, "crisis_id": crisis.crisis_id, "size": done.size})
                ended.append(done)
        if ended or any(c.last_seen < cutoff for c in account.active):
            account.active, account.active_at = self._store.active(account_id), now
        return tuple(ended)

    def _best_match(self, account: _Account, stems: frozenset[str], lang: str) -> Crisis | None:
        """The active crisis most like a complaint, if it is like enough."""
        best, score = None, self.settings.join_similarity
        for crisis in account.active:
            if crisis.status is Status.ACTIVE and compatible(lang, crisis.language):
                similarity = account.window.crisis_centroid(crisis.crisis_id, crisis.centroid).similarity(stems)
                if similarity >= score:
                    best, score = crisis, similarity
        return best

    def _rival(self, account: _Account, crisis: Crisis, trigger: WindowEntry | None) -> Crisis | None:
        """An active crisis about the same thing as ``crisis`` (started by another Lambda meanwhile)."""
        if trigger is not None and (match := self._best_match(account, trigger.stems, trigger.language)):
            return match
        for other in account.active:
            if compatible(crisis.language, other.language):
                centroid = account.window.crisis_centroid(other.crisis_id, other.centroid)
                if centroid.overlap(crisis.centroid) >= self.settings.merge_similarity:
                    return other
        return None

    def _remember_active(self, account: _Account, crisis: Crisis) -> None:
        account.active = [c for c in account.active if c.crisis_id != crisis.crisis_id] + [crisis]

    def _forget_active(self, account_id: str, crisis_id: str) -> None:
        account = self._accounts.get(account_id)
        if account is not None:
            account.active = [c for c in account.active if c.crisis_id != crisis_id]


def _detected_id(account_id: str, entry: WindowEntry) -> str:
    """A detected crisis is named after the complaint that started it: a repeat finds the same name."""
    digest = hashlib.sha256(f"{account_id}\n{entry.platform}\n{entry.message_id}".encode()).hexdigest()[:8]
    started = datetime.fromtimestamp(entry.created_at, tz=UTC).strftime("%Y%m%dT%H%M")
    return f"c-{started}-{digest}"


def _language_of(group: list[WindowEntry]) -> str:
    """The language most of a group's complaints are in ("" if none says)."""
    known = Counter(g.language for g in group if g.language)
    return known.most_common(1)[0][0] if known else ""


def _samples(group: list[WindowEntry], centroid: Centroid) -> tuple[str, ...]:
    """The most typical texts of a group, each said once."""
    seen: set[str] = set()
    samples = []
    for member in sorted(group, key=lambda g: (-centroid.similarity(g.stems), g.created_at)):
        key = " ".join(normalize(member.text).split())
        if member.text and key not in seen:
            seen.add(key)
            samples.append(member.text)
        if len(samples) == SAMPLES:
            break
    return tuple(samples)
