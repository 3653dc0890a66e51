"""Meta replies over real HTTP against the local Graph sandbox.

Conversations are seeded in the sandbox, read back the way the backfill reads them
(``GraphClient`` + the Graph normalizers, i.e. the same ids the store holds), turned
into a ``ReplyTarget`` and answered through the ``ReplyDispatcher``. WhatsApp sends are
validated on both sides against Meta's published OpenAPI spec.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.models import Platform, SocialMessage
from chalicelib.channels.meta import webhook as meta_platform
from chalicelib.channels.meta.graph import (
    GraphClient,
    normalize_conversation_messages,
    normalize_feed_comments,
    normalize_ig_media_comments,
)
from chalicelib.outbound import ReplyConfig, ReplyDispatcher, ReplyFailed, target_from_messages
from chalicelib.channels.meta.replies import MetaSender
from local.meta_graph_sandbox import DEFAULT_IG_TOKEN, DEFAULT_PAGE_TOKEN, IG_ACCOUNT_ID, PAGE_ID, MetaGraphSandbox
from tests.support.events import load_event
from tests.support.whatsapp_contract import WhatsAppContract, WhatsAppRecorder, spec_available

PHONE_ID, WA_ID, WA_TOKEN = "106540352242922", "16505551234", "local-whatsapp-token"
POST_ID = f"{PAGE_ID}_122131676912594941"
TOP, REPLY = "122131676912594941_542072878449250", "122131676912594941_1213590066982748"
PSID, IGSID = "7001234567890123", "8002345678901234"
TOKENS = {PAGE_ID: DEFAULT_PAGE_TOKEN, IG_ACCOUNT_ID: DEFAULT_IG_TOKEN}


@dataclass
class Rig:
    sandbox: MetaGraphSandbox
    graph: GraphClient
    recorder: WhatsAppRecorder
    now: datetime

    def dispatcher(self, **config: Any) -> ReplyDispatcher:
        sender = MetaSender(lambda account: TOKENS[account], whatsapp_token_provider=lambda _a: WA_TOKEN,
                            base_url=self.sandbox.url, config=ReplyConfig(**config), observer=self.recorder,
                            timeout=(1, 2))
        return ReplyDispatcher({p: sender for p in sender.platforms}, now=lambda: datetime.now(timezone.utc))

    def facebook_thread(self) -> list[SocialMessage]:
        posts = list(self.graph.feed(PAGE_ID, since=self.now - timedelta(days=30)))
        return [m for post in posts for m in normalize_feed_comments(PAGE_ID, post).messages]

    def chat(self, account: str, platform: Platform, user: str) -> list[SocialMessage]:
        kind = "messenger" if platform is Platform.MESSENGER else "instagram"
        found = [c for c in self.graph.conversations(account, platform=kind)]
        messages = [m for c in found for m in normalize_conversation_messages(account, c, platform).messages]
        return [m for m in messages if m.conversation_key.endswith(user)]

    def instagram_thread(self) -> list[SocialMessage]:
        media = list(self.graph.ig_media(IG_ACCOUNT_ID, since=self.now - timedelta(days=30)))
        return [m for item in media for m in normalize_ig_media_comments(IG_ACCOUNT_ID, item).messages]


@pytest.fixture
def rig() -> Iterator[Rig]:
    sandbox = MetaGraphSandbox()
    sandbox.set_token(PAGE_ID, DEFAULT_PAGE_TOKEN)
    sandbox.set_token(IG_ACCOUNT_ID, DEFAULT_IG_TOKEN)
    sandbox.set_token(PHONE_ID, WA_TOKEN)
    sandbox.start()
    try:
        graph = GraphClient(sandbox.url, token_provider=lambda account: TOKENS[account])
        yield Rig(sandbox, graph, WhatsAppRecorder(), datetime.now(timezone.utc).replace(microsecond=0))
    finally:
        sandbox.stop()


def seed_facebook(rig: Rig, age: timedelta = timedelta(hours=2)) -> None:
    created = rig.now - age
    rig.sandbox.add_post(PAGE_ID, POST_ID, created=created - timedelta(hours=1), message="Spring sale")
    rig.sandbox.add_post_comment(PAGE_ID, POST_ID, "My order never arrived", comment_id=TOP, created=created)
    rig.sandbox.add_post_comment(PAGE_ID, POST_ID, "Still waiting!", comment_id=REPLY, parent_id=TOP,
                                 created=created + timedelta(minutes=5))


# --- Facebook comments ------------------------------------------------------------------------


def test_a_public_answer_goes_under_the_top_level_comment(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    assert (target.reply_to_id, target.thread_root_id) == (REPLY, TOP)

    sent = rig.dispatcher().send(target, "Sorry about that! Checking now.", idempotency_key="zd-1")

    (call,) = rig.sandbox.sent()
    assert call["route"] == "send.comment" and call["path"] == f"/v23.0/{TOP}/comments"
    assert call["body"] == {"message": "Sorry about that! Checking now."}
    assert call["headers"]["authorization"] == f"Bearer {DEFAULT_PAGE_TOKEN}"
    assert rig.sandbox.token_in_query_count() == 0
    assert sent.platform_message_id == call["answer"]["id"] and sent.via == "public_reply"
    # The answer is now part of the thread the backfill reads, as the Page's own comment.
    ours = [m for m in rig.facebook_thread() if m.message_id == sent.platform_message_id]
    assert ours and ours[0].direction.value == "out" and ours[0].conversation_key == f"facebook:comment:{TOP}"


def test_a_private_answer_with_a_public_note_and_only_one_private_reply(rig: Rig) -> None:
    seed_facebook(rig)
    dispatcher = rig.dispatcher()
    target = target_from_messages(rig.facebook_thread())

    sent = dispatcher.send(target, "We've DMed you the tracking link.", private=True, idempotency_key="zd-2")

    private, note = rig.sandbox.sent()
    assert private["path"] == f"/v23.0/{PAGE_ID}/messages"
    assert private["body"] == {"recipient": {"comment_id": REPLY}, "message": {"text": "We've DMed you the tracking link."}}
    assert note["path"] == f"/v23.0/{TOP}/comments" and note["body"] == {"message": "We've sent you a private message."}
    assert sent.visible_note == "We've sent you a private message." and sent.visible_note_id == note["answer"]["id"]
    assert sent.platform_message_id == private["answer"]["message_id"]

    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(target, "One more thing", private=True, idempotency_key="zd-3")
    assert caught.value.kind == "rejected"
    assert caught.value.plain_words == (
        "Not sent: this comment already has a private reply; Facebook allows only one. Continue in the private "
        "conversation instead."
    )


def test_a_comment_its_author_deleted(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    rig.sandbox.delete_object(TOP)
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hello?", idempotency_key="zd-4")
    assert caught.value.kind == "target_deleted"
    assert caught.value.plain_words == (
        "Not sent: the comment you're replying to no longer exists on Facebook; its author probably deleted it."
    )


def test_an_expired_page_token_in_plain_words(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    rig.sandbox.inject_error(
        code=190, subcode=463, status=400, match="/comments",
        message="Error validating access token: Session has expired on Friday, 20-Nov-26 10:00:00 PST. "
                "The current time is Saturday, 21-Nov-26 03:12:44 PST.",
    )
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hi", idempotency_key="zd-5")
    assert caught.value.kind == "token_expired" and not caught.value.transient
    assert caught.value.plain_words == (
        "Not sent: the Facebook Page token expired on 2026-11-20. Reconnect the Page in socialdesk settings."
    )
    rig.sandbox.expire_token(PAGE_ID)  # the sandbox's own expiry: no date in Meta's words
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hi", idempotency_key="zd-6")
    assert caught.value.plain_words == "Not sent: the Facebook Page token expired. Reconnect the Page in socialdesk settings."


def test_throttling_gives_a_retry_time(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    rig.sandbox.inject_error(code=32, account=PAGE_ID, regain_minutes=14)
    before = datetime.now(timezone.utc)
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hi", idempotency_key="zd-7")
    failure = caught.value
    assert failure.kind == "rate_limited" and failure.transient and failure.retry_at is not None
    assert before + timedelta(minutes=13) < failure.retry_at < before + timedelta(minutes=15)
    assert failure.plain_words.startswith("Not sent: Facebook is limiting how much this Facebook Page can send. "
                                          "It can be sent again after ")


def test_a_graph_outage_is_transient(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    rig.sandbox.inject_error(code=2, status=503, is_transient=True,
                             message="An unexpected error has occurred. Please retry your request later.")
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hi", idempotency_key="zd-8")
    assert caught.value.kind == "unavailable" and caught.value.transient
    assert rig.sandbox.sent() == []


def test_a_lost_answer_may_have_been_posted(rig: Rig) -> None:
    seed_facebook(rig)
    target = target_from_messages(rig.facebook_thread())
    rig.sandbox.drop_answer(match="/comments")
    with pytest.raises(ReplyFailed) as caught:
        rig.dispatcher().send(target, "Hi", idempotency_key="zd-9")
    failure = caught.value
    assert failure.kind == "unavailable" and failure.transient and failure.duplicate_risk and not failure.retry_is_safe
    assert failure.plain_words == (
        "Not confirmed: the connection to Facebook broke after the reply was sent, so it may have been posted. "
        "Check the conversation on Facebook before sending again."
    )
    assert len(rig.sandbox.sent()) == 1  # it was, in fact, posted


def test_nothing_listening_is_safe_to_retry() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = MetaSender(lambda _a: "t", base_url=f"http://127.0.0.1:{port}", timeout=(1, 1))
    target = target_from_messages(meta_platform.normalize_delivery(load_event("meta_page_feed_comment")).messages)
    with pytest.raises(ReplyFailed) as caught:
        ReplyDispatcher({Platform.FACEBOOK: sender}).send(target, "Hi", idempotency_key="k")
    assert caught.value.kind == "unavailable" and caught.value.retry_is_safe
    assert caught.value.plain_words == "Not sent: Facebook could not be reached. Nothing was posted; it is safe to send again."


# --- Messenger and Instagram Direct -----------------------------------------------------------


def test_messenger_within_24_hours_then_human_agent_then_closed(rig: Rig) -> None:
    rig.sandbox.add_conversation_message(PAGE_ID, PSID, "Where is my refund?", created=rig.now - timedelta(hours=3))
    recent = target_from_messages(rig.chat(PAGE_ID, Platform.MESSENGER, PSID))
    sent = rig.dispatcher().send(recent, "Refund issued today.", idempotency_key="m-1")
    (call,) = rig.sandbox.sent()
    assert call["path"] == f"/v23.0/{PAGE_ID}/messages"
    assert call["body"] == {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Refund issued today."}}
    assert sent.via == "message" and sent.platform_message_id == call["answer"]["message_id"]

    old_user = "7009999999999999"
    rig.sandbox.add_conversation_message(PAGE_ID, old_user, "Hello?", created=rig.now - timedelta(days=3))
    stale = target_from_messages(rig.chat(PAGE_ID, Platform.MESSENGER, old_user))

    with pytest.raises(ReplyFailed) as caught:  # tag not enabled: refused before any call
        rig.dispatcher().send(stale, "Sorry for the wait.", idempotency_key="m-2")
    assert caught.value.kind == "window_closed" and "3 days old" in caught.value.plain_words
    assert len(rig.sandbox.sent()) == 1

    with pytest.raises(ReplyFailed) as caught:  # enabled here, but Meta has not approved the feature
        rig.dispatcher(human_agent_allowed=True).send(stale, "Sorry for the wait.", idempotency_key="m-3")
    assert caught.value.kind == "window_closed" and "Human Agent feature" in caught.value.plain_words

    rig.sandbox.approve_human_agent(PAGE_ID)
    sent = rig.dispatcher(human_agent_allowed=True).send(stale, "Sorry for the wait.", idempotency_key="m-4")
    assert sent.via == "human_agent_tag"
    assert rig.sandbox.sent()[-1]["body"]["messaging_type"] == "MESSAGE_TAG"
    assert rig.sandbox.sent()[-1]["body"]["tag"] == "HUMAN_AGENT"


def test_instagram_direct_and_comment_replies(rig: Rig) -> None:
    rig.sandbox.add_conversation_message(IG_ACCOUNT_ID, IGSID, "Do you ship to Norway?", platform="instagram",
                                         created=rig.now - timedelta(minutes=20))
    dm = target_from_messages(rig.chat(IG_ACCOUNT_ID, Platform.INSTAGRAM, IGSID))
    rig.dispatcher().send(dm, "Yes, in 3-5 days.", idempotency_key="ig-1")
    assert rig.sandbox.sent()[-1]["path"] == f"/v23.0/{IG_ACCOUNT_ID}/messages"
    assert rig.sandbox.sent()[-1]["headers"]["authorization"] == f"Bearer {DEFAULT_IG_TOKEN}"

    media = "17900000000000001"
    rig.sandbox.add_ig_media(IG_ACCOUNT_ID, media, created=rig.now - timedelta(days=2))
    rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, media, "Broken on arrival", comment_id="17865799348089039",
                               created=rig.now - timedelta(days=1))
    rig.sandbox.add_ig_comment(IG_ACCOUNT_ID, media, "@brand hello??", comment_id="17865799348089040",
                               parent_id="17865799348089039", created=rig.now - timedelta(hours=1))
    thread = target_from_messages(rig.instagram_thread())
    assert thread.thread_root_id == "17865799348089039" and thread.reply_to_id == "17865799348089040"

    sent = rig.dispatcher().send(thread, "So sorry! Please check your DMs.", private=True, idempotency_key="ig-2")
    private, note = rig.sandbox.sent()[-2:]
    assert private["body"]["recipient"] == {"comment_id": "17865799348089040"}
    assert private["answer"]["message_id"].startswith("aWdf")
    assert note["path"] == "/v23.0/17865799348089039/replies"
    assert sent.visible_note == "We've sent you a private message."
    # The public note is the account's own reply in the thread now.
    assert any(m.message_id == note["answer"]["id"] and m.direction.value == "out" for m in rig.instagram_thread())


# --- WhatsApp, checked against Meta's spec -----------------------------------------------------

needs_spec = pytest.mark.skipif(not spec_available(), reason="the WhatsApp OpenAPI spec is not available")


def whatsapp_messages(age: timedelta) -> list[SocialMessage]:
    event = load_event("meta_whatsapp_text")
    sent_at = datetime.now(timezone.utc) - age
    event["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(sent_at.timestamp()))
    return meta_platform.normalize_delivery(event).messages


@needs_spec
def test_whatsapp_text_within_24_hours_matches_the_spec(rig: Rig) -> None:
    rig.sandbox.add_whatsapp_contact(PHONE_ID, WA_ID, last_inbound=time.time() - 3600)
    target = target_from_messages(whatsapp_messages(timedelta(hours=1)))

    sent = rig.dispatcher().send(target, "Your order ships tomorrow.", idempotency_key="wa-1")

    (call,) = rig.sandbox.sent()
    assert call["path"] == f"/v23.0/{PHONE_ID}/messages"
    assert call["body"] == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID, "type": "text",
                            "text": {"preview_url": False, "body": "Your order ships tomorrow."}}
    assert call["headers"]["authorization"] == f"Bearer {WA_TOKEN}"
    assert sent.platform_message_id == call["answer"]["messages"][0]["id"] and sent.platform_message_id.startswith("wamid.")
    assert len(rig.recorder.checked) == 1
    rig.recorder.assert_all_valid()


@needs_spec
def test_a_whatsapp_customer_known_only_by_business_scoped_id_is_answered_through_it(rig: Rig) -> None:
    bsuid = "US.13491208655302741918"
    event = load_event("meta_whatsapp_text")
    value = event["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"user_id": bsuid, "profile": {"name": "Jane", "username": "jane.doe"}}]
    message = value["messages"][0]
    message.pop("from")
    message["from_user_id"] = bsuid
    message["timestamp"] = str(int(time.time()) - 600)
    rig.sandbox.add_whatsapp_contact(PHONE_ID, bsuid, last_inbound=time.time() - 600)
    target = target_from_messages(meta_platform.normalize_delivery(event).messages)

    rig.dispatcher().send(target, "Your order ships tomorrow.", idempotency_key="wa-bsuid")

    (call,) = rig.sandbox.sent()
    assert call["body"]["recipient"] == bsuid and "to" not in call["body"]  # no phone number to send to
    assert call["answer"]["contacts"] == [{"input": bsuid, "user_id": bsuid}]
    rig.recorder.assert_all_valid()


@needs_spec
def test_a_whatsapp_group_conversation_is_answered_in_the_group(rig: Rig) -> None:
    group = "120363025246125486"
    event = load_event("meta_whatsapp_text")
    message = event["entry"][0]["changes"][0]["value"]["messages"][0]
    message["group_id"] = group
    message["timestamp"] = str(int(time.time()) - 600)
    rig.sandbox.add_whatsapp_contact(PHONE_ID, group, last_inbound=time.time() - 600)
    target = target_from_messages(meta_platform.normalize_delivery(event).messages)

    rig.dispatcher().send(target, "We're on it, everyone.", idempotency_key="wa-group")

    (call,) = rig.sandbox.sent()
    assert (call["body"]["recipient_type"], call["body"]["to"]) == ("group", group)  # not the last speaker's DMs
    rig.recorder.assert_all_valid()


@needs_spec
def test_whatsapp_quote_and_errors_match_the_spec(rig: Rig) -> None:
    rig.sandbox.add_whatsapp_contact(PHONE_ID, WA_ID, last_inbound=time.time() - 600)
    target = target_from_messages(whatsapp_messages(timedelta(minutes=10)))
    sender = MetaSender(lambda _a: "", whatsapp_token_provider=lambda _a: WA_TOKEN, base_url=rig.sandbox.url,
                        observer=rig.recorder, quote_whatsapp=True)
    dispatcher = ReplyDispatcher({Platform.WHATSAPP: sender})
    dispatcher.send(target, "Replying to this one", idempotency_key="wa-2")
    assert rig.sandbox.sent()[-1]["body"]["context"] == {"message_id": target.reply_to_id}

    # Meta thinks the window closed (e.g. our copy of the last message is late): 131047.
    rig.sandbox.add_whatsapp_contact(PHONE_ID, WA_ID, last_inbound=time.time() - 90000)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(target, "Anyone there?", idempotency_key="wa-3")
    assert caught.value.kind == "window_closed"
    assert caught.value.plain_words.startswith("Not sent: WhatsApp says more than 24 hours have passed")

    rig.sandbox.inject_error(code=130429, status=400, message="(#130429) Rate limit hit",
                             error_data={"messaging_product": "whatsapp", "details": "Cloud API message throughput has been reached."})
    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(target, "Anyone there?", idempotency_key="wa-4")
    assert caught.value.kind == "rate_limited" and caught.value.retry_at is not None

    rig.sandbox.inject_error(code=190, subcode=463, status=401)
    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(target, "Anyone there?", idempotency_key="wa-5")
    assert caught.value.kind == "token_expired"
    assert caught.value.plain_words == "Not sent: the WhatsApp access token expired. Reconnect WhatsApp in socialdesk settings."

    rig.sandbox.inject_error(code=131000, status=500, message="(#131000) Something went wrong")
    with pytest.raises(ReplyFailed) as caught:
        dispatcher.send(target, "Anyone there?", idempotency_key="wa-6")
    assert caught.value.kind == "unavailable" and caught.value.transient

    assert len(rig.recorder.checked) == 5  # every exchange, errors included, checked against the spec
    rig.recorder.assert_all_valid()


@needs_spec
def test_the_whatsapp_contract_has_teeth(rig: Rig) -> None:
    contract = WhatsAppContract()
    url = f"{rig.sandbox.url}/v23.0/{PHONE_ID}/messages"
    good = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID, "type": "text",
            "text": {"preview_url": False, "body": "hi"}}
    headers = {"Authorization": "Bearer [redacted]", "Content-Type": "application/json", "User-Agent": "socialdesk/1.0.0"}
    contract.check_request("POST", url, headers, json.dumps(good).encode())
    for broken in ({k: v for k, v in good.items() if k != "to"}, {**good, "text": {"bdy": "hi"}}, {**good, "recipient_type": "person"}):
        with pytest.raises(AssertionError):
            contract.check_request("POST", url, headers, json.dumps(broken).encode())
    # JsonHttpClient's default User-Agent breaks the spec's pattern: the sender sets its own.
    with pytest.raises(AssertionError, match="User-Agent"):
        contract.check_request("POST", url, {**headers, "User-Agent": "socialdesk (+urllib3)"}, json.dumps(good).encode())
    # The one spec patch is needed: as published, the schema accepts no text message at all.
    with pytest.raises(AssertionError, match="Additional properties"):
        WhatsAppContract(patched=False).check_request("POST", url, headers, json.dumps(good).encode())
    with pytest.raises(AssertionError, match="error body"):
        contract.check_response("POST", url, headers, None, 400, {"Content-Type": "application/json"},
                                json.dumps({"error": {"message": "no type or code"}}).encode())
