"""Reply rules without sockets: windows on a fixed clock, HUMAN_AGENT, LINE reply vs push,
text limits, and building targets (who the answer goes to) from stored and fixture messages."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.models import Author, Direction, Kind, Platform, SocialMessage
from chalicelib.channels.line import webhook as line_platform
from chalicelib.channels.meta import webhook as meta_platform
from chalicelib.channels.telegram import webhook as telegram_platform
from chalicelib.channels.x import webhook as x_platform
from chalicelib.outbound import (
    REJECTED,
    TARGET_DELETED,
    WINDOW_CLOSED,
    ReplyConfig,
    ReplyDispatcher,
    ReplyFailed,
    ReplyTarget,
    SentReply,
    build_dispatcher,
    target_from_messages,
)
from chalicelib.channels.x import weighted_length as x_weighted_length
from chalicelib.outbound.base import ReplyRequest, describe_age
from chalicelib.channels.line.replies import LineSender, next_quota_reset, retry_key
from chalicelib.channels.meta.replies import MetaSender, graph_base_url
from chalicelib.channels.telegram.replies import TelegramSender
from chalicelib.channels.x.replies import XSender
from tests.support.events import load_event

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=timezone.utc)
PAGE, PSID, IG, IGSID = "448242228374517", "7001234567890123", "17841405726653026", "8002345678901234"
PHONE, WA_ID = "106540352242922", "16505551234"


class Raw:
    def __init__(self, status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.data = json.dumps({} if body is None else body).encode()
        self.headers = headers or {"Content-Type": "application/json"}


class Pool:
    """A urllib3 stand-in: records each request, answers from a queue."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Raw:
        self.calls.append({"method": method, "url": url, "body": json.loads(kwargs["body"]) if kwargs.get("body") else None,
                           "headers": kwargs.get("headers") or {}})
        answer = self.answers.pop(0) if self.answers else Raw()
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def clear(self) -> None:
        pass


def chat_target(platform: Platform, age: timedelta, **changes: Any) -> ReplyTarget:
    account, customer = {Platform.MESSENGER: (PAGE, PSID), Platform.INSTAGRAM: (IG, IGSID), Platform.WHATSAPP: (PHONE, WA_ID)}[platform]
    target = ReplyTarget(platform, Kind.DIRECT_MESSAGE, f"{platform.value}:dm:{account}:{customer}", account, customer,
                         "mid.1", NOW - age)
    return replace(target, **changes)


def meta_sender(pool: Pool, **config: Any) -> MetaSender:
    return MetaSender(lambda account: f"page-token-{account}", whatsapp_token_provider=lambda _a: "wa-token",
                      base_url="https://graph.example", config=ReplyConfig(**config), pool=pool)


def request(target: ReplyTarget, text: str = "Thanks, we're on it.", private: bool = False) -> ReplyRequest:
    return ReplyRequest(target, text, private, "zendesk-comment-1")


# --- the 24-hour and 7-day windows ------------------------------------------------------------


@pytest.mark.parametrize("platform", [Platform.MESSENGER, Platform.INSTAGRAM])
def test_chats_within_24_hours_are_plain_responses(platform: Platform) -> None:
    pool = Pool(Raw(200, {"recipient_id": "x", "message_id": "m_1"}))
    sent = meta_sender(pool).send(request(chat_target(platform, timedelta(hours=23, minutes=59))), NOW)
    assert sent == SentReply("m_1", via="message")
    (call,) = pool.calls
    account = PAGE if platform is Platform.MESSENGER else IG
    assert call["url"] == f"https://graph.example/v23.0/{account}/messages"
    assert call["body"] == {"recipient": {"id": PSID if platform is Platform.MESSENGER else IGSID},
                            "messaging_type": "RESPONSE", "message": {"text": "Thanks, we're on it."}}
    assert call["headers"]["Authorization"] == f"Bearer page-token-{account}"


