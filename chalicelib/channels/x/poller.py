"""Scheduled polling of X (mentions and DMs) into the same store the webhooks feed.

Watermarks live in the one table::

    WATERMARK#<source>#<account> / WATERMARK     since_id (S), since_num (N), updated_at,
                                                  paused_until (rate limit), item_type

Why ``since_num`` as well as ``since_id``: tweet and DM ids are 64-bit snowflakes.
Compared as strings, ``"999..."`` sorts above ``"1000..."`` and ids have grown a digit
before; compared as Python ints they are exact, but the comparison must happen in the
conditional write, not in code, or two overlapping runs could both read 100, and the
slower one (holding 150) overwrite the faster one's 160. DynamoDB numbers keep 38
significant digits, so a 20-digit snowflake in an ``N`` attribute compares exactly, and
``since_num < :new`` makes every write a "max" -- commutative, so no version counter or
read-modify-write is needed: a watermark can never move backwards, whoever writes last.
``since_id`` (the string) is what is sent back to X.

Order of work in ``poll_x``: fetch, save every message (the store drops duplicates;
``ingest.save_batch`` quarantines what DynamoDB refuses for good), and only then
advance the watermark. A crash between the two re-fetches the same tweets next run;
they are dropped by the store's conditional put. A rate limit or any error leaves the
watermark where it was (the messages already saved stay saved).

Watermark items do appear on the table's stream; the ticket sync ignores every item
that is not a message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.channels.x.api import (
    DM_PAGES_PER_RUN,
    MENTION_PAGES_PER_RUN,
    XApiClient,
    XRateLimited,
    newer_than,
    newest_id,
    normalize_dm_events_page,
    normalize_mentions_page,
)
from chalicelib.inbound.intake import save_batch
from chalicelib.models import NormalizedBatch
from chalicelib.store.table import condition_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

SOURCE_X_MENTIONS = "x_mentions"
SOURCE_X_DMS = "x_dm"
# A new install imports one page of history per source, not the whole timeline.
FIRST_RUN_PAGES = 1
# Stop fetching pages when the Lambda has less than this left (one slow page + writes).
RESERVE_SECONDS = 15.0


class _OutOfTime(Exception):
    """The run must end before the Lambda timeout; treated like a rate limit without the pause."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def watermark_pk(source: str, account: str) -> str:
    """Partition key of one source's watermark for one account."""
    return f"WATERMARK#{source}#{account}"


@dataclass(frozen=True)
class Watermark:
    """Where one source's polling stands: everything with an id <= ``since_id`` is stored."""

    since_id: str | None = None
    updated_at: datetime | None = None
    paused_until: datetime | None = None


class Watermarks:
    """Per-(source, account) polling positions in the one table. The client is injected."""

    def __init__(self, table_name: str, dynamodb_client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = dynamodb_client

    def _key(self, source: str, account: str) -> dict[str, Any]:
        return {"pk": {"S": watermark_pk(source, account)}, "sk": {"S": "WATERMARK"}}

    def get(self, source: str, account: str) -> Watermark:
        """The current watermark (``since_id`` None when the source was never polled)."""
        response = self._client.get_item(TableName=self.table_name, Key=self._key(source, account), ConsistentRead=True)
        item = response.get("Item") or {}
        return Watermark(
            since_id=item.get("since_id", {}).get("S"),
            updated_at=_parse_iso(item.get("updated_at", {}).get("S")),
            paused_until=_parse_iso(item.get("paused_until", {}).get("S")),
        )

    def advance(self, source: str, account: str, since_id: str, *, now: datetime) -> bool:
        """Move the watermark up to ``since_id``; never down.

        True if it moved; False if it already stood at or above ``since_id`` (another
        run got further), which is not an error. Clears a rate-limit pause.
        """
        since_id = str(since_id)
        if not since_id.isdigit():
            raise ValueError(f"a watermark is a numeric X id, not {since_id!r}")
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._key(source, account),
                UpdateExpression=(
                    "SET since_id = :id, since_num = :num, updated_at = :now, item_type = :type REMOVE paused_until"
                ),
                ConditionExpression="attribute_not_exists(since_num) OR since_num < :num",
                ExpressionAttributeValues={
                    ":id": {"S": since_id},
                    ":num": {"N": str(int(since_id))},
                    ":now": {"S": _iso(now)},
                    ":type": {"S": "watermark"},
                },
            )
        except Exception as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def pause(self, source: str, account: str, until: datetime, *, now: datetime) -> None:
        """Remember that X refused this source until ``until`` (runs before then skip it)."""
        self._client.update_item(
            TableName=self.table_name,
            Key=self._key(source, account),
            UpdateExpression="SET paused_until = :until, updated_at = :now, item_type = :type",
            ExpressionAttributeValues={
                ":until": {"S": _iso(until)},
                ":now": {"S": _iso(now)},
                ":type": {"S": "watermark"},
            },
        )


