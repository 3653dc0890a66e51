"""The one base of every local API sandbox (stdlib only).

Every local stand-in for a platform or helpdesk API needs the same plumbing: a
``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, a route table matching
method + path regex, JSON in and out, a record of the requests it served, test
controls another process can call, and clean start/stop. ``JsonSandbox`` holds that
once; a sandbox subclass only registers routes and writes handlers::

    class MySandbox(JsonSandbox):
        name = "my-sandbox"

        def __init__(self, host="127.0.0.1", port=0):
            super().__init__(host, port)
            self.route("GET", r"/v1/items/(?P<item_id>[^/]+)", self._show_item, name="items.show")

        def _show_item(self, request: SandboxRequest, item_id: str) -> Reply:
            return 200, {"id": item_id}, {}

Handlers take the parsed ``SandboxRequest`` plus the regex's named groups and return
``(status, payload, extra headers)``: the payload is sent as JSON (a ``RawBody`` as it
is; a 204 has no body); ``None`` drops the connection without an answer (to test
"maybe sent" failures). ``before()`` runs ahead of every matched handler
(authentication, injected faults); ``not_found()`` and ``method_not_allowed()`` shape
the errors in the platform's format. Routes are tried in registration order, so
register specific paths before catch-alls.

Test controls are not the platform: they live under ``/__sandbox/``, skip ``before()``
(no authentication, never faulted) and answer errors as ``{"error": ...}`` (400 for
bad arguments, 404 for an unknown id). ``control(method, pattern, action)`` registers
one; ``serve_controls(name=method, ...)`` exposes seeding methods (``POST
/__sandbox/<name>`` with the keyword arguments as a JSON object, and ``GET
/__sandbox/sent`` for the sandbox's ``sent()``), which is how ``make demo``, another
process, plays the platform's side.

``HelpdeskSandbox`` adds what the helpdesk sandboxes (Zendesk, Freshdesk) share:
``Fault``s injected per API operation (``inject``/``clear_faults``/``faults``), and the
same test controls (reset, stats, faults, tickets, status, deliveries).
"""

from __future__ import annotations

import copy
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

# (status, JSON payload or RawBody, extra response headers)
Reply = tuple[int, Any, dict[str, str]]
Handler = Callable[..., "Reply | None"]
CONTROL_PREFIX = "/__sandbox/"


@dataclass(frozen=True)
class RawBody:
    """A reply body sent as it is (a file the sandbox hosts), not as JSON."""

    data: bytes
    content_type: str


@dataclass(slots=True)
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


@dataclass(slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str


@dataclass(slots=True)
class RecordedRequest:
    """What the sandbox keeps of each request it served (for test assertions)."""

    method: str
    path: str
    query: dict[str, list[str]]
    route: str
    status: int | None
    raw_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        """The request's headers, names lower-cased (built when asked: most never are)."""
        return {k.lower(): v for k, v in self.raw_headers.items()}


class JsonSandbox:
    """Base class: routing by method + path regex, JSON replies, a server thread, request log."""

    name = "sandbox"
    content_type = "application/json; charset=utf-8"
    # The soak drives hundreds of thousands of requests through one sandbox: the log keeps
    # the latest ones (at least this many), the counters count them all.
    request_log_limit = 5_000

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._routes: list[_Route] = []
        self._controls: list[_Route] = []
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

    def start(self) -> Self:
        """Serve on a daemon thread; with ``port=0`` the bound port is in ``.port``/``.url``."""
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        self._server, self.port = server, server.server_address[1]
        # A short poll interval keeps stop() fast.
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routing ---------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler, *, name: str | None = None) -> None:
        """Register ``handler`` for ``method`` and a path regex (matched in full)."""
        self._routes.append(
            _Route(method.upper(), re.compile(pattern), handler, name or f"{method.upper()} {pattern}")
        )

    def control(self, method: str, pattern: str, action: Callable[..., Any], *, status: int = 200) -> None:
        """A test control at ``METHOD /__sandbox/<pattern>`` (a regex; its named groups are passed on):
        ``action(arguments, **groups)`` gets the JSON object body (``{}`` when empty) and returns
        the JSON answer, sent with ``status``. A body that is not a JSON object, or a ``TypeError``
        or ``ValueError`` from the action, answers 400; a ``KeyError`` (an unknown id) 404."""

        def handle(request: SandboxRequest, **groups: str) -> Reply:
            try:
                arguments = request.json()
                arguments = {} if arguments is None else arguments
                if not isinstance(arguments, dict):
                    raise TypeError("the body must be a JSON object")
                return status, action(arguments, **groups), {}
            except KeyError as exc:
                return 404, {"error": f"not found: {exc}"}, {}
            except (TypeError, ValueError) as exc:
                return 400, {"error": f"{type(exc).__name__}: {exc}"}, {}

        self._controls.append(
            _Route(method.upper(), re.compile(CONTROL_PREFIX + pattern), handle, f"sandbox {method.upper()} {pattern}")
        )

    def serve_controls(self, **controls: Callable[..., Any]) -> None:
        """``POST /__sandbox/<name>`` calls ``controls[name](**body)`` and answers ``{"result": ...}``;
        ``GET /__sandbox/sent`` answers ``{"sent": self.sent()}`` when the sandbox has ``sent()``.
        The sandbox runs inside ``make run``: this is how ``make demo`` plays the platform's side
        (the customer's message exists there before its webhook)."""
        for name, method in controls.items():
            self.control("POST", re.escape(name), lambda arguments, call=method: {"result": call(**arguments)})
        sent = getattr(self, "sent", None)
        if callable(sent):
            self.control("GET", "sent", lambda _arguments: {"sent": sent()})

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
        is_control = request.path.startswith(CONTROL_PREFIX)
        reply: Reply | None
        path_matched = False
        for route in self._controls if is_control else self._routes:
            match = route.pattern.fullmatch(request.path)
            if not match:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            request.route = route.name
            # Test controls are not the platform: no authentication, never faulted.
            reply = None if is_control else self.before(request)
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
                    raw_headers=headers,
                )
            )
            if len(self.requests) > 2 * self.request_log_limit:  # trimmed in bulk: amortised O(1)
                del self.requests[: -self.request_log_limit]
        return reply


