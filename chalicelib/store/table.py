"""The one DynamoDB table: messages, conversations, parked messages, requester mappings, quarantine.

Layout (``pk`` / ``sk``; design notes in ``docs/sync.md``)::

    CONV#<conversation key> / MSG#<platform message id>   one message (stream -> ticket sync)
    CONV#<conversation key> / CONV                          the conversation's ticket state (bounded)
    CONV#<conversation key> / PARKED#<seq>                  a parked message, in parking order (blocks later ones)
    CONV#<conversation key> / ASIDE#<seq>                   a parked message set aside (retried, blocks nothing)
    CONV#<conversation key> / PARKID#<message id>           which entry a parked message is (duplicate check)
    REQUESTER#<helpdesk>#<platform>#<author id> / REQUESTER a social author's helpdesk user id
    LEASE#<name> / LEASE                                    a short lease (one redrive per conversation)
    QUARANTINE#<source> / <sha256 of event>                 an event we could not normalize
    BULK#<batch>#<chunk>#<hash> / INTENT                    a bulk ticket creation's intent and job (sync/batch.py)

Every message of a conversation shares one partition key, so the table's stream
delivers a conversation's messages in write order to one shard. A redelivered
message hits the same key and the conditional put writes nothing. A conversation
with parked messages carries ``gsi1pk = PARKED`` (``gsi1sk`` = since when it is
blocked) so the redrive's sweep finds it without the dead-letter queue.

What a webhook writes (a message, a delivery receipt, an event in quarantine) and the keys it
writes under are in ``ingest.py``: ``MessageStore`` extends its ``IngestStore``, and a cold
start woken by a webhook never loads this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chalicelib.models import SocialMessage
from chalicelib.store.ingest import (
    AUTHOR_INDEX,
    IngestStore,
    StoreUnavailable,
    _iso,
    _n,
    _s,
    author_pk,
    condition_failed,
    conversation_pk,
    error_code,
    message_sk,
)

# Re-exported: they lived here before the webhook's writes moved to ingest.py.
from chalicelib.store.ingest import UnstorableMessages as UnstorableMessages
from chalicelib.store.ingest import UnstorableStatus as UnstorableStatus
from chalicelib.store.ingest import message_item as message_item
from chalicelib.store.ledger import Leases, Ledger

SYNCED_MEMORY = 200  # message ids remembered per conversation to drop stream redeliveries
RAW_FOR_LATEST = 25  # messages of a conversation read with their raw payload (replies use the latest)
# Errors no retry will cure (a wrong table name, a bad key, a missing permission).
PERMANENT_ERRORS = frozenset({"ValidationException", "ResourceNotFoundException", "AccessDeniedException"})


class ConversationConflict(Exception):
    """Someone else updated the conversation since we read it; read again."""


class UnstorableConversation(Exception):
    """DynamoDB refused a conversation's bookkeeping for good (ValidationException and the
    like): retrying the same write cannot help, and it must not fail a whole stream batch."""


@dataclass(frozen=True)
class ParkedEntry:
    """One parked message of a conversation: ``seq`` is its place in parking order."""

    conversation_key: str
    seq: int
    message_id: str
    reason: str = ""
    parked_at: str = ""
    aside: bool = False  # set aside after too long at the head: retried, but blocks nothing
    unrecorded: bool = False  # only a dead-letter entry: its conversation could not be written
    # The helpdesk may have it already (a write was tried, or its stream record may have been
    # handled before): the redrive looks on the ticket before sending it. False for a message
    # parked straight behind another, which can be sent as it is.
    attempted: bool = True


@dataclass
class Conversation:
    """A conversation's ticket state, as the sync keeps it (bounded in size: parked
    messages and the mappings of other participants live in items of their own)."""

    key: str
    helpdesk: str | None = None
    ticket_id: str | None = None
    ticket_status: str | None = None
    # The ticket's ``updated_at`` after our last write to it: a guarded update
    # (Zendesk ``safe_update``) is refused if anything changed the ticket since.
    ticket_updated_at: str | None = None
    requester_id: str | None = None
    requester_key: str | None = None  # requester_key(...) of the person ``requester_id`` stands for
    epoch: int = 0
    synced: list[str] = field(default_factory=list)
    # A message whose helpdesk write may have happened without being recorded yet.
    sending: str | None = None
    parked: int = 0  # messages waiting in parking order (each blocks the ones after it)
    aside: int = 0  # parked messages set aside (retried out of order)
    park_seq: int = 0
    blocked_since: str | None = None
    # Read from items written before parked messages and requester mappings had items of
    # their own; migrated by the sync, never written back in this form.
    legacy_parked: list[str] = field(default_factory=list)
    legacy_requesters: dict[str, str] = field(default_factory=dict)
    # Triage (chalicelib/triage): the latest inbound message's signals and, once a ticket is
    # opened, what it was given (priority, group); None before the first triaged message.
    triage: dict[str, Any] | None = None
    version: int = 0

    def remember_synced(self, message_id: str) -> None:
        """Record that a message reached the ticket (bounded memory)."""
        if message_id not in self.synced:
            self.synced.append(message_id)
            del self.synced[:-SYNCED_MEMORY]
        if self.sending == message_id:
            self.sending = None

    @property
    def has_parked(self) -> bool:
        """True while parked messages (in order or set aside) wait for the redrive."""
        return self.parked > 0 or self.aside > 0 or bool(self.legacy_parked)

    def state(self) -> dict[str, Any]:
        """What is stored in the item's ``state`` attribute."""
        return {
            "helpdesk": self.helpdesk,
            "ticket_id": self.ticket_id,
            "ticket_status": self.ticket_status,
            "ticket_updated_at": self.ticket_updated_at,
            "requester_id": self.requester_id,
            "requester_key": self.requester_key,
            "epoch": self.epoch,
            "synced": self.synced,
            "sending": self.sending,
            "parked": self.parked,
            "aside": self.aside,
            "park_seq": self.park_seq,
            "blocked_since": self.blocked_since,
            **({"legacy_parked": self.legacy_parked} if self.legacy_parked else {}),
            **({"triage": self.triage} if self.triage else {}),
        }

    @classmethod
    def from_state(cls, key: str, state: dict[str, Any], version: int) -> Conversation:
        """Read a stored state, including the shapes older versions wrote."""
        known = {name: state[name] for name in cls.__dataclass_fields__ if name in state and name not in ("key", "version")}
        parked = known.pop("parked", 0)
        requesters = state.get("requesters")
        conversation = cls(key=key, version=version, **known)
        if isinstance(parked, list):  # before PARKED# items: the ids, in order
            conversation.legacy_parked = [str(p) for p in parked]
        else:
            conversation.parked = int(parked or 0)
        if isinstance(requesters, dict):  # before REQUESTER# items: every participant's user id
            conversation.legacy_requesters = {str(k): str(v) for k, v in requesters.items()}
            if conversation.requester_id and not conversation.requester_key:
                conversation.requester_key = next(
                    (k for k, v in conversation.legacy_requesters.items() if v == conversation.requester_id), None
                )
        return conversation


