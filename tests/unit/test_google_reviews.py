"""Google Business Profile reviews: push-token checks, push parsing, normalization, intake.

Pure: tokens are signed with a locally generated RSA key and checked against a static
JWKS; the Business Profile API and the store are small fakes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.errors import BadRequest, NotConfigured, PayloadTooLarge, Unauthorized, Unavailable
from chalicelib.models import Direction, Kind, Platform, RejectedEvent, SocialMessage
from chalicelib.channels.google import webhook as g
from chalicelib.inbound.signatures import SignatureError
from chalicelib.store import StoreUnavailable
from local.google_sandbox import SigningKey, jwks_of, mint_with, push_body
from tests.support.events import event_bytes, load_event

AUDIENCE = "https://hooks.example.com/webhooks/google/reviews"
EMAIL = "gbp-push@socialdesk-prod.iam.gserviceaccount.com"
REVIEW_2 = load_event("google_review_two_stars")["name"]
LOCATION = REVIEW_2.rsplit("/reviews/", 1)[0]


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey("test-key-1")


@pytest.fixture(scope="module")
def verifier(key: SigningKey) -> g.OidcPushVerifier:
    return g.OidcPushVerifier(AUDIENCE, allowed_emails={EMAIL}, jwks=g.StaticKeySource(jwks_of(key)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- token verification --------------------------------------------------------------


def test_a_genuine_push_token_verifies(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    verifier.verify(bearer(mint_with(key, AUDIENCE, EMAIL)), b"{}")


def test_both_google_issuer_spellings_are_accepted(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    verifier.verify(bearer(mint_with(key, AUDIENCE, EMAIL, issuer="accounts.google.com")), b"")


def test_header_name_and_scheme_are_case_insensitive(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    verifier.verify({"authorization": f"bearer {mint_with(key, AUDIENCE, EMAIL)}"}, b"")


def test_email_comparison_ignores_case(key: SigningKey) -> None:
    upper = g.OidcPushVerifier(AUDIENCE, allowed_emails={EMAIL.upper()}, jwks=g.StaticKeySource(jwks_of(key)))
    upper.verify(bearer(mint_with(key, AUDIENCE, EMAIL)), b"")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"audience": "https://attacker.example/hook"}, "another audience"),
        ({"issuer": "https://evil.example.com"}, "not issued by Google"),
        ({"email": "someone@gmail.com"}, "another service account"),
        ({"email_verified": False}, "not verified"),
        ({"expires_in": -3600}, "expired"),
    ],
)
def test_wrong_claims_are_refused(
    verifier: g.OidcPushVerifier, key: SigningKey, claims: dict[str, Any], reason: str
) -> None:
    audience = claims.pop("audience", AUDIENCE)
    email = claims.pop("email", EMAIL)
    token = mint_with(key, audience, email, **claims)
    with pytest.raises(SignatureError, match=reason):
        verifier.verify(bearer(token), b"")


def test_email_verified_must_be_a_real_boolean(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    with pytest.raises(SignatureError, match="not verified"):
        verifier.verify(bearer(mint_with(key, AUDIENCE, EMAIL, email_verified="true")), b"")


def test_a_token_within_the_clock_skew_leeway_still_verifies(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    verifier.verify(bearer(mint_with(key, AUDIENCE, EMAIL, expires_in=-10)), b"")


def test_a_token_without_email_is_refused(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    now = int(time.time())
    token = key.sign({"aud": AUDIENCE, "iss": "https://accounts.google.com", "iat": now, "exp": now + 600})
    with pytest.raises(SignatureError, match="email"):
        verifier.verify(bearer(token), b"")


def test_a_tampered_payload_fails_the_signature(verifier: g.OidcPushVerifier, key: SigningKey) -> None:
    header, payload, signature = mint_with(key, AUDIENCE, "someone@gmail.com").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = EMAIL
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SignatureError, match="signature"):
        verifier.verify(bearer(f"{header}.{forged}.{signature}"), b"")


def test_a_token_signed_by_another_key_with_a_known_kid_is_refused(verifier: g.OidcPushVerifier) -> None:
    impostor = SigningKey("test-key-1")  # same kid, different key
    with pytest.raises(SignatureError, match="signature"):
        verifier.verify(bearer(mint_with(impostor, AUDIENCE, EMAIL)), b"")


def test_an_unknown_kid_is_refused(verifier: g.OidcPushVerifier) -> None:
    with pytest.raises(SignatureError, match="kid"):
        verifier.verify(bearer(mint_with(SigningKey("never-published"), AUDIENCE, EMAIL)), b"")


def test_other_algorithms_are_refused(verifier: g.OidcPushVerifier) -> None:
    import jwt

    secret = "a-shared-secret-of-at-least-32-bytes"
    token = jwt.encode({"aud": AUDIENCE, "email": EMAIL}, secret, algorithm="HS256", headers={"kid": "test-key-1"})
    with pytest.raises(SignatureError, match="algorithm"):
        verifier.verify(bearer(token), b"")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
     {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Bearer a.b.c"}],
)
def test_missing_or_garbled_bearer_is_refused(verifier: g.OidcPushVerifier, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verifier.verify(headers, b"")


def test_the_verifier_refuses_to_run_without_a_service_account(key: SigningKey) -> None:
    with pytest.raises(ValueError, match="service account"):
        g.OidcPushVerifier(AUDIENCE, allowed_emails=None, jwks=g.StaticKeySource(jwks_of(key)))
    with pytest.raises(ValueError, match="audience"):
        g.OidcPushVerifier("", allowed_emails={EMAIL}, jwks=g.StaticKeySource(jwks_of(key)))


def test_settings_fail_closed_without_audience_or_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GOOGLE_PUSH_AUDIENCE", "GOOGLE_PUSH_SERVICE_ACCOUNTS", "REVIEW_TICKET_MAX_STARS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(NotConfigured, match="GOOGLE_PUSH_AUDIENCE"):
        g.GoogleReviewSettings.from_env().verifier()
    monkeypatch.setenv("GOOGLE_PUSH_AUDIENCE", AUDIENCE)
    with pytest.raises(NotConfigured, match="GOOGLE_PUSH_SERVICE_ACCOUNTS"):
        g.GoogleReviewSettings.from_env().verifier()
    monkeypatch.setenv("GOOGLE_PUSH_SERVICE_ACCOUNTS", f" {EMAIL} , other@x.iam.gserviceaccount.com")
    settings = g.GoogleReviewSettings.from_env()
    assert settings.push_service_accounts == {EMAIL, "other@x.iam.gserviceaccount.com"}
    assert settings.ticket_max_stars == 3
    assert settings.jwks_url == g.GOOGLE_JWKS_URL
    assert settings.verifier().allowed_emails == settings.push_service_accounts


def test_importing_the_module_does_not_import_pyjwt() -> None:
    code = "import sys, chalicelib.channels.google.webhook; print('jwt' in sys.modules, 'cryptography' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- parsing -------------------------------------------------------------------------


def test_the_fixture_push_parses() -> None:
    notification = g.parse_push(load_event("google_pubsub_new_review"))
    assert notification == g.ReviewNotification(
        review_name=REVIEW_2,
        location_name=LOCATION,
        type="NEW_REVIEW",
        message_id="11843021954317212",
        publish_time=datetime(2025, 3, 14, 9, 26, 41, 772000, tzinfo=timezone.utc),
        subscription="projects/socialdesk-prod/subscriptions/gbp-reviews-push",
    )


@pytest.mark.parametrize(
    "data",
    [
        {"type": "UPDATED_REVIEW", "reviewName": REVIEW_2, "locationName": LOCATION},
        {"notificationType": "UPDATED_REVIEW", "review_name": REVIEW_2, "location_name": LOCATION},
        {"type": "UPDATED_REVIEW", "review": REVIEW_2},  # location derived from the review name
    ],
)
def test_documented_field_spellings_are_accepted(data: dict[str, Any]) -> None:
    notification = g.parse_push(json.loads(push_body(REVIEW_2, data=data)))
    assert notification is not None
    assert (notification.type, notification.review_name, notification.location_name) == (
        "UPDATED_REVIEW",
        REVIEW_2,
        LOCATION,
    )


@pytest.mark.parametrize("kind", ["NEW_QUESTION", "GOOGLE_UPDATE", "NEW_CUSTOMER_MEDIA", "VOICE_OF_MERCHANT_UPDATED"])
def test_other_notification_types_are_ignored(kind: str) -> None:
    assert g.parse_push(json.loads(push_body(REVIEW_2, data={"type": kind, "location": LOCATION}))) is None


@pytest.mark.parametrize(
    "payload",
    [[], {"subscription": "x"}, {"message": "x"}, {"message": {"data": "e30="}},
     {"message": {"data": "e30=", "messageId": "1", "publishTime": "yesterday"}}],
)
def test_a_body_that_is_not_a_push_is_a_bad_request(payload: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        g.parse_push(payload)
    assert not isinstance(caught.value, g.MalformedNotification)


def _envelope(data: str) -> dict[str, Any]:
    return {"message": {"data": data, "messageId": "1"}, "subscription": "projects/p/subscriptions/s"}


def _b64(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


@pytest.mark.parametrize(
    "data",
    [
        "",
        "%%%not base64%%%",
        base64.b64encode(b"not json").decode(),
        _b64(["NEW_REVIEW"]),
        _b64({"type": "NEW_REVIEW"}),
        _b64({"review": REVIEW_2}),
        _b64({"type": "NEW_REVIEW", "review": "accounts/1/locations/2"}),
        _b64({"type": "NEW_REVIEW", "review": "accounts/1/locations/2/reviews/../../x"}),
        _b64({"type": "NEW_REVIEW", "review": REVIEW_2, "location": "accounts/1/locations/other"}),
    ],
)
def test_unreadable_notification_data_is_malformed(data: str) -> None:
    with pytest.raises(g.MalformedNotification):
        g.parse_push(_envelope(data))


def test_url_safe_and_unpadded_base64_is_tolerated() -> None:
    data = base64.urlsafe_b64encode(json.dumps({"type": "NEW_REVIEW", "review": REVIEW_2}).encode()).rstrip(b"=")
    assert g.parse_push(_envelope(data.decode())) is not None


# --- normalization -------------------------------------------------------------------


def test_a_two_star_review_normalizes_exactly() -> None:
    review = load_event("google_review_two_stars")
    message = g.normalize_review(review, location=LOCATION, raw={"review": review})
    assert message.platform is Platform.GOOGLE
    assert message.kind is Kind.REVIEW
    assert message.direction is Direction.INBOUND
    assert message.message_id == REVIEW_2
    assert message.edit_of is None
    assert message.conversation_key == f"google:review:{REVIEW_2}"
    assert message.thread_id == REVIEW_2
    assert message.account_id == LOCATION
    assert message.rating == 2
    assert message.text.startswith("Waited 40 minutes for a table")
    assert message.author.platform_id == REVIEW_2
    assert message.author.display_name == "Marta Kowalczyk"
    assert message.author.label == "Marta Kowalczyk"
    assert message.created_at == datetime(2025, 3, 14, 9, 26, 38, 114592, tzinfo=timezone.utc)
    assert message.permalink is None
    assert message.raw == {"review": review}


def test_an_edited_anonymous_five_star_review_is_a_new_version() -> None:
    review = load_event("google_review_five_stars")
    name = review["name"]
    message = g.normalize_review(review, location=name.rsplit("/reviews/", 1)[0], raw={})
    assert message.message_id == f"{name}@2025-03-01T08:15:57.219Z"
    assert message.edit_of == name
    assert message.conversation_key == f"google:review:{name}"
    assert message.created_at == datetime(2025, 3, 1, 8, 15, 57, 219000, tzinfo=timezone.utc)
    assert message.author.display_name == g.ANONYMOUS_REVIEWER
    assert message.rating == 5


def test_rating_only_review_and_nanosecond_timestamps() -> None:
    review = {
        "name": REVIEW_2,
        "reviewer": {"displayName": "Jo"},
        "starRating": "STAR_RATING_UNSPECIFIED",
        "createTime": "2014-10-02T15:01:23.045123456Z",
    }
    message = g.normalize_review(review, location=LOCATION, raw={})
    assert message.text == ""
    assert message.rating is None
    assert message.message_id == REVIEW_2
    assert message.created_at == datetime(2014, 10, 2, 15, 1, 23, 45123, tzinfo=timezone.utc)


def test_the_same_review_version_always_gets_the_same_id() -> None:
    review = load_event("google_review_five_stars")
    first = g.normalize_review(review, location=LOCATION, raw={})
    again = g.normalize_review(load_event("google_review_five_stars"), location=LOCATION, raw={"other": 1})
    assert (first.message_id, first.conversation_key) == (again.message_id, again.conversation_key)


@pytest.mark.parametrize("value,stars", [("ONE", 1), ("TWO", 2), ("THREE", 3), ("FOUR", 4), ("FIVE", 5), ("five", 5),
                                         ("STAR_RATING_UNSPECIFIED", None), (None, None), (3, None)])
def test_star_ratings(value: Any, stars: int | None) -> None:
    assert g.star_rating(value) == stars


# --- ticket threshold ----------------------------------------------------------------


def _with_rating(rating: int | None) -> SocialMessage:
    review = load_event("google_review_two_stars")
    return g.normalize_review(review, location=LOCATION, raw={}).model_copy(update={"rating": rating})


@pytest.mark.parametrize(
    ("rating", "max_rating", "expected"),
    [(1, 3, True), (3, 3, True), (4, 3, False), (5, 3, False), (None, 3, True), (4, 4, True), (1, 0, False)],
)
def test_low_ratings_open_tickets(rating: int | None, max_rating: int, expected: bool) -> None:
    assert g.opens_ticket(_with_rating(rating), max_rating) is expected


def test_default_threshold_is_three_stars() -> None:
    assert g.opens_ticket(_with_rating(3)) and not g.opens_ticket(_with_rating(4))


# --- intake with fakes ---------------------------------------------------------------


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.messages: dict[tuple[str, str], SocialMessage] = {}
        self.quarantined: list[RejectedEvent] = []
        self.fail = fail

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        if self.fail:
            raise StoreUnavailable("table is throttled")
        flags = []
        for m in messages:
            key = (m.conversation_key, m.message_id)
            flags.append(key not in self.messages)
            self.messages.setdefault(key, m)
        return flags

    def quarantine(self, rejected: RejectedEvent) -> None:
        if self.fail:
            raise StoreUnavailable("table is throttled")
        self.quarantined.append(rejected)


class FakeClient:
    def __init__(self, reviews: dict[str, dict[str, Any]] | None = None, error: Exception | None = None) -> None:
        self.reviews = reviews or {}
        self.error = error
        self.calls: list[str] = []

    def get_review(self, name: str) -> dict[str, Any]:
        self.calls.append(name)
        if self.error is not None:
            raise self.error
        if name not in self.reviews:
            raise g.ReviewNotFound(f"review {name}: HTTP 404", status=404)
        return json.loads(json.dumps(self.reviews[name]))


class Accept:
    def verify(self, headers: Any, body: bytes) -> None:
        pass


def receive(body: bytes, client: Any, store: FakeStore, **kwargs: Any) -> g.ReviewPushResult:
    kwargs.setdefault("verifier", Accept())
    return g.receive_review_push({}, body, client=client, store=store, **kwargs)


def test_a_push_is_fetched_normalized_and_stored() -> None:
    store = FakeStore()
    client = FakeClient({REVIEW_2: load_event("google_review_two_stars")})
    result = receive(event_bytes("google_pubsub_new_review"), client, store)
    assert client.calls == [REVIEW_2]
    assert result.to_body() == {
        "ok": True, "stored": 1, "duplicates": 0, "statuses": 0, "ignored": 0, "quarantined": 0,
        "review": REVIEW_2, "rating": 2, "opens_ticket": True,
    }
    [message] = store.messages.values()
    assert message.raw["notification"]["messageId"] == "11843021954317212"
    assert message.raw["review"]["starRating"] == "TWO"


def test_a_redelivered_push_is_a_duplicate() -> None:
    store = FakeStore()
    client = FakeClient({REVIEW_2: load_event("google_review_two_stars")})
    receive(event_bytes("google_pubsub_new_review"), client, store)
    again = receive(event_bytes("google_pubsub_new_review"), client, store)
    assert (again.stored, again.duplicates) == (0, 1)


def test_a_five_star_review_is_stored_but_opens_no_ticket() -> None:
    five = load_event("google_review_five_stars")
    store = FakeStore()
    result = receive(push_body(five["name"], type="UPDATED_REVIEW"), FakeClient({five["name"]: five}), store)
    assert (result.stored, result.rating, result.opens_ticket) == (1, 5, False)
    assert receive(push_body(five["name"]), FakeClient({five["name"]: five}), FakeStore(), max_rating=5).opens_ticket


def test_a_bad_token_is_401_and_nothing_is_fetched(key: SigningKey) -> None:
    verifier = g.OidcPushVerifier(AUDIENCE, allowed_emails={EMAIL}, jwks=g.StaticKeySource(jwks_of(key)))
    client, store = FakeClient(), FakeStore()
    token = mint_with(key, AUDIENCE, "intruder@gmail.com")
    with pytest.raises(Unauthorized):
        g.receive_review_push(bearer(token), event_bytes("google_pubsub_new_review"), verifier=verifier,
                              client=client, store=store)
    assert client.calls == [] and store.messages == {}


def test_an_unreachable_key_set_is_503_not_401() -> None:
    class Down:
        def verify(self, headers: Any, body: bytes) -> None:
            raise g.JwksUnavailable("could not fetch Google's signing keys")

    with pytest.raises(Unavailable):
        receive(event_bytes("google_pubsub_new_review"), FakeClient(), FakeStore(), verifier=Down())


def test_oversized_and_non_json_bodies_are_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        receive(b"x" * 70_000, FakeClient(), FakeStore())
    with pytest.raises(BadRequest):
        receive(b"not json", FakeClient(), FakeStore())


def test_other_notification_types_are_acknowledged_and_ignored() -> None:
    client = FakeClient()
    result = receive(push_body(REVIEW_2, data={"type": "NEW_QUESTION", "location": LOCATION}), client, FakeStore())
    assert (result.ignored, result.stored, client.calls) == (1, 0, [])


def test_unreadable_data_is_quarantined_and_acknowledged() -> None:
    store = FakeStore()
    result = receive(json.dumps(_envelope(_b64({"type": "NEW_REVIEW"}))).encode(), FakeClient(), store)
    assert result.quarantined == 1
    assert store.quarantined[0].source == "google" and "review name" in store.quarantined[0].error


@pytest.mark.parametrize(
    "error",
    [g.TransientReviewFetchError("HTTP 503", status=503), g.PermanentReviewFetchError("HTTP 403", status=403),
     g.PermanentReviewFetchError("HTTP 401", status=401), g.ReviewNotFound("HTTP 404", status=404)],
)
def test_fetch_failures_are_503_and_store_nothing(error: Exception) -> None:
    store = FakeStore()
    soon = lambda: datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)  # noqa: E731 - minutes after publishTime
    with pytest.raises(Unavailable):
        receive(event_bytes("google_pubsub_new_review"), FakeClient(error=error), store, now=soon)
    assert store.messages == {} and store.quarantined == []


def test_a_review_still_missing_a_day_later_is_quarantined() -> None:
    store = FakeStore()
    late = lambda: datetime(2025, 3, 15, 10, 0, tzinfo=timezone.utc)  # noqa: E731 - a day after publishTime
    result = receive(event_bytes("google_pubsub_new_review"), FakeClient(), store, now=late)
    assert result.quarantined == 1 and store.messages == {}
    assert store.quarantined[0].event["review"] == REVIEW_2
    with pytest.raises(Unavailable):
        receive(event_bytes("google_pubsub_new_review"), FakeClient(), FakeStore(), now=late, give_up_after=None)
    with pytest.raises(Unavailable):
        receive(event_bytes("google_pubsub_new_review"), FakeClient(), FakeStore(), now=late,
                give_up_after=timedelta(days=7))


def test_a_review_that_cannot_be_normalized_is_quarantined() -> None:
    broken = {"name": REVIEW_2, "starRating": "TWO"}  # no createTime/updateTime
    store = FakeStore()
    result = receive(event_bytes("google_pubsub_new_review"), FakeClient({REVIEW_2: broken}), store)
    assert result.quarantined == 1 and store.messages == {}


def test_an_answer_about_another_review_is_quarantined() -> None:
    other = {**load_event("google_review_two_stars"), "name": LOCATION + "/reviews/someone-else"}
    store = FakeStore()
    result = receive(event_bytes("google_pubsub_new_review"), FakeClient({REVIEW_2: other}), store)
    assert result.quarantined == 1 and store.messages == {}


def test_a_store_outage_is_503() -> None:
    client = FakeClient({REVIEW_2: load_event("google_review_two_stars")})
    with pytest.raises(Unavailable):
        receive(event_bytes("google_pubsub_new_review"), client, FakeStore(fail=True))


# --- the API client, without a network ----------------------------------------------


class FakePool:
    """Answers like urllib3's PoolManager.request, recording what was asked."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.requests.append((method, url, dict(kwargs["headers"])))
        data = self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()
        return type("R", (), {"status": self.status, "headers": {}, "data": data})()


