"""The shared sandbox base (``local/sandbox_http.py``), over real HTTP: test controls, replies
without a JSON body, the bounded request log, and keep-alive latency of the sandboxes on it."""

from __future__ import annotations

import base64
import http.client
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest

from local.google_sandbox import GoogleSandbox
from local.sandbox_http import JsonSandbox, RawBody, Reply, SandboxRequest
from local.x_sandbox import DEFAULT_TOKEN as X_TOKEN
from local.x_sandbox import XSandbox
from local.zendesk_sandbox import ZendeskSandbox


class ItemsSandbox(JsonSandbox):
    """A minimal platform: one item store behind a bearer token, and its test controls."""

    name = "items-sandbox"
    request_log_limit = 10

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[str, str] = {}
        self.route("GET", r"/v1/items/(?P<item_id>[^/]+)", self._show, name="items.show")
        self.route("DELETE", r"/v1/items/(?P<item_id>[^/]+)", self._delete, name="items.delete")
        self.route("GET", r"/v1/files/(?P<item_id>[^/]+)", self._file, name="files.show")
        self.control("GET", r"items/(?P<item_id>[^/]+)", lambda _arguments, item_id: {"item": self.items[item_id]})
        self.serve_controls(add_item=self.add_item)

    def add_item(self, item_id: str, text: str) -> str:
        self.items[item_id] = text
        return item_id

    def before(self, request: SandboxRequest) -> Reply | None:
        return None if request.header("Authorization") == "Bearer t" else (401, {"error": "who are you"}, {})

    def _show(self, _request: SandboxRequest, item_id: str) -> Reply:
        return (200, {"id": item_id, "text": self.items[item_id]}, {}) if item_id in self.items else (404, {}, {})

    def _delete(self, _request: SandboxRequest, item_id: str) -> Reply:
        self.items.pop(item_id, None)
        return 204, {"ignored": True}, {"X-Deleted": item_id}

    def _file(self, _request: SandboxRequest, item_id: str) -> Reply:
        return 200, RawBody(self.items[item_id].encode(), "text/plain"), {}


@pytest.fixture
def items() -> Iterator[ItemsSandbox]:
    with ItemsSandbox() as sandbox:
        yield sandbox


def call(sandbox: JsonSandbox, method: str, path: str, body: Any = None, *,
         headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_controls_take_json_arguments_skip_authentication_and_say_what_was_wrong(items: ItemsSandbox) -> None:
    status, _, body = call(items, "POST", "/__sandbox/add_item", {"item_id": "a", "text": "hello"})
    assert (status, json.loads(body)) == (200, {"result": "a"})
    assert call(items, "GET", "/v1/items/a")[0] == 401  # the API wants the token; the control did not
    status, _, body = call(items, "GET", "/v1/items/a", headers={"Authorization": "Bearer t"})
    assert json.loads(body) == {"id": "a", "text": "hello"}

    status, _, body = call(items, "POST", "/__sandbox/add_item", {"item_id": "b"})  # text missing
    assert status == 400 and "text" in json.loads(body)["error"]
    assert call(items, "POST", "/__sandbox/add_item", [])[0] == 400  # not a JSON object
    status, _, body = call(items, "GET", "/__sandbox/items/zzz")
    assert status == 404 and "zzz" in json.loads(body)["error"]
    assert call(items, "GET", "/__sandbox/nothing-here")[0] == 404
    assert items.request_counts["sandbox POST add_item"] == 3


def test_no_content_has_no_body_and_a_raw_body_keeps_its_type(items: ItemsSandbox) -> None:
    items.add_item("f", "plain words")
    status, headers, body = call(items, "DELETE", "/v1/items/gone", headers={"Authorization": "Bearer t"})
    assert (status, body, headers["Content-Type"], headers["X-Deleted"]) == (204, b"", None, "gone")
    status, headers, body = call(items, "GET", "/v1/files/f", headers={"Authorization": "Bearer t"})
    assert (status, headers["Content-Type"], body) == (200, "text/plain", b"plain words")
    status, headers, _ = call(items, "GET", "/v1/items/f", headers={"Authorization": "Bearer t"})
    assert headers["Content-Type"] == "application/json; charset=utf-8"


def test_the_request_log_keeps_the_latest_requests_and_the_counters_count_them_all(items: ItemsSandbox) -> None:
    for number in range(35):
        items.dispatch("GET", f"/v1/items/{number}", {"Authorization": "Bearer t"}, b"")
    assert items.request_counts["items.show"] == 35
    assert items.request_log_limit <= len(items.requests) <= 2 * items.request_log_limit
    assert items.requests[-1].path == "/v1/items/34" and items.requests[-1].headers == {"authorization": "Bearer t"}


def _zendesk_ticket(sandbox: ZendeskSandbox) -> tuple[str, dict[str, str]]:
    auth = base64.b64encode(f"{sandbox.email}/token:{sandbox.api_token}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    user = sandbox.dispatch("POST", "/api/v2/users/create_or_update", headers,
                            json.dumps({"user": {"name": "Ada", "external_id": "x:1"}}).encode())
    ticket = sandbox.dispatch("POST", "/api/v2/tickets", headers, json.dumps(
        {"ticket": {"comment": {"body": "hi", "author_id": user[1]["user"]["id"]}}}).encode())
    return f"/api/v2/tickets/{ticket[1]['ticket']['id']}.json", headers


@pytest.mark.parametrize("kind", ["zendesk", "x", "google"])
def test_keep_alive_requests_answer_without_the_delayed_ack_stall(kind: str) -> None:
    """Headers and body leave in one segment: an unbuffered handler waits ~40 ms per request
    for the client's delayed ACK (Nagle), which the X and Google sandboxes used to do."""
    sandbox: JsonSandbox
    if kind == "zendesk":
        sandbox = ZendeskSandbox()
        path, headers = _zendesk_ticket(sandbox)
    elif kind == "x":
        sandbox = XSandbox()
        sandbox.add_mention("@TwitterDev where is my order?")
        path, headers = f"/2/users/{sandbox.brand_id}/mentions", {"Authorization": f"Bearer {X_TOKEN}"}
    else:
        sandbox = GoogleSandbox()
        sandbox.add_review("1", "2", "r1", stars=2, comment="cold")
        path, headers = "/v4/accounts/1/locations/2/reviews/r1", {"Authorization": f"Bearer {sandbox.access_token}"}
    with sandbox:
        connection = http.client.HTTPConnection(sandbox.host, sandbox.port, timeout=10)
        took = []
        for _ in range(25):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            assert response.status == 200 and json.loads(response.read())
            took.append(time.perf_counter() - started)
        connection.close()
    median_ms = statistics.median(took) * 1000
    print(f"{kind}: median keep-alive request {median_ms:.2f} ms")
    assert median_ms < 20