def test_after_24_hours_the_human_agent_tag_is_used_when_enabled() -> None:
    pool = Pool(Raw(200, {"recipient_id": PSID, "message_id": "m_2"}))
    sent = meta_sender(pool, human_agent_allowed=True).send(request(chat_target(Platform.MESSENGER, timedelta(days=3))), NOW)
    assert sent.via == "human_agent_tag"
    assert pool.calls[0]["body"]["messaging_type"] == "MESSAGE_TAG"
    assert pool.calls[0]["body"]["tag"] == "HUMAN_AGENT"


def test_after_24_hours_without_human_agent_the_window_is_closed_before_any_call() -> None:
    pool = Pool()
    with pytest.raises(ReplyFailed) as caught:
        meta_sender(pool).send(request(chat_target(Platform.MESSENGER, timedelta(hours=26))), NOW)
    assert caught.value.kind == WINDOW_CLOSED and not caught.value.transient
    assert caught.value.plain_words == (
        "Not sent: the customer's last message is 26 hours old, outside Messenger's 24-hour reply window. "
        "Wait for the customer to write again (human-agent replies, which allow 7 days, are not enabled)."
    )
    assert pool.calls == []


def test_after_7_days_even_the_human_agent_tag_is_refused_before_any_call() -> None:
    pool = Pool()
    with pytest.raises(ReplyFailed) as caught:
        meta_sender(pool, human_agent_allowed=True).send(request(chat_target(Platform.INSTAGRAM, timedelta(days=8))), NOW)
    assert caught.value.kind == WINDOW_CLOSED
    assert "8 days old" in caught.value.plain_words and "7 days" in caught.value.plain_words
    assert pool.calls == []


def test_whatsapp_is_free_form_only_within_24_hours() -> None:
    pool = Pool(Raw(200, {"messaging_product": "whatsapp", "contacts": [{"input": WA_ID, "wa_id": WA_ID}],
                          "messages": [{"id": "wamid.OUT"}]}))
    sender = meta_sender(pool, human_agent_allowed=True)  # no tag exists for WhatsApp
    assert sender.send(request(chat_target(Platform.WHATSAPP, timedelta(hours=2))), NOW).platform_message_id == "wamid.OUT"
    assert pool.calls[0]["body"] == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": WA_ID,
                                     "type": "text", "text": {"preview_url": False, "body": "Thanks, we're on it."}}
    with pytest.raises(ReplyFailed) as caught:
        sender.send(request(chat_target(Platform.WHATSAPP, timedelta(hours=26))), NOW)
    assert caught.value.kind == WINDOW_CLOSED
    assert caught.value.plain_words == (
        "Not sent: the customer's last message is 26 hours old, outside WhatsApp's 24-hour window. "
        "Send a template message from WhatsApp Manager or wait for the customer to write again."
    )
    assert len(pool.calls) == 1


def test_whatsapp_can_quote_the_customer_message() -> None:
    pool = Pool(Raw(200, {"messages": [{"id": "wamid.Q"}]}))
    sender = MetaSender(lambda a: "t", base_url="https://graph.example", pool=pool, quote_whatsapp=True)
    sender.send(request(chat_target(Platform.WHATSAPP, timedelta(hours=1), reply_to_id="wamid.IN")), NOW)
    assert pool.calls[0]["body"]["context"] == {"message_id": "wamid.IN"}


def comment_target(platform: Platform, age: timedelta) -> ReplyTarget:
    account = PAGE if platform is Platform.FACEBOOK else IG
    return ReplyTarget(platform, Kind.REPLY, f"{platform.value}:comment:TOP", account, "6001", "REPLY",
                       NOW - age, reply_to_created_at=NOW - age, thread_root_id="TOP")


def test_a_private_reply_to_a_comment_is_refused_after_7_days() -> None:
    pool = Pool()
    with pytest.raises(ReplyFailed) as caught:
        meta_sender(pool).send(request(comment_target(Platform.FACEBOOK, timedelta(days=9)), private=True), NOW)
    assert caught.value.kind == WINDOW_CLOSED
    assert caught.value.plain_words == (
        "Not sent: the comment is 9 days old; Facebook allows a private reply only within 7 days of the comment. "
        "Answer publicly instead."
    )
    assert pool.calls == []


