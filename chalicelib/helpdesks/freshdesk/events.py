"""Freshdesk -> socialdesk: an agent's reply (or public note) goes back to the customer's platform.

Freshdesk has no webhook subscription API: an admin creates one automation rule (Admin ->
Workflows -> Automations -> *Ticket updates*; Growth plan and up) that calls us:

* **When an action is performed by** Agent, **involving any of these events**: Reply is sent;
  Note is added (type Public); Status is changed (from Any to Any);
* **on tickets with these properties**: Tags contain ``socialdesk`` (every ticket the bridge
  opens carries it);
* **perform**: Trigger webhook, ``POST <PUBLIC_BASE_URL>/helpdesk/freshdesk``, encoding JSON,
  content *Advanced* = ``event_body()`` (with the conversation custom field, when the account
  has one: ``event_body("cf_socialdesk_conversation")``), and the custom header
  ``X-Socialdesk-Token: <FRESHDESK_WEBHOOK_SECRET>`` (``automation_rule()`` spells it all out);
* a second rule for a lead's approval (``approval_rule()``): the same action on *Note is added
  (type Private)* of tickets tagged ``socialdesk`` and ``socialdesk_approved`` or
  ``socialdesk_withdrawn`` (a lead's scenario adds the tag with a private note). The bridge's
  own private notes carry no such tag, so they call nobody.

Authenticity. Freshdesk signs nothing: the rule sends a shared secret in ``X-Socialdesk-Token``,
compared in constant time (``hmac.compare_digest``) with ``FRESHDESK_WEBHOOK_SECRET``; a missing
or wrong token is a 401 and nothing is read or sent. There is no timestamp placeholder to sign
or to bound a replay with, so the replay guard is idempotency: everything we do is keyed to
Freshdesk's own ids, read back from the API (below), never to the request. A replayed request
finds each reply claimed in ``EVENT#freshdesk#comment:<ticket>:<conversation id>`` (TTL 2 days)
and in the reply ledger (``REPLY#...#<conversation id>``, 30 days), and a reply older than
``REPLY_LOOKBACK`` (26 h) is never sent, so a replay after the ledger expired sends nothing either.

What the body is trusted for: nothing but the ticket id. Freshdesk renders
``{{ticket.latest_public_comment}}`` as ``"<author name> : <HTML body>"`` plus a list of
attachments, with no comment id (https://github.com/freshdesk/helpkit: ``liquidize_comment``),
and placeholder values inside Advanced JSON are not guaranteed to be escaped. So the handler
reads the ticket (``GET /api/v2/tickets/{id}``: tags, custom fields, status, requester) and its
conversations (``GET /api/v2/tickets/{id}/conversations``: id, plain ``body_text``, author,
``private``, ``incoming``, ``source``, ``created_at``) and sends every public agent reply or note
of the last ``REPLY_LOOKBACK`` that the ledger has not seen, oldest first. Two quick replies thus
both go out even if the first webhook is late, and a reply whose webhook was lost goes out with
the next one. Customer messages (``incoming``), private notes and the bridge's own notes (they
carry our ``[socialdesk:...]`` reference) are never sent. The other fields of ``event_body()``
(triggered event, status word, tags, agent) are logged, not used.

Which conversation. Freshdesk tickets have no ``external_id``; the adapter tags each ticket
``sdc-<hash of the conversation key>`` (``freshdesk.conversation_tag``). The key is found by, in
order (``ConversationFinder``): the conversation custom field (``FRESHDESK_CONVERSATION_FIELD``,
from the API; else the body's ``conversation_key``), accepted only when its hash matches the
ticket's ``sdc-`` tag and the conversation exists; the pointer item ``TICKET#freshdesk#<ticket
id>`` / ``TICKET`` (``record_ticket_pointer``, written when a ticket is opened); the ticket's
requester: ``GET /api/v2/contacts/{id}`` gives ``unique_external_id`` = ``<platform>:<author
id>``, the ``by-author`` index gives that person's conversations, and the one whose hash is the
ticket's ``sdc-`` tag is ours. A ticket without an ``sdc-`` tag is not the bridge's: 200, nothing
done.

Status. Every event also hands the ticket's status (from the API, so a late or reordered
webhook cannot regress it; 2 open, 3 pending, 4 solved, 5 closed, custom statuses open) to
``AgentReplies`` as a ``ticket_status`` event: it becomes the conversation's ``ticket_status``
when the ticket is the conversation's current Freshdesk ticket, and the sync follows it for the
customer's next message.

Answers: 200 with ``FreshdeskEventResult.to_body()`` once handled (also for a repeat or a ticket
that is not ours), 401 bad token, 400 a body that is not ours, 413 too large, 503 when the table
or Freshdesk failed (the claim is released; Freshdesk retries a failed webhook after 5, 30 and
60 minutes; the reply ledger makes sure nothing is posted twice).
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.errors import (
    BadRequest,
    NotConfigured,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    WebhookError,
)
from chalicelib.helpdesks.base import HelpdeskError, HelpdeskRejected
from chalicelib.helpdesks.freshdesk.adapter import conversation_tag, normalize_status
from chalicelib.http import json_object
from chalicelib.inbound.signatures import get_header
from chalicelib.outbound.agent_events import (
    APPROVAL_EVENT,
    COMMENT_EVENT,
    PRIVATE_TAG,
    REPEAT_OUTCOMES,
    STATUS_EVENT,
    AgentEvent,
    EventLog,
    decode_body,
    is_transient,
    resolve_now,
)
from chalicelib.outbound.agent_replies import REPLY_LOOKBACK
from chalicelib.outbound.approval import DECISION_TAGS, decision_of
from chalicelib.store import ConversationConflict, StoreUnavailable, UnstorableConversation

if TYPE_CHECKING:
    from chalicelib.models import SocialMessage
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

SOURCE = "freshdesk"
TOKEN_HEADER = "X-Socialdesk-Token"
EVENT_NAME = "freshdesk_ticket_update"
MAX_BODY_BYTES = 64 * 1024  # our body is a few hundred bytes of ids and names
BRIDGE_TAG = "socialdesk"
CONVERSATION_TAG_PREFIX = "sdc-"
REFERENCE_MARK = "[socialdesk:"  # every description and note the bridge writes carries it
# Conversation sources (Freshdesk API v2): 0 reply, 2 note; the others are channels' own.
SOURCE_REPLY, SOURCE_NOTE = 0, 2
AGENT_SOURCES = frozenset({SOURCE_REPLY, SOURCE_NOTE})
PRIORITIES = {1: "low", 2: "normal", 3: "high", 4: "urgent"}  # Freshdesk's 1 Low, 2 Medium, 3 High, 4 Urgent
MAX_AUTHOR_PAGES = 5  # by-author index pages read when looking for the requester's conversation
_TRIGGERED = re.compile(r"^\{\s*([a-z_]+)\s*:\s*(.*)\}$", re.DOTALL)
_STATUS_CHANGE = re.compile(r"from\s*:\s*([^,}]*)\s*,\s*to\s*:\s*([^,}]*)")


# --- the rule's body -------------------------------------------------------------------------


def event_body(conversation_field: str | None = None) -> str:
    """The *Advanced* JSON content of the automation rule's webhook (placeholders Freshdesk fills in).

    Only plain values go in: ``{{ticket.id}}`` (the one field we rely on), ``{{triggered_event}}``
    (``{note_type:public}``, ``{status:{from:2,to:4}}``...), ``{{ticket.status}}``,
    ``{{ticket.tags}}`` (comma separated), ``{{ticket.agent.email}}`` / ``.name`` (the assignee)
    and, with ``conversation_field`` (``cf_...``), the conversation key. No comment text: it is
    read from the API with its id (see the module docstring).
    """
    fields = [
        ("socialdesk_event", EVENT_NAME),
        ("ticket_id", "{{ticket.id}}"),
        ("triggered_event", "{{triggered_event}}"),
        ("status", "{{ticket.status}}"),
        ("tags", "{{ticket.tags}}"),
        ("agent_email", "{{ticket.agent.email}}"),
        ("agent_name", "{{ticket.agent.name}}"),
    ]
    if conversation_field:
        if not re.fullmatch(r"cf_[a-z0-9_]+", conversation_field):
            raise ValueError("conversation_field must be a custom ticket field name (cf_...)")
        fields.append(("conversation_key", "{{ticket." + conversation_field + "}}"))
    return "{" + ", ".join(f'"{name}": "{value}"' for name, value in fields) + "}"


def automation_rule(url: str, *, conversation_field: str | None = None) -> dict[str, Any]:
    """What to enter in Freshdesk (Admin -> Workflows -> Automations -> Ticket updates -> New rule)."""
    return {
        "name": "socialdesk: agent replies and status back to the customer",
        "performed_by": "Agent",
        "events": ["Reply is sent", "Note is added: Public", "Status is changed: from Any to Any"],
        "conditions": [f"Tags: is any of {BRIDGE_TAG}"],
        "action": _webhook_action(url, conversation_field),
    }


def approval_rule(url: str, *, conversation_field: str | None = None) -> dict[str, Any]:
    """The second rule: a lead's approval or withdrawal (a scenario adding its tag with a private note)."""
    return {
        "name": "socialdesk: a lead approved or withdrew a held public answer",
        "performed_by": "Agent",
        "events": ["Note is added: Private"],
        "conditions": [f"Tags: is any of {BRIDGE_TAG}", f"Tags: is any of {', '.join(DECISION_TAGS.values())}"],
        "action": _webhook_action(url, conversation_field),
    }


