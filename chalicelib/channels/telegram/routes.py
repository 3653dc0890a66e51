"""Telegram's route: bot updates (private chats, groups and topics, Telegram Business)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.config import get_secret, settings
from chalicelib.models import NormalizedBatch
from chalicelib.observability import logger
from chalicelib.web import ANY_CONTENT_TYPE, ingest, publish

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/telegram", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def telegram_webhook() -> Response:
    """Telegram bot updates: private chats, groups and topics, Telegram Business chats."""
    from chalicelib.channels.telegram import webhook

    def normalize(payload: Any) -> NormalizedBatch:
        _count_gap(payload)
        return webhook.normalize_delivery(payload, bot_id=settings().telegram_bot_id)

    return ingest(
        blueprint.current_request,
        "telegram",
        lambda: webhook.secret_token_verifier(get_secret("TELEGRAM_SECRET_TOKEN")),
        normalize,
    )


def _count_gap(payload: Any) -> None:
    """Telegram offers no backfill while a webhook is set: skipped update ids are
    only logged and counted. Never fails the webhook."""
    from chalicelib.channels.telegram import webhook
    from chalicelib.channels.telegram.gaps import record_update_id

    update_id = webhook.update_id(payload)
    if update_id is None:
        return
    try:
        missing = record_update_id(wiring.ingest_store(), settings().telegram_bot_id, update_id)
    except Exception as exc:  # counting gaps must never cost us the update itself
        logger.warning("telegram gap check failed", extra={"reason": type(exc).__name__})
        return
    if missing > 0:  # record_update_id has logged it
        publish("telegram", {"updates_missing": missing})
