"""A local stand-in for the two Google endpoints the review intake talks to.

On ``local.sandbox_http.JsonSandbox``: ``GoogleSandbox(...).start()`` serves on a background
thread (stdlib only, plus ``cryptography``/PyJWT for the signing key, which the intake needs
anyway):

* ``GET /oauth2/v3/certs``: a JWKS with the sandbox's RSA public key(s), like
  ``https://www.googleapis.com/oauth2/v3/certs``; ``mint_token()`` signs Pub/Sub-style
  OIDC push tokens with the matching private key, and ``rotate_key()`` starts signing
  with a new key (published or not) to exercise unknown-``kid`` refetches;
* ``GET /v4/accounts/{a}/locations/{l}/reviews/{r}``: reviews seeded with
  ``add_review()`` / ``update_review()``, shaped like the My Business API v4
  ``Review`` resource, behind ``Authorization: Bearer <access_token>`` (else 401
  ``UNAUTHENTICATED``; unknown review: 404 ``NOT_FOUND``, Google's error shape).

* ``GET /tokeninfo?access_token=``: Google's OAuth token info (``scope``, ``expires_in``; 400
  ``invalid_token`` for another token), which the credential check asks;
* ``PUT /v4/accounts/{a}/locations/{l}/reviews/{r}/reply`` (``{"comment"}``): the review
  reply, created or replaced (``updateReply``), answered as a ``ReviewReply`` and shown on
  the review (``reviewReply``) and in ``sent()``. A location marked with
  ``mark_unverified()`` answers 400 ``FAILED_PRECONDITION`` (the reference: replies are
  "only valid if the specified location is verified"; the exact error is not published).

``fail_next(status, count)`` makes the next review reads fail, ``fail_next_reply(status,
count)`` the next replies (``status=0``: the reply is applied, then the connection is
dropped without an answer); ``stats()`` counts requests. ``push_body()`` builds the
Pub/Sub push envelope Google would POST.

Not Google, for ``make demo`` (another process): ``POST /__sandbox/reviews`` (``{"review_id",
"stars", "comment", "reviewer", "account", "location"}``) seeds a review and answers the
push Google would send about it: ``{"push_body", "push_headers"}``; ``GET /__sandbox/sent`` lists
the replies written, ``POST /__sandbox/mark_unverified`` (``{"location"}``) unverifies a location.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from local.sandbox_http import JsonSandbox, Reply, SandboxRequest

DEFAULT_ACCESS_TOKEN = "local-google-access-token"
DEFAULT_PUSH_EMAIL = "pubsub-push@socialdesk-local.iam.gserviceaccount.com"
DEFAULT_AUDIENCE = "https://socialdesk.local/webhooks/google/reviews"
STARS = {1: "ONE", 2: "TWO", 3: "THREE", 4: "FOUR", 5: "FIVE"}
_ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_kid_numbers = itertools.count(1)


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SigningKey:
    """An RSA key pair with a ``kid``: the private half signs, the public half is the JWK."""

    def __init__(self, kid: str | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.kid = kid or f"sandbox-key-{next(_kid_numbers)}"
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, with the fields Google's JWKS carries."""
        from jwt.algorithms import RSAAlgorithm

        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """A compact RS256 JWT over ``claims``."""
        import jwt

        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid, **(headers or {})})


