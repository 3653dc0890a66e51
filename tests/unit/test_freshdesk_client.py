"""The Freshdesk adapter against a fake urllib3 pool: request shapes, idempotency,
closed tickets, the embedded message reference and the error mapping.

No sockets: a real ``JsonHttpClient`` talks to ``FakePool``, which records what would
have been sent and answers from a script.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from urllib3 import exceptions as u3

from chalicelib.helpdesks.base import HelpdeskRejected, HelpdeskUnavailable, TicketClosed, TicketGone, TicketRef
from chalicelib.helpdesks.freshdesk.adapter import (
    RECENT_LOOKUP_SECONDS,
    FreshdeskHelpdesk,
    api_key_auth_header,
    conversation_tag,
    has_reference,
    html_body,
    idempotency_tag,
    normalize_status,
    reference_token,
)
from chalicelib.http import JsonHttpClient
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage

BASE = "https://acme.freshdesk.com"
API_KEY = "fd-s3cr3t-api-key-value"


# --- fakes -----------------------------------------------------------------------------


class FakeResponse:
    """What urllib3 returns: ``status``, ``headers``, ``data``."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
        self.headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}


class FakePool:
    """Records requests; answers each with the next scripted response or exception."""

    def __init__(self, *answers: FakeResponse | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"method": method, "url": url, **kwargs})
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def clear(self) -> None:
        pass

    def body(self, index: int = -1) -> Any:
        raw = self.calls[index]["body"]
        return None if raw is None else json.loads(raw)

    def route(self, index: int = -1) -> str:
        call = self.calls[index]
        return f"{call['method']} {urlsplit(call['url']).path}"

    def query(self, index: int = -1) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.calls[index]["url"]).query).items()}


class Clock:
    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_helpdesk(*answers: Any, clock: Callable[[], float] | None = None, **options: Any) -> tuple[FreshdeskHelpdesk, FakePool]:
    pool = FakePool(*answers)
    http = JsonHttpClient(BASE, api_key_auth_header(API_KEY), pool=pool)
    return FreshdeskHelpdesk(BASE, API_KEY, http=http, clock=clock or Clock(), **options), pool


def message(message_id: str = "m.1", *, text: str = "My order <never> arrived", kind: Kind = Kind.DIRECT_MESSAGE,
            platform: Platform = Platform.INSTAGRAM) -> SocialMessage:
    return SocialMessage(
        platform=platform,
        kind=kind,
        direction=Direction.INBOUND,
        message_id=message_id,
        conversation_key=f"{platform.value}:dm:1784:9001",
        account_id="1784",
        author=Author(platform_id="9001", handle="jane", display_name="Jane Doe"),
        text=text,
        created_at=datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
    )


def ticket(ticket_id: int = 77, status: int = 2, **fields: Any) -> dict[str, Any]:
    return {"id": ticket_id, "status": status, "subject": "s", "requester_id": 501, **fields}


def note(note_id: int = 900, body: str = "<div>x</div>") -> dict[str, Any]:
    return {"id": note_id, "body": body, "body_text": "x", "incoming": True, "private": False}


def created(payload: dict[str, Any]) -> FakeResponse:
    return FakeResponse(201, payload)


# --- auth and contacts ---------------------------------------------------------------------


def test_every_request_carries_api_key_basic_auth_and_json_headers() -> None:
    helpdesk, pool = make_helpdesk(created({"id": 501}))

    helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)

    headers = pool.calls[0]["headers"]
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{API_KEY}:X".encode()).decode()
    assert headers["Content-Type"] == "application/json" and headers["Accept"] == "application/json"
    assert pool.calls[0]["retries"] is False and pool.calls[0]["redirect"] is False
    assert API_KEY not in repr(helpdesk)


def test_ensure_requester_creates_a_contact_identified_by_unique_external_id() -> None:
    helpdesk, pool = make_helpdesk(created({"id": 501}))

    assert helpdesk.ensure_requester(Platform.INSTAGRAM, message().author) == "501"

    assert pool.route() == "POST /api/v2/contacts"
    assert pool.body() == {"name": "Jane Doe (@jane)", "unique_external_id": "instagram:9001"}


