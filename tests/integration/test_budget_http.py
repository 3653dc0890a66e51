"""The shared helpdesk budget over real HTTP: the Zendesk sandbox answers, moto's server
holds the table two "Lambdas" (two budgets, two adapters) share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from chalicelib.helpdesks import outcomes
from chalicelib.helpdesks.base import HelpdeskUnavailable
from chalicelib.helpdesks.budget import OVERALL, UPDATES, USER_CREATES, Bucket, RateBudget
from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
from chalicelib.models import Author, Platform
from local.zendesk_sandbox import ZendeskSandbox

EMAIL, TOKEN = "agent@sandbox.test", "sandbox-token"
T0 = 1_780_000_000.0


class Clock:
    """Budget time, moved by hand (the HTTP is real, the waiting is not)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


@pytest.fixture
def sandbox() -> Iterator[ZendeskSandbox]:
    sandbox = ZendeskSandbox(host="127.0.0.1", port=0, email=EMAIL, api_token=TOKEN).start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def table(moto_url: str) -> Iterator[tuple[str, Any]]:
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    name = "socialdesk-budget-http"
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name, client
    client.delete_table(TableName=name)
    outcomes.forget_budgets()


def one_lambda(table: tuple[str, Any], clock: Clock) -> RateBudget:
    name, client = table
    buckets = [Bucket(OVERALL, 400), Bucket(UPDATES, 100), Bucket(USER_CREATES, 60)]
    return RateBudget(name, client, helpdesk="zendesk", buckets=buckets, wait_up_to=5.0, clock=clock, sleep=clock.sleep)


def test_a_429_with_retry_after_pauses_another_lambda_sharing_the_table(sandbox: ZendeskSandbox, table: Any) -> None:
    clock = Clock()
    first, second = one_lambda(table, clock), one_lambda(table, clock)
    zendesk = ZendeskHelpdesk(sandbox.url, EMAIL, TOKEN)
    author = Author(platform_id="4242", display_name="Ana")
    sandbox.inject(match="GET /api/v2/tickets", status=429, retry_after=30)

    outcomes.use_budget("zendesk", first)  # the first Lambda reads a ticket: the account is over its limit
    with pytest.raises(HelpdeskUnavailable) as rate_limited:
        zendesk.ticket_status("1")
    assert rate_limited.value.retry_after == 30
    sent = sandbox.stats()["total"]

    outcomes.use_budget("zendesk", second)  # another Lambda, which never saw that answer
    with pytest.raises(HelpdeskUnavailable) as held_back:
        zendesk.ensure_requester(Platform.X, author)
    assert "budget" in str(held_back.value) and not held_back.value.maybe_applied
    assert held_back.value.retry_after == pytest.approx(30, abs=1)
    assert clock.now == T0  # refused at once: its 5 s of waiting could not have been enough
    assert sandbox.stats()["total"] == sent  # not sent: the helpdesk is not asked again
    assert sandbox.stats()["users"] == 0

    clock.sleep(30)
    assert zendesk.ensure_requester(Platform.X, author)  # the pause is over
    assert sandbox.stats()["users"] == 1 and sandbox.stats()["total"] == sent + 1
    assert second.usage[USER_CREATES].refused == 1 and second.usage[USER_CREATES].requests == 1


def test_without_a_budget_requests_go_straight_through(sandbox: ZendeskSandbox, table: Any) -> None:
    sandbox.inject(match="GET /api/v2/tickets", status=429, retry_after=30)
    zendesk = ZendeskHelpdesk(sandbox.url, EMAIL, TOKEN)
    outcomes.use_budget("zendesk", None)
    with pytest.raises(HelpdeskUnavailable):
        zendesk.ticket_status("1")
    assert zendesk.ensure_requester(Platform.X, Author(platform_id="1"))  # nothing holds it back


def test_the_sync_waits_out_a_pause_another_lambda_recorded_and_creates_the_ticket_once(stack: Any) -> None:
    """Another Lambda got a 429 (Retry-After 60); this one's sync never asks Zendesk during
    the pause: held back like a 429, it waits as for one and then creates the ticket once."""
    from tests.integration.test_end_to_end import _messenger

    def one_lambda_on_the_stack() -> RateBudget:
        return RateBudget(
            stack.resources.table_name,
            stack.dynamodb,
            helpdesk="zendesk",
            buckets=[Bucket(OVERALL, 400), Bucket(UPDATES, 100), Bucket(USER_CREATES, 60)],
            clock=stack.time.now,
            sleep=stack.time.sleep,
        )

    other = one_lambda_on_the_stack()
    assert other.observe({"Retry-After": "60", "X-Rate-Limit-Remaining": "0"}, status=429) == 60
    outcomes.use_budget("zendesk", one_lambda_on_the_stack())
    paused_at = stack.time.now()

    stack.post_webhook("meta", _messenger("m_budget_1", "7777900", "is anyone there?"))
    stack.sync()

    assert len(stack.tickets()) == 1
    assert stack.sandbox.stats()["faults_fired"] == 0  # never a 429 from Zendesk itself
    assert stack.time.now() - paused_at >= 60  # the sync waited the pause out (its waits are skipped, not lost)
    ticket_requests = sum(count for name, count in stack.sandbox.stats()["requests"].items() if "tickets" in name)
    assert ticket_requests == 1, stack.sandbox.stats()["requests"]