def test_a_private_reply_goes_to_the_comment_and_a_public_note_to_the_thread() -> None:
    pool = Pool(Raw(200, {"recipient_id": "6001", "message_id": "m_p"}), Raw(200, {"id": "TOP_99"}))
    sent = meta_sender(pool).send(request(comment_target(Platform.FACEBOOK, timedelta(hours=3)), private=True), NOW)
    assert sent == SentReply("m_p", visible_note="We've sent you a private message.", via="private_reply", visible_note_id="TOP_99")
    private, note = pool.calls
    assert private["url"].endswith(f"/{PAGE}/messages")
    assert private["body"] == {"recipient": {"comment_id": "REPLY"}, "message": {"text": "Thanks, we're on it."}}
    assert note["url"].endswith("/TOP/comments") and note["body"] == {"message": "We've sent you a private message."}


def test_the_public_note_can_be_turned_off_and_its_failure_does_not_undo_the_answer() -> None:
    pool = Pool(Raw(200, {"message_id": "m_p"}))
    sent = meta_sender(pool, public_ack_text=None).send(request(comment_target(Platform.INSTAGRAM, timedelta(hours=1)), private=True), NOW)
    assert sent.visible_note is None and len(pool.calls) == 1
    pool = Pool(Raw(200, {"message_id": "m_p"}), Raw(400, {"error": {"code": 100, "error_subcode": 33, "message": "gone", "type": "X"}}))
    sent = meta_sender(pool).send(request(comment_target(Platform.INSTAGRAM, timedelta(hours=1)), private=True), NOW)
    assert sent.platform_message_id == "m_p" and sent.visible_note is None
    assert sent.warnings and sent.warnings[0].startswith("The private reply was sent, but the public note could not be posted.")
    assert pool.calls[1]["url"].endswith("/TOP/replies")


def test_public_comment_replies_go_under_the_top_level_comment() -> None:
    pool = Pool(Raw(200, {"id": "C1"}), Raw(200, {"id": "C2"}))
    sender = meta_sender(pool)
    assert sender.send(request(comment_target(Platform.FACEBOOK, timedelta(days=30))), NOW).via == "public_reply"
    sender.send(request(comment_target(Platform.INSTAGRAM, timedelta(days=30))), NOW)
    assert pool.calls[0]["url"] == "https://graph.example/v23.0/TOP/comments"
    assert pool.calls[1]["url"] == "https://graph.example/v23.0/TOP/replies"
    assert pool.calls[0]["body"] == {"message": "Thanks, we're on it."}


def test_instagram_with_facebook_login_sends_on_the_page() -> None:
    pool = Pool(Raw(200, {"message_id": "aWdf1"}))
    sender = MetaSender(lambda account: f"token-{account}", base_url="https://graph.example", pool=pool,
                        instagram_pages={IG: PAGE})
    sender.send(request(chat_target(Platform.INSTAGRAM, timedelta(hours=1))), NOW)
    assert pool.calls[0]["url"].endswith(f"/{PAGE}/messages")
    assert pool.calls[0]["headers"]["Authorization"] == f"Bearer token-{PAGE}"


def test_graph_base_url_keeps_a_version_already_in_the_url() -> None:
    assert graph_base_url("https://graph.facebook.com/v25.0/", "v23.0") == "https://graph.facebook.com/v25.0"
    assert graph_base_url("https://graph.facebook.com", "v24.0") == "https://graph.facebook.com/v24.0"


def test_a_missing_token_is_a_plain_words_failure_without_a_call() -> None:
    def missing(_account: str) -> str:
        raise RuntimeError("META_PAGE_TOKEN_1 is not configured")

    pool = Pool()
    with pytest.raises(ReplyFailed) as caught:
        MetaSender(missing, base_url="https://graph.example", pool=pool).send(
            request(chat_target(Platform.MESSENGER, timedelta(hours=1))), NOW)
    assert caught.value.kind == "token_revoked"
    assert caught.value.plain_words == (
        "Not sent: socialdesk has no access token for this Facebook Page. Connect the Page in socialdesk settings."
    )
    assert pool.calls == []


