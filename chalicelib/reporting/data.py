"""Reading the table into per-conversation facts: one paginated Scan with a projection.

Only ``CONV#``, ``CRISIS#`` and ``OPS#TOKENS`` partitions are read, and only the attributes
the report uses (never a message's ``raw`` payload nor a complaint's text). Item layouts are the ones ``chalicelib/store.py`` and the agent
replies write: ``MSG#`` messages, ``CONV`` state, ``RESPONSE`` response times,
``REPLY#<helpdesk>#<comment>`` reply ledger entries, ``PARKED#`` / ``ASIDE#`` parked messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.models import Direction, Kind
from chalicelib.store.ingest import message_fields

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

# Read through placeholders: several are DynamoDB reserved words (state, reason, ...).
PROJECTED = (
    "pk",
    "sk",
    "platform",  # platform and direction: messages stored before they were read from ``message``
    "direction",
    "created_at",
    "message",
    "state",
    "ticket_id",
    "first_response_seconds",
    "last_response_at",
    "resolution_seconds",
    "resolved_at",
    "failure_kind",
    "note",
    "reason",
    "parked_at",
    # crises (chalicelib/crisis/store.py) and the latest token check (chalicelib/ops/token_health.py)
    "crisis_id",
    "crisis_status",
    "size",
    "first_seen",
    "last_seen",
    "ended_at",
    "centroid",
    "checked_at",
    "results",
)
# The partitions the report reads: conversations, crises, and the latest token check.
SCANNED_PREFIXES = ("CONV#", "CRISIS#", "OPS#TOKENS")
REPLY_PROBLEM_STATES = frozenset({"failed", "unknown", "retry", "held"})
HELD_KIND = "awaiting_approval"  # a held answer has no failure: it waits for a lead (outbound/approval.py)
SOLVED_STATUSES = frozenset({"solved", "closed"})


def parse_time(value: str | None) -> datetime | None:
    """An ISO time as the table stores it (``...Z``), or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class ParkedFact:
    """A parked message: blocks its conversation (or, ``aside``, is retried out of order)."""

    parked_at: datetime | None
    reason: str
    aside: bool


@dataclass(frozen=True)
class TokenFact:
    """One credential's latest check (``status`` ok, expired, revoked, unreachable)."""

    platform: str
    status: str
    detail: str
    days_left: int | None
    checked_at: datetime | None

    @property
    def failing(self) -> bool:
        return self.status in ("expired", "revoked")


def tokens_from_items(items: Iterable[dict[str, Any]]) -> list[TokenFact]:
    """The latest token check's results (empty when the check never ran)."""
    for item in items:
        if _attribute(item, "pk") == "OPS#TOKENS":
            checked = _number(item, "checked_at")
            at = datetime.fromtimestamp(checked, tz=UTC) if checked is not None else None
            try:
                results = json.loads(_attribute(item, "results") or "[]")
            except json.JSONDecodeError:
                return []
            return [
                TokenFact(str(r.get("platform", "")), str(r.get("status", "")), str(r.get("detail", "")), r.get("days_left"), at)
                for r in results
            ]
    return []


@dataclass(frozen=True)
class ReplyFact:
    """An agent's answer that did not reach the platform (yet): ``state`` failed/unknown/retry,
    or held for a lead's approval."""

    state: str
    failure_kind: str
    note: str
    created_at: datetime | None


@dataclass
class ConversationFacts:
    """What the table says about one conversation."""

    key: str
    platform: str
    private: bool = False
    inbound: list[datetime] = field(default_factory=list)
    outbound: list[datetime] = field(default_factory=list)
    ticket_id: str | None = None
    ticket_status: str | None = None
    first_response_seconds: float | None = None
    last_response_at: datetime | None = None
    # Resolution: recorded seconds, else the ticket's solved time (both slot in once written).
    recorded_resolution_seconds: float | None = None
    solved_at: datetime | None = None
    parked: list[ParkedFact] = field(default_factory=list)
    reply_problems: list[ReplyFact] = field(default_factory=list)

    @property
    def first_inbound(self) -> datetime | None:
        return min(self.inbound) if self.inbound else None

    @property
    def solved(self) -> bool:
        return self.ticket_status in SOLVED_STATUSES

    @property
    def response_seconds(self) -> float | None:
        """First response time: recorded by the agent replies, else the brand's first own
        message on the platform after the customer's first (answered outside the helpdesk)."""
        if self.first_response_seconds is not None:
            return self.first_response_seconds
        first = self.first_inbound
        answers = [moment for moment in self.outbound if first is not None and moment >= first]
        return (min(answers) - first).total_seconds() if answers and first is not None else None

    @property
    def resolution_seconds(self) -> float | None:
        """From the customer's first message to the ticket's solving."""
        if self.recorded_resolution_seconds is not None:
            return self.recorded_resolution_seconds
        first = self.first_inbound
        return (self.solved_at - first).total_seconds() if self.solved_at and first else None

    def waiting_since(self) -> datetime | None:
        """The customer's oldest message with no answer after it (None: nobody waits). A
        conversation with neither a ticket nor a parked message opened no ticket on purpose
        (praise, a bare ``/start``): nobody owes it an answer."""
        if self.solved or not (self.ticket_id or self.parked):
            return None
        answered = max([*self.outbound, *([self.last_response_at] if self.last_response_at else [])], default=None)
        waiting = [moment for moment in self.inbound if answered is None or moment > answered]
        return min(waiting) if waiting else None

    @property
    def label(self) -> str:
        """How an operator finds it: the ticket when there is one, and the conversation key."""
        return f"#{self.ticket_id} · {self.key}" if self.ticket_id else self.key


