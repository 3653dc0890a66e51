"""Builds the AWS clients and services lazily, once per Lambda container.

Handlers ask for what they need (``message_store()``, ``ticket_sync()``...); tests
and the local stack swap any piece with ``override(name, value)``.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.config import get_secret, settings
from chalicelib.errors import NotConfigured

if TYPE_CHECKING:
    from chalicelib.channels.x.poller import Watermarks
    from chalicelib.crisis.tickets import CrisisTickets
    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.helpdesks.budget import RateBudget
    from chalicelib.outbound.agent_events import EventLog
    from chalicelib.outbound.agent_replies import AgentReplies
    from chalicelib.outbound.dispatch import ReplyDispatcher
    from chalicelib.outbound.fanout import ProblemAnswers
    from chalicelib.privacy.deletion import DeletionRequests
    from chalicelib.store import IngestStore, MessageStore
    from chalicelib.sync.attachments import AttachmentFetcher
    from chalicelib.sync.deadletter import DeadLetterQueue
    from chalicelib.sync.profiles import ProfileLookup
    from chalicelib.sync.tickets import TicketSync
    from chalicelib.triage.rules import Triage

T = TypeVar("T")

_built: dict[str, Any] = {}


def override(name: str, value: Any) -> None:
    """Replace a built dependency (tests, local stack)."""
    _built[name] = value


def reset() -> None:
    """Forget everything built, e.g. after the environment changed."""
    from chalicelib.helpdesks import outcomes

    outcomes.forget_budgets()
    _built.clear()
    settings.cache_clear()


def built(name: str, factory: Callable[[], T]) -> T:
    """The dependency ``name``, built by ``factory`` on first use (channels and helpdesks
    keep their own clients here, so tests swap them the same way)."""
    if name not in _built:
        _built[name] = factory()
    found: T = _built[name]
    return found


_sdk_frozen = False


def _client(service: str) -> Any:
    global _sdk_frozen
    if service not in _built:
        # The first client imports the SDK and loads its models: objects that live as long
        # as the container. No garbage collection while they are made (it would find nothing
        # to free), and frozen once made (gc.freeze), so later collections never walk them:
        # a webhook's cold start builds its DynamoDB client on the way to its one write.
        first = not _sdk_frozen
        collecting = gc.isenabled()
        if first:
            gc.disable()
        try:
            import boto3
            from botocore.config import Config

            # Short timeouts: a webhook must be answered within seconds; the SDK's
            # standard retry mode already backs off on throttling. No client-side check of
            # each request against the API's shapes (about a sixth of a PutItem's time in the
            # SDK): our code builds every request, and the service checks it all the same (a
            # bad item is refused with ValidationException, which the store quarantines).
            # The test suite turns the check on (SOCIALDESK_CHECK_AWS_REQUESTS=1): moto checks
            # less than DynamoDB, so a malformed request must still fail a test.
            config = Config(
                connect_timeout=2,
                read_timeout=5,
                retries={"mode": "standard", "max_attempts": 5},
                parameter_validation=os.environ.get("SOCIALDESK_CHECK_AWS_REQUESTS") == "1",
            )
            _built[service] = boto3.client(service, config=config)
        finally:
            if first:
                _sdk_frozen = True
                gc.freeze()
                if collecting:
                    gc.enable()
    return _built[service]


def message_store() -> MessageStore:
    """The table, for webhooks and the sync."""
    if "store" not in _built:
        from chalicelib.store import MessageStore

        cfg = settings()
        _built["store"] = MessageStore(cfg.table_name, _client("dynamodb"), raw_ttl_days=cfg.raw_ttl_days)
    return _built["store"]


def ingest_store() -> IngestStore:
    """The table's writes a webhook makes (``store/ingest.py``): the whole store when it is built
    already, else only those writes, so a cold start woken by a webhook loads nothing more."""
    if "store" in _built:
        found: IngestStore = _built["store"]
        return found
    if "ingest_store" not in _built:
        from chalicelib.store import IngestStore

        cfg = settings()
        _built["ingest_store"] = IngestStore(cfg.table_name, _client("dynamodb"), raw_ttl_days=cfg.raw_ttl_days)
    return _built["ingest_store"]


def dead_letters() -> DeadLetterQueue:
    """The dead-letter queue of parked messages."""
    if "dead_letters" not in _built:
        from chalicelib.sync.deadletter import DeadLetterQueue

        url = settings().dlq_url
        if not url:
            raise NotConfigured("DLQ_URL is not configured")
        _built["dead_letters"] = DeadLetterQueue(url, _client("sqs"))
    return _built["dead_letters"]


def helpdesk() -> Helpdesk:
    """The configured helpdesk's adapter (``HELPDESK=zendesk|freshdesk``: ``helpdesks/registry.py``)."""
    if "helpdesk" not in _built:
        from chalicelib.helpdesks.registry import HELPDESKS, helpdesk_plugin

        name = settings().helpdesk
        if name not in HELPDESKS:
            raise NotConfigured(f"HELPDESK must be one of {', '.join(HELPDESKS)}, not {name!r}")
        _built["helpdesk"] = helpdesk_plugin(name).adapter()
        from chalicelib.helpdesks import outcomes

        outcomes.use_budget(name, helpdesk_budget)
    return _built["helpdesk"]


