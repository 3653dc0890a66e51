"""The X poller end to end: the X sandbox over real HTTP, DynamoDB in-process (moto).

First run, incremental runs with since_id, pagination, a tweet/DM delivered by both
the webhook and the poller stored once, rate limits leaving the watermark alone,
and the watermark never moving backwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.models import Direction
from chalicelib.channels.x import webhook as x
from chalicelib.channels.x.api import XApiClient, XAuthError
from chalicelib.channels.x.poller import SOURCE_X_DMS, SOURCE_X_MENTIONS, PollReport, Watermarks, poll_x, watermark_pk
from chalicelib.store import MessageStore
from chalicelib.store.table import message_from_image
from local.x_sandbox import DEFAULT_TOKEN, XSandbox
from tests.support.events import load_event

BRAND = "2244994945"
CUSTOMER = "3001969357"
TABLE = "socialdesk-test-messages"
UTC = timezone.utc


@dataclass
class Rig:
    sandbox: XSandbox
    client: XApiClient
    store: MessageStore
    watermarks: Watermarks
    dynamodb: Any

    def poll(self, *, now: datetime | None = None, dms: bool = True) -> PollReport:
        return poll_x(self.client, self.store, self.watermarks, brand_id=BRAND, now=now or datetime.now(UTC), dms=dms)

    def mark(self, source: str = SOURCE_X_MENTIONS) -> str | None:
        return self.watermarks.get(source, BRAND).since_id

    def message_items(self, prefix: str = "CONV#") -> list[dict[str, Any]]:
        items = self.dynamodb.scan(TableName=TABLE)["Items"]
        return [i for i in items if i["pk"]["S"].startswith(prefix) and i["sk"]["S"].startswith("MSG#")]

    def stored_ids(self, prefix: str = "CONV#") -> set[str]:
        return {i["sk"]["S"].removeprefix("MSG#") for i in self.message_items(prefix)}


@pytest.fixture
def sandbox() -> Iterator[XSandbox]:
    server = XSandbox(page_size=3).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rig(sandbox: XSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    # In-process moto: no endpoint override may send boto3 to a moto server elsewhere.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client = XApiClient(sandbox.url, lambda: DEFAULT_TOKEN)
        yield Rig(sandbox, client, MessageStore(TABLE, dynamodb), Watermarks(TABLE, dynamodb), dynamodb)


def seed_mentions(sandbox: XSandbox, count: int, start: int = 0) -> list[str]:
    return [sandbox.add_mention(f"@TwitterDev help #{start + n}", username="furiouscamper", name="Jordan")["id"] for n in range(count)]


# --- mentions -------------------------------------------------------------------------------


def test_first_run_imports_only_the_newest_page_and_sets_the_watermark(rig: Rig) -> None:
    ids = seed_mentions(rig.sandbox, 5)  # page size 3: the two oldest are history we skip

    report = rig.poll(dms=False)

    assert report.mentions == 3 and report.stored == 3 and report.duplicates == 0
    assert rig.stored_ids() == set(ids[-3:])
    assert rig.mark() == ids[-1] == report.advanced[SOURCE_X_MENTIONS]
    calls = rig.sandbox.requests_to("/mentions")
    assert len(calls) == 1 and "since_id" not in calls[0]["query"] and calls[0]["query"]["max_results"] == "100"
    item = rig.message_items()[0]
    assert item["pk"]["S"] == f"CONV#x:tweets:{BRAND}:{CUSTOMER}"


def test_the_next_run_asks_only_for_newer_tweets(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 2)
    rig.poll(dms=False)
    first_mark = rig.mark()
    newer = seed_mentions(rig.sandbox, 2, start=2)

    report = rig.poll(dms=False)

    assert report.stored == 2 and report.duplicates == 0
    assert rig.sandbox.requests_to("/mentions")[-1]["query"]["since_id"] == first_mark
    assert rig.mark() == newer[-1]
    # Nothing new: one request, nothing stored, the watermark stays.
    quiet = rig.poll(dms=False)
    assert (quiet.mentions, quiet.stored, quiet.advanced) == (0, 0, {})
    assert rig.mark() == newer[-1]


def test_many_new_tweets_are_fetched_page_by_page(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    mark = rig.mark()
    newer = seed_mentions(rig.sandbox, 7, start=1)  # 3 + 3 + 1

    report = rig.poll(dms=False)

    assert report.stored == 7 and report.truncated == []
    calls = rig.sandbox.requests_to("/mentions")[-3:]
    assert [c["query"].get("since_id") for c in calls] == [mark] * 3
    assert "pagination_token" not in calls[0]["query"] and all("pagination_token" in c["query"] for c in calls[1:])
    assert rig.stored_ids() >= set(newer)
    assert rig.mark() == newer[-1]  # the newest of the first page, not of the last


def test_retweets_are_not_stored_and_the_brands_replies_are_outbound(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    rt = rig.sandbox.add_mention("RT @TwitterDev: news", username="furiouscamper", retweet_of="1050100000000000001")
    own = rig.sandbox.add_mention(
        "@furiouscamper @TwitterDev support here", author_id=BRAND, in_reply_to_user_id=CUSTOMER, replied_to="1"
    )

    report = rig.poll(dms=False)

    assert report.ignored == 1 and report.stored == 1
    assert rt["id"] not in rig.stored_ids()
    item = next(i for i in rig.message_items() if i["sk"]["S"] == f"MSG#{own['id']}")
    assert message_from_image(item).direction is Direction.OUTBOUND
    assert item["pk"]["S"] == f"CONV#x:tweets:{BRAND}:{CUSTOMER}"
    assert rig.mark() == own["id"]  # ignored or not, everything fetched is behind the watermark


# --- the crux: webhook and poller deliver the same tweet ----------------------------------


def seed_fixture_tweet(sandbox: XSandbox) -> None:
    """The tweet of ``x_mention.json``, as X v2 would serve it."""
    sandbox.add_user(CUSTOMER, "furiouscamper", "Jordan Brinks", followers=15200)
    sandbox.add_mention(
        "@TwitterDev my flight voucher code doesn't work, 3rd time asking https://t.co/QpKwgs9H4y",
        author_id=CUSTOMER,
        tweet_id="1050118621198921728",
        created_ms=1539202764000,
        media=[{"media_key": "3_1050118620561457152", "type": "photo", "url": "https://pbs.twimg.com/media/DpLhHB7U8AA5Tjq.jpg"}],
    )


def seed_fixture_dm(sandbox: XSandbox) -> None:
    """The DM of ``x_dm_inbound.json``, as X v2 would serve it (same event id: shared across APIs)."""
    sandbox.add_user(CUSTOMER, "furiouscamper", "Jordan Brinks", followers=22)
    sandbox.add_dm("DMing as asked: booking ref QX7P2L", sender_id=CUSTOMER, event_id="1050135671001234947", created_ms=1539206828011)


def test_a_tweet_from_the_webhook_then_the_poller_is_stored_once(rig: Rig) -> None:
    webhook = x.normalize_delivery(load_event("x_mention"))
    assert rig.store.save_messages(webhook.messages) == [True]
    seed_fixture_tweet(rig.sandbox)

    report = rig.poll(dms=False)

    assert (report.mentions, report.stored, report.duplicates) == (1, 0, 1)
    items = rig.message_items()
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in items] == [(f"CONV#x:tweets:{BRAND}:{CUSTOMER}", "MSG#1050118621198921728")]
    assert rig.mark() == "1050118621198921728"  # duplicates still advance the watermark


def test_a_tweet_from_the_poller_then_the_webhook_is_stored_once(rig: Rig) -> None:
    seed_fixture_tweet(rig.sandbox)
    assert rig.poll(dms=False).stored == 1

    webhook = x.normalize_delivery(load_event("x_mention"))
    assert rig.store.save_messages(webhook.messages) == [False]
    assert len(rig.message_items()) == 1
    stored = rig.store.get_message(f"x:tweets:{BRAND}:{CUSTOMER}", "1050118621198921728")
    assert stored is not None and stored.author.handle == "furiouscamper" and stored.text == webhook.messages[0].text


def test_a_dm_from_both_paths_is_stored_once(rig: Rig) -> None:
    webhook = x.normalize_delivery(load_event("x_dm_inbound"))
    assert rig.store.save_messages(webhook.messages) == [True]
    seed_fixture_dm(rig.sandbox)

    report = rig.poll()

    assert (report.dms, report.stored, report.duplicates) == (1, 0, 1)
    assert rig.stored_ids(f"CONV#x:dm:{BRAND}:{CUSTOMER}") == {"1050135671001234947"}
    assert rig.mark(SOURCE_X_DMS) == "1050135671001234947"


# --- direct messages ------------------------------------------------------------------------


def test_dms_first_run_then_only_new_events_both_directions(rig: Rig) -> None:
    for n in range(4):
        rig.sandbox.add_dm(f"old {n}", sender_id=CUSTOMER, username="furiouscamper")
    first = rig.poll()
    assert first.dms == 3  # one page on a new install
    mark = rig.mark(SOURCE_X_DMS)

    answer = rig.sandbox.add_dm("on it", sender_id=BRAND, recipient_id=CUSTOMER)
    question = rig.sandbox.add_dm("thanks!", sender_id=CUSTOMER)
    group = rig.sandbox.add_dm("group hello", sender_id=CUSTOMER, conversation_id="1050133000001234900")

    report = rig.poll()

    assert (report.dms, report.stored, report.ignored) == (2, 2, 1)
    dm_calls = rig.sandbox.requests_to("/dm_events")
    assert all("since_id" not in c["query"] for c in dm_calls)
    assert len(dm_calls) == 3  # 1 on the first run; then [group, question, answer] and [old3 (the watermark)...]
    assert rig.mark(SOURCE_X_DMS) == group["id"] != mark
    items = {i["sk"]["S"]: i for i in rig.message_items(f"CONV#x:dm:{BRAND}:{CUSTOMER}")}
    assert message_from_image(items[f"MSG#{answer['id']}"]).direction is Direction.OUTBOUND
    assert message_from_image(items[f"MSG#{question['id']}"]).direction is Direction.INBOUND


def test_dm_paging_stops_at_the_watermark(rig: Rig) -> None:
    rig.sandbox.add_dm("first", sender_id=CUSTOMER)
    rig.poll()
    for n in range(7):
        rig.sandbox.add_dm(f"new {n}", sender_id=CUSTOMER)
    before = len(rig.sandbox.requests_to("/dm_events"))

    report = rig.poll()

    assert report.dms == 7 and report.stored == 7 and report.truncated == []
    # pages of 3: [n6 n5 n4] [n3 n2 n1] [n0 first] -> the third page reaches the watermark
    assert len(rig.sandbox.requests_to("/dm_events")) - before == 3


# --- rate limits and failures ---------------------------------------------------------------


def test_a_rate_limit_leaves_the_watermark_and_pauses_until_the_reset(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    mark = rig.mark()
    newer = seed_mentions(rig.sandbox, 2, start=1)
    reset = int(time.time()) + 900
    rig.sandbox.inject(429, match="/mentions", reset=reset)

    now = datetime.now(UTC)
    report = rig.poll(now=now, dms=False)

    assert report.rate_limited_until == datetime.fromtimestamp(reset, tz=UTC)
    assert report.stored == 0 and rig.mark() == mark
    assert rig.watermarks.get(SOURCE_X_MENTIONS, BRAND).paused_until == datetime.fromtimestamp(reset, tz=UTC)

    # Before the reset: no request at all.
    calls = len(rig.sandbox.requests_to("/mentions"))
    skipped = rig.poll(now=now + timedelta(minutes=2), dms=False)
    assert skipped.skipped == [SOURCE_X_MENTIONS] and len(rig.sandbox.requests_to("/mentions")) == calls

    # After it: fetched from the old watermark, nothing lost.
    after = rig.poll(now=datetime.fromtimestamp(reset + 1, tz=UTC), dms=False)
    assert after.stored == 2 and rig.mark() == newer[-1]
    assert rig.sandbox.requests_to("/mentions")[-1]["query"]["since_id"] == mark
    assert rig.watermarks.get(SOURCE_X_MENTIONS, BRAND).paused_until is None


def test_a_window_used_up_mid_pagination_keeps_what_was_read_and_refetches_the_rest(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    mark = rig.mark()
    newer = seed_mentions(rig.sandbox, 5, start=1)
    rig.sandbox.rate_limit = len(rig.sandbox.requests_to("/mentions")) + 1  # one more request in this window

    report = rig.poll(dms=False)

    assert report.stored == 3 and report.rate_limited_until is not None
    assert rig.mark() == mark  # a gap below the first page: the watermark may not move
    rig.sandbox.rate_limit = 450
    again = rig.poll(now=report.rate_limited_until + timedelta(seconds=1), dms=False)
    assert (again.stored, again.duplicates) == (2, 3)
    assert rig.mark() == newer[-1]


def test_a_tweet_dynamodb_refuses_is_quarantined_and_the_watermark_moves_on(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    # An author id of 700 three-byte characters: the conversation's key is over DynamoDB's
    # 2048-byte partition key limit, so this tweet can never be written.
    odd = rig.sandbox.add_mention("@TwitterDev my order never came", author_id="評" * 700, username="odd")
    fine = seed_mentions(rig.sandbox, 1, start=1)

    report = rig.poll(dms=False)

    assert (report.mentions, report.stored, report.duplicates, report.quarantined) == (2, 1, 0, 1)
    assert fine[0] in rig.stored_ids() and odd["id"] not in rig.stored_ids()
    [kept] = [i for i in rig.dynamodb.scan(TableName=TABLE)["Items"] if i["pk"]["S"] == "QUARANTINE#x"]
    assert "DynamoDB refused it" in kept["error"]["S"] and "my order never came" in kept["raw"]["S"]
    assert rig.mark() == fine[0]  # not fetched again and again: the next run starts after it
    assert rig.poll(dms=False).mentions == 0


def test_a_rate_limit_on_dms_does_not_stop_mentions(rig: Rig) -> None:
    ids = seed_mentions(rig.sandbox, 1)
    rig.sandbox.add_dm("hello", sender_id=CUSTOMER)
    rig.sandbox.inject(429, match="/dm_events", reset=int(time.time()) + 60)

    report = rig.poll()

    assert report.mentions == 1 and report.dms == 0 and report.rate_limited_until is not None
    assert rig.mark() == ids[0] and rig.mark(SOURCE_X_DMS) is None


def test_a_bad_token_raises_and_moves_nothing(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.client = XApiClient(rig.sandbox.url, lambda: "revoked")
    with pytest.raises(XAuthError, match="401"):
        rig.poll()
    assert rig.mark() is None and rig.message_items() == []


# --- the watermark itself --------------------------------------------------------------------


def test_the_watermark_never_moves_backwards(rig: Rig) -> None:
    now = datetime.now(UTC)
    marks = rig.watermarks
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "999", now=now) is True
    # "1000" < "999" as strings; as numbers it is higher and must win.
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "1000", now=now) is True
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "999", now=now) is False
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "1000", now=now) is False
    assert rig.mark() == "1000"
    # 64-bit snowflakes compare exactly (DynamoDB numbers keep 38 digits).
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "18446744073709551614", now=now) is True
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "18446744073709551613", now=now) is False
    assert marks.advance(SOURCE_X_MENTIONS, BRAND, "18446744073709551615", now=now) is True
    assert rig.mark() == "18446744073709551615"
    with pytest.raises(ValueError):
        marks.advance(SOURCE_X_MENTIONS, BRAND, "12a", now=now)


def test_a_slow_overlapping_run_cannot_pull_the_watermark_back(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    slow_view = rig.mark()
    newer = seed_mentions(rig.sandbox, 2, start=1)
    rig.poll(dms=False)  # the fast run gets to the newest
    assert rig.mark() == newer[-1]
    # The slow run, which only saw up to newer[0], finishes last.
    assert rig.watermarks.advance(SOURCE_X_MENTIONS, BRAND, newer[0], now=datetime.now(UTC)) is False
    assert rig.mark() == newer[-1] != slow_view


def test_watermarks_are_per_source_and_account_in_the_one_table(rig: Rig) -> None:
    now = datetime.now(UTC)
    rig.watermarks.advance(SOURCE_X_MENTIONS, BRAND, "5", now=now)
    rig.watermarks.advance(SOURCE_X_DMS, BRAND, "7", now=now)
    rig.watermarks.advance(SOURCE_X_MENTIONS, "42", "9", now=now)
    item = rig.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": watermark_pk(SOURCE_X_MENTIONS, BRAND)}, "sk": {"S": "WATERMARK"}})["Item"]
    assert item["pk"]["S"] == f"WATERMARK#x_mentions#{BRAND}"
    assert item["since_id"] == {"S": "5"} and item["since_num"] == {"N": "5"} and "updated_at" in item
    assert (rig.mark(), rig.mark(SOURCE_X_DMS), rig.watermarks.get(SOURCE_X_MENTIONS, "42").since_id) == ("5", "7", "9")


def test_close_to_the_lambda_timeout_the_run_stops_between_pages_without_advancing(rig: Rig) -> None:
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    mark = rig.mark()
    newer = seed_mentions(rig.sandbox, 5, start=1)
    before = len(rig.sandbox.requests_to("/mentions"))

    report = poll_x(rig.client, rig.store, rig.watermarks, brand_id=BRAND, remaining_seconds=lambda: 5.0)

    assert report.interrupted == [SOURCE_X_MENTIONS, SOURCE_X_DMS]
    assert len(rig.sandbox.requests_to("/mentions")) - before == 1 and rig.sandbox.requests_to("/dm_events") == []
    assert report.stored == 3 and rig.mark() == mark
    resumed = rig.poll(dms=False)
    assert (resumed.stored, resumed.duplicates) == (2, 3) and rig.mark() == newer[-1]


def test_a_page_budget_below_the_backlog_is_reported(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    import chalicelib.channels.x.poller as polling

    monkeypatch.setattr(polling, "MENTION_PAGES_PER_RUN", 2)
    seed_mentions(rig.sandbox, 1)
    rig.poll(dms=False)
    newer = seed_mentions(rig.sandbox, 8, start=1)

    report = rig.poll(dms=False)

    assert report.truncated == [SOURCE_X_MENTIONS] and report.stored == 6
    assert rig.mark() == newer[-1]  # X serves newest first: what is left is older than the budget reached


def test_the_sandbox_refuses_what_x_refuses(sandbox: XSandbox) -> None:
    import json
    import urllib.error
    import urllib.request

    def get(path: str, token: str = DEFAULT_TOKEN) -> tuple[int, dict[str, Any], Any]:
        request = urllib.request.Request(sandbox.url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, dict(answer.headers), json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    assert get("/2/dm_events?since_id=5")[0] == 400  # X's dm_events has no since_id
    assert get(f"/2/users/{BRAND}/mentions?max_results=4")[0] == 400
    status, _, body = get(f"/2/users/{BRAND}/mentions", token="wrong")
    assert status == 401 and body["title"] == "Unauthorized"
    status, headers, body = get(f"/2/users/{BRAND}/mentions?max_results=5")
    assert status == 200 and body == {"meta": {"result_count": 0}}
    assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= {h.lower() for h in headers}
    assert get(f"/2/users/{BRAND}/mentions?pagination_token=notavalidtoken00")[0] == 400
