"""A crisis on Freshdesk: one parent ticket, its members children or tagged and noted.

``FreshdeskHelpdesk.problem_tickets(store)`` gives the crisis code (``crisis/tickets.py``) this
``ProblemTickets``; design and limits in ``docs/crisis.md`` ("Freshdesk").

* **The parent ticket** (``open_problem``): requested by one contact of the bridge's own
  (``unique_external_id`` ``other:socialdesk-crisis``), tagged ``socialdesk_crisis_problem``
  and ``sdp-<hash of the crisis's external id>``. Before creating, that contact's tickets are
  listed (``GET /api/v2/tickets?requester_id=``, read from the database, unlike search's
  minutes-late index) and a parent with the tag is used: a retry, or a Lambda that crashed
  before recording its parent, never opens a second one.
* **A new member's ticket** (the sync's ``open_ticket(..., problem_id=)``) is created with
  ``parent_id``, a child of the parent, where the account has Parent Child Tickets. Freshdesk
  answers 403 ``require_feature`` where it has not (remembered for an hour per account, the
  ticket is created without it) and 400 on ``parent_id`` once a parent has its 10 children
  (``CHILD_TICKETS_PER_ASSOC_PARENT`` in Freshdesk's code) or cannot take one.
* **Every member** carries the tag ``socialdesk_crisis_<parent id>``; a member that is no
  child (an existing ticket: ``parent_id`` exists on create only; the account without the
  feature; the parent full) also gets a private note with the parent's URL.
* **Members are recorded in the table** (``FDCRISIS#<parent>`` / ``TICKET#<id>``, with the
  conversation key): ``incidents`` reads them for the fan-out, complete at once (search
  would be minutes late and stop at 300 results; ``associated_tickets`` knows children only).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesks.base import HelpdeskError, HelpdeskRejected, TicketRef
from chalicelib.helpdesks.freshdesk.adapter import PRIORITIES, SOURCE_PORTAL, STATUS_OPEN, html_body, normalize_status
from chalicelib.helpdesks.freshdesk.events import read_ticket_pointer, ticket_tags
from chalicelib.models import Author, Platform, SocialMessage
from chalicelib.store import StoreUnavailable

if TYPE_CHECKING:
    from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

PARENT_TAG = "socialdesk_crisis_problem"  # crisis/tickets.py PROBLEM_TAGS: the event path knows a parent by it
MEMBER_TAG_PREFIX = "socialdesk_crisis_"
PARENT_KEY_TAG_PREFIX = "sdp-"
CRISIS_CONTACT = Author(platform_id="socialdesk-crisis", display_name="socialdesk crisis")
MEMBERS_PK_PREFIX = "FDCRISIS#"
MEMBER_TTL_SECONDS = 90 * 86400
# A parent is looked for among the crisis contact's tickets of the last day (a retry comes
# within minutes; by the next day the crisis has its ticket recorded).
PARENT_LOOKBACK_SECONDS = 86400.0
# A 403 require_feature for parent_id: the account has no Parent Child Tickets; not asked
# again for this long (each member would spend a refused request to hear it).
PARENT_CHILD_REFUSAL_SECONDS = 3600.0
_parent_child_refused_until: dict[str, float] = {}  # account URL -> monotonic time


def member_tag(parent_id: str) -> str:
    """The tag on each member ticket of the crisis whose parent ticket is ``parent_id``."""
    return f"{MEMBER_TAG_PREFIX}{parent_id}"


def parent_key_tag(external_id: str) -> str:
    """The parent ticket's tag for the crisis's ``external_id`` (too long and free-form for a tag itself)."""
    return PARENT_KEY_TAG_PREFIX + hashlib.sha256(external_id.encode()).hexdigest()[:24]


class FreshdeskCrisis:
    """``ProblemTickets`` on Freshdesk (see the module docstring)."""

    def __init__(self, api: FreshdeskHelpdesk, store: MessageStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self.store = store
        self._clock = clock
        self._contact: str | None = None
        self._full_parents: set[str] = set()  # parents that refused another child

    # --- ProblemTickets ----------------------------------------------------------------------

    def open_problem(
        self, external_id: str, subject: str, description: str, tags: Sequence[str], *, look_first: bool = True
    ) -> TicketRef:
        """The crisis's parent ticket: found by its tag among the crisis contact's tickets (unless
        ``look_first`` is False: the crisis was just created), else created."""
        requester = int(self._crisis_contact())
        tag = parent_key_tag(external_id)
        since = self._api._clock() - PARENT_LOOKBACK_SECONDS  # noqa: SLF001 - the adapter's wall clock
        found = self._api._find_in_requester_tickets(requester, tag, since) if look_first else None  # noqa: SLF001
        if found is not None:
            return found
        ticket = {
            "requester_id": requester,
            "subject": subject[:255],
            "description": html_body(description, external_id),
            "status": STATUS_OPEN,
            "priority": PRIORITIES["high"],
            "source": SOURCE_PORTAL,
            "tags": list(dict.fromkeys([*tags, PARENT_TAG, tag])),
        }
        response = self._api._call("POST", "/api/v2/tickets", json=ticket, writes_message=True)  # noqa: SLF001
        return self._api._ticket_ref(self._api._body(response, writes_message=True), writes_message=True)  # noqa: SLF001

    def set_ticket_type(self, ticket_id: str, ticket_type: str, problem_id: str | None = None) -> TicketRef:
        """``incident``: the existing ticket joins the crisis of parent ``problem_id`` (recorded,
        a private note with the parent's URL, the member tag; the tag marks it done, so a repeat
        changes nothing). ``problem``: the ticket becomes a crisis's parent (its tag)."""
        ticket = self._api.ticket(ticket_id)
        tags = ticket_tags(ticket)
        if ticket_type == "problem":
            if PARENT_TAG not in tags:
                self._add_tag(ticket_id, ticket, PARENT_TAG)
            return TicketRef(ticket_id, normalize_status(ticket.get("status")))
        if ticket_type != "incident" or problem_id is None:
            raise HelpdeskRejected(f"Freshdesk crisis tickets have no type {ticket_type!r}")
        key = read_ticket_pointer(self.store, self._api.name, ticket_id)
        self._record(problem_id, ticket_id, key)
        tag = member_tag(problem_id)
        if tag not in tags:
            self._note(ticket_id, problem_id)
            self._add_tag(ticket_id, ticket, tag)
        return TicketRef(ticket_id, normalize_status(ticket.get("status")))

    def incidents(self, problem_id: str) -> Iterator[dict[str, Any]]:
        """The crisis's members as recorded (``id``, ``external_id`` = conversation key, ``tags``), by ticket id."""
        for item in self.store.ledger("crisis members").partition(f"{MEMBERS_PK_PREFIX}{problem_id}", sk_prefix="TICKET#"):
            yield {"id": int(item["ticket_id"]["S"]), "external_id": item.get("conversation_key", {}).get("S"), "tags": ()}

    def ticket_details(self, ticket_id: str) -> dict[str, Any]:
        """The ticket, its ``type`` ``problem`` when it is a crisis's parent."""
        ticket = self._api.ticket(ticket_id)
        return {**ticket, "type": "problem" if PARENT_TAG in ticket_tags(ticket) else ticket.get("type")}

    # --- a new member's ticket (FreshdeskHelpdesk.open_ticket with problem_id) ---------------

    def member_fields(self, ticket: dict[str, Any], problem_id: str) -> dict[str, Any]:
        """A new ticket's fields as a member of the crisis: its tag, and ``parent_id`` where a child is possible."""
        fields = {**ticket, "tags": list(dict.fromkeys([*ticket.get("tags", []), member_tag(problem_id)]))}
        if self._clock() >= _parent_child_refused_until.get(self._api.base_url, 0.0) and problem_id not in self._full_parents:
            fields["parent_id"] = int(problem_id)
        return fields

    def child_refused(self, exc: HelpdeskRejected, problem_id: str) -> bool:
        """True when Freshdesk refused the ticket for its ``parent_id`` (then it is created without)."""
        text = str(exc)
        if "require_feature" in text:  # 403: no Parent Child Tickets on this account
            _parent_child_refused_until[self._api.base_url] = self._clock() + PARENT_CHILD_REFUSAL_SECONDS
            logger.info("Freshdesk account without parent/child tickets: crisis members are tagged and noted")
            return True
        if "parent_id" in text:  # 400: the parent has its 10 children, or cannot take one
            self._full_parents.add(problem_id)
            return True
        return False

    def member_opened(self, ticket: TicketRef, message: SocialMessage, problem_id: str, *, child: bool) -> None:
        """Record the new member and, when it is no child, note the parent on it. Never raises:
        the ticket exists, and the member's next message repeats this (``set_ticket_type``)."""
        try:
            self._record(problem_id, ticket.ticket_id, message.conversation_key)
            if not child:
                self._note(ticket.ticket_id, problem_id)
        except (HelpdeskError, StoreUnavailable) as exc:
            logger.warning("crisis member not recorded or noted", extra={"ticket_id": ticket.ticket_id, "reason": str(exc)[:200]})

    # --- steps ---------------------------------------------------------------------------------

    def _crisis_contact(self) -> str:
        if self._contact is None:
            self._contact = self._api.ensure_requester(Platform.OTHER, CRISIS_CONTACT)
        return self._contact

    def _add_tag(self, ticket_id: str, ticket: dict[str, Any], tag: str) -> None:
        """Freshdesk's update replaces the whole tag list: the ticket's own, as they are, and ``tag``."""
        current = [t for t in ticket.get("tags") or [] if isinstance(t, str)]
        self._api._call("PUT", f"/api/v2/tickets/{int(ticket_id)}", json={"tags": [*current, tag]}, writes_message=False)  # noqa: SLF001

    def _note(self, ticket_id: str, problem_id: str) -> None:
        url = f"{self._api.base_url}/a/tickets/{int(problem_id)}"
        text = f"Part of a crisis: every similar complaint is gathered on ticket #{int(problem_id)} ({url}). An answer there reaches this customer too."
        note = {"body": html_body(text, f"crisis-member:{problem_id}:{ticket_id}"), "private": True}
        self._api._call(
            "POST", f"/api/v2/tickets/{int(ticket_id)}/notes", json=note, writes_message=True, missing_means_gone=True
        )  # noqa: SLF001

    def _record(self, problem_id: str, ticket_id: str, conversation_key: str | None) -> None:
        member: dict[str, Any] = {
            "item_type": "crisis_member",
            "ticket_id": str(int(ticket_id)),
            "expires_at": int(time.time() + MEMBER_TTL_SECONDS),
        }
        if conversation_key:
            member["conversation_key"] = conversation_key
        key = {"pk": {"S": f"{MEMBERS_PK_PREFIX}{problem_id}"}, "sk": {"S": f"TICKET#{int(ticket_id):012d}"}}
        self.store.ledger("crisis members").move(key, set=member)
