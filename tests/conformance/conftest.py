"""The end-to-end tier runs on the integration tests' local stack (moto server, Zendesk
sandbox, the app over real HTTP), one fresh stack per payload."""

from __future__ import annotations

import pytest

from tests.conformance.realpay import TELEGRAM_BOT_ID
from tests.integration.conftest import contract, moto_url, stack  # noqa: F401 - pytest fixtures


@pytest.fixture(autouse=True)
def _conformance_stack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Telegram keys on the bot id."""
    monkeypatch.setenv("TELEGRAM_BOT_ID", TELEGRAM_BOT_ID)
