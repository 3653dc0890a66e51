"""What operators, schedulers and DynamoDB really do, and what the customer's conversation
must survive: tickets and users deleted or merged in the helpdesk, parked messages whose
queue notice was lost, overlapping redrives, writes whose outcome is unknown, a crash
right after a confirmed write, and one conversation DynamoDB refuses. Each sequence ends
with every message on a ticket exactly once and nothing left parked."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from tests.integration.conftest import Stack


def _messenger(mid: str, psid: str, text: str, t: int = 1_764_000_000) -> dict[str, Any]:
    from local.samples import PAGE_ID

    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "messaging": [
        {"sender": {"id": psid}, "recipient": {"id": PAGE_ID}, "timestamp": t * 1000, "message": {"mid": mid, "text": text}}]}]}


def _comment(comment_id: str, author: str, text: str, *, parent: str | None = None, t: int = 1_764_000_000) -> dict[str, Any]:
    from local.samples import PAGE_ID

    post = f"{PAGE_ID}_900"
    value = {"item": "comment", "verb": "add", "post_id": post, "comment_id": comment_id, "parent_id": parent or post,
             "from": {"id": author, "name": f"Person {author}"}, "message": text, "created_time": t}
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": t * 1000, "changes": [{"field": "feed", "value": value}]}]}


def _texts(stack: Stack, ticket: dict[str, Any], *, public_only: bool = True) -> list[str]:
    return [c["body"].splitlines()[0] for c in stack.sandbox.comments(ticket["id"]) if c["public"] or not public_only]


def _redrive(**kwargs: Any) -> Any:
    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive

    return redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters(), **kwargs)


def _nothing_parked(stack: Stack) -> bool:
    """No parked entry, no conversation listed as blocked, no queue notice left."""
    from chalicelib import wiring

    leftovers = [i for i in stack.items("CONV#") if i["sk"]["S"].startswith(("PARKED#", "ASIDE#", "PARKID#"))]
    return not leftovers and wiring.message_store().blocked_conversations() == [] and stack.parked_in_queue() == 0


def _settle() -> None:
    """Let a second pass on the helpdesk's clock, so the next write changes ``updated_at``."""
    from chalicelib.sync.tickets import STAMP_SETTLE_SECONDS

    time.sleep(STAMP_SETTLE_SECONDS)


# --- operators in the helpdesk ---------------------------------------------------------------------


