"""``JsonHttpClient`` without sockets: URLs, headers, JSON, and how failures are classified."""

from __future__ import annotations

import json
from typing import Any

import pytest
from urllib3 import exceptions as u3

from chalicelib.http import (
    ConnectFailed,
    ConnectionLost,
    Exchange,
    HttpResponse,
    JsonHttpClient,
    ResponseTimeout,
    TransportError,
    UnsafeUrl,
)

AUTH = "Basic c2VjcmV0LXZhbHVl"


class Raw:
    def __init__(self, status: int = 200, data: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.status, self.data, self.headers = status, data, headers or {}


class Pool:
    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.cleared = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Raw:
        self.calls.append({"method": method, "url": url, **kwargs})
        answer = self.answers.pop(0) if self.answers else Raw()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def clear(self) -> None:
        self.cleared += 1


def client(*answers: Any, base: str = "https://acme.zendesk.com", **kwargs: Any) -> tuple[JsonHttpClient, Pool]:
    pool = Pool(*answers)
    return JsonHttpClient(base, AUTH, pool=pool, **kwargs), pool


def test_json_body_headers_and_response() -> None:
    http, pool = client(Raw(201, b'{"ok": true}', {"X-Idempotency-Lookup": "miss", "Content-Type": "application/json"}))

    response = http.request("post", "/api/v2/things", json={"name": "Zoë"}, headers={"Idempotency-Key": "k1"})

    call = pool.calls[0]
    assert (call["method"], call["url"]) == ("POST", "https://acme.zendesk.com/api/v2/things")
    assert json.loads(call["body"]) == {"name": "Zoë"}
    assert call["headers"]["Content-Type"] == "application/json"
    assert call["headers"]["Idempotency-Key"] == "k1"
    assert call["headers"]["Authorization"] == AUTH
    assert call["retries"] is False and call["redirect"] is False
    assert call["timeout"].connect_timeout == 3.05 and call["timeout"].read_timeout == 10
    assert response.status == 201 and response.ok
    assert response.header("x-idempotency-lookup") == "miss"
    assert response.headers["x-idempotency-lookup"] == "miss"
    assert response.json() == {"ok": True}


def test_a_get_sends_no_body_and_no_content_type() -> None:
    http, pool = client()

    http.request("GET", "api/v2/things", params={"page[size]": 100})

    assert pool.calls[0]["body"] is None
    assert "Content-Type" not in pool.calls[0]["headers"]
    assert pool.calls[0]["url"] == "https://acme.zendesk.com/api/v2/things?page%5Bsize%5D=100"


def test_caller_headers_cannot_replace_the_credentials() -> None:
    http, pool = client()

    http.request("GET", "/x", headers={"Authorization": "Basic someone-else"})

    assert pool.calls[0]["headers"]["Authorization"] == AUTH


def test_a_base_path_prefix_is_kept() -> None:
    http, pool = client(base="http://127.0.0.1:8025/zendesk/")

    http.request("GET", "/api/v2/tickets")

    assert pool.calls[0]["url"] == "http://127.0.0.1:8025/zendesk/api/v2/tickets"


def test_absolute_links_are_followed_only_on_the_same_origin() -> None:
    http, pool = client()

    http.request("GET", "https://ACME.zendesk.com/api/v2/tickets/1/audits.json?page=2")
    for elsewhere in ("https://evil.example/api", "http://acme.zendesk.com/api", "https://acme.zendesk.com:444/api"):
        with pytest.raises(UnsafeUrl):
            http.request("GET", elsewhere)

    assert len(pool.calls) == 1


@pytest.mark.parametrize("base", ["acme.zendesk.com", "ftp://acme.zendesk.com", "http://acme.zendesk.com", "https://a.b/?x=1"])
def test_bad_base_urls_are_refused(base: str) -> None:
    with pytest.raises(ValueError):
        JsonHttpClient(base, AUTH, pool=Pool())


def test_plain_http_to_a_remote_host_needs_an_explicit_opt_in() -> None:
    JsonHttpClient("http://sandbox.internal:8025", AUTH, pool=Pool(), allow_insecure=True)
    JsonHttpClient("http://localhost:8025", AUTH, pool=Pool())
    JsonHttpClient("http://[::1]:8025", AUTH, pool=Pool())


@pytest.mark.parametrize(
    ("error", "kind", "maybe_sent"),
    [
        (u3.NewConnectionError(None, "refused"), ConnectFailed, False),  # type: ignore[arg-type]
        (u3.ConnectTimeoutError(None, "connect timed out"), ConnectFailed, False),
        (u3.ReadTimeoutError(None, "/x", "read timed out"), ResponseTimeout, True),
        (u3.ProtocolError("Connection aborted.", ConnectionResetError()), ConnectionLost, True),
        (u3.SSLError("bad record mac"), ConnectionLost, True),
        (ConnectionResetError(104, "reset"), ConnectionLost, True),
        (u3.MaxRetryError(None, "/x", u3.NewConnectionError(None, "refused")), ConnectFailed, False),  # type: ignore[arg-type]
        (u3.MaxRetryError(None, "/x", u3.ReadTimeoutError(None, "/x", "slow")), ResponseTimeout, True),
    ],
)
def test_transport_failures_say_whether_the_request_may_have_been_sent(
    error: Exception, kind: type[TransportError], maybe_sent: bool
) -> None:
    http, _ = client(error)

    with pytest.raises(kind) as caught:
        http.request("PUT", "/api/v2/tickets/1?x=secret-cursor", json={"a": 1})

    assert caught.value.maybe_sent is maybe_sent
    assert caught.value.method == "PUT"
    assert "secret-cursor" not in str(caught.value)  # no query strings in messages
    assert AUTH not in str(caught.value)


def test_errors_that_are_not_transport_failures_propagate_unchanged() -> None:
    http, _ = client(KeyError("bug"))

    with pytest.raises(KeyError):
        http.request("GET", "/x")


def test_observer_gets_the_exchange_with_credentials_redacted() -> None:
    seen: list[Exchange] = []
    http, _ = client(Raw(404, b'{"error":"RecordNotFound"}', {"Content-Type": "application/json"}), observer=seen.append)

    http.request("PUT", "/api/v2/tickets/9", json={"ticket": {}})

    (exchange,) = seen
    assert (exchange.method, exchange.url, exchange.status) == ("PUT", "https://acme.zendesk.com/api/v2/tickets/9", 404)
    assert exchange.request_headers["Authorization"] == "Basic [redacted]"
    assert exchange.request_body == b'{"ticket":{}}'
    assert exchange.response_headers["content-type"] == "application/json"
    assert exchange.response_body == b'{"error":"RecordNotFound"}'
    assert "c2VjcmV0" not in repr(exchange)


def test_observer_is_not_called_without_a_response() -> None:
    seen: list[Exchange] = []
    http, _ = client(u3.ReadTimeoutError(None, "/x", "slow"), observer=seen.append)

    with pytest.raises(ResponseTimeout):
        http.request("GET", "/x")
    assert seen == []


def test_idle_pooled_connections_are_dropped_before_reuse(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("chalicelib.http.time.monotonic", lambda: now[0])
    http, pool = client(max_idle_seconds=20)

    http.request("GET", "/a")
    now[0] += 5
    http.request("GET", "/b")
    assert pool.cleared == 0
    now[0] += 60  # e.g. the Lambda container was frozen meanwhile
    http.request("GET", "/c")
    assert pool.cleared == 1


def test_response_json_handles_empty_and_invalid_bodies() -> None:
    assert HttpResponse(204, {}, b"").json() is None
    with pytest.raises(ValueError):
        HttpResponse(502, {}, b"<html>Bad Gateway</html>").json()


def test_repr_hides_the_credentials() -> None:
    http, _ = client()
    assert AUTH not in repr(http) and "c2VjcmV0" not in repr(http)
