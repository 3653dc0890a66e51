"""X's routes: the Account Activity webhook and its CRC check, and the v2 API poller
for accounts without the enterprise tier."""

from __future__ import annotations

import os
from typing import Any

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.config import get_secret
from chalicelib.errors import WebhookError
from chalicelib.observability import logger
from chalicelib.web import ANY_CONTENT_TYPE, enabled, ingest, json_response, publish, refuse, remaining_seconds

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/x", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def x_crc_check() -> Response:
    """X's challenge-response check."""
    from chalicelib.channels.x import webhook

    try:
        params = blueprint.current_request.query_params
        token = params.get("crc_token") if params else None
        return json_response(webhook.crc_response(token, get_secret("X_CONSUMER_SECRET")))
    except WebhookError as exc:
        return refuse("x_crc", exc)


@blueprint.route("/webhooks/x", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def x_webhook() -> Response:
    """X mentions, replies and direct messages (Account Activity API)."""
    from chalicelib.channels.x import webhook

    return ingest(
        blueprint.current_request,
        "x",
        lambda: webhook.signature_verifier(get_secret("X_CONSUMER_SECRET")),
        webhook.normalize_delivery,
    )


@blueprint.schedule("rate(2 minutes)", name="poll_x")
def poll_x_mentions_and_dms(event: Any) -> None:
    """X without the enterprise tier: poll the brand's mentions and DMs into the table."""
    if not enabled("X_POLLING_ENABLED"):
        return
    from chalicelib.channels.x import api_client
    from chalicelib.channels.x.api import XApiError
    from chalicelib.channels.x.poller import poll_x

    try:
        report = poll_x(
            api_client(),
            wiring.message_store(),
            wiring.watermarks(),
            brand_id=os.environ["X_BRAND_USER_ID"],
            dms=os.environ.get("X_POLL_DMS", "true").lower() != "false",
            remaining_seconds=remaining_seconds(event),
        )
    except XApiError as exc:  # auth or request errors: retrying the same schedule tick won't help
        logger.error("x polling failed", extra={"status": exc.status, "reason": str(exc)})
        return
    publish("poll_x", report.outcomes)
