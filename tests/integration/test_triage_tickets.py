"""Triage end to end: signed webhooks in, the real sync with the follow-the-sun rules file,
tickets created over HTTP in the Zendesk sandbox (checked against Zendesk's published spec by
the stack) and read back over HTTP with their priority, group, brand, SLA tag and triage note;
noise stored but never ticketed. Freshdesk: the adapter's priority, group and due dates as its
sandbox keeps them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.helpdesks.base import TicketRouting
from chalicelib.helpdesks.freshdesk.adapter import FreshdeskHelpdesk
from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.triage.rules import RULES_DIR, Triage, load_rules
from local.defaults import SANDBOX_FRESHDESK_API_KEY, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN
from local.freshdesk_sandbox import FreshdeskSandbox
from tests.integration.conftest import Stack, http
from tests.support.events import load_event

# Thursday 14:00 UTC: New York (09:00) is the first English group open; Madrid is open too.
THURSDAY_AFTERNOON = datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc).timestamp()
SPANISH_GROUP, AMERICAS_GROUP = 360000000101, 360000000201


@pytest.fixture
def triaged(stack: Stack) -> Stack:
    """The stack's sync with triage on, ruled by the follow-the-sun example file."""
    from chalicelib import wiring
    from chalicelib.sync.tickets import TicketSync

    rules = Triage(load_rules(RULES_DIR / "examples" / "follow-the-sun.json"), clock=lambda: THURSDAY_AFTERNOON)
    sync = TicketSync(
        wiring.message_store(),
        wiring.helpdesk(),
        wiring.dead_letters(),
        sleep=stack.time.sleep,
        clock=stack.time.now,
        triage=rules,
    )
    wiring.override("sync", sync)
    return stack


def _zendesk(stack: Stack, path: str) -> Any:
    credentials = base64.b64encode(f"{SANDBOX_ZENDESK_EMAIL}/token:{SANDBOX_ZENDESK_TOKEN}".encode()).decode()
    answer = http("GET", f"{stack.sandbox.url}{path}", headers={"Authorization": f"Basic {credentials}"})
    assert answer.status == 200, answer.body
    return answer.body