# --- LINE: reply token or push -------------------------------------------------------------------


def line_target(token_age: timedelta | None, *, group: bool = False) -> ReplyTarget:
    sent_at = NOW - (token_age or timedelta(hours=2))
    scope, to = ("group", "Cgroup") if group else ("dm", "Uuser")
    return ReplyTarget(Platform.LINE, Kind.COMMENT if group else Kind.DIRECT_MESSAGE, f"line:{scope}:Ubot:{to}", "Ubot",
                       "Uuser", "4687", sent_at, line_to=to,
                       line_reply_token="tok" if token_age is not None else None,
                       line_reply_token_expires_at=sent_at + timedelta(seconds=50) if token_age is not None else None)


def line_sender(pool: Pool) -> LineSender:
    return LineSender(lambda _a: "channel-token", base_url="https://line.example", pool=pool)


def test_line_uses_a_fresh_reply_token() -> None:
    pool = Pool(Raw(200, {"sentMessages": [{"id": "5001", "quoteToken": "q"}]}))
    sent = line_sender(pool).send(request(line_target(timedelta(seconds=10))), NOW)
    assert sent == SentReply("5001", via="line_reply")
    assert pool.calls[0]["url"] == "https://line.example/v2/bot/message/reply"
    assert pool.calls[0]["body"] == {"replyToken": "tok", "messages": [{"type": "text", "text": "Thanks, we're on it."}]}
    assert "X-Line-Retry-Key" not in pool.calls[0]["headers"]


def test_line_pushes_with_a_retry_key_when_the_token_is_stale() -> None:
    pool = Pool(Raw(200, {"sentMessages": [{"id": "5002", "quoteToken": "q"}]}))
    sent = line_sender(pool).send(request(line_target(timedelta(minutes=5), group=True)), NOW)
    assert sent.via == "line_push"
    (call,) = pool.calls
    assert call["url"] == "https://line.example/v2/bot/message/push"
    assert call["body"] == {"to": "Cgroup", "messages": [{"type": "text", "text": "Thanks, we're on it."}]}
    assert call["headers"]["X-Line-Retry-Key"] == retry_key("zendesk-comment-1")


def test_line_falls_back_to_push_when_the_reply_token_is_refused() -> None:
    pool = Pool(Raw(400, {"message": "Invalid reply token"}), Raw(200, {"sentMessages": [{"id": "5003"}]}))
    sent = line_sender(pool).send(request(line_target(timedelta(seconds=5))), NOW)
    assert [c["url"].rsplit("/", 1)[1] for c in pool.calls] == ["reply", "push"]
    assert sent.platform_message_id == "5003" and sent.via == "line_push"
    assert sent.warnings == ("LINE's reply token had expired, so the answer was sent as a push message.",)


def test_line_409_means_an_earlier_attempt_already_delivered_it() -> None:
    pool = Pool(Raw(409, {"message": "The retry key is already accepted", "sentMessages": [{"id": "5004"}]},
                    {"Content-Type": "application/json", "x-line-accepted-request-id": "req-1"}))
    sent = line_sender(pool).send(request(line_target(None)), NOW)
    assert sent.platform_message_id == "5004" and "not sent twice" in sent.warnings[-1]


def test_retry_keys_are_stable_uuids() -> None:
    assert retry_key("zendesk:123:comment:9") == retry_key("zendesk:123:comment:9")
    assert retry_key("zendesk:123:comment:9") != retry_key("zendesk:123:comment:10")
    assert retry_key("123E4567-E89B-12D3-A456-426614174000") == "123e4567-e89b-12d3-a456-426614174000"


def test_the_monthly_quota_resets_on_the_first_in_japan() -> None:
    assert next_quota_reset(datetime(2026, 5, 31, 16, 0, tzinfo=timezone.utc)) == datetime(2026, 6, 30, 15, 0, tzinfo=timezone.utc)
    assert next_quota_reset(datetime(2026, 12, 10, tzinfo=timezone.utc)) == datetime(2026, 12, 31, 15, 0, tzinfo=timezone.utc)


