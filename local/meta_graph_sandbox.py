"""A local stand-in for the Meta Graph API read endpoints the backfill uses.

Pure stdlib, on ``local.sandbox_http.JsonSandbox``: ``MetaGraphSandbox().start()``
serves on a background thread on 127.0.0.1 (``.url`` is ``META_GRAPH_URL``):

* ``GET /v23.0/{page-id}/feed?since=&limit=&fields=``: the Page's posts (newest first)
  created at or after ``since``, each with ``comments`` shaped by the ``fields``
  modifiers the client sends: ``filter(stream)`` (replies flat, with ``parent{id}``)
  or top-level comments with their replies nested in ``comments``;
  ``order(reverse_chronological)``; ``limit(N)``. A post's further comments are
  paged through ``GET /v23.0/{post-id}/comments``.
* ``GET /v23.0/{page-id|ig-id}/conversations?platform=messenger|instagram``:
  conversations by ``updated_time`` (newest first), with ``participants`` and the
  newest messages (``messages.limit(N)``); more through ``GET /{conversation-id}/messages``.
* ``GET /v23.0/{ig-user-id}/media?since=``: media newest first with ``comments``
  (oldest first, as in Meta's example) and nested ``replies``; more comments through
  ``GET /{media-id}/comments``.

``page_size`` caps top-level pages and ``nested_page_size`` embedded/nested pages
below what the client asks for, so paging can be tested with a handful of objects.

Behaviours copied from Graph: an ``access_token`` query parameter or an
``Authorization: Bearer|OAuth <token>`` header, checked against the token of the
account owning the object (missing: code 104; unknown or expired: code 190; another
account's token: code 200); errors in Graph's ``{"error": {...}}`` envelope;
``paging.cursors`` and absolute ``paging.next`` URLs that, like Graph's, repeat the
access token (a client must not send it back in the URL: ``requests`` records what
it did). ``inject_error(code=..)`` queues faults (190 expired token, 4/17/32/613/
800xx throttling with an ``X-Business-Use-Case-Usage`` header, anything else).
``expire_token(account)`` makes an account's token fail with 190/463 until
``set_token`` gives it a new one.

Sending (the outbound replies, ``chalicelib/replies``), each accepted send kept in
``sent()`` with its body and headers:

* ``POST /{comment|post}/comments {message}``: a Page comment (threads stay two levels
  deep: an answer to a reply lands under its top-level comment) -> ``{"id"}``;
* ``POST /{ig-comment}/replies {message}`` -> ``{"id"}``;
* ``POST /{page|ig-account}/messages``: the Send API. ``recipient.id`` needs a seeded
  conversation (else 100/2018001); ``messaging_type: RESPONSE`` within 24 h of the
  user's last message, ``MESSAGE_TAG`` + ``HUMAN_AGENT`` within 7 days when
  ``approve_human_agent(account)``, else 10/2018278. ``recipient.comment_id`` /
  ``post_id``: a private reply, once per comment (10900), within 7 days ->
  ``{"recipient_id", "message_id"}``;
* ``POST /{phone-number-id}/messages`` with ``messaging_product: whatsapp``: needs
  ``add_whatsapp_contact(phone, wa_id, last_inbound=...)`` within 24 h (else 131047,
  with ``error_data.details``) -> ``{"messaging_product", "contacts", "messages"}``.

Over HTTP (for ``make demo``, no token): ``POST /__sandbox/add_post_comment``,
``add_ig_comment``, ``add_conversation_message``, ``add_whatsapp_contact`` (the method's
keyword arguments as JSON) and ``GET /__sandbox/sent`` (``JsonSandbox.serve_controls``).

The User Profile API (``ProfileLookup`` names customers with it): ``GET /v23.0/{PSID|IGSID}
?fields=...`` answers the fields asked for that ``add_user_profile()`` seeded (Messenger:
``name``, ``first_name``, ``last_name``, ``profile_pic``...; Instagram: ``name``, ``username``,
``profile_pic``, ``follower_count``...) plus ``id``, with the token of the account the person
wrote to; a field the node does not have is 100 ``Tried accessing nonexisting field``; an
unknown person 100/33, as Graph answers for an id it will not show.

``delete_object(id)`` makes replies to a comment fail with 100/33;
``drop_answer()`` applies the next send but drops the connection before answering;
``inject_error(code=..., error_data=..., is_transient=...)`` as above.

Adding endpoints (WhatsApp media, ...) is a ``self.route(...)`` line in
``__init__`` plus a handler taking ``(request, **path groups)`` and returning
``(status, payload, headers)``; ``_page_of`` / ``_graph_error`` / ``owner_of`` are
there to reuse.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from local.sandbox_http import JsonSandbox, Reply, SandboxRequest

DEFAULT_VERSION = "v23.0"
PAGE_ID = "448242228374517"
IG_ACCOUNT_ID = "17841405726653026"
DEFAULT_PAGE_TOKEN = "local-page-token"
DEFAULT_IG_TOKEN = "local-ig-token"

_V = r"/(?P<version>v\d+\.\d+)"
_ID = r"(?P<object_id>[^/]+)"
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
# What the User Profile API lets a Page token read of a person, per platform.
PROFILE_FIELDS = {
    "messenger": frozenset({"id", "name", "first_name", "last_name", "profile_pic", "locale", "timezone", "gender"}),
    "instagram": frozenset({"id", "name", "username", "profile_pic", "follower_count", "is_verified_user",
                            "is_user_follow_business", "is_business_follow_user"}),
}
_BUC_TYPE = {32: "pages", 80001: "pages", 80002: "instagram", 80006: "messenger"}


def graph_time(moment: float | int | datetime) -> str:
    """Graph's timestamp format: ``2025-03-22T18:16:28+0000``."""
    if isinstance(moment, datetime):
        moment = moment.timestamp()
    return datetime.fromtimestamp(float(moment), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _epoch(moment: float | int | datetime | None, default: float) -> float:
    if moment is None:
        return default
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _graph_error(status: int, code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException",
                 headers: dict[str, str] | None = None) -> Reply:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "Sandbox" + str(int(time.time()))}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}, dict(headers or {})


