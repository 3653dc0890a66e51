"""Where crisis detection keeps its state: in the one DynamoDB table, or in memory.

Layout in the table (``pk`` / ``sk``), all under the receiving account's partition::

    CRISIS#<account> / W#<quarter hour, ISO>#<page>   the quarter hour's complaints, one attribute each (TTL: the history)
    CRISIS#<account> / INCIDENT#<crisis id>            one crisis: counts, centroid (bounded)
    CRISIS#<account> / LOCK                            a short lock: one crisis start at a time

Complaints are written a stream batch at a time, on the page of the batch's newest quarter hour
(``batch_bucket``): one update per 100 complaints sets each complaint's attribute ``e:<platform>#<message id>`` (a pure function of
the message, so a redelivered batch meets the same attributes; ``if_not_exists`` keeps what
they hold), and the update's ``ALL_OLD`` answer says which of them were there before: only the
others count. A page
holds at most ``PAGE_ENTRIES`` complaints (about 150 bytes each: no text, no author), then the
next page takes over. An active crisis carries ``gsi1pk = CRISIS#active``: ``active()`` lists
every account's.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.crisis.model import Crisis, Origin, Status
from chalicelib.crisis.similarity import Centroid
from chalicelib.crisis.window import BUCKET_SECONDS, WindowEntry
from chalicelib.store.ledger import Leases, Ledger
from chalicelib.store.table import AUTHOR_INDEX, StoreUnavailable, condition_failed, error_code

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

INDEX = AUTHOR_INDEX  # the table's one global index (infra/template.json), keys only
ACTIVE_INDEX_PK = "CRISIS#active"
ENDED_TTL_SECONDS = 30 * 86400  # an ended crisis is kept a month (for reports), then expires
LOCK_SK = "LOCK"
_LAST_KEY = "W#~"  # sorts after every window page ("~" follows the digits)
ENTRY_PREFIX = "e:"
PAGE_ENTRIES = 300  # complaints a window page holds (about 150 bytes each: far under DynamoDB's 400 KB)
WRITE_ENTRIES = 100  # complaints one update sets (its expression stays far under 4 KB)
MARK_ENTRIES = 40  # complaints one conditional update marks (two conditions each: under 4 KB too)


def batch_bucket(entries: Sequence[WindowEntry]) -> int:
    """The quarter hour whose page takes a batch's complaints: its newest complaint's. Pages are
    read from the quarter hour of ``since`` on, so a complaint on a later quarter hour's page is read
    wherever its own time falls, and a batch across a quarter hour costs one write, not two. A
    redelivered batch (the same records) finds the same page, so its complaints count nothing."""
    return int(max(entry.created_at for entry in entries) // BUCKET_SECONDS)


class CrisisStoreUnavailable(Exception):
    """DynamoDB failed, throttled or refused a crisis call (after the SDK's own retries)."""


class CrisisStore(Protocol):
    """What the detector needs from its storage (DynamoDB in Lambda, memory in tests and tools)."""

    def record_many(self, account_id: str, entries: Sequence[WindowEntry], *, keep_seconds: float) -> set[str]:
        """Store observed complaints (kept ``keep_seconds`` past their quarter hour); the keys of
        those that were not stored before. Sets each one's ``home``."""

    def entries(self, account_id: str, *, since: float) -> list[WindowEntry]:
        """The account's complaints written (platform time) at or after ``since``."""

    def mark_many(self, account_id: str, entries: Sequence[WindowEntry], crisis_id: str) -> set[str]:
        """Make stored complaints (``home`` set) members of a crisis unless they are members of
        one already; the keys of those this call made members."""

    def create(self, crisis: Crisis) -> bool:
        """Store a new crisis unless one with its id exists. True if this call created it."""

    def get(self, account_id: str, crisis_id: str) -> Crisis | None:
        """One crisis, active or ended."""

    def active(self, account_id: str | None = None) -> list[Crisis]:
        """Active crises of one account, or of every account."""

    def add_members(self, account_id: str, crisis_id: str, counts: Mapping[str, int], *, seen_at: float) -> Crisis | None:
        """Count complaints that joined (per platform); ``seen_at`` becomes the crisis's last activity."""

    def end(self, account_id: str, crisis_id: str, *, ended_at: float, reason: str, quiet_before: float | None) -> Crisis | None:
        """End an active crisis (only if its last complaint is older than ``quiet_before``, when given).
        The ended crisis if this call ended it, else None."""

    def attach_ticket(self, account_id: str, crisis_id: str, ticket_id: str) -> bool:
        """Record the crisis's ticket unless it has one. True if this call recorded it."""

    def acquire(self, account_id: str, owner: str, *, seconds: float, now: float) -> bool:
        """Take the account's start lock (free, or held past its time). True if taken."""

    def release(self, account_id: str, owner: str) -> None:
        """Give the start lock back (only if ``owner`` still holds it)."""


# --- in memory --------------------------------------------------------------------------


class MemoryCrisisStore:
    """The same contract in memory, thread-safe: for tests, tools and one-process replays."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, WindowEntry]] = {}
        self._crises: dict[tuple[str, str], Crisis] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    def record_many(self, account_id: str, entries: Sequence[WindowEntry], *, keep_seconds: float) -> set[str]:
        with self._lock:
            held = self._entries.setdefault(account_id, {})
            new = set()
            home = window_sk(batch_bucket(entries) * BUCKET_SECONDS, 0) if entries else ""
            for entry in entries:
                entry.home = home
                if entry.key not in held:
                    held[entry.key] = _copy(replace(entry, text=""))  # as in the table: no text
                    new.add(entry.key)
            return new

    def entries(self, account_id: str, *, since: float) -> list[WindowEntry]:
        with self._lock:
            return [_copy(e) for e in self._entries.get(account_id, {}).values() if e.created_at >= since]

    def mark_many(self, account_id: str, entries: Sequence[WindowEntry], crisis_id: str) -> set[str]:
        with self._lock:
            marked = set()
            for entry in entries:
                held = self._entries.get(account_id, {}).get(entry.key)
                if held is not None and not held.crisis_id:
                    held.crisis_id = crisis_id
                    marked.add(entry.key)
            return marked

    def create(self, crisis: Crisis) -> bool:
        with self._lock:
            key = (crisis.account_id, crisis.crisis_id)
            if key in self._crises:
                return False
            self._crises[key] = _copy_crisis(crisis)
            return True

    def get(self, account_id: str, crisis_id: str) -> Crisis | None:
        with self._lock:
            crisis = self._crises.get((account_id, crisis_id))
            return _copy_crisis(crisis) if crisis else None

    def active(self, account_id: str | None = None) -> list[Crisis]:
        with self._lock:
            return [
                _copy_crisis(c)
                for (account, _), c in self._crises.items()
                if c.status is Status.ACTIVE and account_id in (None, account)
            ]

    def add_members(self, account_id: str, crisis_id: str, counts: Mapping[str, int], *, seen_at: float) -> Crisis | None:
        with self._lock:
            crisis = self._crises.get((account_id, crisis_id))
            if crisis is None:
                return None
            for platform, count in counts.items():
                crisis.platform_counts[platform] = crisis.platform_counts.get(platform, 0) + count
                crisis.size += count
            crisis.last_seen = seen_at
            return _copy_crisis(crisis)

    def end(self, account_id: str, crisis_id: str, *, ended_at: float, reason: str, quiet_before: float | None) -> Crisis | None:
        with self._lock:
            crisis = self._crises.get((account_id, crisis_id))
            if crisis is None or crisis.status is not Status.ACTIVE:
                return None
            if quiet_before is not None and crisis.last_seen >= quiet_before:
                return None
            crisis.status, crisis.ended_at, crisis.end_reason = Status.ENDED, ended_at, reason
            return _copy_crisis(crisis)

    def attach_ticket(self, account_id: str, crisis_id: str, ticket_id: str) -> bool:
        with self._lock:
            crisis = self._crises.get((account_id, crisis_id))
            if crisis is None or crisis.ticket_id:
                return False
            crisis.ticket_id = ticket_id
            return True

    def acquire(self, account_id: str, owner: str, *, seconds: float, now: float) -> bool:
        with self._lock:
            holder = self._locks.get(account_id)
            if holder and holder[0] != owner and holder[1] > now:
                return False
            self._locks[account_id] = (owner, now + seconds)
            return True

    def release(self, account_id: str, owner: str) -> None:
        with self._lock:
            if self._locks.get(account_id, ("", 0.0))[0] == owner:
                del self._locks[account_id]


def _copy(entry: WindowEntry) -> WindowEntry:
    return WindowEntry(**vars(entry))


def _copy_crisis(crisis: Crisis) -> Crisis:
    copy = Crisis(**vars(crisis))
    copy.platform_counts = dict(crisis.platform_counts)
    return copy


# --- DynamoDB ---------------------------------------------------------------------------


def account_pk(account_id: str) -> str:
    """Partition key of an account's crisis state."""
    return f"CRISIS#{account_id}"


def iso_ms(epoch: float) -> str:
    """A sortable UTC time with milliseconds, e.g. ``2015-02-22T16:03:12.000Z``."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def window_sk(created_at: float, page: int) -> str:
    """Sort key of a page of a quarter hour's complaints: the quarter hour first, so a window is one key range."""
    return f"W#{iso_ms(created_at // BUCKET_SECONDS * BUCKET_SECONDS)}#{page:03d}"


def entry_attribute(entry: WindowEntry) -> str:
    """The attribute holding a complaint in its page: named after the message, so a repeat sets the same one."""
    return f"{ENTRY_PREFIX}{entry.key}"


def incident_sk(crisis_id: str) -> str:
    """Sort key of a crisis."""
    return f"INCIDENT#{crisis_id}"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: float) -> dict[str, str]:
    return {"N": repr(round(value, 3)) if isinstance(value, float) else str(value)}


