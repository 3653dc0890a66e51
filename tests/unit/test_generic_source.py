"""Any other source via Standard Webhooks: the signature check, the normalizer and the published schema.

Expected signatures are computed here with ``hmac``/``hashlib`` directly (never with the
code under test), plus the spec's published test vector and one delivery signed by the
``standardwebhooks`` library the way a sender would.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from chalicelib.errors import BadRequest, NotConfigured, Unauthorized
from chalicelib.inbound.intake import receive_webhook
from chalicelib.models import Attachment, Author, Direction, Kind, Platform, SocialMessage
from chalicelib.channels.generic import webhook as generic
from chalicelib.inbound.signatures import SignatureError
from tests.support.events import event_bytes, load_event

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "generic-webhook.schema.json"

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OTHER_KEY = bytes(range(100, 132))
OTHER_SECRET = "whsec_" + base64.b64encode(OTHER_KEY).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
NOW = 1_714_555_862  # 2024-05-01T09:31:02Z


def signature(body: bytes, *, key: bytes = KEY, msg_id: str = MSG_ID, timestamp: int = NOW) -> str:
    """What a Standard Webhooks sender puts in ``webhook-signature`` for one key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(body: bytes, *, key: bytes = KEY, timestamp: int = NOW, sig: str | None = None) -> dict[str, str]:
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sig if sig is not None else signature(body, key=key, timestamp=timestamp),
    }


def verifier(*secrets: str, now: float = NOW) -> generic.StandardWebhookVerifier:
    return generic.StandardWebhookVerifier(list(secrets or [SECRET]), now=lambda: now)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


# --- Authentication -------------------------------------------------------------------