@dataclass
class GraphFault:
    """One injected error for requests whose path contains ``match`` and whose object
    belongs to ``account`` (None: any). ``count`` requests are answered with it.

    Throttling codes carry ``X-Business-Use-Case-Usage`` with ``regain_minutes``.
    """

    code: int = 190
    subcode: int | None = None
    status: int | None = None
    message: str | None = None
    match: str | None = None
    account: str | None = None
    count: int = 1
    regain_minutes: int = 10
    error_data: dict[str, Any] | None = None  # WhatsApp's {"messaging_product", "details"}
    is_transient: bool | None = None
    fired: int = 0

    def reply(self, owner: str | None) -> Reply:
        """The Graph error answer for this fault."""
        headers: dict[str, str] = {}
        if self.code in RATE_LIMIT_CODES:
            usage = {
                "type": _BUC_TYPE.get(self.code, "pages"),
                "call_count": 100,
                "total_cputime": 10,
                "total_time": 10,
                "estimated_time_to_regain_access": self.regain_minutes,
            }
            headers["x-business-use-case-usage"] = json.dumps({owner or "0": [usage]})
        default = {
            190: "Error validating access token: Session has expired.",
            4: "(#4) Application request limit reached",
            17: "(#17) User request limit reached",
            32: "(#32) Page request limit reached",
            613: "(#613) Calls to this api have exceeded the rate limit.",
        }.get(self.code, f"(#{self.code}) Injected sandbox error")
        status = self.status or (500 if self.code in (1, 2) else 400)
        reply = _graph_error(status, self.code, self.message or default, subcode=self.subcode, headers=headers)
        if self.error_data is not None:
            reply[1]["error"]["error_data"] = dict(self.error_data)
        if self.is_transient is not None:
            reply[1]["error"]["is_transient"] = self.is_transient
        return reply


