"""The helpdesk's shared rate budget: several Lambdas, one DynamoDB item (moto, in-process)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.helpdesks.budget import (
    OVERALL,
    UPDATES,
    USER_CREATES,
    Bucket,
    RateBudget,
    bucket_for,
    buckets_from_env,
    share_from_env,
)
from chalicelib.ops.metrics import helpdesk_budget
from chalicelib.store import message_from_image
from chalicelib.sync.tickets import inbound_in_sync_order

TABLE = "socialdesk-test-messages"
T0 = 1_780_000_000.0
ZENDESK_PROFESSIONAL = [Bucket(OVERALL, 400), Bucket(UPDATES, 100), Bucket(USER_CREATES, 60)]


class SerializedClient:
    """The moto client, one call at a time. DynamoDB applies a conditional write to an item
    atomically; moto checks and writes in two steps that threads could interleave."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            with self._lock:
                self.calls.append(name)
                return method(**kwargs)

        return call


class Clock:
    """A frozen clock that only ``sleep`` moves (shared by the simulated Lambdas)."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[SerializedClient]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield SerializedClient(client)


def lambda_budget(dynamodb: Any, clock: Clock, **settings: Any) -> RateBudget:
    """One Lambda container's budget (each has its own local allowance)."""
    options: dict[str, Any] = {"helpdesk": "zendesk", "buckets": ZENDESK_PROFESSIONAL, "clock": clock, "sleep": clock.sleep}
    return RateBudget(TABLE, dynamodb, **{**options, **settings})


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` within any half-open span of ``window`` seconds."""
    times = sorted(times)
    most, start = 0, 0
    for end, moment in enumerate(times):
        while times[start] <= moment - window:
            start += 1
        most = max(most, end - start + 1)
    return most


# --- never more than the budget ---------------------------------------------------------


def test_threads_acquiring_at_once_never_get_more_than_the_budget_in_any_period(dynamodb: SerializedClient) -> None:
    """Six threads, each its own "Lambda", race for 40 requests a second of which 16 are ticket
    updates (limits 50 and 20 per 1 s period, share 0.8), in real time for 2.5 s."""
    buckets = [Bucket(OVERALL, 50, period_seconds=1.0), Bucket(UPDATES, 20, period_seconds=1.0)]
    seen = threading.local()

    def clock() -> float:
        # What the budget last read in this thread: when it handed the request out.
        seen.now = time.time()
        return float(seen.now)

    sent: dict[str, list[float]] = {OVERALL: [], UPDATES: []}
    refused = [0]
    record = threading.Lock()
    stop_at = time.time() + 2.5

    def lambda_worker(seed: int) -> None:
        budget = RateBudget(
            TABLE,
            dynamodb,
            helpdesk="zendesk",
            buckets=buckets,
            burst_seconds=0.1,
            hold_seconds=0.1,
            lookahead_seconds=0.3,
            clock=clock,
        )
        pick = random.Random(seed)
        while time.time() < stop_at:
            bucket = UPDATES if pick.random() < 0.5 else OVERALL
            if budget.acquire(bucket, wait_up_to=0.2):
                with record:
                    sent[OVERALL].append(seen.now)
                    if bucket == UPDATES:
                        sent[UPDATES].append(seen.now)
            else:
                refused[0] += 1

    threads = [threading.Thread(target=lambda_worker, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most_in_any_window(sent[OVERALL], 1.0) <= 40
    assert most_in_any_window(sent[UPDATES], 1.0) <= 16
    # ... and the budget is used, not refused: at least half of what 2.5 s allow (about 86 and 34).
    assert len(sent[OVERALL]) >= 50 and len(sent[UPDATES]) >= 17


def test_lambdas_in_any_interleaving_stay_within_the_plans_budget_and_use_most_of_it(dynamodb: SerializedClient) -> None:
    """Zendesk Professional (400 a minute, updates 100, share 0.8) over 5 simulated minutes:
    eight Lambdas asking for 10 requests a second for 45 s of each minute, then a lull, never
    exceed 320 (updates 80) in any 60 s."""
    clock = Clock()
    lambdas = [lambda_budget(dynamodb, clock) for _ in range(8)]
    pick = random.Random(7)
    sent: dict[str, list[float]] = {OVERALL: [], UPDATES: []}
    attempts = 0
    while clock.now < T0 + 300:
        if (clock.now - T0) % 60 >= 45:
            clock.sleep(1.0)
            continue
        attempts += 1
        budget = pick.choice(lambdas)
        bucket = UPDATES if pick.random() < 0.3 else OVERALL
        if budget.acquire(bucket, wait_up_to=pick.choice([0.0, 0.0, 2.0])):
            sent[OVERALL].append(clock.now)
            if bucket == UPDATES:
                sent[UPDATES].append(clock.now)
        clock.sleep(0.1)

    assert most_in_any_window(sent[OVERALL], 60.0) <= 320
    assert most_in_any_window(sent[UPDATES], 60.0) <= 80
    # Most of what 45 s allow is used: a full bucket (16) and 45 s of refill (about 4.9 a second);
    # some tokens taken ahead expire in a Lambda that gets no request in time.
    assert len(sent[OVERALL]) >= 0.85 * 5 * (16 + 45 * 4.9)
    # Asking for twice the budget, eight Lambdas race for every token: a write that finds the
    # item moved by another is the price of learning it. Chunks of future tokens keep that to
    # less than one write per request asked (taking one token per write, the budget made 1.15
    # per request asked, 1.9 per request sent). Unsaturated, a write serves several: the busy
    # Lambda's test below.
    assert len(dynamodb.calls) <= 0.9 * attempts
    assert len(dynamodb.calls) <= 1.5 * len(sent[OVERALL])


# --- waiting, pausing, slowing down -----------------------------------------------------


def test_waiting_gives_up_after_wait_up_to_without_taking_anything(dynamodb: SerializedClient) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    taken = 0
    while budget.acquire(USER_CREATES, wait_up_to=0):  # the user-creation bucket, drained
        taken += 1
    assert taken >= 1

    started = clock.now
    assert budget.acquire(USER_CREATES, wait_up_to=0.2) is False
    assert clock.now - started <= 0.2
    wait = budget.retry_after(USER_CREATES)
    assert 0.2 < wait < 2.0  # 48 a minute: about one every 1.3 s

    assert budget.acquire(USER_CREATES, wait_up_to=wait + 0.01) is True
    assert clock.now - started == pytest.approx(wait, abs=0.01)
    assert budget.usage[USER_CREATES].refused == 2  # the one that ended the draining, and that one


def test_a_429_pauses_every_lambda_until_retry_after(dynamodb: SerializedClient) -> None:
    clock = Clock()
    first, second = lambda_budget(dynamodb, clock), lambda_budget(dynamodb, clock)
    assert second.acquire(wait_up_to=0)

    assert first.observe({"Retry-After": "30", "X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "0"}, status=429) == 30

    # The other Lambda last saw a full bucket; the shared item stops it all the same.
    assert second.acquire(wait_up_to=5) is False
    assert second.retry_after() == pytest.approx(30, abs=1)
    assert second.acquire(wait_up_to=40) is True
    assert clock.now >= T0 + 30


def test_plain_text_429s_without_retry_after_back_off_exponentially_across_lambdas(dynamodb: SerializedClient) -> None:
    clock = Clock()
    first, second = lambda_budget(dynamodb, clock), lambda_budget(dynamodb, clock)
    body = b"Too Many Requests"
    assert first.observe({}, status=429, body=body) == 5
    clock.sleep(5)
    assert second.observe({}, status=429, body=body) == 10
    clock.sleep(10)
    assert first.observe({}, status=429, body=body) == 20
    clock.sleep(300)  # a quiet while: the count starts again
    assert second.observe({}, status=429, body=body) == 5


def test_a_429_about_one_ticket_pauses_nothing_shared(dynamodb: SerializedClient) -> None:
    clock = Clock()
    first, second = lambda_budget(dynamodb, clock), lambda_budget(dynamodb, clock)
    body = b"Rate limit for ticket updates exceeded, please wait before updating this ticket again"
    assert first.observe({"Retry-After": "93"}, status=429, bucket=UPDATES, body=body) == 93
    assert second.acquire(UPDATES, wait_up_to=0) is True


def test_an_update_limit_429_pauses_updates_only(dynamodb: SerializedClient) -> None:
    clock = Clock()
    first, second = lambda_budget(dynamodb, clock), lambda_budget(dynamodb, clock)
    first.observe({"Retry-After": "20", "X-Rate-Limit-Remaining": "350"}, status=429, bucket=UPDATES)
    assert second.acquire(UPDATES, wait_up_to=0) is False
    assert second.acquire(OVERALL, wait_up_to=0) is True


def test_headers_saying_few_remain_slow_every_lambda_down(dynamodb: SerializedClient) -> None:
    clock = Clock()
    told, other = lambda_budget(dynamodb, clock), lambda_budget(dynamodb, clock)
    told.observe({"X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "10", "ratelimit-reset": "30"}, status=200)

    sent = 0
    while clock.now < T0 + 30:
        sent += other.acquire(wait_up_to=1.0)
        clock.sleep(0.1)
    assert sent <= 8  # share 0.8 of the 10 left until the reset

    # Without the warning the same 30 s give far more.
    fresh_clock = Clock()
    unwarned = lambda_budget(dynamodb, fresh_clock, helpdesk="freshdesk")
    sent = 0
    while fresh_clock.now < T0 + 30:
        sent += unwarned.acquire(wait_up_to=1.0)
        fresh_clock.sleep(0.1)
    assert sent > 100


def test_plenty_remaining_writes_nothing(dynamodb: SerializedClient) -> None:
    budget = lambda_budget(dynamodb, Clock())
    budget.observe({"X-Rate-Limit": "400", "X-Rate-Limit-Remaining": "390"}, status=200)
    assert budget.writes == 0 and dynamodb.calls == []


def test_an_account_limit_below_the_configured_one_is_used(dynamodb: SerializedClient) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    budget.observe({"X-Rate-Limit": "200", "X-Rate-Limit-Remaining": "199"}, status=200)  # a Team plan, not Professional
    sent: list[float] = []
    while clock.now < T0 + 180:
        if budget.acquire(wait_up_to=1.0):
            sent.append(clock.now)
        clock.sleep(0.05)
    assert most_in_any_window(sent, 60.0) <= 160
    assert len(sent) >= 2 * 140  # and close to it: a Professional budget would allow twice as much


def test_an_endpoint_header_with_nothing_left_slows_its_bucket(dynamodb: SerializedClient) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    budget.observe({"zendesk-ratelimit-tickets-update": "total=100; remaining=0; resets=40"}, status=200, bucket=UPDATES)
    assert budget.acquire(UPDATES, wait_up_to=30) is False
    assert budget.acquire(OVERALL, wait_up_to=0) is True
    # A per-ticket window (10 minutes) is not the bucket's: ignored.
    other = lambda_budget(dynamodb, clock, helpdesk="other")
    other.observe({"zendesk-ratelimit-ticket-user": "total=30; remaining=0; resets=600"}, status=200, bucket=UPDATES)
    assert other.acquire(UPDATES, wait_up_to=0) is True


# --- what it costs, what it publishes, where it lives -------------------------------------


def test_a_busy_lambda_writes_once_per_several_requests_and_a_lone_request_once(dynamodb: SerializedClient) -> None:
    clock = Clock()
    busy = lambda_budget(dynamodb, clock)
    for _ in range(200):  # a request every 0.25 s: 240 a minute, under the 320 budget
        assert busy.acquire(wait_up_to=1.0)
        clock.sleep(0.25)
    assert busy.writes / 200 <= 0.2

    lone = lambda_budget(dynamodb, clock, helpdesk="freshdesk")
    for _ in range(5):
        assert lone.acquire(wait_up_to=0)
        clock.sleep(30)
    assert lone.writes == 5


def test_tokens_a_lambda_took_ahead_and_never_used_are_reported(dynamodb: SerializedClient) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    for _ in range(8):  # busy: later takes come in chunks sized by its demand
        assert budget.acquire(wait_up_to=1.0)
        clock.sleep(0.1)
    clock.sleep(10)  # then quiet: what it still held expires
    assert budget.acquire(wait_up_to=1.0)
    figures, writes = budget.take_figures()
    assert figures[OVERALL].unused > 0 and writes < 9
    assert budget.take_figures()[0][OVERALL].unused == 0  # counted once


def test_a_ticket_update_takes_from_both_buckets_in_one_write(dynamodb: SerializedClient) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    assert budget.acquire(UPDATES, wait_up_to=0)
    assert dynamodb.calls == ["update_item"]
    item = dynamodb._client.get_item(TableName=TABLE, Key={"pk": {"S": "BUDGET#zendesk"}, "sk": {"S": "BUDGET"}})["Item"]
    assert {"empty_at_overall", "empty_at_updates"} <= set(item)
    assert budget.usage[UPDATES].requests == 1 and budget.usage[OVERALL].requests == 1


def test_budget_items_are_skipped_by_the_ticket_sync(dynamodb: SerializedClient) -> None:
    budget = lambda_budget(dynamodb, Clock())
    budget.acquire(wait_up_to=0)
    item = dynamodb._client.get_item(TableName=TABLE, Key={"pk": {"S": "BUDGET#zendesk"}, "sk": {"S": "BUDGET"}})["Item"]
    assert item["item_type"] == {"S": "budget"}
    assert message_from_image(item) is None
    records = [{"eventName": name, "dynamodb": {"NewImage": item}} for name in ("INSERT", "MODIFY")]
    assert inbound_in_sync_order(records) == []


def test_published_metrics_say_the_fraction_used_and_the_waits(
    dynamodb: SerializedClient, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    budget = lambda_budget(dynamodb, clock)
    for _ in range(32):
        budget.acquire(wait_up_to=10)

    helpdesk_budget(budget)  # ops.metrics: one EMF line per bucket used, one for the writes
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    overall = next(line for line in lines if line.get("bucket") == OVERALL)
    assert overall["helpdesk_budget_used"] == [pytest.approx(32 / 320)]
    assert overall["helpdesk_budget_wait_seconds"][0] > 0  # 32 is more than the 3 s burst holds
    assert overall["helpdesk"] == "zendesk"
    assert not any(line.get("bucket") == UPDATES for line in lines)  # no update was asked for
    assert next(line for line in lines if "helpdesk_budget_writes" in line)["helpdesk_budget_writes"][0] >= 1

    helpdesk_budget(budget)
    assert capsys.readouterr().out.strip() == ""  # counted once: nothing new, nothing emitted


def test_requests_map_to_their_buckets() -> None:
    assert bucket_for("zendesk", "PUT", "/api/v2/tickets/123") == UPDATES
    assert bucket_for("zendesk", "PUT", "/api/v2/tickets/update_many?ids=1,2") == UPDATES
    assert bucket_for("zendesk", "POST", "/api/v2/users/create_or_update") == USER_CREATES
    assert bucket_for("zendesk", "POST", "/api/v2/tickets") == OVERALL
    assert bucket_for("zendesk", "GET", "/api/v2/tickets/123") == OVERALL
    assert bucket_for("freshdesk", "POST", "/api/v2/tickets") == UPDATES
    assert bucket_for("freshdesk", "POST", "/api/v2/tickets/7/notes") == UPDATES
    assert bucket_for("freshdesk", "POST", "/api/v2/contacts") == OVERALL


def test_limits_come_from_the_environment_or_the_plan_defaults() -> None:
    assert buckets_from_env("zendesk", {}) == ZENDESK_PROFESSIONAL
    assert buckets_from_env("freshdesk", {}) == [Bucket(OVERALL, 400), Bucket(UPDATES, 160)]
    env = {"HELPDESK_RATE_PER_MINUTE": "2500", "HELPDESK_UPDATES_PER_MINUTE": "300", "HELPDESK_USER_CREATES_PER_MINUTE": ""}
    assert buckets_from_env("zendesk", env) == [Bucket(OVERALL, 2500), Bucket(UPDATES, 300)]
    assert share_from_env({}) == 0.8 and share_from_env({"HELPDESK_RATE_SHARE": "0.5"}) == 0.5
    assert buckets_from_env("zendesk", {"HELPDESK_RATE_PER_MINUTE": "0"}) == []  # turned off
    with pytest.raises(ValueError):
        buckets_from_env("zendesk", {"HELPDESK_UPDATES_PER_MINUTE": "-5"})
