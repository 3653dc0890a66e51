"""A small JSON-over-HTTPS client for helpdesk adapters, on urllib3.

urllib3 ships with botocore, so it is already in the Lambda runtime: no
``requests`` in the package. The client is deliberately dumb about retries: it
never retries anything itself (``retries=False``), because only the adapter knows
whether a request is safe to repeat. What it does instead is tell the caller
*how* a request failed, in the one way that matters for that decision:

* ``ConnectFailed``: no connection was made (refused, DNS, connect timeout), so the
  request never left this process and cannot have been applied;
* ``ResponseTimeout`` / ``ConnectionLost``: the request may have been sent and
  processed, only the answer is missing, so a write may have been applied.

Any HTTP status comes back as an ``HttpResponse``; mapping statuses to meaning is
the adapter's job. Nothing here is specific to one helpdesk, so a Freshdesk adapter
can reuse it.

Secrets: the ``Authorization`` header is held privately, never logged, never put in
an exception, and shown redacted to observers. Bodies are never logged either: they
carry customers' words.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3 import exceptions as u3

from chalicelib.jsonvalues import json_list as json_list
from chalicelib.jsonvalues import json_object as json_object

logger = logging.getLogger(__name__)

REDACTED_AUTHORIZATION = "[redacted]"
USER_AGENT = "socialdesk (+urllib3)"
# A pooled connection idle for longer than this is dropped rather than reused: a
# Lambda container can be frozen for minutes, and the first write on a connection
# the server closed meanwhile fails ambiguously ("maybe applied"). A fresh TLS
# handshake is far cheaper than the audit check such a failure costs.
DEFAULT_MAX_IDLE_SECONDS = 20.0
# (connect, read) seconds: a connect just over a 3 s TCP retransmit, a read long enough
# for a vendor's slow write.
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)


# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request and its response, as handed to an observer.

    ``request_headers`` are the headers actually sent, except ``Authorization``,
    whose credentials are replaced by ``[redacted]`` (the scheme word is kept so a
    validator can still see which scheme was used).
    """

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    status: int
    response_headers: dict[str, str]
    response_body: bytes
    duration_ms: float = 0.0


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer of any status. Header names are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes
    _parsed: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body).

        Raises ``ValueError`` when the body is not JSON.
        """
        if not self._parsed:
            self._parsed.append(jsonlib.loads(self.body) if self.body.strip() else None)
        return self._parsed[0]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


# --- errors --------------------------------------------------------------------------


class HttpError(Exception):
    """Base class for failures that produced no HTTP response."""


class UnsafeUrl(HttpError, ValueError):
    """A URL outside the configured origin: credentials are never sent there."""


class TransportError(HttpError):
    """No response was received.

    ``maybe_sent`` is False only when the request provably never left this process
    (no connection could be made); otherwise the server may have processed it.
    """

    maybe_sent: bool = True

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ConnectFailed(TransportError):
    """No connection: refused, unresolvable host, connect timeout. Nothing was sent."""

    maybe_sent = False


class ResponseTimeout(TransportError):
    """Connected and sent, but no (complete) answer in time: it may have been applied."""


class ConnectionLost(TransportError):
    """The connection broke while sending or reading (reset, TLS or protocol error)."""


# --- the client ----------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class JsonHttpClient:
    """JSON requests to one origin, with one ``Authorization`` header on each.

    ``timeout`` is ``(connect, read)`` seconds; the read timeout applies to each
    socket read. ``observer`` is called with an ``Exchange`` after every response
    (not on transport errors); an exception it raises propagates to the caller, so
    tests can fail a request that breaks a published contract. ``pool`` replaces the
    urllib3 ``PoolManager`` (tests inject a fake; it needs a ``request`` method with
    urllib3's signature).
    """

    def __init__(
        self,
        base_url: str,
        auth_header: str,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        observer: Callable[[Exchange], None] | None = None,
        pool: Any = None,
        max_idle_seconds: float = DEFAULT_MAX_IDLE_SECONDS,
        allow_insecure: bool = False,
    ) -> None:
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"not an absolute http(s) URL: {base_url!r}")
        # Basic credentials over plain HTTP are readable by anyone on the path: only
        # the local sandbox (loopback) may use http, unless explicitly allowed.
        if parts.scheme == "http" and not (allow_insecure or _is_loopback(parts.hostname)):
            raise ValueError(f"refusing to send credentials over plain http to {parts.hostname}")
        if parts.query or parts.fragment:
            raise ValueError("the base URL must not carry a query or fragment")
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._origin = (parts.scheme, parts.netloc.lower())
        self.__auth_header = auth_header
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self._observer = observer
        # retries=False everywhere: a write must never be silently repeated here.
        self._pool = pool if pool is not None else urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
        self._max_idle = max_idle_seconds
        self._last_used: float | None = None

    def __repr__(self) -> str:
        return f"JsonHttpClient({self.base_url!r})"

    def url_for(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The absolute URL for ``path`` (relative to the base URL, or absolute on the same origin)."""
        if path.startswith(("http://", "https://")):
            # e.g. a pagination link from the server: only ever followed on our origin.
            parts = urlsplit(path)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise UnsafeUrl(f"refusing to follow a link to another origin: {parts.scheme}://{parts.netloc}")
            url = path
        else:
            url = self.base_url + (path if path.startswith("/") else "/" + path)
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> HttpResponse:
        """Send one request and return the response, whatever its status. ``json`` is sent
        as JSON; ``data`` as it is, with its ``Content-Type`` in ``headers`` (a file upload).

        Raises ``ConnectFailed`` (not sent), ``ResponseTimeout`` or ``ConnectionLost``
        (maybe sent), or ``UnsafeUrl``.
        """
        if json is not None and data is not None:
            raise ValueError("give either json or data, not both")
        method = method.upper()
        url = self.url_for(path, params)
        sent_headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            body: bytes | None = data
            sent_headers["Content-Type"] = "application/octet-stream"
        elif json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            sent_headers["Content-Type"] = "application/json"
        else:
            body = None
        sent_headers.update(headers or {})
        sent_headers["Authorization"] = self.__auth_header

        self._drop_idle_connections()
        started = time.monotonic()
        try:
            raw = self._pool.request(
                method,
                url,
                body=body,
                headers=sent_headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
                preload_content=True,
            )
        except Exception as exc:
            self._last_used = time.monotonic()
            mapped = self._transport_error(exc, method, url)
            if mapped is None:
                raise  # not a transport failure (a bug, or a fake pool's own error)
            raise mapped from exc
        duration_ms = (time.monotonic() - started) * 1000
        self._last_used = time.monotonic()

        response = HttpResponse(
            status=int(raw.status),
            headers={str(name).lower(): str(raw.headers[name]) for name in raw.headers},
            body=bytes(raw.data or b""),
        )
        # Path only: query strings may carry cursors or ids, never needed in logs.
        logger.debug("%s %s -> %s in %.0f ms", method, urlsplit(url).path, response.status, duration_ms)
        if self._observer is not None:
            shown_headers = dict(sent_headers)
            scheme = self.__auth_header.split(" ", 1)[0] if " " in self.__auth_header else ""
            shown_headers["Authorization"] = f"{scheme} {REDACTED_AUTHORIZATION}".strip()
            self._observer(
                Exchange(
                    method=method,
                    url=url,
                    request_headers=shown_headers,
                    request_body=body,
                    status=response.status,
                    response_headers=dict(response.headers),
                    response_body=response.body,
                    duration_ms=duration_ms,
                )
            )
        return response

    def _drop_idle_connections(self) -> None:
        if self._last_used is None or time.monotonic() - self._last_used <= self._max_idle:
            return
        clear = getattr(self._pool, "clear", None)
        if callable(clear):
            clear()

    @staticmethod
    def _transport_error(exc: Exception, method: str, url: str) -> TransportError | None:
        """Classify a urllib3 failure by whether the request may have been sent."""
        reason: BaseException = exc
        # Only a custom pool with its own retry policy wraps errors this way.
        while isinstance(reason, u3.MaxRetryError) and reason.reason is not None:
            reason = reason.reason
        where = urlsplit(url)
        target = f"{method} {where.scheme}://{where.netloc}{where.path}"
        # Order matters: NewConnectionError subclasses ConnectTimeoutError, and both
        # happen before a single byte of the request is written.
        if isinstance(reason, (u3.NewConnectionError, u3.ConnectTimeoutError)):
            return ConnectFailed(f"{target}: could not connect ({type(reason).__name__})", method=method, url=url)
        if isinstance(reason, u3.ReadTimeoutError):
            return ResponseTimeout(f"{target}: no response in time", method=method, url=url)
        if isinstance(reason, (u3.HTTPError, OSError)):
            # Protocol errors, resets, TLS failures: we cannot tell how far the
            # request got, so it is treated as possibly sent.
            return ConnectionLost(f"{target}: connection lost ({type(reason).__name__})", method=method, url=url)
        return None


class BearerClients:
    """The ``JsonHttpClient``\\ s of one API, one per bearer token (a rotated token gets a new
    one), all on one urllib3 pool made on first use, so connections are reused across
    tokens. ``keep``: at most this many clients are kept (when full, the cache starts over:
    a rotated-out token's client is not needed again); None keeps one per token seen."""

    def __init__(
        self, base_url: str, *, pool: Any = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT, keep: int | None = None
    ) -> None:
        self.base_url = base_url
        self._pool = pool
        self._timeout = timeout
        self._keep = keep
        self._clients: dict[str, JsonHttpClient] = {}

    def client(self, token: str) -> JsonHttpClient:
        """The client sending ``Authorization: Bearer <token>``."""
        client = self._clients.get(token)
        if client is None:
            if self._pool is None:
                self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
            client = JsonHttpClient(self.base_url, f"Bearer {token}", timeout=self._timeout, pool=self._pool)
            if self._keep is not None and len(self._clients) >= self._keep:
                self._clients.clear()
            self._clients[token] = client
        return client
