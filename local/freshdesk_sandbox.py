"""A local stand-in for the part of the Freshdesk API v2 the bridge uses.

Pure stdlib, on ``local.sandbox_http.HelpdeskSandbox``: ``FreshdeskSandbox(...).start()``
serves on a background thread. It speaks this subset:

* ``POST /api/v2/contacts``, ``GET /api/v2/contacts`` (filters: email, mobile, phone,
  unique_external_id, company_id, state, updated_since; any other parameter is a
  400 ``invalid_field``, as Freshdesk answers), ``GET /api/v2/contacts/{id}``;
* ``POST /api/v2/tickets``, ``GET /api/v2/tickets`` (requester_id, email,
  unique_external_id, order_by, order_type, page, per_page...), ``GET`` and ``PUT
  /api/v2/tickets/{id}``;
* ``POST /api/v2/tickets/{id}/notes``, ``GET /api/v2/tickets/{id}/conversations``;
* ``GET /api/v2/search/tickets?query="tag:'x' AND status:2"``.

Behaviours copied from Freshdesk (or, where marked [assumed], chosen pessimistically
because the documentation does not say, so the adapter is tested against the harder
case):

* basic auth with the API key as user name and any password (``X``), else 401;
* ``X-RateLimit-Total`` / ``X-RateLimit-Remaining`` / ``X-RateLimit-Used-CurrentRequest``
  on every answer, ``Retry-After`` on an injected 429;
* validation errors as ``400 {"description": "Validation failed", "errors": [...]}``,
  unknown fields as ``invalid_field``; ticket ``source`` limited to 1, 2, 3, 7, 9, 10;
* ``email``, ``twitter_id``, ``facebook_id`` and ``unique_external_id`` are unique per
  contact: a repeat answers ``409 duplicate_value`` with ``additional_info.user_id``
  (``duplicate_ids=False`` leaves the id out);
* notes are accepted on closed tickets and never change a ticket's status [assumed];
* the ticket list leaves out ``description`` and [assumed] ``tags``; search results
  carry ``tags``; search only sees a ticket ``search_index_delay`` seconds after it was
  created (Freshdesk: "may take a few minutes to get indexed");
* HTML in descriptions and notes is sanitized: allowed tags only, and [assumed] every
  attribute but ``href`` is stripped; ``description_text`` / ``body_text`` are derived;
* parent/child tickets: a create with ``parent_id`` makes a child (``association_type`` 2, the
  parent 1, each listing the other in ``associated_tickets_list``); an account without the
  feature (``parent_child=False``, ``set_parent_child()``, ``POST /__sandbox/parent_child``)
  answers 403 ``require_feature`` as Freshdesk does; a parent takes at most 10 children
  (Freshdesk's ``CHILD_TICKETS_PER_ASSOC_PARENT``) and a child none: 400 on ``parent_id``.

Test controls (Python, no request counted): ``reset()``, ``stats()``, ``inject()``,
``clear_faults()``, ``tickets()``, ``ticket()``, ``conversations()``, ``contacts()``,
``set_status()``; HTTP twins under ``/__sandbox/`` (no auth, never faulted).

Agents and the automation rule (socialdesk's "Ticket updates" rule, see
``chalicelib.helpdesks.freshdesk.events``): ``add_agent()``; ``configure_automation(url,
body=..., headers=...)`` stores the rule's *Trigger webhook* action; ``agent_reply(ticket,
text)`` is an agent replying (or adding a note) in Freshdesk's UI: a conversation (reply:
``source`` 0, note: 2; ``incoming`` false) is added, the ticket is assigned to the agent if it
had nobody [assumed], an optional status is set, and the rule's webhook is POSTed to its URL
with every ``{{placeholder}}`` of the body rendered; ``set_status()`` fires it too.
``deliveries()`` lists what was POSTed and answered, ``redeliver()`` POSTs one again (as
Freshdesk's retry after a failure would). Rendering: ``{{ticket.id}}``, ``.subject``,
``.description``, ``.url``, ``.status`` (Open, Pending, Resolved, Closed), ``.priority``,
``.tags`` (comma separated), ``.latest_public_comment`` (``"<author> : <HTML body>"``),
``.agent.name`` / ``.email`` (the assignee), ``.requester.name`` / ``.email`` / ``.phone``,
``.cf_<field>``, ``{{triggered_event}}`` (``{reply_sent:sent}`` [assumed],
``{note_type:public}``, ``{status:{from:2,to:4}}``); any other placeholder renders empty
[assumed]; values are JSON-escaped for a JSON body [assumed]. HTTP twins:
``POST /__sandbox/automation``, ``POST /__sandbox/tickets/{id}/reply``, ``GET
/__sandbox/deliveries``. A fault
``match`` is a prefix of ``"METHOD /api/v2/path/{template}"``; end it with ``$`` to
match one operation exactly (``"POST /api/v2/tickets$"`` is ticket creation only).
"""

from __future__ import annotations

import base64
import binascii
import copy
import html
import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from html.parser import HTMLParser
from http import HTTPStatus
from itertools import count
from typing import Any
from urllib.parse import urlencode

from local.sandbox_http import Fault, HelpdeskSandbox, Reply, SandboxRequest

