"""The Zendesk adapter against a fake urllib3 pool: request shapes and error mapping.

No sockets: a real ``JsonHttpClient`` talks to ``FakePool``, which records what
would have been sent and answers from a script, so the auth header, JSON bodies and
the mapping of statuses and transport failures are all checked end to end.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from urllib3 import exceptions as u3

from chalicelib.helpdesks.base import HelpdeskRejected, HelpdeskUnavailable, TicketClosed, TicketGone, TicketRef
from chalicelib.helpdesks.formatting import comment_body, message_reference, ticket_subject
from chalicelib.http import Exchange, JsonHttpClient
from chalicelib.helpdesks.zendesk.adapter import (
    ZendeskHelpdesk,
    basic_auth_header,
    normalize_status,
    parse_retry_after,
)
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage

BASE = "https://acme.zendesk.com"
EMAIL = "agent@example.com"
TOKEN = "s3cr3t-api-token-value"


# --- fakes -----------------------------------------------------------------------------


class FakeResponse:
    """What urllib3 returns: ``status``, ``headers``, ``data``."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        if isinstance(body, bytes):
            self.data = body
        else:
            self.data = b"" if body is None else json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}


class FakePool:
    """Records requests; answers each with the next scripted response or exception."""

    def __init__(self, *answers: FakeResponse | Exception | Callable[[dict[str, Any]], FakeResponse]) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.cleared = 0

    def request(self, method: str, url: str, **kwargs: Any) -> FakeResponse:
        call = {"method": method, "url": url, **kwargs}
        self.calls.append(call)
        if not self.answers:
            raise AssertionError(f"unexpected request {method} {url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(call)
        return answer

    def clear(self) -> None:
        self.cleared += 1

    def body(self, index: int = -1) -> Any:
        raw = self.calls[index]["body"]
        return None if raw is None else json.loads(raw)


def make_helpdesk(*answers: Any, observer: Callable[[Exchange], None] | None = None) -> tuple[ZendeskHelpdesk, FakePool]:
    pool = FakePool(*answers)
    http = JsonHttpClient(BASE, basic_auth_header(EMAIL, TOKEN), pool=pool, observer=observer)
    return ZendeskHelpdesk(BASE, EMAIL, TOKEN, http=http), pool


def message(message_id: str = "m.1", *, text: str = "My order never arrived", kind: Kind = Kind.DIRECT_MESSAGE) -> SocialMessage:
    return SocialMessage(
        platform=Platform.INSTAGRAM,
        kind=kind,
        direction=Direction.INBOUND,
        message_id=message_id,
        conversation_key="instagram:dm:1784:9001",
        account_id="1784",
        author=Author(platform_id="9001", handle="jane", display_name="Jane Doe"),
        text=text,
        created_at=datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
    )


def ticket(ticket_id: int = 77, status: str = "new") -> dict[str, Any]:
    return {"ticket": {"id": ticket_id, "status": status, "subject": "s"}}


def closed_422() -> FakeResponse:
    return FakeResponse(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
        },
    )


# --- request shapes ----------------------------------------------------------------------


def test_every_request_carries_basic_token_auth_and_json_headers() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, {"user": {"id": 501, "name": "Jane Doe (@jane)"}}))

    helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)

    headers = pool.calls[0]["headers"]
    expected = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert headers["Authorization"] == f"Basic {expected}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    # urllib3 must not retry or follow redirects on its own: the adapter decides.
    assert pool.calls[0]["retries"] is False
    assert pool.calls[0]["redirect"] is False


def test_ensure_requester_upserts_by_external_id_without_touching_the_role() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(201, {"user": {"id": 501}}))

    user_id = helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)

    assert user_id == "501"
    assert pool.calls[0]["method"] == "POST"
    assert pool.calls[0]["url"] == f"{BASE}/api/v2/users/create_or_update"
    assert pool.body() == {"user": {"name": "Jane Doe (@jane)", "external_id": "instagram:9001"}}