def _webhook_action(url: str, conversation_field: str | None) -> dict[str, Any]:
    """Both rules' action: the webhook with the shared token and ``event_body()``."""
    return {
        "type": "Trigger webhook",
        "request_type": "POST",
        "url": url,
        "requires_authentication": False,
        "custom_headers": {TOKEN_HEADER: "<the value of FRESHDESK_WEBHOOK_SECRET>"},
        "encoding": "JSON",
        "content": "Advanced",
        "body": event_body(conversation_field),
    }


# --- authenticity ----------------------------------------------------------------------------


def verify_token(headers: Mapping[str, str], secret: str) -> None:
    """Raise ``Unauthorized`` unless ``X-Socialdesk-Token`` is ``secret`` (compared in constant time)."""
    if not secret:
        raise NotConfigured("FRESHDESK_WEBHOOK_SECRET is not configured")
    received = (get_header(headers, TOKEN_HEADER) or "").strip()
    if not received:
        raise Unauthorized(f"missing {TOKEN_HEADER} header")
    if not hmac.compare_digest(received.encode(), secret.strip().encode()):
        raise Unauthorized(f"{TOKEN_HEADER} does not match")


# --- the notification ------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshdeskNotification:
    """What the rule's body says (only ``ticket_id`` is relied on; the rest is logged)."""

    ticket_id: str
    triggered_event: str | None = None
    status_word: str | None = None
    tags: tuple[str, ...] = ()
    agent_email: str | None = None
    agent_name: str | None = None
    conversation_key: str | None = None

    @property
    def event(self) -> tuple[str | None, str | None]:
        """``{note_type:public}`` -> ("note_type", "public"); ``{status:{from:2,to:4}}`` -> ("status", "4")."""
        return parse_triggered_event(self.triggered_event)


