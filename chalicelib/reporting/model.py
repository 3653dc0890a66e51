"""The report's numbers, computed from per-conversation facts (pure: no I/O, ``now`` is given).

A *channel* is a platform and a visibility (public threads and private chats of one
platform answer to different SLA targets). Percentiles are nearest-rank (the value at
rank ceil(p/100 x n)): always one of the measured times, never an interpolation.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from chalicelib.models import Platform
from chalicelib.reporting.data import ConversationFacts, ReplyFact, TokenFact

# Targets when none are given (pure tests and tools); ``make report`` and the metrics use the triage
# rules file's (``ops.metrics.sla_targets``). ``SlaTargets`` keys are ``<platform>:<public|private>``,
# ``<platform>`` or ``public``/``private``, most specific first.
DEFAULT_SLA_SECONDS: dict[str, float] = {"public": 3600, "private": 86400}
DEFAULT_RESOLUTION_SLA_SECONDS: dict[str, float] = {"public": 3 * 86400, "private": 3 * 86400}
BUCKET_SIZES = (300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 48
WAITING_SHOWN = 10
SUBJECTS_SHOWN = 5
# Reply failures only a person can fix: the account must be reconnected or re-permitted.
RECONNECT_KINDS = frozenset({"token_expired", "token_revoked", "permission_missing"})
_PLATFORM_ORDER = {platform.value: index for index, platform in enumerate(Platform)}


@dataclass(frozen=True)
class Channel:
    """A platform and a visibility: ``x:public`` (mentions), ``x:private`` (DMs)..."""

    platform: str
    private: bool

    @property
    def visibility(self) -> str:
        return "private" if self.private else "public"

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.visibility}"

    def sort_key(self) -> tuple[int, str, bool]:
        return _PLATFORM_ORDER.get(self.platform, len(_PLATFORM_ORDER)), self.platform, self.private


def channel_of(facts: ConversationFacts) -> Channel:
    return Channel(facts.platform, facts.private)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``3600``, ``90s``, ``30m``, ``1h``, ``2d`` -> seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"not a duration: {text!r} (e.g. 3600, 30m, 1h, 2d)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class SlaTargets:
    """First-response targets per channel, in seconds (the triage rules file can feed it)."""

    def __init__(self, targets: Mapping[str, float] | None = None) -> None:
        self.targets = dict(DEFAULT_SLA_SECONDS if targets is None else targets)

    @classmethod
    def parse(cls, specs: Iterable[str], *, base: Mapping[str, float] = DEFAULT_SLA_SECONDS) -> SlaTargets:
        """``["x:public=1h", "private=24h"]`` over ``base`` (the defaults)."""
        targets = dict(base)
        for spec in specs:
            name, sep, value = spec.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"an SLA target is CHANNEL=DURATION, e.g. x:public=1h, not {spec!r}")
            targets[name.strip().lower()] = parse_duration(value)
        return cls(targets)

    def for_channel(self, channel: Channel) -> float | None:
        for name in (channel.key, channel.platform, channel.visibility):
            if name in self.targets:
                return self.targets[name]
        return None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class VolumeSeries:
    """Customer messages of one channel per time bucket (``Report.bucket_starts``)."""

    channel: Channel
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class TimesSummary:
    """p50/p90 of one channel's times (first response or resolution) against its target."""

    channel: Channel
    count: int
    p50: float
    p90: float
    sla_seconds: float | None
    within_sla: int | None  # how many of ``count`` met the target (None without a target)


@dataclass(frozen=True)
class WaitingConversation:
    """A customer waiting for an answer (an open ticket, their latest words unanswered)."""

    channel: Channel
    key: str
    label: str
    waiting_since: datetime
    waiting_seconds: float
    sla_seconds: float | None
    answered_before: bool
    parked: bool

    @property
    def past_sla(self) -> bool:
        return self.sla_seconds is not None and self.waiting_seconds > self.sla_seconds


@dataclass(frozen=True)
class FailedReplyGroup:
    """Agents' answers that did not reach the customer, for one reason."""

    failure_kind: str
    count: int
    states: tuple[str, ...]  # failed / unknown / retry
    latest_at: datetime | None
    latest_note: str
    conversations: tuple[str, ...]


@dataclass(frozen=True)
class Crisis:
    """A surge of complaints about one thing (the crisis package fills these in)."""

    name: str
    active: bool
    sizes: tuple[tuple[datetime, int], ...]  # size over time, oldest first

    @property
    def size(self) -> int:
        return self.sizes[-1][1] if self.sizes else 0