class TestSignature:
    @pytest.fixture
    def body(self) -> bytes:
        return event_bytes("generic_review")

    def test_a_genuine_signature_is_accepted(self, body: bytes) -> None:
        verifier().verify(signed_headers(body), body)
        assert generic.StandardWebhookVerifier.header == "webhook-signature"

    def test_the_spec_test_vector_is_accepted(self) -> None:
        # The vector published with the Standard Webhooks libraries (secret, id, timestamp, body, signature).
        headers = {
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        }
        check = generic.StandardWebhookVerifier(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=lambda: 1614265330)
        check.verify(headers, b'{"test": 2432232314}')

    def test_a_delivery_signed_by_the_standardwebhooks_library_is_accepted(self, body: bytes) -> None:
        sent_at = datetime.fromtimestamp(NOW, tz=timezone.utc)
        header = Webhook(SECRET).sign(MSG_ID, sent_at, body.decode())
        verifier().verify(signed_headers(body, sig=header), body)

    @pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
    def test_header_names_are_matched_whatever_their_case(self, body: bytes, case: Any) -> None:
        headers = {case(name): value for name, value in signed_headers(body).items()}
        verifier().verify({"Content-Type": "application/json", **headers}, body)

    def test_a_signature_made_with_another_secret_is_refused(self, body: bytes) -> None:
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(signed_headers(body, key=OTHER_KEY), body)

    def test_an_altered_body_is_refused(self, body: bytes) -> None:
        headers = signed_headers(body)
        altered = body.replace(b'"rating":2', b'"rating":5')
        assert altered != body
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(headers, altered)

    def test_an_altered_webhook_id_is_refused(self, body: bytes) -> None:
        headers = {**signed_headers(body), "webhook-id": "msg_other"}
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(headers, body)

    def test_a_signature_moved_to_another_timestamp_is_refused(self, body: bytes) -> None:
        # The timestamp is signed: re-dating a captured request to pass the window fails.
        headers = {**signed_headers(body, timestamp=NOW - 3600), "webhook-timestamp": str(NOW)}
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(headers, body)

    @pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_each_missing_header_is_named(self, body: bytes, name: str) -> None:
        headers = signed_headers(body)
        del headers[name]
        with pytest.raises(SignatureError, match=f"missing {name} header$"):
            verifier().verify(headers, body)
        with pytest.raises(SignatureError, match=f"missing {name} header$"):
            verifier().verify({**headers, name: ""}, body)

    def test_no_headers_at_all_names_all_three(self, body: bytes) -> None:
        with pytest.raises(SignatureError, match="missing webhook-id, webhook-timestamp, webhook-signature headers"):
            verifier().verify({"Content-Type": "application/json"}, body)

    def test_a_replayed_request_older_than_five_minutes_is_refused(self, body: bytes) -> None:
        headers = signed_headers(body)
        verifier(now=NOW + 300).verify(headers, body)  # the edge of the window still passes
        with pytest.raises(SignatureError, match="301 s old; the limit is 300 s"):
            verifier(now=NOW + 301).verify(headers, body)

    def test_a_timestamp_more_than_five_minutes_ahead_is_refused(self, body: bytes) -> None:
        headers = signed_headers(body)
        verifier(now=NOW - 300).verify(headers, body)
        with pytest.raises(SignatureError, match="301 s in the future"):
            verifier(now=NOW - 301).verify(headers, body)

    def test_the_tolerance_can_be_changed(self, body: bytes) -> None:
        strict = generic.StandardWebhookVerifier([SECRET], tolerance_seconds=60, now=lambda: NOW + 61)
        with pytest.raises(SignatureError, match="61 s old; the limit is 60 s"):
            strict.verify(signed_headers(body), body)

    def test_the_real_clock_is_used_by_default(self, body: bytes) -> None:
        with pytest.raises(SignatureError, match="old"):
            generic.StandardWebhookVerifier([SECRET]).verify(signed_headers(body), body)

    @pytest.mark.parametrize("value", ["1714555862.5", "1.7e9", "-1714555862", "now", "2024-05-01T09:31:02Z"])
    def test_a_timestamp_that_is_not_integer_seconds_is_refused(self, body: bytes, value: str) -> None:
        headers = {**signed_headers(body), "webhook-timestamp": value}
        with pytest.raises(SignatureError, match="not a Unix time in seconds"):
            verifier().verify(headers, body)

    def test_rotation_two_signatures_where_only_the_second_is_valid(self, body: bytes) -> None:
        header = f"{signature(body, key=OTHER_KEY)} {signature(body)}"
        verifier().verify(signed_headers(body, sig=header), body)

    def test_rotation_the_spec_example_header_with_an_asymmetric_entry(self, body: bytes) -> None:
        # v1a (ed25519) entries and junk are skipped, not fatal.
        v1a = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
        header = f"{v1a}  garbage v1,not-base64!! {signature(body)}"
        verifier().verify(signed_headers(body, sig=header), body)

    def test_rotation_two_signatures_neither_valid_is_refused(self, body: bytes) -> None:
        header = f"{signature(body, key=OTHER_KEY)} {signature(body, key=bytes(32))}"
        with pytest.raises(SignatureError, match="does not match"):
            verifier().verify(signed_headers(body, sig=header), body)

    @pytest.mark.parametrize("header", ["garbage", "v1a,abc", "v2,abc", "v1,", "K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="])
    def test_a_header_without_a_usable_v1_signature_is_refused_not_a_crash(self, body: bytes, header: str) -> None:
        with pytest.raises(SignatureError):
            verifier().verify(signed_headers(body, sig=header), body)

    @pytest.mark.parametrize("configured", [[SECRET, OTHER_SECRET], [OTHER_SECRET, SECRET]])
    def test_two_configured_secrets_either_one_verifies(self, body: bytes, configured: list[str]) -> None:
        both = generic.StandardWebhookVerifier(configured, now=lambda: NOW)
        both.verify(signed_headers(body, key=KEY), body)
        both.verify(signed_headers(body, key=OTHER_KEY), body)
        with pytest.raises(SignatureError, match="does not match"):
            both.verify(signed_headers(body, key=bytes(32)), body)

    def test_a_non_utf8_body_is_refused_not_a_crash(self) -> None:
        body = b'{"type":"\xff"}'
        with pytest.raises(SignatureError, match="not UTF-8"):
            verifier().verify(signed_headers(body), body)

    def test_secrets_without_the_prefix_and_unpadded_are_accepted(self, body: bytes) -> None:
        bare = base64.b64encode(KEY).decode().rstrip("=")
        generic.StandardWebhookVerifier([bare], now=lambda: NOW).verify(signed_headers(body), body)


