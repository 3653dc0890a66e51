"""The local Zendesk sandbox, over real HTTP, with every exchange checked against Zendesk's spec.

Each call goes through ``Api.call``, which validates the request and the response with
``tests.support.openapi.ZendeskContract``: a sandbox answer that Zendesk's published
OpenAPI document does not allow fails the test that provoked it.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from local.zendesk_sandbox import ZendeskSandbox
from tests.support.openapi import (
    SPEC_PATCHES,
    ContractRecorder,
    RecordedExchange,
    ZendeskContract,
    spec_available,
)

# No skip: a contract test that quietly skips when the spec is missing could never fail.
assert spec_available(), "Zendesk's OpenAPI spec was not found (../shared/specs or ZENDESK_OPENAPI_SPEC)"

EMAIL, TOKEN = "agent@sandbox.test", "sandbox-token"


def basic(email: str = EMAIL, token: str = TOKEN) -> str:
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


class Api:
    """A tiny urllib client: every exchange is recorded and checked against the spec."""

    def __init__(self, sandbox: ZendeskSandbox, contract: ZendeskContract) -> None:
        self.sandbox, self.contract = sandbox, contract

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        auth: str | None = "default",
        check_request: bool = True,
        raw: bytes | None = None,
    ) -> tuple[RecordedExchange, Any]:
        request_headers = {"Accept": "application/json", **(headers or {})}
        if auth:
            request_headers["Authorization"] = basic() if auth == "default" else auth
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            request_headers["Content-Type"] = "application/json"
        url = self.sandbox.url + path
        request = urllib.request.Request(url, data=data, method=method, headers=request_headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, response_headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, payload = error.code, error.headers, error.read()
        except (http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError):
            status, response_headers, payload = None, None, None  # dropped: no response at all
        exchange = RecordedExchange(method, url, request_headers, data, status, response_headers, payload)
        self.contract.validate_exchange(exchange, check_request=check_request)
        if status is not None:
            assert response_headers["Content-Type"] == "application/json; charset=utf-8"
        return exchange, json.loads(payload) if payload else None

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """The sandbox's own test endpoints (not Zendesk's API, so not checked)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.sandbox.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    # Shortcuts for the bridge's calls --------------------------------------------------------

    def user(self, external_id: str = "x:42", name: str = "Ada") -> dict[str, Any]:
        _, body = self.call("POST", "/api/v2/users/create_or_update.json",
                            {"user": {"name": name, "external_id": external_id, "role": "end-user"}})
        return body["user"]

    def ticket(self, requester_id: int, *, key: str | None = None, text: str = "Hello", **extra: Any) -> tuple[RecordedExchange, Any]:
        ticket = {"subject": "DM from @ada", "comment": {"body": text, "author_id": requester_id, "public": True},
                  "requester_id": requester_id, "external_id": "x:dm:42", "tags": ["socialdesk", "x"], **extra}
        headers = {"Idempotency-Key": key} if key else {}
        return self.call("POST", "/api/v2/tickets.json", {"ticket": ticket}, headers=headers)

    def comment(self, ticket_id: int, author_id: int, text: str, **extra: Any) -> tuple[RecordedExchange, Any]:
        body = {"ticket": {"comment": {"body": text, "author_id": author_id, "public": True}, **extra}}
        return self.call("PUT", f"/api/v2/tickets/{ticket_id}.json", body)


@pytest.fixture(scope="session")
def contract() -> ZendeskContract:
    return ZendeskContract()


@pytest.fixture
def sandbox():
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=EMAIL, api_token=TOKEN).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(sandbox: ZendeskSandbox, contract: ZendeskContract) -> Api:
    return Api(sandbox, contract)


# --- users -----------------------------------------------------------------------------------


