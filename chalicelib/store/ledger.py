"""The one claim/complete/release ledger: items of the table that move between states by
conditional writes, and the owner leases built on it.

The reply ledger (``REPLY#``), the fan-out jobs (``FANOUT#``), the agent-event log
(``EVENT#``), the redrive's conversation leases (``LEASE#``) and the crisis start lock all
write through ``Ledger``; each keeps its own states and keys. Why not Powertools'
idempotency persistence layer: it hashes the key, keeps a fixed partition, knows only
in-progress/completed, and deletes a failed claim; ours need readable keys in a
conversation's partition (data deletion removes them with it), more states, a due queue
on the table's index, and a released claim kept as such. docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, ConditionExpressionBuilder
from boto3.dynamodb.types import TypeSerializer

from chalicelib.store.ingest import AUTHOR_INDEX, StoreUnavailable, condition_failed, error_code

Key = dict[str, dict[str, str]]

# The due queues live on the table's one global index: ``gsi1pk`` names the queue, ``gsi1sk``
# is when the item is due (ISO time).
DUE_INDEX = AUTHOR_INDEX
DUE_ATTRIBUTES = ("gsi1pk", "gsi1sk")

_serializer = TypeSerializer()


def wire(value: Any) -> dict[str, Any]:
    """A Python value in DynamoDB's wire form (floats as exact decimals; TypeSerializer refuses floats)."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    return _serializer.serialize(value)


def in_queue(queue: str, when: str) -> dict[str, str]:
    """The attributes that put an item in ``queue``, due at ``when``."""
    return {"gsi1pk": queue, "gsi1sk": when}