@dataclass
class PollReport:
    """What one polling run did.

    ``mentions`` / ``dms``: messages normalized from each source (retweets, group DMs
    and already-seen DM events not counted); ``stored`` were new, ``duplicates`` were
    already in the table (e.g. delivered by the webhook too). ``truncated`` names the
    sources whose page budget ran out before reaching the watermark.
    """

    mentions: int = 0
    dms: int = 0
    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    quarantined: int = 0
    rate_limited_until: datetime | None = None
    truncated: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    advanced: dict[str, str] = field(default_factory=dict)

    @property
    def outcomes(self) -> dict[str, int]:
        """Counters for metrics (same style as the sync and redrive reports)."""
        return {
            "mentions": self.mentions,
            "dms": self.dms,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "quarantined": self.quarantined,
            "rate_limited": int(self.rate_limited_until is not None),
            "truncated": len(self.truncated),
            "interrupted": len(self.interrupted),
        }

    def _limited(self, until: datetime | None) -> None:
        if until is not None and (self.rate_limited_until is None or until > self.rate_limited_until):
            self.rate_limited_until = until


def _save(store: MessageStore, batch: NormalizedBatch, report: PollReport) -> None:
    # A tweet DynamoDB refuses for good is quarantined: left unsaved, it would hold the
    # watermark back and be fetched (and refused) again on every run.
    saved = save_batch(store, batch)
    report.stored += saved.stored
    report.duplicates += saved.duplicates
    report.ignored += batch.ignored
    report.quarantined += saved.quarantined


@dataclass(frozen=True)
class _XSource:
    """What differs between polling mentions and polling DMs."""

    name: str  # the watermark's source, e.g. ``SOURCE_X_MENTIONS``
    label: str  # for logs: "mentions", "DMs"
    pages_per_run: int
    fetch: Callable[[str | None, int], Iterator[dict[str, Any]]]  # (since_id, max_pages) -> pages
    normalize: Callable[[dict[str, Any]], NormalizedBatch]
    # True for DMs: X's DM endpoint has no since_id, so a page reaching down to the
    # watermark means nothing older is new (no budget was cut short).
    pages_reach_the_watermark: bool


@dataclass(frozen=True)
class _PollRun:
    """What every source of one ``poll_x`` run shares."""

    store: MessageStore
    watermarks: Watermarks
    brand_id: str
    now: datetime
    report: PollReport
    out_of_time: Callable[[], bool]


