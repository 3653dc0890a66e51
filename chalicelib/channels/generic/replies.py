"""Answers to a Standard Webhooks source, on the reply callback its configuration names.

A source (``/webhooks/generic/<source>``) that wants the agents' answers names a URL in
``GENERIC_REPLY_URL_<SOURCE>`` (e.g. ``GENERIC_REPLY_URL_TRUSTPILOT``: the integration
that posts the answer under the Trustpilot review). Each answer is POSTed there as a
Standard Webhooks message, signed the same way as the source's own deliveries: with the
source's secrets (``GENERIC_WEBHOOK_SECRET_<SOURCE>``, every configured one, so a receiver
with either key verifies while they rotate), by the ``standardwebhooks`` library::

    webhook-id: msg_<hash of the helpdesk comment>      # the same on every retry
    webhook-timestamp: <unix seconds>
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"> ...

    {"type": "reply.created", "timestamp": "<RFC 3339>",
     "data": {"id": "msg_…", "conversation_id": "…", "in_reply_to": "…", "account_id": "…",
              "customer_id": "…", "text": "…", "private": false}}

Ids are the source's own (without socialdesk's ``<source>:`` prefix). A 2xx answer is
success; a JSON ``{"id": …}`` in it names the published answer (its echo, if the source
sends one, is then recognised). ``webhook-id`` stays the same for the same answer, so the
receiver de-duplicates a retry (the spec asks receivers to): a lost answer, a timeout or
a 5xx is retried by the reply ledger's schedule without duplicate risk. 408, 429 (with
``Retry-After``) and 5xx are temporary; 401/403 mean the receiver does not accept our
signature; 404/410 that the item is gone; any other answer is a refusal.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from chalicelib.http import json_object, parse_retry_after
from chalicelib.models import Platform, source_name
from chalicelib.outbound.base import (
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TARGET_DELETED,
    UNAVAILABLE,
    HttpSender,
    ReplyConfig,
    ReplyFailed,
    ReplyRequest,
    SentReply,
    describe_time,
    json_body,
    short_detail,
    utc,
)

REPLY_URL_ENV_PREFIX = "GENERIC_REPLY_URL_"
REPLY_EVENT = "reply.created"
DEFAULT_RETRY_AFTER = 60  # seconds, when a 429 does not say
REPLY_LIMIT_CHARS = 10_000


def reply_url_name(source: str) -> str:
    """The setting naming ``source``'s reply callback: ``GENERIC_REPLY_URL_<SOURCE>``."""
    from chalicelib.channels.generic.webhook import validate_source

    return REPLY_URL_ENV_PREFIX + validate_source(source).upper().replace("-", "_")


def message_id(idempotency_key: str) -> str:
    """``webhook-id``: the same for every attempt at one answer (the helpdesk comment)."""
    return "msg_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def _own_id(source: str, value: str) -> str:
    """A socialdesk id (``<source>:<id>``) as the source knows it."""
    return value.removeprefix(f"{source}:")