def _rendered(value: Any) -> str | None:
    """A placeholder's value, or None when empty or left unrendered (``{{...}}``)."""
    text = "" if value is None else str(value).strip()
    return None if not text or (text.startswith("{{") and text.endswith("}}")) else text


def parse_triggered_event(text: str | None) -> tuple[str | None, str | None]:
    """Freshdesk's ``{{triggered_event}}`` (not JSON): the event's name and its new value."""
    match = _TRIGGERED.match((text or "").strip())
    if not match:
        return None, None
    name, rest = match.group(1), match.group(2).strip()
    change = _STATUS_CHANGE.search(rest)
    if change:
        return name, change.group(2).strip().strip("{} ") or None
    return name, rest.strip("{} ") or None


def parse_notification(body: bytes) -> FreshdeskNotification:
    """Read the rule's body; ``BadRequest`` names what is wrong."""
    data = decode_body(body)
    kind = str(data.get("socialdesk_event") or "").strip()
    if kind != EVENT_NAME:
        raise BadRequest(f"socialdesk_event must be {EVENT_NAME!r}, not {kind!r}: is the rule's body event_body()?")
    ticket_id = _rendered(data.get("ticket_id")) or ""
    if not ticket_id.isdigit():
        raise BadRequest(f"ticket_id must be a Freshdesk ticket id ({{{{ticket.id}}}}), not {ticket_id!r}")
    raw_tags = data.get("tags")
    words = [str(t) for t in raw_tags] if isinstance(raw_tags, list) else str(_rendered(raw_tags) or "").split(",")
    return FreshdeskNotification(
        ticket_id=str(int(ticket_id)),
        triggered_event=_rendered(data.get("triggered_event")),
        status_word=_rendered(data.get("status")),
        tags=tuple(dict.fromkeys(w.strip().lower() for w in words if w.strip())),
        agent_email=_rendered(data.get("agent_email")),
        agent_name=_rendered(data.get("agent_name")),
        conversation_key=_rendered(data.get("conversation_key")),
    )


