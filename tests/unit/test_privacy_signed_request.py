"""Meta's signed_request: the signature covers the encoded payload; anything else is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from chalicelib.errors import BadRequest, Unauthorized
from chalicelib.privacy.deletion import (
    ForgetReport,
    handle_meta_deletion,
    owns_conversation,
    parse_signed_request,
    sign_request,
    status_base_url,
    valid_code,
)
from chalicelib.inbound.signatures import SignatureError

SECRET = "app-secret-for-tests"
PAYLOAD = {"algorithm": "HMAC-SHA256", "expires": 1291840400, "issued_at": 1291836800, "user_id": "218471"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _manual(payload: dict, secret: str = SECRET) -> str:
    """Built independently of sign_request, the way Meta documents it."""
    encoded = _b64(json.dumps(payload).encode())
    return _b64(hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest()) + "." + encoded


def test_a_genuine_signed_request_is_decoded() -> None:
    assert parse_signed_request(_manual(PAYLOAD), SECRET) == PAYLOAD
    assert parse_signed_request(sign_request(PAYLOAD, SECRET), SECRET)["user_id"] == "218471"


def test_padding_on_either_part_is_tolerated() -> None:
    signature, payload = _manual(PAYLOAD).split(".")
    # the HMAC covers the payload exactly as sent: pad the signature only
    assert parse_signed_request(f"{signature}=.{payload}", SECRET)["user_id"] == "218471"


def test_the_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError):
        parse_signed_request(_manual(PAYLOAD), "another-secret")


def test_a_tampered_payload_is_refused() -> None:
    signature, _ = _manual(PAYLOAD).split(".")
    forged = _b64(json.dumps({**PAYLOAD, "user_id": "999"}).encode())
    with pytest.raises(SignatureError):
        parse_signed_request(f"{signature}.{forged}", SECRET)


def test_a_tampered_signature_is_refused() -> None:
    signature, payload = _manual(PAYLOAD).split(".")
    flipped = _b64(bytes([base64.urlsafe_b64decode(signature + "=")[0] ^ 1]) + base64.urlsafe_b64decode(signature + "=")[1:])
    with pytest.raises(SignatureError):
        parse_signed_request(f"{flipped}.{payload}", SECRET)


@pytest.mark.parametrize("algorithm", ["HMAC-SHA1", "none", "", None])
def test_any_other_algorithm_is_refused_even_when_signed(algorithm: object) -> None:
    with pytest.raises(SignatureError):
        parse_signed_request(_manual({**PAYLOAD, "algorithm": algorithm}), SECRET)


def test_lower_case_algorithm_name_is_accepted() -> None:
    assert parse_signed_request(_manual({**PAYLOAD, "algorithm": "hmac-sha256"}), SECRET)["user_id"] == "218471"


@pytest.mark.parametrize(
    "value", ["", "   ", "no-dot-at-all", "a.b.c", ".payload", "signature.", "!!!.???", "é.é", "x" * 9000]
)
def test_malformed_values_are_bad_requests(value: str) -> None:
    with pytest.raises(BadRequest):
        parse_signed_request(value, SECRET)


def test_a_signed_payload_that_is_not_a_json_object_is_a_bad_request() -> None:
    encoded = _b64(b"[1,2,3]")
    signed = _b64(hmac.new(SECRET.encode(), encoded.encode(), hashlib.sha256).digest()) + "." + encoded
    with pytest.raises(BadRequest):
        parse_signed_request(signed, SECRET)


def test_no_secret_means_no_verification() -> None:
    with pytest.raises(SignatureError):
        parse_signed_request(_manual(PAYLOAD), "")


class _NoTable:
    """The callback must refuse before touching the table."""

    def request_and_forget(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the table was used for a refused request")


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ("signed_request=" + _manual(PAYLOAD, "wrong"), "application/x-www-form-urlencoded", Unauthorized),
        ("signed_request=" + _manual({**PAYLOAD, "algorithm": "HMAC-SHA1"}), "application/x-www-form-urlencoded", Unauthorized),
        ("other=1", "application/x-www-form-urlencoded", BadRequest),
        ("signed_request=" + _manual({"algorithm": "HMAC-SHA256"}), "application/x-www-form-urlencoded", BadRequest),
        ("<xml/>", "text/xml", BadRequest),
    ],
)
def test_the_callback_refuses_before_any_deletion(body: str, content_type: str, error: type) -> None:
    with pytest.raises(error):
        handle_meta_deletion(body.encode(), content_type, SECRET, _NoTable(), "https://x.example")  # type: ignore[arg-type]


def test_status_links_follow_the_api_gateway_stage_or_the_configured_base() -> None:
    route = "/privacy/meta/deletion"
    context = {"domainName": "abc.execute-api.eu-west-1.amazonaws.com", "stage": "api", "path": "/api" + route}
    assert status_base_url(context, {}, route) == "https://abc.execute-api.eu-west-1.amazonaws.com/api"
    assert status_base_url({"domainName": "hooks.example.com", "stage": "api", "path": route}, {}, route) == "https://hooks.example.com"
    assert status_base_url({}, {"Host": "127.0.0.1:8000"}, route) == "http://127.0.0.1:8000"
    assert status_base_url(context, {}, route, "https://privacy.example.com/") == "https://privacy.example.com"


def test_only_private_chats_keyed_on_the_person_count_as_theirs() -> None:
    assert owns_conversation("messenger:dm:104976543210001:7001", "messenger", "7001")
    assert owns_conversation("x:tweets:2244994945:3001", "x", "3001")
    assert not owns_conversation("messenger:dm:104976543210001:7001", "instagram", "7001")
    assert not owns_conversation("facebook:comment:7001", "facebook", "7001")
    assert not owns_conversation("telegram:group:7001:0", "telegram", "0")


def test_codes_are_random_and_url_safe() -> None:
    from chalicelib.privacy.deletion import new_code

    codes = {new_code() for _ in range(100)}
    assert len(codes) == 100 and all(valid_code(c) for c in codes)
    assert not valid_code("../../etc") and not valid_code("short") and not valid_code("a" * 100)


def test_reports_merge_counts_and_helpdesk_ids() -> None:
    a, b = ForgetReport(messages_deleted=2, helpdesk_user_ids=["9"]), ForgetReport(messages_deleted=1, helpdesk_user_ids=["9", "10"])
    merged = a.merge(b)
    assert merged.messages_deleted == 3 and merged.helpdesk_user_ids == ["9", "10"]
    assert merged.counts()["messages_deleted"] == 3
