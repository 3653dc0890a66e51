"""Answers on Google reviews: the Business Profile review reply.

``PUT {GOOGLE_BUSINESS_API_URL}/v4/accounts/{a}/locations/{l}/reviews/{r}/reply`` with
``{"comment": "..."}`` (``accounts.locations.reviews.updateReply``, scope
``https://www.googleapis.com/auth/business.manage``, ``Authorization: Bearer`` the
``GOOGLE_ACCESS_TOKEN``) answers a ``ReviewReply`` ``{"comment", "updateTime"}``. It
creates the review's reply or replaces the one it has: a review has one reply, so a
second answer on the ticket replaces the first (the note says so), and sending the same
answer again changes nothing. That makes every send safe to repeat: a lost answer is
retried, never ``duplicate_risk``.

Before the PUT the review is read (``GET /v4/{review}``): a deleted review is noted
without writing anything, and an earlier reply (ours, or one written on Google) is known,
so the note can say it was replaced (unless it holds the same words: a resend).

Google's errors are ``{"error": {"code", "message", "status"}}``:

* 401 ``UNAUTHENTICATED`` -> ``token_expired`` (access tokens last an hour; the refresh
  flow outside socialdesk stopped, or the grant was revoked)
* 403 ``PERMISSION_DENIED`` -> ``permission_missing`` (the Google account does not manage
  the location, or the token lacks the scope)
* ``FAILED_PRECONDITION``, or a message about verification -> ``rejected``: replies are
  "only valid if the specified location is verified"
* 404 ``NOT_FOUND`` -> ``target_deleted`` (Google also answers so for a location that is no
  longer verified or managed: the note names both)
* 429 -> ``rate_limited`` (``Retry-After``, else a minute); 5xx -> ``unavailable``
* another 400 -> ``rejected`` with Google's words (rejected replies name the policy they break)

Length: 4096 bytes of UTF-8, checked before sending (``GoogleChannel.text_limit``). Google's
reference names no limit on ``ReviewReply.comment``; integrations use 4096 (some say
characters): counting bytes is the stricter reading, so nothing Google might refuse is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from chalicelib.http import json_object, parse_retry_after
from chalicelib.models import Platform
from chalicelib.outbound.base import (
    PERMISSION_MISSING,
    RATE_LIMITED,
    REJECTED,
    TARGET_DELETED,
    TOKEN_EXPIRED,
    UNAVAILABLE,
    HttpSender,
    ReplyFailed,
    ReplyRequest,
    SentReply,
    SingleApiSender,
    json_body,
    rate_limited_words,
    short_detail,
    unavailable_words,
    utc,
)

DEFAULT_BASE_URL = "https://mybusiness.googleapis.com"
BASE_URL_ENV = "GOOGLE_BUSINESS_API_URL"
REPLY_LIMIT_BYTES = 4096
DEFAULT_RETRY_AFTER = 60  # seconds, when a 429 does not say
_REVIEW_NAME = re.compile(r"^(accounts/[^/?#\s]+/locations/[^/?#\s]+)/reviews/[^/?#\s]+$")
REPLACED_WARNING = "It replaced the reply the review had before: Google shows one reply per review."


def review_name(conversation_key: str) -> str | None:
    """The review's resource name in a ``google:review:<name>`` key (None for another key)."""
    platform, _, rest = conversation_key.partition(":")
    scope, _, name = rest.partition(":")
    if platform != Platform.GOOGLE.value or scope != "review" or not _REVIEW_NAME.match(name) or ".." in name.split("/"):
        return None
    return name


