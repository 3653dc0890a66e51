"""Known customers, end to end over HTTP: webhook -> table -> stream sync -> Zendesk sandbox.

The requester of a customer who writes with a phone number or an email is the helpdesk user
who already holds it (agents see the whole history), the same person on two platforms is one
requester once an identity is shared, and a name alone never joins two people.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local import samples
from local.defaults import LOCAL_SECRETS
from tests.integration.conftest import Stack, http
from tests.integration.test_freshdesk_flow import API_KEY, FreshdeskStack, fd_stack  # noqa: F401  (fixture)

APPFOLLOW_SECRET = "whsec_bG9jYWwtYXBwZm9sbG93LXNpZ25pbmctc2VjcmV0IQ=="


def requester_of(stack: Stack, key: str) -> int:
    [ticket] = stack.ticket_for(key)
    return int(ticket["requester_id"])


def whatsapp_customer(stack: Stack, run: str) -> str:
    """The sample WhatsApp customer (``+1650555<run>``) writes; their conversation key."""
    for route, payload in samples.whatsapp(run)[:2]:
        assert stack.post_webhook(route, payload).status == 200
    stack.sync()
    return f"whatsapp:dm:{samples.WA_PHONE_NUMBER_ID}:1650555{run}"


def test_a_whatsapp_customer_lands_on_the_existing_user_with_that_phone(stack: Stack) -> None:
    crm = stack.sandbox.add_end_user("Priya Shah", phone="+16505554101", email="priya@example.com", external_id="crm-778")
    key = whatsapp_customer(stack, "4101")

    assert requester_of(stack, key) == crm["id"]  # her earlier tickets and the new one, on one user
    user = next(u for u in stack.sandbox.users() if u["id"] == crm["id"])
    assert user["external_id"] == "crm-778"  # the company's own id is never overwritten
    assert not [u for u in stack.sandbox.users() if (u["external_id"] or "").startswith("whatsapp:")]


def test_the_same_name_with_another_number_is_another_person(stack: Stack) -> None:
    namesake = stack.sandbox.add_end_user("Priya Shah", phone="+14155550000")
    key = whatsapp_customer(stack, "4102")

    requester = requester_of(stack, key)
    assert requester != namesake["id"]
    user = next(u for u in stack.sandbox.users() if u["id"] == requester)
    assert user["phone"] == "+16505554102" and user["external_id"] == "whatsapp:16505554102"


def test_a_number_two_users_share_is_never_guessed(stack: Stack) -> None:
    first = stack.sandbox.add_end_user("Sam Lee", phone="+16505554103")
    second = stack.sandbox.add_end_user("Alex Lee", phone="+16505554103")  # a family's landline
    key = whatsapp_customer(stack, "4103")
    assert requester_of(stack, key) not in (first["id"], second["id"])


def test_whatsapp_then_telegram_with_the_same_phone_is_one_requester(stack: Stack) -> None:
    key = whatsapp_customer(stack, "4104")
    chat = 55014104
    contact = {"update_id": 940141, "message": {
        "message_id": 1, "date": 1764770000, "chat": {"id": chat, "type": "private", "first_name": "Priya"},
        "from": {"id": chat, "is_bot": False, "first_name": "Priya"},
        "contact": {"phone_number": "16505554104", "first_name": "Priya", "user_id": chat}}}
    assert stack.post_webhook("telegram", contact).status == 200
    stack.sync()
    [telegram_ticket] = [t for t in stack.tickets() if (t.get("external_id") or "").startswith("telegram:")]
    assert int(telegram_ticket["requester_id"]) == requester_of(stack, key)


def test_someone_elses_contact_card_is_not_the_senders_phone(stack: Stack) -> None:
    owner = stack.sandbox.add_end_user("Mum", phone="+16505554105")
    chat = 55014105
    card = {"update_id": 940151, "message": {
        "message_id": 1, "date": 1764770000, "chat": {"id": chat, "type": "private", "first_name": "Kid"},
        "from": {"id": chat, "is_bot": False, "first_name": "Kid"},
        "contact": {"phone_number": "+16505554105", "first_name": "Mum", "user_id": 999}}}
    assert stack.post_webhook("telegram", card).status == 200
    stack.sync()
    [ticket] = [t for t in stack.tickets() if (t.get("external_id") or "").startswith("telegram:")]
    assert int(ticket["requester_id"]) != owner["id"]


def _generic(source: str, item_id: str, email: str) -> dict[str, Any]:
    return {"type": "review.created", "timestamp": "2026-12-01T09:31:02Z", "data": {
        "id": item_id, "kind": "review", "text": "The mug was in pieces.", "rating": 2,
        "created_at": "2026-12-01T09:30:00Z", "author": {"id": f"{source}-{item_id}", "name": "Jane Doe", "email": email},
        "account_id": "acme"}}


def test_two_sources_with_the_same_email_are_one_requester(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENERIC_WEBHOOK_SECRET_APPFOLLOW", APPFOLLOW_SECRET)
    secrets = {**LOCAL_SECRETS, "GENERIC_WEBHOOK_SECRET_APPFOLLOW": APPFOLLOW_SECRET}
    for source, item in (("trustpilot", "r-4106"), ("appfollow", "a-4106")):
        body = json.dumps(_generic(source, item, "Jane.Doe@Example.com" if source == "appfollow" else "jane.doe@example.com")).encode()
        answer = http("POST", f"{stack.app_url}/webhooks/generic/{source}", body, samples.sign(f"generic/{source}", body, secrets))
        assert answer.status == 200, answer.body
    stack.sync()

    tickets = [t for t in stack.tickets() if (t.get("external_id") or "").startswith("other:")]
    assert len(tickets) == 2 and len({t["requester_id"] for t in tickets}) == 1
    [user] = [u for u in stack.sandbox.users() if u["id"] == tickets[0]["requester_id"]]
    assert user["email"] == "jane.doe@example.com"


def test_an_x_handle_becomes_a_twitter_identity(stack: Stack) -> None:
    run = "4107"
    assert stack.post_webhook(*samples.x_events(run)[0]).status == 200
    stack.sync()
    [ticket] = [t for t in stack.tickets() if (t.get("external_id") or "").startswith("x:")]
    identities = stack.sandbox.identities(ticket["requester_id"])
    assert [(i["type"], i["value"]) for i in identities] == [("twitter", "mo_travels")]


# --- Freshdesk -------------------------------------------------------------------------------


def test_freshdesk_a_whatsapp_customer_lands_on_the_contact_with_that_phone(fd_stack: FreshdeskStack) -> None:  # noqa: F811
    auth = "Basic " + base64.b64encode(f"{API_KEY}:X".encode()).decode()
    body = json.dumps({"name": "Priya Shah", "phone": "+16505554108", "email": "priya@example.com"}).encode()
    made = http("POST", f"{fd_stack.sandbox.url}/api/v2/contacts", body, {"Authorization": auth, "Content-Type": "application/json"})
    assert made.status == 201, made.body
    key = whatsapp_customer(fd_stack, "4108")

    [ticket] = fd_stack.ticket_for(key)
    assert ticket["requester_id"] == made.body["id"]
    assert len(fd_stack.sandbox.contacts()) == 1  # no second contact for the same person


def _whatsapp_burst(stack: Stack, numbers: list[str]) -> dict[str, int]:
    """One delivery with a message from each number, drained as the deployed stream would be;
    each number's requester."""
    import boto3

    import app as lambda_app
    from local.stream_poller import StreamPoller

    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550783881", "phone_number_id": samples.WA_PHONE_NUMBER_ID},
             "contacts": [{"profile": {"name": f"Customer {n}"}, "wa_id": number} for n, number in enumerate(numbers)],
             "messages": [{"from": number, "id": f"wamid.BURST{number}", "timestamp": "1764770000", "type": "text",
                           "text": {"body": "My flight was cancelled"}} for number in numbers]}
    delivery = {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}]}
    assert stack.post_webhook("meta", delivery).status == 200
    StreamPoller(boto3.client("dynamodbstreams"), stack.resources.stream_arn, lambda_app.sync_tickets,
                 batch_size=lambda_app.SYNC_BATCH_SIZE).drain()
    return {number: requester_of(stack, f"whatsapp:dm:{samples.WA_PHONE_NUMBER_ID}:{number}") for number in numbers}


