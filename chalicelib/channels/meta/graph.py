"""Meta Graph API reads for the backfill: Page feed comments, Messenger and Instagram
conversations, Instagram media comments; and, for the ticket sync's profile lookups,
the User Profile API (``GET /{PSID or IGSID}?fields=...``).

Webhooks get lost: Meta drops a Page/Instagram delivery after retrying for up to 36
hours and unsubscribes a Messenger app after one hour of failures. The scheduled
backfill (``chalicelib/channels/meta/backfill.py``) re-reads what the webhooks should have brought,
through these endpoints (Page access token for the Page, and for the Instagram
professional account linked to it):

* ``GET /{page-id}/feed?since=<unix>&fields=id,created_time,permalink_url,comments...``:
  the Page's posts, newest first, each with its comments. Comments are requested
  with ``filter(stream)`` (top-level comments *and* replies in one flat list, a
  reply carrying ``parent{id}``) and ``order(reverse_chronological)``, so a new reply
  under an old comment is on the first page, not buried under older comments.
* ``GET /{page-id}/conversations?platform=messenger&fields=id,updated_time,participants,
  messages.limit(50){id,from,to,message,created_time,attachments}``: conversations by
  ``updated_time``, newest first. Meta: no time-based pagination on this edge, and
  only the 20 most recent messages of a conversation have details [M].
* ``GET /{ig-user-id}/media?fields=id,timestamp,permalink,comments{id,from,username,
  text,timestamp,parent_id,replies{...}}``: the account's media, newest first.
* ``GET /{ig-user-id}/conversations?platform=instagram&fields=...``: Instagram Direct.

Paging follows ``paging.next`` (absolute URLs) only on the configured origin, with any
``access_token`` stripped from it: the token travels in ``Authorization: Bearer``,
never in a URL that could be logged. Every listing is bounded by ``max_pages``.

Identity is the crux: a comment or message that reaches us by both the webhook and
the backfill must produce the same ``message_id``, ``conversation_key``, direction and
author id, so the store's conditional put keeps one copy. Rather than re-implementing
``meta.py``'s rules, each Graph object is rewritten into the webhook's shape and
handed to ``meta.normalize_feed_comment`` / ``normalize_chat_message`` /
``normalize_instagram_comment``; ``raw`` is then the Graph object itself.

Errors come back in Graph's envelope ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` (see "Handling Errors" in the Graph API guide):

* code 190 (and 102): the access token expired, was revoked or is invalid ->
  ``GraphAuthError``;
* codes 4 (app), 17 (user), 32 (Page), 613 (custom) and the Business Use Case codes
  80001-80014, or HTTP 429 -> ``GraphRateLimited``, with the wait read from the
  ``X-Business-Use-Case-Usage`` header's ``estimated_time_to_regain_access`` (minutes);
* anything else -> ``GraphError``; no answer at all -> ``GraphUnavailable``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from chalicelib.channels.base import Profile
from chalicelib.channels.common import EventNormalizer
from chalicelib.channels.meta import webhook as meta
from chalicelib.http import BearerClients, HttpResponse, JsonHttpClient, TransportError, UnsafeUrl, json_list, json_object
from chalicelib.models import NormalizedBatch, Platform, SocialMessage

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://graph.facebook.com"
BASE_URL_ENV = "META_GRAPH_URL"
DEFAULT_VERSION = "v23.0"

PAGE_SIZE = 25  # posts, conversations or media per page
DEFAULT_MAX_PAGES = 10  # top-level pages per listing per run
NESTED_MAX_PAGES = 5  # extra pages of one post's comments / one conversation's messages

# Comments: replies included (filter=stream), newest first; ``parent`` tells a reply.
_COMMENT_FIELDS = "id,from,message,created_time,parent{id},attachment,permalink_url"
FEED_FIELDS = (
    "id,created_time,updated_time,permalink_url,"
    f"comments.filter(stream).order(reverse_chronological).limit(100){{{_COMMENT_FIELDS}}}"
)
CONVERSATION_FIELDS = "id,updated_time,participants,messages.limit(50){id,from,to,message,created_time,attachments}"
_IG_COMMENT_FIELDS = "id,from,username,text,timestamp,parent_id"
IG_MEDIA_FIELDS = f"id,timestamp,permalink,comments.limit(50){{{_IG_COMMENT_FIELDS},replies{{{_IG_COMMENT_FIELDS}}}}}"

# Graph error codes (Graph API "Handling Errors", Messenger "Common Error Codes"), for
# every caller that reads Graph's errors: this client, the reply sender, the token check.
AUTH_CODES = frozenset({102, 190})
EXPIRED_SUBCODES = frozenset({463})  # of code 190: the token expired
REVOKED_REASONS = {  # the other subcodes of code 190: why the token no longer works
    458: "the app was removed",
    459: "the account needs to log in to Facebook to fix a checkpoint",
    460: "the password was changed",
    464: "the account is not confirmed",
    467: "the person logged out or the session was invalidated",
    492: "the session is no longer valid",
}
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
BUSINESS_USAGE_HEADER = "x-business-use-case-usage"
APP_USAGE_HEADER = "x-app-usage"


# --- errors ----------------------------------------------------------------------------


class GraphError(Exception):
    """The Graph API refused a request, in words a person on call can act on."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        status: int | None = None,
        fbtrace_id: str | None = None,
        account_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.subcode = subcode
        self.status = status
        self.fbtrace_id = fbtrace_id
        self.account_id = account_id


