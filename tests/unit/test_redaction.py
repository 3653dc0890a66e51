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
    REDACTED,
    SECRET_MASK,
    STDLIB_LOGGERS,
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


def test_install_is_idempotent_and_keeps_the_loggers_keys() -> None:
    from aws_lambda_powertools import Logger

    stream = io.StringIO()
    logger = Logger(service="redaction-install", stream=stream)
    saved = {name: list(logging.getLogger(name).filters) for name in STDLIB_LOGGERS}
    first = install(logger)
    assert install(logger) is first and isinstance(logger.registered_formatter, RedactingFormatter)
    logger.info("hi", extra={"body": "words"})
    record = json.loads(stream.getvalue())
    assert record["service"] == "redaction-install" and record["body"] == REDACTED
    # plain logging loggers of the package get a filter: a Telegram token in a URL path is masked
    http_logger = logging.getLogger("chalicelib.helpdesk.http")
    record_ = http_logger.makeRecord(http_logger.name, logging.DEBUG, __file__, 1, "%s %s", ("GET", "/bot123456789:AAH" + "x" * 33 + "/getMe"), None)
    for f in http_logger.filters:
        f.filter(record_)
    assert "AAH" not in record_.getMessage()
    for name, filters in saved.items():
        logging.getLogger(name).filters[:] = filters


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
    previous_filters = {name: list(logging.getLogger(name).filters) for name in STDLIB_LOGGERS}
    install(logger)  # what chalicelib/observability.py does once wired (see the report)
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
        for name, filters in previous_filters.items():
            logging.getLogger(name).filters[:] = filters
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
    from chalicelib.platforms import meta

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
