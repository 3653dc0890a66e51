"""Bearer-token API clients (Graph, X): each request carries the token current for it, and
every token's requests go through the one connection pool."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.channels.meta.graph import GraphClient
from chalicelib.channels.x.api import XApiClient


class Answer:
    status = 200
    headers = {"Content-Type": "application/json"}
    data = json.dumps({"data": []}).encode()


class RecordingPool:
    """A urllib3 pool stand-in: answers every request with ``{"data": []}``, keeps the headers."""

    def __init__(self) -> None:
        self.authorizations: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        self.authorizations.append(kwargs["headers"]["Authorization"])
        return Answer()

    def clear(self) -> None:
        pass


def test_a_rotated_x_token_is_sent_from_the_next_request_on() -> None:
    pool, tokens = RecordingPool(), ["first", "first", "second", "first"]
    client = XApiClient("https://api.x.test", token_provider=lambda: tokens.pop(0), pool=pool)
    for _ in range(4):
        client.get("GET /2/users/me", "/2/users/me", {})
    assert pool.authorizations == ["Bearer first", "Bearer first", "Bearer second", "Bearer first"]


def test_each_graph_account_is_asked_with_its_own_token_on_one_pool() -> None:
    pool = RecordingPool()
    client = GraphClient("https://graph.test", token_provider=lambda account: f"token-{account}", pool=pool)
    for account in ("1", "2", "1"):
        client.get(account, client.path("me"))
    assert pool.authorizations == ["Bearer token-1", "Bearer token-2", "Bearer token-1"]
