"""Logs never carry what customers wrote, who they are, or any secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.redaction import (
    PACKAGE_LOGGER,
    REDACTED,
    SECRET_MASK,
    RedactingFilter,
    RedactingFormatter,
    install,
    pseudonym,
    redact,
    register_secret,
    scrub,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_FULL_TEXT", raising=False)


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """``install`` re-points the package logger and filters the root's handlers: undo it."""
    from chalicelib.observability import logger as service_logger

    package, service = logging.getLogger(PACKAGE_LOGGER), logging.getLogger(service_logger.name)
    saved = (list(package.handlers), package.level, package.propagate, service.propagate)
    root_filters = {handler: list(handler.filters) for handler in logging.getLogger().handlers}
    try:
        yield
    finally:
        package.handlers[:], level, package.propagate, service.propagate = saved
        package.setLevel(level)
        for handler, filters in root_filters.items():
            handler.filters[:] = filters


# --- redact() -------------------------------------------------------------------------


def test_words_names_handles_and_contact_details_are_redacted_by_key() -> None:
    extra = {
        "route": "meta",
        "stored": 2,
        "text": "My refund hasn't arrived yet.",
        "author": {"platform_id": "16505551234", "display_name": "Priya Shah", "handle": "priya"},
        "contacts": [{"profile": {"name": "Priya Shah"}, "wa_id": "16505551234"}],
        "email": "priya@example.com",
        "nested": {"screen_name": "mo_travels", "first_name": "Kenji", "phone_number": "+16505551234", "count": 1},
    }
    safe = redact(extra)
    dumped = json.dumps(safe)
    for leak in ("refund", "Priya", "Shah", "priya", "16505551234", "mo_travels", "Kenji", "example.com"):
        assert leak not in dumped
    assert safe["route"] == "meta" and safe["stored"] == 2 and safe["nested"]["count"] == 1
    assert safe["text"] == REDACTED and safe["author"] == REDACTED
    assert extra["text"].startswith("My refund"), "the caller's dict is not changed"


def test_ids_of_people_become_stable_pseudonyms() -> None:
    first = redact({"author_id": "16505551234", "conversation_key": "whatsapp:dm:106540352242922:16505551234"})
    again = redact({"author_id": "16505551234"})
    assert first["author_id"] == again["author_id"] == pseudonym("16505551234")
    assert first["author_id"].startswith("~") and "1650555" not in json.dumps(first)


def test_secrets_are_masked_by_key_by_pattern_and_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("META_APP_SECRET", "super-secret-app-value")
    register_secret("a-secret-read-from-ssm")
    safe = redact({
        "headers": {"X-Hub-Signature-256": "sha256=" + "ab" * 32, "Authorization": "Basic dXNlcjpwYXNz", "Content-Type": "application/json"},
        "signed_request": "abc.def",
        "reason": "token super-secret-app-value and a-secret-read-from-ssm refused",
        "note": "sent with Bearer eyJhbGciOi.payload.sig and webhook-signature v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    })
    dumped = json.dumps(safe)
    for leak in ("ab" * 32, "dXNlcjpwYXNz", "abc.def", "super-secret-app-value", "a-secret-read-from-ssm", "eyJhbGciOi", "K5oZfzN95Z9U"):
        assert leak not in dumped
    assert safe["headers"]["Content-Type"] == "application/json"
    assert safe["headers"]["Authorization"] == SECRET_MASK


def test_a_secret_set_after_the_first_log_line_is_masked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The secret values are cached between log lines; a changed environment is noticed.
    assert scrub("nothing secret here") == "nothing secret here"
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "rotated-line-token-value")
    assert scrub("sent with rotated-line-token-value") == f"sent with {SECRET_MASK}"
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "another-line-token-value")
    assert scrub("rotated-line-token-value, another-line-token-value") == f"rotated-line-token-value, {SECRET_MASK}"


