"""Log redaction: customers' words and personal data, and every secret, stay out of CloudWatch.

Applied to every structured log record by ``RedactingFormatter`` (a Powertools
formatter), and callable directly as ``redact(extra)``:

* **secrets, always** -- values under keys that name a credential (``authorization``,
  ``*secret*``, ``*token*``, ``*signature*``, ``signed_request``...), signature header
  values (``sha256=<hex>``, Standard Webhooks ``v1,<base64>``), ``Bearer``/``Basic``
  credentials, Telegram bot tokens, and the value of every secret-looking environment
  variable (``*_SECRET``, ``*_TOKEN``...) or registered with ``register_secret``;
* **personal data, by default** -- values under keys that hold what people wrote or who
  they are (``text``, ``body``, nested ``message``, names, handles, emails, phone
  numbers, ``from``/``author``/``contacts``, ``raw`` payloads...) become ``[redacted]``;
  ids that identify a person (``author_id``, ``wa_id``-like ``conversation_key``...)
  become a keyed pseudonym (``~<12 hex>``) so records can still be correlated; e-mail
  addresses and formatted phone numbers are masked inside any other string, including
  the log message and exception text.

``LOG_FULL_TEXT=true`` keeps the personal data (for debugging a sandbox); secrets are
masked regardless, and every record then says ``"log_full_text": true``.

``install(logger)`` makes this impossible to bypass from inside the package: the
Powertools logger's handler (with ``RedactingFormatter``) is also the one handler of the
``chalicelib`` logger, which stops propagation there, so every ``chalicelib.*`` logger a
module creates, now or later, is written redacted; and the root logger's handlers (the
Lambda runtime's own) get a ``RedactingFilter`` for whatever else reaches them.

Pseudonyms are an HMAC under ``LOG_PSEUDONYM_KEY`` (set it to correlate across Lambda
containers); without it a random per-process key is used, so a phone number cannot be
recovered from its pseudonym by hashing every possible number.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets as _secrets
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import pydantic_core
from aws_lambda_powertools.logging import formatter as _powertools_formatter
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

REDACTED = "[redacted]"
SECRET_MASK = "[secret]"
FULL_TEXT_ENV = "LOG_FULL_TEXT"
PSEUDONYM_KEY_ENV = "LOG_PSEUDONYM_KEY"
MAX_DEPTH = 12

# Keys whose values are credentials, whatever the mode (compared lower-case, '-' as '_').
SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "signature",
    "authorization",
    "cookie",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "signed_request",
    "appsecret_proof",
    "x_hub_signature",
)
# Keys whose values are what people wrote or who they are.
PERSONAL_KEYS = frozenset(
    {
        "text",
        "body",
        "message",
        "messages",
        "caption",
        "title",
        "comment",
        "review",
        "content",
        "description",
        "snippet",
        "quote",
        "subject",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "username",
        "user_name",
        "screen_name",
        "handle",
        "email",
        "email_address",
        "phone",
        "phone_number",
        "display_phone_number",
        "mobile",
        "address",
        "profile",
        "contacts",
        "contact",
        "from",
        "author",
        "sender",
        "recipient",
        "user",
        "users",
        "raw",
        "payload",
        "event",
        "events",
        "entry",
        "attachments",
        "attachment",
        "media",
        "permalink",
        "url",
        "link",
        "location",
        "vcard",
        "reply_to_message",
        "referral",
        "label",
        "requester",
        "requesters",
    }
)
# Keys whose values identify a person: pseudonymized, so logs can still be correlated.
PERSON_ID_KEYS = frozenset(
    {
        "author_id",
        "user_id",
        "sender_id",
        "recipient_id",
        "customer_id",
        "platform_id",
        "psid",
        "igsid",
        "asid",
        "wa_id",
        "chat_id",
        "from_id",
        "conversation_key",
        "conversation",
        "requester_id",
        "helpdesk_user_id",
    }
)
# Top-level keys of a Powertools record: only their strings are scrubbed.
RECORD_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "sampling_rate",
        "xray_trace_id",
        "exception",
        "exception_name",
        "exception_notes",
        "stack_trace",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
        "log_full_text",
    }
)
# Environment variables holding secrets (their values are masked wherever they appear).
_SECRET_ENV = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|ACCESS_KEY)")
_NOT_SECRET_ENV = re.compile(r"(_PARAM|_SECRET_ID|_URL|_ARN|_NAME|_ENV)$")
_MIN_SECRET_CHARS = 8

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# A phone number with a leading + (E.164 or formatted), or a formatted national one
# (e.g. (650) 555-0199, 650.555.0199). Bare digit runs are ids here, and stay.
_PHONE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .()-]{0,2}\d){6,14}(?!\w)"
    r"|(?<![\w.])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w])"
)
# A person's id inside a conversation key or a by-author index key, e.g. in an error message.
_KEYED_IDS = re.compile(
    r"\b((?:messenger|instagram|whatsapp|x|telegram|line):(?:dm|tweets):[^:\s\"']+:)([^:\s\"',;)]+)"
    r"|(AUTHOR#[a-z]+#)([^#\s\"',;)]+)"
)
# pydantic's ValidationError text quotes the offending input (a message text, a name).
_PYDANTIC_INPUT = re.compile(r"input_value=.*?, input_type=")
_ALWAYS = (
    (re.compile(r"\b(sha1|sha256)=[0-9A-Fa-f]{32,}"), r"\1=" + SECRET_MASK),  # Meta, X signature headers
    (re.compile(r"\bv1[a-z]?,[A-Za-z0-9+/=]{20,}"), "v1," + SECRET_MASK),  # Standard Webhooks signatures
    (re.compile(r"\b(Bearer|Basic|OAuth|Token)\s+[A-Za-z0-9._~+/=|:-]{8,}", re.IGNORECASE), r"\1 " + SECRET_MASK),
    (re.compile(r"(?<![0-9])\d{5,12}:[A-Za-z0-9_-]{30,}"), SECRET_MASK),  # Telegram bot token (also inside /bot<token>/ paths)
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{16,}"), SECRET_MASK),
)

# What every match of the patterns above contains, in the same order (sha1=, "v1,", a credential
# word and a space, 5 digits and a colon, whsec_, input_value=, a conversation key's scope or
# AUTHOR#, @, a phone number's start): a string without any of it (a record's level, timestamp,
# location, most messages) is left as it is after one quick search instead of nine.
_MAYBE_MASKED = re.compile(
    r"sha1=|sha256=|v1[a-z]?,|(?i:bearer|basic|oauth|token)\s|\d{5}:|whsec_|input_value=|:dm:|:tweets:|AUTHOR#|@"
    r"|\+\d{1,3}(?:[ .()-]{0,2}\d){6}|\d{3}\)?[ .-]\d{3}[ .-]\d{4}"
)

# A Powertools record's own timestamp (``2026-12-04 00:17:26,399+0000``, or RFC 3339's
# ``2026-12-04T00:17:26.399+00:00``): at most four digits in a row and no separator a phone number
# uses between its groups, so none of the patterns above can match one; the secret values are
# still looked for. (The patterns' quick search costs more on a timestamp than on any other field.)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3}(?:Z|[+-]\d\d:?\d\d)?")

_registered: set[str] = set()
_process_key = _secrets.token_bytes(32)
# (the environment it was computed from, whether it keeps the full text, the secret values):
# scanning every variable with two patterns cost ~25 us per log record; comparing the
# environment with a snapshot costs well under 1 us, and a changed variable
# (``monkeypatch.setenv``, a rotated secret, ``LOG_FULL_TEXT``) is seen.
_secret_cache: tuple[dict[Any, Any], bool, list[str]] | None = None
# A record's own short fields repeat line after line ("INFO", "ingest:58", "webhook stored",
# the service): each is scrubbed once per (mode, list of secret values). A new list (a changed
# environment, a registered secret) starts the cache again.
_SCRUBBED_MAX, _SCRUBBED_CHARS = 2048, 200


class _Remembered(dict[Any, Any]):
    """Redacted text kept for one list of secret values (at most ``_SCRUBBED_MAX`` entries):
    a new list (a changed environment, a registered secret) starts it again."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] | None = None

    def valid_for(self, secrets: list[str]) -> _Remembered:
        """This cache, emptied first if it was filled under other secret values."""
        if self._secrets is not secrets:
            self.clear()
            self._secrets = secrets
        return self

    def keep(self, key: Any, value: Any) -> None:
        """Remember ``value`` (starting again once full)."""
        if len(self) >= _SCRUBBED_MAX:
            self.clear()
        self[key] = value