@pytest.mark.parametrize(
    ("platform", "author", "extra"),
    [
        (Platform.X, Author(platform_id="44196397", handle="jane"), {"twitter_id": "jane"}),
        (Platform.WHATSAPP, Author(platform_id="4915112345678", handle="+4915112345678", phone="+4915112345678"), {"phone": "+4915112345678"}),
        # A customer known only by their business-scoped id (a WhatsApp username, no number).
        (Platform.WHATSAPP, Author(platform_id="DE.13491208655302741918", handle="jane.doe"), {}),
        (Platform.MESSENGER, Author(platform_id="2411"), {}),  # a PSID is not a Facebook profile id
        (Platform.FACEBOOK, Author(platform_id="6100042"), {}),
    ],
)
def test_native_channel_fields_are_filled_where_they_mean_the_same(platform: Platform, author: Author, extra: dict[str, str]) -> None:
    # A number is looked up first (phone, then mobile): no contact holds it here.
    lookups = [FakeResponse(200, []), FakeResponse(200, [])] if "phone" in extra else []
    helpdesk, pool = make_helpdesk(*lookups, created({"id": 501}))

    helpdesk.ensure_requester(platform, author)

    sent = pool.body()
    assert sent["unique_external_id"] == f"{platform.value}:{author.platform_id}"
    assert {k: v for k, v in sent.items() if k not in ("name", "unique_external_id")} == extra


def test_the_contact_that_holds_the_customers_number_is_the_requester_never_one_of_two() -> None:
    number = Author(platform_id="4915112345678", handle="+4915112345678", phone="+4915112345678")
    holder = {"id": 77, "name": "Jana (CRM)", "phone": "+4915112345678", "mobile": None}
    helpdesk, pool = make_helpdesk(FakeResponse(200, [holder]), FakeResponse(200, []))
    assert helpdesk.ensure_requester(Platform.WHATSAPP, number) == "77"
    assert [pool.query(i) for i in range(2)] == [{"phone": "+4915112345678"}, {"mobile": "+4915112345678"}]

    # A filter the server ignored (another number comes back) adopts nobody.
    stranger = {"id": 78, "name": "Jana", "phone": "+4915100000000"}
    helpdesk, pool = make_helpdesk(FakeResponse(200, [stranger]), FakeResponse(200, []), created({"id": 502}))
    assert helpdesk.ensure_requester(Platform.WHATSAPP, number) == "502"

    # Two contacts share the number: neither is guessed, and the new contact goes without it.
    twin = {**holder, "id": 79}
    helpdesk, pool = make_helpdesk(FakeResponse(200, [holder, twin]), FakeResponse(200, []), created({"id": 503}))
    assert helpdesk.ensure_requester(Platform.WHATSAPP, number) == "503"
    assert "phone" not in pool.body()


def test_a_duplicate_answer_names_the_existing_contact_in_one_call() -> None:
    duplicate = {"description": "Validation failed", "errors": [
        {"field": "unique_external_id", "message": "It should be a unique value", "code": "duplicate_value",
         "additional_info": {"user_id": 8080}}]}
    helpdesk, pool = make_helpdesk(FakeResponse(409, duplicate))

    assert helpdesk.ensure_requester(Platform.INSTAGRAM, message().author) == "8080"
    assert len(pool.calls) == 1


def test_a_duplicate_without_an_id_is_looked_up_by_unique_external_id() -> None:
    duplicate = {"description": "Validation failed", "errors": [
        {"field": "unique_external_id", "message": "It should be a unique value", "code": "duplicate_value"}]}
    helpdesk, pool = make_helpdesk(
        FakeResponse(409, duplicate), FakeResponse(200, [{"id": 8081, "unique_external_id": "instagram:9001"}])
    )

    assert helpdesk.ensure_requester(Platform.INSTAGRAM, message().author) == "8081"
    assert pool.route() == "GET /api/v2/contacts"
    assert pool.query() == {"unique_external_id": "instagram:9001"}


def test_a_conflict_on_the_twitter_handle_alone_falls_back_to_a_bare_contact() -> None:
    duplicate = {"description": "Validation failed", "errors": [
        {"field": "twitter_id", "message": "It should be a unique value", "code": "duplicate_value"}]}
    helpdesk, pool = make_helpdesk(FakeResponse(409, duplicate), FakeResponse(200, []), created({"id": 502}))

    assert helpdesk.ensure_requester(Platform.X, Author(platform_id="44196397", handle="jane")) == "502"
    assert pool.body() == {"name": "@jane", "unique_external_id": "x:44196397"}