# --- reading Freshdesk -----------------------------------------------------------------------


class TicketReader(Protocol):
    """The reads the handler needs: ``FreshdeskHelpdesk``'s (fakes in tests)."""

    def ticket(self, ticket_id: str) -> dict[str, Any]: ...

    def conversations(self, ticket_id: str) -> list[dict[str, Any]]: ...

    def contact(self, contact_id: str) -> dict[str, Any]: ...


def parse_time(value: Any) -> datetime | None:
    """Freshdesk's ``2026-11-25T11:43:05Z`` as an aware datetime (None if absent or garbled)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def plain_text(conversation: Mapping[str, Any]) -> str:
    """The reply as the customer should read it: ``body_text``, else the HTML body as text."""
    text = conversation.get("body_text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    body = str(conversation.get("body") or "")
    body = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", body)
    return re.sub(r"\n{3,}", "\n\n", html.unescape(re.sub(r"<[^>]+>", "", body))).strip()


def is_agent_public_reply(conversation: Mapping[str, Any]) -> bool:
    """A public reply or note by an agent: not the customer's, not private, not the bridge's own."""
    if conversation.get("incoming") is not False or conversation.get("private") is not False:
        return False
    try:
        source = int(conversation.get("source", SOURCE_REPLY))
    except (TypeError, ValueError):
        return False
    if source not in AGENT_SOURCES or conversation.get("id") is None:
        return False
    body = f"{conversation.get('body') or ''}\n{conversation.get('body_text') or ''}"
    return REFERENCE_MARK not in body and REFERENCE_MARK not in html.unescape(body)


def replies_to_send(conversations: Iterable[Mapping[str, Any]], since: datetime) -> list[Mapping[str, Any]]:
    """Public agent replies created at or after ``since``, oldest first."""
    found = []
    for item in conversations:
        created = parse_time(item.get("created_at"))
        if created is not None and created >= since and is_agent_public_reply(item):
            found.append((created, int(item["id"]), item))
    return [item for _, _, item in sorted(found, key=lambda entry: (entry[0], entry[1]))]


# --- ticket -> conversation ------------------------------------------------------------------


def record_ticket_pointer(store: MessageStore, helpdesk: str, ticket_id: str, message: SocialMessage) -> bool:
    """Remember that ``ticket_id`` was opened for ``message``'s conversation (best effort: False
    when it could not be written; the events still find the conversation through the requester)."""
    try:
        store.put_ticket_pointer(helpdesk, str(ticket_id), message)
    except (StoreUnavailable, UnstorableConversation, ConversationConflict) as exc:
        logger.warning("ticket pointer not written", extra={"ticket_id": ticket_id, "reason": type(exc).__name__})
        return False
    return True


def read_ticket_pointer(store: MessageStore, helpdesk: str, ticket_id: str) -> str | None:
    """The conversation key ``record_ticket_pointer`` stored for the ticket, if any."""
    return store.ticket_pointer(helpdesk, str(ticket_id))


def ticket_tags(ticket: Mapping[str, Any]) -> tuple[str, ...]:
    tags = ticket.get("tags")
    return tuple(dict.fromkeys(str(t).strip().lower() for t in tags if str(t).strip())) if isinstance(tags, list) else ()


class ConversationFinder:
    """Which conversation a Freshdesk ticket belongs to (see the module docstring)."""

    def __init__(
        self, store: MessageStore, reader: TicketReader, *, conversation_field: str | None = None, helpdesk_name: str = SOURCE
    ) -> None:
        self.store = store
        self.reader = reader
        self.conversation_field = conversation_field
        self.helpdesk_name = helpdesk_name

    def find(self, ticket: Mapping[str, Any], hint: str | None = None) -> tuple[str | None, str]:
        """``(conversation key, how it was found)``; ``(None, why not)`` for a ticket that is not ours."""
        tags = ticket_tags(ticket)
        hashes = {t for t in tags if t.startswith(CONVERSATION_TAG_PREFIX)}
        if not hashes:
            return None, "no_conversation_tag"
        fields = json_object(ticket.get("custom_fields"))
        candidates = []
        if self.conversation_field:
            candidates.append(("custom_field", _rendered(fields.get(self.conversation_field))))
        candidates.append(("body", hint))
        for how, value in candidates:
            if value and conversation_tag(value) in hashes and self._exists(value):
                return value, how
            if value:
                logger.warning(
                    "conversation key of a Freshdesk ticket does not match its tag",
                    extra={"ticket_id": ticket.get("id"), "from": how},
                )
        pointed = read_ticket_pointer(self.store, self.helpdesk_name, str(ticket.get("id")))
        if pointed and conversation_tag(pointed) in hashes:
            return pointed, "pointer"
        found = self._by_requester(ticket, hashes)
        if found:
            return found, "requester"
        return None, "conversation_not_found"

    def _exists(self, key: str) -> bool:
        return self.store.get_conversation(key).version > 0

    def _by_requester(self, ticket: Mapping[str, Any], hashes: set[str]) -> str | None:
        requester = ticket.get("requester_id")
        if requester is None:
            return None
        try:
            contact = self.reader.contact(str(requester))
        except HelpdeskRejected:
            return None  # the contact was deleted or merged away
        platform, _, author_id = str(contact.get("unique_external_id") or "").partition(":")
        if not platform or not author_id:
            return None
        for key in self.store.author_conversations(platform, author_id, max_pages=MAX_AUTHOR_PAGES):
            if conversation_tag(key) in hashes:
                return key
        return None


# --- events ----------------------------------------------------------------------------------


def comment_event(
    ticket: Mapping[str, Any], conversation: Mapping[str, Any], key: str, notification: FreshdeskNotification | None = None
) -> AgentEvent:
    """A Freshdesk reply or public note as the ``AgentEvent`` the Zendesk path produces."""
    author_id = str(conversation.get("user_id")) if conversation.get("user_id") is not None else None
    assignee = ticket.get("responder_id")
    is_assignee = notification is not None and assignee is not None and str(assignee) == author_id
    # The ticket's status event, about this comment.
    return replace(
        status_event(ticket, key),
        kind=COMMENT_EVENT,
        updated_at=parse_time(conversation.get("created_at")),
        comment_id=str(conversation["id"]),
        text=plain_text(conversation),
        author_id=author_id,
        author_email=notification.agent_email if is_assignee and notification else None,
        author_name=notification.agent_name if is_assignee and notification else None,
    )


def status_event(ticket: Mapping[str, Any], key: str) -> AgentEvent:
    """The ticket's current status as a ``ticket_status`` ``AgentEvent``."""
    raw_status = str(ticket.get("status")) if ticket.get("status") is not None else None
    return AgentEvent(
        kind=STATUS_EVENT,
        ticket_id=str(ticket["id"]),
        conversation_key=key,
        status=normalize_status(ticket.get("status")) if raw_status else None,
        tags=ticket_tags(ticket),
        updated_at=parse_time(ticket.get("updated_at")),
        raw_status=raw_status,
        priority=PRIORITIES.get(ticket["priority"]) if isinstance(ticket.get("priority"), int) else None,
        ticket_type=str(ticket["type"]) if ticket.get("type") else None,
    )


