"""Meta: Facebook Pages (feed, recommendations), Messenger, Instagram and WhatsApp, on one webhook.

``webhook`` verifies and normalizes deliveries, ``graph`` is the Graph API client (backfill,
profiles), ``backfill`` fetches what webhooks missed, ``replies`` sends agents' answers,
``routes`` holds the routes and the backfill schedule, ``credentials`` checks the tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, MediaDownloads, PlatformLabels, ProfileSource, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.channels.meta.graph import GraphClient
    from chalicelib.models import Attachment, NormalizedBatch, SocialMessage
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender

DEFAULT_GRAPH_URL = "https://graph.facebook.com"
DEFAULT_GRAPH_VERSION = "v23.0"


def graph_client() -> GraphClient:
    """The Graph API client of the backfill (one Page token per account; one pool per container)."""
    import os

    from chalicelib import wiring
    from chalicelib.channels.meta.graph import GraphClient
    from chalicelib.config import get_secret

    return wiring.built(
        "meta_graph",
        lambda: GraphClient(
            os.environ.get("META_GRAPH_URL"),
            version=os.environ.get("META_GRAPH_VERSION", DEFAULT_GRAPH_VERSION),
            token_provider=lambda account: get_secret(f"META_PAGE_TOKEN_{account}"),
        ),
    )


class MetaChannel(Channel):
    """Facebook, Messenger, Instagram and WhatsApp."""

    name = "meta"
    platforms = {
        Platform.FACEBOOK: PlatformLabels("Facebook", "Facebook Page", "the Page"),
        Platform.MESSENGER: PlatformLabels("Messenger", "Facebook Page", "the Page"),
        Platform.INSTAGRAM: PlatformLabels("Instagram", "Instagram account", "the Instagram account"),
        Platform.WHATSAPP: PlatformLabels("WhatsApp", "WhatsApp Business number", "WhatsApp"),
    }

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.meta.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        from chalicelib.channels.meta.webhook import normalize_delivery

        return normalize_delivery(payload)

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.meta.graph import instagram_pages
        from chalicelib.channels.meta.replies import MetaSender

        return MetaSender(
            lambda account: secret(f"META_PAGE_TOKEN_{account}"),
            whatsapp_token_provider=lambda _account: secret("WHATSAPP_ACCESS_TOKEN"),
            base_url=env.get("META_GRAPH_URL") or None,
            version=env.get("META_GRAPH_VERSION") or None,
            config=config,
            instagram_pages=instagram_pages(env.get("META_INSTAGRAM_PAGES")),
            pool=pool,
        )

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        from chalicelib.outbound.base import utf8_bytes

        platform, scope = target.platform, target.scope
        if platform is Platform.MESSENGER or (platform is Platform.FACEBOOK and private):
            return 2000, "characters", len, "Messenger allows {limit} in a message", ""
        if platform is Platform.FACEBOOK:
            return 8000, "characters", len, "Facebook allows {limit} in a comment", ""
        if platform is Platform.INSTAGRAM:
            if scope == "dm" or private:
                return (
                    1000,
                    "bytes",
                    utf8_bytes,
                    "Instagram allows {limit} in a direct message",
                    " (accented letters take 2 bytes, emoji 4)",
                )
            return 2200, "characters", len, "Instagram allows {limit} in a comment", ""
        if platform is Platform.WHATSAPP:
            return 4096, "characters", len, "WhatsApp allows {limit} in a message", ""
        return None

    def address(
        self, target: ReplyTarget, conversation: Sequence[SocialMessage], latest: SocialMessage, config: ReplyConfig
    ) -> ReplyTarget:
        if not self.private_reply_answers_a_comment(target.platform, target.scope):
            return target
        # Comment threads are two levels deep: an answer goes under the top-level comment.
        return replace(target, thread_root_id=target.conversation_key.split(":")[-1])

    def private_reply_answers_a_comment(self, platform: Platform, scope: str) -> bool:
        return platform in (Platform.FACEBOOK, Platform.INSTAGRAM) and scope in ("comment", "post")

    def fetch_media(self, attachment: Attachment, platform: Platform, downloads: MediaDownloads) -> Any | None:
        if platform is not Platform.WHATSAPP or not attachment.media_id:
            return None  # Facebook, Messenger and Instagram send links
        from chalicelib.channels.meta.media import whatsapp_media

        return whatsapp_media(attachment.media_id, downloads)

    def profile_sources(self) -> Mapping[Platform, ProfileSource]:
        import os

        from chalicelib.channels.meta.graph import instagram_pages, instagram_profile, messenger_profile

        graph, pages = graph_client(), instagram_pages(os.environ.get("META_INSTAGRAM_PAGES"))
        return {
            Platform.MESSENGER: lambda message: messenger_profile(graph, message),
            Platform.INSTAGRAM: lambda message: instagram_profile(graph, message, pages),
        }

    def ticket_note(self, message: SocialMessage) -> str | None:
        from chalicelib.channels.meta.recommendations import ticket_note

        return ticket_note(message)

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_meta]


CHANNEL = MetaChannel()
