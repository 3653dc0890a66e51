"""LINE: a LINE Official Account's one-to-one chats, groups and rooms.

``webhook`` verifies and normalizes events, ``replies`` sends agents' answers, ``profiles``
reads people's display names, ``routes`` holds the route; files come from LINE's content API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, MediaDownloads, PlatformLabels, ProfileSource, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.models import Attachment, NormalizedBatch, SocialMessage
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender

DEFAULT_DATA_API_URL = "https://api-data.line.me"  # message content (files) is served from here


class LineChannel(Channel):
    """LINE Messaging API."""

    name = "line"
    platforms = {Platform.LINE: PlatformLabels("LINE", "LINE Official Account", "the LINE channel")}

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.line.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        from chalicelib.channels.line.webhook import normalize_delivery

        return normalize_delivery(payload)

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.line.replies import LineSender

        return LineSender(
            lambda _account: secret("LINE_CHANNEL_ACCESS_TOKEN"),
            base_url=env.get("LINE_API_URL") or None,
            config=config,
            pool=pool,
        )

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        from chalicelib.outbound.base import utf16_units

        return 5000, "characters", utf16_units, "LINE allows {limit} in a message", ""

    def address(
        self, target: ReplyTarget, conversation: Sequence[SocialMessage], latest: SocialMessage, config: ReplyConfig
    ) -> ReplyTarget:
        """Push to the user, group or room the key names; reply with the latest message's
        reply token while no answer has used it (a token answers once, within minutes)."""
        from chalicelib.models import Direction
        from chalicelib.outbound.base import utc

        token = (latest.raw or {}).get("replyToken")
        used = any(m.direction is Direction.OUTBOUND and m.created_at >= latest.created_at for m in conversation)
        fresh = bool(token) and not used
        return replace(
            target,
            line_to=target.conversation_key.split(":")[-1],
            line_reply_token=str(token) if fresh else None,
            line_reply_token_expires_at=utc(latest.created_at) + config.line_reply_token_ttl if fresh else None,
        )

    def fetch_media(self, attachment: Attachment, platform: Platform, downloads: MediaDownloads) -> Any | None:
        if not attachment.media_id:
            return None  # content from an external provider comes as a link
        from urllib.parse import quote

        base = downloads.api_url("LINE_DATA_API_URL", DEFAULT_DATA_API_URL)
        url = f"{base}/v2/bot/message/{quote(attachment.media_id, safe='')}/content"
        auth = {"Authorization": f"Bearer {downloads.token('LINE_CHANNEL_ACCESS_TOKEN')}"}
        return downloads.download(url, headers=auth, trusted=True), None

    def profile_sources(self) -> Mapping[Platform, ProfileSource]:
        import os

        from chalicelib.channels.line.profiles import LineProfiles
        from chalicelib.config import get_secret

        profiles = LineProfiles(os.environ.get("LINE_API_URL"), lambda: get_secret("LINE_CHANNEL_ACCESS_TOKEN"))
        return {Platform.LINE: profiles.profile_of}

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return []  # not checked yet: a revoked LINE token shows on the first failed reply


CHANNEL = LineChannel()
