"""Token health against a local server playing Graph, X, Telegram, Zendesk and Freshdesk on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.ops.token_health import EXPIRED, NOT_CONFIGURED, OK, REVOKED, UNREACHABLE, TokenHealth, publish

APP_ID, APP_SECRET = "1517776481860111", "graph-app-secret-0123456789"
PAGE_TOKEN, EXPIRED_PAGE_TOKEN, LOGGED_OUT_TOKEN = "EAAGood" + "p" * 40, "EAAExpired" + "e" * 40, "EAALoggedOut" + "l" * 40
X_TOKEN = "x-user-token-" + "u" * 30
BOT_TOKEN = "123456789:AAH" + "b" * 32
ZD_EMAIL, ZD_TOKEN = "agent@acme.test", "zendesk-api-token-" + "z" * 20
FD_KEY = "freshdesk-api-key-" + "f" * 12
GOOGLE_TOKEN = "ya29.google-access-token-" + "g" * 24
NOW = 1_764_000_000


@dataclass
class FakeApis:
    """The five APIs; ``outage`` makes every answer a 503; ``seen`` records paths (no queries)."""

    port: int = 0
    outage: bool = False
    page_expires_at: int = NOW + 10 * 86400
    seen: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, path: str, query: dict[str, str], auth: str) -> tuple[int, Any]:
        if self.outage:
            return 503, {"error": "maintenance"}
        if path == "/debug_token":
            if auth != f"Bearer {APP_ID}|{APP_SECRET}":
                return 400, {"error": {"message": "Invalid OAuth access token signature.", "type": "OAuthException", "code": 190, "fbtrace_id": "A1"}}
            token = query.get("input_token")
            if token == PAGE_TOKEN:
                return 200, {"data": {"app_id": APP_ID, "type": "PAGE", "application": "Acme", "is_valid": True,
                                      "expires_at": self.page_expires_at, "data_access_expires_at": NOW + 80 * 86400, "scopes": ["pages_messaging"]}}
            if token == f"{APP_ID}|{APP_SECRET}":
                return 200, {"data": {"app_id": APP_ID, "type": "APP", "application": "Acme", "is_valid": True}}
            if token == EXPIRED_PAGE_TOKEN:
                return 200, {"data": {"app_id": APP_ID, "type": "PAGE", "is_valid": False, "expires_at": NOW - 2 * 86400, "scopes": [],
                                      "error": {"code": 190, "subcode": 463, "message": "Error validating access token: Session has expired on Monday, 23-Nov-26 10:00:00 PST."}}}
            return 200, {"data": {"is_valid": False, "error": {"code": 190, "subcode": 467, "message": "The access token is invalid."}}}
        if path == "/me":
            if auth == f"Bearer {PAGE_TOKEN}":
                return 200, {"id": "104976543210001", "name": "Acme"}
            if auth == f"Bearer {EXPIRED_PAGE_TOKEN}":
                return 400, {"error": {"message": "Error validating access token: Session has expired on Monday.", "type": "OAuthException",
                                       "code": 190, "error_subcode": 463, "fbtrace_id": "A2"}}
            return 400, {"error": {"message": "The user has not authorized application.", "type": "OAuthException", "code": 190, "error_subcode": 458}}
        if path == "/2/users/me":
            if auth == f"Bearer {X_TOKEN}":
                return 200, {"data": {"id": "2244994945", "name": "ACME Support", "username": "acme_support"}}
            return 401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
        if path.startswith("/bot") and path.endswith("/getMe"):
            if path == f"/bot{BOT_TOKEN}/getMe":
                return 200, {"ok": True, "result": {"id": 123456789, "is_bot": True, "first_name": "Acme", "username": "acme_help_bot"}}
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if path == "/api/v2/users/me.json":
            expected = "Basic " + base64.b64encode(f"{ZD_EMAIL}/token:{ZD_TOKEN}".encode()).decode()
            if auth == expected:
                return 200, {"user": {"id": 90001, "name": "Agent", "role": "admin"}}
            if auth.startswith("Basic "):
                return 401, {"error": "Couldn't authenticate you"}
            return 200, {"user": {"id": None, "name": "Anonymous user", "role": "end-user"}}
        if path == "/tokeninfo":  # Google OAuth token info
            if query.get("access_token") == GOOGLE_TOKEN:
                return 200, {"aud": "acme.apps.googleusercontent.com", "scope": "https://www.googleapis.com/auth/business.manage", "expires_in": "3599"}
            return 400, {"error": "invalid_token", "error_description": "Invalid Value"}
        if path == "/api/v2/agents/me":  # Freshdesk: "View Currently Authenticated Agent"
            if auth == "Basic " + base64.b64encode(f"{FD_KEY}:X".encode()).decode():
                return 200, {"id": 77001, "available": True, "contact": {"name": "Agent", "email": "agent@acme.test"}}
            return 401, {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}
        return 404, {"error": "not found"}

    def start(self) -> FakeApis:
        apis = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                apis.seen.append(parts.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                status, body = apis.answer(parts.path, query, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def apis() -> Iterator[FakeApis]:
    server = FakeApis().start()
    try:
        yield server
    finally:
        server.stop()


def _env(apis: FakeApis, **overrides: str | None) -> dict[str, str]:
    env = {
        "META_GRAPH_URL": apis.url, "X_API_URL": apis.url, "TELEGRAM_API_URL": apis.url, "ZENDESK_URL": apis.url,
        "FRESHDESK_URL": apis.url, "FRESHDESK_API_KEY": FD_KEY, "GOOGLE_OAUTH_URL": apis.url, "GOOGLE_ACCESS_TOKEN": GOOGLE_TOKEN,
        "META_APP_ID": APP_ID, "META_APP_SECRET": APP_SECRET, "META_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
        "X_USER_ACCESS_TOKEN": X_TOKEN, "TELEGRAM_BOT_TOKEN": BOT_TOKEN, "ZENDESK_EMAIL": ZD_EMAIL, "ZENDESK_API_TOKEN": ZD_TOKEN,
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _health(env: dict[str, str]) -> TokenHealth:
    return TokenHealth(env, secret=env.get, clock=lambda: NOW, timeout=(1.0, 2.0))


def _by_platform(health: TokenHealth) -> dict[str, Any]:
    return {r.platform: r for r in health.run()}


ALL_SECRETS = (APP_SECRET, PAGE_TOKEN, EXPIRED_PAGE_TOKEN, X_TOKEN, BOT_TOKEN, ZD_TOKEN, GOOGLE_TOKEN, "AAH" + "b" * 32)


def _assert_no_secret(text: str) -> None:
    leaks = [s for s in ALL_SECRETS if s in text]
    assert not leaks, f"secrets in output: {leaks}"


def test_every_configured_token_is_ok_with_days_left_where_known(apis: FakeApis) -> None:
    results = _by_platform(_health(_env(apis)))
    assert {p: r.status for p, r in results.items()} == {"meta": OK, "x": OK, "telegram": OK, "zendesk": OK, "freshdesk": OK,
                                                         "google": OK}
    assert results["google"].days_left is None and "59 more minutes" in results["google"].detail  # an hour-long token
    assert results["meta"].days_left == 10 and "expires in 10 day" in results["meta"].detail
    assert "@acme_support" in results["x"].detail and "@acme_help_bot" in results["telegram"].detail
    assert results["zendesk"].days_left is None
    _assert_no_secret(json.dumps([r.to_dict() for r in results.values()]))


def test_an_expired_graph_token_code_190_is_reported_expired(apis: FakeApis) -> None:
    meta = _health(_env(apis, META_PAGE_ACCESS_TOKEN=EXPIRED_PAGE_TOKEN)).check_meta()
    assert meta.status == EXPIRED and "expired" in meta.detail and "code 190, subcode 463" in meta.detail
    assert meta.days_left == -2


def test_the_page_token_alone_is_checked_with_me(apis: FakeApis) -> None:
    assert _health(_env(apis, META_APP_ID=None)).check_meta().status == OK
    assert apis.seen[-1] == "/me"
    expired = _health(_env(apis, META_APP_ID=None, META_PAGE_ACCESS_TOKEN=EXPIRED_PAGE_TOKEN)).check_meta()
    assert expired.status == EXPIRED
    removed = _health(_env(apis, META_APP_ID=None, META_PAGE_ACCESS_TOKEN="EAAUnknown" + "q" * 30)).check_meta()
    assert removed.status == REVOKED and "removed" in removed.detail


def test_revoked_credentials_are_named_in_plain_words(apis: FakeApis) -> None:
    results = _by_platform(_health(_env(
        apis, META_PAGE_ACCESS_TOKEN=LOGGED_OUT_TOKEN, X_USER_ACCESS_TOKEN="x-revoked-token", TELEGRAM_BOT_TOKEN="987654321:AAH" + "r" * 32,
        ZENDESK_API_TOKEN="deleted-zendesk-token", FRESHDESK_API_KEY="reset-freshdesk-key", GOOGLE_ACCESS_TOKEN="ya29.stale-token",
    )))
    assert {p: r.status for p, r in results.items()} == {"meta": REVOKED, "x": REVOKED, "telegram": REVOKED, "zendesk": REVOKED,
                                                         "freshdesk": REVOKED, "google": EXPIRED}
    assert "renewal outside socialdesk has stopped" in results["google"].detail
    assert "copy the current key" in results["freshdesk"].detail
    assert "logged out" in results["meta"].detail
    assert "BotFather" in results["telegram"].detail and "987654321" not in results["telegram"].detail
    wrong_secret = _health(_env(apis, META_APP_SECRET="not-the-app-secret")).check_meta()
    assert wrong_secret.status == REVOKED and "META_APP_SECRET" in wrong_secret.detail


def test_zendesk_answering_as_an_anonymous_user_counts_as_refused(apis: FakeApis) -> None:
    class NoAuth(TokenHealth):
        def _client(self, base_url: str, auth_header: str) -> Any:
            return super()._client(base_url, "Bearer nothing")  # not Basic: the fake answers as Zendesk does without credentials

    check = NoAuth(_env(apis), secret=_env(apis).get).check_zendesk()
    assert check.status == REVOKED and "anonymous" in check.detail


def test_only_what_is_configured_is_checked(apis: FakeApis) -> None:
    env = {"META_GRAPH_URL": apis.url, "X_API_URL": apis.url, "TELEGRAM_API_URL": apis.url}
    results = _by_platform(_health(env))
    assert all(r.status == NOT_CONFIGURED for r in results.values())
    assert all("not configured" in r.detail for r in results.values())
    assert apis.seen == []
    partial = _by_platform(_health({**env, "TELEGRAM_BOT_TOKEN": BOT_TOKEN}))
    assert partial["telegram"].status == OK and partial["x"].status == NOT_CONFIGURED
    secret_only = _health({**env, "META_APP_SECRET": APP_SECRET}).check_meta()
    assert secret_only.status == NOT_CONFIGURED and "META_APP_ID" in secret_only.detail


def test_outages_and_dead_hosts_are_unreachable_not_broken_tokens(apis: FakeApis) -> None:
    apis.outage = True
    results = _by_platform(_health(_env(apis)))
    assert {r.status for r in results.values()} == {UNREACHABLE}
    assert "503" in results["x"].detail
    from local.defaults import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    results = _by_platform(_health(_env(apis, META_GRAPH_URL=dead, X_API_URL=dead, TELEGRAM_API_URL=dead, ZENDESK_URL=dead,
                                               GOOGLE_OAUTH_URL=dead)))
    assert {r.status for r in results.values()} == {UNREACHABLE}
    assert time.monotonic() - started < 10
    _assert_no_secret(json.dumps([r.to_dict() for r in results.values()]))  # the Telegram URL path holds the token


def test_a_secret_store_failure_is_reported_not_raised(apis: FakeApis) -> None:
    def secret(name: str) -> str | None:
        if name == "X_USER_ACCESS_TOKEN":
            raise RuntimeError("AccessDeniedException on /socialdesk/prod/x-user-access-token")
        return _env(apis).get(name)

    results = _by_platform(TokenHealth(_env(apis), secret=secret, clock=lambda: NOW))
    assert results["x"].status == UNREACHABLE and "could not be read" in results["x"].detail
    assert results["meta"].status == OK


def test_publish_emits_one_metric_per_checked_platform_and_clear_errors(apis: FakeApis) -> None:
    from chalicelib.observability import logger
    from chalicelib.redaction import install

    results = _health(_env(apis, META_PAGE_ACCESS_TOKEN=EXPIRED_PAGE_TOKEN, X_USER_ACCESS_TOKEN=None)).run()
    handler = logger.registered_handler
    previous_formatter = handler.formatter
    install(logger)  # as chalicelib/observability.py will
    logs = io.StringIO()
    previous = handler.setStream(logs)
    stdout = io.StringIO()
    try:
        with redirect_stdout(stdout):
            publish(results, warn_days=14)
    finally:
        handler.setStream(previous)
        handler.setFormatter(previous_formatter)

    metrics = [json.loads(line) for line in stdout.getvalue().splitlines() if line.startswith("{")]
    token_ok = {m["platform"]: m["token_ok"] for m in metrics if "token_ok" in m}
    assert token_ok == {"meta": [0.0], "telegram": [1.0], "google": [1.0], "zendesk": [1.0], "freshdesk": [1.0]}
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "socialdesk" for m in metrics)
    assert any("token_days_left" in m and m["platform"] == "meta" for m in metrics)
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["platform"] == "meta" and "has expired" in errors[0]["message"]
    _assert_no_secret(logs.getvalue() + stdout.getvalue())


def test_a_token_expiring_soon_is_a_warning(apis: FakeApis) -> None:
    from chalicelib.observability import logger

    apis.page_expires_at = NOW + 3 * 86400
    results = [_health(_env(apis)).check_meta()]
    assert results[0].status == OK and results[0].days_left == 3
    handler = logger.registered_handler
    logs = io.StringIO()
    previous = handler.setStream(logs)
    try:
        with redirect_stdout(io.StringIO()):
            publish(results, warn_days=14)
    finally:
        handler.setStream(previous)
    warnings = [json.loads(line) for line in logs.getvalue().splitlines() if json.loads(line)["level"] == "WARNING"]
    assert len(warnings) == 1 and "expire in 3 day" in warnings[0]["message"]
