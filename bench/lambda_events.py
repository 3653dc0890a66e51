"""API Gateway proxy events, as Lambda hands them to the Chalice app in production."""

from __future__ import annotations

import uuid
from typing import Any


class BenchContext:
    """The bits of a Lambda context Chalice and Powertools read."""

    function_name = "socialdesk-bench-APIHandler"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:socialdesk-bench-APIHandler"
    log_group_name = "/aws/lambda/socialdesk-bench-APIHandler"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        """Plenty: the bench never runs into a timeout."""
        return 30_000


def api_gateway_event(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """A REST API (v1) proxy event for ``path``, the shape Chalice's handler receives."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/api{path}",
            "stage": "api",
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }
