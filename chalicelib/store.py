"""The one DynamoDB table: messages, conversations, requester mappings, quarantine.

Layout (``pk`` / ``sk``)::

    CONV#<conversation key> / MSG#<platform message id>   one message (stream -> ticket sync)
    CONV#<conversation key> / CONV                          the conversation's ticket state
    QUARANTINE#<source> / <sha256 of event>                 an event we could not normalize

The helpdesk user id of each social author is kept on the conversation item it was
first needed in; a returning customer's id is found through the ``by-author`` index
(reads, not another write per customer).

Every message of a conversation shares one partition key, so the table's stream
delivers a conversation's messages in write order to one shard. A redelivered
message hits the same key and the conditional put writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.models import DeliveryStatus, RejectedEvent, SocialMessage

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AUTHOR_INDEX = "by-author"
SYNCED_MEMORY = 200  # message ids remembered per conversation to drop stream redeliveries
MAX_RAW_BYTES = 300_000  # of DynamoDB's 400 KB per item
_PARALLEL_WRITES = 8
# Errors no retry will cure (a wrong table name, a bad key, a missing permission).
PERMANENT_ERRORS = frozenset({"ValidationException", "ResourceNotFoundException", "AccessDeniedException"})


class ConversationConflict(Exception):
    """Someone else updated the conversation since we read it; read again."""


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


@dataclass
class Conversation:
    """A conversation's ticket state, as the sync keeps it."""

    key: str
    helpdesk: str | None = None
    ticket_id: str | None = None
    ticket_status: str | None = None
    requester_id: str | None = None
    requesters: dict[str, str] = field(default_factory=dict)  # "<helpdesk>#<platform>#<author id>" -> user id
    epoch: int = 0
    synced: list[str] = field(default_factory=list)
    parked: list[str] = field(default_factory=list)
    version: int = 0

    def remember_synced(self, message_id: str) -> None:
        """Record that a message reached the ticket (bounded memory)."""
        if message_id not in self.synced:
            self.synced.append(message_id)
            del self.synced[:-SYNCED_MEMORY]


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(value)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _is_condition_failure(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("ConditionalCheckFailedException", "TransactionCanceledException")


def _error_code(exc: Exception) -> str | None:
    return getattr(exc, "response", {}).get("Error", {}).get("Code")


def author_pk(platform: str, author_id: str) -> str:
    """Partition key of the by-author index: everything one person wrote."""
    return f"AUTHOR#{platform}#{author_id}"


def requester_key(helpdesk: str, platform: str, author_id: str) -> str:
    """Key of a social author's helpdesk user id inside a conversation's state."""
    return f"{helpdesk}#{platform}#{author_id}"


def conversation_pk(key: str) -> str:
    """Partition key of a conversation and its messages."""
    return f"CONV#{key}"


def message_item(message: SocialMessage, *, ttl_days: int, now: float | None = None) -> dict[str, Any]:
    """The DynamoDB item for one message (low-level attribute-value format)."""
    now = time.time() if now is None else now
    body = message.model_dump_json(exclude={"raw"})
    raw = json.dumps(message.raw, separators=(",", ":"), default=str)
    if len(raw) + len(body) > MAX_RAW_BYTES:
        # The raw copy is for debugging only: never let it push the item past
        # DynamoDB's 400 KB limit and cost us the message itself.
        raw = json.dumps({"truncated": True, "bytes": len(raw)})
    return {
        "pk": _s(conversation_pk(message.conversation_key)),
        "sk": _s(f"MSG#{message.message_id}"),
        "item_type": _s("message"),
        "platform": _s(message.platform.value),
        "direction": _s(message.direction.value),
        "created_at": _s(_iso(message.created_at)),
        "message": _s(body),
        "raw": _s(raw),
        "received_at": _n(int(now)),
        "expires_at": _n(int(now + ttl_days * 86400)),
        # by-author index: find everything held on one person (data-deletion requests)
        "gsi1pk": _s(author_pk(message.platform.value, message.author.platform_id)),
        "gsi1sk": _s(_iso(message.created_at)),
    }


def message_from_image(image: dict[str, Any]) -> SocialMessage | None:
    """Rebuild the message from a stored item or stream image; None for other items."""
    if image.get("item_type", {}).get("S") != "message" or "message" not in image:
        return None
    return SocialMessage.model_validate_json(image["message"]["S"])


class MessageStore:
    """DynamoDB access for webhooks and the ticket sync. The client is injected."""

    def __init__(self, table_name: str, client: DynamoDBClient, *, raw_ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._client = client
        self.raw_ttl_days = raw_ttl_days

    # --- ingest -----------------------------------------------------------------

    def save_message(self, message: SocialMessage) -> bool:
        """Write a message unless it is already stored. True if it was new."""
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=message_item(message, ttl_days=self.raw_ttl_days),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if _is_condition_failure(exc):
                return False
            if _error_code(exc) == "ValidationException":
                raise UnstorableMessages([], [(message, f"DynamoDB refused it: {exc}"[:300])]) from exc
            raise StoreUnavailable(f"could not store message {message.message_id}: {_error_code(exc) or exc}") from exc
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
                Key={"pk": _s(conversation_pk(status.conversation_key)), "sk": _s(f"MSG#{status.message_id}")},
                UpdateExpression=(
                    "SET delivery_status = :status, #at = :at, status_errors = :errors,"
                    " item_type = if_not_exists(item_type, :stub), expires_at = if_not_exists(expires_at, :ttl)"
                ),
                ExpressionAttributeNames={"#at": f"status_{status.status}_at"},
                ExpressionAttributeValues={
                    ":status": _s(status.status),
                    ":at": _s(_iso(status.timestamp)),
                    ":errors": _s(json.dumps(list(status.errors))),
                    ":stub": _s("status"),
                    ":ttl": _n(int(time.time() + self.raw_ttl_days * 86400)),
                },
            )
        except Exception as exc:
            if _error_code(exc) == "ValidationException":
                raise UnstorableStatus(f"DynamoDB refused it: {exc}"[:300]) from exc
            raise StoreUnavailable(f"could not record status of {status.message_id}: {_error_code(exc) or exc}") from exc

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
            raise StoreUnavailable(f"could not quarantine an event: {_error_code(exc) or exc}") from exc

    # --- ticket sync ------------------------------------------------------------

    def get_message(self, conversation_key: str, message_id: str) -> SocialMessage | None:
        """Read one stored message back."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(f"MSG#{message_id}")},
            ConsistentRead=True,
        )
        return message_from_image(response.get("Item") or {})

    def mark_deleted(self, conversation_key: str, message_id: str) -> None:
        """Record on a stored message that its author deleted it on the platform."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(f"MSG#{message_id}")},
                UpdateExpression="SET deleted_at = :now",
                ConditionExpression="attribute_exists(pk)",  # never create a stub for an unknown message
                ExpressionAttributeValues={":now": _s(_iso(datetime.now(timezone.utc)))},
            )
        except Exception as exc:
            if not _is_condition_failure(exc):
                raise StoreUnavailable(f"could not mark {message_id} deleted: {_error_code(exc) or exc}") from exc

    def conversation_messages(self, key: str, *, max_items: int = 1000) -> list[SocialMessage]:
        """Every stored message of a conversation, with its ``raw`` payload (replies need
        e.g. LINE's reply token) and ``deleted`` set on those their author deleted."""
        found: list[SocialMessage] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
            "ExpressionAttributeValues": {":pk": _s(conversation_pk(key)), ":msg": _s("MSG#")},
            "ConsistentRead": True,
        }
        while len(found) < max_items:
            response = self._client.query(**kwargs)
            for item in response.get("Items", []):
                message = message_from_image(item)
                if message is None:
                    continue
                try:
                    raw = json.loads(item.get("raw", {}).get("S") or "{}")
                except ValueError:
                    raw = {}
                update: dict[str, Any] = {"raw": raw if isinstance(raw, dict) else {}}
                if "deleted_at" in item:
                    update["deleted"] = True
                found.append(message.model_copy(update=update))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def get_conversation(self, key: str) -> Conversation:
        """The conversation's state (a fresh one if it has none yet)."""
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(key)), "sk": _s("CONV")},
                ConsistentRead=True,
            )
        except Exception as exc:
            if _error_code(exc) in PERMANENT_ERRORS:
                raise
            raise StoreUnavailable(f"could not read conversation: {_error_code(exc) or exc}") from exc
        item = response.get("Item")
        if not item:
            return Conversation(key=key)
        state = json.loads(item["state"]["S"])
        return Conversation(key=key, version=int(item["version"]["N"]), **state)

    def save_conversation(self, conversation: Conversation) -> None:
        """Write the conversation if nobody changed it since it was read (optimistic lock)."""
        state = {
            "helpdesk": conversation.helpdesk,
            "ticket_id": conversation.ticket_id,
            "ticket_status": conversation.ticket_status,
            "requester_id": conversation.requester_id,
            "requesters": conversation.requesters,
            "epoch": conversation.epoch,
            "synced": conversation.synced,
            "parked": conversation.parked,
        }
        item = {
            "pk": _s(conversation_pk(conversation.key)),
            "sk": _s("CONV"),
            "item_type": _s("conversation"),
            "state": _s(json.dumps(state, separators=(",", ":"))),
            "version": _n(conversation.version + 1),
            "updated_at": _s(_iso(datetime.now(timezone.utc))),
        }
        if conversation.ticket_id:
            item["ticket_id"] = _s(conversation.ticket_id)
        condition = "attribute_not_exists(pk)" if conversation.version == 0 else "version = :expected"
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": item, "ConditionExpression": condition}
        if conversation.version:
            kwargs["ExpressionAttributeValues"] = {":expected": _n(conversation.version)}
        try:
            self._client.put_item(**kwargs)
        except Exception as exc:
            if _is_condition_failure(exc):
                raise ConversationConflict(conversation.key) from exc
            raise StoreUnavailable(f"could not save conversation: {_error_code(exc) or exc}") from exc
        conversation.version += 1

    def find_requester(self, helpdesk: str, platform: str, author_id: str, *, limit: int = 10) -> str | None:
        """The helpdesk user id recorded for a social author in any of their recent
        conversations, found through the by-author index; None for a new customer."""
        key = requester_key(helpdesk, platform, author_id)
        response = self._client.query(
            TableName=self.table_name,
            IndexName=AUTHOR_INDEX,
            KeyConditionExpression="gsi1pk = :author",
            ExpressionAttributeValues={":author": _s(author_pk(platform, author_id))},
            ScanIndexForward=False,
            Limit=limit,
        )
        partitions = list(dict.fromkeys(item["pk"]["S"] for item in response.get("Items", [])))
        if not partitions:
            return None
        found = self._client.batch_get_item(
            RequestItems={
                self.table_name: {
                    "Keys": [{"pk": _s(pk), "sk": _s("CONV")} for pk in partitions],
                    "ProjectionExpression": "#state",
                    "ExpressionAttributeNames": {"#state": "state"},
                }
            }
        )
        for item in found.get("Responses", {}).get(self.table_name, []):
            user_id = json.loads(item["state"]["S"]).get("requesters", {}).get(key)
            if user_id:
                return str(user_id)
        return None
