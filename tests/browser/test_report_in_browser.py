"""The response-time report, opened in headless Chromium: what a person sees matches the table.

A table in moto (from ``infra/template.json``) gets known data through the store's own
writers where they exist (messages, conversation state, a parked message) and through
the item layouts the agent replies write (``RESPONSE``, ``REPLY#``). The report is
written by the real command path (``write_report``: Scan, compute, render), opened from
disk, and the test reads the rendered page: bar heights against the counts it put in,
the p50/p90 it computes itself (first response and resolution), the SLA line, the attention
list, and a crisis's size over time (written through the crisis package's own store). The
page must load nothing from the network. A screenshot and the page are left in ``.run/artifacts``.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.crisis.model import Crisis, Origin
from chalicelib.crisis.similarity import Centroid
from chalicelib.crisis.store import DynamoCrisisStore
from chalicelib.crisis.window import WindowEntry
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.ops.token_health import EXPIRED, OK, TokenCheck, record
from chalicelib.ops.metrics import sla_targets
from chalicelib.reporting.cli import write_report
from chalicelib.reporting.model import Channel
from chalicelib.store import Conversation, MessageStore, conversation_pk
from local.resources import create_local_resources

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

ROOT = Path(__file__).resolve().parents[2]
TOKEN_NOTE = "Not sent: the Facebook Page's access token expired. Reconnect the Page in socialdesk settings."
PARK_REASON = "Zendesk refused the comment (422): requester is suspended"
# Resolution times (first customer message to solved), as the agent events record them.
RESOLVED = {"x:tweets:brand:101": 2 * 3600, "x:tweets:brand:102": 4 * 86400, "x:tweets:brand:103": 9 * 3600,
            "messenger:dm:page:201": 20 * 3600}
CRISIS_COMPLAINTS = 14


@dataclass
class Table:
    """What the test put in the table, to check the page against."""

    now: datetime
    conversations: list[str] = field(default_factory=list)
    inbound: dict[str, list[datetime]] = field(default_factory=dict)  # channel -> customer message times
    response_seconds: dict[str, list[int]] = field(default_factory=dict)  # channel -> first response times
    resolution_seconds: dict[str, list[int]] = field(default_factory=dict)  # channel -> resolution times
    parked_key: str = ""
    late_key: str = ""
    failed_key: str = ""
    crisis_sizes: list[int] = field(default_factory=list)  # the crisis's size after each complaint, in time order


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _message(key: str, platform: Platform, kind: Kind, number: int, at: datetime,
             direction: Direction = Direction.INBOUND) -> SocialMessage:
    return SocialMessage(
        platform=platform, kind=kind, direction=direction, message_id=f"{key.split(':')[-1]}-{number}",
        conversation_key=key, account_id="brand", author=Author(platform_id=key.split(":")[-1]),
        text="where is my order", created_at=at,
    )


def _fill(store: MessageStore, client: Any, now: datetime) -> Table:
    table = Table(now=now)
    conversations: list[tuple[str, Platform, Kind, list[float], int | None]] = [
        # key, platform, kind, customer messages (hours before now), first response (s) or None
        ("x:tweets:brand:101", Platform.X, Kind.MENTION, [29.5, 29.2], 60),
        ("x:tweets:brand:102", Platform.X, Kind.MENTION, [20.1], 300),
        ("x:tweets:brand:103", Platform.X, Kind.MENTION, [12.4, 12.3, 12.1], 420),
        ("x:tweets:brand:104", Platform.X, Kind.MENTION, [6.2], 900),
        ("x:tweets:brand:105", Platform.X, Kind.MENTION, [3.3, 3.1], 5400),
        ("messenger:dm:page:201", Platform.MESSENGER, Kind.DIRECT_MESSAGE, [27.0], 1800),
        ("messenger:dm:page:202", Platform.MESSENGER, Kind.DIRECT_MESSAGE, [18.0, 17.5], 7200),
        ("messenger:dm:page:203", Platform.MESSENGER, Kind.DIRECT_MESSAGE, [14.0], 30000),
        ("whatsapp:dm:phone:301", Platform.WHATSAPP, Kind.DIRECT_MESSAGE, [29.0], None),  # waiting past 24 h
        ("whatsapp:dm:phone:302", Platform.WHATSAPP, Kind.DIRECT_MESSAGE, [2.0, 1.5], None),  # parked
        ("facebook:comment:501", Platform.FACEBOOK, Kind.COMMENT, [0.6, 0.5], None),  # answer failed
    ]
    for number, (key, platform, kind, hours, response) in enumerate(conversations, start=1):
        channel = f"{platform.value}:{'private' if kind is Kind.DIRECT_MESSAGE else 'public'}"
        times = [now - timedelta(hours=h) for h in hours]
        assert all(store.save_messages([_message(key, platform, kind, i, at) for i, at in enumerate(times)]))
        table.inbound.setdefault(channel, []).extend(times)
        table.conversations.append(key)
        conversation = Conversation(key=key, helpdesk="zendesk", ticket_id=str(100 + number), ticket_status="open")
        store.save_conversation(conversation)
        if response is not None:
            # The agents' answers as the agent replies record them: outbound messages and RESPONSE
            # (the first answer's time; the last one comes after the customer's last message).
            answered, last = min(times) + timedelta(seconds=response), max(times) + timedelta(seconds=response)
            store.save_messages([_message(key, platform, Kind.REPLY, 98, answered, Direction.OUTBOUND),
                                 _message(key, platform, Kind.REPLY, 99, last, Direction.OUTBOUND)])
            item = {
                "pk": {"S": conversation_pk(key)}, "sk": {"S": "RESPONSE"}, "item_type": {"S": "response_times"},
                "first_response_at": {"S": _iso(answered)}, "first_response_seconds": {"N": str(response)},
                "first_inbound_at": {"S": _iso(min(times))}, "last_response_at": {"S": _iso(last)},
                "responses": {"N": "2"}, "first_response_ticket_id": {"S": str(100 + number)},
            }
            if key in RESOLVED:
                item["resolution_seconds"] = {"N": str(RESOLVED[key])}
                item["resolved_at"] = {"S": _iso(min(times) + timedelta(seconds=RESOLVED[key]))}
                table.resolution_seconds.setdefault(channel, []).append(RESOLVED[key])
            client.put_item(TableName=store.table_name, Item=item)
            table.response_seconds.setdefault(channel, []).append(response)
    table.late_key = "whatsapp:dm:phone:301"
    table.parked_key = "whatsapp:dm:phone:302"
    assert store.park(store.get_conversation(table.parked_key), "302-1", PARK_REASON)
    table.failed_key = "facebook:comment:501"
    client.put_item(TableName=store.table_name, Item={
        "pk": {"S": conversation_pk(table.failed_key)}, "sk": {"S": "REPLY#zendesk#9001"}, "item_type": {"S": "agent_reply"},
        "state": {"S": "failed"}, "ticket_id": {"S": "111"}, "comment_id": {"S": "9001"}, "text": {"S": "Sorry!"},
        "attempts": {"N": "1"}, "created_at": {"S": _iso(now - timedelta(minutes=20))},
        "failure_kind": {"S": "token_expired"}, "note": {"S": TOKEN_NOTE}, "noted": {"BOOL": True},
    })
    _crisis(DynamoCrisisStore(store.table_name, client), table)
    record([TokenCheck("messenger", EXPIRED, "the Page token expired"), TokenCheck("x", OK, "works")], store.ledger("token health"))
    return table


def _crisis(crises: DynamoCrisisStore, table: Table) -> None:
    """A crisis the way the detector leaves it: the crisis item, its member complaints, its count."""
    start = (table.now - timedelta(hours=3)).timestamp()
    stems = frozenset({"flight", "cancel", "storm"})
    crisis = Crisis(account_id="brand", crisis_id="c-storm", origin=Origin.DETECTED,
                    centroid=Centroid({"flight": 1.0, "cancel": 0.9, "storm": 0.6}),
                    started_at=start + 1800, first_seen=start, last_seen=start + 1800)
    assert crises.create(crisis)
    for number in range(CRISIS_COMPLAINTS):
        at = start + number * 600  # one complaint every ten minutes
        entry = WindowEntry(message_id=f"c{number}", conversation_key=f"x:tweets:brand:9{number:02d}", platform="x",
                            author_id=f"a{number}", created_at=at, stems=stems, language="en", text="flight cancelled",
                            crisis_id="c-storm")
        assert crises.record_many("brand", [entry], keep_seconds=86400) == {entry.key}
        assert crises.add_members("brand", "c-storm", {"x": 1}, seen_at=at)
        table.crisis_sizes.append(number + 1)


@dataclass
class Written:
    table: Table
    pages: dict[str, Path]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Written]:
    """The table filled, and the report written from it in English and Spanish."""
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as env:
        # In-process moto: no endpoint override may send boto3 to a moto server elsewhere.
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            env.setenv(name, value)
        with mock_aws():
            client = boto3.client("dynamodb")
            resources = create_local_resources(dynamodb=client, sqs=boto3.client("sqs"),
                                               template_path=ROOT / "infra" / "template.json", stage="report")
            now = datetime.now(UTC)
            table = _fill(MessageStore(resources.table_name, client), client, now)
            pages = {lang: write_report(client, resources.table_name, out / f"report-{lang}.html", lang=lang, now=now)
                     for lang in ("en", "es")}
    yield Written(table, pages)


@pytest.fixture(scope="module")
def page(browser: BrowserContext, written: Written, artifacts: Path) -> Iterator[Page]:
    """The English report, opened from disk; fails if it asked the network for anything."""
    opened = browser.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    opened.goto(written.pages["en"].as_uri())
    opened.wait_for_load_state("load")
    assert all(url.startswith(("file:", "data:")) for url in requested), f"the page loaded {requested}"
    opened.screenshot(path=str(artifacts / "report.png"), full_page=True)
    shutil.copyfile(written.pages["en"], artifacts / "report.html")
    yield opened
    opened.close()


def _nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def _duration(seconds: int) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h" + (f" {minutes % 60:02d} min" if minutes % 60 else "")


def _bars(page: Page, selector: str) -> list[dict[str, Any]]:
    """Each mark's number and its drawn size, as the browser laid it out."""
    return page.eval_on_selector_all(selector, """marks => marks.map(mark => {
        const box = mark.getBoundingClientRect();
        return {value: Number(mark.dataset.value), start: mark.dataset.start, measure: mark.dataset.measure,
                x: box.x, y: box.y, width: box.width, height: box.height};
    })""")


