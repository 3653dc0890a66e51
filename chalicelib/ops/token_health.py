"""Token health: are the credentials the bridge depends on still accepted?

A scheduled check asks each configured API who we are, the cheapest authenticated call
each one has:

* **Meta** -- ``GET /debug_token?input_token=<page token>`` with the app token
  (``<app id>|<app secret>``) as the access token (sent as ``Authorization: Bearer``
  so it stays out of URLs); without a page token the app token checks itself (the
  app secret signs every webhook). With a page token but no app id: ``GET /me``
  with the page token (and ``appsecret_proof`` when the secret is known).
  ``expires_at``/``data_access_expires_at`` give the days left; error code 190 with
  subcode 463 means *expired*, any other 190 *revoked* (password changed, app removed,
  logged out).
* **X** -- ``GET /2/users/me`` with the brand's user access token.
* **Telegram** -- ``GET /bot<token>/getMe``.
* **Google** -- ``GET /tokeninfo?access_token=<token>`` (Google's OAuth token info): the
  Business Profile access token is accepted and carries the ``business.manage`` scope.
  Access tokens live an hour and are renewed outside socialdesk, so no days are counted:
  a refused token means that renewal stopped.
* **Zendesk** -- ``GET /api/v2/users/me.json`` with ``{email}/token:{api token}``;
  Zendesk answers bad credentials with an *anonymous* user, which counts as refused.

Each check ends in one of ``ok``, ``expired``, ``revoked``, ``unreachable`` (the API
could not be asked, or answered with an outage or a rate limit: the token's state is
unknown) or ``not_configured`` (skipped; no request, no metric). ``publish`` emits a
``token_ok`` metric (1/0) per platform (dimension ``platform``), ``token_days_left``
where known, and one log line per problem in plain words.

Configuration (secrets through ``get_secret``: env, ``<NAME>_PARAM`` or ``<NAME>_SECRET_ID``):

=====================  =====================================================
``META_GRAPH_URL``     default ``https://graph.facebook.com`` (may carry ``/vNN.0``)
``META_APP_ID``        plain setting
``META_APP_SECRET``    secret
``META_PAGE_ACCESS_TOKEN``  secret
``X_API_URL``          default ``https://api.x.com``
``X_USER_ACCESS_TOKEN``  secret
``TELEGRAM_API_URL``   default ``https://api.telegram.org``
``TELEGRAM_BOT_TOKEN`` secret
``GOOGLE_OAUTH_URL``   default ``https://oauth2.googleapis.com``
``GOOGLE_ACCESS_TOKEN``  secret
``ZENDESK_URL``, ``ZENDESK_EMAIL``  plain settings
``ZENDESK_API_TOKEN``  secret
``TOKEN_EXPIRY_WARNING_DAYS``  default 14: an ``ok`` token expiring sooner is logged as a warning
=====================  =====================================================

Nothing here ever puts a token in a result, a log line or an exception message: the
HTTP client's own errors (whose text carries the URL path, which for Telegram holds
the bot token) are reduced to their class name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.channels.meta.graph import EXPIRED_SUBCODES, RATE_LIMIT_CODES, REVOKED_REASONS, TRANSIENT_CODES
from chalicelib.errors import NotConfigured
from chalicelib.http import ConnectFailed, HttpResponse, JsonHttpClient, ResponseTimeout, TransportError

if TYPE_CHECKING:
    from chalicelib.store.ledger import Ledger

OK = "ok"
EXPIRED = "expired"
REVOKED = "revoked"
UNREACHABLE = "unreachable"
NOT_CONFIGURED = "not_configured"

DEFAULT_URLS = {
    "META_GRAPH_URL": "https://graph.facebook.com",
    "X_API_URL": "https://api.x.com",
    "TELEGRAM_API_URL": "https://api.telegram.org",
    "GOOGLE_OAUTH_URL": "https://oauth2.googleapis.com",
}
GOOGLE_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/business.manage", "https://www.googleapis.com/auth/plus.business.manage"}
)
DEFAULT_WARNING_DAYS = 14
TIMEOUT = (3.05, 10.0)


@dataclass(frozen=True)
class TokenCheck:
    """The result of checking one platform's credentials."""

    platform: str
    status: str
    detail: str  # plain words, never a token
    days_left: int | None = None  # until expiry, when the API says
    checked: str = ""  # which credential was checked

    @property
    def ok(self) -> bool:
        """True when the credential works."""
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _default_secret(name: str) -> str | None:
    from chalicelib.config import get_secret

    try:
        return get_secret(name).strip() or None
    except NotConfigured:
        return None