# --- text limits -------------------------------------------------------------------------------


class Recorder:
    platforms = frozenset(Platform)

    def __init__(self) -> None:
        self.requests: list[ReplyRequest] = []
        self.config = ReplyConfig()

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        self.requests.append(request)
        return SentReply(f"id-{len(self.requests)}")


def dispatcher() -> tuple[ReplyDispatcher, Recorder]:
    recorder = Recorder()
    return ReplyDispatcher({p: recorder for p in Platform}, now=lambda: NOW), recorder


X_MENTION = ReplyTarget(Platform.X, Kind.MENTION, "x:tweets:2244994945:3001", "2244994945", "3001", "1050", NOW)


def test_x_refuses_a_post_over_280_characters_with_the_numbers() -> None:
    send, recorder = dispatcher()
    with pytest.raises(ReplyFailed) as caught:
        send.send(X_MENTION, "a" * 312, idempotency_key="k")
    assert caught.value.kind == REJECTED
    assert caught.value.plain_words == (
        "Not sent: the reply is 312 characters long, and X allows 280 in a reply post (emoji and CJK characters count "
        "twice, links 23). Shorten it by 32 characters and send again."
    )
    assert recorder.requests == []
    assert send.send(X_MENTION, "a" * 280, idempotency_key="k2").platform_message_id == "id-1"


def test_x_counts_like_x() -> None:
    assert x_weighted_length("hello") == 5
    assert x_weighted_length("日本語") == 6
    assert x_weighted_length("see https://example.com/a/very/long/path?with=query") == 4 + 23
    assert x_weighted_length("👍🏽") == 2  # a skin-toned emoji is one emoji
    assert x_weighted_length("👨‍👩‍👧") == 6  # approximation: family sequences over-count, never under


def test_x_direct_messages_are_not_held_to_280() -> None:
    send, recorder = dispatcher()
    dm = replace(X_MENTION, kind=Kind.DIRECT_MESSAGE, conversation_key="x:dm:2244994945:3001")
    send.send(dm, "a" * 2000, idempotency_key="k")
    send.send(X_MENTION, "a" * 2000, private=True, idempotency_key="k2")  # a private answer is a DM
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("platform", "key", "limit"),
    [
        (Platform.TELEGRAM, "telegram:dm:1:2", 4096),
        (Platform.MESSENGER, "messenger:dm:1:2", 2000),
        (Platform.WHATSAPP, "whatsapp:dm:1:2", 4096),
        (Platform.LINE, "line:dm:1:2", 5000),
    ],
)
def test_chat_limits(platform: Platform, key: str, limit: int) -> None:
    send, recorder = dispatcher()
    target = ReplyTarget(platform, Kind.DIRECT_MESSAGE, key, "1", "2", "m", NOW)
    send.send(target, "x" * limit, idempotency_key="ok")
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "x" * (limit + 1), idempotency_key="too-long")
    assert f"allows {limit:,} in a message. Shorten it by 1 character and send again." in caught.value.plain_words
    assert len(recorder.requests) == 1


def test_instagram_direct_counts_bytes() -> None:
    send, _ = dispatcher()
    target = ReplyTarget(Platform.INSTAGRAM, Kind.DIRECT_MESSAGE, "instagram:dm:1:2", "1", "2", "m", NOW)
    with pytest.raises(ReplyFailed) as caught:
        send.send(target, "é" * 600, idempotency_key="k")
    assert caught.value.plain_words == (
        "Not sent: the reply is 1,200 bytes long, and Instagram allows 1,000 in a direct message (accented letters "
        "take 2 bytes, emoji 4). Shorten it by 200 bytes and send again."
    )


