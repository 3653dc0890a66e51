"""Customers' names where the platform's webhook carries only an id.

Messenger, Instagram Direct and LINE identify a person by a number (PSID, IGSID, LINE
user id); a helpdesk user called "7001234567890123" tells an agent nothing.
``ProfileLookup.enrich(message)`` returns the message's author with ``display_name`` /
``handle`` filled from the platform's profile API, for the ticket sync to create the
helpdesk user with:

* Messenger: ``GET /{PSID}?fields=first_name,last_name,name`` with the Page's token
  (``META_PAGE_TOKEN_<page id>``). Meta answers once the person has messaged the Page;
  business apps also need the "Business Asset User Profile Access" feature.
* Instagram: ``GET /{IGSID}?fields=name,username`` with the token of the Page linked to
  the account (``META_INSTAGRAM_PAGES``, else the account's own); only for people who
  messaged the account ("User consent is required to access user profile" otherwise).
* LINE: ``GET /v2/bot/profile/{userId}`` (a friend of the account), or in a group chat or
  room ``/v2/bot/group/{groupId}/member/{userId}`` / ``/v2/bot/room/{roomId}/member/{userId}``
  (bearer ``LINE_CHANNEL_ACCESS_TOKEN``).

Only an author the webhook left nameless (no display name, no handle) is looked up, once
per person: the answer is kept in the table (``PROFILE#<platform>#<account>#<author id>``,
30 days; a failed lookup 1 hour, so an outage or a missing consent costs one call per
person per hour, not one per message) and for 15 minutes in the container's memory.
The item carries ``gsi1pk = AUTHOR#<platform>#<author id>``, so a data deletion
(``privacy.forget``) finds and erases it with the rest of what we hold on the person.

``enrich`` never raises: a failed lookup leaves the author as it was (the id) and is
logged with ids and the reason only. Lookups happen on the sync path, never on the
webhook path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from chalicelib.models import Author, Direction, Platform, SocialMessage
from chalicelib.store import author_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.http import JsonHttpClient
    from chalicelib.channels.meta.graph import GraphClient

logger = logging.getLogger(__name__)

PROFILE_TTL = timedelta(days=30)
FAILURE_TTL = timedelta(hours=1)
# A name held in a container's memory outlives a data deletion at most this long.
MEMORY_SECONDS = 900.0
MEMORY_ENTRIES = 5000
PROFILE_SK = "PROFILE"
MESSENGER_FIELDS = "first_name,last_name,name"
INSTAGRAM_FIELDS = "name,username"
LINE_API_URL = "https://api.line.me"


def profile_pk(platform: str, account_id: str, author_id: str) -> str:
    """Partition key of the cached profile of one person, as one account sees them."""
    return f"PROFILE#{platform}#{account_id}#{author_id}"


@dataclass(frozen=True)
class Profile:
    """What a profile API showed of a person (both None: nothing, or the lookup failed)."""

    display_name: str | None = None
    handle: str | None = None

    def applied_to(self, author: Author) -> Author:
        """``author`` with what it lacks filled in; what the webhook said is kept."""
        update = {}
        if self.display_name and not author.display_name:
            update["display_name"] = self.display_name
        if self.handle and not author.handle:
            update["handle"] = self.handle
        return author.model_copy(update=update) if update else author


class ProfileUnavailable(Exception):
    """A profile API answered with an error (``status``) or with something unreadable."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class LineProfiles:
    """LINE's profile endpoints: a friend's profile, or a group or room member's.

    ``token_provider()`` is called per lookup, so a rotated channel token is picked up.
    """

    def __init__(
        self,
        base_url: str | None,
        token_provider: Callable[[], str],
        *,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 5.0),
    ) -> None:
        self.base_url = (base_url or LINE_API_URL).rstrip("/")
        self._token_provider = token_provider
        self._pool = pool
        self._timeout = timeout
        self._client_of: tuple[str, JsonHttpClient] | None = None  # (token, its client): a rotated token gets a new one

    def _client(self) -> JsonHttpClient:
        from chalicelib.http import JsonHttpClient

        token = (self._token_provider() or "").strip()
        if not token:
            raise ProfileUnavailable("no LINE channel access token is configured")
        if self._client_of is None or self._client_of[0] != token:
            if self._pool is None:
                import urllib3

                self._pool = urllib3.PoolManager(num_pools=1, maxsize=4, retries=False)
            client = JsonHttpClient(self.base_url, f"Bearer {token}", timeout=self._timeout, pool=self._pool)
            self._client_of = (token, client)
        return self._client_of[1]

    def get(self, user_id: str, *, chat: tuple[str, str] | None = None) -> dict[str, Any]:
        """The profile of ``user_id``; ``chat`` is ``("group" | "room", id)`` for a member of one."""
        user = quote(user_id, safe="")
        if chat is None:
            path = f"/v2/bot/profile/{user}"
        else:
            path = f"/v2/bot/{chat[0]}/{quote(chat[1], safe='')}/member/{user}"
        response = self._client().request("GET", path)
        if not response.ok:
            raise ProfileUnavailable(f"LINE answered {response.status} for a profile", status=response.status)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProfileUnavailable("LINE answered a profile with something that is not a JSON object")
        return body


