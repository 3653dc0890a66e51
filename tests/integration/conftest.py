"""The local stack, assembled per test: moto server, Zendesk sandbox, the app over HTTP.

Everything listens on 127.0.0.1 (free ports) and is stopped by the fixtures. The
app is served by Chalice's own local server in a thread, so tests speak real HTTP
to the very routes Lambda runs; the stream is drained into the real sync handler.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.defaults import LOCAL_SECRETS, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, aws_environment, free_port

ROOT = Path(__file__).resolve().parents[2]
# Unique per test even when this module is imported twice (conformance/conftest.py imports it
# under another name, which would restart a module-level counter and reuse a table).
_stage_numbers = itertools.count(1)
_RUN = uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session; each test gets its own table and queue."""
    from local.moto_server import start_moto_server

    port = free_port()
    server = start_moto_server(port)
    saved = dict(os.environ)
    os.environ.update(aws_environment(f"http://127.0.0.1:{port}"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.fixture(scope="session")
def contract() -> Any:
    """Zendesk's published OpenAPI spec, loaded once."""
    from tests.support.openapi import ZendeskContract

    return ZendeskContract()


@dataclass
class HttpAnswer:
    """Status, headers and decoded JSON (or text) of one response."""

    status: int
    headers: dict[str, str]
    body: Any


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> HttpAnswer:
    """One real HTTP request; 4xx/5xx are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw, status, answer_headers = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        raw, status, answer_headers = error.read(), error.code, dict(error.headers)
    try:
        decoded: Any = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors="replace")
    return HttpAnswer(status, answer_headers, decoded)


@dataclass
class Stack:
    """Handles on every part of one test's local stack."""

    app_url: str
    sandbox: Any
    resources: Any
    poller: Any
    dynamodb: Any
    sqs: Any
    exchanges: list[Any] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)
    time: Any = None  # the sync's FakeTime: its waits are skipped and move its clock

    def post_webhook(self, route: str, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> HttpAnswer:
        """POST a delivery signed as the platform would (unless ``headers`` are given)."""
        from local.samples import encode, sign

        body = payload if isinstance(payload, bytes) else encode(payload)
        return http("POST", f"{self.app_url}/webhooks/{route}", body, headers or sign(route, body, LOCAL_SECRETS))

    def sync(self) -> int:
        """Hand every new stream record to the sync handler, as Lambda would."""
        return self.poller.drain()

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket in the sandbox."""
        return self.sandbox.tickets()

    def ticket_for(self, conversation_key: str) -> list[dict[str, Any]]:
        """Tickets whose external_id is the conversation key."""
        return [t for t in self.sandbox.tickets() if t.get("external_id") == conversation_key]

    def items(self, pk_prefix: str = "") -> list[dict[str, Any]]:
        """Every table item (low-level format) whose pk starts with ``pk_prefix``."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.resources.table_name)
        return [item for page in pages for item in page["Items"] if item["pk"]["S"].startswith(pk_prefix)]

    def parked_in_queue(self) -> int:
        """Messages waiting in the dead-letter queue (visible or in flight)."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())


@pytest.fixture
def stack(moto_url: str, contract: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A fresh table, queue and sandbox, the app served over HTTP, and a stream poller."""
    import boto3
    from chalice.config import Config
    from chalice.local import LocalDevServer

    import app as lambda_app
    from chalicelib import wiring
    from local.resources import create_local_resources
    from local.stream_poller import StreamPoller
    from local.zendesk_sandbox import ZendeskSandbox

    dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    resources = create_local_resources(
        dynamodb=dynamodb, sqs=sqs, template_path=ROOT / "infra" / "template.json", stage=f"test{_RUN}{next(_stage_numbers)}"
    )
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=SANDBOX_ZENDESK_EMAIL, api_token=SANDBOX_ZENDESK_TOKEN)
    sandbox.start()
    env = {
        **LOCAL_SECRETS,
        "TABLE_NAME": resources.table_name,
        "STREAM_ARN": resources.stream_arn,
        "DLQ_URL": resources.dlq_url,
        "ZENDESK_URL": sandbox.url,
        "ZENDESK_EMAIL": SANDBOX_ZENDESK_EMAIL,
        "ZENDESK_API_TOKEN": SANDBOX_ZENDESK_TOKEN,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    wiring.reset()

    exchanges: list[Any] = []
    violations: list[str] = []

    def check_against_spec(exchange: Any) -> None:
        # Recorded, not raised: an assertion inside the client would look like a
        # helpdesk failure to the sync. The fixture fails the test at teardown.
        exchanges.append(exchange)
        try:
            contract.validate_exchange(exchange)
        except AssertionError as error:
            violations.append(f"{exchange.method} {exchange.url}: {error}")

    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk

    wiring.override("helpdesk", ZendeskHelpdesk(sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN, observer=check_against_spec))
    # The sync's waits are recorded instead of slept, so fault tests stay fast and
    # can check that Retry-After was honoured; its logic is otherwise unchanged.
    from chalicelib.sync.tickets import TicketSync
    from tests.support.fake_time import FakeTime

    fake_time = FakeTime()
    wiring.override("sync", TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(),
                                       sleep=fake_time.sleep, clock=fake_time.now))

    server = LocalDevServer(lambda_app.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, name="chalice-local", daemon=True)
    thread.start()
    port = server.server.server_address[1]
    poller = StreamPoller(boto3.client("dynamodbstreams"), resources.stream_arn, lambda_app.sync_tickets)
    try:
        yield Stack(f"http://127.0.0.1:{port}", sandbox, resources, poller, dynamodb, sqs, exchanges, fake_time.sleeps, fake_time)
    finally:
        server.shutdown()
        server.server.server_close()
        sandbox.stop()
        wiring.reset()
    assert not violations, "Zendesk exchanges that break the published spec:\n" + "\n".join(violations)