# --- the route's handler ---------------------------------------------------------------------


@dataclass(frozen=True)
class FreshdeskEventResult:
    """What ``POST /helpdesk/freshdesk`` answers (always 200 once verified and handled)."""

    status: int
    ticket_id: str
    outcome: str
    replies: tuple[tuple[str, str], ...] = ()  # (event id, outcome) per agent reply considered
    ticket_status: str | None = None  # what recording the ticket's status did
    found_by: str | None = None  # how the conversation was found
    duplicate: bool = False

    def outcomes(self) -> dict[str, int]:
        """Counts for the metrics (``freshdesk_event_<outcome>``)."""
        counts: dict[str, int] = {}
        for _, outcome in self.replies:
            counts[outcome] = counts.get(outcome, 0) + 1
        if self.ticket_status:
            counts[self.ticket_status] = counts.get(self.ticket_status, 0) + 1
        if not counts:
            counts[self.outcome] = 1
        return counts

    def to_body(self) -> dict[str, Any]:
        return {
            "ok": True,
            "ticket_id": self.ticket_id,
            "outcome": self.outcome,
            "replies": [{"event_id": event_id, "outcome": outcome} for event_id, outcome in self.replies],
            "ticket_status": self.ticket_status,
            "found_by": self.found_by,
            "duplicate": self.duplicate,
        }


