"""Errors a webhook request can end in, each with the HTTP status it maps to.

Routes turn these into JSON error responses; anything else is a bug and is logged.
"""

from __future__ import annotations


class WebhookError(Exception):
    """A request we refuse; ``status`` and ``code`` become the JSON error response."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, dict[str, str]]:
        """The JSON body sent back to the caller."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(WebhookError):
    """Malformed input: not JSON, not the shape the platform documents."""


class Unauthorized(WebhookError):
    """Missing or wrong signature: nothing is stored."""

    status = 401
    code = "unauthorized"


class Forbidden(WebhookError):
    """A verification handshake with the wrong token."""

    status = 403
    code = "forbidden"


class PayloadTooLarge(WebhookError):
    """The body is larger than any platform sends."""

    status = 413
    code = "payload_too_large"


class Unavailable(WebhookError):
    """We could not store the delivery durably; the platform should retry later."""

    status = 503
    code = "unavailable"


class NotFound(WebhookError):
    """Nothing here: e.g. a webhook source nobody configured."""

    status = 404
    code = "not_found"


class NotConfigured(Unavailable):
    """A secret this route needs is not configured: fail closed, loudly."""

    code = "not_configured"
