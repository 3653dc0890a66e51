"""Any other source (Trustpilot, app-store review tools, listening tools) posting Standard
Webhooks to ``/webhooks/generic/<source>``: ``webhook`` verifies and validates deliveries
against the published schema, ``routes`` holds the route. ``replies`` sends agents'
answers to a source whose configuration names a reply callback (``GENERIC_REPLY_URL_<SOURCE>``),
signed like its deliveries; for any other source the agent gets a note to answer there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, PlatformLabels, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.models import NormalizedBatch
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender


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

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.generic.replies import GenericReplySender

        return GenericReplySender(secret, env, config=config, pool=pool)

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        # The source's own limit is the receiver's to enforce (its refusal becomes the note);
        # this one only keeps a runaway paste from being signed and posted.
        from chalicelib.channels.generic.replies import REPLY_LIMIT_CHARS

        return REPLY_LIMIT_CHARS, "characters", len, "socialdesk sends at most {limit} to a reply callback", ""

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return []  # a shared signing secret: nothing to check against an API


CHANNEL = GenericChannel()
