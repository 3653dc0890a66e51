"""``JsonHttpClient`` and the Zendesk adapter against a real socket on 127.0.0.1.

Proves with real urllib3 what the unit tests assume: a refused connection is "not
sent", while a slow or vanished server after the request was written is "maybe
sent" -- and the server did receive the request in those cases.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.helpdesks.base import HelpdeskUnavailable, TicketRef
from chalicelib.http import ConnectFailed, ConnectionLost, JsonHttpClient, ResponseTimeout
from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk, basic_auth_header
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage

Behaviour = Callable[[BaseHTTPRequestHandler, bytes], None]


class LocalServer:
    """A threaded HTTP server whose behaviour the test sets; records what it received."""

    def __init__(self) -> None:
        self.behaviour: Behaviour = reply(200, {})
        self.received: list[tuple[str, str, dict[str, str], bytes]] = []
        self.release = threading.Event()  # lets slow handlers finish at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.received.append((self.command, self.path, dict(self.headers), body))
                server.behaviour(self, body)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> LocalServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return behave


@pytest.fixture
def server() -> Iterator[LocalServer]:
    running = LocalServer().start()
    try:
        yield running
    finally:
        running.stop()


def slow(server: LocalServer) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        server.release.wait(5)  # longer than the client's read timeout

    return behave


def vanish(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
    # Read the whole request, then close the connection without a word.
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client(url: str, **kwargs: Any) -> JsonHttpClient:
    return JsonHttpClient(url, basic_auth_header("a@example.com", "tok"), timeout=(1.0, 0.3), **kwargs)


def message() -> SocialMessage:
    return SocialMessage(
        platform=Platform.X,
        kind=Kind.MENTION,
        direction=Direction.INBOUND,
        message_id="1790000000000000001",
        conversation_key="x:thread:1790000000000000000",
        account_id="42",
        author=Author(platform_id="77", handle="sam"),
        text="@brand my parcel is late",
        created_at=datetime(2024, 5, 1, tzinfo=timezone.utc),
    )


# --- the client -------------------------------------------------------------------------------


def test_round_trip_over_a_real_socket(server: LocalServer) -> None:
    server.behaviour = reply(201, {"ticket": {"id": 5}}, {"X-Idempotency-Lookup": "miss"})

    response = client(server.url).request("POST", "/api/v2/tickets", json={"ticket": {}}, headers={"Idempotency-Key": "k"})

    assert (response.status, response.json(), response.header("x-idempotency-lookup")) == (201, {"ticket": {"id": 5}}, "miss")
    method, path, headers, body = server.received[0]
    assert (method, path, body) == ("POST", "/api/v2/tickets", b'{"ticket":{}}')
    assert headers["Authorization"].startswith("Basic ") and headers["Idempotency-Key"] == "k"


def test_a_refused_connection_was_not_sent() -> None:
    with pytest.raises(ConnectFailed) as caught:
        client(f"http://127.0.0.1:{free_port()}").request("PUT", "/api/v2/tickets/1", json={})

    assert caught.value.maybe_sent is False


def test_a_read_timeout_after_sending_may_have_been_applied(server: LocalServer) -> None:
    server.behaviour = slow(server)

    with pytest.raises(ResponseTimeout) as caught:
        client(server.url).request("PUT", "/api/v2/tickets/1", json={"ticket": {"comment": {"body": "hi"}}})

    assert caught.value.maybe_sent is True
    assert server.received[0][3] == b'{"ticket":{"comment":{"body":"hi"}}}'  # the server did get it


def test_a_connection_dropped_after_sending_may_have_been_applied(server: LocalServer) -> None:
    server.behaviour = vanish

    with pytest.raises(ConnectionLost) as caught:
        client(server.url).request("POST", "/api/v2/tickets", json={"ticket": {}})

    assert caught.value.maybe_sent is True
    assert len(server.received) == 1  # sent once: urllib3 did not retry it behind our back


def test_the_client_recovers_on_the_next_request(server: LocalServer) -> None:
    http = client(server.url)
    server.behaviour = vanish
    with pytest.raises(ConnectionLost):
        http.request("GET", "/a")

    server.behaviour = reply(200, {"ok": True})
    assert http.request("GET", "/b").json() == {"ok": True}


# --- the adapter over the same sockets ------------------------------------------------------------


def test_adapter_maps_a_timeout_on_append_to_maybe_applied(server: LocalServer) -> None:
    server.behaviour = slow(server)
    helpdesk = ZendeskHelpdesk(server.url, "a@example.com", "tok", http=client(server.url))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("12", message(), "34")

    assert caught.value.maybe_applied is True


def test_adapter_maps_a_refused_connection_to_not_applied() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    helpdesk = ZendeskHelpdesk(url, "a@example.com", "tok", http=client(url))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "34", idempotency_key="k")

    assert caught.value.maybe_applied is False


def test_adapter_reads_retry_after_from_a_real_429(server: LocalServer) -> None:
    server.behaviour = reply(429, {"error": "TooManyRequests"}, {"Retry-After": "3"})
    helpdesk = ZendeskHelpdesk(server.url, "a@example.com", "tok")  # default client: real PoolManager

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("12", message(), "34")

    assert (caught.value.retry_after, caught.value.maybe_applied) == (3.0, False)


def test_adapter_opens_a_ticket_end_to_end(server: LocalServer) -> None:
    server.behaviour = reply(201, {"ticket": {"id": 900, "status": "new"}})
    helpdesk = ZendeskHelpdesk(server.url, "a@example.com", "tok")

    assert helpdesk.open_ticket(message(), "34", idempotency_key="k") == TicketRef("900", "new")
    _, path, headers, body = server.received[0]
    assert path == "/api/v2/tickets" and headers["Idempotency-Key"] == "k"
    assert json.loads(body)["ticket"]["external_id"] == "x:thread:1790000000000000000"