def _ticket_of(stack: Stack, conversation_key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (summary,) = stack.ticket_for(conversation_key)
    ticket = _zendesk(stack, f"/api/v2/tickets/{summary['id']}.json")["ticket"]
    comments = _zendesk(stack, f"/api/v2/tickets/{summary['id']}/comments.json")["comments"]
    return ticket, comments


def _x_mention(text: str) -> dict[str, Any]:
    event = load_event("x_mention")
    event["tweet_create_events"][0]["text"] = text
    event["tweet_create_events"][0]["display_text_range"] = [0, len(text)]
    event["tweet_create_events"][0]["user"]["followers_count"] = 182_000
    return event


def test_an_angry_public_post_from_a_large_audience_lands_urgent_in_the_open_group(triaged: Stack) -> None:
    angry = "@TwitterDev this is a disgrace, my voucher doesn't work and nobody answers. Worst airline ever"
    assert triaged.post_webhook("x", _x_mention(angry)).status == 200
    triaged.sync()

    from chalicelib import wiring

    key = next(k for k in {t.get("external_id") for t in triaged.tickets()} if k)
    ticket, comments = _ticket_of(triaged, key)
    assert ticket["priority"] == "urgent"  # negative, public, 182,000 followers (from X's user object)
    assert ticket["group_id"] == AMERICAS_GROUP and ticket["brand_id"] == 360000000001
    assert {"sla_first_reply_1h", "priority_urgent", "lang_en"} <= set(ticket["tags"])
    assert ticket["tags"][:3] == ["socialdesk", "x", "mention"]  # the adapter's own tags come first and stay
    customer, note = comments
    assert customer["public"] and "voucher" in customer["body"]
    assert not note["public"]
    assert note["body"].startswith("Triage: English · negative (\u2212")
    assert "182k followers · public" in note["body"]
    assert "Priority urgent · group Social care Americas · first reply within 1h" in note["body"]
    state = wiring.message_store().get_conversation(key).triage
    assert state is not None and state["ticket"]["priority"] == "urgent"
    assert state["signals"]["reach"] == 182_000 and state["signals"]["language"] == "en"


def test_a_spanish_complaint_goes_to_the_spanish_group(triaged: Stack) -> None:
    event = load_event("meta_whatsapp_text")
    event["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = (
        "Mi pedido llegó roto y nadie me responde. Es una vergüenza, quiero el reembolso"
    )
    assert triaged.post_webhook("meta", event).status == 200
    triaged.sync()

    (summary,) = triaged.tickets()
    ticket, comments = _ticket_of(triaged, summary["external_id"])
    assert ticket["group_id"] == SPANISH_GROUP and ticket["brand_id"] == 360000000002
    assert ticket["priority"] == "high"  # wants a refund (the "cancel" list)
    assert {"sla_first_reply_4h", "lang_es", "kw_cancel"} <= set(ticket["tags"])
    assert comments[-1]["body"].startswith("Triage: Spanish · negative")
    assert "· private · keywords: cancel" in comments[-1]["body"]

    # A follow-up: its signals replace the first message's on the conversation; the ticket's stay.
    from chalicelib import wiring

    later = load_event("meta_whatsapp_text")
    sent = later["entry"][0]["changes"][0]["value"]["messages"][0]
    sent["id"], sent["timestamp"], sent["text"]["body"] = "wamid.FOLLOWUP", str(int(sent["timestamp"]) + 60), "Gracias, ya llegó"
    assert triaged.post_webhook("meta", later).status == 200
    triaged.sync()
    state = wiring.message_store().get_conversation(summary["external_id"]).triage
    assert state is not None and state["message_id"] == "wamid.FOLLOWUP"
    assert state["signals"]["keywords"] == [] and state["ticket"]["group_id"] == str(SPANISH_GROUP)
    assert len(_ticket_of(triaged, summary["external_id"])[1]) == 3  # the comment, the note, the follow-up


def test_a_tag_only_comment_is_stored_as_noise_and_opens_no_ticket_until_a_real_message_follows(triaged: Stack) -> None:
    from chalicelib import wiring

    tags_only = load_event("meta_instagram_comment")
    value = tags_only["entry"][0]["changes"][0]["value"]
    value["text"] = "@amigo1 @amiga2 👀"
    assert triaged.post_webhook("meta", tags_only).status == 200
    triaged.sync()
    assert triaged.tickets() == []
    store = wiring.message_store()
    (noise,) = [m for key in _conversation_keys(triaged) for m in store.conversation_messages(key)]
    assert store.noise_reason(noise.conversation_key, noise.message_id) == "tags only"

    # A real reply under it (the same thread): it opens the ticket; the noise stays stored, off the ticket.
    real = load_event("meta_instagram_comment")
    value = real["entry"][0]["changes"][0]["value"]
    value["id"], value["parent_id"] = "17865799348089040", noise.message_id
    value["from"], value["text"] = {"id": "8001765432109877", "username": "amigo1"}, "Same here: the zipper broke after two days."
    assert triaged.post_webhook("meta", real).status == 200
    triaged.sync()
    ticket, comments = _ticket_of(triaged, noise.conversation_key)
    assert [c["body"] for c in comments if c["public"]] == [comments[0]["body"]]
    assert "zipper" in comments[0]["body"] and "@amiga2" not in " ".join(c["body"] for c in comments)
    assert len(store.conversation_messages(noise.conversation_key)) == 2


def test_a_burst_opened_in_bulk_gets_the_same_triage_and_its_noise_no_ticket(triaged: Stack) -> None:
    """Twelve new public conversations in one stream batch: the batch stage opens them through
    create_many, each with its priority, group and SLA tag; the tag-only one is left to the
    single path, which stores it as noise."""
    import boto3

    import app as lambda_app
    from chalicelib import wiring
    from local.stream_poller import StreamPoller

    texts = [f"Order {n} arrived broken and nobody answers" for n in range(10)]
    texts += ["Mi pedido 10 llegó roto y nadie contesta", "@amigo1 @amiga2"]
    changes = [
        {"field": "comments", "value": {"from": {"id": f"80017654321{n:05d}", "username": f"user{n}"},
                                        "media": {"id": "17918195224117851"}, "id": f"178657993480{n:05d}", "text": text}}
        for n, text in enumerate(texts)
    ]  # fmt: skip
    event = {"object": "instagram", "entry": [{"id": "17841405726653026", "time": 1742668000, "changes": changes}]}
    assert triaged.post_webhook("meta", event).status == 200
    StreamPoller(boto3.client("dynamodbstreams"), triaged.resources.stream_arn, lambda_app.sync_tickets, batch_size=1000).drain()

    assert triaged.sandbox.stats()["requests"].get("POST /api/v2/tickets/create_many", 0) >= 1
    tickets = {t["external_id"]: t for t in triaged.tickets()}
    assert len(tickets) == 11
    for n, text in enumerate(texts[:11]):
        ticket = _zendesk(triaged, f"/api/v2/tickets/{tickets[f'instagram:comment:178657993480{n:05d}']['id']}.json")["ticket"]
        assert ticket["priority"] == "high", text  # angry in public
        assert "sla_first_reply_1h" in ticket["tags"]
        assert ticket["group_id"] == (SPANISH_GROUP if n == 10 else AMERICAS_GROUP)
    noise_key = "instagram:comment:17865799348000011"
    assert noise_key not in tickets
    assert wiring.message_store().noise_reason(noise_key, "17865799348000011") == "tags only"


def test_instagram_reach_comes_from_the_profile_lookup_and_its_cache(stack: Stack) -> None:
    """Instagram sends no follower count: the profile lookup that names a DM's author reads
    it too (one Graph call per person, kept with the name) and the ticket shows it."""
    from chalicelib import wiring
    from chalicelib.channels.meta.graph import GraphClient, instagram_profile
    from chalicelib.sync.profiles import ProfileLookup
    from chalicelib.sync.tickets import TicketSync
    from local.meta_graph_sandbox import MetaGraphSandbox

    ig_account, ig_page, customer = "17841405726653026", "448242228374517", "8002765432109876"
    graph = MetaGraphSandbox()
    graph.set_token(ig_page, "page-token")
    graph.add_user_profile(ig_page, customer, platform="instagram", name="Lena K.", username="lena.k", follower_count=48_200)
    graph.start()
    try:
        client = GraphClient(graph.url, token_provider=lambda _account: "page-token")
        source = {Platform.INSTAGRAM: lambda m: instagram_profile(client, m, {ig_account: ig_page})}
        lookup = ProfileLookup(stack.resources.table_name, stack.dynamodb, sources=source)
        rules = Triage(
            load_rules(RULES_DIR / "examples" / "follow-the-sun.json"), reach=lookup.reach, clock=lambda: THURSDAY_AFTERNOON
        )
        sync = TicketSync(
            wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), sleep=stack.time.sleep, clock=stack.time.now,
            profiles=lookup, triage=rules,
        )  # fmt: skip
        wiring.override("sync", sync)
        for n, text in enumerate(["Hi, my parcel never arrived", "Order 5521, still nothing"]):
            dm = {"object": "instagram", "entry": [{"id": ig_account, "time": 1742668000000 + n, "messaging": [{
                "sender": {"id": customer}, "recipient": {"id": ig_account}, "timestamp": 1742668000000 + n * 1000,
                "message": {"mid": f"aWdfZAG-reach-{n}", "text": text}}]}]}  # fmt: skip
            assert stack.post_webhook("meta", dm).status == 200
            stack.sync()
        assert graph.request_counts["user.profile"] == 1  # the name and the reach: one call, cached
    finally:
        graph.stop()
    (summary,) = stack.tickets()
    _, comments = _ticket_of(stack, summary["external_id"])
    assert "48.2k followers · private" in comments[1]["body"]
    assert wiring.message_store().get_conversation(summary["external_id"]).triage["signals"]["reach"] == 48_200  # type: ignore[index]