def requester_key(helpdesk: str, platform: str, author_id: str) -> str:
    """Key of a social author's helpdesk user id inside a conversation's state."""
    return f"{helpdesk}#{platform}#{author_id}"


def ticket_pointer_pk(helpdesk: str, ticket_id: str) -> str:
    return f"TICKET#{helpdesk}#{ticket_id}"


CONVERSATION_SK = "CONV"
RESPONSE_SK = "RESPONSE"  # the conversation's response times (outbound/agent_replies.py)
TICKET_POINTER_SK = "TICKET"  # which conversation a helpdesk ticket belongs to (Freshdesk's events)
BLOCKED_INDEX_PK = "PARKED"  # gsi1pk of a conversation with parked messages (the redrive's sweep)


def parked_sk(seq: int, *, aside: bool = False) -> str:
    """Sort key of a parked entry; zero-padded so the partition sorts in parking order."""
    return f"{'ASIDE' if aside else 'PARKED'}#{seq:012d}"


def parked_id_sk(message_id: str) -> str:
    """Sort key of the item saying which entry a parked message is."""
    return f"PARKID#{message_id}"


def requester_pk(helpdesk: str, platform: str, author_id: str) -> str:
    """Partition key of a social author's helpdesk user id."""
    return f"REQUESTER#{requester_key(helpdesk, platform, author_id)}"


