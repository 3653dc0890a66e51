"""Any other source (Trustpilot, app-store review tools, listening tools) posting Standard
Webhooks to ``/webhooks/generic/<source>``: ``webhook`` verifies and validates deliveries
against the published schema, ``routes`` holds the route. Answers are given on the source
itself (no sender): the agent gets a note saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, PlatformLabels
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.models import NormalizedBatch
    from chalicelib.ops.token_health import TokenCheck, TokenHealth


class GenericChannel(Channel):
    """Standard Webhooks sources, one secret per source."""

    name = "generic"
    platforms = {Platform.OTHER: PlatformLabels("Other", "source", "the source")}

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.generic.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        """``route`` is ``generic/<source>``: the source names the messages."""
        from chalicelib.channels.generic.webhook import normalize_delivery

        return normalize_delivery(payload, source=route.partition("/")[2] or "generic")

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return []  # a shared signing secret: nothing to check against an API


CHANNEL = GenericChannel()