def test_a_lookup_that_ignored_the_filter_never_adopts_a_stranger() -> None:
    duplicate = {"errors": [{"field": "unique_external_id", "code": "duplicate_value"}]}
    strangers = [{"id": 1, "unique_external_id": "x:other"}, {"id": 2, "unique_external_id": None}]
    helpdesk, _ = make_helpdesk(FakeResponse(409, duplicate), FakeResponse(200, strangers))

    with pytest.raises(HelpdeskRejected, match="duplicate contact"):
        helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)


# --- tickets -------------------------------------------------------------------------------------


def test_open_ticket_sends_the_customer_words_as_the_description() -> None:
    helpdesk, pool = make_helpdesk(created(ticket(77)))

    ref = helpdesk.open_ticket(message(), "501", idempotency_key="socialdesk-abc")

    assert ref == TicketRef("77", "open")
    assert pool.route() == "POST /api/v2/tickets"
    sent = pool.body()
    assert sent["requester_id"] == 501 and sent["status"] == 2 and sent["priority"] == 1
    assert sent["source"] == 7  # a DM is a chat
    assert sent["subject"].startswith("[Instagram direct message] Jane Doe (@jane): My order")
    assert "My order &lt;never&gt; arrived" in sent["description"]
    assert reference_token("instagram:m.1") in sent["description"]
    assert sent["tags"] == ["socialdesk", "instagram", "direct_message",
                            conversation_tag("instagram:dm:1784:9001"), idempotency_tag("socialdesk-abc")]
    assert all(len(tag) <= 32 for tag in sent["tags"])
    assert "custom_fields" not in sent


def test_public_posts_are_portal_tickets_and_the_conversation_field_is_optional() -> None:
    helpdesk, pool = make_helpdesk(created(ticket(78)), conversation_field="cf_socialdesk_conversation")

    helpdesk.open_ticket(message(kind=Kind.COMMENT), "501", idempotency_key="k")

    assert pool.body()["source"] == 2
    assert pool.body()["custom_fields"] == {"cf_socialdesk_conversation": "instagram:dm:1784:9001"}
    with pytest.raises(ValueError):
        FreshdeskHelpdesk(BASE, API_KEY, conversation_field="socialdesk_conversation")


def test_a_follow_up_says_which_closed_ticket_it_follows() -> None:
    helpdesk, pool = make_helpdesk(created(ticket(79)))

    helpdesk.open_ticket(message(), "501", idempotency_key="k", follow_up_of="77")

    assert "Follow-up to ticket #77, which is closed." in pool.body()["description"]


def test_a_create_that_may_have_landed_is_looked_for_before_it_is_sent_again() -> None:
    clock = Clock()
    listing = [ticket(80, created_at="2025-10-09T08:53:20Z")]  # the list leaves tags out
    helpdesk, pool = make_helpdesk(
        u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")),
        FakeResponse(200, listing),
        FakeResponse(200, ticket(80, tags=["socialdesk", idempotency_tag("k")])),
        clock=clock,
    )
    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert caught.value.maybe_applied is True

    clock.now += 2
    assert helpdesk.open_ticket(message(), "501", idempotency_key="k") == TicketRef("80", "open")

    assert [pool.route(i) for i in range(3)] == ["POST /api/v2/tickets", "GET /api/v2/tickets", "GET /api/v2/tickets/80"]
    assert pool.query(1) == {"requester_id": "501", "order_by": "created_at", "order_type": "desc", "per_page": "30"}


def test_a_create_that_did_not_land_is_sent_again_and_then_forgotten() -> None:
    clock = Clock()
    older = ticket(70, created_at="2020-01-01T00:00:00Z")
    helpdesk, pool = make_helpdesk(
        FakeResponse(502, {"code": "bad_gateway"}),
        FakeResponse(200, [older]),
        created(ticket(81)),
        created(ticket(82)),
        clock=clock,
    )
    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert caught.value.maybe_applied is True

    assert helpdesk.open_ticket(message(), "501", idempotency_key="k").ticket_id == "81"
    # the older ticket is before the attempt: it is not even read
    assert [pool.route(i) for i in range(3)] == ["POST /api/v2/tickets", "GET /api/v2/tickets", "POST /api/v2/tickets"]
    # settled: a later call with the key costs no lookup
    helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert pool.route() == "POST /api/v2/tickets" and len(pool.calls) == 4


