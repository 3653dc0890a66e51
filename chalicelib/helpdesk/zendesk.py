"""The Zendesk Support adapter: the ``Helpdesk`` interface over the Ticketing API.

Requests (paths as in Zendesk's published OpenAPI document):

* ``POST /api/v2/users/create_or_update``: one end user per social author, found
  again by ``external_id`` = ``<platform>:<platform user id>``;
* ``POST /api/v2/tickets``: a ticket whose first comment is the customer's message,
  sent with an ``Idempotency-Key`` header;
* ``PUT /api/v2/tickets/{id}``: a later message as a new public comment;
* ``GET /api/v2/tickets/{id}/audits``: whether a message already reached a ticket.

Every write carries ``metadata`` with the message reference. Zendesk records a
ticket request's ``metadata`` on the audit it creates, under ``metadata.custom``
(the Ticket object documents it as "Write only. Metadata for the audit ... specified
in the ``custom`` property of the ``metadata`` object"; it is not listed in
TicketCreateInput/TicketUpdateInput, which allow additional properties). That is
how ``ticket_has_message`` recognizes our own comments after an ambiguous failure.

Failure mapping (``HelpdeskUnavailable.maybe_applied`` is about *this* request):

============================  ===========================================  ==============
what happened                 raised                                       maybe_applied
============================  ===========================================  ==============
no connection could be made   HelpdeskUnavailable                          False
read timeout / dropped conn.  HelpdeskUnavailable                          True for writes
429, 408, 409                 HelpdeskUnavailable(retry_after=Retry-After) False
503 with Retry-After          HelpdeskUnavailable(retry_after=...)         False
other 5xx (500, 502, 504...)  HelpdeskUnavailable                          True for writes
422 "closed prevents update"  TicketClosed (``append_message`` only)       -
400/401/403/404/422, 3xx      HelpdeskRejected (Zendesk's error, no secret) -
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
identical -- which it is, since it is a pure function of the message, the requester
and ``follow_up_of`` -- and the key is still retained by Zendesk (keys expire: a
resend days later, e.g. from the dead-letter redrive, is not protected).

A maybe-applied ``append_message`` is *not* idempotent on Zendesk's side: the sync
checks ``ticket_has_message`` before repeating it (also across containers, when a
parked message is redriven), so the adapter keeps no memory of its own.

The adapter never sleeps: ``retry_after`` is handed to the sync, which owns backoff.
"""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Callable, Iterator
from typing import Any

from chalicelib.helpdesk.base import Helpdesk, HelpdeskRejected, HelpdeskUnavailable, TicketClosed, TicketRef
from chalicelib.helpdesk.formatting import comment_body, message_reference, ticket_subject, ticket_tags
from chalicelib.helpdesk.http import ConnectFailed, Exchange, HttpResponse, JsonHttpClient, TransportError, UnsafeUrl
from chalicelib.models import Author, Platform, SocialMessage