def test_free_text_keeps_ids_and_dates_but_loses_emails_and_phone_numbers() -> None:
    line = "ticket 4411 for a.b@example.org, call +44 20 7946 0958 or (650) 555-0199 before 2026-01-31T10:00:00+00:00"
    cleaned = scrub(line)
    assert "example.org" not in cleaned and "7946" not in cleaned and "555-0199" not in cleaned
    assert "ticket 4411" in cleaned and "2026-01-31T10:00:00+00:00" in cleaned
    assert "AUTHOR#whatsapp#16505551234" not in scrub("query AUTHOR#whatsapp#16505551234 failed")


def test_full_text_mode_keeps_words_but_never_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FULL_TEXT", "true")
    monkeypatch.setenv("X_CONSUMER_SECRET", "x-consumer-secret-value")
    safe = redact({"text": "My refund hasn't arrived yet.", "name": "Priya Shah", "secret_hint": "x", "note": "x-consumer-secret-value"})
    assert safe["text"] == "My refund hasn't arrived yet." and safe["name"] == "Priya Shah"
    assert safe["secret_hint"] == SECRET_MASK and safe["note"] == SECRET_MASK


# --- the formatter on a Powertools logger -----------------------------------------------


def _powertools_logger(name: str) -> tuple[Any, io.StringIO]:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    return Logger(service=name, stream=stream, logger_formatter=RedactingFormatter()), stream


def test_the_formatter_redacts_extras_messages_and_exceptions() -> None:
    logger, stream = _powertools_logger("redaction-formatter")
    logger.info("from priya@example.com", extra={"text": "hello there", "stored": 1})
    try:
        raise ValueError("could not parse +1 650 555 0199 for Priya")
    except ValueError:
        logger.exception("failed")
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records[0]["text"] == REDACTED and records[0]["stored"] == 1 and records[0]["service"] == "redaction-formatter"
    assert "example.com" not in stream.getvalue() and "555 0199" not in stream.getvalue()
    assert records[1]["exception_name"] == "ValueError"


def test_a_line_logged_again_follows_the_secrets_and_the_mode_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A record's short fields are scrubbed once and remembered: never past a new secret or a mode change.
    logger, stream = _powertools_logger("redaction-repeat")
    line = "retrying with late-registered-value for ops@example.com"
    logger.info(line)
    register_secret("late-registered-value")
    logger.info(line)
    monkeypatch.setenv("LOG_FULL_TEXT", "true")
    logger.info(line)
    monkeypatch.delenv("LOG_FULL_TEXT")
    logger.info(line)
    messages = [json.loads(out)["message"] for out in stream.getvalue().splitlines()]
    assert messages == [
        "retrying with late-registered-value for [email]",
        f"retrying with {SECRET_MASK} for [email]",
        f"retrying with {SECRET_MASK} for ops@example.com",
        f"retrying with {SECRET_MASK} for [email]",
    ]


def test_a_line_written_again_is_redacted_as_the_first_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # A repeated line's redacted layout is remembered: never across a value's type, a new
    # secret, the mode, or its time.
    logger, stream = _powertools_logger("redaction-memo")

    def log(stored: object) -> None:  # one place in the code: the same location on every line
        logger.info("webhook stored", extra={"route": "via-late-secret-value", "stored": stored, "author_id": "16505551234"})

    for stored in (1, True, 1.0, 1, True):
        log(stored)
    register_secret("via-late-secret-value")
    log(1)
    monkeypatch.setenv("LOG_FULL_TEXT", "true")
    log(1)
    lines = stream.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert [line.split('"stored":')[1].split(",")[0] for line in lines] == ["1", "true", "1.0", "1", "true", "1", "1"]
    assert [r["route"] for r in records] == ["via-late-secret-value"] * 5 + [SECRET_MASK] * 2
    assert [r["author_id"] for r in records] == [pseudonym("16505551234")] * 6 + ["16505551234"]
    assert "log_full_text" not in records[5] and records[6]["log_full_text"] is True
    assert all(r["timestamp"] and r["message"] == "webhook stored" for r in records)