# --- injected faults -----------------------------------------------------------------------


@dataclass
class Fault:
    """One injected failure, consumed in order by the API requests it matches.

    ``match`` is a prefix of the operation, ``"METHOD /path/template"`` (None: every API
    call); ending it with ``$`` matches one operation exactly (``"POST /api/v2/tickets$"``).
    ``status`` answers an error instead of the real response; ``drop`` closes the
    connection without any answer; ``delay`` (seconds) slows the answer down. With
    ``when="after"`` the request is applied first (the caller cannot tell). ``count``
    is how many times it fires (default 1; unlimited when ``probability`` is set), and
    ``probability`` fires it at random with ``random.Random(seed)``.
    """

    match: str | None = None
    status: int | None = None
    retry_after: float | None = None
    count: int | None = None
    delay: float = 0.0
    drop: bool = False
    when: str = "before"
    probability: float | None = None
    seed: int | None = None
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        if self.count is None and self.probability is None:
            self.count = 1
        self._rng = random.Random(self.seed)

    def exhausted(self) -> bool:
        return self.count is not None and self.fired >= self.count

    def matches(self, operation: str) -> bool:
        if not self.match:
            return True
        if self.match.endswith("$"):
            return operation == self.match[:-1]
        return operation.startswith(self.match)

    def public(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class FaultQueue:
    """Injected ``Fault``s in order; ``apply()`` runs one request through the first that matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.fired = 0

    def add(self, *faults: Fault | dict[str, Any], **fault: Any) -> None:
        """``add(Fault(...))``, ``add({"status": 429, ...})`` or ``add(status=429)``."""
        queued = [f if isinstance(f, Fault) else Fault(**f) for f in faults]
        if fault:
            queued.append(Fault(**fault))
        with self._lock:
            self._faults.extend(queued)

    def clear(self) -> None:
        """Drop the pending faults (``fired`` keeps counting)."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.fired = 0

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted()]

    def take(self, operation: str) -> Fault | None:
        """The fault this request gets: the first pending one matching ``operation``, if its dice say so."""
        with self._lock:
            for fault in self._faults:
                if fault.exhausted() or not fault.matches(operation):
                    continue
                if fault.probability is not None and fault._rng.random() >= fault.probability:
                    return None
                fault.fired += 1
                self.fired += 1
                return fault
            return None

    def apply(self, operation: str, answer: Callable[[], Reply], refuse: Callable[[Fault], Reply]) -> Reply | None:
        """``answer()`` unless a fault intervenes: slowed, refused with ``refuse(fault)`` or dropped
        (``None``), before the request is applied or after it."""
        fault = self.take(operation)
        if fault is None:
            return answer()
        if fault.delay:
            time.sleep(fault.delay)
        fails = fault.drop or bool(fault.status)
        if fails and fault.when == "before":
            return None if fault.drop else refuse(fault)
        reply = answer()
        if fails and fault.when == "after":
            return None if fault.drop else refuse(fault)
        return reply