def jwks_of(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS document publishing ``keys``."""
    return {"keys": [key.jwk() for key in keys]}


def mint_with(
    key: SigningKey,
    audience: str,
    email: str,
    *,
    expires_in: int = 3600,
    issuer: str = "https://accounts.google.com",
    email_verified: bool = True,
    issued_at: float | None = None,
    **extra: Any,
) -> str:
    """A push token shaped like Pub/Sub's (aud, azp, email, email_verified, exp, iat, iss, sub)."""
    iat = int(time.time() if issued_at is None else issued_at)
    claims = {
        "aud": audience,
        "azp": "113774264463038321964",
        "email": email,
        "email_verified": email_verified,
        "exp": iat + expires_in,
        "iat": iat,
        "iss": issuer,
        "sub": "113774264463038321964",
        **extra,
    }
    return key.sign(claims)


def push_body(
    review_name: str,
    *,
    type: str = "NEW_REVIEW",
    location: str | None = None,
    message_id: str = "9876543210123456",
    publish_time: str | None = None,
    subscription: str = "projects/socialdesk-local/subscriptions/gbp-reviews-push",
    data: dict[str, Any] | None = None,
) -> bytes:
    """The body a Pub/Sub push subscription POSTs for one Business Profile notification."""
    notification = data or {
        "type": type,
        "location": location or review_name.rsplit("/reviews/", 1)[0],
        "review": review_name,
    }
    envelope = {
        "message": {
            "attributes": {},
            "data": base64.b64encode(json.dumps(notification, separators=(",", ":")).encode()).decode(),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": publish_time or _now_rfc3339(),
            "publish_time": publish_time or _now_rfc3339(),
        },
        "subscription": subscription,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


class GoogleSandbox(JsonSandbox):
    """Google's JWKS and the My Business v4 review read, in memory, on ``http://{host}:{port}``."""

    name = "google-sandbox"
    content_type = "application/json; charset=UTF-8"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        audience: str = DEFAULT_AUDIENCE,
        push_email: str = DEFAULT_PUSH_EMAIL,
    ) -> None:
        super().__init__(host, port)
        self.access_token = access_token
        self.scope = "https://www.googleapis.com/auth/business.manage"  # what tokeninfo says the token grants
        self.audience = audience
        self.push_email = push_email
        self.signing_key = SigningKey()
        self._published: list[SigningKey] = [self.signing_key]
        self._reviews: dict[str, dict[str, Any]] = {}
        self._faults: list[int] = []
        self._reply_faults: list[int] = []
        self._unverified: set[str] = set()
        self._sent: list[dict[str, Any]] = []
        self._outcomes: Counter[str] = Counter()  # unauthenticated, fault
        self.route("GET", r"/oauth2/v3/certs", self._serve_jwks, name="jwks")
        # The review's resource name, as the path after /v4/ (``accounts/{a}/locations/{l}/reviews/{r}``).
        self.route("GET", r"/tokeninfo", self._serve_tokeninfo, name="tokeninfo")
        self.route("PUT", r"/v4/(?P<name>(?:.*/)?reviews/[^/]+)/reply", self._put_reply, name="reply")
        self.route("GET", r"/v4/(?P<name>(?:.*/)?reviews/.*)", self._serve_review, name="review")
        self.control("POST", "reviews", self._review_control)
        self.serve_controls(mark_unverified=self.mark_unverified)

    @property
    def jwks_url(self) -> str:
        """Use it as ``GOOGLE_JWKS_URL`` (``url`` is ``GOOGLE_BUSINESS_API_URL``)."""
        return f"{self.url}/oauth2/v3/certs"

    # --- tokens ------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The JWKS document served at ``/oauth2/v3/certs``."""
        with self._lock:
            return jwks_of(*self._published)

    def mint_token(
        self, audience: str | None = None, email: str | None = None, *, expires_in: int = 3600, **claims: Any
    ) -> str:
        """A push token signed with the current key (defaults: the sandbox's audience and email)."""
        return mint_with(
            self.signing_key, audience or self.audience, email or self.push_email, expires_in=expires_in, **claims
        )

    def push_headers(self, audience: str | None = None, email: str | None = None, **claims: Any) -> dict[str, str]:
        """Headers of a push request carrying a fresh token."""
        return {
            "Authorization": f"Bearer {self.mint_token(audience, email, **claims)}",
            "Content-Type": "application/json",
        }

    def rotate_key(self, *, publish: bool = True) -> SigningKey:
        """Sign from now on with a new key; ``publish=False`` keeps it out of the JWKS."""
        key = SigningKey()
        with self._lock:
            self.signing_key = key
            if publish:
                self._published.append(key)
        return key

    # --- reviews -----------------------------------------------------------------

    def add_review(
        self,
        account: str,
        location: str,
        review_id: str,
        *,
        stars: int | None = 5,
        comment: str | None = None,
        reviewer: str | None = "Sandbox Reviewer",
        anonymous: bool = False,
        create_time: str | None = None,
        update_time: str | None = None,
        reply: str | None = None,
    ) -> dict[str, Any]:
        """Seed a review; returns the resource as the API will answer it."""
        name = f"accounts/{account}/locations/{location}/reviews/{review_id}"
        created = create_time or _now_rfc3339()
        review: dict[str, Any] = {
            "name": name,
            "reviewId": review_id,
            "reviewer": (
                {"displayName": "A Google User", "isAnonymous": True}
                if anonymous
                else {
                    "displayName": reviewer,
                    "profilePhotoUrl": f"https://lh3.googleusercontent.com/a/{review_id}=s120-c-rp-mo-br100",
                    "isAnonymous": False,
                }
            ),
            "starRating": STARS.get(stars or 0, "STAR_RATING_UNSPECIFIED"),
            "createTime": created,
            "updateTime": update_time or created,
        }
        if comment is not None:
            review["comment"] = comment
        if reply is not None:
            review["reviewReply"] = {"comment": reply, "updateTime": _now_rfc3339()}
        with self._lock:
            self._reviews[name] = review
        return json.loads(json.dumps(review))

    def add_review_resource(self, review: dict[str, Any]) -> None:
        """Seed a review from a ready-made resource (e.g. a test fixture)."""
        with self._lock:
            self._reviews[review["name"]] = json.loads(json.dumps(review))

    def update_review(self, name: str, *, update_time: str | None = None, **fields: Any) -> dict[str, Any]:
        """Edit a seeded review (``comment=``, ``starRating=``...) and bump ``updateTime``."""
        with self._lock:
            review = self._reviews[name]
            review.update(fields)
            review["updateTime"] = update_time or _now_rfc3339()
            return json.loads(json.dumps(review))

    def delete_review(self, name: str) -> None:
        """Remove a review: reads of it answer 404."""
        with self._lock:
            self._reviews.pop(name, None)

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` review reads with ``status`` (after authentication)."""
        with self._lock:
            self._faults.extend([status] * count)

    def fail_next_reply(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` replies with ``status``; 0 applies the reply and drops the connection."""
        with self._lock:
            self._reply_faults.extend([status] * count)

    def mark_unverified(self, location: str) -> str:
        """Replies to reviews of ``location`` (``accounts/{a}/locations/{l}``) are refused as unverified."""
        with self._lock:
            self._unverified.add(location)
        return location

    def reply_of(self, name: str) -> dict[str, Any] | None:
        """The review's current reply (``{"comment", "updateTime"}``), None without one."""
        with self._lock:
            reply = (self._reviews.get(name) or {}).get("reviewReply")
            return json.loads(json.dumps(reply)) if reply else None

    def sent(self) -> list[dict[str, Any]]:
        """Every reply written, oldest first: ``{"review", "body", "answer", "replaced"}``."""
        with self._lock:
            return json.loads(json.dumps(self._sent))

    def stats(self) -> dict[str, int]:
        """Request counts: ``jwks``, ``review``, ``reply``, ``unauthenticated``, ``fault`` (those that happened)."""
        with self._lock:
            served = {route: self.request_counts[route] for route in ("jwks", "review", "reply") if self.request_counts[route]}
            return {**served, **self._outcomes}

    # --- serving -----------------------------------------------------------------

    def _serve_jwks(self, _request: SandboxRequest) -> Reply:
        return 200, self.jwks(), {"Cache-Control": "public, max-age=21600"}

    def _serve_review(self, request: SandboxRequest, name: str) -> Reply:
        if request.header("Authorization") != f"Bearer {self.access_token}":
            return self._failed("unauthenticated", 401, "Request had invalid authentication credentials.")
        name = unquote(name)
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            review = json.loads(json.dumps(self._reviews.get(name))) if name in self._reviews else None
        if fault is not None:
            return self._failed("fault", fault, "Injected failure.")
        if review is None:
            return _error(404, "Requested entity was not found.")
        return 200, review, {}

    def _serve_tokeninfo(self, request: SandboxRequest) -> Reply:
        if request.arg("access_token") != self.access_token:
            return 400, {"error": "invalid_token", "error_description": "Invalid Value"}, {}
        return 200, {"aud": "socialdesk-local.apps.googleusercontent.com", "scope": self.scope, "expires_in": "3599"}, {}

    def _put_reply(self, request: SandboxRequest, name: str) -> Reply | None:
        if request.header("Authorization") != f"Bearer {self.access_token}":
            return self._failed("unauthenticated", 401, "Request had invalid authentication credentials.")
        name = unquote(name)
        try:
            body = request.json()
        except ValueError:
            body = None
        comment = body.get("comment") if isinstance(body, dict) else None
        if not isinstance(comment, str) or not comment.strip():
            return _error(400, "Request contains an invalid argument.")
        with self._lock:
            fault = self._reply_faults.pop(0) if self._reply_faults else None
            review = self._reviews.get(name)
            location = name.rsplit("/reviews/", 1)[0]
            if fault is None and review is not None and location in self._unverified:
                self._outcomes["unverified"] += 1
                return _error(400, "Location is not verified.", "FAILED_PRECONDITION")
            if fault is not None and fault != 0:
                self._outcomes["fault"] += 1
                return _error(fault, "Injected failure.")
            if review is None:
                return _error(404, "Requested entity was not found.")
            reply = {"comment": comment, "updateTime": _now_rfc3339()}
            replaced = "reviewReply" in review
            review["reviewReply"] = reply
            self._sent.append({"review": name, "body": {"comment": comment}, "answer": dict(reply), "replaced": replaced})
        if fault == 0:
            return None  # applied, then the connection drops: the client cannot tell
        return 200, reply, {}

    def _failed(self, outcome: str, status: int, message: str) -> Reply:
        with self._lock:
            self._outcomes[outcome] += 1
        return _error(status, message)

    def not_found(self, request: SandboxRequest) -> Reply:
        if request.method in ("GET", "PUT"):
            return _error(404, f"No route for {request.path}.")
        return _error(404, "The sandbox serves GET, PUT .../reply and its /__sandbox/ controls only.")

    method_not_allowed = not_found

    def _review_control(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Plays Google for `make demo`: a customer posts a review, and the answer is the
        Pub/Sub push Google would send about it (body and signed headers)."""
        if "review_id" not in arguments:
            raise ValueError("review_id is required")
        review = self.add_review(
            str(arguments.get("account", "1001")), str(arguments.get("location", "2002")), str(arguments["review_id"]),
            stars=arguments.get("stars"), comment=arguments.get("comment"),
            reviewer=arguments.get("reviewer", "Sandbox Reviewer"),
        )
        return {"push_body": push_body(review["name"]).decode(), "push_headers": self.push_headers()}


def _error(status: int, message: str, word: str | None = None) -> Reply:
    return status, {"error": {"code": status, "message": message, "status": word or _ERROR_STATUS.get(status, "UNKNOWN")}}, {}


if __name__ == "__main__":  # pragma: no cover - manual use
    with GoogleSandbox(port=8035) as box:
        box.add_review("1001", "2002", "r-1", stars=2, comment="Cold coffee, slow service.")
        print(f"Google sandbox on {box.url} (JWKS {box.jwks_url}); token: {box.mint_token()[:40]}...")
        threading.Event().wait()