class GenericReplySender(HttpSender):
    """POSTs answers to each source's reply callback (see the module docstring)."""

    platforms = frozenset({Platform.OTHER})

    def __init__(
        self,
        secret: Callable[[str], str],
        env: Mapping[str, str] | None = None,
        *,
        config: ReplyConfig | None = None,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
    ) -> None:
        super().__init__("", lambda _account: "", pool=pool, timeout=timeout, config=config)
        self._secret = secret
        self._env = os.environ if env is None else env

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """Sign and POST the answer to the conversation's source."""
        from standardwebhooks import Webhook

        from chalicelib.channels.generic.webhook import decode_secret, parse_secrets, secret_name

        target = request.target
        parts = target.conversation_key.split(":", 2)
        source = parts[1] if len(parts) == 3 else ""
        where = source_name(source) if source else "the source"
        url = (self._env.get(reply_url_name(source)) or "").strip() if source else ""
        if not url:
            raise ReplyFailed(
                REJECTED,
                f"Not sent: {where} has no reply callback set up in socialdesk, so answers can't be sent there. "
                f"Reply on {where} directly.",
                platform=Platform.OTHER,
                code="no_reply_url",
            )
        try:
            keys = [decode_secret(value) for value in parse_secrets(self._secret(secret_name(source)))]
        except Exception:  # not configured, or unusable: the same fix either way
            keys = []
        if not keys:
            raise ReplyFailed(
                PERMISSION_MISSING,
                f"Not sent: socialdesk has no usable signing secret for {where}, so it cannot sign the answer. "
                "An administrator needs to set the source's secret again.",
                platform=Platform.OTHER,
                code="no_secret",
            )
        webhook_id = message_id(request.idempotency_key or f"{target.conversation_key}\n{request.text}")
        body = json.dumps(
            {
                "type": REPLY_EVENT,
                "timestamp": utc(now).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "data": {
                    "id": webhook_id,
                    "conversation_id": parts[2] if len(parts) == 3 else "",
                    "in_reply_to": _own_id(source, target.reply_to_id),
                    "account_id": target.account_id,
                    "customer_id": _own_id(source, target.customer_id),
                    "text": request.text,
                    "private": request.private,
                },
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        sent_at = datetime.fromtimestamp(int(utc(now).timestamp()), tz=utc(now).tzinfo)
        signatures = " ".join(Webhook(key).sign(webhook_id, sent_at, body) for key in keys)
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signatures,
            "Content-Type": "application/json",
        }
        address = urlsplit(url)
        path = (address.path or "/") + (f"?{address.query}" if address.query else "")
        client = self.client(Platform.OTHER, f"{address.scheme}://{address.netloc}", "")
        response = self._post(client, path, body.encode(), headers, where)
        if 200 <= response.status < 300:
            answer_id = json_body(response).get("id")
            return SentReply(
                platform_message_id=f"{source}:{answer_id}" if answer_id not in (None, "") else "",
                via="callback",
                warnings=(f"It went to {where}'s reply callback, which publishes it there.",),
            )
        raise self._failure(response, now, where)

    def _post(self, client: Any, path: str, body: bytes, headers: Mapping[str, str], where: str) -> Any:
        from chalicelib.http import ConnectFailed, TransportError, UnsafeUrl

        try:
            return client.request("POST", path, data=body, headers=headers)
        except ConnectFailed:
            words = f"Not sent: {where}'s reply callback could not be reached. Nothing was delivered; it is safe to send again."
            raise ReplyFailed(UNAVAILABLE, words, transient=True, platform=Platform.OTHER, code="connect") from None
        except TransportError as exc:
            words = (
                f"Not confirmed: {where}'s reply callback did not answer. Sending again is safe: the answer carries "
                "the same webhook-id, by which the receiver recognises a repeat."
            )
            raise ReplyFailed(UNAVAILABLE, words, transient=True, platform=Platform.OTHER, code=type(exc).__name__) from None
        except UnsafeUrl:
            raise ReplyFailed(
                REJECTED,
                f"Not sent: {where}'s reply callback address is not allowed.",
                platform=Platform.OTHER,
                code="unsafe_url",
            ) from None

    @staticmethod
    def _failure(response: Any, now: datetime, where: str) -> ReplyFailed:
        status = response.status
        answer = json_body(response)
        detail = short_detail(
            answer.get("message") or json_object(answer.get("error")).get("message") or answer.get("error") or ""
        )
        says = f" ({where} says: {detail})" if detail else ""
        common: dict[str, Any] = {"platform": Platform.OTHER, "code": str(status), "detail": detail or None}
        if status in (401, 403):
            return ReplyFailed(
                PERMISSION_MISSING,
                f"Not sent: {where}'s reply callback refused socialdesk's signature (HTTP {status}){says}. "
                f"{where}'s integration must use the same secret as socialdesk for this source.",
                **common,
            )
        if status in (404, 410):
            return ReplyFailed(
                TARGET_DELETED, f"Not sent: {where} says the item being answered is gone (HTTP {status}){says}.", **common
            )
        if status == 429:
            retry_at = utc(now) + timedelta(
                seconds=max(1.0, parse_retry_after(response.header("Retry-After")) or DEFAULT_RETRY_AFTER)
            )
            words = f"Not sent: {where}'s reply callback is limiting how many answers it takes. It can be sent again after {describe_time(retry_at, now)}."
            return ReplyFailed(RATE_LIMITED, words, retry_at=retry_at, transient=True, **common)
        if status == 408 or status >= 500:
            words = f"Not sent: {where}'s reply callback had a temporary problem (HTTP {status}). Sending again is safe."
            return ReplyFailed(UNAVAILABLE, words, transient=True, **common)
        return ReplyFailed(REJECTED, f"Not sent: {where}'s reply callback refused the answer (HTTP {status}){says}.", **common)