def test_create_or_update_user_is_keyed_by_external_id(api: Api) -> None:
    exchange, created = api.call("POST", "/api/v2/users/create_or_update", {"user": {"name": "Ada", "external_id": "x:42", "role": "end-user"}})
    assert exchange.status == 201
    again, updated = api.call("POST", "/api/v2/users/create_or_update.json", {"user": {"name": "Ada L.", "external_id": "x:42"}})
    assert again.status == 200
    assert updated["user"]["id"] == created["user"]["id"]
    assert updated["user"]["name"] == "Ada L."
    assert created["user"]["role"] == "end-user" and created["user"]["email"] is None

    shown, body = api.call("GET", f"/api/v2/users/{created['user']['id']}.json")
    assert shown.status == 200 and body["user"]["external_id"] == "x:42"
    assert [u["name"] for u in api.sandbox.users()] == ["Ada L."]
    missing, _ = api.call("GET", "/api/v2/users/999999")
    assert missing.status == 404


# --- tickets ---------------------------------------------------------------------------------


def test_ticket_create_show_list_comment_and_audits(api: Api) -> None:
    user = api.user()
    created, body = api.ticket(user["id"], metadata={"socialdesk": {"message_id": "m1"}})
    assert created.status == 201
    ticket = body["ticket"]
    assert ticket["status"] == "new" and ticket["requester_id"] == user["id"]
    assert ticket["url"] == f"{api.sandbox.url}/api/v2/tickets/{ticket['id']}.json"
    assert created.response_headers["Location"] == ticket["url"]
    assert body["audit"]["metadata"]["custom"] == {"socialdesk": {"message_id": "m1"}}

    _, shown = api.call("GET", f"/api/v2/tickets/{ticket['id']}.json")
    assert shown["ticket"]["subject"] == "DM from @ada"

    api.ticket(user["id"], external_id="x:dm:other")
    _, listed = api.call("GET", "/api/v2/tickets.json?external_id=x%3Adm%3A42")
    assert [t["id"] for t in listed["tickets"]] == [ticket["id"]]
    _, everything = api.call("GET", "/api/v2/tickets")
    assert len(everything["tickets"]) == 2

    updated, answer = api.comment(ticket["id"], user["id"], "Second message", metadata={"socialdesk": {"message_id": "m2"}})
    assert updated.status == 200 and answer["audit"]["events"][0]["body"] == "Second message"

    _, comments = api.call("GET", f"/api/v2/tickets/{ticket['id']}/comments.json")
    assert comments["count"] == 2 and comments["next_page"] is None
    assert [c["body"] for c in comments["comments"]] == ["Hello", "Second message"]
    assert all(c["type"] == "Comment" and c["author_id"] == user["id"] and c["public"] for c in comments["comments"])
    assert comments["comments"][1]["html_body"].endswith("<p>Second message</p></div>")

    _, audits = api.call("GET", f"/api/v2/tickets/{ticket['id']}/audits.json")
    assert [a["metadata"]["custom"] for a in audits["audits"]] == [{"socialdesk": {"message_id": "m1"}}, {"socialdesk": {"message_id": "m2"}}]
    assert audits["audits"][0]["metadata"]["system"]["client"].startswith("Python-urllib")

    not_found, _ = api.call("GET", "/api/v2/tickets/999/comments")
    assert not_found.status == 404

    first_audit = audits["audits"][0]
    _, shown_audit = api.call("GET", f"/api/v2/tickets/{ticket['id']}/audits/{first_audit['id']}.json")
    assert shown_audit["audit"] == first_audit  # Show Audit: one audit, as listed
    missing_audit, _ = api.call("GET", f"/api/v2/tickets/{ticket['id']}/audits/999999")
    assert missing_audit.status == 404