class HelpdeskSandbox(JsonSandbox):
    """What the helpdesk sandboxes share: API operations counted and faulted by name, and the
    test controls ``POST reset``, ``GET stats``, ``POST faults`` (``{"faults": [...]}``) /
    ``DELETE faults``, ``GET tickets``, ``POST tickets/{id}/status`` (``{"status"}``) and
    ``GET deliveries`` under ``/__sandbox/``, each the twin of a Python method.

    A subclass keeps its tickets by id in ``_tickets``, registers its API with ``api()`` and
    provides ``answer()`` (authentication, body parsing, the call), ``fault_reply()`` (the
    helpdesk's error shape) and the methods the controls call: ``reset()``, ``stats()``,
    ``set_status()``, ``deliveries()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.fault_queue = FaultQueue()
        self._operations: set[str] = set()
        self._tickets: dict[int, dict[str, Any]] = {}
        self.control("POST", "reset", self._reset_control)
        self.control("GET", "stats", lambda _arguments: self.stats())
        self.control("POST", "faults", self._inject_control)
        self.control("DELETE", "faults", self._clear_faults_control)
        self.control("GET", "tickets", lambda _arguments: {"tickets": self.tickets()})
        self.control("POST", r"tickets/(?P<ticket_id>\d+)/status",
                     lambda arguments, ticket_id: {"ticket": self.set_status(ticket_id, arguments.get("status", ""))})
        self.control("GET", "deliveries", lambda _arguments: {"deliveries": self.deliveries()})

    def api(self, method: str, pattern: str, operation: str, handler: Handler) -> None:
        """Register an API operation (e.g. ``"GET /api/v2/tickets/{ticket_id}"``): counted in
        ``stats()``, faulted by that name, answered by ``answer(request, handler, groups)``."""
        self._operations.add(operation)

        def run(request: SandboxRequest, **groups: str) -> Reply | None:
            return self.fault_queue.apply(operation, lambda: self.answer(request, handler, groups), self.fault_reply)

        self.route(method, pattern, run, name=operation)

    def request_stats(self) -> dict[str, Any]:
        """API requests by operation, their total, faults fired and pending."""
        with self._lock:
            requests = {name: n for name, n in self.request_counts.items() if name in self._operations}
        return {
            "requests": requests,
            "total": sum(requests.values()),
            "faults_fired": self.fault_queue.fired,
            "faults_pending": len(self.fault_queue.pending()),
        }

    def inject(self, *faults: Fault | dict[str, Any], **fault: Any) -> None:
        """Queue faults: ``inject(Fault(...))``, ``inject({"status": 429, ...})`` or ``inject(status=429)``."""
        self.fault_queue.add(*faults, **fault)

    def clear_faults(self) -> None:
        self.fault_queue.clear()

    def faults(self) -> list[dict[str, Any]]:
        return [f.public() for f in self.fault_queue.pending()]

    def tickets(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._tickets.values()))

    def ticket(self, ticket_id: int | str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._tickets[int(ticket_id)])

    # --- what a subclass provides ----------------------------------------------------

    def answer(self, request: SandboxRequest, handler: Handler, groups: dict[str, str]) -> Reply:
        """Authenticate, parse and run one API request."""
        raise NotImplementedError

    def fault_reply(self, fault: Fault) -> Reply:
        """An injected failure in the helpdesk's error shape."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def set_status(self, ticket_id: int | str, status: str) -> dict[str, Any]:
        raise NotImplementedError

    def deliveries(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    # --- controls --------------------------------------------------------------------

    def _reset_control(self, _arguments: dict[str, Any]) -> dict[str, Any]:
        self.reset()
        return {"ok": True}

    def _inject_control(self, arguments: dict[str, Any]) -> dict[str, Any]:
        self.inject(*arguments.get("faults", []))
        return {"faults": self.faults()}

    def _clear_faults_control(self, _arguments: dict[str, Any]) -> dict[str, Any]:
        self.clear_faults()
        return {"faults": []}


# --- the HTTP side -------------------------------------------------------------------------


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
            self.send_response(status)
            data: bytes | None = None  # No Content (204): no body, no Content-Type
            if status != 204:
                if isinstance(payload, RawBody):
                    data, content_type = payload.data, payload.content_type
                else:
                    data, content_type = b"" if payload is None else json.dumps(payload).encode(), sandbox.content_type
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            try:
                self.end_headers()
                if data is not None:
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (its own timeout, as under the soak's load): a real
                # server logs nothing for that, and the client already treats it as no answer.
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