def test_empty_answers_are_refused_and_whitespace_is_trimmed() -> None:
    send, recorder = dispatcher()
    with pytest.raises(ReplyFailed, match="the reply is empty"):
        send.send(X_MENTION, "  \n ", idempotency_key="k")
    send.send(X_MENTION, "  hi \n", idempotency_key="k2")
    assert recorder.requests[0].text == "hi"


def test_private_on_a_chat_is_just_a_message_and_unknown_platforms_are_refused() -> None:
    send, recorder = dispatcher()
    send.send(chat_target(Platform.MESSENGER, timedelta(hours=1)), "hi", private=True, idempotency_key="k")
    assert recorder.requests[0].private is False
    empty = ReplyDispatcher({}, now=lambda: NOW)
    with pytest.raises(ReplyFailed) as caught:
        empty.send(X_MENTION, "hi", idempotency_key="k")
    assert caught.value.plain_words == "Not sent: socialdesk can't answer on X yet. Reply on X directly."
    review = ReplyTarget(Platform.OTHER, Kind.REVIEW, "other:app-store:r-1", "acme", "author-1", "r-1", NOW)
    with pytest.raises(ReplyFailed) as caught:
        empty.send(review, "hi", idempotency_key="k2")
    assert caught.value.plain_words == "Not sent: socialdesk can't answer on App Store yet. Reply on App Store directly."


# --- targets from stored messages ------------------------------------------------------------


def normalized(name: str, **kwargs: Any) -> list[SocialMessage]:
    module = {"meta": meta_platform, "x": x_platform, "telegram": telegram_platform, "line": line_platform}[name.split("_")[0]]
    return module.normalize_delivery(load_event(name), **kwargs).messages


def test_targets_from_the_webhook_fixtures() -> None:
    fb = target_from_messages(normalized("meta_page_feed_comment") + normalized("meta_page_feed_reply"))
    assert (fb.reply_to_id, fb.thread_root_id) == ("122131676912594941_1213590066982748", "122131676912594941_542072878449250")
    assert fb.last_inbound_at == datetime(2025, 3, 22, 18, 20, 4, tzinfo=timezone.utc)

    wa = target_from_messages(normalized("meta_whatsapp_text"))
    assert (wa.account_id, wa.customer_id) == (PHONE, WA_ID)

    tg = target_from_messages(normalized("telegram_group_topic", bot_id="7000000001"))
    assert (tg.chat_id, tg.topic_id, tg.reply_to_id) == ("-1001987654321", "55", "907")

    biz = target_from_messages(normalized("telegram_business_message", bot_id="7000000001"))
    assert biz.business_connection_id == "AbCdEf_bizconn-01" and biz.chat_id == "888999000"

    edited = target_from_messages(normalized("telegram_private_text", bot_id="7000000001")
                                  + normalized("telegram_edited_message", bot_id="7000000001"))
    assert edited.reply_to_id == "42"
    assert edited.last_inbound_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)  # an edit reopens nothing

    group = target_from_messages(normalized("line_image_group"))
    assert group.line_to == "Ca56f94637caaaaaaaaaaaaaaaaaaaaaa" and group.line_reply_token == "0f3779fba3b349968c5d07db31eab56f"
    assert group.line_reply_token_expires_at == group.last_inbound_at + timedelta(seconds=50)

    dm = target_from_messages(normalized("x_dm_inbound") + normalized("x_dm_outbound"))
    assert dm.customer_id == "3001969357" and dm.scope == "dm"


def _message(key: str, message_id: str, at: datetime, direction: Direction = Direction.INBOUND, **extra: Any) -> SocialMessage:
    platform = Platform(key.split(":")[0])
    return SocialMessage(platform=platform, kind=Kind.DIRECT_MESSAGE, direction=direction, message_id=message_id,
                         conversation_key=key, account_id="Ubot", author=Author(platform_id="Uuser"), created_at=at, **extra)


def test_a_used_line_reply_token_is_not_offered_again() -> None:
    key = "line:dm:Ubot:Uuser"
    inbound = _message(key, "1", NOW - timedelta(seconds=5), raw={"replyToken": "abc"})
    assert target_from_messages([inbound]).line_token_fresh(NOW)
    answered = _message(key, "out-1", NOW - timedelta(seconds=2), Direction.OUTBOUND)
    assert target_from_messages([inbound, answered]).line_reply_token is None


