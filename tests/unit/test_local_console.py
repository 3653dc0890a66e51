"""``make run``'s console: the real loggers' records (redacted as Lambda writes them) become one
short line per event; metric blobs and idle schedule runs show nothing."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from chalicelib.errors import Unauthorized
from chalicelib.observability import logger as powertools_logger
from chalicelib.web import publish, refuse
from local.console import install, pipe, render


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The in-process loggers writing to a console over a string buffer (their streams restored after)."""
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # as local/run.py sets it
    handlers = [h for h in powertools_logger.handlers if type(h) is logging.StreamHandler]
    streams = [h.stream for h in handlers]
    shown = io.StringIO()
    install(shown)
    yield shown
    for handler, stream in zip(handlers, streams, strict=True):
        handler.setStream(stream)


def lines(shown: io.StringIO) -> list[str]:
    return [line.split("  ", 1)[1] for line in shown.getvalue().splitlines()]  # without the time


def test_events_are_one_short_line_each_with_their_ids(console: io.StringIO) -> None:
    sync = logging.getLogger("chalicelib.sync.tickets")
    sync.info("ticket opened", extra={"conversation_key": "x:tweets:brand:42", "message_id": "1777", "ticket_id": "12"})
    powertools_logger.info(
        "webhook stored", extra={"route": "meta", "stored": 2, "duplicates": 1, "statuses": 0, "ignored": 0, "quarantined": 0}
    )
    refuse("meta_webhook", Unauthorized("the signature does not match"))
    sync.warning(
        "message parked",
        extra={"conversation_key": "x:tweets:brand:42", "message_id": "1778", "reason": "Zendesk refused the comment (422)"},
    )
    shown = lines(console)
    # Conversation keys are pseudonyms (~ and 12 hex digits), as in CloudWatch: the same key, the same pseudonym.
    key = shown[0].split(" for ", 1)[1].split(" ", 1)[0]
    assert re.fullmatch(r"~[0-9a-f]{12}", key)
    assert shown == [
        f"ticket #12 opened for {key} (message 1777)",
        "webhook meta: 2 stored, 1 duplicates",
        "WARNING REFUSED meta_webhook 401: the signature does not match",
        f"WARNING PARKED message 1778 of {key}: Zendesk refused the comment (422)",
    ]


def test_idle_schedules_and_metric_blobs_show_nothing(console: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    publish("poll_x", {"mentions": 0, "dms": 0})  # every 3 s in `make run`, when nothing happens
    publish("sync", {"ticket_opened": 2, "comment_added": 0})
    assert lines(console) == ["sync: 2 ticket opened"]
    assert capsys.readouterr().out == ""  # no EMF blob either
    blob = '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"service":"socialdesk","sync_ticket_opened":[2.0]}'
    assert render(blob) is None


def test_personal_data_stays_redacted_on_the_console(console: io.StringIO) -> None:
    logging.getLogger("chalicelib.sync.tickets").info(
        "ticket opened", extra={"conversation_key": "whatsapp:dm:1065:34600111222", "message_id": "wamid.1", "ticket_id": "3"}
    )
    (line,) = lines(console)
    assert "34600111222" not in line and line.startswith("ticket #3 opened for ")


def test_a_subprocess_output_is_rendered_line_by_line() -> None:
    out = io.StringIO()
    source = io.BytesIO(
        b"Serving on http://127.0.0.1:8000\n"
        b'127.0.0.1 - - [03/Dec/2026 17:10:06] "POST /webhooks/meta HTTP/1.1" 200 -\n'
        b'{"level":"INFO","location":"ingest:58","message":"webhook stored","timestamp":"2026-12-03 17:10:06,293+0000",'
        b'"service":"socialdesk","route":"telegram","stored":1,"duplicates":0,"statuses":0,"ignored":0,"quarantined":0}\n'
        b'{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"service":"socialdesk"}\n'
        b'127.0.0.1 - - [03/Dec/2026 17:10:07] "POST /webhooks/line HTTP/1.1" 502 -\n'
    )
    pipe(source, out).join(timeout=5)
    assert out.getvalue().splitlines() == [
        "Serving on http://127.0.0.1:8000",
        "17:10:06  webhook telegram: 1 stored",
        '127.0.0.1 - - [03/Dec/2026 17:10:07] "POST /webhooks/line HTTP/1.1" 502 -',
    ]


def test_an_unknown_record_keeps_its_fields_and_its_level() -> None:
    record = (
        '{"level":"ERROR","message":"x polling failed","timestamp":"2026-12-03 17:10:06,293+0000",'
        '"service":"socialdesk","status":401,"reason":"Unauthorized"}'
    )
    assert render(record) == "17:10:06  ERROR x polling failed status=401 reason=Unauthorized"


def test_a_reply_is_one_line_not_its_bookkeeping() -> None:
    def record(message: str, **fields: object) -> str:
        return json.dumps({"level": "INFO", "message": message, "timestamp": "2026-12-03 17:23:47,000+0000", **fields})

    shown = [
        render(record("outbound message stored", message_id="m_1", new=True)),
        render(record("reply sent", ticket_id="4", comment_id="159", platform="messenger", platform_message_id="m_1")),
        render(record("agent comments handled", ticket_id="4", outcomes=["sent"])),
        render(record("zendesk event handled", event_id="comments:4", kind="agent_comment", outcome="sent")),
        render(record("agent_replies finished", outcomes={"sent": 1})),
        render(record("poll_x finished", outcomes={"dms": 1, "duplicates": 1})),  # the same DM seen again
    ]
    assert [line for line in shown if line] == ["17:23:47  reply sent on ticket #4 (comment 159) to messenger: m_1"]
