"""A local stand-in for the Telegram Bot API's ``sendMessage`` (and ``getMe``).

On ``local.sandbox_http.JsonSandbox``: ``TelegramSandbox().start()`` serves on
127.0.0.1; ``.url`` is ``TELEGRAM_API_URL``. Methods live under ``/bot<token>/``; a
token other than the bot's answers 401 ``Unauthorized`` (Telegram's answer for a
revoked token; ``revoke()`` simulates one).

``POST /bot<token>/sendMessage`` (JSON or form) with ``chat_id``, ``text``,
``message_thread_id``, ``business_connection_id``, ``reply_parameters``
(``message_id``, ``allow_sending_without_reply``) answers like Telegram:

* ``{"ok": true, "result": {Message}}`` with a new ``message_id`` per chat;
* 400 ``Bad Request: chat not found`` for an unknown chat (``add_chat`` first),
  ``message text is empty``, ``message is too long`` (> 4096 UTF-16 units),
  ``message thread not found`` (topic not ``add_topic``-ed), ``message to be replied
  not found`` (unless ``allow_sending_without_reply``), ``group chat was upgraded to a
  supergroup chat`` with ``parameters.migrate_to_chat_id`` after ``migrate()``;
* 403 ``Forbidden: bot was blocked by the user`` after ``block(chat)``;
* anything injected with ``inject_error(code, description, retry_after=...)``, e.g.
  429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``, or
  ``drop=True``: the message is sent and the connection dropped before the answer.

``sent()`` lists every accepted message's request body and its ``message_id``.
Over HTTP (for ``make demo``): ``POST /__sandbox/add_chat`` (its keyword arguments as JSON)
and ``GET /__sandbox/sent``.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from local.sandbox_http import JsonSandbox, Reply, SandboxRequest

DEFAULT_BOT_TOKEN = "123456789:local-telegram-secret-token"


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return code, body, {}


@dataclass
class TelegramFault:
    """One injected answer for methods whose name contains ``match`` (None: any)."""

    code: int = 429
    description: str | None = None
    retry_after: int | None = None
    match: str | None = None
    count: int = 1
    drop: bool = False
    fired: int = 0

    def reply(self) -> Reply:
        if self.code == 429:
            wait = self.retry_after if self.retry_after is not None else 5
            return _error(429, self.description or f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        default = {
            400: "Bad Request: injected",
            401: "Unauthorized",
            403: "Forbidden: bot was blocked by the user",
            502: "Bad Gateway",
        }.get(self.code, "Internal Server Error")
        return _error(self.code, self.description or default)


class TelegramSandbox(JsonSandbox):
    """An in-memory bot: chats, topics, message numbering, blocking, faults."""

    name = "telegram-sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_BOT_TOKEN,
                 username: str = "acme_support_bot") -> None:
        super().__init__(host, port)
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.username = username
        self.reset()
        self.route("POST", r"/bot(?P<token>[^/]+)/sendMessage", self._send_message, name="sendMessage")
        self.route("GET", r"/bot(?P<token>[^/]+)/getMe", self._get_me, name="getMe")
        self.route("POST", r"/bot(?P<token>[^/]+)/getMe", self._get_me, name="getMe")
        self.serve_controls(add_chat=self.add_chat)  # not Telegram: for `make demo`, another process

    def reset(self) -> None:
        """Forget chats, messages, faults and requests."""
        with self._lock:
            self.chats: dict[int, dict[str, Any]] = {}
            self.messages: dict[int, set[int]] = {}  # chat id -> message ids that exist
            self.topics: dict[int, set[int]] = {}
            self.blocked: set[int] = set()
            self.migrated: dict[int, int] = {}
            self.revoked = False
            self.faults: list[TelegramFault] = []
            self.outbox: list[dict[str, Any]] = []
            self._numbers: dict[int, itertools.count[int]] = {}
        self.forget_requests()

    # --- seeding -----------------------------------------------------------------------

    def add_chat(self, chat_id: int | str, *, type: str = "private", messages: tuple[int, ...] = (),  # noqa: A002
                 title: str | None = None, first_name: str | None = "Dana") -> None:
        """A chat the bot is in, with the customer's existing ``messages`` (ids)."""
        chat_id = int(chat_id)
        chat: dict[str, Any] = {"id": chat_id, "type": type}
        if type == "private":
            chat["first_name"] = first_name or "User"
        else:
            chat["title"] = title or "Support group"
            if type == "supergroup":
                chat["is_forum"] = True
        with self._lock:
            self.chats[chat_id] = chat
            self.messages.setdefault(chat_id, set()).update(int(m) for m in messages)
            start = max(self.messages[chat_id], default=0) + 1
            self._numbers[chat_id] = itertools.count(start)

    def add_topic(self, chat_id: int | str, thread_id: int | str) -> None:
        """A forum topic of a supergroup."""
        with self._lock:
            self.topics.setdefault(int(chat_id), set()).add(int(thread_id))

    def delete_message(self, chat_id: int | str, message_id: int | str) -> None:
        """The customer deleted a message."""
        with self._lock:
            self.messages.get(int(chat_id), set()).discard(int(message_id))

    def block(self, chat_id: int | str) -> None:
        """The user blocked the bot."""
        with self._lock:
            self.blocked.add(int(chat_id))

    def migrate(self, chat_id: int | str, new_chat_id: int | str) -> None:
        """The group became a supergroup with a new id."""
        with self._lock:
            old, new = int(chat_id), int(new_chat_id)
            self.migrated[old] = new
            self.add_chat(new, type="supergroup", messages=())

    def revoke(self) -> None:
        """The token was revoked in @BotFather: every call answers 401."""
        self.revoked = True

    def inject_error(self, code: int = 429, description: str | None = None, *, retry_after: int | None = None,
                     match: str | None = None, count: int = 1, drop: bool = False) -> TelegramFault:
        """Queue a fault (see ``TelegramFault``)."""
        fault = TelegramFault(code=code, description=description, retry_after=retry_after, match=match, count=count, drop=drop)
        with self._lock:
            self.faults.append(fault)
        return fault

    def sent(self) -> list[dict[str, Any]]:
        """Accepted messages: ``{"body": request body, "message_id": n, "chat_id": id}``."""
        with self._lock:
            return copy.deepcopy(self.outbox)

    # --- serving -----------------------------------------------------------------------

    def before(self, request: SandboxRequest) -> Reply | None:
        token = request.path.split("/")[1][len("bot"):] if request.path.startswith("/bot") else ""
        if token != self.token or self.revoked:
            return _error(401, "Unauthorized")
        return None

    def not_found(self, request: SandboxRequest) -> Reply:
        return _error(404, "Not Found")

    def _fault(self, method: str) -> TelegramFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.count and (fault.match is None or fault.match in method):
                    fault.fired += 1
                    return fault
        return None

    @staticmethod
    def _params(request: SandboxRequest) -> dict[str, Any]:
        if "json" in (request.header("Content-Type") or "").lower():
            body = request.json()
            return body if isinstance(body, dict) else {}
        params: dict[str, Any] = dict(request.form())
        if isinstance(params.get("reply_parameters"), str):
            params["reply_parameters"] = json.loads(params["reply_parameters"])
        return params

    def _get_me(self, request: SandboxRequest, token: str) -> Reply:
        return 200, {"ok": True, "result": {"id": self.bot_id, "is_bot": True, "first_name": "Acme Support",
                                             "username": self.username}}, {}

    def _send_message(self, request: SandboxRequest, token: str) -> Reply | None:
        fault = self._fault("sendMessage")
        if fault is not None and not fault.drop:
            return fault.reply()
        try:
            params = self._params(request)
        except ValueError:
            return _error(400, "Bad Request: invalid JSON")
        try:
            chat_id = int(params.get("chat_id"))
        except (TypeError, ValueError):
            return _error(400, "Bad Request: chat not found")
        text = str(params.get("text") or "")
        with self._lock:
            chat = self.chats.get(chat_id)
            migrated = self.migrated.get(chat_id)
        if migrated is not None:
            return _error(400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": migrated})
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return _error(400, "Bad Request: message is too long")
        thread = params.get("message_thread_id")
        if thread is not None and int(thread) not in self.topics.get(chat_id, set()):
            return _error(400, "Bad Request: message thread not found")
        reply = params.get("reply_parameters") if isinstance(params.get("reply_parameters"), dict) else None
        reply_to = None
        if reply is not None:
            wanted = int(reply.get("message_id"))
            if wanted in self.messages.get(chat_id, set()):
                reply_to = wanted
            elif not reply.get("allow_sending_without_reply"):
                return _error(400, "Bad Request: message to be replied not found")
        with self._lock:
            number = next(self._numbers.setdefault(chat_id, itertools.count(1)))
            self.messages.setdefault(chat_id, set()).add(number)
            self.outbox.append({"body": copy.deepcopy(params), "message_id": number, "chat_id": chat_id})
        message: dict[str, Any] = {
            "message_id": number,
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Acme Support", "username": self.username},
            "chat": copy.deepcopy(chat),
            "date": int(time.time()),
            "text": text,
        }
        if thread is not None:
            message["message_thread_id"] = int(thread)
            message["is_topic_message"] = True
        if params.get("business_connection_id"):
            message["business_connection_id"] = params["business_connection_id"]
        if reply_to is not None:
            message["reply_to_message"] = {"message_id": reply_to, "chat": copy.deepcopy(chat), "date": int(time.time())}
        if fault is not None and fault.drop:
            return None
        return 200, {"ok": True, "result": message}, {}