_REPEAT_OUTCOMES = REPEAT_OUTCOMES | {"duplicate"}


def _unavailable(what: str, exc: Exception) -> Unavailable:
    return Unavailable(f"could not {what} now ({type(exc).__name__}: {exc}); Freshdesk will retry")


def handle_freshdesk_event(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    events: EventLog,
    replies: Any,
    helpdesk: Any,
    store: MessageStore,
    conversation_field: str | None = None,
    now: datetime | Callable[[], datetime] | None = None,
    lookback: timedelta = REPLY_LOOKBACK,
    reader: TicketReader | None = None,
    problems: Any = None,
) -> FreshdeskEventResult:
    """``POST /helpdesk/freshdesk``: verify the token, read the ticket, send new agent replies, record the status.

    ``replies`` is an ``agent_replies.AgentReplies`` (anything with ``handle(event)``) built on
    the Freshdesk adapter ``helpdesk`` (its notes explain failures to the agent, its ``name``
    keys the reply ledger and the status check).
    ``conversation_field`` defaults to the adapter's. ``problems``: the crisis fan-out
    (``outbound/fanout.py`` ``ProblemAnswers``): an answer on a crisis's parent ticket goes to
    every member's customer (``helpdesks/freshdesk/crisis.py``). Raises ``WebhookError`` subclasses:
    ``Unauthorized`` (401), ``BadRequest`` (400), ``NotFound`` (404: ``HELPDESK`` is not
    freshdesk), ``PayloadTooLarge`` (413), ``NotConfigured`` / ``Unavailable`` (503: Freshdesk
    retries; claims are released).
    """
    moment = resolve_now(now)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    verify_token(headers, secret)
    notification = parse_notification(body)  # a malformed body is a 400 whatever the helpdesk
    configured = getattr(helpdesk, "name", SOURCE)
    if configured != SOURCE:
        raise NotFound(f"this deployment's helpdesk is {configured}, not Freshdesk (HELPDESK)")
    reader = reader or helpdesk
    field_name = conversation_field or getattr(helpdesk, "conversation_field", None)
    ticket_id = notification.ticket_id
    logger.info("freshdesk event", extra={"ticket_id": ticket_id, "triggered_event": notification.triggered_event})

    try:
        ticket = reader.ticket(ticket_id)
    except HelpdeskRejected as exc:  # deleted, or not a ticket of this account: nothing to do
        logger.warning("freshdesk ticket not readable; event ignored", extra={"ticket_id": ticket_id, "reason": str(exc)})
        return FreshdeskEventResult(200, ticket_id, "ticket_not_found")
    except HelpdeskError as exc:
        raise _unavailable("read the Freshdesk ticket", exc) from exc
    ticket = {**ticket, "id": ticket.get("id", ticket_id)}
    if problems is not None:
        from chalicelib.helpdesks.freshdesk.crisis import PARENT_TAG

        if PARENT_TAG in ticket_tags(ticket):
            return _answer_parent(ticket, reader, problems, notification, moment - lookback)

    finder = ConversationFinder(store, reader, conversation_field=field_name)
    try:
        key, found_by = finder.find(ticket, notification.conversation_key)
    except HelpdeskError as exc:
        raise _unavailable("read the ticket's requester", exc) from exc
    except Exception as exc:
        if is_transient(exc):
            raise _unavailable("find the ticket's conversation", exc) from exc
        raise
    if key is None:
        logger.info("freshdesk ticket is not a bridged conversation", extra={"ticket_id": ticket_id, "why": found_by})
        return FreshdeskEventResult(200, ticket_id, "ignored_not_bridged", found_by=found_by)

    try:
        conversations = reader.conversations(ticket_id)
    except HelpdeskError as exc:
        raise _unavailable("read the ticket's conversations", exc) from exc
    handled: list[tuple[str, str]] = []
    for conversation in replies_to_send(conversations, moment - lookback):
        event = comment_event(ticket, conversation, key, notification)
        handled.append((event.event_id, _handle_reply(event, events, replies, moment)))

    decision = decision_of(ticket_tags(ticket))
    if decision is not None:
        approval = replace(status_event(ticket, key), kind=APPROVAL_EVENT, decision=decision)
        handled.append((approval.event_id, _handle_approval(approval, replies, helpdesk, ticket)))

    status_outcome = _handle_status(status_event(ticket, key), replies)

    repeats = [outcome in _REPEAT_OUTCOMES for _, outcome in handled]
    fresh = [outcome for _, outcome in handled if outcome not in _REPEAT_OUTCOMES]
    outcome = fresh[-1] if fresh else ("duplicate" if handled else "no_new_reply")
    result = FreshdeskEventResult(
        200, ticket_id, outcome, tuple(handled), status_outcome, found_by, duplicate=bool(repeats) and all(repeats)
    )
    logger.info(
        "freshdesk event handled",
        extra={
            "ticket_id": ticket_id,
            "outcome": outcome,
            "found_by": found_by,
            "replies": len(handled),
            "ticket_status": status_outcome,
        },
    )
    return result


