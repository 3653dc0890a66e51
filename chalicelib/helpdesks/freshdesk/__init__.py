"""Freshdesk: ``adapter`` (tickets, replies, contacts over the v2 API), ``events`` (the
automation rule's webhook: verification, parsing, the ticket pointers), ``routes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.helpdesks.plugin import HelpdeskPlugin

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
    from chalicelib.ops.token_health import TokenCheck, TokenHealth


class Freshdesk(HelpdeskPlugin):
    """Freshdesk, with an agent's API key (``FRESHDESK_URL``, ``FRESHDESK_API_KEY``)."""

    name = "freshdesk"

    def adapter(self) -> FreshdeskHelpdesk:
        from chalicelib.config import get_secret, settings
        from chalicelib.errors import NotConfigured
        from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk

        cfg = settings()
        if not cfg.freshdesk_url:
            raise NotConfigured("FRESHDESK_URL must be configured")
        return FreshdeskHelpdesk(
            cfg.freshdesk_url, get_secret("FRESHDESK_API_KEY"), conversation_field=cfg.freshdesk_conversation_field
        )

    def blueprint(self) -> Blueprint:
        from chalicelib.helpdesks.freshdesk.routes import blueprint

        return blueprint

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_freshdesk]


HELPDESK = Freshdesk()
