"""Google Business Profile reviews, delivered as Cloud Pub/Sub push notifications.

Google never calls us directly. Business Profile publishes a small notification to a
Pub/Sub topic (``NotificationSetting.notificationTypes`` ``NEW_REVIEW`` /
``UPDATED_REVIEW``); a push subscription POSTs it here as::

    {"message": {"data": "<base64 JSON>", "messageId": "...", "publishTime": "...",
                 "attributes": {...}},
     "subscription": "projects/<p>/subscriptions/<s>"}

with ``data`` decoding to ``{"type": "NEW_REVIEW", "location": "accounts/A/locations/L",
"review": "accounts/A/locations/L/reviews/R"}``. The notification carries no review
text, so each one is followed by ``GET https://mybusiness.googleapis.com/v4/{review}``.

Authentication: the push subscription attaches a Google-signed OIDC token
(``Authorization: Bearer <JWT>``, RS256, keys at
``https://www.googleapis.com/oauth2/v3/certs``). We check the signature, ``iss``
(``https://accounts.google.com`` or ``accounts.google.com``), ``aud`` (the audience set
on the subscription), ``exp``, and that ``email`` is the subscription's push service
account with ``email_verified``. The email check is not optional: anyone with a Google
account can mint a Google-signed token for any audience, so the audience alone proves
nothing. The token authenticates the sender, not the body (TLS protects that).

Acknowledgement: Pub/Sub treats any non-2xx answer as a nack and redelivers with
backoff, so a failed review fetch answers 503 and nothing is stored until the whole
review has been read and normalized.

PyJWT and ``cryptography`` are imported only inside the verifier: other routes sharing
the Lambda do not pay for them at cold start.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from pydantic import ValidationError

from chalicelib.errors import BadRequest, NotConfigured, PayloadTooLarge, Unauthorized, Unavailable
from chalicelib.inbound.intake import BatchStore, IngestResult, SavedBatch, Verifier, parse_json_body, save_batch
from chalicelib.inbound.signatures import SignatureError, get_header
from chalicelib.models import (
    Author,
    Direction,
    Kind,
    NormalizedBatch,
    Platform,
    RejectedEvent,
    SocialMessage,
    conversation_key,
)
from chalicelib.store import StoreUnavailable

if TYPE_CHECKING:  # only for annotations: importing PyJWT is deferred to first use
    from jwt import PyJWK, PyJWKClient

    from chalicelib.http import JsonHttpClient

SOURCE = "google"
GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_BUSINESS_API_URL = "https://mybusiness.googleapis.com"
# Google issues ID tokens with either spelling of the issuer.
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
REVIEW_TYPES = frozenset({"NEW_REVIEW", "UPDATED_REVIEW"})
STAR_RATINGS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}
DEFAULT_TICKET_MAX_STARS = 3
ANONYMOUS_REVIEWER = "Anonymous reviewer"
# Pub/Sub push bodies for these notifications are a few hundred bytes; anything near
# this size is not from Google.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
# Google's JWKS changes a few times a day and new keys are published before they sign
# anything, so an hour of caching is safe; an unknown kid still forces one refetch.
DEFAULT_JWKS_LIFESPAN_SECONDS = 3600
# A flood of tokens with made-up kids must not turn into a flood of JWKS fetches.
DEFAULT_JWKS_REFRESH_COOLDOWN_SECONDS = 30
# The whole push must be answered within the subscription's ack deadline (10 s by
# default): keep every outbound call well inside it.
JWKS_TIMEOUT_SECONDS = 3.0
API_TIMEOUT = (3.05, 5.0)
# Clock skew tolerated on exp/iat.
TOKEN_LEEWAY_SECONDS = 30
# A review that is still not found this long after Google announced it is taken to be
# deleted: the notification is quarantined and acknowledged instead of retried for the
# subscription's whole retention (7 days by default).
DEFAULT_GIVE_UP_AFTER = timedelta(hours=24)

_SEGMENT = r"[^/?#\s]+"
_REVIEW_NAME = re.compile(rf"^(accounts/{_SEGMENT}/locations/{_SEGMENT})/reviews/{_SEGMENT}$")
_LOCATION_NAME = re.compile(rf"^accounts/{_SEGMENT}/locations/{_SEGMENT}$")


# --- errors --------------------------------------------------------------------------


class JwksUnavailable(SignatureError):
    """Google's key set could not be fetched, so no token can be checked right now.

    A ``SignatureError`` so any generic intake still refuses the request (and Pub/Sub
    retries); ``receive_review_push`` answers it with 503 rather than 401.
    """


class MalformedNotification(BadRequest):
    """A genuine Pub/Sub push whose notification data we cannot read.

    Retrying cannot fix it, so ``receive_review_push`` quarantines it and acknowledges.
    """


class ReviewFetchError(Exception):
    """Reading a review from the Business Profile API failed.

    ``transient``: retrying later may succeed (network, 408, 429, 5xx). Otherwise a
    person must act (401/403: token or access) or the review is gone (404/410).
    ``status`` is the HTTP status when there was a response.
    """

    transient: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientReviewFetchError(ReviewFetchError):
    """The API did not answer usefully this time; try again later."""

    transient = True


class PermanentReviewFetchError(ReviewFetchError):
    """The API refused the request; the same request will keep failing until someone acts."""


class ReviewNotFound(PermanentReviewFetchError):
    """404/410: the review does not exist (deleted, or not readable yet)."""


# --- token verification --------------------------------------------------------------


class KeySource(Protocol):
    """Where the verifier finds the public key named by a token's ``kid``.

    ``get_signing_key`` returns a ``jwt.PyJWK``; it raises ``SignatureError`` for an
    unknown kid and ``JwksUnavailable`` when the key set cannot be read.
    """

    def get_signing_key(self, kid: str) -> PyJWK: ...


class StaticKeySource:
    """A fixed JWKS document (``{"keys": [...]}``): tests, or pinned keys."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._jwks = dict(jwks)
        self._keys: dict[str, PyJWK] | None = None

    def get_signing_key(self, kid: str) -> PyJWK:
        """The key with this ``kid`` or ``SignatureError``."""
        if self._keys is None:
            from jwt import PyJWKSet
            from jwt.exceptions import PyJWKSetError

            try:
                key_set = PyJWKSet.from_dict(self._jwks)
            except PyJWKSetError as exc:
                raise JwksUnavailable(f"the static key set is unusable: {exc}") from exc
            self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        key = self._keys.get(kid)
        if key is None:
            raise SignatureError(f"no Google signing key with kid {kid!r}")
        return key