def _attribute(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if not value:
        return None
    return value.get("S", value.get("N"))


def _number(item: dict[str, Any], name: str) -> float | None:
    value = _attribute(item, name)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def conversations_from_items(items: Iterable[dict[str, Any]]) -> list[ConversationFacts]:
    """Fold the scanned items of ``CONV#`` partitions into one ``ConversationFacts`` each."""
    found: dict[str, ConversationFacts] = {}
    for item in items:
        pk, sk = _attribute(item, "pk") or "", _attribute(item, "sk") or ""
        if not pk.startswith("CONV#"):
            continue
        key = pk.removeprefix("CONV#")
        facts = found.get(key)
        if facts is None:
            # The conversation key's first segment is the platform (models.conversation_key).
            facts = found[key] = ConversationFacts(key=key, platform=key.split(":", 1)[0])
        if sk.startswith("MSG#"):
            _add_message(facts, item)
        elif sk == "CONV":
            state = json.loads(_attribute(item, "state") or "{}")
            facts.ticket_id = state.get("ticket_id") or facts.ticket_id
            facts.ticket_status = state.get("ticket_status")
            facts.solved_at = parse_time(state.get("solved_at")) or facts.solved_at
        elif sk == "RESPONSE":
            facts.first_response_seconds = _number(item, "first_response_seconds")
            facts.last_response_at = parse_time(_attribute(item, "last_response_at"))
            facts.recorded_resolution_seconds = _number(item, "resolution_seconds")
            facts.solved_at = parse_time(_attribute(item, "resolved_at")) or facts.solved_at
        elif sk.startswith("REPLY#"):
            state = _attribute(item, "state") or ""
            if state in REPLY_PROBLEM_STATES:
                facts.reply_problems.append(
                    ReplyFact(
                        state=state,
                        failure_kind=HELD_KIND if state == "held" else _attribute(item, "failure_kind") or "unknown",
                        note=_attribute(item, "note") or "",
                        created_at=parse_time(_attribute(item, "created_at")),
                    )
                )
        elif sk.startswith(("PARKED#", "ASIDE#")):
            facts.parked.append(
                ParkedFact(
                    parked_at=parse_time(_attribute(item, "parked_at")),
                    reason=_attribute(item, "reason") or "",
                    aside=sk.startswith("ASIDE#"),
                )
            )
    return [facts for facts in found.values() if facts.inbound or facts.parked or facts.reply_problems]


def _add_message(facts: ConversationFacts, item: dict[str, Any]) -> None:
    fields = message_fields(item)
    created = parse_time(fields.get("created_at"))
    if created is None:
        return
    if fields.get("direction") == Direction.OUTBOUND.value:
        facts.outbound.append(created)
        return
    facts.inbound.append(created)
    facts.platform = fields.get("platform") or facts.platform
    facts.private = facts.private or fields.get("kind") == Kind.DIRECT_MESSAGE.value


def _is_crisis_page(item: dict[str, Any]) -> bool:
    return item["pk"]["S"].startswith("CRISIS#") and item.get("sk", {}).get("S", "").startswith("W#")


class TableReader:
    """Scans the table (a low-level boto3 DynamoDB client is passed in)."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self.table_name = table_name

    def items(self) -> Iterator[dict[str, Any]]:
        """Every item of the scanned partitions (``SCANNED_PREFIXES``) with the projected attributes, page by page."""
        names = {f"#a{i}": name for i, name in enumerate(PROJECTED)}
        prefixes = {f":p{i}": {"S": prefix} for i, prefix in enumerate(SCANNED_PREFIXES)}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": ", ".join(names),
            "ExpressionAttributeNames": names,
            "FilterExpression": " OR ".join(f"begins_with(#a0, {value})" for value in prefixes),
            "ExpressionAttributeValues": prefixes,
        }
        while True:
            page = self._client.scan(**kwargs)
            for item in page.get("Items", []):
                yield self._whole(item) if _is_crisis_page(item) else item
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _whole(self, item: dict[str, Any]) -> dict[str, Any]:
        """A crisis window page read whole: its complaints are attributes of their own names
        (``e:<platform>#<id>``), which no projection can list."""
        found = self._client.get_item(TableName=self.table_name, Key={"pk": item["pk"], "sk": item["sk"]}).get("Item")
        return found or item

    def conversations(self) -> list[ConversationFacts]:
        return conversations_from_items(self.items())
