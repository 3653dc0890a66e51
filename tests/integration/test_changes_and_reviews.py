"""Edits, deletions, reviews and recommendations, as agents see them in the helpdesk."""

from __future__ import annotations

from typing import Any

from local.samples import PAGE_ID
from tests.integration.conftest import Stack

POST = f"{PAGE_ID}_555"


def _comment(verb: str, text: str = "", comment_id: str = "555_1") -> dict[str, Any]:
    value = {"from": {"id": "6100077", "name": "Ines Varga"}, "post_id": POST, "comment_id": comment_id,
             "parent_id": POST, "created_time": 1_764_000_000, "item": "comment", "verb": verb}
    if text:
        value["message"] = text
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_100, "changes": [{"field": "feed", "value": value}]}]}


def _recommendation(story: str, kind: str, text: str, verb: str = "add") -> dict[str, Any]:
    value = {"item": "rating", "verb": verb, "reviewer_id": f"77{story}", "reviewer_name": "Omar Said",
             "recommendation_type": kind, "review_text": text, "open_graph_story_id": story, "created_time": 1_764_000_000}
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": 1_764_000_000, "changes": [{"field": "ratings", "value": value}]}]}


def _notes(stack: Stack, ticket: dict[str, Any]) -> list[str]:
    return [c["body"] for c in stack.sandbox.comments(ticket["id"]) if not c["public"]]


def test_an_edited_comment_adds_an_internal_note_with_the_new_text(stack: Stack) -> None:
    stack.post_webhook("meta", _comment("add", "The app crashes on login"))
    stack.sync()
    edit = _comment("edited", "The app crashes on login. Reinstalling did not help.")
    stack.post_webhook("meta", edit)
    stack.post_webhook("meta", edit)  # Meta retries: one note, not two
    stack.sync()
    [ticket] = stack.tickets()
    comments = stack.sandbox.comments(ticket["id"])
    assert [c["public"] for c in comments] == [True, False]
    assert "Reinstalling did not help." in comments[1]["body"] and "edited" in comments[1]["body"]


def test_a_deleted_comment_is_noted_and_marked_deleted(stack: Stack) -> None:
    stack.post_webhook("meta", _comment("add", "You scammed me"))
    stack.sync()
    stack.post_webhook("meta", _comment("remove"))
    stack.sync()
    [ticket] = stack.tickets()
    [note] = _notes(stack, ticket)
    assert "deleted" in note
    [original] = [i for i in stack.items("CONV#facebook:comment:555_1") if i["sk"]["S"] == "MSG#555_1"]
    assert "deleted_at" in original


def test_a_negative_recommendation_opens_a_ticket_and_a_positive_one_is_only_stored(stack: Stack) -> None:
    stack.post_webhook("meta", _recommendation("901", "negative", "Rude staff, never again"))
    stack.post_webhook("meta", _recommendation("902", "positive", "Lovely shop"))
    stack.sync()
    [ticket] = stack.tickets()
    assert ticket["external_id"] == "facebook:review:901"
    assert "Rude staff" in stack.sandbox.comments(ticket["id"])[0]["body"]
    assert stack.items("CONV#facebook:review:902")  # stored and counted, no agent needed


def test_praise_edited_into_a_complaint_opens_a_ticket_then(stack: Stack) -> None:
    stack.post_webhook("meta", _recommendation("903", "positive", "Great"))
    stack.sync()
    assert stack.tickets() == []
    stack.post_webhook("meta", _recommendation("903", "negative", "Changed my mind: my refund never came", verb="edited"))
    stack.sync()
    [ticket] = stack.tickets()
    assert "refund never came" in stack.sandbox.comments(ticket["id"])[0]["body"]


def test_a_telegram_edit_is_noted_on_the_chat_ticket(stack: Stack) -> None:
    from local.samples import telegram_chat

    first, _ = telegram_chat("77")
    stack.post_webhook(*first)
    stack.sync()
    edited = {"update_id": 99_000_001, "edited_message": {**first[1]["message"], "text": "The app logs me out every minute now.",
                                                       "edit_date": first[1]["message"]["date"] + 60}}
    stack.post_webhook("telegram", edited)
    stack.sync()
    [ticket] = stack.tickets()
    [note] = _notes(stack, ticket)
    assert "every minute now" in note
