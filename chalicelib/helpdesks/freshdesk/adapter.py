"""The Freshdesk adapter: the ``Helpdesk`` interface over Freshdesk's API v2.

Requests (``https://<domain>.freshdesk.com``, basic auth ``<api key>:X``):

* ``POST /api/v2/contacts``: one contact per social author, identified by
  ``unique_external_id`` = ``<platform>:<platform user id>`` (the same key the
  Zendesk adapter uses as ``external_id``). A ``409`` duplicate answer carries the
  existing contact's id (``errors[].additional_info.user_id``); without it the
  contact is looked up with ``GET /api/v2/contacts?unique_external_id=``;
* ``POST /api/v2/tickets``: a ticket whose description is the customer's message;
* ``GET /api/v2/tickets/{id}`` then ``POST /api/v2/tickets/{id}/notes``: a later
  message as an *incoming, public* note written by the requester (``incoming:
  true, private: false, user_id: <contact>``), which is how Freshdesk shows a
  customer's reply that did not come in by email;
* ``GET /api/v2/tickets/{id}/conversations``: whether a message already reached a
  ticket (after an ambiguous failure).

Identity. ``unique_external_id`` is the one lookup key, for every platform: it is
stable (a numeric platform id, not a handle that can be renamed), it can be
filtered on (``GET /api/v2/contacts?unique_external_id=``, used by many API clients;
the documented list filters are email, mobile, phone, company_id, state and
updated_since) and it is what makes a contact unique. ``twitter_id``, ``facebook_id``
and ``phone`` are *not* lookup keys: the contacts list has no ``twitter_id`` or
``facebook_id`` filter (only the search API, whose index lags by minutes), an X
handle can change, and a Messenger PSID is page-scoped, not a Facebook profile id.
They are still filled in where they mean what Freshdesk means by them, so agents
see the channel on the contact: ``twitter_id`` = the X handle, ``phone`` = ``+<wa_id>``
for WhatsApp. If Freshdesk answers that one of those already belongs to another
contact (created by Freshdesk's own X channel, or by an agent), that contact is
adopted (its id comes with the 409), never duplicated.

Conversation key. Freshdesk tickets have no ``external_id``. Each ticket carries the
tag ``sdc-<24 hex of sha256(conversation key)>`` (see ``conversation_tag``), which
the demo and agents can search for (``tag:'sdc-…'``). Conversation keys themselves
are too long and too free-form (slashes, colons) to be tags. When the account has
a custom text field for it, pass ``conversation_field="cf_…"`` and the readable key
is stored there as well.

Idempotency. Freshdesk has no ``Idempotency-Key``. Each ticket also carries the tag
``sd-<24 hex of sha256(idempotency key)>``. A create that failed *ambiguously*
(dropped connection, read timeout, 5xx) is remembered in memory, and the next
``open_ticket`` with the same key first looks for a ticket with that tag:

* within ``RECENT_LOOKUP_SECONDS`` of the failed attempt, through the requester's
  ticket list (``GET /api/v2/tickets?requester_id=…&order_by=created_at``), which is
  read from the database and so already holds a ticket created a second ago; the
  list may omit ``tags``, so the few tickets created since the attempt are read one
  by one (``GET /api/v2/tickets/{id}``);
* later (e.g. a redrive an hour after), through the search API
  (``GET /api/v2/search/tickets?query="tag:'sd-…'"``): one call, and by then the
  search index has caught up (Freshdesk: "updates may take a few minutes to get
  indexed").

Cost: nothing on the normal path; one list call plus usually one ticket read, or
one search call, only on a retry after an ambiguous failure. The memory is per
container; ``open_ticket(..., maybe_exists=True)`` forces the check (the sync can
pass its ``look_first`` flag so that a redrive in another container is covered too).
A 429 or a refused connection is not ambiguous: nothing was created, no check.

Message reference. Freshdesk notes have no metadata, and their HTML is sanitized
(an attribute-only marker could be stripped without notice, which would make every
check answer "not there" and double the message). So the reference is embedded
twice at the end of every description and note: as a ``data-socialdesk-ref``
attribute and as a small visible token ``[socialdesk:<platform>:<message id>]``.
``ticket_has_message`` accepts either, in ``body``/``description`` or in the plain
``body_text``/``description_text`` Freshdesk derives from it.

Closed tickets. Freshdesk accepts notes on closed tickets, so ``append_message`` and
``add_note`` read the ticket first and raise ``TicketClosed`` for status 5 (or a
deleted ticket); the sync then opens a follow-up ticket (its description says which
ticket it follows). A requester's note on a pending or resolved ticket reopens it
(``PUT status 2``), as Zendesk does by itself; the ticket is read anyway, so this
costs one call only when it changes something.

Failure mapping (``HelpdeskUnavailable.maybe_applied`` is about *this* request; a failure
without an answer is mapped as for every helpdesk, see ``helpdesks/outcomes.py``):

============================  ===========================================  ==============
what happened                 raised                                       maybe_applied
============================  ===========================================  ==============
429                           HelpdeskUnavailable(retry_after=Retry-After) False
503 with Retry-After          HelpdeskUnavailable(retry_after=...)         False
other 5xx                     HelpdeskUnavailable                          True for writes
ticket closed (status 5)      TicketClosed (append_message, add_note)      -
400/401/403/404/409, 3xx      HelpdeskRejected (Freshdesk's error words)   -
============================  ===========================================  ==============

Every response's ``X-RateLimit-Remaining`` / ``X-RateLimit-Total`` is kept on the
adapter (``rate_limit``) and logged when the budget runs low. The adapter never
sleeps: ``retry_after`` is handed to the sync, which owns backoff.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesks import outcomes
from chalicelib.helpdesks.base import (
    Helpdesk,
    HelpdeskRejected,
    HelpdeskUnavailable,
    RequesterGone,
    TicketClosed,
    TicketGone,
    TicketRef,
    TicketRouting,
)
from chalicelib.helpdesks.formatting import comment_body, message_reference, ticket_subject, ticket_tags
from chalicelib.helpdesks.scans import TicketScans
from chalicelib.http import Exchange, HttpResponse, JsonHttpClient, parse_retry_after
from chalicelib.models import Author, Platform, SocialMessage
from chalicelib.sync.requesters import EMAIL, PHONE, ContactIdentity, KnownCustomer, contact_identities

if TYPE_CHECKING:
    from chalicelib.helpdesks.freshdesk.crisis import FreshdeskCrisis
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

# Ticket status ids (custom statuses have higher ids and read as "open").
STATUS_OPEN, STATUS_PENDING, STATUS_RESOLVED, STATUS_CLOSED = 2, 3, 4, 5
# Tickets of one conversation looked at (newest first) when searching for a message.
MAX_TICKETS_SEARCHED = 5
STATUS_WORDS = {STATUS_OPEN: "open", STATUS_PENDING: "pending", STATUS_RESOLVED: "solved", STATUS_CLOSED: "closed"}
PRIORITY_LOW = 1
# Triage's priority words as Freshdesk's numbers (1 low, 2 medium, 3 high, 4 urgent).
PRIORITIES = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
# Ticket sources the create API accepts: 1 email, 2 portal, 3 phone, 7 chat,
# 9 feedback widget, 10 outbound email. 5 (Twitter) and 6 (Facebook) only appear on
# tickets Freshdesk's own social channels created; the platform is in the tags.
SOURCE_PORTAL, SOURCE_CHAT = 2, 7
REF_ATTRIBUTE = "data-socialdesk-ref"
CONTACT_NAME_MAX = 255
# Conversations are read 100 a page, at most this many pages.
MAX_CONVERSATION_PAGES = 50
CONVERSATIONS_PER_PAGE = 100
# How the "did my ambiguous create land?" check looks (see the module docstring).
RECENT_LOOKUP_SECONDS = 600.0
CLOCK_SKEW_SECONDS = 300.0
MAX_TICKETS_READ_IN_LOOKUP = 10
MAX_REMEMBERED_CREATES = 1024
LOW_RATE_LIMIT_FRACTION = 0.1


def api_key_auth_header(api_key: str) -> str:
    """Freshdesk API-key authentication: basic auth with the key as user name and ``X`` as password."""
    credentials = base64.b64encode(f"{api_key}:X".encode()).decode("ascii")
    return f"Basic {credentials}"


def _short_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def conversation_tag(conversation_key: str) -> str:
    """The tag that ties a ticket to its conversation (Freshdesk has no external_id)."""
    return f"sdc-{_short_hash(conversation_key)}"


def idempotency_tag(idempotency_key: str) -> str:
    """The tag that lets a repeated ``open_ticket`` find the ticket its first try created."""
    return f"sd-{_short_hash(idempotency_key)}"


def reference_token(reference: str) -> str:
    """The visible form of a message reference inside a description or note."""
    return f"[socialdesk:{reference}]"


def normalize_status(value: Any) -> str:
    """Freshdesk's numeric status as one of open, pending, solved, closed (custom ones: open)."""
    try:
        return STATUS_WORDS.get(int(value), "open")
    except (TypeError, ValueError):
        return "open"


