"""LINE's route: Messaging API events (one-to-one chats, groups and rooms)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.config import get_secret
from chalicelib.web import ANY_CONTENT_TYPE, ingest

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/line", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def line_webhook() -> Response:
    """LINE Messaging API events (one-to-one chats, groups and rooms)."""
    from chalicelib.channels.line import webhook

    return ingest(
        blueprint.current_request,
        "line",
        lambda: webhook.signature_verifier(get_secret("LINE_CHANNEL_SECRET")),
        webhook.normalize_delivery,
    )
