"""The metrics a team charts and the alarms watch, as CloudWatch reads them: the EMF lines
the handlers print (metric, value, and the dimension sets it can be found under)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.inbound.intake import save_batch
from chalicelib.models import Author, Direction, Kind, NormalizedBatch, Platform, SocialMessage
from chalicelib.ops import metrics as ops_metrics
from chalicelib.store.table import message_item
from chalicelib.ops.token_health import EXPIRED, NOT_CONFIGURED, OK, TokenCheck, publish
from chalicelib.outbound.base import TOKEN_EXPIRED, ReplyFailed
from chalicelib.web import refuse
from tests.support.emf import points
from tests.unit.test_agent_events import KEY, PAGE, T0, Rig, aws, rig, status_body  # noqa: F401 - fixtures

__all__ = ["aws", "rig"]


class SeenStore:
    """A table that remembers message ids: the second save of one is a duplicate."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        flags = [m.message_id not in self.seen for m in messages]
        self.seen.update(m.message_id for m in messages)
        return flags

    def record_status(self, status: Any) -> None: ...

    def quarantine(self, rejected: Any) -> None: ...


def message(
    index: int,
    *,
    platform: Platform = Platform.X,
    kind: Kind = Kind.MENTION,
    account: str = "brand-1",
    direction: Direction = Direction.INBOUND,
    minutes: float = 0,
) -> SocialMessage:
    return SocialMessage(
        platform=platform,
        kind=kind,
        direction=direction,
        message_id=f"m{index}",
        conversation_key=f"x:{index}",
        account_id=account,
        author=Author(platform_id=f"u{index}"),
        text="hi",
        created_at=T0 + timedelta(minutes=minutes),
    )


def _record(item: SocialMessage, event: str = "INSERT") -> dict[str, Any]:
    return {"eventName": event, "dynamodb": {"NewImage": message_item(item, ttl_days=1)}}


