"""A local stand-in for the two X API v2 read endpoints the poller uses.

Pure stdlib, on ``local.sandbox_http.JsonSandbox``: ``XSandbox(...).start()`` serves on a
background thread on 127.0.0.1:

* ``GET /2/users/{id}/mentions``: seeded tweets mentioning ``{id}``, newest first,
  with ``since_id`` / ``until_id`` filtering, ``max_results`` (5..100) and
  ``pagination_token`` paging; ``meta`` has ``result_count``, ``newest_id``,
  ``oldest_id`` and ``next_token``; ``expansions=author_id,attachments.media_keys``
  fill ``includes.users`` / ``includes.media``.
* ``GET /2/dm_events``: seeded DM events of the token's user, newest first,
  ``max_results`` (1..100), ``pagination_token``, ``event_types``. Like X, it has no
  ``since_id`` and answers 400 for any query parameter it does not know.

Behaviours copied from X: ``Authorization: Bearer <token>`` else 401 (problem JSON);
``x-rate-limit-limit/-remaining/-reset`` on every answer and 429 once a window is used
up; pagination tokens are opaque cursors (ids, not offsets), so tweets arriving
between two page requests do not shift the pages. ``page_size`` caps every page below
``max_results`` so paging can be tested with a handful of tweets. ``inject(...)``
queues faults (e.g. a 429 with a given ``x-rate-limit-reset``). ``requests_to(fragment)``
lists the API requests served (method, path, query) for assertions.

Writes (the outbound replies), kept in ``sent()``:

* ``POST /2/tweets {text, reply: {in_reply_to_tweet_id}}`` -> ``201 {"data": {"id",
  "text", "edit_history_tweet_ids"}}``; the parent must be a seeded tweet not
  ``delete_tweet``-ed (else 403 "You attempted to reply to a Tweet that is deleted or
  not visible to you."); the same text twice is 403 "You are not allowed to create a
  Tweet with duplicate content."
* ``POST /2/dm_conversations/with/{participant_id}/messages {text}`` -> ``201 {"data":
  {"dm_conversation_id", "dm_event_id"}}``; unknown users 400, ``close_dms(user)`` 403
  "You cannot send messages to this user."

``inject(status, detail=..., drop=True)`` also applies to writes; ``drop`` applies the
write and drops the connection before answering.

Not X, for ``make demo`` (another process; no token): ``POST /__sandbox/mentions`` (a new
mention for the poller: ``{"text", "author_id", "username", "name"}`` -> 201 ``{"data": tweet}``),
``POST /__sandbox/add_mention`` / ``add_dm`` (the methods' keyword arguments as JSON) and
``GET /__sandbox/sent``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from local.sandbox_http import CONTROL_PREFIX, JsonSandbox, Reply, SandboxRequest

TWITTER_EPOCH_MS = 1288834974657
DEFAULT_TOKEN = "local-x-user-token"
BRAND_ID = "2244994945"
BRAND_USERNAME = "TwitterDev"

Answer = tuple[int, dict[str, Any]]  # status and body; the rate-limit headers are added to every answer
_MEDIA_PREFIX = {"photo": 3, "video": 7, "animated_gif": 16}


class _Invalid(Exception):
    """A 400 Invalid Request with X's problem body."""


MENTION_QUERY = {
    "since_id", "until_id", "max_results", "pagination_token", "start_time", "end_time",
    "tweet.fields", "expansions", "user.fields", "media.fields", "place.fields", "poll.fields",
}
DM_QUERY = {
    "max_results", "pagination_token", "event_types", "dm_event.fields", "expansions",
    "user.fields", "media.fields", "tweet.fields",
}


def snowflake(moment_ms: int, sequence: int = 0) -> str:
    """An X-style id for a moment: time in the high bits, so ids sort by time."""
    return str(((moment_ms - TWITTER_EPOCH_MS) << 22) | (sequence & 0x3FFFFF))


def _iso(moment_ms: int) -> str:
    moment = datetime.fromtimestamp(moment_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment_ms % 1000:03d}Z"


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}