@dataclass(frozen=True)
class AttentionItem:
    """One line of "what needs attention now": ``kind`` picks the sentence, ``detail`` refines it
    (a reply failure kind), ``subjects`` name conversations or crises."""

    kind: str  # tokens_failing, parked, set_aside, replies_unknown, replies_failed, past_sla, crisis
    count: int
    oldest_seconds: float | None = None
    subjects: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    window_start: datetime
    table_name: str
    bucket_seconds: int
    bucket_starts: tuple[datetime, ...]
    volume: tuple[VolumeSeries, ...]
    first_response: tuple[TimesSummary, ...]
    resolution: tuple[TimesSummary, ...]
    waiting: tuple[WaitingConversation, ...]  # the longest waiting, longest first
    waiting_total: int
    failed_replies: tuple[FailedReplyGroup, ...]
    crises: tuple[Crisis, ...] | None  # None: no crisis detection connected
    attention: tuple[AttentionItem, ...]
    inbound_total: int  # customer messages in the period
    conversations_total: int  # conversations that started in the period


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def choose_buckets(first: datetime, now: datetime) -> tuple[int, tuple[datetime, ...]]:
    """The smallest bucket size giving at most ``MAX_BUCKETS`` buckets from ``first`` to ``now``
    (aligned on the epoch: days start at 00:00 UTC), and the buckets' starts."""

    def buckets(size: int) -> int:
        return math.floor(now.timestamp() / size) - math.floor(first.timestamp() / size) + 1

    size = next((size for size in BUCKET_SIZES if buckets(size) <= MAX_BUCKETS), BUCKET_SIZES[-1])
    start = math.floor(first.timestamp() / size) * size
    return size, tuple(datetime.fromtimestamp(start + i * size, tz=UTC) for i in range(buckets(size)))


def _times(conversations: Iterable[ConversationFacts], value: str, sla: SlaTargets) -> tuple[TimesSummary, ...]:
    by_channel: dict[Channel, list[float]] = defaultdict(list)
    for facts in conversations:
        seconds = getattr(facts, value)
        if seconds is not None:
            by_channel[channel_of(facts)].append(float(seconds))
    summaries = []
    for channel in sorted(by_channel, key=Channel.sort_key):
        times, target = by_channel[channel], sla.for_channel(channel)
        summaries.append(
            TimesSummary(
                channel=channel,
                count=len(times),
                p50=percentile(times, 50),
                p90=percentile(times, 90),
                sla_seconds=target,
                within_sla=None if target is None else sum(1 for t in times if t <= target),
            )
        )
    return tuple(summaries)


def _failed_replies(conversations: Iterable[ConversationFacts], since: datetime) -> tuple[FailedReplyGroup, ...]:
    groups: dict[str, list[tuple[ConversationFacts, ReplyFact]]] = defaultdict(list)
    for facts in conversations:
        for reply in facts.reply_problems:
            if reply.created_at is None or reply.created_at >= since:
                groups[reply.failure_kind].append((facts, reply))
    result = []
    for kind, found in groups.items():
        latest = max((reply for _, reply in found), key=lambda reply: reply.created_at or since)
        result.append(
            FailedReplyGroup(
                failure_kind=kind,
                count=len(found),
                states=tuple(sorted({reply.state for _, reply in found})),
                latest_at=latest.created_at,
                latest_note=latest.note,
                conversations=tuple(dict.fromkeys(facts.label for facts, _ in found)),
            )
        )
    return tuple(sorted(result, key=lambda group: -group.count))


