"""Check WhatsApp Cloud API send-message exchanges against Meta's published OpenAPI spec.

The reference is ``shared/specs/meta/whatsapp-business-messaging-api_v23.0.yaml``
(Meta's facebook/openapi repository; override with ``WHATSAPP_OPENAPI_SPEC``): both
what our sender sends (the request) and what the local sandbox answers (the
response) are validated against it with ``openapi-core``, the way
``tests/support/openapi.py`` does for Zendesk.

Usage::

    recorder = WhatsAppRecorder()                     # an ``observer`` for the sender
    sender = MetaSender(..., observer=recorder)
    ...
    recorder.assert_all_valid(); assert recorder.checked  # at least one exchange checked

Adaptations, each narrow and listed here:

* ``servers`` is replaced by ``[{"url": "/"}]`` so paths match whatever host served
  the traffic (the sandbox on 127.0.0.1, graph.facebook.com).
* The document itself is not validated (``spec_validator_cls=None``); traffic is.
* ``Authorization: Bearer [redacted]`` (how ``JsonHttpClient`` shows the header to
  observers) is checked as ``Bearer redacted``: the spec's pattern forbids ``[``, and
  the real token is never handed to observers.
* Undocumented statuses: the spec documents only ``200``. A 4xx/5xx body must match
  the spec's own ``GraphAPIError`` schema (``{"error": {"message", "type", "code",
  ...}}``); a 1xx-3xx other than 200 is a violation.
* ``SPEC_PATCHES`` below, each with the reason.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder

from tests.support.openapi import _body_excerpt, _describe, _headers, _Request, _Response

_SPEC_RELATIVE = Path("shared/specs/meta/whatsapp-business-messaging-api_v23.0.yaml")
SPEC_CANDIDATES = (Path(__file__).resolve().parents[3] / _SPEC_RELATIVE, Path("/work") / _SPEC_RELATIVE)
DEFAULT_SPEC_PATH = next((p for p in SPEC_CANDIDATES if p.is_file()), SPEC_CANDIDATES[0])
SEND_TEMPLATE = "/{Version}/{Phone-Number-ID}/messages"


@dataclass(frozen=True)
class SpecPatch:
    """One deliberate change to the published spec, with the reason it is needed."""

    pointer: str
    apply: Any  # callable(document, node) -> None
    reason: str


def _merge_base_properties(document: dict[str, Any], node: dict[str, Any]) -> None:
    base = document["components"]["schemas"]["BaseMessageProperties"]["properties"]
    node.setdefault("properties", {})
    for name, schema in base.items():
        node["properties"].setdefault(name, copy.deepcopy(schema))


def _allow_business_scoped_recipient(document: dict[str, Any], node: dict[str, Any]) -> None:
    node["properties"]["recipient"] = {"type": "string", "description": "business-scoped user id (BSUID)"}
    node["required"] = [name for name in node["required"] if name != "to"]
    node["anyOf"] = [{"required": ["to"]}, {"required": ["recipient"]}]


SPEC_PATCHES: tuple[SpecPatch, ...] = (
    # Since 2026 a customer with a username may reach us without a phone number: the send
    # takes their business-scoped user id as ``recipient`` instead of ``to`` (Meta's
    # "Business-scoped user IDs" page, 2026-11; ../shared/research/facts-turn2.md section 9).
    # v23's published schema predates it.
    SpecPatch(
        "/components/schemas/BaseMessageProperties",
        _allow_business_scoped_recipient,
        "v23 predates sending to a business-scoped user id (recipient instead of to)",
    ),
    # TextMessage is allOf[BaseMessageProperties, {additionalProperties: false, properties:
    # {type, text}}]. In JSON Schema, additionalProperties only sees its own subschema's
    # properties, so every real text message (which must carry messaging_product, to,
    # recipient_type -- required by the first subschema) fails the second one: the
    # published schema accepts no text message at all, including Meta's own examples.
    # The fix keeps additionalProperties: false (typos are still caught) and lists the
    # base properties in the subschema that forbids extras (after the patch above).
    SpecPatch(
        "/components/schemas/TextMessage/allOf/1",
        _merge_base_properties,
        "allOf + additionalProperties:false rejects the base properties of every text message",
    ),
)


def spec_path() -> Path:
    return Path(os.environ.get("WHATSAPP_OPENAPI_SPEC", DEFAULT_SPEC_PATH))


def spec_available() -> bool:
    return spec_path().is_file()


def _resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.lstrip("/").split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part.replace("~1", "/").replace("~0", "~")]
    return node


@functools.lru_cache(maxsize=4)
def load_spec(path: str | None = None, patched: bool = True) -> dict[str, Any]:
    """The spec as a dict: servers neutralised, ``SPEC_PATCHES`` applied. Cached."""
    with open(path or spec_path(), "rb") as handle:
        document = yaml.load(handle, Loader=yaml.CSafeLoader)
    document["servers"] = [{"url": "/"}]
    for patch in SPEC_PATCHES if patched else ():
        try:
            node = _resolve(document, patch.pointer)
        except (KeyError, IndexError, TypeError) as exc:
            raise RuntimeError(f"spec patch no longer applies: {patch.pointer}") from exc
        patch.apply(document, node)
    return document


@functools.lru_cache(maxsize=4)
def _openapi(path: str | None = None, patched: bool = True) -> OpenAPI:
    return OpenAPI.from_dict(load_spec(path, patched), config=Config(spec_validator_cls=None))


def _shown_headers(headers: Any) -> Any:
    """Observer headers with the redacted bearer token in a form the spec's pattern accepts."""
    found = _headers(headers)
    auth = found.get("Authorization")
    if auth and "[redacted]" in auth:
        found["Authorization"] = auth.replace("[redacted]", "redacted")
    return found


