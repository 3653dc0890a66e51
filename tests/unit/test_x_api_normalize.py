"""X API v2 pages (mentions, DM events) into the same canonical messages as the webhook.

The crux: a tweet or DM reaching us by both the Account Activity webhook and the
poller must get the same identity (message id, conversation key, direction, author),
or the store keeps two copies and the helpdesk gets the message twice.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.models import Direction, Kind, SocialMessage
from chalicelib.channels.x import webhook as x
from chalicelib.channels.x.api import (
    DM_PARAMS,
    MENTION_PARAMS,
    XApiClient,
    XApiError,
    XAuthError,
    XRateLimited,
    dm_customer,
    newer_than,
    newest_id,
    normalize_dm_events_page,
    normalize_mentions_page,
)
from tests.support.events import load_event

BRAND = "2244994945"
CUSTOMER = "3001969357"
UTC = timezone.utc
MENTION_ID = "1050118621198921728"
REPLY_ID = "1050129388001234944"
RETWEET_ID = "1050131544001234945"


def webhook_message(name: str) -> SocialMessage:
    batch = x.normalize_delivery(load_event(name))
    assert batch.rejected == [] and len(batch.messages) == 1, batch
    return batch.messages[0]


def polled(page: dict[str, Any], message_id: str, *, dms: bool = False) -> SocialMessage:
    normalize = normalize_dm_events_page if dms else normalize_mentions_page
    batch = normalize(page, brand_id=BRAND)
    assert batch.rejected == [], [r.error for r in batch.rejected]
    found = [m for m in batch.messages if m.message_id == message_id]
    assert len(found) == 1, [m.message_id for m in batch.messages]
    return found[0]


def identity(message: SocialMessage) -> tuple[Any, ...]:
    return (
        message.platform,
        message.kind,
        message.direction,
        message.message_id,
        message.conversation_key,
        message.account_id,
        message.author.platform_id,
    )


def page_with(tweet: dict[str, Any], users: list[dict[str, Any]], media: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    includes: dict[str, Any] = {"users": users}
    if media:
        includes["media"] = media
    return {"data": [tweet], "includes": includes, "meta": {"result_count": 1, "newest_id": tweet["id"], "oldest_id": tweet["id"]}}


# --- the crux: same tweet or DM by both paths -----------------------------------------------


class TestSameIdentityAsTheWebhook:
    def test_a_mention_polled_equals_the_webhook_mention(self) -> None:
        hooked = webhook_message("x_mention")
        pulled = polled(load_event("x_v2_mentions_page"), MENTION_ID)
        assert identity(pulled) == identity(hooked)
        assert pulled.message_id == MENTION_ID
        assert pulled.conversation_key == f"x:tweets:{BRAND}:{CUSTOMER}"
        assert pulled.direction is Direction.INBOUND and pulled.kind is Kind.MENTION
        assert pulled.author.platform_id == CUSTOMER
        # Beyond identity, the ticket reads the same too.
        assert pulled.author == hooked.author
        assert pulled.text == hooked.text
        assert pulled.created_at == hooked.created_at == datetime(2018, 10, 10, 20, 19, 24, tzinfo=UTC)
        assert pulled.permalink == hooked.permalink
        assert pulled.parent_id is hooked.parent_id is None
        assert pulled.attachments == hooked.attachments
        # v2 adds the X conversation as the thread; the webhook's v1.1 object has none.
        assert pulled.thread_id == MENTION_ID and hooked.thread_id is None

    def test_a_reply_to_the_brand_polled_equals_the_webhook_reply(self) -> None:
        hooked = webhook_message("x_reply")
        pulled = polled(load_event("x_v2_mentions_page"), REPLY_ID)
        assert identity(pulled) == identity(hooked)
        assert pulled.kind is Kind.REPLY
        assert pulled.parent_id == hooked.parent_id == "1050100000000000001"
        assert pulled.text == hooked.text  # v2 text is whole; the webhook needed extended_tweet
        assert pulled.created_at == hooked.created_at

    def test_the_brands_own_tweet_is_outbound_on_the_customers_conversation(self) -> None:
        hooked = webhook_message("x_own_tweet")
        assert hooked.direction is Direction.OUTBOUND
        legacy = load_event("x_own_tweet")["tweet_create_events"][0]
        tweet = {
            "id": legacy["id_str"],
            "text": legacy["text"],
            "created_at": "2018-10-10T20:31:02.000Z",
            "author_id": BRAND,
            "conversation_id": MENTION_ID,
            "in_reply_to_user_id": CUSTOMER,
            "referenced_tweets": [{"type": "replied_to", "id": MENTION_ID}],
        }
        brand = {"id": BRAND, "username": "TwitterDev", "name": "Twitter Dev", "public_metrics": {"followers_count": 512292}}
        pulled = polled(page_with(tweet, [brand]), legacy["id_str"])
        assert identity(pulled) == identity(hooked)
        assert pulled.direction is Direction.OUTBOUND
        assert pulled.conversation_key == f"x:tweets:{BRAND}:{CUSTOMER}"
        assert pulled.parent_id == MENTION_ID

    def test_an_inbound_dm_polled_equals_the_webhook_dm(self) -> None:
        hooked = webhook_message("x_dm_inbound")
        pulled = polled(load_event("x_v2_dm_events_page"), "1050135671001234947", dms=True)
        assert identity(pulled) == identity(hooked)
        assert pulled.conversation_key == f"x:dm:{BRAND}:{CUSTOMER}"
        assert pulled.direction is Direction.INBOUND and pulled.kind is Kind.DIRECT_MESSAGE
        assert pulled.author == hooked.author
        assert pulled.text == hooked.text
        assert pulled.created_at == hooked.created_at  # millisecond-exact
        assert pulled.is_private

    def test_the_brands_dm_is_outbound_on_the_same_conversation(self) -> None:
        hooked = webhook_message("x_dm_outbound")
        pulled = polled(load_event("x_v2_dm_events_page"), "1050137002001234948", dms=True)
        assert identity(pulled) == identity(hooked)
        assert pulled.direction is Direction.OUTBOUND
        assert pulled.conversation_key == f"x:dm:{BRAND}:{CUSTOMER}"
        assert pulled.author.platform_id == BRAND
        assert pulled.created_at == hooked.created_at

    def test_the_brand_id_may_come_as_a_number(self) -> None:
        batch = normalize_mentions_page(load_event("x_v2_mentions_page"), brand_id=int(BRAND))  # type: ignore[arg-type]
        assert {m.account_id for m in batch.messages} == {BRAND}


# --- what is kept, what is ignored --------------------------------------------------------------


class TestMentionsPage:
    def test_retweets_are_ignored_like_on_the_webhook(self) -> None:
        batch = normalize_mentions_page(load_event("x_v2_mentions_page"), brand_id=BRAND)
        assert RETWEET_ID not in {m.message_id for m in batch.messages}
        assert batch.ignored == 1
        assert x.normalize_delivery(load_event("x_retweet")).messages == []
        assert [m.message_id for m in batch.messages] == [REPLY_ID, MENTION_ID]

    def test_a_quote_tweet_is_kept(self) -> None:
        page = load_event("x_v2_mentions_page")
        page["data"][0]["referenced_tweets"] = [{"type": "quoted", "id": "1050100000000000001"}]
        batch = normalize_mentions_page(page, brand_id=BRAND)
        assert RETWEET_ID in {m.message_id for m in batch.messages}

    def test_raw_keeps_the_v2_tweet_and_its_expansions(self) -> None:
        pulled = polled(load_event("x_v2_mentions_page"), MENTION_ID)
        assert pulled.raw["api"] == "x-v2"
        assert pulled.raw["data"]["id"] == MENTION_ID
        assert pulled.raw["includes"]["users"][0]["username"] == "furiouscamper"
        assert pulled.raw["includes"]["media"][0]["media_key"] == "3_1050118620561457152"
        json.dumps(pulled.raw)  # storable as is

    def test_a_video_uses_its_preview_image(self) -> None:
        page = load_event("x_v2_mentions_page")
        page["includes"]["media"] = [{"media_key": "3_1050118620561457152", "type": "video", "preview_image_url": "https://pbs.twimg.com/thumb.jpg"}]
        pulled = polled(page, MENTION_ID)
        assert [(a.type, a.url) for a in pulled.attachments] == [("video", "https://pbs.twimg.com/thumb.jpg")]

    def test_a_missing_author_expansion_still_gives_the_identity(self) -> None:
        page = load_event("x_v2_mentions_page")
        del page["includes"]["users"]
        pulled = polled(page, MENTION_ID)
        assert pulled.author.platform_id == CUSTOMER and pulled.author.handle is None
        assert pulled.conversation_key == f"x:tweets:{BRAND}:{CUSTOMER}"

    def test_a_malformed_tweet_is_quarantined_not_fatal(self) -> None:
        page = load_event("x_v2_mentions_page")
        del page["data"][1]["author_id"]
        batch = normalize_mentions_page(page, brand_id=BRAND)
        assert [m.message_id for m in batch.messages] == [MENTION_ID]
        assert len(batch.rejected) == 1 and batch.rejected[0].source == "x"

    def test_an_empty_page_is_an_empty_batch(self) -> None:
        batch = normalize_mentions_page({"meta": {"result_count": 0}}, brand_id=BRAND)
        assert batch.messages == [] and batch.ignored == 0 and batch.rejected == []


class TestDmEventsPage:
    def test_group_conversations_are_ignored(self) -> None:
        batch = normalize_dm_events_page(load_event("x_v2_dm_events_page"), brand_id=BRAND)
        assert [m.message_id for m in batch.messages] == ["1050137002001234948", "1050135671001234947"]
        assert batch.ignored == 1

    def test_other_event_types_are_ignored(self) -> None:
        page = load_event("x_v2_dm_events_page")
        page["data"][1]["event_type"] = "ParticipantsJoin"
        batch = normalize_dm_events_page(page, brand_id=BRAND)
        assert [m.message_id for m in batch.messages] == ["1050135671001234947"]
        assert batch.ignored == 2

    @pytest.mark.parametrize(
        ("conversation", "customer"),
        [(f"{BRAND}-{CUSTOMER}", CUSTOMER), (f"17-{BRAND}", "17"), ("1050133000001234900", None), ("17-18", None), ("", None)],
    )
    def test_the_customer_comes_from_the_one_to_one_conversation_id(self, conversation: str, customer: str | None) -> None:
        assert dm_customer(BRAND, {"dm_conversation_id": conversation}) == customer

    def test_a_dm_with_an_image(self) -> None:
        page = load_event("x_v2_dm_events_page")
        page["data"][2]["attachments"] = {"media_keys": ["3_99"]}
        page["includes"]["media"] = [{"media_key": "3_99", "type": "photo", "url": "https://ton.twimg.com/dm/99.jpg"}]
        pulled = polled(page, "1050135671001234947", dms=True)
        assert [(a.type, a.url) for a in pulled.attachments] == [("photo", "https://ton.twimg.com/dm/99.jpg")]


class TestPaginationMeta:
    def test_newest_id_comes_from_meta_or_the_data(self) -> None:
        page = load_event("x_v2_mentions_page")
        assert newest_id(page) == RETWEET_ID == page["meta"]["newest_id"]
        assert page["meta"]["next_token"]
        assert newest_id(load_event("x_v2_dm_events_page")) == "1050138000001234949"  # no newest_id in DM meta
        assert newest_id({"meta": {"result_count": 0}}) is None

    def test_ids_compare_as_numbers_not_strings(self) -> None:
        page = {"data": [{"id": "999"}, {"id": "1000"}], "meta": {}}
        assert newest_id(page) == "1000"
        assert [t["id"] for t in newer_than(page, "999")["data"]] == ["1000"]

    def test_newer_than_keeps_only_items_above_the_watermark(self) -> None:
        page = load_event("x_v2_dm_events_page")
        kept = newer_than(page, "1050135671001234947")
        assert [e["id"] for e in kept["data"]] == ["1050138000001234949", "1050137002001234948"]
        assert newer_than(page, None)["data"] == page["data"]
        assert len(page["data"]) == 3  # the original is untouched


# --- the client, without sockets -------------------------------------------------------------


class Raw:
    def __init__(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = json.dumps(body if body is not None else {"meta": {"result_count": 0}}).encode()
        self.headers = headers or {}


class Pool:
    def __init__(self, *answers: Raw) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Raw:
        self.calls.append({"method": method, "url": url, **kwargs})
        return self.answers.pop(0) if self.answers else Raw()

    def query(self, number: int) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.calls[number]["url"]).query).items()}


def api(*answers: Raw, token: str = "user-token") -> tuple[XApiClient, Pool]:
    pool = Pool(*answers)
    return XApiClient("https://api.x.com", lambda: token, pool=pool), pool


def tweets_page(*ids: str, next_token: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"result_count": len(ids)}
    if ids:
        meta.update(newest_id=ids[0], oldest_id=ids[-1])
    if next_token:
        meta["next_token"] = next_token
    return {"data": [{"id": i} for i in ids], "meta": meta}


class TestClient:
    def test_mentions_asks_for_the_documented_fields_with_the_users_token(self) -> None:
        client, pool = api(Raw(body=tweets_page("12")))
        pages = list(client.mentions(BRAND, "10"))
        assert len(pages) == 1
        call = pool.calls[0]
        assert call["method"] == "GET" and urlsplit(call["url"]).path == f"/2/users/{BRAND}/mentions"
        assert call["headers"]["Authorization"] == "Bearer user-token"
        assert pool.query(0) == {**MENTION_PARAMS, "since_id": "10", "max_results": "100"}

    def test_mentions_follow_next_token_up_to_the_page_budget(self) -> None:
        client, pool = api(
            Raw(body=tweets_page("30", "29", next_token="t" * 16)),
            Raw(body=tweets_page("28", "27", next_token="u" * 16)),
            Raw(body=tweets_page("26")),
        )
        assert [p["meta"]["result_count"] for p in client.mentions(BRAND, None, max_pages=2)] == [2, 2]
        assert len(pool.calls) == 2
        assert "pagination_token" not in pool.query(0) and pool.query(1)["pagination_token"] == "t" * 16
        assert "since_id" not in pool.query(0)

    def test_dm_events_have_no_since_id_and_stop_at_the_watermark(self) -> None:
        client, pool = api(
            Raw(body=tweets_page("50", "40", next_token="t" * 16)),
            Raw(body=tweets_page("30", "20", next_token="u" * 16)),
            Raw(body=tweets_page("10")),
        )
        pages = list(client.dm_events("35"))
        assert len(pages) == 2 and len(pool.calls) == 2
        assert pool.query(0) == {**DM_PARAMS, "max_results": "100"}

    def test_a_new_token_from_the_provider_is_used_on_the_next_request(self) -> None:
        tokens = iter(["first", "second"])
        pool = Pool(Raw(), Raw())
        client = XApiClient("https://api.x.com", lambda: next(tokens), pool=pool)
        list(client.mentions(BRAND))
        list(client.mentions(BRAND))
        assert [c["headers"]["Authorization"] for c in pool.calls] == ["Bearer first", "Bearer second"]

    def test_429_is_rate_limited_until_the_reset_header(self) -> None:
        client, _ = api(Raw(429, {"title": "Too Many Requests"}, {"x-rate-limit-reset": "1700000900", "x-rate-limit-remaining": "0"}))
        with pytest.raises(XRateLimited) as caught:
            list(client.mentions(BRAND))
        assert caught.value.reset_at == datetime.fromtimestamp(1700000900, tz=UTC)
        assert "rate limit" in str(caught.value)

    def test_a_used_up_window_stops_paging_before_the_certain_429(self) -> None:
        headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": "1700000900", "x-rate-limit-limit": "180"}
        client, pool = api(Raw(body=tweets_page("30", next_token="t" * 16), headers=headers))
        pages = client.mentions(BRAND, "1")
        assert next(pages)["meta"]["newest_id"] == "30"
        with pytest.raises(XRateLimited):
            next(pages)
        assert len(pool.calls) == 1
        assert client.rate_limits["GET /2/users/:id/mentions"].limit == 180

    @pytest.mark.parametrize(("status", "words"), [(401, "expired or revoked"), (403, "dm.read")])
    def test_auth_failures_say_what_to_fix(self, status: int, words: str) -> None:
        client, _ = api(Raw(status, {"title": "Forbidden", "detail": "client-not-enrolled", "status": status}))
        with pytest.raises(XAuthError) as caught:
            list(client.dm_events())
        assert words in str(caught.value) and caught.value.status == status
        assert "user-token" not in str(caught.value)

    def test_other_errors_carry_the_status_and_xs_detail(self) -> None:
        client, _ = api(Raw(400, {"title": "Invalid Request", "detail": "One or more parameters to your request was invalid."}))
        with pytest.raises(XApiError) as caught:
            list(client.mentions(BRAND))
        assert caught.value.status == 400 and "parameters" in str(caught.value)

    def test_no_token_is_an_auth_error_before_any_request(self) -> None:
        client, pool = api(token="")
        with pytest.raises(XAuthError, match="X_USER_ACCESS_TOKEN"):
            list(client.mentions(BRAND))
        assert pool.calls == []

    def test_the_base_url_comes_from_x_api_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("X_API_URL", "http://127.0.0.1:9/")
        assert XApiClient(token_provider=lambda: "t").base_url == "http://127.0.0.1:9"
        monkeypatch.delenv("X_API_URL")
        assert XApiClient(token_provider=lambda: "t").base_url == "https://api.x.com"


def test_fixtures_are_not_mutated_by_normalizing() -> None:
    page = load_event("x_v2_mentions_page")
    before = copy.deepcopy(page)
    normalize_mentions_page(page, brand_id=BRAND)
    normalize_dm_events_page(load_event("x_v2_dm_events_page"), brand_id=BRAND)
    assert page == before
