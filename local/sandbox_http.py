"""A small reusable base for local JSON API sandboxes (stdlib only).

Every local stand-in for a platform API needs the same plumbing: a
``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, a route table matching
method + path regex, JSON in and out, a record of the requests it served, and
clean start/stop. ``JsonSandbox`` holds that once; a sandbox subclass only
registers routes and writes handlers::

    class MySandbox(JsonSandbox):
        name = "my-sandbox"

        def __init__(self, host="127.0.0.1", port=0):
            super().__init__(host, port)
            self.route("GET", r"/v1/items/(?P<item_id>[^/]+)", self._show_item, name="items.show")

        def _show_item(self, request: SandboxRequest, item_id: str) -> Reply:
            return 200, {"id": item_id}, {}

Handlers take the parsed ``SandboxRequest`` plus the regex's named groups and return
``(status, payload, extra headers)``; ``None`` drops the connection without an answer
(to test "maybe sent" failures). ``before()`` runs ahead of every matched handler
(authentication, injected faults); ``not_found()`` shapes the 404 in the platform's
error format. Routes are tried in registration order, so register specific paths
before catch-alls.

``serve_controls(name=method, ...)`` exposes seeding methods over HTTP for another
process (``make demo``): ``POST /__sandbox/<name>`` with the keyword arguments as a JSON
object, and ``GET /__sandbox/sent`` for the sandbox's ``sent()``. ``/__sandbox/`` paths
skip ``before()``: no authentication and no injected faults, as in the helpdesk sandboxes.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# (status, JSON payload, extra response headers)
Reply = tuple[int, Any, dict[str, str]]
Handler = Callable[..., "Reply | None"]
CONTROL_PREFIX = "/__sandbox/"


@dataclass
class SandboxRequest:
    """One request as a handler sees it. Header lookup is case-insensitive."""

    method: str
    target: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    route: str = ""
    client: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter (``default`` when absent)."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        """A request header by case-insensitive name."""
        getter = getattr(self.headers, "get", None)
        value = getter(name) if getter else None
        if value is not None:
            return value
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def json(self) -> Any:
        """The body parsed as JSON; ``None`` for an empty body. Raises ``ValueError``."""
        return json.loads(self.body) if self.body.strip() else None

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body as a flat dict (first values)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True).items()}


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


@dataclass
class RecordedRequest:
    """What the sandbox keeps of each request it served (for test assertions)."""

    method: str
    path: str
    query: dict[str, list[str]]
    route: str
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)


class JsonSandbox:
    """Base class: routing by method + path regex, JSON replies, a server thread, request log."""

    name = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._routes: list[_Route] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.request_counts: Counter[str] = Counter()

    # --- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> JsonSandbox:
        """Serve on a daemon thread; with ``port=0`` the bound port is in ``.port``/``.url``."""
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> JsonSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routing ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler, *, name: str | None = None) -> None:
        """Register ``handler`` for ``method`` and a path regex (matched in full)."""
        self._routes.append(
            _Route(method.upper(), re.compile(pattern), handler, name or f"{method.upper()} {pattern}")
        )

    def serve_controls(self, **controls: Callable[..., Any]) -> None:
        """``POST /__sandbox/<name>`` calls ``controls[name](**body)`` and answers ``{"result": ...}``
        (400 for arguments it does not take); ``GET /__sandbox/sent`` answers ``{"sent": self.sent()}``
        when the sandbox has ``sent()``. The sandbox runs inside ``make run``: this is how ``make
        demo`` plays the platform's side (the customer's message exists there before its webhook)."""
        for name, control in controls.items():
            self.route("POST", re.escape(CONTROL_PREFIX + name), _control_handler(control), name=f"sandbox {name}")
        sent = getattr(self, "sent", None)
        if callable(sent):
            self.route("GET", re.escape(CONTROL_PREFIX + "sent"), lambda _request: (200, {"sent": sent()}, {}),
                       name="sandbox sent")

    def forget_requests(self) -> None:
        """Clear the request log and counters."""
        with self._lock:
            self.requests.clear()
            self.request_counts.clear()

    # --- hooks for subclasses --------------------------------------------------------

    def before(self, request: SandboxRequest) -> Reply | None:
        """Runs before the matched handler; a reply here short-circuits it."""
        return None

    def not_found(self, request: SandboxRequest) -> Reply:
        """The answer for a path no route matches."""
        return 404, {"error": "not found", "path": request.path}, {}

    def method_not_allowed(self, request: SandboxRequest) -> Reply:
        """The answer for a known path with the wrong method."""
        return 405, {"error": "method not allowed", "method": request.method}, {}

    # --- dispatch --------------------------------------------------------------------

    def dispatch(self, method: str, target: str, headers: Mapping[str, str], body: bytes, client: str = "") -> Reply | None:
        """Answer one request (also callable directly, without a socket)."""
        parts = urlsplit(target)
        request = SandboxRequest(
            method=method.upper(),
            target=target,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=headers,
            body=body,
            client=client,
        )
        reply: Reply | None
        path_matched = False
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if not match:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            request.route = route.name
            # Test controls are not the platform: no authentication, never faulted.
            reply = None if request.path.startswith(CONTROL_PREFIX) else self.before(request)
            if reply is None:
                reply = route.handler(request, **match.groupdict())
            break
        else:
            request.route = "(none)"
            reply = self.method_not_allowed(request) if path_matched else self.not_found(request)
        with self._lock:
            self.request_counts[request.route] += 1
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=request.query,
                    route=request.route,
                    status=reply[0] if reply else None,
                    headers={k.lower(): v for k, v in headers.items()},
                )
            )
        return reply


def call_control(control: Callable[..., Any], body: bytes) -> tuple[bool, Any]:
    """Call a seeding method with a JSON object of keyword arguments: ``(True, result)``,
    or ``(False, reason)`` when the body is not such an object or the method refuses it."""
    try:
        arguments = json.loads(body) if body.strip() else {}
        if not isinstance(arguments, dict):
            raise TypeError("the body must be a JSON object of keyword arguments")
        return True, control(**arguments)
    except (TypeError, ValueError, KeyError) as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _control_handler(control: Callable[..., Any]) -> Handler:
    def handle(request: SandboxRequest) -> Reply:
        ok, result = call_control(control, request.body)
        return (200, {"result": result}, {}) if ok else (400, {"error": result}, {})

    return handle


def _make_handler(sandbox: JsonSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"{type(sandbox).__name__}/1.0"
        # Buffered writes (flushed once per request): headers and body leave in one
        # segment. Unbuffered, Nagle's algorithm and the client's delayed ACK add ~40 ms
        # to every keep-alive request on loopback.
        wbufsize = -1

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            reply = sandbox.dispatch(self.command, self.path, self.headers, body, self.headers.get("User-Agent", ""))
            if reply is None:  # an injected "drop": no status line, no body
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            status, payload, extra = reply
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
            pass

    return Handler
