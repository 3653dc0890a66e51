"""The table's writes a webhook needs: a message (conditional put), a delivery receipt, an
event in quarantine, and the keys and item they are written under.

A cold start woken by a webhook loads this module, not the rest of the store
(``table.py``: conversations, parked messages, requesters, leases), which only the sync,
the scheduled jobs and the helpdesk routes use. ``MessageStore`` extends ``IngestStore``.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pydantic_core

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.models import DeliveryStatus, RejectedEvent, SocialMessage

AUTHOR_INDEX = "by-author"  # the table's one global index: messages by author, and the due queues
MAX_RAW_BYTES = 300_000  # of DynamoDB's 400 KB per item
_NOT_IN_BODY = {"raw"}  # stored apart, in ``raw``
_PARALLEL_WRITES = 8


class StoreUnavailable(Exception):
    """DynamoDB throttled or failed a call after the SDK's own retries: worth retrying."""


class UnstorableMessages(Exception):
    """DynamoDB refused some messages for good (ValidationException: an item over
    400 KB, an odd key). The others of the batch were written; ``flags`` says which
    were new, ``rejected`` holds the refused ones with the reason."""

    def __init__(self, flags: list[bool], rejected: list[tuple[SocialMessage, str]]) -> None:
        super().__init__(f"{len(rejected)} message(s) could not be stored")
        self.flags = flags
        self.rejected = rejected


class UnstorableStatus(Exception):
    """DynamoDB refused a delivery receipt for good (ValidationException: e.g. a key
    built from a garbled id is over DynamoDB's limits); a retry would fail the same way."""


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def error_code(exc: Exception) -> str | None:
    """A botocore ``ClientError``'s code (``ThrottlingException``...); None for anything else."""
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


def condition_failed(exc: Exception) -> bool:
    """A conditional write (or transaction) refused by its condition: another writer got there first."""
    return error_code(exc) in ("ConditionalCheckFailedException", "TransactionCanceledException")


def author_pk(platform: str, author_id: str) -> str:
    """Partition key of the by-author index: everything one person wrote."""
    return f"AUTHOR#{platform}#{author_id}"


def conversation_pk(key: str) -> str:
    """Partition key of a conversation and its messages."""
    return f"CONV#{key}"


def message_sk(message_id: str) -> str:
    """Sort key of a stored message."""
    return f"MSG#{message_id}"


def json_bytes(value: Any) -> bytes:
    """Compact JSON in UTF-8 (pydantic's serializer, about a quarter of ``json.dumps``' cost);
    what it cannot write (a lone UTF-16 surrogate read from a JSON escape) as ``json.dumps`` does."""
    try:
        return pydantic_core.to_json(value, fallback=str)
    except ValueError:
        return json.dumps(value, separators=(",", ":"), default=str).encode()


def message_item(message: SocialMessage, *, ttl_days: int, now: float | None = None) -> dict[str, Any]:
    """The DynamoDB item for one message (low-level attribute-value format)."""
    now = time.time() if now is None else now
    # Defaults (None, empty, False) are left out: restored on reading, and the item stays under
    # the 1 KB a write unit pays for more often.
    body = message.model_dump_json(exclude=_NOT_IN_BODY, exclude_defaults=True)
    # When it was stored goes into the same JSON, last (the model ignores it; ``stored_at`` reads it).
    body = f'{body[:-1]},"received_at":{int(now)}}}'
    raw_json = json_bytes(message.raw)
    if len(raw_json) + len(body.encode()) > MAX_RAW_BYTES:
        # The raw copy is for debugging only: never let it push the item past
        # DynamoDB's 400 KB limit (of UTF-8) and cost us the message itself.
        raw = json.dumps({"truncated": True, "bytes": len(raw_json)})
    else:
        raw = raw_json.decode()
    # Seven attributes: the keys, what a projection reads apart (the message without its payload),
    # the TTL and the index. Its platform, direction and time are in ``message``
    # (``message_fields``), as is when it was stored (``stored_at``), and its ``MSG#`` sort key says
    # what it is (no ``item_type``): every attribute costs the write's serialization (and moto, the
    # bench's DynamoDB, re-measures the item once per attribute). Items written before kept
    # ``item_type``, ``received_at`` and copies of platform, direction and time; they read the same.
    return {
        "pk": _s(conversation_pk(message.conversation_key)),
        "sk": _s(message_sk(message.message_id)),
        "message": _s(body),
        "raw": _s(raw),
        "expires_at": _n(int(now + ttl_days * 86400)),
        # by-author index: find everything held on one person (data-deletion requests)
        "gsi1pk": _s(author_pk(message.platform.value, message.author.platform_id)),
        "gsi1sk": _s(_iso(message.created_at)),
    }


