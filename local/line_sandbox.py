"""A local stand-in for the LINE Messaging API's reply, push and profile endpoints.

On ``local.sandbox_http.JsonSandbox``: ``LineSandbox().start()`` serves on 127.0.0.1;
``.url`` is ``LINE_API_URL``. ``Authorization: Bearer <channel access token>`` is
checked (401 ``Authentication failed...`` otherwise; ``expire_token()`` simulates an
expired one).

* ``POST /v2/bot/message/reply {replyToken, messages}``: the token must come from
  ``issue_reply_token(to)``, be used once and within ``reply_token_ttl`` seconds
  (else 400 ``Invalid reply token``). An ``X-Line-Retry-Key`` here is refused (400),
  as LINE accepts it only on push/multicast/narrowcast/broadcast.
* ``POST /v2/bot/message/push {to, messages}`` with an optional ``X-Line-Retry-Key``
  (a UUID, else 400): a repeat of an accepted key answers 409 ``The retry key is
  already accepted`` with ``x-line-accepted-request-id`` and the original
  ``sentMessages``, and sends nothing. ``to`` must be ``add_user``/``add_group``-ed
  (else 400 ``Failed to send messages``). ``monthly_quota`` push messages are allowed
  (then 429 ``You have reached your monthly limit.``).
* ``messages``: 1-5 objects; a text's ``text`` 1-5000 characters (else 400 ``The
  request body has 1 error(s)`` with ``details``).

Both answer ``200 {"sentMessages": [{"id", "quoteToken"}]}`` with ``x-line-request-id``
(``answer_without_ids()``: ``200 {}``, as LINE answered before it added ``sentMessages`` in 2023).

Profiles (``ProfileLookup`` names customers with them):

* ``GET /v2/bot/profile/{userId}``: a friend's ``{"displayName", "userId", "pictureUrl"?,
  "statusMessage"?, "language"?}`` (``add_user(user_id, display_name=...)``); anyone else
  404 ``Not found``;
* ``GET /v2/bot/group/{groupId}/member/{userId}``, ``GET /v2/bot/room/{roomId}/member/{userId}``:
  a member's ``{"displayName", "userId", "pictureUrl"?}`` (``add_member(...)``), friend or not;
  else 404.
``inject_error(status, message, drop=...)`` queues faults (429 rate limit, 5xx, or a
push that is applied but whose answer is dropped). ``sent()`` lists accepted sends.
Over HTTP (for ``make demo``, no token): ``POST /__sandbox/issue_reply_token``,
``/__sandbox/add_user`` (keyword arguments as JSON) and ``GET /__sandbox/sent``.
"""

from __future__ import annotations

import copy
import itertools
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from local.sandbox_http import JsonSandbox, Reply, SandboxRequest

DEFAULT_CHANNEL_TOKEN = "local-line-channel-token"
BOT_USER_ID = "U0000000000000000000000000000b0t"


def _error(status: int, message: str, details: list[dict[str, str]] | None = None) -> Reply:
    body: dict[str, Any] = {"message": message}
    if details:
        body["details"] = details
    return status, body, {"x-line-request-id": str(uuid.uuid4())}


@dataclass
class LineFault:
    """One injected answer for paths containing ``match`` (None: any endpoint)."""

    status: int = 429
    message: str | None = None
    match: str | None = None
    count: int = 1
    drop: bool = False
    fired: int = 0

    def reply(self) -> Reply:
        default = {
            401: "Authentication failed. Confirm that the access token in the authorization header is valid.",
            429: "The API rate limit has been exceeded. Try again later.",
            500: "Internal server error",
        }.get(self.status, "Injected error")
        return _error(self.status, self.message or default)


