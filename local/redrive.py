"""``make redrive`` against the running local stack: replay parked messages now.

The same function the deployed stack runs every ten minutes (``redrive_parked``),
invoked once with the local stack's table, queue and helpdesk.
"""

from __future__ import annotations

import json
import os
import sys

from local.defaults import (
    LOCAL_SECRETS,
    SANDBOX_FRESHDESK_API_KEY,
    SANDBOX_ZENDESK_EMAIL,
    SANDBOX_ZENDESK_TOKEN,
    aws_environment,
    read_state,
)


def main() -> int:
    """Point the app at the running stack and run one redrive."""
    state = read_state()
    os.environ.update(aws_environment(state["moto_url"]))
    os.environ.update(TABLE_NAME=state["table_name"], STREAM_ARN=state["stream_arn"], DLQ_URL=state["dlq_url"])
    os.environ.setdefault("HELPDESK", state["helpdesk"])
    os.environ.setdefault("FRESHDESK_URL" if state["helpdesk"] == "freshdesk" else "ZENDESK_URL", state["helpdesk_url"])
    os.environ.setdefault("ZENDESK_EMAIL", SANDBOX_ZENDESK_EMAIL)
    os.environ.setdefault("ZENDESK_API_TOKEN", SANDBOX_ZENDESK_TOKEN)
    os.environ.setdefault("FRESHDESK_API_KEY", SANDBOX_FRESHDESK_API_KEY)
    for name, value in LOCAL_SECRETS.items():
        os.environ.setdefault(name, value)

    from chalicelib import wiring
    from chalicelib.sync.redrive import redrive

    report = redrive(wiring.message_store(), wiring.ticket_sync(), wiring.dead_letters())
    print(json.dumps({"redrive": dict(report.outcomes)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
