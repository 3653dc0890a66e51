"""Child process of ``make bench``: webhook latency through the app vs. the floor.

Alternates, request by request, a signed ``POST /webhooks/meta`` through the Lambda
handler (API Gateway event in, response out) and the floor: the same HMAC check and
one conditional PutItem with the same client against the same endpoint.
Writes the per-request times (ms) as JSON to the path given as argv[1].
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
import uuid

WARMUP = 20


def main(out_path: str, rounds: int) -> None:
    """Measure and write ``{"handler_ms": [...], "floor_ms": [...]}``."""
    import app as lambda_app
    from bench.lambda_events import BenchContext, api_gateway_event
    from bench.workload import _messenger
    from chalicelib import wiring
    from local.samples import PAGE_ID, encode, sign

    secret = os.environ["META_APP_SECRET"]
    table = os.environ["TABLE_NAME"]
    client = wiring._client("dynamodb")  # the very client the app uses
    now = int(time.time())

    def through_handler() -> float:
        body = encode(_messenger(f"m_{uuid.uuid4().hex}", "7100000042", PAGE_ID, "My parcel never arrived.", now))
        event = api_gateway_event("POST", "/webhooks/meta", body, sign("meta", body, {"META_APP_SECRET": secret}))
        context = BenchContext()  # Lambda makes the event and the context before the handler runs
        start = time.perf_counter()
        response = lambda_app.app(event, context)
        elapsed = time.perf_counter() - start
        assert response["statusCode"] == 200, response
        return elapsed

    def floor() -> float:
        body = encode(_messenger(f"m_{uuid.uuid4().hex}", "7100000042", PAGE_ID, "My parcel never arrived.", now))
        header = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        start = time.perf_counter()
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(expected, header)
        client.put_item(
            TableName=table,
            Item={"pk": {"S": f"FLOOR#{uuid.uuid4().hex}"}, "sk": {"S": "MSG"}, "raw": {"S": body.decode()}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return time.perf_counter() - start

    for _ in range(WARMUP):
        through_handler()
        floor()
    handler_ms: list[float] = []
    floor_ms: list[float] = []
    for _ in range(rounds):
        handler_ms.append(through_handler() * 1000)
        floor_ms.append(floor() * 1000)
    with open(out_path, "w") as out:
        json.dump({"handler_ms": handler_ms, "floor_ms": floor_ms}, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