def test_a_rate_limited_create_was_not_applied_and_needs_no_lookup() -> None:
    helpdesk, pool = make_helpdesk(
        FakeResponse(429, {"message": "limit"}, {"Retry-After": "7", "X-RateLimit-Remaining": "0", "X-RateLimit-Total": "700"}),
        created(ticket(83)),
    )
    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert (caught.value.maybe_applied, caught.value.retry_after) == (False, 7.0)
    assert helpdesk.rate_limit == (0, 700)

    helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert [pool.route(i) for i in range(2)] == ["POST /api/v2/tickets", "POST /api/v2/tickets"]


def test_an_old_or_unremembered_create_is_looked_for_through_search() -> None:
    clock = Clock()
    tag = idempotency_tag("k")
    helpdesk, pool = make_helpdesk(
        u3.ReadTimeoutError(None, f"{BASE}/api/v2/tickets", "Read timed out."),
        FakeResponse(200, {"results": [ticket(84, status=3, tags=[tag])], "total": 1}),
        clock=clock,
    )
    with pytest.raises(HelpdeskUnavailable):
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    clock.now += RECENT_LOOKUP_SECONDS + 1

    assert helpdesk.open_ticket(message(), "501", idempotency_key="k") == TicketRef("84", "pending")
    assert pool.route() == "GET /api/v2/search/tickets"
    assert pool.query() == {"query": f"\"tag:'{tag}'\""}


def test_maybe_exists_forces_the_check_without_memory() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, {"results": [], "total": 0}), created(ticket(85)))

    assert helpdesk.open_ticket(message(), "501", idempotency_key="k", maybe_exists=True).ticket_id == "85"
    assert [pool.route(i) for i in range(2)] == ["GET /api/v2/search/tickets", "POST /api/v2/tickets"]


# --- notes ---------------------------------------------------------------------------------------


def test_append_message_adds_an_incoming_public_note_by_the_requester() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, ticket(77, status=2)), created(note()))

    assert helpdesk.append_message("77", message("m.2", text="still waiting"), "501") == TicketRef("77", "open")

    assert [pool.route(i) for i in range(2)] == ["GET /api/v2/tickets/77", "POST /api/v2/tickets/77/notes"]
    sent = pool.body()
    assert (sent["incoming"], sent["private"], sent["user_id"]) == (True, False, 501)
    assert "still waiting" in sent["body"] and reference_token("instagram:m.2") in sent["body"]


@pytest.mark.parametrize("closed", [ticket(77, status=5), ticket(77, status=2, deleted=True)])
def test_a_closed_or_deleted_ticket_takes_no_message(closed: dict[str, Any]) -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, closed), FakeResponse(200, closed))

    with pytest.raises(TicketClosed):
        helpdesk.append_message("77", message(), "501")
    with pytest.raises(TicketClosed):
        helpdesk.add_note("77", message(), "edited")
    assert [c["method"] for c in pool.calls] == ["GET", "GET"]  # nothing written


def test_a_customer_note_reopens_a_resolved_ticket() -> None:
    helpdesk, pool = make_helpdesk(
        FakeResponse(200, ticket(77, status=4)), created(note()), FakeResponse(200, ticket(77, status=2))
    )

    assert helpdesk.append_message("77", message(), "501") == TicketRef("77", "open")
    assert pool.route() == "PUT /api/v2/tickets/77" and pool.body() == {"status": 2}


def test_a_failed_reopen_does_not_fail_the_delivered_note() -> None:
    helpdesk, _ = make_helpdesk(
        FakeResponse(200, ticket(77, status=3)), created(note()), FakeResponse(400, {"description": "Validation failed"})
    )

    assert helpdesk.append_message("77", message(), "501") == TicketRef("77", "pending")


def test_add_note_is_private_and_carries_the_reference() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, ticket(77, status=4)), created(note()))

    assert helpdesk.add_note("77", message("m.3"), "Jane edited her message") == TicketRef("77", "solved")

    sent = pool.body()
    assert sent["private"] is True and "incoming" not in sent and "user_id" not in sent
    assert reference_token("instagram:m.3") in sent["body"]


