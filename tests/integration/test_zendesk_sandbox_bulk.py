"""The sandbox's bulk endpoints and job statuses, over HTTP, checked against Zendesk's spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.zendesk_sandbox import ZendeskSandbox
from tests.integration.test_zendesk_sandbox import EMAIL, TOKEN, Api
from tests.support.openapi import ZendeskContract


@pytest.fixture
def sandbox():
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=EMAIL, api_token=TOKEN, job_polls=1).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def api(sandbox: ZendeskSandbox, contract: ZendeskContract) -> Api:
    return Api(sandbox, contract)


def _ticket(requester_id: int, external_id: str, **extra: Any) -> dict[str, Any]:
    return {"subject": f"About {external_id}", "comment": {"body": f"Help {external_id}", "author_id": requester_id,
            "public": True}, "requester_id": requester_id, "submitter_id": requester_id, "external_id": external_id,
            "tags": ["socialdesk"], "metadata": {"socialdesk_message": external_id}, **extra}


def _poll(api: Api, job_id: str) -> dict[str, Any]:
    _, body = api.call("GET", f"/api/v2/job_statuses/{job_id}.json")
    return body["job_status"]


def test_create_many_queues_a_job_that_creates_every_ticket_once_polled(api: Api, sandbox: ZendeskSandbox) -> None:
    users = [api.user(f"x:{n}", f"User {n}")["id"] for n in range(3)]
    _, body = api.call("POST", "/api/v2/tickets/create_many.json",
                       {"tickets": [_ticket(u, f"x:dm:{n}", priority="high", group_id=7) for n, u in enumerate(users)]})
    job = body["job_status"]
    assert job["status"] == "queued" and job["results"] is None and job["total"] == 3
    assert sandbox.tickets() == []  # job_polls=1: the first read still finds it queued
    assert _poll(api, job["id"])["status"] == "queued"
    done = _poll(api, job["id"])
    assert done["status"] == "completed" and done["progress"] == 3
    by_index = {r["index"]: r for r in done["results"]}
    assert all(r["success"] and r["status"] == "Created" for r in by_index.values())
    for n in range(3):
        ticket = sandbox.ticket(by_index[n]["id"])
        assert ticket["external_id"] == f"x:dm:{n}" and ticket["requester_id"] == users[n]
        assert (ticket["priority"], ticket["group_id"], ticket["tags"]) == ("high", 7, ["socialdesk"])
        assert sandbox.audits(ticket["id"])[0]["metadata"]["custom"] == {"socialdesk_message": f"x:dm:{n}"}
    assert sandbox.stats()["requests"]["POST /api/v2/tickets/create_many"] == 1


def test_bulk_created_incidents_are_linked_to_their_problem_like_single_ones(api: Api, sandbox: ZendeskSandbox) -> None:
    user = api.user()["id"]
    problem = api.ticket(user, external_id="crisis:1", type="problem")[1]["ticket"]["id"]
    incidents = [_ticket(user, f"x:dm:{n}", type="incident", problem_id=problem) for n in range(2)]
    not_a_problem = _ticket(user, "x:dm:9", type="incident", problem_id=999)
    _, body = api.call("POST", "/api/v2/tickets/create_many.json", {"tickets": [*incidents, not_a_problem]})
    _poll(api, body["job_status"]["id"])
    results = _poll(api, body["job_status"]["id"])["results"]
    assert [r["success"] for r in results] == [True, True, False] and "Problem: is invalid" in results[2]["details"]
    assert sorted(t["external_id"] for t in sandbox.incidents(problem)) == ["x:dm:0", "x:dm:1"]
    assert sandbox.ticket(problem)["has_incidents"] is True


def test_failed_items_and_invalid_ones_fail_alone(api: Api, sandbox: ZendeskSandbox) -> None:
    user = api.user()["id"]
    sandbox.fail_bulk_items("x:dm:b", details="Injected: try again")
    tickets = [_ticket(user, "x:dm:a"), _ticket(user, "x:dm:b"), {**_ticket(user, "x:dm:c"), "comment": {"body": ""}}]
    _, body = api.call("POST", "/api/v2/tickets/create_many.json", {"tickets": tickets})
    _poll(api, body["job_status"]["id"])
    results = _poll(api, body["job_status"]["id"])["results"]
    assert results[0]["success"] is True
    assert results[1] == {"index": 1, "error": "TicketCreateFailed", "details": "Injected: try again", "success": False}
    assert results[2]["success"] is False and "Description: cannot be blank" in results[2]["details"]
    assert [t["external_id"] for t in sandbox.tickets()] == ["x:dm:a"]
    # The single endpoint is not affected by the bulk-only failure.
    api.ticket(user, external_id="x:dm:b")
    assert sorted(t["external_id"] for t in sandbox.tickets()) == ["x:dm:a", "x:dm:b"]


def test_the_spec_patch_for_failed_items_is_needed(api: Api, sandbox: ZendeskSandbox) -> None:
    unpatched = ZendeskContract(patched=False)
    sandbox.fail_bulk_items("x:dm:a")
    _, body = api.call("POST", "/api/v2/tickets/create_many.json", {"tickets": [_ticket(api.user()["id"], "x:dm:a")]})
    _poll(api, body["job_status"]["id"])
    exchange, answer = api.call("GET", f"/api/v2/job_statuses/{body['job_status']['id']}.json")
    assert answer["job_status"]["status"] == "failed"  # every item failed
    with pytest.raises(AssertionError, match="results"):
        unpatched.validate_exchange(exchange)


def test_more_than_100_items_are_refused(api: Api, sandbox: ZendeskSandbox) -> None:
    user = api.user()["id"]
    exchange, body = api.call("POST", "/api/v2/tickets/create_many.json",
                              {"tickets": [_ticket(user, f"x:{n}") for n in range(101)]})
    assert exchange.status == 400 and body["error"] == "TooManyValues"
    assert sandbox.tickets() == []


def test_users_create_or_update_many_finds_existing_users_by_external_id(api: Api, sandbox: ZendeskSandbox) -> None:
    known = api.user("x:1", "Known")["id"]
    _, body = api.call("POST", "/api/v2/users/create_or_update_many.json",
                       {"users": [{"name": "Known again", "external_id": "x:1"}, {"name": "New", "external_id": "x:2"}]})
    _poll(api, body["job_status"]["id"])
    results = _poll(api, body["job_status"]["id"])["results"]
    assert results[0] == {"index": 0, "id": known, "status": "Updated", "external_id": "x:1", "success": True}
    assert results[1]["status"] == "Created" and results[1]["external_id"] == "x:2"
    assert len(sandbox.users()) == 2


def test_update_many_batch_and_bulk_forms(api: Api, sandbox: ZendeskSandbox) -> None:
    user = api.user()["id"]
    first = api.ticket(user, external_id="x:dm:1")[1]["ticket"]["id"]
    second = api.ticket(user, external_id="x:dm:2")[1]["ticket"]["id"]
    batch = {"tickets": [{"id": first, "comment": {"body": "one", "author_id": user, "public": True}},
                         {"id": 999, "status": "open"}]}
    _, body = api.call("PUT", "/api/v2/tickets/update_many.json", batch)
    _poll(api, body["job_status"]["id"])
    results = _poll(api, body["job_status"]["id"])["results"]
    assert results[0] == {"id": first, "action": "update", "status": "Updated", "success": True}
    assert results[1]["id"] == 999 and results[1]["success"] is False
    assert [c["body"] for c in sandbox.comments(first)][-1] == "one"
    _, body = api.call("PUT", f"/api/v2/tickets/update_many.json?ids={first},{second}", {"ticket": {"status": "pending"}})
    _poll(api, body["job_status"]["id"])
    assert _poll(api, body["job_status"]["id"])["status"] == "completed"
    assert {sandbox.ticket(first)["status"], sandbox.ticket(second)["status"]} == {"pending"}


def test_show_many_held_jobs_and_forgotten_ones(api: Api, sandbox: ZendeskSandbox) -> None:
    user = api.user()["id"]
    sandbox.hold_jobs()
    ids = [api.call("POST", "/api/v2/tickets/create_many.json", {"tickets": [_ticket(user, f"x:{n}")]})[1]["job_status"]["id"]
           for n in range(2)]
    for _ in range(3):
        _, body = api.call("GET", f"/api/v2/job_statuses/show_many.json?ids={','.join(ids)}")
        assert [j["status"] for j in body["job_statuses"]] == ["queued", "queued"]
    assert sandbox.tickets() == []
    sandbox.release_jobs()
    _, body = api.call("GET", f"/api/v2/job_statuses/show_many.json?ids={','.join(ids)}")
    assert [j["status"] for j in body["job_statuses"]] == ["completed", "completed"]
    assert len(sandbox.tickets()) == 2
    sandbox.forget_jobs()
    exchange, _ = api.call("GET", f"/api/v2/job_statuses/{ids[0]}.json")
    assert exchange.status == 404
    assert sandbox.stats()["requests"]["GET /api/v2/job_statuses/show_many"] == 4


def test_http_controls_fail_and_hold(api: Api, sandbox: ZendeskSandbox) -> None:
    api.admin("POST", "/__sandbox/jobs/fail_items", {"keys": ["x:1"]})
    api.admin("POST", "/__sandbox/jobs/hold", {})
    user = api.user()["id"]
    _, body = api.call("POST", "/api/v2/tickets/create_many.json", {"tickets": [_ticket(user, "x:1"), _ticket(user, "x:2")]})
    assert api.admin("GET", "/__sandbox/jobs")["jobs"][0]["status"] == "queued"
    api.admin("POST", "/__sandbox/jobs/release", {})
    _poll(api, body["job_status"]["id"])
    results = _poll(api, body["job_status"]["id"])["results"]
    assert [r["success"] for r in results] == [False, True]
    assert json.dumps(results[0]).count("Injected failure") == 1


def test_an_incident_whose_problem_an_operator_deleted_still_takes_comments(api: Api, sandbox: ZendeskSandbox) -> None:
    """Found by the soak: the sandbox dropped the connection of every later update of such an incident."""
    user = api.user()["id"]
    problem = api.ticket(user, external_id="crisis:2", type="problem")[1]["ticket"]["id"]
    incident = api.ticket(user, external_id="x:dm:5", type="incident", problem_id=problem)[1]["ticket"]["id"]
    sandbox.delete_ticket(problem)
    exchange, body = api.call("PUT", f"/api/v2/tickets/{incident}.json",
                              {"ticket": {"comment": {"body": "still waiting", "author_id": user, "public": True}}})
    assert exchange.status == 200 and body["ticket"]["id"] == incident
    assert [c["body"] for c in sandbox.comments(incident)][-1] == "still waiting"
