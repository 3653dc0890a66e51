"""socialdesk: social-network webhooks in, helpdesk tickets out.

Decorators and a few lines of glue. Each channel's routes and pollers are its own
blueprint (``chalicelib/channels/<name>/routes.py``), registered from the channel
registry; each helpdesk's event route likewise, from the helpdesk registry. What stays here runs for all of them:
the health probe, the ticket sync on the table's stream and the scheduled repairs.
"""

from __future__ import annotations

import gc

# What this module imports and builds lives as long as the execution environment: the
# garbage collector has nothing to find in it, so it is off until the end (gc.freeze below).
gc.disable()

import os  # noqa: E402
from typing import Any  # noqa: E402

from chalice import Chalice  # noqa: E402

from chalicelib import wiring  # noqa: E402
from chalicelib.channels.registry import all_channels  # noqa: E402
from chalicelib.config import settings  # noqa: E402
from chalicelib.helpdesks.registry import HELPDESKS, all_helpdesks  # noqa: E402
from chalicelib.privacy.routes import blueprint as privacy_routes  # noqa: E402
from chalicelib.web import ANY_CONTENT_TYPE, publish, remaining_seconds  # noqa: E402

app = Chalice(app_name="socialdesk", configure_logs=False)

# Chalice reads the stream ARN at import time; the placeholder keeps local runs and
# tests importable (the stage config sets the real one, see infra/record_outputs.py).
STREAM_ARN = os.environ.get(
    "STREAM_ARN", "arn:aws:dynamodb:us-east-1:123456789012:table/socialdesk-local-messages/stream/1970-01-01T00:00:00.000"
)

# A channel's blueprint imports only its routes; the platform modules behind them are
# imported inside the routes, so a cold start loads the one channel that woke it up.
for _channel in all_channels():
    app.register_blueprint(_channel.blueprint())
for _helpdesk in all_helpdesks():
    app.register_blueprint(_helpdesk.blueprint())
app.register_blueprint(privacy_routes)


@app.route("/health", methods=["GET"], content_types=ANY_CONTENT_TYPE)
def health() -> dict[str, Any]:
    """Liveness probe."""
    return {"ok": True, "service": "socialdesk"}


# A burst reaches the sync in large batches, so its new conversations are opened in bulk
# (chalicelib/sync/batch.py): up to 2,000 records, gathered for up to 2 s. 2,000: a full wave
# of bulk jobs (1,000 new conversations) with room for the records that are not new messages
# (the sync's own writes, Telegram offsets); about 3 MB, under Lambda's 6 MB (docs/scale.md).
SYNC_BATCH_SIZE, SYNC_BATCHING_WINDOW_SECONDS = 2000, 2


@app.on_dynamodb_record(
    stream_arn=STREAM_ARN,
    batch_size=SYNC_BATCH_SIZE,
    maximum_batching_window_in_seconds=SYNC_BATCHING_WINDOW_SECONDS,
    starting_position="TRIM_HORIZON",
    name="sync_tickets",
)
def sync_tickets(event: Any) -> None:
    """The outbox: every new inbound message becomes a ticket or a comment."""
    from chalicelib.ops import metrics as ops_metrics
    from chalicelib.sync.tickets import inbound_in_sync_order

    records = event.to_dict().get("Records", [])
    # Stop well before the 300 s timeout: one message may spend up to 120 s fetching
    # its attachments. The batch is retried and finished messages are skipped.
    report = wiring.ticket_sync().sync_stream_records(records, remaining_seconds=remaining_seconds(event), reserve_seconds=150)
    # Customer messages in are counted here, off the webhook's path: each new item once, when its batch succeeds.
    ops_metrics.messages_in(message for message, _ in inbound_in_sync_order(records))
    publish("sync", report.outcomes)
    wiring.publish_helpdesk_budget()


@app.schedule("rate(1 hour)", name="token_health")
def token_health(event: Any) -> None:
    """Check every configured channel and helpdesk credential before replies start failing:
    a ``token_ok`` metric per credential and a plain-words error per problem."""
    from chalicelib.ops.token_health import check_tokens

    check_tokens()


@app.schedule("rate(2 minutes)", name="retry_agent_replies")
def retry_agent_replies(event: Any) -> None:
    """Answers whose platform failed for a passing reason are sent once due, tickets Zendesk
    could not give us are read again; interrupted sends are noted."""
    if settings().helpdesk not in HELPDESKS:
        return
    report = wiring.agent_replies().retry_due(remaining_seconds=remaining_seconds(event))
    publish("agent_replies_retry", report.outcomes)
    answers = wiring.problem_answers()  # crises: quiet ones end, unfinished "one answer to all" continue
    if answers is not None:
        publish("crisis_fanout", answers.run_schedule(remaining_seconds=remaining_seconds(event)))
    wiring.publish_helpdesk_budget()


@app.schedule("rate(10 minutes)", name="redrive_parked")
def redrive_parked(event: Any) -> None:
    """Replay parked messages, so a helpdesk outage heals itself once it ends."""
    from datetime import timedelta

    from chalicelib.ops.metrics import parked_head_age
    from chalicelib.sync.redrive import redrive

    # Same guard as the stream sync: one message may spend up to 120 s on its attachments.
    report = redrive(
        wiring.message_store(),
        wiring.ticket_sync(),
        wiring.dead_letters(),
        remaining_seconds=remaining_seconds(event),
        reserve_seconds=150,
        set_aside_after=timedelta(seconds=float(os.environ.get("PARKED_SET_ASIDE_AFTER_SECONDS", "3600"))),
        lease_seconds=float(os.environ.get("REDRIVE_LEASE_SECONDS", "300")),
    )
    # The alarm's signal: how long the longest-blocked conversation has waited.
    parked_head_age(report.oldest_parked_seconds)
    publish("redrive", report.metrics())
    wiring.publish_helpdesk_budget()


# Everything imported so far lives as long as the execution environment. Freezing it
# takes it out of the garbage collector's sight, so the collections set off by the
# first request's imports (boto3) and by every later request do not walk it again:
# about a fifth of a cold start here (`make bench`, cold_start_ratio). The first AWS
# client does the same for the SDK (``wiring._client``).
gc.freeze()
gc.enable()
