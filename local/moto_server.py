"""The local DynamoDB: moto's server, with each DynamoDB request applied atomically.

Real DynamoDB applies a conditional write to an item atomically: two concurrent
``UpdateItem`` calls never both see the item as it was before. moto's backend keeps
no lock around its read-modify-write, and its threaded server runs requests in
parallel, so two writers could both be told "this complaint was new" (counted twice)
or a reader could fail on a dictionary changing under it (a 500 no AWS client would
see). Serializing the DynamoDB and DynamoDB Streams handlers restores the semantics
our code relies on; requests are a fraction of a millisecond, so the cost is small.
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


def start_moto_server(port: int) -> Any:
    """A moto server on 127.0.0.1:``port`` (DynamoDB requests atomic), started; ``stop()`` it."""
    from moto.server import ThreadedMotoServer

    serialize_dynamodb_requests()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server