def test_a_broken_detector_opens_the_ticket_untriaged(stack: Stack) -> None:
    from chalicelib import wiring
    from chalicelib.sync.tickets import TicketSync
    from chalicelib.triage.keywords import KeywordLists
    from chalicelib.triage.signals import SignalReader

    def broken(_text: str) -> str | None:
        raise OSError("the language model is missing from the package")

    reader = SignalReader(KeywordLists({}), detect_language=broken)
    rules = Triage(load_rules(RULES_DIR / "examples" / "follow-the-sun.json"), reader=reader, clock=lambda: THURSDAY_AFTERNOON)
    sync = TicketSync(wiring.message_store(), wiring.helpdesk(), wiring.dead_letters(), sleep=stack.time.sleep, triage=rules)
    wiring.override("sync", sync)
    assert stack.post_webhook("x", _x_mention("@TwitterDev worst airline ever")).status == 200
    stack.sync()
    (summary,) = stack.tickets()
    ticket, comments = _ticket_of(stack, summary["external_id"])
    assert "priority" not in ticket and not any(t.startswith("sla_first_reply") for t in ticket["tags"])
    assert [c["public"] for c in comments] == [True]  # the customer's message, no triage note
    assert stack.parked_in_queue() == 0


def _conversation_keys(stack: Stack) -> set[str]:
    return {item["pk"]["S"].removeprefix("CONV#") for item in stack.items("CONV#") if item["sk"]["S"].startswith("MSG#")}


