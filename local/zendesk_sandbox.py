"""A local stand-in for the part of the Zendesk Support API the bridge uses.

Pure stdlib, on ``local.sandbox_http.HelpdeskSandbox``: ``ZendeskSandbox(...).start()``
serves on a background thread. Every
response it gives is valid against Zendesk's published OpenAPI document (checked by
``tests/integration/test_zendesk_sandbox.py``), and it copies the behaviours of the real
API the bridge depends on:

* HTTP Basic auth ``{email}/token:{api_token}``, else 401 ``Couldn't authenticate you``;
* ``Idempotency-Key`` on ``POST /api/v2/tickets``: a replay within 2 hours answers the
  stored response with ``x-idempotency-lookup: hit`` (first use: ``miss``); the same key
  with a different body answers 400 ``IdempotentRequestError``;
* updating a closed ticket answers 422 ``Status: closed prevents ticket update``; a
  requester's comment on a solved (or pending) ticket reopens it;
* ``safe_update`` with ``updated_stamp`` on ``PUT /api/v2/tickets/{id}``: refused with 409
  ``UpdateConflict`` unless the stamp is the ticket's ``updated_at`` (1 s resolution, like
  the API's timestamps), so a write can never overwrite a change it did not see;
* what operators do in the agent interface (Python twins only: ``delete_ticket()``,
  ``merge_tickets()``, ``delete_user()``, ``merge_users()``): a deleted ticket answers 404
  everywhere; a merged ticket is closed with a note pointing at its target; a deleted or
  merged-away user is refused as author, requester or submitter (422 on that field) and
  no longer found by ``create_or_update``; a merge moves the user's tickets to the target;
* ``metadata`` sent with a ticket create/update lands in ``audit.metadata.custom``;
* ``GET /api/v2/tickets/{id}/comments``: oldest first, or newest first (``sort=-created_at``
  with cursor pages of ``page[size]``, ``sort_order=desc``); ``include=users`` side-loads
  the comments' authors; each comment's ``via.channel`` is ``api`` when written through the
  API, ``web`` when an agent wrote it in the UI;
* ``via_followup_source_id`` links a follow-up only when the source ticket is closed
  (Zendesk ignores it otherwise);
* ``POST /api/v2/uploads?filename=...`` takes the raw file (its type in ``Content-Type``,
  an optional ``token`` adds it to an earlier upload) and answers an upload ``token``
  valid for 60 minutes; a comment listing it in ``uploads`` gets the files as
  ``attachments`` (``content_url`` served back by the sandbox under ``/attachments/``).
  A token that is unknown, expired or already used by another comment answers 422
  (the sandbox is strict here, so a client that loses track of its tokens shows up);
  a file over 50 MB answers 413.

Webhooks and triggers (what ``make zendesk-setup`` manages; paths as in Zendesk's
webhooks.oas.yaml under ``/api/v2``, and the Support API's triggers):

* ``GET/POST /api/v2/webhooks`` (``filter[name_contains]``, ``filter[status]``, cursor pages
  with ``page[size]``/``page[after]`` and ``links.next``), ``GET/PUT/PATCH/DELETE
  /api/v2/webhooks/{id}`` (PUT/PATCH/DELETE answer 204; ``subscriptions`` cannot change),
  ``GET /api/v2/webhooks/{id}/signing_secret`` (``POST`` resets it). The signing secret is
  generated at creation (``webhook_secret=`` fixes it, for a local app started earlier);
* ``GET/POST /api/v2/triggers``, ``GET/PUT/DELETE /api/v2/triggers/{id}``: the conditions the
  sandbox can evaluate (``TRIGGER_CONDITIONS``) and ``notification_webhook`` and ``remove_tags`` actions; others
  are refused with 422 rather than silently never matching;
* triggers run after every ticket update -- the API's (current user: the API user, via id 5,
  delivered on a background thread: ``wait_for_deliveries()``), ``agent_update()``/
  ``agent_comment()`` (a human agent in the web UI, via id 0) and ``set_status()`` -- and a
  matching ``notification_webhook`` renders its body's placeholders (JSON-escaped for JSON
  webhooks; unknown ones render empty, like Zendesk's) and POSTs it to the endpoint signed
  like Zendesk (``x-zendesk-webhook-signature`` = base64 HMAC-SHA256(secret, timestamp +
  body), ``-timestamp``, ``-id``, ``-invocation-id``, ``x-zendesk-account-id``).
  ``deliveries()`` lists them with the endpoint's answers.

Bulk endpoints (each at most 100 items, else 400; at most 30 jobs queued or running, else
429 ``TooManyJobs``): ``POST /api/v2/tickets/create_many``, ``PUT /api/v2/tickets/update_many``
(batch ``{"tickets": [{"id", ...}]}`` or bulk ``?ids=`` with ``{"ticket": {...}}``) and
``POST /api/v2/users/create_or_update_many`` answer a queued ``job_status``; the job runs once
it was read ``job_polls`` times and ``job_delay`` seconds passed (constructor; 0 and 0: by the
first read), through the single endpoints' own code (so bulk tickets honour every field a
single create does). ``GET /api/v2/job_statuses/{id}`` and ``show_many?ids=`` show it, with
``results`` per item: a created ticket ``{"index", "id", "status": "Created", "success": true}``,
an upserted user the same with ``"Created"``/``"Updated"`` and its ``external_id``, an update
``{"id", "action": "update", "status": "Updated", "success": true}``, a failure
``{"index", "error", "details", "success": false}`` (the shape Zendesk answers for a failed
ticket create; an update's names ``id`` and ``action`` instead of ``index``). A job whose every item failed is
``failed``. Test controls: ``hold_jobs()``/``release_jobs()`` (a job queued until released),
``fail_bulk_items(*external ids or ticket ids)`` (those items fail in bulk jobs only),
``forget_jobs()`` (retention over: 404), ``jobs()``; HTTP twins under ``/__sandbox/jobs``.

Fields the real API returns as null but the spec declares non-nullable (priority, type,
assignee_id, group_id, organization_id on tickets) are left out rather than faked.

Faults (``inject(match="POST /api/v2/tickets", status=429, retry_after=7)``, see
``local.sandbox_http.Fault``) match an operation by its name in ``stats()["requests"]``.
Test-only endpoints (no auth, not counted, never faulted) live under ``/__sandbox/``:
``POST reset``, ``GET stats``, ``POST faults`` / ``DELETE faults``, ``GET tickets`` and
``POST tickets/{id}/status``, ``POST tickets/{id}/agent_update`` (``{"comment", "public",
"status", "add_tags", "remove_tags"}``) and ``GET deliveries``; each has a Python twin on the
class (``reset()``, ``stats()``, ``inject()``, ``clear_faults()``, ``tickets()``,
``set_status()``, ``agent_update()``, ``deliveries()``).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from local.sandbox_http import Fault, HelpdeskSandbox, RawBody, Reply, SandboxRequest

IDEMPOTENCY_TTL_SECONDS = 2 * 60 * 60
UPLOAD_TTL_SECONDS = 60 * 60  # "The token is valid for 60 minutes."
MAX_BULK_ITEMS = 100  # create_many, update_many, create_or_update_many: "up to 100"
MAX_QUEUED_JOBS = 30  # Zendesk's job limit: queued or running jobs per account
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # Zendesk's per-file attachment limit
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")

# Via ids of ticket updates (Zendesk's "Via types reference"): an agent in the web UI, the API.
VIA_WEB_FORM, VIA_WEB_SERVICE = 0, 5
# Ticket types; a comment Zendesk copies from a problem onto its incidents comes through the
# ``linked_problem`` via channel (research facts-turn2 section 2: [T], the trigger id is ours).
TICKET_TYPES = ("question", "incident", "problem", "task")
VIA_LINKED_PROBLEM, LINKED_PROBLEM_CHANNEL = 47, "linked_problem"
WEBHOOK_TIMEOUT_SECONDS = 12  # Zendesk gives an endpoint about 12 s to answer
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Trigger conditions the sandbox evaluates (field -> operators); anything else is refused
# at creation, so a condition it would silently never match cannot slip into a test.
TRIGGER_CONDITIONS: dict[str, tuple[str, ...]] = {
    "update_type": ("is",),
    "comment_is_public": ("is",),
    "current_tags": ("includes", "not_includes"),
    "role": ("is", "is_not"),
    "current_via_id": ("is", "is_not"),
    "status": ("is", "is_not", "changed", "not_changed", "value", "value_previous"),
}
TRIGGER_ACTIONS = ("notification_webhook", "remove_tags")  # remove_tags: space-separated tags, applied after the update
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_.]+)\s*\}\}")


def _webhook_error(status: int, code: str, message: str, field_name: str | None = None) -> Reply:
    """The Webhooks API's error shape (``ErrorResponse`` in webhooks.oas.yaml)."""
    item: dict[str, Any] = {"code": code, "message": message}
    if field_name:
        item["field"] = field_name
    return status, {"errors": [item]}, {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _second(stamp: str) -> int | None:
    """An ISO 8601 time as whole epoch seconds (the API's timestamps have 1 s resolution)."""
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return None


def _error(status: int, error: str, description: str | None = None, details: dict | None = None) -> Reply:
    payload: dict[str, Any] = {"error": error}
    if description is not None:
        payload["description"] = description
    if details is not None:
        payload["details"] = details
    return status, payload, {}


def _routing_fields(data: dict[str, Any]) -> tuple[dict[str, Any], Reply | None]:
    """A new ticket's ``priority`` (one of Zendesk's four words), ``group_id`` and ``brand_id``
    (ids), validated; kept on the ticket only when set (Zendesk answers null otherwise)."""
    fields: dict[str, Any] = {}
    if data.get("priority") is not None:
        if data["priority"] not in PRIORITIES:
            return {}, _invalid("priority", f"Priority: {data['priority']} is not valid")
        fields["priority"] = data["priority"]
    for name, label in (("group_id", "Group"), ("brand_id", "Brand")):
        if data.get(name) is not None:
            if not isinstance(data[name], int) or isinstance(data[name], bool) or data[name] < 1:
                return {}, _invalid(name.removesuffix("_id"), f"{label}: is invalid")
            fields[name] = data[name]
    return fields, None


def _invalid(field_name: str, description: str) -> Reply:
    return _error(422, "RecordInvalid", "Record validation errors", {field_name: [{"description": description}]})


_NOT_FOUND = (404, {"error": "RecordNotFound", "description": "Not found"}, {})


# The API the sandbox serves: (method, path template, handler). "METHOD template" names the
# operation in stats() and in faults' ``match``.
API: tuple[tuple[str, str, str], ...] = (
    ("POST", "/api/v2/users/create_or_update", "_create_or_update_user"),
    ("GET", "/api/v2/users/{user_id}", "_show_user"),
    ("GET", "/api/v2/users/search", "_search_users"),
    ("GET", "/api/v2/users/{user_id}/identities", "_list_identities"),
    ("POST", "/api/v2/users/{user_id}/identities", "_create_identity"),
    ("GET", "/api/v2/tickets", "_list_tickets"),
    ("POST", "/api/v2/tickets", "_create_ticket"),
    ("GET", "/api/v2/tickets/{ticket_id}", "_show_ticket"),
    ("PUT", "/api/v2/tickets/{ticket_id}", "_update_ticket"),
    ("GET", "/api/v2/tickets/{ticket_id}/comments", "_list_comments"),
    ("GET", "/api/v2/tickets/{ticket_id}/audits", "_list_audits"),
    ("GET", "/api/v2/tickets/{ticket_id}/incidents", "_list_incidents"),
    ("GET", "/api/v2/tickets/{ticket_id}/audits/{ticket_audit_id}", "_show_audit"),
    ("GET", "/api/v2/search", "_search"),
    ("POST", "/api/v2/uploads", "_upload"),
    # Bulk endpoints: each answers a job status, polled until the job completes.
    ("POST", "/api/v2/tickets/create_many", "_create_many_tickets"),
    ("PUT", "/api/v2/tickets/update_many", "_update_many_tickets"),
    ("POST", "/api/v2/users/create_or_update_many", "_create_or_update_many_users"),
    ("GET", "/api/v2/job_statuses/show_many", "_show_many_job_statuses"),
    ("GET", "/api/v2/job_statuses/{job_status_id}", "_show_job_status"),
    # Webhooks API (paths as in Zendesk's webhooks.oas.yaml, under /api/v2) and triggers.
    ("GET", "/api/v2/webhooks", "_list_webhooks"),
    ("POST", "/api/v2/webhooks", "_create_webhook"),
    ("GET", "/api/v2/webhooks/{webhook_id}", "_show_webhook"),
    ("PUT", "/api/v2/webhooks/{webhook_id}", "_update_webhook"),
    ("PATCH", "/api/v2/webhooks/{webhook_id}", "_patch_webhook"),
    ("DELETE", "/api/v2/webhooks/{webhook_id}", "_delete_webhook"),
    ("GET", "/api/v2/webhooks/{webhook_id}/signing_secret", "_show_signing_secret"),
    ("POST", "/api/v2/webhooks/{webhook_id}/signing_secret", "_reset_signing_secret"),
    ("GET", "/api/v2/triggers", "_list_triggers"),
    ("POST", "/api/v2/triggers", "_create_trigger"),
    ("GET", "/api/v2/triggers/{trigger_id}", "_show_trigger"),
    ("PUT", "/api/v2/triggers/{trigger_id}", "_update_trigger"),
    ("DELETE", "/api/v2/triggers/{trigger_id}", "_delete_trigger"),
)


def _path_pattern(template: str) -> str:
    """The path regex of an API template: ids are numbers, webhook ids ULIDs; ``.json`` optional."""

    def parameter(found: re.Match[str]) -> str:
        value = {"webhook_id": "[0-9A-Za-z]+", "job_status_id": "[0-9a-f]+"}.get(found[1], r"\d+")
        return f"(?P<{found[1]}>{value})"

    return re.sub(r"\{(\w+)\}", parameter, template) + r"(?:\.json)?"


class ZendeskSandbox(HelpdeskSandbox):
    """An in-memory Zendesk Support API on ``http://{host}:{port}``."""

    name = "zendesk-sandbox"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        email: str = "agent@socialdesk.local",
        api_token: str = "local-zendesk-token",
        *,
        idempotency_ttl: float = IDEMPOTENCY_TTL_SECONDS,
        upload_ttl: float = UPLOAD_TTL_SECONDS,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        webhook_secret: str | None = None,
        job_polls: int = 0,
        job_delay: float = 0.0,
    ) -> None:
        super().__init__(host, port)
        self.email, self.api_token = email, api_token
        self.idempotency_ttl = idempotency_ttl
        self.upload_ttl = upload_ttl
        self.max_upload_bytes = max_upload_bytes
        # Zendesk generates each webhook's signing secret; the local stack may fix it instead,
        # so an app started before `make zendesk-setup` already knows it.
        self.fixed_webhook_secret = webhook_secret
        # Zendesk copies a public comment on a problem onto its incidents (when the problem is
        # solved with it, or by the account's habits): off by default, on to test both behaviours.
        self.propagate_problem_comments = False
        # A bulk job runs once it was read ``job_polls`` times and ``job_delay`` seconds passed.
        self.job_polls, self.job_delay = job_polls, job_delay
        for method, template, handler in API:
            self.api(method, _path_pattern(template), f"{method} {template}", getattr(self, handler))
        # Where attachments' content_url points (Zendesk's file host: no API token, never faulted).
        self.route("GET", r"/attachments/token/(?P<token>[^/]+)/?", self._attachment, name="attachment content")
        self.control("POST", r"tickets/(?P<ticket_id>\d+)/agent_update", self._agent_update_control)
        self.control("GET", "jobs", lambda _arguments: {"jobs": self.jobs()})
        self.control("POST", "jobs/hold", lambda arguments: self.hold_jobs(
            bool(arguments.get("held", True)), kind=arguments.get("kind")) or {"ok": True})
        self.control("POST", "jobs/release", lambda _arguments: self.release_jobs() or {"ok": True})
        self.control("POST", "jobs/forget", lambda _arguments: self.forget_jobs() or {"ok": True})
        self.control("POST", "jobs/fail_items", lambda arguments: self.fail_bulk_items(
            *arguments.get("keys", []), error=arguments.get("error"), details=arguments.get("details", "Injected failure")
        ) or {"ok": True})
        self.control("POST", r"propagate_problem_comments", self._propagation_control)
        self.reset()

    # --- test controls and in-process accessors ------------------------------------------------

    def reset(self) -> None:
        """Drop every user, ticket, idempotency record, fault and counter."""
        with self._lock:
            self._ids: Counter[str] = Counter()  # one increasing sequence per kind, like Zendesk
            self._users: dict[int, dict[str, Any]] = {}
            self._identities: dict[int, list[dict[str, Any]]] = {}  # user id -> identities (email, phone_number...)
            self._tickets: dict[int, dict[str, Any]] = {}
            self._comments: dict[int, list[dict[str, Any]]] = {}
            self._deleted_tickets: dict[int, dict[str, Any]] = {}
            self._audits: dict[int, list[dict[str, Any]]] = {}
            self._idempotency: dict[str, tuple[str, float, Reply]] = {}
            # upload token -> {"expires": monotonic, "attachments": [...], "used": bool}
            self._uploads: dict[str, dict[str, Any]] = {}
            # content token (in content_url) -> (bytes, content type)
            self._files: dict[str, tuple[bytes, str]] = {}
            self._jobs: dict[str, dict[str, Any]] = {}  # job status id -> job (see _submit_job)
            self._hold_new_jobs: str | bool = False  # "all", a job kind, or False
            self._bulk_failures: dict[str, tuple[str | None, str]] = {}  # item key -> (error, details)
            self.fault_queue.reset()
            self.forget_requests()
            self.agent_id = self._new_user({"name": "Sandbox Agent", "email": self.email, "role": "admin"})["id"]
            self._reset_automation()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                **self.request_stats(),
                "tickets": len(self._tickets),
                "users": len(self._users) - 1,  # not counting the agent the API token belongs to
            }

    def set_status(self, ticket_id: int | str, status: str) -> dict[str, Any]:
        """Change a ticket's status as an agent would (no API call, no request counted).

        Active triggers run as for any update (a webhook they notify is sent before this
        returns); with no triggers configured nothing else happens."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            ticket = self._tickets[int(ticket_id)]
            previous, ticket["status"] = ticket["status"], status
            self._touch(ticket)
            events = [{"type": "Change", "field_name": "status", "value": status, "previous_value": previous}]
            self._audit(ticket["id"], self.agent_id, events, {}, "web", "sandbox")
            requests = []
            if self._triggers and previous != status:
                requests = self._triggered_requests(ticket, events, updater_id=self.human_agent(), via_id=VIA_WEB_FORM,
                                                    created=False)
            result = copy.deepcopy(ticket)
        for request in requests:
            self._deliver(request)
        return result

    # --- what operators do in the agent interface ---------------------------------------------

    def delete_ticket(self, ticket_id: int | str) -> None:
        """An agent deletes a ticket: from now on it answers 404 like a missing one."""
        with self._lock:
            self._deleted_tickets[int(ticket_id)] = self._tickets.pop(int(ticket_id))

    def merge_tickets(self, source_id: int | str, target_id: int | str) -> None:
        """An agent merges ``source`` into ``target``: the source is closed with a note
        pointing at the target, and the target gets a note about the source (no triggers)."""
        with self._lock:
            source, target = self._tickets[int(source_id)], self._tickets[int(target_id)]
            closing = {"body": f"This request was closed and merged into request #{target['id']}.", "public": False}
            events = [self._comment_event(closing, self.agent_id),
                      {"type": "Change", "field_name": "status", "value": "closed", "previous_value": source["status"]}]
            source["status"] = "closed"
            self._touch(source)
            self._audit(source["id"], self.agent_id, events, {}, "web", "sandbox")
            note = {"body": f"Request #{source['id']} was closed and merged into this request.", "public": False}
            self._touch(target)
            self._audit(target["id"], self.agent_id, [self._comment_event(note, self.agent_id)], {}, "web", "sandbox")

    def delete_user(self, user_id: int | str) -> None:
        """An admin deletes an end user: refused as author or requester from now on."""
        with self._lock:
            user = self._users[int(user_id)]
            user["active"] = False
            self._touch(user)

    def merge_users(self, source_id: int | str, target_id: int | str) -> None:
        """An agent merges end user ``source`` into ``target``: the source's tickets move to
        the target (no triggers fire) and the source is gone; the target keeps its own
        ``external_id`` (it takes the source's only if it had none)."""
        with self._lock:
            source, target = self._users[int(source_id)], self._users[int(target_id)]
            for ticket in self._tickets.values():
                if ticket["requester_id"] == source["id"]:
                    ticket["requester_id"] = target["id"]
                    self._touch(ticket)
            if not target.get("external_id"):
                target["external_id"] = source.get("external_id")
            source["active"], source["external_id"] = False, None
            self._touch(source)
            self._touch(target)

    def deleted_tickets(self) -> list[dict[str, Any]]:
        """Tickets an operator deleted (``delete_ticket``), as they were."""
        with self._lock:
            return copy.deepcopy(list(self._deleted_tickets.values()))

    def comments(self, ticket_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._comments.get(int(ticket_id), []))

    def audits(self, ticket_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._audits.get(int(ticket_id), []))

    def users(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy([u for u in self._users.values() if u["id"] != self.agent_id])

    def uploads(self) -> dict[str, dict[str, Any]]:
        """Every upload by token: its attachments and whether a comment used it."""
        with self._lock:
            return copy.deepcopy({t: {k: v for k, v in u.items() if k != "expires"} for t, u in self._uploads.items()})

    def attachment_content(self, content_url: str) -> tuple[bytes, str] | None:
        """The bytes and content type behind an attachment's ``content_url`` (None: unknown)."""
        found = re.search(r"/attachments/token/([^/?]+)", content_url)
        with self._lock:
            return self._files.get(found.group(1)) if found else None

    def expire_uploads(self) -> None:
        """Make every upload token expired, as if 60 minutes had passed."""
        with self._lock:
            for upload in self._uploads.values():
                upload["expires"] = 0.0

    # --- API requests (HelpdeskSandbox.api routes them here, faults applied) --------------------

    def _authenticated(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.email}/token:{self.api_token}".encode()).decode()
        return hmac.compare_digest((header or "").encode(), f"Basic {expected}".encode())

    def answer(self, request: SandboxRequest, handler: Callable[..., Reply], groups: dict[str, str]) -> Reply:
        """Authenticate, then call ``handler(*path ids, JSON body or query, headers=, client=)``."""
        if not self._authenticated(request.header("Authorization")):
            return 401, {"error": "Couldn't authenticate you"}, {"WWW-Authenticate": 'Basic realm="Web Password"'}
        if request.route == "POST /api/v2/uploads":  # a raw file, not JSON
            return handler(request.body, request.query, headers=request.headers, client=request.client)
        if request.method in ("POST", "PUT", "PATCH"):
            try:
                payload = json.loads(request.body or b"null")
            except ValueError as exc:
                return _error(400, "InvalidJSON", f"The request body is not valid JSON: {exc}")
            if request.route == "PUT /api/v2/tickets/update_many":  # the bulk form names its tickets in ?ids=
                return handler(payload, request.query, headers=request.headers, client=request.client)
            return handler(*groups.values(), payload, headers=request.headers, client=request.client)
        return handler(*groups.values(), request.query, headers=request.headers, client=request.client)

    def not_found(self, request: SandboxRequest) -> Reply:
        return _error(404, "InvalidEndpoint", f"Not found: {request.method} {request.path}")

    method_not_allowed = not_found

    def _attachment(self, request: SandboxRequest, token: str) -> Reply:
        found = self.attachment_content(request.path)
        return (200, RawBody(*found), {}) if found else (404, RawBody(b"Not found", "text/plain"), {})

    def _agent_update_control(self, arguments: dict[str, Any], ticket_id: str) -> dict[str, Any]:
        deliveries = self.agent_update(
            ticket_id, comment=arguments.get("comment"), public=bool(arguments.get("public", True)),
            status=arguments.get("status"), add_tags=arguments.get("add_tags") or (),
            remove_tags=arguments.get("remove_tags") or (),
        )
        return {"ticket": self.ticket(ticket_id), "deliveries": deliveries}

    def _propagation_control(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.propagate_problem_comments = bool(arguments.get("enabled", True))
        return {"propagate_problem_comments": self.propagate_problem_comments}

    def fault_reply(self, fault: Fault) -> Reply:
        status = int(fault.status or 500)
        headers = {"Retry-After": str(max(0, math.ceil(fault.retry_after)))} if fault.retry_after is not None else {}
        if status == 429:
            return 429, {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"}, headers
        name = HTTPStatus(status).phrase.replace(" ", "") if status in HTTPStatus._value2member_map_ else "Error"
        return status, {"error": name, "description": f"Injected fault: {status}"}, headers

    # --- object builders (hold the lock) ------------------------------------------------------

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _touch(self, record: dict[str, Any]) -> None:
        record["updated_at"] = _now()
        if "generated_timestamp" in record:
            record["generated_timestamp"] = int(time.time())

    def _new_user(self, data: dict[str, Any]) -> dict[str, Any]:
        user_id, now = self._next_id("user"), _now()
        user = {
            "id": user_id, "url": f"{self.url}/api/v2/users/{user_id}.json", "name": data["name"],
            "email": data.get("email"), "created_at": now, "updated_at": now, "time_zone": "UTC",
            "iana_time_zone": "Etc/UTC", "phone": data.get("phone"), "shared_phone_number": None,
            "photo": None, "locale_id": 1, "locale": "en-US", "organization_id": None,
            "role": data.get("role", "end-user"), "verified": bool(data.get("verified", False)),
            "external_id": data.get("external_id"), "tags": list(data.get("tags") or []), "active": True,
            "shared": False, "shared_agent": False, "last_login_at": None, "two_factor_auth_enabled": None,
            "role_type": None, "custom_role_id": None, "moderator": False, "ticket_restriction": "requested",
            "only_private_comments": False, "restricted_agent": True, "suspended": False,
            "report_csv": False, "user_fields": dict(data.get("user_fields") or {}),
        }
        # A number another user holds as a direct line is not refused: Zendesk makes it a shared
        # number, with no identity (research facts-turn2 section 4.1; help center "Understanding
        # how phone numbers are linked to end-user profiles"). Search still finds it by ``phone``.
        shared = bool(user["phone"]) and any(
            i["type"] == "phone_number" and _digits(i["value"]) == _digits(user["phone"])
            for identities in self._identities.values()
            for i in identities
        )
        user["shared_phone_number"] = shared if user["phone"] else None
        self._users[user_id] = user
        self._identities[user_id] = []
        for kind, value in (("email", user["email"]), ("phone_number", None if shared else user["phone"])):
            if value:
                self._add_identity(user_id, kind, value)
        return user

    def _add_identity(self, user_id: int, kind: str, value: str) -> dict[str, Any]:
        identity_id, now = self._next_id("identity"), _now()
        identity = {"url": f"{self.url}/api/v2/users/{user_id}/identities/{identity_id}.json", "id": identity_id,
                    "user_id": user_id, "type": kind, "value": value, "verified": False,
                    "primary": not any(i["type"] == kind for i in self._identities[user_id]),
                    "created_at": now, "updated_at": now, "undeliverable_count": 0,
                    "deliverable_state": "deliverable"}
        self._identities[user_id].append(identity)
        return identity

    def add_end_user(self, name: str, *, email: str | None = None, phone: str | None = None,
                     external_id: str | None = None, role: str = "end-user") -> dict[str, Any]:
        """A customer the helpdesk already knows (created by agents, another channel or an import);
        ``role="agent"``: a member of the team instead."""
        with self._lock:
            data = {"name": name, "email": email, "phone": phone, "external_id": external_id, "role": role}
            return copy.deepcopy(self._new_user(data))

    def add_identity(self, user_id: int | str, kind: str, value: str) -> dict[str, Any]:
        """One more identity of a user (``phone_number``, ``email``...): a secondary number or address."""
        with self._lock:
            return copy.deepcopy(self._add_identity(int(user_id), kind, value))

    def identities(self, user_id: int | str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._identities.get(int(user_id), []))

    def _audit(
        self, ticket_id: int, author_id: int, events: list[dict[str, Any]], custom: dict[str, Any], channel: str, client: str
    ) -> dict[str, Any]:
        audit_id = self._next_id("audit")
        for event in events:
            event["id"] = self._next_id("event")
            if event["type"] == "Comment":
                event["audit_id"] = audit_id
        audit = {
            "id": audit_id, "ticket_id": ticket_id, "created_at": _now(), "author_id": author_id,
            "metadata": {"system": {"client": client, "ip_address": "127.0.0.1", "location": "Sandbox"}, "custom": custom},
            "via": {"channel": channel, "source": {"from": {}, "to": {}, "rel": None}},
            "events": events,
        }
        self._audits.setdefault(ticket_id, []).append(audit)
        for event in events:
            if event["type"] == "Comment":
                comment = {k: v for k, v in event.items() if k != "id"}
                comment = {"id": event["id"], **comment, "via": audit["via"], "created_at": audit["created_at"],
                           "metadata": copy.deepcopy(audit["metadata"])}
                self._comments.setdefault(ticket_id, []).append(comment)
        return audit

    def _comment_event(self, comment: dict[str, Any], author_id: int) -> dict[str, Any]:
        """A Comment event; the files of its ``uploads`` become its ``attachments`` (tokens used up)."""
        body = str(comment.get("body") or "")
        html_body = comment.get("html_body") or f'<div class="zd-comment" dir="auto"><p>{html.escape(body)}</p></div>'
        attachments: list[dict[str, Any]] = []
        for token in comment.get("uploads") or []:
            upload = self._uploads[token]
            upload["used"] = True
            attachments.extend(copy.deepcopy(upload["attachments"]))
        return {"type": "Comment", "author_id": author_id, "body": body or re.sub(r"<[^>]+>", "", html_body),
                "html_body": html_body, "plain_body": body, "public": bool(comment.get("public", True)),
                "attachments": attachments}

    def _live_user(self, user_id: Any) -> bool:
        user = self._users.get(user_id) if isinstance(user_id, int) else None
        return user is not None and bool(user["active"])

    def _check_comment(self, comment: Any) -> tuple[int, Reply | None]:
        if not isinstance(comment, dict) or not (comment.get("body") or comment.get("html_body")):
            return 0, _invalid("description", "Description: cannot be blank")
        author_id = comment.get("author_id", self.agent_id)
        if not self._live_user(author_id):
            return 0, _invalid("author_id", "Author: is invalid")
        uploads = comment.get("uploads", [])
        if not isinstance(uploads, list) or not all(isinstance(t, str) for t in uploads):
            return 0, _invalid("uploads", "Uploads: must be a list of upload tokens")
        now = time.monotonic()
        for token in uploads:
            upload = self._uploads.get(token)
            if upload is None or upload["expires"] <= now or upload["used"]:
                return 0, _invalid("uploads", f"Uploads: token {token} is invalid or has expired")
        return author_id, None

    # --- users ----------------------------------------------------------------------------------

    def _create_or_update_user(self, payload: Any, **_: Any) -> Reply:
        data = payload.get("user") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return _error(400, "ParameterMissing", "param is missing or the value is empty: user")
        with self._lock:
            live = [u for u in self._users.values() if u["active"]]
            existing = next((u for u in live if data.get("external_id") and u["external_id"] == data["external_id"]), None)
            existing = existing or next((u for u in live if data.get("email") and u["email"] == data["email"]), None)
            if existing is None:
                if not str(data.get("name") or "").strip():
                    return _invalid("name", "Name:  is too short (minimum one character)")
                return 201, {"user": copy.deepcopy(self._new_user(data))}, {}
            for key in ("name", "email", "phone", "role", "external_id", "verified", "tags", "user_fields"):
                if key in data:
                    existing[key] = data[key]
            held = {(i["type"], i["value"]) for i in self._identities[existing["id"]]}
            for kind, value in (("email", data.get("email")), ("phone_number", data.get("phone"))):
                if value and (kind, value) not in held:  # Zendesk adds it as another identity
                    self._add_identity(existing["id"], kind, value)
            self._touch(existing)
            return 200, {"user": copy.deepcopy(existing)}, {}

    # --- uploads --------------------------------------------------------------------------------

    def _upload(self, body: bytes, query: dict[str, list[str]], *, headers: Any, **_: Any) -> Reply:
        filename = ((query.get("filename") or [""])[0]).strip()
        if not filename:
            return _error(400, "ParameterMissing", "param is missing or the value is empty: filename")
        if len(body) > self.max_upload_bytes:
            return _error(413, "RecordInvalid", "Record validation errors",
                          {"size": [{"description": f"Size: must be less than {self.max_upload_bytes // (1024 * 1024)} MB"}]})
        if not body:
            return _invalid("size", "Size: file cannot be empty")
        content_type = (headers.get("Content-Type") or "application/binary").split(";", 1)[0].strip() or "application/binary"
        with self._lock:
            token = (query.get("token") or [""])[0]
            upload = self._uploads.get(token) if token else None
            if token and (upload is None or upload["expires"] <= time.monotonic() or upload["used"]):
                return _invalid("token", f"Token: {token} is invalid or has expired")
            if upload is None:
                token = secrets.token_urlsafe(18)
                upload = self._uploads[token] = {"expires": time.monotonic() + self.upload_ttl, "attachments": [], "used": False}
            attachment_id, content_token = self._next_id("attachment"), secrets.token_urlsafe(18)
            content_url = f"{self.url}/attachments/token/{content_token}/?name={quote(filename)}"
            attachment = {
                "id": attachment_id, "url": f"{self.url}/api/v2/attachments/{attachment_id}.json",
                "file_name": filename, "content_url": content_url, "mapped_content_url": content_url,
                "content_type": content_type, "size": len(body), "inline": False, "deleted": False,
                "malware_access_override": False, "malware_scan_result": "not_scanned", "thumbnails": [],
            }
            self._files[content_token] = (bytes(body), content_type)
            upload["attachments"].append(attachment)
            payload = {"upload": {"token": token, "attachment": copy.deepcopy(attachment),
                                  "attachments": copy.deepcopy(upload["attachments"])}}
            return 201, payload, {}

    def _search_users(self, query: dict[str, list[str]], **_: Any) -> Reply:
        """``external_id=`` (exact) or ``query=`` (``email:x``, ``phone:x`` or free words), matched
        partially like Zendesk's search on name, email and phone (the user's own and their
        identities). The same keyword repeated is an OR (``phone:1 phone:2``), different ones
        an AND, as in Zendesk's search syntax; pages of 100 (``page=``)."""
        external_id = (query.get("external_id") or [""])[0]
        wanted: dict[str, list[str]] = {}
        for term in (query.get("query") or [""])[0].split():
            field_name, _, value = term.partition(":") if ":" in term else ("", "", term)
            if value.strip('"'):
                wanted.setdefault(field_name.lower(), []).append(value.strip('"').lower())
        number = max(1, int((query.get("page") or ["1"])[0]))
        with self._lock:
            found = []
            for user in self._users.values():
                if not user["active"]:
                    continue
                if external_id:
                    if (user["external_id"] or "").lower() == external_id.lower():
                        found.append(user)
                    continue
                identities = self._identities.get(user["id"], [])
                emails = [i["value"].lower() for i in identities if i["type"] == "email"]
                phones = [i["value"] for i in identities if i["type"] == "phone_number"] + [user["phone"] or ""]
                fields = {"email": emails, "phone": phones, "": [user["name"].lower(), *emails, *phones]}
                if wanted and all(
                    any(value in candidate for value in values for candidate in fields.get(name, []))
                    for name, values in wanted.items()
                ):
                    found.append(user)
            page = found[(number - 1) * 100 : number * 100]
            following = f"{self.url}/api/v2/users/search.json?page={number + 1}" if number * 100 < len(found) else None
            return 200, {"users": copy.deepcopy(page), "count": len(found), "next_page": following, "previous_page": None}, {}

    def _list_identities(self, user_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            if int(user_id) not in self._users:
                return _NOT_FOUND
            found = self._identities.get(int(user_id), [])
            return 200, {"identities": copy.deepcopy(found), "count": len(found), "next_page": None, "previous_page": None}, {}

    def _create_identity(self, user_id: str, payload: Any, **_: Any) -> Reply:
        """Types of the Identities API; an email another user holds is refused (422), a taken
        phone number too (Zendesk would make it a shared number instead)."""
        data = payload.get("identity") if isinstance(payload, dict) else None
        if not isinstance(data, dict) or not data.get("type") or not str(data.get("value") or "").strip():
            return _error(400, "ParameterMissing", "param is missing or the value is empty: identity")
        kinds = ("email", "twitter", "facebook", "google", "phone_number", "agent_forwarding", "any_channel", "foreign", "sdk")
        if data["type"] not in kinds:
            return _invalid("type", f"Type: {data['type']} is not valid")
        with self._lock:
            if int(user_id) not in self._users:
                return _NOT_FOUND
            value = str(data["value"]).strip()
            for owner, identities in self._identities.items():
                for identity in identities:
                    if identity["type"] == data["type"] and identity["value"].lower() == value.lower():
                        if owner == int(user_id):
                            return 201, {"identity": copy.deepcopy(identity)}, {}
                        return _invalid("value", f"Value: {value} is already being used by another user")
            return 201, {"identity": copy.deepcopy(self._add_identity(int(user_id), data["type"], value))}, {}

    def _show_user(self, user_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            user = self._users.get(int(user_id))
            return (200, {"user": copy.deepcopy(user)}, {}) if user else _NOT_FOUND

    # --- tickets --------------------------------------------------------------------------------

    def _create_ticket(self, payload: Any, *, headers: Any, client: str) -> Reply:
        data = payload.get("ticket") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return _error(400, "ParameterMissing", "param is missing or the value is empty: ticket")
        key = headers.get("Idempotency-Key")
        fingerprint = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key:
                stored = self._idempotency.get(key)
                if stored and stored[1] > time.monotonic():
                    if stored[0] != fingerprint:
                        return _error(400, "IdempotentRequestError", "Request parameters don't match the given idempotency key")
                    status, body, extra = stored[2]
                    return status, copy.deepcopy(body), {**extra, "x-idempotency-lookup": "hit"}
            reply = self._do_create_ticket(data, client)
            if key and 200 <= reply[0] < 300:
                self._idempotency[key] = (fingerprint, time.monotonic() + self.idempotency_ttl, copy.deepcopy(reply))
            if key:
                reply[2]["x-idempotency-lookup"] = "miss"
            return reply

    def _do_create_ticket(self, data: dict[str, Any], client: str) -> Reply:
        requester_id = data.get("requester_id", self.agent_id)
        if not self._live_user(requester_id):
            return _invalid("requester", "Requester: is invalid")
        author_id, problem = self._check_comment(data.get("comment"))
        if problem:
            return problem
        submitter_id = data.get("submitter_id", self.agent_id)
        if not self._live_user(submitter_id):
            return _invalid("submitter", "Submitter: is invalid")
        status = data.get("status", "new")
        if status not in STATUSES:
            return _invalid("status", f"Status: {status} is not valid")
        link, problem = self._problem_link(data, None)
        if problem:
            return problem
        routing, problem = _routing_fields(data)
        if problem:
            return problem
        comment = self._comment_event(data["comment"], author_id)
        ticket_id, now = self._next_id("ticket"), _now()
        ticket: dict[str, Any] = {
            "url": f"{self.url}/api/v2/tickets/{ticket_id}.json", "id": ticket_id,
            "external_id": data.get("external_id"), "via": {"channel": "api", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": now, "updated_at": now, "generated_timestamp": int(time.time()),
            "subject": data.get("subject") or comment["body"][:80], "raw_subject": data.get("subject") or comment["body"][:80],
            "description": comment["body"], "status": status, "requester_id": requester_id,
            "submitter_id": submitter_id, "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
            "has_incidents": False, "is_public": comment["public"], "tags": list(dict.fromkeys(data.get("tags") or [])),
            "custom_fields": [], "sharing_agreement_ids": [], "followup_ids": [], "due_at": None,
            "allow_channelback": False, "allow_attachments": True, "from_messaging_channel": False,
        }
        self._apply_problem_link(ticket, link)
        ticket.update(routing)
        if ticket["external_id"] is None:
            del ticket["external_id"]
        source = self._tickets.get(data.get("via_followup_source_id") or 0)
        if source is not None and source["status"] == "closed":  # "It has no effect with other tickets."
            ticket["via_followup_source_id"] = source["id"]
            ticket["via"]["source"] = {"from": {"ticket_id": source["id"], "subject": source["subject"]}, "to": {}, "rel": "follow_up"}
            source["followup_ids"].append(ticket_id)
        self._tickets[ticket_id] = ticket
        events = [comment] + [
            {"type": "Create", "field_name": name, "value": value}
            for name, value in (("subject", ticket["subject"]), ("requester_id", str(requester_id)),
                                ("status", status), ("tags", ticket["tags"]),
                                *((name, str(value)) for name, value in routing.items()))
            if value != []
        ]
        audit = self._audit(ticket_id, author_id, events, self._custom(data), "api", client)
        self._run_triggers_async(ticket, events, updater_id=self.agent_id, via_id=VIA_WEB_SERVICE, created=True)
        return 201, {"ticket": copy.deepcopy(ticket), "audit": copy.deepcopy(audit)}, {"Location": ticket["url"]}

    def _problem_link(self, data: dict[str, Any], ticket: dict[str, Any] | None) -> tuple[dict[str, Any], Reply | None]:
        """The ``type`` and ``problem_id`` a create or update sets (validated): an incident's
        problem must be a ticket of type problem, and a ticket with incidents stays a problem."""
        link: dict[str, Any] = {}
        if "type" in data:
            if data["type"] is not None and data["type"] not in TICKET_TYPES:
                return {}, _invalid("type", f"Type: {data['type']} is not valid")
            link["type"] = data["type"]
        if data.get("problem_id") is not None:
            problem = self._tickets.get(data["problem_id"]) if isinstance(data["problem_id"], int) else None
            if problem is None or problem.get("type") != "problem" or (ticket is not None and problem is ticket):
                return {}, _invalid("problem_id", "Problem: is invalid")
            link["problem_id"] = problem["id"]
        kind = link.get("type", ticket.get("type") if ticket else None)
        if link.get("problem_id") is not None and kind != "incident":
            return {}, _invalid("problem_id", "Problem: can only be set on an incident")
        if ticket is not None and ticket.get("has_incidents") and kind != "problem":
            return {}, _invalid("type", "Type: a problem with incidents cannot change its type")
        if kind != "incident" and (ticket or {}).get("problem_id") is not None:
            link["problem_id"] = None  # no longer an incident: unlinked
        return link, None

    def _apply_problem_link(self, ticket: dict[str, Any], link: dict[str, Any]) -> None:
        """Set ``type``/``problem_id``; an unset one is left out of the ticket (Zendesk's spec: never null)."""
        for name, value in link.items():
            if value is None:
                ticket.pop(name, None)
            else:
                ticket[name] = value
        problem = self._tickets.get(ticket.get("problem_id") or 0)
        if problem is not None:  # (an operator may have deleted it: the incident keeps its link)
            problem["has_incidents"] = True

    def incidents(self, problem_id: int | str) -> list[dict[str, Any]]:
        """The incidents linked to a problem (in-process accessor), oldest first."""
        with self._lock:
            return [copy.deepcopy(t) for t in self._tickets.values() if t.get("problem_id") == int(problem_id)]

    def _list_incidents(self, ticket_id: str, query: dict[str, list[str]], **_: Any) -> Reply:
        """``GET /api/v2/tickets/{id}/incidents``: cursor pages (``page[size]``, at most 100,
        ``meta``/``links``) or offset pages (``per_page``, ``page``, ``next_page``), like Zendesk."""
        def arg(name: str) -> str:
            return (query.get(name) or [""])[0]

        with self._lock:
            if int(ticket_id) not in self._tickets:
                return _NOT_FOUND
            items = [t for t in self._tickets.values() if t.get("problem_id") == int(ticket_id)]
            base = f"{self.url}/api/v2/tickets/{int(ticket_id)}/incidents"
            if arg("page[size]"):
                size, after = min(100, max(1, int(arg("page[size]")))), int(arg("page[after]") or 0)
                page, has_more = copy.deepcopy(items[after: after + size]), after + size < len(items)
                payload: dict[str, Any] = {"tickets": page, "meta": {"has_more": has_more}, "links": {}}
                if has_more:
                    payload["meta"]["after_cursor"] = str(after + size)
                    payload["links"]["next"] = f"{base}?{quote('page[size]')}={size}&{quote('page[after]')}={after + size}"
                return 200, payload, {}
            size, number = min(100, max(1, int(arg("per_page") or 100))), max(1, int(arg("page") or 1))
            page = copy.deepcopy(items[(number - 1) * size: number * size])
            following = f"{base}?per_page={size}&page={number + 1}" if number * size < len(items) else None
            return 200, {"tickets": page, "next_page": following, "previous_page": None, "count": len(items)}, {}

    def _propagate_to_incidents(self, problem: dict[str, Any], comment: dict[str, Any], author: int) -> list[dict[str, Any]]:
        """Copy a public comment on a problem onto each open incident (holds the lock), ``via``
        the linked problem; returns the webhook requests the incidents' triggers send."""
        requests: list[dict[str, Any]] = []
        for incident in [t for t in self._tickets.values() if t.get("problem_id") == problem["id"]]:
            if incident["status"] == "closed":
                continue
            copied = self._comment_event({"body": comment["body"], "public": comment["public"]}, author)
            self._touch(incident)
            audit = self._audit(incident["id"], author, [copied], {}, LINKED_PROBLEM_CHANNEL, "Zendesk")
            source = {"from": {"ticket_id": problem["id"], "subject": problem["subject"]}, "to": {}, "rel": "problem"}
            audit["via"]["source"] = source
            self._comments[incident["id"]][-1]["via"] = copy.deepcopy(audit["via"])
            requests += self._triggered_requests(incident, [copied], updater_id=author, via_id=VIA_LINKED_PROBLEM, created=False)
        return requests

    @staticmethod
    def _custom(data: dict[str, Any]) -> dict[str, Any]:
        metadata = data.get("metadata")
        return copy.deepcopy(metadata) if isinstance(metadata, dict) else {}

    def _update_ticket(self, ticket_id: str, payload: Any, *, client: str, **_: Any) -> Reply:
        data = payload.get("ticket") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            return _error(400, "ParameterMissing", "param is missing or the value is empty: ticket")
        with self._lock:
            ticket = self._tickets.get(int(ticket_id))
            if ticket is None:
                return _NOT_FOUND
            if "safe_update" in data:  # "A value of false has the same effect as true"
                stamp = data.get("updated_stamp")
                if not isinstance(stamp, str) or _second(stamp) is None:
                    return _invalid("updated_stamp", "Updated stamp: is required for a safe update")
                if _second(stamp) != _second(ticket["updated_at"]):
                    return _error(409, "UpdateConflict", "Safe Update prevented the update due to outdated ticket data. "
                                  "Please fetch the latest ticket data and try again.")
            if ticket["status"] == "closed":
                return _invalid("status", "Status: closed prevents ticket update")
            events: list[dict[str, Any]] = []
            author_id = self.agent_id
            status = data.get("status")
            if "comment" in data:
                author_id, problem = self._check_comment(data["comment"])
                if problem:
                    return problem
            if status is not None and status not in STATUSES:
                return _invalid("status", f"Status: {status} is not valid")
            link, problem = self._problem_link(data, ticket)
            if problem:
                return problem
            if "comment" in data:  # validated: its upload tokens are used up now
                events.append(self._comment_event(data["comment"], author_id))
            for name, value in link.items():
                if ticket.get(name) != value:
                    events.append({"type": "Change", "field_name": name, "value": value, "previous_value": ticket.get(name)})
            self._apply_problem_link(ticket, link)
            reopens = events and events[0]["type"] == "Comment" and events[0]["public"] and author_id == ticket["requester_id"]
            if status is None and reopens and ticket["status"] in ("solved", "pending"):
                status = "open"  # the requester replied: Zendesk reopens the ticket
            if status is not None and status != ticket["status"]:
                events.append({"type": "Change", "field_name": "status", "value": status, "previous_value": ticket["status"]})
                ticket["status"] = status
            if isinstance(data.get("tags"), list) and data["tags"] != ticket["tags"]:
                events.append({"type": "Change", "field_name": "tags", "value": data["tags"], "previous_value": ticket["tags"]})
                ticket["tags"] = list(dict.fromkeys(data["tags"]))
            self._touch(ticket)
            audit = self._audit(ticket["id"], author_id, events, self._custom(data), "api", client)
            self._run_triggers_async(ticket, events, updater_id=self.agent_id, via_id=VIA_WEB_SERVICE, created=False)
            return 200, {"ticket": copy.deepcopy(ticket), "audit": copy.deepcopy(audit)}, {}

    def _show_ticket(self, ticket_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            ticket = self._tickets.get(int(ticket_id))
            return (200, {"ticket": copy.deepcopy(ticket)}, {}) if ticket else _NOT_FOUND

    def _list_tickets(self, query: dict[str, list[str]], **_: Any) -> Reply:
        wanted = (query.get("external_id") or [""])[0]  # blank: no filter
        with self._lock:
            found = [t for t in self._tickets.values() if not wanted or t.get("external_id") == wanted]
            return 200, {"tickets": copy.deepcopy(found), "next_page": None, "previous_page": None, "count": len(found)}, {}

    def _list_comments(self, ticket_id: str, query: dict[str, list[str]], **_: Any) -> Reply:
        """Oldest first by default; ``sort=-created_at`` (cursor) or ``sort_order=desc`` (offset)
        newest first. ``page[size]`` (at most 100) answers cursor pages (``meta``, ``links``);
        ``include=users`` side-loads the authors of the comments listed."""
        def arg(name: str) -> str:
            return (query.get(name) or [""])[0]

        if not arg("page[size]"):
            reply = self._list_of(ticket_id, "comments", self._comments)
            if reply[0] == 200 and arg("sort_order") == "desc":
                reply[1]["comments"].reverse()
            if reply[0] == 200 and "users" in arg("include").split(","):
                reply[1]["users"] = self._authors(reply[1]["comments"])
            return reply
        with self._lock:
            if int(ticket_id) not in self._tickets:
                return _NOT_FOUND
            items = list(self._comments.get(int(ticket_id), []))
            if arg("sort") == "-created_at":
                items.reverse()
            size, after = min(100, max(1, int(arg("page[size]")))), int(arg("page[after]") or 0)
            page, has_more = copy.deepcopy(items[after: after + size]), after + size < len(items)
            payload: dict[str, Any] = {"comments": page, "meta": {"has_more": has_more}, "links": {}}
            if has_more:
                payload["meta"]["after_cursor"] = str(after + size)
                params = "&".join(f"{quote(k)}={quote(v[0])}" for k, v in query.items() if k != "page[after]")
                payload["links"]["next"] = (f"{self.url}/api/v2/tickets/{int(ticket_id)}/comments?{params}"
                                            f"&{quote('page[after]')}={after + size}")
            if "users" in arg("include").split(","):
                payload["users"] = self._authors(page)
            return 200, payload, {}

    def _authors(self, comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The users who wrote ``comments`` (side-loaded with ``include=users``); a deleted one is left out."""
        with self._lock:
            ids = dict.fromkeys(c["author_id"] for c in comments)
            return [copy.deepcopy(self._users[i]) for i in ids if i in self._users]

    def _list_audits(self, ticket_id: str, _query: Any, **_: Any) -> Reply:
        return self._list_of(ticket_id, "audits", self._audits)

    def _show_audit(self, ticket_id: str, audit_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            if int(ticket_id) not in self._tickets:
                return _NOT_FOUND
            audit = next((a for a in self._audits.get(int(ticket_id), []) if a["id"] == int(audit_id)), None)
            return (200, {"audit": copy.deepcopy(audit)}, {}) if audit else _NOT_FOUND

    def _list_of(self, ticket_id: str, name: str, store: dict[int, list[dict[str, Any]]]) -> Reply:
        with self._lock:
            if int(ticket_id) not in self._tickets:
                return _NOT_FOUND
            items = copy.deepcopy(store.get(int(ticket_id), []))
            return 200, {name: items, "next_page": None, "previous_page": None, "count": len(items)}, {}

    def _search(self, query: dict[str, list[str]], **_: Any) -> Reply:
        """Tickets only: ``type:ticket``, ``status:x``, ``external_id:x``, ``requester_id:n``, ``tags:x``, free words."""
        terms = (query.get("query") or [""])[0].split()
        if not terms:
            return _error(400, "InvalidSearch", "query is required")
        with self._lock:
            results = [
                {**copy.deepcopy(ticket), "result_type": "ticket"}
                for ticket in self._tickets.values()
                if all(_search_term_matches(term, ticket) for term in terms)
            ]
            return 200, {"results": results, "facets": None, "next_page": None, "previous_page": None, "count": len(results)}, {}

    # --- webhooks and triggers -------------------------------------------------------------------

    def _reset_automation(self) -> None:
        self._webhooks: dict[str, dict[str, Any]] = {}
        self._webhook_secrets: dict[str, str] = {}
        self._triggers: dict[int, dict[str, Any]] = {}
        self._deliveries: list[dict[str, Any]] = []
        self._delivery_threads: list[threading.Thread] = []
        self.account_id = "9000001"
        self.human_agent_id: int | None = None

    def webhooks(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._webhooks.values()))

    def webhook_secret(self, webhook_id: str) -> str:
        with self._lock:
            return self._webhook_secrets[webhook_id]

    def triggers(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(sorted(self._triggers.values(), key=lambda t: t["position"]))

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook request the triggers sent, with the endpoint's answer."""
        self.wait_for_deliveries()
        with self._lock:
            return copy.deepcopy(self._deliveries)

    def wait_for_deliveries(self, timeout: float = 30.0) -> None:
        """Wait for the deliveries of API-made updates (sent on background threads)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in self._delivery_threads if t.is_alive()]
                self._delivery_threads = pending
            if not pending:
                return
            pending[0].join(max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return

    @staticmethod
    def _ulid() -> str:
        return "01" + "".join(secrets.choice(_ULID_ALPHABET) for _ in range(24))

    def _new_secret(self) -> str:
        return self.fixed_webhook_secret or base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()

    def _webhook_fields(self, data: Any, *, partial: bool) -> tuple[dict[str, Any], Reply | None]:
        if not isinstance(data, dict):
            return {}, _webhook_error(400, "InvalidInput", "webhook is required", "webhook")
        fields_: dict[str, Any] = {}
        for name in ("name", "description", "endpoint", "http_method", "request_format", "status"):
            if name in data:
                if not isinstance(data[name], str):
                    return {}, _webhook_error(400, "InvalidValue", f"{name} must be a string", name)
                fields_[name] = data[name]
        if "subscriptions" in data:
            if not isinstance(data["subscriptions"], list) or not all(isinstance(x, str) for x in data["subscriptions"]):
                return {}, _webhook_error(400, "InvalidValue", "subscriptions must be a list of strings", "subscriptions")
            fields_["subscriptions"] = list(data["subscriptions"])
        for name in ("authentication", "custom_headers"):
            if name in data:
                fields_[name] = copy.deepcopy(data[name])
        if "signing_secret" in data or "external_source" in data:
            return {}, _webhook_error(400, "InvalidInput", "signing_secret and external_source cannot be set by admins")
        if not partial:
            for name in ("name", "endpoint", "http_method", "request_format", "status"):
                if not fields_.get(name):
                    return {}, _webhook_error(400, "MissingField", f"{name} is required", name)
        if "endpoint" in fields_ and urlsplit(fields_["endpoint"]).scheme not in ("http", "https"):
            return {}, _webhook_error(400, "InvalidValue", "endpoint must be an http(s) URL", "endpoint")
        if fields_.get("http_method", "POST") not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            return {}, _webhook_error(400, "InvalidValue", "http_method is not valid", "http_method")
        if fields_.get("request_format", "json") not in ("json", "xml", "form_encoded"):
            return {}, _webhook_error(400, "InvalidValue", "request_format is not valid", "request_format")
        if fields_.get("status", "active") not in ("active", "inactive"):
            return {}, _webhook_error(400, "InvalidValue", "status is not valid", "status")
        return fields_, None

    def _create_webhook(self, payload: Any, **_: Any) -> Reply:
        data = payload.get("webhook") if isinstance(payload, dict) else None
        fields_, problem = self._webhook_fields(data, partial=False)
        if problem:
            return problem
        with self._lock:
            webhook_id, now = self._ulid(), _now()
            webhook = {"id": webhook_id, **fields_, "created_at": now, "created_by": str(self.agent_id),
                       "updated_at": now, "updated_by": str(self.agent_id)}
            webhook.setdefault("subscriptions", [])
            self._webhooks[webhook_id] = webhook
            self._webhook_secrets[webhook_id] = self._new_secret()  # Zendesk generates it
            return 201, {"webhook": copy.deepcopy(webhook)}, {"Location": f"{self.url}/api/v2/webhooks/{webhook_id}"}

    def _list_webhooks(self, query: dict[str, list[str]], **_: Any) -> Reply:
        contains = (query.get("filter[name_contains]") or [""])[0].lower()
        status = (query.get("filter[status]") or [""])[0]
        size = int((query.get("page[size]") or ["100"])[0] or 100)
        after = int((query.get("page[after]") or ["0"])[0] or 0)
        with self._lock:
            found = [w for w in self._webhooks.values()
                     if contains in w["name"].lower() and (not status or w["status"] == status)]
            page = found[after: after + size]
            has_more = after + size < len(found)
            meta: dict[str, Any] = {"has_more": has_more}
            links: dict[str, Any] = {}
            if has_more:
                meta["after_cursor"] = str(after + size)
                params = "&".join(f"{quote(k)}={quote(v[0])}" for k, v in query.items() if k != "page[after]")
                links["next"] = f"{self.url}/api/v2/webhooks?{params}&{quote('page[after]')}={after + size}".replace("?&", "?")
            return 200, {"webhooks": copy.deepcopy(page), "meta": meta, "links": links}, {}

    def _show_webhook(self, webhook_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            webhook = self._webhooks.get(webhook_id)
            if webhook is None:
                return _webhook_error(404, "RecordNotFound", "Webhook not found")
            return 200, {"webhook": copy.deepcopy(webhook)}, {}

    def _change_webhook(self, webhook_id: str, payload: Any, *, partial: bool) -> Reply:
        data = payload.get("webhook") if isinstance(payload, dict) else None
        fields_, problem = self._webhook_fields(data, partial=partial)
        if problem:
            return problem
        with self._lock:
            webhook = self._webhooks.get(webhook_id)
            if webhook is None:
                return _webhook_error(404, "RecordNotFound", "Webhook not found")
            if "subscriptions" in fields_ and sorted(fields_["subscriptions"]) != sorted(webhook["subscriptions"]):
                # "You can't change an existing webhook's connection method."
                return _webhook_error(400, "InvalidValue", "subscriptions cannot be changed", "subscriptions")
            if not partial:
                for name in ("description", "authentication", "custom_headers"):
                    webhook.pop(name, None)
            webhook.update(fields_)
            webhook["updated_at"], webhook["updated_by"] = _now(), str(self.agent_id)
            return 204, {}, {}

    def _update_webhook(self, webhook_id: str, payload: Any, **_: Any) -> Reply:
        return self._change_webhook(webhook_id, payload, partial=False)

    def _patch_webhook(self, webhook_id: str, payload: Any, **_: Any) -> Reply:
        return self._change_webhook(webhook_id, payload, partial=True)

    def _delete_webhook(self, webhook_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            if self._webhooks.pop(webhook_id, None) is None:
                return _webhook_error(404, "RecordNotFound", "Webhook not found")
            self._webhook_secrets.pop(webhook_id, None)
            return 204, {}, {}

    def _show_signing_secret(self, webhook_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            if webhook_id not in self._webhooks:
                return _webhook_error(404, "RecordNotFound", "Webhook not found")
            return 200, {"signing_secret": {"algorithm": "SHA256", "secret": self._webhook_secrets[webhook_id]}}, {}

    def _reset_signing_secret(self, webhook_id: str, _payload: Any, **_: Any) -> Reply:
        with self._lock:
            if webhook_id not in self._webhooks:
                return _webhook_error(404, "RecordNotFound", "Webhook not found")
            self._webhook_secrets[webhook_id] = self._new_secret()
            return 201, {"signing_secret": {"algorithm": "SHA256", "secret": self._webhook_secrets[webhook_id]}}, {}

    def _trigger_fields(self, data: Any) -> tuple[dict[str, Any], Reply | None]:
        if not isinstance(data, dict):
            return {}, _error(400, "ParameterMissing", "param is missing or the value is empty: trigger")
        title = data.get("title")
        if not isinstance(title, str) or not title.strip():
            return {}, _invalid("title", "Title: cannot be blank")
        conditions = data.get("conditions")
        if not isinstance(conditions, dict):
            return {}, _invalid("conditions", "Conditions: must be an object with all and any")
        checked: dict[str, list[dict[str, Any]]] = {"all": [], "any": []}
        for group in ("all", "any"):
            for condition in conditions.get(group) or []:
                if not isinstance(condition, dict):
                    return {}, _invalid("conditions", "Conditions: each condition must be an object")
                name, operator = condition.get("field"), condition.get("operator")
                if name not in TRIGGER_CONDITIONS or operator not in TRIGGER_CONDITIONS[name]:
                    return {}, _invalid("conditions", f"Conditions: {name} {operator} is not supported by the sandbox")
                checked[group].append(copy.deepcopy(condition))
        actions = data.get("actions")
        if not isinstance(actions, list) or not actions:
            return {}, _invalid("actions", "Actions: cannot be blank")
        for action in actions:
            if not isinstance(action, dict) or action.get("field") not in TRIGGER_ACTIONS:
                return {}, _invalid("actions", f"Actions: {action!r} is not supported by the sandbox")
            value = action.get("value")
            if action["field"] == "remove_tags":
                if not (isinstance(value, str) and value.strip()):
                    return {}, _invalid("actions", "Actions: remove_tags takes the tags, separated by spaces")
                continue
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
                return {}, _invalid("actions", "Actions: notification_webhook takes [webhook id, body]")
            if value[0] not in self._webhooks:
                return {}, _invalid("actions", f"Actions: webhook {value[0]} does not exist")
        fields_ = {"title": title, "raw_title": title, "conditions": checked, "actions": copy.deepcopy(actions),
                   "active": bool(data.get("active", True)), "description": str(data.get("description") or "")}
        if data.get("category_id") is not None:
            fields_["category_id"] = str(data["category_id"])
        if isinstance(data.get("position"), int):
            fields_["position"] = data["position"]
        return fields_, None

    def _create_trigger(self, payload: Any, **_: Any) -> Reply:
        with self._lock:
            fields_, problem = self._trigger_fields(payload.get("trigger") if isinstance(payload, dict) else None)
            if problem:
                return problem
            trigger_id, now = self._next_id("trigger"), _now()
            trigger = {"url": f"{self.url}/api/v2/triggers/{trigger_id}.json", "id": trigger_id, "default": False,
                       "category_id": "10026", "position": len(self._triggers) + 1, **fields_,
                       "created_at": now, "updated_at": now}
            self._triggers[trigger_id] = trigger
            return 201, {"trigger": copy.deepcopy(trigger)}, {}

    def _list_triggers(self, query: dict[str, list[str]], **_: Any) -> Reply:
        active = (query.get("active") or [""])[0]
        with self._lock:
            found = [t for t in sorted(self._triggers.values(), key=lambda t: t["position"])
                     if not active or t["active"] == (active == "true")]
            return 200, {"triggers": copy.deepcopy(found), "count": len(found), "next_page": None, "previous_page": None}, {}

    def _show_trigger(self, trigger_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            trigger = self._triggers.get(int(trigger_id))
            return (200, {"trigger": copy.deepcopy(trigger)}, {}) if trigger else _NOT_FOUND

    def _update_trigger(self, trigger_id: str, payload: Any, **_: Any) -> Reply:
        with self._lock:
            trigger = self._triggers.get(int(trigger_id))
            if trigger is None:
                return _NOT_FOUND
            fields_, problem = self._trigger_fields(payload.get("trigger") if isinstance(payload, dict) else None)
            if problem:
                return problem
            trigger.update(fields_)
            trigger["updated_at"] = _now()
            return 200, {"trigger": copy.deepcopy(trigger)}, {}

    def _delete_trigger(self, trigger_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            if self._triggers.pop(int(trigger_id), None) is None:
                return _NOT_FOUND
            return 204, {}, {}

    # --- bulk endpoints and their jobs ----------------------------------------------------------

    def hold_jobs(self, held: bool = True, *, kind: str | None = None) -> None:
        """Keep every job submitted from now on queued (``held=False``: new jobs run again);
        ``kind`` holds only those jobs: ``tickets`` (create_many), ``users`` or ``update``.
        ``release_jobs()`` lets the held ones run."""
        with self._lock:
            self._hold_new_jobs = kind or "all" if held else False

    def release_jobs(self) -> None:
        """Let held jobs run: each completes on its next status read (or delay), as configured."""
        with self._lock:
            self._hold_new_jobs = False
            for job in self._jobs.values():
                job["held"] = False

    def forget_jobs(self) -> None:
        """Drop every job status, as Zendesk does after its retention (their work stays done)."""
        with self._lock:
            self._run_due_jobs(reading=None)
            self._jobs.clear()

    def fail_bulk_items(self, *keys: str | int, error: str | None = None, details: str = "Injected failure") -> None:
        """Make the items of later bulk jobs that match ``keys`` fail (until ``reset()``): a
        ticket or user by its ``external_id``, an update by its ticket id. The single endpoints
        are not affected, so the bridge's fallback to them succeeds."""
        with self._lock:
            for key in keys:
                self._bulk_failures[str(key)] = (error, details)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job status the sandbox keeps, as the API shows it."""
        with self._lock:
            self._run_due_jobs(reading=None)
            return [self._job_view(job) for job in self._jobs.values()]

    def _submit_job(self, kind: str, items: list[Any], work: Callable[[int, Any], dict[str, Any]]) -> Reply:
        """Queue a job over ``items`` (``work(index, item)`` gives each item's result); answer its status."""
        if len(items) > MAX_BULK_ITEMS:
            return _error(400, "TooManyValues", f"You can pass at most {MAX_BULK_ITEMS} items (got {len(items)})")
        with self._lock:
            self._run_due_jobs(reading=None)
            if sum(1 for j in self._jobs.values() if j["status"] in ("queued", "working")) >= MAX_QUEUED_JOBS:
                return _error(429, "TooManyJobs", f"Too many jobs queued or running (at most {MAX_QUEUED_JOBS})")
            job_id = secrets.token_hex(16)
            job = {"id": job_id, "kind": kind, "items": copy.deepcopy(items), "work": work, "status": "queued",
                   "results": None, "reads": 0, "held": self._hold_new_jobs in ("all", kind), "message": None,
                   "ready_at": time.monotonic() + self.job_delay}
            self._jobs[job_id] = job
            self._run_due_jobs(reading=None)
            # The submit answer shows the job as queued, whatever happened to it since.
            view = {**self._job_view(job), "status": "queued", "progress": 0, "results": None, "message": None}
            return 200, {"job_status": view}, {}

    def _run_due_jobs(self, reading: str | None) -> None:
        """Run the jobs whose time has come (holds the lock): not held, past their delay and
        read ``job_polls`` times already (``reading``: the job being read now)."""
        for job in self._jobs.values():
            read_now = job["id"] == reading
            job["reads"] += read_now
            # This read is answered "queued" unless ``job_polls`` reads were answered so already.
            polled = job["reads"] > self.job_polls if read_now else job["reads"] >= self.job_polls
            if job["status"] != "queued" or job["held"] or time.monotonic() < job["ready_at"] or not polled:
                continue
            results = []
            for index, item in enumerate(job["items"]):
                key = str(item.get("id") if job["kind"] == "update" else item.get("external_id")) if isinstance(item, dict) else ""
                failure = self._bulk_failures.get(key)
                if failure is not None:
                    results.append(self._failed_item(job["kind"], index, item, failure[0], failure[1]))
                else:
                    results.append(job["work"](index, item))
            ok = any(r.get("success") is not False for r in results)
            job["status"] = "completed" if ok or not results else "failed"
            job["results"] = results
            job["message"] = f"{job['status'].title()} at {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S +0000')}"

    def _job_view(self, job: dict[str, Any]) -> dict[str, Any]:
        done = job["results"] is not None
        return {"id": job["id"], "url": f"{self.url}/api/v2/job_statuses/{job['id']}.json", "total": len(job["items"]),
                "progress": len(job["items"]) if done else 0, "status": job["status"], "message": job["message"],
                "results": copy.deepcopy(job["results"])}

    @staticmethod
    def _failed_item(kind: str, index: int, item: Any, error: str | None, details: str) -> dict[str, Any]:
        """A failed item as Zendesk reports it: ``{"index", "error", "details"}`` for a ticket
        create (e.g. ``TicketCreateFailed``); users add ``"status": "Failed"``; an update names
        the ticket instead of the index (the spec's ``FailedResult``)."""
        codes = {"tickets": "TicketCreateFailed", "users": "UserUpdateError", "update": "TicketUpdateFailed"}
        failed: dict[str, Any] = {"error": error or codes[kind], "details": details, "success": False}
        if kind == "update":
            ticket_id = item.get("id") if isinstance(item, dict) else None
            return {"id": ticket_id if isinstance(ticket_id, int) else 0, "action": "update", **failed}
        failed["index"] = index
        if kind == "users":
            failed["status"] = "Failed"
        return failed

    @staticmethod
    def _details(reply: Reply) -> str:
        body = reply[1] if isinstance(reply[1], dict) else {}
        found = [p.get("description", "") for problems in (body.get("details") or {}).values() for p in problems
                 if isinstance(p, dict)] if isinstance(body.get("details"), dict) else []
        return "; ".join(found) or str(body.get("description") or body.get("error") or reply[0])

    def _bulk_items(self, payload: Any, name: str) -> list[Any] | None:
        items = payload.get(name) if isinstance(payload, dict) else None
        return items if isinstance(items, list) else None

    def _create_many_tickets(self, payload: Any, *, client: str, **_: Any) -> Reply:
        items = self._bulk_items(payload, "tickets")
        if items is None:
            return _error(400, "ParameterMissing", "param is missing or the value is empty: tickets")

        def create(index: int, item: Any) -> dict[str, Any]:
            reply = self._do_create_ticket(item, client) if isinstance(item, dict) else _invalid("ticket", "Ticket: is invalid")
            if reply[0] == 201:
                return {"index": index, "id": reply[1]["ticket"]["id"], "status": "Created", "success": True}
            return self._failed_item("tickets", index, item, None, self._details(reply))

        return self._submit_job("tickets", items, create)

    def _update_many_tickets(self, payload: Any, query: dict[str, list[str]] | None = None, *, client: str, **_: Any) -> Reply:
        """Batch form ``{"tickets": [{"id", ...}]}``; bulk form ``?ids=1,2`` with ``{"ticket": {...}}``."""
        ids = [part for part in ((query or {}).get("ids") or [""])[0].split(",") if part.strip()]
        if ids:
            change = payload.get("ticket") if isinstance(payload, dict) else None
            if not isinstance(change, dict) or not all(part.strip().isdigit() for part in ids):
                return _error(400, "ParameterMissing", "param is missing or the value is empty: ticket")
            items: list[Any] | None = [{**change, "id": int(part)} for part in ids]
        else:
            items = self._bulk_items(payload, "tickets")
        if items is None:
            return _error(400, "ParameterMissing", "param is missing or the value is empty: tickets")

        def update(index: int, item: Any) -> dict[str, Any]:
            ticket_id = item.get("id") if isinstance(item, dict) else None
            if not isinstance(ticket_id, int):
                return self._failed_item("update", index, item, "RecordInvalid", "Id: is required")
            change = {k: v for k, v in item.items() if k != "id"}
            reply = self._update_ticket(str(ticket_id), {"ticket": change}, client=client)
            if reply[0] == 200:
                return {"id": ticket_id, "action": "update", "status": "Updated", "success": True}
            return self._failed_item("update", index, item, None, self._details(reply))

        return self._submit_job("update", items, update)

    def _create_or_update_many_users(self, payload: Any, **_: Any) -> Reply:
        items = self._bulk_items(payload, "users")
        if items is None:
            return _error(400, "ParameterMissing", "param is missing or the value is empty: users")

        def upsert(index: int, item: Any) -> dict[str, Any]:
            reply = self._create_or_update_user({"user": item})
            if reply[0] in (200, 201):
                user = reply[1]["user"]
                return {"index": index, "id": user["id"], "status": "Created" if reply[0] == 201 else "Updated",
                        "external_id": user.get("external_id"), "success": True}
            return self._failed_item("users", index, item, None, self._details(reply))

        return self._submit_job("users", items, upsert)

    def _show_job_status(self, job_status_id: str, _query: Any, **_: Any) -> Reply:
        with self._lock:
            self._run_due_jobs(reading=job_status_id)
            job = self._jobs.get(job_status_id)
            return (200, {"job_status": self._job_view(job)}, {}) if job else _NOT_FOUND

    def _show_many_job_statuses(self, query: dict[str, list[str]], **_: Any) -> Reply:
        wanted = [part for part in (query.get("ids") or [""])[0].split(",") if part]
        if not wanted:
            return _error(400, "ParameterMissing", "param is missing or the value is empty: ids")
        with self._lock:
            for job_id in wanted:
                self._run_due_jobs(reading=job_id)
            found = [self._job_view(self._jobs[j]) for j in wanted if j in self._jobs]
            return 200, {"job_statuses": found}, {}

    # --- agents at work, and the triggers they fire -----------------------------------------------

    def human_agent(self) -> int:
        """The id of a human agent (created on first use): the one who answers in the web UI."""
        with self._lock:
            if self.human_agent_id is None:
                self.human_agent_id = self._new_user(
                    {"name": "Maria Agent", "email": "maria.agent@sandbox.test", "role": "agent", "verified": True}
                )["id"]
            return self.human_agent_id

    def agent_update(
        self,
        ticket_id: int | str,
        *,
        comment: str | None = None,
        public: bool = True,
        status: str | None = None,
        add_tags: Any = (),
        remove_tags: Any = (),
        author_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """What an agent does in the web UI: a comment (public or an internal note), a status
        change, tags. Then the active triggers run, and the webhook requests they notify are
        sent (signed like Zendesk's) before this returns. Returns those deliveries.

        Raises ``ValueError`` for a closed ticket (closed tickets cannot be updated).
        """
        author = author_id if author_id is not None else self.human_agent()
        with self._lock:
            ticket = self._tickets[int(ticket_id)]
            if ticket["status"] == "closed":
                raise ValueError("Status: closed prevents ticket update")
            if status is not None and status not in STATUSES:
                raise ValueError(f"unknown status {status!r}")
            events: list[dict[str, Any]] = []
            if comment is not None:
                events.append(self._comment_event({"body": comment, "public": public}, author))
            previous = ticket["status"]
            if status is None and comment is not None and public and ticket["status"] == "new":
                status = "open"  # an agent's public reply opens a new ticket
            if status is not None and status != previous:
                events.append({"type": "Change", "field_name": "status", "value": status, "previous_value": previous})
                ticket["status"] = status
            tags = [t for t in ticket["tags"] if t not in set(remove_tags)] + [t for t in add_tags if t not in ticket["tags"]]
            if tags != ticket["tags"]:
                events.append({"type": "Change", "field_name": "tags", "value": tags, "previous_value": ticket["tags"]})
                ticket["tags"] = tags
            self._touch(ticket)
            self._audit(ticket["id"], author, events, {}, "web", "Zendesk web UI")
            requests = self._triggered_requests(ticket, events, updater_id=author, via_id=VIA_WEB_FORM, created=False)
            if self.propagate_problem_comments and ticket.get("type") == "problem" and events and events[0]["type"] == "Comment":
                requests += self._propagate_to_incidents(ticket, events[0], author)
        return [self._deliver(request) for request in requests]

    def agent_comment(self, ticket_id: int | str, text: str, **kwargs: Any) -> list[dict[str, Any]]:
        """A public reply by a human agent (``agent_update`` with a comment)."""
        return self.agent_update(ticket_id, comment=text, **kwargs)

    def _run_triggers_async(self, ticket: dict[str, Any], events: list[dict[str, Any]], *, updater_id: int,
                            via_id: int, created: bool) -> None:
        """Triggers also run after API updates (holding the lock): sent on a thread, since the
        endpoint may well call this sandbox back while it answers."""
        requests = self._triggered_requests(ticket, events, updater_id=updater_id, via_id=via_id, created=created)
        for request in requests:
            thread = threading.Thread(target=self._deliver, args=(request,), name="zendesk-webhook", daemon=True)
            self._delivery_threads.append(thread)
            thread.start()

    def _triggered_requests(self, ticket: dict[str, Any], events: list[dict[str, Any]], *, updater_id: int,
                            via_id: int, created: bool) -> list[dict[str, Any]]:
        """The webhook requests the active triggers send for this update (holds the lock)."""
        if not self._triggers:
            return []
        updater = self._users.get(updater_id) or {}
        comment = next((e for e in events if e["type"] == "Comment"), None)
        status_change = next((e for e in events if e["type"] in ("Change", "Create") and e.get("field_name") == "status"), None)
        context = {
            "update_type": "Create" if created else "Change",
            "comment_is_public": "not_relevant" if comment is None else ("true" if comment["public"] else "false"),
            "tags": set(ticket["tags"]),
            "role": "end_user" if updater.get("role", "end-user") == "end-user" else "agent",
            "via_id": via_id,
            "status": ticket["status"],
            "previous_status": (status_change or {}).get("previous_value"),
            "status_changed": status_change is not None and status_change.get("type") == "Change",
        }
        requests = []
        for trigger in sorted(self._triggers.values(), key=lambda t: t["position"]):
            if not trigger["active"] or not self._trigger_matches(trigger["conditions"], context):
                continue
            for action in trigger["actions"]:
                if action["field"] == "remove_tags":  # the trigger's own change to the ticket
                    ticket["tags"] = [t for t in ticket["tags"] if t not in set(action["value"].split())]
                    continue
                webhook_id, template = action["value"]
                webhook = self._webhooks.get(webhook_id)
                if webhook is None or webhook["status"] != "active":
                    continue
                body = self._render(template, ticket, updater, json_escape=webhook["request_format"] == "json")
                requests.append({
                    "trigger_id": trigger["id"], "trigger": trigger["title"], "webhook_id": webhook_id,
                    "endpoint": webhook["endpoint"], "method": webhook["http_method"], "body": body,
                    "secret": self._webhook_secrets[webhook_id], "invocation_id": str(self._next_id("invocation") + 8350205000),
                })
        return requests

    @staticmethod
    def _trigger_matches(conditions: dict[str, Any], context: dict[str, Any]) -> bool:
        def holds(condition: dict[str, Any]) -> bool:
            name, operator, value = condition["field"], condition["operator"], condition.get("value")
            text = "" if value is None else str(value).strip()
            if name == "update_type":
                return context["update_type"].lower() == text.lower()
            if name == "comment_is_public":
                return context["comment_is_public"] == text.lower()
            if name == "current_tags":
                wanted = set(text.split())
                hit = bool(wanted & context["tags"])
                return hit if operator == "includes" else not hit
            if name == "role":
                return (context["role"] == text) == (operator == "is")
            if name == "current_via_id":
                return (str(context["via_id"]) == text) == (operator == "is")
            if name == "status":
                if operator == "changed":
                    return context["status_changed"]
                if operator == "not_changed":
                    return not context["status_changed"]
                if operator == "value":
                    return context["status_changed"] and context["status"] == text
                if operator == "value_previous":
                    return context["status_changed"] and context["previous_status"] == text
                return (context["status"] == text) == (operator == "is")
            return False

        every, some = conditions.get("all") or [], conditions.get("any") or []
        return all(holds(c) for c in every) and (not some or any(holds(c) for c in some))

    def _render(self, template: str, ticket: dict[str, Any], updater: dict[str, Any], *, json_escape: bool) -> str:
        """Fill Zendesk placeholders; an unknown one renders as the empty string, like Zendesk's.
        Only documented placeholders are known: a comment has no ``.id`` placeholder."""
        public = [c for c in self._comments.get(ticket["id"], []) if c["public"]]
        latest_public = public[-1] if public else {}
        comments = self._comments.get(ticket["id"], [])
        latest = comments[-1] if comments else {}
        values = {
            "ticket.id": str(ticket["id"]),
            "ticket.external_id": ticket.get("external_id") or "",
            "ticket.status": ticket["status"].title(),
            "ticket.tags": " ".join(ticket["tags"]),
            "ticket.title": ticket["subject"],
            "ticket.updated_at_with_timestamp": ticket["updated_at"],
            "ticket.requester.id": str(ticket["requester_id"]),
            "ticket.latest_public_comment.value": latest_public.get("plain_body") or latest_public.get("body", ""),
            "ticket.latest_comment.value": latest.get("plain_body") or latest.get("body", ""),
            "current_user.id": str(updater.get("id", "")),
            "current_user.email": updater.get("email") or "",
            "current_user.name": updater.get("name") or "",
        }

        def fill(found: re.Match[str]) -> str:
            value = values.get(found.group(1), "")
            return json.dumps(value)[1:-1] if json_escape else value

        return _PLACEHOLDER.sub(fill, template)

    def _deliver(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST one webhook request, signed as Zendesk signs it; record and return the outcome."""
        import urllib.error
        import urllib.request

        body = request["body"].encode()
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        digest = hmac.new(request["secret"].encode(), stamp.encode() + body, hashlib.sha256).digest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zendesk Webhook",
            "x-zendesk-account-id": self.account_id,
            "x-zendesk-webhook-id": request["webhook_id"],
            "x-zendesk-webhook-invocation-id": request["invocation_id"],
            "x-zendesk-webhook-signature": base64.b64encode(digest).decode(),
            "x-zendesk-webhook-signature-timestamp": stamp,
        }
        outcome = {k: v for k, v in request.items() if k != "secret"}
        outcome["headers"] = dict(headers)
        http_request = urllib.request.Request(request["endpoint"], data=body, method=request["method"], headers=headers)
        try:
            with urllib.request.urlopen(http_request, timeout=WEBHOOK_TIMEOUT_SECONDS) as answer:
                outcome["status"], raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            outcome["status"], raw = error.code, error.read()
        except OSError as error:
            outcome["status"], raw = None, str(error).encode()
        try:
            outcome["response"] = json.loads(raw) if raw else None
        except ValueError:
            outcome["response"] = raw.decode(errors="replace")
        with self._lock:
            self._deliveries.append(copy.deepcopy(outcome))
        return outcome


def _digits(phone: str) -> str:
    return "".join(c for c in phone if c.isdigit())


def _search_term_matches(term: str, ticket: dict[str, Any]) -> bool:
    name, _, value = term.partition(":")
    if not value:
        return term.lower() in f"{ticket['subject']} {ticket['description']}".lower()
    if name in ("tags", "tag"):
        return value in ticket["tags"]
    fields = {"type": "ticket", "status": ticket["status"], "external_id": ticket.get("external_id"),
              "requester_id": str(ticket["requester_id"]), "requester": str(ticket["requester_id"])}
    return fields.get(name) == value
