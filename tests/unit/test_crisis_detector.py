"""Crisis detection over an in-memory store: grouping, spikes over the baseline, start, join, end."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from chalicelib.crisis import (
    CrisisDecision,
    CrisisDetector,
    CrisisSettings,
    CrisisStoreUnavailable,
    MemoryCrisisStore,
    Origin,
    Outcome,
    Status,
)
from chalicelib.crisis.window import WindowEntry
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()
SETTINGS = CrisisSettings(refresh_seconds=0, active_seconds=0)  # one process: always read the store

OUTAGE_EN = [
    "your app keeps crashing when I try to check in",
    "App crashed again, can't check in for my flight",
    "is the app down? check in fails every time",
    "cannot check in, the app just crashes",
    "check in through the app is impossible, it crashes",
    "app crash every time I open check in",
    "the app is down and I need to check in",
    "trying to check in but the app crashed twice",
]
CHARGED_ES = [
    "me habéis cobrado dos veces el mismo billete",
    "cobro duplicado en mi tarjeta por el billete",
    "me cobraron dos veces el billete, quiero el dinero",
    "dos cobros del mismo billete en mi tarjeta",
    "billete cobrado dos veces, devolvedme un cobro",
    "otra vez cobrado el billete dos veces en la tarjeta",
]
UNRELATED = [
    "my bag never arrived in Denver, third day without clothes",
    "the flight attendant was rude to my mother",
    "el asiento estaba roto y nadie hizo nada",
    "refund for my cancelled hotel still missing after six weeks",
    "why is the wifi on board so slow",
    "the lounge in Boston was dirty and crowded",
    "lost my headphones on the plane, who do I contact",
    "la comida del vuelo estaba fría",
    "gate agent refused my stroller at the door",
    "seat 14C does not recline at all",
]


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


_ids = itertools.count(1)


def complaint(
    text: str,
    at: float,
    *,
    platform: Platform = Platform.X,
    account: str = "brand",
    direction: Direction = Direction.INBOUND,
    message_id: str | None = None,
    **fields: object,
) -> SocialMessage:
    message_id = message_id or f"m{next(_ids)}"
    return SocialMessage(
        platform=platform,
        kind=Kind.MENTION,
        direction=direction,
        message_id=message_id,
        conversation_key=f"{platform.value}:thread:{message_id}",
        account_id=account,
        author=Author(platform_id=f"person-{message_id}"),
        text=text,
        created_at=datetime.fromtimestamp(at, tz=UTC),
        **fields,  # type: ignore[arg-type]
    )


def cycle(texts: list[str]) -> Iterator[str]:
    return itertools.cycle(texts)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryCrisisStore:
    return MemoryCrisisStore()


@pytest.fixture
def detector(store: MemoryCrisisStore, clock: Clock) -> CrisisDetector:
    return CrisisDetector(store, SETTINGS, clock=clock)


def observe(detector: CrisisDetector, clock: Clock, message: SocialMessage) -> CrisisDecision:
    """One message, written at once (a stream batch of one)."""
    clock.now = max(clock.now, message.created_at.timestamp())
    decision = detector.observe(message)
    detector.flush()
    return decision


def test_a_burst_of_english_paraphrases_starts_one_crisis_that_the_rest_join(detector, clock) -> None:
    texts, noise = cycle(OUTAGE_EN), cycle(UNRELATED)
    decisions = []
    for i in range(30):  # one outage complaint and one unrelated complaint a minute
        decisions.append(("outage", observe(detector, clock, complaint(next(texts), T0 + i * 60))))
        decisions.append(("other", observe(detector, clock, complaint(next(noise), T0 + i * 60 + 30))))

    started = [d for kind, d in decisions if d.outcome is Outcome.STARTED]
    assert len(started) == 1
    crisis = started[0].crisis
    assert crisis.origin is Origin.DETECTED and crisis.language == "en"
    assert len(started[0].members) >= SETTINGS.min_size  # the complaints before the start are in it too
    assert started[0].samples and all(sample in OUTAGE_EN for sample in started[0].samples)
    after = [(kind, d) for kind, d in decisions[decisions.index(("outage", started[0])) + 1 :]]
    assert all(d.outcome is Outcome.JOINED and d.crisis.crisis_id == crisis.crisis_id for k, d in after if k == "outage")
    assert all(d.outcome is Outcome.NONE for k, d in after if k == "other")
    [active] = detector.active("brand")
    assert active.size == 30 and active.platform_counts == {"x": 30}
    assert active.first_seen == T0


def test_a_wording_that_shares_only_synonyms_with_the_crowd_joins_its_crisis(detector, clock) -> None:
    outage = cycle(
        [
            "no internet since this morning, is there an outage?",
            "internet down for the whole street",
            "is your network down? no internet at all",
            "internet outage again, working from home is impossible",
        ]
    )
    for i in range(40):
        observe(detector, clock, complaint(next(outage), T0 + i * 20))
    [crisis] = detector.active("brand")
    # no word of "internet"/"outage"/"down": "wifi" and "dead" are the same things said otherwise
    later = [
        observe(detector, clock, complaint("mobile data and home wifi both dead, what is going on", T0 + 800 + i * 10))
        for i in range(12)
    ]
    assert all(d.outcome is Outcome.JOINED and d.crisis.crisis_id == crisis.crisis_id for d in later)
    assert [c.size for c in detector.active("brand")] == [52]


def conversation_message(text: str, at: float, person: str, n: int) -> SocialMessage:
    """The ``n``-th message of one customer's chat (one conversation)."""
    return SocialMessage(
        platform=Platform.WHATSAPP,
        kind=Kind.DIRECT_MESSAGE,
        direction=Direction.INBOUND,
        message_id=f"wamid.{person}.{n}",
        conversation_key=f"whatsapp:dm:brand:{person}",
        account_id="brand",
        author=Author(platform_id=person),
        text=text,
        created_at=datetime.fromtimestamp(at, tz=UTC),
    )