def test_ensure_requester_names_an_anonymous_author_by_id() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(200, {"user": {"id": 7}}))

    helpdesk.ensure_requester(Platform.WHATSAPP, Author(platform_id="15551234567"))

    assert pool.body()["user"] == {"name": "15551234567", "external_id": "whatsapp:15551234567"}


def test_open_ticket_sends_the_customer_words_as_their_public_comment() -> None:
    msg = message()
    helpdesk, pool = make_helpdesk(FakeResponse(201, ticket(77, "new"), {"x-idempotency-lookup": "miss"}))

    ref = helpdesk.open_ticket(msg, "501", idempotency_key="socialdesk-abc")

    assert ref == TicketRef("77", "new")
    call = pool.calls[0]
    assert (call["method"], call["url"]) == ("POST", f"{BASE}/api/v2/tickets")
    assert call["headers"]["Idempotency-Key"] == "socialdesk-abc"
    assert pool.body() == {
        "ticket": {
            "subject": ticket_subject(msg),
            "comment": {"body": comment_body(msg), "author_id": 501, "public": True},
            "requester_id": 501,
            "submitter_id": 501,
            "external_id": "instagram:dm:1784:9001",
            "tags": ["socialdesk", "instagram", "direct_message"],
            "metadata": {"socialdesk_message": "instagram:m.1"},
        }
    }


def test_open_ticket_links_a_follow_up_to_the_closed_ticket() -> None:
    helpdesk, pool = make_helpdesk(FakeResponse(201, ticket(78)))

    helpdesk.open_ticket(message(), "501", idempotency_key="k", follow_up_of="77")

    assert pool.body()["ticket"]["via_followup_source_id"] == 77


def test_open_ticket_body_is_identical_on_a_resend_so_the_idempotency_key_matches() -> None:
    helpdesk, pool = make_helpdesk(
        FakeResponse(201, ticket(77), {"x-idempotency-lookup": "miss"}),
        FakeResponse(201, ticket(77), {"x-idempotency-lookup": "hit"}),
    )

    first = helpdesk.open_ticket(message(), "501", idempotency_key="k")
    second = helpdesk.open_ticket(message(), "501", idempotency_key="k")

    assert first == second
    assert pool.calls[0]["body"] == pool.calls[1]["body"]


def test_append_message_adds_a_public_comment_by_the_requester() -> None:
    msg = message("m.2", text="Any news?")
    helpdesk, pool = make_helpdesk(FakeResponse(200, {"ticket": {"id": 77, "status": "open"}, "audit": {"id": 1}}))

    ref = helpdesk.append_message("77", msg, "501")

    assert ref == TicketRef("77", "open")
    assert (pool.calls[0]["method"], pool.calls[0]["url"]) == ("PUT", f"{BASE}/api/v2/tickets/77")
    assert "Idempotency-Key" not in pool.calls[0]["headers"]
    assert pool.body() == {
        "ticket": {
            "comment": {"body": comment_body(msg), "author_id": 501, "public": True},
            "metadata": {"socialdesk_message": "instagram:m.2"},
        }
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("new", "new"), ("OPEN", "open"), ("pending", "pending"), ("hold", "hold"), ("on-hold", "hold"),
     ("solved", "solved"), ("closed", "closed"), (None, "open"), ("weird", "open")],
)
def test_status_words_are_normalized(raw: Any, expected: str) -> None:
    assert normalize_status(raw) == expected


def test_non_numeric_ids_are_refused_before_any_request() -> None:
    helpdesk, pool = make_helpdesk()

    with pytest.raises(HelpdeskRejected):
        helpdesk.append_message("not-a-number", message(), "501")
    assert pool.calls == []


# --- error mapping ----------------------------------------------------------------------------