_scrubbed = _Remembered()  # (text, personal) -> scrubbed text


def full_text() -> bool:
    """True when ``LOG_FULL_TEXT`` asks for personal data in logs (debugging only)."""
    return os.environ.get(FULL_TEXT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log from now on (e.g. a secret read from SSM)."""
    global _secret_cache
    if value and len(value) >= _MIN_SECRET_CHARS:
        _registered.add(value)
        _secret_cache = None


def _mode() -> tuple[bool, list[str]]:
    """Whether personal data is redacted (not ``LOG_FULL_TEXT``), and the secret values."""
    global _secret_cache
    # os.environ keeps its (encoded) variables in ``_data``; every change goes through it.
    environment = getattr(os.environ, "_data", None)
    cached = _secret_cache
    if cached is not None and environment is not None and cached[0] == environment:
        return cached[1], cached[2]
    values = set(_registered)
    for name, value in os.environ.items():
        if value and len(value) >= _MIN_SECRET_CHARS and _SECRET_ENV.search(name) and not _NOT_SECRET_ENV.search(name):
            values.add(value)
    found = sorted(values, key=len, reverse=True)  # longest first: a secret containing another is masked whole
    personal = not full_text()
    if environment is not None:
        _secret_cache = (dict(environment), personal, found)
    return personal, found


def _secret_values() -> list[str]:
    return _mode()[1]


def pseudonym(value: Any) -> str:
    """A stable stand-in for a person's id (keyed HMAC, 12 hex characters)."""
    configured = os.environ.get(PSEUDONYM_KEY_ENV)
    key = configured.encode() if configured else _process_key
    return "~" + hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:12]