from local.defaults import SANDBOX_FRESHDESK_API_KEY  # noqa: E402  (shared with make run)
STATUSES = {"open": 2, "pending": 3, "resolved": 4, "solved": 4, "closed": 5}
STATUS_NAMES = {2: "Open", 3: "Pending", 4: "Resolved", 5: "Closed"}
PRIORITY_NAMES = {1: "Low", 2: "Medium", 3: "High", 4: "Urgent"}
CONVERSATION_REPLY, CONVERSATION_NOTE = 0, 2  # conversation ``source`` of an agent's reply / note
AUTOMATION_EVENTS = frozenset({"reply_sent", "note_public", "note_private", "status"})
PRIORITIES = (1, 2, 3, 4)
CREATE_SOURCES = (1, 2, 3, 7, 9, 10)
UNIQUE_CONTACT_FIELDS = ("email", "twitter_id", "facebook_id", "unique_external_id")
CONTACT_IDENTIFIERS = ("email", "phone", "mobile", "twitter_id", "unique_external_id", "facebook_id")
CONTACT_FIELDS = frozenset({*CONTACT_IDENTIFIERS, "name", "address", "description", "job_title", "language",
                            "time_zone", "tags", "other_emails", "company_id", "view_all_tickets", "custom_fields"})
CONTACT_FILTERS = frozenset({"email", "mobile", "phone", "unique_external_id", "company_id", "state", "updated_since",
                             "page", "per_page"})
TICKET_CREATE_FIELDS = frozenset({"name", "requester_id", "email", "facebook_id", "phone", "twitter_id",
                                  "unique_external_id", "subject", "type", "status", "priority", "description",
                                  "responder_id", "cc_emails", "custom_fields", "due_by", "email_config_id",
                                  "fr_due_by", "group_id", "parent_id", "product_id", "source", "tags", "company_id"})
TICKET_UPDATE_FIELDS = frozenset({"subject", "type", "status", "priority", "description", "responder_id",
                                  "custom_fields", "due_by", "fr_due_by", "group_id", "product_id", "tags"})
TICKET_FILTERS = frozenset({"filter", "requester_id", "email", "unique_external_id", "company_id", "updated_since",
                            "order_by", "order_type", "include", "page", "per_page"})
NOTE_FIELDS = frozenset({"body", "incoming", "private", "user_id", "notify_emails"})
ALLOWED_HTML_TAGS = frozenset({"a", "b", "blockquote", "br", "code", "div", "em", "i", "li", "ol", "p", "pre",
                               "small", "span", "strong", "u", "ul"})
SEARCH_QUERY_MAX = 512
SEARCH_PAGE_SIZE = 30
SEARCH_MAX_PAGE = 10
ASSOCIATION_PARENT, ASSOCIATION_CHILD = 1, 2  # a ticket's ``association_type``
CHILD_TICKETS_PER_PARENT = 10  # Freshdesk's CHILD_TICKETS_PER_ASSOC_PARENT
TAG_MAX = 255  # [assumed] a generous bound; the adapter's own tags are at most 28 characters


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validation(*errors: tuple[str, str, str], status: int = 400) -> Reply:
    return status, {"description": "Validation failed",
                    "errors": [{"field": f, "message": m, "code": c} for f, m, c in errors]}, {}


def _not_found() -> Reply:
    return 404, {"code": "not_found", "message": "The requested resource does not exist"}, {}


