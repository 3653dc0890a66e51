"""Customers' names where the platform's webhook carries only an id.

Messenger, Instagram Direct and LINE identify a person by a number (PSID, IGSID, LINE
user id); a helpdesk user called "7001234567890123" tells an agent nothing.
``ProfileLookup.enrich(message)`` returns the message's author with ``display_name`` /
``handle`` filled from the platform's profile API, for the ticket sync to create the
helpdesk user with. How each platform is asked is its channel's business
(``Channel.profile_sources``: ``channels/meta/graph.py``, ``channels/line/profiles.py``).

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
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.channels.base import Profile, ProfileSource
from chalicelib.errors import NotConfigured
from chalicelib.models import Author, Direction, Platform, SocialMessage
from chalicelib.store import author_pk

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

PROFILE_TTL = timedelta(days=30)
FAILURE_TTL = timedelta(hours=1)
# A name held in a container's memory outlives a data deletion at most this long.
MEMORY_SECONDS = 900.0
MEMORY_ENTRIES = 5000
PROFILE_SK = "PROFILE"


def profile_pk(platform: str, account_id: str, author_id: str) -> str:
    """Partition key of the cached profile of one person, as one account sees them."""
    return f"PROFILE#{platform}#{account_id}#{author_id}"


def _filled(author: Author, profile: Profile) -> Author:
    """``author`` with what it lacks filled in from ``profile``; what the webhook said is kept."""
    update = {}
    if profile.display_name and not author.display_name:
        update["display_name"] = profile.display_name
    if profile.handle and not author.handle:
        update["handle"] = profile.handle
    return author.model_copy(update=update) if update else author


class ProfileLookup:
    """Names for nameless authors, from the platforms' profile APIs, cached (see the module docstring).

    ``sources`` says, per platform, how to ask (``Channel.profile_sources``); a platform
    without one is left as it is. ``dynamodb`` is a low-level client of the table.
    """

    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBClient,
        *,
        sources: Mapping[Platform, ProfileSource],
        clock: Callable[[], float] = time.time,
        ttl: timedelta = PROFILE_TTL,
        failure_ttl: timedelta = FAILURE_TTL,
        memory_seconds: float = MEMORY_SECONDS,
    ) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._sources = dict(sources)
        self._clock = clock
        self.ttl = ttl
        self.failure_ttl = failure_ttl
        self.memory_seconds = memory_seconds
        self._memory: dict[tuple[str, str, str], tuple[float, Profile]] = {}

    def enrich(self, message: SocialMessage) -> Author:
        """The message's author, with the name its platform's profile API shows when the
        webhook gave none; the author unchanged otherwise or when the lookup fails."""
        profile = self._looked_up(message)
        return message.author if profile is None else _filled(message.author, profile)

    def reach(self, message: SocialMessage) -> int | None:
        """The author's followers as the profile API shows them (Instagram), from the same
        lookup and cache as the name: None when unknown. For the triage signals."""
        profile = self._looked_up(message)
        return None if profile is None else profile.followers

    def _looked_up(self, message: SocialMessage) -> Profile | None:
        """The profile of a nameless inbound author whose platform has a profile API (cached);
        None otherwise or when the lookup fails."""
        author = message.author
        if message.direction is not Direction.INBOUND or author.display_name or author.handle:
            return None
        source = self._sources.get(message.platform)
        if source is None:
            return None
        try:
            return self._profile(message, lambda: source(message))
        except Exception as exc:  # a name is a nicety: never worth a failed sync
            reason = type(exc).__name__
            logger.warning("profile lookup broke", extra={"platform": message.platform.value, "reason": reason})
            return None

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
                if _not_configured(exc):
                    # No credential for this account: nothing was asked, so nothing is worth a write
                    # to the table (one per person otherwise); asked again once the memory forgets it.
                    profile, expires_at = Profile(), now + self.memory_seconds
                    self._remember(key, profile, expires_at, now)
                    return profile
                logger.warning(
                    "profile lookup failed",
                    extra={
                        "platform": key[0],
                        "account": key[1],
                        "author_id": key[2],
                        "reason": type(exc).__name__,
                        "status": getattr(exc, "status", None),
                    },
                )
                profile, expires_at = Profile(), now + self.failure_ttl.total_seconds()
            self._write(key, profile, now, expires_at)
        self._remember(key, profile, expires_at, now)
        return profile

    def _remember(self, key: tuple[str, str, str], profile: Profile, expires_at: float, now: float) -> None:
        if len(self._memory) >= MEMORY_ENTRIES:
            self._memory.clear()
        self._memory[key] = (min(expires_at, now + self.memory_seconds), profile)

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
        followers = item.get("followers", {}).get("N")
        profile = Profile(
            display_name=item.get("display_name", {}).get("S"),
            handle=item.get("handle", {}).get("S"),
            followers=int(followers) if followers is not None else None,
        )
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
        if profile.followers is not None:
            item["followers"] = {"N": str(profile.followers)}
        try:
            self._dynamodb.put_item(TableName=self.table_name, Item=item)
        except Exception as exc:  # next time the API is asked again; nothing else is lost
            logger.warning("profile cache not written", extra={"platform": platform, "reason": type(exc).__name__})


def _not_configured(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) says a credential is not configured."""
    while exc is not None:
        if isinstance(exc, NotConfigured):
            return True
        exc = exc.__cause__
    return False
