"""The report's numbers: percentiles, buckets, SLA targets, who waits, what needs attention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.reporting.data import ConversationFacts, ParkedFact, ReplyFact
from chalicelib.reporting.model import (
    Channel,
    Crisis,
    SlaTargets,
    build_report,
    choose_buckets,
    parse_duration,
    percentile,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def conversation(key: str, *inbound: datetime, private: bool = False, **values: object) -> ConversationFacts:
    return ConversationFacts(key=key, platform=key.split(":")[0], private=private, inbound=list(inbound), **values)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 50) == 5
    assert percentile([5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 90) == 9
    assert percentile([60, 300, 420, 900, 5400], 50) == 420
    assert percentile([60, 300, 420, 900, 5400], 90) == 5400
    assert percentile([42], 90) == 42


@pytest.mark.parametrize(("span", "size", "count"), [
    (timedelta(hours=3), 300, 37),
    (timedelta(hours=10), 900, 41),
    (timedelta(hours=30), 3600, 31),
    (timedelta(days=5), 3 * 3600, 41),
    (timedelta(days=7), 6 * 3600, 29),
    (timedelta(days=40), 86400, 41),
    (timedelta(days=400), 7 * 86400, 58),
])
def test_buckets_fit_the_span(span: timedelta, size: int, count: int) -> None:
    chosen, starts = choose_buckets(NOW - span, NOW)
    assert chosen == size
    assert len(starts) == pytest.approx(count, abs=1)
    assert starts[0] <= NOW - span < starts[0] + timedelta(seconds=size)
    assert starts[-1] <= NOW < starts[-1] + timedelta(seconds=size)
    assert all(start.timestamp() % size == 0 for start in starts)


def test_sla_targets_most_specific_first() -> None:
    sla = SlaTargets.parse(["x:public=30m", "messenger=12h"])
    assert sla.for_channel(Channel("x", private=False)) == 1800
    assert sla.for_channel(Channel("x", private=True)) == 86400  # private default
    assert sla.for_channel(Channel("messenger", private=True)) == 12 * 3600
    assert sla.for_channel(Channel("facebook", private=False)) == 3600  # public default
    assert SlaTargets({}).for_channel(Channel("x", private=False)) is None
    assert parse_duration("90s") == 90 and parse_duration("2d") == 172800 and parse_duration("3600") == 3600
    with pytest.raises(ValueError, match="CHANNEL=DURATION"):
        SlaTargets.parse(["x:public"])
    with pytest.raises(ValueError, match="not a duration"):
        SlaTargets.parse(["x:public=soon"])


def test_volume_counts_customer_messages_per_channel_and_bucket_within_the_window() -> None:
    facts = [
        conversation("x:tweets:b:1", ago(hours=5, minutes=10), ago(hours=5, minutes=50), ago(hours=1)),
        conversation("x:dm:b:2", ago(hours=2), private=True, outbound=[ago(hours=1)]),
        conversation("x:tweets:b:3", ago(days=9)),  # before the 7-day window
    ]
    report = build_report(facts, now=NOW)
    assert report.bucket_seconds == 900
    counts = {series.channel.key: series for series in report.volume}
    assert set(counts) == {"x:public", "x:private"}
    assert counts["x:public"].total == 3 and counts["x:private"].total == 1
    public = dict(zip(report.bucket_starts, counts["x:public"].counts, strict=True))
    assert public[datetime(2026, 3, 10, 6, 0, tzinfo=UTC)] == 1  # 06:10
    assert public[datetime(2026, 3, 10, 6, 45, tzinfo=UTC)] == 1  # 06:50
    assert public[datetime(2026, 3, 10, 11, 0, tzinfo=UTC)] == 1
    assert report.inbound_total == 4
    assert report.conversations_total == 2  # the one that started 9 days ago is outside


def test_first_response_per_channel_against_its_target() -> None:
    facts = [conversation(f"x:tweets:b:{n}", ago(days=1), first_response_seconds=s)
             for n, s in enumerate([60, 300, 420, 900, 5400])]
    # Answered on the platform, not through the helpdesk: the brand's own message counts.
    facts.append(conversation("messenger:dm:p:1", ago(hours=3), private=True, outbound=[ago(hours=3) + timedelta(minutes=20)]))
    report = build_report(facts, now=NOW)
    messenger, x = report.first_response  # in the platforms' order
    assert (x.channel.key, x.count, x.p50, x.p90, x.sla_seconds, x.within_sla) == ("x:public", 5, 420, 5400, 3600, 4)
    assert (messenger.channel.key, messenger.p50, messenger.p90, messenger.sla_seconds) == ("messenger:private", 1200, 1200, 86400)


def test_resolution_from_recorded_seconds_or_solved_time() -> None:
    facts = [
        conversation("x:tweets:b:1", ago(hours=10), ticket_status="solved", recorded_resolution_seconds=7200),
        conversation("x:tweets:b:2", ago(hours=10), ticket_status="solved", solved_at=ago(hours=6)),
        conversation("x:tweets:b:3", ago(hours=10)),
    ]
    (x,) = build_report(facts, now=NOW).resolution
    assert (x.count, x.p50, x.p90, x.sla_seconds) == (2, 7200, 4 * 3600, 3 * 86400)
    assert build_report(facts[2:], now=NOW).resolution == ()


def test_who_is_waiting_and_since_when() -> None:
    facts = [
        # answered, then the customer wrote again: waiting since that message
        conversation("x:tweets:b:1", ago(hours=5), ago(hours=2), ago(hours=1), first_response_seconds=600,
                     last_response_at=ago(hours=4), ticket_id="1"),
        conversation("x:tweets:b:2", ago(hours=3), ticket_status="solved", ticket_id="2"),  # solved: nobody waits
        conversation("x:tweets:b:3", ago(hours=3), outbound=[ago(hours=2)], ticket_id="3"),  # answered on the platform
        conversation("google:review:4", ago(hours=3)),  # praise: opened no ticket
        conversation("whatsapp:dm:p:4", ago(hours=30), private=True, ticket_id="77"),
        conversation("whatsapp:dm:p:5", ago(hours=1), private=True,  # its ticket's creation parked
                     parked=[ParkedFact(ago(minutes=50), "Zendesk answered 503", aside=False)]),
    ]
    report = build_report(facts, now=NOW)
    assert [(w.key, w.waiting_seconds, w.answered_before, w.past_sla) for w in report.waiting] == [
        ("whatsapp:dm:p:4", 30 * 3600, False, True),
        ("x:tweets:b:1", 2 * 3600, True, True),
        ("whatsapp:dm:p:5", 3600, False, False),
    ]
    assert report.waiting[0].label == "#77 · whatsapp:dm:p:4" and report.waiting[2].parked
    assert report.waiting_total == 3


def test_attention_puts_blocked_conversations_then_accounts_to_reconnect_first() -> None:
    facts = [
        conversation("x:tweets:b:1", ago(minutes=30), reply_problems=[
            ReplyFact("failed", "window_closed", "Not sent: the 24-hour window closed.", ago(minutes=20)),
            ReplyFact("retry", "rate_limited", "Retrying at 12:10 UTC.", ago(minutes=5)),
        ]),
        conversation("facebook:comment:2", ago(minutes=30), reply_problems=[
            ReplyFact("failed", "token_expired", "Not sent: the Page's token expired.", ago(minutes=10)),
            ReplyFact("unknown", "interrupted", "Check before sending again.", ago(minutes=9)),
        ]),
        conversation("whatsapp:dm:p:3", ago(hours=2), private=True, ticket_id="9", parked=[
            ParkedFact(ago(hours=1), "Zendesk answered 503", aside=False),
            ParkedFact(ago(minutes=50), "Zendesk answered 503", aside=False),
        ]),
        conversation("whatsapp:dm:p:4", ago(hours=2), private=True, parked=[ParkedFact(ago(hours=3), "422", aside=True)]),
        conversation("x:tweets:b:5", ago(hours=2), ticket_id="5"),
    ]
    crises = [Crisis("Outage in Madrid", True, ((ago(hours=1), 12), (ago(minutes=30), 40))),
              Crisis("Old one", False, ((ago(days=2), 15),))]
    report = build_report(facts, now=NOW, crises=crises)
    assert [(item.kind, item.detail, item.count) for item in report.attention] == [
        ("parked", "", 2),
        ("set_aside", "", 1),
        ("replies_failed", "token_expired", 1),
        ("replies_failed", "window_closed", 1),
        ("replies_unknown", "interrupted", 1),
        ("past_sla", "", 1),
        ("crisis", "", 1),
    ]
    parked = report.attention[0]
    assert parked.oldest_seconds == 3600 and parked.subjects == ("#9 · whatsapp:dm:p:3: Zendesk answered 503",)
    assert report.attention[-2].subjects == ("#5 · x:tweets:b:5",)
    assert report.attention[-1].subjects == ("Outage in Madrid (40)",)
    # The rate-limited one retries by itself: listed with the failures, not in the attention list.
    assert {group.failure_kind: group.states for group in report.failed_replies} == {
        "window_closed": ("failed",), "rate_limited": ("retry",), "token_expired": ("failed",),
        "interrupted": ("unknown",),
    }


def test_failed_replies_group_by_reason_with_the_latest_note() -> None:
    facts = [
        conversation(f"facebook:comment:{n}", ago(hours=3), ticket_id=str(n), reply_problems=[
            ReplyFact("failed", "token_expired", f"note {n}", ago(hours=n)),
        ]) for n in (1, 2)
    ] + [conversation("facebook:comment:9", ago(days=20), reply_problems=[
        ReplyFact("failed", "token_expired", "too old", ago(days=20))])]
    (group,) = build_report(facts, now=NOW).failed_replies
    assert (group.count, group.latest_note, group.latest_at) == (2, "note 1", ago(hours=1))
    assert group.conversations == ("#1 · facebook:comment:1", "#2 · facebook:comment:2")


def test_no_data_is_not_an_error() -> None:
    report = build_report([], now=NOW)
    assert (report.volume, report.first_response, report.waiting, report.attention, report.crises) == ((), (), (), (), None)
    assert build_report([], now=NOW, crises=[]).crises == ()
