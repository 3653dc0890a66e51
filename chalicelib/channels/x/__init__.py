"""X: mentions, replies and direct messages, by the Account Activity webhook or the v2 API poller.

``webhook`` verifies and normalizes deliveries, ``api`` is the v2 API client, ``poller``
polls it, ``replies`` sends agents' answers, ``routes`` holds the routes and the schedule.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, PlatformLabels, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.channels.x.api import XApiClient
    from chalicelib.models import NormalizedBatch
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender

POST_LIMIT = 280
DM_LIMIT = 10_000
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_URL_WEIGHT = 23
# twitter-text v3: these code points weigh 1, every other one 2.
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
# Joiners and modifiers inside an emoji sequence add nothing to its weight of 2.
_FREE = {0x200D, *range(0xFE00, 0xFE10), *range(0x1F3FB, 0x1F400)}


def weighted_length(text: str) -> int:
    """The length X counts for a post: most letters 1, CJK and emoji 2, each link 23.

    Follows twitter-text's v3 weights; emoji sequences are approximated (joiners,
    variation selectors and skin tones are free), which can only over-count.
    """
    total = 0
    for part_index, part in enumerate(_URL.split(text)):
        if part_index:
            total += _URL_WEIGHT
        for char in part:
            point = ord(char)
            if point in _FREE:
                continue
            total += 1 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 2
    return total


def api_client() -> XApiClient:
    """The X API v2 client of the poller (user-context token of the brand account)."""
    from chalicelib import wiring
    from chalicelib.channels.x.api import XApiClient
    from chalicelib.config import get_secret

    return wiring.built("x_api", lambda: XApiClient(token_provider=lambda: get_secret("X_USER_ACCESS_TOKEN")))


class XChannel(Channel):
    """X (formerly Twitter)."""

    name = "x"
    platforms = {Platform.X: PlatformLabels("X", "X account", "the X account")}

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.x.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        from chalicelib.channels.x.webhook import normalize_delivery

        return normalize_delivery(payload)

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.x.replies import XSender

        return XSender(
            lambda _account: secret("X_USER_ACCESS_TOKEN"), base_url=env.get("X_API_URL") or None, config=config, pool=pool
        )

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        if target.scope == "dm" or private:
            return DM_LIMIT, "characters", len, "X allows {limit} in a direct message", ""
        return (
            POST_LIMIT,
            "characters",
            weighted_length,
            "X allows {limit} in a reply post",
            " (emoji and CJK characters count twice, links 23)",
        )

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_x]


CHANNEL = XChannel()