class _Sanitizer(HTMLParser):
    """Keeps allowed tags (attributes stripped, ``href`` kept on links) and collects the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.html: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
            return
        if tag in ("br", "p", "div", "li") and self.text:
            self.text.append("\n")
        if tag not in ALLOWED_HTML_TAGS:
            return
        href = next((v for k, v in attrs if k == "href" and v and re.match(r"https?://", v)), None)
        attributes = f' href="{html.escape(href, quote=True)}" rel="noreferrer"' if tag == "a" and href else ""
        self.html.append(f"<{tag}{attributes}>")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
            return
        if tag in ALLOWED_HTML_TAGS and tag != "br":
            self.html.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.html.append(html.escape(data, quote=False))
        self.text.append(data)


def sanitize(body: str) -> tuple[str, str]:
    """(sanitized HTML, plain text) of an HTML body."""
    parser = _Sanitizer()
    parser.feed(body)
    parser.close()
    text = re.sub(r"[ \t]+\n", "\n", "".join(parser.text)).strip()
    return "".join(parser.html), text



class FreshdeskSandbox(HelpdeskSandbox):
    """An in-memory Freshdesk API v2 on ``http://{host}:{port}``."""

    name = "freshdesk-sandbox"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = SANDBOX_FRESHDESK_API_KEY,
        *,
        rate_limit_total: int = 700,
        custom_fields: tuple[str, ...] = ("cf_socialdesk_conversation",),
        search_index_delay: float = 0.0,
        duplicate_ids: bool = True,
        parent_child: bool = True,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.rate_limit_total = rate_limit_total
        self.custom_fields = frozenset(custom_fields)
        self.search_index_delay = search_index_delay
        self.duplicate_ids = duplicate_ids
        self.parent_child = parent_child
        api: list[tuple[str, str, str, Callable[..., Reply]]] = [
            ("POST", r"/api/v2/contacts", "/api/v2/contacts", self._create_contact),
            ("GET", r"/api/v2/contacts", "/api/v2/contacts", self._list_contacts),
            ("GET", r"/api/v2/contacts/(?P<contact_id>\d+)", "/api/v2/contacts/{id}", self._show_contact),
            ("POST", r"/api/v2/tickets", "/api/v2/tickets", self._create_ticket),
            ("GET", r"/api/v2/tickets", "/api/v2/tickets", self._list_tickets),
            ("GET", r"/api/v2/tickets/(?P<ticket_id>\d+)", "/api/v2/tickets/{id}", self._show_ticket),
            ("PUT", r"/api/v2/tickets/(?P<ticket_id>\d+)", "/api/v2/tickets/{id}", self._update_ticket),
            ("POST", r"/api/v2/tickets/(?P<ticket_id>\d+)/notes", "/api/v2/tickets/{id}/notes", self._create_note),
            ("GET", r"/api/v2/tickets/(?P<ticket_id>\d+)/conversations", "/api/v2/tickets/{id}/conversations",
             self._list_conversations),
            ("GET", r"/api/v2/search/tickets", "/api/v2/search/tickets", self._search_tickets),
        ]
        for method, pattern, template, handler in api:
            self.api(method, pattern, f"{method} {template}", handler)
        self.control("POST", r"tickets/(?P<ticket_id>\d+)/reply", self._reply_control)
        self.control("POST", "automation", self._automation_control)
        self.control("POST", "parent_child", lambda arguments: self.set_parent_child(bool(arguments.get("enabled", True))))
        self.reset()

    # --- test controls ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Drop every contact, ticket, note, fault and counter."""
        with self._lock:
            self._ids = count(1)
            self._contacts: dict[int, dict[str, Any]] = {}
            self._tickets: dict[int, dict[str, Any]] = {}
            self._indexed_at: dict[int, float] = {}
            self._conversations: dict[int, list[dict[str, Any]]] = {}
            self.fault_queue.reset()
            self._window: tuple[int, int] = (0, 0)  # (minute, calls in it)
            self.forget_requests()
            self.agent_id = next(self._ids)  # the agent the API key belongs to
            self._agents: dict[int, dict[str, Any]] = {
                self.agent_id: {"id": self.agent_id, "name": "Socialdesk API", "email": "api@socialdesk.invalid"}}
            self._automation: dict[str, Any] | None = None
            self._deliveries: list[dict[str, Any]] = []

    def set_parent_child(self, enabled: bool) -> dict[str, Any]:
        """Whether the account has Parent Child Tickets (without: ``parent_id`` is a 403 ``require_feature``)."""
        with self._lock:
            self.parent_child = enabled
        return {"parent_child": enabled}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.request_stats(),
                "tickets": len(self._tickets),
                "contacts": len(self._contacts),
                "notes": sum(len(v) for v in self._conversations.values()),
            }

    def set_status(self, ticket_id: int | str, status: int | str) -> dict[str, Any]:
        """Change a ticket's status as an agent would (2 open, 3 pending, 4 resolved, 5 closed, or the word).

        With an automation configured (``configure_automation``) for ``status``, its webhook fires."""
        value = STATUSES.get(status, status) if isinstance(status, str) else status
        if value not in STATUSES.values():
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            ticket = self._tickets[int(ticket_id)]
            before = ticket["status"]
            ticket["status"], ticket["updated_at"] = value, _now()
            changed = copy.deepcopy(ticket)
            request = self._automation_request(ticket, "status", f"{{status:{{from:{before},to:{value}}}}}") \
                if before != value else None
        if request is not None:
            self._post_automation(request)
        return changed

    def conversations(self, ticket_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._conversations.get(int(ticket_id), []))

    def contacts(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._contacts.values()))

    # --- agents and the automation rule ----------------------------------------------------------

    def add_agent(self, name: str = "Alex Agent", email: str = "alex.agent@example.com") -> int:
        """An agent who works tickets in Freshdesk's UI (not through the API); returns their id."""
        with self._lock:
            agent_id = next(self._ids)
            self._agents[agent_id] = {"id": agent_id, "name": name, "email": email}
            return agent_id

    def agents(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._agents.values()))

    def configure_automation(self, url: str | None, *, body: str = "", headers: dict[str, str] | None = None,
                             events: tuple[str, ...] = ("reply_sent", "note_public", "status"),
                             escape_json: bool = True, timeout: float = 30.0) -> None:
        """The automation rule's *Trigger webhook* action: POST ``body`` (placeholders rendered) to
        ``url`` with ``headers`` on ``events`` (reply_sent, note_public, note_private, status).
        ``url=None`` removes the rule."""
        unknown = set(events) - AUTOMATION_EVENTS
        if unknown:
            raise ValueError(f"unknown automation events {sorted(unknown)}; use {sorted(AUTOMATION_EVENTS)}")
        with self._lock:
            self._automation = None if url is None else {
                "url": url, "body": body, "headers": dict(headers or {}), "events": frozenset(events),
                "escape_json": escape_json, "timeout": timeout}

    def agent_reply(self, ticket_id: int | str, text: str, *, agent_id: int | None = None, note: bool = False,
                    private: bool = False, status: int | str | None = None, html_body: str | None = None,
                    add_tags: tuple[str, ...] = ()) -> dict[str, Any]:
        """An agent replies in Freshdesk's UI (``note=True``: adds a note, public unless ``private``;
        ``add_tags``: tags added in the same update, as a scenario automation does).

        Returns ``{"conversation": ..., "ticket": ..., "delivery": ...}``; ``delivery`` is the
        automation webhook's (None when no rule matched)."""
        with self._lock:
            ticket = self._tickets[int(ticket_id)]
            if agent_id is None:
                agent_id = next((a for a in self._agents if a != self.agent_id), None)
            if agent_id is None:
                agent_id = next(self._ids)
                self._agents[agent_id] = {"id": agent_id, "name": "Alex Agent", "email": "alex.agent@example.com"}
            if agent_id not in self._agents:
                raise ValueError(f"no agent {agent_id}; add_agent() first")
            body_html = html_body if html_body is not None else "<div>" + "<br>".join(
                html.escape(line) for line in text.splitlines()) + "</div>"
            body, body_text = sanitize(body_html)
            conversation_id, now = next(self._ids), _now()
            conversation = {
                "id": conversation_id, "body": body, "body_text": body_text, "incoming": False,
                "private": bool(note and private), "user_id": agent_id, "support_email": None,
                "source": CONVERSATION_NOTE if note else CONVERSATION_REPLY, "category": 3 if not note else 2,
                "ticket_id": ticket["id"], "to_emails": [], "from_email": None, "cc_emails": [], "bcc_emails": [],
                "attachments": [], "created_at": now, "updated_at": now,
            }
            self._conversations[ticket["id"]].append(conversation)
            if ticket.get("responder_id") is None:
                ticket["responder_id"] = agent_id
            ticket["tags"] = list(dict.fromkeys([*ticket.get("tags", []), *add_tags]))
            ticket["updated_at"] = now
            if status is not None:
                value = STATUSES.get(status, status) if isinstance(status, str) else status
                if value not in STATUSES.values():
                    raise ValueError(f"unknown status {status!r}")
                ticket["status"] = value
            event = ("note_private" if private else "note_public") if note else "reply_sent"
            triggered = {"reply_sent": "{reply_sent:sent}", "note_public": "{note_type:public}",
                         "note_private": "{note_type:private}"}[event]
            request = self._automation_request(ticket, event, triggered)
            answer = {"conversation": copy.deepcopy(conversation), "ticket": copy.deepcopy(ticket)}
        answer["delivery"] = self._post_automation(request) if request is not None else None
        return answer

    def deliveries(self) -> list[dict[str, Any]]:
        """Every automation webhook POSTed: url, headers, body, event, and the answer (status, body)."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def redeliver(self, index: int = -1, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST an earlier delivery again, unchanged (or with other ``headers``), as Freshdesk's retry would."""
        with self._lock:
            earlier = copy.deepcopy(self._deliveries[index])
        request = {key: earlier[key] for key in ("url", "headers", "body", "event", "timeout")}
        if headers is not None:
            request["headers"] = dict(headers)
        return self._post_automation(request)

    def render(self, template: str, ticket_id: int | str, *, triggered_event: str = "", escape_json: bool = True) -> str:
        """``template`` with its placeholders filled in for the ticket, as the rule would send it."""
        with self._lock:
            return self._render(template, self._tickets[int(ticket_id)], triggered_event, escape_json)

    def _automation_request(self, ticket: dict[str, Any], event: str, triggered: str) -> dict[str, Any] | None:
        """The webhook the rule would send for ``event`` on ``ticket`` (call with the lock held)."""
        rule = self._automation
        if rule is None or event not in rule["events"]:
            return None
        return {"url": rule["url"], "headers": dict(rule["headers"]), "event": event, "timeout": rule["timeout"],
                "body": self._render(rule["body"], ticket, triggered, rule["escape_json"])}

    def _render(self, template: str, ticket: dict[str, Any], triggered: str, escape_json: bool) -> str:
        values = self._placeholder_values(ticket, triggered)

        def fill(match: re.Match[str]) -> str:
            value = values.get(match.group(1), "")  # [assumed] unknown placeholders render empty
            return json.dumps(value)[1:-1] if escape_json else value

        return re.sub(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}", fill, template)

    def _placeholder_values(self, ticket: dict[str, Any], triggered: str) -> dict[str, str]:
        assignee = self._agents.get(ticket.get("responder_id")) or {}
        requester = self._contacts.get(ticket.get("requester_id")) or {}
        public = [c for c in self._conversations.get(ticket["id"], []) if not c["private"]]
        latest = ""
        if public:
            author = self._agents.get(public[-1]["user_id"]) or self._contacts.get(public[-1]["user_id"]) or {}
            latest = f"{author.get('name') or 'System'} : {public[-1]['body']}"
        values = {
            "ticket.id": str(ticket["id"]), "ticket.subject": ticket.get("subject") or "",
            "ticket.description": ticket.get("description") or "", "ticket.url": f"{self.url}/a/tickets/{ticket['id']}",
            "ticket.status": STATUS_NAMES.get(ticket.get("status"), str(ticket.get("status"))),
            "ticket.priority": PRIORITY_NAMES.get(ticket.get("priority"), str(ticket.get("priority"))),
            "ticket.tags": ", ".join(ticket.get("tags") or []), "ticket.latest_public_comment": latest,
            "ticket.agent.name": assignee.get("name") or "", "ticket.agent.email": assignee.get("email") or "",
            "ticket.requester.name": requester.get("name") or "", "ticket.requester.email": requester.get("email") or "",
            "ticket.requester.phone": requester.get("phone") or "", "triggered_event": triggered,
        }
        for name, value in (ticket.get("custom_fields") or {}).items():
            values[f"ticket.{name}"] = "" if value is None else str(value)
        return values

    def _post_automation(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST one webhook (never with the lock held: the receiver may call this sandbox back)."""
        headers = {"Content-Type": "application/json", "User-Agent": "Freshdesk", **request["headers"]}
        outgoing = urllib.request.Request(request["url"], data=request["body"].encode(), method="POST", headers=headers)
        try:
            with urllib.request.urlopen(outgoing, timeout=request["timeout"]) as response:  # noqa: S310 - a local URL
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            status, raw = 0, str(error).encode()
        try:
            answer: Any = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode("utf-8", "replace")
        delivery = {**request, "headers": headers, "status": status, "response": answer}
        with self._lock:
            self._deliveries.append(copy.deepcopy(delivery))
        return delivery

    # --- plumbing --------------------------------------------------------------------------------

    def _authenticated(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, _password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(user) and user == self.api_key

    def _rate_headers(self, *, exhausted: bool = False) -> dict[str, str]:
        with self._lock:
            minute = int(time.time() // 60)
            calls = self._window[1] + 1 if self._window[0] == minute else 1
            self._window = (minute, calls)
            remaining = 0 if exhausted else max(0, self.rate_limit_total - calls)
        return {"X-RateLimit-Total": str(self.rate_limit_total), "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Used-CurrentRequest": "1"}

    def fault_reply(self, fault: Fault) -> Reply:
        status = int(fault.status or 500)
        headers = self._rate_headers(exhausted=status == 429)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(fault.retry_after)))
        if status == 429:
            return 429, {"message": "You have exceeded the limit of requests per minute"}, headers
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        return status, {"code": phrase.lower().replace(" ", "_"), "message": f"Injected fault: {status}"}, headers

    def answer(self, request: SandboxRequest, handler: Callable[..., Reply], groups: dict[str, str]) -> Reply:
        """Authentication, JSON parsing and rate-limit headers around an API handler (faults applied)."""
        if not self._authenticated(request.header("Authorization")):
            reply: Reply = (401, {"code": "invalid_credentials",
                                  "message": "You have to be logged in to perform this action."},
                            {"WWW-Authenticate": 'Basic realm="Application"'})
        elif request.method in ("POST", "PUT"):
            try:
                payload = request.json()
            except ValueError:
                payload = ValueError
            if payload is ValueError or not isinstance(payload, dict):
                reply = _validation(("", "Request body has invalid json format", "invalid_json"))
            else:
                with self._lock:
                    reply = handler(request, payload, **groups)
        else:
            with self._lock:
                reply = handler(request, **groups)
        status, body, headers = reply
        return status, body, {**self._rate_headers(), **headers}

    def _unknown(self, given: Any, allowed: frozenset[str]) -> Reply | None:
        unknown = sorted(set(given) - allowed)
        if unknown:
            return _validation(*[(name, "Unexpected/invalid field in request", "invalid_field") for name in unknown])
        return None

    @staticmethod
    def _page(request: SandboxRequest, default: int = 30, maximum: int = 100) -> tuple[int, int] | Reply:
        try:
            page = int(request.arg("page", "1") or 1)
            per_page = int(request.arg("per_page", str(default)) or default)
        except ValueError:
            return _validation(("page", "It should be a/an Positive Integer", "datatype_mismatch"))
        if page < 1 or not 1 <= per_page <= maximum:
            return _validation(("per_page", f"It should be a Positive Number less than or equal to {maximum}", "invalid_value"))
        return page, per_page

    def _paged(self, request: SandboxRequest, items: list[Any], page: int, per_page: int) -> Reply:
        chunk = items[(page - 1) * per_page: page * per_page]
        headers: dict[str, str] = {}
        if page * per_page < len(items):
            query = {k: v[0] for k, v in request.query.items()}
            query.update(page=str(page + 1), per_page=str(per_page))
            headers["Link"] = f'<{self.url}{request.path}?{urlencode(query)}>; rel="next"'
        return 200, chunk, headers

    # --- contacts --------------------------------------------------------------------------------

    def _create_contact(self, _request: SandboxRequest, data: dict[str, Any]) -> Reply:
        problem = self._unknown(data, CONTACT_FIELDS)
        if problem:
            return problem
        if not isinstance(data.get("name"), str) or not data["name"].strip():
            return _validation(("name", "It should be a/an String", "missing_field"))
        for name in CONTACT_IDENTIFIERS:
            if name in data and not isinstance(data[name], str):
                return _validation((name, "It should be a/an String", "datatype_mismatch"))
        if not any(data.get(name) for name in CONTACT_IDENTIFIERS):
            return _validation(("email", "Please fill at least 1 of email, mobile, phone, twitter_id, "
                                         "unique_external_id fields", "missing_field"))
        for name in UNIQUE_CONTACT_FIELDS:
            value = data.get(name)
            owner = next((c for c in self._contacts.values() if value and c.get(name) == value), None)
            if owner is not None:
                error: dict[str, Any] = {"field": name, "message": "It should be a unique value", "code": "duplicate_value"}
                if self.duplicate_ids:
                    error["additional_info"] = {"user_id": owner["id"]}
                return 409, {"description": "Validation failed", "errors": [error]}, {}
        contact_id, now = next(self._ids), _now()
        contact = {
            "id": contact_id, "name": data["name"].strip(), "active": False, "deleted": False,
            "address": data.get("address"), "company_id": data.get("company_id"), "description": data.get("description"),
            "email": data.get("email"), "phone": data.get("phone"), "mobile": data.get("mobile"),
            "twitter_id": data.get("twitter_id"), "facebook_id": data.get("facebook_id"),
            "unique_external_id": data.get("unique_external_id"), "job_title": data.get("job_title"),
            "language": data.get("language", "en"), "time_zone": data.get("time_zone", "UTC"),
            "tags": list(data.get("tags") or []), "other_emails": list(data.get("other_emails") or []),
            "custom_fields": dict(data.get("custom_fields") or {}), "view_all_tickets": False,
            "created_at": now, "updated_at": now,
        }
        self._contacts[contact_id] = contact
        return 201, copy.deepcopy(contact), {"Location": f"{self.url}/api/v2/contacts/{contact_id}"}

    def _list_contacts(self, request: SandboxRequest) -> Reply:
        problem = self._unknown(request.query, CONTACT_FILTERS)
        if problem:
            return problem
        paging = self._page(request)
        if len(paging) == 3:
            return paging  # type: ignore[return-value]
        found = [
            c for c in self._contacts.values()
            if all(str(c.get(name)) == request.arg(name) for name in ("email", "mobile", "phone", "unique_external_id",
                                                                      "company_id") if request.arg(name) is not None)
        ]
        return self._paged(request, copy.deepcopy(found), *paging)  # type: ignore[misc]

    def _show_contact(self, _request: SandboxRequest, contact_id: str) -> Reply:
        contact = self._contacts.get(int(contact_id))
        return (200, copy.deepcopy(contact), {}) if contact else _not_found()

    # --- tickets ---------------------------------------------------------------------------------

    def _check_ticket_fields(self, data: dict[str, Any]) -> Reply | None:
        checks: list[tuple[str, tuple[int, ...]]] = [("status", tuple(STATUSES.values())), ("priority", PRIORITIES),
                                                     ("source", CREATE_SOURCES)]
        for name, allowed in checks:
            if name in data:
                if not isinstance(data[name], int) or isinstance(data[name], bool):
                    return _validation((name, "It should be a/an Integer", "datatype_mismatch"))
                if data[name] not in allowed:
                    values = ",".join(str(v) for v in sorted(set(allowed)))
                    return _validation((name, f"It should be one of these values: '{values}'", "invalid_value"))
        for name in ("subject", "description"):
            if name in data and not isinstance(data[name], str):
                return _validation((name, "It should be a/an String", "datatype_mismatch"))
        if "tags" in data:
            tags = data["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
                return _validation(("tags", "It should be an Array of Strings", "datatype_mismatch"))
            if any("," in t or len(t) > TAG_MAX for t in tags):
                return _validation(("tags", f"It should not contain commas and be at most {TAG_MAX} characters",
                                    "invalid_value"))
        if "custom_fields" in data:
            fields = data["custom_fields"]
            if not isinstance(fields, dict):
                return _validation(("custom_fields", "It should be a/an key/value pair", "datatype_mismatch"))
            problem = self._unknown(fields, self.custom_fields)
            if problem:
                return problem
        return None

    def _create_ticket(self, _request: SandboxRequest, data: dict[str, Any]) -> Reply:
        problem = self._unknown(data, TICKET_CREATE_FIELDS) or self._check_ticket_fields(data)
        if problem:
            return problem
        requester_id = data.get("requester_id")
        if requester_id is None:
            return _validation(("requester_id", "Please fill at least 1 of requester_id, phone, email, twitter_id, "
                                                "facebook_id, unique_external_id fields", "missing_field"))
        if not isinstance(requester_id, int) or requester_id not in self._contacts:
            return _validation(("requester_id", "There is no contact matching the given requester_id", "invalid_value"))
        missing = [(name, "It should be a/an String", "missing_field") for name in ("subject", "description")
                   if not str(data.get(name) or "").strip()]
        if missing:
            return _validation(*missing)
        due, problem = self._due_dates(data)
        if problem:
            return problem
        parent = None
        if data.get("parent_id") is not None:
            parent, problem = self._parent(data["parent_id"])
            if problem:
                return problem
        description, description_text = sanitize(data["description"])
        ticket_id, now = next(self._ids), _now()
        ticket = {
            "id": ticket_id, "subject": data["subject"], "description": description,
            "description_text": description_text, "status": data.get("status", 2), "priority": data.get("priority", 1),
            "source": data.get("source", 2), "type": data.get("type"), "requester_id": requester_id,
            "responder_id": data.get("responder_id"), "group_id": data.get("group_id"), "company_id": None,
            "product_id": data.get("product_id"), "email_config_id": None, "to_emails": None,
            "cc_emails": list(data.get("cc_emails") or []), "fwd_emails": [], "reply_cc_emails": [],
            "fr_escalated": False, "spam": False, "is_escalated": False, "deleted": False,
            "tags": list(dict.fromkeys(data.get("tags") or [])), "custom_fields": self._custom(data),
            "due_by": now, "fr_due_by": now, "created_at": now, "updated_at": now, "attachments": [],
            **due,
        }
        if parent is not None:
            ticket.update(association_type=ASSOCIATION_CHILD, associated_tickets_list=[parent["id"]])
            parent["association_type"] = ASSOCIATION_PARENT
            parent.setdefault("associated_tickets_list", []).append(ticket_id)
        self._tickets[ticket_id] = ticket
        self._conversations[ticket_id] = []
        self._indexed_at[ticket_id] = time.monotonic() + self.search_index_delay
        return 201, copy.deepcopy(ticket), {"Location": f"{self.url}/api/v2/tickets/{ticket_id}"}

    def _parent(self, parent_id: Any) -> tuple[dict[str, Any] | None, Reply | None]:
        """The parent ticket a create names, or Freshdesk's refusal."""
        if not self.parent_child:
            return None, (403, {"code": "require_feature", "message": "The Parent Child Tickets feature(s) is/are not "
                                "supported in your plan. Please upgrade your account to use it."}, {})
        parent = self._tickets.get(parent_id) if isinstance(parent_id, int) and not isinstance(parent_id, bool) else None
        if parent is None or parent["deleted"]:
            return None, _validation(("parent_id", "There is no ticket matching the given parent_id", "invalid_value"))
        if parent.get("association_type") == ASSOCIATION_CHILD:
            return None, _validation(("parent_id", "It should be a valid parent ticket", "invalid_parent"))
        if len(parent.get("associated_tickets_list") or []) >= CHILD_TICKETS_PER_PARENT:
            return None, _validation(("parent_id", f"It should have at most {CHILD_TICKETS_PER_PARENT} child tickets",
                                      "exceeds_limit"))
        return parent, None

    @staticmethod
    def _due_dates(data: dict[str, Any]) -> tuple[dict[str, str], Reply | None]:
        """``fr_due_by``/``due_by`` as given (ISO times, the first reply due no later than the
        resolution), to keep on the ticket; none given: the SLA policy's (here: now)."""
        times: dict[str, datetime] = {}
        for name in ("fr_due_by", "due_by"):
            if data.get(name) is not None:
                try:
                    times[name] = datetime.fromisoformat(str(data[name]).replace("Z", "+00:00"))
                except ValueError:
                    return {}, _validation((name, "It should be a/an date format", "invalid_value"))
        if len(times) == 2 and times["fr_due_by"] > times["due_by"]:
            return {}, _validation(("fr_due_by", "It should be a/an date less than or equal to due_by", "invalid_value"))
        return {name: value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for name, value in times.items()}, None

    def _custom(self, data: dict[str, Any]) -> dict[str, Any]:
        fields = {name: None for name in sorted(self.custom_fields)}
        fields.update(data.get("custom_fields") or {})
        return fields

    def _list_tickets(self, request: SandboxRequest) -> Reply:
        problem = self._unknown(request.query, TICKET_FILTERS)
        if problem:
            return problem
        paging = self._page(request)
        if len(paging) == 3:
            return paging  # type: ignore[return-value]
        order_by = request.arg("order_by", "created_at")
        if order_by not in ("created_at", "due_by", "updated_at", "status"):
            return _validation(("order_by", "It should be one of these values: 'created_at,due_by,updated_at,status'",
                                "invalid_value"))
        found = [t for t in self._tickets.values() if not t["deleted"] and not t["spam"]]
        requester = request.arg("requester_id")
        if requester is not None:
            found = [t for t in found if str(t["requester_id"]) == requester]
        for name in ("email", "unique_external_id"):
            value = request.arg(name)
            if value is not None:
                owners = {c["id"] for c in self._contacts.values() if c.get(name) == value}
                found = [t for t in found if t["requester_id"] in owners]
        found.sort(key=lambda t: (t[order_by], t["id"]), reverse=request.arg("order_type", "desc") != "asc")
        listed = [{k: v for k, v in t.items() if k not in ("description", "description_text", "tags")} for t in found]
        return self._paged(request, copy.deepcopy(listed), *paging)  # type: ignore[misc]

    def _show_ticket(self, _request: SandboxRequest, ticket_id: str) -> Reply:
        ticket = self._tickets.get(int(ticket_id))
        return (200, copy.deepcopy(ticket), {}) if ticket else _not_found()

    def _update_ticket(self, _request: SandboxRequest, data: dict[str, Any], ticket_id: str) -> Reply:
        ticket = self._tickets.get(int(ticket_id))
        if ticket is None:
            return _not_found()
        problem = self._unknown(data, TICKET_UPDATE_FIELDS) or self._check_ticket_fields(data)
        if problem:
            return problem
        for name in ("subject", "type", "status", "priority", "responder_id", "group_id", "product_id", "due_by",
                     "fr_due_by"):
            if name in data:
                ticket[name] = data[name]
        if "tags" in data:
            ticket["tags"] = list(dict.fromkeys(data["tags"]))
        if "custom_fields" in data:
            ticket["custom_fields"].update(data["custom_fields"])
        if "description" in data:
            ticket["description"], ticket["description_text"] = sanitize(data["description"])
        ticket["updated_at"] = _now()
        return 200, copy.deepcopy(ticket), {}

    # --- notes and conversations -----------------------------------------------------------------

    def _create_note(self, _request: SandboxRequest, data: dict[str, Any], ticket_id: str) -> Reply:
        ticket = self._tickets.get(int(ticket_id))
        if ticket is None:
            return _not_found()
        problem = self._unknown(data, NOTE_FIELDS)
        if problem:
            return problem
        if not isinstance(data.get("body"), str) or not data["body"].strip():
            return _validation(("body", "It should be a/an String", "missing_field"))
        for name in ("incoming", "private"):
            if name in data and not isinstance(data[name], bool):
                return _validation((name, "It should be a/an Boolean", "datatype_mismatch"))
        user_id = data.get("user_id", self.agent_id)
        if not isinstance(user_id, int) or (user_id not in self._agents and user_id not in self._contacts):
            return _validation(("user_id", "There is no user matching the given user_id", "invalid_value"))
        body, body_text = sanitize(data["body"])
        note_id, now = next(self._ids), _now()
        note = {
            "id": note_id, "body": body, "body_text": body_text, "incoming": data.get("incoming", False),
            "private": data.get("private", True), "user_id": user_id, "support_email": None, "source": 2,
            "category": 2, "ticket_id": ticket["id"], "to_emails": [], "from_email": None, "cc_emails": [],
            "bcc_emails": [], "attachments": [], "created_at": now, "updated_at": now,
        }
        self._conversations[ticket["id"]].append(note)
        ticket["updated_at"] = now
        return 201, copy.deepcopy(note), {}

    def _list_conversations(self, request: SandboxRequest, ticket_id: str) -> Reply:
        if int(ticket_id) not in self._tickets:
            return _not_found()
        problem = self._unknown(request.query, frozenset({"page", "per_page"}))
        if problem:
            return problem
        paging = self._page(request)
        if len(paging) == 3:
            return paging  # type: ignore[return-value]
        return self._paged(request, copy.deepcopy(self._conversations[int(ticket_id)]), *paging)  # type: ignore[misc]

    # --- search ----------------------------------------------------------------------------------

    def _search_tickets(self, request: SandboxRequest) -> Reply:
        raw = request.arg("query")
        if raw is None:
            return _validation(("query", "It should be a/an String", "missing_field"))
        if len(raw) < 2 or not (raw.startswith('"') and raw.endswith('"')):
            return _validation(("query", "Query should be enclosed in double quotes", "invalid_value"))
        query = raw[1:-1].strip()
        if not query or len(query) > SEARCH_QUERY_MAX:
            return _validation(("query", f"It should be at most {SEARCH_QUERY_MAX} characters", "invalid_value"))
        try:
            page = int(request.arg("page", "1") or 1)
        except ValueError:
            page = 0
        if not 1 <= page <= SEARCH_MAX_PAGE:
            return _validation(("page", f"It should be between 1 and {SEARCH_MAX_PAGE}", "invalid_value"))
        try:
            matcher = _parse_query(query)
        except ValueError as exc:
            return _validation(("query", str(exc), "invalid_value"))
        now = time.monotonic()
        found = [t for t in self._tickets.values()
                 if not t["deleted"] and self._indexed_at.get(t["id"], 0) <= now and matcher(t)]
        found.sort(key=lambda t: t["created_at"], reverse=True)
        chunk = found[(page - 1) * SEARCH_PAGE_SIZE: page * SEARCH_PAGE_SIZE]
        results = [{k: v for k, v in t.items() if k not in ("description", "description_text")} for t in chunk]
        return 200, {"results": copy.deepcopy(results), "total": len(found)}, {}

    # --- /__sandbox/ (besides HelpdeskSandbox's) -------------------------------------------------

    def _reply_control(self, arguments: dict[str, Any], ticket_id: str) -> dict[str, Any]:
        return self.agent_reply(ticket_id, str(arguments.get("body", "")), agent_id=arguments.get("agent_id"),
                                note=bool(arguments.get("note", False)), private=bool(arguments.get("private", False)),
                                status=arguments.get("status"), add_tags=tuple(arguments.get("add_tags") or ()))

    def _automation_control(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.configure_automation(arguments.get("url"), body=str(arguments.get("body", "")),
                                  headers=arguments.get("headers") or {},
                                  events=tuple(arguments.get("events") or ("reply_sent", "note_public", "status")))
        return {"ok": True}


# --- search query language (the subset: field:value, AND, OR, parentheses) -----------------------


def _parse_query(query: str) -> Callable[[dict[str, Any]], bool]:
    tokens = re.findall(r"\(|\)|\bAND\b|\bOR\b|[A-Za-z_][\w]*:(?:'[^']*'|[^\s()]+)", query)
    if "".join(tokens).replace(" ", "") != re.sub(r"\s+", "", query):
        raise ValueError("Unsupported query syntax")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        token = tokens[position]
        position += 1
        return token

    def expression() -> Callable[[dict[str, Any]], bool]:
        left = term()
        while peek() == "OR":
            take()
            right = term()
            left = (lambda a, b: lambda t: a(t) or b(t))(left, right)
        return left

    def term() -> Callable[[dict[str, Any]], bool]:
        left = factor()
        while peek() == "AND":
            take()
            right = factor()
            left = (lambda a, b: lambda t: a(t) and b(t))(left, right)
        return left

    def factor() -> Callable[[dict[str, Any]], bool]:
        token = peek()
        if token is None:
            raise ValueError("Incomplete query")
        if token == "(":
            take()
            inner = expression()
            if peek() != ")":
                raise ValueError("Unbalanced parentheses")
            take()
            return inner
        if token in ("AND", "OR", ")"):
            raise ValueError(f"Unexpected {token}")
        return _condition(take())

    matcher = expression()
    if position != len(tokens):
        raise ValueError("Unexpected trailing terms")
    return matcher


def _condition(token: str) -> Callable[[dict[str, Any]], bool]:
    name, _, value = token.partition(":")
    value = value[1:-1] if value.startswith("'") and value.endswith("'") else value
    if name == "tag":
        return lambda t: value in t["tags"]
    if name in ("status", "priority", "requester_id", "group_id", "responder_id", "type"):
        return lambda t: str(t.get(name)) == value
    if name.startswith("cf_"):
        return lambda t: str((t.get("custom_fields") or {}).get(name)) == value
    raise ValueError(f"Unsupported search field: {name}")

