"""The local DynamoDB: moto's server, with each DynamoDB request applied atomically.

Real DynamoDB applies a conditional write to an item atomically: two concurrent
``UpdateItem`` calls never both see the item as it was before. moto's backend keeps
no lock around its read-modify-write, and its threaded server runs requests in
parallel, so two writers could both be told "this complaint was new" (counted twice)
or a reader could fail on a dictionary changing under it (a 500 no AWS client would
see). Serializing the DynamoDB and DynamoDB Streams handlers restores the semantics
our code relies on; requests are a fraction of a millisecond, so the cost is small.

moto also answers every ``Query`` by sorting every item of the table and filtering
in Python: with the soak's 50,000 items each query took seconds, where DynamoDB reads
only the one partition. ``query_one_partition`` hands moto's query only the items of
the queried partition (base table or index), so a query costs what its partition
holds, as on DynamoDB; moto still sorts, pages and filters them itself.

moto sized a new item again, whole, at each attribute it added (its ``LimitedSizeDict``),
so a write cost the square of the item's attributes; ``measure_items_once`` sizes it
once, against the same limit.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()


def serialize_dynamodb_requests() -> None:
    """Make moto apply one DynamoDB (or Streams) request at a time, in this process."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    for handler in (DynamoHandler, DynamoDBStreamsHandler):
        call_action = handler.call_action
        if getattr(call_action, "_serialized", False):
            continue

        @functools.wraps(call_action)
        def serialized(self: Any, _call_action: Any = call_action) -> Any:
            with _LOCK:
                return _call_action(self)

        serialized._serialized = True  # type: ignore[attr-defined]
        handler.call_action = serialized  # type: ignore[method-assign]


def _partition(table: Any, hash_key: Any, index_name: str | None, conditions: Any) -> list[Any]:
    """The items of the one partition a query reads, in no particular order."""
    if not index_name:
        if not table.range_key_attr:
            item = table.items.get(hash_key)
            return [item] if item is not None else []
        return list(table.items.get(hash_key, {}).values())
    wanted = dict(conditions or ())
    if not wanted:  # an older caller: the index's single hash attribute
        index = table.get_index(index_name)
        attr = next(key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH")
        wanted = {attr: hash_key}
    hash_sets = table.items.values()
    items = (item for hash_set in hash_sets for item in hash_set.values()) if table.range_key_attr else iter(hash_sets)
    return [item for item in items if all(_equals(item.attrs.get(attr), value) for attr, value in wanted.items())]


def _equals(held: Any, wanted: Any) -> bool:
    # moto's DynamoType cannot be compared with None (an item outside a sparse index).
    return held is not None and held == wanted


def query_one_partition() -> None:
    """Make moto's ``Table.query`` read only the queried partition (see module doc)."""
    from moto.dynamodb.models.table import Table

    query = Table.query
    if getattr(query, "_one_partition", False):
        return

    @functools.wraps(query)
    def one_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name")
        if index_name is None and len(args) > 6:
            index_name = args[6]
        candidates = _partition(self, hash_key, index_name, kwargs.get("hash_key_conditions"))
        # moto's query iterates ``self.all_items()``; for this call, only the partition.
        self.all_items = lambda: candidates
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    one_partition._one_partition = True  # type: ignore[attr-defined]
    Table.query = one_partition  # type: ignore[method-assign]


# moto's own item size limit (``LimitedSizeDict``): DynamoDB's 400 KB, as moto measures it.
_MOTO_ITEM_SIZE_LIMIT = 405_000


def measure_items_once() -> None:
    """Make moto size a new item once instead of once per attribute (see module doc)."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type

    item_class = dynamo_type.Item
    if getattr(item_class.__init__, "_measured_once", False):
        return

    def measured_once(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        self.hash_key = hash_key
        self.range_key = range_key
        values = {key: dynamo_type.DynamoType(value) for key, value in attrs.items()}
        # Sizes only add up: the item passes moto's check at every attribute iff it passes it whole.
        if sum(dynamo_type.bytesize(key) + value.size() for key, value in values.items()) > _MOTO_ITEM_SIZE_LIMIT:
            raise ItemSizeTooLarge
        self.attrs = dynamo_type.LimitedSizeDict()  # later writes (UpdateItem) still go through its check
        dict.update(self.attrs, values)

    measured_once._measured_once = True  # type: ignore[attr-defined]
    item_class.__init__ = measured_once  # type: ignore[method-assign]


def start_moto_server(port: int) -> Any:
    """A moto server on 127.0.0.1:``port`` (DynamoDB requests atomic), started; ``stop()`` it."""
    from moto.server import ThreadedMotoServer

    serialize_dynamodb_requests()
    query_one_partition()
    measure_items_once()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server