def _attention(
    conversations: Sequence[ConversationFacts],
    waiting: Sequence[WaitingConversation],
    failed: Sequence[FailedReplyGroup],
    crises: Sequence[Crisis],
    tokens: Sequence[TokenFact],
    now: datetime,
) -> tuple[AttentionItem, ...]:
    items: list[AttentionItem] = []
    failing = [token for token in tokens if token.failing]
    if failing:  # first: every answer on those accounts fails until someone reconnects them
        items.append(
            AttentionItem(
                kind="tokens_failing",
                count=len(failing),
                subjects=tuple(f"{token.platform}: {token.status} ({token.detail})" for token in failing),
            )
        )
    for aside, kind in ((False, "parked"), (True, "set_aside")):
        holding = [(facts, [p for p in facts.parked if p.aside == aside]) for facts in conversations]
        holding = [(facts, parked) for facts, parked in holding if parked]
        if holding:
            times = [p.parked_at for _, parked in holding for p in parked if p.parked_at]
            holding.sort(key=lambda pair: min((p.parked_at for p in pair[1] if p.parked_at), default=now))
            items.append(
                AttentionItem(
                    kind=kind,
                    count=sum(len(parked) for _, parked in holding),
                    oldest_seconds=(now - min(times)).total_seconds() if times else None,
                    subjects=tuple(
                        f"{facts.label}: {parked[0].reason}" if parked[0].reason else facts.label
                        for facts, parked in holding[:SUBJECTS_SHOWN]
                    ),
                )
            )
    for group in failed:
        needs_person = "unknown" in group.states or "failed" in group.states
        if needs_person:
            items.append(
                AttentionItem(
                    kind="replies_unknown" if group.states == ("unknown",) else "replies_failed",
                    count=group.count,
                    subjects=group.conversations[:SUBJECTS_SHOWN],
                    detail=group.failure_kind,
                )
            )
    # Accounts to reconnect first: every later answer on them fails the same way.
    items.sort(
        key=lambda item: (
            item.kind != "tokens_failing",
            item.kind not in ("parked", "set_aside"),
            item.detail not in RECONNECT_KINDS,
        )
    )
    late = [w for w in waiting if w.past_sla]
    if late:
        items.append(
            AttentionItem(
                kind="past_sla",
                count=len(late),
                oldest_seconds=late[0].waiting_seconds,
                subjects=tuple(w.label for w in late[:SUBJECTS_SHOWN]),
            )
        )
    active = [crisis for crisis in crises if crisis.active]
    if active:
        items.append(
            AttentionItem(
                kind="crisis",
                count=len(active),
                subjects=tuple(f"{crisis.name} ({crisis.size})" for crisis in active[:SUBJECTS_SHOWN]),
            )
        )
    return tuple(items)


def build_report(
    conversations: Sequence[ConversationFacts],
    *,
    now: datetime,
    table_name: str = "",
    sla: SlaTargets | None = None,
    resolution_sla: SlaTargets | None = None,
    window: timedelta = timedelta(days=7),
    crises: Sequence[Crisis] | None = None,
    tokens: Sequence[TokenFact] = (),
) -> Report:
    """Everything the page shows, for the ``window`` before ``now`` (waiting customers and parked
    messages whatever their age: an old one matters more, not less). ``sla``: first-response
    targets; ``resolution_sla``: resolution targets; ``crises``: None when no detection is connected; ``tokens``: the latest token check."""
    now, sla = _utc(now), sla or SlaTargets()
    resolution_sla = resolution_sla or SlaTargets(DEFAULT_RESOLUTION_SLA_SECONDS)
    since = now - window
    recent = [facts for facts in conversations if facts.first_inbound and facts.first_inbound >= since]

    inbound = [(channel_of(facts), moment) for facts in conversations for moment in facts.inbound if since <= moment <= now]
    bucket_seconds, starts = choose_buckets(min(m for _, m in inbound), now) if inbound else (0, ())
    counts: dict[Channel, list[int]] = {}
    for channel, moment in inbound:
        series = counts.setdefault(channel, [0] * len(starts))
        series[int((moment - starts[0]).total_seconds() // bucket_seconds)] += 1

    waiting = []
    for facts in conversations:
        since_when = facts.waiting_since()
        if since_when is not None:
            channel = channel_of(facts)
            waiting.append(
                WaitingConversation(
                    channel=channel,
                    key=facts.key,
                    label=facts.label,
                    waiting_since=since_when,
                    waiting_seconds=(now - since_when).total_seconds(),
                    sla_seconds=sla.for_channel(channel),
                    answered_before=facts.response_seconds is not None,
                    parked=bool(facts.parked),
                )
            )
    waiting.sort(key=lambda w: -w.waiting_seconds)
    failed = _failed_replies(conversations, since)

    return Report(
        generated_at=now,
        window_start=since,
        table_name=table_name,
        bucket_seconds=bucket_seconds,
        bucket_starts=starts,
        volume=tuple(VolumeSeries(c, tuple(counts[c])) for c in sorted(counts, key=Channel.sort_key)),
        first_response=_times(recent, "response_seconds", sla),
        resolution=_times(recent, "resolution_seconds", resolution_sla),
        waiting=tuple(waiting[:WAITING_SHOWN]),
        waiting_total=len(waiting),
        failed_replies=failed,
        crises=None if crises is None else tuple(crises),
        attention=_attention(conversations, waiting, failed, crises or (), tokens, now),
        inbound_total=len(inbound),
        conversations_total=len(recent),
    )