def ticket_source(message: SocialMessage) -> int:
    """Chat for private conversations (DMs), portal for public posts, comments and reviews."""
    return SOURCE_CHAT if message.is_private else SOURCE_PORTAL


def requester_fields(platform: Platform, author: Author) -> dict[str, Any]:
    """The contact Freshdesk gets for a social author (``unique_external_id`` is the identity)."""
    contact: dict[str, Any] = {
        "name": (author.label or author.platform_id)[:CONTACT_NAME_MAX],
        "unique_external_id": f"{platform.value}:{author.platform_id}",
    }
    if platform is Platform.X and author.handle:
        contact["twitter_id"] = author.handle
    # The customer's own number and email (``sync/requesters.py``; given
    # ``KnownCustomer.creatable(author)``, none that another contact holds).
    contact.update({identity.kind: identity.value for identity in contact_identities(author)})
    return contact


def html_body(text: str, reference: str, *, preface: str | None = None) -> str:
    """Plain text as Freshdesk HTML, with the message reference embedded at the end."""
    blocks: list[str] = []
    if preface:
        blocks.append(f"<p><em>{html.escape(preface)}</em></p>")
    for paragraph in re.split(r"\n\s*\n", text.strip() or "(no text)"):
        lines = [_linkify(line) for line in paragraph.splitlines()]
        blocks.append(f"<p>{'<br>'.join(lines)}</p>")
    ref = html.escape(reference, quote=True)
    blocks.append(f'<p {REF_ATTRIBUTE}="{ref}"><small>{html.escape(reference_token(reference))}</small></p>')
    return "<div>" + "".join(blocks) + "</div>"


