"""What every route and scheduled job shares: JSON answers, refusals, webhook intake,
metrics, the time a Lambda has left. Channel and helpdesk blueprints and ``app.py`` use it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pydantic_core
from chalice import Response

from chalicelib import wiring
from chalicelib.config import settings
from chalicelib.errors import WebhookError
from chalicelib.inbound.intake import Verifier, receive_webhook
from chalicelib.models import NormalizedBatch
from chalicelib.observability import logger, metrics

# Every content type is let through to our own checks: platforms send JSON, but a
# forged or broken request must still get our JSON error, never Chalice's own 415.
ANY_CONTENT_TYPE = ["*/*"]


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def refuse(route: str, exc: WebhookError) -> Response:
    """The JSON error for a request we refuse, logged with the reason."""
    logger.warning("request refused", extra={"route": route, "status": exc.status, "reason": exc.message})
    if exc.status in (401, 403):  # a wrong signature or token: a changed secret, or someone probing
        from chalicelib.ops.metrics import webhook_auth_failed

        webhook_auth_failed(route)
    return json_response(exc.to_body(), exc.status)


def body_of(request: Any) -> bytes:
    """The request's body as sent (bytes; empty when there is none)."""
    raw = request.raw_body or b""
    return raw.encode() if isinstance(raw, str) else raw


def ingest(request: Any, route: str, verifier: Callable[[], Verifier], normalize: Callable[[Any], NormalizedBatch]) -> Response:
    """Authenticate, normalize and durably store one webhook delivery, then acknowledge it."""
    try:
        result = receive_webhook(
            headers=request.headers,
            body=body_of(request),
            verifier=verifier(),
            normalize=normalize,
            store=wiring.ingest_store(),
            max_body_bytes=settings().max_body_bytes,
        )
    except WebhookError as exc:
        return refuse(route, exc)
    logger.info("webhook stored", extra={"route": route, **result.__dict__})
    # Counts and a flag: pydantic's serializer writes them as Chalice's json.dumps would, for a quarter of the cost.
    return json_response(pydantic_core.to_json(result.to_body()).decode())


def publish(stage: str, outcomes: dict[str, int]) -> None:
    """Count a run's outcomes as metrics (``<stage>_<outcome>``) and log them."""
    if not outcomes:  # e.g. a batch of conversation-state records only
        return
    from aws_lambda_powertools.metrics import MetricUnit

    for outcome, count in outcomes.items():
        metrics.add_metric(name=f"{stage}_{outcome}", unit=MetricUnit.Count, value=count)
    logger.info(f"{stage} finished", extra={"outcomes": dict(outcomes)})
    metrics.flush_metrics()


def remaining_seconds(event: Any) -> Callable[[], float] | None:
    """How long the invocation has left (None outside Lambda)."""
    context = getattr(event, "context", None)
    return (lambda: context.get_remaining_time_in_millis() / 1000) if context else None


def enabled(flag: str) -> bool:
    """True when the environment variable ``flag`` says so."""
    return os.environ.get(flag, "").lower() in ("1", "true", "yes")


def id_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list."""
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]