def test_429_is_unavailable_not_applied_with_retry_after() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(429, b"Too Many Requests", {"Retry-After": "17", "Content-Type": "text/plain"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")

    assert caught.value.retry_after == 17.0
    assert caught.value.maybe_applied is False


def test_429_without_retry_after_falls_back_to_the_rate_limit_reset() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(429, b"", {"ratelimit-reset": "41"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert caught.value.retry_after == 41.0


def test_503_with_retry_after_was_not_processed() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(503, b"", {"Retry-After": "5"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert (caught.value.maybe_applied, caught.value.retry_after) == (False, 5.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_on_writes_may_have_been_applied(status: int) -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(status, {"error": "InternalError"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert caught.value.maybe_applied is True
    assert str(status) in str(caught.value)


def test_server_errors_on_reads_and_user_upserts_are_not_applied_messages() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(500, None), FakeResponse(502, None))

    with pytest.raises(HelpdeskUnavailable) as read:
        helpdesk.ticket_has_message("77", message())
    with pytest.raises(HelpdeskUnavailable) as upsert:
        helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)

    assert read.value.maybe_applied is False
    assert upsert.value.maybe_applied is False


def test_409_conflict_is_transient_and_not_applied() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(409, {"error": "UpdateConflict"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert caught.value.maybe_applied is False


def test_422_closed_ticket_becomes_ticket_closed() -> None:
    helpdesk, _ = make_helpdesk(closed_422())

    with pytest.raises(TicketClosed):
        helpdesk.append_message("77", message(), "501")


def test_other_422_is_a_rejection_with_zendesk_words() -> None:
    helpdesk, _ = make_helpdesk(
        FakeResponse(
            422,
            {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": {"author_id": [{"description": "Author is invalid"}]},
            },
        )
    )

    with pytest.raises(HelpdeskRejected) as caught:
        helpdesk.append_message("77", message(), "501")

    assert not isinstance(caught.value, TicketClosed)
    assert "RecordInvalid" in str(caught.value)
    assert "author_id: Author is invalid" in str(caught.value)


def test_422_closed_on_create_is_a_rejection_not_a_loop_of_follow_ups() -> None:
    helpdesk, _ = make_helpdesk(closed_422())

    with pytest.raises(HelpdeskRejected):
        helpdesk.open_ticket(message(), "501", idempotency_key="k", follow_up_of="77")


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (401, {"error": "Couldn't authenticate you"}, "Couldn't authenticate you"),
        (403, {"error": {"title": "Forbidden", "message": "You do not have access"}}, "You do not have access"),
        (404, {"error": "RecordNotFound", "description": "Not found"}, "RecordNotFound"),
        (400, {"errors": [{"code": "InvalidParam", "title": "Invalid", "detail": "bad id"}]}, "bad id"),
    ],
)
def test_client_errors_are_rejections_without_secrets(status: int, body: Any, words: str) -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(status, body))

    with pytest.raises(HelpdeskRejected) as caught:
        helpdesk.append_message("77", message(), "501")

    text = str(caught.value)
    assert words in text and str(status) in text
    assert TOKEN not in text
    assert base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode() not in text


def test_a_redirect_is_a_configuration_error() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(301, b"", {"Location": "https://elsewhere.example/"}))

    with pytest.raises(HelpdeskRejected, match="ZENDESK_URL"):
        helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)


def test_read_timeout_after_sending_may_have_been_applied() -> None:
    helpdesk, _ = make_helpdesk(u3.ReadTimeoutError(None, f"{BASE}/api/v2/tickets/77", "Read timed out."))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert caught.value.maybe_applied is True
    assert TOKEN not in str(caught.value)


def test_dropped_connection_on_create_may_have_been_applied() -> None:
    helpdesk, _ = make_helpdesk(u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset")))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")

    assert caught.value.maybe_applied is True


def test_connection_refused_was_not_applied() -> None:
    helpdesk, _ = make_helpdesk(u3.NewConnectionError(None, "Failed to establish a new connection: [Errno 111]"))  # type: ignore[arg-type]

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.append_message("77", message(), "501")

    assert caught.value.maybe_applied is False


def test_a_2xx_without_a_ticket_on_create_may_have_been_applied() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(201, b"<html>oops</html>", {"Content-Type": "text/html"}))

    with pytest.raises(HelpdeskUnavailable) as caught:
        helpdesk.open_ticket(message(), "501", idempotency_key="k")

    assert caught.value.maybe_applied is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12", 12.0), (" 0 ", 0.0), ("-3", 0.0), ("soon", None), (None, None), ("Wed, 01 May 2024 12:00:30 GMT", 30.0)],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after(value, now=now) == expected


# --- ticket_has_message ----------------------------------------------------------------------

COMMENTS = f"{BASE}/api/v2/tickets/77/comments"


def comment(reference: str | None, comment_id: int, created: str = "2024-05-01T12:35:00Z", *,
            shows_custom: bool = True) -> dict[str, Any]:
    """A comment as ``GET /api/v2/tickets/{id}/comments`` lists it (metadata of its audit)."""
    metadata: dict[str, Any] = {"system": {"client": "socialdesk"}}
    if shows_custom:
        metadata["custom"] = {"socialdesk_message": reference} if reference else {}
    return {"id": comment_id, "audit_id": 900 + comment_id, "type": "Comment", "body": "x", "public": True,
            "created_at": created, "metadata": metadata}


def page(*comments: dict[str, Any], after: str | None = None) -> FakeResponse:
    links = {"next": f"{COMMENTS}?page[after]={after}&page[size]=100&sort=-created_at" if after else None}
    return FakeResponse(200, {"comments": list(comments), "meta": {"has_more": after is not None}, "links": links})


def test_ticket_has_message_reads_comments_newest_first_and_follows_cursor_pages() -> None:
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.3", 3, "2024-05-01T12:50:00Z"), comment(None, 2, "2024-05-01T12:45:00Z"), after="c2"),
        page(comment("instagram:m.9", 1, "2024-05-01T12:40:00Z")),
    )

    assert helpdesk.ticket_has_message("77", message("m.9")) is True
    assert [c["url"] for c in pool.calls] == [
        f"{COMMENTS}?page%5Bsize%5D=100&sort=-created_at",
        f"{COMMENTS}?page[after]=c2&page[size]=100&sort=-created_at",
    ]
    assert all(c["method"] == "GET" and c["body"] is None for c in pool.calls)


def test_ticket_has_message_stops_at_comments_older_than_the_message() -> None:
    # The message was written at 12:30; a comment from the day before cannot be it, nor anything older.
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.2", 2, "2024-05-01T12:40:00Z"), comment("instagram:m.1", 1, "2024-04-30T09:00:00Z"),
             after="c2"),
    )

    assert helpdesk.ticket_has_message("77", message("m.404")) is False
    assert len(pool.calls) == 1  # a ticket of ten thousand comments costs one page, not a hundred


