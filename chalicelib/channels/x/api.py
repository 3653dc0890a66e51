"""X API v2 polling: the brand's mentions and direct messages, without the enterprise tier.

The Account Activity webhook (``x.py``) needs Enterprise access. Without it, a
scheduled poller reads the same things through two v2 endpoints:

* ``GET /2/users/{id}/mentions``: tweets mentioning the brand, newest first, with
  ``since_id`` / ``pagination_token`` / ``max_results`` (5..100). X serves only the
  ~800 most recent mentions through pagination, so a budget of 8 pages of 100 covers
  everything the endpoint can return.
* ``GET /2/dm_events``: the brand's DM events of the last 30 days, newest first, with
  ``pagination_token`` / ``max_results`` (1..100) / ``event_types``. It has **no**
  ``since_id``; the client stops paging once it reaches an event at or below the
  watermark (DM event ids are snowflakes, so they grow with time).

Both need a *user-context* token for the brand account (OAuth 2.0 Authorization Code
with PKCE, scopes ``tweet.read users.read dm.read`` plus ``offline.access`` for a
refresh token; or OAuth 1.0a user tokens). An app-only bearer token can read mentions
but never DMs. OAuth 2.0 user access tokens expire after two hours, which is why the
client takes a ``token_provider`` and asks it for the token on every request.

The crux is identity: a tweet or DM that reaches us by both the webhook and the
poller must produce the same ``message_id`` and ``conversation_key`` so the store's
conditional put keeps one copy. Rather than re-implementing ``x.py``'s rules, each v2
object is rewritten into the v1.1 shape the webhook delivers and handed to
``x.normalize_tweet`` / ``x.normalize_direct_message``: one implementation of
direction, customer, kind and key, by construction. ``raw`` is then replaced by the
v2 object (plus the expansions it used), so the stored audit copy is what X sent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from chalicelib.channels.common import EventNormalizer
from chalicelib.channels.x import webhook as x
from chalicelib.http import BearerClients, HttpResponse, JsonHttpClient
from chalicelib.models import NormalizedBatch, SocialMessage

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.x.com"
BASE_URL_ENV = "X_API_URL"

# X's mention timeline stops at the ~800 most recent mentions: 8 pages of 100.
MENTION_PAGES_PER_RUN = 8
DM_PAGES_PER_RUN = 5
PAGE_SIZE = 100

MENTION_PARAMS: dict[str, str] = {
    "tweet.fields": "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,entities,attachments",
    "expansions": "author_id,attachments.media_keys",
    "user.fields": "username,name,public_metrics",
    "media.fields": "url,type,preview_image_url",
}
DM_PARAMS: dict[str, str] = {
    "dm_event.fields": "id,text,event_type,created_at,sender_id,dm_conversation_id,attachments",
    "event_types": "MessageCreate",
    "expansions": "sender_id,attachments.media_keys",
    "user.fields": "username,name,public_metrics",
    "media.fields": "url,type,preview_image_url",
}


# --- errors ----------------------------------------------------------------------------


class XApiError(Exception):
    """X answered with an error status the poller cannot work around this run."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class XRateLimited(XApiError):
    """429, or the window is used up: nothing more until ``reset_at`` (None if X did not say)."""

    def __init__(self, reset_at: datetime | None, *, endpoint: str) -> None:
        when = reset_at.isoformat() if reset_at else "an unknown time"
        super().__init__(f"X rate limit reached for {endpoint}; it resets at {when}", status=429)
        self.reset_at = reset_at
        self.endpoint = endpoint


class XAuthError(XApiError):
    """401/403: the token is missing, expired or revoked, or lacks a scope or access tier."""


@dataclass(frozen=True)
class RateLimit:
    """The ``x-rate-limit-*`` headers of the last response from one endpoint."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


def _int_header(response: HttpResponse, name: str) -> int | None:
    value = response.header(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def rate_limit_of(response: HttpResponse) -> RateLimit:
    """Read X's rate-limit headers (``x-rate-limit-reset`` is epoch seconds)."""
    reset = _int_header(response, "x-rate-limit-reset")
    return RateLimit(
        limit=_int_header(response, "x-rate-limit-limit"),
        remaining=_int_header(response, "x-rate-limit-remaining"),
        reset_at=datetime.fromtimestamp(reset, tz=timezone.utc) if reset is not None else None,
    )