def _linkify(line: str) -> str:
    stripped = line.strip()
    if re.fullmatch(r"https?://\S+", stripped):
        url = html.escape(stripped, quote=True)
        return f'<a href="{url}">{url}</a>'
    return html.escape(line)


_TOKEN = re.compile(r"\[socialdesk:([^\]]+)\]")
_ATTRIBUTE = re.compile(REF_ATTRIBUTE + r'="([^"]*)"')
_TAG = re.compile(r"<[^>]+>")


def references_in(record: dict[str, Any], *fields: str) -> set[str]:
    """Every message reference ``fields`` of a ticket or conversation carry: in our HTML's
    attribute, or as the visible token (escaped or not, also where Freshdesk's sanitizing
    dropped the attribute or split the token with tags)."""
    found: set[str] = set()
    for name in fields:
        value = record.get(name)
        if not isinstance(value, str) or not value:
            continue
        found.update(html.unescape(match) for match in _ATTRIBUTE.findall(value))
        found.update(_TOKEN.findall(html.unescape(value)))
        found.update(_TOKEN.findall(html.unescape(_TAG.sub("", value))))
    return found


def has_reference(record: dict[str, Any], reference: str, *fields: str) -> bool:
    """True when one of ``fields`` of a ticket or conversation carries the reference."""
    return reference in references_in(record, *fields)


@dataclass
class _ConversationScan:
    """What one ticket was found to carry: the references of its description and of every
    conversation read, and the page the next look reads first (the last one that had any)."""

    references: set[str]
    next_page: int = 1