def test_nothing_to_answer() -> None:
    key = "line:dm:Ubot:Uuser"
    with pytest.raises(ReplyFailed) as caught:
        target_from_messages([_message(key, "out", NOW, Direction.OUTBOUND)])
    assert caught.value.kind == REJECTED
    gone = _message(key, "1", NOW - timedelta(hours=1))
    deletion = _message(key, "1:deleted", NOW, deleted=True, edit_of="1")
    with pytest.raises(ReplyFailed) as caught:
        target_from_messages([gone, deletion])
    assert caught.value.kind == TARGET_DELETED
    with pytest.raises(ValueError):
        target_from_messages([gone, _message("line:dm:Ubot:Uother", "2", NOW)])


def test_the_latest_message_still_there_is_answered() -> None:
    key = "messenger:dm:1:2"
    older = _message(key, "m_1", NOW - timedelta(hours=3))
    newer = _message(key, "m_2", NOW - timedelta(hours=1))
    deletion = _message(key, "m_2:deleted", NOW, deleted=True, edit_of="m_2")
    target = target_from_messages([newer, older, deletion])
    assert target.reply_to_id == "m_1"


def test_describe_age() -> None:
    assert [describe_age(timedelta(minutes=m)) for m in (0, 45, 60 * 26, 60 * 24 * 3)] == ["1 minute", "45 minutes", "26 hours", "3 days"]


def test_build_dispatcher_reads_names_from_the_environment() -> None:
    asked: list[str] = []

    def secret(name: str) -> str:
        asked.append(name)
        return "t"

    built = build_dispatcher(env={"HUMAN_AGENT_TAG_ENABLED": "true", "PUBLIC_ACK_TEXT": "off", "META_GRAPH_URL": "https://g.example/v25.0",
                                  "META_INSTAGRAM_PAGES": f"{IG}:{PAGE}"}, get_secret=secret)
    meta = built.senders[Platform.WHATSAPP]
    assert isinstance(meta, MetaSender) and meta.base_url == "https://g.example/v25.0"
    assert meta.config.human_agent_allowed and meta.config.ack_for(Platform.FACEBOOK) is None
    assert meta.instagram_pages == {IG: PAGE}
    assert isinstance(built.senders[Platform.X], XSender) and isinstance(built.senders[Platform.TELEGRAM], TelegramSender)
    meta.token(Platform.MESSENGER, PAGE)
    built.senders[Platform.LINE].token(Platform.LINE, "Ubot")
    assert asked == [f"META_PAGE_TOKEN_{PAGE}", "LINE_CHANNEL_ACCESS_TOKEN"]
    defaults = ReplyConfig.from_env({})
    assert not defaults.human_agent_allowed
    assert defaults.ack_for(Platform.INSTAGRAM) == "We've sent you a private message." and defaults.ack_for(Platform.X) is None


# --- who the answer goes to in a thread several people write in ---------------------------------


def _said(key: str, message_id: str, minutes_ago: int, author: str, name: str | None = None, **extra: Any) -> SocialMessage:
    platform = Platform(key.split(":")[0])
    kind = Kind.COMMENT if platform in (Platform.FACEBOOK, Platform.INSTAGRAM) else Kind.DIRECT_MESSAGE
    return SocialMessage(platform=platform, kind=kind, direction=Direction.INBOUND, message_id=message_id,
                         conversation_key=key, account_id=PAGE, author=Author(platform_id=author, display_name=name),
                         created_at=NOW - timedelta(minutes=minutes_ago), **extra)


FB_THREAD = f"facebook:comment:{PAGE}_1001"


def fb_thread() -> list[SocialMessage]:
    """Dana opened the thread (the ticket is hers); Sam wrote in it last."""
    return [
        _said(FB_THREAD, f"{PAGE}_1001", 60, "6001", "Dana Reyes"),
        _said(FB_THREAD, f"{PAGE}_1002", 30, "6001", "Dana Reyes", parent_id=f"{PAGE}_1001"),
        _said(FB_THREAD, f"{PAGE}_1003", 5, "6002", "Sam Okafor", parent_id=f"{PAGE}_1001"),
    ]