class Ledger:
    """Conditional writes on items of one table: each returns True when applied, False when its
    condition refused it, and raises StoreUnavailable (naming ``owner``) for anything else.

    ``claim`` creates an item unless it exists (or takes over one matching ``or_if``: a
    released or lapsed claim); ``move`` updates one (complete, release, retry, hold...) if
    ``if_`` holds; ``drop`` deletes one.
    """

    def __init__(self, client: Any, table_name: str, *, owner: str) -> None:
        self._client = client
        self.table_name = table_name
        self.owner = owner

    def claim(self, key: Key, item: Mapping[str, Any], *, or_if: ConditionBase | None = None) -> bool:
        """Put ``item`` at ``key`` if no item is there (or the one there matches ``or_if``)."""
        condition: ConditionBase = Attr("pk").not_exists()
        if or_if is not None:
            condition = condition | or_if
        request = _condition(condition)
        request["Item"] = {**key, **{name: wire(value) for name, value in item.items()}}
        return self._write("put_item", request, lambda: self._client.put_item(TableName=self.table_name, **request))

    def move(
        self,
        key: Key,
        *,
        set: Mapping[str, Any] | None = None,
        add: Mapping[str, int] | None = None,
        remove: Iterable[str] = (),
        if_: ConditionBase | None = None,
    ) -> bool:
        """Update the item at ``key``: SET ``set``, ADD ``add``, REMOVE ``remove``, only if ``if_`` holds."""
        request = _condition(if_) if if_ is not None else {"ExpressionAttributeNames": {}, "ExpressionAttributeValues": {}}
        names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
        clauses: list[str] = []
        for verb, pairs in (("SET", set or {}), ("ADD", add or {})):
            parts = []
            for index, (name, value) in enumerate(pairs.items()):
                tag = f"{verb[0].lower()}{index}"
                names[f"#{tag}"], values[f":{tag}"] = name, wire(value)
                parts.append(f"#{tag} = :{tag}" if verb == "SET" else f"#{tag} :{tag}")
            if parts:
                clauses.append(f"{verb} {', '.join(parts)}")
        dropped = [f"#r{index}" for index, _ in enumerate(remove)]
        names.update(zip(dropped, remove, strict=True))
        if dropped:
            clauses.append(f"REMOVE {', '.join(dropped)}")
        request.update(Key=key, UpdateExpression=" ".join(clauses))
        return self._write("update_item", request, lambda: self._client.update_item(TableName=self.table_name, **request))

    def drop(self, key: Key, *, if_: ConditionBase) -> bool:
        """Delete the item at ``key`` if ``if_`` holds."""
        request = _condition(if_)
        request["Key"] = key
        return self._write("delete_item", request, lambda: self._client.delete_item(TableName=self.table_name, **request))

    def get(self, key: Key) -> dict[str, Any] | None:
        """The item at ``key`` (a consistent read), in wire form."""
        item = self._read("read", lambda: self._client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True))
        return dict(item["Item"]) if item.get("Item") else None

    def due(
        self, queue: str, until: str, *, limit: int, start: Key | None = None, sk_prefix: str | None = None
    ) -> dict[str, Any]:
        """One page of ``queue``'s items due at or before ``until``, the earliest first
        (``sk_prefix``: only items whose sort key starts with it)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "gsi1pk = :queue AND gsi1sk <= :until",
            "ExpressionAttributeValues": {":queue": wire(queue), ":until": wire(until)},
            "Limit": limit,
        }
        if sk_prefix is not None:
            request["FilterExpression"] = "begins_with(sk, :mine)"
            request["ExpressionAttributeValues"][":mine"] = wire(sk_prefix)
        if start:
            request["ExclusiveStartKey"] = start
        return self._read("queue read", lambda: self._client.query(**request))

    def partition(self, pk: str, *, sk_prefix: str, where: ConditionBase | None = None) -> list[dict[str, Any]]:
        """Every item of partition ``pk`` whose sort key starts with ``sk_prefix`` (and that
        matches ``where``), consistent, in sort key order."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": wire(pk), ":prefix": wire(sk_prefix)},
            "ConsistentRead": True,
        }
        if where is not None:
            built = _condition(where)
            request["FilterExpression"] = built["ConditionExpression"]
            request["ExpressionAttributeNames"] = built["ExpressionAttributeNames"]
            request["ExpressionAttributeValues"].update(built["ExpressionAttributeValues"])
        items: list[dict[str, Any]] = []
        while True:
            page = self._read("query", lambda: self._client.query(**request))
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _read(self, what: str, call: Callable[[], Any]) -> dict[str, Any]:
        try:
            return dict(call())
        except Exception as exc:
            raise StoreUnavailable(f"{self.owner} {what} failed: {error_code(exc) or exc}") from exc

    def _write(self, method: str, request: dict[str, Any], call: Callable[[], Any]) -> bool:
        for empty in [name for name in ("ExpressionAttributeNames", "ExpressionAttributeValues") if not request.get(name, True)]:
            del request[empty]  # DynamoDB refuses an empty map
        try:
            call()
        except Exception as exc:
            if condition_failed(exc):
                return False
            raise StoreUnavailable(f"{self.owner} {method} failed: {error_code(exc) or exc}") from exc
        return True


def _condition(condition: ConditionBase) -> dict[str, Any]:
    built = ConditionExpressionBuilder().build_expression(condition)
    return {
        "ConditionExpression": built.condition_expression,
        "ExpressionAttributeNames": dict(built.attribute_name_placeholders),
        "ExpressionAttributeValues": {name: wire(value) for name, value in built.attribute_value_placeholders.items()},
    }


class Leases:
    """Owner leases on items of the ledger: one owner at a time until ``until``; the same
    owner may take its lease again (to extend it); a lapsed lease goes to whoever asks."""

    def __init__(self, ledger: Ledger, *, until_attribute: str = "lease_until", item_type: str = "lease") -> None:
        self.ledger = ledger
        self.until_attribute = until_attribute
        self.item_type = item_type

    def acquire(self, key: Key, owner: str, *, now: float, until: float, expires_at: int) -> bool:
        """Take the lease at ``key`` for ``owner`` until ``until`` unless someone else holds an unexpired one."""
        return self.ledger.claim(
            key,
            {"item_type": self.item_type, "owner": owner, self.until_attribute: until, "expires_at": expires_at},
            or_if=Attr(self.until_attribute).lt(now) | Attr("owner").eq(owner),
        )

    def release(self, key: Key, owner: str) -> bool:
        """Give ``owner``'s lease back (False when it lapsed and someone else took it)."""
        return self.ledger.drop(key, if_=Attr("owner").eq(owner))


__all__ = ["DUE_ATTRIBUTES", "DUE_INDEX", "Attr", "Key", "Ledger", "Leases", "in_queue", "wire"]