def _freshdesk_id(value: str, what: str) -> int:
    """Freshdesk ids are integers; the interface passes them around as strings."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise HelpdeskRejected(f"not a Freshdesk {what} id: {value!r}") from None


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _routing_fields(routing: TicketRouting, tags: list[str]) -> dict[str, Any]:
    """Triage's decision as ticket fields: priority, group, product (the rules' brand), tags,
    and the SLA due dates (``fr_due_by``: first reply; ``due_by``: resolution, never earlier)."""
    fields: dict[str, Any] = {"tags": list(dict.fromkeys([*tags, *routing.tags]))}
    if routing.priority in PRIORITIES:
        fields["priority"] = PRIORITIES[routing.priority]
    if routing.group_id:
        fields["group_id"] = _freshdesk_id(routing.group_id, "group")
    if routing.brand_id:
        fields["product_id"] = _freshdesk_id(routing.brand_id, "product")
    if routing.first_reply_due is not None and routing.due is not None:
        fields["fr_due_by"] = _utc_stamp(routing.first_reply_due)
        fields["due_by"] = _utc_stamp(max(routing.due, routing.first_reply_due))
    return fields


def _utc_stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FreshdeskHelpdesk(Helpdesk):
    """Freshdesk, authenticated with an agent's API key."""

    name = "freshdesk"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        http: JsonHttpClient | None = None,
        observer: Callable[[Exchange], None] | None = None,
        conversation_field: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if http is not None and observer is not None:
            raise ValueError("give the observer to the injected http client instead")
        if conversation_field is not None and not conversation_field.startswith("cf_"):
            raise ValueError("conversation_field must be a custom ticket field name (cf_...)")
        # The key only lives inside the HTTP client's Authorization header.
        self._http = http if http is not None else JsonHttpClient(base_url, api_key_auth_header(api_key), observer=observer)
        self.base_url = base_url.rstrip("/")
        self.conversation_field = conversation_field
        self._clock = clock
        # idempotency key -> wall-clock time of a create attempt that may have landed
        self._unsettled_creates: OrderedDict[str, float] = OrderedDict()
        self._conversation_scans: TicketScans[_ConversationScan] = TicketScans()
        self.rate_limit: tuple[int, int] | None = None  # (remaining, total) from the last response
        self._crisis: FreshdeskCrisis | None = None  # set by ``problem_tickets``

    def __repr__(self) -> str:
        return f"FreshdeskHelpdesk({self.base_url!r})"

    # --- Helpdesk ------------------------------------------------------------------

    def ensure_requester(self, platform: Platform, author: Author) -> str:
        """The contact for a social author: the one contact that already holds the author's
        phone or email (``sync/requesters.py``: ``GET /api/v2/contacts?phone=`` / ``mobile=`` /
        ``email=``, exact values), else the author's own.

        Created first otherwise (the sync only asks for authors it has not seen), with the
        identities nobody holds. A 409 names the existing contact; without an id in it, the
        contact is looked up by ``unique_external_id``. A conflict on ``twitter_id`` or
        ``email`` alone adopts the contact that owns it.
        """
        known = self.known_customer(author)
        if known.user_id is not None:
            return known.user_id
        contact = requester_fields(platform, known.creatable(author))
        response = self._call("POST", "/api/v2/contacts", json=contact, writes_message=False, conflict_ok=True)
        if response.status != 409:
            return self._contact_id(self._body(response, writes_message=False))
        existing = _duplicate_owner(response)
        if existing is not None:
            return existing
        found = self._find_contact(contact["unique_external_id"])
        if found is not None:
            return found
        # A duplicate on a secondary field without the owner's id: create without it.
        bare = {"name": contact["name"], "unique_external_id": contact["unique_external_id"]}
        if bare != contact:
            response = self._call("POST", "/api/v2/contacts", json=bare, writes_message=False, conflict_ok=True)
            if response.status != 409:
                return self._contact_id(self._body(response, writes_message=False))
            existing = _duplicate_owner(response) or self._find_contact(contact["unique_external_id"])
            if existing is not None:
                return existing
        raise HelpdeskRejected(
            f"Freshdesk reports a duplicate contact but none has {contact['unique_external_id']!r}{_error_text(response)}"
        )

    def open_ticket(
        self,
        message: SocialMessage,
        requester_id: str,
        *,
        idempotency_key: str,
        follow_up_of: str | None = None,
        uploads: Sequence[str] = (),
        problems: Sequence[str] | None = None,
        maybe_exists: bool = False,
        routing: TicketRouting | None = None,
        problem_id: str | None = None,
    ) -> TicketRef:
        """Create a ticket whose description is the customer's message.

        Safe to repeat with the same ``idempotency_key``: after an ambiguous failure
        (or with ``maybe_exists``) the ticket tagged with the key is looked for first.
        ``problem_id``: a crisis's parent ticket the new ticket is a member of (``crisis.py``).
        """
        requester = _freshdesk_id(requester_id, "contact")
        tag = idempotency_tag(idempotency_key)
        attempted_at = self._unsettled_creates.get(idempotency_key)
        if attempted_at is not None or maybe_exists:
            found = self._find_created_ticket(requester, tag, attempted_at)
            if found is not None:
                self._unsettled_creates.pop(idempotency_key, None)
                return found
        preface = None
        if follow_up_of is not None:
            preface = f"Follow-up to ticket #{_freshdesk_id(follow_up_of, 'ticket')}, which is closed."
        ticket: dict[str, Any] = {
            "requester_id": requester,
            "subject": ticket_subject(message),
            "description": html_body(comment_body(message), message_reference(message), preface=preface),
            "status": STATUS_OPEN,
            "priority": PRIORITY_LOW,
            "source": ticket_source(message),
            "tags": [*ticket_tags(message), conversation_tag(message.conversation_key), tag],
        }
        if self.conversation_field:
            ticket["custom_fields"] = {self.conversation_field: message.conversation_key}
        if routing is not None:
            ticket.update(_routing_fields(routing, ticket["tags"]))
        started = self._clock()
        try:
            ref = self._create_ticket(ticket, message, problem_id)
        except HelpdeskUnavailable as exc:
            if exc.maybe_applied:
                self._remember_unsettled(idempotency_key, attempted_at if attempted_at is not None else started)
            raise
        self._unsettled_creates.pop(idempotency_key, None)
        return ref

    def _create_ticket(self, ticket: dict[str, Any], message: SocialMessage, problem_id: str | None) -> TicketRef:
        """``POST /api/v2/tickets``; a crisis member's as the crisis's child where the account allows."""
        crisis = self._crisis if problem_id is not None else None
        if crisis is not None and problem_id is not None:
            ticket = crisis.member_fields(ticket, problem_id)
        try:
            response = self._call("POST", "/api/v2/tickets", json=ticket, writes_message=True)
        except HelpdeskRejected as exc:  # nothing was created: without parent_id, if that was refused
            if crisis is None or problem_id is None or "parent_id" not in ticket or not crisis.child_refused(exc, problem_id):
                raise
            ticket = {name: value for name, value in ticket.items() if name != "parent_id"}
            response = self._call("POST", "/api/v2/tickets", json=ticket, writes_message=True)
        ref = self._ticket_ref(self._body(response, writes_message=True), writes_message=True)
        if crisis is not None and problem_id is not None:
            crisis.member_opened(ref, message, problem_id, child="parent_id" in ticket)
        return ref

    def problem_tickets(self, store: MessageStore) -> FreshdeskCrisis:
        """A crisis's parent ticket and members (``helpdesks/freshdesk/crisis.py``)."""
        from chalicelib.helpdesks.freshdesk.crisis import FreshdeskCrisis

        self._crisis = FreshdeskCrisis(self, store)
        return self._crisis

    def append_message(
        self,
        ticket_id: str,
        message: SocialMessage,
        requester_id: str,
        *,
        uploads: Sequence[str] = (),
        problems: Sequence[str] | None = None,
        updated_stamp: str | None = None,
    ) -> TicketRef:
        """Add the message as an incoming public note by the requester (``uploads``,
        ``problems`` and ``updated_stamp`` are not passed: this adapter claims neither
        ``supports_uploads`` nor ``guards_stale_updates``).

        Raises ``TicketClosed`` when the ticket is closed (Freshdesk would take the
        note, but nobody works a closed ticket). Reopens a pending or resolved ticket.
        """
        number = _freshdesk_id(ticket_id, "ticket")
        requester = _freshdesk_id(requester_id, "contact")
        status = self._open_status(number)
        note = {
            "body": html_body(comment_body(message), message_reference(message)),
            "incoming": True,
            "private": False,
            "user_id": requester,
        }
        response = self._call(
            "POST",
            f"/api/v2/tickets/{number}/notes",
            json=note,
            writes_message=True,
            missing_means_gone=True,
            people_fields=("user_id",),
        )
        self._body(response, writes_message=True)
        if status in (STATUS_PENDING, STATUS_RESOLVED):
            status = self._reopen(number, status)
        return TicketRef(ticket_id=str(number), status=normalize_status(status))

    def add_note(self, ticket_id: str, message: SocialMessage, text: str, *, updated_stamp: str | None = None) -> TicketRef:
        """Add a private note by the API user. Raises ``TicketClosed`` like ``append_message``."""
        number = _freshdesk_id(ticket_id, "ticket")
        status = self._open_status(number)
        note = {"body": html_body(text, message_reference(message)), "private": True}
        response = self._call("POST", f"/api/v2/tickets/{number}/notes", json=note, writes_message=True, missing_means_gone=True)
        self._body(response, writes_message=True)
        return TicketRef(ticket_id=str(number), status=normalize_status(status))

    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        """True when the description or a conversation of the ticket carries the message's reference.

        Conversations come oldest first, a page at a time. What a look read is remembered per
        ticket (``helpdesks/scans.py``): the next look at it reads on from the last page that
        had conversations (it may have grown), so a redrive checking a viral thread's backlog
        reads each page about once. A look reads at most ``MAX_CONVERSATION_PAGES`` pages;
        past them it is HelpdeskUnavailable and the next look goes on where it stopped.
        ``TicketGone`` when the ticket was deleted."""
        number = _freshdesk_id(ticket_id, "ticket")
        reference = message_reference(message)
        scan = self._conversation_scans.get(number)
        if scan is None:
            scan = _ConversationScan(references_in(self._get_ticket(number), "description", "description_text"))
            if reference in scan.references:
                self._conversation_scans.keep(number, scan)
                return True
        pages = 0
        try:
            for page, items, more in self._conversation_pages(number, first=scan.next_page, missing_means_gone=True):
                pages += 1
                for item in items:
                    if isinstance(item, dict):
                        scan.references |= references_in(item, "body", "body_text")
                if items:
                    scan.next_page = page
                if reference in scan.references:
                    break
                if more and pages >= MAX_CONVERSATION_PAGES:
                    self._conversation_scans.keep(number, scan)
                    raise HelpdeskUnavailable(
                        f"Freshdesk ticket {number}: more than {MAX_CONVERSATION_PAGES} pages of conversations"
                        f" to check; the next look reads on from page {page}"
                    )
        except TicketGone:
            self._conversation_scans.forget(number)
            raise
        self._conversation_scans.keep(number, scan)
        return reference in scan.references

    def ticket_opened(self, ticket: TicketRef, message: SocialMessage, store: MessageStore) -> None:
        """``TICKET#freshdesk#<id>`` -> the conversation: the automation rule's webhooks find it
        in one read (Freshdesk tickets have no external id)."""
        from chalicelib.helpdesks.freshdesk.events import record_ticket_pointer

        record_ticket_pointer(store, self.name, ticket.ticket_id, message)

    def find_ticket_with_message(self, external_id: str, message: SocialMessage) -> TicketRef | None:
        """The newest of the conversation's tickets (its ``sdc-`` tag, through search) that
        already has ``message``: how a redrive, in any execution environment, confirms a
        creation whose answer was lost before making it again."""
        query = f"\"tag:'{conversation_tag(external_id)}'\""
        data = self._body(
            self._call("GET", "/api/v2/search/tickets", params={"query": query}, writes_message=False), writes_message=False
        )
        found = [t for t in data.get("results") or [] if isinstance(t, dict) and t.get("id") is not None]
        found.sort(key=lambda t: int(t["id"]), reverse=True)
        for ticket in found[:MAX_TICKETS_SEARCHED]:
            if self.ticket_has_message(str(ticket["id"]), message):
                return self._ticket_ref(ticket, writes_message=False)
        return None

    # --- reads for the agents' events (``events.TicketReader``) ----------------------

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """The ticket as Freshdesk returns it; ``TicketGone`` when it was deleted."""
        return self._get_ticket(_freshdesk_id(ticket_id, "ticket"))

    def conversations(self, ticket_id: str) -> list[dict[str, Any]]:
        """Every reply and note of the ticket, all pages."""
        return [item for item in self._conversations(_freshdesk_id(ticket_id, "ticket")) if isinstance(item, dict)]

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact as Freshdesk returns it."""
        number = _freshdesk_id(contact_id, "contact")
        return self._body(self._call("GET", f"/api/v2/contacts/{number}", writes_message=False), writes_message=False)

    def remove_tags(self, ticket_id: str, tags: Iterable[str], *, current: Iterable[str]) -> None:
        """Take ``tags`` off the ticket (a lead's approval tag, once acted on). Freshdesk's update
        replaces the whole list, so the ticket's ``current`` tags are sent without them."""
        gone = {t.lower() for t in tags}
        kept = [t for t in current if t.lower() not in gone]
        self._call("PUT", f"/api/v2/tickets/{_freshdesk_id(ticket_id, 'ticket')}", json={"tags": kept}, writes_message=False)

    # --- steps ---------------------------------------------------------------------

    def known_customer(self, author: Author) -> KnownCustomer:
        """The contact who already holds the author's phone or email (one or two lookups each)."""
        return KnownCustomer.of({identity: self._contacts_holding(identity) for identity in contact_identities(author)})

    def _contacts_holding(self, identity: ContactIdentity) -> set[str]:
        """The contacts whose phone or mobile (or email) is exactly ``identity``."""
        found: set[str] = set()
        for name in ("email",) if identity.kind == EMAIL else ("phone", "mobile"):
            response = self._call("GET", "/api/v2/contacts", params={name: identity.value}, writes_message=False)
            data = outcomes.read_json(response)
            for contact in data if isinstance(data, list) else []:
                # Strict, as in _find_contact: a server that ignored the filter must not make us adopt a stranger.
                if isinstance(contact, dict) and contact.get("id") is not None and not contact.get("deleted"):
                    if identity.held_in(EMAIL if name == "email" else PHONE, contact.get(name)):
                        found.add(str(contact["id"]))
        return found

    def _find_contact(self, unique_external_id: str) -> str | None:
        response = self._call("GET", "/api/v2/contacts", params={"unique_external_id": unique_external_id}, writes_message=False)
        data = outcomes.read_json(response)
        contacts = data if isinstance(data, list) else []
        for contact in contacts:
            if isinstance(contact, dict) and contact.get("id") is not None:
                # Strict: a server that ignored the filter must not make us adopt a stranger.
                if contact.get("unique_external_id") == unique_external_id:
                    return str(contact["id"])
        return None

    def _get_ticket(self, number: int) -> dict[str, Any]:
        response = self._call("GET", f"/api/v2/tickets/{number}", writes_message=False, missing_means_gone=True)
        return self._body(response, writes_message=False)

    def _open_status(self, number: int) -> int:
        """The ticket's status id; ``TicketClosed`` when it is closed or deleted."""
        ticket = self._get_ticket(number)
        if ticket.get("deleted") is True:
            raise TicketClosed(f"Freshdesk ticket {number} was deleted")
        try:
            status = int(str(ticket.get("status")))
        except (TypeError, ValueError):
            status = STATUS_OPEN
        if status == STATUS_CLOSED:
            raise TicketClosed(f"Freshdesk ticket {number} is closed")
        return status

    def _reopen(self, number: int, status: int) -> int:
        """Set a pending or resolved ticket back to open after the requester wrote.

        The message is already on the ticket, so a failure here must not fail the
        delivery (a retry would only look for the message and find it): it is logged
        and the status the ticket still has is reported.
        """
        try:
            response = self._call("PUT", f"/api/v2/tickets/{number}", json={"status": STATUS_OPEN}, writes_message=False)
            return int(self._body(response, writes_message=False).get("status", STATUS_OPEN))
        except (HelpdeskUnavailable, HelpdeskRejected, TypeError, ValueError) as exc:
            logger.warning("Freshdesk ticket %s could not be reopened after a customer note: %s", number, exc)
            return status

    def _remember_unsettled(self, idempotency_key: str, attempted_at: float) -> None:
        self._unsettled_creates[idempotency_key] = attempted_at
        self._unsettled_creates.move_to_end(idempotency_key)
        while len(self._unsettled_creates) > MAX_REMEMBERED_CREATES:
            self._unsettled_creates.popitem(last=False)

    def _find_created_ticket(self, requester: int, tag: str, attempted_at: float | None) -> TicketRef | None:
        """The ticket an earlier, ambiguous create with this tag made, if any."""
        recent = attempted_at is not None and self._clock() - attempted_at <= RECENT_LOOKUP_SECONDS
        if recent:
            assert attempted_at is not None
            return self._find_in_requester_tickets(requester, tag, attempted_at - CLOCK_SKEW_SECONDS)
        query = f"\"tag:'{tag}'\""
        data = self._body(
            self._call("GET", "/api/v2/search/tickets", params={"query": query}, writes_message=False), writes_message=False
        )
        for ticket in data.get("results") or []:
            if isinstance(ticket, dict) and ticket.get("id") is not None and tag in (ticket.get("tags") or [tag]):
                return self._ticket_ref(ticket, writes_message=False)
        return None

    def _find_in_requester_tickets(self, requester: int, tag: str, since: float) -> TicketRef | None:
        params = {"requester_id": requester, "order_by": "created_at", "order_type": "desc", "per_page": 30}
        listing = outcomes.read_json(self._call("GET", "/api/v2/tickets", params=params, writes_message=False))
        reads = 0
        for ticket in listing if isinstance(listing, list) else []:
            if not isinstance(ticket, dict) or ticket.get("id") is None:
                continue
            created = _parse_time(ticket.get("created_at"))
            if created is not None and created < since:
                break  # newest first: everything after this is older than the attempt
            tags = ticket.get("tags")
            if not isinstance(tags, list):  # the list may leave tags out: read the ticket
                if reads >= MAX_TICKETS_READ_IN_LOOKUP:
                    break
                reads += 1
                ticket = self._get_ticket(_freshdesk_id(ticket["id"], "ticket"))
                tags = ticket.get("tags") or []
            if tag in tags:
                return self._ticket_ref(ticket, writes_message=False)
        return None

    def _conversations(self, number: int) -> Iterator[Any]:
        """Every conversation (reply or note) of a ticket, page by page."""
        for page, items, more in self._conversation_pages(number):
            yield from items
            if more and page >= MAX_CONVERSATION_PAGES:
                raise HelpdeskRejected(f"ticket {number} has more than {MAX_CONVERSATION_PAGES} pages of conversations to check")

    def _conversation_pages(
        self, number: int, *, first: int = 1, missing_means_gone: bool = False
    ) -> Iterator[tuple[int, list[Any], bool]]:
        """``(page number, its conversations, whether another page follows)``, oldest first,
        from page ``first``: by the ``Link`` Freshdesk gives, else the next number while pages are full."""
        next_path: str | None = f"/api/v2/tickets/{number}/conversations?per_page={CONVERSATIONS_PER_PAGE}&page={first}"
        seen: set[str] = set()
        page = first
        while next_path is not None:
            seen.add(next_path)
            response = self._call("GET", next_path, writes_message=False, missing_means_gone=missing_means_gone)
            items = outcomes.read_json(response)
            items = items if isinstance(items, list) else []
            following = _next_link(response.header("link"))
            if following is None and len(items) >= CONVERSATIONS_PER_PAGE:
                following = f"/api/v2/tickets/{number}/conversations?per_page={CONVERSATIONS_PER_PAGE}&page={page + 1}"
            next_path = following if following not in seen else None
            yield page, items, next_path is not None
            page += 1

    # --- reading responses ---------------------------------------------------------

    def _body(self, response: HttpResponse, *, writes_message: bool) -> dict[str, Any]:
        return outcomes.json_object("Freshdesk", response, writes_message=writes_message)

    @staticmethod
    def _contact_id(data: dict[str, Any]) -> str:
        if data.get("id") is None:
            raise HelpdeskUnavailable("Freshdesk answered the contact create without an id")
        return str(data["id"])

    @staticmethod
    def _ticket_ref(ticket: dict[str, Any], *, writes_message: bool) -> TicketRef:
        if ticket.get("id") is None:
            raise HelpdeskUnavailable("Freshdesk answered without a ticket id", maybe_applied=writes_message)
        return TicketRef(ticket_id=str(ticket["id"]), status=normalize_status(ticket.get("status")))

    def _note_rate_limit(self, response: HttpResponse) -> None:
        try:
            remaining = int(response.header("x-ratelimit-remaining") or "")
            total = int(response.header("x-ratelimit-total") or "")
        except ValueError:
            return
        self.rate_limit = (remaining, total)
        if total > 0 and remaining <= total * LOW_RATE_LIMIT_FRACTION:
            logger.warning("Freshdesk API budget low: %d of %d calls left this minute", remaining, total)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        writes_message: bool,
        conflict_ok: bool = False,
        missing_means_gone: bool = False,
        people_fields: tuple[str, ...] = (),
    ) -> HttpResponse:
        """Send one request; return a 2xx response (or a 409 with ``conflict_ok``), or
        raise the helpdesk exception it means.

        ``writes_message``: the request puts a message on a ticket, so an ambiguous
        failure is reported as ``maybe_applied``. ``missing_means_gone``: a 404 means the
        ticket was deleted for good (``TicketGone``). ``people_fields``: a 400/422 naming
        one of these fields refuses the contact we sent (``RequesterGone``).
        """
        response = outcomes.send("Freshdesk", self._http, method, path, writes_message=writes_message, json=json, params=params)
        self._note_rate_limit(response)
        status = response.status
        if 200 <= status < 300 or (status == 409 and conflict_ok):
            return response
        if status == 404 and missing_means_gone:
            raise TicketGone(
                f"Freshdesk ticket not found (404), deleted? ({outcomes.describe(method, path)}){_error_text(response)}"
            )
        if status in (400, 422) and people_fields and _names_field(response, people_fields):
            raise RequesterGone(f"Freshdesk refused the contact ({outcomes.describe(method, path)}){_error_text(response)}")
        raise outcomes.status_error(
            "Freshdesk",
            outcomes.describe(method, path),
            status,
            detail=_error_text(response),
            retry_after=parse_retry_after(response.header("Retry-After")),
            writes_message=writes_message,
            hint=outcomes.status_hint(status, _HINTS, "FRESHDESK_URL"),
        )