def google_failure(
    status: int, body: Mapping[str, Any], now: datetime, *, location: str, retry_after: str | None = None
) -> ReplyFailed:
    """The ``ReplyFailed`` for a Business Profile API error answer."""
    error = json_object(body.get("error"))
    word = str(error.get("status") or "")
    message = short_detail(error.get("message") or "")
    common: dict[str, Any] = {"platform": Platform.GOOGLE, "code": word or str(status), "detail": message or None}
    says = f" (Google says: {message})" if message else ""
    if status == 401:
        return ReplyFailed(
            TOKEN_EXPIRED,
            "Not sent: Google no longer accepts socialdesk's access token for the Business Profile (it expired or "
            "was revoked). Reconnect the Business Profile in socialdesk settings.",
            **common,
        )
    if word == "FAILED_PRECONDITION" or "verif" in message.lower():
        return ReplyFailed(
            REJECTED,
            f"Not sent: Google accepts review replies only for verified locations, and this location ({location}) "
            "is not verified. Verify it in Google Business Profile, then send the answer again.",
            **{**common, "code": "location_not_verified"},
        )
    if status == 403:
        return ReplyFailed(
            PERMISSION_MISSING,
            f"Not sent: the Google account socialdesk uses may not answer reviews of this location{says}. "
            "Make it an owner or manager of the Business Profile and grant the business.manage scope.",
            **common,
        )
    if status in (404, 410):
        return ReplyFailed(
            TARGET_DELETED,
            "Not sent: the review is no longer on Google (the reviewer deleted it or Google removed it), or the "
            "location is no longer verified or managed by socialdesk's Google account.",
            **common,
        )
    if status == 429:
        wait = parse_retry_after(retry_after) or DEFAULT_RETRY_AFTER
        retry_at = utc(now) + timedelta(seconds=max(1.0, wait))
        what = "how many replies socialdesk's Google project can send"
        return ReplyFailed(
            RATE_LIMITED, rate_limited_words(Platform.GOOGLE, retry_at, now, what), retry_at=retry_at, transient=True, **common
        )
    if status >= 500 or status == 408:
        # The reply is a PUT: applying it twice leaves one reply with the same words.
        return HttpSender.server_error(Platform.GOOGLE, status, retry_safe=True, detail=message or None)
    return ReplyFailed(REJECTED, f"Not sent: Google refused the reply{says or f' (HTTP {status})'}.", **common)


class GoogleReviewSender(SingleApiSender):
    """Answers Google reviews as the Business Profile (see the module docstring)."""

    platforms = frozenset({Platform.GOOGLE})
    default_base_url = DEFAULT_BASE_URL
    base_url_env = BASE_URL_ENV

    def send(self, request: ReplyRequest, now: datetime) -> SentReply:
        """Read the review, then PUT its reply."""
        target = request.target
        if request.private:
            raise ReplyFailed(
                REJECTED,
                "Not sent: a Google review can only be answered in public, under the review. Remove the "
                "socialdesk_private tag to answer there, or contact the customer another way.",
                platform=Platform.GOOGLE,
                code="private_on_review",
            )
        name = review_name(target.conversation_key)
        if name is None:
            raise ReplyFailed(
                REJECTED,
                "Not sent: socialdesk can answer Google reviews only, and this conversation is not one.",
                platform=Platform.GOOGLE,
                code="not_a_review",
            )
        location = name.rsplit("/reviews/", 1)[0]
        client = self.bearer_client(Platform.GOOGLE, target.account_id or location)
        path = "/v4/" + quote(name, safe="/")
        earlier = self._earlier_reply(client, path, now, location)
        # The same words already there: a resend after a lost answer, not a replacement.
        replaced = earlier is not None and earlier != request.text
        response = self._call(client, "PUT", path + "/reply", {"comment": request.text})
        if not response.ok:
            raise google_failure(
                response.status, json_body(response), now, location=location, retry_after=response.header("Retry-After")
            )
        reply = json_body(response)
        updated = str(reply.get("updateTime") or now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        return SentReply(
            platform_message_id=f"{name}/reply@{updated}",
            via="public_reply",
            warnings=(REPLACED_WARNING,) if replaced else (),
        )

    def _earlier_reply(self, client: Any, path: str, now: datetime, location: str) -> str | None:
        """The words of the review's reply, if it has one; ``ReplyFailed`` when it cannot be answered at all."""
        response = self._call(client, "GET", path, None)
        if not response.ok:
            raise google_failure(
                response.status, json_body(response), now, location=location, retry_after=response.header("Retry-After")
            )
        comment = json_object(json_body(response).get("reviewReply")).get("comment")
        return str(comment) if comment else None

    @staticmethod
    def _call(client: Any, method: str, path: str, body: Any) -> Any:
        """One request; transport failures are safe to retry (a GET, or a PUT of the same reply)."""
        from chalicelib.http import ConnectFailed, TransportError

        try:
            return client.request(method, path, json=body)
        except ConnectFailed:
            words = unavailable_words(Platform.GOOGLE, maybe_sent=False)
            raise ReplyFailed(UNAVAILABLE, words, transient=True, platform=Platform.GOOGLE, code="connect") from None
        except TransportError as exc:
            words = unavailable_words(Platform.GOOGLE, maybe_sent=True, safe_retry=True)
            raise ReplyFailed(UNAVAILABLE, words, transient=True, platform=Platform.GOOGLE, code=type(exc).__name__) from None
