"""Data protection: forget a person, and Meta's data deletion request callback.

What ``forget(platform, author_id)`` removes from the one table
-----------------------------------------------------------------
Everything the ``by-author`` index (KEYS_ONLY) finds for ``AUTHOR#<platform>#<id>``:

* every message item the person wrote (``CONV#<key>`` / ``MSG#<id>``);
* in a conversation that is *theirs* -- a private chat whose key ends with their id
  (``<platform>:dm:<account>:<id>``, and X's per-customer ``x:tweets:<brand>:<id>``) --
  the whole partition: the brand's replies to them, delivery-status stubs and the
  conversation item itself, whose very key holds their id (a phone number on WhatsApp);
* in a shared thread (a Page post, a comment thread), their messages only; when they
  are the thread's requester, the conversation state's ``requester_id`` is cleared
  (older items' ``requesters`` map is dropped), under the same optimistic ``version``
  lock the ticket sync uses;
* items of their own found through the index: their helpdesk user mapping
  (``REQUESTER#<helpdesk>#<platform>#<id>``), a cached profile.

Not covered (reported in ``ForgetReport.not_covered``):

* ``QUARANTINE#`` items (events we could not normalize) cannot be found by author
  without a scan; they expire with the table TTL (``RAW_TTL_DAYS``);
* the helpdesk: tickets and end users stay in Zendesk. The report lists the helpdesk
  user ids that were mapped to the person, so an agent can delete them there;
* copies outside the table's live data: the DynamoDB stream (24 h), point-in-time
  recovery backups (35 days) and the dead-letter queue's pointers (14 days);
* conversation items whose messages already expired (TTL) are only reachable with
  ``scan_conversations=True`` (a table scan; the CLI's ``--scan``).

Meta's deletion callback carries the *app-scoped* user id (ASID). Since May 2018 the
Pages API and Messenger identify people by *Page-scoped* ids (PSIDs), and Instagram by
IGSIDs; Meta maps ASID <-> PSID only through the ID Matching API
(``GET /{asid}/ids_for_pages`` with an app token and ``appsecret_proof``, available
when the app and the Page belong to the same business). We delete what matches the
id as given: facebook, messenger and instagram authors whose id equals ``user_id``.
A person we cannot match that way needs an operator: ``python -m chalicelib.privacy.deletion
forget --platform messenger --author-id <psid>``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from chalicelib.errors import BadRequest, Unauthorized, Unavailable, WebhookError
from chalicelib.inbound.signatures import SignatureError
from chalicelib.store import AUTHOR_INDEX, author_pk
from chalicelib.store.table import error_code

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SIGNED_REQUEST_ALGORITHM = "HMAC-SHA256"
MAX_SIGNED_REQUEST_CHARS = 8192
# The platforms whose author ids can equal the user id in Meta's callback.
META_PLATFORMS = ("facebook", "messenger", "instagram")
# Conversation scopes that belong to one customer: "<platform>:<scope>:<account>:<customer id>".
OWNED_SCOPES = frozenset({"dm", "tweets"})

REQUEST_SK = "REQUEST"
OPEN_REQUESTS = "PRIVACY#open"  # gsi1pk of a request not yet done: listed through the by-author index
STATUS_RETENTION_DAYS = 365
CODE_BYTES = 16  # 128 random bits: a confirmation code cannot be guessed

_BATCH = 25  # BatchWriteItem limit
_WRITE_ATTEMPTS = 8
_STATE_ATTEMPTS = 5

NOT_COVERED = (
    "quarantined events (QUARANTINE# items) are not searchable by author; they expire with the table TTL",
    "tickets and end users in the helpdesk are not deleted; see helpdesk_user_ids",
    "the table stream (24 h), point-in-time backups (35 days) and dead-letter pointers (14 days) expire on their own",
)


class NotFound(WebhookError):
    """No such deletion request."""

    status = 404
    code = "not_found"


# --- Meta signed_request --------------------------------------------------------------


def _b64url_decode(part: str, what: str) -> bytes:
    text = part.strip().rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"the signed_request {what} is not base64url") from exc


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_request(payload: Mapping[str, Any], app_secret: str) -> str:
    """A ``signed_request`` as Meta builds it (tests and the local stack)."""
    body = _b64url_encode(json.dumps(dict(payload), separators=(",", ":")).encode())
    signature = hmac.new(app_secret.encode(), body.encode("ascii"), hashlib.sha256).digest()
    return f"{_b64url_encode(signature)}.{body}"


def parse_signed_request(signed_request: str, app_secret: str) -> dict[str, Any]:
    """Verify and decode Meta's ``<base64url signature>.<base64url payload>``.

    The HMAC-SHA256 covers the *encoded* payload part, exactly as received. Raises
    ``BadRequest`` for a malformed value and ``SignatureError`` for a wrong
    signature, a missing secret or an algorithm other than ``HMAC-SHA256``.
    """
    if not app_secret:
        raise SignatureError("no app secret to check the signed_request with")
    if not isinstance(signed_request, str) or not signed_request.strip():
        raise BadRequest("signed_request is missing")
    if len(signed_request) > MAX_SIGNED_REQUEST_CHARS:
        raise BadRequest("signed_request is too long")
    parts = signed_request.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise BadRequest("signed_request must be <signature>.<payload>")
    encoded_signature, encoded_payload = parts
    try:
        payload_bytes = encoded_payload.encode("ascii")
    except UnicodeEncodeError as exc:
        raise BadRequest("signed_request is not ASCII") from exc
    signature = _b64url_decode(encoded_signature, "signature")
    payload_raw = _b64url_decode(encoded_payload, "payload")
    expected = hmac.new(app_secret.encode(), payload_bytes, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError("the signed_request signature does not match")
    try:
        payload = json.loads(payload_raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest("the signed_request payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise BadRequest("the signed_request payload is not a JSON object")
    algorithm = payload.get("algorithm")
    if not isinstance(algorithm, str) or algorithm.upper() != SIGNED_REQUEST_ALGORITHM:
        raise SignatureError(f"unsupported signed_request algorithm {algorithm!r}; expected {SIGNED_REQUEST_ALGORITHM}")
    return payload


# --- reports -------------------------------------------------------------------------


@dataclass
class ForgetReport:
    """What one ``forget`` (or several, merged) removed."""

    messages_deleted: int = 0  # items the person wrote
    conversations_touched: int = 0  # conversations where anything of theirs was removed
    conversations_deleted: int = 0  # their own private chats, removed whole
    other_items_deleted: int = 0  # brand replies and status stubs inside their private chats
    requesters_removed: int = 0  # "<helpdesk>#<platform>#<id>" entries removed from conversation state
    helpdesk_user_ids: list[str] = field(default_factory=list)  # to delete in the helpdesk by hand
    not_covered: list[str] = field(default_factory=lambda: list(NOT_COVERED))

    def merge(self, other: ForgetReport) -> ForgetReport:
        """Add another report's counts to this one."""
        self.messages_deleted += other.messages_deleted
        self.conversations_touched += other.conversations_touched
        self.conversations_deleted += other.conversations_deleted
        self.other_items_deleted += other.other_items_deleted
        self.requesters_removed += other.requesters_removed
        for user_id in other.helpdesk_user_ids:
            if user_id not in self.helpdesk_user_ids:
                self.helpdesk_user_ids.append(user_id)
        return self

    def counts(self) -> dict[str, int]:
        """The numbers only (what the status page shows)."""
        return {
            "messages_deleted": self.messages_deleted,
            "conversations_touched": self.conversations_touched,
            "conversations_deleted": self.conversations_deleted,
            "other_items_deleted": self.other_items_deleted,
            "requesters_removed": self.requesters_removed,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready."""
        return asdict(self)


# --- the table -----------------------------------------------------------------------


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float) -> dict[str, str]:
    return {"N": str(int(value))}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def new_code() -> str:
    """A confirmation code: random, URL-safe, unguessable."""
    return secrets.token_urlsafe(CODE_BYTES)


def valid_code(code: str) -> bool:
    """True for something shaped like a code we hand out (anything else is a 404)."""
    return isinstance(code, str) and 16 <= len(code) <= 64 and all(c.isalnum() or c in "-_" for c in code)


def owns_conversation(conversation_key: str, platform: str, author_id: str) -> bool:
    """True when the conversation is the person's own private chat with the brand."""
    parts = conversation_key.split(":")
    return len(parts) >= 4 and parts[0] == platform and parts[1] in OWNED_SCOPES and parts[-1] == author_id


class DeletionRequests:
    """Deletion requests (``PRIVACY#<code>`` items) and the deletion itself.

    ``client`` is a low-level boto3 DynamoDB client; ``sleep`` is injected so tests
    do not wait between retries of unprocessed batch items.
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retention_days: int = STATUS_RETENTION_DAYS,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self.retention_days = retention_days

    # --- requests ----------------------------------------------------------------

    def record(self, subjects: Iterable[tuple[str, str]], *, source: str) -> str:
        """Record a pending request to forget ``(platform, author id)`` pairs; its code.

        The ids are kept only until the request is done (a failed request can then
        be retried); the finished record holds counts and times, never the ids.
        """
        now = self._clock()
        code = new_code()
        subject_list = [[platform, author_id] for platform, author_id in subjects]
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": _s(f"PRIVACY#{code}"),
                    "sk": _s(REQUEST_SK),
                    "item_type": _s("privacy_request"),
                    "status": _s("pending"),
                    "source": _s(source),
                    "subjects": _s(json.dumps(subject_list, separators=(",", ":"))),
                    "requested_at": _s(_iso(now)),
                    "expires_at": _n(now + self.retention_days * 86400),
                    # listed through the by-author index until done
                    "gsi1pk": _s(OPEN_REQUESTS),
                    "gsi1sk": _s(_iso(now)),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            raise Unavailable(f"could not record the deletion request: {error_code(exc) or type(exc).__name__}") from exc
        return code

    def get(self, code: str) -> dict[str, Any] | None:
        """The request's item in plain values, or None."""
        if not valid_code(code):
            return None
        item = self._client.get_item(
            TableName=self.table_name, Key={"pk": _s(f"PRIVACY#{code}"), "sk": _s(REQUEST_SK)}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        plain = {
            name: (value.get("S") if "S" in value else int(value["N"]) if "N" in value else None) for name, value in item.items()
        }
        return plain

    def process(self, code: str, *, scan_conversations: bool = False) -> ForgetReport:
        """Run (or re-run) a recorded request; marks it done, or failed with the reason."""
        request = self.get(code)
        if request is None:
            raise NotFound(f"no deletion request {code}")
        if request.get("status") == "done":
            return ForgetReport()
        subjects = json.loads(request.get("subjects") or "[]")
        report = ForgetReport()
        try:
            for platform, author_id in subjects:
                report.merge(self.forget(platform, author_id, scan_conversations=scan_conversations))
        except Exception as exc:
            self._mark_failed(code, f"{type(exc).__name__}: {error_code(exc) or 'see the function logs'}")
            raise
        self._mark_done(code, report)
        return report

    def request_and_forget(
        self, subjects: Iterable[tuple[str, str]], *, source: str, scan_conversations: bool = False
    ) -> tuple[str, ForgetReport | None]:
        """Record a request and carry it out at once. The report is None when the
        deletion failed: the request stays open (status ``failed``) for a retry."""
        from chalicelib.observability import logger

        code = self.record(subjects, source=source)
        try:
            report = self.process(code, scan_conversations=scan_conversations)
        except Exception as exc:
            logger.error(
                "deletion request failed; it stays open for a retry",
                extra={"confirmation_code": code, "error": type(exc).__name__, "error_code": error_code(exc)},
            )
            return code, None
        # counts and the code only: never the person's ids
        logger.info("deletion request done", extra={"confirmation_code": code, "source": source, **report.counts()})
        return code, report

    def open_requests(self) -> list[str]:
        """Codes of requests not done yet (pending or failed), oldest first."""
        codes: list[str] = []
        for page in self._pages(
            IndexName=AUTHOR_INDEX,
            KeyConditionExpression="gsi1pk = :open",
            ExpressionAttributeValues={":open": _s(OPEN_REQUESTS)},
        ):
            codes.extend(item["pk"]["S"].removeprefix("PRIVACY#") for item in page)
        return codes

    def retry_open(self) -> dict[str, str]:
        """Process every open request; code -> "done" or "failed"."""
        outcome = {}
        for code in self.open_requests():
            try:
                self.process(code)
                outcome[code] = "done"
            except Exception:
                outcome[code] = "failed"
        return outcome

    def status(self, code: str) -> dict[str, Any]:
        """The public status of a request, in plain words; ``NotFound`` for unknown codes."""
        request = self.get(code)
        if request is None:
            raise NotFound("no deletion request with this confirmation code")
        state = str(request.get("status") or "pending")
        body: dict[str, Any] = {
            "confirmation_code": code,
            "status": state,
            "requested_at": request.get("requested_at"),
        }
        if state == "done":
            counts = json.loads(request.get("counts") or "{}")
            body["completed_at"] = request.get("completed_at")
            body.update(counts)
            body["message"] = (
                f"Your data deletion request was completed on {request.get('completed_at')}: "
                f"{counts.get('messages_deleted', 0)} message(s) and "
                f"{counts.get('conversations_deleted', 0)} conversation(s) were deleted from our systems. "
                "Copies in encrypted backups expire within 35 days."
            )
        elif state == "failed":
            body["message"] = (
                "We received your data deletion request, but could not finish it yet. "
                "It will be retried; this page shows when it is complete."
            )
        else:
            body["message"] = "We received your data deletion request and are processing it."
        return body

    def _mark_done(self, code: str, report: ForgetReport) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key={"pk": _s(f"PRIVACY#{code}"), "sk": _s(REQUEST_SK)},
            UpdateExpression="SET #status = :done, completed_at = :now, counts = :counts REMOVE subjects, gsi1pk, gsi1sk, #error",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":done": _s("done"),
                ":now": _s(_iso(self._clock())),
                ":counts": _s(json.dumps(report.counts(), separators=(",", ":"))),
            },
        )

    def _mark_failed(self, code: str, reason: str) -> None:
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={"pk": _s(f"PRIVACY#{code}"), "sk": _s(REQUEST_SK)},
                UpdateExpression="SET #status = :failed, #error = :reason, failed_at = :now",
                ExpressionAttributeNames={"#status": "status", "#error": "error"},
                ExpressionAttributeValues={":failed": _s("failed"), ":reason": _s(reason[:500]), ":now": _s(_iso(self._clock()))},
            )
        except Exception:  # the original failure is what matters; the request stays open either way
            pass

    # --- forgetting --------------------------------------------------------------

    def forget(self, platform: str, author_id: str, *, scan_conversations: bool = False) -> ForgetReport:
        """Delete everything the table holds on one author (see the module docstring)."""
        platform, author_id = str(platform).strip(), str(author_id).strip()
        if not platform or not author_id:
            raise ValueError("platform and author id are required")
        report = ForgetReport()
        by_conversation: dict[str, list[str]] = {}
        for page in self._pages(
            IndexName=AUTHOR_INDEX,
            KeyConditionExpression="gsi1pk = :author",
            ExpressionAttributeValues={":author": _s(author_pk(platform, author_id))},
        ):
            for item in page:
                by_conversation.setdefault(item["pk"]["S"], [])
                if item["sk"]["S"] not in by_conversation[item["pk"]["S"]]:
                    by_conversation[item["pk"]["S"]].append(item["sk"]["S"])
        if scan_conversations:
            for pk in self._scan_conversations_of(platform, author_id):
                by_conversation.setdefault(pk, [])

        for pk, own_keys in by_conversation.items():
            if not pk.startswith("CONV#"):  # an item of their own: a requester mapping, a cached profile
                self._delete_own_items(pk, own_keys, report)
                continue
            key = pk.removeprefix("CONV#")
            if owns_conversation(key, platform, author_id):
                self._delete_partition(pk, own_keys, report)
            else:
                self._delete_keys([(pk, sk) for sk in own_keys])
                report.messages_deleted += len(own_keys)
                removed = self._drop_requesters(key, platform, author_id, report)
                if own_keys or removed:
                    report.conversations_touched += 1
        return report

    def _delete_own_items(self, pk: str, own_keys: list[str], report: ForgetReport) -> None:
        if pk.startswith("REQUESTER#"):
            for sk in own_keys:
                item = self._client.get_item(TableName=self.table_name, Key={"pk": _s(pk), "sk": _s(sk)}).get("Item") or {}
                user_id = item.get("user_id", {}).get("S")
                if user_id:
                    if user_id not in report.helpdesk_user_ids:
                        report.helpdesk_user_ids.append(user_id)
                    report.requesters_removed += 1
        self._delete_keys([(pk, sk) for sk in own_keys])
        report.other_items_deleted += len(own_keys)

    def _delete_partition(self, pk: str, own_keys: list[str], report: ForgetReport) -> None:
        keys: list[tuple[str, str]] = []
        for page in self._pages(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _s(pk)},
            ProjectionExpression="pk, sk, #state",
            ExpressionAttributeNames={"#state": "state"},
        ):
            for item in page:
                sk = item["sk"]["S"]
                keys.append((pk, sk))
                if sk == "CONV" and "state" in item:
                    state = json.loads(item["state"]["S"])
                    users = list((state.get("requesters") or {}).values()) or [state.get("requester_id")]
                    for user_id in filter(None, users):
                        if str(user_id) not in report.helpdesk_user_ids:
                            report.helpdesk_user_ids.append(str(user_id))
                        report.requesters_removed += 1
        # Found by the index but not (yet) visible to the query: delete them anyway.
        keys.extend((pk, sk) for sk in own_keys if (pk, sk) not in keys)
        self._delete_keys(keys)
        own = set(own_keys)
        report.messages_deleted += sum(1 for _, sk in keys if sk in own)
        report.other_items_deleted += sum(1 for _, sk in keys if sk not in own and sk != "CONV")
        report.conversations_deleted += 1
        report.conversations_touched += 1

    def _drop_requesters(self, key: str, platform: str, author_id: str, report: ForgetReport) -> int:
        """Remove the person's requester entry from a shared conversation's state."""
        from chalicelib.store import ConversationConflict, MessageStore

        store = MessageStore(self.table_name, self._client)
        suffix = f"#{platform}#{author_id}"
        for _ in range(_STATE_ATTEMPTS):
            conversation = store.get_conversation(key)
            if conversation.version == 0:
                return 0  # no state yet: nothing to remove
            theirs = {k: v for k, v in conversation.legacy_requesters.items() if k.endswith(suffix)}
            if (conversation.requester_key or "").endswith(suffix) and conversation.requester_id:
                theirs[conversation.requester_key or ""] = conversation.requester_id
            if not theirs:
                return 0
            if (conversation.requester_key or "").endswith(suffix):
                conversation.requester_id = conversation.requester_key = None
            conversation.legacy_requesters = {}  # not written back: older items' map goes with this save
            try:
                store.save_conversation(conversation)
            except ConversationConflict:
                continue
            for user_id in theirs.values():
                if str(user_id) not in report.helpdesk_user_ids:
                    report.helpdesk_user_ids.append(str(user_id))
            report.requesters_removed += len(theirs)
            return len(theirs)
        raise ConversationConflict(f"conversation {key} kept changing while a deletion request was applied")

    def _scan_conversations_of(self, platform: str, author_id: str) -> Iterator[str]:
        """Conversation items that still name the person after their messages expired."""
        needle = f"#{platform}#{author_id}"
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "FilterExpression": "sk = :conv AND (contains(#state, :needle) OR contains(pk, :id))",
            "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":conv": _s("CONV"), ":needle": _s(needle), ":id": _s(f":{author_id}")},
            "ProjectionExpression": "pk, #state",
        }
        while True:
            page = self._client.scan(**kwargs)
            for item in page.get("Items", []):
                pk = item["pk"]["S"]
                key = pk.removeprefix("CONV#")
                state = json.loads(item.get("state", {}).get("S", "{}"))
                named = [*(state.get("requesters") or {}), state.get("requester_key") or ""]
                if owns_conversation(key, platform, author_id) or any(k.endswith(needle) for k in named):
                    yield pk
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _pages(self, **query: Any) -> Iterator[list[dict[str, Any]]]:
        kwargs: dict[str, Any] = {"TableName": self.table_name, **query}
        while True:
            page = self._client.query(**kwargs)
            yield page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _delete_keys(self, keys: list[tuple[str, str]]) -> None:
        """BatchWriteItem deletes, 25 at a time, retrying unprocessed items with backoff."""
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _BATCH):
            pending: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"pk": _s(pk), "sk": _s(sk)}}} for pk, sk in unique[start : start + _BATCH]
            ]
            for attempt in range(_WRITE_ATTEMPTS):
                answer = self._client.batch_write_item(RequestItems={self.table_name: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                self._sleep(min(0.05 * 2**attempt, 2.0))
            else:
                from chalicelib.store import StoreUnavailable

                raise StoreUnavailable(f"{len(pending)} item(s) stayed unprocessed after {_WRITE_ATTEMPTS} attempts")


# --- the HTTP side ---------------------------------------------------------------------


def _signed_request_from(body: bytes | str, content_type: str | None) -> str:
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else (body or "")
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise BadRequest("the body is not valid JSON") from exc
        value = data.get("signed_request") if isinstance(data, dict) else None
    elif media in ("application/x-www-form-urlencoded", ""):
        try:
            fields = parse_qs(text, keep_blank_values=True, max_num_fields=20)
        except ValueError as exc:
            raise BadRequest("the form body could not be read") from exc
        value = (fields.get("signed_request") or [""])[0]
    else:
        raise BadRequest(f"expected a form post with signed_request, got {media}")
    if not value:
        raise BadRequest("signed_request is missing")
    return str(value)


def handle_meta_deletion(
    body: bytes | str,
    content_type: str | None,
    app_secret: str,
    requests: DeletionRequests,
    status_url_base: str,
) -> dict[str, str]:
    """Meta's data deletion callback: verify, record, forget; answer with the status URL and code.

    Raises ``BadRequest`` (400), ``Unauthorized`` (401) or ``Unavailable`` (503, the
    request could not even be recorded). A deletion that fails after the request is
    recorded still answers 200: the code is valid and the status page says "failed"
    until ``retry`` succeeds.
    """
    try:
        payload = parse_signed_request(_signed_request_from(body, content_type), app_secret)
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from exc
    user_id = payload.get("user_id")
    if user_id is None or not str(user_id).strip():
        raise BadRequest("the signed_request carries no user_id")
    user_id = str(user_id).strip()
    code, _report = requests.request_and_forget([(platform, user_id) for platform in META_PLATFORMS], source="meta")
    return {"url": f"{status_url_base.rstrip('/')}/privacy/status/{code}", "confirmation_code": code}


def deletion_status(code: str, requests: DeletionRequests) -> dict[str, Any]:
    """The public status of a request; ``NotFound`` (404) for unknown codes."""
    return requests.status(code)


def status_base_url(
    context: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None,
    route_path: str,
    configured: str | None = None,
) -> str:
    """The public base URL the status link is built on.

    ``configured`` (``PUBLIC_BASE_URL``, e.g. a custom domain) wins; otherwise the API
    Gateway request context gives the host and the stage prefix (``/api``), and a
    local run falls back to the ``Host`` header.
    """
    if configured:
        return configured.rstrip("/")
    context = context or {}
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    host = context.get("domainName") or headers.get("host") or "localhost"
    full_path = str(context.get("path") or route_path)
    if full_path.endswith(route_path):
        prefix = full_path[: -len(route_path)]
    else:
        prefix = f"/{context['stage']}" if context.get("stage") else ""
    local = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
    return f"{'http' if local else 'https'}://{host}{prefix.rstrip('/')}"


def status_page_html(status: Mapping[str, Any]) -> str:
    """The status as a small human-readable HTML page (for browsers)."""
    from html import escape

    rows = "".join(
        f"<tr><th>{escape(str(k).replace('_', ' '))}</th><td>{escape(str(v))}</td></tr>"
        for k, v in status.items()
        if k != "message" and v is not None
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Data deletion request</title></head><body>"
        f"<h1>Data deletion request</h1><p>{escape(str(status.get('message', '')))}</p><table>{rows}</table></body></html>"
    )


# --- command line ----------------------------------------------------------------------


def _requests_from_env() -> DeletionRequests:
    import os

    import boto3

    table = os.environ.get("TABLE_NAME")
    if not table:
        raise SystemExit("set TABLE_NAME to the messages table (e.g. socialdesk-prod-messages)")
    return DeletionRequests(table, boto3.client("dynamodb"))


def main(argv: list[str] | None = None) -> int:
    """``python -m chalicelib.privacy.deletion forget --platform x --author-id 123`` (and ``status``, ``retry``)."""
    parser = argparse.ArgumentParser(prog="python -m chalicelib.privacy.deletion", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    forget = commands.add_parser("forget", help="delete everything held on one author and record the request")
    forget.add_argument(
        "--platform", required=True, help="facebook, messenger, instagram, whatsapp, x, telegram, line, google, other"
    )
    forget.add_argument("--author-id", required=True, help="the author's id on that platform (PSID, wa_id, X user id...)")
    forget.add_argument("--scan", action="store_true", help="also scan conversation items whose messages already expired")
    status = commands.add_parser("status", help="show a request's status")
    status.add_argument("--code", required=True)
    retry = commands.add_parser("retry", help="re-run one failed request, or every open one")
    retry.add_argument("--code")
    args = parser.parse_args(argv)

    requests = _requests_from_env()
    if args.command == "forget":
        code = requests.record([(args.platform, args.author_id)], source="operator")
        report = requests.process(code, scan_conversations=args.scan)
        print(json.dumps({"confirmation_code": code, **report.to_dict()}, indent=2))
        return 0
    if args.command == "status":
        try:
            print(json.dumps(requests.status(args.code), indent=2))
        except NotFound:
            print(f"no deletion request {args.code}", file=sys.stderr)
            return 1
        return 0
    if args.code:
        print(json.dumps({"confirmation_code": args.code, **requests.process(args.code).to_dict()}, indent=2))
        return 0
    print(json.dumps(requests.retry_open(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
