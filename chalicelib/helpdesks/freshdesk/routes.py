"""Freshdesk's route: its automation rule posts agents' replies and notes and ticket status here."""

from __future__ import annotations

from types import SimpleNamespace

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.config import get_secret, settings
from chalicelib.errors import WebhookError
from chalicelib.web import ANY_CONTENT_TYPE, body_of, json_response, publish, refuse

blueprint = Blueprint(__name__)


@blueprint.route("/helpdesk/freshdesk", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def freshdesk_helpdesk_event() -> Response:
    """Freshdesk automation rule: agents' public replies and notes go to the customer; ticket status is recorded."""
    from chalicelib.helpdesks.freshdesk.events import handle_freshdesk_event

    request = blueprint.current_request
    try:
        # On a Zendesk deployment the handler answers 404 after its own checks; the
        # Freshdesk adapter and replies are only built where they are configured.
        on_freshdesk = settings().helpdesk == "freshdesk"
        result = handle_freshdesk_event(
            request.headers,
            body_of(request),
            secret=get_secret("FRESHDESK_WEBHOOK_SECRET"),
            events=wiring.agent_events(),
            replies=wiring.agent_replies() if on_freshdesk else None,
            problems=wiring.problem_answers() if on_freshdesk else None,
            helpdesk=wiring.helpdesk() if on_freshdesk else SimpleNamespace(name=settings().helpdesk),
            store=wiring.message_store(),
        )
    except WebhookError as exc:
        return refuse("freshdesk_events", exc)
    publish("agent_replies", result.outcomes())
    return json_response(result.to_body(), result.status)
