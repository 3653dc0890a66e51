"""Inline SVG charts drawn by hand: columns, horizontal bars against a target, lines.

No library, no JavaScript, no external asset. Every mark carries its number
(``data-value``) and a tooltip (``<title>``); each chart has a title and a description
for screen readers, and the page prints the same numbers in a table under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from chalicelib.reporting.units import format_duration

WIDTH = 720
# Durations on an axis step by amounts people read at a glance.
DURATION_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
    1209600,
    2592000,
)


@dataclass(frozen=True)
class Column:
    """One column: its value, its axis label ('' for none), its tooltip, its bucket's start (ISO)."""

    value: float
    label: str
    title: str
    start: str = ""


@dataclass(frozen=True)
class Measure:
    """One horizontal bar of a target chart (e.g. p50 = 300 s)."""

    name: str
    value: float


def count_ticks(top_value: float, ticks: int = 4) -> list[float]:
    """0 and round steps (1, 2, 5 x 10^k) up to the first at or above ``top_value``."""
    if top_value <= 0:
        return [0, 1]
    raw = top_value / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(step, 1)
    return [i * step for i in range(math.ceil(top_value / step - 1e-9) + 1)]


def duration_ticks(top_value: float, ticks: int = 5) -> list[float]:
    """0 and round durations up to the first at or above ``top_value``."""
    top_value = max(top_value, 1)
    step = next((s for s in DURATION_STEPS if top_value / s <= ticks), DURATION_STEPS[-1])
    return [i * step for i in range(math.ceil(top_value / step - 1e-9) + 1)]


def _open(chart_id: str, title: str, desc: str, height: int, attrs: dict[str, str]) -> list[str]:
    extra = "".join(f' {name}="{escape(value)}"' for name, value in attrs.items())
    return [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" class="chart" viewBox="0 0 {WIDTH} {height}"'
            f' width="{WIDTH}" height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"{extra}>'
        ),
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>',
    ]


def _count_grid(ticks: Sequence[float], *, left: int, right: int, top: int, plot_h: float) -> list[str]:
    """A count axis's grid: a line at each tick (the last is the scale's top), labelled on the left."""
    parts = []
    for tick in ticks:
        y = top + plot_h - tick / ticks[-1] * plot_h
        parts.append(
            f'<line class="grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.2f}" y2="{y:.2f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.2f}" text-anchor="end">{tick:g}</text>'
        )
    return parts


def column_chart(
    chart_id: str,
    columns: Sequence[Column],
    *,
    y_top: float,
    title: str,
    desc: str,
    attrs: dict[str, str] | None = None,
    height: int = 130,
) -> str:
    """Vertical bars on a count axis from 0 to ``y_top`` (share it between charts to compare them)."""
    left, right, top, bottom = 44, 8, 10, 26
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    ticks = count_ticks(y_top)
    scale_top = ticks[-1]
    parts = _open(chart_id, title, desc, height, {"data-y-top": f"{scale_top:g}", **(attrs or {})})
    parts += _count_grid(ticks, left=left, right=right, top=top, plot_h=plot_h)
    step = plot_w / max(1, len(columns))
    bar_w = max(1.0, step * 0.78)
    label_every = max(1, math.ceil(len(columns) / 8))
    for index, column in enumerate(columns):
        x = left + index * step + (step - bar_w) / 2
        bar_h = column.value / scale_top * plot_h
        parts.append(
            f'<rect class="bar" x="{x:.2f}" y="{top + plot_h - bar_h:.2f}" width="{bar_w:.2f}" height="{bar_h:.2f}"'
            f' data-value="{column.value:g}" data-start="{escape(column.start)}"><title>{escape(column.title)}</title></rect>'
        )
        if column.label and index % label_every == 0:
            parts.append(
                f'<text class="tick" x="{x + bar_w / 2:.2f}" y="{height - 8}" text-anchor="middle">{escape(column.label)}</text>'
            )
    parts.append(f'<line class="axis" x1="{left}" x2="{WIDTH - right}" y1="{top + plot_h}" y2="{top + plot_h}"/></svg>')
    return "".join(parts)