def test_one_customer_writing_again_and_again_is_one_complaint(detector, clock, store) -> None:
    # Twelve messages about one thing from one person within the hour: not a crowd, no crisis.
    texts = cycle(OUTAGE_EN)
    decisions = [observe(detector, clock, conversation_message(next(texts), T0 + i * 60, "ana", i)) for i in range(12)]
    assert {d.outcome for d in decisions} == {Outcome.NONE} and detector.active() == []
    assert len(store.entries("brand", since=T0 - 1)) == 1  # the window holds the conversation once


def test_a_members_later_messages_count_nothing_and_name_its_crisis(detector, clock) -> None:
    texts = cycle(OUTAGE_EN)
    for i in range(20):
        observe(detector, clock, conversation_message(next(texts), T0 + i * 30, f"p{i}", 0))
    [crisis] = detector.active("brand")
    assert crisis.size == 20
    # every customer writes again: their conversations are members already
    again = [observe(detector, clock, conversation_message(next(texts), T0 + 700 + i, f"p{i}", 1)) for i in range(20)]
    assert all(d.outcome is Outcome.JOINED and d.crisis.crisis_id == crisis.crisis_id for d in again)
    assert [c.size for c in detector.active("brand")] == [20]


def test_a_customers_later_message_about_a_running_crisis_makes_their_conversation_a_member(detector, clock) -> None:
    observe(detector, clock, conversation_message("where do I recycle the old modem?", T0, "late", 0))
    texts = cycle(OUTAGE_EN)
    for i in range(20):
        observe(detector, clock, conversation_message(next(texts), T0 + 60 + i * 30, f"p{i}", 0))
    [crisis] = detector.active("brand")
    joined = observe(detector, clock, conversation_message("the app crashes at check in, again", T0 + 800, "late", 1))
    assert joined.outcome is Outcome.JOINED and joined.crisis.crisis_id == crisis.crisis_id
    assert [c.size for c in detector.active("brand")] == [21]


def test_spanish_complaints_group_apart_from_english_ones(detector, clock) -> None:
    en, es = cycle(OUTAGE_EN), cycle(CHARGED_ES)
    for i in range(20):
        observe(detector, clock, complaint(next(en), T0 + i * 60))
        observe(detector, clock, complaint(next(es), T0 + i * 60 + 30, platform=Platform.WHATSAPP))
    crises = {c.language: c for c in detector.active("brand")}
    assert set(crises) == {"en", "es"}
    assert crises["en"].platform_counts == {"x": 20}
    assert crises["es"].platform_counts == {"whatsapp": 20}