class SecretUnreadable(Exception):
    """A secret is configured (``_PARAM``/``_SECRET_ID``) but could not be read."""


class TokenHealth:
    """Runs the checks. ``env`` and ``secret`` are injectable (tests); ``pool`` is a urllib3 pool."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        secret: Callable[[str], str | None] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timeout: tuple[float, float] = TIMEOUT,
        pool: Any = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self._secret = secret or _default_secret
        self._clock = clock
        self._timeout = timeout
        self._pool = pool

    # --- plumbing ------------------------------------------------------------------

    def _setting(self, name: str) -> str | None:
        return (self._env.get(name) or "").strip() or None

    def _read_secret(self, name: str) -> str | None:
        try:
            return self._secret(name)
        except NotConfigured:
            return None
        except Exception as exc:
            raise SecretUnreadable(f"{name} could not be read ({type(exc).__name__})") from None

    def _url(self, name: str) -> str:
        return (self._setting(name) or DEFAULT_URLS.get(name, "")).rstrip("/")

    def _client(self, base_url: str, auth_header: str) -> JsonHttpClient:
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(num_pools=4, maxsize=2, retries=False)
        return JsonHttpClient(base_url, auth_header, timeout=self._timeout, pool=self._pool)

    def _get(
        self, platform: str, base_url: str, auth_header: str, path: str, params: Mapping[str, str] | None = None
    ) -> HttpResponse | TokenCheck:
        """One GET, or an ``unreachable`` result that names no URL (paths may hold tokens)."""
        try:
            return self._client(base_url, auth_header).request("GET", path, params=params)
        except ConnectFailed:
            return TokenCheck(platform, UNREACHABLE, f"could not connect to the {_LABEL[platform]} API")
        except ResponseTimeout:
            return TokenCheck(platform, UNREACHABLE, f"the {_LABEL[platform]} API did not answer in time")
        except TransportError as exc:
            return TokenCheck(
                platform, UNREACHABLE, f"the connection to the {_LABEL[platform]} API failed ({type(exc).__name__})"
            )
        except ValueError:
            return TokenCheck(platform, UNREACHABLE, f"the {_LABEL[platform]} API URL is not a valid https URL")

    def _days_until(self, epoch: Any) -> int | None:
        try:
            moment = int(epoch)
        except (TypeError, ValueError):
            return None
        if moment <= 0:
            return None  # 0: never expires
        return int((moment - self._clock()) // 86400)

    # --- the checks ----------------------------------------------------------------

    def run(self) -> list[TokenCheck]:
        """Check every channel's credentials and the helpdesk's (``not_configured`` for
        those without credentials)."""
        from chalicelib.channels.registry import all_channels
        from chalicelib.helpdesks.registry import all_helpdesks

        checks: list[tuple[str, Callable[[], TokenCheck]]] = [
            (entry.name, check) for entry in all_channels() for check in entry.credential_checks(self)
        ]
        # Every helpdesk's, not only the configured one's: a second one set up for a move shows too.
        checks += [(entry.name, check) for entry in all_helpdesks() for check in entry.credential_checks(self)]
        results = []
        for name, check in checks:
            try:
                results.append(check())
            except SecretUnreadable as exc:
                results.append(TokenCheck(name, UNREACHABLE, str(exc)))
            except Exception as exc:  # one broken check never hides the others
                results.append(TokenCheck(name, UNREACHABLE, f"the check itself failed ({type(exc).__name__})"))
        return results

    def check_meta(self) -> TokenCheck:
        """The page token (or the app token itself) through ``debug_token``, else ``/me``."""
        app_id = self._setting("META_APP_ID")
        app_secret = self._read_secret("META_APP_SECRET")
        page_token = self._read_secret("META_PAGE_ACCESS_TOKEN")
        base = self._url("META_GRAPH_URL")
        if app_id and app_secret:
            app_token = f"{app_id}|{app_secret}"
            checked = "page access token" if page_token else "app id and app secret"
            answer = self._get("meta", base, f"Bearer {app_token}", "/debug_token", {"input_token": page_token or app_token})
            if isinstance(answer, TokenCheck):
                return answer
            return self._graph_debug_result(answer, checked)
        if page_token:
            params = {}
            if app_secret:
                params["appsecret_proof"] = hmac.new(app_secret.encode(), page_token.encode(), hashlib.sha256).hexdigest()
            answer = self._get("meta", base, f"Bearer {page_token}", "/me", params)
            if isinstance(answer, TokenCheck):
                return answer
            if answer.ok:
                return TokenCheck(
                    "meta",
                    OK,
                    "the page access token is accepted (expiry unknown without META_APP_ID)",
                    checked="page access token",
                )
            return self._graph_error_result(_error_of(_json(answer)), answer.status, "page access token")
        if app_secret:
            return TokenCheck(
                "meta", NOT_CONFIGURED, "META_APP_SECRET is set but META_APP_ID is not: set META_APP_ID to check it"
            )
        return TokenCheck("meta", NOT_CONFIGURED, "not configured (META_APP_ID + META_APP_SECRET, or META_PAGE_ACCESS_TOKEN)")

    def _graph_debug_result(self, answer: HttpResponse, checked: str) -> TokenCheck:
        body = _json(answer)
        if not answer.ok or not isinstance(body.get("data"), dict):
            error = _error_of(body)
            if error.get("code") == 190 or answer.status in (401, 403):
                # The access token of the call itself -- the app token -- was refused.
                return TokenCheck(
                    "meta",
                    REVOKED,
                    f"Meta refused the app id/app secret pair ({_graph_code(error)}): check META_APP_ID and META_APP_SECRET",
                    checked="app id and app secret",
                )
            return self._graph_error_result(error, answer.status, checked)
        data = body.get("data") or {}
        expiries = [
            d
            for d in (self._days_until(data.get("expires_at")), self._days_until(data.get("data_access_expires_at")))
            if d is not None
        ]
        days_left = min(expiries) if expiries else None
        if not data.get("is_valid"):
            error = _error_of(data)
            if error.get("subcode") in EXPIRED_SUBCODES or (days_left is not None and days_left < 0):
                return TokenCheck(
                    "meta", EXPIRED, f"the {checked} has expired ({_graph_code(error)}): generate a new one", days_left, checked
                )
            if error:
                return self._graph_error_result(error, 200, checked)
            return TokenCheck("meta", REVOKED, f"Meta says the {checked} is no longer valid", days_left, checked)
        if days_left is not None and days_left < 0:
            return TokenCheck("meta", EXPIRED, f"the {checked} has expired", days_left, checked)
        when = "does not expire" if days_left is None else f"expires in {days_left} day(s)"
        return TokenCheck("meta", OK, f"the {checked} is valid and {when}", days_left, checked)

    def _graph_error_result(self, error: Mapping[str, Any], status: int, checked: str) -> TokenCheck:
        code, subcode = error.get("code"), error.get("error_subcode", error.get("subcode"))
        if code == 190:
            if subcode in EXPIRED_SUBCODES or "expired" in str(error.get("message", "")).lower():
                return TokenCheck(
                    "meta", EXPIRED, f"the {checked} has expired ({_graph_code(error)}): generate a new one", checked=checked
                )
            reason = REVOKED_REASONS.get(subcode, "the token is invalid") if isinstance(subcode, int) else "the token is invalid"
            return TokenCheck("meta", REVOKED, f"Meta refused the {checked}: {reason} ({_graph_code(error)})", checked=checked)
        if code in (10, 200) or (isinstance(code, int) and 200 <= code < 300):
            return TokenCheck(
                "meta", REVOKED, f"the {checked} lacks a permission it needs ({_graph_code(error)})", checked=checked
            )
        if code in RATE_LIMIT_CODES or code in TRANSIENT_CODES or status == 429 or status >= 500:
            return TokenCheck(
                "meta",
                UNREACHABLE,
                f"the Graph API is rate limiting or unavailable ({_graph_code(error) or status})",
                checked=checked,
            )
        return TokenCheck(
            "meta", UNREACHABLE, f"unexpected Graph API answer ({_graph_code(error) or f'HTTP {status}'})", checked=checked
        )

    def check_x(self) -> TokenCheck:
        """``GET /2/users/me`` with the brand's user access token."""
        token = self._read_secret("X_USER_ACCESS_TOKEN")
        if not token:
            return TokenCheck("x", NOT_CONFIGURED, "not configured (X_USER_ACCESS_TOKEN)")
        answer = self._get("x", self._url("X_API_URL"), f"Bearer {token}", "/2/users/me")
        if isinstance(answer, TokenCheck):
            return answer
        checked = "user access token"
        if answer.ok and isinstance(_json(answer).get("data"), dict):
            username = _json(answer)["data"].get("username")
            who = f" as @{username}" if username else ""
            return TokenCheck("x", OK, f"the user access token works{who}", checked=checked)
        body = _json(answer)
        forbidden = str(body.get("detail") or body.get("title") or "forbidden")[:160]
        refusals = {
            401: "X refused the user access token (401): it expired or was revoked; authorize the app again",
            403: f"X refused access (403: {forbidden})",
        }
        return _refused_or_outage("x", answer, checked, refusals)

    def check_telegram(self) -> TokenCheck:
        """``getMe`` with the bot token (the token is part of the URL path)."""
        token = self._read_secret("TELEGRAM_BOT_TOKEN")
        if not token:
            return TokenCheck("telegram", NOT_CONFIGURED, "not configured (TELEGRAM_BOT_TOKEN)")
        answer = self._get("telegram", f"{self._url('TELEGRAM_API_URL')}/bot{token}", "", "/getMe")
        if isinstance(answer, TokenCheck):
            return answer
        body, checked = _json(answer), "bot token"
        if answer.ok and body.get("ok") is True:
            username = (body.get("result") or {}).get("username")
            who = f" as @{username}" if username else ""
            return TokenCheck("telegram", OK, f"the bot token works{who}", checked=checked)
        refused = (
            f"Telegram refused the bot token ({answer.status}): it was revoked or is not a bot token; "
            "get the current one from @BotFather"
        )
        return _refused_or_outage("telegram", answer, checked, dict.fromkeys((401, 404), refused))

    def check_google(self) -> TokenCheck:
        """Google's token info for the Business Profile access token (scope included)."""
        token = self._read_secret("GOOGLE_ACCESS_TOKEN")
        if not token:
            return TokenCheck("google", NOT_CONFIGURED, "not configured (GOOGLE_ACCESS_TOKEN)")
        answer = self._get("google", self._url("GOOGLE_OAUTH_URL"), "", "/tokeninfo", params={"access_token": token})
        if isinstance(answer, TokenCheck):
            return answer
        body, checked = _json(answer), "Business Profile access token"
        if answer.ok:
            if not GOOGLE_SCOPES & set(str(body.get("scope") or "").split()):
                words = "the access token lacks the business.manage scope: authorize socialdesk's Google account again with it"
                return TokenCheck("google", REVOKED, words, checked=checked)
            left = str(body.get("expires_in") or "")
            minutes = f" for {int(left) // 60} more minutes" if left.isdigit() else ""
            return TokenCheck(
                "google", OK, f"the access token works{minutes} (renewed hourly outside socialdesk)", checked=checked
            )
        if answer.status in (400, 401):
            words = (
                "Google no longer accepts the access token (expired or revoked): the hourly renewal outside socialdesk "
                "has stopped; renew it, or authorize the Google account again"
            )
            return TokenCheck("google", EXPIRED, words, checked=checked)
        return _outage("google", answer, checked)

    def check_zendesk(self) -> TokenCheck:
        """``GET /api/v2/users/me.json`` as the configured agent."""
        from chalicelib.helpdesks.zendesk.adapter import basic_auth_header

        url, email = self._setting("ZENDESK_URL"), self._setting("ZENDESK_EMAIL")
        token = self._read_secret("ZENDESK_API_TOKEN")
        if not (url and email and token):
            return TokenCheck("zendesk", NOT_CONFIGURED, "not configured (ZENDESK_URL, ZENDESK_EMAIL and ZENDESK_API_TOKEN)")
        answer = self._get("zendesk", url, basic_auth_header(email, token), "/api/v2/users/me.json")
        if isinstance(answer, TokenCheck):
            return answer
        checked = "API token"
        if answer.ok:
            user = _json(answer).get("user") or {}
            if not user.get("id"):
                return TokenCheck(
                    "zendesk",
                    REVOKED,
                    "Zendesk answered as an anonymous user: the email or API token is wrong, or the token was deleted",
                    checked=checked,
                )
            if user.get("role") not in ("agent", "admin"):
                return TokenCheck(
                    "zendesk",
                    REVOKED,
                    f"the API token signs in as a {user.get('role') or 'user'} who cannot work tickets: use an agent's email",
                    checked=checked,
                )
            return TokenCheck("zendesk", OK, f"the API token works (signed in as a {user['role']})", checked=checked)
        refused = (
            f"Zendesk refused the email/API token ({answer.status}): the token was deleted or deactivated, or token access is off"
        )
        return _refused_or_outage("zendesk", answer, checked, dict.fromkeys((401, 403), refused))

    def check_freshdesk(self) -> TokenCheck:
        """``GET /api/v2/agents/me`` with the agent's API key."""
        from chalicelib.helpdesks.freshdesk.adapter import api_key_auth_header

        url, key = self._setting("FRESHDESK_URL"), self._read_secret("FRESHDESK_API_KEY")
        if not (url and key):
            return TokenCheck("freshdesk", NOT_CONFIGURED, "not configured (FRESHDESK_URL and FRESHDESK_API_KEY)")
        answer = self._get("freshdesk", url, api_key_auth_header(key), "/api/v2/agents/me")
        if isinstance(answer, TokenCheck):
            return answer
        checked = "API key"
        if answer.ok and _json(answer).get("id"):
            return TokenCheck("freshdesk", OK, "the API key works (signed in as an agent)", checked=checked)
        refusals = {
            401: "Freshdesk refused the API key (401): it was reset or the agent was deleted; "
            "copy the current key from the agent's profile settings",
            403: "Freshdesk refused access (403): the agent lacks a permission or the account is suspended",
        }
        return _refused_or_outage("freshdesk", answer, checked, refusals)


