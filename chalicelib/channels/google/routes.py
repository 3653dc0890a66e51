"""Google's route: Business Profile review notifications (Pub/Sub push, Google-signed OIDC token)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.errors import WebhookError
from chalicelib.observability import logger
from chalicelib.web import ANY_CONTENT_TYPE, body_of, json_response, refuse

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/google/reviews", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def google_reviews_webhook() -> Response:
    """Google Business Profile review notifications (Pub/Sub push, Google-signed OIDC token)."""
    from chalicelib.channels.google import review_client, webhook

    request = blueprint.current_request
    try:
        cfg = webhook.GoogleReviewSettings.from_env()
        result = webhook.receive_review_push(
            request.headers,
            body_of(request),
            verifier=cfg.verifier(),
            client=review_client(),
            store=wiring.ingest_store(),
            max_rating=cfg.ticket_max_stars,
        )
    except WebhookError as exc:
        return refuse("google_reviews", exc)
    logger.info("webhook stored", extra={"route": "google_reviews", **result.__dict__})
    return json_response(result.to_body())
