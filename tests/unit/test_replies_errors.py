"""Each platform's error answers -> ``ReplyFailed`` kind, retry time and plain words."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.models import Platform
from chalicelib.outbound import FAILURE_KINDS, ReplyFailed
from chalicelib.channels.line.replies import line_failure
from chalicelib.channels.meta.replies import expiry_date, graph_failure
from chalicelib.channels.telegram.replies import telegram_failure
from chalicelib.channels.x.replies import x_failure

NOW = datetime(2026, 11, 21, 11, 12, tzinfo=timezone.utc)


def graph(code: int, subcode: int | None = None, message: str = "", **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message or f"(#{code}) error", "type": "OAuthException", "code": code, "fbtrace_id": "A1"}
    if subcode is not None:
        error["error_subcode"] = subcode
    error.update(extra)
    return {"error": error}


EXPIRED = "Error validating access token: Session has expired on Friday, 20-Nov-26 10:00:00 PST. The current time is Saturday, 21-Nov-26 03:12:44 PST."


# --- Meta ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "status", "body", "kind", "words"),
    [
        (Platform.MESSENGER, 400, graph(190, 463, EXPIRED), "token_expired",
         "Not sent: the Facebook Page token expired on 2026-11-20. Reconnect the Page in socialdesk settings."),
        (Platform.WHATSAPP, 401, graph(190, message="Error validating access token: Session has expired."), "token_expired",
         "Not sent: the WhatsApp access token expired. Reconnect WhatsApp in socialdesk settings."),
        (Platform.INSTAGRAM, 400, graph(190, 460, "Error validating access token: password changed"), "token_revoked",
         "Not sent: Meta no longer accepts socialdesk's access to the Instagram account (the password was changed). "
         "Reconnect the Instagram account in socialdesk settings."),
        (Platform.FACEBOOK, 400, graph(190, 467, "Error validating access token: logged out"), "token_revoked",
         "Not sent: Meta no longer accepts socialdesk's access to the Facebook Page (the person logged out or the "
         "session was invalidated). Reconnect the Page in socialdesk settings."),
        (Platform.FACEBOOK, 403, graph(200, message="(#200) Requires pages_manage_engagement permission"), "permission_missing",
         "Not sent: socialdesk's connection to the Facebook Page lacks a permission needed to reply (Meta says: (#200) "
         "Requires pages_manage_engagement permission). Reconnect the Page in socialdesk settings and grant every "
         "permission asked for."),
        (Platform.MESSENGER, 400, graph(10, message="(#10) Application does not have permission for this action"),
         "permission_missing", None),
        (Platform.MESSENGER, 400, graph(10, 2018278, "(#10) This message is sent outside of allowed window."), "window_closed",
         "Not sent: Messenger says the reply window for this conversation has closed. Wait for the customer to write again."),
        (Platform.INSTAGRAM, 400, graph(10, 2534022), "window_closed", None),
        (Platform.WHATSAPP, 400, graph(131047, message="Re-engagement message"), "window_closed",
         "Not sent: WhatsApp says more than 24 hours have passed since the customer's last message. Send a template "
         "message from WhatsApp Manager or wait for the customer to write again."),
        (Platform.WHATSAPP, 400, graph(131051, message="Unsupported message type"), "rejected",
         "Not sent: WhatsApp does not support this kind of message."),
        (Platform.WHATSAPP, 400, graph(131026, message="Message Undeliverable"), "rejected", None),
        (Platform.MESSENGER, 400, graph(551, 1545041, "This person isn't available right now."), "rejected",
         "Not sent: this person can't receive messages from the Facebook Page right now (they may have blocked it or "
         "deactivated their account)."),
        (Platform.FACEBOOK, 400, graph(100, 33, "Unsupported post request. Object with ID '1_2' does not exist"),
         "target_deleted", "Not sent: the comment you're replying to no longer exists on Facebook; its author probably deleted it."),
        (Platform.FACEBOOK, 400, graph(10900, message="(#10900) Activity already replied to"), "rejected",
         "Not sent: this comment already has a private reply; Facebook allows only one. Continue in the private "
         "conversation instead."),
        (Platform.FACEBOOK, 400, graph(10903, message="(#10903) This user can't reply to this activity"), "rejected",
         "Not sent: Facebook does not let this person receive a private reply to this comment. Answer publicly instead."),
        (Platform.MESSENGER, 400, graph(100, 2018001, "(#100) No matching user found"), "rejected",
         "Not sent: Messenger can't find this customer for the Facebook Page any more."),
        (Platform.FACEBOOK, 500, graph(2, message="An unexpected error has occurred. Please retry your request later.",
                                       is_transient=True), "unavailable", None),
        (Platform.MESSENGER, 400, graph(1, 1357046, "Received invalid JSON reply."), "unavailable", None),
        (Platform.WHATSAPP, 400, graph(131009, message="(#131009) Parameter value is not valid"), "rejected",
         "Not sent: WhatsApp refused the reply (Meta says: (#131009) Parameter value is not valid)."),
    ],
)
def test_graph_errors(platform: Platform, status: int, body: dict[str, Any], kind: str, words: str | None) -> None:
    failure = graph_failure(platform, status, body, {}, NOW)
    assert failure.kind == kind
    assert failure.plain_words.startswith(("Not sent: ", "Not confirmed: "))
    if words is not None:
        assert failure.plain_words == words
    assert failure.transient == (kind in ("unavailable", "rate_limited"))
    assert failure.platform is platform


def test_graph_throttling_waits_for_the_business_use_case_header() -> None:
    usage = json.dumps({"448242228374517": [{"type": "messenger", "call_count": 100, "estimated_time_to_regain_access": 14}]})
    failure = graph_failure(Platform.MESSENGER, 400, graph(80006, message="(#80006) too many calls"),
                            {"X-Business-Use-Case-Usage": usage}, NOW)
    assert failure.kind == "rate_limited" and failure.transient
    assert failure.retry_at == NOW + timedelta(minutes=14)
    assert failure.plain_words == (
        "Not sent: Messenger is limiting how much this Facebook Page can send. It can be sent again after 11:26 UTC."
    )


def test_whatsapp_throughput_limits() -> None:
    failure = graph_failure(Platform.WHATSAPP, 400, graph(130429, message="Rate limit hit"), {}, NOW)
    assert failure.kind == "rate_limited" and failure.retry_at == NOW + timedelta(minutes=1)
    assert "how many messages this WhatsApp number can send per second" in failure.plain_words
    pair = graph_failure(Platform.WHATSAPP, 400, graph(131056, message="(Business Account, Consumer Account) pair rate limit hit"), {}, NOW)
    assert pair.kind == "rate_limited" and "to this customer in a short time" in pair.plain_words


def test_a_window_error_on_a_tagged_message_points_at_the_human_agent_feature() -> None:
    failure = graph_failure(Platform.MESSENGER, 400, graph(10, 2018278), {}, NOW, tagged=True)
    assert failure.kind == "window_closed" and "Human Agent feature" in failure.plain_words


def test_code_1357046_may_have_been_sent() -> None:
    failure = graph_failure(Platform.MESSENGER, 400, graph(1, 1357046, "Received invalid JSON reply."), {}, NOW)
    assert failure.duplicate_risk and not failure.retry_is_safe
    assert failure.plain_words.startswith("Not confirmed: Messenger had a temporary problem")


def test_expiry_dates() -> None:
    assert expiry_date(EXPIRED) == "2026-11-20"
    assert expiry_date("Session has expired on Sunday, 03-Jan-2027 10:00:00 PST.") == "2027-01-03"
    assert expiry_date("Session has expired.") is None


# --- X ---------------------------------------------------------------------------------------


def problem(status: int, detail: str, title: str = "Forbidden", kind: str = "about:blank") -> dict[str, Any]:
    return {"title": title, "detail": detail, "type": kind, "status": status}


@pytest.mark.parametrize(
    ("status", "body", "dm", "kind", "words"),
    [
        (401, problem(401, "Unauthorized", "Unauthorized"), False, "token_expired",
         "Not sent: X no longer accepts socialdesk's authorization for the X account (it expired or was revoked). "
         "Reconnect the X account in socialdesk settings."),
        (403, problem(403, "You are not allowed to create a Tweet with duplicate content."), False, "rejected",
         "Not sent: X refused it as a duplicate of a recent post from this account. If an earlier attempt went through, "
         "the answer is already on X; otherwise reword it and send again."),
        (403, problem(403, "You attempted to reply to a Tweet that is deleted or not visible to you."), False,
         "target_deleted", "Not sent: the post you're replying to is no longer on X (deleted, or its author made it private)."),
        (403, problem(403, "Reply to this conversation is not allowed because you have not been mentioned or otherwise "
                           "engaged by the author of the post you are replying to."), False, "rejected",
         "Not sent: the author limited who can reply to this post on X. Answer by direct message instead."),
        (403, problem(403, "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.",
                      kind="https://api.twitter.com/2/problems/oauth1-permissions"), False, "permission_missing", None),
        (403, problem(403, "Forbidden"), True, "permission_missing",
         "Not sent: socialdesk's authorization for the X account does not allow sending direct messages. Reconnect the "
         "X account in socialdesk settings and grant dm.write."),
        (403, problem(403, "You cannot send messages to this user."), True, "rejected",
         "Not sent: this customer can't receive direct messages from the X account (X says: You cannot send messages "
         "to this user.). They may have closed their DMs or blocked the account."),
        (400, {"errors": [{"parameters": {}, "message": "Your Tweet text is too long."}], "title": "Invalid Request",
               "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"},
         False, "rejected", None),
        (503, problem(503, "Service Unavailable", "Service Unavailable"), False, "unavailable", None),
    ],
)
def test_x_errors(status: int, body: dict[str, Any], dm: bool, kind: str, words: str | None) -> None:
    failure = x_failure(status, body, {}, NOW, dm=dm)
    assert failure.kind == kind
    if words is not None:
        assert failure.plain_words == words
    assert failure.transient == (kind == "unavailable")


def test_x_rate_limit_retry_at_is_the_latest_exhausted_window() -> None:
    reset = int((NOW + timedelta(minutes=9)).timestamp())
    daily = int((NOW + timedelta(hours=5)).timestamp())
    failure = x_failure(429, problem(429, "Too Many Requests", "Too Many Requests"),
                        {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}, NOW, dm=False)
    assert failure.kind == "rate_limited" and failure.retry_at == datetime.fromtimestamp(reset, tz=timezone.utc)
    assert failure.plain_words == (
        "Not sent: X is limiting how many posts this X account can publish. It can be sent again after 11:21 UTC."
    )
    both = x_failure(429, {}, {"x-rate-limit-remaining": "3", "x-rate-limit-reset": str(reset),
                               "x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(daily)}, NOW, dm=True)
    assert both.retry_at == datetime.fromtimestamp(daily, tz=timezone.utc)
    assert x_failure(429, {}, {}, NOW, dm=True).retry_at == NOW + timedelta(minutes=15)


# --- Telegram ------------------------------------------------------------------------------------


def tg(code: int, description: str, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        (tg(403, "Forbidden: bot was blocked by the user"), "rejected",
         "Not sent: the customer blocked the Telegram bot, so it can't message them."),
        (tg(400, "Bad Request: message to be replied not found"), "target_deleted",
         "Not sent: the message you're replying to no longer exists in Telegram; it was deleted."),
        (tg(400, "Bad Request: replied message not found"), "target_deleted", None),
        (tg(400, "Bad Request: message thread not found"), "target_deleted",
         "Not sent: the topic you're replying to no longer exists in Telegram; it was deleted."),
        (tg(401, "Unauthorized"), "token_revoked",
         "Not sent: Telegram no longer accepts the bot's token (it was revoked or replaced in @BotFather). Reconnect the "
         "Telegram bot in socialdesk settings with the current token."),
        (tg(403, "Forbidden: bot was kicked from the supergroup chat"), "permission_missing", None),
        (tg(400, "Bad Request: chat not found"), "rejected", "Not sent: Telegram can't find this chat for the bot any more."),
        (tg(400, "Bad Request: TOPIC_CLOSED"), "rejected", None),
        (tg(502, "Bad Gateway"), "unavailable", None),
    ],
)
def test_telegram_errors(body: dict[str, Any], kind: str, words: str | None) -> None:
    failure = telegram_failure(body["error_code"], body, NOW, group=False)
    assert failure.kind == kind
    if words is not None:
        assert failure.plain_words == words


def test_telegram_retry_after() -> None:
    failure = telegram_failure(429, tg(429, "Too Many Requests: retry after 35", retry_after=35), NOW, group=True)
    assert failure.kind == "rate_limited" and failure.transient and failure.retry_at == NOW + timedelta(seconds=35)
    assert failure.plain_words == (
        "Not sent: Telegram is limiting how fast the bot can send in this group. It can be sent again after 11:12 UTC."
    )


# --- LINE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "push", "kind", "words"),
    [
        (401, {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."}, True,
         "token_expired",
         "Not sent: LINE no longer accepts the channel access token (it expired or was reissued). Reconnect the LINE "
         "channel in socialdesk settings."),
        (400, {"message": "Invalid reply token"}, False, "rejected",
         "Not sent: LINE's reply token for this message expired or was already used."),
        (400, {"message": "Failed to send messages"}, True, "rejected", None),
        (403, {"message": "Access to this API is not available for your account"}, True, "permission_missing", None),
        (429, {"message": "The API rate limit has been exceeded. Try again later."}, True, "rate_limited",
         "Not sent: LINE is limiting how fast this channel can send. It can be sent again after 11:13 UTC."),
        (500, {"message": "Internal server error"}, True, "unavailable",
         "Not sent: LINE had a temporary problem (HTTP 500). Sending again is safe."),
    ],
)
def test_line_errors(status: int, body: dict[str, Any], push: bool, kind: str, words: str | None) -> None:
    failure = line_failure(status, body, NOW, push=push)
    assert failure.kind == kind
    if words is not None:
        assert failure.plain_words == words


def test_line_push_5xx_is_safe_to_retry_but_a_reply_5xx_is_not() -> None:
    assert line_failure(502, {}, NOW, push=True).retry_is_safe
    assert not line_failure(502, {}, NOW, push=False).retry_is_safe


def test_line_monthly_limit_waits_for_next_month() -> None:
    failure = line_failure(429, {"message": "You have reached your monthly limit."}, NOW, push=True)
    assert failure.kind == "rate_limited" and not failure.transient
    assert failure.retry_at == datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
    assert failure.plain_words == (
        "Not sent: LINE is limiting this LINE Official Account: its monthly message quota is used up. It can be sent "
        "again after 2026-11-30 15:00 UTC. Upgrade the LINE plan to send sooner."
    )


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(ValueError):
        ReplyFailed("exploded", "Not sent.")
    assert len(FAILURE_KINDS) == 8
