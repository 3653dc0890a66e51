"""Numbers for humans: durations ("1 h 05 min"), counts ("1,234" / "1.234"), times (UTC)."""

from __future__ import annotations

from datetime import datetime


def format_duration(seconds: float) -> str:
    """``45 s``, ``5 min``, ``2 h``, ``1 h 05 min``, ``1 d``, ``2 d 04 h`` (the same abbreviations in
    English and Spanish)."""
    seconds = max(0.0, seconds)
    if seconds < 59.5:
        return f"{round(seconds)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        return f"{minutes // 60} h" + (f" {minutes % 60:02d} min" if minutes % 60 else "")
    hours = round(seconds / 3600)
    return f"{hours // 24} d" + (f" {hours % 24:02d} h" if hours % 24 else "")


def format_count(value: int, lang: str) -> str:
    """Thousands grouped as each language writes them."""
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "es" else text


def format_time(moment: datetime) -> str:
    """``2026-03-10 14:05`` (the page says its times are UTC)."""
    return moment.strftime("%Y-%m-%d %H:%M")