def _entry_map(entry: WindowEntry) -> dict[str, Any]:
    value: dict[str, Any] = {"c": _n(entry.created_at), "k": _s(entry.conversation_key), "s": _s(" ".join(sorted(entry.stems)))}
    if entry.language:
        value["l"] = _s(entry.language)
    if entry.crisis_id:
        value["x"] = _s(entry.crisis_id)
    return value


def _entries_from(item: dict[str, Any]) -> list[WindowEntry]:
    found = []
    for name, value in item.items():
        if not name.startswith(ENTRY_PREFIX):
            continue
        platform, _, message_id = name.removeprefix(ENTRY_PREFIX).partition("#")
        fields = value["M"]
        found.append(
            WindowEntry(
                message_id=message_id,
                conversation_key=fields["k"]["S"],
                platform=platform,
                author_id="",
                created_at=float(fields["c"]["N"]),
                stems=frozenset(fields["s"]["S"].split()),
                language=fields.get("l", {}).get("S", ""),
                crisis_id=fields.get("x", {}).get("S"),
                home=item["sk"]["S"],
            )
        )
    return found


def _crisis_from(item: dict[str, Any]) -> Crisis:
    counts = {name.removeprefix("n_"): int(value["N"]) for name, value in item.items() if name.startswith("n_") and "N" in value}
    return Crisis(
        account_id=item["account_id"]["S"],
        crisis_id=item["crisis_id"]["S"],
        origin=Origin(item["origin"]["S"]),
        centroid=Centroid(json.loads(item["centroid"]["S"])),
        started_at=float(item["started_at"]["N"]),
        first_seen=float(item["first_seen"]["N"]),
        last_seen=float(item["last_seen"]["N"]),
        status=Status(item["crisis_status"]["S"]),
        size=int(item.get("size", {}).get("N", 0)),
        platform_counts=counts,
        baseline=float(item.get("baseline", {}).get("N", 0)),
        ticket_id=item.get("ticket_id", {}).get("S"),
        language=item.get("lang", {}).get("S", ""),
        ended_at=float(item["ended_at"]["N"]) if "ended_at" in item else None,
        end_reason=item.get("end_reason", {}).get("S"),
    )


