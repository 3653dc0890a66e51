"""The generic route: any other tool (Trustpilot, app-store review tools, listening
tools) posting Standard Webhooks to ``/webhooks/generic/<source>``."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.config import get_secret
from chalicelib.errors import NotConfigured, NotFound
from chalicelib.inbound.intake import Verifier
from chalicelib.web import ANY_CONTENT_TYPE, ingest

blueprint = Blueprint(__name__)


@blueprint.route("/webhooks/generic/{source}", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def generic_webhook(source: str) -> Response:
    """Any other source (Trustpilot, app-store review tools, listening tools), signed per Standard Webhooks."""
    from chalicelib.channels.generic import webhook

    def verifier() -> Verifier:
        name = webhook.secret_name(source)  # a bad slug is a 400 before any secret is read
        try:
            configured = get_secret(name)
        except NotConfigured as exc:  # anyone can call any URL: an unknown source is a 404, not an alarm
            raise NotFound(f"no webhook source named {source!r} is configured") from exc
        return webhook.signature_verifier(configured, name=name)

    return ingest(
        blueprint.current_request, "generic", verifier, lambda payload: webhook.normalize_delivery(payload, source=source)
    )
