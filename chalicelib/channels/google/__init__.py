"""Google: Business Profile reviews, announced by Pub/Sub push (a Google-signed OIDC
token) and read from the Business Profile API. ``webhook`` verifies the push, fetches and
normalizes the review, ``replies`` answers it (the review reply), ``routes`` holds the route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, PlatformLabels, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.channels.google.webhook import BusinessProfileClient
    from chalicelib.models import NormalizedBatch
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender


def review_client() -> BusinessProfileClient:
    """The Business Profile API client (one connection pool per container)."""
    from chalicelib import wiring
    from chalicelib.channels.google.webhook import BusinessProfileClient, GoogleReviewSettings
    from chalicelib.config import get_secret

    return wiring.built(
        "google_reviews",
        lambda: BusinessProfileClient(
            GoogleReviewSettings.from_env().api_url, token_provider=lambda: get_secret("GOOGLE_ACCESS_TOKEN")
        ),
    )


class GoogleChannel(Channel):
    """Google Business Profile reviews."""

    name = "google"
    platforms = {Platform.GOOGLE: PlatformLabels("Google", "Business Profile", "the Business Profile")}

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.google.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        """A push names a review; the review resource (as the API returns it) is the message."""
        from chalicelib.channels.google.webhook import normalize_review
        from chalicelib.models import NormalizedBatch

        name = str(payload.get("name", "")) if isinstance(payload, dict) else ""
        location = "/".join(name.split("/")[:4])
        return NormalizedBatch(messages=[normalize_review(payload, location=location, raw=payload)])

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.google.replies import GoogleReviewSender

        return GoogleReviewSender(
            lambda _location: secret("GOOGLE_ACCESS_TOKEN"),
            base_url=env.get("GOOGLE_BUSINESS_API_URL") or None,
            config=config,
            pool=pool,
        )

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        from chalicelib.channels.google.replies import REPLY_LIMIT_BYTES
        from chalicelib.outbound.base import utf8_bytes

        return REPLY_LIMIT_BYTES, "bytes", utf8_bytes, "Google allows {limit} in a review reply", " (an accented letter counts 2)"

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_google]  # the access token is renewed hourly outside socialdesk: is it still?


CHANNEL = GoogleChannel()