class RemoteKeySource:
    """A JWKS URL read through PyJWT's ``PyJWKClient``.

    The whole key set is cached for ``lifespan`` seconds; an unknown ``kid`` forces one
    refetch (at most every ``cooldown`` seconds). Per-kid caching (``cache_keys``) stays
    off: its LRU never expires, so a key Google withdrew would stay trusted for the life
    of the container, while the set cache already avoids any network call per request.
    """

    def __init__(
        self,
        url: str = GOOGLE_JWKS_URL,
        *,
        lifespan: float = DEFAULT_JWKS_LIFESPAN_SECONDS,
        cooldown: float = DEFAULT_JWKS_REFRESH_COOLDOWN_SECONDS,
        timeout: float = JWKS_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self._lifespan = lifespan
        self._cooldown = cooldown
        self._timeout = timeout
        self._client: PyJWKClient | None = None
        self._lock = threading.Lock()

    def _jwk_client(self) -> PyJWKClient:
        with self._lock:
            if self._client is None:
                from jwt import PyJWKClient

                self._client = PyJWKClient(
                    self.url,
                    cache_keys=False,
                    cache_jwk_set=True,
                    lifespan=self._lifespan,
                    timeout=self._timeout,
                    cooldown_duration=self._cooldown,
                )
            return self._client

    def get_signing_key(self, kid: str) -> PyJWK:
        """The key with this ``kid``, fetching (or refetching once) the key set as needed."""
        from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError

        try:
            return self._jwk_client().get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            raise JwksUnavailable(f"could not fetch Google's signing keys: {exc}") from exc
        except PyJWKSetError as exc:
            raise JwksUnavailable(f"Google's key set is unusable: {exc}") from exc
        except PyJWKClientError as exc:
            message = str(exc)
            if "Unable to find a signing key" in message:
                raise SignatureError(f"no Google signing key with kid {kid!r}") from exc
            raise JwksUnavailable(f"Google's key set is unusable: {message}") from exc


# One key source per URL per container: warm invocations reuse the cached key set.
_KEY_SOURCES: dict[str, RemoteKeySource] = {}
_KEY_SOURCES_LOCK = threading.Lock()


def google_key_source(url: str | None = None) -> RemoteKeySource:
    """The process-wide key source for ``url`` (default: env ``GOOGLE_JWKS_URL``, else Google's)."""
    url = url or os.environ.get("GOOGLE_JWKS_URL") or GOOGLE_JWKS_URL
    with _KEY_SOURCES_LOCK:
        source = _KEY_SOURCES.get(url)
        if source is None:
            source = _KEY_SOURCES[url] = RemoteKeySource(url)
        return source


def clear_key_sources() -> None:
    """Forget every cached key set (tests: a later sandbox may reuse a port)."""
    with _KEY_SOURCES_LOCK:
        _KEY_SOURCES.clear()


class OidcPushVerifier:
    """Checks the Google-signed OIDC token a Pub/Sub push subscription attaches.

    ``audience`` is the subscription's configured audience (by default Google uses the
    push endpoint URL). ``allowed_emails`` are the service accounts the subscription
    signs as; it must name at least one (see the module docstring for why).
    """

    def __init__(self, audience: str, *, allowed_emails: Collection[str] | None, jwks: KeySource) -> None:
        if not audience:
            raise ValueError("audience must be set")
        emails = frozenset(e.strip().lower() for e in (allowed_emails or ()) if e and e.strip())
        if not emails:
            # Fail closed: without this check any Google account could push to us.
            raise ValueError("allowed_emails must name the push subscription's service account")
        self.audience = audience
        self.allowed_emails = emails
        self._keys = jwks

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ``SignatureError`` unless ``headers`` carry a valid push token.

        ``body`` is unused: the token is not bound to it.
        """
        token = self._bearer(headers)
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise SignatureError(f"the bearer token is not a JWT: {exc}") from exc
        if header.get("alg") != "RS256":
            raise SignatureError(f"unexpected token algorithm {header.get('alg')!r}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SignatureError("the token names no signing key (kid)")
        key = self._keys.get_signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=GOOGLE_ISSUERS,
                leeway=TOKEN_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "email"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise SignatureError("the push token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise SignatureError("the push token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise SignatureError("the push token was not issued by Google") from exc
        except jwt.InvalidSignatureError as exc:
            raise SignatureError("the push token's signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise SignatureError(f"invalid push token: {exc}") from exc
        if claims.get("email_verified") is not True:
            raise SignatureError("the push token's email is not verified")
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() not in self.allowed_emails:
            raise SignatureError("the push token was issued to another service account")

    @staticmethod
    def _bearer(headers: Mapping[str, str]) -> str:
        value = get_header(headers, "Authorization")
        if not value:
            raise SignatureError("missing Authorization header")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SignatureError("the Authorization header is not a Bearer token")
        if token.count(".") != 2:
            raise SignatureError("the bearer token is not a JWT")
        return token


# --- parsing the push ----------------------------------------------------------------


@dataclass(frozen=True)
class ReviewNotification:
    """A review notification, decoded from one Pub/Sub push."""

    review_name: str
    location_name: str
    type: str
    message_id: str
    publish_time: datetime | None = None
    subscription: str | None = None

    def to_event(self) -> dict[str, Any]:
        """A JSON-safe dict (for quarantine and the stored ``raw``)."""
        return {
            "type": self.type,
            "review": self.review_name,
            "location": self.location_name,
            "messageId": self.message_id,
            "publishTime": self.publish_time.isoformat() if self.publish_time else None,
            "subscription": self.subscription,
        }


def _first_str(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def parse_timestamp(value: str) -> datetime:
    """An RFC 3339 timestamp as Google writes it (``Z``, up to 9 fractional digits)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # datetime takes at most 6 fractional digits; Google may send 9.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _decode_data(data: str) -> Any:
    padded = data.strip() + "=" * (-len(data.strip()) % 4)
    try:
        # Pub/Sub uses standard base64; tolerate the URL-safe alphabet too.
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedNotification(f"message.data is not base64-encoded JSON: {exc}") from exc


def parse_push(payload: Any) -> ReviewNotification | None:
    """Decode a Pub/Sub push body into a review notification.

    Returns ``None`` for notification types other than ``NEW_REVIEW`` and
    ``UPDATED_REVIEW`` (questions, media, Google updates...). Raises ``BadRequest``
    when the body is not a Pub/Sub push, and ``MalformedNotification`` (a
    ``BadRequest``) when the push is fine but its data is not a review notification
    we can read. Field names: Google's reference documents ``reviewName`` /
    ``locationName`` (v4) and ``review_name`` / ``location_name`` (v1), while captured
    deliveries use ``review`` / ``location``; all are accepted.
    """
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    message = payload.get("message")
    if not isinstance(message, dict):
        raise BadRequest("not a Pub/Sub push: 'message' is missing")
    message_id = _first_str(message, "messageId", "message_id")
    if not message_id:
        raise BadRequest("not a Pub/Sub push: message.messageId is missing")
    subscription = payload.get("subscription") if isinstance(payload.get("subscription"), str) else None
    publish_time = None
    published = _first_str(message, "publishTime", "publish_time")
    if published:
        try:
            publish_time = parse_timestamp(published)
        except ValueError as exc:
            raise BadRequest(f"message.publishTime is not a timestamp: {published!r}") from exc

    data = message.get("data")
    if not isinstance(data, str) or not data.strip():
        raise MalformedNotification("message.data is missing")
    decoded = _decode_data(data)
    if not isinstance(decoded, dict):
        raise MalformedNotification("message.data is not a JSON object")
    kind = _first_str(decoded, "type", "notificationType", "notification_type")
    if kind not in REVIEW_TYPES:
        if kind is None and _first_str(decoded, "review", "reviewName", "review_name"):
            raise MalformedNotification("the notification names a review but no type")
        return None

    review = _first_str(decoded, "review", "reviewName", "review_name")
    if not review:
        raise MalformedNotification(f"{kind} notification without a review name")
    match = _REVIEW_NAME.match(review)
    if not match or ".." in review.split("/"):
        raise MalformedNotification(f"not a review resource name: {review!r}")
    location = _first_str(decoded, "location", "locationName", "location_name") or match.group(1)
    if not _LOCATION_NAME.match(location):
        raise MalformedNotification(f"not a location resource name: {location!r}")
    if location != match.group(1):
        raise MalformedNotification(f"review {review!r} does not belong to location {location!r}")
    return ReviewNotification(
        review_name=review,
        location_name=location,
        type=kind,
        message_id=message_id,
        publish_time=publish_time,
        subscription=subscription,
    )


# --- fetching the review -------------------------------------------------------------


def static_token(token: str) -> Callable[[], str]:
    """A token provider for a fixed access token (``GOOGLE_ACCESS_TOKEN``).

    Google access tokens expire after about an hour, so this only suits the sandbox
    and short tests; production needs the OAuth refresh-token flow behind the same
    ``Callable[[], str]``.
    """
    return lambda: token


class BusinessProfileClient:
    """Reads reviews from the My Business API v4 (``GET /v4/{review name}``).

    ``token_provider`` is called before every request, so it can refresh an OAuth
    access token; one urllib3 pool is shared across token changes.
    """

    def __init__(
        self,
        base_url: str = GOOGLE_BUSINESS_API_URL,
        *,
        token_provider: Callable[[], str],
        timeout: tuple[float, float] = API_TIMEOUT,
        pool: Any = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token_provider = token_provider
        self._timeout = timeout
        self._pool = pool
        self._http: JsonHttpClient | None = None
        self._http_token: str | None = None
        self._lock = threading.Lock()

    def _client(self) -> JsonHttpClient:
        from chalicelib.http import JsonHttpClient

        token = self._token_provider()
        if not token:
            raise NotConfigured("no Google access token is configured")
        with self._lock:
            # JsonHttpClient holds one Authorization header: rebuild it when the token
            # changes, keeping the connection pool.
            if self._http is None or self._http_token != token:
                if self._pool is None:
                    import urllib3

                    self._pool = urllib3.PoolManager(num_pools=2, maxsize=4, retries=False)
                self._http = JsonHttpClient(self.base_url, f"Bearer {token}", timeout=self._timeout, pool=self._pool)
                self._http_token = token
            return self._http

    def get_review(self, name: str) -> dict[str, Any]:
        """The review resource ``name`` (``accounts/*/locations/*/reviews/*``).

        Raises ``TransientReviewFetchError`` (retry later), ``ReviewNotFound``
        (404/410) or ``PermanentReviewFetchError`` (other refusals, or an answer that
        is not a review).
        """
        from chalicelib.http import TransportError

        if not _REVIEW_NAME.match(name) or ".." in name.split("/"):
            raise PermanentReviewFetchError(f"not a review resource name: {name!r}")
        path = "/v4/" + quote(name, safe="/")
        try:
            response = self._client().request("GET", path)
        except TransportError as exc:
            raise TransientReviewFetchError(f"could not read review {name}: {exc}") from exc
        status = response.status
        if response.ok:
            try:
                review = response.json()
            except ValueError as exc:
                raise TransientReviewFetchError(f"review {name}: the answer is not JSON", status=status) from exc
            if not isinstance(review, dict):
                raise PermanentReviewFetchError(f"review {name}: the answer is not a JSON object", status=status)
            return review
        detail = _google_error(response)
        message = f"review {name}: HTTP {status}{': ' + detail if detail else ''}"
        if status in (404, 410):
            raise ReviewNotFound(message, status=status)
        if status in (408, 429) or status >= 500:
            raise TransientReviewFetchError(message, status=status)
        raise PermanentReviewFetchError(message, status=status)


def _google_error(response: Any) -> str:
    """Google's ``{"error": {"status", "message"}}``, shortened, for the exception text."""
    try:
        error = (response.json() or {}).get("error") or {}
    except (ValueError, AttributeError):
        return ""
    if not isinstance(error, dict):
        return ""
    parts = [str(error[k]) for k in ("status", "message") if error.get(k)]
    return " ".join(parts)[:200]


# --- normalization -------------------------------------------------------------------


def star_rating(value: Any) -> int | None:
    """``"ONE"``..``"FIVE"`` as 1..5; ``None`` for ``STAR_RATING_UNSPECIFIED`` or absent."""
    if isinstance(value, str):
        return STAR_RATINGS.get(value.strip().upper())
    return None


def normalize_review(review: dict[str, Any], *, location: str, raw: dict[str, Any]) -> SocialMessage:
    """One version of a review as a canonical message.

    A review whose ``updateTime`` differs from its ``createTime`` has been edited: that
    version gets ``message_id = "<review name>@<updateTime>"`` and ``edit_of = <review
    name>``, so each edit is stored (and deduplicated) as its own message, while the
    first version's id is the review name. Both are pure functions of the resource, so
    a redelivered notification maps to the same message. The reviewer has no id in the
    API (one review per person per place), so the review name identifies its author.
    """
    name = review["name"]
    if not isinstance(name, str) or not _REVIEW_NAME.match(name):
        raise ValueError(f"not a review resource name: {name!r}")
    create_time = review.get("createTime")
    update_time = review.get("updateTime")
    if not create_time and not update_time:
        raise KeyError("createTime")
    edited = bool(update_time and create_time and update_time != create_time)
    reviewer = review.get("reviewer") or {}
    anonymous = bool(reviewer.get("isAnonymous")) or not reviewer.get("displayName")
    return SocialMessage(
        platform=Platform.GOOGLE,
        kind=Kind.REVIEW,
        direction=Direction.INBOUND,
        message_id=f"{name}@{update_time}" if edited else name,
        conversation_key=conversation_key(Platform.GOOGLE, "review", name),
        account_id=location,
        author=Author(
            platform_id=name,
            display_name=ANONYMOUS_REVIEWER if anonymous else str(reviewer["displayName"]),
        ),
        text=review.get("comment") or "",
        created_at=parse_timestamp(str(update_time if edited or not create_time else create_time)),
        thread_id=name,
        # The review resource carries no public URL (the Maps link needs the place id).
        permalink=None,
        rating=star_rating(review.get("starRating")),
        edit_of=name if edited else None,
        raw=raw,
    )


def opens_ticket(message: SocialMessage, max_rating: int = DEFAULT_TICKET_MAX_STARS) -> bool:
    """Whether a review should open a ticket: ratings up to ``max_rating``, or no rating.

    Higher ratings are still stored and counted; they just need no agent.
    """
    from chalicelib.sync.policy import TicketPolicy

    return TicketPolicy(review_max_stars=max_rating).opens_ticket(message)


# --- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleReviewSettings:
    """Non-secret settings of the Google route (the access token is a secret)."""

    audience: str | None
    push_service_accounts: frozenset[str]
    jwks_url: str
    api_url: str
    ticket_max_stars: int

    @classmethod
    def from_env(cls) -> GoogleReviewSettings:
        """Read ``GOOGLE_PUSH_AUDIENCE``, ``GOOGLE_PUSH_SERVICE_ACCOUNTS`` (comma-separated),
        ``GOOGLE_JWKS_URL``, ``GOOGLE_BUSINESS_API_URL``, ``REVIEW_TICKET_MAX_STARS``."""
        accounts = os.environ.get("GOOGLE_PUSH_SERVICE_ACCOUNTS", "")
        return cls(
            audience=os.environ.get("GOOGLE_PUSH_AUDIENCE") or None,
            push_service_accounts=frozenset(a.strip().lower() for a in accounts.split(",") if a.strip()),
            jwks_url=os.environ.get("GOOGLE_JWKS_URL") or GOOGLE_JWKS_URL,
            api_url=(os.environ.get("GOOGLE_BUSINESS_API_URL") or GOOGLE_BUSINESS_API_URL).rstrip("/"),
            ticket_max_stars=int(os.environ.get("REVIEW_TICKET_MAX_STARS", str(DEFAULT_TICKET_MAX_STARS))),
        )

    def verifier(self) -> OidcPushVerifier:
        """The push verifier, or ``NotConfigured`` (fail closed) when a setting is missing."""
        if not self.audience:
            raise NotConfigured("GOOGLE_PUSH_AUDIENCE is not configured")
        if not self.push_service_accounts:
            raise NotConfigured("GOOGLE_PUSH_SERVICE_ACCOUNTS is not configured")
        return OidcPushVerifier(self.audience, allowed_emails=self.push_service_accounts, jwks=google_key_source(self.jwks_url))


# --- intake --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPushResult(IngestResult):
    """``IngestResult`` plus what the review was: its rating and whether it calls for a ticket."""

    review: str | None = None
    rating: int | None = None
    opens_ticket: bool | None = None


def _result(*, stored: int = 0, duplicates: int = 0, ignored: int = 0, quarantined: int = 0, **extra: Any) -> ReviewPushResult:
    return ReviewPushResult(stored=stored, duplicates=duplicates, statuses=0, ignored=ignored, quarantined=quarantined, **extra)


def _save(store: BatchStore, batch: NormalizedBatch) -> SavedBatch:
    try:
        return save_batch(store, batch)
    except StoreUnavailable as exc:  # Pub/Sub redelivers; what was written is deduplicated
        raise Unavailable(str(exc)) from exc


def _quarantine(store: BatchStore, event: Any, error: str) -> ReviewPushResult:
    _save(store, NormalizedBatch(rejected=[RejectedEvent(source=SOURCE, error=error[:500], event=event)]))
    return _result(quarantined=1)


def receive_review_push(
    headers: Mapping[str, str],
    body: bytes,
    *,
    verifier: Verifier,
    client: BusinessProfileClient,
    store: BatchStore,
    max_rating: int = DEFAULT_TICKET_MAX_STARS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    give_up_after: timedelta | None = DEFAULT_GIVE_UP_AFTER,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> ReviewPushResult:
    """Handle one Pub/Sub push end to end: authenticate, parse, fetch, normalize, store.

    Answers (as ``WebhookError``): 413 oversized, 401 bad token, 400 not a Pub/Sub
    push, 503 when the key set, the API or the store is unavailable, so Pub/Sub
    redelivers. A genuine push we cannot use (unreadable data, a review we cannot
    normalize, a review still missing ``give_up_after`` past its publish time, a review
    DynamoDB refuses for good) is quarantined and acknowledged: retrying cannot fix
    it. Nothing is stored until the whole review has been fetched and normalized.
    """
    if len(body) > max_body_bytes:
        raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {max_body_bytes}")
    try:
        verifier.verify(headers, body)
    except JwksUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    except SignatureError as exc:
        raise Unauthorized(str(exc)) from exc

    payload = parse_json_body(body)
    try:
        notification = parse_push(payload)
    except MalformedNotification as exc:
        return _quarantine(store, payload, exc.message)
    if notification is None:
        return _result(ignored=1)

    try:
        review = client.get_review(notification.review_name)
    except ReviewNotFound as exc:
        published = notification.publish_time
        if give_up_after is not None and published is not None and now() - published > give_up_after:
            return _quarantine(store, notification.to_event(), f"gave up: {exc}")
        raise Unavailable(f"{exc} (retrying: it may not be readable yet)") from exc
    except ReviewFetchError as exc:
        # 401/403 too: fixing the token or the access makes the retry succeed.
        raise Unavailable(str(exc)) from exc

    if review.get("name") not in (None, notification.review_name):
        return _quarantine(store, notification.to_event(), f"the API answered review {review.get('name')!r} instead")
    review = {**review, "name": notification.review_name}
    raw = {"notification": notification.to_event(), "review": review}
    try:
        message = normalize_review(review, location=notification.location_name, raw=raw)
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
        return _quarantine(store, raw, f"{type(exc).__name__}: {exc}")

    saved = _save(store, NormalizedBatch(messages=[message]))  # refused for good by DynamoDB: quarantined
    return _result(
        stored=saved.stored,
        duplicates=saved.duplicates,
        quarantined=saved.quarantined,
        review=message.message_id,
        rating=message.rating,
        opens_ticket=opens_ticket(message, max_rating),
    )