def target_chart(
    chart_id: str,
    measures: Sequence[Measure],
    *,
    target: float | None,
    target_label: str,
    title: str,
    desc: str,
    attrs: dict[str, str] | None = None,
) -> str:
    """Horizontal duration bars (p50, p90) and a dashed line at the target; a bar past the
    target is drawn as late."""
    left, right, top, row_h, axis_h = 44, 44, 22, 26, 22
    height = top + row_h * len(measures) + axis_h
    plot_w = WIDTH - left - right
    ticks = duration_ticks(max([m.value for m in measures] + [target or 0]) * 1.05)
    scale_top = ticks[-1]
    parts = _open(chart_id, title, desc, height, {"data-x-top": f"{scale_top:g}", **(attrs or {})})
    axis_y = top + row_h * len(measures)
    for tick in ticks:
        x = left + tick / scale_top * plot_w
        parts.append(
            f'<line class="grid" x1="{x:.2f}" x2="{x:.2f}" y1="{top}" y2="{axis_y}"/>'
            f'<text class="tick" x="{x:.2f}" y="{axis_y + 15}" text-anchor="middle">{format_duration(tick)}</text>'
        )
    for index, measure in enumerate(measures):
        y = top + index * row_h + 4
        bar_w = measure.value / scale_top * plot_w
        late = " late" if target is not None and measure.value > target else ""
        parts.append(
            f'<text class="label" x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(measure.name)}</text>'
            f'<rect class="bar{late}" x="{left}" y="{y}" width="{bar_w:.2f}" height="{row_h - 8}"'
            f' data-measure="{escape(measure.name)}" data-value="{measure.value:g}">'
            f"<title>{escape(measure.name)}: {format_duration(measure.value)}</title></rect>"
            f'<text class="value" x="{left + bar_w + 4:.2f}" y="{y + 13}">{format_duration(measure.value)}</text>'
        )
    if target is not None:
        x = left + target / scale_top * plot_w
        parts.append(
            f'<line class="sla" x1="{x:.2f}" x2="{x:.2f}" y1="{top - 6}" y2="{axis_y}" data-value="{target:g}">'
            f"<title>{escape(target_label)}</title></line>"
            f'<text class="sla-label" x="{x:.2f}" y="{top - 9}" text-anchor="middle">{escape(target_label)}</text>'
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{axis_y}"/></svg>')
    return "".join(parts)


def line_chart(
    chart_id: str,
    points: Sequence[tuple[datetime, float]],
    *,
    title: str,
    desc: str,
    time_label: Callable[[datetime], str],
    attrs: dict[str, str] | None = None,
    height: int = 170,
) -> str:
    """A value over time (a crisis's size): a line through dots, one per measurement."""
    left, right, top, bottom = 44, 24, 10, 26
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    ticks = count_ticks(max([value for _, value in points] + [1]))
    scale_top = ticks[-1]
    parts = _open(chart_id, title, desc, height, {"data-y-top": f"{scale_top:g}", **(attrs or {})})
    parts += _count_grid(ticks, left=left, right=right, top=top, plot_h=plot_h)
    if points:
        first, last = points[0][0].timestamp(), points[-1][0].timestamp()
        span = max(last - first, 1.0)
        xy = [
            (
                left + ((moment.timestamp() - first) / span if last > first else 0.5) * plot_w,
                top + plot_h - value / scale_top * plot_h,
                moment,
                value,
            )
            for moment, value in points
        ]
        parts.append('<polyline class="line" points="' + " ".join(f"{x:.2f},{y:.2f}" for x, y, _, _ in xy) + '"/>')
        for x, y, moment, value in xy:
            parts.append(
                f'<circle class="dot" cx="{x:.2f}" cy="{y:.2f}" r="3.5" data-value="{value:g}">'
                f"<title>{escape(time_label(moment))}: {value:g}</title></circle>"
            )
        for x, _, moment, _ in (xy[0], xy[-1]) if len(xy) > 1 else xy[:1]:
            parts.append(
                f'<text class="tick" x="{x:.2f}" y="{height - 8}" text-anchor="middle">{escape(time_label(moment))}</text>'
            )
    parts.append(f'<line class="axis" x1="{left}" x2="{WIDTH - right}" y1="{top + plot_h}" y2="{top + plot_h}"/></svg>')
    return "".join(parts)
