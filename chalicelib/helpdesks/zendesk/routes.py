"""Zendesk's route: its triggers post agents' public replies and ticket status changes here."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.config import get_secret
from chalicelib.errors import WebhookError
from chalicelib.web import ANY_CONTENT_TYPE, body_of, json_response, publish, refuse

blueprint = Blueprint(__name__)


@blueprint.route("/helpdesk/zendesk", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def zendesk_helpdesk_event() -> Response:
    """Zendesk triggers: an agent's public reply goes to the customer; ticket status changes are recorded."""
    from chalicelib.outbound.agent_events import handle_zendesk_event

    request = blueprint.current_request
    try:
        result = handle_zendesk_event(
            request.headers,
            body_of(request),
            secret=get_secret("ZENDESK_WEBHOOK_SECRET"),
            events=wiring.agent_events(),
            replies=wiring.agent_event_handler,  # built once the event is verified and parsed
        )
    except WebhookError as exc:
        return refuse("zendesk_events", exc)
    publish("agent_replies", {result.outcome: 1})
    return json_response(result.to_body(), result.status)