_LABEL = {
    "meta": "Graph",
    "x": "X",
    "telegram": "Telegram Bot",
    "google": "Google OAuth",
    "zendesk": "Zendesk",
    "freshdesk": "Freshdesk",
}


def _json(answer: HttpResponse) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_of(body: Mapping[str, Any]) -> dict[str, Any]:
    error = body.get("error")
    return error if isinstance(error, dict) else {}


def _graph_code(error: Mapping[str, Any]) -> str:
    if not error:
        return ""
    code, subcode = error.get("code"), error.get("error_subcode", error.get("subcode"))
    return f"code {code}" + (f", subcode {subcode}" if subcode is not None else "")


def _refused_or_outage(platform: str, answer: HttpResponse, checked: str, refusals: Mapping[int, str]) -> TokenCheck:
    """``revoked`` in the platform's words (``refusals``: by status) when it refused the
    credential; otherwise the answer says nothing about it (``_outage``)."""
    words = refusals.get(answer.status)
    if words is not None:
        return TokenCheck(platform, REVOKED, words, checked=checked)
    return _outage(platform, answer, checked)


def _outage(platform: str, answer: HttpResponse, checked: str) -> TokenCheck:
    if answer.status == 429:
        return TokenCheck(
            platform,
            UNREACHABLE,
            f"the {_LABEL[platform]} API is rate limiting us (429); the token was not checked",
            checked=checked,
        )
    if answer.status >= 500:
        return TokenCheck(
            platform,
            UNREACHABLE,
            f"the {_LABEL[platform]} API is unavailable ({answer.status}); the token was not checked",
            checked=checked,
        )
    return TokenCheck(
        platform, UNREACHABLE, f"unexpected answer from the {_LABEL[platform]} API (HTTP {answer.status})", checked=checked
    )


