"""The Zendesk Support adapter: the ``Helpdesk`` interface over the Ticketing API.

Requests (paths as in Zendesk's published OpenAPI document):

* ``POST /api/v2/users/create_or_update``: one end user per social author, found
  again by ``external_id`` = ``<platform>:<platform user id>``;
* ``POST /api/v2/tickets``: a ticket whose first comment is the customer's message,
  sent with an ``Idempotency-Key`` header;
* ``PUT /api/v2/tickets/{id}``: a later message as a new public comment;
* ``GET /api/v2/tickets/{id}/audits``: whether a message already reached a ticket;
* ``POST /api/v2/uploads?filename=...``: a customer's file (raw bytes, its own
  ``Content-Type``), answered with an upload ``token`` that the next comment lists in
  ``comment.uploads`` (tokens are valid for 60 minutes and used once);
* ``GET /api/v2/tickets?external_id=...``: a conversation's tickets, to find one that
  already has a message when its creation may have been applied.

Every write carries ``metadata`` with the message reference. Zendesk records a
ticket request's ``metadata`` on the audit it creates, under ``metadata.custom``
(the Ticket object documents it as "Write only. Metadata for the audit ... specified
in the ``custom`` property of the ``metadata`` object"; it is not listed in
TicketCreateInput/TicketUpdateInput, which allow additional properties). That is
how ``ticket_has_message`` recognizes our own comments after an ambiguous failure.

Failure mapping (``HelpdeskUnavailable.maybe_applied`` is about *this* request; a failure
without an answer is mapped as for every helpdesk, see ``helpdesks/outcomes.py``):

============================  ===========================================  ==============
what happened                 raised                                       maybe_applied
============================  ===========================================  ==============
429, 408, 409                 HelpdeskUnavailable(retry_after=Retry-After) False
503 with Retry-After          HelpdeskUnavailable(retry_after=...)         False
other 5xx (500, 502, 504...)  HelpdeskUnavailable                          True for writes
422 "closed prevents update"  TicketClosed (``append_message`` only)       -
400 IdempotentRequestError    IdempotencyConflict (``open_ticket``)         -
400/401/403/404/413/422, 3xx  HelpdeskRejected (Zendesk's error, no secret) -
============================  ===========================================  ==============

Why 5xx counts as "maybe applied": a 500 can be raised after the ticket update was
committed (e.g. by a later step of the request), and a 502/504 comes from a proxy
that gave up waiting while Zendesk may still have finished the work. Rejections
that happen *before* any work -- the rate limiter (429), load shedding or
maintenance announced with ``Retry-After`` (503), an update conflict (409) -- are
not. Reads never apply anything, and neither does the user upsert (repeating it is
harmless), so for those ``maybe_applied`` is always False.

A maybe-applied ``open_ticket`` is safe to resend as is: the ``Idempotency-Key``
makes Zendesk answer a repeat with the first request's ticket (response header
``x-idempotency-lookup: hit``) instead of creating another, as long as the body is
identical -- which it is, since it is a pure function of the message, the requester,
``follow_up_of`` and the upload tokens and notes (fixed for one delivery, see below) --
and the key is still retained by Zendesk (keys expire after about 2 hours: a resend
later, e.g. from the dead-letter redrive, is not protected by the key; the sync's
``find_ticket_with_message`` lookup covers it).

Attachments and the idempotency key: the ticket body includes the upload tokens, and
tokens are new on every upload. The sync therefore uploads a message's files once per
delivery and reuses the same tokens (and the same notes) for every retry of it, so a
resend is byte-for-byte the same request. A later *redrive* of the same message uploads
again and gets new tokens: within Zendesk's key retention the same key then comes with
a different body, and Zendesk answers 400 ``IdempotentRequestError``, raised as
``IdempotencyConflict``. That means the earlier request with this key reached Zendesk:
the sync looks for the conversation's ticket that has the message
(``find_ticket_with_message``, by ``external_id`` and audit metadata) before creating
anything, and a redrive does that lookup first anyway.

A maybe-applied ``append_message`` is *not* idempotent on Zendesk's side: the sync
checks ``ticket_has_message`` before repeating it (also across containers, when a
parked message is redriven), so the adapter keeps no memory of its own.

The adapter never sleeps: ``retry_after`` is handed to the sync, which owns backoff.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from chalicelib.helpdesks import outcomes
from chalicelib.helpdesks.base import (
    BulkTicketWriter,
    Helpdesk,
    HelpdeskError,
    HelpdeskRejected,
    HelpdeskUnavailable,
    IdempotencyConflict,
    RequesterGone,
    StaleTicket,
    TicketClosed,
    TicketGone,
    TicketRef,
    TicketRouting,
)
from chalicelib.helpdesks.formatting import comment_body, message_reference, ticket_subject, ticket_tags
from chalicelib.helpdesks.scans import TicketScans
from chalicelib.http import (
    DEFAULT_TIMEOUT,
    Exchange,
    HttpResponse,
    JsonHttpClient,
    json_list,
    json_object,
    parse_retry_after,
)
from chalicelib.models import Author, Platform, SocialMessage
from chalicelib.sync.requesters import (
    AGENT_PREFIX,
    EMAIL,
    PHONE,
    ContactIdentity,
    KnownCustomer,
    contact_identities,
    phone_digits,
    social_identity,
)

if TYPE_CHECKING:
    from chalicelib.sync.attachments import FileToAttach

logger = logging.getLogger(__name__)

METADATA_KEY = "socialdesk_message"
TICKET_STATUSES = frozenset({"new", "open", "pending", "hold", "solved", "closed"})
_STATUS_ALIASES = {"on-hold": "hold", "on_hold": "hold", "onhold": "hold"}
USER_NAME_MAX = 255
# Tickets of one conversation looked at (newest first) when searching for a message.
MAX_TICKETS_SEARCHED = 5


def basic_auth_header(email_address: str, api_token: str) -> str:
    """Zendesk API-token authentication: basic auth as ``{email}/token:{token}``."""
    credentials = base64.b64encode(f"{email_address}/token:{api_token}".encode()).decode("ascii")
    return f"Basic {credentials}"


def normalize_status(value: Any) -> str:
    """Zendesk's status word as one of new, open, pending, hold, solved, closed.

    With custom ticket statuses, ``status`` is still the status category. Anything
    unknown reads as ``open``: the sync then tries a comment, and a ticket that turns
    out to be closed answers with a 422 that becomes ``TicketClosed``.
    """
    word = str(value or "").strip().lower()
    word = _STATUS_ALIASES.get(word, word)
    return word if word in TICKET_STATUSES else "open"


def routed(ticket: dict[str, Any], routing: TicketRouting | None) -> dict[str, Any]:
    """A new ticket's fields with triage's decision (single or bulk create)."""
    return ticket if routing is None else {**ticket, **_routing_fields(routing, ticket["tags"])}


def _routing_fields(routing: TicketRouting, tags: list[str]) -> dict[str, Any]:
    """Triage's decision as ticket fields: priority, group, brand, and its tags (the SLA tag
    that the account's SLA policies match on) after ours. Due dates are Zendesk's SLA policies' job."""
    fields: dict[str, Any] = {"tags": list(dict.fromkeys([*tags, *routing.tags]))}
    if routing.priority:
        fields["priority"] = routing.priority
    if routing.group_id:
        fields["group_id"] = _zendesk_id(routing.group_id, "group")
    if routing.brand_id:
        fields["brand_id"] = _zendesk_id(routing.brand_id, "brand")
    return fields