def _answer_parent(
    ticket: Mapping[str, Any], reader: TicketReader, problems: Any, notification: FreshdeskNotification, since: datetime
) -> FreshdeskEventResult:
    """The agents' public answers on a crisis's parent ticket, each sent once to every member's
    customer (``ProblemAnswers.answer_events``: a job per answer, the reply ledger per member)."""
    ticket_id = str(ticket["id"])
    try:
        conversations = reader.conversations(ticket_id)
    except HelpdeskError as exc:
        raise _unavailable("read the crisis parent's conversations", exc) from exc
    answers = [comment_event(ticket, c, "", notification) for c in replies_to_send(conversations, since)]
    try:
        outcome = problems.answer_events(ticket_id, answers, private=PRIVATE_TAG in ticket_tags(ticket))
    except Exception as exc:
        if is_transient(exc):
            raise _unavailable("answer the crisis's members", exc) from exc
        raise
    logger.info("freshdesk crisis parent answered", extra={"ticket_id": ticket_id, "answers": len(answers), "outcome": outcome})
    return FreshdeskEventResult(200, ticket_id, str(outcome), found_by="crisis_parent")


def _handle_reply(event: AgentEvent, events: EventLog, replies: Any, moment: datetime) -> str:
    """One agent reply through the claim, then ``replies.handle``; the claim is released on failure."""
    event_id = event.event_id
    if not events.claim(SOURCE, event_id, moment):
        logger.info("freshdesk reply repeated; nothing done", extra={"event_id": event_id})
        return "duplicate"
    try:
        result = replies.handle(event)
        outcome = str(getattr(result, "value", result))
    except Exception as exc:
        events.release(SOURCE, event_id)
        if isinstance(exc, WebhookError):
            raise
        if is_transient(exc):
            raise _unavailable("send the agent's reply", exc) from exc
        raise
    events.done(SOURCE, event_id, outcome, moment)
    logger.info("freshdesk reply handled", extra={"event_id": event_id, "outcome": outcome})
    return outcome