def test_messages_in_counts_new_customer_messages_per_channel_and_per_account(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counted by the sync from the stream's new items (each stored message once; a batch the
    stream retries is counted when it succeeds), so the webhook path prints no metric line."""
    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.sync.tickets import SyncReport

    class NoSync:
        def sync_stream_records(self, records: list[dict[str, Any]], **_: Any) -> SyncReport:
            return SyncReport()

    monkeypatch.setenv("HELPDESK_RATE_PER_MINUTE", "0")
    wiring.override("sync", NoSync())
    try:
        records = [_record(message(1)), _record(message(2)), _record(message(3, account="brand-2"))]
        # A change of a stored one, and the brand's own post: neither is a customer message in.
        records += [_record(message(1), "MODIFY"), _record(message(4, direction=Direction.OUTBOUND))]
        capsys.readouterr()
        lambda_app.sync_tickets({"Records": records}, None)
    finally:
        wiring.reset()
    found = points(capsys.readouterr().out, "messages_in")
    by_account = {p.dimensions["account"]: p.value for p in found}
    assert by_account == {"brand-1": [2.0], "brand-2": [1.0]}
    # The quiet-channel alarm reads the per-platform series; charts split by kind and account.
    assert all(p.sets == [["platform", "service"], ["account", "kind", "platform", "service"]] for p in found)
    assert {p.dimensions["platform"] for p in found} == {"x"} and {p.unit for p in found} == {"Count"}


def test_the_webhook_path_prints_no_metric_line(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    save_batch(SeenStore(), NormalizedBatch(messages=[message(1), message(2)]))
    assert points(capsys.readouterr().out, "messages_in") == []


def test_a_first_response_is_published_once_with_its_sla_verdict(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rig.agent_answers()  # 30 minutes after the customer's first message: a private chat's target is a day
    rig.clock.advance(minutes=10)
    rig.agent_answers("502", "Anything else?")
    out = capsys.readouterr().out
    (first,) = points(out, "first_response_seconds")
    assert first.value == [1800.0] and first.unit == "Seconds"
    assert first.dimensions == {
        "service": "socialdesk",
        "platform": "messenger",
        "visibility": "private",
        "measure": "first_response",
        "kind": "direct_message",
        "account": PAGE,
    }
    (met,) = points(out, "sla_met")
    (missed,) = points(out, "sla_missed")
    assert (met.value, missed.value) == ([1.0], [0.0])


def test_a_solved_ticket_publishes_its_resolution_time_once(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rig.clock.advance(days=4)  # past the three-day resolution target
    rig.helpdesk.status = "solved"
    assert rig.deliver(status_body("Solved", at=rig.clock())).outcome == "status_updated"
    rig.helpdesk.status = "open"
    rig.deliver(status_body("Open", at=rig.clock() + timedelta(minutes=1)))
    rig.helpdesk.status = "solved"
    rig.deliver(status_body("Solved", at=rig.clock() + timedelta(minutes=2)))  # solved again: the first resolution stays
    out = capsys.readouterr().out
    (resolution,) = points(out, "resolution_seconds")
    assert resolution.value == [4 * 86400 + 30 * 60.0]
    assert resolution.dimensions["measure"] == "resolution"
    (missed,) = points(out, "sla_missed")
    assert missed.value == [1.0]
    item = rig.client.get_item(TableName=rig.store.table_name, Key={"pk": {"S": f"CONV#{KEY}"}, "sk": {"S": "RESPONSE"}})["Item"]
    assert item["resolution_seconds"]["N"] == str(4 * 86400 + 30 * 60) and item["resolved_at"]["S"].startswith("2026-11-24")


def test_a_reply_that_failed_for_good_is_counted_by_reason(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    rig.dispatcher.script.append(ReplyFailed(TOKEN_EXPIRED, "Not sent: the token expired."))
    assert rig.agent_answers().outcome == "failed_noted"
    (failed,) = points(capsys.readouterr().out, "replies_failed")
    assert failed.value == [1.0]
    assert failed.dimensions == {"service": "socialdesk", "reason": TOKEN_EXPIRED, "platform": "messenger"}
    assert failed.sets == [["reason", "service"], ["platform", "reason", "service"]]


@pytest.mark.parametrize("error", [Unauthorized("bad signature"), Forbidden("wrong verify token")])
def test_a_refused_signature_counts_as_a_webhook_auth_failure(error: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    refuse("meta_webhook", error)  # type: ignore[arg-type]
    (failure,) = points(capsys.readouterr().out, "webhook_auth_failures")
    assert failure.value == [1.0] and failure.dimensions["route"] == "meta_webhook"
    assert ["service"] in failure.sets  # the alarm's series: every route together


def test_token_health_publishes_one_series_per_platform(capsys: pytest.CaptureFixture[str]) -> None:
    publish(
        [
            TokenCheck("messenger", EXPIRED, "the Page token expired"),
            TokenCheck("x", OK, "works", days_left=40),
            TokenCheck("line", NOT_CONFIGURED, ""),
        ]
    )
    out = capsys.readouterr().out
    health = {p.dimensions["platform"]: p.value for p in points(out, "token_ok")}
    assert health == {"messenger": [0.0], "x": [1.0]}
    assert [p.value for p in points(out, "token_days_left")] == [[40.0]]


def test_parked_messages_and_the_oldest_head_are_published(capsys: pytest.CaptureFixture[str]) -> None:
    ops_metrics.message_parked(message(1, platform=Platform.WHATSAPP, kind=Kind.DIRECT_MESSAGE))
    ops_metrics.parked_head_age(5400)
    out = capsys.readouterr().out
    (parked,) = points(out, "messages_parked")
    assert parked.dimensions["platform"] == "whatsapp" and ["service"] in parked.sets
    (age,) = points(out, "parked_head_age_seconds")
    assert age.value == [5400.0] and age.sets == [["service"]]  # the dimensions the existing alarm reads


def test_what_only_the_backfill_found_is_counted_per_platform(capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib.channels.meta.backfill import BackfillReport, _save

    store = SeenStore()
    webhook = message(1, platform=Platform.FACEBOOK, kind=Kind.COMMENT)
    save_batch(store, NormalizedBatch(messages=[webhook]))  # the webhook delivered this one
    capsys.readouterr()
    lost = [message(2, platform=Platform.FACEBOOK, kind=Kind.COMMENT), message(3, platform=Platform.INSTAGRAM, kind=Kind.COMMENT)]
    brand_post = message(4, platform=Platform.FACEBOOK, kind=Kind.COMMENT, direction=Direction.OUTBOUND)
    _save(store, NormalizedBatch(messages=[webhook, *lost, brand_post]), T0 - timedelta(hours=1), BackfillReport())  # type: ignore[arg-type]
    found = {p.dimensions["platform"]: p.value for p in points(capsys.readouterr().out, "backfill_only_found")}
    assert found == {"facebook": [1.0], "instagram": [1.0]}


# --- the alarms and dashboard in infra/template.json read what the code publishes -------------

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "template.json"


def _alarms() -> dict[str, dict[str, Any]]:
    resources = json.loads(TEMPLATE.read_text())["Resources"]
    alarms = {
        name: r["Properties"] for name, r in resources.items() if isinstance(r, dict) and r["Type"] == "AWS::CloudWatch::Alarm"
    }
    for name, loop in resources.items():
        if name.startswith("Fn::ForEach::"):
            _, _, body = loop
            alarms.update({key: r["Properties"] for key, r in body.items() if r["Type"] == "AWS::CloudWatch::Alarm"})
    return alarms


def _our_metrics(alarm: dict[str, Any]) -> list[tuple[str, frozenset[str]]]:
    """(metric, dimension names) of every socialdesk metric an alarm reads."""
    stats = [alarm] + [query["MetricStat"]["Metric"] for query in alarm.get("Metrics", []) if "MetricStat" in query]
    return [
        (stat["MetricName"], frozenset(d["Name"] for d in stat.get("Dimensions", [])))
        for stat in stats
        if stat.get("Namespace") == "socialdesk"
    ]


def test_every_alarm_reads_a_series_the_code_publishes_and_tells_the_alert_topic(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ops_metrics.messages_in([message(1)])
    ops_metrics.parked_head_age(10)
    ops_metrics.token_health("x", True, 30)
    published: set[tuple[str, frozenset[str]]] = set()
    for line in capsys.readouterr().out.splitlines():
        (directive,) = json.loads(line)["_aws"]["CloudWatchMetrics"]
        for metric in directive["Metrics"]:
            published.update((metric["Name"], frozenset(group)) for group in directive["Dimensions"])
    alarms = _alarms()
    read = [pair for alarm in alarms.values() for pair in _our_metrics(alarm)]
    # An alarm on a name or a dimension set nobody publishes would never fire: CloudWatch matches them exactly.
    assert {name for name, _ in read} == {"parked_head_age_seconds", "token_ok", "token_days_left", "messages_in"}
    assert set(read) <= published, set(read) - published
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}] == alarm["OKActions"], name
        assert "README, Operations" in alarm["AlarmDescription"], name


def test_a_quiet_channel_alarm_treats_silence_as_breaching() -> None:
    (quiet,) = [alarm for name, alarm in _alarms().items() if name.startswith("QuietChannelAlarm")]
    # No message means no data point at all: FILL turns gaps inside the period into 0, and a period
    # with nothing in it is missing data, which must count as breaching.
    assert quiet["TreatMissingData"] == "breaching"
    assert quiet["ComparisonOperator"] == "LessThanThreshold" and quiet["Threshold"] == 1
    assert [q.get("Expression") for q in quiet["Metrics"]] == [None, "FILL(received, 0)"]


def test_the_dashboard_names_only_published_metrics_and_every_fixed_alarm() -> None:
    resources = json.loads(TEMPLATE.read_text())["Resources"]
    body = json.loads(resources["OperationsDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    text = json.dumps(body)
    names = {value for key, value in vars(ops_metrics).items() if key.isupper() and isinstance(value, str)}
    searched = set(re.findall(r'MetricName=\\"(\w+)\\"', text))
    direct = {
        row[1]
        for widget in body["widgets"]
        for row in widget["properties"].get("metrics", [])
        if isinstance(row[0], str) and row[0] == "socialdesk"
    }
    assert searched and searched | direct <= names, (searched | direct) - names
    (alarm_widget,) = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    listed = {arn.rsplit(":", 1)[1] for arn in alarm_widget["properties"]["alarms"]}
    fixed = {alarm["AlarmName"]["Fn::Sub"] for alarm in _alarms().values() if "${Channel}" not in alarm["AlarmName"]["Fn::Sub"]}
    assert listed == fixed and len(fixed) == 7
