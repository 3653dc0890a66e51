"""Telegram gap detection.

Telegram offers no history while a webhook is set (``getUpdates`` is refused), so a
lost update cannot be fetched again. ``TelegramGapTracker`` only notices the loss:
``update_id`` grows by one per update, so a jump between two deliveries is a count
of updates Telegram gave up on. It is logged and published as a metric.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.store import condition_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

# Telegram picks a random new update_id after a week without updates: a jump this big
# (either way) is a restart of the sequence, not lost updates.
TELEGRAM_RESTART_JUMP = 100_000


def telegram_updates_key(bot_id: str) -> dict[str, dict[str, str]]:
    """Key of the item holding a bot's last seen ``update_id``."""
    return {"pk": {"S": f"TELEGRAM#{bot_id}"}, "sk": {"S": "LAST_UPDATE"}}


@dataclass(frozen=True)
class UpdateGap:
    """What one ``update_id`` told us.

    ``missing``: update ids skipped since the previous one (0 when none, on the first
    update, after a restart of the sequence, or for a late/duplicate delivery);
    ``previous``: the last id seen before (None if it was not moved); ``restarted``:
    the jump was a sequence restart; ``stale``: the id was not above the last one seen
    (a redelivery, or an update overtaken by a later one on another connection).
    """

    missing: int = 0
    previous: int | None = None
    restarted: bool = False
    stale: bool = False


class TelegramGapTracker:
    """The last ``update_id`` per bot in the one table, advanced atomically.

    One ``UpdateItem`` per update: ``SET last = :id`` on the condition that ``last``
    is absent, below ``:id``, or so far above it that the sequence restarted. The old
    value comes back (``ReturnValues=UPDATED_OLD``), so the gap is computed without a
    read and two concurrent deliveries can never both claim the same range.
    """

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient, *, restart_jump: int = TELEGRAM_RESTART_JUMP) -> None:
        self.table_name = table_name
        self._client = dynamodb_client
        self.restart_jump = restart_jump

    def observe(self, bot_id: str, update_id: int, *, now: datetime | None = None) -> UpdateGap:
        """Record ``update_id`` for ``bot_id`` and say how many updates were skipped before it."""
        if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
            raise ValueError(f"update_id must be a non-negative integer, not {update_id!r}")
        moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=telegram_updates_key(str(bot_id)),
                UpdateExpression="SET #last = :id, updated_at = :now, item_type = :type",
                ConditionExpression="attribute_not_exists(#last) OR #last < :id OR #last > :restart_floor",
                ExpressionAttributeNames={"#last": "last"},
                ExpressionAttributeValues={
                    ":id": {"N": str(update_id)},
                    ":restart_floor": {"N": str(update_id + self.restart_jump)},
                    ":now": {"S": moment.isoformat().replace("+00:00", "Z")},
                    ":type": {"S": "telegram_updates"},
                },
                ReturnValues="UPDATED_OLD",
            )
        except Exception as exc:
            if condition_failed(exc):
                return UpdateGap(stale=True)
            raise
        old = (response.get("Attributes") or {}).get("last", {}).get("N")
        if old is None:
            return UpdateGap()
        previous = int(old)
        if abs(update_id - previous) > self.restart_jump:
            return UpdateGap(previous=previous, restarted=True)
        return UpdateGap(missing=max(0, update_id - previous - 1), previous=previous)

    def record(self, bot_id: str, update_id: int) -> int:
        """Record ``update_id``; the number of update ids missing since the last one seen."""
        return self.observe(bot_id, update_id).missing

    def last(self, bot_id: str) -> int | None:
        """The last ``update_id`` recorded for ``bot_id`` (None if none)."""
        item = self._client.get_item(TableName=self.table_name, Key=telegram_updates_key(str(bot_id)), ConsistentRead=True).get(
            "Item"
        )
        value = (item or {}).get("last", {}).get("N")
        return int(value) if value is not None else None


def record_update_id(store_or_client: Any, bot_id: str, update_id: int, *, table_name: str | None = None) -> int:
    """Record a Telegram ``update_id``; return how many update ids were skipped before it.

    ``store_or_client`` is a ``TelegramGapTracker``, a store (``IngestStore``, ``MessageStore``: its table and
    client are used), or a DynamoDB client with ``table_name``. A positive result is
    a count of updates Telegram gave up delivering: log it and publish it as a
    metric -- they cannot be fetched again while a webhook is set.
    """
    if isinstance(store_or_client, TelegramGapTracker):
        tracker = store_or_client
    elif hasattr(store_or_client, "table_name") and hasattr(store_or_client, "_client"):
        # A store: same table, same injected client.
        tracker = TelegramGapTracker(store_or_client.table_name, store_or_client._client)
    else:
        if not table_name:
            raise ValueError("record_update_id needs table_name when given a bare DynamoDB client")
        tracker = TelegramGapTracker(table_name, store_or_client)
    gap = tracker.observe(str(bot_id), update_id)
    if gap.missing:
        # Lost for good unless they were only overtaken (parallel webhook connections):
        # a late one still arrives and is stored as usual.
        logger.warning(
            "telegram update ids were skipped",
            extra={"bot_id": str(bot_id), "update_id": update_id, "previous": gap.previous, "missing": gap.missing},
        )
    elif gap.restarted:
        logger.info(
            "telegram update_id sequence restarted",
            extra={"bot_id": str(bot_id), "previous": gap.previous, "update_id": update_id},
        )
    return gap.missing