def _handle_approval(event: AgentEvent, replies: Any, helpdesk: Any, ticket: Mapping[str, Any]) -> str:
    """A lead's approval tag: the ticket's held answers are sent or dropped, then the tag is
    taken off, so a later answer needs its own approval. A tag that could not be taken off
    answers 503: Freshdesk's retry finds nothing held any more and tries again."""
    try:
        result = replies.handle(event)
        outcome = str(getattr(result, "value", result))
        assert event.decision is not None
        helpdesk.remove_tags(event.ticket_id, [DECISION_TAGS[event.decision]], current=ticket_tags(ticket))
    except Exception as exc:
        if isinstance(exc, WebhookError):
            raise
        if is_transient(exc) or isinstance(exc, HelpdeskError):
            raise _unavailable("act on the lead's approval tag", exc) from exc
        raise
    logger.info(
        "freshdesk approval handled", extra={"ticket_id": event.ticket_id, "decision": event.decision, "outcome": outcome}
    )
    return outcome


def _handle_status(event: AgentEvent, replies: Any) -> str:
    """The ticket's status onto its conversation, through ``replies.handle`` (``AgentReplies``
    records it when the ticket is the conversation's current one of this helpdesk)."""
    try:
        result = replies.handle(event)
    except Exception as exc:
        if isinstance(exc, WebhookError):
            raise
        if is_transient(exc):
            raise _unavailable("record the ticket's status", exc) from exc
        raise
    return str(getattr(result, "value", result))


def sample_body(ticket_id: int | str, *, triggered_event: str = "{note_type:public}", **values: str) -> bytes:
    """A body as the rule would send it (tests, ``local`` tools): ``event_body()`` filled in."""
    data = {
        "socialdesk_event": EVENT_NAME,
        "ticket_id": str(ticket_id),
        "triggered_event": triggered_event,
        "status": "Open",
        "tags": "socialdesk",
        "agent_email": "",
        "agent_name": "",
        **values,
    }
    return json.dumps(data).encode()