# --- responses ---------------------------------------------------------------------------


def _names_field(response: HttpResponse, names: tuple[str, ...]) -> bool:
    """A validation error about one of ``names`` (``{"errors": [{"field": "user_id", ...}]}``)."""
    data = outcomes.read_json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    return isinstance(errors, list) and any(isinstance(e, dict) and e.get("field") in names for e in errors)


def _next_link(value: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header."""
    for part in (value or "").split(","):
        found = re.match(r"\s*<([^>]+)>\s*;(.*)", part)
        if found and re.search(r'rel="?next"?', found.group(2)):
            return found.group(1)
    return None


def _duplicate_owner(response: HttpResponse) -> str | None:
    """The existing contact's id from a 409 ``duplicate_value`` answer, if Freshdesk gave it."""
    data = outcomes.read_json(response)
    errors = data.get("errors") if isinstance(data, dict) else None
    for error in errors if isinstance(errors, list) else []:
        info = error.get("additional_info") if isinstance(error, dict) else None
        if isinstance(info, dict) and info.get("user_id") is not None:
            return str(info["user_id"])
    return None


_HINTS = {
    401: ": check FRESHDESK_API_KEY",
    403: ": the API key's agent lacks a permission",
    409: ": conflicting or duplicate value",
}


def _error_text(response: HttpResponse) -> str:
    """Freshdesk's own error words, short: ``description``, ``errors[]``, ``code``/``message``."""
    return outcomes.error_detail(response, _error_words)


def _error_words(data: dict[str, Any]) -> list[str]:
    parts = [str(data[key]) for key in ("description", "code", "message") if data.get(key)]
    errors = data.get("errors")
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            parts.append(" ".join(str(item[k]) for k in ("field", "message", "code") if item.get(k)))
    return parts