def _problem(response: HttpResponse) -> str:
    """X's problem ``detail``/``title`` (RFC 7807 style), never the whole body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("title") or ""
    reason = body.get("reason")
    return f"{detail} ({reason})" if reason else str(detail)


# --- the client ------------------------------------------------------------------------


class XApiClient:
    """Reads the brand's mentions and DM events from the X API v2.

    ``token_provider`` returns the current user-context access token; it is called
    before each request so a refreshed token is picked up without a new client.
    ``http`` is a ready ``JsonHttpClient`` (tests: a fake or an observed client); when
    given, it is used as is and ``token_provider`` is not consulted. ``pool`` is handed
    to the ``JsonHttpClient``\\ s built here (one per distinct token, sharing the pool).
    """

    def __init__(
        self,
        base_url: str | None = None,
        token_provider: Callable[[], str] | None = None,
        http: JsonHttpClient | None = None,
        *,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
        page_size: int = PAGE_SIZE,
    ) -> None:
        if http is None and token_provider is None:
            raise ValueError("XApiClient needs a token_provider (or a ready http client)")
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self._token_provider = token_provider
        self._fixed_http = http
        # A rotated token replaces the old one's client.
        self._clients = BearerClients(self.base_url, pool=pool, timeout=timeout, keep=1)
        self.page_size = page_size
        self.rate_limits: dict[str, RateLimit] = {}

    def __repr__(self) -> str:
        return f"XApiClient({self.base_url!r})"

    def _http(self) -> JsonHttpClient:
        if self._fixed_http is not None:
            return self._fixed_http
        assert self._token_provider is not None
        token = (self._token_provider() or "").strip()
        if not token:
            raise XAuthError("no X user access token is configured (X_USER_ACCESS_TOKEN)")
        return self._clients.client(token)

    def get(self, endpoint: str, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One GET; the parsed JSON page, or an ``XApiError`` for any non-2xx status.

        Transport errors (``ConnectFailed``...) propagate: a GET is safe to repeat and
        the next scheduled run will.
        """
        response = self._http().request("GET", path, params=dict(params))
        limit = rate_limit_of(response)
        self.rate_limits[endpoint] = limit
        if response.status == 429:
            raise XRateLimited(limit.reset_at, endpoint=endpoint)
        if response.status == 401:
            raise XAuthError(
                "X rejected the access token (401): it is missing, expired or revoked. OAuth 2.0 user tokens "
                "last two hours; refresh it (offline.access) or re-authorize the brand account.",
                status=401,
            )
        if response.status == 403:
            detail = _problem(response)
            raise XAuthError(
                "X refused access (403): the token lacks a scope (tweet.read, users.read, dm.read) or the app's "
                f"access tier does not include {endpoint}" + (f": {detail}" if detail else ""),
                status=403,
            )
        if not response.ok:
            detail = _problem(response)
            raise XApiError(
                f"X answered {response.status} for {endpoint}" + (f": {detail}" if detail else ""), status=response.status
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise XApiError(f"X answered {endpoint} with a body that is not JSON", status=response.status) from exc
        if not isinstance(body, dict):
            raise XApiError(f"X answered {endpoint} with unexpected JSON", status=response.status)
        return body

    def _pages(self, endpoint: str, path: str, params: dict[str, Any], max_pages: int) -> Iterator[dict[str, Any]]:
        token: str | None = None
        for number in range(max(1, max_pages)):
            query = dict(params)
            if token:
                query["pagination_token"] = token
            page = self.get(endpoint, path, query)
            yield page
            token = (page.get("meta") or {}).get("next_token")
            if not token:
                return
            limit = self.rate_limits.get(endpoint)
            if limit and limit.remaining == 0 and number + 1 < max_pages:
                # The next request is certain to be refused: stop here, the caller
                # treats it like a 429 (keeps what it has, does not advance).
                raise XRateLimited(limit.reset_at, endpoint=endpoint)

    def mentions(
        self, user_id: str, since_id: str | None = None, *, max_pages: int = MENTION_PAGES_PER_RUN
    ) -> Iterator[dict[str, Any]]:
        """Pages of ``GET /2/users/{id}/mentions`` newer than ``since_id``, newest first.

        Follows ``meta.next_token`` for at most ``max_pages`` pages. The caller may stop
        iterating early. Raises ``XRateLimited`` / ``XAuthError`` / ``XApiError``.
        """
        params: dict[str, Any] = {**MENTION_PARAMS, "max_results": min(100, max(5, self.page_size))}
        if since_id:
            params["since_id"] = str(since_id)
        yield from self._pages("GET /2/users/:id/mentions", f"/2/users/{user_id}/mentions", params, max_pages)

    def dm_events(self, since_id: str | None = None, *, max_pages: int = DM_PAGES_PER_RUN) -> Iterator[dict[str, Any]]:
        """Pages of ``GET /2/dm_events`` (MessageCreate only), newest first.

        The endpoint has no ``since_id``: paging stops after the first page holding an
        event at or below ``since_id`` (pages are yielded unfiltered; older events in
        that page are the caller's to drop, see ``newer_than``).
        """
        params: dict[str, Any] = {**DM_PARAMS, "max_results": min(100, max(1, self.page_size))}
        floor = int(since_id) if since_id else None
        for page in self._pages("GET /2/dm_events", "/2/dm_events", params, max_pages):
            yield page
            ids = [n for n in (_id_num(e) for e in _data(page)) if n is not None]
            if floor is not None and any(n <= floor for n in ids):
                return


# --- page helpers ----------------------------------------------------------------------


def _data(page: Mapping[str, Any]) -> list[Any]:
    data = page.get("data")
    return data if isinstance(data, list) else []


def _id_num(item: Any) -> int | None:
    if not isinstance(item, dict):
        return None
    try:
        return int(str(item.get("id")))
    except ValueError:
        return None


def newest_id(page: Mapping[str, Any]) -> str | None:
    """The largest id in a page: ``meta.newest_id`` when X gives it, else the max of ``data``."""
    candidates = [n for n in (_id_num(item) for item in _data(page)) if n is not None]
    meta_newest = (page.get("meta") or {}).get("newest_id")
    if meta_newest and str(meta_newest).isdigit():
        candidates.append(int(meta_newest))
    return str(max(candidates)) if candidates else None


def newer_than(page: Mapping[str, Any], since_id: str | None) -> dict[str, Any]:
    """A copy of ``page`` whose ``data`` keeps only items with an id above ``since_id``."""
    if not since_id:
        return dict(page)
    floor = int(since_id)
    kept = [item for item in _data(page) if (_id_num(item) or 0) > floor]
    return {**page, "data": kept}


def _parse_time(value: str) -> datetime:
    # X writes "2018-10-10T20:19:24.000Z"; fromisoformat handles "Z" from 3.11 on.
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _epoch_ms(value: str) -> str:
    return str(round(_parse_time(value).timestamp() * 1000))


def _index(items: Any, key: str) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {str(item[key]): item for item in items if isinstance(item, dict) and key in item}


def _media_of(item: dict[str, Any], media: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    keys = (item.get("attachments") or {}).get("media_keys") or []
    return [media[k] for k in keys if k in media]


def _legacy_media(found: dict[str, Any]) -> dict[str, Any]:
    # v1.1 ``media_url_https`` is the image itself for photos and the thumbnail for
    # videos/GIFs; v2 splits those into ``url`` and ``preview_image_url``.
    return {"type": found.get("type", "photo"), "media_url_https": found.get("url") or found.get("preview_image_url")}


def _legacy_user(user_id: str, user: dict[str, Any]) -> dict[str, Any]:
    metrics = user.get("public_metrics") or {}
    return {
        "id_str": user_id,
        "screen_name": user.get("username"),
        "name": user.get("name"),
        "followers_count": metrics.get("followers_count"),
    }


# --- mentions --------------------------------------------------------------------------


def tweet_as_v1(tweet: dict[str, Any], users: dict[str, dict[str, Any]], media: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Rewrite a v2 tweet (with its expansions) into the v1.1 shape ``x.normalize_tweet`` reads."""
    author_id = str(tweet["author_id"])
    referenced = tweet.get("referenced_tweets") or []
    replied_to = next((str(r["id"]) for r in referenced if isinstance(r, dict) and r.get("type") == "replied_to"), None)
    note = tweet.get("note_tweet") or {}
    legacy: dict[str, Any] = {
        "id_str": str(tweet["id"]),
        # Long posts carry the whole text in note_tweet (if requested); ``text`` is full otherwise.
        "text": note.get("text") or tweet.get("text") or "",
        "timestamp_ms": _epoch_ms(tweet["created_at"]),
        "in_reply_to_status_id_str": replied_to,
        "in_reply_to_user_id_str": str(tweet["in_reply_to_user_id"]) if tweet.get("in_reply_to_user_id") else None,
        "conversation_id": tweet.get("conversation_id"),
        "user": _legacy_user(author_id, users.get(author_id) or {}),
    }
    attached = _media_of(tweet, media)
    if attached:
        legacy["extended_entities"] = {"media": [_legacy_media(m) for m in attached]}
    return legacy


def _is_retweet(tweet: dict[str, Any]) -> bool:
    return any(isinstance(r, dict) and r.get("type") == "retweeted" for r in tweet.get("referenced_tweets") or [])


def normalize_mentions_page(page: dict[str, Any], *, brand_id: str) -> NormalizedBatch:
    """One page of ``GET /2/users/{id}/mentions`` as canonical messages.

    Identity (message id = tweet id, key ``x:tweets:<brand>:<customer>``, direction,
    author id) is exactly what the webhook produces for the same tweet. Retweets are
    ignored, as on the webhook; the brand's own tweets come out outbound.
    """
    brand_id = str(brand_id)

    def one(tweet: dict[str, Any], found: _Includes) -> SocialMessage | None:
        if _is_retweet(tweet):
            return None  # a retweet adds no words of its own
        return x.normalize_tweet(brand_id, tweet_as_v1(tweet, found.users, found.media))

    return _normalize_items(page, "author_id", one)


@dataclass(frozen=True)
class _Includes:
    """A page's ``includes``: its users by id, its media by key."""

    users: dict[str, dict[str, Any]]
    media: dict[str, dict[str, Any]]


def _normalize_items(
    page: dict[str, Any], person_field: str, normalize: Callable[[dict[str, Any], _Includes], SocialMessage | None]
) -> NormalizedBatch:
    """Every item of a v2 page through ``normalize`` (None: ignored, a failure: quarantined);
    a message's raw copy is its item with the person (``person_field``) and media it names."""
    includes = page.get("includes") or {}
    found = _Includes(_index(includes.get("users"), "id"), _index(includes.get("media"), "media_key"))
    normalizer = EventNormalizer("x")

    def one(item: dict[str, Any]) -> NormalizedBatch:
        message = normalize(item, found)
        if message is None:
            return NormalizedBatch(ignored=1)
        person = found.users.get(str(item[person_field]))
        named = {"users": [person] if person else [], "media": _media_of(item, found.media)}
        return NormalizedBatch(messages=[message.model_copy(update={"raw": {"api": "x-v2", "data": item, "includes": named}})])

    normalizer.each(page.get("data"), one)
    return normalizer.batch


# --- direct messages -------------------------------------------------------------------


def dm_customer(brand_id: str, event: dict[str, Any]) -> str | None:
    """The other participant of a one-to-one conversation, or None for a group.

    A v2 DM event names its sender but not its recipient; one-to-one conversation ids
    are the two user ids joined by a hyphen (``"<low>-<high>"``), group conversations
    have a single numeric id.
    """
    parts = str(event.get("dm_conversation_id") or "").split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or brand_id not in parts:
        return None
    other = parts[1] if parts[0] == brand_id else parts[0]
    return other


def dm_event_as_v1(
    brand_id: str, event: dict[str, Any], users: dict[str, dict[str, Any]], media: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rewrite a v2 MessageCreate event into the v1.1 ``message_create`` event and ``users`` map."""
    sender = str(event["sender_id"])
    customer = dm_customer(brand_id, event)
    if customer is None:
        raise ValueError("not a one-to-one conversation with the brand")
    recipient = customer if sender == brand_id else brand_id
    data: dict[str, Any] = {"text": event.get("text") or ""}
    attached = _media_of(event, media)
    if attached:
        data["attachment"] = {"type": "media", "media": _legacy_media(attached[0])}
    legacy = {
        "type": "message_create",
        "id": str(event["id"]),
        "created_timestamp": _epoch_ms(event["created_at"]),
        "message_create": {"sender_id": sender, "target": {"recipient_id": recipient}, "message_data": data},
    }
    profile = users.get(sender)
    legacy_users = {sender: {**_legacy_user(sender, profile), "id": sender}} if profile else {}
    return legacy, legacy_users


def normalize_dm_events_page(page: dict[str, Any], *, brand_id: str) -> NormalizedBatch:
    """One page of ``GET /2/dm_events`` as canonical messages.

    DM event ids are shared between v1.1 and v2, so the message id and the key
    ``x:dm:<brand>:<customer>`` equal the webhook's. Group conversations (which the
    webhook never delivers) and non-message events are ignored.
    """
    brand_id = str(brand_id)

    def one(event: dict[str, Any], found: _Includes) -> SocialMessage | None:
        if event.get("event_type") != "MessageCreate":
            return None
        if dm_customer(brand_id, event) is None:
            # Group DMs: a per-customer key would mix them with the customer's private
            # chat, and a reply there would go to the wrong audience.
            return None
        legacy, legacy_users = dm_event_as_v1(brand_id, event, found.users, found.media)
        return x.normalize_direct_message(brand_id, legacy_users, legacy)

    return _normalize_items(page, "sender_id", one)