class TestSecretConfiguration:
    @pytest.mark.parametrize(
        ("secrets", "error"),
        [
            ([], ValueError),
            (SECRET, TypeError),  # one string, not a list
            (["whsec_not*base64"], ValueError),
            (["whsec_" + base64.b64encode(b"short").decode()], ValueError),
            ([""], ValueError),
        ],
    )
    def test_unusable_secrets_fail_at_construction(self, secrets: Any, error: type[Exception]) -> None:
        with pytest.raises(error):
            generic.StandardWebhookVerifier(secrets)

    def test_an_error_never_echoes_the_secret(self) -> None:
        bad = "whsec_" + base64.b64encode(b"short-key").decode()
        with pytest.raises(ValueError) as caught:
            generic.StandardWebhookVerifier([bad])
        assert bad not in str(caught.value) and "short-key" not in str(caught.value)

    def test_the_configured_value_is_a_list_separated_by_spaces_or_commas(self) -> None:
        assert generic.parse_secrets(f" {SECRET},{OTHER_SECRET}\n") == [SECRET, OTHER_SECRET]
        assert generic.parse_secrets(f"{SECRET} {OTHER_SECRET}") == [SECRET, OTHER_SECRET]
        body = event_bytes("generic_review")
        check = generic.signature_verifier(f"{SECRET} {OTHER_SECRET}")
        with pytest.raises(SignatureError, match="old"):  # built with the real clock
            check.verify(signed_headers(body, key=OTHER_KEY), body)

    @pytest.mark.parametrize("configured", ["", "  ", "whsec_!!!"])
    def test_an_unusable_configured_value_fails_closed(self, configured: str) -> None:
        with pytest.raises(NotConfigured, match="GENERIC_WEBHOOK_SECRET_X is invalid"):
            generic.signature_verifier(configured, name="GENERIC_WEBHOOK_SECRET_X")

    def test_the_secret_name_is_per_source(self) -> None:
        assert generic.secret_name("trustpilot") == "GENERIC_WEBHOOK_SECRET_TRUSTPILOT"
        assert generic.secret_name("app-store_2") == "GENERIC_WEBHOOK_SECRET_APP_STORE_2"
        with pytest.raises(BadRequest):
            generic.secret_name("../etc")


# --- Normalization --------------------------------------------------------------------


def normalize_one(payload: dict[str, Any], source: str = "trustpilot") -> SocialMessage:
    batch = generic.normalize_delivery(payload, source=source)
    assert batch.rejected == [] and batch.ignored == 0
    assert len(batch.messages) == 1
    return batch.messages[0]


class TestMessages:
    def test_a_review_keeps_rating_source_title_and_every_field(self) -> None:
        payload = load_event("generic_review")
        message = normalize_one(payload)
        assert message == SocialMessage(
            platform=Platform.OTHER,
            source="trustpilot",
            kind=Kind.REVIEW,
            direction=Direction.INBOUND,
            message_id="trustpilot:663209a1c4f2d8b0e1a7f3c9",
            conversation_key="other:trustpilot:663209a1c4f2d8b0e1a7f3c9",
            account_id="5e7f1c2a3b4d5e6f7a8b9c0d",
            author=Author(platform_id="trustpilot:5f8e2b1a9c3d4e6f7a8b9c0d", display_name="Jane Doe"),
            text="Parcel arrived broken\n\nThe mug was in pieces and nobody answers the chat.",
            created_at=utc("2024-05-01T09:30:00+00:00"),
            permalink="https://www.trustpilot.com/reviews/663209a1c4f2d8b0e1a7f3c9",
            rating=2,
            raw=payload["data"],
        )

    def test_a_mention_from_a_listening_tool(self) -> None:
        payload = load_event("generic_mention")
        message = normalize_one(payload, source="brand24")
        assert message == SocialMessage(
            platform=Platform.OTHER,
            source="brand24",
            kind=Kind.MENTION,
            direction=Direction.INBOUND,
            message_id="brand24:m-88213377",
            conversation_key="other:brand24:reddit-t3_1cfz9qk",
            account_id="acme-brand-project",
            author=Author(
                platform_id="brand24:u-55102", handle="furiouscamper", display_name="Furious Camper", follower_count=1240
            ),
            text="Anyone else waiting 3 weeks for an @acme refund?",
            created_at=datetime(2024, 5, 2, 12, 5, 11, tzinfo=timezone.utc),  # +02:00 in the body
            parent_id="brand24:m-88213001",
            thread_id="reddit-t3_1cfz9qk",
            permalink="https://www.reddit.com/r/camping/comments/1cfz9qk/comment/l1x2y3z/",
            attachments=(
                Attachment(
                    type="image",
                    url="https://i.redd.it/k3m9q2x7w1yc1.jpeg",
                    mime_type="image/jpeg",
                    caption="my order status",
                ),
            ),
            raw=payload["data"],
        )
        assert message.rating is None

    def test_a_batch_becomes_one_message_per_item_with_numeric_ids_as_text(self) -> None:
        payload = load_event("generic_batch")
        batch = generic.normalize_delivery(payload, source="appfollow")
        assert batch.rejected == [] and batch.ignored == 0
        first, second, reply = batch.messages
        assert (first.message_id, first.conversation_key, first.rating) == (
            "appfollow:11069742137",
            "other:appfollow:11069742137",
            1,
        )
        assert first.text == "Crashes on launch\n\nSince the last update the app closes right after the splash screen."
        assert first.author == Author(platform_id="appfollow:Tent Lover 88")
        assert first.thread_id == "4.12.0"
        assert (second.message_id, second.conversation_key, second.rating, second.permalink) == (
            "appfollow:11069742138",
            "other:appfollow:11069742138",
            5,
            None,
        )
        # The brand's answer lands on the review's ticket, as outbound.
        assert reply.conversation_key == first.conversation_key
        assert (reply.kind, reply.direction, reply.parent_id) == (Kind.REPLY, Direction.OUTBOUND, first.message_id)
        assert reply.rating is None and reply.raw == payload["data"][2]
        assert {m.source for m in batch.messages} == {"appfollow"}

    def test_the_same_item_from_two_sources_never_collides(self) -> None:
        one = normalize_one(load_event("generic_review"), source="trustpilot")
        two = normalize_one(load_event("generic_review"), source="reviews-io")
        assert one.message_id != two.message_id
        assert one.conversation_key != two.conversation_key
        assert one.author.platform_id != two.author.platform_id

    def test_an_update_is_its_own_message_pointing_at_the_original(self) -> None:
        payload = load_event("generic_review")
        payload["type"] = "review.updated"
        payload["data"].update(rating=4, text="They sent a new mug the next day.", updated_at="2024-05-02T10:00:00Z")
        message = normalize_one(payload)
        edited_at = utc("2024-05-02T10:00:00+00:00")
        assert message.message_id == f"trustpilot:663209a1c4f2d8b0e1a7f3c9:edit:{int(edited_at.timestamp())}"
        assert message.edit_of == "trustpilot:663209a1c4f2d8b0e1a7f3c9"
        assert message.conversation_key == "other:trustpilot:663209a1c4f2d8b0e1a7f3c9"
        assert message.created_at == utc("2024-05-02T10:00:00+00:00")
        assert message.rating == 4

    def test_an_update_without_updated_at_is_quarantined(self) -> None:
        payload = load_event("generic_review")
        payload["type"] = "review.updated"
        batch = generic.normalize_delivery(payload, source="trustpilot")
        assert batch.messages == []
        assert len(batch.rejected) == 1 and "updated_at" in batch.rejected[0].error

    @pytest.mark.parametrize("event_type", ["review.deleted", "ping", "message.created.v2", "Review.Created"])
    def test_unknown_types_are_ignored(self, event_type: str) -> None:
        payload = load_event("generic_batch")
        payload["type"] = event_type
        batch = generic.normalize_delivery(payload, source="appfollow")
        assert batch.messages == [] and batch.rejected == []
        assert batch.ignored == 3

    def test_an_empty_batch_is_accepted(self) -> None:
        batch = generic.normalize_delivery({"type": "message.created", "data": []}, source="trustpilot")
        assert (batch.messages, batch.ignored, batch.rejected) == ([], 0, [])


