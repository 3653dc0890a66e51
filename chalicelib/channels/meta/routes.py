"""Meta's routes: the webhook (Facebook Pages, Messenger, Instagram, WhatsApp), its
subscription handshake, the data deletion callback, and the Graph API backfill."""

from __future__ import annotations

import os
from typing import Any

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.config import get_secret
from chalicelib.errors import WebhookError
from chalicelib.observability import logger
from chalicelib.web import ANY_CONTENT_TYPE, body_of, enabled, id_list, ingest, json_response, publish, refuse, remaining_seconds

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/meta", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def meta_subscription_handshake() -> Response:
    """Meta's subscription check: echo ``hub.challenge`` when the verify token matches."""
    from chalicelib.channels.meta import webhook

    try:
        challenge = webhook.answer_handshake(blueprint.current_request.query_params, get_secret("META_VERIFY_TOKEN"))
    except WebhookError as exc:
        return refuse("meta_handshake", exc)
    return Response(body=challenge, status_code=200, headers={"Content-Type": "text/plain"})


@blueprint.route("/webhooks/meta", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def meta_webhook() -> Response:
    """Facebook Page, Messenger, Instagram and WhatsApp events."""
    from chalicelib.channels.meta import webhook

    return ingest(
        blueprint.current_request,
        "meta",
        lambda: webhook.signature_verifier(get_secret("META_APP_SECRET")),
        webhook.normalize_delivery,
    )


@blueprint.route("/privacy/meta/deletion", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def meta_data_deletion() -> Response:
    """Meta's data deletion request callback: forget the person, answer with a status URL and code."""
    from chalicelib.privacy import deletion as privacy

    request = blueprint.current_request
    try:
        answer = privacy.handle_meta_deletion(
            body_of(request),
            request.headers.get("content-type"),
            get_secret("META_APP_SECRET"),
            wiring.deletion_requests(),
            privacy.status_base_url(
                request.context, request.headers, "/privacy/meta/deletion", os.environ.get("PUBLIC_BASE_URL")
            ),
        )
    except WebhookError as exc:
        return refuse("meta_deletion", exc)
    return json_response(answer)


@blueprint.schedule("rate(30 minutes)", name="backfill_meta")
def backfill_meta_messages(event: Any) -> None:
    """No message missed: fetch recent comments and chats from the Graph API; what
    webhooks already delivered is deduplicated, the rest is counted as found only here."""
    if not enabled("META_BACKFILL_ENABLED"):
        return
    from datetime import timedelta

    from chalicelib.channels.meta import graph_client
    from chalicelib.channels.meta.backfill import backfill_meta

    report = backfill_meta(
        graph_client(),
        wiring.message_store(),
        wiring.watermarks(),
        page_ids=id_list("META_PAGE_IDS"),
        ig_ids=id_list("META_IG_ACCOUNT_IDS"),
        lookback=timedelta(hours=float(os.environ.get("META_BACKFILL_LOOKBACK_HOURS", "24"))),
        remaining_seconds=remaining_seconds(event),
    )
    for error in report.errors:
        logger.error("meta backfill failed for an account", extra={"reason": str(error)})
    publish("backfill_meta", report.outcomes)
