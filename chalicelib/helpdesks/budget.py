"""A request budget for the helpdesk, shared by every concurrent Lambda through the one table.

The helpdesk's rate limits are per account (Zendesk: 200-2,500 requests a minute by plan,
ticket updates 100 a minute, ``users/create_or_update`` 1 a second; Freshdesk likewise per
plan), shared with every other integration. ``RateBudget.acquire`` hands out requests so
the bridge never takes more than ``share`` of a limit in any period, however many Lambdas
run; ``observe`` learns from the helpdesk's answers (rate headers, 429s). Design, the
proof that it never over-grants, and what it costs in writes: ``docs/budget.md``.

Layout: one item per helpdesk, ``BUDGET#<helpdesk>`` / ``BUDGET``, ``item_type = budget``
(the ticket sync reads only ``message`` items, so these stream records are skipped). Per
bucket it holds ``empty_at_<bucket>`` (the bucket's state, below), ``paused_until_<bucket>``
and ``strikes_<bucket>`` (a 429's pause and the backoff count).

Each bucket is a token bucket stored as one number, the moment it was (virtually) empty:
it holds ``min(capacity, (now - empty_at) * rate)`` tokens. Taking ``n`` is one conditional
``UpdateItem``: ``empty_at += n / rate`` when ``now - capacity / rate <= empty_at <= now -
n / rate`` (enough tokens, none beyond capacity), or ``empty_at = now - capacity / rate + n /
rate`` when it is older (a full bucket). DynamoDB applies the condition and the change
atomically, so concurrent writers can only find the condition false and try again, never
both take the same tokens. A request of a sub-bucket (ticket updates, user creations) also
takes the same number from the overall bucket, in the same write.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.http import parse_retry_after
from chalicelib.store.table import condition_failed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

OVERALL = "overall"  # every request to the helpdesk account
UPDATES = "updates"  # ticket updates (Zendesk); ticket creates and updates (Freshdesk)
USER_CREATES = "user_creates"  # Zendesk users/create_or_update

ITEM_TYPE = "budget"
_BUCKET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A 429 about one ticket or one user (Zendesk's per-ticket and per-user update limits, plain
# text): only that request waits; pausing every Lambda would stall the whole account.
_ONE_ENTITY_LIMIT = re.compile(rb"this ticket|single unique user", re.IGNORECASE)
_ENDPOINT_HEADER = "zendesk-ratelimit-"
_ITEM_TTL_SECONDS = 86_400  # an idle helpdesk's item goes away; it holds nothing worth keeping
_MAX_CONFLICTS = 8  # lost races in a row before backing off a little

# Per-minute limits when the environment names none: Zendesk Professional and Freshdesk Pro
# (``../shared/research/facts-turn2.md`` §1.3-1.4, §5). None: no limit of its own.
PLAN_DEFAULTS: dict[str, dict[str, int | None]] = {
    "zendesk": {OVERALL: 400, UPDATES: 100, USER_CREATES: 60},
    "freshdesk": {OVERALL: 400, UPDATES: 160, USER_CREATES: None},
}
_ENV_LIMITS = {
    OVERALL: "HELPDESK_RATE_PER_MINUTE",
    UPDATES: "HELPDESK_UPDATES_PER_MINUTE",
    USER_CREATES: "HELPDESK_USER_CREATES_PER_MINUTE",
}
DEFAULT_SHARE = 0.8
DEFAULT_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Bucket:
    """One of the account's limits: ``limit`` requests per ``period_seconds``."""

    name: str
    limit: int
    period_seconds: float = 60.0


def buckets_from_env(helpdesk: str, environ: Mapping[str, str] | None = None) -> list[Bucket]:
    """The buckets of ``helpdesk`` from ``HELPDESK_RATE_PER_MINUTE``,
    ``HELPDESK_UPDATES_PER_MINUTE`` and ``HELPDESK_USER_CREATES_PER_MINUTE`` (0 or empty: no
    limit of its own), else ``PLAN_DEFAULTS``. ``HELPDESK_RATE_PER_MINUTE=0``: no budget at all
    (an empty list)."""
    env = os.environ if environ is None else environ
    defaults = PLAN_DEFAULTS.get(helpdesk, PLAN_DEFAULTS["zendesk"])
    found: list[Bucket] = []
    for name, variable in _ENV_LIMITS.items():
        raw = env.get(variable)
        limit = defaults.get(name) if raw is None else (int(raw) if raw.strip() else 0)
        if limit is not None and limit < 0:
            raise ValueError(f"{variable} must be a number of requests per minute, not {limit}")
        if limit:
            found.append(Bucket(name, limit))
    if not any(bucket.name == OVERALL for bucket in found):
        return []
    return found


