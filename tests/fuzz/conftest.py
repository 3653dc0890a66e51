"""The app in-process for the route fuzzer: moto DynamoDB, a Google sandbox, Chalice's test client.

* ``FUZZ_PROFILE=short`` (default, ``make test``): a few hundred inputs, derandomized,
  no example database; ``FUZZ_PROFILE=long`` (``make fuzz``): 10,000+ inputs, random.
* Requests go through ``chalice.test.Client`` (Chalice's ``LocalGateway``, the same
  request/response conversion as ``chalice local``), against moto's in-process
  ``mock_aws`` with the table created from ``infra/template.json`` (stage ``fuzz``).
* Every DynamoDB write call the app makes is counted (a spy around the client the
  store is built with), and unauthenticated requests also compare the table's item
  count before and after: nothing may be written by a request that failed
  authentication.
* ``pytest_terminal_summary`` prints the fuzz report (``tests/fuzz/report.py``);
  ``FUZZ_REPORT_FILE=path`` also saves it as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.fuzz.report import REPORT

ROOT = Path(__file__).resolve().parents[2]

# Small enough to make "over the limit" bodies cheap, large enough that a 10,000-level
# nested array (20,000 bytes) is parsed rather than refused for its size.
FUZZ_MAX_BODY_BYTES = 64 * 1024

# --- Hypothesis profiles ---------------------------------------------------------------

_COMMON: dict[str, Any] = {
    "deadline": None,  # moto and the first JWKS fetch make timings noisy; speed is checked by the totals
    "database": None,  # never write .hypothesis/ (CI, and `make fuzz` on a laptop alike)
    "print_blob": True,  # a failure prints @reproduce_failure(...) to replay it exactly
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
# Examples per fuzz test *case*: each route of each fuzz test is one case (32 cases for
# 11 routes today: 4 tests per POST route, 1 per GET route). short: 20 each (~750 inputs,
# ~10 s); long: 400 each (~14,000 inputs). FUZZ_EXAMPLES overrides either.
settings.register_profile(
    "short",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20")),
    derandomize=True,  # same inputs on every run: CI stays stable
    **_COMMON,
)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    derandomize=False,
    **_COMMON,
)
PROFILE = os.environ.get("FUZZ_PROFILE", "short")
if PROFILE not in ("short", "long"):
    raise pytest.UsageError(f"FUZZ_PROFILE must be 'short' or 'long', not {PROFILE!r}")
# Applied to the fuzz tests only (a decorator), not loaded globally: other Hypothesis
# tests in the suite keep their own settings.
FUZZ_SETTINGS = settings.get_profile(PROFILE)


# --- the report --------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many inputs were tried and how many passed (what ``make fuzz`` shows)."""
    lines = REPORT.summary_lines()
    if not lines:
        return
    terminalreporter.section("route fuzzing")
    for line in lines:
        terminalreporter.write_line(line)
    target = os.environ.get("FUZZ_REPORT_FILE")
    if target:
        REPORT.write(target)
        terminalreporter.write_line(f"  report saved to {target}")


# --- the app under test ------------------------------------------------------------------

_WRITE_CALLS = frozenset(
    {"put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items", "execute_statement",
     "batch_execute_statement", "execute_transaction"}
)


class WriteSpy:
    """A DynamoDB client that counts the write calls made through it (any thread)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.writes = 0

    def reset(self) -> None:
        with self._lock:
            self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in _WRITE_CALLS:
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.writes += 1
            return attribute(*args, **kwargs)

        return counted


class TracebackCapture(logging.Handler):
    """Keeps the traceback Chalice logs for an unhandled exception (the 500's cause)."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks.append("".join(traceback.format_exception(*record.exc_info)))
        else:
            self.tracebacks.append(record.getMessage())


@dataclass
class FuzzRequest:
    """One request the fuzzer sends, and what we know about it by construction."""

    method: str
    path: str  # with the query string, if any
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    route: str = ""  # "POST /webhooks/generic/{source}": the app route it targets
    authenticated: bool = False  # carries valid credentials (a signature we made with the right secret)
    label: str = ""  # what kind of input this is, for failure messages
    expect_status: int | None = None  # when the exact answer is known (e.g. 413 for an oversized body)
    expect: dict[str, Any] = field(default_factory=dict)  # route-specific expectations (handshake answers)

    def describe(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"...(%d bytes)" % len(self.body)
        return (
            f"{self.method} {self.path[:300]} [{self.label}; authenticated={self.authenticated}]\n"
            f"  headers: {self.headers!r}\n  body: {body!r}"
        )


@dataclass
class Answer:
    """What the app answered, plus what the request did to the table."""

    status: int
    headers: dict[str, str]
    body: bytes
    writes: int
    items_before: int | None
    items_after: int | None
    tracebacks: list[str]

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), "")

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        cause = ""
        if self.tracebacks:
            lines = [line.strip() for line in self.tracebacks[-1].strip().splitlines() if line.strip(" ^~")]
            frames = [i for i, line in enumerate(lines) if line.startswith("File ") and "/site-packages/" not in line
                      and "/lib/python" not in line]
            where = " ".join(lines[frames[-1]:frames[-1] + 2]) if frames else ""
            cause = f"\n  cause: {lines[-1]}\n  raised at: {where}"
        body = self.body[:500]
        return (
            f"  -> {self.status} {self.content_type!r} {body!r}\n"
            f"  writes: {self.writes}, items before/after: {self.items_before}/{self.items_after}{cause}"
        )


