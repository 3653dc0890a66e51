"""Check HTTP exchanges with Zendesk against Zendesk's published OpenAPI document.

The reference is ``../shared/specs/zendesk/support-api.oas.yaml`` next to the repository
(override with the ``ZENDESK_OPENAPI_SPEC`` environment variable): Zendesk's own ``oas.yaml``, not our
reading of the docs. Both our Zendesk client (its requests) and the local sandbox
(its responses) are checked against it, so neither can drift into a private dialect.

Usage::

    contract = ZendeskContract()                      # spec loaded once per process
    contract.validate("POST", "http://127.0.0.1:8025/api/v2/tickets.json",
                      req_headers, req_body, 201, resp_headers, resp_body)
    contract.validate_exchange(exchange)             # any object with the Exchange fields

    recorder = ContractRecorder()                     # an ``observer`` for the client
    client = ZendeskClient(..., observer=recorder)
    ...
    recorder.assert_all_valid()

How the spec is adapted, each adaptation narrow and listed here:

* ``servers`` is replaced by ``[{"url": "/"}]`` so that paths match whatever host the
  traffic went to (a sandbox on 127.0.0.1, a real ``{subdomain}.zendesk.com``).
* A trailing ``.json`` is stripped from the request path before matching. Zendesk's
  paths are written without it (``/api/v2/tickets/{ticket_id}``) while the API serves
  both forms and its own docs and clients use ``/api/v2/tickets/123.json``.
* The document as a whole is not validated (``spec_validator_cls=None``): it fails
  openapi-spec-validator (e.g. ``/api/v2/brand_agents`` uses an undeclared path
  parameter ``brand_id``). We validate traffic against it, not the document itself.
* Error statuses: the spec documents only success responses. An undocumented 4xx is
  checked against ``ZENDESK_ERROR_SCHEMA`` (Zendesk's error envelope, from its
  "Response format" docs) or may be ``text/plain`` as those docs allow; an
  undocumented 5xx is accepted with any body (Zendesk's edge answers those, not the
  API). An undocumented 1xx-3xx is a violation.
* ``SPEC_PATCHES``: individual schema fixes where the published spec contradicts what
  the real API returns. Each names the JSON pointer, the change and the reason.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from werkzeug.datastructures import Headers, ImmutableMultiDict

# The specs live beside the repository (../shared/specs); /work/shared is where this
# workplace keeps them when the clone sits elsewhere (CI).
_SPEC_RELATIVE = Path("shared/specs/zendesk/support-api.oas.yaml")
SPEC_CANDIDATES = (Path(__file__).resolve().parents[3] / _SPEC_RELATIVE, Path("/work") / _SPEC_RELATIVE)
DEFAULT_SPEC_PATH = next((p for p in SPEC_CANDIDATES if p.is_file()), SPEC_CANDIDATES[0])

# Zendesk's error envelope for business-level errors, e.g.
#   401 {"error": "Couldn't authenticate you"}
#   404 {"error": "RecordNotFound", "description": "Not found"}
#   422 {"error": "RecordInvalid", "description": "Record validation errors",
#        "details": {"status": [{"description": "Status: closed prevents ticket update"}]}}
#   403 {"error": {"title": "Forbidden", "message": "You do not have access to this page."}}
ZENDESK_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {
                    "type": "object",
                    "required": ["title"],
                    "properties": {"title": {"type": "string"}, "message": {"type": "string"}},
                },
            ]
        },
        "description": {"type": "string"},
        "details": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["description"],
                    "properties": {"description": {"type": "string"}, "error": {"type": "string"}},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class SpecPatch:
    """One deliberate change to the published spec, with the reason it is needed."""

    pointer: str  # JSON pointer to a schema object, e.g. /components/schemas/X/properties/y
    changes: Mapping[str, Any]  # keys set on that object
    reason: str


# The allowlist of spec bugs. Keep it short; every entry must cite what the real API does.
SPEC_PATCHES: tuple[SpecPatch, ...] = (
    # A user the bridge creates for a social author has no email and has never signed in.
    # Real responses then carry "email": null and "last_login_at": null, plus
    # "organization_id": null. UserObject is anyOf(UserForAdmin, UserForEndUser):
    # UserForEndUser rejects the null organization_id, UserForAdmin rejects the null
    # email/last_login_at, so a genuine end-user object would match neither branch.
    SpecPatch(
        "/components/schemas/UserForAdmin/properties/email",
        {"nullable": True},
        "end-users without an email identity have \"email\": null",
    ),
    SpecPatch(
        "/components/schemas/UserForAdmin/properties/last_login_at",
        {"nullable": True},
        "users who never signed in have \"last_login_at\": null",
    ),
    # AuditObject (the "audit" of an Update Ticket response) allows an event value of
    # string or integer only, but Create/Change events for tags carry the tag list.
    SpecPatch(
        "/components/schemas/AuditObject/properties/events/items/properties/value",
        {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "array", "items": {"type": "string"}}]},
        "audit events for tags have an array value, e.g. [\"twitter\", \"dm\"]",
    ),
    # A job's failed item for a ticket create is {"index": 0, "error": "TicketCreateFailed",
    # "details": "Description: cannot be blank"} (reported in cloudbees-oss/zendesk-java-client#98):
    # no "id" (nothing was created) and no "action", both of which FailedResult requires.
    SpecPatch(
        "/components/schemas/FailedResult",
        {"required": ["error", "details"]},
        "a failed create_many item has index, error and details, but no id or action",
    ),
)


class _SpecLoader(yaml.CSafeLoader):
    """YAML loader for Zendesk's oas.yaml.

    The file contains a key ``=`` that PyYAML resolves to the ``tag:yaml.org,2002:value``
    tag, which SafeLoader rejects: read it as the plain string it is. Timestamps are
    left as strings (examples hold unquoted dates, which JSON Schema cannot compare).
    """

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }


_SpecLoader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def spec_path() -> Path:
    return Path(os.environ.get("ZENDESK_OPENAPI_SPEC", DEFAULT_SPEC_PATH))


def spec_available() -> bool:
    return spec_path().is_file()


def _resolve_pointer(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in pointer.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@functools.lru_cache(maxsize=4)
def load_spec(path: str | None = None, patched: bool = True) -> dict[str, Any]:
    """The Zendesk spec as a dict: servers neutralised, ``SPEC_PATCHES`` applied. Cached.

    ``patched=False`` gives the document as published (to prove each patch is needed).
    """
    with open(path or spec_path(), "rb") as handle:
        document = yaml.load(handle, Loader=_SpecLoader)
    document["servers"] = [{"url": "/"}]
    for patch in SPEC_PATCHES if patched else ():
        try:
            target = _resolve_pointer(document, patch.pointer)
        except (KeyError, IndexError, TypeError) as exc:  # the spec changed: re-examine the patch
            raise RuntimeError(f"spec patch no longer applies: {patch.pointer}") from exc
        target.update(copy.deepcopy(dict(patch.changes)))
    return document


@functools.lru_cache(maxsize=4)
def _openapi(path: str | None = None, patched: bool = True) -> OpenAPI:
    return OpenAPI.from_dict(load_spec(path, patched), config=Config(spec_validator_cls=None))


# --- request/response adapters (openapi-core's protocols) -------------------------------------


def _headers(raw: Any) -> Headers:
    """Headers from a dict, an http.client.HTTPMessage, a werkzeug Headers or (name, value) pairs."""
    if raw is None:
        return Headers()
    if isinstance(raw, Headers):
        return Headers(raw)
    items = raw.items() if hasattr(raw, "items") else raw
    return Headers([(str(k), str(v)) for k, v in items])


def api_path(url_or_path: str) -> str:
    """The path as the spec writes it: no host, no query, no trailing ``.json``."""
    path = urlsplit(url_or_path).path or "/"
    return path[: -len(".json")] if path.endswith(".json") else path


class _Request:
    def __init__(self, method: str, url: str, headers: Headers, body: bytes | None) -> None:
        parts = urlsplit(url)
        self.host_url = f"{parts.scheme or 'http'}://{parts.netloc or 'localhost'}"
        self.path = api_path(url)
        self.method = method.lower()
        self.body = body
        self.content_type = (headers.get("Content-Type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            header=headers,
            cookie=ImmutableMultiDict(),
        )


class _Response:
    def __init__(self, status: int, headers: Headers, body: bytes | None) -> None:
        self.status_code = status
        self.headers = headers
        self.data = body
        self.content_type = (headers.get("Content-Type") or "").lower()


# --- error formatting -------------------------------------------------------------------------


def _schema_error_lines(error: Any, indent: str = "  ") -> list[str]:
    where = "/".join(str(p) for p in getattr(error, "absolute_path", ())) or "(root)"
    lines = [f"{indent}at {where}: {getattr(error, 'message', error)}"]
    for sub in list(getattr(error, "context", None) or [])[:6]:  # anyOf/oneOf branches
        lines.extend(_schema_error_lines(sub, indent + "    "))
    return lines


def _describe(exc: BaseException) -> str:
    """A readable account of an openapi-core error: what failed and each schema error."""
    lines = [type(exc).__name__]
    if getattr(exc, "name", None) and getattr(exc, "location", None):  # a parameter error
        lines[0] += f" ({exc.location} parameter {exc.name!r})"
    cause: BaseException | None = exc
    for _ in range(5):
        cause = cause.__cause__ or cause.__context__ if cause is not None else None
        if cause is None:
            break
        schema_errors = getattr(cause, "schema_errors", None)
        if schema_errors:
            for schema_error in schema_errors:
                lines.extend(_schema_error_lines(schema_error))
            break
        lines.append(f"  {type(cause).__name__}: {cause}"[:400])
    if len(lines) == 1:
        lines[0] = f"{type(exc).__name__}: {exc}"[:400]
    return "\n".join(lines)


# --- the contract -----------------------------------------------------------------------------


@dataclass
class RecordedExchange:
    """One HTTP exchange; the same fields as the Zendesk client's ``Exchange``."""

    method: str
    url: str
    request_headers: Any
    request_body: bytes | None
    status: int | None  # None: no response (connection dropped, timeout)
    response_headers: Any = None
    response_body: bytes | None = None


