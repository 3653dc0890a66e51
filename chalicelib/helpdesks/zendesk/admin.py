"""Zendesk configuration through the API: the webhook and the triggers of agent replies.

``ZendeskAdmin(...).ensure(public_base_url)`` makes the account match what socialdesk
needs, and can be run any number of times (``make zendesk-setup``):

* one webhook named ``WEBHOOK_NAME``: ``POST <PUBLIC_BASE_URL>/helpdesk/zendesk``, JSON,
  connected to triggers (``subscriptions: ["conditional_ticket_events"]``), no extra
  authentication -- requests are signed with the webhook's signing secret, which Zendesk
  generates. It is read back with ``GET /api/v2/webhooks/{id}/signing_secret`` and handed
  to the caller (``SetupResult.signing_secret``, hidden from ``repr``), never logged;
* the trigger ``COMMENT_TRIGGER_TITLE``: a public comment by an agent, not made through the
  API (the bridge writes only through the API, as the API user), on a ticket tagged
  ``socialdesk`` -> notify the webhook with ``agent_events.COMMENT_EVENT_BODY`` (ids only:
  the app reads the comments through the API);
* the trigger ``STATUS_TRIGGER_TITLE``: the status of a ``socialdesk`` ticket changed ->
  notify the webhook with ``agent_events.STATUS_EVENT_BODY``;
* the triggers ``APPROVAL_TRIGGER_TITLES``: a lead tagged a ``socialdesk`` ticket
  ``socialdesk_approved`` (or ``socialdesk_withdrawn``) -> notify the webhook with
  ``agent_events.approval_event_body(decision)`` and remove the tag, so the trigger fires once
  per decision and a later answer needs its own approval (``outbound/approval.py``).

Each object is found by its name first (webhooks: ``GET /api/v2/webhooks?filter[name_contains]=``,
following ``links.next``; triggers: ``GET /api/v2/triggers``, following ``next_page``), created
when missing, updated only when it differs (webhooks ``PUT /api/v2/webhooks/{id}``, triggers
``PUT /api/v2/triggers/{id}``, which replaces conditions and actions as a whole), else left
alone -- so running it again also brings a trigger an earlier version created (e.g. one
whose body still carried the comment's text) up to date. Paths and bodies follow Zendesk's
Webhooks API (webhooks.oas.yaml) and the Support API (support-api.oas.yaml). A trigger
category can be given (``category_id``; accounts that organise triggers in categories may
require one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chalicelib.helpdesks.zendesk.adapter import ZendeskApi, _error_text, _hint
from chalicelib.http import ConnectFailed, HttpResponse, TransportError
from chalicelib.outbound.agent_events import BRIDGE_TAG, COMMENT_EVENT_BODY, STATUS_EVENT_BODY, approval_event_body
from chalicelib.outbound.approval import DECISION_TAGS

logger = logging.getLogger(__name__)

EVENTS_PATH = "/helpdesk/zendesk"
WEBHOOK_NAME = "socialdesk: agent replies"
COMMENT_TRIGGER_TITLE = "socialdesk: send agent replies to the customer"
STATUS_TRIGGER_TITLE = "socialdesk: ticket status to socialdesk"
APPROVAL_TRIGGER_TITLES = {
    "approved": "socialdesk: a lead approved the held public answer",
    "withdrawn": "socialdesk: a lead withdrew the held public answer",
}
VIA_WEB_SERVICE = "5"  # Zendesk's via id for updates made through the API
MAX_PAGES = 50


class ZendeskAdminError(Exception):
    """A setup step Zendesk refused or could not answer, in plain words."""


def events_endpoint(public_base_url: str) -> str:
    """``<PUBLIC_BASE_URL>/helpdesk/zendesk``; the base URL must be an absolute http(s) URL."""
    base = (public_base_url or "").strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ZendeskAdminError(
            f"PUBLIC_BASE_URL must be the app's public https URL (e.g. https://abc.execute-api.us-east-1.amazonaws.com/api), "
            f"not {public_base_url!r}"
        )
    return base + EVENTS_PATH


def desired_webhook(public_base_url: str) -> dict[str, Any]:
    """The webhook socialdesk needs (the ``webhook`` object of a create/update request)."""
    return {
        "name": WEBHOOK_NAME,
        "description": "Sends agents' public replies and ticket status changes of socialdesk tickets to socialdesk.",
        "endpoint": events_endpoint(public_base_url),
        "http_method": "POST",
        "request_format": "json",
        "status": "active",
        "subscriptions": ["conditional_ticket_events"],
    }


def desired_triggers(webhook_id: str, *, category_id: str | None = None) -> list[dict[str, Any]]:
    """The triggers socialdesk needs (the ``trigger`` objects of create/update requests)."""
    comment = {
        "title": COMMENT_TRIGGER_TITLE,
        "description": (
            "An agent's public comment on a socialdesk ticket is sent to the customer on the social network. "
            "Add the tag socialdesk_private to answer a public post privately. Managed by make zendesk-setup."
        ),
        "active": True,
        "conditions": {
            "all": [
                {"field": "update_type", "operator": "is", "value": "Change"},
                {"field": "comment_is_public", "operator": "is", "value": "true"},
                {"field": "role", "operator": "is", "value": "agent"},
                # The bridge writes customers' messages through the API as the API user (an
                # agent): those updates must never come back as replies.
                {"field": "current_via_id", "operator": "is_not", "value": VIA_WEB_SERVICE},
                {"field": "current_tags", "operator": "includes", "value": BRIDGE_TAG},
            ],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, COMMENT_EVENT_BODY]}],
    }
    status = {
        "title": STATUS_TRIGGER_TITLE,
        "description": "Tells socialdesk when a socialdesk ticket's status changes (solved, closed, reopened). "
        "Managed by make zendesk-setup.",
        "active": True,
        "conditions": {
            "all": [
                {"field": "update_type", "operator": "is", "value": "Change"},
                {"field": "status", "operator": "changed"},
                {"field": "current_tags", "operator": "includes", "value": BRIDGE_TAG},
            ],
            "any": [],
        },
        "actions": [{"field": "notification_webhook", "value": [webhook_id, STATUS_EVENT_BODY]}],
    }
    approvals = [
        {
            "title": APPROVAL_TRIGGER_TITLES[decision],
            "description": (
                f"Adding the tag {tag} to a socialdesk ticket {decision_words} the answers waiting for a lead's approval "
                "(a macro can add it). The tag is removed again. Managed by make zendesk-setup."
            ),
            "active": True,
            "conditions": {
                "all": [
                    {"field": "update_type", "operator": "is", "value": "Change"},
                    {"field": "current_tags", "operator": "includes", "value": BRIDGE_TAG},
                    {"field": "current_tags", "operator": "includes", "value": tag},
                ],
                "any": [],
            },
            "actions": [
                {"field": "notification_webhook", "value": [webhook_id, approval_event_body(decision)]},
                {"field": "remove_tags", "value": tag},
            ],
        }
        for decision, tag, decision_words in (
            ("approved", DECISION_TAGS["approved"], "sends"),
            ("withdrawn", DECISION_TAGS["withdrawn"], "drops"),
        )
    ]
    triggers = [comment, status, *approvals]
    if category_id:
        for trigger in triggers:
            trigger["category_id"] = str(category_id)
    return triggers


# --- comparing what is there with what is needed -----------------------------------------------


def _conditions_key(conditions: Any) -> dict[str, list[tuple[str, str, str]]]:
    found: dict[str, list[tuple[str, str, str]]] = {}
    source = conditions if isinstance(conditions, dict) else {}
    for group in ("all", "any"):
        items = []
        for condition in source.get(group) or []:
            if isinstance(condition, dict):
                value = condition.get("value")
                items.append(
                    (
                        str(condition.get("field")),
                        str(condition.get("operator")),
                        "" if value is None else json.dumps(value) if isinstance(value, list) else str(value),
                    )
                )
        found[group] = sorted(items)
    return found


def _action_value(value: Any) -> Any:
    if isinstance(value, list):
        out = []
        for part in value:
            try:
                out.append(json.loads(part) if isinstance(part, str) and part.lstrip().startswith("{") else part)
            except ValueError:
                out.append(part)
        return out
    return value


def _actions_key(actions: Any) -> list[str]:
    return sorted(
        json.dumps([a.get("field"), _action_value(a.get("value"))], sort_keys=True)
        for a in (actions or [])
        if isinstance(a, dict)
    )


def webhook_differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The webhook fields that differ from what socialdesk needs."""
    changed = [
        name
        for name in ("endpoint", "http_method", "request_format", "status", "description")
        if (current.get(name) or "") != (wanted.get(name) or "")
    ]
    if sorted(current.get("subscriptions") or []) != sorted(wanted["subscriptions"]):
        changed.append("subscriptions")
    if current.get("authentication"):
        changed.append("authentication")
    return changed