def test_a_records_fields_are_scrubbed_as_any_string_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    from chalicelib.redaction import redact_record

    monkeypatch.setenv("META_APP_SECRET", "2026-01-31 10:00")  # absurd, but a secret all the same
    start = datetime(2026, 1, 31, 9, 59, 58, 123000, tzinfo=UTC)
    stamps = []
    for seconds in range(0, 200_000, 997):
        moment = start + timedelta(seconds=seconds, milliseconds=seconds % 1000)
        stamps += [moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}+0000",
                   moment.isoformat(timespec="milliseconds"), moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"]
    fields = ["INFO", "ingest:58", "webhook stored", "call +44 20 7946 0958", "sha256=" + "ab" * 32, "+1 650 555 0199 2026-01-31"]
    for value in stamps + fields:
        for key in ("timestamp", "message", "location"):
            assert redact_record({key: value}) == {key: scrub(value)}, (key, value)
    assert redact_record({"timestamp": "2026-01-31 10:00:00,000+0000"}) == {"timestamp": f"{SECRET_MASK}:00,000+0000"}


def test_records_are_laid_out_as_powertools_lays_them_out() -> None:
    # RedactingFormatter has its own copy of Powertools' key extraction (faster): same result,
    # also after a Powertools upgrade changes its own.
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    logger, _ = _powertools_logger("redaction-layout")
    logger.append_keys(order_id="A-1", empty=None, level_copy="%(levelname)s")
    logger.thread_safe_append_keys(request="r-9", timestamp="%(levelname)s at %(lineno)d")
    formatter = logger.registered_formatter
    try:
        for extra in ({}, {"route": "meta", "stored": 1}, {"text": "words", "nested": {"a": [1, 2]}, "location": "mine"}):
            record = logging.LogRecord("redaction-layout", logging.WARNING, __file__, 7, "msg %s", ("x",), None, "fn")
            record.__dict__.update(extra)
            record.created, record.msecs = 1_796_343_473.5, 500.0
            ours = formatter._extract_log_keys(log_record=record)
            assert ours == LambdaPowertoolsFormatter._extract_log_keys(formatter, log_record=record)
            assert list(ours) == list(LambdaPowertoolsFormatter._extract_log_keys(formatter, log_record=record))
        # a reserved name is filled from the record, any other key kept as given
        assert ours["timestamp"] == "WARNING at 7" and ours["level_copy"] == "%(levelname)s" and ours["request"] == "r-9"
    finally:
        logger.thread_safe_clear_keys()