@dataclass
class XFault:
    """One injected failure for requests whose path contains ``match`` (None: all).

    ``status`` 429 carries ``x-rate-limit-reset`` = ``reset`` (epoch seconds; default
    now + 15 min) and ``x-rate-limit-remaining: 0``. ``count`` is how many requests it
    answers before it is used up.
    """

    status: int = 429
    match: str | None = None
    reset: int | None = None
    count: int = 1
    detail: str | None = None  # the problem's ``detail`` (e.g. a 403's reason)
    drop: bool = False  # POST only: apply the write, then drop the connection unanswered
    fired: int = 0


class XSandbox(JsonSandbox):
    """An in-memory X API v2 (mentions and DM events) on ``http://{host}:{port}``."""

    name = "x-sandbox"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str = DEFAULT_TOKEN,
        brand_id: str = BRAND_ID,
        brand_username: str = BRAND_USERNAME,
        page_size: int | None = None,
        rate_limit: int = 450,
        window_seconds: int = 900,
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.brand_id = brand_id
        self.page_size = page_size
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.reset()
        self.add_user(brand_id, brand_username, "Brand", followers=1000)
        # Route names are the rate-limit windows.
        self.route("GET", r"/2/users/(?P<user_id>[^/]+)/mentions/*", self._metered(self._list_mentions), name="mentions")
        self.route("GET", r"/2/dm_events/*", self._metered(self._list_dm_events), name="dm_events")
        self.route("POST", r"/2/tweets", self._metered(self._post_tweet), name="tweets.create")
        self.route("POST", r"/2/dm_conversations/with/(?P<participant_id>\d+)/messages", self._metered(self._post_dm),
                   name="dm.create")
        # Not X: lets `make demo` (another process) seed what its webhooks say and see the replies.
        self.control("POST", "mentions", self._mention_control, status=201)
        self.serve_controls(add_mention=self.add_mention, add_dm=self.add_dm)

    # --- seeding ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every tweet, DM, user, fault, cursor and request (the brand user stays)."""
        with self._lock:
            brand = getattr(self, "users", {}).get(self.brand_id)
            self.tweets: dict[str, dict[str, Any]] = {}
            self.mentioned: dict[str, set[str]] = {}  # tweet id -> user ids it mentions
            self.dm_events: dict[str, dict[str, Any]] = {}
            self.dm_owners: dict[str, set[str]] = {}  # event id -> users who can read it
            self.users: dict[str, dict[str, Any]] = {self.brand_id: brand} if brand else {}
            self.media: dict[str, dict[str, Any]] = {}
            self.faults: list[XFault] = []
            self.outbox: list[dict[str, Any]] = []  # accepted writes: reply posts and DMs
            self.deleted: set[str] = set()  # tweets their authors deleted
            self.dms_closed: set[str] = set()  # users who do not accept DMs from the brand
            self._cursors: dict[str, tuple[str, str]] = {}  # token -> (query signature, last id served)
            self._windows: dict[str, tuple[float, int]] = {}  # endpoint -> (window start, used)
            self._sequence = 0
            self._clock_ms = int(time.time() * 1000) - 3_600_000
            self.forget_requests()

    def _next_id(self, created_ms: int | None) -> tuple[str, int]:
        with self._lock:
            self._sequence += 1
            if created_ms is None:
                # Strictly increasing times, so seeding order is timeline order.
                self._clock_ms += 1000
                created_ms = self._clock_ms
            return snowflake(created_ms, self._sequence), created_ms

    def add_user(self, user_id: str, username: str, name: str | None = None, *, followers: int = 0) -> dict[str, Any]:
        """Register (or replace) a user for ``includes.users``."""
        user = {
            "id": str(user_id),
            "name": name or username,
            "username": username,
            "public_metrics": {"followers_count": followers, "following_count": 0, "tweet_count": 0, "listed_count": 0},
        }
        with self._lock:
            self.users[str(user_id)] = user
        return user

    def _add_media(self, media: list[dict[str, Any]] | None, item_id: str) -> list[str]:
        keys: list[str] = []
        for number, found in enumerate(media or []):
            kind = found.get("type", "photo")
            prefix = _MEDIA_PREFIX.get(kind, 3)  # X's media keys start with the media type number
            key = found.get("media_key") or f"{prefix}_{item_id}{number}"
            entry = {"media_key": key, "type": kind}
            if kind == "photo":
                entry["url"] = found.get("url") or f"https://pbs.twimg.com/media/{key}.jpg"
            else:
                entry["preview_image_url"] = found.get("preview_image_url") or f"https://pbs.twimg.com/ext_tw_video_thumb/{key}.jpg"
            with self._lock:
                self.media[key] = entry
            keys.append(key)
        return keys

    def add_mention(
        self,
        text: str,
        *,
        author_id: str = "3001969357",
        username: str | None = None,
        name: str | None = None,
        followers: int = 0,
        tweet_id: str | None = None,
        created_ms: int | None = None,
        mentions: tuple[str, ...] | None = None,
        in_reply_to_user_id: str | None = None,
        replied_to: str | None = None,
        conversation_id: str | None = None,
        retweet_of: str | None = None,
        quote_of: str | None = None,
        media: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Seed a tweet that mentions ``mentions`` (default: the brand); returns the v2 tweet."""
        new_id, created = self._next_id(created_ms)
        tweet_id = str(tweet_id or new_id)
        author_id = str(author_id)
        if author_id not in self.users or username:
            self.add_user(author_id, username or f"user{author_id}", name, followers=followers)
        mentioned = tuple(mentions) if mentions is not None else (self.brand_id,)
        referenced = [
            {"type": kind, "id": str(ref)}
            for kind, ref in (("replied_to", replied_to), ("retweeted", retweet_of), ("quoted", quote_of))
            if ref
        ]
        tweet: dict[str, Any] = {
            "id": tweet_id,
            "edit_history_tweet_ids": [tweet_id],
            "text": text,
            "created_at": _iso(created),
            "author_id": author_id,
            "conversation_id": str(conversation_id or replied_to or tweet_id),
            "entities": {
                "mentions": [
                    {"start": 0, "end": 1 + len(self.users.get(m, {}).get("username", m)),
                     "username": self.users.get(m, {}).get("username", m), "id": m}
                    for m in mentioned
                ]
            },
        }
        if in_reply_to_user_id:
            tweet["in_reply_to_user_id"] = str(in_reply_to_user_id)
        if referenced:
            tweet["referenced_tweets"] = referenced
        keys = self._add_media(media, tweet_id)
        if keys:
            tweet["attachments"] = {"media_keys": keys}
        with self._lock:
            self.tweets[tweet_id] = tweet
            self.mentioned[tweet_id] = set(mentioned)
        return json.loads(json.dumps(tweet))

    def add_dm(
        self,
        text: str,
        *,
        sender_id: str = "3001969357",
        recipient_id: str | None = None,
        username: str | None = None,
        name: str | None = None,
        followers: int = 0,
        event_id: str | None = None,
        created_ms: int | None = None,
        conversation_id: str | None = None,
        media: list[dict[str, Any]] | None = None,
        event_type: str = "MessageCreate",
    ) -> dict[str, Any]:
        """Seed a one-to-one DM event between ``sender_id`` and ``recipient_id`` (default: the brand).

        ``conversation_id`` overrides the one-to-one id (``"<low>-<high>"``), e.g. to
        seed a group conversation. Returns the v2 event.
        """
        new_id, created = self._next_id(created_ms)
        event_id = str(event_id or new_id)
        sender_id = str(sender_id)
        recipient = str(recipient_id or self.brand_id)
        if sender_id not in self.users or username:
            self.add_user(sender_id, username or f"user{sender_id}", name, followers=followers)
        pair = sorted((sender_id, recipient), key=int)
        event: dict[str, Any] = {
            "id": event_id,
            "event_type": event_type,
            "text": text,
            "created_at": _iso(created),
            "sender_id": sender_id,
            "dm_conversation_id": str(conversation_id or f"{pair[0]}-{pair[1]}"),
        }
        keys = self._add_media(media, event_id)
        if keys:
            event["attachments"] = {"media_keys": keys}
        with self._lock:
            self.dm_events[event_id] = event
            self.dm_owners[event_id] = {sender_id, recipient}
        return json.loads(json.dumps(event))

    def inject(self, status: int = 429, *, match: str | None = None, reset: int | None = None, count: int = 1,
               detail: str | None = None, drop: bool = False) -> XFault:
        """Queue a fault: the next ``count`` requests whose path contains ``match`` get ``status``
        (with ``detail`` as the problem's detail). ``drop=True`` (writes only): the write is
        applied and the connection dropped before any answer."""
        fault = XFault(status=status, match=match, reset=reset, count=count, detail=detail, drop=drop)
        with self._lock:
            self.faults.append(fault)
        return fault

    def inject_error(self, status: int = 429, **fault: Any) -> XFault:
        """``inject`` under the name the other sandboxes use."""
        return self.inject(status, **fault)

    def requests_to(self, fragment: str) -> list[dict[str, Any]]:
        """API requests served whose path contains ``fragment``: ``{"method", "path", "query"}``,
        the query with each parameter's last value."""
        with self._lock:
            return [{"method": r.method, "path": r.path, "query": {k: v[-1] for k, v in r.query.items()}}
                    for r in self.requests if fragment in r.path and not r.path.startswith(CONTROL_PREFIX)]

    # --- serving ---------------------------------------------------------------------

    def _rate_headers(self, endpoint: str, *, consume: bool) -> tuple[bool, dict[str, str]]:
        now = time.time()
        with self._lock:
            start, used = self._windows.get(endpoint, (now, 0))
            if now - start >= self.window_seconds:
                start, used = now, 0
            allowed = used < self.rate_limit
            if consume and allowed:
                used += 1
            self._windows[endpoint] = (start, used)
        headers = {
            "x-rate-limit-limit": str(self.rate_limit),
            "x-rate-limit-remaining": str(max(0, self.rate_limit - used)),
            "x-rate-limit-reset": str(int(start + self.window_seconds)),
        }
        return allowed, headers

    def before(self, request: SandboxRequest) -> Reply | None:
        if request.header("Authorization") != f"Bearer {self.token}":
            return 401, _problem(401, "Unauthorized", "Unauthorized"), {}
        return None

    def not_found(self, request: SandboxRequest) -> Reply:
        if request.method != "GET":
            return 405, _problem(405, "Method Not Allowed", "only GET is served here"), {}
        return self.before(request) or (404, _problem(404, "Not Found Error", f"no route for {request.path.rstrip('/')}"), {})

    method_not_allowed = not_found

    def _metered(self, handler: Callable[..., Answer]) -> Callable[..., Reply | None]:
        """X's order after authentication: an injected fault, then the endpoint's rate limit; an
        invalid request answers 400; the rate-limit headers go on every answer past the limit check."""

        def run(request: SandboxRequest, **groups: str) -> Reply | None:
            fault = self._take_fault(request.path)
            dropping = fault is not None and fault.drop and request.method == "POST"
            if fault is not None and not dropping:
                return self._fault_reply(fault)
            allowed, rate = self._rate_headers(request.route, consume=True)
            if not allowed:
                return 429, _problem(429, "Too Many Requests", "Too Many Requests"), rate
            try:
                status, body = handler(request, **groups)
            except _Invalid as exc:
                return 400, self._invalid(str(exc)), rate
            if dropping and status < 300:
                return None  # the write is applied; the connection drops unanswered
            return status, body, rate

        return run

    def _take_fault(self, path: str) -> XFault | None:
        with self._lock:
            fault = next((f for f in self.faults if f.fired < f.count and (f.match is None or f.match in path)), None)
            if fault is not None:
                fault.fired += 1
            return fault

    def _fault_reply(self, fault: XFault) -> Reply:
        if fault.status == 429:
            reset = fault.reset if fault.reset is not None else int(time.time()) + self.window_seconds
            return 429, _problem(429, "Too Many Requests", fault.detail or "Too Many Requests"), {
                "x-rate-limit-limit": str(self.rate_limit), "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
        title = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}.get(
            fault.status, "Injected")
        return fault.status, _problem(fault.status, title, fault.detail or title), {}

    # --- writes: reply posts and direct messages -------------------------------------

    def delete_tweet(self, tweet_id: str) -> None:
        """The author deleted the tweet: replies to it are refused (403)."""
        with self._lock:
            self.deleted.add(str(tweet_id))

    def close_dms(self, user_id: str) -> None:
        """The user does not accept DMs from the brand: sends are refused (403)."""
        with self._lock:
            self.dms_closed.add(str(user_id))

    def sent(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Accepted writes (``kind`` ``tweet`` or ``dm``): the request body and the created id."""
        with self._lock:
            return [json.loads(json.dumps(item)) for item in self.outbox if kind is None or item["kind"] == kind]

    @staticmethod
    def _write_body(request: SandboxRequest) -> tuple[dict[str, Any], str]:
        """The JSON object of a write and its ``text``."""
        try:
            spec = json.loads(request.body or b"")
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            raise _Invalid("The request body is not a JSON object")
        text = spec.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _Invalid("text must be a non-empty string")
        return spec, text

    def _post_tweet(self, request: SandboxRequest) -> Answer:
        return self._create_tweet(*self._write_body(request))

    def _post_dm(self, request: SandboxRequest, participant_id: str) -> Answer:
        return self._create_dm(participant_id, *self._write_body(request))

    def _create_tweet(self, spec: dict[str, Any], text: str) -> Answer:
        reply = spec.get("reply") if isinstance(spec.get("reply"), dict) else None
        parent_id = str(reply.get("in_reply_to_tweet_id") or "") if reply else ""
        if len(text) > 280:
            return 400, self._invalid("Your Tweet text is too long. For more information on how X counts characters, see the docs.")
        with self._lock:
            parent = self.tweets.get(parent_id) if parent_id else None
            if reply is not None and (parent is None or parent_id in self.deleted):
                return 403, _problem(403, "Forbidden", "You attempted to reply to a Tweet that is deleted or not visible to you.")
            if any(item["kind"] == "tweet" and item["body"]["text"] == text for item in self.outbox):
                return 403, _problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        new_id, created = self._next_id(int(time.time() * 1000))
        tweet: dict[str, Any] = {
            "id": new_id, "edit_history_tweet_ids": [new_id], "text": text, "created_at": _iso(created),
            "author_id": self.brand_id, "conversation_id": (parent or {}).get("conversation_id", new_id),
        }
        if parent is not None:
            tweet["in_reply_to_user_id"] = parent["author_id"]
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent_id}]
        with self._lock:
            self.tweets[new_id] = tweet
            self.mentioned[new_id] = set()
            self.outbox.append({"kind": "tweet", "body": spec, "id": new_id})
        return 201, {"data": {"id": new_id, "text": text, "edit_history_tweet_ids": [new_id]}}

    def _create_dm(self, participant_id: str, spec: dict[str, Any], text: str) -> Answer:
        with self._lock:
            known = participant_id in self.users
            closed = participant_id in self.dms_closed
        if not known:
            return 400, self._invalid(f"The `participant_id` [{participant_id}] is not a valid user")
        if closed:
            return 403, _problem(403, "Forbidden", "You cannot send messages to this user.")
        event = self.add_dm(text, sender_id=self.brand_id, recipient_id=participant_id, created_ms=int(time.time() * 1000))
        with self._lock:
            self.outbox.append({"kind": "dm", "body": spec, "id": event["id"], "participant_id": participant_id})
        return 201, {"data": {"dm_conversation_id": event["dm_conversation_id"], "dm_event_id": event["id"]}}

    # --- reads: mentions and DM events ---------------------------------------------

    def _list_mentions(self, request: SandboxRequest, user_id: str) -> Answer:
        query, max_results = _checked_query(request, MENTION_QUERY, low=5, default=10)
        since = int(query["since_id"]) if query.get("since_id") else None
        until = int(query["until_id"]) if query.get("until_id") else None
        with self._lock:
            items = [
                t for t in self.tweets.values()
                if user_id in self.mentioned.get(t["id"], set())
                and (since is None or int(t["id"]) > since)
                and (until is None or int(t["id"]) < until)
            ]
        signature = f"mentions:{user_id}:{since}:{until}"
        return 200, self._listing(items, query, max_results, signature, user_field="author_id", bounds=True)

    def _list_dm_events(self, request: SandboxRequest) -> Answer:
        query, max_results = _checked_query(request, DM_QUERY, low=1, default=100)
        # The token is the brand's: its events are those it sent or received.
        types = set((query.get("event_types") or "").split(",")) - {""}
        with self._lock:
            items = [
                e for e in self.dm_events.values()
                if self.brand_id in self.dm_owners.get(e["id"], set()) and (not types or e["event_type"] in types)
            ]
        signature = f"dm_events:{','.join(sorted(types))}"
        return 200, self._listing(items, query, max_results, signature, user_field="sender_id", bounds=False)

    def _mention_control(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if "text" not in arguments:
            raise ValueError("text is required")
        tweet = self.add_mention(str(arguments["text"]), author_id=str(arguments.get("author_id", "3001969357")),
                                 username=arguments.get("username"), name=arguments.get("name"))
        return {"data": tweet}

    @staticmethod
    def _invalid(message: str) -> dict[str, Any]:
        return {
            "errors": [{"parameters": {}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, str], max_results: int, signature: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; a token resumes below the last id served (a cursor, not an offset)."""
        items = sorted(items, key=lambda item: int(item["id"]), reverse=True)
        token = query.get("pagination_token")
        if token:
            with self._lock:
                cursor = self._cursors.get(token)
            if cursor is None or cursor[0] != signature:
                raise _Invalid(f"The `pagination_token` query parameter value [{token}] is not valid")
            items = [item for item in items if int(item["id"]) < int(cursor[1])]
        size = min(max_results, self.page_size or max_results)
        page, rest = items[:size], items[size:]
        next_token = None
        if page and rest:
            next_token = secrets.token_hex(12)  # opaque, >= 16 characters like X's
            with self._lock:
                self._cursors[next_token] = (signature, page[-1]["id"])
        return page, next_token

    def _includes(self, items: list[dict[str, Any]], user_field: str, expansions: str) -> dict[str, Any]:
        wanted = set(expansions.split(",")) if expansions else set()
        includes: dict[str, Any] = {}
        if user_field in wanted:
            ids = list(dict.fromkeys(str(item[user_field]) for item in items if item.get(user_field)))
            users = [self.users[i] for i in ids if i in self.users]
            if users:
                includes["users"] = users
        if "attachments.media_keys" in wanted:
            keys = [k for item in items for k in (item.get("attachments") or {}).get("media_keys", [])]
            media = [self.media[k] for k in dict.fromkeys(keys) if k in self.media]
            if media:
                includes["media"] = media
        return includes

    def _listing(self, items: list[dict[str, Any]], query: dict[str, str], max_results: int, signature: str, *,
                 user_field: str, bounds: bool) -> dict[str, Any]:
        """One page of ``items`` with its ``meta`` (``newest_id``/``oldest_id`` when ``bounds``) and ``includes``."""
        page, next_token = self._page(items, query, max_results, signature)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page and bounds:
            meta["newest_id"], meta["oldest_id"] = page[0]["id"], page[-1]["id"]
        if next_token:
            meta["next_token"] = next_token
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = page
            includes = self._includes(page, user_field, query.get("expansions", ""))
            if includes:
                body["includes"] = includes
        return json.loads(json.dumps(body))


def _checked_query(request: SandboxRequest, allowed: set[str], *, low: int, default: int) -> tuple[dict[str, str], int]:
    """The query (each parameter's last value) and ``max_results``, refused as X refuses them."""
    query = {k: v[-1] for k, v in request.query.items()}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise _Invalid(f"The query parameters [{', '.join(unknown)}] is not one of [{', '.join(sorted(allowed))}]")
    try:
        max_results = int(query.get("max_results") or default)
    except ValueError:
        max_results = -1
    if not low <= max_results <= 100:
        raise _Invalid(f"The `max_results` query parameter value [{query.get('max_results')}] is not between {low} and 100")
    return query, max_results