def test_ticket_has_message_stops_as_soon_as_it_finds_the_message() -> None:
    helpdesk, pool = make_helpdesk(page(comment("instagram:m.1", 1), after="c2"))

    assert helpdesk.ticket_has_message("77", message("m.1")) is True
    assert len(pool.calls) == 1


def test_ticket_has_message_reads_the_audit_of_a_comment_that_does_not_show_its_metadata() -> None:
    helpdesk, pool = make_helpdesk(
        page(comment(None, 2, shows_custom=False), comment(None, 1, "2024-04-30T09:00:00Z", shows_custom=False)),
        FakeResponse(200, {"audit": {"id": 902, "ticket_id": 77, "metadata": {"custom": {"socialdesk_message": "instagram:m.1"}},
                                     "events": []}}),
    )

    assert helpdesk.ticket_has_message("77", message("m.1")) is True
    assert pool.calls[1]["url"] == f"{BASE}/api/v2/tickets/77/audits/902"


def test_ticket_has_message_never_follows_a_link_to_another_host() -> None:
    helpdesk, pool = make_helpdesk(
        FakeResponse(200, {"comments": [], "meta": {"has_more": True},
                           "links": {"next": "https://evil.example/api/v2/tickets/77/comments?page[after]=x"}}),
    )

    with pytest.raises(HelpdeskRejected, match="another origin"):
        helpdesk.ticket_has_message("77", message())
    assert len(pool.calls) == 1  # the credentials went nowhere else