def message_fields(item: dict[str, Any]) -> dict[str, Any]:
    """A stored message item's ``platform``, ``direction``, ``created_at`` (ISO, as stored) and
    ``kind``, without building the model (the report reads thousands); {} for an item that holds
    no message (e.g. a delivery receipt's stub). Items written before the item lost its
    top-level copies of the first three are read the same way."""
    try:
        body = json.loads((item.get("message") or {}).get("S") or "null")
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    fields = {name: body.get(name) for name in ("platform", "direction", "created_at", "kind")}
    for name in ("platform", "direction", "created_at"):
        stored = (item.get(name) or {}).get("S")
        if stored:
            fields[name] = stored
    return fields


def stored_at(image: dict[str, Any]) -> float | None:
    """When a stored message item (or its stream image) was written, epoch seconds; None if unknown."""
    value = (image.get("received_at") or {}).get("N")  # items written before kept it apart
    if value is None:
        try:
            body = json.loads((image.get("message") or {}).get("S") or "null")
        except ValueError:
            return None
        value = body.get("received_at") if isinstance(body, dict) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class IngestStore:
    """Writes of the webhook path (and of every other way messages reach the table: Google
    reviews, X polling, the Meta backfill). The client is injected."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, raw_ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._client = client
        self.raw_ttl_days = raw_ttl_days

    def save_message(self, message: SocialMessage) -> bool:
        """Write a message unless it is already stored. True if it was new."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=message_item(message, ttl_days=self.raw_ttl_days),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if condition_failed(exc):
                return False
            if error_code(exc) == "ValidationException":
                raise UnstorableMessages([], [(message, f"DynamoDB refused it: {exc}"[:300])]) from exc
            raise StoreUnavailable(f"could not store message {message.message_id}: {error_code(exc) or exc}") from exc
        return True

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        """Write many messages (in parallel when there are several); one flag per message.

        Raises ``UnstorableMessages`` after writing the rest when DynamoDB refuses some
        for good, and ``StoreUnavailable`` when it fails (retry the whole delivery).
        """

        def save(message: SocialMessage) -> bool | UnstorableMessages:
            try:
                return self.save_message(message)
            except UnstorableMessages as refused:
                return refused

        if len(messages) <= 1:
            results = [save(m) for m in messages]
        else:
            from concurrent.futures import ThreadPoolExecutor  # not needed by single-message deliveries

            with ThreadPoolExecutor(max_workers=min(_PARALLEL_WRITES, len(messages))) as pool:
                results = list(pool.map(save, messages))
        refused = [r for r in results if isinstance(r, UnstorableMessages)]
        flags = [r is True for r in results]
        if refused:
            raise UnstorableMessages(flags, [pair for r in refused for pair in r.rejected])
        return flags

    def record_status(self, status: DeliveryStatus) -> None:
        """Record a delivery receipt on the message it is about (never a ticket)."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(status.conversation_key)), "sk": _s(message_sk(status.message_id))},
                # No item_type: a receipt may land on a message item, which has none (its MSG# key
                # says what it is); a receipt that came first stays a stub without ``message``.
                UpdateExpression=(
                    "SET delivery_status = :status, #at = :at, status_errors = :errors,"
                    " expires_at = if_not_exists(expires_at, :ttl)"
                ),
                ExpressionAttributeNames={"#at": f"status_{status.status}_at"},
                ExpressionAttributeValues={
                    ":status": _s(status.status),
                    ":at": _s(_iso(status.timestamp)),
                    ":errors": _s(json.dumps(list(status.errors))),
                    ":ttl": _n(int(time.time() + self.raw_ttl_days * 86400)),
                },
            )
        except Exception as exc:
            if error_code(exc) == "ValidationException":
                raise UnstorableStatus(f"DynamoDB refused it: {exc}"[:300]) from exc
            raise StoreUnavailable(f"could not record status of {status.message_id}: {error_code(exc) or exc}") from exc

    def quarantine(self, rejected: RejectedEvent) -> None:
        """Keep an event we could not normalize, with the error, for a person to look at."""
        raw = json.dumps(rejected.event, separators=(",", ":"), sort_keys=True, default=str)
        if len(raw) > MAX_RAW_BYTES:  # keep the item under DynamoDB's 400 KB; the key still identifies it
            raw = json.dumps({"truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw.encode()).hexdigest()})
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": _s(f"QUARANTINE#{rejected.source}"),
                    "sk": _s(hashlib.sha256(raw.encode()).hexdigest()),
                    "item_type": _s("quarantine"),
                    "error": _s(rejected.error),
                    "raw": _s(raw),
                    "received_at": _n(int(time.time())),
                    "expires_at": _n(int(time.time() + self.raw_ttl_days * 86400)),
                },
            )
        except Exception as exc:
            raise StoreUnavailable(f"could not quarantine an event: {error_code(exc) or exc}") from exc
