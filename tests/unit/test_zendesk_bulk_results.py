"""How the Zendesk bulk writer reads job statuses: items by index, failures, unfinished jobs."""

from __future__ import annotations

from chalicelib.helpdesks.base import BulkItem
from chalicelib.helpdesks.zendesk.bulk import _job


def test_a_finished_create_job_maps_each_result_to_its_index() -> None:
    job = _job({"id": "abc", "status": "completed", "results": [
        {"index": 1, "id": 502, "status": "Created", "success": True},
        {"index": 0, "error": "TicketCreateFailed", "details": "Description: cannot be blank"},
        {"index": 2, "id": 503},
    ]})
    assert job.finished
    assert {item.index: item for item in job.items} == {
        1: BulkItem(1, "502"),
        0: BulkItem(0, None, "TicketCreateFailed: Description: cannot be blank"),
        2: BulkItem(2, "503"),
    }


def test_results_without_an_index_are_read_by_position_and_users_keep_their_external_id() -> None:
    job = _job({"id": "u1", "status": "completed", "results": [
        {"id": 7, "status": "Created", "external_id": "x:1"},
        {"id": 2, "error": "UserUpdateError", "details": "not properly formatted", "status": "Failed"},
    ]})
    assert job.items == (BulkItem(0, "7", external_id="x:1"), BulkItem(1, None, "UserUpdateError: not properly formatted"))


def test_a_queued_or_unknown_state_is_not_finished_and_has_no_items() -> None:
    assert not _job({"id": "q", "status": "queued", "results": None}).finished
    odd = _job({"id": "w", "status": "killed", "results": [{"index": 0, "id": 1}]})
    assert odd.status == "working" and not odd.finished and odd.items == ()
