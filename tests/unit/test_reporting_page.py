"""The page and its charts: numbers for humans, marks drawn to scale, both languages, nothing external."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.reporting.charts import (
    Column,
    Measure,
    column_chart,
    count_ticks,
    duration_ticks,
    line_chart,
    target_chart,
)
from chalicelib.reporting.data import ConversationFacts, ParkedFact
from chalicelib.reporting.html import LABELS, render
from chalicelib.reporting.model import Crisis, build_report
from chalicelib.reporting.units import format_count, format_duration

SVG = "{http://www.w3.org/2000/svg}"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (59.4, "59 s"), (59.6, "1 min"), (300, "5 min"), (3599, "1 h"), (3600, "1 h"),
    (3900, "1 h 05 min"), (5400, "1 h 30 min"), (86400, "1 d"), (2 * 86400 + 4 * 3600, "2 d 04 h"),
])
def test_durations_read_like_people_write_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_counts_group_thousands_per_language() -> None:
    assert (format_count(1234567, "en"), format_count(1234567, "es"), format_count(12, "es")) == ("1,234,567", "1.234.567", "12")


def test_axis_ticks_are_round_and_cover_the_top() -> None:
    assert count_ticks(3) == [0, 1, 2, 3]
    assert count_ticks(37) == [0, 10, 20, 30, 40]
    assert duration_ticks(5400 * 1.05) == [0, 1800, 3600, 5400, 7200]
    assert duration_ticks(30 * 3600) == [0, 21600, 43200, 64800, 86400, 108000]


def test_columns_are_drawn_in_proportion_to_their_values() -> None:
    svg = ET.fromstring(column_chart("c", [Column(v, "", f"{v}") for v in (0, 1, 3, 2)], y_top=3, title="t", desc="d"))
    bars = svg.findall(f"{SVG}rect")
    assert [float(b.get("data-value") or 0) for b in bars] == [0, 1, 3, 2]
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[0] == 0
    assert heights[2] == pytest.approx(3 * heights[1], abs=0.02) and heights[3] == pytest.approx(2 * heights[1], abs=0.02)
    # Bars stand on one baseline.
    assert len({round(float(b.get("y") or 0) + float(b.get("height") or 0), 2) for b in bars}) == 1
    assert svg.find(f"{SVG}title").text == "t" and svg.get("role") == "img"


def test_target_chart_marks_late_bars_and_draws_the_target_to_scale() -> None:
    svg = ET.fromstring(target_chart("t", [Measure("p50", 420), Measure("p90", 5400)], target=3600, target_label="SLA 1 h",
                                     title="t", desc="d"))
    p50, p90 = svg.findall(f"{SVG}rect")
    assert (p50.get("class"), p90.get("class")) == ("bar", "bar late")
    scale = float(p90.get("width") or 0) / 5400
    line = svg.find(f"{SVG}line[@class='sla']")
    assert line is not None
    assert float(line.get("x1") or 0) - float(p50.get("x") or 0) == pytest.approx(3600 * scale, abs=0.01)
    without = ET.fromstring(target_chart("u", [Measure("p50", 1)], target=None, target_label="", title="t", desc="d"))
    assert without.find(f"{SVG}line[@class='sla']") is None


def test_line_chart_puts_one_dot_per_measurement() -> None:
    points = [(NOW - timedelta(hours=2), 5.0), (NOW - timedelta(hours=1), 20.0), (NOW, 10.0)]
    svg = ET.fromstring(line_chart("l", points, title="t", desc="d", time_label=lambda m: m.strftime("%H:%M")))
    dots = svg.findall(f"{SVG}circle")
    assert [float(d.get("data-value") or 0) for d in dots] == [5, 20, 10]
    xs = [float(d.get("cx") or 0) for d in dots]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1])  # evenly spaced in time


def _report(crises: list[Crisis] | None = None) -> object:
    facts = [
        # Answered, then the customer wrote again: listed as waiting, with its (hostile) key.
        ConversationFacts(key="x:tweets:b:<script>alert(1)</script>", platform="x",
                          inbound=[NOW - timedelta(hours=3), NOW - timedelta(minutes=30)],
                          first_response_seconds=600, last_response_at=NOW - timedelta(hours=2), ticket_id="8"),
        ConversationFacts(key="whatsapp:dm:p:1", platform="whatsapp", private=True, inbound=[NOW - timedelta(hours=30)],
                          parked=[ParkedFact(NOW - timedelta(hours=1), "Zendesk answered 503", aside=False)]),
    ]
    return build_report(facts, now=NOW, table_name="socialdesk-dev-messages", crises=crises)


def test_the_page_is_self_contained_and_escapes_what_it_shows() -> None:
    page = render(_report(), "en")  # type: ignore[arg-type]
    assert "<script" not in page and "alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
    for section in ("attention", "volume", "first-response", "resolution", "waiting", "failed", "crises"):
        assert f'id="{section}"' in page
    assert "Crisis detection is not connected yet" in page
    assert "No resolution times yet" in page
    assert "1 message parked (oldest 1 h)" in page
    assert "3 customer messages; 2 conversations started in the period." in page


def test_both_languages_have_every_label() -> None:
    assert LABELS["en"].keys() == LABELS["es"].keys()
    for name, english in LABELS["en"].items():
        assert type(english) is type(LABELS["es"][name]), name
    spanish = render(_report([Crisis("Caída en Madrid", True, ((NOW - timedelta(hours=1), 12), (NOW, 40)))]), "es")  # type: ignore[arg-type]
    assert '<html lang="es">' in spanish and "Tiempos de respuesta" in spanish
    assert "1 mensaje aparcado (el más antiguo hace 1 h)" in spanish
    assert "1 crisis en curso." in spanish and "Caída en Madrid (40)" in spanish
    assert "WhatsApp · privado" in spanish
    with pytest.raises(ValueError, match="language"):
        render(_report(), "fr")  # type: ignore[arg-type]


def test_an_empty_table_gives_a_calm_page() -> None:
    page = render(build_report([], now=NOW, crises=[]), "en")
    assert 'class="calm"' in page and "Nothing needs attention" in page
    assert "No customer messages in this period." in page and "No crisis in this period." in page
    assert "<svg" not in page