def test_ticket_has_message_does_not_loop_on_a_repeated_page() -> None:
    repeated = page(comment(None, 1), after="c1")
    helpdesk, pool = make_helpdesk(repeated, repeated)

    assert helpdesk.ticket_has_message("77", message()) is False
    assert len(pool.calls) == 2


def test_a_later_look_at_the_same_ticket_reads_only_the_comments_written_since() -> None:
    # A redrive checks a viral thread's parked messages one by one against one ticket:
    # reading every newer comment again for each would cost pages squared.
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 6, "2024-05-01T12:54:00Z"), after="c6"),
        page(comment("instagram:m.5", 5, "2024-05-01T12:50:00Z"), after="c5"),
        page(comment("instagram:m.4", 4, "2024-05-01T11:00:00Z")),  # older than 12:30 less the skew
        # the next look: one comment written since, then the newest seen before
        page(comment("instagram:m.8", 8, "2024-05-01T12:56:00Z"), comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"),
             comment(None, 6, "2024-05-01T12:54:00Z"), after="c6"),
        page(comment("instagram:m.8", 8, "2024-05-01T12:56:00Z"), comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"),
             after="c7"),
    )

    assert helpdesk.ticket_has_message("77", message("m.404")) is False
    assert len(pool.calls) == 3
    assert helpdesk.ticket_has_message("77", message("m.405")) is False
    assert len(pool.calls) == 4  # one page: it stopped at what the first look had read
    assert helpdesk.ticket_has_message("77", message("m.5")) is True  # read by the first look
    assert len(pool.calls) == 5


def test_a_comment_written_since_the_last_look_is_found() -> None:
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 1, "2024-05-01T09:00:00Z")),
        # another writer's comment for m.9 arrived, stamped within a second of the newest seen
        page(comment("instagram:m.9", 9, "2024-05-01T12:55:00Z"), comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"),
             comment(None, 1, "2024-05-01T09:00:00Z")),
    )

    assert helpdesk.ticket_has_message("77", message("m.9")) is False
    assert helpdesk.ticket_has_message("77", message("m.9")) is True
    assert len(pool.calls) == 2


def test_a_message_older_than_what_was_read_reads_the_ticket_again_further_back() -> None:
    older = message("m.2").model_copy(update={"created_at": datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)})
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 3, "2024-05-01T11:00:00Z"), after="c3"),
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 3, "2024-05-01T11:00:00Z"), after="c3"),
        page(comment("instagram:m.2", 2, "2024-05-01T09:01:00Z")),
    )

    assert helpdesk.ticket_has_message("77", message("m.404")) is False
    assert len(pool.calls) == 1
    assert helpdesk.ticket_has_message("77", older) is True
    assert len(pool.calls) == 3


def test_a_message_newer_than_everything_read_reads_only_down_to_its_own_time() -> None:
    later = message("m.20").model_copy(update={"created_at": datetime(2024, 5, 2, 12, 30, tzinfo=timezone.utc)})
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 1, "2024-05-01T09:00:00Z")),
        # a day later: pages of comments written since, but only those after 11:30 can be it
        page(comment("instagram:m.20", 30, "2024-05-02T12:31:00Z"), comment(None, 29, "2024-05-02T11:00:00Z"),
             after="c29"),
    )

    assert helpdesk.ticket_has_message("77", message("m.404")) is False
    assert helpdesk.ticket_has_message("77", later.model_copy(update={"message_id": "m.21"})) is False
    assert len(pool.calls) == 2  # not the day's other pages