def _norm(key: Any) -> str:
    return str(key).strip().lower().replace("-", "_")


def _is_secret_key(key: Any) -> bool:
    return _is_secret_name(_norm(key))


@lru_cache(maxsize=1024)
def _is_secret_name(name: str) -> bool:
    return any(part in name for part in SECRET_KEY_PARTS)


def _key_kind(key: Any) -> tuple[bool, bool, bool]:
    """Whether a key names a secret, what people wrote or who they are, or a person's id."""
    return _str_key_kind(key) if type(key) is str else _name_kind(_norm(key))


@lru_cache(maxsize=1024)
def _str_key_kind(key: str) -> tuple[bool, bool, bool]:  # records use a few keys, again and again
    return _name_kind(_norm(key))


def _name_kind(name: str) -> tuple[bool, bool, bool]:
    return _is_secret_name(name), name in PERSONAL_KEYS, name in PERSON_ID_KEYS


def scrub(text: str, *, personal: bool = True, secrets: Iterable[str] | None = None) -> str:
    """Mask secrets (always) and e-mail addresses and phone numbers (when ``personal``) in a string."""
    for value in _secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, SECRET_MASK)
    if not _MAYBE_MASKED.search(text):
        return text
    for pattern, replacement in _ALWAYS:
        text = pattern.sub(replacement, text)
    if personal:
        text = _PYDANTIC_INPUT.sub(f"input_value={REDACTED}, input_type=", text)
        text = _KEYED_IDS.sub(lambda m: (m.group(1) or m.group(3)) + pseudonym(m.group(2) or m.group(4)), text)
        text = _EMAIL.sub("[email]", text)
        text = _PHONE.sub("[phone]", text)
    return text


def _scrub_field(key: str, text: str, *, personal: bool, secrets: list[str]) -> str:
    """``scrub`` for a record's own string fields: a timestamp is only searched for secret values,
    a short field already seen is answered from the cache."""
    if key == "timestamp" and _TIMESTAMP.fullmatch(text):
        return scrub(text, personal=personal, secrets=secrets) if any(value in text for value in secrets) else text
    if len(text) > _SCRUBBED_CHARS:  # an exception's text, a long message: not kept
        return scrub(text, personal=personal, secrets=secrets)
    found = _scrubbed.valid_for(secrets).get((text, personal))
    if found is None:
        found = scrub(text, personal=personal, secrets=secrets)
        _scrubbed.keep((text, personal), found)
    return found