def helpdesk_budget() -> RateBudget | None:
    """The helpdesk's request budget, shared by every Lambda through the table (limits from
    ``HELPDESK_RATE_PER_MINUTE`` & co., ``helpdesks/budget.py``; None when turned off)."""
    if "helpdesk_budget" not in _built:
        from chalicelib.helpdesks.budget import RateBudget

        cfg = settings()
        _built["helpdesk_budget"] = RateBudget.from_env(cfg.table_name, _client("dynamodb"), helpdesk=cfg.helpdesk)
    found: RateBudget | None = _built["helpdesk_budget"]
    return found


def publish_helpdesk_budget() -> None:
    """The budget's use metrics, at the end of a handler that called the helpdesk."""
    budget = _built.get("helpdesk_budget")
    if budget is not None:
        from chalicelib.ops.metrics import helpdesk_budget as budget_metrics

        budget_metrics(budget)


def ticket_sync() -> TicketSync:
    """The ticket sync wired to the store, helpdesk and dead-letter queue."""
    if "sync" not in _built:
        from chalicelib.sync.policy import TicketPolicy
        from chalicelib.sync.tickets import TicketSync

        _built["sync"] = TicketSync(
            message_store(),
            helpdesk(),
            dead_letters(),
            policy=TicketPolicy.from_env(),
            fetcher=attachment_fetcher(),
            profiles=profile_lookup(),
            crisis=crisis_tickets(),
            triage=triage(),
        )
    return _built["sync"]


def triage() -> Triage:
    """The triage rules (``TRIAGE_RULES_PATH``, default ``chalicelib/rules/triage.json``), read
    when the sync starts: a bad file fails its cold start with the file and line (``RulesError``)."""
    if "triage" not in _built:
        from chalicelib.triage.rules import Triage

        # Reach where only the profile API has it (Instagram): the names' lookup and cache.
        _built["triage"] = Triage.from_env(reach=profile_lookup().reach)
    found: Triage = _built["triage"]
    return found


def crisis_tickets() -> CrisisTickets | None:
    """Crisis detection and its problem/incident tickets, for the sync (None with ``CRISIS_ENABLED=false``).
    Built lazily: the webhook path never imports it."""
    if "crisis" not in _built:
        import os

        if os.environ.get("CRISIS_ENABLED", "true").strip().lower() == "false":
            _built["crisis"] = None
        else:
            from chalicelib.crisis import CrisisDetector, DynamoCrisisStore
            from chalicelib.crisis.tickets import CrisisAlerts, CrisisTickets

            table = settings().table_name
            topic = os.environ.get("ALERT_TOPIC_ARN") or None
            alerts = CrisisAlerts(table, _client("dynamodb"), sns=_client("sns") if topic else None, topic_arn=topic)
            detector = CrisisDetector(DynamoCrisisStore(table, _client("dynamodb")))
            _built["crisis"] = CrisisTickets(detector, helpdesk(), message_store(), alerts)
    found: CrisisTickets | None = _built["crisis"]
    return found