def test_unrelated_complaints_at_volume_start_nothing(detector, clock) -> None:
    outcomes = {observe(detector, clock, complaint(text, T0 + i * 20)).outcome for i, text in enumerate(UNRELATED * 3)}
    # the same ten texts three times: each has 2 copies alike, never the 10 a crisis needs
    assert outcomes == {Outcome.NONE}
    assert detector.active() == []


def test_a_crisis_needs_the_minimum_size(detector, clock) -> None:
    text = "the app crashes at check in"
    decisions = [observe(detector, clock, complaint(text, T0 + i * 60)) for i in range(SETTINGS.min_size)]
    assert [d.outcome for d in decisions[:-1]] == [Outcome.NONE] * (SETTINGS.min_size - 1)
    assert decisions[-1].outcome is Outcome.STARTED
    assert len(decisions[-1].members) == SETTINGS.min_size


def test_a_spike_must_pass_a_multiple_of_the_groups_usual_volume(store, clock) -> None:
    text = "the app crashes at check in"
    usual = CrisisDetector(store, SETTINGS, clock=clock)
    # The day before: the same complaint 8 times an hour, every hour. Never a crisis: 8 < 10.
    for i in range(24 * 8):
        assert observe(usual, clock, complaint(text, T0 + i * 450)).outcome is Outcome.NONE
    # Then a burst of one a minute. With 8 an hour usual, a crisis needs 3 x 8 = 24 in the hour.
    burst = T0 + 24 * 3600
    decisions = [observe(usual, clock, complaint(text, burst + i * 60)) for i in range(30)]
    started = [d.outcome for d in decisions].index(Outcome.STARTED)
    crisis = decisions[started].crisis
    assert 7.5 <= crisis.baseline <= 8.5
    assert len(decisions[started].members) >= SETTINGS.baseline_multiple * crisis.baseline

    # The same burst to an account that never had this complaint starts at the minimum size.
    new = CrisisDetector(MemoryCrisisStore(), SETTINGS, clock=clock)
    fresh = [observe(new, clock, complaint(text, burst + i * 60, account="new")) for i in range(30)]
    assert [d.outcome for d in fresh].index(Outcome.STARTED) == SETTINGS.min_size - 1 < started


def test_a_flood_of_every_kind_of_complaint_starts_no_crisis_but_a_group_outgrowing_it_does(detector, clock) -> None:
    topics = [
        "the app crashes at check in",
        "my suitcase never arrived in Denver",
        "the wifi on board is broken",
        "rude gate agent in Boston",
        "seat recliner stuck upright",
        "refund for the hotel voucher missing",
    ]
    # A day of one complaint an hour on each topic, then an hour with twelve on each: all
    # traffic is up twelve times, no topic more than the rest.
    for hour in range(24):
        for i, text in enumerate(topics):
            observe(detector, clock, complaint(text, T0 + hour * 3600 + i * 500))
    flood = T0 + 24 * 3600
    decisions = [
        observe(detector, clock, complaint(text, flood + n * 290 + i * 40)) for n in range(12) for i, text in enumerate(topics)
    ]
    assert {d.outcome for d in decisions} == {Outcome.NONE}
    # The next hour the rest stays at twelve an hour and one topic goes to sixty.
    later = flood + 3600
    more = [(topics[0], n) for n in range(60)] + [(text, n * 5) for text in topics[1:] for n in range(12)]
    decisions = [observe(detector, clock, complaint(text, later + n * 55)) for text, n in sorted(more, key=lambda p: p[1])]
    [started] = [d for d in decisions if d.outcome is Outcome.STARTED]
    assert "crash" in started.crisis.keywords and started.crisis.baseline > 1.0  # its usual one an hour, scaled up


def test_old_complaints_outside_the_window_do_not_count(detector, clock) -> None:
    text = "the app crashes at check in"
    # 9 of them, then the tenth 61 minutes after the first: only 9 are within the hour
    for i in range(9):
        observe(detector, clock, complaint(text, T0 + i * 60))
    assert observe(detector, clock, complaint(text, T0 + 61 * 60 + 1)).outcome is Outcome.NONE