def test_a_burst_of_whatsapp_customers_finds_the_known_one_and_creates_the_rest_in_bulk(stack: Stack) -> None:
    known = stack.sandbox.add_end_user("Priya Shah", phone="+16505554200")
    numbers = [f"16505554{200 + n}" for n in range(20)]
    requesters = _whatsapp_burst(stack, numbers)

    assert requesters[numbers[0]] == known["id"]
    assert len(set(requesters.values())) == 20  # everyone else is a person of their own
    requests = stack.sandbox.stats()["requests"]
    assert requests.get("POST /api/v2/users/create_or_update", 0) == 0  # the others were upserted in bulk,
    assert requests.get("POST /api/v2/users/create_or_update_many", 0) == 1
    assert requests.get("GET /api/v2/users/search", 0) == 1  # the twenty numbers in one search,
    assert requests.get("GET /api/v2/users/{user_id}/identities", 0) == 1  # the one user it found checked
    phones = {u["phone"] for u in stack.sandbox.users() if u["id"] in requesters.values()}
    assert phones == {f"+{number}" for number in numbers}  # each with their number


def test_known_customers_in_a_burst_of_new_ones_cost_no_request_per_new_author(stack: Stack) -> None:
    numbers = [f"1650556{4300 + n}" for n in range(150)]  # two searches: a hundred numbers each
    priya = stack.sandbox.add_end_user("Priya Shah", phone=f"+{numbers[0]}", external_id="crm-1")
    omar = stack.sandbox.add_end_user("Omar Haddad", phone="+442071838750")
    stack.sandbox.add_identity(omar["id"], "phone_number", f"+{numbers[1]}")  # his second number
    family = [stack.sandbox.add_end_user(name, phone=f"+{numbers[2]}") for name in ("Sam Lee", "Alex Lee")]
    agent = stack.sandbox.add_end_user("Maria Agent", phone=f"+{numbers[3]}", role="agent")
    assert family[1]["shared_phone_number"] is True  # Zendesk shares the number rather than refuse it

    requesters = _whatsapp_burst(stack, numbers)

    assert requesters[numbers[0]] == priya["id"] and requesters[numbers[1]] == omar["id"]
    assert requesters[numbers[2]] not in {user["id"] for user in family}  # a shared number is never guessed
    assert requesters[numbers[3]] != agent["id"]  # nor an agent's
    assert len(set(requesters.values())) == len(numbers)
    requests = stack.sandbox.stats()["requests"]
    assert requests.get("GET /api/v2/users/search", 0) == 2
    assert requests.get("GET /api/v2/users/{user_id}/identities", 0) == 5  # the five users holding a number, once each
    assert requests.get("POST /api/v2/users/create_or_update", 0) == 0
    assert requests.get("POST /api/v2/users/create_or_update_many", 0) == 2
    assert next(u for u in stack.sandbox.users() if u["id"] == priya["id"])["external_id"] == "crm-1"