def test_safe_update_is_refused_when_the_ticket_changed_since_its_stamp(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    ticket = body["ticket"]
    stale = "2020-01-01T00:00:00Z"
    refused, error = api.call("PUT", f"/api/v2/tickets/{ticket['id']}", {"ticket": {
        "comment": {"body": "late", "author_id": user["id"]}, "safe_update": True, "updated_stamp": stale}})
    assert refused.status == 409 and error["error"] == "UpdateConflict"
    assert len(api.sandbox.comments(ticket["id"])) == 1  # nothing written
    fresh, _ = api.call("PUT", f"/api/v2/tickets/{ticket['id']}", {"ticket": {
        "comment": {"body": "in time", "author_id": user["id"]}, "safe_update": True, "updated_stamp": ticket["updated_at"]}})
    assert fresh.status == 200 and len(api.sandbox.comments(ticket["id"])) == 2


def test_what_operators_do_deleted_tickets_and_users(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    ticket_id = body["ticket"]["id"]
    api.sandbox.delete_user(user["id"])
    refused, error = api.comment(ticket_id, user["id"], "from a deleted user")
    assert refused.status == 422 and "author_id" in error["details"]
    api.sandbox.delete_ticket(ticket_id)
    for method, path, payload in (("GET", f"/api/v2/tickets/{ticket_id}", None),
                                  ("PUT", f"/api/v2/tickets/{ticket_id}", {"ticket": {"status": "open"}}),
                                  ("GET", f"/api/v2/tickets/{ticket_id}/comments", None)):
        gone, _ = api.call(method, path, payload)
        assert gone.status == 404, (method, path)


def test_idempotency_key_replays_and_rejects_a_different_body(api: Api) -> None:
    user = api.user()
    first, created = api.ticket(user["id"], key="msg-1")
    assert first.status == 201 and first.response_headers["x-idempotency-lookup"] == "miss"
    replay, replayed = api.ticket(user["id"], key="msg-1")
    assert replay.status == 201 and replay.response_headers["x-idempotency-lookup"] == "hit"
    assert replayed == created
    assert len(api.sandbox.tickets()) == 1

    conflict, error = api.ticket(user["id"], key="msg-1", text="something else")
    assert conflict.status == 400
    assert error == {"error": "IdempotentRequestError", "description": "Request parameters don't match the given idempotency key"}

    no_key, _ = api.ticket(user["id"])
    assert "x-idempotency-lookup" not in no_key.response_headers
    assert len(api.sandbox.tickets()) == 2
    assert api.sandbox.stats()["requests"]["POST /api/v2/tickets"] == 4


def test_idempotency_key_expires(contract: ZendeskContract) -> None:
    with ZendeskSandbox(email=EMAIL, api_token=TOKEN, idempotency_ttl=0.05) as sandbox:
        api = Api(sandbox, contract)
        user = api.user()
        api.ticket(user["id"], key="k")
        time.sleep(0.1)
        later, _ = api.ticket(user["id"], key="k")
        assert later.response_headers["x-idempotency-lookup"] == "miss"
        assert len(sandbox.tickets()) == 2


def test_requests_without_valid_credentials_get_401(api: Api, contract: ZendeskContract) -> None:
    for auth in (None, basic(token="wrong"), basic(email="someone@else.test")):
        exchange, body = api.call("GET", "/api/v2/tickets.json", auth=auth, check_request=False)
        assert exchange.status == 401
        assert body == {"error": "Couldn't authenticate you"}
    # The contract itself refuses a request without credentials: the spec requires basicAuth.
    with pytest.raises(AssertionError, match="Security"):
        contract.check_request("GET", f"{api.sandbox.url}/api/v2/tickets.json", {}, None)
    assert api.sandbox.tickets() == []


def test_closed_ticket_rejects_updates_and_takes_a_follow_up(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    ticket_id = body["ticket"]["id"]
    api.admin("POST", f"/__sandbox/tickets/{ticket_id}/status", {"status": "closed"})

    rejected, error = api.comment(ticket_id, user["id"], "Are you there?")
    assert rejected.status == 422
    assert error == {"error": "RecordInvalid", "description": "Record validation errors",
                     "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}
    assert len(api.sandbox.comments(ticket_id)) == 1

    _, follow_up = api.ticket(user["id"], via_followup_source_id=ticket_id)
    assert follow_up["ticket"]["via_followup_source_id"] == ticket_id
    assert follow_up["ticket"]["via"]["source"]["rel"] == "follow_up"
    assert api.sandbox.ticket(ticket_id)["followup_ids"] == [follow_up["ticket"]["id"]]

    # Zendesk ignores via_followup_source_id unless the source is closed.
    _, not_linked = api.ticket(user["id"], via_followup_source_id=follow_up["ticket"]["id"])
    assert "via_followup_source_id" not in not_linked["ticket"]


def test_requester_comment_reopens_a_solved_ticket(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    ticket_id = body["ticket"]["id"]
    api.sandbox.set_status(ticket_id, "solved")

    _, by_agent = api.comment(ticket_id, api.sandbox.agent_id, "We fixed it")
    assert by_agent["ticket"]["status"] == "solved"

    _, by_requester = api.comment(ticket_id, user["id"], "It broke again")
    assert by_requester["ticket"]["status"] == "open"
    change = [e for e in by_requester["audit"]["events"] if e["type"] == "Change"]
    assert change == [{"type": "Change", "field_name": "status", "value": "open", "previous_value": "solved", "id": change[0]["id"]}]

    _, explicit = api.comment(ticket_id, api.sandbox.agent_id, "Solved again", status="solved")
    assert explicit["ticket"]["status"] == "solved"


def test_search_finds_tickets_by_external_id(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    _, found = api.call("GET", "/api/v2/search.json?query=type%3Aticket%20external_id%3Ax%3Adm%3A42")
    assert [r["id"] for r in found["results"]] == [body["ticket"]["id"]]
    assert found["results"][0]["result_type"] == "ticket"
    _, none = api.call("GET", "/api/v2/search.json?query=status%3Aclosed")
    assert none["count"] == 0


# --- errors, faults, stats -------------------------------------------------------------------


def test_unknown_routes_and_bad_json(api: Api, contract: ZendeskContract) -> None:
    url = f"{api.sandbox.url}/api/v2/wibble.json"
    with pytest.raises(AssertionError, match="not a Zendesk API operation"):
        api.call("GET", "/api/v2/wibble.json")  # the contract refuses the request itself
    try:  # the sandbox's own answer, unchecked (the spec has no such path)
        urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": basic()}), timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 404 and json.loads(error.read())["error"] == "InvalidEndpoint"
    else:
        pytest.fail("unknown route answered 2xx")

    bad, error = api.call("POST", "/api/v2/tickets.json", raw=b"{not json", check_request=False)
    assert bad.status == 400 and error["error"] == "InvalidJSON"
    blank, error = api.call("POST", "/api/v2/tickets.json", {"ticket": {"subject": "no comment", "comment": {"body": ""}}})
    assert blank.status == 422 and "description" in error["details"]
    assert api.sandbox.tickets() == []


def test_faults_are_consumed_in_order_then_cleared(api: Api) -> None:
    user = api.user()
    api.admin("POST", "/__sandbox/faults", {"faults": [
        {"match": "POST /api/v2/tickets", "status": 429, "retry_after": 1, "count": 2},
        {"match": "POST /api/v2/tickets", "status": 503},
    ]})
    statuses = []
    for _ in range(4):
        exchange, body = api.ticket(user["id"], key="same")
        statuses.append(exchange.status)
        if exchange.status == 429:
            assert exchange.response_headers["Retry-After"] == "1"
            assert body["error"] == "APIRateLimitExceeded"
    assert statuses == [429, 429, 503, 201]
    assert len(api.sandbox.tickets()) == 1

    # GETs never matched the faults above; an unmatched fault stays queued until cleared.
    api.sandbox.inject(match="PUT ", status=500)
    listed, _ = api.call("GET", "/api/v2/tickets")
    assert listed.status == 200
    assert api.sandbox.stats()["faults_pending"] == 1
    api.admin("DELETE", "/__sandbox/faults")
    assert api.sandbox.faults() == []
    ok, _ = api.comment(api.sandbox.tickets()[0]["id"], user["id"], "no fault any more")
    assert ok.status == 200


def test_dropped_connections_before_and_after_applying(api: Api) -> None:
    user = api.user()
    api.sandbox.inject(match="POST /api/v2/tickets", drop=True, when="before")
    dropped, _ = api.ticket(user["id"], key="k1")
    assert dropped.status is None and api.sandbox.tickets() == []

    api.sandbox.inject(match="POST /api/v2/tickets", drop=True, when="after")
    dropped, _ = api.ticket(user["id"], key="k1")
    assert dropped.status is None and len(api.sandbox.tickets()) == 1  # applied, answer lost

    retried, _ = api.ticket(user["id"], key="k1")
    assert retried.status == 201 and retried.response_headers["x-idempotency-lookup"] == "hit"
    assert len(api.sandbox.tickets()) == 1

    api.sandbox.inject(match="PUT /api/v2/tickets/{ticket_id}", status=500, when="after")
    failed, _ = api.comment(api.sandbox.tickets()[0]["id"], user["id"], "maybe applied")
    assert failed.status == 500
    assert [c["body"] for c in api.sandbox.comments(api.sandbox.tickets()[0]["id"])][-1] == "maybe applied"


def test_slow_responses(api: Api) -> None:
    api.sandbox.inject(match="GET /api/v2/tickets", delay=0.3)
    started = time.monotonic()
    slow, _ = api.call("GET", "/api/v2/tickets.json")
    assert slow.status == 200 and time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.call("GET", "/api/v2/tickets.json")
    assert time.monotonic() - started < 0.3


def test_probabilistic_faults_are_reproducible_with_a_seed(contract: ZendeskContract) -> None:
    patterns = []
    for _ in range(2):
        with ZendeskSandbox(email=EMAIL, api_token=TOKEN) as sandbox:
            api = Api(sandbox, contract)
            sandbox.inject(match="GET /api/v2/tickets", status=503, probability=0.3, seed=7)
            patterns.append([api.call("GET", "/api/v2/tickets.json")[0].status for _ in range(20)])
    assert patterns[0] == patterns[1]
    assert 0 < patterns[0].count(503) < 20 and set(patterns[0]) == {200, 503}


def test_stats_count_requests_by_operation_and_reset_clears_everything(api: Api) -> None:
    user = api.user()
    _, body = api.ticket(user["id"])
    api.call("GET", f"/api/v2/tickets/{body['ticket']['id']}.json")
    api.call("GET", f"/api/v2/tickets/{body['ticket']['id']}")
    api.call("GET", "/api/v2/tickets.json", auth=None, check_request=False)

    stats = api.admin("GET", "/__sandbox/stats")
    assert stats["requests"] == {
        "POST /api/v2/users/create_or_update": 1,
        "POST /api/v2/tickets": 1,
        "GET /api/v2/tickets/{ticket_id}": 2,
        "GET /api/v2/tickets": 1,
    }
    assert stats["total"] == 5 and stats["tickets"] == 1 and stats["users"] == 1

    api.admin("POST", "/__sandbox/reset")
    assert api.sandbox.stats()["total"] == 0
    assert api.sandbox.tickets() == [] and api.sandbox.users() == []
    missing, _ = api.call("GET", f"/api/v2/tickets/{body['ticket']['id']}.json")
    assert missing.status == 404


def test_concurrent_creates_with_one_key_make_one_ticket(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = api.user()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: api.ticket(user["id"], key="race")[0], range(16)))
    assert {r.status for r in results} == {201}
    assert [r.response_headers["x-idempotency-lookup"] for r in results].count("miss") == 1
    assert len(api.sandbox.tickets()) == 1


# --- the contract checker itself ---------------------------------------------------------------


def test_contract_rejects_responses_that_break_the_spec(api: Api, contract: ZendeskContract) -> None:
    user = api.user()
    good, body = api.ticket(user["id"])

    def broken(status: int, payload: Any, content_type: str = "application/json; charset=utf-8") -> RecordedExchange:
        return RecordedExchange(good.method, good.url, good.request_headers, good.request_body, status,
                                {"Content-Type": content_type}, json.dumps(payload).encode())

    wrong_id = {**body, "ticket": {**body["ticket"], "id": "one"}}
    with pytest.raises(AssertionError, match=r"ticket/id: 'one' is not of type 'integer'"):
        contract.validate_exchange(broken(201, wrong_id))
    leaked = {**body, "ticket": {**body["ticket"], "metadata": {"custom": {}}}}  # write-only in the spec
    with pytest.raises(AssertionError, match=r"ticket/metadata"):
        contract.validate_exchange(broken(201, leaked))
    bad_status = {**body, "ticket": {**body["ticket"], "status": "reopened"}}
    with pytest.raises(AssertionError, match=r"ticket/status"):
        contract.validate_exchange(broken(201, bad_status))
    with pytest.raises(AssertionError, match="not a documented status"):
        contract.validate_exchange(broken(202, body))
    with pytest.raises(AssertionError, match="error shape"):
        contract.validate_exchange(broken(422, {"message": "closed"}))
    with pytest.raises(AssertionError):
        contract.validate_exchange(broken(201, body, content_type="text/html"))
    contract.validate_exchange(broken(201, body))  # the untouched original still passes


def test_contract_rejects_requests_that_break_the_spec(api: Api, contract: ZendeskContract) -> None:
    url = f"{api.sandbox.url}/api/v2/tickets.json"
    headers = {"Authorization": basic(), "Content-Type": "application/json"}
    contract.check_request("POST", url, headers, json.dumps({"ticket": {"comment": {"body": "ok"}}}).encode())
    with pytest.raises(AssertionError, match=r"ticket/tags"):
        contract.check_request("POST", url, headers, json.dumps({"ticket": {"comment": {"body": "x"}, "tags": "a,b"}}).encode())
    with pytest.raises(AssertionError, match=r"ticket/requester_id"):
        contract.check_request("POST", url, headers, json.dumps({"ticket": {"comment": {"body": "x"}, "requester_id": "12"}}).encode())
    with pytest.raises(AssertionError, match="user"):
        contract.check_request("POST", f"{api.sandbox.url}/api/v2/users/create_or_update", headers, b"{}")
    with pytest.raises(AssertionError, match="ticket_id"):
        contract.check_request("GET", f"{api.sandbox.url}/api/v2/tickets/abc.json", headers, None)


def test_recorder_collects_violations_for_a_client_observer(api: Api, contract: ZendeskContract) -> None:
    recorder = ContractRecorder(contract=contract)
    good, _ = api.ticket(api.user()["id"])
    recorder(good)
    recorder(RecordedExchange("GET", f"{api.sandbox.url}/__sandbox/stats", {}, None, 200, {}, b"{}"))  # ignored
    recorder.assert_all_valid()
    assert recorder.operations() == ["POST /api/v2/tickets", "GET /__sandbox/stats"]

    recorder(RecordedExchange("POST", good.url, {"Content-Type": "application/json"}, good.request_body, 201,
                              {"Content-Type": "application/json"}, b'{"ticket": {"id": "x"}}'))
    with pytest.raises(AssertionError, match=r"1 of 3 Zendesk exchanges broke the contract"):
        recorder.assert_all_valid()
    assert "Security" in recorder.violations[0]  # no Authorization header in the bad exchange


def test_each_spec_patch_is_needed(api: Api) -> None:
    """Without SPEC_PATCHES, the published spec rejects what the sandbox sends (as real Zendesk does)."""
    unpatched = ZendeskContract(patched=False)
    exchange, _ = api.call("POST", "/api/v2/users/create_or_update", {"user": {"name": "Ada", "external_id": "x:1"}})
    with pytest.raises(AssertionError, match="user/email: None"):
        unpatched.validate_exchange(exchange)
    user_id = json.loads(exchange.response_body)["user"]["id"]
    _, body = api.ticket(user_id)
    retagged, _ = api.comment(body["ticket"]["id"], user_id, "tagged", tags=["socialdesk", "vip"])
    with pytest.raises(AssertionError, match=r"audit/events/1/value: \['socialdesk', 'vip'\]"):
        unpatched.validate_exchange(retagged)
    # FailedResult's patch is proven in test_zendesk_sandbox_bulk.py.
    assert {p.pointer.split("/")[3] for p in SPEC_PATCHES} == {"UserForAdmin", "AuditObject", "FailedResult"}
