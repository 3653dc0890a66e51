"""socialdesk: social-network webhooks in, helpdesk tickets out.

Routes and event handlers only; the logic lives in ``chalicelib``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from chalice import Chalice, Response

from chalicelib import wiring
from chalicelib.config import get_secret, settings
from chalicelib.errors import NotConfigured, NotFound, WebhookError
from chalicelib.inbound.intake import Verifier, receive_webhook
from chalicelib.models import NormalizedBatch
from chalicelib.observability import logger, metrics

app = Chalice(app_name="socialdesk", configure_logs=False)

# Every content type is let through to our own checks: platforms send JSON, but a
# forged or broken request must still get our JSON error, never Chalice's own 415.
ANY_CONTENT_TYPE = ["*/*"]

# Chalice reads the stream ARN at import time; the placeholder keeps local runs and
# tests importable (the stage config sets the real one, see infra/record_outputs.py).
STREAM_ARN = os.environ.get(
    "STREAM_ARN", "arn:aws:dynamodb:us-east-1:123456789012:table/socialdesk-local-messages/stream/1970-01-01T00:00:00.000"
)


# Platform modules are imported inside their routes: a cold start loads only the one
# platform that woke the function up.


def _json(body: Any, status: int = 200) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json"})


def _refuse(route: str, exc: WebhookError) -> Response:
    logger.warning("request refused", extra={"route": route, "status": exc.status, "reason": exc.message})
    return _json(exc.to_body(), exc.status)


def _ingest(route: str, verifier: Callable[[], Verifier], normalize: Callable[[Any], NormalizedBatch]) -> Response:
    request = app.current_request
    try:
        result = receive_webhook(
            headers=request.headers,
            body=request.raw_body or b"",
            verifier=verifier(),
            normalize=normalize,
            store=wiring.message_store(),
            max_body_bytes=settings().max_body_bytes,
        )
    except WebhookError as exc:
        return _refuse(route, exc)
    logger.info("webhook stored", extra={"route": route, **result.__dict__})
    return _json(result.to_body())


@app.route("/health", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def health() -> dict[str, Any]:
    """Liveness probe."""
    return {"ok": True, "service": "socialdesk"}


@app.route("/webhooks/meta", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def meta_subscription_handshake() -> Response:
    """Meta's subscription check: echo ``hub.challenge`` when the verify token matches."""
    from chalicelib.channels.meta import webhook as meta

    try:
        challenge = meta.answer_handshake(app.current_request.query_params, get_secret("META_VERIFY_TOKEN"))
    except WebhookError as exc:
        return _refuse("meta_handshake", exc)
    return Response(body=challenge, status_code=200, headers={"Content-Type": "text/plain"})