def test_one_search_asks_for_many_numbers_and_another_for_many_emails(stack: Stack) -> None:
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
    from chalicelib.sync.requesters import EMAIL, PHONE, ContactIdentity
    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN

    jane = stack.sandbox.add_end_user("Jane Doe", email="jane.doe@example.com", phone="+16505554401")
    wanted = [ContactIdentity(EMAIL, "jane.doe@example.com"), ContactIdentity(EMAIL, "nobody@example.com"),
              ContactIdentity(PHONE, "+16505554401"), ContactIdentity(PHONE, "+16505554402"),
              ContactIdentity(PHONE, "+1650555440")]  # a prefix of Jane's number: partial search hits are checked
    holders = ZendeskHelpdesk(stack.sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).identity_holders(wanted)

    assert holders == {wanted[0]: {str(jane["id"])}, wanted[1]: set(), wanted[2]: {str(jane["id"])}, wanted[3]: set(),
                       wanted[4]: set()}
    assert stack.sandbox.stats()["requests"].get("GET /api/v2/users/search") == 2  # emails and phones asked apart


def test_a_search_answer_of_several_pages_is_read_to_its_end(stack: Stack) -> None:
    from chalicelib.helpdesks.zendesk.adapter import ZendeskHelpdesk
    from chalicelib.sync.requesters import PHONE, ContactIdentity
    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN

    numbers = [f"+1650557{4500 + n}" for n in range(100)]
    owners = [stack.sandbox.add_end_user(f"Customer {n}", phone=number) for n, number in enumerate(numbers)]
    sharers = [stack.sandbox.add_end_user(f"Relative {n}", phone=number) for n, number in enumerate(numbers[:20])]
    wanted = [ContactIdentity(PHONE, number) for number in numbers]
    holders = ZendeskHelpdesk(stack.sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).identity_holders(wanted)

    # 120 users answer the one query: the second page's relatives keep their numbers from being adopted.
    assert stack.sandbox.stats()["requests"].get("GET /api/v2/users/search") == 2
    shared = {wanted[n]: {str(owners[n]["id"]), str(sharers[n]["id"])} for n in range(20)}
    assert holders == {**{wanted[n]: {str(owners[n]["id"])} for n in range(20, 100)}, **shared}
