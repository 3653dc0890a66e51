"""Webhook intake end to end, with the real verifiers and normalizers and an in-memory store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from chalicelib.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable, WebhookError
from chalicelib.inbound.intake import IngestResult, receive_webhook
from chalicelib.models import DeliveryStatus, RejectedEvent, SocialMessage
from chalicelib.channels.meta import webhook as meta
from chalicelib.channels.x import webhook as x
from chalicelib.store import StoreUnavailable, UnstorableMessages
from tests.support.events import event_bytes

APP_SECRET = "meta-app-secret-for-tests"
CONSUMER_SECRET = "x-consumer-secret-for-tests"
LIMIT = 64 * 1024


class FakeStore:
    """Duck-types the three ``MessageStore`` methods ``receive_webhook`` calls.

    Deduplicates like the table's conditional put: one item per (conversation, message id).
    ``fail_on`` names a method that raises ``StoreUnavailable``.
    """

    def __init__(self, fail_on: str | None = None, refuse: frozenset[str] = frozenset()) -> None:
        self.fail_on = fail_on
        self.refuse = refuse  # message ids DynamoDB refuses for good (e.g. a key over its size limit)
        self.messages: dict[tuple[str, str], SocialMessage] = {}
        self.statuses: list[DeliveryStatus] = []
        self.quarantined: list[RejectedEvent] = []
        self.calls: list[str] = []

    def _maybe_fail(self, method: str) -> None:
        self.calls.append(method)
        if self.fail_on == method:
            raise StoreUnavailable("ProvisionedThroughputExceededException after retries")

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        self._maybe_fail("save_messages")
        flags, refused = [], []
        for message in messages:
            if message.message_id in self.refuse:
                flags.append(False)
                refused.append((message, "DynamoDB refused it: ValidationException"))
                continue
            key = (message.conversation_key, message.message_id)
            flags.append(key not in self.messages)
            self.messages.setdefault(key, message)
        if refused:
            raise UnstorableMessages(flags, refused)
        return flags

    def record_status(self, status: DeliveryStatus) -> None:
        self._maybe_fail("record_status")
        self.statuses.append(status)

    def quarantine(self, rejected: RejectedEvent) -> None:
        self._maybe_fail("quarantine")
        self.quarantined.append(rejected)

    @property
    def wrote_anything(self) -> bool:
        return bool(self.messages or self.statuses or self.quarantined)


def meta_headers(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def x_headers(body: bytes, secret: str = CONSUMER_SECRET) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"content-type": "application/json", "x-twitter-webhooks-signature": f"sha256={digest}"}


def ingest_meta(body: bytes, store: FakeStore, headers: dict[str, str] | None = None, limit: int = LIMIT) -> IngestResult:
    return receive_webhook(
        headers=meta_headers(body) if headers is None else headers,
        body=body,
        verifier=meta.signature_verifier(APP_SECRET),
        normalize=meta.normalize_delivery,
        store=store,  # type: ignore[arg-type]
        max_body_bytes=limit,
    )


def ingest_x(body: bytes, store: FakeStore, headers: dict[str, str] | None = None) -> IngestResult:
    return receive_webhook(
        headers=x_headers(body) if headers is None else headers,
        body=body,
        verifier=x.signature_verifier(CONSUMER_SECRET),
        normalize=x.normalize_delivery,
        store=store,  # type: ignore[arg-type]
        max_body_bytes=LIMIT,
    )


def assert_error(exc: WebhookError, status: int, code: str) -> None:
    assert exc.status == status
    body = exc.to_body()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    json.dumps(body)  # the response body must be serializable JSON


# --- accepted deliveries ---------------------------------------------------------------------


class TestAccepted:
    def test_a_signed_comment_is_stored_and_acknowledged(self) -> None:
        store = FakeStore()
        result = ingest_meta(event_bytes("meta_page_feed_comment"), store)
        assert result == IngestResult(stored=1, duplicates=0, statuses=0, ignored=0, quarantined=0)
        ((key, message_id),) = store.messages
        assert key == "facebook:comment:122131676912594941_542072878449250"
        assert message_id == "122131676912594941_542072878449250"
        assert result.to_body() == {"ok": True, "stored": 1, "duplicates": 0, "statuses": 0, "ignored": 0, "quarantined": 0}

    def test_a_redelivery_is_acknowledged_as_a_duplicate(self) -> None:
        store = FakeStore()
        body = event_bytes("meta_messenger_message")
        ingest_meta(body, store)
        again = ingest_meta(body, store)
        assert (again.stored, again.duplicates) == (0, 1)
        assert len(store.messages) == 1

    def test_every_part_of_a_batch_is_counted(self) -> None:
        store = FakeStore()
        result = ingest_meta(event_bytes("meta_multi_entry"), store)
        assert result == IngestResult(stored=3, duplicates=0, statuses=0, ignored=2, quarantined=0)
        assert len(store.messages) == 3

    def test_whatsapp_receipts_are_recorded_not_stored_as_messages(self) -> None:
        store = FakeStore()
        result = ingest_meta(event_bytes("meta_whatsapp_status"), store)
        assert result == IngestResult(stored=0, duplicates=0, statuses=2, ignored=0, quarantined=0)
        assert store.messages == {}
        assert [s.status for s in store.statuses] == ["delivered", "failed"]

    def test_a_malformed_event_is_quarantined_and_the_rest_stored(self) -> None:
        payload = json.loads(event_bytes("meta_multi_entry"))
        broken = {"field": "feed", "value": {"item": "comment", "verb": "add", "message": "no ids"}}
        payload["entry"][0]["changes"].append(broken)
        body = json.dumps(payload).encode()
        store = FakeStore()
        result = ingest_meta(body, store)
        assert result == IngestResult(stored=3, duplicates=0, statuses=0, ignored=2, quarantined=1)
        assert [r.event for r in store.quarantined] == [broken]

    def test_a_message_dynamodb_refuses_is_quarantined_with_its_payload_and_the_rest_stored(self) -> None:
        body = event_bytes("meta_multi_entry")
        refused_id = "122131676912594941_987650001234567"
        store = FakeStore(refuse=frozenset({refused_id}))
        result = ingest_meta(body, store)
        assert result == IngestResult(stored=2, duplicates=0, statuses=0, ignored=2, quarantined=1)
        [kept] = store.quarantined
        assert kept.source == "facebook" and "ValidationException" in kept.error
        changes = [change for entry in json.loads(body)["entry"] for change in entry.get("changes", [])]
        assert kept.event in changes and kept.event["value"]["comment_id"] == refused_id  # the platform's own event
        again = ingest_meta(body, store)  # a redelivery: the stored two are duplicates, the refused one is not
        assert (again.stored, again.duplicates, again.quarantined) == (0, 2, 1)

    def test_an_unsupported_field_is_acknowledged_and_counted(self) -> None:
        store = FakeStore()
        result = ingest_meta(event_bytes("meta_unsupported_field"), store)
        assert result == IngestResult(stored=0, duplicates=0, statuses=0, ignored=1, quarantined=0)

    def test_x_deliveries_use_the_base64_scheme(self) -> None:
        store = FakeStore()
        result = ingest_x(event_bytes("x_retweet"), store)
        assert result.ignored == 1 and result.stored == 0
        result = ingest_x(event_bytes("x_dm_inbound"), store)
        assert result.stored == 1
        assert ("x:dm:2244994945:3001969357", "1050135671001234947") in store.messages

    def test_a_body_exactly_at_the_limit_is_accepted(self) -> None:
        body = event_bytes("meta_instagram_dm")
        assert ingest_meta(body, FakeStore(), limit=len(body)).stored == 1


# --- refused deliveries: nothing stored -------------------------------------------------------


class TestUnauthorized:
    @pytest.mark.parametrize(
        "headers",
        [
            {},
            {"Content-Type": "application/json"},
            {"X-Hub-Signature-256": ""},
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        ],
        ids=["no-headers", "no-signature", "empty-signature", "zero-signature"],
    )
    def test_a_missing_or_bad_signature_is_401_and_stores_nothing(self, headers: dict[str, str]) -> None:
        store = FakeStore()
        with pytest.raises(Unauthorized) as caught:
            ingest_meta(event_bytes("meta_page_feed_comment"), store, headers=headers)
        assert_error(caught.value, 401, "unauthorized")
        assert store.calls == [] and not store.wrote_anything

    def test_a_signature_with_the_wrong_secret_is_401(self) -> None:
        body = event_bytes("meta_whatsapp_text")
        store = FakeStore()
        with pytest.raises(Unauthorized):
            ingest_meta(body, store, headers=meta_headers(body, "leaked-old-secret"))
        assert store.calls == []

    def test_a_signature_of_another_body_is_401(self) -> None:
        store = FakeStore()
        with pytest.raises(Unauthorized):
            ingest_meta(event_bytes("meta_whatsapp_text"), store, headers=meta_headers(event_bytes("meta_whatsapp_image")))
        assert store.calls == []

    def test_a_meta_style_signature_on_the_x_route_is_401(self) -> None:
        body = event_bytes("x_mention")
        store = FakeStore()
        with pytest.raises(Unauthorized):
            ingest_x(body, store, headers=meta_headers(body, CONSUMER_SECRET))
        assert store.calls == []

    def test_an_unsigned_malformed_body_is_401_not_400(self) -> None:
        # The signature is checked before the body is parsed: no parser error leaks to strangers.
        with pytest.raises(Unauthorized):
            ingest_meta(b"{not json", FakeStore(), headers={})


class TestBadRequest:
    @pytest.mark.parametrize(
        "body",
        [b"{not json", b'{"object": "page", "entry": [', b"", b"\xff\xfe\x00{}", b'{"object": "page", "entry": []}\xc3'],
        ids=["garbage", "truncated", "empty", "utf16-bom", "invalid-utf8-tail"],
    )
    def test_a_signed_body_that_is_not_json_is_400(self, body: bytes) -> None:
        store = FakeStore()
        with pytest.raises(BadRequest) as caught:
            ingest_meta(body, store)
        assert_error(caught.value, 400, "bad_request")
        assert not store.wrote_anything

    @pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null", b"[{}]"])
    def test_a_signed_x_body_that_is_not_an_object_is_400(self, body: bytes) -> None:
        store = FakeStore()
        with pytest.raises(BadRequest) as caught:
            ingest_x(body, store)
        assert_error(caught.value, 400, "bad_request")
        assert not store.wrote_anything

    @pytest.mark.parametrize("body", [b"[]", b"null"])
    def test_a_signed_meta_body_that_is_not_an_object_is_400(self, body: bytes) -> None:
        store = FakeStore()
        with pytest.raises(BadRequest):
            ingest_meta(body, store)
        assert not store.wrote_anything

    def test_a_meta_body_whose_entry_is_not_a_list_is_400(self) -> None:
        store = FakeStore()
        with pytest.raises(BadRequest):
            ingest_meta(b'{"object": "page", "entry": {"id": "1"}}', store)
        assert not store.wrote_anything


class TestTooLarge:
    def test_a_body_over_the_limit_is_413_and_stores_nothing(self) -> None:
        body = event_bytes("meta_multi_entry")
        store = FakeStore()
        with pytest.raises(PayloadTooLarge) as caught:
            ingest_meta(body, store, limit=len(body) - 1)
        assert_error(caught.value, 413, "payload_too_large")
        assert store.calls == []

    def test_the_size_is_checked_before_the_signature(self) -> None:
        # An oversized unsigned flood is refused without hashing megabytes.
        with pytest.raises(PayloadTooLarge):
            ingest_meta(b"x" * (LIMIT + 1), FakeStore(), headers={})


class TestStoreUnavailable:
    @pytest.mark.parametrize(
        "fixture,fail_on",
        [
            ("meta_page_feed_comment", "save_messages"),
            ("meta_whatsapp_status", "record_status"),
        ],
    )
    def test_a_store_outage_is_503_so_the_platform_retries(self, fixture: str, fail_on: str) -> None:
        store = FakeStore(fail_on=fail_on)
        with pytest.raises(Unavailable) as caught:
            ingest_meta(event_bytes(fixture), store)
        assert_error(caught.value, 503, "unavailable")

    def test_a_quarantine_outage_is_503_too(self) -> None:
        payload = json.loads(event_bytes("meta_page_feed_comment"))
        payload["entry"][0]["changes"].append({"field": "feed", "value": {"item": "comment", "verb": "add"}})
        store = FakeStore(fail_on="quarantine")
        with pytest.raises(Unavailable):
            ingest_meta(json.dumps(payload).encode(), store)

    def test_the_retry_after_an_outage_stores_each_message_once(self) -> None:
        body = event_bytes("meta_multi_entry")
        store = FakeStore(fail_on="save_messages")
        with pytest.raises(Unavailable):
            ingest_meta(body, store)
        store.fail_on = None
        first = ingest_meta(body, store)
        again = ingest_meta(body, store)
        assert first.stored == 3
        assert (again.stored, again.duplicates) == (0, 3)
        assert len(store.messages) == 3


@pytest.mark.parametrize(
    "body",
    [
        b'{"entry":[{"text":"half a pair \\ud83d here"}]}',  # a lone surrogate escape: read, repaired later
        b'{"n":12345678901234567890123,"x":1e400,"d":1,"d":2,"z":-0.0,"f":1.5}',
        b"[" * 500 + b"]" * 500,  # deeper than the fast parser goes, not deeper than the standard library
        '{"text":"caf\u00e9"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"text":"with a byte-order mark"}',
        b' \n{"text":"caf\\u00e9 \xc3\xa9 \xf0\x9f\x98\x80"}\t',
    ],
)
def test_a_body_is_read_as_the_standard_library_reads_it(body: bytes) -> None:
    from chalicelib.inbound.intake import parse_json_body

    assert parse_json_body(body) == json.loads(body)


@pytest.mark.parametrize("body", [b"{", b'{"a":NaN', b"\xff\xfe\x00", b"[" * 100_000 + b"]" * 100_000, b'{"a":1}x'])
def test_a_body_neither_parser_reads_is_400(body: bytes) -> None:
    from chalicelib.inbound.intake import parse_json_body

    with pytest.raises(BadRequest):
        parse_json_body(body)
