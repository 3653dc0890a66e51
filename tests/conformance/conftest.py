"""The end-to-end tier runs on the integration tests' local stack (moto server, Zendesk
sandbox, the app over real HTTP), one fresh stack per payload."""

from __future__ import annotations

import socketserver

import pytest

from tests.conformance.realpay import TELEGRAM_BOT_ID
from tests.integration.conftest import contract, moto_url, stack  # noqa: F401 - pytest fixtures

_serve_forever = socketserver.BaseServer.serve_forever


@pytest.fixture(autouse=True)
def _conformance_stack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Telegram keys on the bot id; and the stack's app server polls for shutdown every
    0.05 s instead of serve_forever's default 0.5 s, which each of ~140 stacks would
    otherwise wait out on teardown (nothing else about the server changes)."""
    monkeypatch.setenv("TELEGRAM_BOT_ID", TELEGRAM_BOT_ID)

    def serve_forever(self: socketserver.BaseServer, poll_interval: float = 0.05) -> None:
        _serve_forever(self, poll_interval)

    monkeypatch.setattr(socketserver.BaseServer, "serve_forever", serve_forever)
