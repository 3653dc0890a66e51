"""Telegram: a bot's private chats, groups and topics, and Telegram Business chats.

``webhook`` verifies and normalizes updates, ``gaps`` counts skipped update ids, ``replies``
sends agents' answers, ``media`` downloads files through ``getFile``, ``routes`` holds the route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Channel, MediaDownloads, PlatformLabels, TextLimit
from chalicelib.channels.registry import Platform

if TYPE_CHECKING:
    from chalice import Blueprint

    from chalicelib.models import Attachment, NormalizedBatch, SocialMessage
    from chalicelib.ops.token_health import TokenCheck, TokenHealth
    from chalicelib.outbound.base import ReplyConfig, ReplyTarget, Sender

DEFAULT_API_URL = "https://api.telegram.org"


class TelegramChannel(Channel):
    """Telegram bots."""

    name = "telegram"
    platforms = {Platform.TELEGRAM: PlatformLabels("Telegram", "Telegram bot", "the Telegram bot")}

    def blueprint(self) -> Blueprint:
        from chalicelib.channels.telegram.routes import blueprint

        return blueprint

    def normalize(self, payload: Any, route: str = "") -> NormalizedBatch:
        from chalicelib.channels.telegram.webhook import normalize_delivery
        from chalicelib.config import settings

        return normalize_delivery(payload, bot_id=settings().telegram_bot_id)

    def reply_sender(self, config: ReplyConfig, secret: Callable[[str], str], env: Mapping[str, str], pool: Any) -> Sender:
        from chalicelib.channels.telegram.replies import TelegramSender

        return TelegramSender(
            lambda _account: secret("TELEGRAM_BOT_TOKEN"), base_url=env.get("TELEGRAM_API_URL") or None, config=config, pool=pool
        )

    def text_limit(self, target: ReplyTarget, private: bool) -> TextLimit | None:
        from chalicelib.outbound.base import utf16_units

        return 4096, "characters", utf16_units, "Telegram allows {limit} in a message", ""

    def address(
        self, target: ReplyTarget, conversation: Sequence[SocialMessage], latest: SocialMessage, config: ReplyConfig
    ) -> ReplyTarget:
        # Keys: telegram:dm:<bot>:<chat>, telegram:group:<chat>:<topic|main>; message ids <chat>:<number>.
        parts = target.conversation_key.split(":")
        if target.scope == "dm":
            chat_id, topic_id = parts[3] if len(parts) > 3 else parts[-1], None
        else:
            chat_id = parts[2] if len(parts) > 2 else parts[-1]
            topic_id = parts[3] if len(parts) > 3 and parts[3] != "main" else None
        number = target.reply_to_id.split(":")
        return replace(
            target,
            reply_to_id=number[1] if len(number) > 1 else number[0],
            chat_id=chat_id,
            topic_id=topic_id,
            business_connection_id=_business_connection(latest.raw or {}),
        )

    def fetch_media(self, attachment: Attachment, platform: Platform, downloads: MediaDownloads) -> Any | None:
        if not attachment.media_id:
            return None
        from chalicelib.channels.telegram.media import telegram_file

        return telegram_file(attachment.media_id, downloads)

    def credential_checks(self, health: TokenHealth) -> list[Callable[[], TokenCheck]]:
        return [health.check_telegram]


def _business_connection(raw: Mapping[str, Any]) -> str | None:
    """The Telegram Business connection a message came through (answers go back through it)."""
    for field in ("business_message", "edited_business_message"):
        found = raw.get(field)
        if isinstance(found, dict) and found.get("business_connection_id"):
            return str(found["business_connection_id"])
    return None


CHANNEL = TelegramChannel()