@app.route("/webhooks/meta", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def meta_webhook() -> Response:
    """Facebook Page, Messenger, Instagram and WhatsApp events."""
    from chalicelib.channels.meta import webhook as meta

    return _ingest("meta", lambda: meta.signature_verifier(get_secret("META_APP_SECRET")), meta.normalize_delivery)


@app.route("/webhooks/x", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def x_crc_check() -> Response:
    """X's challenge-response check."""
    from chalicelib.channels.x import webhook as x

    try:
        token = (app.current_request.query_params or {}).get("crc_token")
        return _json(x.crc_response(token, get_secret("X_CONSUMER_SECRET")))
    except WebhookError as exc:
        return _refuse("x_crc", exc)


@app.route("/webhooks/x", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def x_webhook() -> Response:
    """X mentions, replies and direct messages (Account Activity API)."""
    from chalicelib.channels.x import webhook as x

    return _ingest("x", lambda: x.signature_verifier(get_secret("X_CONSUMER_SECRET")), x.normalize_delivery)


@app.route("/webhooks/telegram", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def telegram_webhook() -> Response:
    """Telegram bot updates: private chats, groups and topics, Telegram Business chats."""
    from chalicelib.channels.telegram import webhook as telegram

    def normalize(payload: Any) -> NormalizedBatch:
        _count_telegram_gap(payload)
        return telegram.normalize_delivery(payload, bot_id=settings().telegram_bot_id)

    return _ingest("telegram", lambda: telegram.secret_token_verifier(get_secret("TELEGRAM_SECRET_TOKEN")), normalize)


def _count_telegram_gap(payload: Any) -> None:
    """Telegram offers no backfill while a webhook is set: skipped update ids are
    only logged and counted. Never fails the webhook."""
    from chalicelib.channels.meta.backfill import record_update_id
    from chalicelib.channels.telegram import webhook as telegram

    update_id = telegram.update_id(payload)
    if update_id is None:
        return
    try:
        missing = record_update_id(wiring.message_store(), settings().telegram_bot_id, update_id)
    except Exception as exc:  # counting gaps must never cost us the update itself
        logger.warning("telegram gap check failed", extra={"reason": type(exc).__name__})
        return
    if missing > 0:  # record_update_id has logged it
        _publish("telegram", {"updates_missing": missing})


@app.route("/webhooks/line", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def line_webhook() -> Response:
    """LINE Messaging API events (one-to-one chats, groups and rooms)."""
    from chalicelib.channels.line import webhook as line

    return _ingest("line", lambda: line.signature_verifier(get_secret("LINE_CHANNEL_SECRET")), line.normalize_delivery)


@app.route("/webhooks/generic/{source}", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def generic_webhook(source: str) -> Response:
    """Any other source (Trustpilot, app-store review tools, listening tools), signed per Standard Webhooks."""
    from chalicelib.channels.generic import webhook as generic

    def verifier() -> Verifier:
        name = generic.secret_name(source)  # a bad slug is a 400 before any secret is read
        try:
            configured = get_secret(name)
        except NotConfigured as exc:  # anyone can call any URL: an unknown source is a 404, not an alarm
            raise NotFound(f"no webhook source named {source!r} is configured") from exc
        return generic.signature_verifier(configured, name=name)

    return _ingest("generic", verifier, lambda payload: generic.normalize_delivery(payload, source=source))


@app.route("/webhooks/google/reviews", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def google_reviews_webhook() -> Response:
    """Google Business Profile review notifications (Pub/Sub push, Google-signed OIDC token)."""
    from chalicelib.channels.google import webhook as google_reviews

    request = app.current_request
    try:
        cfg = google_reviews.GoogleReviewSettings.from_env()
        result = google_reviews.receive_review_push(
            request.headers,
            request.raw_body or b"",
            verifier=cfg.verifier(),
            client=wiring.google_review_client(),
            store=wiring.message_store(),
            max_rating=cfg.ticket_max_stars,
        )
    except WebhookError as exc:
        return _refuse("google_reviews", exc)
    logger.info("webhook stored", extra={"route": "google_reviews", **result.__dict__})
    return _json(result.to_body())


@app.route("/privacy/meta/deletion", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def meta_data_deletion() -> Response:
    """Meta's data deletion request callback: forget the person, answer with a status URL and code."""
    from chalicelib.privacy import deletion as privacy

    request = app.current_request
    try:
        answer = privacy.handle_meta_deletion(
            request.raw_body or b"",
            request.headers.get("content-type"),
            get_secret("META_APP_SECRET"),
            wiring.deletion_requests(),
            privacy.status_base_url(
                request.context, request.headers, "/privacy/meta/deletion", os.environ.get("PUBLIC_BASE_URL")
            ),
        )
    except WebhookError as exc:
        return _refuse("meta_deletion", exc)
    return _json(answer)


@app.route("/privacy/status/{code}", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def privacy_status(code: str) -> Response:
    """The state of a data deletion request, for the person who asked (JSON, or HTML for a browser)."""
    from chalicelib.privacy import deletion as privacy

    try:
        status = privacy.deletion_status(code, wiring.deletion_requests())
    except WebhookError as exc:
        return _refuse("privacy_status", exc)
    if "text/html" in (app.current_request.headers.get("accept") or ""):
        page = privacy.status_page_html(status)
        return Response(body=page, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})
    return _json(status)


@app.route("/helpdesk/zendesk", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def zendesk_helpdesk_event() -> Response:
    """Zendesk triggers: an agent's public reply goes to the customer; ticket status changes are recorded."""
    from chalicelib.outbound.agent_events import handle_zendesk_event

    request = app.current_request
    try:
        result = handle_zendesk_event(
            request.headers,
            request.raw_body or b"",
            secret=get_secret("ZENDESK_WEBHOOK_SECRET"),
            events=wiring.agent_events(),
            replies=wiring.agent_replies(),
        )
    except WebhookError as exc:
        return _refuse("zendesk_events", exc)
    _publish("agent_replies", {result.outcome: 1})
    return _json(result.to_body(), result.status)


@app.route("/helpdesk/freshdesk", methods=["POST"], content_types=ANY_CONTENT_TYPE)
def freshdesk_helpdesk_event() -> Response:
    """Freshdesk automation rule: agents' public replies and notes go to the customer; ticket status is recorded."""
    from chalicelib.helpdesks.freshdesk.events import handle_freshdesk_event

    request = app.current_request
    try:
        # On a Zendesk deployment the handler answers 404 after its own checks; the
        # Freshdesk adapter and replies are only built where they are configured.
        on_freshdesk = settings().helpdesk == "freshdesk"
        result = handle_freshdesk_event(
            request.headers,
            request.raw_body or b"",
            secret=get_secret("FRESHDESK_WEBHOOK_SECRET"),
            events=wiring.agent_events(),
            replies=wiring.agent_replies() if on_freshdesk else None,
            helpdesk=wiring.helpdesk() if on_freshdesk else SimpleNamespace(name=settings().helpdesk),
            store=wiring.message_store(),
        )
    except WebhookError as exc:
        return _refuse("freshdesk_events", exc)
    _publish("agent_replies", result.outcomes())
    return _json(result.to_body(), result.status)


@app.on_dynamodb_record(stream_arn=STREAM_ARN, batch_size=100, starting_position="TRIM_HORIZON", name="sync_tickets")
def sync_tickets(event: Any) -> None:
    """The outbox: every new inbound message becomes a ticket or a comment."""
    records = event.to_dict().get("Records", [])
    # Stop well before the 300 s timeout: one message may spend up to 120 s fetching
    # its attachments. The batch is retried and finished messages are skipped.
    report = wiring.ticket_sync().sync_stream_records(
        records, remaining_seconds=_remaining_seconds(event), reserve_seconds=150
    )
    _publish("sync", report.outcomes)


@app.schedule("rate(2 minutes)", name="poll_x")
def poll_x_mentions_and_dms(event: Any) -> None:
    """X without the enterprise tier: poll the brand's mentions and DMs into the table."""
    if not _enabled("X_POLLING_ENABLED"):
        return
    from chalicelib.channels.x.api import XApiError
    from chalicelib.channels.x.poller import poll_x

    try:
        report = poll_x(
            wiring.x_api(),
            wiring.message_store(),
            wiring.watermarks(),
            brand_id=os.environ["X_BRAND_USER_ID"],
            dms=os.environ.get("X_POLL_DMS", "true").lower() != "false",
            remaining_seconds=_remaining_seconds(event),
        )
    except XApiError as exc:  # auth or request errors: retrying the same schedule tick won't help
        logger.error("x polling failed", extra={"status": exc.status, "reason": str(exc)})
        return
    _publish("poll_x", report.outcomes)


@app.schedule("rate(30 minutes)", name="backfill_meta")
def backfill_meta_messages(event: Any) -> None:
    """No message missed: fetch recent comments and chats from the Graph API; what
    webhooks already delivered is deduplicated, the rest is counted as found only here."""
    if not _enabled("META_BACKFILL_ENABLED"):
        return
    from datetime import timedelta

    from chalicelib.channels.meta.backfill import backfill_meta

    report = backfill_meta(
        wiring.meta_graph(),
        wiring.message_store(),
        wiring.watermarks(),
        page_ids=_id_list("META_PAGE_IDS"),
        ig_ids=_id_list("META_IG_ACCOUNT_IDS"),
        lookback=timedelta(hours=float(os.environ.get("META_BACKFILL_LOOKBACK_HOURS", "24"))),
        remaining_seconds=_remaining_seconds(event),
    )
    for error in report.errors:
        logger.error("meta backfill failed for an account", extra={"reason": str(error)})
    _publish("backfill_meta", report.outcomes)


@app.schedule("rate(1 hour)", name="token_health")
def token_health(event: Any) -> None:
    """Check every configured platform credential before replies start failing: a
    ``token_ok`` metric per platform and a plain-words error per problem."""
    from chalicelib.ops.token_health import check_tokens

    check_tokens()


@app.schedule("rate(2 minutes)", name="retry_agent_replies")
def retry_agent_replies(event: Any) -> None:
    """Answers whose platform failed for a passing reason are sent once due, tickets Zendesk
    could not give us are read again; interrupted sends are noted."""
    if settings().helpdesk not in ("zendesk", "freshdesk"):
        return
    report = wiring.agent_replies().retry_due(remaining_seconds=_remaining_seconds(event))
    _publish("agent_replies_retry", report.outcomes)


@app.schedule("rate(10 minutes)", name="redrive_parked")
def redrive_parked(event: Any) -> None:
    """Replay parked messages, so a helpdesk outage heals itself once it ends."""
    from datetime import timedelta

    from aws_lambda_powertools.metrics import MetricUnit

    from chalicelib.sync.redrive import redrive

    # Same guard as the stream sync: one message may spend up to 120 s on its attachments.
    report = redrive(
        wiring.message_store(),
        wiring.ticket_sync(),
        wiring.dead_letters(),
        remaining_seconds=_remaining_seconds(event),
        reserve_seconds=150,
        set_aside_after=timedelta(seconds=float(os.environ.get("PARKED_SET_ASIDE_AFTER_SECONDS", "3600"))),
        lease_seconds=float(os.environ.get("REDRIVE_LEASE_SECONDS", "300")),
    )
    # The alarm's signal: how long the longest-blocked conversation has waited.
    metrics.add_metric(name="parked_head_age_seconds", unit=MetricUnit.Seconds, value=report.oldest_parked_seconds)
    _publish("redrive", report.metrics())


def _remaining_seconds(event: Any) -> Callable[[], float] | None:
    context = getattr(event, "context", None)
    return (lambda: context.get_remaining_time_in_millis() / 1000) if context else None


def _id_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _enabled(flag: str) -> bool:
    return os.environ.get(flag, "").lower() in ("1", "true", "yes")


def _publish(stage: str, outcomes: dict[str, int]) -> None:
    if not outcomes:  # e.g. a batch of conversation-state records only
        return
    from aws_lambda_powertools.metrics import MetricUnit

    for outcome, count in outcomes.items():
        metrics.add_metric(name=f"{stage}_{outcome}", unit=MetricUnit.Count, value=count)
    logger.info(f"{stage} finished", extra={"outcomes": dict(outcomes)})
    metrics.flush_metrics()


# Everything imported so far lives as long as the execution environment. Freezing it
# takes it out of the garbage collector's sight, so the collections set off by the
# first request's imports (boto3) and by every later request do not walk it again:
# about a fifth of a cold start here (`make bench`, cold_start_ratio).
gc.freeze()