def _clean(value: Any, *, personal: bool, secrets: list[str], depth: int) -> Any:
    """Scrub strings inside any value, redacting by key inside mappings."""
    if isinstance(value, str):
        return scrub(value, personal=personal, secrets=secrets)
    if depth > MAX_DEPTH:
        return REDACTED
    if value is None or isinstance(value, (bool, int, float)):  # the usual counts and flags, before the slower checks
        return value
    if isinstance(value, Mapping):
        return _redact_mapping(value, personal=personal, secrets=secrets, depth=depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item, personal=personal, secrets=secrets, depth=depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return REDACTED if personal else scrub(bytes(value).decode("utf-8", errors="replace"), personal=False, secrets=secrets)
    dumped = getattr(value, "model_dump", None)  # pydantic models (SocialMessage...)
    if callable(dumped):
        return _clean(dumped(mode="json"), personal=personal, secrets=secrets, depth=depth + 1)
    return scrub(str(value), personal=personal, secrets=secrets)


def _redact_mapping(data: Mapping[Any, Any], *, personal: bool, secrets: list[str], depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        secret, personal_key, person_id = _key_kind(key)
        if not (secret or personal_key or person_id) and (value is None or type(value) in (int, float, bool)):
            out[str(key)] = value  # the usual counts and flags under plain keys: nothing to look at
        elif secret and value not in (None, ""):
            out[str(key)] = SECRET_MASK
        elif personal and personal_key and value not in (None, "", [], {}):
            out[str(key)] = REDACTED
        elif personal and person_id and isinstance(value, (str, int)) and not isinstance(value, bool):
            out[str(key)] = pseudonym(value)
        else:
            out[str(key)] = _clean(value, personal=personal, secrets=secrets, depth=depth)
    return out


def redact(extra: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``extra`` that is safe to log (see the module docstring)."""
    personal, secret_values = _mode()
    return _redact_mapping(extra, personal=personal, secrets=secret_values, depth=0)


def redact_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Redact a whole Powertools log record: its own fields are scrubbed, extras redacted by key."""
    personal, secret_values = _mode()
    memo = _memo_key(record, personal)
    if memo is not None:
        layout = _records.valid_for(secret_values).get(memo)
        if layout is not None:
            return {
                key: _scrub_field(key, record[key], personal=personal, secrets=secret_values) if value is _PER_RECORD else value
                for key, value in layout
            }
    out: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in record.items():
        if key in RECORD_KEYS:
            if type(value) is str:
                out[key] = _scrub_field(key, value, personal=personal, secrets=secret_values)
            else:
                out[key] = _clean(value, personal=personal, secrets=secret_values, depth=0)
        else:
            extras[key] = value
    out.update(_redact_mapping(extras, personal=personal, secrets=secret_values, depth=0))
    if not personal:
        out["log_full_text"] = True
    if memo is not None:
        _records.keep(memo, tuple((key, _PER_RECORD if key in _PER_RECORD_KEYS else value) for key, value in out.items()))
    return out


# A line logged again and again ("webhook stored", route "meta", 1 stored) differs only in its time
# (and, on Lambda, its trace id): its redacted layout is kept, keyed by everything else with each
# value's type (1, True and 1.0 are different lines), when every value is a short string, a number,
# a flag or None and no key names a secret. Those two fields are scrubbed for each line.
_PER_RECORD_KEYS = frozenset({"timestamp", "xray_trace_id"})
_PER_RECORD = object()
_PLAIN_TYPES = (int, float, bool, type(None))
_records = _Remembered()  # memo key -> the redacted layout


def _memo_key(record: Mapping[str, Any], personal: bool) -> tuple[Any, ...] | None:
    parts: list[Any] = [personal]
    for key, value in record.items():
        if key in _PER_RECORD_KEYS:
            if type(value) is not str:
                return None
            parts.append(key)
            continue
        part = _plain_part(key, value)
        if part is None:
            return None
        parts.append(part)
    return tuple(parts)


def _plain_part(key: Any, value: Any) -> tuple[Any, ...] | None:
    """``key`` and ``value`` as part of a remembered line's key (the value's type too: 1, True and
    1.0 are different lines); None for a value not worth remembering a line by (long, nested) or
    not to be kept in memory (under a key that names a secret)."""
    kind = type(value)
    if kind is str:
        if len(value) > _SCRUBBED_CHARS or type(key) is not str or _str_key_kind(key)[0]:
            return None
        return (key, value)
    if kind in _PLAIN_TYPES:
        return (key, kind, value)
    return None


# What a JSON document can start with (json.loads also reads NaN, Infinity and -Infinity).
_JSON_STARTS = frozenset('{["-0123456789tfnNI')


def _json_message(message: str) -> Any:
    """Powertools writes a log message that is a JSON document as that document: json.loads, except
    that a message which cannot be one (most: "webhook stored") is returned as it is without
    raising and catching the parse error (the same result; a few microseconds per record)."""
    if message.lstrip(" \t\n\r")[:1] not in _JSON_STARTS:
        return message
    return json.loads(message)


_RESERVED_LOG_ATTRS = frozenset(_powertools_formatter.RESERVED_LOG_ATTRS)
# Powertools' own formats of its reserved keys: a record's line depends on nothing else of it.
_DEFAULT_FORMATS = {"level": "%(levelname)s", "location": "%(funcName)s:%(lineno)d", "timestamp": "%(asctime)s"}
# Where a repeated line's time goes (no scrubbing changes it), and how JSON writes it.
_TIME_MARK, _TRACE_MARK = "\x00time\x00", "\x00trace\x00"
_TIME_MARK_JSON, _TRACE_MARK_JSON = "\\u0000time\\u0000", "\\u0000trace\\u0000"
_TRACE_ID = re.compile(r"[0-9A-Za-z-]{1,100}")  # X-Ray's 1-<8 hex>-<24 hex>: nothing JSON escapes
_lines = _Remembered()  # (shape, traced) -> the line's text cut at its time (and trace id); (): cannot be cut


class RedactingFormatter(LambdaPowertoolsFormatter):
    """The Powertools JSON formatter, with every record redacted before it is written."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("json_deserializer", _json_message)
        own = "json_serializer" not in kwargs and "json_default" not in kwargs
        super().__init__(**kwargs)
        self._json_dumps = self.json_serializer
        if own and self.json_indent is None:  # not indented (POWERTOOLS_DEV): json.dumps' own layout
            self.json_serializer = self._to_json

    def _to_json(self, log: Any) -> str:
        """What Powertools' compact ``json.dumps`` writes (not ASCII-escaped) for a redacted record,
        which holds only strings, numbers, flags, None, lists and dicts; pydantic's serializer
        costs a quarter. A string UTF-8 cannot hold (a lone surrogate) goes to ``json.dumps``."""
        try:
            return pydantic_core.to_json(log).decode()
        except ValueError:
            return str(self._json_dumps(log))

    def _extract_log_keys(self, log_record: logging.LogRecord) -> dict[str, Any]:
        """Powertools' own (3.x; a test compares the two), with its reserved attribute names in a
        set instead of a 24-name tuple searched for each of a record's ~25 attributes: about a
        third of formatting the webhook's 'webhook stored' line."""
        record_dict = log_record.__dict__.copy()
        record_dict["asctime"] = self.formatTime(record=log_record)
        extras = {k: v for k, v in record_dict.items() if k not in _RESERVED_LOG_ATTRS}
        formatted_log: dict[str, Any] = {}
        for keys in (self.log_format, _powertools_formatter._get_context().get()):
            for key, value in keys.items():
                if value and key in _RESERVED_LOG_ATTRS:
                    if not isinstance(value, str):
                        raise ValueError(
                            "Logging keys that override reserved log attributes need to be type 'str', "
                            f"instead got '{type(value).__name__}'"
                        )
                    formatted_log[key] = value % record_dict
                else:
                    formatted_log[key] = value
        formatted_log.update(**extras)
        return formatted_log

    def format(self, record: logging.LogRecord) -> str:  # noqa: A003 (logging's name)
        """Powertools' line for ``record``. A line that repeats an earlier one but for its time and
        trace id (the webhook's "webhook stored", route "meta", 1 stored) is written from the
        earlier one's redacted text: Powertools' formatting and the redaction cost about half of
        logging such a line, and they would give the same text."""
        shape = self._repeat_shape(record)
        if shape is not None:
            line = self._repeat_line(record, shape)
            if line is not None:
                return line
        return super().format(record)

    def _repeat_shape(self, record: logging.LogRecord) -> tuple[Any, ...] | None:
        """What decides ``record``'s line but its time and trace id; None when something else might
        (arguments, an exception, Powertools' thread-safe keys, a reserved key formatted from
        another of the record's attributes) or a value is not one to remember a line by."""
        if record.args or record.exc_info or record.exc_text or record.stack_info or type(record.msg) is not str:
            return None
        if _powertools_formatter._get_context().get():
            return None
        parts: list[Any] = [record.msg, record.levelname, record.funcName, record.lineno]
        for key, value in self.log_format.items():
            if value and key in _RESERVED_LOG_ATTRS and _DEFAULT_FORMATS.get(key) != value:
                return None
            parts.append((key, value))
        for key, value in vars(record).items():
            if key not in _RESERVED_LOG_ATTRS:
                part = _plain_part(key, value)
                if part is None:
                    return None
                parts.append(part)
        return tuple(parts)

    def _repeat_line(self, record: logging.LogRecord, shape: tuple[Any, ...]) -> str | None:
        personal, secrets = _mode()
        if not personal:  # LOG_FULL_TEXT adds its flag after every other key
            return None
        timestamp = self.formatTime(record=record)
        if not _TIMESTAMP.fullmatch(timestamp) or any(value in timestamp for value in secrets):
            return None
        trace = self._get_latest_trace_id()
        if trace is not None:
            trace = _scrub_field("xray_trace_id", trace, personal=personal, secrets=secrets)
            if not _TRACE_ID.fullmatch(trace):
                return None
        key = (shape, trace is not None)
        try:
            parts = _lines.valid_for(secrets).get(key)
        except TypeError:  # a log_format value that cannot be a key
            return None
        if parts is None:
            parts = self._line_parts(record, traced=trace is not None) or ()  # (): cannot be cut, do not try again
            _lines.keep(key, parts)
        if not parts:
            return None
        if trace is None:
            return parts[0] + timestamp + parts[1]
        return parts[0] + timestamp + parts[1] + trace + parts[2]

    def _line_parts(self, record: logging.LogRecord, *, traced: bool) -> tuple[str, ...] | None:
        """The redacted line of ``record`` (its keys as Powertools' ``format`` builds them), cut
        where its time and its trace id go."""
        log = self._extract_log_keys(log_record=record)
        log["message"] = self._extract_log_message(log_record=record)
        if log.get("timestamp") is None:
            return None
        log["timestamp"] = _TIME_MARK
        if self.serialize_stacktrace:  # without an exception: None, over any extra of that name
            log["stack_trace"] = None
        log["xray_trace_id"] = _TRACE_MARK if traced else None
        text = self.serialize(self._strip_none_records(log))
        head, found, rest = text.partition(_TIME_MARK_JSON)
        if not found or _TIME_MARK_JSON in rest:
            return None
        if not traced:
            return head, rest
        middle, found, tail = rest.partition(_TRACE_MARK_JSON)
        if not found or _TRACE_MARK_JSON in tail:
            return None
        return head, middle, tail

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        """Redact, then serialize as Powertools would."""
        try:
            safe = redact_record(log)
        except Exception:  # never lose the log line; never leak either
            safe = {k: log.get(k) for k in ("level", "location", "timestamp", "service")}
            safe["message"] = "log record dropped: redaction failed"
        return self.json_serializer(safe)


# The attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """For handlers that are not ours (the Lambda runtime's, on the root logger): scrub the
    rendered message and the exception text, and redact ``extra`` fields by key."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: A003 (logging's name)
        personal = not full_text()
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = scrub(message, personal=personal)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, personal=personal)
        extras = {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}
        if extras:
            vars(record).update(redact(extras))
        return True


# Every logger of this package is a child of this one (``logging.getLogger(__name__)``).
PACKAGE_LOGGER = "chalicelib"


def install(logger: Any) -> RedactingFormatter:
    """Put a ``RedactingFormatter`` on a Powertools ``Logger`` (idempotent), keeping its keys;
    write every ``chalicelib.*`` logger's records through that same handler (and only there);
    put a ``RedactingFilter`` on the root logger's handlers."""
    current = logger.registered_formatter
    if isinstance(current, RedactingFormatter):
        formatter = current
    else:
        formatter = RedactingFormatter()
        if isinstance(current, LambdaPowertoolsFormatter):
            formatter.log_format = dict(current.log_format)
            formatter.keys_combined = dict(current.keys_combined)
        logger.registered_handler.setFormatter(formatter)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.handlers[:] = [logger.registered_handler]
    package.setLevel(logger.log_level)
    # Propagating would hand each record to the root logger's handlers as well: printed
    # twice, the second time by a formatter that is not ours (the Lambda runtime's).
    for written_here in (package, logging.getLogger(logger.name)):
        written_here.propagate = False
    for handler in logging.root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    return formatter