def _zendesk_id(value: str, what: str) -> int:
    """Zendesk ids are integers; the interface passes them around as strings."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise HelpdeskRejected(f"not a Zendesk {what} id: {value!r}") from None


# A ticket's comments are read this far back at most (100 a page, newest first).
MAX_COMMENT_PAGES = 10
# Looking for one message: comments are read back this far (newest first) at most, and
# down to this long before the message's own time (platform and Zendesk clocks differ).
MAX_LOOKUP_PAGES = 100
MAX_IDENTITY_CANDIDATES = 5  # users a phone/email search may name; more means a widely shared number
# Identities ORed in one users search (bulk lookups, docs/sync.md): a hundred of them, in a
# query of at most this many characters (ours: Zendesk documents no limit; URLs have one).
SEARCH_TERMS_PER_QUERY = 100
SEARCH_QUERY_MAX_CHARS = 2000
MAX_SEARCH_PAGES = 5  # of 100 users
IDENTITY_KINDS = {"email": EMAIL, "phone_number": PHONE}  # Zendesk's identity types of contact identities
COMMENT_CLOCK_SKEW = timedelta(hours=1)
# A later look at a ticket rereads its comments down to this long before the newest one it
# saw: Zendesk stamps comments to the second and a list may show a write a moment late.
COMMENT_LIST_LAG = timedelta(seconds=5)


@dataclass
class _CommentScan:
    """What one ticket's comments were found to carry: the message references of every
    comment from ``back_to`` up to the newest one seen (written at ``newest``)."""

    references: set[str]
    back_to: datetime
    newest: datetime


@dataclass(frozen=True)
class TicketComment:
    """One comment of a ticket, as the agent-reply path reads it (``ticket_comments``)."""

    comment_id: str
    author_id: str
    public: bool
    text: str  # the comment as plain text (``plain_body``, else ``body``)
    created_at: datetime | None
    channel: str  # ``via.channel``: web, mobile, email, api (written through the API), rule (a trigger)...
    author_role: str | None = None  # end-user, agent, admin; None when the author could not be read
    author_email: str | None = None
    author_name: str | None = None


@dataclass(frozen=True)
class TicketComments:
    """A ticket's tags and requester, and its comments, oldest first."""

    tags: tuple[str, ...]
    requester_id: str | None
    comments: list[TicketComment]
    priority: str | None = None  # low, normal, high, urgent; None when not set
    ticket_type: str | None = None  # question, incident, problem, task; None when not set
    problem_id: str | None = None  # an incident's problem ticket


def _comment_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class ZendeskApi:
    """One Zendesk account's API, called as one agent (email and API token): the base of
    the ticket adapter and of the admin setup, which differ only in what they call."""

    http_timeout: ClassVar[tuple[float, float]] = DEFAULT_TIMEOUT  # of the default client

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        *,
        http: JsonHttpClient | None = None,
        observer: Callable[[Exchange], None] | None = None,
    ) -> None:
        if http is not None and observer is not None:
            raise ValueError("give the observer to the injected http client instead")
        if http is None:
            # The token only lives inside the HTTP client's Authorization header.
            http = JsonHttpClient(base_url, basic_auth_header(email, api_token), timeout=self.http_timeout, observer=observer)
        self._http = http
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"