def trigger_differences(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The trigger fields that differ from what socialdesk needs."""
    changed = []
    if current.get("active") is not True:
        changed.append("active")
    if (current.get("description") or "") != wanted.get("description", ""):
        changed.append("description")
    if _conditions_key(current.get("conditions")) != _conditions_key(wanted["conditions"]):
        changed.append("conditions")
    if _actions_key(current.get("actions")) != _actions_key(wanted["actions"]):
        changed.append("actions")
    if wanted.get("category_id") and str(current.get("category_id")) != wanted["category_id"]:
        changed.append("category_id")
    return changed


# --- the client ----------------------------------------------------------------------------------


@dataclass
class SetupResult:
    """What ``ensure`` did: per object ``created``, ``updated (fields)`` or ``unchanged``."""

    webhook_id: str
    endpoint: str
    webhook: str
    triggers: dict[str, str] = field(default_factory=dict)
    trigger_ids: dict[str, int] = field(default_factory=dict)
    signing_secret: str = field(default="", repr=False)

    def summary(self) -> list[str]:
        """Plain lines for the operator (no secret in them)."""
        lines = [f"webhook {WEBHOOK_NAME!r} ({self.webhook_id}) -> {self.endpoint}: {self.webhook}"]
        lines += [f"trigger {title!r} ({self.trigger_ids.get(title)}): {what}" for title, what in self.triggers.items()]
        return lines


class ZendeskAdmin(ZendeskApi):
    """Webhooks and triggers of one Zendesk account, as the API user (an admin)."""

    http_timeout = (3.05, 20)

    # --- plumbing ---------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> HttpResponse:
        what = f"{method} {urlsplit(path).path or path}"
        try:
            response = self._http.request(method, path, json=json_body, params=params)
        except ConnectFailed as exc:
            raise ZendeskAdminError(f"Zendesk could not be reached ({what}): {exc}") from exc
        except TransportError as exc:
            raise ZendeskAdminError(f"Zendesk did not answer {what} in time: {exc}. Run the setup again.") from exc
        if response.status in expect:
            return response
        raise ZendeskAdminError(f"Zendesk refused {what} ({response.status}{_hint(response.status)}){_error_text(response)}")

    @staticmethod
    def _json(response: HttpResponse) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ZendeskAdminError(f"Zendesk answered {response.status} without a JSON object")
        return data

    # --- webhooks ---------------------------------------------------------------------------

    def webhooks_named(self, name: str) -> Iterator[dict[str, Any]]:
        """Webhooks whose name is exactly ``name`` (the API filters by "name contains")."""
        path: str | None = "/api/v2/webhooks"
        params: dict[str, Any] | None = {"filter[name_contains]": name}
        for _ in range(MAX_PAGES):
            if path is None:
                return
            data = self._json(self._call("GET", path, params=params))
            for webhook in data.get("webhooks") or []:
                if isinstance(webhook, dict) and webhook.get("name") == name:
                    yield webhook
            meta, links = data.get("meta") or {}, data.get("links") or {}
            following = links.get("next") if isinstance(links, dict) else None
            path = following if (isinstance(meta, dict) and meta.get("has_more") and following) else None
            params = None  # the next link carries the query

    def create_webhook(self, webhook: dict[str, Any]) -> dict[str, Any]:
        data = self._json(self._call("POST", "/api/v2/webhooks", json_body={"webhook": webhook}, expect=(201,)))
        created = data.get("webhook")
        if not isinstance(created, dict) or not created.get("id"):
            raise ZendeskAdminError("Zendesk created the webhook but did not return its id")
        return created

    def update_webhook(self, webhook_id: str, webhook: dict[str, Any]) -> None:
        self._call("PUT", f"/api/v2/webhooks/{webhook_id}", json_body={"webhook": webhook}, expect=(200, 204))

    def signing_secret(self, webhook_id: str) -> str:
        """The webhook's signing secret (never logged)."""
        data = self._json(self._call("GET", f"/api/v2/webhooks/{webhook_id}/signing_secret"))
        secret = (data.get("signing_secret") or {}).get("secret") if isinstance(data.get("signing_secret"), dict) else None
        if not isinstance(secret, str) or not secret:
            raise ZendeskAdminError("Zendesk did not reveal the webhook's signing secret (is the API user an admin?)")
        return secret

    # --- triggers ---------------------------------------------------------------------------

    def triggers_titled(self, title: str) -> Iterator[dict[str, Any]]:
        path: str | None = "/api/v2/triggers"
        for _ in range(MAX_PAGES):
            if path is None:
                return
            data = self._json(self._call("GET", path))
            for trigger in data.get("triggers") or []:
                if isinstance(trigger, dict) and trigger.get("title") == title:
                    yield trigger
            following = data.get("next_page")
            path = following if isinstance(following, str) and following else None

    def create_trigger(self, trigger: dict[str, Any]) -> dict[str, Any]:
        data = self._json(self._call("POST", "/api/v2/triggers", json_body={"trigger": trigger}, expect=(201,)))
        created = data.get("trigger")
        if not isinstance(created, dict) or created.get("id") is None:
            raise ZendeskAdminError("Zendesk created the trigger but did not return its id")
        return created

    def update_trigger(self, trigger_id: int, trigger: dict[str, Any]) -> dict[str, Any]:
        data = self._json(self._call("PUT", f"/api/v2/triggers/{int(trigger_id)}", json_body={"trigger": trigger}))
        return data.get("trigger") or {}

    # --- the whole setup --------------------------------------------------------------------

    def ensure(self, public_base_url: str, *, category_id: str | None = None) -> SetupResult:
        """Create or update the webhook and the triggers; safe to run again."""
        wanted = desired_webhook(public_base_url)
        found = next(self.webhooks_named(WEBHOOK_NAME), None)
        if found is None:
            webhook_id, what = str(self.create_webhook(wanted)["id"]), "created"
        else:
            webhook_id = str(found["id"])
            changed = webhook_differences(found, wanted)
            if changed and "subscriptions" in changed:
                raise ZendeskAdminError(
                    f"The webhook {WEBHOOK_NAME!r} ({webhook_id}) is subscribed to Zendesk events, and Zendesk cannot "
                    "change how a webhook is connected. Delete it in Admin Center > Apps and integrations > Webhooks "
                    "and run the setup again."
                )
            if changed:
                self.update_webhook(webhook_id, wanted)
                what = f"updated ({', '.join(changed)})"
            else:
                what = "unchanged"
        result = SetupResult(webhook_id=webhook_id, endpoint=wanted["endpoint"], webhook=what)
        for trigger in desired_triggers(webhook_id, category_id=category_id):
            title = trigger["title"]
            existing = next(self.triggers_titled(title), None)
            if existing is None:
                created = self.create_trigger(trigger)
                result.triggers[title], result.trigger_ids[title] = "created", int(created["id"])
                continue
            result.trigger_ids[title] = int(existing["id"])
            changed = trigger_differences(existing, trigger)
            if changed:
                self.update_trigger(int(existing["id"]), trigger)
                result.triggers[title] = f"updated ({', '.join(changed)})"
            else:
                result.triggers[title] = "unchanged"
        result.signing_secret = self.signing_secret(webhook_id)
        logger.info("zendesk setup done", extra={"webhook_id": webhook_id, "webhook": what, "triggers": result.triggers})
        return result