def share_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``HELPDESK_RATE_SHARE``: the fraction of each limit the bridge may use (default 0.8)."""
    env = os.environ if environ is None else environ
    return float(env.get("HELPDESK_RATE_SHARE") or DEFAULT_SHARE)


def wait_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``HELPDESK_BUDGET_WAIT_SECONDS``: how long a request may wait for the budget before it
    fails as a 429 would (default 5)."""
    env = os.environ if environ is None else environ
    return float(env.get("HELPDESK_BUDGET_WAIT_SECONDS") or DEFAULT_WAIT_SECONDS)


def bucket_for(helpdesk: str, method: str, path: str) -> str:
    """The bucket a request to ``helpdesk`` counts in, besides the overall one."""
    path = path.split("?", 1)[0].rstrip("/")
    method = method.upper()
    if helpdesk == "zendesk":
        if method == "PUT" and re.fullmatch(r"/api/v2/tickets/(\d+|update_many)(\.json)?", path):
            return UPDATES
        if method == "POST" and re.fullmatch(r"/api/v2/users/create_or_update(\.json)?", path):
            return USER_CREATES
    if helpdesk == "freshdesk" and method in ("POST", "PUT"):
        if re.fullmatch(r"/api/v2/tickets(/\d+(/(notes|reply))?)?", path):
            return UPDATES
    return OVERALL


@dataclass(frozen=True)
class BucketFigures:
    """One bucket's use in this container since the last ``take_figures``, for the metrics."""

    used: float  # requests sent over the bridge's budget for one period (``share * limit``)
    waited_seconds: float  # time callers spent in ``acquire``, in all
    longest_wait_seconds: float
    refused: int  # acquisitions that gave up
    unused: int  # tokens taken ahead that expired before a request used them (chunks too big)


@dataclass
class BucketUsage:
    """What this container did with one bucket since the last ``take_figures``."""

    requests: int = 0  # tokens handed to callers: requests sent
    unused: int = 0  # tokens taken from the shared bucket that expired unused
    waited_seconds: float = 0.0  # time callers spent in ``acquire``, in all
    longest_wait_seconds: float = 0.0
    refused: int = 0  # acquisitions that gave up after ``wait_up_to``


@dataclass(frozen=True)
class _Rate:
    """A bucket's token rate: ``per_second`` refill, at most ``capacity`` tokens held."""

    per_second: float
    capacity: float


@dataclass
class _Lot:
    """Tokens this container holds, usable from ``valid_from`` until ``valid_until``."""

    tokens: int
    valid_from: float
    valid_until: float