def test_the_client_asks_for_the_review_with_the_current_token() -> None:
    review = load_event("google_review_two_stars")
    pool = FakePool(200, review)
    tokens = iter(["token-1", "token-2"])
    client = g.BusinessProfileClient(g.GOOGLE_BUSINESS_API_URL, token_provider=lambda: next(tokens), pool=pool)
    assert client.get_review(REVIEW_2) == review
    client.get_review(REVIEW_2)
    assert [r[1] for r in pool.requests] == [f"https://mybusiness.googleapis.com/v4/{REVIEW_2}"] * 2
    assert [r[2]["Authorization"] for r in pool.requests] == ["Bearer token-1", "Bearer token-2"]


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, g.ReviewNotFound), (410, g.ReviewNotFound), (401, g.PermanentReviewFetchError),
     (403, g.PermanentReviewFetchError), (400, g.PermanentReviewFetchError),
     (429, g.TransientReviewFetchError), (500, g.TransientReviewFetchError), (503, g.TransientReviewFetchError)],
)
def test_http_errors_are_classified(status: int, error: type[Exception]) -> None:
    pool = FakePool(status, {"error": {"code": status, "message": "nope", "status": "X"}})
    client = g.BusinessProfileClient(token_provider=lambda: "t", pool=pool)
    with pytest.raises(error) as caught:
        client.get_review(REVIEW_2)
    assert caught.value.status == status
    assert caught.value.transient is (status in (429, 500, 503))


def test_a_non_object_answer_is_permanent_and_a_non_json_answer_transient() -> None:
    with pytest.raises(g.PermanentReviewFetchError):
        g.BusinessProfileClient(token_provider=lambda: "t", pool=FakePool(200, [1])).get_review(REVIEW_2)
    with pytest.raises(g.TransientReviewFetchError):
        g.BusinessProfileClient(token_provider=lambda: "t", pool=FakePool(200, b"<html>")).get_review(REVIEW_2)


def test_the_client_refuses_names_that_are_not_reviews() -> None:
    pool = FakePool(200, {})
    client = g.BusinessProfileClient(token_provider=lambda: "t", pool=pool)
    for name in ("accounts/1/locations/2", "accounts/1/locations/2/reviews/../../../x", "https://evil/x"):
        with pytest.raises(g.PermanentReviewFetchError):
            client.get_review(name)
    assert pool.requests == []


def test_a_missing_access_token_is_not_configured() -> None:
    with pytest.raises(NotConfigured):
        g.BusinessProfileClient(token_provider=lambda: "", pool=FakePool(200, {})).get_review(REVIEW_2)