class ZendeskContract:
    """Validates requests to and responses from the Zendesk Support API against its spec."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, patched: bool = True) -> None:
        self._path = str(path) if path is not None else None
        self.api = _openapi(self._path, patched)
        self._finder = APICallPathFinder(self.api.spec)

    # Lookup -----------------------------------------------------------------------------------

    def operation(self, method: str, url: str) -> tuple[str, str]:
        """``(path template, operationId)`` for a request; AssertionError when the spec has none."""
        try:
            found = self._finder.find(method.lower(), "http://localhost" + api_path(url))
        except PathError as exc:
            raise AssertionError(f"{method.upper()} {api_path(url)} is not a Zendesk API operation: {exc}") from None
        template = found.path.parts[-1] if hasattr(found.path, "parts") else str(found.path)
        return template, str(found.operation["operationId"])

    # Checks -----------------------------------------------------------------------------------

    def check_request(self, method: str, url: str, headers: Any, body: bytes | None) -> None:
        """AssertionError unless the request matches the spec (path, query, auth, body)."""
        self.operation(method, url)  # a clear message for a path or method Zendesk does not have
        request = _Request(method, url, _headers(headers), body)
        errors = list(self.api.iter_request_errors(request))
        if errors:
            raise AssertionError(
                f"Zendesk contract: request {method.upper()} {url} does not match the spec:\n"
                + "\n".join(_describe(e) for e in errors)
                + _body_excerpt("request body", body)
            )

    def check_response(
        self,
        method: str,
        url: str,
        request_headers: Any,
        request_body: bytes | None,
        status: int,
        response_headers: Any,
        response_body: bytes | None,
    ) -> None:
        """AssertionError unless the response is one the spec allows for that operation."""
        template, operation_id = self.operation(method, url)
        label = f"{method.upper()} {template} ({operation_id}) -> {status}"
        responses = self.api.spec / "paths" / template / method.lower() / "responses"
        documented = {str(code) for code in responses.keys()}
        headers = _headers(response_headers)
        if str(status) not in documented and f"{str(status)[0]}XX" not in documented and "default" not in documented:
            self._check_undocumented(label, status, headers, response_body, documented)
            return
        request = _Request(method, url, _headers(request_headers), request_body)
        errors = list(self.api.iter_response_errors(request, _Response(status, headers, response_body)))
        if errors:
            raise AssertionError(
                f"Zendesk contract: response to {label} does not match the spec:\n"
                + "\n".join(_describe(e) for e in errors)
                + _body_excerpt("response body", response_body)
            )

    def validate(
        self,
        method: str,
        url: str,
        request_headers: Any,
        request_body: bytes | None,
        status: int | None,
        response_headers: Any,
        response_body: bytes | None,
        *,
        check_request: bool = True,
    ) -> None:
        """Check both sides of one exchange; ``status=None`` (no response) checks the request only.

        ``check_request=False`` is for tests that send a deliberately invalid request
        (no credentials, a bad body) and only want the error response checked.
        """
        if check_request:
            self.check_request(method, url, request_headers, request_body)
        if status is not None:
            self.check_response(method, url, request_headers, request_body, status, response_headers, response_body)

    def validate_exchange(self, exchange: Any, *, check_request: bool = True) -> None:
        """``validate`` for any object with the ``Exchange`` attributes (duck-typed)."""
        self.validate(
            exchange.method,
            exchange.url,
            exchange.request_headers,
            exchange.request_body,
            exchange.status,
            getattr(exchange, "response_headers", None),
            getattr(exchange, "response_body", None),
            check_request=check_request,
        )

    # Undocumented statuses ---------------------------------------------------------------------

    @staticmethod
    def _check_undocumented(
        label: str, status: int, headers: Headers, body: bytes | None, documented: set[str]
    ) -> None:
        if status < 400:
            raise AssertionError(
                f"Zendesk contract: {label} is not a documented status (documented: {sorted(documented)})"
            )
        if status == 429 and headers.get("Retry-After") is not None:
            if not headers["Retry-After"].strip().isdigit():
                raise AssertionError(f"Zendesk contract: {label}: Retry-After must be whole seconds, got {headers['Retry-After']!r}")
        if status >= 500:
            return  # Zendesk's edge answers these; no schema describes them.
        content_type = (headers.get("Content-Type") or "").lower()
        if content_type.startswith("text/plain") and body:
            return  # "may be text/plain for API-level error messages" (Zendesk Response format docs)
        if not content_type.startswith("application/json"):
            raise AssertionError(f"Zendesk contract: {label}: error body must be JSON or text/plain, got {content_type!r}")
        try:
            payload = json.loads(body or b"")
        except ValueError:
            raise AssertionError(f"Zendesk contract: {label}: error body is not JSON" + _body_excerpt("body", body)) from None
        problems = sorted(jsonschema.Draft7Validator(ZENDESK_ERROR_SCHEMA).iter_errors(payload), key=str)
        if problems:
            raise AssertionError(
                f"Zendesk contract: {label}: error body is not Zendesk's error shape:\n"
                + "\n".join(line for p in problems for line in _schema_error_lines(p))
                + _body_excerpt("body", body)
            )


def _body_excerpt(label: str, body: bytes | None, limit: int = 800) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace")
    return f"\n  {label}: {text[:limit]}{'...' if len(text) > limit else ''}"


@dataclass
class ContractRecorder:
    """An ``observer`` that keeps every exchange and checks each against the Zendesk spec.

    Violations are collected rather than raised inside the client (which might swallow
    them in its retry logic); call ``assert_all_valid()`` at the end of the test. With
    ``raise_immediately=True`` the AssertionError is raised from the observer call.
    Paths under ``ignore_prefixes`` (the sandbox's test endpoints) are recorded, not checked.
    """

    contract: ZendeskContract = field(default_factory=ZendeskContract)
    raise_immediately: bool = False
    ignore_prefixes: tuple[str, ...] = ("/__sandbox/",)
    exchanges: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __call__(self, exchange: Any) -> None:
        self.exchanges.append(exchange)
        if urlsplit(exchange.url).path.startswith(self.ignore_prefixes):
            return
        try:
            self.contract.validate_exchange(exchange)
        except AssertionError as exc:
            self.violations.append(str(exc))
            if self.raise_immediately:
                raise

    def operations(self) -> list[str]:
        """``"METHOD /template"`` of each checked exchange, in order (for coverage assertions)."""
        found = []
        for exchange in self.exchanges:
            try:
                found.append(f"{exchange.method.upper()} {self.contract.operation(exchange.method, exchange.url)[0]}")
            except AssertionError:
                found.append(f"{exchange.method.upper()} {api_path(exchange.url)}")
        return found

    def assert_all_valid(self) -> None:
        if self.violations:
            raise AssertionError(
                f"{len(self.violations)} of {len(self.exchanges)} Zendesk exchanges broke the contract:\n\n"
                + "\n\n".join(self.violations)
            )


def check_all(exchanges: Iterable[Any], contract: ZendeskContract | None = None) -> None:
    """Validate a batch of exchanges, failing with every violation at once."""
    recorder = ContractRecorder(contract=contract or ZendeskContract())
    for exchange in exchanges:
        recorder(exchange)
    recorder.assert_all_valid()


__all__ = [
    "ContractRecorder",
    "RecordedExchange",
    "SPEC_PATCHES",
    "SpecPatch",
    "ZENDESK_ERROR_SCHEMA",
    "ZendeskContract",
    "api_path",
    "check_all",
    "load_spec",
    "spec_available",
]
