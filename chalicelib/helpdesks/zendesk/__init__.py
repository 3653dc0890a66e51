"""Zendesk: ``adapter`` (tickets, comments, users, uploads over the Support API), ``admin``
(``make zendesk-setup``: the webhook, trigger and fields agents' answers need), ``routes``
(the trigger's events). Agent events are parsed and verified in ``outbound/agent_events``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chalicelib.helpdesks.plugin import HelpdeskPlugin

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
    from chalicelib.ops.token_health import TokenCheck, TokenHealth


class Zendesk(HelpdeskPlugin):
    """Zendesk Support, as an agent with an API token (``ZENDESK_URL``, ``ZENDESK_EMAIL``, ``ZENDESK_API_TOKEN``)."""

    name = "zendesk"

    def adapter(self) -> ZendeskHelpdesk:
        from chalicelib.config import get_secret, settings
        from chalicelib.errors import NotConfigured
        from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk

        cfg = settings()
        if not cfg.zendesk_url or not cfg.zendesk_email:
            raise NotConfigured("ZENDESK_URL and ZENDESK_EMAIL must be configured")
        return ZendeskHelpdesk(cfg.zendesk_url, cfg.zendesk_email, get_secret("ZENDESK_API_TOKEN"))

    def blueprint(self) -> Blueprint:
        from chalicelib.helpdesks.zendesk.routes import blueprint

        return blueprint

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_zendesk]


HELPDESK = Zendesk()
