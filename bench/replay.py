"""Child process of ``make bench``: the mixed replay, counting DynamoDB writes.

Every delivery goes through the Lambda handler; the table's stream is then drained
into the sync handler, exactly as on AWS. Writes are counted at the boto3 client
(one per PutItem/UpdateItem/DeleteItem, one per item of a batch or transaction),
including conditional writes that found a duplicate; the helpdesk rate budget's writes
apart (they follow helpdesk requests, not messages).
Writes a JSON summary to the path given as argv[1].
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem"}
BUDGET_PREFIX = "BUDGET#"  # chalicelib.helpdesks.budget's items


def count_writes(client: Any) -> tuple[Counter[str], Counter[str]]:
    """Counters ``client``'s writes will add to: the messages' (by operation) and, apart, the
    helpdesk rate budget's (``BUDGET#`` items: per helpdesk request, not per message)."""
    writes: Counter[str] = Counter()
    budget_writes: Counter[str] = Counter()

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in WRITE_OPERATIONS:
            key = str(params.get("Key", {}).get("pk", {}).get("S", ""))
            (budget_writes if key.startswith(BUDGET_PREFIX) else writes)[model.name] += 1
        elif model.name == "BatchWriteItem":
            writes[model.name] += sum(len(v) for v in params.get("RequestItems", {}).values())
        elif model.name == "TransactWriteItems":
            writes[model.name] += len(params.get("TransactItems", []))

    # The API parameters (``before-call`` would give the serialized request, without ``Key``
    # or ``RequestItems``).
    client.meta.events.register("before-parameter-build.dynamodb", count)
    return writes, budget_writes


def main(out_path: str, run: str, customers: int, retry_share: float) -> None:
    """Replay and write ``{"writes": ..., "messages": ...}``."""
    import boto3

    import app as lambda_app
    from bench.lambda_events import BenchContext, api_gateway_event
    from bench.workload import mixed_replay
    from chalicelib import wiring
    from local.samples import encode, sign
    from local.stream_poller import StreamPoller

    writes, budget_writes = count_writes(wiring._client("dynamodb"))
    secrets = {name: os.environ[name] for name in ("META_APP_SECRET", "X_CONSUMER_SECRET")}
    work = mixed_replay(run, customers, retry_share=retry_share)
    stored = duplicates = 0
    for route, payload in work.deliveries:
        body = encode(payload)
        response = lambda_app.app(api_gateway_event("POST", f"/webhooks/{route}", body, sign(route, body, secrets)), BenchContext())
        assert response["statusCode"] == 200, response
        answer = json.loads(response["body"])
        stored += answer["stored"]
        duplicates += answer["duplicates"]
    ingest_writes = sum(writes.values())

    # Batches gathered as the deployed event source gathers them (its batch size and window).
    poller = StreamPoller(
        boto3.client("dynamodbstreams"),
        os.environ["STREAM_ARN"],
        lambda_app.sync_tickets,
        batch_size=lambda_app.SYNC_BATCH_SIZE,
        batching_window_seconds=lambda_app.SYNC_BATCHING_WINDOW_SECONDS,
    )
    poller.drain()
    with open(out_path, "w") as out:
        json.dump(
            {
                "deliveries": len(work.deliveries),
                "messages_stored": stored,
                "duplicate_deliveries": duplicates,
                "inbound": work.inbound,
                "outbound": work.outbound,
                "customers": len(work.customers),
                "ingest_writes": ingest_writes,
                "writes": dict(writes),
                "budget_writes": sum(budget_writes.values()),
                "stream_records": poller.records_handled,
                "sync_failures": poller.failures,
            },
            out,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
