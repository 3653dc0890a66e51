"""Google reviews over real HTTP: JWKS and review reads against the local Google sandbox.

The sandbox listens on 127.0.0.1 (a free port) and is stopped by the fixture.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import Unauthorized, Unavailable
from chalicelib.models import RejectedEvent, SocialMessage
from chalicelib.channels.google import webhook as g
from chalicelib.inbound.signatures import SignatureError
from local.google_sandbox import GoogleSandbox, push_body
from tests.support.events import event_bytes, load_event

ACCOUNT, LOCATION_ID = "117942735408512345678", "4572185733125551234"


@pytest.fixture
def sandbox() -> Iterator[GoogleSandbox]:
    box = GoogleSandbox().start()
    try:
        yield box
    finally:
        box.stop()


def verifier_for(box: GoogleSandbox, **source: Any) -> g.OidcPushVerifier:
    return g.OidcPushVerifier(
        box.audience, allowed_emails={box.push_email}, jwks=g.RemoteKeySource(box.jwks_url, **source)
    )


def client_for(box: GoogleSandbox, token: str | None = None) -> g.BusinessProfileClient:
    return g.BusinessProfileClient(box.url, token_provider=g.static_token(token or box.access_token))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- JWKS over HTTP ------------------------------------------------------------------


def test_tokens_verify_against_the_jwks_fetched_once(sandbox: GoogleSandbox) -> None:
    verifier = verifier_for(sandbox)
    for _ in range(3):
        verifier.verify(sandbox.push_headers(), b"")
    assert sandbox.stats()["jwks"] == 1


def test_a_wrong_audience_fails_even_with_a_good_key(sandbox: GoogleSandbox) -> None:
    with pytest.raises(SignatureError, match="audience"):
        verifier_for(sandbox).verify(sandbox.push_headers(audience="https://elsewhere.example"), b"")


def test_a_rotated_key_is_picked_up_by_one_refetch(sandbox: GoogleSandbox) -> None:
    verifier = verifier_for(sandbox, cooldown=0)
    verifier.verify(sandbox.push_headers(), b"")
    sandbox.rotate_key(publish=True)
    verifier.verify(sandbox.push_headers(), b"")
    assert sandbox.stats()["jwks"] == 2


def test_an_unpublished_kid_is_refused_and_refetches_are_rate_limited(sandbox: GoogleSandbox) -> None:
    verifier = verifier_for(sandbox)  # default cooldown: 30 s
    verifier.verify(sandbox.push_headers(), b"")
    sandbox.rotate_key(publish=False)
    for _ in range(3):
        with pytest.raises(SignatureError, match="kid"):
            verifier.verify(sandbox.push_headers(), b"")
    assert sandbox.stats()["jwks"] == 1  # the first fetch started the cooldown


def test_an_unknown_kid_refetches_once_when_allowed(sandbox: GoogleSandbox) -> None:
    verifier = verifier_for(sandbox, cooldown=0)
    verifier.verify(sandbox.push_headers(), b"")
    sandbox.rotate_key(publish=False)
    with pytest.raises(SignatureError, match="kid"):
        verifier.verify(sandbox.push_headers(), b"")
    assert sandbox.stats()["jwks"] == 2


def test_an_unreachable_jwks_is_unavailable_not_a_bad_token(sandbox: GoogleSandbox) -> None:
    verifier = g.OidcPushVerifier(
        sandbox.audience,
        allowed_emails={sandbox.push_email},
        jwks=g.RemoteKeySource(f"http://127.0.0.1:{closed_port()}/oauth2/v3/certs"),
    )
    with pytest.raises(g.JwksUnavailable):
        verifier.verify(sandbox.push_headers(), b"")


def test_the_process_wide_key_source_is_shared_per_url(sandbox: GoogleSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_JWKS_URL", sandbox.jwks_url)
    try:
        assert g.google_key_source() is g.google_key_source(sandbox.jwks_url)
        for _ in range(2):  # two "invocations", each building its verifier afresh
            g.OidcPushVerifier(
                sandbox.audience, allowed_emails={sandbox.push_email}, jwks=g.google_key_source()
            ).verify(sandbox.push_headers(), b"")
        assert sandbox.stats()["jwks"] == 1
    finally:
        g.clear_key_sources()


# --- reviews over HTTP ---------------------------------------------------------------


def test_a_review_is_read_over_http(sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-1", stars=2, comment="Cold soup.")
    assert client_for(sandbox).get_review(seeded["name"]) == seeded


def test_a_missing_review_is_not_found(sandbox: GoogleSandbox) -> None:
    with pytest.raises(g.ReviewNotFound) as caught:
        client_for(sandbox).get_review(f"accounts/{ACCOUNT}/locations/{LOCATION_ID}/reviews/gone")
    assert caught.value.status == 404 and not caught.value.transient
    assert "NOT_FOUND" in str(caught.value)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_transient(sandbox: GoogleSandbox, status: int) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-1")
    sandbox.fail_next(status)
    with pytest.raises(g.TransientReviewFetchError) as caught:
        client_for(sandbox).get_review(seeded["name"])
    assert caught.value.status == status
    assert client_for(sandbox).get_review(seeded["name"]) == seeded  # the next read works


def test_a_wrong_access_token_is_permanent(sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-1")
    with pytest.raises(g.PermanentReviewFetchError) as caught:
        client_for(sandbox, token="expired-token").get_review(seeded["name"])
    assert caught.value.status == 401 and "UNAUTHENTICATED" in str(caught.value)


def test_an_unreachable_api_is_transient() -> None:
    client = g.BusinessProfileClient(f"http://127.0.0.1:{closed_port()}", token_provider=g.static_token("t"))
    with pytest.raises(g.TransientReviewFetchError):
        client.get_review(f"accounts/{ACCOUNT}/locations/{LOCATION_ID}/reviews/r-1")


# --- the whole push, over HTTP -------------------------------------------------------


class MemoryStore:
    def __init__(self) -> None:
        self.messages: dict[tuple[str, str], SocialMessage] = {}
        self.quarantined: list[RejectedEvent] = []

    def save_messages(self, messages: list[SocialMessage]) -> list[bool]:
        flags = []
        for m in messages:
            flags.append((m.conversation_key, m.message_id) not in self.messages)
            self.messages.setdefault((m.conversation_key, m.message_id), m)
        return flags

    def quarantine(self, rejected: RejectedEvent) -> None:
        self.quarantined.append(rejected)


def test_a_push_flows_from_token_to_stored_message(sandbox: GoogleSandbox) -> None:
    review = load_event("google_review_two_stars")
    sandbox.add_review_resource(review)
    store = MemoryStore()
    result = g.receive_review_push(
        sandbox.push_headers(),
        event_bytes("google_pubsub_new_review"),
        verifier=verifier_for(sandbox),
        client=client_for(sandbox),
        store=store,
    )
    assert (result.stored, result.rating, result.opens_ticket) == (1, 2, True)
    [message] = store.messages.values()
    assert message.message_id == review["name"] and message.text.startswith("Waited 40 minutes")


def test_an_edit_becomes_a_second_message_on_the_same_conversation(sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-9", stars=1, comment="Rude staff.")
    store, verifier, client = MemoryStore(), verifier_for(sandbox), client_for(sandbox)
    first_push = push_body(seeded["name"])
    g.receive_review_push(sandbox.push_headers(), first_push, verifier=verifier, client=client, store=store)
    sandbox.update_review(seeded["name"], starRating="FOUR", comment="They apologised; better now.",
                          update_time="2031-01-01T00:00:00Z")
    edit = push_body(seeded["name"], type="UPDATED_REVIEW", message_id="2")
    result = g.receive_review_push(sandbox.push_headers(), edit, verifier=verifier, client=client, store=store)
    assert (result.stored, result.rating, result.opens_ticket) == (1, 4, False)
    first, second = store.messages.values()
    assert first.conversation_key == second.conversation_key == f"google:review:{seeded['name']}"
    assert second.message_id == f"{seeded['name']}@2031-01-01T00:00:00Z" and second.edit_of == seeded["name"]


def test_a_failing_api_answers_503_and_stores_nothing(sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-1", stars=2)
    sandbox.fail_next(500)
    store = MemoryStore()
    with pytest.raises(Unavailable):
        g.receive_review_push(sandbox.push_headers(), push_body(seeded["name"]), verifier=verifier_for(sandbox),
                              client=client_for(sandbox), store=store)
    assert store.messages == {} and store.quarantined == []


def test_a_forged_push_never_reaches_the_api(sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-1")
    with pytest.raises(Unauthorized):
        g.receive_review_push(sandbox.push_headers(email="someone@gmail.com"), push_body(seeded["name"]),
                              verifier=verifier_for(sandbox), client=client_for(sandbox), store=MemoryStore())
    assert sandbox.stats().get("review", 0) == 0


# --- the route, through the app and DynamoDB ---------------------------------------------


@pytest.fixture
def google_stack(stack: Any, sandbox: GoogleSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local stack with its Google route pointed at the sandbox."""
    from chalicelib import wiring

    for name, value in {
        "GOOGLE_BUSINESS_API_URL": sandbox.url,
        "GOOGLE_JWKS_URL": sandbox.jwks_url,
        "GOOGLE_PUSH_AUDIENCE": sandbox.audience,
        "GOOGLE_PUSH_SERVICE_ACCOUNTS": sandbox.push_email,
        "GOOGLE_ACCESS_TOKEN": sandbox.access_token,
    }.items():
        monkeypatch.setenv(name, value)
    wiring.override("google_reviews", client_for(sandbox))
    try:
        yield stack
    finally:
        g.clear_key_sources()