class GraphAuthError(GraphError):
    """Code 190/102: the access token expired, was revoked or is invalid (or none is configured)."""


class GraphRateLimited(GraphError):
    """Codes 4/17/32/613/800xx or HTTP 429: wait ``retry_after`` (None when Meta did not say)."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GraphUnavailable(GraphError):
    """No answer from the Graph API (connection refused, timeout, reset)."""


def business_usage_wait(header: str | None) -> timedelta | None:
    """The longest ``estimated_time_to_regain_access`` (minutes) in ``X-Business-Use-Case-Usage``.

    The header is JSON: ``{"<object id>": [{"type": "pages", "call_count": 100,
    "total_cputime": 20, "total_time": 30, "estimated_time_to_regain_access": 12}]}``.
    None when the header is absent, malformed or names no wait.
    """
    if not header:
        return None
    try:
        usage = json.loads(header)
    except ValueError:
        return None
    minutes = 0.0
    if isinstance(usage, dict):
        for entries in usage.values():
            for entry in entries if isinstance(entries, list) else [entries]:
                if isinstance(entry, dict):
                    try:
                        minutes = max(minutes, float(entry.get("estimated_time_to_regain_access") or 0))
                    except (TypeError, ValueError):
                        continue
    return timedelta(minutes=minutes) if minutes > 0 else None


def _error_of(response: HttpResponse) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def raise_for_graph_error(response: HttpResponse, *, what: str, account_id: str | None = None) -> None:
    """Raise the plain-words exception for a Graph error answer (no-op for a 2xx)."""
    error = _error_of(response)
    if response.ok and not error:
        return
    code, subcode = _as_int(error.get("code")), _as_int(error.get("error_subcode"))
    # Meta's message can name the object but never carries customer text; it is kept short.
    detail = str(error.get("message") or "")[:200]
    common: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "status": response.status,
        "fbtrace_id": error.get("fbtrace_id"),
        "account_id": account_id,
    }
    who = f" for account {account_id}" if account_id else ""
    if code in AUTH_CODES:
        raise GraphAuthError(
            f"Meta rejected the access token{who} while reading {what} (code {code}"
            + (f", subcode {subcode}" if subcode else "")
            + "): it expired, was revoked or the user changed their password. Generate a new Page access "
            "token and update the secret." + (f" Meta says: {detail}" if detail else ""),
            **common,
        )
    if code in RATE_LIMIT_CODES or response.status == 429:
        wait = business_usage_wait(response.header(BUSINESS_USAGE_HEADER))
        when = f"about {int(wait.total_seconds() // 60)} minutes" if wait else "an unknown time"
        raise GraphRateLimited(
            f"Meta is throttling requests{who} while reading {what} (code {code}); access returns in {when}",
            retry_after=wait,
            **common,
        )
    if code in (10,) or (code is not None and 200 <= code <= 299):
        raise GraphError(
            f"Meta refused {what}{who}: a permission is missing (code {code}); the token needs "
            "pages_read_engagement / pages_messaging / instagram_manage_comments / instagram_manage_messages"
            + (f". Meta says: {detail}" if detail else ""),
            **common,
        )
    raise GraphError(
        f"Meta answered {response.status} for {what}{who}"
        + (f" (code {code}" + (f", subcode {subcode}" if subcode else "") + ")" if code is not None else "")
        + (f": {detail}" if detail else ""),
        **common,
    )


# --- the client ------------------------------------------------------------------------


def _strip_token(url: str) -> str:
    """``url`` without any ``access_token`` query parameter (Graph puts it in ``paging.next``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def parse_graph_time(value: Any) -> datetime | None:
    """Graph's ``2025-03-22T18:16:28+0000`` (or epoch seconds) as an aware datetime; None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) or str(value).isdigit():
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    text = str(value).replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"  # "+0000" -> "+00:00"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _older_than(value: Any, floor: datetime | None) -> bool:
    moment = parse_graph_time(value)
    return floor is not None and moment is not None and moment < floor


class GraphClient:
    """Reads Pages, Messenger, and Instagram data from the Graph API for the backfill.

    ``token_provider(account_id)`` returns the access token for a Page or Instagram
    account id; it is called per request so a rotated secret is picked up without a
    new client. ``http`` is a ready ``JsonHttpClient`` used as is for every account
    (tests); then ``token_provider`` is not consulted. ``pool`` is shared by the
    ``JsonHttpClient``\\ s built here (one per distinct token).
    """

    def __init__(
        self,
        base_url: str | None = None,
        version: str = DEFAULT_VERSION,
        token_provider: Callable[[str], str] | None = None,
        http: JsonHttpClient | None = None,
        *,
        pool: Any = None,
        timeout: tuple[float, float] = (3.05, 10),
        page_size: int = PAGE_SIZE,
        nested_max_pages: int = NESTED_MAX_PAGES,
    ) -> None:
        if http is None and token_provider is None:
            raise ValueError("GraphClient needs a token_provider (or a ready http client)")
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")
        self.version = version.strip("/")
        self._token_provider = token_provider
        self._fixed_http = http
        self._clients = BearerClients(self.base_url, pool=pool, timeout=timeout)
        self.page_size = page_size
        self.nested_max_pages = nested_max_pages
        # Last usage headers seen per account, for logs ("how close to the limit were we").
        self.usage: dict[str, dict[str, str]] = {}
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"GraphClient({self.base_url!r}, {self.version!r})"

    # --- plumbing --------------------------------------------------------------------

    def _http(self, account_id: str) -> JsonHttpClient:
        if self._fixed_http is not None:
            return self._fixed_http
        assert self._token_provider is not None
        try:
            token = (self._token_provider(account_id) or "").strip()
        except Exception as exc:  # a missing secret is an auth problem of this account only
            raise GraphAuthError(
                f"no Meta access token is configured for account {account_id}: {exc}", account_id=account_id
            ) from exc
        if not token:
            raise GraphAuthError(f"no Meta access token is configured for account {account_id}", account_id=account_id)
        return self._clients.client(token)

    def path(self, *parts: str) -> str:
        """``/v23.0/<parts...>``."""
        return "/" + "/".join([self.version, *(str(p).strip("/") for p in parts)])

    def get(self, account_id: str, path: str, params: Mapping[str, Any] | None = None, *, what: str = "") -> dict[str, Any]:
        """One GET (``path`` relative to the base URL, or an absolute ``paging.next`` URL).

        Returns the JSON object; raises ``GraphAuthError`` / ``GraphRateLimited`` /
        ``GraphError`` for an error answer and ``GraphUnavailable`` for no answer.
        """
        account_id = str(account_id)
        what = what or urlsplit(path).path
        target = _strip_token(path) if path.startswith(("http://", "https://")) else path
        try:
            response = self._http(account_id).request("GET", target, params=dict(params or {}))
        except UnsafeUrl as exc:
            raise GraphError(f"refusing to follow a paging link off the Graph origin: {exc}", account_id=account_id) from exc
        except TransportError as exc:
            raise GraphUnavailable(f"no answer from the Graph API while reading {what}: {exc}", account_id=account_id) from exc
        self.requests_made += 1
        usage = {name: value for name in (BUSINESS_USAGE_HEADER, APP_USAGE_HEADER) if (value := response.header(name))}
        if usage:
            self.usage[account_id] = usage
        raise_for_graph_error(response, what=what, account_id=account_id)
        try:
            body = response.json()
        except ValueError as exc:
            raise GraphError(f"the Graph API answered {what} with a body that is not JSON", account_id=account_id) from exc
        if not isinstance(body, dict):
            raise GraphError(f"the Graph API answered {what} with unexpected JSON", account_id=account_id)
        return body

    def pages(
        self, account_id: str, path: str, params: Mapping[str, Any], *, max_pages: int, what: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Pages of an edge, following ``paging.next`` for at most ``max_pages`` pages."""
        target: str | None = path
        query: Mapping[str, Any] | None = params
        for _ in range(max(1, max_pages)):
            assert target is not None
            page = self.get(account_id, target, query, what=what)
            yield page
            target = _next_link(page)
            query = None  # the next link carries every parameter itself
            if not target:
                return

    def expand(
        self,
        account_id: str,
        container: dict[str, Any],
        edge: str,
        *,
        stop_before: datetime | None,
        time_field: str,
        newest_first: bool = True,
    ) -> bool:
        """Fetch further pages of a nested edge (``container[edge]``) into its ``data``.

        For a newest-first edge, pages are followed while the last item is not older
        than ``stop_before``; an edge in another (or an unknown) order is read to the
        end. Either way at most ``nested_max_pages`` extra pages. Returns True when
        items may remain unread (the budget ran out).
        """
        if not newest_first:
            stop_before = None
        nested = container.get(edge)
        if not isinstance(nested, dict):
            return False
        data = nested.setdefault("data", [])
        link = _next_link(nested)
        for _ in range(self.nested_max_pages):
            if not link or not data or _older_than(data[-1].get(time_field) if isinstance(data[-1], dict) else None, stop_before):
                return False
            page = self.get(account_id, link, what=f"{edge} of {container.get('id')}")
            more = json_list(page.get("data"))
            data.extend(more)
            link = _next_link(page)
            if not more:
                return False
        return bool(link) and not (data and isinstance(data[-1], dict) and _older_than(data[-1].get(time_field), stop_before))

    # --- listings --------------------------------------------------------------------

    def feed(
        self, page_id: str, *, since: datetime, comments_since: datetime | None = None, max_pages: int = DEFAULT_MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """The Page's posts created since ``since``, newest first, each with its comments.

        A post's comments are followed past the first 100 while they are not older than
        ``comments_since``. A post whose comments were cut short by the nested page
        budget carries ``"_truncated": True``.
        """
        params = {"fields": FEED_FIELDS, "since": _unix(since), "limit": self.page_size}
        for page in self.pages(page_id, self.path(page_id, "feed"), params, max_pages=max_pages, what="the Page feed"):
            for post in _data(page):
                if self.expand(page_id, post, "comments", stop_before=comments_since, time_field="created_time"):
                    post["_truncated"] = True
                yield post

    def conversations(
        self, account_id: str, *, platform: str = "messenger", since: datetime | None = None, max_pages: int = DEFAULT_MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """Conversations updated since ``since`` (newest first), each with its newest messages.

        The edge has no time-based pagination: paging stops at the first conversation
        whose ``updated_time`` is older than ``since``.
        """
        params = {"platform": platform, "fields": CONVERSATION_FIELDS, "limit": self.page_size}
        what = f"{platform} conversations"
        for page in self.pages(account_id, self.path(account_id, "conversations"), params, max_pages=max_pages, what=what):
            for conversation in _data(page):
                if _older_than(conversation.get("updated_time"), since):
                    return
                if self.expand(account_id, conversation, "messages", stop_before=since, time_field="created_time"):
                    conversation["_truncated"] = True
                yield conversation

    def ig_media(
        self, ig_id: str, *, since: datetime, comments_since: datetime | None = None, max_pages: int = DEFAULT_MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """The Instagram account's media published since ``since``, newest first, with comments."""
        params = {"fields": IG_MEDIA_FIELDS, "since": _unix(since), "limit": self.page_size}
        for page in self.pages(ig_id, self.path(ig_id, "media"), params, max_pages=max_pages, what="Instagram media"):
            for media in _data(page):
                if _older_than(media.get("timestamp"), since):
                    return  # in case the edge ignores ``since``: media are newest first
                # Meta's own example lists a media's comments oldest first, and the edge
                # takes no order modifier: read them all (bounded), not "until old ones".
                if self.expand(ig_id, media, "comments", stop_before=comments_since, time_field="timestamp", newest_first=False):
                    media["_truncated"] = True
                yield media

    # --- people ----------------------------------------------------------------------

    def user_profile(self, account_id: str, user_id: str, fields: str) -> dict[str, Any]:
        """The User Profile API: what Meta shows of a person (PSID or IGSID) who wrote to
        ``account_id``, read with that account's (Page) token."""
        return self.get(account_id, self.path(quote(str(user_id), safe="")), {"fields": fields}, what="a user profile")


def messenger_profile(graph: GraphClient, message: SocialMessage) -> Profile:
    """A Messenger customer's name: ``GET /{PSID}?fields=first_name,last_name,name`` with the
    Page's token (Meta answers once the person has messaged the Page; business apps also need
    the "Business Asset User Profile Access" feature)."""
    body = graph.user_profile(message.account_id, message.author.platform_id, "first_name,last_name,name")
    full = " ".join(part for part in (_profile_text(body.get("first_name")), _profile_text(body.get("last_name"))) if part)
    return Profile(display_name=_profile_text(body.get("name")) or _profile_text(full))


def instagram_profile(graph: GraphClient, message: SocialMessage, pages: Mapping[str, str]) -> Profile:
    """An Instagram customer's name, username and followers: ``GET /{IGSID}?fields=name,username,
    follower_count`` with the token of the Page that serves the account (Facebook Login), else the
    account's own; only for people who messaged the account ("User consent is required" otherwise)."""
    account = pages.get(message.account_id, message.account_id)
    body = graph.user_profile(account, message.author.platform_id, "name,username,follower_count")
    followers = body.get("follower_count")
    return Profile(
        display_name=_profile_text(body.get("name")),
        handle=_profile_text(body.get("username")),
        followers=followers if isinstance(followers, int) and not isinstance(followers, bool) and followers >= 0 else None,
    )


def _profile_text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def instagram_pages(value: str | None) -> dict[str, str]:
    """``META_INSTAGRAM_PAGES`` (``<ig id>:<page id>,...``): the Facebook Page, and so the Page
    token, that serves each Instagram account (Instagram API with Facebook Login)."""
    pairs = {}
    for item in (value or "").split(","):
        ig, _, page = item.strip().partition(":")
        if ig.strip() and page.strip():
            pairs[ig.strip()] = page.strip()
    return pairs


def _data(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    data = page.get("data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _next_link(container: Mapping[str, Any]) -> str | None:
    paging = container.get("paging")
    link = paging.get("next") if isinstance(paging, dict) else None
    return str(link) if link else None


# --- normalizers -----------------------------------------------------------------------
#
# Each rewrites a Graph object into the webhook ``value``/``event`` that meta.py
# normalizes, so both paths share one implementation of ids, keys and direction.


def _with_raw(message: SocialMessage, raw: dict[str, Any]) -> SocialMessage:
    return message.model_copy(update={"raw": raw})


def _comment_attachment(attachment: Any) -> dict[str, str]:
    """Graph's ``attachment{type,media{image{src}},url}`` as the webhook's ``photo``/``video``."""
    if not isinstance(attachment, dict):
        return {}
    kind = str(attachment.get("type") or "")
    image = ((attachment.get("media") or {}).get("image") or {}).get("src")
    if kind.startswith("video"):
        url = (attachment.get("media") or {}).get("source") or attachment.get("url") or image
        return {"video": url} if url else {}
    if image:
        return {"photo": image}
    return {}


def _feed_comment_value(post: dict[str, Any], comment: dict[str, Any], parent_id: str | None) -> dict[str, Any]:
    post_id = str(post["id"])
    comment_id = str(comment["id"])
    # A comment the token may not see the author of comes without ``from``. The id is
    # per comment so two hidden authors never share one helpdesk requester.
    sender = comment.get("from") if isinstance(comment.get("from"), dict) else {"id": f"unknown:{comment_id}"}
    value: dict[str, Any] = {
        "item": "comment",
        "verb": "add",
        "comment_id": comment_id,
        "post_id": post_id,
        "parent_id": parent_id or post_id,
        "from": sender,
        "message": comment.get("message") or "",
        "created_time": comment.get("created_time"),
        "post": {"id": post_id, "permalink_url": post.get("permalink_url")},
        **_comment_attachment(comment.get("attachment")),
    }
    return value


def normalize_feed_comments(page_id: str, post: dict[str, Any], raw: dict[str, Any] | None = None) -> NormalizedBatch:
    """Every comment and reply of one feed post (as ``GET /{page-id}/feed`` returns it).

    Comments come flat (``filter(stream)``, replies with ``parent{id}``) or nested
    (replies in each comment's own ``comments``); both are handled. ``raw`` replaces
    the stored audit copy (default: each comment's own Graph object).
    """
    page_id = str(page_id)

    def one(comment: dict[str, Any], parent_id: str | None) -> SocialMessage:
        parent = comment.get("parent")
        parent_id = str(parent["id"]) if isinstance(parent, dict) and parent.get("id") else parent_id
        value = _feed_comment_value(post, comment, parent_id)
        audit = raw if raw is not None else {k: v for k, v in comment.items() if k != "comments"} | {"post_id": str(post["id"])}
        return meta.normalize_feed_comment(page_id, value, raw=audit)

    return _comment_tree(post.get("comments"), "comments", one)


def _comment_tree(
    comments: Any, replies_field: str, normalize: Callable[[dict[str, Any], str | None], SocialMessage]
) -> NormalizedBatch:
    """Every comment of a Graph ``comments`` edge and the replies nested in each one's
    ``replies_field``, each normalized apart (one that fails is quarantined, not the
    rest); ``normalize(comment, parent_id)``, ``parent_id`` None for a top-level one."""
    normalizer = EventNormalizer("meta_graph")

    def one(comment: dict[str, Any], parent_id: str | None) -> NormalizedBatch:
        batch = NormalizedBatch(messages=[normalize(comment, parent_id)])
        nested = comment.get(replies_field)
        if isinstance(nested, dict):
            inner = EventNormalizer("meta_graph")
            inner.each(nested.get("data"), lambda reply: one(reply, str(comment["id"])))
            batch.extend(inner.batch)
        return batch

    normalizer.each(comments.get("data") if isinstance(comments, dict) else None, lambda c: one(c, None))
    return normalizer.batch


def webhook_mid(graph_message_id: str) -> str:
    """The webhook ``mid`` of a message read through the Conversations API.

    Current ids are the same on both paths (``m_...``). Messages from before the
    2018 id change show ``m_mid.<...>`` in the Graph API but ``mid.<...>`` in the
    webhook, so that one prefix is removed [M: observed by Bot Framework users].
    """
    value = str(graph_message_id)
    return value[2:] if value.startswith("m_mid.") else value


def _graph_attachments(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Conversations API attachments as the webhook's ``[{"type", "payload": {"url"}}]``."""
    attachments = message.get("attachments")
    found = attachments.get("data") if isinstance(attachments, dict) else attachments
    out: list[dict[str, Any]] = []
    for item in found if isinstance(found, list) else []:
        if not isinstance(item, dict):
            continue
        mime = str(item.get("mime_type") or "")
        if isinstance(item.get("image_data"), dict):
            out.append({"type": "image", "payload": {"url": item["image_data"].get("url")}})
        elif isinstance(item.get("video_data"), dict):
            out.append({"type": "video", "payload": {"url": item["video_data"].get("url")}})
        elif mime.startswith("audio/"):
            out.append({"type": "audio", "payload": {"url": item.get("file_url")}})
        else:
            out.append({"type": "file", "payload": {"url": item.get("file_url")}})
    return out


def _recipient(account_id: str, message: dict[str, Any], conversation: dict[str, Any], sender: str) -> str:
    to = message.get("to")
    for person in (to.get("data") if isinstance(to, dict) else to) or []:
        if isinstance(person, dict) and person.get("id") and str(person["id"]) != sender:
            return str(person["id"])
    if sender != account_id:
        return account_id  # a customer writes to the account
    # The account wrote and ``to`` is absent: the other participant of the conversation.
    participants = conversation.get("participants")
    others = [
        str(p["id"])
        for p in ((participants.get("data") if isinstance(participants, dict) else participants) or [])
        if isinstance(p, dict) and p.get("id") and str(p["id"]) != account_id
    ]
    if not others:
        raise KeyError("the message names no recipient and the conversation no other participant")
    return others[0]


def normalize_conversation_messages(
    page_id: str, conversation: dict[str, Any], platform: Platform = Platform.MESSENGER
) -> NormalizedBatch:
    """Every message of one conversation from ``GET /{id}/conversations`` (Messenger or Instagram).

    ``page_id`` is the receiving account (the Page, or the Instagram account id for
    ``platform=Platform.INSTAGRAM``). Messages the account sent are outbound, keyed on
    the customer, exactly as the webhook's echoes are.
    """
    account_id = str(page_id)
    normalizer = EventNormalizer("meta_graph")

    def one(message: dict[str, Any]) -> NormalizedBatch:
        sender = str(message["from"]["id"])
        created = parse_graph_time(message["created_time"])
        if created is None:
            raise ValueError("the message has no created_time")
        event = {
            "sender": {"id": sender},
            "recipient": {"id": _recipient(account_id, message, conversation, sender)},
            "timestamp": round(created.timestamp() * 1000),
            "message": {
                "mid": webhook_mid(message["id"]),
                "text": message.get("message") or "",
                "attachments": _graph_attachments(message),
                "is_echo": sender == account_id,
            },
        }
        normalized = meta.normalize_chat_message(platform, account_id, event, raw=event)
        audit = {**message, "conversation_id": conversation.get("id")}
        return NormalizedBatch(messages=[_with_raw(normalized, audit)])

    messages = conversation.get("messages")
    normalizer.each((messages or {}).get("data") if isinstance(messages, dict) else messages, one)
    return normalizer.batch


def _ig_comment_value(media: dict[str, Any], comment: dict[str, Any], parent_id: str | None) -> dict[str, Any]:
    sender = comment.get("from") if isinstance(comment.get("from"), dict) else None
    if sender is None:
        # Older API versions return only ``username`` (and ``user`` for the account's own comments).
        user = json_object(comment.get("user"))
        sender = {"id": user.get("id") or f"unknown:{comment['id']}", "username": comment.get("username")}
    elif not sender.get("username") and comment.get("username"):
        sender = {**sender, "username": comment["username"]}
    value: dict[str, Any] = {
        "id": str(comment["id"]),
        "text": comment.get("text") or "",
        "from": sender,
        "media": {"id": str(media["id"]), "permalink": media.get("permalink")},
        "timestamp": comment.get("timestamp"),
    }
    parent = comment.get("parent_id") or parent_id
    if parent:
        value["parent_id"] = str(parent)
    return value


def normalize_ig_media_comments(ig_id: str, media: dict[str, Any]) -> NormalizedBatch:
    """Every comment and reply on one Instagram media object from ``GET /{ig-user-id}/media``."""
    account_id = str(ig_id)

    def one(comment: dict[str, Any], parent_id: str | None) -> SocialMessage:
        value = _ig_comment_value(media, comment, parent_id)
        audit = {k: v for k, v in comment.items() if k != "replies"} | {"media_id": str(media["id"])}
        return meta.normalize_instagram_comment(account_id, value, raw=audit)

    return _comment_tree(media.get("comments"), "replies", one)