# --- Freshdesk ------------------------------------------------------------------------------------


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskSandbox]:
    sandbox = FreshdeskSandbox(port=0, api_key=SANDBOX_FRESHDESK_API_KEY).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def test_freshdesk_keeps_priority_group_product_and_sla_due_dates(freshdesk: FreshdeskSandbox) -> None:
    helpdesk = FreshdeskHelpdesk(freshdesk.url, SANDBOX_FRESHDESK_API_KEY)
    message = SocialMessage(
        platform=Platform.X, kind=Kind.MENTION, direction=Direction.INBOUND, message_id="t1", conversation_key="x:thread:b:t1",
        account_id="b", author=Author(platform_id="u1", handle="angry"), text="Worst service ever",
        created_at=datetime(2026, 12, 3, 14, 0, tzinfo=timezone.utc),
    )  # fmt: skip
    requester = helpdesk.ensure_requester(Platform.X, message.author)
    routing = TicketRouting(
        priority="urgent", group_id="44", brand_id="7", tags=("sla_first_reply_1h",),
        first_reply_due=datetime(2026, 12, 3, 15, 0, tzinfo=timezone.utc), due=datetime(2026, 12, 4, 14, 0, tzinfo=timezone.utc),
    )  # fmt: skip
    opened = helpdesk.open_ticket(message, requester, idempotency_key="k1", routing=routing)
    ticket = freshdesk.ticket(opened.ticket_id)
    assert (ticket["priority"], ticket["group_id"], ticket["product_id"]) == (4, 44, 7)
    assert (ticket["fr_due_by"], ticket["due_by"]) == ("2026-12-03T15:00:00Z", "2026-12-04T14:00:00Z")
    assert "sla_first_reply_1h" in ticket["tags"]


def test_freshdesk_refuses_a_first_reply_due_after_the_resolution(freshdesk: FreshdeskSandbox) -> None:
    requester = FreshdeskHelpdesk(freshdesk.url, SANDBOX_FRESHDESK_API_KEY).ensure_requester(Platform.X, Author(platform_id="u2"))
    body = {"requester_id": int(requester), "subject": "s", "description": "d",
            "fr_due_by": "2026-12-05T00:00:00Z", "due_by": "2026-12-04T00:00:00Z"}  # fmt: skip
    credentials = base64.b64encode(f"{SANDBOX_FRESHDESK_API_KEY}:X".encode()).decode()
    answer = http("POST", f"{freshdesk.url}/api/v2/tickets", json.dumps(body).encode(),
                  {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"})  # fmt: skip
    assert answer.status == 400
    assert [error["field"] for error in answer.body["errors"]] == ["fr_due_by"]