def test_a_private_answer_in_a_comment_thread_goes_to_the_tickets_customer_not_the_latest_commenter() -> None:
    target = target_from_messages(fb_thread(), private=True, text="We've sent your refund details.")
    assert (target.customer_id, target.reply_to_id) == ("6001", f"{PAGE}_1002")  # Dana's latest comment
    assert target.reply_to_created_at == NOW - timedelta(minutes=30)
    pool = Pool(Raw(200, {"recipient_id": "6001", "message_id": "m_1"}), Raw(200, {"id": "c_ack"}))
    meta_sender(pool).send(ReplyRequest(target, "We've sent your refund details.", True, "k"), NOW)
    assert pool.calls[0]["body"]["recipient"] == {"comment_id": f"{PAGE}_1002"}
    # A public answer still goes into the thread, under its top-level comment.
    public = target_from_messages(fb_thread())
    assert public.thread_root_id == f"{PAGE}_1001" and public.customer_id == "6001"


def test_a_private_answer_is_refused_when_the_customer_has_no_comment_left() -> None:
    gone = [m.model_copy(update={"deleted": True}) if m.author.platform_id == "6001" else m for m in fb_thread()]
    with pytest.raises(ReplyFailed) as caught:
        target_from_messages(gone, private=True, text="Your order ships today.")
    assert caught.value.kind == TARGET_DELETED
    assert caught.value.plain_words == (
        "Not sent: a private reply answers one of the customer's own comments, and Dana Reyes's comments in this "
        "thread are no longer on Facebook. socialdesk does not send it to anyone else in the thread. Answer publicly instead."
    )
    assert target_from_messages(gone).reply_to_id == f"{PAGE}_1003"  # a public answer stays in the thread


def test_a_private_answer_that_mentions_someone_else_in_the_thread_is_refused() -> None:
    with pytest.raises(ReplyFailed) as caught:
        target_from_messages(fb_thread(), private=True, text="@Sam Okafor your order #555 ships tomorrow.")
    assert caught.value.kind == REJECTED
    assert caught.value.plain_words == (
        "Not sent: this private reply mentions Sam Okafor, but a private reply goes only to the ticket's customer, "
        "Dana Reyes. To answer Sam Okafor, write to them on Facebook directly; to send this to Dana Reyes, remove the mention."
    )
    # Naming the customer, or a name that only starts like someone else's, is fine.
    assert target_from_messages(fb_thread(), private=True, text="@Dana Reyes, Sam asked too: it ships.").customer_id == "6001"
    assert target_from_messages(fb_thread(), private=True, text="@Samantha will call you.").customer_id == "6001"


def test_groups_address_the_ticket_customer_not_the_latest_speaker() -> None:
    group = "telegram:group:-1001987654321:main"
    telegram = [_said(group, "-1001987654321:40", 20, "444", "Ravi"), _said(group, "-1001987654321:41", 1, "555", "Mo")]
    target = target_from_messages(telegram)
    assert (target.customer_id, target.reply_to_id, target.chat_id) == ("444", "40", "-1001987654321")

    line_group = "line:group:Ubot:Cgroup1"
    line = [_said(line_group, "L1", 20, "Uravi", raw={"replyToken": "t1"}), _said(line_group, "L2", 1, "Umo", raw={"replyToken": "t2"})]
    target = target_from_messages(line)
    assert (target.customer_id, target.reply_to_id, target.line_to) == ("Uravi", "L1", "Cgroup1")
    pool = Pool(Raw(200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}))
    LineSender(lambda _a: "t", base_url="https://line.example", pool=pool).send(ReplyRequest(target, "hi", True, "k"), NOW)
    assert pool.calls[0]["body"]["to"] == "Uravi"  # privately: the customer, not whoever spoke last
