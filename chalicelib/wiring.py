"""Builds the AWS clients and services lazily, once per Lambda container.

Handlers ask for what they need (``message_store()``, ``ticket_sync()``...); tests
and the local stack swap any piece with ``override(name, value)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalicelib.config import get_secret, settings
from chalicelib.errors import NotConfigured

if TYPE_CHECKING:
    from chalicelib.outbound.agent_events import EventLog
    from chalicelib.outbound.agent_replies import AgentReplies
    from chalicelib.sync.attachments import AttachmentFetcher
    from chalicelib.sync.deadletter import DeadLetterQueue
    from chalicelib.helpdesks.base import Helpdesk
    from chalicelib.channels.google.webhook import BusinessProfileClient
    from chalicelib.channels.meta.graph import GraphClient
    from chalicelib.channels.x.api import XApiClient
    from chalicelib.channels.x.poller import Watermarks
    from chalicelib.privacy.deletion import DeletionRequests
    from chalicelib.sync.profiles import ProfileLookup
    from chalicelib.outbound.dispatch import ReplyDispatcher
    from chalicelib.store import MessageStore
    from chalicelib.sync.tickets import TicketSync

_built: dict[str, Any] = {}


def override(name: str, value: Any) -> None:
    """Replace a built dependency (tests, local stack)."""
    _built[name] = value


def reset() -> None:
    """Forget everything built, e.g. after the environment changed."""
    _built.clear()
    settings.cache_clear()


def _client(service: str) -> Any:
    if service not in _built:
        import boto3
        from botocore.config import Config

        # Short timeouts: a webhook must be answered within seconds; the SDK's
        # standard retry mode already backs off on throttling.
        config = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 5})
        _built[service] = boto3.client(service, config=config)
    return _built[service]


def message_store() -> MessageStore:
    """The table, for webhooks and the sync."""
    if "store" not in _built:
        from chalicelib.store import MessageStore

        cfg = settings()
        _built["store"] = MessageStore(cfg.table_name, _client("dynamodb"), raw_ttl_days=cfg.raw_ttl_days)
    return _built["store"]


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
    """The configured helpdesk adapter (``HELPDESK=zendesk|freshdesk``)."""
    if "helpdesk" not in _built:
        cfg = settings()
        if cfg.helpdesk == "freshdesk":
            from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk

            if not cfg.freshdesk_url:
                raise NotConfigured("FRESHDESK_URL must be configured")
            _built["helpdesk"] = FreshdeskHelpdesk(
                cfg.freshdesk_url, get_secret("FRESHDESK_API_KEY"), conversation_field=cfg.freshdesk_conversation_field
            )
        elif cfg.helpdesk == "zendesk":
            from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk

            if not cfg.zendesk_url or not cfg.zendesk_email:
                raise NotConfigured("ZENDESK_URL and ZENDESK_EMAIL must be configured")
            _built["helpdesk"] = ZendeskHelpdesk(cfg.zendesk_url, cfg.zendesk_email, get_secret("ZENDESK_API_TOKEN"))
        else:
            raise NotConfigured(f"HELPDESK must be zendesk or freshdesk, not {cfg.helpdesk!r}")
    return _built["helpdesk"]


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
        )
    return _built["sync"]


def attachment_fetcher() -> AttachmentFetcher | None:
    """Downloads customers' files for the sync (None when ``ATTACHMENTS_ENABLED=false``)."""
    if "attachments" not in _built:
        import os

        from chalicelib.sync.attachments import AttachmentFetcher, token_reader
        from chalicelib.models import Platform

        if os.environ.get("ATTACHMENTS_ENABLED", "true").strip().lower() == "false":
            _built["attachments"] = None
        else:
            _built["attachments"] = AttachmentFetcher.from_env(
                token_reader(
                    {
                        Platform.WHATSAPP: lambda: get_secret("WHATSAPP_ACCESS_TOKEN"),
                        Platform.TELEGRAM: lambda: get_secret("TELEGRAM_BOT_TOKEN"),
                        Platform.LINE: lambda: get_secret("LINE_CHANNEL_ACCESS_TOKEN"),
                    }
                )
            )
    return _built["attachments"]


def google_review_client() -> BusinessProfileClient:
    """The Business Profile API client (one connection pool per container)."""
    if "google_reviews" not in _built:
        from chalicelib.channels.google.webhook import BusinessProfileClient, GoogleReviewSettings

        _built["google_reviews"] = BusinessProfileClient(
            GoogleReviewSettings.from_env().api_url, token_provider=lambda: get_secret("GOOGLE_ACCESS_TOKEN")
        )
    return _built["google_reviews"]


def x_api() -> XApiClient:
    """The X API v2 client of the poller (user-context token of the brand account)."""
    if "x_api" not in _built:
        from chalicelib.channels.x.api import XApiClient

        _built["x_api"] = XApiClient(token_provider=lambda: get_secret("X_USER_ACCESS_TOKEN"))
    return _built["x_api"]


def watermarks() -> Watermarks:
    """Where each poller left off, kept in the table."""
    if "watermarks" not in _built:
        from chalicelib.channels.x.poller import Watermarks

        _built["watermarks"] = Watermarks(settings().table_name, _client("dynamodb"))
    return _built["watermarks"]


def meta_graph() -> GraphClient:
    """The Graph API client of the Meta backfill (one Page token per account)."""
    if "meta_graph" not in _built:
        import os

        from chalicelib.channels.meta.graph import GraphClient

        _built["meta_graph"] = GraphClient(
            os.environ.get("META_GRAPH_URL"),
            version=os.environ.get("META_GRAPH_VERSION", "v23.0"),
            token_provider=lambda account: get_secret(f"META_PAGE_TOKEN_{account}"),
        )
    return _built["meta_graph"]


def profile_lookup() -> ProfileLookup:
    """Customers' names from the Messenger, Instagram and LINE profile APIs, for the sync
    (cached in the table; the Page tokens and LINE's channel token are read per lookup)."""
    if "profiles" not in _built:
        import os

        from chalicelib.channels.meta.graph import instagram_pages
        from chalicelib.sync.profiles import LineProfiles, ProfileLookup

        _built["profiles"] = ProfileLookup(
            settings().table_name,
            _client("dynamodb"),
            graph=meta_graph(),
            line=LineProfiles(os.environ.get("LINE_API_URL"), lambda: get_secret("LINE_CHANNEL_ACCESS_TOKEN")),
            instagram_pages=instagram_pages(os.environ.get("META_INSTAGRAM_PAGES")),
        )
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


def agent_replies() -> AgentReplies:
    """Agents' answers back to the platforms; ticket status from the helpdesk."""
    if "agent_replies" not in _built:
        from chalicelib.outbound.agent_replies import AgentReplies

        _built["agent_replies"] = AgentReplies(
            message_store(), helpdesk(), reply_dispatcher(), bridge_email=settings().zendesk_email
        )
    return _built["agent_replies"]
