"""The Meta backfill end to end: the Graph sandbox over real HTTP, DynamoDB in-process (moto).

First run with the lookback, incremental runs from the watermark, a comment the
webhook delivered and the backfill found again stored once (and not counted as lost),
a comment only the backfill sees stored and counted, an expired Page token not
stopping the Instagram account, throttling pausing one source, paging followed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.channels.meta.backfill import (
    SOURCE_FB_FEED,
    SOURCE_IG_COMMENTS,
    SOURCE_IG_DMS,
    SOURCE_MESSENGER,
    BackfillReport,
    backfill_meta,
)
from chalicelib.models import Direction
from chalicelib.channels.meta import webhook as meta
from chalicelib.channels.meta.graph import GraphClient
from chalicelib.channels.x.poller import Watermarks
from chalicelib.store import MessageStore, StoreUnavailable
from chalicelib.store.table import message_from_image
from local.meta_graph_sandbox import DEFAULT_IG_TOKEN, DEFAULT_PAGE_TOKEN, IG_ACCOUNT_ID, PAGE_ID, MetaGraphSandbox

TABLE = "socialdesk-test-messages"
UTC = timezone.utc
CUSTOMER = "6001987654321012"
PSID = "7001234567890123"
IGSID = "8002345678901234"


@dataclass
class Rig:
    sandbox: MetaGraphSandbox
    graph: GraphClient
    store: MessageStore
    watermarks: Watermarks
    dynamodb: Any
    now: datetime

    def run(self, *, now: datetime | None = None, pages: tuple[str, ...] = (PAGE_ID,), igs: tuple[str, ...] = (IG_ACCOUNT_ID,),
            store: Any = None, **kwargs: Any) -> BackfillReport:
        return backfill_meta(self.graph, store or self.store, self.watermarks, page_ids=pages, ig_ids=igs,
                             now=now or self.now, **kwargs)

    def stored(self, prefix: str = "CONV#") -> dict[str, dict[str, Any]]:
        items = self.dynamodb.scan(TableName=TABLE)["Items"]
        return {i["sk"]["S"].removeprefix("MSG#"): i for i in items
                if i["pk"]["S"].startswith(prefix) and i["sk"]["S"].startswith("MSG#")}

    def mark(self, source: str, account: str) -> str | None:
        return self.watermarks.get(source, account).since_id

    def ago(self, **delta: float) -> datetime:
        return self.now - timedelta(**delta)


@pytest.fixture
def sandbox() -> Iterator[MetaGraphSandbox]:
    server = MetaGraphSandbox(page_size=2, nested_page_size=2)
    server.set_token(PAGE_ID, DEFAULT_PAGE_TOKEN)
    server.set_token(IG_ACCOUNT_ID, DEFAULT_IG_TOKEN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rig(sandbox: MetaGraphSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    # In-process moto: no endpoint override may send boto3 to a moto server elsewhere.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    tokens = {PAGE_ID: DEFAULT_PAGE_TOKEN, IG_ACCOUNT_ID: DEFAULT_IG_TOKEN}
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        graph = GraphClient(sandbox.url, token_provider=lambda account: tokens[account])
        now = datetime.now(UTC).replace(microsecond=0)
        yield Rig(sandbox, graph, MessageStore(TABLE, dynamodb), Watermarks(TABLE, dynamodb), dynamodb, now)


def seed_post(rig: Rig, *, hours_ago: float = 30) -> str:
    return rig.sandbox.add_post(PAGE_ID, created=rig.ago(hours=hours_ago))["id"]


# --- first run and incremental runs --------------------------------------------------------


def test_first_run_reads_the_lookback_window_of_every_source(rig: Rig) -> None:
    post = seed_post(rig)
    old = rig.sandbox.add_post_comment(PAGE_ID, post, "two days ago", created=rig.ago(hours=48))
    recent = rig.sandbox.add_post_comment(PAGE_ID, post, "an hour ago", created=rig.ago(hours=1))
    reply = rig.sandbox.add_post_comment(PAGE_ID, post, "a reply", created=rig.ago(minutes=30), parent_id=old["id"])
    inbound = rig.sandbox.add_conversation_message(PAGE_ID, PSID, "charged twice", created=rig.ago(hours=2))
    outbound = rig.sandbox.add_conversation_message(PAGE_ID, PSID, "looking into it", from_account=True, created=rig.ago(hours=1))
    media = rig.sandbox.add_ig_media(IG_ACCOUNT_ID, created=rig.ago(days=3))["id"]
    ig_comment = rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, media, "zipper broke", created=rig.ago(hours=3))
    ig_dm = rig.sandbox.add_conversation_message(IG_ACCOUNT_ID, IGSID, "return?", platform="instagram", created=rig.ago(hours=4))

    report = rig.run()

    assert report.errors == []
    stored = rig.stored()
    expected = {recent["id"], reply["id"], inbound["id"], outbound["id"], ig_comment["id"], ig_dm["id"]}
    assert set(stored) == expected  # the 48-hour-old comment is outside the 24 h lookback
    assert (report.found, report.stored_new, report.duplicates) == (6, 6, 0)
    assert report.stored_new_inbound == 5  # the Page's own Messenger reply is outbound
    # The reply under an older comment lands on that comment's conversation, as the webhook keys it.
    assert stored[reply["id"]]["pk"]["S"] == f"CONV#facebook:comment:{old['id']}"
    assert message_from_image(stored[outbound["id"]]).direction is Direction.OUTBOUND
    assert stored[outbound["id"]]["pk"]["S"] == f"CONV#messenger:dm:{PAGE_ID}:{PSID}"
    assert stored[ig_dm["id"]]["pk"]["S"] == f"CONV#instagram:dm:{IG_ACCOUNT_ID}:{IGSID}"
    epoch = str(int(rig.now.timestamp()))
    for source, account in ((SOURCE_FB_FEED, PAGE_ID), (SOURCE_MESSENGER, PAGE_ID),
                            (SOURCE_IG_COMMENTS, IG_ACCOUNT_ID), (SOURCE_IG_DMS, IG_ACCOUNT_ID)):
        assert rig.mark(source, account) == epoch, source
    # The token travelled in the Authorization header, never back in a URL.
    assert rig.sandbox.token_in_query_count() == 0


def test_incremental_run_reads_only_since_the_watermark(rig: Rig) -> None:
    post = seed_post(rig)
    rig.sandbox.add_post_comment(PAGE_ID, post, "first", created=rig.ago(hours=2))
    first = rig.run()
    assert first.stored_new == 1

    later = rig.now + timedelta(hours=1)
    new = rig.sandbox.add_post_comment(PAGE_ID, post, "second", created=rig.now + timedelta(minutes=20))
    dm = rig.sandbox.add_conversation_message(PAGE_ID, PSID, "hello?", created=rig.now + timedelta(minutes=30))
    second = rig.run(now=later)

    assert (second.found, second.stored_new, second.duplicates) == (2, 2, 0)
    assert {new["id"], dm["id"]} <= set(rig.stored())
    assert rig.mark(SOURCE_FB_FEED, PAGE_ID) == str(int(later.timestamp()))

    third = rig.run(now=later + timedelta(hours=1))
    assert (third.found, third.stored_new) == (0, 0)


def test_the_overlap_rereads_recent_items_as_duplicates(rig: Rig) -> None:
    post = seed_post(rig)
    rig.sandbox.add_post_comment(PAGE_ID, post, "just before the run", created=rig.ago(minutes=5))
    assert rig.run().stored_new == 1
    again = rig.run(now=rig.now + timedelta(minutes=5))
    assert (again.found, again.stored_new, again.duplicates) == (1, 0, 1)


# --- webhook and backfill together --------------------------------------------------------


def webhook_comment(post_id: str, comment: dict[str, Any], created: datetime) -> dict[str, Any]:
    """The feed webhook Meta would have sent for a sandbox comment."""
    return {"object": "page", "entry": [{"id": PAGE_ID, "time": int(created.timestamp()), "changes": [{"field": "feed", "value": {
        "item": "comment", "verb": "add", "comment_id": comment["id"], "post_id": post_id, "parent_id": post_id,
        "from": comment["from"], "message": comment["message"], "created_time": int(created.timestamp()),
        "post": {"id": post_id}}}]}]}


def test_a_comment_delivered_by_the_webhook_is_stored_once_and_not_counted_as_lost(rig: Rig) -> None:
    post = seed_post(rig)
    created = rig.ago(hours=1)
    delivered = rig.sandbox.add_post_comment(PAGE_ID, post, "delivered", created=created, from_id=CUSTOMER)
    only_backfill = rig.sandbox.add_post_comment(PAGE_ID, post, "lost webhook", created=rig.ago(minutes=40))

    webhook_batch = meta.normalize_delivery(webhook_comment(post, delivered, created))
    assert rig.store.save_messages(webhook_batch.messages) == [True]

    report = rig.run(igs=())
    assert (report.found, report.stored_new, report.duplicates) == (2, 1, 1)
    stored = rig.stored()
    assert set(stored) == {delivered["id"], only_backfill["id"]}
    # Exactly one item for the delivered comment, and it is the webhook's copy.
    items = [i for i in rig.dynamodb.scan(TableName=TABLE)["Items"] if i["sk"]["S"] == f"MSG#{delivered['id']}"]
    assert len(items) == 1
    assert '"verb":"add"' in items[0]["raw"]["S"]


def test_a_messenger_message_delivered_by_the_webhook_is_a_duplicate(rig: Rig) -> None:
    created = rig.ago(minutes=50)
    message = rig.sandbox.add_conversation_message(PAGE_ID, PSID, "hi", created=created)
    hook = meta.normalize_delivery({"object": "page", "entry": [{"id": PAGE_ID, "time": 1, "messaging": [{
        "sender": {"id": PSID}, "recipient": {"id": PAGE_ID}, "timestamp": int(created.timestamp() * 1000),
        "message": {"mid": message["id"], "text": "hi"}}]}]})
    assert rig.store.save_messages(hook.messages) == [True]
    report = rig.run(igs=())
    assert (report.found, report.stored_new, report.duplicates) == (1, 0, 1)


# --- failures --------------------------------------------------------------------------------


def test_an_expired_page_token_does_not_stop_the_instagram_account(rig: Rig) -> None:
    post = seed_post(rig)
    rig.sandbox.add_post_comment(PAGE_ID, post, "unseen for now", created=rig.ago(hours=1))
    ig_comment = rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, "17918195224117851", "still read", created=rig.ago(hours=1))
    rig.sandbox.expire_token(PAGE_ID)

    report = rig.run()

    assert [(e.account, e.source, e.kind) for e in report.errors] == [(PAGE_ID, SOURCE_FB_FEED, "auth")]
    assert "190" in report.errors[0].message and "new Page access token" in report.errors[0].message
    assert f"{SOURCE_MESSENGER}:{PAGE_ID}" in report.skipped  # same token: not tried
    assert set(rig.stored()) == {ig_comment["id"]}
    assert rig.mark(SOURCE_FB_FEED, PAGE_ID) is None and rig.mark(SOURCE_MESSENGER, PAGE_ID) is None
    assert rig.mark(SOURCE_IG_COMMENTS, IG_ACCOUNT_ID) is not None
    assert report.outcomes["auth_errors"] == 1

    # A new token: the next run reads the Page from its (unmoved) first-run window.
    rig.sandbox.set_token(PAGE_ID, DEFAULT_PAGE_TOKEN)
    healed = rig.run(now=rig.now + timedelta(minutes=10))
    assert healed.errors == [] and healed.stored_new == 1


def test_an_injected_190_is_an_auth_error_too(rig: Rig) -> None:
    rig.sandbox.inject_error(code=190, subcode=463, match="/feed")
    report = rig.run(igs=())
    assert [e.kind for e in report.errors] == ["auth"]


def test_throttling_pauses_only_that_source(rig: Rig) -> None:
    media = rig.sandbox.add_ig_media(IG_ACCOUNT_ID, created=rig.ago(hours=5))["id"]
    rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, media, "later", created=rig.ago(hours=1))
    dm = rig.sandbox.add_conversation_message(IG_ACCOUNT_ID, IGSID, "dm", platform="instagram", created=rig.ago(hours=1))
    rig.sandbox.inject_error(code=80002, match="/media", regain_minutes=12)

    report = rig.run(pages=())
    assert [(e.source, e.kind) for e in report.errors] == [(SOURCE_IG_COMMENTS, "rate_limited")]
    assert report.rate_limited_until == rig.now + timedelta(minutes=12)
    assert set(rig.stored()) == {dm["id"]}  # the DM source still ran
    assert rig.watermarks.get(SOURCE_IG_COMMENTS, IG_ACCOUNT_ID).paused_until == rig.now + timedelta(minutes=12)

    skipped = rig.run(pages=(), now=rig.now + timedelta(minutes=5))
    assert f"{SOURCE_IG_COMMENTS}:{IG_ACCOUNT_ID}" in skipped.skipped
    resumed = rig.run(pages=(), now=rig.now + timedelta(minutes=13))
    assert resumed.errors == [] and resumed.stored_new == 1


def test_a_store_failure_leaves_the_watermark(rig: Rig) -> None:
    post = seed_post(rig)
    rig.sandbox.add_post_comment(PAGE_ID, post, "x", created=rig.ago(hours=1))

    class BrokenStore:
        table_name = TABLE

        def save_messages(self, messages: list[Any]) -> list[bool]:
            raise StoreUnavailable("could not store message: ProvisionedThroughputExceededException")

        def quarantine(self, rejected: Any) -> None:
            pass

    report = rig.run(igs=(), store=BrokenStore())
    assert [(e.source, e.kind) for e in report.errors] == [(SOURCE_FB_FEED, "store")]
    assert rig.mark(SOURCE_FB_FEED, PAGE_ID) is None
    assert rig.run(igs=()).stored_new == 1


def test_a_comment_dynamodb_refuses_is_quarantined_and_the_run_goes_on(rig: Rig) -> None:
    post = seed_post(rig)
    # A comment id of 400 three-byte characters: its message key is over DynamoDB's
    # 1024-byte sort key limit, so it can never be written.
    odd = rig.sandbox.add_post_comment(PAGE_ID, post, "never delivered", comment_id="評" * 400, created=rig.ago(hours=2))
    fine = rig.sandbox.add_post_comment(PAGE_ID, post, "refund please", created=rig.ago(hours=1))
    dm = rig.sandbox.add_conversation_message(PAGE_ID, PSID, "charged twice", created=rig.ago(hours=1))

    report = rig.run()

    assert report.errors == [] and report.quarantined == 1
    assert {fine["id"], dm["id"]} <= set(rig.stored()) and odd["id"] not in rig.stored()
    [kept] = [i for i in rig.dynamodb.scan(TableName=TABLE)["Items"] if i["pk"]["S"] == "QUARANTINE#facebook"]
    assert "DynamoDB refused it" in kept["error"]["S"] and "never delivered" in kept["raw"]["S"]
    assert rig.mark(SOURCE_FB_FEED, PAGE_ID) is not None  # the source is done, not retried forever


def test_a_graph_outage_is_recorded_per_account(rig: Rig) -> None:
    rig.sandbox.inject_error(code=2, match="/conversations", count=5)
    report = rig.run()
    assert sorted((e.source, e.kind) for e in report.errors) == [(SOURCE_IG_DMS, "graph"), (SOURCE_MESSENGER, "graph")]
    assert rig.mark(SOURCE_FB_FEED, PAGE_ID) is not None and rig.mark(SOURCE_MESSENGER, PAGE_ID) is None


# --- paging ------------------------------------------------------------------------------------


def test_paging_is_followed_for_posts_comments_conversations_and_messages(rig: Rig) -> None:
    posts = [seed_post(rig, hours_ago=30 - n) for n in range(5)]  # 3 feed pages of 2
    comments = [rig.sandbox.add_post_comment(PAGE_ID, posts[0], f"c{n}", created=rig.ago(minutes=60 - n)) for n in range(5)]
    for n, post in enumerate(posts[1:]):
        rig.sandbox.add_post_comment(PAGE_ID, post, f"on post {n}", created=rig.ago(minutes=90 - n))
    messages = [rig.sandbox.add_conversation_message(PAGE_ID, f"70000000000{n}", f"m{n}", created=rig.ago(minutes=50 - n))
                for n in range(3)]
    thread = [rig.sandbox.add_conversation_message(PAGE_ID, PSID, f"t{n}", created=rig.ago(minutes=40 - n)) for n in range(5)]
    media = rig.sandbox.add_ig_media(IG_ACCOUNT_ID, created=rig.ago(hours=2))["id"]
    ig_comments = [rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, media, f"ig{n}", created=rig.ago(minutes=30 - n)) for n in range(5)]

    report = rig.run()

    assert report.errors == [] and report.truncated == []
    expected = {c["id"] for c in comments} | {m["id"] for m in messages + thread} | {c["id"] for c in ig_comments}
    stored = set(rig.stored())
    assert expected <= stored
    assert report.stored_new == len(stored) == len(expected) + 4
    counts = rig.sandbox.request_counts
    assert counts["page.feed"] == 3
    assert counts["object.comments"] >= 2 + 2  # post comments (5 by 2) and IG comments (5 by 2)
    assert counts["conversations"] >= 2 and counts["conversation.messages"] >= 2
    assert rig.sandbox.token_in_query_count() == 0


def test_the_page_budget_bounds_a_run_and_is_reported(rig: Rig) -> None:
    for n in range(6):
        post = seed_post(rig, hours_ago=10 - n)
        rig.sandbox.add_post_comment(PAGE_ID, post, f"c{n}", created=rig.ago(minutes=30 - n))
    report = rig.run(igs=(), max_pages=2)
    assert rig.sandbox.request_counts["page.feed"] == 2
    assert report.found == 4  # the 4 newest posts' comments


def test_a_nested_budget_running_out_is_reported_as_truncated(rig: Rig) -> None:
    post = seed_post(rig)
    for n in range(7):
        rig.sandbox.add_post_comment(PAGE_ID, post, f"c{n}", created=rig.ago(minutes=60 - n))
    graph = GraphClient(rig.sandbox.url, token_provider=lambda _: DEFAULT_PAGE_TOKEN, nested_max_pages=1)
    report = backfill_meta(graph, rig.store, rig.watermarks, page_ids=(PAGE_ID,), ig_ids=(), now=rig.now)
    assert report.found == 4  # 2 embedded + 1 further page of 2, newest first
    assert report.truncated == [f"{SOURCE_FB_FEED}:{PAGE_ID}"]
    assert report.outcomes["truncated"] == 1


def test_old_comments_stop_the_nested_paging(rig: Rig) -> None:
    post = seed_post(rig)
    for n in range(6):
        rig.sandbox.add_post_comment(PAGE_ID, post, f"old{n}", created=rig.ago(hours=48 - n))
    for n in range(2):
        rig.sandbox.add_post_comment(PAGE_ID, post, f"new{n}", created=rig.ago(minutes=30 - n))
    report = rig.run(igs=())
    assert report.found == 2
    # Newest first: the embedded page holds the 2 new ones; one more page shows old ones, then paging stops.
    assert rig.sandbox.request_counts["object.comments"] == 1