class ZendeskHelpdesk(ZendeskApi, Helpdesk):
    """Zendesk Support, authenticated with an agent's email and API token."""

    name = "zendesk"
    supports_uploads = True
    idempotent_creates = True  # Idempotency-Key on POST /api/v2/tickets
    guards_stale_updates = True  # safe_update + updated_stamp on PUT /api/v2/tickets/{id}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._comment_scans: TicketScans[_CommentScan] = TicketScans()

    # --- Helpdesk ------------------------------------------------------------------

    def ensure_requester(self, platform: Platform, author: Author) -> str:
        """The end user for a social author: the one end user who already holds the author's
        phone or email (``sync/requesters.py``), else the author's own, created (or found
        again) by external id with the identities nobody holds. An X handle is added as a
        ``twitter`` identity.

        ``role`` is deliberately not sent: Zendesk makes new users end users by
        default, and an upsert must never change the role of a user that already
        exists. An email goes with ``skip_verify_email``: no verification email.
        """
        known = self.known_customer(author)
        user_id = known.user_id
        if user_id is None:
            user = requester_fields(platform, known.creatable(author))
            response = self._call("POST", "/api/v2/users/create_or_update", json={"user": user}, writes_message=False)
            found = self._body(response, writes_message=False).get("user") or {}
            if not isinstance(found, dict) or found.get("id") is None:
                raise HelpdeskUnavailable("Zendesk answered the user upsert without a user id")
            user_id = str(found["id"])
        else:
            for identity in known.unclaimed:  # what we learned about a known customer
                self._add_identity(user_id, "email" if identity.kind == EMAIL else "phone_number", identity.value)
        social = social_identity(platform, author)
        if social is not None:
            self._add_identity(user_id, *social)
        return user_id

    def known_customer(self, author: Author) -> KnownCustomer:
        """The end user who already holds the author's phone or email (one search per identity)."""
        holders: dict[ContactIdentity, set[str]] = {}
        for identity in contact_identities(author):
            holders.update(self._holders_found([identity]))
        return KnownCustomer.of(holders)

    def identity_holders(self, identities: Sequence[ContactIdentity]) -> dict[ContactIdentity, set[str]]:
        """``KnowsCustomersInBulk``: many identities in one search per hundred of a kind (Zendesk
        ORs repeated ``phone:`` terms, ANDs different keywords: emails and phones are asked
        apart). A search that fails leaves its identities out."""
        found: dict[ContactIdentity, set[str]] = {}
        for kind in (EMAIL, PHONE):
            for chunk in _search_chunks([identity for identity in identities if identity.kind == kind]):
                try:
                    found.update(self._holders_found(chunk))
                except HelpdeskError as exc:
                    logger.warning("identity search failed", extra={"reason": type(exc).__name__, "identities": len(chunk)})
        return found

    def _holders_found(self, identities: Sequence[ContactIdentity]) -> dict[ContactIdentity, set[str]]:
        """The users whose identities include exactly each of ``identities`` (of one kind), from one
        search (search is partial, so each candidate is checked). An agent holding one is named
        ``agent:<id>`` (``AGENT_PREFIX``): never a requester, but it keeps the identity from being
        handed to anyone else."""
        holders: dict[ContactIdentity, set[str]] = {identity: set() for identity in identities}
        for user in self._users_searched(" ".join(_search_term(identity) for identity in identities), len(identities)):
            if not isinstance(user, dict) or user.get("id") is None or user.get("active") is False:
                continue
            held = {i for i in identities if i.held_in(EMAIL, user.get("email")) or i.held_in(PHONE, user.get("phone"))}
            # A secondary email or number: the user's identities say. With several identities
            # searched at once, a user found by one may hold another too, so they are always read.
            if len(identities) > 1 or not held:
                path = f"/api/v2/users/{_zendesk_id(str(user['id']), 'user')}/identities"
                listed = json_list(
                    self._body(self._call("GET", path, writes_message=False), writes_message=False).get("identities")
                )
                held |= {
                    identity
                    for identity in identities
                    for i in listed
                    if isinstance(i, dict) and identity.held_in(IDENTITY_KINDS.get(str(i.get("type")), ""), i.get("value"))
                }
            name = str(user["id"]) if user.get("role", "end-user") == "end-user" else f"{AGENT_PREFIX}{user['id']}"
            for identity in held:
                holders[identity].add(name)
        return holders

    def _users_searched(self, query: str, terms: int) -> list[Any]:
        """The users a ``users/search`` query finds. One term: the first ``MAX_IDENTITY_CANDIDATES``
        (more means a widely shared number, never adopted anyway). Several: every page, up to
        ``MAX_SEARCH_PAGES`` (a holder left unread could make a shared number look like one
        person's, so a longer answer fails the lookup instead)."""
        users: list[Any] = []
        for page in range(1, MAX_SEARCH_PAGES + 1):
            params = {"query": query} if page == 1 else {"query": query, "page": page}
            response = self._call("GET", "/api/v2/users/search", params=params, writes_message=False)
            body = self._body(response, writes_message=False)
            users.extend(json_list(body.get("users")))
            if terms == 1:
                return users[:MAX_IDENTITY_CANDIDATES]
            if not body.get("next_page"):
                return users
        raise HelpdeskUnavailable(f"a users search found more than {MAX_SEARCH_PAGES} pages of users")

    def _add_identity(self, user_id: str, kind: str, value: str) -> None:
        """Give a user one more identity; a refusal (another user holds it) is logged, not raised:
        the requester is right either way."""
        identity = {"type": kind, "value": value}
        try:
            self._call(
                "POST",
                f"/api/v2/users/{_zendesk_id(user_id, 'user')}/identities",
                json={"identity": identity, "skip_verify_email": True},
                writes_message=False,
            )
        except HelpdeskError as exc:
            logger.warning("identity not added to the requester", extra={"kind": kind, "reason": str(exc)})

    def open_ticket(
        self,
        message: SocialMessage,
        requester_id: str,
        *,
        idempotency_key: str,
        follow_up_of: str | None = None,
        uploads: Sequence[str] = (),
        problems: Sequence[str] | None = None,
        problem_id: str | None = None,
        routing: TicketRouting | None = None,
    ) -> TicketRef:
        """Create a ticket whose first, public comment is the customer's message.

        The requester is also the submitter and the comment's author, so the ticket
        reads as written by the customer. ``follow_up_of`` links a closed ticket
        (Zendesk ignores it for tickets that are not closed). ``uploads`` are attached
        to the comment. Safe to repeat with the same ``idempotency_key`` and the same
        arguments; the same key with other uploads raises ``IdempotencyConflict``. An incident
        whose problem Zendesk refuses (an operator deleted or closed it) opens unlinked: a
        crisis's bookkeeping never keeps a customer's ticket from opening.
        """
        ticket = new_ticket_fields(message, _zendesk_id(requester_id, "user"), uploads, problems)
        if follow_up_of is not None:
            ticket["via_followup_source_id"] = _zendesk_id(follow_up_of, "ticket")
        ticket = routed(ticket, routing)
        try:
            response = self._create(as_incident(ticket, problem_id), idempotency_key)
        except ProblemRefused:
            logger.warning("problem ticket refused; the incident opens unlinked", extra={"problem_id": problem_id})
            # Another body needs another key (Zendesk refuses a key reused with a new body); the
            # refused request created nothing, and a retry of this one reuses this key.
            response = self._create(ticket, f"{idempotency_key}-unlinked")
        return self._ticket_ref(response, writes_message=True)

    def _create(self, ticket: dict[str, Any], idempotency_key: str) -> HttpResponse:
        return self._call(
            "POST",
            "/api/v2/tickets",
            json={"ticket": ticket},
            headers={"Idempotency-Key": idempotency_key},
            writes_message=True,
            idempotent=True,
            people_fields=("requester", "requester_id", "submitter", "submitter_id", "author_id"),
            problem_field="problem_id" in ticket,
        )

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
        """Add the message as a public comment authored by the requester, with ``uploads``.

        With ``updated_stamp``, a safe update: Zendesk answers 409 (``StaleTicket``) if the
        ticket's ``updated_at`` is no longer that stamp. Raises ``TicketClosed`` on "Status:
        closed prevents ticket update", ``TicketGone`` on 404 (deleted), ``RequesterGone``
        when Zendesk refuses the author (a deleted or merged user).
        """
        ticket = {
            "comment": _comment(message, _zendesk_id(requester_id, "user"), uploads, problems),
            "metadata": {METADATA_KEY: message_reference(message)},
        }
        return self._update(ticket_id, ticket, updated_stamp)

    def add_note(self, ticket_id: str, message: SocialMessage, text: str, *, updated_stamp: str | None = None) -> TicketRef:
        """Add an internal note by the API user (Zendesk lets only agents write private comments)."""
        ticket = {"comment": {"body": text, "public": False}, "metadata": {METADATA_KEY: message_reference(message)}}
        return self._update(ticket_id, ticket, updated_stamp)

    def _update(self, ticket_id: str, ticket: dict[str, Any], updated_stamp: str | None) -> TicketRef:
        """``PUT /api/v2/tickets/{id}``, a safe update when ``updated_stamp`` is given."""
        if updated_stamp:
            ticket = {**ticket, "safe_update": True, "updated_stamp": updated_stamp}
        response = self._call(
            "PUT",
            f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}",
            json={"ticket": ticket},
            writes_message=True,
            closed_means_ticket_closed=True,
            missing_means_gone=True,
            people_fields=("author_id", "author", "requester", "requester_id", "submitter", "submitter_id"),
            guarded=bool(updated_stamp),
        )
        return self._ticket_ref(response, writes_message=True)

    # --- problems and incidents (a crisis: chalicelib/crisis/tickets.py) ---------------------

    def open_problem(
        self, external_id: str, subject: str, description: str, tags: Sequence[str], *, look_first: bool = True
    ) -> TicketRef:
        """The problem ticket with this ``external_id``, created (by the API user, an internal
        first comment) unless it exists. Concurrent callers may both create one: the caller
        that records its ticket first wins (``attach_ticket``), so this looks before creating
        (unless ``look_first`` is False: the caller just created the crisis, so no ticket can
        exist yet) and the key makes a retry of the same body return the same ticket."""
        found = self.find_ticket(external_id) if look_first else None
        if found is not None:
            return found
        ticket = {
            "subject": subject[:150],
            "comment": {"body": description, "public": False},
            "type": "problem",
            "external_id": external_id,
            "tags": list(tags),
        }
        key = "socialdesk-" + hashlib.sha256(f"{external_id}\n{description}".encode()).hexdigest()[:48]
        try:
            response = self._call(
                "POST",
                "/api/v2/tickets",
                json={"ticket": ticket},
                headers={"Idempotency-Key": key},
                writes_message=True,
                idempotent=True,
            )
        except IdempotencyConflict:
            found = self.find_ticket(external_id)
            if found is None:
                raise
            return found
        return self._ticket_ref(response, writes_message=True)

    def find_ticket(self, external_id: str) -> TicketRef | None:
        """The oldest ticket with this ``external_id`` (``GET /api/v2/tickets?external_id=``), if any."""
        response = self._call("GET", "/api/v2/tickets", params={"external_id": external_id}, writes_message=False)
        tickets = [t for t in self._body(response, writes_message=False).get("tickets") or [] if isinstance(t, dict)]
        tickets = [t for t in tickets if isinstance(t.get("id"), int)]
        if not tickets:
            return None
        first = min(tickets, key=lambda t: t["id"])
        return TicketRef(ticket_id=str(first["id"]), status=normalize_status(first.get("status")))

    def set_ticket_type(self, ticket_id: str, ticket_type: str, problem_id: str | None = None) -> TicketRef:
        """``PUT /api/v2/tickets/{id}`` with ``type`` (and ``problem_id`` for an incident): no
        comment, so repeating it changes nothing. ``TicketClosed``/``TicketGone`` as for comments."""
        ticket: dict[str, Any] = {"type": ticket_type}
        if problem_id is not None:
            ticket["problem_id"] = _zendesk_id(problem_id, "ticket")
        response = self._call(
            "PUT",
            f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}",
            json={"ticket": ticket},
            writes_message=False,
            closed_means_ticket_closed=True,
            missing_means_gone=True,
        )
        return self._ticket_ref(response, writes_message=False)

    def ticket_details(self, ticket_id: str) -> dict[str, Any]:
        """The ticket as Zendesk shows it (``GET /api/v2/tickets/{id}``): type, problem_id, tags,
        external_id... ``TicketGone`` when it was deleted."""
        response = self._call(
            "GET", f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}", writes_message=False, missing_means_gone=True
        )
        ticket = self._body(response, writes_message=False).get("ticket")
        return ticket if isinstance(ticket, dict) else {}

    def incidents(self, problem_id: str) -> Iterator[dict[str, Any]]:
        """The problem's incidents (``GET /api/v2/tickets/{id}/incidents``, cursor pages of 100)."""
        path: str | None = f"/api/v2/tickets/{_zendesk_id(problem_id, 'ticket')}/incidents"
        params: dict[str, Any] | None = {"page[size]": 100}
        seen: set[str] = set()
        while path is not None and path not in seen:
            seen.add(path)
            data = self._body(
                self._call("GET", path, params=params, writes_message=False, missing_means_gone=True), writes_message=False
            )
            yield from (t for t in data.get("tickets") or [] if isinstance(t, dict) and t.get("id") is not None)
            path, params = self._next_page(data), None

    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        """True when one of the ticket's comments was written for ``message``.

        Reads the comments newest first (the one looked for is recent: a write whose answer
        was lost, or an attempt just before a crash) and stops at comments older than the
        message itself, so a ticket with ten thousand comments costs a page, not a hundred.
        What a look found is remembered per ticket: the next look at it reads only the
        comments written since (``helpdesks/scans.py``). A comment is recognized by the reference
        our write put in its audit's metadata, which Zendesk shows on the comment
        (``metadata.custom``); where a comment does not show it, its audit is read
        (``GET /api/v2/tickets/{id}/audits/{audit_id}``). ``TicketGone`` when the ticket was deleted."""
        reference = message_reference(message)
        oldest_possible = _utc(message.created_at) - COMMENT_CLOCK_SKEW
        number = _zendesk_id(ticket_id, "ticket")
        known = self._comment_scans.get(number)
        if known is not None and not known.back_to <= oldest_possible < known.newest - COMMENT_LIST_LAG:
            # Older than what was read: read again, further back. Newer than all of it: what
            # was written since may be long, and only the comments after the message count.
            known = None
        down_to = oldest_possible if known is None else known.newest - COMMENT_LIST_LAG
        found: set[str] = set()
        newest: datetime | None = None
        try:
            for carried, created in self._comment_references(ticket_id, number, down_to):
                if newest is None:
                    newest = created
                if carried == reference:
                    return True
                if carried is not None:
                    found.add(carried)
        except TicketGone:
            self._comment_scans.forget(number)
            raise
        if known is None:
            known = _CommentScan(found, back_to=oldest_possible, newest=newest or oldest_possible)
        else:
            known.references |= found
            known.newest = max(known.newest, newest or known.newest)
        self._comment_scans.keep(number, known)
        return reference in known.references

    def _comment_references(self, ticket_id: str, number: int, down_to: datetime) -> Iterator[tuple[str | None, datetime | None]]:
        """Each comment's message reference (None when it carries none) and time, newest first,
        down to the first comment older than ``down_to``; HelpdeskUnavailable past
        ``MAX_LOOKUP_PAGES`` pages (we cannot tell)."""
        pages = 0
        for comments, _ in self._comment_pages(number, max_pages=MAX_LOOKUP_PAGES + 1):
            pages += 1
            if pages > MAX_LOOKUP_PAGES:  # still newer than the message: we cannot tell
                raise HelpdeskUnavailable(f"ticket {ticket_id}: more than {MAX_LOOKUP_PAGES} pages of newer comments to check")
            for comment in comments:
                metadata = json_object(comment.get("metadata"))
                if "custom" not in metadata and METADATA_KEY not in metadata and comment.get("audit_id") is not None:
                    metadata = self._audit_metadata(number, comment["audit_id"])
                created = _comment_time(comment.get("created_at"))
                yield _reference_in(metadata), created
                if created is not None and created < down_to:
                    return

    def _audit_metadata(self, number: int, audit_id: Any) -> dict[str, Any]:
        path = f"/api/v2/tickets/{number}/audits/{_zendesk_id(str(audit_id), 'audit')}"
        audit = (
            self._body(self._call("GET", path, writes_message=False, missing_means_gone=True), writes_message=False).get("audit")
            or {}
        )
        metadata = audit.get("metadata") if isinstance(audit, dict) else None
        return metadata if isinstance(metadata, dict) else {}

    def _comment_pages(
        self, number: int, *, include_users: bool = False, max_pages: int = MAX_COMMENT_PAGES
    ) -> Iterator[tuple[list[dict[str, Any]], list[Any]]]:
        """The ticket's comments newest first, a page (and its side-loaded users) at a time
        (cursor pagination: ``page[size]=100``, ``sort=-created_at``), at most ``max_pages``."""
        path: str | None = f"/api/v2/tickets/{number}/comments"
        first: dict[str, Any] = {"page[size]": 100, "sort": "-created_at"}
        if include_users:
            first["include"] = "users"
        params: dict[str, Any] | None = first
        seen: set[str] = set()
        for _ in range(max_pages):
            if path is None or path in seen:  # a server repeating a page must not loop forever
                return
            seen.add(path)
            data = self._body(
                self._call("GET", path, params=params, writes_message=False, missing_means_gone=True), writes_message=False
            )
            page = [c for c in data.get("comments") or [] if isinstance(c, dict) and c.get("id") is not None]
            yield page, [u for u in data.get("users") or [] if isinstance(u, dict)]
            path, params = self._next_page(data), None  # the next link carries the query

    def ticket_status(self, ticket_id: str) -> TicketRef:
        """The ticket's current status (``GET /api/v2/tickets/{id}``), for the agent-event
        handler: a status notification may arrive late or out of order, so the ticket is
        read rather than the notification trusted. A read never applies anything.
        ``TicketGone`` when the ticket was deleted."""
        response = self._call(
            "GET", f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}", writes_message=False, missing_means_gone=True
        )
        return self._ticket_ref(response, writes_message=False)

    def current_ticket(self, ticket_id: str) -> TicketRef:
        """The ticket as it is now: status, ``updated_at`` (the next safe update's stamp), requester."""
        return self.ticket_status(ticket_id)

    def bulk_writer(self) -> BulkTicketWriter:
        """``create_many``, ``users/create_or_update_many`` and job statuses (``zendesk/bulk.py``)."""
        from chalicelib.helpdesks.zendesk.bulk import ZendeskBulkWriter

        return ZendeskBulkWriter(self)

    def upload(self, files: Sequence[FileToAttach]) -> list[str]:
        """Upload each file (``POST /api/v2/uploads?filename=``); one token per file.

        Repeating an upload is harmless (an unused upload expires), so a failure is never
        ``maybe_applied``. A file Zendesk refuses (too large: 413, a blocked type: 422)
        raises ``HelpdeskRejected``.
        """
        tokens: list[str] = []
        for file in files:
            response = self._call(
                "POST",
                "/api/v2/uploads",
                params={"filename": file.filename},
                data=file.data,
                headers={"Content-Type": file.content_type or "application/octet-stream"},
                writes_message=False,
            )
            upload = self._body(response, writes_message=False).get("upload")
            token = upload.get("token") if isinstance(upload, dict) else None
            if not isinstance(token, str) or not token:
                raise HelpdeskUnavailable("Zendesk answered the upload without a token")
            tokens.append(token)
        return tokens

    def find_ticket_with_message(self, external_id: str, message: SocialMessage) -> TicketRef | None:
        """The newest of the conversation's tickets (``external_id``) whose audits carry
        the message's reference, looking at the newest ``MAX_TICKETS_SEARCHED`` only."""
        response = self._call("GET", "/api/v2/tickets", params={"external_id": external_id}, writes_message=False)
        tickets = self._body(response, writes_message=False).get("tickets") or []
        candidates = [t for t in tickets if isinstance(t, dict) and isinstance(t.get("id"), int)]
        candidates.sort(key=lambda t: t["id"], reverse=True)
        for ticket in candidates[:MAX_TICKETS_SEARCHED]:
            try:
                found = self.ticket_has_message(str(ticket["id"]), message)
            except TicketGone:  # deleted since it was listed
                continue
            if found:
                return TicketRef(ticket_id=str(ticket["id"]), status=normalize_status(ticket.get("status")))
        return None

    def ticket_comments(self, ticket_id: str, *, since: datetime | None = None) -> TicketComments:
        """The ticket's tags and requester and its comments created at or after ``since``,
        oldest first, each with its author's role and email (for the agent-reply path).

        ``GET /api/v2/tickets/{id}``, then ``GET /api/v2/tickets/{id}/comments`` newest first
        (cursor pagination: ``page[size]=100``, ``sort=-created_at``) with the authors
        side-loaded (``include=users``), page after page until one reaches past ``since``;
        an author the side-load left out is read with ``GET /api/v2/users/{id}``. Reads
        never apply anything; a deleted ticket is ``HelpdeskRejected``.
        """
        number = _zendesk_id(ticket_id, "ticket")
        ticket = (
            self._body(self._call("GET", f"/api/v2/tickets/{number}", writes_message=False), writes_message=False).get("ticket")
            or {}
        )
        found: list[dict[str, Any]] = []
        users: dict[str, dict[str, Any]] = {}
        for page, page_users in self._comment_pages(number, include_users=True):
            found += page
            users.update({str(u["id"]): u for u in page_users if u.get("id") is not None})
            oldest = _comment_time(page[-1].get("created_at")) if page else None
            if since is not None and oldest is not None and oldest < since:
                break
        comments = []
        for item in sorted(found, key=lambda c: (str(c.get("created_at") or ""), int(c["id"]))):
            created = _comment_time(item.get("created_at"))
            if since is not None and (created is None or created < since):
                continue
            author = str(item.get("author_id"))
            if author not in users:
                users[author] = self._user_or_empty(author)
            user = users[author]
            via = json_object(item.get("via"))
            comments.append(
                TicketComment(
                    comment_id=str(item["id"]),
                    author_id=author,
                    public=item.get("public") is True,
                    text=str(item.get("plain_body") or item.get("body") or ""),
                    created_at=created,
                    channel=str(via.get("channel") or ""),
                    author_role=user.get("role"),
                    author_email=user.get("email"),
                    author_name=user.get("name"),
                )
            )
        tags = json_list(ticket.get("tags"))
        requester = ticket.get("requester_id")
        return TicketComments(
            tags=tuple(str(t) for t in tags),
            requester_id=str(requester) if requester is not None else None,
            comments=comments,
            priority=str(ticket["priority"]) if ticket.get("priority") else None,
            ticket_type=str(ticket["type"]) if ticket.get("type") else None,
            problem_id=str(ticket["problem_id"]) if ticket.get("problem_id") else None,
        )

    def _user_or_empty(self, user_id: str) -> dict[str, Any]:
        """``GET /api/v2/users/{id}``; ``{}`` for a user that is gone (deleted or merged)."""
        try:
            response = self._call("GET", f"/api/v2/users/{_zendesk_id(user_id, 'user')}", writes_message=False)
        except HelpdeskRejected:
            return {}
        user = self._body(response, writes_message=False).get("user")
        return user if isinstance(user, dict) else {}

    # --- reading responses ---------------------------------------------------------

    @staticmethod
    def _next_page(data: dict[str, Any]) -> str | None:
        meta, links = data.get("meta"), data.get("links")
        if isinstance(meta, dict) and isinstance(links, dict) and "has_more" in meta:
            following = links.get("next")
            return following if meta.get("has_more") and isinstance(following, str) and following else None
        following = data.get("next_page")
        return following if isinstance(following, str) and following else None

    def _body(self, response: HttpResponse, *, writes_message: bool) -> dict[str, Any]:
        return outcomes.json_object("Zendesk", response, writes_message=writes_message)

    def _ticket_ref(self, response: HttpResponse, *, writes_message: bool) -> TicketRef:
        ticket = self._body(response, writes_message=writes_message).get("ticket")
        if not isinstance(ticket, dict) or ticket.get("id") is None:
            raise HelpdeskUnavailable("Zendesk answered without a ticket id", maybe_applied=writes_message)
        requester = ticket.get("requester_id")
        return TicketRef(
            ticket_id=str(ticket["id"]),
            status=normalize_status(ticket.get("status")),
            updated_at=str(ticket["updated_at"]) if ticket.get("updated_at") else None,
            requester_id=str(requester) if requester is not None else None,
        )

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        data: bytes | None = None,
        writes_message: bool,
        closed_means_ticket_closed: bool = False,
        idempotent: bool = False,
        missing_means_gone: bool = False,
        people_fields: tuple[str, ...] = (),
        problem_field: bool = False,
        guarded: bool = False,
    ) -> HttpResponse:
        """Send one request; return a 2xx response or raise the helpdesk exception it means.

        ``writes_message``: the request puts a message on a ticket, so an ambiguous
        failure is reported as ``maybe_applied``. ``idempotent``: it carries an
        ``Idempotency-Key``, so Zendesk's ``IdempotentRequestError`` is raised as
        ``IdempotencyConflict``. ``data``: a raw body (uploads). ``missing_means_gone``: a 404
        is the ticket's deletion (``TicketGone``). ``people_fields``: a 422 naming one of these
        fields refuses the user we sent (``RequesterGone``); with ``problem_field``, a 422 about
        ``problem_id`` refuses the problem we linked (``ProblemRefused``). ``guarded``: the body is a safe
        update, so a 409 means the ticket changed since its stamp (``StaleTicket``).
        """
        what = outcomes.describe(method, path)
        extra: dict[str, Any] = {}
        if params:
            extra["params"] = params
        if data is not None:
            extra["data"] = data
        if data is not None and not _sends_raw_bodies(self._http):
            raise HelpdeskRejected(f"Zendesk {what}: the injected HTTP client cannot send files (use JsonHttpClient)")
        response = outcomes.send(
            "Zendesk", self._http, method, path, writes_message=writes_message, json=json, headers=headers, **extra
        )

        status = response.status
        if 200 <= status < 300:
            return response
        detail = _error_text(response)
        # Zendesk's own rejections (4xx, so never one that means "try later").
        if status == 422 and closed_means_ticket_closed and _says_closed(response):
            raise TicketClosed(f"Zendesk ticket is closed ({what}){detail}")
        if status == 400 and idempotent and _is_idempotency_error(response):
            raise IdempotencyConflict(f"Zendesk {what}: idempotency key reused with another request body{detail}")
        if status == 404 and missing_means_gone:
            raise TicketGone(f"Zendesk ticket not found (404), deleted? ({what}){detail}")
        if status == 422 and people_fields and _names_field(response, people_fields):
            raise RequesterGone(f"Zendesk refused the user ({what}){detail}")
        if status == 422 and problem_field and _names_field(response, ("problem_id",)):
            raise ProblemRefused(f"Zendesk refused the problem ticket ({what}){detail}")
        if status == 409 and guarded:
            raise StaleTicket(f"Zendesk ticket changed since our last update ({what}){detail}")
        retry_after = parse_retry_after(response.header("Retry-After"))
        if status == 429 and retry_after is None:  # Zendesk also announces the window's reset
            retry_after = parse_retry_after(response.header("ratelimit-reset"))
        # 408 and 409 (an update conflict) are answered before any work is done.
        raise outcomes.status_error(
            "Zendesk",
            what,
            status,
            detail=detail,
            retry_after=retry_after,
            writes_message=writes_message,
            hint=_hint(status),
            not_processed=(408, 409),
        )