class TestValidation:
    @pytest.mark.parametrize("source", ["", "Trustpilot", "-x", "a" * 41, "trust pilot", "a:b", "../x", "tp\n"])
    def test_a_bad_source_slug_is_a_bad_request(self, source: str) -> None:
        with pytest.raises(BadRequest, match="source must match"):
            generic.normalize_delivery(load_event("generic_review"), source=source)

    @pytest.mark.parametrize("source", ["a", "trustpilot", "app-store", "g2_crowd", "0" + "x" * 39])
    def test_good_slugs_are_accepted(self, source: str) -> None:
        assert normalize_one(load_event("generic_review"), source=source).source == source

    @pytest.mark.parametrize(
        "payload",
        [
            [],
            "text",
            {"data": {}},
            {"type": "", "data": {}},
            {"type": 3, "data": {}},
            {"type": "review.created"},
            {"type": "review.created", "data": "x"},
        ],
    )
    def test_a_body_that_is_not_an_envelope_is_a_bad_request(self, payload: Any) -> None:
        with pytest.raises(BadRequest):
            generic.normalize_delivery(payload, source="trustpilot")

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"rating": 6}, "rating"),
            ({"rating": 0}, "rating"),
            ({"rating": 4.5}, "rating"),
            ({"kind": "tweet"}, "kind"),
            ({"direction": "sideways"}, "direction"),
            ({"created_at": "2024-05-01T09:30:00"}, "created_at"),  # no offset: not RFC 3339
            ({"created_at": "yesterday"}, "created_at"),
            ({"id": "  "}, "id"),
            ({"account_id": None}, "account_id"),
            ({"author": {"name": "no id"}}, "author.id"),
            ({"url": "javascript:alert(1)"}, "url"),
            ({"attachments": [{"type": "image"}]}, "attachments.0.url"),
        ],
    )
    def test_an_invalid_item_is_quarantined_and_the_rest_stored(self, change: dict[str, Any], field: str) -> None:
        payload = load_event("generic_batch")
        payload["data"][1].update(change)
        batch = generic.normalize_delivery(payload, source="appfollow")
        assert [m.message_id for m in batch.messages] == ["appfollow:11069742137", "appfollow:reply-11069742137"]
        assert len(batch.rejected) == 1
        rejected = batch.rejected[0]
        assert rejected.source == "other:appfollow"
        assert rejected.event == payload["data"][1]
        assert "ValidationError" in rejected.error and field in rejected.error

    @pytest.mark.parametrize("missing", ["id", "kind", "created_at", "author", "account_id"])
    def test_each_required_field_is_required(self, missing: str) -> None:
        payload = load_event("generic_review")
        del payload["data"][missing]
        batch = generic.normalize_delivery(payload, source="trustpilot")
        assert batch.messages == [] and len(batch.rejected) == 1
        assert missing in batch.rejected[0].error

    def test_an_item_that_is_not_an_object_is_quarantined(self) -> None:
        payload = load_event("generic_batch")
        payload["data"].append("not an item")
        batch = generic.normalize_delivery(payload, source="appfollow")
        assert len(batch.messages) == 3 and len(batch.rejected) == 1

    def test_extra_fields_are_kept_in_raw_only(self) -> None:
        payload = load_event("generic_review")
        payload["data"]["helpful_votes"] = 12
        message = normalize_one(payload)
        assert message.raw["helpful_votes"] == 12