class MetaGraphSandbox(JsonSandbox):
    """An in-memory Graph API (Page feed, conversations, Instagram media) on ``http://{host}:{port}``."""

    name = "meta-graph-sandbox"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        page_size: int | None = None,
        nested_page_size: int | None = None,
    ) -> None:
        super().__init__(host, port)
        self.page_size = page_size  # caps every top-level page below the client's ``limit``
        # caps comments/messages embedded in a parent and pages of the nested edges
        self.nested_page_size = nested_page_size
        self.reset()
        for method, pattern, handler, route_name in (
            ("GET", rf"{_V}/{_ID}/feed", self._feed, "page.feed"),
            ("GET", rf"{_V}/{_ID}/conversations", self._conversations, "conversations"),
            ("GET", rf"{_V}/{_ID}/media", self._media, "ig.media"),
            ("GET", rf"{_V}/{_ID}/comments", self._comments_edge, "object.comments"),
            ("GET", rf"{_V}/{_ID}/messages", self._messages_edge, "conversation.messages"),
            # Replies and sends (see "Sending" below): Page comment replies, Instagram
            # comment replies, and the Send API (Messenger, Instagram, private replies,
            # WhatsApp Cloud API) on one edge, told apart by the body.
            ("POST", rf"{_V}/{_ID}/comments", self._post_comment, "send.comment"),
            ("POST", rf"{_V}/{_ID}/replies", self._post_ig_reply, "send.ig_reply"),
            ("POST", rf"{_V}/{_ID}/messages", self._post_messages, "send.messages"),
            # A person's profile: the bare node, so it is matched after every edge above.
            ("GET", rf"{_V}/{_ID}", self._user_profile, "user.profile"),
        ):
            self.route(method, pattern, handler, name=route_name)
        # Not Graph: `make demo` (another process) seeds the customers' side and reads sent().
        self.serve_controls(add_post_comment=self.add_post_comment, add_ig_comment=self.add_ig_comment,
                            add_conversation_message=self.add_conversation_message,
                            add_whatsapp_contact=self.add_whatsapp_contact, add_user_profile=self.add_user_profile)

    # --- seeding ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every object, token, fault and request."""
        with self._lock:
            self.tokens: dict[str, str] = {}  # account id -> token
            self.expired: set[str] = set()  # accounts whose token fails with 190/463
            self.posts: dict[str, dict[str, Any]] = {}
            self.comments: dict[str, list[dict[str, Any]]] = {}  # post or media id -> comments
            self.conversations: dict[str, dict[str, Any]] = {}
            self.messages: dict[str, list[dict[str, Any]]] = {}  # conversation id -> messages
            self.media: dict[str, dict[str, Any]] = {}
            self.owners: dict[str, str] = {}  # object id -> account id
            self.faults: list[GraphFault] = []
            self.outbox: list[dict[str, Any]] = []  # every accepted send, in order
            self.deleted: set[str] = set()  # comments/posts their authors deleted
            self.private_replied: set[str] = set()  # comments/posts that got their one private reply
            self.whatsapp_contacts: dict[tuple[str, str], float] = {}  # (phone id, wa_id) -> last inbound
            self.human_agent_approved: set[str] = set()  # accounts whose app has the Human Agent feature
            self.profiles: dict[str, tuple[str, dict[str, Any]]] = {}  # PSID/IGSID -> (platform, fields)
            self._drops: list[list[Any]] = []  # [match, remaining]: accept the send, drop the answer
            self._ids = itertools.count(1)
            self._clock = time.time() - 3600
        self.forget_requests()

    def _tick(self, created: float | int | datetime | None) -> float:
        with self._lock:
            if created is None:
                self._clock += 1  # seeding order is time order
                return self._clock
            return _epoch(created, self._clock)

    def _new_id(self, prefix: str = "") -> str:
        return f"{prefix}{10**14 + next(self._ids)}"

    def set_token(self, account_id: str, token: str) -> None:
        """The access token that may read ``account_id``'s objects (clears ``expire_token``)."""
        with self._lock:
            self.tokens[str(account_id)] = token
            self.owners[str(account_id)] = str(account_id)
            self.expired.discard(str(account_id))

    def expire_token(self, account_id: str) -> None:
        """Make the account's token fail as expired (code 190, subcode 463)."""
        with self._lock:
            self.expired.add(str(account_id))

    def add_post(self, page_id: str, post_id: str | None = None, *, created: float | datetime | None = None,
                 message: str = "") -> dict[str, Any]:
        """Seed a Page post (``post_id`` defaults to ``<page>_<n>``)."""
        page_id = str(page_id)
        post_id = str(post_id or f"{page_id}_{self._new_id()}")
        post = {
            "id": post_id,
            "created_time": self._tick(created),
            "message": message,
            "permalink_url": f"https://www.facebook.com/{page_id}/posts/{post_id.split('_')[-1]}",
        }
        with self._lock:
            self.posts[post_id] = post
            self.comments.setdefault(post_id, [])
            self.owners[post_id] = page_id
            self.owners.setdefault(page_id, page_id)
        return copy.deepcopy(post)

    def add_post_comment(
        self,
        page_id: str,
        post_id: str,
        text: str = "",
        *,
        comment_id: str | None = None,
        from_id: str = "6001987654321012",
        from_name: str | None = "Dana Reyes",
        created: float | datetime | None = None,
        parent_id: str | None = None,
        attachment: dict[str, Any] | None = None,
        hide_author: bool = False,
    ) -> dict[str, Any]:
        """Seed a comment (or, with ``parent_id``, a reply) on a Page post; the post is created if new.

        Ids follow Graph's ``<post number>_<comment number>`` form. ``hide_author``
        leaves ``from`` out, as Graph does when the token may not see the commenter.
        """
        page_id, post_id = str(page_id), str(post_id)
        if post_id not in self.posts:
            self.add_post(page_id, post_id)
        comment_id = str(comment_id or f"{post_id.split('_')[-1]}_{self._new_id()}")
        comment: dict[str, Any] = {"id": comment_id, "message": text, "created_time": self._tick(created)}
        if not hide_author:
            comment["from"] = {"id": str(from_id), **({"name": from_name} if from_name else {})}
        if parent_id:
            comment["parent_id"] = str(parent_id)
        if attachment:
            comment["attachment"] = attachment
        with self._lock:
            self.comments[post_id].append(comment)
            self.owners[comment_id] = page_id
        return self._render_fb_comment(comment)

    def add_conversation_message(
        self,
        account_id: str,
        user_id: str,
        text: str = "",
        *,
        platform: str = "messenger",
        from_account: bool = False,
        message_id: str | None = None,
        created: float | datetime | None = None,
        attachments: list[dict[str, Any]] | None = None,
        user_name: str | None = None,
    ) -> dict[str, Any]:
        """Seed a message between ``account_id`` (Page or IG account) and ``user_id``.

        ``from_account`` makes it the account's own (outbound) message. The
        conversation (one per account, user and platform) is created if new.
        """
        account_id, user_id = str(account_id), str(user_id)
        conversation_id = f"t_{account_id}_{user_id}_{platform}"
        with self._lock:
            if conversation_id not in self.conversations:
                self.conversations[conversation_id] = {
                    "id": conversation_id, "account": account_id, "user": user_id, "platform": platform, "user_name": user_name,
                }
                self.messages[conversation_id] = []
                self.owners[conversation_id] = account_id
                self.owners.setdefault(account_id, account_id)
        prefix = "m_" if platform == "messenger" else "aWdf"
        message = {
            "id": str(message_id or self._new_id(prefix)),
            "from": account_id if from_account else user_id,
            "to": user_id if from_account else account_id,
            "message": text,
            "created_time": self._tick(created),
            "attachments": attachments or [],
        }
        with self._lock:
            self.messages[conversation_id].append(message)
            self.owners[message["id"]] = account_id
        return self._render_message(self.conversations[conversation_id], message)

    def add_ig_media(self, ig_id: str, media_id: str | None = None, *, created: float | datetime | None = None) -> dict[str, Any]:
        """Seed an Instagram media object of ``ig_id``."""
        ig_id = str(ig_id)
        media_id = str(media_id or self._new_id("179"))
        media = {"id": media_id, "timestamp": self._tick(created), "permalink": f"https://www.instagram.com/p/{media_id}/"}
        with self._lock:
            self.media[media_id] = media
            self.comments.setdefault(media_id, [])
            self.owners[media_id] = ig_id
            self.owners.setdefault(ig_id, ig_id)
        return copy.deepcopy(media)

    def add_ig_comment(
        self,
        ig_id: str,
        media_id: str,
        text: str = "",
        *,
        comment_id: str | None = None,
        from_id: str = "8001765432109876",
        username: str = "lena.k",
        created: float | datetime | None = None,
        parent_id: str | None = None,
    ) -> dict[str, Any]:
        """Seed a comment (or, with ``parent_id``, a reply) on Instagram media; the media is created if new."""
        ig_id, media_id = str(ig_id), str(media_id)
        if media_id not in self.media:
            self.add_ig_media(ig_id, media_id)
        comment: dict[str, Any] = {
            "id": str(comment_id or self._new_id("178")),
            "from": {"id": str(from_id), "username": username},
            "username": username,
            "text": text,
            "timestamp": self._tick(created),
        }
        if parent_id:
            comment["parent_id"] = str(parent_id)
        with self._lock:
            self.comments[media_id].append(comment)
            self.owners[comment["id"]] = ig_id
        return self._render_ig_comment(comment)

    def add_user_profile(self, account_id: str, user_id: str, *, platform: str = "messenger", **fields: Any) -> dict[str, Any]:
        """Seed what the User Profile API shows of a person who wrote to ``account_id``
        (``name=``, ``first_name=``, ``last_name=``; Instagram ``username=``...)."""
        unknown = set(fields) - PROFILE_FIELDS[platform]
        if unknown:
            raise ValueError(f"{platform} profiles have no field {sorted(unknown)}")
        with self._lock:
            self.profiles[str(user_id)] = (platform, {"id": str(user_id), **fields})
            self.owners[str(user_id)] = str(account_id)
            self.owners.setdefault(str(account_id), str(account_id))
        return {"id": str(user_id), **fields}

    def inject_error(self, code: int = 190, **fault: Any) -> GraphFault:
        """Queue an error answer (see ``GraphFault``), e.g. ``inject_error(code=4, account=PAGE_ID)``."""
        injected = GraphFault(code=code, **fault)
        with self._lock:
            self.faults.append(injected)
        return injected

    def token_in_query_count(self) -> int:
        """How many requests carried ``access_token`` in the URL (a client should send none)."""
        with self._lock:
            return sum(1 for r in self.requests if "access_token" in r.query)

    # --- auth and faults -------------------------------------------------------------

    def owner_of(self, object_id: str) -> str | None:
        """The account (Page or IG account) an object belongs to."""
        with self._lock:
            return self.owners.get(str(object_id))

    @staticmethod
    def token_of(request: SandboxRequest) -> str | None:
        """The access token of a request: ``access_token`` parameter or ``Bearer``/``OAuth`` header."""
        token = request.arg("access_token")
        if token:
            return token
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "oauth") and value.strip() else None

    def before(self, request: SandboxRequest) -> Reply | None:
        """Authenticate, then fire the first matching injected fault."""
        match = re.match(rf"{_V}/(?P<object_id>[^/]+)", request.path)
        object_id = match.group("object_id") if match else ""
        owner = self.owner_of(object_id)
        token = self.token_of(request)
        if not token:
            return _graph_error(400, 104, "An access token is required to request this resource.")
        with self._lock:
            holder = next((account for account, known in self.tokens.items() if known == token), None)
            if holder is None:
                return _graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
            if holder in self.expired:
                return _graph_error(400, 190, "Error validating access token: Session has expired.", subcode=463)
            if owner is not None and holder != owner:
                return _graph_error(403, 200, "(#200) Provide valid app ID / the token may not read this object",
                                    kind="OAuthException")
            for fault in self.faults:
                if fault.fired >= fault.count:
                    continue
                if fault.match is not None and fault.match not in request.path:
                    continue
                if fault.account is not None and fault.account != (owner or holder):
                    continue
                fault.fired += 1
                return fault.reply(owner or holder)
        return None

    def not_found(self, request: SandboxRequest) -> Reply:
        """Graph's answer for an unknown path."""
        return _graph_error(400, 100, f"Unsupported get request. Object with path '{request.path}' does not exist",
                            kind="GraphMethodException")

    def method_not_allowed(self, request: SandboxRequest) -> Reply:
        """Graph answers a wrong method like an unknown object."""
        return _graph_error(400, 100, f"Unsupported {request.method.lower()} request.", kind="GraphMethodException")

    # --- paging ----------------------------------------------------------------------

    @staticmethod
    def _cursor(offset: int) -> str:
        return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")

    @staticmethod
    def _offset(cursor: str | None) -> int:
        if not cursor:
            return 0
        padded = cursor + "=" * (-len(cursor) % 4)
        try:
            return int(base64.urlsafe_b64decode(padded).decode().split(":", 1)[1])
        except (ValueError, IndexError):
            return 0

    def _page_of(
        self, items: list[Any], *, offset: int, limit: int, path: str, params: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        """A Graph collection page: ``data`` plus ``paging`` with cursors and an absolute ``next``."""
        chunk = items[offset : offset + limit]
        body: dict[str, Any] = {"data": chunk}
        if chunk:
            paging: dict[str, Any] = {"cursors": {"before": self._cursor(offset), "after": self._cursor(offset + len(chunk))}}
            if offset + len(chunk) < len(items):
                query = {k: v for k, v in params.items() if v is not None and k not in ("after", "access_token")}
                query["after"] = self._cursor(offset + len(chunk))
                if token:
                    query["access_token"] = token  # Graph repeats the token in paging links
                paging["next"] = f"{self.url}{path}?{urlencode(query)}"
            body["paging"] = paging
        return body

    def _limit(self, request: SandboxRequest, default: int = 25, cap: int | None = None) -> int:
        try:
            limit = max(1, min(100, int(request.arg("limit") or default)))
        except ValueError:
            limit = default
        return min(limit, cap) if cap else limit

    @staticmethod
    def _modifier(fields: str, edge: str, name: str) -> str | None:
        """The ``.name(value)`` modifier of ``edge`` in a ``fields`` expression (e.g. ``comments.limit(100)``)."""
        found = re.search(rf"\b{edge}(?!\w)((?:\.\w+\([^)]*\))*)", fields)
        if not found:
            return None
        modifier = re.search(rf"\.{name}\(([^)]*)\)", found.group(1))
        return modifier.group(1) if modifier else None

    def _nested(
        self, items: list[Any], *, edge_path: str, limit: int, params: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        cap = self.nested_page_size
        return self._page_of(items, offset=0, limit=min(limit, cap) if cap else limit, path=edge_path, params=params, token=token)

    # --- the User Profile API ---------------------------------------------------------

    def _user_profile(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        with self._lock:
            found = self.profiles.get(object_id)
        if found is None:
            return _graph_error(400, 100, f"Unsupported get request. Object with ID '{object_id}' does not exist, cannot be "
                                "loaded due to missing permissions, or does not support this operation.",
                                subcode=33, kind="GraphMethodException")
        platform, profile = found
        asked = [name.strip() for name in (request.arg("fields") or "id,name").split(",") if name.strip()]
        missing = next((name for name in asked if name not in PROFILE_FIELDS[platform]), None)
        if missing:
            return _graph_error(400, 100, f"(#100) Tried accessing nonexisting field ({missing}) on node type (User)")
        return 200, {"id": object_id, **{name: profile[name] for name in asked if profile.get(name) is not None}}, {}

    # --- rendering -------------------------------------------------------------------

    def _render_fb_comment(self, comment: dict[str, Any], *, with_parent: bool = True) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in comment.items() if k not in ("parent_id", "created_time")}
        out["created_time"] = graph_time(comment["created_time"])
        out["permalink_url"] = f"https://www.facebook.com/{comment['id']}"
        if with_parent and comment.get("parent_id"):
            out["parent"] = {"id": comment["parent_id"]}
        return out

    def _fb_comments(self, post_id: str, *, stream: bool, newest_first: bool, nested: bool) -> list[dict[str, Any]]:
        with self._lock:
            found = sorted(self.comments.get(post_id, []), key=lambda c: c["created_time"], reverse=newest_first)
        if stream:
            return [self._render_fb_comment(c) for c in found]
        rendered = []
        for comment in (c for c in found if not c.get("parent_id")):
            item = self._render_fb_comment(comment)
            if nested:
                replies = [self._render_fb_comment(r) for r in found if r.get("parent_id") == comment["id"]]
                item["comments"] = {"data": replies}
            rendered.append(item)
        return rendered

    def _render_ig_comment(self, comment: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(comment)
        out["timestamp"] = graph_time(comment["timestamp"])
        return out

    def _ig_comments(self, media_id: str, *, nested: bool) -> list[dict[str, Any]]:
        with self._lock:
            # Oldest first, as in Meta's comment-moderation guide example.
            found = sorted(self.comments.get(media_id, []), key=lambda c: c["timestamp"])
        out = []
        for comment in (c for c in found if not c.get("parent_id")):
            item = self._render_ig_comment(comment)
            if nested:
                item["replies"] = {"data": [self._render_ig_comment(r) for r in found if r.get("parent_id") == comment["id"]]}
            out.append(item)
        return out

    def _person(self, conversation: dict[str, Any], person_id: str) -> dict[str, Any]:
        if person_id == conversation["account"]:
            return {"id": person_id, "name": "Brand"} if conversation["platform"] == "messenger" else {"id": person_id, "username": "brand"}
        name = conversation.get("user_name") or f"user{person_id[-4:]}"
        return {"id": person_id, "name": name} if conversation["platform"] == "messenger" else {"id": person_id, "username": name}

    def _render_message(self, conversation: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": message["id"],
            "created_time": graph_time(message["created_time"]),
            "from": self._person(conversation, message["from"]),
            "to": {"data": [self._person(conversation, message["to"])]},
            "message": message["message"],
        }
        if message["attachments"]:
            out["attachments"] = {"data": copy.deepcopy(message["attachments"])}
        return out

    def _messages_of(self, conversation_id: str) -> list[dict[str, Any]]:
        with self._lock:
            conversation = self.conversations[conversation_id]
            found = sorted(self.messages[conversation_id], key=lambda m: m["created_time"], reverse=True)
        return [self._render_message(conversation, m) for m in found]

    # --- handlers --------------------------------------------------------------------

    def _feed(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        since = float(request.arg("since") or 0)
        fields = request.arg("fields") or "id,created_time"
        token = self.token_of(request)
        with self._lock:
            posts = sorted(
                (p for p in self.posts.values() if self.owners.get(p["id"]) == object_id and p["created_time"] >= since),
                key=lambda p: p["created_time"],
                reverse=True,
            )
        page = self._page_of(posts, offset=self._offset(request.arg("after")), limit=self._limit(request, cap=self.page_size),
                             path=request.path, params={k: v[0] for k, v in request.query.items()}, token=token)
        rendered = []
        for post in page["data"]:
            item: dict[str, Any] = {"id": post["id"], "created_time": graph_time(post["created_time"]),
                                    "updated_time": graph_time(post["created_time"]), "permalink_url": post["permalink_url"]}
            if post["message"]:
                item["message"] = post["message"]
            if "comments" in fields:
                stream = self._modifier(fields, "comments", "filter") == "stream"
                order = self._modifier(fields, "comments", "order") or "chronological"
                limit = int(self._modifier(fields, "comments", "limit") or 25)
                nested = bool(re.search(r"comments[^{]*\{[^{}]*comments", fields))
                comments = self._fb_comments(post["id"], stream=stream, newest_first=order == "reverse_chronological", nested=nested)
                params = {"filter": "stream" if stream else "toplevel", "order": order, "limit": limit}
                item["comments"] = self._nested(comments, edge_path=f"/{version}/{post['id']}/comments", limit=limit,
                                                params=params, token=token)
            rendered.append(item)
        page["data"] = rendered
        return 200, page, {}

    def _comments_edge(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        token = self.token_of(request)
        params = {k: v[0] for k, v in request.query.items()}
        if object_id in self.posts:
            stream = request.arg("filter") == "stream"
            comments = self._fb_comments(object_id, stream=stream, newest_first=request.arg("order") == "reverse_chronological",
                                         nested=False)
        elif object_id in self.media:
            comments = self._ig_comments(object_id, nested=True)
        else:
            return self.not_found(request)
        return 200, self._page_of(comments, offset=self._offset(request.arg("after")),
                                  limit=self._limit(request, cap=self.nested_page_size),
                                  path=request.path, params=params, token=token), {}

    def _conversations(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        platform = request.arg("platform") or "messenger"
        fields = request.arg("fields") or "id,updated_time"
        token = self.token_of(request)
        with self._lock:
            found = [c for c in self.conversations.values() if c["account"] == object_id and c["platform"] == platform]
            updated = {c["id"]: max(m["created_time"] for m in self.messages[c["id"]]) for c in found}
        found.sort(key=lambda c: updated[c["id"]], reverse=True)
        page = self._page_of(found, offset=self._offset(request.arg("after")), limit=self._limit(request, cap=self.page_size),
                             path=request.path, params={k: v[0] for k, v in request.query.items()}, token=token)
        rendered = []
        for conversation in page["data"]:
            item: dict[str, Any] = {"id": conversation["id"], "updated_time": graph_time(updated[conversation["id"]])}
            if "participants" in fields:
                item["participants"] = {"data": [self._person(conversation, conversation["user"]),
                                                 self._person(conversation, conversation["account"])]}
            if "messages" in fields:
                limit = int(self._modifier(fields, "messages", "limit") or 25)
                item["messages"] = self._nested(self._messages_of(conversation["id"]), limit=limit,
                                                edge_path=f"/{version}/{conversation['id']}/messages",
                                                params={"limit": limit}, token=token)
            rendered.append(item)
        page["data"] = rendered
        return 200, page, {}

    def _messages_edge(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        if object_id not in self.conversations:
            return self.not_found(request)
        return 200, self._page_of(self._messages_of(object_id), offset=self._offset(request.arg("after")),
                                  limit=self._limit(request, cap=self.nested_page_size), path=request.path,
                                  params={k: v[0] for k, v in request.query.items()}, token=self.token_of(request)), {}

    def _media(self, request: SandboxRequest, version: str, object_id: str) -> Reply:
        since = float(request.arg("since") or 0)
        fields = request.arg("fields") or "id"
        token = self.token_of(request)
        with self._lock:
            found = sorted(
                (m for m in self.media.values() if self.owners.get(m["id"]) == object_id and m["timestamp"] >= since),
                key=lambda m: m["timestamp"],
                reverse=True,
            )
        page = self._page_of(found, offset=self._offset(request.arg("after")), limit=self._limit(request, cap=self.page_size),
                             path=request.path, params={k: v[0] for k, v in request.query.items()}, token=token)
        rendered = []
        for media in page["data"]:
            item: dict[str, Any] = {"id": media["id"], "timestamp": graph_time(media["timestamp"]), "permalink": media["permalink"]}
            if "comments" in fields:
                limit = int(self._modifier(fields, "comments", "limit") or 25)
                comments = self._ig_comments(media["id"], nested="replies" in fields)
                item["comments"] = self._nested(comments, edge_path=f"/{version}/{media['id']}/comments", limit=limit,
                                                params={"limit": limit}, token=token)
            rendered.append(item)
        page["data"] = rendered
        return 200, page, {}

    # --- sending (replies, Send API, WhatsApp) ---------------------------------------

    def add_whatsapp_contact(self, phone_number_id: str, wa_id: str, *, last_inbound: float | datetime | None = None) -> None:
        """A WhatsApp customer of ``phone_number_id`` whose last message was at ``last_inbound``
        (default: now). Free-form messages are accepted for 24 hours after it."""
        with self._lock:
            self.whatsapp_contacts[(str(phone_number_id), str(wa_id))] = _epoch(last_inbound, time.time())
            self.owners.setdefault(str(phone_number_id), str(phone_number_id))

    def delete_object(self, object_id: str) -> None:
        """The author deleted this comment or post: replies to it fail with code 100/33."""
        with self._lock:
            self.deleted.add(str(object_id))

    def approve_human_agent(self, account_id: str) -> None:
        """The app has Meta's Human Agent feature for this Page/IG account (HUMAN_AGENT tag, 7 days)."""
        with self._lock:
            self.human_agent_approved.add(str(account_id))

    def drop_answer(self, *, match: str | None = None, count: int = 1) -> None:
        """The next ``count`` sends (path containing ``match``) are applied, but the
        connection is dropped before the answer: a "maybe sent" failure."""
        with self._lock:
            self._drops.append([match, count])

    def sent(self, route: str | None = None) -> list[dict[str, Any]]:
        """Accepted sends (``route`` e.g. ``send.messages``): path, object id, body, headers."""
        with self._lock:
            return [copy.deepcopy(s) for s in self.outbox if route is None or s["route"] == route]

    def _record(self, request: SandboxRequest, object_id: str, body: Any, answer: dict[str, Any]) -> Reply | None:
        entry = {
            "route": request.route,
            "path": request.path,
            "object_id": object_id,
            "body": copy.deepcopy(body),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "answer": copy.deepcopy(answer),
        }
        with self._lock:
            self.outbox.append(entry)
            for drop in self._drops:
                if drop[1] > 0 and (drop[0] is None or drop[0] in request.path):
                    drop[1] -= 1
                    return None
        return 200, answer, {}

    @staticmethod
    def _params(request: SandboxRequest) -> dict[str, Any]:
        """Graph takes parameters as JSON, a form or the query string."""
        content_type = (request.header("Content-Type") or "").lower()
        params: dict[str, Any] = {k: v[0] for k, v in request.query.items() if k != "access_token"}
        if "json" in content_type:
            body = request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            params.update(body)
        elif request.body:
            params.update(request.form())
            for key in ("recipient", "message", "text", "context"):
                if isinstance(params.get(key), str) and params[key].startswith("{"):
                    params[key] = json.loads(params[key])
        return params

    def _find_comment(self, comment_id: str) -> tuple[str, dict[str, Any]] | None:
        """(post or media id, comment) for a seeded comment."""
        with self._lock:
            for container, comments in self.comments.items():
                for comment in comments:
                    if comment["id"] == comment_id:
                        return container, comment
        return None

    def _gone(self, object_id: str) -> Reply:
        return _graph_error(
            400, 100,
            f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
            "permissions, or does not support this operation.",
            subcode=33, kind="GraphMethodException",
        )

    def _post_comment(self, request: SandboxRequest, version: str, object_id: str) -> Reply | None:
        """``POST /{comment or post}/comments``: a Page comment under a top-level comment or post."""
        try:
            params = self._params(request)
        except ValueError:
            return _graph_error(400, 100, "(#100) Invalid JSON body")
        message = str(params.get("message") or "")
        if not message.strip():
            return _graph_error(400, 100, "(#100) Missing message or attachment")
        if object_id in self.deleted:
            return self._gone(object_id)
        page_id = self.owner_of(object_id) or ""
        if object_id in self.posts:
            created = self.add_post_comment(page_id, object_id, message, from_id=page_id, from_name="Brand")
        else:
            found = self._find_comment(object_id)
            if found is None or found[0] in self.media:
                return self._gone(object_id)
            post_id, comment = found
            top = comment.get("parent_id") or comment["id"]  # Facebook keeps threads two levels deep
            created = self.add_post_comment(page_id, post_id, message, from_id=page_id, from_name="Brand", parent_id=top)
        return self._record(request, object_id, params, {"id": created["id"]})

    def _post_ig_reply(self, request: SandboxRequest, version: str, object_id: str) -> Reply | None:
        """``POST /{ig-comment}/replies``: the account answers under a top-level comment."""
        try:
            params = self._params(request)
        except ValueError:
            return _graph_error(400, 100, "(#100) Invalid JSON body")
        message = str(params.get("message") or "")
        if not message.strip():
            return _graph_error(400, 100, "(#100) The parameter message is required")
        found = self._find_comment(object_id)
        if object_id in self.deleted or found is None or found[0] not in self.media:
            return self._gone(object_id)
        media_id, comment = found
        ig_id = self.owner_of(media_id) or ""
        top = comment.get("parent_id") or comment["id"]  # replies to a reply land on the top-level comment
        created = self.add_ig_comment(ig_id, media_id, message, from_id=ig_id, username="brand", parent_id=top)
        return self._record(request, object_id, params, {"id": created["id"]})

    def _post_messages(self, request: SandboxRequest, version: str, object_id: str) -> Reply | None:
        """``POST /{page|ig|phone-number}/messages``: Send API, private replies or WhatsApp."""
        try:
            params = self._params(request)
        except (ValueError, json.JSONDecodeError):
            return _graph_error(400, 100, "(#100) Invalid JSON body")
        if params.get("messaging_product") == "whatsapp":
            return self._whatsapp_send(request, object_id, params)
        recipient = params.get("recipient") if isinstance(params.get("recipient"), dict) else None
        message = params.get("message") if isinstance(params.get("message"), dict) else None
        if recipient is None:
            return _graph_error(400, 100, "(#100) The parameter recipient is required")
        if message is None or not str(message.get("text") or "").strip():
            return _graph_error(400, 100, "(#100) The parameter message is required")
        text = str(message["text"])
        if "comment_id" in recipient or "post_id" in recipient:
            return self._private_reply(request, object_id, params, recipient, text)
        user = str(recipient.get("id") or "")
        with self._lock:
            conversation = next(
                (c for c in self.conversations.values() if c["account"] == object_id and c["user"] == user), None
            )
            inbound = [m["created_time"] for m in self.messages.get(conversation["id"], []) if m["from"] == user] if conversation else []
        if conversation is None or not inbound:
            return _graph_error(400, 100, "(#100) No matching user found", subcode=2018001)
        messenger = conversation["platform"] == "messenger"
        if messenger and len(text) > 2000:
            return _graph_error(400, 100, "(#100) Length of param message[text] must be less than or equal to 2000")
        if not messenger and len(text.encode()) > 1000:
            return _graph_error(400, 100, "(#100) Length of param message[text] must be less than or equal to 1000 bytes")
        kind, tag = params.get("messaging_type"), params.get("tag")
        if messenger and not kind:
            return _graph_error(400, 100, "(#100) The parameter messaging_type is required")
        age = time.time() - max(inbound)
        if kind == "MESSAGE_TAG":
            if tag != "HUMAN_AGENT":
                return _graph_error(400, 100, "(#100) Invalid parameter: the message tag is not supported")
            if object_id not in self.human_agent_approved or age > 7 * 86400:
                return _graph_error(400, 10, "(#10) This message is sent outside of allowed window. The human agent "
                                             "tag needs the Human Agent feature and applies for 7 days.", subcode=2018278)
        elif age > 86400:
            return _graph_error(400, 10, "(#10) This message is sent outside of allowed window. Learn more about the "
                                         "new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
                                subcode=2018278)
        sent = self.add_conversation_message(object_id, user, text, platform=conversation["platform"], from_account=True,
                                             created=time.time())
        return self._record(request, object_id, params, {"recipient_id": user, "message_id": sent["id"]})

    def _private_reply(self, request: SandboxRequest, account_id: str, params: dict[str, Any],
                       recipient: dict[str, Any], text: str) -> Reply | None:
        target = str(recipient.get("comment_id") or recipient.get("post_id"))
        if target in self.deleted:
            return self._gone(target)
        found: tuple[str, dict[str, Any]] | None = None
        if "post_id" in recipient:
            post = self.posts.get(target)
            if post is None:
                return self._gone(target)
            created, author = post["created_time"], "6001987654321012"
        else:
            found = self._find_comment(target)
            if found is None:
                return _graph_error(400, 100, "(#100) Invalid comment_id parameter", subcode=2018292)
            comment = found[1]
            created = comment.get("created_time", comment.get("timestamp"))
            author = str((comment.get("from") or {}).get("id") or "")
        if target in self.private_replied:
            return _graph_error(400, 10900, "(#10900) Activity already replied to", kind="OAuthException")
        if time.time() - float(created) > 7 * 86400:
            return _graph_error(400, 10, "(#10) This message is sent outside of allowed window.", subcode=2018278)
        with self._lock:
            self.private_replied.add(target)
        prefix = "m_" if found is None or found[0] not in self.media else "aWdf"
        return self._record(request, account_id, params, {"recipient_id": author, "message_id": self._new_id(prefix)})

    def _whatsapp_send(self, request: SandboxRequest, phone_number_id: str, params: dict[str, Any]) -> Reply | None:
        def invalid(message: str, details: str) -> Reply:
            reply = _graph_error(400, 100, message)
            reply[1]["error"]["error_data"] = {"messaging_product": "whatsapp", "details": details}
            return reply

        # ``recipient`` (a business-scoped user id) instead of ``to`` since 2026; ``to`` wins if both.
        for field in ("recipient_type", "to" if params.get("to") or not params.get("recipient") else "recipient", "type"):
            if not params.get(field):
                return invalid("(#100) The parameter " + field + " is required.", f"The parameter {field} is required.")
        to = str(params.get("to") or params["recipient"])
        if params["type"] == "text":
            body = (params.get("text") or {}).get("body") if isinstance(params.get("text"), dict) else None
            if not body:
                return invalid("(#100) The parameter text['body'] is required.", "The parameter text['body'] is required.")
            if len(str(body)) > 4096:
                return invalid("(#100) Param text['body'] must be at most 4096 characters long.",
                               "Param text['body'] must be at most 4096 characters long.")
        with self._lock:
            last = self.whatsapp_contacts.get((phone_number_id, to))
        if params["type"] != "template" and (last is None or time.time() - last > 86400):
            reply = _graph_error(400, 131047, "Re-engagement message")
            reply[1]["error"]["error_data"] = {
                "messaging_product": "whatsapp",
                "details": "Message failed to send because more than 24 hours have passed since the customer last "
                           "replied to this number.",
            }
            return reply
        wamid = "wamid.HBgL" + base64.b64encode(f"{to}:{self._new_id()}".encode()).decode().rstrip("=")
        contact = {"input": to, "wa_id": to} if params.get("to") else {"input": to, "user_id": to}
        answer = {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]}
        return self._record(request, phone_number_id, params, answer)
