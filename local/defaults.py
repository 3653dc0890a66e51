"""Embedded defaults for the local stack, shared by ``make run`` and ``make demo``.

These values exist only on a developer's machine; the deployed app has no secret
defaults at all. Any of them can be overridden from the environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Where `make run` tells `make demo` and `make redrive` what it started (tests point it elsewhere).
STATE_FILE = Path(os.environ.get("SOCIALDESK_STATE_FILE") or ROOT / ".run" / "local.json")

LOCAL_SECRETS = {
    "META_APP_SECRET": "local-meta-app-secret",
    "META_VERIFY_TOKEN": "local-meta-verify-token",
    "X_CONSUMER_SECRET": "local-x-consumer-secret",
    "TELEGRAM_SECRET_TOKEN": "local-telegram-secret-token",
    "LINE_CHANNEL_SECRET": "local-line-channel-secret",
    "GOOGLE_ACCESS_TOKEN": "local-google-access-token",
    "ZENDESK_WEBHOOK_SECRET": "local-zendesk-webhook-secret",
    "FRESHDESK_WEBHOOK_SECRET": "local-freshdesk-webhook-secret",  # what the Google sandbox accepts
    # Standard Webhooks secret of the demo's "trustpilot" source (whsec_ + base64 of 32 bytes)
    "GENERIC_WEBHOOK_SECRET_TRUSTPILOT": "whsec_bG9jYWwtdHJ1c3RwaWxvdC1zaWduaW5nLXNlY3JldCE=",
}
SANDBOX_ZENDESK_EMAIL = "agent@socialdesk.local"
SANDBOX_ZENDESK_TOKEN = "local-zendesk-token"
SANDBOX_FRESHDESK_API_KEY = "local-freshdesk-api-key"

PORTS = {
    "PORT": 8000,
    "MOTO_PORT": 5055,
    "ZENDESK_SANDBOX_PORT": 8025,
    "GOOGLE_SANDBOX_PORT": 8035,
    "X_SANDBOX_PORT": 8045,
    "FRESHDESK_SANDBOX_PORT": 8055,
    "META_SANDBOX_PORT": 8065,
    "TELEGRAM_SANDBOX_PORT": 8075,
    "LINE_SANDBOX_PORT": 8085,
    "REPLY_CALLBACK_PORT": 8095,
}


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on right now (tests and the bench start servers on it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port(name: str) -> int:
    """A port from the environment, or its default."""
    return int(os.environ.get(name, PORTS[name]))


def aws_environment(moto_url: str) -> dict[str, str]:
    """Fake credentials and one endpoint for every AWS service: the moto server."""
    return {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_SESSION_TOKEN": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


def secret(name: str) -> str:
    """A webhook secret as the local stack uses it (env wins over the default)."""
    return os.environ.get(name) or LOCAL_SECRETS[name]


def write_state(state: dict[str, Any]) -> None:
    """Record where the running stack listens, for ``make demo``."""
    STATE_FILE.parent.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def read_state() -> dict[str, Any]:
    """Where the running stack listens (written by ``make run``)."""
    if not STATE_FILE.exists():
        raise SystemExit("The local stack is not running: start it with `make run` in another terminal.")
    return json.loads(STATE_FILE.read_text())


# What EventBridge hands a scheduled function; Chalice's schedule wrapper reads these
# keys, so a bare ``{}`` fails before the handler runs.
SCHEDULED_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "manual-redrive",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "",
    "time": "1970-01-01T00:00:00Z",
    "region": "",
    "resources": [],
    "detail": {},
}