def test_a_look_that_finds_the_ticket_deleted_forgets_what_it_had_read() -> None:
    helpdesk, pool = make_helpdesk(
        page(comment("instagram:m.7", 7, "2024-05-01T12:55:00Z"), comment(None, 1, "2024-05-01T09:00:00Z")),
        FakeResponse(404, {"error": "RecordNotFound", "description": "Not found"}),
        page(comment(None, 1, "2024-05-01T09:00:00Z")),  # (a test server reusing the id)
    )

    assert helpdesk.ticket_has_message("77", message("m.404")) is False
    with pytest.raises(TicketGone):
        helpdesk.ticket_has_message("77", message("m.7"))
    assert helpdesk.ticket_has_message("77", message("m.7")) is False  # not remembered from before


def test_ticket_has_message_of_a_deleted_ticket_says_it_is_gone() -> None:
    helpdesk, _ = make_helpdesk(FakeResponse(404, {"error": "RecordNotFound", "description": "Not found"}))

    with pytest.raises(TicketGone):
        helpdesk.ticket_has_message("77", message())


# --- observer and secrets -------------------------------------------------------------------------


def test_observer_sees_every_exchange_with_the_credentials_redacted() -> None:
    seen: list[Exchange] = []
    helpdesk, _ = make_helpdesk(
        FakeResponse(200, {"user": {"id": 501}}),
        FakeResponse(201, ticket(77)),
        FakeResponse(422, {"error": "RecordInvalid", "details": {"base": [{"description": "nope"}]}}),
        observer=seen.append,
    )

    helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)
    helpdesk.open_ticket(message(), "501", idempotency_key="k")
    with pytest.raises(HelpdeskRejected):
        helpdesk.append_message("77", message("m.2"), "501")

    assert [(e.method, e.url, e.status) for e in seen] == [
        ("POST", f"{BASE}/api/v2/users/create_or_update", 200),
        ("POST", f"{BASE}/api/v2/tickets", 201),
        ("PUT", f"{BASE}/api/v2/tickets/77", 422),
    ]
    ticket_exchange = seen[1]
    assert json.loads(ticket_exchange.request_body or b"")["ticket"]["external_id"] == "instagram:dm:1784:9001"
    assert ticket_exchange.request_headers["Idempotency-Key"] == "k"
    assert json.loads(ticket_exchange.response_body)["ticket"]["id"] == 77
    encoded = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    for exchange in seen:
        assert exchange.request_headers["Authorization"] == "Basic [redacted]"
        assert TOKEN not in repr(exchange) and encoded not in repr(exchange)


def test_an_observer_that_raises_fails_the_call() -> None:
    def strict(exchange: Exchange) -> None:
        raise AssertionError("contract broken")

    helpdesk, _ = make_helpdesk(FakeResponse(200, {"user": {"id": 1}}), observer=strict)

    with pytest.raises(AssertionError, match="contract broken"):
        helpdesk.ensure_requester(Platform.INSTAGRAM, message().author)


def test_the_token_does_not_show_in_reprs() -> None:
    helpdesk = ZendeskHelpdesk(BASE, EMAIL, TOKEN)
    encoded = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()

    for text in (repr(helpdesk), str(helpdesk), repr(helpdesk._http)):
        assert TOKEN not in text and encoded not in text


def test_the_default_client_refuses_plain_http_to_a_remote_host() -> None:
    with pytest.raises(ValueError, match="plain http"):
        ZendeskHelpdesk("http://acme.zendesk.com", EMAIL, TOKEN)
    ZendeskHelpdesk("http://127.0.0.1:8025", EMAIL, TOKEN)  # the local sandbox is fine


def test_message_reference_is_what_the_metadata_carries() -> None:
    assert message_reference(message("m.5")) == "instagram:m.5"


def test_an_observer_belongs_to_the_injected_client() -> None:
    with pytest.raises(ValueError):
        ZendeskHelpdesk(BASE, EMAIL, TOKEN, http=JsonHttpClient(BASE, "Basic x", pool=FakePool()), observer=print)
