"""The privacy route: where a person follows their data deletion request (Meta's callback,
which starts one, is Meta's route: ``channels/meta/routes.py``)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.errors import WebhookError
from chalicelib.web import ANY_CONTENT_TYPE, json_response, refuse

blueprint = Blueprint(__name__)


@blueprint.route("/privacy/status/{code}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def privacy_status(code: str) -> Response:
    """The state of a data deletion request, for the person who asked (JSON, or HTML for a browser)."""
    from chalicelib.privacy import deletion as privacy

    try:
        status = privacy.deletion_status(code, wiring.deletion_requests())
    except WebhookError as exc:
        return refuse("privacy_status", exc)
    if "text/html" in (blueprint.current_request.headers.get("accept") or ""):
        page = privacy.status_page_html(status)
        return Response(body=page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})
    return json_response(status)
