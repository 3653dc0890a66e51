"""Answers where reviews live: Google reviews through the Business Profile review reply,
Facebook recommendations (which the Graph API no longer answers).

The Google sender runs over real HTTP against the local Google sandbox; the end-to-end
cases go through the whole local stack: the review's push -> the ticket -> an agent
answers in the Zendesk sandbox -> the app PUTs the reply on the Google sandbox and notes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest

from chalicelib.channels.google import CHANNEL as GOOGLE
from chalicelib.outbound import ReplyDispatcher, ReplyFailed, ReplyTarget, target_from_messages
from chalicelib.outbound.dispatch import build_dispatcher
from local import samples
from local.google_sandbox import GoogleSandbox, push_body
from local.meta_graph_sandbox import MetaGraphSandbox
from tests.integration.conftest import Stack

ACCOUNT, LOCATION = "117942735408512345678", "4572185733125551234"
LOCATION_NAME = f"accounts/{ACCOUNT}/locations/{LOCATION}"


@pytest.fixture
def google() -> Iterator[GoogleSandbox]:
    box = GoogleSandbox().start()
    try:
        yield box
    finally:
        box.stop()


def dispatcher(box: GoogleSandbox, token: str | None = None) -> ReplyDispatcher:
    """The dispatcher as the app builds it, pointed at the sandbox."""
    secrets = {"GOOGLE_ACCESS_TOKEN": token or box.access_token}
    return build_dispatcher({"GOOGLE_BUSINESS_API_URL": box.url}, get_secret=lambda name: secrets[name])


def review_target(box: GoogleSandbox, review_id: str, **review: Any) -> tuple[str, ReplyTarget]:
    """A review on the sandbox and the reply target its stored message gives."""
    resource = box.add_review(ACCOUNT, LOCATION, review_id, **{"stars": 2, "comment": "Cold food.", **review})
    message = GOOGLE.normalize(resource).messages[0]
    return resource["name"], target_from_messages([message])


def send(box: GoogleSandbox, target: ReplyTarget, text: str, **kwargs: Any) -> Any:
    return dispatcher(box, kwargs.pop("token", None)).send(target, text, idempotency_key="zendesk:1:2", **kwargs)


# --- Google, the sender over HTTP ----------------------------------------------------------------


def test_a_review_gets_its_reply_on_google(google: GoogleSandbox) -> None:
    name, target = review_target(google, "r-1")
    sent = send(google, target, "We're sorry, Lea. The manager will call you today.")
    assert google.reply_of(name)["comment"] == "We're sorry, Lea. The manager will call you today."
    assert sent.via == "public_reply" and sent.warnings == ()
    assert sent.platform_message_id == f"{name}/reply@{google.reply_of(name)['updateTime']}"


def test_a_second_answer_replaces_the_reply_and_says_so(google: GoogleSandbox) -> None:
    name, target = review_target(google, "r-2")
    first = send(google, target, "Sorry about that.")
    second = dispatcher(google).send(target, "Update: your refund is on its way.", idempotency_key="zendesk:1:3")
    assert google.reply_of(name)["comment"] == "Update: your refund is on its way."  # one reply per review
    assert [entry["replaced"] for entry in google.sent()] == [False, True]
    assert second.warnings and "replaced the reply the review had before" in second.warnings[0]
    assert first.platform_message_id != second.platform_message_id  # each answer is its own outbound message


def test_a_reply_written_on_google_itself_is_replaced_with_a_warning(google: GoogleSandbox) -> None:
    _, target = review_target(google, "r-3", reply="Thanks for the feedback!")
    assert send(google, target, "We have refunded your order.").warnings


def test_an_unverified_location_is_a_clear_note_and_nothing_is_posted(google: GoogleSandbox) -> None:
    name, target = review_target(google, "r-4")
    google.mark_unverified(LOCATION_NAME)
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!")
    failure = caught.value
    assert failure.kind == "rejected" and not failure.transient and failure.code == "location_not_verified"
    assert failure.plain_words == (
        f"Not sent: Google accepts review replies only for verified locations, and this location ({LOCATION_NAME}) "
        "is not verified. Verify it in Google Business Profile, then send the answer again."
    )
    assert google.reply_of(name) is None


def test_a_deleted_review_is_noted_without_writing_a_reply(google: GoogleSandbox) -> None:
    name, target = review_target(google, "r-5")
    google.delete_review(name)
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!")
    assert caught.value.kind == "target_deleted" and caught.value.plain_words.startswith("Not sent: the review is no longer on Google")
    assert "reply" not in google.stats()  # read, found gone, nothing PUT


def test_a_reply_over_the_length_limit_is_refused_before_any_call(google: GoogleSandbox) -> None:
    _, target = review_target(google, "r-6")
    text = "é" * 2049  # 2,049 characters, 4,098 bytes
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, text)
    assert caught.value.plain_words == (
        "Not sent: the reply is 4,098 bytes long, and Google allows 4,096 in a review reply (an accented letter "
        "counts 2). Shorten it by 2 bytes and send again."
    )
    assert google.stats() == {}  # nothing asked of Google
    assert send(google, target, "é" * 2048).platform_message_id  # exactly at the limit: sent


def test_an_expired_token_is_noted_and_never_shown(google: GoogleSandbox) -> None:
    _, target = review_target(google, "r-7")
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!", token="ya29.expired-token-value")
    failure = caught.value
    assert failure.kind == "token_expired" and "Reconnect the Business Profile" in failure.plain_words
    assert "ya29" not in repr(failure) + str(failure) + str(failure.detail)


def test_a_lost_answer_is_safe_to_send_again_and_leaves_one_reply(google: GoogleSandbox) -> None:
    name, target = review_target(google, "r-8")
    google.fail_next_reply(0)  # Google applies the reply, the connection drops before the answer
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!")
    assert caught.value.transient and not caught.value.duplicate_risk and caught.value.retry_is_safe
    assert send(google, target, "Sorry!").warnings == ()  # its own words are there already: nothing was replaced
    assert google.reply_of(name)["comment"] == "Sorry!"


def test_an_outage_and_a_rate_limit_are_retried(google: GoogleSandbox) -> None:
    _, target = review_target(google, "r-9")
    google.fail_next_reply(503)
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!")
    assert caught.value.kind == "unavailable" and caught.value.retry_is_safe
    google.fail_next_reply(429)
    before = datetime.now(timezone.utc)
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Sorry!")
    assert caught.value.kind == "rate_limited" and caught.value.retry_at is not None and caught.value.retry_at > before


def test_a_private_answer_to_a_review_is_refused(google: GoogleSandbox) -> None:
    _, target = review_target(google, "r-10")
    with pytest.raises(ReplyFailed) as caught:
        send(google, target, "Call us.", private=True)
    assert caught.value.code == "private_on_review" and google.sent() == []


def test_the_credential_check_asks_googles_token_info(google: GoogleSandbox) -> None:
    from chalicelib.ops.token_health import TokenHealth

    def check(token: str) -> Any:
        health = TokenHealth({"GOOGLE_OAUTH_URL": google.url}, secret={"GOOGLE_ACCESS_TOKEN": token}.get, timeout=(1, 2))
        (found,) = [c() for c in GOOGLE.credential_checks(health)]
        return found

    works = check(google.access_token)
    assert (works.platform, works.status, works.days_left) == ("google", "ok", None)  # an hour-long token: no expiry warning
    assert works.detail == "the access token works for 59 more minutes (renewed hourly outside socialdesk)"
    refused = check("ya29.stale-token")
    assert refused.status == "expired" and "renewal outside socialdesk has stopped" in refused.detail
    assert "ya29" not in refused.detail
    google.scope = "https://www.googleapis.com/auth/userinfo.email"
    assert check(google.access_token).status == "revoked"


# --- end to end on the local stack -----------------------------------------------------------------


@dataclass
class Rig:
    stack: Stack
    google: GoogleSandbox
    meta: MetaGraphSandbox
    secret: str

    def answer(self, key: str, text: str) -> dict[str, Any]:
        (ticket,) = self.stack.ticket_for(key)
        deliveries = [d for d in self.stack.sandbox.agent_comment(ticket["id"], text) if '"agent_comment"' in d["body"]]
        assert len(deliveries) == 1 and deliveries[0]["status"] == 200, deliveries
        return deliveries[0]

    def notes(self, key: str) -> list[str]:
        (ticket,) = self.stack.ticket_for(key)
        return [c["body"] for c in self.stack.sandbox.comments(ticket["id"]) if not c["public"]]


@pytest.fixture
def rig(stack: Stack, google: GoogleSandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from chalice.config import Config
    from chalice.local import LocalDevServer

    import app as lambda_app
    from chalicelib import wiring
    from chalicelib.channels.google.webhook import clear_key_sources
    from chalicelib.helpdesks.zendesk.admin import ZendeskAdmin
    from chalicelib.outbound.agent_events import EventLog
    from chalicelib.outbound.agent_replies import AgentReplies
    from local.defaults import SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN

    env = {
        "GOOGLE_BUSINESS_API_URL": google.url,
        "GOOGLE_ACCESS_TOKEN": google.access_token,
        "GOOGLE_JWKS_URL": google.jwks_url,
        "GOOGLE_PUSH_AUDIENCE": google.audience,
        "GOOGLE_PUSH_SERVICE_ACCOUNTS": google.push_email,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    clear_key_sources()
    meta = MetaGraphSandbox().start()
    secrets = {"GOOGLE_ACCESS_TOKEN": google.access_token}
    replies = build_dispatcher({"GOOGLE_BUSINESS_API_URL": google.url, "META_GRAPH_URL": meta.url}, get_secret=secrets.__getitem__)
    store = wiring.message_store()
    wiring.override("agent_events", EventLog(store.table_name, stack.dynamodb))
    wiring.override("agent_replies", AgentReplies(store, wiring.helpdesk(), replies, bridge_email=SANDBOX_ZENDESK_EMAIL))
    server = LocalDevServer(lambda_app.app, Config(chalice_stage="local"), "127.0.0.1", 0)
    threading.Thread(target=server.server.serve_forever, name="chalice-helpdesk", daemon=True).start()
    app_url = f"http://127.0.0.1:{server.server.server_address[1]}"
    result = ZendeskAdmin(stack.sandbox.url, SANDBOX_ZENDESK_EMAIL, SANDBOX_ZENDESK_TOKEN).ensure(app_url)
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", result.signing_secret)
    try:
        yield Rig(stack, google, meta, result.signing_secret)
    finally:
        stack.sandbox.wait_for_deliveries()
        server.shutdown()
        server.server.server_close()
        meta.stop()
        clear_key_sources()


def test_an_agent_answers_a_google_review_and_a_second_answer_replaces_it(rig: Rig) -> None:
    review = rig.google.add_review(ACCOUNT, LOCATION, "e2e-1", stars=1, comment="Waited 40 minutes.", reviewer="Lea Brandt")
    pushed = rig.stack.post_webhook("google/reviews", push_body(review["name"]), rig.google.push_headers())
    assert pushed.status == 200, pushed.body
    rig.stack.sync()
    key = f"google:review:{review['name']}"

    first = rig.answer(key, "We're sorry, Lea. The manager will call you today.")
    assert first["response"]["outcome"] == "sent"
    assert rig.google.reply_of(review["name"])["comment"] == "We're sorry, Lea. The manager will call you today."
    assert rig.notes(key) == ["Sent to the customer on Google as a public reply."]

    rig.answer(key, "Update: we have refunded your booking.")
    assert rig.google.reply_of(review["name"])["comment"] == "Update: we have refunded your booking."
    assert rig.notes(key)[-1] == (
        "Sent to the customer on Google as a public reply. It replaced the reply the review had before: "
        "Google shows one reply per review."
    )
    assert len(rig.google.sent()) == 2  # one PUT per answer, none repeated


def test_an_unverified_location_becomes_the_agents_note(rig: Rig) -> None:
    review = rig.google.add_review(ACCOUNT, LOCATION, "e2e-2", stars=2, comment="Rude staff.")
    rig.google.mark_unverified(LOCATION_NAME)
    assert rig.stack.post_webhook("google/reviews", push_body(review["name"]), rig.google.push_headers()).status == 200
    rig.stack.sync()
    key = f"google:review:{review['name']}"
    assert rig.answer(key, "Sorry!")["response"]["outcome"] == "failed_noted"
    (note,) = rig.notes(key)
    assert note.startswith("Not sent: Google accepts review replies only for verified locations")
    assert rig.google.reply_of(review["name"]) is None


def test_a_facebook_recommendation_ticket_says_where_to_answer_and_nothing_is_tried(rig: Rig) -> None:
    run = "7301"
    negative = samples.facebook_recommendation(run)[:1]
    rig.stack.post_webhook(*negative[0])
    rig.stack.sync()
    (key,) = {t["external_id"] for t in rig.stack.tickets() if str(t.get("external_id", "")).startswith("facebook:review:")}
    story = key.split(":", 2)[2]
    (note,) = rig.notes(key)  # once, when the ticket opened
    assert note == (
        "Facebook no longer lets apps read or answer Page recommendations (Graph API v22.0 and later), so socialdesk "
        f"cannot post an answer to this one. Answer it on Facebook: https://www.facebook.com/{story}"
    )
    rig.stack.post_webhook(*negative[0])  # a redelivery writes no second note
    rig.stack.sync()
    assert len(rig.notes(key)) == 1

    assert rig.answer(key, "We're sorry to hear that.")["response"]["outcome"] == "failed_noted"
    assert rig.notes(key)[-1] == (
        "Not sent: Facebook no longer lets apps read or answer Page recommendations (Graph API v22.0 and later), so "
        f"socialdesk did not try. Answer it on Facebook directly: https://www.facebook.com/{story}"
    )
    assert rig.meta.sent() == [] and list(rig.meta.requests) == []  # no Graph API call at all

