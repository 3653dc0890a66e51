"""What a helpdesk's HTTP answer means for the ``Helpdesk`` interface.

The Zendesk and Freshdesk adapters map the outcome of a request the same way, and
this module is that one mapping:

* a failure without a response (``http.TransportError``): ``HelpdeskUnavailable``,
  ``maybe_applied`` only for a write that may have been sent; a URL off the
  configured origin (``http.UnsafeUrl``): ``HelpdeskRejected``;
* 429, announced load shedding (503 with ``Retry-After``) and the adapter's other
  "not processed" statuses: ``HelpdeskUnavailable`` with ``retry_after``, never
  applied (nothing was done yet);
* any other 5xx: ``HelpdeskUnavailable``, ``maybe_applied`` for a write (the work may
  have been committed before the error, or finished behind a proxy that gave up);
* anything else that is not 2xx: ``HelpdeskRejected``;
* a 2xx body that is not a JSON object: ``HelpdeskUnavailable``, ``maybe_applied``
  for a write (the work may well be done).

Every request also goes through the helpdesk's shared rate budget when one is in use
(``use_budget``, set by ``wiring``; ``helpdesks/budget.py``): taken before sending, told
every answer. A request the budget cannot grant in time is not sent and fails as a 429
would (``HelpdeskUnavailable`` with ``retry_after``, never applied).

What only one helpdesk does stays in its adapter: Zendesk's 422 "closed prevents
update" and ``IdempotentRequestError``, its ``ratelimit-reset`` fallback; Freshdesk's
rate-limit budget headers and accepted 409 duplicates; and each one's error words and
status hints.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from chalicelib.helpdesks.base import HelpdeskError, HelpdeskRejected, HelpdeskUnavailable
from chalicelib.http import ConnectFailed, HttpResponse, TransportError, UnsafeUrl

# A helpdesk's own error words are quoted in exception messages at most this long.
ERROR_TEXT_MAX = 300


class RequestBudget(Protocol):
    """What ``send`` needs of a shared rate budget (``helpdesks.budget.RateBudget``)."""

    wait_up_to: float  # seconds a request may wait for the budget before it fails as a 429

    def bucket_of(self, method: str, path: str) -> str: ...

    def acquire(self, bucket: str, cost: int = 1, *, wait_up_to: float) -> bool: ...

    def retry_after(self, bucket: str, cost: int = 1) -> float: ...

    def observe(self, headers: Mapping[str, str], *, status: int, bucket: str, body: bytes = b"") -> float | None: ...


BudgetSource = Callable[[], "RequestBudget | None"]

# The budget of each helpdesk by lower-case name: one per Lambda container, like its clients.
_budgets: dict[str, BudgetSource] = {}


def use_budget(helpdesk: str, budget: RequestBudget | BudgetSource | None) -> None:
    """Send every request to ``helpdesk`` ("zendesk") through ``budget`` (None: no budget), or
    through the one a function returns at the first request (``wiring``: built only when used)."""
    if budget is None:
        _budgets.pop(helpdesk.lower(), None)
    elif callable(budget):
        _budgets[helpdesk.lower()] = budget
    else:
        _budgets[helpdesk.lower()] = lambda: budget


def forget_budgets() -> None:
    """No budget for any helpdesk (``wiring.reset``)."""
    _budgets.clear()


def describe(method: str, path: str) -> str:
    """``POST /api/v2/tickets``: a request as named in exception messages (no query string)."""
    return f"{method} {path.split('?', 1)[0]}"


def send(helpdesk: str, http: Any, method: str, path: str, *, writes_message: bool, **request: Any) -> HttpResponse:
    """``http.request(method, path, **request)``: the response whatever its status, or
    the helpdesk exception a failure without a response means.

    ``helpdesk`` names it in messages ("Zendesk"). ``writes_message``: the request puts
    a message on a ticket, so a failure after it may have been sent is ``maybe_applied``.
    A request the helpdesk's budget does not grant in time is not sent (see the module docstring).
    """
    source = _budgets.get(helpdesk.lower())
    budget = source() if source is not None else None
    if budget is None:
        return _send(helpdesk, http, method, path, writes_message=writes_message, **request)
    bucket = budget.bucket_of(method, path)
    if not budget.acquire(bucket, wait_up_to=budget.wait_up_to):
        wait = budget.retry_after(bucket)
        raise HelpdeskUnavailable(
            f"{helpdesk} request budget spent, {describe(method, path)} not sent (retry in {wait:.0f} s)", retry_after=wait
        )
    response = _send(helpdesk, http, method, path, writes_message=writes_message, **request)
    budget.observe(response.headers, status=response.status, bucket=bucket, body=response.body)
    return response


def _send(helpdesk: str, http: Any, method: str, path: str, *, writes_message: bool, **request: Any) -> HttpResponse:
    try:
        return http.request(method, path, **request)
    except UnsafeUrl as exc:
        raise HelpdeskRejected(f"{helpdesk} {describe(method, path)}: {exc}") from exc
    except ConnectFailed as exc:
        raise HelpdeskUnavailable(f"{helpdesk} unreachable: {exc}", maybe_applied=False) from exc
    except TransportError as exc:
        raise HelpdeskUnavailable(f"{helpdesk} did not answer: {exc}", maybe_applied=writes_message and exc.maybe_sent) from exc


def status_error(
    helpdesk: str,
    what: str,
    status: int,
    *,
    detail: str,
    retry_after: float | None,
    writes_message: bool,
    hint: str = "",
    not_processed: Collection[int] = (),
) -> HelpdeskError:
    """The exception an error status means (see the module docstring).

    ``what`` names the request (``describe``), ``detail`` is the helpdesk's error words
    (``error_detail``), ``hint`` a word on what to check for a rejection.
    ``not_processed``: statuses this helpdesk answers before doing any work, besides 429.
    """
    if status == 429:
        return HelpdeskUnavailable(f"{helpdesk} rate limit on {what} (429){detail}", retry_after=retry_after)
    if status in not_processed or (status == 503 and retry_after is not None):
        return HelpdeskUnavailable(f"{helpdesk} {what} not processed ({status}){detail}", retry_after=retry_after)
    if status >= 500:
        return HelpdeskUnavailable(
            f"{helpdesk} server error on {what} ({status}){detail}", maybe_applied=writes_message, retry_after=retry_after
        )
    return HelpdeskRejected(f"{helpdesk} rejected {what} ({status}{hint}){detail}")


def status_hint(status: int, hints: Mapping[int, str], url_setting: str) -> str:
    """``hints[status]``, else the hint every helpdesk shares (404, a redirect), else ""."""
    if status in hints:
        return hints[status]
    if status == 404:
        return ": not found"
    if 300 <= status < 400:
        return f": unexpected redirect, check {url_setting}"
    return ""


def read_json(response: HttpResponse) -> Any:
    """The body parsed as JSON, None when it is empty or not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def json_object(helpdesk: str, response: HttpResponse, *, writes_message: bool) -> dict[str, Any]:
    """The body of a 2xx answer as a JSON object, or ``HelpdeskUnavailable``."""
    data = read_json(response)
    if not isinstance(data, dict):
        # A 2xx we cannot read: for a write, the work may well be done.
        raise HelpdeskUnavailable(f"{helpdesk} answered {response.status} without a JSON object", maybe_applied=writes_message)
    return data


def error_detail(response: HttpResponse, words: Callable[[dict[str, Any]], list[str]]) -> str:
    """``": <the helpdesk's own error words>"`` for an exception message, "" without any.

    ``words`` picks them out of a JSON object body (each helpdesk has its own fields).
    A body that is not JSON (a proxy's error page) is quoted as is, unless it claims to
    be JSON. At most ``ERROR_TEXT_MAX`` characters.
    """
    data = read_json(response)
    parts: list[str] = []
    if isinstance(data, dict):
        parts = words(data)
    elif response.body and "json" not in (response.header("content-type") or ""):
        parts.append(response.body[:ERROR_TEXT_MAX].decode("utf-8", "replace").strip())
    text = "; ".join(p for p in parts if p)
    if len(text) > ERROR_TEXT_MAX:
        text = text[: ERROR_TEXT_MAX - 1] + "…"
    return f": {text}" if text else ""