def test_volume_bars_are_the_tables_counts_drawn_to_one_scale(page: Page, written: Written) -> None:
    table = written.table
    pixels_per_message: list[float] = []
    for channel, times in table.inbound.items():
        chart = page.locator(f'svg[data-chart="volume"][data-channel="{channel}"]')
        assert chart.is_visible(), f"no volume chart for {channel}"
        bucket = int(chart.get_attribute("data-bucket-seconds") or 0)
        bars = _bars(page, f'svg[data-chart="volume"][data-channel="{channel}"] rect.bar')
        expected = Counter()
        for moment in times:
            start = datetime.fromtimestamp(moment.timestamp() // bucket * bucket, tz=UTC)
            expected[_iso(start)] += 1
        drawn = {bar["start"]: bar["value"] for bar in bars if bar["value"]}
        assert drawn == dict(expected), channel
        for bar in bars:
            if bar["value"]:
                pixels_per_message.append(bar["height"] / bar["value"])
            else:
                assert bar["height"] == 0
    total = sum(len(times) for times in table.inbound.values())
    assert f"{total} customer messages; {len(table.conversations)} conversations" in page.locator(".meta").inner_text()
    # Every channel's bars share one scale: a message is the same height everywhere.
    assert max(pixels_per_message) - min(pixels_per_message) < 0.01, pixels_per_message
    assert min(pixels_per_message) > 1


def test_first_response_percentiles_and_sla_line(page: Page, written: Written) -> None:
    for channel, seconds in written.table.response_seconds.items():
        p50, p90 = _nearest_rank(seconds, 50), _nearest_rank(seconds, 90)
        row = page.locator(f'#first-response-table tr[data-channel="{channel}"] td')
        assert row.nth(2).inner_text() == _duration(p50)
        assert row.nth(3).inner_text() == _duration(p90)
        chart = f'svg[data-chart="first_response"][data-channel="{channel}"]'
        bars = {bar["measure"]: bar for bar in _bars(page, f"{chart} rect.bar")}
        assert bars["p50"]["value"] == p50 and bars["p90"]["value"] == p90
        scale = bars["p90"]["width"] / p90  # pixels per second, from the p90 bar
        assert bars["p50"]["width"] == pytest.approx(p50 * scale, abs=0.5)
        sla = page.locator(f"{chart} line.sla")
        assert sla.count() == 1, f"no SLA line for {channel}"
        target = float(sla.get_attribute("data-value") or 0)
        sla_box = sla.bounding_box()
        assert sla_box and sla_box["height"] > 20
        assert sla_box["x"] - bars["p50"]["x"] == pytest.approx(target * scale, abs=2)
    # X mentions answer to the public target (1 h): the p90 of 1 h 30 min is drawn late, the p50 is not.
    late = page.locator('svg[data-chart="first_response"][data-channel="x:public"] rect.bar.late')
    assert [late.nth(i).get_attribute("data-measure") for i in range(late.count())] == ["p90"]
    label = page.locator('svg[data-chart="first_response"][data-channel="x:public"] text.sla-label')
    assert label.text_content() == "SLA 1 h" and label.is_visible()


def test_attention_list_names_what_needs_a_person(page: Page, written: Written) -> None:
    attention = page.locator("#attention")
    parked = attention.locator('li[data-kind="parked"]')
    assert parked.is_visible()
    assert written.table.parked_key in parked.inner_text() and PARK_REASON in parked.inner_text()
    failed = attention.locator('li[data-kind="replies_failed"]')
    assert "token expired" in failed.inner_text() and written.table.failed_key in failed.inner_text()
    late = attention.locator('li[data-kind="past_sla"]')
    assert late.inner_text().startswith("1 customer waiting longer than the SLA")
    assert written.table.late_key in late.inner_text()
    # After the refused token (every answer on it fails), the parked line: it blocks a conversation.
    kinds = attention.locator("li[data-kind]")
    assert [kinds.nth(i).get_attribute("data-kind") for i in range(2)] == ["tokens_failing", "parked"]


def test_waiting_and_failed_tables(page: Page, written: Written) -> None:
    waiting = page.locator("#waiting-table tbody tr")
    keys = [waiting.nth(i).locator("td").first.inner_text() for i in range(waiting.count())]
    # Longest waiting first: the WhatsApp chat from 29 h ago, then the parked one, then the Facebook comment.
    assert [key.split(" · ")[-1] for key in keys] == [written.table.late_key, written.table.parked_key,
                                                      written.table.failed_key]
    failed = page.locator('#failed-table tr[data-kind="token_expired"] td')
    assert failed.nth(1).inner_text() == "1" and failed.nth(4).inner_text() == TOKEN_NOTE


def test_spanish_labels_same_numbers(browser: BrowserContext, written: Written) -> None:
    spanish = browser.new_page()
    try:
        spanish.goto(written.pages["es"].as_uri())
        assert spanish.locator("h1").inner_text() == "Tiempos de respuesta"
        assert spanish.locator("#attention h2").inner_text() == "Qué necesita atención ahora"
        assert spanish.locator('#attention li[data-kind="past_sla"]').inner_text().startswith(
            "1 cliente espera más que el SLA")
        seconds = written.table.response_seconds["x:public"]
        row = spanish.locator('#first-response-table tr[data-channel="x:public"] td')
        assert row.nth(0).inner_text() == "X · público"
        assert row.nth(3).inner_text() == _duration(_nearest_rank(seconds, 90))
    finally:
        spanish.close()


def test_resolution_percentiles_per_channel(page: Page, written: Written) -> None:
    for channel, seconds in written.table.resolution_seconds.items():
        row = page.locator(f'#resolution-table tr[data-channel="{channel}"] td')
        assert row.nth(1).inner_text() == str(len(seconds))
        assert float(row.nth(2).get_attribute("data-p50") or 0) == _nearest_rank(seconds, 50)
        assert float(row.nth(3).get_attribute("data-p90") or 0) == _nearest_rank(seconds, 90)
        bars = {bar["measure"]: bar["value"] for bar in _bars(page, f'svg[data-chart="resolution"][data-channel="{channel}"] rect.bar')}
        assert bars == {"p50": _nearest_rank(seconds, 50), "p90": _nearest_rank(seconds, 90)}
    # X mentions: 2 h, 9 h and 4 days against the rules file's resolution target (a day or more): one late.
    target = sla_targets("resolution").for_channel(Channel("x", private=False))
    assert target is not None and 9 * 3600 < target < 4 * 86400
    sla = page.locator('svg[data-chart="resolution"][data-channel="x:public"] line.sla')
    assert float(sla.get_attribute("data-value") or 0) == target
    assert page.locator('#resolution-table tr[data-channel="x:public"] td').nth(5).inner_text() == "2 (67%)"


def test_the_crisis_is_drawn_with_its_size_over_time(page: Page, written: Written) -> None:
    chart = page.locator('svg[data-chart="crisis"]')
    assert chart.count() == 1 and chart.is_visible()
    dots = _dots(page, 'svg[data-chart="crisis"] circle.dot')
    assert [dot["value"] for dot in dots] == written.table.crisis_sizes
    # Time runs left to right and size upwards: every later, bigger point is right of and above the one before.
    assert all(b["x"] > a["x"] and b["y"] < a["y"] for a, b in zip(dots, dots[1:]))
    heading = page.locator("#crises h3").inner_text()
    assert heading.startswith("flight, cancel, storm (brand") and "going on" in heading
    crisis_line = page.locator('#attention li[data-kind="crisis"]').inner_text()
    assert f"flight, cancel, storm (brand) ({CRISIS_COMPLAINTS})" in crisis_line


def test_a_refused_token_comes_first_in_the_attention_list(page: Page) -> None:
    first = page.locator("#attention li[data-kind]").first
    assert first.get_attribute("data-kind") == "tokens_failing"
    assert "messenger: expired (the Page token expired)" in first.inner_text()
    assert "x:" not in first.inner_text()  # a working token is not news


def _dots(page: Page, selector: str) -> list[dict[str, Any]]:
    return page.eval_on_selector_all(selector, """dots => dots.map(dot => {
        const box = dot.getBoundingClientRect();
        return {value: Number(dot.dataset.value), x: box.x, y: box.y};
    })""")