def test_a_ticket_deleted_by_an_agent_gets_a_new_ticket_for_the_next_message(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_del_1", "7100001", "my order is late"))
    stack.sync()
    [first] = stack.tickets()
    stack.sandbox.delete_ticket(first["id"])

    stack.post_webhook("meta", _messenger("m_del_2", "7100001", "hello? anyone?", t=1_764_000_100))
    stack.sync()

    [second] = stack.tickets()
    assert second["id"] != first["id"] and _texts(stack, second) == ["hello? anyone?"]
    assert _nothing_parked(stack)
    from chalicelib import wiring

    assert wiring.message_store().get_conversation(second["external_id"]).ticket_id == str(second["id"])


def test_a_deleted_customer_user_is_created_again_and_their_message_still_arrives(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_user_1", "7100002", "charged twice"))
    stack.sync()
    [ticket] = stack.tickets()
    stack.sandbox.delete_user(ticket["requester_id"])

    stack.post_webhook("meta", _messenger("m_user_2", "7100002", "still charged", t=1_764_000_100))
    stack.sync()

    [ticket] = stack.tickets()
    comments = stack.sandbox.comments(ticket["id"])
    assert [c["body"].splitlines()[0] for c in comments] == ["charged twice", "still charged"]
    recreated = {u["id"]: u for u in stack.sandbox.users()}[comments[1]["author_id"]]
    assert recreated["active"] and recreated["external_id"] == "messenger:7100002"
    assert _nothing_parked(stack)

    # The next message uses the re-created user straight away (no refused write first).
    before = stack.sandbox.stats()["requests"].get("PUT /api/v2/tickets/{ticket_id}", 0)
    stack.post_webhook("meta", _messenger("m_user_3", "7100002", "third time", t=1_764_000_200))
    stack.sync()
    assert stack.sandbox.stats()["requests"]["PUT /api/v2/tickets/{ticket_id}"] == before + 1


def test_a_customer_merged_into_another_user_keeps_their_conversation(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_merge_1", "7100003", "where is my parcel"))
    stack.post_webhook("meta", _messenger("m_merge_x", "7100004", "other person"))
    stack.sync()
    by_key = {t["external_id"]: t for t in stack.tickets()}
    mine = next(t for k, t in by_key.items() if k.endswith(":7100003"))
    other = next(t for k, t in by_key.items() if k.endswith(":7100004"))
    stack.sandbox.merge_users(mine["requester_id"], other["requester_id"])

    stack.post_webhook("meta", _messenger("m_merge_2", "7100003", "any news?", t=1_764_000_100))
    stack.sync()
    assert _texts(stack, stack.sandbox.ticket(mine["id"])) == ["where is my parcel", "any news?"]
    assert _nothing_parked(stack)


def test_a_parked_message_whose_ticket_an_agent_deleted_meanwhile_gets_a_new_ticket(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_pdel_1", "7100020", "one"))
    stack.sync()
    [first] = stack.tickets()
    stack.sandbox.inject(match="PUT /api/v2/tickets", status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_pdel_2", "7100020", "two", t=1_764_000_100))
    stack.sync()
    stack.sandbox.clear_faults()
    stack.sandbox.delete_ticket(first["id"])  # found by the soak: the redrive's look at the old ticket answered 404

    _redrive()
    [second] = stack.tickets()
    assert second["id"] != first["id"] and _texts(stack, second) == ["two"]
    assert _nothing_parked(stack)


def test_a_ticket_merged_into_another_gets_a_follow_up_linked_to_it(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_tm_1", "7100005", "broken zipper"))
    stack.post_webhook("meta", _messenger("m_tm_x", "7100006", "something else"))
    stack.sync()
    source = next(t for t in stack.tickets() if t["external_id"].endswith(":7100005"))
    target = next(t for t in stack.tickets() if t["external_id"].endswith(":7100006"))
    stack.sandbox.merge_tickets(source["id"], target["id"])

    stack.post_webhook("meta", _messenger("m_tm_2", "7100005", "photo attached", t=1_764_000_100))
    stack.sync()
    [follow_up] = [t for t in stack.tickets() if t["id"] not in (source["id"], target["id"])]
    assert follow_up["via_followup_source_id"] == source["id"] and _texts(stack, follow_up) == ["photo attached"]
    assert _nothing_parked(stack)


# --- parking, the queue and the redrive ------------------------------------------------------------


def test_a_parked_message_whose_queue_notice_was_lost_is_found_by_the_sweep(stack: Stack, monkeypatch) -> None:
    from chalicelib import wiring

    def lost(*_: Any, **__: Any) -> None:
        raise RuntimeError("SQS unreachable")

    monkeypatch.setattr(wiring.dead_letters(), "park", lost)
    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_lost_1", "7100007", "first"))
    stack.post_webhook("meta", _messenger("m_lost_2", "7100007", "second", t=1_764_000_060))
    stack.sync()
    assert stack.tickets() == [] and stack.parked_in_queue() == 0 and stack.poller.failures == 0
    monkeypatch.undo()

    stack.sandbox.clear_faults()
    report = _redrive()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["first", "second"]
    assert report.delivered == 2 and _nothing_parked(stack)


def test_a_queue_notice_is_kept_until_its_message_is_delivered(stack: Stack) -> None:
    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_keep_1", "7100008", "first"))
    stack.sync()
    assert stack.parked_in_queue() == 1
    report = _redrive(visibility_timeout=0)  # the helpdesk is still down
    assert report.outcomes["still_failing"] == 1 and stack.parked_in_queue() == 1
    stack.sandbox.clear_faults()
    _redrive(visibility_timeout=0)
    assert len(stack.tickets()) == 1 and _nothing_parked(stack)


def test_a_parked_edit_for_a_ticket_closed_meanwhile_leaves_the_parked_list(stack: Stack) -> None:
    from local.samples import PAGE_ID

    stack.post_webhook("meta", _comment(f"{PAGE_ID}_900_1", "7100009", "wrong size"))
    stack.sync()
    [ticket] = stack.tickets()
    stack.sandbox.inject(status=503, count=1000)
    edited = _comment(f"{PAGE_ID}_900_1", "7100009", "wrong size, need L")
    edited["entry"][0]["changes"][0]["value"]["verb"] = "edited"
    stack.post_webhook("meta", edited)
    stack.sync()
    assert stack.parked_in_queue() == 1
    stack.sandbox.clear_faults()
    stack.sandbox.set_status(ticket["id"], "closed")

    report = _redrive()
    assert report.outcomes["stored_only"] == 1  # nobody works a closed ticket: nothing written, nothing parked
    assert _nothing_parked(stack)


def test_overlapping_redrives_deliver_each_parked_message_once(stack: Stack) -> None:
    stack.sandbox.inject(status=503, count=1000)
    for n in range(6):
        stack.post_webhook("meta", _messenger(f"m_ovl_{n}", "7100010", f"message {n}", t=1_764_000_000 + n))
        stack.post_webhook("meta", _messenger(f"m_ovl_b{n}", "7100011", f"other {n}", t=1_764_000_000 + n))
    stack.sync()
    stack.sandbox.clear_faults()
    stack.sandbox.inject(delay=0.05, probability=1.0, seed=1)  # every call slow: the two runs overlap

    errors: list[BaseException] = []

    def run() -> None:
        try:
            _redrive()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    runs = [threading.Thread(target=run) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    stack.sandbox.clear_faults()
    _redrive()  # whatever one run left to the other is finished now
    assert not errors
    from local.samples import PAGE_ID

    for suffix, label in (("7100010", "message"), ("7100011", "other")):
        [ticket] = stack.ticket_for(f"messenger:dm:{PAGE_ID}:{suffix}")
        assert _texts(stack, ticket) == [f"{label} {n}" for n in range(6)]
    assert _nothing_parked(stack)


def test_the_redrive_stops_before_its_timeout_and_the_next_run_finishes(stack: Stack) -> None:
    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_time_1", "7100012", "first"))
    stack.sync()
    stack.sandbox.clear_faults()
    report = _redrive(remaining_seconds=lambda: 100.0, reserve_seconds=150.0)
    assert report.stopped_early and stack.tickets() == []
    report = _redrive(remaining_seconds=lambda: 800.0, reserve_seconds=150.0)
    assert report.delivered == 1 and _nothing_parked(stack)


def test_a_head_refused_for_too_long_is_set_aside_and_the_rest_goes_on(stack: Stack) -> None:
    stack.post_webhook("meta", _messenger("m_aside_1", "7100013", "one"))
    stack.sync()
    stack.sandbox.inject(match="PUT /api/v2/tickets", status=400, count=1)
    stack.post_webhook("meta", _messenger("m_aside_2", "7100013", "two", t=1_764_000_100))
    stack.post_webhook("meta", _messenger("m_aside_3", "7100013", "three", t=1_764_000_200))
    stack.sync()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["one"]

    stack.sandbox.inject(match="PUT /api/v2/tickets", status=400, count=1)  # still refused at the redrive
    report = _redrive(set_aside_after=timedelta(0))
    assert report.set_aside == 1 and report.oldest_parked_seconds > 0
    assert _texts(stack, ticket) == ["one", "three"]  # the conversation goes on

    report = _redrive(set_aside_after=timedelta(0))  # the set-aside message is still retried
    assert report.delivered == 1 and _texts(stack, ticket) == ["one", "three", "two"]
    assert _nothing_parked(stack)


def test_a_head_the_helpdesk_cannot_take_during_an_outage_is_never_set_aside(stack: Stack) -> None:
    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_wait_1", "7100014", "one"))
    stack.post_webhook("meta", _messenger("m_wait_2", "7100014", "two", t=1_764_000_100))
    stack.sync()
    report = _redrive(set_aside_after=timedelta(0))
    assert report.set_aside == 0 and report.outcomes["still_failing"] == 1
    stack.sandbox.clear_faults()
    _redrive()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["one", "two"] and _nothing_parked(stack)


# --- writes whose outcome is unknown ----------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["fresh (sending marker)", "settled (guarded update)"])
def test_an_ambiguous_comment_write_is_never_resent_blindly(stack: Stack, stamp: str) -> None:
    stack.post_webhook("meta", _messenger("m_amb_1", "7100015", "one"))
    stack.sync()
    if stamp.startswith("settled"):
        _settle()
    stack.sandbox.inject(match="PUT /api/v2/tickets", status=502, when="after", count=1)  # applied, then "failed"
    stack.post_webhook("meta", _messenger("m_amb_2", "7100015", "two", t=1_764_000_100))
    stack.sync()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["one", "two"]
    _redrive()
    assert _texts(stack, ticket) == ["one", "two"] and _nothing_parked(stack)


class LambdaCrashed(Exception):
    """The execution environment died (timeout, out of memory) right after Zendesk answered."""


@pytest.mark.parametrize("stamp", ["fresh (sending marker)", "settled (guarded update)"])
def test_a_crash_right_after_a_confirmed_write_is_not_resent_by_a_quick_retry(stack: Stack, monkeypatch, stamp: str) -> None:
    from chalicelib import wiring
    from chalicelib.sync.tickets import TicketSync

    stack.post_webhook("meta", _messenger("m_crash_1", "7100016", "one"))
    stack.sync()
    if stamp.startswith("settled"):
        _settle()
    crashes = {"left": 1}
    real_record = TicketSync._record

    def crash_once(self: TicketSync, *args: Any, **kwargs: Any) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise LambdaCrashed()
        real_record(self, *args, **kwargs)

    monkeypatch.setattr(TicketSync, "_record", crash_once)
    stack.post_webhook("meta", _messenger("m_crash_2", "7100016", "two", t=1_764_000_100))
    stack.sync()
    assert stack.poller.failures == 1  # the batch is retried at once, in a fresh environment
    wiring.override("sync", TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(),
                                       sleep=stack.time.sleep, clock=stack.time.now))
    stack.sync()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["one", "two"] and _nothing_parked(stack)


def _conversation_writes(stack: Stack) -> list[str]:
    """Every write to a conversation item from now on (its operation name), counted at the client."""
    from chalicelib import wiring

    seen: list[str] = []

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        key = params.get("Key") or params.get("Item") or {}
        if model.name in ("PutItem", "UpdateItem") and key.get("sk", {}).get("S") == "CONV":
            seen.append(model.name)

    wiring._client("dynamodb").meta.events.register("before-parameter-build.dynamodb", count)  # noqa: SLF001 - the app's client
    return seen


def test_follow_ups_in_one_batch_cost_one_bookkeeping_write_each_and_a_crash_between_them_doubles_nothing(
    stack: Stack, monkeypatch
) -> None:
    """Each message's "sending" marker rides on the previous message's bookkeeping write (no
    write of its own), yet a crash right after a write still never sends it twice."""
    from chalicelib import wiring
    from chalicelib.sync.tickets import TicketSync

    stack.post_webhook("meta", _messenger("m_batch_0", "7100017", "zero"))
    stack.sync()
    for number, text in enumerate(["one", "two", "three"], start=1):
        stack.post_webhook("meta", _messenger(f"m_batch_{number}", "7100017", text, t=1_764_000_000 + number))
    writes = _conversation_writes(stack)
    stack.sync()  # the three follow-ups arrive in one stream batch, the stamp of "zero" still fresh
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["zero", "one", "two", "three"]
    assert len(writes) == 4  # the first follow-up's own marker, then one bookkeeping write per message

    real_record = TicketSync._record
    crashes = {"left": 1}

    def crash_after_the_second(self: TicketSync, message: Any, *args: Any, **kwargs: Any) -> None:
        if message.message_id == "m_batch_5" and crashes["left"]:
            crashes["left"] -= 1
            raise LambdaCrashed()  # Zendesk has "five"; the table does not know it
        real_record(self, message, *args, **kwargs)

    monkeypatch.setattr(TicketSync, "_record", crash_after_the_second)
    for number, text in [(4, "four"), (5, "five"), (6, "six")]:
        stack.post_webhook("meta", _messenger(f"m_batch_{number}", "7100017", text, t=1_764_000_000 + number))
    stack.sync()
    assert stack.poller.failures == 1
    wiring.override("sync", TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(),
                                       sleep=stack.time.sleep, clock=stack.time.now))
    stack.sync()
    assert _texts(stack, ticket) == ["zero", "one", "two", "three", "four", "five", "six"] and _nothing_parked(stack)


# --- DynamoDB ----------------------------------------------------------------------------------------


def test_one_conversation_dynamodb_refuses_does_not_fail_the_batch_and_is_delivered_later(stack: Stack, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    from chalicelib import wiring

    store = wiring.message_store()
    real_get = store.get_conversation
    refused = {"on": True}

    def get_conversation(key: str) -> Any:
        if refused["on"] and key.endswith(":7100017"):
            raise store._failure("could not read conversation", ClientError(
                {"Error": {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}}, "GetItem"))
        return real_get(key)

    monkeypatch.setattr(store, "get_conversation", get_conversation)
    stack.post_webhook("meta", _messenger("m_val_1", "7100017", "refused bookkeeping"))
    stack.post_webhook("meta", _messenger("m_val_2", "7100018", "fine"))
    stack.sync()
    assert stack.poller.failures == 0
    assert [t["external_id"].rsplit(":", 1)[1] for t in stack.tickets()] == ["7100018"]
    assert stack.parked_in_queue() == 1  # the notice is the only record: kept until delivered

    refused["on"] = False
    report = _redrive()
    assert report.delivered == 1 and len(stack.tickets()) == 2 and stack.parked_in_queue() == 0


def test_a_thread_with_many_participants_keeps_its_conversation_item_small(stack: Stack) -> None:
    from local.samples import PAGE_ID

    top = f"{PAGE_ID}_900_top"
    stack.post_webhook("meta", _comment(top, "7200000", "the app crashes on login"))
    for n in range(1, 41):
        stack.post_webhook("meta", _comment(f"{PAGE_ID}_900_r{n}", f"72{n:05d}", f"same here {n}", parent=top,
                                            t=1_764_000_000 + n))
    stack.sync()
    [ticket] = stack.tickets()
    comments = stack.sandbox.comments(ticket["id"])
    assert len(comments) == 41 and len({c["author_id"] for c in comments}) == 41  # each reply by its own author
    [conversation] = [i for i in stack.items("CONV#") if i["sk"]["S"] == "CONV"]
    assert len(conversation["state"]["S"]) < 8_000  # not one entry per participant
    assert len(stack.items("REQUESTER#")) == 40  # the other participants' users, one item each

    # A participant coming back in another thread is found again without a new user.
    users_before = len(stack.sandbox.users())
    stack.post_webhook("meta", _comment(f"{PAGE_ID}_901_x", "7200007", "and on another post too"))
    stack.sync()
    assert len(stack.sandbox.users()) == users_before


def test_a_conversation_stored_by_the_previous_version_is_carried_on(stack: Stack) -> None:
    """Items written before parked ids and participants had items of their own."""
    import json

    from chalicelib import wiring
    from local.samples import PAGE_ID

    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_old_1", "7100019", "first"))
    stack.post_webhook("meta", _messenger("m_old_2", "7100019", "second", t=1_764_000_100))
    stack.sync()
    stack.sandbox.clear_faults()
    key = f"messenger:dm:{PAGE_ID}:7100019"
    # Rewrite the conversation as the previous version kept it, and drop the new-style entries.
    for item in stack.items(f"CONV#{key}"):
        if item["sk"]["S"].startswith(("PARKED#", "PARKID#")):
            stack.dynamodb.delete_item(TableName=stack.resources.table_name, Key={"pk": item["pk"], "sk": item["sk"]})
    legacy = {"helpdesk": None, "ticket_id": None, "ticket_status": None, "requester_id": None, "requesters": {},
              "epoch": 0, "synced": [], "parked": ["m_old_1", "m_old_2"]}
    stack.dynamodb.put_item(TableName=stack.resources.table_name, Item={
        "pk": {"S": f"CONV#{key}"}, "sk": {"S": "CONV"}, "item_type": {"S": "conversation"},
        "state": {"S": json.dumps(legacy)}, "version": {"N": "7"}})

    stack.post_webhook("meta", _messenger("m_old_3", "7100019", "third", t=1_764_000_200))
    stack.sync()  # waits behind the two parked by the previous version
    assert stack.tickets() == []
    _redrive()
    [ticket] = stack.tickets()
    assert _texts(stack, ticket) == ["first", "second", "third"]
    assert wiring.message_store().get_conversation(key).legacy_parked == [] and _nothing_parked(stack)


def test_an_answer_in_a_thread_of_thousands_of_messages_targets_its_latest(stack: Stack) -> None:
    """A viral thread: the reply path reads every message (not the first thousand ids)."""
    from datetime import datetime, timedelta, timezone

    from chalicelib import wiring
    from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
    from chalicelib.outbound.dispatch import target_from_messages

    key = "facebook:comment:900_viral"
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    messages = [
        SocialMessage(platform=Platform.FACEBOOK, kind=Kind.COMMENT if n == 0 else Kind.REPLY, direction=Direction.INBOUND,
                      message_id=f"900_viral_{n:05d}", conversation_key=key, account_id="900",
                      author=Author(platform_id="7300000" if n in (0, 1099) else f"73{n:05d}"),
                      text=f"same here {n}", created_at=start + timedelta(seconds=n), raw={"n": n})
        for n in range(1100)
    ]
    store = wiring.message_store()
    assert all(store.save_messages(messages))

    read = store.conversation_messages(key)
    assert len(read) == 1100
    target = target_from_messages(read)
    # The thread's customer wrote the first comment and the latest one: a private answer goes there.
    assert target.customer_id == "7300000" and target.reply_to_id == "900_viral_01099"
    assert [m.raw for m in read if m.message_id == "900_viral_01099"] == [{"n": 1099}]  # the latest keep their payload


def test_a_conversation_leased_by_a_redrive_that_died_is_replayed_once_the_lease_runs_out(stack: Stack) -> None:
    from chalicelib import wiring
    from local.samples import PAGE_ID

    stack.sandbox.inject(status=503, count=1000)
    stack.post_webhook("meta", _messenger("m_lease_1", "7100021", "first"))
    stack.sync()
    stack.sandbox.clear_faults()
    key = f"messenger:dm:{PAGE_ID}:7100021"
    assert wiring.message_store().acquire_lease(f"redrive#{key}", "a-redrive-that-died", 1.0)

    report = _redrive(lease_seconds=1.0)
    assert report.leased_elsewhere == 1 and stack.tickets() == []  # never two redrives on one conversation
    time.sleep(1.1)
    report = _redrive(lease_seconds=1.0)
    assert report.delivered == 1 and len(stack.tickets()) == 1 and _nothing_parked(stack)
