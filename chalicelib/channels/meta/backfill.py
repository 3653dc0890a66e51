"""Find what the webhooks lost: a scheduled Meta backfill.

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
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

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
from chalicelib.inbound.intake import save_batch
from chalicelib.models import Direction, NormalizedBatch, Platform
from chalicelib.ops import metrics as ops_metrics
from chalicelib.store import StoreUnavailable

if TYPE_CHECKING:
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


def _fetch(
    source: str, graph: GraphClient, account: str, since: datetime, opts: _Options
) -> Iterator[tuple[NormalizedBatch, bool]]:
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
    ops_metrics.backfill_only_found(message for message, new in saved.saved if new)


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
                logger.warning(
                    "backfill throttled by Meta", extra={"source": source, "account": account, "until": until.isoformat()}
                )
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