def _poll_source(run: _PollRun, source: _XSource) -> int:
    """Poll one source newer than its watermark; the number of messages normalized."""
    report = run.report
    mark = run.watermarks.get(source.name, run.brand_id)
    if mark.paused_until and mark.paused_until > run.now:
        report.skipped.append(source.name)
        report._limited(mark.paused_until)
        return 0
    since = mark.since_id
    pages = FIRST_RUN_PAGES if since is None else source.pages_per_run
    newest: int | None = None
    reached = source.pages_reach_the_watermark and since is None
    last_page: dict[str, Any] = {}
    count = 0
    normalized = 0
    try:
        for page in source.fetch(since, pages):
            count += 1
            last_page = page
            # X honours since_id on mentions; filtering again costs nothing and keeps a
            # misbehaving proxy from re-counting old tweets.
            fresh = newer_than(page, since)
            if source.pages_reach_the_watermark and len(fresh.get("data") or []) < len(page.get("data") or []):
                reached = True  # this page went down to the watermark: nothing older is new
            batch = source.normalize(fresh)
            _save(run.store, batch, report)
            normalized += len(batch.messages)
            top = newest_id(fresh)
            if top is not None and (newest is None or int(top) > newest):
                newest = int(top)
            if not reached and count < pages and (page.get("meta") or {}).get("next_token") and run.out_of_time():
                raise _OutOfTime  # checked before the next page is requested
    except XRateLimited as exc:
        # Whatever was saved stays saved; the watermark stays put so the rest is
        # fetched after the reset (the saved part again, dropped as duplicates).
        until = exc.reset_at or run.now
        run.watermarks.pause(source.name, run.brand_id, until, now=run.now)
        report._limited(until)
        logger.warning("X %s rate limited", source.label, extra={"until": _iso(until), "pages": count})
        return normalized
    except _OutOfTime:
        # Pages already saved stay saved; the watermark stays, the next run resumes.
        report.interrupted.append(source.name)
        return normalized
    if since is not None and not reached and count >= pages and (last_page.get("meta") or {}).get("next_token"):
        # For mentions only reachable with a budget below X's own 800-mention window.
        report.truncated.append(source.name)
        logger.warning("X %s: page budget reached before the watermark; older ones skipped", source.label)
    if newest is not None and (since is None or newest > int(since)):
        if run.watermarks.advance(source.name, run.brand_id, str(newest), now=run.now):
            report.advanced[source.name] = str(newest)
    return normalized


def poll_x(
    client: XApiClient,
    store: MessageStore,
    watermarks: Watermarks,
    *,
    brand_id: str,
    now: datetime | None = None,
    dms: bool = True,
    remaining_seconds: Callable[[], float] | None = None,
    reserve_seconds: float = RESERVE_SECONDS,
) -> PollReport:
    """Fetch the brand's new mentions (and DMs) from X and store them like webhook events.

    Each source is fetched newer than its watermark, saved with
    ``store.save_messages`` and only then is the watermark advanced to the newest id
    seen. On the first run (no watermark) only one page (the newest 100) is imported.
    A 429 (or a used-up window) pauses that source until X's reset and leaves its
    watermark where it was; the other source still runs. ``XAuthError`` and transport
    errors propagate (the scheduler logs them; the next run tries again).

    ``remaining_seconds`` (the Lambda context's clock) stops paging when less than
    ``reserve_seconds`` are left; like a rate limit, that leaves the watermark alone.
    """
    now = now or datetime.now(timezone.utc)
    brand_id = str(brand_id)
    report = PollReport()

    def out_of_time() -> bool:
        return remaining_seconds is not None and remaining_seconds() < reserve_seconds

    run = _PollRun(store, watermarks, brand_id, now, report, out_of_time)
    mentions = _XSource(
        SOURCE_X_MENTIONS,
        "mentions",
        MENTION_PAGES_PER_RUN,
        fetch=lambda since, pages: client.mentions(brand_id, since, max_pages=pages),
        normalize=lambda page: normalize_mentions_page(page, brand_id=brand_id),
        pages_reach_the_watermark=False,
    )
    report.mentions += _poll_source(run, mentions)
    if dms and not out_of_time():
        direct = _XSource(
            SOURCE_X_DMS,
            "DMs",
            DM_PAGES_PER_RUN,
            fetch=lambda since, pages: client.dm_events(since, max_pages=pages),
            normalize=lambda page: normalize_dm_events_page(page, brand_id=brand_id),
            pages_reach_the_watermark=True,
        )
        report.dms += _poll_source(run, direct)
    elif dms:
        report.interrupted.append(SOURCE_X_DMS)
    return report