class FuzzApp:
    """The app, its table and the Google sandbox, driven in-process."""

    def __init__(self, *, lambda_app: Any, dynamodb: Any, table_name: str, spy: WriteSpy, google: Any,
                 capture: TracebackCapture, secrets: Mapping[str, str]) -> None:
        from chalice.test import Client

        self.app = lambda_app
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.spy = spy
        self.google = google
        self.capture = capture
        self.secrets = dict(secrets)
        self.client = Client(lambda_app, stage_name="local", project_dir=str(ROOT))
        self.codes: list[str] = []  # confirmation codes of deletion requests the fuzzer got accepted

    def item_count(self) -> int:
        """How many items the table holds right now.

        moto computes DescribeTable's ``ItemCount`` live (the length of the table), unlike
        DynamoDB, which refreshes it every few hours; a scan would cost O(items) per
        request. ``scan_count()`` is the portable (slow) equivalent.
        """
        return int(self.dynamodb.describe_table(TableName=self.table_name)["Table"]["ItemCount"])

    def scan_count(self) -> int:
        """Every item in the table, counted by a consistent scan."""
        total, kwargs = 0, {"TableName": self.table_name, "Select": "COUNT", "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return total
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def send(self, request: FuzzRequest, *, count_items: bool | None = None) -> Answer:
        """Send ``request``; count items around it when it is unauthenticated (or when asked)."""
        count = (not request.authenticated) if count_items is None else count_items
        before = self.item_count() if count else None
        self.spy.reset()
        self.capture.tracebacks.clear()
        response = self.client.http.request(request.method, request.path, headers=dict(request.headers), body=request.body)
        after = self.item_count() if count else None
        body = response.body if isinstance(response.body, bytes) else (response.body or "").encode()
        return Answer(
            status=response.status_code,
            headers=dict(response.headers or {}),
            body=body,
            writes=self.spy.writes,
            items_before=before,
            items_after=after,
            tracebacks=list(self.capture.tracebacks),
        )


def contract_problems(request: FuzzRequest, answer: Answer) -> list[str]:
    """Everything in ``answer`` that breaks the contract of the issue "hostile input".

    Only 2xx or 4xx; 4xx bodies are JSON with an ``error`` object; 2xx bodies are JSON
    (except where ``expect["content_type"]`` allows another type: the Meta handshake's
    text/plain, the privacy status page's HTML), with ``"ok": true`` for webhooks;
    nothing written by an unauthenticated request, which must not be accepted either.
    """
    problems: list[str] = []
    status = answer.status
    if status >= 500 or status < 200 or 300 <= status < 400:
        problems.append(f"status {status} (only 2xx and 4xx are allowed)")
    if request.expect_status is not None and status != request.expect_status:
        problems.append(f"status {status}, expected {request.expect_status}")
    if 400 <= status < 500:
        try:
            body = answer.json()
        except ValueError:
            problems.append("a 4xx body that is not JSON")
        else:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict) or not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
                problems.append("a 4xx body without an error object {code, message}")
        if "json" not in answer.content_type:
            problems.append(f"a 4xx with Content-Type {answer.content_type!r}")
    other_type = request.expect.get("content_type")  # a 2xx that may be something else (text/plain, text/html)
    if 200 <= status < 300 and not (other_type and answer.content_type.startswith(other_type)):
        try:
            body = answer.json()
        except ValueError:
            problems.append("a 2xx body that is not JSON")
        else:
            webhook = request.method == "POST" and request.path.startswith("/webhooks/")
            if webhook and not (isinstance(body, dict) and body.get("ok") is True):
                problems.append("a 2xx webhook answer without \"ok\": true")
    if not request.authenticated:
        if 200 <= status < 300 and request.method == "POST":
            problems.append("an unauthenticated webhook was accepted")
        if answer.writes:
            problems.append(f"{answer.writes} DynamoDB write call(s) from an unauthenticated request")
        if answer.items_before is not None and answer.items_after != answer.items_before:
            problems.append(f"the table went from {answer.items_before} to {answer.items_after} items")
    return problems


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="package")
def fuzz_app() -> Iterator[FuzzApp]:
    """The app against moto (in-process) and the Google sandbox, for the whole fuzz package."""
    from moto import mock_aws

    from local.defaults import LOCAL_SECRETS
    from local.google_sandbox import GoogleSandbox

    secrets = {
        **LOCAL_SECRETS,
        # A second generic source configured with two secrets (a rotation in progress).
        "GENERIC_WEBHOOK_SECRET_APP_STORE": "whsec_ZnV6ei1hcHAtc3RvcmUtbmV3LXNpZ25pbmctc2VjcmV0IQ== "
        "whsec_ZnV6ei1hcHAtc3RvcmUtb2xkLXNpZ25pbmctc2VjcmV0IQ==",
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(name, raising=False)
        for name in [n for n in os.environ if n.endswith(("_PARAM", "_SECRET_ID")) or n.startswith("GENERIC_WEBHOOK_SECRET_")]:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "fuzz")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "fuzz")
        mp.setenv("AWS_SESSION_TOKEN", "fuzz")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        google = GoogleSandbox().start()
        with mock_aws():
            import boto3

            from chalicelib import wiring
            from chalicelib.observability import logger
            from chalicelib.channels.google import webhook as google_reviews
            from local.resources import create_local_resources

            dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
            resources = create_local_resources(
                dynamodb=dynamodb, sqs=sqs, template_path=ROOT / "infra" / "template.json", stage="fuzz"
            )
            env = {
                **secrets,
                "TABLE_NAME": resources.table_name,
                "DLQ_URL": resources.dlq_url,
                "MAX_BODY_BYTES": str(FUZZ_MAX_BODY_BYTES),
                "GOOGLE_PUSH_AUDIENCE": google.audience,
                "GOOGLE_PUSH_SERVICE_ACCOUNTS": google.push_email,
                "GOOGLE_JWKS_URL": google.jwks_url,
                "GOOGLE_BUSINESS_API_URL": google.url,
                "GOOGLE_ACCESS_TOKEN": google.access_token,
            }
            for name, value in env.items():
                mp.setenv(name, value)
            import app as lambda_app

            wiring.reset()
            google_reviews.clear_key_sources()
            spy = WriteSpy(dynamodb)
            wiring.override("dynamodb", spy)  # the store is built with this client
            # Agents' replies would go out to real platforms: the route's own checks are
            # what is fuzzed here, so the reply side answers without calling anyone.
            wiring.override("agent_replies", _NoReplies())
            wiring.override("problem_answers", None)  # no crisis fan-out in front of them

            # Quiet, and keep the traceback of every unhandled exception for the report.
            py_logger = logging.getLogger(logger.name)
            saved = (list(py_logger.handlers), py_logger.level, py_logger.propagate)
            capture = TracebackCapture()
            py_logger.handlers[:] = [capture]
            py_logger.setLevel(logging.ERROR)
            py_logger.propagate = False
            try:
                yield FuzzApp(
                    lambda_app=lambda_app.app, dynamodb=dynamodb, table_name=resources.table_name, spy=spy,
                    google=google, capture=capture, secrets=env,
                )
            finally:
                py_logger.handlers[:], level, py_logger.propagate = saved[0], saved[1], saved[2]
                py_logger.setLevel(level)
                wiring.reset()
                google_reviews.clear_key_sources()
                google.stop()


class _NoReplies:
    """Stands in for ``AgentReplies`` in the fuzz app: handles every event, sends nothing."""

    def handle(self, event: object) -> str:
        return "ignored_not_bridged"