METADATA_KEY = "socialdesk_message"
TICKET_STATUSES = frozenset({"new", "open", "pending", "hold", "solved", "closed"})
_STATUS_ALIASES = {"on-hold": "hold", "on_hold": "hold", "onhold": "hold"}
USER_NAME_MAX = 255
ERROR_TEXT_MAX = 300
# A ticket's audit history is followed at most this far (100 audits a page).
MAX_AUDIT_PAGES = 100


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


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _zendesk_id(value: str, what: str) -> int:
    """Zendesk ids are integers; the interface passes them around as strings."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise HelpdeskRejected(f"not a Zendesk {what} id: {value!r}") from None


class ZendeskHelpdesk(Helpdesk):
    """Zendesk Support, authenticated with an agent's email and API token."""

    name = "zendesk"

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
        # The token only lives inside the HTTP client's Authorization header.
        self._http = http if http is not None else JsonHttpClient(
            base_url, basic_auth_header(email, api_token), observer=observer
        )
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"ZendeskHelpdesk({self.base_url!r})"

    # --- Helpdesk ------------------------------------------------------------------

    def ensure_requester(self, platform: Platform, author: Author) -> str:
        """Create (or find again, by external id) the end user for a social author.

        ``role`` is deliberately not sent: Zendesk makes new users end users by
        default, and an upsert must never change the role of a user that already
        exists. No email is sent either, so no verification email goes out.
        """
        user = {
            "name": (author.label or author.platform_id)[:USER_NAME_MAX],
            "external_id": f"{platform.value}:{author.platform_id}",
        }
        response = self._call("POST", "/api/v2/users/create_or_update", json={"user": user}, writes_message=False)
        found = self._body(response, writes_message=False).get("user") or {}
        if not isinstance(found, dict) or found.get("id") is None:
            raise HelpdeskUnavailable("Zendesk answered the user upsert without a user id")
        return str(found["id"])

    def open_ticket(
        self,
        message: SocialMessage,
        requester_id: str,
        *,
        idempotency_key: str,
        follow_up_of: str | None = None,
    ) -> TicketRef:
        """Create a ticket whose first, public comment is the customer's message.

        The requester is also the submitter and the comment's author, so the ticket
        reads as written by the customer. ``follow_up_of`` links a closed ticket
        (Zendesk ignores it for tickets that are not closed). Safe to repeat with the
        same ``idempotency_key``.
        """
        requester = _zendesk_id(requester_id, "user")
        ticket: dict[str, Any] = {
            "subject": ticket_subject(message),
            "comment": {"body": comment_body(message), "author_id": requester, "public": True},
            "requester_id": requester,
            "submitter_id": requester,
            "external_id": message.conversation_key,
            # Note: on a follow-up, tags sent here replace the ones inherited from the
            # closed ticket; ours are the ones the bridge relies on.
            "tags": ticket_tags(message),
            "metadata": {METADATA_KEY: message_reference(message)},
        }
        if follow_up_of is not None:
            ticket["via_followup_source_id"] = _zendesk_id(follow_up_of, "ticket")
        response = self._call(
            "POST",
            "/api/v2/tickets",
            json={"ticket": ticket},
            headers={"Idempotency-Key": idempotency_key},
            writes_message=True,
        )
        return self._ticket_ref(response, writes_message=True)

    def append_message(self, ticket_id: str, message: SocialMessage, requester_id: str) -> TicketRef:
        """Add the message as a public comment authored by the requester.

        Raises ``TicketClosed`` on Zendesk's "Status: closed prevents ticket update".
        """
        path = f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}"
        body = {
            "ticket": {
                "comment": {
                    "body": comment_body(message),
                    "author_id": _zendesk_id(requester_id, "user"),
                    "public": True,
                },
                "metadata": {METADATA_KEY: message_reference(message)},
            }
        }
        response = self._call("PUT", path, json=body, writes_message=True, closed_means_ticket_closed=True)
        return self._ticket_ref(response, writes_message=True)

    def add_note(self, ticket_id: str, message: SocialMessage, text: str) -> TicketRef:
        """Add an internal note by the API user (Zendesk lets only agents write private comments)."""
        path = f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}"
        body = {"ticket": {"comment": {"body": text, "public": False}, "metadata": {METADATA_KEY: message_reference(message)}}}
        response = self._call("PUT", path, json=body, writes_message=True, closed_means_ticket_closed=True)
        return self._ticket_ref(response, writes_message=True)

    def ticket_has_message(self, ticket_id: str, message: SocialMessage) -> bool:
        """True when an audit of the ticket carries the message's reference in its metadata."""
        reference = message_reference(message)
        for audit in self._audits(ticket_id):
            metadata = audit.get("metadata") if isinstance(audit, dict) else None
            if not isinstance(metadata, dict):
                continue
            custom = metadata.get("custom")
            if isinstance(custom, dict) and custom.get(METADATA_KEY) == reference:
                return True
            # Tolerated for servers that store the sent metadata as is (sandboxes).
            if metadata.get(METADATA_KEY) == reference:
                return True
        return False

    # --- reading responses ---------------------------------------------------------

    def _audits(self, ticket_id: str) -> Iterator[Any]:
        """Every audit of a ticket, following cursor (``links.next``) or offset (``next_page``) pages."""
        next_path: str | None = f"/api/v2/tickets/{_zendesk_id(ticket_id, 'ticket')}/audits"
        seen: set[str] = set()
        pages = 0
        while next_path is not None:
            if pages >= MAX_AUDIT_PAGES:
                raise HelpdeskRejected(f"ticket {ticket_id} has more than {MAX_AUDIT_PAGES} pages of audits to check")
            seen.add(next_path)
            pages += 1
            data = self._body(self._call("GET", next_path, writes_message=False), writes_message=False)
            audits = data.get("audits") or []
            if isinstance(audits, list):
                yield from audits
            next_path = self._next_page(data)
            if next_path in seen:  # a server repeating a page must not loop forever
                break

    @staticmethod
    def _next_page(data: dict[str, Any]) -> str | None:
        meta, links = data.get("meta"), data.get("links")
        if isinstance(meta, dict) and isinstance(links, dict) and "has_more" in meta:
            following = links.get("next")
            return following if meta.get("has_more") and isinstance(following, str) and following else None
        following = data.get("next_page")
        return following if isinstance(following, str) and following else None

    def _body(self, response: HttpResponse, *, writes_message: bool) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # A 2xx we cannot read: for a write, the work may well be done.
            raise HelpdeskUnavailable(
                f"Zendesk answered {response.status} without a JSON object", maybe_applied=writes_message
            )
        return data

    def _ticket_ref(self, response: HttpResponse, *, writes_message: bool) -> TicketRef:
        ticket = self._body(response, writes_message=writes_message).get("ticket")
        if not isinstance(ticket, dict) or ticket.get("id") is None:
            raise HelpdeskUnavailable("Zendesk answered without a ticket id", maybe_applied=writes_message)
        return TicketRef(ticket_id=str(ticket["id"]), status=normalize_status(ticket.get("status")))

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        writes_message: bool,
        closed_means_ticket_closed: bool = False,
    ) -> HttpResponse:
        """Send one request; return a 2xx response or raise the helpdesk exception it means.

        ``writes_message``: the request puts a message on a ticket, so an ambiguous
        failure is reported as ``maybe_applied``.
        """
        what = f"{method} {path.split('?', 1)[0]}"
        try:
            response = self._http.request(method, path, json=json, headers=headers)
        except UnsafeUrl as exc:
            raise HelpdeskRejected(f"Zendesk {what}: {exc}") from exc
        except ConnectFailed as exc:
            raise HelpdeskUnavailable(f"Zendesk unreachable: {exc}", maybe_applied=False) from exc
        except TransportError as exc:
            raise HelpdeskUnavailable(
                f"Zendesk did not answer: {exc}", maybe_applied=writes_message and exc.maybe_sent
            ) from exc

        status = response.status
        if 200 <= status < 300:
            return response
        detail = _error_text(response)
        retry_after = parse_retry_after(response.header("Retry-After"))
        if status == 429:
            if retry_after is None:  # Zendesk also announces the window's reset
                retry_after = parse_retry_after(response.header("ratelimit-reset"))
            raise HelpdeskUnavailable(f"Zendesk rate limit on {what} (429){detail}", retry_after=retry_after)
        if status in (408, 409) or (status == 503 and retry_after is not None):
            raise HelpdeskUnavailable(f"Zendesk {what} not processed ({status}){detail}", retry_after=retry_after)
        if status >= 500:
            raise HelpdeskUnavailable(
                f"Zendesk server error on {what} ({status}){detail}",
                maybe_applied=writes_message,
                retry_after=retry_after,
            )
        if status == 422 and closed_means_ticket_closed and _says_closed(response):
            raise TicketClosed(f"Zendesk ticket is closed ({what}){detail}")
        raise HelpdeskRejected(f"Zendesk rejected {what} ({status}{_hint(status)}){detail}")


