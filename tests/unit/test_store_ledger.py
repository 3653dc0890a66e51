"""The one claim/complete/release ledger (``store.ledger``) and its owner leases, on the
table built from ``infra/template.json`` (moto in-process): what the reply ledger, the
fan-out jobs, the event log, the redrive's leases and the crisis start lock rely on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.store import StoreUnavailable
from chalicelib.store.ledger import DUE_ATTRIBUTES, Attr, Leases, Ledger, in_queue
from tests.support.moto_table import moto_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with moto_table(monkeypatch, "ledger") as found:
        yield found


def key(name: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"TEST#{name}"}, "sk": {"S": "ITEM"}}


def item(client: Any, table_name: str, name: str) -> dict[str, Any]:
    return client.get_item(TableName=table_name, Key=key(name), ConsistentRead=True).get("Item", {})


def test_a_claim_is_won_once_and_taken_over_only_when_its_condition_allows(table: tuple[Any, str]) -> None:
    client, name = table
    ledger = Ledger(client, name, owner="test ledger")
    released = Attr("state").eq("released")
    assert ledger.claim(key("a"), {"state": "processing", "claimed_at": 1}, or_if=released)
    assert not ledger.claim(key("a"), {"state": "processing", "claimed_at": 2}, or_if=released)
    assert item(client, name, "a")["claimed_at"] == {"N": "1"}  # the loser changed nothing
    assert ledger.move(key("a"), set={"state": "released"}, if_=Attr("state").eq("processing"))
    assert ledger.claim(key("a"), {"state": "processing", "claimed_at": 3}, or_if=released)
    assert item(client, name, "a")["claimed_at"] == {"N": "3"}


def test_a_move_applies_set_add_and_remove_only_when_its_condition_holds(table: tuple[Any, str]) -> None:
    client, name = table
    ledger = Ledger(client, name, owner="test ledger")
    assert ledger.claim(key("b"), {"state": "sending", "attempts": 1, "private": False, **in_queue("Q#test", "2026-01-01T00:00:00Z")})
    assert not ledger.move(key("b"), set={"state": "sent"}, if_=Attr("state").eq("retry"))
    assert ledger.move(key("b"), set={"state": "retry", "note": "later"}, add={"attempts": 1},
                       if_=Attr("state").eq("sending") & Attr("attempts").eq(1))
    stored = item(client, name, "b")
    assert (stored["state"], stored["attempts"], stored["note"], stored["private"]) == (
        {"S": "retry"}, {"N": "2"}, {"S": "later"}, {"BOOL": False})
    assert ledger.move(key("b"), set={"state": "sent"}, remove=DUE_ATTRIBUTES)
    assert not set(DUE_ATTRIBUTES) & set(item(client, name, "b"))
    assert ledger.move(key("missing"), set={"state": "x"}) is True  # no condition: an update creates, as DynamoDB does


def test_the_due_queue_lists_what_is_due_earliest_first(table: tuple[Any, str]) -> None:
    client, name = table
    ledger = Ledger(client, name, owner="test ledger")
    for label, when in (("late", "2026-01-01T00:05:00Z"), ("early", "2026-01-01T00:01:00Z"), ("future", "2026-01-02T00:00:00Z")):
        ledger.claim(key(label), {"state": "retry", **in_queue("Q#due-test", when)})
    ledger.claim(key("other-queue"), {"state": "retry", **in_queue("Q#another", "2026-01-01T00:00:00Z")})
    page = ledger.due("Q#due-test", "2026-01-01T12:00:00Z", limit=10)
    assert [i["pk"]["S"] for i in page["Items"]] == ["TEST#early", "TEST#late"]
    assert ledger.due("Q#due-test", "2026-01-01T12:00:00Z", limit=10, sk_prefix="NOT-ITEM")["Items"] == []


def test_a_float_is_stored_exactly(table: tuple[Any, str]) -> None:
    client, name = table
    Ledger(client, name, owner="test ledger").claim(key("f"), {"lease_until": 1764840000.125})
    assert item(client, name, "f")["lease_until"] == {"N": "1764840000.125"}


def test_a_lease_has_one_owner_until_it_lapses(table: tuple[Any, str]) -> None:
    client, name = table
    leases = Leases(Ledger(client, name, owner="test lease"))
    assert leases.acquire(key("l"), "a", now=100.0, until=130.0, expires_at=4000)
    assert not leases.acquire(key("l"), "b", now=110.0, until=140.0, expires_at=4000)
    assert leases.acquire(key("l"), "a", now=120.0, until=150.0, expires_at=4000)  # the owner extends it
    assert not leases.release(key("l"), "b")  # not b's to give back
    assert leases.acquire(key("l"), "b", now=151.0, until=180.0, expires_at=4000)  # lapsed: b takes it
    assert not leases.release(key("l"), "a")
    assert leases.release(key("l"), "b")
    assert item(client, name, "l") == {}


def test_a_lease_kept_under_another_attribute_name_reads_as_before(table: tuple[Any, str]) -> None:
    """The crisis start lock has always named its end ``until``: a lock written by the code
    before still holds, and lapses, for the code now."""
    client, name = table
    client.put_item(TableName=name, Item={**key("old"), "owner": {"S": "old-code"}, "until": {"N": "200"}})
    leases = Leases(Ledger(client, name, owner="test lock"), until_attribute="until", item_type="crisis_lock")
    assert not leases.acquire(key("old"), "new-code", now=150.0, until=180.0, expires_at=4000)
    assert leases.acquire(key("old"), "new-code", now=201.0, until=230.0, expires_at=4000)


class Throttled:
    """A client whose every call is refused by DynamoDB's throughput limit."""

    def __getattr__(self, method: str) -> Any:
        def call(**request: Any) -> Any:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, method)

        return call


def test_a_failed_call_is_unavailable_naming_its_owner_not_a_refusal() -> None:
    ledger = Ledger(Throttled(), "t", owner="fan-out")
    for call in (lambda: ledger.claim(key("x"), {"state": "s"}), lambda: ledger.move(key("x"), set={"state": "s"}),
                 lambda: ledger.get(key("x")), lambda: ledger.due("Q", "z", limit=1)):
        with pytest.raises(StoreUnavailable, match="fan-out .*ProvisionedThroughputExceededException"):
            call()
