"""Zendesk's bulk endpoints, for the sync's batches of new conversations (``sync/batch.py``).

* ``POST /api/v2/users/create_or_update_many``: up to 100 end users, each found again by
  ``external_id`` like the single upsert (the account owner must have bulk user imports
  enabled, else 403: the sync then falls back to one upsert per person);
* ``POST /api/v2/tickets/create_many``: up to 100 tickets, each the body a single create
  sends (``new_ticket_fields``), so ``external_id`` and the message reference in
  ``metadata`` let ``find_ticket_with_message`` find them again. No ``Idempotency-Key``:
  Zendesk documents it for single creates only, so the sync keeps its own intent record;
* ``GET /api/v2/job_statuses/show_many?ids=``: the jobs those calls queued, one request for
  up to 100 of them.

A job's ``results`` say, per item, the created record's ``id`` and its ``index`` in the
request, or ``error``/``details`` for an item that failed (``{"index", "error", "details"}``
for a ticket create). Items are mapped back by ``index`` (by position where it is missing);
a result naming another ``external_id`` than the one sent at its index is not trusted (``sync/batch.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.helpdesks.base import BulkItem, BulkJob, BulkTicketWriter, HelpdeskRejected, HelpdeskUnavailable, NewTicket
from chalicelib.helpdesks.zendesk.adapter import _zendesk_id, as_incident, new_ticket_fields, requester_fields, routed
from chalicelib.models import Author, Platform

if TYPE_CHECKING:
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk

# An account without bulk user imports refuses every users/create_or_update_many (403): once
# refused, the container does not ask again for this long (each batch would spend requests
# to hear it), and the sync upserts those customers one by one meanwhile.
USERS_REFUSAL_MEMORY_SECONDS = 3600.0
_users_refused_until: dict[str, float] = {}  # account URL -> monotonic time


class ZendeskBulkWriter(BulkTicketWriter):
    """The bulk endpoints of the account ``api`` calls (its client, credentials and error mapping)."""

    def __init__(self, api: ZendeskHelpdesk) -> None:
        self._api = api

    def submit_requesters(self, people: Sequence[tuple[Platform, Author]]) -> str:
        if time.monotonic() < _users_refused_until.get(self._api.base_url, 0.0):
            raise HelpdeskRejected("Zendesk refused users/create_or_update_many within the hour (bulk user imports off?)")
        users = [requester_fields(platform, author) for platform, author in people]
        try:
            return self._submit("/api/v2/users/create_or_update_many", {"users": users}, len(users), writes_message=False)
        except HelpdeskRejected:
            _users_refused_until[self._api.base_url] = time.monotonic() + USERS_REFUSAL_MEMORY_SECONDS
            raise

    def submit_tickets(self, tickets: Sequence[NewTicket]) -> str:
        body = [
            as_incident(routed(new_ticket_fields(t.message, _zendesk_id(t.requester_id, "user")), t.routing), t.problem_id)
            for t in tickets
        ]
        return self._submit("/api/v2/tickets/create_many", {"tickets": body}, len(body), writes_message=True)

    def submit_notes(self, notes: Sequence[tuple[str, str]]) -> str:
        """Queue an internal note on each ticket (``PUT /api/v2/tickets/update_many``, batch form:
        each ticket its own comment): one request for up to 100 tickets instead of one update
        each (the crisis fan-out's outcome notes, ``outbound/fanout.py``); the job id."""
        body = [{"id": _zendesk_id(ticket_id, "ticket"), "comment": {"body": text, "public": False}} for ticket_id, text in notes]
        return self._submit("/api/v2/tickets/update_many", {"tickets": body}, len(body), writes_message=False, method="PUT")

    def submit_links(self, ticket_ids: Sequence[str], problem_id: str) -> str:
        """Queue making these tickets incidents of ``problem_id`` (``PUT /api/v2/tickets/update_many?ids=``,
        the bulk form: one change for up to 100 tickets; a crisis's earlier complaints); the job id."""
        ids = ",".join(str(_zendesk_id(ticket_id, "ticket")) for ticket_id in ticket_ids)
        change = {"ticket": {"type": "incident", "problem_id": _zendesk_id(problem_id, "ticket")}}
        return self._submit(
            "/api/v2/tickets/update_many", change, len(ticket_ids), writes_message=False, method="PUT", params={"ids": ids}
        )

    def read_jobs(self, job_ids: Sequence[str]) -> dict[str, BulkJob]:
        if not job_ids:
            return {}
        if len(job_ids) > self.max_items:
            raise ValueError(f"at most {self.max_items} jobs per read")
        response = self._api._call(  # noqa: SLF001 - the adapter's one request path (errors, retries' hints)
            "GET", "/api/v2/job_statuses/show_many", params={"ids": ",".join(job_ids)}, writes_message=False
        )
        statuses = self._api._body(response, writes_message=False).get("job_statuses")  # noqa: SLF001
        jobs = [_job(status) for status in statuses or [] if isinstance(status, dict) and isinstance(status.get("id"), str)]
        return {job.job_id: job for job in jobs if job.job_id in job_ids}

    def _submit(
        self,
        path: str,
        body: dict[str, Any],
        count: int,
        *,
        writes_message: bool,
        method: str = "POST",
        params: dict[str, Any] | None = None,
    ) -> str:
        if not 0 < count <= self.max_items:
            raise ValueError(f"a bulk request takes 1 to {self.max_items} items, not {count}")
        response = self._api._call(method, path, json=body, params=params, writes_message=writes_message)  # noqa: SLF001
        status = self._api._body(response, writes_message=writes_message).get("job_status")  # noqa: SLF001
        if not isinstance(status, dict) or not isinstance(status.get("id"), str) or not status["id"]:
            raise HelpdeskUnavailable("Zendesk answered a bulk request without a job id", maybe_applied=writes_message)
        return str(status["id"])


def _job(status: dict[str, Any]) -> BulkJob:
    """A ``job_status`` object as a ``BulkJob``; results only once the job finished."""
    state = str(status.get("status") or "queued")
    results = status.get("results")
    if state not in ("completed", "failed") or not isinstance(results, list):
        return BulkJob(str(status["id"]), state if state in ("queued", "working") else "working")
    items = []
    for position, result in enumerate(results):
        if not isinstance(result, dict):
            continue
        index = result.get("index")
        index = index if isinstance(index, int) else position
        failed = result.get("success") is False or result.get("error") is not None or result.get("id") is None
        if failed:
            error = ": ".join(str(result[k]) for k in ("error", "details") if result.get(k)) or "failed"
            items.append(BulkItem(index, None, error))
        else:
            items.append(BulkItem(index, str(result["id"]), external_id=_text(result.get("external_id"))))
    return BulkJob(str(status["id"]), state, tuple(items))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