class WhatsAppContract:
    """Validates send-message requests and responses against the WhatsApp spec."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, patched: bool = True) -> None:
        self._path = str(path) if path is not None else None
        self.api = _openapi(self._path, patched)
        self.document = load_spec(self._path, patched)
        self._finder = APICallPathFinder(self.api.spec)

    def operation(self, method: str, url: str) -> tuple[str, str]:
        """``(path template, operationId)``; AssertionError when the spec has no such operation."""
        path = urlsplit(url).path or "/"
        try:
            found = self._finder.find(method.lower(), "http://localhost" + path)
        except PathError as exc:
            raise AssertionError(f"{method.upper()} {path} is not a WhatsApp Cloud API operation: {exc}") from None
        template = found.path.parts[-1] if hasattr(found.path, "parts") else str(found.path)
        return template, str(found.operation["operationId"])

    def check_request(self, method: str, url: str, headers: Any, body: bytes | None) -> None:
        template, operation_id = self.operation(method, url)
        request = _Request(method, url, _shown_headers(headers), body)
        errors = list(self.api.iter_request_errors(request))
        if errors:
            raise AssertionError(
                f"WhatsApp contract: request {method.upper()} {template} ({operation_id}) does not match the spec:\n"
                + "\n".join(_describe(e) for e in errors)
                + _body_excerpt("request body", body)
            )

    def check_response(self, method: str, url: str, request_headers: Any, request_body: bytes | None, status: int,
                       response_headers: Any, response_body: bytes | None) -> None:
        template, operation_id = self.operation(method, url)
        label = f"{method.upper()} {template} ({operation_id}) -> {status}"
        responses = self.api.spec / "paths" / template / method.lower() / "responses"
        documented = {str(code) for code in responses.keys()}
        if str(status) not in documented and "default" not in documented:
            if status < 400:
                raise AssertionError(f"WhatsApp contract: {label} is not a documented status ({sorted(documented)})")
            try:
                payload = json.loads(response_body or b"")
            except ValueError:
                raise AssertionError(f"WhatsApp contract: {label}: the error body is not JSON"
                                     + _body_excerpt("body", response_body)) from None
            schema = self.document["components"]["schemas"]["GraphAPIError"]
            problems = sorted(jsonschema.Draft202012Validator(schema).iter_errors(payload), key=str)
            if problems:
                raise AssertionError(f"WhatsApp contract: {label}: the error body is not Graph's error shape:\n"
                                     + "\n".join(f"  {p.message}" for p in problems) + _body_excerpt("body", response_body))
            return
        request = _Request(method, url, _shown_headers(request_headers), request_body)
        errors = list(self.api.iter_response_errors(request, _Response(status, _headers(response_headers), response_body)))
        if errors:
            raise AssertionError(
                f"WhatsApp contract: response to {label} does not match the spec:\n"
                + "\n".join(_describe(e) for e in errors)
                + _body_excerpt("response body", response_body)
            )

    def validate_exchange(self, exchange: Any) -> None:
        """Check both sides of one exchange (anything with the ``Exchange`` attributes)."""
        self.check_request(exchange.method, exchange.url, exchange.request_headers, exchange.request_body)
        if exchange.status is not None:
            self.check_response(exchange.method, exchange.url, exchange.request_headers, exchange.request_body,
                                exchange.status, getattr(exchange, "response_headers", None),
                                getattr(exchange, "response_body", None))


def is_whatsapp_send(exchange: Any) -> bool:
    """A POST to ``/{version}/{id}/messages`` whose body is a WhatsApp message."""
    parts = urlsplit(exchange.url).path.strip("/").split("/")
    if exchange.method.upper() != "POST" or len(parts) != 3 or parts[2] != "messages":
        return False
    try:
        body = json.loads(exchange.request_body or b"")
    except ValueError:
        return False
    return isinstance(body, Mapping) and body.get("messaging_product") == "whatsapp"


@dataclass
class WhatsAppRecorder:
    """An ``observer``: keeps every exchange, checks the WhatsApp sends against the spec.

    Graph calls that are not WhatsApp sends (Page comments, Messenger) are recorded but
    not checked: the spec does not describe them.
    """

    contract: WhatsAppContract = field(default_factory=WhatsAppContract)
    exchanges: list[Any] = field(default_factory=list)
    checked: list[Any] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def __call__(self, exchange: Any) -> None:
        self.exchanges.append(exchange)
        if not is_whatsapp_send(exchange):
            return
        self.checked.append(exchange)
        try:
            self.contract.validate_exchange(exchange)
        except AssertionError as exc:
            self.violations.append(str(exc))

    def assert_all_valid(self) -> None:
        if self.violations:
            raise AssertionError(
                f"{len(self.violations)} of {len(self.checked)} WhatsApp exchanges broke the contract:\n\n"
                + "\n\n".join(self.violations)
            )


__all__ = ["SPEC_PATCHES", "WhatsAppContract", "WhatsAppRecorder", "is_whatsapp_send", "load_spec", "spec_available"]