def test_a_quiet_crisis_ends_and_is_not_joined_afterwards(detector, clock) -> None:
    text = "the app crashes at check in"
    for i in range(12):
        observe(detector, clock, complaint(text, T0 + i * 60))
    [crisis] = detector.active("brand")
    quiet = T0 + 11 * 60 + SETTINGS.quiet_seconds + 1
    decision = observe(detector, clock, complaint(UNRELATED[0], quiet))
    assert [c.crisis_id for c in decision.ended] == [crisis.crisis_id]
    assert decision.ended[0].status is Status.ENDED and decision.ended[0].end_reason == "quiet"
    assert detector.active("brand") == []
    later = observe(detector, clock, complaint(text, quiet + 60))
    assert later.outcome is Outcome.NONE  # one complaint is not a new crisis, and the old one is over


def test_the_schedule_ends_quiet_crises_of_every_account_once(detector, clock) -> None:
    text = "the app crashes at check in"
    for account in ("brand", "other-brand"):
        for i in range(10):
            observe(detector, clock, complaint(text, T0 + i * 60, account=account))
    assert len(detector.active()) == 2
    clock.now = T0 + SETTINGS.quiet_seconds / 2
    assert detector.end_quiet() == []
    clock.now = T0 + 9 * 60 + SETTINGS.quiet_seconds + 1
    assert {c.account_id for c in detector.end_quiet()} == {"brand", "other-brand"}
    assert detector.end_quiet() == [] and detector.active() == []


def test_an_agent_ends_a_crisis(detector, clock) -> None:
    for i in range(10):
        observe(detector, clock, complaint("the app crashes at check in", T0 + i * 60))
    [crisis] = detector.active("brand")
    ended = detector.end("brand", crisis.crisis_id)
    assert ended is not None and ended.status is Status.ENDED and ended.size == 10
    assert detector.end("brand", crisis.crisis_id) is None


def test_a_declared_crisis_takes_in_recent_similar_complaints_and_later_ones_join(detector, clock) -> None:
    texts = cycle(OUTAGE_EN)
    for i in range(4):  # too few for a crisis of their own
        assert observe(detector, clock, complaint(next(texts), T0 + i * 60)).outcome is Outcome.NONE
    observe(detector, clock, complaint(UNRELATED[0], T0 + 5 * 60))

    clock.now = T0 + 6 * 60
    declared = detector.declare("brand", "4711", "Customers say the app crashes at check in")
    assert declared.outcome is Outcome.STARTED and not declared.repeated
    assert declared.crisis.crisis_id == "t-4711" and declared.crisis.origin is Origin.DECLARED
    assert declared.crisis.ticket_id == "4711"
    assert len(declared.members) >= 3  # the recent outage complaints, not the lost bag

    joined = observe(detector, clock, complaint(next(texts), T0 + 7 * 60))
    assert joined.outcome is Outcome.JOINED and joined.crisis.crisis_id == "t-4711"
    assert observe(detector, clock, complaint(UNRELATED[1], T0 + 8 * 60)).outcome is Outcome.NONE

    again = detector.declare("brand", "4711", "Customers say the app crashes at check in")
    assert again.repeated and again.crisis.crisis_id == "t-4711"
    other_ticket = detector.declare("brand", "4712", "the app crashes when checking in")
    assert other_ticket.outcome is Outcome.JOINED and other_ticket.crisis.crisis_id == "t-4711"


def test_repeating_an_observation_counts_nothing_again(detector, clock) -> None:
    text = "the app crashes at check in"
    messages = [complaint(text, T0 + i * 60) for i in range(12)]
    for message in messages:
        observe(detector, clock, message)
    [crisis] = detector.active("brand")
    assert crisis.size == 12

    for message in messages:  # the stream hands every record again
        decision = observe(detector, clock, message)
        assert decision.repeated and decision.outcome is Outcome.JOINED
        assert decision.crisis.crisis_id == crisis.crisis_id
        assert [m.message_id for m in decision.members] == [message.message_id]
    [again] = detector.active("brand")
    assert again.size == 12

    lone = complaint(UNRELATED[0], T0 + 13 * 60)
    assert observe(detector, clock, lone).outcome is Outcome.NONE
    repeat = observe(detector, clock, lone)
    assert repeat.repeated and repeat.outcome is Outcome.NONE


