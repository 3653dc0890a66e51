"""Configuration from environment variables; secrets from SSM or Secrets Manager on AWS.

A secret ``NAME`` is read, in order, from:

1. the environment variable ``NAME`` (local runs and tests),
2. an SSM parameter named by ``NAME_PARAM`` (SecureString, decrypted),
3. a Secrets Manager secret named by ``NAME_SECRET_ID``.

(2) and (3) go through Powertools Parameters, cached for ``SECRET_CACHE_SECONDS``, and
are imported only when used so local runs and cold starts do not pay for them.
There are no built-in secret defaults: an unset secret makes its route fail closed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.errors import NotConfigured

SECRET_CACHE_SECONDS = 300


def get_secret(name: str) -> str:
    """Return the secret ``name`` or raise ``NotConfigured``."""
    value = os.environ.get(name)
    if value:
        return value
    parameter = os.environ.get(f"{name}_PARAM")
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(parameter, decrypt=True, max_age=SECRET_CACHE_SECONDS))
    secret_id = os.environ.get(f"{name}_SECRET_ID")
    if secret_id:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_secret(secret_id, max_age=SECRET_CACHE_SECONDS))
    raise NotConfigured(f"{name} is not configured (set {name}, {name}_PARAM or {name}_SECRET_ID)")


@dataclass(frozen=True)
class Settings:
    """Non-secret settings, read once per Lambda container."""

    table_name: str
    dlq_url: str | None
    zendesk_url: str | None
    zendesk_email: str | None
    raw_ttl_days: int
    max_body_bytes: int
    telegram_bot_id: str
    helpdesk: str
    freshdesk_url: str | None
    freshdesk_conversation_field: str | None

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from the process environment."""
        return cls(
            table_name=os.environ.get("TABLE_NAME", "socialdesk-local-messages"),
            dlq_url=os.environ.get("DLQ_URL") or None,
            zendesk_url=(os.environ.get("ZENDESK_URL") or "").rstrip("/") or None,
            zendesk_email=os.environ.get("ZENDESK_EMAIL") or None,
            raw_ttl_days=int(os.environ.get("RAW_TTL_DAYS", "30")),
            max_body_bytes=int(os.environ.get("MAX_BODY_BYTES", str(2 * 1024 * 1024))),
            # The numeric part of the bot token ("<bot id>:<secret>"); not a secret itself.
            telegram_bot_id=os.environ.get("TELEGRAM_BOT_ID", "bot"),
            helpdesk=os.environ.get("HELPDESK", "zendesk").strip().lower(),
            freshdesk_url=(os.environ.get("FRESHDESK_URL") or "").rstrip("/") or None,
            freshdesk_conversation_field=os.environ.get("FRESHDESK_CONVERSATION_FIELD") or None,
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    """The process-wide settings (tests call ``settings.cache_clear()`` after changing env)."""
    return Settings.from_env()