@pytest.mark.filterwarnings("ignore:POWERTOOLS_DEV")
@pytest.mark.parametrize("dev", [False, True])
def test_a_repeated_line_is_written_as_powertools_and_the_redaction_would_write_it(
    dev: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line repeating an earlier one's layout is written from that layout (faster): the same text as
    # Powertools' own ``format`` with the redaction, whatever changed between two lines.
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    if dev:  # indented lines
        monkeypatch.setenv("POWERTOOLS_DEV", "true")
    logger, _ = _powertools_logger(f"redaction-repeat-layout-{dev}")
    formatter = logger.registered_formatter

    def record(message: Any = "webhook stored", args: tuple[Any, ...] = (), **extra: Any) -> logging.LogRecord:
        made = logging.LogRecord("redaction-repeat-layout", logging.INFO, __file__, 42, message, args, None, "ingest")
        made.__dict__.update(extra)
        return made

    def written_alike(made: logging.LogRecord) -> str:
        expected = LambdaPowertoolsFormatter.format(formatter, made)  # Powertools' steps, our redaction
        assert formatter.format(made) == expected  # the first line of its layout
        again = logging.makeLogRecord(made.__dict__)
        again.created, again.msecs = made.created + 61.25, 250.0  # a later line: only the time differs
        assert formatter.format(again) == LambdaPowertoolsFormatter.format(formatter, again)
        return expected

    plain = {"route": "meta", "stored": 1, "duplicates": 0, "ok": True, "none": None, "ratio": 0.5}
    lines = [written_alike(record(**plain))]
    from chalicelib import redaction

    assert redaction._lines  # written from its layout: what this test is about
    lines += [
        written_alike(record(**{**plain, "stored": True})),
        written_alike(record(**{**plain, "author_id": "16505551234", "email": "priya@example.com"})),
        written_alike(record("call +1 650 555 0199", route="x")),
        written_alike(record('{"json": "message"}')),
        written_alike(record("with %s", ("args",))),
        written_alike(record(nested={"text": "words"}, tags=["a"])),
        written_alike(record(**{"message": "an extra named message", "xray_trace_id": "mine", "level": "mine", "stack_trace": "s"})),
    ]
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    traced = written_alike(record(**plain))
    assert json.loads(traced)["xray_trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-call +1 650 555 0199;Sampled=1")  # scrubbed as before
    written_alike(record(**plain))
    logger.append_keys(order_id="A-1", level_copy="%(levelname)s", location="%(module)s")
    written_alike(record(**plain))
    logger.remove_keys(["order_id", "level_copy", "location"])
    logger.thread_safe_append_keys(request="r-9")
    try:
        written_alike(record(**plain))
    finally:
        logger.thread_safe_clear_keys()
    register_secret("meta-later-secret")
    assert SECRET_MASK in written_alike(record(route="meta-later-secret"))
    monkeypatch.setenv("LOG_FULL_TEXT", "true")
    assert json.loads(written_alike(record(**plain)))["log_full_text"] is True
    monkeypatch.delenv("LOG_FULL_TEXT")
    try:
        raise ValueError("for priya@example.com")
    except ValueError:
        import sys

        failed = record(exc_info=None)
        failed.exc_info = sys.exc_info()
        assert "priya@example.com" not in written_alike(failed)
    logger.remove_keys(["timestamp"])  # no time to cut the line at: Powertools' own way, every time
    assert "timestamp" not in json.loads(written_alike(record(**plain)))
    assert [json.loads(line)["level"] for line in lines] == ["INFO"] * len(lines)


@pytest.mark.filterwarnings("ignore:POWERTOOLS_DEV")
@pytest.mark.parametrize("dev", [False, True])
def test_records_are_written_as_powertools_writes_them(dev: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # RedactingFormatter serializes with pydantic's serializer (faster): the same text as
    # Powertools' json.dumps (compact; indented under POWERTOOLS_DEV; not ASCII-escaped).
    import functools

    if dev:
        monkeypatch.setenv("POWERTOOLS_DEV", "true")
    formatter = RedactingFormatter()
    powertools = functools.partial(
        json.dumps, default=str, separators=(",", ":"), indent=4 if dev else None, ensure_ascii=False
    )
    records: list[dict[str, Any]] = [
        {"level": "INFO", "message": "webhook stored", "stored": 1, "ok": True, "none": None},
        {"message": 'quotes " and \\ back\nslash\ttab \x01 \u2028 / é 😀 中文', "nested": {"a": [1, 2.5, -3, {"b": []}]}},
        {"message": {"json": "message", "n": 12345678901234567890}, "seconds": 0.125, "list": ["x", None, False]},
    ]
    for record in records:
        assert formatter.json_serializer(record) == powertools(record)
    lone = {"message": "half a pair \ud83d here"}  # UTF-8 cannot hold it: json.dumps writes it
    assert formatter.json_serializer(lone) == powertools(lone)


def test_install_is_idempotent_and_keeps_the_loggers_keys() -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="redaction-install", stream=stream)
    first = install(logger)
    assert install(logger) is first and isinstance(logger.registered_formatter, RedactingFormatter)
    assert logging.getLogger(PACKAGE_LOGGER).handlers == [logger.registered_handler]
    logger.info("hi", extra={"body": "words"})
    record = json.loads(stream.getvalue())
    assert record["service"] == "redaction-install" and record["body"] == REDACTED


def test_a_plain_logger_of_the_package_writes_through_the_redacting_handler() -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    install(Logger(service="redaction-package", stream=stream))
    # a Telegram token in a URL path, as the HTTP client logs it
    logging.getLogger("chalicelib.http").warning("%s %s", "GET", "/bot123456789:AAH" + "x" * 33 + "/getMe")
    record = json.loads(stream.getvalue())
    assert "AAH" not in record["message"] and record["message"].startswith("GET /bot[secret]")


def test_records_reaching_the_root_handlers_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Lambda runtime's handler sits on the root logger before app.py is imported.
    from aws_lambda_powertools import Logger

    monkeypatch.setenv("META_APP_SECRET", "root-handler-secret-value")
    stream = io.StringIO()
    runtime = logging.StreamHandler(stream)
    runtime.setFormatter(logging.Formatter("%(message)s %(text)s"))
    root = logging.getLogger()
    root.addHandler(runtime)
    try:
        install(Logger(service="redaction-root", stream=io.StringIO()))
        assert any(isinstance(f, RedactingFilter) for f in runtime.filters)
        logging.getLogger("some.library").warning("mail priya@example.com with root-handler-secret-value",
                                                  extra={"text": "My refund hasn't arrived yet."})
    finally:
        root.removeHandler(runtime)
    line = stream.getvalue()
    assert "priya@example.com" not in line and "root-handler-secret-value" not in line and "refund" not in line
    assert "[email]" in line and REDACTED in line


# --- every logger of the package ---------------------------------------------------------


def _package_modules() -> list[Any]:
    import importlib
    import pkgutil

    import chalicelib

    # A package's ``__main__`` is a program (importing it runs it); its loggers are the package's.
    return [importlib.import_module(info.name) for info in pkgutil.walk_packages(chalicelib.__path__, "chalicelib.")
            if not info.name.endswith(".__main__")]


def _loggers_named_in(module: Any) -> set[str]:
    """The names of every ``getLogger(...)`` call in a module's source; a name we cannot
    work out fails the test (a logger nobody can check)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
        if called != "getLogger":
            continue
        argument = node.args[0] if node.args else None
        if isinstance(argument, ast.Name) and argument.id == "__name__":
            names.add(module.__name__)
        elif isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            names.add(argument.value)
        elif isinstance(argument, ast.Name) and isinstance(getattr(module, argument.id, None), str):
            names.add(getattr(module, argument.id))  # a module-level constant
        elif argument is None:
            names.add("")  # the root logger
        else:
            raise AssertionError(f"{module.__name__}: getLogger({ast.unparse(argument)}) - use __name__ or a constant")
    return names


def _package_loggers() -> dict[str, Any]:
    """Every logger chalicelib's modules create or use: module attributes that are loggers
    (plain or Powertools), and every ``getLogger`` call in their source, lazy ones included."""
    from aws_lambda_powertools import Logger

    found: dict[str, Any] = {}
    for module in _package_modules():
        for value in vars(module).values():
            if isinstance(value, Logger):
                found[f"powertools:{value.service}"] = value
            elif isinstance(value, logging.Logger):
                found[value.name] = value
        if module.__name__ == "chalicelib.redaction":
            continue  # it sets the loggers up (install) and logs nothing itself
        for name in _loggers_named_in(module):
            found.setdefault(name, logging.getLogger(name))
    return found


PERSONAL_AND_SECRET = {
    "email": "priya.shah@example.com",
    "phone": "+1 650 555 0199",
    "text": "My refund hasn't arrived yet.",
    "name": "Priya Shah",
    "person": "16505551234",
    "secret": "every-logger-secret-value",
}


class _EverythingOnTheRecord(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.getMessage()} {vars(record)!r}"


def _emit_through(loggers: dict[str, Any]) -> tuple[str, str]:
    """Log one record carrying personal data and a secret through each logger; what the
    package's redacting handler wrote, and what reached the root logger's handlers."""
    from chalicelib.observability import logger as service_logger

    data = PERSONAL_AND_SECRET
    handler = service_logger.registered_handler
    written = io.StringIO()
    previous_stream = handler.setStream(written)
    escaped = io.StringIO()
    catch_all = logging.StreamHandler(escaped)  # no filter: shows exactly what a logger hands the root
    catch_all.setFormatter(_EverythingOnTheRecord())
    root = logging.getLogger()
    root.handlers.insert(0, catch_all)  # first: it sees each record before any other handler's filter
    try:
        for marker, target in loggers.items():
            try:
                raise RuntimeError(f"the helpdesk refused {data['email']}")
            except RuntimeError:
                target.error(
                    f"probe <{marker}> for {data['email']}, call {data['phone']}, token {data['secret']}",
                    exc_info=True,
                    extra={"text": data["text"], "display_name": data["name"], "author_id": data["person"]},
                )
    finally:
        root.removeHandler(catch_all)
        handler.setStream(previous_stream)
    return written.getvalue(), escaped.getvalue()


def _leaks(output: str) -> list[str]:
    return [word for word in PERSONAL_AND_SECRET.values() if word in output]


def test_every_logger_in_the_package_writes_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("META_APP_SECRET", PERSONAL_AND_SECRET["secret"])
    loggers = _package_loggers()
    # not vacuous: the service logger and the modules' own loggers were all found
    assert {"powertools:socialdesk", "chalicelib.http", "chalicelib.outbound.agent_replies", "chalicelib.channels.x.poller"} <= set(loggers)
    for target in loggers.values():
        # A handler of its own would write the record before it reaches the redacting one.
        while isinstance(target, logging.Logger) and target.name not in (PACKAGE_LOGGER, "root"):
            assert not target.handlers and target.propagate, f"{target.name} writes past the redacting handler"
            target = target.parent
    written, escaped = _emit_through(loggers)
    assert _leaks(written) == [] and _leaks(escaped) == [], (_leaks(written), _leaks(escaped))
    for marker in loggers:
        assert f"<{marker}>" in written, f"{marker}: its record did not go through the redacting handler"
    assert escaped == "", "records of the package reached the root logger's handlers too (printed twice)"


def test_a_logger_outside_the_package_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the walk above fails on: a module calling logging.getLogger("something").
    monkeypatch.setenv("META_APP_SECRET", PERSONAL_AND_SECRET["secret"])
    _package_loggers()  # the package is imported and its logging installed
    written, escaped = _emit_through({"something": logging.getLogger("something")})
    assert "<something>" not in written
    assert set(_leaks(escaped)) == set(PERSONAL_AND_SECRET.values())


# --- a full webhook through the app -------------------------------------------------------


@pytest.fixture
def app_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, io.StringIO]]:
    """The app with a moto table, its Powertools logger writing into a buffer at DEBUG."""
    import boto3
    from moto import mock_aws

    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.observability import logger
    from local.defaults import LOCAL_SECRETS
    from local.resources import create_local_resources

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", **LOCAL_SECRETS}.items():
        monkeypatch.setenv(name, value)
    handler = logger.registered_handler
    previous_formatter = handler.formatter
    install(logger)  # what chalicelib/observability.py does at import
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    previous_level = logger.log_level
    logger.setLevel("DEBUG")
    try:
        with mock_aws():
            resources = create_local_resources(
                dynamodb=boto3.client("dynamodb"), sqs=boto3.client("sqs"), template_path=ROOT / "infra" / "template.json", stage="redaction"
            )
            monkeypatch.setenv("TABLE_NAME", resources.table_name)
            wiring.reset()
            yield lambda_app.app, buffer
    finally:
        handler.setStream(previous_stream)
        handler.setFormatter(previous_formatter)
        logger.setLevel(previous_level)
        wiring.reset()


def test_a_whatsapp_webhook_leaves_no_customer_data_or_secret_in_the_logs(app_logs: tuple[Any, io.StringIO]) -> None:
    from chalice.test import Client

    from chalicelib.observability import logger
    from local.defaults import LOCAL_SECRETS
    from local.samples import encode, sign, whatsapp

    app, buffer = app_logs
    deliveries = whatsapp("4242")
    wa_id = "16505554242"
    secrets = [LOCAL_SECRETS["META_APP_SECRET"], LOCAL_SECRETS["META_VERIFY_TOKEN"]]
    signatures = []
    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        for route, payload in deliveries:
            body = encode(payload)
            headers = sign(route, body, LOCAL_SECRETS)
            signatures.append(headers["X-Hub-Signature-256"].split("=", 1)[1])
            answer = client.http.post(f"/webhooks/{route}", headers=headers, body=body)
            assert answer.status_code == 200, answer.body
        # a forged delivery: refused, and the refusal is logged
        body = encode(deliveries[0][1])
        forged = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=" + "0f" * 32}
        assert client.http.post("/webhooks/meta", headers=forged, body=body).status_code == 401
        signatures.append("0f" * 32)

    # a careless debugging line: the whole payload, the headers and the normalized message
    from chalicelib.channels.meta import webhook as meta

    message = meta.normalize_delivery(deliveries[0][1]).messages[0]
    logger.debug("delivery dump", extra={"payload": deliveries[0][1], "headers": sign("meta", body, LOCAL_SECRETS),
                                         "message_model": message, "author_id": wa_id, "conversation_key": message.conversation_key})
    # errors whose text carries customer data: pydantic quotes the input, our own name the conversation
    from pydantic import ValidationError

    from chalicelib.models import Author

    value = deliveries[0][1]["entry"][0]["changes"][0]["value"]
    name, words = value["contacts"][0]["profile"]["name"], value["messages"][0]["text"]["body"]
    try:  # (values from variables: a traceback quotes the source line, never customer data in real code)
        Author(platform_id=wa_id, display_name=[name], handle={"text": words})  # type: ignore[arg-type]
    except ValidationError:
        logger.exception("normalizing failed")
    try:
        phone = f"+{wa_id[:1]} {wa_id[1:4]} {wa_id[4:7]} {wa_id[7:]}"
        raise RuntimeError(f"could not sync {message.conversation_key}: the helpdesk refused contact {phone}")
    except RuntimeError:
        logger.exception("sync failed")

    logs = buffer.getvalue()
    assert "webhook stored" in logs and "request refused" in logs and "delivery dump" in logs, logs[:2000]
    for line in logs.splitlines():
        json.loads(line)  # still one JSON object per line
    forbidden = [
        "Priya", "Shah",  # the name
        wa_id, "650 555", "650-555",  # the phone number
        "My refund hasn't arrived yet.", "refund", "Order 88-1203", "paid by card",  # the words
        *secrets, *signatures,  # secrets and signature header values
    ]
    leaks = [word for word in forbidden if word in logs]
    assert not leaks, f"found in the logs: {leaks}"


def test_full_text_mode_shows_the_words_but_still_no_secret(app_logs: tuple[Any, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.observability import logger
    from local.defaults import LOCAL_SECRETS
    from local.samples import encode, sign, whatsapp

    _, buffer = app_logs
    monkeypatch.setenv("LOG_FULL_TEXT", "true")
    payload = whatsapp("4243")[0][1]
    headers = sign("meta", encode(payload), LOCAL_SECRETS)
    logger.debug("delivery dump", extra={"payload": payload, "headers": headers})
    logs = buffer.getvalue()
    assert "My refund hasn't arrived yet." in logs and "Priya Shah" in logs and '"log_full_text":true' in logs
    assert LOCAL_SECRETS["META_APP_SECRET"] not in logs
    assert headers["X-Hub-Signature-256"].split("=", 1)[1] not in logs