def attachment_fetcher() -> AttachmentFetcher | None:
    """Downloads customers' files for the sync (None when ``ATTACHMENTS_ENABLED=false``)."""
    if "attachments" not in _built:
        import os

        from chalicelib.sync.attachments import AttachmentFetcher

        if os.environ.get("ATTACHMENTS_ENABLED", "true").strip().lower() == "false":
            _built["attachments"] = None
        else:
            _built["attachments"] = AttachmentFetcher.from_env(_optional_secret)
    return _built["attachments"]


def _optional_secret(name: str) -> str | None:
    try:
        return get_secret(name)
    except NotConfigured:
        return None


def watermarks() -> Watermarks:
    """Where each poller left off, kept in the table."""
    if "watermarks" not in _built:
        from chalicelib.channels.x.poller import Watermarks

        _built["watermarks"] = Watermarks(settings().table_name, _client("dynamodb"))
    return _built["watermarks"]


def profile_lookup() -> ProfileLookup:
    """Customers' names from the channels' profile APIs (Messenger, Instagram, LINE), for the
    sync; cached in the table, credentials read per lookup."""
    if "profiles" not in _built:
        from chalicelib.channels.registry import all_channels
        from chalicelib.sync.profiles import ProfileLookup

        sources = {platform: source for entry in all_channels() for platform, source in entry.profile_sources().items()}
        _built["profiles"] = ProfileLookup(settings().table_name, _client("dynamodb"), sources=sources)
    return _built["profiles"]


def deletion_requests() -> DeletionRequests:
    """Data deletion requests and the deletion itself, on the messages table."""
    if "privacy" not in _built:
        from chalicelib.privacy.deletion import DeletionRequests

        _built["privacy"] = DeletionRequests(settings().table_name, _client("dynamodb"))
    return _built["privacy"]


def reply_dispatcher() -> ReplyDispatcher:
    """Outbound replies: every platform's sender (secrets are read per send)."""
    if "replies" not in _built:
        from chalicelib.outbound import build_dispatcher

        _built["replies"] = build_dispatcher()
    return _built["replies"]


def agent_events() -> EventLog:
    """Helpdesk events already handled (``EVENT#zendesk#<id>`` items)."""
    if "agent_events" not in _built:
        from chalicelib.outbound.agent_events import EventLog

        _built["agent_events"] = EventLog(settings().table_name, _client("dynamodb"))
    return _built["agent_events"]


def agent_event_handler() -> AgentReplies | ProblemAnswers:
    """What handles a helpdesk's agent events: the agent replies, behind the crisis problems'
    fan-out when the helpdesk has problem tickets and crisis detection is on."""
    return problem_answers() or agent_replies()


def problem_answers() -> ProblemAnswers | None:
    """The crisis problems' fan-out (``outbound/fanout.py``); None without crisis problem tickets."""
    if "problem_answers" not in _built:
        crisis = crisis_tickets()
        if crisis is None or not crisis.links_tickets:
            _built["problem_answers"] = None
        else:
            from chalicelib.outbound.fanout import ProblemAnswers

            _built["problem_answers"] = ProblemAnswers(agent_replies(), crisis, settings().table_name, _client("dynamodb"))
    found: ProblemAnswers | None = _built["problem_answers"]
    return found


def agent_replies() -> AgentReplies:
    """Agents' answers back to the platforms (the rules file's ``approval`` section holds sensitive
    public ones for a lead); ticket status from the helpdesk."""
    if "agent_replies" not in _built:
        from chalicelib.outbound.agent_replies import AgentReplies
        from chalicelib.triage.rules import load_rules

        _built["agent_replies"] = AgentReplies(
            message_store(),
            helpdesk(),
            reply_dispatcher(),
            bridge_email=settings().zendesk_email,
            approval_rules=load_rules().approval,
            open_crisis=_in_open_crisis,
        )
    return _built["agent_replies"]


def _in_open_crisis(ticket_id: str | None, problem_id: str | None) -> bool:
    """Whether a problem or incident ticket belongs to an open crisis (the approval rules ask, only
    for such tickets; without crisis detection, none does)."""
    crisis = crisis_tickets()
    return crisis is not None and crisis.in_open_crisis(ticket_id, problem_id)