class RateBudget:
    """Requests per bucket, shared by every Lambda through one DynamoDB item.

    ``buckets``: the account's limits; ``share``: the fraction of each the bridge may use.
    Guarantee: in any ``period_seconds`` the bridge sends at most ``share * limit`` requests
    of a bucket, given clocks that agree (Lambda's are NTP-synced). To get there the shared
    bucket holds at most ``burst_seconds`` of traffic and refills at ``(share * limit -
    capacity) / (period + hold_seconds)``: a window sees at most one full bucket plus its refill,
    and a token may be used up to ``hold_seconds`` after it was taken.

    Writes: a container that needs tokens takes a chunk at once (its own demand over the last
    ``hold_seconds``, at most ``max_chunk``) and hands them out locally for ``hold_seconds``,
    so at volume one write serves several requests; a lone request costs one write.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb_client: DynamoDBClient,
        *,
        helpdesk: str,
        buckets: list[Bucket],
        share: float = DEFAULT_SHARE,
        wait_up_to: float = DEFAULT_WAIT_SECONDS,
        burst_seconds: float = 3.0,
        hold_seconds: float = 2.0,
        max_chunk: int = 10,
        lookahead_seconds: float = 5.0,
        backoff_seconds: float = 5.0,
        max_backoff_seconds: float = 60.0,
        unknown_reset_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        names = [bucket.name for bucket in buckets]
        if OVERALL not in names or len(set(names)) != len(names) or not all(_BUCKET_NAME.match(n) for n in names):
            raise ValueError(f"buckets need one {OVERALL!r} and distinct lower-case names, not {names}")
        self.table_name = table_name
        self._client = dynamodb_client
        self.helpdesk = helpdesk
        self.share = share
        self.wait_up_to = wait_up_to  # what a request sent through ``helpdesks.outcomes`` waits at most
        self.burst_seconds = burst_seconds
        self.hold_seconds = hold_seconds
        self.max_chunk = max_chunk
        self.lookahead_seconds = lookahead_seconds
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.unknown_reset_seconds = unknown_reset_seconds
        self._clock = clock
        self._sleep = sleep
        self._buckets = {bucket.name: bucket for bucket in buckets}
        self._limits = {bucket.name: bucket.limit for bucket in buckets}  # lowered by what the account says
        self._rates = {name: self._rate(name) for name in self._buckets}
        self._lock = threading.Lock()
        self._lots: dict[str, list[_Lot]] = {name: [] for name in self._buckets}
        self._recent: dict[str, deque[tuple[float, int]]] = {name: deque() for name in self._buckets}
        self._known: dict[str, Any] = {}  # the item as last seen (a floor: the real one is never behind it)
        self.usage: dict[str, BucketUsage] = {name: BucketUsage() for name in self._buckets}
        self.writes = 0  # UpdateItem calls, conditional failures included
        self.conflicts = 0  # of those, the ones whose condition was false

    @classmethod
    def from_env(cls, table_name: str, dynamodb_client: DynamoDBClient, *, helpdesk: str) -> RateBudget | None:
        """The budget the environment describes (``buckets_from_env``, ``share_from_env``,
        ``wait_from_env``); None when ``HELPDESK_RATE_PER_MINUTE=0`` turns it off."""
        buckets = buckets_from_env(helpdesk)
        if not buckets:
            return None
        return cls(
            table_name, dynamodb_client, helpdesk=helpdesk, buckets=buckets, share=share_from_env(), wait_up_to=wait_from_env()
        )

    # --- taking requests -----------------------------------------------------------------

    def bucket_of(self, method: str, path: str) -> str:
        """The bucket a request counts in (``bucket_for``), for ``acquire`` and ``observe``."""
        return bucket_for(self.helpdesk, method, path)

    def acquire(self, bucket: str = OVERALL, cost: int = 1, *, wait_up_to: float) -> bool:
        """Take ``cost`` requests of ``bucket`` (and of the overall bucket), waiting at most
        ``wait_up_to`` seconds. False: not within that time (nothing taken); the caller backs
        off or parks, ``retry_after`` says for how long. A bulk request (100 tickets in one
        ``create_many``) costs 1. A bucket without a limit of its own counts in the overall
        one only."""
        charged = [OVERALL] if bucket == OVERALL or bucket not in self._buckets else [bucket, OVERALL]
        for name in charged:
            if not 1 <= cost <= int(self._rates[name].capacity):
                raise ValueError(f"cost {cost} is more than the {name!r} bucket can ever grant at once")
        started = self._clock()
        deadline = started + max(0.0, wait_up_to)
        conflicts = 0
        while True:
            now = self._clock()
            with self._lock:
                if self._take_local(charged, cost, now):
                    self._count(bucket, started, now, refused=False)
                    return True
                missing = {name: cost - self._held(name, now, ahead=True) for name in charged}
                missing = {name: need for name, need in missing.items() if need > 0}
                ready_by = {name: self._ready_at(name, need, now) for name, need in missing.items()}
                # Tokens already reserved, not usable yet: when ``cost`` of them are.
                ready_by[""] = max(self._usable_at(name, cost, now) for name in charged)
            ready = max(ready_by.values())
            if ready > deadline:  # the item only moves forward: it will not come sooner
                with self._lock:
                    self._count(bucket, started, now, refused=True)
                return False
            if ready - now > self.lookahead_seconds:
                self._sleep(ready - self.lookahead_seconds - now)
                continue
            if not missing:
                self._sleep(max(0.0, ready - now))
                continue
            # Every bucket is taken for the same moment, when the last of them has enough, so
            # none of the tokens expires waiting for another bucket's.
            at = max(now, max(ready_by[name] for name in missing))
            latest = min(deadline, now + self.lookahead_seconds, at + self.hold_seconds if len(missing) > 1 else math.inf)
            try:
                use_at = self._take_shared(missing, now, at=at, latest=latest)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("helpdesk budget unavailable, request held back: %s", exc)
                with self._lock:
                    self._count(bucket, started, now, refused=True)
                return False
            if use_at is None:
                conflicts += 1
                if conflicts >= _MAX_CONFLICTS:  # many Lambdas racing for the same tokens
                    self._sleep(min(0.05 * conflicts, max(0.0, deadline - now)))
                continue
            conflicts = 0
            if use_at > now:
                self._sleep(use_at - now)

    def retry_after(self, bucket: str = OVERALL, cost: int = 1) -> float:
        """Seconds until ``cost`` requests of ``bucket`` may come free, as far as this container
        knows (no I/O): what a caller refused by ``acquire`` waits before trying again."""
        now = self._clock()
        charged = [name for name in dict.fromkeys((bucket, OVERALL)) if name in self._buckets]
        with self._lock:
            return max(0.0, max(self._ready_at(name, cost, now) for name in charged) - now)

    def _take_local(self, charged: list[str], cost: int, now: float) -> bool:
        for name in charged:
            expired = [lot for lot in self._lots[name] if lot.valid_until <= now]
            self.usage[name].unused += sum(lot.tokens for lot in expired)
            self._lots[name] = [lot for lot in self._lots[name] if lot.valid_until > now and lot.tokens > 0]
        if any(self._held(name, now) < cost for name in charged):
            return False
        for name in charged:
            left = cost
            for lot in self._lots[name]:
                if lot.valid_from <= now and left:
                    used = min(left, lot.tokens)
                    lot.tokens -= used
                    left -= used
            self.usage[name].requests += cost
            self._recent[name].append((now, cost))
        return True

    def _held(self, name: str, now: float, *, ahead: bool = False) -> int:
        """Tokens of ``name`` this container may use now (``ahead``: or once a reservation comes)."""
        return sum(lot.tokens for lot in self._lots[name] if (ahead or lot.valid_from <= now) and now < lot.valid_until)

    def _usable_at(self, name: str, cost: int, now: float) -> float:
        """When ``cost`` of the tokens of ``name`` this container holds are usable (it holds enough)."""
        counted = 0
        for lot in sorted(
            (lot for lot in self._lots[name] if lot.tokens and now < lot.valid_until), key=lambda lot: lot.valid_from
        ):
            counted += lot.tokens
            if counted >= cost:
                return max(now, lot.valid_from)
        return now

    def _demand(self, name: str, now: float) -> int:
        """Tokens of ``name`` this container used in the last ``hold_seconds``."""
        recent = self._recent[name]
        while recent and recent[0][0] < now - self.hold_seconds:
            recent.popleft()
        return sum(count for _, count in recent)

    def _ready_at(self, name: str, need: int, now: float) -> float:
        """When ``need`` tokens of the shared bucket would be ours, from what we know of it."""
        rate = self._rates[name]
        empty_at = self._number(f"empty_at_{name}")
        if empty_at is None:
            return now
        return max(empty_at, now - rate.capacity / rate.per_second) + need / rate.per_second

    def _take_shared(self, missing: dict[str, int], now: float, *, at: float, latest: float) -> float | None:
        """One conditional write taking, for the moment ``at`` (now or later), the tokens of
        every bucket in ``missing``: the time from which they may be used (``at``, or up to
        ``latest`` when others took some meanwhile), or None when the item was not as we
        thought (``_known`` then holds it as it is).

        A bucket's take is a chunk: ``need`` plus this container's demand of the last
        ``hold_seconds`` (at most ``max_chunk``). The first ``need`` must be there by ``latest``;
        the rest may be tokens the bucket only makes later: each is usable from the moment it
        exists until ``hold_seconds`` after, exactly as if taken one by one when it came, so
        the guarantee holds, and a saturated budget costs one write per chunk, not per request.
        """
        sets = ["item_type = :type", "updated_at = :now", "expires_at = :expires"]
        conditions: list[str] = []
        names: dict[str, str] = {}
        values: dict[str, Any] = {
            ":type": {"S": ITEM_TYPE},
            ":now": {"N": _n(now)},
            ":expires": {"N": str(int(now) + _ITEM_TTL_SECONDS)},
        }
        taking: dict[str, int] = {}
        with self._lock:
            for index, (name, need) in enumerate(missing.items()):
                rate = self._rates[name]
                floor = at - rate.capacity / rate.per_second  # an older empty_at is a full bucket at ``at``
                known = self._number(f"empty_at_{name}")
                available = rate.capacity if known is None or known < floor else (at - known) * rate.per_second
                demand = self._demand(name, now)
                # Tokens the bucket has: as many as the demand; tokens it makes later: half as
                # many (held tokens a Lambda's demand does not reach in time are lost to all).
                count = max(
                    need, min(self.max_chunk, int(rate.capacity), need + demand, max(math.floor(available), need + demand // 2))
                )
                taking[name] = count
                step = count / rate.per_second
                attr = f"#e{index}"
                names[attr] = f"empty_at_{name}"
                values[f":lo{index}"] = {"N": _n(floor, up=True)}
                if known is None or known < floor:
                    sets.append(f"{attr} = :fresh{index}")
                    values[f":fresh{index}"] = {"N": _n(floor + step, up=True)}
                    conditions.append(f"(attribute_not_exists({attr}) OR {attr} < :lo{index})")
                else:
                    sets.append(f"{attr} = {attr} + :inc{index}")
                    values[f":inc{index}"] = {"N": _n(step, up=True)}
                    values[f":hi{index}"] = {"N": _n(latest - need / rate.per_second, up=False)}
                    conditions.append(f"({attr} BETWEEN :lo{index} AND :hi{index})")
        self.writes += 1
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=self._key(),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            with self._lock:
                self.conflicts += 1
                self._known = _item_of(exc)
            return None
        with self._lock:
            self._known = dict(response.get("Attributes") or {})
            # Each token is usable from when the bucket made it (not before ``at``) until
            # ``hold_seconds`` after: what the guarantee counts on.
            use_at = at
            for name, count in taking.items():
                per_second = self._rates[name].per_second
                before = (self._number(f"empty_at_{name}") or at) - count / per_second  # empty_at before this take
                for token in range(1, count + 1):
                    exists = max(at, before + token / per_second)
                    self._lots[name].append(_Lot(1, exists, exists + self.hold_seconds))
                use_at = max(use_at, max(at, before + missing[name] / per_second))
        return use_at

    def _count(self, bucket: str, started: float, now: float, *, refused: bool) -> None:
        usage = self.usage[bucket if bucket in self.usage else OVERALL]
        usage.refused += refused
        usage.waited_seconds += now - started
        usage.longest_wait_seconds = max(usage.longest_wait_seconds, now - started)

    # --- learning from the helpdesk's answers ----------------------------------------------

    def observe(self, headers: Mapping[str, str], *, status: int, bucket: str = OVERALL, body: bytes = b"") -> float | None:
        """Learn from one answer of the helpdesk to a request charged to ``bucket``.

        * The account's limit and what remains of it (``X-Rate-Limit`` /
          ``X-Rate-Limit-Remaining``, ``ratelimit-*``, Freshdesk's ``X-RateLimit-*``): a limit
          below the configured one replaces it; fewer remaining than the bridge could take
          before the window resets slows every Lambda down to its share of what remains.
        * ``zendesk-ratelimit-<endpoint>: total=..; remaining=..; resets=..`` on a request of a
          sub-bucket: the same for that bucket (a header resetting later than the bucket's
          period is another kind of limit, e.g. per ticket, and is ignored).
        * 429: every Lambda pauses the bucket for ``Retry-After`` (else the reset the headers
          announce, else an exponential backoff); a 429 about one ticket or user pauses nothing
          shared. Returns the seconds to wait for a 429, else None.

        Writes only when it slows the budget down or pauses it.
        """
        lowered = {key.lower(): value for key, value in headers.items()}
        now = self._clock()
        limit = _integer(lowered, "x-rate-limit", "ratelimit-limit", "x-ratelimit-total")
        remaining = _integer(lowered, "x-rate-limit-remaining", "ratelimit-remaining", "x-ratelimit-remaining")
        reset = parse_retry_after(lowered.get("ratelimit-reset"))
        if limit:
            self._learn_limit(OVERALL, limit)
        pushes: dict[str, float] = {}
        if remaining is not None:
            pushes[OVERALL] = self._slow_down_to(OVERALL, remaining, reset, now)
        endpoint_exhausted: float | None = None
        if bucket != OVERALL and bucket in self._buckets:
            for name, value in lowered.items():
                if not name.startswith(_ENDPOINT_HEADER):
                    continue
                fields = _endpoint_fields(value)
                left, resets = fields.get("remaining"), fields.get("resets")
                if left is None or (resets is not None and resets > self._buckets[bucket].period_seconds):
                    continue
                pushes[bucket] = max(pushes.get(bucket, -math.inf), self._slow_down_to(bucket, int(left), resets, now))
                if left <= 0 and resets is not None:
                    endpoint_exhausted = resets
        pause: float | None = None
        paused_bucket: str | None = None
        if status == 429:
            pause = parse_retry_after(lowered.get("retry-after"))
            if pause is None:
                pause = endpoint_exhausted if endpoint_exhausted is not None else reset
            if _ONE_ENTITY_LIMIT.search(body or b""):
                pause = self.backoff_seconds if pause is None else pause
            elif bucket in self._buckets and bucket != OVERALL and remaining != 0:
                paused_bucket = bucket  # the endpoint's limit, the account still has room
            else:
                paused_bucket = OVERALL
        try:
            if paused_bucket is not None:
                pause = self._pause(paused_bucket, pause, now)
                pushes[paused_bucket] = max(pushes.get(paused_bucket, -math.inf), now + pause)
            for name, target in pushes.items():
                self._push(name, target, now)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("helpdesk budget could not record what the helpdesk said: %s", exc)
        return pause

    def _learn_limit(self, name: str, limit: int) -> None:
        """A limit the helpdesk announces below the configured one replaces it (this container)."""
        if limit >= self._limits[name]:
            return
        configured = self._limits[name]
        with self._lock:
            self._limits[name] = limit
            try:
                self._rates[name] = self._rate(name)
            except ValueError:  # too small to share: keep what we had rather than stop
                self._limits[name] = configured
                return
        logger.warning(
            "helpdesk says its %s limit is %d per period, not the configured %d: using %d", name, limit, configured, limit
        )

    def _slow_down_to(self, name: str, remaining: int, reset: float | None, now: float) -> float:
        """The ``empty_at`` at which the bridge takes at most ``share`` of ``remaining`` before
        the window resets (``reset`` seconds; when unknown, what remains is spread over
        ``unknown_reset_seconds``)."""
        rate = self._rates[name]
        horizon = reset if reset is not None else self.unknown_reset_seconds
        allowed = math.floor(max(0, remaining) * self.share)
        return now + horizon - allowed / rate.per_second

    def _pause(self, name: str, pause: float | None, now: float) -> float:
        """Record a 429's pause on the item (every Lambda sees it); the pause in seconds."""
        item = self._client.get_item(TableName=self.table_name, Key=self._key(), ConsistentRead=True).get("Item") or {}
        paused_until = _number_of(item, f"paused_until_{name}")
        strikes = _number_of(item, f"strikes_{name}") or 0
        recent = paused_until is not None and now - paused_until < self._buckets[name].period_seconds
        strikes = strikes + 1 if recent else 1
        if pause is None:
            pause = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (strikes - 1))
        until = now + pause
        self.writes += 1
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key=self._key(),
                UpdateExpression="SET #p = :until, #s = :strikes, item_type = :type, updated_at = :now, expires_at = :expires",
                ConditionExpression="attribute_not_exists(#p) OR #p < :until",
                ExpressionAttributeNames={"#p": f"paused_until_{name}", "#s": f"strikes_{name}"},
                ExpressionAttributeValues={
                    ":until": {"N": _n(until, up=True)},
                    ":strikes": {"N": str(int(strikes))},
                    ":type": {"S": ITEM_TYPE},
                    ":now": {"N": _n(now)},
                    ":expires": {"N": str(int(now) + _ITEM_TTL_SECONDS)},
                },
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            self.conflicts += 1  # another Lambda paused it for longer already
        logger.warning("helpdesk rate limit (429): %s requests paused for %.1f s", name, pause)
        return pause

    def _push(self, name: str, target: float, now: float) -> None:
        """Move the bucket's ``empty_at`` forward to ``target`` (never back): no tokens before it."""
        known = self._number(f"empty_at_{name}")
        rate = self._rates[name]
        current = now - rate.capacity / rate.per_second if known is None else max(known, now - rate.capacity / rate.per_second)
        if target <= current + 1 / rate.per_second:  # less than one request's difference: not worth a write
            return
        self.writes += 1
        try:
            response = self._client.update_item(
                TableName=self.table_name,
                Key=self._key(),
                UpdateExpression="SET #e = :target, item_type = :type, updated_at = :now, expires_at = :expires",
                ConditionExpression="attribute_not_exists(#e) OR #e < :target",
                ExpressionAttributeNames={"#e": f"empty_at_{name}"},
                ExpressionAttributeValues={
                    ":target": {"N": _n(target, up=True)},
                    ":type": {"S": ITEM_TYPE},
                    ":now": {"N": _n(now)},
                    ":expires": {"N": str(int(now) + _ITEM_TTL_SECONDS)},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            self.conflicts += 1
            item = _item_of(exc)
        else:
            item = dict(response.get("Attributes") or {})
        logger.info("helpdesk budget: %s slowed down by %.1f s", name, target - current)
        with self._lock:
            self._known = dict(item)

    # --- metrics ---------------------------------------------------------------------------

    def take_figures(self) -> tuple[dict[str, BucketFigures], int]:
        """This container's figures per bucket since the last call, and the DynamoDB writes the
        budget made (conditional failures included); counting starts afresh. ``used`` is the
        container's part: the Sum over every container in one period (1 minute) is the fraction
        of the budget the bridge used (``ops.metrics.helpdesk_budget``)."""
        with self._lock:
            usage, self.usage = self.usage, {name: BucketUsage() for name in self._buckets}
            writes, self.writes = self.writes, 0
            self.conflicts = 0
        figures = {
            name: BucketFigures(
                used=counts.requests / (self._limits[name] * self.share),
                waited_seconds=counts.waited_seconds,
                longest_wait_seconds=counts.longest_wait_seconds,
                refused=counts.refused,
                unused=counts.unused,
            )
            for name, counts in usage.items()
        }
        return figures, writes

    # --- helpers ---------------------------------------------------------------------------

    def _rate(self, name: str) -> _Rate:
        """The refill and capacity that keep any period at or under ``share * limit`` (class doc)."""
        period = self._buckets[name].period_seconds
        allowed = self._limits[name] * self.share
        capacity = max(1.0, allowed * self.burst_seconds / period)
        if allowed <= capacity:
            raise ValueError(f"the {name!r} budget ({allowed:g} per {period:g} s) is too small to share")
        return _Rate(per_second=(allowed - capacity) / (period + self.hold_seconds), capacity=capacity)

    def _key(self) -> dict[str, Any]:
        return {"pk": {"S": f"BUDGET#{self.helpdesk}"}, "sk": {"S": "BUDGET"}}

    def _number(self, attribute: str) -> float | None:
        return _number_of(self._known, attribute)


def _n(value: float, *, up: bool | None = None) -> str:
    """A DynamoDB number to the microsecond, rounded the way that grants less."""
    scaled = value * 1_000_000
    rounded = math.ceil(scaled) if up else math.floor(scaled) if up is False else round(scaled)
    return f"{rounded / 1_000_000:.6f}"


def _item_of(exc: ClientError) -> dict[str, Any]:
    """The item a failed conditional write returned (``ReturnValuesOnConditionCheckFailure``)."""
    item: Any = exc.response.get("Item")
    return dict(item) if isinstance(item, dict) else {}


def _number_of(item: Mapping[str, Any], attribute: str) -> float | None:
    value = (item.get(attribute) or {}).get("N")
    return float(value) if value is not None else None


def _integer(headers: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        try:
            return int(headers[name].strip())
        except (KeyError, ValueError):
            continue
    return None


def _endpoint_fields(value: str) -> dict[str, float]:
    """``total=100; remaining=99; resets=41`` as numbers (unreadable parts left out)."""
    fields: dict[str, float] = {}
    for part in value.split(";"):
        key, _, number = part.partition("=")
        try:
            fields[key.strip().lower()] = float(number)
        except ValueError:
            continue
    return fields
