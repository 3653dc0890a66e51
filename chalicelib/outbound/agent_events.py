"""Helpdesk -> socialdesk: verify, parse and deduplicate the events our Zendesk triggers send.

``make zendesk-setup`` creates one webhook (``POST <PUBLIC_BASE_URL>/helpdesk/zendesk``) and
two triggers that notify it (``chalicelib.helpdesks.zendesk.admin``). Their JSON bodies are
defined here, next to the parser that reads them, so the two cannot drift apart:

* ``agent_comment`` (``COMMENT_EVENT_BODY``): an agent added a public comment to a bridged
  ticket (conditions: ticket updated, comment is public, current user is an agent, the
  update did not come through the API -- the bridge writes only through the API -- and the
  ticket has the ``socialdesk`` tag);
* ``ticket_status`` (``STATUS_EVENT_BODY``): a bridged ticket's status changed;
* ``approval`` (``approval_event_body(decision)``): a lead added ``socialdesk_approved`` or
  ``socialdesk_withdrawn`` to a bridged ticket (the trigger removes the tag again, so it fires
  once per decision): the ticket's held answers are sent or dropped (``outbound/approval.py``).

The bodies carry ids only: ``{{ticket.id}}``, ``{{ticket.external_id}}`` (our conversation
key: platform ids joined by colons), ``{{current_user.id}}``, and for the status trigger
``{{ticket.status}}`` and ``{{ticket.updated_at_with_timestamp}}``. No comment text and no
comment id: Zendesk's placeholder reference documents no ``.id`` for a comment, and nothing
says placeholder values are escaped for JSON, so a reply with a quote or a newline could
arrive as a body nobody can read. The agent's comments are read through the API instead
(``GET /api/v2/tickets/{id}/comments``, see ``agent_replies``), as the Freshdesk path does.
A body of the previous trigger (with ``comment_id`` and ``comment``) is read for its ids
only, until ``make zendesk-setup`` replaces it.

Authenticity (https://developer.zendesk.com/documentation/webhooks/verifying/): every
request carries ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(signing secret,
``X-Zendesk-Webhook-Signature-Timestamp`` + raw body)). The key is the signing secret as
shown by Zendesk (its UTF-8 bytes, not base64-decoded); the timestamp is ISO 8601 UTC
(``2021-03-25T05:09:27Z``). We also refuse a timestamp more than 5 minutes away from our
clock, so a captured request cannot be replayed later. Zendesk also sends
``X-Zendesk-Webhook-Id``, ``X-Zendesk-Webhook-Invocation-Id`` (the same on Zendesk's own
retries of one invocation) and ``X-Zendesk-Account-Id``.

Deduplication. A comment event is not claimed as a whole: whatever delivery comes, each
agent comment it finds is claimed in the reply ledger (``REPLY#zendesk#<comment id>``), so
a retried delivery, a second trigger firing, or the next comment's delivery sends nothing
twice. A status event has an id derived from what it is about (``status:<ticket>:<status>:
<updated_at>``; the invocation id only when the body has nothing better): ``EventLog.claim``
is a conditional put of ``EVENT#zendesk#<id>`` (TTL 2 days), and a repeat is answered 200
with nothing done. The claim is released when processing fails (so Zendesk's retry runs it
again), and a claim left ``processing`` by a crashed invocation can be taken over after a
lease.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from chalicelib.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable
from chalicelib.inbound.signatures import get_header
from chalicelib.store import StoreUnavailable, error_code
from chalicelib.store.ledger import Attr, Ledger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
INVOCATION_HEADER = "X-Zendesk-Webhook-Invocation-Id"
WEBHOOK_ID_HEADER = "X-Zendesk-Webhook-Id"
ACCOUNT_HEADER = "X-Zendesk-Account-Id"

REPLAY_WINDOW = timedelta(minutes=5)
MAX_BODY_BYTES = 1024 * 1024  # a comment is at most 64 KB of text; room for escaping

BRIDGE_TAG = "socialdesk"  # every ticket the sync opens carries it (formatting.ticket_tags)
PRIVATE_TAG = "socialdesk_private"  # an agent (or a macro) adds it to answer privately

COMMENT_EVENT = "agent_comment"
STATUS_EVENT = "ticket_status"
APPROVAL_EVENT = "approval"  # a lead approved or withdrew the ticket's held answers (``approval``)
EVENT_KINDS = (COMMENT_EVENT, STATUS_EVENT, APPROVAL_EVENT)
DECISIONS = ("approved", "withdrawn")
# What handling an agent comment answers when an earlier delivery already did the work
# (``agent_replies.Outcome`` values): the delivery was a repeat.
REPEAT_OUTCOMES = frozenset({"already_sent", "already_handled", "in_progress", "waiting_retry", "awaiting_approval"})

# The bodies our triggers send: ids only (see the module docstring).
COMMENT_EVENT_BODY = (
    "{"
    '"socialdesk_event": "agent_comment", '
    '"ticket_id": "{{ticket.id}}", '
    '"external_id": "{{ticket.external_id}}", '
    '"author_id": "{{current_user.id}}"'
    "}"
)
STATUS_EVENT_BODY = (
    "{"
    '"socialdesk_event": "ticket_status", '
    '"ticket_id": "{{ticket.id}}", '
    '"external_id": "{{ticket.external_id}}", '
    '"status": "{{ticket.status}}", '
    '"updated_at": "{{ticket.updated_at_with_timestamp}}", '
    '"author_id": "{{current_user.id}}"'
    "}"
)


def approval_event_body(decision: str) -> str:
    """The body of the trigger that fires when a lead tags a ticket approved or withdrawn
    (one trigger per decision, so the decision is a constant, not a placeholder)."""
    assert decision in DECISIONS
    return (
        "{"
        '"socialdesk_event": "approval", '
        '"ticket_id": "{{ticket.id}}", '
        '"external_id": "{{ticket.external_id}}", '
        f'"decision": "{decision}", '
        '"author_id": "{{current_user.id}}"'
        "}"
    )


_STATUS_WORDS = {"new", "open", "pending", "hold", "solved", "closed"}
_STATUS_ALIASES = {"on-hold": "hold", "on hold": "hold", "on_hold": "hold", "onhold": "hold"}
_SIMPLE_FIELD = re.compile(r'"([a-z_]+)"\s*:\s*"((?:[^"\\]|\\.)*)"')


# --- signatures ------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Zendesk-Webhook-Signature`` Zendesk would send: base64(HMAC-SHA256(secret, timestamp + body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str,
    body: bytes,
    *,
    timestamp: str | None = None,
    invocation_id: str | None = None,
    webhook_id: str = "01HSOCIALDESKLOCAL00000000",
    account_id: str = "1",
) -> dict[str, str]:
    """The headers of a genuine delivery of ``body`` (for the sandbox and tests)."""
    stamp = timestamp or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        ACCOUNT_HEADER: account_id,
        WEBHOOK_ID_HEADER: webhook_id,
        INVOCATION_HEADER: invocation_id or str(int(time.time() * 1000)),
        SIGNATURE_HEADER: sign(secret, stamp, body),
        TIMESTAMP_HEADER: stamp,
    }


def parse_timestamp(value: str) -> datetime:
    """``2021-03-25T05:09:27Z`` (any ISO 8601 with an offset), or epoch seconds/milliseconds."""
    text = value.strip()
    if text.isdigit():
        number = int(text)
        return datetime.fromtimestamp(number / 1000 if number > 10_000_000_000 else number, tz=timezone.utc)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def verify_signature(
    headers: Mapping[str, str], body: bytes, secret: str, now: datetime, *, window: timedelta = REPLAY_WINDOW
) -> datetime:
    """Raise ``Unauthorized`` unless the request is signed with ``secret`` within ``window`` of ``now``.

    Returns the signed timestamp. The signature is checked first: an old timestamp is
    only reported as a replay when the signature itself is genuine.
    """
    signature = (get_header(headers, SIGNATURE_HEADER) or "").strip()
    stamp = (get_header(headers, TIMESTAMP_HEADER) or "").strip()
    if not signature:
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header")
    if not stamp:
        raise Unauthorized(f"missing {TIMESTAMP_HEADER} header")
    if not hmac.compare_digest(signature.encode(), sign(secret, stamp, body).encode()):
        raise Unauthorized(f"{SIGNATURE_HEADER} does not match the request")
    try:
        moment = parse_timestamp(stamp)
    except (ValueError, OverflowError, OSError):
        raise Unauthorized(f"{TIMESTAMP_HEADER} is not a timestamp") from None
    if abs(_utc(now) - moment) > window:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} is {int(abs((_utc(now) - moment).total_seconds()))} s away from now; "
            f"requests older than {int(window.total_seconds() // 60)} minutes are refused as replays"
        )
    return moment


# --- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentEvent:
    """One notification from a helpdesk, or one agent comment found through it.

    ``conversation_key`` is the ticket's ``external_id`` (None when the ticket has none:
    not a ticket the bridge opened). ``status`` is normalized (new, open, pending, hold,
    solved, closed; None when the body's word is unknown, e.g. localized). A Zendesk
    comment event names only the ticket (``comment_id`` None); the comments read for it,
    and Freshdesk's, carry ``comment_id``, ``text``, their author and the ticket's ``tags``.
    """

    kind: str
    ticket_id: str
    conversation_key: str | None
    status: str | None = None
    tags: tuple[str, ...] = ()
    updated_at: datetime | None = None
    comment_id: str | None = None
    text: str = ""
    author_id: str | None = None
    author_email: str | None = None
    author_name: str | None = None
    invocation_id: str | None = None
    raw_status: str | None = field(default=None, compare=False)
    priority: str | None = None  # the ticket's: low, normal, high, urgent (what approval rules read)
    ticket_type: str | None = None  # the ticket's: question, incident, problem, task...
    problem_id: str | None = None  # an incident's problem ticket (whether its crisis is open decides approval)
    decision: str | None = None  # an ``approval`` event's: approved or withdrawn

    @property
    def private(self) -> bool:
        """The agent asked for a private answer (tag ``socialdesk_private``)."""
        return PRIVATE_TAG in self.tags

    @property
    def event_id(self) -> str:
        """What the event is about, for deduplication (see the module docstring)."""
        if self.kind == COMMENT_EVENT:
            return f"comment:{self.ticket_id}:{self.comment_id}" if self.comment_id else f"comments:{self.ticket_id}"
        if self.kind == APPROVAL_EVENT:
            return f"approval:{self.ticket_id}:{self.decision}"
        stamp = self.updated_at.strftime("%Y%m%dT%H%M%SZ") if self.updated_at else None
        if stamp is None and self.invocation_id:
            return f"status:{self.ticket_id}:{self.status or self.raw_status}:inv-{self.invocation_id}"
        return f"status:{self.ticket_id}:{self.status or self.raw_status}:{stamp}"


def normalize_status(word: str | None) -> str | None:
    """Zendesk's status word (``Solved``, ``on-hold``...) as new/open/pending/hold/solved/closed, else None."""
    text = (word or "").strip().lower()
    text = _STATUS_ALIASES.get(text, text)
    return text if text in _STATUS_WORDS else None


def _lenient_fields(text: str) -> dict[str, str]:
    """The simple string fields of a body that is not valid JSON (e.g. an unescaped quote
    in a name a Freshdesk rule put in): whatever parses, first occurrence wins."""
    found: dict[str, str] = {}
    for name, value in _SIMPLE_FIELD.findall(text):
        if name not in found:
            try:
                found[name] = json.loads(f'"{value}"')
            except ValueError:
                found[name] = value
    return found


def decode_body(body: bytes) -> dict[str, Any]:
    """The body as a dict: JSON (control characters tolerated), else the lenient reading."""
    if not body or not body.strip():
        raise BadRequest("the request body is empty")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the body is not UTF-8: {exc}") from exc
    try:
        data = json.loads(text, strict=False)
    except RecursionError:
        raise BadRequest("the body nests JSON too deeply") from None
    except ValueError:
        data = _lenient_fields(text)
        if "socialdesk_event" not in data:
            raise BadRequest("the body is not valid JSON") from None
        logger.warning("zendesk event body was not valid JSON; read leniently", extra={"fields": sorted(data)})
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


MAX_FIELD_CHARS = {"external_id": 1024, "ticket_id": 20, "author_id": 32}


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        text = " ".join(str(v) for v in value)
    else:
        text = str(value).strip()
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (\ud800): nothing we could store or send
        raise BadRequest(f"{name} is not valid Unicode") from None
    limit = MAX_FIELD_CHARS.get(name, 1024)
    if len(text) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return text


def parse_event(body: bytes, headers: Mapping[str, str] | None = None) -> AgentEvent:
    """Read one of our trigger bodies; ``BadRequest`` names the field (and placeholder) at fault.

    A comment event's ``comment_id`` and text are never taken from the body (see the
    module docstring): the event names the ticket, its comments are read from Zendesk."""
    data = decode_body(body)
    kind = _text(data, "socialdesk_event")
    if kind not in EVENT_KINDS:
        raise BadRequest(f"socialdesk_event must be one of {', '.join(EVENT_KINDS)}, not {kind!r}")
    ticket_id = _text(data, "ticket_id")
    if not ticket_id.isdigit():
        raise BadRequest(f"ticket_id must be a Zendesk ticket id ({{{{ticket.id}}}}), not {ticket_id!r}")
    updated_at: datetime | None = None
    if _text(data, "updated_at"):
        try:
            updated_at = parse_timestamp(_text(data, "updated_at"))
        except (ValueError, OverflowError, OSError):
            updated_at = None  # informational only
    raw_status = _text(data, "status") or None
    decision: str | None = None
    if kind == APPROVAL_EVENT:
        decision = _text(data, "decision").lower()
        if decision not in DECISIONS:
            raise BadRequest(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    return AgentEvent(
        kind=kind,
        ticket_id=ticket_id,
        conversation_key=_text(data, "external_id") or None,
        status=normalize_status(raw_status),
        updated_at=updated_at,
        author_id=_text(data, "author_id") or None,
        invocation_id=get_header(headers or {}, INVOCATION_HEADER),
        raw_status=raw_status,
        decision=decision,
    )


# --- deduplication ---------------------------------------------------------------------------


class EventLog:
    """Events already handled, as ``EVENT#<source>#<event id>`` items of the one table.

    ``claim`` is a conditional put: True when this caller owns the event now (new, or a
    claim left ``processing`` for longer than ``lease`` by an invocation that died).
    ``done`` marks it handled; ``release`` marks it ``released`` after a failure so the
    sender's retry processes it (kept, not deleted: the item still says what happened until it
    expires). Items expire after ``ttl`` (DynamoDB TTL on ``expires_at``).
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        ttl: timedelta = timedelta(days=2),
        lease: timedelta = timedelta(minutes=3),
    ) -> None:
        self._ledger = Ledger(client, table_name, owner="event log")
        self.ttl = ttl
        self.lease = lease

    @staticmethod
    def key(source: str, event_id: str) -> dict[str, dict[str, str]]:
        return {"pk": {"S": f"EVENT#{source}#{event_id}"}, "sk": {"S": "EVENT"}}

    def claim(self, source: str, event_id: str, now: datetime) -> bool:
        """True if the caller should process the event; False for a repeat."""
        moment = int(_utc(now).timestamp())
        stale = moment - int(self.lease.total_seconds())
        try:
            return self._ledger.claim(
                self.key(source, event_id),
                {
                    "item_type": "event",
                    "state": "processing",
                    "claimed_at": moment,
                    "expires_at": moment + int(self.ttl.total_seconds()),
                },
                or_if=Attr("state").eq("released") | (Attr("state").eq("processing") & Attr("claimed_at").lt(stale)),
            )
        except StoreUnavailable as exc:
            raise Unavailable(f"could not record the event: {exc}") from exc

    def done(self, source: str, event_id: str, outcome: str, now: datetime) -> None:
        """Mark the event handled (best effort: a lost mark only lets a late repeat re-check the ledger)."""
        try:
            self._ledger.move(
                self.key(source, event_id),
                set={"state": "done", "outcome": outcome, "done_at": int(_utc(now).timestamp())},
            )
        except StoreUnavailable as exc:
            logger.warning("could not mark a zendesk event done", extra={"reason": str(exc)})

    def release(self, source: str, event_id: str) -> None:
        """Give back a claim whose processing failed, so a retried delivery processes it (best
        effort). An update, not a delete: the item keeps its expiry and says it was released."""
        try:
            self._ledger.move(self.key(source, event_id), set={"state": "released"}, if_=Attr("state").eq("processing"))
        except StoreUnavailable as exc:
            logger.warning("could not release a zendesk event", extra={"reason": str(exc)})


# --- the route's handler ---------------------------------------------------------------------


@dataclass(frozen=True)
class EventResult:
    """What the route answers: always 200 once the event is verified and handled (or a repeat)."""

    status: int
    event_id: str
    kind: str
    outcome: str
    duplicate: bool = False

    def to_body(self) -> dict[str, Any]:
        return {"ok": True, "event_id": self.event_id, "kind": self.kind, "outcome": self.outcome, "duplicate": self.duplicate}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def resolve_now(now: datetime | Callable[[], datetime] | None) -> datetime:
    """The moment a helpdesk event is handled at, in UTC: ``now`` (a time or a clock,
    as tests give it) or the current time."""
    if now is None:
        return datetime.now(timezone.utc)
    return _utc(now() if callable(now) else now)


def handle_zendesk_event(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    events: EventLog,
    replies: Any,
    now: datetime | Callable[[], datetime] | None = None,
) -> EventResult:
    """``POST /helpdesk/zendesk``: verify, parse, deduplicate, then hand the event to ``replies``.

    ``replies`` is an ``agent_replies.AgentReplies`` (anything with ``handle(event) -> str``),
    or a function that builds one: called only for a verified, parsed event, so a request
    that is refused never needs the helpdesk configured. For a comment event it reads the
    ticket's comments and sends each new agent answer once.
    Raises ``WebhookError`` subclasses: ``Unauthorized`` (401: signature missing, wrong,
    or outside the 5-minute window), ``BadRequest`` (400), ``PayloadTooLarge`` (413),
    ``Unavailable`` (503: the table or Zendesk failed; Zendesk retries, the schedule reads
    the ticket again, and the claim of a status event was released).
    """
    moment = resolve_now(now)
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    verify_signature(headers, body, secret, moment)
    event = parse_event(body, headers)
    event_id = event.event_id
    # Comments are claimed one by one in the reply ledger, and so are approvals (each held
    # answer leaves ``held`` by one conditional write).
    claimed = event.kind == STATUS_EVENT
    if claimed and not events.claim("zendesk", event_id, moment):
        logger.info("zendesk event repeated; nothing done", extra={"event_id": event_id, "kind": event.kind})
        return EventResult(200, event_id, event.kind, "duplicate", duplicate=True)
    try:
        handler = replies if hasattr(replies, "handle") else replies()
        result = handler.handle(event)
        outcome = str(getattr(result, "value", result))
    except Exception as exc:
        if claimed:
            events.release("zendesk", event_id)
        from chalicelib.errors import WebhookError

        if isinstance(exc, WebhookError):
            raise
        if is_transient(exc):
            raise Unavailable(f"could not handle the event now ({type(exc).__name__}); Zendesk will retry") from exc
        raise
    if claimed:
        events.done("zendesk", event_id, outcome, moment)
    logger.info("zendesk event handled", extra={"event_id": event_id, "kind": event.kind, "outcome": outcome})
    return EventResult(200, event_id, event.kind, outcome, duplicate=outcome in REPEAT_OUTCOMES)


def is_transient(exc: Exception) -> bool:
    """Failures worth the helpdesk's retry of its event: the table or the helpdesk not answering."""
    from chalicelib.helpdesks.base import HelpdeskUnavailable
    from chalicelib.store import PERMANENT_ERRORS, ConversationConflict

    if isinstance(exc, (StoreUnavailable, HelpdeskUnavailable, ConversationConflict)):
        return True
    code = error_code(exc)  # a botocore ClientError: throttling and service errors are worth a retry
    return code is not None and code not in PERMANENT_ERRORS