class DynamoCrisisStore:
    """Crisis state in the one table (layout in the module docstring). The client is injected."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self.table_name = table_name
        self._client = client
        self._full_pages: dict[tuple[str, float], int] = {}  # (account, quarter hour) -> the page to write
        # One start at a time per account: an owner lease (``until``, as it has always been called here).
        self._lock = Leases(Ledger(client, table_name, owner="crisis store"), until_attribute="until", item_type="crisis_lock")

    def _call(self, what: str, method: str, **request: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, method)(TableName=self.table_name, **request)
        except Exception as exc:
            if condition_failed(exc):
                raise
            raise CrisisStoreUnavailable(f"crisis store could not {what}: {error_code(exc) or exc}") from exc

    def _conditional(self, what: str, method: str, **request: Any) -> dict[str, Any] | None:
        """A conditional write: its answer, or None when the condition failed."""
        try:
            return self._call(what, method, **request)
        except Exception as exc:
            if condition_failed(exc):
                return None
            raise

    def _pages(self, what: str, **query: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._call(what, "query", **query)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def record_many(self, account_id: str, entries: Sequence[WindowEntry], *, keep_seconds: float) -> set[str]:
        new: set[str] = set()
        group = list({entry.key: entry for entry in entries}.values())  # a message twice in one update: two paths overlapping
        if not group:
            return new
        bucket = batch_bucket(group)
        for start in range(0, len(group), WRITE_ENTRIES):
            new |= self._append(account_id, bucket * BUCKET_SECONDS, group[start : start + WRITE_ENTRIES], keep_seconds)
        return new

    def _append(self, account_id: str, bucket: float, entries: list[WindowEntry], keep_seconds: float) -> set[str]:
        """One update of a quarter hour's page (the next page once it is full); the keys new to it."""
        names = {f"#e{i}": entry_attribute(entry) for i, entry in enumerate(entries)}
        values: dict[str, Any] = {f":e{i}": {"M": _entry_map(entry)} for i, entry in enumerate(entries)}
        # A complaint stored before keeps what it holds (its crisis, if it joined one).
        sets = ", ".join(f"#e{i} = if_not_exists(#e{i}, :e{i})" for i in range(len(entries)))
        page = self._full_pages.get((account_id, bucket), 0)
        while True:
            sk = window_sk(bucket, page)
            answer = self._conditional(
                "record complaints",
                "update_item",
                Key={"pk": _s(account_pk(account_id)), "sk": _s(sk)},
                UpdateExpression=f"SET {sets}, item_type = :type, expires_at = :expires ADD entry_count :count",
                ConditionExpression="attribute_not_exists(entry_count) OR entry_count <= :room",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    **values,
                    ":type": _s("crisis_window"),
                    ":expires": _n(int(bucket + BUCKET_SECONDS + keep_seconds)),
                    ":count": _n(len(entries)),
                    ":room": _n(PAGE_ENTRIES - len(entries)),
                },
                ReturnValues="ALL_OLD",  # the page before: which complaints it held (no read capacity used)
            )
            if answer is not None:
                break
            page += 1  # full: the next page (remembered, so this container asks the full one no more)
            self._full_pages[(account_id, bucket)] = page
        before = answer.get("Attributes", {})
        for entry in entries:
            entry.home = sk
        return {entry.key for i, entry in enumerate(entries) if names[f"#e{i}"] not in before}

    def entries(self, account_id: str, *, since: float) -> list[WindowEntry]:
        items = self._pages(
            "read the window",
            KeyConditionExpression="pk = :pk AND sk BETWEEN :from AND :to",
            ExpressionAttributeValues={
                ":pk": _s(account_pk(account_id)),
                ":from": _s(window_sk(since, 0)),
                ":to": _s(_LAST_KEY),
            },
        )
        return [entry for item in items for entry in _entries_from(item) if entry.created_at >= since]

    def mark_many(self, account_id: str, entries: Sequence[WindowEntry], crisis_id: str) -> set[str]:
        by_home: dict[str, dict[str, WindowEntry]] = defaultdict(dict)
        for entry in entries:
            if entry.home:
                by_home[entry.home][entry.key] = entry
        marked: set[str] = set()
        for home, held in by_home.items():
            group = list(held.values())
            for start in range(0, len(group), MARK_ENTRIES):
                marked |= self._mark_page(account_id, home, group[start : start + MARK_ENTRIES], crisis_id)
        return marked

    def _mark_page(self, account_id: str, home: str, entries: list[WindowEntry], crisis_id: str) -> set[str]:
        """One conditional update: every complaint still no member; when one already is (another
        Lambda marked it), the page is read and the rest are marked."""
        key = {"pk": _s(account_pk(account_id)), "sk": _s(home)}
        while entries:
            names = {f"#e{i}": entry_attribute(entry) for i, entry in enumerate(entries)}
            answer = self._conditional(
                "mark crisis members",
                "update_item",
                Key=key,
                UpdateExpression="SET " + ", ".join(f"#e{i}.x = :crisis" for i in range(len(entries))),
                ConditionExpression=" AND ".join(
                    f"attribute_exists(#e{i}) AND attribute_not_exists(#e{i}.x)" for i in range(len(entries))
                ),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":crisis": _s(crisis_id)},
            )
            if answer is not None:
                return {entry.key for entry in entries}
            page = self._call("read a window page", "get_item", Key=key, ConsistentRead=True).get("Item", {})
            still = [e for e in entries if entry_attribute(e) in page and "x" not in page[entry_attribute(e)]["M"]]
            if len(still) == len(entries):  # nothing changed: the condition failed for another reason
                return set()
            entries = still
        return set()

    def create(self, crisis: Crisis) -> bool:
        item = {
            "pk": _s(account_pk(crisis.account_id)),
            "sk": _s(incident_sk(crisis.crisis_id)),
            "item_type": _s("crisis"),
            "account_id": _s(crisis.account_id),
            "crisis_id": _s(crisis.crisis_id),
            "origin": _s(crisis.origin.value),
            "crisis_status": _s(crisis.status.value),
            "centroid": _s(json.dumps({k: round(v, 4) for k, v in crisis.centroid.weights.items()}, sort_keys=True)),
            "started_at": _n(crisis.started_at),
            "first_seen": _n(crisis.first_seen),
            "last_seen": _n(crisis.last_seen),
            "size": _n(crisis.size),
            **{f"n_{platform}": _n(count) for platform, count in crisis.platform_counts.items()},
            "baseline": _n(float(crisis.baseline)),
            "gsi1pk": _s(ACTIVE_INDEX_PK),
            "gsi1sk": _s(f"{iso_ms(crisis.started_at)}#{crisis.account_id}#{crisis.crisis_id}"),
        }
        if crisis.ticket_id:
            item["ticket_id"] = _s(crisis.ticket_id)
        if crisis.language:
            item["lang"] = _s(crisis.language)
        answer = self._conditional("create a crisis", "put_item", Item=item, ConditionExpression="attribute_not_exists(pk)")
        return answer is not None

    def get(self, account_id: str, crisis_id: str) -> Crisis | None:
        item = self._call(
            "read a crisis",
            "get_item",
            Key={"pk": _s(account_pk(account_id)), "sk": _s(incident_sk(crisis_id))},
            ConsistentRead=True,
        ).get("Item")
        return _crisis_from(item) if item else None

    def active(self, account_id: str | None = None) -> list[Crisis]:
        if account_id is not None:
            items = self._pages(
                "list crises",
                KeyConditionExpression="pk = :pk AND begins_with(sk, :incident)",
                FilterExpression="crisis_status = :active",
                ExpressionAttributeValues={
                    ":pk": _s(account_pk(account_id)),
                    ":incident": _s("INCIDENT#"),
                    ":active": _s(Status.ACTIVE.value),
                },
                ConsistentRead=True,
            )
            return [_crisis_from(item) for item in items]
        keys = self._pages(
            "list active crises",
            IndexName=INDEX,
            KeyConditionExpression="gsi1pk = :active",
            ExpressionAttributeValues={":active": _s(ACTIVE_INDEX_PK)},
        )
        crises = []
        for key in keys:  # few at a time: a crisis is rare
            item = self._call("read a crisis", "get_item", Key={"pk": key["pk"], "sk": key["sk"]}).get("Item")
            if item and item["crisis_status"]["S"] == Status.ACTIVE.value:
                crises.append(_crisis_from(item))
        return crises

    def add_members(self, account_id: str, crisis_id: str, counts: Mapping[str, int], *, seen_at: float) -> Crisis | None:
        names = {f"#p{i}": f"n_{platform}" for i, platform in enumerate(counts)}
        values: dict[str, Any] = {f":p{i}": _n(count) for i, count in enumerate(counts.values())}
        adds = ", ".join(["#size :size", *(f"{name} :{name[1:]}" for name in names)])
        answer = self._conditional(
            "count crisis members",
            "update_item",
            Key={"pk": _s(account_pk(account_id)), "sk": _s(incident_sk(crisis_id))},
            UpdateExpression=f"ADD {adds} SET last_seen = :seen",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#size": "size", **names},
            ExpressionAttributeValues={**values, ":size": _n(sum(counts.values())), ":seen": _n(seen_at)},
            ReturnValues="ALL_NEW",
        )
        return _crisis_from(answer["Attributes"]) if answer else None

    def end(self, account_id: str, crisis_id: str, *, ended_at: float, reason: str, quiet_before: float | None) -> Crisis | None:
        condition = "crisis_status = :active"
        values = {
            ":active": _s(Status.ACTIVE.value),
            ":ended": _s(Status.ENDED.value),
            ":at": _n(ended_at),
            ":reason": _s(reason),
            ":expires": _n(int(ended_at + ENDED_TTL_SECONDS)),
        }
        if quiet_before is not None:
            condition += " AND last_seen < :quiet"
            values[":quiet"] = _n(quiet_before)
        answer = self._conditional(
            "end a crisis",
            "update_item",
            Key={"pk": _s(account_pk(account_id)), "sk": _s(incident_sk(crisis_id))},
            UpdateExpression="SET crisis_status = :ended, ended_at = :at, end_reason = :reason, expires_at = :expires"
            " REMOVE gsi1pk, gsi1sk",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return _crisis_from(answer["Attributes"]) if answer else None

    def attach_ticket(self, account_id: str, crisis_id: str, ticket_id: str) -> bool:
        answer = self._conditional(
            "attach a ticket",
            "update_item",
            Key={"pk": _s(account_pk(account_id)), "sk": _s(incident_sk(crisis_id))},
            UpdateExpression="SET ticket_id = :ticket",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ticket_id)",
            ExpressionAttributeValues={":ticket": _s(ticket_id)},
        )
        return answer is not None

    def acquire(self, account_id: str, owner: str, *, seconds: float, now: float) -> bool:
        try:
            return self._lock.acquire(
                self._lock_key(account_id), owner, now=now, until=now + seconds, expires_at=int(now + seconds + 3600)
            )
        except StoreUnavailable as exc:
            raise CrisisStoreUnavailable(f"crisis store could not take the start lock: {exc}") from exc

    def release(self, account_id: str, owner: str) -> None:
        try:
            self._lock.release(self._lock_key(account_id), owner)
        except StoreUnavailable as exc:
            raise CrisisStoreUnavailable(f"crisis store could not release the start lock: {exc}") from exc

    @staticmethod
    def _lock_key(account_id: str) -> dict[str, dict[str, str]]:
        return {"pk": _s(account_pk(account_id)), "sk": _s(LOCK_SK)}