# --- publishing ------------------------------------------------------------------------------


def warning_days(env: Mapping[str, str] | None = None) -> int:
    """``TOKEN_EXPIRY_WARNING_DAYS`` (default 14)."""
    value = (os.environ if env is None else env).get("TOKEN_EXPIRY_WARNING_DAYS", "")
    try:
        return int(value) if value.strip() else DEFAULT_WARNING_DAYS
    except ValueError:
        return DEFAULT_WARNING_DAYS


def publish(results: list[TokenCheck], *, warn_days: int | None = None) -> None:
    """One ``token_ok`` metric per checked platform (and ``token_days_left`` when known);
    an error log per broken token, a warning per token expiring soon."""
    from chalicelib.observability import logger
    from chalicelib.ops.metrics import token_health

    warn_days = warning_days() if warn_days is None else warn_days
    for result in results:
        if result.status == NOT_CONFIGURED:
            continue
        token_health(result.platform, result.ok, result.days_left)
        fields = {"platform": result.platform, "status": result.status, "detail": result.detail, "days_left": result.days_left}
        if not result.ok:
            logger.error(f"{result.platform} credentials: {result.status}: {result.detail}", extra=fields)
        elif result.days_left is not None and result.days_left <= warn_days:
            logger.warning(f"{result.platform} credentials expire in {result.days_left} day(s): {result.detail}", extra=fields)
    logger.info("token health checked", extra={"results": {r.platform: r.status for r in results}})