def lease_pk(name: str) -> str:
    """Partition key of a lease."""
    return f"LEASE#{name}"


def _lease_key(name: str) -> dict[str, dict[str, str]]:
    return {"pk": _s(lease_pk(name)), "sk": _s("LEASE")}


def message_from_image(image: dict[str, Any]) -> SocialMessage | None:
    """Rebuild the message from a stored item or stream image; None for other items (a message
    item holds ``message`` under a ``MSG#`` sort key; those written before also say
    ``item_type = message``)."""
    if "message" not in image:
        return None
    kind = image.get("item_type", {}).get("S")
    if kind != "message" and (kind is not None or not image.get("sk", {}).get("S", "").startswith("MSG#")):
        return None
    return SocialMessage.model_validate_json(image["message"]["S"])


class MessageStore(IngestStore):
    """DynamoDB access for webhooks (the writes of ``IngestStore``) and the ticket sync. The client is injected."""

    # --- ticket sync ------------------------------------------------------------

    def get_message(self, conversation_key: str, message_id: str) -> SocialMessage | None:
        """Read one stored message back."""
        response = self._client.get_item(
            TableName=self.table_name,
            Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(message_sk(message_id))},
            ConsistentRead=True,
        )
        return message_from_image(response.get("Item") or {})

    def mark_deleted(self, conversation_key: str, message_id: str) -> None:
        """Record on a stored message that its author deleted it on the platform."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(message_sk(message_id))},
                UpdateExpression="SET deleted_at = :now",
                ConditionExpression="attribute_exists(pk)",  # never create a stub for an unknown message
                ExpressionAttributeValues={":now": _s(_iso(datetime.now(timezone.utc)))},
            )
        except Exception as exc:
            if not condition_failed(exc):
                raise StoreUnavailable(f"could not mark {message_id} deleted: {error_code(exc) or exc}") from exc

    def mark_noise(self, conversation_key: str, message_id: str, reason: str, signals: dict[str, Any] | None = None) -> None:
        """Record on a stored message that triage found it noise (``reason``: "emoji only",
        "tags only", "spam-like"), with its signals: it stays in the conversation, with no ticket."""
        values: dict[str, Any] = {":reason": _s(reason)}
        update = "SET noise = :reason"
        if signals is not None:
            update += ", triage = :signals"
            values[":signals"] = _s(json.dumps(signals, separators=(",", ":")))
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(message_sk(message_id))},
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",  # never create a stub for an unknown message
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not condition_failed(exc):
                raise StoreUnavailable(f"could not mark {message_id} as noise: {error_code(exc) or exc}") from exc

    def noise_reason(self, conversation_key: str, message_id: str) -> str | None:
        """Why triage kept a stored message out of the helpdesk, or None (not noise, or unknown)."""
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(conversation_key)), "sk": _s(message_sk(message_id))},
                ProjectionExpression="noise",
                ConsistentRead=True,
            )
        except Exception as exc:
            raise self._failure(f"could not read message {message_id}", exc) from exc
        return (response.get("Item") or {}).get("noise", {}).get("S")

    def conversation_messages(self, key: str, *, with_raw: int = RAW_FOR_LATEST) -> list[SocialMessage]:
        """Every stored message of a conversation, ``deleted`` set on those their author
        deleted; the ``raw`` payload (replies need e.g. LINE's reply token) only on the
        ``with_raw`` latest ones, so a thread of ten thousand messages stays a few MB."""
        found: list[SocialMessage] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :msg)",
            "ExpressionAttributeValues": {":pk": _s(conversation_pk(key)), ":msg": _s("MSG#")},
            "ProjectionExpression": "sk, item_type, #message, deleted_at",
            "ExpressionAttributeNames": {"#message": "message"},
            "ConsistentRead": True,
        }
        while True:
            try:
                response = self._client.query(**kwargs)
            except Exception as exc:
                raise self._failure(f"could not read conversation {key}", exc) from exc
            for item in response.get("Items", []):
                message = message_from_image(item)
                if message is not None:
                    found.append(message.model_copy(update={"deleted": True}) if "deleted_at" in item else message)
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        latest = sorted(found, key=lambda m: (m.created_at, m.message_id))[-with_raw:] if with_raw else []
        raws = self._raw_payloads(key, [m.message_id for m in latest])
        return [m.model_copy(update={"raw": raws[m.message_id]}) if m.message_id in raws else m for m in found]

    def _raw_payloads(self, key: str, message_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The stored ``raw`` payloads of some messages of a conversation (100 per request)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(message_ids), 100):
            keys = [{"pk": _s(conversation_pk(key)), "sk": _s(message_sk(m))} for m in message_ids[start : start + 100]]
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": keys,
                    "ProjectionExpression": "sk, #raw",
                    "ExpressionAttributeNames": {"#raw": "raw"},
                    "ConsistentRead": True,
                }
            }
            while request:
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise self._failure(f"could not read conversation {key}", exc) from exc
                for item in response.get("Responses", {}).get(self.table_name, []):
                    try:
                        raw = json.loads(item.get("raw", {}).get("S") or "{}")
                    except ValueError:
                        raw = {}
                    found[item["sk"]["S"].removeprefix("MSG#")] = raw if isinstance(raw, dict) else {}
                request = response.get("UnprocessedKeys") or {}
        return found

    # --- conversation state -----------------------------------------------------------

    def update_response_times(self, key: str, expression: str, values: dict[str, Any]) -> dict[str, Any]:
        """Update the conversation's response-times item with ``expression``; the item as it was before."""
        try:
            answer = self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(key)), "sk": _s(RESPONSE_SK)},
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_OLD",
            )
        except Exception as exc:
            raise StoreUnavailable(f"could not record the response time: {error_code(exc) or exc}") from exc
        return dict(answer.get("Attributes") or {})

    def response_times(self, key: str) -> dict[str, Any] | None:
        """The conversation's response times (``first_response_at``, ``first_response_seconds``...), if any."""
        try:
            item = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(key)), "sk": _s(RESPONSE_SK)},
                ConsistentRead=True,
            ).get("Item")
        except Exception as exc:
            raise self._failure("could not read the response times", exc) from exc
        if not item:
            return None
        return {
            name: int(value["N"]) if "N" in value else value.get("S")
            for name, value in item.items()
            if name not in ("pk", "sk", "item_type")
        }

    def get_conversation(self, key: str) -> Conversation:
        """The conversation's state (a fresh one if it has none yet)."""
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(key)), "sk": _s(CONVERSATION_SK)},
                ConsistentRead=True,
            )
        except Exception as exc:
            raise self._failure("could not read conversation", exc) from exc
        item = response.get("Item")
        if not item:
            return Conversation(key=key)
        return Conversation.from_state(key, json.loads(item["state"]["S"]), int(item["version"]["N"]))

    def _conversation_put(self, conversation: Conversation) -> dict[str, Any]:
        """The conditional put of the conversation item (optimistic lock on ``version``)."""
        item = {
            "pk": _s(conversation_pk(conversation.key)),
            "sk": _s(CONVERSATION_SK),
            "item_type": _s("conversation"),
            "state": _s(json.dumps(conversation.state(), separators=(",", ":"))),
            "version": _n(conversation.version + 1),
            "updated_at": _s(_iso(datetime.now(timezone.utc))),
        }
        if conversation.ticket_id:
            item["ticket_id"] = _s(conversation.ticket_id)
        if conversation.has_parked:  # listed for the redrive's sweep while it has parked messages
            conversation.blocked_since = conversation.blocked_since or _iso(datetime.now(timezone.utc))
            item["state"] = _s(json.dumps(conversation.state(), separators=(",", ":")))
            item["gsi1pk"] = _s(BLOCKED_INDEX_PK)
            item["gsi1sk"] = _s(conversation.blocked_since)
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if conversation.version == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :expected"
            put["ExpressionAttributeValues"] = {":expected": _n(conversation.version)}
        return put

    def save_conversation(self, conversation: Conversation, *, unpark: ParkedEntry | None = None) -> None:
        """Write the conversation if nobody changed it since it was read (optimistic lock).

        ``unpark``: that parked entry is removed first (its message was delivered, or is
        gone); the counters on ``conversation`` must already say so. Entries go before the
        counters, so a crash in between leaves a counter too high, which the sync heals
        when it finds no entry -- never an entry that blocks nothing."""
        if unpark is not None:
            self.remove_parked(unpark)
        if not conversation.has_parked:
            conversation.blocked_since = None
        put = self._conversation_put(conversation)
        self._write("could not save conversation", lambda: self._client.put_item(**put))
        conversation.version += 1

    # --- parked messages ------------------------------------------------------------------
    #
    # Only the stream sync parks, one batch of a shard at a time, so ``park_seq`` has a single
    # writer; the redrive and agent events change other fields. The entry is written before
    # the conversation's counter (a crash in between leaves an entry the next attempt writes
    # again at the same place), and the duplicate check after it (a crash in between parks the
    # message twice: the second entry finds it delivered).

    def park(self, conversation: Conversation, message_id: str, reason: str, *, attempted: bool = True) -> ParkedEntry | None:
        """Append a message to the conversation's parked ones and count it on the conversation
        (whose ``version`` it checks). None when the message is parked already."""
        if self.is_parked(conversation.key, message_id):
            return None
        seq = conversation.park_seq
        now = _iso(datetime.now(timezone.utc))
        entry = ParkedEntry(conversation.key, seq, message_id, reason[:1000], now, attempted=attempted)
        self._put_entry(entry)
        conversation.parked += 1
        conversation.park_seq += 1
        try:
            self.save_conversation(conversation)
        except Exception:
            conversation.parked -= 1
            conversation.park_seq -= 1
            raise
        self._put_parked_id(entry)
        return entry

    def set_aside(self, conversation: Conversation, entry: ParkedEntry) -> ParkedEntry:
        """Move a parked message out of the conversation's way: it stays parked and is
        retried, but later messages no longer wait for it."""
        aside = ParkedEntry(
            entry.conversation_key,
            entry.seq,
            entry.message_id,
            entry.reason,
            entry.parked_at,
            aside=True,
            attempted=entry.attempted,
        )
        self._put_entry(aside)
        self._put_parked_id(aside)
        self._delete_item(conversation.key, parked_sk(entry.seq))
        conversation.parked = max(0, conversation.parked - 1)
        conversation.aside += 1
        try:
            self.save_conversation(conversation)
        except Exception:
            conversation.parked += 1
            conversation.aside -= 1
            raise
        return aside

    def remove_parked(self, entry: ParkedEntry) -> None:
        """Delete a parked entry and its duplicate check (idempotent)."""
        if entry.unrecorded:
            return
        self._delete_item(entry.conversation_key, parked_sk(entry.seq, aside=entry.aside))
        self._delete_item(entry.conversation_key, parked_id_sk(entry.message_id))

    def _put_entry(self, entry: ParkedEntry) -> None:
        item = {
            "pk": _s(conversation_pk(entry.conversation_key)),
            "sk": _s(parked_sk(entry.seq, aside=entry.aside)),
            "item_type": _s("parked"),
            "message_id": _s(entry.message_id),
            "reason": _s(entry.reason),
            "parked_at": _s(entry.parked_at),
            "seq": _n(entry.seq),
            "attempted": {"BOOL": entry.attempted},
        }
        self._write("could not park a message", lambda: self._client.put_item(TableName=self.table_name, Item=item))

    def _put_parked_id(self, entry: ParkedEntry) -> None:
        item = {
            "pk": _s(conversation_pk(entry.conversation_key)),
            "sk": _s(parked_id_sk(entry.message_id)),
            "item_type": _s("parked_id"),
            "seq": _n(entry.seq),
            "aside": {"BOOL": entry.aside},
        }
        self._write("could not park a message", lambda: self._client.put_item(TableName=self.table_name, Item=item))

    def _delete_item(self, key: str, sk: str) -> None:
        self._write(
            "could not remove a parked message",
            lambda: self._client.delete_item(TableName=self.table_name, Key={"pk": _s(conversation_pk(key)), "sk": _s(sk)}),
        )

    def parked_entries(self, key: str, *, aside: bool = False, limit: int = 25) -> list[ParkedEntry]:
        """A conversation's parked messages in parking order (``aside``: the ones set aside)."""
        try:
            response = self._client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": _s(conversation_pk(key)), ":prefix": _s("ASIDE#" if aside else "PARKED#")},
                ConsistentRead=True,
                Limit=limit,
            )
        except Exception as exc:
            raise self._failure("could not read parked messages", exc) from exc
        return [
            ParkedEntry(
                key,
                int(item["seq"]["N"]),
                item["message_id"]["S"],
                item.get("reason", {}).get("S", ""),
                item.get("parked_at", {}).get("S", ""),
                aside=aside,
                attempted=item.get("attempted", {}).get("BOOL", True),
            )
            for item in response.get("Items", [])
        ]

    def parked_head(self, key: str) -> ParkedEntry | None:
        """The conversation's first parked message (the one every later message waits for)."""
        found = self.parked_entries(key, limit=1)
        return found[0] if found else None

    def is_parked(self, key: str, message_id: str) -> bool:
        """True when the message is one of the conversation's parked ones."""
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(conversation_pk(key)), "sk": _s(parked_id_sk(message_id))},
                ConsistentRead=True,
            )
        except Exception as exc:
            raise self._failure("could not read a parked message", exc) from exc
        return "Item" in response

    def blocked_conversations(self, *, limit: int = 200) -> list[tuple[str, str]]:
        """``(conversation key, blocked since)`` of conversations with parked messages, the
        longest blocked first (the sweep: found even if their queue entries were lost)."""
        found: list[tuple[str, str]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": AUTHOR_INDEX,
            "KeyConditionExpression": "gsi1pk = :blocked",
            "ExpressionAttributeValues": {":blocked": _s(BLOCKED_INDEX_PK)},
        }
        while len(found) < limit:
            try:
                response = self._client.query(**kwargs)
            except Exception as exc:
                raise self._failure("could not list blocked conversations", exc) from exc
            for item in response.get("Items", []):
                found.append((item["pk"]["S"].removeprefix("CONV#"), item.get("gsi1sk", {}).get("S", "")))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found[:limit]

    # --- ticket pointers and a person's conversations -----------------------------------------

    def put_ticket_pointer(self, helpdesk: str, ticket_id: str, message: SocialMessage) -> None:
        """Remember that ``ticket_id`` was opened for ``message``'s conversation (``TICKET#<helpdesk>#<id>``
        / ``TICKET``), indexed under the message's author (``by-author``) so that ``privacy.forget``
        erases it with the person (a conversation key can hold their id)."""
        item = {
            "pk": _s(ticket_pointer_pk(helpdesk, ticket_id)),
            "sk": _s(TICKET_POINTER_SK),
            "item_type": _s("ticket_pointer"),
            "conversation_key": _s(message.conversation_key),
            "created_at": _s(datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
            "gsi1pk": _s(author_pk(message.platform.value, message.author.platform_id)),
            "gsi1sk": _s(message.created_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")),
        }
        try:
            self._client.put_item(TableName=self.table_name, Item=item)
        except Exception as exc:
            raise self._failure("could not write the ticket pointer", exc) from exc

    def ticket_pointer(self, helpdesk: str, ticket_id: str) -> str | None:
        """The conversation key ``put_ticket_pointer`` stored for the ticket, if any."""
        try:
            item = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(ticket_pointer_pk(helpdesk, ticket_id)), "sk": _s(TICKET_POINTER_SK)},
                ConsistentRead=True,
            ).get("Item")
        except Exception as exc:
            raise self._failure("could not read the ticket pointer", exc) from exc
        return (item or {}).get("conversation_key", {}).get("S")

    def author_conversations(self, platform: str, author_id: str, *, max_pages: int) -> Iterator[str]:
        """The keys of the conversations one person wrote in, newest first, each once (by-author index)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": AUTHOR_INDEX,
            "KeyConditionExpression": "gsi1pk = :author",
            "ExpressionAttributeValues": {":author": _s(author_pk(platform, author_id))},
            "ScanIndexForward": False,
            "Limit": 100,
        }
        seen: set[str] = set()
        for _ in range(max_pages):
            try:
                page = self._client.query(**kwargs)
            except Exception as exc:
                raise self._failure("could not look up a person's conversations", exc) from exc
            for item in page.get("Items", []):
                pk = item["pk"]["S"]
                if pk.startswith("CONV#") and pk not in seen:
                    seen.add(pk)
                    yield pk.removeprefix("CONV#")
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- requesters --------------------------------------------------------------------------

    def find_requester(self, helpdesk: str, platform: str, author_id: str, *, limit: int = 10) -> str | None:
        """The helpdesk user id recorded for a social author: their own mapping item, else
        the conversations they requested (through the by-author index); None for a new customer."""
        key = requester_key(helpdesk, platform, author_id)
        try:
            item = self._client.get_item(
                TableName=self.table_name,
                Key={"pk": _s(requester_pk(helpdesk, platform, author_id)), "sk": _s("REQUESTER")},
                ConsistentRead=True,
            ).get("Item")
            if item:
                return item["user_id"]["S"]
            response = self._client.query(
                TableName=self.table_name,
                IndexName=AUTHOR_INDEX,
                KeyConditionExpression="gsi1pk = :author",
                ExpressionAttributeValues={":author": _s(author_pk(platform, author_id))},
                ScanIndexForward=False,
                Limit=limit,
            )
            partitions = list(dict.fromkeys(i["pk"]["S"] for i in response.get("Items", []) if i["pk"]["S"].startswith("CONV#")))
            if not partitions:
                return None
            found = self._client.batch_get_item(
                RequestItems={
                    self.table_name: {
                        "Keys": [{"pk": _s(pk), "sk": _s(CONVERSATION_SK)} for pk in partitions],
                        "ProjectionExpression": "#state",
                        "ExpressionAttributeNames": {"#state": "state"},
                    }
                }
            )
        except Exception as exc:
            raise self._failure("could not look up a requester", exc) from exc
        for conversation_item in found.get("Responses", {}).get(self.table_name, []):
            state = json.loads(conversation_item["state"]["S"])
            if state.get("requester_key") == key and state.get("requester_id"):
                return str(state["requester_id"])
            legacy = (state.get("requesters") or {}).get(key)
            if legacy:
                return str(legacy)
        return None

    def save_requester(self, helpdesk: str, platform: str, author_id: str, user_id: str) -> None:
        """Remember a social author's helpdesk user id (also findable by the author, for erasure)."""
        item = {
            "pk": _s(requester_pk(helpdesk, platform, author_id)),
            "sk": _s("REQUESTER"),
            "item_type": _s("requester"),
            "user_id": _s(user_id),
            "gsi1pk": _s(author_pk(platform, author_id)),
            "gsi1sk": _s(f"REQUESTER#{helpdesk}"),
            "updated_at": _s(_iso(datetime.now(timezone.utc))),
        }
        self._write("could not save a requester", lambda: self._client.put_item(TableName=self.table_name, Item=item))

    # --- leases ------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take the lease ``name`` for ``seconds`` unless someone else holds an unexpired one."""
        now = time.time()
        return self._leases.acquire(
            _lease_key(name), owner, now=round(now, 3), until=round(now + seconds, 3), expires_at=int(now + seconds + 86400)
        )

    def release_lease(self, name: str, owner: str, *, attempts: int = 3) -> None:
        """Give the lease back early (best effort, a few tries: it expires anyway, but a
        lease left behind by a throttled release holds its conversation until then)."""
        for _ in range(attempts):
            try:
                self._leases.release(_lease_key(name), owner)  # False: expired and taken by someone else
                return
            except StoreUnavailable:
                continue

    @property
    def _leases(self) -> Leases:
        return Leases(self.ledger("lease"))

    def ledger(self, owner: str) -> Ledger:
        """The one ledger on this table, for items kept outside this module (errors name ``owner``)."""
        return Ledger(self._client, self.table_name, owner=owner)

    # --- the batch stage's reads (``sync/batch.py``): a hundred items a request -------------------

    def get_conversations(self, keys: list[str]) -> dict[str, Conversation]:
        """``get_conversation`` for many keys (consistent reads, 100 per request)."""
        found = {key: Conversation(key=key) for key in keys}
        by_pk = {conversation_pk(key): key for key in keys}
        for item in self._batch_get([{"pk": _s(pk), "sk": _s(CONVERSATION_SK)} for pk in by_pk], "could not read conversations"):
            key = by_pk[item["pk"]["S"]]
            found[key] = Conversation.from_state(key, json.loads(item["state"]["S"]), int(item["version"]["N"]))
        return found

    def requester_mappings(self, helpdesk: str, authors: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The helpdesk user ids saved for these ``(platform, author id)`` (``save_requester``):
        the people whose user was found again or re-created, whom ``external_id`` would not find."""
        by_pk = {requester_pk(helpdesk, platform, author_id): (platform, author_id) for platform, author_id in authors}
        items = self._batch_get([{"pk": _s(pk), "sk": _s("REQUESTER")} for pk in by_pk], "could not look up requesters")
        return {by_pk[item["pk"]["S"]]: item["user_id"]["S"] for item in items}

    def _batch_get(self, keys: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
        """Every item of ``keys`` that exists (``BatchGetItem``, 100 keys a request, consistent)."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table_name: {"Keys": keys[start : start + 100], "ConsistentRead": True}}
            while request:
                try:
                    response = self._client.batch_get_item(RequestItems=request)
                except Exception as exc:
                    raise self._failure(what, exc) from exc
                items.extend(response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or {}
        return items

    # --- bulk intents (``sync/batch.py``) --------------------------------------------------------

    def get_bulk_intent(self, key: str) -> dict[str, Any] | None:
        """What a batch stage recorded before a bulk request (None: nothing yet)."""
        try:
            response = self._client.get_item(
                TableName=self.table_name, Key={"pk": _s(f"BULK#{key}"), "sk": _s("INTENT")}, ConsistentRead=True
            )
        except Exception as exc:
            raise self._failure("could not read a bulk intent", exc) from exc
        item = response.get("Item")
        return json.loads(item["state"]["S"]) if item else None

    def save_bulk_intent(self, key: str, state: dict[str, Any], *, keep_seconds: float = 2 * 86400) -> None:
        """Record (or overwrite) a bulk intent; it expires by itself after ``keep_seconds``."""
        item = {
            "pk": _s(f"BULK#{key}"),
            "sk": _s("INTENT"),
            "item_type": _s("bulk_intent"),
            "state": _s(json.dumps(state, separators=(",", ":"))),
            "expires_at": _n(int(time.time() + keep_seconds)),
        }
        self._write("could not save a bulk intent", lambda: self._client.put_item(TableName=self.table_name, Item=item))

    # --- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _failure(what: str, exc: Exception) -> Exception:
        """The store's exception for a failed DynamoDB call: permanent or worth retrying."""
        if condition_failed(exc):
            return ConversationConflict(what)
        code = error_code(exc)
        if code == "ValidationException":  # this item's write can never succeed
            return UnstorableConversation(f"{what}: {code}: {exc}"[:500])
        return StoreUnavailable(f"{what}: {code or exc}")

    def _write(self, what: str, call: Any) -> None:
        try:
            call()
        except Exception as exc:
            raise self._failure(what, exc) from exc