class ProblemRefused(HelpdeskRejected):
    """Zendesk refused the ``problem_id`` of an incident: no such problem ticket any more."""


def _comment(message: SocialMessage, author_id: int, uploads: Sequence[str], problems: Sequence[str] | None) -> dict[str, Any]:
    """The public comment of a customer message, authored by them, with its uploads."""
    comment: dict[str, Any] = {"body": comment_body(message, problems), "author_id": author_id, "public": True}
    if uploads:
        comment["uploads"] = list(uploads)
    return comment


def _search_term(identity: ContactIdentity) -> str:
    """The search term of a contact identity; Zendesk wants a number's digits only (no "+", spaces or dashes)."""
    return f"email:{identity.value}" if identity.kind == EMAIL else f"phone:{phone_digits(identity.value)}"


def _search_chunks(identities: Sequence[ContactIdentity]) -> list[list[ContactIdentity]]:
    """``identities`` cut into the groups one search asks for (``SEARCH_TERMS_PER_QUERY``, ``SEARCH_QUERY_MAX_CHARS``)."""
    chunks: list[list[ContactIdentity]] = []
    size = 0
    for identity in identities:
        term = len(_search_term(identity)) + 1
        if not chunks or len(chunks[-1]) >= SEARCH_TERMS_PER_QUERY or size + term > SEARCH_QUERY_MAX_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(identity)
        size += term
    return chunks


