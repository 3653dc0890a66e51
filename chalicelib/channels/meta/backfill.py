"""Find what the webhooks lost: a scheduled Meta backfill, and Telegram gap detection.

Meta drops a Page/Instagram delivery after retrying for up to 36 hours and
unsubscribes a Messenger app after an hour of failures, so an outage on our side (or
theirs) silently loses comments and messages. ``backfill_meta`` re-reads, per Page
and per Instagram account, what was written since the last run and saves it like a
webhook delivery. The store's conditional put keeps one copy of anything both paths
saw; what *only* the backfill found is counted (``stored_new``): that number is the
webhook loss, and it is what to alarm on.

Sources and their watermarks (``chalicelib.channels.x.poller.Watermarks``, one item each in the
one table, ``WATERMARK#<source>#<account>``): ``meta_feed`` and ``meta_messenger``
per Page, ``ig_comments`` and ``ig_dm`` per Instagram account. The watermark is the
epoch second at which a run started; it is a number, so ``Watermarks.advance`` keeps
it monotonic under overlapping runs. Each run reads from ``watermark - overlap``
(first run: ``now - lookback``): the overlap covers Graph's indexing delay and clock
skew, and costs only conditional puts that write nothing.

Order of work per source: fetch, save every page's messages (``ingest.save_batch``:
what DynamoDB refuses for good is quarantined), and only after every write succeeded
advance the watermark. A crash in between re-reads the same items next run (dropped
as duplicates). A failing account (expired token, throttling, Graph down, DynamoDB
failing) is recorded in the report and leaves its watermark alone; the other
accounts still run.

Telegram offers no history while a webhook is set (``getUpdates`` is refused), so a
lost update cannot be fetched again. ``TelegramGapTracker`` only notices the loss:
``update_id`` grows by one per update, so a jump between two deliveries is a count
of updates Telegram gave up on. It is logged and published as a metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.inbound.intake import save_batch
from chalicelib.models import Direction, NormalizedBatch, Platform
from chalicelib.channels.meta.graph import (
    DEFAULT_MAX_PAGES,
    GraphAuthError,
    GraphClient,
    GraphError,
    GraphRateLimited,
    GraphUnavailable,
    normalize_conversation_messages,
    normalize_feed_comments,
    normalize_ig_media_comments,
)
from chalicelib.store import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.channels.x.poller import Watermarks
    from chalicelib.store import MessageStore

logger = logging.getLogger(__name__)

SOURCE_FB_FEED = "meta_feed"
SOURCE_MESSENGER = "meta_messenger"
SOURCE_IG_COMMENTS = "ig_comments"
SOURCE_IG_DMS = "ig_dm"

DEFAULT_LOOKBACK = timedelta(hours=24)
# Re-read this much before the watermark: Graph may index an item a little after its
# created_time, and Lambda and Meta clocks differ. Duplicates cost a conditional put.
DEFAULT_OVERLAP = timedelta(minutes=15)
# Comments are found through the posts/media they belong to; only posts published in
# this window are read. A new comment on an older post is the webhook's alone.
DEFAULT_POST_WINDOW = timedelta(days=7)
# A throttled source whose answer named no wait is skipped for this long.
DEFAULT_RATE_LIMIT_PAUSE = timedelta(minutes=30)
# Stop starting new sources when the Lambda has less than this left.
RESERVE_SECONDS = 20.0


# --- report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillError:
    """One source of one account that failed this run (its watermark did not move)."""

    account: str
    source: str
    kind: str  # "auth" | "rate_limited" | "unavailable" | "graph" | "store"
    message: str


@dataclass
class BackfillReport:
    """What one backfill run did.

    ``found``: messages the Graph API returned inside the window; ``stored_new``: of
    those, the ones the table did not have -- found *only* by the backfill, i.e.
    webhook deliveries that were lost (``stored_new_inbound``: written by customers);
    ``duplicates``: already stored (the webhook delivered them). ``truncated`` names
    ``source:account`` pairs whose page budget ran out inside the window.
    """

    found: int = 0
    stored_new: int = 0
    duplicates: int = 0
    errors: list[BackfillError] = field(default_factory=list)
    stored_new_inbound: int = 0
    ignored: int = 0
    quarantined: int = 0
    truncated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)
    advanced: dict[str, str] = field(default_factory=dict)
    rate_limited_until: datetime | None = None

    @property
    def outcomes(self) -> dict[str, int]:
        """Counters for metrics (``backfill_meta_<name>``)."""
        return {
            "found": self.found,
            "stored_new": self.stored_new,
            "stored_new_inbound": self.stored_new_inbound,
            "duplicates": self.duplicates,
            "errors": len(self.errors),
            "auth_errors": sum(1 for e in self.errors if e.kind == "auth"),
            "rate_limited": sum(1 for e in self.errors if e.kind == "rate_limited"),
            "quarantined": self.quarantined,
            "truncated": len(self.truncated),
            "interrupted": len(self.interrupted),
        }

    def _limited(self, until: datetime) -> None:
        if self.rate_limited_until is None or until > self.rate_limited_until:
            self.rate_limited_until = until


# --- Meta backfill ---------------------------------------------------------------------


class _OutOfTime(Exception):
    """The run must end before the Lambda timeout; the source keeps its watermark."""


@dataclass
class _Options:
    now: datetime
    lookback: timedelta
    overlap: timedelta
    post_window: timedelta
    max_pages: int
    out_of_time: Callable[[], bool]


def _epoch(moment: datetime) -> str:
    return str(int(moment.timestamp()))


def _since(watermarks: Watermarks, source: str, account: str, opts: _Options) -> tuple[datetime | None, datetime | None]:
    """(read-from time, paused-until) for one source."""
    mark = watermarks.get(source, account)
    if mark.paused_until and mark.paused_until > opts.now:
        return None, mark.paused_until
    if mark.since_id:
        return datetime.fromtimestamp(int(mark.since_id), tz=timezone.utc) - opts.overlap, None
    return opts.now - opts.lookback, None


def _fetch(source: str, graph: GraphClient, account: str, since: datetime, opts: _Options) -> Iterator[tuple[NormalizedBatch, bool]]:
    """(normalized batch, truncated) per post / conversation / media of one source."""
    # Posts and media are found by their own publication time: a comment in the window
    # may sit on a post up to ``post_window`` old.
    container_since = min(since, opts.now - opts.post_window)
    if source == SOURCE_FB_FEED:
        for post in graph.feed(account, since=container_since, comments_since=since, max_pages=opts.max_pages):
            yield normalize_feed_comments(account, post), bool(post.get("_truncated"))
    elif source == SOURCE_MESSENGER:
        for conversation in graph.conversations(account, platform="messenger", since=since, max_pages=opts.max_pages):
            yield normalize_conversation_messages(account, conversation, Platform.MESSENGER), bool(conversation.get("_truncated"))
    elif source == SOURCE_IG_COMMENTS:
        for media in graph.ig_media(account, since=container_since, comments_since=since, max_pages=opts.max_pages):
            yield normalize_ig_media_comments(account, media), bool(media.get("_truncated"))
    elif source == SOURCE_IG_DMS:
        for conversation in graph.conversations(account, platform="instagram", since=since, max_pages=opts.max_pages):
            yield normalize_conversation_messages(account, conversation, Platform.INSTAGRAM), bool(conversation.get("_truncated"))
    else:  # pragma: no cover - programming error
        raise ValueError(f"unknown backfill source {source!r}")


def _save(store: MessageStore, batch: NormalizedBatch, since: datetime, report: BackfillReport) -> None:
    # Only what was written inside the window: older items were either stored long ago
    # or predate the install, and counting them would make "lost by the webhook" lie.
    fresh = [m for m in batch.messages if m.created_at >= since]
    report.ignored += batch.ignored
    # What DynamoDB refuses for good is quarantined: raised, it would fail the source on
    # every run and hold its watermark back forever.
    saved = save_batch(store, NormalizedBatch(messages=fresh, rejected=batch.rejected))
    report.quarantined += saved.quarantined
    report.found += len(saved.saved)
    for message, new in saved.saved:
        if new:
            report.stored_new += 1
            report.stored_new_inbound += int(message.direction is Direction.INBOUND)
            logger.info(
                "backfill found a message the webhook did not deliver",
                extra={"platform": message.platform.value, "account": message.account_id, "message_id": message.message_id},
            )
        else:
            report.duplicates += 1


def _backfill_source(
    graph: GraphClient,
    store: MessageStore,
    watermarks: Watermarks,
    source: str,
    account: str,
    opts: _Options,
    report: BackfillReport,
) -> None:
    label = f"{source}:{account}"
    since, paused_until = _since(watermarks, source, account, opts)
    if since is None:
        report.skipped.append(label)
        if paused_until is not None:
            report._limited(paused_until)
        return
    truncated = False
    for batch, cut in _fetch(source, graph, account, since, opts):
        _save(store, batch, since, report)
        truncated = truncated or cut
        if opts.out_of_time():
            raise _OutOfTime
    if truncated:
        # Advancing anyway: not advancing would re-read the same newest pages forever
        # once the volume exceeds the budget. The truncation is reported (metric).
        report.truncated.append(label)
        logger.warning("backfill page budget ran out inside the window", extra={"source": source, "account": account})
    if watermarks.advance(source, account, _epoch(opts.now), now=opts.now):
        report.advanced[label] = _epoch(opts.now)


def backfill_meta(
    graph: GraphClient,
    store: MessageStore,
    watermarks: Watermarks,
    *,
    page_ids: Iterable[str],
    ig_ids: Iterable[str],
    now: datetime | None = None,
    lookback: timedelta = DEFAULT_LOOKBACK,
    overlap: timedelta = DEFAULT_OVERLAP,
    post_window: timedelta = DEFAULT_POST_WINDOW,
    max_pages: int = DEFAULT_MAX_PAGES,
    rate_limit_pause: timedelta = DEFAULT_RATE_LIMIT_PAUSE,
    remaining_seconds: Callable[[], float] | None = None,
    reserve_seconds: float = RESERVE_SECONDS,
) -> BackfillReport:
    """Re-read every Page's feed comments and Messenger conversations and every Instagram
    account's media comments and DMs written since the last run, and store them.

    Per (source, account): read from the watermark minus ``overlap`` (first run:
    ``now - lookback``), save with ``store.save_messages`` and only then advance the
    watermark to ``now``. ``stored_new`` counts messages the table did not have
    (found only by the backfill). Errors are recorded per source, never raised: an
    expired token (``GraphAuthError``) skips that account's other source too (same
    token); throttling pauses the source until Meta's estimated time to regain
    access; Graph or DynamoDB failures leave the watermark for the next run.
    ``remaining_seconds`` (the Lambda context's clock) stops starting sources when
    fewer than ``reserve_seconds`` are left.
    """
    now = now or datetime.now(timezone.utc)
    report = BackfillReport()

    def out_of_time() -> bool:
        return remaining_seconds is not None and remaining_seconds() < reserve_seconds

    opts = _Options(now, lookback, overlap, post_window, max_pages, out_of_time)
    work: list[tuple[str, tuple[str, ...]]] = [(str(p), (SOURCE_FB_FEED, SOURCE_MESSENGER)) for p in page_ids if str(p).strip()]
    work += [(str(i), (SOURCE_IG_COMMENTS, SOURCE_IG_DMS)) for i in ig_ids if str(i).strip()]
    for account, sources in work:
        for number, source in enumerate(sources):
            label = f"{source}:{account}"
            if out_of_time():
                report.interrupted.append(label)
                continue
            try:
                _backfill_source(graph, store, watermarks, source, account, opts, report)
            except _OutOfTime:
                report.interrupted.append(label)
            except GraphAuthError as exc:
                report.errors.append(BackfillError(account, source, "auth", str(exc)))
                logger.error("backfill: Meta rejected the token", extra={"source": source, "account": account, "code": exc.code})
                # Every source of an account uses the same token: don't spend calls on the rest.
                report.skipped.extend(f"{s}:{account}" for s in sources[number + 1 :])
                break
            except GraphRateLimited as exc:
                until = now + (exc.retry_after or rate_limit_pause)
                report.errors.append(BackfillError(account, source, "rate_limited", str(exc)))
                report._limited(until)
                _pause(watermarks, source, account, until, now)
                logger.warning("backfill throttled by Meta", extra={"source": source, "account": account, "until": until.isoformat()})
            except GraphUnavailable as exc:
                report.errors.append(BackfillError(account, source, "unavailable", str(exc)))
                logger.warning("backfill: Graph API unreachable", extra={"source": source, "account": account})
            except GraphError as exc:
                report.errors.append(BackfillError(account, source, "graph", str(exc)))
                logger.error("backfill: Graph API error", extra={"source": source, "account": account, "code": exc.code})
            except StoreUnavailable as exc:
                report.errors.append(BackfillError(account, source, "store", str(exc)))
                logger.error("backfill: could not write to the table", extra={"source": source, "account": account})
    return report


def _pause(watermarks: Watermarks, source: str, account: str, until: datetime, now: datetime) -> None:
    try:
        watermarks.pause(source, account, until, now=now)
    except Exception:  # the pause is an optimisation; the next run would be refused again anyway
        logger.warning("backfill: could not record a rate-limit pause", extra={"source": source, "account": account})


# --- Telegram gap detection --------------------------------------------------------------

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
            if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException":
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
        item = self._client.get_item(TableName=self.table_name, Key=telegram_updates_key(str(bot_id)), ConsistentRead=True).get("Item")
        value = (item or {}).get("last", {}).get("N")
        return int(value) if value is not None else None


def record_update_id(store_or_client: Any, bot_id: str, update_id: int, *, table_name: str | None = None) -> int:
    """Record a Telegram ``update_id``; return how many update ids were skipped before it.

    ``store_or_client`` is a ``TelegramGapTracker``, a ``MessageStore`` (its table and
    client are used), or a DynamoDB client with ``table_name``. A positive result is
    a count of updates Telegram gave up delivering: log it and publish it as a
    metric -- they cannot be fetched again while a webhook is set.
    """
    if isinstance(store_or_client, TelegramGapTracker):
        tracker = store_or_client
    elif hasattr(store_or_client, "table_name") and hasattr(store_or_client, "_client"):
        # A MessageStore: same table, same injected client.
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
        logger.info("telegram update_id sequence restarted", extra={"bot_id": str(bot_id), "previous": gap.previous, "update_id": update_id})
    return gap.missing
