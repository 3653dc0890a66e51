"""``make zendesk-setup`` against the Zendesk sandbox, over real HTTP.

Every exchange is checked against Zendesk's published specs: webhooks against
``webhooks.oas.yaml`` (its paths are relative to ``/api/v2``), triggers against
``support-api.oas.yaml``.
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from chalicelib.outbound.agent_events import COMMENT_EVENT_BODY, STATUS_EVENT_BODY, approval_event_body
from chalicelib.helpdesks.zendesk.admin import (
    APPROVAL_TRIGGER_TITLES,
    COMMENT_TRIGGER_TITLE,
    STATUS_TRIGGER_TITLE,
    WEBHOOK_NAME,
    ZendeskAdmin,
    ZendeskAdminError,
    desired_triggers,
)
from local.zendesk_sandbox import ZendeskSandbox
from tests.support.openapi import ZendeskContract, spec_path

EMAIL, TOKEN = "admin@sandbox.test", "sandbox-token"
PUBLIC = "https://socialdesk.example.com/api"
WEBHOOKS_SPEC = spec_path().with_name("webhooks.oas.yaml")
assert WEBHOOKS_SPEC.is_file(), f"Zendesk's webhooks spec was not found at {WEBHOOKS_SPEC}"


class SpecChecks:
    """An observer that validates every exchange against the spec that covers it."""

    def __init__(self, support: ZendeskContract) -> None:
        self.support = support
        self.webhooks = ZendeskContract(WEBHOOKS_SPEC, patched=False)
        self.exchanges: list[Any] = []
        self.violations: list[str] = []

    def __call__(self, exchange: Any) -> None:
        self.exchanges.append(exchange)
        try:
            if urlsplit(exchange.url).path.startswith("/api/v2/webhooks"):
                # webhooks.oas.yaml's server is https://{subdomain}.zendesk.com/api/v2
                self.webhooks.validate_exchange(replace(exchange, url=exchange.url.replace("/api/v2/webhooks", "/webhooks", 1)))
            else:
                self.support.validate_exchange(exchange)
        except AssertionError as error:
            self.violations.append(f"{exchange.method} {exchange.url}: {error}")

    def operations(self) -> list[str]:
        return [f"{e.method} {urlsplit(e.url).path}" for e in self.exchanges]


@pytest.fixture
def sandbox() -> Iterator[ZendeskSandbox]:
    with ZendeskSandbox(email=EMAIL, api_token=TOKEN) as running:
        yield running


@pytest.fixture
def checks(contract: ZendeskContract) -> Iterator[SpecChecks]:
    recorder = SpecChecks(contract)
    yield recorder
    assert not recorder.violations, "\n\n".join(recorder.violations)


def admin(sandbox: ZendeskSandbox, checks: SpecChecks) -> ZendeskAdmin:
    return ZendeskAdmin(sandbox.url, EMAIL, TOKEN, observer=checks)


def test_setup_creates_the_webhook_and_both_triggers(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    result = admin(sandbox, checks).ensure(PUBLIC)

    (webhook,) = sandbox.webhooks()
    assert webhook["name"] == WEBHOOK_NAME and webhook["endpoint"] == f"{PUBLIC}/helpdesk/zendesk"
    assert (webhook["http_method"], webhook["request_format"], webhook["status"]) == ("POST", "json", "active")
    assert webhook["subscriptions"] == ["conditional_ticket_events"]
    assert result.webhook == "created" and result.webhook_id == webhook["id"]
    assert result.signing_secret == sandbox.webhook_secret(webhook["id"])
    assert result.signing_secret not in repr(result) and result.signing_secret not in " ".join(result.summary())

    triggers = {t["title"]: t for t in sandbox.triggers()}
    assert set(triggers) == {COMMENT_TRIGGER_TITLE, STATUS_TRIGGER_TITLE, *APPROVAL_TRIGGER_TITLES.values()}
    comment = triggers[COMMENT_TRIGGER_TITLE]
    assert {"field": "comment_is_public", "operator": "is", "value": "true"} in comment["conditions"]["all"]
    assert {"field": "role", "operator": "is", "value": "agent"} in comment["conditions"]["all"]
    assert {"field": "current_via_id", "operator": "is_not", "value": "5"} in comment["conditions"]["all"]
    assert {"field": "current_tags", "operator": "includes", "value": "socialdesk"} in comment["conditions"]["all"]
    assert comment["actions"] == [{"field": "notification_webhook", "value": [webhook["id"], COMMENT_EVENT_BODY]}]
    assert triggers[STATUS_TRIGGER_TITLE]["actions"][0]["value"] == [webhook["id"], STATUS_EVENT_BODY]
    approved = triggers[APPROVAL_TRIGGER_TITLES["approved"]]
    assert {"field": "current_tags", "operator": "includes", "value": "socialdesk_approved"} in approved["conditions"]["all"]
    assert approved["actions"] == [
        {"field": "notification_webhook", "value": [webhook["id"], approval_event_body("approved")]},
        {"field": "remove_tags", "value": "socialdesk_approved"},  # fires once per decision
    ]
    assert set(result.triggers.values()) == {"created"} and len(result.triggers) == 4
    assert "GET /api/v2/webhooks/%s/signing_secret" % webhook["id"] in checks.operations()


def test_setup_is_idempotent(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    first = admin(sandbox, checks).ensure(PUBLIC)
    writes_before = [op for op in checks.operations() if not op.startswith("GET")]
    second = admin(sandbox, checks).ensure(PUBLIC)

    assert len(sandbox.webhooks()) == 1 and len(sandbox.triggers()) == 4
    assert second.webhook == "unchanged" and set(second.triggers.values()) == {"unchanged"}
    assert second.webhook_id == first.webhook_id and second.signing_secret == first.signing_secret
    assert [op for op in checks.operations() if not op.startswith("GET")] == writes_before  # nothing written


def test_setup_repairs_what_differs(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    first = admin(sandbox, checks).ensure(PUBLIC)
    # Someone moved the app, disabled the webhook and edited a trigger by hand.
    moved = "https://new-host.example.com/api"
    with sandbox._lock:  # noqa: SLF001 - an edit in Admin Center
        sandbox._webhooks[first.webhook_id]["status"] = "inactive"  # noqa: SLF001
        trigger = next(t for t in sandbox._triggers.values() if t["title"] == COMMENT_TRIGGER_TITLE)  # noqa: SLF001
        trigger["conditions"]["all"] = trigger["conditions"]["all"][:2]
        trigger["active"] = False

    again = admin(sandbox, checks).ensure(moved)

    (webhook,) = sandbox.webhooks()
    assert (webhook["endpoint"], webhook["status"]) == (f"{moved}/helpdesk/zendesk", "active")
    assert again.webhook == "updated (endpoint, status)"
    assert again.triggers[COMMENT_TRIGGER_TITLE] == "updated (active, conditions)"
    assert again.triggers[STATUS_TRIGGER_TITLE] == "unchanged"
    repaired = next(t for t in sandbox.triggers() if t["title"] == COMMENT_TRIGGER_TITLE)
    assert repaired["conditions"]["all"] == desired_triggers(first.webhook_id)[0]["conditions"]["all"]
    assert repaired["active"] is True and len(sandbox.triggers()) == 4


# The comment trigger's body before it carried ids only (text and an undocumented comment id).
OLD_COMMENT_BODY = (
    '{"socialdesk_event": "agent_comment", "ticket_id": "{{ticket.id}}", "external_id": "{{ticket.external_id}}", '
    '"status": "{{ticket.status}}", "tags": "{{ticket.tags}}", "updated_at": "{{ticket.updated_at_with_timestamp}}", '
    '"comment_id": "{{ticket.latest_public_comment.id}}", "author_id": "{{current_user.id}}", '
    '"author_email": "{{current_user.email}}", "author_name": "{{current_user.name}}", '
    '"comment": "{{ticket.latest_public_comment.value}}"}'
)


def test_running_it_again_moves_an_existing_trigger_to_the_ids_only_body(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    first = admin(sandbox, checks).ensure(PUBLIC)
    with sandbox._lock:  # noqa: SLF001 - the trigger as an earlier version of the setup left it
        trigger = next(t for t in sandbox._triggers.values() if t["title"] == COMMENT_TRIGGER_TITLE)  # noqa: SLF001
        trigger["actions"] = [{"field": "notification_webhook", "value": [first.webhook_id, OLD_COMMENT_BODY]}]

    again = admin(sandbox, checks).ensure(PUBLIC)

    assert again.triggers[COMMENT_TRIGGER_TITLE] == "updated (actions)"
    updated = next(t for t in sandbox.triggers() if t["title"] == COMMENT_TRIGGER_TITLE)
    assert updated["actions"] == [{"field": "notification_webhook", "value": [first.webhook_id, COMMENT_EVENT_BODY]}]
    assert "latest_public_comment" not in json.dumps(sandbox.triggers())


def test_a_category_is_set_when_given(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    admin(sandbox, checks).ensure(PUBLIC, category_id="360001")
    assert {t["category_id"] for t in sandbox.triggers()} == {"360001"}


def test_pages_of_webhooks_are_followed(sandbox: ZendeskSandbox, checks: SpecChecks, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = admin(sandbox, checks)
    for index in range(3):  # other webhooks whose names contain ours
        tool.create_webhook({"name": f"{WEBHOOK_NAME} (old {index})", "endpoint": "https://old.example.com/x",
                             "http_method": "POST", "request_format": "json", "status": "inactive",
                             "subscriptions": ["conditional_ticket_events"]})
    first = tool.ensure(PUBLIC)
    original = ZendeskAdmin.webhooks_named

    def small_pages(self: ZendeskAdmin, name: str) -> Iterator[dict[str, Any]]:
        data = self._json(self._call("GET", "/api/v2/webhooks", params={"filter[name_contains]": name, "page[size]": "2"}))
        assert data["meta"]["has_more"] and data["links"]["next"]
        yield from original(self, name)

    monkeypatch.setattr(ZendeskAdmin, "webhooks_named", small_pages)
    assert tool.ensure(PUBLIC).webhook_id == first.webhook_id
    assert len(sandbox.webhooks()) == 4


def test_a_refusal_is_reported_in_plain_words(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    wrong = ZendeskAdmin(sandbox.url, EMAIL, "not-the-token", observer=checks)
    with pytest.raises(ZendeskAdminError, match="check ZENDESK_EMAIL and the API token"):
        wrong.ensure(PUBLIC)
    with pytest.raises(ZendeskAdminError, match="PUBLIC_BASE_URL"):
        admin(sandbox, checks).ensure("not a url")


def test_the_command_never_prints_the_secret_unless_asked(sandbox: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    from local import zendesk_setup

    for name, value in {"ZENDESK_URL": sandbox.url, "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN,
                        "PUBLIC_BASE_URL": PUBLIC, "ZENDESK_WEBHOOK_SECRET_PARAM": "/socialdesk/dev/zendesk-webhook-secret"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZENDESK_WEBHOOK_SECRET", raising=False)
    out = io.StringIO()
    assert zendesk_setup.main([], out=out) == 0
    (webhook,) = sandbox.webhooks()
    secret = sandbox.webhook_secret(webhook["id"])
    text = out.getvalue()
    assert secret not in text and "created" in text
    # Where the secret is, and how to get it, in plain words.
    assert "The webhook's signing secret was not stored or shown." in text
    assert "--ssm-parameter /socialdesk/dev/zendesk-webhook-secret" in text and "--secret-file PATH" in text
    assert "--show-secret" in text and "Reveal secret" in text

    out = io.StringIO()
    target = tmp_path / "secret.txt"
    assert zendesk_setup.main(["--secret-file", str(target)], out=out) == 0
    assert target.read_text().strip() == secret and secret not in out.getvalue()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "unchanged" in out.getvalue() and len(sandbox.webhooks()) == 1 and len(sandbox.triggers()) == 4

    out = io.StringIO()
    assert zendesk_setup.main(["--show-secret"], out=out) == 0
    assert f"ZENDESK_WEBHOOK_SECRET={secret}" in out.getvalue()


def test_the_command_says_whether_the_app_already_has_the_secret(sandbox: ZendeskSandbox,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from local import zendesk_setup

    for name, value in {"ZENDESK_URL": sandbox.url, "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": TOKEN,
                        "PUBLIC_BASE_URL": PUBLIC, "ZENDESK_WEBHOOK_SECRET": "an-old-secret"}.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    assert zendesk_setup.main([], out=out) == 0
    assert "is not the one in ZENDESK_WEBHOOK_SECRET" in out.getvalue() and "401" in out.getvalue()

    (webhook,) = sandbox.webhooks()
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", sandbox.webhook_secret(webhook["id"]))
    out = io.StringIO()
    assert zendesk_setup.main([], out=out) == 0
    assert "ZENDESK_WEBHOOK_SECRET already holds the webhook's signing secret" in out.getvalue()
    assert sandbox.webhook_secret(webhook["id"]) not in out.getvalue()


def test_the_command_reports_a_refusal(sandbox: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from local import zendesk_setup

    for name, value in {"ZENDESK_URL": sandbox.url, "ZENDESK_EMAIL": EMAIL, "ZENDESK_API_TOKEN": "wrong",
                        "PUBLIC_BASE_URL": PUBLIC}.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    assert zendesk_setup.main([], out=out) == 1
    assert "Zendesk setup failed" in out.getvalue() and "401" in out.getvalue()
    assert json.dumps(sandbox.webhooks()) == "[]"


def test_the_sandbox_webhook_and_trigger_endpoints_follow_the_specs(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    tool = admin(sandbox, checks)
    result = tool.ensure(PUBLIC)
    http_client = tool._http  # noqa: SLF001 - the same observed client
    patched = http_client.request("PATCH", f"/api/v2/webhooks/{result.webhook_id}", json={"webhook": {"status": "inactive"}})
    assert patched.status == 204 and sandbox.webhooks()[0]["status"] == "inactive"
    reset = http_client.request("POST", f"/api/v2/webhooks/{result.webhook_id}/signing_secret")
    assert reset.status == 201 and reset.json()["signing_secret"]["secret"] != result.signing_secret
    refused = http_client.request("POST", "/api/v2/triggers", json={"trigger": {
        "title": "x", "conditions": {"all": [{"field": "priority", "operator": "is", "value": "high"}]},
        "actions": [{"field": "notification_webhook", "value": [result.webhook_id, "{}"]}]}})
    assert refused.status == 422
    trigger_id = result.trigger_ids[STATUS_TRIGGER_TITLE]
    assert http_client.request("GET", f"/api/v2/triggers/{trigger_id}").json()["trigger"]["title"] == STATUS_TRIGGER_TITLE
    assert http_client.request("DELETE", f"/api/v2/triggers/{trigger_id}").status == 204
    assert http_client.request("DELETE", f"/api/v2/webhooks/{result.webhook_id}").status == 204
    assert sandbox.webhooks() == [] and len(sandbox.triggers()) == 3


def test_an_agent_update_over_the_sandbox_admin_endpoint(sandbox: ZendeskSandbox, checks: SpecChecks) -> None:
    import urllib.request

    user = sandbox._new_user({"name": "Dana", "external_id": "messenger:1"})  # noqa: SLF001
    created = sandbox._do_create_ticket({"comment": {"body": "Hi", "author_id": user["id"]}, "requester_id": user["id"],  # noqa: SLF001
                                         "tags": ["socialdesk"], "external_id": "messenger:dm:1:2"}, "test")
    ticket_id = created[1]["ticket"]["id"]
    request = urllib.request.Request(f"{sandbox.url}/__sandbox/tickets/{ticket_id}/agent_update", method="POST",
                                     data=json.dumps({"comment": "Hello!", "status": "pending"}).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["ticket"]["status"] == "pending" and body["deliveries"] == []  # no triggers configured
    assert [c["body"] for c in sandbox.comments(ticket_id)] == ["Hi", "Hello!"]