def requester_fields(platform: Platform, author: Author) -> dict[str, Any]:
    """The end user of a social author (single or bulk upsert), found again by ``external_id``,
    with the author's phone and email (give it ``KnownCustomer.creatable(author)``: none that
    another user holds). An email goes with ``skip_verify_email``: no verification email."""
    user: dict[str, Any] = {
        "name": (author.label or author.platform_id)[:USER_NAME_MAX],
        "external_id": f"{platform.value}:{author.platform_id}",
    }
    user.update({identity.kind: identity.value for identity in contact_identities(author)})
    if "email" in user:
        user["skip_verify_email"] = True
    return user


def new_ticket_fields(
    message: SocialMessage, requester: int, uploads: Sequence[str] = (), problems: Sequence[str] | None = None
) -> dict[str, Any]:
    """A new ticket for ``message`` (single or bulk create): the customer's public comment,
    the customer as requester and submitter, the conversation as ``external_id``, our tags
    and the message reference in ``metadata`` (found again by ``ticket_has_message``)."""
    return {
        "subject": ticket_subject(message),
        "comment": _comment(message, requester, uploads, problems),
        "requester_id": requester,
        "submitter_id": requester,
        "external_id": message.conversation_key,
        # Note: on a follow-up, tags sent here replace the ones inherited from the
        # closed ticket; ours are the ones the bridge relies on.
        "tags": ticket_tags(message),
        "metadata": {METADATA_KEY: message_reference(message)},
    }