# Where the latest check is kept, for the report's "what needs attention now".
RESULTS_KEY = {"pk": {"S": "OPS#TOKENS"}, "sk": {"S": "LATEST"}}


def record(results: list[TokenCheck], ledger: Ledger, *, checked_at: float | None = None) -> None:
    """Keep the latest results in the table (one item, overwritten each run; no token in it)."""
    checked = [asdict(result) for result in results if result.status != NOT_CONFIGURED]
    ledger.move(
        RESULTS_KEY,
        set={
            "item_type": "token_health",
            "checked_at": int(time.time() if checked_at is None else checked_at),
            "results": json.dumps(checked, sort_keys=True),
        },
    )


def check_tokens() -> list[TokenCheck]:
    """The scheduled job: check everything configured, publish, keep the results, return them."""
    from chalicelib import wiring
    from chalicelib.observability import logger

    results = TokenHealth().run()
    publish(results)
    store = wiring.message_store()
    try:
        record(results, store.ledger("token health"))
    except Exception as exc:  # the metrics and logs went out; the report shows the previous check
        logger.warning("token health not recorded", extra={"reason": type(exc).__name__})
    return results


def main(argv: list[str] | None = None) -> int:
    """``python -m chalicelib.ops.token_health``: print each platform's state; exit 1 if any is broken."""
    results = TokenHealth().run()
    width = max((len(r.platform) for r in results), default=0)
    for result in results:
        days = f" ({result.days_left} days left)" if result.days_left is not None else ""
        print(f"{result.platform:<{width}}  {result.status:<14} {result.detail}{days}")
    return 0 if all(r.status in (OK, NOT_CONFIGURED) for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
