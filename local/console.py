"""``make run``'s console: one short line per event a person cares about, instead of the JSON
records and metric blobs Lambda writes (the JSON stays what Lambda writes: only this local
runner changes how it is shown).

``render(line)`` turns one output line into what the console shows (None: nothing). The
records it reads are the logger's, already redacted. Two ways in: ``install()`` points the
in-process Powertools handler at a ``ConsoleStream``, and ``pipe()`` reads a subprocess's
output (``chalice local``). Lines that are not JSON records (the banner, a traceback) pass
unchanged; metric blobs (EMF), runs that changed nothing and the access log of requests that
did not fail on the server are dropped.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import IO, Any

# What every Powertools record carries: not news on a console.
_CONTEXT_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "log_full_text",
    }
)
MAX_WIDTH = 200
# Bookkeeping around an event that has its own line ("reply sent"): not shown.
_BOOKKEEPING = frozenset(
    {
        "outbound message stored",
        "agent comments handled",
        "zendesk event handled",
        "freshdesk reply handled",
        "agent_replies finished",
    }
)
# Counts in a run's summary that say nothing changed (what a poll saw again, a repeated event).
_NOT_NEWS = frozenset(
    {
        "found",
        "mentions",
        "dms",
        "duplicates",
        "duplicate",
        "already_sent",
        "already_handled",
        "status_unchanged",
        "waiting_retry",
    }
)
# chalice local's access log: a request that succeeded is told by the record it logged.
_ACCESS = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) \S+ HTTP/[\d.]+" (\d{3})')


def _time(record: Mapping[str, Any]) -> str:
    """``17:11:06`` from Powertools' ``2026-12-03 17:11:06,293+0000``."""
    stamp = str(record.get("timestamp", ""))
    return stamp[11:19] if len(stamp) >= 19 else stamp


def _counts(counts: Mapping[str, Any], order: tuple[str, ...] = ()) -> str:
    """``2 stored, 1 duplicates`` from the non-zero counts, ``order`` first."""
    names = [*(name for name in order if name in counts), *(name for name in counts if name not in order)]
    return ", ".join(
        f"{counts[name]} {name.replace('_', ' ')}" for name in names if isinstance(counts[name], int) and counts[name]
    )


def _webhook_stored(r: Mapping[str, Any]) -> str | None:
    counts = _counts({k: r.get(k) for k in ("stored", "duplicates", "statuses", "ignored", "quarantined")})
    return f"webhook {r.get('route', '?')}: {counts or 'nothing new'}"


def _refused(r: Mapping[str, Any]) -> str:
    return f"REFUSED {r.get('route', '?')} {r.get('status', '')}: {r.get('reason', '')}"


def _ticket_opened(r: Mapping[str, Any]) -> str:
    return f"ticket #{r.get('ticket_id')} opened for {r.get('conversation_key')} (message {r.get('message_id')})"


def _parked(r: Mapping[str, Any]) -> str:
    return f"PARKED message {r.get('message_id')} of {r.get('conversation_key')}: {r.get('reason', '')}"


def _reply_sent(r: Mapping[str, Any]) -> str:
    return f"reply sent on ticket #{r.get('ticket_id')} (comment {r.get('comment_id')}) to {r.get('platform')}: {r.get('platform_message_id')}"


def _reply_failed(r: Mapping[str, Any]) -> str:
    return f"reply NOT sent ({r.get('kind')}, attempt {r.get('attempt')}) in {r.get('conversation')}"


def _status(r: Mapping[str, Any]) -> str:
    return f"ticket #{r.get('ticket_id')} is {r.get('status')}"


def _finished(r: Mapping[str, Any]) -> str | None:
    counts = _counts({name: count for name, count in (r.get("outcomes") or {}).items() if name not in _NOT_NEWS})
    if not counts:  # a schedule that found nothing to do: the noise this console exists to drop
        return None
    return f"{str(r.get('message', '')).removesuffix(' finished')}: {counts}"


_SHORT: dict[str, Callable[[Mapping[str, Any]], str | None]] = {
    "webhook stored": _webhook_stored,
    "request refused": _refused,
    "ticket opened": _ticket_opened,
    "message parked": _parked,
    "message parked without bookkeeping": _parked,
    "reply sent": _reply_sent,
    "reply not sent": _reply_failed,
    "ticket status recorded": _status,
}


def describe(record: Mapping[str, Any]) -> str | None:
    """One log record as a console line (None: not worth a line)."""
    message = str(record.get("message", ""))
    level = str(record.get("level", "INFO")).upper()
    if message in _BOOKKEEPING:
        return None
    if message in _SHORT:
        text = _SHORT[message](record)
    elif message.endswith(" finished") and "outcomes" in record:
        text = _finished(record)
    else:
        extra = " ".join(f"{k}={v}" for k, v in record.items() if k not in _CONTEXT_KEYS and v not in (None, "", [], {}))
        text = f"{message} {extra}".strip()
        if record.get("exception"):
            text += f"\n{record['exception']}"
    if text is None:
        return None
    prefix = "" if level in ("INFO", "DEBUG") else f"{level} "
    line = f"{_time(record)}  {prefix}{text}"
    first, newline, rest = line.partition("\n")
    return (first[: MAX_WIDTH - 1] + "…" if len(first) > MAX_WIDTH else first) + newline + rest


def render(line: str) -> str | None:
    """One line of output as the console shows it (None: drop it)."""
    stripped = line.strip()
    access = _ACCESS.search(stripped)
    if access and int(access.group(1)) < 500:
        return None
    if not stripped.startswith("{"):
        return line.rstrip("\n")
    try:
        record = json.loads(stripped)
    except json.JSONDecodeError:
        return line.rstrip("\n")
    if not isinstance(record, dict):
        return line.rstrip("\n")
    if "_aws" in record:  # a metric blob: CloudWatch's, not a person's
        return None
    if "message" not in record:
        return line.rstrip("\n")
    return describe(record)


class ConsoleStream(io.TextIOBase):
    """A text stream that renders each complete line into ``target``."""

    def __init__(self, target: IO[str]) -> None:
        self.target = target
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                shown = render(line)
                if shown is not None:
                    self.target.write(shown + "\n")
            self.target.flush()
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def install(target: IO[str], logger_names: tuple[str, ...] = ("socialdesk", "chalicelib")) -> None:
    """Point the in-process loggers' stream handlers at a ``ConsoleStream`` over ``target``."""
    stream = ConsoleStream(target)
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            # Exactly Powertools' console handler: not a file handler, nor a test runner's capture.
            if type(handler) is logging.StreamHandler and not isinstance(handler.stream, ConsoleStream):
                handler.setStream(stream)


def pipe(source: IO[bytes], target: IO[str]) -> threading.Thread:
    """Render a subprocess's output (``source``, bytes) into ``target`` on a daemon thread."""
    stream = ConsoleStream(target)

    def copy() -> None:
        for raw in iter(source.readline, b""):
            stream.write(raw.decode("utf-8", errors="replace"))

    thread = threading.Thread(target=copy, name="console", daemon=True)
    thread.start()
    return thread