def as_incident(ticket: dict[str, Any], problem_id: str | None) -> dict[str, Any]:
    """A new ticket's fields (single or bulk create) as an incident of a crisis's problem
    ticket (``chalicelib/crisis/tickets.py``), when it has one."""
    if problem_id is None:
        return ticket
    return {**ticket, "type": "incident", "problem_id": _zendesk_id(problem_id, "ticket")}


# --- error bodies ----------------------------------------------------------------------


def _sends_raw_bodies(client: Any) -> bool:
    """True when ``client.request`` takes ``data=`` (a raw body)."""
    try:
        return "data" in inspect.signature(client.request).parameters
    except (TypeError, ValueError):
        return False


_HINTS = {
    413: ": the file is too large for Zendesk",
    401: ": check ZENDESK_EMAIL and the API token",
    403: ": the API user lacks a permission",
}


def _hint(status: int) -> str:
    return outcomes.status_hint(status, _HINTS, "ZENDESK_URL")


def _error_text(response: HttpResponse) -> str:
    """Zendesk's own error words, short: ``error``, ``description``, ``details``, ``errors``."""
    return outcomes.error_detail(response, _error_words)


def _error_words(data: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    error = data.get("error")
    if isinstance(error, dict):  # {"error": {"title": ..., "message": ...}}
        parts += [str(error[k]) for k in ("title", "message") if error.get(k)]
    elif error:
        parts.append(str(error))
    if data.get("description"):
        parts.append(str(data["description"]))
    details = data.get("details")
    if isinstance(details, dict):
        for field, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                text = (problem.get("description") or problem.get("error")) if isinstance(problem, dict) else problem
                if text:
                    parts.append(f"{field}: {text}")
    errors = data.get("errors")
    if isinstance(errors, list):  # the JSON:API-style Errors schema
        for item in errors:
            if isinstance(item, dict):
                parts.append(" ".join(str(item[k]) for k in ("code", "title", "detail") if item.get(k)))
    return parts


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_idempotency_error(response: HttpResponse) -> bool:
    """Zendesk's 400 ``{"error": "IdempotentRequestError", ...}``."""
    data = outcomes.read_json(response)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("title")
    return isinstance(error, str) and error.replace(" ", "").lower() == "idempotentrequesterror"


def _names_field(response: HttpResponse, names: tuple[str, ...]) -> bool:
    """A 422 whose ``details`` are about one of ``names`` (``{"details": {"author_id": [...]}}``)."""
    data = outcomes.read_json(response)
    details = data.get("details") if isinstance(data, dict) else None
    return isinstance(details, dict) and any(name in details for name in names)


def _reference_in(metadata: dict[str, Any]) -> str | None:
    """The message reference audit metadata holds (``custom``, as Zendesk stores what a
    request sends; or top level, as a server storing it verbatim would); None if none."""
    custom = metadata.get("custom")
    value = custom.get(METADATA_KEY) if isinstance(custom, dict) else None
    value = value if value is not None else metadata.get(METADATA_KEY)
    return value if isinstance(value, str) else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _says_closed(response: HttpResponse) -> bool:
    """A 422 that is Zendesk's "Status: closed prevents ticket update".

    The wording sits in ``details`` (under ``status`` or ``base``); matching any
    mention of "closed" in the details keeps working if the key or wording shifts.
    """
    data = outcomes.read_json(response)
    if not isinstance(data, dict):
        return False
    return any("closed" in text.lower() for text in _strings(data.get("details")))