def _line_chat(message: SocialMessage) -> tuple[str, str] | None:
    """``("group" | "room", id)`` for a LINE message written in a group chat or room."""
    if message.thread_id is None:
        return None
    source = message.raw.get("source") if isinstance(message.raw, dict) else None
    if isinstance(source, dict) and source.get("type") in ("group", "room"):
        return str(source["type"]), message.thread_id
    # Stored messages come back without their payload: LINE's ids tell the two apart
    # (group ids start with "C", room ids with "R", user ids with "U").
    return ("room" if message.thread_id.startswith("R") else "group"), message.thread_id


class ProfileLookup:
    """Names for nameless authors, from the platforms' profile APIs, cached (see the module docstring).

    ``graph`` serves Messenger and Instagram, ``line`` LINE; either may be None (that
    platform is then left as it is). ``dynamodb`` is a low-level client of the table.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBClient,
        *,
        graph: GraphClient | None = None,
        line: LineProfiles | None = None,
        instagram_pages: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        ttl: timedelta = PROFILE_TTL,
        failure_ttl: timedelta = FAILURE_TTL,
        memory_seconds: float = MEMORY_SECONDS,
    ) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb
        self.graph = graph
        self.line = line
        self.instagram_pages = dict(instagram_pages or {})
        self._clock = clock
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.memory_seconds = memory_seconds
        self._memory: dict[tuple[str, str, str], tuple[float, Profile]] = {}

    def enrich(self, message: SocialMessage) -> Author:
        """The message's author, with the name its platform's profile API shows when the
        webhook gave none; the author unchanged otherwise or when the lookup fails."""
        author = message.author
        try:
            fetch = self._fetcher(message)
            if fetch is None:
                return author
            return self._profile(message, fetch).applied_to(author)
        except Exception as exc:  # a name is a nicety: never worth a failed sync
            reason = type(exc).__name__
            logger.warning("profile lookup broke", extra={"platform": message.platform.value, "reason": reason})
            return author

    # --- which API ---------------------------------------------------------------------

    def _fetcher(self, message: SocialMessage) -> Callable[[], Profile] | None:
        author = message.author
        if message.direction is not Direction.INBOUND or author.display_name or author.handle:
            return None
        if message.platform is Platform.MESSENGER and self.graph is not None:
            return lambda: self._messenger(message)
        if message.platform is Platform.INSTAGRAM and self.graph is not None:
            return lambda: self._instagram(message)
        if message.platform is Platform.LINE and self.line is not None and author.platform_id != message.thread_id:
            return lambda: self._line(message)  # (a message LINE attributes to the group itself has no person)
        return None

    def _messenger(self, message: SocialMessage) -> Profile:
        assert self.graph is not None
        body = self.graph.user_profile(message.account_id, message.author.platform_id, MESSENGER_FIELDS)
        full = " ".join(part for part in (_text(body.get("first_name")), _text(body.get("last_name"))) if part)
        return Profile(display_name=_text(body.get("name")) or _text(full))

    def _instagram(self, message: SocialMessage) -> Profile:
        assert self.graph is not None
        # With Facebook Login an Instagram account is served by its Page, with the Page's token.
        account = self.instagram_pages.get(message.account_id, message.account_id)
        body = self.graph.user_profile(account, message.author.platform_id, INSTAGRAM_FIELDS)
        return Profile(display_name=_text(body.get("name")), handle=_text(body.get("username")))

    def _line(self, message: SocialMessage) -> Profile:
        assert self.line is not None
        body = self.line.get(message.author.platform_id, chat=_line_chat(message))
        return Profile(display_name=_text(body.get("displayName")))

    # --- the caches ----------------------------------------------------------------------

    def _profile(self, message: SocialMessage, fetch: Callable[[], Profile]) -> Profile:
        key = (message.platform.value, message.account_id, message.author.platform_id)
        now = self._clock()
        remembered = self._memory.get(key)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        profile, expires_at = self._read(key, now)
        if profile is None:
            try:
                profile, expires_at = fetch(), now + self.ttl.total_seconds()
            except Exception as exc:  # the API said no, or did not answer: keep the id, ask again later
                logger.warning("profile lookup failed", extra={
                    "platform": key[0], "account": key[1], "author_id": key[2],
                    "reason": type(exc).__name__, "status": getattr(exc, "status", None),
                })
                profile, expires_at = Profile(), now + self.failure_ttl.total_seconds()
            self._write(key, profile, now, expires_at)
        if len(self._memory) >= MEMORY_ENTRIES:
            self._memory.clear()
        self._memory[key] = (min(expires_at, now + self.memory_seconds), profile)
        return profile

    def _item_key(self, key: tuple[str, str, str]) -> dict[str, dict[str, str]]:
        return {"pk": {"S": profile_pk(*key)}, "sk": {"S": PROFILE_SK}}

    def _read(self, key: tuple[str, str, str], now: float) -> tuple[Profile | None, float]:
        try:
            item = self._dynamodb.get_item(TableName=self.table_name, Key=self._item_key(key)).get("Item")
        except Exception as exc:  # the cache is an optimisation: ask the API instead
            logger.warning("profile cache unreadable", extra={"platform": key[0], "reason": type(exc).__name__})
            return None, 0.0
        expires_at = float((item or {}).get("expires_at", {}).get("N") or 0)
        if not item or expires_at <= now:  # (DynamoDB deletes expired items within days, not at once)
            return None, 0.0
        profile = Profile(display_name=item.get("display_name", {}).get("S"), handle=item.get("handle", {}).get("S"))
        return profile, expires_at

    def _write(self, key: tuple[str, str, str], profile: Profile, now: float, expires_at: float) -> None:
        platform, _, author_id = key
        item: dict[str, Any] = {
            **self._item_key(key),
            "item_type": {"S": "profile"},
            "fetched_at": {"S": datetime.fromtimestamp(now, tz=timezone.utc).isoformat().replace("+00:00", "Z")},
            "expires_at": {"N": str(int(expires_at))},
            # by-author index: a data deletion request finds this item with the person's messages
            "gsi1pk": {"S": author_pk(platform, author_id)},
            "gsi1sk": {"S": PROFILE_SK},
        }
        if profile.display_name:
            item["display_name"] = {"S": profile.display_name}
        if profile.handle:
            item["handle"] = {"S": profile.handle}
        try:
            self._dynamodb.put_item(TableName=self.table_name, Item=item)
        except Exception as exc:  # next time the API is asked again; nothing else is lost
            logger.warning("profile cache not written", extra={"platform": platform, "reason": type(exc).__name__})