def push_to_app(stack: Any, sandbox: GoogleSandbox, body: bytes) -> Any:
    from tests.integration.conftest import http

    return http("POST", f"{stack.app_url}/webhooks/google/reviews", body,
                {"Content-Type": "application/json", **sandbox.push_headers()})


def test_a_review_dynamodb_refuses_is_quarantined_and_acknowledged(google_stack: Any, sandbox: GoogleSandbox) -> None:
    # A review id of 400 three-byte characters: its message key is over DynamoDB's
    # 1024-byte sort key limit, so every retry would be refused the same way.
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "評" * 400, stars=1, comment="Never again.")
    push = push_body(seeded["name"])
    answer = push_to_app(google_stack, sandbox, push)
    assert answer.status == 200, answer.body  # acknowledged: Pub/Sub stops redelivering
    assert (answer.body["stored"], answer.body["quarantined"]) == (0, 1)
    [kept] = google_stack.items("QUARANTINE#google")
    assert "DynamoDB refused it" in kept["error"]["S"] and "Never again." in kept["raw"]["S"]
    assert google_stack.items("CONV#") == []

    again = push_to_app(google_stack, sandbox, push)  # Pub/Sub redelivers the same push: kept once
    assert again.status == 200 and len(google_stack.items("QUARANTINE#google")) == 1


def test_a_review_through_the_app_becomes_a_ticket(google_stack: Any, sandbox: GoogleSandbox) -> None:
    seeded = sandbox.add_review(ACCOUNT, LOCATION_ID, "r-ok", stars=2, comment="Cold soup.")
    answer = push_to_app(google_stack, sandbox, push_body(seeded["name"]))
    assert answer.status == 200 and (answer.body["stored"], answer.body["quarantined"]) == (1, 0)
    google_stack.sync()
    [ticket] = google_stack.ticket_for(f"google:review:{seeded['name']}")
    assert ticket["status"] == "new"