# --- Published schema ---------------------------------------------------------------------


class TestSchema:
    def test_the_committed_schema_is_generated_from_the_model(self) -> None:
        committed = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
        assert committed == generic.json_schema(), (
            "schemas/generic-webhook.schema.json is stale; regenerate it with "
            "`python -m chalicelib.channels.generic.webhook > schemas/generic-webhook.schema.json`"
        )

    def test_the_schema_describes_the_envelope_and_the_item(self) -> None:
        schema = generic.json_schema()
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert set(schema["required"]) == {"type", "data"}
        item = schema["$defs"]["GenericMessage"]
        assert set(item["required"]) == {"id", "kind", "created_at", "author", "account_id"}
        assert item["properties"]["rating"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 5}
        assert schema["$defs"]["Kind"]["enum"] == [kind.value for kind in Kind]

    @pytest.mark.parametrize("name", ["generic_review", "generic_mention", "generic_batch"])
    def test_every_fixture_validates_against_the_model(self, name: str) -> None:
        generic.GenericDelivery.model_validate(load_event(name))

    def test_fixtures_are_not_mutated_by_normalization(self) -> None:
        payload = load_event("generic_batch")
        before = copy.deepcopy(payload)
        generic.normalize_delivery(payload, source="appfollow")
        assert payload == before


# --- Through the intake ---------------------------------------------------------------------


class _Store:
    """The three ``MessageStore`` methods ``receive_webhook`` calls, deduplicating like the table."""

    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], SocialMessage] = {}
        self.quarantined: list[Any] = []

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        flags = [(m.conversation_key, m.message_id) not in self.messages for m in messages]
        for message in messages:
            self.messages.setdefault((message.conversation_key, message.message_id), message)
        return flags

    def record_status(self, status: Any) -> None:
        raise AssertionError("generic sources send no statuses")

    def quarantine(self, rejected: Any) -> None:
        self.quarantined.append(rejected)


class TestIntake:
    def receive(self, store: _Store, headers: dict[str, str], body: bytes) -> Any:
        return receive_webhook(
            headers=headers,
            body=body,
            verifier=verifier(),
            normalize=lambda payload: generic.normalize_delivery(payload, source="appfollow"),
            store=store,  # type: ignore[arg-type]
            max_body_bytes=64 * 1024,
        )

    def test_a_signed_batch_is_stored_and_a_replay_deduplicated(self) -> None:
        store = _Store()
        body = event_bytes("generic_batch")
        first = self.receive(store, signed_headers(body), body)
        again = self.receive(store, signed_headers(body), body)
        assert (first.stored, first.duplicates, again.stored, again.duplicates) == (3, 0, 0, 3)

    def test_a_bad_signature_is_unauthorized_and_nothing_stored(self) -> None:
        store = _Store()
        body = event_bytes("generic_batch")
        with pytest.raises(Unauthorized, match="does not match"):
            self.receive(store, signed_headers(body, key=OTHER_KEY), body)
        assert store.messages == {}