class LineSandbox(JsonSandbox):
    """An in-memory Messaging API channel: friends, groups, reply tokens, retry keys, quota."""

    name = "line-sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_CHANNEL_TOKEN,
                 reply_token_ttl: float = 60.0, monthly_quota: int | None = None) -> None:
        super().__init__(host, port)
        self.token = token
        self.reply_token_ttl = reply_token_ttl
        self.monthly_quota = monthly_quota
        self.reset()
        self.route("POST", r"/v2/bot/message/reply", self._reply, name="message.reply")
        self.route("POST", r"/v2/bot/message/push", self._push, name="message.push")
        self.route("GET", r"/v2/bot/profile/(?P<user_id>[^/]+)", self._profile, name="profile")
        self.route("GET", r"/v2/bot/(?P<kind>group|room)/(?P<chat_id>[^/]+)/member/(?P<user_id>[^/]+)", self._member,
                   name="chat.member")
        # Not LINE: `make demo` (another process) gets the reply token a webhook event would carry.
        self.serve_controls(issue_reply_token=self.issue_reply_token, add_user=self.add_user, add_member=self.add_member)

    def reset(self) -> None:
        """Forget recipients, tokens, keys, faults and requests."""
        with self._lock:
            self.recipients: set[str] = set()
            self.profiles: dict[str, dict[str, str]] = {}  # friends' profiles by user id
            self.members: dict[tuple[str, str, str], dict[str, str]] = {}  # (group|room, chat id, user id) -> profile
            self.reply_tokens: dict[str, tuple[str, float]] = {}  # token -> (to, issued at)
            self.used_tokens: set[str] = set()
            self.retry_keys: dict[str, tuple[str, list[dict[str, str]]]] = {}  # key -> (request id, sentMessages)
            self.pushed = 0
            self.token_expired = False
            self.faults: list[LineFault] = []
            self.outbox: list[dict[str, Any]] = []
            self.ids_in_answers = True
            self._ids = itertools.count(600_000_000_000_000_000)
        self.forget_requests()

    # --- seeding -----------------------------------------------------------------------

    def add_user(self, user_id: str, display_name: str | None = None, **profile: str) -> None:
        """A user who added the Official Account as a friend (``display_name``: what the
        profile endpoint shows; ``pictureUrl=``, ``statusMessage=``, ``language=`` optional)."""
        with self._lock:
            self.recipients.add(user_id)
            if display_name is not None:
                self.profiles[user_id] = {"displayName": display_name, "userId": user_id, **profile}

    def add_member(self, chat_id: str, user_id: str, display_name: str, *, room: bool = False, **profile: str) -> None:
        """A member of a group chat (or ``room``) the bot is in, friend or not."""
        with self._lock:
            self.recipients.add(chat_id)
            self.members[("room" if room else "group", chat_id, user_id)] = {
                "displayName": display_name, "userId": user_id, **profile}

    def add_group(self, group_id: str) -> None:
        """A group chat or room the bot is in."""
        with self._lock:
            self.recipients.add(group_id)

    def issue_reply_token(self, to: str, *, issued_at: float | None = None) -> str:
        """The reply token a webhook event would carry (``issued_at`` in epoch seconds)."""
        token = secrets.token_hex(16)
        with self._lock:
            self.reply_tokens[token] = (to, time.time() if issued_at is None else issued_at)
            self.recipients.add(to)
        return token

    def expire_token(self) -> None:
        """The channel access token expired: every call answers 401."""
        self.token_expired = True

    def inject_error(self, status: int = 429, message: str | None = None, *, match: str | None = None,
                     count: int = 1, drop: bool = False) -> LineFault:
        """Queue a fault (see ``LineFault``); ``drop=True`` applies a push and drops the answer."""
        fault = LineFault(status=status, message=message, match=match, count=count, drop=drop)
        with self._lock:
            self.faults.append(fault)
        return fault

    def answer_without_ids(self) -> None:
        """Accepted sends answer ``200 {}``: success without the sent message's id."""
        self.ids_in_answers = False

    def _accepted(self, sent: list[dict[str, str]]) -> dict[str, Any]:
        return {"sentMessages": sent} if self.ids_in_answers else {}

    def sent(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Accepted sends (``kind`` ``reply`` or ``push``) with body, retry key and ids."""
        with self._lock:
            return [copy.deepcopy(s) for s in self.outbox if kind is None or s["kind"] == kind]

    # --- serving -----------------------------------------------------------------------

    def before(self, request: SandboxRequest) -> Reply | None:
        if self.token_expired or request.header("Authorization") != f"Bearer {self.token}":
            return _error(401, "Authentication failed. Confirm that the access token in the authorization header is valid.")
        return None

    def not_found(self, request: SandboxRequest) -> Reply:
        return _error(404, "Not found")

    def _fault(self, path: str) -> LineFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.count and (fault.match is None or fault.match in path):
                    fault.fired += 1
                    return fault
        return None

    def _profile(self, request: SandboxRequest, user_id: str) -> Reply:
        fault = self._fault(request.path)
        if fault is not None:
            return fault.reply()
        with self._lock:
            found = copy.deepcopy(self.profiles.get(user_id))
        return (200, found, {"x-line-request-id": str(uuid.uuid4())}) if found else _error(404, "Not found")

    def _member(self, request: SandboxRequest, kind: str, chat_id: str, user_id: str) -> Reply:
        fault = self._fault(request.path)
        if fault is not None:
            return fault.reply()
        with self._lock:
            found = copy.deepcopy(self.members.get((kind, chat_id, user_id)))
        if found:  # a member's profile carries no status message or language
            return 200, {k: v for k, v in found.items() if k in ("displayName", "userId", "pictureUrl")}, {
                "x-line-request-id": str(uuid.uuid4())}
        return _error(404, "Not found")

    def _messages(self, body: dict[str, Any]) -> Reply | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return _error(400, "The request body has 1 error(s)",
                          [{"message": "Size must be between 1 and 5", "property": "messages"}])
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("type") != "text":
                continue
            text = str(message.get("text") or "")
            if not text or len(text.encode("utf-16-le")) // 2 > 5000:
                return _error(400, "The request body has 1 error(s)",
                              [{"message": "Length must be between 1 and 5000", "property": f"messages[{index}].text"}])
        return None

    def _sent_messages(self, count: int) -> list[dict[str, str]]:
        with self._lock:
            return [{"id": str(next(self._ids)), "quoteToken": secrets.token_urlsafe(24)} for _ in range(count)]

    def _body(self, request: SandboxRequest) -> dict[str, Any] | None:
        try:
            body = request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _reply(self, request: SandboxRequest) -> Reply | None:
        fault = self._fault(request.path)
        if fault is not None and not fault.drop:
            return fault.reply()
        if request.header("X-Line-Retry-Key"):
            return _error(400, "The retry key is not supported for this API")
        body = self._body(request)
        if body is None:
            return _error(400, "The request body has 1 error(s)", [{"message": "Invalid JSON", "property": ""}])
        invalid = self._messages(body)
        if invalid:
            return invalid
        token = str(body.get("replyToken") or "")
        with self._lock:
            issued = self.reply_tokens.get(token)
            if issued is None or token in self.used_tokens or time.time() - issued[1] > self.reply_token_ttl:
                return _error(400, "Invalid reply token")
            self.used_tokens.add(token)
        sent = self._sent_messages(len(body["messages"]))
        with self._lock:
            self.outbox.append({"kind": "reply", "body": copy.deepcopy(body), "to": issued[0], "sentMessages": sent,
                                "retry_key": None})
        if fault is not None and fault.drop:
            return None
        return 200, self._accepted(sent), {"x-line-request-id": str(uuid.uuid4())}

    def _push(self, request: SandboxRequest) -> Reply | None:
        fault = self._fault(request.path)
        if fault is not None and not fault.drop:
            return fault.reply()
        key = request.header("X-Line-Retry-Key")
        if key is not None:
            try:
                key = str(uuid.UUID(key))
            except ValueError:
                return _error(400, "The value for the 'X-Line-Retry-Key' header is invalid")
            with self._lock:
                accepted = self.retry_keys.get(key)
            if accepted is not None:
                request_id, sent = accepted
                return 409, {"message": "The retry key is already accepted", "sentMessages": sent}, {
                    "x-line-request-id": str(uuid.uuid4()), "x-line-accepted-request-id": request_id}
        body = self._body(request)
        if body is None:
            return _error(400, "The request body has 1 error(s)", [{"message": "Invalid JSON", "property": ""}])
        invalid = self._messages(body)
        if invalid:
            return invalid
        to = str(body.get("to") or "")
        with self._lock:
            if to not in self.recipients:
                return _error(400, "Failed to send messages")
            if self.monthly_quota is not None and self.pushed >= self.monthly_quota:
                return _error(429, "You have reached your monthly limit.")
            self.pushed += 1
        sent = self._sent_messages(len(body["messages"]))
        request_id = str(uuid.uuid4())
        with self._lock:
            if key is not None:
                self.retry_keys[key] = (request_id, sent)
            self.outbox.append({"kind": "push", "body": copy.deepcopy(body), "to": to, "sentMessages": sent,
                                "retry_key": key})
        if fault is not None and fault.drop:
            return None
        return 200, self._accepted(sent), {"x-line-request-id": request_id}
