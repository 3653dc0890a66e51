"""Every metric a team charts or an alarm watches: names, units and dimensions in one place.

Handlers call one function each (``messages_in(saved)``, ``ticket_opened(message)``...).
Each call writes one CloudWatch embedded-metric-format (EMF) line through Powertools
(``EphemeralMetrics``: nothing is kept between calls, so a metric never rides on another
handler's flush). A line may carry several dimension sets: the narrow one alarms and the
dashboard read (``service`` + ``platform``), and a detailed one for charts (``platform``,
``kind``, ``account``). Which metric drops which dimension, and why: README, "Metrics".
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Literal

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from chalicelib.observability import SERVICE

if TYPE_CHECKING:
    from chalicelib.helpdesks.budget import RateBudget
    from chalicelib.models import SocialMessage
    from chalicelib.reporting.model import SlaTargets

NAMESPACE = SERVICE

# Metric names (the dashboard and alarms in infra/template.json use the same words).
MESSAGES_IN = "messages_in"
TICKETS_OPENED = "tickets_opened"
FIRST_RESPONSE_SECONDS = "first_response_seconds"
RESOLUTION_SECONDS = "resolution_seconds"
SLA_MET = "sla_met"
SLA_MISSED = "sla_missed"
REPLIES_FAILED = "replies_failed"
MESSAGES_PARKED = "messages_parked"
PARKED_HEAD_AGE_SECONDS = "parked_head_age_seconds"
BACKFILL_ONLY_FOUND = "backfill_only_found"
WEBHOOK_AUTH_FAILURES = "webhook_auth_failures"
TOKEN_OK = "token_ok"
TOKEN_DAYS_LEFT = "token_days_left"
HELPDESK_BUDGET_USED = "helpdesk_budget_used"
HELPDESK_BUDGET_WAIT_SECONDS = "helpdesk_budget_wait_seconds"
HELPDESK_BUDGET_LONGEST_WAIT_SECONDS = "helpdesk_budget_longest_wait_seconds"
HELPDESK_BUDGET_REFUSED = "helpdesk_budget_refused"
HELPDESK_BUDGET_UNUSED = "helpdesk_budget_unused"
HELPDESK_BUDGET_WRITES = "helpdesk_budget_writes"

Measure = Literal["first_response", "resolution"]
Dimensions = Mapping[str, str]


def _emit(values: Mapping[str, tuple[MetricUnit, float]], *dimension_sets: Dimensions) -> None:
    """One EMF line: ``values`` under every dimension set (the first is the primary one)."""
    metrics = EphemeralMetrics(namespace=NAMESPACE, service=SERVICE)
    primary, *others = dimension_sets or ({},)
    for dimension, label in primary.items():
        metrics.add_dimension(name=dimension, value=label)
    for extra in others:
        metrics.add_dimensions(service=SERVICE, **extra)
    for name, (unit, amount) in values.items():
        metrics.add_metric(name=name, unit=unit, value=amount)
    metrics.flush_metrics()


def _detail(message: SocialMessage) -> dict[str, str]:
    return {"platform": message.platform.value, "kind": message.kind.value, "account": message.account_id}


def messages_in(messages: Iterable[SocialMessage]) -> None:
    """Customer messages the table took for the first time (the sync's new stream items: a redelivery is not counted twice),
    per platform (the quiet-channel alarms) and per platform, kind and receiving account."""
    from chalicelib.models import Direction

    groups = Counter((m.platform.value, m.kind.value, m.account_id) for m in messages if m.direction is Direction.INBOUND)
    for (platform, kind, account), count in groups.items():
        _emit(
            {MESSAGES_IN: (MetricUnit.Count, count)},
            {"platform": platform},
            {"platform": platform, "kind": kind, "account": account},
        )


def ticket_opened(message: SocialMessage) -> None:
    """A conversation got a ticket (its first, or a follow-up of a closed one)."""
    _emit({TICKETS_OPENED: (MetricUnit.Count, 1)}, {"platform": message.platform.value}, _detail(message))


def sla_targets(measure: Measure) -> SlaTargets:
    """The SLA targets per channel (platform and visibility), for the metrics and the report:
    the triage rules file's (``TRIAGE_RULES_PATH`` or the shipped ``chalicelib/rules/triage.json``),
    read once per file."""
    from chalicelib.reporting.model import SlaTargets

    return SlaTargets(_rules_targets(os.environ.get("TRIAGE_RULES_PATH", ""))[measure])


@functools.cache
def _rules_targets(path: str) -> dict[str, dict[str, float]]:
    """``SlaTargets`` keys (``x:public``; ``public``/``private`` for the rules' ``default``) -> seconds."""
    from chalicelib.triage.rules import duration, first_reply_targets, load_rules

    first = first_reply_targets(path or None)
    first_response: dict[str, float] = {}
    for visibility, targets in (("public", first.public), ("private", first.private)):
        for platform, target in targets.items():
            first_response[visibility if platform == "default" else f"{platform}:{visibility}"] = target.total_seconds()
    resolution = load_rules(path or None).sla.resolution
    return {
        "first_response": first_response,
        "resolution": {
            "public": duration(resolution.public).total_seconds(),
            "private": duration(resolution.private).total_seconds(),
        },
    }


def answered(first_message: SocialMessage, measure: Measure, seconds: float, *, targets: SlaTargets | None = None) -> None:
    """A conversation's first response time or resolution time (from the platform time of the
    customer's first message ``first_message``), and whether it met its channel's target."""
    from chalicelib.reporting.model import Channel

    private = first_message.is_private
    target = (targets or sla_targets(measure)).for_channel(Channel(first_message.platform.value, private))
    name = FIRST_RESPONSE_SECONDS if measure == "first_response" else RESOLUTION_SECONDS
    values: dict[str, tuple[MetricUnit, float]] = {name: (MetricUnit.Seconds, max(0.0, seconds))}
    if target is not None:
        met = seconds <= target
        values[SLA_MET] = (MetricUnit.Count, 1 if met else 0)
        values[SLA_MISSED] = (MetricUnit.Count, 0 if met else 1)
    channel = {"platform": first_message.platform.value, "visibility": "private" if private else "public", "measure": measure}
    _emit(values, channel, {**_detail(first_message), "measure": measure})


def reply_failed(platform: str, reason: str) -> None:
    """An agent's answer that did not reach the customer for good (failed, or may not have
    arrived), by the failure's kind (``token_expired``, ``window_closed``...)."""
    _emit({REPLIES_FAILED: (MetricUnit.Count, 1)}, {"reason": reason}, {"platform": platform, "reason": reason})


def message_parked(message: SocialMessage) -> None:
    """A message the helpdesk kept failing or refusing, parked (not the ones waiting behind it)."""
    _emit({MESSAGES_PARKED: (MetricUnit.Count, 1)}, {}, {"platform": message.platform.value})


def parked_head_age(seconds: float) -> None:
    """How long the longest-blocked conversation has waited (0: none): the parked alarm's metric."""
    _emit({PARKED_HEAD_AGE_SECONDS: (MetricUnit.Seconds, seconds)})


def backfill_only_found(messages: Iterable[SocialMessage]) -> None:
    """Customer messages only the backfill found (new to the table): webhook deliveries the
    platform lost, per platform."""
    from chalicelib.models import Direction

    for platform, count in Counter(m.platform.value for m in messages if m.direction is Direction.INBOUND).items():
        _emit({BACKFILL_ONLY_FOUND: (MetricUnit.Count, count)}, {"platform": platform})


def webhook_auth_failed(route: str) -> None:
    """A webhook whose signature or token was wrong: a changed secret, or someone probing."""
    _emit({WEBHOOK_AUTH_FAILURES: (MetricUnit.Count, 1)}, {}, {"route": route})


def token_health(platform: str, ok: bool, days_left: int | None) -> None:
    """One credential's health (1 works, 0 broken) and, when known, the days before it expires."""
    values: dict[str, tuple[MetricUnit, float]] = {TOKEN_OK: (MetricUnit.Count, 1 if ok else 0)}
    if days_left is not None:
        values[TOKEN_DAYS_LEFT] = (MetricUnit.Count, days_left)
    # Per platform for the dashboard; under ``service`` alone for the alarms (the worst of all).
    _emit(values, {"platform": platform}, {})


def helpdesk_budget(budget: RateBudget) -> None:
    """The shared helpdesk budget's use by this container since the last call, per bucket:
    ``helpdesk_budget_used`` (Sum per minute over containers: the fraction of the budget the
    bridge used), time spent waiting for it, requests it refused, tokens it took ahead and
    lost unused; and its DynamoDB writes.
    Nothing is emitted for a container that did not use it."""
    figures, writes = budget.take_figures()
    for bucket, used in figures.items():
        if not (used.used or used.waited_seconds or used.refused or used.unused):
            continue
        _emit(
            {
                HELPDESK_BUDGET_USED: (MetricUnit.NoUnit, used.used),
                HELPDESK_BUDGET_WAIT_SECONDS: (MetricUnit.Seconds, used.waited_seconds),
                HELPDESK_BUDGET_LONGEST_WAIT_SECONDS: (MetricUnit.Seconds, used.longest_wait_seconds),
                HELPDESK_BUDGET_REFUSED: (MetricUnit.Count, used.refused),
                HELPDESK_BUDGET_UNUSED: (MetricUnit.Count, used.unused),
            },
            {"helpdesk": budget.helpdesk, "bucket": bucket},
        )
    if writes:
        _emit({HELPDESK_BUDGET_WRITES: (MetricUnit.Count, writes)}, {"helpdesk": budget.helpdesk})