# --- error bodies ----------------------------------------------------------------------


def _hint(status: int) -> str:
    if status == 401:
        return ": check ZENDESK_EMAIL and the API token"
    if status == 403:
        return ": the API user lacks a permission"
    if status == 404:
        return ": not found"
    if 300 <= status < 400:
        return ": unexpected redirect, check ZENDESK_URL"
    return ""


def _error_json(response: HttpResponse) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: HttpResponse) -> str:
    """Zendesk's own error words, short: ``error``, ``description``, ``details``, ``errors``."""
    data = _error_json(response)
    parts: list[str] = []
    if isinstance(data, dict):
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
    elif response.body and "json" not in (response.header("content-type") or ""):
        parts.append(response.body[:ERROR_TEXT_MAX].decode("utf-8", "replace").strip())
    text = "; ".join(p for p in parts if p)
    if len(text) > ERROR_TEXT_MAX:
        text = text[: ERROR_TEXT_MAX - 1] + "…"
    return f": {text}" if text else ""


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _says_closed(response: HttpResponse) -> bool:
    """A 422 that is Zendesk's "Status: closed prevents ticket update".

    The wording sits in ``details`` (under ``status`` or ``base``); matching any
    mention of "closed" in the details keeps working if the key or wording shifts.
    """
    data = _error_json(response)
    if not isinstance(data, dict):
        return False
    return any("closed" in text.lower() for text in _strings(data.get("details")))