class CrashOnFirstWrite(MemoryCrisisStore):
    """Fails the first write of complaints: a Lambda dying before its batch's observations are written."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def record_many(self, account_id: str, entries: Sequence[WindowEntry], *, keep_seconds: float) -> set[str]:
        if not self.failed:
            self.failed = True
            raise CrisisStoreUnavailable("throttled")
        return super().record_many(account_id, entries, keep_seconds=keep_seconds)


def test_a_batch_cut_short_before_its_write_is_counted_once_by_its_redelivery(clock) -> None:
    text = "the app crashes at check in"
    messages = [complaint(text, T0 + i * 60) for i in range(12)]
    store = CrashOnFirstWrite()
    detector = CrisisDetector(store, SETTINGS, clock=clock)
    for message in messages:  # one stream batch
        clock.now = message.created_at.timestamp()
        detector.observe(message)
    with pytest.raises(CrisisStoreUnavailable):
        detector.flush()  # the crisis was created under the lock; its members and counts were not written
    [created] = store.active("brand")
    assert created.size == 0

    retry = CrisisDetector(store, SETTINGS, clock=clock)  # a fresh Lambda gets the batch again
    decisions = [retry.observe(message) for message in messages]
    retry.flush()
    assert all(d.outcome is Outcome.JOINED and d.crisis.crisis_id == created.crisis_id for d in decisions)
    assert store.active("brand")[0].size == 12

    again = CrisisDetector(store, SETTINGS, clock=clock)  # and once more: nothing counts twice
    assert all(again.observe(message).repeated for message in messages)
    again.flush()
    assert store.active("brand")[0].size == 12 and len(store.active("brand")) == 1


def test_a_batch_is_written_at_its_end_and_a_redelivery_counts_nothing(clock) -> None:
    text = "the app crashes at check in"
    messages = [complaint(text, T0 + i * 30) for i in range(15)]
    store = MemoryCrisisStore()
    first, second = CrisisDetector(store, SETTINGS, clock=clock), CrisisDetector(store, SETTINGS, clock=clock)
    for message in messages:
        clock.now = message.created_at.timestamp()
        first.observe(message)
    assert store.entries("brand", since=0) == [] and store.active("brand")[0].size == 0  # nothing but the start yet
    first.flush()
    assert len(store.entries("brand", since=0)) == 15 and store.active("brand")[0].size == 15
    # Another Lambda gets the same batch (a redelivery): it reads the complaints, counts none again.
    decisions = [second.observe(message) for message in messages]
    second.flush()
    assert all(d.repeated and d.outcome is Outcome.JOINED for d in decisions)
    assert store.active("brand")[0].size == 15


def test_what_is_not_a_complaint_is_not_observed(detector, clock) -> None:
    text = "the app crashes at check in"
    skipped = [
        complaint(text, T0, direction=Direction.OUTBOUND),
        complaint(text, T0, rating=5),
        complaint(text, T0, recommends=True),
        complaint(text, T0, edit_of="m0"),
        complaint(text, T0, deleted=True),
        complaint("help!!", T0),  # one word says too little to group
    ]
    for message in skipped:
        assert detector.observe(message).outcome is Outcome.NONE
    assert detector.observe(complaint(text, T0, rating=2)).outcome is Outcome.NONE
    detector.flush()
    assert len(detector._store.entries("brand", since=0)) == 1  # only the two-star review was recorded


def test_the_problem_ticket_is_attached_once(detector, clock) -> None:
    for i in range(10):
        observe(detector, clock, complaint("the app crashes at check in", T0 + i * 60))
    [crisis] = detector.active("brand")
    assert detector.attach_ticket("brand", crisis.crisis_id, "900")
    assert not detector.attach_ticket("brand", crisis.crisis_id, "901")
    assert detector.active("brand")[0].ticket_id == "900"


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CRISIS_MIN_SIZE", "25")
    monkeypatch.setenv("CRISIS_WINDOW_MINUTES", "30")
    settings = CrisisSettings.from_env()
    assert settings.min_size == 25 and settings.window_seconds == 1800
    assert settings.baseline_multiple == CrisisSettings().baseline_multiple