def test_a_dropped_note_may_have_been_applied() -> None:
    helpdesk, _ = make_helpdesk(
        FakeResponse(200, ticket(77)), u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")
    assert caught.value.maybe_applied is True


# --- finding a message again ---------------------------------------------------------------------


def test_ticket_has_message_finds_the_description() -> None:
    description = html_body("hello", "instagram:m.1")
    helpdesk, pool = make_helpdesk(FakeResponse(200, ticket(77, description=description)))

    assert helpdesk.ticket_has_message("77", message("m.1")) is True
    assert len(pool.calls) == 1


def test_ticket_has_message_follows_conversation_pages() -> None:
    page_1 = [note(i) for i in range(100)]
    sanitized = "<div><p>two</p><p><small>[socialdesk:instagram:m.2]</small></p></div>"
    link = {"Link": f'<{BASE}/api/v2/tickets/77/conversations?page=2&per_page=100>; rel="next"'}
    helpdesk, pool = make_helpdesk(
        FakeResponse(200, ticket(77, description="<div>first</div>")),
        FakeResponse(200, page_1, link),
        FakeResponse(200, [note(200, sanitized)]),
    )

    assert helpdesk.ticket_has_message("77", message("m.2")) is True
    assert pool.query(1) == {"per_page": "100", "page": "1"} and pool.query(2) == {"page": "2", "per_page": "100"}


def test_ticket_has_message_is_false_when_no_message_carries_the_reference() -> None:
    helpdesk, pool = make_helpdesk(
        FakeResponse(200, ticket(77, description=html_body("x", "instagram:m.10"))),
        FakeResponse(200, [note(1, html_body("y", "instagram:m.11"))]),
    )

    assert helpdesk.ticket_has_message("77", message("m.1")) is False  # m.1 is a prefix of m.10, not a match
    assert len(pool.calls) == 2


def test_ticket_has_message_never_follows_a_link_to_another_host() -> None:
    helpdesk, _ = make_helpdesk(
        FakeResponse(200, ticket(77)),
        FakeResponse(200, [], {"Link": '<https://evil.example/api/v2/x?page=2>; rel="next"'}),
    )

    with pytest.raises(HelpdeskRejected, match="another origin"):
        helpdesk.ticket_has_message("77", message())


def test_the_reference_survives_sanitizing_and_escaping() -> None:
    body = html_body("hi", "x:a&b")
    assert has_reference({"body": body}, "x:a&b", "body")
    assert has_reference({"body_text": "hi\n[socialdesk:x:a&b]"}, "x:a&b", "body_text")
    assert has_reference({"body": '<p data-socialdesk-ref="x:a&amp;b"></p>'}, "x:a&b", "body")
    assert not has_reference({"body": body}, "x:a", "body")
    # A generic source's id may hold what HTML escapes; Freshdesk may drop our attribute.
    sanitized = html_body("hi", "generic:<id@mail>").replace('data-socialdesk-ref="generic:&lt;id@mail&gt;"', "")
    assert has_reference({"body": sanitized}, "generic:<id@mail>", "body")


# --- error mapping -------------------------------------------------------------------------------


def test_503_with_retry_after_was_not_processed() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(503, None, {"Retry-After": "30"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert (caught.value.maybe_applied, caught.value.retry_after) == (False, 30.0)


def test_server_errors_on_reads_were_not_applied() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(500, {"code": "internal_error"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.ticket_has_message("77", message())
    assert caught.value.maybe_applied is False


def test_connection_refused_was_not_applied() -> None:
    helpdesk, _ = make_helpdesk(u3.NewConnectionError(None, "Failed to establish a new connection"))  # type: ignore[arg-type]

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert caught.value.maybe_applied is False


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (400, {"description": "Validation failed", "errors": [{"field": "source", "message": "It should be one of these values: '1,2,3,7,9,10'", "code": "invalid_value"}]}, "source It should be one of"),
        (401, {"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}, "FRESHDESK_API_KEY"),
        (403, {"code": "access_denied", "message": "You are not authorized to perform this action."}, "access_denied"),
        (404, None, "not found"),
        (302, None, "FRESHDESK_URL"),
    ],
)
def test_client_errors_are_rejections_with_freshdesk_words_and_no_secret(status: int, body: Any, words: str) -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(status, body))

    with pytest.raises(HelpdeskRejected) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert words in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_a_2xx_without_a_ticket_on_create_may_have_been_applied() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(201, b"<html>ok</html>", {"Content-Type": "text/html"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")
    assert caught.value.maybe_applied is True


def test_non_numeric_ids_are_refused_before_any_request() -> None:
    helpdesk, pool = make_helpdesk()

    with pytest.raises(HelpdeskRejected):
        helpdesk.append_message("abc", message(), "501")
    with pytest.raises(HelpdeskRejected):
        helpdesk.open_ticket(message(), "jane", idempotency_key="k")
    assert pool.calls == []


@pytest.mark.parametrize(("raw", "expected"), [(2, "open"), (3, "pending"), (4, "solved"), (5, "closed"), (6, "open"), ("5", "closed"), (None, "open")])
def test_status_ids_are_normalized(raw: Any, expected: str) -> None:
    assert normalize_status(raw) == expected


class TicketServer:
    """A Freshdesk account holding one ticket and its conversations, oldest first, paged as
    Freshdesk pages them (``per_page``, ``page``, a ``Link`` to the next page while full);
    counts the requests."""

    def __init__(self, conversations: int, ticket_id: int = 77) -> None:
        self.ticket_id = ticket_id
        self.conversations = [note(i, html_body(f"message {i}", f"instagram:m.{i}")) for i in range(conversations)]
        self.deleted = False
        self.calls: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        parts = urlsplit(url)
        self.calls.append(f"{method} {parts.path}?{parts.query}")
        if self.deleted:
            return FakeResponse(404, None)
        if parts.path == f"/api/v2/tickets/{self.ticket_id}":
            return FakeResponse(200, ticket(self.ticket_id, description="<div>first</div>"))
        assert parts.path == f"/api/v2/tickets/{self.ticket_id}/conversations", url
        query = {k: int(v[0]) for k, v in parse_qs(parts.query).items()}
        size, page = query["per_page"], query["page"]
        items = self.conversations[(page - 1) * size : page * size]
        following = (f'<{BASE}{parts.path}?per_page={size}&page={page + 1}>; rel="next"'
                     if len(self.conversations) > page * size else None)
        return FakeResponse(200, items, {"Link": following} if following else {})

    def clear(self) -> None:
        pass


def served(server: TicketServer) -> FreshdeskHelpdesk:
    return FreshdeskHelpdesk(BASE, API_KEY, http=JsonHttpClient(BASE, api_key_auth_header(API_KEY), pool=server), clock=Clock())


def test_checking_many_messages_against_one_ticket_reads_its_conversations_about_once() -> None:
    """A redrive of a viral thread's backlog checks each parked message against the one
    ticket: the conversations read for one look are not read again for the next."""
    server = TicketServer(conversations=250)
    helpdesk = served(server)

    found = [helpdesk.ticket_has_message("77", message(f"m.{i}")) for i in range(250)]

    assert all(found)
    assert not helpdesk.ticket_has_message("77", message("m.999"))
    # 3 pages and the ticket once, then the page still growing once per look; not 3 pages a look.
    assert len(server.calls) <= 4 + 251, len(server.calls)


def test_a_message_written_since_the_last_look_is_found() -> None:
    server = TicketServer(conversations=150)
    helpdesk = served(server)
    assert not helpdesk.ticket_has_message("77", message("m.150"))

    server.conversations.append(note(150, html_body("late", "instagram:m.150")))

    assert helpdesk.ticket_has_message("77", message("m.150"))


def test_a_ticket_longer_than_one_look_reads_is_read_over_several_looks_not_refused() -> None:
    """6,000 conversations (60 pages, more than one look reads): the message on the last page
    is retried and then found, the pages read once, never refused for good."""
    server = TicketServer(conversations=6_000)
    helpdesk = served(server)

    with pytest.raises(HelpdeskUnavailable, match="pages"):
        helpdesk.ticket_has_message("77", message("m.5999"))
    assert helpdesk.ticket_has_message("77", message("m.5999"))
    assert len(server.calls) <= 1 + 60 + 2, len(server.calls)


def test_a_deleted_ticket_is_gone_also_after_it_was_read() -> None:
    server = TicketServer(conversations=10)
    helpdesk = served(server)
    assert helpdesk.ticket_has_message("77", message("m.3"))

    server.deleted = True

    with pytest.raises(TicketGone):
        helpdesk.ticket_has_message("77", message("m.3"))


def test_a_conversation_deleted_before_the_next_look_shifts_nothing_out_of_sight() -> None:
    """An agent deletes a note on the first page: the later ones move back a place, and a
    message written since is still found (the next look rereads the page it had reached)."""
    server = TicketServer(conversations=250)
    helpdesk = served(server)
    assert helpdesk.ticket_has_message("77", message("m.249"))

    del server.conversations[10]
    server.conversations.append(note(250, html_body("late", "instagram:m.250")))

    assert helpdesk.ticket_has_message("77", message("m.250"))
    assert helpdesk.ticket_has_message("77", message("m.200"))  # moved from page 3 to page 2: read before
